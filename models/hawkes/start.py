"""Where the single-asset Hawkes model's chains start (docs/models/hawkes.md,
"Decay floor and starting point"): the penalised maximum-likelihood point
:func:`penalised_mle`, and the decay floor :func:`decay_floor`.

:func:`models.hawkes.model.build_model` samples the branching and the decay in
coordinates *shifted* to this point (``theta = theta_hat + z``, ``u = u_hat + s_hat z``,
flat coordinates with the exact prior as a potential): the posterior is unchanged,
but every sampler's default initial point (0, jittered by U(-1, 1)) is the mode for
every chain and every seed, and no chain starts on the flat ``beta -> 0`` plateau.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from models.hawkes.likelihood import jax_data, loglik_jax
from models.hawkes.observations import HawkesObs

#: starting decays of the optimiser, in units of the prior median (the best end point wins)
_STARTS = (0.1, 1.0, 10.0)


def decay_floor(obs: HawkesObs, max_lifetime_windows: float | None) -> float:
    """``beta_min = 1 / (max_lifetime_windows * T)`` (1/s), ``T`` the shortest window of
    ``obs`` (s); 0 when ``max_lifetime_windows`` is None. A kernel whose mean lifetime
    ``1/beta`` exceeds the window cannot be told from the baseline (docs/models/hawkes.md)."""
    if max_lifetime_windows is None:
        return 0.0
    return 1.0 / (float(max_lifetime_windows) * float(np.min(obs.duration_s)))


def _jax_parts(obs: HawkesObs, priors, center: np.ndarray, beta_min: float):
    import jax
    import jax.numpy as jnp

    d = jax_data(obs)
    a, b = priors.branching_alpha, priors.branching_beta
    lbeta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    m0, s0 = math.log(priors.decay_median), priors.log_decay_sd

    def unpack(x):
        lmu = x[:8].reshape(4, 2)
        p0, p1, u, v = x[8], x[9], x[10], x[11]
        sp = jax.nn.softplus
        L = sp(p0) + sp(p1)
        s = L + jnp.exp(u)
        f = jax.nn.sigmoid(v)
        xx, yy = f * s, (1.0 - f) * s
        n = jnp.array([[jax.nn.sigmoid(p0), jnp.exp(-xx)], [jnp.exp(-yy), jax.nn.sigmoid(p1)]])
        log_n = jnp.array([-sp(-p0), -sp(-p1), -xx, -yy])
        log_1mn = jnp.array([-sp(p0), -sp(p1), jnp.log(-jnp.expm1(-xx)), jnp.log(-jnp.expm1(-yy))])
        logjac = (-sp(-p0) - sp(p0) - sp(-p1) - sp(p1) + jnp.log(s) + u - sp(-v) - sp(v) - xx - yy)
        beta = beta_min + jnp.exp(x[12])
        return lmu, n, log_n, log_1mn, logjac, beta

    def neg_log_post(x):
        lmu, n, log_n, log_1mn, logjac, beta = unpack(x)
        ll = loglik_jax({"mu": jnp.exp(lmu), "n": n, "beta": beta}, d)
        lp_mu = -0.5 * jnp.sum(((lmu - center[None, :]) / priors.log_baseline_sd) ** 2)
        lp_n = jnp.sum((a - 1.0) * log_n + (b - 1.0) * log_1mn) - 4 * lbeta + logjac
        lb = jnp.log(beta)
        lp_b = -0.5 * ((lb - m0) / s0) ** 2 + x[12] - lb          # log beta's density + d log(beta)/du
        return -(ll + lp_mu + lp_n + lp_b)

    return jax.jit(jax.value_and_grad(neg_log_post))


def penalised_mle(obs: HawkesObs, priors, beta_min: float = 0.0) -> dict[str, Any]:
    """The maximum of the log-likelihood plus the priors of the decay and the branching
    and a Normal(centre, ``log_baseline_sd``) on each log baseline (the regime pooling
    left out), for one asset, by L-BFGS (scipy) from decays ``_STARTS`` x the prior
    median; the best end point wins. Returns ``theta`` (4,: the branching's raw
    coordinates, :func:`models.hawkes.model.branching_from_raw`), ``u`` (log(beta -
    beta_min)), ``u_sd`` (the conditional sd of u there, from the curvature, clipped to
    [0.02, 1]), ``beta``, ``log_mu`` (4, 2) and ``value`` (the minimised objective)."""
    from scipy.optimize import minimize

    if obs.n_assets != 1:
        raise ValueError("penalised_mle takes one asset")
    rates = obs.empirical_rates()[0]
    center = np.log(0.5 * np.maximum(rates, 1e-12))
    vg = _jax_parts(obs, priors, center, beta_min)

    def f(x):
        v, g = vg(x)
        v, g = float(v), np.asarray(g, dtype=float)
        if not np.isfinite(v) or not np.all(np.isfinite(g)):
            return 1e300, np.zeros_like(g)
        return v, g

    best = None
    for k in _STARTS:
        b0 = max(priors.decay_median * k - beta_min, 1e-12)
        x0 = np.concatenate([np.tile(center, 4), np.zeros(4), [math.log(b0)]])
        r = minimize(f, x0, jac=True, method="L-BFGS-B", options={"maxiter": 2000})
        if np.isfinite(r.fun) and (best is None or r.fun < best.fun):
            best = r
    if best is None:
        raise ValueError("penalised_mle: no finite optimum from any start")
    x = best.x
    h = 1e-4
    e = np.zeros_like(x)
    e[12] = h
    curv = (f(x + e)[1][12] - f(x - e)[1][12]) / (2 * h)
    u_sd = float(np.clip(1.0 / math.sqrt(curv), 0.02, 1.0)) if curv > 0 else 1.0
    return {"theta": x[8:12].copy(), "u": float(x[12]), "u_sd": u_sd,
            "beta": float(beta_min + math.exp(x[12])), "log_mu": x[:8].reshape(4, 2).copy(),
            "value": float(best.fun)}
