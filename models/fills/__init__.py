"""Fills at the order's own price and the markouts after them (DESIGN.md section 4):
the time to fill of a queue order as a piecewise-exponential survival model (hazard in
time since placement, log-linear in queue ahead, level, signed imbalance and regime;
Friedman 1982) and, given a fill, the markouts per horizon (normal increments, mean
linear in the same covariates; adverse selection rising with queue position, Moallemi &
Yuan 2017), mixed over the order's regime probabilities and partially pooled across
regimes and assets. Model, likelihood, priors, exported cells and measurements:
docs/models/fills.md.

Modules: :mod:`.observations` (:class:`FillsObs`, :func:`observations`, :func:`simulate`),
:mod:`.model` (:class:`FillsConfig`, the likelihood, the PyMC model, :func:`fit`,
:func:`version`), :mod:`.posterior` (:func:`summarize`, :func:`summary_draws`,
:func:`heldout_lpd`, the reliability diagram).
"""

from __future__ import annotations

from .model import MODEL_NAME, NP, PT, FillsConfig, build_model, config_of, design, fit, order_loglik, version
from .observations import (FillsObs, capture_shortfall, combine, from_table, has_queue_data, observations,
                           queue_table, simulate, truth_names)
from .posterior import (fill_probability, fitted_shortfall, heldout_lpd, posterior_params, reliability,
                        reliability_plot, summarize, summary_draws)

__all__ = ["FillsConfig", "FillsObs", "MODEL_NAME", "NP", "PT", "build_model", "capture_shortfall", "combine",
           "config_of", "design", "fill_probability", "fit", "fitted_shortfall", "from_table", "has_queue_data",
           "heldout_lpd", "observations", "order_loglik", "posterior_params", "queue_table", "reliability",
           "reliability_plot", "simulate", "summarize", "summary_draws", "truth_names", "version"]
