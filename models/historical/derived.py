"""Derived constants: closed-form replacements for the original system's magic numbers.

Pure functions of plain Python floats (or numpy scalars; ``confidence_threshold_roc``
takes arrays), returning floats.  Out-of-domain inputs raise ``ValueError`` with a
message that names the argument.  Units follow DESIGN.md section 2: depths, spreads,
fees and adverse moves in bps of the mid; σ in bps/√s (except where a function says
"fraction"); κ in 1/bps; A in 1/s; times in seconds unless stated.

Source: ``original-bayesian-learning-notes.txt`` (background), "Files Created" §3,
``derived_constants.rs``, which lists one ``derive_*`` function per constant below.
The notes give the formulas as one-liners; the derivations, units and domains here
are this module's own.  The historical calibrator uses ``latency_slippage_bps``,
``spread_floor_bps`` and ``toxic_hour_multiplier``; the learned-parameter registry's
descriptions name the others.  The list of functions, the γ root analysis and why the
module has no scipy: docs/models/historical.md#derived-constants.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np

from mm_runtime import _checks as _c
from mm_runtime.ladder import glft_quote
from mm_runtime.risk_limits import (
    SECONDS_PER_DAY,
    Z_99,
    kill_switch_limits,
    max_daily_loss,
    max_drawdown,
    sigma_daily_from_bps,
    var99,
)

__all__ = [
    "Z_99",
    "gamma_for_target_spread",
    "latency_slippage_bps",
    "spread_floor_bps",
    "sigma_daily_from_bps",
    "max_daily_loss",
    "var99",
    "max_drawdown",
    "kill_switch_limits",
    "ewma_alpha",
    "ewma_half_life",
    "kalman_q_r",
    "regime_hazard_rate",
    "regime_sticky_diagonal",
    "toxic_hour_multiplier",
    "quote_latch_threshold_bps",
    "RocThreshold",
    "confidence_threshold_roc",
    "depth_spacing_ratio",
    "reduce_only_threshold",
]



# ----------------------------------------------------------------------------- 1. GLFT γ
def _h(A: float, kappa: float, sigma: float, gamma, xi, delta: float) -> np.ndarray:
    """GLFT half-spread (bps) via :func:`glft_quote`, as numpy float64."""
    return np.asarray(glft_quote(A, kappa, sigma, gamma, xi, delta)[0], dtype=float)


def gamma_for_target_spread(
    target_half_spread_bps: float,
    A: float,
    kappa: float,
    sigma: float,
    *,
    xi: float | None = None,
    delta: float = 1.0,
    root: Literal["smallest", "largest"] = "smallest",
    rtol: float = 1e-13,
) -> float:
    """Risk aversion γ at which the GLFT half-spread equals a target.

    Solves ``h(γ) = target`` for the GLFT half-spread (Guéant, Lehalle &
    Fernandez-Tapia 2013; Guéant 2017 eq. (4.6)–(4.7), evaluated by
    :func:`mm_runtime.ladder.glft_quote`): closed form for a fixed ``xi``; with
    ``xi=None`` (ξ = γ) up to three roots, bracketed on a log-γ grid and bisected to
    ``rtol``, ``root`` picking the ``"smallest"`` or the ``"largest"``.  An unreachable
    target raises ``ValueError``.  Units: ``target_half_spread_bps`` bps from the mid (one
    side); ``A`` 1/s; ``kappa`` 1/bps; ``sigma`` bps/√s; ``xi`` and γ 1/(bps·base unit);
    ``delta`` (Δ) base units.  Source: ``derive_gamma_from_glft()`` in the original notes.
    The shape of h(γ), its roots and limits: docs/models/historical.md#gamma_for_target_spread.
    """
    target = _c.positive("target_half_spread_bps", target_half_spread_bps)
    A = _c.positive("A", A)
    kappa = _c.positive("kappa", kappa)
    sigma = _c.positive("sigma", sigma)
    delta = _c.positive("delta", delta)
    if root not in ("smallest", "largest"):
        raise ValueError(f"root must be 'smallest' or 'largest', got {root!r}")

    if xi is not None:
        xi = _c.positive("xi", xi)
        c1 = float(_h(A, kappa, 0.0, 1.0, xi, delta))  # σ = 0 leaves only c1
        slope = float(_h(A, kappa, sigma, 1.0, xi, delta)) - c1  # (Δ/2)·σ·c2 at γ = 1
        if target <= c1:
            raise ValueError(
                f"target_half_spread_bps={target} is not above the gamma -> 0 limit c1 = ln(1 + xi*delta/kappa)"
                f"/(xi*delta) = {c1} bps of the GLFT half-spread with xi={xi}"
            )
        return ((target - c1) / slope) ** 2

    # ξ = γ: bracket on a log-γ grid, then bisect.  u = γΔ/κ.
    b = kappa * sigma / (2.0 * math.sqrt(2.0 * A))
    t = kappa * target  # the target in units of 1/κ
    u_hi = 2.0 * t / b  # κ·h(u) > b·u, so h > target at u_hi
    u_lo = 1e-12
    if t > 1.0:  # make sure h(u_lo) < target: κ·h ≤ 1 + b·sqrt(e·u·(1+u))
        u_lo = min(u_lo, max(((t - 1.0) / (4.0 * b)) ** 2 / math.e, 1e-300))
    log_g = np.linspace(math.log(u_lo * kappa / delta), math.log(u_hi * kappa / delta), 4097)
    f = _h(A, kappa, sigma, np.exp(log_g), None, delta) - target
    above = f > 0
    crossings = np.nonzero(above[1:] != above[:-1])[0]
    if crossings.size == 0:
        raise ValueError(
            f"target_half_spread_bps={target} is below every GLFT half-spread reachable with xi = gamma "
            f"(minimum ~{float(np.min(f)) + target} bps over gamma; the gamma -> 0 limit is 1/kappa = "
            f"{1.0 / kappa} bps, the risk-neutral optimum of delta*A*exp(-kappa*delta))"
        )
    i = int(crossings[0] if root == "smallest" else crossings[-1])
    lo, hi = float(log_g[i]), float(log_g[i + 1])
    f_lo = float(f[i])
    for _ in range(200):
        if hi - lo <= rtol:
            break
        mid = 0.5 * (lo + hi)
        f_mid = float(_h(A, kappa, sigma, math.exp(mid), None, delta)) - target
        if f_mid == 0.0:
            return math.exp(mid)
        if (f_mid > 0) == (f_lo > 0):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


# ----------------------------------------------------------------------------- 2. spread floor
def latency_slippage_bps(sigma_bps: float, latency_s: float, z: float = 1.0) -> float:
    """Adverse mid move while a quote update is in flight: ``z · σ · √latency``.

    Units: ``sigma_bps`` bps/√s, ``latency_s`` seconds (order round trip: decision to
    acknowledgement), ``z`` standard deviations (dimensionless, ≥ 0); result bps.

    The mid is Brownian with volatility σ (DESIGN.md §6), so over the latency L it
    moves N(0, σ²L).  ``z = 1`` (default) charges one standard deviation;
    ``z = √(2/π) ≈ 0.798`` charges the expected absolute move E|ΔW|;
    ``z = NormalDist().inv_cdf(0.95) ≈ 1.645`` a one-sided 95% bound.

    Source: the "latency_slippage" term of ``derive_spread_floor()`` in the original
    notes, which name it without a formula; this Brownian scaling is this module's.
    """
    sigma = _c.non_negative("sigma_bps", sigma_bps)
    latency = _c.non_negative("latency_s", latency_s)
    z = _c.non_negative("z", z)
    return z * sigma * math.sqrt(latency)


def spread_floor_bps(fee_bps: float, adverse_selection_bps: float, latency_slippage_bps: float) -> float:
    """Minimum profitable quote depth: ``δ_min = fee + AS + latency slippage``.

    A fill at depth δ earns δ − fee (spread capture SC, DESIGN.md §6) and then loses
    the expected adverse move AS and the slippage accrued while the quote was stale;
    the expected edge δ − fee − AS − slippage is ≥ 0 iff δ ≥ δ_min.

    Units: all bps of the mid, per fill, one side (a depth / half-spread, not the
    full bid–ask spread).  ``fee_bps`` may be negative (a maker rebate); the other
    two must be ≥ 0.  The result can be ≤ 0 when a rebate exceeds the costs.

    Source: ``derive_spread_floor()`` in the original notes ("δ_min = fee + AS +
    latency_slippage").  (The background README notes that the original's *learned*
    ``spread_floor_bps`` actually tracked mean adverse selection only; this is the
    full floor.)
    """
    fee = _c.real("fee_bps", fee_bps)
    adverse = _c.non_negative("adverse_selection_bps", adverse_selection_bps)
    slip = _c.non_negative("latency_slippage_bps", latency_slippage_bps)
    return fee + adverse + slip


# ----------------------------------------------------------------------------- 3-4, 13. risk limits
# sigma_daily_from_bps, max_daily_loss, var99, max_drawdown, kill_switch_limits: defined in
# mm_runtime.risk_limits (the live kill switch derives its defaults from them; the runtime
# imports nothing from models) and re-exported here with Z_99 and SECONDS_PER_DAY.


# ----------------------------------------------------------------------------- 5. EWMA
def ewma_alpha(half_life: float, dt: float = 1.0) -> float:
    """EWMA weight of a new observation for a given half-life: ``α = 1 − 2^(−dt/h)``.

    Convention: ``x ← α·y + (1 − α)·x``.  After n steps of dt an old observation's
    weight is (1 − α)^n = 2^(−n·dt/h): it halves every h.  Same decay as the
    estimators' forgetting ``evidence *= 2**(-dt/h)`` (``QuoterConfig.forgetting_half_life_s``).

    Units: ``half_life`` and ``dt`` in the same unit — steps (dt = 1, the default) or
    seconds for irregular updates; both > 0.  Result dimensionless, in (0, 1).

    Source: ``derive_ewma_alpha()`` ("from target half-life") in the original notes.
    """
    h = _c.positive("half_life", half_life)
    dt = _c.positive("dt", dt)
    return -math.expm1(-math.log(2.0) * dt / h)


def ewma_half_life(alpha: float, dt: float = 1.0) -> float:
    """Inverse of :func:`ewma_alpha`: ``h = dt · ln 2 / (−ln(1 − α))``.

    ``alpha`` in (0, 1) (weight of the new observation); result in dt's unit.
    E.g. the original's "0.2 smoothing factor" for α_touch has h = 3.11 updates.
    """
    a = _c.open_unit("alpha", alpha)
    dt = _c.positive("dt", dt)
    return dt * math.log(2.0) / -math.log1p(-a)


# ----------------------------------------------------------------------------- 6. Kalman
def kalman_q_r(tick_volatility: float, spread: float) -> tuple[float, float]:
    """Noise variances of a random-walk Kalman filter on the efficient price.

    State x_t = x_{t−1} + w_t, w ~ N(0, Q); observation y_t = x_t + v_t (a mid or
    trade price), v ~ (0, R)::

        Q = tick_volatility²          (variance of the efficient price per step)
        R = (spread/2)² / 3 = spread²/12

    R is the variance of a uniform error on ±half-spread: an observed price lies
    anywhere inside the bid–ask spread around the efficient price.  The original
    notes say only "Q and R from tick volatility and spread"; this choice of R is
    this module's.

    Units: ``tick_volatility`` the standard deviation of the price change per
    update step and ``spread`` the full bid–ask spread, in the same unit — a fraction
    of the price (e.g. 2e-4 and 1e-3) or bps; both ≥ 0.  Result (Q, R) in that unit
    squared (price fraction² or bps²).

    Source: ``derive_kalman_noise()`` in the original notes.
    """
    vol = _c.non_negative("tick_volatility", tick_volatility)
    s = _c.non_negative("spread", spread)
    return vol * vol, (0.5 * s) ** 2 / 3.0


# ----------------------------------------------------------------------------- 7. regimes
def regime_hazard_rate(expected_duration: float) -> float:
    """Regime switching hazard: ``λ = 1/E[duration]``.

    A regime whose exit is memoryless (exponential duration, the continuous-time
    analogue of the HMM's geometric duration) with mean E[D] leaves at rate 1/E[D].
    Units: ``expected_duration`` seconds (> 0); result 1/s.

    Source: ``derive_hazard_rate()`` in the original notes.
    """
    return 1.0 / _c.positive("expected_duration", expected_duration)


def regime_sticky_diagonal(hazard_rate: float, bar_s: float) -> float:
    """Probability of staying in the regime over one bar: ``p_stay = exp(−λ·bar)``.

    The diagonal of the regime HMM's transition matrix (the sticky prior's mean
    diagonal; DESIGN.md §4) for bars of ``bar_s`` seconds (default bar 10 s,
    ``units.volatility_bar_s``).  For λ·bar ≪ 1, p_stay ≈ 1 − bar/E[D].

    Units: ``hazard_rate`` 1/s (≥ 0), ``bar_s`` seconds (> 0); result a probability.

    Source: ``regime_sticky_diagonal`` (Tier 3) and ``derive_hazard_rate()`` in the
    original notes.
    """
    lam = _c.non_negative("hazard_rate", hazard_rate)
    bar = _c.positive("bar_s", bar_s)
    return math.exp(-lam * bar)


# ----------------------------------------------------------------------------- 8-9. multipliers
def toxic_hour_multiplier(toxic_as_bps: float, normal_as_bps: float, fee_bps: float) -> float:
    """Spread multiplier for toxic hours: ``m = (AS_toxic + fee)/(AS_normal + fee)``.

    The cost a fill must cover is fee + adverse selection (:func:`spread_floor_bps`
    without slippage); in an hour whose AS is higher the spread scales by the ratio
    of those costs.

    Units: ``toxic_as_bps`` and ``normal_as_bps`` the mean adverse move per fill in
    those hours (bps, ≥ 0); ``fee_bps`` bps per fill (negative = rebate).  Requires
    AS_normal + fee > 0 and AS_toxic + fee ≥ 0.  Result dimensionless.

    Source: ``derive_toxic_hour_multiplier()`` and ``calibrate_toxic_hours()`` in the
    original notes.
    """
    toxic = _c.non_negative("toxic_as_bps", toxic_as_bps)
    normal = _c.non_negative("normal_as_bps", normal_as_bps)
    fee = _c.real("fee_bps", fee_bps)
    if normal + fee <= 0:
        raise ValueError(f"normal_as_bps + fee_bps must be > 0, got {normal} + {fee}")
    if toxic + fee < 0:
        raise ValueError(f"toxic_as_bps + fee_bps must be >= 0, got {toxic} + {fee}")
    return (toxic + fee) / (normal + fee)


def quote_latch_threshold_bps(fee_bps: float, slippage_bps: float) -> float:
    """Requote hysteresis: ``θ = 2·(fee + slippage)``, clamped at 0.

    A resting quote is kept ("latched") until its target price moves by more than θ.
    Moving it is worth it only if the move exceeds what a trade on the wrong price
    would cost on the way in and out: a round trip of two legs, each paying the fee
    and the slippage.

    Units: ``fee_bps`` bps per fill (negative = rebate); ``slippage_bps`` bps (≥ 0);
    result bps (≥ 0: a rebate larger than the slippage means requote on any move).

    Source: ``derive_quote_latch_threshold()`` ("2 × (fee + slippage)") in the
    original notes.
    """
    fee = _c.real("fee_bps", fee_bps)
    slip = _c.non_negative("slippage_bps", slippage_bps)
    return max(0.0, 2.0 * (fee + slip))


# ----------------------------------------------------------------------------- 10. ROC
class RocThreshold(NamedTuple):
    """Result of :func:`confidence_threshold_roc`."""

    threshold: float  # predict positive iff score >= threshold (inf: never)
    expected_cost: float  # (c_FP·FP + c_FN·FN)/n at that threshold, cost units per observation
    tpr: float  # true-positive rate at that threshold (nan without positives)
    fpr: float  # false-positive rate at that threshold (nan without negatives)


def confidence_threshold_roc(scores, labels, cost_fp: float, cost_fn: float) -> RocThreshold:
    """Score threshold minimising the empirical expected misclassification cost.

    The rule is "positive iff score ≥ t".  Over every operating point of the
    empirical ROC — t in the distinct scores, plus t = +inf (never positive) —
    minimise::

        cost(t) = (c_FP · FP(t) + c_FN · FN(t)) / n
                = (c_FP · FPR(t) · N₋ + c_FN · (1 − TPR(t)) · N₊) / n

    Ties (equal minimal cost, to 1e-12 relative): the **largest** threshold, i.e. the
    fewest positive calls.  With calibrated probabilities as scores the population
    optimum is t* = c_FP/(c_FP + c_FN) (Bayes decision rule; Elkan 2001, "The
    foundations of cost-sensitive learning").

    Units: ``scores`` any real, larger = more likely positive (1-D, finite);
    ``labels`` 0/1 or bool (1 = positive, e.g. an informed fill), same length,
    non-empty; ``cost_fp``, ``cost_fn`` ≥ 0 in any common unit (e.g. bps per
    event).  Result: :class:`RocThreshold` (threshold in score units, expected cost in
    cost units per observation).  O(n log n).

    Source: ``derive_confidence_threshold()`` ("cost-sensitive ROC optimization") in
    the original notes.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"scores must be a non-empty 1-D array, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    if y.shape != s.shape:
        raise ValueError(f"labels must have the shape of scores {s.shape}, got {y.shape}")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0/1 (or bool)")
    c_fp = _c.non_negative("cost_fp", cost_fp)
    c_fn = _c.non_negative("cost_fn", cost_fn)

    pos = np.sort(s[y == 1])
    neg = np.sort(s[y == 0])
    n_pos, n_neg, n = pos.size, neg.size, s.size
    thresholds = np.append(np.unique(s), np.inf)  # ascending
    fn = np.searchsorted(pos, thresholds, side="left")  # positives with score < t
    fp = n_neg - np.searchsorted(neg, thresholds, side="left")  # negatives with score >= t
    cost = (c_fp * fp + c_fn * fn) / n
    best = cost.min()
    tol = 1e-12 * max(abs(best), (c_fp + c_fn) / n)
    i = int(np.nonzero(cost <= best + tol)[0][-1])  # ties: the largest threshold
    tpr = (n_pos - fn[i]) / n_pos if n_pos else math.nan
    fpr = fp[i] / n_neg if n_neg else math.nan
    return RocThreshold(float(thresholds[i]), float(cost[i]), float(tpr), float(fpr))


# ----------------------------------------------------------------------------- 11. ladder spacing
def depth_spacing_ratio(kappa: float, n_levels: int, first_depth_bps: float, intensity_ratio: float) -> float:
    """Geometric ratio ρ of ladder depths from the fill-intensity curve A·e^(−κδ).

    Market orders reach depth ≥ δ at rate λ(δ) = A·e^(−κδ) (DESIGN.md §4, kappa
    model).  Asking each level to be filled ``intensity_ratio`` = r ∈ (0, 1) times as
    often as the previous one, λ(δ_{k+1}) = r·λ(δ_k), gives a constant *additive* gap
    δ_{k+1} − δ_k = ln(1/r)/κ.  The quoter's ladder is geometric, δ_k = δ₀·ρ^k
    (``QuoterConfig.level_ratio``), so ρ is chosen to match the two ends of that
    ladder — the first depth δ₀ (the GLFT half-spread) and the last,
    δ₀ + (K−1)·ln(1/r)/κ, whose intensity is r^(K−1)·λ(δ₀)::

        ρ = (1 + (K − 1)·ln(1/r)/(κ·δ₀))^(1/(K − 1))

    For K = 2 this is the exact first gap, 1 + ln(1/r)/(κδ₀).  Inner levels of the
    geometric ladder sit closer to the touch than the equal-intensity-ratio ones
    (fill more often), the outer end matches.

    Units: ``kappa`` 1/bps (> 0); ``n_levels`` K ≥ 2 (levels per side);
    ``first_depth_bps`` δ₀ bps (> 0); ``intensity_ratio`` r in (0, 1).  Result
    dimensionless, > 1.

    Source: ``derive_depth_spacing_ratio()`` ("from fill intensity curve") and the
    Tier 4 ``depth_spacing_ratio`` in the original notes.
    """
    kappa = _c.positive("kappa", kappa)
    if isinstance(n_levels, bool) or int(n_levels) != n_levels or n_levels < 2:
        raise ValueError(f"n_levels must be an integer >= 2, got {n_levels!r}")
    k = int(n_levels)
    d0 = _c.positive("first_depth_bps", first_depth_bps)
    r = _c.open_unit("intensity_ratio", intensity_ratio)
    gap = -math.log(r) / kappa
    return (1.0 + (k - 1) * gap / d0) ** (1.0 / (k - 1))


# ----------------------------------------------------------------------------- 12. reduce-only
def reduce_only_threshold(margin_available: float, margin_per_unit: float, position_limit: float) -> float:
    """|Inventory| at which quoting becomes reduce-only: ``min(M / m, q_max)``.

    The position the margin can carry, M/m, capped by the hard limit q_max.  Past
    it only the side that reduces |q| is quoted (``build_ladder``'s reduce-only rule,
    which switches at ``QuoterConfig.max_position``: pass this value there).

    Units: ``margin_available`` M, the margin that may back this asset's position,
    quote currency (≥ 0; the account's allocation, not what is left after the
    current position); ``margin_per_unit`` m, quote currency per base unit (> 0;
    price/leverage with ``QuoterConfig.leverage``); ``position_limit`` q_max, base
    units (> 0).  Result: base units.

    Source: ``derive_reduce_only_threshold()`` ("from margin analysis") in the
    original notes.
    """
    margin = _c.non_negative("margin_available", margin_available)
    per_unit = _c.positive("margin_per_unit", margin_per_unit)
    limit = _c.positive("position_limit", position_limit)
    return min(margin / per_unit, limit)
