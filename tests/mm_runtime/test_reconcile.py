"""Reconciling a live paper session with a replay of its window (issue 19 item 5,
mm_runtime.paper.reconcile): a live session run on a replay feed, journaled, then
reconciled against the replay of the same data. What must be identical is (the
trades seen, the booked account, the session's ladders through the live fill rule);
the differences injected (latency, a queue model, a hot reload) are explained by
their reasons, and none is left unexplained."""

from __future__ import annotations

import asyncio
import json
import math

import numpy as np
import pytest

from mm_runtime import QuoterConfig, dump_bundle, example_bundle, with_checksum
from mm_runtime.live import LiveConfig, LiveRunner, ReplayFeed
from mm_runtime.live.journal import JournalError, read_sessions
from mm_runtime.paper.reconcile import reconcile
from mm_runtime.paper.replay import ReplayConfig, ReplayData

T0 = 1_700_000_000.0
TICK = 0.01


def _market(seconds=180.0, seed=3) -> ReplayData:
    """A random-walk mid on a 0.01 grid (price ~100: 1 bp), best quotes every 0.1 s,
    Poisson trades a few bps around the mid (so some print through or at our levels)."""
    rng = np.random.default_rng(seed)
    qt = T0 + np.arange(0.0, seconds, 0.1)
    mid = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.8e-4 * math.sqrt(0.1), qt.size)))
    bid, ask = np.floor(mid / TICK - 0.5) * TICK, np.ceil(mid / TICK + 0.5) * TICK
    n = rng.poisson(2.5 * seconds)
    tt = np.sort(T0 + rng.uniform(0.05, seconds - 0.05, n))
    side = rng.choice([-1.0, 1.0], n)
    m_at = mid[np.searchsorted(qt, tt, side="left") - 1]
    price = np.round((m_at + side * (1e-4 + rng.exponential(3.0, n) * 1e-4) * m_at) / TICK) * TICK
    return ReplayData("TEST", "unit", tt, price, rng.exponential(2.0, n) + 0.01, side, qt, bid, ask, tick=TICK)


class SwapAt:
    """A replay feed that deploys ``bundle`` to ``path`` after ``n`` events (a hot reload)."""

    market_clock = True

    def __init__(self, feed, n, path, bundle):
        self.feed, self.n, self.path, self.bundle = feed, n, path, bundle

    async def __aiter__(self):
        for i, ev in enumerate(self.feed.events()):
            if i == self.n:
                dump_bundle(self.bundle, self.path)
            yield ev


def _live(tmp_path, market, swap=None):
    path = dump_bundle(example_bundle("TEST"), tmp_path / "TEST.json")
    r = LiveRunner(path, QuoterConfig(reload_check_interval_s=0.0, tick_size=TICK),
                   LiveConfig(refresh_s=1.0, fee_bps=1.0), market_clock=True, state_path=tmp_path / "TEST.state.json",
                   journal_path=tmp_path / "TEST.journal.jsonl")
    feed = ReplayFeed(market, 0)
    if swap is not None:
        feed = SwapAt(feed, swap[0], path, swap[1])
    summary = asyncio.run(r.run(feed, handle_signals=False))
    return summary, read_sessions(tmp_path / "TEST.journal.jsonl")[-1]


@pytest.fixture(scope="module")
def market():
    return _market()


@pytest.fixture(scope="module")
def session(market, tmp_path_factory):
    return _live(tmp_path_factory.mktemp("live"), market)


def _identical(doc):
    c = doc["checks"]
    assert c["market"]["identical"] and c["market"]["trades_live"] == c["market"]["trades_data"] > 300
    assert c["accounting"]["identical"] and c["exchange"]["identical"], c
    assert c["exchange"]["fills_journal"] == c["exchange"]["fills_resimulated"] > 50


def test_matched_settings_identical_checks_and_only_ladder_differences(session, market):
    summary, ses = session
    assert summary["fills"] == len(ses["fills"]) and ses["end"]["position"] == summary["position"]
    doc = reconcile(ses, market, ReplayConfig(latency_s=0.0, queue_model="none"))
    _identical(doc)
    table = {r["what"]: r for r in doc["table"]}
    assert table["fills"]["live"] == summary["fills"] and table["pnl"]["live"] == pytest.approx(summary["pnl"])
    assert table["fills"]["replay"] > 50 and table["position"]["replay"] is not None
    # no latency, no queue, no reload: what is left is the two quoters' decisions
    assert set(doc["by_reason"]) <= {"ladder", "size"} and doc["trades_matched"] > 0
    assert doc["notes"] == [] and doc["reloads"] == []
    assert sum(v["trades"] for v in doc["by_reason"].values()) == doc["trades_different"]


def test_injected_latency_and_queue_are_explained(session, market):
    _, ses = session
    lat = reconcile(ses, market, ReplayConfig(latency_s=0.4, queue_model="none"))
    _identical(lat)
    assert lat["by_reason"]["latency"]["trades"] > 0 and "unexplained" not in lat["by_reason"]
    rows = [r for r in lat["differences"] if r["reason"] == "latency"]
    # the replay refreshes every 1 s from the first quote (T0): each is within latency_s after one
    assert all((r["ts"] - T0) % 1.0 < 0.4 + 1e-9 for r in rows)
    q = reconcile(ses, market, ReplayConfig(latency_s=0.0, queue_model="factor", queue_factor=0.5, tick_size=TICK))
    _identical(q)
    assert q["by_reason"]["queue"]["trades"] > 0 and q["by_reason"]["queue"]["live_volume"] == 0
    assert "unexplained" not in q["by_reason"] and q["replay_config"]["queue_model"] == "factor"


def test_a_reload_during_the_session_is_explained(market, tmp_path):
    v2 = example_bundle("TEST").body()
    v2["model_version"] = "example-v2"
    v2["params"]["kappa"] = {r: {s: {"family": "gamma", "shape": 10.0, "rate": 10.0 / 0.05} for s in ("buy", "sell")}
                             for r in v2["params"]["kappa"]}
    from mm_runtime.bundle import PriorBundle

    n_events = 1200  # of ~2,250 (1,800 quotes, ~450 trades)
    _, ses = _live(tmp_path, market, swap=(n_events, with_checksum(PriorBundle.model_validate(v2))))
    assert len(ses["reloads"]) == 1 and ses["reloads"][0]["to"].startswith("example-v2")
    doc = reconcile(ses, market, ReplayConfig(latency_s=0.0, queue_model="none"))
    _identical(doc)
    t_reload = ses["reloads"][0]["ts"]
    assert doc["by_reason"]["reload"]["trades"] > 0 and "unexplained" not in doc["by_reason"]
    assert all(r["reason"] == "reload" for r in doc["differences"] if r["ts"] >= t_reload)
    assert all(r["reason"] != "reload" for r in doc["differences"] if r["ts"] < t_reload)
    assert any("switched to example-v2" in n for n in doc["notes"])
    # the fills after the reload name the new model version
    assert {f["model_version"] for f in ses["fills"] if f["ts"] > t_reload} == {"example-v2"}


def test_a_tampered_journal_fails_the_checks(session, market, tmp_path):
    _, ses = session
    bad = json.loads(json.dumps(ses))
    bad["fills"][5]["size"] *= 2
    doc = reconcile(bad, market, ReplayConfig(latency_s=0.0, queue_model="none"))
    assert not doc["checks"]["exchange"]["identical"] and not doc["checks"]["accounting"]["identical"]
    assert doc["checks"]["exchange"]["first_difference"]["index"] == 5
    j = tmp_path / "j.jsonl"
    j.write_text('{"kind": "fill", "ts": 1}\n')
    with pytest.raises(JournalError, match=r"j\.jsonl: line 1: a fill record before any session record"):
        read_sessions(j)
