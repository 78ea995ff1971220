"""The quote step's pure functional core (BlackJAX style): state, ``init``, ``step``.

``init(bundle, config)`` builds a :class:`QuoterState` pytree; ``step(state, event)``
(jitted once) handles one :class:`MarketEvent` (market update, optional public trade,
optional own fill) and returns the new state and the :class:`Quotes` ladder
(DESIGN.md section 6); ``batch_step`` vmaps it over assets; ``summarize`` reads the
learned means and calibration tiers.  Units: times in epoch s, prices in quote
currency, depths in bps, σ in bps/√s, position in base units; 0 means "not given",
NaN/±inf is an error, and a non-finite or stale input gives no quotes (``reason``,
see ``REASONS``).  The α markout horizon and informed threshold come from the bundle's
``observation`` block (:func:`resolve_config`).  Float64 throughout.

The step's order, the event fields and the safety rules: docs/runtime/core.md.
"""

from __future__ import annotations

import collections
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._small import uweighted
from .bundle import BundleError, PriorBundle
from .config import QuoterConfig
from .estimators import (
    EstimatorState,
    LearningParams,
    Observation,
    PriorArrays,
    estimates,
    init_estimators,
    prior_arrays,
    tier_shares,
    update,
)
from .ladder import LadderInputs, LadderParams, build_ladder
from .tick_ladder import FillsArrays, TickInputs, build_tick_ladder, fills_arrays, queue_input
from .view import BundleView, bundle_view

__all__ = [
    "RuntimeConfig",
    "QuoterState",
    "MarketEvent",
    "Quotes",
    "REASONS",
    "BINDING_NAMES",
    "TRACE_COUNTS",
    "ObservationConflict",
    "resolve_config",
    "fills_tau_s",
    "init",
    "step",
    "batch_step",
    "summarize",
    "Summary",
    "make_event",
    "stack_trees",
    "LADDER_VALUE_NAMES",
    "with_ladder_values",
]

REASON_OK, REASON_TIMESTAMP, REASON_MARKET, REASON_STALE, REASON_SIGMA, REASON_ACCOUNT, REASON_TRADE_FILL = range(7)
REASONS = {
    REASON_OK: "ok",
    REASON_TIMESTAMP: "non-finite ts/now",
    REASON_MARKET: "bad market data (non-finite or non-positive mid, crossed book)",
    REASON_STALE: "stale market data (now - ts > max_age_s)",
    REASON_SIGMA: "non-finite sigma_bps",
    REASON_ACCOUNT: "non-finite position or margin",
    REASON_TRADE_FILL: "bad trade or fill fields",
}
BINDING_NAMES = {0: "none", 1: "margin", 2: "position"}

TRACE_COUNTS: collections.Counter = collections.Counter()
"""Incremented (Python side) each time the step body is traced: ``"step"``."""


class RuntimeConfig(NamedTuple):
    ladder: LadderParams
    regime_multipliers: jax.Array  # (R,) Kelly fraction multiplier per regime
    learning: LearningParams
    max_age_s: jax.Array
    alpha_touch: jax.Array  # 0 = from the bucket-0 estimate
    alpha_decay_bps: jax.Array  # 0 = from the bundle
    alpha_floor: jax.Array  # α(δ)'s floor (config, else bundle, else 0)
    spread_capture: jax.Array  # c of the ladder's SC = c·δ - fee (config, else bundle, else 1)
    use_hawkes_intensity: jax.Array  # bool
    toxic_multiplier: jax.Array  # spread multiplier in the toxic UTC hours
    toxic_hours: jax.Array  # (24,) 1.0 for a toxic UTC hour
    cold_start: jax.Array  # bool: the cold-start order while α is prior-only
    fills: FillsArrays | None = None  # the tick ladder's cells; None = the depth ladder


class QuoterState(NamedTuple):
    cfg: RuntimeConfig
    prior: PriorArrays
    est: EstimatorState


class MarketEvent(NamedTuple):
    ts: jax.Array
    now: jax.Array
    mid: jax.Array
    bid: jax.Array
    ask: jax.Array
    sigma_bps: jax.Array
    position: jax.Array
    margin_available: jax.Array
    trade_mask: jax.Array
    trade_price: jax.Array
    trade_side: jax.Array
    fill_mask: jax.Array
    fill_price: jax.Array
    fill_side: jax.Array
    fill_depth_bps: jax.Array
    # (2, W) displayed size l ticks behind the touch (median trades), NaN = unknown; read
    # by the tick ladder only (cut or NaN-padded to its levels; W = 0: unknown everywhere)
    queue_ahead: jax.Array = np.full((2, 0), np.nan)


class Quotes(NamedTuple):
    """One step's output.  Ladder arrays are ``(2, K)``: row 0 bid, row 1 ask; an order
    exists where ``size > 0``."""

    valid: jax.Array  # bool
    reason: jax.Array  # int32, see REASONS
    price: jax.Array  # (2,K) quote currency (0.0 when invalid)
    size: jax.Array  # (2,K) base units (0 when invalid or dropped)
    depth_bps: jax.Array  # (2,K)
    fill_prob: jax.Array  # (2,K)
    alpha: jax.Array  # (2,K)
    kelly_f: jax.Array  # (2,K)
    edge_bps: jax.Array  # (2,K)
    half_spread_bps: jax.Array  # (2,)
    skew_bps: jax.Array  # (2,) per base unit of inventory
    shift_bps: jax.Array  # (2,) applied inventory shift (+ = away from the mid)
    binding: jax.Array  # (2,) int32 0 none / 1 margin / 2 position
    reduce_only: jax.Array  # bool
    margin_used: jax.Array  # quote currency
    kelly_fraction: jax.Array  # effective
    alpha_touch: jax.Array  # α at the touch in use
    alpha_decay_bps: jax.Array  # δ_char in use
    alpha_floor: jax.Array  # α_floor in use (≤ α_touch)
    sigma_bps: jax.Array  # σ in use
    mid: jax.Array
    regime_probs: jax.Array  # (R,)
    hawkes_intensity: jax.Array  # (S,) [buy, sell] aggressor arrivals, 1/s
    spread_multiplier: jax.Array  # toxic-hour multiplier in force (1 outside toxic hours)
    cold_start: jax.Array  # (2,) bool: the side's level 0 is the cold-start order


# ----------------------------------------------------------------------------- init
class ObservationConflict(BundleError):
    """A :class:`QuoterConfig` that contradicts the bundle's ``observation`` block."""


_OBSERVATION_TERMS = (
    ("markout_horizon_s", "the fit's definition of α"),
    ("informed_threshold_bps", "the fit's definition of an informed fill"),
)


def resolve_config(bundle: PriorBundle | BundleView, config: QuoterConfig | None = None) -> QuoterConfig:
    """``config`` with ``markout_horizon_s`` and ``informed_threshold_bps`` taken from
    the bundle's ``observation`` block where unset (None).  A value that is set and
    differs from the bundle's is refused (:class:`ObservationConflict`)."""
    config = config or QuoterConfig()
    view = bundle if isinstance(bundle, BundleView) else bundle_view(bundle)
    update = {}
    for name, meaning in _OBSERVATION_TERMS:
        ours, fits = getattr(config, name), float(getattr(view.observation, name))
        if ours is None:
            update[name] = fits
        elif float(ours) != fits:
            raise ObservationConflict(
                f"QuoterConfig.{name}={ours:g} contradicts the bundle's observation.{name}={fits:g} "
                f"({meaning}; bundle {view.asset} {view.model_version})"
            )
    return config.model_copy(update=update) if update else config


def _runtime_config(view: BundleView, config: QuoterConfig) -> RuntimeConfig:
    """The config's numbers as arrays (``config`` resolved: :func:`resolve_config`)."""
    f = np.float64
    c = config
    ladder = LadderParams(
        level_mult=np.asarray([c.level_ratio**k for k in range(c.n_levels)], dtype=np.float64),
        bucket_edges=np.array(view.bucket_edges, dtype=np.float64),
        gamma=f(c.gamma),
        xi=f(c.xi if c.xi is not None else c.gamma),
        delta=f(c.delta),
        min_depth_bps=f(c.min_depth_bps),
        max_depth_bps=f(c.max_depth_bps),
        max_skew_bps=f(c.max_skew_bps),
        tick_size=f(c.tick_size),
        size_increment=f(c.size_increment),
        quote_horizon_s=f(c.quote_horizon_s),
        fee_bps=f(c.fee_bps),
        sigma_floor_bps=f(c.sigma_floor_bps),
        use_kelly_stochastic=np.bool_(c.use_kelly_stochastic),
        alpha_parametric=np.bool_(c.alpha_model == "parametric"),
        kelly_fraction=f(c.kelly_fraction),
        kelly_fraction_min=f(c.kelly_fraction_min),
        kelly_fraction_max=f(c.kelly_fraction_max),
        max_kelly_f=f(c.max_kelly_f),
        leverage=f(c.leverage),
        max_position=f(c.max_position),
        min_notional=f(c.min_notional),
        spread_floor_bps=f(c.spread_floor_bps),
        cold_start_depth_mult=f(c.cold_start_depth_mult),
        cold_start_notional=f(_cold_start_notional(c)),
    )
    learning = LearningParams(
        learn=np.bool_(c.learn),
        half_life_s=f(c.forgetting_half_life_s),
        markout_horizon_s=f(c.markout_horizon_s),
        informed_threshold_bps=f(c.informed_threshold_bps),
        alpha_min_n=f(c.alpha_min_n),
        alpha_max_cv=f(c.alpha_max_cv),
        intensity_min_n=f(c.intensity_min_n),
        intensity_max_cv=f(c.intensity_max_cv),
        max_gap_s=f(c.max_age_s),
    )
    return RuntimeConfig(
        ladder=ladder,
        regime_multipliers=np.asarray(c.regime_kelly_multipliers, dtype=np.float64),
        learning=learning,
        max_age_s=f(c.max_age_s),
        alpha_touch=f(c.kelly_alpha_touch or 0.0),
        alpha_decay_bps=f(c.kelly_alpha_decay_bps or 0.0),
        alpha_floor=f(view.alpha_floor if c.kelly_alpha_floor is None else c.kelly_alpha_floor),
        spread_capture=f(_spread_capture(view, c)),
        use_hawkes_intensity=np.bool_(c.use_hawkes_intensity),
        toxic_multiplier=f(c.toxic_hour_multiplier),
        toxic_hours=np.asarray([1.0 if h in c.toxic_hours_utc else 0.0 for h in range(24)]),
        cold_start=np.bool_(c.cold_start and c.learn),
        fills=_fills(view, c),
    )


def fills_tau_s(c: QuoterConfig, observation) -> float:
    """τ of the tick ladder's fill probability, s: ``fills_refresh_s``, else the bundle's
    ``observation.repost_interval_s`` (the interval the hazard was fitted on).  The one rule
    for the step, the fills learner and the replay's fill calibration."""
    return float(c.fills_refresh_s if c.fills_refresh_s is not None else observation.repost_interval_s)


def _fills(view: BundleView, c: QuoterConfig) -> FillsArrays | None:
    """The tick ladder's arrays where the bundle has a fills model, ``tick_size > 0`` and
    ``use_fills_model``; else None (the depth ladder)."""
    if view.fills is None or c.tick_size <= 0 or not c.use_fills_model:
        return None
    return fills_arrays(view.fills, fills_tau_s(c, view.observation), c.markout_horizon_s, c.fills_ladder_start)


def _cold_start_notional(c: QuoterConfig) -> float:
    """The cold-start order's notional: the config's, else twice the minimum notional."""
    return float(c.cold_start_notional if c.cold_start_notional is not None else 2.0 * c.min_notional)


LADDER_VALUE_NAMES = ("gamma", "spread_floor_bps", "level_ratio", "toxic_multiplier")
"""The ladder values a learned-parameter registry may drive (:func:`with_ladder_values`)."""


def with_ladder_values(state: QuoterState, values: dict[str, float], *, xi_follows_gamma: bool = True,
                       toxic_hours=None) -> QuoterState:
    """``state`` with the ladder values of ``values`` (any of :data:`LADDER_VALUE_NAMES`)
    written into its config arrays: γ (and ξ when it follows γ), the spread floor, the
    depth spacing ratio (``level_mult = ratio**k``), the toxic-hour multiplier, and
    the toxic UTC hours (``toxic_hours``).  Same shapes and dtypes, so the jitted step
    is not retraced.  A non-finite or out-of-range value raises ``ValueError`` naming
    it (nothing is written)."""
    checks = {"gamma": lambda x: x > 0, "spread_floor_bps": lambda x: x >= 0,
              "level_ratio": lambda x: x > 1, "toxic_multiplier": lambda x: x > 0}
    for name, v in values.items():
        if name not in checks:
            raise ValueError(f"ladder value {name!r}: unknown (known: {', '.join(LADDER_VALUE_NAMES)})")
        if not (isinstance(v, int | float | np.floating) and np.isfinite(v) and checks[name](float(v))):
            raise ValueError(f"ladder value {name!r}: out of range: {v!r}")
    cfg = state.cfg
    lad = cfg.ladder
    f = np.float64
    up = {}
    if "gamma" in values:
        up["gamma"] = f(values["gamma"])
        if xi_follows_gamma:
            up["xi"] = f(values["gamma"])
    if "spread_floor_bps" in values:
        up["spread_floor_bps"] = f(values["spread_floor_bps"])
    if "level_ratio" in values:
        k = np.arange(np.shape(lad.level_mult)[0], dtype=np.float64)
        up["level_mult"] = np.power(f(values["level_ratio"]), k)
    lad = lad._replace(**{k: jnp.asarray(v) for k, v in up.items()})
    cfg = cfg._replace(ladder=lad)
    if "toxic_multiplier" in values:
        cfg = cfg._replace(toxic_multiplier=jnp.asarray(f(values["toxic_multiplier"])))
    if toxic_hours is not None:
        hours = {int(h) for h in toxic_hours}
        if any(not 0 <= h <= 23 for h in hours):
            raise ValueError(f"toxic hours: must be UTC hours 0-23, got {sorted(hours)}")
        cfg = cfg._replace(toxic_hours=jnp.asarray([1.0 if h in hours else 0.0 for h in range(24)]))
    return state._replace(cfg=cfg)


def _spread_capture(bundle: PriorBundle | BundleView, config: QuoterConfig) -> float:
    """c: the config's override, else the bundle's ``spread_capture`` mean, else 1."""
    if config.spread_capture is not None:
        return float(config.spread_capture)
    view = bundle if isinstance(bundle, BundleView) else bundle_view(bundle)
    return 1.0 if view.spread_capture is None else view.spread_capture


def _to_jax(tree):
    return jax.tree.map(jnp.asarray, tree)


def init(bundle: PriorBundle, config: QuoterConfig | None = None) -> QuoterState:
    """Initial state: priors from ``bundle``, posteriors = priors, regime probabilities
    = the HMM's stationary distribution, empty markout buffer.  The markout horizon
    and informed threshold are the bundle's (:func:`resolve_config`; a config that
    contradicts them raises :class:`ObservationConflict`)."""
    view = bundle_view(bundle)
    config = resolve_config(view, config)
    prior = prior_arrays(view)
    state = QuoterState(
        cfg=_runtime_config(view, config),
        prior=prior,
        est=init_estimators(prior, config.pending_capacity),
    )
    return _to_jax(state)


# ----------------------------------------------------------------------------- step
def _step_raw(state: QuoterState, ev: MarketEvent) -> tuple[QuoterState, Quotes]:
    """The step before the final finiteness pass (see :func:`_sanitize`)."""
    TRACE_COUNTS["step"] += 1  # Python side effect: runs when traced, not when executed
    cfg, prior, est = state
    lp = cfg.learning
    fin = jnp.isfinite

    ts_ok = fin(ev.ts) & fin(ev.now)
    book_given = (ev.bid > 0) & (ev.ask > 0)
    mid = jnp.where(ev.mid > 0, ev.mid, jnp.where(book_given, 0.5 * (ev.bid + ev.ask), 0.0))
    market_ok = (
        fin(ev.mid) & fin(ev.bid) & fin(ev.ask) & fin(mid) & (mid > 0) & ~(book_given & (ev.bid > ev.ask))
    )
    safe_mid = jnp.where(market_ok, mid, 1.0)
    stale = ts_ok & (ev.now - ev.ts > cfg.max_age_s)
    sigma_ok = fin(ev.sigma_bps)
    account_ok = fin(ev.position) & fin(ev.margin_available)
    trade_ok = fin(ev.trade_price) & (ev.trade_price > 0) & (jnp.abs(ev.trade_side) == 1)
    fill_ok = fin(ev.fill_price) & (ev.fill_price > 0) & (jnp.abs(ev.fill_side) == 1) & fin(ev.fill_depth_bps)
    extras_ok = (~ev.trade_mask | trade_ok) & (~ev.fill_mask | fill_ok)

    # --- online estimators
    est = update(
        est,
        prior,
        lp,
        Observation(
            ts=ev.ts,
            ts_ok=ts_ok,
            mid=safe_mid,
            mid_ok=market_ok,
            trade_ok=ev.trade_mask & trade_ok & ts_ok,
            trade_price=ev.trade_price,
            trade_side=ev.trade_side,
            fill_ok=ev.fill_mask & fill_ok & ts_ok,
            fill_price=ev.fill_price,
            fill_side=ev.fill_side,
            fill_depth_bps=ev.fill_depth_bps,
        ),
    )
    e = estimates(est, prior, lp)

    # --- regime-weighted inputs of the ladder (one unrolled sum over the regimes)
    B = prior.bucket_edges.shape[0]
    per_regime = jnp.concatenate(
        [e.alpha, e.kappa, e.arrival, prior.hawkes_mu, prior.sigma_bps[:, None], cfg.regime_multipliers[:, None]],
        axis=1,
    )
    w = uweighted(est.regime_probs, per_regime)
    alpha_buckets = w[:B]
    kappa = w[B : B + 2]  # [buy, sell] aggressors
    poisson_rate = w[B + 2 : B + 4]
    hawkes = w[B + 4 : B + 6] + jnp.sum(est.hawkes_excitation, axis=0)  # Σ_m over the kernel's components
    sigma_model = w[B + 6]
    regime_multiplier = w[B + 7]

    # --- ladder
    alpha_touch = jnp.where(cfg.alpha_touch > 0, cfg.alpha_touch, alpha_buckets[0])
    alpha_decay = jnp.where(cfg.alpha_decay_bps > 0, cfg.alpha_decay_bps, prior.alpha_decay_bps)
    alpha_floor = jnp.clip(cfg.alpha_floor, 0.0, alpha_touch)
    arrival = jnp.where(cfg.use_hawkes_intensity, hawkes, poisson_rate)
    # the toxic-hour multiplier: UTC hour of the event (a one-hot sum, no gather)
    hour = jnp.floor(jnp.mod(jnp.where(ts_ok, ev.ts, 0.0), 86_400.0) / 3_600.0)
    toxic_now = jnp.sum(jnp.where(jnp.arange(24) == hour, cfg.toxic_hours, 0.0)) > 0
    spread_multiplier = jnp.where(toxic_now, cfg.toxic_multiplier, 1.0)
    # cold start while α is prior-only: no depth bucket whose cells are trusted with a
    # regime-weighted share of at least 1/2 (docs/runtime/ladder.md, "Cold start")
    trusted = jnp.sum(est.regime_probs[:, None] * e.alpha_calibrated, axis=0)  # (B,)
    cold = cfg.cold_start & (jnp.max(trusted) < 0.5)
    # the total σ for the fill probability and for GLFT (docs/runtime/ladder.md, "Which σ":
    # GLFT's inventory penalty is the variance of the mid while holding, jumps included);
    # the diffusive σ classifies regimes only. A σ given with the event is used for both
    given = sigma_ok & (ev.sigma_bps > 0)
    sigma = jnp.where(given, ev.sigma_bps, sigma_model)
    sigma_glft = sigma
    lad_inp = (
        LadderInputs(
            mid=safe_mid,
            sigma_bps=sigma,
            position=jnp.where(fin(ev.position), ev.position, 0.0),
            margin_available=jnp.where(fin(ev.margin_available), ev.margin_available, 0.0),
            arrival=arrival[::-1],  # quote sides [bid, ask] face [sell, buy] aggressors
            kappa=kappa[::-1],
            alpha_buckets=alpha_buckets,
            alpha_touch=alpha_touch,
            alpha_decay_bps=alpha_decay,
            alpha_floor=alpha_floor,
            sigma_glft_bps=sigma_glft,
            adverse_move_bps=prior.adverse_move_bps,
            spread_capture=cfg.spread_capture,
            regime_multiplier=regime_multiplier,
            spread_multiplier=spread_multiplier,
            cold_start=cold,
        )
    )
    if cfg.fills is None:
        lad = build_ladder(lad_inp, cfg.ladder)
    else:  # the tick ladder (a Python branch on the state's structure: no cost to the others)
        tick_inp = TickInputs(best_bid=jnp.where(fin(ev.bid), ev.bid, 0.0),
                              best_ask=jnp.where(fin(ev.ask), ev.ask, 0.0),
                              queue_ahead=queue_input(ev.queue_ahead, cfg.fills.survival.shape[1]),
                              regime_probs=est.regime_probs, informed_threshold_bps=lp.informed_threshold_bps)
        lad = build_tick_ladder(lad_inp, cfg.ladder, cfg.fills, tick_inp)

    valid = ts_ok & market_ok & ~stale & sigma_ok & account_ok & extras_ok
    reason = jnp.select(
        [~ts_ok, ~market_ok, stale, ~sigma_ok, ~account_ok, ~extras_ok],
        [REASON_TIMESTAMP, REASON_MARKET, REASON_STALE, REASON_SIGMA, REASON_ACCOUNT, REASON_TRADE_FILL],
        REASON_OK,
    ).astype(jnp.int32)
    ok_price = valid & fin(lad.price) & fin(lad.size)
    quotes = Quotes(
        valid=valid,
        reason=reason,
        price=jnp.where(ok_price, lad.price, 0.0),
        size=jnp.where(ok_price, lad.size, 0.0),
        depth_bps=lad.depth_bps,
        fill_prob=lad.fill_prob,
        alpha=lad.alpha,
        kelly_f=lad.kelly_f,
        edge_bps=lad.edge_bps,
        half_spread_bps=lad.half_spread_bps,
        skew_bps=lad.skew_bps,
        shift_bps=lad.shift_bps,
        binding=jnp.where(valid, lad.binding, 0).astype(jnp.int32),
        reduce_only=lad.reduce_only & valid,
        margin_used=jnp.where(valid, lad.margin_used, 0.0),
        kelly_fraction=lad.kelly_fraction,
        alpha_touch=alpha_touch,
        alpha_decay_bps=alpha_decay,
        alpha_floor=alpha_floor,
        sigma_bps=sigma,
        mid=jnp.where(market_ok, mid, 0.0),
        regime_probs=est.regime_probs,
        hawkes_intensity=hawkes,
        spread_multiplier=spread_multiplier,
        cold_start=lad.cold_start & valid,
    )
    return QuoterState(cfg, prior, est), quotes


def _sanitize(x):
    """Replace every non-finite float by 0 (a pytree or the packed quotes vector)."""
    def one(v):
        return jnp.where(jnp.isfinite(v), v, 0.0) if jnp.issubdtype(v.dtype, jnp.floating) else v

    return jax.tree.map(one, x)


def _step_impl(state: QuoterState, ev: MarketEvent) -> tuple[QuoterState, Quotes]:
    new_state, quotes = _step_raw(state, ev)
    return new_state, _sanitize(quotes)


step = jax.jit(_step_impl)
"""``step(state, event) -> (state, quotes)``, jitted (traced once per shape/dtype)."""

batch_step = jax.jit(jax.vmap(_step_impl))
"""``step`` vmapped over a leading asset axis of ``state`` and ``event``."""


class Summary(NamedTuple):
    """What :func:`summarize` returns (metrics, reports; not the hot path)."""

    estimates: Any  # mm_runtime.estimators.Estimates
    tier_pnl: jax.Array  # regime-weighted share of trusted α cells
    tier_intensity: jax.Array  # same for κ and A
    regime_probs: jax.Array


@jax.jit
def summarize(state: QuoterState) -> Summary:
    """Learned means, data weights and calibration status of a state."""
    e = estimates(state.est, state.prior, state.cfg.learning)
    pnl, intensity = tier_shares(e, state.est.regime_probs)
    return Summary(e, pnl, intensity, state.est.regime_probs)


# ----------------------------------------------------------------------------- events
_F = np.float64


def make_event(
    ts: float,
    mid: float = 0.0,
    *,
    now: float | None = None,
    bid: float = 0.0,
    ask: float = 0.0,
    sigma_bps: float = 0.0,
    position: float = 0.0,
    margin_available: float = 0.0,
    trade_price: float | None = None,
    trade_side: float = 0.0,
    fill_price: float | None = None,
    fill_side: float = 0.0,
    fill_depth_bps: float = -1.0,
    queue_ahead=None,
) -> MarketEvent:
    """A :class:`MarketEvent` with fixed dtypes (float64 / bool), so ``step`` never
    retraces on Python-vs-numpy scalar types.  ``now=None`` means ``now = ts``.
    ``queue_ahead``: ``(2, W)`` displayed size l ticks behind the touch per side, in
    median trades (the tick ladder's queue input; None = unknown, shape (2, 0)); keep W
    fixed across calls (one trace per width)."""
    return MarketEvent(
        ts=_F(ts),
        now=_F(ts if now is None else now),
        mid=_F(mid),
        bid=_F(bid),
        ask=_F(ask),
        sigma_bps=_F(sigma_bps),
        position=_F(position),
        margin_available=_F(margin_available),
        trade_mask=np.bool_(trade_price is not None),
        trade_price=_F(0.0 if trade_price is None else trade_price),
        trade_side=_F(trade_side),
        fill_mask=np.bool_(fill_price is not None),
        fill_price=_F(0.0 if fill_price is None else fill_price),
        fill_side=_F(fill_side),
        fill_depth_bps=_F(fill_depth_bps),
        queue_ahead=np.full((2, 0), np.nan) if queue_ahead is None else np.asarray(queue_ahead, dtype=np.float64),
    )


def stack_trees(trees):
    """Stack same-shaped pytrees (states or events of several assets) on a new axis 0."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)
