"""The Hawkes kernel's components: the bundle's optional ``params.hawkes_components``
block (:class:`HawkesComponent`, :func:`check_components`), its padded runtime arrays
(:func:`kernel_arrays`) and the excitation recursion of the quote step
(:func:`excitation_step`). A hand-built block for tests and benchmarks:
:func:`mm_runtime.examples.with_example_components`.

Kernel (docs/models/hawkes_multiscale.md, "Several kernel components"):
``phi_{t,s}(u) = sum_m n^m[t, s] beta_m e^{-beta_m u}``, so the intensity of side ``t``
is ``lambda_t = mu[r, t] + sum_m exc[m, t]`` with, per component, the exponential
kernel's Markov recursion (Ogata 1981; Hawkes 1971): between events
``exc[m] <- exc[m] e^{-beta_m dt}``, at a market order of aggressor side ``s``
``exc[m] <- exc[m] + beta_m n^m[:, s]``.

The state has a fixed number of rows, :data:`MAX_COMPONENTS` (the most a fit may have),
whatever the bundle's M: rows beyond M have zero branching, so they stay exactly zero
and add exact zeros to the intensity (an M = 1 bundle gives the one-exponential numbers
bit for bit). A fixed shape keeps the jitted step traced (and the packed step compiled)
once for every bundle, a hot reload to another M without a recompilation, the step
vmappable over assets whose bundles have different M (``batch_step`` stacks their
states), and the live state file's shape independent of the bundle. Units: decays 1/s,
branching ratios dimensionless, excitation 1/s. Layout and validation:
docs/runtime/bundle.md ("params.hawkes_components").
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from .summaries import BetaSummary, LogNormalSummary, check_keys
from .vocabulary import SIDES

__all__ = ["MAX_COMPONENTS", "PAD_DECAY", "HawkesComponent", "check_components", "component_means",
           "kernel_arrays", "padded", "excitation_step", "mean_lag_decay"]

MAX_COMPONENTS = 6
"""Rows of the runtime's excitation state: the most components a fit has
(``models.hawkes.HawkesKernel.components`` is 1..6)."""
PAD_DECAY = 1.0
"""Decay (1/s) of the padding rows: any finite positive value; their branching and
state are zero, so they stay zero."""
_SUM_RTOL = 1e-6


class HawkesComponent(BaseModel):
    """One kernel component: its decay ``beta_m`` (lognormal, 1/s) and its branching
    ``n^m[target][source]`` (beta per entry: mean children of a *source* arrival on the
    *target* side through this component)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    decay: LogNormalSummary
    branching: dict[str, dict[str, BetaSummary]]


def check_components(comps: list[HawkesComponent], total: dict[str, dict[str, BetaSummary]]) -> None:
    """Validate the block against the bundle's total branching ``total``
    (``params.hawkes_branching``): 1..MAX_COMPONENTS components, side keys, decays
    strictly decreasing (fastest first, by their means), the spectral radius of the
    summed mean branching < 1 (stationarity), and that sum equal to the total's mean per
    entry (relative 1e-6). Raises ``ValueError`` with one line naming the field."""
    where = "params.hawkes_components"
    if not 1 <= len(comps) <= MAX_COMPONENTS:
        raise ValueError(f"{where}: {len(comps)} components (must be 1..{MAX_COMPONENTS})")
    for m, c in enumerate(comps):
        check_keys(c.branching, SIDES, f"{where}.{m}.branching", "side")
        for t in SIDES:
            check_keys(c.branching[t], SIDES, f"{where}.{m}.branching.{t}", "side")
    decays = [c.decay.mean() for c in comps]
    for m in range(1, len(comps)):
        if not decays[m] < decays[m - 1]:
            raise ValueError(f"{where}.{m}.decay: mean {decays[m]:.6g}/s is not below component {m - 1}'s "
                             f"{decays[m - 1]:.6g}/s (components are ordered fastest first)")
    n = component_means(comps)
    rho = float(np.max(np.abs(np.linalg.eigvals(n.sum(0)))))
    if not rho < 1.0:
        raise ValueError(f"{where}: spectral radius of the summed mean branching matrix is {rho:.4g} "
                         "(must be < 1 for a stationary Hawkes process)")
    tot = np.array([[total[t][s].mean() for s in SIDES] for t in SIDES])
    for i, t in enumerate(SIDES):
        for j, s in enumerate(SIDES):
            got = float(n[:, i, j].sum())
            if abs(got - tot[i, j]) > _SUM_RTOL * abs(tot[i, j]):
                raise ValueError(f"{where}: the components' mean branching sums to {got:.8g} at [{t}][{s}], "
                                 f"params.hawkes_branching.{t}.{s} has mean {tot[i, j]:.8g} (it is their total)")


def component_means(comps: list[HawkesComponent]) -> np.ndarray:
    """(M, S, S) mean branching ``n^m[target, source]``."""
    return np.array([[[c.branching[t][s].mean() for s in SIDES] for t in SIDES] for c in comps], dtype=np.float64)


def kernel_arrays(comps: list[HawkesComponent] | None, n_total: np.ndarray, beta: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(n (M, S, S), beta (M,))``, the means of the kernel's components, fastest first:
    the block's, or without one the one exponential (``n_total``, ``beta``: the bundle's
    ``hawkes_branching`` and ``hawkes_decay`` means)."""
    if comps is None:
        return np.asarray(n_total, dtype=np.float64)[None], np.array([float(beta)])
    return component_means(comps), np.array([c.decay.mean() for c in comps], dtype=np.float64)


def padded(n: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The arrays of :func:`kernel_arrays` padded to :data:`MAX_COMPONENTS` rows (zero
    branching, decay :data:`PAD_DECAY`)."""
    M, S = n.shape[0], n.shape[1]
    n_p = np.zeros((MAX_COMPONENTS, S, S))
    n_p[:M] = n
    b_p = np.full(MAX_COMPONENTS, PAD_DECAY)
    b_p[:M] = beta
    return n_p, b_p


def excitation_step(exc, n, beta, dt, trade_ok, trade_side):
    """One event of the recursion: ``exc`` (K, S) decayed over ``dt`` s, plus ``beta_m
    n^m[:, source]`` per component when a market order (``trade_ok``; ``trade_side`` +1
    buy / -1 sell aggressor) arrives. ``n`` (K, S, S) [component, target, source],
    ``beta`` (K,), 1/s. Each row is the one-exponential recursion's arithmetic."""
    import jax.numpy as jnp  # here, so that loading a bundle does not import jax

    n_source = jnp.where(trade_side > 0, n[:, :, 0], n[:, :, 1])  # (K, S)
    # one vectorised exp over the components (one fused kernel; an exp per row would add a
    # kernel per component to the step's multi-kernel form)
    return exc * jnp.exp(-beta[:, None] * dt) + jnp.where(trade_ok, beta[:, None] * n_source, 0.0)


def mean_lag_decay(weights, decays):
    """The decay of the one exponential with the kernel's total branching and mean lag:
    ``1 / sum_m w_m / beta_m`` with ``w_m`` the components' shares of the total
    branching (``int u phi(u) du / int phi(u) du``; the weighted harmonic mean of the
    decays). Works on numpy arrays along the last axis."""
    w = np.asarray(weights, dtype=float)
    return w.sum(-1) / np.sum(w / np.asarray(decays, dtype=float), axis=-1)
