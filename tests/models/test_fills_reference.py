"""The independent estimators of benchmarks/fills_reference.py: the piecewise-exponential
hazard MLE (a Poisson GLM with the exposure as offset) recovers a known hazard and agrees
with a direct maximisation of the survival likelihood; the seed bootstrap of the pooled
coverage resamples whole seeds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "fills_reference.py"
_spec = importlib.util.spec_from_file_location("fills_reference", _PATH)
fr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fr)


def _simulate(rng, n=6000):
    cuts = np.array([0.0, 0.5, 2.0])
    ratio = np.array([1.0, 0.6, 0.3])
    R = rng.integers(0, 2, n)
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 3, n).astype(float)])
    lam = np.array([1.5, 3.0])[R] * np.exp(X @ np.array([-0.5, -0.7]))
    # inverse of the cumulative piecewise hazard
    G = np.concatenate([[0.0], np.cumsum(ratio[:-1] * np.diff(cuts))])
    g = rng.exponential(size=n) / lam
    t = np.where(g < G[-1], np.interp(g, G, cuts), cuts[-1] + (g - G[-1]) / ratio[-1])
    cens = rng.uniform(0.2, 5.0, n)
    dur = np.minimum(t, cens)
    hi = np.append(cuts[1:], np.inf)
    E = np.clip(dur[:, None] - cuts[None, :], 0.0, (hi - cuts)[None, :])
    D = np.zeros_like(E)
    filled = t < cens
    piece = np.searchsorted(cuts, dur, side="right") - 1
    D[np.flatnonzero(filled), piece[filled]] = 1.0
    return E, D, R, X


def test_hazard_mle_recovers_the_truth_and_maximises_the_survival_likelihood():
    E, D, R, X = _simulate(np.random.default_rng(3))
    b, cov = fr.hazard_mle(E, D, R, X, keep=[0, 1])
    truth = np.array([np.log(1.5), np.log(3.0), np.log(0.6), np.log(0.3), -0.5, -0.7])
    assert np.all(np.abs(b - truth) < 4 * np.sqrt(np.diag(cov)))

    def nll(p):   # the survival likelihood written directly
        lh = p[:2][R] + X @ p[4:]
        lr = np.concatenate([[0.0], p[2:4]])
        return -(np.sum(D @ lr + D.sum(1) * lh) - np.sum(np.exp(lh) * (E @ np.exp(lr))))

    direct = minimize(nll, np.zeros(6), method="BFGS", options={"gtol": 1e-8})
    assert b == pytest.approx(direct.x, abs=1e-4)


def test_pooled_coverage_resamples_whole_seeds():
    per_seed = {s: {f"p{i}": {"z": 0.0, "in90": i < k} for i in range(10)}
                for s, k in zip(range(6), [10, 10, 10, 5, 5, 5])}
    p = fr.pooled(per_seed)
    assert (p["k"], p["n"]) == (45, 60)
    lo, hi = p["boot"]
    assert lo < 0.75 < hi and (hi - lo) > (p["wilson"][1] - p["wilson"][0])
