"""ESS per second of the three NUTS back-ends (PyMC, NumPyro, nutpie) on the alpha
and Hawkes models, in one run, on one synthetic market.

    uv run python benchmarks/bench_samplers.py            # ~10-20 min on 2 cores
    uv run python benchmarks/bench_samplers.py --quick    # smoke run

Data: ``simulate_market(seed, duration)`` (default 1 h), the true regime path; alpha =
the threshold variant on the market's passive fills, hawkes = the bivariate model on
its arrivals. Every sampler runs the same model (same PyMC graph), the same draws,
tune and chains, one after the other (chains in parallel where the sampler can).

Columns: wall = ``idata.attrs["sampling_wall_s"]`` (compilation + tuning + sampling,
as a user waits for it); ``min ESS bulk`` over every scalar of the model's reported
parameters; ESS/s = min ESS bulk / wall. A second, warm run of each sampler (same
model object, compiled code cached where the sampler caches it) is reported as
``wall (warm)`` with its ESS/s, because compile time dominates short fits.
Results go to ``artifacts/benchmarks/samplers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPORTED = {
    "alpha": ["alpha_touch", "alpha_decay_bps", "adverse_move_bps"],
    "hawkes": ["hawkes_baseline", "hawkes_branching", "hawkes_decay"],
}


def _data(model: str, seed: int, duration: float):
    import numpy as np

    from models import alpha, hawkes
    from models.data.synthetic import simulate_market

    m = simulate_market(seed, duration)
    path = np.asarray(m.truth["regime_path"])
    if model == "alpha":
        return alpha.observations(m, path)
    return hawkes.observations(m, path)


def _fit(model: str, obs, cfg):
    from models import alpha, hawkes

    return alpha.fit(obs, cfg) if model == "alpha" else hawkes.fit(obs, cfg)


def _row(model: str, sampler: str, idata, wall: float) -> dict:
    from models.sampling import diagnostics

    d = diagnostics(idata, REPORTED[model])
    min_ess = float(d["ess_bulk_min"])
    return {"model": model, "sampler": sampler, "wall_s": wall, "min_ess_bulk": min_ess,
            "ess_per_s": min_ess / wall, "max_r_hat": d["r_hat_max"],
            "divergences": d["divergences"]}


def _write(out: Path, a, rows: list) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"settings": vars(a), "cpu_count": os.cpu_count(), "rows": rows}, indent=2))
    os.replace(tmp, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="alpha,hawkes")
    ap.add_argument("--samplers", default="pymc,numpyro,nutpie")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3600.0)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="200 draws, 15 min market")
    ap.add_argument("--out", default="artifacts/benchmarks/samplers.json")
    a = ap.parse_args()
    if a.quick:
        a.draws = a.tune = 200
        a.duration = 900.0

    from models.sampling import SamplerConfig

    rows = []
    for model in a.models.split(","):
        obs = _data(model, a.seed, a.duration)
        print(f"[{model}] data ready", file=sys.stderr, flush=True)
        for sampler in a.samplers.split(","):
            cfg = SamplerConfig(sampler=sampler, draws=a.draws, tune=a.tune, chains=a.chains,
                                seed=a.seed, progressbar=False, log_likelihood=False)
            for run in ("cold", "warm"):
                t0 = time.perf_counter()
                idata = _fit(model, obs, cfg)
                wall = float(idata.attrs.get("sampling_wall_s", time.perf_counter() - t0))
                r = _row(model, sampler, idata, wall) | {"run": run}
                rows.append(r)
                _write(Path(a.out), a, rows)  # after every fit: a crash keeps what was measured
                print(f"[{model}] {sampler:8s} {run}: wall {wall:7.1f} s, min ESS bulk "
                      f"{r['min_ess_bulk']:7.0f}, ESS/s {r['ess_per_s']:7.1f}, r_hat {r['max_r_hat']:.3f}, "
                      f"div {r['divergences']}", file=sys.stderr, flush=True)
    out = Path(a.out)
    print("| model | sampler | wall cold s | ESS/s cold | wall warm s | ESS/s warm | min ESS bulk (warm) | max r_hat | divergences |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for model in a.models.split(","):
        for sampler in a.samplers.split(","):
            c = next(r for r in rows if r["model"] == model and r["sampler"] == sampler and r["run"] == "cold")
            w = next(r for r in rows if r["model"] == model and r["sampler"] == sampler and r["run"] == "warm")
            print(f"| {model} | {sampler} | {c['wall_s']:.1f} | {c['ess_per_s']:.1f} | {w['wall_s']:.1f} | "
                  f"{w['ess_per_s']:.1f} | {w['min_ess_bulk']:.0f} | {w['max_r_hat']:.3f} | {w['divergences']} |")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
