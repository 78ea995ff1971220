"""The Avellaneda–Stoikov (2008) market: a vectorized Monte Carlo check of the
accounting against a published table.

Setting (Avellaneda, M. & Stoikov, S. (2008), *High-frequency trading in a limit order
book*, Quantitative Finance 8(3), 217–224, §3.3 "Numerical simulations"):

* mid ``s`` moves by ``±σ√dt`` with probability 1/2 each step (a binomial walk);
* a resting quote at distance ``δ`` from the mid is hit during ``dt`` with
  probability ``λ(δ)·dt``, ``λ(δ) = A·exp(−k·δ)`` (clipped to [0, 1]);
* one unit per fill; profit = ``cash_T + q_T·s_T`` (:mod:`.accounting`, no fees).

Strategies (the paper's eq. 29–30, the "approximate" solution):

* ``inventory``: reservation price ``r = s − q·γ·σ²·(T − t)``, total spread
  ``δᵃ + δᵇ = γ·σ²·(T − t) + (2/γ)·ln(1 + γ/k)``, quotes ``r ± spread/2``;
* ``symmetric``: the same spread, centred on the mid ``s``.

Order of events within a step (the paper does not state it): quotes are set from
the state at ``t``; the mid moves; the arrivals of ``[t, t+dt]`` are then decided
against the new mid.  Deciding them against the old mid instead makes every profit
≈ 1.5 higher (γ = 0.1, 0.01) — more than the Monte Carlo error of the paper's table,
so the ordering is identifiable from it; see benchmarks/README.md.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np

from .accounting import apply_fills, mark_to_market

__all__ = ["ASParams", "ASResult", "PAPER_TABLE", "STRATEGIES", "simulate", "compare_to_paper", "paper_table"]

STRATEGIES = ("inventory", "symmetric")

PAPER_TABLE: dict[tuple[float, str], tuple[float, float, float, float, float]] = {
    # (γ, strategy): (spread, profit mean, profit std, final q mean, final q std)
    # Avellaneda & Stoikov (2008), §3.3, the three tables (1,000 simulations each).
    (0.1, "inventory"): (1.29, 62.94, 5.89, 0.10, 2.80),
    (0.1, "symmetric"): (1.29, 67.21, 13.43, -0.018, 8.66),
    (0.01, "inventory"): (1.33, 66.78, 8.76, -0.02, 4.70),
    (0.01, "symmetric"): (1.33, 67.36, 13.40, -0.31, 8.65),
    (1.0, "inventory"): (1.15, 33.92, 4.72, -0.02, 1.88),
    (1.0, "symmetric"): (1.15, 66.20, 14.53, 0.25, 9.06),
}
PAPER_PATHS = 1000


class ASParams(NamedTuple):
    """The paper's §3.3 parameters (defaults)."""

    s0: float = 100.0
    T: float = 1.0
    sigma: float = 2.0
    dt: float = 0.005
    k: float = 1.5
    A: float = 140.0
    q0: float = 0.0


class ASResult(NamedTuple):
    gamma: float
    strategy: str
    n_paths: int
    seed: int
    spread: float
    """Mean quoted spread (ask − bid) over steps and paths."""
    profit_mean: float
    profit_std: float
    final_q_mean: float
    final_q_std: float
    fills_mean: float
    seconds: float
    profit: np.ndarray
    final_q: np.ndarray

    def row(self) -> dict:
        """The table row (floats only, JSON-ready)."""
        return {k: (float(v) if isinstance(v, (float, np.floating)) else v)
                for k, v in self._asdict().items() if k not in ("profit", "final_q")}


def _check(gamma: float, strategy: str, n_paths: int, p: ASParams) -> None:
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a positive finite number, got {gamma!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if n_paths < 2:
        raise ValueError(f"paths must be at least 2, got {n_paths}")
    for name in ("T", "sigma", "dt", "k", "A"):
        v = getattr(p, name)
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be positive and finite, got {v!r}")
    if p.dt > p.T:
        raise ValueError(f"dt ({p.dt}) must not exceed T ({p.T})")


def simulate(gamma: float, strategy: str = "inventory", n_paths: int = 1000, seed: int = 0,
             params: ASParams = ASParams(), fixed_spread: float | None = None) -> ASResult:
    """Run ``n_paths`` independent paths of the paper's market for one strategy.

    ``fixed_spread``: quote this constant total spread instead of eq. (30)'s (a
    diagnostic: the paper's γ = 1 table reports a spread of 1.15, which eq. (30)
    cannot produce; see :data:`PAPER_TABLE`).

    Vectorized over paths (numpy; one loop over the ``T/dt`` steps): 1,000 paths ×
    200 steps take a few milliseconds.
    """
    p = params
    _check(gamma, strategy, n_paths, p)
    if fixed_spread is not None and not (math.isfinite(fixed_spread) and fixed_spread > 0):
        raise ValueError(f"fixed_spread must be a positive finite number, got {fixed_spread!r}")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    n_steps = int(round(p.T / p.dt))
    s = np.full(n_paths, p.s0)
    q = np.full(n_paths, p.q0)
    cash = np.zeros(n_paths)
    fills = np.zeros(n_paths)
    half_base = math.log1p(gamma / p.k) / gamma  # (1/γ)·ln(1 + γ/k)
    step = p.sigma * math.sqrt(p.dt)
    spread_sum = 0.0
    for i in range(n_steps):
        tau = p.T - i * p.dt
        half = 0.5 * gamma * p.sigma**2 * tau + half_base if fixed_spread is None else 0.5 * fixed_spread
        centre = s - q * gamma * p.sigma**2 * tau if strategy == "inventory" else s
        bid, ask = centre - half, centre + half
        spread_sum += 2.0 * half
        u = rng.random((3, n_paths))
        s = s + np.where(u[0] < 0.5, step, -step)
        p_bid = np.clip(p.A * np.exp(-p.k * (s - bid)) * p.dt, 0.0, 1.0)
        p_ask = np.clip(p.A * np.exp(-p.k * (ask - s)) * p.dt, 0.0, 1.0)
        hit_bid = (u[1] < p_bid).astype(float)  # a market sell hits our bid: we buy 1
        hit_ask = (u[2] < p_ask).astype(float)  # a market buy lifts our ask: we sell 1
        cash, q = apply_fills(cash, q, bid, hit_bid)
        cash, q = apply_fills(cash, q, ask, -hit_ask)
        fills += hit_bid + hit_ask
    profit = mark_to_market(cash, q, s)
    return ASResult(
        gamma=float(gamma), strategy=strategy, n_paths=n_paths, seed=seed,
        spread=spread_sum / n_steps,
        profit_mean=float(profit.mean()), profit_std=float(profit.std(ddof=1)),
        final_q_mean=float(q.mean()), final_q_std=float(q.std(ddof=1)),
        fills_mean=float(fills.mean()), seconds=time.perf_counter() - t0,
        profit=profit, final_q=q,
    )


def compare_to_paper(res: ASResult) -> dict:
    """The result next to the paper's row, with z-scores of the differences.

    Each z is (ours − paper) / the standard error of the difference of two
    independent Monte Carlo estimates (ours with ``res.n_paths`` paths, the paper's
    with 1,000): for a mean ``sd·√(1/n₁ + 1/n₂)``, for a standard deviation
    ``sd·√(1/(2n₁) + 1/(2n₂))`` (the normal-theory SE of a sample sd).  ``|z| <= 3``
    on a row is agreement within Monte Carlo error.
    """
    key = (float(res.gamma), res.strategy)
    if key not in PAPER_TABLE:
        raise ValueError(f"the paper has no row for gamma={res.gamma}, strategy={res.strategy}; "
                         f"rows: {sorted(PAPER_TABLE)}")
    spread, pm, ps, qm, qs = PAPER_TABLE[key]
    n1, n2 = res.n_paths, PAPER_PATHS
    se_mean = lambda sd: sd * math.sqrt(1 / n1 + 1 / n2)  # noqa: E731
    se_sd = lambda sd: sd * math.sqrt(1 / (2 * n1) + 1 / (2 * n2))  # noqa: E731
    z = {
        "profit_mean": (res.profit_mean - pm) / se_mean(max(ps, res.profit_std)),
        "profit_std": (res.profit_std - ps) / se_sd(max(ps, res.profit_std)),
        "final_q_mean": (res.final_q_mean - qm) / se_mean(max(qs, res.final_q_std)),
        "final_q_std": (res.final_q_std - qs) / se_sd(max(qs, res.final_q_std)),
    }
    return {
        "paper": {"spread": spread, "profit_mean": pm, "profit_std": ps, "final_q_mean": qm, "final_q_std": qs},
        "z": z,
        "max_abs_z": max(abs(v) for v in z.values()),
        "spread_diff": res.spread - spread,
    }


def paper_table(n_paths: int = 1000, seed: int = 0, params: ASParams = ASParams()) -> list[dict]:
    """Every (γ, strategy) row of the paper: ours, the paper's, and the z-scores."""
    rows = []
    for gamma in (0.1, 0.01, 1.0):
        for strategy in STRATEGIES:
            res = simulate(gamma, strategy, n_paths, seed, params)
            rows.append({**res.row(), **compare_to_paper(res)})
    return rows
