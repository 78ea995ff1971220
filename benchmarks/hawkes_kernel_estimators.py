"""Estimators of the bivariate (buy/sell) Hawkes kernel written independently of
``models/hawkes`` (NumPy/SciPy only), for benchmarks/hawkes_nonparametric.py (the runner
on real data) and its tests: the EM histogram kernel (Marsan & Lengline 2008; Lewis &
Mohler 2011), the sum-of-exponentials MLE (Daley & Vere-Jones 2003, eq. 7.1.2; Ozaki 1979
recursion, blocked; analytic gradient), time-rescaling residuals (Brown et al. 2002), the
held-out baseline refit and the exact cluster simulation (Hawkes & Oakes 1974).

Sides 0 buy / 1 sell; kernels indexed [target, source]; times in seconds from each
segment's start. Events with the same timestamp do not excite each other. Derivations:
docs/models/hawkes_kernel_estimates.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

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
