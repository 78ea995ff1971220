"""The observation rules (DESIGN.md section 3) on small hand-built markets.

Every expected value is worked out by hand in the comments. Times are written
in seconds after T0 and converted to ns by ``ns()``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from models.data import observations as ob
from models.data.observations import ObservationConfig
from models.data.tables import Market, validate_quotes, validate_trades

T0 = 1_700_000_000 * 1_000_000_000


def ns(t: float) -> int:
    return T0 + int(round(t * 1e9))


def market(quotes, trades) -> Market:
    """quotes: (t, bid, ask); trades: (t, price, size, side)."""
    q = pd.DataFrame({"ts": [ns(t) for t, *_ in quotes],
                      "bid": [b for _, b, _ in quotes], "ask": [a for *_, a in quotes],
                      "bid_size": 1.0, "ask_size": 1.0})
    tr = pd.DataFrame({"ts": [ns(t) for t, *_ in trades], "price": [p for _, p, _, _ in trades],
                       "size": [s for _, _, s, _ in trades], "side": [d for *_, d in trades]})
    return Market("TEST", "synthetic", validate_trades(tr), validate_quotes(q))


def mid_quote(t, mid, half=0.01):
    return (t, mid - half, mid + half)


# --------------------------------------------------------------------------- config
def test_config_defaults_and_validation():
    c = ObservationConfig()
    assert c.depth_grid_bps == (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20)
    assert (c.repost_interval_s, c.markout_horizon_s, c.informed_threshold_bps) == (1, 1, 1)
    assert (c.bar_seconds, c.rv_sample_seconds, c.fill_at_price) == (10, 1, False)
    with pytest.raises(ValidationError):
        ObservationConfig(depth_grid_bps=(2, 1))  # not sorted
    with pytest.raises(ValidationError):
        ObservationConfig(depth_grid_bps=(0, 1))  # not > 0
    with pytest.raises(ValidationError):
        ObservationConfig(depth_grid_bps=())
    with pytest.raises(ValidationError):
        ObservationConfig(repost_interval_s=0)
    with pytest.raises(ValidationError):
        ObservationConfig(markout_horizon_s=-1)
    with pytest.raises(ValidationError):
        ObservationConfig(bar_seconds=10, rv_sample_seconds=3)  # not a multiple
    with pytest.raises(ValidationError):
        ObservationConfig(informed_threshold_bps=float("nan"))
    with pytest.raises(ValidationError):
        ObservationConfig(nonsense=1)
    with pytest.raises(ValidationError):
        c.bar_seconds = 5  # frozen
    assert ObservationConfig(informed_threshold_bps=0).informed_threshold_bps == 0


# --------------------------------------------------------------------------- arrivals
def test_arrivals_sweep_grouping_mid_before_and_depth():
    m = market(
        quotes=[mid_quote(0.0, 100.0), mid_quote(1.0, 100.01), mid_quote(3.0, 100.0)],
        trades=[
            # before the first quote: dropped, counted
            (-1.0, 100.0, 1.0, 1),
            # t=1.0: buy sweep of 2 prints (one arrival), then a sell at the same ts
            (1.0, 100.02, 1.0, 1),
            (1.0, 100.03, 3.0, 1),
            (1.0, 99.98, 2.0, -1),
            # t=2.0: buy, sell, buy at one ts: three arrivals (not consecutive)
            (2.0, 100.03, 1.0, 1),
            (2.0, 99.99, 1.0, -1),
            (2.0, 100.02, 1.0, 1),
            # t=3.0: a buy printing below the mid (stale quote): negative depth, kept
            (3.0, 99.99, 1.0, 1),
        ])
    a = ob.arrivals(m)
    assert a.attrs["dropped_before_first_quote"] == 1
    assert a.attrs["n_trades"] == 8
    assert list(a["n_prints"]) == [2, 1, 1, 1, 1, 1]
    assert list(a["side"]) == [1, -1, 1, -1, 1, 1]
    assert list(a["ts"]) == [ns(1), ns(1), ns(2), ns(2), ns(2), ns(3)]
    # mid_before: the t=1.0 quote is NOT before the t=1.0 trades (strictly before):
    # their mid is 100.0 (quote at 0); at t=2 it is 100.01; at t=3 it is 100.01 again
    # (the quote stamped 3.0 is the trade's aftermath).
    np.testing.assert_allclose(a["mid_before"], [100.0, 100.0, 100.01, 100.01, 100.01, 100.01])
    # sweep: size 1+3 = 4, vwap (100.02 + 3*100.03)/4 = 100.0275, extreme = max = 100.03
    assert a["size"].iloc[0] == 4.0
    assert a["vwap"].iloc[0] == pytest.approx(100.0275)
    assert a["extreme_price"].iloc[0] == 100.03
    # depth = side*(extreme - mid)/mid*1e4:
    #   buy  100.03 vs 100    -> +3 bp;  sell 99.98 vs 100 -> +2 bp
    #   buy  100.03 vs 100.01 -> 2/100.01*1e4 = 1.99980 bp
    #   sell 99.99  vs 100.01 -> 2/100.01*1e4
    #   buy  100.02 vs 100.01 -> 1/100.01*1e4
    #   buy  99.99  vs 100.01 -> -2/100.01*1e4 (negative: kept, unclipped)
    exp = [3.0, 2.0, 0.02 / 100.01 * 1e4, 0.02 / 100.01 * 1e4, 0.01 / 100.01 * 1e4,
           -0.02 / 100.01 * 1e4]
    np.testing.assert_allclose(a["depth_bps"], exp, rtol=1e-9)


def test_arrivals_sell_sweep_extreme_is_min():
    m = market([mid_quote(0, 100.0)],
               [(1.0, 99.99, 1.0, -1), (1.0, 99.97, 1.0, -1), (1.0, 99.98, 1.0, -1)])
    a = ob.arrivals(m)
    assert len(a) == 1 and a["n_prints"].iloc[0] == 3
    assert a["extreme_price"].iloc[0] == 99.97
    assert a["depth_bps"].iloc[0] == pytest.approx(3.0)


def test_arrival_summary_clips_negative_depth_and_rates():
    m = market([mid_quote(0, 100.0), mid_quote(100, 100.0)],
               [(1.0, 100.02, 1.0, 1), (2.0, 99.99, 1.0, 1),     # buys: +2 bp, -1 bp
                (3.0, 99.96, 1.0, -1)])                            # sell: +4 bp
    a = ob.arrivals(m)
    s = ob.arrival_summary(a).set_index("side_name")
    # duration = 100 s; buy: 2 arrivals, clipped depths (2, 0) -> mean 1, kappa 1
    assert s.loc["buy", "arrivals"] == 2
    assert s.loc["buy", "rate_per_s"] == pytest.approx(0.02)
    assert s.loc["buy", "mean_depth_bps"] == pytest.approx(1.0)
    assert s.loc["buy", "kappa_mle"] == pytest.approx(1.0)
    assert s.loc["buy", "negative_depth"] == 1
    assert s.loc["sell", "kappa_mle"] == pytest.approx(0.25)


# --------------------------------------------------------------------------- bars
BARCFG = ObservationConfig(bar_seconds=2.0, rv_sample_seconds=1.0, volatility_estimator="realized")


def bars_market(end: float) -> Market:
    # mid path: 100 from t=0, 101 from t=0.5, 100 from t=2.0 (exactly on the grid),
    # 102 from t=3.2, then flat; the last quote at `end` fixes the data end.
    return market([mid_quote(0, 100.0), mid_quote(0.5, 101.0), mid_quote(2.0, 100.0),
                   mid_quote(3.2, 102.0), mid_quote(end, 102.0)],
                  [(1.0, 101.0, 1.0, 1)])


def test_volatility_bars_hand_computed_rv():
    b = ob.volatility_bars(bars_market(6.0), BARCFG)
    # previous-tick grid g_j = j s: mids 100, 101, 100 (quote at 2.0 included), 100,
    # 102, 102, 102. Returns: ln1.01, ln(100/101), 0, ln1.02, 0, 0.
    # bar 0 = returns 1,2 ; bar 1 = returns 3,4 ; bar 2 = returns 5,6 (flat)
    r1 = math.log(1.01) ** 2 * 2
    r2 = math.log(1.02) ** 2
    assert list(b["bar_start"]) == [ns(0), ns(2), ns(4)]
    assert list(b["bar_end"]) == [ns(2), ns(4), ns(6)]
    np.testing.assert_allclose(b["rv"], [r1, r2, 0.0], rtol=1e-12, atol=0)
    np.testing.assert_allclose(b["sigma_bps"], [math.sqrt(r1 / 2) * 1e4,
                                                math.sqrt(r2 / 2) * 1e4, 0.0], rtol=1e-12)
    assert list(b["n_returns"]) == [2, 2, 2]
    assert b["complete"].all()
    # quotes per bar: [0, 0.5] -> 2 ; [2.0, 3.2] -> 2 ; [6.0] is past bar 2's end, it goes
    # to the last bar (open-ended)
    assert list(b["n_quotes"]) == [2, 2, 1]
    # log_rv: flat bar floored at (0.01e-4)^2 * 2 s, not -inf
    floor = (0.01e-4) ** 2 * 2.0
    assert np.isfinite(b["log_rv"]).all()
    assert b["log_rv"].iloc[2] == pytest.approx(math.log(floor))
    assert b["log_rv"].iloc[0] == pytest.approx(math.log(r1))
    assert b.attrs["log_rv_floor"] == pytest.approx(math.log(floor))


def test_volatility_bars_incomplete_last_bar():
    # data end 7.5 s: J = floor(7.5) = 7 returns -> bars of 2, 2, 2, 1 returns
    b = ob.volatility_bars(bars_market(7.5), BARCFG)
    assert list(b["n_returns"]) == [2, 2, 2, 1]
    assert list(b["complete"]) == [True, True, True, False]
    assert b["duration_s"].iloc[3] == 1.0
    # end 6.5 s: J = 6 -> no return in [6, 8): three bars only
    assert len(ob.volatility_bars(bars_market(6.5), BARCFG)) == 3


def test_volatility_bars_too_short_market():
    m = market([mid_quote(0, 100.0), mid_quote(0.5, 100.0)], [(0.2, 100.0, 1.0, 1)])
    with pytest.raises(ob.DataError, match="less than one rv sample"):
        ob.volatility_bars(m, BARCFG)


def test_bar_variance_hand_computed():
    """The jump-robust estimators on the non-zero returns of each bar; pairs and
    triples never cross a bar boundary; too few moves fall back to rv."""
    r = np.array([1.0, 0.0, -2.0, 3.0, 0.0, 0.0, 1.0,   # bar 0: moves 1, 2, 3, 1 (n = 4)
                  0.0, 5.0, 0.0,                        # bar 1: one move
                  1.0, -2.0,                            # bar 2: two moves
                  0.0])                                 # bar 3: flat
    bar_of = np.array([0] * 7 + [1] * 3 + [2] * 2 + [3])
    rv_expect = [15.0, 25.0, 5.0, 0.0]
    expect = {
        "realized": rv_expect,
        # pi/2 * n/(n-1) * sum |x_i||x_{i-1}|: bar 0 (1*2 + 2*3 + 3*1) = 11; bar 2: 1*2 = 2
        "bipower": [math.pi / 2 * 4 / 3 * 11, 25.0, math.pi / 2 * 2 * 2, 0.0],
        # pi/(pi-2) * n/(n-1) * sum min^2: bar 0 1 + 4 + 1 = 6; bar 2: 1
        "minrv": [math.pi / (math.pi - 2) * 4 / 3 * 6, 25.0, math.pi / (math.pi - 2) * 2 * 1, 0.0],
        # c * n/(n-2) * sum med^2: bar 0 med(1,2,3)^2 + med(2,3,1)^2 = 8; bar 2 (n = 2 < 3): rv
        "medrv": [math.pi / (6 - 4 * math.sqrt(3) + math.pi) * 2 * 8, 25.0, 5.0, 0.0],
    }
    for est, want in expect.items():
        rv, iv, n = ob.bar_variance(r, bar_of, 4, est)
        np.testing.assert_allclose(rv, rv_expect, rtol=1e-12)
        np.testing.assert_allclose(iv, want, rtol=1e-12, err_msg=est)
        assert list(n) == [4, 1, 2, 0]
    with pytest.raises(ValueError, match="unknown volatility_estimator 'rv2'"):
        ob.bar_variance(r, bar_of, 4, "rv2")
    with pytest.raises(ValidationError):
        ObservationConfig(volatility_estimator="rv2")


def test_bar_variance_constants_and_jump_robustness():
    """Gaussian returns: every estimator is unbiased (its constant); an isolated
    20-sd jump per bar multiplies rv by ~21 but MedRV/MinRV by < 1.3 (bipower,
    whose jump term is jump x neighbour, by ~3.5). Zero returns (a mid that did not
    move in the sampling interval) change nothing: the estimators see the moves."""
    rng = np.random.default_rng(3)
    n, nb = 20, 5000
    r = rng.standard_normal(n * nb)
    bar_of = np.repeat(np.arange(nb), n)
    for est, spec in ob.VOLATILITY_ESTIMATORS.items():
        _, iv, _ = ob.bar_variance(r, bar_of, nb, est)
        se = math.sqrt(spec["variance_factor"] * n) / math.sqrt(nb)  # sd of iv is sqrt(v/n) * n
        assert abs(iv.mean() - n) < 4 * se, (est, iv.mean())
    jumped = r.copy()
    jumped[5::n] += 20.0
    ratio = {est: ob.bar_variance(jumped, bar_of, nb, est)[1].mean() / n for est in ob.VOLATILITY_ESTIMATORS}
    assert ratio["realized"] > 15 and ratio["bipower"] > 2
    assert ratio["medrv"] < 1.3 and ratio["minrv"] < 1.3, ratio
    padded = np.zeros(2 * n * nb)
    padded[::2] = r  # a zero after every move, same bars
    for est in ob.VOLATILITY_ESTIMATORS:
        np.testing.assert_allclose(ob.bar_variance(padded, np.repeat(np.arange(nb), 2 * n), nb, est)[1],
                                   ob.bar_variance(r, bar_of, nb, est)[1], rtol=1e-12)


def test_volatility_bars_estimator_option():
    """log_rv and sigma_bps follow ``iv``; rv stays the realized variance; bars with
    fewer moves than the estimator needs keep rv (bars_market: at most 2 per bar)."""
    m = bars_market(6.0)
    base = ob.volatility_bars(m, BARCFG)
    cfg = BARCFG.model_copy(update={"volatility_estimator": "medrv"})
    b = ob.volatility_bars(m, cfg)
    assert b.attrs["volatility_estimator"] == "medrv" and base.attrs["volatility_estimator"] == "realized"
    assert list(b["n_moves"]) == [2, 1, 0]
    np.testing.assert_allclose(b["iv"], base["rv"], rtol=1e-12)
    np.testing.assert_allclose(b["log_rv"], base["log_rv"], rtol=1e-12)
    # bipower uses bar 0's two moves: pi/2 * 2 * |ln 1.01| |ln(100/101)|
    bp = ob.volatility_bars(m, BARCFG.model_copy(update={"volatility_estimator": "bipower"}))
    want = math.pi / 2 * 2 * math.log(1.01) * abs(math.log(100 / 101))
    assert bp["iv"].iloc[0] == pytest.approx(want, rel=1e-12)
    assert bp["sigma_bps"].iloc[0] == pytest.approx(math.sqrt(want / 2) * 1e4, rel=1e-12)
    assert bp["log_rv"].iloc[0] == pytest.approx(math.log(want), rel=1e-12)
    np.testing.assert_allclose(bp["rv"], base["rv"], rtol=1e-12)


# --------------------------------------------------------------------------- regimes
def test_label_regimes_placeholder_quantiles_and_explicit():
    bars = pd.DataFrame({"log_rv": np.arange(20.0)})
    # numpy linear quantiles of 0..19: q25 = 4.75, q75 = 14.25, q95 = 18.05
    lab = ob.label_regimes(bars)
    assert list(lab) == [0] * 5 + [1] * 10 + [2] * 4 + [3]
    # ties at a threshold go to the lower regime (a mass of floored bars is "low")
    tied = pd.DataFrame({"log_rv": [-25.0] * 10 + [1.0, 2.0]})
    assert list(ob.label_regimes(tied)[:10]) == [0] * 10
    # explicit per-bar regimes and probabilities
    assert list(ob.label_regimes(bars.iloc[:3], [3, 0, 2])) == [3, 0, 2]
    probs = np.array([[0.1, 0.7, 0.1, 0.1], [0.0, 0.0, 0.2, 0.8], [1, 0, 0, 0]])
    assert list(ob.label_regimes(bars.iloc[:3], probs)) == [1, 3, 0]
    with pytest.raises(ValueError):
        ob.label_regimes(bars.iloc[:3], [0, 1, 4])
    with pytest.raises(ValueError):
        ob.label_regimes(bars.iloc[:3], [0, 1])
    with pytest.raises(ValueError):
        ob.label_regimes(bars.iloc[:3], np.ones((3, 3)))
    assert ob.REGIMES == ("low", "normal", "high", "extreme")


def test_regime_at_bar_boundaries():
    b = ob.volatility_bars(bars_market(6.0), BARCFG)  # bars start at 0, 2, 4 s
    reg = np.array([0, 2, 3])
    ts = [ns(-0.5), ns(0), ns(2) - 1, ns(2), ns(3.999999999), ns(4), ns(6), ns(100)]
    # before the first bar -1; a boundary belongs to the bar starting there;
    # past the last bar's end: the last bar's regime
    assert list(ob.regime_at(ts, b, reg)) == [-1, 0, 0, 2, 2, 3, 3, 3]
    assert list(ob.regime_at(ns(2), b, reg)) == [2]


# --------------------------------------------------------------------------- passive fills
def cfg(**kw) -> ObservationConfig:
    base = dict(depth_grid_bps=(1.0,), repost_interval_s=1.0, markout_horizon_s=1.0,
                informed_threshold_bps=1.0, bar_seconds=10.0, rv_sample_seconds=1.0)
    base.update(kw)
    return ObservationConfig(**base)


def qbid(mid, d):
    return mid * (1.0 - d * 1e-4)   # the rule's own float expression


def qask(mid, d):
    return mid * (1.0 + d * 1e-4)


def test_fill_needs_a_trade_through_not_at_the_price():
    m = market([mid_quote(0, 100.0), mid_quote(10, 100.0)], [
        (0.2, qbid(100, 1), 1.0, -1),           # sell exactly at our bid: no fill
        (0.4, qask(100, 1), 1.0, 1),            # buy exactly at our ask: no fill
        (1.2, qbid(100, 1) - 0.001, 1.0, -1),   # sell through the bid: bid fill
        (1.4, qask(100, 1) + 0.001, 1.0, 1),    # buy through the ask: ask fill
        (2.2, 99.0, 1.0, 1),                    # a BUY printing below our bid: no fill
        (2.4, 101.0, 1.0, -1),                  # a SELL printing above our ask: no fill
    ])
    f = ob.passive_fills(m, cfg())
    assert list(f["ts"]) == [ns(1.2), ns(1.4)]
    assert list(f["side"]) == [1, -1]      # +1 our bid filled (we bought), -1 our ask
    np.testing.assert_allclose(f["price"], [qbid(100, 1), qask(100, 1)])
    assert list(f["trade_price"]) == [qbid(100, 1) - 0.001, qask(100, 1) + 0.001]
    # with fill_at_price the prints at exactly the price fill as well
    g = ob.passive_fills(m, cfg(fill_at_price=True))
    assert list(g["ts"]) == [ns(0.2), ns(0.4), ns(1.2), ns(1.4)]


def test_first_fill_only_and_repost_boundaries():
    # mid 100 until t=1.0, 100.1 from the quote stamped exactly 1.0 (the re-post at
    # r1 = 1.0 sees it: prevailing = last quote with ts <= r1)
    m = market([mid_quote(0, 100.0), mid_quote(1.0, 100.1), mid_quote(10, 100.1)], [
        (0.3, 99.98, 1.0, -1),   # interval (0,1]: bid 99.99 filled at 0.3
        (0.6, 99.97, 1.0, -1),   # same interval: the bid is already filled -> nothing
        (1.0, 100.02, 1.0, 1),   # ts == r1 belongs to (0,1]: ask 100.01 (mid 100) filled;
                                 # it would NOT fill the r1 ask 100.11001
        (1.5, 100.12, 1.0, 1),   # interval (1,2]: ask 100.1*1.0001 = 100.11001 filled
        (1.7, 100.0, 1.0, -1),   # interval (1,2]: bid 100.1*0.9999 = 100.08999 filled
        (1.8, 99.0, 1.0, -1),    # second through-print in (1,2]: bid already filled
    ])
    f = ob.passive_fills(m, cfg())
    assert list(f["ts"]) == [ns(0.3), ns(1.0), ns(1.5), ns(1.7)]
    assert list(f["side"]) == [1, -1, -1, 1]
    assert list(f["repost_ts"]) == [ns(0), ns(0), ns(1), ns(1)]
    np.testing.assert_allclose(f["price"], [qbid(100, 1), qask(100, 1), qask(100.1, 1),
                                            qbid(100.1, 1)])
    np.testing.assert_allclose(f["mid_at_post"], [100, 100, 100.1, 100.1])
    # mid_at_fill is the mid just before the fill: at ts 1.0 that is 100 (quote at 0)
    np.testing.assert_allclose(f["mid_at_fill"], [100, 100, 100.1, 100.1])
    # two depths: a deep print fills both depths, each once
    g = ob.passive_fills(m, cfg(depth_grid_bps=(1.0, 5.0)))
    deep = g[g["depth_bps"] == 5.0]
    # bid at 5 bp in (0,1]: 99.95 -> first print through is none of 99.98/99.97;
    # in (1,2]: 100.1*0.9995 = 100.04995 -> 100.0 at 1.7 fills it
    # ask at 5 bp in (1,2]: 100.15005 -> 100.12 does not fill
    assert list(deep["ts"]) == [ns(1.7)] and list(deep["side"]) == [1]


def test_markout_sign_both_sides_and_informed_threshold():
    m = market([mid_quote(0, 100.0), mid_quote(1.5, 99.975), mid_quote(3.0, 100.0),
                mid_quote(10, 100.0)], [
        (0.5, 99.98, 1.0, -1),   # bid fill, p = 99.99
        (0.6, 100.02, 1.0, 1),   # ask fill, p = 100.01
        (2.5, 100.0, 1.0, 1),    # ask fill of the r2 quote: mid(2.0) = 99.975
    ])
    f = ob.passive_fills(m, cfg())
    assert list(f["side"]) == [1, -1, -1]
    p_bid, p_ask, p_ask2 = qbid(100, 1), qask(100, 1), qask(99.975, 1)
    # bid (we bought at p): mid(0.5 + 1) = 99.975 (quote at 1.5 included)
    #   markout = (p - mid_h)/p*1e4 = (99.99 - 99.975)/99.99*1e4 = +1.50015 bp: adverse
    # ask (we sold at p): mid(1.6) = 99.975: (99.975 - 100.01)/100.01*1e4 = -3.4997: favourable
    # ask at 2.5 (p = 99.9849975): mid(3.5) = 100: (100 - p)/p*1e4 = +1.50047 bp: adverse
    exp = [(p_bid - 99.975) / p_bid * 1e4, (99.975 - p_ask) / p_ask * 1e4,
           (100.0 - p_ask2) / p_ask2 * 1e4]
    np.testing.assert_allclose(f["markout_bps"], exp, rtol=1e-12)
    assert exp[0] == pytest.approx(1.50015, abs=1e-5)
    assert list(f["informed"]) == [True, False, True]
    np.testing.assert_allclose(f["mid_at_horizon"], [99.975, 99.975, 100.0])
    # threshold 2 bp: none informed; threshold == the markout itself: strict, not informed
    assert not ob.passive_fills(m, cfg(informed_threshold_bps=2.0))["informed"].any()
    at = ob.passive_fills(m, cfg(informed_threshold_bps=float(f["markout_bps"].iloc[0])))
    assert list(at["informed"]) == [False, False, True]


def test_fills_past_the_end_are_dropped_and_counted():
    # data end 3.0 s (last quote); re-posts at 0, 1, 2 (r_k < 3)
    m = market([mid_quote(0, 100.0), mid_quote(3.0, 100.0)], [
        (1.5, 99.98, 1.0, -1),   # 1.5 + 1 = 2.5 <= 3: kept
        (2.0, 100.02, 1.0, 1),   # 2.0 + 1 = 3.0 <= 3: kept (ask, interval (1,2])
        (2.5, 99.98, 1.0, -1),   # 3.5 > 3: dropped
    ])
    f = ob.passive_fills(m, cfg())
    assert list(f["ts"]) == [ns(1.5), ns(2.0)]
    assert f.attrs["dropped_past_end"] == 1
    assert f.attrs["n_reposts"] == 3
    posted = ob.passive_quotes_posted(m, cfg(), regimes=np.array([2]))
    # one bar (regime 2 given explicitly): 3 quotes per side and depth, lifetimes 1+1+1 s
    assert list(posted["n_posted"]) == [3, 3]
    assert list(posted["regime"]) == [2, 2]
    np.testing.assert_allclose(posted["exposure_s"], [3.0, 3.0])


def test_fill_regime_is_the_bar_of_the_fill():
    m = market([mid_quote(0, 100.0), mid_quote(20.0, 100.0)], [
        (9.5, 99.98, 1.0, -1), (10.0, 100.02, 1.0, 1), (10.5, 99.98, 1.0, -1)])
    # bars [0,10), [10,20): the (ask) fill at exactly 10.0 is in bar 1, although its
    # quote was posted at 9.0 in bar 0
    f = ob.passive_fills(m, cfg(), regimes=np.array([1, 3]))
    assert list(f["regime"]) == [1, 3, 3]
    # default labelling works without explicit regimes
    assert ob.passive_fills(m, cfg())["regime"].between(0, 3).all()


def test_arrivals_carry_regime_and_regime_summary():
    m = market([mid_quote(0, 100.0), mid_quote(20.0, 100.0)],
               [(5.0, 100.02, 1.0, 1), (10.0, 100.02, 1.0, 1), (15.0, 99.98, 1.0, -1)])
    assert "regime" not in ob.arrivals(m).columns
    a = ob.arrivals(m, regimes=np.array([2, 0]))  # bars [0,10), [10,20)
    assert list(a["regime"]) == [2, 0, 0]
    s = ob.arrival_summary(a, ob.volatility_bars(m), np.array([2, 0])).set_index(
        ["regime_name", "side_name"])
    # regime 0 (low): bar [10,20) = 10 s, one buy, one sell; regime 2: one buy in 10 s
    assert s.loc[("low", "buy"), "rate_per_s"] == pytest.approx(0.1)
    assert s.loc[("high", "buy"), "arrivals"] == 1
    assert s.loc[("normal", "sell"), "arrivals"] == 0
    b = ob.volatility_bars(bars_market(6.0), BARCFG)
    rs = ob.regime_summary(b, np.array([0, 0, 3])).set_index("regime_name")
    assert list(rs["bars"]) == [2, 0, 0, 1]
    # low: rv 2 ln(1.01)^2 + ln(1.02)^2 over 4 s
    exp = math.sqrt((2 * math.log(1.01) ** 2 + math.log(1.02) ** 2) / 4) * 1e4
    assert rs.loc["low", "sigma_bps_mean"] == pytest.approx(exp)
    assert rs.loc["extreme", "sigma_bps_mean"] == 0.0
    assert np.isnan(rs.loc["normal", "log_rv_mean"])


def test_fill_table_buckets():
    fills = pd.DataFrame({
        "depth_bps": [0.5, 1.9, 2.0, 4.99, 5.0, 10.0, 20.0],
        "informed": [True, False, True, True, False, False, True],
        "markout_bps": [2.0, -1.0, 3.0, 4.0, -5.0, -10.0, 1.5],
        "regime": [0, 0, 1, 1, 1, 3, 3],
    })
    t = ob.fill_table(fills).set_index("bucket")
    # [0,2): 0.5, 1.9 ; [2,5): 2.0, 4.99 ; [5,10): 5.0 ; [10,inf): 10, 20
    assert list(t["fills"]) == [2, 2, 1, 2]
    assert list(t["informed"]) == [1, 2, 0, 1]
    np.testing.assert_allclose(t["informed_share"], [0.5, 1.0, 0.0, 0.5])
    np.testing.assert_allclose(t["markout_mean_bps"], [0.5, 3.5, -5.0, -4.25])
    assert ob.DEPTH_BUCKETS_BPS == (0, 2, 5, 10)
    tr = ob.fill_table(fills, by_regime=True)
    assert len(tr) == 16
    assert tr.query("regime == 3 and bucket == '[10,inf)'")["fills"].item() == 2
    assert tr.query("regime == 2")["fills"].sum() == 0
    assert np.isnan(tr.query("regime == 2")["informed_share"]).all()
    assert list(ob.depth_bucket([-1.0, 0.0, 1.99, 2.0, 9.99, 10.0, 1e9])) == [0, 0, 0, 1, 2, 3, 3]


# --------------------------------------------------------------------------- bar length
def _moving_market(every_s: float, duration_s: float = 600.0) -> Market:
    """A mid that moves by one tick every ``every_s`` seconds (alternating)."""
    ts = np.arange(0.0, duration_s + 1e-9, every_s)
    return market([mid_quote(t, 100.0 + 0.01 * (i % 2)) for i, t in enumerate(ts)], [(1.0, 100.0, 1.0, 1)])


@pytest.mark.parametrize("every_s,expected", [(1.0, 10.0), (2.0, 20.0), (3.0, 30.0), (4.0, 60.0),
                                              (20.0, 300.0)])
def test_choose_bar_seconds_wants_ten_price_moves_per_bar(every_s, expected):
    m = _moving_market(every_s)
    assert ob.choose_bar_seconds(m) == expected
    cfg = ob.auto_bar_config(m, ObservationConfig(informed_threshold_bps=2.0))
    assert (cfg.bar_seconds, cfg.informed_threshold_bps) == (expected, 2.0)


def test_choose_bar_seconds_on_real_and_synthetic_markets(shared_data):
    from models.data import loaders
    from models.data.synthetic import simulate_market

    aapl = loaders.load("lobster", shared_data / "lobster" / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip", None)
    btc = loaders.load("hyperliquid", shared_data / "hyperliquid" / "recorder_2025-09-04", "BTC")
    # the mid moves in ~50 % of AAPL's 1 s intervals, ~25 % of Hyperliquid BTC's, every one of the synthetic's
    assert ob.choose_bar_seconds(aapl) == 30.0
    assert ob.choose_bar_seconds(btc) == 60.0
    assert ob.choose_bar_seconds(simulate_market(0, 300.0)) == 10.0


def test_rv_grid_is_suggested_only_where_the_mid_is_continuous(shared_data):
    """The suggested rv sampling grid: 0.1 s where the mid moves in >= 90 % of the 0.1 s
    intervals (the synthetic mid moves in every one), the default 1 s on the real books
    (the mid moves in a minority of even the 1 s intervals); `--rv-sample-seconds` sets it."""
    from flows.fitting import observation_config
    from models.data import loaders
    from models.data.synthetic import simulate_market

    syn = simulate_market(0, 300.0)
    assert ob.moving_share(syn, 0.1) == 1.0
    assert ob.choose_rv_sample_seconds(syn) == 0.1
    cfg = observation_config(syn, {"rv_sample_seconds": 0.1})
    assert (cfg.bar_seconds, cfg.rv_sample_seconds) == (10.0, 0.1)   # the bar length chosen on that grid
    assert observation_config(syn).rv_sample_seconds == 1.0           # the default grid stays
    bars = ob.volatility_bars(syn, cfg)
    assert bars.attrs["rv_sample_seconds"] == 0.1 and (bars["n_moves"] > 50).all()
    aapl = loaders.load("lobster", shared_data / "lobster" / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip", None)
    btc = loaders.load("hyperliquid", shared_data / "hyperliquid" / "recorder_2025-09-04", "BTC")
    for real in (aapl, btc):
        assert ob.moving_share(real, 0.1) < 0.2
        assert ob.choose_rv_sample_seconds(real) == 1.0
    # a mid moving in every 0.2 s interval but only half of the 0.1 s ones
    m = _moving_market(0.2, duration_s=60.0)
    assert ob.choose_rv_sample_seconds(m, ObservationConfig(bar_seconds=10.0)) == 0.2
    assert ob.choose_rv_sample_seconds(m, ObservationConfig(bar_seconds=10.0), min_share=1.01) == 1.0
