"""The M-component Hawkes kernel (models.hawkes): the O(N M) sweep and the per-event
terms against the O(N^2) definition, ties, several assets, the exact gradient against
finite differences, and M = 1 written with a component axis equal to today's kernel."""

from __future__ import annotations

import numpy as np
import pytest
from hawkes_cases import with_ties

from models import hawkes as H

MU = np.array([[0.4, 0.3], [0.2, 0.25], [0.6, 0.5], [0.1, 0.15]])
N3 = np.array([[[0.20, 0.05], [0.04, 0.15]],          # fast (1 ms)
               [[0.15, 0.05], [0.05, 0.20]],          # 1 s
               [[0.10, 0.02], [0.03, 0.10]]])         # 30 s
BETA3 = np.array([1000.0, 1.0, 1.0 / 30.0])


def _obs(seed, T=300.0, M=3, ties=None):
    rng = np.random.default_rng(seed)
    path = rng.integers(0, 4, int(np.ceil(T / 10)))
    obs = H.simulate_components(MU, N3[:M], BETA3[:M], T, rng, regime_path=path)
    return obs if ties is None else with_ties(obs, ties)


@pytest.mark.parametrize("M,ties", [(2, None), (3, None), (3, 1e-3)])
def test_components_match_naive(M, ties):
    obs = _obs(M, M=M, ties=ties)
    assert 100 < obs.n_events < 2500
    p = {"mu": MU, "n": N3[:M], "beta": BETA3[:M]}
    ref = H.loglik_naive(p, obs)
    assert abs(float(H.loglik_jax(p, obs)) - ref) <= 1e-8 * abs(ref)
    assert abs(float(H.pointwise_loglik_jax(p, obs).sum()) - ref) <= 1e-8 * abs(ref)
    assert abs(float(H.loglik_jax(p, H.jax_data(obs, block=5))) - ref) <= 1e-8 * abs(ref)


def test_one_component_axis_is_todays_kernel():
    obs = _obs(7, M=1)
    p1 = {"mu": MU, "n": N3[1], "beta": np.array(BETA3[1])}
    pm = {"mu": MU, "n": N3[1:2], "beta": BETA3[1:2]}
    v1, g1 = H.loglik_value_and_grad(p1, obs)
    vm, gm = H.loglik_value_and_grad(pm, obs)
    assert float(v1) == float(vm)
    np.testing.assert_array_equal(np.asarray(g1["n"]), np.asarray(gm["n"])[0])
    assert float(g1["beta"]) == float(np.asarray(gm["beta"])[0])


def test_components_several_assets():
    o1, o2 = _obs(11, M=2), with_ties(_obs(12, T=200.0, M=2), 0.01)
    o2 = H.HawkesObs(**{**o2.__dict__, "assets": ("B",)})
    both = H.combine(o1, o2)
    p = {"mu": np.stack([MU, 1.3 * MU]), "n": np.stack([N3[:2], 0.8 * N3[:2]]),
         "beta": np.stack([BETA3[:2], 2.0 * BETA3[:2]])}
    ref = sum(H.loglik_naive({k: v[a] for k, v in p.items()}, o) for a, o in enumerate((o1, o2)))
    assert abs(float(H.loglik_jax(p, both)) - ref) <= 1e-8 * abs(ref)
    assert abs(float(H.pointwise_loglik_jax(p, both).sum()) - ref) <= 1e-8 * abs(ref)
    _check_gradient(p, H.jax_data(both, block=8))


def _check_gradient(p, d):
    _, g = H.loglik_value_and_grad(p, d)
    for k in ("mu", "n", "beta"):
        x = np.asarray(p[k], float)
        fd = np.zeros_like(x)
        for i in range(x.size):
            e = np.zeros_like(x)
            e.flat[i] = 1e-6 * max(1.0, abs(x.flat[i]))
            hi, lo = dict(p), dict(p)
            hi[k], lo[k] = x + e, x - e
            fd.flat[i] = (float(H.loglik_jax(hi, d)) - float(H.loglik_jax(lo, d))) / (2 * e.flat[i])
        np.testing.assert_allclose(np.asarray(g[k]), fd, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("ties", [None, 1e-3])
def test_components_gradient_vs_finite_differences(ties):
    obs = _obs(21, T=200.0, M=3, ties=ties)
    _check_gradient({"mu": MU, "n": N3, "beta": BETA3}, H.jax_data(obs))


def test_simulate_components_rates():
    # stationary rate per side: (I - sum_m n^m)^{-1} mu
    obs = H.simulate_components(MU[:1].repeat(4, 0), N3, BETA3, 4000.0, 3)
    want = np.linalg.solve(np.eye(2) - N3.sum(0), MU[0])
    got = np.bincount(obs.side, minlength=2) / 4000.0
    np.testing.assert_allclose(got, want, rtol=0.15)
    with pytest.raises(ValueError, match="spectral radius"):
        H.simulate_components(MU, 2 * N3, BETA3, 10.0, 0)
