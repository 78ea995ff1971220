"""The bundle decoded once: a typed, immutable runtime view of a :class:`PriorBundle`.

:func:`bundle_view` (cached per bundle object) or :meth:`BundleView.from_bundle`
turns the JSON tree of ``params`` into numpy float64 arrays ordered by the
vocabulary (regimes ``low … extreme``, aggressor sides ``buy sell``, depth buckets
low→high; :mod:`mm_runtime.vocabulary`), and keeps the summaries themselves in the
same order for code that needs more than a mean (the registry's moment matching).
The estimators' prior arrays (:func:`mm_runtime.estimators.prior_arrays`) and the
quoter's runtime config (:mod:`mm_runtime.core`) are built from it.

Units: as in the bundle (DESIGN.md section 2): depths bps, rates 1/s, κ 1/bps, σ
bps/√s, times s.  Every array is read-only.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .hawkes_kernel import kernel_arrays
from .observation import ObservationConfig
from .summaries import (
    BetaSummary,
    DirichletSummary,
    GammaSummary,
    LogNormalSummary,
    NormalInverseGammaSummary,
    NormalSummary,
)
from .vocabulary import QUEUE_BUCKET_LABELS, QUEUE_BUCKETS, REGIMES, SIDES, horizon_label

if TYPE_CHECKING:  # pragma: no cover
    from .bundle import PriorBundle

__all__ = ["BundleSummaries", "BundleView", "FillsView", "bundle_view", "stationary_distribution"]


def stationary_distribution(T: np.ndarray) -> np.ndarray:
    """The stationary distribution π = πT of a row-stochastic matrix (the eigenvector
    of Tᵀ for the eigenvalue nearest 1, normalized)."""
    w, v = np.linalg.eig(T.T)
    i = int(np.argmin(np.abs(w - 1.0)))
    pi = np.abs(np.real(v[:, i]))
    return pi / pi.sum()


class BundleSummaries(NamedTuple):
    """The bundle's summaries as nested tuples in vocabulary order (``[r][b]`` regime ×
    bucket, ``[r][s]`` regime × side, ``[t][s]`` target side × source side)."""

    alpha: tuple[tuple[BetaSummary, ...], ...]  # [r][b]
    alpha_decay_bps: LogNormalSummary
    adverse_move_bps: Any  # GammaSummary | LogNormalSummary
    kappa: tuple[tuple[GammaSummary, ...], ...]  # [r][s]
    arrival_rate: tuple[tuple[GammaSummary, ...], ...]  # [r][s]
    hawkes_baseline: tuple[tuple[GammaSummary, ...], ...]  # [r][s]
    hawkes_branching: tuple[tuple[BetaSummary, ...], ...]  # [t][s]
    hawkes_decay: LogNormalSummary
    regime_transition: tuple[DirichletSummary, ...]  # [r] over the *to* regimes
    regime_emission: tuple[NormalInverseGammaSummary, ...]  # [r]
    sigma_bps: tuple[Any, ...]  # [r] GammaSummary | LogNormalSummary
    sigma_diffusive_bps: tuple[Any, ...] | None  # [r]; None = not in the bundle
    spread_capture: NormalSummary | None
    alpha_floor: BetaSummary | None
    hawkes_components: tuple[Any, ...] | None = None  # [m] HawkesComponent, fastest first; None = not in the bundle


def _ro(x) -> np.ndarray:
    a = np.array(x, dtype=np.float64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class FillsView:
    """The bundle's ``params.fills`` block as arrays (``R`` regimes, ``L`` levels 0..K,
    ``Q`` queue buckets, ``P`` hazard pieces, ``H`` markout horizons). Read by
    the tick ladder (:mod:`mm_runtime.tick_ladder`)."""

    levels: int  # L
    queue_edges: np.ndarray  # (Q,) lower edges, median trades
    cuts_s: np.ndarray  # (P,) lower edges of the hazard pieces, s
    horizons_s: np.ndarray  # (H,)
    hazard_shape: np.ndarray  # (R, L, Q, P) Gamma shape, hazard in 1/s
    hazard_rate: np.ndarray  # (R, L, Q, P)
    markout_mean_bps: np.ndarray  # (R, L, Q, H) mean of the mean markout, bps
    markout_sd_bps: np.ndarray  # (R, L, Q, H) its posterior sd (normal), or the NIG's mean's sd
    capture_shortfall_bps: np.ndarray  # (L,) capture at placement - capture at the fill, bps (0: not in the bundle)

    @classmethod
    def from_block(cls, f, observation: ObservationConfig) -> FillsView:
        L = observation.queue_levels + 1
        cuts = f.cuts_s()
        pieces = list(f.hazard[REGIMES[0]]["0"][QUEUE_BUCKET_LABELS[0]])
        hz = [horizon_label(h) for h in observation.markout_horizons_s]
        cell = lambda tree, inner, fn: [[[[fn(tree[r][str(lv)][b][k]) for k in inner]  # noqa: E731
                                          for b in QUEUE_BUCKET_LABELS] for lv in range(L)] for r in REGIMES]

        def sd(x) -> float:
            if isinstance(x, NormalSummary):
                return float(x.sigma)
            return float(np.sqrt(x.scale / (x.lam * (x.shape - 1.0)))) if x.shape > 1 else float("inf")

        return cls(levels=L, queue_edges=_ro(QUEUE_BUCKETS), cuts_s=_ro(cuts),
                   horizons_s=_ro(observation.markout_horizons_s),
                   hazard_shape=_ro(cell(f.hazard, pieces, lambda x: x.shape)),
                   hazard_rate=_ro(cell(f.hazard, pieces, lambda x: x.rate)),
                   markout_mean_bps=_ro(cell(f.markout_bps, hz, lambda x: x.mu)),
                   markout_sd_bps=_ro(cell(f.markout_bps, hz, sd)),
                   capture_shortfall_bps=_ro([0.0] * L if f.capture_shortfall_bps is None
                                             else [f.capture_shortfall_bps[str(lv)].mu for lv in range(L)]))


@dataclass(frozen=True, eq=False)
class BundleView:
    """One bundle as arrays (``R`` regimes, ``S`` sides, ``B`` depth buckets)."""

    asset: str
    model_version: str
    schema_version: int
    observation: ObservationConfig
    """The fits' observation rules (a schema-1 bundle: the defaults)."""
    regimes: tuple[str, ...]
    sides: tuple[str, ...]
    buckets: tuple[str, ...]
    """Bucket keys, ``"[0,2)" …``."""
    bucket_edges: np.ndarray  # (B,) lower edges, bps
    bar_s: float  # volatility bar length, s
    # learned families: conjugate parameters of the prior
    alpha_a: np.ndarray  # (R, B) Beta a
    alpha_b: np.ndarray  # (R, B) Beta b
    kappa_shape: np.ndarray  # (R, S) Gamma shape, κ in 1/bps
    kappa_rate: np.ndarray  # (R, S)
    arrival_shape: np.ndarray  # (R, S) Gamma shape, A in 1/s
    arrival_rate: np.ndarray  # (R, S)
    # means of the rest
    hawkes_mu: np.ndarray  # (R, S) baseline means, 1/s
    hawkes_n: np.ndarray  # (S, S) branching means [target, source]
    hawkes_beta: float  # kernel decay mean, 1/s (with components: the one exponential with their mean lag)
    hawkes_kernel_n: np.ndarray  # (M, S, S) the components' branching means [component, target, source]
    hawkes_kernel_beta: np.ndarray  # (M,) their decay means, 1/s, fastest first (M = 1: hawkes_n, hawkes_beta)
    transition: np.ndarray  # (R, R) Dirichlet row means, per volatility bar
    stationary: np.ndarray  # (R,) stationary distribution of ``transition``
    emission_df: np.ndarray  # (R,) Student-t predictive of ln σ_bar
    emission_loc: np.ndarray  # (R,)
    emission_scale: np.ndarray  # (R,)
    sigma_bps: np.ndarray  # (R,) bps/√s, total volatility (diffusion plus jumps)
    sigma_diffusive_bps: np.ndarray  # (R,) bps/√s, diffusive volatility (= sigma_bps without one)
    alpha_decay_bps: float  # δ_char mean, bps
    adverse_move_bps: float  # mean, bps
    spread_capture: float | None  # c's mean; None = the bundle has none
    alpha_floor: float  # α_floor's mean; 0 = the bundle has none (α decays to zero)
    summaries: BundleSummaries
    fills: FillsView | None
    """The fills model's cells (schema 3, where the data had books); None without them."""
    extras: Mapping[str, Any]
    """``params`` beyond the schema's, read-only (validated JSON; ignored by the quoter)."""

    @property
    def markout_horizon_s(self) -> float:
        return self.observation.markout_horizon_s

    @property
    def informed_threshold_bps(self) -> float:
        return self.observation.informed_threshold_bps

    @classmethod
    def from_bundle(cls, bundle: PriorBundle) -> BundleView:
        """Decode ``bundle`` (already validated) into a new view."""
        p = bundle.params
        buckets = tuple(bundle.bucket_keys)
        grid = lambda tree, rows, cols: tuple(tuple(tree[r][c] for c in cols) for r in rows)  # noqa: E731
        s = BundleSummaries(
            alpha=grid(p.alpha, REGIMES, buckets),
            alpha_decay_bps=p.alpha_decay_bps,
            adverse_move_bps=p.adverse_move_bps,
            kappa=grid(p.kappa, REGIMES, SIDES),
            arrival_rate=grid(p.arrival_rate, REGIMES, SIDES),
            hawkes_baseline=grid(p.hawkes_baseline, REGIMES, SIDES),
            hawkes_branching=grid(p.hawkes_branching, SIDES, SIDES),
            hawkes_decay=p.hawkes_decay,
            regime_transition=tuple(p.regime_transition[r] for r in REGIMES),
            regime_emission=tuple(p.regime_emission[r] for r in REGIMES),
            sigma_bps=tuple(p.sigma_bps[r] for r in REGIMES),
            sigma_diffusive_bps=None if p.sigma_diffusive_bps is None
            else tuple(p.sigma_diffusive_bps[r] for r in REGIMES),
            spread_capture=p.spread_capture,
            alpha_floor=p.alpha_floor,
            hawkes_components=None if p.hawkes_components is None else tuple(p.hawkes_components),
        )
        attr = lambda rows, name: [[getattr(x, name) for x in row] for row in rows]  # noqa: E731
        mean = lambda rows: [[x.mean() for x in row] for row in rows]  # noqa: E731
        T = np.asarray([d.mean() for d in s.regime_transition], dtype=np.float64)
        pred = [e.predictive() for e in s.regime_emission]  # (df, loc, scale)
        k_n, k_beta = kernel_arrays(p.hawkes_components, mean(s.hawkes_branching), s.hawkes_decay.mean())
        return cls(
            asset=bundle.asset,
            model_version=bundle.model_version,
            schema_version=int(bundle.schema_version),
            observation=bundle.observation,
            regimes=tuple(REGIMES),
            sides=tuple(SIDES),
            buckets=buckets,
            bucket_edges=_ro(bundle.depth_buckets_bps),
            bar_s=float(bundle.units.volatility_bar_s),
            alpha_a=_ro(attr(s.alpha, "a")),
            alpha_b=_ro(attr(s.alpha, "b")),
            kappa_shape=_ro(attr(s.kappa, "shape")),
            kappa_rate=_ro(attr(s.kappa, "rate")),
            arrival_shape=_ro(attr(s.arrival_rate, "shape")),
            arrival_rate=_ro(attr(s.arrival_rate, "rate")),
            hawkes_mu=_ro(mean(s.hawkes_baseline)),
            hawkes_n=_ro(mean(s.hawkes_branching)),
            hawkes_beta=float(s.hawkes_decay.mean()),
            hawkes_kernel_n=_ro(k_n),
            hawkes_kernel_beta=_ro(k_beta),
            transition=_ro(T),
            stationary=_ro(stationary_distribution(T)),
            emission_df=_ro([x[0] for x in pred]),
            emission_loc=_ro([x[1] for x in pred]),
            emission_scale=_ro([x[2] for x in pred]),
            sigma_bps=_ro([x.mean() for x in s.sigma_bps]),
            sigma_diffusive_bps=_ro([x.mean() for x in (s.sigma_diffusive_bps or s.sigma_bps)]),
            alpha_decay_bps=float(s.alpha_decay_bps.mean()),
            adverse_move_bps=float(s.adverse_move_bps.mean()),
            spread_capture=None if s.spread_capture is None else float(s.spread_capture.mean()),
            alpha_floor=0.0 if s.alpha_floor is None else float(s.alpha_floor.mean()),
            summaries=s,
            fills=None if p.fills is None else FillsView.from_block(p.fills, bundle.observation),
            extras=MappingProxyType(dict(p.__pydantic_extra__ or {})),
        )


_VIEWS: dict[int, tuple[weakref.ref, BundleView]] = {}


def bundle_view(bundle: PriorBundle) -> BundleView:
    """The view of ``bundle``, decoded on the first call for this bundle object and
    kept while the bundle lives (a modified copy is a new object: a new view)."""
    key = id(bundle)
    hit = _VIEWS.get(key)
    if hit is not None and hit[0]() is bundle:
        return hit[1]
    view = BundleView.from_bundle(bundle)
    _VIEWS[key] = (weakref.ref(bundle), view)
    weakref.finalize(bundle, _VIEWS.pop, key, None)
    return view
