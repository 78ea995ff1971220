"""The registry and the quote step as one system.

* :func:`ladder_values` — where each registry-driven ladder value comes from: γ
  (``gamma_base``), the spread floor (``spread_floor_bps``), the depth spacing ratio
  (``depth_spacing_ratio``) and the toxic-hour multiplier (``toxic_hour_multiplier``)
  are the registry's estimate once the parameter's tier is calibrated, else the
  bundle's prior mean where the bundle has the parameter, else the
  :class:`~mm_runtime.config.QuoterConfig` default; each with its source
  (``registry`` / ``bundle`` / ``default``).
* :func:`step_evidence` — what the jitted step's estimators have learned about the
  registry's ``alpha_touch`` and ``kappa`` (the parameters both would otherwise
  learn), as :class:`~mm_runtime.params.evidence.Evidence` for
  :meth:`~mm_runtime.params.registry.Registry.set_online`: the step is the one
  online learner, the registry reports it.

The mapping, the precedence and why: docs/runtime/params.md ("The registry drives
the ladder", "One online-learning system").
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..config import QuoterConfig
from ..estimators import Columns
from .bundle_priors import BUNDLE_MAX_STRENGTH, bundle_priors
from .evidence import _FAMILY, Evidence
from .specs import DEFAULT_SPECS, ParamSpec

if TYPE_CHECKING:  # pragma: no cover
    from ..bundle import PriorBundle
    from ..core import QuoterState
    from .registry import Registry

__all__ = ["SOURCES", "LADDER_PARAMS", "STEP_PARAMS", "LadderValue", "ladder_values", "toxic_hours",
           "step_evidence"]

SOURCES = ("registry", "bundle", "default")

LADDER_PARAMS: dict[str, tuple[str, str]] = {
    "gamma": ("gamma_base", "gamma"),
    "spread_floor_bps": ("spread_floor_bps", "spread_floor_bps"),
    "level_ratio": ("depth_spacing_ratio", "level_ratio"),
    "toxic_multiplier": ("toxic_hour_multiplier", "toxic_hour_multiplier"),
}
"""Ladder value → (registry parameter, :class:`QuoterConfig` field of its default)."""

STEP_PARAMS: dict[str, str] = {
    "alpha_touch": "α[regime][first bucket] (Beta–Bernoulli on resolved fills), regimes pooled",
    "kappa": "κ[regime][side] (Gamma–Exponential on trade depths), regimes and sides pooled",
}
"""Registry parameters the quote step learns online (:func:`step_evidence`)."""

_VALID = {
    "gamma": lambda x: x > 0,
    "spread_floor_bps": lambda x: x >= 0,
    "level_ratio": lambda x: x > 1,
    "toxic_multiplier": lambda x: x > 0,
}


class LadderValue(NamedTuple):
    name: str
    """The ladder's name (:data:`LADDER_PARAMS`)."""
    param: str
    """The registry parameter."""
    value: float
    source: str
    """``registry``, ``bundle`` or ``default``."""
    detail: str
    """Why this source (and what was passed over)."""

    def to_dict(self) -> dict:
        return {"value": self.value, "source": self.source, "param": self.param, "detail": self.detail}


def _specs(registry: Registry | None) -> dict[str, ParamSpec]:
    return dict(registry.specs) if registry is not None else {s.name: s for s in DEFAULT_SPECS}


def ladder_values(config: QuoterConfig | None = None, bundle: PriorBundle | None = None,
                  registry: Registry | None = None) -> dict[str, LadderValue]:
    """Each registry-driven ladder value and its source: the registry's estimate when
    ``registry`` is given, ``config.learn`` is on and the parameter's tier is ready;
    else the bundle's prior mean (moment-matched, :func:`bundle_priors`) where the
    bundle has the parameter; else the config's value.  A candidate that is not finite
    or out of range (γ ≤ 0, floor < 0, ratio ≤ 1, multiplier ≤ 0) is passed over
    (said in ``detail``), so no NaN reaches the step."""
    config = config or QuoterConfig()
    specs = _specs(registry)
    status = registry.calibration_status() if registry is not None else None
    from_bundle = bundle_priors(bundle, [specs[p] for p, _ in LADDER_PARAMS.values() if p in specs],
                                BUNDLE_MAX_STRENGTH) if bundle is not None else {}
    out = {}
    for name, (param, field) in LADDER_PARAMS.items():
        ok = _VALID[name]
        passed = []
        spec = specs.get(param)
        if registry is not None and spec is not None:
            if not config.learn:
                passed.append("registry: learning off (QuoterConfig.learn)")
            elif not status.ready(spec.tier):
                passed.append(f"registry: tier {spec.tier} not calibrated")
            else:
                v = registry.estimate(param)
                if math.isfinite(v) and ok(v):
                    out[name] = LadderValue(name, param, float(v), "registry",
                                            f"tier {spec.tier} calibrated: posterior mean")
                    continue
                passed.append(f"registry: estimate {v!r} out of range")
        if param in from_bundle:
            prior, where = from_bundle[param]
            v = float(_FAMILY[spec.family].mean(prior))
            if math.isfinite(v) and ok(v):
                out[name] = LadderValue(name, param, v, "bundle", "; ".join(passed + [where]))
                continue
            passed.append(f"bundle: mean {v!r} out of range")
        else:
            passed.append(f"bundle: no params.{param}")
        v = float(getattr(config, field))
        out[name] = LadderValue(name, param, v, "default", "; ".join(passed + [f"QuoterConfig.{field}"]))
    return out


def toxic_hours(config: QuoterConfig | None = None, registry: Registry | None = None) -> tuple[tuple[int, ...], str]:
    """(UTC hours, source): the registry's toxic hours when it has some (``registry``),
    else ``config.toxic_hours_utc`` (``default``)."""
    config = config or QuoterConfig()
    if registry is not None and config.learn and registry.toxic_hours:
        return tuple(registry.toxic_hours), "registry"
    return tuple(config.toxic_hours_utc), "default"


def step_evidence(state: QuoterState) -> list[Evidence]:
    """The quote step's learned evidence about :data:`STEP_PARAMS`, pooled as the
    registry defines them: ``alpha_touch`` = bernoulli(informed, resolved fills) of the
    first depth bucket summed over regimes; ``kappa`` = exponential(trades, total depth
    in bps) summed over regimes and sides.  The step's evidence is regime-weighted
    (each update adds p_r to regime r) and forgotten with the step's half-life, so
    these are effective counts."""
    ev = np.asarray(state.est.evidence, dtype=np.float64)
    cols = Columns(int(np.shape(state.prior.bucket_edges)[0]))
    a = float(np.sum(ev[:, cols.alpha_a.start]))
    b = float(np.sum(ev[:, cols.alpha_b.start]))
    k_n = float(np.sum(ev[:, cols.kappa_shape]))
    k_tot = float(np.sum(ev[:, cols.kappa_rate]))
    a, b, k_n, k_tot = (max(x, 0.0) for x in (a, b, k_n, k_tot))
    if k_n == 0.0:
        k_tot = 0.0
    return [
        Evidence.bernoulli("alpha_touch", a, a + b, source="quote step: α[*][first bucket] evidence"),
        Evidence.exponential("kappa", k_n, k_tot, source="quote step: κ[*][*] evidence"),
    ]
