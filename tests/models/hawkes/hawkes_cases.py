"""Shared cases for the Hawkes tests: random parameters, sticky regime paths, tied
timestamps and batched parameters."""

from __future__ import annotations

import dataclasses

import numpy as np

from models import hawkes as H

P_STICKY = np.array([[0.97, 0.02, 0.008, 0.002], [0.01, 0.97, 0.015, 0.005],
                     [0.005, 0.03, 0.95, 0.015], [0.005, 0.02, 0.05, 0.925]])


def regime_path(rng, n_bars, start=1):
    path = [start]
    for _ in range(n_bars - 1):
        path.append(int(rng.choice(4, p=P_STICKY[path[-1]])))
    return tuple(path)


def random_truth(rng, duration_s=600.0, asset="SIM", rate_scale=1.0) -> H.HawkesTruth:
    """Random parameters with rho(n) < 0.85 and a random (non-sticky) regime path."""
    while True:
        n = rng.uniform(0.0, 0.5, (2, 2))
        if H.spectral_radius(n) < 0.85:
            break
    mu = rng.uniform(0.1, 1.5, (4, 2)) * rate_scale
    path = tuple(int(x) for x in rng.integers(0, 4, int(np.ceil(duration_s / 10))))
    return H.HawkesTruth(baseline=tuple(map(tuple, mu)), branching=tuple(map(tuple, n)),
                         decay=float(rng.uniform(0.3, 8.0)), regime_path=path,
                         duration_s=duration_s, asset=asset)


def with_ties(obs: H.HawkesObs, resolution_s: float) -> H.HawkesObs:
    """Round times down to a clock resolution: creates same-timestamp events."""
    return dataclasses.replace(obs, t=np.floor(obs.t / resolution_s) * resolution_s)


def batched(*params):
    return {k: np.stack([np.asarray(p[k], float) for p in params]) for k in ("mu", "n", "beta")}
