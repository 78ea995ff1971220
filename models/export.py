"""Posterior -> conjugate summaries -> prior bundle (DESIGN.md section 5).

Moment matching, one function per family: each takes posterior draws of the
parameter (1-D, or draws x categories for the Dirichlet) and returns the summary
dict that `mm_runtime.bundle` validates (``{"family": ..., parameters}``). The
model modules call these in their ``summarize``; `build_bundle` assembles the
four models' summaries into one bundle, optionally caps the prior strength, and
reports how faithful each summary is to its posterior.

Moment equations (Gelman et al., *Bayesian Data Analysis*, 3rd ed., appendix A):

* beta(a, b):   k = m(1-m)/v - 1, a = m k, b = (1-m) k            (needs v < m(1-m))
* gamma(shape, rate): shape = m^2/v, rate = m/v
* lognormal(mu, sigma): mu, sigma = mean and sd of log(draws) (exact ML fit, not moments)
* normal(mu, sigma): mean and sd
* inverse_gamma(shape, scale): shape = m^2/v + 2, scale = m (shape - 1)
* dirichlet(c): mean vector m and a total concentration c0 matched to the
  per-category variances v_k = m_k(1-m_k)/(c0+1); c0 is the median over
  categories of m_k(1-m_k)/v_k - 1 (Ronning 1989's moment estimator is the mean;
  the median is robust to a near-degenerate category).
* normal_inverse_gamma(mu, lam, shape, scale) from joint draws of (mean, variance):
  variance ~ IG(shape, scale) by the IG moments above, mean | variance ~
  N(mu, variance/lam), so Var(mean) = E[variance]/lam  =>  lam = E[variance]/Var(mean).

Prior-strength cap (pseudo-observations; the definitions of `mm_runtime.conjugate`):
beta a+b, gamma shape, dirichlet sum(c), normal_inverse_gamma lam (and 2*shape).
Capping keeps each summary's mean and widens it, so the live side can still learn.

Fidelity: for every scalar summary, the 5/50/95% quantiles of the fitted
distribution are compared with the posterior draws' quantiles; the error is in
units of the posterior sd (scale-free) and reported per parameter and as a max.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Iterable

import numpy as np
from scipy import stats

from mm_runtime.bundle import PriorBundle, with_checksum

QUANTILES = (0.05, 0.5, 0.95)


def _mv(x) -> tuple[float, float]:
    x = np.asarray(x, dtype=float).ravel()
    if x.size < 2 or not np.all(np.isfinite(x)):
        raise ValueError("moment matching needs >= 2 finite posterior draws")
    return float(x.mean()), float(x.var(ddof=1))


def beta_from_draws(x) -> dict[str, Any]:
    m, v = _mv(x)
    if not 0.0 < m < 1.0:
        raise ValueError(f"beta: draws must lie in (0, 1), mean is {m}")
    v = min(max(v, 1e-12), m * (1 - m) * (1 - 1e-9))
    k = m * (1 - m) / v - 1.0
    return {"family": "beta", "a": m * k, "b": (1 - m) * k}


def gamma_from_draws(x) -> dict[str, Any]:
    m, v = _mv(x)
    if m <= 0:
        raise ValueError(f"gamma: draws must be positive, mean is {m}")
    v = max(v, 1e-12 * m * m)
    return {"family": "gamma", "shape": m * m / v, "rate": m / v}


def lognormal_from_draws(x) -> dict[str, Any]:
    x = np.asarray(x, dtype=float).ravel()
    if np.any(x <= 0):
        raise ValueError("lognormal: draws must be positive")
    lx = np.log(x)
    return {"family": "lognormal", "mu": float(lx.mean()), "sigma": float(max(lx.std(ddof=1), 1e-9))}


def normal_from_draws(x) -> dict[str, Any]:
    m, v = _mv(x)
    return {"family": "normal", "mu": m, "sigma": math.sqrt(max(v, 1e-24))}


def inverse_gamma_from_draws(x) -> dict[str, Any]:
    m, v = _mv(x)
    if m <= 0:
        raise ValueError(f"inverse_gamma: draws must be positive, mean is {m}")
    v = max(v, 1e-12 * m * m)
    shape = m * m / v + 2.0
    return {"family": "inverse_gamma", "shape": shape, "scale": m * (shape - 1.0)}


def dirichlet_from_draws(x) -> dict[str, Any]:
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError("dirichlet: draws must be (n_draws, n_categories)")
    m = x.mean(0)
    v = np.maximum(x.var(0, ddof=1), 1e-15)
    c0 = float(np.median(m * (1 - m) / v - 1.0))
    c0 = max(c0, 1e-6)
    return {"family": "dirichlet", "concentration": [float(c) for c in np.maximum(m * c0, 1e-9)]}


def normal_inverse_gamma_from_draws(mean_draws, var_draws) -> dict[str, Any]:
    ig = inverse_gamma_from_draws(var_draws)
    mu, v_mu = _mv(mean_draws)
    e_var = float(np.mean(var_draws))
    return {"family": "normal_inverse_gamma", "mu": mu, "lam": e_var / max(v_mu, 1e-24),
            "shape": ig["shape"], "scale": ig["scale"]}


FROM_DRAWS = {
    "beta": beta_from_draws,
    "gamma": gamma_from_draws,
    "lognormal": lognormal_from_draws,
    "normal": normal_from_draws,
    "inverse_gamma": inverse_gamma_from_draws,
}


# --------------------------------------------------------------------------- fidelity


def frozen(summary: dict[str, Any]):
    """The scipy distribution of a scalar summary (None for dirichlet / NIG)."""
    f = summary["family"]
    if f == "beta":
        return stats.beta(summary["a"], summary["b"])
    if f == "gamma":
        return stats.gamma(summary["shape"], scale=1.0 / summary["rate"])
    if f == "lognormal":
        return stats.lognorm(summary["sigma"], scale=math.exp(summary["mu"]))
    if f == "normal":
        return stats.norm(summary["mu"], summary["sigma"])
    if f == "inverse_gamma":
        return stats.invgamma(summary["shape"], scale=summary["scale"])
    return None


def quantile_error(summary: dict[str, Any], draws) -> dict[str, float] | None:
    """5/50/95% quantiles of the summary vs the draws, error in posterior-sd units."""
    dist = frozen(summary)
    if dist is None:
        return None
    x = np.asarray(draws, dtype=float).ravel()
    sd = float(x.std(ddof=1)) or 1.0
    emp = np.quantile(x, QUANTILES)
    fit = dist.ppf(QUANTILES)
    err = np.abs(fit - emp) / sd
    out = {f"q{int(q * 100):02d}_err_sd": float(e) for q, e in zip(QUANTILES, err)}
    out["max_err_sd"] = float(err.max())
    return out


# --------------------------------------------------------------------------- cap


def cap_strength(summary: dict[str, Any], max_strength: float | None) -> dict[str, Any]:
    """Limit a summary's pseudo-observations to ``max_strength``, keeping its mean."""
    if max_strength is None:
        return summary
    s = dict(summary)
    f = s["family"]
    if f == "beta" and s["a"] + s["b"] > max_strength:
        k = max_strength / (s["a"] + s["b"])
        s["a"], s["b"] = s["a"] * k, s["b"] * k
    elif f == "gamma" and s["shape"] > max_strength:
        k = max_strength / s["shape"]
        s["shape"], s["rate"] = s["shape"] * k, s["rate"] * k
    elif f == "dirichlet" and sum(s["concentration"]) > max_strength:
        k = max_strength / sum(s["concentration"])
        s["concentration"] = [c * k for c in s["concentration"]]
    elif f == "normal_inverse_gamma":
        if s["lam"] > max_strength:
            s["lam"] = max_strength
        if 2 * s["shape"] > max_strength and s["shape"] > 1:
            mean_var = s["scale"] / (s["shape"] - 1)
            s["shape"] = max(max_strength / 2, 1.0 + 1e-6)
            s["scale"] = mean_var * (s["shape"] - 1)
    return s


def _map_leaves(tree, fn, path=()):
    if isinstance(tree, dict) and "family" in tree:
        return fn(tree, path)
    if isinstance(tree, dict):
        return {k: _map_leaves(v, fn, path + (k,)) for k, v in tree.items()}
    raise TypeError(f"params.{'.'.join(path)}: not a summary")


# --------------------------------------------------------------------------- bundle


def build_bundle(
    asset: str,
    summaries: Iterable[dict[str, Any]],
    *,
    source: dict[str, Any],
    model_version: str,
    diagnostics: dict[str, Any] | None = None,
    fidelity: dict[str, Any] | None = None,
    max_prior_strength: float | None = None,
    mlflow: dict[str, Any] | None = None,
    created_at: datetime | None = None,
) -> PriorBundle:
    """Merge the models' ``summarize`` outputs into one validated, checksummed bundle.

    ``fidelity`` (per parameter quantile errors, from `quantile_error`) is stored
    under ``diagnostics.export_fidelity`` with its max; ``max_prior_strength`` caps
    every summary (reported in ``diagnostics.max_prior_strength``).
    """
    params: dict[str, Any] = {}
    for s in summaries:
        dup = set(params) & set(s)
        if dup:
            raise ValueError(f"two models both export {sorted(dup)}")
        params.update(s)
    params = _map_leaves(params, lambda leaf, _p: cap_strength(leaf, max_prior_strength))
    diag = dict(diagnostics or {})
    if fidelity:
        worst = max((v["max_err_sd"] for v in fidelity.values() if v), default=0.0)
        diag["export_fidelity"] = {"max_quantile_err_sd": worst, "per_param": fidelity}
    diag["max_prior_strength"] = max_prior_strength
    doc = {
        "asset": asset,
        "created_at": (created_at or datetime.now(timezone.utc)).isoformat(),
        "model_version": model_version,
        "source": source,
        "mlflow": mlflow,
        "params": params,
        "diagnostics": diag,
    }
    return with_checksum(PriorBundle.model_validate(doc))
