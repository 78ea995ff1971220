"""calibrate and to_evidence (models/historical/calibrator.py, evidence.py): every
component on a synthetic market with open interest, registry evidence sized from each
estimate, what is missing left out, and bad input refused with a clear message."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mm_runtime import params
from models import historical as H
from models.data import observations as ob
from models.data.synthetic import simulate_market
from models.data.tables import DataError, Market


def test_calibrate_fills_every_component(calibrated, oi_market):
    r = calibrated
    for name in ("alpha_touch", "kappa", "hawkes", "toxic_hours", "spread_floor", "cascade"):
        assert getattr(r, name) is not None, (name, r.notes)
    assert r.sigma_bps > 0 and set(r.timings_s) >= {"hawkes", "kappa", "cascade"}
    # the synthetic market has no clock effect, but its first hour spends 77 of its 360
    # bars in the extreme regime (the others 9 and 10): larger informed jumps, a toxic hour
    path = np.asarray(oi_market.truth["regime_path"])
    extreme = [int((path[h * 360:(h + 1) * 360] == 3).sum()) for h in range(3)]
    assert r.toxic_hours.toxic == [int(np.argmax(extreme))] == [0]
    doc = r.model_dump(mode="json")  # JSON-able (the benchmark writes it)
    assert doc["hawkes"]["decay"]["value"] > 0


def test_to_evidence_is_valid_registry_evidence(calibrated):
    ev = H.to_evidence(calibrated)
    names = [e.name for e in ev]
    assert names == ["alpha_touch", "kappa", "hawkes_mu", "hawkes_alpha", "hawkes_beta",
                     "spread_floor_bps", "toxic_hour_multiplier", "cascade_oi_threshold"]
    specs = {s.name: s for s in getattr(params, "DEFAULT_SPECS", ())}
    check = getattr(params, "check_evidence", None)
    for e in ev:
        assert isinstance(e, params.Evidence) and e.source.startswith("historical:SYN:")
        if check is not None and e.name in specs:
            check(e, specs[e.name].family)
    by = {e.name: e for e in ev}
    r = calibrated
    # exact sufficient statistics where they exist
    assert by["kappa"].count == r.kappa.n_arrivals and by["kappa"].total == pytest.approx(r.kappa.total_depth_bps)
    a = by["alpha_touch"]
    assert a.successes / a.trials == pytest.approx(r.alpha_touch.pooled.value)
    assert a.trials == pytest.approx(r.alpha_touch.pooled.n)
    # pseudo counts reproduce the estimate's mean and SE in the conjugate family
    h = r.hawkes
    b = by["hawkes_alpha"]
    x, mm = b.successes / b.trials, b.trials
    assert x == pytest.approx(h.self_excitation.value)
    assert math.sqrt(x * (1 - x) / (mm + 1)) == pytest.approx(h.self_excitation.se)
    g = by["hawkes_beta"]  # Gamma(k, k/beta): mean beta, sd beta/sqrt(k)
    assert g.count / g.total == pytest.approx(h.decay.value)
    assert (g.count / g.total) / math.sqrt(g.count) == pytest.approx(h.decay.se)
    mu = by["hawkes_mu"]  # Gamma(count, exposure): mean mu, sd SE
    assert mu.count / mu.exposure == pytest.approx(h.baseline_mean.value)
    assert math.sqrt(mu.count) / mu.exposure == pytest.approx(h.baseline_mean.se)
    assert list(by["spread_floor_bps"].values) == pytest.approx(r.spread_floor.window_floors_bps)
    assert list(by["toxic_hour_multiplier"].values) == pytest.approx([r.toxic_hours.multiplier])
    c = by["cascade_oi_threshold"]
    assert c.successes / c.trials == pytest.approx(r.cascade.threshold.value)


def test_to_evidence_skips_what_is_missing(default_1h):
    m, bars, path = default_1h
    r = H.calibrate(m, regimes=path, bars=bars)
    assert r.cascade is None and "no open interest" in " ".join(r.notes)
    assert "cascade_oi_threshold" not in [e.name for e in H.to_evidence(r)]
    empty = H.HistoricalResult(asset="X", source="synthetic", duration_s=1.0, config={})
    assert H.to_evidence(empty) == []


# --------------------------------------------------------------------------- bad input
def test_bad_input_is_refused_with_a_clear_message(default_1h):
    m = default_1h[0]
    empty = Market("E", "synthetic", m.trades.iloc[:0], m.quotes)
    with pytest.raises(DataError, match="has no trades"):
        H.calibrate(empty)
    no_bid = Market("Q", "synthetic", m.trades, m.quotes.drop(columns=["bid"]))
    with pytest.raises(ValueError, match="missing column.*'bid'"):
        H.calibrate(no_bid)
    bad_oi = Market("O", "synthetic", m.trades, m.quotes, open_interest=pd.DataFrame({"ts": [1]}))
    with pytest.raises(ValueError, match="open_interest.*missing column.*'oi'"):
        H.calibrate(bad_oi)
    with pytest.raises(ValueError, match="calibrate: expected a Market"):
        H.calibrate("not a market")
    fills = ob.passive_fills(m)
    for fn in (H.alpha_touch, H.toxic_hours, H.spread_floor):
        with pytest.raises(ValueError, match="missing column.*'markout_bps'"):
            fn(fills.drop(columns=["markout_bps"]))
    with pytest.raises(ValueError, match="expected a models.kappa.KappaObs"):
        H.kappa(fills)
    with pytest.raises(ValueError, match="expected a models.hawkes.HawkesObs"):
        H.hawkes(fills)
    with pytest.raises(ValueError, match="no passive fill in the touch bucket"):
        H.alpha_touch(fills[fills["depth_bps"] >= 2.0])
    with pytest.raises(ValueError, match="hawkes_min_events"):
        from models import hawkes as hk

        short = simulate_market(1, 300.0)
        H.hawkes(hk.observations(short), H.HistoricalConfig(hawkes_min_events=1000))
    with pytest.raises(ValueError):
        H.HistoricalConfig(ci_level=1.5)
