"""The typed bundle view: decoded once, in vocabulary order, read-only, and the same
numbers as reading the bundle's summaries directly."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import mm_runtime as mr
from mm_runtime.view import BundleView, bundle_view
from mm_runtime.vocabulary import REGIMES, SIDES


def _with_capture():
    doc = mr.example_bundle("BTC").model_dump(mode="json")
    doc["params"]["spread_capture"] = {"family": "normal", "mu": 0.3, "sigma": 0.05}
    return mr.with_checksum(mr.PriorBundle.model_validate(doc))


def test_view_matches_the_summaries_in_vocabulary_order():
    b = _with_capture()
    v = BundleView.from_bundle(b)
    p = b.params
    assert v.regimes == REGIMES and v.sides == SIDES and v.buckets == tuple(b.bucket_keys)
    assert v.alpha_a.shape == (len(REGIMES), len(v.buckets)) and v.kappa_shape.shape == (len(REGIMES), len(SIDES))
    for i, r in enumerate(REGIMES):
        for j, k in enumerate(v.buckets):
            assert (v.alpha_a[i, j], v.alpha_b[i, j]) == (p.alpha[r][k].a, p.alpha[r][k].b)
            assert v.summaries.alpha[i][j] is p.alpha[r][k]
        for j, s in enumerate(SIDES):
            assert (v.kappa_shape[i, j], v.kappa_rate[i, j]) == (p.kappa[r][s].shape, p.kappa[r][s].rate)
            assert (v.arrival_shape[i, j], v.arrival_rate[i, j]) == (p.arrival_rate[r][s].shape,
                                                                     p.arrival_rate[r][s].rate)
            assert v.hawkes_mu[i, j] == p.hawkes_baseline[r][s].mean()
        assert list(v.transition[i]) == p.regime_transition[r].mean()
        assert (v.emission_df[i], v.emission_loc[i], v.emission_scale[i]) == p.regime_emission[r].predictive()
        assert v.sigma_bps[i] == p.sigma_bps[r].mean()
    for t, target in enumerate(SIDES):
        for s, source in enumerate(SIDES):
            assert v.hawkes_n[t, s] == p.hawkes_branching[target][source].mean()
    assert v.hawkes_beta == p.hawkes_decay.mean() and v.alpha_decay_bps == p.alpha_decay_bps.mean()
    assert v.adverse_move_bps == p.adverse_move_bps.mean() and v.spread_capture == pytest.approx(0.3)
    np.testing.assert_allclose(v.stationary @ v.transition, v.stationary, atol=1e-12)
    assert v.bar_s == b.units.volatility_bar_s and list(v.bucket_edges) == b.depth_buckets_bps
    assert v.observation == b.observation and v.markout_horizon_s == 1.0 and v.informed_threshold_bps == 1.0
    assert BundleView.from_bundle(mr.example_bundle()).spread_capture is None


def test_view_arrays_are_read_only():
    v = bundle_view(mr.example_bundle())
    with pytest.raises(ValueError):
        v.alpha_a[0, 0] = 1.0
    with pytest.raises(AttributeError):
        v.bar_s = 5.0  # frozen


def test_bundle_view_is_decoded_once_per_bundle():
    b = mr.example_bundle()
    v = bundle_view(b)
    assert bundle_view(b) is v
    copy = b.model_copy(update={"model_version": "v2"})  # another object: its own view
    assert bundle_view(copy) is not v and bundle_view(copy).model_version == "v2"
    from mm_runtime import view as V

    n = len(V._VIEWS)
    del b, v, copy
    gc.collect()
    assert len(V._VIEWS) <= n - 2  # the cache lives no longer than its bundles


def test_prior_arrays_and_runtime_config_come_from_the_view():
    """``init`` decodes through the view: the state's priors are the view's numbers."""
    b = _with_capture()
    v = bundle_view(b)
    st = mr.init(b)
    np.testing.assert_array_equal(np.asarray(st.prior.hawkes_mu), v.hawkes_mu)
    np.testing.assert_array_equal(np.asarray(st.prior.transition), v.transition)
    np.testing.assert_array_equal(np.asarray(st.prior.stationary), v.stationary)
    np.testing.assert_array_equal(np.asarray(st.cfg.ladder.bucket_edges), v.bucket_edges)
    assert float(st.cfg.spread_capture) == v.spread_capture
    assert float(st.cfg.learning.markout_horizon_s) == v.markout_horizon_s
