"""Bivariate exponential-kernel Hawkes model of market-order arrivals (DESIGN.md
section 4): ``lambda_s(t) = mu[r(t), s] + sum_{j: t_j < t} n[s, s_j] beta e^{-beta (t - t_j)}``
per side s (buy, sell) and regime r, baseline ``mu`` in events/s, branching matrix
``n[target, source]``, decay ``beta`` in 1/s (Hawkes 1971; Bacry, Mastromatteo &
Muzy 2015).

One module per job: :mod:`~models.hawkes.observations` (arrivals, simulation),
:mod:`~models.hawkes.layout` (the likelihood's parameter-free arrays),
:mod:`~models.hawkes.likelihood` (the JAX likelihood), :mod:`~models.hawkes.op`
(the pytensor Op and graph), :mod:`~models.hawkes.model` (priors, PyMC model, fit,
version), :mod:`~models.hawkes.residuals` (time-rescaling goodness of fit), :mod:`~models.hawkes.posterior` (log-likelihood group, held-out density,
summaries). Every public name is importable from here (``from models import hawkes
as H``). Derivations, design and measurements: docs/models/hawkes.md.
"""

from mm_runtime.vocabulary import NS, REGIMES, SIDES
from models.hawkes.observations import (
    HawkesObs,
    HawkesTruth,
    combine,
    observations,
    params_to_flat,
    simulate,
    simulate_components,
    spectral_radius,
)
from models.hawkes.layout import BLOCK, BlockArrays, LikArrays, auto_block, prepare, prepare_blocks
from models.hawkes.likelihood import (
    jax_data,
    loglik_jax,
    loglik_naive,
    loglik_value_and_grad,
    pointwise_loglik_jax,
)
from models.hawkes.op import (
    PT_BLOCK,
    HawkesGradOp,
    HawkesLogLikOp,
    linear_scan_pt,
    loglik_op,
    loglik_pt,
    pointwise_loglik_pt,
)
from models.hawkes.residuals import fit_goodness, goodness_of_fit, point_params, qq_plot, rescaled_intervals
from models.hawkes.posterior import PARAM_VARS, add_log_likelihood, heldout_lpd, summarize, summary_draws
from models.hawkes.model import (
    MODEL_NAME,
    HawkesConfig,
    HawkesKernel,
    HawkesPriors,
    baseline_coordinates,
    branching_from_raw,
    branching_from_raw_pt,
    branching_to_raw,
    build_model,
    cell_counts,
    fit,
    resolved_config,
    version,
)

__all__ = [
    "BLOCK", "MODEL_NAME", "NS", "PARAM_VARS", "PT_BLOCK", "REGIMES", "SIDES",
    "BlockArrays", "HawkesConfig", "HawkesGradOp", "HawkesKernel", "HawkesLogLikOp", "HawkesObs", "HawkesPriors",
    "HawkesTruth", "LikArrays",
    "add_log_likelihood", "fit_goodness", "goodness_of_fit", "point_params", "qq_plot", "rescaled_intervals", "auto_block", "baseline_coordinates", "branching_from_raw",
    "branching_from_raw_pt", "branching_to_raw", "build_model", "cell_counts", "combine", "fit",
    "heldout_lpd", "jax_data", "linear_scan_pt", "loglik_jax", "loglik_naive", "loglik_op", "loglik_pt",
    "loglik_value_and_grad", "observations", "params_to_flat", "pointwise_loglik_jax",
    "pointwise_loglik_pt", "prepare", "prepare_blocks", "resolved_config", "simulate", "simulate_components",
    "spectral_radius", "summarize", "summary_draws", "version",
]
