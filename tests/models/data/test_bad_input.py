"""Bad input: every loader answers with a DataError naming the file, the row/column
and the problem (and returns nothing), for each kind of bad input; plus the
``validate_*`` functions of tables.py on their own. All files are built here, small."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.data.binance import load_binance
from models.data.hyperliquid import load_hyperliquid
from models.data.loaders import detect_source, load
from models.data.lobster import load_lobster
from models.data.tables import DataError, validate_books, validate_quotes, validate_trades


def _raises(fn, *parts: str) -> DataError:
    """Call fn, expect a DataError whose message contains every part."""
    with pytest.raises(DataError) as ei:
        fn()
    msg = str(ei.value)
    for p in parts:
        assert p in msg, f"{p!r} not in {msg!r}"
    return ei.value


# =========================================================================== LOBSTER

LOB_NAME = "TEST_2012-06-21_34200000_57600000_{}_1.csv"
LOB_MSG = [
    "34200.000000001,1,1,100,1000000,1",
    "34200.5,1,2,100,1010000,-1",
    "34201.25,4,2,40,1010000,-1",
    "34202.0,4,1,10,1000000,1",
]
LOB_OB = [
    "9999999999,0,1000000,100",
    "1010000,100,1000000,100",
    "1010000,60,1000000,100",
    "1010000,60,1000000,90",
]


def write_lobster(d: Path, msg=None, ob=None) -> Path:
    m = d / LOB_NAME.format("message")
    m.write_text("\n".join(LOB_MSG if msg is None else msg) + "\n")
    (d / LOB_NAME.format("orderbook")).write_text("\n".join(LOB_OB if ob is None else ob) + "\n")
    return m


def test_lobster_good_small_file(tmp_path):
    m = load_lobster(write_lobster(tmp_path))
    assert m.asset == "TEST"
    assert m.trades["side"].tolist() == [1, -1]           # sell limit hit -> buy; buy limit hit -> sell
    assert m.trades["price"].tolist() == [101.0, 100.0]
    base = int(pd.Timestamp("2012-06-21 04:00", tz="UTC").value)
    assert m.trades["ts"].tolist() == [base + 34201_250000000, base + 34202_000000000]
    assert m.meta["dropped"]["quotes_one_side_empty"] == 1  # row 0 has no ask
    assert len(m.quotes) == 3
    # the orderbook csv finds its message file too
    m2 = load_lobster(tmp_path / LOB_NAME.format("orderbook"))
    assert m2.trades.equals(m.trades)


def test_lobster_missing_column(tmp_path):
    p = write_lobster(tmp_path, msg=[r.rsplit(",", 1)[0] for r in LOB_MSG])
    _raises(lambda: load_lobster(p), str(p), "6 columns")


def test_lobster_unparseable_number(tmp_path):
    msg = list(LOB_MSG)
    msg[2] = "34201.25,4,2,40,1O10000,-1"
    p = write_lobster(tmp_path, msg=msg)
    _raises(lambda: load_lobster(p), str(p), "line 3", "'price'", "1O10000")


def test_lobster_unparseable_time(tmp_path):
    msg = list(LOB_MSG)
    msg[1] = "34200.5s,1,2,100,1010000,-1"
    p = write_lobster(tmp_path, msg=msg)
    _raises(lambda: load_lobster(p), "line 2", "'time'")


def test_lobster_nan_and_inf_prices(tmp_path):
    msg = list(LOB_MSG)
    msg[2] = "34201.25,4,2,40,nan,-1"
    p = write_lobster(tmp_path, msg=msg)
    _raises(lambda: load_lobster(p), "line 3", "'price'", "nan")
    ob = list(LOB_OB)
    ob[2] = "inf,60,1000000,100"
    p = write_lobster(tmp_path, ob=ob)
    _raises(lambda: load_lobster(p), "orderbook", "line 3")


def test_lobster_zero_size(tmp_path):
    msg = list(LOB_MSG)
    msg[3] = "34202.0,4,1,0,1000000,1"
    p = write_lobster(tmp_path, msg=msg)
    _raises(lambda: load_lobster(p), str(p), "line 4", "'size'", "> 0")


def test_lobster_negative_book_size(tmp_path):
    ob = list(LOB_OB)
    ob[2] = "1010000,-60,1000000,100"
    p = write_lobster(tmp_path, ob=ob)
    _raises(lambda: load_lobster(p), "orderbook", "line 3", "ask_size", "> 0")


def test_lobster_crossed_quote(tmp_path):
    ob = list(LOB_OB)
    ob[3] = "1000000,60,1000000,90"
    p = write_lobster(tmp_path, ob=ob)
    _raises(lambda: load_lobster(p), "orderbook", "line 4", "crossed or locked")


def test_lobster_out_of_order(tmp_path):
    msg = list(LOB_MSG)
    msg[3] = "34201.0,4,1,10,1000000,1"
    p = write_lobster(tmp_path, msg=msg)
    _raises(lambda: load_lobster(p), str(p), "line 4", "out of order")


def test_lobster_empty_file(tmp_path):
    p = write_lobster(tmp_path, msg=[""], ob=[""])
    _raises(lambda: load_lobster(p), str(p), "empty")


def test_lobster_orderbook_row_mismatch(tmp_path):
    p = write_lobster(tmp_path, ob=LOB_OB[:3])
    _raises(lambda: load_lobster(p), "orderbook", "3 rows", "4")


def test_lobster_truncated_zip(tmp_path):
    import zipfile
    z = tmp_path / "LOBSTER_SampleFile_TEST_2012-06-21_1.zip"
    msg = [f"{34200 + k}.5,4,{k},10,1010000,-1" for k in range(2000)]
    ob = ["1010000,100,1000000,100"] * 2000
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(LOB_NAME.format("message"), "\n".join(msg))
        zf.writestr(LOB_NAME.format("orderbook"), "\n".join(ob))
    assert len(load_lobster(z).trades) == 2000
    data = z.read_bytes()
    z.write_bytes(data[: len(data) // 2])
    _raises(lambda: load_lobster(z), str(z))


def test_lobster_given_another_sources_file(tmp_path):
    p = write_binance(tmp_path)
    _raises(lambda: load_lobster(p), str(p), "looks like a binance websocket capture, not lobster")


def test_lobster_missing_path(tmp_path):
    _raises(lambda: load_lobster(tmp_path / "nope.zip"), "nope.zip", "no such file")


def test_lobster_missing_orderbook(tmp_path):
    p = write_lobster(tmp_path)
    (tmp_path / LOB_NAME.format("orderbook")).unlink()
    _raises(lambda: load_lobster(p), "orderbook file")


def test_lobster_date_from_name_or_argument(tmp_path):
    m = tmp_path / "X_message_1.csv"
    m.write_text("\n".join(LOB_MSG) + "\n")
    (tmp_path / "X_orderbook_1.csv").write_text("\n".join(LOB_OB) + "\n")
    _raises(lambda: load_lobster(m), "trading date", "date=")
    assert len(load_lobster(m, date="2012-06-21").trades) == 2


def test_lobster_halts_reported(tmp_path):
    msg = LOB_MSG[:2] + ["34200.7,7,0,0,-1,-1", "34200.8,7,0,0,0,-1", "34200.9,7,0,0,1,-1"] + LOB_MSG[2:]
    ob = LOB_OB[:2] + [LOB_OB[1]] * 3 + LOB_OB[2:]
    m = load_lobster(write_lobster(tmp_path, msg=msg, ob=ob))
    assert [h["event"] for h in m.meta["halts"]] == ["halt", "quoting", "resume"]
    assert len(m.trades) == 2 and len(m.quotes) == 3


def test_lobster_hidden_executions_optional(tmp_path):
    msg = LOB_MSG + ["34203.0,5,0,7,1005000,-1"]
    ob = LOB_OB + [LOB_OB[-1]]
    p = write_lobster(tmp_path, msg=msg, ob=ob)
    assert len(load_lobster(p).trades) == 2
    h = load_lobster(p, hidden=True).trades
    assert len(h) == 3 and h["side"].iloc[-1] == 1


# =========================================================================== Binance

T0 = 1_723_161_256_000  # ms
LAG_NS = 1_270_000_000


def _bt(u, b, a, t=None, bq="1.0", aq="2.0"):
    d = {"u": u, "s": "BTCUSDT", "b": b, "B": bq, "a": a, "A": aq}
    if t is not None:
        d.update(T=t, E=t)
    return {"stream": "btcusdt@bookTicker", "data": d}


def _tr(tid, t, p, q, m):
    return {"stream": "btcusdt@trade", "data": {"e": "trade", "E": t, "T": t, "s": "BTCUSDT",
                                                 "t": tid, "p": p, "q": q, "m": m}}


def binance_msgs(with_time=True):
    tt = (lambda t: t) if with_time else (lambda t: None)
    return [
        (T0, _bt(1, "100.0", "100.5", tt(T0))),
        (T0 + 1, _tr(10, T0 + 1, "100.5", "0.1", False)),
        (T0 + 2, _tr(11, T0 + 2, "100.0", "0.2", True)),
        (T0 + 3, _bt(2, "100.0", "100.6", tt(T0 + 3))),
        (T0 + 5, _tr(12, T0 + 5, "100.6", "0.3", False)),
        (T0 + 6, _bt(3, "100.1", "100.6", tt(T0 + 6))),
    ]


def write_binance(d: Path, msgs=None, name="usdm_btcusdt_20240808.gz", raw_lines=None) -> Path:
    msgs = binance_msgs() if msgs is None else msgs
    lines = raw_lines if raw_lines is not None else \
        [f"{t * 10**6 - LAG_NS} {json.dumps(x, separators=(',', ':'))}" for t, x in msgs]
    p = d / name
    p.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return p


def test_binance_good_small_file(tmp_path):
    m = load_binance(write_binance(tmp_path))
    assert m.asset == "BTCUSDT"
    assert m.trades["side"].tolist() == [1, -1, 1]       # m=true -> seller aggressor
    assert m.trades["ts"].tolist() == [(T0 + k) * 10**6 for k in (1, 2, 5)]
    assert m.quotes["ts"].tolist() == [(T0 + k) * 10**6 for k in (0, 3, 6)]


def test_binance_spot_clock_fallback_small(tmp_path):
    """Without T/E in bookTicker, quotes get local + median(trade T - local) (too few
    trades here to fit the touch-alignment shift)."""
    msgs = binance_msgs(with_time=False)
    m = load_binance(write_binance(tmp_path, msgs, name="spot_btcusdt_20240808.gz"))
    assert m.meta["clock"]["offset_ms"] == pytest.approx(LAG_NS / 1e6)
    assert m.meta["clock"]["shift_ms"] == 0
    assert m.quotes["ts"].tolist() == [(T0 + k) * 10**6 for k in (0, 3, 6)]


def test_binance_missing_field(tmp_path):
    msgs = binance_msgs()
    del msgs[2][1]["data"]["p"]
    p = write_binance(tmp_path, msgs)
    _raises(lambda: load_binance(p), str(p), "line 3", "'p'")


def test_binance_unparseable_number(tmp_path):
    msgs = binance_msgs()
    msgs[2][1]["data"]["p"] = "10O.0"
    p = write_binance(tmp_path, msgs)
    _raises(lambda: load_binance(p), str(p), "line 3", "'p'", "10O.0")


def test_binance_nan_and_inf_price(tmp_path):
    msgs = binance_msgs()
    msgs[2][1]["data"]["p"] = "NaN"
    p = write_binance(tmp_path, msgs)
    _raises(lambda: load_binance(p), str(p), "line 3", "'price'", "non-finite")
    msgs = binance_msgs()
    msgs[3][1]["data"]["a"] = "inf"
    p = write_binance(tmp_path, msgs)
    _raises(lambda: load_binance(p), str(p), "line 4", "'ask'", "non-finite")


def test_binance_zero_size(tmp_path):
    msgs = binance_msgs()
    msgs[1][1]["data"]["q"] = "0.000"
    p = write_binance(tmp_path, msgs)
    _raises(lambda: load_binance(p), str(p), "line 2", "'size'", "> 0")


def test_binance_crossed_quote(tmp_path):
    msgs = binance_msgs()
    msgs[3][1]["data"]["b"] = "100.6"
    p = write_binance(tmp_path, msgs)
    _raises(lambda: load_binance(p), str(p), "line 4", "crossed or locked")


def test_binance_out_of_order(tmp_path):
    msgs = binance_msgs()
    msgs[4][1]["data"]["T"] = T0
    p = write_binance(tmp_path, msgs)
    _raises(lambda: load_binance(p), str(p), "line 5", "out of order")


def test_binance_empty_file(tmp_path):
    p = write_binance(tmp_path, raw_lines=[""])
    _raises(lambda: load_binance(p), str(p), "empty")


def test_binance_truncated_gzip(tmp_path):
    msgs = binance_msgs() * 50
    p = write_binance(tmp_path, msgs)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 20])
    _raises(lambda: load_binance(p), str(p), "truncated or corrupt gzip")


def test_binance_invalid_json_line(tmp_path):
    lines = [f"{T0 * 10**6} " + json.dumps(binance_msgs()[0][1]), f"{T0 * 10**6} {{\"stream\": "]
    p = write_binance(tmp_path, raw_lines=lines)
    _raises(lambda: load_binance(p), str(p), "line 2", "invalid JSON")


def test_binance_given_another_sources_file(tmp_path):
    p = write_lobster(tmp_path)
    _raises(lambda: load_binance(p), str(p), "looks like a LOBSTER", "not binance")


def test_binance_missing_path(tmp_path):
    _raises(lambda: load_binance(tmp_path / "x.gz"), "x.gz", "no such file")


def test_binance_duplicate_files_dedupe(tmp_path):
    p = write_binance(tmp_path)
    q = write_binance(tmp_path, name="usdm_btcusdt_20240809.gz")
    m = load_binance([p, q])
    assert len(m.trades) == 3 and m.meta["dropped"]["trades_duplicate_id"] == 3


# =========================================================================== Hyperliquid recorder

E0 = 1_757_015_216_000  # ms
TRADES = [
    "timestamp,price,size,side,trade_id,exchange_timestamp",
    f"1757015216.5,100.5,0.1,buy,1001,{E0 - 500}",   # before the first quote: trimmed
    f"1757015216.6,100.5,0.1,buy,1002,{E0 + 100}",
    f"1757015216.6,100.6,0.2,buy,1003,{E0 + 100}",
    f"1757015216.7,100.0,0.3,sell,1004,{E0 + 300}",
]
PRICES = [
    "timestamp,price,size,side,exchange_timestamp",
    f"1,100.0,1.0,bid,{E0}", f"1,100.5,2.0,ask,{E0}",
    f"1,100.0,1.5,bid,{E0 + 200}", f"1,100.6,2.0,ask,{E0 + 200}",
    f"1,100.1,1.5,bid,{E0 + 400}", f"1,100.6,2.5,ask,{E0 + 400}",
]
OBOOK = [
    "timestamp,sequence,exchange_timestamp,bid_price_0,bid_size_0,ask_price_0,ask_size_0,"
    "bid_price_1,bid_size_1,ask_price_1,ask_size_1",
    f"1,{E0},{E0},100.0,1.0,100.5,2.0,99.9,1.0,100.7,1.0",
    f"1,{E0 + 400},{E0 + 400},100.1,1.5,100.6,2.5,99.9,1.0,100.7,1.0",
]


def write_rec(d: Path, trades=None, prices=None, obook=None, coin="TST", gz=False) -> Path:
    for kind, rows, default in (("trades", trades, TRADES), ("prices", prices, PRICES),
                                ("orderbooks", obook, OBOOK)):
        text = "\n".join(default if rows is None else rows) + "\n"
        if gz:
            (d / f"{kind}_{coin}.csv.gz").write_bytes(gzip.compress(text.encode()))
        else:
            (d / f"{kind}_{coin}.csv").write_text(text)
    return d


def test_hl_recorder_good_small(tmp_path):
    m = load_hyperliquid(write_rec(tmp_path), with_books=True)
    assert m.asset == "TST"
    assert m.trades["trade_id"].tolist() == [1002, 1003, 1004]
    assert m.trades["side"].tolist() == [1, 1, -1]
    assert m.meta["dropped"]["trades_before_first_quote"] == 1
    assert len(m.quotes) == 3 and len(m.books) == 8
    assert len(load_hyperliquid(tmp_path, trim_to_quotes=False).trades) == 4


def test_hl_missing_column(tmp_path):
    d = write_rec(tmp_path, trades=[",".join(r.split(",")[:3] + r.split(",")[4:]) for r in TRADES])
    _raises(lambda: load_hyperliquid(d), "trades_TST.csv", "'side'", "missing")


def test_hl_unparseable_number(tmp_path):
    t = list(TRADES)
    t[3] = t[3].replace("100.6", "1OO.6")
    d = write_rec(tmp_path, trades=t)
    _raises(lambda: load_hyperliquid(d), "trades_TST.csv", "line 4", "'price'", "1OO.6")


def test_hl_nan_inf_price(tmp_path):
    t = list(TRADES)
    t[3] = t[3].replace("100.6", "inf")
    d = write_rec(tmp_path, trades=t)
    _raises(lambda: load_hyperliquid(d), "trades_TST.csv", "line 4", "'price'", "non-finite")
    p = list(PRICES)
    p[3] = p[3].replace("100.0", "nan")
    d = write_rec(tmp_path, trades=TRADES, prices=p)
    _raises(lambda: load_hyperliquid(d), "prices_TST.csv", "line 4", "'price'", "non-finite")


def test_hl_zero_negative_size(tmp_path):
    t = list(TRADES)
    t[4] = t[4].replace(",0.3,", ",-0.3,")
    d = write_rec(tmp_path, trades=t)
    _raises(lambda: load_hyperliquid(d), "trades_TST.csv", "line 5", "'size'", "> 0")
    p = list(PRICES)
    p[2] = p[2].replace(",2.0,", ",0,")
    d = write_rec(tmp_path, trades=TRADES, prices=p)
    _raises(lambda: load_hyperliquid(d), "prices_TST.csv", "line 3", "'size'", "> 0")


def test_hl_bad_side(tmp_path):
    t = list(TRADES)
    t[2] = t[2].replace(",buy,", ",hold,")
    d = write_rec(tmp_path, trades=t)
    _raises(lambda: load_hyperliquid(d), "line 3", "'side'", "hold")


def test_hl_crossed_at_one_timestamp_is_bad(tmp_path):
    p = list(PRICES)
    p[3] = f"1,100.7,1.5,bid,{E0 + 200}"
    d = write_rec(tmp_path, prices=p)
    _raises(lambda: load_hyperliquid(d), "prices_TST.csv", "line 5", "crossed or locked")


def test_hl_transient_cross_from_combining_sides_is_dropped(tmp_path):
    # the bid moves up at E0+200 alone; the ask (carried from E0) is now below it;
    # the ask catches up at E0+250: the E0+200 BBO is a combining artefact
    p = PRICES[:3] + [f"1,100.55,1.5,bid,{E0 + 200}", f"1,100.8,2.0,ask,{E0 + 250}"]
    d = write_rec(tmp_path, prices=p)
    m = load_hyperliquid(d)
    assert m.meta["dropped"]["quotes_transient_crossed"] == 1
    assert (m.quotes["bid"] < m.quotes["ask"]).all()
    assert m.quotes["ts"].tolist() == [(E0) * 10**6, (E0 + 250) * 10**6]


def test_hl_crossed_orderbook_snapshot_is_bad(tmp_path):
    ob = list(OBOOK)
    ob[2] = f"1,{E0 + 400},{E0 + 400},100.7,1.5,100.6,2.5,99.9,1.0,100.7,1.0"
    d = write_rec(tmp_path, obook=ob)
    _raises(lambda: load_hyperliquid(d, with_books=True), "orderbooks_TST.csv", "line 3", "crossed")


def test_hl_out_of_order(tmp_path):
    # prices must run forward
    p = PRICES[:3] + [f"1,100.1,1.5,bid,{E0 + 400}", f"1,100.6,2.5,ask,{E0 + 400}",
                      f"1,100.0,1.5,bid,{E0 + 200}", f"1,100.6,2.0,ask,{E0 + 200}"]
    d = write_rec(tmp_path, prices=p)
    _raises(lambda: load_hyperliquid(d), "prices_TST.csv", "line 6", "out of order")
    # trades: a step back beyond the replay tolerance is an error ...
    t = TRADES + [f"1,100.0,0.3,sell,1005,{E0 - 120_000}"]
    d = write_rec(tmp_path, trades=t, prices=PRICES)
    _raises(lambda: load_hyperliquid(d), "trades_TST.csv", "line 6", "out of order", "60 s")
    # ... a small one (reconnect replay) is sorted, stably, and counted
    t = TRADES + [f"1,100.0,0.3,sell,1005,{E0 + 150}", f"1,100.0,0.3,sell,1004,{E0 + 300}"]
    m = load_hyperliquid(write_rec(tmp_path, trades=t))
    assert m.trades["trade_id"].tolist() == [1002, 1003, 1005, 1004]
    assert m.meta["reordered"]["trades"] == 1 and m.meta["dropped"]["trades_duplicate_id"] == 1


def test_hl_empty_file(tmp_path):
    d = write_rec(tmp_path, trades=TRADES[:1])
    _raises(lambda: load_hyperliquid(d), "trades_TST.csv", "no trades")
    (tmp_path / "trades_TST.csv").write_text("")
    _raises(lambda: load_hyperliquid(d), "trades_TST.csv", "empty")


def test_hl_truncated_gzip(tmp_path):
    d = write_rec(tmp_path, trades=TRADES + TRADES[1:] * 100, gz=True)
    f = d / "trades_TST.csv.gz"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    _raises(lambda: load_hyperliquid(d), "trades_TST.csv.gz", "truncated or corrupt gzip")


def test_hl_given_another_sources_file(tmp_path):
    p = write_binance(tmp_path)
    _raises(lambda: load_hyperliquid(p), str(p), "looks like a binance", "not hyperliquid")


def test_hl_missing_path(tmp_path):
    _raises(lambda: load_hyperliquid(tmp_path / "none"), "none", "no such file")


def test_hl_parquet_chunk_dir(tmp_path):
    root = tmp_path / "recorder_2025-01-01_TST"
    for kind, rows in (("trades", TRADES), ("prices", PRICES), ("orderbooks", OBOOK)):
        (root / kind).mkdir(parents=True)
        df = pd.read_csv(pd.io.common.StringIO("\n".join(rows)))
        if kind == "trades":
            df["trade_id"] = df["trade_id"].astype(str)
            df.iloc[:2].to_parquet(root / kind / f"{kind}_1.parquet")
            df.iloc[2:].to_parquet(root / kind / f"{kind}_2.parquet")
        else:
            df.to_parquet(root / kind / f"{kind}_1.parquet")
    m = load_hyperliquid(root)
    assert m.asset == "TST" and m.trades["trade_id"].tolist() == [1002, 1003, 1004]
    bad = pd.read_parquet(root / "trades" / "trades_2.parquet").drop(columns=["side"])
    bad.to_parquet(root / "trades" / "trades_2.parquet")
    _raises(lambda: load_hyperliquid(root), "trades_2.parquet", "'side'", "missing")


def _chunk_dir(root: Path, coin_column: str | None = None) -> Path:
    for kind, rows in (("trades", TRADES), ("prices", PRICES)):
        (root / kind).mkdir(parents=True)
        df = pd.read_csv(pd.io.common.StringIO("\n".join(rows)))
        if kind == "trades":
            df["trade_id"] = df["trade_id"].astype(str)
        if coin_column is not None:
            df["coin"] = coin_column
        df.to_parquet(root / kind / f"{kind}_1.parquet")
    return root


def test_hl_parquet_coin_is_never_relabelled(tmp_path):
    """The chunks carry no coin: the folder's _COIN suffix is the coin, and an asset
    naming another is refused (it used to relabel the data); a name without a coin
    suffix (a date's digits are none) needs asset=; a coin column must agree."""
    named = _chunk_dir(tmp_path / "recorder_2025-01-01_TST")
    assert load_hyperliquid(named).asset == "TST" and load_hyperliquid(named, "tst").asset == "TST"
    _raises(lambda: load_hyperliquid(named, "BTC"), str(named), "says the data are TST, not 'BTC'")
    _raises(lambda: load("auto", named, "BTC"), str(named), "not 'BTC'")
    dated = _chunk_dir(tmp_path / "recorder_2025-01-01")
    _raises(lambda: load_hyperliquid(dated), str(dated), "cannot tell the coin", "asset=")
    assert load_hyperliquid(dated, "btc").asset == "BTC"
    labelled = _chunk_dir(tmp_path / "rec_2025-01-01", coin_column="ETH")
    assert load_hyperliquid(labelled, "ETH").asset == "ETH"
    _raises(lambda: load_hyperliquid(labelled, "BTC"), "trades_1.parquet", "column 'coin'",
            "the data are 'ETH', not 'BTC'")


def test_hl_recorder_csv_coin_column_must_agree(tmp_path):
    d = write_rec(tmp_path, trades=[TRADES[0] + ",coin"] + [r + ",TST" for r in TRADES[1:3]]
                  + [TRADES[3] + ",ETH"])
    _raises(lambda: load_hyperliquid(d), "trades_TST.csv: line 4, column 'coin'", "the data are 'ETH', not 'TST'")


# =========================================================================== Hyperliquid websocket

def _book(t, bid="100.0", ask="100.5"):
    return {"channel": "l2Book", "data": {"coin": "BTC", "time": t, "levels": [
        [{"px": bid, "sz": "1.0", "n": 1}, {"px": "99.0", "sz": "2.0", "n": 1}],
        [{"px": ask, "sz": "1.0", "n": 1}, {"px": "101.0", "sz": "2.0", "n": 1}]]}}


def _fills(*rows):
    return {"channel": "trades", "data": [
        {"coin": "BTC", "px": px, "sz": sz, "side": s, "tid": tid, "time": t, "hash": "0x0"}
        for px, sz, s, tid, t in rows]}


def write_ws(d: Path, msgs=None) -> Path:
    msgs = msgs if msgs is not None else [
        _book(E0),
        _fills(("100.5", "0.1", "B", 1, E0 + 10), ("100.0", "0.2", "A", 2, E0 + 20)),
        _fills(("100.0", "0.2", "A", 2, E0 + 20)),        # repeated fill
        _book(E0 + 30, "100.1", "100.5"),
    ]
    lines = [f"{(E0 + k) * 10**6} {json.dumps(m)}" for k, m in enumerate(msgs)]
    p = d / "btc_ws.gz"
    p.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return p


def test_hl_ws_good_small(tmp_path):
    m = load_hyperliquid(write_ws(tmp_path), with_books=True)
    assert m.trades["side"].tolist() == [1, -1]
    assert m.meta["dropped"]["trades_duplicate_id"] == 1
    assert len(m.quotes) == 2 and len(m.books) == 8


def test_hl_ws_crossed_book(tmp_path):
    p = write_ws(tmp_path, [_book(E0), _fills(("100.5", "0.1", "B", 1, E0 + 10)), _book(E0 + 30, "100.5", "100.5")])
    _raises(lambda: load_hyperliquid(p), str(p), "line 3", "crossed or locked")


def test_hl_ws_missing_field(tmp_path):
    f = _fills(("100.5", "0.1", "B", 1, E0 + 10))
    del f["data"][0]["px"]
    p = write_ws(tmp_path, [_book(E0), f])
    _raises(lambda: load_hyperliquid(p), str(p), "line 2", "'px'")


def test_hl_ws_bad_number_and_size(tmp_path):
    p = write_ws(tmp_path, [_book(E0), _fills(("1OO", "0.1", "B", 1, E0 + 10))])
    _raises(lambda: load_hyperliquid(p), str(p), "line 2", "field 'px'", "1OO")
    p = write_ws(tmp_path, [_book(E0), _fills(("100.5", "0", "B", 1, E0 + 10))])
    _raises(lambda: load_hyperliquid(p), str(p), "line 2", "'size'", "> 0")


def test_hl_ws_out_of_order_book(tmp_path):
    p = write_ws(tmp_path, [_book(E0 + 50), _fills(("100.5", "0.1", "B", 1, E0 + 60)), _book(E0)])
    _raises(lambda: load_hyperliquid(p), str(p), "line 3", "out of order")


def test_hl_ws_truncated(tmp_path):
    p = write_ws(tmp_path, [_book(E0 + k) for k in range(200)])
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 30])
    _raises(lambda: load_hyperliquid(p), str(p), "truncated or corrupt gzip")


# =========================================================================== dispatch

def test_load_dispatch_and_errors(tmp_path, monkeypatch):
    p = write_lobster(tmp_path)
    assert len(load("lobster", p).trades) == 2
    assert len(load("auto", p).trades) == 2
    with pytest.raises(ValueError, match="unknown data source"):
        load("bloomberg", p)
    _raises(lambda: load("binance", tmp_path / "missing.gz"), "missing.gz", "no such file")
    _raises(lambda: load("hyperliquid", p), "looks like a LOBSTER", "not hyperliquid")
    from models.data import loaders
    monkeypatch.setattr(loaders, "load_synthetic", lambda path: ("synthetic", Path(path).name))
    assert load("synthetic", tmp_path / "syn") == ("synthetic", "syn")


def test_detect_source_small_files(tmp_path):
    assert detect_source(write_lobster(tmp_path)) == "lobster"
    assert detect_source(tmp_path / LOB_NAME.format("orderbook")) == "lobster"
    assert detect_source(write_binance(tmp_path)) == "binance"
    assert detect_source(write_ws(tmp_path)) == "hyperliquid"
    d = tmp_path / "rec"
    d.mkdir()
    assert detect_source(write_rec(d)) == "hyperliquid"
    (tmp_path / "junk.txt").write_text("hello\n")
    assert detect_source(tmp_path / "junk.txt") is None
    syn = tmp_path / "syn"
    syn.mkdir()
    (syn / "truth.json").write_text("{}")
    assert detect_source(syn) == "synthetic"


# =========================================================================== where errors point

def _text_lines(p: Path) -> list[str]:
    raw = p.read_bytes()
    return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode().split("\n")


def _named_line(msg: str) -> int:
    import re
    m = re.search(r": line (\d+), ", msg)
    assert m, msg
    return int(m.group(1))


def _lobster_bad(d: Path, which: str) -> Path:
    msg, ob = list(LOB_MSG), list(LOB_OB)
    if which == "message":
        msg[2] = "34201.25,4,2,40,1O10000,-1"
    else:
        ob[2] = "1O10000,60,1000000,100"
    msg.insert(1, "")                       # a blank line (skipped by the csv reader) before it
    ob.insert(1, "   ")
    write_lobster(d, msg=msg, ob=ob)
    return d / LOB_NAME.format(which)


def _rec_bad(d: Path, gz: bool) -> Path:
    trades = [TRADES[0], ""] + TRADES[1:]   # a blank line after the header
    trades[3] = trades[3].replace("100.5,0.1", "1O0.5,0.1")
    write_rec(d, trades=trades, gz=gz)
    return d / ("trades_TST.csv.gz" if gz else "trades_TST.csv")


def _binance_bad(d: Path) -> Path:
    msgs = binance_msgs()
    msgs[2] = (msgs[2][0], {**msgs[2][1], "data": {**msgs[2][1]["data"], "p": "1O0.0"}})
    return write_binance(d, msgs)


def _ws_bad(d: Path) -> Path:
    return write_ws(d, [_book(E0), _book(E0 + 5), _fills(("1O0.5", "0.1", "B", 1, E0 + 10))])


@pytest.mark.parametrize("make", [
    lambda d: _lobster_bad(d, "message"), lambda d: _lobster_bad(d, "orderbook"),
    lambda d: _rec_bad(d, False), lambda d: _rec_bad(d, True), _binance_bad, _ws_bad,
], ids=["lobster-message", "lobster-orderbook", "recorder-csv", "recorder-csv.gz", "binance", "hl-websocket"])
def test_error_names_the_line_an_editor_shows(tmp_path, make):
    """Every text format: the error names the file and its 1-based line, header and
    blank lines counted (the decompressed text for gzip), and that line holds the bad
    value; never a 0-based row, never both a row and a line."""
    bad = make(tmp_path)
    with pytest.raises(DataError) as ei:
        load("auto", bad)
    msg = str(ei.value)
    assert msg.startswith(str(bad)) and "row" not in msg and "\n" not in msg, msg
    assert "1O" in _text_lines(bad)[_named_line(msg) - 1], msg


def test_parquet_errors_name_the_files_1_based_row(tmp_path):
    root = tmp_path / "recorder_2025-01-01_TST"
    for kind, rows in (("trades", TRADES), ("prices", PRICES)):
        (root / kind).mkdir(parents=True)
        df = pd.read_csv(pd.io.common.StringIO("\n".join(rows)))
        if kind == "trades":
            df["trade_id"] = df["trade_id"].astype(str)
            df.loc[2, "side"] = "hold"
            df.iloc[:2].to_parquet(root / kind / f"{kind}_1.parquet")
            df.iloc[2:].to_parquet(root / kind / f"{kind}_2.parquet")
        else:
            df.to_parquet(root / kind / f"{kind}_1.parquet")
    e = _raises(lambda: load_hyperliquid(root), "trades_2.parquet: row 1, column 'side'", "'hold'")
    assert pd.read_parquet(root / "trades" / "trades_2.parquet")["side"].iloc[0] == "hold", e


# =========================================================================== tables.validate_*

def _trades(**over):
    d = {"ts": [1, 2, 2], "price": [10.0, 10.5, 10.4], "size": [1.0, 2.0, 0.5], "side": [1, -1, -1],
         "trade_id": [7, 8, 9]}
    d.update(over)
    return pd.DataFrame(d)


def _quotes(**over):
    d = {"ts": [1, 2, 3], "bid": [10.0, 10.1, 10.1], "ask": [10.2, 10.3, 10.2],
         "bid_size": [1.0, 1.0, 2.0], "ask_size": [1.0, 3.0, 2.0]}
    d.update(over)
    return pd.DataFrame(d)


def _books(**over):
    d = {"ts": [1, 1, 2], "side": [1, -1, 1], "level": [0, 0, 0], "price": [10.0, 10.2, 10.1],
         "size": [1.0, 1.0, 2.0]}
    d.update(over)
    return pd.DataFrame(d)


def test_validate_good_tables_get_canonical_dtypes():
    t = validate_trades(_trades(side=["1", "-1", "-1"]), "f")
    assert dict(t.dtypes.astype(str)) == {"ts": "int64", "price": "float64", "size": "float64",
                                          "side": "int8", "trade_id": "int64"}
    t = validate_trades(_trades().drop(columns=["trade_id"]), "f")
    assert (t["trade_id"] == -1).all()
    assert validate_quotes(_quotes(), "f")["ts"].dtype == np.int64
    b = validate_books(_books(), "f")
    assert b["side"].dtype == np.int8 and b["level"].dtype == np.int16


@pytest.mark.parametrize("df, parts", [
    (_trades().iloc[:0], ["no trades"]),
    (_trades().drop(columns=["price"]), ["missing column", "'price'"]),
    (_trades(price=[10.0, "x1", 10.4]), ["row 2", "'price'", "x1"]),
    (_trades(price=[10.0, np.nan, 10.4]), ["row 2", "non-finite"]),
    (_trades(price=[10.0, np.inf, 10.4]), ["row 2", "non-finite"]),
    (_trades(size=[1.0, 0.0, 0.5]), ["row 2", "'size'", "> 0"]),
    (_trades(size=[1.0, 2.0, -0.5]), ["row 3", "'size'", "> 0"]),
    (_trades(side=[1, 0, -1]), ["row 2", "'side'", "+1 or -1"]),
    (_trades(ts=[1, 3, 2]), ["row 3", "'ts'", "out of order"]),
])
def test_validate_trades_rejects(df, parts):
    _raises(lambda: validate_trades(df, "trades.csv"), "trades.csv", *parts)


@pytest.mark.parametrize("df, parts", [
    (_quotes().iloc[:0], ["no quotes"]),
    (_quotes().drop(columns=["ask_size"]), ["missing column", "'ask_size'"]),
    (_quotes(bid=[10.0, 10.4, 10.1]), ["row 2", "crossed or locked"]),
    (_quotes(bid=[10.0, 10.3, 10.1]), ["row 2", "crossed or locked"]),     # locked
    (_quotes(ask=[10.2, np.nan, 10.2]), ["row 2", "non-finite"]),
    (_quotes(bid_size=[1.0, 0.0, 2.0]), ["row 2", "> 0"]),
    (_quotes(ts=[1, 3, 2]), ["row 3", "out of order"]),
])
def test_validate_quotes_rejects(df, parts):
    _raises(lambda: validate_quotes(df, "q.csv"), "q.csv", *parts)


@pytest.mark.parametrize("df, parts", [
    (_books().iloc[:0], ["no book"]),
    (_books().drop(columns=["level"]), ["missing column", "'level'"]),
    (_books(size=[1.0, -1.0, 2.0]), ["row 2", "> 0"]),
    (_books(price=[10.0, np.inf, 10.1]), ["row 2", "non-finite"]),
    (_books(ts=[2, 1, 2]), ["row 2", "out of order"]),
])
def test_validate_books_rejects(df, parts):
    _raises(lambda: validate_books(df, "b.csv"), "b.csv", *parts)


def test_validate_names_source_lines():
    from models.data.io import with_rows
    df = with_rows(_trades(size=[1.0, 0.0, 0.5]), [100, 205, 310])
    _raises(lambda: validate_trades(df, "f"), "f: line 205, column 'size'")
    df = with_rows(_trades(size=[1.0, 0.0, 0.5]), [7, 8, 1], "row", ["a.parquet", "a.parquet", "b.parquet"])
    _raises(lambda: validate_trades(df, "dir"), "dir: row 8 of a.parquet, column 'size'")
