"""Fills out of sample: the ``fills`` survival model (queue orders) vs today's model of
fills, kappa's exponential depth law, both fitted on the first half of each real dataset
and scored on the second half on the *same* held-out queue orders with the *same* regime
probabilities (issue 15 item 4, fills half; the alpha half is heldout_alpha_floor.py).

    .venv/bin/python benchmarks/heldout_fills.py --datasets aapl --window 0:0.1
    .venv/bin/python benchmarks/heldout_fills.py --report         # the saved results

Per dataset, sequentially: the market read as ``mmcal fit --model fills`` reads it
(:func:`flows.fitting.read_market_for`: books, and LOBSTER's messages for the exact FIFO
queue), cut to ``--window`` (a fraction of the day: a sub-window where the whole day is
too slow here), then split in halves (fit ``0:0.5``, held out ``0.5:1`` of that window,
:class:`models.data.tables.WindowSpec`); the observation rules ``mmcal fit`` chooses on the
fit half (:func:`flows.fitting.observation_config`); per half the EM/MAP regime path of
the regime HMM on its bars (:func:`models.catalog.regime_path`), from which both models'
observations are built (:func:`models.catalog.observations`, as ``catalog.prepare``).

The two hazards of a queue order i (side s, placed at distance delta_i bps from the mid,
regime probabilities p_ir):

* fills: ``h_i(t | r)`` piecewise constant in time since placement, log-linear in queue
  ahead, level and imbalance (:func:`models.fills.order_loglik`, docs/models/fills.md);
* depth law: ``h_i(r) = A[r, s'] exp(-kappa[r, s'] delta_i)`` constant in time, s' the
  aggressor side that fills the order (buy for an ask, sell for a bid): the rate of
  market orders reaching the order's depth (Avellaneda & Stoikov 2008; docs/models/kappa.md).

Only the fill-time part of the fills model is compared: it is fitted on the queue orders
with their markouts masked. With the one-hot EM/MAP regime probabilities its likelihood
factorises into fill time x markouts per order, so the hazard posterior is the one of the
full model; the markout parameters then stay at their priors (not used here).

Scores on the held-out orders (both models, the same orders and regime probabilities):

(a) log predictive density of each order's outcome (fill at t, or censoring at t):
    ``lpd_i = log mean_s sum_r p_ir exp(d_i log h_i(t_i|r,theta_s) - H_i(t_i|r,theta_s))``
    (survival likelihood, Klein & Moeschberger 2003 sec. 3.5; posterior predictive,
    Gelman, Hwang & Vehtari 2014 eq. 3, :func:`models.sampling.predictive_density`),
    summed; the paired difference over orders with its se (Vehtari, Gelman & Gabry 2017);
    and the plug-in ``sum_i log p(y_i | posterior mean)`` (fills: the means of its
    likelihood's coordinates, log hazards, log piece ratios and coefficients; depth law:
    the means of A and kappa).
(b) calibration of ``P(fill within tau)``, tau the re-post interval: the IPCW Brier score
    for censored outcomes (Graf, Schmoor, Sauerbrei & Schumacher 1999: orders filled by
    tau weigh 1/G(t_i-), orders still resting at tau weigh 1/G(tau-), orders censored
    earlier ("away", data end) 0; G the Kaplan-Meier survival of the censoring), the
    reference Brier of the marginal Kaplan-Meier fill rate, and reliability tables:
    bins of predicted probability, and cells level x queue bucket, observed = Kaplan-Meier
    fill probability by tau of the orders in the bin (other outcomes censoring).

Sampler: nutpie, 2 chains x ``--draws`` after as many tuning steps, one fit at a time.
Saved to ``artifacts/benchmarks/heldout_fills.json``. Results: benchmarks/README.md
("fills vs the depth law, held out").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heldout_alpha_floor import DATASETS  # noqa: E402  (the datasets of issue 15 item 4)

PROB_BINS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 1.0)
FILLS_VARS = ["fill_hazard", "fill_piece_ratio", "fill_queue_coef", "fill_level_coef", "fill_imbalance_coef"]
KAPPA_VARS = ["arrival_rate", "kappa", "count_overdispersion"]


# =========================================================================== scoring (tested)
def depth_law_log_hazard(A: np.ndarray, kappa: np.ndarray, side: np.ndarray, depth_bps: np.ndarray
                         ) -> np.ndarray:
    """(S, n, 4) log hazard of each order under the depth law, per draw and regime:
    ``log A[s, r, j] - kappa[s, r, j] delta_i`` (in logs: a steep law underflows far
    from the mid) with ``A``, ``kappa`` (S, 4, 2) over
    (regime, aggressor side ``("buy", "sell")``); j = sell for a bid (side +1), buy for an
    ask (side -1); delta clipped at 0 (an order inside the mid is at depth 0)."""
    j = np.where(np.asarray(side) > 0, 1, 0)
    d = np.maximum(np.asarray(depth_bps, float), 0.0)
    a = np.transpose(A[:, :, j], (0, 2, 1))                       # (S, n, 4)
    k = np.transpose(kappa[:, :, j], (0, 2, 1))
    return np.log(a) - k * d[None, :, None]


def constant_hazard_loglik(log_h: np.ndarray, duration_s: np.ndarray, filled: np.ndarray,
                           regime_prob: np.ndarray) -> np.ndarray:
    """(S, n) log-likelihood of each order's outcome under a hazard constant in time,
    ``log_h`` (S, n, 4) its log per regime, mixed over the regimes:
    ``log sum_r p_ir exp(d_i log h_ir - h_ir t_i)`` (exponential survival likelihood)."""
    from scipy.special import logsumexp

    t = np.asarray(duration_s, float)[None, :, None]
    d = np.asarray(filled, float)[None, :, None]
    ll = d * log_h - np.exp(log_h) * t
    with np.errstate(divide="ignore"):
        logw = np.log(np.asarray(regime_prob, float))        # exact: -inf where p = 0
    return logsumexp(np.where(np.isfinite(logw)[None], ll + logw[None], -np.inf), axis=2)


def constant_hazard_fill_prob(log_h: np.ndarray, regime_prob: np.ndarray, tau_s: float) -> np.ndarray:
    """(S, n) ``P(fill within tau)`` under a constant hazard: ``sum_r p_ir (1 - exp(-h_ir tau))``."""
    return np.einsum("snr,nr->sn", -np.expm1(-np.exp(log_h) * tau_s), regime_prob)


def censoring_weights(duration_s: np.ndarray, filled: np.ndarray, tau_s: float) -> tuple[np.ndarray, np.ndarray]:
    """``(y, w)``: the outcome ``1(filled by tau)`` and the IPCW weight of each order
    (Graf et al. 1999): ``1/G(t_i-)`` if filled at t_i <= tau, ``1/G(tau-)`` if still
    resting at tau (duration >= tau, not filled before), 0 if censored before tau; G the
    Kaplan-Meier survival of the censoring times (fills censor the censoring)."""
    from scipy import stats

    t = np.asarray(duration_s, float)
    f = np.asarray(filled, bool)
    eps = 1e-9 * max(tau_s, 1.0)
    cens = ~f
    if cens.any():
        G = stats.ecdf(stats.CensoredData(uncensored=t[cens], right=t[f])).sf
        g_at = lambda x: np.asarray(G.evaluate(np.asarray(x, float) - eps), float)  # noqa: E731  left limit
    else:
        g_at = lambda x: np.ones_like(np.asarray(x, float))  # noqa: E731
    ev = f & (t <= tau_s)
    rest = (t >= tau_s - eps) & ~ev
    y = ev.astype(float)
    w = np.zeros(len(t))
    if ev.any():
        w[ev] = 1.0 / g_at(t[ev])
    if rest.any():
        w[rest] = 1.0 / g_at(np.full(rest.sum(), tau_s))
    return y, w


def ipcw_brier(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """IPCW Brier score at tau (Graf et al. 1999): ``(1/n) sum_i w_i (y_i - p_i)^2``."""
    return float(np.sum(w * (np.asarray(y) - np.asarray(p)) ** 2) / len(w))


def km_fill(duration_s: np.ndarray, filled: np.ndarray, tau_s: float) -> float:
    """Kaplan-Meier probability of a fill by ``tau_s`` (other outcomes censor)."""
    from scipy import stats

    t = np.asarray(duration_s, float)
    f = np.asarray(filled, bool)
    if not f.any():
        return 0.0
    return float(1.0 - stats.ecdf(stats.CensoredData(uncensored=t[f], right=t[~f])).sf.evaluate(tau_s))


def reliability_rows(pred: dict[str, np.ndarray], y, w, duration_s, filled, tau_s, groups: np.ndarray,
                     labels: list[str]) -> list[dict]:
    """Per group (``groups`` an int label per order, ``labels`` their names): n, each
    model's mean predicted probability and IPCW Brier, and the observed Kaplan-Meier
    fill probability by tau."""
    rows = []
    for g, lab in enumerate(labels):
        m = groups == g
        if m.sum() == 0:
            continue
        r = {"group": lab, "n": int(m.sum()), "fills": int((np.asarray(filled)[m] & (np.asarray(duration_s)[m]
                                                                                     <= tau_s)).sum()),
             "observed": km_fill(np.asarray(duration_s)[m], np.asarray(filled)[m], tau_s)}
        for k, p in pred.items():
            r[f"pred_{k}"] = float(p[m].mean())
            r[f"brier_{k}"] = ipcw_brier(p[m], y[m], w[m])
        rows.append(r)
    return rows


# =========================================================================== fits
def _hazard_only(obs):
    """The queue orders with their markouts masked: the fills likelihood is then the
    fill-time (survival) part alone (module docstring)."""
    return dataclasses.replace(obs, markout_bps=np.full_like(obs.markout_bps, np.nan))


def _param_draws(fidata, kidata, max_draws):
    """Both posteriors' draws, thinned alike: the fills likelihood's parameters
    (:func:`models.fills.posterior_params`) and the depth law's ``A``, ``kappa`` (S, 4, 2)
    from :func:`models.kappa.summary_draws`."""
    from models import fills, kappa
    from models.sampling import thin_index
    from mm_runtime.vocabulary import REGIMES, SIDES

    P = fills.posterior_params(fidata, None, max_draws)
    kd = kappa.summary_draws(kidata)
    A, K = (np.stack([np.stack([np.asarray(kd[n][r][s]) for s in SIDES], axis=-1) for r in REGIMES], axis=1)
            for n in ("arrival_rate", "kappa"))
    idx = thin_index(len(K), max_draws)
    return P, A[idx], K[idx]


def score(fidata, kidata, held, tau_s: float, max_draws: int = 200) -> dict:
    """Both models' scores on the held-out queue orders ``held`` (a FillsObs)."""
    from models import fills
    from models.sampling import paired_difference, predictive_density
    from mm_runtime.vocabulary import QUEUE_BUCKET_LABELS, QUEUE_BUCKETS

    cfg = fills.config_of(fidata)
    P, A, K = _param_draws(fidata, kidata, max_draws)
    h0 = _hazard_only(held)
    d = fills.design(h0, cfg)
    d = {**d, "asset": np.zeros(held.n_orders, np.int64)}
    S = len(P["coef"])
    ll_f = np.stack([fills.order_loglik(fills.NP, {k: v[s] for k, v in P.items()}, d) for s in range(S)])
    h = depth_law_log_hazard(A, K, held.side, held.depth_bps)
    ll_k = constant_hazard_loglik(h, held.duration_s, held.filled, held.regime_prob)
    sc = {"fills": predictive_density(ll_f, unit="queue orders"),
          "depth_law": predictive_density(ll_k, unit="queue orders")}
    # the same number through the model's own held-out score (markouts masked: fill times only)
    pub = fills.heldout_lpd(fidata, h0, max_draws=max_draws)["elpd"]
    if not np.isclose(pub, sc["fills"]["elpd"], rtol=1e-9, atol=1e-6):
        raise RuntimeError(f"fills.heldout_lpd {pub} differs from the fill-time score {sc['fills']['elpd']}")
    # plug-in at the posterior mean of the parameters
    Pm = {k: v.mean(0) for k, v in P.items()}
    plug_f = float(fills.order_loglik(fills.NP, Pm, d).sum())
    hm = depth_law_log_hazard(A.mean(0)[None], K.mean(0)[None], held.side, held.depth_bps)
    plug_k = float(constant_hazard_loglik(hm, held.duration_s, held.filled, held.regime_prob).sum())
    diff = paired_difference(sc["fills"], sc["depth_law"])
    # calibration within tau
    pf = fills.fill_probability(P, held, cfg.cuts_s(), tau_s).mean(0)
    pk = constant_hazard_fill_prob(h, held.regime_prob, tau_s).mean(0)
    y, w = censoring_weights(held.duration_s, held.filled, tau_s)
    base = km_fill(held.duration_s, held.filled, tau_s)
    pred = {"fills": pf, "depth_law": pk}
    lab = [f"[{a:g},{b:g})" for a, b in zip(PROB_BINS, PROB_BINS[1:])]
    by_prob = {}
    for k, p in pred.items():
        bins = np.clip(np.searchsorted(np.asarray(PROB_BINS), p, side="right") - 1, 0, len(lab) - 1)
        by_prob[k] = reliability_rows({k: p}, y, w, held.duration_s, held.filled, tau_s, bins, lab)
    qb = np.searchsorted(np.asarray(QUEUE_BUCKETS), held.queue_trades, side="right") - 1
    levels = sorted(int(v) for v in np.unique(held.level))
    cell = np.array([levels.index(int(lv)) * len(QUEUE_BUCKET_LABELS) + int(b) for lv, b in zip(held.level, qb)])
    cell_lab = [f"L{lv} q{b}" for lv in levels for b in QUEUE_BUCKET_LABELS]
    cells = reliability_rows(pred, y, w, held.duration_s, held.filled, tau_s, cell, cell_lab)
    return {"n": held.n_orders, "fills_by_tau": int(y.sum()), "censored_before_tau": int(np.sum(w == 0)),
            "elpd_fills": sc["fills"]["elpd"], "se_fills": sc["fills"]["se"],
            "elpd_depth_law": sc["depth_law"]["elpd"], "se_depth_law": sc["depth_law"]["se"],
            "elpd_diff": diff["elpd_diff"], "diff_se": diff["se"], "paired": diff["paired"],
            "plugin_fills": plug_f, "plugin_depth_law": plug_k, "draws": S,
            "tau_s": tau_s, "brier_fills": ipcw_brier(pf, y, w), "brier_depth_law": ipcw_brier(pk, y, w),
            "brier_base": ipcw_brier(np.full(len(y), base), y, w), "km_fill": base,
            "mean_pred_fills": float(pf.mean()), "mean_pred_depth_law": float(pk.mean()),
            "by_prob": by_prob, "cells": cells}


def run(ds: str, window: str, draws: int, max_draws: int) -> dict:
    from flows.fitting import observation_config, read_market_for
    from models import catalog
    from models.data.observations import volatility_bars
    from models.data.tables import WindowSpec
    from models.sampling import SamplerConfig, diagnostics

    source, path, asset = DATASETS[ds]
    t0 = time.perf_counter()
    market = read_market_for(("fills",), source, Path(path), asset)
    doc = {"dataset": ds, "asset": str(market.asset), "window": window, "load": os.getloadavg()[0]}
    why = catalog.skip_reason("fills", market.row_counts(), source)
    if why is not None:
        doc["skipped"] = f"{path}: {why}"
        print(f"[{ds}] {doc['skipped']}", file=sys.stderr, flush=True)
        return doc
    if window:
        market = WindowSpec.parse(window).cut(market, "--window")
    halves = {h: WindowSpec.parse(w).cut(market) for h, w in (("fit", "0:0.5"), ("held", "0.5:1"))}
    cfg = observation_config(halves["fit"])
    obs = {}
    for h, m in halves.items():
        bars = volatility_bars(m, cfg)
        path_r = catalog.regime_path(m, "em", bars=bars, config=cfg)
        obs[h] = {k: catalog.observations(k, m, path_r, config=cfg, bars=bars) for k in ("kappa", "fills")}
    fo, ho = obs["fit"]["fills"], obs["held"]["fills"]
    doc.update(seconds=(market.end_ns - market.start_ns) / 1e9, bar_seconds=cfg.bar_seconds,
               repost_interval_s=cfg.repost_interval_s, queue_source=fo.meta.get("queue_source"),
               n_fit=fo.n_orders, fills_fit=fo.n_fills, n_held=ho.n_orders, fills_held=ho.n_fills,
               arrivals_fit=int(catalog.n_obs("kappa", obs["fit"]["kappa"])),
               outcomes_held=ho.meta.get("outcomes"), levels=sorted(int(v) for v in np.unique(ho.level)),
               prep_s=time.perf_counter() - t0)
    print(f"[{ds}] {market.asset} {doc['seconds']:.0f} s: {fo.n_orders} fit / {ho.n_orders} held-out queue orders "
          f"({fo.n_fills} / {ho.n_fills} filled), {doc['arrivals_fit']} fit arrivals, bars {cfg.bar_seconds:g} s "
          f"({doc['prep_s']:.0f} s)", file=sys.stderr, flush=True)
    sc = SamplerConfig(sampler="nutpie", chains=2, cores=1, draws=draws, tune=draws, seed=1, progressbar=False,
                       log_likelihood=False)
    fits = {}
    for name, o, var in (("fills", _hazard_only(fo), FILLS_VARS), ("kappa", obs["fit"]["kappa"], KAPPA_VARS)):
        t1 = time.perf_counter()
        idata = catalog.fit(name, o, sc, catalog.model_config(name, None, cfg))
        dg = diagnostics(idata, [v for v in var if v in idata.posterior])
        fits[name] = idata
        doc[f"fit_{name}"] = {"wall_s": time.perf_counter() - t1, "r_hat_max": dg["r_hat_max"],
                              "r_hat_worst": dg.get("r_hat_worst"), "ess_bulk_min": dg["ess_bulk_min"],
                              "ess_tail_min": dg["ess_tail_min"], "divergences": dg["divergences"],
                              "load": os.getloadavg()[0]}
        print(f"[{ds}] {name}: r_hat {dg['r_hat_max']:.3f}, ess {dg['ess_bulk_min']:.0f}, div {dg['divergences']} "
              f"({doc[f'fit_{name}']['wall_s']:.0f} s)", file=sys.stderr, flush=True)
    doc["score"] = score(fits["fills"], fits["kappa"], ho, float(cfg.repost_interval_s), max_draws)
    doc["sampler"] = f"nutpie, 2 chains x {draws} draws (+{draws} tune)"
    doc["wall_s"] = time.perf_counter() - t0
    return doc


# =========================================================================== report
def report(doc: dict) -> None:
    print("| dataset | window (s) | queue | fit / held-out orders (fills) | elpd fills | elpd depth law "
          "| diff ± se | plug-in fills / depth | Brier fills / depth / base | P(fill≤τ) KM / fills / depth "
          "| R-hat, ESS fills; kappa | wall s |")
    print("|" + "---|" * 12)
    for ds, r in doc.items():
        if "skipped" in r:
            print(f"| {ds} | – | no books | – | – | – | – | – | – | – | – | – |")
            continue
        s, f, k = r["score"], r["fit_fills"], r["fit_kappa"]
        print(f"| {ds} | {r['window'] or 'all'} ({r['seconds']:.0f}) | {r['queue_source']} | {r['n_fit']:,} "
              f"({r['fills_fit']}) / {r['n_held']:,} ({r['fills_held']}) | {s['elpd_fills']:.1f} "
              f"| {s['elpd_depth_law']:.1f} | {s['elpd_diff']:+.1f} ± {s['diff_se']:.1f} "
              f"| {s['plugin_fills']:.1f} / {s['plugin_depth_law']:.1f} | {s['brier_fills']:.4f} / "
              f"{s['brier_depth_law']:.4f} / {s['brier_base']:.4f} | {s['km_fill']:.3f} / {s['mean_pred_fills']:.3f}"
              f" / {s['mean_pred_depth_law']:.3f} | {f['r_hat_max']:.3f}, {f['ess_bulk_min']:.0f}; "
              f"{k['r_hat_max']:.3f}, {k['ess_bulk_min']:.0f} | {r['wall_s']:.0f} |")
    for ds, r in doc.items():
        if "skipped" in r:
            continue
        s = r["score"]
        print(f"\n{ds}: reliability by predicted-probability bin (n, observed KM, mean predicted)")
        for k, rows in s["by_prob"].items():
            print(f"  {k}: " + "; ".join(f"{x['group']} n={x['n']} obs {x['observed']:.3f} pred "
                                         f"{x['pred_' + k]:.3f}" for x in rows))
        lv = {}
        for x in s["cells"]:
            lv.setdefault(x["group"].split()[0], []).append(x)
        print(f"{ds}: by level, n-weighted over the queue buckets (n, observed KM, pred fills, pred depth law): "
              + "; ".join(f"{k} n={sum(x['n'] for x in v)} " + " ".join(
                  f"{sum(x['n'] * x[c] for x in v) / sum(x['n'] for x in v):.3f}"
                  for c in ("observed", "pred_fills", "pred_depth_law")) for k, v in lv.items()))
        print(f"{ds}: by level x queue bucket (n, fills<=tau, observed KM | pred fills, depth | Brier fills, depth)")
        for x in s["cells"]:
            print(f"  {x['group']} n={x['n']} f={x['fills']} obs {x['observed']:.3f} | {x['pred_fills']:.3f} "
                  f"{x['pred_depth_law']:.3f} | {x['brier_fills']:.4f} {x['brier_depth_law']:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--window", default="", help="part of each dataset to use, split in halves (WindowSpec text)")
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--max-draws", type=int, default=200, help="posterior draws used in the scores")
    ap.add_argument("--out", default="artifacts/benchmarks/heldout_fills.json")
    ap.add_argument("--report", action="store_true", help="print the saved results")
    a = ap.parse_args()
    out = Path(a.out)
    doc = json.loads(out.read_text()) if out.exists() else {}
    if not a.report:
        for ds in a.datasets.split(","):
            if ds not in DATASETS:
                raise SystemExit(f"--datasets: unknown dataset {ds!r}; one of {', '.join(DATASETS)}")
            doc[ds] = run(ds, a.window, a.draws, a.max_draws)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(doc, indent=1, default=float))
    report(doc)


if __name__ == "__main__":
    main()
