"""Paper-trading replay (issue #6 items 1-2): the fill rules, the accounting
invariants and the A/B comparison."""

import math

import numpy as np
import pytest

from mm_runtime import QuoterConfig, example_bundle
from mm_runtime.paper.compare import STATIC_KAPPA_PER_BP, config_for, paired, run_ab
from mm_runtime.paper.replay import ReplayConfig, ReplayData, replay

T0 = 1_700_000_000.0


def _market(seconds=240.0, seed=0, trade_rate=2.0, spread_bps=2.0, vol_bps=0.8):
    """A random-walk mid with best quotes every 0.1 s and Poisson trades whose prices
    spread a few bps around the mid (so some print through our levels)."""
    rng = np.random.default_rng(seed)
    qt = T0 + np.arange(0.0, seconds, 0.1)
    mid = 100.0 * np.exp(np.cumsum(rng.normal(0, vol_bps * 1e-4 * math.sqrt(0.1), qt.size)))
    half = 0.5 * spread_bps * 1e-4 * mid
    n = rng.poisson(trade_rate * seconds)
    tt = np.sort(T0 + rng.uniform(0.05, seconds - 0.05, n))
    side = rng.choice([-1.0, 1.0], n)
    m_at = mid[np.searchsorted(qt, tt, side="left") - 1]
    depth = rng.exponential(3.0, n) * 1e-4 * m_at  # how far the sweep went, ~ Exp(mean 3 bp)
    price = m_at + side * (0.5 * spread_bps * 1e-4 * m_at + depth)
    return ReplayData("TEST", "unit", tt, price, rng.exponential(2.0, n) + 0.01, side,
                      qt, mid - half, mid + half)


@pytest.fixture(scope="module")
def market():
    return _market()


@pytest.fixture(scope="module")
def run(market):
    return replay(market, example_bundle("TEST"), QuoterConfig(), ReplayConfig(fee_bps=1.0, block_s=60.0))


def test_fills_happen_only_where_the_market_traded_through(run, market):
    f = run.fills
    assert len(f["ts"]) > 20
    bids, asks = f["side"] > 0, f["side"] < 0
    assert np.all(f["price"][bids] > f["trade_price"][bids])  # a sell printed below our bid
    assert np.all(f["price"][asks] < f["trade_price"][asks])  # a buy printed above our ask
    # each fill's print is a real trade of the data, at that time, on the aggressor side that hits us
    for ts, tp, side in zip(f["ts"], f["trade_price"], f["side"], strict=True):
        k = np.flatnonzero((market.trade_ts == ts) & (market.trade_price == tp))
        assert k.size >= 1 and np.all(market.trade_side[k] == -side)


def test_no_fill_after_the_replay_ends(run, market):
    assert run.fills["ts"].max() <= market.trade_ts[-1]
    cut = market.window(market.start, T0 + 120.0)
    short = replay(cut, example_bundle("TEST"), QuoterConfig(), ReplayConfig())
    assert short.fills["ts"].size > 0 and short.fills["ts"].max() < T0 + 120.0
    assert short.t.max() < T0 + 120.0


def test_pnl_is_the_sum_of_fill_edges_minus_fees(run):
    """Accounting identity: final PnL = Σ side·size·(last mid − fill price) − fees."""
    f = run.fills
    edge = np.sum(f["side"] * f["size"] * (run.summary["last_mid"] - f["price"]))
    assert run.summary["pnl"] == pytest.approx(edge - np.sum(f["fee"]), rel=1e-9, abs=1e-9)
    assert np.sum(f["fee"]) == pytest.approx(1e-4 * np.sum(f["price"] * f["size"]))
    assert run.summary["final_position"] == pytest.approx(np.sum(f["side"] * f["size"]))


def test_fills_never_exceed_the_print_or_the_position_limit(run, market):
    f = run.fills
    for ts, tp in set(zip(f["ts"], f["trade_price"], strict=True)):
        sel = (f["ts"] == ts) & (f["trade_price"] == tp)
        k = np.flatnonzero((market.trade_ts == ts) & (market.trade_price == tp))
        assert f["size"][sel].sum() <= market.trade_size[k].sum() + 1e-12
    max_pos = run.config["quoter"]["max_position"]
    # the ladder never adds past the limit; one refresh's fills can overshoot by at most one ladder side
    assert run.summary["inventory_max_abs"] <= 2 * max_pos


def test_latency_longer_than_the_data_means_no_fills(market):
    r = replay(market, example_bundle("TEST"), QuoterConfig(), ReplayConfig(latency_s=10_000.0))
    assert r.fills["ts"].size == 0 and r.summary["pnl"] == 0.0


def test_queue_factor_adds_fills_at_our_price():
    m = _market(seconds=60.0, seed=3)
    qc = QuoterConfig(tick_size=0.01, learn=False)
    # buys printing at the mid never reach our asks: a ladder with no fills at all
    quiet = m._replace(trade_price=0.5 * (m.bid + m.ask)[np.searchsorted(m.quote_ts, m.trade_ts) - 1],
                       trade_side=np.ones(m.trade_ts.size))
    base = replay(quiet, example_bundle("TEST"), qc, ReplayConfig(latency_s=0.0, learn_from_trades=False))
    assert base.fills["ts"].size == 0
    # sells printing exactly at our best bid of each refresh: only the queue factor can fill them
    ok = np.isfinite(base.our_bid)
    tt = base.t[ok] + 0.5
    at = m._replace(trade_ts=tt, trade_price=base.our_bid[ok], trade_size=np.full(tt.size, 1.0),
                    trade_side=-np.ones(tt.size))
    none = replay(at, example_bundle("TEST"), qc, ReplayConfig(latency_s=0.0, learn_from_trades=False))
    some = replay(at, example_bundle("TEST"), qc, ReplayConfig(latency_s=0.0, learn_from_trades=False, queue_factor=0.5))
    assert none.fills["ts"].size == 0
    f = some.fills
    assert f["ts"].size > 0 and np.any(f["price"] == f["trade_price"])
    assert np.all(f["price"] >= f["trade_price"]) and np.all(f["size"][f["price"] == f["trade_price"]] <= 0.5 + 1e-12)


def test_learning_happens_only_in_learning_configurations(market):
    ab = run_ab(market, example_bundle("TEST"), ("static", "learned"), ReplayConfig(block_s=60.0))
    static, learned = ab["results"]["static"], ab["results"]["learned"]
    # both see the same evidence (learn=False keeps shadow statistics) but only
    # "learned" may trust it
    assert static.summary["learning"]["tier_intensity"] == 0.0
    assert learned.summary["learning"]["kappa_data_weight_max"] > 0.5
    assert learned.summary["learning"]["tier_intensity"] > 0.0
    cmp = ab["paired"]["learned"]
    assert cmp["blocks"] == 4 and cmp["ci_low"] <= cmp["mean_diff"] <= cmp["ci_high"]
    assert [row["config"] for row in ab["table"]] == ["static", "learned"]


def test_static_configuration_uses_the_original_constants():
    b, qc = config_for("static", example_bundle("TEST"))
    assert qc.learn is False and qc.kelly_alpha_touch == 0.15 and qc.kelly_alpha_decay_bps == 10.0
    assert qc.kelly_fraction == 0.25
    k = b.params.kappa
    for r in k.values():
        for g in r.values():
            assert g.shape / g.rate == pytest.approx(STATIC_KAPPA_PER_BP) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="unknown configuration"):
        config_for("greedy", b)


def test_learned_is_the_trade_through_model_and_queue_the_fills_ladder():
    b = example_bundle("TEST")
    for name, fills in (("static", False), ("learned", False), ("bundle", False), ("queue", True)):
        bb, qc = config_for(name, b)
        assert qc.use_fills_model is fills and qc.learn is (name not in ("bundle", "static"))


def test_paired_interval_matches_a_t_interval(run):
    scipy_stats = pytest.importorskip("scipy.stats")
    other = run._replace(equity=run.equity * 1.1 + np.linspace(0, 1, run.equity.size))
    p = paired(run, other, 60.0)
    from mm_runtime.paper.replay import block_pnl
    d = block_pnl(other, 60.0) - block_pnl(run, 60.0)
    lo, hi = scipy_stats.t.interval(0.95, d.size - 1, loc=d.mean(), scale=scipy_stats.sem(d))
    assert (p["ci_low"], p["ci_high"]) == (pytest.approx(lo, rel=1e-6), pytest.approx(hi, rel=1e-6))


@pytest.mark.parametrize(
    "change, match",
    [({"trade_price": np.array([np.nan])}, "trade_price"), ({"trade_side": np.array([2.0])}, "trade_side"),
     ({"trade_ts": np.array([]), "trade_price": np.array([]), "trade_size": np.array([]), "trade_side": np.array([])},
      "nothing to replay"),
     ({"quote_ts": np.array([2.0, 1.0]), "bid": np.array([1.0, 1.0]), "ask": np.array([1.1, 1.1])}, "sorted")],
)
def test_bad_data_is_refused_with_the_field_named(change, match):
    base = ReplayData("X", "unit", np.array([1.0]), np.array([1.0]), np.array([1.0]), np.array([1.0]),
                      np.array([0.5, 0.9]), np.array([0.99, 0.99]), np.array([1.01, 1.01]))
    with pytest.raises(ValueError, match=match):
        base._replace(**change).check()


def test_ladders_in_flight_rest_in_turn_when_latency_exceeds_the_refresh(market):
    """A 2.5 s latency with a 1 s refresh: every ladder still rests (2.5 s late), so
    fills happen, and none before the first ladder could have rested."""
    r = replay(market, example_bundle("TEST"), QuoterConfig(), ReplayConfig(latency_s=2.5))
    assert r.fills["ts"].size > 0
    assert r.fills["ts"].min() >= market.quote_ts[0] + 2.5


# --------------------------------------------------------------------------- one accounting (issue 20 item 1)

def _assert_one_accounting(r, block_s):
    """Headline PnL = the equity curve's last point = the sum of the block PnLs; the
    position and mark of the summary are the curve's last ones; nothing fills at or
    after the end of the replay, which is one refresh after the last ladder."""
    from mm_runtime.paper.replay import block_pnl

    s = r.summary
    assert s["pnl"] == r.equity[-1]
    assert float(np.sum(block_pnl(r, block_s))) == pytest.approx(s["pnl"], rel=1e-12, abs=1e-12)
    assert s["final_position"] == r.position[-1] and s["last_mid"] == r.mid[-1]
    assert s["inventory_max_abs"] >= abs(s["final_position"])
    refresh = r.config["replay"]["refresh_s"]
    assert r.t[-1] - r.t[-2] == pytest.approx(refresh)
    assert r.fills["ts"].size == 0 or r.fills["ts"].max() < r.t[-1]
    # the accounting identity over the fills, marked where the curve ends
    f = r.fills
    edge = np.sum(f["side"] * f["size"] * (r.mid[-1] - f["price"]))
    assert s["pnl"] == pytest.approx(edge - np.sum(f["fee"]), rel=1e-9, abs=1e-9)


def test_headline_pnl_is_the_equity_curves_last_point_and_the_sum_of_the_blocks(run, market):
    _assert_one_accounting(run, 60.0)
    ab = run_ab(market, example_bundle("TEST"), ("static", "learned"), ReplayConfig(block_s=60.0))
    s, l = ab["results"]["static"], ab["results"]["learned"]
    for r in (s, l):
        _assert_one_accounting(r, 60.0)
    # the table and the block comparison tell one story: mean difference × blocks = PnL difference
    p = ab["paired"]["learned"]
    assert p["mean_diff"] * p["blocks"] == pytest.approx(l.summary["pnl"] - s.summary["pnl"], rel=1e-9, abs=1e-12)


def test_a_sweep_after_the_last_whole_refresh_is_not_replayed():
    """The data end 0.9 s after a refresh time: that refresh is the end of the replay
    (every order cancelled there), so a sweep through the whole ladder 0.5 s later
    neither fills nor moves the headline PnL away from the equity curve."""
    m = _market(seconds=60.0, seed=4)
    mid = 0.5 * (m.bid[-1] + m.ask[-1])
    sweep_t = T0 + 59.5
    keep = m.trade_ts < T0 + 58.0
    m = m._replace(trade_ts=np.append(m.trade_ts[keep], sweep_t), trade_price=np.append(m.trade_price[keep], mid * 1.01),
                   trade_size=np.append(m.trade_size[keep], 1e6), trade_side=np.append(m.trade_side[keep], 1.0))
    r = replay(m, example_bundle("TEST"), QuoterConfig(), ReplayConfig(block_s=10.0, latency_s=0.0))
    assert r.t[-1] == pytest.approx(T0 + 59.0)
    assert not np.any(r.fills["ts"] == sweep_t)
    _assert_one_accounting(r, 10.0)


# --------------------------------------------------------------------------- saying why (issue 20 item 9)

def _negative_capture_bundle(asset="TEST", c=-0.13):
    """A calibrated-looking bundle whose spread capture c < 0: no depth earns, so its
    quoter never quotes."""
    from mm_runtime.bundle import PriorBundle, with_checksum

    doc = example_bundle(asset).model_dump(mode="json")
    doc["params"]["spread_capture"] = {"family": "normal", "mu": c, "sigma": 0.02}
    doc["checksum"] = ""
    return with_checksum(PriorBundle.model_validate(doc))


def test_a_quoter_that_never_quotes_says_why(market):
    ab = run_ab(market, _negative_capture_bundle(), ("static", "bundle"), ReplayConfig())
    s = ab["results"]["bundle"].summary
    assert s["quoted_share"] == 0.0 and s["fills"] == 0
    assert s["quoting_note"].startswith(f"never quoted ({s['refreshes']} refreshes): no positive Kelly edge at any "
                                        "level: spread capture -0.13")
    row = {r["config"]: r for r in ab["table"]}
    assert row["bundle"]["not_quoting"] == s["quoting_note"]
    assert row["static"]["quoted_share"] > 0.5  # static sets c = 1: it quotes, and its note (if any) is not "never"
    assert not (row["static"]["not_quoting"] or "").startswith("never")


def test_default_blocks_are_at_least_ten_and_fewer_are_flagged(market):
    from mm_runtime.paper.compare import MIN_BLOCKS, replay_verdict

    ab = run_ab(market, example_bundle("TEST"), ("static", "learned"), ReplayConfig())
    p = ab["paired"]["learned"]
    assert p["blocks"] >= MIN_BLOCKS and p["note"] is None
    assert ab["results"]["static"].config["replay"]["block_s"] == p["block_s"] == 20.0  # 239 s: 20 s blocks
    few = run_ab(market, example_bundle("TEST"), ("static", "learned"), ReplayConfig(block_s=60.0))["paired"]["learned"]
    assert few["blocks"] == 4 and few["note"].startswith("only 4 blocks of 60 s: too few for the comparison to mean")
    assert "too few" in replay_verdict(few)[1]


def test_fill_calibration_counts_a_fill_in_the_interval_the_order_rested():
    from mm_runtime.paper.results import fill_calibration

    px = np.array([[99.0, 98.0], [101.0, 102.0]])
    sz = np.array([[1.0, 1.0], [1.0, 0.0]])          # no second ask level
    pf = np.array([[0.5, 0.2], [0.4, 0.0]])
    quotes = [(0.0, 1.0, px, sz, pf), (1.0, 2.0, px, sz, pf)]
    # latency 0.1: the first ladder rests [0.1, 1.1), the second [1.1, 2.0] (the end)
    fills = {"ts": np.array([0.05, 0.5, 1.5, 1.5]), "side": np.array([1.0, 1.0, -1.0, 1.0]),
             "price": np.array([99.0, 99.0, 101.0, 98.0])}
    cal = fill_calibration(quotes, fills, latency_s=0.1, end_s=2.0, horizon_s=1.0)
    lv = {d["level"]: d for d in cal["levels"]}
    assert cal["orders"] == 6 and lv[0]["orders"] == 4 and lv[1]["orders"] == 2
    # level 0: bid filled in the first interval (0.5; 0.05 is before it rested), ask in the second
    assert lv[0]["realised"] == pytest.approx(0.5) and lv[0]["predicted"] == pytest.approx(0.45)
    assert lv[1]["realised"] == pytest.approx(0.5)     # the 98 bid in the second interval
    brier = np.mean([(0.5 - 1) ** 2, 0.4**2, 0.2**2, 0.5**2, 0.6**2, 0.8**2])
    assert cal["brier"] == pytest.approx(brier)
    assert cal["mean_rest_s"] == pytest.approx((1.0 * 3 + 0.9 * 3) / 6)
