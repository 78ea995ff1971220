r"""Fill-intensity decay kappa and arrival rate A per regime and side (DESIGN.md section 4).

Model
-----
For asset a, regime r and side s (the aggressor side of a market order: ``buy``
fills passive asks, ``sell`` fills passive bids), market orders reaching depth
>= delta (bps beyond the mid just before them) form a point process of rate

    lambda_{a,r,s}(delta) = A[a,r,s] * exp(-kappa[a,r,s] * delta)

(the exponential fill intensity of Avellaneda & Stoikov 2008 and of the GLFT
quotes, Gueant, Lehalle & Fernandez-Tapia 2013; DESIGN.md section 6 uses kappa
and A in c1, c2). Equivalently: arrivals occur at rate A (all arrivals reach depth
>= 0), and each arrival's depth D is an independent Exponential(kappa) mark, so
the likelihood factorises into **counts** and **depths**.

Counts (overdispersion decided here). Arrivals are Hawkes-clustered (a burst of
market orders triggers more), so counts over a window vary more than a Poisson
count with the same mean: the long-run Fano factor of a Hawkes process with
branching ratio n is 1/(1-n)^2 (Bacry, Mastromatteo & Muzy 2015, eq. 4; 1.8 for
n = 0.25, 6.3 for n = 0.6), and a Poisson likelihood would report a posterior sd
of A too small by that factor's square root. The default
(``count_likelihood="negative_binomial"``) counts arrivals per block of
``count_block_bars`` (6) consecutive volatility bars of one regime (60 s with the
default 10 s bars; shorter at a regime change) and side, with a negative binomial
of type 1 (Cameron & Trivedi 1986), whose variance is a constant multiple of its
mean:

    N_{b,s} ~ NegativeBinomial(mean mu_b = A[a, r_b, s] T_b, dispersion phi_b = mu_b / d[a, s])
    Var N_{b,s} = mu_b (1 + d[a, s])

``1 + d`` is the Fano factor of the block counts. A Hawkes process's Fano factor
does not depend on its rate (the baseline moves with the regime, the kernel does
not), so one ``d`` per asset and side (``count_overdispersion[buy]``) serves every
regime; it is identified from all blocks at once (a per-cell dispersion of the
usual NB2 form, var = mu + mu^2/phi, was tried first: its thin cells are barely
identified and left divergent transitions near the Poisson boundary). A sum of
independent NB1 counts with one d is NB1 again, so the block length changes the
unit, not the model. Prior ``d ~ HalfNormal(5)``: the Poisson limit d -> 0 is the
mode; Fano factors up to ~10 per block are plausible (near-critical branching
ratios 0.7-0.9 are common in high-frequency data, Hardiman, Bercot & Bouchaud
2013).

Why blocks of 60 s: counts in adjacent bars are correlated when clusters outlast
a bar, and the negative binomial treats blocks as independent, so short blocks
miss part of the variance. Coverage of the central 90 % interval of A, 24 seeds x
8 cells of simulated 2-hour Hawkes arrivals (:func:`simulate_hawkes`):

    branching 0.25, decay 0.3/s:  Poisson 80 %;  NB per 10 s bar 88 %
    branching 0.6,  decay 0.5/s:  Poisson 43 %;  NB per 10 s bar 79 %;  NB per 60 s block 88 %

(posterior sd of A / the true sampling sd sqrt(A/T)/(1-n): Poisson 0.4, NB per bar
~0.75 in the second case). Clustering on time scales beyond the block is still
missed; on real data check ``count_overdispersion`` against longer blocks.
``count_likelihood="poisson"`` gives the plain Poisson(A * T_r) likelihood.

Depths. Each arrival's depth is ``depth_bps`` of
:func:`models.data.observations.arrivals` (how far beyond the prevailing mid the
sweep reached). Values below 0 (a stale quote table, or a print on the passive
side of the mid) are clipped to 0: such an arrival reached depth >= 0 and no
more; their number is kept in ``obs.meta["negative_depth"]``. Values between 0 and
the half-spread (hidden/midpoint executions) are kept as they are. Near the touch
the exponential law is often wrong on real data (the depths pile up at the
half-spread and at tick multiples): :func:`ppc_depths` shows where, and
``KappaConfig.min_depth_bps`` = delta0 > 0 fits the tail only: arrivals with
D < delta0 are dropped from counts and depths, the depths enter as the
excess ``D - delta0 ~ Exponential(kappa)`` (memorylessness) and the count mean is
``A T exp(-kappa delta0)``, so A keeps its meaning (the rate at depth 0,
extrapolated). Default delta0 = 0 (all arrivals, A = the observed arrival rate).

Sufficient statistics. For the arrivals of count block b and side s with n
depths summing to S (after truncation) the depth log-likelihood is ``n log kappa
- kappa S``, so the likelihood is evaluated per (block, side) on (N, S) alone --
O(blocks), not O(arrivals). The pointwise log-likelihood (for PSIS-LOO) is one
term per (block, side): the count plus the depths of that block, i.e.
leave-one-block-out, the natural unit for a clustered point process (single
arrivals are not exchangeable units when the counts are modelled per block; a
day of data gives 2,880 terms). LOO comparisons between kappa fits need the same
``count_block_bars`` (the unit is part of the model config, hence of its version).

Partial pooling::

    one asset:  log A[r,s]   = m_A + tau_A z_A[r,s]
    A assets:   log A[a,r,s] = beta_A[r,s] + sigma_A u_A[a] + sigma_Aar w_A[a,r,s]
                beta_A[r,s]  = m_A + tau_A z_A[r,s]

and the same for log kappa (z ~ Normal(0, 1); u ~ ZeroSumNormal(1) over assets,
w ~ ZeroSumNormal(1) over assets and cells, so that the pattern, the asset level
and the interaction are identifiable): the 8 regime x side cells share a level, a
thin asset shares the liquid assets' regime x side pattern. The across-asset
scales are fixed hyperparameters, ``sigma_A = 1`` (an asset's level is free to
within a factor e) and ``sigma_Aar = 0.25`` (its regime x side pattern follows the
shared one to within ~25 %): with a handful of assets they are not identified
(Gelman 2006), and learning them (half-normal or boundary-avoiding gamma priors,
centred or not) left divergent transitions in 2-asset fits.

Sampling coordinates (``KappaConfig.parametrization``; the same model, other
coordinates for the sampler). ``"auto"`` (default): each cell's level is sampled
whitened by its conditional posterior under a normal approximation of its data
(:func:`models.sampling.whitened_normal`). With the cell's crude log estimate y
(log of arrivals / exposure, resp. arrivals / depth sum) and its sampling sd s::

    log A[c] = m + w (y - m) + h x[c],   x[c] ~ Normal(w (m - y) / h, tau / h)
    w = tau^2 / (tau^2 + s^2),   h = tau s / sqrt(tau^2 + s^2)

(with several assets the same for the shared pattern beta[c], y the mean of the
assets' estimates). A cell without data gets the non-centred form (w = 0), one the
data pin (s << tau) the centred form standardised by s, and the weight moves between
the two with tau itself. The common level m is whitened the same way by its
conditional posterior given the cells (:func:`models.sampling.whitened_mean`: its sd
is ~tau / sqrt(cells with data), so it follows tau down when few cells hold data).
s = 1/sqrt(arrivals) for kappa; for A the block counts are overdispersed, s = sqrt(F
/ arrivals) with F their Fano factor (:func:`count_fano`: the Pearson estimate shrunk
to the prior mean 1 + E[d] ~ 5 with the weight of 4 blocks).

Why: short real windows. 172 s of Binance BTCUSDT perp (9 bars of 20 s; on the EM
regime path all in one regime: one count block per side, six cells without data) and
17 min of Hyperliquid BTC (7-9 blocks): d and tau_A trade off (the between-cell spread
of the counts is tau^2 + F / n), and tau's posterior runs from ~0.01 to ~1. The former
coordinates (a fixed choice per cell: centred where 1/sqrt(arrivals) is below a third
of the spread of the cells' estimates, :func:`models.sampling.centred_groups`; m
centred) centred A cells that 200-1000 arrivals seem to pin but, with F ~ 4-9, do not:
the funnel at tau_A -> 0, 159 (Binance) and 16 (Hyperliquid) divergent transitions in
4 x 1000 draws (180 and 21 on the HMM posterior's regime path); target_accept 0.99
left 30 at 63 leapfrog steps per draw. With F in that rule (``"mixed"``, kept as an
option) the A cells are non-centred, and the reverse funnel at tau_A ~ 1 and the
corner d -> 0 remained (4-6); whitened cells under a centred m still had m's funnel at
small tau_kappa where two cells hold all the data (1-3). Whitened cells and m: none,
in 4 seeds of each case, 14 leapfrog steps per draw (26 before on the Binance window). With
thousands of arrivals per cell (the reason centring was introduced: fully non-centred
~100 leapfrog steps per draw, centred ~7 on 4 h of simulated data) it is the centred
form: 12.2 steps per draw against 13.1 with the former rule there. ``"noncentred"``
forces the non-centred form everywhere.

Priors (:class:`KappaConfig`): ``m_A ~ Normal(log 1/s, 3)`` (95 % from 0.003 to
400 events/s: equities to crypto), ``m_kappa ~ Normal(log 0.5/bp, 1.5)`` (95 %
from 0.03 to 9.5 per bp; the original system's prior kappa 2000 per unit price =
0.2 per bp sits inside), ``tau ~ HalfNormal(1)``; ``sigma_asset = 1`` and
``sigma_ar = 0.25`` fixed (see above).

Summaries (:func:`summarize`): ``kappa`` and ``arrival_rate``, a gamma per
regime x side moment-matched to the posterior (``shape = m^2/v``, ``rate = m/v``,
:func:`models.export.gamma_from_draws`), ``{"family": "gamma", "shape", "rate"}``
in the ``mm_runtime.bundle`` layout ``[regime][side]`` -- the Gamma-Exponential
and Gamma-Poisson conjugate priors of the live side (rate in bps resp. seconds
of pseudo-exposure). With the negative-binomial counts the arrival-rate gamma
is wider than a Poisson fit's, i.e. it carries fewer pseudo-seconds: the live
side then trusts its own counts sooner, as it should for clustered flow.

Names (DESIGN.md section 8): ``kappa[high,buy]``, ``arrival_rate[low,sell]``,
``count_overdispersion[buy]`` (= d, Fano factor - 1); with several assets the asset
is the first coordinate and :func:`summarize` takes ``asset=``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mm_runtime.vocabulary import NS, REGIMES, SIDES
from models.data.observations import ObservationConfig
from models.sampling import (SamplerConfig, asset_index, centred_groups, mixed_normal, model_version, sample,
                             whitened_mean, whitened_normal)

MODEL_NAME = "kappa"


# =========================================================================== observations
@dataclass(frozen=True, eq=False)
class KappaObs:
    """Arrivals and exposure of one or several assets.

    Bars (the regime model's bars; one row per asset x bar): ``bar_asset``
    (int32), ``bar_regime`` (int8 0..3), ``bar_exposure_s`` (seconds the bar
    covers). Arrivals (one row each): ``arr_asset``, ``arr_bar`` (global row
    index into the bars), ``arr_side`` (int8, 0 buy / 1 sell), ``depth_bps``
    (clipped at 0, see the module docstring).
    """

    assets: tuple[str, ...]
    bar_asset: np.ndarray
    bar_regime: np.ndarray
    bar_exposure_s: np.ndarray
    arr_asset: np.ndarray
    arr_bar: np.ndarray
    arr_side: np.ndarray
    depth_bps: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        A = len(self.assets)
        if A == 0 or len(set(self.assets)) != A:
            raise ValueError(f"assets must be non-empty and distinct, got {self.assets}")
        nb, na = len(self.bar_asset), len(self.arr_asset)
        if not (len(self.bar_regime) == len(self.bar_exposure_s) == nb):
            raise ValueError("bar arrays must have one entry per bar")
        if not (len(self.arr_bar) == len(self.arr_side) == len(self.depth_bps) == na):
            raise ValueError("arrival arrays must have one entry per arrival")
        if nb == 0:
            raise ValueError("KappaObs has no bars")
        if self.bar_asset.min() < 0 or self.bar_asset.max() >= A:
            raise ValueError("bar asset index out of range")
        if np.any(np.bincount(self.bar_asset, minlength=A) == 0):
            raise ValueError("every asset needs at least one bar")
        if self.bar_regime.min() < 0 or self.bar_regime.max() >= len(REGIMES):
            raise ValueError(f"bar_regime must be in 0..{len(REGIMES) - 1}")
        if not np.all(np.isfinite(self.bar_exposure_s)) or np.any(self.bar_exposure_s <= 0):
            raise ValueError("bar_exposure_s must be finite and > 0")
        if na:
            if self.arr_bar.min() < 0 or self.arr_bar.max() >= nb:
                raise ValueError("arr_bar out of range")
            if np.any(self.bar_asset[self.arr_bar] != self.arr_asset):
                raise ValueError("an arrival's bar belongs to another asset")
            if np.any(~np.isin(self.arr_side, (0, 1))):
                raise ValueError("arr_side must be 0 (buy) or 1 (sell)")
            if not np.all(np.isfinite(self.depth_bps)) or np.any(self.depth_bps < 0):
                raise ValueError("depth_bps must be finite and >= 0 (clip before)")

    @property
    def n_assets(self) -> int:
        return len(self.assets)

    @property
    def n_bars(self) -> int:
        return int(len(self.bar_asset))

    @property
    def n_arrivals(self) -> int:
        return int(len(self.arr_asset))

    @property
    def arr_regime(self) -> np.ndarray:
        return self.bar_regime[self.arr_bar]

    def bar_stats(self, min_depth_bps: float = 0.0) -> dict[str, np.ndarray]:
        """Per (bar, side) sufficient statistics: ``count`` (arrivals with D >=
        min_depth) and ``depth_sum`` (sum of D - min_depth), shape (n_bars, 2)."""
        keep = self.depth_bps >= min_depth_bps
        idx = self.arr_bar[keep] * 2 + self.arr_side[keep].astype(np.int64)
        cnt = np.bincount(idx, minlength=2 * self.n_bars).reshape(self.n_bars, 2)
        s = np.bincount(idx, weights=self.depth_bps[keep] - min_depth_bps,
                        minlength=2 * self.n_bars).reshape(self.n_bars, 2)
        return {"count": cnt, "depth_sum": s}

    def exposure(self) -> np.ndarray:
        """(A, 4) seconds per asset and regime."""
        out = np.zeros((self.n_assets, len(REGIMES)))
        np.add.at(out, (self.bar_asset, self.bar_regime), self.bar_exposure_s)
        return out

    def select(self, asset: str) -> KappaObs:
        a = self.assets.index(asset)
        bm = self.bar_asset == a
        new_index = np.full(self.n_bars, -1, dtype=np.int64)
        new_index[bm] = np.arange(int(bm.sum()))
        am = self.arr_asset == a
        return KappaObs(assets=(asset,), bar_asset=np.zeros(int(bm.sum()), np.int32),
                        bar_regime=self.bar_regime[bm], bar_exposure_s=self.bar_exposure_s[bm],
                        arr_asset=np.zeros(int(am.sum()), np.int32), arr_bar=new_index[self.arr_bar[am]],
                        arr_side=self.arr_side[am], depth_bps=self.depth_bps[am], meta=dict(self.meta))


def combine(*obs: KappaObs) -> KappaObs:
    """Concatenate the assets of several :class:`KappaObs` (names must differ)."""
    if not obs:
        raise ValueError("combine needs at least one KappaObs")
    assets: list[str] = []
    a_off, b_off = [], []
    nb = 0
    for o in obs:
        a_off.append(len(assets))
        b_off.append(nb)
        assets.extend(o.assets)
        nb += o.n_bars
    cat = lambda f: np.concatenate([f(o, a, b) for o, a, b in zip(obs, a_off, b_off)])  # noqa: E731
    return KappaObs(
        assets=tuple(assets),
        bar_asset=cat(lambda o, a, b: o.bar_asset + a).astype(np.int32),
        bar_regime=cat(lambda o, a, b: o.bar_regime).astype(np.int8),
        bar_exposure_s=cat(lambda o, a, b: o.bar_exposure_s).astype(float),
        arr_asset=cat(lambda o, a, b: o.arr_asset + a).astype(np.int32),
        arr_bar=cat(lambda o, a, b: o.arr_bar + b).astype(np.int64),
        arr_side=cat(lambda o, a, b: o.arr_side).astype(np.int8),
        depth_bps=cat(lambda o, a, b: o.depth_bps).astype(float),
        meta={"combined": [o.meta for o in obs]})


def _single(asset: str, bar_regime, bar_exposure, arr_bar, arr_side, depth, meta) -> KappaObs:
    return KappaObs(assets=(asset,), bar_asset=np.zeros(len(bar_regime), np.int32),
                    bar_regime=np.asarray(bar_regime, np.int8), bar_exposure_s=np.asarray(bar_exposure, float),
                    arr_asset=np.zeros(len(arr_bar), np.int32), arr_bar=np.asarray(arr_bar, np.int64),
                    arr_side=np.asarray(arr_side, np.int8), depth_bps=np.asarray(depth, float), meta=meta)


def observations(market, regimes: Any = None, *, config: ObservationConfig | None = None,
                 bars=None) -> KappaObs:
    """Arrivals of one market as :class:`KappaObs` (DESIGN.md section 3 rules).

    * Arrivals: :func:`models.data.observations.arrivals` (one per sweep; its
      ``depth_bps`` is the depth reached beyond the mid just before it), clipped
      at 0 (module docstring); side +1 -> buy (0), -1 -> sell (1).
    * Bars and exposure: :func:`models.data.observations.volatility_bars`; bar k
      covers ``[bar_start, bar_end)`` and the last one extends to the end of the
      data (``market.end_ns``), as in ``regime_at``; its exposure is the time it
      covers. Arrivals before the first bar (before the first quote) are dropped.
    * Regimes: what ``label_regimes`` accepts (one int per bar, e.g. the regime
      model's path or the synthetic truth's ``regime_path``; probabilities; None =
      placeholder quantile labelling).
    """
    from models.data import observations as ob

    cfg = config or ObservationConfig()
    arr = ob.arrivals(market)
    if bars is None:
        bars = ob.volatility_bars(market, cfg)
    reg = ob.label_regimes(bars, regimes)
    start = bars["bar_start"].to_numpy(dtype=np.int64)
    end = bars["bar_end"].to_numpy(dtype=np.int64).copy()
    tE = int(market.end_ns)
    end[-1] = max(tE, start[-1] + 1)
    end = np.minimum(end, np.maximum(tE, start + 1))
    exposure = (end - start) / NS
    ts = arr["ts"].to_numpy(dtype=np.int64)
    keep = ts >= start[0]
    bar = np.searchsorted(start, ts[keep], side="right") - 1
    side = np.where(arr["side"].to_numpy()[keep] > 0, 0, 1)
    raw = arr["depth_bps"].to_numpy(dtype=float)[keep]
    meta = {"source": getattr(market, "source", None), "dropped_before_first_bar": int((~keep).sum()),
            "negative_depth": int((raw < 0).sum()), "bar_seconds": float(cfg.bar_seconds)}
    return _single(str(market.asset), reg, exposure, bar, side, np.maximum(raw, 0.0), meta)


# =========================================================================== truth & simulation
def truth_params(truth: Mapping[str, Any]) -> dict[str, float]:
    """Flat ``{name: value}`` from a synthetic truth dict (``params``) or a flat dict."""
    p = truth.get("params", truth)
    return {str(k): float(v) for k, v in p.items() if isinstance(v, (int, float))}


def _grid(p: Mapping[str, float], name: str, default: float | None = None) -> np.ndarray | None:
    out = np.empty((len(REGIMES), 2))
    for r, rn in enumerate(REGIMES):
        for s, sn in enumerate(SIDES):
            key = f"{name}[{rn},{sn}]"
            if key not in p:
                if default is None:
                    return None
                out[r, s] = default
            else:
                out[r, s] = p[key]
    return out


def _path(truth: Mapping[str, Any], regime_path, duration_s, bar_seconds) -> tuple[np.ndarray, np.ndarray]:
    """(regime per bar, exposure per bar)."""
    if regime_path is None:
        regime_path = truth.get("regime_path")
    if regime_path is None:
        n = int(math.ceil((duration_s or 3600.0) / bar_seconds))
        regime_path = np.repeat(np.arange(len(REGIMES)), int(math.ceil(n / len(REGIMES))))[:n]
    path = np.asarray(regime_path, dtype=np.int8)
    T = float(duration_s if duration_s is not None else truth.get("duration_s", bar_seconds * len(path)))
    n = int(math.ceil(T / bar_seconds - 1e-12))
    path = path[:n]
    b0 = bar_seconds * np.arange(len(path))
    return path, np.minimum(bar_seconds, T - b0)


def simulate(truth: Mapping[str, Any], rng: np.random.Generator | int | None = None, *,
             regime_path: Sequence[int] | None = None, duration_s: float | None = None,
             bar_seconds: float | None = None, asset: str = "SIM") -> KappaObs:
    """Arrivals from the model's own generative process.

    ``truth`` (flat names or a synthetic truth dict): ``kappa[<regime>,<side>]``
    and ``arrival_rate[<regime>,<side>]`` for all 4 x 2 cells; optional
    ``count_overdispersion[<side>]`` = d (counts per bar are then the model's
    negative binomial with mean A T_b and variance A T_b (1 + d), else Poisson(A
    T_b)). The regime path (one
    regime per bar of ``bar_seconds``, default 10 s) is ``regime_path``, else the
    truth's ``regime_path``, else equal blocks of the 4 regimes over
    ``duration_s`` (default 3600 s). Depths ~ Exponential(kappa[r, s]).
    """
    p = truth_params(truth)
    rng = np.random.default_rng(rng)
    bs = float(bar_seconds or truth.get("bar_seconds", 10.0))
    path, blen = _path(truth, regime_path, duration_s, bs)
    A = _grid(p, "arrival_rate")
    kap = _grid(p, "kappa")
    d = [p.get(f"count_overdispersion[{sn}]") for sn in SIDES]
    if A is None or kap is None:
        raise ValueError("truth needs arrival_rate[r,s] and kappa[r,s] for every regime and side")
    mean = A[path] * blen[:, None]  # (bars, 2)
    if d[0] is None or d[1] is None:
        cnt = rng.poisson(mean)
    else:
        ph = np.maximum(mean / np.asarray(d, dtype=float)[None, :], 1e-12)  # NB1: phi = mean / d
        cnt = rng.poisson(rng.gamma(ph, mean / ph))
    bar = np.repeat(np.repeat(np.arange(len(path)), 2), cnt.ravel())
    side = np.repeat(np.tile([0, 1], len(path)), cnt.ravel())
    depth = rng.exponential(1.0 / kap[path[bar], side])
    return _single(asset, path, blen, bar, side, depth,
                   {"truth": {k: v for k, v in p.items() if k.split("[")[0] in
                              ("kappa", "arrival_rate", "count_overdispersion")}, "simulated": True,
                    "bar_seconds": bs})


def simulate_hawkes(truth: Mapping[str, Any], rng: np.random.Generator | int | None = None, *,
                    branching: float = 0.5, decay: float = 0.5, regime_path: Sequence[int] | None = None,
                    duration_s: float | None = None, bar_seconds: float | None = None,
                    asset: str = "SIM") -> KappaObs:
    """Clustered arrivals: per side, a self-exciting Hawkes process (kernel
    ``branching * decay * exp(-decay t)``) with baseline ``A (1 - branching)`` so its
    stationary rate is ``arrival_rate``; simulated exactly by the cluster
    representation (Hawkes & Oakes 1974). An event's regime (and depth law) is
    that of the bar it falls in. Count variance over long windows is
    ``A T / (1 - branching)^2`` (Fano factor 1/(1-n)^2), the case the Poisson
    likelihood gets wrong."""
    p = truth_params(truth)
    rng = np.random.default_rng(rng)
    bs = float(bar_seconds or truth.get("bar_seconds", 10.0))
    path, blen = _path(truth, regime_path, duration_s, bs)
    T = float(blen.sum())
    A = _grid(p, "arrival_rate")
    kap = _grid(p, "kappa")
    if A is None or kap is None:
        raise ValueError("truth needs arrival_rate[r,s] and kappa[r,s] for every regime and side")
    b0 = bs * np.arange(len(path))
    bars, sides = [], []
    for s in range(2):
        cnt = rng.poisson(A[path, s] * (1.0 - branching) * blen)
        t = np.repeat(b0, cnt) + rng.random(int(cnt.sum())) * np.repeat(blen, cnt)
        gen, all_t = t, [t]
        while len(gen):
            kids = rng.poisson(branching, len(gen))
            gen = np.repeat(gen, kids) + rng.exponential(1.0 / decay, int(kids.sum()))
            gen = gen[gen < T]
            all_t.append(gen)
        t = np.concatenate(all_t)
        bars.append(np.minimum((t // bs).astype(np.int64), len(path) - 1))
        sides.append(np.full(len(t), s, np.int8))
    bar, side = np.concatenate(bars), np.concatenate(sides)
    order = np.lexsort((side, bar))
    bar, side = bar[order], side[order]
    depth = rng.exponential(1.0 / kap[path[bar], side])
    return _single(asset, path, blen, bar, side, depth,
                   {"truth": {k: v for k, v in p.items() if k.split("[")[0] in ("kappa", "arrival_rate")},
                    "simulated": True, "hawkes": {"branching": branching, "decay": decay}, "bar_seconds": bs})


# =========================================================================== model
class KappaConfig(BaseModel):
    """Likelihood options and priors (module docstring). Part of the model version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    count_likelihood: Literal["negative_binomial", "poisson"] = "negative_binomial"
    min_depth_bps: float = Field(0.0, ge=0.0)
    rate_median: float = Field(1.0, gt=0.0, description="events/s")
    rate_log_sd: float = Field(3.0, gt=0.0)
    kappa_median: float = Field(0.5, gt=0.0, description="1/bps")
    kappa_log_sd: float = Field(1.5, gt=0.0)
    cell_scale: float = Field(1.0, gt=0.0)
    asset_scale: float = Field(1.0, gt=0.0, description="fixed sd of an asset's log level")
    asset_cell_scale: float = Field(0.25, gt=0.0)
    overdispersion_scale: float = Field(5.0, gt=0.0, description="HalfNormal scale of d (Fano - 1)")
    count_block_bars: int = Field(6, ge=1, description="bars per counting block (consecutive bars of "
                                  "one regime; module docstring)")
    parametrization: Literal["auto", "mixed", "noncentred"] = "auto"
    centre_ratio: float = Field(3.0, gt=0.0, description="mixed: a cell is centred when its log "
                                "estimate's sd (1/sqrt(arrivals)) is below 1/ratio of the cells' spread")
    centre_min_spread: float = Field(0.1, gt=0.0, description="floor of that spread")


def _pooled_log(name: str, obs: KappaObs, median: float, log_sd: float, cfg: KappaConfig,
                cell_est: np.ndarray, cell_counts: np.ndarray):
    """log x[a, r, s] (A x 4 x 2 tensor); registers ``name`` = exp(log x).

    One asset: ``log x[c] ~ Normal(m, tau)`` over the 8 regime x side cells c.
    Several: ``log x[a,c] = beta[c] + sigma_asset u[a] + sigma_ac w[a,c]``,
    ``beta[c] ~ Normal(m, tau)`` (the pattern averaged over assets), u and w
    zero-sum normals (over assets, resp. over assets and cells) so that the three
    are identifiable, sigma_asset and sigma_ac fixed. The cells (``beta``) are sampled
    in the coordinates of ``cfg.parametrization`` (:func:`_cells`) from the crude
    per-cell estimates ``cell_est`` (log MLE) and ``cell_counts`` (arrivals, for the
    arrival rate divided by the count Fano factor: sd 1/sqrt(cell_counts))."""
    import pymc as pm
    import pytensor.tensor as pt

    R, A = len(REGIMES), obs.n_assets
    tau = pm.HalfNormal(f"{name}_cell_scale", cfg.cell_scale)
    if A == 1:
        m = _level(f"{name}_log_mu", math.log(median), log_sd, tau, cell_est, cell_counts, cfg)
        lx = pt.reshape(_cells(f"{name}_cell", m, tau, cell_est, cell_counts, cfg), (1, R, 2))
        pm.Deterministic(name, pt.exp(lx[0]), dims=("regime", "side"))
        return lx
    C = len(REGIMES) * 2
    n_ac = np.asarray(cell_counts, dtype=float).reshape(A, C)
    e_ac = np.asarray(cell_est, dtype=float).reshape(A, C)
    # beta[c] is the mean over assets of log x[a, c] (u and w sum to zero): its crude
    # estimate is the mean of the assets' estimates, its variance the sum of theirs / A^2
    # (an asset without arrivals in c contributes its spread around the pattern)
    has, k = n_ac > 0, (n_ac > 0).sum(0)
    pooled_est = np.where(k > 0, np.where(has, e_ac, 0.0).sum(0) / np.maximum(k, 1), np.nan)
    var_ac = np.where(has, 1.0 / np.where(has, n_ac, 1.0), cfg.asset_cell_scale**2)
    pooled_n = np.where(k > 0, A**2 / var_ac.sum(0), 0.0)   # 1 / variance, in arrivals
    m = _level(f"{name}_log_mu", math.log(median), log_sd, tau, pooled_est, pooled_n, cfg)
    beta = _cells(f"{name}_cell", m, tau, pooled_est, pooled_n, cfg)  # (C,) shared pattern
    # across-asset scales are fixed hyperparameters (module docstring)
    nu = cfg.asset_scale * pm.ZeroSumNormal(f"{name}_asset_z", sigma=1.0, dims="asset")
    w = cfg.asset_cell_scale * pm.ZeroSumNormal(f"{name}_asset_cell_z", sigma=1.0, dims=("asset", "cell"),
                                                n_zerosum_axes=2)
    lx = pt.reshape(beta[None, :] + nu[:, None] + w, (A, R, 2))
    pm.Deterministic(name, pt.exp(lx), dims=("asset", "regime", "side"))
    return lx


def _level(name: str, mu0: float, sd0: float, tau, est: np.ndarray, n: np.ndarray, cfg: KappaConfig):
    """The cells' common level m ~ Normal(mu0, sd0): whitened by the cells' data with
    ``parametrization="auto"`` (:func:`models.sampling.whitened_mean`), else plain."""
    import pymc as pm

    if cfg.parametrization != "auto":
        return pm.Normal(name, mu0, sd0)
    n, est = np.asarray(n, dtype=float).ravel(), np.asarray(est, dtype=float).ravel()
    ok = (n > 0) & np.isfinite(est)
    return whitened_mean(name, mu0, sd0, tau, np.where(ok, est, np.nan),
                         np.where(ok, 1.0 / np.sqrt(np.where(ok, n, 1.0)), np.inf))


def _cells(name: str, m, tau, est: np.ndarray, n: np.ndarray, cfg: KappaConfig):
    """The cells' log levels ~ Normal(m, tau) (flat), in the sampling coordinates of
    ``cfg.parametrization`` (module docstring): ``est`` the crude log estimates, ``n``
    the (effective) arrivals behind them (sd 1/sqrt(n); 0 = no data)."""
    n, est = np.asarray(n, dtype=float).ravel(), np.asarray(est, dtype=float).ravel()
    ok = (n > 0) & np.isfinite(est)
    if cfg.parametrization == "auto":
        sd = np.where(ok, 1.0 / np.sqrt(np.where(ok, n, 1.0)), np.inf)
        return whitened_normal(name, m, tau, np.where(ok, est, np.nan), sd)
    return mixed_normal(name, m, tau, _centred(np.where(ok, est, np.nan), np.where(ok, n, 0.0), cfg))


def count_fano(rows: Mapping[str, Any], cfg: KappaConfig, n_assets: int = 1) -> np.ndarray:
    """(n_assets, 2) Fano factor of the block counts per asset and side, as the
    sampling coordinates use it (module docstring, "Sampling coordinates"): the Pearson
    statistic ``X2 = sum (N_b - m_b)^2 / m_b`` of the blocks around their cell's
    rate (``m_b = n_c T_b / T_c``, ``df`` = blocks - cells with arrivals) shrunk
    toward the prior mean Fano factor ``F0 = 1 + E[d] = 1 + overdispersion_scale
    sqrt(2/pi)`` with the weight of ``FANO_PRIOR_BLOCKS`` blocks: ``(X2 + nu0 F0) /
    (df + nu0)``. 1 for ``count_likelihood="poisson"`` (the model's own Fano factor)."""
    out = np.ones((n_assets, 2))
    if cfg.count_likelihood != "negative_binomial":
        return out
    n, T, cell = rows["value"][:, 0], rows["exposure_s"], rows["cell"]
    C = n_assets * len(REGIMES) * 2
    n_c = np.bincount(cell, weights=n, minlength=C)
    T_c = np.bincount(cell, weights=T, minlength=C)
    has = n_c[cell] > 0
    m = np.where(has, n_c[cell] * T / np.where(T_c[cell] > 0, T_c[cell], 1.0), 1.0)
    x2 = np.where(has, (n - m) ** 2 / m, 0.0)
    f0 = 1.0 + cfg.overdispersion_scale * math.sqrt(2.0 / math.pi)
    for a in range(n_assets):
        for s in range(2):
            sel = has & (rows["asset"] == a) & (rows["side"] == s)
            df = int(sel.sum()) - len(np.unique(cell[sel]))
            out[a, s] = (x2[sel].sum() + FANO_PRIOR_BLOCKS * f0) / (df + FANO_PRIOR_BLOCKS)
    return out


FANO_PRIOR_BLOCKS = 4.0
"""Weight (in blocks) of the prior mean Fano factor in :func:`count_fano`: X2/df has a
relative sd of sqrt(2/df), so a handful of blocks do not estimate it."""


def _centred(est: np.ndarray, n: np.ndarray, cfg: KappaConfig) -> np.ndarray:
    """Centring mask from per-cell log estimates and (effective) arrival counts: the
    estimate's sd is 1/sqrt(n) (for the arrival rate n = arrivals / Fano factor)."""

    n = np.asarray(n, dtype=float)
    if cfg.parametrization == "noncentred":
        return np.zeros(n.shape, dtype=bool)
    with np.errstate(divide="ignore"):
        sd = np.where(n > 0, 1.0 / np.sqrt(n), np.inf)
    return centred_groups(np.where(n > 0, est, np.nan), sd, cfg.centre_ratio, cfg.centre_min_spread)


def _nb_logp(value, mean, phi, log_kappa, kappa):
    import pymc as pm

    n, s = value[..., 0], value[..., 1]
    return pm.logp(pm.NegativeBinomial.dist(mu=mean, alpha=phi), n) + n * log_kappa - kappa * s


def _poisson_logp(value, mean, log_kappa, kappa):
    import pymc as pm

    n, s = value[..., 0], value[..., 1]
    return pm.logp(pm.Poisson.dist(mean), n) + n * log_kappa - kappa * s


def count_blocks(obs: KappaObs, block_bars: int) -> np.ndarray:
    """Block index of every bar: runs of consecutive bars of one asset and one regime,
    cut every ``block_bars`` bars (the counting unit of the likelihood)."""
    new = np.ones(obs.n_bars, dtype=bool)
    new[1:] = (obs.bar_asset[1:] != obs.bar_asset[:-1]) | (obs.bar_regime[1:] != obs.bar_regime[:-1])
    run = np.cumsum(new) - 1
    start = np.flatnonzero(new)
    pos = np.arange(obs.n_bars) - start[run]
    cut = new | (pos % max(int(block_bars), 1) == 0)
    return np.cumsum(cut) - 1


def block_rows(obs: KappaObs, config: KappaConfig | None = None) -> dict[str, Any]:
    """The likelihood's rows: one per (count block, side), blocks by :func:`count_blocks`.

    ``value`` (rows, 2): the block's count of arrivals reaching ``min_depth_bps`` and
    the sum of their depth excesses; ``exposure_s`` the block's seconds; ``block``,
    ``side`` (0 buy, 1 sell), ``asset``, ``regime`` and ``cell`` (flat asset x regime x
    side index) per row; ``n_blocks``."""
    cfg = config or KappaConfig()
    st = obs.bar_stats(cfg.min_depth_bps)
    blk = count_blocks(obs, cfg.count_block_bars)
    nb = int(blk.max()) + 1
    cnt = np.zeros((nb, 2))
    ssum = np.zeros((nb, 2))
    np.add.at(cnt, blk, st["count"])
    np.add.at(ssum, blk, st["depth_sum"])
    b_expo = np.bincount(blk, weights=obs.bar_exposure_s, minlength=nb)
    first = np.unique(blk, return_index=True)[1]
    b_asset, b_regime = obs.bar_asset[first], obs.bar_regime[first]
    rows_bar = np.repeat(np.arange(nb), 2)
    rows_side = np.tile([0, 1], nb)
    asset, regime = b_asset[rows_bar].astype(np.int64), b_regime[rows_bar].astype(np.int64)
    return {"value": np.stack([cnt.ravel(), ssum.ravel()], axis=1), "exposure_s": b_expo[rows_bar],
            "block": rows_bar, "side": rows_side, "asset": asset, "regime": regime,
            "cell": (asset * len(REGIMES) + regime) * 2 + rows_side, "n_blocks": nb}


def build_model(obs: KappaObs, config: KappaConfig | None = None):
    """The kappa / arrival-rate model as a ``pm.Model`` (module docstring).

    Observed variable ``arrivals``: one row per (count block, side) holding (count,
    sum of depth excesses); its logp per row is the count term plus ``n log kappa -
    kappa S``, so the pointwise log-likelihood is per (block, side). A block is
    ``count_block_bars`` consecutive bars of one regime (fewer at a regime change)."""
    import pymc as pm
    import pytensor.tensor as pt

    cfg = config or KappaConfig()
    rows = block_rows(obs, cfg)
    nb = rows["n_blocks"]
    rows_side, cell = rows["side"], rows["cell"]
    value, expo = rows["value"], rows["exposure_s"]
    coords: dict[str, Any] = {"regime": list(REGIMES), "side": list(SIDES),
                              "bar_side": np.arange(2 * nb), "arrival_stat": ["count", "depth_sum"]}
    if obs.n_assets > 1:
        coords["asset"] = list(obs.assets)
        coords["cell"] = [f"{r},{sd}" for r in REGIMES for sd in SIDES]
    with pm.Model(coords=coords) as model:
        C = obs.n_assets * len(REGIMES) * 2
        counts = np.bincount(cell, weights=value[:, 0], minlength=C)
        with np.errstate(divide="ignore", invalid="ignore"):
            est_A = np.log(counts / np.bincount(cell, weights=expo, minlength=C))
            est_k = np.log(counts / np.bincount(cell, weights=value[:, 1], minlength=C))
        # a count of n arrivals with Fano factor F pins log A as well as n / F Poisson arrivals would
        fano = count_fano(rows, cfg, obs.n_assets)
        n_eff_A = counts / fano[np.arange(C) // (2 * len(REGIMES)), np.arange(C) % 2]
        log_A = _pooled_log("arrival_rate", obs, cfg.rate_median, cfg.rate_log_sd, cfg, est_A, n_eff_A).ravel()
        log_k = _pooled_log("kappa", obs, cfg.kappa_median, cfg.kappa_log_sd, cfg, est_k, counts).ravel()
        kap = pt.exp(log_k)
        log_mean_cell = log_A - kap * cfg.min_depth_bps
        mean = pt.exp(log_mean_cell[cell]) * expo
        if cfg.count_likelihood == "negative_binomial":
            od_dims = ("asset", "side") if obs.n_assets > 1 else ("side",)
            od = pt.reshape(pm.HalfNormal("count_overdispersion", cfg.overdispersion_scale, dims=od_dims),
                            (obs.n_assets, 2))
            row_od = od[rows["asset"], rows_side]   # the row's asset (not bar_asset[block])
            pm.CustomDist("arrivals", mean, mean / row_od, log_k[cell], kap[cell], logp=_nb_logp,
                          observed=value, dims=("bar_side", "arrival_stat"), signature="(),(),(),()->(2)")
        else:
            pm.CustomDist("arrivals", mean, log_k[cell], kap[cell], logp=_poisson_logp,
                          observed=value, dims=("bar_side", "arrival_stat"), signature="(),(),()->(2)")
    return model


MULTI_ASSET_TARGET_ACCEPT = 0.95
"""With several assets :func:`fit` raises the sampler's target_accept to at least
this (the across-asset scales leave a few divergent transitions at 0.9)."""


def _sampler_config(config: SamplerConfig | None, n_assets: int) -> SamplerConfig:
    config = config or SamplerConfig()
    if n_assets > 1 and config.target_accept < MULTI_ASSET_TARGET_ACCEPT:
        config = config.model_copy(update={"target_accept": MULTI_ASSET_TARGET_ACCEPT})
    return config


def version(model_config: KappaConfig | None = None, obs: KappaObs | None = None) -> str:
    """The model version :func:`fit` stores: hash of the model config and this
    module's code (:func:`models.sampling.model_version`); ``obs`` is not used."""
    import models.kappa as this

    return model_version(MODEL_NAME, model_config or KappaConfig(), this)


def fit(obs: KappaObs | Sequence[KappaObs], sampler: SamplerConfig | None = None,
        model_config: KappaConfig | None = None):
    """Fit; returns ``az.InferenceData`` with ``attrs["model_version"]`` (hash of
    the model config and this module's code). ``obs`` may hold several assets
    (or be a list of single-asset obs)."""
    if not isinstance(obs, KappaObs):
        obs = combine(*obs)
    cfg = model_config or KappaConfig()
    idata = sample(build_model(obs, cfg), _sampler_config(sampler, obs.n_assets))
    idata.attrs["model_name"] = MODEL_NAME
    idata.attrs["model_version"] = version(cfg)
    idata.attrs["kappa_config"] = json.dumps(cfg.model_dump(mode="json"))
    idata.attrs["assets"] = json.dumps(list(obs.assets))
    idata.attrs["n_arrivals"] = int(obs.n_arrivals)
    idata.attrs["n_bars"] = int(obs.n_bars)
    return idata


# =========================================================================== summaries
def _assets(idata) -> list[str]:
    return json.loads(idata.attrs["assets"])


def _asset_index(idata, asset: str | None) -> int:
    return asset_index(_assets(idata), asset)


def _draws(idata, name: str, a: int) -> np.ndarray:
    """(S, 4, 2) posterior draws of a regime x side variable for asset index a."""
    da = idata.posterior[name]
    if "asset" in da.dims:
        da = da.isel(asset=a)
    da = da.transpose("chain", "draw", "regime", "side")
    v = np.asarray(da.values)
    return v.reshape(-1, v.shape[2], v.shape[3])


def summary_draws(idata, asset: str | None = None) -> dict[str, Any]:
    """``{"kappa": {regime: {side: draws}}, "arrival_rate": {...}}`` (the inputs of
    :func:`summarize`, for the exporter's faithfulness report)."""
    a = _asset_index(idata, asset)
    out: dict[str, Any] = {}
    for name in ("kappa", "arrival_rate"):
        x = _draws(idata, name, a)
        out[name] = {rn: {sn: x[:, r, s] for s, sn in enumerate(SIDES)} for r, rn in enumerate(REGIMES)}
    return out


def summarize(idata, asset: str | None = None) -> dict[str, Any]:
    """``{"kappa": {regime: {side: gamma}}, "arrival_rate": {regime: {side: gamma}}}``,
    each moment-matched to the posterior (mean and variance equal)."""
    from models.export import gamma_from_draws

    d = summary_draws(idata, asset)
    return {name: {rn: {sn: gamma_from_draws(x) for sn, x in per.items()} for rn, per in grid.items()}
            for name, grid in d.items()}


# =========================================================================== held-out predictive
def heldout_lpd(idata, obs: KappaObs, asset: str | None = None, *, max_draws: int | None = 400
                ) -> dict[str, Any]:
    """Log predictive density of held-out arrivals ``obs`` (one asset, a window the
    fit did not see), one term per (count block, side) as in the fit's
    ``log_likelihood`` (:func:`block_rows` with the fit's :class:`KappaConfig`):
    the block's count (negative binomial of type 1 with mean ``A T exp(-kappa
    delta0)`` and Fano factor ``1 + d``, or Poisson) plus its depths
    (``n log kappa - kappa S``), at up to ``max_draws`` thinned posterior draws,
    averaged per row (:func:`models.sampling.predictive_density`). ``asset``
    selects the fitted asset (default: ``obs``'s single asset)."""
    from scipy import stats

    from models.sampling import predictive_density, thin_index

    if obs.n_assets != 1:
        raise ValueError("heldout_lpd takes the observations of one asset")
    cfg = KappaConfig.model_validate(json.loads(idata.attrs["kappa_config"])) \
        if "kappa_config" in idata.attrs else KappaConfig()
    a = _asset_index(idata, asset or obs.assets[0])
    A, kap = _draws(idata, "arrival_rate", a), _draws(idata, "kappa", a)     # (S, 4, 2)
    idx = thin_index(len(A), max_draws)
    A, kap = A[idx], kap[idx]
    rows = block_rows(obs, cfg)
    n, ssum = rows["value"][:, 0], rows["value"][:, 1]
    r, sd = rows["regime"], rows["side"]
    k_row = kap[:, r, sd]                                                   # (S, rows)
    mean = A[:, r, sd] * np.exp(-k_row * cfg.min_depth_bps) * rows["exposure_s"][None, :]
    if cfg.count_likelihood == "negative_binomial":
        od = idata.posterior["count_overdispersion"]
        if "asset" in od.dims:
            od = od.isel(asset=a)
        d = np.asarray(od.transpose("chain", "draw", "side").values).reshape(-1, 2)[idx][:, sd]
        phi = mean / d                                  # NB(mu, alpha=phi): var = mu (1 + d)
        count = stats.nbinom.logpmf(n[None, :], phi, phi / (phi + mean))
    else:
        count = stats.poisson.logpmf(n[None, :], mean)
    ll = count + n[None, :] * np.log(k_row) - k_row * ssum[None, :]
    return predictive_density(ll, unit="(count block, side) rows")


# =========================================================================== posterior predictive
def ppc_depths(idata, obs: KappaObs, asset: str | None = None, grid: Sequence[float] | None = None,
               prob: float = 0.9, n_draws: int = 400, seed: int = 0):
    """Posterior predictive check of the depth distribution per regime x side.

    For each cell with arrivals: the observed survival ``P(D >= delta)`` (share of
    the cell's arrivals, among those >= min_depth, reaching delta) on ``grid``
    (default 41 points from min_depth to the 99.5 % quantile of the depths) and the
    posterior predictive of that empirical survival: for posterior draw kappa_j,
    ``Binomial(n, exp(-kappa_j (delta - delta0))) / n`` -- the sampling noise of n
    arrivals included, so a well-specified model keeps the observed curve inside
    the central ``prob`` band at about ``prob`` of the points. Returns a
    DataFrame: ``regime``, ``side``, ``depth_bps``, ``n``, ``observed``,
    ``predicted`` (posterior predictive mean), ``lo``, ``hi``, ``outside``.
    ``attrs``: ``share_outside`` and ``share_outside_near_touch`` (points below
    the cells' median depth) -- where the exponential form misfits.
    """
    import pandas as pd

    cfg = KappaConfig(**json.loads(idata.attrs["kappa_config"])) if "kappa_config" in idata.attrs else KappaConfig()
    d0 = cfg.min_depth_bps
    a = _asset_index(idata, asset)
    o = obs.select(asset) if (asset is not None and obs.n_assets > 1) else obs
    if o.n_assets > 1:
        raise ValueError("obs holds several assets: pass asset=")
    kap = _draws(idata, "kappa", a)
    rng = np.random.default_rng(seed)
    take = rng.choice(kap.shape[0], size=min(n_draws, kap.shape[0]), replace=False)
    kap = kap[take]
    keep = o.depth_bps >= d0
    depth, reg, side = o.depth_bps[keep], o.arr_regime[keep], o.arr_side[keep]
    if grid is None:
        hi = float(np.quantile(depth, 0.995)) if len(depth) else d0 + 10.0
        grid = np.linspace(d0, max(hi, d0 + 1e-6), 41)
    g = np.asarray(grid, dtype=float)
    rows = []
    lo_q, hi_q = (1 - prob) / 2, 1 - (1 - prob) / 2
    for r, rn in enumerate(REGIMES):
        for s, sn in enumerate(SIDES):
            x = np.sort(depth[(reg == r) & (side == s)])
            n = len(x)
            if n == 0:
                continue
            obs_surv = 1.0 - np.searchsorted(x, g, side="left") / n
            p = np.exp(-kap[:, r, s][:, None] * np.maximum(g[None, :] - d0, 0.0))
            sim = rng.binomial(n, p) / n
            lo, hi = np.quantile(sim, [lo_q, hi_q], axis=0)
            med = float(np.median(x))
            for j, dj in enumerate(g):
                rows.append({"regime": rn, "side": sn, "depth_bps": float(dj), "n": n,
                             "observed": float(obs_surv[j]), "predicted": float(sim[:, j].mean()),
                             "lo": float(lo[j]), "hi": float(hi[j]),
                             "outside": bool(obs_surv[j] < lo[j] or obs_surv[j] > hi[j]),
                             "near_touch": bool(dj <= med)})
    df = pd.DataFrame(rows)
    if len(df):
        df.attrs["share_outside"] = float(df["outside"].mean())
        nt = df[df["near_touch"]]
        df.attrs["share_outside_near_touch"] = float(nt["outside"].mean()) if len(nt) else float("nan")
    df.attrs["prob"] = prob
    df.attrs["min_depth_bps"] = d0
    return df


def ppc_plot(ppc, path: str | Path, title: str | None = None) -> Path:
    """Plot :func:`ppc_depths` as a 4 x 2 grid (regime x side) of survival curves on
    a log scale: the observed curve, the predictive mean and the band; points
    outside the band in red. Writes a PNG and returns its path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, axes = plt.subplots(len(REGIMES), 2, figsize=(9, 11), sharex=True, squeeze=False)
    prob = ppc.attrs.get("prob", 0.9)
    for r, rn in enumerate(REGIMES):
        for s, sn in enumerate(SIDES):
            ax = axes[r][s]
            d = ppc[(ppc["regime"] == rn) & (ppc["side"] == sn)] if len(ppc) else ppc
            if len(d) == 0:
                ax.text(0.5, 0.5, "no arrivals", ha="center", va="center", transform=ax.transAxes)
            else:
                x = d["depth_bps"].to_numpy()
                floor = 0.5 / max(int(d["n"].iloc[0]), 1)
                ax.fill_between(x, np.maximum(d["lo"], floor), np.maximum(d["hi"], floor), alpha=0.3,
                                label=f"{int(prob * 100)}% predictive")
                ax.plot(x, np.maximum(d["predicted"], floor), lw=1, label="predictive mean")
                ax.plot(x, np.maximum(d["observed"], floor), "k.-", ms=3, lw=0.8, label="observed")
                out = d["outside"].to_numpy()
                ax.plot(x[out], np.maximum(d["observed"].to_numpy()[out], floor), "r.", ms=6)
                ax.set_yscale("log")
                ax.set_title(f"{rn}, {sn} (n={int(d['n'].iloc[0])})", fontsize=9)
            if r == len(REGIMES) - 1:
                ax.set_xlabel("depth δ (bps)")
            if s == 0:
                ax.set_ylabel("P(D ≥ δ)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title or "kappa: depth survival, observed vs posterior predictive", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
