"""alpha_touch (models/historical/touch_share.py): the touch bucket's informed share
against the synthetic truth, and the sweep-clustered effective count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mm_runtime.vocabulary import NS, REGIMES
from models import historical as H
from models.data import observations as ob

Z = 3.5  # standard errors (conftest.py)


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
