"""The regime HMM's log-likelihood in JAX: the scaled forward algorithm in
probability space with its exact gradient written by hand (a ``jax.custom_vjp``),
the likelihood every sampler uses (through :mod:`.op`).

Forward (Rabiner 1989, section III.A, eqs. 91-92, the scaled forward variables):
``u_t = (f_{t-1} P) * e_t``, ``s_t = sum(u_t)``, ``f_t = u_t / s_t`` with
``e_t = exp(log e_t - max_k log e_t)`` (the per-bar shift keeps ``e`` in (0, 1]),
so ``c_t = log s_t + max_k log e_t = log p(y_t | y_{1:t-1})``. Gradient: the
reverse-mode (adjoint) recursion of that loop for any cotangent ``g`` on ``c``,
``w_t = g_t + lam_t - lam_t . f_t``, ``lam_{t-1} = P (w_t * e_t / s_t)``,
``dlog e_t = w_t * f_t`` (for ``g = 1`` this is Fisher's identity with the
smoothed marginals, Cappe, Moulines & Ryden 2005, section 10.1). Derivation and
timings: docs/models/regime.md, "Likelihood".

Units: ``y`` = log realized variance per bar (natural log units), parameters as
in :mod:`.model` (``m``, ``s`` the emission mean/sd of log_rv, ``P`` row = from).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr

from .hmm import _CENSOR_Z_MIN

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class RegimeData(NamedTuple):
    """The observations as the JAX likelihood takes them: ``y`` (T,) log_rv,
    ``censored`` (T,) bool, or None when no bar is censored, ``censor_log_rv``
    (scalar; unused where no bar is censored)."""

    y: Any
    censored: Any
    censor_log_rv: Any


def regime_data(log_rv: np.ndarray, censored: np.ndarray | None = None,
                censor_log_rv: float | None = None) -> RegimeData:
    """:class:`RegimeData` as JAX float64 arrays (``censored`` None when no bar is censored)."""
    cen = None if censored is None or not np.any(censored) else jnp.asarray(np.asarray(censored, bool))
    cv = jnp.asarray(0.0 if censor_log_rv is None or cen is None else float(censor_log_rv), dtype=jnp.float64)
    return RegimeData(jnp.asarray(np.asarray(log_rv, dtype=np.float64)), cen, cv)


def emission_logp_jax(m, s, d: RegimeData):
    """log p(y_t | z_t = k), (T, K): Gaussian log-density, or for a censored bar
    log Phi((censor_log_rv - m_k) / s_k) (z clipped at ``_CENSOR_Z_MIN``, as in
    :func:`models.regime.hmm.emission_logp`)."""
    z = (d.y[:, None] - m[None, :]) / s[None, :]
    le = -0.5 * z**2 - jnp.log(s)[None, :] - _HALF_LOG_2PI
    if d.censored is not None:
        lc = log_ndtr(jnp.maximum((d.censor_log_rv - m) / s, _CENSOR_Z_MIN))
        le = jnp.where(d.censored[:, None], lc[None, :], le)
    return le


def _scaled_forward(log_e, P, pi):
    """The scaled forward pass: ``(c, f, e / s)`` with ``f`` (T, K) the filtered
    probabilities, ``c`` (T,) the one-step-ahead log densities."""
    shift = jnp.max(log_e, axis=1)
    e = jnp.exp(log_e - shift[:, None])

    def step(f_prev, e_t):
        u = (f_prev @ P) * e_t
        s_t = jnp.sum(u)
        return u / s_t, (u / s_t, s_t)

    u0 = pi * e[0]
    s0 = jnp.sum(u0)
    _, (fs, ss) = jax.lax.scan(step, u0 / s0, e[1:])
    f = jnp.concatenate([(u0 / s0)[None], fs])
    s = jnp.concatenate([s0[None], ss])
    return jnp.log(s) + shift, f, e / s[:, None]


def _adjoint(P, f, e_over_s, g):
    """Reverse pass for the cotangent ``g`` (T,) on ``c``: gradients w.r.t.
    (log_e (T, K), P (K, K), pi (K,)). ``lam_t`` = dL/df_t, ``w_t`` = s_t dL/du_t."""

    def step(lam, xs):
        g_t, f_t, es_t = xs
        w = g_t + lam - jnp.dot(lam, f_t)
        return P @ (w * es_t), w

    _, w = jax.lax.scan(step, jnp.zeros(f.shape[1], f.dtype), (g, f, e_over_s), reverse=True)
    q_bar = w * e_over_s                       # dL/d(f_{t-1} P), per bar
    return w * f, f[:-1].T @ q_bar[1:], q_bar[0]


@jax.custom_vjp
def forward_terms(log_e, P, pi):
    """``c_t = log p(y_t | y_{1:t-1})`` (T,) from emission log-densities ``log_e``
    (T, K), transition matrix ``P`` (K, K; row = from) and initial distribution
    ``pi`` (K,); reverse-mode differentiable by the hand-written adjoint."""
    return _scaled_forward(log_e, P, pi)[0]


def _forward_terms_fwd(log_e, P, pi):
    c, f, es = _scaled_forward(log_e, P, pi)
    return c, (P, f, es)


def _forward_terms_bwd(res, g):
    return _adjoint(*res, g)


forward_terms.defvjp(_forward_terms_fwd, _forward_terms_bwd)


def loglik_terms(m, s, P, pi, d: RegimeData):
    """Per-bar one-step-ahead log densities (T,) at emission means ``m`` (K,),
    sds ``s`` (K,), transition ``P`` (K, K), initial distribution ``pi`` (K,)."""
    return forward_terms(emission_logp_jax(m, s, d), P, pi)


def loglik_vjp(m, s, P, pi, g, d: RegimeData):
    """Gradients of ``sum_t g_t c_t`` w.r.t. (m, s, P, pi): one forward and one
    reverse pass."""
    _, vjp = jax.vjp(lambda *a: loglik_terms(*a, d), m, s, P, pi)
    return vjp(g)


loglik_terms_jit = jax.jit(loglik_terms)
loglik_vjp_jit = jax.jit(loglik_vjp)


def _total(params, d):
    p = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()}
    return jnp.sum(loglik_terms(p["m"], p["s"], p["P"], p["pi"], d))


_value_and_grad_jit = jax.jit(jax.value_and_grad(_total))


def loglik_value_and_grad(params: Mapping[str, Any], d: RegimeData):
    """Total log-likelihood and its gradient (jitted): ``(value, {"m", "s", "P", "pi"})``."""
    return _value_and_grad_jit(dict(params), d)
