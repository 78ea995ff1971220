r"""Bivariate exponential-kernel Hawkes model of market-order arrivals (DESIGN.md section 4).

Model
-----
Sides ``s`` in {buy, sell} (the aggressor side of a market-order arrival; trade
side +1 = buy, index 0), regimes ``r`` in {low, normal, high, extreme} (index
0..3, piecewise constant on the regime model's bars, default 10 s). For one asset
observed on the window ``[0, T]`` (seconds from the window start)::

    lambda_s(t) = mu[r(t), s] + sum_{j: t_j < t} n[s, s_j] * beta * exp(-beta (t - t_j))

(Hawkes 1971; the bivariate exponential form of e.g. Bacry, Mastromatteo & Muzy
2015, "Hawkes processes in finance", section 2). ``mu`` (events/s) is the baseline
per regime x side, ``n[target, source]`` the branching matrix: the mean number of
``target`` arrivals directly triggered by one ``source`` arrival (the kernel
``beta e^{-beta t}`` integrates to 1), ``beta`` (1/s) the decay. The process is
stationary iff the spectral radius of ``n`` is < 1.

Log-likelihood (Daley & Vere-Jones 2003, eq. 7.1.2; Ozaki 1979 for the
exponential kernel)::

    log L = sum_i log lambda_{s_i}(t_i) - sum_s int_0^T lambda_s(u) du
    int_0^T lambda_s = sum_r mu[r, s] * D_r  +  sum_j n[s, s_j] (1 - exp(-beta (T - t_j)))

with ``D_r`` the time the window spends in regime ``r``.

O(N) evaluation (no O(N^2) double sum)
--------------------------------------
For each source side ``s'`` let ``X_i[s'] = sum_{j < i, s_j = s'} exp(-beta (t_i - t_j))``
(events in time order). It obeys the first-order linear recurrence (Ozaki 1979)::

    X_i = a_i * (X_{i-1} + e_{s_{i-1}}),   a_i = exp(-beta (t_i - t_{i-1})),   X_0 = 0

i.e. ``X_i = a_i X_{i-1} + c_i``; pairs ``(a, c)`` compose associatively,
``(a1, c1) o (a2, c2) = (a1 a2, a2 c1 + c2)`` (a scan, Blelloch 1990). The
compensator needs no per-event work: ``sum_{j: s_j = s'} e^{-beta (T - t_j)} =
e^{-beta (T - t_N)} Y_N[s']`` with ``Y_N = X_N + e_{s_N}`` the state just after
the last event. Implementation (:class:`BlockArrays`, :func:`_jax_sweep`):

* events are laid out in blocks of ``B`` consecutive events stored as ``(B, nb)``
  arrays (row ``j`` = the ``j``-th event of every block); the recurrence runs
  over the B rows with every step one vectorised pass over the nb blocks, the
  carry between blocks is a scan of length nb = N/B, and a second sweep over the
  rows with the right carry-in evaluates ``log lambda`` and accumulates. Nothing
  of size N is written; work is O(N), memory traffic two reads of the inputs.
* the gradient (13 parameters per asset) is computed in the same sweep by forward
  sensitivities, not autodiff: ``Z_i = -dX_i/dbeta`` obeys ``Z_i = a_i Z_{i-1} +
  dt_i X_i`` (same scan, 2x2 triangular transfer) and the mu and n derivatives are
  weighted sums of ``1/lambda_i``. ``loglik_jax`` carries it as a ``custom_vjp``,
  so ``jax.grad`` / ``jax.value_and_grad`` use it (~25 ms for 1e6 events on a
  loaded 2-core CPU, see ``benchmarks/bench_hawkes.py``; XLA's full-length
  ``associative_scan`` and reverse-mode through it were ~10x slower on CPU).
* the same block algorithm, written with pytensor ops (:func:`loglik_pt`: rows
  unrolled in the graph, the carry a ``pytensor.scan``), is the pure-graph
  alternative differentiated by pytensor; PyMC's model uses by default the JAX
  function wrapped as one Op (:class:`HawkesLogLikOp`).

*Why not logcumsumexp.* ``X_i = exp(logcumsumexp_{j<i}(beta t_j) - beta t_i)``
is the same quantity, but it subtracts two numbers of size ``beta t`` (up to 1e5..1e7
for a day of data) and so loses ``log10(beta T)`` digits (measured: 7e-13
relative error of the log-likelihood on a day at beta = 50/s, against 6e-15 for
the scan; pytensor has no logcumsumexp either). The scan only multiplies factors
in (0, 1] and adds positive terms computed from time *differences*: no
cancellation, relative error ~1e-15 against the O(N^2) reference.

Ties. Events with identical timestamps (a buy and a sell printed in the same
nanosecond; ``models.data.observations.arrivals`` already merges same-side rows
of one sweep) do **not** excite each other: the intensity uses
``S_i = X_i - K_i`` where ``K_i[s']`` counts the earlier events of side ``s'`` at
the same timestamp (within a tie group ``a = 1``, so ``X_i`` has picked each of
them up with weight exactly 1); ``S_i = sum_{j: t_j < t_i}`` exactly.

Pointwise terms (for LOO, :func:`pointwise_loglik_jax`). Per event
``l_i = log lambda_{s_i}(t_i) - int_{t_{i-1}}^{t_i} sum_s lambda_s`` (the first
event's interval starts at 0; the last event also carries ``int_{t_N}^T``), so that
``sum_i l_i = log L`` exactly: the excitation increment is ``sum_{s'} colsum(n)[s']
Y_{i-1}[s'] (1 - a_i)`` (``-expm1``), the baseline increment uses the time spent in
each regime inside ``(t_{i-1}, t_i]``. Computed with ``jax.lax.associative_scan``
(slower than the sweep, only evaluated once per draw after sampling). PSIS-LOO on
these one-step terms is an approximation for a point process (the terms are not
exchangeable); it serves to compare model versions on the same data.

Several assets. Events of all assets are concatenated (asset by asset, each in
time order from its own window start; each asset front-padded with inert events to
whole blocks); the recurrence is cut at each asset's first event (``a = 0``) and
every parameter is indexed by the event's asset, so one sweep serves all assets.

Parameterisation and priors (:func:`build_model`)
-------------------------------------------------
* Baseline: ``log mu[r, s] ~ Normal(m_s, tau)`` (partial pooling of the
  regimes), ``m_s ~ Normal(log(0.5 * empirical rate of side s), 1.5)`` (weakly
  informative, scaled by the data so any asset's units work; 0.5 because part of
  the flow is endogenous), ``tau ~ HalfNormal(1)`` (regimes differ by factors of a
  few). Sampling coordinates (one asset, ``baseline_parameterization="auto"``):
  whitened by each cell's conditional posterior under a normal approximation
  (:func:`models.sampling.whitened_normal`, and :func:`models.sampling.whitened_mean`
  for m_s), from the cell's crude estimate given the branching: ``N[r,s]`` events in
  ``D_r`` seconds hold ~``N (1 - rho(n))`` immigrants, so ``y = log(N / D_r) + log(1 -
  rho)`` with sd ``1 / sqrt(N (1 - rho))``. ``log mu = m + w (y - m) + h x`` (``w =
  tau^2/(tau^2 + sd^2)``, ``h = tau sd / sqrt(tau^2 + sd^2)``, x's prior the exact
  pushforward): non-centred for a regime without time in the window, centred (in
  units of sd) for cells the data pin, in between as tau moves, and the cells follow
  ``1 - rho`` when the branching moves (the baseline / branching ridge of a short
  window: the total rate mu/(1-n) is pinned, its split is not). Why: with the former
  rule (centred iff every occupied cell holds >= 100 events; the empty regime's cells
  centred too) 35 minutes of Hyperliquid BTC on the EM regime path (27/5/3 bars in
  normal/high/extreme, none low) gave 50 divergent transitions in 4 x 1000 draws, all
  in the funnel ``tau -> 0`` (tau's posterior runs from ~0.02 to ~0.6 with three
  regimes), 45 leapfrog steps per draw; whitened none in 4 seeds, 18 steps (without
  the ``1 - rho`` term 22.5 steps and 15-40 % less ESS). On one hour of simulated data
  with thousands of events per cell (where centring gave 8 leapfrog steps per draw
  against 66 non-centred) whitened takes 12.3 steps against 13.1 centred. With
  several assets ``auto`` keeps the former rule; ``"centered"`` / ``"non_centered"``
  force those forms.
* Branching matrix: the prior is ``n_ij iid Beta(1.5, 3)`` *truncated to the
  stationary region* ``{n in (0,1)^4 : rho(n) < 1}`` (mean 0.33 before
  truncation; the Beta keeps every entry in (0, 1), which is what the bundle's
  beta summaries need, and puts no mass at exactly 0). It is sampled through an
  exact smooth bijection ``R^4 -> {n in (0,1)^4 : rho(n) < 1}`` (so the sampler
  never sees a wall and no rejection/potential cliff exists). For a non-negative
  2x2 matrix, ``rho(n) < 1`` iff ``n00 < 1, n11 < 1`` and
  ``n01 n10 < (1 - n00)(1 - n11)``; with ``theta = (p0, p1, u, v)``::

      n00 = sigmoid(p0), n11 = sigmoid(p1)
      L = -log((1 - n00)(1 - n11)) = softplus(p0) + softplus(p1)
      s = L + exp(u),  f = sigmoid(v)
      n01 = exp(-f s), n10 = exp(-(1 - f) s)        (so n01 n10 = e^{-s} < e^{-L})

  The Beta log-densities of the four entries plus ``log |d n / d theta|`` enter as
  a ``pm.Potential`` (``hawkes_branching_prior``) on flat ``theta``: the implied
  prior on ``n`` is exactly the truncated Beta. (A potential is ignored by
  ``pm.sample_prior_predictive``; that is the only cost.)
* Decay: ``beta ~ LogNormal(log 1/s, 2)`` (95 % in 0.02..50 /s: from minutes to
  tens of milliseconds).
* Several assets (a thin asset borrows strength): ``log mu[a, r, s] = m_s +
  sigma_asset e[a, s] + tau z[r, s] + sigma_ar w[a, r, s]`` (shared regime
  pattern, asset level, small asset x regime interaction), ``theta_a = theta_pop
  + sigma_theta * z_a`` (the population ``theta_pop`` carries the truncated-Beta
  prior; each asset stays in the stationary region by construction), ``log beta_a
  = log beta_pop + sigma_beta z_a``; non-centred (the asset x regime cells are
  centred when they all hold >= 100 events, as above).

Likelihood inside PyMC: a ``pm.Potential`` (``hawkes_loglik``) on
:class:`HawkesLogLikOp`, the JAX sweep wrapped as one pytensor Op with its exact
gradient: ``perform`` calls the jitted function (PyMC's sampler), ``jax_funcify``
inlines it (NumPyro, nutpie's JAX backend; :func:`fit` switches nutpie to that
backend, since its numba backend could only call the Op in object mode). The
pointwise terms are added after sampling as the ``log_likelihood`` group.

Names (DESIGN.md section 8): ``hawkes_baseline[low,buy]`` (dims regime, side),
``hawkes_branching[buy,sell]`` (= n[target=buy, source=sell]), ``hawkes_decay``;
with several assets the asset is the first coordinate, e.g.
``hawkes_baseline[BTC,low,buy]``. :func:`summarize` (conjugate summaries) and
:func:`summary_draws` (the draws behind them) use the nested layout of
``mm_runtime.bundle`` (``{"hawkes_baseline": {regime: {side: ...}}, ...}``) and take
``asset=`` with several assets.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import mm_runtime  # noqa: E402,F401  (its import turns on float64 JAX: the likelihood is float64)

import pytensor.tensor as pt  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator  # noqa: E402
from pytensor.graph.basic import Apply  # noqa: E402
from pytensor.graph.op import Op  # noqa: E402
from pytensor.link.jax.dispatch import jax_funcify  # noqa: E402

from models.sampling import SamplerConfig, model_version, sample, whitened_mean, whitened_normal  # noqa: E402
from models.data.synthetic import simulate_hawkes_arrivals  # noqa: E402

from mm_runtime.vocabulary import NS, REGIMES, SIDES  # noqa: E402
MODEL_NAME = "hawkes"
_BRANCHING_COORDS = ("logit_n_buy_buy", "logit_n_sell_sell", "log_cross_margin", "logit_cross_balance")


# =========================================================================== observations
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
    asset, int ns UTC, 0 for simulations), ``meta``.
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

    def __post_init__(self) -> None:
        A = len(self.assets)
        t, side, asset, regime = self.t, self.side, self.asset, self.regime
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
            start_ns=(self.start_ns[a],) if self.start_ns else (), meta=dict(self.meta))

    def regime_time(self) -> np.ndarray:
        """(A, 4) seconds each asset's window spends in each regime."""
        out = np.zeros((self.n_assets, len(REGIMES)))
        for a in range(self.n_assets):
            e = np.asarray(self.bar_edges[a], dtype=float)
            T = float(self.duration_s[a])
            ln = np.clip(np.minimum(np.append(e[1:], T), T) - e, 0.0, None)
            out[a] = np.bincount(np.asarray(self.bar_regime[a], dtype=int), weights=ln,
                                 minlength=len(REGIMES))
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
    )


def observations(market, regimes: Any = None, bars=None, config=None) -> HawkesObs:
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
      or (n_bars x 4) smoothed probabilities (the most probable regime per bar).
      ``bars`` defaults to :func:`volatility_bars(market, config)`. An event's
      regime is that of the bar containing it (bars are ``[start, end)``, the last
      one extends to the end of the data).
    """
    from models.data import observations as ob

    arr = ob.arrivals(market)
    if bars is None:
        bars = ob.volatility_bars(market, config)
    reg = ob.label_regimes(bars, regimes)
    start = bars["bar_start"].to_numpy(dtype=np.int64)
    t0 = int(start[0])
    end = int(market.end_ns)
    ts = arr["ts"].to_numpy(dtype=np.int64)
    keep = ts >= t0
    ts = ts[keep]
    side = np.where(arr["side"].to_numpy()[keep] > 0, 0, 1).astype(np.int8)
    regime = ob.regime_at(ts, bars, reg)
    return HawkesObs(
        assets=(str(market.asset),),
        t=(ts - t0) / NS,
        side=side,
        asset=np.zeros(len(ts), np.int32),
        regime=regime.astype(np.int8),
        duration_s=np.array([(end - t0) / NS]),
        bar_edges=((start - t0) / NS,),
        bar_regime=(np.asarray(reg, dtype=np.int8),),
        start_ns=(t0,),
        meta={"source": getattr(market, "source", None), "dropped_before_window": int((~keep).sum()),
              "bar_seconds": float(bars.attrs.get("bar_seconds", 10.0))},
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
    before the end of the window. Vectorised per generation: ~1 s per 1e6 events.
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


# =========================================================================== likelihood
class LikArrays(NamedTuple):
    """Parameter-free arrays derived once from :class:`HawkesObs` (a JAX pytree).

    ``dt``: t_i - t_{i-1} within the asset (0 at an asset's first event);
    ``keep``: 0.0 at an asset's first event, else 1.0 (cuts the recurrence);
    ``prev``: (N, 2) one-hot side of the previous event (0 at the first);
    ``grp``: index of the first event of i's tie group, None without ties;
    ``mu_idx``: flat index (asset, regime, side) into mu (A, 4, 2);
    ``n_idx``: flat index of n[asset, side_i, source=0] in n (A, 2, 2);
    ``src_idx``: flat index (asset, source 0) into colsum(n) (A, 2), None for one asset;
    ``asset``: asset index (None for one asset);
    ``reg_dt``: (N, 4) seconds in each regime inside (t_{i-1}, t_i] (from 0 for
    the first); ``last``: (A,) index of each asset's last event; ``own_last``: (A, 2)
    one-hot side of it; ``tail``: (A,) T - t_last; ``tail_reg``: (A, 4) regime time
    in (t_last, T].
    """

    dt: np.ndarray
    keep: np.ndarray
    prev: np.ndarray
    grp: np.ndarray | None
    mu_idx: np.ndarray
    n_idx: np.ndarray
    src_idx: np.ndarray | None
    asset: np.ndarray | None
    reg_dt: np.ndarray
    last: np.ndarray
    own_last: np.ndarray
    tail: np.ndarray
    tail_reg: np.ndarray


def _regime_clock(edges: np.ndarray, regs: np.ndarray, T: float, x: np.ndarray):
    """Cumulative time in each regime on [0, x] (x sorted within [0, T]); also the bar of x."""
    R = len(REGIMES)
    ends = np.minimum(np.append(edges[1:], T), T)
    ln = np.clip(ends - edges, 0.0, None)
    onehot = np.zeros((len(edges), R))
    onehot[np.arange(len(edges)), regs.astype(int)] = 1.0
    cum = np.vstack([np.zeros(R), np.cumsum(onehot * ln[:, None], axis=0)])  # before bar k
    k = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 1)
    within = np.clip(x - edges[k], 0.0, ln[k])
    C = cum[k] + onehot[k] * within[:, None]
    return C, k


def prepare(obs: HawkesObs) -> LikArrays:
    """Precompute the parameter-free arrays of the likelihood (O(N log n_bars))."""
    A, N = obs.n_assets, obs.n_events
    t = np.asarray(obs.t, dtype=np.float64)
    side = obs.side.astype(np.int64)
    asset = obs.asset.astype(np.int64)
    first = np.ones(N, dtype=bool)
    first[1:] = asset[1:] != asset[:-1]
    dt = np.zeros(N)
    dt[1:] = t[1:] - t[:-1]
    dt[first] = 0.0
    prev = np.zeros((N, 2))
    prev[np.flatnonzero(~first), side[np.flatnonzero(~first) - 1]] = 1.0
    # tie groups (within an asset): first index of each run of equal times
    newgrp = first | np.concatenate([[True], dt[1:] != 0.0])
    grp = None
    if not newgrp.all():
        grp = np.maximum.accumulate(np.where(newgrp, np.arange(N), 0))
    reg_dt = np.zeros((N, len(REGIMES)))
    last = np.zeros(A, dtype=np.int64)
    tail = np.zeros(A)
    tail_reg = np.zeros((A, len(REGIMES)))
    for a in range(A):
        idx = np.flatnonzero(asset == a)
        ta = t[idx]
        T = float(obs.duration_s[a])
        edges = np.asarray(obs.bar_edges[a], dtype=float)
        regs = np.asarray(obs.bar_regime[a])
        C, k = _regime_clock(edges, regs, T, np.append(ta, T))
        Ce, ke = C[:-1], k[:-1]
        d = np.diff(np.vstack([np.zeros(len(REGIMES)), Ce]), axis=0)
        # same bar as the previous event: exact dt in that bar's regime (no cancellation)
        same = np.zeros(len(idx), dtype=bool)
        same[1:] = ke[1:] == ke[:-1]
        same[0] = ke[0] == 0
        dd = np.diff(np.append(0.0, ta))
        d[same] = 0.0
        d[same, regs[ke[same]].astype(int)] = dd[same]
        reg_dt[idx] = d
        last[a] = idx[-1]
        tail[a] = T - ta[-1]
        tail_reg[a] = C[-1] - C[-2]
        if ke[-1] == k[-1]:
            tail_reg[a] = 0.0
            tail_reg[a, int(regs[ke[-1]])] = tail[a]
    own_last = np.zeros((A, 2))
    own_last[np.arange(A), side[last]] = 1.0
    regime = obs.regime.astype(np.int64)
    return LikArrays(
        dt=dt, keep=(~first).astype(np.float64), prev=prev, grp=grp,
        mu_idx=(asset * len(REGIMES) + regime) * 2 + side,
        n_idx=(asset * 2 + side) * 2,
        src_idx=None if A == 1 else asset * 2,
        asset=None if A == 1 else asset,
        reg_dt=reg_dt, last=last, own_last=own_last, tail=tail, tail_reg=tail_reg,
    )


def _as_batched(params: Mapping[str, Any], xp) -> tuple[Any, Any, Any]:
    """mu (A, 4, 2), n (A, 2, 2), beta (A,) from single-asset or batched params."""
    mu, n, beta = params["mu"], params["n"], params["beta"]
    if mu.ndim == 2:
        mu = mu[None]
    if n.ndim == 2:
        n = n[None]
    if beta.ndim == 0:
        beta = beta[None]
    return mu, n, beta


def _pointwise(xp, scan, add_at, mu, n, beta, d: LikArrays):
    """Per-event log-likelihood terms; ``xp`` is jax.numpy or pytensor.tensor.

    mu (A, 4, 2), n (A, 2, 2), beta (A,). One code path for both backends, so the
    PyMC model and the JAX function compute the same formula.
    """
    single = d.asset is None
    b_ev = beta[0] if single else beta[d.asset]
    x = -b_ev * d.dt
    a = xp.exp(x) * d.keep                      # a_i (0 at an asset's first event)
    one_minus_a = -xp.expm1(x)                  # 1 - a_i without cancellation
    X = scan(a, a[:, None] * d.prev)            # X_i[s'] (strictly earlier, incl. ties)
    S = X if d.grp is None else X[d.grp]        # ties do not excite each other
    mu_f = mu.reshape((-1,))
    n_f = n.reshape((-1,))
    lam = mu_f[d.mu_idx] + b_ev * (n_f[d.n_idx] * S[:, 0] + n_f[d.n_idx + 1] * S[:, 1])
    # compensator over (t_{i-1}, t_i]
    Xprev = xp.concatenate([xp.zeros((1, 2)), X[:-1]], axis=0) * d.keep[:, None]
    Yprev = Xprev + d.prev                      # state just after t_{i-1}
    csum = n.sum(axis=1)                        # (A, 2): total offspring of a source event
    musum = mu.sum(axis=2)                      # (A, 4): total baseline per regime
    if single:
        exc = Yprev[:, 0] * csum[0, 0] + Yprev[:, 1] * csum[0, 1]
        base = xp.dot(d.reg_dt, musum[0])
    else:
        cs_f = csum.reshape((-1,))
        exc = Yprev[:, 0] * cs_f[d.src_idx] + Yprev[:, 1] * cs_f[d.src_idx + 1]
        base = (d.reg_dt * musum[d.asset]).sum(axis=1)
    ll = xp.log(lam) - base - one_minus_a * exc
    # window end: int_{t_last}^{T}
    Ylast = X[d.last] + d.own_last               # (A, 2)
    tail = (d.tail_reg * musum).sum(axis=1) + (-xp.expm1(-beta * d.tail)) * (Ylast * csum).sum(axis=1)
    return add_at(ll, d.last, -tail)


def _jax_add_at(x, idx, v):
    return x.at[idx].add(v)


def _jax_scan(a, c):
    def op(left, right):
        a1, c1 = left
        a2, c2 = right
        return a1 * a2, a2[..., None] * c1 + c2

    return jax.lax.associative_scan(op, (a, c))[1]


def _to_jax(d: LikArrays) -> LikArrays:
    return LikArrays(*(None if v is None else jnp.asarray(v) for v in d))


def _lik_arrays(data) -> LikArrays:
    if isinstance(data, HawkesObs):
        return _to_jax(prepare(data))
    return data


@jax.jit
def _pointwise_jax_jit(params, d):
    mu, n, beta = _as_batched({k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()}, jnp)
    return _pointwise(jnp, _jax_scan, _jax_add_at, mu, n, beta, d)


def pointwise_loglik_jax(params: Mapping[str, Any], data: HawkesObs | LikArrays) -> jax.Array:
    """Per-event log-likelihood terms (they sum to the log-likelihood), JAX float64.

    ``params``: ``mu`` (4, 2) or (A, 4, 2) events/s [regime, side]; ``n`` (2, 2) or
    (A, 2, 2) [target, source]; ``beta`` () or (A,) 1/s. ``data``: a HawkesObs or
    ``prepare(obs)`` as JAX arrays. For sampling and benchmarks use the faster
    :func:`loglik_jax` (total only).
    """
    return _pointwise_jax_jit(dict(params), _lik_arrays(data))


# --------------------------------------------------------------------------- fast total
BLOCK = 128
"""Largest number of events per block for the JAX likelihood (rows scanned with
``lax.scan``); :func:`auto_block` picks smaller blocks for smaller data."""
PT_BLOCK = 16
"""Events per block for the pytensor graph (rows unrolled in the graph)."""


def auto_block(n_events: int) -> int:
    """Events per block for ``n_events``: the power of two nearest sqrt(N)/4, in
    [8, BLOCK]. The sweep is two sequential loops, one over the B rows of a block
    (vectorized over the N/B blocks) and one over the N/B block carries, and each
    loop iteration has a fixed cost on CPU, so small data wants small blocks.
    Measured (value + gradient, jitted, one core; benchmarks/bench_hawkes.py times
    the 1e6 case): N = 2,595: B = 8-16 -> 0.28 ms, B = 128 -> 0.65 ms;
    N = 32k: B = 32 -> 1.05 ms, B = 128 -> 1.60 ms; N = 300k: B = 32-256 -> 10-10.7
    ms, B = 8 -> 16.7 ms; N = 1e6: B = 128."""
    b = 2 ** round(np.log2(max(np.sqrt(max(int(n_events), 1)) / 4.0, 1.0)))
    return int(min(max(b, 8), BLOCK))


class BlockArrays(NamedTuple):
    """Parameter-free arrays for the fast *total* log-likelihood, in block layout.

    Events are laid out in blocks of ``B`` consecutive events, stored as ``(B, nb)``
    arrays whose row ``j`` holds the ``j``-th event of every block (event
    ``b*B + j`` at ``[j, b]``). The recurrence then runs *within* blocks as ``B``
    python-unrolled vector steps over rows (contiguous, fused by XLA / pytensor),
    and *across* blocks as an associative scan of length ``nb = N/B`` on the block
    products; nothing is ever transposed, stacked or gathered per event (on CPU
    XLA's concatenations and full-length associative scans cost 10x an
    elementwise pass). Each asset is front-padded to whole blocks with inert
    events (``valid = 0``, ``keep = 0``), so every asset's last event sits in row
    ``B - 1`` of its last block.

    Rows: ``dt``, ``keep`` (0 at an asset's first event and on padding), ``prev0``,
    ``prev1`` (one-hot side of the previous event), ``tie0``, ``tie1`` (numbers of
    earlier events of each side at the same timestamp: ``S = X - tie``, None when
    there are no ties), ``valid``, ``side`` (0/1), ``mu_idx`` (flat (asset, regime,
    side) index into mu (A, 4, 2)), ``asset`` (None for one asset). Per asset:
    ``counts`` (A, 2) events per source side, ``regime_time`` (A, 4) s,
    ``last_block`` (A,), ``own_last`` (A, 2), ``tail`` (A,) = T - t_last.
    """

    dt: np.ndarray
    keep: np.ndarray
    prev0: np.ndarray
    prev1: np.ndarray
    tie0: np.ndarray | None
    tie1: np.ndarray | None
    valid: np.ndarray
    side: np.ndarray
    mu_idx: np.ndarray
    asset: np.ndarray | None
    counts: np.ndarray
    regime_time: np.ndarray
    last_block: np.ndarray
    own_last: np.ndarray
    tail: np.ndarray


def prepare_blocks(obs: HawkesObs, block: int | None = None) -> BlockArrays:
    """Block layout of :class:`BlockArrays` (numpy; O(N)); ``block`` events per
    block, by default :func:`auto_block` of the event count."""
    block = auto_block(obs.n_events) if block is None else int(block)
    A = obs.n_assets
    t = np.asarray(obs.t, dtype=np.float64)
    side = obs.side.astype(np.int64)
    asset = obs.asset.astype(np.int64)
    regime = obs.regime.astype(np.int64)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in
                                         ("dt", "keep", "prev0", "prev1", "tie0", "tie1", "valid",
                                          "side", "mu_idx", "asset")}
    counts = np.zeros((A, 2))
    last_block = np.zeros(A, dtype=np.int64)
    own_last = np.zeros((A, 2))
    tail = np.zeros(A)
    nblocks = 0
    any_tie = False
    for a in range(A):
        idx = np.flatnonzero(asset == a)
        ta, sa, ra = t[idx], side[idx], regime[idx]
        n_a = len(idx)
        pad = (-n_a) % block
        m = pad + n_a
        dt = np.zeros(m)
        dt[pad + 1:] = np.diff(ta)
        keep = np.zeros(m)
        keep[pad + 1:] = 1.0
        prev = np.zeros((m, 2))
        prev[np.arange(pad + 1, m), sa[:-1]] = 1.0
        # earlier same-timestamp events per side (ties do not excite each other)
        tie = np.zeros((m, 2))
        if n_a > 1 and np.any(dt[pad + 1:] == 0.0):
            any_tie = True
            newgrp = np.concatenate([[True], np.diff(ta) != 0.0])
            g = np.maximum.accumulate(np.where(newgrp, np.arange(n_a), 0))
            for s_ in (0, 1):
                c = np.cumsum(sa == s_)                 # events of side s_ in [0, i]
                before_grp = np.where(g > 0, c[g - 1], 0)
                tie[pad:, s_] = np.concatenate([[0], c[:-1]]) - before_grp
        valid = np.zeros(m)
        valid[pad:] = 1.0
        sd = np.zeros(m, dtype=np.int64)
        sd[pad:] = sa
        mi = np.zeros(m, dtype=np.int64)
        mi[pad:] = (a * len(REGIMES) + ra) * 2 + sa
        for k, v in (("dt", dt), ("keep", keep), ("prev0", prev[:, 0]), ("prev1", prev[:, 1]),
                     ("tie0", tie[:, 0]), ("tie1", tie[:, 1]), ("valid", valid), ("side", sd),
                     ("mu_idx", mi), ("asset", np.full(m, a, dtype=np.int64))):
            cols[k].append(v)
        counts[a] = np.bincount(sa, minlength=2)
        nblocks += m // block
        last_block[a] = nblocks - 1
        own_last[a, sa[-1]] = 1.0
        tail[a] = float(obs.duration_s[a]) - ta[-1]

    def lay(v, dtype):
        v = np.concatenate(v).astype(dtype)
        return np.ascontiguousarray(v.reshape(-1, block).T)

    return BlockArrays(
        dt=lay(cols["dt"], np.float64), keep=lay(cols["keep"], np.float64),
        prev0=lay(cols["prev0"], np.float64), prev1=lay(cols["prev1"], np.float64),
        tie0=lay(cols["tie0"], np.float64) if any_tie else None,
        tie1=lay(cols["tie1"], np.float64) if any_tie else None,
        valid=lay(cols["valid"], np.float64), side=lay(cols["side"], np.int32),
        mu_idx=lay(cols["mu_idx"], np.int32),
        asset=None if A == 1 else lay(cols["asset"], np.int32),
        counts=counts, regime_time=obs.regime_time(), last_block=last_block,
        own_last=own_last, tail=tail,
    )


def _static_shape(x) -> tuple[int, ...]:
    t = getattr(x, "type", None)
    return tuple(t.shape) if t is not None and hasattr(t, "shape") else tuple(x.shape)


def _total_blocks(xp, carry_scan, mu, n, beta, d: BlockArrays, rows: int | None = None):
    """Total log-likelihood from the block layout; ``xp`` jax.numpy or pytensor.tensor.

    ``carry_scan(p, e0, e1)`` is the inclusive linear scan over blocks. Compensator in
    closed form: ``sum_r mu D_r + sum_s' colsum(n)[s'] (K_s' - e^{-beta tail} Y_last[s'])``
    where ``Y_last`` is the excitation state just after the last event, since
    ``sum_{j: s_j = s'} e^{-beta (T - t_j)} = e^{-beta (T - t_last)} Y_last[s']``.
    """
    B = rows if rows is not None else _static_shape(d.dt)[0]
    single = d.asset is None
    mu_f = mu.reshape((-1,))
    # pass 1: local recurrence within each block (carry-in 0) and the block products
    xs0, xs1, ps = [], [], []
    x0 = x1 = p = None
    for j in range(B):
        b_ev = beta[0] if single else beta[d.asset[j]]
        a = xp.exp(-b_ev * d.dt[j]) * d.keep[j]
        if j == 0:
            x0, x1, p = a * d.prev0[j], a * d.prev1[j], a
        else:
            x0, x1, p = a * (x0 + d.prev0[j]), a * (x1 + d.prev1[j]), p * a
        xs0.append(x0)
        xs1.append(x1)
        ps.append(p)
    # across blocks: carry-in = state at the end of the previous block
    e0, e1 = carry_scan(ps[-1], xs0[-1], xs1[-1])
    zero = xp.zeros((1,))
    c0 = xp.concatenate([zero, e0[:-1]])
    c1 = xp.concatenate([zero, e1[:-1]])
    # pass 2: intensities at the events
    ll = 0.0
    for j in range(B):
        X0 = xs0[j] + ps[j] * c0
        X1 = xs1[j] + ps[j] * c1
        S0 = X0 if d.tie0 is None else X0 - d.tie0[j]
        S1 = X1 if d.tie1 is None else X1 - d.tie1[j]
        if single:
            b_ev = beta[0]
            sell = d.side[j]                       # 0/1: exact selection by arithmetic
            buy = 1 - sell
            n_s0 = buy * n[0, 0, 0] + sell * n[0, 1, 0]
            n_s1 = buy * n[0, 0, 1] + sell * n[0, 1, 1]
        else:
            b_ev = beta[d.asset[j]]
            n_s0 = n[d.asset[j], d.side[j], 0]
            n_s1 = n[d.asset[j], d.side[j], 1]
        lam = mu_f[d.mu_idx[j]] + b_ev * (n_s0 * S0 + n_s1 * S1)
        ll = ll + (xp.log(lam) * d.valid[j]).sum()
        if j == B - 1:
            X0_last, X1_last = X0[d.last_block], X1[d.last_block]
    # compensator
    csum = n.sum(axis=1)                                   # (A, 2) offspring per source
    decay_tail = xp.exp(-beta * d.tail)                    # (A,)
    y0 = X0_last + d.own_last[:, 0]
    y1 = X1_last + d.own_last[:, 1]
    exc = csum[:, 0] * (d.counts[:, 0] - decay_tail * y0) + csum[:, 1] * (d.counts[:, 1] - decay_tail * y1)
    base = (mu.sum(axis=2) * d.regime_time).sum()
    return ll - base - exc.sum()


def _jax_block_scan(op, elems, identity):
    """Inclusive scan of ``elems`` (tuple of (nb,) arrays) under the associative ``op``.

    On CPU a sequential ``lax.scan`` over the nb = N/B blocks (a tight XLA loop on
    scalars, ~40 ns per block). ``jax.lax.associative_scan`` is avoided there: XLA
    pushes its strided slices up through the producing elementwise chain and
    recomputes it at every level (measured 10x slower than the two stages
    compiled apart). On accelerators, where a sequential loop is slow, the
    associative scan is used.
    """
    if jax.default_backend() != "cpu":
        return jax.lax.associative_scan(op, elems)

    def step(carry, x):
        out = op(carry, x)
        return out, out

    init = tuple(jnp.asarray(v, dtype=elems[0].dtype) for v in identity)
    return jax.lax.scan(step, init, elems)[1]


def _jax_carry_scan(p, e0, e1):
    def op(left, right):
        a1, x1, y1 = left
        a2, x2, y2 = right
        return a1 * a2, a2 * x1 + x2, a2 * y1 + y2

    _, x, y = _jax_block_scan(op, (p, e0, e1), (1.0, 0.0, 0.0))
    return x, y


def _jax_sweep(mu, n, beta, d: BlockArrays, grad: bool):
    """Log-likelihood (and with ``grad`` its exact gradient) in three passes (JAX).

    Pass A runs the recurrence over the B rows of every block (``lax.scan`` over
    rows; each step is one fused elementwise loop over the nb blocks) and keeps
    only the block-end states; pass B scans those across blocks; pass C reruns
    the rows with the right carry-in and accumulates everything on the fly into
    (nb,) vectors. Nothing of size N is ever written: ~2x the exponentials of a
    single sweep, but memory traffic is just reading the inputs twice. (Storing
    the per-event states and vectorising pass C measured 4x slower on CPU.)

    Gradient by forward sensitivities, no autodiff: with 13 parameters per asset,
    the mu and n derivatives are weighted sums of ``w_i = 1/lambda_i`` and the beta
    derivative needs ``Z_i = -dX_i/dbeta = sum_{j<i} (t_i - t_j) e^{-beta (t_i - t_j)}``,
    which obeys ``Z_i = a_i Z_{i-1} + dt_i X_i``: the same scan with the 2x2
    transfer ``a_i [[1, 0], [dt_i, 1]]`` (Ozaki 1979 gives these recursions for the
    exponential kernel). Across blocks, elements ``(P, Delta, x, z)`` compose as
    ``(P1 P2, Delta1 + Delta2, x2 + P2 x1, z2 + P2 (z1 + Delta2 x1))``.
    """
    A = mu.shape[0]
    single = d.asset is None
    ties = d.tie0 is not None
    mu_f = mu.reshape((-1,))
    n_f = n.reshape((-1,))
    nb = d.dt.shape[1]
    zero = jnp.zeros(nb)

    def rate(asset_row):
        return beta[0] if single else beta[asset_row]

    # ---- pass A: block-end states with zero carry-in
    xs_a = (d.dt, d.keep, d.prev0, d.prev1) + (() if single else (d.asset,))

    def row_a(carry, r):
        x0, x1, z0, z1, p, tau = carry
        dt, keep, q0, q1 = r[:4]
        b = rate(None if single else r[4])
        a = jnp.exp(-b * dt) * keep
        x0, x1 = a * (x0 + q0), a * (x1 + q1)
        if grad:
            z0, z1 = a * z0 + dt * x0, a * z1 + dt * x1
        return (x0, x1, z0, z1, p * a, tau + dt), None

    (x0e, x1e, z0e, z1e, pe, te), _ = jax.lax.scan(
        row_a, (zero, zero, zero, zero, jnp.ones(nb), zero), xs_a)

    # ---- pass B: across blocks
    def op(left, right):
        P1, D1, x1_, y1_, z1_, u1_ = left
        P2, D2, x2_, y2_, z2_, u2_ = right
        return (P1 * P2, D1 + D2, x2_ + P2 * x1_, y2_ + P2 * y1_,
                z2_ + P2 * (z1_ + D2 * x1_), u2_ + P2 * (u1_ + D2 * y1_))

    _, _, E0, E1, F0, F1 = _jax_block_scan(op, (pe, te, x0e, x1e, z0e, z1e), (1.0, 0.0, 0.0, 0.0, 0.0, 0.0))

    def shift(v):
        return jnp.concatenate([jnp.zeros((1,)), v[:-1]])

    # ---- pass C: events with the right carry-in, accumulate
    names = ["ll"]
    if grad:
        names += ["gb"] + (["n00", "n01", "n10", "n11"] + [f"m{k}" for k in range(mu_f.shape[0])]
                           if single else [])
    acc0 = {k: zero for k in names}
    if grad and not single:
        acc0.update(g_mu=jnp.zeros(mu_f.shape[0]), g_n=jnp.zeros((2 * A, 2)), g_beta=jnp.zeros(A))
    xs_c = (d.dt, d.keep, d.prev0, d.prev1, d.side, d.mu_idx, d.valid)
    xs_c = xs_c + ((d.tie0, d.tie1) if ties else ()) + (() if single else (d.asset,))

    def row_c(carry, r):
        x0, x1, z0, z1, acc = carry
        dt, keep, q0, q1, side, midx, v = r[:7]
        t0_, t1_ = (r[7], r[8]) if ties else (0.0, 0.0)
        arow = None if single else r[-1]
        b = rate(arow)
        a = jnp.exp(-b * dt) * keep
        x0, x1 = a * (x0 + q0), a * (x1 + q1)
        S0, S1 = (x0 - t0_, x1 - t1_) if ties else (x0, x1)
        if single:
            buy = side == 0
            ns0 = jnp.where(buy, n_f[0], n_f[2])
            ns1 = jnp.where(buy, n_f[1], n_f[3])
        else:
            k = (arow * 2 + side) * 2
            ns0, ns1 = n_f[k], n_f[k + 1]
        exc = ns0 * S0 + ns1 * S1
        lam = mu_f[midx] + b * exc
        acc = dict(acc)
        acc["ll"] = acc["ll"] + jnp.log(lam) * v
        if grad:
            z0, z1 = a * z0 + dt * x0, a * z1 + dt * x1
            w = v / lam
            gb = w * (exc - b * (ns0 * z0 + ns1 * z1))
            wb0, wb1 = w * b * S0, w * b * S1
            if single:
                acc["gb"] = acc["gb"] + gb
                acc["n00"] = acc["n00"] + jnp.where(buy, wb0, 0.0)
                acc["n01"] = acc["n01"] + jnp.where(buy, wb1, 0.0)
                acc["n10"] = acc["n10"] + jnp.where(buy, 0.0, wb0)
                acc["n11"] = acc["n11"] + jnp.where(buy, 0.0, wb1)
                for kk in range(mu_f.shape[0]):
                    acc[f"m{kk}"] = acc[f"m{kk}"] + jnp.where(midx == kk, w, 0.0)
            else:
                seg = arow * 2 + side
                acc["g_mu"] = acc["g_mu"] + jax.ops.segment_sum(w, midx, num_segments=mu_f.shape[0])
                acc["g_n"] = acc["g_n"] + jnp.stack(
                    [jax.ops.segment_sum(wb0, seg, num_segments=2 * A),
                     jax.ops.segment_sum(wb1, seg, num_segments=2 * A)], axis=1)
                acc["g_beta"] = acc["g_beta"] + jax.ops.segment_sum(gb, arow, num_segments=A)
        return (x0, x1, z0, z1, acc), None

    init = (shift(E0), shift(E1), shift(F0), shift(F1), acc0)
    (x0, x1, z0, z1, acc), _ = jax.lax.scan(row_c, init, xs_c)
    # state at each asset's last event (row B-1 of its last block)
    XL0, XL1, ZL0, ZL1 = x0[d.last_block], x1[d.last_block], z0[d.last_block], z1[d.last_block]
    csum = n.sum(axis=1)                                   # (A, 2) offspring per source event
    E = jnp.exp(-beta * d.tail)
    Y0, Y1 = XL0 + d.own_last[:, 0], XL1 + d.own_last[:, 1]
    R0, R1 = d.counts[:, 0] - E * Y0, d.counts[:, 1] - E * Y1
    ll = acc["ll"].sum() - (mu.sum(axis=2) * d.regime_time).sum() - (csum[:, 0] * R0 + csum[:, 1] * R1).sum()
    if not grad:
        return ll
    if single:
        g_mu = jnp.stack([acc[f"m{k}"].sum() for k in range(mu_f.shape[0])])
        g_n = jnp.array([[acc["n00"].sum(), acc["n01"].sum()], [acc["n10"].sum(), acc["n11"].sum()]])
        g_beta = acc["gb"].sum()[None]
    else:
        g_mu, g_n, g_beta = acc["g_mu"], acc["g_n"], acc["g_beta"]
    g_mu = g_mu.reshape(mu.shape) - d.regime_time[:, :, None]
    g_n = g_n.reshape(n.shape) - jnp.stack([R0, R1], axis=1)[:, None, :]
    g_beta = g_beta - (csum[:, 0] * E * (d.tail * Y0 + ZL0) + csum[:, 1] * E * (d.tail * Y1 + ZL1))
    return ll, (g_mu, g_n, g_beta)


def jax_data(obs: HawkesObs, block: int | None = None) -> BlockArrays:
    """``prepare_blocks(obs)`` as JAX arrays: pass it to :func:`loglik_jax` in loops."""
    return BlockArrays(*(None if v is None else jnp.asarray(v) for v in prepare_blocks(obs, block)))


def _block_arrays(data) -> BlockArrays:
    if isinstance(data, HawkesObs):
        return jax_data(data)
    return data


@jax.custom_vjp
def _loglik_batched(mu, n, beta, d):
    return _jax_sweep(mu, n, beta, d, grad=False)


def _loglik_fwd(mu, n, beta, d):
    return _jax_sweep(mu, n, beta, d, grad=True)


def _loglik_bwd(grads, g):
    g_mu, g_n, g_beta = grads
    return g * g_mu, g * g_n, g * g_beta, None


_loglik_batched.defvjp(_loglik_fwd, _loglik_bwd)


def _loglik(params, d):
    mu, n, beta = _as_batched({k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()}, jnp)
    return _loglik_batched(mu, n, beta, d)


_loglik_jit = jax.jit(_loglik)
_value_and_grad_jit = jax.jit(jax.value_and_grad(_loglik))


def loglik_jax(params: Mapping[str, Any], data: HawkesObs | BlockArrays) -> jax.Array:
    """Log-likelihood (scalar, float64), O(N), pure JAX, jitted.

    ``params`` as in :func:`pointwise_loglik_jax`; ``data`` a HawkesObs or
    :func:`jax_data` (prepare once, reuse). Reverse-mode differentiable through a
    ``jax.custom_vjp`` whose forward pass computes the exact gradient alongside the
    value (see :func:`_value_and_grad_blocks`): ``jax.grad(loglik_jax)`` and
    :func:`loglik_value_and_grad` (the jitted ``jax.value_and_grad``) use it.
    (Forward-mode ``jax.jvp`` / Hessians are not supported through the custom VJP.)
    """
    return _loglik_jit(dict(params), _block_arrays(data))


def loglik_value_and_grad(params: Mapping[str, Any], data: HawkesObs | BlockArrays):
    """``jax.value_and_grad(loglik_jax)`` (jitted): ``(value, {"mu", "n", "beta"})``."""
    return _value_and_grad_jit({k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()},
                               _block_arrays(data))


def loglik_naive(params: Mapping[str, Any], obs: HawkesObs) -> float:
    """O(N^2) reference straight from the definition (numpy, float64): for tests.

    Intensity at each event from the double sum over strictly earlier events of
    the same asset; compensator in closed form with the regime durations.
    """
    mu = np.asarray(params["mu"], float)
    n = np.asarray(params["n"], float)
    beta = np.asarray(params["beta"], float)
    if mu.ndim == 2:
        mu, n, beta = mu[None], n[None], beta.reshape(1)
    D = obs.regime_time()
    total = 0.0
    for a in range(obs.n_assets):
        m = obs.asset == a
        t, s, r = obs.t[m], obs.side[m].astype(int), obs.regime[m].astype(int)
        T, b = float(obs.duration_s[a]), float(beta[a])
        for i in range(len(t)):
            earlier = t[:i] < t[i]
            w = np.exp(-b * (t[i] - t[:i][earlier]))
            src = s[:i][earlier]
            lam = mu[a, r[i], s[i]] + b * (n[a, s[i], 0] * w[src == 0].sum() + n[a, s[i], 1] * w[src == 1].sum())
            total += math.log(lam)
        total -= float((mu[a].sum(axis=1) * D[a]).sum())
        total -= float((n[a].sum(axis=0)[s] * (1.0 - np.exp(-b * (T - t)))).sum())
    return total


# --------------------------------------------------------------------------- pytensor
def linear_scan_pt(a, cs: Sequence, n: int) -> list:
    """Inclusive scans ``X_i = a_i X_{i-1} + c_i`` (X_{-1} = 0) in pytensor, for
    each 1-D ``c`` in ``cs`` sharing the factors ``a``; ``n`` is the static length.

    The odd/even recursion of Blelloch (1990) / ``jax.lax.associative_scan``:
    combine adjacent pairs, recurse on the n/2 pairs, fill in the even positions.
    O(n) work in ~2 log2(n) vectorised slice/elementwise steps, differentiable,
    and compiles to C, numba and JAX alike (no ``Scan`` op).
    """
    import pytensor.tensor as pt

    cs = list(cs)
    if n == 1:
        return cs
    m = n // 2
    a_e, a_o = a[0:2 * m:2], a[1:2 * m:2]
    odd = linear_scan_pt(a_e * a_o, [a_o * c[0:2 * m:2] + c[1:2 * m:2] for c in cs], m)  # X at 1, 3, ..
    ne = (n - 1) // 2                                          # even positions 2, 4, ...
    out = []
    for c, xo in zip(cs, odd):
        xe = pt.concatenate([c[0:1], a[2::2] * xo[:ne] + c[2::2]])           # n - m values
        inter = pt.stack([xe[:m], xo], axis=1).reshape((2 * m,))
        out.append(pt.concatenate([inter, xe[m:]]) if n % 2 else inter)
    return out


def _pt_carry_scan(p, e0, e1):
    """Across-block scan for the pytensor graph: a sequential ``pytensor.scan``
    over the nb = N/B blocks (a small inner graph: compiles in seconds and runs as
    a tight loop under numba/JAX; the odd/even :func:`linear_scan_pt` gives a
    graph whose gradient takes many minutes to compile for large N)."""
    import pytensor

    def step(pb, x0b, x1b, c0, c1):
        return pb * c0 + x0b, pb * c1 + x1b

    zero = pt.zeros((), dtype="float64")
    x, y = pytensor.scan(step, sequences=[p, e0, e1], outputs_info=[zero, zero],
                         return_updates=False)
    return x, y


def loglik_pt(mu, n, beta, obs: HawkesObs | BlockArrays, block: int = PT_BLOCK):
    """Symbolic total log-likelihood (pytensor scalar) for batched mu (A, 4, 2),
    n (A, 2, 2), beta (A,): the graph :func:`build_model` uses (same block
    algorithm as :func:`loglik_jax`, rows unrolled in the graph, the carry across
    blocks by :func:`linear_scan_pt`). Differentiated by pytensor itself."""
    import pytensor.tensor as pt

    import pytensor

    d = prepare_blocks(obs, block) if isinstance(obs, HawkesObs) else obs
    # the data enter as shared variables, not constants: pytensor's rewrites hash and
    # fold constants, which made compilation O(N) slow (6 min at 8e5 events)
    dc = BlockArrays(*(None if v is None else
                       (pytensor.shared(v, borrow=True) if np.ndim(v) == 2 else pt.constant(v))
                       for v in d))
    return _total_blocks(pt, _pt_carry_scan, mu, n, beta, dc, rows=d.dt.shape[0])


def _pt_add_at(x, idx, v):
    import pytensor.tensor as pt

    return pt.inc_subtensor(x[idx], v)


def _pt_scan_cols(a, c):
    """(N, k) adapter of :func:`linear_scan_pt` for :func:`_pointwise`."""
    import pytensor.tensor as pt

    N = int(a.type.shape[0])
    cols = linear_scan_pt(a, [c[:, k] for k in range(2)], N)
    return pt.stack(cols, axis=1)


def pointwise_loglik_pt(mu, n, beta, obs_or_arrays: HawkesObs | LikArrays):
    """Symbolic per-event log-likelihood (pytensor) for batched mu (A, 4, 2),
    n (A, 2, 2), beta (A,) -- for checks; the model uses :func:`loglik_pt`."""
    import pytensor.tensor as pt

    d = prepare(obs_or_arrays) if isinstance(obs_or_arrays, HawkesObs) else obs_or_arrays
    dc = LikArrays(*(None if v is None else pt.constant(v) for v in d))
    return _pointwise(pt, _pt_scan_cols, _pt_add_at, mu, n, beta, dc)


# --------------------------------------------------------------------------- pytensor Op
class HawkesLogLikOp(Op):
    """Total Hawkes log-likelihood of fixed data as a pytensor Op over
    (mu (A,4,2), n (A,2,2), beta (A,)) -> scalar, computed by the JAX sweep of
    :func:`loglik_jax` (the default likelihood of :func:`build_model`).

    ``perform`` calls the jitted JAX function (PyMC's sampler, C backend);
    ``jax_funcify`` inlines it (NumPyro, nutpie's jax backend); nutpie's numba
    backend calls ``perform`` in numba object mode. The gradient is
    :class:`HawkesGradOp` (the exact forward-sensitivity gradient). ``key`` (a
    hash of the data) makes two Ops equal only for identical data.
    """

    __props__ = ("key",)

    def __init__(self, data: BlockArrays, key: str):
        self.data = data
        self.key = key
        self._jdata = None

    def __getstate__(self):
        st = dict(self.__dict__)
        st["_jdata"] = None
        return st

    def jdata(self) -> BlockArrays:
        if self._jdata is None:
            self._jdata = BlockArrays(*(None if v is None else jnp.asarray(v) for v in self.data))
        return self._jdata

    def make_node(self, mu, n, beta):
        ins = [pt.as_tensor_variable(x).astype("float64") for x in (mu, n, beta)]
        return Apply(self, ins, [pt.dscalar()])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = np.asarray(_value_and_grad_cached(self, inputs)[0], dtype=np.float64)

    def grad(self, inputs, output_grads):
        g = output_grads[0]
        g_mu, g_n, g_beta = HawkesGradOp(self.data, self.key)(*inputs)
        return [g * g_mu, g * g_n, g * g_beta]


class HawkesGradOp(Op):
    """Gradient of :class:`HawkesLogLikOp` w.r.t. (mu, n, beta)."""

    __props__ = ("key",)

    def __init__(self, data: BlockArrays, key: str):
        self.data = data
        self.key = key
        self._jdata = None

    __getstate__ = HawkesLogLikOp.__getstate__
    jdata = HawkesLogLikOp.jdata

    def make_node(self, mu, n, beta):
        ins = [pt.as_tensor_variable(x).astype("float64") for x in (mu, n, beta)]
        return Apply(self, ins, [x.type() for x in ins])

    def perform(self, node, inputs, outputs):
        _, grads = _value_and_grad_cached(self, inputs)
        for o, g in zip(outputs, grads):
            o[0] = np.array(g, dtype=np.float64)


_LAST: dict[str, tuple] = {}


def _value_and_grad_cached(op, inputs):
    """Value and gradient at ``inputs``, computed together once: PyMC evaluates
    the likelihood Op and its gradient Op at the same point in every leapfrog step
    (the sweep with the gradient costs ~1.3x the value alone; without this cache
    the pair cost 2.3x). One entry per data key."""
    key = op.key
    sig = b"".join(np.ascontiguousarray(x, dtype=np.float64).tobytes() for x in inputs)
    hit = _LAST.get(key)
    if hit is not None and hit[0] == sig:
        return hit[1]
    val, grads = _value_and_grad_batched_jit(*inputs, op.jdata())
    out = (float(val), tuple(np.asarray(g, dtype=np.float64) for g in grads))
    _LAST[key] = (sig, out)
    return out


def _loglik_batched_plain(mu, n, beta, d):
    return _loglik_batched(mu, n, beta, d)


_loglik_batched_jit = jax.jit(_loglik_batched_plain)
_value_and_grad_batched_jit = jax.jit(lambda mu, n, beta, d: _jax_sweep(mu, n, beta, d, grad=True))


@jax_funcify.register(HawkesLogLikOp)
def _jax_funcify_loglik(op, **kwargs):
    d = op.jdata()

    def hawkes_loglik(mu, n, beta):
        return _loglik_batched(mu, n, beta, d)

    return hawkes_loglik


@jax_funcify.register(HawkesGradOp)
def _jax_funcify_grad(op, **kwargs):
    d = op.jdata()

    def hawkes_loglik_grad(mu, n, beta):
        return _jax_sweep(mu, n, beta, d, grad=True)[1]

    return hawkes_loglik_grad


def _data_key(d: BlockArrays) -> str:
    h = hashlib.sha256()
    for v in d:
        if v is not None:
            h.update(np.ascontiguousarray(v).tobytes())
            h.update(str(v.shape).encode())
        else:
            h.update(b"none")
    return h.hexdigest()[:20]


def loglik_op(mu, n, beta, obs: HawkesObs, block: int | None = None):
    """Symbolic total log-likelihood through :class:`HawkesLogLikOp`."""
    d = prepare_blocks(obs, block)
    return HawkesLogLikOp(d, _data_key(d))(mu, n, beta)


# =========================================================================== PyMC model
class HawkesPriors(BaseModel):
    """Priors of :func:`build_model` (see the module docstring for the reasons).

    ``baseline_center``: "empirical" centres ``log mu`` on log(0.5 x the side's
    mean event rate) of the data (per asset), or a fixed rate in events/s.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    baseline_center: Literal["empirical"] | float = "empirical"
    log_baseline_sd: float = Field(1.5, gt=0)
    regime_sd: float = Field(1.0, gt=0, description="HalfNormal scale of the regime spread of log mu")
    asset_sd: float = Field(1.0, gt=0, description="HalfNormal scale of the asset spread of log mu")
    asset_regime_sd: float = Field(0.3, gt=0, description="HalfNormal scale of asset x regime effects")
    branching_alpha: float = Field(1.5, gt=0)
    branching_beta: float = Field(3.0, gt=0)
    branching_asset_sd: float = Field(0.5, gt=0, description="HalfNormal scale, unconstrained coords")
    decay_median: float = Field(1.0, gt=0, description="1/s")
    log_decay_sd: float = Field(2.0, gt=0)
    decay_asset_sd: float = Field(0.5, gt=0)
    baseline_parameterization: Literal["auto", "non_centered", "centered"] = Field(
        "auto", description="sampling coordinates of the cell-level (regime x side [x asset]) "
        "effects of log mu (module docstring): auto = whitened by each cell's data for one "
        "asset; with several, centred iff every cell that has time in the window holds >= "
        "auto_min_events events (the non-centred form then makes NUTS take ~8x more leapfrog "
        "steps, measured), else non-centred")
    auto_min_events: int = Field(100, ge=1, description="several assets, auto: see baseline_parameterization")


def _softplus(x):
    return pt.softplus(x)


def branching_from_raw_pt(theta):
    """(..., 4) unconstrained -> (n (..., 2, 2), log|dn/dtheta| (...)); the bijection
    onto ``{n in (0,1)^4 : rho(n) < 1}`` of the module docstring."""
    p0, p1, u, v = theta[..., 0], theta[..., 1], theta[..., 2], theta[..., 3]
    n00, n11 = pt.sigmoid(p0), pt.sigmoid(p1)
    L = _softplus(p0) + _softplus(p1)            # -log((1 - n00)(1 - n11))
    s = L + pt.exp(u)
    f = pt.sigmoid(v)
    x, y = f * s, (1.0 - f) * s
    n01, n10 = pt.exp(-x), pt.exp(-y)
    row0 = pt.stack([n00, n01], axis=-1)
    row1 = pt.stack([n10, n11], axis=-1)
    n = pt.stack([row0, row1], axis=-2)
    logjac = (-_softplus(-p0) - _softplus(p0) - _softplus(-p1) - _softplus(p1)
              + pt.log(s) + u - _softplus(-v) - _softplus(v) - x - y)
    parts = {"log_n": (-_softplus(-p0), -_softplus(-p1), -x, -y),
             "log_1mn": (-_softplus(p0), -_softplus(p1), pt.log1mexp(-x), pt.log1mexp(-y))}
    return n, logjac, parts


def branching_from_raw(theta: np.ndarray) -> np.ndarray:
    """numpy version of :func:`branching_from_raw_pt` (n only)."""
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


def branching_to_raw(n: np.ndarray) -> np.ndarray:
    """Inverse of :func:`branching_from_raw` for n in (0,1)^4 with rho(n) < 1."""
    n = np.asarray(n, float)
    n00, n01, n10, n11 = n[..., 0, 0], n[..., 0, 1], n[..., 1, 0], n[..., 1, 1]
    if np.any((n <= 0) | (n >= 1)) or np.any(n01 * n10 >= (1 - n00) * (1 - n11)):
        raise ValueError("n must lie in (0,1)^4 with spectral radius < 1")
    x, y = -np.log(n01), -np.log(n10)
    L = -np.log((1 - n00) * (1 - n11))
    s = x + y
    return np.stack([np.log(n00 / (1 - n00)), np.log(n11 / (1 - n11)), np.log(s - L),
                     np.log(x / y)], axis=-1)


def _branching_prior(theta, a: float, b: float):
    """Log density (up to the truncation constant) of iid Beta(a, b) entries truncated
    to the stationary region, expressed on ``theta`` (Beta log-pdf + log-Jacobian)."""
    n, logjac, parts = branching_from_raw_pt(theta)
    lbeta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    lp = sum((a - 1.0) * ln + (b - 1.0) * l1 - lbeta for ln, l1 in zip(parts["log_n"], parts["log_1mn"]))
    return n, lp + logjac


def _spectral_radius_pt(n):
    n00, n01, n10, n11 = n[..., 0, 0], n[..., 0, 1], n[..., 1, 0], n[..., 1, 1]
    return 0.5 * (n00 + n11) + pt.sqrt(0.25 * (n00 - n11) ** 2 + n01 * n10)


def cell_counts(obs: HawkesObs) -> np.ndarray:
    """(A, 4, 2) events per asset x regime x side."""
    c = np.zeros((obs.n_assets, len(REGIMES), 2))
    np.add.at(c, (obs.asset, obs.regime.astype(int), obs.side.astype(int)), 1.0)
    return c


def baseline_coordinates(obs: HawkesObs, pr: HawkesPriors) -> Literal["whitened", "centered", "non_centered"]:
    """The sampling coordinates of the baseline cells (``HawkesPriors.baseline_parameterization``;
    module docstring): ``auto`` is ``whitened`` for one asset; with several assets,
    ``centered`` iff every cell that has time in the window holds >= ``auto_min_events``
    events, else ``non_centered``."""
    if pr.baseline_parameterization != "auto":
        return pr.baseline_parameterization
    if obs.n_assets == 1:
        return "whitened"
    occupied = obs.regime_time() > 0                       # (A, 4)
    counts = cell_counts(obs)[occupied]                    # (cells, 2)
    return "centered" if bool(counts.size) and bool(counts.min() >= pr.auto_min_events) else "non_centered"


def build_model(obs: HawkesObs, priors: HawkesPriors | None = None,
                likelihood: Literal["op", "graph"] = "op"):
    """The PyMC model (module docstring): single-asset when ``obs`` has one asset,
    hierarchical across assets otherwise.

    ``likelihood="op"`` (default) evaluates the log-likelihood with the JAX sweep
    wrapped as one pytensor Op (:class:`HawkesLogLikOp`, exact analytic gradient;
    compiles in about a second on every backend). ``"graph"`` builds the same block
    algorithm as a pytensor graph (:func:`loglik_pt`) differentiated by pytensor:
    no Python callback, but slower to compile (~15 s with numba/JAX, minutes with
    the C backend; use it with nutpie's numba backend or numpyro).
    """
    import pymc as pm

    pr = priors or HawkesPriors()
    A = obs.n_assets
    rates = obs.empirical_rates()
    if pr.baseline_center == "empirical":
        center = np.log(0.5 * np.maximum(rates, 1e-12))        # (A, 2)
    else:
        center = np.full((A, 2), math.log(float(pr.baseline_center)))
    coords = {"regime": list(REGIMES), "side": list(SIDES), "target": list(SIDES),
              "source": list(SIDES), "branching_coord": list(_BRANCHING_COORDS)}
    if A > 1:
        coords["asset"] = list(obs.assets)
    coords_kind = baseline_coordinates(obs, pr)
    with pm.Model(coords=coords) as model:
        if A == 1:
            tau = pm.HalfNormal("log_baseline_regime_sd", sigma=pr.regime_sd)
            theta = pm.Flat("hawkes_branching_raw", dims="branching_coord")
            n, lp = _branching_prior(theta, pr.branching_alpha, pr.branching_beta)
            pm.Potential("hawkes_branching_prior", lp)
            n = pm.Deterministic("hawkes_branching", n, dims=("target", "source"))
            rho = pm.Deterministic("hawkes_spectral_radius", _spectral_radius_pt(n))
            if coords_kind == "whitened":
                # each cell's crude estimate given n: immigrants = events (1 - rho) (module docstring)
                cnt, time = cell_counts(obs)[0], obs.regime_time()[0][:, None]      # (4, 2), (4, 1)
                has = cnt > 0
                keep = 1.0 - rho
                est = np.log(np.where(has, cnt, 1.0) / np.where(time > 0, time, 1.0)) + pt.log(keep)
                sd = 1.0 / pt.sqrt(np.where(has, cnt, 1.0) * keep)
                m = whitened_mean("log_baseline_mean", center[0], pr.log_baseline_sd, tau, est.T, sd.T,
                                  has.T, dims="side")
                lmu = whitened_normal("log_baseline", m[None, :], tau, est, sd, has, dims=("regime", "side"))
            else:
                m = pm.Normal("log_baseline_mean", mu=center[0], sigma=pr.log_baseline_sd, dims="side")
                if coords_kind == "centered":
                    lmu = pm.Normal("log_baseline", m[None, :], tau, dims=("regime", "side"))
                else:
                    z = pm.Normal("log_baseline_z", 0.0, 1.0, dims=("regime", "side"))
                    lmu = m[None, :] + tau * z
            mu = pm.Deterministic("hawkes_baseline", pt.exp(lmu), dims=("regime", "side"))
            beta = pm.LogNormal("hawkes_decay", mu=math.log(pr.decay_median), sigma=pr.log_decay_sd)
            mu_b, n_b, beta_b = mu[None], n[None], beta[None]
        else:
            m = pm.Normal("log_baseline_mean", mu=center.mean(axis=0), sigma=pr.log_baseline_sd, dims="side")
            s_a = pm.HalfNormal("log_baseline_asset_sd", sigma=pr.asset_sd)
            e = pm.Normal("log_baseline_asset_z", 0.0, 1.0, dims=("asset", "side"))
            tau = pm.HalfNormal("log_baseline_regime_sd", sigma=pr.regime_sd)
            z = pm.Normal("log_baseline_z", 0.0, 1.0, dims=("regime", "side"))
            s_ar = pm.HalfNormal("log_baseline_asset_regime_sd", sigma=pr.asset_regime_sd)
            loc = m[None, None, :] + s_a * e[:, None, :] + tau * z[None]
            if coords_kind == "centered":
                log_mu = pm.Normal("log_baseline", loc, s_ar, dims=("asset", "regime", "side"))
            else:
                w = pm.Normal("log_baseline_asset_regime_z", 0.0, 1.0, dims=("asset", "regime", "side"))
                log_mu = loc + s_ar * w
            mu_b = pm.Deterministic("hawkes_baseline", pt.exp(log_mu), dims=("asset", "regime", "side"))
            theta_pop = pm.Flat("hawkes_branching_raw_pop", dims="branching_coord")
            n_pop, lp = _branching_prior(theta_pop, pr.branching_alpha, pr.branching_beta)
            pm.Potential("hawkes_branching_prior", lp)
            pm.Deterministic("hawkes_branching_pop", n_pop, dims=("target", "source"))
            s_t = pm.HalfNormal("hawkes_branching_raw_asset_sd", sigma=pr.branching_asset_sd,
                                dims="branching_coord")
            zt = pm.Normal("hawkes_branching_raw_asset_z", 0.0, 1.0, dims=("asset", "branching_coord"))
            n_a, _, _ = branching_from_raw_pt(theta_pop[None, :] + s_t[None, :] * zt)
            n_b = pm.Deterministic("hawkes_branching", n_a, dims=("asset", "target", "source"))
            pm.Deterministic("hawkes_spectral_radius", _spectral_radius_pt(n_b), dims="asset")
            lb = pm.Normal("log_hawkes_decay_pop", mu=math.log(pr.decay_median), sigma=pr.log_decay_sd)
            s_b = pm.HalfNormal("log_hawkes_decay_asset_sd", sigma=pr.decay_asset_sd)
            zb = pm.Normal("log_hawkes_decay_asset_z", 0.0, 1.0, dims="asset")
            beta_b = pm.Deterministic("hawkes_decay", pt.exp(lb + s_b * zb), dims="asset")
        if likelihood == "op":
            ll = loglik_op(mu_b, n_b, beta_b, obs)
        elif likelihood == "graph":
            ll = loglik_pt(mu_b, n_b, beta_b, obs)
        else:
            raise ValueError(f"likelihood must be 'op' or 'graph', got {likelihood!r}")
        pm.Potential("hawkes_loglik", ll)
    return model


PARAM_VARS = ("hawkes_baseline", "hawkes_branching", "hawkes_decay")
"""The posterior variables that carry the DESIGN.md section 8 parameters."""


def _posterior_params(idata) -> dict[str, np.ndarray]:
    """Posterior draws as batched params: mu (S, A, 4, 2), n (S, A, 2, 2), beta (S, A)."""
    post = idata.posterior
    out = {}
    for key, var, nd in (("mu", "hawkes_baseline", 2), ("n", "hawkes_branching", 2), ("beta", "hawkes_decay", 0)):
        da = post[var]
        x = da.transpose("chain", "draw", ...).values
        x = x.reshape((-1,) + x.shape[2:])
        if x.ndim == nd + 1:            # single asset: add the asset axis
            x = x[:, None]
        out[key] = x
    return out


def add_log_likelihood(idata, obs: HawkesObs, max_size: int = 20_000_000) -> None:
    """Add the ``log_likelihood`` group (variable ``arrivals``) to ``idata``.

    Per event (the terms ``l_i`` of the module docstring, summing to the
    log-likelihood) when chains x draws x N <= ``max_size``; otherwise the terms
    are summed over K contiguous segments of events (K = max_size // draws), so
    PSIS-LOO becomes leave-one-segment-out (dimension ``segment``; noted in
    ``idata.attrs["log_likelihood_note"]``).
    """
    import xarray as xr

    post = idata.posterior
    C, D = post.sizes["chain"], post.sizes["draw"]
    S, N = C * D, obs.n_events
    if S * N <= max_size:
        K, seg = N, None
    else:
        K = max(1, max_size // S)
        seg = jnp.asarray(np.minimum((np.arange(N) * K) // N, K - 1))
    vals = _pointwise_at_draws(_posterior_params(idata), obs, seg, K).reshape(C, D, K)
    dim = "event" if seg is None else "segment"
    ds = xr.Dataset({"arrivals": (("chain", "draw", dim), vals)},
                    coords={"chain": post.chain.values, "draw": post.draw.values})
    idata.add_groups({"log_likelihood": ds})
    if seg is not None:
        idata.attrs["log_likelihood_note"] = (
            f"log-likelihood summed over {K} contiguous segments of ~{N // K} events "
            f"(chains x draws x events > {max_size}): LOO is leave-one-segment-out")


def _pointwise_at_draws(prm: Mapping[str, np.ndarray], obs: HawkesObs, seg=None, n_seg: int | None = None
                       ) -> np.ndarray:
    """(S, N) per-event terms at S posterior draws (batched params of
    :func:`_posterior_params`), or (S, n_seg) sums over the segments ``seg``."""
    d = _to_jax(prepare(obs))

    def one(p):
        v = _pointwise(jnp, _jax_scan, _jax_add_at, p["mu"], p["n"], p["beta"], d)
        return v if seg is None else jax.ops.segment_sum(v, seg, num_segments=n_seg)

    return np.asarray(jax.lax.map(jax.jit(one), {k: jnp.asarray(v) for k, v in prm.items()}, batch_size=16))


def heldout_lpd(idata, obs: HawkesObs, asset: str | None = None, max_draws: int | None = 400) -> dict[str, Any]:
    """Log predictive density of held-out arrivals ``obs`` (one asset, a window the
    fit did not see): per event the one-step term ``l_i`` of the fit's
    ``log_likelihood`` (log intensity at the event minus the compensator since the
    previous event; the module docstring), at up to ``max_draws`` evenly thinned
    posterior draws, averaged per event (:func:`models.sampling.predictive_density`).
    The held-out window starts with no history (the excitation of the events before
    it is not carried over), as the fit's own window does."""
    from models.sampling import predictive_density, thin_index

    if obs.n_assets != 1:
        raise ValueError("heldout_lpd takes the observations of one asset")
    name = asset or obs.assets[0]
    fitted = json.loads(idata.attrs["assets"]) if "assets" in idata.attrs else [name]
    if name not in fitted:
        raise ValueError(f"asset {name!r} not in the fit ({fitted})")
    a = fitted.index(name)
    prm = _posterior_params(idata)
    idx = thin_index(len(prm["beta"]), max_draws)
    prm = {k: v[idx][:, a:a + 1] for k, v in prm.items()}
    return predictive_density(_pointwise_at_draws(prm, obs), unit="arrivals")


def model_config(obs: HawkesObs, priors: HawkesPriors | None, likelihood: str) -> dict[str, Any]:
    pr = priors or HawkesPriors()
    return {"priors": pr.model_dump(mode="json"), "baseline_coordinates": baseline_coordinates(obs, pr),
            "likelihood": likelihood,
            "assets": list(obs.assets), "regimes": list(REGIMES), "sides": list(SIDES)}


def fit(obs: HawkesObs, config: SamplerConfig | None = None, priors: HawkesPriors | None = None,
        likelihood: Literal["op", "graph"] = "op"):
    """Sample the posterior; returns InferenceData with a ``log_likelihood`` group
    and ``attrs``: ``model`` ("hawkes"), ``model_version`` (hash of the model config
    + code version), ``assets``, ``n_events``, plus the sampler's attrs.

    With ``likelihood="op"`` and nutpie, the numba backend would call the JAX Op in
    object mode, so nutpie is switched to its JAX backend (the Op is inlined there).
    """
    cfg = config or SamplerConfig()
    if likelihood == "op" and cfg.sampler == "nutpie" and cfg.nutpie_backend == "numba":
        cfg = cfg.model_copy(update={"nutpie_backend": "jax"})
    model = build_model(obs, priors, likelihood)
    idata = sample(model, cfg)
    if cfg.log_likelihood:
        add_log_likelihood(idata, obs, cfg.max_log_likelihood_size)
    idata.attrs.update({
        "model_name": MODEL_NAME,
        "model_version": version(obs, priors, likelihood),
        "hawkes_config": json.dumps(model_config(obs, priors, likelihood)),
        "assets": json.dumps(list(obs.assets)),
        "n_events": int(obs.n_events),
    })
    return idata


def version(obs: HawkesObs, priors: HawkesPriors | None = None, likelihood: str = "op") -> str:
    """The model version :func:`fit` stores: hash of the model config (priors, the
    resolved baseline parameterisation, likelihood, assets) and this module's code."""
    import sys

    return model_version(MODEL_NAME, model_config(obs, priors, likelihood), sys.modules[__name__])


# =========================================================================== summaries
def _asset_posterior(idata, asset: str | None):
    """The posterior of one asset (the ``asset`` dim selected away)."""
    post = idata.posterior
    if "asset" in post.dims:
        assets = [str(a) for a in post["asset"].values]
        if asset is None:
            raise ValueError(f"several assets in the posterior {assets}: pass asset=")
        if asset not in assets:
            raise KeyError(f"asset {asset!r} not in {assets}")
        post = post.sel(asset=asset)
    elif asset is not None and "assets" in idata.attrs and asset not in json.loads(idata.attrs["assets"]):
        raise KeyError(f"asset {asset!r} not in {idata.attrs['assets']}")
    return post


def summary_draws(idata, asset: str | None = None) -> dict[str, Any]:
    """Posterior draws (chains x draws, flattened) of every summarized quantity, in the
    layout of :func:`summarize` (the exporter measures each summary's fidelity on them):
    ``{"hawkes_baseline": {regime: {side: draws}}, "hawkes_branching": {target:
    {source: draws}}, "hawkes_decay": draws}``. With several assets pass ``asset=``."""
    post = _asset_posterior(idata, asset)

    def flat(name: str, *dims: str) -> np.ndarray:
        da = post[name].transpose("chain", "draw", *dims)
        return np.asarray(da.values, dtype=float).reshape((-1,) + da.shape[2:])

    mu = flat("hawkes_baseline", "regime", "side")        # (S, 4, 2)
    n = flat("hawkes_branching", "target", "source")      # (S, 2, 2)
    return {
        "hawkes_baseline": {r: {s: mu[:, i, j] for j, s in enumerate(SIDES)} for i, r in enumerate(REGIMES)},
        "hawkes_branching": {t: {s: n[:, i, j] for j, s in enumerate(SIDES)} for i, t in enumerate(SIDES)},
        "hawkes_decay": flat("hawkes_decay"),
    }


def summarize(idata, asset: str | None = None) -> dict[str, Any]:
    """Conjugate summaries by moment matching (the families and equations of
    :mod:`models.export`), in the nested layout of ``mm_runtime.bundle``:
    ``{"hawkes_baseline": {regime: {side: gamma}}, "hawkes_branching": {target:
    {source: beta}}, "hawkes_decay": lognormal}``. The gamma (``shape = m^2/v,
    rate = m/v``) and the beta (``a = m k, b = (1 - m) k``, ``k = m (1 - m)/v - 1``)
    have the posterior's mean ``m`` and variance ``v``; the lognormal's ``mu`` and
    ``sigma`` are the mean and sd of ``log(beta)`` draws.

    With several assets pass ``asset=``; the layout is the single-asset one.
    """
    from models.export import beta_from_draws, gamma_from_draws, lognormal_from_draws

    d = summary_draws(idata, asset)
    return {
        "hawkes_baseline": {r: {s: gamma_from_draws(x) for s, x in per.items()}
                            for r, per in d["hawkes_baseline"].items()},
        "hawkes_branching": {t: {s: beta_from_draws(x) for s, x in per.items()}
                             for t, per in d["hawkes_branching"].items()},
        "hawkes_decay": lognormal_from_draws(d["hawkes_decay"]),
    }
