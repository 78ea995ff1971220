"""The export gate on the project's sample day (LOBSTER AAPL 2012-06-21): alpha's
divergences and the regime HMM's tail ESS, fitted as ``mmcal calibrate`` fits them
(benchmarks/README.md, "The gate on AAPL: alpha's divergences and regime's tail ESS").

    uv run python benchmarks/gate_aapl.py alpha --seeds 0-7 --target-accept 0.95 [--probs P.npy]
    uv run python benchmarks/gate_aapl.py regime --seeds 0-3 [--draws 2000]

Observations as ``mmcal calibrate`` builds them (``flows.tasks.observations``: the
observation rules of ``flows.fitting.observation_config``, MedRV bars). ``--probs``: an
(n_bars x 4) ``.npy`` of regime probabilities, e.g. the ``<regime key>.probs.npy`` that
``mmcal calibrate`` stores beside its regime fit; without it the regime HMM's probabilities
at its EM point (as ``mmcal fit`` takes them).

``alpha``: one default fit (nutpie, 4 x (1000 + 1000)) per seed of the threshold variant,
sampled at ``--target-accept`` exactly (``alpha.build_model`` through nutpie directly, JAX
backend and pytensor's gradient as ``models.sampling.sample`` runs it, bypassing the floor of
``alpha.fit``), with nutpie's divergence
locations: for each divergent transition the start and end of the trajectory in the
sampled coordinates (floor share on the log-odds scale, log decay, ...).
``regime``: one default fit per seed (``--draws`` per chain, default 1000); the worst
tail ESS and the tail ESS of ``regime_transition[low, normal]`` at its 5 % and 95 %
quantiles.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np

DATA = "../shared/data/lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip"


def seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return out


def load(model: str, data: str, probs: str | None):
    from flows.fitting import observation_config, read_market_for
    from models import catalog
    from models.data.observations import volatility_bars

    market = read_market_for((model,), "lobster", Path(data), None)
    cfg = observation_config(market, None)
    bars = volatility_bars(market, cfg)
    P = None
    if catalog.spec(model).uses_regimes:
        P = np.load(probs) if probs else catalog.regime_probabilities(market, bars=bars, config=cfg)
        if len(P) != len(bars):
            raise SystemExit(f"--probs: {probs} has {len(P)} rows, the market {len(bars)} bars")
    return catalog.observations(model, market, P, config=cfg, bars=bars), cfg


def run_alpha(args) -> None:
    import nutpie

    from models import alpha
    from models.sampling import diagnostics

    obs, _ = load("alpha", args.data, args.probs)
    model = alpha.build_model(obs)
    compiled = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="pytensor")
    print(f"alpha on {args.data}: {obs.n_fills} fills, target_accept {args.target_accept}, "
          f"load {os.getloadavg()[0]:.1f}")
    for seed in seeds(args.seeds):
        t = time.perf_counter()
        idata = nutpie.sample(compiled, draws=1000, tune=1000, chains=4, seed=seed, progress_bar=False,
                              target_accept=args.target_accept, store_divergences=True)
        wall = time.perf_counter() - t
        ss = idata.sample_stats
        d = diagnostics(idata)
        print(f"seed {seed}: divergences {d['divergences']}, leapfrog steps/draw "
              f"{float(ss.n_steps.mean()):.1f}, min ess_bulk {d['ess_bulk_min']:.0f}, min ess_tail "
              f"{d['ess_tail_min']:.0f}, max r_hat {d['r_hat_max']:.3f}, {wall:.0f} s", flush=True)
        div = ss.diverging.values
        if div.any():
            dim = ss["divergence_start"].dims[-1]
            names = [str(x) for x in ss["divergence_start"].coords[dim].values]
            keep = [i for i, n in enumerate(names) if "floor" in n or "decay" in n or "scale" in n]
            for s, e in zip(ss["divergence_start"].values[div], ss["divergence_end"].values[div]):
                print("   " + ", ".join(f"{names[i]} {s[i]:.2f} -> {e[i]:.2f}" for i in keep))


def run_regime(args) -> None:
    from models import catalog, regime
    from models.sampling import SamplerConfig

    obs, cfg = load("regime", args.data, None)
    mc = catalog.model_config("regime", None, cfg)
    print(f"regime on {args.data}: {obs.n_bars} bars, load {os.getloadavg()[0]:.1f}")
    for seed in seeds(args.seeds):
        t = time.perf_counter()
        idata = regime.fit(obs, SamplerConfig(seed=seed, draws=args.draws, progressbar=False), mc)
        print(_regime_line(idata, seed, args.draws, time.perf_counter() - t), flush=True)


def _regime_line(idata, seed: int, draws: int, wall: float, steps: bool = False) -> str:
    """One fit's line: P[low,normal], its tail and quantile ESS, the lowest tail ESS."""
    import arviz as az

    from models.sampling import diagnostics

    d = diagnostics(idata)
    x = idata.posterior["regime_transition"].sel(regime_from="low", regime_to="normal").values
    q = {p: float(az.ess(x, method="quantile", prob=p)) for p in (0.05, 0.95)}
    low = sorted((v["ess_tail"], k) for k, v in d["per_param"].items() if v["ess_tail"] is not None)[:3]
    st = f"; steps/draw {float(idata.sample_stats.n_steps.mean()):.1f}" if steps else ""
    return (f"seed {seed}, 4 x {draws}: P[low,normal] mean {x.mean():.3f} sd {x.std():.3f}, ess_tail "
            f"{d['per_param']['regime_transition[low,normal]']['ess_tail']:.0f} (q05 {q[0.05]:.0f}, "
            f"q95 {q[0.95]:.0f}); lowest ess_tail {[(round(v), k) for v, k in low]}; divergences "
            f"{d['divergences']}{st}; {wall:.0f} s")


def run_regime_low_rank(args) -> None:
    """The regime fit of :func:`run_regime` with nutpie's low-rank modified mass matrix
    (``low_rank_modified_mass_matrix=True``: the diagonal plus the leading directions of
    the draws' and gradients' covariance), nutpie called directly as ``regime.fit`` calls
    it (JAX backend, JAX gradient, target_accept 0.95)."""
    import nutpie

    from models import catalog, regime
    from models.regime.em import em_fit

    obs, cfg = load("regime", args.data, None)
    mc = catalog.model_config("regime", None, cfg)
    model = regime.build_model(obs, mc, reference=em_fit(obs, mc))
    compiled = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax")
    print(f"regime (low-rank mass matrix) on {args.data}: {obs.n_bars} bars, load {os.getloadavg()[0]:.1f}")
    for seed in seeds(args.seeds):
        t = time.perf_counter()
        idata = nutpie.sample(compiled, draws=args.draws, tune=1000, chains=4, seed=seed, progress_bar=False,
                              target_accept=0.95, low_rank_modified_mass_matrix=True)
        print(_regime_line(idata, seed, args.draws, time.perf_counter() - t, steps=True), flush=True)


def main() -> None:
    warnings.simplefilter("ignore")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("alpha", "regime", "regime-low-rank"))
    p.add_argument("--data", default=DATA)
    p.add_argument("--probs", default=None)
    p.add_argument("--seeds", default="0-7")
    p.add_argument("--target-accept", type=float, default=0.99)
    p.add_argument("--draws", type=int, default=1000, help="regime: draws per chain")
    args = p.parse_args()
    {"alpha": run_alpha, "regime": run_regime, "regime-low-rank": run_regime_low_rank}[args.what](args)


if __name__ == "__main__":
    main()
