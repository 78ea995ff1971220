"""The Laplace approximation (checked by PSIS) against NUTS, per model and dataset.

    uv run python benchmarks/laplace_vs_nuts.py --dataset aapl --models regime,alpha,kappa,hawkes,fills
    uv run python benchmarks/laplace_vs_nuts.py --dataset synthetic --path /tmp/syn6h --nuts-chains 2
    uv run python benchmarks/laplace_vs_nuts.py --dataset hl-btc --no-nuts       # k_hat only
    uv run python benchmarks/laplace_vs_nuts.py --report                          # the saved rows

Per model, on the observations the calibration flow would fit (automatic bar length,
the regime path of the HMM's EM/MAP point): a fit with ``inference="laplace"``
(:mod:`models.approx`: its PSIS k_hat, wall time) and, unless ``--no-nuts``, a NUTS
fit (nutpie, ``--nuts-chains`` x ``--nuts-draws`` after as many tuning steps). The
agreement of the two posteriors over every scalar of the model's reported variables:
the largest ``|mean_laplace - mean_nuts| / sd_nuts`` and the largest
``|sd_laplace / sd_nuts - 1|`` (the issue's bar: 0.1 and 10 %), each with the scalar
where it is reached. Rows are appended to ``artifacts/benchmarks/laplace_vs_nuts.json``
(keyed by dataset, window and model; a re-run replaces them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATASETS = {
    "aapl": ("lobster", "../shared/data/lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip", None),
    "hl-btc": ("hyperliquid", "../shared/data/hyperliquid/recorder_2025-09-04", "BTC"),
    "synthetic": ("synthetic", None, None),
}
OUT = Path("artifacts/benchmarks/laplace_vs_nuts.json")


def compare(lap_rows: list[dict], nuts_rows: list[dict]) -> dict:
    """Worst standardised mean difference and worst relative sd difference."""
    nuts = {r["name"]: r for r in nuts_rows}
    dm, ds = (0.0, ""), (0.0, "")
    for r in lap_rows:
        n = nuts.get(r["name"])
        if n is None or not n["sd"] > 0:
            continue
        m = abs(r["mean"] - n["mean"]) / n["sd"]
        s = abs(r["sd"] / n["sd"] - 1.0)
        dm, ds = max(dm, (m, r["name"])), max(ds, (s, r["name"]))
    return {"max_mean_diff_sd": dm[0], "worst_mean": dm[1], "max_sd_rel_diff": ds[0], "worst_sd": ds[1],
            "n_scalars": len(lap_rows)}


def run(args) -> list[dict]:
    from flows.fitting import read_market_for, observation_config
    from models import catalog
    from models.sampling import SamplerConfig

    source, path, asset = DATASETS[args.dataset]
    path = args.path or path
    models = [m for m in args.models.split(",") if m]
    market = read_market_for(tuple(models), source, Path(path), asset)
    if args.window:
        from models.data.tables import WindowSpec

        market = WindowSpec.parse(args.window).cut(market, "--window")
    cfg = observation_config(market)
    rows = []
    for m in models:
        why = catalog.skip_reason(m, market.row_counts(), source)
        if why:
            print(f"{m}: skipped ({why})", flush=True)
            continue
        obs = catalog.prepare(m, market, "em", config=cfg)
        mc = catalog.model_config(m, None, cfg)
        row = {"dataset": args.dataset, "path": str(path), "window": args.window or ":", "model": m,
               "n_obs": catalog.n_obs(m, obs), "obs_unit": catalog.spec(m).obs_unit,
               "load_1min": os.getloadavg()[0]}
        t = time.perf_counter()
        lap = catalog.fit(m, obs, SamplerConfig(inference="laplace", progressbar=False, seed=args.seed), mc)
        row["laplace_wall_s"] = time.perf_counter() - t
        a = lap.attrs
        row.update({k: a.get(k) for k in ("psis_khat", "psis_ess", "approx_map_hessian_s", "approx_psis_s",
                                           "approx_posterior_s", "approx_evals")})
        print(f"{m}: {row['n_obs']:,} {row['obs_unit']}; laplace k_hat {a['psis_khat']:.2f}, "
              f"{row['laplace_wall_s']:.1f} s", flush=True)
        if not args.no_nuts:
            sc = SamplerConfig(draws=args.nuts_draws, tune=args.nuts_draws, chains=args.nuts_chains,
                               progressbar=False, seed=args.seed)
            t = time.perf_counter()
            nuts = catalog.fit(m, obs, sc, mc)
            row["nuts_wall_s"] = time.perf_counter() - t
            d = catalog.diagnostics(m, nuts)
            row.update({"nuts_r_hat_max": d["r_hat_max"], "nuts_ess_bulk_min": d["ess_bulk_min"],
                        "nuts_divergences": d["divergences"], "nuts_draws": f"{args.nuts_chains}x{args.nuts_draws}"})
            row.update(compare(catalog.parameter_rows(m, lap), catalog.parameter_rows(m, nuts)))
            print(f"{m}: nuts {row['nuts_wall_s']:.1f} s (r_hat {d['r_hat_max']:.3f}, ess {d['ess_bulk_min']:.0f}); "
                  f"max |dmean|/sd {row['max_mean_diff_sd']:.3f} ({row['worst_mean']}), "
                  f"max |sd ratio - 1| {row['max_sd_rel_diff']:.3f} ({row['worst_sd']})", flush=True)
        rows.append(row)
        save([row])
    return rows


def save(rows: list[dict]) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(OUT.read_text()) if OUT.exists() else []
    key = lambda r: (r["dataset"], r["path"], r["window"], r["model"])  # noqa: E731
    new = {key(r) for r in rows}
    OUT.write_text(json.dumps([r for r in old if key(r) not in new] + rows, indent=1, default=str))


def report() -> None:
    f = lambda v, n=2: "-" if v is None else f"{v:.{n}f}"  # noqa: E731
    print("| dataset | window | model | N | k_hat | laplace s | NUTS s | max abs dmean/sd | max abs sd ratio-1 | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in json.loads(OUT.read_text()):
        print(f"| {r['dataset']} | {r['window']} | {r['model']} | {r['n_obs']:,} {r['obs_unit']} | "
              f"{f(r['psis_khat'])} | {f(r['laplace_wall_s'], 0)} | {f(r.get('nuts_wall_s'), 0)} | "
              f"{f(r.get('max_mean_diff_sd'))} ({r.get('worst_mean', '')}) | {f(r.get('max_sd_rel_diff'))} "
              f"({r.get('worst_sd', '')}) | {f(r['load_1min'], 1)} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=sorted(DATASETS), default="aapl")
    p.add_argument("--path", help="data path (the synthetic market's folder)")
    p.add_argument("--window", default="", help="START:END (fractions or seconds), as mmcal fit --window")
    p.add_argument("--models", default="regime,alpha,kappa,hawkes,fills")
    p.add_argument("--nuts-draws", type=int, default=1000)
    p.add_argument("--nuts-chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-nuts", action="store_true", help="the approximation's k_hat only")
    p.add_argument("--report", action="store_true")
    args = p.parse_args()
    if args.report:
        report()
        return
    if args.dataset == "synthetic" and not args.path:
        p.error("--path: the synthetic market's folder (mmcal simulate --out ...)")
    run(args)


if __name__ == "__main__":
    main()
