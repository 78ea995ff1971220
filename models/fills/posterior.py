"""The fills model's posterior quantities: the bundle's cells (gamma fill hazards per
hazard piece, normal markout means per horizon; cells = regime x level x queue bucket),
the held-out log predictive density, and the reliability diagram of the fill
probability within tau by level and queue bucket; beside the cells, the plug-in
capture shortfall per level stored with the fit (:func:`fitted_shortfall`).

Units: hazards in 1/s, markouts in bps; elpd in nats per queue order.
Cells and the check: docs/models/fills.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mm_runtime.vocabulary import QUEUE_BUCKET_LABELS, QUEUE_BUCKETS, REGIMES, horizon_label, piece_labels
from models.sampling import asset_index

from .model import NP, config_of, design, order_loglik
from .observations import FillsObs


def _assets(idata) -> list[str]:
    return json.loads(idata.attrs["assets"])


def _stack(da, dims: tuple[str, ...], a: int | None) -> np.ndarray:
    if "asset" in da.dims:
        da = da.isel(asset=a)
    v = np.asarray(da.transpose("chain", "draw", *dims).values)
    return v.reshape(-1, *v.shape[2:])


def posterior_params(idata, asset: str | None = None, max_draws: int | None = None) -> dict[str, np.ndarray]:
    """The likelihood's parameters per draw for one asset (leading axis: draws, thinned
    to ``max_draws``): ``log_hazard`` (S, 1, 4), ``log_ratio`` (S, P) with 0 first, ``coef``
    (S, 3), ``mean`` (S, 1, 4, H), ``slopes`` (S, 3, H), ``log_sd`` (S, 4, H), ``nu`` (S,),
    ``zero_prob`` (S, 4, H) (zeros for a fit without ``markout_zero_mass``)."""
    from models.sampling import thin_index

    a = asset_index(_assets(idata), asset)
    po = idata.posterior
    hz = _stack(po["fill_hazard"], ("regime",), a)
    idx = thin_index(len(hz), max_draws)
    ratio = _stack(po["fill_piece_ratio"], ("piece",), a)
    out = {"log_hazard": np.log(hz)[:, None, :],
           "log_ratio": np.concatenate([np.zeros((len(hz), 1)), np.log(ratio)], axis=1),
           "coef": np.stack([_stack(po[f"fill_{n}_coef"], (), a) for n in ("queue", "level", "imbalance")], axis=1),
           "mean": _stack(po["markout_mean_bps"], ("regime", "horizon"), a)[:, None],
           "slopes": np.stack([_stack(po[f"markout_{n}_bps"], ("horizon",), a)
                               for n in ("queue", "level", "imbalance")], axis=1),
           "log_sd": np.log(_stack(po["markout_sd_bps"], ("regime", "horizon"), a))}
    out["nu"] = _stack(po["markout_nu"], (), a) if "markout_nu" in po else np.full(len(hz), np.nan)
    out["zero_prob"] = _stack(po["markout_zero_prob"], ("regime", "horizon"), a) if "markout_zero_prob" in po \
        else np.zeros((len(hz), *out["log_sd"].shape[1:]))
    return {k: v[idx] for k, v in out.items()}


# =========================================================================== summaries
def bucket_queue(edges=QUEUE_BUCKETS) -> np.ndarray:
    """The queue ahead (median trades) that stands for each bucket: the middle of
    ``[lo, hi)``, 1.5 lo for the open last bucket."""
    e = np.asarray(edges, dtype=float)
    return np.append(0.5 * (e[:-1] + e[1:]), 1.5 * e[-1])


def summary_draws(idata, asset: str | None = None) -> dict[str, Any]:
    """``{"fills": {"hazard": {regime: {level: {bucket: {piece: draws}}}},
    "markout_bps": {regime: {level: {bucket: {horizon: draws}}}}}}`` (and
    ``"capture_shortfall_bps": None`` where the fit has that plug-in: no draws): per cell (regime,
    level 0..K, queue bucket) the hazard of each piece (1/s) and the
    mean markout at each horizon (bps), one value per posterior draw. The signed
    imbalance, which the runtime does not see, is set to its mean in the fit: over the
    queue orders for the hazard, over the fills for the markout (``E[markout | fill]``
    at the imbalance fills happen at: on Hyperliquid BTC it is about +1, and at 0 the
    5-30 s markouts changed sign); 0 for a fit stored without those means."""
    cfg = config_of(idata)
    P = posterior_params(idata, asset)
    means = json.loads(idata.attrs.get("imbalance_means", "{}"))
    x = means.get(asset if asset is not None else _assets(idata)[0], {"orders": 0.0, "fills": 0.0})
    pieces = piece_labels(cfg.cuts_s())
    hz = [horizon_label(h) for h in cfg.observation.markout_horizons_s]
    qb = np.log1p(bucket_queue())
    K = int(cfg.observation.queue_levels)
    haz: dict[str, Any] = {}
    mk: dict[str, Any] = {}
    for r, rn in enumerate(REGIMES):
        haz[rn], mk[rn] = {}, {}
        for lv in range(K + 1):
            haz[rn][str(lv)], mk[rn][str(lv)] = {}, {}
            for b, bn in enumerate(QUEUE_BUCKET_LABELS):
                eta = (P["log_hazard"][:, 0, r] + P["coef"][:, 0] * qb[b] + P["coef"][:, 1] * lv
                       + P["coef"][:, 2] * x["orders"])
                haz[rn][str(lv)][bn] = {p: np.exp(eta + P["log_ratio"][:, k]) for k, p in enumerate(pieces)}
                m = (P["mean"][:, 0, r, :] + P["slopes"][:, 0, :] * qb[b] + P["slopes"][:, 1, :] * lv
                     + P["slopes"][:, 2, :] * x["fills"])
                mk[rn][str(lv)][bn] = {h: m[:, j] for j, h in enumerate(hz)}
    out: dict[str, Any] = {"hazard": haz, "markout_bps": mk}
    if fitted_shortfall(idata, asset) is not None:
        out["capture_shortfall_bps"] = None  # a plug-in, no posterior draws: no fidelity to measure
    return {"fills": out}


def fitted_shortfall(idata, asset: str | None = None) -> dict[str, dict[str, Any]] | None:
    """The fit's capture shortfall per level (``{level: {mean, se, sd, n, pooled}}``,
    bps; :func:`models.fills.observations.capture_shortfall`) for ``asset``; None for a
    fit stored without it or an asset with fewer than 2 fills of known capture."""
    doc = json.loads(idata.attrs.get("capture_shortfall", "{}"))
    return doc.get(asset if asset is not None else _assets(idata)[0])


def summarize(idata, asset: str | None = None) -> dict[str, Any]:
    """:func:`summary_draws` moment-matched: a gamma per hazard, a normal per markout mean;
    and, where the fit has it, ``capture_shortfall_bps[level]``: a normal of mean the
    plug-in shortfall, sd its standard error and ``obs_sigma`` the sd of single fills
    (:func:`fitted_shortfall`; not moment-matched, there are no draws)."""
    from models.export import gamma_from_draws, normal_from_draws

    d = summary_draws(idata, asset)["fills"]

    def walk(t, fn):
        return {k: walk(v, fn) if isinstance(v, dict) else fn(v) for k, v in t.items()}

    out = {"hazard": walk(d["hazard"], gamma_from_draws), "markout_bps": walk(d["markout_bps"], normal_from_draws)}
    cs = fitted_shortfall(idata, asset)
    if cs is not None:
        out["capture_shortfall_bps"] = {
            lv: {"family": "normal", "mu": c["mean"], "sigma": max(c["se"], 1e-9),
                 **({"obs_sigma": c["sd"]} if c["sd"] > 0 else {})} for lv, c in cs.items()}
    return {"fills": out}


# =========================================================================== held-out
def heldout_lpd(idata, obs: FillsObs, asset: str | None = None, *, max_draws: int | None = 400) -> dict[str, Any]:
    """Log predictive density of held-out queue orders, one term per order as in the fit's
    ``log_likelihood`` (survival and markouts, mixed over the regime probabilities)."""
    from models.sampling import predictive_density

    if obs.n_assets != 1:
        raise ValueError("heldout_lpd takes the observations of one asset")
    cfg = config_of(idata)
    P = posterior_params(idata, asset or obs.assets[0], max_draws)
    d = design(obs, cfg)
    d = {**d, "asset": np.zeros(obs.n_orders, np.int64)}
    student = cfg.markout_likelihood == "student_t"
    ll = np.stack([order_loglik(NP, {k: v[s] for k, v in P.items()}, d, student, cfg.markout_zero_mass)
                   for s in range(len(P["coef"]))])
    return predictive_density(ll, unit="queue orders")


# =========================================================================== fill probability
def fill_probability(P: dict[str, np.ndarray], obs: FillsObs, cuts_s, tau_s: float) -> np.ndarray:
    """(S, n) probability that each order fills within ``tau_s`` s absent censoring,
    ``sum_r p_ir (1 - exp(-H_i(tau | r)))`` with the piecewise cumulative hazard."""
    c = np.asarray(cuts_s, dtype=float)
    hi = np.append(c[1:], np.inf)
    expo = np.clip(tau_s - c, 0.0, hi - c)                          # (P,)
    G = np.exp(P["log_ratio"]) @ expo                               # (S,)
    X = np.column_stack([np.log1p(obs.queue_trades), obs.level.astype(float), obs.signed_imbalance])
    eta = P["coef"] @ X.T                                           # (S, n)
    lh = P["log_hazard"][:, 0, :]                                   # (S, 4)
    Hc = np.exp(lh[:, None, :] + eta[:, :, None]) * G[:, None, None]
    return np.einsum("snr,nr->sn", 1.0 - np.exp(-Hc), obs.regime_prob)


def _km_fill(dur: np.ndarray, filled: np.ndarray, tau: float) -> tuple[float, float]:
    """Kaplan-Meier probability of a fill by ``tau`` (other outcomes censor) and its
    Greenwood standard error."""
    order = np.argsort(dur, kind="stable")
    t, e = dur[order], filled[order]
    n = len(t)
    at_risk = n - np.arange(n)
    use = (t <= tau) & e
    s = np.prod(1.0 - 1.0 / at_risk[use]) if use.any() else 1.0
    g = np.sum(1.0 / (at_risk[use] * np.maximum(at_risk[use] - 1, 1))) if use.any() else 0.0
    return 1.0 - s, s * np.sqrt(g)


def reliability(idata, obs: FillsObs, tau_s: float | None = None, asset: str | None = None,
                max_draws: int = 200):
    """Fill probability within ``tau_s`` (default half the re-post interval) by level and
    queue bucket: predicted (posterior mean of the orders' model probabilities, and its
    90 % band) against observed (Kaplan-Meier, other outcomes censoring; Greenwood se).
    A DataFrame with ``level``, ``queue_bucket``, ``n``, ``predicted``, ``lo``, ``hi``,
    ``observed``, ``observed_se``; ``attrs["tau_s"]``."""
    import pandas as pd

    cfg = config_of(idata)
    tau = float(tau_s if tau_s is not None else 0.5 * cfg.observation.repost_interval_s)
    o = obs.select(asset) if (asset is not None and obs.n_assets > 1) else obs
    P = posterior_params(idata, asset or o.assets[0], max_draws)
    p = fill_probability(P, o, cfg.cuts_s(), tau)
    bucket = np.searchsorted(np.asarray(QUEUE_BUCKETS), o.queue_trades, side="right") - 1
    rows = []
    for lv in np.unique(o.level):
        for b, bn in enumerate(QUEUE_BUCKET_LABELS):
            sel = (o.level == lv) & (bucket == b)
            if sel.sum() < 5:
                continue
            pm_ = p[:, sel].mean(axis=1)
            obs_p, se = _km_fill(o.duration_s[sel], o.filled[sel], tau)
            rows.append({"level": int(lv), "queue_bucket": bn, "n": int(sel.sum()), "predicted": float(pm_.mean()),
                         "lo": float(np.quantile(pm_, 0.05)), "hi": float(np.quantile(pm_, 0.95)),
                         "observed": float(obs_p), "observed_se": float(se)})
    df = pd.DataFrame(rows)
    df.attrs["tau_s"] = tau
    return df


def reliability_plot(idata, obs: FillsObs, path: str | Path, tau_s: float | None = None) -> Path:
    """The reliability diagram of :func:`reliability` as a PNG: observed against predicted
    fill probability within tau, one point per (level, queue bucket) with the observed
    +/- 2 se bar and the predicted 90 % band, the diagonal for reference."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    df = reliability(idata, obs, tau_s)
    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
    for lv, g in df.groupby("level") if len(df) else []:
        ax.errorbar(g["predicted"], g["observed"], yerr=2 * g["observed_se"],
                    xerr=[g["predicted"] - g["lo"], g["hi"] - g["predicted"]], fmt="o", ms=4, capsize=2,
                    label=f"level {lv}")
        for _, r in g.iterrows():
            ax.annotate(r["queue_bucket"], (r["predicted"], r["observed"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
    hi = max(0.05, float(df[["predicted", "observed"]].to_numpy().max()) * 1.1) if len(df) else 1.0
    ax.set_xlim(0, min(1, hi))
    ax.set_ylim(0, min(1, hi))
    ax.set_xlabel(f"predicted P(fill within {df.attrs.get('tau_s', 0):g} s)")
    ax.set_ylabel("observed (Kaplan-Meier)")
    ax.set_title("fills: reliability by level and queue bucket (median trades)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
