"""Kappa on soft regimes: local modes of the posterior and the default fit's diagnostics
on a real day (benchmarks/README.md, "Kappa on soft regimes: the modes of the regime
mixture"; docs/models/kappa.md, "Soft regimes").

    uv run python benchmarks/kappa_soft_modes.py modes [--probs P.npy]
    uv run python benchmarks/kappa_soft_modes.py fit --soft-likelihood expected [--probs P.npy]

The observations are built as ``mmcal calibrate`` builds them (``flows.tasks.observations``:
the observation rules of ``flows.fitting.observation_config``, MedRV bars, the regime
probabilities of every bar). ``--probs`` is an (n_bars x 4) ``.npy`` of regime
probabilities, e.g. the ``<regime key>.probs.npy`` that ``mmcal calibrate`` stores beside its
regime fit (the smoothed probabilities of the regime posterior); without it the regime
HMM's probabilities at its EM point (``models.catalog.regime_probabilities``, as ``mmcal
fit`` takes them).

``modes``: how spread the count blocks' regime probabilities are, then the local maxima of
the sampled log density (the model's joint density in its unconstrained coordinates, the
Jacobian included) that L-BFGS reaches from ``--starts`` dispersed starts, for the soft
likelihood as a mixture over the regimes, as their expected log-likelihood, and for the
hard (argmax) path. ``fit``: one NUTS fit with the default sampler settings (nutpie, 4 x
(1000 + 1000)) unless set; R-hat, ESS, divergences, the gate's verdict, wall time and the
machine's load, and the per-chain posterior means of kappa.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

DATA = "../shared/data/lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip"


def load_obs(data: str, source: str, probs: str | None):
    from flows.fitting import observation_config, read_market_for
    from models import catalog
    from models.data.observations import volatility_bars

    market = read_market_for(("kappa",), source, Path(data), None)
    cfg = observation_config(market, None)
    bars = volatility_bars(market, cfg)
    P = np.load(probs) if probs else catalog.regime_probabilities(market, bars=bars, config=cfg)
    if len(P) != len(bars):
        raise SystemExit(f"--probs: {probs} has {len(P)} rows, the market {len(bars)} bars")
    return catalog.observations("kappa", market, P, config=cfg, bars=bars)


def _values(model):
    """kappa and arrival_rate at a point of the model's value variables."""
    import pytensor

    outs = model.replace_rvs_by_values([model["kappa"], model["arrival_rate"]])
    fn = pytensor.function(model.value_vars, outs, on_unused_input="ignore")
    return lambda point: fn(*[point[v.name] for v in model.value_vars])


def local_modes(model, starts: int, seed: int, scale: float = 1.5):
    """[(log density, kappa (8,), A (8,))] of the L-BFGS maxima from ``starts`` starts
    ``Normal(initial point, scale)`` in the sampled coordinates."""
    from pymc.blocking import DictToArrayBijection, RaveledVars
    from scipy.optimize import minimize

    start = model.initial_point()
    x0 = DictToArrayBijection.map({v.name: start[v.name] for v in model.value_vars})
    f = DictToArrayBijection.mapf(model.compile_fn([model.logp(), model.dlogp()], inputs=model.value_vars),
                                  start)
    info = x0.point_map_info

    def cost(x):
        v, g = f(RaveledVars(x, info))
        return -float(v), -np.asarray(g, dtype=float)

    values, rng, out = _values(model), np.random.default_rng(seed), []
    for _ in range(starts):
        r = minimize(cost, x0.data + scale * rng.standard_normal(x0.data.size), jac=True, method="L-BFGS-B",
                     options={"maxiter": 10000})
        point = DictToArrayBijection.rmap(RaveledVars(r.x, info), start)
        k, a = values(point)
        out.append((-float(r.fun), np.ravel(k), np.ravel(a)))
    return out


def cmd_modes(args) -> None:
    from models.kappa.model import KappaConfig, block_rows, build_model

    obs = load_obs(args.data, args.source, args.probs)
    rows = block_rows(obs, KappaConfig())
    top = rows["prob"][::2].max(axis=1)
    print(f"{obs.n_bars} bars, {obs.n_arrivals:,} arrivals, {rows['n_blocks']} count blocks; blocks whose "
          f"most probable regime has p < 0.99 / 0.9 / 0.7 / 0.5: "
          + " / ".join(str(int((top < t).sum())) for t in (0.99, 0.9, 0.7, 0.5)))
    cases = {"mixture": (obs, KappaConfig(soft_likelihood="mixture")),
             "expected": (obs, KappaConfig(soft_likelihood="expected")),
             "hard (argmax)": (dataclasses.replace(obs, bar_prob=None), KappaConfig())}
    for name, (o, cfg) in cases.items():
        modes = local_modes(build_model(o, cfg), args.starts, args.seed)
        distinct = sorted({round(lp, 1) for lp, _, _ in modes}, reverse=True)
        print(f"\n{name}: {len(distinct)} distinct local maxima from {args.starts} starts; log density "
              + ", ".join(f"{v:.1f}" for v in distinct))
        seen = set()
        for lp, k, a in sorted(modes, key=lambda m: -m[0]):
            if round(lp, 1) not in seen:    # one line per distinct maximum
                seen.add(round(lp, 1))
                print(f"  {lp:10.2f}  kappa {np.array2string(k, precision=2)}  A {np.array2string(a, precision=2)}")


def cmd_fit(args) -> None:
    from models.kappa.model import KappaConfig, fit
    from models.sampling import SamplerConfig, diagnostics, gate

    obs = load_obs(args.data, args.source, args.probs)
    sc = SamplerConfig(chains=args.chains, draws=args.draws, tune=args.tune, seed=args.seed, progressbar=False)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    idata = fit(obs, sc, KappaConfig(soft_likelihood=args.soft_likelihood))
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    d = diagnostics(idata)
    verdict = gate(d)
    k = idata.posterior["kappa"].mean("draw").values.reshape(args.chains, -1)
    print(json.dumps({"soft_likelihood": args.soft_likelihood, "chains": args.chains, "draws": args.draws,
                      "tune": args.tune, "seed": args.seed, "wall_s": round(wall, 1),
                      "load_before": [round(x, 2) for x in load0], "load_after": [round(x, 2) for x in load1],
                      "r_hat_max": d["r_hat_max"], "r_hat_worst": d["r_hat_worst"],
                      "ess_bulk_min": d["ess_bulk_min"], "ess_tail_min": d["ess_tail_min"],
                      "divergences": d["divergences"], "bfmi_min": d["bfmi_min"],
                      "gate": "pass" if verdict.passed else "; ".join(verdict.failures)}, default=str))
    for c in range(args.chains):
        print(f"chain {c} mean kappa {np.array2string(k[c], precision=2)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("modes", "fit"):
        p = sub.add_parser(name)
        p.add_argument("--data", default=DATA)
        p.add_argument("--source", default="lobster")
        p.add_argument("--probs", default=None, help="(n_bars x 4) .npy of regime probabilities")
        p.add_argument("--seed", type=int, default=0)
    sub.choices["modes"].add_argument("--starts", type=int, default=8)
    f = sub.choices["fit"]
    f.add_argument("--soft-likelihood", choices=("expected", "mixture"), default="expected")
    f.add_argument("--chains", type=int, default=4)
    f.add_argument("--draws", type=int, default=1000)
    f.add_argument("--tune", type=int, default=1000)
    args = ap.parse_args()
    {"modes": cmd_modes, "fit": cmd_fit}[args.cmd](args)


if __name__ == "__main__":
    main()
