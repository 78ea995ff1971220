"""Registry parameter specifications: :class:`ParamSpec` (identity, tier, family,
default prior, unit, derivation), :func:`param_spec` (validated, with calibration
thresholds from :mod:`mm_runtime.power`), the default priors (:func:`spec_prior`)
and :data:`DEFAULT_SPECS` (the parameters of issue #7 item 1).

Parameter table, prior parametrisations, units and how the thresholds are sized:
docs/runtime/params.md.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from .. import _checks as _c
from .. import power
from ..conjugate import BetaParams, GammaParams, InverseGammaParams, NIGParams, NormalParams
from .evidence import FAMILIES

__all__ = [
    "TIERS",
    "TIER_NAMES",
    "MIN_N_FLOOR",
    "TARGET_REL_PRECISION",
    "TARGET_CONFIDENCE",
    "ParamSpec",
    "param_spec",
    "spec_prior",
    "DEFAULT_SPECS",
]

TIERS = (1, 2, 3, 4)
TIER_NAMES = {1: "P&L critical", 2: "risk", 3: "calibration", 4: "microstructure"}

TARGET_REL_PRECISION = 0.30
TARGET_CONFIDENCE = 0.90
"""Default calibration target: ±30 % at 90 % (the quoter's α and A target,
:func:`mm_runtime.power.calibration_thresholds`)."""
MIN_N_FLOOR = 30
"""No ``min_n`` below this: the power formulas rest on a normal approximation."""
_QUOTER_ROWS = {"alpha_touch": "alpha", "kappa": "kappa", "hawkes_mu": "hawkes_baseline"}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


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
    """The conjugate parameters of ``spec``'s default prior (docs/runtime/params.md)."""
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
    """(min_n, max_cv, how) for ``spec`` at the target ±rel at conf (docs/runtime/params.md)."""
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
    analysis at ``±rel_precision`` with ``confidence`` (docs/runtime/params.md)."""
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
    param_spec(
        "toxic_hour_multiplier", 1, "lognormal", 1.0, 1.0, "ratio",
        "Half-spread multiplier in the toxic UTC hours: (AS_toxic + fee)/(AS_normal + fee) "
        "(derived.toxic_hour_multiplier; original calibrate_toxic_hours). Prior mean 1 (no change), "
        "cv 0.2, worth one observation. Evidence: values (> 0), one multiplier per historical "
        "calibration (models.historical toxic_hours). The hours themselves: Registry.toxic_hours.",
        cv=0.2,
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
        "bernoulli. Bundle: diagonal of params.hawkes_branching (with params.hawkes_components: the "
        "total over the kernel's components).",
    ),
    param_spec(
        "hawkes_beta", 3, "gamma", 0.1, 1.0, "1/s",
        "Hawkes kernel decay beta (memory 1/beta s). Evidence: exponential(children, total parent-child "
        "lag in s). Bundle: params.hawkes_decay (lognormal, moment-matched to a gamma); with "
        "params.hawkes_components it is the one exponential with the kernel's total branching and mean "
        "parent-child lag, 1 / sum_m w_m / beta_m, the rate this evidence estimates under that kernel.",
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
"""The parameters of issue #7 item 1 and the toxic-hour multiplier (the table in
docs/runtime/params.md)."""
