"""Hawkes fits of one real recording across sampler seeds: does every chain find the
same mode of the decay (docs/models/hawkes.md, "Initialisation")?

    uv run python benchmarks/hawkes_seeds.py                          # HL ETH, seeds 0..3, 2 x 500
    uv run python benchmarks/hawkes_seeds.py --seeds 0,1 --sampler pymc --tune 1000

Data: the Hyperliquid ETH recording of 2025-12-10 (``../shared/data``), the
observations exactly as ``mmcal fit --model hawkes --source hyperliquid`` builds them
(EM regime path, the automatic bar length). Per seed: the largest R-hat of the
reported parameters, each chain's median decay, the wall time of the fit and the
load average (``os.getloadavg``) when it ended. Numbers: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hyperliquid" / "recorder_2025-12-10_ETH"


def _forced(obs, mc, sc, beta0: float):
    """nutpie with every chain's decay coordinate set so that beta = beta0 at the start."""
    import math

    import nutpie

    from models.hawkes.model import build_model
    from models.hawkes.start import decay_floor, penalised_mle

    pr = mc.priors
    b_min = decay_floor(obs, pr.max_decay_lifetime_windows)
    model = build_model(obs, pr, mc.likelihood)
    if pr.start == "mle":
        st = penalised_mle(obs, pr, b_min)
        u0, s = st["u"], st["u_sd"]
    else:
        u0, s = math.log(pr.decay_median - b_min), 1.0
    z0 = (math.log(beta0 - b_min) - u0) / s
    cm = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="pytensor",
                                   initial_points={"hawkes_log_decay_shift": z0})
    return nutpie.sample(cm, draws=sc.draws, tune=sc.tune, chains=sc.chains, seed=sc.seed,
                         target_accept=sc.target_accept, progress_bar=False)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--path", type=Path, default=DATA)
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--sampler", default="nutpie")
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--start", default=None, help="HawkesPriors.start: mle | prior (default: mle)")
    ap.add_argument("--no-gaps", action="store_true", help="no recording-gap masking (gap_factor, "
                    "gap_min_seconds = 1e9): the observations as before gaps were detected")
    ap.add_argument("--no-floor", action="store_true", help="HawkesPriors.max_decay_lifetime_windows=None")
    ap.add_argument("--start-decay", type=float, default=None,
                    help="start every chain at this decay (1/s; nutpie only; the jitter of the "
                         "other coordinates is kept): how a chain that reached small beta fares")
    args = ap.parse_args(argv)

    import numpy as np

    from flows.fitting import observation_config, read_market_for
    from models import catalog, hawkes
    from models.sampling import SamplerConfig, diagnostics

    market = read_market_for(("hawkes",), "hyperliquid", args.path, None)
    cfg = observation_config(market, {"gap_factor": 1e9, "gap_min_seconds": 1e9} if args.no_gaps else None)
    obs = catalog.prepare("hawkes", market, "em", config=cfg)
    mc = catalog.model_config("hawkes", None, cfg)
    upd = {}
    if args.start is not None:
        upd["start"] = args.start
    if args.no_floor:
        upd["max_decay_lifetime_windows"] = None
    mc = mc.model_copy(update={"priors": mc.priors.model_copy(update=upd)})
    print(f"{market.asset}: {obs.n_events} arrivals in {obs.duration_s[0]:.1f} s observed, gaps "
          f"{obs.meta.get('gaps_ns', [])}, bar {cfg.bar_seconds} s, model config {mc}")
    for seed in [int(s) for s in args.seeds.split(",")]:
        sc = SamplerConfig(sampler=args.sampler, chains=args.chains, draws=args.draws, tune=args.tune,
                           seed=seed, progressbar=False)
        t0 = time.perf_counter()
        idata = hawkes.fit(obs, sc, mc) if args.start_decay is None else _forced(obs, mc, sc, args.start_decay)
        wall = time.perf_counter() - t0
        d = diagnostics(idata, ["hawkes_baseline", "hawkes_branching", "hawkes_decay"])
        beta = idata.posterior["hawkes_decay"].median("draw").values
        print(f"seed {seed}: max r_hat {d['r_hat_max']:.3f}, decay per chain "
              f"{np.array2string(np.asarray(beta), precision=3)}, divergences {d.get('divergences')}, "
              f"wall {wall:.1f} s, load {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
