"""Independent kernel estimates for the bivariate (buy/sell) Hawkes process of
market-order arrivals: a nonparametric EM histogram kernel and a sum-of-exponentials
maximum likelihood, the references the project's Hawkes fit is measured against.

    uv run python benchmarks/hawkes_nonparametric.py                  # 5 datasets, M = 1..4
    uv run python benchmarks/hawkes_nonparametric.py --datasets amzn,goog --models grid8,M=5,M=6
    uv run python benchmarks/hawkes_nonparametric.py --report         # print the saved table

Written with NumPy/SciPy only, independently of ``models/hawkes`` (the arrivals come
from the project's loaders: :func:`models.data.observations.arrivals`, as ``mmcal fit
--model hawkes`` extracts them). Model, for target side ``s`` and source side ``s'``
(0 buy, 1 sell; the aggressor), constant baselines::

    lambda_s(t) = mu_s + sum_{j: t_j < t} phi_{s s_j}(t - t_j)

* EM histogram kernel (Marsan & Lengline 2008, JGR 113 B02302; Lewis & Mohler 2011,
  J. Nonparametric Stat.): ``phi_{ss'}`` piecewise constant on bins of the lag
  (``[0, 100 us)`` then log-spaced to 100 s); E-step = each event's probability of
  being triggered by each earlier event or by the baseline, M-step = responsibilities
  per (target, source, bin) over the exposure ``sum_j |bin cap [0, T - t_j]|``
  (edge-corrected). Events are summarised by their counts of earlier events per
  (source side, lag bin), so an iteration costs O(N x bins).
* Sum-of-exponentials MLE: ``phi_{ss'}(t) = sum_m n^m_{ss'} beta_m exp(-beta_m t)``,
  log-likelihood of Daley & Vere-Jones (2003, eq. 7.1.2) evaluated with the exponential
  recursion of Ozaki (1979) in blocks (exact; O(N x M)), analytic gradient, L-BFGS-B.
* Time-rescaling residuals (Brown, Barbieri, Ventura, Kass & Frank 2002, Neural Comput.
  14: 325-346): ``Lambda_s(t_k) - Lambda_s(t_{k-1})`` between consecutive side-``s``
  events are Exp(1) under the model; KS statistic D against Exp(1).
* Exact simulation by the cluster representation (Hawkes & Oakes 1974) for the tests.

Ties (events at the same timestamp) do not excite each other (``t_j < t`` strictly).
Recording gaps: the stretches between them are fitted as independent windows (each
starts with no history). Method notes: docs/models/hawkes_kernel_estimates.md; numbers:
benchmarks/README.md ("Hawkes kernel: nonparametric and multi-exponential references").
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import optimize, stats

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "artifacts" / "benchmarks"
DATA = ROOT / ".." / "shared" / "data"
DATASETS = {
    "amzn": ("lobster", "lobster/LOBSTER_SampleFile_AMZN_2012-06-21_1.zip", None),
    "goog": ("lobster", "lobster/LOBSTER_SampleFile_GOOG_2012-06-21_1.zip", None),
    "aapl": ("lobster", "lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip", None),
    "hl-btc": ("hyperliquid", "hyperliquid/recorder_2025-09-04", "BTC"),
    "hl-eth": ("hyperliquid", "hyperliquid/recorder_2025-12-10_ETH", "ETH"),
}
FIXED_GRID = (1e3, 1e2, 10.0, 1.0, 0.1, 0.01)
BETA_BOUNDS = (1e-3, 1e5)
BLOCK = 16


# =========================================================================== data
@dataclass(frozen=True)
class Segment:
    """One observed window ``[0, T]`` (s) with its events ``t`` (sorted) and ``side``
    (0 buy / 1 sell), summarised by unique times ``u``, counts ``X`` (U x 2) per side."""

    t: np.ndarray
    side: np.ndarray
    T: float

    @property
    def u_X(self) -> tuple[np.ndarray, np.ndarray]:
        u, inv = np.unique(self.t, return_inverse=True)
        X = np.zeros((len(u), 2))
        np.add.at(X, (inv, self.side.astype(int)), 1.0)
        return u, X

    def truncate(self, c: float) -> Segment:
        k = np.searchsorted(self.t, c, side="right")
        return Segment(self.t[:k], self.side[:k], float(c))


def split(segs: list[Segment], frac: float = 0.7) -> tuple[list[Segment], float]:
    """The first ``frac`` of the observed time (segments in order) and the cut as an
    offset into the observed clock."""
    total = sum(s.T for s in segs)
    cut, acc, out = frac * total, 0.0, []
    for s in segs:
        if acc + s.T <= cut:
            out.append(s)
        elif acc < cut:
            out.append(s.truncate(cut - acc))
        acc += s.T
    return out, cut


# =========================================================================== recursion
class Layout:
    """Block layout of a segment for the exponential recursion: unique times padded to
    blocks of ``BLOCK``; inside a block the O(K^2) lag matrix, between blocks a carry
    (Ozaki 1979 recursion applied to block sums). Exact; no exp of a positive number."""

    def __init__(self, seg: Segment, K: int = BLOCK):
        u, X = seg.u_X
        self.seg, self.u, self.X, self.T, self.K = seg, u, X, seg.T, K
        U = len(u)
        nb = max(1, -(-U // K))
        pad = nb * K - U
        last = u[-1] if U else 0.0
        self.tb = np.concatenate([u, np.full(pad, last)]).reshape(nb, K)
        self.xb = np.concatenate([X, np.zeros((pad, 2))]).reshape(nb, K, 2)
        D = self.tb[:, :, None] - self.tb[:, None, :]
        self.mask = np.tril(np.ones((K, K), bool), -1)[None] & (D > 0)
        self.D = np.where(self.mask, D, 0.0)
        self.tau = self.tb[:, 0]
        self.delta = self.tb - self.tau[:, None]
        self.gap = np.diff(self.tau)                                   # (nb-1,)
        self.lagend = self.tau[1:, None] - self.tb[:-1]                # (nb-1, K) >= 0
        self.U, self.nb = U, nb

    def states(self, beta: np.ndarray, deriv: bool = False):
        key = (np.asarray(beta, float).tobytes(), deriv)
        if getattr(self, "_key", None) != key:          # fixed decays: computed once per fit
            self._val, self._key = self._states(beta, deriv), key
        return self._val

    def _states(self, beta: np.ndarray, deriv: bool = False):
        """``A[m, u, s'] = sum_{t_j < u} X_j[s'] exp(-beta_m (u - t_j))`` and, with
        ``deriv``, ``S = sum (u - t_j) exp(-beta_m (u - t_j)) X_j`` (= -dA/dbeta)."""
        b = np.asarray(beta, float)[:, None, None, None]
        E = np.exp(-b * self.D) * self.mask                            # (M, nb, K, K)
        within = E @ self.xb                                           # (M, nb, K, 2)
        M, nb = len(beta), self.nb
        C = np.zeros((M, nb, 2))
        if deriv:
            ED = E * self.D
            withinS = ED @ self.xb
            Dc = np.zeros((M, nb, 2))
        if nb > 1:
            bb = np.asarray(beta, float)[:, None]
            dec = np.exp(-bb * self.gap)                               # (M, nb-1)
            el = np.exp(-bb[:, :, None] * self.lagend[None])           # (M, nb-1, K)
            tail = np.einsum("mbk,bks->mbs", el, self.xb[:-1])
            if deriv:
                tailS = np.einsum("mbk,bks->mbs", el * self.lagend[None], self.xb[:-1])
            for k in range(nb - 1):
                C[:, k + 1] = dec[:, k, None] * C[:, k] + tail[:, k]
                if deriv:
                    Dc[:, k + 1] = dec[:, k, None] * (Dc[:, k] + self.gap[k] * C[:, k]) + tailS[:, k]
        ed = np.exp(-b[..., 0] * self.delta[None])                     # (M, nb, K)
        A = (ed[..., None] * C[:, :, None, :] + within).reshape(M, -1, 2)[:, :self.U]
        if not deriv:
            return A, None
        S = (ed[..., None] * (Dc[:, :, None, :] + self.delta[None, :, :, None] * C[:, :, None, :])
             + withinS).reshape(M, -1, 2)[:, :self.U]
        return A, S


def naive_states(u: np.ndarray, X: np.ndarray, beta: float) -> np.ndarray:
    """O(U^2) reference for :meth:`Layout.states` (tests)."""
    lag = u[:, None] - u[None, :]
    W = np.where(lag > 0, np.exp(-beta * np.clip(lag, 0, None)), 0.0)
    return W @ X


# =========================================================================== MLE
def loglik(lay: Layout, mu, alpha, beta, grad: bool = False):
    """Log-likelihood of one segment (Daley & Vere-Jones 2003, eq. 7.1.2) for
    ``phi_{ts}(x) = sum_m alpha[m, t, s] beta_m exp(-beta_m x)``; with ``grad`` also
    d/dmu (2,), d/dalpha (M, 2, 2), d/dbeta (M,)."""
    mu, alpha, beta = np.asarray(mu, float), np.asarray(alpha, float), np.asarray(beta, float)
    A, S = lay.states(beta, deriv=grad)
    X, T, u = lay.X, lay.T, lay.u
    L = mu[None, :] + np.einsum("m,mts,mus->ut", beta, alpha, A)
    pos = X > 0
    ll_ev = float(np.sum(X[pos] * np.log(L[pos])))
    rem = np.clip(T - u, 0.0, None)
    er = np.exp(-beta[:, None] * rem[None])                          # (M, U)
    Q = np.einsum("mu,us->ms", 1.0 - er, X)                           # (M, 2) source
    comp = float(mu.sum() * T + np.einsum("mts,ms->", alpha, Q))
    ll = ll_ev - comp
    if not grad:
        return ll
    W = np.where(pos, X / np.where(pos, L, 1.0), 0.0)                 # (U, 2) target
    g_mu = W.sum(0) - T
    g_alpha = beta[:, None, None] * np.einsum("ut,mus->mts", W, A) - Q[:, None, :]
    R = np.einsum("mu,us->ms", rem[None] * er, X)
    g_beta = (np.einsum("ut,mts,mus->m", W, alpha, A - beta[:, None, None] * S)
              - np.einsum("mts,ms->m", alpha, R))
    return ll, g_mu, g_alpha, g_beta


def compensator(lay: Layout, mu, alpha, beta, mu_after=None, cut: float = np.inf) -> np.ndarray:
    """``Lambda_t(u)`` (U x 2) at the segment's unique times, from 0; with ``mu_after``
    the baseline is ``mu_after`` after the segment time ``cut``."""
    A, _ = lay.states(np.asarray(beta, float))
    Nbefore = np.cumsum(lay.X, 0) - lay.X
    u = lay.u[:, None]
    base = np.asarray(mu)[None] * np.minimum(u, cut)
    if mu_after is not None:
        base = base + np.asarray(mu_after)[None] * np.clip(u - cut, 0.0, None)
    return base + np.einsum("mts,mus->ut", np.asarray(alpha), Nbefore[None] - A)


def rescaled_residuals(segs: list[Segment], params: dict, after: float = 0.0, mu_after=None) -> list[np.ndarray]:
    """Time-rescaling residuals per side (Brown et al. 2002) of the events whose
    observed-clock time is > ``after``: ``Lambda_s(t_k) - Lambda_s(t_{k-1})`` with
    ``t_{k-1}`` the previous same-side event of the segment (its start for the first);
    ``mu_after``: the baseline after ``after`` (default: ``params["mu"]``)."""
    out: list[list[np.ndarray]] = [[], []]
    off = 0.0
    for seg in segs:
        lay = Layout(seg)
        Lam = compensator(lay, params["mu"], params["alpha"], params["beta"], mu_after,
                          after - off if mu_after is not None else np.inf)
        for s in (0, 1):
            reps = lay.X[:, s].astype(int)
            v = np.repeat(Lam[:, s], reps)
            tt = np.repeat(lay.u, reps)
            r = np.diff(np.concatenate([[0.0], v]))
            out[s].append(r[tt + off > after])
        off += seg.T
    return [np.concatenate(o) if o else np.zeros(0) for o in out]


def refit_baseline_after(segs: list[Segment], params: dict, cut: float) -> np.ndarray:
    """The baselines that maximise the conditional likelihood of the events after
    ``cut`` with the kernel held: per side the root of ``sum_i 1 / (mu + g_i) = T_after``
    (``g_i`` the kernel part of the intensity at event ``i``; the score of ``mu``)."""
    from scipy.optimize import brentq

    g, Ta, off = [[], []], 0.0, 0.0
    for seg in segs:
        lay = Layout(seg)
        A, _ = lay.states(np.asarray(params["beta"], float))
        G = np.einsum("m,mts,mus->ut", np.asarray(params["beta"]), np.asarray(params["alpha"]), A)
        keep = lay.u + off > cut
        for s in (0, 1):
            g[s].append(np.repeat(G[keep, s], lay.X[keep, s].astype(int)))
        Ta += max(0.0, min(seg.T, seg.T + off - cut))
        off += seg.T
    mu = np.zeros(2)
    for s in (0, 1):
        x = np.concatenate(g[s])
        score = lambda m: np.sum(1.0 / (m + x)) - Ta          # noqa: E731 (decreasing in m)
        if len(x) and score(1e-12) > 0:
            mu[s] = brentq(score, 1e-12, 2.0 * len(x) / Ta, xtol=1e-14, rtol=1e-12)
    return mu


def _unpack(x, M, fixed_beta):
    mu = np.exp(x[:2])
    alpha = x[2:2 + 4 * M].reshape(M, 2, 2)
    beta = np.asarray(fixed_beta, float) if fixed_beta is not None else np.exp(x[2 + 4 * M:])
    return mu, alpha, beta


def fit_mle(segs: list[Segment], M: int, starts: list[dict], fixed_beta=None, maxiter: int = 3000,
            screen: int = 40) -> dict:
    """Maximum likelihood of the sum-of-``M``-exponentials kernel with constant
    baselines (L-BFGS-B on ``(log mu, alpha >= 0, log beta)``, analytic gradient;
    ``fixed_beta``: decays held at those values). Several ``starts``: each run for
    ``screen`` iterations, the best one then to convergence. Decays reported in
    decreasing order."""
    lays = [Layout(s) for s in segs if len(s.t)]
    N = sum(len(s.t) for s in segs)
    fb = None if fixed_beta is None else np.asarray(fixed_beta, float)

    def f(x):
        mu, alpha, beta = _unpack(x, M, fb)
        tot, gm, ga, gb = 0.0, np.zeros(2), np.zeros((M, 2, 2)), np.zeros(M)
        for lay in lays:
            ll, a, b, c = loglik(lay, mu, alpha, beta, grad=True)
            tot, gm, ga, gb = tot + ll, gm + a, ga + b, gb + c
        g = np.concatenate([gm * mu, ga.ravel()] + ([] if fb is not None else [gb * beta]))
        return -tot / N, -g / N

    bounds = [(None, None)] * 2 + [(0.0, 20.0)] * (4 * M)
    if fb is None:
        bounds += [tuple(np.log(BETA_BOUNDS))] * M
    def run(x0, it):
        return optimize.minimize(f, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                                 options={"maxiter": it, "maxfun": 2 * it, "ftol": 1e-11, "gtol": 1e-7})

    x0s = [np.concatenate([np.log(st["mu"]), np.asarray(st["alpha"], float).ravel()]
                          + ([] if fb is not None else [np.log(st["beta"])])) for st in starts]
    if len(x0s) > 1:                                   # screen every start briefly, polish the best
        x0s = [min((run(x, screen) for x in x0s), key=lambda r: r.fun).x]
    best = run(x0s[0], maxiter)
    mu, alpha, beta = _unpack(best.x, M, fb)
    o = np.argsort(-beta)
    alpha, beta = alpha[o], beta[o]
    n = alpha.sum(0)
    return {"mu": mu, "alpha": alpha, "beta": beta, "n": n, "ll": -best.fun * N, "N": N,
            "k": 2 + 4 * M + (0 if fb is not None else M), "radius": spectral_radius(n),
            "converged": bool(best.success), "nit": int(best.nit)}


def total_loglik(segs: list[Segment], p: dict) -> float:
    return sum(loglik(Layout(s), p["mu"], p["alpha"], p["beta"]) for s in segs if len(s.t))


def spectral_radius(n: np.ndarray) -> float:
    return float(max(abs(np.linalg.eigvals(np.asarray(n, float)))))


def default_starts(segs: list[Segment], M: int, prev: dict | None, grid: dict | None = None) -> list[dict]:
    """M = 1: four decays (1000, 30, 1, 0.03 /s); M > 1: the (M-1) fit plus one new
    component at each of (1e4, 300, 10, 0.3, 0.01) /s not within 3x of its decays;
    with a fixed-grid fit ``grid``, also its M heaviest components."""
    T = sum(s.T for s in segs)
    rate = np.array([sum(np.sum(s.side == k) for s in segs) for k in (0, 1)]) / T
    a0 = np.array([[0.3, 0.1], [0.1, 0.3]])
    out = []
    if grid is not None:
        top = np.sort(np.argsort(-grid["alpha"].sum((1, 2)))[:M])
        out.append({"mu": grid["mu"], "alpha": grid["alpha"][top], "beta": grid["beta"][top]})
    if prev is None or M == 1:
        return out + [{"mu": 0.5 * rate, "alpha": a0[None] / M, "beta": [b]} for b in (1e3, 30.0, 1.0, 0.03)]
    for b in (1e4, 300.0, 10.0, 0.3, 0.01):
        if np.all(np.abs(np.log(prev["beta"] / b)) > np.log(3.0)):
            out.append({"mu": prev["mu"] * 0.9, "alpha": np.concatenate([prev["alpha"], 0.1 * a0[None]]),
                        "beta": np.append(prev["beta"], b)})
    return out


# =========================================================================== EM histogram
def log_bins(lo: float = 1e-4, hi: float = 100.0, per_decade: int = 4) -> np.ndarray:
    """Lag bin edges: ``[0, lo)`` then ``per_decade`` log-spaced bins per decade to ``hi``."""
    k = int(round(np.log10(hi / lo) * per_decade))
    return np.concatenate([[0.0], np.logspace(np.log10(lo), np.log10(hi), k + 1)])


def _parent_counts(seg: Segment, edges: np.ndarray) -> np.ndarray:
    """``c[i, s', k]`` = number of side-``s'`` events ``j`` with ``t_i - t_j`` in bin ``k``
    (``t_j < t_i`` strictly; bin ``[e_k, e_{k+1})``)."""
    N, K = len(seg.t), len(edges) - 1
    c = np.zeros((N, 2, K))
    for s in (0, 1):
        ts = seg.t[seg.side == s]
        le = np.searchsorted(ts, seg.t[:, None] - edges[None, 1:], side="right")   # t_j <= t_i - e_{k+1}
        ri = np.searchsorted(ts, seg.t[:, None] - edges[None, :-1], side="right")  # t_j <= t_i - e_k
        ri[:, 0] = np.searchsorted(ts, seg.t, side="left")                           # strict at lag 0
        c[:, s, :] = ri - le
    return c


def fit_em(segs: list[Segment], edges: np.ndarray | None = None, iters: int = 5000,
           tol: float = 1e-9) -> dict:
    """EM histogram kernel (Marsan & Lengline 2008; Lewis & Mohler 2011) with constant
    baselines. Returns ``phi`` (2, 2, bins) [target, source] in events/s per event,
    ``n`` = its L1 norm per pair, ``mu``, the bin ``edges``, ``ll`` and ``radius``."""
    edges = log_bins() if edges is None else np.asarray(edges, float)
    w = np.diff(edges)
    cs = [_parent_counts(s, edges) for s in segs if len(s.t)]
    sides = [s.side.astype(int) for s in segs if len(s.t)]
    c, side = np.concatenate(cs), np.concatenate(sides)
    T = sum(s.T for s in segs)
    expo = np.zeros((2, len(w)))                       # source side x bin
    for s in segs:
        for k in (0, 1):
            rem = s.T - s.t[s.side == k]
            expo[k] += np.clip(rem[:, None] - edges[None, :-1], 0.0, w[None]).sum(0)
    N, K = len(side), len(w)
    rate = np.bincount(side, minlength=2) / T
    mu = 0.5 * rate
    phi = np.full((2, 2, K), 0.25 / (np.sum(w)))     # total 0.25 per pair
    ct = [c[side == t].reshape(-1, 2 * K) for t in (0, 1)]   # parents of each target side's events
    inv_expo = 1.0 / np.where(expo > 0, expo, np.inf).ravel()
    ll_old = -np.inf
    for it in range(iters):
        lam = [mu[t] + ct[t] @ phi[t].ravel() for t in (0, 1)]
        ll = float(sum(np.log(x).sum() for x in lam) - mu.sum() * T - np.sum(phi * expo[None]))
        r = [1.0 / x for x in lam]
        mu = mu * np.array([x.sum() for x in r]) / T
        phi = np.stack([phi[t] * (r[t] @ ct[t] * inv_expo).reshape(2, K) for t in (0, 1)])
        if abs(ll - ll_old) < tol * N:
            break
        ll_old = ll
    n = np.einsum("tsk,k->ts", phi, w)
    return {"phi": phi, "n": n, "mu": mu, "edges": edges, "ll": ll, "iters": it + 1,
            "radius": spectral_radius(n), "N": N}


# =========================================================================== simulation
def simulate(mu, alpha, beta, T: float, rng) -> Segment:
    """Exact simulation by the cluster representation (Hawkes & Oakes 1974): immigrants
    Poisson(mu_s T) uniform on [0, T]; each side-s' event has Poisson(alpha[m, s, s'])
    side-s children per component m at Exp(beta_m) delays; generations until none
    falls in the window."""
    rng = np.random.default_rng(rng)
    mu, alpha, beta = np.asarray(mu, float), np.asarray(alpha, float), np.asarray(beta, float)
    if spectral_radius(alpha.sum(0)) >= 1:
        raise ValueError("simulate: the branching matrix must have spectral radius < 1")
    ts, ss = [], []
    n0 = [rng.poisson(mu[s] * T) for s in (0, 1)]
    gen_t = np.concatenate([rng.uniform(0, T, n0[0]), rng.uniform(0, T, n0[1])])
    gen_s = np.concatenate([np.zeros(n0[0], int), np.ones(n0[1], int)])
    while len(gen_t):
        ts.append(gen_t)
        ss.append(gen_s)
        nt, ns = [], []
        for m in range(len(beta)):
            for s in (0, 1):
                k = rng.poisson(alpha[m, s, gen_s])
                par = np.repeat(gen_t, k)
                nt.append(par + rng.exponential(1.0 / beta[m], len(par)))
                ns.append(np.full(len(par), s))
        gen_t, gen_s = np.concatenate(nt), np.concatenate(ns)
        keep = gen_t < T
        gen_t, gen_s = gen_t[keep], gen_s[keep]
    t, s = np.concatenate(ts), np.concatenate(ss)
    o = np.argsort(t, kind="stable")
    return Segment(t[o], s[o].astype(np.int8), float(T))


# =========================================================================== real data
def load_segments(name: str) -> tuple[list[Segment], dict]:
    """Arrivals of a dataset (:func:`models.data.observations.arrivals`: one per sweep),
    window from the first quote to the data's end, split at the recording gaps of
    :func:`models.data.gaps.find_gaps` into independent stretches; with the timestamp
    statistics."""
    from models.data.gaps import find_gaps, observed_stretches
    from models.data.loaders import load
    from models.data.observations import arrivals

    source, rel, asset = DATASETS[name]
    m = load(source, DATA / rel, asset)
    arr = arrivals(m)
    ts = arr["ts"].to_numpy(np.int64)
    side = np.where(arr["side"].to_numpy() > 0, 0, 1).astype(np.int8)
    t0, tE = int(m.quotes["ts"].to_numpy(np.int64)[0]), int(m.end_ns)
    gaps = find_gaps(m)
    a, b = observed_stretches(gaps, t0, tE)
    segs = []
    for x, y in zip(a, b):
        k = (ts >= x) & (ts <= y)
        segs.append(Segment((ts[k] - x) / 1e9, side[k], (y - x) / 1e9))
    raw = np.unique(m.trades["ts"].to_numpy(np.int64))
    dts = np.diff(ts)
    same = np.concatenate([np.diff(ts[side == s]) for s in (0, 1)])
    info = {"arrivals": int(sum(len(s.t) for s in segs)), "observed_s": float(sum(s.T for s in segs)),
            "gaps_s": [float(g) for g in gaps["length_s"]],
            "min_positive_trade_dt_ns": int(np.diff(raw)[np.diff(raw) > 0].min()),
            "share_ts_whole_us": float(np.mean(raw % 1000 == 0)),
            "share_ts_whole_ms": float(np.mean(raw % 1_000_000 == 0)),
            "share_gaps_below_1ms": float(np.mean(dts < 1e6)),
            "share_same_side_gaps_below_1ms": float(np.mean(same < 1e6)),
            "share_same_side_gaps_below_100us": float(np.mean(same < 1e5)),
            "share_arrivals_tied_opposite": float(np.mean(np.isin(ts, ts[1:][dts == 0])))}
    return segs, info


def _kernel(p: dict, lag: np.ndarray) -> np.ndarray:
    """(2, 2, len(lag)) ``phi_{ts}(lag)`` of a sum-of-exponentials fit."""
    return np.einsum("mts,mk->tsk", p["alpha"], p["beta"][:, None] * np.exp(-p["beta"][:, None] * lag[None]))


GRIDS = {"grid6": FIXED_GRID, "grid8": (1e4, 1e3, 1e2, 10.0, 1.0, 0.1, 0.01, 1e-3)}
DEFAULT_MODELS = ("poisson", "grid6", "M=1", "M=2", "M=3", "M=4")


def _row_params(r: dict) -> dict:
    return {k: np.asarray(r[k], float) for k in ("mu", "alpha", "beta")}


def evaluate(segs: list[Segment], models=DEFAULT_MODELS, frac: float = 0.7, old: dict | None = None) -> dict:
    """EM kernel on the whole window; per model (``poisson``, a fixed grid of
    :data:`GRIDS` with free weights, ``M=k`` free decays) the MLE on the first ``frac``
    of the observed time, held-out ll per event and KS D per side on the rest. Rows of
    ``old`` (a saved result) that ``models`` does not name are kept; ``M=k`` starts from
    the ``M=k-1`` fit, this run's or the saved one."""
    t0 = time.time()
    if old is not None and "em" in old:
        res = {"em": old["em"]}
    else:
        em = fit_em(segs)
        w = np.diff(em["edges"])
        mass = np.einsum("tsk,k->k", em["phi"], w)
        hi = em["edges"][1:]
        res = {"em": {"n": em["n"].tolist(), "radius": em["radius"], "mu": em["mu"].tolist(), "ll": em["ll"],
                      "iters": em["iters"], "edges": em["edges"].tolist(), "phi": em["phi"].tolist(),
                      "mass_below_1ms": float(mass[hi <= 1e-3].sum()),
                      "mass_1ms_1s": float(mass[(hi > 1e-3) & (hi <= 1.0)].sum()),
                      "mass_1s_100s": float(mass[hi > 1.0].sum()), "seconds": time.time() - t0}}
    train, cut = split(segs, frac)
    n_tr = sum(len(s.t) for s in train)
    n_te = sum(len(s.t) for s in segs) - n_tr
    T_tr = sum(s.T for s in train)
    rate = np.array([sum(np.sum(s.side == k) for s in train) for k in (0, 1)]) / T_tr
    rows = {r["model"]: r for r in (old or {}).get("rows", [])}

    def saved(label):
        r = rows.get(label)
        return None if r is None else {**_row_params(r), "n": np.asarray(r["n"])}

    for label in models:
        t1 = time.time()
        if label == "poisson":
            p = {"mu": rate, "alpha": np.zeros((1, 2, 2)), "beta": np.ones(1), "n": np.zeros((2, 2)), "k": 2,
                 "radius": 0.0, "converged": True, "nit": 0}
            p["ll"] = total_loglik(train, p)
        elif label in GRIDS:
            fb = GRIDS[label]
            p = fit_mle(train, len(fb), [{"mu": 0.5 * rate, "alpha": np.full((len(fb), 2, 2), 0.05), "beta": fb}],
                        fixed_beta=fb)
        else:
            M = int(label.split("=")[1])
            p = fit_mle(train, M, default_starts(train, M, saved(f"M={M - 1}"), saved("grid6")))
        held = (total_loglik(segs, p) - total_loglik(train, p)) / n_te
        ks, ks_in, ks_mu, mu2 = ks_stats(segs, train, p, cut)
        rows[label] = {"model": label, "k": p["k"], "ll_train": p["ll"], "aic": 2 * p["k"] - 2 * p["ll"],
                       "bic": p["k"] * np.log(n_tr) - 2 * p["ll"], "heldout_ll_per_event": held,
                       "ks_d": [float(k.statistic) for k in ks], "ks_p": [float(k.pvalue) for k in ks],
                       "ks_d_train": [float(k.statistic) for k in ks_in],
                       "ks_d_mu_refit": [float(k.statistic) for k in ks_mu], "mu_heldout": mu2.tolist(),
                       "radius": p["radius"], "n": np.asarray(p["n"]).tolist(), "mu": np.asarray(p["mu"]).tolist(),
                       "beta": np.asarray(p["beta"]).tolist(), "alpha": np.asarray(p["alpha"]).tolist(),
                       "converged": p["converged"], "nit": p["nit"], "seconds": time.time() - t1,
                       "load": os.getloadavg()[0]}
        print(f"  {label:8s} ll {p['ll']:.1f} held {held:.4f} KS {ks[0].statistic:.3f}/{ks[1].statistic:.3f} "
              f"radius {p['radius']:.3f} beta {np.round(p['beta'], 3)} ({time.time() - t1:.0f} s)", flush=True)
    order = {m: i for i, m in enumerate(("poisson", *GRIDS, *(f"M={k}" for k in range(1, 10))))}
    out = sorted(rows.values(), key=lambda r: order.get(r["model"], 99))
    free = [r for r in out if r["model"].startswith("M=")]
    res.update(rows=out, n_train=n_tr, n_test=n_te, cut_s=cut,
               best_heldout=max(free, key=lambda r: r["heldout_ll_per_event"])["model"],
               best_bic=min(free, key=lambda r: r["bic"])["model"])
    return res


def ks_stats(segs, train, p, cut):
    """KS tests against Exp(1) per side: the held-out residuals (after ``cut``), the
    in-sample ones (the training window), and the held-out ones with the baselines refitted
    on the held-out window (kernel held; :func:`refit_baseline_after`) with those baselines."""
    held = [stats.kstest(x, "expon") for x in rescaled_residuals(segs, p, after=cut)]
    mu2 = refit_baseline_after(segs, p, cut)
    refit = [stats.kstest(x, "expon") for x in rescaled_residuals(segs, p, after=cut, mu_after=mu2)]
    return held, [stats.kstest(x, "expon") for x in rescaled_residuals(train, p)], refit, mu2


def refresh_ks(name: str, res: dict) -> None:
    """Recompute the KS columns of a saved result from its parameters (no refit)."""
    segs, _ = load_segments(name)
    train, cut = split(segs)
    for r in res["rows"]:
        p = {k: np.asarray(r[k]) for k in ("mu", "alpha", "beta")}
        held, ks_in, ks_mu, mu2 = ks_stats(segs, train, p, cut)
        r["ks_d"], r["ks_p"] = [float(k.statistic) for k in held], [float(k.pvalue) for k in held]
        r["ks_d_train"] = [float(k.statistic) for k in ks_in]
        r["ks_d_mu_refit"], r["mu_heldout"] = [float(k.statistic) for k in ks_mu], mu2.tolist()


def plot(name: str, res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e = np.asarray(res["em"]["edges"])
    phi = np.asarray(res["em"]["phi"])
    mid = np.sqrt(e[1:] * np.maximum(e[:-1], e[1] / 10))
    lag = np.logspace(-5, 2.5, 400)
    best = next(r for r in res["rows"] if r["model"] == res["best_heldout"])
    p = {k: np.asarray(best[k]) for k in ("alpha", "beta")}
    fig, ax = plt.subplots(2, 2, figsize=(9, 7), sharex=True, sharey=True)
    names = ("buy", "sell")
    for t in (0, 1):
        for s in (0, 1):
            a = ax[t, s]
            y = phi[t, s]
            a.loglog(mid[y > 0], y[y > 0], "o", ms=4, label="EM histogram")
            a.loglog(lag, _kernel(p, lag)[t, s], "-", label=f"MLE {res['best_heldout']}")
            a.set_title(f"{names[s]} -> {names[t]}: n = {res['em']['n'][t][s]:.2f} (EM), {best['n'][t][s]:.2f}")
            a.grid(True, which="major", alpha=0.3)
    pos = phi[phi > 1e-12]
    ax[0, 0].set_ylim(0.3 * pos.min() if pos.size else 1e-6, 3 * max(pos.max() if pos.size else 1, 1e-6))
    ax[0, 0].set_xlim(1e-5, 300)
    for a in ax[1]:
        a.set_xlabel("lag (s)")
    for a in ax[:, 0]:
        a.set_ylabel("phi (1/s)")
    ax[0, 0].legend()
    fig.suptitle(f"{name}: Hawkes kernel, EM histogram vs sum-of-exponentials MLE")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(doc: dict) -> str:
    lines = []
    for name, d in doc.items():
        if name.startswith("_"):
            continue
        i, em = d["info"], d["em"]
        lines.append(f"\n{name}: {i['arrivals']} arrivals, {i['observed_s']:.0f} s observed, gaps {i['gaps_s']}; "
                     f"min positive trade dt {i['min_positive_trade_dt_ns']} ns, ts whole ms "
                     f"{i['share_ts_whole_ms']:.3f}; gaps < 1 ms {i['share_gaps_below_1ms']:.3f} (same side "
                     f"{i['share_same_side_gaps_below_1ms']:.3f}, < 100 us {i['share_same_side_gaps_below_100us']:.3f})")
        lines.append(f"EM: n = {np.round(em['n'], 3).tolist()}, radius {em['radius']:.3f}, mass <1ms / 1ms-1s / "
                     f"1-100s = {em['mass_below_1ms']:.3f} / {em['mass_1ms_1s']:.3f} / {em['mass_1s_100s']:.3f} "
                     f"({em['iters']} iterations)")
        lines.append("| model | k | ll (train) | BIC | held-out ll/event | KS D buy | KS D sell | in-sample KS D "
                     "| held-out KS D, mu refit | radius | decays (1/s) |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in d["rows"]:
            lines.append(f"| {r['model']} | {r['k']} | {r['ll_train']:.1f} | {r['bic']:.1f} | "
                         f"{r['heldout_ll_per_event']:.4f} | {r['ks_d'][0]:.3f} | {r['ks_d'][1]:.3f} | "
                         f"{'/'.join(f'{x:.3f}' for x in r.get('ks_d_train', []))} | "
                         f"{'/'.join(f'{x:.3f}' for x in r.get('ks_d_mu_refit', []))} | "
                         f"{r['radius']:.3f} | {', '.join(f'{b:.3g}' for b in r['beta']) if r['k'] > 2 else '-'} |")
        lines.append(f"M by held-out ll: {d['best_heldout']}; by BIC: {d['best_bic']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS),
                    help="poisson, grid6, grid8 (fixed decays, free weights), M=k (k free decays); "
                    "saved rows of other models are kept")
    ap.add_argument("--report", action="store_true", help="print the saved results and exit")
    a = ap.parse_args(argv)
    path = OUT / "hawkes_nonparametric.json"
    doc = json.loads(path.read_text()) if path.exists() else {}
    if a.report:
        stale = [n for n in doc if any("ks_d_mu_refit" not in r for r in doc[n]["rows"])]
        for n in stale:
            refresh_ks(n, doc[n])
        if stale:
            path.write_text(json.dumps(doc, indent=1, default=float))
        print(report(doc))
        for name in doc:
            plot(name, doc[name], OUT / f"hawkes_kernel_{name}.png")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    for name in a.datasets.split(","):
        t0 = time.time()
        print(f"{name}: load {os.getloadavg()[0]:.1f}", flush=True)
        segs, info = load_segments(name)
        doc = json.loads(path.read_text()) if path.exists() else {}    # another run may have written
        res = evaluate(segs, a.models.split(","), old=doc.get(name))
        res["info"] = info
        res["seconds"] = time.time() - t0
        res["load_end"] = os.getloadavg()
        doc = json.loads(path.read_text()) if path.exists() else {}
        doc[name] = res
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=float))
        os.replace(tmp, path)
        plot(name, res, OUT / f"hawkes_kernel_{name}.png")
        print(report({name: res}), f"\n({res['seconds']:.0f} s, load at end {res['load_end'][0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
