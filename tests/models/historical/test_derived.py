"""Derived constants (models.historical.derived): one hand-worked example per function,
domain errors naming the argument, and round trips / monotonicity where natural."""

from __future__ import annotations

import math

import numpy as np
import pytest

import mm_runtime  # noqa: F401  (x64)
from mm_runtime.ladder import glft_quote
from models.historical.derived import (
    Z_99,
    confidence_threshold_roc,
    depth_spacing_ratio,
    ewma_alpha,
    ewma_half_life,
    gamma_for_target_spread,
    kalman_q_r,
    kill_switch_limits,
    latency_slippage_bps,
    max_daily_loss,
    max_drawdown,
    quote_latch_threshold_bps,
    reduce_only_threshold,
    regime_hazard_rate,
    regime_sticky_diagonal,
    sigma_daily_from_bps,
    spread_floor_bps,
    toxic_hour_multiplier,
    var99,
)


def half_spread(A, kappa, sigma, gamma, xi=None, delta=1.0) -> float:
    return float(glft_quote(A, kappa, sigma, gamma, xi, delta)[0])


# ----------------------------------------------------------------------------- 1. GLFT γ
def test_gamma_fixed_xi_worked_example():
    # A = 1/s, κ = 0.2/bp, σ = 0.6 bps/√s, ξ = 0.1, Δ = 1, target half-spread 5 bps.
    # u = ξΔ/κ = 0.5; c1 = ln(1.5)/0.1 = 4.054651081081644 bps
    # (1+u)^(1/u+1) = 1.5³ = 3.375; c2(γ) = sqrt(γ/(2·1·1·0.2)·3.375) = sqrt(8.4375·γ)
    # h = c1 + 0.5·0.6·c2 = 4.0546510810816 + 0.3·sqrt(8.4375γ) = 5
    # → sqrt(8.4375γ) = 0.945348918918356/0.3 = 3.151163063061187
    # → γ = 3.151163063061187²/8.4375 = 9.929828633…/8.4375 = 1.17686858…
    expected = ((5.0 - math.log(1.5) / 0.1) / 0.3) ** 2 / 8.4375
    assert expected == pytest.approx(1.17686858, rel=1e-8)
    g = gamma_for_target_spread(5.0, 1.0, 0.2, 0.6, xi=0.1)
    assert g == pytest.approx(expected, rel=1e-10)
    assert half_spread(1.0, 0.2, 0.6, g, xi=0.1) == pytest.approx(5.0, rel=1e-12)


def test_gamma_fixed_xi_limit():
    # γ → 0 with ξ fixed: h → c1 = ln(1.5)/0.1 = 4.0547 bps (< 1/κ = 5): 4.0 is unreachable
    with pytest.raises(ValueError, match="target_half_spread_bps.*gamma -> 0 limit"):
        gamma_for_target_spread(4.0, 1.0, 0.2, 0.6, xi=0.1)


@pytest.mark.parametrize("gamma", [1e-3, 0.1, 1.0, 5.0])
def test_gamma_round_trip_monotone_case(gamma):
    # A = 1, κ = 1, σ = 1: b = κσ/(2√(2A)) = 0.354 > 0.194, h(γ) is increasing: unique root
    h = half_spread(1.0, 1.0, 1.0, gamma)
    assert h > 1.0  # above the γ → 0 limit 1/κ = 1 bp
    g = gamma_for_target_spread(h, 1.0, 1.0, 1.0)
    assert g == pytest.approx(gamma, rel=1e-9)
    assert gamma_for_target_spread(h, 1.0, 1.0, 1.0, root="largest") == pytest.approx(gamma, rel=1e-9)


def test_gamma_below_the_limit_monotone_case():
    # 1/κ = 1 bp is the infimum when h is increasing: 0.99 bp is unreachable
    with pytest.raises(ValueError, match=r"target_half_spread_bps=0.99 .*1/kappa = 1.0"):
        gamma_for_target_spread(0.99, 1.0, 1.0, 1.0)


def test_gamma_non_monotone_case_two_roots():
    # The ladder's worked example: A = 1, κ = 0.2, σ = 0.6, γ = ξ = 0.1 gives
    # h = 4.0546510810816 + 0.3·sqrt(0.1/0.4·3.375) = 4.0546510810816 + 0.3·0.9185586535436918
    #   = 4.330218677144751 bps, *below* 1/κ = 5 bps (b = 0.12/(2√2) = 0.042 < 0.154)
    h = half_spread(1.0, 0.2, 0.6, 0.1)
    assert h == pytest.approx(math.log(1.5) / 0.1 + 0.3 * math.sqrt(0.84375), rel=1e-12)
    small = gamma_for_target_spread(h, 1.0, 0.2, 0.6)
    assert small == pytest.approx(0.1, rel=1e-9)
    large = gamma_for_target_spread(h, 1.0, 0.2, 0.6, root="largest")
    assert large > 1.0  # ≈ 2.77, past the minimum of h (≈ 3.17 bps at γ ≈ 0.86)
    assert half_spread(1.0, 0.2, 0.6, large) == pytest.approx(h, rel=1e-10)
    assert half_spread(1.0, 0.2, 0.6, large * 1.01) > h  # the largest root is on the rising branch
    assert half_spread(1.0, 0.2, 0.6, small * 1.01) < h  # the smallest here is on the falling one
    with pytest.raises(ValueError, match="target_half_spread_bps=3.0 is below every"):
        gamma_for_target_spread(3.0, 1.0, 0.2, 0.6)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(target_half_spread_bps=-1.0), "target_half_spread_bps"),
        (dict(A=0.0), "A"),
        (dict(kappa=-0.2), "kappa"),
        (dict(sigma=0.0), "sigma"),
        (dict(delta=0.0), "delta"),
        (dict(xi=-1.0), "xi"),
        (dict(sigma=float("nan")), "sigma"),
        (dict(root="middle"), "root"),
    ],
)
def test_gamma_domain_errors(kwargs, name):
    args = dict(target_half_spread_bps=5.0, A=1.0, kappa=0.2, sigma=0.6) | kwargs
    with pytest.raises(ValueError, match=f"^{name}"):
        gamma_for_target_spread(**args)


# ----------------------------------------------------------------------------- 2. spread floor
def test_latency_slippage_worked_example():
    # σ = 0.8 bps/√s, latency 0.25 s: one σ of the mid move = 0.8·√0.25 = 0.4 bps
    assert latency_slippage_bps(0.8, 0.25) == pytest.approx(0.4)
    assert latency_slippage_bps(0.8, 0.25, z=2.0) == pytest.approx(0.8)
    assert latency_slippage_bps(0.8, 1.0) > latency_slippage_bps(0.8, 0.25)  # grows with latency
    with pytest.raises(ValueError, match="sigma_bps"):
        latency_slippage_bps(-0.1, 0.25)
    with pytest.raises(ValueError, match="latency_s"):
        latency_slippage_bps(0.8, -1.0)


def test_spread_floor_worked_example():
    # fee 1.5 + AS 2.0 + slippage 0.4 = 3.9 bps
    assert spread_floor_bps(1.5, 2.0, latency_slippage_bps(0.8, 0.25)) == pytest.approx(3.9)
    # a 0.5 bp rebate and no costs: the floor is −0.5 bps
    assert spread_floor_bps(-0.5, 0.0, 0.0) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="adverse_selection_bps"):
        spread_floor_bps(1.0, -2.0, 0.0)
    with pytest.raises(ValueError, match="latency_slippage_bps"):
        spread_floor_bps(1.0, 2.0, -0.1)


# ----------------------------------------------------------------------------- 3-4, 13. risk limits
def test_sigma_daily_from_bps():
    # 1 bps/√s · √86400 s = 293.9387691339814 bps per day = 2.939 % per day
    assert sigma_daily_from_bps(1.0) == pytest.approx(0.02939387691339814, rel=1e-12)
    with pytest.raises(ValueError, match="sigma_bps"):
        sigma_daily_from_bps(-1.0)


def test_max_daily_loss_worked_example():
    # 100 000 · 0.25 · 2 · 0.03 = 1 500 quote currency (1.5 % of the account)
    assert max_daily_loss(100_000.0, 0.25, 0.03) == pytest.approx(1_500.0)
    assert max_daily_loss(100_000.0, 0.5, 0.03) == pytest.approx(2 * 1_500.0)  # linear in f
    with pytest.raises(ValueError, match="kelly_fraction"):
        max_daily_loss(100_000.0, 1.5, 0.03)
    with pytest.raises(ValueError, match="kelly_fraction"):
        max_daily_loss(100_000.0, 0.0, 0.03)
    with pytest.raises(ValueError, match="sigma_daily"):
        max_daily_loss(100_000.0, 0.25, -0.03)
    with pytest.raises(ValueError, match="account_value"):
        max_daily_loss(-1.0, 0.25, 0.03)


def test_var99_worked_example():
    # z₀.₉₉ = 2.3263478740408408; σ = 2 % per day over 4 days: 2.32635 · 0.02 · √4 = 0.0930539
    assert Z_99 == pytest.approx(2.3263478740408408, rel=1e-12)
    assert var99(0.02, 4.0) == pytest.approx(0.09305391496163363, rel=1e-12)
    assert var99(0.02) < var99(0.03) and var99(0.02, 1.0) < var99(0.02, 2.0)
    with pytest.raises(ValueError, match="sigma"):
        var99(-0.02)
    with pytest.raises(ValueError, match="horizon"):
        var99(0.02, 0.0)


def test_max_drawdown_worked_example():
    # 5 % one-day VaR over a 4-day window: 0.05 · √4 = 0.10
    assert max_drawdown(0.05, math.sqrt(4.0)) == pytest.approx(0.10)
    with pytest.raises(ValueError, match="var99_fraction"):
        max_drawdown(-0.05, 2.0)
    with pytest.raises(ValueError, match="horizon_factor"):
        max_drawdown(0.05, 0.0)


def test_kill_switch_limits_worked_example():
    # account 100 000, f = 0.25, σ_d = 3 %, H = 5 days:
    # daily: 100 000 · 0.25 · 0.06 = 1 500 (fraction 0.015)
    # drawdown fraction: 2.3263478740408408 · 0.25 · 0.03 · √5
    #   = 0.017447609055306306 · 2.23606797749979 = 0.0390140…  → 3 901.40 quote currency
    lim = kill_switch_limits(100_000.0, 0.25, 0.03)
    dd = 2.3263478740408408 * 0.0075 * math.sqrt(5.0)
    assert dd == pytest.approx(0.039014, rel=1e-4)
    assert lim == pytest.approx(
        {
            "max_daily_loss": 1_500.0,
            "max_daily_loss_fraction": 0.015,
            "max_drawdown": 100_000.0 * dd,
            "max_drawdown_fraction": dd,
        },
        rel=1e-12,
    )
    # z₀.₉₉ > 2: the drawdown limit is never tighter than the daily one for H ≥ 1
    assert kill_switch_limits(100_000.0, 0.25, 0.03, 1.0)["max_drawdown"] > lim["max_daily_loss"]
    with pytest.raises(ValueError, match="drawdown_horizon_days"):
        kill_switch_limits(100_000.0, 0.25, 0.03, 0.0)
    with pytest.raises(ValueError, match="kelly_fraction"):
        kill_switch_limits(100_000.0, -0.25, 0.03)


# ----------------------------------------------------------------------------- 5. EWMA
def test_ewma_worked_example():
    # h = 10 steps: α = 1 − 2^(−1/10) = 1 − 0.9330329915368074 = 0.0669670084631926
    assert ewma_alpha(10.0) == pytest.approx(0.0669670084631926, rel=1e-12)
    assert ewma_alpha(1.0) == pytest.approx(0.5)  # half-life one step: new weight 1/2
    assert ewma_alpha(10.0, dt=10.0) == pytest.approx(0.5)  # irregular updates: dt/h
    # the original's α_touch "0.2 smoothing": h = ln2/−ln(0.8) = 0.693147/0.223144 = 3.1063 updates
    assert ewma_half_life(0.2) == pytest.approx(3.1062837195053903, rel=1e-12)
    # after h steps an old observation's weight (1 − α)^h is exactly 1/2
    assert (1 - ewma_alpha(7.3)) ** 7.3 == pytest.approx(0.5, rel=1e-12)


@pytest.mark.parametrize("h", [0.05, 0.5, 1.0, 3.0, 100.0, 1e6])
def test_ewma_round_trip(h):
    assert ewma_half_life(ewma_alpha(h)) == pytest.approx(h, rel=1e-10)
    assert ewma_half_life(ewma_alpha(h, dt=2.5), dt=2.5) == pytest.approx(h, rel=1e-10)


def test_ewma_monotone_and_errors():
    hs = [0.5, 1.0, 2.0, 10.0, 100.0]
    alphas = [ewma_alpha(h) for h in hs]
    assert all(a > b for a, b in zip(alphas, alphas[1:]))  # longer memory → smaller weight
    with pytest.raises(ValueError, match="half_life"):
        ewma_alpha(0.0)
    with pytest.raises(ValueError, match="dt"):
        ewma_alpha(1.0, dt=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        ewma_half_life(1.0)
    with pytest.raises(ValueError, match="alpha"):
        ewma_half_life(0.0)


# ----------------------------------------------------------------------------- 6. Kalman
def test_kalman_q_r_worked_example():
    # tick σ 2e-4 (2 bps), spread 1e-3 (10 bps) of the price:
    # Q = (2e-4)² = 4e-8; R = (5e-4)²/3 = 2.5e-7/3 = 8.333…e-8
    q, r = kalman_q_r(2e-4, 1e-3)
    assert q == pytest.approx(4e-8, rel=1e-12)
    assert r == pytest.approx(2.5e-7 / 3, rel=1e-12)
    # R is the variance of a uniform on ±half-spread: s²/12
    assert r == pytest.approx(1e-3**2 / 12, rel=1e-12)
    # in bps the same inputs give bps²: Q = 4, R = 25/3
    assert kalman_q_r(2.0, 10.0) == pytest.approx((4.0, 25.0 / 3))
    with pytest.raises(ValueError, match="tick_volatility"):
        kalman_q_r(-1e-4, 1e-3)
    with pytest.raises(ValueError, match="spread"):
        kalman_q_r(1e-4, -1e-3)


# ----------------------------------------------------------------------------- 7. regimes
def test_regime_hazard_and_sticky_diagonal_worked_example():
    # regimes last 300 s on average: λ = 1/300 per s; 10 s bars: p_stay = e^(−10/300) = 0.9672161
    lam = regime_hazard_rate(300.0)
    assert lam == pytest.approx(1 / 300)
    p = regime_sticky_diagonal(lam, 10.0)
    assert p == pytest.approx(0.9672161004820059, rel=1e-12)
    assert p == pytest.approx(1 - 10 / 300, abs=(10 / 300) ** 2 / 2)  # ≈ 1 − bar/E[D]
    # longer regimes → stickier; zero hazard → never leaves
    assert regime_sticky_diagonal(regime_hazard_rate(600.0), 10.0) > p
    assert regime_sticky_diagonal(0.0, 10.0) == 1.0
    with pytest.raises(ValueError, match="expected_duration"):
        regime_hazard_rate(0.0)
    with pytest.raises(ValueError, match="hazard_rate"):
        regime_sticky_diagonal(-1.0, 10.0)
    with pytest.raises(ValueError, match="bar_s"):
        regime_sticky_diagonal(0.01, 0.0)


# ----------------------------------------------------------------------------- 8-9. multipliers
def test_toxic_hour_multiplier_worked_example():
    # toxic AS 8, normal AS 2, fee 1: (8 + 1)/(2 + 1) = 3
    assert toxic_hour_multiplier(8.0, 2.0, 1.0) == pytest.approx(3.0)
    # a 0.5 bp rebate: (8 − 0.5)/(2 − 0.5) = 7.5/1.5 = 5
    assert toxic_hour_multiplier(8.0, 2.0, -0.5) == pytest.approx(5.0)
    assert toxic_hour_multiplier(2.0, 2.0, 1.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="normal_as_bps"):
        toxic_hour_multiplier(8.0, 0.5, -1.0)  # denominator 0.5 − 1 < 0
    with pytest.raises(ValueError, match="toxic_as_bps"):
        toxic_hour_multiplier(-8.0, 2.0, 1.0)


def test_quote_latch_threshold_worked_example():
    # 2·(1.5 + 0.5) = 4 bps
    assert quote_latch_threshold_bps(1.5, 0.5) == pytest.approx(4.0)
    # a 1 bp rebate beats 0.25 bp slippage: 2·(−0.75) < 0 → 0 (requote on any move)
    assert quote_latch_threshold_bps(-1.0, 0.25) == 0.0
    with pytest.raises(ValueError, match="slippage_bps"):
        quote_latch_threshold_bps(1.0, -0.5)
    with pytest.raises(ValueError, match="fee_bps"):
        quote_latch_threshold_bps(float("inf"), 0.5)


# ----------------------------------------------------------------------------- 10. ROC
def test_confidence_threshold_worked_example():
    # scores 0.1, 0.4, 0.35, 0.8 with labels 0, 0, 1, 1; c_FP = 1, c_FN = 2, "positive iff score ≥ t":
    #   t = 0.10: all positive          FP 2, FN 0 → 2
    #   t = 0.35: {0.35, 0.4, 0.8}      FP 1, FN 0 → 1   ← minimum
    #   t = 0.40: {0.4, 0.8}            FP 1, FN 1 → 3
    #   t = 0.80: {0.8}                 FP 0, FN 1 → 2
    #   t = inf : none                  FP 0, FN 2 → 4
    # expected cost per observation 1/4; TPR 2/2, FPR 1/2
    scores, labels = [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]
    res = confidence_threshold_roc(scores, labels, 1.0, 2.0)
    assert res.threshold == 0.35
    assert res.expected_cost == pytest.approx(0.25)
    assert (res.tpr, res.fpr) == (1.0, 0.5)
    # c_FP = c_FN = 2: t = 0.35 and t = 0.8 both cost 2 → ties go to the larger threshold
    tie = confidence_threshold_roc(scores, labels, 2.0, 2.0)
    assert tie.threshold == 0.8 and tie.expected_cost == pytest.approx(0.5)
    # false positives very expensive: only the top score (a positive, FP 0, FN 1) is called
    assert confidence_threshold_roc(scores, labels, 100.0, 1.0).threshold == 0.8
    # top score a negative: t = 0.2 costs 10·1, t = 0.9 costs 10 + 1, t = inf costs 1 → never positive
    never = confidence_threshold_roc([0.9, 0.2], [0, 1], 10.0, 1.0)
    assert never.threshold == math.inf and never.expected_cost == pytest.approx(0.5)
    assert (never.tpr, never.fpr) == (0.0, 0.0)
    # false negatives very expensive: the largest threshold with FN 0, t = 0.35 (FP 1, cost 1/4), not 0.1 (FP 2)
    assert confidence_threshold_roc(scores, labels, 1.0, 100.0).threshold == 0.35


def test_confidence_threshold_matches_brute_force():
    rng = np.random.default_rng(7)
    labels = rng.random(300) < 0.3
    scores = np.round(rng.normal(labels * 1.0, 1.0), 1)  # rounded: many tied scores
    res = confidence_threshold_roc(scores, labels, 1.0, 3.0)
    grid = np.append(np.unique(scores), np.inf)
    costs = [(np.sum((scores >= t) & ~labels) * 1.0 + np.sum((scores < t) & labels) * 3.0) / 300 for t in grid]
    best = min(costs)
    assert res.expected_cost == pytest.approx(best, rel=1e-12)
    assert res.threshold == max(t for t, c in zip(grid, costs) if c == pytest.approx(best, rel=1e-12))


def test_confidence_threshold_bayes_rule_on_calibrated_scores():
    # calibrated probabilities p: the optimum is near t* = c_FP/(c_FP + c_FN) = 1/(1+3) = 0.25
    rng = np.random.default_rng(11)
    p = rng.random(20_000)
    labels = rng.random(20_000) < p
    res = confidence_threshold_roc(p, labels, 1.0, 3.0)
    assert res.threshold == pytest.approx(0.25, abs=0.03)


def test_confidence_threshold_errors():
    with pytest.raises(ValueError, match="scores"):
        confidence_threshold_roc([], [], 1.0, 1.0)
    with pytest.raises(ValueError, match="scores"):
        confidence_threshold_roc([0.1, np.nan], [0, 1], 1.0, 1.0)
    with pytest.raises(ValueError, match="labels"):
        confidence_threshold_roc([0.1, 0.2], [0, 1, 1], 1.0, 1.0)
    with pytest.raises(ValueError, match="labels"):
        confidence_threshold_roc([0.1, 0.2], [0, 2], 1.0, 1.0)
    with pytest.raises(ValueError, match="cost_fp"):
        confidence_threshold_roc([0.1, 0.2], [0, 1], -1.0, 1.0)
    with pytest.raises(ValueError, match="cost_fn"):
        confidence_threshold_roc([0.1, 0.2], [0, 1], 1.0, -1.0)


# ----------------------------------------------------------------------------- 11. ladder spacing
def test_depth_spacing_ratio_worked_example():
    # κ = 0.2/bp, first depth 5 bps, each level filled half as often (r = 0.5), K = 5 levels:
    # equal-intensity-ratio gap ln(2)/0.2 = 3.4657359 bps; last depth 5 + 4·3.4657359 = 18.8629436 bps
    # ρ = (18.8629436/5)^(1/4) = 3.7725887^(1/4) = e^(1.3277…/4) = 1.39366…
    rho = depth_spacing_ratio(0.2, 5, 5.0, 0.5)
    assert rho == pytest.approx((18.862943611198906 / 5.0) ** 0.25, rel=1e-12)
    assert rho == pytest.approx(1.39366, abs=1e-5)
    # K = 2: the exact first gap, 1 + 3.4657359/5 = 1.6931472
    assert depth_spacing_ratio(0.2, 2, 5.0, 0.5) == pytest.approx(1.6931471805599454, rel=1e-12)
    # the last level's intensity A·e^(−κδ) is r^(K−1) times the first's
    last = 5.0 * rho**4
    assert math.exp(-0.2 * (last - 5.0)) == pytest.approx(0.5**4, rel=1e-12)


def test_depth_spacing_ratio_monotone_and_errors():
    ratios = [depth_spacing_ratio(0.2, 5, 5.0, r) for r in (0.1, 0.3, 0.5, 0.9)]
    assert all(a > b for a, b in zip(ratios, ratios[1:]))  # milder intensity drop → tighter ladder
    assert all(x > 1.0 for x in ratios)
    with pytest.raises(ValueError, match="kappa"):
        depth_spacing_ratio(0.0, 5, 5.0, 0.5)
    with pytest.raises(ValueError, match="n_levels"):
        depth_spacing_ratio(0.2, 1, 5.0, 0.5)
    with pytest.raises(ValueError, match="n_levels"):
        depth_spacing_ratio(0.2, 2.5, 5.0, 0.5)
    with pytest.raises(ValueError, match="first_depth_bps"):
        depth_spacing_ratio(0.2, 5, -5.0, 0.5)
    with pytest.raises(ValueError, match="intensity_ratio"):
        depth_spacing_ratio(0.2, 5, 5.0, 1.0)


# ----------------------------------------------------------------------------- 12. reduce-only
def test_reduce_only_threshold_worked_example():
    # margin 10 000, price 50 000 at leverage 10 → 5 000 margin per unit → 2 units carried
    assert reduce_only_threshold(10_000.0, 50_000.0 / 10.0, 10.0) == pytest.approx(2.0)
    # the hard limit binds when tighter: min(2, 1.5) = 1.5
    assert reduce_only_threshold(10_000.0, 5_000.0, 1.5) == pytest.approx(1.5)
    assert reduce_only_threshold(0.0, 5_000.0, 1.5) == 0.0
    with pytest.raises(ValueError, match="margin_available"):
        reduce_only_threshold(-1.0, 5_000.0, 1.5)
    with pytest.raises(ValueError, match="margin_per_unit"):
        reduce_only_threshold(10_000.0, 0.0, 1.5)
    with pytest.raises(ValueError, match="position_limit"):
        reduce_only_threshold(10_000.0, 5_000.0, 0.0)
