"""Per-bar primitives of the observation rules: the variance estimators of one bar's
returns, and the regime of each bar and of any timestamp.

:func:`models.data.observations.volatility_bars` builds the bars (it needs the
observation config); this module holds what works on bars once they exist. Units:
returns in natural-log units, variances in log-return squared per bar, timestamps in
int64 ns. Estimators' derivations, sources and measurements: docs/data/observations.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mm_runtime.barvar import VOLATILITY_ESTIMATORS
from mm_runtime.vocabulary import REGIMES

# the estimators' constants: one table for the offline bars and the live filter
# (mm_runtime.barvar computes the same statistic tick by tick)
def bar_variance(r: np.ndarray, bar_of: np.ndarray, n_bars: int,
                 estimator: str = "realized") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Variance of each bar from its sampled log returns ``r`` (time order;
    ``bar_of`` = the bar of each return, non-decreasing). Returns ``(rv, iv,
    n_moves)``: the realized variance (sum of squares), the ``estimator``'s
    variance and the number of non-zero returns, one per bar.

    On the bar's **non-zero** returns ``x_1..x_n`` (n = ``n_moves``):

    * ``realized``: ``sum x_i^2`` (diffusion plus squared jumps).
    * ``bipower``: ``pi/2 n/(n-1) sum_{i>=2} |x_i||x_{i-1}|`` (Barndorff-Nielsen &
      Shephard 2004).
    * ``medrv``: ``pi/(6 - 4 sqrt(3) + pi) n/(n-2) sum_{i=2}^{n-1}
      med(|x_{i-1}|, |x_i|, |x_{i+1}|)^2`` (Andersen, Dobrev & Schaumburg 2012, eq. 2.3).
    * ``minrv``: ``pi/(pi - 2) n/(n-1) sum_{i>=2} min(|x_{i-1}|, |x_i|)^2`` (same
      paper, eq. 2.2).

    A bar with fewer non-zero returns than the estimator needs
    (``VOLATILITY_ESTIMATORS[...]["min_moves"]``: 2 for bipower and MinRV, 3 for
    MedRV) gets its realized variance: with one or two moves a jump cannot be told
    from the diffusion. A bar without any move has ``iv = rv = 0``. Derivation, why
    the zero returns are dropped, and the constants: docs/data/observations.md.
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


def regime_weights(bars: pd.DataFrame, regimes: Any = None, *, min_prob: float = 1e-4) -> np.ndarray:
    """Regime probabilities of each bar, (n_bars, 4) float rows summing to 1: the
    soft labels the models condition on (DESIGN.md section 3: every observation carries
    its bar's regime probabilities, not only a hard label).

    ``regimes`` as in :func:`label_regimes`: None (the placeholder quantile labels) or one
    int per bar give one-hot rows; an (n_bars x 4) array of probabilities (the regime
    HMM's smoothed probabilities) is used as is, with probabilities below ``min_prob``
    set to 0 and the rows renormalised (a model that splits an observation over the
    regimes then skips the negligible parts)."""
    p = None if regimes is None else np.asarray(regimes)
    if p is None or p.ndim == 1:
        return np.eye(len(REGIMES))[label_regimes(bars, p)]
    label_regimes(bars, p)  # the shape and finiteness checks
    if np.any(p < 0):
        raise ValueError("regime probabilities must be >= 0")
    w = np.where(p >= min_prob, p.astype(float), 0.0)
    s = w.sum(axis=1, keepdims=True)
    if np.any(s <= 0):
        raise ValueError(f"regime probabilities of bar {int(np.flatnonzero(s.ravel() <= 0)[0]) + 1} "
                         "(1-based) are all below min_prob")
    return w / s


def weights_at(ts: np.ndarray | Sequence[int] | int, bars: pd.DataFrame, weights: np.ndarray) -> np.ndarray:
    """Regime probabilities (n, 4) of the bar containing each timestamp (the rule of
    :func:`regime_at`); rows of timestamps before the first bar are NaN."""
    t = np.atleast_1d(np.asarray(ts, dtype=np.int64))
    w = np.asarray(weights, dtype=float)
    start = bars["bar_start"].to_numpy(dtype=np.int64)
    if len(w) != len(start):
        raise ValueError(f"{len(w)} rows of regime probabilities for {len(start)} bars")
    idx = np.searchsorted(start, t, side="right") - 1
    out = np.full((len(t), len(REGIMES)), np.nan)
    ok = idx >= 0
    out[ok] = w[idx[ok]]
    return out
