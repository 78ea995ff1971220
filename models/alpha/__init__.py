"""Adverse-selection probability alpha: which passive fills are informed
(DESIGN.md section 4).

alpha(delta) = alpha_floor[asset] + (alpha_touch[asset, regime] - alpha_floor[asset])
* exp(-delta / alpha_decay_bps[asset]) (``AlphaConfig(floor=False)``: alpha_floor = 0):
the probability that a passive fill at depth delta (bps of the mid) is informed,
with the mean adverse move of informed fills (``adverse_move_bps``, bps) and the
share of the quoted depth an uninformed fill earns (``spread_capture``). Two
variants: ``threshold`` (binomial on the informed flag of DESIGN.md section 3)
and ``mixture`` (two-component mixture of the markouts). Source: the original
system's ``DepthDecayAS::alpha_at_depth`` (with a floor); model, priors, sweep weighting, the
variant comparison and measurements: docs/models/alpha.md.

Modules: :mod:`.observations` (:class:`AlphaObs`, :func:`observations`,
:func:`simulate`), :mod:`.model` (:class:`AlphaConfig`, the PyMC models,
:func:`fit`, :func:`version`), :mod:`.posterior` (:func:`summarize`, LOO and
held-out scores of the informed flag).
"""

from __future__ import annotations

from mm_runtime.vocabulary import DEPTH_BUCKET_LABELS, DEPTH_BUCKETS_BPS, REGIMES
from models.data.observations import ObservationConfig

from .model import (FLOOR_TARGET_ACCEPT, MIXTURE_NAME, MODEL_NAME, MULTI_ASSET_TARGET_ACCEPT, VARIANTS,
                    AlphaConfig, AlphaPrior, build_mixture_model, build_model, fit, fit_mixture, uninformed_moments,
                    version)
from .observations import (BUCKET_REPRESENTATIVE_BPS, DEFAULT_MARKOUT_NOISE_BPS, AlphaObs, Weighting, combine,
                           observations, simulate, sweep_weights, truth_params)
from .posterior import (compare_informed_flag, heldout_lpd, loo_informed_flag, summarize, summary_draws)

__all__ = [
    "AlphaConfig", "AlphaObs", "AlphaPrior", "BUCKET_REPRESENTATIVE_BPS", "DEFAULT_MARKOUT_NOISE_BPS",
    "DEPTH_BUCKETS_BPS", "DEPTH_BUCKET_LABELS", "FLOOR_TARGET_ACCEPT", "MIXTURE_NAME", "MODEL_NAME",
    "MULTI_ASSET_TARGET_ACCEPT",
    "ObservationConfig", "REGIMES", "VARIANTS", "Weighting", "build_mixture_model", "build_model", "combine",
    "compare_informed_flag", "fit", "fit_mixture", "heldout_lpd", "loo_informed_flag", "observations",
    "simulate", "summarize", "summary_draws", "sweep_weights", "truth_params", "uninformed_moments", "version",
]
