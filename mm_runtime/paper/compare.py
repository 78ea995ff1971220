"""A/B paper trading: the same replay for several quoter configurations, side by side.

Configurations (``CONFIGS``):

``static``
    The original system's constants, no learning: α(δ) = 0.15·exp(−δ/10 bp)
    (``kelly_alpha_touch``, ``kelly_alpha_decay_bps``), Kelly fraction 0.25, and κ =
    2000 per unit of price fraction = 0.2 per bp in every regime and side (1 bp =
    1e-4 of the price, so κ_bp = κ_frac · 1e-4), and the whole quoted depth as spread
    capture (c = 1: SC = δ − fee, as the original system assumed).  The rest (arrival rates, σ per
    regime, the HMM) comes from the same bundle as ``learned``, so the comparison
    isolates α, κ and online learning. The depth ladder, as the original system had.
``learned``
    The calibrated bundle's trade-through model (α per regime × depth bucket, κ and A
    per regime × side, the depth ladder) plus the online conjugate updates from the
    replayed fills and trades; a fills block in the bundle is not used.
``bundle``
    ``learned`` without online updates (separates the offline fit from the online
    learning).
``queue``
    ``learned`` with the bundle's fills model: the ladder on the tick grid with
    queue-aware fill probabilities (:mod:`mm_runtime.tick_ladder`). Without a fills
    block (or a tick size) in the bundle it is ``learned``.

The paired comparison splits the replay into ``block_s`` blocks and compares each
configuration with the first (the baseline) block by block: d_b = PnL_b(config) −
PnL_b(baseline), with mean d̄ and a Student-t 95 % interval d̄ ± t₀.₉₇₅,ₙ₋₁·s/√n.
Blocks share the market path, so the pairing removes most of the market's own
variance; the interval assumes block differences are roughly independent
(inventory carried across a block edge makes neighbouring blocks weakly dependent).
The default ``block_s`` gives at least ``MIN_BLOCKS`` (10) blocks; with fewer, the
comparison carries a ``note`` saying they are too few to mean anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..bundle import PriorBundle, with_checksum
from ..vocabulary import REGIMES, SIDES
from ..config import QuoterConfig
from ..conjugate import student_t_ppf
from .replay import ReplayConfig, ReplayData, ReplayResult, block_pnl, replay
from .results import MIN_BLOCKS

__all__ = ["CONFIGS", "MIN_BLOCKS", "blocks_note", "STATIC_KAPPA_PER_BP", "config_for", "run_ab", "run_configs", "paired", "replay_verdict", "ab_table"]

CONFIGS = ("static", "learned", "bundle", "queue")
STATIC_KAPPA_PER_BP = 2000.0 * 1e-4
"""The original system's κ prior, 2000 per unit of price fraction, in 1/bp."""
STATIC_ALPHA_TOUCH = 0.15
STATIC_ALPHA_DECAY_BPS = 10.0
STATIC_KELLY_FRACTION = 0.25
STATIC_SPREAD_CAPTURE = 1.0


def static_bundle(bundle: PriorBundle) -> PriorBundle:
    """``bundle`` with κ set to the original constant (0.2/bp) in every cell."""
    doc = bundle.model_dump(mode="json")
    shape = 10.0
    doc["params"]["kappa"] = {r: {s: {"family": "gamma", "shape": shape, "rate": shape / STATIC_KAPPA_PER_BP}
                                  for s in SIDES} for r in REGIMES}
    doc["model_version"] = f"{bundle.model_version}+static"
    doc["checksum"] = ""
    return with_checksum(PriorBundle.model_validate(doc))


def config_for(name: str, bundle: PriorBundle, base: QuoterConfig | None = None) -> tuple[PriorBundle, QuoterConfig]:
    """The (bundle, quoter config) of a named configuration."""
    base = base or QuoterConfig()
    if name == "static":
        qc = base.model_copy(update={"learn": False, "alpha_model": "parametric",
                                     "kelly_alpha_touch": STATIC_ALPHA_TOUCH,
                                     "kelly_alpha_decay_bps": STATIC_ALPHA_DECAY_BPS,
                                     "kelly_alpha_floor": 0.0,
                                     "kelly_fraction": STATIC_KELLY_FRACTION,
                                     "spread_capture": STATIC_SPREAD_CAPTURE, "use_fills_model": False})
        return static_bundle(bundle), qc
    if name == "learned":
        return bundle, base.model_copy(update={"learn": True, "alpha_model": "buckets", "use_fills_model": False})
    if name == "bundle":
        return bundle, base.model_copy(update={"learn": False, "alpha_model": "buckets", "use_fills_model": False})
    if name == "queue":
        return bundle, base.model_copy(update={"learn": True, "alpha_model": "buckets", "use_fills_model": True})
    raise ValueError(f"unknown configuration {name!r}; choose from {', '.join(CONFIGS)}")


def blocks_note(blocks: int, block_s: float) -> str | None:
    """The warning of a block comparison with fewer than ``MIN_BLOCKS`` blocks."""
    if blocks >= MIN_BLOCKS:
        return None
    return (f"only {blocks} blocks of {block_s:g} s: too few for the comparison to mean anything "
            f"(at least {MIN_BLOCKS}); replay a longer window or use shorter blocks")


def paired(a: ReplayResult, b: ReplayResult, block_s: float, level: float = 0.95) -> dict:
    """Block-by-block PnL difference ``b − a`` with a Student-t interval; ``note``
    says when the blocks are too few (:func:`blocks_note`)."""
    da, db = block_pnl(a, block_s), block_pnl(b, block_s)
    n = min(da.size, db.size)
    d = db[:n] - da[:n]
    out = {"blocks": int(n), "block_s": block_s, "mean_diff": None, "sd_diff": None,
           "ci_low": None, "ci_high": None, "level": level, "wins": int(np.sum(d > 0)),
           "note": blocks_note(int(n), block_s)}
    if n >= 2:
        mean, sd = float(d.mean()), float(d.std(ddof=1))
        t = float(student_t_ppf(0.5 + level / 2, n - 1))
        half = t * sd / math.sqrt(n)
        out.update(mean_diff=mean, sd_diff=sd, ci_low=mean - half, ci_high=mean + half)
    return out


def run_configs(
    data: ReplayData,
    setups: dict[str, tuple[PriorBundle, QuoterConfig]],
    replay_config: ReplayConfig | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> dict:
    """Replay ``data`` once per named (bundle, quoter config); the first name is the
    baseline of the paired comparison.  Returns the results, the table and the paired
    comparison of every other setup against the baseline."""
    if not setups:
        raise ValueError("configs: give at least one configuration")
    rc = replay_config or ReplayConfig()
    results: dict[str, ReplayResult] = {}
    for name, (b, qc) in setups.items():
        cb = (lambda frac, c=name: progress(c, frac)) if progress is not None else None
        results[name] = replay(data, b, qc, rc, name=name, progress=cb)
    names = list(setups)
    block_s = results[names[0]].config["replay"]["block_s"]  # resolved (ReplayConfig.block_s None: auto)
    comparisons = {c: paired(results[names[0]], results[c], block_s) for c in names[1:]}
    return {"asset": data.asset, "source": data.source, "baseline": names[0],
            "results": results, "table": ab_table(results), "paired": comparisons}


def run_ab(
    data: ReplayData,
    bundle: PriorBundle,
    configs: tuple[str, ...] = ("static", "learned"),
    replay_config: ReplayConfig | None = None,
    base: QuoterConfig | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> dict:
    """:func:`run_configs` over the named configurations (``CONFIGS``) of one bundle."""
    if not configs:
        raise ValueError("configs: give at least one configuration")
    for c in configs:
        if c not in CONFIGS:
            raise ValueError(f"configs: unknown configuration {c!r}; choose from {', '.join(CONFIGS)}")
    return run_configs(data, {c: config_for(c, bundle, base) for c in configs}, replay_config, progress)


def replay_verdict(paired_doc: dict | None) -> tuple[bool, str]:
    """(veto, reason) of a challenger's paired replay comparison: veto when the 95 %
    interval of the mean block PnL difference (challenger − baseline) lies below 0."""
    if not paired_doc or paired_doc.get("ci_high") is None:
        return False, "replay: too few blocks for an interval"
    lo, hi, m = paired_doc["ci_low"], paired_doc["ci_high"], paired_doc["mean_diff"]
    text = f"mean block PnL difference {m:+.4g} (95% [{lo:+.4g}, {hi:+.4g}], {paired_doc['blocks']} blocks)"
    if paired_doc.get("note"):
        text += f"; {paired_doc['note']}"
    if hi < 0:
        return True, f"challenger worse in replay: {text}"
    return False, f"replay: {text}"


def _trip_text(ks: dict | None) -> str | None:
    """The kill switch's trips of a replay in words (None: it never tripped)."""
    if not ks or not ks.get("trips"):
        return None
    parts = [f"{t['reason']} at {t['at_utc']} ({t['value']:.4g} > {t['limit']:.4g} {t['unit']})" for t in ks["trips"]]
    state = "tripped" if ks.get("triggered") else f"reset {len(ks.get('resets', []))}x"
    return f"{'; '.join(parts)}; {state} at the end"


def ab_table(results: dict[str, ReplayResult]) -> list[dict]:
    """One row per configuration: the headline numbers of its summary."""
    rows = []
    for name, r in results.items():
        s = r.summary
        mk = next((v for k, v in s.items() if k.startswith("mean_markout_")), None)
        rows.append({
            "config": name, "pnl": s["pnl"], "sharpe_per_day": s["sharpe_per_day"],
            "max_drawdown": s["max_drawdown"], "fills": s["fills"], "mean_markout_bps": mk,
            "inventory_sd": s["inventory_sd"], "inventory_max_abs": s["inventory_max_abs"],
            "fees": s["fees"], "volume_notional": s["volume_notional"], "quoted_share": s["quoted_share"],
            "not_quoting": s.get("quoting_note"),
            "kill_switch": _trip_text(s.get("kill_switch")),
        })
    return rows
