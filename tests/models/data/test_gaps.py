"""Recording gaps (models.data.gaps) on a hand-built market: 37 s of quotes every 0.5 s,
63 s of silence (no quote, no trade), 40 s more. With ``gap_factor=20`` the threshold is
max(20 x 0.5 s (the 99th percentile of the times between updates), 10 s) = 10 s, so the silence is one gap [37 s, 100 s]: the bars skip it,
the Hawkes window and the arrival rates exclude it, ``data inspect`` lists it, and the
bundle writes the gap fields only when they are not the defaults."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mm_runtime.bundle import bundle_bytes, with_checksum
from mm_runtime.examples import example_bundle
from mm_runtime.observation import GAP_FIELDS, ObservationConfig
from models.data import observations as ob
from models.data.gaps import find_gaps, gap_seconds_before, in_gap
from models.data.summary import inspect_market
from models.hawkes.observations import observations as hawkes_observations

from test_observations import market, mid_quote, ns

CFG = ObservationConfig(gap_factor=20.0, bar_seconds=10.0)


def gapped():
    times = np.concatenate([np.arange(0, 37.01, 0.5), np.arange(100, 140.01, 0.5)])
    quotes = [mid_quote(float(t), 100.0 + 0.01 * (i % 3)) for i, t in enumerate(times)]
    trades = [(5.25, 100.02, 1.0, 1), (12.25, 99.98, 1.0, -1), (35.25, 100.02, 1.0, 1),
              (105.25, 100.02, 1.0, 1), (130.25, 99.98, 1.0, -1)]
    return market(quotes, trades)


def test_the_gap_is_found_and_timed():
    g = find_gaps(gapped(), CFG)
    assert list(g["start_ns"]) == [ns(37)] and list(g["end_ns"]) == [ns(100)]
    assert g["length_s"].tolist() == [63.0]
    assert g.attrs["reference_s"] == 0.5 and g.attrs["threshold_s"] == 10.0   # 99th percentile of the updates
    assert g.attrs["longest_quiet_s"] == 0.5                                  # the longest silence not a gap
    assert len(find_gaps(gapped(), ObservationConfig(gap_factor=200.0))) == 0     # max(200 x 0.5 s, 10 s) = 100 s > 63 s
    assert len(find_gaps(gapped(), ObservationConfig(gap_min_seconds=70.0))) == 0
    ts = np.array([ns(t) for t in (0, 40, 70, 100, 120)])
    assert in_gap(g, ts).tolist() == [False, True, True, False, False]
    np.testing.assert_allclose(gap_seconds_before(g, ts), [0, 3, 33, 63, 63])


def test_bars_skip_the_gap():
    bars = ob.volatility_bars(gapped(), CFG)
    starts = (bars["bar_start"].to_numpy() - ns(0)) / 1e9
    assert starts.tolist() == [0, 10, 20, 30, 100, 110, 120, 130]
    assert bars["n_returns"].tolist() == [10, 10, 10, 7, 10, 10, 10, 10]   # the bar before the gap: 7 s
    assert bars.attrs["gaps_ns"] == [[ns(37), ns(100)]]


def test_hawkes_exposure_excludes_the_gap():
    obs = hawkes_observations(gapped(), None, config=CFG)
    assert obs.duration_s[0] == pytest.approx(77.0)                # 140 s less the 63 s gap
    np.testing.assert_allclose(obs.t, [5.25, 12.25, 35.25, 42.25, 67.25])
    np.testing.assert_allclose(obs.bar_edges[0], [0, 10, 20, 30, 37, 47, 57, 67])
    assert obs.regime_time()[0].sum() == pytest.approx(77.0)
    assert obs.meta["gaps_ns"] == [[ns(37), ns(100)]]


def test_kappa_exposure_stops_at_the_gap():
    from models.kappa.observations import observations as kappa_observations

    bars = ob.volatility_bars(gapped(), CFG)
    k = kappa_observations(gapped(), None, config=CFG, bars=bars)
    # the bar [30, 40) ends where the gap starts (37 s); the last bar runs to the data's end (140 s)
    np.testing.assert_allclose(k.bar_exposure_s, [10, 10, 10, 7, 10, 10, 10, 10])
    assert k.exposure().sum() == pytest.approx(77.0)


def test_passive_quotes_are_censored_at_the_gap():
    """Re-posts every 1 s: 37 before the gap (the last lives until 37 s), 40 after it
    (from 100 s); no quote is posted inside the gap; exposure 37 + 40 s."""
    m = gapped()
    posted = ob.passive_quotes_posted(m, CFG)
    one = posted[(posted["side"] == 1) & (posted["depth_bps"] == CFG.depth_grid_bps[0])]
    assert one["n_posted"].sum() == 77 and one["exposure_s"].sum() == pytest.approx(77.0)
    fills = ob.passive_fills(m, CFG)
    assert not in_gap(find_gaps(m, CFG), fills["repost_ts"].to_numpy()).any()


def test_data_inspect_lists_the_gap_and_rates_use_observed_time():
    s = inspect_market(gapped(), CFG)
    assert s["observed_s"] == pytest.approx(77.0)
    assert [(r["start_s"], r["length_s"]) for r in s["gaps"]["table"]] == [(37.0, 63.0)]
    buy = next(a for a in s["arrivals"] if a["side_name"] == "buy")
    assert buy["rate_per_s"] == pytest.approx(3 / 77.0)


def test_bundle_writes_gap_fields_only_when_not_the_default():
    b = example_bundle("BTC")
    assert not set(GAP_FIELDS) & set(json.loads(bundle_bytes(b))["observation"])
    c = with_checksum(b.model_copy(update={"observation": b.observation.model_copy(update={"gap_factor": 50.0})}))
    assert json.loads(bundle_bytes(c))["observation"]["gap_factor"] == 50.0
