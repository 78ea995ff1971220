"""The Hawkes log-likelihood in JAX (float64): per-event terms by an associative
scan (:func:`pointwise_loglik_jax`), the O(N) blocked total with its exact
gradient as a ``custom_vjp`` (:func:`loglik_jax`, :func:`loglik_value_and_grad`),
and the O(N^2) reference from the definition (:func:`loglik_naive`, for tests).

Parameters: ``mu`` (events/s) [regime, side], ``n`` [target, source], ``beta``
(1/s); times in seconds. Source: Daley & Vere-Jones (2003) eq. 7.1.2, Ozaki (1979)
for the exponential-kernel recursions. The backend-generic formulas
(:func:`_pointwise`, :func:`_total_blocks`) also build the pytensor graph of
:mod:`models.hawkes.op`. Derivation and measurements: docs/models/hawkes.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import mm_runtime  # noqa: F401  (its import turns on float64 JAX: the likelihood is float64)
from models.hawkes.layout import BlockArrays, LikArrays, prepare, prepare_blocks
from models.hawkes.observations import HawkesObs


# --------------------------------------------------------------------------- pointwise terms
def _static_shape(x) -> tuple[int, ...]:
    t = getattr(x, "type", None)
    return tuple(t.shape) if t is not None and hasattr(t, "shape") else tuple(x.shape)


def _as_batched(params: Mapping[str, Any], xp) -> tuple[Any, Any, Any]:
    """mu (A, 4, 2), n (A, 2, 2) or (A, M, 2, 2), beta (A,) or (A, M) from single-asset
    or batched params. One asset (``mu`` (4, 2)): ``n`` (2, 2) with ``beta`` () is the
    one-exponential kernel, ``n`` (M, 2, 2) with ``beta`` (M,) the M-component one;
    batched (``mu`` (A, 4, 2)): ``n`` (A, 2, 2) with ``beta`` (A,), or (A, M, 2, 2) with
    (A, M)."""
    mu, n, beta = params["mu"], params["n"], params["beta"]
    if mu.ndim == 2:
        mu = mu[None]
        n = n[None]
        beta = beta[None]
    return mu, n, beta


def _components(n, beta):
    """(n (A, M, 2, 2), beta (A, M), squeeze): the component axis added to a
    one-exponential kernel (n (A, 2, 2), beta (A,)); ``squeeze`` says it was added."""
    if n.ndim == 3:
        return n[:, None], beta[:, None], True
    return n, beta, False


def _baseline(mu_f, idx, w):
    """The events' baselines: ``mu_f[idx]``, or with soft regimes (``w`` (..., 4) the
    regime probabilities of the event's bar, ``idx`` the flat index of regime 0)
    ``sum_r w[r] mu_f[idx + 2 r]`` (docs/models/regime_soft.md)."""
    if w is None:
        return mu_f[idx]
    return sum(mu_f[idx + 2 * r] * w[..., r] for r in range(w.shape[-1]))


def _pointwise(xp, scan, add_at, mu, n, beta, d: LikArrays):
    """Per-event log-likelihood terms; ``xp`` is jax.numpy or pytensor.tensor.

    mu (A, 4, 2); n (A, 2, 2) and beta (A,), or with M kernel components n (A, M, 2, 2)
    and beta (A, M): ``lambda = mu + sum_m beta_m (n^m S^m)``, one recurrence per
    component (docs/models/hawkes.md, "Several kernel components"). One code path for
    both backends, so the PyMC model and the JAX function compute the same formula.
    """
    n, beta, _ = _components(n, beta)
    M = _static_shape(n)[1]
    single = d.asset is None
    mu_f = mu.reshape((-1,))
    musum = mu.sum(axis=2)                      # (A, 4): total baseline per regime
    lam = _baseline(mu_f, d.mu_idx, d.mu_w)
    comp = 0.0
    tail_exc = 0.0
    for m in range(M):
        b_m, n_m = beta[:, m], n[:, m]
        b_ev = b_m[0] if single else b_m[d.asset]
        x = -b_ev * d.dt
        a = xp.exp(x) * d.keep                  # a_i (0 at an asset's first event)
        one_minus_a = -xp.expm1(x)              # 1 - a_i without cancellation
        X = scan(a, a[:, None] * d.prev)        # X_i[s'] (strictly earlier, incl. ties)
        S = X if d.grp is None else X[d.grp]    # ties do not excite each other
        n_f = n_m.reshape((-1,))
        lam = lam + b_ev * (n_f[d.n_idx] * S[:, 0] + n_f[d.n_idx + 1] * S[:, 1])
        # compensator over (t_{i-1}, t_i]
        Xprev = xp.concatenate([xp.zeros((1, 2)), X[:-1]], axis=0) * d.keep[:, None]
        Yprev = Xprev + d.prev                  # state just after t_{i-1}
        csum = n_m.sum(axis=1)                  # (A, 2): total offspring of a source event
        if single:
            exc = Yprev[:, 0] * csum[0, 0] + Yprev[:, 1] * csum[0, 1]
        else:
            cs_f = csum.reshape((-1,))
            exc = Yprev[:, 0] * cs_f[d.src_idx] + Yprev[:, 1] * cs_f[d.src_idx + 1]
        comp = comp + one_minus_a * exc
        # window end: int_{t_last}^{T}
        Ylast = X[d.last] + d.own_last           # (A, 2)
        tail_exc = tail_exc + (-xp.expm1(-b_m * d.tail)) * (Ylast * csum).sum(axis=1)
    if single:
        base = xp.dot(d.reg_dt, musum[0])
    else:
        base = (d.reg_dt * musum[d.asset]).sum(axis=1)
    ll = xp.log(lam) - base - comp
    tail = (d.tail_reg * musum).sum(axis=1) + tail_exc
    return add_at(ll, d.last, -tail)


def _jax_add_at(x, idx, v):
    return x.at[idx].add(v)


def _jax_scan(a, c):
    def op(left, right):
        a1, c1 = left
        a2, c2 = right
        return a1 * a2, a2[..., None] * c1 + c2

    return jax.lax.associative_scan(op, (a, c))[1]


def _to_jax(d: LikArrays) -> LikArrays:
    return LikArrays(*(None if v is None else jnp.asarray(v) for v in d))


def _lik_arrays(data) -> LikArrays:
    if isinstance(data, HawkesObs):
        return _to_jax(prepare(data))
    return data


@jax.jit
def _pointwise_jax_jit(params, d):
    mu, n, beta = _as_batched({k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()}, jnp)
    return _pointwise(jnp, _jax_scan, _jax_add_at, mu, n, beta, d)


def pointwise_loglik_jax(params: Mapping[str, Any], data: HawkesObs | LikArrays) -> jax.Array:
    """Per-event log-likelihood terms (they sum to the log-likelihood), JAX float64.

    ``params``: ``mu`` (4, 2) or (A, 4, 2) events/s [regime, side]; ``n`` (2, 2) or
    (A, 2, 2) [target, source]; ``beta`` () or (A,) 1/s. ``data``: a HawkesObs or
    ``prepare(obs)`` as JAX arrays. For sampling and benchmarks use the faster
    :func:`loglik_jax` (total only).
    """
    return _pointwise_jax_jit(dict(params), _lik_arrays(data))


# --------------------------------------------------------------------------- fast total
def _total_blocks(xp, carry_scan, mu, n, beta, d: BlockArrays, rows: int | None = None):
    """Total log-likelihood from the block layout; ``xp`` jax.numpy or pytensor.tensor.

    ``carry_scan(p, e0, e1)`` is the inclusive linear scan over blocks. Compensator in
    closed form: ``sum_r mu D_r + sum_s' colsum(n)[s'] (K_s' - e^{-beta tail} Y_last[s'])``
    where ``Y_last`` is the excitation state just after the last event, since
    ``sum_{j: s_j = s'} e^{-beta (T - t_j)} = e^{-beta (T - t_last)} Y_last[s']``.
    """
    B = rows if rows is not None else _static_shape(d.dt)[0]
    single = d.asset is None
    mu_f = mu.reshape((-1,))
    # pass 1: local recurrence within each block (carry-in 0) and the block products
    xs0, xs1, ps = [], [], []
    x0 = x1 = p = None
    for j in range(B):
        b_ev = beta[0] if single else beta[d.asset[j]]
        a = xp.exp(-b_ev * d.dt[j]) * d.keep[j]
        if j == 0:
            x0, x1, p = a * d.prev0[j], a * d.prev1[j], a
        else:
            x0, x1, p = a * (x0 + d.prev0[j]), a * (x1 + d.prev1[j]), p * a
        xs0.append(x0)
        xs1.append(x1)
        ps.append(p)
    # across blocks: carry-in = state at the end of the previous block
    e0, e1 = carry_scan(ps[-1], xs0[-1], xs1[-1])
    zero = xp.zeros((1,))
    c0 = xp.concatenate([zero, e0[:-1]])
    c1 = xp.concatenate([zero, e1[:-1]])
    # pass 2: intensities at the events
    ll = 0.0
    for j in range(B):
        X0 = xs0[j] + ps[j] * c0
        X1 = xs1[j] + ps[j] * c1
        S0 = X0 if d.tie0 is None else X0 - d.tie0[j]
        S1 = X1 if d.tie1 is None else X1 - d.tie1[j]
        if single:
            b_ev = beta[0]
            sell = d.side[j]                       # 0/1: exact selection by arithmetic
            buy = 1 - sell
            n_s0 = buy * n[0, 0, 0] + sell * n[0, 1, 0]
            n_s1 = buy * n[0, 0, 1] + sell * n[0, 1, 1]
        else:
            b_ev = beta[d.asset[j]]
            n_s0 = n[d.asset[j], d.side[j], 0]
            n_s1 = n[d.asset[j], d.side[j], 1]
        lam = _baseline(mu_f, d.mu_idx[j], None if d.mu_w is None else d.mu_w[j]) + b_ev * (n_s0 * S0 + n_s1 * S1)
        ll = ll + (xp.log(lam) * d.valid[j]).sum()
        if j == B - 1:
            X0_last, X1_last = X0[d.last_block], X1[d.last_block]
    # compensator
    csum = n.sum(axis=1)                                   # (A, 2) offspring per source
    decay_tail = xp.exp(-beta * d.tail)                    # (A,)
    y0 = X0_last + d.own_last[:, 0]
    y1 = X1_last + d.own_last[:, 1]
    exc = csum[:, 0] * (d.counts[:, 0] - decay_tail * y0) + csum[:, 1] * (d.counts[:, 1] - decay_tail * y1)
    base = (mu.sum(axis=2) * d.regime_time).sum()
    return ll - base - exc.sum()


def _jax_block_scan(op, elems, identity):
    """Inclusive scan of ``elems`` (tuple of (nb, ...) arrays) under the associative ``op``:
    a sequential ``lax.scan`` over the nb = N/B blocks on CPU, ``jax.lax.associative_scan``
    on accelerators (why: docs/models/hawkes.md, "The block layout and the three-pass
    sweep").
    """
    if jax.default_backend() != "cpu":
        return jax.lax.associative_scan(op, elems)

    def step(carry, x):
        out = op(carry, x)
        return out, out

    init = tuple(jnp.full(e.shape[1:], v, dtype=elems[0].dtype) for v, e in zip(identity, elems))
    return jax.lax.scan(step, init, elems)[1]


def _jax_carry_scan(p, e0, e1):
    def op(left, right):
        a1, x1, y1 = left
        a2, x2, y2 = right
        return a1 * a2, a2 * x1 + x2, a2 * y1 + y2

    _, x, y = _jax_block_scan(op, (p, e0, e1), (1.0, 0.0, 0.0))
    return x, y


def _jax_sweep(mu, n, beta, d: BlockArrays, grad: bool):
    """Log-likelihood (and with ``grad`` its exact gradient) in three passes (JAX).

    Pass A runs the recurrence over the B rows of every block with zero carry-in and
    keeps the block-end states; pass B scans those across blocks; pass C reruns the
    rows with the right carry-in and accumulates into (nb,) vectors. The gradient
    is by forward sensitivities (Ozaki 1979): ``Z_i = -dX_i/dbeta`` obeys
    ``Z_i = a_i Z_{i-1} + dt_i X_i``, the mu and n derivatives are weighted sums of
    ``1/lambda_i``. With M kernel components (n (A, M, 2, 2), beta (A, M)) every state
    carries a leading component axis: O(N M) work, one sweep. Derivation and
    measurements: docs/models/hawkes.md, "The block layout and the three-pass sweep"
    and "Several kernel components".
    """
    n, beta, squeeze = _components(n, beta)
    A, M = beta.shape
    single = d.asset is None
    ties = d.tie0 is not None
    mu_f = mu.reshape((-1,))
    nb = d.dt.shape[1]
    zero = jnp.zeros((M, nb))

    def rate(asset_row):                                   # (M, nb) or (M, 1)
        return beta[0][:, None] if single else beta[asset_row].T

    # ---- pass A: block-end states with zero carry-in
    xs_a = (d.dt, d.keep, d.prev0, d.prev1) + (() if single else (d.asset,))

    def row_a(carry, r):
        x0, x1, z0, z1, p, tau = carry
        dt, keep, q0, q1 = r[:4]
        b = rate(None if single else r[4])
        a = jnp.exp(-b * dt) * keep
        x0, x1 = a * (x0 + q0), a * (x1 + q1)
        if grad:
            z0, z1 = a * z0 + dt * x0, a * z1 + dt * x1
        return (x0, x1, z0, z1, p * a, tau + dt), None

    (x0e, x1e, z0e, z1e, pe, te), _ = jax.lax.scan(
        row_a, (zero, zero, zero, zero, jnp.ones((M, nb)), jnp.zeros(nb)), xs_a)

    # ---- pass B: across blocks (block axis first)
    def op(left, right):
        P1, D1, x1_, y1_, z1_, u1_ = left
        P2, D2, x2_, y2_, z2_, u2_ = right
        return (P1 * P2, D1 + D2, x2_ + P2 * x1_, y2_ + P2 * y1_,
                z2_ + P2 * (z1_ + D2 * x1_), u2_ + P2 * (u1_ + D2 * y1_))

    _, _, E0, E1, F0, F1 = _jax_block_scan(
        op, (pe.T, te[:, None], x0e.T, x1e.T, z0e.T, z1e.T), (1.0, 0.0, 0.0, 0.0, 0.0, 0.0))

    def shift(v):                                          # (nb, M) -> (M, nb), one block later
        return jnp.concatenate([jnp.zeros((M, 1)), v.T[:, :-1]], axis=1)

    # ---- pass C: events with the right carry-in, accumulate
    names = ["ll"]
    if grad:
        names += ["gb"] + (["n00", "n01", "n10", "n11"] + [f"m{k}" for k in range(mu_f.shape[0])]
                           if single else [])
    acc0 = {k: (jnp.zeros(nb) if k == "ll" or k.startswith("m") else zero) for k in names}
    if grad and not single:
        acc0.update(g_mu=jnp.zeros(mu_f.shape[0]), g_n=jnp.zeros((2 * A, M, 2)), g_beta=jnp.zeros((A, M)))
    soft = d.mu_w is not None
    xs_c = (d.dt, d.keep, d.prev0, d.prev1, d.side, d.mu_idx, d.valid)
    xs_c = xs_c + ((d.tie0, d.tie1) if ties else ()) + ((d.mu_w,) if soft else ()) + (() if single else (d.asset,))
    n0 = n[0]

    def row_c(carry, r):
        x0, x1, z0, z1, acc = carry
        dt, keep, q0, q1, side, midx, v = r[:7]
        t0_, t1_ = (r[7], r[8]) if ties else (0.0, 0.0)
        mw = r[9 if ties else 7] if soft else None
        arow = None if single else r[-1]
        b = rate(arow)
        a = jnp.exp(-b * dt) * keep
        x0, x1 = a * (x0 + q0), a * (x1 + q1)
        S0, S1 = (x0 - t0_, x1 - t1_) if ties else (x0, x1)
        if single:
            buy = side == 0
            ns0 = jnp.where(buy, n0[:, 0, 0][:, None], n0[:, 1, 0][:, None])
            ns1 = jnp.where(buy, n0[:, 0, 1][:, None], n0[:, 1, 1][:, None])
        else:
            ns0, ns1 = n[arow, :, side, 0].T, n[arow, :, side, 1].T
        exc = ns0 * S0 + ns1 * S1                           # (M, nb)
        lam = _baseline(mu_f, midx, mw) + (b * exc).sum(axis=0)
        acc = dict(acc)
        acc["ll"] = acc["ll"] + jnp.log(lam) * v
        if grad:
            z0, z1 = a * z0 + dt * x0, a * z1 + dt * x1
            w = v / lam
            gb = w * (exc - b * (ns0 * z0 + ns1 * z1))
            wb0, wb1 = w * b * S0, w * b * S1
            if single:
                acc["gb"] = acc["gb"] + gb
                acc["n00"] = acc["n00"] + jnp.where(buy, wb0, 0.0)
                acc["n01"] = acc["n01"] + jnp.where(buy, wb1, 0.0)
                acc["n10"] = acc["n10"] + jnp.where(buy, 0.0, wb0)
                acc["n11"] = acc["n11"] + jnp.where(buy, 0.0, wb1)
                for kk in range(mu_f.shape[0]):
                    if soft:
                        acc[f"m{kk}"] = acc[f"m{kk}"] + sum(jnp.where(midx + 2 * q == kk, w * mw[:, q], 0.0)
                                                            for q in range(mw.shape[-1]))
                    else:
                        acc[f"m{kk}"] = acc[f"m{kk}"] + jnp.where(midx == kk, w, 0.0)
            else:
                seg = arow * 2 + side
                if soft:
                    acc["g_mu"] = acc["g_mu"] + sum(
                        jax.ops.segment_sum(w * mw[:, q], midx + 2 * q, num_segments=mu_f.shape[0])
                        for q in range(mw.shape[-1]))
                else:
                    acc["g_mu"] = acc["g_mu"] + jax.ops.segment_sum(w, midx, num_segments=mu_f.shape[0])
                acc["g_n"] = acc["g_n"] + jnp.stack(
                    [jax.ops.segment_sum(wb0.T, seg, num_segments=2 * A),
                     jax.ops.segment_sum(wb1.T, seg, num_segments=2 * A)], axis=-1)
                acc["g_beta"] = acc["g_beta"] + jax.ops.segment_sum(gb.T, arow, num_segments=A)
        return (x0, x1, z0, z1, acc), None

    init = (shift(E0), shift(E1), shift(F0), shift(F1), acc0)
    (x0, x1, z0, z1, acc), _ = jax.lax.scan(row_c, init, xs_c)
    # state at each asset's last event (row B-1 of its last block), (A, M)
    XL0, XL1 = x0[:, d.last_block].T, x1[:, d.last_block].T
    ZL0, ZL1 = z0[:, d.last_block].T, z1[:, d.last_block].T
    csum = n.sum(axis=2)                                   # (A, M, 2) offspring per source event
    tail = d.tail[:, None]
    E = jnp.exp(-beta * tail)
    Y0, Y1 = XL0 + d.own_last[:, 0:1], XL1 + d.own_last[:, 1:2]
    R0, R1 = d.counts[:, 0:1] - E * Y0, d.counts[:, 1:2] - E * Y1
    ll = (acc["ll"].sum() - (mu.sum(axis=2) * d.regime_time).sum()
          - (csum[..., 0] * R0 + csum[..., 1] * R1).sum())
    if not grad:
        return ll
    if single:
        g_mu = jnp.stack([acc[f"m{k}"].sum() for k in range(mu_f.shape[0])])
        g_n = jnp.stack([jnp.stack([acc["n00"].sum(axis=1), acc["n01"].sum(axis=1)], axis=-1),
                         jnp.stack([acc["n10"].sum(axis=1), acc["n11"].sum(axis=1)], axis=-1)],
                        axis=1)[None]                      # (1, M, 2, 2)
        g_beta = acc["gb"].sum(axis=1)[None]
    else:
        g_mu, g_beta = acc["g_mu"], acc["g_beta"]
        g_n = acc["g_n"].reshape((A, 2, M, 2)).transpose((0, 2, 1, 3))
    g_mu = g_mu.reshape(mu.shape) - d.regime_time[:, :, None]
    g_n = g_n - jnp.stack([R0, R1], axis=-1)[:, :, None, :]
    g_beta = g_beta - (csum[..., 0] * E * (tail * Y0 + ZL0) + csum[..., 1] * E * (tail * Y1 + ZL1))
    if squeeze:
        g_n, g_beta = g_n[:, 0], g_beta[:, 0]
    return ll, (g_mu, g_n, g_beta)


def jax_data(obs: HawkesObs, block: int | None = None) -> BlockArrays:
    """``prepare_blocks(obs)`` as JAX arrays: pass it to :func:`loglik_jax` in loops."""
    return BlockArrays(*(None if v is None else jnp.asarray(v) for v in prepare_blocks(obs, block)))


def _block_arrays(data) -> BlockArrays:
    if isinstance(data, HawkesObs):
        return jax_data(data)
    return data


@jax.custom_vjp
def _loglik_batched(mu, n, beta, d):
    return _jax_sweep(mu, n, beta, d, grad=False)


def _loglik_fwd(mu, n, beta, d):
    return _jax_sweep(mu, n, beta, d, grad=True)


def _loglik_bwd(grads, g):
    g_mu, g_n, g_beta = grads
    return g * g_mu, g * g_n, g * g_beta, None


_loglik_batched.defvjp(_loglik_fwd, _loglik_bwd)


def _loglik(params, d):
    mu, n, beta = _as_batched({k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()}, jnp)
    return _loglik_batched(mu, n, beta, d)


_loglik_jit = jax.jit(_loglik)
_value_and_grad_jit = jax.jit(jax.value_and_grad(_loglik))


def loglik_jax(params: Mapping[str, Any], data: HawkesObs | BlockArrays) -> jax.Array:
    """Log-likelihood (scalar, float64), O(N), pure JAX, jitted.

    ``params`` as in :func:`pointwise_loglik_jax`; ``data`` a HawkesObs or
    :func:`jax_data` (prepare once, reuse). Reverse-mode differentiable through a
    ``jax.custom_vjp`` whose forward pass computes the exact gradient alongside the
    value (:func:`_jax_sweep`): ``jax.grad(loglik_jax)`` and
    :func:`loglik_value_and_grad` (the jitted ``jax.value_and_grad``) use it.
    (Forward-mode ``jax.jvp`` / Hessians are not supported through the custom VJP.)
    """
    return _loglik_jit(dict(params), _block_arrays(data))


def loglik_value_and_grad(params: Mapping[str, Any], data: HawkesObs | BlockArrays):
    """``jax.value_and_grad(loglik_jax)`` (jitted): ``(value, {"mu", "n", "beta"})``."""
    return _value_and_grad_jit({k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()},
                               _block_arrays(data))


def loglik_naive(params: Mapping[str, Any], obs: HawkesObs) -> float:
    """O(N^2) reference straight from the definition (numpy, float64): for tests.

    Intensity at each event from the double sum over strictly earlier events of
    the same asset; compensator in closed form with the regime durations. ``params``
    as :func:`loglik_jax` (one or M kernel components).
    """
    mu, n, beta = _as_batched({k: np.asarray(v, float) for k, v in params.items()}, np)
    n, beta, _ = _components(n, beta)
    D = obs.regime_time()
    P = obs.event_prob()
    total = 0.0
    for a in range(obs.n_assets):
        m = obs.asset == a
        t, s, p = obs.t[m], obs.side[m].astype(int), P[m]
        T = float(obs.duration_s[a])
        for i in range(len(t)):
            earlier = t[:i] < t[i]
            src = s[:i][earlier]
            lam = p[i] @ mu[a, :, s[i]]
            for c, b in enumerate(beta[a]):
                w = np.exp(-b * (t[i] - t[:i][earlier]))
                lam += b * (n[a, c, s[i], 0] * w[src == 0].sum() + n[a, c, s[i], 1] * w[src == 1].sum())
            total += math.log(lam)
        total -= float((mu[a].sum(axis=1) * D[a]).sum())
        for c, b in enumerate(beta[a]):
            total -= float((n[a, c].sum(axis=0)[s] * (1.0 - np.exp(-b * (T - t)))).sum())
    return total
