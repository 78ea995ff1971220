"""The live runner: one asset's :class:`~mm_runtime.Quoter` on a feed, with hot
reload of the deployed bundle, a paper account filled by trades through the
resting ladder, Prometheus metrics, JSON ladder logs, the learned-parameter
registry, the kill switch (:mod:`mm_runtime.guards`: saved with the state, reset by
the reset file) and a state file checkpointed while running (``mmcal live``).
Units: s, bps, quote currency.

Paper fills, margin, logs and metrics: docs/runtime/live.md; the kill switch:
docs/runtime/guards.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from prometheus_client import Counter, Gauge
from pydantic import BaseModel, ConfigDict, Field

from ..config import QuoterConfig
from ..estimators import EstimatorState, without_alpha_evidence
from ..bundle import lineage
from ..guards import GuardConfig, GuardStateError, KillSwitch, resolve_limits
from ..paper.accounting import apply_fills, mark_to_market, trade_through
from ..params import Registry, RegistryStateError
from ..quoter import BINDING_NAMES, REASONS, Quoter, Quotes, init
from . import state as state_file
from .feeds import FeedEvent
from .journal import Journal
from .state import StateFileError

__all__ = ["LiveConfig", "LiveRunner", "reset_path_for"]

log = logging.getLogger("mm_runtime.live")

Pos = Annotated[float, Field(gt=0)]


def reset_path_for(state_path: str | os.PathLike) -> Path:
    """The reset file the live process watches: ``<state file>.reset`` beside it."""
    p = Path(state_path)
    return p.with_name(p.name + ".reset")


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
    """Simulate fills of the resting ladder by trades through it (docs/runtime/live.md)."""
    queue_fills: bool = False
    """Paper fills also at our own price, when a print reaches our place in the queue
    as the quoter estimates it from the feed's L2 snapshots and prints (tick ladder
    only; docs/runtime/queue_live.md).  Off by default: the session reconciliation
    (``mmcal paper --reconcile``) re-runs the trade-through rule."""
    params_log_s: Pos = 60.0
    """The "learned parameters" log record (every registry parameter's estimate, data
    weight and calibration) at most this often, wall clock."""
    checkpoint_s: Pos | None = 300.0
    """The state file is also saved this often (wall clock) while running, so that a
    crash (SIGKILL, power loss) loses at most this much learning; None = only at
    shutdown."""


class LiveRunner:
    """Runs one asset's Quoter on a feed: hot reload of ``bundle_path``, metrics,
    ladder logs, paper account, state file (docs/runtime/live.md). A state file at
    ``state_path`` that cannot be restored raises :class:`StateFileError`; with
    ``fresh_state`` it is moved aside and the quoter starts fresh."""

    def __init__(self, bundle_path: str | os.PathLike, config: QuoterConfig | None = None,
                 live: LiveConfig | None = None, *, state_path: str | os.PathLike | None = None,
                 params_state: str | os.PathLike | None = None, fresh_state: bool = False,
                 market_clock: bool = False, logger: logging.Logger | None = None,
                 guards: GuardConfig | None = None, bundle_key: bytes | None = None,
                 journal_path: str | os.PathLike | None = None):
        self.live = live or LiveConfig()
        self.log = logger or log
        qc = (config or QuoterConfig()).model_copy(update={"fee_bps": self.live.fee_bps})  # one fee for both
        # bundle_key: every bundle (at start, at each hot reload) needs its signature (mm_runtime.signing)
        self.quoter = Quoter(Path(bundle_path), qc, replay=market_clock, metrics=None, bundle_key=bundle_key)
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
        self._last_ts = 0.0
        self._first_event = True
        self._stop: asyncio.Event | None = None
        self.restored = False
        self.n_fills = 0
        self.n_ladders = 0
        self.n_trades = 0  # public trades processed (the journal's trade index)
        # the session journal (fills, ladders, reloads with feed times: mm_runtime.live.journal)
        self.journal_path = Path(journal_path) if journal_path is not None else None
        self.journal: Journal | None = None
        self._journal_checksum = ""
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
        # the kill switch (mm_runtime.guards): limits resolved once, its latched state
        # saved with the state file; the reset file beside the state re-arms it
        self.guard_config = guards or GuardConfig()
        self.kill = KillSwitch(self._guard_limits(), asset=self.asset, config=self.guard_config, logger=self.log,
                               metrics=reg)
        self.reset_path = reset_path_for(self.state_path) if self.state_path is not None else None
        self.log.info("kill switch armed", extra={"fields": {
            "asset": self.asset, "enabled": self.kill.enabled, "reset_file": str(self.reset_path),
            "limits": {g: lim._asdict() for g, lim in self.kill.limits.items()}}})
        if self.state_path is not None and (self.state_path.exists() or self.state_path.is_symlink()):
            self.restore_state(self.state_path, fresh_if_refused=fresh_state)
        elif self.state_path is not None:
            self.log.info("no state file; starting fresh", extra={"fields": {
                "asset": self.asset, "path": str(self.state_path)}})
        self.poll_reset()

    def _guard_limits(self):
        """The kill switch's limits on the current bundle and registry (guards.md)."""
        return resolve_limits(self.guard_config, account=self.live.capital, quoter_config=self.quoter.config,
                              bundle=self.quoter.bundle, registry=self.registry)

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
        # the registry drives the ladder's γ, spread floor, depth ratio and toxic-hour
        # multiplier; the step's α/κ learning is reported into it (one learner)
        self.quoter.registry = reg
        self.quoter.refresh_learned()
        return reg

    # -- metrics -------------------------------------------------------------------------
    def serve_metrics(self, port: int = 0, addr: str = "127.0.0.1") -> int:
        """Start the exporter on ``addr`` (loopback by default; ``mmcal live --metrics-addr``
        for a Prometheus server elsewhere); returns the port (``port=0``: a free one)."""
        server, _ = self.quoter.serve_metrics(port, addr)
        self.metrics_server = server
        port = server.server_port
        self.log.info("metrics served", extra={"fields": {"asset": self.asset, "url": f"http://{addr}:{port}/metrics"}})
        return port

    # -- state ---------------------------------------------------------------------------
    def state_document(self) -> dict[str, Any]:
        """The state document (:func:`mm_runtime.live.state.state_document`) with the
        kill switch's latched state under ``guards``."""
        doc = state_file.state_document(asset=self.asset, bundle=self.quoter.bundle, events=self.quoter.n_events,
                                        est=self.quoter.state.est, cash=self.cash, position=self.position)
        doc["guards"] = self.kill.to_dict()
        if self.quoter.fills_learner is not None:  # the tick ladder's cells learned from own fills
            doc["fills_learning"] = self.quoter.fills_learner.to_dict()
        if self.journal_path is not None:  # where this session's fills are (mmcal paper --reconcile STATE)
            doc["journal"] = str(self.journal_path)
        return doc

    def save_state(self, path: str | os.PathLike | None = None) -> Path:
        """Write the state file atomically (temp file, fsync, rename)."""
        target = Path(path) if path is not None else self.state_path
        if target is None:
            raise ValueError("save_state() needs a path: this runner has no state_path")
        p = state_file.write_state(target, self.state_document())
        self.log.info("state saved", extra={"fields": {
            "asset": self.asset, "path": str(p), "model_version": self.quoter.bundle.model_version,
            "events": self.quoter.n_events, "evidence_sum": float(np.sum(self.quoter.state.est.evidence))}})
        return p

    def parse_state(self, raw: bytes, origin: str) -> tuple[EstimatorState, dict[str, Any]]:
        """The estimator state and the document of a state file; raises
        :class:`StateFileError` naming ``origin`` and the problem."""
        return state_file.parse_state(raw, origin, asset=self.asset, fresh=self.quoter.state.est,
                                      capital=self.live.capital)

    def restore_state(self, path: str | os.PathLike, *, fresh_if_refused: bool = False) -> bool:
        """Restore a state file (returns True). One that cannot be restored raises
        :class:`StateFileError` naming the file and why: starting fresh would overwrite
        its evidence at the first save. With ``fresh_if_refused`` it is moved aside
        instead (:func:`mm_runtime.live.state.set_aside`: ``<name>.corrupt-<UTC time>``),
        logged, and the fresh state kept (returns False)."""
        p = Path(path)
        try:
            est, doc = self.parse_state(state_file.read_state(p), str(p))
            try:  # checked on a scratch switch first: a refused file changes nothing
                KillSwitch(self.kill.limits, asset=self.asset).restore(doc.get("guards"), str(p))
            except GuardStateError as e:
                raise StateFileError(str(e)) from None
            fills_doc = self._check_fills_learning(doc, str(p))
        except StateFileError as exc:
            if not fresh_if_refused:
                raise
            moved = state_file.set_aside(p)
            self.log.warning("state file refused; moved aside, starting fresh", extra={"fields": {
                "asset": self.asset, "path": str(p), "moved_to": str(moved), "error": str(exc)}})
            return False
        saved, now = state_file.saved_alpha_definition(doc), state_file.alpha_definition(self.quoter.bundle)
        if saved != now:  # α learned under another markout horizon or threshold: not this α
            est = without_alpha_evidence(est, len(self.quoter.bundle.bucket_keys))
            self.log.warning("state restored without its α evidence: learned under another definition of α",
                             extra={"fields": {"asset": self.asset, "path": str(p), "saved": saved, "bundle": now}})
        self.quoter.state = self.quoter.state._replace(est=est)
        if fills_doc is not None:
            self.quoter.fills_learner.load(fills_doc, str(p))
            self.quoter.apply_fills_learning()
        self.quoter.refresh_learned()  # the registry reports the restored learning
        self.cash, self.position = float(doc["account"]["cash"]), float(doc["account"]["position"])
        self.kill.restore(doc.get("guards"), str(p))
        if self.kill.tripped:
            self.log.error("kill switch restored tripped: no quotes until a manual reset", extra={"fields": {
                "asset": self.asset, "event": "kill_switch", "reset_file": str(self.reset_path), **self.kill.trip}})
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

    def _check_fills_learning(self, doc: dict[str, Any], origin: str) -> dict[str, Any] | None:
        """:func:`mm_runtime.live.state.check_fills_learning`, its warning logged."""
        saved, other = state_file.check_fills_learning(doc, self.quoter.fills_learner, origin)
        if other is not None:
            self.log.warning("state restored without its learned fills cells: saved for other cells", extra={
                "fields": {"asset": self.asset, "path": origin, "saved": other,
                           "now": list(self.quoter.fills_learner.shape)}})
        return saved

    def reset_fills_learning(self, by: str = "manual") -> bool:
        """Back to the bundle's fills cells: the learned evidence dropped (``mmcal live reset
        --fills-learning``).  Returns whether there was a learner."""
        fl = self.quoter.fills_learner
        if fl is None:
            return False
        fl.reset()
        self.quoter.place(self._last_ts, self._rest_px, self._rest_sz)  # the resting orders start afresh
        self.quoter.apply_fills_learning()
        self.log.info("fills learning reset", extra={"fields": {"asset": self.asset, "by": by}})
        return True

    def _reset_clock_if_past(self, ts: float) -> None:
        """A feed starting before the restored clock (a replay restarted): reset the
        clock parts, keep the learned evidence and regime probabilities."""
        st = self.quoter.state
        if not (st.est.started > 0 and ts < float(st.est.last_ts)):
            return
        fresh = init(self.quoter.bundle, self.quoter.config).est
        est = state_file.reset_clock(st.est, fresh)
        self.quoter.state = st._replace(est=est)
        self.log.info("feed starts before the saved clock; clock state reset, learning kept", extra={"fields": {
            "asset": self.asset, "first_ts": ts, "saved_last_ts": float(st.est.last_ts)}})

    # -- kill switch ---------------------------------------------------------------------
    def _now(self, ts: float) -> float:
        """The kill switch's clock: the feed's time on a market clock, else the wall clock."""
        return ts if self.quoter.replay else time.time()

    def _equity(self) -> float | None:
        """Cash + position · mid (None before the first mid)."""
        return float(mark_to_market(self.cash, self.position, self._last_mid)) if self._last_mid > 0 else None

    def pull_quotes(self) -> None:
        """Cancel every resting order now."""
        self._rest_sz = np.zeros_like(self._rest_sz)
        self.quoter.place(self._last_ts, self._rest_px, self._rest_sz)

    def reset_kill_switch(self, *, by: str = "manual", note: str | None = None, now: float | None = None) -> bool:
        """Re-arm the kill switch (:meth:`mm_runtime.guards.KillSwitch.reset`); returns
        whether it was tripped."""
        t = now
        if t is None:  # the switch's clock: the last market time on a market clock
            t = self.kill.last_update if self.quoter.replay and self.kill.last_update is not None else time.time()
        return self.kill.reset(t, equity=self._equity(), position=self.position, mid=self._last_mid, by=by,
                               note=note)

    def poll_reset(self) -> bool:
        """Apply the reset file when it exists (then remove it); returns whether it did.
        The file may hold a JSON object with ``by`` and ``note`` (``mmcal live reset``)."""
        p = self.reset_path
        if p is None or not p.exists():
            return False
        try:
            raw = p.read_text()
            req = json.loads(raw) if raw.strip() else {}
            req = req if isinstance(req, dict) else {}
        except (OSError, ValueError) as e:
            req = {"note": f"unreadable reset file ({e}); reset anyway"}
        try:
            p.unlink()
        except OSError as e:
            self.log.error("reset file cannot be removed; kill switch not reset", extra={"fields": {
                "asset": self.asset, "path": str(p), "error": str(e)}})
            return False
        by = str(req.get("by") or f"reset file {p}")
        self.reset_kill_switch(by=by, note=req.get("note"))
        if req.get("fills_learning"):
            self.reset_fills_learning(by=by)
        return True

    # -- events --------------------------------------------------------------------------
    def _free_margin(self, mid: float) -> float:
        if not self.live.paper_fills:
            return self.live.capital
        eq = mark_to_market(self.cash, self.position, mid)
        return max(0.0, float(eq - abs(self.position) * mid / self.quoter.config.leverage))

    def _fills(self, trade: tuple[float, float, float], ts: float = 0.0, mid: float = 0.0,
               reach: dict[int, float] | None = None) -> list[tuple[float, float, float]]:
        """Trade-through fills of the resting ladder by one public trade
        (:func:`mm_runtime.paper.accounting.trade_through`), then with ``queue_fills`` the
        orders at its price it reached (``reach``: :meth:`Quoter.on_print`), up to what
        reached them and what is left of the trade."""
        px, side, size = trade
        row = 1 if side > 0 else 0  # a buy lifts our asks; a sell hits our bids
        prices, sizes = self._rest_px[row], self._rest_sz[row]
        done = trade_through(prices, sizes, px, side, size)
        if reach and self.live.queue_fills and self.quoter.queue is not None:
            left = size - sum(q for _, q in done)
            for k in range(len(prices)):
                r = reach.get(self.quoter.queue.key(float(prices[k])), 0.0) if sizes[k] > 0 else 0.0
                q = min(float(sizes[k]), r, left)
                if q > 0 and abs(prices[k] - px) <= 1e-9 * px:
                    sizes[k] -= q
                    left -= q
                    done.append((k, q))
        out = []
        for k, q in done:
            ours = 1.0 if row == 0 else -1.0  # our bid filled: we bought
            fprice = float(prices[k])
            self.cash, self.position = apply_fills(self.cash, self.position, fprice, ours * q,
                                                   self.live.fee_bps * 1e-4)
            self.n_fills += 1
            self.m_fills.labels(asset=self.asset, side="bid" if row == 0 else "ask").inc()
            out.append((fprice, ours, float(self._rest_depth[row, k])))
            if self.journal is not None:
                self.journal.write("fill", ts=ts, trades=self.n_trades, side=ours, price=fprice, size=q, level=k,
                                   depth_bps=float(self._rest_depth[row, k]), trade_price=px, trade_size=size,
                                   fee=abs(fprice * q) * self.live.fee_bps * 1e-4, mid=mid,
                                   position=self.position, cash=self.cash,
                                   model_version=self.quoter.bundle.model_version)
        return out

    def _journal_start(self, ts: float) -> None:
        """The session record, at the first feed event (module :mod:`.journal`)."""
        if self.journal_path is None:
            return
        self.journal = Journal(self.journal_path)
        b = self.quoter.bundle
        self._journal_checksum = b.checksum
        self.journal.start(asset=self.asset, ts=ts, trades=0, cash=self.cash, position=self.position,
                           capital=self.live.capital, fee_bps=self.live.fee_bps, refresh_s=self.live.refresh_s,
                           paper_fills=self.live.paper_fills, restored=self.restored,
                           quoter=self.quoter.config.model_dump(mode="json"), lineage=lineage(b),
                           bundle=b.model_dump(mode="json"))

    def _journal_reload(self, ts: float) -> None:
        b = self.quoter.bundle
        if self.journal is None or b.checksum == self._journal_checksum:
            return
        self.journal.write("reload", ts=ts, trades=self.n_trades, to=lineage(b), model_version=b.model_version,
                           checksum=b.checksum, previous_checksum=self._journal_checksum)
        self._journal_checksum = b.checksum

    def on_feed_event(self, ev: FeedEvent) -> Quotes | None:
        """One feed event: paper fills, the quoter step(s), and the refresh (publish +
        log) when due.  Returns the step's quotes (None when no market is known yet)."""
        if self._first_event:
            self._first_event = False
            self._reset_clock_if_past(ev.ts)
            self._journal_start(ev.ts)
        self.m_events.labels(asset=self.asset).inc()
        now = self._now(ev.ts)
        if not self.kill.check_stale(now) and self._rest_sz.any():
            self.pull_quotes()
        self.kill.market_update(ev.ts)
        if not (ev.bid > 0 and ev.ask > 0):
            return None
        mid = 0.5 * (ev.bid + ev.ask)
        self._last_mid = mid
        self._last_ts = ev.ts
        if ev.book is not None:  # the live queue position (mm_runtime.queue_track)
            self.quoter.on_book(*ev.book)
        reach = self.quoter.on_print(*ev.trade) if ev.trade is not None else None
        fills = self._fills(ev.trade, ev.ts, mid, reach) if (ev.trade is not None and self.live.paper_fills) else []
        now = ev.ts if self.quoter.replay else None
        q = self.quoter.on_event(ev.ts, bid=ev.bid, ask=ev.ask, position=self.position,
                                 margin_available=self._free_margin(mid),
                                 trade=(ev.trade[0], ev.trade[1]) if ev.trade is not None else None,
                                 fill=fills[0] if fills else None, now=now)
        for extra in fills[1:]:
            q = self.quoter.on_event(ev.ts, bid=ev.bid, ask=ev.ask, position=self.position,
                                     margin_available=self._free_margin(mid), fill=extra, now=now)
        if ev.trade is not None:
            self.n_trades += 1
        self._journal_reload(ev.ts)
        if not self.kill.check(self._now(ev.ts), equity=self._equity(), position=self.position, mid=mid):
            self.pull_quotes()
        if ev.ts - self._last_refresh >= self.live.refresh_s:
            self._last_refresh = ev.ts
            self._publish(ev, q)
        return q

    def _publish(self, ev: FeedEvent, q: Quotes) -> None:
        """The ladder rests until the next refresh (all cancelled when not valid or the
        kill switch is tripped; placing it may trip the quote-rate guard); log it."""
        if (bool(q.valid) and not self.kill.tripped
                and self.kill.allow_quotes(self._now(ev.ts), int(np.sum(np.asarray(q.size) > 0)))):
            self._rest_px, self._rest_sz = np.array(q.price), np.array(q.size)
            self._rest_depth = np.array(q.depth_bps)
        else:
            self._rest_sz = np.zeros_like(self._rest_sz)
        self.quoter.place(ev.ts, self._rest_px, self._rest_sz)  # its queue places and fills learning
        self.n_ladders += 1
        mid = 0.5 * (ev.bid + ev.ask)
        if self.journal is not None:
            self.journal.write("ladder", ts=ev.ts, trades=self.n_trades, valid=bool(q.valid),
                               reason=REASONS[int(q.reason)], model_version=self.quoter.bundle.model_version,
                               px=self._rest_px.tolist(), sz=self._rest_sz.tolist(), depth=self._rest_depth.tolist())
        pnl = float(mark_to_market(self.cash, self.position, mid) - self.live.capital)
        self.m_position.labels(asset=self.asset).set(self.position)
        self.m_pnl.labels(asset=self.asset).set(pnl)
        in_use = self.quoter.ladder_params()  # the values this ladder was computed with
        if self.quoter.bundle.model_version != self._registry_version:  # a hot reload: new priors
            self.registry = self._registry()
            self.kill.set_limits(self._guard_limits())  # derived from the new bundle's sigma
        else:
            self.quoter.refresh_learned()  # for the next steps
        if self.quoter.metrics is not None:
            self.registry.publish(self.quoter.metrics)
        self.kill.publish()
        self.registry.maybe_log(time.monotonic(), self.live.params_log_s, logger=self.log)

        def side(i: int) -> list[list[float]]:
            return [[float(self._rest_px[i, k]), float(self._rest_sz[i, k])]
                    for k in range(self._rest_px.shape[1]) if self._rest_sz[i, k] > 0]

        self.log.info("ladder", extra={"fields": {
            "asset": self.asset, "event_ts": ev.ts, "model_version": self.quoter.bundle.model_version,
            "valid": bool(q.valid), "reason": REASONS[int(q.reason)],
            "kill_switch": self.kill.trip["reason"] if self.kill.tripped else None, "mid": mid, "bid_px": ev.bid,
            "ask_px": ev.ask, "bids": side(0), "asks": side(1),
            "binding": {s: BINDING_NAMES[int(b)] for s, b in zip(("bid", "ask"), q.binding, strict=True)},
            "half_spread_bps": [float(x) for x in q.half_spread_bps], "position": self.position, "pnl": pnl,
            "fills": self.n_fills, "cold_start": [bool(x) for x in q.cold_start],
            "spread_multiplier": float(q.spread_multiplier), "ladder_params": in_use}})

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
            self.poll_reset()
            if not self.quoter.replay and not self.kill.check_stale(time.time()):  # a silent feed
                self.pull_quotes()
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
            "kill_switch": {k: v for k, v in self.kill.status().items() if k in ("triggered", "reason", "at", "at_utc")},
            "seconds": time.monotonic() - t0,
        }
        if self.journal is not None:
            self.journal.write("end", ts=self._last_ts, trades=self.n_trades, cash=self.cash, position=self.position,
                               pnl=summary["pnl"], mid=self._last_mid, stopped=reason)
            self.journal.close()
            summary["journal"] = str(self.journal_path)
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
