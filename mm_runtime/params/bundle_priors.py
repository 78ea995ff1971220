"""Registry priors from a prior bundle: each parameter the bundle has becomes a
prior of the parameter's family with the bundle's mean and variance (moment
matching; mixtures over regimes and sides as a whole), the strength capped.

Mapping from bundle summaries to parameters, and the strength floor and cap:
docs/runtime/params.md ("Bundle priors").
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from pydantic import TypeAdapter

from ..bundle import (
    BetaSummary,
    ConjugateSummary,
    DirichletSummary,
    GammaSummary,
    InverseGammaSummary,
    LogNormalSummary,
    NormalInverseGammaSummary,
    NormalSummary,
    PriorBundle,
)
from ..conjugate import NormalParams
from ..view import bundle_view
from .specs import ParamSpec, _prior

__all__ = ["BUNDLE_MAX_STRENGTH", "bundle_priors"]

BUNDLE_MAX_STRENGTH = 100.0
"""Default cap on a bundle-derived prior's pseudo-observations (:meth:`Registry.from_bundle`)."""

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
    matching), strength within [floor, cap] (docs/runtime/params.md)."""
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


def bundle_priors(
    bundle: PriorBundle, specs: Iterable[ParamSpec], max_strength: float | None
) -> dict[str, tuple[Any, str]]:
    """``{name: (prior, source)}`` for each of ``specs`` the bundle has (moment-matched,
    strength <= ``max_strength``, None = uncapped); the others are left out."""
    v = bundle_view(bundle)
    pi, s = v.stationary, v.summaries
    R, S = len(v.regimes), len(v.sides)
    first = v.buckets[0]
    regime_side = lambda tree: [(pi[i] / S, tree[i][j]) for i in range(R) for j in range(S)]  # noqa: E731

    def diagonal(i: int) -> BetaSummary:
        c = s.regime_transition[i].concentration
        return BetaSummary(a=c[i], b=sum(c) - c[i])

    # with params.hawkes_components, hawkes_branching is the total over the components and
    # hawkes_decay the one exponential with the kernel's mean lag: the one-exponential
    # parameters of the registry (docs/runtime/params.md, "Bundle priors")
    kernel = "" if s.hawkes_components is None else f", total of {len(s.hawkes_components)} kernel components"
    mapping = {
        "alpha_touch": ([(pi[i], s.alpha[i][0]) for i in range(R)],
                        f"params.alpha[*][{first}], stationary regime mix"),
        "kappa": (regime_side(s.kappa), "params.kappa[*][*], stationary regime mix, sides equal"),
        "hawkes_mu": (regime_side(s.hawkes_baseline),
                      "params.hawkes_baseline[*][*], stationary regime mix, sides equal"),
        "hawkes_alpha": ([(1.0 / S, s.hawkes_branching[j][j]) for j in range(S)],
                         f"params.hawkes_branching diagonal (self-excitation), sides equal{kernel}"),
        "hawkes_beta": ([(1.0, s.hawkes_decay)], "params.hawkes_decay" + (
            "" if s.hawkes_components is None else " (the kernel's mean-lag decay)")),
        "regime_sticky_diagonal": ([(pi[i], diagonal(i)) for i in range(R)],
                                   "params.regime_transition diagonal, stationary regime mix"),
    }
    extras = v.extras
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
    return priors
