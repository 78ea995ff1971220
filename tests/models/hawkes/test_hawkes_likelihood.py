"""Hawkes likelihood (models.hawkes.likelihood): the O(N) scan vs the O(N^2)
reference, several assets, ties, and the exact gradient (DESIGN.md section 4)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hawkes_cases import batched, random_truth, with_ties

from models import hawkes as H
from models.hawkes.likelihood import _jax_carry_scan, _jax_sweep, _total_blocks


@pytest.mark.parametrize("seed", range(6))
def test_loglik_matches_naive(seed):
    rng = np.random.default_rng(seed)
    truth = random_truth(rng, duration_s=float(rng.uniform(200, 500)), rate_scale=0.5)
    obs = H.simulate(truth, rng)
    if seed % 2:                        # ties: a 0.1 s / 1 s clock
        obs = with_ties(obs, 0.1 if seed % 3 else 1.0)
        assert np.any(np.diff(obs.t) == 0)
    assert 50 < obs.n_events <= 2000
    p = truth.params()
    ref = H.loglik_naive(p, obs)
    assert abs(float(H.loglik_jax(p, obs)) - ref) <= 1e-8 * abs(ref)
    assert abs(float(H.pointwise_loglik_jax(p, obs).sum()) - ref) <= 1e-8 * abs(ref)
    # block size does not matter
    assert abs(float(H.loglik_jax(p, H.jax_data(obs, block=3))) - ref) <= 1e-8 * abs(ref)


def test_loglik_several_assets_is_sum_of_assets():
    rng = np.random.default_rng(11)
    t1, t2 = random_truth(rng, 500, "A"), random_truth(rng, 800, "B", rate_scale=0.3)
    o1, o2 = H.simulate(t1, rng), with_ties(H.simulate(t2, rng), 0.5)
    both = H.combine(o1, o2)
    p = batched(t1.params(), t2.params())
    ref = H.loglik_naive(t1.params(), o1) + H.loglik_naive(t2.params(), o2)
    assert abs(H.loglik_naive(p, both) - ref) <= 1e-10 * abs(ref)
    assert abs(float(H.loglik_jax(p, both)) - ref) <= 1e-8 * abs(ref)
    assert abs(float(H.pointwise_loglik_jax(p, both).sum()) - ref) <= 1e-8 * abs(ref)
    assert both.select("B").n_events == o2.n_events


def test_ties_do_not_excite_each_other():
    # two events at the same instant: the second one's intensity is the baseline only
    obs = H.HawkesObs(assets=("X",), t=np.array([1.0, 1.0]), side=np.array([0, 1], np.int8),
                      asset=np.zeros(2, np.int32), regime=np.zeros(2, np.int8),
                      duration_s=np.array([2.0]), bar_edges=(np.array([0.0]),),
                      bar_regime=(np.array([0], np.int8),))
    p = {"mu": np.full((4, 2), 0.5), "n": np.full((2, 2), 0.3), "beta": np.array(2.0)}
    comp = 2 * 0.5 * 2.0 + 2 * 0.6 * (1 - np.exp(-2.0))
    expect = 2 * np.log(0.5) - comp
    assert float(H.loglik_jax(p, obs)) == pytest.approx(expect, rel=1e-12)
    assert H.loglik_naive(p, obs) == pytest.approx(expect, rel=1e-12)


def _fd_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = h * max(1.0, abs(x.flat[i]))
        g.flat[i] = (f(x + e) - f(x - e)) / (2 * e.flat[i])
    return g


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_vs_finite_differences(seed):
    rng = np.random.default_rng(100 + seed)
    truth = random_truth(rng, 400)
    obs = H.simulate(truth, rng)
    if seed == 1:
        obs = with_ties(obs, 0.2)
    d = H.jax_data(obs)
    p = truth.params()
    _, g = H.loglik_value_and_grad(p, d)
    for k in ("mu", "n", "beta"):
        def f(x, k=k):
            q = dict(p)
            q[k] = x
            return float(H.loglik_jax(q, d))
        fd = _fd_grad(f, np.asarray(p[k], float))
        np.testing.assert_allclose(np.asarray(g[k]), fd, rtol=1e-5, atol=1e-5)
    # jax.grad of loglik_jax goes through the same custom VJP
    g2 = jax.grad(lambda q: H.loglik_jax(q, d))({k: jnp.asarray(v, float) for k, v in p.items()})
    for k in g:
        np.testing.assert_allclose(np.asarray(g2[k]), np.asarray(g[k]), rtol=1e-12)


def test_analytic_gradient_matches_autodiff_several_assets():
    rng = np.random.default_rng(5)
    t1, t2 = random_truth(rng, 300, "A"), random_truth(rng, 300, "B")
    obs = H.combine(H.simulate(t1, rng), with_ties(H.simulate(t2, rng), 0.3))
    p = {k: jnp.asarray(v) for k, v in batched(t1.params(), t2.params()).items()}
    d = H.jax_data(obs, block=8)
    val, (g_mu, g_n, g_beta) = _jax_sweep(p["mu"], p["n"], p["beta"], d, grad=True)

    def plain(q):  # reverse-mode autodiff through the generic (python-unrolled) algorithm
        return _total_blocks(jnp, _jax_carry_scan, q["mu"], q["n"], q["beta"], d)

    v2, g2 = jax.value_and_grad(plain)(p)
    assert float(val) == pytest.approx(float(v2), rel=1e-12)
    for a, b in ((g_mu, g2["mu"]), (g_n, g2["n"]), (g_beta, g2["beta"])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-9)

