"""Independent kernel estimates for the bivariate (buy/sell) Hawkes process of
market-order arrivals: a nonparametric EM histogram kernel and a sum-of-exponentials
maximum likelihood, the references the project's Hawkes fit is measured against.

    uv run python benchmarks/hawkes_nonparametric.py                  # 5 datasets, M = 1..4
    uv run python benchmarks/hawkes_nonparametric.py --datasets amzn,goog --models grid8,M=5,M=6
    uv run python benchmarks/hawkes_nonparametric.py --report         # print the saved table

The estimators (``benchmarks/hawkes_kernel_estimators.py``) are written with NumPy/SciPy
only, independently of ``models/hawkes``; the arrivals come from the project's loaders
(:func:`models.data.observations.arrivals`, as ``mmcal fit --model hawkes`` extracts
them). Per dataset: the EM kernel on the whole window; the MLE of each model on the first
70 % of the observed time; its held-out log-likelihood per event and KS D on the rest.
Results: ``artifacts/benchmarks/hawkes_nonparametric.json`` and one kernel plot per
dataset, ``artifacts/benchmarks/hawkes_kernel_<dataset>.png``. Model, for target side ``s`` and source side ``s'``
(0 buy, 1 sell; the aggressor), constant baselines::

    lambda_s(t) = mu_s + sum_{j: t_j < t} phi_{s s_j}(t - t_j)

* EM histogram kernel (Marsan & Lengline 2008, JGR 113 B02302; Lewis & Mohler 2011,
  J. Nonparametric Stat.): ``phi_{ss'}`` piecewise constant on bins of the lag
  (``[0, 100 us)`` then log-spaced to 100 s); E-step = each event's probability of
  being triggered by each earlier event or by the baseline, M-step = responsibilities
  per (target, source, bin) over the exposure ``sum_j |bin cap [0, T - t_j]|``
  (edge-corrected). Events are summarised by their counts of earlier events per
  (source side, lag bin), so an iteration costs O(N x bins).
* Sum-of-exponentials MLE: ``phi_{ss'}(t) = sum_m n^m_{ss'} beta_m exp(-beta_m t)``,
  log-likelihood of Daley & Vere-Jones (2003, eq. 7.1.2) evaluated with the exponential
  recursion of Ozaki (1979) in blocks (exact; O(N x M)), analytic gradient, L-BFGS-B.
* Time-rescaling residuals (Brown, Barbieri, Ventura, Kass & Frank 2002, Neural Comput.
  14: 325-346): ``Lambda_s(t_k) - Lambda_s(t_{k-1})`` between consecutive side-``s``
  events are Exp(1) under the model; KS statistic D against Exp(1).
* Held-out KS with the baselines refitted on the held-out window (kernel held): tells a
  kernel misfit from a drift of the arrival rate.

Ties (events at the same timestamp) do not excite each other (``t_j < t`` strictly).
Recording gaps: the stretches between them are fitted as independent windows (each
starts with no history). Method notes: docs/models/hawkes_kernel_estimates.md; numbers:
benchmarks/README.md ("Hawkes kernel: nonparametric and multi-exponential references").
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from scipy import stats

from hawkes_kernel_estimators import (FIXED_GRID, Segment, default_starts, fit_em, fit_mle,
                                      refit_baseline_after, rescaled_residuals, split, total_loglik)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "artifacts" / "benchmarks"
DATA = ROOT / ".." / "shared" / "data"
DATASETS = {
    "amzn": ("lobster", "lobster/LOBSTER_SampleFile_AMZN_2012-06-21_1.zip", None),
    "goog": ("lobster", "lobster/LOBSTER_SampleFile_GOOG_2012-06-21_1.zip", None),
    "aapl": ("lobster", "lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip", None),
    "hl-btc": ("hyperliquid", "hyperliquid/recorder_2025-09-04", "BTC"),
    "hl-eth": ("hyperliquid", "hyperliquid/recorder_2025-12-10_ETH", "ETH"),
}


# =========================================================================== real data
def load_segments(name: str) -> tuple[list[Segment], dict]:
    """Arrivals of a dataset (:func:`models.data.observations.arrivals`: one per sweep),
    window from the first quote to the data's end, split at the recording gaps of
    :func:`models.data.gaps.find_gaps` into independent stretches; with the timestamp
    statistics."""
    from models.data.gaps import find_gaps, observed_stretches
    from models.data.loaders import load
    from models.data.observations import arrivals

    source, rel, asset = DATASETS[name]
    m = load(source, DATA / rel, asset)
    arr = arrivals(m)
    ts = arr["ts"].to_numpy(np.int64)
    side = np.where(arr["side"].to_numpy() > 0, 0, 1).astype(np.int8)
    t0, tE = int(m.quotes["ts"].to_numpy(np.int64)[0]), int(m.end_ns)
    gaps = find_gaps(m)
    a, b = observed_stretches(gaps, t0, tE)
    segs = []
    for x, y in zip(a, b):
        k = (ts >= x) & (ts <= y)
        segs.append(Segment((ts[k] - x) / 1e9, side[k], (y - x) / 1e9))
    raw = np.unique(m.trades["ts"].to_numpy(np.int64))
    dts = np.diff(ts)
    same = np.concatenate([np.diff(ts[side == s]) for s in (0, 1)])
    info = {"arrivals": int(sum(len(s.t) for s in segs)), "observed_s": float(sum(s.T for s in segs)),
            "gaps_s": [float(g) for g in gaps["length_s"]],
            "min_positive_trade_dt_ns": int(np.diff(raw)[np.diff(raw) > 0].min()),
            "share_ts_whole_us": float(np.mean(raw % 1000 == 0)),
            "share_ts_whole_ms": float(np.mean(raw % 1_000_000 == 0)),
            "share_gaps_below_1ms": float(np.mean(dts < 1e6)),
            "share_same_side_gaps_below_1ms": float(np.mean(same < 1e6)),
            "share_same_side_gaps_below_100us": float(np.mean(same < 1e5)),
            "share_arrivals_tied_opposite": float(np.mean(np.isin(ts, ts[1:][dts == 0])))}
    return segs, info


def _kernel(p: dict, lag: np.ndarray) -> np.ndarray:
    """(2, 2, len(lag)) ``phi_{ts}(lag)`` of a sum-of-exponentials fit."""
    return np.einsum("mts,mk->tsk", p["alpha"], p["beta"][:, None] * np.exp(-p["beta"][:, None] * lag[None]))


GRIDS = {"grid6": FIXED_GRID, "grid8": (1e4, 1e3, 1e2, 10.0, 1.0, 0.1, 0.01, 1e-3)}
DEFAULT_MODELS = ("poisson", "grid6", "M=1", "M=2", "M=3", "M=4")


def _row_params(r: dict) -> dict:
    return {k: np.asarray(r[k], float) for k in ("mu", "alpha", "beta")}


def evaluate(segs: list[Segment], models=DEFAULT_MODELS, frac: float = 0.7, old: dict | None = None) -> dict:
    """EM kernel on the whole window; per model (``poisson``, a fixed grid of
    :data:`GRIDS` with free weights, ``M=k`` free decays) the MLE on the first ``frac``
    of the observed time, held-out ll per event and KS D per side on the rest. Rows of
    ``old`` (a saved result) that ``models`` does not name are kept; ``M=k`` starts from
    the ``M=k-1`` fit, this run's or the saved one."""
    t0 = time.time()
    if old is not None and "em" in old:
        res = {"em": old["em"]}
    else:
        em = fit_em(segs)
        w = np.diff(em["edges"])
        mass = np.einsum("tsk,k->k", em["phi"], w)
        hi = em["edges"][1:]
        res = {"em": {"n": em["n"].tolist(), "radius": em["radius"], "mu": em["mu"].tolist(), "ll": em["ll"],
                      "iters": em["iters"], "edges": em["edges"].tolist(), "phi": em["phi"].tolist(),
                      "mass_below_1ms": float(mass[hi <= 1e-3].sum()),
                      "mass_1ms_1s": float(mass[(hi > 1e-3) & (hi <= 1.0)].sum()),
                      "mass_1s_100s": float(mass[hi > 1.0].sum()), "seconds": time.time() - t0}}
    train, cut = split(segs, frac)
    n_tr = sum(len(s.t) for s in train)
    n_te = sum(len(s.t) for s in segs) - n_tr
    T_tr = sum(s.T for s in train)
    rate = np.array([sum(np.sum(s.side == k) for s in train) for k in (0, 1)]) / T_tr
    rows = {r["model"]: r for r in (old or {}).get("rows", [])}

    def saved(label):
        r = rows.get(label)
        return None if r is None else {**_row_params(r), "n": np.asarray(r["n"])}

    for label in models:
        t1 = time.time()
        if label == "poisson":
            p = {"mu": rate, "alpha": np.zeros((1, 2, 2)), "beta": np.ones(1), "n": np.zeros((2, 2)), "k": 2,
                 "radius": 0.0, "converged": True, "nit": 0}
            p["ll"] = total_loglik(train, p)
        elif label in GRIDS:
            fb = GRIDS[label]
            p = fit_mle(train, len(fb), [{"mu": 0.5 * rate, "alpha": np.full((len(fb), 2, 2), 0.05), "beta": fb}],
                        fixed_beta=fb)
        else:
            M = int(label.split("=")[1])
            p = fit_mle(train, M, default_starts(train, M, saved(f"M={M - 1}"), saved("grid6")))
        held = (total_loglik(segs, p) - total_loglik(train, p)) / n_te
        ks, ks_in, ks_mu, mu2 = ks_stats(segs, train, p, cut)
        rows[label] = {"model": label, "k": p["k"], "ll_train": p["ll"], "aic": 2 * p["k"] - 2 * p["ll"],
                       "bic": p["k"] * np.log(n_tr) - 2 * p["ll"], "heldout_ll_per_event": held,
                       "ks_d": [float(k.statistic) for k in ks], "ks_p": [float(k.pvalue) for k in ks],
                       "ks_d_train": [float(k.statistic) for k in ks_in],
                       "ks_d_mu_refit": [float(k.statistic) for k in ks_mu], "mu_heldout": mu2.tolist(),
                       "radius": p["radius"], "n": np.asarray(p["n"]).tolist(), "mu": np.asarray(p["mu"]).tolist(),
                       "beta": np.asarray(p["beta"]).tolist(), "alpha": np.asarray(p["alpha"]).tolist(),
                       "converged": p["converged"], "nit": p["nit"], "seconds": time.time() - t1,
                       "load": os.getloadavg()[0]}
        print(f"  {label:8s} ll {p['ll']:.1f} held {held:.4f} KS {ks[0].statistic:.3f}/{ks[1].statistic:.3f} "
              f"radius {p['radius']:.3f} beta {np.round(p['beta'], 3)} ({time.time() - t1:.0f} s)", flush=True)
    order = {m: i for i, m in enumerate(("poisson", *GRIDS, *(f"M={k}" for k in range(1, 10))))}
    out = sorted(rows.values(), key=lambda r: order.get(r["model"], 99))
    free = [r for r in out if r["model"].startswith("M=")]
    res.update(rows=out, n_train=n_tr, n_test=n_te, cut_s=cut,
               best_heldout=max(free, key=lambda r: r["heldout_ll_per_event"])["model"],
               best_bic=min(free, key=lambda r: r["bic"])["model"])
    return res


def ks_stats(segs, train, p, cut):
    """KS tests against Exp(1) per side: the held-out residuals (after ``cut``), the
    in-sample ones (the training window), and the held-out ones with the baselines refitted
    on the held-out window (kernel held; :func:`refit_baseline_after`) with those baselines."""
    held = [stats.kstest(x, "expon") for x in rescaled_residuals(segs, p, after=cut)]
    mu2 = refit_baseline_after(segs, p, cut)
    refit = [stats.kstest(x, "expon") for x in rescaled_residuals(segs, p, after=cut, mu_after=mu2)]
    return held, [stats.kstest(x, "expon") for x in rescaled_residuals(train, p)], refit, mu2


def refresh_ks(name: str, res: dict) -> None:
    """Recompute the KS columns of a saved result from its parameters (no refit)."""
    segs, _ = load_segments(name)
    train, cut = split(segs)
    for r in res["rows"]:
        p = {k: np.asarray(r[k]) for k in ("mu", "alpha", "beta")}
        held, ks_in, ks_mu, mu2 = ks_stats(segs, train, p, cut)
        r["ks_d"], r["ks_p"] = [float(k.statistic) for k in held], [float(k.pvalue) for k in held]
        r["ks_d_train"] = [float(k.statistic) for k in ks_in]
        r["ks_d_mu_refit"], r["mu_heldout"] = [float(k.statistic) for k in ks_mu], mu2.tolist()


def plot(name: str, res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e = np.asarray(res["em"]["edges"])
    phi = np.asarray(res["em"]["phi"])
    mid = np.sqrt(e[1:] * np.maximum(e[:-1], e[1] / 10))
    lag = np.logspace(-5, 2.5, 400)
    best = next(r for r in res["rows"] if r["model"] == res["best_heldout"])
    p = {k: np.asarray(best[k]) for k in ("alpha", "beta")}
    fig, ax = plt.subplots(2, 2, figsize=(9, 7), sharex=True, sharey=True)
    names = ("buy", "sell")
    for t in (0, 1):
        for s in (0, 1):
            a = ax[t, s]
            y = phi[t, s]
            a.loglog(mid[y > 0], y[y > 0], "o", ms=4, label="EM histogram")
            a.loglog(lag, _kernel(p, lag)[t, s], "-", label=f"MLE {res['best_heldout']}")
            a.set_title(f"{names[s]} -> {names[t]}: n = {res['em']['n'][t][s]:.2f} (EM), {best['n'][t][s]:.2f}")
            a.grid(True, which="major", alpha=0.3)
    pos = phi[phi > 1e-12]
    ax[0, 0].set_ylim(0.3 * pos.min() if pos.size else 1e-6, 3 * max(pos.max() if pos.size else 1, 1e-6))
    ax[0, 0].set_xlim(1e-5, 300)
    for a in ax[1]:
        a.set_xlabel("lag (s)")
    for a in ax[:, 0]:
        a.set_ylabel("phi (1/s)")
    ax[0, 0].legend()
    fig.suptitle(f"{name}: Hawkes kernel, EM histogram vs sum-of-exponentials MLE")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(doc: dict) -> str:
    lines = []
    for name, d in doc.items():
        if name.startswith("_"):
            continue
        i, em = d["info"], d["em"]
        lines.append(f"\n{name}: {i['arrivals']} arrivals, {i['observed_s']:.0f} s observed, gaps {i['gaps_s']}; "
                     f"min positive trade dt {i['min_positive_trade_dt_ns']} ns, ts whole ms "
                     f"{i['share_ts_whole_ms']:.3f}; gaps < 1 ms {i['share_gaps_below_1ms']:.3f} (same side "
                     f"{i['share_same_side_gaps_below_1ms']:.3f}, < 100 us {i['share_same_side_gaps_below_100us']:.3f})")
        lines.append(f"EM: n = {np.round(em['n'], 3).tolist()}, radius {em['radius']:.3f}, mass <1ms / 1ms-1s / "
                     f"1-100s = {em['mass_below_1ms']:.3f} / {em['mass_1ms_1s']:.3f} / {em['mass_1s_100s']:.3f} "
                     f"({em['iters']} iterations)")
        lines.append("| model | k | ll (train) | BIC | held-out ll/event | KS D buy | KS D sell | in-sample KS D "
                     "| held-out KS D, mu refit | radius | decays (1/s) |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in d["rows"]:
            lines.append(f"| {r['model']} | {r['k']} | {r['ll_train']:.1f} | {r['bic']:.1f} | "
                         f"{r['heldout_ll_per_event']:.4f} | {r['ks_d'][0]:.3f} | {r['ks_d'][1]:.3f} | "
                         f"{'/'.join(f'{x:.3f}' for x in r.get('ks_d_train', []))} | "
                         f"{'/'.join(f'{x:.3f}' for x in r.get('ks_d_mu_refit', []))} | "
                         f"{r['radius']:.3f} | {', '.join(f'{b:.3g}' for b in r['beta']) if r['k'] > 2 else '-'} |")
        lines.append(f"M by held-out ll: {d['best_heldout']}; by BIC: {d['best_bic']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS),
                    help="poisson, grid6, grid8 (fixed decays, free weights), M=k (k free decays); "
                    "saved rows of other models are kept")
    ap.add_argument("--report", action="store_true", help="print the saved results and exit")
    a = ap.parse_args(argv)
    path = OUT / "hawkes_nonparametric.json"
    doc = json.loads(path.read_text()) if path.exists() else {}
    if a.report:
        stale = [n for n in doc if any("ks_d_mu_refit" not in r for r in doc[n]["rows"])]
        for n in stale:
            refresh_ks(n, doc[n])
        if stale:
            path.write_text(json.dumps(doc, indent=1, default=float))
        print(report(doc))
        for name in doc:
            plot(name, doc[name], OUT / f"hawkes_kernel_{name}.png")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    for name in a.datasets.split(","):
        t0 = time.time()
        print(f"{name}: load {os.getloadavg()[0]:.1f}", flush=True)
        segs, info = load_segments(name)
        doc = json.loads(path.read_text()) if path.exists() else {}    # another run may have written
        res = evaluate(segs, a.models.split(","), old=doc.get(name))
        res["info"] = info
        res["seconds"] = time.time() - t0
        res["load_end"] = os.getloadavg()
        doc = json.loads(path.read_text()) if path.exists() else {}
        doc[name] = res
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=float))
        os.replace(tmp, path)
        plot(name, res, OUT / f"hawkes_kernel_{name}.png")
        print(report({name: res}), f"\n({res['seconds']:.0f} s, load at end {res['load_end'][0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
