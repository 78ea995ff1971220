"""The functional core (jit once, vmap, safety) and the Quoter (reload, logs)."""

from __future__ import annotations

import io
import json
import logging
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mm_runtime as mr
from mm_runtime.quoter import (
    REASON_MARKET,
    REASON_OK,
    REASON_SIGMA,
    REASON_STALE,
    TRACE_COUNTS,
    Quoter,
    batch_step,
    init,
    make_event,
    quote_once,
    stack_trees,
    step,
)

MID = 30_000.0


def market_path(n, seed=0, mid=MID, dt=0.2):
    """A small synthetic stream: Brownian mid, some trades and fills."""
    rng = np.random.default_rng(seed)
    out, t = [], 1_700_000_000.0
    for _ in range(n):
        t += dt
        mid *= math.exp(rng.normal() * 0.8e-4 * math.sqrt(dt))
        kw = {}
        if rng.random() < 0.3:
            side = 1.0 if rng.random() < 0.5 else -1.0
            kw.update(trade_price=mid * (1 + side * rng.exponential(4.0) * 1e-4), trade_side=side)
        if rng.random() < 0.1:
            side = 1.0 if rng.random() < 0.5 else -1.0
            kw.update(fill_price=mid * (1 - side * 3e-4), fill_side=side)
        out.append(dict(ts=t, mid=mid, position=float(rng.normal()), margin_available=5e4, **kw))
    return out


def as_event(d):
    return make_event(d["ts"], d["mid"], **{k: v for k, v in d.items() if k not in ("ts", "mid")})


# ----------------------------------------------------------------------------- jit / vmap
def test_step_is_traced_once():
    state = init(mr.example_bundle())
    events = [as_event(d) for d in market_path(40)]
    events += [make_event(math.nan, MID), make_event(1.0, math.inf, sigma_bps=math.nan)]
    state, q = step(state, events[0])
    traces, cached = TRACE_COUNTS["step"], step._cache_size()
    for e in events[1:]:
        state, q = step(state, e)
    jax.block_until_ready(q)
    assert TRACE_COUNTS["step"] == traces  # no retracing across calls
    assert step._cache_size() == cached


def test_vmap_over_assets_matches_single_steps():
    bundles = [mr.example_bundle(a) for a in ("A", "B", "C")]
    configs = [mr.QuoterConfig(max_position=m, fee_bps=f) for m, f in ((10, 0.0), (2, 1.0), (50, -0.5))]
    states = [init(b, c) for b, c in zip(bundles, configs, strict=True)]
    paths = [market_path(30, seed=s, mid=m) for s, m in ((1, 100.0), (2, 30_000.0), (3, 2.5))]
    batched = stack_trees(states)
    singles = list(states)
    for i in range(30):
        evs = [as_event(p[i]) for p in paths]
        batched, qb = batch_step(batched, stack_trees(evs))
        for a in range(3):
            singles[a], qa = step(singles[a], evs[a])
            for name in ("price", "size", "depth_bps", "regime_probs", "kelly_fraction"):
                np.testing.assert_allclose(
                    np.asarray(getattr(qb, name))[a], np.asarray(getattr(qa, name)), rtol=1e-9, atol=1e-12
                )
    assert np.asarray(qb.price).shape == (3, 2, 5)


def test_packed_path_matches_the_pytree_step():
    b = mr.example_bundle()
    quoter = Quoter(b, replay=True, metrics=False)
    state = init(b)
    for d in market_path(60, seed=4):
        q1 = quoter.on_event(
            d["ts"], d["mid"], position=d["position"], margin_available=d["margin_available"],
            trade=(d["trade_price"], d["trade_side"]) if "trade_price" in d else None,
            fill=(d["fill_price"], d["fill_side"]) if "fill_price" in d else None,
        )
        state, q2 = step(state, as_event(d))
        for name, x in q1._asdict().items():
            np.testing.assert_allclose(np.asarray(x, dtype=float), np.asarray(getattr(q2, name), dtype=float),
                                       rtol=1e-12, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(np.asarray(quoter.state.est.evidence), np.asarray(state.est.evidence), rtol=1e-12)


# ----------------------------------------------------------------------------- safety
def test_valid_quotes_on_a_normal_event():
    state = init(mr.example_bundle())
    state, q = step(state, make_event(1.0, MID, margin_available=1e5))
    assert bool(q.valid) and int(q.reason) == REASON_OK
    assert np.all(np.asarray(q.price[0]) < MID) and np.all(np.asarray(q.price[1]) > MID)
    assert float(np.sum(q.size)) > 0


def _with_capture(c):
    doc = mr.example_bundle().model_dump(mode="json")
    doc["params"]["spread_capture"] = {"family": "normal", "mu": c, "sigma": 0.02}
    doc["checksum"] = ""
    return mr.bundle.with_checksum(mr.PriorBundle.model_validate(doc))


@pytest.mark.parametrize(("bundle_c", "config_c", "used"), [(None, None, 1.0), (0.3, None, 0.3), (0.3, 1.0, 1.0)])
def test_spread_capture_from_bundle_or_config(bundle_c, config_c, used):
    """c comes from the config's override, else the bundle, else 1; the quotes' edge
    is (1-α)(c·δ - fee) - α(AS + fee)."""
    b = mr.example_bundle() if bundle_c is None else _with_capture(bundle_c)
    cfg = mr.QuoterConfig(spread_capture=config_c, fee_bps=0.5)
    state = init(b, cfg)
    assert float(state.cfg.spread_capture) == used
    _, q = step(state, make_event(1.0, MID, margin_available=1e5))
    a, d = np.asarray(q.alpha), np.asarray(q.depth_bps)
    AS = b.params.adverse_move_bps.mean()
    np.testing.assert_allclose(q.edge_bps, (1 - a) * (used * d - 0.5) - a * (AS + 0.5), rtol=1e-10)


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        (dict(mid=math.nan), REASON_MARKET),
        (dict(mid=-1.0), REASON_MARKET),
        (dict(mid=0.0, bid=MID + 1, ask=MID - 1), REASON_MARKET),  # crossed book
        (dict(sigma_bps=math.inf), REASON_SIGMA),
        (dict(now=100.0), REASON_STALE),
    ],
)
def test_bad_input_gives_no_quotes(kw, reason):
    state = init(mr.example_bundle())
    args = dict(mid=MID, margin_available=1e5)
    args.update(kw)
    mid = args.pop("mid")
    state, q = step(state, make_event(1.0, mid, **args))
    assert not bool(q.valid)
    assert int(q.reason) == reason
    assert np.all(np.asarray(q.size) == 0) and np.all(np.asarray(q.price) == 0)


def test_mid_from_the_book():
    state = init(mr.example_bundle())
    _, q = step(state, make_event(1.0, 0.0, bid=99.0, ask=101.0, margin_available=1e4))
    assert bool(q.valid) and float(q.mid) == 100.0


FIELD = st.sampled_from(["ts", "now", "mid", "bid", "ask", "sigma_bps", "position", "margin_available",
                         "trade_price", "fill_price", "fill_depth_bps"])
BAD = st.sampled_from([math.nan, math.inf, -math.inf])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(FIELD, BAD), min_size=1, max_size=3), st.integers(0, 5))
def test_no_nan_ever_reaches_a_quote(bad_fields, warmup):
    state = init(mr.example_bundle())
    for d in market_path(warmup, seed=warmup):
        state, _ = step(state, as_event(d))
    fields = dict(ts=2e9, now=2e9, mid=MID, bid=0.0, ask=0.0, sigma_bps=0.0, position=0.0, margin_available=1e5,
                  trade_price=MID, trade_side=1.0, fill_price=MID, fill_side=1.0, fill_depth_bps=-1.0)
    for name, value in bad_fields:
        fields[name] = value
    state, q = step(state, make_event(**fields))
    for name, x in q._asdict().items():
        assert np.all(np.isfinite(np.asarray(x, dtype=float))), name
    assert not bool(q.valid)
    assert np.all(np.asarray(q.size) == 0)
    # the state stays finite, and the next good event quotes again
    for x in jax.tree.leaves(state):
        assert np.all(np.isfinite(np.asarray(x, dtype=float)))
    _, q = step(state, make_event(2e9 + 1, MID, margin_available=1e5))
    assert bool(q.valid)


# ----------------------------------------------------------------------------- Quoter
def test_quoter_hot_reload_and_refusal(tmp_path):
    path = tmp_path / "live.json"
    mr.dump_bundle(mr.example_bundle(), path)
    quoter = Quoter(path, mr.QuoterConfig(reload_check_interval_s=0.0), replay=True)
    for d in market_path(20):
        quoter.on_event(d["ts"], d["mid"], margin_available=1e4,
                        trade=(d["trade_price"], d["trade_side"]) if "trade_price" in d else None)
    t = d["ts"]
    evidence = np.asarray(quoter.state.est.evidence).copy()
    assert evidence.sum() > 0

    new = mr.example_bundle().model_copy(update={"model_version": "v2"})
    mr.dump_bundle(new, path)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    quoter.on_event(t, MID, margin_available=1e4)  # same ts: nothing forgotten
    assert quoter.bundle.model_version == "v2"
    np.testing.assert_allclose(np.asarray(quoter.state.est.evidence), evidence, rtol=1e-12)  # learning kept

    path.write_text('{"schema_version": 1, "broken')  # a bad deploy
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 2 * 10**9))
    q = quoter.on_event(t + 0.1, MID, margin_available=1e4)
    assert quoter.bundle.model_version == "v2" and bool(q.valid)
    assert quoter.reload() is False
    failures = quoter.runtime_metrics.registry.get_sample_value(
        "mm_bundle_reload_failures_total", {"asset": "SYN"}
    )
    assert failures == 2.0


def test_reload_refuses_another_asset(tmp_path):
    quoter = Quoter(mr.example_bundle("BTC"), metrics=False)
    p = mr.dump_bundle(mr.example_bundle("ETH"), tmp_path / "eth.json")
    assert quoter.reload(p) is False
    assert quoter.bundle.asset == "BTC"


def test_quoter_staleness_uses_the_wall_clock():
    clock = [1000.0]
    quoter = Quoter(mr.example_bundle(), mr.QuoterConfig(max_age_s=2.0), metrics=False, clock=lambda: clock[0])
    assert bool(quoter.on_event(999.0, MID, margin_available=1e4).valid)
    clock[0] = 1005.0
    q = quoter.on_event(1000.0, MID, margin_available=1e4)
    assert not bool(q.valid) and int(q.reason) == REASON_STALE


def test_structured_logs():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(mr.JsonFormatter())
    logger = logging.getLogger("test.quoter.json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    quoter = Quoter(mr.example_bundle(), replay=True, metrics=False, logger=logger)
    quoter.on_event(1.0, MID, margin_available=1e4)
    quoter.on_event(2.0, math.nan, margin_available=1e4)  # status change -> a new line
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert len(lines) >= 2
    first = lines[0]
    assert first["msg"] == "quote status" and first["level"] == "INFO"
    for key in ("binding", "margin_used", "kelly_fraction", "regime", "asset"):
        assert key in first
    assert first["binding"]["bid"] in ("none", "margin", "position")
    assert lines[-1]["valid"] is False


def test_quote_once_rows(tmp_path):
    path = mr.dump_bundle(mr.example_bundle(), tmp_path / "b.json")
    report = quote_once(path, mid=MID, sigma_bps=0.8, position=1.0, margin_available=2e4)
    assert len(report.rows) == 10
    assert set(report.rows[0]) == {"side", "level", "depth_bps", "price", "size", "p_fill", "alpha", "kelly_f",
                                   "edge_bps"}
    assert report.summary["valid"] and report.summary["sigma_bps"] == 0.8
    bids = [r for r in report.rows if r["side"] == "bid"]
    assert all(r["price"] < MID for r in bids)
    json.dumps(report.to_dict())  # serializable for --json
    bad = quote_once(mr.example_bundle(), mid=math.nan)
    assert not bad.summary["valid"] and all(r["size"] == 0 and r["price"] == 0 for r in bad.rows)


def test_low_latency_cpu_is_refused_once_the_backend_exists():
    jax.devices()
    assert mr.configure_low_latency_cpu() is False


@pytest.mark.parametrize(("xla_flags", "one_kernel"), [
    (None, True),
    # a threshold the step's loop exceeds: PackedStep sees that XLA did not make it one
    # kernel and falls back to the multi-kernel program
    ("--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=64", False),
])
def test_low_latency_mode_runs_the_packed_step_as_one_kernel(xla_flags, one_kernel):
    """In low-latency mode (a fresh process: the mode must precede JAX's backend) the
    Quoter's step is one XLA kernel (mm_runtime.perf), or the multi-kernel program
    when XLA did not hoist the loop; either gives the pytree step's quotes and
    estimator state on a stream whose markouts come due."""
    code = f"""
import sys
sys.path.insert(0, {str(os.path.dirname(__file__))!r})
import mm_runtime as mr
assert mr.configure_low_latency_cpu()
import numpy as np
import test_quoter as t
from mm_runtime.quoter import Quoter, init, step
b = mr.example_bundle()
quoter, state = Quoter(b, replay=True, metrics=False), init(b)
assert quoter.one_kernel_step is {one_kernel}
for d in t.market_path(300, seed=4, dt=0.5):
    q1 = quoter.on_event(
        d["ts"], d["mid"], position=d["position"], margin_available=d["margin_available"],
        trade=(d["trade_price"], d["trade_side"]) if "trade_price" in d else None,
        fill=(d["fill_price"], d["fill_side"]) if "fill_price" in d else None,
    )
    state, q2 = step(state, t.as_event(d))
    for name, x in q1._asdict().items():
        np.testing.assert_allclose(np.asarray(x, dtype=float), np.asarray(getattr(q2, name), dtype=float),
                                   rtol=1e-12, atol=1e-12, err_msg=name)
ev = np.asarray(quoter.state.est.evidence)
np.testing.assert_allclose(ev, np.asarray(state.est.evidence), rtol=1e-12)
B = quoter.state.prior.bucket_edges.shape[0]
print("alpha evidence", float(ev[:, : 2 * B].sum()))
"""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if xla_flags:
        env["XLA_FLAGS"] = xla_flags
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert float(out.stdout.split("alpha evidence")[1]) > 0  # markouts resolved on this stream


def test_packed_quotes_have_the_pytree_steps_types():
    """PackedStep.quotes decodes the float vector back to the Quotes of the pytree
    step: the same fields, and per field the same shape and dtype kind (bool, int,
    float; scalars as numpy scalars)."""
    from mm_runtime.quoter import PackedStep

    state = init(mr.example_bundle())
    packed = PackedStep(state)
    vec = packed.pack(state)
    for d in market_path(20, seed=3):
        vec = packed(vec, packed.event_vector(as_event(d)))
        state, ref = step(state, as_event(d))
    q = packed.quotes(vec)
    assert q._fields == ref._fields
    for name, a, b in zip(q._fields, q, ref, strict=True):
        assert isinstance(a, np.generic | np.ndarray), name
        assert np.shape(a) == np.shape(b) and np.asarray(a).dtype.kind == np.asarray(b).dtype.kind, name
        np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-12, atol=1e-12,
                                   err_msg=name)
