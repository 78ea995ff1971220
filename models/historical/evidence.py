"""to_evidence: a :class:`HistoricalResult` as :class:`mm_runtime.params.Evidence` for
the learned-parameter registry, each estimate sized by the information it carries
(exact sufficient statistics, or pseudo counts matched on its standard error).

Sizes and why: docs/models/historical.md#evidence-sizes-to_evidence.
"""

from __future__ import annotations

import math

from mm_runtime.params import Evidence

from .calibrator import HistoricalResult


def _beta_count(x: float, se: float) -> float | None:
    """m with Var Beta(x m, (1-x) m) = x(1-x)/(m+1) = se^2."""
    if not (0 < x < 1) or not (se > 0) or not math.isfinite(se):
        return None
    m = x * (1 - x) / se**2 - 1.0
    return m if m > 0 else None


def to_evidence(result: HistoricalResult) -> list[Evidence]:
    """Registry evidence from a :class:`HistoricalResult` (docs/models/historical.md, "Evidence
    sizes"): ``alpha_touch``, ``kappa``, ``hawkes_mu``, ``hawkes_alpha``,
    ``hawkes_beta``, ``spread_floor_bps``, ``toxic_hour_multiplier``,
    ``cascade_oi_threshold``, each only when its estimate exists (and, for the cascade,
    is identified). The toxic hours themselves go to ``Registry.set_toxic_hours``
    (``mmcal params calibrate``)."""
    src = f"historical:{result.asset}"
    ev: list[Evidence] = []
    a = result.alpha_touch
    if a is not None and a.pooled.n > 0:
        ev.append(Evidence.bernoulli("alpha_touch", a.pooled.value * a.pooled.n, a.pooled.n,
                                     source=f"{src}:alpha_touch {a.bucket} informed share, "
                                            f"{a.n_fills} fills in {a.n_sweeps} sweeps"))
    k = result.kappa
    if k is not None:
        ev.append(Evidence.exponential("kappa", k.n_arrivals, k.total_depth_bps,
                                       source=f"{src}:kappa MLE, {k.n_arrivals} arrivals"))
    h = result.hawkes
    if h is not None:
        mu = h.baseline_mean
        if mu.value > 0 and mu.se > 0:
            ev.append(Evidence.poisson("hawkes_mu", mu.value**2 / mu.se**2, mu.value / mu.se**2,
                                       source=f"{src}:hawkes MoM baseline per side (pseudo counts from SE)"))
        m = _beta_count(h.self_excitation.value, h.self_excitation.se)
        if m is not None:
            ev.append(Evidence.bernoulli("hawkes_alpha", h.self_excitation.value * m, m,
                                         source=f"{src}:hawkes MoM self-excitation (pseudo trials from SE)"))
        b = h.decay
        if b.value > 0 and b.se > 0 and math.isfinite(b.se):
            kk = (b.value / b.se) ** 2
            ev.append(Evidence.exponential("hawkes_beta", kk, kk / b.value,
                                           source=f"{src}:hawkes MoM decay (pseudo count from SE)"))
    s = result.spread_floor
    if s is not None and s.window_floors_bps:
        ev.append(Evidence.of_values("spread_floor_bps", s.window_floors_bps,
                                     source=f"{src}:derived floor per {s.window_s:g} s window"))
    t = result.toxic_hours
    if t is not None and t.multiplier is not None and t.multiplier > 0 and math.isfinite(t.multiplier):
        ev.append(Evidence.of_values("toxic_hour_multiplier", [t.multiplier],
                                     source=f"{src}:toxic hours {t.toxic or 'none'}: (AS_toxic + fee)/(AS_normal + fee)"))
    c = result.cascade
    if c is not None and c.identified:
        m = _beta_count(c.threshold.value, c.threshold.se)
        if m is not None:
            ev.append(Evidence.bernoulli("cascade_oi_threshold", c.threshold.value * m, m,
                                         source=f"{src}:OI-drop threshold regression (pseudo trials from CI)"))
    return ev
