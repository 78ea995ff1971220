"""The live quoter process: a :class:`~mm_runtime.Quoter` on a real-time feed
(``mmcal live``, DESIGN.md section 7).

Pieces:

* **Feeds** — async iterators of :class:`FeedEvent` (``ts`` s, best ``bid``/``ask``,
  an optional public ``trade = (price, aggressor side ±1, size)``):

  - :class:`ReplayFeed` replays recorded data (:class:`~mm_runtime.paper.replay.ReplayData`,
    built from any source by ``models.data.loaders.replay_data``) in time order,
    sleeping so that market time advances ``speed`` × wall time (``speed`` 0 or inf:
    as fast as possible).  Its clock is the market's: the quoter runs in replay mode
    (``now = ts``), so recorded data is not "stale".
  - :class:`HyperliquidFeed` is a websocket client of Hyperliquid's ``trades`` and
    ``l2Book`` channels (``websockets`` is imported lazily, so ``import mm_runtime``
    stays light).  Its clock is the wall clock: data older than ``max_age_s`` gives
    no quotes.  Reconnects with exponential backoff.

* :class:`LiveRunner` — owns a ``Quoter`` built from the bundle *path* (so the
  deployed file is watched: hot reload, keep-last-good), a paper account, the
  Prometheus exporter, the ladder log, and the state file.

**Orders, position and margin.**  The live process places no orders.  It keeps a
*paper* account (``LiveConfig.paper_fills``, default on): the ladder published at
each refresh rests until the next one; a public trade that trades through a
resting level fills it (a buy at ``p`` fills our asks priced strictly below ``p``,
a sell our bids strictly above; capped by the trade's size; no queue, no
latency — the simplest of :mod:`mm_runtime.paper.replay`'s rules).  The fills move
the paper position and cash (:func:`mm_runtime.paper.accounting.apply_fills`), are
passed to the quoter (its α learning from markouts) and feed back into the ladder
as position (skew, reduce-only) and free margin = equity − |q|·mid/leverage.  With
``paper_fills=False`` position stays 0 and the margin is the capital.

**State file** (JSON, :data:`STATE_KIND`, schema :data:`STATE_SCHEMA_VERSION`): the
quoter's estimator state (every :class:`~mm_runtime.estimators.EstimatorState` leaf
by name: shape + flat values; floats round-trip exactly), the paper account, the
asset and the bundle's ``model_version``; written atomically (temp file, fsync,
rename) on shutdown (SIGTERM/SIGINT, end of feed, ``duration``) and every
``LiveConfig.checkpoint_s`` while running (a crash loses at most that).  On start a state
file that is unreadable, truncated, of another kind/schema/asset, or whose shapes
differ from this quoter's (e.g. another ``pending_capacity`` or bucket layout) is
refused with one log line saying why, and the fresh state is used.  A state saved
under another bundle version is restored: the evidence is stored as sufficient
statistics *since the prior*, so it is re-based onto the current priors, as on a
hot reload.  If the feed's first event is earlier than the saved clock (a replay
restarted from its beginning), the clock parts (markout buffer, volatility bar,
Hawkes excitation, last mid/ts) are reset and the learned evidence and regime
probabilities kept.

**Logs** (JSON lines via :mod:`mm_runtime.logs`, logger ``mm_runtime.live``): one
``ladder`` record per refresh interval (the published ladder, the market, the
paper account), ``state restored`` / ``state file refused`` / ``state saved``,
``metrics served``, feed (re)connections, and ``stopped`` with a summary.

**Metrics** (beside the Quoter's, same registry, label ``asset``):
``mm_live_events_total``, ``mm_live_fills_total{side}``, ``mm_live_position``,
``mm_live_pnl`` (paper equity − capital), ``mm_live_state_restored`` (1 when the
state file was restored), ``mm_live_feed_reconnects_total``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import os
import signal
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import numpy as np
from prometheus_client import Counter, Gauge
from pydantic import BaseModel, ConfigDict, Field

from .bundle import atomic_write_bytes, parse_state_document
from .config import QuoterConfig
from .estimators import EstimatorState
from .paper.accounting import apply_fills, mark_to_market
from .params import Registry, RegistryStateError
from .quoter import BINDING_NAMES, REASONS, Quoter, Quotes, init

__all__ = [
    "FeedEvent",
    "ReplayFeed",
    "HyperliquidFeed",
    "HyperliquidParser",
    "LiveConfig",
    "LiveRunner",
    "StateFileError",
    "STATE_KIND",
    "STATE_SCHEMA_VERSION",
    "HYPERLIQUID_URL",
]

log = logging.getLogger("mm_runtime.live")

STATE_KIND = "mm_runtime.live_state"
STATE_SCHEMA_VERSION = 1
HYPERLIQUID_URL = "wss://api.hyperliquid.xyz/ws"

# the estimator leaves that follow the clock (reset when a feed restarts in the past)
_CLOCK_FIELDS = ("hawkes_excitation", "pending", "cursor", "bar_start", "bar_sumsq", "last_ts", "last_mid", "started")


# ----------------------------------------------------------------------------- events
class FeedEvent(NamedTuple):
    """One market event: ``ts`` seconds since the epoch (exchange time), the best
    bid/ask prevailing at it (0 = not known yet), and an optional public trade
    ``(price, aggressor side +1 buy / -1 sell, size)``."""

    ts: float
    bid: float
    ask: float
    trade: tuple[float, float, float] | None = None


# ----------------------------------------------------------------------------- replay feed
class ReplayFeed:
    """Recorded trades and best quotes (:class:`ReplayData`) merged in time order and
    paced so that market time runs ``speed`` × wall time (0 or inf: no sleeping).

    At equal timestamps a trade comes before the quote update (it traded against the
    book *before* that update); a trade carries the quote prevailing strictly before
    it, a quote update itself.  Trades before the first quote are skipped (no
    prevailing quote)."""

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
        # trades first at ties: kind 0 = trade, 1 = quote
        ts = np.concatenate([tt, qt])
        kind = np.concatenate([np.zeros(len(tt), np.int8), np.ones(len(qt), np.int8)])
        idx = np.concatenate([np.arange(len(tt)), np.arange(len(qt))])
        order = np.lexsort((kind, ts))
        bid = ask = 0.0
        for o in order:
            i = int(idx[o])
            if kind[o] == 1:
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
      ``{"px", "sz", "n"}`` (strings for px/sz), best first → one quote event.
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
        except (KeyError, IndexError, TypeError, ValueError):
            self.dropped["malformed"] += 1
            return []
        self.bid, self.ask = bid, ask
        self.last_ts = max(self.last_ts, ts)
        return [FeedEvent(ts, bid, ask)]

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


# ----------------------------------------------------------------------------- runner
Pos = Annotated[float, Field(gt=0)]


class LiveConfig(BaseModel):
    """How the live process runs (units: s, bps, quote currency)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    refresh_s: Pos = 1.0
    """A new ladder is published (rests, is logged) at most this often, feed time."""
    capital: Pos = 100_000.0
    """Paper account: starting cash; free margin = equity − |q|·mid/leverage."""
    fee_bps: float = 0.0
    """Paper fills pay this maker fee (bps of notional, negative = rebate)."""
    paper_fills: bool = True
    """Simulate fills of the resting ladder by trades through it (module docstring)."""
    params_log_s: Pos = 60.0
    """The "learned parameters" log record (every registry parameter's estimate, data
    weight and calibration) at most this often, wall clock."""
    checkpoint_s: Pos | None = 300.0
    """The state file is also saved this often (wall clock) while running, so that a
    crash (SIGKILL, power loss) loses at most this much learning; None = only at
    shutdown."""


class StateFileError(ValueError):
    """A state file that cannot be restored (the message names the file and why)."""


class LiveRunner:
    """Runs one asset's Quoter on a feed: hot reload of ``bundle_path``, metrics,
    ladder logs, paper account, state file (see the module docstring)."""

    def __init__(self, bundle_path: str | os.PathLike, config: QuoterConfig | None = None,
                 live: LiveConfig | None = None, *, state_path: str | os.PathLike | None = None,
                 params_state: str | os.PathLike | None = None,
                 market_clock: bool = False, logger: logging.Logger | None = None):
        self.live = live or LiveConfig()
        self.log = logger or log
        qc = (config or QuoterConfig()).model_copy(update={"fee_bps": self.live.fee_bps})  # one fee for both
        self.quoter = Quoter(Path(bundle_path), qc, replay=market_clock, metrics=None)
        self.asset = self.quoter.asset
        self.state_path = Path(state_path) if state_path is not None else None
        self.cash = self.live.capital
        self.position = 0.0
        K = self.quoter.config.n_levels
        self._rest_px = np.zeros((2, K))
        self._rest_sz = np.zeros((2, K))
        self._rest_depth = np.zeros((2, K))
        self._last_refresh = -math.inf
        self._last_mid = 0.0
        self._first_event = True
        self._stop: asyncio.Event | None = None
        self.restored = False
        self.n_fills = 0
        self.n_ladders = 0
        self.metrics_server = None
        reg = self.quoter.runtime_metrics.registry
        a = ["asset"]
        self.m_events = Counter("mm_live_events", "Market events processed by the live quoter", a, registry=reg)
        self.m_fills = Counter("mm_live_fills", "Paper fills of the resting ladder", a + ["side"], registry=reg)
        self.m_position = Gauge("mm_live_position", "Paper position, base units", a, registry=reg)
        self.m_pnl = Gauge("mm_live_pnl", "Paper equity minus capital, quote currency", a, registry=reg)
        self.m_restored = Gauge("mm_live_state_restored", "1 when the state file was restored at start", a,
                                registry=reg)
        self.m_reconnects = Counter("mm_live_feed_reconnects", "Feed reconnect attempts", a, registry=reg)
        self.m_restored.labels(asset=self.asset).set(0)
        # the learned-parameter registry (mm_runtime.params): priors from the deployed
        # bundle, evidence from a registry state (``mmcal params calibrate --state``),
        # published as mm_learned_<name> and logged every LiveConfig.params_log_s
        self.params_state = Path(params_state) if params_state is not None else None
        self.registry = self._registry()
        if self.quoter.metrics is not None:
            self.registry.publish(self.quoter.metrics)
        if self.state_path is not None and self.state_path.exists():
            self.restore_state(self.state_path)
        elif self.state_path is not None:
            self.log.info("no state file; starting fresh", extra={"fields": {
                "asset": self.asset, "path": str(self.state_path)}})

    def _registry(self) -> Registry:
        """The registry on the current bundle's priors, with the state file's evidence
        re-based onto them; a refused state file is logged and ignored."""
        reg = Registry.from_bundle(self.quoter.bundle)
        if self.params_state is not None and self.params_state.exists():
            try:
                reg.load(self.params_state, keep_priors=True)
            except RegistryStateError as exc:
                self.log.warning("learned-parameter state refused; priors only", extra={"fields": {
                    "asset": self.asset, "path": str(self.params_state), "error": str(exc)}})
        self._registry_version = self.quoter.bundle.model_version
        return reg

    # -- metrics -------------------------------------------------------------------------
    def serve_metrics(self, port: int = 0, addr: str = "127.0.0.1") -> int:
        """Start the exporter (loopback); returns the port (``port=0``: a free one)."""
        server, _ = self.quoter.serve_metrics(port, addr)
        self.metrics_server = server
        port = server.server_port
        self.log.info("metrics served", extra={"fields": {"asset": self.asset, "url": f"http://{addr}:{port}/metrics"}})
        return port

    # -- state ---------------------------------------------------------------------------
    def state_document(self) -> dict[str, Any]:
        est = self.quoter.state.est
        return {
            "schema_version": STATE_SCHEMA_VERSION,
            "kind": STATE_KIND,
            "asset": self.asset,
            "model_version": self.quoter.bundle.model_version,
            "bundle_schema_version": self.quoter.bundle.schema_version,
            "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "events": self.quoter.n_events,
            "account": {"cash": float(self.cash), "position": float(self.position)},
            "est": {name: {"shape": list(np.shape(v)), "data": np.asarray(v, dtype=np.float64).ravel().tolist()}
                    for name, v in zip(EstimatorState._fields, est, strict=True)},
        }

    def save_state(self, path: str | os.PathLike | None = None) -> Path:
        """Write the state file atomically (temp file, fsync, rename)."""
        target = Path(path) if path is not None else self.state_path
        if target is None:
            raise ValueError("save_state() needs a path: this runner has no state_path")
        data = json.dumps(self.state_document(), allow_nan=False) + "\n"
        p = atomic_write_bytes(target, data.encode("utf-8"))
        self.log.info("state saved", extra={"fields": {
            "asset": self.asset, "path": str(p), "model_version": self.quoter.bundle.model_version,
            "events": self.quoter.n_events, "evidence_sum": float(np.sum(self.quoter.state.est.evidence))}})
        return p

    def parse_state(self, raw: bytes, origin: str) -> tuple[EstimatorState, dict[str, Any]]:
        """The estimator state and the document of a state file; raises
        :class:`StateFileError` naming ``origin`` and the problem."""
        def fail(msg: str):
            raise StateFileError(f"{origin}: {msg}")

        doc = parse_state_document(raw, origin, kind=STATE_KIND, schema_version=STATE_SCHEMA_VERSION,
                                   error=StateFileError, what="live state file")
        if doc.get("asset") != self.asset:
            fail(f"asset: the state is for {doc.get('asset')!r}, this quoter quotes {self.asset!r}")
        est_doc = doc.get("est")
        if not isinstance(est_doc, dict) or set(est_doc) != set(EstimatorState._fields):
            fail(f"est: must be an object with exactly {list(EstimatorState._fields)}")
        fresh = self.quoter.state.est
        leaves = {}
        for name, cur in zip(EstimatorState._fields, fresh, strict=True):
            item = est_doc[name]
            if not isinstance(item, dict) or not isinstance(item.get("data"), list):
                fail(f"est.{name}: must be an object with 'shape' and 'data'")
            shape = tuple(np.shape(cur))
            if item.get("shape") != list(shape):
                fail(f"est.{name}: shape {item.get('shape')} does not match this quoter's {list(shape)} "
                     "(another bundle layout or quoter configuration)")
            try:
                arr = np.asarray(item["data"], dtype=np.float64)
            except (TypeError, ValueError):
                fail(f"est.{name}: data must be numbers")
            if arr.size != int(np.prod(shape, dtype=np.int64)) or not np.all(np.isfinite(arr)):
                fail(f"est.{name}: expected {int(np.prod(shape, dtype=np.int64))} finite numbers")
            leaves[name] = arr.reshape(shape)
        acct = doc.get("account", {"cash": self.live.capital, "position": 0.0})
        if not isinstance(acct, dict) or not all(
                isinstance(acct.get(k), int | float) and not isinstance(acct.get(k), bool)
                and math.isfinite(acct.get(k)) for k in ("cash", "position")):
            fail("account: must be an object with finite 'cash' and 'position'")
        return EstimatorState(**leaves), doc

    def restore_state(self, path: str | os.PathLike) -> bool:
        """Restore a state file; on any problem log why, keep the fresh state, return False."""
        p = Path(path)
        try:
            try:
                raw = p.read_bytes()
            except OSError as exc:
                raise StateFileError(f"{p}: cannot read: {exc.strerror or exc}") from None
            est, doc = self.parse_state(raw, str(p))
        except StateFileError as exc:
            self.log.warning("state file refused; starting fresh", extra={"fields": {
                "asset": self.asset, "path": str(p), "error": str(exc)}})
            return False
        self.quoter.state = self.quoter.state._replace(est=est)
        self.cash, self.position = float(doc["account"]["cash"]), float(doc["account"]["position"])
        self.restored = True
        self.m_restored.labels(asset=self.asset).set(1)
        self.m_position.labels(asset=self.asset).set(self.position)
        self.log.info("state restored", extra={"fields": {
            "asset": self.asset, "path": str(p), "saved_model_version": doc.get("model_version"),
            "model_version": self.quoter.bundle.model_version,
            "rebased": doc.get("model_version") != self.quoter.bundle.model_version,
            "saved_at": doc.get("saved_at"), "evidence_sum": float(np.sum(est.evidence)),
            "position": self.position, "cash": self.cash}})
        return True

    def _reset_clock_if_past(self, ts: float) -> None:
        """A feed starting before the restored clock (a replay restarted): reset the
        clock parts, keep the learned evidence and regime probabilities."""
        st = self.quoter.state
        if not (st.est.started > 0 and ts < float(st.est.last_ts)):
            return
        fresh = init(self.quoter.bundle, self.quoter.config).est
        est = st.est._replace(**{k: getattr(fresh, k) for k in _CLOCK_FIELDS})
        self.quoter.state = st._replace(est=est)
        self.log.info("feed starts before the saved clock; clock state reset, learning kept", extra={"fields": {
            "asset": self.asset, "first_ts": ts, "saved_last_ts": float(st.est.last_ts)}})

    # -- events --------------------------------------------------------------------------
    def _free_margin(self, mid: float) -> float:
        if not self.live.paper_fills:
            return self.live.capital
        eq = mark_to_market(self.cash, self.position, mid)
        return max(0.0, float(eq - abs(self.position) * mid / self.quoter.config.leverage))

    def _fills(self, trade: tuple[float, float, float]) -> list[tuple[float, float, float]]:
        """Trade-through fills of the resting ladder by one public trade."""
        px, side, size = trade
        row = 1 if side > 0 else 0  # a buy lifts our asks; a sell hits our bids
        prices, sizes = self._rest_px[row], self._rest_sz[row]
        through = (sizes > 0) & ((prices < px) if side > 0 else (prices > px))
        out = []
        left = size
        for k in (np.argsort(prices) if side > 0 else np.argsort(-prices)):
            if not through[k] or left <= 0:
                continue
            q = min(float(sizes[k]), left)
            left -= q
            sizes[k] -= q
            ours = 1.0 if row == 0 else -1.0  # our bid filled: we bought
            fprice = float(prices[k])
            self.cash, self.position = apply_fills(self.cash, self.position, fprice, ours * q,
                                                   self.live.fee_bps * 1e-4)
            self.n_fills += 1
            self.m_fills.labels(asset=self.asset, side="bid" if row == 0 else "ask").inc()
            out.append((fprice, ours, float(self._rest_depth[row, k])))
        return out

    def on_feed_event(self, ev: FeedEvent) -> Quotes | None:
        """One feed event: paper fills, the quoter step(s), and the refresh (publish +
        log) when due.  Returns the step's quotes (None when no market is known yet)."""
        if self._first_event:
            self._first_event = False
            self._reset_clock_if_past(ev.ts)
        self.m_events.labels(asset=self.asset).inc()
        if not (ev.bid > 0 and ev.ask > 0):
            return None
        mid = 0.5 * (ev.bid + ev.ask)
        self._last_mid = mid
        fills = self._fills(ev.trade) if (ev.trade is not None and self.live.paper_fills) else []
        now = ev.ts if self.quoter.replay else None
        q = self.quoter.on_event(ev.ts, bid=ev.bid, ask=ev.ask, position=self.position,
                                 margin_available=self._free_margin(mid),
                                 trade=(ev.trade[0], ev.trade[1]) if ev.trade is not None else None,
                                 fill=fills[0] if fills else None, now=now)
        for extra in fills[1:]:
            q = self.quoter.on_event(ev.ts, bid=ev.bid, ask=ev.ask, position=self.position,
                                     margin_available=self._free_margin(mid), fill=extra, now=now)
        if ev.ts - self._last_refresh >= self.live.refresh_s:
            self._last_refresh = ev.ts
            self._publish(ev, q)
        return q

    def _publish(self, ev: FeedEvent, q: Quotes) -> None:
        """The ladder rests until the next refresh (all cancelled when not valid); log it."""
        if bool(q.valid):
            self._rest_px, self._rest_sz = np.array(q.price), np.array(q.size)
            self._rest_depth = np.array(q.depth_bps)
        else:
            self._rest_sz = np.zeros_like(self._rest_sz)
        self.n_ladders += 1
        mid = 0.5 * (ev.bid + ev.ask)
        pnl = float(mark_to_market(self.cash, self.position, mid) - self.live.capital)
        self.m_position.labels(asset=self.asset).set(self.position)
        self.m_pnl.labels(asset=self.asset).set(pnl)
        if self.quoter.bundle.model_version != self._registry_version:  # a hot reload: new priors
            self.registry = self._registry()
        if self.quoter.metrics is not None:
            self.registry.publish(self.quoter.metrics)
        self.registry.maybe_log(time.monotonic(), self.live.params_log_s, logger=self.log)

        def side(i: int) -> list[list[float]]:
            return [[float(self._rest_px[i, k]), float(self._rest_sz[i, k])]
                    for k in range(self._rest_px.shape[1]) if self._rest_sz[i, k] > 0]

        self.log.info("ladder", extra={"fields": {
            "asset": self.asset, "event_ts": ev.ts, "model_version": self.quoter.bundle.model_version,
            "valid": bool(q.valid), "reason": REASONS[int(q.reason)], "mid": mid, "bid_px": ev.bid,
            "ask_px": ev.ask, "bids": side(0), "asks": side(1),
            "binding": {s: BINDING_NAMES[int(b)] for s, b in zip(("bid", "ask"), q.binding, strict=True)},
            "half_spread_bps": [float(x) for x in q.half_spread_bps], "position": self.position, "pnl": pnl,
            "fills": self.n_fills}})

    # -- loop ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask :meth:`run` to stop (thread-unsafe; from the event loop or a signal handler)."""
        if self._stop is not None:
            self._stop.set()

    def warm_up(self) -> float:
        """Compile the quoter's step before the feed starts (a throwaway Quoter with the
        same state layout: the compiled step is shared), so the first market events are
        not held up by compilation.  Returns the seconds it took."""
        t0 = time.perf_counter()
        scratch = Quoter(self.quoter.bundle, self.quoter.config, replay=True, metrics=False,
                         logger=logging.getLogger("mm_runtime.live.warm_up"))
        scratch.state = self.quoter.state  # the same layout (e.g. a restored state's)
        scratch.on_event(1.0, 100.0, bid=99.99, ask=100.01, margin_available=1_000.0)
        return time.perf_counter() - t0

    async def _consume(self, feed) -> None:
        async for ev in feed:
            self.on_feed_event(ev)
            if self._stop.is_set():
                return

    async def _heartbeat(self) -> None:
        """Check the bundle file even while the feed is quiet, and save the state every
        ``checkpoint_s`` (a failed save is logged and retried at the next one: the
        previous file stays, the write being atomic)."""
        every = self.live.checkpoint_s
        last = time.monotonic()
        while True:
            await asyncio.sleep(max(self.quoter.config.reload_check_interval_s, 0.05))
            self.quoter._maybe_reload()
            if self.state_path is not None and every is not None and time.monotonic() - last >= every:
                last = time.monotonic()
                try:
                    self.save_state()
                except (OSError, ValueError) as e:
                    self.log.error("state checkpoint failed", extra={"fields": {
                        "asset": self.asset, "path": str(self.state_path), "error": str(e)}})

    async def run(self, feed, duration_s: float | None = None, *, handle_signals: bool = True) -> dict[str, Any]:
        """Consume ``feed`` until it ends, ``duration_s`` wall seconds pass, or SIGTERM/SIGINT
        (``handle_signals``) or :meth:`stop`; then save the state (if a state path is set)
        and return a summary."""
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        if hasattr(feed, "on_reconnect") and feed.on_reconnect is None:
            feed.on_reconnect = lambda: self.m_reconnects.labels(asset=self.asset).inc()
        installed = []
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, self._on_signal, sig)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
                    pass
        compile_s = self.warm_up()
        self.log.info("live quoter started", extra={"fields": {
            "asset": self.asset, "model_version": self.quoter.bundle.model_version,
            "feed": type(feed).__name__, "restored": self.restored, "duration_s": duration_s,
            "compile_s": round(compile_s, 3)}})
        t0 = time.monotonic()
        consume = asyncio.create_task(self._consume(feed))
        stopper = asyncio.create_task(self._stop.wait())
        beat = asyncio.create_task(self._heartbeat())
        reason = "feed ended"
        error: BaseException | None = None
        try:
            done, _ = await asyncio.wait({consume, stopper}, timeout=duration_s,
                                         return_when=asyncio.FIRST_COMPLETED)
            if consume in done:
                error = consume.exception()
                reason = "feed failed" if error is not None else "feed ended"
            elif stopper in done:
                reason = self._stop_reason
            else:
                reason = "duration reached"
        finally:
            for t in (consume, stopper, beat):
                t.cancel()
            await asyncio.gather(consume, stopper, beat, return_exceptions=True)
            for sig in installed:
                loop.remove_signal_handler(sig)
            if self.quoter.last_quotes is not None:
                self.quoter.update_metrics()
            if self.state_path is not None:
                self.save_state()
        summary = {
            "asset": self.asset, "stopped": reason, "model_version": self.quoter.bundle.model_version,
            "events": self.quoter.n_events, "ladders": self.n_ladders, "fills": self.n_fills,
            "position": self.position,
            "pnl": float(mark_to_market(self.cash, self.position, self._last_mid) - self.live.capital)
            if self._last_mid > 0 else 0.0,
            "restored": self.restored, "state": str(self.state_path) if self.state_path else None,
            "seconds": time.monotonic() - t0,
        }
        self.log.info("stopped", extra={"fields": summary})
        if error is not None:
            raise error
        return summary

    _stop_reason = "stopped"

    def _on_signal(self, sig) -> None:
        self._stop_reason = f"signal {signal.Signals(sig).name}"
        self.log.info("signal received; stopping", extra={"fields": {"asset": self.asset,
                                                                    "signal": signal.Signals(sig).name}})
        self.stop()
