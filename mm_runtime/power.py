"""Power analysis: how many observations a learned value needs before it is trusted.

For each conjugate family of :mod:`mm_runtime.conjugate` (Beta, Gamma, Normal,
Hawkes baseline, Inverse-Gamma, LogNormal): the observations ``n`` until the estimate
is within ``±rel_precision`` (a fraction of the true value) with probability
``confidence``, i.e. posterior ``cv <= rel_precision / z`` with
``z = Φ⁻¹((1 + confidence)/2)``, and the inverse (precision after ``n``).
:func:`calibration_thresholds` gives the ``min_n`` of ``is_calibrated(min_n, max_cv)``
for the quantities the live quoter learns (wired into
:class:`mm_runtime.config.QuoterConfig`).  Sources: Gelman et al., *Bayesian Data
Analysis*, 3rd ed., ch. 2; Cochran, *Sampling Techniques*, 3rd ed., §4.4; Hawkes &
Oakes 1974.  Standard library only.

The families' formulas, the derivations and the table's numbers: docs/runtime/power.md.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import NamedTuple

from . import _checks as _c

__all__ = [
    "z_value",
    "n_beta_proportion",
    "n_beta_for_cv",
    "cv_after_beta",
    "rel_precision_after_beta",
    "n_gamma_rate",
    "n_gamma_for_cv",
    "cv_after_gamma",
    "rel_precision_after_gamma",
    "exposure_for_events",
    "n_normal_mean",
    "n_normal_for_cv",
    "cv_after_normal",
    "rel_precision_after_normal",
    "n_hawkes_baseline",
    "cv_after_hawkes_baseline",
    "cv_after_inverse_gamma",
    "n_inverse_gamma_for_cv",
    "cv_after_lognormal",
    "n_lognormal_for_cv",
    "Threshold",
    "calibration_thresholds",
    "tier_min_n",
    "ALPHA_TOUCH_REF",
    "HAWKES_BRANCHING_REF",
    "ADVERSE_MOVE_CV_REF",
]

ALPHA_TOUCH_REF: float = 0.15
"""α at the touch the table is sized for: the original system's ``kelly_alpha_touch``
(and the first-bucket prior of ``example_bundle`` in the normal regime, ≈ 0.14)."""
HAWKES_BRANCHING_REF: float = 0.4
"""Branching ratio (spectral radius of the branching matrix) the Hawkes row assumes:
``example_bundle``'s rows sum to 0.3 + 0.1 = 0.4."""
ADVERSE_MOVE_CV_REF: float = 1.0
"""sd/mean of one informed fill's adverse move: exceedances of a threshold are
approximately exponential (generalised Pareto with shape 0; Pickands–Balkema–de Haan),
cv = 1; the move itself (threshold + excess) has cv < 1, so 1 is conservative."""

_SLACK = 1e-9  # ceil(170.00000000003) (float error) must be 170, not 171


# ----------------------------------------------------------------------------- checks
def _ceil(x: float) -> int:
    """Round a required count up (slack 1e-9·max(1, |x|) for float error), floored at 0."""
    return max(0, math.ceil(x - _SLACK * max(1.0, abs(x))))


def z_value(confidence: float = 0.95) -> float:
    """Two-sided standard-normal quantile ``z = Φ⁻¹((1 + confidence)/2)``.

    0.90 → 1.6449, 0.95 → 1.9600, 0.99 → 2.5758 (``statistics.NormalDist``)."""
    c = _c.open_unit("confidence", confidence)
    return NormalDist().inv_cdf(0.5 + 0.5 * c)


def _target_cv(rel_precision, confidence) -> float:
    r = _c.positive("rel_precision", rel_precision)
    return r / z_value(confidence)


# ----------------------------------------------------------------------------- Beta
def cv_after_beta(n: float, p: float, prior_strength: float = 0.0) -> float:
    """Posterior cv of a proportion after ``n`` Bernoulli observations.

    ``cv = sqrt((1-p) / (p·(n + s + 1)))``: a Beta(a, b) with mean ``p`` and
    ``a + b = s + n`` has variance ``p(1-p)/(a+b+1)`` (BDA3 §2.4; ``BetaBernoulli.std``).
    ``n`` counts observations (fills; soft updates count fractionally), ``s`` is the
    prior's pseudo-observations ``a0 + b0``; ``p`` the proportion the cell is at.
    Dimensionless."""
    p = _c.open_unit("p", p)
    total = _c.non_negative("n", n) + _c.non_negative("prior_strength", prior_strength) + 1.0
    return math.sqrt((1.0 - p) / (p * total))


def rel_precision_after_beta(n: float, p: float, confidence: float = 0.95, prior_strength: float = 0.0) -> float:
    """Relative half-width ``z·cv_after_beta(n, p, s)`` reached after ``n`` observations:
    the estimate is within ``±(this)·p`` of ``p`` with probability ``confidence``."""
    return z_value(confidence) * cv_after_beta(n, p, prior_strength)


def n_beta_for_cv(p: float, max_cv: float, prior_strength: float = 0.0) -> int:
    """Observations until the Beta posterior cv is at most ``max_cv`` (CV form).

    ``n = ceil((1-p)/(p·max_cv²) - s - 1)`` (:func:`cv_after_beta` solved for n),
    floored at 0.  Small ``p`` needs many more: n ∝ (1-p)/p."""
    p = _c.open_unit("p", p)
    c = _c.positive("max_cv", max_cv)
    s = _c.non_negative("prior_strength", prior_strength)
    return _ceil((1.0 - p) / (p * c * c) - s - 1.0)


def n_beta_proportion(p: float, rel_precision: float, confidence: float = 0.95, prior_strength: float = 0.0) -> int:
    """Bernoulli observations needed to estimate a proportion ``p`` to ``±rel_precision·p``
    at ``confidence`` (two-sided).

    ``n = ceil((z/rel)²·(1-p)/p - s - 1)``, z = :func:`z_value`, ``s = prior_strength``
    (the prior's pseudo-observations a0 + b0, subtracted).  Units: ``n`` counts
    observations (for α: resolved fills in one regime × depth-bucket cell).  Derivation
    and a worked example (p = 0.15, ±30 % at 90 % → 170 fills): docs/runtime/power.md.
    """
    return n_beta_for_cv(p, _target_cv(rel_precision, confidence), prior_strength)


# ----------------------------------------------------------------------------- Gamma
def cv_after_gamma(n: float, prior_shape: float = 0.0) -> float:
    """Posterior cv of a Gamma–Poisson / Gamma–Exponential rate after ``n`` events.

    ``cv = 1/sqrt(a0 + n)``: Gamma(shape, rate) has cv ``1/sqrt(shape)`` and each event
    (Poisson count or exponential observation) adds 1 to the shape (``_GammaBase.cv``).
    ``n`` counts EVENTS, not exposure: the exposure only sets the mean.  Needs
    ``a0 + n > 0``."""
    total = _c.non_negative("n", n) + _c.non_negative("prior_shape", prior_shape)
    if not total > 0:
        raise ValueError("n + prior_shape must be > 0")
    return 1.0 / math.sqrt(total)


def rel_precision_after_gamma(n: float, confidence: float = 0.95, prior_shape: float = 0.0) -> float:
    """Relative half-width ``z/sqrt(a0 + n)`` of a rate after ``n`` events."""
    return z_value(confidence) * cv_after_gamma(n, prior_shape)


def n_gamma_for_cv(max_cv: float, prior_shape: float = 0.0) -> int:
    """Events until the Gamma posterior cv is at most ``max_cv``: ``ceil(1/max_cv² - a0)``."""
    c = _c.positive("max_cv", max_cv)
    return _ceil(1.0 / (c * c) - _c.non_negative("prior_shape", prior_shape))


def n_gamma_rate(rel_precision: float, confidence: float = 0.95, prior_shape: float = 0.0) -> int:
    """Events needed to estimate a rate (Gamma–Poisson arrival rate, Gamma–Exponential
    κ) to ``±rel_precision`` relative at ``confidence``.

    ``z/sqrt(a0 + n) <= rel``  ⇒  ``n = ceil((z/rel)² - a0)``, ``a0 = prior_shape``
    (pseudo-events, subtracted).  ``n`` counts events (arrivals; for κ, observed sweep
    depths), whatever the exposure; the exposure that brings them is
    :func:`exposure_for_events` ``= n/rate``.  The rate's value does not enter.

    Example: ±20 % at 90 %: (1.6449/0.2)² = 67.64 → 68 events; at 95 %:
    (1.9600/0.2)² = 96.04 → 97."""
    return n_gamma_for_cv(_target_cv(rel_precision, confidence), prior_shape)


def exposure_for_events(n_events: float, rate: float) -> float:
    """Expected exposure until ``n_events`` events of a Poisson process: ``n/rate``
    (seconds when ``rate`` is per second)."""
    return _c.non_negative("n_events", n_events) / _c.positive("rate", rate)


# ----------------------------------------------------------------------------- Normal
def cv_after_normal(n: float, sigma_over_mean: float, prior_n: float = 0.0) -> float:
    """Posterior cv of a mean after ``n`` observations of known per-observation cv.

    ``cv = cv1/sqrt(n0 + n)``, ``cv1 = sigma_over_mean`` = σ/|μ| of ONE observation:
    the posterior variance of a Normal mean with known variance is σ²/(n0 + n)
    (BDA3 §2.5; ``NormalKnownVariance.strength = obs_var/var = n0``)."""
    cv1 = _c.positive("sigma_over_mean", sigma_over_mean)
    total = _c.non_negative("n", n) + _c.non_negative("prior_n", prior_n)
    if not total > 0:
        raise ValueError("n + prior_n must be > 0")
    return cv1 / math.sqrt(total)


def rel_precision_after_normal(
    n: float, sigma_over_mean: float, confidence: float = 0.95, prior_n: float = 0.0
) -> float:
    """Relative half-width ``z·cv1/sqrt(n0 + n)`` of a mean after ``n`` observations."""
    return z_value(confidence) * cv_after_normal(n, sigma_over_mean, prior_n)


def n_normal_for_cv(sigma_over_mean: float, max_cv: float, prior_n: float = 0.0) -> int:
    """Observations until the mean's posterior cv is at most ``max_cv``:
    ``ceil((cv1/max_cv)² - n0)``."""
    cv1 = _c.positive("sigma_over_mean", sigma_over_mean)
    c = _c.positive("max_cv", max_cv)
    return _ceil((cv1 / c) ** 2 - _c.non_negative("prior_n", prior_n))


def n_normal_mean(sigma_over_mean: float, rel_precision: float, confidence: float = 0.95, prior_n: float = 0.0) -> int:
    """Observations needed to estimate a mean to ``±rel_precision`` relative at
    ``confidence`` (Cochran §4.4).

    ``z·cv1/sqrt(n0 + n) <= rel``  ⇒  ``n = ceil((z·cv1/rel)² - n0)``, ``cv1 =
    sigma_over_mean`` (σ/|μ| of one observation, dimensionless), ``n0 = prior_n``
    (subtracted).  Normal approximation: for skewed observations it holds by the CLT
    once n is moderate (tens).

    Example: cv1 = 1, ±30 % at 90 %: (1.6449·1/0.3)² = 30.06 → 31."""
    return n_normal_for_cv(sigma_over_mean, _target_cv(rel_precision, confidence), prior_n)


# ----------------------------------------------------------------------------- Hawkes
def cv_after_hawkes_baseline(n_events: float, branching_ratio: float = 0.0) -> float:
    """Relative sd of the Hawkes baseline μ after ``n_events`` events (all events,
    immigrants and offspring), branching ratio ``b`` taken as known.

    ``1/((1-b)·sqrt(n_events))``: a Hawkes count over a long window has variance
    ``Λ·T/(1-b)²`` (cluster representation; Hawkes & Oakes 1974).  A lower bound on the
    events needed when the kernel is estimated too; derivation: docs/runtime/power.md.
    """
    n = _c.positive("n_events", n_events)
    b = _c.real("branching_ratio", branching_ratio)
    if not 0 <= b < 1:
        raise ValueError(f"branching_ratio must be in [0, 1), got {b}")
    return 1.0 / ((1.0 - b) * math.sqrt(n))


def n_hawkes_baseline(rel_precision: float, confidence: float = 0.95, branching_ratio: float = 0.0) -> int:
    """Events (all of them) needed to estimate a Hawkes baseline to ``±rel_precision``
    at ``confidence``: ``n = ceil((z/rel)² / (1-b)²)`` (:func:`cv_after_hawkes_baseline`
    solved for n).  b = 0 is the Poisson rate (:func:`n_gamma_rate` with no prior).

    Example: ±30 % at 90 %, b = 0.4: 30.06/0.36 = 83.5 → 84 events."""
    c = _target_cv(rel_precision, confidence)
    b = _c.real("branching_ratio", branching_ratio)
    if not 0 <= b < 1:
        raise ValueError(f"branching_ratio must be in [0, 1), got {b}")
    return _ceil(1.0 / (c * (1.0 - b)) ** 2)


# ----------------------------------------------------------------------------- Inverse-Gamma
def cv_after_inverse_gamma(n: float, prior_strength: float = 0.0) -> float:
    """Posterior cv of a variance (Inverse-Gamma, known mean) after ``n`` observations.

    InvGamma(shape, scale) has mean scale/(shape−1) and sd mean/sqrt(shape−2) (shape > 2;
    BDA3 Table A.1), so cv = ``1/sqrt(shape − 2)``; each observation adds 1/2 to the
    shape and the prior's strength is ``s = 2·shape0`` (``InverseGammaKnownMean.strength``),
    so ``shape = (s + n)/2``.  Needs ``(s + n)/2 > 2`` (else the sd is infinite)."""
    shape = 0.5 * (_c.non_negative("n", n) + _c.non_negative("prior_strength", prior_strength))
    if not shape > 2.0:
        raise ValueError(f"n + prior_strength must be > 4 (a finite posterior sd), got {2 * shape}")
    return 1.0 / math.sqrt(shape - 2.0)


def n_inverse_gamma_for_cv(max_cv: float, prior_strength: float = 0.0) -> int:
    """Observations until an Inverse-Gamma variance has cv at most ``max_cv``:
    ``ceil(2/max_cv² + 4 − s)`` (:func:`cv_after_inverse_gamma` solved for n).  For
    large n this is the classical ``var(s²)/σ⁴ = 2/n`` of a sample variance; the ``+4``
    is the Inverse-Gamma's ``shape − 2``.

    Example: ±30 % at 90 % (cv 0.30/1.6449 = 0.1824): 2/0.03327 + 4 = 64.1 → 65."""
    c = _c.positive("max_cv", max_cv)
    return _ceil(2.0 / (c * c) + 4.0 - _c.non_negative("prior_strength", prior_strength))


# ----------------------------------------------------------------------------- LogNormal
def cv_after_lognormal(n: float, sigma_log: float, prior_n: float = 0.0) -> float:
    """Posterior cv of the median ``exp(mu)`` of log-normal observations after ``n``.

    With ``log x ~ N(mu, s²)`` and s (``sigma_log``, the sd of one observation's log)
    taken as known, mu's posterior is normal with variance ``s²/(n0 + n)`` (BDA3 §2.5),
    so exp(mu) is log-normal with cv ``sqrt(exp(s²/(n0+n)) − 1)`` (``LogNormal.cv``,
    which uses the Normal–Inverse-Gamma's E[s²] in place of s²)."""
    s = _c.positive("sigma_log", sigma_log)
    total = _c.non_negative("n", n) + _c.non_negative("prior_n", prior_n)
    if not total > 0:
        raise ValueError("n + prior_n must be > 0")
    return math.sqrt(math.expm1(s * s / total))


def n_lognormal_for_cv(sigma_log: float, max_cv: float, prior_n: float = 0.0) -> int:
    """Observations until the median of log-normal observations has cv at most
    ``max_cv``: ``ceil(s²/ln(1 + max_cv²) − n0)`` (:func:`cv_after_lognormal` solved
    for n).  A per-observation cv of c1 is ``s² = ln(1 + c1²)``.

    Example: c1 = 0.2 (s² = 0.0392), ±30 % at 90 % (cv 0.1824): 0.0392/0.0327 = 1.2 → 2."""
    s = _c.positive("sigma_log", sigma_log)
    c = _c.positive("max_cv", max_cv)
    return _ceil(s * s / math.log1p(c * c) - _c.non_negative("prior_n", prior_n))


# ----------------------------------------------------------------------------- the table
class Threshold(NamedTuple):
    """One row of :func:`calibration_thresholds`."""

    quantity: str
    """Learned value (``Estimates`` / bundle parameter name)."""
    family: str
    """Conjugate family (``beta``, ``gamma``, ``normal``, ``hawkes``)."""
    target: str
    """The precision target in words."""
    rel_precision: float
    confidence: float
    min_n: int
    """Observations needed, data alone (prior pseudo-observations not credited)."""
    max_cv: float
    """The same target in CV form, ``rel_precision / z`` (the posterior cv it means)."""
    counts: str
    """What ``min_n`` counts, per cell."""
    tier: str | None
    """Calibration tier of ``mm_runtime.estimators`` gated by it; None = not learned online."""


def calibration_thresholds() -> dict[str, Threshold]:
    """Recommended ``min_n`` per learned quantity of the live quoter.

    Two-sided at 90 %, data alone (no prior credit): ``alpha`` (touch α ≈ 0.15 to ±30 %,
    tier ``pnl``), ``kappa`` (±20 %) and ``arrival_rate`` (±30 %, tier ``intensity``),
    and the fit-time checks ``hawkes_baseline`` (±30 %, branching 0.4) and
    ``adverse_move`` (±30 %, per-fill cv 1).  ``max_cv`` in each row is
    ``rel_precision / z``.  Each target's reason and arithmetic: docs/runtime/power.md.
    """
    z90 = 0.90
    rows = [
        Threshold("alpha", "beta", f"alpha_touch ~ {ALPHA_TOUCH_REF} to ±30% at 90%", 0.30, z90,
                  n_beta_proportion(ALPHA_TOUCH_REF, 0.30, z90), 0.0, "resolved fills per (regime, bucket)", "pnl"),
        Threshold("kappa", "gamma", "kappa to ±20% at 90%", 0.20, z90,
                  n_gamma_rate(0.20, z90), 0.0, "arrivals (sweep depths) per (regime, side)", "intensity"),
        Threshold("arrival_rate", "gamma", "arrival rate A to ±30% at 90%", 0.30, z90,
                  n_gamma_rate(0.30, z90), 0.0, "arrivals per (regime, side)", "intensity"),
        Threshold("hawkes_baseline", "hawkes",
                  f"Hawkes baseline mu to ±30% at 90%, branching ratio {HAWKES_BRANCHING_REF}", 0.30, z90,
                  n_hawkes_baseline(0.30, z90, HAWKES_BRANCHING_REF), 0.0, "events per (regime, side)", None),
        Threshold("adverse_move", "normal",
                  f"mean adverse move to ±30% at 90%, per-fill cv {ADVERSE_MOVE_CV_REF}", 0.30, z90,
                  n_normal_mean(ADVERSE_MOVE_CV_REF, 0.30, z90), 0.0, "informed fills", None),
    ]
    return {r.quantity: r._replace(max_cv=r.rel_precision / z_value(r.confidence)) for r in rows}


def tier_min_n(tier: str) -> int:
    """``min_n`` of a calibration tier (``pnl``, ``intensity``): the largest row of
    :func:`calibration_thresholds` in it (one gate serves all its quantities)."""
    ns = [r.min_n for r in calibration_thresholds().values() if r.tier == tier]
    if not ns:
        raise ValueError(f"tier must be one of 'pnl', 'intensity', got {tier!r}")
    return max(ns)
