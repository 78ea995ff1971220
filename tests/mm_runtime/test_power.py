"""Power analysis (mm_runtime.power): hand-worked sample sizes, round trips
n -> precision -> n, Monte Carlo coverage at the recommended n, the thresholds table
and its wiring into QuoterConfig, and domain errors naming the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest

import mm_runtime  # noqa: F401  (x64)
from mm_runtime import QuoterConfig
from mm_runtime.conjugate import BetaBernoulli, BetaParams, GammaExponential, GammaParams
from mm_runtime.power import (
    calibration_thresholds,
    cv_after_beta,
    cv_after_gamma,
    cv_after_hawkes_baseline,
    cv_after_normal,
    exposure_for_events,
    n_beta_for_cv,
    n_beta_proportion,
    n_gamma_for_cv,
    n_gamma_rate,
    n_hawkes_baseline,
    n_normal_for_cv,
    n_normal_mean,
    rel_precision_after_beta,
    rel_precision_after_gamma,
    rel_precision_after_normal,
    tier_min_n,
    z_value,
)

Z90, Z95 = 1.6448536269514715, 1.959963984540054


def test_z_value():
    assert z_value(0.90) == pytest.approx(Z90, abs=1e-12)
    assert z_value(0.95) == pytest.approx(Z95, abs=1e-12)
    assert z_value() == pytest.approx(Z95, abs=1e-12)  # default confidence 0.95
    assert z_value(0.99) == pytest.approx(2.5758293035489, abs=1e-9)


# ----------------------------------------------------------------------------- worked examples
def test_beta_worked_examples():
    # p = 0.15, ±30 % at 90 %: (1.64485/0.3)² = 30.0616; × (0.85/0.15 = 5.6667) = 170.349;
    # − 1 (the Beta posterior's a+b+1) = 169.349 → 170
    assert n_beta_proportion(0.15, 0.30, 0.90) == 170
    # crediting a 20-pseudo-fill prior: 169.349 − 20 = 149.349 → 150
    assert n_beta_proportion(0.15, 0.30, 0.90, prior_strength=20.0) == 150
    # p = 0.5, ±10 % at 95 %: (1.95996/0.1)² = 384.146; × 1 − 1 = 383.146 → 384
    assert n_beta_proportion(0.5, 0.10) == 384
    # CV form: cv ≤ 0.2 at p = 0.2: 0.8/(0.2·0.04) = 100; − 1 = 99
    assert n_beta_for_cv(0.2, 0.2) == 99
    # a prior already stronger than needed: 0
    assert n_beta_proportion(0.5, 0.5, 0.9, prior_strength=1000.0) == 0
    # the half-width form is the CV form at cv = rel/z
    assert n_beta_proportion(0.15, 0.30, 0.90) == n_beta_for_cv(0.15, 0.30 / Z90)
    # cv after 100 fills at p = 0.15: sqrt(0.85/(0.15·101)) = sqrt(0.0561056) = 0.236866
    assert cv_after_beta(100, 0.15) == pytest.approx(0.2368662, rel=1e-6)
    # ... i.e. ±39 % at 90 % (the original's min 100 fills)
    assert rel_precision_after_beta(100, 0.15, 0.90) == pytest.approx(1.6448536 * 0.2368662, rel=1e-6)


def test_gamma_worked_examples():
    # ±20 % at 90 %: (1.64485/0.2)² = 67.639 → 68 events; at 95 %: (1.95996/0.2)² = 96.036 → 97
    assert n_gamma_rate(0.20, 0.90) == 68
    assert n_gamma_rate(0.20) == 97
    # prior shape 10 pseudo-events: 67.639 − 10 = 57.639 → 58
    assert n_gamma_rate(0.20, 0.90, prior_shape=10.0) == 58
    # CV form: cv ≤ 0.1 ⇒ shape ≥ 100
    assert n_gamma_for_cv(0.1) == 100
    assert cv_after_gamma(90, prior_shape=10.0) == pytest.approx(0.1)
    # 30 events: 1.64485/sqrt(30) = 0.30031 (the previous intensity_min_n ≈ ±30 % at 90 %)
    assert rel_precision_after_gamma(30, 0.90) == pytest.approx(0.300308, rel=1e-5)
    # exposure: 68 events at 0.5/s take 136 s on average
    assert exposure_for_events(68, 0.5) == pytest.approx(136.0)


def test_normal_worked_examples():
    # cv1 = 1, ±30 % at 90 %: (1.64485·1/0.3)² = 30.062 → 31
    assert n_normal_mean(1.0, 0.30, 0.90) == 31
    # cv1 = 2.5, ±20 % at 95 %: (1.95996·2.5/0.2)² = 12.2499² = 600.22 → 601; prior_n 100 → 501
    assert n_normal_mean(2.5, 0.20) == 601
    assert n_normal_mean(2.5, 0.20, prior_n=100.0) == 501
    # CV form: cv1 = 3, cv ≤ 0.3 ⇒ n = 100
    assert n_normal_for_cv(3.0, 0.3) == 100
    assert cv_after_normal(100, 3.0) == pytest.approx(0.3)
    assert rel_precision_after_normal(25, 1.0, 0.95) == pytest.approx(Z95 / 5.0)


def test_hawkes_worked_examples():
    # ±30 % at 90 %, b = 0.4: 30.062/(0.6² = 0.36) = 83.50 → 84; b = 0: the Poisson 31
    assert n_hawkes_baseline(0.30, 0.90, 0.4) == 84
    assert n_hawkes_baseline(0.30, 0.90) == n_gamma_rate(0.30, 0.90) == 31
    # 100 events, b = 0.5: 1/(0.5·10) = 0.2
    assert cv_after_hawkes_baseline(100, 0.5) == pytest.approx(0.2)


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("n", [0, 1, 7, 68, 170, 1234])
@pytest.mark.parametrize("conf", [0.8, 0.9, 0.95, 0.99])
def test_round_trips(n, conf):
    for p, s in ((0.15, 0.0), (0.03, 20.0), (0.7, 3.5)):
        assert n_beta_proportion(p, rel_precision_after_beta(n, p, conf, s), conf, s) == n
        assert n_beta_for_cv(p, cv_after_beta(n, p, s), s) == n
    for a0 in (0.0, 10.0):
        if n + a0 > 0:
            assert n_gamma_rate(rel_precision_after_gamma(n, conf, a0), conf, a0) == n
            assert n_gamma_for_cv(cv_after_gamma(n, a0), a0) == n
    for cv1, n0 in ((1.0, 0.0), (2.5, 4.0)):
        if n + n0 > 0:
            assert n_normal_mean(cv1, rel_precision_after_normal(n, cv1, conf, n0), conf, n0) == n
            assert n_normal_for_cv(cv1, cv_after_normal(n, cv1, n0), n0) == n
    if n > 0:
        c = cv_after_hawkes_baseline(n, 0.4)
        assert n_hawkes_baseline(c * z_value(conf), conf, 0.4) == n


def test_recommended_n_is_the_smallest_reaching_the_target():
    for p, r, c in ((0.15, 0.3, 0.9), (0.05, 0.2, 0.95), (0.6, 0.05, 0.99)):
        n = n_beta_proportion(p, r, c)
        assert rel_precision_after_beta(n, p, c) <= r < rel_precision_after_beta(n - 1, p, c)
    for r, c, a0 in ((0.2, 0.9, 0.0), (0.1, 0.95, 10.0)):
        n = n_gamma_rate(r, c, a0)
        assert rel_precision_after_gamma(n, c, a0) <= r < rel_precision_after_gamma(n - 1, c, a0)
    n = n_normal_mean(1.7, 0.25, 0.9, 3.0)
    assert rel_precision_after_normal(n, 1.7, 0.9, 3.0) <= 0.25 < rel_precision_after_normal(n - 1, 1.7, 0.9, 3.0)


def test_cv_matches_the_conjugate_families():
    # Beta: prior Beta(3, 17) (p = 0.15, s = 20) plus 170 fills at the same rate
    prior = BetaParams(3.0, 17.0)
    post = BetaBernoulli.update_counts(prior, 0.15 * 170, 0.85 * 170)
    assert float(BetaBernoulli.cv(post)) == pytest.approx(cv_after_beta(170, 0.15, 20.0), rel=1e-12)
    assert float(BetaBernoulli.n(post, prior)) == pytest.approx(170.0)
    # Gamma: prior shape 10 plus 68 exponential observations
    gprior = GammaParams(10.0, 50.0)
    gpost = GammaParams(gprior.shape + 68.0, gprior.rate + 340.0)
    assert float(GammaExponential.cv(gpost)) == pytest.approx(cv_after_gamma(68, 10.0), rel=1e-12)


# ----------------------------------------------------------------------------- Monte Carlo
REPS = 2000


def _coverage(rel_err, r):
    return float(np.mean(np.abs(rel_err) <= r))


def test_monte_carlo_beta():
    rng = np.random.default_rng(20260207)
    p, r, c = 0.15, 0.30, 0.90
    n = n_beta_proportion(p, r, c)  # 170
    k = rng.binomial(n, p, size=REPS)
    # posterior mean of the data alone (Haldane prior) = k/n; exact coverage P(18 <= k <= 33) ≈ 0.91
    assert abs(_coverage(k / n / p - 1.0, r) - c) < 0.04
    # with the 20-pseudo-fill prior at the true p, n = 150 fills still reach the target
    s = 20.0
    n2 = n_beta_proportion(p, r, c, prior_strength=s)
    k2 = rng.binomial(n2, p, size=REPS)
    est = (k2 + p * s) / (n2 + s)
    assert _coverage(est / p - 1.0, r) >= c - 0.03


def test_monte_carlo_gamma_rate():
    rng = np.random.default_rng(7)
    lam, r, c = 0.8, 0.20, 0.90
    n = n_gamma_rate(r, c)  # 68 events
    # Gamma–Exponential (κ): n observations, estimate n / Σx
    x = rng.exponential(1.0 / lam, size=(REPS, n))
    assert abs(_coverage(n / x.sum(axis=1) / lam - 1.0, r) - c) < 0.04
    # Gamma–Poisson (arrival rate): the exposure that brings n events on average
    T = exposure_for_events(n, lam)
    counts = rng.poisson(lam * T, size=REPS)
    assert abs(_coverage(counts / T / lam - 1.0, r) - c) < 0.04


def test_monte_carlo_normal_mean_of_exponential_moves():
    # the adverse-move row: exponential moves (cv1 = 1), mean 8 bp, n = 31
    rng = np.random.default_rng(11)
    mu, r, c = 8.0, 0.30, 0.90
    n = n_normal_mean(1.0, r, c)
    x = rng.exponential(mu, size=(REPS, n))
    assert abs(_coverage(x.mean(axis=1) / mu - 1.0, r) - c) < 0.04


def test_monte_carlo_hawkes_count_variance():
    # The Hawkes row's premise: Var(N) = Λ T / (1-b)² for a long window.  Simulated by the
    # cluster representation (immigrants Poisson(μT), each with a Poisson(b)-offspring
    # Galton–Watson progeny; window edge effects ignored): total cluster size has mean
    # 1/(1-b) and variance b/(1-b)³, so Var(N) = μT·E[size²] = μT/(1-b)³ = ΛT/(1-b)².
    rng = np.random.default_rng(3)
    b, mu_T = 0.4, 60.0
    immigrants = rng.poisson(mu_T, size=REPS)
    total = immigrants.astype(float)
    gen = immigrants
    for _ in range(60):  # b**60 ~ 1e-24: every cluster has died out
        gen = rng.poisson(b * gen)
        total += gen
    lam_T = mu_T / (1 - b)
    assert total.mean() == pytest.approx(lam_T, rel=0.03)
    assert total.var() == pytest.approx(lam_T / (1 - b) ** 2, rel=0.10)
    # so with N = n_hawkes_baseline(...) events, μ̂ = (1-b)·N/T reaches the target
    r, c = 0.30, 0.90
    n = n_hawkes_baseline(r, c, b)
    scale = n / lam_T
    immigrants = rng.poisson(mu_T * scale, size=REPS)
    total = immigrants.astype(float)
    gen = immigrants
    for _ in range(60):
        gen = rng.poisson(b * gen)
        total += gen
    assert abs(_coverage(total / (lam_T * scale) - 1.0, r) - c) < 0.04


# ----------------------------------------------------------------------------- the table
def test_calibration_thresholds_table():
    t = calibration_thresholds()
    assert list(t) == ["alpha", "kappa", "arrival_rate", "hawkes_baseline", "adverse_move"]
    assert {k: v.min_n for k, v in t.items()} == {
        "alpha": 170,  # 30.06 · 0.85/0.15 − 1 = 169.35
        "kappa": 68,  # (1.6449/0.2)² = 67.64
        "arrival_rate": 31,  # (1.6449/0.3)² = 30.06
        "hawkes_baseline": 84,  # 30.06 / 0.6² = 83.50
        "adverse_move": 31,  # (1.6449·1/0.3)² = 30.06
    }
    for row in t.values():
        assert row.max_cv == pytest.approx(row.rel_precision / z_value(row.confidence))
        assert row.confidence == 0.90
    assert t["alpha"].tier == "pnl" and t["kappa"].tier == t["arrival_rate"].tier == "intensity"
    assert t["hawkes_baseline"].tier is None and t["adverse_move"].tier is None
    assert tier_min_n("pnl") == 170 and tier_min_n("intensity") == 68
    with pytest.raises(ValueError, match="tier"):
        tier_min_n("risk")


def test_quoter_config_defaults_come_from_the_table():
    c = QuoterConfig()
    assert c.alpha_min_n == tier_min_n("pnl")
    assert c.intensity_min_n == tier_min_n("intensity")
    # the max_cv backstops never bind on a touch cell that has met its count:
    # α = 0.15, 170 fills + 20 prior pseudo-fills: cv = 0.178 < 0.5
    assert cv_after_beta(c.alpha_min_n, 0.15, 20.0) < c.alpha_max_cv
    assert cv_after_gamma(c.intensity_min_n) < c.intensity_max_cv


# ----------------------------------------------------------------------------- domain errors
@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: n_beta_proportion(0.0, 0.3), "p"),
        (lambda: n_beta_proportion(1.0, 0.3), "p"),
        (lambda: n_beta_proportion(math.nan, 0.3), "p"),
        (lambda: n_beta_proportion(0.2, 0.0), "rel_precision"),
        (lambda: n_beta_proportion(0.2, -0.1), "rel_precision"),
        (lambda: n_beta_proportion(0.2, 0.3, 1.0), "confidence"),
        (lambda: n_beta_proportion(0.2, 0.3, 0.0), "confidence"),
        (lambda: n_beta_proportion(0.2, 0.3, 0.9, -1.0), "prior_strength"),
        (lambda: n_beta_for_cv(0.2, 0.0), "max_cv"),
        (lambda: cv_after_beta(-1, 0.2), "n"),
        (lambda: n_gamma_rate(0.0), "rel_precision"),
        (lambda: n_gamma_rate(math.inf), "rel_precision"),
        (lambda: n_gamma_rate(0.2, 1.5), "confidence"),
        (lambda: n_gamma_rate(0.2, 0.9, -2.0), "prior_shape"),
        (lambda: cv_after_gamma(0.0), "n"),
        (lambda: n_normal_mean(0.0, 0.3), "sigma_over_mean"),
        (lambda: n_normal_mean(1.0, -0.3), "rel_precision"),
        (lambda: n_normal_mean(1.0, 0.3, -0.5), "confidence"),
        (lambda: n_normal_mean(1.0, 0.3, 0.9, -1.0), "prior_n"),
        (lambda: n_hawkes_baseline(0.3, 0.9, 1.0), "branching_ratio"),
        (lambda: cv_after_hawkes_baseline(0.0), "n_events"),
        (lambda: exposure_for_events(10, 0.0), "rate"),
        (lambda: z_value(1.0), "confidence"),
        (lambda: n_beta_proportion("x", 0.3), "p"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()


# ----------------------------------------------------------------------------- Inverse-Gamma, LogNormal (registry)
def test_inverse_gamma_and_lognormal_counts():
    from mm_runtime.conjugate import InverseGammaKnownMean, InverseGammaParams, LogNormal, NIGParams
    from mm_runtime.power import (
        cv_after_inverse_gamma,
        cv_after_lognormal,
        n_inverse_gamma_for_cv,
        n_lognormal_for_cv,
    )

    c = 0.3 / Z90
    n = n_inverse_gamma_for_cv(c)
    assert n == 65  # 2/c² + 4 = 64.13
    assert cv_after_inverse_gamma(n) <= c < cv_after_inverse_gamma(n - 1)
    assert n_inverse_gamma_for_cv(c, prior_strength=20) == 45
    # the same cv as the family's: shape = (s + n)/2
    post = InverseGammaParams(shape=(20 + 45) / 2, scale=3.0, mu=0.0)
    assert float(InverseGammaKnownMean.cv(post)) == pytest.approx(cv_after_inverse_gamma(45, 20))
    with pytest.raises(ValueError, match="> 4"):
        cv_after_inverse_gamma(2)

    s_log = math.sqrt(math.log1p(0.5**2))
    n = n_lognormal_for_cv(s_log, c)
    assert n == math.ceil(s_log**2 / math.log1p(c * c))
    assert cv_after_lognormal(n, s_log) <= c < cv_after_lognormal(n - 1, s_log)
    # LogNormal.cv with E[s²] = s_log² (shape = 1 + lam/2, scale = s_log²·lam/2) is the same formula
    lam = 40.0
    post = NIGParams(mu=0.0, lam=lam, shape=1 + lam / 2, scale=s_log**2 * lam / 2)
    assert float(LogNormal.cv(post)) == pytest.approx(cv_after_lognormal(lam, s_log))
    with pytest.raises(ValueError, match="sigma_log"):
        n_lognormal_for_cv(0.0, c)
