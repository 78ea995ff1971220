"""Recording gaps (DESIGN.md section 3): stretches with no quote and no trade update for
longer than ``max(gap_factor x the 99th percentile of the time between updates,
gap_min_seconds)`` (:class:`~mm_runtime.observation.ObservationConfig`), which the observations exclude
from the volatility bars and from every exposure (the Hawkes compensator, the arrival
rates, the passive quotes, the queue orders). A recorder outage otherwise reads as a
quiet market: on the Hyperliquid ETH recording of 2025-12-10 its 236 s became the "low"
regime.
Measurements: docs/data/observations.md ("Recording gaps").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mm_runtime.observation import ObservationConfig
from mm_runtime.vocabulary import NS

__all__ = ["GAP_REFERENCE_QUANTILE", "find_gaps", "gap_seconds_before", "in_gap", "observed_stretches",
           "repost_grid"]

GAP_REFERENCE_QUANTILE = 0.99
"""The quantile of the times between updates that ``gap_factor`` multiplies. Not the
median: order flow is clustered, so a complete exchange feed has long quiet stretches
(LOBSTER AMZN 2012-06-21: median 4 ms, 99th percentile 6.5 s, longest 42 s; 200 x the
median would have called 186 of its quiet stretches gaps). A recorder outage is far
beyond the 99th percentile (Hyperliquid ETH: 0.36 s; outages of 31.6 and 235.6 s)."""


def _update_times(market) -> np.ndarray:
    parts = [market.quotes["ts"].to_numpy(dtype=np.int64)] if market.quotes is not None else []
    if market.trades is not None and len(market.trades):
        parts.append(market.trades["ts"].to_numpy(dtype=np.int64))
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def find_gaps(market, config: ObservationConfig | None = None) -> pd.DataFrame:
    """The market's recording gaps: one row per pair of consecutive updates (quotes and
    trades merged) further apart than the threshold. Columns ``start_ns`` (the last update
    before), ``end_ns`` (the first after; int64 ns), ``length_s``; ``attrs``:
    ``reference_s`` (the :data:`GAP_REFERENCE_QUANTILE` of the positive times between
    updates, s), ``threshold_s`` and ``longest_quiet_s`` (the longest time between updates
    that is not a gap, s; 0 without two updates)."""
    cfg = config or ObservationConfig()
    ts = _update_times(market)
    d = np.diff(ts)
    pos = d[d > 0]
    ref = float(np.quantile(pos, GAP_REFERENCE_QUANTILE)) / NS if pos.size else float("nan")
    thr = max(cfg.gap_factor * ref, cfg.gap_min_seconds) if pos.size else cfg.gap_min_seconds
    i = np.flatnonzero(d > thr * NS)
    out = pd.DataFrame({"start_ns": ts[i], "end_ns": ts[i + 1], "length_s": d[i] / NS})
    quiet = d[d <= thr * NS]
    out.attrs.update(reference_s=ref, threshold_s=float(thr),
                     longest_quiet_s=float(quiet.max()) / NS if quiet.size else 0.0)
    return out


def in_gap(gaps: pd.DataFrame, ts: np.ndarray) -> np.ndarray:
    """True for times strictly inside a gap (start < t < end)."""
    ts = np.asarray(ts, dtype=np.int64)
    if len(gaps) == 0:
        return np.zeros(ts.shape, bool)
    s, e = gaps["start_ns"].to_numpy(np.int64), gaps["end_ns"].to_numpy(np.int64)
    k = np.searchsorted(s, ts, side="left") - 1
    ok = k >= 0
    out = np.zeros(ts.shape, bool)
    out[ok] = ts[ok] < e[k[ok]]
    return out


def gap_seconds_before(gaps: pd.DataFrame, ts: np.ndarray) -> np.ndarray:
    """Seconds of gap time strictly before each time in ``ts`` (int64 ns): the shift from
    the wall clock to the observed clock, on which a gap takes no time."""
    ts = np.asarray(ts, dtype=np.int64)
    if len(gaps) == 0:
        return np.zeros(ts.shape)
    s, e = gaps["start_ns"].to_numpy(np.int64), gaps["end_ns"].to_numpy(np.int64)
    cum = np.concatenate([[0], np.cumsum(e - s)])
    k = np.searchsorted(s, ts, side="left")          # gaps starting before t: 0..k-1
    partial = np.where(k > 0, np.clip(ts - s[np.maximum(k - 1, 0)], 0, None)
                       - np.clip(ts - e[np.maximum(k - 1, 0)], 0, None), 0)
    return (cum[np.maximum(k - 1, 0)] * (k > 0) + partial) / NS


def observed_stretches(gaps: pd.DataFrame, t0: int, tE: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (int64 ns) of the stretches of ``[t0, tE]`` between the gaps that lie
    inside it: one stretch ``[t0, tE]`` without gaps."""
    g = gaps[(gaps["start_ns"] >= t0) & (gaps["end_ns"] <= tE)]
    a = np.concatenate([np.array([t0], np.int64), g["end_ns"].to_numpy(np.int64)])
    b = np.concatenate([g["start_ns"].to_numpy(np.int64), np.array([tE], np.int64)])
    return a, b


def repost_grid(gaps: pd.DataFrame, t0: int, tE: int, R: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-posts every ``R`` ns on each observed stretch of ``[t0, tE]`` (the grid restarts
    after a gap; at least one per stretch), each one's end (the next re-post, else the
    stretch's end) and whether a gap's start cut it there (int64 ns, int64 ns, bool): the
    passive quotes' and the queue orders' grid."""
    a, b = observed_stretches(gaps, t0, tE)
    rs = [x + R * np.arange(max(1, -(-(y - x) // R)), dtype=np.int64) for x, y in zip(a, b)]
    ends = np.concatenate([np.minimum(r + R, y) for r, y in zip(rs, b)])
    at_gap = np.concatenate([(r + R > y) & (y < tE) for r, y in zip(rs, b)])
    return np.concatenate(rs), ends, at_gap
