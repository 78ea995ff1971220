"""The volatility bar's statistic computed tick by tick: the live regime filter's input,
the same number the offline bars give (``models.data.observations.volatility_bars``).

The rule (DESIGN.md section 3, docs/data/observations.md "volatility bars"): the mid is
sampled previous-tick on a grid of ``rv_sample_seconds`` from the first mid; bars are
``bar_seconds`` (a whole number ``m`` of grid steps) from the same origin; a bar's
variance is the ``volatility_estimator`` of its **non-zero** grid returns
(:data:`VOLATILITY_ESTIMATORS`: realized variance, bipower variation, MedRV, MinRV) and
its statistic is ``y = ln sigma_bar`` with ``sigma_bar = sqrt(max(iv, f^2 B) / B)``
(bps/sqrt(s); ``f`` = ``rv_floor_sigma_bps``, ``B`` = ``bar_seconds``) -- the offline
``0.5 (log_rv + ln 1e8 - ln B)``.

Streaming: a grid point ``g`` is settled by the first event with ``ts > g`` (its mid is
the last mid at or before ``g``, as offline); the estimators' sums need only the bar's
last two non-zero absolute returns. Source of the estimators: Andersen, Dobrev &
Schaumburg (2012, eqs. 2.2-2.3) for MedRV and MinRV, Barndorff-Nielsen & Shephard (2004)
for bipower. Where the live rule differs from the offline one (recording gaps, the last
incomplete bar): docs/models/regime_live.md.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

__all__ = ["VOLATILITY_ESTIMATORS", "ESTIMATOR_CODES", "BarParams", "BAR_STATE_SIZE", "bar_params",
           "bar_init", "bar_update"]

VOLATILITY_ESTIMATORS: dict[str, dict[str, float]] = {
    "realized": {"min_moves": 1, "scale": 1.0, "variance_factor": 2.0},
    "bipower": {"min_moves": 2, "scale": math.pi / 2.0,
                "variance_factor": math.pi ** 2 / 4.0 + math.pi - 3.0},
    "medrv": {"min_moves": 3, "scale": math.pi / (6.0 - 4.0 * math.sqrt(3.0) + math.pi),
              "variance_factor": 2.96},
    "minrv": {"min_moves": 2, "scale": math.pi / (math.pi - 2.0), "variance_factor": 3.81},
}
"""Per-bar variance estimators: the fewest non-zero returns each needs, its scaling
constant, and its asymptotic variance factor v (sd(log) of a diffusive bar's estimate
from n returns ~ sqrt(v / n); sources in docs/data/observations.md). One table for the
offline bars (``models.data.bars``) and the live filter."""

ESTIMATOR_CODES: dict[str, int] = {name: i for i, name in enumerate(VOLATILITY_ESTIMATORS)}
"""The estimator as a number (the live state is arrays only)."""

BAR_STATE_SIZE = 9
# slots of the bar state vector
_T0, _J, _GMID, _X1, _X2, _N, _SQ, _S, _OK = range(BAR_STATE_SIZE)


class BarParams(NamedTuple):
    """The rule's constants (float64 arrays): grid step ``dt`` (s), grid steps per bar
    ``m``, ``floor_bps`` (bps/sqrt(s)), the estimator's ``code``, ``scale``, ``lost``
    (returns without a term: 0 realized, 1 bipower/MinRV, 2 MedRV), ``min_moves``, and
    ``restart_s``: a silence longer than this restarts the grid (a recording gap)."""

    dt: jnp.ndarray
    m: jnp.ndarray
    floor_bps: jnp.ndarray
    code: jnp.ndarray
    scale: jnp.ndarray
    lost: jnp.ndarray
    min_moves: jnp.ndarray
    restart_s: jnp.ndarray


def bar_params(observation) -> BarParams:
    """The constants of an :class:`~mm_runtime.observation.ObservationConfig`."""
    o = observation
    spec = VOLATILITY_ESTIMATORS[o.volatility_estimator]
    lost = {"realized": 0, "bipower": 1, "minrv": 1, "medrv": 2}[o.volatility_estimator]
    f = lambda x: np.float64(x)  # noqa: E731
    return BarParams(dt=f(o.rv_sample_seconds), m=f(round(o.bar_seconds / o.rv_sample_seconds)),
                     floor_bps=f(o.rv_floor_sigma_bps), code=f(ESTIMATOR_CODES[o.volatility_estimator]),
                     scale=f(spec["scale"]), lost=f(lost), min_moves=f(spec["min_moves"]),
                     restart_s=f(o.gap_min_seconds))


def bar_init() -> np.ndarray:
    """No grid yet: ``[t0, j_next, grid_mid, x1, x2, n_moves, sumsq, terms, started]``."""
    return np.zeros(BAR_STATE_SIZE)


def _iv(b, p: BarParams):
    """The bar's variance (bps^2) from its sums: the estimator where the bar has its
    ``min_moves`` non-zero returns, else the realized variance (models.data.bars)."""
    n = b[_N]
    robust = (n >= p.min_moves) & (p.code > 0)
    return jnp.where(robust, p.scale * n / jnp.maximum(n - p.lost, 1.0) * b[_S], b[_SQ])


def _y(iv, p: BarParams):
    B = p.m * p.dt
    return 0.5 * jnp.log(jnp.maximum(iv, p.floor_bps ** 2 * B) / B)


def bar_update(b, ts, m_ok, prev_mid, last_ts, p: BarParams):
    """Settle the grid points before an event at ``ts`` (s) with the previous mid
    ``prev_mid`` (0 = none); ``m_ok``: the event carries a valid mid (the caller sets
    the new mid afterwards). Returns ``(b, n_closed, y_first, y_empty)``: the bars
    closed by this event (``y_first`` the statistic of the first, ``y_empty`` that of
    each further one, which had no move: the floor)."""
    started = b[_OK] > 0
    restart = m_ok & (~started | (ts - last_ts > p.restart_s) | ~(prev_mid > 0))
    # grid points t0 + j dt with j >= j_next and t0 + j dt < ts
    j_last = jnp.ceil((ts - b[_T0]) / p.dt) - 1.0
    k = jnp.where(started & ~restart & m_ok, jnp.maximum(j_last - b[_J] + 1.0, 0.0), 0.0)
    settle = k > 0
    j0 = b[_J]
    has_ret = settle & (j0 >= 1.0) & (b[_GMID] > 0)
    r = jnp.where(has_ret, jnp.log(prev_mid / jnp.where(b[_GMID] > 0, b[_GMID], 1.0)) * 1e4, 0.0)
    x = jnp.abs(r)
    move = has_ret & (x > 0)
    n = b[_N]
    med = x + b[_X1] + b[_X2] - jnp.maximum(jnp.maximum(x, b[_X1]), b[_X2]) \
        - jnp.minimum(jnp.minimum(x, b[_X1]), b[_X2])
    term = jnp.where(p.code == 1, jnp.where(n >= 1, x * b[_X1], 0.0),
                     jnp.where(p.code == 2, jnp.where(n >= 2, med * med, 0.0),
                               jnp.where(p.code == 3, jnp.where(n >= 1, jnp.minimum(x, b[_X1]) ** 2, 0.0), 0.0)))
    acc = b.at[_SQ].add(jnp.where(move, r * r, 0.0)).at[_S].add(jnp.where(move, term, 0.0))
    acc = acc.at[_N].add(jnp.where(move, 1.0, 0.0))
    acc = acc.at[_X2].set(jnp.where(move, b[_X1], b[_X2])).at[_X1].set(jnp.where(move, x, b[_X1]))
    jl = j0 + k - 1.0
    n_closed = jnp.where(settle & (j0 >= 1.0), jnp.floor(jl / p.m) - jnp.floor((j0 - 1.0) / p.m),
                         jnp.where(settle, jnp.floor(jl / p.m), 0.0))
    y_first = _y(_iv(acc, p), p)
    y_empty = _y(0.0, p)
    closed = n_closed > 0
    zero = jnp.zeros(BAR_STATE_SIZE)
    after = jnp.where(closed, zero.at[_T0].set(b[_T0]).at[_OK].set(1.0), acc)
    after = after.at[_J].set(jnp.where(settle, jl + 1.0, j0))
    after = after.at[_GMID].set(jnp.where(settle, prev_mid, b[_GMID]))
    fresh = zero.at[_T0].set(ts).at[_OK].set(1.0)
    out = jnp.where(restart, fresh, jnp.where(started, after, b))
    return out, jnp.where(restart, 0.0, n_closed), y_first, y_empty
