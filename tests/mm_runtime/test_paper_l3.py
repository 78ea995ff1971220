"""The paper exchange's ``l3`` queue model (issue #16 item 4): our exact FIFO place
from order-level messages, on hand-built LOBSTER message sequences (cancellations
ahead of us, partial fills, an execution smaller than the queue ahead, orders ahead
with no add message), ``auto`` picking it on LOBSTER data with messages, and the
accounting invariants under it."""

import numpy as np
import pytest

from mm_runtime import QuoterConfig, example_bundle
from mm_runtime.paper.l3 import add_index
from mm_runtime.paper.replay import ReplayConfig, ReplayData, replay

T0 = 1_700_000_000.0
TICK = 0.01
QC = QuoterConfig(tick_size=TICK, learn=False)
ONE_LADDER = dict(refresh_s=29.0, latency_s=0.0, learn_from_trades=False)
BUY = 1  # LOBSTER direction of a resting buy order (our bids' side)


def _data(p0, ahead, msgs):
    """Quotes 99.99/100.01 for 30 s, one 4-level book before T0 showing ``ahead`` at our
    bid p0, and the messages ``(dt, type, order id, size, price, direction)``; every
    execution (type 4) is also a print (the aggressor sold into the bids)."""
    qt = T0 + np.arange(0.0, 30.0, 1.0)
    m = np.array(msgs, float).reshape(-1, 6)
    ex = m[m[:, 1] == 4]
    tr = ex if len(ex) else np.array([[29.5, 4, 0, 1.0, 90.0, BUY]])
    bpx = np.array([[p0 + 2 * TICK, p0 + TICK, p0, p0 - TICK]])
    apx = np.array([[100.01, 100.02, 100.03, 100.04]])
    bsz = np.array([[5.0, 5.0, ahead, 5.0]])
    return ReplayData(
        "TEST", "unit", T0 + tr[:, 0], tr[:, 4], tr[:, 3], -tr[:, 5], qt,
        np.full(qt.size, 99.99), np.full(qt.size, 100.01),
        np.array([T0 - 0.5]), bpx, bsz, apx, np.full((1, 4), 5.0), TICK,
        msg_ts=T0 + m[:, 0], msg_type=m[:, 1].astype(np.int64), msg_id=m[:, 2].astype(np.int64),
        msg_size=m[:, 3], msg_price=m[:, 4], msg_dir=m[:, 5].astype(np.int64)).check()


def _run(data, **kw):
    return replay(data, example_bundle("TEST"), QC, ReplayConfig(**{**ONE_LADDER, **kw}))


def _bid_fills(r):
    f = r.fills
    sel = f["side"] > 0
    return f["ts"][sel] - T0, f["size"][sel], f["at_price"][sel]


@pytest.fixture(scope="module")
def ladder():
    """Our best bid p0 and its size s0 (a print far through every bid fills it)."""
    probe = _run(_data(99.98, 1.0, [(5.0, 4, 1, 1e6, 90.0, BUY)]), queue_model="none")
    p0 = float(probe.our_bid[0])
    f = probe.fills
    s0 = float(f["size"][(f["level"] == 0) & (f["side"] > 0)][0])
    assert s0 > 1.0
    return p0, s0


def test_an_execution_smaller_than_the_queue_ahead_does_not_fill_and_partial_fills_follow(ladder):
    p0, s0 = ladder
    x = 0.4 * s0
    msgs = [(2.0, 4, 1, 4.0, p0, BUY),           # order 1 (resting before the window): 10 -> 6 ahead
            (2.5, 1, 50, 1000.0, p0, BUY),       # order 50 joins behind us
            (3.0, 4, 2, 6.0 + x, p0, BUY),       # 6 ahead consumed, we get exactly x
            (4.0, 4, 50, 100.0, p0, BUY)]        # an order behind us executes: the rest of ours
    r = _run(_data(p0, 10.0, msgs), queue_model="l3")
    ts, size, at = _bid_fills(r)
    assert list(ts) == [3.0, 4.0] and np.all(at == 1.0)
    assert size == pytest.approx([x, s0 - x], rel=1e-12)
    assert r.summary["fill_model"]["queue_model"] == "l3"
    assert r.summary["fill_model"]["l3"]["fills"] == 2


def test_cancellations_ahead_move_us_up_and_those_behind_do_not(ladder):
    p0, s0 = ladder
    # 10 ahead, all resting before the window (no add message): they are ahead of us
    ahead_gone = [(1.0, 3, 7, 6.0, p0, BUY),     # delete 6 of them
                  (1.5, 2, 8, 3.0, p0, BUY),     # partial cancel of another: 1 left ahead
                  (3.0, 4, 8, 2.0, p0, BUY)]     # an execution of 2: 1 ahead, 1 fills us
    ts, size, _ = _bid_fills(_run(_data(p0, 10.0, ahead_gone), queue_model="l3"))
    assert list(ts) == [3.0] and size == pytest.approx([1.0])
    # the same cancellations of orders added after us (behind): the queue ahead stays 10
    behind = [(0.5, 1, 7, 6.0, p0, BUY), (0.6, 1, 8, 3.0, p0, BUY)] + ahead_gone
    assert _run(_data(p0, 10.0, behind), queue_model="l3").fills["ts"].size == 0
    # cancellations at another price or on the other side move nothing
    other = [(1.0, 3, 7, 9.0, p0 - TICK, BUY), (1.5, 3, 8, 9.0, p0, -1), (3.0, 4, 9, 2.0, p0, BUY)]
    assert _run(_data(p0, 10.0, other), queue_model="l3").fills["ts"].size == 0


def test_an_order_ahead_with_no_add_message_counts_and_hidden_executions_do_not(ladder):
    p0, s0 = ladder
    msgs = [(1.0, 5, 0, 50.0, p0, BUY),          # hidden execution at our price: nothing moves
            (2.0, 3, 3, 10.0, p0, BUY),          # order 3 never added in the file: it was ahead
            (3.0, 4, 60, 3.0, p0, BUY)]          # now nothing is ahead: 3 fill us
    ts, size, _ = _bid_fills(_run(_data(p0, 10.0, msgs), queue_model="l3"))
    assert list(ts) == [3.0] and size == pytest.approx([min(3.0, s0)])
    # the book model cannot see the cancellation: the same execution does not fill us
    assert _run(_data(p0, 10.0, msgs), queue_model="book").fills["ts"].size == 0


def test_a_requoted_price_keeps_its_place_and_its_orders_behind(ladder):
    """A 1 s refresh re-sends the unchanged ladder every second: the order at p0 keeps
    the place it took at t0, so order 50 (added at 1.5 s) stays behind it and its
    cancellation moves nothing; re-joining each second would count it ahead."""
    p0, s0 = ladder
    msgs = [(1.5, 1, 50, 1000.0, p0, BUY), (3.0, 3, 50, 1000.0, p0, BUY),
            (5.5, 4, 1, 5.0, p0, BUY),     # 10 -> 5 ahead: no fill
            (6.5, 4, 2, 7.0, p0, BUY)]     # 5 ahead consumed, 2 fill us
    r = replay(_data(p0, 10.0, msgs), example_bundle("TEST"), QC,
               ReplayConfig(queue_model="l3", refresh_s=1.0, latency_s=0.05, learn_from_trades=False))
    ts, size, _ = _bid_fills(r)
    assert list(ts) == [6.5] and size == pytest.approx([2.0])
    assert r.summary["fill_model"]["l3"]["kept"] > 0


def test_prints_through_our_price_fill_as_in_every_queue_model(ladder):
    p0, s0 = ladder
    msgs = [(2.0, 4, 1, 0.3 * s0, p0 - TICK, BUY)]
    runs = {m: _run(_data(p0, 1e9, msgs), queue_model=m) for m in ("l3", "book", "none")}
    base = runs["none"].fills
    assert base["ts"].size >= 1
    for m, r in runs.items():
        for k in ("ts", "price", "size", "level"):
            np.testing.assert_array_equal(r.fills[k], base[k], err_msg=f"{m}: {k}")


def test_auto_and_refusals(ladder):
    p0, s0 = ladder
    d = _data(p0, 10.0, [(2.0, 4, 1, 4.0, p0, BUY)])
    assert _run(d).summary["fill_model"]["queue_model"] == "l3"
    no_msgs = d._replace(**{k: None for k in ("msg_ts", "msg_type", "msg_id", "msg_size", "msg_price", "msg_dir")})
    assert _run(no_msgs).summary["fill_model"]["queue_model"] == "book"
    with pytest.raises(ValueError, match="queue_model: 'l3' needs order-level messages"):
        _run(no_msgs, queue_model="l3")
    with pytest.raises(ValueError, match="msg_dir"):
        d._replace(msg_dir=None).check()
    with pytest.raises(ValueError, match="msg_type"):
        d._replace(msg_type=d.msg_type * 0 + 9).check()
    with pytest.raises(ValueError, match="queue_factor"):
        ReplayConfig(queue_model="l3", queue_factor=0.5)


def test_add_index_against_a_loop_and_shared_with_the_offline_fifo():
    from models.data import queue_fifo

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 30, 500)
    typ = rng.integers(1, 5, 500)
    last, want = {}, []
    for i, (o, t) in enumerate(zip(ids, typ, strict=True)):
        if t == 1:
            last[o] = i
        want.append(last.get(o, -1))
    np.testing.assert_array_equal(add_index(ids, typ), want)
    assert queue_fifo.add_index is add_index


# --------------------------------------------------------------------------- real data

@pytest.fixture(scope="module")
def aapl(shared_data):
    from models.data.loaders import load, replay_data

    m = load("lobster", shared_data / "lobster" / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip",
             with_books=True, with_messages=True)
    d = replay_data(m)
    return d.window(d.start + 7200.0, d.start + 7200.0 + 300.0)


def test_lobster_auto_picks_l3_and_the_accounting_holds(aapl):
    from mm_runtime.paper.compare import config_for

    assert aapl.has_messages and aapl.has_book and aapl.msg_ts.size > 1000
    bundle, qc = config_for("learned", example_bundle("AAPL"))
    runs = {m: replay(aapl, bundle, qc, ReplayConfig(fee_bps=-0.4, tick_size=0.01, block_s=30.0,
                                                     **({"queue_model": m} if m != "auto" else {})))
            for m in ("auto", "none")}
    r = runs["auto"]
    assert r.summary["fill_model"]["queue_model"] == "l3"
    f = r.fills
    assert f["ts"].size > 0 and r.summary["fill_model"]["l3"]["messages_applied"] > 0
    assert r.summary["pnl"] == r.equity[-1]
    edge = np.sum(f["side"] * f["size"] * (r.mid[-1] - f["price"]))
    assert r.summary["pnl"] == pytest.approx(edge - np.sum(f["fee"]), rel=1e-9, abs=1e-9)
    assert r.summary["final_position"] == pytest.approx(np.sum(f["side"] * f["size"]))
    at = f["at_price"] == 1.0
    np.testing.assert_allclose(f["price"][at], f["trade_price"][at], rtol=1e-9)
    assert not np.any(runs["none"].fills["at_price"] == 1.0)
    # the prints at one time and price never fill more than they traded
    for ts, tp in set(zip(f["ts"], f["trade_price"], strict=True)):
        sel = (f["ts"] == ts) & (f["trade_price"] == tp)
        k = (aapl.trade_ts == ts) & (np.abs(aapl.trade_price - tp) <= 1e-9 * tp)
        assert f["size"][sel].sum() <= aapl.trade_size[k].sum() + 1e-9
