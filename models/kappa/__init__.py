"""Fill-intensity decay kappa and arrival rate A per regime and side (DESIGN.md
section 4).

Market orders reaching depth >= delta (bps beyond the mid) arrive at rate
``A[asset, regime, side] * exp(-kappa[asset, regime, side] * delta)``: A in
events/s, kappa in 1/bps. Counts per block of volatility bars are negative
binomial (Hawkes clustering) or Poisson; depths are exponential. Source: the
exponential fill intensity of Avellaneda & Stoikov (2008) and Gueant, Lehalle &
Fernandez-Tapia (2013); model, priors, sampling coordinates and measurements:
docs/models/kappa.md.

Modules: :mod:`.observations` (:class:`KappaObs`, :func:`observations`,
:func:`simulate`, :func:`simulate_hawkes`), :mod:`.model` (:class:`KappaConfig`,
the count blocks, the PyMC model, :func:`fit`, :func:`version`), :mod:`.posterior`
(:func:`summarize`, :func:`heldout_lpd`, :func:`ppc_depths`).
"""

from __future__ import annotations

from mm_runtime.vocabulary import NS, REGIMES, SIDES
from models.data.observations import ObservationConfig

from .model import (FANO_PRIOR_BLOCKS, MODEL_NAME, MULTI_ASSET_TARGET_ACCEPT, KappaConfig, block_rows,
                    build_model, count_blocks, count_fano, fit, version)
from .observations import KappaObs, combine, observations, simulate, simulate_hawkes, truth_params
from .posterior import heldout_lpd, ppc_depths, ppc_plot, summarize, summary_draws

__all__ = [
    "FANO_PRIOR_BLOCKS", "KappaConfig", "KappaObs", "MODEL_NAME", "MULTI_ASSET_TARGET_ACCEPT", "NS",
    "ObservationConfig", "REGIMES", "SIDES", "block_rows", "build_model", "combine", "count_blocks",
    "count_fano", "fit", "heldout_lpd", "observations", "ppc_depths", "ppc_plot", "simulate",
    "simulate_hawkes", "summarize", "summary_draws", "truth_params", "version",
]
