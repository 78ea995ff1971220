"""The historical calibrator's method-of-moments Hawkes and kappa next to the Bayesian
posteriors, on the same observations (issue #7 item 3's evidence).

    .venv/bin/python -P benchmarks/historical_vs_bayes.py            # synthetic + Hyperliquid BTC + AAPL
    .venv/bin/python -P benchmarks/historical_vs_bayes.py --quick    # shorter synthetic, fewer draws, no AAPL
    .venv/bin/python -P benchmarks/historical_vs_bayes.py --report   # re-print the saved results

Per dataset, both methods get the same arrivals and the same regime path:

* ``syn-busy``: the synthetic market with :meth:`SyntheticConfig.busy` (n = [[0.3,
  0.1], [0.1, 0.3]], beta = 1/s; ~4.8k arrivals per hour), 2 h (``--quick``: 1 h),
  regimes = the true path; the truth is printed too.
* ``hl-btc``, ``aapl``: the real datasets of ``benchmarks/real_data_fits.py``
  (Hyperliquid BTC perp, 35 min; LOBSTER AAPL_1, one day), volatility bars of the
  automatic length and regimes = the regime HMM's EM (MAP) path
  (:func:`models.regime.em_fit`, the smoothed probabilities' argmax; the calibrate
  flow uses the posterior's path, which costs a full regime fit: ~12 min on AAPL).

The historical side is :func:`models.historical.kappa` and
:func:`models.historical.hawkes` (90 % intervals from the exact chi-square law and
the block jackknife); the Bayesian side :func:`models.kappa.fit` and
:func:`models.hawkes.fit` with nutpie, 2 chains x (500 tune + 500 draws)
(``--quick``: 300 + 300), posterior mean and central 90 % interval. For the
Hawkes baseline both report the per-side mean over regimes weighted by the time
spent in each (the registry's ``hawkes_mu``); from the posterior it is computed
per draw. The MoM Hawkes fit is repeated with its shortest window 10x and 100x
longer, to show which time scales drive it. Results:
``benchmarks/results/historical_vs_bayes.json`` (rewritten after every dataset).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REGIMES = ("low", "normal", "high", "extreme")
SIDES = ("buy", "sell")


def _real_data_fits():
    """benchmarks/real_data_fits.py as a module (its DATASETS and _save), whatever sys.path is."""
    spec = importlib.util.spec_from_file_location("real_data_fits", HERE / "real_data_fits.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _market(ds: str, quick: bool):
    from models.data import loaders
    from models.data import observations as ob
    from models.data.synthetic import SyntheticConfig, simulate_market

    if ds == "syn-busy":
        m = simulate_market(7, 3600.0 if quick else 7200.0, SyntheticConfig.busy())
        bars = ob.volatility_bars(m)
        return m, bars, np.asarray(m.truth["regime_path"])[: len(bars)], "true path"
    from models import regime

    source, path, asset = _real_data_fits().DATASETS[ds]
    m = loaders.load(source, HERE.parent / path, asset)
    cfg = ob.auto_bar_config(m)
    bars = ob.volatility_bars(m, cfg)
    robs = regime.observations(m, config=cfg, bars=bars)
    em = regime.em_fit(robs, regime.RegimeConfig(observation=cfg))
    return m, bars, np.argmax(em["smoothed"], axis=1).astype(np.int8), f"EM path, {cfg.bar_seconds:g} s bars"


def _q(x: np.ndarray) -> dict:
    x = np.asarray(x, dtype=float)
    lo, hi = np.quantile(x, [0.05, 0.95])
    return {"mean": float(x.mean()), "sd": float(x.std(ddof=1)), "ci": [float(lo), float(hi)]}


def _e(est) -> dict:
    return {"mean": est.value, "sd": est.se, "ci": list(est.ci)}


def _draws(idata, name: str, *dims: str) -> np.ndarray:
    da = idata.posterior[name].transpose("chain", "draw", *dims)
    return np.asarray(da.values, dtype=float).reshape((-1,) + da.shape[2:])


def run_one(ds: str, quick: bool) -> dict:
    from models import hawkes as hk
    from models import historical as H
    from models import kappa as kp
    from models.sampling import SamplerConfig, diagnostics

    sc = SamplerConfig(draws=300 if quick else 500, tune=300 if quick else 500, chains=2, progressbar=False)
    t0 = time.perf_counter()
    m, bars, path, how = _market(ds, quick)
    out: dict = {"dataset": ds, "regimes": how, "duration_s": m.duration_s, "sampler": sc.model_dump(mode="json")}
    kobs = kp.observations(m, path, bars=bars)
    hobs = hk.observations(m, path, bars=bars)
    out["n_arrivals"] = int(hobs.n_events)
    print(f"[{ds}] {m.duration_s:.0f} s, {hobs.n_events} arrivals ({how}); loaded in "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

    # ---- historical (method of moments / MLE)
    t1 = time.perf_counter()
    kh = H.kappa(kobs)
    hh = H.hawkes(hobs)
    out["historical_s"] = time.perf_counter() - t1
    # ---- Bayesian
    t1 = time.perf_counter()
    kid = kp.fit(kobs, sc)
    out["kappa_bayes_s"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    hid = hk.fit(hobs, sc)
    out["hawkes_bayes_s"] = time.perf_counter() - t1
    for name, idata, var in (("kappa", kid, ["kappa"]),
                             ("hawkes", hid, ["hawkes_branching", "hawkes_decay", "hawkes_baseline"])):
        d = diagnostics(idata, var)
        out[f"{name}_diagnostics"] = {k: d[k] for k in ("r_hat_max", "ess_bulk_min", "divergences")}
    print(f"[{ds}] historical {out['historical_s']:.2f} s; Bayesian kappa {out['kappa_bayes_s']:.0f} s, "
          f"hawkes {out['hawkes_bayes_s']:.0f} s", file=sys.stderr, flush=True)

    rows: dict[str, dict] = {}
    kd = _draws(kid, "kappa", "regime", "side")
    for i, r in enumerate(REGIMES):
        for j, s in enumerate(SIDES):
            e = kh.cells[r][s]
            rows[f"kappa[{r},{s}]"] = {"historical": _e(e) if e else None, "bayes": _q(kd[:, i, j]),
                                       "n": int(e.n) if e else 0}
    n = _draws(hid, "hawkes_branching", "target", "source")
    beta = _draws(hid, "hawkes_decay")
    mu = _draws(hid, "hawkes_baseline", "regime", "side")
    for i, a in enumerate(SIDES):
        for j, b in enumerate(SIDES):
            rows[f"hawkes_branching[{a},{b}]"] = {"historical": _e(hh.branching[a][b]), "bayes": _q(n[:, i, j])}
    rows["hawkes_decay"] = {"historical": _e(hh.decay), "bayes": _q(beta)}
    rho = np.array([max(abs(np.linalg.eigvals(x))) for x in n])
    rows["spectral_radius"] = {"historical": _e(hh.spectral_radius), "bayes": _q(rho)}
    rows["self_excitation"] = {"historical": _e(hh.self_excitation), "bayes": _q(0.5 * (n[:, 0, 0] + n[:, 1, 1]))}
    occ = hobs.regime_time()[0]
    rows["hawkes_mu (per side, time-weighted)"] = {
        "historical": _e(hh.baseline_mean), "bayes": _q((mu * occ[None, :, None]).sum((1, 2)) / (2 * occ.sum()))}
    rows["pooled branching ratio / decay (MoM only)"] = {
        "historical": {"ratio": _e(hh.pooled_branching_ratio), "decay": _e(hh.pooled_decay)}, "bayes": None}
    if m.truth is not None:
        p = m.truth["params"]
        for k, v in rows.items():
            if k in p:
                v["truth"] = p[k]
        nt = np.array([[p[f"hawkes_branching[{a},{b}]"] for b in SIDES] for a in SIDES])
        rows["spectral_radius"]["truth"] = float(max(abs(np.linalg.eigvals(nt))))
        rows["self_excitation"]["truth"] = float(np.trace(nt) / 2)
    out["rows"] = rows
    out["hawkes_mom"] = {"chi2_dof": hh.chi2_dof, "chi2_dof_pooled": hh.chi2_dof_pooled,
                         "tau_range_s": [hh.taus_s[0], hh.taus_s[-1]], "notes": hh.notes}
    # which time scales the moments see: the same fit with the shortest window x10, x100
    scales = []
    for f in (1.0, 10.0, 100.0):
        try:
            r = hh if f == 1.0 else H.hawkes(hobs, H.HistoricalConfig(hawkes_tau_min_s=hh.taus_s[0] * f))
        except ValueError as e:
            scales.append({"tau_min_s": hh.taus_s[0] * f, "error": str(e)})
            continue
        scales.append({"tau_min_s": r.taus_s[0], "tau_max_s": r.taus_s[-1],
                       "self_excitation": _e(r.self_excitation), "spectral_radius": _e(r.spectral_radius),
                       "decay": _e(r.decay), "chi2_dof": r.chi2_dof})
    out["hawkes_mom_scales"] = scales
    return out


def _fmt(d: dict | None, digits: int = 3) -> str:
    if d is None:
        return "-"
    lo, hi = d["ci"]
    return f"{d['mean']:.{digits}g} [{lo:.{digits}g}, {hi:.{digits}g}]"


def report(doc: dict) -> None:
    for ds, res in doc.items():
        mom = res["hawkes_mom"]
        print(f"\n#### {ds}: {res['duration_s']:.0f} s, {res['n_arrivals']} arrivals, regimes: {res['regimes']}\n")
        print(f"Time: historical {res['historical_s']:.2f} s; Bayesian kappa {res['kappa_bayes_s']:.0f} s, "
              f"hawkes {res['hawkes_bayes_s']:.0f} s. Bayesian diagnostics: kappa "
              f"{res['kappa_diagnostics']}, hawkes {res['hawkes_diagnostics']}. MoM fit chi2/dof "
              f"{mom['chi2_dof']:.2f} (pooled {mom['chi2_dof_pooled']:.2f}) over windows "
              f"{mom['tau_range_s'][0]:.3g}-{mom['tau_range_s'][1]:.3g} s.\n")
        has_truth = any("truth" in r for r in res["rows"].values())
        print("| parameter | " + ("truth | " if has_truth else "")
              + "historical (MoM/MLE) [90 %] | Bayesian mean [90 %] | diff / sd |")
        print("|---|" + ("---:|" if has_truth else "") + "---:|---:|---:|")
        for k, r in res["rows"].items():
            h, b = r["historical"], r["bayes"]
            if b is None:
                txt = f"ratio {_fmt(h['ratio'])}; decay {_fmt(h['decay'])}"
                print(f"| {k} | " + ("| " if has_truth else "") + f"{txt} | - | - |")
                continue
            if h is None:
                diff = "-"
            else:
                z = (h["mean"] - b["mean"]) / max(np.hypot(h["sd"], b["sd"]), 1e-300)
                diff = f"{z:+.1f}"
            t = f"{r['truth']:.4g} | " if "truth" in r else ("- | " if has_truth else "")
            print(f"| {k} | {t}{_fmt(h)} | {_fmt(b)} | {diff} |")
        sc = res.get("hawkes_mom_scales")
        if sc:
            print("\nMoM Hawkes by shortest window (longest fixed by the data):\n")
            print("| windows s | self-excitation | spectral radius | decay /s | chi2/dof |")
            print("|---|---:|---:|---:|---:|")
            for x in sc:
                if "error" in x:
                    print(f"| from {x['tau_min_s']:.3g} | {x['error']} | | | |")
                    continue
                print(f"| {x['tau_min_s']:.3g}-{x['tau_max_s']:.3g} | {_fmt(x['self_excitation'])} | "
                      f"{_fmt(x['spectral_radius'])} | {_fmt(x['decay'])} | {x['chi2_dof']:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default=None, help="comma-separated: syn-busy, hl-btc, aapl")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "historical_vs_bayes.json"))
    ap.add_argument("--report", action="store_true")
    a = ap.parse_args()
    out = Path(a.out)
    if a.report:
        report(json.loads(out.read_text()))
        return
    datasets = (a.datasets.split(",") if a.datasets else
                (["syn-busy", "hl-btc"] if a.quick else ["syn-busy", "hl-btc", "aapl"]))
    doc = json.loads(out.read_text()) if out.exists() else {}
    save = _real_data_fits()._save
    for ds in datasets:
        doc[ds] = run_one(ds, a.quick)
        save(out, doc)
    report({k: doc[k] for k in datasets})


if __name__ == "__main__":
    main()
