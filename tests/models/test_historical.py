"""The historical calibrator (models/historical.py): recovery on the synthetic market,
toxic hours and the spread floor on constructed fills, the cascade threshold on a
synthetic market with open interest, registry evidence, and bad input.

Tolerances are in units of each estimator's own standard error, never tuned to a
seed: kappa's is exact (kappa/sqrt(n) of an exponential MLE), alpha's is the
sweep-clustered binomial one, the Hawkes ones are delete-one-block jackknife SEs.
The jackknife SEs were checked against the spread of the estimates over 20 seeds
(``SyntheticConfig.busy()``, 2 h, true regime path): sd of (estimate - truth)/SE
0.85-1.22 for the four branching entries and beta, 0.89 for the self-excitation;
3 of 140 |z| above 3 (4-hour default markets: one more beyond 3 for beta, and a
cross-excitation estimated at the bound 0 has no SE: not tested there). A 3.5-SE
bound on about ten estimates per test is a family-wise ~1-3 % false alarm even
with SEs 20 % too small, and a seed is fixed so each test is deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mm_runtime import derived, params
from models import historical as H
from models.data import observations as ob
from models.data.synthetic import OpenInterestConfig, SyntheticConfig, simulate_market
from models.data.tables import DataError, Market

Z = 3.5
NS = 1_000_000_000
REGIMES = ob.REGIMES
SIDES = H.SIDES


def _with_truth(market):
    bars = ob.volatility_bars(market)
    return bars, np.asarray(market.truth["regime_path"])[: len(bars)]


@pytest.fixture(scope="module")
def default_1h():
    m = simulate_market(21, 3600.0)
    bars, path = _with_truth(m)
    return m, bars, path


@pytest.fixture(scope="module")
def busy_2h():
    from models import hawkes as hk

    m = simulate_market(22, 7200.0, SyntheticConfig.busy())
    bars, path = _with_truth(m)
    return m, hk.observations(m, path, bars=bars)


# --------------------------------------------------------------------------- kappa
def test_kappa_recovers_truth_per_cell_and_pooled(default_1h):
    from models import kappa as kp

    m, bars, path = default_1h
    res = H.kappa(kp.observations(m, path, bars=bars))
    p = m.truth["params"]
    expected_depth = 0.0
    for rn in REGIMES:
        for sn in SIDES:
            e = res.cells[rn][sn]
            if e is None:
                continue
            true = p[f"kappa[{rn},{sn}]"]
            assert abs(e.value - true) <= Z * e.se, (rn, sn, e, true)
            assert e.se == pytest.approx(e.value / math.sqrt(e.n))
            assert e.ci[0] < e.value < e.ci[1]
            expected_depth += e.n / true
    # the pooled MLE targets n / sum_cells(n_c / kappa_c) (mixture of exponentials)
    target = res.n_arrivals / expected_depth
    assert abs(res.pooled.value - target) <= Z * res.pooled.se
    assert res.n_arrivals == sum(e.n for d in res.cells.values() for e in d.values() if e)
    # exact chi-square interval: 2 kappa S ~ chi2(2n), its central 90 %
    n, S = res.pooled.n, res.total_depth_bps
    from scipy import stats

    assert res.pooled.ci[0] == pytest.approx(stats.chi2.ppf(0.05, 2 * n) / (2 * S))


def test_kappa_min_depth_uses_excess_depths(default_1h):
    from models import kappa as kp

    m, bars, path = default_1h
    obs = kp.observations(m, path, bars=bars)
    res = H.kappa(obs, H.HistoricalConfig(kappa_min_depth_bps=1.0))
    keep = obs.depth_bps >= 1.0
    assert res.n_arrivals == int(keep.sum())
    assert res.total_depth_bps == pytest.approx(float((obs.depth_bps[keep] - 1.0).sum()))


# --------------------------------------------------------------------------- hawkes
def test_hawkes_moments_recover_truth(busy_2h):
    """Branching matrix, decay, per-regime baselines (mu = (I - n) A) and the pooled
    flow's branching ratio (n's column sums are equal here, 0.4) within 3.5 jackknife SEs."""
    m, obs = busy_2h
    res = H.hawkes(obs)
    p = m.truth["params"]
    for tn in SIDES:
        for sn in SIDES:
            e = res.branching[tn][sn]
            true = p[f"hawkes_branching[{tn},{sn}]"]
            assert abs(e.value - true) <= Z * e.se, (tn, sn, e, true)
    assert abs(res.decay.value - p["hawkes_decay"]) <= Z * res.decay.se, res.decay
    assert abs(res.self_excitation.value - 0.3) <= Z * res.self_excitation.se
    assert abs(res.spectral_radius.value - 0.4) <= Z * res.spectral_radius.se
    assert abs(res.pooled_branching_ratio.value - 0.4) <= Z * res.pooled_branching_ratio.se
    assert abs(res.pooled_decay.value - 1.0) <= Z * res.pooled_decay.se
    checked = 0
    for rn in REGIMES:
        for sn in SIDES:
            e = res.baseline[rn][sn]
            if e is not None and e.n >= 200:
                assert abs(e.value - p[f"hawkes_baseline[{rn},{sn}]"]) <= Z * e.se, (rn, sn, e)
                checked += 1
    assert checked >= 4
    assert res.chi2_dof < 2.0  # one exponential kernel does describe this flow
    assert res.n_events == len(obs.t) and len(res.taus_s) == 24
    assert np.asarray(res.curves["observed"]).shape == (7, 24)


def test_hawkes_is_fast_and_o_n():
    """A day of busy flow (~115k arrivals) in seconds, not minutes."""
    import time

    from models import hawkes as hk

    m = simulate_market(3, 86_400.0, SyntheticConfig.busy())
    bars, path = _with_truth(m)
    obs = hk.observations(m, path, bars=bars)
    t0 = time.perf_counter()
    res = H.hawkes(obs)
    assert time.perf_counter() - t0 < 20.0
    assert abs(res.decay.value - 1.0) <= Z * res.decay.se


def test_hawkes_moment_formulas_match_simulation(busy_2h):
    """The closed-form curves at the true parameters agree with the observed ones
    point by point (within 3.5 jackknife sds at every tau, all seven curves)."""
    m, obs = busy_2h
    res = H.hawkes(obs)
    cfg = H.HistoricalConfig()
    T = float(obs.duration_s[0])
    seg = H._segments(np.asarray(obs.bar_edges[0]), np.asarray(obs.bar_regime[0]), T, cfg.hawkes_groups)
    taus = np.asarray(res.taus_s)
    st, en, reg, grp = seg
    si = np.searchsorted(st, obs.t, side="right") - 1
    C = np.bincount((grp[si] * 4 + reg[si]) * 2 + obs.side, minlength=8 * cfg.hawkes_groups).astype(float)
    O = np.bincount(grp * 4 + reg, weights=en - st, minlength=4 * cfg.hawkes_groups)
    ts = [H._TauStats(obs.t, obs.side.astype(np.int64), seg, cfg.hawkes_groups, x) for x in taus]
    mom = H._Moments(taus, ts, C, O, np.ones(cfg.hawkes_groups, bool))
    pred = H._predict(np.asarray(SyntheticConfig.busy().hawkes_branching), 1.0, mom)
    z = (mom.curves() - pred) / np.asarray(res.curves["sd"])
    assert np.abs(z).max() < Z, np.abs(z).max(axis=1)


# --------------------------------------------------------------------------- alpha
def test_alpha_touch_share_matches_truth(default_1h):
    """The touch bucket's informed share per regime is alpha_touch[r] times the fills'
    mean exp(-delta/alpha_decay_bps) (the synthetic market's fill-level law), within
    3.5 cluster-robust SEs (the known excess of the observed flag, 0.2-0.6 of a
    1-hour SE at the touch, models/data/synthetic.py, is inside that)."""
    m, bars, path = default_1h
    fills = H.check_fills(ob.passive_fills(m, bars=bars, regimes=path))
    res = H.alpha_touch(fills)
    p = m.truth["params"]
    touch = fills[fills["depth_bps"] < 2.0]
    checked = 0
    for r, rn in enumerate(REGIMES):
        e = res.per_regime[rn]
        sel = touch["regime"].to_numpy() == r
        if e is None or sel.sum() < 100:
            continue
        w = np.exp(-touch["depth_bps"].to_numpy()[sel] / p["alpha_decay_bps"]).mean()
        true = p[f"alpha_touch[{rn}]"] * w
        assert abs(e.value - true) <= Z * e.se, (rn, e, true)
        assert e.ci[0] <= e.value <= e.ci[1]
        assert 0 < e.n <= sel.sum()
        checked += 1
    assert checked >= 2
    assert res.pooled.value == pytest.approx(touch["informed"].mean())
    assert res.n_sweeps < res.n_fills  # sweeps fill both touch quotes (0.5 and 1 bp)


def test_clustered_share_counts_sweeps_once():
    """Two fills of one sweep share their flag: duplicating every fill within its sweep
    leaves the effective count (and the interval) unchanged."""
    rng = np.random.default_rng(0)
    k = 400
    base = pd.DataFrame({"ts": np.arange(k, dtype=np.int64) * NS, "side": np.ones(k, np.int8),
                         "depth_bps": np.full(k, 0.5), "markout_bps": rng.normal(0, 1, k),
                         "regime": np.zeros(k, np.int8)})
    base["informed"] = base["markout_bps"] > 1.0
    doubled = pd.concat([base, base.assign(depth_bps=1.0)]).sort_values("ts", kind="stable")
    a, b = H.alpha_touch(base), H.alpha_touch(doubled)
    assert b.pooled.value == pytest.approx(a.pooled.value)
    assert b.pooled.n == pytest.approx(a.pooled.n, rel=1e-9)
    assert a.pooled.n == pytest.approx(k, rel=0.05)


# --------------------------------------------------------------------------- toxic hours
def _fills_by_hour(means: dict[int, float], per_hour: int = 200, seed: int = 0) -> pd.DataFrame:
    """Touch fills (one per sweep, depth 1 bp) whose adverse move AS = markout + depth
    is Normal(mean of its UTC hour, 1 bp)."""
    rng = np.random.default_rng(seed)
    day = 1_704_067_200 * NS
    rows = []
    for h, mu in means.items():
        ts = day + h * 3600 * NS + np.sort(rng.choice(3600 * 1000, per_hour, replace=False)) * 1_000_000
        adverse = rng.normal(mu, 1.0, per_hour)
        rows.append(pd.DataFrame({"ts": ts, "side": np.where(rng.random(per_hour) < 0.5, 1, -1).astype(np.int8),
                                  "depth_bps": 1.0, "markout_bps": adverse - 1.0, "regime": np.int8(1)}))
    f = pd.concat(rows, ignore_index=True)
    f["informed"] = f["markout_bps"] > 1.0
    return f


def test_toxic_hour_detected_and_multiplier():
    f = _fills_by_hour({0: 0.5, 1: 0.5, 2: 1.5, 3: 0.5, 4: 0.5})
    res = H.toxic_hours(f, H.HistoricalConfig(fee_bps=0.2))
    assert res.toxic == [2]
    by = {h.hour: h for h in res.hours}
    assert by[2].p_adjusted < 0.05 and all(by[h].p_adjusted > 0.05 for h in (0, 1, 3, 4))
    assert by[2].excess_bps == pytest.approx(1.0, abs=4 * math.sqrt(1 / 200 + 1 / 800))
    x = f["markout_bps"] + f["depth_bps"]
    hour = (f["ts"] // (3600 * NS)) % 24
    tox, norm = x[hour == 2].mean(), x[hour != 2].mean()
    assert res.toxic_adverse_bps == pytest.approx(tox) and res.normal_adverse_bps == pytest.approx(norm)
    assert res.multiplier == pytest.approx(derived.toxic_hour_multiplier(tox, norm, 0.2))
    assert res.multiplier > 1.5


def test_no_toxic_hour_when_hours_alike():
    res = H.toxic_hours(_fills_by_hour({h: 0.5 for h in range(6)}, seed=1))
    assert res.toxic == [] and res.multiplier == 1.0
    # a materially-worse rule: a real but small excess is not toxic above the minimum
    f = _fills_by_hour({0: 0.5, 1: 0.5, 2: 1.0, 3: 0.5}, per_hour=2000, seed=2)
    assert H.toxic_hours(f).toxic == [2]
    assert H.toxic_hours(f, H.HistoricalConfig(toxic_min_excess_bps=1.0)).toxic == []


def test_toxic_hours_needs_two_hours_with_enough_sweeps():
    res = H.toxic_hours(_fills_by_hour({5: 0.5, 6: 3.0}, per_hour=20))
    assert res.toxic == [] and res.multiplier is None
    assert "nothing to compare" in res.notes[0]


# --------------------------------------------------------------------------- spread floor
def _bucket_fills(pnl_means: dict[float, float], n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for k, (depth, mu) in enumerate(pnl_means.items()):
        ts = (np.arange(n, dtype=np.int64) * 10 + k) * NS
        rows.append(pd.DataFrame({"ts": ts, "side": np.int8(1), "depth_bps": depth,
                                  "markout_bps": -rng.normal(mu, 1.0, n), "regime": np.int8(0)}))
    f = pd.concat(rows, ignore_index=True).sort_values("ts", kind="stable").reset_index(drop=True)
    f["informed"] = f["markout_bps"] > 1.0
    return f


def test_spread_floor_first_profitable_bucket():
    f = _bucket_fills({1.0: -0.5, 3.0: 0.8, 7.0: 2.0, 15.0: 4.0})
    res = H.spread_floor(f)
    assert res.floor_bucket == "[2,5)" and res.floor_bps == 2.0 and res.significant
    b = {x.bucket: x for x in res.buckets}
    assert b["[0,2)"].pnl.value == pytest.approx(-f["markout_bps"][f["depth_bps"] == 1.0].mean())
    assert b["[2,5)"].pnl.ci[0] > 0 and b["[0,2)"].pnl.ci[1] < 0
    assert b["[2,5)"].pnl.se == pytest.approx(1.0 / math.sqrt(300), rel=0.15)
    # a fee moves every bucket's PnL down by the fee: the floor moves out
    res_fee = H.spread_floor(f, H.HistoricalConfig(fee_bps=1.0))
    assert res_fee.floor_bucket == "[5,10)"
    assert {x.bucket: x for x in res_fee.buckets}["[2,5)"].pnl.value == pytest.approx(
        b["[2,5)"].pnl.value - 1.0)
    # the derived floor: fee + adverse selection at the touch (+ latency slippage)
    touch = f[f["depth_bps"] == 1.0]
    as_ = float((touch["markout_bps"] + 1.0).mean())
    assert res_fee.adverse_selection_bps == pytest.approx(as_)
    assert res_fee.derived_floor_bps == pytest.approx(derived.spread_floor_bps(1.0, max(as_, 0.0), 0.0))
    lat = H.spread_floor(f, H.HistoricalConfig(latency_s=0.04), sigma_bps=0.5)
    assert lat.latency_slippage_bps == pytest.approx(0.5 * 0.2)
    # one derived floor per 900 s window with >= 20 touch sweeps: 300 sweeps 10 s apart
    # = 3000 s: windows of 90, 90, 90 and 30 sweeps; with 40 needed the last one drops out
    assert len(res.window_floors_bps) == 4
    assert len(H.spread_floor(f, H.HistoricalConfig(spread_floor_min_sweeps=40)).window_floors_bps) == 3


def test_spread_floor_none_when_nothing_profitable():
    res = H.spread_floor(_bucket_fills({1.0: -1.0, 3.0: -0.5}))
    assert res.floor_bucket is None and res.floor_bps is None and "no bucket" in res.notes[0]


# --------------------------------------------------------------------------- cascade threshold
@pytest.fixture(scope="module")
def oi_market():
    return simulate_market(4, 3 * 3600.0, SyntheticConfig(open_interest=OpenInterestConfig()))


def test_cascade_threshold_recovered(oi_market):
    """The true threshold (0.015) is inside the interval; the threshold is identified
    (circular-shift p < 0.05); moves above it are larger than below."""
    res = H.cascade_oi_threshold(oi_market)
    true = oi_market.truth["params"]["cascade_oi_threshold"]
    assert res.identified and res.p_value < 0.05
    assert res.threshold.ci[0] <= true <= res.threshold.ci[1], res.threshold
    cas = oi_market.truth["derived"]["cascades"]
    drops, trig = np.asarray(cas["drop"]), np.asarray(cas["triggered"])
    # the estimate separates the cascades that moved the price from those that did not
    # but for the ones inside its interval
    lo, hi = res.threshold.ci
    outside = (drops < lo) | (drops > hi)
    np.testing.assert_array_equal((drops >= res.threshold.value)[outside], trig[outside])
    assert res.mean_move_above_bps > 3 * res.mean_move_below_bps


def test_cascade_not_identified_without_effect():
    """No cascade moves the price (threshold above every drop): not identified."""
    m = simulate_market(4, 3 * 3600.0, SyntheticConfig(open_interest=OpenInterestConfig(threshold=0.5)))
    res = H.cascade_oi_threshold(m)
    assert not res.identified and res.p_value > 0.05


def test_cascade_none_without_open_interest(default_1h):
    assert H.cascade_oi_threshold(default_1h[0]) is None


# --------------------------------------------------------------------------- calibrate & evidence
@pytest.fixture(scope="module")
def calibrated(oi_market):
    bars, path = _with_truth(oi_market)
    return H.calibrate(oi_market, regimes=path, bars=bars)


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
                     "spread_floor_bps", "cascade_oi_threshold"]
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
