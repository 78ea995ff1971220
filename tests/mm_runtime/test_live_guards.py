"""The kill switch in the live process (mm_runtime.live.LiveRunner, `mmcal live`): a
replay feed trips it, every quote is pulled, the metric and the log record say why,
the switch stays tripped across a restart (saved with the state) until `mmcal live
reset` or the reset file the running process watches; a silent feed trips it on the
wall clock."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from typer.testing import CliRunner

from mm_runtime import QuoterConfig, dump_bundle, example_bundle
from mm_runtime.guards import GuardConfig
from mm_runtime.live import FeedEvent, LiveConfig, LiveRunner, ReplayFeed
from mm_runtime.live.runner import reset_path_for
from test_guards import T0, crafted

LOSS = GuardConfig(max_daily_loss="3", max_drawdown="1e9")


@pytest.fixture
def bundle_path(tmp_path):
    return dump_bundle(example_bundle("TEST"), tmp_path / "TEST.json")


def _run(runner, feed):
    return asyncio.run(runner.run(feed, handle_signals=False))


def _ladders(records, since=0):
    return [f for m, f in records[since:] if m == "ladder"]


def test_a_replay_trips_the_switch_it_stays_tripped_across_a_restart_until_reset(tmp_path, bundle_path, records):
    state = tmp_path / "TEST.state.json"
    fall = crafted(lambda t: 100.0 * (1.0 - 2e-4 * t), seconds=60.0)
    runner = LiveRunner(bundle_path, state_path=state, market_clock=True, guards=LOSS,
                        live=LiveConfig(checkpoint_s=None))
    summary = _run(runner, ReplayFeed(fall, 0))
    assert summary["kill_switch"]["triggered"] and summary["kill_switch"]["reason"] == "daily_loss"
    trips = [f for m, f in records if m.startswith("kill switch tripped")]
    assert len(trips) == 1
    trip = trips[0]
    assert trip["event"] == "kill_switch" and trip["reason"] == "daily_loss" and trip["limit"] == 3.0
    assert trip["value"] > 3.0 and trip["equity"] == pytest.approx(100_000.0 - trip["value"])
    assert trip["position"] > 0 and trip["mid"] < 100.0 and trip["source"] == "--max-daily-loss 3"
    get = runner.quoter.runtime_metrics.registry.get_sample_value
    assert get("mm_kill_switch", {"asset": "TEST", "reason": "daily_loss"}) == 1.0
    assert get("mm_kill_switch", {"asset": "TEST", "reason": "drawdown"}) == 0.0
    assert get("mm_guard_limit", {"asset": "TEST", "guard": "daily_loss"}) == 3.0
    assert get("mm_guard_value", {"asset": "TEST", "guard": "daily_loss"}) > 3.0
    ladders = _ladders(records)
    before = [f for f in ladders if f["event_ts"] < trip["at"]]
    after = [f for f in ladders if f["event_ts"] >= trip["at"]]
    assert any(f["bids"] for f in before) and len(after) > 20
    assert all(not f["bids"] and not f["asks"] and f["kill_switch"] == "daily_loss" for f in after)
    assert len({f["fills"] for f in after}) == 1  # no fill once pulled
    saved = json.loads(state.read_text())["guards"]
    assert saved["tripped"] and saved["trip"]["reason"] == "daily_loss"

    # a restart: still tripped, no quote on a calm market
    flat = crafted(lambda t: 99.0, seconds=30.0, t0=T0 + 100.0, side="alternate")
    n = len(records)
    again = LiveRunner(bundle_path, state_path=state, market_clock=True, guards=LOSS,
                       live=LiveConfig(checkpoint_s=None))
    assert again.kill.tripped and any(m == "kill switch restored tripped: no quotes until a manual reset"
                                      for m, _ in records[n:])
    _run(again, ReplayFeed(flat, 0))
    assert all(not f["bids"] and not f["asks"] for f in _ladders(records, n))

    # `mmcal live reset` writes the reset file; the next start applies it and quotes again
    from flows.cli import app

    r = CliRunner().invoke(app, ["live", "reset", "--asset", "TEST", "--state", str(state), "--note", "checked"])
    assert r.exit_code == 0, r.output
    assert "tripped by daily_loss" in r.stderr and reset_path_for(state).exists()
    bad = CliRunner().invoke(app, ["live", "reset", "--asset", "BTC", "--state", str(state)])
    assert bad.exit_code == 2 and "--asset" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    n = len(records)
    third = LiveRunner(bundle_path, state_path=state, market_clock=True, guards=LOSS,
                       live=LiveConfig(checkpoint_s=None))
    assert not third.kill.tripped and not reset_path_for(state).exists()
    resets = [f for m, f in records[n:] if m == "kill switch reset: quoting resumes"]
    assert len(resets) == 1 and resets[0]["note"] == "checked" and resets[0]["previous_reason"] == "daily_loss"
    assert resets[0]["by"].startswith("mmcal live reset")
    summary = _run(third, ReplayFeed(flat, 0))
    assert not summary["kill_switch"]["triggered"]
    assert any(f["bids"] and f["asks"] for f in _ladders(records, n))


class SlowFeed:
    """Events on a market clock, awaiting ``hook(i)`` before the i-th."""

    market_clock = True

    def __init__(self, events, hook):
        self.events, self.hook = events, hook

    async def __aiter__(self):
        for i, ev in enumerate(self.events):
            await self.hook(i)
            yield ev


def test_the_running_process_applies_the_reset_file(tmp_path, bundle_path, records):
    """A 40 s silence of the feed (market clock) trips the stale-feed guard; the reset
    file written while the process runs re-arms it within a heartbeat."""
    state = tmp_path / "TEST.state.json"
    evs = [FeedEvent(T0 + 0.5 * i, 99.99, 100.01) for i in range(20)]
    evs += [FeedEvent(T0 + 50.0 + 0.5 * i, 99.99, 100.01) for i in range(20)]
    runner = None

    async def hook(i):
        if i == 25:
            assert runner.kill.tripped and runner.kill.trip["reason"] == "stale_feed"
            reset_path_for(state).write_text(json.dumps({"by": "test", "note": "feed is back"}))
            for _ in range(40):  # the heartbeat polls every reload_check_interval_s
                await asyncio.sleep(0.05)
                if not runner.kill.tripped:
                    break

    runner = LiveRunner(bundle_path, QuoterConfig(reload_check_interval_s=0.1), state_path=state, market_clock=True,
                        live=LiveConfig(checkpoint_s=None, refresh_s=0.5))
    summary = _run(runner, SlowFeed(evs, hook))
    assert not summary["kill_switch"]["triggered"] and not reset_path_for(state).exists()
    trip = next(f for m, f in records if m.startswith("kill switch tripped"))
    assert trip["reason"] == "stale_feed" and trip["value"] == pytest.approx(40.5) and trip["limit"] == 30.0
    ladders = _ladders(records)
    stale = [f for f in ladders if T0 + 50.0 <= f["event_ts"] < T0 + 50.0 + 0.5 * 5]
    assert stale and all(not f["bids"] and f["kill_switch"] == "stale_feed" for f in stale)
    assert any(f["bids"] and f["asks"] for f in ladders if f["event_ts"] > T0 + 53.0)
    assert any(m == "kill switch reset: quoting resumes" and f["note"] == "feed is back" for m, f in records)


def test_a_silent_feed_trips_on_the_wall_clock(bundle_path, records):
    """Live (wall clock): no event for longer than --stale-feed-s pulls the resting
    ladder from the heartbeat, with no event to trigger it."""
    runner = None

    async def hook(i):
        if i == 5:
            assert runner._rest_sz.any()  # quoting
            await asyncio.sleep(1.2)  # the feed goes silent

    class WallFeed(SlowFeed):
        market_clock = False

        async def __aiter__(self):
            for i in range(6):
                await self.hook(i)
                yield FeedEvent(time.time(), 99.99, 100.01)

    runner = LiveRunner(bundle_path, QuoterConfig(reload_check_interval_s=0.1), guards=GuardConfig(stale_feed_s=0.5),
                        live=LiveConfig(checkpoint_s=None, refresh_s=0.01, capital=1e6))
    summary = _run(runner, WallFeed([], hook))
    assert summary["kill_switch"]["reason"] == "stale_feed" and not runner._rest_sz.any()
    trip = next(f for m, f in records if m.startswith("kill switch tripped"))
    assert 0.5 < trip["value"] < 1.5


@pytest.mark.parametrize(("args", "flag"), [
    (["--max-daily-loss", "abc"], "--max-daily-loss"),
    (["--max-drawdown", "150%"], "--max-drawdown"),
    (["--max-drawdown", "-3"], "--max-drawdown"),
    (["--max-position-hard", "0"], "--max-position-hard"),
    (["--max-notional", "nan"], "--max-notional"),
    (["--stale-feed-s", "-1"], "--stale-feed-s"),
    (["--max-quote-rate", "0"], "--max-quote-rate"),
])
def test_a_bad_guard_flag_is_one_line_naming_it(bundle_path, tmp_path, args, flag):
    from flows.cli import app

    for cmd in (["live", "--asset", "TEST", "--priors", str(bundle_path), "--feed", "hyperliquid"],
                ["paper", str(tmp_path / "data.gz"), "--source", "binance", "--priors", str(bundle_path)]):
        r = CliRunner().invoke(app, [*cmd, *args])
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith(f"mmcal: error: {flag}: "), (cmd, r.stderr)
