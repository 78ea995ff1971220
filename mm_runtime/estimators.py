"""Online estimators: pure functions on a NamedTuple state (jit/vmap-able).

Learned, each update weighted by the filtered regime probabilities: α[regime, bucket]
(Beta–Bernoulli on fills' markouts in bps at the bundle's ``markout_horizon_s`` vs its
``informed_threshold_bps``), κ[regime, side] (Gamma–Exponential on market orders'
depth beyond the mid, 1/bps) and A[regime, side] (Gamma–Poisson, arrivals per s of
exposure).  Not learned: the Hawkes intensities (the recursion of the bundle's kernel,
one exponential or M components, over its means, 1/s; :mod:`mm_runtime.hawkes_kernel`) and the regime probabilities (forward filter over the bundle's
HMM on ln σ per volatility bar, σ in bps/√s).  The families are kept as one ``(R, C)``
evidence array added to the prior's natural parameters (:class:`Columns`); a cell is
trusted once its tier (``pnl``: α; ``intensity``: κ, A) is calibrated.

The update rules, the evidence layout and the tiers in full: docs/runtime/estimators.md.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._small import umax, usum, uweighted
from .barvar import BarParams, bar_init, bar_params, bar_update
from .bundle import PriorBundle
from .conjugate import BetaParams, GammaParams
from .hawkes_kernel import MAX_COMPONENTS, excitation_step, padded
from .view import BundleView, bundle_view
from .vocabulary import REGIMES, SIDES

__all__ = [
    "Columns",
    "without_alpha_evidence",
    "PriorArrays",
    "LearningParams",
    "EstimatorState",
    "Estimates",
    "PENDING_TS",
    "PENDING_PRICE",
    "PENDING_SIDE",
    "PENDING_BUCKET",
    "PENDING_ACTIVE",
    "PENDING_PROBS",
    "prior_arrays",
    "init_estimators",
    "posterior",
    "Observation",
    "update",
    "forward_filter_step",
    "student_t_logpdf",
    "estimates",
    "tier_shares",
]

R, S = len(REGIMES), len(SIDES)

# columns of a pending-fill row
PENDING_TS, PENDING_PRICE, PENDING_SIDE, PENDING_BUCKET, PENDING_ACTIVE, PENDING_PROBS = range(6)


class Columns:
    """Column slices of the ``(R, C)`` natural-parameter / evidence arrays."""

    def __init__(self, n_buckets: int):
        B = n_buckets
        self.B = B
        self.alpha_a = slice(0, B)
        self.alpha_b = slice(B, 2 * B)
        self.kappa_shape = slice(2 * B, 2 * B + S)
        self.kappa_rate = slice(2 * B + S, 2 * B + 2 * S)
        self.arrival_shape = slice(2 * B + 2 * S, 2 * B + 3 * S)
        self.arrival_rate = slice(2 * B + 3 * S, 2 * B + 4 * S)
        self.n = 2 * B + 4 * S

    def alpha(self, nat) -> BetaParams:
        return BetaParams(nat[..., self.alpha_a], nat[..., self.alpha_b])

    def kappa(self, nat) -> GammaParams:
        return GammaParams(nat[..., self.kappa_shape], nat[..., self.kappa_rate])

    def arrival(self, nat) -> GammaParams:
        return GammaParams(nat[..., self.arrival_shape], nat[..., self.arrival_rate])

    def side_of_column(self) -> np.ndarray:
        """(C,) side index of the κ/A columns, −1 elsewhere."""
        out = -np.ones(self.n)
        for sl in (self.kappa_shape, self.kappa_rate, self.arrival_shape, self.arrival_rate):
            out[sl] = np.arange(S)
        return out


def without_alpha_evidence(est: "EstimatorState", n_buckets: int) -> "EstimatorState":
    """``est`` with the α evidence (the Beta columns) set to zero: what was learned
    under another definition of α (markout horizon, informed threshold) is dropped;
    κ and the arrival rate are kept."""
    evidence = np.array(est.evidence)
    evidence[:, : Columns(n_buckets).alpha_b.stop] = 0.0
    return est._replace(evidence=evidence)


class PriorArrays(NamedTuple):
    """The bundle as arrays: conjugate priors of the learned families, means of the rest."""

    nat: jax.Array  # (R, C) [α a | α b | κ shape | κ rate | A shape | A rate]
    hawkes_mu: jax.Array  # (R, S) 1/s
    hawkes_kernel_n: jax.Array  # (K, S, S) [component, target, source], K = MAX_COMPONENTS (zero-padded)
    hawkes_kernel_beta: jax.Array  # (K,) 1/s, fastest first (padding: PAD_DECAY)
    transition: jax.Array  # (R, R) row-stochastic, per volatility bar
    emission_loc: jax.Array  # (R,) Student-t predictive of ln σ_bar
    emission_scale: jax.Array  # (R,)
    emission_df: jax.Array  # (R,)
    emission_const: jax.Array  # (R,) log-normalizer of the t density
    sigma_bps: jax.Array  # (R,) bps/√s, total volatility (first passage)
    sigma_diffusive_bps: jax.Array  # (R,) bps/√s, diffusive volatility (the regime statistic; not in the ladder)
    alpha_decay_bps: jax.Array  # ()
    adverse_move_bps: jax.Array  # ()
    bucket_edges: jax.Array  # (B,) lower edges, bps
    bar_s: jax.Array  # () volatility bar length, s
    stationary: jax.Array  # (R,) stationary distribution of ``transition``
    bar: BarParams  # the bar statistic's rule (the bundle's observation block; mm_runtime.barvar)


class LearningParams(NamedTuple):
    learn: jax.Array  # bool
    half_life_s: jax.Array
    markout_horizon_s: jax.Array
    informed_threshold_bps: jax.Array
    alpha_min_n: jax.Array
    alpha_max_cv: jax.Array
    intensity_min_n: jax.Array
    intensity_max_cv: jax.Array
    max_gap_s: jax.Array


class EstimatorState(NamedTuple):
    evidence: jax.Array  # (R, C) sufficient statistics since the prior (see Columns)
    regime_probs: jax.Array  # (R,)
    hawkes_excitation: jax.Array  # (K, S) 1/s per kernel component (rows past the bundle's M stay 0)
    pending: jax.Array  # (N, 5 + R) rows [ts, price, side, bucket, active, p_0..p_{R-1}]
    cursor: jax.Array  # () float64 index of the next pending row to write
    bar_stats: jax.Array  # (9,) the open volatility bar (mm_runtime.barvar.bar_update)
    last_ts: jax.Array  # () s
    last_mid: jax.Array  # () 0 until the first valid mid
    started: jax.Array  # () 1.0 once a valid timestamp has been seen (float64: the
    #                    whole state is float64 so that it packs without conversions)


class Estimates(NamedTuple):
    """Point estimates per cell and the calibration status."""

    alpha: jax.Array  # (R, B) in use (learned where trusted, else the prior mean)
    kappa: jax.Array  # (R, S)
    arrival: jax.Array  # (R, S)
    alpha_learned: jax.Array  # (R, B) posterior means
    kappa_learned: jax.Array  # (R, S)
    arrival_learned: jax.Array  # (R, S)
    alpha_data_weight: jax.Array  # (R, B)  n/(n + prior strength)
    kappa_data_weight: jax.Array  # (R, S)
    arrival_data_weight: jax.Array  # (R, S)
    alpha_calibrated: jax.Array  # (R, B) bool
    kappa_calibrated: jax.Array  # (R, S) bool
    arrival_calibrated: jax.Array  # (R, S) bool


# ----------------------------------------------------------------------------- init
def prior_arrays(bundle: PriorBundle | BundleView) -> PriorArrays:
    """The arrays of a validated bundle (or of its view, :mod:`mm_runtime.view`),
    numpy float64."""
    from math import lgamma, log, pi

    v = bundle if isinstance(bundle, BundleView) else bundle_view(bundle)
    f = lambda x: np.array(x, dtype=np.float64)  # noqa: E731  (a writable copy)
    cols = Columns(len(v.buckets))
    nat = np.zeros((R, cols.n))
    nat[:, cols.alpha_a] = v.alpha_a
    nat[:, cols.alpha_b] = v.alpha_b
    nat[:, cols.kappa_shape] = v.kappa_shape
    nat[:, cols.kappa_rate] = v.kappa_rate
    nat[:, cols.arrival_shape] = v.arrival_shape
    nat[:, cols.arrival_rate] = v.arrival_rate
    kn, kb = padded(v.hawkes_kernel_n, v.hawkes_kernel_beta)
    const = [lgamma(0.5 * (df + 1)) - lgamma(0.5 * df) - 0.5 * log(df * pi) - log(sc)
             for df, sc in zip(v.emission_df.tolist(), v.emission_scale.tolist(), strict=True)]
    return PriorArrays(
        nat=nat,
        hawkes_mu=f(v.hawkes_mu),
        # a fixed K rows whatever the bundle's M (mm_runtime.hawkes_kernel): one trace for every
        # bundle, vmappable across assets of different M, a state file of one shape
        hawkes_kernel_n=f(kn),
        hawkes_kernel_beta=f(kb),
        transition=f(v.transition),
        emission_loc=f(v.emission_loc),
        emission_scale=f(v.emission_scale),
        emission_df=f(v.emission_df),
        emission_const=f(const),
        sigma_bps=f(v.sigma_bps),
        sigma_diffusive_bps=f(v.sigma_diffusive_bps),
        alpha_decay_bps=f(v.alpha_decay_bps),
        adverse_move_bps=f(v.adverse_move_bps),
        bucket_edges=f(v.bucket_edges),
        bar_s=f(v.bar_s),
        stationary=f(v.stationary),
        bar=bar_params(v.observation),
    )


def init_estimators(prior: PriorArrays, capacity: int) -> EstimatorState:
    """No evidence, regime probabilities = the HMM's stationary distribution, empty buffer."""
    return EstimatorState(
        evidence=np.zeros_like(np.asarray(prior.nat)),
        regime_probs=np.asarray(prior.stationary, dtype=np.float64),
        hawkes_excitation=np.zeros((MAX_COMPONENTS, S)),
        pending=np.zeros((capacity, PENDING_PROBS + R)),
        cursor=np.float64(0.0),
        bar_stats=bar_init(),
        last_ts=np.float64(0.0),
        last_mid=np.float64(0.0),
        started=np.float64(0.0),
    )


def posterior(st: EstimatorState, prior: PriorArrays):
    """Natural parameters of the posterior: ``prior.nat + evidence`` (R, C)."""
    return prior.nat + st.evidence


# ----------------------------------------------------------------------------- updates
class Observation(NamedTuple):
    """What the estimators see of one event; the ``*_ok`` masks are already
    validated (finite, positive prices, sides ±1)."""

    ts: jax.Array  # s
    ts_ok: jax.Array  # bool
    mid: jax.Array  # the event's mid (any finite value when not mid_ok)
    mid_ok: jax.Array  # bool
    trade_ok: jax.Array  # bool: a public market order is attached
    trade_price: jax.Array
    trade_side: jax.Array  # +1 buy / −1 sell aggressor
    fill_ok: jax.Array  # bool: one of our quotes was filled
    fill_price: jax.Array
    fill_side: jax.Array  # +1 our bid (we bought) / −1 our ask (we sold)
    fill_depth_bps: jax.Array  # quoted depth; < 0 = measure from the prevailing mid


def student_t_logpdf(x, df, loc, scale, const=None):
    """log of the Student-t density; ``const`` = its precomputed log-normalizer."""
    if const is None:
        const = (
            jax.scipy.special.gammaln(0.5 * (df + 1.0))
            - jax.scipy.special.gammaln(0.5 * df)
            - 0.5 * jnp.log(df * jnp.pi)
            - jnp.log(scale)
        )
    z = (x - loc) / scale
    return const - 0.5 * (df + 1.0) * jnp.log1p(z * z / df)


def forward_filter_step(probs, transition, loglik):
    """One HMM forward step: normalize((probs @ T) ⊙ exp(loglik)) (unrolled over
    the regimes; falls back to the prediction if every likelihood underflows)."""
    pred = uweighted(probs, transition)
    post = pred * jnp.exp(loglik - umax(loglik))
    total = usum(post)
    return jnp.where(total > 0, post / jnp.where(total > 0, total, 1.0), pred)


def update(st: EstimatorState, prior: PriorArrays, lp: LearningParams, obs: Observation) -> EstimatorState:
    """All online updates of one event, in this order: clock (forgetting, Hawkes
    decay, exposure) → trade (κ, A, Hawkes jump; depth vs the mid *before* this
    event) → fill (into the markout buffer) → mid (volatility bar; forward-filter
    step when the bar closes) → markouts due (α).  Masked parts are no-ops."""
    cols = Columns(prior.bucket_edges.shape[0])
    B, C = cols.B, cols.n
    N = st.pending.shape[0]
    p = st.regime_probs
    started = st.started > 0
    col = np.arange(C)
    in_ = lambda sl: jnp.asarray((col >= sl.start) & (col < sl.stop))  # noqa: E731

    # --- clock
    dt = jnp.where(obs.ts_ok & started, jnp.maximum(obs.ts - st.last_ts, 0.0), 0.0)
    keep = jnp.exp2(-dt / lp.half_life_s)
    exposure = jnp.minimum(dt, lp.max_gap_s)

    # --- public trade: κ (Gamma–Exponential on depth), A (Gamma–Poisson), Hawkes
    prev_mid = st.last_mid
    t_ok = obs.trade_ok & (prev_mid > 0)
    safe_prev = jnp.where(prev_mid > 0, prev_mid, 1.0)
    t_depth = jnp.maximum(obs.trade_side * (obs.trade_price - prev_mid) / safe_prev * 1e4, 0.0)
    t_side = jnp.where(obs.trade_side > 0, 0.0, 1.0)
    on_side = t_ok & (jnp.asarray(cols.side_of_column()) == t_side)
    inc = jnp.where(
        on_side,
        jnp.where(in_(cols.kappa_shape) | in_(cols.arrival_shape), 1.0, 0.0)
        + jnp.where(in_(cols.kappa_rate), t_depth, 0.0),
        0.0,
    ) + jnp.where(in_(cols.arrival_rate), exposure, 0.0)
    exc = excitation_step(st.hawkes_excitation, prior.hawkes_kernel_n, prior.hawkes_kernel_beta, dt, t_ok,
                          obs.trade_side)

    # --- own fill: into the ring buffer
    measured = obs.fill_side * (prev_mid - obs.fill_price) / safe_prev * 1e4
    f_ok = obs.fill_ok & ((obs.fill_depth_bps >= 0) | (prev_mid > 0))
    f_depth = jnp.maximum(jnp.where(obs.fill_depth_bps >= 0, obs.fill_depth_bps, measured), 0.0)
    edges = prior.bucket_edges
    bucket = usum(jnp.stack([f_depth >= edges[i] for i in range(1, B)]).astype(float)) if B > 1 else 0.0
    row = jnp.concatenate([jnp.stack([obs.ts, obs.fill_price, obs.fill_side, bucket, 1.0]), p])
    write = f_ok & (jnp.arange(N) == st.cursor)
    pending = jnp.where(write[:, None], row[None, :], st.pending)
    cursor = jnp.where(f_ok, jnp.where(st.cursor + 1 >= N, 0.0, st.cursor + 1), st.cursor)

    # --- mid: volatility bar (the fit's statistic, tick by tick) and the regime filter;
    # a bar closed with no move after the first (a quiet stretch) reads as the floor
    m_ok = obs.mid_ok & obs.ts_ok
    bar_stats, n_closed, y_first, y_empty = bar_update(st.bar_stats, obs.ts, m_ok, prev_mid, st.last_ts,
                                                       prior.bar)

    def filter_step(probs, y):
        ll = student_t_logpdf(y, prior.emission_df, prior.emission_loc, prior.emission_scale, prior.emission_const)
        return forward_filter_step(probs, prior.transition, ll)

    probs = jnp.where(n_closed > 0, filter_step(p, y_first), p)
    probs = jax.lax.fori_loop(0, jnp.maximum(n_closed - 1.0, 0.0).astype(jnp.int32),
                              lambda _, q: filter_step(q, y_empty), probs)

    # --- markouts due: α (Beta–Bernoulli), weighted by the probabilities at the fill
    p_price, p_side = pending[:, PENDING_PRICE], pending[:, PENDING_SIDE]
    due = (pending[:, PENDING_ACTIVE] > 0) & m_ok & (obs.ts - pending[:, PENDING_TS] >= lp.markout_horizon_s)
    markout = p_side * (p_price - obs.mid) / jnp.where(p_price > 0, p_price, 1.0) * 1e4
    informed = markout > lp.informed_threshold_bps
    # α column c < B: success in bucket c; B <= c < 2B: failure in bucket c - B.  The
    # κ / arrival columns get no markout evidence, so the product is taken on the 2B
    # α columns only and padded (half the work of a product on all C columns)
    a_col = np.arange(2 * B)
    hit = (pending[:, PENDING_BUCKET][:, None] == jnp.asarray(a_col % B)[None, :]) & (
        informed[:, None] == jnp.asarray(a_col < B)[None, :]
    )
    weights = jnp.where(due[:, None], pending[:, PENDING_PROBS:], 0.0)  # (N, R)
    resolved = jnp.pad(weights.T @ hit.astype(float), ((0, 0), (0, C - 2 * B)))  # (R, C)
    active_col = jnp.asarray(np.arange(pending.shape[1]) == PENDING_ACTIVE)
    pending = jnp.where(due[:, None] & active_col[None, :], 0.0, pending)

    return EstimatorState(
        evidence=st.evidence * keep + p[:, None] * inc[None, :] + resolved,
        regime_probs=probs,
        hawkes_excitation=exc,
        pending=pending,
        cursor=cursor,
        bar_stats=bar_stats,
        last_ts=jnp.where(obs.ts_ok, jnp.where(started, jnp.maximum(obs.ts, st.last_ts), obs.ts), st.last_ts),
        last_mid=jnp.where(m_ok, obs.mid, st.last_mid),
        started=jnp.where(obs.ts_ok, 1.0, st.started),
    )


# ----------------------------------------------------------------------------- read-out
def estimates(st: EstimatorState, prior: PriorArrays, lp: LearningParams) -> Estimates:
    """Per-cell estimates (trusted learned value, else the prior mean) and status.

    Written on the natural-parameter columns directly (the same formulas as
    BetaBernoulli / GammaExponential / GammaPoisson in :mod:`mm_runtime.conjugate`):
    mean a/(a+b) and shape/rate; n = strength − prior strength; cv sqrt(b/(a(a+b+1)))
    and 1/sqrt(shape)."""
    cols = Columns(prior.bucket_edges.shape[0])
    B = cols.B
    nat0 = prior.nat
    nat = nat0 + st.evidence
    # the three families side by side: "shape" (a / shape) and "rate" (b / rate) blocks
    a, b = nat[:, :B], nat[:, B : 2 * B]
    a0, b0 = nat0[:, :B], nat0[:, B : 2 * B]
    ks, kr = cols.kappa(nat)
    ks0, kr0 = cols.kappa(nat0)
    rs, rr = cols.arrival(nat)
    rs0, rr0 = cols.arrival(nat0)

    a_mean, a_mean0 = a / (a + b), a0 / (a0 + b0)
    a_n = jnp.maximum((a + b) - (a0 + b0), 0.0)
    a_cv = jnp.sqrt(b / (a * (a + b + 1.0)))
    a_cal = lp.learn & (a_n >= lp.alpha_min_n) & (a_cv <= lp.alpha_max_cv)

    def gamma_block(shape, rate, shape0, rate0):
        n = jnp.maximum(shape - shape0, 0.0)
        cal = lp.learn & (n >= lp.intensity_min_n) & (1.0 / jnp.sqrt(shape) <= lp.intensity_max_cv)
        mean = shape / rate
        return mean, shape0 / rate0, n / (n + shape0), cal

    k_mean, k_mean0, k_w, k_cal = gamma_block(ks, kr, ks0, kr0)
    r_mean, r_mean0, r_w, r_cal = gamma_block(rs, rr, rs0, rr0)
    return Estimates(
        alpha=jnp.where(a_cal, a_mean, a_mean0),
        kappa=jnp.where(k_cal, k_mean, k_mean0),
        arrival=jnp.where(r_cal, r_mean, r_mean0),
        alpha_learned=a_mean,
        kappa_learned=k_mean,
        arrival_learned=r_mean,
        alpha_data_weight=a_n / (a_n + a0 + b0),
        kappa_data_weight=k_w,
        arrival_data_weight=r_w,
        alpha_calibrated=a_cal,
        kappa_calibrated=k_cal,
        arrival_calibrated=r_cal,
    )


def tier_shares(e: Estimates, regime_probs):
    """(pnl, intensity): regime-weighted share of trusted cells per tier."""
    pnl = jnp.sum(regime_probs * jnp.mean(e.alpha_calibrated, axis=1))
    intensity = jnp.sum(
        regime_probs * 0.5 * (jnp.mean(e.kappa_calibrated, axis=1) + jnp.mean(e.arrival_calibrated, axis=1))
    )
    return pnl, intensity
