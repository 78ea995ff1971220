"""The live bar statistic (mm_runtime.barvar) against the offline bars
(models.data.observations.volatility_bars): the same ticks give the same numbers."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from mm_runtime.barvar import bar_init, bar_params, bar_update
from mm_runtime.observation import ObservationConfig
from models.data import observations as ob
from models.data.tables import Market, validate_quotes, validate_trades

T0 = 1_700_000_000 * 1_000_000_000


def _ticks(seed: int, n: int = 3000):
    """Irregular quote times (never on the 1 s grid), a mid on a 0.01 tick with
    occasional jumps of 5-20 ticks (the moves a jump-robust estimator must ignore)."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(0.35, n)) + 0.123
    steps = rng.choice([-1, 0, 0, 1], n) + np.where(rng.random(n) < 0.01, rng.integers(5, 20, n)
                                                    * rng.choice([-1, 1], n), 0)
    mid = 2000.0 + 0.01 * np.cumsum(steps)
    return t, mid


def _market(t, mid) -> Market:
    ts = T0 + np.round(t * 1e9).astype(np.int64)
    q = pd.DataFrame({"ts": ts, "bid": mid - 0.005, "ask": mid + 0.005, "bid_size": 1.0, "ask_size": 1.0})
    tr = pd.DataFrame({"ts": ts[[0, -1]], "price": mid[[0, -1]], "size": 1.0, "side": [1, -1]})
    return Market("TEST", "synthetic", validate_trades(tr), validate_quotes(q))


def _online(t, mid, cfg):
    p = bar_params(cfg)
    ts = (T0 + np.round(t * 1e9).astype(np.int64)) / 1e9

    def step(carry, x):
        b, prev_mid, last_ts = carry
        tsi, m = x
        b, n, y1, y0 = bar_update(b, tsi, jnp.asarray(True), prev_mid, last_ts, p)
        return (b, m, tsi), (n, y1, y0)

    _, (n, y1, y0) = jax.jit(lambda xs: jax.lax.scan(step, (jnp.asarray(bar_init()), 0.0, 0.0), xs))(
        (jnp.asarray(ts), jnp.asarray(mid)))
    out = []
    for k, a, e in zip(np.asarray(n), np.asarray(y1), np.asarray(y0), strict=True):
        if k > 0:
            out += [float(a)] + [float(e)] * (int(k) - 1)
    return np.asarray(out)


@pytest.mark.parametrize("estimator", ["medrv", "realized", "bipower", "minrv"])
def test_live_bar_statistic_equals_the_offline_bars(estimator):
    t, mid = _ticks(3)
    cfg = ObservationConfig(volatility_estimator=estimator, bar_seconds=10.0)
    bars = ob.volatility_bars(_market(t, mid), cfg)
    B = cfg.bar_seconds
    y_off = 0.5 * (bars["log_rv"].to_numpy() + math.log(1e8) - math.log(B))
    y_on = _online(t, mid, cfg)
    complete = bars["complete"].to_numpy()
    n = len(y_on)
    assert n >= 90 and complete[:n].all()
    np.testing.assert_allclose(y_on, y_off[:n], rtol=0, atol=1e-9)


def test_medrv_is_the_default_and_ignores_jumps():
    assert ObservationConfig().volatility_estimator == "medrv"
    t, mid = _ticks(5)
    med = _online(t, mid, ObservationConfig())
    rv = _online(t, mid, ObservationConfig(volatility_estimator="realized"))
    # the jumps (1 % of the ticks, 5-20 ticks) inflate the realized variance of their
    # bars (ln sigma up by > 0.7), not MedRV's
    assert len(rv) == len(med) and np.max(rv - med) > 0.7 and np.mean(rv - med) > 0.1


def test_quiet_bars_read_as_the_floor_and_a_long_silence_restarts_the_grid():
    cfg = ObservationConfig(bar_seconds=2.0, gap_min_seconds=10.0)
    t = np.array([0.1, 0.5, 0.9, 1.3, 1.7, 2.1, 2.5, 8.3, 8.6, 30.0, 30.4, 30.8, 31.2, 31.6, 32.0, 32.4])
    mid = 100.0 + 0.01 * np.array([0, 1, 2, 1, 3, 2, 4, 5, 4, 4, 5, 6, 5, 7, 6, 8])
    y = _online(t, mid, cfg)
    floor = math.log(cfg.rv_floor_sigma_bps)
    # bars [0.1, 2.1): moves; [2.1, 4.1), [4.1, 6.1): one move, then none; 8.3 closes 3 bars;
    # the 21.4 s silence restarts the grid at 30.0 (a recording gap, as offline)
    assert len(y) == 5 and y[0] > floor and np.all(y[2:4] == floor)
    assert y[4] > floor
