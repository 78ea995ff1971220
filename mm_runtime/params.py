"""The learned-parameter registry (issue #7): every parameter of the live quoter
with a tier, a conjugate family, a prior, a learned estimate and a stated origin.

This module starts with the contract between data and the registry, :class:`Evidence`:
the sufficient statistics of some data about one named parameter.  The historical
calibrator (``models.historical``) and the online side both produce it; the
registry turns it into a conjugate update of that parameter's family
(:func:`check_evidence` refuses malformed or non-conjugate evidence, naming the
parameter and the field).

The registry (:class:`Registry`) is plain Python over :mod:`mm_runtime.conjugate`
(not in the jitted hot path): each parameter keeps a prior and a posterior of its
family; :meth:`Registry.update` applies evidence, :meth:`Registry.value` gives the
learned estimate once the parameter's tier is calibrated and the prior mean before.

Parameters (the original system's ``LearnedParameters``, background notes; "strength"
= the prior's pseudo-observation count, the family's ``strength`` in
:mod:`mm_runtime.conjugate`)::

    tier  name                     family         prior                     unit            min_n
    1     alpha_touch              beta           mean 0.25, strength 8     probability       170
    1     gamma_base               gamma          mean 0.15, strength 3     1/(bps·base)       31
    1     spread_floor_bps         normal         mean 5, var 4, strength 1 bps                30
    2     max_daily_loss_fraction  beta           mean 0.02, strength 50    fraction         1473
    2     max_drawdown             beta           mean 0.05, strength 20    fraction          571
    2     cascade_oi_threshold     beta           mean 0.02, strength 100   fraction         1473
    3     kappa                    gamma          mean 0.2, strength 4      1/bps              68
    3     hawkes_mu                gamma          mean 0.5, strength 5      1/s                84
    3     hawkes_alpha             beta           mean 0.3, strength 10     ratio              70
    3     hawkes_beta              gamma          mean 0.1, strength 1      1/s                31
    3     regime_sticky_diagonal   beta           mean 0.95, strength 100   prob. per bar     571
    4     kalman_q                 inverse_gamma  mean 1, strength 20       bps²               65
    4     kalman_r                 inverse_gamma  mean 0.25, strength 20    bps²               65
    4     depth_spacing_ratio      lognormal      mean 1.5, cv 0.2, str. 1  ratio              30
    4     microprice_decay         beta           mean 0.999, strength 1000 per update      30031

Prior parametrisations (mean m, strength s; every choice checked in
``tests/runtime/test_params.py`` against the closed form):

* **beta** — ``a = m·s, b = (1 − m)·s`` (``a + b = s``, ``BetaBernoulli.strength``).
  Evidence: ``bernoulli`` (successes of trials; fractional successes allowed, e.g. a
  loss fraction of one day as a soft success).
* **gamma** — ``shape = s, rate = s/m`` (``GammaPoisson.strength`` = shape, in
  events).  Evidence: ``poisson`` (count over exposure, Gamma–Poisson) or
  ``exponential`` (count observations summing to total, Gamma–Exponential).
* **normal** — a Normal prior on the mean with known observation variance
  (``NormalKnownVariance``): prior variance ``var`` as given, observation variance
  ``obs_var = s·var`` so that the strength ``obs_var/var = s``.  The issue gives
  Normal(5, var 4) and no strength: s = 1, i.e. the prior is worth one observation
  and one observation has sd 2 bp.  Evidence: ``values`` on that scale (e.g. one
  break-even depth per window, not one markout per fill).
* **inverse_gamma** — a variance with known observation mean ``known_mean`` (0:
  Kalman innovations), ``InverseGammaKnownMean``: strength = 2·shape (each
  observation adds 1/2 to the shape), so ``shape = s/2`` and ``scale = m·(shape − 1)``
  (mean scale/(shape − 1) = m).  Needs s > 2 for a finite mean (s > 4 for a finite
  sd).  Evidence: ``values`` (the innovations themselves).
* **lognormal** — positive observations ``log x ~ N(mu, σ²)`` with a
  Normal–Inverse-Gamma prior on (mu, σ²) (``LogNormal``), from the mean m and the
  per-observation cv c: ``σ² = ln(1 + c²)``, ``lam = s``, ``shape = 1 + s/2``,
  ``scale = σ²·s/2`` (so E[σ²] = ln(1 + c²)) and ``mu = ln m − σ²/2`` (so the
  estimate ``exp(mu + E[σ²]/2)`` = m).  The issue gives mean 1.5, cv 0.2 and no
  strength: s = 1, with which the prior's own uncertainty about the median exp(mu)
  also has cv c (``LogNormal.cv`` = sqrt(expm1(σ²/lam))).  The interval is that of
  the median.  Evidence: ``values`` (> 0).

Units follow DESIGN.md §2.  κ is in 1/bps: the original's prior "2000 per unit of
price fraction" is 2000 × 1e-4 = 0.2 per bp (1 bp = 1e-4 of the price).  Kalman
noise variances are in bps²: the original's Q = 1e-8 and R = 2.5e-9 (price
fraction²) are 1e-8/1e-8 = 1 bps² and 0.25 bps².

Calibration thresholds (:func:`param_spec`; :mod:`mm_runtime.power`).  A parameter
is calibrated when ``n >= min_n`` (evidence absorbed since the prior, data alone:
the prior's pseudo-observations are not credited) and its posterior cv is at most
``max_cv``.  The target is the quoter's: ±30 % at 90 % (``max_cv`` = 0.30/1.6449 =
0.1824), with ``min_n`` from the family's power function at the prior mean
(``n_beta_for_cv``, ``n_gamma_for_cv``, ``n_normal_for_cv``,
``n_inverse_gamma_for_cv``, ``n_lognormal_for_cv``).  Three parameters are the
quoter's own rows of :func:`mm_runtime.power.calibration_thresholds` (one gate for
one quantity): ``alpha_touch`` = row ``alpha`` (sized at α = 0.15, 170 fills),
``kappa`` = row ``kappa`` (±20 % at 90 %, 68 depths), ``hawkes_mu`` = row
``hawkes_baseline`` (84 events at branching 0.4).  Beta parameters near 1
(``regime_sticky_diagonal``, ``microprice_decay``) are sized and tested on ``1 − p``
(the leave / decay probability: a relative precision on p ≈ 1 says nothing).  Every
``min_n`` is floored at 30 (:data:`MIN_N_FLOOR`, the usual minimum for the normal
approximation behind the power formulas).  A **tier is ready when every parameter
in it is calibrated**; :meth:`Registry.value` uses the learned estimate of a
parameter only when its tier is ready (``tier1_ready`` … ``tier4_ready`` of
:class:`CalibrationStatus`), the prior mean before.

Bundle priors (:meth:`Registry.from_bundle`): where a prior bundle has a parameter,
its summary replaces the default prior by moment matching (mean and variance of the
parameter), the strength capped at ``max_strength`` (default 100, DESIGN.md §5: a
bundle must not make a parameter immovable) and floored at 1 (3 for
``inverse_gamma``, whose mean needs shape > 1).  Mixtures are moment-matched as a
whole (the between-cell spread widens the prior).  Mapping:

* ``alpha_touch`` ← ``alpha[r][first bucket]``, regimes weighted by the stationary
  distribution of ``regime_transition`` (the long-run share of time in each regime);
* ``kappa`` ← ``kappa[r][s]`` (1/bps in both), stationary regime mix, sides equal;
* ``hawkes_mu`` ← ``hawkes_baseline[r][s]``, the same mix;
* ``hawkes_alpha`` ← the diagonal of ``hawkes_branching`` (self-excitation), sides equal;
* ``hawkes_beta`` ← ``hawkes_decay`` (lognormal → gamma by moments);
* ``regime_sticky_diagonal`` ← the diagonal marginals Beta(c_rr, Σc − c_rr) of
  ``regime_transition``, stationary mix;
* any other parameter ← an extra ``params.<name>`` summary of the bundle, if any.

State (:meth:`Registry.save` / :meth:`Registry.load`): one JSON document,
``{"schema_version": 1, "kind": "mm_runtime.params.Registry", "asset", "saved_at",
"params": {name: {"family", "tier", "prior": {...}, "posterior": {...},
"prior_source", "updates", "sources"}}}``, written atomically (temp file, fsync,
rename: :func:`mm_runtime.bundle.atomic_write_bytes`).  A file that is truncated,
not JSON, of another schema version, or whose parameters are missing, unknown, of
another family or out of their support is refused with :class:`RegistryStateError`
naming the file and the field, and the registry is left as it was.

Monitoring: :meth:`Registry.publish` sets ``mm_learned_<name>`` (estimate),
``mm_learned_<name>_data_weight`` and ``mm_learned_params_calibrated{tier}``
(:mod:`mm_runtime.metrics`); :meth:`Registry.maybe_log` writes one structured
"learned parameters" record (:mod:`mm_runtime.logs`) at most every ``interval_s``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from pydantic import TypeAdapter

from . import _checks as _c
from . import power
from .bundle import (
    REGIMES,
    SIDES,
    BetaSummary,
    ConjugateSummary,
    DirichletSummary,
    GammaSummary,
    InverseGammaSummary,
    LogNormalSummary,
    NormalInverseGammaSummary,
    NormalSummary,
    PriorBundle,
    atomic_write_bytes,
    parse_state_document,
)
from .conjugate import (
    BetaBernoulli,
    BetaParams,
    GammaExponential,
    GammaParams,
    GammaPoisson,
    InverseGammaKnownMean,
    InverseGammaParams,
    LogNormal,
    NIGParams,
    NormalKnownVariance,
    NormalParams,
)
from .estimators import _stationary

if TYPE_CHECKING:  # pragma: no cover
    from .metrics import AssetMetrics

__all__ = [
    "Evidence",
    "EVIDENCE_KINDS",
    "FAMILIES",
    "CONJUGATE_KINDS",
    "TIERS",
    "TIER_NAMES",
    "MIN_N_FLOOR",
    "TARGET_REL_PRECISION",
    "TARGET_CONFIDENCE",
    "BUNDLE_MAX_STRENGTH",
    "STATE_SCHEMA_VERSION",
    "LOG_INTERVAL_S",
    "ParamSpec",
    "param_spec",
    "spec_prior",
    "DEFAULT_SPECS",
    "check_evidence",
    "CalibrationStatus",
    "ParamSummary",
    "RegistryStateError",
    "Registry",
]

log = logging.getLogger("mm_runtime.params")

EVIDENCE_KINDS = ("bernoulli", "poisson", "exponential", "values")
"""What an :class:`Evidence` carries:

``bernoulli``    ``successes`` out of ``trials`` (Beta families).
``poisson``      ``count`` events in ``exposure`` seconds (Gamma rate families).
``exponential``  ``count`` observations of an exponential variable summing to
                 ``total`` (Gamma rate of an exponential: κ from depths, β from lags).
``values``       ``values``: direct observations of the quantity (Normal,
                 LogNormal, Inverse-Gamma families).
"""


class Evidence(NamedTuple):
    """Sufficient statistics of data about one registry parameter ``name``.

    Build one with the class methods; ``weight`` scales the statistics (a soft or
    down-weighted update, 0 < weight <= 1), ``source`` says where it came from
    (shown by ``mmcal params``).
    """

    name: str
    kind: str
    successes: float = 0.0
    trials: float = 0.0
    count: float = 0.0
    exposure: float = 0.0
    total: float = 0.0
    values: tuple[float, ...] = ()
    weight: float = 1.0
    source: str = ""

    @classmethod
    def bernoulli(cls, name: str, successes: float, trials: float, *, weight: float = 1.0, source: str = "") -> Evidence:
        return cls(name, "bernoulli", successes=float(successes), trials=float(trials), weight=weight, source=source)

    @classmethod
    def poisson(cls, name: str, count: float, exposure: float, *, weight: float = 1.0, source: str = "") -> Evidence:
        return cls(name, "poisson", count=float(count), exposure=float(exposure), weight=weight, source=source)

    @classmethod
    def exponential(cls, name: str, count: float, total: float, *, weight: float = 1.0, source: str = "") -> Evidence:
        return cls(name, "exponential", count=float(count), total=float(total), weight=weight, source=source)

    @classmethod
    def of_values(cls, name: str, values, *, weight: float = 1.0, source: str = "") -> Evidence:
        return cls(name, "values", values=tuple(float(v) for v in values), weight=weight, source=source)


# ----------------------------------------------------------------------------- families
FAMILIES = ("beta", "gamma", "normal", "inverse_gamma", "lognormal")
"""Conjugate families a registry parameter can have (see the module docstring)."""

CONJUGATE_KINDS: dict[str, tuple[str, ...]] = {
    "beta": ("bernoulli",),
    "gamma": ("poisson", "exponential"),
    "normal": ("values",),
    "inverse_gamma": ("values",),
    "lognormal": ("values",),
}
"""Evidence kinds conjugate to each family (anything else is refused)."""

_FAMILY = {
    "beta": BetaBernoulli,
    "gamma": GammaPoisson,  # mean/std/interval/strength are shared by both Gamma families
    "normal": NormalKnownVariance,
    "inverse_gamma": InverseGammaKnownMean,
    "lognormal": LogNormal,
}
_PARAMS = {
    "beta": BetaParams,
    "gamma": GammaParams,
    "normal": NormalParams,
    "inverse_gamma": InverseGammaParams,
    "lognormal": NIGParams,
}
_POSITIVE_FIELDS = {"a", "b", "shape", "rate", "var", "obs_var", "scale", "lam"}

TIERS = (1, 2, 3, 4)
TIER_NAMES = {1: "P&L critical", 2: "risk", 3: "calibration", 4: "microstructure"}

TARGET_REL_PRECISION = 0.30
TARGET_CONFIDENCE = 0.90
"""Default calibration target: ±30 % at 90 % (the quoter's α and A target,
:func:`mm_runtime.power.calibration_thresholds`)."""
MIN_N_FLOOR = 30
"""No ``min_n`` below this: the power formulas rest on a normal approximation."""
BUNDLE_MAX_STRENGTH = 100.0
"""Default cap on a bundle-derived prior's pseudo-observations (:meth:`Registry.from_bundle`)."""
STATE_SCHEMA_VERSION = 1
STATE_KIND = "mm_runtime.params.Registry"
LOG_INTERVAL_S = 60.0
"""Default interval of the "learned parameters" log record (:meth:`Registry.maybe_log`)."""
DEFAULT_SOURCE = "default (the original system's prior)"
_QUOTER_ROWS = {"alpha_touch": "alpha", "kappa": "kappa", "hawkes_mu": "hawkes_baseline"}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_MAX_SOURCES = 20


# ----------------------------------------------------------------------------- specs
class ParamSpec(NamedTuple):
    """One registry parameter: identity, default prior, thresholds, derivation.

    Build with :func:`param_spec` (which validates it and fills ``min_n``/``max_cv``)."""

    name: str
    tier: int
    family: str
    mean: float
    """Default prior mean, in ``unit``."""
    strength: float
    """Default prior pseudo-observations."""
    unit: str
    note: str
    """Derivation: what it is, where its prior comes from, what evidence feeds it,
    which :mod:`mm_runtime.derived` function derives it."""
    var: float | None = None
    """normal: the prior variance of the mean (``obs_var = strength·var``)."""
    cv: float | None = None
    """lognormal: the cv of one observation."""
    known_mean: float = 0.0
    """inverse_gamma: the known mean of the observations."""
    complement: bool = False
    """beta: size and test the precision on ``1 − p`` (p near 1)."""
    min_n: int = 0
    max_cv: float = math.inf
    threshold: str = ""
    """How ``min_n``/``max_cv`` were chosen."""


def spec_prior(spec: ParamSpec):
    """The conjugate parameters of ``spec``'s default prior (see the module docstring)."""
    return _prior(spec, spec.mean, spec.strength, spec.var, spec.cv)


def _prior(spec: ParamSpec, m: float, s: float, var: float | None = None, cv: float | None = None):
    f = spec.family
    if f == "beta":
        return BetaParams(m * s, (1.0 - m) * s)
    if f == "gamma":
        return GammaParams(s, s / m)
    if f == "normal":
        return NormalParams(m, var, s * var)
    if f == "inverse_gamma":
        shape = 0.5 * s
        return InverseGammaParams(shape, m * (shape - 1.0), spec.known_mean)
    s2 = math.log1p(cv * cv)  # lognormal
    return NIGParams(math.log(m) - 0.5 * s2, s, 1.0 + 0.5 * s, 0.5 * s2 * s)


def _thresholds(spec: ParamSpec, rel: float, conf: float) -> tuple[int, float, str]:
    """(min_n, max_cv, how) for ``spec`` at the target ±rel at conf (module docstring)."""
    if spec.name in _QUOTER_ROWS:
        row = power.calibration_thresholds()[_QUOTER_ROWS[spec.name]]
        return (max(row.min_n, MIN_N_FLOOR), row.max_cv,
                f"power.calibration_thresholds()['{row.quantity}']: {row.target}, n = {row.min_n}")
    c = rel / power.z_value(conf)
    f = spec.family
    if f == "beta":
        p = 1.0 - spec.mean if spec.complement else spec.mean
        n = power.n_beta_for_cv(p, c)
        how = f"n_beta_for_cv({'1 - ' if spec.complement else ''}p = {p:g}, cv {c:.4g})"
    elif f == "gamma":
        n, how = power.n_gamma_for_cv(c), f"n_gamma_for_cv(cv {c:.4g})"
    elif f == "normal":
        cv1 = math.sqrt(spec.strength * spec.var) / abs(spec.mean)
        n, how = power.n_normal_for_cv(cv1, c), f"n_normal_for_cv(cv1 = {cv1:.4g}, cv {c:.4g})"
    elif f == "inverse_gamma":
        n, how = power.n_inverse_gamma_for_cv(c), f"n_inverse_gamma_for_cv(cv {c:.4g})"
    else:
        s_log = math.sqrt(math.log1p(spec.cv**2))
        n, how = power.n_lognormal_for_cv(s_log, c), f"n_lognormal_for_cv(s_log = {s_log:.4g}, cv {c:.4g})"
    how = f"±{rel:.0%} at {conf:.0%}: {how} = {n}"
    if n < MIN_N_FLOOR:
        how += f", floored at {MIN_N_FLOOR}"
    return max(n, MIN_N_FLOOR), c, how


def param_spec(
    name: str,
    tier: int,
    family: str,
    mean: float,
    strength: float,
    unit: str,
    note: str,
    *,
    var: float | None = None,
    cv: float | None = None,
    known_mean: float = 0.0,
    complement: bool = False,
    rel_precision: float = TARGET_REL_PRECISION,
    confidence: float = TARGET_CONFIDENCE,
    min_n: int | None = None,
    max_cv: float | None = None,
) -> ParamSpec:
    """A validated :class:`ParamSpec`; ``min_n``/``max_cv`` default to the power
    analysis at ``±rel_precision`` with ``confidence`` (module docstring)."""
    where = f"parameter {name!r}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{where}: name: must match {_NAME.pattern}")
    if tier not in TIERS:
        raise ValueError(f"{where}: tier: must be one of {TIERS}, got {tier!r}")
    if family not in FAMILIES:
        raise ValueError(f"{where}: family: must be one of {FAMILIES}, got {family!r}")
    try:
        mean = _c.real("mean", mean)
        strength = _c.positive("strength", strength)
        if family in ("beta",):
            _c.open_unit("mean", mean)
        if family in ("gamma", "inverse_gamma", "lognormal"):
            _c.positive("mean", mean)
        if family == "normal":
            var = _c.positive("var", var)
        if family == "lognormal":
            cv = _c.positive("cv", cv)
        if family == "inverse_gamma" and not strength > 2.0:
            raise ValueError(f"strength must be > 2 for an inverse_gamma (finite mean), got {strength}")
        known_mean = _c.real("known_mean", known_mean)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    spec = ParamSpec(name, int(tier), family, mean, strength, unit, note, var, cv, known_mean, bool(complement))
    n, c, how = _thresholds(spec, rel_precision, confidence)
    if min_n is not None:
        n, how = int(min_n), "set explicitly"
    if max_cv is not None:
        c = float(max_cv)
    return spec._replace(min_n=n, max_cv=c, threshold=how)


DEFAULT_SPECS: tuple[ParamSpec, ...] = (
    # ---- tier 1: P&L critical
    param_spec(
        "alpha_touch", 1, "beta", 0.25, 8.0, "probability",
        "P(informed | passive fill at the touch): Kelly's edge E = (1-a)SC - a AS (DESIGN.md §6). "
        "Evidence: bernoulli(informed fills, resolved fills) at the touch (markout > threshold). "
        "Bundle: params.alpha[*][first bucket], stationary regime mix.",
    ),
    param_spec(
        "gamma_base", 1, "gamma", 0.15, 3.0, "1/(bps*base unit)",
        "GLFT risk aversion gamma (DESIGN.md §6 ladder). Derivable: "
        "derived.gamma_for_target_spread(target half-spread, A, kappa, sigma). "
        "Evidence: poisson/exponential (Gamma family).",
    ),
    param_spec(
        "spread_floor_bps", 1, "normal", 5.0, 1.0, "bps",
        "Minimum profitable quote depth. Derivable: derived.spread_floor_bps(fee, adverse selection, "
        "derived.latency_slippage_bps(sigma, latency)). Prior N(5, var 4) worth one observation "
        "(obs var 4 bps^2). Evidence: values, one break-even depth per window.",
        var=4.0,
    ),
    # ---- tier 2: risk
    param_spec(
        "max_daily_loss_fraction", 2, "beta", 0.02, 50.0, "fraction of account",
        "Daily loss limit / account. Derivable: derived.max_daily_loss(account, kelly f, "
        "derived.sigma_daily_from_bps(sigma)) / account = 2 f sigma_daily (derived.kill_switch_limits). "
        "Evidence: bernoulli, a day's loss fraction as a soft success of one trial.",
    ),
    param_spec(
        "max_drawdown", 2, "beta", 0.05, 20.0, "fraction of account",
        "Drawdown limit. Derivable: derived.max_drawdown(derived.var99(sigma, horizon), horizon factor). "
        "Evidence: bernoulli (soft successes).",
    ),
    param_spec(
        "cascade_oi_threshold", 2, "beta", 0.02, 100.0, "fraction of open interest",
        "Open-interest drop that flags a liquidation cascade (original calibrate_cascade_threshold: "
        "OI drops before bad fills). No closed form. Evidence: bernoulli (soft successes).",
    ),
    # ---- tier 3: calibration
    param_spec(
        "kappa", 3, "gamma", 0.2, 4.0, "1/bps",
        "Depth decay of market-order arrivals A exp(-kappa delta) (DESIGN.md §4). Original prior "
        "2000 per unit of price fraction = 2000 x 1e-4 = 0.2 per bp. Evidence: exponential(sweeps, "
        "total depth in bps). Bundle: params.kappa[*][*] (1/bps), stationary regime mix. Used by "
        "derived.gamma_for_target_spread and derived.depth_spacing_ratio.",
    ),
    param_spec(
        "hawkes_mu", 3, "gamma", 0.5, 5.0, "1/s",
        "Hawkes baseline intensity (immigrant market orders per second). Evidence: poisson(events, "
        "seconds). Bundle: params.hawkes_baseline[*][*], stationary regime mix.",
    ),
    param_spec(
        "hawkes_alpha", 3, "beta", 0.3, 10.0, "branching ratio",
        "Hawkes self-excitation n_ss (expected children per event of the same side). Evidence: "
        "bernoulli. Bundle: diagonal of params.hawkes_branching.",
    ),
    param_spec(
        "hawkes_beta", 3, "gamma", 0.1, 1.0, "1/s",
        "Hawkes kernel decay beta (memory 1/beta s). Evidence: exponential(children, total parent-child "
        "lag in s). Bundle: params.hawkes_decay (lognormal, moment-matched to a gamma).",
    ),
    param_spec(
        "regime_sticky_diagonal", 3, "beta", 0.95, 100.0, "probability per volatility bar",
        "P(stay in the regime over one bar). Derivable: derived.regime_sticky_diagonal("
        "derived.regime_hazard_rate(E[duration]), bar_s). Evidence: bernoulli(stays, bars). "
        "Bundle: diagonal of params.regime_transition, stationary mix. Sized on 1 - p.",
        complement=True,
    ),
    # ---- tier 4: microstructure
    param_spec(
        "kalman_q", 4, "inverse_gamma", 1.0, 20.0, "bps^2",
        "Kalman process noise Q = (tick volatility)^2. Derivable: derived.kalman_q_r(tick vol, spread)[0]. "
        "Original 1e-8 (price fraction^2) = 1 bps^2. Evidence: values, efficient-price increments per "
        "step in bps (known mean 0).",
    ),
    param_spec(
        "kalman_r", 4, "inverse_gamma", 0.25, 20.0, "bps^2",
        "Kalman observation noise R = spread^2/12. Derivable: derived.kalman_q_r(tick vol, spread)[1]. "
        "Original 2.5e-9 (price fraction^2) = 0.25 bps^2. Evidence: values, observation residuals in bps "
        "(known mean 0).",
    ),
    param_spec(
        "depth_spacing_ratio", 4, "lognormal", 1.5, 1.0, "ratio",
        "Geometric ratio of ladder depths. Derivable: derived.depth_spacing_ratio(kappa, levels, first "
        "depth, intensity ratio). Prior mean 1.5, cv 0.2, worth one observation. Evidence: values (> 1).",
        cv=0.2,
    ),
    param_spec(
        "microprice_decay", 4, "beta", 0.999, 1000.0, "per update",
        "Per-update persistence of the microprice imbalance signal; 1 - derived.ewma_alpha(half-life) "
        "(0.999 = a half-life of 693 updates). Evidence: bernoulli. Sized on 1 - p.",
        complement=True,
    ),
)
"""The parameters of issue #7 item 1 (module docstring table)."""


# ----------------------------------------------------------------------------- evidence checks
def check_evidence(ev: Evidence, family: str | None = None) -> Evidence:
    """Refuse malformed evidence (and, given ``family``, evidence not conjugate to it)
    with a ``ValueError`` naming the parameter and the field; returns ``ev``."""
    name = getattr(ev, "name", None)
    if not isinstance(ev, Evidence):
        raise ValueError(f"evidence: expected an Evidence, got {type(ev).__name__}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"evidence: name: must be a non-empty string, got {name!r}")
    where = f"evidence for {name!r}"
    if ev.kind not in EVIDENCE_KINDS:
        raise ValueError(f"{where}: kind: unknown kind {ev.kind!r} (expected one of {EVIDENCE_KINDS})")
    if family is not None:
        if family not in CONJUGATE_KINDS:
            raise ValueError(f"{where}: family: unknown family {family!r}")
        if ev.kind not in CONJUGATE_KINDS[family]:
            raise ValueError(
                f"{where}: kind: {ev.kind!r} is not conjugate to the {family} family of {name!r} "
                f"(expected {' or '.join(CONJUGATE_KINDS[family])})"
            )
    try:
        w = _c.real("weight", ev.weight)
        if not 0.0 < w <= 1.0:
            raise ValueError(f"weight must be in (0, 1], got {w}")
        if ev.kind == "bernoulli":
            s, t = _c.non_negative("successes", ev.successes), _c.non_negative("trials", ev.trials)
            if s > t:
                raise ValueError(f"successes ({s:g}) must be <= trials ({t:g})")
        elif ev.kind == "poisson":
            _c.non_negative("count", ev.count)
            _c.non_negative("exposure", ev.exposure)
        elif ev.kind == "exponential":
            n, tot = _c.non_negative("count", ev.count), _c.non_negative("total", ev.total)
            if n == 0 and tot > 0:
                raise ValueError(f"total ({tot:g}) must be 0 when count is 0")
        else:
            for i, x in enumerate(ev.values):
                v = _c.real(f"values[{i}]", x)
                if family == "lognormal" and not v > 0:
                    raise ValueError(f"values[{i}] must be > 0 for a lognormal, got {v}")
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    return ev


@partial(jax.jit, static_argnums=0)
def _fold_values(family, post, xs, n, w):
    """``n`` single-observation updates ``family.update(post, xs[i], w)``, in order."""
    return lax.fori_loop(0, n, lambda i, p: family.update(p, xs[i], w), post)


def _floats(p):
    return type(p)(*(float(x) for x in p))


def _apply(family: str, post, ev: Evidence):
    """The posterior after ``ev`` (already checked); conjugate updates only."""
    w = float(ev.weight)
    if ev.kind == "bernoulli":
        return _floats(BetaBernoulli.update_counts(post, w * ev.successes, w * (ev.trials - ev.successes)))
    if ev.kind == "poisson":
        return _floats(GammaPoisson.update(post, ev.count, ev.exposure, w))
    if ev.kind == "exponential":
        if ev.count == 0:
            return post
        # count observations summing to total = one update at their mean, weighted count:
        # shape + w·count, rate + w·total (GammaExponential.update, linear in the statistics)
        return _floats(GammaExponential.update(post, ev.total / ev.count, w * ev.count))
    if not ev.values:
        return post
    n = len(ev.values)
    size = 1 << (n - 1).bit_length()  # padded to a power of two: one compilation per size
    xs = np.ones(size)
    xs[:n] = ev.values
    p = _PARAMS[family](*(jnp.asarray(x, dtype=jnp.float64) for x in post))
    return _floats(_fold_values(_FAMILY[family], p, jnp.asarray(xs), n, w))


# ----------------------------------------------------------------------------- results
class CalibrationStatus(NamedTuple):
    """Per-tier readiness (a tier is ready when all its parameters are calibrated)."""

    tier1_ready: bool
    tier2_ready: bool
    tier3_ready: bool
    tier4_ready: bool
    calibrated: dict[str, bool]
    """Per parameter."""

    def ready(self, tier: int) -> bool:
        if tier not in TIERS:
            raise ValueError(f"tier must be one of {TIERS}, got {tier!r}")
        return bool(self[tier - 1])

    def tiers(self) -> dict[str, bool]:
        return {f"tier{t}_ready": self.ready(t) for t in TIERS}


class ParamSummary(NamedTuple):
    """Everything ``mmcal params show`` prints about one parameter."""

    name: str
    tier: int
    family: str
    unit: str
    prior_mean: float
    prior_strength: float
    prior_source: str
    estimate: float
    """Posterior mean (lognormal: the plug-in mean exp(mu + E[σ²]/2))."""
    std: float
    lo: float
    hi: float
    """95 % equal-tailed credible interval (lognormal: of the median exp(mu))."""
    data_weight: float
    n: float
    cv: float
    """Posterior cv (of 1 − p for the ``complement`` Beta parameters)."""
    min_n: int
    max_cv: float
    calibrated: bool
    tier_ready: bool
    value: float
    """What :meth:`Registry.value` returns: ``estimate`` when the tier is ready, else ``prior_mean``."""
    in_use: str
    """``learned`` or ``prior``."""
    updates: int
    sources: tuple[str, ...]
    threshold: str
    note: str

    def to_dict(self) -> dict[str, Any]:
        d = self._asdict()
        d["interval"] = [d.pop("lo"), d.pop("hi")]
        d["sources"] = list(self.sources)
        return d


class RegistryStateError(ValueError):
    """A registry state file that is refused; the message names the file and the field."""


@dataclass
class _Entry:
    prior: Any
    post: Any
    prior_source: str
    updates: int = 0
    sources: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- bundle moments
_SUMMARY = TypeAdapter(ConjugateSummary)


def _moments(s) -> tuple[float, float]:
    """(mean, variance) of the parameter described by a bundle summary."""
    if isinstance(s, BetaSummary):
        m = s.mean()
        return m, m * (1.0 - m) / (s.a + s.b + 1.0)
    if isinstance(s, GammaSummary):
        return s.shape / s.rate, s.shape / s.rate**2
    if isinstance(s, LogNormalSummary):
        m = s.mean()
        return m, math.expm1(s.sigma**2) * m * m
    if isinstance(s, NormalSummary):
        return s.mu, s.sigma**2
    if isinstance(s, InverseGammaSummary):
        m = s.mean()
        return m, (m * m / (s.shape - 2.0) if s.shape > 2.0 else math.inf)
    if isinstance(s, NormalInverseGammaSummary):
        return s.mu, (s.scale / (s.lam * (s.shape - 1.0)) if s.shape > 1.0 else math.inf)
    raise ValueError(f"a {s.family} summary has no scalar moments")


def _mix(parts: Iterable[tuple[float, Any]]) -> tuple[float, float]:
    """Moments of a mixture Σ w_i·D_i (weights summing to 1): m = Σ w m_i,
    v = Σ w (v_i + m_i²) − m² (law of total variance)."""
    ws, ms, vs = zip(*((w, *_moments(s)) for w, s in parts), strict=True)
    m = sum(w * mi for w, mi in zip(ws, ms, strict=True))
    v = sum(w * (vi + mi * mi) for w, mi, vi in zip(ws, ms, vs, strict=True)) - m * m
    return m, max(v, 0.0)


def _prior_from_moments(spec: ParamSpec, m: float, v: float, cap: float | None, where: str):
    """The prior of ``spec``'s family with mean ``m`` and variance ``v`` (moment
    matching), strength within [floor, cap] (module docstring)."""
    f = spec.family
    lo = 3.0 if f == "inverse_gamma" else 1.0
    hi = math.inf if cap is None else max(cap, lo)

    def clip(s: float) -> float:
        return min(max(s, lo), hi)

    if not math.isfinite(m) or math.isnan(v):
        raise ValueError(f"{where}: mean {m} / variance {v} cannot give a {f} prior for {spec.name!r}")
    if (f == "beta" and not 0.0 < m < 1.0) or (f in ("gamma", "inverse_gamma", "lognormal") and not m > 0):
        raise ValueError(f"{where}: mean {m:g} is outside the support of {spec.name!r} ({f})")
    if f == "beta":
        return _prior(spec, m, clip(m * (1.0 - m) / v - 1.0 if v > 0 else math.inf))
    if f == "gamma":
        return _prior(spec, m, clip(m * m / v if v > 0 else math.inf))
    if f == "normal":
        obs_var = spec.strength * spec.var
        s = clip(obs_var / v if v > 0 else math.inf) if cap is not None else (obs_var / v if v > 0 else None)
        if s is None:
            raise ValueError(f"{where}: zero variance and no strength cap for {spec.name!r}")
        return NormalParams(m, obs_var / s, obs_var)
    if f == "inverse_gamma":
        return _prior(spec, m, clip(2.0 * (m * m / v + 2.0) if v > 0 else math.inf))
    cv = math.sqrt(v) / m if math.isfinite(v) else spec.cv  # lognormal: mean and cv, strength kept
    return _prior(spec, m, spec.strength, cv=max(cv, 1e-12))


# ----------------------------------------------------------------------------- registry
class Registry:
    """The learned parameters: prior and posterior of each :class:`ParamSpec`.

    ``Registry()`` has the default priors (:data:`DEFAULT_SPECS`);
    :meth:`from_bundle` takes them from a prior bundle where it has them.
    """

    def __init__(
        self,
        specs: Iterable[ParamSpec] | None = None,
        *,
        asset: str = "",
        priors: Mapping[str, tuple[Any, str]] | None = None,
    ):
        specs = tuple(DEFAULT_SPECS if specs is None else specs)
        names = [s.name for s in specs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"parameter {sorted(dup)[0]!r}: defined twice")
        self.specs: dict[str, ParamSpec] = {s.name: s for s in specs}
        self.asset = asset
        priors = dict(priors or {})
        unknown = set(priors) - set(self.specs)
        if unknown:
            raise ValueError(f"parameter {sorted(unknown)[0]!r}: a prior for an unknown parameter")
        self._entries: dict[str, _Entry] = {}
        for s in specs:
            prior, source = priors.get(s.name, (spec_prior(s), DEFAULT_SOURCE))
            prior = _floats(prior)
            self._entries[s.name] = _Entry(prior, prior, source)
        self._last_log: float | None = None

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_bundle(
        cls,
        bundle: PriorBundle,
        specs: Iterable[ParamSpec] | None = None,
        *,
        max_strength: float | None = BUNDLE_MAX_STRENGTH,
    ) -> Registry:
        """Default priors, replaced by the bundle's where it has the parameter
        (mapping and moment matching: module docstring)."""
        specs = tuple(DEFAULT_SPECS if specs is None else specs)
        if max_strength is not None:
            max_strength = _c.positive("max_strength", max_strength)
        p = bundle.params
        pi = _stationary(np.array([p.regime_transition[r].mean() for r in REGIMES]))
        first = bundle.bucket_keys[0]
        regime_side = lambda tree: [(pi[i] / len(SIDES), tree[r][s])  # noqa: E731
                                    for i, r in enumerate(REGIMES) for s in SIDES]

        def diagonal(i: int, r: str) -> BetaSummary:
            c = p.regime_transition[r].concentration
            return BetaSummary(a=c[i], b=sum(c) - c[i])

        mapping = {
            "alpha_touch": ([(pi[i], p.alpha[r][first]) for i, r in enumerate(REGIMES)],
                            f"params.alpha[*][{first}], stationary regime mix"),
            "kappa": (regime_side(p.kappa), "params.kappa[*][*], stationary regime mix, sides equal"),
            "hawkes_mu": (regime_side(p.hawkes_baseline),
                          "params.hawkes_baseline[*][*], stationary regime mix, sides equal"),
            "hawkes_alpha": ([(1.0 / len(SIDES), p.hawkes_branching[s][s]) for s in SIDES],
                             "params.hawkes_branching diagonal (self-excitation), sides equal"),
            "hawkes_beta": ([(1.0, p.hawkes_decay)], "params.hawkes_decay"),
            "regime_sticky_diagonal": ([(pi[i], diagonal(i, r)) for i, r in enumerate(REGIMES)],
                                       "params.regime_transition diagonal, stationary regime mix"),
        }
        extras = p.__pydantic_extra__ or {}
        cap = "uncapped" if max_strength is None else f"strength <= {max_strength:g}"
        priors = {}
        for spec in specs:
            if spec.name in mapping:
                parts, where = mapping[spec.name]
            elif isinstance(extras.get(spec.name), dict) and "family" in extras[spec.name]:
                summary = _SUMMARY.validate_python(extras[spec.name])
                if isinstance(summary, DirichletSummary):
                    continue
                parts, where = [(1.0, summary)], f"params.{spec.name}"
            else:
                continue
            m, v = _mix(parts)
            prior = _prior_from_moments(spec, m, v, max_strength, f"bundle {bundle.asset}: {where}")
            priors[spec.name] = (prior, f"bundle {bundle.asset} {bundle.model_version}: {where} "
                                        f"(moment-matched, {cap})")
        return cls(specs, asset=bundle.asset, priors=priors)

    # -- access ---------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.specs)

    def spec(self, name: str) -> ParamSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise ValueError(f"parameter {name!r}: unknown (known: {', '.join(self.specs)})") from None

    def prior(self, name: str):
        """The prior's conjugate parameters (a NamedTuple of floats)."""
        self.spec(name)
        return self._entries[name].prior

    def posterior(self, name: str):
        """The posterior's conjugate parameters (a NamedTuple of floats)."""
        self.spec(name)
        return self._entries[name].post

    def _fam(self, name: str):
        return _FAMILY[self.spec(name).family]

    # -- learning -------------------------------------------------------------------
    def update(self, ev: Evidence) -> None:
        """Apply one piece of evidence (checked first: :func:`check_evidence`)."""
        self.update_all([ev])

    def update_all(self, evidence: Iterable[Evidence]) -> None:
        """Apply several; all are checked before any is applied (all or nothing)."""
        evs = list(evidence)
        for ev in evs:
            name = getattr(ev, "name", None)
            if isinstance(name, str) and name not in self.specs:
                raise ValueError(f"evidence for {name!r}: name: unknown parameter (known: {', '.join(self.specs)})")
            check_evidence(ev, self.specs[name].family if isinstance(name, str) else None)
        for ev in evs:
            e = self._entries[ev.name]
            e.post = _apply(self.specs[ev.name].family, e.post, ev)
            e.updates += 1
            if ev.source and ev.source not in e.sources:
                e.sources = (e.sources + [ev.source])[-_MAX_SOURCES:]

    def forget(self, dt: float, half_life: float) -> None:
        """Exponential forgetting toward the prior over ``dt`` seconds
        (:meth:`mm_runtime.conjugate._Family.forget`)."""
        dt, half_life = _c.non_negative("dt", dt), _c.positive("half_life", half_life)
        for name, e in self._entries.items():
            e.post = _floats(self._fam(name).forget(e.post, e.prior, dt, half_life))

    # -- estimates ------------------------------------------------------------------
    def estimate(self, name: str) -> float:
        """Posterior mean (the shrinkage estimate)."""
        return float(self._fam(name).mean(self._entries[name].post))

    def prior_mean(self, name: str) -> float:
        return float(self._fam(name).mean(self._entries[name].prior))

    def interval(self, name: str, level: float = 0.95) -> tuple[float, float]:
        """Equal-tailed credible interval of the posterior."""
        lo, hi = self._fam(name).interval(self._entries[name].post, _c.open_unit("level", level))
        return float(lo), float(hi)

    def n(self, name: str) -> float:
        """Effective observations absorbed since the prior."""
        e = self._entries[name]
        return float(self._fam(name).n(e.post, e.prior))

    def data_weight(self, name: str) -> float:
        """``n / (n + prior strength)``."""
        e = self._entries[name]
        return float(self._fam(name).data_weight(e.post, e.prior))

    def cv(self, name: str) -> float:
        """Posterior cv, of ``1 − p`` for a ``complement`` Beta parameter."""
        post = self._entries[name].post
        if self.spec(name).complement:
            post = BetaParams(post.b, post.a)
        return float(self._fam(name).cv(post))

    def is_calibrated(self, name: str) -> bool:
        """``n >= min_n`` and ``cv <= max_cv`` (module docstring)."""
        s = self.spec(name)
        return self.n(name) >= s.min_n and self.cv(name) <= s.max_cv

    def calibration_status(self) -> CalibrationStatus:
        cal = {name: self.is_calibrated(name) for name in self.specs}
        ready = [all(cal[n] for n, s in self.specs.items() if s.tier == t) for t in TIERS]
        return CalibrationStatus(*ready, calibrated=cal)

    def value(self, name: str, status: CalibrationStatus | None = None) -> float:
        """The value to use: the learned estimate once the parameter's tier is ready,
        the prior mean before."""
        status = status or self.calibration_status()
        return self.estimate(name) if status.ready(self.spec(name).tier) else self.prior_mean(name)

    def values(self) -> dict[str, float]:
        st = self.calibration_status()
        return {name: self.value(name, st) for name in self.specs}

    def summary(self, name: str, status: CalibrationStatus | None = None) -> ParamSummary:
        s, e, fam = self.spec(name), self._entries[name], self._fam(name)
        status = status or self.calibration_status()
        lo, hi = self.interval(name)
        ready = status.ready(s.tier)
        est, pm = self.estimate(name), self.prior_mean(name)
        return ParamSummary(
            name=name, tier=s.tier, family=s.family, unit=s.unit,
            prior_mean=pm, prior_strength=float(fam.strength(e.prior)), prior_source=e.prior_source,
            estimate=est, std=float(fam.std(e.post)), lo=lo, hi=hi,
            data_weight=self.data_weight(name), n=self.n(name), cv=self.cv(name),
            min_n=s.min_n, max_cv=s.max_cv, calibrated=status.calibrated[name], tier_ready=ready,
            value=est if ready else pm, in_use="learned" if ready else "prior",
            updates=e.updates, sources=tuple(e.sources), threshold=s.threshold, note=s.note,
        )

    def summaries(self) -> list[ParamSummary]:
        st = self.calibration_status()
        return [self.summary(name, st) for name in self.specs]

    # -- persistence ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The state document (without ``saved_at``)."""
        return {
            "schema_version": STATE_SCHEMA_VERSION,
            "kind": STATE_KIND,
            "asset": self.asset,
            "params": {
                name: {
                    "family": self.specs[name].family,
                    "tier": self.specs[name].tier,
                    "prior": e.prior._asdict(),
                    "posterior": e.post._asdict(),
                    "prior_source": e.prior_source,
                    "updates": e.updates,
                    "sources": list(e.sources),
                }
                for name, e in self._entries.items()
            },
        }

    def save(self, path: str | Path) -> Path:
        """Write the state atomically (temp file, fsync, rename); returns the path."""
        doc = self.to_dict()
        doc["saved_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        data = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        return atomic_write_bytes(path, data.encode("utf-8"))

    def load(self, path: str | Path, *, keep_priors: bool = False) -> None:
        """Restore the state saved by :meth:`save`.  All or nothing: a refused file
        raises :class:`RegistryStateError` (naming the file and the field) and leaves
        the registry unchanged.  ``keep_priors=True`` keeps this registry's priors
        (e.g. a new bundle's) and re-bases the file's evidence onto them: the
        natural parameters ``prior_new + (posterior − prior)_file``, the same rule
        as a hot reload of the quoter's estimators."""
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise RegistryStateError(f"{p}: cannot read: {exc.strerror or exc}") from None
        asset, entries = self._parse_state(raw, str(p))
        if keep_priors:
            for name, e in entries.items():
                cur = self._entries[name].prior
                e.post = self._rebase(name, e.post, e.prior, cur, str(p))
                e.prior, e.prior_source = cur, self._entries[name].prior_source
        self._entries = entries
        self.asset = asset or self.asset

    def _rebase(self, name: str, post, old_prior, new_prior, origin: str):
        fam = self._fam(name)
        nat = tuple(
            n + (q - o)
            for n, q, o in zip(fam._to_natural(new_prior), fam._to_natural(post), fam._to_natural(old_prior),
                               strict=True)
        )
        out = _floats(fam._from_natural(nat, new_prior))
        self._check_support(name, "posterior", out._asdict(), origin)
        return out

    def _check_support(self, name: str, what: str, values: dict[str, float], origin: str) -> None:
        for k, v in values.items():
            if k in _POSITIVE_FIELDS and not v > 0:
                raise RegistryStateError(f"{origin}: params.{name}.{what}.{k}: must be > 0, got {v}")

    def _parse_state(self, raw: bytes, origin: str) -> tuple[str, dict[str, _Entry]]:
        def fail(msg: str):
            raise RegistryStateError(f"{origin}: {msg}")

        doc = parse_state_document(raw, origin, kind=STATE_KIND, schema_version=STATE_SCHEMA_VERSION,
                                   error=RegistryStateError, what="registry state file")
        asset = doc.get("asset", "")
        if not isinstance(asset, str):
            fail("asset: must be a string")
        if self.asset and asset and asset != self.asset:
            fail(f"asset: the state is for {asset!r}, this registry is for {self.asset!r}")
        params = doc.get("params")
        if not isinstance(params, dict):
            fail("params: missing or not an object")
        for name in self.specs:
            if name not in params:
                fail(f"params.{name}: missing")
        for name in params:
            if name not in self.specs:
                fail(f"params.{name}: unknown parameter (this registry has {', '.join(self.specs)})")
        entries = {}
        for name, spec in self.specs.items():
            d = params[name]
            where = f"params.{name}"
            if not isinstance(d, dict):
                fail(f"{where}: must be an object")
            if d.get("family") != spec.family:
                fail(f"{where}.family: expected {spec.family!r}, got {d.get('family')!r}")
            got = {}
            for what in ("prior", "posterior"):
                fields = _PARAMS[spec.family]._fields
                x = d.get(what)
                if not isinstance(x, dict) or set(x) != set(fields):
                    fail(f"{where}.{what}: must be an object with exactly {list(fields)}")
                for k in fields:
                    val = x[k]
                    if isinstance(val, bool) or not isinstance(val, int | float) or not math.isfinite(val):
                        fail(f"{where}.{what}.{k}: must be a finite number, got {val!r}")
                self._check_support(name, what, x, origin)
                got[what] = _PARAMS[spec.family](*(float(x[k]) for k in fields))
            updates = d.get("updates", 0)
            if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:
                fail(f"{where}.updates: must be an integer >= 0, got {updates!r}")
            sources = d.get("sources", [])
            if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
                fail(f"{where}.sources: must be a list of strings")
            prior_source = d.get("prior_source", "")
            if not isinstance(prior_source, str):
                fail(f"{where}.prior_source: must be a string")
            entries[name] = _Entry(got["prior"], got["posterior"], prior_source, updates, list(sources))
        return asset, entries

    # -- monitoring -----------------------------------------------------------------
    def publish(self, metrics: AssetMetrics) -> None:
        """Set ``mm_learned_<name>``, ``mm_learned_<name>_data_weight`` and
        ``mm_learned_params_calibrated{tier}`` on an asset's metrics."""
        st = self.calibration_status()
        for name in self.specs:
            metrics.set_learned_param(name, self.estimate(name), self.data_weight(name))
        for t in TIERS:
            metrics.set_params_calibrated(t, st.ready(t))

    def evolution_fields(self) -> dict[str, Any]:
        """The fields of the "learned parameters" log record."""
        st = self.calibration_status()
        params = {}
        for name, spec in self.specs.items():
            est, pm = self.estimate(name), self.prior_mean(name)
            params[name] = {
                "tier": spec.tier,
                "estimate": est,
                "prior_mean": pm,
                "value": est if st.ready(spec.tier) else pm,
                "data_weight": self.data_weight(name),
                "n": self.n(name),
                "calibrated": st.calibrated[name],
            }
        return {"asset": self.asset, **st.tiers(), "params": params}

    def log_evolution(self, logger: logging.Logger | None = None) -> None:
        """One structured record (``extra={"fields": ...}``, :mod:`mm_runtime.logs`)."""
        (logger or log).info("learned parameters", extra={"fields": self.evolution_fields()})

    def maybe_log(self, now: float, interval_s: float = LOG_INTERVAL_S, logger: logging.Logger | None = None) -> bool:
        """:meth:`log_evolution` if ``interval_s`` seconds have passed since the last
        record (``now`` in seconds, any clock); returns whether it logged."""
        if self._last_log is not None and now - self._last_log < interval_s:
            return False
        self._last_log = now
        self.log_evolution(logger)
        return True
