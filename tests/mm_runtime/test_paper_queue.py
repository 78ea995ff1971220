"""Paper-trading replay with L2 books (issue #6 item 1): queue position for fills at
our price (hftbacktest's risk-averse queue model), trade-through fills unchanged,
the accounting invariants under the book model, and a LOBSTER smoke test."""

import math

import numpy as np
import pytest

from mm_runtime import QuoterConfig, example_bundle
from mm_runtime.paper.compare import config_for
from mm_runtime.paper.replay import ReplayConfig, ReplayData, infer_tick, replay

T0 = 1_700_000_000.0
TICK = 0.01
# one ladder for the whole sequence (one refresh interval = the 29 s of quotes), nothing
# learned: the ladder does not depend on the prints, so every run quotes the same prices
QC = QuoterConfig(tick_size=TICK, learn=False)
ONE_LADDER = dict(refresh_s=29.0, latency_s=0.0, learn_from_trades=False)


def _quotes():
    qt = T0 + np.arange(0.0, 30.0, 1.0)
    return qt, np.full(qt.size, 99.99), np.full(qt.size, 100.01)


def _data(trades, books=None):
    """trades: (dt, price, size, side) rows; books: (dt, bid levels [(px, sz)], ask levels)."""
    qt, bid, ask = _quotes()
    tr = np.array(trades, float).reshape(-1, 4)
    d = ReplayData("TEST", "unit", T0 + tr[:, 0], tr[:, 1], tr[:, 2], tr[:, 3], qt, bid, ask, tick=TICK)
    if books is None:
        return d.check()
    L = max(max(len(b), len(a)) for _, b, a in books)
    arr = {k: np.full((len(books), L), np.nan) for k in ("bpx", "apx")}
    arr.update({k: np.zeros((len(books), L)) for k in ("bsz", "asz")})
    for i, (_, b, a) in enumerate(books):
        for lv, (p, s) in enumerate(b):
            arr["bpx"][i, lv], arr["bsz"][i, lv] = p, s
        for lv, (p, s) in enumerate(a):
            arr["apx"][i, lv], arr["asz"][i, lv] = p, s
    return d._replace(book_ts=T0 + np.array([b[0] for b in books], float), book_bid_px=arr["bpx"],
                      book_bid_sz=arr["bsz"], book_ask_px=arr["apx"], book_ask_sz=arr["asz"]).check()


@pytest.fixture(scope="module")
def ladder():
    """Our best bid p0 and its size s0: a print far through every bid fills each level
    in full (one huge print, capped by nothing but our sizes)."""
    probe = replay(_data([(5.0, 90.0, 1e6, -1.0)]), example_bundle("TEST"), QC,
                   ReplayConfig(queue_model="none", **ONE_LADDER))
    f = probe.fills
    p0 = float(probe.our_bid[0])
    s0 = float(f["size"][(f["level"] == 0) & (f["side"] > 0)][0])
    assert s0 > 1.0 and abs(p0 / TICK - round(p0 / TICK)) < 1e-6
    return p0, s0


def _book(p0, ahead, dt=-0.5):
    """A 4-level snapshot with ``ahead`` displayed at our bid p0 (the third level)."""
    return (dt, [(p0 + 2 * TICK, 5.0), (p0 + TICK, 5.0), (p0, ahead), (p0 - TICK, 5.0)],
            [(100.01, 5.0), (100.02, 5.0), (100.03, 5.0), (100.04, 5.0)])


def _run(data, **kw):
    return replay(data, example_bundle("TEST"), QC, ReplayConfig(**{**ONE_LADDER, **kw}))


def _bid_fills(r):
    f = r.fills
    sel = f["side"] > 0
    return f["ts"][sel] - T0, f["size"][sel], f["at_price"][sel]


def test_a_print_smaller_than_the_queue_ahead_does_not_fill_and_the_next_fills_the_remainder(ladder):
    p0, s0 = ladder
    x = 0.4 * s0
    trades = [(2.0, p0, 4.0, -1.0),            # 10 ahead -> 6 ahead, no fill
              (3.0, p0, 6.0 + x, -1.0),        # 6 ahead consumed, we get exactly x
              (4.0, p0, 100.0, -1.0)]          # the rest of our order, s0 - x
    r = _run(_data(trades, [_book(p0, 10.0)]), queue_model="book")
    ts, size, at = _bid_fills(r)
    assert list(ts) == [3.0, 4.0] and np.all(at == 1.0)
    assert size == pytest.approx([x, s0 - x], rel=1e-12)
    assert r.summary["fill_model"]["queue_model"] == "book"
    # the optimistic rule fills on the first print already
    opt = _run(_data(trades, [_book(p0, 10.0)]), queue_model="factor", queue_factor=1.0)
    ts_o, size_o, _ = _bid_fills(opt)
    assert ts_o[0] == 2.0 and size_o[0] == pytest.approx(4.0)


def test_the_default_is_the_book_model_when_the_data_has_books(ladder):
    p0, s0 = ladder
    trades = [(2.0, p0, 4.0, -1.0)]
    with_book = _run(_data(trades, [_book(p0, 10.0)]))
    assert with_book.summary["fill_model"]["queue_model"] == "book" and with_book.fills["ts"].size == 0
    without = _run(_data(trades), queue_factor=1.0)  # auto -> the factor fallback
    assert without.summary["fill_model"]["queue_model"] == "factor" and without.fills["ts"].size == 1


def test_a_snapshot_at_the_prints_timestamp_already_reflects_it(ladder):
    """The book after the print shows 10 - 4 = 6: applying it after the print caps
    nothing (no double count); applied before, it would leave only 2 ahead."""
    p0, s0 = ladder
    trades = [(2.0, p0, 4.0, -1.0), (3.0, p0, 7.0, -1.0)]
    r = _run(_data(trades, [_book(p0, 10.0), _book(p0, 6.0, dt=2.0)]), queue_model="book")
    ts, size, _ = _bid_fills(r)
    assert list(ts) == [3.0] and size == pytest.approx([1.0])


def test_cancellations_ahead_count_only_when_the_book_shows_less_than_our_queue(ladder):
    """Risk-averse: a later snapshot with more at p0 (orders joining behind us) leaves
    the queue ahead at 10; one with 3 at p0 caps it at 3."""
    p0, s0 = ladder
    trades = [(2.0, p0, 4.0, -1.0)]
    grew = _run(_data(trades, [_book(p0, 10.0), _book(p0, 50.0, dt=1.0)]), queue_model="book")
    assert grew.fills["ts"].size == 0
    shrank = _run(_data(trades, [_book(p0, 10.0), _book(p0, 3.0, dt=1.0)]), queue_model="book")
    ts, size, _ = _bid_fills(shrank)
    assert list(ts) == [2.0] and size == pytest.approx([1.0])


def test_a_price_deeper_than_the_visible_book_has_an_unknown_queue_until_it_shows(ladder):
    p0, s0 = ladder
    shallow = (-0.5, [(p0 + 2 * TICK, 5.0), (p0 + TICK, 5.0)], [(100.01, 5.0), (100.02, 5.0)])
    trades = [(2.0, p0, 4.0, -1.0), (4.0, p0, 4.0, -1.0)]
    r = _run(_data(trades, [shallow]), queue_model="book")
    assert r.fills["ts"].size == 0  # p0 never shown: nothing fills at p0
    # the market comes down to p0, which then shows 2: at most those are ahead of us
    shown = (3.0, [(p0, 2.0), (p0 - TICK, 5.0)], [(p0 + TICK, 5.0), (p0 + 2 * TICK, 5.0)])
    r = _run(_data(trades, [shallow, shown]), queue_model="book")
    ts, size, _ = _bid_fills(r)
    assert list(ts) == [4.0] and size == pytest.approx([2.0])
    # a side with fewer levels than the file's depth shows everything: p0 is empty
    thin = (-0.5, [(p0 + 2 * TICK, 5.0)], [(100.01, 5.0), (100.02, 5.0)])
    r = _run(_data(trades, [thin]), queue_model="book")
    ts, size, _ = _bid_fills(r)
    assert ts[0] == 2.0 and size[0] == pytest.approx(min(4.0, s0))


def test_b_trade_through_fills_ignore_the_queue(ladder):
    p0, s0 = ladder
    trades = [(2.0, p0 - TICK, 0.3 * s0, -1.0), (3.0, p0 - 3 * TICK, 0.2 * s0, -1.0)]
    runs = {m: _run(_data(trades, [_book(p0, 1e9)]), queue_model=m) for m in ("book", "none")}
    runs["factor"] = _run(_data(trades, [_book(p0, 1e9)]), queue_model="factor", queue_factor=1.0)
    base = runs["none"].fills
    assert base["ts"].size >= 2
    for m, r in runs.items():
        for k in ("ts", "price", "size", "level"):
            np.testing.assert_array_equal(r.fills[k], base[k], err_msg=f"{m}: {k}")
        assert np.all(r.fills["at_price"] == 0.0)
    # a print through our price empties its queue: a later print at p0 fills us at once
    trades2 = [(2.0, p0 - TICK, 0.1, -1.0), (3.0, p0, 0.2, -1.0)]
    ts, size, at = _bid_fills(_run(_data(trades2, [_book(p0, 1e9)]), queue_model="book"))
    assert list(ts)[:2] == [2.0, 3.0] and list(at)[:2] == [0.0, 1.0] and size[1] == pytest.approx(0.2)


def test_a_requoted_price_keeps_its_place_in_the_queue(ladder):
    """With a 1 s refresh the unchanged ladder is re-sent every second; the order at p0
    keeps the place it took at t0 (10 ahead) although 50 are displayed later."""
    p0, s0 = ladder
    trades = [(5.5, p0, 12.0, -1.0)]
    data = _data(trades, [_book(p0, 10.0), _book(p0, 50.0, dt=1.5)])
    r = replay(data, example_bundle("TEST"), QC,
               ReplayConfig(queue_model="book", refresh_s=1.0, latency_s=0.05, learn_from_trades=False))
    ts, size, _ = _bid_fills(r)
    assert list(ts) == [5.5] and size == pytest.approx([2.0])
    assert r.summary["fill_model"]["book_levels"]["kept"] > 0


def test_bad_queue_settings_are_refused_naming_the_field(ladder):
    with pytest.raises(ValueError, match="queue_factor"):
        ReplayConfig(queue_model="book", queue_factor=0.5)
    with pytest.raises(ValueError, match="queue_model"):
        _run(_data([(2.0, 99.0, 1.0, -1.0)]), queue_model="book")
    with pytest.raises(ValueError, match="tick_size"):
        d = _data([(2.0, 99.0, 1.0, -1.0)], [_book(99.9, 1.0)])._replace(tick=0.0)
        replay(d, example_bundle("TEST"), QuoterConfig(learn=False), ReplayConfig(queue_model="book", **ONE_LADDER))
    d = _data([(2.0, 99.0, 1.0, -1.0)], [_book(99.9, 1.0)])
    with pytest.raises(ValueError, match="book_ask_sz"):
        d._replace(book_ask_sz=None).check()
    with pytest.raises(ValueError, match="book_bid_sz"):
        d._replace(book_bid_sz=-d.book_bid_sz - 1).check()


def test_infer_tick():
    assert infer_tick(np.array([585.33, 585.34, 585.37, 586.0])) == 0.01
    assert infer_tick(np.array([111234.0, 111236.0, 111235.0])) == 1.0
    rng = np.random.default_rng(0)
    assert infer_tick(100 + rng.normal(size=1000)) == 0.0
    # continuous prices where two differ by float noise only (the synthetic market's
    # mid +- half-spread): no grid of 1.4e-14
    p = 100 + rng.normal(size=1000)
    assert infer_tick(np.append(p, np.nextafter(p[0], np.inf))) == 0.0
    assert infer_tick(np.array([0.20001, 0.20002, 0.20005])) == 1e-05    # a fine grid at a small price


# --------------------------------------------------------------------------- a synthetic market on a tick grid

def _grid_market(seconds=240.0, seed=0, levels=10):
    """Best quotes every 0.1 s on a 0.01 grid (1-2 ticks wide), 10-level books with
    random sizes, and Poisson trades at or through the touch on that grid."""
    rng = np.random.default_rng(seed)
    qt = T0 + np.arange(0.0, seconds, 0.1)
    mid = 100.0 + np.cumsum(rng.normal(0, 0.004, qt.size))
    bid = np.floor(mid / TICK) * TICK
    ask = bid + TICK * rng.integers(1, 3, qt.size)
    n = rng.poisson(4.0 * seconds)
    tt = np.sort(T0 + rng.uniform(0.05, seconds - 0.05, n))
    i = np.searchsorted(qt, tt, side="left") - 1
    side = rng.choice([-1.0, 1.0], n)
    steps = rng.geometric(0.2, n) - 1  # 0 = at the touch, k = k ticks through it
    price = np.where(side > 0, ask[i] + steps * TICK, bid[i] - steps * TICK)
    lv = np.arange(levels)
    bpx, apx = bid[:, None] - lv * TICK, ask[:, None] + lv * TICK
    bsz, asz = rng.integers(1, 10, bpx.shape).astype(float), rng.integers(1, 10, apx.shape).astype(float)
    return ReplayData("TEST", "unit", tt, np.round(price, 2), rng.exponential(3.0, n) + 0.01, side,
                      qt, bid, ask, qt.copy(), bpx, bsz, apx, asz, TICK).check()


@pytest.fixture(scope="module")
def grid():
    return _grid_market()


@pytest.fixture(scope="module")
def book_run(grid):
    return replay(grid, example_bundle("TEST"), QC, ReplayConfig(fee_bps=1.0, block_s=60.0))


def test_c_accounting_invariants_hold_under_the_book_model(book_run, grid):
    r = book_run
    f = r.fills
    assert r.summary["fill_model"]["queue_model"] == "book"
    assert f["ts"].size > 20 and np.any(f["at_price"] == 1.0)
    edge = np.sum(f["side"] * f["size"] * (r.summary["last_mid"] - f["price"]))
    assert r.summary["pnl"] == pytest.approx(edge - np.sum(f["fee"]), rel=1e-9, abs=1e-9)
    assert np.sum(f["fee"]) == pytest.approx(1e-4 * np.sum(f["price"] * f["size"]))
    assert r.summary["final_position"] == pytest.approx(np.sum(f["side"] * f["size"]))
    # a fill is at or through its print, never better for us than the print
    bids, asks = f["side"] > 0, f["side"] < 0
    assert np.all(f["price"][bids] >= f["trade_price"][bids] - 1e-9)
    assert np.all(f["price"][asks] <= f["trade_price"][asks] + 1e-9)
    at = f["at_price"] == 1.0
    np.testing.assert_allclose(f["price"][at], f["trade_price"][at], rtol=1e-9)
    # one print never fills more than it traded
    for ts, tp in set(zip(f["ts"], f["trade_price"], strict=True)):
        sel = (f["ts"] == ts) & (f["trade_price"] == tp)
        k = np.flatnonzero((grid.trade_ts == ts) & (grid.trade_price == tp))
        assert f["size"][sel].sum() <= grid.trade_size[k].sum() + 1e-9


def test_the_book_model_fills_less_at_our_price_than_the_optimistic_rule(book_run, grid):
    opt = replay(grid, example_bundle("TEST"), QC,
                 ReplayConfig(fee_bps=1.0, block_s=60.0, queue_model="factor", queue_factor=1.0))
    at_b, at_o = book_run.fills["at_price"] == 1.0, opt.fills["at_price"] == 1.0
    assert at_o.sum() > 20 and at_b.sum() > 0  # both fill at our price, the book model less
    assert at_b.sum() < at_o.sum() and book_run.fills["size"][at_b].sum() < opt.fills["size"][at_o].sum()
    none = replay(grid, example_bundle("TEST"), QC, ReplayConfig(fee_bps=1.0, block_s=60.0, queue_model="none"))
    assert not np.any(none.fills["at_price"] == 1.0)


# --------------------------------------------------------------------------- real data

@pytest.fixture(scope="module")
def aapl(shared_data):
    from models.data.loaders import load, replay_data

    m = load("lobster", shared_data / "lobster" / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip", with_books=True)
    d = replay_data(m)
    return d.window(d.start + 7200.0, d.start + 7200.0 + 600.0)


def test_d_lobster_book_model_fills_at_most_the_optimistic_at_price_rule(aapl):
    """10 minutes of AAPL (level-1 book), learned configuration: the queue leaves fewer
    at-price fills (count and volume) than the optimistic rule, and the book's level 0
    is the quotes' BBO."""
    assert aapl.has_book and aapl.tick == 0.01 and aapl.book_bid_px.shape[1] == 1
    i = np.searchsorted(aapl.book_ts, aapl.quote_ts)
    same = i < aapl.book_ts.size
    np.testing.assert_allclose(aapl.book_bid_px[i[same], 0], aapl.bid[same])  # level 0 = the BBO
    bundle, qc = config_for("learned", example_bundle("AAPL"))
    runs = {m: replay(aapl, bundle, qc, ReplayConfig(fee_bps=-0.4, tick_size=0.01, block_s=60.0,
                                                     **({"queue_model": "factor", "queue_factor": 1.0}
                                                        if m == "optimistic" else {"queue_model": m})))
            for m in ("optimistic", "book", "none")}
    at = {m: r.fills["size"][r.fills["at_price"] == 1.0].sum() for m, r in runs.items()}
    n_at = {m: int(np.sum(r.fills["at_price"] == 1.0)) for m, r in runs.items()}
    assert n_at["optimistic"] >= 4 and at["none"] == 0.0
    assert n_at["book"] < n_at["optimistic"] and at["book"] < at["optimistic"]
    # (total fills are not compared: the replay is closed-loop, and fewer fills at our
    # price change the inventory skew and so which later prints trade through us)
    for r in runs.values():
        assert math.isfinite(r.summary["pnl"])


def test_d_one_accounting_on_real_data(aapl):
    """AAPL, 10 minutes, book model: headline PnL = last point of the equity curve =
    sum of the 60 s block PnLs, and no fill at or after the end of the replay."""
    from mm_runtime.paper.replay import block_pnl

    bundle, qc = config_for("learned", example_bundle("AAPL"))
    r = replay(aapl, bundle, qc, ReplayConfig(fee_bps=-0.4, tick_size=0.01, block_s=60.0))
    assert r.fills["ts"].size > 0
    assert r.summary["pnl"] == r.equity[-1]
    assert float(np.sum(block_pnl(r, 60.0))) == pytest.approx(r.summary["pnl"], rel=1e-12, abs=1e-12)
    assert r.summary["final_position"] == r.position[-1]
    assert r.fills["ts"].max() < r.t[-1] and r.t[-1] <= aapl.end
    f = r.fills
    edge = np.sum(f["side"] * f["size"] * (r.mid[-1] - f["price"]))
    assert r.summary["pnl"] == pytest.approx(edge - np.sum(f["fee"]), rel=1e-9, abs=1e-9)
