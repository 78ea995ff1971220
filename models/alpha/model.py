"""Alpha's priors, the PyMC models of both variants (threshold: binomial on the
informed flag; mixture: two-component markout mixture), the fit and the model
version.

Units: depths and markouts in bps. Model, priors, sampling coordinates and
measurements: docs/models/alpha.md.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import special

from mm_runtime.vocabulary import REGIMES
from models.sampling import SamplerConfig, centred_groups, mixed_normal, model_version, sample

from .observations import AlphaObs, combine

MODEL_NAME = "alpha"
MIXTURE_NAME = "alpha_mixture"


# =========================================================================== priors & model
class AlphaPrior(BaseModel):
    """Hyperparameters of both variants (docs/models/alpha.md). Part of the model version."""

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
    floor_share_a: float = Field(1.0, gt=0.0, description="alpha_floor_share ~ Beta(a, b): the floor as a "
                                 "share of the lowest regime's alpha_touch")
    floor_share_b: float = Field(2.0, gt=0.0)


class AlphaConfig(BaseModel):
    """The model config: the variant (``threshold``: binomial on the informed flag;
    ``mixture``: two-component markout mixture) and the priors. Part of the model version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    variant: Literal["threshold", "mixture"] = "threshold"
    floor: bool = True
    """alpha(delta) levels off at ``alpha_floor`` away from the touch (True) or decays
    to zero (False: the original system's law)."""
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
    independently per asset (see docs/models/alpha.md for why these are not pooled)."""
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
    + tau z[r] + sigma_ar w[a,r]`` of docs/models/alpha.md. Each level is written
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
        # across-asset scales are fixed hyperparameters (docs/models/alpha.md)
        nu = prior.asset_scale * pm.ZeroSumNormal("alpha_touch_asset_z", sigma=1.0, dims="asset")
        w = prior.asset_regime_scale * pm.ZeroSumNormal("alpha_touch_asset_regime_z", sigma=1.0,
                                                        dims=("asset", "regime"), n_zerosum_axes=2)
        eta = beta[None, :] + nu[:, None] + w
        pm.Deterministic("alpha_touch", pm.math.sigmoid(eta), dims=("asset", "regime"))
    decay = _per_asset_positive("alpha_decay_bps", obs, prior.decay_median_bps, prior.decay_log_sd)
    return eta, decay


def _floor_block(obs: AlphaObs, prior: AlphaPrior, eta):
    """log alpha_floor per asset, (A,): ``alpha_floor[a] = phi[a] * min_r alpha_touch[a, r]``
    with ``phi = alpha_floor_share ~ Beta(floor_share_a, floor_share_b)``, so the floor
    lies below every regime's alpha_touch by construction (docs/models/alpha.md, "Floor")."""
    import pymc as pm
    import pytensor.tensor as pt

    dims = "asset" if obs.n_assets > 1 else None
    share = pt.reshape(pm.Beta("alpha_floor_share", prior.floor_share_a, prior.floor_share_b, dims=dims),
                       (obs.n_assets,))
    log_floor = pt.log(share) + pt.min(-pt.softplus(-eta), axis=1)
    floor = pt.exp(log_floor)
    pm.Deterministic("alpha_floor", floor if dims else floor[0], dims=dims)
    return log_floor


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


def _log_alpha(eta, decay, asset, regime, depth, log_floor=None):
    """log alpha = log_sigmoid(eta[a, r]) - delta / decay[a] without a floor; with one,
    alpha = f + (alpha_touch - f) exp(-delta/decay) = alpha_touch (q + (1 - q) exp(-delta/decay)),
    q = f / alpha_touch <= 1: log alpha = log alpha_touch + logaddexp(log q, log(1 - q) - delta/decay)."""
    import pytensor.tensor as pt

    log_at = (-pt.softplus(-eta))[asset, regime]
    if log_floor is None:
        return log_at - depth / decay[asset]
    log_q = pt.minimum(log_floor[asset] - log_at, -1e-12)
    return log_at + pt.logaddexp(log_q, pt.log1mexp(log_q) - depth / decay[asset])


def _binomial_logp(value, n, log_p):
    import pytensor.tensor as pt

    log_q = pt.log1mexp(pt.minimum(log_p, -1e-12))
    coef = pt.gammaln(n + 1.0) - pt.gammaln(value + 1.0) - pt.gammaln(n - value + 1.0)
    return coef + value * log_p + (n - value) * log_q


def build_model(obs: AlphaObs, prior: AlphaPrior | None = None, *, floor: bool = True):
    """The threshold variant as a ``pm.Model`` (docs/models/alpha.md); ``floor``: with
    ``alpha_floor`` (else alpha decays to zero)."""
    import pymc as pm
    import pytensor.tensor as pt

    prior = prior or AlphaPrior()
    c = obs.cells()
    coords = _coords(obs) | {"cell": np.arange(len(c["n"]))}
    with pm.Model(coords=coords) as model:
        eta, decay = _alpha_block(obs, prior)
        log_floor = _floor_block(obs, prior, eta) if floor else None
        log_p = _log_alpha(eta, decay, c["asset"], c["regime"], c["depth_bps"], log_floor)
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


def build_mixture_model(obs: AlphaObs, prior: AlphaPrior | None = None, *, floor: bool = True):
    """The markout-mixture variant as a ``pm.Model`` (docs/models/alpha.md); ``floor``
    as in :func:`build_model`.

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
        log_floor = _floor_block(obs, prior, eta) if floor else None
        log_w = _log_alpha(eta, decay, ca, cr, cd, log_floor)
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


FLOOR_TARGET_ACCEPT = 0.99
"""With the floor (``AlphaConfig.floor``, the default) :func:`fit` raises the sampler's
target_accept to at least this. Where the informed share barely falls with depth
(LOBSTER AAPL) the floor share and ``alpha_decay_bps`` are weakly identified and the
posterior's tail reaches decays below the first grid depth (~1 bp), where
``exp(-delta / decay)`` switches off within a fraction of a unit of log decay: the
curvature there is far above the bulk's, and a step size adapted to the bulk
diverges. Measured on AAPL (nutpie, 4 x 1000, seeds 0-7): every divergent
trajectory started at decay <= 1 bp and ran along (floor share, log decay); 2 of 8
fits had one at 0.95, none at 0.99 (docs/models/alpha.md, "Target acceptance with the
floor"; benchmarks/README.md, "The gate on AAPL")."""


def _sampler_config(config: SamplerConfig | None, n_assets: int, floor: bool = False) -> SamplerConfig:
    config = config or SamplerConfig()
    target = max(MULTI_ASSET_TARGET_ACCEPT if n_assets > 1 else 0.0, FLOOR_TARGET_ACCEPT if floor else 0.0)
    if config.target_accept < target:
        config = config.model_copy(update={"target_accept": target})
    return config


def _as_obs(obs: AlphaObs | Sequence[AlphaObs]) -> AlphaObs:
    if isinstance(obs, AlphaObs):
        return obs
    return combine(*obs)


def version(model_config: AlphaConfig | None = None, obs: AlphaObs | None = None) -> str:
    """The model version stored by :func:`fit`: a hash of the variant, the priors and
    the code of every module of :mod:`models.alpha` (:func:`models.sampling.model_version`);
    ``obs`` is not used."""
    package = sys.modules[__package__]  # this package (loaded: it holds this module)

    mc = model_config or AlphaConfig()
    name = MODEL_NAME if mc.variant == "threshold" else MIXTURE_NAME
    return model_version(name, {"prior": mc.prior.model_dump(mode="json"), "variant": mc.variant,
                                "floor": mc.floor}, package)


def _finish(idata, obs: AlphaObs, mc: AlphaConfig):
    idata.attrs["model_name"] = MODEL_NAME if mc.variant == "threshold" else MIXTURE_NAME
    idata.attrs["model_version"] = version(mc)
    idata.attrs["alpha_variant"] = mc.variant
    idata.attrs["alpha_floor"] = int(mc.floor)
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
    and the package's code). ``obs`` may hold several assets (or be a list of
    single-asset obs). The sampler's target_accept is raised to at least
    :data:`FLOOR_TARGET_ACCEPT` with the floor and :data:`MULTI_ASSET_TARGET_ACCEPT` with
    several assets (recorded in ``idata.attrs["target_accept"]``)."""
    obs = _as_obs(obs)
    mc = model_config or AlphaConfig()
    build = build_model if mc.variant == "threshold" else build_mixture_model
    idata = sample(build(obs, mc.prior, floor=mc.floor), _sampler_config(sampler, obs.n_assets, mc.floor))
    return _finish(idata, obs, mc)


def fit_mixture(obs: AlphaObs | Sequence[AlphaObs], sampler: SamplerConfig | None = None,
                prior: AlphaPrior | None = None, *, floor: bool = True):
    """:func:`fit` of the two-component markout mixture variant (docs/models/alpha.md)."""
    return fit(obs, sampler, AlphaConfig(variant="mixture", floor=floor, prior=prior or AlphaPrior()))
