"""The synthetic market: the project's embedded default dataset, with known truth.

``simulate_market(seed, duration_s)`` builds a :class:`~models.data.tables.Market`
(asset ``SYN``, source ``synthetic``) whose trades and quotes come from a generative
model with known parameters, and whose ``truth`` dict holds every parameter under the
names the fits and the prior bundle use (DESIGN.md section 8). Deterministic in
(seed, duration_s, config). The model, in steps:

1. regimes: a 4-state Markov chain stepping once per bar (``markov_path``);
2. arrivals: a bivariate exponential Hawkes process, simulated exactly by its
   cluster representation (``simulate_hawkes_arrivals``);
3. depth marks: each arrival reaches an Exponential(kappa) depth beyond the mid;
4. informed flow: an arrival is informed with a depth-decaying probability and then
   moves the mid (alpha);
5. mid and quotes: Brownian log-mid per regime plus the informed jumps;
6. optionally (``OpenInterestConfig``) open interest with liquidation cascades;
7. (``QueueConfig``, on by default) an order book with queues (``books``) and the
   queue orders with their true fill and markout process (:mod:`models.data.synthetic_queue`),
   drawn from an RNG stream of their own so that steps 1-6 keep their bytes.

Units (DESIGN.md section 2): depth in bps of the mid, time in s, sigma in
bps/sqrt(s), kappa in 1/bps, rates in events/s; ``buy`` = aggressor bought (trade side
+1, fills passive asks). Writing and reading the directory: :mod:`models.data.synthetic_io`
(re-exported here). The model's equations, the derivation of the truth, the default
parameters, measurements of the observed informed share and the truth.json layout:
docs/data/synthetic.md.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.signal import lfilter

from mm_runtime.vocabulary import NS, REGIMES, SIDES
from models.data.observations import ObservationConfig
from models.data.synthetic_io import (TRUTH_FORMAT, TRUTH_FORMAT_VERSION, file_sha256,
                                      load_synthetic, write_market)
from models.data.synthetic_queue import QueueConfig, simulate_queues
from models.data.synthetic_queue import truth_params as queue_truth_params
from models.data.tables import (Market, validate_books, validate_open_interest, validate_quotes,
                                validate_trades)

__all__ = ["OpenInterestConfig", "QueueConfig", "SyntheticConfig", "markov_path", "simulate_hawkes_arrivals",
           "simulate_market", "SIDE_SIGN",
           # re-exported from models.data.synthetic_io
           "TRUTH_FORMAT", "TRUTH_FORMAT_VERSION", "write_market", "load_synthetic", "file_sha256"]

SIDE_SIGN = np.array([1, -1], dtype=np.int8)

Pair = tuple[float, float]
Quad = tuple[float, float, float, float]


class OpenInterestConfig(BaseModel):
    """Open interest with liquidation cascades (docs/data/synthetic.md, step 6). Fractions
    are of the open interest; ``threshold`` is the truth's ``cascade_oi_threshold``.

    Defaults: a snapshot per second, 1e6 base units, ordinary changes of 0.02 % per
    snapshot reverting over 10 minutes, 20 cascades per hour with drops log-uniform
    in 0.2-5 % (so ~37 % of them, those of 1.5 % or more, are followed by a move of
    8 bp + Exp(mean 4 bp) over 5 s)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    interval_s: float = 1.0
    oi0: float = 1.0e6
    noise_sd: float = 2.0e-4
    reversion_s: float = 600.0
    cascade_rate_per_hour: float = 20.0
    drop_min: float = 0.002
    drop_max: float = 0.05
    threshold: float = 0.015
    move_bps: float = 8.0
    move_extra_mean_bps: float = 4.0
    move_seconds: float = 5.0

    @model_validator(mode="after")
    def _check(self) -> OpenInterestConfig:
        for name in ("interval_s", "oi0", "reversion_s", "move_seconds"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"open_interest.{name} must be finite and > 0, got {v}")
        for name in ("noise_sd", "cascade_rate_per_hour", "move_bps", "move_extra_mean_bps"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"open_interest.{name} must be finite and >= 0, got {v}")
        if not (0 < self.drop_min <= self.drop_max < 1):
            raise ValueError("open_interest: need 0 < drop_min <= drop_max < 1, got "
                             f"{self.drop_min}, {self.drop_max}")
        if not (0 < self.threshold < 1):
            raise ValueError(f"open_interest.threshold must be in (0, 1), got {self.threshold}")
        return self


class SyntheticConfig(BaseModel):
    """Parameters of the generative model (docs/data/synthetic.md). Per-regime tuples
    are ordered low, normal, high, extreme; per-side pairs are (buy, sell)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    asset: str = "SYN"
    start_ns: int = 1_704_067_200 * NS  # 2024-01-01T00:00:00Z
    price0: float = 100.0
    bar_seconds: float = 10.0
    grid_seconds: float = 0.1
    regime_transition: tuple[Quad, Quad, Quad, Quad] = (
        (0.980, 0.015, 0.004, 0.001),
        (0.010, 0.980, 0.008, 0.002),
        (0.005, 0.025, 0.960, 0.010),
        (0.002, 0.010, 0.038, 0.950),
    )
    sigma_bps: Quad = (0.10, 0.17, 0.27, 0.40)
    half_spread_bps: Quad = (0.5, 0.8, 1.2, 2.0)
    arrival_rate: tuple[Pair, Pair, Pair, Pair] = (
        (0.08, 0.07), (0.10, 0.09), (0.12, 0.11), (0.13, 0.12))
    hawkes_branching: tuple[Pair, Pair] = ((0.15, 0.05), (0.05, 0.15))
    hawkes_decay: float = 0.3
    kappa: tuple[Pair, Pair, Pair, Pair] = (
        (0.60, 0.55), (0.45, 0.40), (0.30, 0.28), (0.20, 0.18))
    alpha_touch: Quad = (0.05, 0.10, 0.20, 0.35)
    alpha_decay_bps: float = 8.0
    jump_extra_mean_bps: float = 0.5
    jump_margin_sigmas: float = 3.0
    print_spacing_bps: float = 1.0
    max_prints: int = 6
    trade_size_median: float = 0.5
    quote_size_median: float = 5.0
    size_log_sd: float = 0.8
    observation: ObservationConfig = Field(default_factory=ObservationConfig)
    open_interest: OpenInterestConfig | None = None
    queues: QueueConfig | None = Field(default_factory=QueueConfig)

    @model_validator(mode="after")
    def _check(self) -> SyntheticConfig:
        P = np.asarray(self.regime_transition, dtype=float)
        if np.any(P < 0) or not np.allclose(P.sum(axis=1), 1.0, atol=1e-9):
            raise ValueError("regime_transition rows must be probabilities summing to 1")
        for name in ("sigma_bps", "half_spread_bps", "arrival_rate", "kappa", "alpha_touch"):
            v = np.asarray(getattr(self, name), dtype=float)
            if not np.all(np.isfinite(v)) or np.any(v <= 0):
                raise ValueError(f"{name} must be finite and > 0")
        if np.any(np.asarray(self.alpha_touch) >= 1):
            raise ValueError("alpha_touch must be < 1")
        n = np.asarray(self.hawkes_branching, dtype=float)
        if np.any(n < 0) or max(abs(np.linalg.eigvals(n))) >= 1:
            raise ValueError("hawkes_branching must be >= 0 with spectral radius < 1")
        mu = self.hawkes_baseline()
        if np.any(mu <= 0):
            raise ValueError(f"arrival_rate and hawkes_branching imply a baseline <= 0: {mu}")
        if np.any(self.alpha_gen_scale() > 1):
            raise ValueError(f"alpha_touch too high for kappa and alpha_decay_bps: "
                             f"generator scale a = {self.alpha_gen_scale()} > 1")
        for name in ("hawkes_decay", "alpha_decay_bps", "jump_extra_mean_bps", "price0",
                     "bar_seconds", "grid_seconds", "print_spacing_bps", "trade_size_median",
                     "quote_size_median"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be finite and > 0")
        if self.jump_margin_sigmas < 0 or self.size_log_sd < 0 or self.max_prints < 1:
            raise ValueError("jump_margin_sigmas, size_log_sd must be >= 0, max_prints >= 1")
        b, g = round(self.bar_seconds * NS), round(self.grid_seconds * NS)
        if g < 10 or b % g:
            raise ValueError("bar_seconds must be a whole multiple of grid_seconds (>= 10 ns)")
        if self.open_interest is not None and round(self.open_interest.interval_s * NS) % g:
            raise ValueError("open_interest.interval_s must be a whole multiple of grid_seconds")
        return self

    def config_doc(self) -> dict[str, Any]:
        """The config as written to ``truth.json`` (JSON types); ``open_interest`` only
        when set, so a market without it has the same truth file as before the option."""
        doc = self.model_dump(mode="json")
        if doc.get("open_interest") is None:
            doc.pop("open_interest", None)
        if doc.get("queues") is None:
            doc.pop("queues", None)
        return doc

    @classmethod
    def busy(cls, **overrides: Any) -> SyntheticConfig:
        """A busier market (~5k arrivals per hour instead of ~0.7k) for Hawkes/kappa
        fits and throughput: higher arrival rates and a stronger, faster Hawkes
        excitation (n = [[0.3, 0.1], [0.1, 0.3]], beta = 1/s); everything else as
        the defaults.
        Its observed ``informed`` flags are NOT faithful to ``alpha_touch``: with
        ~0.4-1.5 arrivals/s per side, other informed arrivals inside the 1 s markout
        horizon inflate the observed share by ~40-70 % (several 1-hour standard
        errors); see docs/data/synthetic.md."""
        base: dict[str, Any] = {"arrival_rate": ((0.45, 0.40), (0.65, 0.60),
                                                 (1.00, 0.90), (1.50, 1.40)),
                                "hawkes_branching": ((0.30, 0.10), (0.10, 0.30)),
                                "hawkes_decay": 1.0}
        base.update(overrides)
        return cls(**base)

    # ---- derived quantities (the truth) ----
    def branching(self) -> np.ndarray:
        return np.asarray(self.hawkes_branching, dtype=float)

    def rates(self) -> np.ndarray:
        """A[r, s], stationary mean arrival rates (events/s)."""
        return np.asarray(self.arrival_rate, dtype=float)

    def hawkes_baseline(self) -> np.ndarray:
        """mu[r, s] = ((I - n) A_r)_s."""
        n = self.branching()
        return self.rates() @ (np.eye(2) - n).T

    def kappas(self) -> np.ndarray:
        return np.asarray(self.kappa, dtype=float)

    def alpha_gen_scale(self) -> np.ndarray:
        """a[r, s] = alpha_touch[r] (kappa delta_char + 1) / (kappa delta_char)."""
        kd = self.kappas() * self.alpha_decay_bps
        return np.asarray(self.alpha_touch, dtype=float)[:, None] * (kd + 1.0) / kd

    def jump_margin_bps(self) -> np.ndarray:
        return (self.jump_margin_sigmas * np.asarray(self.sigma_bps, dtype=float)
                * math.sqrt(self.observation.markout_horizon_s))

    def stationary(self) -> np.ndarray:
        P = np.asarray(self.regime_transition, dtype=float)
        w, v = np.linalg.eig(P.T)
        pi = np.real(v[:, int(np.argmin(abs(w - 1.0)))])
        return pi / pi.sum()


# --------------------------------------------------------------------------- truth
def _truth(cfg: SyntheticConfig) -> dict[str, Any]:
    A = cfg.rates()
    mu = cfg.hawkes_baseline()
    n = cfg.branching()
    kap = cfg.kappas()
    a = cfg.alpha_gen_scale()
    at = np.asarray(cfg.alpha_touch, dtype=float)
    sig = np.asarray(cfg.sigma_bps, dtype=float)
    hs = np.asarray(cfg.half_spread_bps, dtype=float)
    thr = cfg.observation.informed_threshold_bps
    margin = cfg.jump_margin_bps()
    mx = cfg.jump_extra_mean_bps
    kp = kap + 1.0 / cfg.alpha_decay_bps  # informed arrivals' depth rate
    c = thr + margin[:, None]
    adverse = 1.0 / kp + c + mx
    ej2 = 1.0 / kp**2 + mx**2 + adverse**2
    sig_tot2 = sig**2 + (A * at[:, None] * ej2).sum(axis=1)
    pi = cfg.stationary()
    w_inf = pi[:, None] * A * at[:, None]
    adverse_all = float((w_inf * adverse).sum() / w_inf.sum())
    inv = np.linalg.inv(np.eye(2) - n)
    P = np.asarray(cfg.regime_transition, dtype=float)

    p: dict[str, float] = {}
    for r, rn in enumerate(REGIMES):
        p[f"alpha_touch[{rn}]"] = float(at[r])
    p["alpha_decay_bps"] = float(cfg.alpha_decay_bps)
    p["adverse_move_bps"] = adverse_all
    for name, per_regime_side in (("adverse_move_bps", adverse), ("kappa", kap),
                                  ("arrival_rate", A), ("hawkes_baseline", mu)):
        for r, rn in enumerate(REGIMES):
            for s, sn in enumerate(SIDES):
                p[f"{name}[{rn},{sn}]"] = float(per_regime_side[r, s])
    for t, tn in enumerate(SIDES):
        for s, sn in enumerate(SIDES):
            p[f"hawkes_branching[{tn},{sn}]"] = float(n[t, s])
    p["hawkes_decay"] = float(cfg.hawkes_decay)
    for i, rn in enumerate(REGIMES):
        for j, rm in enumerate(REGIMES):
            p[f"regime_transition[{rn},{rm}]"] = float(P[i, j])
    for r, rn in enumerate(REGIMES):
        p[f"regime_stationary[{rn}]"] = float(pi[r])
    for r, rn in enumerate(REGIMES):
        p[f"sigma_diffusion_bps[{rn}]"] = float(sig[r])
    for r, rn in enumerate(REGIMES):
        p[f"sigma_bps[{rn}]"] = float(math.sqrt(sig_tot2[r]))
    for r, rn in enumerate(REGIMES):
        p[f"rv_mean[{rn}]"] = float(sig_tot2[r] * cfg.observation.bar_seconds * 1e-8)
    for r, rn in enumerate(REGIMES):
        p[f"half_spread_bps[{rn}]"] = float(hs[r])
    for r, rn in enumerate(REGIMES):
        for s, sn in enumerate(SIDES):
            p[f"alpha_gen_scale[{rn},{sn}]"] = float(a[r, s])
    derived = {
        "count_variance_per_s": {
            rn: (inv @ np.diag(A[r]) @ inv.T).tolist() for r, rn in enumerate(REGIMES)},
        "jump_margin_bps": margin.tolist(),
        "informed_depth_rate": kp.tolist(),
        "spectral_radius": float(max(abs(np.linalg.eigvals(n)))),
    }
    return {"params": p, "derived": derived, "regime_stationary": pi.tolist(),
            "regime_transition": P.tolist()}


# --------------------------------------------------------------------------- simulation
def markov_path(rng: np.random.Generator, P: np.ndarray, pi: np.ndarray,
                n_bars: int) -> np.ndarray:
    """Markov chain path (int8) of n_bars steps, the first drawn from pi (inverse
    CDF of one uniform per step; also the regime model's simulator)."""
    cum = np.cumsum(P, axis=1)
    cum[:, -1] = 1.0
    u = rng.random(n_bars)
    path = np.empty(n_bars, dtype=np.int8)
    cpi = np.cumsum(pi)
    cpi[-1] = 1.0
    r = int(np.searchsorted(cpi, u[0], side="right"))
    path[0] = r
    for k in range(1, n_bars):
        r = int(np.searchsorted(cum[r], u[k], side="right"))
        path[k] = r
    return path


def simulate_hawkes_arrivals(rng, T: float, bar_s: float, path: np.ndarray, mu: np.ndarray,
                             n: np.ndarray, beta) -> tuple[np.ndarray, np.ndarray]:
    """Exact cluster (branching) simulation of the bivariate exponential Hawkes process
    on [0, T) with baseline mu[regime, side] piecewise constant on bars of ``bar_s``
    (regime ``path[k]`` on bar k), branching n[target, source] and decay beta; or the
    M-component kernel with ``n`` (M, 2, 2) and ``beta`` (M,) (the same draws as the
    one-component call when M = 1). Returns sorted times (s) and side indices (0 buy,
    1 sell). Also used by `models.hawkes.simulate` and `models.hawkes.simulate_components`."""
    n = np.asarray(n, float)
    n, beta = (n, np.asarray(beta, float)) if n.ndim == 3 else (n[None], np.array([float(beta)]))
    n_bars = len(path)
    b0 = bar_s * np.arange(n_bars)
    blen = np.minimum(bar_s, T - b0)
    ts, ss = [], []
    for s in range(2):
        cnt = rng.poisson(mu[path, s] * blen)
        t = np.repeat(b0, cnt) + rng.random(int(cnt.sum())) * np.repeat(blen, cnt)
        ts.append(t)
        ss.append(np.full(len(t), s, dtype=np.int8))
    par_t, par_s = np.concatenate(ts), np.concatenate(ss)
    all_t, all_s = [par_t], [par_s]
    while len(par_t):
        kt, ks = [], []
        for m in range(len(beta)):
            for target in range(2):
                cnt = rng.poisson(n[m, target, par_s])
                t = np.repeat(par_t, cnt) + rng.exponential(1.0 / beta[m], int(cnt.sum()))
                keep = t < T
                kt.append(t[keep])
                ks.append(np.full(int(keep.sum()), target, dtype=np.int8))
        par_t, par_s = np.concatenate(kt), np.concatenate(ks)
        all_t.append(par_t)
        all_s.append(par_s)
    t, s = np.concatenate(all_t), np.concatenate(all_s)
    order = np.argsort(t, kind="stable")
    return t[order], s[order]


def simulate_market(seed: int, duration_s: float = 3600.0,
                    config: SyntheticConfig | None = None) -> Market:
    """Simulate the synthetic market (docs/data/synthetic.md) for ``duration_s`` seconds.

    Deterministic in (seed, duration_s, config). Returns a validated Market with
    ``truth`` (the truth.json dict) and ``meta['truth_arrivals']``: a DataFrame
    with the generator's per-arrival facts (ts, side, regime, depth_bps, informed,
    jump_bps), for tests and diagnostics; it is not written to disk.
    """
    cfg = config or SyntheticConfig()
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
    T = float(duration_s)
    B = cfg.bar_seconds
    B_ns, G_ns, T_ns = round(B * NS), round(cfg.grid_seconds * NS), round(T * NS)
    n_bars = max(1, math.ceil(T / B))
    P = np.asarray(cfg.regime_transition, dtype=float)
    pi = cfg.stationary()
    path = markov_path(rng, P, pi, n_bars)

    # arrivals
    t_s, s_idx = simulate_hawkes_arrivals(rng, T, B, path, cfg.hawkes_baseline(), cfg.branching(),
                         cfg.hawkes_decay)
    a_ns = np.floor(t_s * NS).astype(np.int64)
    # unique, >= 2 ns apart, >= 2 ns after start (room for the pre-sweep quote)
    i2 = 2 * np.arange(len(a_ns), dtype=np.int64)
    a_ns = np.maximum.accumulate(np.maximum(a_ns, 2) - i2) + i2
    keep = a_ns < T_ns
    a_ns, s_idx = a_ns[keep], s_idx[keep]
    na = len(a_ns)
    a_reg = path[np.minimum(a_ns // B_ns, n_bars - 1)]
    kap = cfg.kappas()[a_reg, s_idx]
    D = rng.exponential(1.0 / kap)
    a_gen = cfg.alpha_gen_scale()[a_reg, s_idx]
    informed = rng.random(na) < a_gen * np.exp(-D / cfg.alpha_decay_bps)
    margin = cfg.jump_margin_bps()[a_reg]
    X = rng.exponential(cfg.jump_extra_mean_bps, na)
    J = D + cfg.observation.informed_threshold_bps + margin + X
    sign = SIDE_SIGN[s_idx].astype(float)

    # timeline of quote points: (ns, kind) kind 0 grid, 1 pre-sweep, 2 post-jump
    g_ns = G_ns * np.arange(T_ns // G_ns + 1, dtype=np.int64)
    inf_idx = np.flatnonzero(informed)
    pt_ns = np.concatenate([g_ns, a_ns - 1, a_ns[inf_idx]])
    pt_kind = np.concatenate([np.zeros(len(g_ns), np.int8), np.ones(na, np.int8),
                              np.full(len(inf_idx), 2, np.int8)])
    pt_jump = np.concatenate([np.zeros(len(g_ns) + na), sign[inf_idx] * J[inf_idx] * 1e-4])
    pt_arr = np.concatenate([np.full(len(g_ns), -1), np.arange(na), inf_idx])
    order = np.lexsort((pt_kind, pt_ns))
    pt_ns, pt_kind, pt_jump, pt_arr = pt_ns[order], pt_kind[order], pt_jump[order], pt_arr[order]
    sig = np.asarray(cfg.sigma_bps, dtype=float) * 1e-4
    reg_pt = path[np.minimum(pt_ns // B_ns, n_bars - 1)]
    dt = np.diff(pt_ns) / NS
    incr = np.zeros(len(pt_ns))
    incr[1:] = sig[reg_pt[:-1]] * np.sqrt(dt) * rng.standard_normal(len(dt))
    logm = math.log(cfg.price0) + np.cumsum(incr + pt_jump)
    oi_table, cascades = None, None
    if cfg.open_interest is not None:
        oi_rng = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(1)[0])
        oi_table, cascades, move = _open_interest(oi_rng, cfg.open_interest, T, pt_ns)
        logm = logm + move
    mid = np.exp(logm)
    hs = np.asarray(cfg.half_spread_bps, dtype=float)[reg_pt] * 1e-4
    nq = len(pt_ns)
    qsize = cfg.quote_size_median * np.exp(cfg.size_log_sd * rng.standard_normal((nq, 2)))
    quotes = pd.DataFrame({
        "ts": pt_ns + cfg.start_ns,
        "bid": mid * (1.0 - hs),
        "ask": mid * (1.0 + hs),
        "bid_size": qsize[:, 0],
        "ask_size": qsize[:, 1],
    })

    # trades: sweeps priced off the pre-sweep mid
    pre_pos = np.empty(na, dtype=np.int64)
    is_pre = pt_kind == 1
    pre_pos[pt_arr[is_pre]] = np.flatnonzero(is_pre)
    m_pre = mid[pre_pos]
    hs_a = np.asarray(cfg.half_spread_bps, dtype=float)[a_reg]
    k = np.where(D <= hs_a, 1,
                 np.minimum(cfg.max_prints,
                            1 + np.ceil((D - hs_a) / cfg.print_spacing_bps))).astype(np.int64)
    nt = int(k.sum())
    owner = np.repeat(np.arange(na), k)
    first = np.cumsum(k) - k
    j = np.arange(nt) - first[owner]
    kk = k[owner]
    frac = np.where(kk > 1, j / np.maximum(kk - 1, 1), 1.0)
    depth = np.where(kk > 1, hs_a[owner] + frac * (D[owner] - hs_a[owner]), D[owner])
    depth[first + k - 1] = D  # the last print is exactly at D
    tprice = m_pre[owner] * (1.0 + sign[owner] * depth * 1e-4)
    tsize = cfg.trade_size_median * np.exp(cfg.size_log_sd * rng.standard_normal(nt))
    trades = pd.DataFrame({
        "ts": a_ns[owner] + cfg.start_ns,
        "price": tprice,
        "size": tsize,
        "side": SIDE_SIGN[s_idx][owner],
        "trade_id": np.arange(nt, dtype=np.int64),
    })
    trades = validate_trades(trades)
    quotes = validate_quotes(quotes)

    truth = _truth(cfg)
    counts: dict[str, int] = {"trades": nt, "quotes": nq, "arrivals": na,
                              "informed_arrivals": int(informed.sum()), "bars": n_bars}
    books, queue = None, None
    if cfg.queues is not None:
        q_rng = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(2)[1])
        books, queue = simulate_queues(q_rng, cfg.queues, cfg.observation, quotes, trades, path, B,
                                       cfg.start_ns, T)
        books = validate_books(books)
        o = cfg.observation
        truth["params"].update(queue_truth_params(cfg.queues, o.repost_interval_s, o.markout_horizons_s))
        counts["books"] = len(books)
        counts["queue_orders"] = len(queue)
        counts["queue_fills"] = int(queue["filled"].sum())
    if cascades is not None:
        truth["params"]["cascade_oi_threshold"] = float(cfg.open_interest.threshold)
        truth["derived"]["cascades"] = cascades
        counts["open_interest"] = len(oi_table)
        counts["cascades"] = len(cascades["time_s"])
        counts["cascades_triggered"] = int(sum(cascades["triggered"]))
        oi_table = validate_open_interest(oi_table.assign(ts=oi_table["ts"] + cfg.start_ns))
    for s, sn in enumerate(SIDES):
        counts[f"arrivals[{sn}]"] = int((s_idx == s).sum())
    for r, rn in enumerate(REGIMES):
        counts[f"bars[{rn}]"] = int((path == r).sum())
    doc: dict[str, Any] = {
        "format": TRUTH_FORMAT,
        "format_version": TRUTH_FORMAT_VERSION,
        "asset": cfg.asset,
        "source": "synthetic",
        "seed": int(seed),
        "duration_s": T,
        "start_ns": int(cfg.start_ns),
        "regimes": list(REGIMES),
        "sides": {"buy": "aggressor bought (trade side +1); fills passive asks",
                  "sell": "aggressor sold (trade side -1); fills passive bids"},
        "units": {"depth": "bps of mid", "time": "s", "sigma": "bps/sqrt(s)",
                  "kappa": "1/bps", "rates": "events/s", "price": "quote currency",
                  "rv": "squared log-return per bar"},
        "bar_seconds": B,
        "regime_transition": truth["regime_transition"],
        "regime_stationary": truth["regime_stationary"],
        "regime_path": [int(x) for x in path],
        "params": truth["params"],
        "derived": truth["derived"],
        "config": cfg.config_doc(),
        "observation_config": cfg.observation.model_dump(mode="json"),
        "counts": counts,
    }
    meta = {"truth_arrivals": pd.DataFrame({
        "ts": a_ns + cfg.start_ns, "side": SIDE_SIGN[s_idx], "regime": a_reg,
        "depth_bps": D, "informed": informed, "jump_bps": np.where(informed, J, 0.0)})}
    if queue is not None:
        meta["queue_orders"] = queue
    return Market(asset=cfg.asset, source="synthetic", trades=trades, quotes=quotes, books=books,
                  truth=doc, meta=meta, open_interest=oi_table)


def _open_interest(rng: np.random.Generator, oc: OpenInterestConfig, T: float,
                   pt_ns: np.ndarray) -> tuple[pd.DataFrame, dict[str, list], np.ndarray]:
    """Open-interest snapshots (ts from the start, ns), the cascades, and the cascade
    moves of log-mid at the quote points ``pt_ns`` (docs/data/synthetic.md, step 6)."""
    n_c = int(rng.poisson(oc.cascade_rate_per_hour * T / 3600.0))
    t_c = np.sort(rng.random(n_c)) * max(T - oc.move_seconds, 0.0)
    F = np.exp(rng.uniform(math.log(oc.drop_min), math.log(oc.drop_max), n_c))
    sign = np.where(rng.random(n_c) < 0.5, 1.0, -1.0)
    M = oc.move_bps + rng.exponential(oc.move_extra_mean_bps, n_c) if oc.move_extra_mean_bps > 0 \
        else np.full(n_c, oc.move_bps)
    trig = F >= oc.threshold
    I_ns = round(oc.interval_s * NS)
    k = np.arange(int(round(T * NS)) // I_ns + 1, dtype=np.int64)
    s_ns = k * I_ns
    c_ns = np.floor(t_c * NS).astype(np.int64)
    # the drop of cascade c enters the first snapshot at or after it
    kc = -(-c_ns // I_ns)
    shock = np.bincount(np.minimum(kc, len(k) - 1), weights=np.log1p(-F), minlength=len(k))
    phi = math.exp(-oc.interval_s / oc.reversion_s)
    eps = oc.noise_sd * rng.standard_normal(len(k))
    eps[0] = 0.0
    x = lfilter([1.0], [1.0, -phi], eps + shock)  # x_k = phi x_{k-1} + eps_k + shock_k
    table = pd.DataFrame({"ts": s_ns, "oi": oc.oi0 * np.exp(x)})
    t_pt = pt_ns / NS
    move = np.zeros(len(pt_ns))
    for tc, e, m in zip(t_c[trig], sign[trig], M[trig]):
        move += e * m * 1e-4 * np.clip((t_pt - tc) / oc.move_seconds, 0.0, 1.0)
    cascades = {"time_s": t_c.tolist(), "drop": F.tolist(), "triggered": trig.tolist(),
                "move_bps": np.where(trig, sign * M, 0.0).tolist()}
    return table, cascades, move
