"""Held-out predictive scores from pointwise log-likelihoods: :func:`predictive_density`,
:func:`paired_difference`, :func:`thin_index` (re-exported by :mod:`models.sampling`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["thin_index", "predictive_density", "paired_difference"]


# =========================================================================== held-out predictive
def thin_index(n_draws: int, max_draws: int | None) -> np.ndarray:
    """Evenly spaced indices of at most ``max_draws`` of ``n_draws`` draws (all of them
    when ``max_draws`` is None or not smaller)."""
    if max_draws is None or n_draws <= max_draws:
        return np.arange(n_draws)
    return np.unique(np.linspace(0, n_draws - 1, int(max_draws)).round().astype(int))


def predictive_density(loglik: np.ndarray, weight: np.ndarray | None = None, *,
                       unit: str = "observations") -> dict[str, Any]:
    """Log predictive density of data from the pointwise log-likelihood at posterior draws.

    ``loglik`` (S draws, N units): ``log p(y_i | theta_s)``. Per unit,
    ``lpd_i = log (1/S) sum_s p(y_i | theta_s)`` (the Monte Carlo estimate of the
    posterior predictive density, Gelman, Hwang & Vehtari 2014, eq. 3: "lpd" on new
    data, the quantity elpd estimates). ``weight`` (N,, default 1) weights the units
    (e.g. alpha's sweep weights). Returns ``elpd`` (= sum w lpd_i), ``se`` (sqrt of
    ``n_units`` times the weighted variance of the lpd_i: the usual standard error of
    a sum of exchangeable terms, Vehtari, Gelman & Gabry 2017, eq. 23), ``pointwise``,
    ``weight``, ``n`` (units), ``n_units`` (sum of the weights), ``unit``, ``draws`` (S).
    """
    from scipy.special import logsumexp

    ll = np.asarray(loglik, dtype=float)
    if ll.ndim != 2 or ll.shape[0] < 1:
        raise ValueError(f"loglik must be (draws, units), got shape {ll.shape}")
    e = logsumexp(ll, axis=0) - math.log(ll.shape[0])
    w = np.ones(ll.shape[1]) if weight is None else np.asarray(weight, dtype=float)
    if w.shape != e.shape:
        raise ValueError(f"weight has shape {w.shape}, expected ({ll.shape[1]},)")
    return _weighted_sum(e, w) | {"unit": unit, "draws": int(ll.shape[0])}


def _weighted_sum(e: np.ndarray, w: np.ndarray) -> dict[str, Any]:
    n_units = float(w.sum())
    if not np.all(np.isfinite(e)):
        bad = int(np.sum(~np.isfinite(e)))
        raise ValueError(f"{bad} of {len(e)} pointwise predictive densities are not finite")
    if n_units <= 0:
        return {"elpd": 0.0, "se": 0.0, "pointwise": e, "weight": w, "n": int(len(e)), "n_units": 0.0}
    mean = float(np.sum(w * e) / n_units)
    var = float(np.sum(w * (e - mean) ** 2) / n_units)
    return {"elpd": float(np.sum(w * e)), "se": math.sqrt(n_units * var), "pointwise": e, "weight": w,
            "n": int(len(e)), "n_units": n_units}


def paired_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """``a - b`` for two :func:`predictive_density` results (or alpha's
    ``informed_flag_lpd``): ``elpd_diff`` and its ``se``.

    Paired (``paired`` True) when both scored the same units (same length and
    weights): the se of the sum of the pointwise differences (Vehtari, Gelman &
    Gabry 2017, eq. 24) -- much smaller than the unpaired one, since most of the
    variation between units is shared. Otherwise (different units: e.g. bars of
    another length) the unpaired ``sqrt(se_a^2 + se_b^2)``, which is conservative.
    """
    ea, eb = np.asarray(a["pointwise"]), np.asarray(b["pointwise"])
    wa, wb = np.asarray(a.get("weight", np.ones_like(ea))), np.asarray(b.get("weight", np.ones_like(eb)))
    if ea.shape == eb.shape and np.allclose(wa, wb):
        d = _weighted_sum(ea - eb, wa)
        return {"elpd_diff": d["elpd"], "se": d["se"], "paired": True}
    return {"elpd_diff": float(a["elpd"] - b["elpd"]),
            "se": math.sqrt(float(a["se"]) ** 2 + float(b["se"]) ** 2), "paired": False}
