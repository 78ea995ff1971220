"""Observations: the model inputs computed from a market's canonical tables.

DESIGN.md section 3. The rules below are part of the project's contract: the
offline models, the synthetic market's ground truth and the live estimators all
rely on them, so each is stated here exactly and tested on hand-built markets
(``tests/models/data/test_observations.py``). Derivations and measured numbers:
docs/data/observations.md.

Units (DESIGN.md section 2): depth in basis points of the mid, time in seconds
(timestamps in int64 ns), sigma in bps/sqrt(s), markouts in bps.

Common conventions
------------------
* ``mid = (bid + ask) / 2`` of the canonical ``quotes`` table.
* "the mid just before t" is the mid of the last quote with ``ts < t`` (strictly):
  a quote stamped at the same instant as a trade is taken to be that trade's
  aftermath. "the mid at t" / "prevailing at t" is the last quote with ``ts <= t``.
* The end of the data is ``market.end_ns`` (the last trade or quote, whichever
  is later).

Rules (one function each)
-------------------------
* :func:`arrivals` -- one row per market-order arrival. Consecutive trade rows
  with the same ``ts`` and the same ``side`` are one sweep = one arrival.
* :func:`volatility_bars` -- realized variance of the mid per bar (per-bar
  estimators: :func:`bar_variance`, in :mod:`models.data.bars`).
* :func:`label_regimes` / :func:`regime_at` (:mod:`models.data.bars`) -- the
  regime of each bar and of any timestamp (the bar containing it).
* :func:`passive_fills` / :func:`passive_quotes_posted` -- hypothetical passive
  quotes on a depth grid, their trade-through fills and markouts.
* :func:`fill_table` / :func:`arrival_summary` / :func:`regime_summary`
  (:mod:`models.data.observation_summary`) -- summaries (``mmcal data inspect``).

Every name above is importable from this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mm_runtime.observation import ObservationConfig, _ns
from mm_runtime.vocabulary import DEPTH_BUCKET_LABELS, DEPTH_BUCKETS_BPS, NS, REGIMES
from models.data.bars import VOLATILITY_ESTIMATORS, bar_variance, label_regimes, regime_at
from models.data.observation_summary import (arrival_summary, depth_bucket, fill_table,
                                             regime_summary)
from models.data.tables import DataError, Market

# ObservationConfig (the rules' parameters) is defined in mm_runtime.observation: the
# prior bundle carries it to the live quoter; re-exported here for the models.
__all__ = [
    "ObservationConfig", "arrivals", "volatility_bars", "choose_bar_seconds", "auto_bar_config",
    "passive_fills", "passive_quotes_posted", "BAR_SECONDS_CANDIDATES",
    "MIN_PRICE_MOVES_PER_BAR",
    # re-exported: per-bar primitives (models.data.bars) and summaries
    # (models.data.observation_summary)
    "VOLATILITY_ESTIMATORS", "bar_variance", "label_regimes", "regime_at", "depth_bucket",
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

    Rules:

    1. *Grouping.* Trade rows (in the canonical, time-sorted order) that are
       consecutive and share ``ts`` and ``side`` form one sweep, i.e. one arrival.
       Two same-side sweeps at one timestamp separated by an opposite-side row are
       two arrivals; same ts + same side rows are never split.
    2. *Prevailing mid.* ``mid_before`` is the mid of the last quote with
       ``ts`` strictly before the arrival's ``ts``. Arrivals with no earlier quote
       are dropped; their number is ``attrs['dropped_before_first_quote']``.
    3. *Depth.* ``extreme_price`` is the sweep's highest print for a buy (side
       +1), its lowest for a sell (side -1), and
       ``depth_bps = side * (extreme_price - mid_before) / mid_before * 1e4``:
       how far beyond the prevailing mid the sweep reached. It can be below the
       half-spread (hidden or midpoint executions), and negative when the quote
       table is stale or the trade printed on the passive side of the mid. Such
       values are kept here, unclipped; consumers that need depth >= 0 (the kappa
       model, :func:`arrival_summary`) clip at 0 themselves.

    Columns: ``ts`` (int64 ns), ``side`` (int8, +1 buyer-initiated), ``n_prints``,
    ``size`` (total, base units), ``vwap``, ``extreme_price``, ``mid_before``,
    ``depth_bps``; plus ``regime`` (int8, :func:`regime_at` of the arrival's ts)
    when ``bars`` or ``regimes`` is given (``bars`` default to
    :func:`volatility_bars` with the default config, ``regimes`` to the placeholder
    :func:`label_regimes`). ``attrs``: ``n_trades``, ``dropped_before_first_quote``,
    ``duration_s`` (the market's span, the exposure for rates).
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

    Rules (B = ``bar_seconds``, dt = ``rv_sample_seconds``, t0 = first quote ts,
    tE = ``market.end_ns``):

    1. Bar k covers ``[t0 + k*B, t0 + (k+1)*B)``; the last bar is open-ended for
       :func:`regime_at` (it extends to the end of the data).
    2. The mid is sampled previous-tick (last quote with ``ts <= g``) on the grid
       ``g_j = t0 + j*dt``, ``j = 0..J``, ``J = floor((tE - t0)/dt)``. Return j is
       ``log mid(g_j) - log mid(g_{j-1})`` (over ``(g_{j-1}, g_j]``) and belongs
       to the bar containing ``g_{j-1}``. A full bar has ``B/dt`` returns.
    3. ``rv`` = sum of the squared returns of the bar (natural log units, not
       bps): its realized variance, always. ``iv`` = the bar's variance by the
       configured ``volatility_estimator`` (:func:`bar_variance`; = ``rv`` for
       ``"realized"``; a jump-robust estimate of the diffusive variance for
       ``"bipower"``, ``"medrv"``, ``"minrv"``, computed on the bar's non-zero
       returns). Bars are emitted up to the last one holding at least one return,
       so only the final bar can be incomplete (``complete`` False,
       ``n_returns`` < B/dt); a market shorter than dt raises :class:`DataError`.
    4. ``sigma_bps = sqrt(iv / (n_returns*dt)) * 1e4`` in bps/sqrt(s) (=
       ``sqrt(iv/bar_seconds)*1e4`` for a complete bar).
    5. ``log_rv = log(max(iv_full, floor))`` where ``iv_full = iv * B/(n_returns*dt)``
       (the incomplete last bar rescaled to a full bar, = iv otherwise) and
       ``floor = (rv_floor_sigma_bps*1e-4)**2 * B``: a bar without any price change
       has ``log_rv = log(floor)``, never ``-inf`` (see :class:`ObservationConfig`).
       (The name is historical: it is the log of ``iv``, the realized variance only
       with ``volatility_estimator="realized"``.)

    Columns: ``bar_start``, ``bar_end`` (int64 ns), ``duration_s`` (time covered
    by its returns), ``n_quotes`` (quote rows with ts in the bar), ``n_returns``,
    ``n_moves`` (non-zero returns), ``complete``, ``rv``, ``iv``, ``sigma_bps``,
    ``log_rv``. ``attrs``: ``bar_seconds``, ``rv_sample_seconds``,
    ``volatility_estimator``, ``log_rv_floor``.
    """
    cfg = config or ObservationConfig()
    qts, qmid = _quote_arrays(market)
    t0, tE = int(qts[0]), int(market.end_ns)
    bar_ns, dt_ns = _ns(cfg.bar_seconds), _ns(cfg.rv_sample_seconds)
    m = bar_ns // dt_ns
    J = (tE - t0) // dt_ns
    if J < 1:
        raise DataError(None, "quotes table",
                        f"market {market.asset!r} spans {(tE - t0) / NS:.3g} s after its first "
                        f"quote, less than one rv sample ({cfg.rv_sample_seconds} s)")
    grid = t0 + dt_ns * np.arange(J + 1, dtype=np.int64)
    lm = np.log(_mid_at(qts, qmid, grid))
    n_bars = int(-(-J // m))
    bar_of = np.arange(J) // m
    rv, iv, n_moves = bar_variance(np.diff(lm), bar_of, n_bars, cfg.volatility_estimator)
    n_ret = np.bincount(bar_of, minlength=n_bars)
    start = t0 + bar_ns * np.arange(n_bars, dtype=np.int64)
    end = start + bar_ns
    qbar = (qts - t0) // bar_ns
    n_quotes = np.bincount(np.minimum(qbar, n_bars - 1), minlength=n_bars)
    # quotes after the last bar's end belong to it (the last bar is open-ended)
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
    return out


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
    qts, qmid = _quote_arrays(market)
    t0, tE = int(qts[0]), int(market.end_ns)
    dt_ns = _ns(cfg.rv_sample_seconds)
    J = (tE - t0) // dt_ns
    if J < 1:
        return float(min(candidates))
    grid = t0 + dt_ns * np.arange(J + 1, dtype=np.int64)
    moving = float(np.mean(np.diff(_mid_at(qts, qmid, grid)) != 0.0))
    ok = [c for c in sorted(candidates)
          if _ns(c) % dt_ns == 0 and moving * c / cfg.rv_sample_seconds >= 0.995 * min_moves]
    return float(ok[0] if ok else max(candidates))


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
    K = max(1, int(-(-(tE - t0) // R)))  # reposts r_k = t0 + k R with r_k < tE
    r = t0 + R * np.arange(K, dtype=np.int64)
    m_post = _mid_at(qts, qmid, r)
    return qts, qmid, r, m_post, R, tE


def passive_fills(market: Market, config: ObservationConfig | None = None,
                  bars: pd.DataFrame | None = None, regimes: Any = None) -> pd.DataFrame:
    """Fills of hypothetical passive quotes on a depth grid, with markouts.

    Rules (R = ``repost_interval_s``, h = ``markout_horizon_s``, t0 = first quote ts,
    tE = ``market.end_ns``):

    1. *Re-posts.* At ``r_k = t0 + k*R`` (every k with ``r_k < tE``) one bid and
       one ask are posted at every depth delta of the grid, priced off the mid
       prevailing at ``r_k`` (last quote with ``ts <= r_k``):
       ``bid = mid*(1 - delta/1e4)``, ``ask = mid*(1 + delta/1e4)``. They live on
       ``(r_k, r_k + R]``: only trades stamped strictly after ``r_k`` and at or
       before ``r_{k+1}`` can fill them.
    2. *Trade-through.* A bid is filled by a seller-initiated trade (side -1)
       with ``price < bid``; an ask by a buyer-initiated trade (side +1) with
       ``price > ask``. With ``fill_at_price`` a trade at exactly the quote price
       fills too. Same-side trades never fill (a buy cannot hit our bid).
    3. *First fill only.* A quote is filled at most once per interval, by the first
       qualifying trade row (time order, then the source's row order within a
       sweep); it is filled in full, at its own price.
    4. *Markout.* ``side`` is +1 when our bid was filled (we bought) and -1 when
       our ask was filled (we sold). With ``mid_h`` = mid prevailing at
       ``ts + h`` (last quote with ts <= ts + h):
       ``markout_bps = side * (price - mid_h) / price * 1e4``, i.e.
       ``(price - mid_h)/price*1e4`` for a bid fill and
       ``(mid_h - price)/price*1e4`` for an ask fill: **positive = adverse** to the
       quote (the mid moved against the position the fill opened).
    5. *Informed.* ``informed = markout_bps > informed_threshold_bps`` (strictly).
    6. *End of data.* Fills with ``ts + h > tE`` are dropped; their number is
       ``attrs['dropped_past_end']``.
    7. *Regime.* ``regime`` is that of the bar containing the fill's ``ts``
       (:func:`regime_at`); ``bars``/``regimes`` default to :func:`volatility_bars`
       and the placeholder :func:`label_regimes`. ``regimes`` may be a per-bar
       int array or an (n_bars x 4) probability array.

    Columns: ``ts``, ``repost_ts`` (int64 ns), ``side`` (int8), ``depth_bps``,
    ``price`` (our quote price = fill price), ``trade_price`` (the print that
    filled it), ``mid_at_post``, ``mid_at_fill`` (the mid just before the fill,
    ts strictly before), ``mid_at_horizon``, ``markout_bps``, ``informed``,
    ``regime`` (int8). Sorted by ts, side, depth.
    ``attrs``: ``n_reposts`` (quotes posted per depth and side: the denominator),
    ``dropped_past_end``, and the config values used. :func:`passive_quotes_posted`
    gives the denominators per regime.
    """
    cfg = config or ObservationConfig()
    bars, regimes = _bars_and_regimes(market, cfg, bars, regimes)
    qts, qmid, r, m_post, R, tE = _repost_grid(market, cfg)
    t = market.trades
    ts = t["ts"].to_numpy(dtype=np.int64)
    tside = t["side"].to_numpy()
    price = t["price"].to_numpy(dtype=float)
    k_all = np.searchsorted(r, ts, side="left") - 1  # r_k < ts <= r_{k+1}
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
    ``exposure_s`` = the quotes' total lifetime, ``min(r_k + R, tE) - r_k`` summed.

    Columns: ``regime`` (int8), ``side`` (+1 bid / -1 ask), ``depth_bps``,
    ``n_posted``, ``exposure_s``. Regimes with no re-post are omitted.
    """
    cfg = config or ObservationConfig()
    bars, regimes = _bars_and_regimes(market, cfg, bars, regimes)
    _, _, r, _, R, tE = _repost_grid(market, cfg)
    reg = regime_at(r, bars, regimes)
    life = (np.minimum(r + R, tE) - r) / NS
    rows = []
    for g in np.unique(reg):
        sel = reg == g
        n, e = int(sel.sum()), float(life[sel].sum())
        for side in (1, -1):
            for delta in cfg.depth_grid_bps:
                rows.append((int(g), side, float(delta), n, e))
    out = pd.DataFrame(rows, columns=["regime", "side", "depth_bps", "n_posted", "exposure_s"])
    return out.astype({"regime": np.int8, "side": np.int8, "n_posted": np.int64})
