"""Kappa's model config and priors, the count blocks of the likelihood, the
PyMC model (negative-binomial or Poisson counts x exponential depths, partially
pooled over regime x side cells and assets), the fit and the model version.

Units: kappa in 1/bps, arrival rate A in events/s, exposure in seconds. Model,
sampling coordinates and measurements: docs/models/kappa.md.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mm_runtime.vocabulary import REGIMES, SIDES
from models.sampling import (SamplerConfig, centred_groups, mixed_normal, model_version, sample,
                             whitened_mean, whitened_normal)

from .observations import KappaObs, combine

MODEL_NAME = "kappa"


# =========================================================================== model
class KappaConfig(BaseModel):
    """Likelihood options and priors (docs/models/kappa.md). Part of the model version."""

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
                                  "one regime; docs/models/kappa.md)")
    parametrization: Literal["auto", "mixed", "noncentred"] = "auto"
    soft_likelihood: Literal["expected", "mixture"] = Field(
        "expected", description="soft regimes: each row's log-likelihood averaged over the regimes with "
        "its block's probabilities (expected), or its density mixed over them (mixture: multimodal on "
        "ambiguous probabilities; docs/models/kappa.md, \"Soft regimes\")")
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
    # across-asset scales are fixed hyperparameters (docs/models/kappa.md)
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
    ``cfg.parametrization`` (docs/models/kappa.md): ``est`` the crude log estimates, ``n``
    the (effective) arrivals behind them (sd 1/sqrt(n); 0 = no data)."""
    n, est = np.asarray(n, dtype=float).ravel(), np.asarray(est, dtype=float).ravel()
    ok = (n > 0) & np.isfinite(est)
    if cfg.parametrization == "auto":
        sd = np.where(ok, 1.0 / np.sqrt(np.where(ok, n, 1.0)), np.inf)
        return whitened_normal(name, m, tau, np.where(ok, est, np.nan), sd)
    return mixed_normal(name, m, tau, _centred(np.where(ok, est, np.nan), np.where(ok, n, 0.0), cfg))


def count_fano(rows: Mapping[str, Any], cfg: KappaConfig, n_assets: int = 1) -> np.ndarray:
    """(n_assets, 2) Fano factor of the block counts per asset and side, as the
    sampling coordinates use it (docs/models/kappa.md, "Sampling coordinates"): the Pearson
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
    # soft regimes: the block's regime probabilities, exposure-weighted over its bars
    P = obs.probs()
    b_prob = np.zeros((nb, len(REGIMES)))
    np.add.at(b_prob, blk, P * obs.bar_exposure_s[:, None])
    b_prob /= b_prob.sum(axis=1, keepdims=True)
    return {"value": np.stack([cnt.ravel(), ssum.ravel()], axis=1), "exposure_s": b_expo[rows_bar],
            "block": rows_bar, "side": rows_side, "asset": asset, "regime": regime,
            "cell": (asset * len(REGIMES) + regime) * 2 + rows_side, "n_blocks": nb,
            "prob": b_prob[rows_bar]}


def _mixture_logp(inner):
    """The row's log-likelihood mixed over the regimes (docs/models/regime_soft.md):
    ``log sum_r w_r p(row | regime r)``, ``inner`` the per-regime row density."""
    def logp(value, logw, *args):
        import pytensor.tensor as pt

        per = inner(pt.shape_padaxis(value, -2), *args)  # value (..., 1, 2) against (..., R)
        return pt.logsumexp(logw + per, axis=-1)

    return logp


def _expected_logp(inner):
    """The row's log-likelihood averaged over the regimes, ``sum_r w_r log p(row | regime
    r)``: the expected complete-data log-likelihood of EM (Dempster, Laird & Rubin 1977)
    with the regime model's probabilities w as the E-step (docs/models/kappa.md, "Soft
    regimes"). ``logw`` as for :func:`_mixture_logp`; regimes of weight 0 add nothing."""
    def logp(value, logw, *args):
        import pytensor.tensor as pt

        per = inner(pt.shape_padaxis(value, -2), *args)
        w = pt.exp(logw)
        return pt.sum(pt.switch(w > 0, w * per, 0.0), axis=-1)

    return logp


def _poisson_terms(value, mean, log_kappa, kappa):
    """Per-regime terms of :func:`_poisson_logp`: value (..., 1, 2), the rest (..., R)."""
    import pymc as pm

    n, s = value[..., 0], value[..., 1]
    return pm.logp(pm.Poisson.dist(mean), n) + n * log_kappa - kappa * s


def _nb_terms(value, mean, phi, log_kappa, kappa):
    import pymc as pm

    n, s = value[..., 0], value[..., 1]
    return pm.logp(pm.NegativeBinomial.dist(mu=mean, alpha=phi), n) + n * log_kappa - kappa * s


def build_model(obs: KappaObs, config: KappaConfig | None = None):
    """The kappa / arrival-rate model as a ``pm.Model`` (docs/models/kappa.md).

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
        # the cells' crude estimates; with the expected soft likelihood, its own maximum
        # (probability-weighted arrivals over the weighted exposure, resp. depth sum)
        soft_est = obs.soft and cfg.soft_likelihood == "expected"
        counts = _cell_sum(rows, value[:, 0], C, soft_est)
        with np.errstate(divide="ignore", invalid="ignore"):
            est_A = np.log(counts / _cell_sum(rows, expo, C, soft_est))
            est_k = np.log(counts / _cell_sum(rows, value[:, 1], C, soft_est))
        # a count of n arrivals with Fano factor F pins log A as well as n / F Poisson arrivals would
        fano = count_fano(rows, cfg, obs.n_assets)
        n_eff_A = counts / fano[np.arange(C) // (2 * len(REGIMES)), np.arange(C) % 2]
        log_A = _pooled_log("arrival_rate", obs, cfg.rate_median, cfg.rate_log_sd, cfg, est_A, n_eff_A).ravel()
        log_k = _pooled_log("kappa", obs, cfg.kappa_median, cfg.kappa_log_sd, cfg, est_k, counts).ravel()
        kap = pt.exp(log_k)
        log_mean_cell = log_A - kap * cfg.min_depth_bps
        mean = pt.exp(log_mean_cell[cell]) * expo
        if obs.soft:
            _soft_likelihood(obs, cfg, rows, log_mean_cell, log_k, kap)
        elif cfg.count_likelihood == "negative_binomial":
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


def _regime_cells(rows) -> np.ndarray:
    """(rows, R): the flat cell index of every row in every regime."""
    R = len(REGIMES)
    return (rows["asset"][:, None] * R + np.arange(R)[None, :]) * 2 + rows["side"][:, None]


def _cell_sum(rows, x: np.ndarray, n_cells: int, soft: bool) -> np.ndarray:
    """Per-cell sums of the rows' ``x``: over each row's cell, or (``soft``) over its cell
    in every regime weighted by the block's probability of that regime."""
    if soft:
        return np.bincount(_regime_cells(rows).ravel(), weights=(rows["prob"] * x[:, None]).ravel(),
                           minlength=n_cells)
    return np.bincount(rows["cell"], weights=x, minlength=n_cells)


def _soft_likelihood(obs: KappaObs, cfg: KappaConfig, rows, log_mean_cell, log_k, kap):
    """The observed ``arrivals`` with soft regimes: each (block, side) row's log-likelihood
    averaged over the regimes with the block's probabilities (``soft_likelihood=
    "expected"``, :func:`_expected_logp`) or its density mixed over them (``"mixture"``,
    :func:`_mixture_logp`); one-hot rows give the hard model's terms exactly either way."""
    import pymc as pm
    import pytensor.tensor as pt

    rcell = _regime_cells(rows)
    with np.errstate(divide="ignore"):
        logw = np.log(rows["prob"])
    mean = pt.exp(log_mean_cell[rcell]) * rows["exposure_s"][:, None]
    combine_rows = _expected_logp if cfg.soft_likelihood == "expected" else _mixture_logp
    if cfg.count_likelihood == "negative_binomial":
        od_dims = ("asset", "side") if obs.n_assets > 1 else ("side",)
        od = pt.reshape(pm.HalfNormal("count_overdispersion", cfg.overdispersion_scale, dims=od_dims),
                        (obs.n_assets, 2))
        row_od = od[rows["asset"], rows["side"]][:, None]
        pm.CustomDist("arrivals", logw, mean, mean / row_od, log_k[rcell], kap[rcell],
                      logp=combine_rows(_nb_terms), observed=rows["value"],
                      dims=("bar_side", "arrival_stat"), signature="(r),(r),(r),(r),(r)->(2)")
    else:
        pm.CustomDist("arrivals", logw, mean, log_k[rcell], kap[rcell], logp=combine_rows(_poisson_terms),
                      observed=rows["value"], dims=("bar_side", "arrival_stat"), signature="(r),(r),(r),(r)->(2)")


MULTI_ASSET_TARGET_ACCEPT = 0.95
"""With several assets :func:`fit` raises the sampler's target_accept to at least
this (the across-asset scales leave a few divergent transitions at 0.9)."""


def _sampler_config(config: SamplerConfig | None, n_assets: int) -> SamplerConfig:
    config = config or SamplerConfig()
    if n_assets > 1 and config.target_accept < MULTI_ASSET_TARGET_ACCEPT:
        config = config.model_copy(update={"target_accept": MULTI_ASSET_TARGET_ACCEPT})
    return config


def version(model_config: KappaConfig | None = None, obs: KappaObs | None = None) -> str:
    """The model version :func:`fit` stores: hash of the model config and the code
    of every module of :mod:`models.kappa` (:func:`models.sampling.model_version`);
    ``obs`` is not used."""
    package = sys.modules[__package__]  # this package (loaded: it holds this module)

    return model_version(MODEL_NAME, model_config or KappaConfig(), package)


def fit(obs: KappaObs | Sequence[KappaObs], sampler: SamplerConfig | None = None,
        model_config: KappaConfig | None = None):
    """Fit; returns ``az.InferenceData`` with ``attrs["model_version"]`` (hash of
    the model config and the package's code). ``obs`` may hold several assets
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
