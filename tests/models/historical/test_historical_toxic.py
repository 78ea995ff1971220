"""toxic_hours (models/historical/toxicity.py) on constructed fills: a toxic hour is
found with its multiplier, alike hours are not, too few sweeps compare nothing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mm_runtime.vocabulary import NS
from models import historical as H
from models.historical import derived


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
