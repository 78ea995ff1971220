"""Observations: the model inputs computed from a market's canonical tables.

DESIGN.md section 3. The rules below are part of the project's contract: the
offline models, the synthetic market's ground truth and the live estimators all
rely on them, so each is stated here exactly and tested on hand-built markets
(``tests/data/test_observations.py``).

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
* :func:`volatility_bars` -- realized variance of the mid per bar.
* :func:`label_regimes` / :func:`regime_at` -- the regime of each bar and of
  any timestamp (the bar containing it).
* :func:`passive_fills` / :func:`passive_quotes_posted` -- hypothetical passive
  quotes on a depth grid, their trade-through fills and markouts.
* :func:`fill_table` / :func:`arrival_summary` / :func:`regime_summary` --
  summaries (``mmcal data inspect``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mm_runtime.observation import ObservationConfig, _ns
from mm_runtime.vocabulary import DEPTH_BUCKET_LABELS, DEPTH_BUCKETS_BPS, NS, REGIMES
from models.data.tables import DataError, Market

# ObservationConfig (the rules' parameters) is defined in mm_runtime.observation: the
# prior bundle carries it to the live quoter; re-exported here for the models.


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


def depth_bucket(depth_bps: np.ndarray | Sequence[float]) -> np.ndarray:
    """Index of the alpha depth bucket ``[0,2), [2,5), [5,10), [10,inf)`` of each
    depth (bps). Negative depths are put in the first bucket (clipped at 0)."""
    d = np.maximum(np.asarray(depth_bps, dtype=float), 0.0)
    return (np.searchsorted(np.asarray(DEPTH_BUCKETS_BPS), d, side="right") - 1).astype(np.int8)


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
VOLATILITY_ESTIMATORS: dict[str, dict[str, float]] = {
    "realized": {"min_moves": 1, "scale": 1.0, "variance_factor": 2.0},
    "bipower": {"min_moves": 2, "scale": math.pi / 2.0,
                "variance_factor": math.pi ** 2 / 4.0 + math.pi - 3.0},
    "medrv": {"min_moves": 3, "scale": math.pi / (6.0 - 4.0 * math.sqrt(3.0) + math.pi),
              "variance_factor": 2.96},
    "minrv": {"min_moves": 2, "scale": math.pi / (math.pi - 2.0), "variance_factor": 3.81},
}
"""Per-bar variance estimators (:func:`bar_variance`): the fewest non-zero returns
each needs, its scaling constant, and its asymptotic variance factor v (the
estimate of a diffusive bar from n returns has variance ~ v * iv^2 / n, so
sd(log) ~ sqrt(v / n); realized variance 2, Barndorff-Nielsen & Shephard 2002;
bipower pi^2/4 + pi - 3 = 2.61, BNS 2004; MedRV 2.96 and MinRV 3.81, Andersen,
Dobrev & Schaumburg 2012, Table 1)."""


def bar_variance(r: np.ndarray, bar_of: np.ndarray, n_bars: int,
                 estimator: str = "realized") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Variance of each bar from its sampled log returns ``r`` (time order;
    ``bar_of`` = the bar of each return, non-decreasing). Returns ``(rv, iv,
    n_moves)``: the realized variance (sum of squares), the ``estimator``'s
    variance and the number of non-zero returns, one per bar.

    Let ``x_1..x_n`` be the bar's **non-zero** returns in time order (n =
    ``n_moves``). Estimators (each consistent for the integrated variance of a
    continuous diffusion; the jump-robust ones stay so with finitely many jumps):

    * ``realized``: ``sum x_i^2`` (diffusion plus squared jumps).
    * ``bipower`` (bipower variation, Barndorff-Nielsen & Shephard 2004, "Power and
      bipower variation with stochastic volatility and jumps", J. Financial
      Econometrics 2(1)): ``mu1^-2 n/(n-1) sum_{i>=2} |x_i||x_{i-1}|``,
      ``mu1 = E|Z| = sqrt(2/pi)``, so ``mu1^-2 = pi/2``; ``n/(n-1)`` restores the
      missing term (Huang & Tauchen 2005). A jump enters twice, multiplied by its
      neighbours: robust only when a jump is small next to n diffusive returns.
    * ``medrv``: ``pi/(6 - 4 sqrt(3) + pi) n/(n-2) sum_{i=2}^{n-1}
      med(|x_{i-1}|, |x_i|, |x_{i+1}|)^2`` (Andersen, Dobrev & Schaumburg 2012,
      "Jump-robust volatility estimation using nearest neighbor truncation",
      J. Econometrics 169(1), eq. 2.3); constant = 1 / E[med(|Z1|,|Z2|,|Z3|)^2] =
      1.4194. A single jump (not adjacent to another) drops out entirely.
    * ``minrv``: ``pi/(pi - 2) n/(n-1) sum_{i>=2} min(|x_{i-1}|, |x_i|)^2`` (same
      paper, eq. 2.2); constant 1 / E[min(|Z1|,|Z2|)^2] = 2.7519.

    Why the non-zero returns: a mid sampled previous-tick on a grid finer than its
    price changes returns 0 in many intervals (LOBSTER AAPL on the 1 s grid:
    half; Hyperliquid BTC: three quarters), and a product, median or minimum of
    neighbours with a 0 among them is 0, which would drive the estimate to 0 in
    a slow market. Dropping the zeros (sampling in "tick time" on the grid) leaves
    the realized variance unchanged and gives the robust estimators the
    sequence of price moves they assume. The Gaussian constants assume returns
    of continuous size; on a market whose moves are mostly one tick they
    overstate the variance (constant-size moves: by the constant itself), a
    level shift that is the same in every regime.

    A bar with fewer non-zero returns than the estimator needs
    (``VOLATILITY_ESTIMATORS[...]["min_moves"]``: 2 for bipower and MinRV, 3 for
    MedRV) gets its realized variance: with one or two moves a jump cannot be told
    from the diffusion. A bar without any move has ``iv = rv = 0``.
    """
    if estimator not in VOLATILITY_ESTIMATORS:
        raise ValueError(f"unknown volatility_estimator {estimator!r}; expected one of "
                         f"{sorted(VOLATILITY_ESTIMATORS)}")
    r = np.asarray(r, dtype=float)
    bar_of = np.asarray(bar_of, dtype=np.int64)
    rv = np.bincount(bar_of, weights=r * r, minlength=n_bars)
    nz = r != 0.0
    x, b = np.abs(r[nz]), bar_of[nz]
    n = np.bincount(b, minlength=n_bars)
    if estimator == "realized":
        return rv, rv.copy(), n
    spec = VOLATILITY_ESTIMATORS[estimator]
    if estimator == "medrv":
        ok = (b[2:] == b[:-2]) if len(x) > 2 else np.zeros(0, bool)  # a triple inside one bar
        trip = np.stack([x[:-2], x[1:-1], x[2:]])[:, ok] if len(x) > 2 else np.zeros((3, 0))
        med = trip.sum(axis=0) - trip.max(axis=0) - trip.min(axis=0)
        s = np.bincount(b[1:-1][ok], weights=med * med, minlength=n_bars)
        lost = 2
    else:
        ok = (b[1:] == b[:-1]) if len(x) > 1 else np.zeros(0, bool)  # a pair inside one bar
        if estimator == "bipower":
            term = (x[1:] * x[:-1])[ok]
        else:
            term = np.minimum(x[1:], x[:-1])[ok] ** 2
        s = np.bincount(b[1:][ok], weights=term, minlength=n_bars)
        lost = 1
    robust = n >= spec["min_moves"]
    iv = rv.copy()
    iv[robust] = spec["scale"] * n[robust] / (n[robust] - lost) * s[robust]
    return rv, iv, n


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

    Why: a bar's realized variance is a sum of its squared returns, so with n
    non-zero returns its log has sampling sd ~ sqrt(2/n) (Gaussian returns:
    log of a chi-square_n/n; Barndorff-Nielsen & Shephard 2002). A regime model on
    bars with 2-5 price moves (LOBSTER AAPL: 5 per 10 s bar; Hyperliquid BTC: 2.5)
    sees mostly this counting noise and little of the regimes: measured on AAPL,
    10 s bars put two of the four HMM states at the same mean and the chains
    disagreed (r_hat 1.88), 30 s bars gave four distinct levels and r_hat <= 1.01.
    With n >= 10 the noise sd is <= 0.45, so regimes whose variances differ by a
    factor 2.5 (0.9 in log) lie 2 noise sds apart. A market whose mid moves in
    every sampling interval (the synthetic market; 10 moves per 10 s bar with
    the 1 s sampling) keeps the shortest candidate (0.5 % tolerance).

    The jump-robust estimators (``volatility_estimator``, :func:`bar_variance`)
    need at least 2-3 moves in a bar (fewer: the bar keeps its realized variance)
    and are noisier per move: sd(log) ~ sqrt(v/n) with v = 2.61 (bipower), 2.96
    (MedRV), 3.81 (MinRV) against 2 (:data:`VOLATILITY_ESTIMATORS`), i.e. 0.54 for
    MedRV at n = 10 instead of 0.45. The rule is kept the same for all of them
    (measured: with 10 moves per bar on average, MedRV falls back to rv in no
    30 s AAPL bar and no 60 s BTC bar, against 16 % of 10 s AAPL bars; asking
    MedRV for the noise of rv at 10 moves, ~15 moves, would move the synthetic
    market off its 10 s truth bars and BTC to 120 s bars).
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


# --------------------------------------------------------------------------- regimes
def label_regimes(bars: pd.DataFrame, probs: Any = None) -> np.ndarray:
    """Regime (int 0..3, see :data:`REGIMES`) of each bar.

    * ``probs`` None: PLACEHOLDER labelling until the HMM regime model is fitted:
      thresholds at the 25th, 75th and 95th percentiles of the bars' ``log_rv``;
      a bar's regime is the number of thresholds strictly below its ``log_rv``
      (ties go to the lower regime, so a mass of floored quiet bars is "low").
      By construction the occupancy is about 25/50/20/5 %, whatever the market.
    * ``probs`` a 1-D integer array (one regime per bar, e.g. the synthetic truth's
      ``regime_path`` or an HMM's Viterbi path): used as is, after checks.
    * ``probs`` a 2-D array (n_bars x 4) of regime probabilities (an HMM's
      smoothed probabilities): the most probable regime of each bar.

    Returns an int8 array of length ``len(bars)``.
    """
    n = len(bars)
    if probs is None:
        x = bars["log_rv"].to_numpy(dtype=float)
        if n == 0:
            return np.zeros(0, dtype=np.int8)
        thr = np.quantile(x, [0.25, 0.75, 0.95])
        return np.searchsorted(thr, x, side="left").astype(np.int8)
    p = np.asarray(probs)
    if p.ndim == 1:
        if len(p) != n:
            raise ValueError(f"regime array has {len(p)} entries for {n} bars")
        if p.dtype.kind == "f":
            if not np.all(np.isfinite(p)) or np.any(p != np.round(p)):
                raise ValueError("regime array must hold integers 0..3")
        if n and (p.min() < 0 or p.max() >= len(REGIMES)):
            raise ValueError(f"regimes must be in 0..{len(REGIMES) - 1}, got "
                             f"{p.min()}..{p.max()}")
        return p.astype(np.int8)
    if p.ndim == 2:
        if p.shape != (n, len(REGIMES)):
            raise ValueError(f"regime probabilities must have shape ({n}, {len(REGIMES)}), "
                             f"got {p.shape}")
        if not np.all(np.isfinite(p)):
            raise ValueError("regime probabilities must be finite")
        return np.argmax(p, axis=1).astype(np.int8)
    raise ValueError(f"probs must be 1-D regimes or 2-D probabilities, got ndim={p.ndim}")


def regime_at(ts: np.ndarray | Sequence[int] | int, bars: pd.DataFrame,
              regimes: np.ndarray) -> np.ndarray:
    """Regime of the bar containing each timestamp (int8 array).

    A timestamp exactly on a bar boundary belongs to the bar that starts there
    (bars are ``[start, end)``); timestamps after the last bar's end take the last
    bar's regime (the last bar extends to the end of the data); timestamps before
    the first bar get -1.
    """
    t = np.atleast_1d(np.asarray(ts, dtype=np.int64))
    regimes = np.asarray(regimes)
    start = bars["bar_start"].to_numpy(dtype=np.int64)
    if len(regimes) != len(start):
        raise ValueError(f"{len(regimes)} regimes for {len(start)} bars")
    idx = np.searchsorted(start, t, side="right") - 1
    out = np.full(len(t), -1, dtype=np.int8)
    ok = idx >= 0
    out[ok] = regimes[idx[ok]]
    return out


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


# --------------------------------------------------------------------------- summaries
def fill_table(fills: pd.DataFrame, by_regime: bool = False) -> pd.DataFrame:
    """Summary of passive fills by alpha depth bucket (``[0,2), [2,5), [5,10),
    [10,inf)`` bps; :data:`DEPTH_BUCKETS_BPS`), optionally per regime.

    Columns: (``regime``, ``regime_name``,) ``bucket`` (label), ``lo_bps``,
    ``hi_bps``, ``fills``, ``informed`` (count), ``informed_share``,
    ``informed_share_se`` (binomial, sqrt(p(1-p)/n)), ``markout_mean_bps``.
    Every bucket appears (empty ones with ``fills`` 0 and NaN shares), for each
    regime present when ``by_regime``.
    """
    b = depth_bucket(fills["depth_bps"].to_numpy()) if len(fills) else np.zeros(0, np.int8)
    edges = list(DEPTH_BUCKETS_BPS) + [math.inf]
    groups = [None]
    reg = None
    if by_regime:
        reg = fills["regime"].to_numpy()
        groups = [int(g) for g in range(len(REGIMES))]
    inf = fills["informed"].to_numpy(dtype=bool) if len(fills) else np.zeros(0, bool)
    mk = fills["markout_bps"].to_numpy(dtype=float) if len(fills) else np.zeros(0)
    rows = []
    for g in groups:
        for i, lab in enumerate(DEPTH_BUCKET_LABELS):
            sel = b == i
            if g is not None:
                sel &= reg == g
            n = int(sel.sum())
            k = int(inf[sel].sum())
            share = k / n if n else math.nan
            row = {}
            if g is not None:
                row.update(regime=g, regime_name=REGIMES[g])
            row.update(bucket=lab, lo_bps=edges[i], hi_bps=edges[i + 1], fills=n, informed=k,
                       informed_share=share,
                       informed_share_se=math.sqrt(share * (1 - share) / n) if n else math.nan,
                       markout_mean_bps=float(mk[sel].mean()) if n else math.nan)
            rows.append(row)
    return pd.DataFrame(rows)


def regime_summary(bars: pd.DataFrame, regimes: Any = None) -> pd.DataFrame:
    """Per regime: ``bars``, ``occupancy`` (share of bars), ``duration_s``,
    ``sigma_bps_mean`` (sqrt of the mean bar variance ``iv`` per second,
    bps/sqrt(s): the regime's volatility as the bars' ``volatility_estimator``
    measures it; bars without an ``iv`` column use ``rv``), ``log_rv_mean``,
    ``log_rv_sd``. ``regimes`` as in :func:`label_regimes` (default: the
    placeholder labelling). All four regimes are listed, empty ones with 0 bars
    and NaN statistics."""
    reg = label_regimes(bars, regimes)
    rv = bars["iv" if "iv" in bars.columns else "rv"].to_numpy(dtype=float)
    dur = bars["duration_s"].to_numpy(dtype=float)
    lrv = bars["log_rv"].to_numpy(dtype=float)
    rows = []
    for g, name in enumerate(REGIMES):
        sel = reg == g
        n = int(sel.sum())
        d = float(dur[sel].sum())
        rows.append({"regime": g, "regime_name": name, "bars": n,
                     "occupancy": n / len(reg) if len(reg) else math.nan,
                     "duration_s": d,
                     "sigma_bps_mean": math.sqrt(rv[sel].sum() / d) * 1e4 if d > 0 else math.nan,
                     "log_rv_mean": float(lrv[sel].mean()) if n else math.nan,
                     "log_rv_sd": float(lrv[sel].std(ddof=1)) if n > 1 else math.nan})
    return pd.DataFrame(rows)


def arrival_summary(arr: pd.DataFrame, bars: pd.DataFrame | None = None,
                    regimes: Any = None, duration_s: float | None = None) -> pd.DataFrame:
    """Arrival statistics per side (and per regime when ``bars`` and ``regimes``
    are given).

    * ``rate_per_s`` = arrivals / exposure; exposure is ``duration_s`` (default
      ``arr.attrs['duration_s']``), or per regime the summed ``duration_s`` of
      its bars.
    * depth statistics use depth clipped at 0 (see :func:`arrivals`):
      ``mean_depth_bps``, and ``kappa_mle`` = 1 / mean clipped depth (1/bps): the
      maximum-likelihood decay of an exponential depth law.
    * ``negative_depth`` counts arrivals whose raw depth was < 0 (stale quotes).

    Columns: (``regime``, ``regime_name``,) ``side``, ``side_name`` (buy/sell),
    ``arrivals``, ``exposure_s``, ``rate_per_s``, ``mean_prints``, ``mean_size``,
    ``mean_depth_bps``, ``kappa_mle``, ``negative_depth``.
    """
    side = arr["side"].to_numpy()
    depth = arr["depth_bps"].to_numpy(dtype=float)
    dpos = np.maximum(depth, 0.0)
    if (bars is None) != (regimes is None):
        raise ValueError("give both bars and regimes, or neither")
    if bars is not None:
        reg_bar = label_regimes(bars, regimes)
        reg = regime_at(arr["ts"].to_numpy(), bars, reg_bar)
        dur = bars["duration_s"].to_numpy(dtype=float)
        groups = [(g, float(dur[reg_bar == g].sum())) for g in range(len(REGIMES))]
    else:
        reg = None
        T = duration_s if duration_s is not None else arr.attrs.get("duration_s")
        if T is None:
            raise ValueError("duration_s is needed (arrivals carry it in attrs['duration_s'])")
        groups = [(None, float(T))]
    rows = []
    for g, expo in groups:
        for s, name in ((1, "buy"), (-1, "sell")):
            sel = side == s
            if g is not None:
                sel &= reg == g
            n = int(sel.sum())
            md = float(dpos[sel].mean()) if n else math.nan
            row = {}
            if g is not None:
                row.update(regime=g, regime_name=REGIMES[g])
            row.update(side=s, side_name=name, arrivals=n, exposure_s=expo,
                       rate_per_s=n / expo if expo > 0 else math.nan,
                       mean_prints=float(arr["n_prints"].to_numpy()[sel].mean()) if n else math.nan,
                       mean_size=float(arr["size"].to_numpy()[sel].mean()) if n else math.nan,
                       mean_depth_bps=md,
                       kappa_mle=1.0 / md if n and md > 0 else math.nan,
                       negative_depth=int((depth[sel] < 0).sum()))
            rows.append(row)
    return pd.DataFrame(rows)
