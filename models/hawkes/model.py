"""The PyMC model of the Hawkes process: priors (:class:`HawkesPriors`), the model's
configuration (:class:`HawkesConfig`), the exact bijection onto stationary branching
matrices, :func:`build_model` (one asset, or several with partial pooling),
:func:`fit` and the model identity :func:`version`.

Rates in events/s, decay in 1/s; names as DESIGN.md section 8
(``hawkes_baseline[low,buy]``, ``hawkes_branching[buy,sell]``, ``hawkes_decay``).
Priors, parameterisation and the measurements behind them: docs/models/hawkes.md.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any, Literal

import numpy as np
import pytensor.tensor as pt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mm_runtime.vocabulary import REGIMES, SIDES
from models.hawkes.observations import HawkesObs
from models.hawkes.op import loglik_op, loglik_pt
from models.hawkes.posterior import add_log_likelihood
from models.hawkes.residuals import fit_goodness
from models.hawkes.select import choose_components
from models.hawkes.start import branching_from_raw, decay_floor, penalised_mle
from models.sampling import SamplerConfig, model_version, sample, whitened_mean, whitened_normal

MODEL_NAME = "hawkes"
_BRANCHING_COORDS = ("logit_n_buy_buy", "logit_n_sell_sell", "log_cross_margin", "logit_cross_balance")


# --------------------------------------------------------------------------- priors and config
class HawkesPriors(BaseModel):
    """Priors of :func:`build_model` (the reasons: docs/models/hawkes.md,
    "Parameterisation and priors").

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
    max_decay_lifetime_windows: float | None = Field(
        1.0, gt=0, description="the decay prior is truncated at beta_min = 1 / (this x the window), "
        "i.e. the kernel's mean lifetime 1/beta is at most this many windows (one asset; None: no "
        "floor; docs/models/hawkes.md, 'Decay floor and starting point')")
    start: Literal["mle", "prior"] = Field(
        "mle", description="one asset: the branching and decay are sampled in flat coordinates "
        "shifted to the penalised MLE (models.hawkes.start), so every chain starts at the mode "
        "(mle), or the branching at 0 and the decay at the prior median (prior)")
    baseline_parameterization: Literal["auto", "non_centered", "centered"] = Field(
        "auto", description="sampling coordinates of the cell-level (regime x side [x asset]) "
        "effects of log mu (docs/models/hawkes.md): auto = whitened by each cell's data for one "
        "asset; with several, centred iff every cell that has time in the window holds >= "
        "auto_min_events events, else non-centred")
    auto_min_events: int = Field(100, ge=1, description="several assets, auto: see baseline_parameterization")


class HawkesKernel(BaseModel):
    """The excitation kernel ``phi_{s,s'}(t) = sum_m n^m_{s,s'} beta_m e^{-beta_m t}``
    (docs/models/hawkes.md, "Several kernel components"). ``components`` = 1 is the
    one-exponential model. With M > 1 the total branching ``sum_m n^m`` has the one-kernel
    prior and parameterisation (spectral radius < 1), each entry is split over the
    components by weights with a Dirichlet(``weight_concentration``) prior, and the decays
    (ordered fastest first) are either ``free`` (log beta_m iid Normal with centre and sd
    from ``decay_range``: the range is +-2 sd, truncated at the decay floor) or a fixed
    log-spaced ``grid`` spanning ``decay_range``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    components: int | Literal["auto"] = Field(
        1, description="1..6, or auto: the candidate with the best held-out lpd (models.hawkes.select)")
    decays: Literal["free", "grid"] = "free"
    decay_range: tuple[float, float] = Field((0.01, 1000.0), description="1/s: ~100 s to ~1 ms")
    weight_concentration: float = Field(1.0, gt=0)
    candidates: tuple[int, ...] = Field((1, 2, 3, 4), description="auto: the M compared")
    holdout_fraction: float = Field(0.2, gt=0, lt=1, description="auto: the last part of the window scored")

    @model_validator(mode="after")
    def _range(self):
        lo, hi = self.decay_range
        if not 0 < lo < hi:
            raise ValueError(f"decay_range must be 0 < low < high, got {self.decay_range}")
        for m in ((self.components,) if self.components != "auto" else ()) + tuple(self.candidates):
            if not 1 <= m <= 6:
                raise ValueError(f"components must be 1..6, got {m}")
        return self

    def grid(self, beta_min: float = 0.0) -> np.ndarray:
        """(M,) log-spaced decays from ``decay_range[1]`` down to ``max(decay_range[0],
        beta_min)``, fastest first."""
        lo, hi = self.decay_range
        return np.geomspace(hi, max(lo, 1.0001 * beta_min), self.components)

    def decay_prior(self) -> tuple[float, float]:
        """(centre, sd) of log beta_m for free decays: the range is centre +- 2 sd."""
        lo, hi = (math.log(x) for x in self.decay_range)
        return 0.5 * (lo + hi), (hi - lo) / 4.0


class HawkesConfig(BaseModel):
    """The model's configuration for :func:`fit`: the priors, which implementation
    of the likelihood the PyMC model uses (:func:`build_model`) and the kernel."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    priors: HawkesPriors = Field(default_factory=HawkesPriors)
    likelihood: Literal["op", "graph"] = "op"
    kernel: HawkesKernel = Field(default_factory=HawkesKernel)


# --------------------------------------------------------------------------- branching parameterisation
def _softplus(x):
    return pt.softplus(x)


def branching_from_raw_pt(theta):
    """(..., 4) unconstrained -> (n (..., 2, 2), log|dn/dtheta| (...)); the bijection
    onto ``{n in (0,1)^4 : rho(n) < 1}`` (docs/models/hawkes.md, "Branching matrix")."""
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


def _decay(pr: HawkesPriors, beta_min: float, st: dict | None):
    """The decay of the one-asset model: ``beta = beta_min + exp(u)``, ``u = u0 + s z`` with
    ``z`` flat (``hawkes_log_decay_shift``; u0, s: the penalised MLE's u and its sd, or the
    prior median and 1) and the prior as a potential: log beta ~ Normal(log decay_median,
    log_decay_sd) truncated at beta_min (the LogNormal of docs/models/hawkes.md), plus
    log |d log beta / d z| = u - log beta + log s."""
    import pymc as pm

    if st is not None:
        u0, s = st["u"], st["u_sd"]
    else:
        u0, s = math.log(max(pr.decay_median - beta_min, 1e-12)), 1.0
    z = pm.Flat("hawkes_log_decay_shift")
    u = u0 + s * z
    beta = pm.Deterministic("hawkes_decay", beta_min + pt.exp(u))
    lb = pt.log(beta)
    pm.Potential("hawkes_decay_prior", -0.5 * ((lb - math.log(pr.decay_median)) / pr.log_decay_sd) ** 2
                 + u - lb + math.log(s))
    return beta


def _decays(kern: HawkesKernel, beta_min: float, st: dict | None, fixed: bool):
    """(M,) decays, fastest first, of the M-component kernel. ``grid``: constants
    (:meth:`HawkesKernel.grid`). ``free``: ``beta_{M-1} = beta_min + e^{u_{M-1}}``,
    ``beta_m = beta_{m+1} + e^{u_m}`` (ordered, above the floor), ``u = u0 + s z`` with
    ``z`` flat (``hawkes_log_decay_shift``) shifted to the penalised MLE as for one
    component, and the prior as a potential: iid Normal(:meth:`HawkesKernel.decay_prior`)
    on log beta_m (restricted to the ordered region), plus log |d log beta / d z| =
    sum_m (u_m - log beta_m + log s_m) (the map u -> beta is triangular)."""
    import pymc as pm

    if fixed:
        return pm.Deterministic("hawkes_decay", pt.as_tensor_variable(kern.grid(beta_min)), dims="component")
    g = kern.grid(beta_min)
    if st is not None:
        u0, s = np.asarray(st["u"]), np.asarray(st["u_sd"])
    else:
        u0, s = np.log(np.maximum(np.append(-np.diff(g), g[-1] - beta_min), 1e-12)), np.ones(len(g))
    z = pm.Flat("hawkes_log_decay_shift", dims="component")
    u = u0 + s * z
    beta = pm.Deterministic("hawkes_decay", beta_min + pt.cumsum(pt.exp(u)[::-1])[::-1], dims="component")
    lb = pt.log(beta)
    c, sd = kern.decay_prior()
    pm.Potential("hawkes_decay_prior", (-0.5 * ((lb - c) / sd) ** 2 + u - lb + np.log(s)).sum())
    return beta


def _kernel_weights(kern: HawkesKernel, y):
    """(..., 2, 2, M) weights of each branching entry over the components from the
    additive log-ratio coordinates ``y`` (..., 2, 2, M-1) (``w = softmax([0, y])``), with
    the Dirichlet(``weight_concentration``) prior written on ``y``: its density
    ``prod w^(a-1)`` times the transform's Jacobian ``prod_m w_m`` (Aitchison 1986,
    ch. 6) is ``prod_m w_m^a``. Returns (w, log prior)."""
    full = pt.concatenate([pt.zeros_like(y[..., :1]), y], axis=-1)
    logw = full - pt.logsumexp(full, axis=-1, keepdims=True)
    return pt.exp(logw), (kern.weight_concentration * logw).sum()


def _split(n_total, w):
    """n^m = n_total w[..., m]: (..., 2, 2) x (..., 2, 2, M) -> (..., M, 2, 2)."""
    return pt.moveaxis(n_total[..., None] * w, -1, -3)


# --------------------------------------------------------------------------- the PyMC model
def cell_counts(obs: HawkesObs) -> np.ndarray:
    """(A, 4, 2) events per asset x regime x side."""
    c = np.zeros((obs.n_assets, len(REGIMES), 2))
    np.add.at(c, (obs.asset, obs.regime.astype(int), obs.side.astype(int)), 1.0)
    return c


def baseline_coordinates(obs: HawkesObs, pr: HawkesPriors) -> Literal["whitened", "centered", "non_centered"]:
    """The sampling coordinates of the baseline cells (``HawkesPriors.baseline_parameterization``;
    docs/models/hawkes.md): ``auto`` is ``whitened`` for one asset; with several assets,
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
                likelihood: Literal["op", "graph"] = "op", kernel: HawkesKernel | None = None):
    """The PyMC model (docs/models/hawkes.md): single-asset when ``obs`` has one
    asset, hierarchical across assets otherwise.

    ``likelihood="op"`` (default) evaluates the log-likelihood with the JAX sweep
    wrapped as one pytensor Op (:class:`~models.hawkes.op.HawkesLogLikOp`, exact
    analytic gradient). ``"graph"`` builds the same block algorithm as a pytensor
    graph (:func:`~models.hawkes.op.loglik_pt`) differentiated by pytensor: no Python
    callback, but slower to compile (use it with nutpie's numba backend or numpyro;
    compile times: docs/models/hawkes.md, "The pytensor graph").

    ``kernel`` (:class:`HawkesKernel`): with M > 1 components, ``hawkes_branching`` is
    the total branching matrix, ``hawkes_kernel_branching`` (component, target, source)
    its split, ``hawkes_decay`` (component) the decays, fastest first.
    """
    import pymc as pm

    pr = priors or HawkesPriors()
    kern = kernel or HawkesKernel()
    M = kern.components
    if M == "auto":
        raise ValueError("build_model needs a number of components; fit() resolves 'auto'")
    if M > 1 and likelihood != "op":
        raise ValueError("HawkesKernel.components > 1 needs likelihood='op'")
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
    if M > 1:
        coords["component"] = list(range(M))
    coords_kind = baseline_coordinates(obs, pr)
    with pm.Model(coords=coords) as model:
        if A == 1:
            tau = pm.HalfNormal("log_baseline_regime_sd", sigma=pr.regime_sd)
            beta_min = decay_floor(obs, pr.max_decay_lifetime_windows)
            st = penalised_mle(obs, pr, beta_min, kern) if pr.start == "mle" else None
            theta0 = st["theta"] if st else np.zeros(4)
            theta = pm.Deterministic("hawkes_branching_raw", theta0 + pm.Flat(
                "hawkes_branching_raw_shift", dims="branching_coord"), dims="branching_coord")
            n, lp = _branching_prior(theta, pr.branching_alpha, pr.branching_beta)
            pm.Potential("hawkes_branching_prior", lp)
            n = pm.Deterministic("hawkes_branching", n, dims=("target", "source"))
            rho = pm.Deterministic("hawkes_spectral_radius", _spectral_radius_pt(n))
            if coords_kind == "whitened":
                # each cell's crude estimate given n: immigrants = events (1 - rho) (docs/models/hawkes.md)
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
            if M == 1:
                beta = _decay(pr, beta_min, st)
            else:
                beta = _decays(kern, beta_min, st, kern.decays == "grid")
                y0 = st["weights_raw"] if st else np.zeros((2, 2, M - 1))
                y = y0 + pm.Flat("hawkes_kernel_weight_raw_shift", shape=(2, 2, M - 1))
                w, lpw = _kernel_weights(kern, y)
                pm.Potential("hawkes_kernel_weight_prior", lpw)
                n = pm.Deterministic("hawkes_kernel_branching", _split(n, w), dims=("component", "target", "source"))
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
            if M == 1:
                lb = pm.Normal("log_hawkes_decay_pop", mu=math.log(pr.decay_median), sigma=pr.log_decay_sd)
                s_b = pm.HalfNormal("log_hawkes_decay_asset_sd", sigma=pr.decay_asset_sd)
                zb = pm.Normal("log_hawkes_decay_asset_z", 0.0, 1.0, dims="asset")
                beta_b = pm.Deterministic("hawkes_decay", pt.exp(lb + s_b * zb), dims="asset")
            else:
                # partial pooling as for one component: population decays (ordered) and
                # weight coordinates, asset offsets scaled by half-normal sds
                b_pop = _decays(kern, 0.0, None, kern.decays == "grid")
                if kern.decays == "grid":
                    beta_b = pt.broadcast_to(b_pop[None], (A, M))
                else:
                    s_b = pm.HalfNormal("log_hawkes_decay_asset_sd", sigma=pr.decay_asset_sd)
                    zb = pm.Normal("log_hawkes_decay_asset_z", 0.0, 1.0, dims="asset")
                    beta_b = b_pop[None, :] * pt.exp(s_b * zb)[:, None]
                beta_b = pm.Deterministic("hawkes_kernel_decay", beta_b, dims=("asset", "component"))
                y_pop = pm.Flat("hawkes_kernel_weight_raw_pop", shape=(2, 2, M - 1))
                _, lpw = _kernel_weights(kern, y_pop)
                pm.Potential("hawkes_kernel_weight_prior", lpw)
                s_w = pm.HalfNormal("hawkes_kernel_weight_raw_asset_sd", sigma=pr.branching_asset_sd)
                zw = pm.Normal("hawkes_kernel_weight_raw_asset_z", 0.0, 1.0, shape=(A, 2, 2, M - 1))
                w_a, _ = _kernel_weights(kern, y_pop[None] + s_w * zw)
                n_b = pm.Deterministic("hawkes_kernel_branching", _split(n_b, w_a),
                                       dims=("asset", "component", "target", "source"))
        if likelihood == "op":
            ll = loglik_op(mu_b, n_b, beta_b, obs)
        elif likelihood == "graph":
            ll = loglik_pt(mu_b, n_b, beta_b, obs)
        else:
            raise ValueError(f"likelihood must be 'op' or 'graph', got {likelihood!r}")
        pm.Potential("hawkes_loglik", ll)
    return model


# --------------------------------------------------------------------------- fit and identity
def resolved_config(model_config: HawkesConfig | None, obs: HawkesObs) -> dict[str, Any]:
    """The model config as :func:`fit` records it (``idata.attrs["hawkes_config"]``):
    the priors, the baseline coordinates the data decide, the likelihood, the assets."""
    mc = model_config or HawkesConfig()
    pr = mc.priors
    out = {"priors": pr.model_dump(mode="json"), "baseline_coordinates": baseline_coordinates(obs, pr),
           "likelihood": mc.likelihood,
           "assets": list(obs.assets), "regimes": list(REGIMES), "sides": list(SIDES)}
    if mc.kernel.components != 1:       # one component: the record (and version) of before
        out["kernel"] = mc.kernel.model_dump(mode="json")
    return out


def fit(obs: HawkesObs, sampler: SamplerConfig | None = None, model_config: HawkesConfig | None = None):
    """Sample the posterior; returns InferenceData with a ``log_likelihood`` group
    and ``attrs``: ``model_name`` ("hawkes"), ``model_version`` (:func:`version`),
    ``hawkes_gof`` (JSON: the time-rescaling KS test at the posterior mean,
    :func:`models.hawkes.residuals.fit_goodness`), with ``kernel.components = "auto"``
    ``hawkes_components_choice`` (JSON: the held-out lpd table and the M chosen,
    :func:`models.hawkes.select.choose_components`; the posterior is the chosen M's),
    ``hawkes_config`` (:func:`resolved_config`, JSON), ``assets``, ``n_events``, plus
    the sampler's attrs.

    With ``likelihood="op"`` and nutpie, the numba backend would call the JAX Op in
    object mode, so nutpie is switched to its JAX backend (the Op is inlined there).
    """
    mc = model_config or HawkesConfig()
    cfg = sampler or SamplerConfig()
    choice = None
    if mc.kernel.components == "auto":
        k1 = mc.kernel.model_copy(update={"components": 1})
        choice = choose_components(obs, mc.priors, k1, mc.kernel.candidates, 1.0 - mc.kernel.holdout_fraction)
        mc = mc.model_copy(update={"kernel": mc.kernel.model_copy(update={"components": choice["components"]})})
    if mc.likelihood == "op" and cfg.sampler == "nutpie" and cfg.nutpie_backend == "numba":
        cfg = cfg.model_copy(update={"nutpie_backend": "jax"})
    model = build_model(obs, mc.priors, mc.likelihood, mc.kernel)
    idata = sample(model, cfg)
    if cfg.log_likelihood:
        add_log_likelihood(idata, obs, cfg.max_log_likelihood_size)
    idata.attrs["hawkes_gof"] = json.dumps(fit_goodness(idata, obs))
    if choice is not None:
        idata.attrs["hawkes_components_choice"] = json.dumps(choice)
    idata.attrs.update({
        "model_name": MODEL_NAME,
        "model_version": version(mc, obs),
        "hawkes_config": json.dumps(resolved_config(mc, obs)),
        "assets": json.dumps(list(obs.assets)),
        "n_events": int(obs.n_events),
    })
    return idata


def version(model_config: HawkesConfig | None = None, obs: HawkesObs | None = None) -> str:
    """The model version :func:`fit` stores: hash (:func:`models.sampling.model_version`)
    of :func:`resolved_config` and the code of every module of the ``models.hawkes``
    package. ``obs`` is required: the data decide the baseline coordinates and the
    assets, which are part of the config."""
    package = sys.modules[__package__]  # this package (loaded: it holds this module)
    if obs is None:
        raise ValueError("hawkes.version needs obs: the baseline coordinates and the assets "
                         "of the model are decided by the data")
    return model_version(MODEL_NAME, resolved_config(model_config, obs), package)
