"""Diagnostic plots of one fit, written as PNG files (logged to MLflow by the
calibrate flow, DESIGN.md section 7).

Per model (:func:`model_plots`):

* ``trace``: ``az.plot_trace`` of the reported variables (compact: one panel per
  variable, a line per coordinate and chain) -- mixing and stationarity at a glance;
* ``posterior``: ``az.plot_forest`` of the reported variables (90 % HDI and the
  interquartile range, chains combined) -- one compact figure however many
  coordinates a variable has;
* ``ppc``: a posterior predictive check where the model module has one or where
  it is a few lines from posterior draws:

  - regime: the histogram of the bars' log rv against the stationary mixture
    ``sum_k pi_k N(m_k, s_k)`` at the posterior means (does the HMM's marginal
    cover the data?);
  - alpha: the observed (sweep-weighted) informed share per grid depth against
    the posterior of the mean predicted ``alpha_r(delta)`` over the same fills
    (median and 90 % band; for the mixture variant the informed-component weight);
  - kappa: :func:`models.kappa.ppc_depths` / :func:`models.kappa.ppc_plot`
    (depth survival per regime x side);
  - fills: :func:`models.fills.reliability_plot` (fill probability within tau by level
    and queue bucket, predicted vs observed);
  - hawkes: none yet (a time-rescaling residual check is the natural one).

Matplotlib runs on the Agg backend (no display); every figure is closed after it
is written.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PPC_DRAWS = 500
"""Posterior draws a predictive plot uses at most (its 90 % bands need no more; all
4,000 draws of alpha's per-fill probabilities on AAPL took 3.6 GB)."""


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _plt()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def trace_plot(idata, var_names, path: Path, title: str) -> Path:
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        axes = az.plot_trace(idata, var_names=list(var_names), compact=True, combined=False)
    fig = np.asarray(axes).ravel()[0].figure
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def posterior_plot(idata, var_names, path: Path, title: str) -> Path:
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        axes = az.plot_forest(idata, var_names=list(var_names), combined=True, hdi_prob=0.9)
    fig = np.asarray(axes).ravel()[0].figure
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def regime_ppc(idata, obs, path: Path) -> Path:
    from scipy import stats

    from models.data.observations import REGIMES
    from models.regime import posterior_draws

    plt = _plt()
    d = posterior_draws(idata, 400)
    m, s, pi = d["log_rv_mean"].mean(0), d["log_rv_sd"].mean(0), d["regime_stationary"].mean(0)
    y = obs.log_rv[~obs.censored]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(y, bins=50, density=True, alpha=0.4, color="k", label=f"observed ({len(y)} bars)")
    x = np.linspace(y.min() - 1, y.max() + 1, 400)
    total = np.zeros_like(x)
    for k, name in enumerate(REGIMES):
        comp = pi[k] * stats.norm.pdf(x, m[k], s[k])
        total += comp
        ax.plot(x, comp, lw=0.8, label=f"{name} (pi {pi[k]:.2f})")
    ax.plot(x, total, "r", lw=1.5, label="stationary mixture")
    ax.set_xlabel("log realized variance per bar")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    ax.set_title("regime: log rv vs the HMM's stationary mixture (posterior means)", fontsize=10)
    return _save(fig, path)


def alpha_ppc(idata, obs, path: Path) -> Path:
    from models.alpha.posterior import _per_fill_draws

    plt = _plt()
    alpha = _per_fill_draws(idata, obs, max_draws=PPC_DRAWS)["alpha"]   # (S, N)
    grid = np.unique(obs.depth_bps)
    w = obs.weight
    obs_share, med, lo, hi, n = [], [], [], [], []
    for dd in grid:
        sel = obs.depth_bps == dd
        ww = w[sel]
        n.append(int(sel.sum()))
        obs_share.append(float(np.sum(ww * obs.informed[sel]) / ww.sum()))
        pred = (alpha[:, sel] * ww).sum(1) / ww.sum()
        q = np.quantile(pred, [0.05, 0.5, 0.95])
        lo.append(q[0]), med.append(q[1]), hi.append(q[2])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.fill_between(grid, lo, hi, alpha=0.3, label="posterior 90 %")
    ax.plot(grid, med, lw=1, label="posterior median")
    ax.plot(grid, obs_share, "k.-", ms=5, label="observed share")
    ax.set_xlabel("quote depth δ (bps)")
    ax.set_ylabel("P(informed | fill)")
    ax.set_title(f"alpha ({idata.attrs.get('alpha_variant', 'threshold')}): informed share by depth, "
                 f"{obs.n_fills} fills", fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path)


def kappa_ppc(idata, obs, path: str | Path) -> Path:
    """Depth-tail PPC of a kappa fit (:func:`models.kappa.ppc_depths`, :func:`models.kappa.ppc_plot`)."""
    from models.kappa import ppc_depths, ppc_plot

    return ppc_plot(ppc_depths(idata, obs), path)


def fills_ppc(idata, obs, path: str | Path) -> Path:
    """Reliability diagram of a fills fit: predicted vs observed (Kaplan-Meier) fill
    probability within half the re-post interval by level and queue bucket
    (:func:`models.fills.reliability`, :func:`models.fills.reliability_plot`)."""
    from models.fills import reliability_plot

    return reliability_plot(idata, obs, path)


def model_plots(name: str, idata, obs, out_dir: str | Path, prefix: str = "") -> dict[str, Path]:
    """Write the plots of one fit (module docstring) into ``out_dir``; returns
    ``{plot name: PNG path}``. A plot that fails is skipped with a warning (a
    plotting problem never fails a calibration)."""
    from models import catalog

    spec = catalog.spec(name)
    out = Path(out_dir)
    names = [v for v in spec.var_names if v in idata.posterior]
    jobs: dict[str, Any] = {
        "trace": lambda p: trace_plot(idata, names, p, f"{prefix}{name}: trace"),
        "posterior": lambda p: posterior_plot(idata, names, p, f"{prefix}{name}: posterior (90 % HDI)"),
    }
    ppc = spec.ppc_plot()
    if ppc is not None:
        jobs["ppc"] = lambda p: ppc(idata, obs, p)
    paths: dict[str, Path] = {}
    for kind, fn in jobs.items():
        try:
            paths[kind] = fn(out / f"{name}_{kind}.png")
        except Exception as e:  # noqa: BLE001 - plots are best effort
            log.warning("%s %s plot skipped: %s: %s", name, kind, type(e).__name__, e)
    return paths


__all__ = ["model_plots", "trace_plot", "posterior_plot", "regime_ppc", "alpha_ppc", "kappa_ppc"]
