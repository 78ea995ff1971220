r"""Volatility regimes: a 4-state hidden Markov model on log realized variance (DESIGN.md section 4).

The regime model gives every other model its regime path: the per-bar regime
probabilities (:func:`smoothed_probabilities`) and their argmax
(:func:`regime_path`), plus the transition, emission and volatility summaries of
the prior bundle (:func:`summarize`).

Model
-----
Data: one value per volatility bar (default 10 s; :func:`models.data.observations.volatility_bars`),
``y_t = log_rv_t`` = log of the bar's variance of the log mid (natural log units,
not bps) by the observation rule's ``volatility_estimator``: realized variance
(diffusion plus jumps), or a jump-robust estimate of the diffusive variance
(bipower, MedRV, MinRV; :func:`models.data.observations.bar_variance`). Hidden
regime z_t in {0: low, 1: normal, 2: high, 3: extreme} (DESIGN.md section 2)::

    z_1 ~ Categorical(pi(P))                 pi(P) = stationary distribution of P
    z_t | z_{t-1} = i ~ Categorical(P[i, :])  one step per bar, row = from
    y_t | z_t = k ~ Normal(m_k, s_k)          (log-normal realized variance)

* **Ordered means** (this fixes label switching: regime k is the k-th quietest)::

      m_0 = log_rv_mean_lowest,   m_k = m_{k-1} + log_rv_gap[k],  k = 1..3
      log_rv_mean_lowest ~ Normal(q_1/8, sd_y)
      log_rv_gap[k]      ~ Gamma(2, rate = 2 / g),   g = (q_7/8 - q_1/8) / 3

  q_p = empirical quantiles of the (uncensored) log_rv, sd_y its standard deviation:
  the priors are centred on the data's own scale (no market constants). The
  quantiles 1/8 .. 7/8 are the centres of four equal-occupancy bins, so the prior
  says "four regimes spread over the bulk of the data"; ``g`` is the mean gap
  between those centres. A Gamma(2) gap has zero density at 0 (two regimes with
  the same mean are a priori excluded, which removes the degenerate modes of a
  plain ordered prior) and sd g/sqrt(2) (gaps from ~0.1 g to ~3 g are plausible).
* **Partially pooled emission sds** (non-centred, Papaspiliopoulos, Roberts &
  Skold 2007; the regimes' sds are often nearly equal, tau near 0, where the
  centred form has a funnel: in a trial it gave 13 divergences, this none)::

      log s_k = log_rv_sd_pooled + log_rv_sd_tau * log_rv_sd_z[k],   log_rv_sd_z[k] ~ Normal(0, 1)
      log_rv_sd_pooled ~ Normal(log(sd_y / 2), 0.5),   log_rv_sd_tau ~ HalfNormal(0.25)

  These scales matter when a state is barely visited (short data): its sd is
  then held by the prior, and ``sigma_bps`` grows like exp(s^2/2). With the
  earlier, wider N(., 1) and HalfNormal(0.5), 35 one-minute bars of Hyperliquid
  BTC gave a posterior mean sigma_bps[low] of 2e25 bps/sqrt(s) from a few draws
  with s near 10; now the pooled sd lies in (0.19, 1.4) x sd_y with 95 % prior
  probability and a regime's sd departs from it by a factor e^(tau z), tau ~
  HalfNormal(0.25): a regime is not wider than the whole sample.

* **Sticky Dirichlet transition rows** (the "sticky" HMM of Fox et al. 2011 in
  its simplest finite form)::

      P[i, :] ~ Dirichlet(c_i),  c_i[i] = kappa,  c_i[j] = 1 (j != i)
      kappa = 3 p / (1 - p),     p = 1 - bar_seconds / regime_duration_s

  so the prior mean probability of staying is p: a geometric stay of mean
  ``regime_duration_s`` (default 180 s: regimes last minutes; 10 s bars give
  p = 0.944, kappa = 51, i.e. 54 pseudo-transitions per row). The prior is stated
  in seconds, so it means the same for any bar length. Why this strong: log rv
  of real and synthetic markets has jump bars (a single informed jump
  outweighs a bar of diffusion); with a weak stickiness prior (kappa = 10) a
  state turns into a short-lived "jump-bar" state (stay ~0.5 per bar) instead
  of a persistent volatility level, and on the synthetic market the decoded path
  got worse (83 % vs 86 % on one hour) and chains disagreed (r_hat 1.8 vs 1.15).
  Rows of visited regimes get hundreds of transitions per hour of bars, which
  dominate. ``learn_stickiness=True`` makes kappa a shared, learned parameter
  (partial pooling of persistence across regimes: LogNormal centred on the
  kappa above, log-sd ``stickiness_log_sd``).
* **Initial distribution**: the stationary distribution of P (no free
  parameters; ``pi = solve((I - P + 1 1')', 1)``, the standard identity for an
  ergodic chain; solve works on all three backends). Stored as
  ``regime_stationary``.
* **Censored bars**: a bar without any price change has ``log_rv`` at the floor
  of the observation rule (:class:`ObservationConfig.rv_floor_sigma_bps`, e.g.
  1.5 % of LOBSTER's 10 s bars; never in the synthetic market, whose mid is
  continuous). The floor is not a measurement, so such a bar is treated as
  *left-censored*: it says "the realized variance was below the smallest value
  observed with a price move" (``censor_log_rv`` = the minimum unfloored
  log_rv), likelihood ``Phi((censor_log_rv - m_k)/s_k)`` (``censor_floored=True``,
  the default).

Derived, per posterior draw (Deterministics):

* ``sigma_bps[k] = sqrt(E[rv | k] / bar_seconds) * 1e4`` (bps/sqrt(s)),
  ``E[rv | k] = exp(m_k + s_k^2 / 2)`` (the log-normal mean): the regime's
  volatility as the bars measure it. With realized-variance bars this is meant
  as the *total* volatility, jumps included (the synthetic truth's
  ``sigma_bps``); with jump-robust bars it is the *diffusive* volatility (the
  synthetic truth's ``sigma_diffusion_bps``). :func:`market_truth` maps the
  synthetic truth to what a fit with given bars estimates.
* ``regime_stationary`` (pi), ``log_rv_mean`` (m), ``log_rv_sd`` (s).

Likelihood: the hidden states are marginalized with the forward algorithm in
log space (Rabiner 1989, section III.A; log-sum-exp form e.g. Murphy 2012,
section 17.4.2), a ``pytensor.scan`` over bars with a normalized filter::

    f_1 = log pi + log e_1;       c_1 = logsumexp(f_1);  f_1 -= c_1
    a_t = logsumexp_i(f_{t-1}[i] + log P[i, :]) + log e_t
    c_t = logsumexp(a_t);         f_t = a_t - c_t

``c_t = log p(y_t | y_{1:t-1})`` (the one-step-ahead predictive log density) and
``sum_t c_t = log p(y_{1:T})``. The observed variable ``log_rv`` is a
``pm.CustomDist`` whose *elementwise* log-density is the vector ``c``: PyMC adds
the sum to the model's joint log-density (exactly the marginal likelihood; the
terms are not independent, they are the chain rule's factors) and
``pm.compute_log_likelihood`` stores them per bar in the ``log_likelihood`` group,
so LOO works as for any model. PSIS-LOO on one-step-ahead terms of a time series
is the usual approximation of leave-one-out (the exact scheme for forecasting is
leave-future-out, Buerkner, Gabry & Vehtari 2020); the gate reports its Pareto k.
The same graph compiles on PyMC's C backend, to JAX (NumPyro: ``lax.scan``) and
to numba (nutpie). A ``random`` function (exact simulation of the chain) makes
prior and posterior predictive sampling work.

Where the chains start (:func:`em_fit`, :func:`build_model`). An HMM posterior
has poor local modes, e.g. the lowest state parked below the data with the other
three shifted down one regime (an "empty state"); with the ordering constraint a
chain cannot leave it (in a trial, one of two chains did, r_hat 2.1). PyMC,
NumPyro and nutpie all start from the prior's support point plus a uniform
[-1, 1] jitter in the unconstrained space, which for the means is ~1 sd of the
data: enough to land there. So a multi-start EM (MAP, with the same sticky
prior) gives a reference configuration, and the lowest mean, the gaps and the
pooled sd are parameterized around it, ``x = ref + 0.1 s_ref v`` (resp.
``ref * exp(0.1 v)``) with the prior density of x carried exactly by v
(:func:`_anchored`; support point v = 0). Every sampler thus starts at the EM
point +- 10 %; the priors and the posterior are unchanged.

Cost: the scan is O(T * 4^2) per log-density. Measured on this project's 2-core
machine (shared, so upper bounds), log-density+gradient at 500 bars: ~4-10 ms
on the C backend (the per-step overhead of scan), ~0.6-1.7 ms in JAX, ~2.5 ms in
numba; NUTS needs ~30 gradients per draw here. Use ``numpyro`` (or ``nutpie``)
for real fits; PyMC's own NUTS is fine only for small ones.

On the synthetic market the Gaussian emission is the limiting assumption: log
rv per regime is a mixture of jump-free and jump bars (informed jumps; see
``models/data/synthetic.py``), so the upper states partly model jump bars
(decoded paths 65-87 % right on one-hour markets against 94-99.7 % for an oracle
HMM with the true emission densities; ``tests/models/test_regime.py``). In the
same way ``sigma_bps`` of the quiet regimes comes out near their *diffusion*
volatility, because their jump bars are decoded as upper-regime bars.
Jump-robust bars remove most of that misspecification (issue #3; measured in
``benchmarks/README.md``, "regime on the synthetic market"): MedRV on the
default 1 s grid (10 returns per bar) decodes 92-97 % of bars right (realized:
69-83 %) and puts the transition rows near the truth, but jumps in neighbouring
seconds survive in the upper regimes (sigma_bps up to 1.8x the diffusion level
in high, 1.6-2x in extreme); MedRV on a 0.1 s grid (``rv_sample_seconds=0.1``,
100 returns per bar) decodes 99-100 % and recovers every regime's diffusive
sigma (extreme 6-11 % high) on markets that visit all four regimes, but on an
hour without the extreme regime the spare state became a wide outlier state
between two others and shifted the labels (accuracy 0.11). The default stays
realized variance: the live filter
(``mm_runtime.estimators``) scores tick-by-tick realized variance against the
bundle's emission, and the bundle's ``sigma_bps`` would change meaning (total
to diffusive volatility); see the README for what a switch needs.

Regime probabilities (:func:`smoothed_probabilities`): forward-backward in
numpy (log space) per posterior draw, averaged over up to ``max_draws`` evenly
thinned draws: ``P(z_t = k | y)`` with the parameters integrated out (the
posterior marginal of each bar's regime). ``method="mean"`` instead runs one
forward-backward at the posterior means of (m, s, P) (plug-in; faster, slightly
overconfident). :func:`regime_path` is the per-bar argmax (marginal MAP, not the
Viterbi path).

Summaries (:func:`summarize`; the bundle layout of ``mm_runtime.bundle``; the
moment-matching functions of :mod:`models.export`, shared by every model):

* ``regime_transition[from]``: Dirichlet per row (mean = the posterior mean of
  the row, total concentration matched to the entries' posterior variances).
* ``regime_emission[regime]``: Normal-Inverse-Gamma on the bundle's emission
  variable ``y = ln sigma_bar`` (bps/sqrt(s)) of one bar, ``= 0.5 log_rv +
  ln(1e4) - 0.5 ln(bar_seconds)``, from the joint draws of its mean
  ``0.5 m + ln(1e4) - 0.5 ln B`` and variance ``s^2 / 4`` (variance ~ inverse
  gamma by moments, ``lam = E[var] / Var[mean]``). The live side's forward filter
  uses its Student-t predictive on exactly that y.
* ``sigma_bps[regime]``: log-normal fitted to the draws of ``sigma_bps``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import log_ndtr, logsumexp

from models.data.observations import REGIMES, ObservationConfig
from models.sampling import SamplerConfig, model_version, sample

MODEL_NAME = "regime"
K = len(REGIMES)
LOG_1E4 = math.log(1e4)
_CENSOR_Z_MIN = -37.0  # log Phi(z) below this is ~ -690: clip to keep erfc > 0


# =========================================================================== config
class RegimeConfig(BaseModel):
    """Observation rules and prior hyperparameters (module docstring). Part of the
    model version (``idata.attrs["model_version"]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    observation: ObservationConfig = Field(default_factory=ObservationConfig)
    regime_duration_s: float = Field(180.0, gt=0.0,
                                     description="prior mean time a regime lasts (s): sets the "
                                                 "diagonal concentration, see sticky_concentration()")
    offdiag_concentration: float = Field(1.0, gt=0.0,
                                         description="Dirichlet concentration of P[i, j], j != i")
    learn_stickiness: bool = Field(False, description="learn the diagonal concentration (shared by "
                                                      "the rows) instead of fixing it")
    stickiness_log_sd: float = Field(1.0, gt=0.0, description="prior log-sd of the learned "
                                                              "(diagonal - offdiag) concentration")
    mean_lowest_sd_scale: float = Field(1.0, gt=0.0,
                                        description="prior sd of the lowest mean, in units of sd(log_rv)")
    gap_shape: float = Field(2.0, gt=1.0, description="Gamma shape of the ordered-mean gaps")
    sd_pooled_log_sd: float = Field(0.5, gt=0.0, description="prior sd of log_rv_sd_pooled")
    sd_tau_scale: float = Field(0.25, gt=0.0, description="HalfNormal scale of log_rv_sd_tau")
    censor_floored: bool = Field(True, description="treat floored bars as left-censored (else as data)")

    def sticky_concentration(self, bar_seconds: float) -> float:
        """Diagonal Dirichlet concentration kappa for bars of ``bar_seconds``: the prior
        mean stay probability per bar, kappa / (kappa + 3 offdiag), equals
        ``p = 1 - bar_seconds / regime_duration_s`` (a geometric stay of mean
        duration ``regime_duration_s``), floored at p = 0.5 (kappa >= 3 offdiag)."""
        p = max(1.0 - bar_seconds / self.regime_duration_s, 0.5)
        return (K - 1) * self.offdiag_concentration * p / (1.0 - p)


# =========================================================================== observations
@dataclass(frozen=True, eq=False)
class RegimeObs:
    """Log realized variance per volatility bar.

    ``log_rv`` (float64, one per bar; natural log of the bar's realized variance),
    ``bar_seconds`` (s), ``censored`` (bool per bar: left-censored at
    ``censor_log_rv``; see the module docstring), ``bar_start`` (int64 ns, None
    when simulated), ``regimes`` (int8 reference path, e.g. the synthetic truth's
    or the simulated one; never used by the fit; None when unknown), ``asset``,
    ``meta``.
    """

    log_rv: np.ndarray
    bar_seconds: float = 10.0
    censored: np.ndarray | None = None
    censor_log_rv: float | None = None
    bar_start: np.ndarray | None = None
    regimes: np.ndarray | None = None
    asset: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        y = np.asarray(self.log_rv, dtype=np.float64)
        object.__setattr__(self, "log_rv", y)
        if y.ndim != 1 or len(y) < 2:
            raise ValueError(f"log_rv must be 1-D with at least 2 bars, got shape {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ValueError(f"log_rv must be finite (bar {int(np.flatnonzero(~np.isfinite(y))[0])} is not)")
        if not (math.isfinite(self.bar_seconds) and self.bar_seconds > 0):
            raise ValueError(f"bar_seconds must be > 0, got {self.bar_seconds}")
        c = np.zeros(len(y), bool) if self.censored is None else np.asarray(self.censored, bool)
        if c.shape != y.shape:
            raise ValueError("censored must have one entry per bar")
        object.__setattr__(self, "censored", c)
        if c.any():
            if self.censor_log_rv is None or not math.isfinite(self.censor_log_rv):
                raise ValueError("censored bars need a finite censor_log_rv")
            if c.all():
                raise ValueError("every bar is censored: no price moved in any bar")
        if self.regimes is not None:
            r = np.asarray(self.regimes)
            if r.shape != y.shape or (len(r) and (r.min() < 0 or r.max() >= K)):
                raise ValueError(f"regimes must be one int in 0..{K - 1} per bar")
            object.__setattr__(self, "regimes", r.astype(np.int8))

    @property
    def n_bars(self) -> int:
        return int(len(self.log_rv))

    @property
    def n_censored(self) -> int:
        return int(self.censored.sum())

    def uncensored(self) -> np.ndarray:
        return self.log_rv[~self.censored]


def observations(market, regimes: Any = None, *, config: RegimeConfig | ObservationConfig | None = None,
                 bars=None) -> RegimeObs:
    """Log realized variance per bar of one market (DESIGN.md section 3,
    :func:`models.data.observations.volatility_bars`).

    ``regimes``: an optional *reference* path (one int per bar, e.g. to score the
    fit); when None and the market is synthetic, the truth's ``regime_path`` is
    attached (matched by bar start time). The fit never uses it.
    ``config``: a :class:`RegimeConfig` (its ``observation``) or an
    :class:`ObservationConfig` (default: the defaults, 10 s bars).
    Floored bars (no price change) are marked censored when
    ``RegimeConfig.censor_floored`` (default); see the module docstring.
    """
    from models.data import observations as ob

    rc = config if isinstance(config, RegimeConfig) else RegimeConfig(
        observation=config or ObservationConfig())
    cfg = rc.observation
    if bars is None:
        bars = ob.volatility_bars(market, cfg)
    else:
        # bars made with other rules (e.g. ob.auto_bar_config): their bar length and
        # variance estimator win, and are what the observations record
        upd = {}
        if float(bars.attrs.get("bar_seconds", cfg.bar_seconds)) != cfg.bar_seconds:
            upd["bar_seconds"] = float(bars.attrs["bar_seconds"])
        if bars.attrs.get("volatility_estimator", cfg.volatility_estimator) != cfg.volatility_estimator:
            upd["volatility_estimator"] = str(bars.attrs["volatility_estimator"])
        if upd:
            cfg = cfg.model_copy(update=upd)
    y = bars["log_rv"].to_numpy(dtype=np.float64)
    floor = float(bars.attrs.get("log_rv_floor", math.log((cfg.rv_floor_sigma_bps * 1e-4) ** 2 * cfg.bar_seconds)))
    floored = y <= floor + 1e-9
    censored = floored if rc.censor_floored else np.zeros(len(y), bool)
    censor = float(y[~floored].min()) if (censored.any() and (~floored).any()) else None
    start = bars["bar_start"].to_numpy(dtype=np.int64)
    ref = None
    if regimes is not None:
        ref = ob.label_regimes(bars, regimes)
    elif getattr(market, "truth", None) and "regime_path" in market.truth:
        ref = _truth_path_at(market.truth, start)
    return RegimeObs(log_rv=y, bar_seconds=float(cfg.bar_seconds), censored=censored,
                     censor_log_rv=censor, bar_start=start, regimes=ref,
                     asset=str(getattr(market, "asset", "")),
                     meta={"source": getattr(market, "source", None), "n_floored": int(floored.sum()),
                           "log_rv_floor": floor, "observation_config": cfg.model_dump(mode="json")})


JUMP_ROBUST_ESTIMATORS = ("bipower", "medrv", "minrv")
"""Values of ``ObservationConfig.volatility_estimator`` that estimate the diffusive
variance of a bar (jumps removed): the regime's ``sigma_bps`` is then the
synthetic market's ``sigma_diffusion_bps``."""


def market_truth(truth: Mapping[str, Any], observation: ObservationConfig | None = None) -> dict[str, float]:
    """The synthetic market's flat truth (``truth["params"]``, DESIGN.md section 8
    names) as this model estimates it with the bars of ``observation`` (default
    :class:`ObservationConfig`): with a jump-robust ``volatility_estimator``
    (:data:`JUMP_ROBUST_ESTIMATORS`) the bars measure the diffusion only, so
    ``sigma_bps[r]`` is the truth's ``sigma_diffusion_bps[r]``; with
    ``"realized"`` it is the truth's ``sigma_bps[r]`` (diffusion plus informed
    jumps). Transition and stationary probabilities are the truth's either way.
    Raises ``KeyError`` naming the missing entry when the truth lacks one."""
    oc = observation or ObservationConfig()
    p = {k: float(v) for k, v in _flat(truth).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if oc.volatility_estimator in JUMP_ROBUST_ESTIMATORS:
        for r in REGIMES:
            key = f"sigma_diffusion_bps[{r}]"
            if key not in p:
                raise KeyError(f"truth has no {key!r}: needed to score a jump-robust "
                               f"({oc.volatility_estimator}) regime fit")
            p[f"sigma_bps[{r}]"] = p[key]
    return p


def _truth_path_at(truth: Mapping[str, Any], bar_start: np.ndarray) -> np.ndarray | None:
    """The synthetic truth's regime of the truth bar containing each bar start."""
    path = np.asarray(truth["regime_path"], dtype=np.int8)
    b_ns = int(round(float(truth.get("bar_seconds", 10.0)) * 1e9))
    t0 = int(truth.get("start_ns", bar_start[0] if len(bar_start) else 0))
    idx = (np.asarray(bar_start, dtype=np.int64) - t0) // b_ns
    if len(idx) == 0 or idx.min() < 0:
        return None
    return path[np.minimum(idx, len(path) - 1)]


# =========================================================================== truth & simulation
DEFAULT_TRANSITION = (
    (0.970, 0.020, 0.008, 0.002),
    (0.015, 0.960, 0.020, 0.005),
    (0.010, 0.030, 0.940, 0.020),
    (0.005, 0.015, 0.060, 0.920),
)
"""A sticky matrix for simulation tests (stays 0.97/0.96/0.94/0.92 per bar, i.e.
mean durations of 33/25/17/12 bars; stationary ~0.28/0.37/0.25/0.09)."""
DEFAULT_LOG_RV_SD = 0.47
"""Default emission sd of log rv: the sampling sd of log(chi2_10 / 10), i.e. a
Gaussian diffusion sampled with 10 returns per bar (sqrt(trigamma(5)))."""


def _flat(truth: Mapping[str, Any]) -> dict[str, Any]:
    p = dict(truth.get("params", {})) if isinstance(truth.get("params"), Mapping) else {}
    p.update({k: v for k, v in truth.items() if k != "params"})
    return p


def truth_arrays(truth: Mapping[str, Any], bar_seconds: float | None = None) -> dict[str, Any]:
    """``transition`` (4x4), ``log_rv_mean`` (4), ``log_rv_sd`` (4), ``bar_seconds``
    from a truth mapping (flat DESIGN.md section 8 names or a synthetic truth dict).

    * transition: ``regime_transition`` (4x4 nested list) or the flat
      ``regime_transition[<from>,<to>]`` (default :data:`DEFAULT_TRANSITION`);
    * emission sd: ``log_rv_sd[<regime>]`` (default :data:`DEFAULT_LOG_RV_SD`);
    * emission mean: ``log_rv_mean[<regime>]``, else from the expected bar rv
      ``rv_mean[<regime>]``, else from ``sigma_bps[<regime>]`` (total
      volatility, bps/sqrt(s)): ``m = log(E rv) - s^2/2`` (the
      log-normal mean, module docstring).
    """
    p = _flat(truth)
    B = float(bar_seconds if bar_seconds is not None else p.get("bar_seconds", 10.0))
    if "regime_transition" in p and not isinstance(p["regime_transition"], (int, float)):
        P = np.asarray(p["regime_transition"], dtype=float)
    elif f"regime_transition[{REGIMES[0]},{REGIMES[0]}]" in p:
        P = np.array([[float(p[f"regime_transition[{a},{b}]"]) for b in REGIMES] for a in REGIMES])
    else:
        P = np.asarray(DEFAULT_TRANSITION, dtype=float)
    if P.shape != (K, K) or np.any(P < 0) or not np.allclose(P.sum(axis=1), 1.0, atol=1e-9):
        raise ValueError(f"regime_transition must be a {K}x{K} matrix of rows summing to 1")
    s = np.array([float(p.get(f"log_rv_sd[{r}]", DEFAULT_LOG_RV_SD)) for r in REGIMES])
    if all(f"log_rv_mean[{r}]" in p for r in REGIMES):
        m = np.array([float(p[f"log_rv_mean[{r}]"]) for r in REGIMES])
    else:
        for key, conv in (("rv_mean", lambda v: v),
                          ("sigma_bps", lambda v: (v * 1e-4) ** 2 * B)):
            if all(f"{key}[{r}]" in p for r in REGIMES):
                erv = np.array([conv(float(p[f"{key}[{r}]"])) for r in REGIMES])
                m = np.log(erv) - s**2 / 2.0
                break
        else:
            raise ValueError("truth needs log_rv_mean[<regime>], rv_mean[<regime>], "
                             "or sigma_bps[<regime>] for every regime")
    if np.any(np.diff(m) <= 0) or np.any(s <= 0):
        raise ValueError(f"emission means must increase strictly and sds be > 0, got {m}, {s}")
    return {"transition": P, "log_rv_mean": m, "log_rv_sd": s, "bar_seconds": B}


def truth_params(truth: Mapping[str, Any], bar_seconds: float | None = None) -> dict[str, float]:
    """Flat names of the regime model's parameters for a truth (see :func:`truth_arrays`):
    ``regime_transition[a,b]``, ``regime_stationary[r]``, ``log_rv_mean[r]``,
    ``log_rv_sd[r]``, ``sigma_bps[r]`` (= sqrt(E[rv|r]/B) 1e4, total volatility)."""
    t = truth_arrays(truth, bar_seconds)
    P, m, s, B = t["transition"], t["log_rv_mean"], t["log_rv_sd"], t["bar_seconds"]
    pi = stationary_distribution(P)
    sig = np.sqrt(np.exp(m + s**2 / 2) / B) * 1e4
    out: dict[str, float] = {}
    for i, a in enumerate(REGIMES):
        for j, b in enumerate(REGIMES):
            out[f"regime_transition[{a},{b}]"] = float(P[i, j])
    for k, r in enumerate(REGIMES):
        out[f"regime_stationary[{r}]"] = float(pi[k])
        out[f"log_rv_mean[{r}]"] = float(m[k])
        out[f"log_rv_sd[{r}]"] = float(s[k])
        out[f"sigma_bps[{r}]"] = float(sig[k])
    return out


def simulate_path(P: np.ndarray, n_bars: int, rng: np.random.Generator,
                  initial: np.ndarray | None = None) -> np.ndarray:
    """A Markov chain path (int8) of ``n_bars`` steps, the first drawn from
    ``initial`` (default: the stationary distribution of P); the synthetic
    market's path simulator."""
    from models.data.synthetic import markov_path

    P = np.asarray(P, dtype=float)
    init = stationary_distribution(P) if initial is None else np.asarray(initial, dtype=float)
    return markov_path(rng, P, init, n_bars)


def simulate(truth: Mapping[str, Any] | None = None, rng: np.random.Generator | int | None = None, *,
             n_bars: int = 500, bar_seconds: float | None = None, asset: str = "SIM") -> RegimeObs:
    """Bars drawn from the model's exact generative process: a Markov chain path
    started from the stationary distribution of P, then ``log_rv_t ~ Normal(m_z,
    s_z)`` (no censoring). ``truth``: see :func:`truth_arrays` (None = the
    defaults: :data:`DEFAULT_TRANSITION`, volatilities ``sigma_bps`` 0.10 / 0.17 /
    0.27 / 0.40 bps/sqrt(s) (the synthetic market's diffusion levels, here as the
    whole bar variance) and emission sd :data:`DEFAULT_LOG_RV_SD`). The true path
    is ``obs.regimes``; the true parameters (flat names) are ``obs.meta["truth"]``."""
    truth = truth if truth is not None else {f"sigma_bps[{r}]": v
                                             for r, v in zip(REGIMES, (0.10, 0.17, 0.27, 0.40))}
    t = truth_arrays(truth, bar_seconds)
    rng = np.random.default_rng(rng)
    path = simulate_path(t["transition"], int(n_bars), rng)
    y = t["log_rv_mean"][path] + t["log_rv_sd"][path] * rng.standard_normal(int(n_bars))
    return RegimeObs(log_rv=y, bar_seconds=t["bar_seconds"], regimes=path, asset=asset,
                     meta={"truth": truth_params(truth, t["bar_seconds"]), "simulated": True})


# =========================================================================== numpy HMM core
def stationary_distribution(P: np.ndarray) -> np.ndarray:
    """pi with pi P = pi, sum 1 (solves (I - P + 1 1')' pi = 1; P ergodic). Batched over leading dims."""
    P = np.asarray(P, dtype=float)
    n = P.shape[-1]
    A = np.swapaxes(np.eye(n) - P + 1.0, -1, -2)
    return np.linalg.solve(A, np.ones(P.shape[:-2] + (n,))[..., None])[..., 0]


def emission_logp(y: np.ndarray, m: np.ndarray, s: np.ndarray, censored: np.ndarray | None = None,
                  censor_log_rv: float | None = None) -> np.ndarray:
    """log p(y_t | z_t = k): array (..., T, K) for parameters m, s of shape (..., K)."""
    y = np.asarray(y, dtype=float)
    m = np.asarray(m, dtype=float)[..., None, :]
    s = np.asarray(s, dtype=float)[..., None, :]
    z = (y[:, None] - m) / s
    le = -0.5 * z**2 - np.log(s) - 0.5 * math.log(2.0 * math.pi)
    if censored is not None and np.any(censored):
        lc = log_ndtr(np.maximum((censor_log_rv - m) / s, _CENSOR_Z_MIN))
        le = np.where(np.asarray(censored)[:, None], lc, le)
    return le


def forward(log_e: np.ndarray, log_P: np.ndarray, log_pi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalized forward filter in log space (module docstring).

    ``log_e`` (..., T, K) emission log-densities, ``log_P`` (..., K, K), ``log_pi``
    (..., K). Returns ``(log_f, c)``: ``log_f[..., t, k] = log P(z_t = k | y_{1:t})``
    and ``c[..., t] = log p(y_t | y_{1:t-1})`` (sum = the log-likelihood).
    """
    log_e = np.asarray(log_e, dtype=float)
    T = log_e.shape[-2]
    log_f = np.empty_like(log_e)
    c = np.empty(log_e.shape[:-1])
    a = log_pi + log_e[..., 0, :]
    for t in range(T):
        if t:
            a = logsumexp(log_f[..., t - 1, :, None] + log_P, axis=-2) + log_e[..., t, :]
        c[..., t] = logsumexp(a, axis=-1)
        log_f[..., t, :] = a - c[..., t, None]
    return log_f, c


def backward(log_e: np.ndarray, log_P: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Scaled backward pass: ``log_b[..., t, i] = log p(y_{t+1:T} | z_t = i) - sum_{u>t} c_u``."""
    log_e = np.asarray(log_e, dtype=float)
    T = log_e.shape[-2]
    log_b = np.zeros_like(log_e)
    for t in range(T - 2, -1, -1):
        log_b[..., t, :] = (logsumexp(log_P + (log_e[..., t + 1, :] + log_b[..., t + 1, :])[..., None, :],
                                      axis=-1) - c[..., t + 1, None])
    return log_b


def forward_backward(log_e: np.ndarray, log_P: np.ndarray, log_pi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed marginals ``P(z_t = k | y_{1:T})`` (..., T, K) and the log-likelihood (...)."""
    log_f, c = forward(log_e, log_P, log_pi)
    log_b = backward(log_e, log_P, c)
    g = log_f + log_b
    g = g - logsumexp(g, axis=-1, keepdims=True)
    return np.exp(g), c.sum(axis=-1)


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
             max_iter: int, tol: float) -> list[dict[str, Any]]:
    """EM from each row of ``m0`` (S, K), all starts advanced together."""
    y, cen = obs.log_rv, obs.censored
    S = len(m0)
    m = np.sort(np.asarray(m0, dtype=float), axis=1)
    s = np.broadcast_to(np.asarray(s0, dtype=float), (S, K)).copy()
    P = np.broadcast_to(conc / conc.sum(axis=1, keepdims=True), (S, K, K)).copy()
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


def em_fit(obs: RegimeObs, config: RegimeConfig | None = None, max_iter: int = 200,
           tol: float = 1e-7, restarts: int = 3, seed: int = 0) -> dict[str, Any]:
    """Maximum a posteriori point estimate of the HMM by EM (Baum-Welch; Rabiner
    1989, section III.C) with the sticky Dirichlet rows as the transition prior
    (MAP M-step: expected counts + concentration - 1); emission M-step on the
    uncensored bars; sds floored at 5 % of the data's sd; states kept in
    increasing order of mean; stops when the objective improves by less than
    ``tol`` per bar.

    EM finds a local optimum, and with unequal regime occupancy the obvious
    start (the 1/8 .. 7/8 quantiles) can put two states on one regime, so it is
    run from several starts and the best MAP objective wins: the quantile start,
    equal spacing over the 5-95 % and the 2-98 % ranges, and ``restarts`` random
    draws of 4 bars' values (seeded by ``seed``: deterministic).

    Used as the *reference point* where the samplers start (see
    :func:`build_model`), and usable on its own as a fast, non-Bayesian regime
    labelling. Returns ``log_rv_mean``, ``log_rv_sd`` (4,), ``regime_transition``
    (4, 4), ``regime_stationary``, ``loglik``, ``objective``, ``iterations``,
    ``converged``, ``smoothed`` (n_bars, 4), ``starts`` (objective per start).
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
    s0 = np.full(K, max(sd_y / 4.0, sd_floor))
    runs = _em_runs(obs, np.array(starts), s0, conc, sd_floor, max_iter, tol)
    best = max(runs, key=lambda r: r["objective"])
    best["starts"] = [float(r["objective"]) for r in runs]
    return best


# =========================================================================== pytensor model
def _forward_scan(y, m, s, log_P, log_pi, censored: np.ndarray | None, censor_log_rv: float | None):
    """Per-bar one-step-ahead log densities c_t (pytensor vector; module docstring)."""
    import pytensor
    import pytensor.tensor as pt
    from pytensor.tensor.math import logsumexp as lse

    z = (y[:, None] - m[None, :]) / s[None, :]
    le = -0.5 * z**2 - pt.log(s)[None, :] - 0.5 * math.log(2.0 * math.pi)
    if censored is not None and np.any(censored):
        zc = pt.maximum((censor_log_rv - m) / s, _CENSOR_Z_MIN)
        lc = pt.log(0.5 * pt.erfc(-zc / math.sqrt(2.0)))
        le = pt.switch(pt.as_tensor(np.asarray(censored, bool))[:, None], lc[None, :], le)

    def step(le_t, f_prev, lP):
        a = lse(f_prev[:, None] + lP, axis=0) + le_t
        c = lse(a)
        return a - c, c

    a0 = log_pi + le[0]
    c0 = lse(a0)
    _, cs = pytensor.scan(step, sequences=[le[1:]], outputs_info=[a0 - c0, None],
                          non_sequences=[log_P], return_updates=False)
    return pt.concatenate([c0[None], cs])


def _core(x, ndim: int):
    """Drop leading (broadcast) batch dims PyMC may add to CustomDist parameters."""
    return x[(0,) * (x.ndim - ndim)] if x.ndim > ndim else x


def _make_logp(censored: np.ndarray | None, censor_log_rv: float | None):
    def logp(value, m, s, P, pi):
        import pytensor.tensor as pt

        m, s, P, pi = _core(m, 1), _core(s, 1), _core(P, 2), _core(pi, 1)
        return _forward_scan(value, m, s, pt.log(P), pt.log(pi), censored, censor_log_rv)

    return logp


def _random(m, s, P, pi, rng=None, size=None):
    """Exact simulation of the HMM (uncensored): one path per leading size index."""
    rng = rng if rng is not None else np.random.default_rng()
    m, s, P, pi = (np.asarray(x, dtype=float) for x in (m, s, P, pi))
    m, s, pi = m.reshape(-1, K)[0], s.reshape(-1, K)[0], pi.reshape(-1, K)[0]
    P = P.reshape(-1, K, K)[0]
    size = tuple(size) if size is not None else (1,)
    T = size[-1]
    n = int(np.prod(size[:-1])) if len(size) > 1 else 1
    out = np.empty((n, T))
    for i in range(n):
        path = simulate_path(P, T, rng, initial=pi)
        out[i] = m[path] + s[path] * rng.standard_normal(T)
    return out.reshape(size)


def _anchored(name: str, prior, ref: np.ndarray | float, step: float, log_scale: bool, dims=None):
    """A parameter x written as ``x = ref + step * v`` (``log_scale``: ``x = ref *
    exp(step * v)``) with the value v sampled and the prior of x exactly
    ``prior`` (a PyMC distribution ``.dist``): v's log-density is
    ``logp_prior(x) + log |dx/dv|``. v's support point is 0, so every sampler starts
    at x = ref (the EM reference) and PyMC's uniform [-1, 1] initial jitter moves x
    by at most ``step`` (times x). The posterior is unchanged: this only decides
    where the chains start (see :func:`build_model`). Returns x (a Deterministic)."""
    import pymc as pm
    import pytensor.tensor as pt

    ref = np.asarray(ref, dtype=float)
    shape = ref.shape

    def to_x(v):
        return ref * pt.exp(step * v) if log_scale else ref + step * v

    def logp(v):
        x = to_x(v)
        jac = pt.log(step * x) if log_scale else pt.log(step)
        return pm.logp(prior, x) + jac

    def random(rng=None, size=None):
        rng = rng if rng is not None else np.random.default_rng()
        x = pm.draw(prior, draws=1, random_seed=rng)
        x = np.broadcast_to(x, shape)
        return np.log(x / ref) / step if log_scale else (x - ref) / step

    def support_point(rv, size):
        return pt.zeros(shape)

    v = pm.CustomDist(f"{name}_anchored", logp=logp, random=random, support_point=support_point,
                      shape=shape, dims=dims if shape else None)
    return pm.Deterministic(name, to_x(v), dims=dims if shape else None)


def prior_centres(obs: RegimeObs, config: RegimeConfig | None = None) -> dict[str, Any]:
    """The data-scale prior centres (module docstring), JSON-friendly."""
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


def build_model(obs: RegimeObs, config: RegimeConfig | None = None, reference: Mapping[str, Any] | None = None):
    """The PyMC model (module docstring) for one sequence of bars.

    ``reference``: where the chains start (``log_rv_mean``, ``log_rv_sd``; default
    :func:`em_fit`). The lowest mean, the gaps and the pooled sd are
    parameterized around it (:func:`_anchored`) so that every sampler, whatever
    its initial jitter, starts next to one consistent configuration of the four
    states; the priors (and so the posterior) do not depend on it."""
    import pymc as pm
    import pytensor.tensor as pt

    cfg = config or RegimeConfig()
    pc = prior_centres(obs, cfg)
    ref = reference if reference is not None else em_fit(obs, cfg)
    ref_m = np.sort(np.asarray(ref["log_rv_mean"], dtype=float))
    ref_sd = np.asarray(ref["log_rv_sd"], dtype=float)
    ref_gaps = np.maximum(np.diff(ref_m), 0.05 * pc["sd_log_rv"])
    coords = {"regime": list(REGIMES), "regime_from": list(REGIMES), "regime_to": list(REGIMES),
              "gap": [f"{REGIMES[k - 1]}-{REGIMES[k]}" for k in range(1, K)],
              "bar": np.arange(obs.n_bars)}
    with pm.Model(coords=coords) as model:
        lowest = _anchored("log_rv_mean_lowest", pm.Normal.dist(pc["mean_lowest_mu"], pc["mean_lowest_sd"]),
                           ref_m[0], 0.1 * float(ref_sd.min()), log_scale=False)
        gaps = _anchored("log_rv_gap", pm.Gamma.dist(cfg.gap_shape, cfg.gap_shape / pc["gap_mean"], shape=K - 1),
                         ref_gaps, 0.1, log_scale=True, dims="gap")
        m = pm.Deterministic("log_rv_mean", pt.concatenate([lowest[None], lowest + pt.cumsum(gaps)]),
                             dims="regime")
        pooled = _anchored("log_rv_sd_pooled", pm.Normal.dist(pc["sd_pooled_mu"], pc["sd_pooled_sd"]),
                           float(np.log(ref_sd).mean()), 0.1, log_scale=False)
        tau = pm.HalfNormal("log_rv_sd_tau", sigma=cfg.sd_tau_scale)
        z = pm.Normal("log_rv_sd_z", 0.0, 1.0, dims="regime")
        s = pm.Deterministic("log_rv_sd", pt.exp(pooled + tau * z), dims="regime")
        kappa0 = cfg.sticky_concentration(obs.bar_seconds)
        if cfg.learn_stickiness:
            excess = pm.LogNormal("regime_stickiness_excess",
                                  mu=math.log(max(kappa0 - cfg.offdiag_concentration, 1e-3)),
                                  sigma=cfg.stickiness_log_sd)
            kappa = pm.Deterministic("regime_stickiness", cfg.offdiag_concentration + excess)
        else:
            kappa = pt.as_tensor(kappa0)
        conc = cfg.offdiag_concentration + pt.eye(K) * (kappa - cfg.offdiag_concentration)
        P = pm.Dirichlet("regime_transition", a=conc, dims=("regime_from", "regime_to"))
        A = (pt.eye(K) - P + pt.ones((K, K))).T
        pi = pm.Deterministic("regime_stationary", pt.linalg.solve(A, pt.ones(K)), dims="regime")
        pm.Deterministic("sigma_bps", pt.sqrt(pt.exp(m + s**2 / 2.0) / obs.bar_seconds) * 1e4, dims="regime")
        pm.CustomDist("log_rv", m, s, P, pi, logp=_make_logp(obs.censored, obs.censor_log_rv),
                      random=_random, signature="(k),(k),(k,k),(k)->()", observed=obs.log_rv, dims="bar")
    return model


def version(model_config: RegimeConfig | None = None, obs: RegimeObs | None = None) -> str:
    """The model version :func:`fit` stores: hash of ``model_config`` (with the
    observation rules) and this module's code; ``obs`` is not used."""
    import models.regime as this

    return model_version(MODEL_NAME, model_config or RegimeConfig(), this)


def fit(obs: RegimeObs, sampler: SamplerConfig | None = None, model_config: RegimeConfig | None = None):
    """Sample the posterior; returns ``az.InferenceData`` with the per-bar
    ``log_likelihood`` (``log_rv``: one-step-ahead log densities) and attrs
    ``model_name``, ``model_version`` (hash of ``model_config`` + this module's
    code), ``bar_seconds``, ``n_bars``, ``n_censored``, ``censor_log_rv``,
    ``prior_centres`` and ``em_reference`` (JSON: the EM point where the chains
    start, with its log-likelihood)."""
    mc = model_config or RegimeConfig()
    ref = em_fit(obs, mc)
    idata = sample(build_model(obs, mc, reference=ref), sampler or SamplerConfig())
    idata.attrs["model_name"] = MODEL_NAME
    idata.attrs["model_version"] = version(mc)
    idata.attrs["bar_seconds"] = float(obs.bar_seconds)
    idata.attrs["n_bars"] = int(obs.n_bars)
    idata.attrs["n_censored"] = int(obs.n_censored)
    idata.attrs["censor_log_rv"] = float("nan") if obs.censor_log_rv is None else float(obs.censor_log_rv)
    idata.attrs["asset"] = obs.asset
    idata.attrs["prior_centres"] = json.dumps(prior_centres(obs, mc))
    idata.attrs["em_reference"] = json.dumps({
        k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
        for k, v in ref.items() if k != "smoothed"})
    return idata


# =========================================================================== posterior quantities
def _draws(idata, name: str) -> np.ndarray:
    da = idata.posterior[name].transpose("chain", "draw", ...)
    v = np.asarray(da.values, dtype=float)
    return v.reshape(-1, *v.shape[2:])


def posterior_draws(idata, max_draws: int | None = None) -> dict[str, np.ndarray]:
    """Posterior draws (S, ...) of ``log_rv_mean`` (S,4), ``log_rv_sd`` (S,4),
    ``regime_transition`` (S,4,4), ``regime_stationary`` (S,4), ``sigma_bps`` (S,4),
    thinned evenly to at most ``max_draws``."""
    from models.sampling import thin_index

    names = ("log_rv_mean", "log_rv_sd", "regime_transition", "regime_stationary", "sigma_bps")
    out = {n: _draws(idata, n) for n in names}
    idx = thin_index(len(out["log_rv_mean"]), max_draws)
    return {n: v[idx] for n, v in out.items()}


def _log_safe(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(x, dtype=float))


def smoothed_probabilities(idata, obs: RegimeObs, method: Literal["posterior", "mean"] = "posterior",
                           max_draws: int = 200) -> np.ndarray:
    """Per-bar regime probabilities ``P(z_t = k | all bars)``, array (n_bars, 4).

    ``method="posterior"`` (default): forward-backward at up to ``max_draws``
    evenly thinned posterior draws, averaged (parameter uncertainty integrated
    out). ``method="mean"``: one forward-backward at the posterior means of the
    emission means/sds and transition rows (stationary initial distribution of
    that mean matrix). ``obs`` must be the bars the probabilities are wanted for
    (usually the fitted ones; any bars with the same bar length work)."""
    B = float(idata.attrs.get("bar_seconds", obs.bar_seconds))
    if abs(B - obs.bar_seconds) > 1e-9:
        raise ValueError(f"the fit used {B} s bars, the observations have {obs.bar_seconds} s bars")
    d = posterior_draws(idata, max_draws if method == "posterior" else None)
    if method == "mean":
        m, s, P = d["log_rv_mean"].mean(0), d["log_rv_sd"].mean(0), d["regime_transition"].mean(0)
        P = P / P.sum(axis=1, keepdims=True)
        le = emission_logp(obs.log_rv, m, s, obs.censored, obs.censor_log_rv)
        probs, _ = forward_backward(le, _log_safe(P), _log_safe(stationary_distribution(P)))
        return probs
    if method != "posterior":
        raise ValueError(f"method must be 'posterior' or 'mean', got {method!r}")
    le = emission_logp(obs.log_rv, d["log_rv_mean"], d["log_rv_sd"], obs.censored, obs.censor_log_rv)
    probs, _ = forward_backward(le, _log_safe(d["regime_transition"]), _log_safe(d["regime_stationary"]))
    return probs.mean(axis=0)


def regime_path(idata, obs: RegimeObs, probs: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
    """The most probable regime of each bar (int8 0..3, :data:`REGIMES` order): the
    argmax of :func:`smoothed_probabilities` (pass ``probs`` to reuse them;
    ``kwargs`` go to :func:`smoothed_probabilities`)."""
    p = smoothed_probabilities(idata, obs, **kwargs) if probs is None else np.asarray(probs)
    return np.argmax(p, axis=1).astype(np.int8)


def _check_asset(idata, asset: str | None) -> None:
    """The regime model fits one asset: ``asset``, when given, must be the fit's."""
    fitted = idata.attrs.get("asset")
    if asset is not None and fitted and str(fitted) != str(asset):
        raise ValueError(f"the regime fit is of asset {fitted!r}, not {asset!r}")


def heldout_lpd(idata, obs: RegimeObs, asset: str | None = None, *, max_draws: int | None = 400
                ) -> dict[str, Any]:
    """Log predictive density of held-out bars (a window the fit did not see), one
    step ahead: for bar t, ``lpd_t = log mean_s p(y_t | y_1..y_{t-1}, theta_s)`` with
    ``p(y_t | y_<t, theta)`` the forward filter's normaliser ``c_t`` (:func:`forward`;
    the chain starts in the stationary distribution of the draw's transition matrix)
    at up to ``max_draws`` evenly thinned posterior draws. These are the terms of the
    fit's own ``log_likelihood`` group, evaluated on new bars; their sum estimates
    the held-out elpd (:func:`models.sampling.predictive_density`: ``elpd``, ``se``,
    ``pointwise``). ``obs`` must have the fit's bar length (the unit of the data)."""
    from models.sampling import predictive_density

    _check_asset(idata, asset)
    B = float(idata.attrs.get("bar_seconds", obs.bar_seconds))
    if abs(B - obs.bar_seconds) > 1e-9:
        raise ValueError(f"the fit used {B:g} s bars, the held-out observations have {obs.bar_seconds:g} s bars")
    d = posterior_draws(idata, max_draws)
    le = emission_logp(obs.log_rv, d["log_rv_mean"], d["log_rv_sd"], obs.censored, obs.censor_log_rv)
    _, c = forward(le, _log_safe(d["regime_transition"]), _log_safe(d["regime_stationary"]))
    return {**predictive_density(c, unit="volatility bars"), "bar_seconds": B}


# =========================================================================== summaries
def summary_draws(idata, asset: str | None = None) -> dict[str, Any]:
    """The posterior draws behind :func:`summarize` (the exporter measures the
    summaries' fidelity on them): ``regime_transition`` {from: (S, 4)},
    ``regime_emission`` {regime: {"mean": (S,), "var": (S,)}} on ln sigma_bar
    (bps/sqrt(s)), ``sigma_bps`` {regime: (S,)}."""
    _check_asset(idata, asset)
    d = posterior_draws(idata)
    B = float(idata.attrs["bar_seconds"])
    b = LOG_1E4 - 0.5 * math.log(B)
    my = 0.5 * d["log_rv_mean"] + b
    vy = 0.25 * d["log_rv_sd"] ** 2
    return {
        "regime_transition": {r: d["regime_transition"][:, i, :] for i, r in enumerate(REGIMES)},
        "regime_emission": {r: {"mean": my[:, k], "var": vy[:, k]} for k, r in enumerate(REGIMES)},
        "sigma_bps": {r: d["sigma_bps"][:, k] for k, r in enumerate(REGIMES)},
    }


def summarize(idata, asset: str | None = None) -> dict[str, Any]:
    """Conjugate summaries (module docstring; ``mm_runtime.bundle`` layout):
    ``{"regime_transition": {from: dirichlet}, "regime_emission": {regime:
    normal_inverse_gamma on ln sigma_bar}, "sigma_bps": {regime: lognormal}}``."""
    d = summary_draws(idata, asset)
    from models.export import dirichlet_from_draws, lognormal_from_draws, normal_inverse_gamma_from_draws

    return {
        "regime_transition": {r: dirichlet_from_draws(x) for r, x in d["regime_transition"].items()},
        "regime_emission": {r: normal_inverse_gamma_from_draws(v["mean"], v["var"])
                            for r, v in d["regime_emission"].items()},
        "sigma_bps": {r: lognormal_from_draws(x) for r, x in d["sigma_bps"].items()},
    }


def path_accuracy(path: np.ndarray, reference: np.ndarray) -> float:
    """Share of bars whose regime equals the reference's."""
    path, reference = np.asarray(path), np.asarray(reference)
    if path.shape != reference.shape:
        raise ValueError(f"path has {path.shape} bars, reference {reference.shape}")
    return float(np.mean(path == reference))


__all__ = [
    "MODEL_NAME", "RegimeConfig", "RegimeObs", "observations", "simulate", "simulate_path",
    "truth_arrays", "truth_params", "build_model", "fit", "posterior_draws", "smoothed_probabilities",
    "regime_path", "summarize", "summary_draws", "stationary_distribution", "emission_logp",
    "forward", "backward", "forward_backward", "path_accuracy", "prior_centres", "em_fit",
    "heldout_lpd", "market_truth", "JUMP_ROBUST_ESTIMATORS",
]
