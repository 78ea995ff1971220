"""The regime HMM's maximum a posteriori point by multi-start EM (Baum-Welch with
the sticky Dirichlet prior on the transition rows) and the data-scale prior
centres: where the samplers start, and a fast non-Bayesian regime labelling.

Source: Rabiner (1989), sections III.C and V.A. Why the chains start there:
docs/models/regime.md.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from .config import K, RegimeConfig
from .hmm import emission_logp, stationary_distribution
from .observations import RegimeObs


# =========================================================================== prior centres
def prior_centres(obs: RegimeObs, config: RegimeConfig | None = None) -> dict[str, Any]:
    """The data-scale prior centres (docs/models/regime.md), JSON-friendly."""
    cfg = config or RegimeConfig()
    y = obs.uncensored()
    q = np.quantile(y, [1 / 8, 3 / 8, 5 / 8, 7 / 8])
    sd_y = float(np.std(y)) if len(y) > 1 else 1.0
    sd_y = max(sd_y, 1e-3)
    gap = max(float(q[3] - q[0]) / 3.0, 0.05 * sd_y)
    return {"quantiles_1_3_5_7_8ths": [float(x) for x in q], "sd_log_rv": sd_y,
            "mean_lowest_mu": float(q[0]), "mean_lowest_sd": cfg.mean_lowest_sd_scale * sd_y,
            "gap_mean": gap, "gap_shape": cfg.gap_shape,
            "sd_pooled_mu": math.log(sd_y / 2.0), "sd_pooled_sd": cfg.sd_pooled_log_sd,
            "sd_tau_scale": cfg.sd_tau_scale,
            "sticky_concentration": cfg.sticky_concentration(obs.bar_seconds),
            "regime_duration_s": cfg.regime_duration_s, "learn_stickiness": cfg.learn_stickiness,
            "stickiness_log_sd": cfg.stickiness_log_sd,
            "offdiag_concentration": cfg.offdiag_concentration}


# =========================================================================== EM reference fit
def _scaled_forward_backward(E: np.ndarray, P: np.ndarray, pi: np.ndarray):
    """Probability-space forward-backward with per-step scaling (Rabiner 1989,
    section V.A), batched over a leading dim: emission likelihoods ``E`` (S, T, K)
    already divided by their row max, ``P`` (S, K, K), ``pi`` (S, K). Returns gamma
    (S, T, K), the expected transition counts (S, K, K) and the log-likelihood
    minus the row-max offsets (S,). Fast; for the EM reference only."""
    S, T, _ = E.shape
    alpha = np.empty_like(E)
    c = np.empty((S, T))
    a = pi * E[:, 0]
    c[:, 0] = np.maximum(a.sum(axis=1), 1e-300)
    alpha[:, 0] = a / c[:, 0, None]
    for t in range(1, T):
        a = np.einsum("si,sij->sj", alpha[:, t - 1], P) * E[:, t]
        c[:, t] = np.maximum(a.sum(axis=1), 1e-300)
        alpha[:, t] = a / c[:, t, None]
    beta = np.empty_like(E)
    beta[:, -1] = 1.0
    for t in range(T - 2, -1, -1):
        beta[:, t] = np.einsum("sij,sj->si", P, E[:, t + 1] * beta[:, t + 1]) / c[:, t + 1, None]
    gamma = alpha * beta
    gamma /= gamma.sum(axis=2, keepdims=True)
    w = (E[:, 1:] * beta[:, 1:]) / c[:, 1:, None]
    xi = np.einsum("sti,stj->sij", alpha[:, :-1], w) * P
    return gamma, xi, np.log(c).sum(axis=1)


def _em_runs(obs: RegimeObs, m0: np.ndarray, s0: np.ndarray, conc: np.ndarray, sd_floor: float,
             max_iter: int, tol: float, P0: np.ndarray | None = None) -> list[dict[str, Any]]:
    """EM from each row of ``m0`` (S, K) (sds ``s0``: (K,) or (S, K); transition
    rows ``P0`` (S, K, K), default the prior's mean), all starts advanced together."""
    y, cen = obs.log_rv, obs.censored
    S = len(m0)
    m = np.sort(np.asarray(m0, dtype=float), axis=1)
    s = np.broadcast_to(np.asarray(s0, dtype=float), (S, K)).copy()
    P = (np.broadcast_to(conc / conc.sum(axis=1, keepdims=True), (S, K, K)) if P0 is None
         else np.asarray(P0, dtype=float)).copy()
    prev = np.full(S, -np.inf)
    obj = np.full(S, -np.inf)
    ll = np.full(S, -np.inf)
    done = np.zeros(S, bool)
    iters = np.zeros(S, int)
    gamma = np.full((S, obs.n_bars, K), 1.0 / K)
    yy = y[~cen]
    for it in range(1, max_iter + 1):
        le = emission_logp(y, m, s, cen, obs.censor_log_rv)  # (S, T, K)
        mx = le.max(axis=2, keepdims=True)
        pi = np.clip(stationary_distribution(P), 1e-12, None)
        g_all, xi, ll0 = _scaled_forward_backward(np.exp(le - mx), P, pi)
        ll_new = ll0 + mx.sum(axis=(1, 2))
        obj_new = ll_new + ((conc - 1.0) * np.log(P)).sum(axis=(1, 2))  # MAP objective
        act = ~done
        ll[act], obj[act], gamma[act] = ll_new[act], obj_new[act], g_all[act]
        iters[act] = it
        done |= act & (np.abs(obj_new - prev) < tol * obs.n_bars)
        prev = np.where(act, obj_new, prev)
        if done.all():
            break
        # M-step: rows = MAP of Dirichlet(counts + concentration); emissions on uncensored bars
        Pn = np.maximum(xi + conc - 1.0, 1e-9)
        Pn /= Pn.sum(axis=2, keepdims=True)
        g = g_all[:, ~cen]
        w = g.sum(axis=1)
        ok = w > 1e-6
        m_new = np.where(ok, np.einsum("stk,t->sk", g, yy) / np.maximum(w, 1e-12), m)
        v_new = np.where(ok, np.einsum("stk,stk->sk", g, (yy[None, :, None] - m_new[:, None, :]) ** 2)
                         / np.maximum(w, 1e-12), s**2)
        order = np.argsort(m_new, axis=1, kind="stable")
        upd = ~done
        for i in np.flatnonzero(upd):
            o = order[i]
            m[i], s[i] = m_new[i, o], np.maximum(np.sqrt(v_new[i, o]), sd_floor)
            P[i] = Pn[i][np.ix_(o, o)]
    return [{"log_rv_mean": m[i].copy(), "log_rv_sd": s[i].copy(), "regime_transition": P[i].copy(),
             "regime_stationary": stationary_distribution(P[i]), "loglik": float(ll[i]),
             "objective": float(obj[i]), "iterations": int(iters[i]), "converged": bool(done[i]),
             "smoothed": gamma[i]} for i in range(S)]


START_QUANTILES = (0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.97, 0.99)
"""Quantile levels of the bars' log RV whose 4-subsets start EM (:func:`em_fit`)."""
SHORT_EM_ITER = 25
LONG_EM_STARTS = 6
"""EM's starts run ``SHORT_EM_ITER`` iterations; the base starts and the
``LONG_EM_STARTS`` best go on to convergence."""


def em_fit(obs: RegimeObs, config: RegimeConfig | None = None, max_iter: int = 200,
           tol: float = 1e-7, restarts: int = 3, seed: int = 0,
           start_quantiles: tuple[float, ...] = START_QUANTILES) -> dict[str, Any]:
    """Maximum a posteriori point estimate of the HMM by EM (Baum-Welch; Rabiner
    1989, section III.C) with the sticky Dirichlet rows as the transition prior
    (MAP M-step: expected counts + concentration - 1); emission M-step on the
    uncensored bars; sds floored at 5 % of the data's sd; states kept in
    increasing order of mean; stops when the objective improves by less than
    ``tol`` per bar.

    EM finds a local optimum, and with unequal regime occupancy the obvious
    start (the 1/8 .. 7/8 quantiles) can put two states on one regime, so it is
    run from several starts and the best MAP objective wins: the quantile start,
    equal spacing over the 5-95 % and the 2-98 % ranges, ``restarts`` random
    draws of 4 bars' values (seeded by ``seed``: deterministic), and every choice
    of 4 of the ``start_quantiles`` of the data (default :data:`START_QUANTILES`:
    70 starts, so a regime of 3 % of the bars gets a start at its level). All
    starts run :data:`SHORT_EM_ITER` iterations; the first ones and the
    :data:`LONG_EM_STARTS` best continue to convergence (the short-runs strategy
    of Biernacki, Celeux & Govaert 2003).

    Used as the *reference point* where the samplers start (see
    :func:`build_model`), and usable on its own as a fast, non-Bayesian regime
    labelling. Returns ``log_rv_mean``, ``log_rv_sd`` (4,), ``regime_transition``
    (4, 4), ``regime_stationary``, ``loglik``, ``objective``, ``iterations``,
    ``converged``, ``smoothed`` (n_bars, 4), ``starts`` (objective per start after
    the short runs).
    """
    cfg = config or RegimeConfig()
    pc = prior_centres(obs, cfg)
    sd_y = pc["sd_log_rv"]
    sd_floor = 0.05 * sd_y
    kappa = cfg.sticky_concentration(obs.bar_seconds)
    conc = np.full((K, K), cfg.offdiag_concentration) + np.eye(K) * (kappa - cfg.offdiag_concentration)
    yu = obs.uncensored()
    tie = 1e-3 * sd_y * np.arange(K)  # strictly increasing even for tied quantiles
    starts = [np.array(pc["quantiles_1_3_5_7_8ths"]) + tie,
              np.linspace(*np.quantile(yu, [0.05, 0.95]), K) + tie,
              np.linspace(*np.quantile(yu, [0.02, 0.98]), K) + tie]
    rng = np.random.default_rng(seed)
    starts += [np.sort(rng.choice(yu, K, replace=len(yu) < K)) + tie for _ in range(restarts)]
    n_base = len(starts)
    starts += [q + tie for q in itertools.combinations(np.quantile(yu, start_quantiles), K)]
    s0 = np.full(K, max(sd_y / 4.0, sd_floor))
    n_short = min(SHORT_EM_ITER, max_iter)
    short = _em_runs(obs, np.array(starts), s0, conc, sd_floor, n_short, tol)
    # the base starts always go on (so the result is never worse than theirs alone), and
    # the LONG_EM_STARTS best after the short runs
    best_short = sorted(range(len(short)), key=lambda i: -short[i]["objective"])[:LONG_EM_STARTS]
    keep = [i for i in sorted(set(range(n_base)) | set(best_short)) if not short[i]["converged"]]
    runs = [short[i] for i in range(len(short)) if short[i]["converged"]]
    if keep and max_iter > n_short:
        more = _em_runs(obs, np.array([short[i]["log_rv_mean"] for i in keep]),
                        np.array([short[i]["log_rv_sd"] for i in keep]), conc, sd_floor, max_iter - n_short,
                        tol, P0=np.array([short[i]["regime_transition"] for i in keep]))
        for r in more:
            r["iterations"] += n_short
        runs += more
    else:  # no iterations left: the unconverged short runs are the result too
        runs += [short[i] for i in keep]
    best = max(runs, key=lambda r: r["objective"])
    best["starts"] = [float(r["objective"]) for r in short]
    return best
