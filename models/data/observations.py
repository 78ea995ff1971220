"""Observations: the model inputs computed from a market's canonical tables.

DESIGN.md section 3.  One function per rule: :func:`arrivals` (market-order sweeps
and the depth each reached), :func:`volatility_bars` (variance of the mid per bar;
per-bar estimators in :mod:`models.data.bars`), :func:`label_regimes` /
:func:`regime_at`, :func:`passive_fills` / :func:`passive_quotes_posted`
(hypothetical passive quotes on a depth grid, their trade-through fills and
markouts) and the summaries of :mod:`models.data.observation_summary`; every one is
importable from here.  Units (DESIGN.md section 2): depth in bps of the mid, time in
seconds (timestamps in int64 ns), sigma in bps/sqrt(s), markouts in bps.  "The mid
just before t" is the last quote with ``ts < t`` (strictly).

The rules are the project's contract (the offline models, the synthetic market's
truth and the live estimators rely on them); stated exactly, with derivations and
measured numbers: docs/data/observations.md.  Tested on hand-built markets in
``tests/models/data/test_observations.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mm_runtime.observation import ObservationConfig, _ns
from mm_runtime.vocabulary import DEPTH_BUCKET_LABELS, DEPTH_BUCKETS_BPS, NS, REGIMES
from models.data.gaps import find_gaps, observed_stretches, repost_grid
from models.data.bars import (VOLATILITY_ESTIMATORS, bar_variance, label_regimes, regime_at, regime_weights,
                              weights_at)
from models.data.observation_summary import (arrival_summary, depth_bucket, fill_table,
                                             regime_summary)
from models.data.tables import DataError, Market

# ObservationConfig (the rules' parameters) is defined in mm_runtime.observation: the
# prior bundle carries it to the live quoter; re-exported here for the models.
__all__ = [
    "ObservationConfig", "arrivals", "volatility_bars", "choose_bar_seconds", "auto_bar_config",
    "choose_rv_sample_seconds", "moving_share",
    "passive_fills", "passive_quotes_posted", "BAR_SECONDS_CANDIDATES",
    "MIN_PRICE_MOVES_PER_BAR",
    # re-exported: per-bar primitives (models.data.bars) and summaries
    # (models.data.observation_summary)
    "VOLATILITY_ESTIMATORS", "bar_variance", "label_regimes", "regime_at", "regime_weights", "weights_at",
    "depth_bucket",
    "fill_table", "regime_summary", "arrival_summary",
    # re-exported vocabulary and error type, for callers that use them through this module
    "REGIMES", "DEPTH_BUCKETS_BPS", "DEPTH_BUCKET_LABELS", "NS", "DataError", "Market",
]


# --------------------------------------------------------------------------- helpers
def _quote_arrays(market: Market) -> tuple[np.ndarray, np.ndarray]:
    q = market.quotes
    if q is None or len(q) == 0:
        raise DataError(None, "quotes table", f"market {market.asset!r} has no quotes")
    qts = q["ts"].to_numpy(dtype=np.int64)
    mid = 0.5 * (q["bid"].to_numpy(dtype=float) + q["ask"].to_numpy(dtype=float))
    return qts, mid


def _mid_before(qts: np.ndarray, mid: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Mid of the last quote with ts < t (NaN where there is none)."""
    idx = np.searchsorted(qts, ts, side="left") - 1
    out = np.full(len(ts), np.nan)
    ok = idx >= 0
    out[ok] = mid[idx[ok]]
    return out


def _mid_at(qts: np.ndarray, mid: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Mid of the last quote with ts <= t (NaN where there is none)."""
    idx = np.searchsorted(qts, ts, side="right") - 1
    out = np.full(len(ts), np.nan)
    ok = idx >= 0
    out[ok] = mid[idx[ok]]
    return out


# --------------------------------------------------------------------------- arrivals
def arrivals(market: Market, bars: pd.DataFrame | None = None,
             regimes: Any = None) -> pd.DataFrame:
    """Market-order arrivals and the depth each one reached (DESIGN.md section 3).

    Consecutive trade rows sharing ``ts`` and ``side`` are one sweep = one arrival;
    ``depth_bps = side * (extreme_price - mid_before) / mid_before * 1e4`` (bps, kept
    unclipped), ``mid_before`` the mid of the last quote strictly before; arrivals
    without an earlier quote are dropped.  Columns: ``ts`` (int64 ns), ``side`` (+1
    buyer-initiated), ``n_prints``, ``size`` (base units), ``vwap``, ``extreme_price``,
    ``mid_before``, ``depth_bps``, and ``regime`` when ``bars`` or ``regimes`` is given;
    ``attrs['duration_s']`` (s) is the exposure for rates.  The rules in full:
    docs/data/observations.md ("arrivals").
    """
    t = market.trades
    qts, qmid = _quote_arrays(market)
    ts = t["ts"].to_numpy(dtype=np.int64)
    side = t["side"].to_numpy().astype(np.int8)
    price = t["price"].to_numpy(dtype=float)
    size = t["size"].to_numpy(dtype=float)
    n = len(ts)
    if n == 0:
        raise DataError(None, "trades table", f"market {market.asset!r} has no trades")
    new = np.empty(n, dtype=bool)
    new[0] = True
    new[1:] = (ts[1:] != ts[:-1]) | (side[1:] != side[:-1])
    starts = np.flatnonzero(new)
    n_prints = np.diff(np.append(starts, n))
    a_ts = ts[starts]
    a_side = side[starts]
    a_size = np.add.reduceat(size, starts)
    a_vwap = np.add.reduceat(price * size, starts) / a_size
    hi = np.maximum.reduceat(price, starts)
    lo = np.minimum.reduceat(price, starts)
    extreme = np.where(a_side > 0, hi, lo)
    mid = _mid_before(qts, qmid, a_ts)
    keep = np.isfinite(mid)
    dropped = int((~keep).sum())
    mid_k = mid[keep]
    sd = a_side[keep].astype(float)
    out = pd.DataFrame({
        "ts": a_ts[keep],
        "side": a_side[keep],
        "n_prints": n_prints[keep].astype(np.int64),
        "size": a_size[keep],
        "vwap": a_vwap[keep],
        "extreme_price": extreme[keep],
        "mid_before": mid_k,
        "depth_bps": sd * (extreme[keep] - mid_k) / mid_k * 1e4,
    })
    if bars is not None or regimes is not None:
        bars, regimes = _bars_and_regimes(market, ObservationConfig(), bars, regimes)
        out["regime"] = regime_at(out["ts"].to_numpy(), bars, regimes)
    out.attrs.update(n_trades=int(n), dropped_before_first_quote=dropped,
                     duration_s=float(market.duration_s))
    return out


# --------------------------------------------------------------------------- bars
def volatility_bars(market: Market, config: ObservationConfig | None = None) -> pd.DataFrame:
    """Variance of the mid per bar: the regime model's input.

    Bars of ``bar_seconds`` from the first quote; the mid sampled previous-tick every
    ``rv_sample_seconds``; ``rv`` = the bar's sum of squared log returns (natural log
    units), ``iv`` = its variance by ``volatility_estimator`` (:func:`bar_variance`),
    ``sigma_bps = sqrt(iv / covered s) * 1e4`` (bps/sqrt(s)), ``log_rv`` = log of ``iv``
    rescaled to a full bar, floored at ``rv_floor_sigma_bps`` (never ``-inf``).  Only the
    last bar can be incomplete.  Columns: ``bar_start``, ``bar_end`` (int64 ns),
    ``duration_s``, ``n_quotes``, ``n_returns``, ``n_moves``, ``complete``, ``rv``, ``iv``,
    ``sigma_bps``, ``log_rv``.  The rules in full: docs/data/observations.md.
    """
    cfg = config or ObservationConfig()
    qts, qmid = _quote_arrays(market)
    t0, tE = int(qts[0]), int(market.end_ns)
    bar_ns, dt_ns = _ns(cfg.bar_seconds), _ns(cfg.rv_sample_seconds)
    m = bar_ns // dt_ns
    if (tE - t0) // dt_ns < 1:
        raise DataError(None, "quotes table",
                        f"market {market.asset!r} spans {(tE - t0) / NS:.3g} s after its first "
                        f"quote, less than one rv sample ({cfg.rv_sample_seconds} s)")
    # recording gaps: bars on each observed stretch, the grid restarting after a gap
    seg_a, seg_b = observed_stretches(find_gaps(market, cfg), t0, tE)
    parts = [_segment_bars(qts, qmid, int(a), int(b), bar_ns, dt_ns, m, cfg)
             for a, b in zip(seg_a, seg_b) if (b - a) // dt_ns >= 1]
    rv, iv, n_moves, n_ret, start, n_quotes = (np.concatenate([p[k] for p in parts]) for k in range(6))
    end = start + bar_ns
    covered = n_ret * cfg.rv_sample_seconds
    sigma = np.sqrt(iv / covered) * 1e4
    iv_full = iv * (m / n_ret)
    floor = (cfg.rv_floor_sigma_bps * 1e-4) ** 2 * cfg.bar_seconds
    out = pd.DataFrame({
        "bar_start": start,
        "bar_end": end,
        "duration_s": covered.astype(float),
        "n_quotes": n_quotes.astype(np.int64),
        "n_returns": n_ret.astype(np.int64),
        "n_moves": n_moves.astype(np.int64),
        "complete": n_ret == m,
        "rv": rv,
        "iv": iv,
        "sigma_bps": sigma,
        "log_rv": np.log(np.maximum(iv_full, floor)),
    })
    out.attrs.update(bar_seconds=cfg.bar_seconds, rv_sample_seconds=cfg.rv_sample_seconds,
                     volatility_estimator=cfg.volatility_estimator, log_rv_floor=math.log(floor))
    if len(seg_a) > 1:
        out.attrs["gaps_ns"] = [[int(a), int(b)] for a, b in zip(seg_b[:-1], seg_a[1:])]
    return out


def _segment_bars(qts, qmid, t0: int, tE: int, bar_ns: int, dt_ns: int, m: int, cfg: ObservationConfig):
    """The bars of one observed stretch ``[t0, tE]`` (ns): (rv, iv, n_moves, n_returns,
    bar_start, n_quotes); quotes after the stretch's last bar end belong to it."""
    J = (tE - t0) // dt_ns
    grid = t0 + dt_ns * np.arange(J + 1, dtype=np.int64)
    lm = np.log(_mid_at(qts, qmid, grid))
    n_bars = int(-(-J // m))
    bar_of = np.arange(J) // m
    rv, iv, n_moves = bar_variance(np.diff(lm), bar_of, n_bars, cfg.volatility_estimator)
    n_ret = np.bincount(bar_of, minlength=n_bars)
    start = t0 + bar_ns * np.arange(n_bars, dtype=np.int64)
    inside = (qts >= t0) & (qts <= tE)
    qbar = (qts[inside] - t0) // bar_ns
    n_quotes = np.bincount(np.minimum(qbar, n_bars - 1), minlength=n_bars)
    return rv, iv, n_moves, n_ret, start, n_quotes


BAR_SECONDS_CANDIDATES: tuple[float, ...] = (10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0)
MIN_PRICE_MOVES_PER_BAR = 10.0


def choose_bar_seconds(market: Market, config: ObservationConfig | None = None, *,
                       min_moves: float = MIN_PRICE_MOVES_PER_BAR,
                       candidates: Sequence[float] = BAR_SECONDS_CANDIDATES) -> float:
    """The shortest volatility bar (from ``candidates``, whole multiples of
    ``rv_sample_seconds``) in which the mid moves in at least ``min_moves`` of the
    rv sampling intervals on average; the longest candidate if none does.

    Ten moves keep the counting noise of a bar's log variance (sd ~ sqrt(2/n)) below
    the gaps between regimes; derivation and measurements: docs/data/observations.md.
    """
    cfg = config or ObservationConfig()
    dt_ns = _ns(cfg.rv_sample_seconds)
    moving = moving_share(market, cfg.rv_sample_seconds)
    if not math.isfinite(moving):
        return float(min(candidates))
    ok = [c for c in sorted(candidates)
          if _ns(c) % dt_ns == 0 and moving * c / cfg.rv_sample_seconds >= 0.995 * min_moves]
    return float(ok[0] if ok else max(candidates))


RV_SAMPLE_CANDIDATES: tuple[float, ...] = (0.1, 0.2, 0.5)
MIN_MOVING_SHARE = 0.9


def moving_share(market: Market, dt_s: float) -> float:
    """The share of the ``dt_s`` grid intervals (from the first quote) in which the mid
    moves; NaN when the data are shorter than one interval."""
    qts, qmid = _quote_arrays(market)
    dt_ns = _ns(dt_s)
    J = (int(market.end_ns) - int(qts[0])) // dt_ns
    if J < 1:
        return math.nan
    grid = int(qts[0]) + dt_ns * np.arange(J + 1, dtype=np.int64)
    return float(np.mean(np.diff(_mid_at(qts, qmid, grid)) != 0.0))


def choose_rv_sample_seconds(market: Market, config: ObservationConfig | None = None, *,
                             min_share: float = MIN_MOVING_SHARE,
                             candidates: Sequence[float] = RV_SAMPLE_CANDIDATES) -> float:
    """The finest rv sampling grid (from ``candidates`` finer than ``rv_sample_seconds``,
    dividing ``bar_seconds``) in which the mid moves in at least ``min_share`` of the
    intervals; ``rv_sample_seconds`` if none does. A suggestion (``mmcal data inspect``),
    not applied by itself: ``--rv-sample-seconds`` sets the grid.

    MedRV and MinRV take their terms from neighbouring non-zero returns, so a finer grid
    helps only where the mid is continuous at that scale: it separates a jump from the
    diffusion around it (the synthetic mid, which moves in every 0.1 s interval: bars
    decoded 99.8 % right against 93.4 % on the 1 s grid, benchmarks/README.md, "Where the
    end-to-end misses come from"). On the discrete-price books of LOBSTER, Binance and Hyperliquid the mid
    moves in 8-62 % of the 1 s intervals (docs/data/observations.md): a finer grid adds
    only zeros, and the grid stays."""
    cfg = config or ObservationConfig()
    bar_ns = _ns(cfg.bar_seconds)
    for c in sorted(candidates):
        if c < cfg.rv_sample_seconds and bar_ns % _ns(c) == 0 and moving_share(market, c) >= min_share:
            return float(c)
    return float(cfg.rv_sample_seconds)


def auto_bar_config(market: Market, config: ObservationConfig | None = None, **kwargs: Any) -> ObservationConfig:
    """``config`` with ``bar_seconds`` from :func:`choose_bar_seconds`."""
    cfg = config or ObservationConfig()
    return cfg.model_copy(update={"bar_seconds": choose_bar_seconds(market, cfg, **kwargs)})


def _bars_and_regimes(market, cfg, bars, regimes):
    if bars is None:
        bars = volatility_bars(market, cfg)
    if regimes is None:
        regimes = label_regimes(bars)
    else:
        regimes = label_regimes(bars, regimes)
    return bars, regimes


# --------------------------------------------------------------------------- passive fills
def _repost_grid(market: Market, cfg: ObservationConfig):
    qts, qmid = _quote_arrays(market)
    t0, tE = int(qts[0]), int(market.end_ns)
    R = _ns(cfg.repost_interval_s)
    # reposts r_k = t0 + k R with r_k < tE, the grid restarting after each recording gap;
    # a quote alive at a gap's start is censored there (models.data.gaps)
    r, ends, _ = repost_grid(find_gaps(market, cfg), t0, tE, R)
    m_post = _mid_at(qts, qmid, r)
    return qts, qmid, r, m_post, R, tE, ends


def passive_fills(market: Market, config: ObservationConfig | None = None,
                  bars: pd.DataFrame | None = None, regimes: Any = None) -> pd.DataFrame:
    """Fills of hypothetical passive quotes on a depth grid, with markouts.

    Every ``repost_interval_s`` one bid and one ask per depth of ``depth_grid_bps``
    (bps off the prevailing mid) live until the next re-post; the first opposite-side
    trade *through* a quote (or at its price with ``fill_at_price``) fills it in full at
    its price.  ``markout_bps = side * (price - mid_h) / price * 1e4`` with ``mid_h`` the
    mid ``markout_horizon_s`` later (**positive = adverse**); ``informed = markout_bps >
    informed_threshold_bps``; fills whose horizon passes the end of data are dropped.
    Columns include ``ts``, ``repost_ts`` (int64 ns), ``side`` (+1 our bid filled),
    ``depth_bps``, ``price``, ``markout_bps``, ``informed``, ``regime``; ``attrs['n_reposts']``
    is the denominator.  The seven rules and every column: docs/data/observations.md.
    """
    cfg = config or ObservationConfig()
    bars, regimes = _bars_and_regimes(market, cfg, bars, regimes)
    qts, qmid, r, m_post, R, tE, ends = _repost_grid(market, cfg)
    t = market.trades
    ts = t["ts"].to_numpy(dtype=np.int64)
    tside = t["side"].to_numpy()
    price = t["price"].to_numpy(dtype=float)
    k_all = np.searchsorted(r, ts, side="left") - 1  # r_k < ts <= r_{k+1}
    k_all[(k_all >= 0) & (ts > ends[np.maximum(k_all, 0)])] = -1   # after a quote censored at a gap
    # trades past the last interval (ts > r_{K-1} + R) cannot happen since r_{K-1}+R >= tE
    h_ns = _ns(cfg.markout_horizon_s)
    pieces = []
    dropped = 0
    for fill_side, agg_side in ((1, -1), (-1, 1)):
        sel = np.flatnonzero((tside == agg_side) & (k_all >= 0))
        k = k_all[sel]
        p = price[sel]
        mk = m_post[k]
        for delta in cfg.depth_grid_bps:
            q = mk * (1.0 - fill_side * delta * 1e-4)
            if fill_side == 1:
                hit = p <= q if cfg.fill_at_price else p < q
            else:
                hit = p >= q if cfg.fill_at_price else p > q
            hits = np.flatnonzero(hit)
            if len(hits) == 0:
                continue
            kh = k[hits]
            first = hits[np.concatenate(([True], kh[1:] != kh[:-1]))]
            rows = sel[first]
            f_ts = ts[rows]
            keep = f_ts + h_ns <= tE
            dropped += int((~keep).sum())
            first, rows, f_ts = first[keep], rows[keep], f_ts[keep]
            kk = k[first]
            pieces.append(pd.DataFrame({
                "ts": f_ts,
                "repost_ts": r[kk],
                "side": np.full(len(rows), fill_side, dtype=np.int8),
                "depth_bps": np.full(len(rows), float(delta)),
                "price": q[first],
                "trade_price": p[first],
                "mid_at_post": mk[first],
            }))
    cols = ["ts", "repost_ts", "side", "depth_bps", "price", "trade_price", "mid_at_post"]
    if pieces:
        out = pd.concat(pieces, ignore_index=True)
    else:
        out = pd.DataFrame({c: np.zeros(0, dtype=d) for c, d in zip(
            cols, [np.int64, np.int64, np.int8, float, float, float, float])})
    out = out.sort_values(["ts", "side", "depth_bps"], kind="stable").reset_index(drop=True)
    f_ts = out["ts"].to_numpy(dtype=np.int64)
    out["mid_at_fill"] = _mid_before(qts, qmid, f_ts)
    mid_h = _mid_at(qts, qmid, f_ts + h_ns)
    out["mid_at_horizon"] = mid_h
    pr = out["price"].to_numpy()
    sd = out["side"].to_numpy().astype(float)
    out["markout_bps"] = sd * (pr - mid_h) / pr * 1e4
    out["informed"] = out["markout_bps"].to_numpy() > cfg.informed_threshold_bps
    out["regime"] = regime_at(f_ts, bars, regimes)
    out.attrs.update(n_reposts=int(len(r)), dropped_past_end=dropped,
                     repost_interval_s=cfg.repost_interval_s,
                     markout_horizon_s=cfg.markout_horizon_s,
                     informed_threshold_bps=cfg.informed_threshold_bps,
                     depth_grid_bps=list(cfg.depth_grid_bps),
                     fill_at_price=cfg.fill_at_price)
    return out


def passive_quotes_posted(market: Market, config: ObservationConfig | None = None,
                          bars: pd.DataFrame | None = None, regimes: Any = None) -> pd.DataFrame:
    """Denominators of :func:`passive_fills`: quotes posted per regime, side, depth.

    Every re-post ``r_k`` posts one quote per depth and side; it is counted in the
    regime of the bar containing ``r_k`` (a fill carries the regime at its own
    ts, which differs only for quotes that straddle a bar boundary).
    ``exposure_s`` = the quotes' total lifetime, ``min(r_k + R, tE) - r_k`` summed (a
    recording gap restarts the grid and ends the quotes alive at its start).

    Columns: ``regime`` (int8), ``side`` (+1 bid / -1 ask), ``depth_bps``,
    ``n_posted``, ``exposure_s``. Regimes with no re-post are omitted.
    """
    cfg = config or ObservationConfig()
    bars, regimes = _bars_and_regimes(market, cfg, bars, regimes)
    _, _, r, _, R, tE, ends = _repost_grid(market, cfg)
    reg = regime_at(r, bars, regimes)
    life = (ends - r) / NS
    rows = []
    for g in np.unique(reg):
        sel = reg == g
        n, e = int(sel.sum()), float(life[sel].sum())
        for side in (1, -1):
            for delta in cfg.depth_grid_bps:
                rows.append((int(g), side, float(delta), n, e))
    out = pd.DataFrame(rows, columns=["regime", "side", "depth_bps", "n_posted", "exposure_s"])
    return out.astype({"regime": np.int8, "side": np.int8, "n_posted": np.int64})
