"""A long inventory skews BOTH quotes down, in every ladder mode and on every path a
quote takes (the original system's live post-mortem: inventory skew silently zero).

Modes: Kelly-stochastic sizing on/off, α per depth bucket or parametric (the
original's), the Hawkes arrival rate, a tick grid, a maker fee, no learning, the
paper replay's static configuration, and a GLFT half-spread under ``min_depth_bps``
(where a side-wide clamp used to freeze the ask).  Paths: the Quoter's packed step
(multi-kernel here, one XLA kernel in a low-latency process), the pytree ``step``,
``batch_step`` (vmap), ``quote_once`` (``mmcal quote``) and the live runner."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from mm_runtime import QuoterConfig, dump_bundle, example_bundle
from mm_runtime.paper.compare import config_for
from mm_runtime.quoter import Quoter, batch_step, init, make_event, quote_once, stack_trees, step

MID, LONG, MARGIN = 60_000.0, 2.0, 1e6

MODES = {
    "kelly, alpha buckets": {},
    "kelly off (proportional)": {"use_kelly_stochastic": False},
    "parametric alpha": {"kelly_alpha_touch": 0.15, "kelly_alpha_decay_bps": 10.0},
    "hawkes arrival rate": {"use_hawkes_intensity": True},
    "tick grid": {"tick_size": 1.0},
    "maker fee": {"fee_bps": 1.0},
    "no learning": {"learn": False},
    "half-spread under the floor": {"min_depth_bps": 6.0},
    "under the floor, kelly off": {"min_depth_bps": 6.0, "use_kelly_stochastic": False},
    "paper static": "static",
}


def setup(mode: str):
    spec = MODES[mode]
    if spec == "static":
        return config_for("static", example_bundle("BTC"))
    return example_bundle("BTC"), QuoterConfig(**spec)


def best(q, side: int) -> float:
    """The best price posted on a side (None when that side posts nothing)."""
    sz, px = np.asarray(q.size[side]), np.asarray(q.price[side])
    if not np.any(sz > 0):
        return None
    return float(px[sz > 0].max() if side == 0 else px[sz > 0].min())


def assert_skewed_down(flat, long, config: QuoterConfig, where: str) -> None:
    assert bool(flat.valid) and bool(long.valid), where
    fb, lb = np.asarray(flat.price[0]), np.asarray(long.price[0])
    fa, la = np.asarray(flat.price[1]), np.asarray(long.price[1])
    # the bid: every level lower; the ask: no level higher, the ladder lower, and the touch
    # strictly lower unless the flat touch already sits on the floor (it cannot come in)
    assert np.all(lb < fb), f"{where}: bid not lower: {lb} vs flat {fb}"
    assert np.all(la <= fa) and la.sum() < fa.sum(), f"{where}: ask not lower: {la} vs flat {fa}"
    tick = config.tick_size or 0.0
    if float(flat.depth_bps[1, 0]) > config.min_depth_bps + 1e-9 + tick / MID * 1e4:
        assert la[0] < fa[0], f"{where}: the ask touch did not come in: {la[0]} vs {fa[0]}"
    # what is actually posted: the reducing side still quotes, no higher than flat; the
    # side adding to the position no closer than flat (or not at all)
    ba_f, ba_l = best(flat, 1), best(long, 1)
    assert ba_l is not None and ba_f is not None and ba_l <= ba_f, f"{where}: posted ask {ba_l} vs flat {ba_f}"
    bb_f, bb_l = best(flat, 0), best(long, 0)
    assert bb_l is None or bb_l < bb_f, f"{where}: posted bid {bb_l} vs flat {bb_f}"
    assert float(long.shift_bps[0]) > float(flat.shift_bps[0]) and float(long.shift_bps[1]) < float(flat.shift_bps[1])


def check_packed(mode: str) -> bool:
    """The Quoter's packed step; returns whether it ran as one XLA kernel."""
    bundle, qc = setup(mode)
    out = {}
    for q in (0.0, LONG):
        quoter = Quoter(bundle, qc, replay=True, metrics=False)
        out[q] = quoter.on_event(1.7e9, MID, position=q, margin_available=MARGIN)
    assert_skewed_down(out[0.0], out[LONG], qc, f"packed step, {mode}")
    return quoter.one_kernel_step


@pytest.mark.parametrize("mode", list(MODES))
def test_long_inventory_lowers_both_quotes_packed_step(mode):
    check_packed(mode)


@pytest.mark.parametrize("mode", list(MODES))
def test_long_inventory_lowers_both_quotes_pytree_and_vmapped_step(mode):
    bundle, qc = setup(mode)
    state = init(bundle, qc)
    evs = [make_event(1.7e9, MID, position=q, margin_available=MARGIN) for q in (0.0, LONG)]
    _, flat = step(state, evs[0])
    _, long = step(state, evs[1])
    assert_skewed_down(flat, long, qc, f"pytree step, {mode}")
    _, both = batch_step(stack_trees([state, state]), stack_trees(evs))
    pick = [type(flat)(*(np.asarray(x)[i] for x in both)) for i in (0, 1)]
    assert_skewed_down(pick[0], pick[1], qc, f"batch_step, {mode}")


@pytest.mark.parametrize("mode", ["kelly, alpha buckets", "half-spread under the floor"])
def test_long_inventory_lowers_both_quotes_in_mmcal_quote(mode):
    bundle, qc = setup(mode)
    rows = {q: quote_once(bundle, MID, position=q, margin_available=MARGIN, config=qc).rows for q in (0.0, LONG)}
    for side in ("bid", "ask"):
        flat = [r["price"] for r in rows[0.0] if r["side"] == side]
        long = [r["price"] for r in rows[LONG] if r["side"] == side]
        assert all(a <= b for a, b in zip(long, flat, strict=True)) and sum(long) < sum(flat), (side, long, flat)


def test_under_the_floor_the_ask_used_to_be_frozen():
    """h < min_depth_bps: the old clamp (shift ≥ min_depth − h on the whole side) left a
    long position's ask ladder exactly where the flat one was; now its deeper levels come in."""
    bundle, qc = setup("half-spread under the floor")
    _, flat = step(init(bundle, qc), make_event(1.7e9, MID, position=0.0, margin_available=MARGIN))
    _, long = step(init(bundle, qc), make_event(1.7e9, MID, position=LONG, margin_available=MARGIN))
    assert float(flat.half_spread_bps[1]) < qc.min_depth_bps  # the case: GLFT wants less than the floor
    assert float(flat.depth_bps[1, 0]) == pytest.approx(qc.min_depth_bps) == float(long.depth_bps[1, 0])
    assert float(long.price[1, 1]) < float(flat.price[1, 1]) - 1.0  # dollars at 60,000: not rounding


def test_long_inventory_lowers_both_quotes_through_the_live_runner(tmp_path):
    from mm_runtime.live import FeedEvent, LiveRunner

    path = dump_bundle(example_bundle("BTC"), tmp_path / "BTC.json")
    out = {}
    for q in (0.0, LONG):
        runner = LiveRunner(path, market_clock=True)
        runner.position = q
        out[q] = runner.on_feed_event(FeedEvent(1.7e9, MID - 1.0, MID + 1.0))
    assert_skewed_down(out[0.0], out[LONG], runner.quoter.config, "live runner")


def test_long_inventory_lowers_both_quotes_in_the_one_kernel_low_latency_step():
    """The low-latency process's step (one XLA kernel; the mode must precede JAX's
    backend, so a fresh process) for every mode."""
    code = f"""
import sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
import mm_runtime as mr
assert mr.configure_low_latency_cpu()
import test_skew_modes as t
print("one kernel", [t.check_packed(m) for m in t.MODES])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "one kernel [True" in out.stdout and "False" not in out.stdout, out.stdout
