"""The quote ladder: GLFT spread and skew, first-passage fill probability, and
Kelly-stochastic sizing under margin and position limits (DESIGN.md section 6).

Units (DESIGN.md section 2): depth δ in bps of the mid; σ in bps/√s; κ in 1/bps;
arrival rates A in 1/s; γ, ξ in 1/(bps · base unit); Δ and sizes in base units;
prices and notionals in quote currency.

Sides: index 0 = our BID (hit by *sell* market orders), index 1 = our ASK (lifted
by *buy* market orders).  The caller passes per-quote-side A and κ accordingly.

References
----------
* O. Guéant, C.-A. Lehalle, J. Fernandez-Tapia (2013), "Dealing with the inventory
  risk: a solution to the market making problem", Mathematics and Financial
  Economics 7(4), 477–507; closed-form approximations as written in O. Guéant (2017),
  "Optimal market making", Applied Mathematical Finance 24(2), eq. (4.6)–(4.7):
  δ^b(q) ≈ c1 + (2q+Δ)/2 · σ·c2,  δ^a(q) ≈ c1 + (Δ-2q)/2 · σ·c2.
* First-passage probability of Brownian motion (reflection principle):
  P(max_{t≤τ} W_t σ ≥ δ) = 2Φ(-δ/(σ√τ)).
* Kelly sizing as in the original system's notes (E/Var approximation of the
  growth-optimal fraction, Thorp 2006, "The Kelly criterion in blackjack, sports
  betting and the stock market").

The ladder's steps and the edge's corrections to DESIGN.md §6: docs/runtime/ladder.md.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import erfc

__all__ = [
    "glft_quote",
    "fill_probability",
    "alpha_from_buckets",
    "alpha_parametric",
    "kelly_optimal_fraction",
    "effective_kelly_fraction",
    "LadderInputs",
    "LadderParams",
    "Ladder",
    "BINDING_NONE",
    "BINDING_MARGIN",
    "BINDING_POSITION",
    "build_ladder",
    "glft_depths",
    "allocate",
]

BINDING_NONE, BINDING_MARGIN, BINDING_POSITION = 0, 1, 2
_TINY = 1e-300


def _log1p_over_x(u):
    """log(1+u)/u, continuous at u = 0 (→ 1 - u/2)."""
    small = jnp.abs(u) < 1e-8
    safe = jnp.where(small, 1.0, u)
    return jnp.where(small, 1.0 - 0.5 * u, jnp.log1p(safe) / safe)


def glft_quote(A, kappa, sigma, gamma, xi=None, delta=1.0):
    """GLFT optimal half-spread and skew (Guéant–Lehalle–Fernandez-Tapia 2013).

    With u = ξΔ/κ::

        c1 = (1/(ξΔ)) · ln(1 + ξΔ/κ)                     [bps]
        c2 = sqrt( γ/(2AΔκ) · (1 + ξΔ/κ)^(κ/(ξΔ) + 1) )  [√s / base unit]
        half_spread = c1 + (Δ/2)·σ·c2                     [bps]
        skew        = σ·c2                                [bps per base unit of inventory]

    ``xi=None`` means ξ = γ.  As ξΔ/κ → 0, c1 → 1/κ and the power → e.
    Arguments broadcast; A in 1/s, κ in 1/bps, σ in bps/√s, γ and ξ in
    1/(bps·base unit), Δ in base units.
    """
    A, kappa, sigma, gamma = (jnp.asarray(x, dtype=float) for x in (A, kappa, sigma, gamma))
    xi = gamma if xi is None else jnp.asarray(xi, dtype=float)
    delta = jnp.asarray(delta, dtype=float)
    u = xi * delta / kappa
    l = _log1p_over_x(u)  # ln(1+u)/u
    c1 = l / kappa  # = ln(1+u)/(ξΔ)
    power = jnp.exp(l + u * l)  # (1+u)^(1/u + 1) = exp(ln(1+u)/u + ln(1+u))
    c2 = jnp.sqrt(gamma / (2.0 * A * delta * kappa) * power)
    return c1 + 0.5 * delta * sigma * c2, sigma * c2


def fill_probability(depth, sigma, tau):
    """First-passage fill probability P(δ, τ) = 2Φ(-δ/(σ√τ)) = erfc(δ/(σ√(2τ))).

    ``depth`` in bps (≤ 0 gives 1), ``sigma`` in bps/√s, ``tau`` in s.
    """
    depth = jnp.maximum(jnp.asarray(depth, dtype=float), 0.0)
    scale = jnp.asarray(sigma, dtype=float) * jnp.sqrt(2.0 * jnp.asarray(tau, dtype=float))
    return jnp.clip(erfc(depth / jnp.maximum(scale, _TINY)), 0.0, 1.0)


def alpha_from_buckets(depth, alpha_buckets, bucket_edges):
    """α at ``depth`` from per-bucket values; bucket i is [edges[i], edges[i+1]).

    A chain of ``where`` over the (few, static) buckets rather than a gather, so it
    fuses with its neighbours."""
    out = jnp.broadcast_to(alpha_buckets[0], jnp.shape(depth))
    for i in range(1, alpha_buckets.shape[0]):
        out = jnp.where(depth >= bucket_edges[i], alpha_buckets[i], out)
    return out


def alpha_parametric(depth, alpha_touch, decay_bps, alpha_floor=0.0):
    """α(δ) = α_floor + (α_touch − α_floor) · exp(-δ/δ_char): the original system's depth
    decay (α_floor = 0) with the floor of docs/models/alpha.md ("Floor"); with α_floor = 0
    exactly α_touch · exp(-δ/δ_char)."""
    return alpha_floor + (alpha_touch - alpha_floor) * jnp.exp(-depth / decay_bps)


def kelly_optimal_fraction(alpha, spread_capture_bps, adverse_move_bps, max_f=jnp.inf):
    """f* = E/Var with E = (1-α)·SC - α·AS and Var = (SC+AS)²·α(1-α); 0 if E ≤ 0.

    The Kelly bet of a two-outcome fill: win SC with probability 1-α, lose AS with
    probability α (the original system's ``kelly_optimal_fraction``; DESIGN.md §6).
    :func:`build_ladder` passes SC = c·δ - fee and AS = AS_informed + fee (see there).
    Returns (f*, E).  Computed in bps as in the original system, so f* carries 1/bps:
    it is a relative allocation intensity, capped at ``max_f`` (Var → 0 as α → 0).
    """
    a = jnp.clip(alpha, 0.0, 1.0)
    sc, as_ = spread_capture_bps, adverse_move_bps
    e = (1.0 - a) * sc - a * as_
    var = (sc + as_) ** 2 * a * (1.0 - a)
    f = jnp.where(e > 0, jnp.minimum(e / jnp.maximum(var, _TINY), max_f), 0.0)
    return f, e


def effective_kelly_fraction(base, regime_probs, multipliers, lo=0.05, hi=0.75):
    """base × Σ_r p_r·multiplier_r, clamped to [lo, hi] (the original's regime rule)."""
    return jnp.clip(base * jnp.sum(regime_probs * multipliers), lo, hi)


class LadderInputs(NamedTuple):
    """Per-call inputs of :func:`build_ladder` (scalars unless noted).

    Two volatilities (bps/√s; docs/runtime/ladder.md, "Which σ"): ``sigma_bps``, the
    **total** volatility (diffusion plus jumps), drives the first-passage fill
    probability ``2Φ(−δ/(σ√τ))``: a quote fills whenever the price reaches it, by a jump
    as well; ``sigma_glft_bps`` drives GLFT's half-spread and skew, ≤ 0 (the default) =
    ``sigma_bps``. The Quoter passes the total for both: GLFT's inventory penalty is the
    variance of the mid while the inventory is held, and a jump moves the mid as much as
    diffusion does (α and the adverse move price the *mean* loss of an informed fill, not
    this variance)."""

    mid: jax.Array  # quote currency
    sigma_bps: jax.Array  # bps/√s, total
    position: jax.Array  # base units, signed (+ long)
    margin_available: jax.Array  # quote currency
    arrival: jax.Array  # (2,) A for [bid side (sell arrivals), ask side (buy arrivals)], 1/s
    kappa: jax.Array  # (2,) κ, same order, 1/bps
    alpha_buckets: jax.Array  # (B,) α per depth bucket (regime-weighted)
    alpha_touch: jax.Array  # parametric α_touch
    alpha_decay_bps: jax.Array  # parametric δ_char
    adverse_move_bps: jax.Array  # AS (E[adverse move | informed]), bps
    spread_capture: jax.Array  # c: E[markout gain | uninformed fill] / δ (1 = the whole depth)
    regime_multiplier: jax.Array  # Σ_r p_r · regime_kelly_multiplier_r
    spread_multiplier: jax.Array = 1.0  # toxic-hour multiplier in force now (1 outside toxic hours)
    cold_start: jax.Array = False  # bool: α still prior-only: a side left empty gets the minimal order
    alpha_floor: jax.Array = 0.0  # parametric α_floor (0: α decays to zero)
    sigma_glft_bps: jax.Array = 0.0  # bps/√s, diffusive (≤ 0: sigma_bps)


class LadderParams(NamedTuple):
    """Configuration as arrays (see :class:`mm_runtime.config.QuoterConfig`)."""

    level_mult: jax.Array  # (K,) level_ratio**k
    bucket_edges: jax.Array  # (B,) lower edges, bps
    gamma: jax.Array
    xi: jax.Array
    delta: jax.Array
    min_depth_bps: jax.Array
    max_depth_bps: jax.Array
    max_skew_bps: jax.Array
    tick_size: jax.Array
    size_increment: jax.Array
    quote_horizon_s: jax.Array
    fee_bps: jax.Array
    sigma_floor_bps: jax.Array
    use_kelly_stochastic: jax.Array  # bool
    alpha_parametric: jax.Array  # bool
    kelly_fraction: jax.Array
    kelly_fraction_min: jax.Array
    kelly_fraction_max: jax.Array
    max_kelly_f: jax.Array
    leverage: jax.Array
    max_position: jax.Array
    min_notional: jax.Array
    spread_floor_bps: jax.Array = 0.0  # minimum GLFT half-spread, bps (0 = none)
    cold_start_depth_mult: jax.Array = 2.0  # the cold-start order sits this many half-spreads out
    cold_start_notional: jax.Array = 0.0  # its notional target, quote currency (0 = no cold start)


class Ladder(NamedTuple):
    """The optimized ladder. Arrays ``(2, K)``: row 0 = bid, row 1 = ask.

    An order exists only where ``size > 0``; the other fields are still filled
    (finite) for every level, so a dropped level can be shown and explained.
    """

    depth_bps: jax.Array  # (2,K) distance from the mid (after tick rounding)
    price: jax.Array  # (2,K)
    size: jax.Array  # (2,K) base units, >= 0
    fill_prob: jax.Array  # (2,K) P(δ, τ)
    alpha: jax.Array  # (2,K) α(δ)
    kelly_f: jax.Array  # (2,K) f* (0 where E <= 0)
    edge_bps: jax.Array  # (2,K) E = (1-α)·(c·δ - fee) - α·(AS + fee)
    half_spread_bps: jax.Array  # (2,) GLFT half-spread per side
    skew_bps: jax.Array  # (2,) GLFT skew per base unit of inventory
    shift_bps: jax.Array  # (2,) depth shift applied (+ = further from the mid)
    binding: jax.Array  # (2,) int32: 0 none, 1 margin, 2 position
    reduce_only: jax.Array  # bool
    margin_used: jax.Array  # max over sides of Σ price·size / leverage, quote currency
    kelly_fraction: jax.Array  # effective (regime-weighted, clamped) fraction
    cold_start: jax.Array = False  # (2,) bool: the side carries the cold-start order (level 0)


def _place(mid, depth, side_sign, tick):
    """Prices of ``depth`` (bps) rounded to the tick away from the mid, and the depths
    they really sit at."""
    raw_price = mid * (1.0 - side_sign[:, None] * depth * 1e-4)
    safe_tick = jnp.where(tick > 0, tick, 1.0)
    rounded = jnp.where(
        side_sign[:, None] > 0,
        jnp.floor(raw_price / safe_tick) * safe_tick,
        jnp.ceil(raw_price / safe_tick) * safe_tick,
    )
    price = jnp.maximum(jnp.where(tick > 0, rounded, raw_price), 0.0)
    return price, side_sign[:, None] * (mid - price) / mid * 1e4


def _economics(inp, prm, depth, sigma):
    """P_fill, α, f*, E per level at ``depth`` (step 3)."""
    p_fill = fill_probability(depth, sigma, prm.quote_horizon_s)
    alpha = jnp.where(
        prm.alpha_parametric,
        alpha_parametric(depth, inp.alpha_touch, jnp.maximum(inp.alpha_decay_bps, 1e-12), inp.alpha_floor),
        alpha_from_buckets(depth, inp.alpha_buckets, prm.bucket_edges),
    )
    alpha = jnp.clip(alpha, 0.0, 1.0)
    sc = inp.spread_capture * depth - prm.fee_bps
    kelly_f, edge = kelly_optimal_fraction(alpha, sc, inp.adverse_move_bps + prm.fee_bps, prm.max_kelly_f)
    return p_fill, alpha, kelly_f, edge


def glft_depths(inp: LadderInputs, prm: LadderParams):
    """Steps 1-2 of :func:`build_ladder`: GLFT half-spread and skew per side, the
    inventory shift and the geometric depths (bps, before tick rounding).  Returns
    ``(mid, sigma, q, side_sign, h, k, shift, depth)``."""
    f = jnp.asarray
    mid = f(inp.mid, dtype=float)
    sigma = jnp.maximum(f(inp.sigma_bps, dtype=float), prm.sigma_floor_bps)
    s_glft = f(inp.sigma_glft_bps, dtype=float)
    sigma_glft = jnp.maximum(jnp.where(s_glft > 0, s_glft, sigma), prm.sigma_floor_bps)
    q = f(inp.position, dtype=float)
    side_sign = jnp.array([1.0, -1.0])  # bid below the mid, ask above

    # 1. GLFT per side (floors keep the closed form finite for degenerate inputs)
    A = jnp.maximum(inp.arrival, 1e-12)
    kappa = jnp.maximum(inp.kappa, 1e-12)
    h, k = glft_quote(A, kappa, sigma_glft, prm.gamma, prm.xi, prm.delta)
    # the spread floor (minimum half-spread), then the toxic-hour multiplier
    h = jnp.maximum(h, prm.spread_floor_bps) * jnp.maximum(inp.spread_multiplier, 0.0)
    h = jnp.minimum(h, prm.max_depth_bps)
    k = jnp.minimum(k, 1e12)

    # 2. depths and prices: a half-spread under the floor puts the flat touch on it, and
    #    the inventory shift moves the side in down to the GLFT depths themselves (the
    #    touch stays on the floor, the deeper levels come in); with h ≥ min_depth the
    #    touch comes in down to the floor.  (shift ≥ min_depth − h alone froze the
    #    ladder whenever h < min_depth: zero skew, docs/runtime/ladder.md)
    floor_gap = prm.min_depth_bps - h
    shift = jnp.clip(side_sign * k * q, -prm.max_skew_bps, prm.max_skew_bps) + jnp.maximum(floor_gap, 0.0)
    shift = jnp.maximum(shift, jnp.minimum(floor_gap, 0.0))
    depth = h[:, None] * prm.level_mult[None, :] + shift[:, None]
    depth = jnp.clip(depth, prm.min_depth_bps, prm.max_depth_bps)

    return mid, sigma, q, side_sign, h, k, shift, depth


def allocate(inp: LadderInputs, prm: LadderParams, mid, q, side_sign, price, p_fill, kelly_f, edge):
    """Steps 4-5 of :func:`build_ladder`: Kelly (or proportional) weights, scaled per side to
    the margin and position limits, rounded to the size grid, under-``min_notional`` levels
    dropped.  Returns ``(f_eff, size, binding, reduce_only, pos_limit, margin_cap)``."""
    f_eff = jnp.clip(prm.kelly_fraction * inp.regime_multiplier, prm.kelly_fraction_min, prm.kelly_fraction_max)

    # 4. allocation weights (fractions of the bankroll)
    raw_kelly = p_fill * kelly_f * f_eff
    value = p_fill * jnp.maximum(edge, 0.0)
    total_value = jnp.sum(value, axis=1, keepdims=True)
    raw_prop = f_eff * value / jnp.maximum(total_value, _TINY)
    raw = jnp.where(prm.use_kelly_stochastic, raw_kelly, raw_prop)

    # 5. limits: Σ price·size ≤ margin·leverage (not for reduce-only orders) and
    #    Σ size ≤ position headroom (|q| when reduce-only), per side
    margin_cap = jnp.maximum(inp.margin_available, 0.0) * prm.leverage  # quote currency
    bankroll_units = margin_cap / mid
    headroom = jnp.maximum(prm.max_position - side_sign * q, 0.0)  # bid: max-q, ask: max+q
    reduce_only = jnp.abs(q) >= prm.max_position
    reducing = side_sign * q < 0  # bid reduces a short, ask reduces a long
    bankroll = jnp.where(reduce_only, jnp.where(reducing, jnp.abs(q), 0.0), bankroll_units)
    pos_limit = jnp.where(reduce_only, bankroll, headroom)
    desired = raw * bankroll[:, None]
    total_size = jnp.sum(desired, axis=1)
    total_notional = jnp.sum(desired * price, axis=1)
    s_margin = jnp.where(
        reduce_only | (total_notional <= margin_cap), 1.0, margin_cap / jnp.maximum(total_notional, _TINY)
    )
    s_pos = jnp.where(total_size <= pos_limit, 1.0, pos_limit / jnp.maximum(total_size, _TINY))
    scale = jnp.minimum(s_margin, s_pos)
    size = desired * scale[:, None]
    # binding: the tighter of the two scalings when one is < 1, or a zero limit while
    # the ladder wants to quote
    wants = jnp.sum(raw, axis=1) > 0
    margin_binds = ~reduce_only & ((s_margin < 1.0) | ((margin_cap <= 0) & wants)) & (s_margin <= s_pos)
    pos_binds = (s_pos < 1.0) | ((pos_limit <= 0) & wants)
    binding = jnp.where(margin_binds, BINDING_MARGIN, jnp.where(pos_binds, BINDING_POSITION, BINDING_NONE)).astype(
        jnp.int32
    )
    inc = prm.size_increment
    size = jnp.where(inc > 0, jnp.floor(size / jnp.where(inc > 0, inc, 1.0)) * inc, size)
    size = jnp.where(size * price >= prm.min_notional, size, 0.0)
    size = jnp.where(jnp.isfinite(size) & (size > 0), size, 0.0)

    return f_eff, size, binding, reduce_only, pos_limit, margin_cap


def build_ladder(inp: LadderInputs, prm: LadderParams) -> Ladder:
    """Optimize both sides of the ladder for one asset (pure; jit/vmap-able).

    GLFT half-spread and skew per side from (A, κ, σ); depths δ_k = h·r^k shifted by the
    skew (bps, clamped to [min_depth, max_depth], prices rounded to the tick away from the
    mid); per level the fill probability P = 2Φ(-δ/(σ√τ)), α(δ) and the Kelly fraction of
    the two outcomes of a fill (uninformed: SC = c·δ - fee; informed: -(AS + fee), bps);
    sizes (base units) scaled per side to the margin and position limits, reduce-only at
    ``|q| ≥ max_position``, rounded down to the size grid, under-``min_notional`` levels
    dropped.  The five steps and the edge's corrections to DESIGN.md §6:
    docs/runtime/ladder.md.
    """
    mid, sigma, q, side_sign, h, k, shift, depth = glft_depths(inp, prm)
    price, depth = _place(mid, depth, side_sign, prm.tick_size)

    # 3. per-level economics
    p_fill, alpha, kelly_f, edge = _economics(inp, prm, depth, sigma)
    f_eff, size, binding, reduce_only, pos_limit, margin_cap = allocate(inp, prm, mid, q, side_sign, price, p_fill,
                                                                        kelly_f, edge)
    inc = prm.size_increment

    # 6. cold start (docs/runtime/ladder.md "Cold start"): while α is prior-only, a side
    #    left without an order gets one small order at level 0, cold_start_depth_mult
    #    half-spreads out (plus the inventory shift), within the same margin, position,
    #    reduce-only and minimum-notional limits
    cold_depth = jnp.clip(h * prm.cold_start_depth_mult + shift, prm.min_depth_bps, prm.max_depth_bps)
    cold_price, cold_depth = _place(mid, cold_depth[:, None], side_sign, prm.tick_size)
    cold_price, cold_depth = cold_price[:, 0], cold_depth[:, 0]
    safe_cp = jnp.where(cold_price > 0, cold_price, 1.0)
    want = prm.cold_start_notional / safe_cp
    want = jnp.where(inc > 0, jnp.ceil(want / jnp.where(inc > 0, inc, 1.0) - 1e-9) * jnp.where(inc > 0, inc, 1.0),
                     want)
    room = jnp.minimum(pos_limit, jnp.where(reduce_only, jnp.inf, margin_cap / safe_cp))
    room = jnp.where(inc > 0, jnp.floor(room / jnp.where(inc > 0, inc, 1.0)) * inc, room)
    cold_size = jnp.minimum(want, jnp.maximum(room, 0.0))
    cold_ok = (cold_price > 0) & (cold_size * cold_price >= jnp.maximum(prm.min_notional, 1e-12))
    cold = (
        jnp.asarray(inp.cold_start, dtype=bool) & (prm.cold_start_notional > 0)
        & (jnp.sum(size, axis=1) <= 0) & cold_ok & jnp.isfinite(cold_size)
    )
    first = (jnp.arange(depth.shape[1]) == 0)[None, :] & cold[:, None]
    depth = jnp.where(first, cold_depth[:, None], depth)
    price = jnp.where(first, cold_price[:, None], price)
    size = jnp.where(first, cold_size[:, None], size)
    # the economics of the cold-start level only (two values, not the whole ladder again)
    cold_econ = _economics(inp, prm, cold_depth[:, None], sigma)
    p_fill, alpha, kelly_f, edge = (jnp.where(first, c, x) for c, x in
                                    zip(cold_econ, (p_fill, alpha, kelly_f, edge), strict=True))
    margin_used = jnp.max(jnp.sum(price * size, axis=1)) / prm.leverage

    return Ladder(
        depth_bps=depth,
        price=price,
        size=size,
        fill_prob=p_fill,
        alpha=alpha,
        kelly_f=kelly_f,
        edge_bps=edge,
        half_spread_bps=h,
        skew_bps=k,
        shift_bps=shift,
        binding=binding,
        reduce_only=reduce_only,
        margin_used=margin_used,
        kelly_fraction=f_eff,
        cold_start=cold,
    )
