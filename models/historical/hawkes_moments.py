"""hawkes: the bivariate exponential Hawkes process (branching matrix, decay, baselines
per regime) by the method of moments over a geometric grid of window lengths, with
delete-one-block jackknife errors.

Units: times in s, rates in events/s, decay in 1/s. Source: Hawkes (1971); Bacry,
Mastromatteo & Muzy (2015, section 3); Da Fonseca & Zaatour (2014, Props. 3-4);
Kunsch (1989). Derivation: docs/models/historical.md#hawkes-method-of-moments.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, Field
from scipy import linalg, optimize

from mm_runtime.vocabulary import REGIMES, SIDES

from .common import Estimate, HistoricalConfig, _normal_ci, _z


class HawkesResult(BaseModel):
    branching: dict[str, dict[str, Estimate]]
    decay: Estimate
    spectral_radius: Estimate
    self_excitation: Estimate
    baseline: dict[str, dict[str, Estimate | None]]
    baseline_mean: Estimate
    pooled_branching_ratio: Estimate
    pooled_decay: Estimate
    n_events: int
    duration_s: float
    groups: int
    taus_s: list[float]
    chi2_dof: float
    chi2_dof_pooled: float
    curves: dict[str, list[list[float]]]
    notes: list[str] = Field(default_factory=list)


def _segments(edges: np.ndarray, regs: np.ndarray, T: float, G: int):
    """Pieces of [0, T) with one regime, cut at G equal time blocks:
    (start, end, regime, group)."""
    edges = np.asarray(edges, dtype=float)
    regs = np.asarray(regs, dtype=np.int64)
    change = np.concatenate(([True], regs[1:] != regs[:-1]))
    pts = np.unique(np.concatenate([edges[change], T * np.arange(1, G) / G, [0.0, T]]))
    pts = pts[(pts >= 0.0) & (pts <= T)]
    st, en = pts[:-1], pts[1:]
    keep = en > st
    st, en = st[keep], en[keep]
    bar = np.maximum(np.searchsorted(edges, st, side="right") - 1, 0)
    return st, en, regs[bar], np.minimum((st * G / T).astype(np.int64), G - 1)


class _TauStats:
    """Window sums for one window length, per (group, regime) cell (G*4 rows):
    ``W``, ``P`` window and adjacent-pair counts; ``A``, ``A1``, ``A0`` (rows, 2)
    event counts in all windows / windows with a predecessor / with a successor;
    ``Q`` (rows, 2, 2) sum of N_a N_b per window; ``L`` (rows, 2, 2) sum over pairs
    of N_a(later) N_b(earlier)."""

    __slots__ = ("W", "P", "A", "A1", "A0", "Q", "L")

    def __init__(self, t, side, seg, G: int, tau: float):
        st, en, reg, grp = seg
        R = 4 * G
        nw = np.floor((en - st) / tau * (1.0 + 1e-12)).astype(np.int64)
        cell_seg = grp * 4 + reg
        self.W = np.bincount(cell_seg, weights=nw, minlength=R)
        self.P = np.bincount(cell_seg, weights=np.maximum(nw - 1, 0), minlength=R)
        si = np.searchsorted(st, t, side="right") - 1
        w = np.floor((t - st[si]) / tau).astype(np.int64)
        ok = w < nw[si]
        si, w, sd = si[ok], w[ok], side[ok].astype(np.int64)
        cell = cell_seg[si]
        self.A = np.bincount(cell * 2 + sd, minlength=2 * R).reshape(R, 2).astype(float)
        m1 = w >= 1
        m0 = w <= nw[si] - 2
        self.A1 = np.bincount(cell[m1] * 2 + sd[m1], minlength=2 * R).reshape(R, 2).astype(float)
        self.A0 = np.bincount(cell[m0] * 2 + sd[m0], minlength=2 * R).reshape(R, 2).astype(float)
        off = np.concatenate(([0], np.cumsum(nw)[:-1]))
        key = off[si] + w  # non-decreasing (events sorted)
        self.Q = np.zeros((R, 2, 2))
        self.L = np.zeros((R, 2, 2))
        if len(key) == 0:
            return
        starts = np.concatenate(([0], np.flatnonzero(np.diff(key)) + 1))
        is_s = (sd == 1).astype(float)
        cs = np.add.reduceat(is_s, starts)
        c = np.stack([np.diff(np.append(starts, len(key))) - cs, cs], axis=1)  # (U, 2) buy, sell
        ukey, ucell = key[starts], cell[starts]
        has_next = w[starts] + 1 < nw[si[starts]]
        j = np.minimum(np.searchsorted(ukey, ukey + 1), len(ukey) - 1)
        nxt = has_next & (ukey[j] == ukey + 1)
        for a in range(2):
            for b in range(2):
                self.Q[:, a, b] = np.bincount(ucell, weights=c[:, a] * c[:, b], minlength=R)
                self.L[:, a, b] = np.bincount(ucell[nxt], weights=c[j[nxt], a] * c[nxt, b], minlength=R)


class _Moments:
    """Observed normalised moment curves for a subset of the time blocks."""

    def __init__(self, taus, stats_: list[_TauStats], C: np.ndarray, O: np.ndarray, mask: np.ndarray):
        G = len(mask)
        cm = np.repeat(mask, 4)  # rows are group*4 + regime
        Cs = C.reshape(G, 4, 2)[mask].sum(0)
        Os = O.reshape(G, 4)[mask].sum(0)
        lam = np.where(Os[:, None] > 0, Cs / np.where(Os > 0, Os, 1.0)[:, None], 0.0)  # (4, 2)
        self.lam, self.occupancy = lam, Os
        nt = len(taus)
        self.S, self.Lg = np.zeros((nt, 2, 2)), np.zeros((nt, 2, 2))
        self.D, self.Dp = np.zeros((nt, 2)), np.zeros((nt, 2))
        for i, (tau, s) in enumerate(zip(taus, stats_)):
            W = s.W.reshape(G, 4)[mask].sum(0)
            P = s.P.reshape(G, 4)[mask].sum(0)
            A = s.A[cm].reshape(-1, 4, 2).sum(0)
            A1 = s.A1[cm].reshape(-1, 4, 2).sum(0)
            A0 = s.A0[cm].reshape(-1, 4, 2).sum(0)
            Q = s.Q[cm].reshape(-1, 4, 2, 2).sum(0)
            L = s.L[cm].reshape(-1, 4, 2, 2).sum(0)
            m = lam * tau  # (4, 2)
            self.S[i] = (Q - m[:, None, :] * A[:, :, None] - m[:, :, None] * A[:, None, :]
                         + W[:, None, None] * m[:, :, None] * m[:, None, :]).sum(0)
            self.Lg[i] = (L - m[:, None, :] * A1[:, :, None] - m[:, :, None] * A0[:, None, :]
                          + P[:, None, None] * m[:, :, None] * m[:, None, :]).sum(0)
            self.D[i] = (W[:, None] * lam).sum(0)
            self.Dp[i] = (P[:, None] * lam).sum(0)
        self.taus = np.asarray(taus, dtype=float)

    def curves(self) -> np.ndarray:
        """(7, n_tau): same-window bb, ss, bs; lagged (later, earlier) bb, ss, bs, sb."""
        t = self.taus
        nD = t[:, None, None] * np.sqrt(self.D[:, :, None] * self.D[:, None, :])
        nP = t[:, None, None] * np.sqrt(self.Dp[:, :, None] * self.Dp[:, None, :])
        S, L = self.S / nD, self.Lg / nP
        return np.stack([S[:, 0, 0], S[:, 1, 1], S[:, 0, 1], L[:, 0, 0], L[:, 1, 1], L[:, 0, 1], L[:, 1, 0]])

    def pooled(self) -> np.ndarray:
        """Fano factor of the pooled (buy + sell) counts per tau."""
        return self.S.sum(axis=(1, 2)) / (self.taus * self.D.sum(1))

    def poisson_var(self) -> np.ndarray:
        """(8, n_tau) Poisson-level variance floor of each curve point: 1/(expected
        events in the windows) = 1/(tau sqrt(D_a D_b)); the last row is the pooled curve."""
        t = self.taus
        d = self.D
        dp = self.Dp
        rows = [t * d[:, 0], t * d[:, 1], t * np.sqrt(d[:, 0] * d[:, 1]),
                t * dp[:, 0], t * dp[:, 1], t * np.sqrt(dp[:, 0] * dp[:, 1]), t * np.sqrt(dp[:, 0] * dp[:, 1]),
                t * d.sum(1)]
        return 1.0 / np.maximum(np.stack(rows), 1e-300)


def _g(k: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """g(k) = tau/k - (1 - e^{-k tau})/k^2, stable for small k tau."""
    x = k * tau
    small = np.abs(x) < 1e-4
    xs = np.where(small, 1.0, x)
    big = (xs + np.expm1(-xs)) / np.where(small, 1.0, k) ** 2
    ser = tau * tau * (0.5 - x / 6.0 + x * x / 24.0)
    return np.where(small, ser, big)


def _l(k: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """l(k) = (1 - e^{-k tau})^2 / k^2."""
    x = k * tau
    small = np.abs(x) < 1e-6
    kk = np.where(small, 1.0, k)
    return np.where(small, tau * tau * (1.0 - x), np.expm1(-x) ** 2 / kk**2)


def _matfun(K: np.ndarray, f, tau: np.ndarray) -> np.ndarray:
    """f(K) (n_tau, 2, 2) for a 2x2 K with real eigenvalues, by the divided-difference
    (Newton) form ``f(l2) I + f[l1, l2] (K - l2 I)`` (exact for 2x2 by Cayley-Hamilton)."""
    tr, det = K[0, 0] + K[1, 1], K[0, 0] * K[1, 1] - K[0, 1] * K[1, 0]
    q = math.sqrt(max(tr * tr / 4.0 - det, 0.0))
    l1, l2 = tr / 2.0 + q, tr / 2.0 - q
    f2 = f(np.full_like(tau, l2), tau)
    if q > 1e-6 * max(abs(tr), 1e-300):
        dd = (f(np.full_like(tau, l1), tau) - f2) / (l1 - l2)
    else:
        lm = tr / 2.0
        h = 1e-5 * max(abs(lm), 1e-12)
        dd = (f(np.full_like(tau, lm + h), tau) - f(np.full_like(tau, lm - h), tau)) / (2 * h)
    I = np.eye(2)
    return f2[:, None, None] * I + dd[:, None, None] * (K - l2 * I)


def _predict(n: np.ndarray, beta: float, m: _Moments) -> np.ndarray:
    """Model curves (7, n_tau) for branching n and decay beta (docs/models/historical.md)."""
    K = beta * (np.eye(2) - n)
    Qb = []
    for e in np.eye(2):
        X = linalg.solve_continuous_lyapunov(K, np.diag(e))
        Qb.append(beta * n @ np.diag(e) + beta * beta * n @ X @ n.T)
    Qb = np.stack(Qb)  # (2, 2, 2): Q for Sigma = diag(e_s)
    t = m.taus
    QD = np.einsum("ts,sab->tab", m.D, Qb)
    QP = np.einsum("ts,sab->tab", m.Dp, Qb)
    G = _matfun(K, _g, t) @ QD
    cov = G + np.swapaxes(G, 1, 2)
    cov[:, 0, 0] += t * m.D[:, 0]
    cov[:, 1, 1] += t * m.D[:, 1]
    lag = _matfun(K, _l, t) @ QP
    nD = t[:, None, None] * np.sqrt(m.D[:, :, None] * m.D[:, None, :])
    nP = t[:, None, None] * np.sqrt(m.Dp[:, :, None] * m.Dp[:, None, :])
    S, L = cov / nD, lag / nP
    return np.stack([S[:, 0, 0], S[:, 1, 1], S[:, 0, 1], L[:, 0, 0], L[:, 1, 1], L[:, 0, 1], L[:, 1, 0]])


def _fano1(tau: np.ndarray, n: float, kap: float) -> np.ndarray:
    """One-dimensional Fano factor (Da Fonseca & Zaatour 2014):
    a - (a - 1)(1 - e^{-kappa tau})/(kappa tau), a = 1/(1-n)^2."""
    a = 1.0 / (1.0 - n) ** 2
    x = kap * tau
    return a - (a - 1.0) * np.where(x < 1e-8, 1.0 - x / 2.0, -np.expm1(-x) / np.maximum(x, 1e-300))


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


_N_MAX = 0.999
_LOG_BETA = (math.log(1e-4), math.log(1e5))


def _fit_pooled(m: _Moments, var: np.ndarray, start=None):
    """Weighted least squares of the pooled Fano curve over (logit n, log beta), bounded
    (n in [1e-6, 0.999], beta in [1e-4, 1e5] /s)."""
    y = m.pooled()
    sd = np.sqrt(var)

    def res(p):
        n = float(_sig(p[0]))
        return (y - _fano1(m.taus, n, math.exp(p[1]) * (1 - n))) / sd

    lo = np.array([math.log(1e-6), _LOG_BETA[0]])
    hi = np.array([math.log(_N_MAX / (1 - _N_MAX)), _LOG_BETA[1]])
    t = m.taus
    starts = [start] if start is not None else [
        [math.log(n0 / (1 - n0)), math.log(b0)] for n0 in (0.1, 0.3, 0.6, 0.85)
        for b0 in np.geomspace(0.3 / t[-1], 3.0 / t[0], 9)]
    best = None
    for s0 in starts:
        r = optimize.least_squares(res, np.clip(s0, lo + 1e-9, hi - 1e-9), bounds=(lo, hi),
                                   method="trf", max_nfev=400)
        if best is None or r.cost < best.cost:
            best = r
    return float(_sig(best.x[0])), float(math.exp(best.x[1])), best


def _fit_matrix(m: _Moments, var: np.ndarray, starts):
    """Weighted least squares of the seven curves over p = (n00, n01, n10, n11, log beta),
    the entries of n bounded to [0, 0.999] (so a zero cross-excitation is reachable)
    and rho(n) < 0.999 (a point outside gets a large residual; it is never the optimum)."""
    y = m.curves()
    sd = np.sqrt(var)
    bad = np.full(y.size, 1e6)

    def res(p):
        n = p[:4].reshape(2, 2)
        if max(abs(np.linalg.eigvals(n))) >= _N_MAX:
            return bad
        r = ((y - _predict(n, math.exp(p[4]), m)) / sd).ravel()
        return r if np.all(np.isfinite(r)) else bad

    lo = np.array([0, 0, 0, 0, _LOG_BETA[0]])
    hi = np.array([_N_MAX] * 4 + [_LOG_BETA[1]])
    best = None
    for s0 in starts:
        try:
            r = optimize.least_squares(res, np.clip(s0, lo + 1e-9, hi - 1e-9), bounds=(lo, hi),
                                       method="trf", max_nfev=400)
        except (ValueError, np.linalg.LinAlgError, linalg.LinAlgError):
            continue
        if np.isfinite(r.cost) and (best is None or r.cost < best.cost):
            best = r
    if best is None or best.cost >= 0.5 * bad.size * 1e12:
        raise ValueError("hawkes: the moment fit failed from every start")
    return best.x[:4].reshape(2, 2).copy(), float(math.exp(best.x[4])), best


def _jk_se(vals: np.ndarray) -> np.ndarray:
    G = vals.shape[0]
    return np.sqrt((G - 1) / G * ((vals - vals.mean(0)) ** 2).sum(0))


def _tau_grid(t: np.ndarray, seg, T: float, cfg: HistoricalConfig) -> np.ndarray:
    st, en = seg[0], seg[1]
    lam = len(t) / T
    ut = np.unique(t)
    gaps = np.diff(ut)
    clock = float(np.quantile(gaps, 0.01)) if len(gaps) else 0.0
    lo = cfg.hawkes_tau_min_s or max(0.01 / lam, 5.0 * clock)
    if cfg.hawkes_tau_max_s is not None:
        hi = cfg.hawkes_tau_max_s
    else:
        cand = np.geomspace(lo, max(T / 10.0, lo * 1.01), 400)
        nw = np.array([np.floor((en - st) / x).sum() for x in cand])
        ok = cand[nw >= cfg.hawkes_min_windows]
        if len(ok) == 0:
            raise ValueError(f"hawkes: fewer than {cfg.hawkes_min_windows} windows even at tau = {lo:.3g} s "
                             "(too short a market, or regimes switching every bar)")
        hi = float(ok.max())
    if not hi > lo * 1.5:
        raise ValueError(f"hawkes: window range [{lo:.3g}, {hi:.3g}] s is too narrow for a fit")
    return np.geomspace(lo, hi, cfg.hawkes_n_tau)


def _est(value: float, se: float, level: float, n: float, *, log: bool = False,
         lo: float = -math.inf, hi: float = math.inf) -> Estimate:
    if log and value > 0 and math.isfinite(se):
        z = _z(level)
        s = se / value
        # a huge relative se (a decay the windows cannot pin down) must give (≈0, inf),
        # not an OverflowError: exponents above ~709 overflow a double
        ci = (value * math.exp(-min(z * s, 700.0)), value * math.exp(z * s) if z * s < 700.0 else math.inf)
    else:
        ci = _normal_ci(value, se, level, lo, hi)
    return Estimate(value=float(value), se=float(se), ci=(float(ci[0]), float(ci[1])), n=float(n))


def hawkes(obs, config: HistoricalConfig | None = None) -> HawkesResult:
    """Method-of-moments fit of the bivariate exponential Hawkes process
    (docs/models/historical.md). ``obs``: :class:`models.hawkes.HawkesObs` of one asset (times in s,
    sides 0 buy / 1 sell, the regime path as bar edges and regimes)."""
    cfg = config or HistoricalConfig()
    for attr in ("t", "side", "bar_edges", "bar_regime", "duration_s"):
        if not hasattr(obs, attr):
            raise ValueError(f"hawkes: expected a models.hawkes.HawkesObs, got {type(obs).__name__} "
                             f"without {attr!r}")
    if len(obs.duration_s) != 1:
        raise ValueError("hawkes: one asset at a time (HawkesObs.select(asset))")
    t = np.asarray(obs.t, dtype=float)
    side = np.asarray(obs.side, dtype=np.int64)
    T = float(obs.duration_s[0])
    N = len(t)
    if N < cfg.hawkes_min_events:
        raise ValueError(f"hawkes: {N} arrivals, fewer than hawkes_min_events = {cfg.hawkes_min_events}")
    if np.bincount(side, minlength=2).min() == 0:
        raise ValueError("hawkes: arrivals of one side only; the bivariate fit needs both")
    G = cfg.hawkes_groups
    seg = _segments(np.asarray(obs.bar_edges[0]), np.asarray(obs.bar_regime[0]), T, G)
    taus = _tau_grid(t, seg, T, cfg)
    st, en, reg, grp = seg
    si = np.clip(np.searchsorted(st, t, side="right") - 1, 0, len(st) - 1)
    cell = grp[si] * 4 + reg[si]
    C = np.bincount(cell * 2 + side, minlength=8 * G).astype(float)
    O = np.bincount(grp * 4 + reg, weights=en - st, minlength=4 * G)
    tstats = [_TauStats(t, side, seg, G, tau) for tau in taus]
    allg = np.ones(G, dtype=bool)
    full = _Moments(taus, tstats, C, O, allg)
    jk = [_Moments(taus, tstats, C, O, np.arange(G) != g) for g in range(G)]

    # weights: jackknife variance of each curve point, floored at the Poisson variance
    floor = full.poisson_var()
    v7 = np.maximum(_jk_se(np.stack([m.curves() for m in jk])) ** 2, floor[:7])
    v1 = np.maximum(_jk_se(np.stack([m.pooled() for m in jk])) ** 2, floor[7])

    n1, b1, r1 = _fit_pooled(full, v1)
    pooled_jk = np.array([_fit_pooled(m, v1, start=r1.x)[:2] for m in jk])
    starts = []
    for frac in (0.75, 0.5, 0.95):
        nn = np.array([[frac, 1 - frac], [1 - frac, frac]]) * min(max(n1, 0.02), 0.95)
        for bscale in (1.0, 0.3, 3.0):
            starts.append(np.append(nn.ravel(), math.log(b1 * bscale)))
    n_hat, b_hat, r2 = _fit_matrix(full, v7, starts)
    fits = [_fit_matrix(m, v7, [r2.x]) for m in jk]

    def derived_of(n, beta, m: _Moments):
        mu = m.lam @ (np.eye(2) - n).T  # (4, 2): (I - n) Lambda_r
        occ = m.occupancy
        mu_mean = float((occ[:, None] * mu).sum() / (2.0 * occ.sum()))
        rho = float(max(abs(np.linalg.eigvals(n))))
        return np.concatenate([n.ravel(), [beta, rho, 0.5 * (n[0, 0] + n[1, 1]), mu_mean], mu.ravel()])

    th = derived_of(n_hat, b_hat, full)
    th_jk = np.stack([derived_of(n, b, m) for (n, b, _), m in zip(fits, jk)])
    se = _jk_se(th_jk)
    lvl = cfg.ci_level
    branching = {tn: {sn: _est(th[2 * i + j], se[2 * i + j], lvl, N, lo=0.0, hi=1.0)
                      for j, sn in enumerate(SIDES)} for i, tn in enumerate(SIDES)}
    occ = full.occupancy
    baseline: dict[str, dict[str, Estimate | None]] = {}
    for r, rn in enumerate(REGIMES):
        baseline[rn] = {}
        for s, sn in enumerate(SIDES):
            k = 8 + 2 * r + s
            baseline[rn][sn] = (_est(th[k], se[k], lvl, float(C.reshape(G, 4, 2)[:, r, s].sum()), lo=0.0)
                                if occ[r] > 0 else None)
    chi2 = 2.0 * r2.cost / max(r2.fun.size - 5, 1)
    chi2p = 2.0 * r1.cost / max(r1.fun.size - 2, 1)
    se_p = _jk_se(pooled_jk)
    notes = []
    on_bound = [f"n[{SIDES[i]},{SIDES[j]}]" for i in range(2) for j in range(2) if n_hat[i, j] < 1e-6]
    if on_bound:
        notes.append(f"{', '.join(on_bound)} at the bound 0: the jackknife SE there is not a standard error")
    if chi2 > 3.0:
        notes.append(f"one exponential kernel fits the variance-time curves poorly (chi2/dof {chi2:.1f}): "
                     "the flow clusters on several time scales; the estimates are a compromise over "
                     f"windows {taus[0]:.3g}-{taus[-1]:.3g} s")
    fitted = _predict(n_hat, b_hat, full)
    return HawkesResult(
        branching=branching,
        decay=_est(th[4], se[4], lvl, N, log=True),
        spectral_radius=_est(th[5], se[5], lvl, N, lo=0.0, hi=1.0),
        self_excitation=_est(th[6], se[6], lvl, N, lo=0.0, hi=1.0),
        baseline=baseline,
        baseline_mean=_est(th[7], se[7], lvl, N, lo=0.0),
        pooled_branching_ratio=_est(n1, float(se_p[0]), lvl, N, lo=0.0, hi=1.0),
        pooled_decay=_est(b1, float(se_p[1]), lvl, N, log=True),
        n_events=int(N), duration_s=T, groups=G, taus_s=[float(x) for x in taus],
        chi2_dof=float(chi2), chi2_dof_pooled=float(chi2p),
        curves={"observed": full.curves().tolist(), "fitted": fitted.tolist(),
                "sd": np.sqrt(v7).tolist(), "pooled_observed": [full.pooled().tolist()],
                "pooled_fitted": [_fano1(taus, n1, b1 * (1 - n1)).tolist()]},
        notes=notes)
