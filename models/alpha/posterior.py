"""Alpha's posterior quantities: the conjugate summaries of the bundle, the
predictive density of the informed flags (PSIS-LOO and held-out) and the paired
comparison of fits on the same fills.

Units: alpha a probability, depths and markouts in bps; elpd in nats, fills
weighted by their sweep weight. Summaries and the variant comparison:
docs/models/alpha.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import special

from mm_runtime.vocabulary import DEPTH_BUCKET_LABELS, REGIMES
from models.predictive import thin_index
from models.sampling import asset_index

from .observations import AlphaObs


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
    "adverse_move_bps": draws, "spread_capture": draws, "alpha_floor": draws}`` (the
    last only for a fit with the floor)."""
    a = _asset_index(idata, asset)
    at = _draws(idata, "alpha_touch", a)  # (S, R)
    decay = _draws(idata, "alpha_decay_bps", a)  # (S,)
    bd = json.loads(idata.attrs["alpha_bucket_depths"])
    depths = np.asarray(bd["depth_bps"])
    W = np.asarray(bd["weights"])[a]  # (B, D)
    floor = _draws(idata, "alpha_floor", a) if "alpha_floor" in idata.posterior else np.zeros_like(decay)
    decay_curve = np.exp(-depths[None, :] / decay[:, None])  # (S, D)
    bucket_factor = decay_curve @ W.T  # (S, B): sum_d w[b,d] exp(-d/decay)
    # alpha_r(d) = f + (alpha_touch_r - f) exp(-d/decay) is affine in exp(-d/decay)
    alpha = {rn: {lab: floor + (at[:, r] - floor) * bucket_factor[:, b] for b, lab in enumerate(DEPTH_BUCKET_LABELS)}
             for r, rn in enumerate(REGIMES)}
    out = {"alpha": alpha, "alpha_decay_bps": decay, "adverse_move_bps": _draws(idata, "adverse_move_bps", a)}
    if "alpha_floor" in idata.posterior:  # fits without the floor (AlphaConfig(floor=False)) have none
        out["alpha_floor"] = floor
    if "spread_capture" in idata.posterior:  # fits of model versions before it have none
        out["spread_capture"] = _draws(idata, "spread_capture", a)
    return out


def summarize(idata, asset: str | None = None) -> dict[str, Any]:
    """Conjugate summaries by moment matching (docs/models/alpha.md; the families and
    equations of :mod:`models.export`): ``{"alpha": {regime: {bucket: beta}},
    "alpha_decay_bps": lognormal, "adverse_move_bps": lognormal, "spread_capture":
    normal, "alpha_floor": beta}`` (the last only for a fit with the floor), the layout of
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
    if "alpha_floor" in d:
        out["alpha_floor"] = beta_from_draws(d["alpha_floor"])
    return out


# =========================================================================== flag predictive & LOO
def _per_fill_draws(idata, obs: AlphaObs, max_draws: int | None = None) -> dict[str, np.ndarray]:
    """(S, N) alpha per fill and, for the mixture, the component parameters per fill;
    ``max_draws``: at most that many evenly spaced draws (each (S, N) array is S x N x 8
    bytes: 4,000 draws x 100k fills = 3.2 GB)."""
    assets = _assets(idata)
    idx = np.array([assets.index(a) for a in obs.assets])[obs.asset]
    post = idata.posterior
    keep = thin_index(post.sizes["chain"] * post.sizes["draw"], max_draws)

    def arr(name):
        da = post[name].transpose("chain", "draw", ...)
        v = np.asarray(da.values)
        return v.reshape(-1, *v.shape[2:])[keep]

    at = arr("alpha_touch")
    decay = arr("alpha_decay_bps")
    floor = arr("alpha_floor") if "alpha_floor" in post else np.zeros_like(decay)
    if at.ndim == 2:
        at = at[:, None, :]
        decay = decay.reshape(-1, 1)
        floor = floor.reshape(-1, 1)
    f = floor[:, idx]
    alpha = f + (at[:, idx, obs.regime] - f) * np.exp(-obs.depth_bps[None, :] / decay[:, idx])
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
    (docs/models/alpha.md): ``elpd`` (sweep-weighted sum), ``se``, ``pareto_k_max``,
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
