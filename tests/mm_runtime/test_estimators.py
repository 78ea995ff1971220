"""Online estimators, checked through the jitted step against closed forms."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import mm_runtime as mr
from mm_runtime.estimators import Columns, forward_filter_step, student_t_logpdf
from mm_runtime.quoter import init, make_event, step, summarize
from scipy import stats

MID = 50_000.0
COLS = Columns(4)


def fresh(**cfg):
    return init(mr.example_bundle(), mr.QuoterConfig(**cfg))


def ev(ts, mid=MID, **kw):
    kw.setdefault("margin_available", 1e4)
    return make_event(ts, mid, **kw)


def run(state, events):
    for e in events:
        state, q = step(state, e)
    return state, q


def evidence(state):
    return np.asarray(state.est.evidence)


def test_kappa_is_gamma_exponential_on_trade_depth():
    state, _ = run(fresh(), [ev(0.0)])
    p = np.asarray(state.est.regime_probs)
    rng = np.random.default_rng(1)
    depths = rng.exponential(1 / 0.3, size=50)
    # all at the same timestamp: no forgetting, no exposure
    state, _ = run(state, [ev(0.0, trade_price=MID * (1 + d * 1e-4), trade_side=1.0) for d in depths])
    e = evidence(state)
    buy_shape, buy_rate = COLS.kappa_shape.start, COLS.kappa_rate.start
    np.testing.assert_allclose(e[:, buy_shape], p * 50, rtol=1e-12)
    np.testing.assert_allclose(e[:, buy_rate], p * depths.sum(), rtol=1e-9)
    assert np.all(e[:, buy_shape + 1] == 0)  # nothing on the sell side
    np.testing.assert_allclose(e[:, COLS.arrival_shape.start], p * 50, rtol=1e-12)


def test_sell_trade_depth_is_below_the_mid():
    state, _ = run(fresh(), [ev(0.0)])
    state, _ = run(state, [ev(0.0, trade_price=MID * (1 - 3e-4), trade_side=-1.0)])
    p = np.asarray(state.est.regime_probs)
    np.testing.assert_allclose(evidence(state)[:, COLS.kappa_rate.start + 1], 3.0 * p, rtol=1e-9)


def test_arrival_exposure_and_forgetting():
    hl = 100.0
    state, _ = run(fresh(forgetting_half_life_s=hl, max_age_s=5.0), [ev(0.0)])
    p = np.asarray(state.est.regime_probs)
    state, _ = run(state, [ev(1.0)])
    np.testing.assert_allclose(evidence(state)[:, COLS.arrival_rate.start], p * 1.0, rtol=1e-12)
    # a 100 s gap: the exposure credited is capped at max_age_s, the evidence halves
    state, _ = run(state, [ev(101.0)])
    expected = p * 1.0 * 0.5 + np.asarray(state.est.regime_probs) * 0 + p * 5.0
    np.testing.assert_allclose(evidence(state)[:, COLS.arrival_rate.start], expected, rtol=1e-9)


def test_arrival_rate_is_gamma_poisson_with_exposure():
    rng = np.random.default_rng(3)
    state, _ = run(fresh(forgetting_half_life_s=1e12), [ev(0.0)])  # a mid before the first trade
    events, t, n = [], 0.0, 0
    for _ in range(600):
        t += 0.05
        trade = rng.random() < 3.0 * 0.05  # 3 buys per second
        n += trade
        events.append(ev(t, trade_price=MID * 1.0002 if trade else None, trade_side=1.0))
    state, _ = run(state, events)
    e = evidence(state)
    # regime probabilities sum to one: all counts and all exposure are accounted for
    assert e[:, COLS.arrival_shape.start].sum() == pytest.approx(n, rel=1e-9)
    assert e[:, COLS.arrival_rate.start].sum() == pytest.approx(t, rel=1e-9)
    nat0 = np.asarray(state.prior.nat)
    learned = np.asarray(summarize(state).estimates.arrival_learned)[:, 0]
    closed = (nat0[:, COLS.arrival_shape.start] + e[:, COLS.arrival_shape.start]) / (
        nat0[:, COLS.arrival_rate.start] + e[:, COLS.arrival_rate.start]
    )
    np.testing.assert_allclose(learned, closed, rtol=1e-12)
    r = int(np.argmax(state.est.regime_probs))  # a flat mid: the "low" regime
    assert learned[r] > 3 * nat0[r, COLS.arrival_shape.start] / nat0[r, COLS.arrival_rate.start]


def fill_then_markout(state, depth_bps, move_bps, side=1.0, horizon_wait=1.0):
    price = MID * (1 - side * depth_bps * 1e-4)
    state, _ = run(state, [ev(10.0), ev(10.0, fill_price=price, fill_side=side)])  # the mid is MID first
    state, _ = run(state, [ev(10.0 + horizon_wait, mid=price * (1 + move_bps * 1e-4))])
    return state


def test_alpha_success_for_adverse_markout_in_the_right_bucket():
    state, _ = run(fresh(markout_horizon_s=1.0, informed_threshold_bps=1.0), [ev(9.0)])
    p = np.asarray(state.est.regime_probs)
    # our bid filled 3 bp below the mid (bucket 2-5), then the mid fell 4 bp below our price
    state = fill_then_markout(state, 3.0, -4.0)
    e = evidence(state)
    np.testing.assert_allclose(e[:, COLS.alpha_a.start + 1], p, rtol=1e-12)  # success, bucket 1
    assert np.all(e[:, COLS.alpha_b] == 0)
    # a benign markout (price moved up after we bought) is a failure
    state = fill_then_markout(state, 0.5, +2.0)
    e = evidence(state)
    np.testing.assert_allclose(e[:, COLS.alpha_b.start + 0], p, rtol=1e-9)  # failure, bucket 0


def test_markout_waits_for_the_horizon():
    state, _ = run(fresh(markout_horizon_s=1.0), [ev(9.0)])
    state = fill_then_markout(state, 3.0, -4.0, horizon_wait=0.5)
    assert np.all(evidence(state)[:, : 2 * 4] == 0)
    state, _ = run(state, [ev(11.0, mid=MID * (1 - 7e-4))])
    assert evidence(state)[:, COLS.alpha_a.start + 1].sum() == pytest.approx(1.0)


def test_ask_fill_markout_sign():
    state, _ = run(fresh(), [ev(9.0)])
    # our ask lifted 6 bp above the mid; the mid then rises 3 bp above our price: adverse
    state = fill_then_markout(state, 6.0, +3.0, side=-1.0)
    assert evidence(state)[:, COLS.alpha_a.start + 2].sum() == pytest.approx(1.0)


def test_ring_buffer_overwrites_the_oldest():
    state, _ = run(fresh(pending_capacity=2), [ev(9.0)])
    for i in range(3):
        state, _ = run(state, [ev(9.0 + 0.1 * i, fill_price=MID * (1 - 3e-4), fill_side=1.0)])
    assert float(state.est.cursor) == 1.0
    state, _ = run(state, [ev(20.0, mid=MID * 0.99)])
    assert evidence(state)[:, : 2 * 4].sum() == pytest.approx(2.0)  # one fill was lost


def test_calibration_gates_the_learned_value():
    min_n = 3.0
    state, _ = run(fresh(alpha_min_n=min_n, alpha_max_cv=10.0, forgetting_half_life_s=1e9), [ev(0.0)])
    prior_mean = np.asarray(summarize(state).estimates.alpha)
    state = fill_then_markout(state, 3.0, -4.0)  # one informed fill: nothing is trusted yet
    np.testing.assert_allclose(np.asarray(summarize(state).estimates.alpha), prior_mean)
    for _ in range(11):  # 12 informed fills in bucket 2-5 in all
        state = fill_then_markout(state, 3.0, -4.0)
    s = summarize(state).estimates
    e = evidence(state)
    n = e[:, COLS.alpha_a] + e[:, COLS.alpha_b]
    expected_cal = n >= min_n
    assert expected_cal[:, 1].any() and not expected_cal[:, [0, 2, 3]].any()
    np.testing.assert_array_equal(np.asarray(s.alpha_calibrated), expected_cal)
    used = np.where(expected_cal, np.asarray(s.alpha_learned), prior_mean)
    np.testing.assert_allclose(np.asarray(s.alpha), used, rtol=1e-12)
    assert np.all(np.asarray(s.alpha)[expected_cal] > prior_mean[expected_cal])
    # learn=False: never trusted
    off, _ = run(fresh(learn=False, alpha_min_n=min_n, alpha_max_cv=10.0), [ev(0.0)])
    for _ in range(12):
        off = fill_then_markout(off, 3.0, -4.0)
    np.testing.assert_allclose(np.asarray(summarize(off).estimates.alpha), prior_mean)


def test_regime_filter_tracks_volatility():
    rng = np.random.default_rng(5)
    state = fresh()
    t, mid = 0.0, MID
    events = []
    for _ in range(400):  # 40 s of σ ≈ 0.3 bps/√s (the "low" regime)
        t += 0.1
        mid *= np.exp(rng.normal() * 0.3e-4 * np.sqrt(0.1))
        events.append(ev(t, mid))
    state, q = run(state, events)
    assert int(np.argmax(q.regime_probs)) == 0
    events = []
    for _ in range(400):  # 40 s at σ ≈ 2.5 (extreme)
        t += 0.1
        mid *= np.exp(rng.normal() * 2.5e-4 * np.sqrt(0.1))
        events.append(ev(t, mid))
    state, q = run(state, events)
    assert int(np.argmax(q.regime_probs)) == 3
    assert float(np.sum(q.regime_probs)) == pytest.approx(1.0)


def test_forward_filter_step_matches_numpy():
    p = np.array([0.1, 0.6, 0.2, 0.1])
    T = np.full((4, 4), 0.05) + np.eye(4) * 0.8
    ll = np.array([-3.0, -1.0, -0.5, -8.0])
    post = (p @ T) * np.exp(ll)
    np.testing.assert_allclose(forward_filter_step(p, T, ll), post / post.sum(), rtol=1e-12)
    np.testing.assert_allclose(student_t_logpdf(0.3, 5.0, 0.1, 0.7), stats.t.logpdf(0.3, 5.0, 0.1, 0.7), rtol=1e-12)


def test_hawkes_recursion_equals_the_direct_sum():
    state, _ = run(fresh(), [ev(0.0)])
    b = mr.example_bundle().params
    beta = b.hawkes_decay.mean()
    n = {(t, s): b.hawkes_branching[t][s].mean() for t in ("buy", "sell") for s in ("buy", "sell")}
    arrivals = [(0.2, 1.0), (0.5, -1.0), (0.9, 1.0), (1.4, 1.0)]
    events = [ev(t, trade_price=MID * (1 + s * 1e-4), trade_side=s) for t, s in arrivals] + [ev(2.0)]
    state, q = run(state, events)
    p = np.asarray(q.regime_probs)
    mu = np.array([[b.hawkes_baseline[r][s].mean() for s in ("buy", "sell")] for r in mr.REGIMES])
    for i, target in enumerate(("buy", "sell")):
        direct = p @ mu[:, i] + sum(
            n[(target, "buy" if s > 0 else "sell")] * beta * np.exp(-beta * (2.0 - t)) for t, s in arrivals
        )
        assert float(q.hawkes_intensity[i]) == pytest.approx(direct, rel=1e-10)


def test_invalid_trade_does_not_touch_the_state():
    state, _ = run(fresh(), [ev(0.0)])
    before = jax.tree.map(np.asarray, state.est)
    state2, q = step(state, ev(0.0, trade_price=float("nan"), trade_side=1.0))
    assert not bool(q.valid)
    np.testing.assert_array_equal(np.asarray(state2.est.evidence), before.evidence)
