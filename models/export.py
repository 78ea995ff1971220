"""Posterior -> conjugate summaries -> prior bundle (DESIGN.md section 5).

Moment matching, one function per family (``beta``, ``gamma``, ``lognormal``,
``normal``, ``inverse_gamma``, ``dirichlet``, ``normal_inverse_gamma``): posterior
draws of a parameter in, the summary dict that `mm_runtime.bundle` validates out, in
the parameter's own units (Gelman et al., *Bayesian Data Analysis*, 3rd ed.,
appendix A).  `build_bundle` assembles the four models' summaries into one bundle,
optionally caps the prior strength (pseudo-observations; the mean is kept) and
records the fidelity of each summary (quantile errors in posterior-sd units);
`export_bundle` does the whole export from the four fits.

Moment equations, the cap, the fidelity measure and the round trip:
docs/models/export.md.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy import stats

from mm_runtime.bundle import PriorBundle, Units, with_checksum
from mm_runtime.observation import ObservationConfig
from mm_runtime.vocabulary import DEPTH_BUCKETS_BPS, REGIMES

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
    """Moment matching on the natural scale, like every other family: the
    lognormal's mean and variance equal the draws', ``sigma^2 = ln(1 + v/m^2)``,
    ``mu = ln m - sigma^2/2`` (Johnson, Kotz & Balakrishnan 1994, ch. 14), so the
    runtime's prior mean ``exp(mu + sigma^2/2)`` *is* the posterior mean. (Fitting
    ``mu``, ``sigma`` to the mean and sd of ``log(draws)`` instead matches the
    median; the mean then misses the posterior mean by the posterior's departure
    from a lognormal: 3.7 % on a 30-minute ``hawkes_decay`` fit.)"""
    m, v = _mv(x)
    if np.any(np.asarray(x) <= 0):
        raise ValueError("lognormal: draws must be positive")
    s2 = math.log1p(max(v, 1e-18 * m * m) / (m * m))
    return {"family": "lognormal", "mu": math.log(m) - 0.5 * s2, "sigma": math.sqrt(s2)}


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


def _dist_error(dist, draws) -> dict[str, float]:
    x = np.asarray(draws, dtype=float).ravel()
    sd = float(x.std(ddof=1)) or 1.0
    emp = np.quantile(x, QUANTILES)
    fit = dist.ppf(QUANTILES)
    err = np.abs(fit - emp) / sd
    out = {f"q{int(q * 100):02d}_err_sd": float(e) for q, e in zip(QUANTILES, err)}
    out["max_err_sd"] = float(err.max())
    return out


def quantile_error(summary: dict[str, Any], draws) -> dict[str, float] | None:
    """5/50/95% quantiles of the summary vs the draws, error in posterior-sd units
    (None for the multivariate families: see `marginal_errors`)."""
    dist = frozen(summary)
    if dist is None:
        return None
    return _dist_error(dist, draws)


def marginal_errors(summary: dict[str, Any], draws) -> dict[str | None, dict[str, float]]:
    """`quantile_error` of every scalar marginal of a summary, keyed by the marginal's
    extra coordinate (None for a scalar family).

    * dirichlet: ``draws`` (n_draws, K); key = category index ``k`` (the beta marginal).
    * normal_inverse_gamma: ``draws`` ``{"mean": (n,), "var": (n,)}``; keys ``"mean"``
      (Student-t marginal) and ``"var"`` (inverse-gamma marginal).
    """
    f = summary["family"]
    if f == "dirichlet":
        x = np.asarray(draws, dtype=float)
        c = np.asarray(summary["concentration"], dtype=float)
        if x.ndim != 2 or x.shape[1] != len(c):
            raise ValueError(f"dirichlet: draws of shape {x.shape} for {len(c)} categories")
        return {k: _dist_error(stats.beta(c[k], c.sum() - c[k]), x[:, k]) for k in range(len(c))}
    if f == "normal_inverse_gamma":
        shape, scale, lam = summary["shape"], summary["scale"], summary["lam"]
        t = stats.t(2.0 * shape, loc=summary["mu"], scale=math.sqrt(scale / (lam * shape)))
        return {"mean": _dist_error(t, draws["mean"]),
                "var": _dist_error(stats.invgamma(shape, scale=scale), draws["var"])}
    return {None: quantile_error(summary, draws)}


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
    if isinstance(tree, list):   # params.hawkes_components: a list of objects of summaries
        return [_map_leaves(v, fn, path + (str(i),)) for i, v in enumerate(tree)]
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
    volatility_bar_s: float | None = None,
    depth_buckets_bps: Sequence[float] | None = None,
    observation: ObservationConfig | None = None,
) -> PriorBundle:
    """Merge the models' ``summarize`` outputs into one validated, checksummed bundle
    (the current schema, ``mm_runtime.bundle.SCHEMA_VERSION``).

    ``fidelity`` (from `fidelity_report`) goes to ``diagnostics.export_fidelity``;
    ``max_prior_strength`` caps every summary.  ``volatility_bar_s`` (s) and
    ``depth_buckets_bps`` (bps) default to the schema's (10 s; 0, 2, 5, 10 bp): pass the
    values the fits used.  ``observation``: the ObservationConfig the fits used (None =
    the defaults, ``bar_seconds = volatility_bar_s`` when given).  In full:
    docs/models/export.md ("build_bundle").
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
    doc: dict[str, Any] = {
        "asset": asset,
        "created_at": (created_at or datetime.now(timezone.utc)).isoformat(),
        "model_version": model_version,
        "source": source,
        "mlflow": mlflow,
        "params": params,
        "diagnostics": diag,
    }
    if observation is None:
        observation = (ObservationConfig() if volatility_bar_s is None
                       else ObservationConfig(bar_seconds=volatility_bar_s))
    doc["observation"] = observation.model_dump(mode="json")
    if volatility_bar_s is not None:
        doc["units"] = Units(volatility_bar_s=volatility_bar_s).model_dump(mode="json")
    if depth_buckets_bps is not None:
        doc["depth_buckets_bps"] = [float(e) for e in depth_buckets_bps]
    return with_checksum(PriorBundle.model_validate(doc))


# --------------------------------------------------------------------------- export

def flat_name(path: Sequence[str]) -> str:
    """DESIGN.md section 8 name of a leaf: ``("kappa", "high", "buy") -> "kappa[high,buy]"``,
    ``("hawkes_decay",) -> "hawkes_decay"``, ``("hawkes_components", "0", "decay") ->
    "hawkes_components[0,decay]"``."""
    head, *idx = (str(p) for p in path)
    return f"{head}[{','.join(idx)}]" if idx else head


def leaves(summaries: Mapping[str, Any], draws: Mapping[str, Any]) -> list[tuple[tuple[str, ...], dict, Any]]:
    """``(path, summary, draws)`` for every summary leaf of a ``summarize`` output and
    the matching ``summary_draws`` output (same nesting; a list, such as
    ``hawkes_components``, indexed ``"0"``, ``"1"``, ...).  A subtree whose draws are
    None is a plug-in estimate with no posterior draws (the fills model's
    ``capture_shortfall_bps``): left out."""
    out: list[tuple[tuple[str, ...], dict, Any]] = []

    def walk(s, d, path):
        if d is None:
            return
        if isinstance(s, Mapping) and "family" in s:
            out.append((path, dict(s), d))
            return
        if isinstance(s, list):
            if not isinstance(d, list) or len(d) != len(s):
                raise TypeError(f"{flat_name(path)}: summaries and draws are not nested alike")
            for i, (v, x) in enumerate(zip(s, d)):
                walk(v, x, path + (str(i),))
            return
        if not isinstance(s, Mapping) or not isinstance(d, Mapping):
            raise TypeError(f"{flat_name(path)}: summaries and draws are not nested alike")
        missing = set(s) - set(d)
        if missing:
            raise KeyError(f"{flat_name(path + (sorted(missing)[0],))}: no draws for this summary")
        for k, v in s.items():
            walk(v, d[k], path + (str(k),))

    for k, v in summaries.items():
        if k not in draws:
            raise KeyError(f"{k}: no draws for this summary")
        walk(v, draws[k], (str(k),))
    return out


def fidelity_report(summaries: Mapping[str, Any], draws: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Quantile errors (5/50/95 %, in posterior-sd units: `quantile_error`) of every
    scalar marginal of every summary, keyed by its DESIGN.md section 8 name:
    ``kappa[high,buy]``, ``alpha[low,[0,2)]``, ``hawkes_decay``; a dirichlet row per
    category (``regime_transition[low,normal]``: from low to normal), a
    normal_inverse_gamma per marginal (``regime_emission[low,mean]``,
    ``regime_emission[low,var]``)."""
    report: dict[str, dict[str, float]] = {}
    for path, s, d in leaves(summaries, draws):
        for extra, err in marginal_errors(s, d).items():
            if extra is None:
                name = flat_name(path)
            elif isinstance(extra, int):
                # dirichlet rows are over the regimes (the only dirichlet in schema 1)
                cats = REGIMES if len(s["concentration"]) == len(REGIMES) else range(len(s["concentration"]))
                name = flat_name(path + (str(list(cats)[extra]),))
            else:
                name = flat_name(path + (extra,))
            report[name] = err
    return report


def bundle_source(market) -> dict[str, Any]:
    """The bundle's ``source`` of a ``models.data.tables.Market``: its data source,
    window (first and last row, UTC), row counts and data sha256."""
    def iso(ns: int) -> str:
        return datetime.fromtimestamp(ns // 1_000_000_000, timezone.utc).replace(
            microsecond=(ns % 1_000_000_000) // 1000).isoformat()

    return {"data_source": str(market.source), "window_start": iso(int(market.start_ns)),
            "window_end": iso(int(market.end_ns)), "row_counts": market.row_counts(),
            "data_sha256": market.sha256()}


def combined_model_version(fits: Mapping[str, Any], source: Mapping[str, Any] | None = None) -> str:
    """``"bundle-<12 hex>"``: sha256 of the models' ``idata.attrs["model_version"]``
    (each a hash of that model's config and code), by model name, and of the data the
    fits saw: ``source``'s ``data_sha256``, ``window_start`` and ``window_end`` (the
    bundle's ``source`` block; DESIGN.md section 5: "hash of model config + code
    version + data hash and window"), so two calibrations of other data or another
    window never share a version.  ``source=None``: the models' versions alone."""
    versions = {name: str(idata.attrs["model_version"]) for name, idata in fits.items()}
    doc: dict[str, Any] = versions
    if source is not None:
        doc = {"models": versions, "data": {"data_sha256": str(source["data_sha256"]),
                                            **{k: _iso(source[k]) for k in ("window_start", "window_end")}}}
    payload = json.dumps(doc, sort_keys=True)
    return f"bundle-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def _iso(t: Any) -> str:
    """An instant as ISO 8601 in UTC (a datetime, or its ISO text with ``Z`` or an offset)."""
    d = t if isinstance(t, datetime) else datetime.fromisoformat(str(t).replace("Z", "+00:00"))
    return d.astimezone(timezone.utc).isoformat()


def _check_fits(fits: Mapping[str, Any]) -> None:
    from models.catalog import names, spec

    MODELS = names()
    missing = [m for m in MODELS if m not in fits and not spec(m).needs_books]
    if missing:
        raise ValueError(f"fits: missing {missing} (an export needs the fits of {list(MODELS)})")
    unknown = [m for m in fits if m not in MODELS]
    if unknown:
        raise ValueError(f"fits: unknown model(s) {unknown} (expected {list(MODELS)})")
    for m, idata in fits.items():
        if "model_version" not in getattr(idata, "attrs", {}):
            raise ValueError(f"fits.{m}: no attrs['model_version'] (not a fit of models.{m}?)")


def model_diagnostics(name: str, idata) -> dict[str, Any]:
    """`models.sampling.diagnostics` of the summarized variables of one fit, plus its
    ``model_name`` and ``model_version``."""
    from models.catalog import spec
    from models.sampling import diagnostics

    names = [v for v in spec(name).summary_vars if v in idata.posterior]
    d = diagnostics(idata, var_names=names)
    return {"model_name": idata.attrs.get("model_name", name),
            "model_version": str(idata.attrs["model_version"]), **d}


def export_bundle(
    asset: str,
    fits: Mapping[str, Any],
    *,
    source: dict[str, Any],
    max_prior_strength: float | None = None,
    mlflow: dict[str, Any] | None = None,
    created_at: datetime | None = None,
    diagnostics: dict[str, Any] | None = None,
    with_model_diagnostics: bool = True,
    observation: ObservationConfig | None = None,
) -> tuple[PriorBundle, dict[str, dict[str, float]]]:
    """The bundle of one asset from the four fits, and its fidelity report.

    ``fits``: ``{"regime": idata, "alpha": idata, "kappa": idata, "hawkes": idata}``
    (each fit of ``asset``; another asset is refused).  Every summary capped at
    ``max_prior_strength``; ``units.volatility_bar_s`` = the regime fit's bar length (s);
    ``depth_buckets_bps`` = ``mm_runtime.vocabulary.DEPTH_BUCKETS_BPS``; ``source`` and
    ``mlflow`` are the caller's; ``observation`` (None = the defaults with the regime
    fit's bar length) must have the regime fit's ``bar_seconds``.  The fidelity report
    measures the summaries *before* the cap.  In full: docs/models/export.md
    ("export_bundle").
    """
    from models import catalog

    _check_fits(fits)
    reg_asset = fits["regime"].attrs.get("asset")
    if reg_asset and str(reg_asset) != asset:
        raise ValueError(f"fits.regime: fitted on asset {reg_asset!r}, exporting {asset!r}")
    summaries: list[dict[str, Any]] = []
    fidelity: dict[str, dict[str, float]] = {}
    fitted = [name for name in catalog.names() if name in fits]   # a needs_books model may be absent
    for name in fitted:
        s, d = catalog.summarize(name, fits[name], asset)
        summaries.append(s)
        fidelity.update(fidelity_report(s, d))
    diag: dict[str, Any] = {}
    if with_model_diagnostics:
        diag["models"] = {name: model_diagnostics(name, fits[name]) for name in fitted}
    diag.update(diagnostics or {})
    bundle = build_bundle(
        asset, summaries, source=source, model_version=combined_model_version(fits, source),
        diagnostics=diag, fidelity=fidelity, max_prior_strength=max_prior_strength, mlflow=mlflow,
        created_at=created_at, volatility_bar_s=float(fits["regime"].attrs["bar_seconds"]),
        depth_buckets_bps=DEPTH_BUCKETS_BPS, observation=observation)
    return bundle, fidelity
