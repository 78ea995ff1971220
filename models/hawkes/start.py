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


def branching_from_raw(theta: np.ndarray) -> np.ndarray:
    """numpy version of :func:`models.hawkes.model.branching_from_raw_pt` (n only)."""
    theta = np.asarray(theta, float)
    p0, p1, u, v = theta[..., 0], theta[..., 1], theta[..., 2], theta[..., 3]
    sp = np.logaddexp
    L = sp(0, p0) + sp(0, p1)
    s = L + np.exp(u)
    f = 1 / (1 + np.exp(-v))
    n = np.empty(theta.shape[:-1] + (2, 2))
    n[..., 0, 0], n[..., 1, 1] = 1 / (1 + np.exp(-p0)), 1 / (1 + np.exp(-p1))
    n[..., 0, 1], n[..., 1, 0] = np.exp(-f * s), np.exp(-(1 - f) * s)
    return n


def point_params(st: dict[str, Any], kernel=None) -> dict[str, np.ndarray]:
    """The intensity's parameters ``{"mu", "n", "beta"}`` at a :func:`penalised_mle` point
    (``n`` (2, 2) or (M, 2, 2): the total branching split by the weights)."""
    n_tot = branching_from_raw(st["theta"])
    if kernel is None or kernel.components == 1:
        return {"mu": np.exp(st["log_mu"]), "n": n_tot, "beta": np.asarray(st["beta"])}
    full = np.concatenate([np.zeros((2, 2, 1)), st["weights_raw"]], axis=-1)
    w = np.exp(full - full.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    return {"mu": np.exp(st["log_mu"]), "n": np.moveaxis(n_tot[..., None] * w, -1, 0),
            "beta": np.asarray(st["beta"])}


def decay_floor(obs: HawkesObs, max_lifetime_windows: float | None) -> float:
    """``beta_min = 1 / (max_lifetime_windows * T)`` (1/s), ``T`` the shortest window of
    ``obs`` (s); 0 when ``max_lifetime_windows`` is None. A kernel whose mean lifetime
    ``1/beta`` exceeds the window cannot be told from the baseline (docs/models/hawkes.md)."""
    if max_lifetime_windows is None:
        return 0.0
    return 1.0 / (float(max_lifetime_windows) * float(np.min(obs.duration_s)))


def _jax_parts(obs: HawkesObs, priors, center: np.ndarray, beta_min: float, kernel=None):
    """The jitted value and gradient of the negative penalised log-posterior in the flat
    coordinates ``x = [log mu (8), theta (4), y (4 (M-1)), u (M; none for a decay grid)]``
    (one component: ``[log mu, theta, u]``, as before), and the unpacking of ``x``."""
    import jax
    import jax.numpy as jnp

    d = jax_data(obs)
    a, b = priors.branching_alpha, priors.branching_beta
    lbeta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    m0, s0 = math.log(priors.decay_median), priors.log_decay_sd
    M = 1 if kernel is None else kernel.components
    nw = 4 * (M - 1)
    grid = None if M == 1 or kernel.decays == "free" else jnp.asarray(kernel.grid(beta_min))
    if M > 1:
        c1, sd1 = kernel.decay_prior()

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
        if M == 1:
            return lmu, n, log_n, log_1mn, logjac, beta_min + jnp.exp(x[12]), 0.0
        y = x[12:12 + nw].reshape(2, 2, M - 1)
        full = jnp.concatenate([jnp.zeros((2, 2, 1)), y], axis=-1)
        logw = full - jax.nn.logsumexp(full, axis=-1, keepdims=True)
        lp_w = kernel.weight_concentration * logw.sum()
        n_m = jnp.moveaxis(n[..., None] * jnp.exp(logw), -1, 0)
        if grid is not None:
            return lmu, n_m, log_n, log_1mn, logjac, grid, lp_w
        uu = x[12 + nw:12 + nw + M]
        beta = beta_min + jnp.cumsum(jnp.exp(uu)[::-1])[::-1]
        lb = jnp.log(beta)
        lp_w = lp_w + jnp.sum(-0.5 * ((lb - c1) / sd1) ** 2 + uu - lb)
        return lmu, n_m, log_n, log_1mn, logjac, beta, lp_w

    def neg_log_post(x):
        lmu, n, log_n, log_1mn, logjac, beta, lp_k = unpack(x)
        ll = loglik_jax({"mu": jnp.exp(lmu), "n": n, "beta": beta}, d)
        lp_mu = -0.5 * jnp.sum(((lmu - center[None, :]) / priors.log_baseline_sd) ** 2)
        lp_n = jnp.sum((a - 1.0) * log_n + (b - 1.0) * log_1mn) - 4 * lbeta + logjac
        if M == 1:
            lb = jnp.log(beta)
            lp_k = -0.5 * ((lb - m0) / s0) ** 2 + x[12] - lb      # log beta's density + d log(beta)/du
        return -(ll + lp_mu + lp_n + lp_k)

    return jax.jit(jax.value_and_grad(neg_log_post))


def _u_of(beta: np.ndarray, beta_min: float) -> np.ndarray:
    """The free-decay coordinates u of ordered decays (fastest first): ``e^{u_{M-1}} =
    beta_{M-1} - beta_min``, ``e^{u_m} = beta_m - beta_{m+1}``."""
    gaps = np.append(-np.diff(beta), beta[-1] - beta_min)
    return np.log(np.maximum(gaps, 1e-12))


def penalised_mle(obs: HawkesObs, priors, beta_min: float = 0.0, kernel=None) -> dict[str, Any]:
    """The maximum of the log-likelihood plus the priors of the decay and the branching
    and a Normal(centre, ``log_baseline_sd``) on each log baseline (the regime pooling
    left out), for one asset, by L-BFGS (scipy) from decays ``_STARTS`` x the prior
    median; the best end point wins. Returns ``theta`` (4,: the branching's raw
    coordinates, :func:`models.hawkes.model.branching_from_raw`), ``u`` (log(beta -
    beta_min)), ``u_sd`` (the conditional sd of u there, from the curvature, clipped to
    [0.02, 1]), ``beta``, ``log_mu`` (4, 2) and ``value`` (the minimised objective).

    With a :class:`~models.hawkes.model.HawkesKernel` of M > 1 components (the same
    priors as :func:`~models.hawkes.model.build_model`): the starts are its decay grid
    x ``_STARTS`` (free decays) or the grid itself; ``u`` and ``u_sd`` are (M,) (free
    decays; empty for the grid), ``beta`` (M,), and ``weights_raw`` (2, 2, M-1) the
    weights' log-ratio coordinates."""
    from scipy.optimize import minimize

    if obs.n_assets != 1:
        raise ValueError("penalised_mle takes one asset")
    M = 1 if kernel is None else kernel.components
    rates = obs.empirical_rates()[0]
    center = np.log(0.5 * np.maximum(rates, 1e-12))
    vg = _jax_parts(obs, priors, center, beta_min, kernel if M > 1 else None)

    def f(x):
        v, g = vg(x)
        v, g = float(v), np.asarray(g, dtype=float)
        if not np.isfinite(v) or not np.all(np.isfinite(g)):
            return 1e300, np.zeros_like(g)
        return v, g

    head = np.concatenate([np.tile(center, 4), np.zeros(4)])
    if M == 1:
        x0s = [np.concatenate([head, [math.log(max(priors.decay_median * k - beta_min, 1e-12))]])
               for k in _STARTS]
    elif kernel.decays == "grid":
        x0s = [np.concatenate([head, np.zeros(4 * (M - 1))])]
    else:
        g = kernel.grid(beta_min)
        x0s = [np.concatenate([head, np.zeros(4 * (M - 1)), _u_of(np.maximum(g * k, beta_min * 1.0001)
                                                                     + 1e-9 * np.arange(M)[::-1], beta_min)])
               for k in (1.0, 0.3, 3.0)]
    best = None
    for x0 in x0s:
        r = minimize(f, x0, jac=True, method="L-BFGS-B", options={"maxiter": 2000})
        if np.isfinite(r.fun) and (best is None or r.fun < best.fun):
            best = r
    if best is None:
        raise ValueError("penalised_mle: no finite optimum from any start")
    x = best.x
    out = {"theta": x[8:12].copy(), "log_mu": x[:8].reshape(4, 2).copy(), "value": float(best.fun)}
    u_idx = [12] if M == 1 else ([] if kernel.decays == "grid" else list(range(12 + 4 * (M - 1), 12 + 5 * M - 4)))
    h = 1e-4
    u_sd = []
    for i in u_idx:
        e = np.zeros_like(x)
        e[i] = h
        curv = (f(x + e)[1][i] - f(x - e)[1][i]) / (2 * h)
        u_sd.append(float(np.clip(1.0 / math.sqrt(curv), 0.02, 1.0)) if curv > 0 else 1.0)
    if M == 1:
        out.update(u=float(x[12]), u_sd=u_sd[0], beta=float(beta_min + math.exp(x[12])))
        return {k: out[k] for k in ("theta", "u", "u_sd", "beta", "log_mu", "value")}
    u = x[u_idx]
    beta = kernel.grid(beta_min) if not u_idx else beta_min + np.cumsum(np.exp(u)[::-1])[::-1]
    out.update(u=u, u_sd=np.asarray(u_sd), beta=beta, weights_raw=x[12:12 + 4 * (M - 1)].reshape(2, 2, M - 1))
    return out
