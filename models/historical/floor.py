"""spread_floor: mean PnL after fees per depth bucket, the first profitable bucket, and
the derived floor fee + adverse selection + latency slippage (per window: the
registry's evidence).

Units: bps of the mid per fill. Rule: docs/models/historical.md#spread_floor.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from mm_runtime.vocabulary import DEPTH_BUCKET_LABELS, DEPTH_BUCKETS_BPS, NS
from models.data import observations as ob

from . import derived
from .common import (
    Estimate,
    HistoricalConfig,
    _adverse_bps,
    _clustered_mean,
    _normal_ci,
    _per_sweep,
    _sweep_ids,
    check_fills,
)


class BucketPnL(BaseModel):
    bucket: str
    lo_bps: float
    hi_bps: float
    n_fills: int
    n_sweeps: int
    pnl: Estimate | None


class SpreadFloorResult(BaseModel):
    buckets: list[BucketPnL]
    floor_bucket: str | None
    floor_bps: float | None
    significant: bool
    fee_bps: float
    adverse_selection_bps: float | None
    latency_slippage_bps: float
    derived_floor_bps: float | None
    window_floors_bps: list[float]
    window_s: float
    notes: list[str] = Field(default_factory=list)


def spread_floor(fills: pd.DataFrame, config: HistoricalConfig | None = None,
                 sigma_bps: float | None = None) -> SpreadFloorResult:
    """Mean PnL after fees per depth bucket, the first profitable bucket, and the
    derived floor fee + adverse selection + latency slippage (docs/models/historical.md).
    ``sigma_bps``: the market's volatility (bps/sqrt(s)) for the slippage term
    (needed only when ``latency_s`` > 0)."""
    cfg = config or HistoricalConfig()
    f = check_fills(fills)
    if len(f) == 0:
        raise ValueError("spread_floor: no passive fill")
    fee = cfg.fee_bps
    pnl = -f["markout_bps"].to_numpy(dtype=float) - fee
    cl = _sweep_ids(f["ts"].to_numpy(), f["side"].to_numpy())
    b = ob.depth_bucket(f["depth_bps"].to_numpy())
    edges = list(DEPTH_BUCKETS_BPS) + [math.inf]
    buckets = []
    floor_bucket = floor_bps = None
    significant = False
    for i, lab in enumerate(DEPTH_BUCKET_LABELS):
        sel = b == i
        m, se, C = _clustered_mean(pnl[sel], cl[sel])
        est = None
        if sel.any() and math.isfinite(se):
            est = Estimate(value=m, se=se, ci=_normal_ci(m, se, cfg.ci_level), n=float(C))
        buckets.append(BucketPnL(bucket=lab, lo_bps=edges[i], hi_bps=edges[i + 1], n_fills=int(sel.sum()),
                                 n_sweeps=int(C), pnl=est))
        if floor_bucket is None and est is not None and C >= cfg.spread_floor_min_sweeps and m > 0:
            floor_bucket, floor_bps, significant = lab, float(edges[i]), bool(est.ci[0] > 0)
    notes = []
    if floor_bucket is None:
        notes.append(f"no bucket with >= {cfg.spread_floor_min_sweeps} sweeps has a positive mean PnL "
                     f"after a {fee:g} bp fee")
    slip = 0.0
    if cfg.latency_s > 0:
        if sigma_bps is None or not math.isfinite(sigma_bps):
            raise ValueError("spread_floor: latency_s > 0 needs sigma_bps")
        slip = derived.latency_slippage_bps(sigma_bps, cfg.latency_s, cfg.slippage_z)
    touch = b == 0
    as_mean = derived_floor = None
    windows: list[float] = []
    if touch.any():
        ft = f[touch]
        sw = _per_sweep(ft, _adverse_bps(ft))
        as_mean = float(sw["x"].mean())
        derived_floor = derived.spread_floor_bps(fee, max(as_mean, 0.0), slip)
        win = (sw["ts"].to_numpy() - int(f["ts"].min())) // int(round(cfg.spread_floor_window_s * NS))
        for w in np.unique(win):
            xs = sw["x"].to_numpy()[win == w]
            if len(xs) >= cfg.spread_floor_min_sweeps:
                windows.append(derived.spread_floor_bps(fee, max(float(xs.mean()), 0.0), slip))
    else:
        notes.append("no touch fill: no adverse selection, no derived floor")
    return SpreadFloorResult(buckets=buckets, floor_bucket=floor_bucket, floor_bps=floor_bps,
                             significant=significant, fee_bps=fee, adverse_selection_bps=as_mean,
                             latency_slippage_bps=float(slip), derived_floor_bps=derived_floor,
                             window_floors_bps=windows, window_s=cfg.spread_floor_window_s, notes=notes)
