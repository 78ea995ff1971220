"""toxic_hours: UTC hours whose adverse selection at the touch is materially worse
(Welch one-sided t tests per hour against the other hours, Holm-adjusted), and the
spread multiplier they imply.

Units: adverse moves in bps; hours UTC. Source: Welch's t test, Holm (1979). Rule:
docs/models/historical.md#toxic_hours.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from scipy import stats

from mm_runtime.vocabulary import DEPTH_BUCKETS_BPS, NS

from . import derived
from .common import TOUCH_BUCKET, HistoricalConfig, _adverse_bps, _per_sweep, check_fills


class HourStat(BaseModel):
    hour: int
    n_fills: int
    n_sweeps: int
    adverse_bps: float
    se: float
    excess_bps: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    toxic: bool = False


class ToxicHoursResult(BaseModel):
    hours: list[HourStat]
    toxic: list[int]
    toxic_adverse_bps: float | None
    normal_adverse_bps: float | None
    multiplier: float | None
    fee_bps: float
    rule: str
    notes: list[str] = Field(default_factory=list)


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values."""
    m = len(p)
    order = np.argsort(p)
    adj = np.empty(m)
    run = 0.0
    for k, i in enumerate(order):
        run = max(run, min(1.0, (m - k) * p[i]))
        adj[i] = run
    return adj


def toxic_hours(fills: pd.DataFrame, config: HistoricalConfig | None = None) -> ToxicHoursResult:
    """UTC hours with materially worse adverse selection at the touch
    (docs/models/historical.md: Welch one-sided tests per hour against the other hours, Holm-adjusted).
    ``fills``: passive fills (columns ts, side, depth_bps, markout_bps, informed, regime)."""
    cfg = config or HistoricalConfig()
    f = check_fills(fills)
    f = f[f["depth_bps"].to_numpy(dtype=float) < DEPTH_BUCKETS_BPS[1]]
    if len(f) == 0:
        raise ValueError(f"toxic_hours: no passive fill in the touch bucket {TOUCH_BUCKET} bps")
    sw = _per_sweep(f, _adverse_bps(f))
    hour = ((sw["ts"].to_numpy() // (3600 * NS)) % 24).astype(int)
    x = sw["x"].to_numpy()
    nf = sw["n_fills"].to_numpy()
    rows: list[HourStat] = []
    eligible = []
    for h in np.unique(hour):
        sel = hour == h
        k = int(sel.sum())
        se = float(x[sel].std(ddof=1) / math.sqrt(k)) if k > 1 else math.nan
        rows.append(HourStat(hour=int(h), n_fills=int(nf[sel].sum()), n_sweeps=k,
                             adverse_bps=float(x[sel].mean()), se=se))
        if k >= cfg.toxic_min_sweeps:
            eligible.append(int(h))
    rule = (f"Welch one-sided t test of each hour with >= {cfg.toxic_min_sweeps} touch sweeps against the "
            f"other such hours, Holm-adjusted p < {cfg.toxic_alpha:g} and excess >= "
            f"{cfg.toxic_min_excess_bps:g} bp")
    notes = []
    toxic: list[int] = []
    if len(eligible) < 2:
        notes.append(f"{len(eligible)} hour(s) with >= {cfg.toxic_min_sweeps} touch sweeps: nothing to compare")
    else:
        el = np.isin(hour, eligible)
        pv = []
        for h in eligible:
            a, b = x[hour == h], x[el & (hour != h)]
            res = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
            pv.append(float(res.pvalue) if np.isfinite(res.pvalue) else 1.0)
        adj = _holm(np.asarray(pv))
        by_hour = {r.hour: r for r in rows}
        for h, p, pa in zip(eligible, pv, adj):
            r = by_hour[h]
            exc = float(r.adverse_bps - x[el & (hour != h)].mean())
            is_toxic = bool(pa < cfg.toxic_alpha and exc >= cfg.toxic_min_excess_bps)
            by_hour[h] = r.model_copy(update={"excess_bps": exc, "p_value": p, "p_adjusted": float(pa),
                                              "toxic": is_toxic})
            if is_toxic:
                toxic.append(h)
        rows = [by_hour[r.hour] for r in rows]
    tox_as = norm_as = mult = None
    if len(eligible) >= 2:
        el = np.isin(hour, eligible)
        tsel = np.isin(hour, toxic)
        norm_as = float(x[el & ~tsel].mean()) if (el & ~tsel).any() else None
        tox_as = float(x[tsel].mean()) if tsel.any() else None
        if norm_as is not None:
            if tox_as is None:
                mult = 1.0
            else:
                try:
                    mult = derived.toxic_hour_multiplier(max(tox_as, 0.0), max(norm_as, 0.0), cfg.fee_bps)
                except ValueError as e:
                    notes.append(f"no multiplier: {e}")
    return ToxicHoursResult(hours=rows, toxic=sorted(toxic), toxic_adverse_bps=tox_as,
                            normal_adverse_bps=norm_as, multiplier=mult, fee_bps=cfg.fee_bps, rule=rule,
                            notes=notes)
