"""hawkes (models/historical/hawkes_moments.py): the method of moments recovers the
synthetic truth within jackknife SEs, runs in O(N), and its closed-form curves match
the simulated ones."""

from __future__ import annotations

import numpy as np

from mm_runtime.vocabulary import REGIMES, SIDES
from models import historical as H
from models.data import observations as ob
from models.data.synthetic import SyntheticConfig, simulate_market
from models.historical.hawkes_moments import _Moments, _predict, _segments, _TauStats

Z = 3.5  # standard errors (conftest.py)


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
    bars = ob.volatility_bars(m)
    path = np.asarray(m.truth["regime_path"])[: len(bars)]
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
    seg = _segments(np.asarray(obs.bar_edges[0]), np.asarray(obs.bar_regime[0]), T, cfg.hawkes_groups)
    taus = np.asarray(res.taus_s)
    st, en, reg, grp = seg
    si = np.searchsorted(st, obs.t, side="right") - 1
    C = np.bincount((grp[si] * 4 + reg[si]) * 2 + obs.side, minlength=8 * cfg.hawkes_groups).astype(float)
    O = np.bincount(grp * 4 + reg, weights=en - st, minlength=4 * cfg.hawkes_groups)
    ts = [_TauStats(obs.t, obs.side.astype(np.int64), seg, cfg.hawkes_groups, x) for x in taus]
    mom = _Moments(taus, ts, C, O, np.ones(cfg.hawkes_groups, bool))
    pred = _predict(np.asarray(SyntheticConfig.busy().hawkes_branching), 1.0, mom)
    z = (mom.curves() - pred) / np.asarray(res.curves["sd"])
    assert np.abs(z).max() < Z, np.abs(z).max(axis=1)
