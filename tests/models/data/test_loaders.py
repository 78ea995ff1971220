"""Every loader on every real file family in ../shared/data, checked against facts
computed here *independently of the loaders* (csv / zipfile / gzip / json / pyarrow
and plain Python), not through them.

Each dataset is loaded once per module (cached), and its load time is recorded
and checked against the performance budget (well under 20 s).
"""

from __future__ import annotations

import calendar
import csv
import gzip
import io
import json
import time
import zipfile
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from models.data.loaders import detect_source, load
from models.data.tables import Market

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
LOB = SHARED_DATA / "lobster"
BIN = SHARED_DATA / "binance"
HL = SHARED_DATA / "hyperliquid"
REC = HL / "recorder_2025-09-04"
PQ = HL / "recorder_2025-12-10_ETH"
WS = HL / "ws_2025-01-26" / "btc_20250126.gz"

LOBSTER_ZIPS = ["AAPL_2012-06-21_1", "AMZN_2012-06-21_1", "AMZN_2012-06-21_5",
                "GOOG_2012-06-21_1", "GOOG_2012-06-21_10"]
COINS = ["BTC", "ETH", "SOL", "WLFI"]
LOAD_BUDGET_S = 20.0

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.is_dir(),
    reason=f"real market data not found at {SHARED_DATA} (../shared/data beside the repository)")

LOAD_TIMES: dict[str, float] = {}


@lru_cache(maxsize=None)
def _load(source: str, path: str, asset: str | None = None, **kw) -> Market:
    t0 = time.perf_counter()
    m = load(source, path, asset, **kw)
    LOAD_TIMES[f"{source}:{Path(path).name}:{asset}:{kw}"] = time.perf_counter() - t0
    return m


def load_cached(source, path, asset=None, **kw) -> tuple[Market, float]:
    m = _load(source, str(path), asset, **kw)
    key = f"{source}:{Path(str(path)).name}:{asset}:{kw}"
    return m, LOAD_TIMES[key]


def prevailing(quotes, t: int) -> tuple[float, float]:
    """(bid, ask) of the last quote at or before t."""
    ts = quotes["ts"].to_numpy()
    j = int(np.searchsorted(ts, t, side="right")) - 1
    assert j >= 0
    return float(quotes["bid"].iloc[j]), float(quotes["ask"].iloc[j])


# =========================================================================== LOBSTER

# 2012-06-21 midnight in New York = 04:00 UTC (EDT, UTC-4), computed without pandas
LOB_BASE_NS = calendar.timegm((2012, 6, 21, 4, 0, 0)) * 10**9


def _dec_ns(s: str) -> int:
    return LOB_BASE_NS + int((Decimal(s) * 10**9).to_integral_value(ROUND_HALF_EVEN))


@lru_cache(maxsize=None)
def lobster_facts(name: str) -> dict:
    zp = LOB / f"LOBSTER_SampleFile_{name}.zip"
    with zipfile.ZipFile(zp) as z:
        mname = next(n for n in z.namelist() if "_message_" in n)
        oname = next(n for n in z.namelist() if "_orderbook_" in n)
        msgs = list(csv.reader(io.TextIOWrapper(z.open(mname))))
        obs = [r[:4] for r in csv.reader(io.TextIOWrapper(z.open(oname)))]
    execs = [(i, r) for i, r in enumerate(msgs) if r[1] == "4"]
    buys = [r for _, r in execs if r[5] == "-1"]          # sell limit hit = buyer-initiated
    sells = [r for _, r in execs if r[5] == "1"]
    # quotes: last state per time string, drop one-sided, drop repeats
    states = []
    for i, r in enumerate(msgs):
        if i + 1 < len(msgs) and msgs[i + 1][0] == r[0]:
            continue
        a, asz, b, bsz = (int(x) for x in obs[i])
        if a >= 9999999999 or b <= -9999999999:
            continue
        st = (b, a, bsz, asz)
        if not states or states[-1][1] != st:
            states.append((r[0], st))
    last_state_at = {}
    for i, r in enumerate(msgs):
        last_state_at[r[0]] = obs[i]
    return {
        "n_msgs": len(msgs), "n_exec": len(execs), "n_buy": len(buys), "n_sell": len(sells),
        "n_hidden": sum(r[1] == "5" for r in msgs),
        "buy_volume": sum(int(r[3]) for r in buys), "sell_volume": sum(int(r[3]) for r in sells),
        "first_exec": execs[0][1], "last_exec": execs[-1][1], "first_exec_row": execs[0][0],
        "sweeps": len({(r[0], r[5]) for _, r in execs}),
        "n_quotes": len(states), "first_quote": states[0], "last_quote": states[-1],
        "exec_times": [r[0] for _, r in execs[::997]],
        "state_at": {t: last_state_at[t] for t in [r[0] for _, r in execs[::997]]},
        "first_ob_row": obs[0],
    }


@pytest.mark.parametrize("name", LOBSTER_ZIPS)
def test_lobster_zip_matches_independent_facts(name):
    m, dt = load_cached("lobster", LOB / f"LOBSTER_SampleFile_{name}.zip")
    f = lobster_facts(name)
    assert dt < LOAD_BUDGET_S
    assert m.source == "lobster" and m.asset == name.split("_")[0]
    tr = m.trades
    assert len(tr) == f["n_exec"]
    assert int((tr["side"] == 1).sum()) == f["n_buy"]
    assert int((tr["side"] == -1).sum()) == f["n_sell"]
    assert tr.loc[tr["side"] == 1, "size"].sum() == f["buy_volume"]
    assert tr.loc[tr["side"] == -1, "size"].sum() == f["sell_volume"]
    # exact ns timestamps (decimal string parsing, no float rounding)
    assert int(tr["ts"].iloc[0]) == _dec_ns(f["first_exec"][0])
    assert int(tr["ts"].iloc[-1]) == _dec_ns(f["last_exec"][0])
    assert tr["price"].iloc[0] == int(f["first_exec"][4]) / 10_000
    assert int(tr["trade_id"].iloc[0]) == f["first_exec_row"]
    assert len(tr.drop_duplicates(["ts", "side"])) == f["sweeps"]
    # quotes
    q = m.quotes
    assert len(q) == f["n_quotes"]
    t0, (b, a, bs, as_) = f["first_quote"]
    assert int(q["ts"].iloc[0]) == _dec_ns(t0)
    assert (q["bid"].iloc[0], q["ask"].iloc[0]) == (b / 1e4, a / 1e4)
    assert (q["bid_size"].iloc[0], q["ask_size"].iloc[0]) == (bs, as_)
    t1, (b, a, _, _) = f["last_quote"]
    assert (q["bid"].iloc[-1], q["ask"].iloc[-1]) == (b / 1e4, a / 1e4)
    for t in f["exec_times"]:
        a, _, b, _ = (int(x) for x in f["state_at"][t])
        assert prevailing(q, _dec_ns(t)) == (b / 1e4, a / 1e4)
    assert m.meta["hidden_executions"] == f["n_hidden"]
    assert m.meta["dropped"]["quotes_one_side_empty"] == 0
    assert m.meta["halts"] == []
    assert m.books is None


def test_lobster_aapl_visible_executions():
    m, _ = load_cached("lobster", LOB / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip")
    assert len(m.trades) == 23_658
    mh = load("lobster", LOB / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip", hidden=True)
    assert len(mh.trades) == 23_658 + lobster_facts("AAPL_2012-06-21_1")["n_hidden"]
    assert mh.meta["hidden_included"] is True


def test_lobster_depths_agree_on_level1():
    """AMZN level 1 and level 5 come from one message stream: same trades and BBOs."""
    m1, _ = load_cached("lobster", LOB / "LOBSTER_SampleFile_AMZN_2012-06-21_1.zip")
    m5, _ = load_cached("lobster", LOB / "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip")
    cols = ["ts", "price", "size", "side"]          # trade_id is the message row: differs
    assert m1.trades[cols].equals(m5.trades[cols])
    assert m1.quotes.equals(m5.quotes)


def test_lobster_books_level5():
    m, dt = load_cached("lobster", LOB / "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip", with_books=True)
    assert dt < LOAD_BUDGET_S
    bk = m.books
    assert set(bk["level"].unique()) <= set(range(5)) and bk["level"].max() == 4
    assert set(bk["side"].unique()) == {1, -1}
    # the first snapshot equals orderbook row 0, parsed here with csv
    with zipfile.ZipFile(LOB / "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip") as z:
        oname = next(n for n in z.namelist() if "_orderbook_" in n)
        row0 = [int(x) for x in next(csv.reader(io.TextIOWrapper(z.open(oname))))]
    first = bk[bk["ts"] == bk["ts"].iloc[0]]
    asks = first[first["side"] == -1].sort_values("level")
    bids = first[first["side"] == 1].sort_values("level")
    assert list(asks["price"]) == [row0[4 * i] / 1e4 for i in range(5)]
    assert list(asks["size"]) == [row0[4 * i + 1] for i in range(5)]
    assert list(bids["price"]) == [row0[4 * i + 2] / 1e4 for i in range(5)]
    assert list(bids["size"]) == [row0[4 * i + 3] for i in range(5)]
    # level 0 of the books is the quote table's BBO at every snapshot time
    top = bk[bk["level"] == 0]
    b0 = top[top["side"] == 1].drop_duplicates("ts", keep="last").set_index("ts")["price"]
    q = m.quotes.set_index("ts")["bid"]
    common = b0.index.intersection(q.index)
    assert len(common) > 1000 and (b0.loc[common] == q.loc[common]).all()


def test_lobster_time_parsing_keeps_ns():
    import pandas as pd

    from models.data.lobster import parse_time_ns
    s = pd.Series(["34200.18960767", "43002.632812672004", "53142.439", "57599", "34200.0000000015"])
    got = parse_time_ns(s, "x").tolist()
    assert got == [34200_189607670, 43002_632812672, 53142_439000000, 57599_000000000, 34200_000000002]


# =========================================================================== Binance

@lru_cache(maxsize=None)
def binance_facts(*names: str) -> dict:
    tr, bt = [], []
    for n in names:
        with gzip.open(BIN / n, "rt") as fh:
            for line in fh:
                local, js = line.split(" ", 1)
                d = json.loads(js)
                s = d.get("stream", "")
                if s.endswith("@trade"):
                    x = d["data"]
                    tr.append((x["T"], x["t"], float(x["p"]), float(x["q"]), x["m"], int(local)))
                elif s.endswith("@bookTicker"):
                    x = d["data"]
                    bt.append((x.get("T"), float(x["b"]), float(x["a"]), float(x["B"]), float(x["A"]),
                               int(local)))
    return {"trades": tr, "bt": bt}


BINANCE_SETS = {
    "usdm_btc": ("usdm_btcusdt_20240808.gz",),
    "usdm_eth": ("usdm_ethusdt_20240808.gz",),
    "spot": ("spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz"),
}


def _binance(key):
    names = BINANCE_SETS[key]
    if len(names) == 1:
        return load_cached("binance", BIN / names[0])
    t0 = time.perf_counter()
    m = _load_binance_list(names)
    return m, LOAD_TIMES.setdefault(f"binance:{names}", time.perf_counter() - t0)


@lru_cache(maxsize=None)
def _load_binance_list(names):
    return load("binance", [BIN / n for n in names])


@pytest.mark.parametrize("key", list(BINANCE_SETS))
def test_binance_matches_independent_facts(key):
    m, dt = _binance(key)
    f = binance_facts(*BINANCE_SETS[key])
    assert dt < LOAD_BUDGET_S
    assert m.source == "binance" and m.asset == ("ETHUSDT" if "eth" in key else "BTCUSDT")
    raw = f["trades"]
    ids = {r[1] for r in raw}
    tr = m.trades
    assert len(tr) == len(ids) == len(raw)
    assert int((tr["side"] == 1).sum()) == sum(not r[4] for r in raw)     # m=false: buyer aggressor
    assert int((tr["side"] == -1).sum()) == sum(r[4] for r in raw)
    assert int(tr["ts"].iloc[0]) == min(r[0] for r in raw) * 10**6
    assert int(tr["ts"].iloc[-1]) == max(r[0] for r in raw) * 10**6
    assert tr["size"].sum() == pytest.approx(sum(r[3] for r in raw), rel=1e-12)
    assert set(tr["trade_id"]) == ids
    assert len(tr.drop_duplicates(["ts", "side"])) == len({(r[0], r[4]) for r in raw})
    q = m.quotes
    assert q["ts"].is_monotonic_increasing and q["ts"].is_unique
    last = f["bt"][-1]
    assert (q["bid"].iloc[-1], q["ask"].iloc[-1], q["bid_size"].iloc[-1], q["ask_size"].iloc[-1]) \
        == last[1:5]


@pytest.mark.parametrize("key", ["usdm_btc", "usdm_eth"])
def test_binance_usdm_quotes_on_exchange_clock(key):
    m, _ = _binance(key)
    bt = binance_facts(*BINANCE_SETS[key])["bt"]
    assert m.meta["clock"]["quotes"].startswith("exchange T")
    # quote ts are the bookTicker T values; one quote per distinct T (the last message)
    last_at: dict[int, tuple] = {}
    for r in bt:
        last_at[r[0]] = r[1:5]
    assert set(m.quotes["ts"] // 10**6) <= set(last_at)
    qts = m.quotes["ts"].to_numpy()
    for i in range(0, len(m.quotes), 1500):
        row = m.quotes.iloc[i]
        assert (row["bid"], row["ask"], row["bid_size"], row["ask_size"]) == last_at[int(qts[i]) // 10**6]
    # deduped consecutive repeats only: count independently
    seq, prev = [], None
    for t in sorted(last_at):
        if last_at[t] != prev:
            seq.append(t)
        prev = last_at[t]
    assert len(m.quotes) == len(seq)


def test_binance_spot_two_day_capture_and_clock_fallback():
    m, _ = _binance("spot")
    f = binance_facts(*BINANCE_SETS["spot"])
    assert len(m.trades) == 9_757 + 10_147
    assert all(r[0] is None for r in f["bt"])          # spot bookTicker has no exchange time
    clock = m.meta["clock"]
    assert 1200 < clock["offset_ms"] < 1350            # local clock ~1.27 s behind exchange
    assert clock["offset_iqr_ms"] < 20
    assert abs(clock["shift_ms"]) <= 20
    assert clock["touch_consistency"] > 0.95 > clock["touch_consistency_median_offset"]
    # quote values are bookTicker values (independently parsed)
    seen = {r[1:5] for r in f["bt"]}
    qv = m.quotes[["bid", "ask", "bid_size", "ask_size"]].to_numpy()
    assert all(tuple(v) in seen for v in qv[::500])
    q, tr = m.quotes, m.trades
    assert q["ts"].is_monotonic_increasing
    assert tr["ts"].iloc[0] <= q["ts"].iloc[-1] and q["ts"].iloc[0] <= tr["ts"].iloc[-1]
    # same result whatever the order/form the files are given in
    rev = load("binance", [BIN / n for n in reversed(BINANCE_SETS["spot"])])
    assert rev.trades.equals(tr) and rev.quotes.equals(q)
    d = load("binance", BIN, asset="spot_btcusdt")
    assert d.trades.equals(tr) and d.quotes.equals(q)


@pytest.mark.parametrize("name", ["usdm_btcusdt_20240808.gz", "usdm_ethusdt_20240808.gz"])
def test_binance_clock_fallback_is_accurate_on_usdm(name):
    """Pretend the USD-M bookTicker had no exchange time: the fallback estimate from
    the local clock must land within a few ms of the true T and align trades with
    the touch almost as well as the true clock does."""
    from models.data.binance import exchange_time_from_local, touch_consistency
    f = binance_facts(name)
    tl = np.array([r[5] for r in f["trades"]])
    tT = np.array([r[0] for r in f["trades"]]) * 10**6
    tp = np.array([r[2] for r in f["trades"]])
    ts = np.where(np.array([r[4] for r in f["trades"]]), -1, 1)
    ql = np.array([r[5] for r in f["bt"]])
    qT = np.array([r[0] for r in f["bt"]]) * 10**6
    qb = np.array([r[1] for r in f["bt"]])
    qa = np.array([r[2] for r in f["bt"]])
    est, info = exchange_time_from_local(ql, qb, qa, tl, tT, tp, ts)
    err_ms = (est - qT) / 1e6
    assert abs(np.median(err_ms)) < 5
    assert np.mean(np.abs(err_ms) <= 20) > 0.9
    assert np.all(np.diff(est) >= 0)
    assert 1200 < info["offset_ms"] < 1350
    truth = touch_consistency(qT, qb, qa, tT, tp, ts)
    assert truth > 0.99                                  # the physical constraint, true clock
    assert info["touch_consistency"] > 0.95
    assert info["touch_consistency"] > info["touch_consistency_median_offset"]


def test_binance_books_top_matches_bookticker():
    m, dt = load_cached("binance", BIN / "usdm_btcusdt_20240808.gz", with_books=True)
    assert dt < LOAD_BUDGET_S
    assert m.meta["books"]["status"] == "ok"
    bk = m.books
    assert bk["level"].max() == 19
    top = bk[bk["level"] == 0]
    bids, asks = top[top["side"] == 1], top[top["side"] == -1]
    assert len(bids) == len(asks) == m.meta["books"]["applied"]
    assert (bids["price"].to_numpy() < asks["price"].to_numpy()).all()
    # the reconstructed top of book equals the bookTicker at the nearest update id
    diffs, bt = [], []
    with gzip.open(BIN / "usdm_btcusdt_20240808.gz", "rt") as fh:
        for line in fh:
            d = json.loads(line.split(" ", 1)[1])
            s = d.get("stream", "")
            if "@depth" in s:
                diffs.append(d["data"]["u"])
            elif s.endswith("@bookTicker"):
                bt.append((d["data"]["u"], float(d["data"]["b"]), float(d["data"]["a"])))
    applied = diffs[m.meta["books"]["skipped_before_snapshot"]:][:m.meta["books"]["applied"]]
    bt_u = np.array([r[0] for r in bt])
    for k in range(0, len(applied), 50):
        j = int(np.searchsorted(bt_u, applied[k], side="right")) - 1
        assert (bids["price"].iloc[k], asks["price"].iloc[k]) == bt[j][1:]


# =========================================================================== Hyperliquid

def _csv_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", newline="") as fh:
        return list(csv.DictReader(fh))


@lru_cache(maxsize=None)
def recorder_facts(coin: str) -> dict:
    trades = _csv_gz(REC / f"trades_{coin}.csv.gz")
    prices = _csv_gz(REC / f"prices_{coin}.csv.gz")
    return _rec_facts(trades, prices)


def _rec_facts(trades, prices) -> dict:
    first_q = int(prices[0]["exchange_timestamp"])
    seen, kept = set(), []
    for r in trades:
        if r["trade_id"] in seen:
            continue
        seen.add(r["trade_id"])
        kept.append(r)
    kept = [r for r in kept if int(r["exchange_timestamp"]) >= first_q]
    # BBO per exchange ts: last bid / last ask row at that ts, carried forward
    bbo, cur = {}, {}
    row_cross = 0
    for r in prices:
        cur[r["side"]] = (float(r["price"]), float(r["size"]))
        if "bid" in cur and "ask" in cur:
            if cur["bid"][0] >= cur["ask"][0]:
                row_cross += 1                      # only a combine-row-by-row artefact
            bbo[int(r["exchange_timestamp"])] = (cur["bid"], cur["ask"])
    seq, prev = [], None
    for t in sorted(bbo):
        if bbo[t] != prev:
            seq.append(t)
        prev = bbo[t]
    return {
        "raw_trades": len(trades), "unique": len(seen), "kept": kept,
        "n_buy": sum(r["side"] == "buy" for r in kept), "n_sell": sum(r["side"] == "sell" for r in kept),
        "first_ts": min(int(r["exchange_timestamp"]) for r in kept),
        "last_ts": max(int(r["exchange_timestamp"]) for r in kept),
        "sweeps": len({(r["exchange_timestamp"], r["side"]) for r in kept}),
        "n_quotes": len(seq), "bbo": bbo, "row_cross": row_cross,
        "before_first_quote": sum(int(r["exchange_timestamp"]) < first_q
                                  for r in {r["trade_id"]: r for r in trades}.values()),
    }


def _check_recorder(m, f):
    tr = m.trades
    assert len(tr) == len(f["kept"])
    assert m.meta["dropped"]["trades_duplicate_id"] == f["raw_trades"] - f["unique"]
    assert m.meta["dropped"]["trades_before_first_quote"] == f["before_first_quote"]
    assert int((tr["side"] == 1).sum()) == f["n_buy"]
    assert int((tr["side"] == -1).sum()) == f["n_sell"]
    assert int(tr["ts"].iloc[0]) == f["first_ts"] * 10**6
    assert int(tr["ts"].iloc[-1]) == f["last_ts"] * 10**6
    assert len(tr.drop_duplicates(["ts", "side"])) == f["sweeps"]
    assert set(tr["trade_id"]) == {int(r["trade_id"]) for r in f["kept"]}
    q = m.quotes
    assert len(q) == f["n_quotes"]
    qts = q["ts"].to_numpy()
    for i in range(0, len(q), 997):
        row = q.iloc[i]
        (b, bs), (a, as_) = f["bbo"][int(qts[i]) // 10**6]
        assert (row["bid"], row["bid_size"], row["ask"], row["ask_size"]) == (b, bs, a, as_)
    assert m.meta["dropped"]["quotes_transient_crossed"] == 0


@pytest.mark.parametrize("coin", COINS)
def test_hyperliquid_recorder_csv(coin):
    m, dt = load_cached("hyperliquid", REC, coin)
    assert dt < LOAD_BUDGET_S
    assert m.asset == coin and m.source == "hyperliquid"
    f = recorder_facts(coin)
    _check_recorder(m, f)
    # combining the one-sided rows row by row would have produced crossed BBOs
    assert f["row_cross"] > 0
    # the single-file form gives the same market
    m2 = load("hyperliquid", REC / f"trades_{coin}.csv.gz")
    assert m2.trades.equals(m.trades) and m2.quotes.equals(m.quotes)


def test_hyperliquid_recorder_replay_duplicates():
    """A reconnect at ~19:58:11 UTC replays recent trades in ETH/SOL/WLFI: the raw
    exchange time steps back; after de-duplication by trade id it runs forward."""
    for coin, n_dup in (("ETH", 17), ("SOL", 10), ("WLFI", 8), ("BTC", 0)):
        rows = _csv_gz(REC / f"trades_{coin}.csv.gz")
        ets = [int(r["exchange_timestamp"]) for r in rows]
        back = sum(b < a for a, b in zip(ets, ets[1:]))
        assert back == (1 if n_dup else 0)
        m, _ = load_cached("hyperliquid", REC, coin)
        assert m.meta["dropped"]["trades_duplicate_id"] == n_dup
        assert m.trades["ts"].is_monotonic_increasing


def test_hyperliquid_prices_agree_with_orderbook_level0():
    """Why quotes come from prices: the same BBO as orderbooks level 0 where both
    have a timestamp, and about 4x as many updates."""
    m, _ = load_cached("hyperliquid", REC, "BTC")
    obs = _csv_gz(REC / "orderbooks_BTC.csv.gz")
    q = m.quotes.set_index("ts")
    common = 0
    for r in obs:
        t = int(r["exchange_timestamp"]) * 10**6
        if t in q.index:
            common += 1
            row = q.loc[t]
            assert (row["bid"], row["ask"]) == (float(r["bid_price_0"]), float(r["ask_price_0"]))
        assert float(r["bid_price_0"]) < float(r["ask_price_0"])      # no crossed snapshot
    assert common > 1000
    assert len(m.quotes) > 3 * len(obs)


@pytest.mark.parametrize("coin", ["BTC", "ETH"])
def test_hyperliquid_side_convention_on_data(coin):
    """buy (B) prints at/above the prevailing mid, sell (A) at/below it."""
    m, _ = load_cached("hyperliquid", REC, coin)
    tr, q = m.trades, m.quotes
    qts = q["ts"].to_numpy()
    j = np.searchsorted(qts, tr["ts"].to_numpy(), side="left") - 1    # quote strictly before
    ok = j >= 0
    mid = ((q["bid"].to_numpy() + q["ask"].to_numpy()) / 2)[j[ok]]
    p, s = tr["price"].to_numpy()[ok], tr["side"].to_numpy()[ok]
    assert np.mean(p[s == 1] > mid[s == 1]) > 0.85
    assert np.mean(p[s == -1] < mid[s == -1]) > 0.85


def test_hyperliquid_recorder_books():
    m, dt = load_cached("hyperliquid", REC, "BTC", with_books=True)
    assert dt < LOAD_BUDGET_S
    obs = _csv_gz(REC / "orderbooks_BTC.csv.gz")
    bk = m.books
    n_dup = sum(list(a.values())[1:] == list(b.values())[1:] for a, b in zip(obs, obs[1:]))
    assert n_dup == 3 and m.meta["dropped"]["books_duplicate_snapshots"] == n_dup
    assert len(bk) == 40 * (len(obs) - n_dup)          # 20 levels x 2 sides, none empty
    first = bk[bk["ts"] == int(obs[0]["exchange_timestamp"]) * 10**6]
    assert list(first.loc[first["side"] == 1, "price"]) == [float(obs[0][f"bid_price_{i}"]) for i in range(20)]
    assert list(first.loc[first["side"] == -1, "size"]) == [float(obs[0][f"ask_size_{i}"]) for i in range(20)]


@lru_cache(maxsize=None)
def parquet_facts() -> dict:
    def rows(kind):
        out = []
        for f in sorted((PQ / kind).glob("*.parquet")):
            out += pq.read_table(f).to_pylist()
        return out
    trades = [{k: str(v) for k, v in r.items()} for r in rows("trades")]
    prices = [{k: str(v) for k, v in r.items()} for r in rows("prices")]
    return _rec_facts(trades, prices)


def test_hyperliquid_parquet_chunks():
    m, dt = load_cached("hyperliquid", PQ)
    assert dt < LOAD_BUDGET_S
    assert m.asset == "ETH"
    f = parquet_facts()
    _check_recorder(m, f)
    assert f["raw_trades"] == 6385 and f["unique"] == 6385
    # the recording has one long gap (~4 min) in the middle
    gaps = np.diff(m.quotes["ts"].to_numpy()) / 1e9
    assert 200 < gaps.max() < 300
    assert any(200 < g["seconds"] < 300 for g in m.meta["quote_gaps_s"])


def test_hyperliquid_websocket_capture():
    m, dt = load_cached("hyperliquid", WS)
    assert dt < LOAD_BUDGET_S
    fills, books = [], []
    with gzip.open(WS, "rt") as fh:
        for line in fh:
            d = json.loads(line.split(" ", 1)[1])
            if d["channel"] == "trades":
                fills += d["data"]
            elif d["channel"] == "l2Book":
                books.append(d["data"])
    assert len(fills) == 64 and len({x["tid"] for x in fills}) == 64
    first_book = books[0]["time"]
    kept = [x for x in fills if x["time"] >= first_book]
    assert m.meta["dropped"]["trades_before_first_quote"] == 64 - len(kept) == 30
    tr = m.trades
    assert len(tr) == len(kept)
    assert int((tr["side"] == 1).sum()) == sum(x["side"] == "B" for x in kept)
    assert int(tr["ts"].iloc[0]) == min(x["time"] for x in kept) * 10**6
    assert int(tr["ts"].iloc[-1]) == max(x["time"] for x in kept) * 10**6
    q = m.quotes
    assert (q["bid"].iloc[0], q["ask"].iloc[0]) == (float(books[0]["levels"][0][0]["px"]),
                                                    float(books[0]["levels"][1][0]["px"]))
    # side convention: B prints at the prevailing ask, A at/below the bid
    for ts, side, price in zip(tr["ts"].to_numpy(), tr["side"].to_numpy(), tr["price"].to_numpy()):
        b, a = prevailing(q, int(ts))
        if side == 1:
            assert price >= a
        else:
            assert price <= b
    mb = load("hyperliquid", WS, with_books=True)
    assert mb.books["level"].max() == 19


# =========================================================================== dispatch

def test_detect_source_on_real_files():
    assert detect_source(LOB / "LOBSTER_SampleFile_GOOG_2012-06-21_1.zip") == "lobster"
    assert detect_source(BIN / "spot_btcusdt_20240808.gz") == "binance"
    assert detect_source(REC / "trades_BTC.csv.gz") == "hyperliquid"
    assert detect_source(REC) == "hyperliquid"
    assert detect_source(PQ) == "hyperliquid"
    assert detect_source(next((PQ / "prices").glob("*.parquet"))) == "hyperliquid"
    assert detect_source(WS) == "hyperliquid"
    assert detect_source(LOB / "LOBSTER_SampleFiles_ReadMe.txt") is None


def test_load_auto_and_asset_selection():
    m = load("auto", LOB, "GOOG_1")
    ref, _ = load_cached("lobster", LOB / "LOBSTER_SampleFile_GOOG_2012-06-21_1.zip")
    assert m.trades.equals(ref.trades)
    from models.data.tables import DataError
    with pytest.raises(DataError, match="ambiguous"):
        load("lobster", LOB, "AMZN")
    with pytest.raises(DataError, match="several"):
        load("hyperliquid", REC)
    with pytest.raises(DataError, match="ambiguous"):
        load("binance", BIN, "BTCUSDT")


# =========================================================================== asset labels

@pytest.mark.parametrize("source, path, wrong, right", [
    ("lobster", LOB / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip", "GOOG", "AAPL"),
    ("binance", BIN / "usdm_ethusdt_20240808.gz", "BTCUSDT", "ETHUSDT"),
    ("hyperliquid", REC / "trades_ETH.csv.gz", "BTC", "ETH"),
    ("hyperliquid", REC, "DOGE", "SOL"),
    ("hyperliquid", PQ, "BTC", "ETH"),
    ("hyperliquid", WS, "ETH", "BTC"),
])
def test_asset_is_the_datas_own_never_relabelled(source, path, wrong, right):
    """Every loader on its real sample: an ``asset`` that names other data is refused
    in one line naming the path (the parquet recorder folder used to take ``asset`` as
    its coin, labelling ETH data BTC); the right one loads, labelled by the data."""
    from models.data.tables import DataError
    with pytest.raises(DataError) as ei:
        load(source, path, wrong)
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith(str(path)) and repr(wrong) in msg, msg
    assert load_cached(source, path, right)[0].asset == right
    # lower case names the same data
    assert load_cached(source, path, right.lower())[0].asset == right


def test_synthetic_asset_is_the_markets_own(tmp_path):
    from models.data.synthetic import simulate_market, write_market
    from models.data.tables import DataError
    write_market(simulate_market(seed=1, duration_s=60.0), tmp_path)
    assert load("synthetic", tmp_path, "SYN").asset == "SYN"
    with pytest.raises(DataError, match=r"truth\.json: field 'asset': the market is 'SYN', not 'BTC'"):
        load("synthetic", tmp_path, "BTC")
