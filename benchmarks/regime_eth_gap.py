"""The regimes and the Hawkes baselines on the Hyperliquid ETH recording with its
~240 s outage (issue 17, item 2 evidence): realized vs MedRV bars, hard (argmax) vs
soft regimes, with and without recording-gap masking.

For each setting: the volatility bars (bar length chosen from the data, as ``mmcal fit``
does), the regime HMM's EM/MAP probabilities (``models.catalog.regime_probabilities``),
the bars per most probable regime, the soft occupancy (sum of probabilities), the
regime of the bars that lie in the outage (only without masking: with it they are not
bars), and the maximum-likelihood regime-baseline Hawkes fit on those regimes
(L-BFGS on ``models.hawkes.loglik_value_and_grad``, log parameters, three starts; the
regimes with less than one bar of probability-weighted time left out): baselines per
regime, branching ratio (spectral radius), decay.

    uv run python benchmarks/regime_eth_gap.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DATA = REPO.parent / "shared" / "data" / "hyperliquid" / "recorder_2025-12-10_ETH"


def hawkes_mle(obs, starts=((0.3, 0.3, 0.3), (0.1, 0.5, 1.0), (0.5, 0.1, 0.1))):
    """Regime-baseline Hawkes MLE: (mu (4, 2), n (2, 2), beta, loglik)."""
    import jax.numpy as jnp
    from scipy.optimize import minimize

    from models import hawkes

    # a regime with less than one bar of (probability-weighted) time is left out: its baseline
    # is not identified, and the MLE would use it as a free bump on the bars where it has a
    # 0.1 % probability (the Bayesian fit's partial pooling shrinks it instead)
    occupied = obs.regime_time()[0] >= float(obs.meta.get("bar_seconds", 10.0))

    def unpack(x):
        mu = np.full((4, 2), 1e-12)
        k = int(occupied.sum()) * 2
        mu[occupied] = np.exp(x[:k]).reshape(-1, 2)
        return mu, np.exp(x[k:k + 4]).reshape(2, 2), np.exp(x[k + 4])

    def f(x):
        mu, n, beta = unpack(x)
        v, g = hawkes.loglik_value_and_grad({"mu": jnp.asarray(mu), "n": jnp.asarray(n),
                                             "beta": jnp.asarray(beta)}, obs)
        if not np.isfinite(float(v)) or np.max(np.abs(np.linalg.eigvals(n))) >= 1:
            return 1e12, np.zeros_like(x)
        gm = np.asarray(g["mu"]).reshape(4, 2)[occupied].ravel() * mu[occupied].ravel()
        gn = np.asarray(g["n"]).ravel() * n.ravel()
        gb = float(np.asarray(g["beta"]).ravel()[0]) * beta
        return -float(v), -np.concatenate([gm, gn, [gb]])

    best = None
    for m0, n0, b0 in starts:
        x0 = np.concatenate([np.full(int(occupied.sum()) * 2, np.log(m0)), np.full(4, np.log(n0 / 2)), [np.log(b0)]])
        r = minimize(f, x0, jac=True, method="L-BFGS-B")
        if best is None or r.fun < best.fun:
            best = r
    mu, n, beta = unpack(best.x)
    return mu, n, float(beta), -float(best.fun)


def run(estimator: str, masked: bool, soft: bool) -> dict:
    from flows.fitting import observation_config, read_market
    from models import catalog, hawkes
    from models.data import observations as ob
    from models.data.gaps import find_gaps

    market = read_market("hyperliquid", DATA, "ETH")
    settings = {"volatility_estimator": estimator}
    if not masked:
        settings.update(gap_factor=1e9, gap_min_seconds=1e9)
    cfg = observation_config(market, settings)
    bars = ob.volatility_bars(market, cfg)
    probs = catalog.regime_probabilities(market, bars=bars, config=cfg)
    lab = np.argmax(probs, axis=1)
    outage = find_gaps(market, ob.ObservationConfig())          # the outages, by the default rule
    s = bars["bar_start"].to_numpy(np.int64)
    e = bars["bar_end"].to_numpy(np.int64)
    in_out = np.zeros(len(bars), bool)
    for a, b in zip(outage["start_ns"], outage["end_ns"]):
        in_out |= (s < b) & (e > a) & ((np.minimum(e, b) - np.maximum(s, a)) > 0.5 * (e - s))
    obs = hawkes.observations(market, probs if soft else lab.astype(np.int8), config=cfg, bars=bars)
    t0 = time.perf_counter()
    mu, n, beta, ll = hawkes_mle(obs)
    return {"estimator": estimator, "masked": masked, "soft": soft, "bar_s": cfg.bar_seconds,
            "bars": len(bars), "labels": np.bincount(lab, minlength=4).tolist(),
            "occupancy": probs.sum(0).round(1).tolist(),
            "outage_bars": int(in_out.sum()), "outage_labels": np.bincount(lab[in_out], minlength=4).tolist(),
            "regime_time_s": obs.regime_time()[0].round(1).tolist(),
            "mu": mu.round(3).tolist(), "branching": float(np.max(np.abs(np.linalg.eigvals(n)))),
            "decay": beta, "loglik": ll, "mle_s": time.perf_counter() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.parse_args(argv)
    rows = [run(est, masked, soft) for est, masked, soft in
            (("realized", False, False), ("realized", True, False), ("medrv", False, False),
             ("medrv", True, False), ("medrv", True, True))]
    print("| bars | masked | regimes | n bars (s) | argmax low/normal/high/extreme | soft occupancy | "
          "outage bars: labels | regime time (s) | mu low buy/sell | mu normal buy/sell | spectral radius | decay |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['estimator']} | {'yes' if r['masked'] else 'no'} | {'soft' if r['soft'] else 'argmax'} | "
              f"{r['bars']} x {r['bar_s']:g} | {' / '.join(map(str, r['labels']))} | "
              f"{' / '.join(map(str, r['occupancy']))} | {r['outage_bars']}: {' / '.join(map(str, r['outage_labels']))} | "
              f"{' / '.join(map(str, r['regime_time_s']))} | {r['mu'][0][0]:.3g} / {r['mu'][0][1]:.3g} | "
              f"{r['mu'][1][0]:.3g} / {r['mu'][1][1]:.3g} | {r['branching']:.3f} | {r['decay']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
