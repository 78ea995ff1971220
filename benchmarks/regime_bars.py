"""The regime HMM on the synthetic market with realized vs jump-robust bars (issue #3).

For every seed and bar rule (``ESTIMATOR@SAMPLE_SECONDS``, e.g. ``medrv@1``:
``ObservationConfig(volatility_estimator="medrv", rv_sample_seconds=1)``):
simulate the default synthetic market (:func:`models.data.synthetic.simulate_market`),
fit :func:`models.regime.fit` (NumPyro NUTS, 2 chains) on
:func:`models.regime.observations` with that rule, and record

* the decoded path's accuracy against the true regime path (NUTS:
  :func:`models.regime.regime_path`; and the EM reference's),
* for ``sigma_bps[r]``, ``regime_stationary[r]`` and every
  ``regime_transition[a,b]``: posterior quantiles and both truths of sigma
  (``sigma_diffusion_bps``, what jump-robust bars measure, and ``sigma_bps``,
  diffusion plus informed jumps),
* r_hat, ESS, divergences, wall time, bars per true regime.

``--report`` prints the accuracy and the 90 % coverage per rule, counting a
regime's parameters only in the fits whose market spends >= 10 bars in it (a
regime never visited leaves its posterior to the prior). Results go to
``--out`` (JSON, resumable: pairs already there are skipped).

``--real`` instead fits real data from ``../shared/data`` with each rule's
estimator (the rule's grid; bar length by
:func:`models.data.observations.auto_bar_config`): LOBSTER AAPL's first two
hours (09:30-11:30) and the 35 minutes of Hyperliquid BTC, 2 x (400 + 400),
and prints the posterior sigma_bps, stay probabilities and decoded occupancy.

    uv run python benchmarks/regime_bars.py --seeds 1000,1001,1005,1010 \
        --rules medrv@1,realized@1,medrv@0.1 --out benchmarks/results/regime_bars.json
    uv run python benchmarks/regime_bars.py --report --out benchmarks/results/regime_bars.json
    uv run python benchmarks/regime_bars.py --real --rules realized@1,medrv@1 \
        --out benchmarks/results/regime_bars_real.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != _HERE]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

REGIMES = ("low", "normal", "high", "extreme")
MIN_VISITED_BARS = 10


def _rule(text: str) -> tuple[str, float]:
    est, _, dt = text.partition("@")
    return est, float(dt or 1.0)


def fit_one(seed: int, est: str, dt: float, duration: float, draws: int) -> dict:
    from models import regime as rg
    from models.data.observations import ObservationConfig
    from models.data.synthetic import simulate_market
    from models.sampling import SamplerConfig, diagnostics

    market = simulate_market(seed, duration)
    p = market.truth["params"]
    oc = ObservationConfig(volatility_estimator=est, rv_sample_seconds=dt)
    obs = rg.observations(market, config=oc)
    cfg = SamplerConfig(sampler="numpyro", draws=draws, tune=draws, chains=2, seed=seed, progressbar=False,
                        log_likelihood=False)
    t0 = time.perf_counter()
    idata = rg.fit(obs, cfg, rg.RegimeConfig(observation=oc))
    wall = time.perf_counter() - t0
    em = rg.em_fit(obs, rg.RegimeConfig(observation=oc))
    d = diagnostics(idata)
    post = rg.posterior_draws(idata)
    rec = {"seed": seed, "est": est, "dt": dt, "dur": duration, "draws": draws, "wall": wall,
           "acc": rg.path_accuracy(rg.regime_path(idata, obs), obs.regimes),
           "em_acc": rg.path_accuracy(np.argmax(em["smoothed"], axis=1), obs.regimes),
           "r_hat": d["r_hat_max"], "ess_bulk": d["ess_bulk_min"], "div": d["divergences"],
           "bars": np.bincount(obs.regimes, minlength=4).tolist(), "params": {}}

    def q(x):
        return {"q": np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95]).tolist(), "mean": float(x.mean()),
                "sd": float(x.std())}

    for k, r in enumerate(REGIMES):
        rec["params"][f"sigma_bps[{r}]"] = {**q(post["sigma_bps"][:, k]),
                                            "truth_total": p[f"sigma_bps[{r}]"],
                                            "truth_diff": p[f"sigma_diffusion_bps[{r}]"]}
        rec["params"][f"regime_stationary[{r}]"] = {**q(post["regime_stationary"][:, k]),
                                                    "truth": p[f"regime_stationary[{r}]"]}
        for j, r2 in enumerate(REGIMES):
            n = f"regime_transition[{r},{r2}]"
            rec["params"][n] = {**q(post["regime_transition"][:, k, j]), "truth": p[n]}
    return rec


def real_markets(data: Path) -> dict:
    from models.data.loaders import load
    from models.data.tables import Market

    aapl = load("lobster", data / "lobster" / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip")
    end = int(aapl.start_ns) + 7200 * 1_000_000_000  # 09:30-11:30 ET
    aapl2h = Market(aapl.asset, aapl.source, aapl.trades[aapl.trades["ts"] < end].reset_index(drop=True),
                    aapl.quotes[aapl.quotes["ts"] < end].reset_index(drop=True))
    btc = load("hyperliquid", data / "hyperliquid" / "recorder_2025-09-04" / "trades_BTC.csv.gz")
    return {"AAPL 2h": aapl2h, "BTC": btc}


def fit_real(name: str, market, est: str, dt: float, draws: int) -> dict:
    from models import regime as rg
    from models.data.observations import ObservationConfig, auto_bar_config, volatility_bars
    from models.sampling import SamplerConfig, diagnostics

    oc = auto_bar_config(market, ObservationConfig(volatility_estimator=est, rv_sample_seconds=dt))
    bars = volatility_bars(market, oc)
    obs = rg.observations(market, config=oc, bars=bars)
    cfg = SamplerConfig(sampler="numpyro", draws=draws, tune=draws, chains=2, seed=1, progressbar=False)
    t0 = time.perf_counter()
    idata = rg.fit(obs, cfg, rg.RegimeConfig(observation=oc))
    wall = time.perf_counter() - t0
    d = diagnostics(idata)
    post = rg.posterior_draws(idata)
    path = rg.regime_path(idata, obs)
    return {"market": name, "est": est, "dt": dt, "bar_seconds": oc.bar_seconds, "n_bars": obs.n_bars,
            "n_censored": obs.n_censored, "median_moves": float(np.median(bars["n_moves"])), "wall": wall,
            "r_hat": d["r_hat_max"], "ess_bulk": d["ess_bulk_min"], "div": d["divergences"],
            "sigma_mean": post["sigma_bps"].mean(0).tolist(),
            "sigma_q05": np.quantile(post["sigma_bps"], 0.05, axis=0).tolist(),
            "sigma_q95": np.quantile(post["sigma_bps"], 0.95, axis=0).tolist(),
            "stay": np.diagonal(post["regime_transition"].mean(0)).tolist(),
            "log_rv_sd": post["log_rv_sd"].mean(0).tolist(),
            "occupancy": (np.bincount(path, minlength=4) / len(path)).tolist(),
            "sigma_all_bps": float(np.sqrt(bars["iv"].sum() / bars["duration_s"].sum()) * 1e4),
            "rv_all_bps": float(np.sqrt(bars["rv"].sum() / bars["duration_s"].sum()) * 1e4)}


def report(res: list[dict]) -> str:
    lines = []
    rules = []
    for r in res:
        if (r["est"], r["dt"]) not in rules:
            rules.append((r["est"], r["dt"]))
    names = ([f"sigma_bps[{g}]" for g in REGIMES] + [f"regime_stationary[{g}]" for g in REGIMES]
             + [f"regime_transition[{a},{b}]" for a in REGIMES for b in REGIMES])
    for est, dt in rules:
        rs = sorted((r for r in res if (r["est"], r["dt"]) == (est, dt)), key=lambda r: r["seed"])
        lines.append(f"\n{est} bars, {dt:g} s sampling: {len(rs)} fits, seeds {[r['seed'] for r in rs]}")
        lines.append(f"  accuracy NUTS {[round(r['acc'], 3) for r in rs]}, EM {[round(r['em_acc'], 3) for r in rs]}")
        lines.append(f"  r_hat {[round(r['r_hat'], 2) for r in rs]}, divergences {[r['div'] for r in rs]}, "
                     f"wall {[round(r['wall']) for r in rs]} s")
        k_all = n_all = 0
        for n in names:
            g = REGIMES.index(n.split("[")[1].split(",")[0].rstrip("]"))
            for key in (("truth_diff", "truth_total") if n.startswith("sigma") else ("truth",)):
                vis = [r for r in rs if r["bars"][g] >= MIN_VISITED_BARS]
                inn = [r["params"][n]["q"][0] <= r["params"][n][key] <= r["params"][n]["q"][4] for r in vis]
                means = [r["params"][n]["mean"] for r in vis]
                if key != "truth_total":
                    k_all, n_all = k_all + sum(inn), n_all + len(inn)
                t = rs[0]["params"][n][key]
                label = n + {"truth_diff": " vs diffusion", "truth_total": " vs total"}.get(key, "")
                lines.append(f"  {label:44s} truth {t:8.4g}  post. means {np.round(means, 3).tolist()}  "
                             f"in 90 %: {sum(inn)}/{len(inn)}")
        lines.append(f"  pooled 90 % (visited regimes; sigma vs diffusion): {k_all}/{n_all}"
                     + (f" = {k_all / n_all:.1%}" if n_all else ""))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="1000,1001,1005,1010")
    ap.add_argument("--rules", default="medrv@1,realized@1,medrv@0.1",
                    help="comma-separated ESTIMATOR@RV_SAMPLE_SECONDS")
    ap.add_argument("--duration", type=float, default=3600.0)
    ap.add_argument("--draws", type=int, default=300, help="tune = draws, 2 chains")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "regime_bars.json")
    ap.add_argument("--report", action="store_true", help="no fits: report what --out holds")
    ap.add_argument("--real", action="store_true", help="fit the real-data samples instead (module docstring)")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    res = json.loads(a.out.read_text()) if a.out.exists() else []
    if a.real:
        draws = a.draws if a.draws != 300 else 400
        for name, market in real_markets(a.data).items():
            for est, dt in (_rule(x) for x in a.rules.split(",")):
                if any((r.get("market"), r["est"], r.get("dt", 1.0)) == (name, est, dt) for r in res):
                    continue
                res.append(fit_real(name, market, est, dt, draws))
                a.out.parent.mkdir(parents=True, exist_ok=True)
                a.out.write_text(json.dumps(res, indent=1))
        for r in res:
            print(f"{r['market']:8s} {r['est']}@{r.get('dt', 1.0):g}: {r['n_bars']} x {r['bar_seconds']:g} s bars "
                  f"(median {r['median_moves']:.0f} moves), sigma_bps {np.round(r['sigma_mean'], 3).tolist()} "
                  f"(90 %: {np.round(r['sigma_q05'], 3).tolist()} - {np.round(r['sigma_q95'], 3).tolist()}), "
                  f"stay {np.round(r['stay'], 3).tolist()}, occupancy {np.round(r['occupancy'], 2).tolist()}, "
                  f"all bars {r['sigma_all_bps']:.3f} (rv {r['rv_all_bps']:.3f}), r_hat {r['r_hat']:.3f}, "
                  f"divergences {r['div']}")
        return 0
    if not a.report:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        for seed in (int(s) for s in a.seeds.split(",")):
            for est, dt in (_rule(x) for x in a.rules.split(",")):
                if any((r["seed"], r["est"], r["dt"], r["dur"], r.get("draws", a.draws)) ==
                       (seed, est, dt, a.duration, a.draws) for r in res):
                    continue
                rec = fit_one(seed, est, dt, a.duration, a.draws)
                res.append(rec)
                tmp = a.out.with_suffix(".tmp")
                tmp.write_text(json.dumps(res))
                os.replace(tmp, a.out)
                print(f"seed {seed} {est}@{dt:g}: {rec['wall']:.0f} s, accuracy {rec['acc']:.3f} "
                      f"(EM {rec['em_acc']:.3f}), r_hat {rec['r_hat']:.2f}, bars {rec['bars']}",
                      file=sys.stderr, flush=True)
    print(report(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
