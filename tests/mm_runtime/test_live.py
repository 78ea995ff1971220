"""The live quoter process (mm_runtime.live, `mmcal live`): the Hyperliquid websocket
feed against a loopback server replaying the captured messages, the state file
(atomic save, restore, refusals), and the process itself (hot reload of a deployed
bundle seen in its metrics, a corrupt bundle changing nothing, SIGTERM)."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from mm_runtime import QuoterConfig, dump_bundle, example_bundle, with_checksum
from mm_runtime.paper.replay import ReplayData
from mm_runtime.live import (FeedEvent, HyperliquidFeed, HyperliquidParser, LiveConfig, LiveRunner, ReplayFeed,
                              StateFileError)

REPO = Path(__file__).resolve().parents[2]
CAPTURE = "hyperliquid/ws_2025-01-26/btc_20250126.gz"


def _capture(shared_data) -> list[tuple[int, str]]:
    with gzip.open(shared_data / CAPTURE, "rt") as fh:
        return [(int(ns), raw) for ns, raw in (line.rstrip("\n").split(" ", 1) for line in fh)]


def _events(lines) -> list[FeedEvent]:
    p = HyperliquidParser("BTC")
    return [ev for _, raw in lines for ev in p.parse(raw)]


class ListFeed:
    market_clock = True

    def __init__(self, events):
        self.list = events

    async def __aiter__(self):
        for ev in self.list:
            yield ev


@pytest.fixture
def btc_bundle(tmp_path):
    return dump_bundle(example_bundle("BTC"), tmp_path / "BTC.json")


# ----------------------------------------------------------------------------- parser / feeds
def test_parser_on_the_capture_books_sweeps_and_the_subscription_snapshot(shared_data):
    lines = _capture(shared_data)
    p = HyperliquidParser("BTC")
    evs = [ev for _, raw in lines for ev in p.parse(raw)]
    books = [e for e in evs if e.trade is None]
    trades = [e for e in evs if e.trade is not None]
    assert len(books) == sum('"l2Book"' in raw for _, raw in lines) == 46
    # the first trades message is the subscription's snapshot of older trades (30 rows, up to 50 s old)
    assert p.dropped["trade_too_old"] == 30
    raw_live = sum(len(json.loads(raw)["data"]) for _, raw in lines if '"trades"' in raw) - 30
    assert sum(1 for _ in trades) < raw_live  # sweeps (same time and side) are one event
    assert all(0 < e.bid < e.ask and e.ask - e.bid < 10 for e in evs)
    for e in trades:
        px, side, size = e.trade
        assert side in (1.0, -1.0) and size > 0
        assert (px >= e.ask - 1e-9) if side > 0 else (px <= e.bid + 1e-9)  # B lifts the ask, A hits the bid
    assert all(b.ts >= a.ts - 2.0 for a, b in zip(evs, evs[1:]))
    # other channels and coins are ignored; a repeated trade id is dropped
    assert p.parse({"channel": "subscriptionResponse", "data": {"method": "subscribe"}}) == []
    assert p.parse({"channel": "pong"}) == []
    assert p.parse({"channel": "l2Book", "data": {"coin": "ETH", "time": 1, "levels": [[], []]}}) == []
    last = json.loads([raw for _, raw in lines if '"trades"' in raw][-1])
    assert p.parse(last) == [] and p.dropped["trade_duplicate"] >= 1


def test_replay_feed_merges_in_time_order_and_paces(shared_data):
    from models.data.loaders import load, replay_data

    rd = replay_data(load("hyperliquid", shared_data / CAPTURE, "BTC"))
    evs = list(ReplayFeed(rd, 0).events())
    assert len(evs) == len(rd.trade_ts) + len(rd.quote_ts)
    assert all(b.ts >= a.ts for a, b in zip(evs, evs[1:]))
    assert sum(e.trade is not None for e in evs) == len(rd.trade_ts)
    # 2 s of market at 4x: ~0.5 s of wall time
    t = 1.7e9 + np.arange(0, 2.01, 0.1)
    short = ReplayData("X", "test", t[1::4] + 0.05, np.full(5, 100.5), np.ones(5), np.array([1.0, -1, 1, -1, 1]),
                       t, np.full(len(t), 100.0), np.full(len(t), 101.0))

    async def drain():
        return [ev async for ev in ReplayFeed(short, 4.0)]

    t0 = time.monotonic()
    got = asyncio.run(drain())
    span = got[-1].ts - got[0].ts
    assert span / 4.0 - 0.05 <= time.monotonic() - t0 <= span / 4.0 + 1.0
    with pytest.raises(ValueError, match="speed"):
        ReplayFeed(rd, -1)


def test_hyperliquid_feed_against_a_loopback_server(shared_data, btc_bundle, records):
    """A loopback websocket server replays the captured messages (exchange times
    shifted to now, 20x faster); the first connection drops halfway, the feed
    reconnects and the server replays from the start (a re-subscription's
    snapshot): the duplicates are dropped and the runner quotes on fresh data."""
    import websockets

    lines = _capture(shared_data)
    subs, connections = [], []
    t_first = json.loads(lines[0][1])["data"]["time"]

    def shifted(raw: str, offset_ms: int) -> str:
        m = json.loads(raw)
        if m["channel"] == "l2Book":
            m["data"]["time"] += offset_ms
        else:
            for t in m["data"]:
                t["time"] += offset_ms
        return json.dumps(m)

    async def handler(ws):
        connections.append(1)
        if len(connections) > 2:  # the exchange has gone away
            await ws.close()
            return
        for _ in range(2):
            subs.append(json.loads(await ws.recv()))
        await ws.send(json.dumps({"channel": "subscriptionResponse", "data": {"method": "subscribe"}}))
        first = len(connections) == 1
        todo = lines[:25] if first else lines
        ns0 = lines[0][0]
        offset = int(time.time() * 1000) - t_first  # exchange times shifted to now
        t_wall = time.monotonic()
        for ns, raw in todo:
            delay = t_wall + (ns - ns0) / 1e9 / 20 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await ws.send(shifted(raw, offset))
        if first:
            await ws.close()

    async def main():
        async with websockets.serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            feed = HyperliquidFeed(f"ws://127.0.0.1:{port}", "BTC", backoff_s=0.05, max_reconnects=1)
            runner = LiveRunner(btc_bundle, QuoterConfig(), market_clock=False)
            seen = []
            orig = runner.on_feed_event

            def spy(ev):
                seen.append(ev)
                q = orig(ev)
                if q is not None:
                    quotes.append(q)
                return q

            runner.on_feed_event = spy
            summary = await runner.run(feed, duration_s=20, handle_signals=False)
            return runner, feed, seen, summary

    quotes = []
    runner, feed, seen, summary = asyncio.run(main())

    assert len(connections) == 3 and summary["stopped"] == "feed ended"  # dropped, replayed, then gone for good
    assert subs[:2] == [{"method": "subscribe", "subscription": {"type": "trades", "coin": "BTC"}},
                        {"method": "subscribe", "subscription": {"type": "l2Book", "coin": "BTC"}}]
    single = _events(lines)
    trades = [e.trade for e in seen if e.trade is not None]
    assert trades == [e.trade for e in single if e.trade is not None]  # reconnect duplicates dropped
    assert feed.parser.dropped["trade_duplicate"] > 0
    assert len(quotes) == len(seen) and all(bool(q.valid) for q in quotes)  # fresh: shifted to the wall clock
    q = quotes[-1]
    bids, asks = q.price[0][q.size[0] > 0], q.price[1][q.size[1] > 0]
    assert len(bids) and len(asks) and bids.max() < seen[-1].bid < seen[-1].ask < asks.min()
    ladders = [f for m, f in records if m == "ladder"]
    assert ladders and all(f["valid"] for f in ladders) and summary["ladders"] == len(ladders)
    assert any(m == "feed disconnected; reconnecting" for m, _ in records)
    reg = runner.quoter.runtime_metrics.registry
    assert reg.get_sample_value("mm_live_feed_reconnects_total", {"asset": "BTC"}) == 2
    assert reg.get_sample_value("mm_live_events_total", {"asset": "BTC"}) == len(seen)


def test_hyperliquid_feed_pings_a_quiet_connection_and_gives_up_on_a_dead_server(records):
    import websockets

    got = []

    async def quiet(ws):
        async for msg in ws:
            got.append(json.loads(msg))
            if sum(m.get("method") == "ping" for m in got) >= 2:
                await ws.close()

    async def main():
        async with websockets.serve(quiet, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            feed = HyperliquidFeed(f"ws://127.0.0.1:{port}", "ETH", ping_interval_s=0.1, max_reconnects=0)
            return [ev async for ev in feed]

    assert asyncio.run(asyncio.wait_for(main(), 10)) == []
    assert [m["method"] for m in got] == ["subscribe", "subscribe", "ping", "ping"]

    async def dead():  # nothing listens on this port: refused, retried once, then the feed ends
        feed = HyperliquidFeed(f"ws://127.0.0.1:{_free_port()}", "ETH", backoff_s=0.01, max_reconnects=1)
        return [ev async for ev in feed]

    assert asyncio.run(asyncio.wait_for(dead(), 10)) == []
    ended = [f for m, f in records if m == "feed ended"]
    assert ended and ended[-1]["attempts"] == 2 and "Error" in ended[-1]["reason"]
    with pytest.raises(ValueError, match="ws://"):
        HyperliquidFeed("http://127.0.0.1:1", "ETH")


def test_paper_fills_trade_through_the_resting_ladder(btc_bundle, records):
    from mm_runtime.live import LiveConfig

    r = LiveRunner(btc_bundle, live=LiveConfig(refresh_s=1.0, fee_bps=1.0), market_clock=True)
    t0 = 1.7e9
    q = r.on_feed_event(FeedEvent(t0, 104_999.0, 105_001.0))
    assert bool(q.valid) and r.n_ladders == 1
    asks = q.price[1][q.size[1] > 0]
    best, size = float(asks.min()), float(q.size[1][q.size[1] > 0][np.argmin(asks)])
    # a buy below our best ask fills nothing; one through it fills that level, capped by its size
    r.on_feed_event(FeedEvent(t0 + 0.1, 104_999.0, 105_001.0, (best - 0.5, 1.0, 10.0)))
    assert r.position == 0 and r.n_fills == 0
    r.on_feed_event(FeedEvent(t0 + 0.2, 104_999.0, 105_001.0, (best + 0.5, 1.0, size / 2)))
    assert r.position == pytest.approx(-size / 2) and r.n_fills == 1
    assert r.cash == pytest.approx(100_000.0 + best * size / 2 * (1 - 1e-4))  # sold, paid a 1 bp fee
    reg = r.quoter.runtime_metrics.registry
    assert reg.get_sample_value("mm_live_fills_total", {"asset": "BTC", "side": "ask"}) == 1
    # the fill reached the quoter's markout buffer (one active row)
    assert np.asarray(r.quoter.state.est.pending)[:, 4].sum() == 1
    r.on_feed_event(FeedEvent(t0 + 1.5, 104_999.0, 105_001.0))  # the next refresh: a new ladder, logged
    ladders = [f for m, f in records if m == "ladder"]
    assert len(ladders) == 2 and ladders[-1]["position"] == pytest.approx(-size / 2)

    off = LiveRunner(btc_bundle, live=LiveConfig(paper_fills=False), market_clock=True)
    off.on_feed_event(FeedEvent(t0, 104_999.0, 105_001.0))
    off.on_feed_event(FeedEvent(t0 + 0.2, 104_999.0, 105_001.0, (106_000.0, 1.0, 10.0)))
    assert off.position == 0 and off.n_fills == 0


# ----------------------------------------------------------------------------- state file
def test_state_checkpointed_while_running(shared_data, btc_bundle, tmp_path, records):
    """With ``checkpoint_s`` the state file exists, and is valid, before shutdown."""
    evs = _events(_capture(shared_data))[:400]
    st = tmp_path / "BTC.state.json"
    seen = []

    class SlowFeed(ListFeed):
        async def __aiter__(self):
            for i, ev in enumerate(self.list):
                if i % 50 == 0:
                    seen.append(st.exists())
                    await asyncio.sleep(0.15)
                yield ev

    r = LiveRunner(btc_bundle, QuoterConfig(reload_check_interval_s=0.01), LiveConfig(checkpoint_s=0.02),
                   state_path=st, market_clock=True)
    asyncio.run(r.run(SlowFeed(evs), handle_signals=False))
    saved = [f for m, f in records if m == "state saved"]
    assert len(saved) >= 2 and any(seen[1:]) and not seen[0]  # checkpoints, then the one at shutdown
    assert saved[0]["events"] < saved[-1]["events"] == r.quoter.n_events
    assert [f["events"] for f in saved] == sorted(f["events"] for f in saved)
    r2 = LiveRunner(btc_bundle, state_path=st, market_clock=True)
    assert r2.restored


def test_state_saved_atomically_restored_and_bad_files_refused(shared_data, btc_bundle, tmp_path, records):
    evs = _events(_capture(shared_data))
    st = tmp_path / "BTC.state.json"
    r1 = LiveRunner(btc_bundle, state_path=st, market_clock=True)
    s1 = asyncio.run(r1.run(ListFeed(evs), handle_signals=False))
    assert s1["events"] > 0 and st.exists() and not list(tmp_path.glob(".*.tmp"))
    doc = json.loads(st.read_text())
    assert doc["kind"] == "mm_runtime.live_state" and doc["schema_version"] == 1
    assert doc["asset"] == "BTC" and doc["model_version"] == "example-v1"
    saved = np.asarray(r1.quoter.state.est.evidence)
    assert saved.sum() > 0

    r2 = LiveRunner(btc_bundle, state_path=st, market_clock=True)
    assert r2.restored
    np.testing.assert_array_equal(np.asarray(r2.quoter.state.est.evidence), saved)
    assert r2.quoter.runtime_metrics.registry.get_sample_value("mm_live_state_restored", {"asset": "BTC"}) == 1
    restored = [f for m, f in records if m == "state restored"]
    assert restored and restored[-1]["evidence_sum"] == pytest.approx(saved.sum(), rel=0, abs=0)
    # replaying the same data again starts before the saved clock: clock reset, learning kept
    r2.on_feed_event(evs[0])
    assert any(m.startswith("feed starts before the saved clock") for m, _ in records)
    assert np.asarray(r2.quoter.state.est.evidence).sum() >= saved.sum() * 0.99
    assert doc["alpha_definition"] == {"markout_horizon_s": 1.0, "informed_threshold_bps": 1.0}

    # a bundle that defines α otherwise (5 s markouts): the state's α evidence is not
    # this α, so it is dropped on restore; κ and the arrival rate are kept
    from mm_runtime.bundle import dump_bundle, load_bundle, with_checksum
    from mm_runtime.estimators import Columns
    from mm_runtime.observation import ObservationConfig

    b = load_bundle(btc_bundle)
    b5 = with_checksum(b.model_copy(update={"observation": ObservationConfig(
        markout_horizon_s=5.0, bar_seconds=b.units.volatility_bar_s)}))
    cols = Columns(len(b5.bucket_keys))
    learned = saved.copy()
    learned[:, : cols.alpha_b.stop] = 1.0       # as if fills had resolved their markouts at 1 s
    r1.quoter.state = r1.quoter.state._replace(est=r1.quoter.state.est._replace(evidence=learned))
    st1 = r1.save_state(tmp_path / "BTC.alpha.state.json")
    assert LiveRunner(btc_bundle, state_path=st1, market_clock=True).quoter.state.est.evidence.sum() == \
        pytest.approx(learned.sum())             # the same definition: everything kept
    records.clear()
    r3 = LiveRunner(dump_bundle(b5, tmp_path / "BTC5.json"), state_path=st1, market_clock=True)
    assert r3.restored
    ev3 = np.asarray(r3.quoter.state.est.evidence)
    assert not ev3[:, : cols.alpha_b.stop].any()
    np.testing.assert_array_equal(ev3[:, cols.alpha_b.stop:], learned[:, cols.alpha_b.stop:])
    assert any(m.startswith("state restored without its α evidence") for m, _ in records)

    def refused(name, content: bytes, config=None):
        """A state file that cannot be restored stops the start (StateFileError naming
        it), left as it is; with fresh_state it is moved aside, byte for byte, and the
        quoter starts fresh; returns the error."""
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(StateFileError, match=re.escape(str(path))) as exc:
            LiveRunner(btc_bundle, config, state_path=path, market_clock=True)
        assert path.read_bytes() == content
        records.clear()
        r = LiveRunner(btc_bundle, config, state_path=path, fresh_state=True, market_clock=True)
        msgs = [f for m, f in records if m == "state file refused; moved aside, starting fresh"]
        assert not r.restored and len(msgs) == 1 and msgs[0]["error"] == str(exc.value)
        assert not np.asarray(r.quoter.state.est.evidence).any()
        aside = Path(msgs[0]["moved_to"])
        assert not path.exists() and aside.parent == tmp_path and aside.name.startswith(f"{name}.corrupt-")
        assert aside.read_bytes() == content
        r.save_state()                      # the fresh state's first save: the evidence moved aside stays
        assert path.exists() and aside.read_bytes() == content
        return str(exc.value)

    good = st.read_bytes()
    assert "invalid JSON (truncated or corrupt?)" in refused("truncated.json", good[: len(good) // 2])
    assert "shape" in refused("layout.json", good, QuoterConfig(pending_capacity=32))
    assert "asset" in refused("eth.json", json.dumps({**doc, "asset": "ETH"}).encode())
    assert "non-finite" in refused("nan.json", good.replace(b'"data": [', b'"data": [NaN, ', 1))
    # a second refusal of the same name within the second: a new name, nothing overwritten
    from mm_runtime.live.state import set_aside

    twice = tmp_path / "twice.json"
    twice.write_bytes(b"1")
    first = set_aside(twice)
    twice.write_bytes(b"2")
    second = set_aside(twice)
    assert first != second and first.read_bytes() == b"1" and second.read_bytes() == b"2"


# ----------------------------------------------------------------------------- the process
def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        return r.read().decode()


def _version(text: str) -> str | None:
    m = re.search(r'mm_bundle_info\{[^}]*model_version="([^"]+)"', text)
    return m.group(1) if m else None


def _failures(text: str) -> float:
    m = re.search(r'mm_bundle_reload_failures_total\{asset="BTC"\} (\S+)', text)
    return float(m.group(1)) if m else 0.0


def _wait(cond, timeout: float, proc=None, what=""):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"mmcal live exited early ({proc.returncode}) waiting for {what}")
        try:
            v = cond()
        except OSError:
            v = None
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _deploy(bundle, path: Path) -> None:
    tmp = path.with_name(".deploying.json")
    dump_bundle(with_checksum(bundle), tmp)
    os.replace(tmp, path)


def test_mmcal_live_hot_reload_corrupt_bundle_sigterm_and_restart(shared_data, tmp_path):
    live = tmp_path / "live" / "BTC.json"
    _deploy(example_bundle("BTC"), live)
    state = tmp_path / "BTC.state.json"
    port = _free_port()
    cmd = [sys.executable, "-m", "flows.cli", "live", "--asset", "BTC", "--priors", str(live), "--feed", "replay",
           "--source", "hyperliquid", "--data", str(shared_data / CAPTURE), "--state", str(state)]
    err1 = tmp_path / "run1.err"
    with open(err1, "wb") as fh:
        # 25 s of market at half speed: the feed outlasts the checks even on a busy machine
        proc = subprocess.Popen(cmd + ["--speed", "0.5", "--metrics-port", str(port)], cwd=REPO, stdout=fh,
                                stderr=subprocess.STDOUT)
    try:
        text = _wait(lambda: t if _version(t := _scrape(port)) else None, 60, proc, "the metrics")
        assert _version(text) == "example-v1"
        f0 = _failures(text)
        # a new bundle deployed atomically: seen without a restart
        _deploy(example_bundle("BTC").model_copy(update={"model_version": "example-v2"}), live)
        _wait(lambda: _version(_scrape(port)) == "example-v2", 20, proc, "example-v2 in the metrics")
        # a corrupt bundle dropped in its place: nothing changes, the failure is counted
        tmp = live.with_name(".corrupt.json")
        tmp.write_bytes(live.read_bytes()[:200])
        os.replace(tmp, live)
        text = _wait(lambda: t if _failures(t := _scrape(port)) > f0 else None, 20, proc, "a reload failure")
        assert _version(text) == "example-v2"
        assert 'mm_quote_valid{asset="BTC"} 1.0' in text
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    logs = [json.loads(line) for line in err1.read_text().splitlines() if line.startswith("{")]
    msgs = [r["msg"] for r in logs]
    assert "bundle reloaded" in msgs and "bundle reload refused; keeping the last good bundle" in msgs
    assert "ladder" in msgs and "signal received; stopping" in msgs
    assert "live: low-latency CPU mode on" in err1.read_text()
    assert "live: quote step compiled as one XLA kernel" in err1.read_text()
    stopped = [r for r in logs if r["msg"] == "stopped"][-1]
    assert stopped["stopped"] == "signal SIGTERM" and stopped["model_version"] == "example-v2"
    doc = json.loads(state.read_text())
    assert doc["model_version"] == "example-v2" and doc["asset"] == "BTC"
    evidence_sum = float(np.sum(doc["est"]["evidence"]["data"]))

    # restart with the same state (a good bundle deployed again first): restored, re-based onto v3
    _deploy(example_bundle("BTC").model_copy(update={"model_version": "example-v3"}), live)
    r = subprocess.run(cmd + ["--speed", "0", "--duration", "30", "--json"], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    logs = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    rest = [x for x in logs if x["msg"] == "state restored"]
    assert len(rest) == 1 and rest[0]["evidence_sum"] == evidence_sum
    assert rest[0]["saved_model_version"] == "example-v2" and rest[0]["rebased"] is True
    summary = json.loads(r.stdout)
    assert summary["restored"] is True and summary["model_version"] == "example-v3"

    # a truncated state file: the start is refused with one line naming it, the file kept as it is
    truncated = state.read_bytes()[:100]
    state.write_bytes(truncated)
    r = subprocess.run(cmd + ["--speed", "0", "--json"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == "", r.stderr[-2000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("mmcal: error")]
    assert len(errors) == 1 and str(state) in errors[0] and "invalid JSON (truncated or corrupt?)" in errors[0]
    assert "--fresh-state" in errors[0] and state.read_bytes() == truncated
    # --fresh-state: moved aside (the evidence kept), the fresh state used and saved in its place
    r = subprocess.run(cmd + ["--speed", "0", "--json", "--fresh-state"], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    refused = [json.loads(line) for line in r.stderr.splitlines() if "state file refused" in line]
    assert refused and "invalid JSON (truncated or corrupt?)" in refused[0]["error"]
    assert json.loads(r.stdout)["restored"] is False
    aside = list(state.parent.glob(f"{state.name}.corrupt-*"))
    assert [str(a) for a in aside] == [refused[0]["moved_to"]] and aside[0].read_bytes() == truncated
    assert json.loads(state.read_text())["asset"] == "BTC"


def test_mmcal_live_bad_input_is_one_line_and_exit_2(tmp_path, btc_bundle):
    from typer.testing import CliRunner

    from flows.cli import app

    cases = [
        (["--feed", "ftp"], "--feed"),
        (["--feed", "replay"], "give --source and --data"),
        (["--feed", "replay", "--source", "hyperliquid", "--data", str(tmp_path / "nope")], "no such file"),
        (["--feed", "replay", "--source", "nasdaq", "--data", str(tmp_path)], "--source"),
        (["--feed", "replay", "--source", "hyperliquid", "--data", str(tmp_path), "--speed", "-2"], "--speed"),
        (["--feed", "hyperliquid", "--url", "http://example"], "--url"),
        (["--feed", "hyperliquid", "--source", "hyperliquid"], "only with --feed replay"),
        (["--feed", "hyperliquid", "--metrics-port", "70000"], "--metrics-port"),
        (["--feed", "hyperliquid", "--refresh-s", "0"], "--refresh-s"),
        (["--feed", "hyperliquid", "--duration", "-1"], "--duration"),
        (["--feed", "hyperliquid", "--state", str(tmp_path / "no" / "such" / "s.json")], "--state"),
    ]
    for args, message in cases:
        r = CliRunner().invoke(app, ["live", "--asset", "BTC", "--priors", str(btc_bundle), *args])
        assert r.exit_code == 2, (args, r.output)
        assert message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    r = CliRunner().invoke(app, ["live", "--asset", "ETH", "--priors", str(btc_bundle), "--feed", "hyperliquid"])
    assert r.exit_code == 2 and "the bundle is for 'BTC'" in r.stderr
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = CliRunner().invoke(app, ["live", "--asset", "BTC", "--priors", str(btc_bundle), "--feed", "hyperliquid",
                                     "--metrics-port", str(port)])
    assert r.exit_code == 2 and "--metrics-port: cannot listen" in r.stderr, r.stderr
    assert not logging.getLogger("mm_runtime").handlers and logging.getLogger("mm_runtime").propagate
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    r = CliRunner().invoke(app, ["live", "--asset", "BTC", "--priors", str(bad), "--feed", "hyperliquid"])
    assert r.exit_code == 2 and str(bad) in r.stderr


def test_learned_parameter_registry_is_published_and_logged(btc_bundle, tmp_path, records):
    """The registry (mm_runtime.params) rides along: priors from the deployed bundle,
    evidence from a registry state file, mm_learned_<name> gauges, a periodic record;
    a corrupt registry state is refused with a warning and the priors used."""
    from mm_runtime.live import LiveConfig
    from mm_runtime.params import Evidence, Registry

    reg = Registry(asset="BTC")
    reg.update(Evidence.bernoulli("alpha_touch", 60, 300, source="test"))
    reg.update(Evidence.exponential("kappa", 500, 100.0, source="test"))
    st = reg.save(tmp_path / "params.json")
    r = LiveRunner(btc_bundle, live=LiveConfig(params_log_s=0.01), params_state=st, market_clock=True)
    r.on_feed_event(FeedEvent(1.7e9, 104_999.0, 105_001.0))
    m = r.quoter.runtime_metrics.registry
    w = m.get_sample_value("mm_learned_alpha_touch_data_weight", {"asset": "BTC"})
    assert w == pytest.approx(r.registry.data_weight("alpha_touch")) and w > 0.5
    assert m.get_sample_value("mm_learned_kappa", {"asset": "BTC", "regime": "all", "side": "all"}) == \
        pytest.approx(r.registry.estimate("kappa"))
    assert m.get_sample_value("mm_learned_params_calibrated", {"asset": "BTC", "tier": "1"}) in (0.0, 1.0)
    logged = [f for msg, f in records if msg == "learned parameters"]
    assert logged and logged[-1]["params"]["alpha_touch"]["data_weight"] == pytest.approx(w)

    (tmp_path / "bad.json").write_text(st.read_text()[:40])
    records.clear()
    r2 = LiveRunner(btc_bundle, params_state=tmp_path / "bad.json", market_clock=True)
    assert r2.registry.data_weight("alpha_touch") == 0.0
    assert any(msg.startswith("learned-parameter state refused") for msg, _ in records)
