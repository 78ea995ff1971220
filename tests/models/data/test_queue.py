"""Queue orders (models.data.queue): the exact FIFO on hand-built LOBSTER files, the L2
estimator on hand-built snapshots, a real-file smoke test on AAPL_1, bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mm_runtime.observation import ObservationConfig
from mm_runtime.queue import after_depth, after_print, share_ahead
from models.data.lobster import load_lobster
from models.data.queue import queue_orders, queue_summary
from models.data.tables import (DataError, Market, WindowSpec, validate_books, validate_quotes,
                                validate_trades)

T0 = 34200.0  # 09:30:00 in LOBSTER's seconds after midnight
CFG = ObservationConfig(queue_levels=1, markout_horizons_s=(0.5, 1.0))
EMPTY = 9_999_999_999


# --------------------------------------------------------------------------- hand-built LOBSTER

def _lobster_files(tmp_path, msgs, resting, levels=1, name="TEST"):
    """Write a LOBSTER message/orderbook pair: ``msgs`` (time offset s, type, id, size,
    price in cents, direction) applied to a book that starts with ``resting`` orders
    (id -> (direction, price cents, size), never added in the file); the orderbook row
    after each message shows the best ``levels`` price levels per side."""
    orders = {i: list(v) for i, v in resting.items()}
    mlines, olines = [], []
    for dt, typ, oid, size, px, d in msgs:
        if typ == 1:
            orders[oid] = [d, px, size]
        elif typ in (2, 4):
            orders[oid][2] -= size
        elif typ == 3:
            orders[oid][2] -= size
        orders = {k: v for k, v in orders.items() if v[2] > 0}
        row = []
        asks, bids = {}, {}
        for dd, p, s in orders.values():
            book = bids if dd == 1 else asks
            book[p] = book.get(p, 0) + s
        a = sorted(asks.items())[:levels]
        b = sorted(bids.items(), reverse=True)[:levels]
        for k in range(levels):
            ap, asz = a[k] if k < len(a) else (EMPTY, 0)
            bp, bsz = b[k] if k < len(b) else (-EMPTY, 0)
            row += [ap * 100, asz, bp * 100, bsz]
        mlines.append(f"{T0 + dt:.9f},{typ},{oid},{size},{px if typ == 7 else px * 100},{d}")
        olines.append(",".join(str(x) for x in row))
    base = f"{name}_2012-06-21_34200000_57600000_{{}}_{levels}.csv"
    (tmp_path / base.format("message")).write_text("\n".join(mlines) + "\n")
    (tmp_path / base.format("orderbook")).write_text("\n".join(olines) + "\n")
    return tmp_path / base.format("message")


RESTING = {1: (1, 10000, 100), 2: (1, 10000, 200), 9: (-1, 10001, 500), 30: (1, 9999, 200)}
MSGS = [
    (0.0, 1, 10, 100, 10001, -1),   # add an ask (before our first placement: ahead of our ask)
    (0.1, 1, 20, 50, 10000, 1),     # a bid added after our placement: behind us
    (0.2, 3, 1, 100, 10000, 1),     # cancellation of an order ahead (never added in the file)
    (0.3, 4, 2, 150, 10000, 1),     # a print smaller than the queue ahead: 200 -> 50
    (0.4, 4, 2, 50, 10000, 1),      # consumes the queue ahead exactly: not filled yet
    (0.5, 4, 20, 10, 10000, 1),     # an order behind us executes: we are filled at 0.5 s
    (1.2, 4, 9, 100, 10001, -1),    # second interval: ask queue 600 -> 500, not filled
    (1.25, 3, 20, 40, 10000, 1),    # our bid level empties: best bid is now 99.99
    (1.3, 4, 30, 100, 9999, 1),     # a print strictly through our bid at 100.00: through
    (2.5, 1, 40, 10, 10000, 1),     # a better bid: our 99.99 leaves the 1-level file: away
    (2.6, 5, 0, 100, 10001, -1),    # hidden execution at our ask: ignored
    (3.5, 2, 10, 50, 10001, -1),    # partial cancel ahead of our ask; the data end at 3.5 s
]


@pytest.fixture()
def fifo_market(tmp_path):
    path = _lobster_files(tmp_path, MSGS, RESTING)
    return load_lobster(path, with_books=True, with_messages=True)


def test_messages_table_and_hash(tmp_path):
    path = _lobster_files(tmp_path, MSGS, RESTING)
    plain = load_lobster(path, with_books=True)
    m = load_lobster(path, with_books=True, with_messages=True)
    assert plain.messages is None and len(m.messages) == len(MSGS)
    assert list(m.messages.columns) == ["ts", "type", "order_id", "size", "price", "direction"]
    assert m.messages["price"].iloc[0] == pytest.approx(100.01)
    assert m.row_counts()["messages"] == len(MSGS)
    # a market without messages hashes as before the table existed
    assert plain.sha256() == Market(**{**plain.__dict__, "messages": None}).sha256()
    assert plain.sha256() != m.sha256()
    w = WindowSpec.parse("1s:").cut(m)
    assert w.messages["ts"].min() >= m.messages["ts"].iloc[0] + 10**9


def test_fifo_hand_built(fifo_market):
    q = queue_orders(fifo_market, CFG)
    assert q.attrs["queue_source"] == "fifo" and q.attrs["tick"] == pytest.approx(0.01)
    # the 1-level file covers the touch only
    assert set(q["level"]) == {0}
    by = {(round((t - q["ts"].iloc[0]) / 1e9, 3), s): r for t, s, r in
          zip(q["ts"], q["side"], q.to_dict("records"))}
    bid0 = by[(0.0, 1)]
    assert bid0["queue_ahead"] == 300 and bid0["outcome"] == "filled" and bid0["filled"]
    assert bid0["duration_s"] == pytest.approx(0.5)
    ask0 = by[(0.0, -1)]
    assert ask0["queue_ahead"] == 600 and ask0["outcome"] == "repost" and ask0["duration_s"] == pytest.approx(1.0)
    bid1 = by[(1.0, 1)]
    assert bid1["queue_ahead"] == 40 and bid1["outcome"] == "through"
    assert bid1["duration_s"] == pytest.approx(0.3)
    ask1 = by[(1.0, -1)]
    assert ask1["outcome"] == "repost" and not ask1["filled"]
    bid2 = by[(2.0, 1)]
    assert bid2["price"] == pytest.approx(99.99) and bid2["queue_ahead"] == 100
    assert bid2["outcome"] == "away" and bid2["duration_s"] == pytest.approx(0.5)
    ask2 = by[(2.0, -1)]
    assert ask2["queue_ahead"] == 500 and ask2["outcome"] == "repost"  # the hidden print moved nothing
    ask3 = by[(3.0, -1)]
    assert ask3["outcome"] == "end" and ask3["duration_s"] == pytest.approx(0.5)
    # capture and markouts are set for fills only; horizons past the data end are NaN
    assert math.isfinite(bid0["capture_bps"]) and math.isnan(ask0["capture_bps"])
    assert bid0["capture_bps"] == pytest.approx(0.005 / 100.005 * 1e4)
    assert bid0["markout_bps@0.5s"] == pytest.approx(0.0) and math.isfinite(bid0["markout_bps@1s"])
    assert math.isnan(by[(3.0, 1)]["markout_bps@1s"])
    assert q["ts"].is_monotonic_increasing
    assert q.attrs["n_placed"] == {"bid": [len(q[q.side == 1]), 0], "ask": [len(q[q.side == -1]), 0]}


def test_fifo_deeper_levels(tmp_path):
    """A 2-level file: our bid one tick behind the touch is covered; an order there
    without an add message is ahead of us; a partial execution of it does not fill us."""
    resting = {1: (1, 10000, 100), 2: (1, 9999, 300), 9: (-1, 10001, 500)}
    msgs = [(0.0, 1, 10, 100, 10001, -1),
            (0.2, 1, 11, 70, 9999, 1),       # behind us at 99.99
            (0.3, 4, 2, 120, 9999, 1),       # a print smaller than the queue ahead (300)
            (0.4, 3, 2, 180, 9999, 1),       # the rest of the order ahead cancelled
            (0.6, 4, 11, 20, 9999, 1),       # nothing ahead: filled
            (2.0, 2, 10, 10, 10001, -1)]
    m = load_lobster(_lobster_files(tmp_path, msgs, resting, levels=2), with_books=True, with_messages=True)
    q = queue_orders(m, CFG)
    r = q[(q.side == 1) & (q.level == 1)].iloc[0]
    assert r["price"] == pytest.approx(99.99) and r["queue_ahead"] == 300
    assert r["outcome"] == "filled" and r["duration_s"] == pytest.approx(0.6)


def test_fifo_halt(tmp_path):
    """A halt censors the live orders (away) and nothing is placed until trading resumes."""
    msgs = [(0.0, 1, 10, 100, 10001, -1),
            (1.5, 7, 0, 0, -1, -1),          # halt
            (2.1, 7, 0, 0, 0, -1),           # quoting resumes: still halted for trading
            (2.7, 7, 0, 0, 1, -1),           # trading resumes
            (3.2, 4, 2, 50, 10000, 1),
            (4.5, 2, 10, 10, 10001, -1)]
    m = load_lobster(_lobster_files(tmp_path, msgs, RESTING), with_books=True, with_messages=True)
    q = queue_orders(m, CFG)
    off = sorted({round((t - q["ts"].iloc[0]) / 1e9, 3) for t in q["ts"]})
    assert off == [0.0, 1.0, 3.0, 4.0]
    at1 = q[q.ts == q.ts.iloc[0] + 10**9]
    assert (at1["outcome"] == "away").all() and np.allclose(at1["duration_s"], 0.5)


def test_recording_gap_censors_and_skips(tmp_path):
    """Updates every 0.4 s to 2.4 s, silence to 8.3 s, updates to 10.3 s; with a threshold of
    2 s (gap_min_seconds; gap_factor ~0: with a dozen updates their 99th percentile is the
    silence itself) the silence is a recording gap [2.4 s, 8.3 s]. Re-posts every
    10 s: the orders placed at 0 are censored at the gap's start (away, 2.4 s), the grid
    restarts at 8.3 s, none is placed inside the gap; without the gap rule the bid placed
    at 0 is filled across the silence at 9.5 s."""
    msgs = [(0.0, 1, 10, 100, 10001, -1)] + [(0.4 * k, 2, 9, 10, 10001, -1) for k in range(1, 7)] + [
        (8.3, 2, 9, 10, 10001, -1),
        (8.7, 4, 1, 100, 10000, 1),     # the bid ahead of us executes
        (9.1, 1, 20, 50, 10000, 1),     # a bid behind us
        (9.5, 4, 20, 10, 10000, 1),     # executes: fills the bid placed at 8.3 (or at 0)
        (9.9, 2, 9, 10, 10001, -1),
        (10.3, 2, 9, 10, 10001, -1)]
    m = load_lobster(_lobster_files(tmp_path, msgs, RESTING), with_books=True, with_messages=True)
    t0 = int(m.quotes["ts"].iloc[0])
    gap = ObservationConfig(queue_levels=0, markout_horizons_s=(0.5,), repost_interval_s=10.0,
                            gap_factor=1e-9, gap_min_seconds=2.0)
    nogap = gap.model_copy(update={"gap_min_seconds": 100.0})
    plain = queue_orders(m, nogap)
    assert sorted({round((t - t0) / 1e9, 3) for t in plain["ts"]}) == [0.0, 10.0]
    bid0 = plain[(plain.ts == t0) & (plain.side == 1)].iloc[0]
    assert bid0["outcome"] == "filled" and bid0["duration_s"] == pytest.approx(9.5)
    for method in ("l2", "fifo"):
        q = queue_orders(m, gap, method=method)
        off = sorted({round((t - t0) / 1e9, 3) for t in q["ts"]})
        assert off == [0.0, 8.3], method          # nothing placed inside (2.4 s, 8.3 s)
        first = q[q.ts == t0]
        assert len(first) == 2 and (first["outcome"] == "away").all() and not first["filled"].any()
        np.testing.assert_allclose(first["duration_s"], 2.4)   # gap start - placement
    after = q[(q.ts > t0) & (q.side == 1)].iloc[0]   # fifo: the exact queue after the gap
    assert after["filled"] and after["duration_s"] == pytest.approx(1.2)


# --------------------------------------------------------------------------- L2 estimator

def test_queue_arithmetic():
    assert share_ahead(10, 20, 2.0) == pytest.approx(100 / 500)
    assert share_ahead(10, 0, 2.0) == 1.0 and share_ahead(0, 5, 2.0) == 0.0
    # a 10-lot decrease, 10 ahead and 20 behind: 2 from ahead at power 2
    assert after_depth(10, 30, 20, 0, 2.0) == pytest.approx(8.0)
    assert after_depth(10, 30, 20, 0, 1.0) == pytest.approx(10 - 10 / 3)
    # a print of 5 explains part of the decrease (prev 30 -> new 20: 5 unexplained)
    a, filled = after_print(10, 5)
    assert a == 5 and not filled
    p = 25 / (25 + 400)
    assert after_depth(a, 30, 20, 5, 2.0) == pytest.approx(5 - p * 5)
    # an increase queues behind; the decrease larger than behind eats the part ahead
    assert after_depth(10, 30, 50, 0, 2.0) == 10
    assert after_depth(2, 12, 1, 0, 2.0) == pytest.approx(1.0)  # 11 gone, 10 behind: 1 from ahead
    assert after_print(3, 5)[1] and not after_print(3, 3)[1]
    v = after_depth(np.array([10.0, 10.0]), np.array([30.0, 30.0]), np.array([20.0, 50.0]), 0.0, 2.0)
    assert np.allclose(v, [8.0, 10.0])


def _l2_market(snaps, trades, dt=0.1, n=31):
    """Snapshots every ``dt`` s for ``n`` steps; ``snaps(k)`` -> (bids, asks) as lists of
    (price, size); trades (t, price, size, aggressor side)."""
    t0 = 1_700_000_000 * 10**9
    rows, quotes = [], []
    for k in range(n):
        ts = t0 + int(round(k * dt * 1e9))
        bids, asks = snaps(k)
        for side, lv in ((1, bids), (-1, asks)):
            for j, (p, s) in enumerate(lv):
                rows.append((ts, side, j, p, s))
        quotes.append((ts, bids[0][0], asks[0][0], bids[0][1], asks[0][1]))
    books = validate_books(pd.DataFrame(rows, columns=["ts", "side", "level", "price", "size"]))
    q = pd.DataFrame(quotes, columns=["ts", "bid", "ask", "bid_size", "ask_size"])
    q = q[q["bid"] < q["ask"]]
    tr = pd.DataFrame([(t0 + int(round(t * 1e9)), p, s, sd) for t, p, s, sd in trades],
                      columns=["ts", "price", "size", "side"])
    return Market(asset="TEST", source="hyperliquid", trades=validate_trades(tr),
                  quotes=validate_quotes(q.reset_index(drop=True)), books=books, files=("orderbooks_TEST.csv",))


def test_l2_hand_built():
    def snaps(k):
        bid0 = 10.0 if k <= 3 else (6.0 if k <= 5 else 3.0)  # 0.6 s: 6 -> 3, nothing behind: 3 ahead
        return ([(100.0, bid0), (99.0, 10.0), (98.0, 10.0)], [(101.0, 10.0), (102.0, 10.0), (103.0, 10.0)])

    trades = [(0.35, 100.0, 4.0, -1),   # a print smaller than the queue ahead: 10 -> 6
              (0.75, 100.0, 5.0, -1),   # 5 > the 3 left ahead: filled at 0.75 s
              (0.9, 102.0, 1.0, 1),     # through our ask at 101
              (2.95, 101.0, 1.0, 1)]
    m = _l2_market(snaps, trades)
    q = queue_orders(m, CFG)
    assert q.attrs["queue_source"] == "l2" and q.attrs["queue_power"] == 2.0
    first = q[q.ts == q.ts.iloc[0]].set_index(["side", "level"])
    assert first.loc[(1, 0), "queue_ahead"] == 10 and first.loc[(1, 0), "outcome"] == "filled"
    assert first.loc[(1, 0), "duration_s"] == pytest.approx(0.75)
    assert first.loc[(-1, 0), "outcome"] == "through" and first.loc[(-1, 0), "duration_s"] == pytest.approx(0.9)
    # 10 ahead at 102: the 1-lot print there leaves 9 ahead, no fill
    assert first.loc[(-1, 1), "outcome"] == "repost" and first.loc[(-1, 1), "queue_ahead"] == 10
    assert first.loc[(1, 1), "outcome"] == "repost"


def test_l2_power_changes_estimate():
    def snaps(k):
        return ([(100.0, 10.0 if k < 3 else (30.0 if k < 6 else 20.0))], [(101.0, 10.0)])

    trades = [(0.75, 100.0, 6.0, -1), (2.95, 101.0, 1.0, 1)]
    # placed at 0 with 10 ahead; +20 behind at 0.3; -10 at 0.6: power 2 takes 2 from ahead
    # (8 left: the 6-lot print does not fill), power 0.01 takes ~5 (~5 left: it fills)
    m = _l2_market(snaps, trades)
    hi = queue_orders(m, ObservationConfig(queue_levels=0, queue_power=2.0))
    lo = queue_orders(m, ObservationConfig(queue_levels=0, queue_power=0.01))
    bid = lambda q: q[q.side == 1].iloc[0]  # noqa: E731
    assert bid(hi)["outcome"] == "repost" and bid(lo)["outcome"] == "filled"


# --------------------------------------------------------------------------- bad input

def test_no_books():
    m = _l2_market(lambda k: ([(100.0, 10.0)], [(101.0, 10.0)]), [(0.5, 100.0, 1.0, -1)])
    m.books = None
    with pytest.raises(DataError, match="no books: queue orders need an order book"):
        queue_orders(m, CFG)


def test_crossed_book():
    m = _l2_market(lambda k: ([(100.0, 10.0)], [(101.0 if k != 4 else 100.0, 10.0)]), [(0.5, 100.0, 1.0, -1)])
    with pytest.raises(DataError) as e:
        queue_orders(m, CFG)
    assert str(e.value) == ("orderbooks_TEST.csv: book snapshot 5 (ts 2023-11-14T22:13:20.400Z): "
                            "crossed book: bid 100 >= ask 100")


def test_sparse_book():
    m = _l2_market(lambda k: ([(100.0, 10.0)], [(101.0, 10.0)]), [(5.5, 100.0, 1.0, -1)], dt=2.0, n=6)
    with pytest.raises(DataError, match=r"orderbooks_TEST.csv: book snapshot 2 .*too sparse for queue tracking"):
        queue_orders(m, CFG)


def test_message_file_disagrees_with_orderbook(tmp_path):
    path = _lobster_files(tmp_path, MSGS, RESTING)
    ob = path.with_name(path.name.replace("message", "orderbook"))
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(",4,2,150,", ",4,2,300,")  # executes more than the 250 shown
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        load_lobster(path, with_books=True, with_messages=True)
    msg = str(e.value)
    assert msg.startswith(f"{path}: line 4: execution of 300 at 100 (bid) but {ob} line 3 shows 250")
    assert "\n" not in msg
    load_lobster(path)  # without messages nothing checks them
    ob.write_text("\n".join(ob.read_text().splitlines()[:-2]) + "\n")
    with pytest.raises(DataError, match=r"orderbook.*: line 11: orderbook has 10 rows but the message file has 12"):
        load_lobster(path, with_messages=True)


# --------------------------------------------------------------------------- real data

def test_aapl_smoke(shared_data):
    m = load_lobster(shared_data / "lobster", "AAPL_1", with_books=True, with_messages=True)
    m = WindowSpec.parse("3600s:3900s").cut(m)
    cfg = ObservationConfig()
    q = queue_orders(m, cfg)
    assert q.attrs["queue_source"] == "fifo" and set(q["level"]) == {0}  # AAPL_1: the touch only
    assert 550 <= len(q) <= 600 and q["duration_s"].gt(0).all() and q["duration_s"].le(1.0 + 1e-9).all()
    assert set(q["outcome"]) <= {"filled", "through", "repost", "away", "end"}
    f = q[q.filled]
    assert len(f) > 10 and f["capture_bps"].notna().all()
    assert q["queue_ahead"].ge(0).all() and q["imbalance"].between(-1, 1).all()
    l2 = queue_orders(m, cfg, method="l2")
    assert len(l2) == len(q) and (l2["queue_ahead"].to_numpy() == q["queue_ahead"].to_numpy()).all()
    s = queue_summary(q)
    assert s["orders"].sum() == len(q) and s["fill_prob"].between(0, 1).all()


def test_hyperliquid_smoke(shared_data):
    from models.data.loaders import load

    m = load("hyperliquid", shared_data / "hyperliquid" / "recorder_2025-09-04", "BTC", with_books=True)
    m = WindowSpec.parse("600s:780s").cut(m)
    q = queue_orders(m, ObservationConfig())
    assert q.attrs["queue_source"] == "l2" and q.attrs["tick"] == 1.0 and q.attrs["queue_power"] == 2.0
    assert set(q["level"]) == {0, 1, 2, 3} and q["spread_ticks"].ge(1).all()
    assert (q["outcome"] == "filled").sum() > 0 and q["duration_s"].gt(0).all()
    assert q["depth_bps"].ge(0).all()
