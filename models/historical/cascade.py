"""cascade_oi_threshold: the open-interest drop above which large mid moves follow,
by threshold regression of the next move on the drop from the recent peak.

Units: the drop a fraction of open interest; moves in bps; times in s. Source: Hansen
(2000, Econometrica 68(3), Theorem 2). Derivation and measurements:
docs/models/historical.md#cascade_oi_threshold.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from mm_runtime.vocabulary import NS
from models.data.tables import Market

from .common import Estimate, HistoricalConfig, _require_columns, _z


class CascadeResult(BaseModel):
    threshold: Estimate
    identified: bool
    p_value: float
    sup_f: float
    n_samples: int
    n_above: int
    mean_move_below_bps: float
    mean_move_above_bps: float
    window_s: float
    horizon_s: float
    notes: list[str] = Field(default_factory=list)


def _split_search(d_sorted: np.ndarray, y_sorted: np.ndarray, lo_ok: np.ndarray):
    """SSR of the two-mean fit for every split j (lower group = first j samples) and
    the best admissible split (``lo_ok``: boolean per j)."""
    n = len(y_sorted)
    cs, cs2 = np.cumsum(y_sorted), np.cumsum(y_sorted**2)
    j = np.arange(1, n)
    s1, q1 = cs[:-1], cs2[:-1]
    s2, q2 = cs[-1] - s1, cs2[-1] - q1
    ssr = (q1 - s1**2 / j) + (q2 - s2**2 / (n - j))
    ssr = np.where(lo_ok, ssr, np.inf)
    return ssr, int(np.argmin(ssr))


def cascade_oi_threshold(market: Market, config: HistoricalConfig | None = None) -> CascadeResult | None:
    """The open-interest drop above which large mid moves follow: Hansen's (2000)
    threshold regression of the next ``cascade_horizon_s`` absolute move on the drop
    from the ``cascade_window_s`` peak (docs/models/historical.md). None when the market has
    no open interest."""
    cfg = config or HistoricalConfig()
    oi = market.open_interest
    if oi is None:
        return None
    _require_columns(oi, ("ts", "oi"), "open_interest")
    if len(oi) < 2 * cfg.cascade_min_group:
        raise ValueError(f"cascade_oi_threshold: {len(oi)} open-interest snapshots, fewer than "
                         f"2 x cascade_min_group = {2 * cfg.cascade_min_group}")
    ts = oi["ts"].to_numpy(np.int64)
    v = oi["oi"].to_numpy(dtype=float)
    W, H = cfg.cascade_window_s, cfg.cascade_horizon_s
    peak = pd.Series(v, index=pd.to_datetime(ts)).rolling(pd.Timedelta(seconds=W)).max().to_numpy()
    drop = np.where(peak > 0, 1.0 - v / np.where(peak > 0, peak, 1.0), 0.0)
    qts = market.quotes["ts"].to_numpy(np.int64)
    mid = 0.5 * (market.quotes["bid"].to_numpy(dtype=float) + market.quotes["ask"].to_numpy(dtype=float))
    h_ns = int(round(H * NS))
    i0 = np.searchsorted(qts, ts, side="right") - 1
    i1 = np.searchsorted(qts, ts + h_ns, side="right") - 1
    ok = (i0 >= 0) & (ts + h_ns <= market.end_ns)
    move = np.abs(np.log(mid[i1[ok]] / mid[i0[ok]])) * 1e4
    d = drop[ok]
    n = len(d)
    g = cfg.cascade_min_group
    if n < 2 * g:
        raise ValueError(f"cascade_oi_threshold: {n} usable snapshots (with a mid before and a horizon "
                         f"inside the data), fewer than {2 * g}")
    order = np.argsort(d, kind="stable")
    ds, ys = d[order], move[order]
    j = np.arange(1, n)
    lo_ok = (j >= g) & (n - j >= g) & (ds[1:] > ds[:-1])  # a split between two distinct drops
    if not lo_ok.any():
        raise ValueError("cascade_oi_threshold: no admissible split (too few distinct drops)")
    ssr, k = _split_search(ds, ys, lo_ok)
    ssr0 = float(((ys - ys.mean()) ** 2).sum())
    ssr_hat = float(ssr[k])
    c_hat = 0.5 * (ds[k] + ds[k + 1])
    sup_f = (ssr0 - ssr_hat) / (ssr_hat / (n - 2))
    # significance: circular shifts of the moves against the drops
    dt = float(np.median(np.diff(ts))) / NS if n > 1 else 1.0
    min_shift = int(math.ceil(10 * max(W, H) / max(dt, 1e-9)))
    rng = np.random.default_rng(cfg.seed)
    exceed, done = 0, 0
    if n > 2 * min_shift:
        for s in rng.integers(min_shift, n - min_shift, cfg.cascade_shifts):
            yy = np.roll(move, int(s))[order]
            ss, kk = _split_search(ds, yy, lo_ok)
            f_s = (float(((yy - yy.mean()) ** 2).sum()) - ss[kk]) / (ss[kk] / (n - 2))
            exceed += f_s >= sup_f
            done += 1
    p = (1 + exceed) / (1 + done) if done else math.nan
    # Hansen's LR confidence set, on the number of non-overlapping windows
    n_eff = max(2.0, n * dt / max(W, H))
    xi = -2.0 * math.log(1.0 - math.sqrt(cfg.ci_level))
    lr = n_eff * (ssr - ssr_hat) / ssr_hat
    inside = np.flatnonzero(lr <= xi)
    mids = 0.5 * (ds[inside] + ds[inside + 1])
    lo, hi = float(mids.min()), float(mids.max())
    z = _z(cfg.ci_level)
    se = max((hi - lo) / (2 * z), 0.5 * float(ds[k + 1] - ds[k]) / z)
    above = d >= c_hat
    notes = ["interval: Hansen's LR set on n_eff non-overlapping windows, homoskedastic errors assumed "
             "(indicative)"]
    if done == 0:
        notes.append("series too short for the circular-shift test")
    return CascadeResult(threshold=Estimate(value=float(c_hat), se=float(se), ci=(lo, hi), n=float(n_eff)),
                         identified=bool(done and p < cfg.cascade_alpha), p_value=float(p), sup_f=float(sup_f),
                         n_samples=int(n), n_above=int(above.sum()),
                         mean_move_below_bps=float(move[~above].mean()), mean_move_above_bps=float(move[above].mean()),
                         window_s=W, horizon_s=H, notes=notes)
