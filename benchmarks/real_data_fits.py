"""All four models on real market data with the default settings: gate verdicts and
the summaries a quant would look at first.

    uv run python benchmarks/real_data_fits.py                       # AAPL_1 + Hyperliquid BTC
    uv run python benchmarks/real_data_fits.py --datasets hl-btc --models regime,kappa
    uv run python benchmarks/real_data_fits.py --multi-asset         # 4 Hyperliquid coins jointly
    uv run python benchmarks/real_data_fits.py --report              # print the saved results

Per dataset, as the calibrate flow does it: the volatility bars with the automatic
bar length (:func:`models.data.observations.choose_bar_seconds`), the regime HMM
first, then alpha, kappa and hawkes on the regime path of the HMM's posterior
(:func:`models.regime.regime_path`, each bar's most probable regime with the
parameters integrated out). Default sampler settings (``SamplerConfig()``: nutpie,
4 chains x 1000 draws after 1000 tuning steps) and the default gate.

Printed per dataset: each fit's gate verdict, its worst R-hat / ESS, divergences,
time; regime occupancy (decoded share of bars and the stationary distribution) and
sigma per regime; alpha_touch per regime, alpha_decay_bps, adverse_move_bps; kappa
and the arrival rate per regime x side; the Hawkes branching matrix, its spectral
radius (the branching ratio) and decay. Results are saved after every fit to
``artifacts/benchmarks/real_data_fits.json`` (a re-run replaces the entries it
fits and keeps the others).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

DATASETS = {
    "aapl": ("lobster", "../shared/data/lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip", None),
    "hl-btc": ("hyperliquid", "../shared/data/hyperliquid/recorder_2025-09-04", "BTC"),
}
MODELS = ("regime", "alpha", "kappa", "hawkes")
HL_COINS = ("BTC", "ETH", "SOL", "WLFI")
HL_RECORDER = "../shared/data/hyperliquid/recorder_2025-09-04"


def _save(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=float))
    os.replace(tmp, path)


def _mean(idata, name):
    da = idata.posterior[name]
    return da.mean(("chain", "draw")).values


def _summaries(model: str, idata, obs) -> dict:
    from models.data.observations import REGIMES

    if model == "regime":
        from models import regime

        path = regime.regime_path(idata, obs)
        return {"bar_seconds": float(obs.bar_seconds), "n_bars": int(obs.n_bars),
                "decoded_occupancy": {r: float(np.mean(path == k)) for k, r in enumerate(REGIMES)},
                "stationary": dict(zip(REGIMES, _mean(idata, "regime_stationary").tolist())),
                "sigma_bps": dict(zip(REGIMES, _mean(idata, "sigma_bps").tolist())),
                "stay_probability": dict(zip(REGIMES, np.diag(_mean(idata, "regime_transition")).tolist()))}
    if model == "alpha":
        return {"alpha_touch": dict(zip(REGIMES, _mean(idata, "alpha_touch").tolist())),
                "alpha_decay_bps": float(_mean(idata, "alpha_decay_bps")),
                "adverse_move_bps": float(_mean(idata, "adverse_move_bps")),
                "spread_capture": (float(_mean(idata, "spread_capture")) if "spread_capture" in idata.posterior
                                   else None),
                "n_fills": int(obs.n_fills)}
    if model == "kappa":
        k, a = _mean(idata, "kappa"), _mean(idata, "arrival_rate")
        return {"kappa": {r: dict(zip(("buy", "sell"), k[i].tolist())) for i, r in enumerate(REGIMES)},
                "arrival_rate": {r: dict(zip(("buy", "sell"), a[i].tolist())) for i, r in enumerate(REGIMES)},
                "count_overdispersion": _mean(idata, "count_overdispersion").tolist()}
    from models.hawkes import spectral_radius

    n = np.asarray(idata.posterior["hawkes_branching"].values).reshape(-1, 2, 2)
    rho = np.array([spectral_radius(x) for x in n])
    return {"branching": _mean(idata, "hawkes_branching").tolist(),
            "branching_ratio_mean": float(rho.mean()),
            "branching_ratio_q05_q95": np.quantile(rho, [0.05, 0.95]).tolist(),
            "decay_per_s": float(_mean(idata, "hawkes_decay")),
            "baseline": _mean(idata, "hawkes_baseline").tolist()}


def run(datasets, models, out: Path) -> dict:
    from models import catalog, regime
    from models.data import loaders
    from models.data import observations as ob
    from models.sampling import SamplerConfig, gate

    doc = json.loads(out.read_text()) if out.exists() else {}
    for ds in datasets:
        source, path, asset = DATASETS[ds]
        t0 = time.perf_counter()
        market = loaders.load(source, path, asset)
        cfg = ob.auto_bar_config(market)
        bars = ob.volatility_bars(market, cfg)
        print(f"[{ds}] loaded in {time.perf_counter() - t0:.1f} s; bars of {cfg.bar_seconds:g} s: {len(bars)}",
              file=sys.stderr, flush=True)
        res = doc.setdefault(ds, {})
        robs = regime.observations(market, config=cfg, bars=bars)
        # every model needs the regime posterior's path: the regime model is always fitted first
        t1 = time.perf_counter()
        ridata = regime.fit(robs, SamplerConfig(), regime.RegimeConfig(observation=cfg))
        path_ = regime.regime_path(ridata, robs)
        for model in ["regime"] + [m for m in models if m != "regime"]:
            if model != "regime":
                t1 = time.perf_counter()
                obs = catalog.spec(model).module.observations(market, path_, bars=bars)
                idata = catalog.fit(model, obs, SamplerConfig())
            else:
                idata, obs = ridata, robs
            d = catalog.diagnostics(model, idata)
            v = gate(d)
            res[model] = {
                "gate_passed": bool(v), "gate_failures": list(v.failures),
                "r_hat_max": d["r_hat_max"], "r_hat_worst": d["r_hat_worst"],
                "ess_bulk_min": d["ess_bulk_min"], "ess_tail_min": d["ess_tail_min"],
                "divergences": d["divergences"], "bfmi_min": d["bfmi_min"],
                "pareto_k_max": d.get("pareto_k_max"), "loo_elpd": d.get("loo_elpd"),
                "n_obs": catalog.n_obs(model, obs), "wall_s": time.perf_counter() - t1,
                "summary": _summaries(model, idata, obs),
            }
            _save(out, doc)
            print(f"[{ds}] {model}: gate {'PASS' if v else 'FAIL'} r_hat {d['r_hat_max']:.4f} "
                  f"ESS bulk/tail {d['ess_bulk_min']:.0f}/{d['ess_tail_min']:.0f} div {d['divergences']} "
                  f"({time.perf_counter() - t1:.0f} s) {'' if v else v.failures}", file=sys.stderr, flush=True)
    return doc


def run_multi(models, out: Path) -> dict:
    """alpha, kappa and hawkes fitted jointly on the four Hyperliquid coins (asset-level
    effects under shared hyperpriors); each coin's regime path from its own regime
    HMM posterior (same automatic bar length rule, per coin)."""
    from models import catalog, regime
    from models.data import loaders
    from models.data import observations as ob
    from models.sampling import SamplerConfig, gate

    doc = json.loads(out.read_text()) if out.exists() else {}
    per_coin = {}
    for coin in HL_COINS:
        t0 = time.perf_counter()
        market = loaders.load("hyperliquid", HL_RECORDER, coin)
        cfg = ob.auto_bar_config(market)
        bars = ob.volatility_bars(market, cfg)
        robs = regime.observations(market, config=cfg, bars=bars)
        ridata = regime.fit(robs, SamplerConfig(), regime.RegimeConfig(observation=cfg))
        per_coin[coin] = (market, bars, regime.regime_path(ridata, robs))
        print(f"[hl-4] {coin}: {len(bars)} bars of {cfg.bar_seconds:g} s, regime fit "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    res = doc.setdefault("hl-4coins", {})
    for model in [m for m in models if m != "regime"]:
        t1 = time.perf_counter()
        mod = catalog.spec(model).module
        obs = mod.combine(*[mod.observations(m, p, bars=b) for m, b, p in per_coin.values()])
        idata = catalog.fit(model, obs, SamplerConfig())
        d = catalog.diagnostics(model, idata)
        v = gate(d)
        summ = {}
        for coin in HL_COINS:
            sub = idata.posterior.sel(asset=coin) if "asset" in idata.posterior.dims else idata.posterior
            summ[coin] = {k: np.asarray(sub[k].mean(("chain", "draw")).values).tolist()
                          for k in catalog.spec(model).var_names if k in sub}
        res[model] = {"gate_passed": bool(v), "gate_failures": list(v.failures), "r_hat_max": d["r_hat_max"],
                      "ess_bulk_min": d["ess_bulk_min"], "ess_tail_min": d["ess_tail_min"],
                      "divergences": d["divergences"], "n_obs": catalog.n_obs(model, obs),
                      "wall_s": time.perf_counter() - t1, "per_asset_means": summ}
        _save(out, doc)
        print(f"[hl-4] {model}: gate {'PASS' if v else 'FAIL'} r_hat {d['r_hat_max']:.4f} "
              f"ESS {d['ess_bulk_min']:.0f}/{d['ess_tail_min']:.0f} div {d['divergences']} "
              f"({time.perf_counter() - t1:.0f} s) {'' if v else v.failures}", file=sys.stderr, flush=True)
    return doc


def report(doc: dict) -> None:
    multi = doc.pop("hl-4coins", None)
    if multi:
        print("\n## Hyperliquid, 4 coins jointly\n")
        print("| model | gate | max r_hat | min ESS bulk / tail | divergences | obs | time s |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for m, r in multi.items():
            print(f"| {m} | {'pass' if r['gate_passed'] else 'FAIL'} | {r['r_hat_max']:.4f} | "
                  f"{r['ess_bulk_min']:.0f} / {r['ess_tail_min']:.0f} | {r['divergences']} | {r['n_obs']} | "
                  f"{r['wall_s']:.0f} |")
        for m, r in multi.items():
            for coin, s in r["per_asset_means"].items():
                print(f"{m} {coin}: " + "; ".join(f"{k} {np.round(np.asarray(v), 3).tolist()}" for k, v in s.items()))
    for ds, res in doc.items():
        print(f"\n## {ds}\n")
        print("| model | gate | max r_hat | min ESS bulk / tail | divergences | obs | time s |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for m in MODELS:
            if m in res:
                r = res[m]
                print(f"| {m} | {'pass' if r['gate_passed'] else 'FAIL'} | {r['r_hat_max']:.4f} | "
                      f"{r['ess_bulk_min']:.0f} / {r['ess_tail_min']:.0f} | {r['divergences']} | {r['n_obs']} | "
                      f"{r['wall_s']:.0f} |")
        print()
        if "regime" in res:
            s = res["regime"]["summary"]
            print(f"regime ({s['n_bars']} bars of {s['bar_seconds']:g} s): " + ", ".join(
                f"{r}: occupancy {s['decoded_occupancy'][r]:.2f} (stationary {s['stationary'][r]:.2f}), "
                f"sigma {s['sigma_bps'][r]:.3f} bps/sqrt(s), stay {s['stay_probability'][r]:.3f}"
                for r in s["sigma_bps"]))
        if "alpha" in res:
            s = res["alpha"]["summary"]
            print("alpha_touch: " + ", ".join(f"{r} {v:.3f}" for r, v in s["alpha_touch"].items())
                  + f"; alpha_decay_bps {s['alpha_decay_bps']:.2f}; adverse_move_bps {s['adverse_move_bps']:.2f}"
                  + (f"; spread_capture {s['spread_capture']:.3f}" if s.get("spread_capture") is not None else "")
                  + f" ({s['n_fills']} fills)")
        if "kappa" in res:
            s = res["kappa"]["summary"]
            print("kappa per bp (buy/sell): " + ", ".join(
                f"{r} {v['buy']:.3f}/{v['sell']:.3f}" for r, v in s["kappa"].items()))
            print("arrival rate per s (buy/sell): " + ", ".join(
                f"{r} {v['buy']:.3f}/{v['sell']:.3f}" for r, v in s["arrival_rate"].items()))
        if "hawkes" in res:
            s = res["hawkes"]["summary"]
            lo, hi = s["branching_ratio_q05_q95"]
            print(f"hawkes: branching ratio {s['branching_ratio_mean']:.3f} (90 % {lo:.3f}-{hi:.3f}), "
                  f"n = {np.round(s['branching'], 3).tolist()}, decay {s['decay_per_s']:.3f}/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--out", default="artifacts/benchmarks/real_data_fits.json")
    ap.add_argument("--report", action="store_true", help="only print the saved results")
    ap.add_argument("--multi-asset", action="store_true",
                    help="alpha, kappa, hawkes jointly on the four Hyperliquid coins")
    a = ap.parse_args()
    out = Path(a.out)
    if a.report:
        report(json.loads(out.read_text()))
        return
    if a.multi_asset:
        doc = run_multi(a.models.split(","), out)
    else:
        doc = run(a.datasets.split(","), a.models.split(","), out)
    report(doc)


if __name__ == "__main__":
    main()
