"""Conjugate families: posteriors vs closed forms, intervals vs scipy.stats."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from mm_runtime.conjugate import (
    BetaBernoulli,
    BetaParams,
    DirichletCategorical,
    DirichletParams,
    GammaExponential,
    GammaParams,
    GammaPoisson,
    InverseGammaKnownMean,
    InverseGammaParams,
    LogNormal,
    NIGParams,
    NormalInverseGamma,
    NormalKnownVariance,
    NormalParams,
    beta_ppf,
    gamma_ppf,
    student_t_ppf,
)

RNG = np.random.default_rng(7)
TAILS = (0.025, 0.975)


def seq_update(family, prior, xs, **kw):
    post = prior
    for x in xs:
        post = family.update(post, x, **kw)
    return post


def close(a, b, rtol=1e-9, atol=0.0):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------- quantiles
@pytest.mark.parametrize("a,b", [(0.5, 0.5), (2.0, 3.0), (150.0, 850.0), (0.05, 3.0), (3000.0, 10.0)])
def test_beta_ppf_matches_scipy(a, b):
    q = np.array([0.001, 0.025, 0.5, 0.975, 0.999])
    close(beta_ppf(q, a, b), stats.beta.ppf(q, a, b), rtol=1e-9)


@pytest.mark.parametrize("shape", [0.05, 0.5, 1.0, 4.0, 100.0, 1e5])
def test_gamma_ppf_matches_scipy(shape):
    q = np.array([0.001, 0.025, 0.5, 0.975, 0.999])
    close(gamma_ppf(q, shape, 2.0), stats.gamma.ppf(q, shape, scale=0.5), rtol=1e-9)


@pytest.mark.parametrize("df", [1.0, 2.0, 5.0, 30.0, 1000.0])
def test_t_ppf_matches_scipy(df):
    q = np.array([0.001, 0.025, 0.5, 0.975, 0.999])
    close(student_t_ppf(q, df), stats.t.ppf(q, df), rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- Beta
def test_beta_bernoulli_posterior_and_interval():
    prior = BetaParams(jnp.float64(2.0), jnp.float64(8.0))
    xs = RNG.random(50) < 0.3
    post = seq_update(BetaBernoulli, prior, xs.astype(float))
    k, n = xs.sum(), len(xs)
    close(post.a, 2 + k)
    close(post.b, 8 + n - k)
    close(BetaBernoulli.mean(post), (2 + k) / (10 + n))
    close(BetaBernoulli.std(post), stats.beta.std(2 + k, 8 + n - k))
    close(BetaBernoulli.interval(post), stats.beta.ppf(TAILS, 2 + k, 8 + n - k), rtol=1e-9)
    close(BetaBernoulli.n(post, prior), n)
    close(BetaBernoulli.data_weight(post, prior), n / (n + 10))
    # the shrinkage identity: mean = w·MLE + (1-w)·prior mean
    w = n / (n + 10)
    close(BetaBernoulli.mean(post), w * k / n + (1 - w) * 0.2)


def test_soft_update_is_weighted_and_zero_weight_is_noop():
    prior = BetaParams(jnp.ones(4), jnp.ones(4))
    probs = jnp.array([0.1, 0.2, 0.3, 0.4])  # regime probabilities
    post = BetaBernoulli.update(prior, 1.0, probs)
    close(post.a, 1.0 + probs)
    close(post.b, np.ones(4))
    same = BetaBernoulli.update(prior, 1.0, 0.0)
    close(same.a, prior.a)


def test_is_calibrated():
    prior = BetaParams(jnp.float64(1.0), jnp.float64(1.0))
    few = BetaBernoulli.update_counts(prior, 5.0, 5.0)
    many = BetaBernoulli.update_counts(prior, 60.0, 60.0)
    assert not bool(BetaBernoulli.is_calibrated(few, prior, 100, 0.5))
    assert bool(BetaBernoulli.is_calibrated(many, prior, 100, 0.5))
    assert not bool(BetaBernoulli.is_calibrated(many, prior, 100, 0.01))


def test_forget_halves_the_evidence_toward_the_prior():
    prior = BetaParams(jnp.float64(2.0), jnp.float64(8.0))
    post = BetaBernoulli.update_counts(prior, 30.0, 10.0)
    half = BetaBernoulli.forget(post, prior, dt=60.0, half_life=60.0)
    close(half.a, 2 + 15)
    close(half.b, 8 + 5)
    close(BetaBernoulli.forget(post, prior, 0.0, 60.0).a, post.a)
    far = BetaBernoulli.forget(post, prior, 1e6, 60.0)
    close(far.a, 2.0, rtol=1e-6)


# ----------------------------------------------------------------------------- Gamma
def test_gamma_poisson_posterior():
    prior = GammaParams(jnp.float64(10.0), jnp.float64(10.0))  # rate 1/s, 10 pseudo-events
    counts = RNG.poisson(2.0 * 0.5, size=40)  # 0.5 s windows at 2 /s
    post = prior
    for c in counts:
        post = GammaPoisson.update(post, float(c), 0.5)
    close(post.shape, 10 + counts.sum())
    close(post.rate, 10 + 20.0)
    close(GammaPoisson.mean(post), (10 + counts.sum()) / 30.0)
    close(GammaPoisson.interval(post), stats.gamma.ppf(TAILS, 10 + counts.sum(), scale=1 / 30.0), rtol=1e-9)
    close(GammaPoisson.data_weight(post, prior), counts.sum() / (counts.sum() + 10))


def test_gamma_exponential_posterior():
    prior = GammaParams(jnp.float64(4.0), jnp.float64(20.0))  # κ = 0.2 /bp
    xs = RNG.exponential(1 / 0.3, size=200)
    post = seq_update(GammaExponential, prior, xs)
    close(post.shape, 204)
    close(post.rate, 20 + xs.sum())
    close(GammaExponential.interval(post), stats.gamma.ppf(TAILS, 204, scale=1 / (20 + xs.sum())), rtol=1e-9)
    close(GammaExponential.cv(post), 1 / np.sqrt(204))
    assert abs(float(GammaExponential.mean(post)) - 0.3) < 0.05


# ----------------------------------------------------------------------------- Normal
def test_normal_known_variance():
    prior = NormalParams(jnp.float64(0.0), jnp.float64(4.0), jnp.float64(1.0))
    xs = RNG.normal(1.0, 1.0, size=30)
    post = seq_update(NormalKnownVariance, prior, xs)
    prec = 1 / 4 + 30
    close(post.var, 1 / prec)
    close(post.mu, xs.sum() / prec)
    close(NormalKnownVariance.interval(post), stats.norm.ppf(TAILS, xs.sum() / prec, np.sqrt(1 / prec)))
    close(NormalKnownVariance.n(post, prior), 30, rtol=1e-9)


def nig_batch(mu0, lam0, a0, b0, xs):
    n, xbar = len(xs), np.mean(xs)
    lam = lam0 + n
    mu = (lam0 * mu0 + n * xbar) / lam
    a = a0 + n / 2
    b = b0 + 0.5 * np.sum((xs - xbar) ** 2) + lam0 * n * (xbar - mu0) ** 2 / (2 * lam)
    return mu, lam, a, b


def test_normal_inverse_gamma():
    prior = NIGParams(jnp.float64(0.5), jnp.float64(2.0), jnp.float64(3.0), jnp.float64(2.0))
    xs = RNG.normal(1.5, 0.7, size=25)
    post = seq_update(NormalInverseGamma, prior, xs)
    mu, lam, a, b = nig_batch(0.5, 2.0, 3.0, 2.0, xs)
    close(post, (mu, lam, a, b))
    scale = np.sqrt(b / (lam * a))
    close(NormalInverseGamma.interval(post), stats.t.ppf(TAILS, 2 * a, loc=mu, scale=scale), rtol=1e-9)
    close(NormalInverseGamma.std(post), np.sqrt(b / (lam * (a - 1))))
    close(NormalInverseGamma.variance_mean(post), b / (a - 1))


def test_nig_soft_weights_equal_replicated_observations():
    prior = NIGParams(jnp.float64(0.0), jnp.float64(1.0), jnp.float64(2.0), jnp.float64(1.0))
    twice = NormalInverseGamma.update(NormalInverseGamma.update(prior, 1.3), 1.3)
    weighted = NormalInverseGamma.update(prior, 1.3, 2.0)
    close(weighted, twice)


def test_nig_forget_keeps_support_and_interpolates():
    prior = NIGParams(jnp.float64(0.0), jnp.float64(1.0), jnp.float64(2.0), jnp.float64(1.0))
    post = seq_update(NormalInverseGamma, prior, RNG.normal(3.0, 2.0, size=40))
    mid = NormalInverseGamma.forget(post, prior, 10.0, 10.0)
    close(mid.lam, 1.0 + 20.0)
    assert float(mid.scale) > 0
    assert 0.0 < float(mid.mu) < float(post.mu)


def test_inverse_gamma_known_mean():
    prior = InverseGammaParams(jnp.float64(3.0), jnp.float64(2.0), jnp.float64(0.0))
    xs = RNG.normal(0.0, 1.2, size=40)
    post = seq_update(InverseGammaKnownMean, prior, xs)
    a, b = 3 + 20, 2 + 0.5 * np.sum(xs**2)
    close((post.shape, post.scale), (a, b))
    close(InverseGammaKnownMean.mean(post), b / (a - 1))
    close(InverseGammaKnownMean.interval(post), stats.invgamma.ppf(TAILS, a, scale=b), rtol=1e-9)
    close(InverseGammaKnownMean.std(post), stats.invgamma.std(a, scale=b))


def test_lognormal_updates_location_and_spread():
    prior = NIGParams(jnp.float64(0.0), jnp.float64(1.0), jnp.float64(2.0), jnp.float64(1.0))
    xs = RNG.lognormal(np.log(8.0), 0.4, size=60)
    post = seq_update(LogNormal, prior, xs)
    mu, lam, a, b = nig_batch(0.0, 1.0, 2.0, 1.0, np.log(xs))
    close(post, (mu, lam, a, b))  # the variance is learned too (the original's flaw)
    assert float(post.scale) != float(prior.scale)
    close(LogNormal.median(post), np.exp(mu))
    close(LogNormal.mean(post), np.exp(mu + 0.5 * b / (a - 1)))
    lo_hi = stats.t.ppf(TAILS, 2 * a, loc=mu, scale=np.sqrt(b / (lam * a)))
    close(LogNormal.interval(post), np.exp(lo_hi), rtol=1e-9)
    assert 6.0 < float(LogNormal.median(post)) < 10.0


def test_dirichlet_categorical():
    prior = DirichletParams(jnp.array([1.0, 2.0, 3.0, 4.0]))
    draws = RNG.integers(0, 4, size=50)
    post = prior
    for d in draws:
        post = DirichletCategorical.update(post, jax.nn.one_hot(d, 4))
    counts = np.bincount(draws, minlength=4)
    close(post.concentration, np.array([1, 2, 3, 4]) + counts)
    c = np.array([1, 2, 3, 4]) + counts
    close(DirichletCategorical.mean(post), c / c.sum())
    lo, hi = DirichletCategorical.interval(post)
    close(lo, stats.beta.ppf(0.025, c, c.sum() - c), rtol=1e-9)
    close(hi, stats.beta.ppf(0.975, c, c.sum() - c), rtol=1e-9)
    close(DirichletCategorical.n(post, prior), 50)
    soft = DirichletCategorical.update(prior, jnp.array([0.25, 0.25, 0.5, 0.0]), 2.0)
    close(soft.concentration, [1.5, 2.5, 4.0, 4.0])


def test_families_jit_and_vmap_over_batches():
    prior = GammaParams(jnp.full((4, 2), 10.0), jnp.full((4, 2), 50.0))
    xs = jnp.asarray(RNG.exponential(5.0, size=(4, 2)))
    post = jax.jit(GammaExponential.update)(prior, xs)
    close(post.rate, 50.0 + np.asarray(xs))
    lo, hi = jax.jit(jax.vmap(GammaExponential.interval))(post)
    assert lo.shape == (4, 2) and bool(jnp.all(lo < hi))
    cal = jax.jit(GammaExponential.is_calibrated)(post, prior, 0.5, 1.0)
    assert cal.shape == (4, 2) and bool(jnp.all(cal))
