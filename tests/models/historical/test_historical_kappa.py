"""kappa (models/historical/kappa_mle.py): recovery per regime x side and pooled on the
synthetic market, the exact chi-square interval, the minimum depth."""

from __future__ import annotations

import math

import pytest

from mm_runtime.vocabulary import REGIMES, SIDES
from models import historical as H

Z = 3.5  # standard errors (conftest.py)


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
