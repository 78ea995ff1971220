"""alpha_touch: the informed share of the passive fills in the touch bucket, pooled
and per regime, with a sweep-clustered standard error and a Wilson interval.

Units: a share in [0, 1]; ``n`` effective fills. Source: Cameron & Miller (2015,
eq. 11), Wilson (1927). Derivation: docs/models/historical.md#alpha_touch.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel

from mm_runtime.vocabulary import DEPTH_BUCKETS_BPS, REGIMES

from .common import TOUCH_BUCKET, Estimate, HistoricalConfig, _clustered_mean, _sweep_ids, _wilson, check_fills


class AlphaTouchResult(BaseModel):
    bucket: str = TOUCH_BUCKET
    pooled: Estimate
    per_regime: dict[str, Estimate | None]
    n_fills: int
    n_sweeps: int
    informed_threshold_bps: float
    markout_horizon_s: float
    note: str = ("informed share of the touch bucket's fills; n = effective fills "
                 "(sweep-clustered); Bayesian alpha_touch is alpha at depth 0")


def _share(informed: np.ndarray, cl: np.ndarray, level: float) -> Estimate | None:
    m = len(informed)
    if m == 0:
        return None
    x = informed.astype(float)
    p, se, C = _clustered_mean(x, cl)
    if not (se > 0):  # all flags equal (or one sweep): the sweeps are the trials
        n_eff = float(C)
        se = math.sqrt(p * (1 - p) / n_eff)
    else:
        n_eff = min(float(m), p * (1 - p) / se**2) if 0 < p < 1 else float(C)
    return Estimate(value=p, se=float(se), ci=_wilson(p, n_eff, level), n=float(n_eff))


def alpha_touch(fills: pd.DataFrame, config: HistoricalConfig | None = None) -> AlphaTouchResult:
    """Informed share of the touch bucket's passive fills, pooled and per regime
    (docs/models/historical.md). ``fills``: :func:`models.data.observations.passive_fills`
    rows (columns ts, side, depth_bps, markout_bps, informed, regime)."""
    cfg = config or HistoricalConfig()
    f = check_fills(fills)
    touch = f["depth_bps"].to_numpy(dtype=float) < DEPTH_BUCKETS_BPS[1]
    f = f[touch]
    if len(f) == 0:
        raise ValueError("alpha_touch: no passive fill in the touch bucket "
                         f"{TOUCH_BUCKET} bps (the depth grid has no quote there, or nothing traded through)")
    cl = _sweep_ids(f["ts"].to_numpy(), f["side"].to_numpy())
    inf = f["informed"].to_numpy(dtype=bool)
    reg = f["regime"].to_numpy()
    pooled = _share(inf, cl, cfg.ci_level)
    per = {rn: _share(inf[reg == r], cl[reg == r], cfg.ci_level) for r, rn in enumerate(REGIMES)}
    oc = cfg.observation
    return AlphaTouchResult(pooled=pooled, per_regime=per, n_fills=int(len(f)),
                            n_sweeps=int(len(np.unique(cl))),
                            informed_threshold_bps=float(fills.attrs.get("informed_threshold_bps",
                                                                         oc.informed_threshold_bps)),
                            markout_horizon_s=float(fills.attrs.get("markout_horizon_s", oc.markout_horizon_s)))
