"""Hawkes observations (models.hawkes.observations): simulation against the
stationary rates, and arrivals from the synthetic market."""

from __future__ import annotations

import numpy as np
import pytest

from models import hawkes as H


def test_simulate_rates_match_theory():
    rng = np.random.default_rng(8)
    truth = H.HawkesTruth(baseline=((0.3, 0.25),) * 4, branching=((0.3, 0.1), (0.05, 0.25)),
                          decay=3.0, regime_path=(0,) * 2000)
    obs = H.simulate(truth, rng)
    n = np.asarray(truth.branching)
    A = np.linalg.solve(np.eye(2) - n, np.array([0.3, 0.25]))       # stationary rates
    cov = np.linalg.inv(np.eye(2) - n) @ np.diag(A) @ np.linalg.inv(np.eye(2) - n).T
    counts = np.bincount(obs.side, minlength=2)
    T = truth.T
    z = (counts - A * T) / np.sqrt(np.diag(cov) * T)
    assert np.all(np.abs(z) < 4), z
    assert np.all(np.diff(obs.t) >= 0) and obs.regime_time().sum() == pytest.approx(T)


def test_observations_from_synthetic_market():
    syn = pytest.importorskip("models.data.synthetic")
    from models.data import observations as ob

    market = syn.simulate_market(seed=4, duration_s=300.0)
    truth = market.truth
    obs = H.observations(market, regimes=np.asarray(truth["regime_path"]))
    arr = ob.arrivals(market)
    assert obs.n_events == len(arr)
    assert np.array_equal(obs.side, np.where(arr["side"].to_numpy() > 0, 0, 1))
    bars = ob.volatility_bars(market)
    t0 = int(bars["bar_start"].iloc[0])
    np.testing.assert_allclose(obs.t, (arr["ts"].to_numpy() - t0) / 1e9)
    assert obs.duration_s[0] == pytest.approx((market.end_ns - t0) / 1e9)
    assert obs.regime_time().sum() == pytest.approx(obs.duration_s[0])
    assert np.isfinite(float(H.loglik_jax(H.HawkesTruth.from_truth(truth).params(), obs)))


def test_observations_take_the_bar_rules_from_the_config():
    syn = pytest.importorskip("models.data.synthetic")
    from models.data.observations import ObservationConfig

    market = syn.simulate_market(seed=4, duration_s=300.0)
    obs = H.observations(market, config=ObservationConfig(bar_seconds=20.0))
    assert obs.meta["bar_seconds"] == 20.0
    np.testing.assert_allclose(np.diff(obs.bar_edges[0]), 20.0)
    assert obs.n_events == H.observations(market).n_events
