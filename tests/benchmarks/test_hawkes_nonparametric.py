"""The independent Hawkes estimators of benchmarks/hawkes_kernel_estimators.py (run on real
data by benchmarks/hawkes_nonparametric.py): the blocked
exponential recursion against the O(N^2) sum (ties included), the analytic gradient
against finite differences, and on a simulated two-scale Hawkes process (exact cluster
simulation) the EM histogram kernel's and the MLE's recovery of the known kernel and the
Exp(1) law of the true model's time-rescaled residuals."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "hawkes_kernel_estimators.py"
_spec = importlib.util.spec_from_file_location("hawkes_kernel_estimators", _PATH)
hn = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = hn
_spec.loader.exec_module(hn)

MU = np.array([0.3, 0.2])
ALPHA = np.array([[[0.30, 0.10], [0.05, 0.25]],      # fast component, [target, source]
                  [[0.15, 0.05], [0.05, 0.20]]])     # slow component
BETA = np.array([50.0, 0.5])


@pytest.fixture(scope="module")
def sim():
    return hn.simulate(MU, ALPHA, BETA, 3000.0, 7)


def test_blocked_recursion_matches_the_double_sum_with_ties():
    rng = np.random.default_rng(0)
    t = np.sort(np.round(rng.uniform(0, 20, 300), 2))          # 10 ms grid: many ties
    seg = hn.Segment(t, rng.integers(0, 2, 300).astype(np.int8), 20.0)
    lay = hn.Layout(seg, K=8)
    assert lay.nb > 10 and len(lay.u) < 300
    A, S = lay.states(np.array([300.0, 2.0, 0.01]), deriv=True)
    for m, b in enumerate((300.0, 2.0, 0.01)):
        np.testing.assert_allclose(A[m], hn.naive_states(lay.u, lay.X, b), rtol=1e-10, atol=1e-12)
        h = 1e-6 * b
        dA = (hn.naive_states(lay.u, lay.X, b + h) - hn.naive_states(lay.u, lay.X, b - h)) / (2 * h)
        np.testing.assert_allclose(-S[m], dA, rtol=1e-5, atol=1e-8)


def test_loglik_gradient_matches_finite_differences(sim):
    lay = hn.Layout(sim)
    ll, gm, ga, gb = hn.loglik(lay, MU, ALPHA, BETA, grad=True)
    h = 1e-6
    assert (hn.loglik(lay, MU + [h, 0], ALPHA, BETA) - ll) / h == pytest.approx(gm[0], rel=1e-3)
    a2 = ALPHA.copy()
    a2[1, 0, 1] += h
    assert (hn.loglik(lay, MU, a2, BETA) - ll) / h == pytest.approx(ga[1, 0, 1], rel=1e-3)
    for m in (0, 1):
        b2 = BETA.copy()
        b2[m] += h * BETA[m]
        assert (hn.loglik(lay, MU, ALPHA, b2) - ll) / (h * BETA[m]) == pytest.approx(gb[m], rel=1e-3, abs=1e-3)


def test_em_histogram_recovers_the_branching_matrix(sim):
    em = hn.fit_em([sim])
    truth = ALPHA.sum(0)
    assert np.max(np.abs(em["n"] - truth)) < 0.1, em["n"]
    assert em["radius"] == pytest.approx(hn.spectral_radius(truth), abs=0.08)
    # the fast kernel's mass sits at lags below 0.1 s, the slow one's above
    e, w = em["edges"], np.diff(em["edges"])
    fast = np.einsum("tsk,k->ts", em["phi"][:, :, e[1:] <= 0.1], w[e[1:] <= 0.1])
    assert np.max(np.abs(fast - ALPHA[0])) < 0.1, fast


def test_mle_recovers_decays_and_weights(sim):
    start = {"mu": [0.2, 0.2], "alpha": np.full((2, 2, 2), 0.1), "beta": [10.0, 1.0]}
    p = hn.fit_mle([sim], 2, [start])
    assert p["converged"]
    np.testing.assert_allclose(p["beta"], BETA, rtol=0.3)
    assert np.max(np.abs(p["alpha"] - ALPHA)) < 0.1, p["alpha"]
    assert p["ll"] >= hn.total_loglik([sim], {"mu": MU, "alpha": ALPHA, "beta": BETA})


def test_true_model_residuals_are_exp1_and_poisson_residuals_are_not(sim):
    train, cut = hn.split([sim], 0.7)
    assert sum(s.T for s in train) == pytest.approx(0.7 * sim.T)
    r = hn.rescaled_residuals([sim], {"mu": MU, "alpha": ALPHA, "beta": BETA}, after=cut)
    assert sum(len(x) for x in r) == int(np.sum(sim.t > cut))
    for x in r:
        assert stats.kstest(x, "expon").pvalue > 0.01
        assert x.mean() == pytest.approx(1.0, abs=0.1)
    rate = np.bincount(sim.side, minlength=2) / sim.T
    r0 = hn.rescaled_residuals([sim], {"mu": rate, "alpha": np.zeros((1, 2, 2)), "beta": np.ones(1)}, after=cut)
    assert all(stats.kstest(x, "expon").pvalue < 1e-6 for x in r0)


def test_baseline_refit_after_the_cut():
    rng = np.random.default_rng(3)
    t = np.sort(np.concatenate([rng.uniform(0, 700, 700), rng.uniform(700, 1000, 900)]))
    seg = hn.Segment(t, rng.integers(0, 2, len(t)).astype(np.int8), 1000.0)
    p = {"mu": np.array([0.5, 0.5]), "alpha": np.zeros((1, 2, 2)), "beta": np.ones(1)}
    mu2 = hn.refit_baseline_after([seg], p, 700.0)          # no kernel: the counts over the time
    after = seg.side[seg.t > 700]
    np.testing.assert_allclose(mu2, [np.sum(after == 0) / 300, np.sum(after == 1) / 300], rtol=1e-8)
    train, cut = hn.split([seg], 0.7)
    held = [stats.kstest(x, "expon") for x in hn.rescaled_residuals([seg], p, after=cut)]
    refit = [stats.kstest(x, "expon") for x in hn.rescaled_residuals([seg], p, after=cut, mu_after=mu2)]
    assert all(k.pvalue < 1e-6 for k in held) and all(k.pvalue > 0.01 for k in refit)
