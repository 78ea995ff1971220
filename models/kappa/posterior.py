"""Kappa's posterior quantities: the gamma summaries of the bundle, the held-out
log predictive density and the posterior predictive check of the depths.

Units: kappa in 1/bps, arrival rate in events/s; elpd in nats per (count block,
side) row. Summaries and the check: docs/models/kappa.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mm_runtime.vocabulary import REGIMES, SIDES
from models.sampling import asset_index

from .model import KappaConfig, block_rows
from .observations import KappaObs


# =========================================================================== summaries
def _assets(idata) -> list[str]:
    return json.loads(idata.attrs["assets"])


def _asset_index(idata, asset: str | None) -> int:
    return asset_index(_assets(idata), asset)


def _draws(idata, name: str, a: int) -> np.ndarray:
    """(S, 4, 2) posterior draws of a regime x side variable for asset index a."""
    da = idata.posterior[name]
    if "asset" in da.dims:
        da = da.isel(asset=a)
    da = da.transpose("chain", "draw", "regime", "side")
    v = np.asarray(da.values)
    return v.reshape(-1, v.shape[2], v.shape[3])


def summary_draws(idata, asset: str | None = None) -> dict[str, Any]:
    """``{"kappa": {regime: {side: draws}}, "arrival_rate": {...}}`` (the inputs of
    :func:`summarize`, for the exporter's faithfulness report)."""
    a = _asset_index(idata, asset)
    out: dict[str, Any] = {}
    for name in ("kappa", "arrival_rate"):
        x = _draws(idata, name, a)
        out[name] = {rn: {sn: x[:, r, s] for s, sn in enumerate(SIDES)} for r, rn in enumerate(REGIMES)}
    return out


def summarize(idata, asset: str | None = None) -> dict[str, Any]:
    """``{"kappa": {regime: {side: gamma}}, "arrival_rate": {regime: {side: gamma}}}``,
    each moment-matched to the posterior (mean and variance equal)."""
    from models.export import gamma_from_draws

    d = summary_draws(idata, asset)
    return {name: {rn: {sn: gamma_from_draws(x) for sn, x in per.items()} for rn, per in grid.items()}
            for name, grid in d.items()}


# =========================================================================== held-out predictive
def heldout_lpd(idata, obs: KappaObs, asset: str | None = None, *, max_draws: int | None = 400
                ) -> dict[str, Any]:
    """Log predictive density of held-out arrivals ``obs`` (one asset, a window the
    fit did not see), one term per (count block, side) as in the fit's
    ``log_likelihood`` (:func:`block_rows` with the fit's :class:`KappaConfig`):
    the block's count (negative binomial of type 1 with mean ``A T exp(-kappa
    delta0)`` and Fano factor ``1 + d``, or Poisson) plus its depths
    (``n log kappa - kappa S``), at up to ``max_draws`` thinned posterior draws,
    averaged per row (:func:`models.sampling.predictive_density`). ``asset``
    selects the fitted asset (default: ``obs``'s single asset)."""
    from scipy import stats

    from models.sampling import predictive_density, thin_index

    if obs.n_assets != 1:
        raise ValueError("heldout_lpd takes the observations of one asset")
    cfg = KappaConfig.model_validate(json.loads(idata.attrs["kappa_config"])) \
        if "kappa_config" in idata.attrs else KappaConfig()
    a = _asset_index(idata, asset or obs.assets[0])
    A, kap = _draws(idata, "arrival_rate", a), _draws(idata, "kappa", a)     # (S, 4, 2)
    idx = thin_index(len(A), max_draws)
    A, kap = A[idx], kap[idx]
    rows = block_rows(obs, cfg)
    n, ssum = rows["value"][:, 0], rows["value"][:, 1]
    sd = rows["side"]
    od = None
    if cfg.count_likelihood == "negative_binomial":
        od = idata.posterior["count_overdispersion"]
        if "asset" in od.dims:
            od = od.isel(asset=a)
        od = np.asarray(od.transpose("chain", "draw", "side").values).reshape(-1, 2)[idx][:, sd]

    def row_ll(r):
        k_row = kap[:, r, sd]                                               # (S, rows)
        mean = A[:, r, sd] * np.exp(-k_row * cfg.min_depth_bps) * rows["exposure_s"][None, :]
        if od is not None:
            phi = mean / od                                 # NB(mu, alpha=phi): var = mu (1 + d)
            count = stats.nbinom.logpmf(n[None, :], phi, phi / (phi + mean))
        else:
            count = stats.poisson.logpmf(n[None, :], mean)
        return count + n[None, :] * np.log(k_row) - k_row * ssum[None, :]

    if obs.soft:
        # soft regimes: each row mixed over the regimes with its block's probabilities
        from scipy.special import logsumexp

        with np.errstate(divide="ignore"):
            logw = np.log(rows["prob"])                                     # (rows, R)
        per = np.stack([row_ll(np.full(len(sd), k)) for k in range(len(REGIMES))], axis=-1)
        ll = logsumexp(per + logw[None], axis=-1)
    else:
        ll = row_ll(rows["regime"])
    return predictive_density(ll, unit="(count block, side) rows")


# =========================================================================== posterior predictive
def ppc_depths(idata, obs: KappaObs, asset: str | None = None, grid: Sequence[float] | None = None,
               prob: float = 0.9, n_draws: int = 400, seed: int = 0):
    """Posterior predictive check of the depth distribution per regime x side.

    For each cell with arrivals: the observed survival ``P(D >= delta)`` (share of
    the cell's arrivals, among those >= min_depth, reaching delta) on ``grid``
    (default 41 points from min_depth to the 99.5 % quantile of the depths) and the
    posterior predictive of that empirical survival: for posterior draw kappa_j,
    ``Binomial(n, exp(-kappa_j (delta - delta0))) / n`` -- the sampling noise of n
    arrivals included, so a well-specified model keeps the observed curve inside
    the central ``prob`` band at about ``prob`` of the points. Returns a
    DataFrame: ``regime``, ``side``, ``depth_bps``, ``n``, ``observed``,
    ``predicted`` (posterior predictive mean), ``lo``, ``hi``, ``outside``.
    ``attrs``: ``share_outside`` and ``share_outside_near_touch`` (points below
    the cells' median depth) -- where the exponential form misfits.
    """
    import pandas as pd

    cfg = KappaConfig(**json.loads(idata.attrs["kappa_config"])) if "kappa_config" in idata.attrs else KappaConfig()
    d0 = cfg.min_depth_bps
    a = _asset_index(idata, asset)
    o = obs.select(asset) if (asset is not None and obs.n_assets > 1) else obs
    if o.n_assets > 1:
        raise ValueError("obs holds several assets: pass asset=")
    kap = _draws(idata, "kappa", a)
    rng = np.random.default_rng(seed)
    take = rng.choice(kap.shape[0], size=min(n_draws, kap.shape[0]), replace=False)
    kap = kap[take]
    keep = o.depth_bps >= d0
    depth, reg, side = o.depth_bps[keep], o.arr_regime[keep], o.arr_side[keep]
    if grid is None:
        hi = float(np.quantile(depth, 0.995)) if len(depth) else d0 + 10.0
        grid = np.linspace(d0, max(hi, d0 + 1e-6), 41)
    g = np.asarray(grid, dtype=float)
    rows = []
    lo_q, hi_q = (1 - prob) / 2, 1 - (1 - prob) / 2
    for r, rn in enumerate(REGIMES):
        for s, sn in enumerate(SIDES):
            x = np.sort(depth[(reg == r) & (side == s)])
            n = len(x)
            if n == 0:
                continue
            obs_surv = 1.0 - np.searchsorted(x, g, side="left") / n
            p = np.exp(-kap[:, r, s][:, None] * np.maximum(g[None, :] - d0, 0.0))
            sim = rng.binomial(n, p) / n
            lo, hi = np.quantile(sim, [lo_q, hi_q], axis=0)
            med = float(np.median(x))
            for j, dj in enumerate(g):
                rows.append({"regime": rn, "side": sn, "depth_bps": float(dj), "n": n,
                             "observed": float(obs_surv[j]), "predicted": float(sim[:, j].mean()),
                             "lo": float(lo[j]), "hi": float(hi[j]),
                             "outside": bool(obs_surv[j] < lo[j] or obs_surv[j] > hi[j]),
                             "near_touch": bool(dj <= med)})
    df = pd.DataFrame(rows)
    if len(df):
        df.attrs["share_outside"] = float(df["outside"].mean())
        nt = df[df["near_touch"]]
        df.attrs["share_outside_near_touch"] = float(nt["outside"].mean()) if len(nt) else float("nan")
    df.attrs["prob"] = prob
    df.attrs["min_depth_bps"] = d0
    return df


def ppc_plot(ppc, path: str | Path, title: str | None = None) -> Path:
    """Plot :func:`ppc_depths` as a 4 x 2 grid (regime x side) of survival curves on
    a log scale: the observed curve, the predictive mean and the band; points
    outside the band in red. Writes a PNG and returns its path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, axes = plt.subplots(len(REGIMES), 2, figsize=(9, 11), sharex=True, squeeze=False)
    prob = ppc.attrs.get("prob", 0.9)
    for r, rn in enumerate(REGIMES):
        for s, sn in enumerate(SIDES):
            ax = axes[r][s]
            d = ppc[(ppc["regime"] == rn) & (ppc["side"] == sn)] if len(ppc) else ppc
            if len(d) == 0:
                ax.text(0.5, 0.5, "no arrivals", ha="center", va="center", transform=ax.transAxes)
            else:
                x = d["depth_bps"].to_numpy()
                floor = 0.5 / max(int(d["n"].iloc[0]), 1)
                ax.fill_between(x, np.maximum(d["lo"], floor), np.maximum(d["hi"], floor), alpha=0.3,
                                label=f"{int(prob * 100)}% predictive")
                ax.plot(x, np.maximum(d["predicted"], floor), lw=1, label="predictive mean")
                ax.plot(x, np.maximum(d["observed"], floor), "k.-", ms=3, lw=0.8, label="observed")
                out = d["outside"].to_numpy()
                ax.plot(x[out], np.maximum(d["observed"].to_numpy()[out], floor), "r.", ms=6)
                ax.set_yscale("log")
                ax.set_title(f"{rn}, {sn} (n={int(d['n'].iloc[0])})", fontsize=9)
            if r == len(REGIMES) - 1:
                ax.set_xlabel("depth δ (bps)")
            if s == 0:
                ax.set_ylabel("P(D ≥ δ)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title or "kappa: depth survival, observed vs posterior predictive", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
