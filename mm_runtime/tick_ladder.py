"""The ladder on the tick grid where the bundle has a fills model (DESIGN.md §6, §2).

Levels at the touch and 1, 2, … ticks behind it per side (0 = join the best price),
each with the fills model's probability of a fill within the refresh interval τ given
the queue ahead, the level and the regime, its mean and variance of the markout after
a fill at the Kelly horizon h, and the spread capture of a fill at our own price (its
distance to the mid at placement, bps, less the level's mean shortfall of the capture
at the fill) → the Kelly edge and variance of DESIGN.md §6 with c = 1.  GLFT sets where
the ladder starts (its optimal depth, inventory shift included, in ticks behind the
touch) and so how inventory shifts it; sizes, margin,
position and minimum-notional limits and the regime Kelly multipliers are the ladder's
(:func:`mm_runtime.ladder.allocate`).

Formulas (cells of docs/models/fills.md, "Exported cells"):

* fill probability of a cell in regime r: the hazard of piece k is Gamma(a_k, b_k)
  (1/s) and the order is exposed e_k = clip(τ - c_k, 0, c_{k+1} - c_k) s to it, so
  P_r = 1 - Π_k (1 + e_k/b_k)^(-a_k) (the gamma mixture of exponential survivals: the
  Laplace transform of the gamma; Friedman 1982 for the piecewise-exponential hazard);
* regimes, given a fill: w_r = p_r P_r / Σ p_r P_r (Bayes), P = Σ_r p_r P_r;
* markout at h (bps, positive = adverse; linear between the exported horizons):
  m = Σ w_r μ_r, Var = Σ w_r (s_r² + μ_r²) - m² + σ²·h, with s_r the posterior sd of the
  cell's mean and σ²·h the variance of a Brownian mid over h (σ in bps/√s): the
  bundle exports the mean markout's posterior, not the spread of single fills;
* spread capture at the fill: δ - s_l, with s_l the bundle's mean over level l's fills
  of δ minus the capture from the mid m0 just before the fill (the mid the markout
  starts from: DESIGN.md §3), so that capture - markout is the fill's PnL at h (the
  accounting identity side·(mid(t_fill+h) - price) = side·(m0 - price) -
  side·(mid(t_fill+h) - m0)); s_l = 0 for a bundle without it;
* Kelly (DESIGN.md §6, continuous form): E = δ - s_l - fee - m, f* = E/Var (0 if E ≤ 0),
  α = P(markout > informed threshold) = Φ((m - threshold)/√Var) for display.

Units as in :mod:`mm_runtime.ladder`.  The derivation and the choices:
docs/runtime/ladder.md, "The tick ladder (fills model)".
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from .ladder import Ladder, LadderInputs, LadderParams, allocate, glft_depths

__all__ = ["FillsArrays", "TickInputs", "fills_arrays", "queue_input", "build_tick_ladder", "START_GLFT", "START_TOUCH",
           "why_empty_fills", "EMPTY_TERMS"]

START_GLFT, START_TOUCH = 0, 1
_TINY = 1e-300


class FillsArrays(NamedTuple):
    """The fills model's cells reduced to what the step needs (``R`` regimes, ``L``
    levels 0..K, ``Q`` queue buckets)."""

    survival: jax.Array  # (R, L, Q) P(no fill within τ | cell)
    markout_bps: jax.Array  # (R, L, Q) mean markout at h, bps (positive = adverse)
    markout_var: jax.Array  # (R, L, Q) posterior variance of that mean, bps²
    capture_shortfall_bps: jax.Array  # (L,) s_l: capture at placement - capture at the fill, bps
    queue_edges: jax.Array  # (Q,) lower edges of the queue buckets, median trades
    horizon_s: jax.Array  # h, s
    start: jax.Array  # int: START_GLFT / START_TOUCH


class TickInputs(NamedTuple):
    """Per-call inputs of :func:`build_tick_ladder` beyond :class:`LadderInputs`."""

    best_bid: jax.Array  # quote currency (≤ 0: not given, taken from the mid and the tick)
    best_ask: jax.Array
    queue_ahead: jax.Array  # (2, L) displayed size l ticks behind the touch, median trades; NaN = unknown
    regime_probs: jax.Array  # (R,)
    informed_threshold_bps: jax.Array


def fills_arrays(view, tau_s: float, horizon_s: float, start: str = "glft") -> FillsArrays:
    """:class:`FillsArrays` of a :class:`~mm_runtime.view.FillsView` for the refresh
    interval ``tau_s`` and the markout horizon ``horizon_s`` (numpy; see the module
    docstring for the formulas)."""
    cuts = np.asarray(view.cuts_s, dtype=float)
    hi = np.append(cuts[1:], np.inf)
    expo = np.clip(float(tau_s) - cuts, 0.0, hi - cuts)  # (P,)
    a, b = np.asarray(view.hazard_shape), np.asarray(view.hazard_rate)
    survival = np.exp(-np.sum(a * np.log1p(expo / b), axis=-1))
    hz = np.asarray(view.horizons_s, dtype=float)
    h = float(np.clip(horizon_s, hz[0], hz[-1]))
    j = int(np.clip(np.searchsorted(hz, h, side="right") - 1, 0, max(len(hz) - 2, 0)))
    wt = 0.0 if len(hz) == 1 else (h - hz[j]) / (hz[j + 1] - hz[j])
    jn = min(j + 1, len(hz) - 1)
    mean = (1.0 - wt) * view.markout_mean_bps[..., j] + wt * view.markout_mean_bps[..., jn]
    with np.errstate(invalid="ignore"):  # an infinite sd times a zero weight: NaN, replaced below
        sd = (1.0 - wt) * view.markout_sd_bps[..., j] + wt * view.markout_sd_bps[..., jn]
    sd = np.where(np.isfinite(sd), sd, 1e6)  # an improper NIG: a huge variance, never inf
    return FillsArrays(survival=survival, markout_bps=mean, markout_var=sd**2,
                       capture_shortfall_bps=np.asarray(view.capture_shortfall_bps, dtype=float),
                       queue_edges=np.asarray(view.queue_edges, dtype=float), horizon_s=np.float64(horizon_s),
                       start=np.int32(START_TOUCH if start == "touch" else START_GLFT))


def queue_input(queue_ahead, levels: int):
    """The event's queue ahead, ``(2, W)``, as ``(2, levels)``: cut, or padded with NaN
    (unknown).  Static in the shapes, so one trace per event width."""
    qa = jnp.asarray(queue_ahead, dtype=float)
    w = qa.shape[-1]
    if w >= levels:
        return qa[..., :levels]
    return jnp.concatenate([qa, jnp.full(qa.shape[:-1] + (levels - w,), jnp.nan)], axis=-1)


def _bucket_onehot(queue, edges):
    """One-hot (…, Q) of the queue bucket; NaN, ±inf → the last (longest queue) bucket,
    negative → the first."""
    q = jnp.where(jnp.isfinite(queue), jnp.maximum(queue, 0.0), jnp.inf)
    Q = edges.shape[0]
    idx = jnp.zeros(q.shape, dtype=jnp.int32)
    for i in range(1, Q):
        idx = jnp.where(q >= edges[i], i, idx)
    return (idx[..., None] == jnp.arange(Q)).astype(float)


def build_tick_ladder(inp: LadderInputs, prm: LadderParams, fl: FillsArrays, tk: TickInputs) -> Ladder:
    """Both sides of the tick ladder for one asset (pure; jit/vmap-able): level ``s + j``
    ticks behind the touch in slot j, s from GLFT; per level P(fill within τ), the
    markout's mean and variance, the capture shortfall, E and f* (module docstring);
    then the ladder's allocation and limits.  Slots past the fills model's last level
    are not quoted (``fill_prob`` 0, ``size`` 0).  No cold-start order on this path."""
    mid, sigma, q, side_sign, h, k, shift, depth0 = glft_depths(inp, prm)
    R, L, Q = fl.survival.shape
    n = prm.level_mult.shape[0]
    tick = jnp.maximum(prm.tick_size, _TINY)
    # the touch: the event's book, else the grid prices either side of the mid
    grid_bid = jnp.ceil(mid / tick) * tick - tick
    grid_ask = jnp.floor(mid / tick) * tick + tick
    bid = jnp.where((tk.best_bid > 0) & (tk.best_bid <= mid), tk.best_bid, grid_bid)
    ask = jnp.where((tk.best_ask > 0) & (tk.best_ask >= mid), tk.best_ask, grid_ask)
    touch = jnp.stack([bid, ask])
    touch_depth = side_sign * (mid - touch) / mid * 1e4
    tick_bps = tick / mid * 1e4
    # where the ladder starts: GLFT's depth of level 0 (inventory shift included) in ticks
    # behind the touch, or the touch moved by the inventory shift alone
    inventory = jnp.maximum(jnp.clip(side_sign * k * q, -prm.max_skew_bps, prm.max_skew_bps), 0.0)
    target = jnp.where(fl.start == START_TOUCH, touch_depth + inventory, depth0[:, 0])
    start = jnp.clip(jnp.floor((target - touch_depth) / tick_bps + 1e-9), 0.0, L - 1.0)
    level = start[:, None] + jnp.arange(n, dtype=float)[None, :]  # (2, n)
    in_grid = level <= L - 1
    level_c = jnp.minimum(level, L - 1.0)
    price = jnp.maximum(touch[:, None] - side_sign[:, None] * level_c * tick, 0.0)
    depth = side_sign[:, None] * (mid - price) / mid * 1e4

    # the cells of each slot: level one-hot (2, n, L), queue bucket one-hot (2, n, Q)
    lv1 = (level_c[..., None] == jnp.arange(L, dtype=float)).astype(float)
    queue = jnp.sum(lv1 * tk.queue_ahead[:, None, :], axis=-1)  # (2, n): the queue at the slot's level
    qb1 = _bucket_onehot(queue, fl.queue_edges)
    cell = lv1[..., :, None] * qb1[..., None, :]  # (2, n, L, Q)

    def pick(x):  # (R, L, Q) → (R, 2, n); a broadcast sum, not a dot (a GEMM call would split
        # the low-latency one-kernel step: docs/runtime/quote_step_latency.md)
        return jnp.sum(cell[None] * x[:, None, None], axis=(-2, -1))

    p_r = 1.0 - pick(fl.survival)
    m_r, v_r = pick(fl.markout_bps), pick(fl.markout_var)
    pr = tk.regime_probs[:, None, None]
    p_fill = jnp.clip(jnp.sum(pr * p_r, axis=0), 0.0, 1.0)
    w = pr * p_r / jnp.maximum(p_fill, _TINY)[None]
    markout = jnp.sum(w * m_r, axis=0)
    var = jnp.maximum(jnp.sum(w * (v_r + m_r**2), axis=0) - markout**2, 0.0) + sigma**2 * fl.horizon_s
    var = jnp.maximum(var, _TINY)
    shortfall = jnp.sum(lv1 * fl.capture_shortfall_bps, axis=-1)  # (2, n): s_l at the slot's level
    edge = depth - shortfall - prm.fee_bps - markout
    kelly_f = jnp.where(edge > 0, jnp.minimum(edge / var, prm.max_kelly_f), 0.0)
    alpha = ndtr((markout - tk.informed_threshold_bps) / jnp.sqrt(var))
    p_fill = jnp.where(in_grid & (price > 0), p_fill, 0.0)
    kelly_f = jnp.where(in_grid, kelly_f, 0.0)

    f_eff, size, binding, reduce_only, _, _ = allocate(inp, prm, mid, q, side_sign, price, p_fill, kelly_f, edge)
    size = jnp.where(in_grid, size, 0.0)
    margin_used = jnp.max(jnp.sum(price * size, axis=1)) / prm.leverage
    return Ladder(
        depth_bps=depth, price=price, size=size, fill_prob=p_fill, alpha=alpha, kelly_f=kelly_f, edge_bps=edge,
        half_spread_bps=h, skew_bps=k, shift_bps=shift, binding=binding, reduce_only=reduce_only,
        margin_used=margin_used, kelly_fraction=f_eff, cold_start=jnp.zeros(2, dtype=bool),
    )


EMPTY_TERMS = {
    "markout": "E[markout | fill] >= the spread capture at the fill at every tick level",
    "fee": "spread capture at the fill - markout > 0 at some level, but not above the fee {fee:g} bps",
    "fill probability": "no level with P(fill) > 0 on the fitted grid",
}
"""The terms :func:`why_empty_fills` names, with a phrase each (``{fee}`` in bps)."""


def why_empty_fills(fill_prob, depth_bps, edge_bps, fee_bps: float) -> str | None:
    """Which term of the tick ladder's edge E = δ - s_l - fee - m made every edge ≤ 0,
    from the step's outputs (the spread capture at the fill less the markout, δ - s_l - m =
    E + fee; levels off the fitted grid have ``fill_prob`` 0 and are left out):
    ``"markout"`` when no level's spread capture at the fill δ - s_l exceeds its markout,
    ``"fee"`` when one does but not by more than the fee,
    ``"fill probability"`` when no level is on the grid or P(fill) is 0; None when some
    level's edge is positive."""
    p, d, e = (np.asarray(x, dtype=float) for x in (fill_prob, depth_bps, edge_bps))
    on = p > 0
    if not np.any(on):
        return "fill probability"
    if np.any(e[on] > 0):
        return None
    gross = e[on] + fee_bps  # δ - s_l - m
    return "fee" if np.any(gross > 0) else "markout"
