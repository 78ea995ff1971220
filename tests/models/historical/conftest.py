"""Shared markets of the historical calibrator's tests (models/historical/).

Tolerances are in units of each estimator's own standard error, never tuned to a
seed: kappa's is exact (kappa/sqrt(n) of an exponential MLE), alpha's is the
sweep-clustered binomial one, the Hawkes ones are delete-one-block jackknife SEs.
The jackknife SEs were checked against the spread of the estimates over 20 seeds
(``SyntheticConfig.busy()``, 2 h, true regime path): sd of (estimate - truth)/SE
0.85-1.22 for the four branching entries and beta, 0.89 for the self-excitation;
3 of 140 |z| above 3 (4-hour default markets: one more beyond 3 for beta, and a
cross-excitation estimated at the bound 0 has no SE: not tested there). A 3.5-SE
bound (``Z`` in the test modules) on about ten estimates per test is a family-wise
~1-3 % false alarm even with SEs 20 % too small, and a seed is fixed so each test
is deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest

from models.data import observations as ob
from models.data.synthetic import OpenInterestConfig, SyntheticConfig, simulate_market


def with_truth(market):
    """The market's volatility bars and the true regime path over them."""
    bars = ob.volatility_bars(market)
    return bars, np.asarray(market.truth["regime_path"])[: len(bars)]


@pytest.fixture(scope="session")
def default_1h():
    m = simulate_market(21, 3600.0)
    bars, path = with_truth(m)
    return m, bars, path


@pytest.fixture(scope="session")
def busy_2h():
    from models import hawkes as hk

    m = simulate_market(22, 7200.0, SyntheticConfig.busy())
    bars, path = with_truth(m)
    return m, hk.observations(m, path, bars=bars)


@pytest.fixture(scope="session")
def oi_market():
    return simulate_market(4, 3 * 3600.0, SyntheticConfig(open_interest=OpenInterestConfig()))


@pytest.fixture(scope="session")
def calibrated(oi_market):
    from models import historical as H

    bars, path = with_truth(oi_market)
    return H.calibrate(oi_market, regimes=path, bars=bars)
