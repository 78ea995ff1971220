"""Market-order arrivals for the Hawkes model: :class:`HawkesObs`, :func:`combine`,
:func:`observations` (a market -> arrivals, DESIGN.md section 3), the known
parameters :class:`HawkesTruth` and the exact simulation :func:`simulate`.

Times in seconds from each asset's window start; rates in events/s; sides 0 buy /
1 sell (the aggressor), regimes 0..3 (``mm_runtime.vocabulary.REGIMES``).
Model and derivations: docs/models/hawkes.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from mm_runtime.vocabulary import NS, REGIMES, SIDES
from models.data.gaps import find_gaps, gap_seconds_before
from models.data.observations import ObservationConfig
from models.data.synthetic import simulate_hawkes_arrivals


@dataclass(frozen=True, eq=False)
class HawkesObs:
    """Market-order arrivals of one or several assets, ready for the likelihood.

    Events are concatenated asset by asset (``asset`` non-decreasing), each
    asset's events in time order. Times are seconds from the asset's window
    start; the window is ``[0, duration_s[a]]``. The regime path is piecewise
    constant: bar ``k`` of asset ``a`` starts at ``bar_edges[a][k]`` (seconds,
    the first is 0) and lasts until the next edge (the last bar until the end
    of the window), with regime ``bar_regime[a][k]`` (0..3).

    Attributes: ``t`` (float64 s), ``side`` (int8, 0 buy / 1 sell), ``asset``
    (int32 index into ``assets``), ``regime`` (int8, the regime of the bar that
    contains the event), ``duration_s`` (float64 per asset), ``bar_edges``,
    ``bar_regime`` (tuples, one array per asset), ``start_ns`` (window start per
    asset, int ns UTC, 0 for simulations), ``meta``. Soft regimes (optional):
    ``bar_prob`` (one (n_bars, 4) array of regime probabilities per asset; ``bar_regime``
    is then their most probable regime): the baseline at time t is
    ``sum_r p_r(t) mu[r, s]`` (docs/models/regime_soft.md); None = one-hot.
    """

    assets: tuple[str, ...]
    t: np.ndarray
    side: np.ndarray
    asset: np.ndarray
    regime: np.ndarray
    duration_s: np.ndarray
    bar_edges: tuple[np.ndarray, ...]
    bar_regime: tuple[np.ndarray, ...]
    start_ns: tuple[int, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    bar_prob: tuple[np.ndarray, ...] | None = None

    def __post_init__(self) -> None:
        A = len(self.assets)
        t, side, asset, regime = self.t, self.side, self.asset, self.regime
        if self.bar_prob is not None:
            bp = tuple(np.asarray(p, dtype=float) for p in self.bar_prob)
            if len(bp) != A or any(p.shape != (len(r), len(REGIMES)) or np.any(p < 0)
                                   or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6)
                                   for p, r in zip(bp, self.bar_regime)):
                raise ValueError("bar_prob needs one (n_bars, 4) array of probabilities per asset")
            object.__setattr__(self, "bar_prob", bp)
        if A == 0:
            raise ValueError("HawkesObs needs at least one asset")
        if len(set(self.assets)) != A:
            raise ValueError(f"duplicate asset names {self.assets}")
        N = len(t)
        if not (len(side) == len(asset) == len(regime) == N):
            raise ValueError("t, side, asset and regime must have the same length")
        if len(self.duration_s) != A or len(self.bar_edges) != A or len(self.bar_regime) != A:
            raise ValueError("duration_s, bar_edges and bar_regime need one entry per asset")
        if not np.all(np.isfinite(t)):
            raise ValueError("event times must be finite")
        if N and (asset.min() < 0 or asset.max() >= A):
            raise ValueError("asset index out of range")
        if np.any(np.diff(asset) < 0):
            raise ValueError("events must be grouped by asset (asset index non-decreasing)")
        counts = np.bincount(asset, minlength=A)
        if np.any(counts == 0):
            empty = [self.assets[a] for a in np.flatnonzero(counts == 0)]
            raise ValueError(f"asset(s) {empty} have no arrivals")
        same = asset[1:] == asset[:-1]
        if np.any(np.diff(t)[same] < 0):
            raise ValueError("event times must be sorted within each asset")
        if np.any(~np.isin(side, (0, 1))):
            raise ValueError("side must be 0 (buy) or 1 (sell)")
        if np.any((regime < 0) | (regime >= len(REGIMES))):
            raise ValueError(f"regime must be in 0..{len(REGIMES) - 1}")
        for a in range(A):
            T = float(self.duration_s[a])
            e = np.asarray(self.bar_edges[a], dtype=float)
            r = np.asarray(self.bar_regime[a])
            if not (math.isfinite(T) and T > 0):
                raise ValueError(f"duration_s of {self.assets[a]!r} must be > 0")
            if len(e) == 0 or len(e) != len(r) or e[0] != 0.0 or np.any(np.diff(e) <= 0):
                raise ValueError(f"bar_edges of {self.assets[a]!r} must start at 0, increase, "
                                 "and match bar_regime")
            ta = t[asset == a]
            if ta[0] < 0 or ta[-1] > T:
                raise ValueError(f"events of {self.assets[a]!r} outside the window [0, {T}] s")

    @property
    def n_events(self) -> int:
        return int(len(self.t))

    @property
    def n_assets(self) -> int:
        return len(self.assets)

    def select(self, asset: str) -> HawkesObs:
        """The observations of one asset."""
        a = self.assets.index(asset)
        m = self.asset == a
        return HawkesObs(
            assets=(asset,), t=self.t[m], side=self.side[m], asset=np.zeros(int(m.sum()), np.int32),
            regime=self.regime[m], duration_s=self.duration_s[a:a + 1],
            bar_edges=(self.bar_edges[a],), bar_regime=(self.bar_regime[a],),
            start_ns=(self.start_ns[a],) if self.start_ns else (), meta=dict(self.meta),
            bar_prob=None if self.bar_prob is None else (self.bar_prob[a],))

    @property
    def soft(self) -> bool:
        """Whether some bar's regime is uncertain (a probability strictly between 0 and 1)."""
        return self.bar_prob is not None and any(bool(np.any((p > 0) & (p < 1))) for p in self.bar_prob)

    def bar_weights(self, a: int) -> np.ndarray:
        """(n_bars, 4) regime probabilities of asset ``a``'s bars (one-hot without ``bar_prob``)."""
        if self.bar_prob is None:
            return np.eye(len(REGIMES))[np.asarray(self.bar_regime[a], dtype=int)]
        return self.bar_prob[a]

    def event_prob(self) -> np.ndarray:
        """(N, 4) regime probabilities of the bar of each event."""
        out = np.zeros((self.n_events, len(REGIMES)))
        for a in range(self.n_assets):
            m = self.asset == a
            e = np.asarray(self.bar_edges[a], dtype=float)
            k = np.clip(np.searchsorted(e, self.t[m], side="right") - 1, 0, len(e) - 1)
            out[m] = self.bar_weights(a)[k]
        return out

    def regime_time(self) -> np.ndarray:
        """(A, 4) seconds each asset's window spends in each regime (with soft regimes
        the bars' lengths weighted by their regime probabilities)."""
        out = np.zeros((self.n_assets, len(REGIMES)))
        for a in range(self.n_assets):
            e = np.asarray(self.bar_edges[a], dtype=float)
            T = float(self.duration_s[a])
            ln = np.clip(np.minimum(np.append(e[1:], T), T) - e, 0.0, None)
            if self.bar_prob is None:
                out[a] = np.bincount(np.asarray(self.bar_regime[a], dtype=int), weights=ln, minlength=len(REGIMES))
            else:
                out[a] = ln @ self.bar_prob[a]
        return out

    def empirical_rates(self) -> np.ndarray:
        """(A, 2) events/s per asset and side over the whole window."""
        cnt = np.zeros((self.n_assets, 2))
        np.add.at(cnt, (self.asset, self.side.astype(int)), 1.0)
        return cnt / np.asarray(self.duration_s, dtype=float)[:, None]


def combine(*obs: HawkesObs) -> HawkesObs:
    """Concatenate the assets of several :class:`HawkesObs` (names must differ)."""
    assets: list[str] = []
    parts = []
    off = 0
    for o in obs:
        assets.extend(o.assets)
        parts.append((o, off))
        off += o.n_assets
    return HawkesObs(
        assets=tuple(assets),
        t=np.concatenate([o.t for o, _ in parts]),
        side=np.concatenate([o.side for o, _ in parts]).astype(np.int8),
        asset=np.concatenate([o.asset + k for o, k in parts]).astype(np.int32),
        regime=np.concatenate([o.regime for o, _ in parts]).astype(np.int8),
        duration_s=np.concatenate([o.duration_s for o, _ in parts]).astype(float),
        bar_edges=tuple(e for o, _ in parts for e in o.bar_edges),
        bar_regime=tuple(r for o, _ in parts for r in o.bar_regime),
        start_ns=tuple(s for o, _ in parts for s in (o.start_ns or (0,) * o.n_assets)),
        meta={"combined": [o.meta for o, _ in parts]},
        bar_prob=None if all(o.bar_prob is None for o, _ in parts)
        else tuple(o.bar_weights(a) for o, _ in parts for a in range(o.n_assets)),
    )


def observations(market, regimes: Any = None, *, config: ObservationConfig | None = None,
                 bars=None) -> HawkesObs:
    """Arrivals of one market as :class:`HawkesObs` (DESIGN.md section 3 rules).

    * Arrivals: :func:`models.data.observations.arrivals` (one arrival per sweep:
      consecutive trade rows with the same ts and side), columns ``ts`` (int64 ns)
      and ``side`` (+1 buy -> index 0, -1 sell -> index 1).
    * Window: from the first volatility bar's start (the first quote) to
      ``market.end_ns``; times are seconds from that start (exact: int ns
      differences divided by 1e9).
    * Regimes: ``regimes`` is what :func:`models.data.observations.label_regimes`
      accepts -- None (placeholder quantile labelling until the HMM is fitted), one
      int per bar (e.g. a Viterbi path or the synthetic truth's ``regime_path``),
      or (n_bars x 4) smoothed probabilities: kept as ``bar_prob`` (soft regimes: the
      baseline mixes the regimes' baselines with the bar's probabilities), the most
      probable regime as ``bar_regime``.
      ``bars`` defaults to :func:`volatility_bars(market, config)` (``config``: the
      observation rules, default :class:`ObservationConfig`; only the bar rules
      concern arrivals). An event's regime is that of the bar containing it (bars
      are ``[start, end)``, the last one extends to the end of the data).
    """
    from models.data import observations as ob

    arr = ob.arrivals(market)
    if bars is None:
        bars = ob.volatility_bars(market, config)
    reg = ob.label_regimes(bars, regimes)
    prob = ob.regime_weights(bars, regimes) if regimes is not None and np.asarray(regimes).ndim == 2 else None
    start = bars["bar_start"].to_numpy(dtype=np.int64)
    t0 = int(start[0])
    end = int(market.end_ns)
    ts = arr["ts"].to_numpy(dtype=np.int64)
    keep = ts >= t0
    ts = ts[keep]
    side = np.where(arr["side"].to_numpy()[keep] > 0, 0, 1).astype(np.int8)
    regime = ob.regime_at(ts, bars, reg)
    reg = np.asarray(reg, dtype=np.int8)
    t, edges, duration = (ts - t0) / NS, (start - t0) / NS, (end - t0) / NS
    gaps = find_gaps(market, config)
    gaps = gaps[(gaps["end_ns"] > t0) & (gaps["start_ns"] < end)]
    if len(gaps):
        # the observed clock: a recording gap takes no time (docs/models/hawkes.md, "Recording gaps")
        t = t - gap_seconds_before(gaps, ts)
        w = edges - gap_seconds_before(gaps, start)
        duration -= float(gap_seconds_before(gaps, np.array([end]))[0])
        keep_bar = np.append(np.diff(w) > 0, w[-1] < duration)
        keep_bar[0] = True
        edges, reg = w[keep_bar], reg[keep_bar]
        prob = None if prob is None else prob[keep_bar]
    return HawkesObs(
        assets=(str(market.asset),),
        t=t,
        side=side,
        asset=np.zeros(len(ts), np.int32),
        regime=regime.astype(np.int8),
        duration_s=np.array([duration]),
        bar_edges=(edges,),
        bar_regime=(reg,),
        bar_prob=None if prob is None else (prob,),
        start_ns=(t0,),
        meta={"source": getattr(market, "source", None), "dropped_before_window": int((~keep).sum()),
              "bar_seconds": float(bars.attrs.get("bar_seconds", 10.0)),
              **({"gaps_ns": [[int(a), int(b)] for a, b in zip(gaps["start_ns"], gaps["end_ns"])]}
                 if len(gaps) else {})},
    )


# =========================================================================== truth & simulation
class HawkesTruth(BaseModel):
    """Known parameters and regime path for :func:`simulate`.

    ``baseline[r][s]`` events/s (regime x side), ``branching[target][source]``,
    ``decay`` 1/s, ``regime_path`` one regime index per bar of ``bar_seconds``,
    ``duration_s`` (default: the path's length).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    baseline: tuple[tuple[float, float], ...]
    branching: tuple[tuple[float, float], tuple[float, float]]
    decay: float
    regime_path: tuple[int, ...]
    bar_seconds: float = 10.0
    duration_s: float | None = None
    asset: str = "SIM"

    @field_validator("baseline")
    @classmethod
    def _four(cls, v):
        if len(v) != len(REGIMES) or any(len(row) != 2 or min(row) <= 0 for row in v):
            raise ValueError("baseline must be 4 regimes x 2 sides of positive rates")
        return v

    @model_validator(mode="after")
    def _check(self):
        n = np.asarray(self.branching, dtype=float)
        if np.any(n < 0) or spectral_radius(n) >= 1:
            raise ValueError("branching must be >= 0 with spectral radius < 1")
        if not (self.decay > 0 and self.bar_seconds > 0 and len(self.regime_path) > 0):
            raise ValueError("decay and bar_seconds must be > 0 and regime_path non-empty")
        if min(self.regime_path) < 0 or max(self.regime_path) >= len(REGIMES):
            raise ValueError("regime_path entries must be 0..3")
        if self.duration_s is not None and not (0 < self.duration_s <= self.bar_seconds * len(self.regime_path)):
            raise ValueError("duration_s must be in (0, bar_seconds * len(regime_path)]")
        return self

    @property
    def T(self) -> float:
        return float(self.duration_s if self.duration_s is not None
                     else self.bar_seconds * len(self.regime_path))

    def params(self) -> dict[str, np.ndarray]:
        """``{"mu": (4, 2), "n": (2, 2), "beta": ()}`` arrays for the likelihoods."""
        return {"mu": np.asarray(self.baseline, float), "n": np.asarray(self.branching, float),
                "beta": np.asarray(self.decay, float)}

    def flat(self) -> dict[str, float]:
        """The DESIGN.md section 8 names: ``hawkes_baseline[low,buy]`` ..."""
        return params_to_flat(self.params())

    @classmethod
    def from_truth(cls, truth: Mapping[str, Any], asset: str | None = None) -> HawkesTruth:
        """From a synthetic market's ``truth.json`` dict (``params`` with the section 8
        names, ``regime_path``, ``bar_seconds``, ``duration_s``)."""
        p = truth["params"]
        base = tuple(tuple(float(p[f"hawkes_baseline[{r},{s}]"]) for s in SIDES) for r in REGIMES)
        br = tuple(tuple(float(p[f"hawkes_branching[{a},{b}]"]) for b in SIDES) for a in SIDES)
        return cls(baseline=base, branching=br, decay=float(p["hawkes_decay"]),
                   regime_path=tuple(int(x) for x in truth["regime_path"]),
                   bar_seconds=float(truth.get("bar_seconds", 10.0)),
                   duration_s=truth.get("duration_s"), asset=asset or truth.get("asset", "SIM"))


def spectral_radius(n: np.ndarray) -> float:
    return float(max(abs(np.linalg.eigvals(np.asarray(n, dtype=float)))))


def params_to_flat(params: Mapping[str, Any]) -> dict[str, float]:
    mu, n, beta = (np.asarray(params[k], float) for k in ("mu", "n", "beta"))
    out = {f"hawkes_baseline[{r},{s}]": float(mu[i, j]) for i, r in enumerate(REGIMES)
           for j, s in enumerate(SIDES)}
    out.update({f"hawkes_branching[{a},{b}]": float(n[i, j]) for i, a in enumerate(SIDES)
                for j, b in enumerate(SIDES)})
    out["hawkes_decay"] = float(beta)
    return out


def simulate(truth: HawkesTruth | Mapping[str, Any], rng: np.random.Generator | int | None = None) -> HawkesObs:
    """Exact simulation by the cluster (branching) representation (Hawkes & Oakes 1974).

    Immigrants of side s: a Poisson process of rate ``mu[r, s]`` piecewise constant
    per bar (Poisson count per bar, uniform times within it), so the regime switches
    are exact. Each event of side s' has Poisson(n[s, s']) children of side s at
    the parent's time + Exponential(beta) delay; generations repeat until none falls
    before the end of the window, vectorised per generation
    (:func:`models.data.synthetic.simulate_hawkes_arrivals`).
    """
    if not isinstance(truth, HawkesTruth):
        truth = HawkesTruth.from_truth(truth) if "params" in truth else HawkesTruth(**truth)
    rng = np.random.default_rng(rng)
    T = truth.T
    p = truth.params()
    mu, n, beta = p["mu"], p["n"], float(p["beta"])
    path = np.asarray(truth.regime_path, dtype=np.int8)
    B = truth.bar_seconds
    n_bars = int(math.ceil(T / B - 1e-12))
    path = path[:n_bars]
    b0 = B * np.arange(n_bars)
    t, s = simulate_hawkes_arrivals(rng, T, B, path, mu, n, beta)
    k = np.minimum((t // B).astype(np.int64), n_bars - 1)
    return HawkesObs(assets=(truth.asset,), t=t, side=s, asset=np.zeros(len(t), np.int32),
                     regime=path[k], duration_s=np.array([T]), bar_edges=(b0,),
                     bar_regime=(path,), start_ns=(0,),
                     meta={"truth": truth.flat(), "bar_seconds": B})



def simulate_components(mu: np.ndarray, n: np.ndarray, beta: np.ndarray, duration_s: float,
                        rng: np.random.Generator | int | None = None, *, bar_seconds: float = 10.0,
                        regime_path: Any = None, asset: str = "SIM") -> HawkesObs:
    """Exact cluster simulation (Hawkes & Oakes 1974) of the M-component kernel
    ``phi_{s,s'}(t) = sum_m n[m, s, s'] beta[m] e^{-beta[m] t}``: immigrants as
    :func:`simulate` (``mu[regime, side]`` per bar, regime ``regime_path[k]`` on bar k,
    default all 0); every event of side s' has Poisson(n[m, s, s']) children of side s per
    component m, each at the parent's time + Exponential(beta[m]). ``n`` (M, 2, 2),
    ``beta`` (M,) 1/s; requires rho(sum_m n[m]) < 1."""
    rng = np.random.default_rng(rng)
    mu, n, beta = (np.asarray(x, float) for x in (mu, n, beta))
    if n.ndim != 3 or n.shape[1:] != (2, 2) or beta.shape != (n.shape[0],):
        raise ValueError(f"n must be (M, 2, 2) and beta (M,), got {n.shape} and {beta.shape}")
    if spectral_radius(n.sum(axis=0)) >= 1.0:
        raise ValueError("the total branching matrix must have spectral radius < 1")
    T, B = float(duration_s), float(bar_seconds)
    n_bars = int(math.ceil(T / B - 1e-12))
    path = np.zeros(n_bars, np.int8) if regime_path is None else np.asarray(regime_path, np.int8)[:n_bars]
    b0 = B * np.arange(n_bars)
    t, s = simulate_hawkes_arrivals(rng, T, B, path, mu, n, beta)
    k = np.minimum((t // B).astype(np.int64), n_bars - 1)
    return HawkesObs(assets=(asset,), t=t, side=s, asset=np.zeros(len(t), np.int32), regime=path[k],
                     duration_s=np.array([T]), bar_edges=(b0,), bar_regime=(path,), start_ns=(0,),
                     meta={"truth_components": {"mu": mu.tolist(), "n": n.tolist(), "beta": beta.tolist()},
                           "bar_seconds": B})
