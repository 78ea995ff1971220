"""The live quoter: a pure functional core and a thin stateful ``Quoter``.

Functional core (BlackJAX style)::

    state = init(bundle, config)              # QuoterState(cfg, prior, est), a pytree of arrays
    state, quotes = step(state, event)        # jax.jit'ed once; no retracing per call
    states, quotes = batch_step(states, events)   # jax.vmap over a leading asset axis
    summary = summarize(state)                # learned means, data weights, calibration tiers

``PackedStep`` runs the same step on flat vectors (the latency path used by
``Quoter``); ``quote_once`` is the one-shot ladder behind ``mmcal quote``.

One ``step`` handles a market update plus an optional public trade and an optional
own fill (masks), in this order: clock (forgetting, Hawkes decay, exposure) → trade
(κ, A, Hawkes jump; depth vs the *previous* mid) → fill (into the markout buffer;
depth vs the previous mid unless given) → mid (volatility bar, regime filter) →
markouts due → estimates → ladder.

:class:`MarketEvent` conventions — every field is a float64 scalar except the two
bool masks; **0 (or a negative depth) means "not given", NaN/±inf is always an
error**:

=================  ======================================================================
ts                 event (exchange) time, seconds since the epoch (``ts_ns / 1e9``)
now                local clock at quoting time, s (``= ts`` in a replay); stale when
                   ``now - ts > max_age_s``
mid                mid price; 0 = (bid + ask)/2
bid, ask           best bid/offer; 0 = not given; a crossed book (bid > ask) gives no quotes
sigma_bps          σ in bps/√s; 0 = use the model's Σ_r p_r σ_r
position           signed, base units (+ long)
margin_available   quote currency
trade_mask         a public market order is attached …
trade_price        … its price (the sweep's furthest print) …
trade_side         … and aggressor side (+1 buy, −1 sell)
fill_mask          one of our quotes was filled …
fill_price         … at this price …
fill_side          … on this side (+1 our bid: we bought, −1 our ask: we sold) …
fill_depth_bps     … at this quoted depth (< 0 = measure from the prevailing mid)
=================  ======================================================================

Safety: a non-finite or stale input gives **no quotes**: ``valid=False``, every
``size`` 0 and every ``price`` 0.0 (a finite placeholder, never NaN), and ``reason``
says why (see ``REASONS``).  Every other float in :class:`Quotes` is finite too.
Learning still uses the finite parts of such an event.

Float64: importing ``mm_runtime`` turns on ``jax_enable_x64`` (see ``__init__``):
prices like 100 000 and epoch-second timestamps need it.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .bundle import BundleError, PriorBundle, load_bundle
from .vocabulary import REGIMES, SIDES
from .config import QuoterConfig
from ._small import uweighted
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
from .metrics import AssetMetrics, RuntimeMetrics
from .perf import is_one_kernel, packed_step_compiler_options, run_once_as_one_kernel, small_loops_as_kernels

__all__ = [
    "RuntimeConfig",
    "QuoterState",
    "MarketEvent",
    "Quotes",
    "REASONS",
    "BINDING_NAMES",
    "TRACE_COUNTS",
    "init",
    "step",
    "batch_step",
    "summarize",
    "Summary",
    "make_event",
    "stack_trees",
    "PackedStep",
    "Quoter",
    "QuoteReport",
    "quote_once",
    "quote_report",
    "ladder_rows",
]

log = logging.getLogger("mm_runtime.quoter")

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
    spread_capture: jax.Array  # c of the ladder's SC = c·δ - fee (config, else bundle, else 1)
    use_hawkes_intensity: jax.Array  # bool


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
    sigma_bps: jax.Array  # σ in use
    mid: jax.Array
    regime_probs: jax.Array  # (R,)
    hawkes_intensity: jax.Array  # (S,) [buy, sell] aggressor arrivals, 1/s


# ----------------------------------------------------------------------------- init
def _runtime_config(bundle: PriorBundle, config: QuoterConfig) -> RuntimeConfig:
    f = np.float64
    c = config
    ladder = LadderParams(
        level_mult=np.asarray([c.level_ratio**k for k in range(c.n_levels)], dtype=np.float64),
        bucket_edges=np.asarray(bundle.depth_buckets_bps, dtype=np.float64),
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
        spread_capture=f(_spread_capture(bundle, c)),
        use_hawkes_intensity=np.bool_(c.use_hawkes_intensity),
    )


def _spread_capture(bundle: PriorBundle, config: QuoterConfig) -> float:
    """c: the config's override, else the bundle's ``spread_capture`` mean, else 1."""
    if config.spread_capture is not None:
        return float(config.spread_capture)
    sc = bundle.params.spread_capture
    return 1.0 if sc is None else float(sc.mean())


def _to_jax(tree):
    return jax.tree.map(jnp.asarray, tree)


def init(bundle: PriorBundle, config: QuoterConfig | None = None) -> QuoterState:
    """Initial state: priors from ``bundle``, posteriors = priors, regime probabilities
    = the HMM's stationary distribution, empty markout buffer."""
    config = config or QuoterConfig()
    prior = prior_arrays(bundle)
    state = QuoterState(
        cfg=_runtime_config(bundle, config),
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
    hawkes = w[B + 4 : B + 6] + est.hawkes_excitation
    sigma_model = w[B + 6]
    regime_multiplier = w[B + 7]

    # --- ladder
    alpha_touch = jnp.where(cfg.alpha_touch > 0, cfg.alpha_touch, alpha_buckets[0])
    alpha_decay = jnp.where(cfg.alpha_decay_bps > 0, cfg.alpha_decay_bps, prior.alpha_decay_bps)
    arrival = jnp.where(cfg.use_hawkes_intensity, hawkes, poisson_rate)
    sigma = jnp.where(sigma_ok & (ev.sigma_bps > 0), ev.sigma_bps, sigma_model)
    lad = build_ladder(
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
            adverse_move_bps=prior.adverse_move_bps,
            spread_capture=cfg.spread_capture,
            regime_multiplier=regime_multiplier,
        ),
        cfg.ladder,
    )

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
        sigma_bps=sigma,
        mid=jnp.where(market_ok, mid, 0.0),
        regime_probs=est.regime_probs,
        hawkes_intensity=hawkes,
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
) -> MarketEvent:
    """A :class:`MarketEvent` with fixed dtypes (float64 / bool), so ``step`` never
    retraces on Python-vs-numpy scalar types.  ``now=None`` means ``now = ts``."""
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
    )


def stack_trees(trees):
    """Stack same-shaped pytrees (states or events of several assets) on a new axis 0."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


# ----------------------------------------------------------------------------- packed fast path
class _Layout:
    """Flat float64 layout of a pytree (leaf order of ``jax.tree.flatten``)."""

    def __init__(self, tree):
        leaves, self.treedef = jax.tree.flatten(tree)
        self.shapes = [tuple(np.shape(x)) for x in leaves]
        self.dtypes = [np.asarray(x).dtype if not hasattr(x, "dtype") else np.dtype(x.dtype) for x in leaves]
        self.sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int).tolist()
        self.size = self.offsets[-1]
        self.key = (str(self.treedef), tuple(self.shapes), tuple(str(d) for d in self.dtypes))
        # per leaf: (kind, start, stop, shape, scalar type); kind = scalar "s" / array
        # "a" + float "f" / bool "b" / other "i" (decided once: the read-out is hot)
        self._plan = [
            (("s" if not shp else "a") + ("b" if dt == np.bool_ else "f" if dt == np.float64 else "i"),
             o, o + n, shp, dt.type)
            for o, n, shp, dt in zip(self.offsets[:-1], self.sizes, self.shapes, self.dtypes, strict=True)
        ]

    def pack_np(self, tree) -> np.ndarray:
        leaves = jax.tree.leaves(tree)
        return np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in leaves])

    def _leaves_np(self, vec: np.ndarray) -> list:
        """The leaves as numpy views into ``vec`` (scalars as numpy scalars; copies
        only for bool/int leaves)."""
        out = []
        for kind, o, e, shp, t in self._plan:
            if kind == "af":
                out.append(vec[o:e].reshape(shp))
            elif kind == "sf":
                out.append(vec[o])
            elif kind == "sb":
                out.append(vec[o] != 0)
            elif kind == "si":
                out.append(t(vec[o]))
            elif kind == "ab":
                out.append(vec[o:e].reshape(shp) != 0)
            else:
                out.append(vec[o:e].reshape(shp).astype(t))
        return out

    def unpack_np(self, vec):
        """The tree of numpy views into ``vec`` (:meth:`_leaves_np`)."""
        return self.treedef.unflatten(self._leaves_np(np.asarray(vec)))

    def pack_jnp(self, tree):
        leaves = jax.tree.leaves(tree)
        return jnp.concatenate([jnp.ravel(x).astype(jnp.float64) for x in leaves])

    def unpack_jnp(self, vec):
        out = []
        for o, n, shp, dt in zip(self.offsets, self.sizes, self.shapes, self.dtypes, strict=False):
            x = vec[o : o + n].reshape(shp)
            out.append(x != 0 if dt == np.bool_ else x.astype(dt))
        return jax.tree.unflatten(self.treedef, out)


_PACKED_CACHE: dict = {}


class PackedStep:
    """The same step on one flat float64 vector, for the latency-critical
    single-asset path (``Quoter``).  On CPU each array passed to or returned from a
    jitted function costs ~0.5–1.5 µs of dispatch, and each XLA kernel ~0.3–1 µs, so:

    * the whole state is one vector ``[estimators | config + priors | last quotes]``,
      donated and returned: one array in (plus the event), one array out.  The
      config + priors part is copied through unchanged (a 1.4 kB copy is cheaper
      than a second argument and a second result); the quotes part is written by the
      step (its input value is ignored), made finite by a single ``where``;
    * the event is one vector in field order;
    * it is compiled with :data:`mm_runtime.perf.PACKED_STEP_COMPILER_OPTIONS`
      (XLA's memory-optimized schedule: the same kernels, ordered so that the CPU
      runtime hands none of them to its thread pool; bit-identical results);
    * in low-latency mode (:func:`mm_runtime.configure_low_latency_cpu`) it runs as
      one XLA kernel (:func:`mm_runtime.perf.run_once_as_one_kernel`; checked on
      the compiled HLO, ``one_kernel`` says which form is in use): no executor, no
      thread pool, whatever XLA's schedule (see :mod:`mm_runtime.perf`).

    The vector passed in is donated: do not keep it (or numpy views of it) across a
    call; :meth:`quotes` copies what it returns.
    """

    def __init__(self, state: QuoterState):
        self.const_layout = _Layout((state.cfg, state.prior))
        self.est_layout = _Layout(state.est)
        self.event_layout = _Layout(make_event(0.0))
        _, q = jax.eval_shape(_step_raw, state, make_event(0.0))
        self.quotes_layout = _Layout(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), q))
        ne, nc = self.est_layout.size, self.const_layout.size
        self.est_slice = slice(0, ne)
        self.const_slice = slice(ne, ne + nc)
        self.quotes_slice = slice(ne + nc, ne + nc + self.quotes_layout.size)
        one_kernel_wanted = small_loops_as_kernels()
        key = (self.const_layout.key, self.est_layout.key, one_kernel_wanted)
        cached = _PACKED_CACHE.get(key)
        if cached is None:  # one compilation per state structure, shared by every Quoter
            cl, sl, el, ql = self.const_layout, self.est_layout, self.event_layout, self.quotes_layout

            def packed(vec, ev_vec):
                est_vec, const_vec = vec[:ne], vec[ne : ne + nc]
                cfg, prior = cl.unpack_jnp(const_vec)
                s, q = _step_raw(QuoterState(cfg, prior, sl.unpack_jnp(est_vec)), el.unpack_jnp(ev_vec))
                qv = ql.pack_jnp(q)
                return jnp.concatenate([sl.pack_jnp(s.est), const_vec, jnp.where(jnp.isfinite(qv), qv, 0.0)])

            options = packed_step_compiler_options()
            cached = None
            if one_kernel_wanted:
                once = jax.jit(run_once_as_one_kernel(packed), donate_argnums=(0,), compiler_options=options)
                specs = (
                    jax.ShapeDtypeStruct((self.quotes_slice.stop,), jnp.float64),
                    jax.ShapeDtypeStruct((self.event_layout.size,), jnp.float64),
                )
                if is_one_kernel(once.lower(*specs).compile()):
                    cached = (once, True, packed)
            if cached is None:  # the multi-kernel form (also when the loop was too big)
                cached = (jax.jit(packed, donate_argnums=(0,), compiler_options=options), False, packed)
            _PACKED_CACHE[key] = cached
        # python_fn: the un-jitted (vec, ev_vec) -> vec function (for benchmarks)
        self._fn, self.one_kernel, self.python_fn = cached

    def pack(self, state: QuoterState):
        """The state vector (a device array) of ``state``; its quotes part is zeros."""
        return jnp.asarray(np.concatenate([
            self.est_layout.pack_np(state.est),
            self.const_layout.pack_np((state.cfg, state.prior)),
            np.zeros(self.quotes_layout.size),
        ]))

    def unpack(self, vec) -> QuoterState:
        """The :class:`QuoterState` in ``vec`` (copied into new arrays)."""
        v = np.asarray(vec)
        cfg, prior = self.const_layout.unpack_np(v[self.const_slice])
        return _to_jax(QuoterState(cfg, prior, self.est_layout.unpack_np(v[self.est_slice])))

    def __call__(self, vec, ev_vec):
        """(state vector [donated], event vector) -> state vector holding the quotes."""
        return self._fn(vec, ev_vec)

    @staticmethod
    def event_vector(ev: MarketEvent) -> np.ndarray:
        return np.array(ev, dtype=np.float64)  # all leaves are scalars, in field order

    def quotes(self, vec) -> Quotes:
        """The quotes written by the last step into ``vec`` (numpy, a copy)."""
        return self.quotes_layout.unpack_np(np.array(np.asarray(vec)[self.quotes_slice]))


# ----------------------------------------------------------------------------- Quoter
class Quoter:
    """Owns one asset's state; hot reload, metrics, structured logs, staleness.

    ``bundle`` is a :class:`PriorBundle` or a path (a path is watched: when its mtime
    changes the bundle is reloaded; a bundle that fails to load is refused and the
    last good one kept).  ``replay=True`` uses the event time as the clock (paper
    trading); otherwise ``now`` is the wall clock and data older than ``max_age_s``
    gives no quotes.  ``metrics``: a shared :class:`RuntimeMetrics`, ``None`` for a
    private registry, or ``False`` for none.
    """

    def __init__(
        self,
        bundle: PriorBundle | str | os.PathLike,
        config: QuoterConfig | None = None,
        *,
        replay: bool = False,
        metrics: RuntimeMetrics | None | bool = None,
        logger: logging.Logger | None = None,
        clock=time.time,
    ):
        self.config = config or QuoterConfig()
        self.replay = replay
        self.clock = clock
        self.log = logger or log
        self.bundle_path: Path | None = None
        self._file_sig = None
        if isinstance(bundle, PriorBundle):
            self.bundle = bundle
        else:
            self.bundle_path = Path(bundle)
            self._file_sig = self._stat()
            self.bundle = load_bundle(self.bundle_path)
        self.asset = self.bundle.asset
        state = init(self.bundle, self.config)
        self._packed = PackedStep(state)
        self._vec = self._packed.pack(state)
        if metrics is False:
            self.metrics: AssetMetrics | None = None
            self.runtime_metrics = None
        else:
            self.runtime_metrics = metrics if isinstance(metrics, RuntimeMetrics) else RuntimeMetrics()
            self.metrics = self.runtime_metrics.for_asset(self.asset)
            self.metrics.set_bundle(self.bundle)
        self._last_reload_check = time.monotonic()
        self._last_metrics = -math.inf
        self._last_log = -math.inf
        self._last_status: tuple | None = None
        self.last_quotes: Quotes | None = None
        self.n_events = 0

    # -- state -------------------------------------------------------------------------
    @property
    def state(self) -> QuoterState:
        """The current state as a pytree (a copy)."""
        return self._packed.unpack(self._vec)

    @state.setter
    def state(self, value: QuoterState) -> None:
        if _Layout(value).shapes != _Layout(self.state).shapes:
            self._packed = PackedStep(value)
        self._vec = self._packed.pack(value)

    # -- events ------------------------------------------------------------------------
    @property
    def one_kernel_step(self) -> bool:
        """Whether the step runs as one XLA kernel (low-latency mode; see
        :class:`PackedStep`)."""
        return self._packed.one_kernel

    def on_event(
        self,
        ts: float,
        mid: float = 0.0,
        *,
        bid: float = 0.0,
        ask: float = 0.0,
        sigma_bps: float = 0.0,
        position: float = 0.0,
        margin_available: float = 0.0,
        trade: tuple[float, float] | None = None,
        fill: tuple[float, float] | tuple[float, float, float] | None = None,
        now: float | None = None,
    ) -> Quotes:
        """Process one event and return the quotes (numpy arrays).

        ``ts`` in seconds; ``trade=(price, aggressor_side)``;
        ``fill=(price, our_side[, quoted_depth_bps])``; ``now`` defaults to the wall
        clock (``ts`` in replay mode).
        """
        t0 = time.perf_counter()
        self._maybe_reload()
        if now is None:
            now = ts if self.replay else self.clock()
        ev = (
            ts,
            now,
            mid,
            bid,
            ask,
            sigma_bps,
            position,
            margin_available,
            trade is not None,
            trade[0] if trade is not None else 0.0,
            trade[1] if trade is not None else 0.0,
            fill is not None,
            fill[0] if fill is not None else 0.0,
            fill[1] if fill is not None else 0.0,
            (fill[2] if len(fill) > 2 else -1.0) if fill is not None else -1.0,
        )
        evec = np.array(ev, dtype=np.float64)
        self._vec = self._packed(self._vec, evec)
        quotes = self._packed.quotes(self._vec)
        self.last_quotes = quotes
        self.n_events += 1
        if self.metrics is not None:
            self.metrics.latency.observe(time.perf_counter() - t0)
        self._after_step(quotes)
        return quotes

    # -- reload ------------------------------------------------------------------------
    def _stat(self):
        try:
            st = os.stat(self.bundle_path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _maybe_reload(self) -> None:
        if self.bundle_path is None:
            return
        t = time.monotonic()
        if t - self._last_reload_check < self.config.reload_check_interval_s:
            return
        self._last_reload_check = t
        sig = self._stat()
        if sig is not None and sig != self._file_sig:
            self._file_sig = sig
            self.reload()

    def reload(self, path: str | os.PathLike | None = None) -> bool:
        """Load a new bundle (default: the watched path).  On any failure the last good
        bundle stays in use and False is returned (logged, counted in metrics)."""
        target = Path(path) if path is not None else self.bundle_path
        if target is None:
            raise ValueError("reload() needs a path: this Quoter was built from an in-memory bundle")
        try:
            new = load_bundle(target)
            if new.asset != self.asset:
                raise BundleError(f"{target}: asset: bundle is for {new.asset!r}, this quoter quotes {self.asset!r}")
        except BundleError as exc:
            self.log.error("bundle reload refused; keeping the last good bundle",
                           extra={"fields": {"asset": self.asset, "path": str(target), "error": str(exc),
                                             "model_version": self.bundle.model_version}})
            if self.metrics is not None:
                self.metrics.reload_failed()
            return False
        self.install_bundle(new)
        if path is not None and self.bundle_path is not None and Path(path) == self.bundle_path:
            self._file_sig = self._stat()
        return True

    def install_bundle(self, new: PriorBundle) -> None:
        """Swap in ``new`` priors; learned evidence is re-based onto them when
        ``reload_keeps_learning`` and the shapes match, else reset."""
        old_state = self.state
        state = init(new, self.config)
        same = jax.tree.map(np.shape, state.prior) == jax.tree.map(np.shape, old_state.prior)
        if same:
            # keep the filter, Hawkes, markout buffer and clock; the learned evidence
            # (sufficient statistics) is re-based onto the new priors, or dropped
            est = old_state.est
            if not self.config.reload_keeps_learning:
                est = est._replace(evidence=state.est.evidence)
            state = state._replace(est=est)
        self.state = state
        old_version = self.bundle.model_version
        self.bundle = new
        if self.metrics is not None:
            self.metrics.set_bundle(new)
        self.log.info("bundle reloaded", extra={"fields": {
            "asset": self.asset, "model_version": new.model_version, "previous_model_version": old_version,
            "kept_learning": bool(same and self.config.reload_keeps_learning)}})

    # -- metrics and logs --------------------------------------------------------------
    def _after_step(self, q: Quotes) -> None:
        t = time.monotonic()
        if self.metrics is not None and t - self._last_metrics >= self.config.metrics_interval_s:
            self._last_metrics = t
            self.update_metrics(q)
        status = (bool(q.valid), int(q.reason), tuple(int(b) for b in q.binding), int(np.argmax(q.regime_probs)))
        if status != self._last_status or t - self._last_log >= self.config.log_interval_s:
            self._last_log = t
            self._last_status = status
            self.log.info("quote status", extra={"fields": self.status_fields(q)})

    def status_fields(self, q: Quotes) -> dict[str, Any]:
        return {
            "asset": self.asset,
            "valid": bool(q.valid),
            "reason": REASONS[int(q.reason)],
            "binding": {s: BINDING_NAMES[int(b)] for s, b in zip(("bid", "ask"), q.binding, strict=True)},
            "reduce_only": bool(q.reduce_only),
            "margin_used": float(q.margin_used),
            "kelly_stochastic": self.config.use_kelly_stochastic,
            "kelly_fraction": float(q.kelly_fraction),
            "regime": REGIMES[int(np.argmax(q.regime_probs))],
            "regime_probs": {r: round(float(p), 6) for r, p in zip(REGIMES, q.regime_probs, strict=True)},
            "sigma_bps": float(q.sigma_bps),
            "half_spread_bps": [float(x) for x in q.half_spread_bps],
            "model_version": self.bundle.model_version,
        }

    def update_metrics(self, q: Quotes | None = None) -> None:
        """Refresh every gauge now (``on_event`` does this every ``metrics_interval_s``)."""
        if self.metrics is None:
            return
        q = q if q is not None else self.last_quotes
        summ = jax.tree.map(np.asarray, summarize(self.state))
        e = summ.estimates
        m = self.metrics
        buckets = self.bundle.bucket_keys
        m.set_learned("alpha", e.alpha_learned, e.alpha_data_weight, REGIMES, buckets)
        m.set_learned("kappa", e.kappa_learned, e.kappa_data_weight, REGIMES, SIDES)
        m.set_learned("arrival_rate", e.arrival_learned, e.arrival_data_weight, REGIMES, SIDES)
        if q is not None:
            m.set_kelly(self.config.use_kelly_stochastic, float(q.alpha_touch), float(q.kelly_fraction),
                        float(q.alpha_decay_bps))
            m.set_status(regime_probs=q.regime_probs, hawkes=q.hawkes_intensity, tier_pnl=summ.tier_pnl,
                         tier_intensity=summ.tier_intensity, valid=bool(q.valid), binding=q.binding,
                         margin_used=q.margin_used)

    def serve_metrics(self, port: int = 0, addr: str = "127.0.0.1"):
        """Start the Prometheus HTTP exporter on loopback; returns (server, thread)."""
        if self.runtime_metrics is None:
            raise RuntimeError("this Quoter was built with metrics=False")
        return self.runtime_metrics.serve(port, addr)


# ----------------------------------------------------------------------------- one-shot (CLI)
def ladder_rows(q: Quotes) -> list[dict[str, Any]]:
    """Rows (bid levels then ask levels): side, level, depth_bps, price, size, p_fill,
    alpha, kelly_f, edge_bps."""
    rows = []
    for i, side in enumerate(("bid", "ask")):
        for k in range(np.shape(q.price)[1]):
            rows.append({
                "side": side,
                "level": k,
                "depth_bps": float(q.depth_bps[i, k]),
                "price": float(q.price[i, k]),
                "size": float(q.size[i, k]),
                "p_fill": float(q.fill_prob[i, k]),
                "alpha": float(q.alpha[i, k]),
                "kelly_f": float(q.kelly_f[i, k]),
                "edge_bps": float(q.edge_bps[i, k]),
            })
    return rows


@dataclass
class QuoteReport:
    """What ``mmcal quote`` prints: the ladder rows and a summary."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "ladder": self.rows}


def quote_once(
    bundle: PriorBundle | str | os.PathLike,
    mid: float,
    sigma_bps: float = 0.0,
    *,
    position: float = 0.0,
    margin_available: float = 10_000.0,
    bid: float = 0.0,
    ask: float = 0.0,
    config: QuoterConfig | None = None,
) -> QuoteReport:
    """One quote from the bundle's priors (no learning history): the ladder for
    ``mmcal quote --priors BUNDLE --mid P --sigma S [--position Q --margin M]``.

    ``sigma_bps`` ≤ 0 uses the bundle's regime-weighted σ (stationary regime mix).
    Raises :class:`BundleError` for a bad bundle path.
    """
    b = bundle if isinstance(bundle, PriorBundle) else load_bundle(bundle)
    config = config or QuoterConfig()
    state = init(b, config)
    ev = make_event(0.0, mid, bid=bid, ask=ask, sigma_bps=sigma_bps, position=position,
                    margin_available=margin_available)
    _, q = step(state, ev)
    return quote_report(q, b, config)


def quote_report(q: Quotes, b: PriorBundle, config: QuoterConfig) -> QuoteReport:
    """The ladder rows and summary of one step's quotes ``q`` (from ``bundle`` ``b``
    under ``config``): what ``mmcal quote`` prints, and the demo after a replay."""
    q = jax.tree.map(np.asarray, q)
    summary = {
        "asset": b.asset,
        "model_version": b.model_version,
        "valid": bool(q.valid),
        "reason": REASONS[int(q.reason)],
        "mid": float(q.mid),
        "sigma_bps": float(q.sigma_bps),
        "half_spread_bps": {"bid": float(q.half_spread_bps[0]), "ask": float(q.half_spread_bps[1])},
        "skew_bps_per_unit": {"bid": float(q.skew_bps[0]), "ask": float(q.skew_bps[1])},
        "shift_bps": {"bid": float(q.shift_bps[0]), "ask": float(q.shift_bps[1])},
        "binding": {s: BINDING_NAMES[int(x)] for s, x in zip(("bid", "ask"), q.binding, strict=True)},
        "reduce_only": bool(q.reduce_only),
        "margin_used": float(q.margin_used),
        "kelly_stochastic": config.use_kelly_stochastic,
        "kelly_fraction": float(q.kelly_fraction),
        "alpha_touch": float(q.alpha_touch),
        "alpha_decay_bps": float(q.alpha_decay_bps),
        "spread_capture": _spread_capture(b, config),
        "adverse_move_bps": float(b.params.adverse_move_bps.mean()),
        "fee_bps": float(config.fee_bps),
        "regime_probs": {r: float(p) for r, p in zip(REGIMES, q.regime_probs, strict=True)},
    }
    return QuoteReport(rows=ladder_rows(q), summary=summary)
