"""Goodness of fit of a Hawkes fit by the time-rescaling theorem (Brown, Barbieri,
Ventura, Kass & Frank 2002; Papangelou 1972): if the intensity is right, the
compensator increments ``tau_k = Lambda_s(t_{k-1}, t_k]`` between consecutive events of
each side's stream are iid Exp(1). :func:`rescaled_intervals` computes them (O(N M), the
recurrences of :mod:`models.hawkes.likelihood`), :func:`goodness_of_fit` the
Kolmogorov-Smirnov statistic per side and pooled, :func:`point_params` the posterior
mean the fit is checked at, :func:`qq_plot` the QQ plot against Exp(1).

Ties (events at the same timestamp, whose increment is 0) are left out of the test
and counted. Derivation: docs/models/hawkes.md, "Goodness of fit".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from mm_runtime.vocabulary import SIDES
from models.hawkes.layout import prepare
from models.hawkes.likelihood import _as_batched, _components, _jax_scan, _to_jax
from models.hawkes.observations import HawkesObs


def rescaled_intervals(params: Mapping[str, Any], obs: HawkesObs) -> list[np.ndarray]:
    """``[tau_buy, tau_sell]``: the compensator of each side between its consecutive
    events (the first from the window start), one asset; ``params`` as
    :func:`models.hawkes.loglik_jax` (one asset, one or M components).

    Per event i the increment of side s over (t_{i-1}, t_i] is ``sum_r mu[r, s] D_r +
    sum_m (1 - e^{-beta_m dt_i}) sum_s' n^m[s, s'] Y^m_{i-1}[s']`` with ``Y^m_{i-1}`` the
    excitation state just after t_{i-1}; their running sum at the events of side s,
    differenced, gives tau."""
    if obs.n_assets != 1:
        raise ValueError("rescaled_intervals takes one asset")
    mu, n, beta = _as_batched({k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()}, jnp)
    n, beta, _ = _components(n, beta)
    d = _to_jax(prepare(obs))
    inc = jnp.asarray(d.reg_dt) @ mu[0]                          # (N, 2) baseline part
    for m in range(n.shape[1]):
        x = -beta[0, m] * d.dt
        a = jnp.exp(x) * d.keep
        X = _jax_scan(a, a[:, None] * d.prev)                   # state before event i (ties incl.)
        Xprev = jnp.concatenate([jnp.zeros((1, 2)), X[:-1]], axis=0) * d.keep[:, None]
        Y = Xprev + d.prev                                      # just after t_{i-1}
        inc = inc + (-jnp.expm1(x))[:, None] * (Y @ n[0, m].T)  # (N, 2): per target side
    cum = np.cumsum(np.asarray(inc), axis=0)
    side = np.asarray(obs.side)
    out = []
    for s in range(2):
        at = cum[side == s, s]
        out.append(np.diff(np.concatenate([[0.0], at])))
    return out


def goodness_of_fit(params: Mapping[str, Any], obs: HawkesObs) -> dict[str, Any]:
    """KS test of :func:`rescaled_intervals` against Exp(1) (``scipy.stats.kstest``):
    ``ks_d`` / ``ks_p`` pooled over both sides, ``ks_d_<side>`` / ``ks_p_<side>`` per
    side, ``n`` intervals tested, ``ties`` zero intervals left out, and ``mean`` (1 for
    a right compensator)."""
    from scipy.stats import kstest

    taus = rescaled_intervals(params, obs)
    out: dict[str, Any] = {}
    kept = []
    ties = 0
    for s, tau in zip(SIDES, taus):
        pos = tau[tau > 0]
        ties += int(len(tau) - len(pos))
        kept.append(pos)
        if len(pos):
            r = kstest(pos, "expon")
            out[f"ks_d_{s}"], out[f"ks_p_{s}"] = float(r.statistic), float(r.pvalue)
    pooled = np.concatenate(kept)
    r = kstest(pooled, "expon")
    out.update(ks_d=float(r.statistic), ks_p=float(r.pvalue), n=int(len(pooled)), ties=ties,
               mean=float(pooled.mean()))
    return out


def point_params(idata, asset: str | None = None) -> dict[str, np.ndarray]:
    """The posterior mean of the intensity's parameters of one asset (``mu`` (4, 2),
    ``n`` (2, 2) or (M, 2, 2), ``beta`` () or (M,)), the point the fit is checked at."""
    from models.hawkes.posterior import _posterior_params

    prm = _posterior_params(idata)
    a = 0
    if prm["mu"].shape[1] > 1:
        assets = [str(x) for x in idata.posterior["asset"].values]
        if asset is None:
            raise ValueError(f"several assets in the fit {assets}: pass asset=")
        a = assets.index(asset)
    return {k: v[:, a].mean(axis=0) for k, v in prm.items()}


def fit_goodness(idata, obs: HawkesObs) -> dict[str, Any]:
    """:func:`goodness_of_fit` at :func:`point_params` for every asset of ``obs``:
    one asset's dict, or ``{asset: dict}`` plus the pooled ``ks_d`` (the worst asset's)
    for several."""
    if obs.n_assets == 1:
        return goodness_of_fit(point_params(idata), obs)
    per = {a: goodness_of_fit(point_params(idata, a), obs.select(a)) for a in obs.assets}
    return {"assets": per, "ks_d": max(v["ks_d"] for v in per.values())}


def qq_plot(idata, obs: HawkesObs, path: str | Path) -> Path:
    """QQ plot of the rescaled intervals (one asset: the first of ``obs``) against
    Exp(1) quantiles, per side, log-log (the millisecond and the minute scales both
    visible), with the KS D in the legend."""
    from models.plots import _plt, _save

    plt = _plt()
    one = obs if obs.n_assets == 1 else obs.select(obs.assets[0])
    prm = point_params(idata, None if obs.n_assets == 1 else obs.assets[0])
    taus = rescaled_intervals(prm, one)
    gof = goodness_of_fit(prm, one)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    lo, hi = np.inf, 0.0
    for s, tau in zip(SIDES, taus):
        x = np.sort(tau[tau > 0])
        if not len(x):
            continue
        q = -np.log1p(-(np.arange(1, len(x) + 1) - 0.5) / len(x))
        k = np.unique(np.linspace(0, len(x) - 1, min(len(x), 2000)).astype(int))
        ax.loglog(q[k], x[k], ".", ms=2, label=f"{s}: KS D {gof.get('ks_d_' + s, float('nan')):.3f}")
        lo, hi = min(lo, q[0], x[0]), max(hi, q[-1], x[-1])
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax.set_xlabel("Exp(1) quantile")
    ax.set_ylabel("rescaled interval")
    M = int(np.size(prm["beta"]))
    ax.set_title(f"hawkes time-rescaling QQ ({one.assets[0]}, M = {M}): pooled KS D {gof['ks_d']:.3f}",
                 fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, Path(path))
