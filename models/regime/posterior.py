"""The regime model's posterior quantities: posterior draws, per-bar regime
probabilities and path, the held-out one-step-ahead log predictive density, and
the conjugate summaries of the bundle.

Units: probabilities per bar; elpd in nats per bar; emission summaries on
ln sigma_bar (bps/sqrt(s)). Summaries: docs/models/regime.md.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from mm_runtime.vocabulary import REGIMES

from .config import LOG_1E4
from .hmm import emission_logp, forward, forward_backward, stationary_distribution
from .observations import RegimeObs


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


def state_durations(transition: np.ndarray) -> np.ndarray:
    """Each state's expected duration in bars, ``1 / (1 - P[k, k])`` (geometric stay;
    inf for an absorbing state) of a transition matrix (4, 4).

    A regime is persistent by definition; a state that switches every bar or two holds
    the spread of the bars' variance *within* regimes (a mixture component), which is
    what the 4-state HMM does where the bar statistic is not near-Gaussian per regime,
    e.g. where jumps are too frequent for MedRV to cut out or too rare for a bar to hold
    several (docs/models/regime.md, "Persistence")."""
    stay = np.clip(np.diag(np.asarray(transition, dtype=float)), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        return 1.0 / (1.0 - stay)


def persistence(idata) -> dict[str, Any]:
    """The fit's state durations in bars (:func:`state_durations`) at the posterior mean
    transition matrix, the shortest and its state: JSON-friendly (``inf`` as None)."""
    P = _draws(idata, "regime_transition").mean(axis=0)
    d = state_durations(P / P.sum(axis=1, keepdims=True))
    k = int(np.argmin(d))
    fin = lambda x: float(x) if np.isfinite(x) else None  # noqa: E731
    return {"duration_bars": {r: fin(d[i]) for i, r in enumerate(REGIMES)},
            "min_duration_bars": fin(d[k]), "shortest": REGIMES[k]}


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
    (bps/sqrt(s)), ``sigma_bps`` {regime: (S,)} -- the **total** volatility -- and,
    for a fit on jump-robust bars, ``sigma_diffusive_bps`` {regime: (S,)}.

    Which is which (docs/models/regime_live.md): on realized-variance bars the
    emission's ``sigma_bps`` is the total volatility; on jump-robust bars
    (``idata.attrs["volatility_estimator"]`` in :data:`JUMP_ROBUST_ESTIMATORS`) it is the
    diffusive one, and the total is the posterior's ``sigma_total_bps``."""
    from .observations import JUMP_ROBUST_ESTIMATORS

    _check_asset(idata, asset)
    d = posterior_draws(idata)
    B = float(idata.attrs["bar_seconds"])
    b = LOG_1E4 - 0.5 * math.log(B)
    my = 0.5 * d["log_rv_mean"] + b
    vy = 0.25 * d["log_rv_sd"] ** 2
    out = {
        "regime_transition": {r: d["regime_transition"][:, i, :] for i, r in enumerate(REGIMES)},
        "regime_emission": {r: {"mean": my[:, k], "var": vy[:, k]} for k, r in enumerate(REGIMES)},
        "sigma_bps": {r: d["sigma_bps"][:, k] for k, r in enumerate(REGIMES)},
    }
    robust = str(idata.attrs.get("volatility_estimator", "realized")) in JUMP_ROBUST_ESTIMATORS
    if robust and "sigma_total_bps" in idata.posterior:
        total = _draws(idata, "sigma_total_bps")
        out["sigma_diffusive_bps"] = out["sigma_bps"]
        out["sigma_bps"] = {r: total[:, k] for k, r in enumerate(REGIMES)}
    return out


def summarize(idata, asset: str | None = None) -> dict[str, Any]:
    """Conjugate summaries (docs/models/regime.md; ``mm_runtime.bundle`` layout):
    ``{"regime_transition": {from: dirichlet}, "regime_emission": {regime:
    normal_inverse_gamma on ln sigma_bar}, "sigma_bps": {regime: lognormal}}`` (total
    volatility) and, on jump-robust bars, ``"sigma_diffusive_bps": {regime: lognormal}``
    (:func:`summary_draws`)."""
    d = summary_draws(idata, asset)
    from models.export import dirichlet_from_draws, lognormal_from_draws, normal_inverse_gamma_from_draws

    out = {
        "regime_transition": {r: dirichlet_from_draws(x) for r, x in d["regime_transition"].items()},
        "regime_emission": {r: normal_inverse_gamma_from_draws(v["mean"], v["var"])
                            for r, v in d["regime_emission"].items()},
        "sigma_bps": {r: lognormal_from_draws(x) for r, x in d["sigma_bps"].items()},
    }
    if "sigma_diffusive_bps" in d:
        out["sigma_diffusive_bps"] = {r: lognormal_from_draws(x) for r, x in d["sigma_diffusive_bps"].items()}
    return out


def path_accuracy(path: np.ndarray, reference: np.ndarray) -> float:
    """Share of bars whose regime equals the reference's."""
    path, reference = np.asarray(path), np.asarray(reference)
    if path.shape != reference.shape:
        raise ValueError(f"path has {path.shape} bars, reference {reference.shape}")
    return float(np.mean(path == reference))
