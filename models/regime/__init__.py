"""Volatility regimes: a 4-state hidden Markov model on log realized variance
(DESIGN.md section 4).

One value per volatility bar, ``log_rv`` (natural log of the bar's variance of
the log mid); hidden regimes low..extreme with ordered Gaussian emission means,
partially pooled emission sds and sticky Dirichlet transition rows. The model
gives every other model its regime path (:func:`smoothed_probabilities`,
:func:`regime_path`) and the bundle its transition, emission and ``sigma_bps``
(bps/sqrt(s)) summaries (:func:`summarize`). Source: the forward algorithm of
Rabiner (1989), the sticky HMM of Fox et al. (2011); model, priors, likelihood,
starting points, cost and measurements: docs/models/regime.md.

Modules: :mod:`.config` (:class:`RegimeConfig`), :mod:`.observations`
(:class:`RegimeObs`, :func:`observations`, :func:`simulate`, the truth),
:mod:`.hmm` (numpy forward-backward), :mod:`.em` (:func:`em_fit`, the EM point
where the chains start), :mod:`.likelihood` (the JAX forward algorithm with its
exact gradient), :mod:`.op` (it as a pytensor Op), :mod:`.model` (the PyMC model,
:func:`fit`, :func:`version`), :mod:`.posterior` (regime probabilities, :func:`heldout_lpd`,
:func:`summarize`).
"""

from __future__ import annotations

from mm_runtime.vocabulary import REGIMES
from models.data.observations import ObservationConfig

from .config import LOG_1E4, MODEL_NAME, K, RegimeConfig
from .em import em_fit, prior_centres
from .hmm import backward, emission_logp, forward, forward_backward, stationary_distribution
from .model import build_model, fit, version
from .observations import (DEFAULT_LOG_RV_SD, DEFAULT_TRANSITION, JUMP_ROBUST_ESTIMATORS, RegimeObs, market_truth,
                           observations, simulate, simulate_path, truth_arrays, truth_params)
from .posterior import (heldout_lpd, path_accuracy, persistence, posterior_draws,
                        regime_path, smoothed_probabilities, state_durations, summarize, summary_draws)

__all__ = [
    "MODEL_NAME", "RegimeConfig", "RegimeObs", "observations", "simulate", "simulate_path",
    "truth_arrays", "truth_params", "build_model", "fit", "posterior_draws", "smoothed_probabilities",
    "regime_path", "summarize", "summary_draws", "stationary_distribution", "emission_logp",
    "forward", "backward", "forward_backward", "path_accuracy", "prior_centres", "em_fit",
    "heldout_lpd", "market_truth", "JUMP_ROBUST_ESTIMATORS", "persistence",
    "state_durations",
    "DEFAULT_LOG_RV_SD", "DEFAULT_TRANSITION", "K", "LOG_1E4", "ObservationConfig", "REGIMES", "version",
]
