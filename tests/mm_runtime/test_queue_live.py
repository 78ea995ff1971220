"""Live queue position (issue 16, item 2): the quoter's queue ahead of its resting orders
from L2 snapshots and prints (mm_runtime.queue_track, the offline estimator's
arithmetic), the step reading it (traced once), the live runner on the recorded
Hyperliquid websocket capture, and the replay's resting lots."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest

import mm_runtime as mr
from mm_runtime.examples import with_example_fills
from mm_runtime.live import HyperliquidParser, LiveConfig, LiveRunner
from mm_runtime.paper.book import with_resting
from mm_runtime.queue import after_depth
from mm_runtime.queue_track import QueueTracker
from mm_runtime.quoter import TRACE_COUNTS, Quoter

CAPTURE = "hyperliquid/ws_2025-01-26/btc_20250126.gz"
BIDS = (np.array([100.0, 99.0, 98.0]), np.array([5.0, 3.0, 4.0]))
ASKS = (np.array([101.0, 102.0, 103.0]), np.array([2.0, 6.0, 1.0]))


def book(t: QueueTracker, bids=BIDS, asks=ASKS):
    t.on_book(bids[0], bids[1], asks[0], asks[1])


def test_the_tracker_moves_the_queue_by_hand():
    t = QueueTracker(levels=4, tick=1.0, power=2.0)
    assert np.all(np.isnan(t.input))  # nothing known yet
    book(t)
    t.on_print(101.0, +1, 1.0)  # the unit: the median print, 1
    assert t.unit == 1.0
    t.place(np.array([[100.0, 0], [102.0, 0]]), np.array([[1.0, 0], [1.0, 0]]), ts=0.0)
    assert t.order(0, 100.0).ahead == 5.0 and t.order(1, 102.0).ahead == 6.0  # the back of the queue
    assert t.order(0, 100.0).level == 0 and t.order(1, 102.0).level == 1
    # a sell of 2 at our bid: 3 ahead, not reached (2 - 5 < 0)
    assert t.on_print(100.0, -1, 2.0) == {100: -3.0}
    assert t.order(0, 100.0).ahead == 3.0
    # the next snapshot shows 2 at 100: 5 - 2 - 2 traded = 1 cancelled, nothing behind us → from ahead
    book(t, (BIDS[0], np.array([2.0, 3.0, 4.0])))
    assert t.order(0, 100.0).ahead == pytest.approx(2.0)
    # the level grows to 6: the new size queues behind us
    book(t, (BIDS[0], np.array([6.0, 3.0, 4.0])))
    assert t.order(0, 100.0).ahead == pytest.approx(2.0)
    # it shrinks to 3 with no print: 3 cancelled, 2 ahead and 4 behind:
    # p = 2²/(2² + 4²) = 0.2 → ahead = 2 - 0.6 + min(4 - 2.4, 0) = 1.4 (the shared rule)
    book(t, (BIDS[0], np.array([3.0, 3.0, 4.0])))
    assert t.order(0, 100.0).ahead == pytest.approx(1.4)
    assert t.order(0, 100.0).ahead == pytest.approx(after_depth(2.0, 6.0, 3.0, 0.0, 2.0))
    # a sell of 3 reaches us by 1.6; a buy through our ask at 102 empties its queue
    assert t.on_print(100.0, -1, 3.0) == {100: pytest.approx(1.6)}
    assert t.order(0, 100.0).ahead == 0.0
    t.on_print(103.0, +1, 0.5)
    assert t.order(1, 102.0).ahead == 0.0
    # re-placing keeps the place at 100; a new order at 99 joins behind the 3 displayed there
    t.place(np.array([[100.0, 99.0], [102.0, 0]]), np.array([[1.0, 1.0], [0.0, 0]]), ts=1.0)
    assert t.order(0, 100.0).ahead == 0.0 and t.order(0, 100.0).placed_ts == 0.0
    assert t.order(0, 99.0).ahead == 3.0 and t.order(0, 99.0).queue0 == pytest.approx(3.0 / t.unit)
    assert t.order(1, 102.0) is None  # not placed again: gone
    # the step's input: our queue where we rest, the displayed size elsewhere, in median prints;
    # 97 is deeper than this full 3-level snapshot shows: unknown
    u = t.unit
    np.testing.assert_allclose(t.input[0], [0.0, 3.0 / u, 4.0 / u, np.nan])
    np.testing.assert_allclose(t.input[1], [2.0 / u, 6.0 / u, 1.0 / u, np.nan])
    # a price better than the best is shown with nothing there
    assert t.displayed(1, 100) == 0.0 and math.isnan(t.displayed(1, 104))


def test_with_resting_puts_the_replays_queue_on_our_levels():
    qa = np.array([[5.0, 3.0, 4.0], [2.0, 6.0, 1.0]])
    px = np.array([[99.0, 100.0, 0.0], [102.0, 0.0, 0.0]])
    sz = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    q = np.array([[1.5, 0.5, math.inf], [math.inf, 9.0, 9.0]])
    with_resting(qa, 100.0, 101.0, 1.0, px, sz, q, unit=0.5)
    np.testing.assert_allclose(qa, [[1.0, 3.0, 4.0], [2.0, np.nan, 1.0]])


def _fills_bundle(asset="BTC", strength=1000.0):
    return with_example_fills(mr.example_bundle(asset), lambda lv, q: 2.0 * math.exp(-0.9 * lv - 0.4 * q),
                              lambda lv, q: 0.0, strength=strength)


def test_the_quoter_reads_its_queue_estimate_and_the_step_is_not_retraced():
    cfg = mr.QuoterConfig(tick_size=1.0, min_depth_bps=0.0, fills_ladder_start="touch", max_kelly_f=10.0)
    q = Quoter(_fills_bundle("SYN"), cfg, replay=True, metrics=False)
    assert q.queue is not None and q.queue_levels == 4
    kw = dict(bid=100.0, ask=101.0, sigma_bps=0.5, margin_available=1e5)
    q.on_event(1.0, **kw)  # compiled (or cached) here
    traces = TRACE_COUNTS["step"]
    q.on_book(*BIDS, *ASKS)
    q.on_print(101.0, +1, 0.5)
    long_ = np.asarray(q.on_event(1.1, **kw).fill_prob)[0, 0]  # 5 ahead at the best bid: 10 prints
    q.place(1.1, np.array([[100.0], [101.0]]), np.array([[1.0], [1.0]]))
    q.on_print(100.0, -1, 4.9)  # 0.1 ahead now
    short = np.asarray(q.on_event(1.2, **kw).fill_prob)[0, 0]
    assert q.queue.unit == pytest.approx(2.7)  # the median of the prints 0.5 and 4.9
    assert q.queue.input[0, 0] == pytest.approx(0.1 / 2.7)
    assert short > long_
    assert TRACE_COUNTS["step"] == traces


def _capture(shared_data):
    p = HyperliquidParser("BTC")
    with gzip.open(shared_data / CAPTURE, "rt") as fh:
        return [ev for line in fh for ev in p.parse(line.rstrip("\n").split(" ", 1)[1])]


def test_the_live_runner_tracks_queues_on_the_hyperliquid_capture(shared_data, tmp_path):
    evs = _capture(shared_data)
    assert sum(e.book is not None for e in evs) == 46 and all(len(e.book[0]) == 20 for e in evs if e.book)
    path = mr.dump_bundle(_fills_bundle(), tmp_path / "BTC.json")
    cfg = mr.QuoterConfig(tick_size=1.0, min_depth_bps=0.0, fills_ladder_start="touch")
    runs = {}
    for queue_fills in (False, True):
        r = LiveRunner(path, cfg, LiveConfig(queue_fills=queue_fills), market_clock=True)
        r.warm_up()
        traces = TRACE_COUNTS["step"]
        moved = 0  # queue updates of orders that stayed on the book
        seen: dict = {}
        for ev in evs:
            r.on_feed_event(ev)
            for row in (0, 1):
                for k, o in r.quoter.queue.orders[row].items():
                    key = (row, k, o.placed_ts)
                    if key in seen and math.isfinite(o.ahead) and o.ahead < seen[key]:
                        moved += 1
                    seen[key] = o.ahead
        assert TRACE_COUNTS["step"] == traces  # the live queue input never retraces the step
        tr = r.quoter.queue
        assert tr.unit > 0 and np.all(np.isfinite(tr.input[:, 0]))
        assert moved > 0  # orders moved up their queue between refreshes
        for row in (0, 1):  # never more ahead of us than the book shows at our price
            for k, o in tr.orders[row].items():
                d = tr.displayed(row, k)
                assert not math.isfinite(d) or o.ahead <= d + 1e-9
        assert r.quoter.fills_learner.e.sum() > 0  # exposure accrued by the resting orders
        runs[queue_fills] = r.n_fills
    assert runs[True] > runs[False]  # prints reaching our place fill us at our price too


def test_the_replay_passes_the_queue_of_its_resting_lots_and_learns_from_their_fills(monkeypatch):
    """A 2-tick book, 3 median prints displayed at our bid's touch: the book queue model
    moves our lot up with each print at our price (3 → 2 → 1 → 0, then a fill), and each
    refresh passes that queue, not the displayed 3, as the touch level's input; the fill
    reaches the quoter's learner."""
    from mm_runtime.paper import replay as rp

    seen = []

    class Recording(Quoter):
        def on_event(self, *a, queue_ahead=None, **k):
            if queue_ahead is not None:
                seen.append((a[0], np.array(queue_ahead)))
            Recording.last = self
            return super().on_event(*a, queue_ahead=queue_ahead, **k)

    monkeypatch.setattr(rp, "Quoter", Recording)
    t0, tick = 1_700_000_000.0, 0.01
    qt = t0 + np.arange(0.0, 8.0, 1.0)
    tt = t0 + np.array([1.5, 2.5, 3.5, 4.5])
    d = rp.ReplayData("SYN", "unit", tt, np.full(4, 99.99), np.ones(4), np.full(4, -1.0),
                      qt, np.full(qt.size, 99.99), np.full(qt.size, 100.01), tick=tick,
                      book_ts=np.array([t0 - 0.5]), book_bid_px=np.array([[99.99, 99.98, 99.97, 99.96]]),
                      book_bid_sz=np.array([[3.0, 1.0, 1.0, 1.0]]),
                      book_ask_px=np.array([[100.01, 100.02, 100.03, 100.04]]),
                      book_ask_sz=np.full((1, 4), 100.0)).check()
    b = with_example_fills(mr.example_bundle("SYN"), lambda lv, q: 2.0 * math.exp(-0.9 * lv - 0.4 * q),
                           lambda lv, q: 0.2 if (lv == 0 and q <= 1) else 4.0 + lv)
    qc = mr.QuoterConfig(tick_size=tick, min_depth_bps=0.0, fills_ladder_start="touch", max_kelly_f=10.0)
    r = rp.replay(d, b, qc, rp.ReplayConfig(refresh_s=1.0, latency_s=0.0, learn_from_trades=False,
                                            queue_model="book"))
    touch = {round(t - t0): q[0, 0] for t, q in seen}
    assert touch[0] == 3.0  # nothing of ours rests yet: the displayed size
    assert [touch[s] for s in (1, 2, 3, 4)] == [3.0, 2.0, 1.0, 0.0]  # our lot's place, moved by the prints
    assert r.fills["size"].sum() == pytest.approx(1.0) and r.fills["at_price"][0] == 1.0
    assert Recording.last.fills_learner.n_fills == 1
