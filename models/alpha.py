r"""Adverse-selection probability alpha: which passive fills are informed (DESIGN.md section 4).

Model (threshold variant, :func:`fit`)
--------------------------------------
A passive fill at depth delta (bps of the mid) in volatility regime r of asset a
is *informed* with probability

    alpha_{a,r}(delta) = alpha_touch[a,r] * exp(-delta / alpha_decay_bps[a])

(the depth-decay law of the original system's ``DepthDecayAS::alpha_at_depth``:
"alpha(delta) = alpha_touch x exp(-delta/delta_char)"; background note
``original-kelly-stochastic-ladder-notes.txt``). The observed flag is the
observation rule of DESIGN.md section 3 (``informed`` = markout at h above a
threshold, default 1 bp at h = 1 s; :func:`models.data.observations.passive_fills`).

Partial pooling::

    one asset:   logit alpha_touch[r]   = mu + tau * z[r]
    A assets:    logit alpha_touch[a,r] = beta[r] + sigma_asset * u[a] + sigma_ar * w[a,r]
                 beta[r] = mu + tau * z[r]

z ~ Normal(0, 1); u ~ ZeroSumNormal(1) over assets and w ~ ZeroSumNormal(1) over
both assets and regimes. With several assets ``beta[r]`` is the regime pattern
averaged over the assets, ``u`` the asset level and ``w`` a (small) asset x regime
interaction; the zero-sum constraints make the three identifiable (without them
``beta + u`` is a ridge the sampler crawls along). A thin asset's alpha_touch is
pulled toward ``beta[r] + sigma_asset u[a]``, whose regime pattern is learned
mostly from the liquid assets. The across-asset scales are *fixed*
hyperparameters, ``sigma_asset = 1`` (an asset's odds are free to within a factor
e) and ``sigma_ar = 0.25`` (its regime pattern follows the shared one to within
~0.25 in logit): with a handful of assets such scales are not identified (Gelman
2006), and learning them (half-normal or boundary-avoiding gamma priors, centred
or not) left divergent transitions in every 2-asset fit tried; with the scales
fixed the same fits have none. For the same reason ``alpha_decay_bps`` and
``adverse_move_bps`` are per asset and not pooled: the thin asset relies on their
priors below.

Sampling coordinates (``AlphaPrior.parametrization``). ``"noncentred"`` is the
form above literally (``mu + tau z``): the right one where the data are thin (no
funnel, Papaspiliopoulos, Roberts & Skold 2007), a poor one where they are rich
(the level, the scale and every z become tied together: posterior correlations
> 0.9). ``"auto"`` (default) keeps it for thin regimes and samples data-rich
regimes centred (``eta[r] ~ Normal(mu, tau)``; with several assets the shared
pattern ``beta[r]``): a regime is data-rich when the sampling sd of its
empirical logit, ``1/sqrt(k (n-k)/n)`` from its sweep-weighted counts, is below a
third of the spread of the regimes' empirical logits (the spread stands in for
tau: data precision > 9 x prior precision; :func:`models.sampling.centred_groups`). The model is
the same, only the sampler's coordinates differ. Measured with PyMC's
NUTS, 2 x 500 draws, no divergences in any: one asset with 20,000 fills, 92 -> 7
leapfrog steps per draw; two assets (20,000 + 400 fills), 127 -> 31.

Priors (:class:`AlphaPrior`; weakly informative, on the scales of the original system)
* ``mu ~ Normal(logit 0.15, 1.5)``: centred on the original ``kelly_alpha_touch``
  = 0.15; 95 % of alpha_touch in about (0.01, 0.8).
* ``tau ~ HalfNormal(1)`` (regimes differ by factors of a few in odds).
* ``sigma_asset = 1``, ``sigma_ar = 0.25``: fixed (above).
* ``alpha_decay_bps ~ LogNormal(log 10, 1)`` per asset: centred on the original
  ``kelly_alpha_decay_bps`` = 10 bp, 90 % in (1.9, 52) bp.

Likelihood: binomial, aggregated by (asset, regime, depth) cells (the depth grid
of the hypothetical quotes is small, so a day of fills becomes a few dozen cells
and the likelihood costs O(cells), not O(fills))::

    k_c ~ Binomial(n_c, alpha_{a_c, r_c}(delta_c))

written out as ``log C(n,k) + k log p + (n - k) log(1 - p)`` with
``log p = log_sigmoid(eta) - delta/decay`` and ``log(1 - p) = log1mexp(log p)``
(no under/overflow at any depth).

Sweep weighting (composite likelihood). One market-order sweep that reaches depth
D fills *every* grid quote shallower than D at the same instant, and those fills'
flags are almost the same event (an informed sweep makes all of them informed).
Counting them as independent Bernoulli trials overstates the information by the
mean number of fills per sweep (about 2-3 on the default grid), so the posterior
would be too narrow. By default (``weighting="sweep"``) every fill of an asset
gets the same weight ``n_sweeps / n_fills`` (a sweep = the fills with the same
timestamp and side, DESIGN.md section 3), so the asset's fills carry as much
information as its sweeps: a composite likelihood tempered by a constant
(Varin, Reid & Firth 2011; the design effect of clusters of fully dependent
members). The cells hold the weighted counts ``n_c = sum w``, ``k_c = sum w *
informed``.

Why one constant and not ``1/m`` per fill (m = the size of the fill's sweep):
weights that depend on the outcome bias the estimate. Informed sweeps are
shallower (they fill fewer grid quotes) so ``1/m`` gives informed fills more
weight: measured over 20 one-hour synthetic markets, ``1/m`` weights inflated
alpha_touch by 3-16 % and cut the mean informed markout from 4.69 bp (the
per-fill truth, 4.70) to 3.87 bp, and the 90 % intervals covered the truth in 74 %
of cases. A constant weight leaves every per-fill estimand unchanged (the
estimating equations are the plain ones, scaled) and only tempers the curvature.
``weighting="none"`` gives weight 1 (independent fills, as :func:`simulate`
produces; then both are identical).

Adverse move. The Kelly sizing uses ``E = (1-alpha) SC - alpha AS`` (DESIGN.md
section 6), AS = the mean loss of an informed fill = the mean markout (positive =
adverse, relative to the fill price) of informed fills. Both variants model the
informed fills' markouts as ``Gamma(shape k, mean adverse_move_bps)``; the
maximum-likelihood mean of a gamma is the sample mean, so ``adverse_move_bps`` is
exactly "the mean adverse move" with its posterior uncertainty. Prior:
``adverse_move_bps ~ LogNormal(log 5, 1)`` and ``k ~ LogNormal(log 2, 1)``, per
asset. In the threshold variant this enters as a
``pm.Potential`` on the weighted sufficient statistics (n, sum m, sum log m) of
the flagged fills, so it does not enter that model's LOO (which is about alpha).

Spread capture. DESIGN.md section 6 takes the gain of an uninformed fill to be the
whole quoted depth, SC = delta - fee. It is not: a resting quote is filled by a
print through its price, which happens after the mid has moved toward it, so at
the markout horizon an uninformed fill has earned only part of delta (LOBSTER AAPL:
uninformed touch fills at a mean depth of 0.71 bp earn 0.16 bp; the mid had moved
~75 % of the way in every depth bucket). Both variants therefore estimate the
share ``spread_capture`` = c (per asset) in::

    m | uninformed ~ Normal(-c * delta, markout_noise_bps[r])

(threshold variant: the fills whose flag is 0; mixture variant: its uninformed
component, with ``markout_offset_bps`` added). In the threshold variant this is
a least-squares (Gaussian quasi-likelihood) regression through the origin of the
unflagged fills' markouts on their depth, with one noise scale per regime: its
estimate of c is consistent for ``E[-m | flag 0, delta] / delta`` whatever the
markouts' distribution (they are truncated at the threshold and heavy-tailed on
real data), which is exactly what the ladder's ``SC = c * delta - fee`` needs next
to ``AS = E[m | flag 1]``: together they give the mean markout of a fill. It enters
as a ``pm.Potential`` on weighted sufficient statistics per (asset, regime), so it
does not enter the LOO either. Prior ``spread_capture ~ Normal(1, 1)``: centred on
the original system's assumption (c = 1). The noise scales are nuisance parameters
(``markout_noise_bps``, not exported).

Mixture variant (:func:`fit_mixture`)
-------------------------------------
Instead of the hard threshold, every fill's markout m comes from a two-component
mixture with the same depth-decaying weight::

    m | informed   ~ Gamma(shape k, mean adverse_move_bps)          (adverse, m > 0)
    m | uninformed ~ Normal(-spread_capture * delta + markout_offset_bps, markout_noise_bps[r])
    P(informed)    = alpha_{a,r}(delta)

The uninformed component is spread capture: a fill at depth delta whose mid does
not move has markout -delta (the markout is measured from the fill price; c = 1),
one whose mid had moved part of the way toward the quote before the fill earns
less (c < 1, see "Spread capture" above);
``markout_noise_bps[r] ~ LogNormal(log 1 bp, 1)`` (per regime and asset,
independent: a nuisance parameter, never exported, and pooling it would only add
posterior correlations) absorbs the diffusion over the horizon, which grows with
volatility;
``markout_offset_bps ~ Normal(0, 2)`` allows a systematic drift (price impact).
Pointwise log-likelihood: one term per fill (the weighted mixture density).

LOO and comparing the two variants
----------------------------------
Each fit's ``log_likelihood`` group feeds PSIS-LOO (``models.sampling.diagnostics``):
* threshold variant: one term per (asset, regime, depth) cell (the binomial of the
  cell's weighted counts): leave-one-cell-out, the right unit for comparing
  versions of *this* model (priors, pooling) on the same cells;
* mixture variant: one term per fill (the markout density).
These two elpds are on different data (a binomial count vs continuous markouts)
and **must not be compared with each other** (az.compare would happily do it and
mean nothing). To compare the variants, score both on the *same* observation:
the predictive probability of each fill's informed flag. :func:`loo_informed_flag`
does this by PSIS-LOO for either variant (the importance ratios remove the fill's
own likelihood term -- its flag for the threshold model, its markout for the
mixture -- and the predictive is ``P(flag_i | theta)``: ``alpha`` for the
threshold model, ``alpha S_gamma(thr) + (1-alpha) S_normal(thr)`` for the mixture,
S = survival at the threshold), and :func:`heldout_lpd` does it on held-out
fills (what the ``compare`` flow uses: champion vs challenger on held-out data).
:func:`compare_informed_flag` returns the paired elpd difference and its SE.
Both weight fill i by its sweep weight, so the unit is one sweep in both.

Summaries (:func:`summarize`, moment matching, DESIGN.md section 5)
-------------------------------------------------------------------
* ``alpha``: beta per regime x depth bucket ``[0,2), [2,5), [5,10), [10,inf)``.
  The live side updates a bucket's Beta with every fill in the bucket, i.e. it
  learns the *fill-weighted average* of alpha over the depths quoted in the
  bucket, not alpha at one representative depth (alpha is convex in delta, so the
  two differ). So the summarized quantity is
  ``alpha_bar[r,b] = sum_d w[b,d] alpha_r(d)`` with ``w[b,d]`` the share of the
  bucket's (sweep-weighted) fills at grid depth d (per asset; the assets' pooled
  shares if the asset has no fill in the bucket; the bucket's representative depth
  -- midpoint 1, 3.5, 7.5 bp, and 15 bp for [10,inf) -- if no asset has one).
  The weights are stored in ``idata.attrs["alpha_bucket_depths"]`` (JSON).
* ``alpha_decay_bps``: lognormal; ``adverse_move_bps``: lognormal;
  ``spread_capture``: normal (the bundle's optional ``spread_capture``; the ladder's
  SC = c * delta - fee).
The moment equations are those of :mod:`models.export` (one definition for every
model): a beta's mean and variance equal the posterior's (``a + b = m(1-m)/v -
1``); a lognormal's ``mu``, ``sigma`` are the mean and sd of the log draws. Keys
follow ``mm_runtime.bundle``: ``{"family": "beta", "a", "b"}``, ``{"family":
"lognormal", "mu", "sigma"}``; regimes ``low..extreme``, buckets ``"[0,2)"``,
``"[2,5)"``, ``"[5,10)"``, ``"[10,inf)"``. :func:`summary_draws` gives the
posterior draws behind each summary (for the exporter's quantile-error report).

Names (DESIGN.md section 8): ``alpha_touch[normal]``, ``alpha_decay_bps``,
``adverse_move_bps``, ``spread_capture``; with several assets the asset is the first coordinate
(``alpha_touch[BTC,normal]``, ``alpha_decay_bps[BTC]``) and :func:`summarize`
takes ``asset=``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import special

from models.data.observations import DEPTH_BUCKET_LABELS, DEPTH_BUCKETS_BPS, REGIMES, ObservationConfig
from models.sampling import SamplerConfig, asset_index, centred_groups, mixed_normal, model_version, sample

MODEL_NAME = "alpha"
MIXTURE_NAME = "alpha_mixture"
BUCKET_REPRESENTATIVE_BPS: tuple[float, ...] = (1.0, 3.5, 7.5, 15.0)
"""Depth used for a bucket with no fills at all: the midpoint, 15 bp for [10,inf)."""
Weighting = Literal["sweep", "none"]


# =========================================================================== observations
@dataclass(frozen=True, eq=False)
class AlphaObs:
    """Passive fills of one or several assets (one row per fill).

    ``asset`` (int32 index into ``assets``), ``regime`` (int8 0..3), ``side``
    (int8, +1 our bid filled / -1 our ask), ``depth_bps`` (the quote's delta on
    the grid), ``informed`` (bool flag of the observation rule), ``markout_bps``
    (positive = adverse, from the fill price), ``weight`` (sweep weight, see the
    module docstring), ``informed_threshold_bps`` and ``markout_horizon_s`` (the
    rule's parameters; they must agree across assets).
    """

    assets: tuple[str, ...]
    asset: np.ndarray
    regime: np.ndarray
    side: np.ndarray
    depth_bps: np.ndarray
    informed: np.ndarray
    markout_bps: np.ndarray
    weight: np.ndarray
    informed_threshold_bps: float = 1.0
    markout_horizon_s: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.depth_bps)
        arrays = (self.asset, self.regime, self.side, self.informed, self.markout_bps, self.weight)
        if any(len(x) != n for x in arrays):
            raise ValueError("AlphaObs arrays must all have one entry per fill")
        if len(self.assets) == 0 or len(set(self.assets)) != len(self.assets):
            raise ValueError(f"assets must be non-empty and distinct, got {self.assets}")
        if n == 0:
            raise ValueError("AlphaObs has no fills")
        if self.asset.min() < 0 or self.asset.max() >= len(self.assets):
            raise ValueError("asset index out of range")
        empty = [self.assets[a] for a in np.flatnonzero(np.bincount(self.asset, minlength=len(self.assets)) == 0)]
        if empty:
            raise ValueError(f"asset(s) {empty} have no fills")
        if self.regime.min() < 0 or self.regime.max() >= len(REGIMES):
            raise ValueError(f"regime must be in 0..{len(REGIMES) - 1}")
        if not np.all(np.isfinite(self.depth_bps)) or np.any(self.depth_bps < 0):
            raise ValueError("depth_bps must be finite and >= 0")
        if not np.all(np.isfinite(self.markout_bps)):
            raise ValueError("markout_bps must be finite")
        if not np.all(np.isfinite(self.weight)) or np.any(self.weight <= 0) or np.any(self.weight > 1):
            raise ValueError("weight must be in (0, 1]")

    @property
    def n_fills(self) -> int:
        return int(len(self.depth_bps))

    @property
    def n_assets(self) -> int:
        return len(self.assets)

    def select(self, asset: str) -> AlphaObs:
        """The fills of one asset."""
        a = self.assets.index(asset)
        m = self.asset == a
        return AlphaObs(assets=(asset,), asset=np.zeros(int(m.sum()), np.int32),
                        regime=self.regime[m], side=self.side[m], depth_bps=self.depth_bps[m],
                        informed=self.informed[m], markout_bps=self.markout_bps[m],
                        weight=self.weight[m], informed_threshold_bps=self.informed_threshold_bps,
                        markout_horizon_s=self.markout_horizon_s, meta=dict(self.meta))

    def cells(self) -> dict[str, np.ndarray]:
        """Weighted binomial cells by (asset, regime, depth): ``asset``, ``regime``,
        ``depth_bps``, ``n`` (sum of weights), ``k`` (sum of weights of informed
        fills), ``fills`` and ``informed_fills`` (raw counts)."""
        key = np.stack([self.asset.astype(float), self.regime.astype(float), self.depth_bps], axis=1)
        uniq, inv = np.unique(key, axis=0, return_inverse=True)
        inv = inv.ravel()
        m = len(uniq)
        w = self.weight
        y = self.informed.astype(float)
        return {
            "asset": uniq[:, 0].astype(np.int32), "regime": uniq[:, 1].astype(np.int8),
            "depth_bps": uniq[:, 2],
            "n": np.bincount(inv, weights=w, minlength=m), "k": np.bincount(inv, weights=w * y, minlength=m),
            "fills": np.bincount(inv, minlength=m), "informed_fills": np.bincount(inv, weights=y, minlength=m),
        }

    def bucket_depths(self) -> dict[str, Any]:
        """Depth weights per asset and bucket for :func:`summarize` (module docstring)."""
        depths = np.unique(np.concatenate([self.depth_bps, BUCKET_REPRESENTATIVE_BPS]))
        W = np.zeros((self.n_assets, len(DEPTH_BUCKETS_BPS), len(depths)))
        di = np.searchsorted(depths, self.depth_bps)
        np.add.at(W, (self.asset, _bucket(self.depth_bps), di), self.weight)
        pooled = W.sum(axis=0)
        for a in range(self.n_assets):
            for b in range(len(DEPTH_BUCKETS_BPS)):
                if W[a, b].sum() > 0:
                    W[a, b] /= W[a, b].sum()
                elif pooled[b].sum() > 0:
                    W[a, b] = pooled[b] / pooled[b].sum()
                else:
                    W[a, b] = 0.0
                    W[a, b, np.searchsorted(depths, BUCKET_REPRESENTATIVE_BPS[b])] = 1.0
        return {"assets": list(self.assets), "depth_bps": depths.tolist(), "weights": W.tolist()}


def _bucket(depth: np.ndarray) -> np.ndarray:
    d = np.maximum(np.asarray(depth, dtype=float), 0.0)
    return np.searchsorted(np.asarray(DEPTH_BUCKETS_BPS), d, side="right") - 1


def combine(*obs: AlphaObs) -> AlphaObs:
    """Concatenate the assets of several :class:`AlphaObs` (names must differ and the
    informed threshold and horizon must agree: otherwise the flags mean different things)."""
    if not obs:
        raise ValueError("combine needs at least one AlphaObs")
    thr = {o.informed_threshold_bps for o in obs}
    hor = {o.markout_horizon_s for o in obs}
    if len(thr) > 1 or len(hor) > 1:
        raise ValueError(f"assets use different informed rules (thresholds {thr}, horizons {hor})")
    assets: list[str] = []
    offs = []
    for o in obs:
        offs.append(len(assets))
        assets.extend(o.assets)
    cat = lambda name: np.concatenate([getattr(o, name) for o in obs])  # noqa: E731
    return AlphaObs(
        assets=tuple(assets), asset=np.concatenate([o.asset + k for o, k in zip(obs, offs)]).astype(np.int32),
        regime=cat("regime").astype(np.int8), side=cat("side").astype(np.int8),
        depth_bps=cat("depth_bps").astype(float), informed=cat("informed").astype(bool),
        markout_bps=cat("markout_bps").astype(float), weight=cat("weight").astype(float),
        informed_threshold_bps=obs[0].informed_threshold_bps, markout_horizon_s=obs[0].markout_horizon_s,
        meta={"combined": [o.meta for o in obs]})


def sweep_weights(ts: np.ndarray, side: np.ndarray) -> np.ndarray:
    """1 / (number of fills sharing the fill's timestamp and side): the fills of one sweep."""
    ts = np.asarray(ts, dtype=np.int64)
    side = np.asarray(side, dtype=np.int64)
    if len(ts) == 0:
        return np.zeros(0)
    key = np.stack([ts, side], axis=1)
    _, inv, cnt = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    return 1.0 / cnt[inv.ravel()]


def observations(market, regimes: Any = None, *, config: ObservationConfig | None = None,
                 bars=None, weighting: Weighting = "sweep") -> AlphaObs:
    """Passive fills of one market as :class:`AlphaObs` (DESIGN.md section 3 rules,
    :func:`models.data.observations.passive_fills`).

    ``regimes``: what :func:`models.data.observations.label_regimes` accepts (one
    int per bar, e.g. the regime model's path or the synthetic truth's
    ``regime_path``; an (n_bars x 4) probability array; None = the placeholder
    quantile labelling). ``config``: the observation rules (default
    :class:`ObservationConfig`, the synthetic market's default too). Fills
    without a regime (before the first bar) are dropped. ``weighting``: see the
    module docstring.
    """
    from models.data import observations as ob

    cfg = config or ObservationConfig()
    if bars is None:
        bars = ob.volatility_bars(market, cfg)
    reg = ob.label_regimes(bars, regimes)
    fills = ob.passive_fills(market, cfg, bars=bars, regimes=reg)
    keep = (fills["regime"].to_numpy() >= 0) & np.isfinite(fills["markout_bps"].to_numpy())
    f = fills[keep]
    ts, side = f["ts"].to_numpy(np.int64), f["side"].to_numpy()
    w = np.ones(len(f))
    if weighting == "sweep" and len(f):
        w *= sweep_weights(ts, side).sum() / len(f)  # n_sweeps / n_fills (module docstring)
    return AlphaObs(
        assets=(str(market.asset),), asset=np.zeros(len(f), np.int32),
        regime=f["regime"].to_numpy().astype(np.int8), side=side.astype(np.int8),
        depth_bps=f["depth_bps"].to_numpy(dtype=float), informed=f["informed"].to_numpy(dtype=bool),
        markout_bps=f["markout_bps"].to_numpy(dtype=float), weight=w,
        informed_threshold_bps=cfg.informed_threshold_bps, markout_horizon_s=cfg.markout_horizon_s,
        meta={"source": getattr(market, "source", None), "dropped": int((~keep).sum()),
              "weighting": weighting, "observation_config": cfg.model_dump(mode="json")})


# =========================================================================== truth & simulation
DEFAULT_MARKOUT_NOISE_BPS = (0.3, 0.5, 0.8, 1.2)


def truth_params(truth: Mapping[str, Any]) -> dict[str, float]:
    """Flat ``{name: value}`` (DESIGN.md section 8 names) from a synthetic market's
    truth dict (which holds them under ``params``) or from such a flat dict."""
    p = truth.get("params", truth)
    return {str(k): float(v) for k, v in p.items() if isinstance(v, (int, float))}


def simulate(truth: Mapping[str, Any], rng: np.random.Generator | int | None = None, *,
             n_fills: int = 20_000, depth_grid_bps: Sequence[float] | None = None,
             regime_weights: Sequence[float] = (0.30, 0.45, 0.18, 0.07),
             fill_depth_decay: float = 0.35, informed_threshold_bps: float = 1.0,
             flag: Literal["coin", "threshold"] = "coin", asset: str = "SIM",
             markout_horizon_s: float = 1.0) -> AlphaObs:
    """Fills drawn from the model's own generative process (independent fills, weight 1).

    ``truth`` (flat names or a synthetic truth dict): ``alpha_touch[<regime>]`` for
    the 4 regimes and ``alpha_decay_bps`` (required); ``adverse_move_bps`` (5),
    ``adverse_shape`` (2), ``markout_offset_bps`` (0), ``spread_capture`` (1),
    ``markout_noise_bps[<regime>]`` (0.3, 0.5, 0.8, 1.2) optional. Design: a fill's regime ~ Categorical
    (``regime_weights``), its depth on ``depth_grid_bps`` (default the observation
    grid) with P(delta) proportional to ``exp(-fill_depth_decay delta)`` (deep quotes fill
    rarely). Then ``informed ~ Bernoulli(alpha_touch[r] exp(-delta/alpha_decay_bps))``
    and the markout ~ Gamma(shape, mean adverse_move_bps) if informed, else
    Normal(-spread_capture * delta + markout_offset_bps, markout_noise_bps[r]): exactly the mixture
    model, and (``flag="coin"``) the threshold model's flag is the generator's
    coin, so both variants are exactly specified on this data. ``flag="threshold"``
    applies the observation rule instead (``informed = markout > threshold``), as
    on real data: then neither variant is exact (the flag is a noisy coin).
    """
    p = truth_params(truth)
    rng = np.random.default_rng(rng)
    at = np.array([p[f"alpha_touch[{r}]"] for r in REGIMES])
    decay = p["alpha_decay_bps"]
    as_mean = p.get("adverse_move_bps", 5.0)
    shape = p.get("adverse_shape", 2.0)
    off = p.get("markout_offset_bps", 0.0)
    capture = p.get("spread_capture", 1.0)
    noise = np.array([p.get(f"markout_noise_bps[{r}]", d) for r, d in zip(REGIMES, DEFAULT_MARKOUT_NOISE_BPS)])
    grid = np.asarray(depth_grid_bps if depth_grid_bps is not None else ObservationConfig().depth_grid_bps, float)
    rw = np.asarray(regime_weights, float)
    reg = rng.choice(len(REGIMES), size=n_fills, p=rw / rw.sum()).astype(np.int8)
    pd_ = np.exp(-fill_depth_decay * grid)
    depth = grid[rng.choice(len(grid), size=n_fills, p=pd_ / pd_.sum())]
    alpha = at[reg] * np.exp(-depth / decay)
    informed = rng.random(n_fills) < alpha
    mk = np.where(informed, rng.gamma(shape, as_mean / shape, n_fills),
                  -capture * depth + off + noise[reg] * rng.standard_normal(n_fills))
    side = np.where(rng.random(n_fills) < 0.5, 1, -1).astype(np.int8)
    if flag == "threshold":
        informed = mk > informed_threshold_bps
    truth_flat = {f"alpha_touch[{r}]": float(at[i]) for i, r in enumerate(REGIMES)}
    truth_flat.update({"alpha_decay_bps": decay, "adverse_move_bps": as_mean, "adverse_shape": shape,
                       "markout_offset_bps": off, "spread_capture": capture})
    truth_flat.update({f"markout_noise_bps[{r}]": float(noise[i]) for i, r in enumerate(REGIMES)})
    return AlphaObs(assets=(asset,), asset=np.zeros(n_fills, np.int32), regime=reg, side=side,
                    depth_bps=depth, informed=informed, markout_bps=mk, weight=np.ones(n_fills),
                    informed_threshold_bps=informed_threshold_bps, markout_horizon_s=markout_horizon_s,
                    meta={"truth": truth_flat, "simulated": True})


# =========================================================================== priors & model
class AlphaPrior(BaseModel):
    """Hyperparameters of both variants (module docstring). Part of the model version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha_touch_median: float = Field(0.15, gt=0.0, lt=1.0)
    alpha_touch_logit_sd: float = Field(1.5, gt=0.0)
    regime_scale: float = Field(1.0, gt=0.0)
    asset_scale: float = Field(1.0, gt=0.0)
    asset_regime_scale: float = Field(0.25, gt=0.0)
    decay_median_bps: float = Field(10.0, gt=0.0)
    decay_log_sd: float = Field(1.0, gt=0.0)
    adverse_median_bps: float = Field(5.0, gt=0.0)
    adverse_log_sd: float = Field(1.0, gt=0.0)
    adverse_shape_median: float = Field(2.0, gt=0.0)
    adverse_shape_log_sd: float = Field(1.0, gt=0.0)
    noise_median_bps: float = Field(1.0, gt=0.0)
    noise_log_sd: float = Field(1.0, gt=0.0)
    parametrization: Literal["noncentred", "auto"] = "auto"
    centre_ratio: float = Field(3.0, gt=0.0, description="auto: a regime is centred when its logit's "
                                "sampling sd is below 1/ratio of the spread of the regimes' logits")
    centre_min_spread: float = Field(0.1, gt=0.0, description="floor of that spread")
    offset_sd_bps: float = Field(2.0, gt=0.0)
    capture_mean: float = Field(1.0, description="prior mean of spread_capture (c = 1: DESIGN.md's SC = delta - fee)")
    capture_sd: float = Field(1.0, gt=0.0)


class AlphaConfig(BaseModel):
    """The model config: the variant (``threshold``: binomial on the informed flag;
    ``mixture``: two-component markout mixture) and the priors. Part of the model version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    variant: Literal["threshold", "mixture"] = "threshold"
    prior: AlphaPrior = AlphaPrior()


VARIANTS: tuple[str, ...] = ("threshold", "mixture")


def _coords(obs: AlphaObs) -> dict[str, Any]:
    c: dict[str, Any] = {"regime": list(REGIMES)}
    if obs.n_assets > 1:
        c["asset"] = list(obs.assets)
    return c


def _richness(obs: AlphaObs) -> tuple[np.ndarray, np.ndarray]:
    """(A, R) weighted fills and informed fills per asset and regime."""
    R = len(REGIMES)
    g = obs.asset.astype(np.int64) * R + obs.regime
    n = np.bincount(g, weights=obs.weight, minlength=obs.n_assets * R).reshape(obs.n_assets, R)
    k = np.bincount(g, weights=obs.weight * obs.informed, minlength=obs.n_assets * R).reshape(obs.n_assets, R)
    return n, k


def _centred(k: np.ndarray, n: np.ndarray, prior: AlphaPrior) -> np.ndarray:
    """Centring mask of regime groups from their (weighted) informed / all fill counts."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    if prior.parametrization == "noncentred":
        return np.zeros(k.shape, dtype=bool)
    info = k * (n - k) / np.maximum(n, 1e-300)  # Fisher information of the logit
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.where(info > 0, special.logit((k + 0.5) / (n + 1.0)), np.nan)
        sd = np.where(info > 0, 1.0 / np.sqrt(info), np.inf)
    return centred_groups(est, sd, prior.centre_ratio, prior.centre_min_spread)


def _per_asset_positive(name: str, obs: AlphaObs, median: float, log_sd: float):
    """``name`` (dims asset when several): log x[a] ~ Normal(log median, log_sd),
    independently per asset (see the module docstring for why these are not pooled)."""
    import pymc as pm
    import pytensor.tensor as pt

    if obs.n_assets == 1:
        return pt.reshape(pm.LogNormal(name, math.log(median), log_sd), (1,))
    return pm.LogNormal(name, math.log(median), log_sd, dims="asset")


def _alpha_block(obs: AlphaObs, prior: AlphaPrior):
    """logit alpha_touch (A x R tensor) and alpha_decay_bps (A,) with their priors.

    One asset: ``eta[r] ~ Normal(mu, tau)``. Several: ``beta[r] ~ Normal(mu, tau)``
    (the shared regime pattern), ``nu[a] ~ Normal(0, sigma_asset)`` (asset level),
    ``eta[a,r] ~ Normal(beta[r] + nu[a], sigma_ar)`` -- i.e. ``mu + sigma_asset u[a]
    + tau z[r] + sigma_ar w[a,r]`` of the module docstring. Each level is written
    non-centred, or centred where the data beneath it are rich (``auto``)."""
    import pymc as pm
    import pytensor.tensor as pt

    R, A = len(REGIMES), obs.n_assets
    n, k = _richness(obs)
    mu = pm.Normal("alpha_touch_logit_mu", special.logit(prior.alpha_touch_median), prior.alpha_touch_logit_sd)
    tau = pm.HalfNormal("alpha_touch_regime_scale", prior.regime_scale)
    if A == 1:
        eta = pt.reshape(mixed_normal("alpha_touch_regime", mu, tau, _centred(k[0], n[0], prior), ("regime",)), (1, R))
        pm.Deterministic("alpha_touch", pm.math.sigmoid(eta[0]), dims="regime")
    else:
        beta = mixed_normal("alpha_touch_regime", mu, tau, _centred(k.sum(0), n.sum(0), prior),
                             ("regime",))
        # across-asset scales are fixed hyperparameters (module docstring)
        nu = prior.asset_scale * pm.ZeroSumNormal("alpha_touch_asset_z", sigma=1.0, dims="asset")
        w = prior.asset_regime_scale * pm.ZeroSumNormal("alpha_touch_asset_regime_z", sigma=1.0,
                                                        dims=("asset", "regime"), n_zerosum_axes=2)
        eta = beta[None, :] + nu[:, None] + w
        pm.Deterministic("alpha_touch", pm.math.sigmoid(eta), dims=("asset", "regime"))
    decay = _per_asset_positive("alpha_decay_bps", obs, prior.decay_median_bps, prior.decay_log_sd)
    return eta, decay


def _adverse_block(obs: AlphaObs, prior: AlphaPrior):
    import pymc as pm
    import pytensor.tensor as pt

    as_mean = _per_asset_positive("adverse_move_bps", obs, prior.adverse_median_bps, prior.adverse_log_sd)
    dims = "asset" if obs.n_assets > 1 else None
    shape = pm.LogNormal("adverse_shape", math.log(prior.adverse_shape_median), prior.adverse_shape_log_sd,
                         dims=dims)
    return as_mean, pt.reshape(shape, (obs.n_assets,))


def _capture_block(obs: AlphaObs, prior: AlphaPrior):
    """``spread_capture`` (A,) and the log markout noise (A x R) of uninformed fills."""
    import pymc as pm
    import pytensor.tensor as pt

    dims = "asset" if obs.n_assets > 1 else None
    capture = pt.reshape(pm.Normal("spread_capture", prior.capture_mean, prior.capture_sd, dims=dims),
                         (obs.n_assets,))
    ndims = ("asset", "regime") if obs.n_assets > 1 else ("regime",)
    log_noise = pm.Normal("markout_noise_log", math.log(prior.noise_median_bps), prior.noise_log_sd, dims=ndims)
    pm.Deterministic("markout_noise_bps", pt.exp(log_noise), dims=ndims)
    return capture, pt.reshape(log_noise, (obs.n_assets, len(REGIMES)))


def uninformed_moments(obs: AlphaObs) -> dict[str, np.ndarray]:
    """Weighted sufficient statistics of the unflagged fills' markouts m on their
    depths d per (asset, regime), each (A, R): ``w`` = sum w, ``mm``, ``md``, ``dd``
    = sum w m^2, sum w m d, sum w d^2 (the Gaussian regression through the origin
    of the threshold variant's spread-capture term)."""
    R = len(REGIMES)
    sel = ~obs.informed
    g = obs.asset[sel].astype(np.int64) * R + obs.regime[sel]
    w, m, d = obs.weight[sel], obs.markout_bps[sel], obs.depth_bps[sel]

    def s(x):
        return np.bincount(g, weights=w * x, minlength=obs.n_assets * R).reshape(obs.n_assets, R)

    return {"w": s(np.ones_like(m)), "mm": s(m * m), "md": s(m * d), "dd": s(d * d)}


def _log_alpha(eta, decay, asset, regime, depth):
    """log alpha = log_sigmoid(eta[a, r]) - delta / decay[a]."""
    import pytensor.tensor as pt

    return (-pt.softplus(-eta))[asset, regime] - depth / decay[asset]


def _binomial_logp(value, n, log_p):
    import pytensor.tensor as pt

    log_q = pt.log1mexp(pt.minimum(log_p, -1e-12))
    coef = pt.gammaln(n + 1.0) - pt.gammaln(value + 1.0) - pt.gammaln(n - value + 1.0)
    return coef + value * log_p + (n - value) * log_q


def build_model(obs: AlphaObs, prior: AlphaPrior | None = None):
    """The threshold variant as a ``pm.Model`` (module docstring)."""
    import pymc as pm
    import pytensor.tensor as pt

    prior = prior or AlphaPrior()
    c = obs.cells()
    coords = _coords(obs) | {"cell": np.arange(len(c["n"]))}
    with pm.Model(coords=coords) as model:
        eta, decay = _alpha_block(obs, prior)
        log_p = _log_alpha(eta, decay, c["asset"], c["regime"], c["depth_bps"])
        pm.CustomDist("informed", pt.as_tensor_variable(c["n"]), log_p, logp=_binomial_logp,
                      observed=c["k"], dims="cell", signature="(),()->()")
        as_mean, shape = _adverse_block(obs, prior)
        sel = obs.informed & (obs.markout_bps > 0)
        w = obs.weight[sel]
        a = obs.asset[sel]
        n_a = np.bincount(a, weights=w, minlength=obs.n_assets)
        s1 = np.bincount(a, weights=w * obs.markout_bps[sel], minlength=obs.n_assets)
        sl = np.bincount(a, weights=w * np.log(obs.markout_bps[sel]), minlength=obs.n_assets)
        rate = shape / as_mean
        pm.Potential("adverse_move_loglik", pt.sum(
            n_a * (shape * pt.log(rate) - pt.gammaln(shape)) + (shape - 1.0) * sl - rate * s1))
        # unflagged fills: m ~ Normal(-c d, s_r), from their sufficient statistics
        capture, log_noise = _capture_block(obs, prior)
        u = uninformed_moments(obs)
        c = capture[:, None]
        sq = u["mm"] + 2.0 * c * u["md"] + c * c * u["dd"]  # sum w (m + c d)^2
        pm.Potential("spread_capture_loglik", pt.sum(
            -u["w"] * log_noise - 0.5 * sq * pt.exp(-2.0 * log_noise)))
    return model


def _mixture_logp(value, log_w, log_1mw, mu_u, sigma_u, log_sigma_u, gamma_c, shape, rate, weight):
    """Weighted log density of one fill's markout under the two-component mixture.
    Per-asset constants (``gamma_c = k log(k/AS) - lgamma(k)``) and per-cell ones
    (``log_sigma_u``) are computed before the gather, so each fill costs a few
    elementwise operations (log(value) of the observed data is constant-folded)."""
    import pytensor.tensor as pt

    pos = pt.gt(value, 0.0)
    m = pt.switch(pos, value, 1.0)
    lg = pt.switch(pos, gamma_c + (shape - 1.0) * pt.log(m) - rate * m, -np.inf)
    ln = -0.5 * pt.sqr((value - mu_u) / sigma_u) - log_sigma_u - 0.5 * math.log(2.0 * math.pi)
    return weight * pt.logaddexp(log_w + lg, log_1mw + ln)


def build_mixture_model(obs: AlphaObs, prior: AlphaPrior | None = None):
    """The markout-mixture variant as a ``pm.Model`` (module docstring).

    Everything that depends only on the fill's (asset, regime, depth) cell (the
    mixing weight, the uninformed component's location and scale) is computed once
    per cell and gathered to the fills with a 1-D index: a fill then costs a few
    elementwise operations."""
    import pymc as pm
    import pytensor.tensor as pt

    prior = prior or AlphaPrior()
    coords = _coords(obs) | {"fill": np.arange(obs.n_fills)}
    c = obs.cells()
    key = np.stack([obs.asset.astype(float), obs.regime.astype(float), obs.depth_bps], axis=1)
    ckey = np.stack([c["asset"].astype(float), c["regime"].astype(float), c["depth_bps"]], axis=1)
    cell_of = _row_index(ckey, key)
    ca, cr, cd = c["asset"], c["regime"], c["depth_bps"]
    with pm.Model(coords=coords) as model:
        eta, decay = _alpha_block(obs, prior)
        log_w = _log_alpha(eta, decay, ca, cr, cd)
        log_1mw = pt.log1mexp(pt.minimum(log_w, -1e-12))
        as_mean, shape = _adverse_block(obs, prior)
        capture, log_noise = _capture_block(obs, prior)
        odims = "asset" if obs.n_assets > 1 else None
        offset = pt.reshape(pm.Normal("markout_offset_bps", 0.0, prior.offset_sd_bps, dims=odims),
                            (obs.n_assets,))
        log_noise_c = log_noise[ca, cr]
        rate = shape / as_mean
        gamma_c = shape * pt.log(rate) - pt.gammaln(shape)
        a = obs.asset
        pm.CustomDist("markout", log_w[cell_of], log_1mw[cell_of], (-capture[ca] * cd + offset[ca])[cell_of],
                      pt.exp(log_noise_c)[cell_of], log_noise_c[cell_of], gamma_c[a], shape[a], rate[a],
                      pt.as_tensor_variable(obs.weight), logp=_mixture_logp, observed=obs.markout_bps,
                      dims="fill", signature="(),(),(),(),(),(),(),(),()->()")
    return model


def _row_index(table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Index in ``table`` (unique rows, lexicographically sorted) of each row of ``rows``."""
    _, inv = np.unique(np.concatenate([table, rows]), axis=0, return_inverse=True)
    inv = inv.ravel()
    pos = np.empty(len(table), dtype=np.int64)
    pos[inv[: len(table)]] = np.arange(len(table))
    return pos[inv[len(table):]]


# =========================================================================== fitting
MULTI_ASSET_TARGET_ACCEPT = 0.95
"""With several assets :func:`fit` raises the sampler's target_accept to at least
this: the across-asset scales (estimated from a handful of assets) leave a few
divergent transitions at 0.9 (measured: 1-2 per 1,000 draws on 2-asset fits, none at
0.95)."""


def _sampler_config(config: SamplerConfig | None, n_assets: int) -> SamplerConfig:
    config = config or SamplerConfig()
    if n_assets > 1 and config.target_accept < MULTI_ASSET_TARGET_ACCEPT:
        config = config.model_copy(update={"target_accept": MULTI_ASSET_TARGET_ACCEPT})
    return config


def _as_obs(obs: AlphaObs | Sequence[AlphaObs]) -> AlphaObs:
    if isinstance(obs, AlphaObs):
        return obs
    return combine(*obs)


def version(model_config: AlphaConfig | None = None, obs: AlphaObs | None = None) -> str:
    """The model version stored by :func:`fit`: a hash of the variant, the priors and
    this module's code (:func:`models.sampling.model_version`); ``obs`` is not used."""
    import models.alpha as this

    mc = model_config or AlphaConfig()
    name = MODEL_NAME if mc.variant == "threshold" else MIXTURE_NAME
    return model_version(name, {"prior": mc.prior.model_dump(mode="json"), "variant": mc.variant}, this)


def _finish(idata, obs: AlphaObs, mc: AlphaConfig):
    idata.attrs["model_name"] = MODEL_NAME if mc.variant == "threshold" else MIXTURE_NAME
    idata.attrs["model_version"] = version(mc)
    idata.attrs["alpha_variant"] = mc.variant
    idata.attrs["assets"] = json.dumps(list(obs.assets))
    idata.attrs["alpha_bucket_depths"] = json.dumps(obs.bucket_depths())
    idata.attrs["informed_threshold_bps"] = float(obs.informed_threshold_bps)
    idata.attrs["markout_horizon_s"] = float(obs.markout_horizon_s)
    idata.attrs["n_fills"] = int(obs.n_fills)
    idata.attrs["n_sweeps"] = float(obs.weight.sum())
    return idata


def fit(obs: AlphaObs | Sequence[AlphaObs], sampler: SamplerConfig | None = None,
        model_config: AlphaConfig | None = None):
    """Fit the variant of ``model_config`` (default: threshold); returns
    ``az.InferenceData`` with ``attrs["model_version"]`` (hash of the priors, variant
    and this module's code). ``obs`` may hold several assets (or be a list of
    single-asset obs)."""
    obs = _as_obs(obs)
    mc = model_config or AlphaConfig()
    build = build_model if mc.variant == "threshold" else build_mixture_model
    idata = sample(build(obs, mc.prior), _sampler_config(sampler, obs.n_assets))
    return _finish(idata, obs, mc)


def fit_mixture(obs: AlphaObs | Sequence[AlphaObs], sampler: SamplerConfig | None = None,
                prior: AlphaPrior | None = None):
    """:func:`fit` of the two-component markout mixture variant (module docstring)."""
    return fit(obs, sampler, AlphaConfig(variant="mixture", prior=prior or AlphaPrior()))


# =========================================================================== posterior quantities
def _assets(idata) -> list[str]:
    return json.loads(idata.attrs["assets"])


def _draws(idata, name: str, asset_index: int | None) -> np.ndarray:
    """Posterior draws (chain*draw, ...) of ``name``; with an asset dim, that asset's slice."""
    da = idata.posterior[name]
    if "asset" in da.dims:
        da = da.isel(asset=asset_index or 0)
    da = da.transpose("chain", "draw", ...)
    return np.asarray(da.values).reshape(-1, *da.shape[2:])


def _asset_index(idata, asset: str | None) -> int:
    return asset_index(_assets(idata), asset)


def summary_draws(idata, asset: str | None = None) -> dict[str, Any]:
    """Posterior draws of every summarized quantity (the inputs of :func:`summarize`;
    the exporter uses them to report how faithful each summary is):
    ``{"alpha": {regime: {bucket label: draws}}, "alpha_decay_bps": draws,
    "adverse_move_bps": draws, "spread_capture": draws}``."""
    a = _asset_index(idata, asset)
    at = _draws(idata, "alpha_touch", a)  # (S, R)
    decay = _draws(idata, "alpha_decay_bps", a)  # (S,)
    bd = json.loads(idata.attrs["alpha_bucket_depths"])
    depths = np.asarray(bd["depth_bps"])
    W = np.asarray(bd["weights"])[a]  # (B, D)
    decay_curve = np.exp(-depths[None, :] / decay[:, None])  # (S, D)
    bucket_factor = decay_curve @ W.T  # (S, B): sum_d w[b,d] exp(-d/decay)
    alpha = {rn: {lab: at[:, r] * bucket_factor[:, b] for b, lab in enumerate(DEPTH_BUCKET_LABELS)}
             for r, rn in enumerate(REGIMES)}
    out = {"alpha": alpha, "alpha_decay_bps": decay, "adverse_move_bps": _draws(idata, "adverse_move_bps", a)}
    if "spread_capture" in idata.posterior:  # fits of model versions before it have none
        out["spread_capture"] = _draws(idata, "spread_capture", a)
    return out


def summarize(idata, asset: str | None = None) -> dict[str, Any]:
    """Conjugate summaries by moment matching (module docstring; the families and
    equations of :mod:`models.export`): ``{"alpha": {regime: {bucket: beta}},
    "alpha_decay_bps": lognormal, "adverse_move_bps": lognormal, "spread_capture":
    normal}``, the layout of
    ``mm_runtime.bundle``. Works for both variants."""
    from models.export import beta_from_draws, lognormal_from_draws, normal_from_draws

    d = summary_draws(idata, asset)
    out = {
        "alpha": {rn: {lab: beta_from_draws(x) for lab, x in per.items()} for rn, per in d["alpha"].items()},
        "alpha_decay_bps": lognormal_from_draws(d["alpha_decay_bps"]),
        "adverse_move_bps": lognormal_from_draws(d["adverse_move_bps"]),
    }
    if "spread_capture" in d:
        out["spread_capture"] = normal_from_draws(d["spread_capture"])
    return out


# =========================================================================== flag predictive & LOO
def _per_fill_draws(idata, obs: AlphaObs) -> dict[str, np.ndarray]:
    """(S, N) alpha per fill and, for the mixture, the component parameters per fill."""
    assets = _assets(idata)
    idx = np.array([assets.index(a) for a in obs.assets])[obs.asset]
    post = idata.posterior

    def arr(name):
        da = post[name].transpose("chain", "draw", ...)
        v = np.asarray(da.values)
        return v.reshape(-1, *v.shape[2:])

    at = arr("alpha_touch")
    decay = arr("alpha_decay_bps")
    if at.ndim == 2:
        at = at[:, None, :]
        decay = decay.reshape(-1, 1)
    alpha = at[:, idx, obs.regime] * np.exp(-obs.depth_bps[None, :] / decay[:, idx])
    out = {"alpha": alpha}
    if idata.attrs.get("alpha_variant") == "mixture":
        as_mean = arr("adverse_move_bps").reshape(alpha.shape[0], -1)
        shape = arr("adverse_shape").reshape(alpha.shape[0], -1)
        noise = arr("markout_noise_bps")
        off = arr("markout_offset_bps").reshape(alpha.shape[0], -1)
        cap = (arr("spread_capture").reshape(alpha.shape[0], -1) if "spread_capture" in post
               else np.ones_like(off))
        if noise.ndim == 2:
            noise = noise[:, None, :]
        out.update(as_mean=as_mean[:, idx], shape=shape[:, idx], noise=noise[:, idx, obs.regime],
                   offset=off[:, idx], capture=cap[:, idx])
    return out


def _flag_and_lik(idata, obs: AlphaObs) -> tuple[np.ndarray, np.ndarray]:
    """(S, N) log P(flag_i | theta) and the fill's own (weighted) likelihood term."""
    thr = float(idata.attrs.get("informed_threshold_bps", obs.informed_threshold_bps))
    if abs(thr - obs.informed_threshold_bps) > 1e-12:
        raise ValueError(f"the fit used informed threshold {thr} bp, the fills {obs.informed_threshold_bps} bp")
    p = _per_fill_draws(idata, obs)
    y = obs.informed
    if idata.attrs.get("alpha_variant") == "mixture":
        alpha, k, mean = p["alpha"], p["shape"], p["as_mean"]
        mu_u = -p["capture"] * obs.depth_bps[None, :] + p["offset"]
        s_inf = special.gammaincc(k, thr * k / mean) if thr > 0 else np.ones_like(alpha)
        s_un = special.ndtr((mu_u - thr) / p["noise"])
        p1 = np.clip(alpha * s_inf + (1.0 - alpha) * s_un, 1e-300, 1.0 - 1e-16)
        log_flag = np.where(y[None, :], np.log(p1), np.log1p(-p1))
        m = obs.markout_bps[None, :]
        pos = m > 0
        ms = np.where(pos, m, 1.0)
        rate = k / mean
        lg = np.where(pos, k * np.log(rate) - special.gammaln(k) + (k - 1.0) * np.log(ms) - rate * ms, -np.inf)
        ln = -0.5 * ((m - mu_u) / p["noise"]) ** 2 - np.log(p["noise"]) - 0.5 * math.log(2 * math.pi)
        with np.errstate(divide="ignore"):
            own = np.logaddexp(np.log(alpha) + lg, np.log1p(-alpha) + ln)
    else:
        alpha = np.clip(p["alpha"], 1e-300, 1.0 - 1e-16)
        log_flag = np.where(y[None, :], np.log(alpha), np.log1p(-alpha))
        own = log_flag
    return log_flag, own * obs.weight[None, :]


def _reff(idata) -> float:
    """Relative MCMC efficiency for PSIS (as az.loo: mean ESS / number of draws)."""
    import arviz as az

    post = idata.posterior
    n = post.sizes["chain"] * post.sizes["draw"]
    if post.sizes["chain"] == 1:
        return 1.0
    ess = az.ess(post[["alpha_touch", "alpha_decay_bps"]], method="mean")
    return float(np.mean([np.mean(ess[v].values) for v in ess.data_vars]) / n)


def _weighted_result(e: np.ndarray, w: np.ndarray, k: np.ndarray | None) -> dict[str, Any]:
    n_units = float(w.sum())
    mean = float(np.sum(w * e) / n_units)
    var = float(np.sum(w * (e - mean) ** 2) / n_units)
    out = {"elpd": float(np.sum(w * e)), "se": math.sqrt(n_units * var), "n_fills": int(len(e)),
           "n_units": n_units, "pointwise": e, "weight": w}
    if k is not None:
        out["pareto_k_max"] = float(np.max(k)) if len(k) else None
        out["pareto_k_over_0.7"] = int(np.sum(k > 0.7))
        out["pareto_k"] = k
    return out


def loo_informed_flag(idata, obs: AlphaObs) -> dict[str, Any]:
    """PSIS-LOO predictive density of each fill's informed flag, for either variant
    (module docstring): ``elpd`` (sweep-weighted sum), ``se``, ``pareto_k_max``,
    ``pointwise`` (per fill). ``obs`` must be the data the fit used."""
    import arviz as az

    log_flag, own = _flag_and_lik(idata, obs)
    # fills with the same (asset, regime, depth, flag, weight) and -- for the
    # threshold model -- the same likelihood term are exchangeable: PSIS once per pattern
    if idata.attrs.get("alpha_variant") == "mixture":
        lw, k = az.psislw(-own.T, reff=_reff(idata))
        e = special.logsumexp(lw + log_flag.T, axis=1)
    else:
        key = np.stack([obs.asset, obs.regime, obs.depth_bps, obs.informed, obs.weight], axis=1)
        _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
        inv = inv.ravel()
        lw, kk = az.psislw(-own[:, first].T, reff=_reff(idata))
        ee = special.logsumexp(lw + log_flag[:, first].T, axis=1)
        e, k = ee[inv], np.asarray(kk)[inv]
    return _weighted_result(np.asarray(e), obs.weight, np.asarray(k))


def heldout_lpd(idata, obs: AlphaObs, asset: str | None = None, *, max_draws: int | None = None
                ) -> dict[str, Any]:
    """Log predictive density of the informed flags of (held-out) fills ``obs``:
    ``log mean_theta P(flag_i | theta)`` per fill, sweep-weighted sum in ``elpd``;
    ``n`` fills. The score the compare flow uses for either variant (module
    docstring). ``asset`` and ``max_draws`` are accepted for the common signature
    (``obs`` names its asset; every draw is used: the flags are cheap)."""
    log_flag, _ = _flag_and_lik(idata, obs)
    e = special.logsumexp(log_flag, axis=0) - math.log(log_flag.shape[0])
    res = _weighted_result(e, obs.weight, None)
    return {**res, "n": res["n_fills"], "unit": "passive fills (informed flag, sweep-weighted)"}


def compare_informed_flag(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rank results of :func:`loo_informed_flag` / :func:`heldout_lpd` computed on
    the *same* fills: rows ``name, elpd, se, elpd_diff, diff_se`` (paired, against
    the best), best first."""
    names = list(results)
    if not names:
        return []
    n = {len(results[k]["pointwise"]) for k in names}
    if len(n) > 1:
        raise ValueError("the results were computed on different fills")
    best = max(names, key=lambda k: results[k]["elpd"])
    eb = np.asarray(results[best]["pointwise"])
    w = np.asarray(results[best]["weight"])
    rows = []
    for k in sorted(names, key=lambda k: -results[k]["elpd"]):
        diff = eb - np.asarray(results[k]["pointwise"])
        d = _weighted_result(diff, w, None)
        rows.append({"name": k, "elpd": results[k]["elpd"], "se": results[k]["se"],
                     "elpd_diff": d["elpd"], "diff_se": d["se"]})
    return rows
