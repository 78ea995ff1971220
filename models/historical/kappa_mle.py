"""kappa: the exponential MLE ``n / sum(depth)`` of the depth decay of market-order
arrivals per regime x side and pooled, with the exact chi-square interval.

Units: kappa in 1/bps; ``n`` arrivals. Derivation: docs/models/historical.md#kappa.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel
from scipy import stats

from mm_runtime.vocabulary import REGIMES, SIDES

from .common import Estimate, HistoricalConfig


class KappaResult(BaseModel):
    pooled: Estimate
    cells: dict[str, dict[str, Estimate | None]]
    n_arrivals: int
    total_depth_bps: float
    min_depth_bps: float
    negative_depth: int
    note: str = "exponential MLE n / sum(depth) (1/bps); n = arrivals; exact chi-square interval"


def _kappa_estimate(n: int, S: float, level: float) -> Estimate | None:
    if n == 0 or not (S > 0):
        return None
    k = n / S
    q = (1.0 - level) / 2.0
    lo, hi = stats.chi2.ppf([q, 1.0 - q], 2 * n) / (2.0 * S)
    return Estimate(value=float(k), se=float(k / math.sqrt(n)), ci=(float(lo), float(hi)), n=float(n))


def kappa(obs, config: HistoricalConfig | None = None) -> KappaResult:
    """Exponential MLE of kappa per regime x side and pooled (docs/models/historical.md).
    ``obs``: :class:`models.kappa.KappaObs` of one asset."""
    cfg = config or HistoricalConfig()
    for attr in ("depth_bps", "arr_side", "arr_bar", "bar_regime"):
        if not hasattr(obs, attr):
            raise ValueError(f"kappa: expected a models.kappa.KappaObs, got {type(obs).__name__} "
                             f"without {attr!r}")
    if getattr(obs, "n_assets", 1) != 1:
        raise ValueError("kappa: one asset at a time (KappaObs.select(asset))")
    d0 = cfg.kappa_min_depth_bps
    D = np.asarray(obs.depth_bps, dtype=float)
    keep = D >= d0
    if not keep.any():
        raise ValueError(f"kappa: no arrival reaches depth >= {d0} bps")
    x = D[keep] - d0
    side = np.asarray(obs.arr_side)[keep].astype(int)
    reg = np.asarray(obs.bar_regime)[np.asarray(obs.arr_bar)[keep]].astype(int)
    cells: dict[str, dict[str, Estimate | None]] = {}
    for r, rn in enumerate(REGIMES):
        cells[rn] = {}
        for s, sn in enumerate(SIDES):
            sel = (reg == r) & (side == s)
            cells[rn][sn] = _kappa_estimate(int(sel.sum()), float(x[sel].sum()), cfg.ci_level)
    pooled = _kappa_estimate(int(len(x)), float(x.sum()), cfg.ci_level)
    if pooled is None:
        raise ValueError("kappa: every depth is 0 (nothing reached beyond the mid)")
    return KappaResult(pooled=pooled, cells=cells, n_arrivals=int(len(x)), total_depth_bps=float(x.sum()),
                       min_depth_bps=float(d0), negative_depth=int(getattr(obs, "meta", {}).get("negative_depth", 0)))
