"""Laplace + PSIS (models.approx) of this checkout against another revision's, interleaved
in one process on the same model and data.

    .venv/bin/python -P benchmarks/bench_laplace.py --before REV --dataset hl-btc --models fills,kappa \
        [--window 0:0.5] [--repeats 2]

The other revision's ``models/approx.py`` is read with ``git show REV:models/approx.py``
and imported as a module of its own; everything else (the model, its data, pymc) is
this checkout's. Per model and repeat, ``sample_approx`` of each version in turn
(before first in even repeats, after first in odd ones) with ``inference="laplace"``
and the default 4 x 1000 draws: wall time of the whole approximation (MAP, Hessian,
PSIS over 4,000 draws, the resampled posterior; the pointwise log-likelihood is left
out, it is not models.approx's), its parts, the number of log-density evaluations
and k_hat. Medians over repeats; the 1-minute load average beside each.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATASETS = {
    "aapl": ("lobster", "../shared/data/lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip", None),
    "hl-btc": ("hyperliquid", "../shared/data/hyperliquid/recorder_2025-09-04", "BTC"),
}


def _module_at(rev: str):
    src = subprocess.run(["git", "show", f"{rev}:models/approx.py"], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    f = Path(tempfile.mkdtemp()) / "approx_before.py"
    f.write_text(src)
    spec = importlib.util.spec_from_file_location("approx_before", f)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="git revision of the models/approx.py to compare with")
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="hl-btc")
    ap.add_argument("--models", default="fills,kappa", help="fills, kappa, hawkes")
    ap.add_argument("--window", default="")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()

    from flows.fitting import observation_config, read_market_for
    from models import approx as after
    from models import catalog
    from models.sampling import SamplerConfig

    before = _module_at(a.before)
    source, path, asset = DATASETS[a.dataset]
    models = a.models.split(",")
    market = read_market_for(tuple(models), source, REPO / path, asset)
    if a.window:
        from models.data.tables import WindowSpec

        market = WindowSpec.parse(a.window).cut(market, "--window")
    cfg = observation_config(market)
    cfg_s = SamplerConfig(inference="laplace", progressbar=False, seed=0, log_likelihood=False)
    print("| model | N | version | wall s (median) | MAP + Hessian s | PSIS s | posterior s | evaluations | k_hat | "
          "load 1 min |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for m in models:
        obs = catalog.prepare(m, market, "em", config=cfg)
        mc = catalog.model_config(m, None, cfg)
        mod_m = catalog.spec(m).module
        if m == "hawkes":
            build = lambda o, c: mod_m.build_model(o, c.priors, c.likelihood, c.kernel)  # noqa: E731
        elif m in ("fills", "kappa"):
            build = mod_m.build_model
        else:
            sys.exit(f"--models: {m} is not supported here (fills, kappa, hawkes)")
        res: dict[str, list] = {"before": [], "after": []}
        for rep in range(a.repeats):
            order = [("before", before), ("after", after)]
            for name, mod in (order if rep % 2 == 0 else order[::-1]):
                model = build(obs, mc)
                load = os.getloadavg()[0]
                t = time.perf_counter()
                idata = mod.sample_approx(model, cfg_s, nuts=None, log_likelihood=lambda *_: None)
                wall = time.perf_counter() - t
                at = idata.attrs
                res[name].append((wall, at.get("approx_map_hessian_s"), at.get("approx_psis_s"),
                                  at.get("approx_posterior_s"), at.get("approx_evals"), at.get("psis_khat"), load))
                print(f"  {m} {name} repeat {rep}: {wall:.1f} s, k_hat {at.get('psis_khat'):.3f}", file=sys.stderr,
                      flush=True)
        n = catalog.n_obs(m, obs)
        for name in ("before", "after"):
            r = res[name]
            med = [statistics.median(x[i] for x in r) for i in range(4)]
            print(f"| {m} | {n:,} | {name} ({a.before if name == 'before' else 'this checkout'}) | {med[0]:.1f} | "
                  f"{med[1]:.1f} | {med[2]:.1f} | {med[3]:.1f} | {r[-1][4]} | {r[-1][5]:.3f} | "
                  f"{', '.join(f'{x[6]:.1f}' for x in r)} |", flush=True)


if __name__ == "__main__":
    main()
