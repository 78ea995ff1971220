"""Market feeds of the live quoter: async iterators of :class:`FeedEvent`.

:class:`ReplayFeed` replays recorded trades and quotes on the market's clock;
:class:`HyperliquidFeed` is a websocket client of Hyperliquid's ``trades`` and
``l2Book`` channels (``websockets`` imported lazily) on the wall clock, parsing
messages with :class:`HyperliquidParser`.  Times in seconds since the epoch.

Clocks, pacing and reconnection: docs/runtime/live.md.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import NamedTuple

import numpy as np

__all__ = ["FeedEvent", "ReplayFeed", "HyperliquidParser", "HyperliquidFeed", "HYPERLIQUID_URL"]

log = logging.getLogger("mm_runtime.live")

HYPERLIQUID_URL = "wss://api.hyperliquid.xyz/ws"


# ----------------------------------------------------------------------------- events
class FeedEvent(NamedTuple):
    """One market event: ``ts`` seconds since the epoch (exchange time), the best
    bid/ask prevailing at it (0 = not known yet), an optional public trade
    ``(price, aggressor side +1 buy / -1 sell, size)``, and on a book update the L2
    snapshot ``(bid_px, bid_sz, ask_px, ask_sz)`` (arrays, best first; None = not given):
    the quoter's live queue position (:mod:`mm_runtime.queue_track`)."""

    ts: float
    bid: float
    ask: float
    trade: tuple[float, float, float] | None = None
    book: tuple | None = None


# ----------------------------------------------------------------------------- replay feed
class ReplayFeed:
    """Recorded trades and best quotes (:class:`ReplayData`) merged in time order and
    paced so that market time runs ``speed`` × wall time (0 or inf: no sleeping).

    At equal timestamps a trade comes before the quote update (it traded against the
    book *before* that update); a trade carries the quote prevailing strictly before
    it, a quote update itself.  Trades before the first quote are skipped (no
    prevailing quote).  Data with L2 snapshots (``ReplayData.book_*``) add one event
    per snapshot carrying it (``FeedEvent.book``), after the trades and quotes of its
    time."""

    market_clock = True  # the quoter's "now" is the event's time

    def __init__(self, data, speed: float = 1.0):
        if not (speed >= 0):  # NaN too
            raise ValueError(f"speed: must be >= 0 (0 or inf = as fast as possible), got {speed}")
        self.data = data.check()
        self.speed = float(speed)
        self.asset = data.asset

    def events(self):
        """The merged events, unpaced (a plain iterator)."""
        d = self.data
        tt, qt = d.trade_ts, d.quote_ts
        bt = d.book_ts if d.has_book else np.zeros(0)
        # trades first at ties: kind 0 = trade, 1 = quote, 2 = book snapshot (it reflects
        # the trades at its time)
        ts = np.concatenate([tt, qt, bt])
        kind = np.concatenate([np.zeros(len(tt), np.int8), np.ones(len(qt), np.int8), np.full(len(bt), 2, np.int8)])
        idx = np.concatenate([np.arange(len(tt)), np.arange(len(qt)), np.arange(len(bt))])
        order = np.lexsort((kind, ts))
        bid = ask = 0.0
        for o in order:
            i = int(idx[o])
            if kind[o] == 2:
                if bid > 0:
                    yield FeedEvent(float(bt[i]), bid, ask, None, (d.book_bid_px[i], d.book_bid_sz[i],
                                                                   d.book_ask_px[i], d.book_ask_sz[i]))
            elif kind[o] == 1:
                bid, ask = float(d.bid[i]), float(d.ask[i])
                yield FeedEvent(float(qt[i]), bid, ask)
            elif bid > 0:
                yield FeedEvent(float(tt[i]), bid, ask,
                                (float(d.trade_price[i]), float(d.trade_side[i]), float(d.trade_size[i])))

    async def __aiter__(self) -> AsyncIterator[FeedEvent]:
        fast = self.speed == 0 or math.isinf(self.speed)
        t0_mkt = None
        t0_wall = time.monotonic()
        n = 0
        for ev in self.events():
            if t0_mkt is None:
                t0_mkt = ev.ts
            if fast:
                n += 1
                if n % 256 == 0:
                    await asyncio.sleep(0)  # let signals and the metrics heartbeat run
            else:
                delay = t0_wall + (ev.ts - t0_mkt) / self.speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    n += 1
                    if n % 256 == 0:
                        await asyncio.sleep(0)
            yield ev


# ----------------------------------------------------------------------------- Hyperliquid
class HyperliquidParser:
    """Hyperliquid websocket messages → :class:`FeedEvent` (stateful: the book).

    * ``l2Book``: ``{"coin", "time" (ms), "levels": [[bids…], [asks…]]}``, each level
      ``{"px", "sz", "n"}`` (strings for px/sz), best first → one quote event carrying
      the levels (``FeedEvent.book``).
    * ``trades``: a list of ``{"coin", "side" ("B" = the buyer was the aggressor,
      "A" = the seller), "px", "sz", "time" (ms), "tid", …}``.  Prints of one message
      with the same time and side are one market order (a sweep) → one event at the
      sweep's furthest price with the summed size.
    * Subscribing delivers a snapshot of *recent* trades (up to ~50 s old in the
      captures), and a reconnect delivers it again: trades before the first book,
      trades older than ``max_trade_lag_s`` behind the newest event seen, and trade
      ids seen before are dropped (counted in ``dropped``).
    * Other channels (``subscriptionResponse``, ``pong``, ``error``…) and other coins
      are ignored.
    """

    def __init__(self, coin: str, max_trade_lag_s: float = 2.0, tid_memory: int = 10_000):
        self.coin = coin
        self.max_trade_lag_s = float(max_trade_lag_s)
        self.bid = 0.0
        self.ask = 0.0
        self.last_ts = -math.inf
        self._tids: set = set()
        self._tid_order: collections.deque = collections.deque()
        self._tid_memory = tid_memory
        self.dropped = collections.Counter()

    def _seen(self, tid) -> bool:
        if tid is None:
            return False
        if tid in self._tids:
            return True
        self._tids.add(tid)
        self._tid_order.append(tid)
        if len(self._tid_order) > self._tid_memory:
            self._tids.discard(self._tid_order.popleft())
        return False

    def parse(self, msg: dict | str | bytes) -> list[FeedEvent]:
        if isinstance(msg, str | bytes):
            msg = json.loads(msg)
        if not isinstance(msg, dict):
            return []
        channel, data = msg.get("channel"), msg.get("data")
        if channel == "l2Book" and isinstance(data, dict):
            return self._book(data)
        if channel == "trades" and isinstance(data, list):
            return self._trades(data)
        return []

    def _book(self, d: dict) -> list[FeedEvent]:
        if d.get("coin") != self.coin:
            return []
        try:
            bids, asks = d["levels"][0], d["levels"][1]
            ts = float(d["time"]) / 1e3
            if not bids or not asks:
                self.dropped["book_one_sided"] += 1
                return []
            bid, ask = float(bids[0]["px"]), float(asks[0]["px"])
            book = tuple(np.array([float(lv[f]) for lv in side], dtype=float)
                         for side in (bids, asks) for f in ("px", "sz"))
        except (KeyError, IndexError, TypeError, ValueError):
            self.dropped["malformed"] += 1
            return []
        self.bid, self.ask = bid, ask
        self.last_ts = max(self.last_ts, ts)
        return [FeedEvent(ts, bid, ask, None, book)]

    def _trades(self, rows: list) -> list[FeedEvent]:
        sweeps: dict[tuple[float, float], list[float]] = {}
        for r in rows:
            if not isinstance(r, dict) or r.get("coin") != self.coin:
                continue
            try:
                side = {"B": 1.0, "A": -1.0}[r["side"]]
                px, sz, ts = float(r["px"]), float(r["sz"]), float(r["time"]) / 1e3
            except (KeyError, TypeError, ValueError):
                self.dropped["malformed"] += 1
                continue
            if self._seen(r.get("tid")):
                self.dropped["trade_duplicate"] += 1
                continue
            if self.bid <= 0:
                self.dropped["trade_before_book"] += 1
                continue
            if ts < self.last_ts - self.max_trade_lag_s:
                self.dropped["trade_too_old"] += 1
                continue
            k = (ts, side)
            if k in sweeps:
                s = sweeps[k]
                s[0] = max(s[0], px) if side > 0 else min(s[0], px)
                s[1] += sz
            else:
                sweeps[k] = [px, sz]
        out = []
        for (ts, side), (px, sz) in sorted(sweeps.items()):
            self.last_ts = max(self.last_ts, ts)
            out.append(FeedEvent(ts, self.bid, self.ask, (px, side, sz)))
        return out


class HyperliquidFeed:
    """Hyperliquid websocket client: subscribes to ``trades`` and ``l2Book`` of
    ``coin`` and yields :class:`FeedEvent` (see :class:`HyperliquidParser`).

    Reconnects after a dropped connection or a failed connect, with exponential
    backoff from ``backoff_s`` to ``max_backoff_s`` (reset once a message arrives);
    ``max_reconnects`` (None = forever) bounds the attempts in a row, after which the
    feed ends.  ``on_reconnect`` is called on each reconnect attempt."""

    market_clock = False  # the quoter's "now" is the wall clock

    def __init__(self, url: str = HYPERLIQUID_URL, coin: str = "BTC", *, backoff_s: float = 0.5,
                 max_backoff_s: float = 30.0, max_reconnects: int | None = None, open_timeout_s: float = 10.0,
                 max_trade_lag_s: float = 2.0, ping_interval_s: float = 30.0, on_reconnect=None):
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"url: expected ws:// or wss://, got {url!r}")
        self.url = url
        self.coin = coin
        self.asset = coin
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_reconnects = max_reconnects
        self.open_timeout_s = open_timeout_s
        self.ping_interval_s = ping_interval_s
        self.parser = HyperliquidParser(coin, max_trade_lag_s)
        self.on_reconnect = on_reconnect
        self.messages = 0

    async def _ping(self, ws) -> None:
        """Hyperliquid closes a connection it has sent nothing on for 60 s; an
        application-level ``{"method": "ping"}`` (answered by a ``pong`` message, ignored)
        every ``ping_interval_s`` keeps a quiet one open."""
        try:
            while True:
                await asyncio.sleep(self.ping_interval_s)
                await ws.send(json.dumps({"method": "ping"}))
        except Exception:  # noqa: BLE001 - the connection is going away: the reader sees why
            return

    def subscriptions(self) -> list[dict]:
        return [{"method": "subscribe", "subscription": {"type": t, "coin": self.coin}} for t in ("trades", "l2Book")]

    async def __aiter__(self) -> AsyncIterator[FeedEvent]:
        import websockets  # lazy: keeps `import mm_runtime` free of it
        from websockets.exceptions import WebSocketException

        failures = 0
        delay = self.backoff_s
        while True:
            try:
                async with websockets.connect(self.url, open_timeout=self.open_timeout_s,
                                              max_size=2**24) as ws:
                    log.info("feed connected", extra={"fields": {"url": self.url, "coin": self.coin}})
                    for sub in self.subscriptions():
                        await ws.send(json.dumps(sub))
                    pinger = asyncio.create_task(self._ping(ws))
                    try:
                        async for raw in ws:
                            failures, delay = 0, self.backoff_s
                            self.messages += 1
                            try:
                                events = self.parser.parse(raw)
                            except ValueError:
                                self.parser.dropped["malformed"] += 1
                                continue
                            for ev in events:
                                yield ev
                    finally:
                        pinger.cancel()
                reason = "closed by the server"
            except (OSError, asyncio.TimeoutError, WebSocketException) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            failures += 1
            if self.max_reconnects is not None and failures > self.max_reconnects:
                log.warning("feed ended", extra={"fields": {"url": self.url, "reason": reason,
                                                            "attempts": failures}})
                return
            log.warning("feed disconnected; reconnecting", extra={"fields": {
                "url": self.url, "reason": reason, "retry_in_s": delay}})
            if self.on_reconnect is not None:
                self.on_reconnect()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff_s)
