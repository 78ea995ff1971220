"""The fills model's config and priors, its likelihood (one function for PyMC and for
NumPy draws), the PyMC model, the fit and the model version.

Per queue order i and regime r (docs/models/fills.md):

* time to fill: piecewise-constant hazard in time since placement (Friedman 1982, "Piecewise
  exponential models for survival data with covariates", Ann. Statist. 10),
  ``h_i(t | r) = fill_hazard[r] * ratio[piece(t)] * exp(b_q log1p(q_i) + b_l level_i + b_x x_i)``
  with q the queue ahead in median trades and x the signed imbalance; the log-likelihood
  of a duration t_i with event d_i is exactly the piecewise-exponential one,
  ``d_i log h_i(t_i) - sum_k h_ik E_ik`` (E_ik the exposure in piece k: the Poisson
  trick of Holford 1980 / Laird & Olivier 1981 on per-piece exposure);
* markouts after a fill (adverse selection, rising with queue position in Moallemi &
  Yuan 2017, "A model for queue position valuation in a limit order book"): the
  increments between horizons are independent normals (or Student-t), so the markout at
  horizon h has mean ``markout_mean_bps[r, h] + level, queue and imbalance slopes`` and
  the increment from the previous horizon sd ``markout_sd_bps[r, h]``; with
  ``markout_zero_mass`` (default) an increment is exactly 0 with probability
  ``markout_zero_prob[r, h]`` (the mid did not move on its tick grid) and otherwise
  normal (or Student-t) with mean ``E[increment] / (1 - zero_prob)``: a two-part
  ("hurdle") model, Duan, Manning, Morris & Newhouse 1983, J. Bus. Econ. Stat. 1:115-126,
  a density w.r.t. counting measure at 0 plus Lebesgue measure;
* the order's regime is uncertain: the likelihood mixes over the regimes with the bar's
  probabilities, ``log sum_r p_ir exp(ll_i(r))``.

Regime levels are partially pooled (normal around a common mean, half-normal scale);
several assets add zero-sum asset offsets of fixed scale (as kappa's).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mm_runtime.vocabulary import HAZARD_CUT_FRACTIONS, REGIMES, hazard_cuts_s, horizon_label, piece_labels
from models.data.observations import ObservationConfig
from models.sampling import SamplerConfig, model_version, sample, whitened_mean, whitened_normal

from .observations import FillsObs, capture_shortfall, combine

MODEL_NAME = "fills"
N_COV = 3
ZERO_TOL_BPS = 1e-9
"""A markout increment below this (bps) is an exact zero (the two-part likelihood)."""
"""Covariates of the hazard and of the markout means: log1p(queue ahead in median
trades), level (ticks behind the touch), signed imbalance."""


class FillsConfig(BaseModel):
    """Likelihood options and priors (docs/models/fills.md). Part of the model version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    observation: ObservationConfig = Field(default_factory=ObservationConfig)
    hazard_cut_fractions: tuple[float, ...] = HAZARD_CUT_FRACTIONS
    markout_likelihood: Literal["normal", "student_t"] = "normal"
    markout_zero_mass: bool = Field(True, description=(
        "two-part markout increments: exactly 0 with probability markout_zero_prob[r, h] "
        "(Beta prior), else normal / Student-t; a mid on a coarse tick grid often does not move "
        "(docs/models/fills.md)"))
    zero_prob_prior: tuple[float, float] = Field((1.0, 1.0), description="Beta(a, b) of markout_zero_prob")
    hazard_median: float = Field(1.0, gt=0.0, description="1/s, prior median of the regime hazards")
    hazard_log_sd: float = Field(2.0, gt=0.0)
    regime_scale: float = Field(1.0, gt=0.0, description="HalfNormal scale of the regimes' log-hazard spread")
    ratio_log_sd: float = Field(1.0, gt=0.0)
    coef_sd: float = Field(1.0, gt=0.0)
    markout_mean_sd: float = Field(5.0, gt=0.0, description="bps")
    markout_regime_scale: float = Field(2.0, gt=0.0, description="bps")
    markout_slope_sd: float = Field(2.0, gt=0.0, description="bps per unit covariate")
    markout_log_sd_median: float = Field(1.0, gt=0.0, description="bps")
    markout_log_sd_sd: float = Field(1.5, gt=0.0)
    markout_sd_regime_scale: float = Field(0.5, gt=0.0)
    asset_scale: float = Field(1.0, gt=0.0, description="fixed sd of an asset's log-hazard offset")
    asset_markout_scale: float = Field(1.0, gt=0.0, description="fixed sd of an asset's markout offset, bps")
    soft_likelihood: Literal["expected", "mixture"] = Field("expected", description=(
        "each order's log-likelihood averaged over the regimes with its probabilities (expected), or "
        "its density mixed over them (mixture: multimodal on ambiguous probabilities, as kappa's; "
        "docs/models/fills.md, \"Soft regimes\")"))

    @field_validator("hazard_cut_fractions")
    @classmethod
    def _cuts(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not (0 < b) for b in v) or any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"hazard_cut_fractions must be > 0 and strictly increasing, got {v}")
        return v

    def cuts_s(self) -> tuple[float, ...]:
        return hazard_cuts_s(self.observation.repost_interval_s, self.hazard_cut_fractions)


# =========================================================================== design
def design(obs: FillsObs, cfg: FillsConfig) -> dict[str, np.ndarray]:
    """The likelihood's per-order arrays: exposure per hazard piece ``E`` (n, P), the
    event's piece one-hot ``D`` (n, P; zero rows when censored), ``filled`` (n,), the
    covariates ``X`` (n, 3), the markout increments ``dM`` (n, H; 0 where unknown) and
    their mask ``Mk``, ``Z`` the known increments that are exactly 0 (|x| < 1e-9 bps), the log regime probabilities ``logw`` (n, 4; floored at 1e-12),
    ``asset`` (n,), ``fidx`` the rows with a markout (int)."""
    if tuple(obs.horizons_s) != tuple(cfg.observation.markout_horizons_s) \
            or obs.repost_interval_s != cfg.observation.repost_interval_s:
        raise ValueError("the observations' markout horizons / re-post interval differ from the model config's")
    c = np.asarray(cfg.cuts_s())
    hi = np.append(c[1:], np.inf)
    t = obs.duration_s[:, None]
    E = np.clip(t - c[None, :], 0.0, (hi - c)[None, :])
    piece = np.searchsorted(c, obs.duration_s, side="right") - 1
    D = np.zeros_like(E)
    D[np.arange(obs.n_orders)[obs.filled], piece[obs.filled]] = 1.0
    X = np.column_stack([np.log1p(obs.queue_trades), obs.level.astype(float), obs.signed_imbalance])
    m = np.where(obs.filled[:, None], obs.markout_bps, np.nan)
    prev = np.concatenate([np.zeros((obs.n_orders, 1)), m[:, :-1]], axis=1)
    inc = m - prev
    Mk = np.isfinite(inc)
    Z = Mk & (np.abs(np.where(Mk, inc, 1.0)) < ZERO_TOL_BPS)
    return {"E": E, "D": D, "filled": obs.filled.astype(float), "X": X, "dM": np.where(Mk, inc, 0.0),
            "Mk": Mk.astype(float), "Z": Z.astype(float), "logw": np.log(np.maximum(obs.regime_prob, 1e-12)),
            "asset": obs.asset.astype(np.int64), "fidx": np.flatnonzero(Mk.any(axis=1))}


def order_loglik(xp, P: dict[str, Any], d: dict[str, Any], student_t: bool = False, zero_mass: bool = False,
                 soft: str = "mixture"):
    """Per-order log-likelihood (n,) over the regimes: ``soft="mixture"`` mixes the order's
    density over them with its regime probabilities (a proper predictive density: held-out
    scores), ``"expected"`` averages its log density with those weights, ``sum_r w_r log
    p(order | r)`` (the expected complete-data log-likelihood of EM, Dempster, Laird &
    Rubin 1977: the fit's default, :class:`FillsConfig` ``soft_likelihood``; one-hot
    weights give the same terms either way). ``xp`` is a namespace with
    ``exp, log, dot, concatenate, zeros_like, logsumexp, gammaln, sum, scatter_rows``
    (NumPy/SciPy or PyTensor). The markout terms are computed on the rows ``d["fidx"]``
    only (the fills; zero elsewhere). ``P``: ``log_hazard`` (A, 4), ``log_ratio`` (P,) with 0 first, ``coef``
    (3,), ``mean`` (A, 4, H), ``slopes`` (3, H), ``log_sd`` (4, H), ``nu`` (Student-t),
    ``zero_prob`` (4, H) (``zero_mass``: an increment is 0 with that probability, else
    continuous with mean ``E[increment] / (1 - zero_prob)``; ``d["Z"]`` marks the zeros)."""
    a = d["asset"]
    eta = xp.dot(d["X"], P["coef"])                                   # (n,)
    base = P["log_hazard"][a] + eta[:, None]                          # (n, 4)
    w = xp.dot(d["E"], xp.exp(P["log_ratio"]))                        # (n,)
    ev = xp.dot(d["D"], P["log_ratio"])                               # (n,)
    surv = d["filled"][:, None] * base + ev[:, None] - xp.exp(base) * w[:, None]
    # markouts: only the rows with a markout (the fills), scattered back into (n, 4)
    f = d["fidx"]
    mu = P["mean"][a[f]] + xp.dot(d["X"][f], P["slopes"])[:, None, :]  # (nf, 4, H)
    dmu = mu - xp.concatenate([xp.zeros_like(mu[:, :, :1]), mu[:, :, :-1]], axis=2)
    sd = xp.exp(P["log_sd"])[None, :, :]
    if zero_mass:
        pz = P["zero_prob"][None, :, :]
        dmu = dmu / (1.0 - pz)
    z = (d["dM"][f][:, None, :] - dmu) / sd
    if student_t:
        nu = P["nu"]
        lp = (xp.gammaln((nu + 1) / 2) - xp.gammaln(nu / 2) - 0.5 * xp.log(nu * math.pi)
              - (nu + 1) / 2 * xp.log(1 + z * z / nu) - P["log_sd"][None, :, :])
    else:
        lp = -0.5 * z * z - 0.5 * math.log(2 * math.pi) - P["log_sd"][None, :, :]
    if zero_mass:
        zf = d["Z"][f][:, None, :]
        lp = xp.where(zf > 0.5, xp.log(pz), xp.log1p(-pz) + lp)
    mark = xp.scatter_rows(surv, f, xp.sum(d["Mk"][f][:, None, :] * lp, axis=2))   # (n, 4)
    if soft == "expected":
        w = xp.exp(d["logw"])
        return xp.sum(xp.where(w > 1e-9, w * (surv + mark), 0.0), axis=1)
    return xp.logsumexp(d["logw"] + surv + mark, axis=1)


def crude_estimates(obs: FillsObs, d: dict[str, np.ndarray], zero_mass: bool = False) -> dict[str, Any]:
    """Per-regime crude estimates and their sampling sds (NaN / inf without data), the
    sampling coordinates' centre (docs/models/fills.md): ``log_hazard`` log(fills /
    exposure) at the mean covariates; ``markout_mean`` the mean markout per horizon;
    ``markout_log_sd`` log sd of the increments (the non-zero ones with ``zero_mass``;
    sd 1/sqrt(2 n)); ``x_hazard`` /
    ``x_markout`` the covariates' means over the orders / over the fills."""
    w = obs.regime_prob                                                    # (n, 4)
    fills = w.T @ d["filled"]
    expo = w.T @ d["E"].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        lh = np.where(fills > 0, np.log(fills / expo), np.nan)
        lh_sd = np.where(fills > 0, 1.0 / np.sqrt(np.maximum(fills, 1)), np.inf)
        m = np.where(obs.filled[:, None], obs.markout_bps, np.nan)
        mk = np.isfinite(m)
        n_rh = w.T @ mk                                                    # (4, H)
        mean = (w.T @ np.where(mk, m, 0.0)) / n_rh
        var = (w.T @ np.where(mk, m * m, 0.0)) / n_rh - mean**2
        ok = n_rh >= 2
        mean_sd = np.where(ok, np.sqrt(np.maximum(var, 1e-4) / np.maximum(n_rh, 1)), np.inf)
        mk_i = d["Mk"] * (1.0 - d["Z"]) if zero_mass else d["Mk"]
        n_inc = w.T @ mk_i
        v_inc = (w.T @ (mk_i * d["dM"] ** 2)) / n_inc - ((w.T @ (mk_i * d["dM"])) / n_inc) ** 2
        ok_i = n_inc >= 2
        lsd = np.where(ok_i, 0.5 * np.log(np.maximum(v_inc, 1e-6)), np.nan)
        lsd_sd = np.where(ok_i, 1.0 / np.sqrt(2.0 * np.maximum(n_inc, 1)), np.inf)
    f = obs.filled
    return {"log_hazard": (lh, lh_sd), "markout_mean": (np.where(ok, mean, np.nan), mean_sd),
            "markout_log_sd": (lsd, lsd_sd), "x_hazard": d["X"].mean(axis=0),
            "x_markout": d["X"][f].mean(axis=0) if f.any() else np.zeros(N_COV)}


class _PT:
    """The PyTensor namespace of :func:`order_loglik`."""

    def __getattr__(self, name):
        import pytensor.tensor as pt

        if name == "logsumexp":
            return lambda x, axis: pt.logsumexp(x, axis=axis)
        if name == "scatter_rows":
            return lambda like, idx, rows: pt.set_subtensor(pt.zeros_like(like)[idx], rows)
        return getattr(pt, name)


class _NP:
    """The NumPy/SciPy namespace of :func:`order_loglik`."""

    def __getattr__(self, name):
        from scipy import special

        if name in ("logsumexp", "gammaln"):
            return getattr(special, name)
        if name == "scatter_rows":
            def scatter(like, idx, rows):
                out = np.zeros_like(like)
                out[idx] = rows
                return out
            return scatter
        return getattr(np, name)


PT, NP = _PT(), _NP()
_COLS = ("E", "D", "filled", "X", "dM", "Mk", "Z", "logw", "asset")   # fidx travels as a constant


def _pack(d: dict[str, np.ndarray]) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """The design as one (n, m) float matrix (the observed value) and its column layout."""
    blocks, layout, j = [], [], 0
    for k in _COLS:
        x = np.asarray(d[k], dtype=float)
        x = x[:, None] if x.ndim == 1 else x
        layout.append((k, j, j + x.shape[1]))
        blocks.append(x)
        j += x.shape[1]
    return np.concatenate(blocks, axis=1), layout


def _unpack(value, layout, fidx):
    import pytensor.tensor as pt

    out = {"fidx": fidx}
    for k, i, j in layout:
        col = value[:, i:j]
        out[k] = col[:, 0] if k in ("filled", "asset") else col
    out["asset"] = pt.cast(pt.round(out["asset"]), "int64")
    return out


def build_model(obs: FillsObs, config: FillsConfig | None = None):
    """The fills model as a ``pm.Model``; observed variable ``queue_orders`` (one row
    per order: its log-likelihood is the order's, survival and markouts together)."""
    import pymc as pm
    import pytensor.tensor as pt

    cfg = config or FillsConfig()
    d = design(obs, cfg)
    value, layout = _pack(d)
    A, H = obs.n_assets, len(obs.horizons_s)
    pieces = piece_labels(cfg.cuts_s())
    coords: dict[str, Any] = {"regime": list(REGIMES), "piece": pieces[1:],
                              "horizon": [horizon_label(h) for h in obs.horizons_s],
                              "order": np.arange(obs.n_orders), "order_col": np.arange(value.shape[1])}
    if A > 1:
        coords["asset"] = list(obs.assets)
    student = cfg.markout_likelihood == "student_t"
    crude = crude_estimates(obs, d, cfg.markout_zero_mass)
    with pm.Model(coords=coords) as model:
        bq = pm.Normal("fill_queue_coef", 0.0, cfg.coef_sd)
        bl = pm.Normal("fill_level_coef", 0.0, cfg.coef_sd)
        bx = pm.Normal("fill_imbalance_coef", 0.0, cfg.coef_sd)
        coef = pt.stack([bq, bl, bx])
        # regime levels sampled at the data's mean covariates (centred: no ridge between a
        # level and the coefficients), in coordinates whitened by crude per-regime estimates
        tau_h = pm.HalfNormal("fill_regime_scale", cfg.regime_scale)
        est, sd = crude["log_hazard"]
        mu_h = whitened_mean("fill_log_hazard_mu", math.log(cfg.hazard_median), cfg.hazard_log_sd, tau_h, est, sd)
        lh = whitened_normal("fill_log_hazard_c", mu_h, tau_h, est, sd, dims=("regime",)) \
            - pt.dot(coef, crude["x_hazard"])                                # (4,)
        lr = pm.Normal("fill_log_piece_ratio", 0.0, cfg.ratio_log_sd, dims="piece")
        pm.Deterministic("fill_piece_ratio", pt.exp(lr), dims="piece")
        slopes = [pm.Normal(f"markout_{n}_bps", 0.0, cfg.markout_slope_sd, dims="horizon")
                  for n in ("queue", "level", "imbalance")]
        sl = pt.stack(slopes)                                                 # (3, H)
        mm_tau = pm.HalfNormal("markout_regime_scale", cfg.markout_regime_scale)
        est, sd = crude["markout_mean"]                                       # (4, H)
        mm_mu = whitened_mean("markout_mean_mu", 0.0, cfg.markout_mean_sd, mm_tau, est.T, sd.T, dims="horizon")
        mm = whitened_normal("markout_mean_c", mm_mu[None, :], mm_tau, est, sd, dims=("regime", "horizon")) \
            - pt.dot(crude["x_markout"], sl)[None, :]                         # (4, H)
        ls_tau = pm.HalfNormal("markout_sd_regime_scale", cfg.markout_sd_regime_scale)
        est, sd = crude["markout_log_sd"]
        ls_mu = whitened_mean("markout_log_sd_mu", math.log(cfg.markout_log_sd_median), cfg.markout_log_sd_sd,
                              ls_tau, est.T, sd.T, dims="horizon")
        lsd = whitened_normal("markout_log_sd", ls_mu[None, :], ls_tau, est, sd, dims=("regime", "horizon"))
        pm.Deterministic("markout_sd_bps", pt.exp(lsd), dims=("regime", "horizon"))
        zero = cfg.markout_zero_mass
        if zero:
            pz = pm.Beta("markout_zero_prob", *cfg.zero_prob_prior, dims=("regime", "horizon"))
        if A > 1:
            u = cfg.asset_scale * pm.ZeroSumNormal("fill_asset_z", sigma=1.0, dims="asset")
            v = cfg.asset_markout_scale * pm.ZeroSumNormal("markout_asset_z", sigma=1.0, dims=("asset", "horizon"))
            lhA = lh[None, :] + u[:, None]
            mmA = mm[None, :, :] + v[:, None, :]
            pm.Deterministic("fill_hazard", pt.exp(lhA), dims=("asset", "regime"))
            pm.Deterministic("markout_mean_bps", mmA, dims=("asset", "regime", "horizon"))
        else:
            lhA, mmA = lh[None, :], mm[None, :, :]
            pm.Deterministic("fill_hazard", pt.exp(lh), dims="regime")
            pm.Deterministic("markout_mean_bps", mm, dims=("regime", "horizon"))
        # the first parameter only carries the row width m (the signature's output core dim)
        params = [pt.zeros(value.shape[1]), lhA, pt.concatenate([pt.zeros(1), lr]), coef, mmA, sl, lsd]
        sig = "(m),(a,r),(p),(c),(a,r,h),(c,h),(r,h)"
        if zero:
            params.append(pz)
            sig += ",(r,h)"
        if student:
            params.append(pm.Gamma("markout_nu", 2.0, 0.1))
            sig += ",()"

        def logp(value, _width, lhA, lrf, coef, mmA, sl, lsd, *extra):
            # the parameters arrive with a broadcast batch axis of length 1: drop it
            core = lambda x, k: x[(0,) * (x.ndim - k)] if x.ndim > k else x  # noqa: E731
            lhA, lrf, coef, mmA, sl, lsd = (core(x, k) for x, k in zip((lhA, lrf, coef, mmA, sl, lsd),
                                                                       (2, 1, 1, 3, 2, 2)))
            P = {"log_hazard": lhA, "log_ratio": lrf, "coef": coef, "mean": mmA, "slopes": sl, "log_sd": lsd}
            extra = list(extra)
            if zero:
                P["zero_prob"] = core(extra.pop(0), 2)
            if student:
                P["nu"] = core(extra.pop(0), 0)
            return order_loglik(PT, P, _unpack(value, layout, d["fidx"]), student_t=student, zero_mass=zero,
                                soft=cfg.soft_likelihood)

        pm.CustomDist("queue_orders", *params, logp=logp, observed=value, dims=("order", "order_col"),
                      signature=sig + "->(m)")
    return model


def version(model_config: FillsConfig | None = None, obs: FillsObs | None = None) -> str:
    """Hash of the model config and the code of every module of :mod:`models.fills`."""
    return model_version(MODEL_NAME, model_config or FillsConfig(), sys.modules[__package__])


def fit(obs: FillsObs | Sequence[FillsObs], sampler: SamplerConfig | None = None,
        model_config: FillsConfig | None = None):
    """Fit; ``az.InferenceData`` with ``attrs["model_version"]``, the config, the assets,
    the counts and the capture shortfall per level (:func:`.observations.capture_shortfall`).
    ``obs`` may hold several assets (or be a list of single-asset obs).
    A config whose observation rules differ from the obs' horizons / re-post interval is
    replaced by one with the obs' (the config's priors kept)."""
    if not isinstance(obs, FillsObs):
        obs = combine(*obs)
    cfg = model_config or FillsConfig()
    if tuple(obs.horizons_s) != tuple(cfg.observation.markout_horizons_s) \
            or obs.repost_interval_s != cfg.observation.repost_interval_s:
        cfg = cfg.model_copy(update={"observation": cfg.observation.model_copy(update={
            "markout_horizons_s": tuple(obs.horizons_s), "repost_interval_s": obs.repost_interval_s})})
    idata = sample(build_model(obs, cfg), sampler)
    idata.attrs["model_name"] = MODEL_NAME
    idata.attrs["model_version"] = version(cfg)
    idata.attrs["fills_config"] = json.dumps(cfg.model_dump(mode="json"))
    idata.attrs["assets"] = json.dumps(list(obs.assets))
    idata.attrs["n_orders"] = int(obs.n_orders)
    idata.attrs["n_fills"] = int(obs.n_fills)
    idata.attrs["imbalance_means"] = json.dumps(imbalance_means(obs))
    # a plug-in beside the posterior (not sampled): the capture shortfall per level
    idata.attrs["capture_shortfall"] = json.dumps(capture_shortfall(obs, int(cfg.observation.queue_levels)))
    return idata


def imbalance_means(obs: FillsObs) -> dict[str, dict[str, float]]:
    """Per asset, the mean signed imbalance over the queue orders and over the filled ones
    (``{"orders": x, "fills": y}``): where the exported cells evaluate the hazard and the
    markout (:func:`models.fills.posterior.summary_draws`)."""
    x = obs.signed_imbalance
    out = {}
    for a, name in enumerate(obs.assets):
        sel = obs.asset == a
        f = sel & obs.filled
        out[name] = {"orders": float(x[sel].mean()) if sel.any() else 0.0,
                     "fills": float(x[f].mean()) if f.any() else 0.0}
    return out


def config_of(idata) -> FillsConfig:
    """The fit's config; a fit stored before ``markout_zero_mass`` existed had none."""
    if "fills_config" not in idata.attrs:
        return FillsConfig(markout_zero_mass=False)
    doc = json.loads(idata.attrs["fills_config"])
    return FillsConfig.model_validate({"markout_zero_mass": False, **doc})
