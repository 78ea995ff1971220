"""cascade_oi_threshold (models/historical/cascade.py) on synthetic markets with open
interest: recovered and identified with an effect, not identified without, None
without open interest."""

from __future__ import annotations

import numpy as np

from models import historical as H
from models.data.synthetic import OpenInterestConfig, SyntheticConfig, simulate_market


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
