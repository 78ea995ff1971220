"""spread_floor (models/historical/floor.py) on constructed fills: the first profitable
bucket, the fee, the derived floor per window, and no floor when nothing pays."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mm_runtime.vocabulary import NS
from models import historical as H
from models.historical import derived


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
