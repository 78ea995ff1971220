"""The kill switch (mm_runtime.guards): its limits and their sources, the latch and the
reset, and crafted replays (hand-built canonical tables) that trip each guard — daily
loss, drawdown, position, notional, stale feed, quote rate — with every quote pulled
and kept pulled until the reset."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from mm_runtime import QuoterConfig, example_bundle
from mm_runtime.guards import GUARDS, GuardConfig, KillSwitch, parse_limit, resolve_limits, stationary_sigma_bps
from mm_runtime.paper.replay import ReplayConfig, ReplayData, replay
from mm_runtime.params import Evidence, Registry
from mm_runtime.risk_limits import kill_switch_limits, sigma_daily_from_bps

T0 = 1_700_000_000.0
MIDNIGHT = 1_700_006_400.0  # 2023-11-15T00:00:00Z


# ----------------------------------------------------------------------------- limits
@pytest.mark.parametrize(("text", "value", "fraction"), [("500", 500.0, False), ("2%", 0.02, True),
                                                         (" 1.5 % ", 0.015, True), (250, 250.0, False)])
def test_a_limit_is_an_amount_or_a_percentage(text, value, fraction):
    lim = parse_limit(text, "--max-daily-loss")
    assert lim.value == pytest.approx(value) and lim.fraction is fraction
    assert lim.amount(100_000.0) == pytest.approx(value * 100_000.0 if fraction else value)


@pytest.mark.parametrize("text", ["abc", "", "%", "-5", "0", "150%", "nan", "inf", "2%%"])
def test_a_bad_limit_is_one_line_naming_the_flag(text):
    with pytest.raises(ValueError) as e:
        parse_limit(text, "--max-drawdown")
    msg = str(e.value)
    assert msg.startswith("--max-drawdown: ") and "\n" not in msg and repr(text) in msg


def test_default_limits_are_derived_from_account_kelly_and_sigma():
    b, qc = example_bundle("BTC"), QuoterConfig()
    lim = resolve_limits(GuardConfig(), account=100_000.0, quoter_config=qc, bundle=b)
    assert list(lim) == list(GUARDS)
    want = kill_switch_limits(100_000.0, qc.kelly_fraction, sigma_daily_from_bps(stationary_sigma_bps(b)))
    assert lim["daily_loss"].value == pytest.approx(want["max_daily_loss"])
    assert lim["drawdown"].value == pytest.approx(want["max_drawdown"])
    assert lim["drawdown"].value > lim["daily_loss"].value
    assert lim["daily_loss"].source.startswith("derived") and "Kelly fraction 0.25" in lim["daily_loss"].source
    assert lim["position"].value == pytest.approx(1.5 * qc.max_position)
    assert lim["notional"].value == pytest.approx(100_000.0 * qc.leverage)
    assert (lim["stale_feed"].value, lim["quote_rate"].value) == (30.0, 50.0)
    # σ of the regime mix: the stationary-weighted variance
    from mm_runtime.view import bundle_view

    v = bundle_view(b)
    assert stationary_sigma_bps(b) == pytest.approx(math.sqrt(float(np.sum(v.stationary * v.sigma_bps ** 2))))


def test_flags_beat_the_registry_which_beats_the_derivation():
    b, qc = example_bundle("BTC"), QuoterConfig()
    reg = Registry.from_bundle(b)
    lim = resolve_limits(GuardConfig(), account=50_000.0, quoter_config=qc, bundle=b, registry=reg)
    assert lim["daily_loss"].source.startswith("derived")  # tier 2 not calibrated: the derivation
    for name, p in (("max_daily_loss_fraction", 0.03), ("max_drawdown", 0.08), ("cascade_oi_threshold", 0.02)):
        reg.update(Evidence.bernoulli(name, p * 5000, 5000))
    assert reg.calibration_status().tier2_ready
    lim = resolve_limits(GuardConfig(), account=50_000.0, quoter_config=qc, bundle=b, registry=reg)
    assert lim["daily_loss"].value == pytest.approx(50_000.0 * reg.estimate("max_daily_loss_fraction"))
    assert lim["drawdown"].value == pytest.approx(50_000.0 * reg.estimate("max_drawdown"))
    assert "registry max_daily_loss_fraction" in lim["daily_loss"].source
    lim = resolve_limits(GuardConfig(max_daily_loss="1%", max_drawdown="700"), account=50_000.0,
                         quoter_config=qc, bundle=b, registry=reg)
    assert lim["daily_loss"].value == pytest.approx(500.0) and lim["drawdown"].value == 700.0
    assert lim["daily_loss"].source == "--max-daily-loss 1% of account 50000"


# ----------------------------------------------------------------------------- the switch
def _switch(**cfg):
    b = example_bundle("BTC")
    gc = GuardConfig(**cfg)
    return KillSwitch(resolve_limits(gc, account=1_000.0, quoter_config=QuoterConfig(), bundle=b),
                      asset="BTC", config=gc)


def test_the_day_starts_at_midnight_utc_and_pnl_is_marked_to_market():
    ks = _switch(max_daily_loss="100", max_drawdown="1000")
    assert ks.check(MIDNIGHT - 60, equity=1_000.0, position=0.0, mid=100.0)
    assert ks.check(MIDNIGHT - 1, equity=920.0, position=0.0, mid=100.0)  # -80 today
    assert ks.values["daily_loss"] == pytest.approx(80.0)
    assert ks.check(MIDNIGHT + 1, equity=910.0, position=0.0, mid=100.0)  # a new day: -10 from 920
    assert ks.day_start_equity == 910.0 and ks.values["daily_loss"] == 0.0
    assert ks.check(MIDNIGHT + 2, equity=820.0, position=0.0, mid=100.0)  # -90 today, drawdown 180
    assert ks.values["drawdown"] == pytest.approx(180.0)
    assert not ks.check(MIDNIGHT + 3, equity=800.0, position=0.0, mid=100.0)  # -110 today
    assert ks.tripped and ks.trip["reason"] == "daily_loss" and ks.trip["value"] == pytest.approx(110.0)
    assert ks.trip["limit"] == 100.0 and ks.trip["at_utc"] == "2023-11-15T00:00:03.000Z"


def test_a_trip_latches_until_a_reset_and_the_state_survives(caplog):
    ks = _switch(max_position=2.0)
    ks.check(T0, equity=1_000.0, position=1.0, mid=100.0)
    with caplog.at_level(logging.INFO, logger="mm_runtime.guards"):
        assert not ks.check(T0 + 1, equity=1_000.0, position=2.5, mid=100.0)
        # back under the limit: still off (latched)
        assert not ks.check(T0 + 2, equity=1_000.0, position=0.5, mid=100.0)
        assert not ks.allow_quotes(T0 + 2, 10)
    rec = [r for r in caplog.records if r.getMessage().startswith("kill switch tripped")]
    assert len(rec) == 1 and rec[0].fields["reason"] == "position" and rec[0].fields["value"] == 2.5
    assert rec[0].fields["limit"] == 2.0 and rec[0].fields["position"] == 2.5 and rec[0].fields["mid"] == 100.0
    # the state round-trips: a restored switch is still tripped
    other = _switch(max_position=2.0)
    other.restore(ks.to_dict(), "state.json")
    assert other.tripped and other.trip["reason"] == "position" and not other.allow_quotes(T0 + 3, 1)
    with pytest.raises(ValueError, match="state.json: guards.tripped"):
        _switch().restore({"tripped": "yes"}, "state.json")
    # a reset re-arms it; a position still past the limit is allowed until it grows
    assert other.reset(T0 + 4, equity=1_000.0, position=2.5, mid=100.0, by="test")
    assert other.check(T0 + 5, equity=1_000.0, position=2.5, mid=100.0)
    assert not other.check(T0 + 6, equity=1_000.0, position=2.6, mid=100.0)


def test_the_quote_rate_is_counted_over_a_sliding_window():
    ks = _switch(max_quote_rate=2.0)  # 20 orders per 10 s
    assert all(ks.allow_quotes(T0 + i, 5) for i in range(4))  # 20 in the window
    assert not ks.allow_quotes(T0 + 4, 1) and ks.trip["reason"] == "quote_rate"
    ks.reset(T0 + 5)
    assert ks.allow_quotes(T0 + 5, 10) and ks.allow_quotes(T0 + 15.5, 20)  # the first 10 left the window


def test_metrics_say_why_and_the_numbers():
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry()
    b, gc = example_bundle("BTC"), GuardConfig(max_notional=150.0)
    ks = KillSwitch(resolve_limits(gc, account=1_000.0, quoter_config=QuoterConfig(), bundle=b), asset="BTC",
                    config=gc, metrics=reg)
    get = reg.get_sample_value
    assert get("mm_kill_switch", {"asset": "BTC", "reason": "notional"}) == 0.0
    assert get("mm_guard_limit", {"asset": "BTC", "guard": "notional"}) == 150.0
    ks.check(T0, equity=1_000.0, position=2.0, mid=100.0)
    assert get("mm_kill_switch", {"asset": "BTC", "reason": "notional"}) == 1.0
    assert get("mm_guard_value", {"asset": "BTC", "guard": "notional"}) == 200.0
    assert get("mm_kill_switch_trips_total", {"asset": "BTC", "reason": "notional"}) == 1.0
    ks.reset(T0 + 1)
    assert get("mm_kill_switch", {"asset": "BTC", "reason": "notional"}) == 0.0


# ----------------------------------------------------------------------------- crafted replays
def crafted(mid_fn, seconds=120.0, *, t0=T0, trade_every=0.5, side=-1.0, through_bps=12.0, gap=None, size=1.0):
    """Hand-built canonical tables as replay arrays: best quotes every 0.1 s around
    ``mid_fn(t - t0)`` (1 cent wide), and a trade every ``trade_every`` s on ``side`` (or
    "alternate": buys and sells in turn)
    printing ``through_bps`` beyond the mid (through our first levels); ``gap=(a, b)``:
    nothing at all between t0 + a and t0 + b (a dead feed)."""
    qt = t0 + np.arange(0.0, seconds, 0.1)
    tt = t0 + np.arange(0.05, seconds, trade_every)
    if gap is not None:
        qt = qt[(qt < t0 + gap[0]) | (qt >= t0 + gap[1])]
        tt = tt[(tt < t0 + gap[0]) | (tt >= t0 + gap[1])]
    mid_q = np.array([mid_fn(t - t0) for t in qt])
    mid_t = np.array([mid_fn(t - t0) for t in tt])
    sides = np.where(np.arange(tt.size) % 2 == 0, 1.0, -1.0) if side == "alternate" else np.full(tt.size, side)
    price = mid_t * (1.0 + sides * through_bps * 1e-4)
    return ReplayData("TEST", "crafted", tt, price, np.full(tt.size, size), sides, qt, mid_q - 0.005, mid_q + 0.005)


def run(data, resets=(), latency=0.05, **guards):
    rc = ReplayConfig(latency_s=latency, guards=GuardConfig(**guards), guard_resets_s=tuple(resets), block_s=10.0,
                      tick_size=0.0)
    return replay(data, example_bundle("TEST"), QuoterConfig(), rc)


def assert_pulled_until_reset(res, reason: str, reset_s: float | None, latency=0.05):
    ks = res.summary["kill_switch"]
    first = ks["trips"][0]
    assert first["reason"] == reason, ks["trips"]
    t_trip = first["at"]
    t_reset = T0 + reset_s if reset_s is not None else math.inf
    off = (res.t > t_trip) & (res.t < t_reset)
    assert off.sum() >= 3 and np.all(np.isnan(res.our_bid[off])) and np.all(np.isnan(res.our_ask[off]))
    f = res.fills["ts"]
    assert not np.any((f > t_trip + latency) & (f < t_reset)), "a fill while the switch was tripped"
    assert res.summary["not_quoting"].get(f"kill switch: {reason}", 0) >= off.sum() - 1  # not the end point
    if reset_s is not None:
        assert ks["resets"] and ks["resets"][0]["was_tripped"] and ks["resets"][0]["previous_reason"] == reason
        back = (res.t >= t_reset) & (res.t < t_reset + 3.0)
        assert np.any(np.isfinite(res.our_bid[back]) | np.isfinite(res.our_ask[back])), "quoting did not resume"
    else:
        assert ks["triggered"] and ks["reason"] == reason and ks["at"] == t_trip
    return first


def test_daily_loss_trips_in_a_falling_market_and_stays_off_until_reset():
    fall = crafted(lambda t: 100.0 * (1.0 - 2e-4 * t))  # -2 bp/s, sells hit our bids: long and losing
    free = run(fall, max_daily_loss="1e9", max_drawdown="1e9")
    assert free.summary["pnl"] < -3.0 and not free.summary["kill_switch"]["trips"]
    res = run(fall, resets=(80.0,), max_daily_loss="3", max_drawdown="1e9")
    first = assert_pulled_until_reset(res, "daily_loss", 80.0)
    assert first["value"] > 3.0 and first["limit"] == 3.0 and first["day_start_equity"] == 100_000.0
    assert first["equity"] == pytest.approx(first["day_start_equity"] - first["value"])
    # without the switch the same replay quotes all along: the gap in quoting is the switch's
    off = (res.t > first["at"]) & (res.t < T0 + 80.0)
    assert np.all(np.isfinite(free.our_bid[off]) | np.isfinite(free.our_ask[off]))
    once = run(fall, max_daily_loss="3", max_drawdown="1e9")  # no reset: off to the end
    assert_pulled_until_reset(once, "daily_loss", None)


def test_drawdown_trips_on_the_fall_from_the_peak_not_from_the_day_start():
    def up_then_down(t):
        return 100.0 * (1.0 + 3e-4 * t) if t < 40 else 100.0 * (1.0 + 3e-4 * 40 - 3e-4 * (t - 40))

    data = crafted(up_then_down)
    res = run(data, resets=(100.0,), max_daily_loss="1e9", max_drawdown="3")
    first = assert_pulled_until_reset(res, "drawdown", 100.0)
    assert first["peak_equity"] > first["day_start_equity"]  # made money first
    assert first["peak_equity"] - first["equity"] == pytest.approx(first["value"])
    assert first["day_start_equity"] - first["equity"] < first["value"]  # less lost since the day started


def test_hard_position_and_notional_limits_trip():
    flat = crafted(lambda t: 100.0)
    res = run(flat, resets=(60.0,), max_position=3.0)
    first = assert_pulled_until_reset(res, "position", 60.0)
    assert first["value"] > 3.0 and abs(first["position"]) == first["value"]
    res = run(flat, resets=(60.0,), max_notional=300.0)
    first = assert_pulled_until_reset(res, "notional", 60.0)
    assert first["value"] == pytest.approx(abs(first["position"]) * first["mid"]) and first["value"] > 300.0


def test_a_stale_feed_trips_after_its_silence_and_a_reset_resumes():
    data = crafted(lambda t: 100.0, trade_every=2.0, side="alternate", gap=(30.0, 75.0))
    res = run(data, resets=(90.0,))  # the default: 30 s of silence
    first = assert_pulled_until_reset(res, "stale_feed", 90.0)
    last = first["last_update"]
    assert T0 + 29.0 < last < T0 + 30.0 and first["value"] > 30.0
    assert first["at"] <= last + 30.0 + 1.0  # noticed at the first refresh past 30 s
    # the market comes back at 75 s: still off until the reset at 90 s
    back = (res.t > T0 + 76.0) & (res.t < T0 + 90.0)
    assert back.sum() >= 10 and np.all(np.isnan(res.our_bid[back]))
    short_gap = crafted(lambda t: 100.0, trade_every=2.0, side="alternate", gap=(30.0, 50.0))
    assert not run(short_gap).summary["kill_switch"]["trips"]  # 20 s of silence: not stale


def test_the_quote_rate_limit_trips_when_the_ladder_is_refreshed_too_often():
    data = crafted(lambda t: 100.0, seconds=60.0, trade_every=2.0, side="alternate")
    res = run(data, resets=(30.0,), max_quote_rate=4.0)  # the ladder places ~10 orders/s
    first = assert_pulled_until_reset(res, "quote_rate", 30.0)
    assert first["value"] > 4.0 and first["window_s"] == 10.0
    assert run(data).summary["kill_switch"]["trips"] == []  # the default 50/s: no trip


def test_the_replay_report_says_so(tmp_path):
    from mm_runtime.paper.compare import ab_table
    from models.paper_report import ab_document, write_report

    fall = crafted(lambda t: 100.0 * (1.0 - 2e-4 * t), seconds=60.0)
    res = run(fall, max_daily_loss="3", max_drawdown="1e9")
    ab = {"asset": "TEST", "source": "crafted", "baseline": "learned", "results": {"learned": res},
          "table": ab_table({"learned": res}), "paired": {}}
    doc = ab_document(ab)
    ks = doc["summaries"]["learned"]["kill_switch"]
    assert ks["triggered"] is True and ks["reason"] == "daily_loss" and ks["at"] > T0
    assert doc["table"][0]["kill_switch"].startswith("daily_loss at ")
    page = write_report(ab, tmp_path / "r").read_text()
    assert "Kill switch" in page and "kill switch tripped by daily_loss" in page and "--max-daily-loss 3" in page
