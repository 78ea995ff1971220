"""The live quoter: :class:`Quoter`, a thin stateful owner of one asset's state.

It runs the pure core (:mod:`mm_runtime.core`) through its packed low-latency form
(:mod:`mm_runtime.packed`), hot-reloads the bundle file, refreshes Prometheus
metrics and writes structured logs.  This module also re-exports the core, the packed
step and the quote reports (:mod:`mm_runtime.reports`) under their historical names::

    from mm_runtime.quoter import Quoter, init, step, batch_step, summarize, make_event, quote_once

Units and event conventions: :mod:`mm_runtime.core`.  The quote step's latency
engineering: docs/runtime/quote_step_latency.md.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .bundle import BundleError, PriorBundle, lineage
from .config import QuoterConfig
from .core import (
    BINDING_NAMES,
    REASON_ACCOUNT,
    REASON_MARKET,
    REASON_OK,
    REASON_SIGMA,
    REASON_STALE,
    REASON_TIMESTAMP,
    REASON_TRADE_FILL,
    REASONS,
    TRACE_COUNTS,
    MarketEvent,
    ObservationConflict,
    QuoterState,
    Quotes,
    RuntimeConfig,
    Summary,
    batch_step,
    fills_tau_s,
    init,
    make_event,
    resolve_config,
    stack_trees,
    step,
    summarize,
    with_ladder_values,
)
from .estimators import without_alpha_evidence
from .fills_learning import FillsLearner
from .metrics import AssetMetrics, RuntimeMetrics
from .packed import PackedStep, _Layout
from .params import Registry
from .queue_track import QueueTracker
from .params.online import LadderValue, ladder_values, step_evidence, toxic_hours
from .signing import load_verified_bundle, sig_path
from .reports import QuoteReport, ladder_rows, quote_once, quote_report
from .view import bundle_view
from .vocabulary import REGIMES, SIDES

__all__ = [
    "RuntimeConfig",
    "QuoterState",
    "MarketEvent",
    "Quotes",
    "REASONS",
    "REASON_OK",
    "REASON_TIMESTAMP",
    "REASON_MARKET",
    "REASON_STALE",
    "REASON_SIGMA",
    "REASON_ACCOUNT",
    "REASON_TRADE_FILL",
    "BINDING_NAMES",
    "TRACE_COUNTS",
    "ObservationConflict",
    "resolve_config",
    "init",
    "step",
    "batch_step",
    "summarize",
    "Summary",
    "make_event",
    "stack_trees",
    "PackedStep",
    "Quoter",
    "QuoteReport",
    "quote_once",
    "quote_report",
    "ladder_rows",
]

log = logging.getLogger("mm_runtime.quoter")


class Quoter:
    """Owns one asset's state; hot reload, metrics, structured logs, staleness.

    ``bundle`` is a :class:`PriorBundle` or a path (a path is watched: when its mtime
    changes the bundle is reloaded; a bundle that fails to load is refused and the
    last good one kept).  ``replay=True`` uses the event time as the clock (paper
    trading); otherwise ``now`` is the wall clock and data older than ``max_age_s``
    gives no quotes.  ``metrics``: a shared :class:`RuntimeMetrics`, ``None`` for a
    private registry, or ``False`` for none.  ``config``'s markout horizon and
    informed threshold default to the bundle's ``observation`` block; a config that
    contradicts it is refused (:class:`ObservationConflict`, also on a hot reload).
    ``registry``: the learned-parameter registry that drives γ, the spread floor, the
    depth spacing ratio and the toxic-hour multiplier once their tier is calibrated
    (:meth:`refresh_learned`; docs/runtime/params.md).
    """

    def __init__(
        self,
        bundle: PriorBundle | str | os.PathLike,
        config: QuoterConfig | None = None,
        *,
        replay: bool = False,
        metrics: RuntimeMetrics | None | bool = None,
        logger: logging.Logger | None = None,
        clock=time.time,
        bundle_key: bytes | None = None,
        registry: Registry | None = None,
    ):
        self.config = config or QuoterConfig()
        self._bundle_key = bundle_key  # set: a watched bundle needs a valid signature (mm_runtime.signing)
        self.registry = registry
        self.replay = replay
        self.clock = clock
        self.log = logger or log
        self.bundle_path: Path | None = None
        self._file_sig = None
        if isinstance(bundle, PriorBundle):
            self.bundle = bundle
        else:
            self.bundle_path = Path(bundle)
            self._file_sig = self._stat()
            self.bundle = load_verified_bundle(self.bundle_path, bundle_key)
        self.asset = self.bundle.asset
        state = self._with_learned(init(self.bundle, self.config))
        self._packed = PackedStep(state)
        self._vec = self._packed.pack(state)
        if metrics is False:
            self.metrics: AssetMetrics | None = None
            self.runtime_metrics = None
        else:
            self.runtime_metrics = metrics if isinstance(metrics, RuntimeMetrics) else RuntimeMetrics()
            self.metrics = self.runtime_metrics.for_asset(self.asset)
            self.metrics.set_bundle(self.bundle)
        self._last_reload_check = time.monotonic()
        self._last_metrics = -math.inf
        self._last_log = -math.inf
        self._last_status: tuple | None = None
        self.last_quotes: Quotes | None = None
        self.n_events = 0
        self._own_orders_init()

    # -- learned ladder values -----------------------------------------------------------
    def _resolve_learned(self) -> tuple:
        """Resolve the registry-driven ladder values (and their sources) now
        (:func:`mm_runtime.params.online.ladder_values`); returns what identifies them."""
        self.ladder_values: dict[str, LadderValue] = ladder_values(self.config, self.bundle, self.registry)
        self.toxic_hours = toxic_hours(self.config, self.registry)
        return ({k: (v.value, v.source) for k, v in self.ladder_values.items()}, self.toxic_hours)

    def _with_learned(self, state: QuoterState) -> QuoterState:
        """``state`` with the registry-driven ladder values resolved now."""
        self._resolve_learned()
        return self._apply_learned(state)

    def _apply_learned(self, state: QuoterState) -> QuoterState:
        return with_ladder_values(state, {k: v.value for k, v in self.ladder_values.items()},
                                  xi_follows_gamma=self.config.xi is None, toxic_hours=self.toxic_hours[0])

    def _state_np(self) -> QuoterState:
        """The current state as numpy arrays (a copy; cheaper than :attr:`state`)."""
        p = self._packed
        v = np.array(np.asarray(self._vec))
        cfg, prior = p.const_layout.unpack_np(v[p.const_slice])
        return QuoterState(cfg, prior, p.est_layout.unpack_np(v[p.est_slice]))

    def refresh_learned(self) -> bool:
        """Report the step's online learning into the registry
        (:meth:`Registry.set_online` of :func:`step_evidence`) and re-resolve the ladder
        values from it; the state is rewritten only when a value or its source changed.
        Returns whether it changed.  Without a registry nothing happens.  Measured: about
        3 ms per call, mostly the registry's calibration status (docs/runtime/params.md)."""
        if self.registry is None:
            return False
        self.registry.set_online(step_evidence(self._state_np()))
        before = ({k: (v.value, v.source) for k, v in self.ladder_values.items()}, self.toxic_hours)
        after = self._resolve_learned()
        if after == before:
            return False
        self.state = self._apply_learned(self.state)
        self.log.info("ladder values changed", extra={"fields": {
            "asset": self.asset, "ladder_params": self.ladder_params(), "previous": {
                k: {"value": v, "source": s} for k, (v, s) in before[0].items()}}})
        return True

    def ladder_params(self) -> dict[str, Any]:
        """The registry-driven ladder values in use with their sources (for logs and
        reports): ``{name: {"value", "source", "param", "detail"}}`` and ``toxic_hours``."""
        out: dict[str, Any] = {k: v.to_dict() for k, v in self.ladder_values.items()}
        out["toxic_hours"] = {"value": list(self.toxic_hours[0]), "source": self.toxic_hours[1]}
        return out

    # -- state -------------------------------------------------------------------------
    @property
    def effective_config(self) -> QuoterConfig:
        """``config`` with the bundle's markout horizon and informed threshold filled
        in (:func:`mm_runtime.core.resolve_config`): what the step runs with."""
        return resolve_config(self.bundle, self.config)

    @property
    def state(self) -> QuoterState:
        """The current state as a pytree (a copy)."""
        return self._packed.unpack(self._vec)

    @state.setter
    def state(self, value: QuoterState) -> None:
        if _Layout(value).shapes != _Layout(self.state).shapes:
            self._packed = PackedStep(value)
        self._vec = self._packed.pack(value)

    # -- own orders: live queue position and learning from fills (tick ladder only) -----
    def _own_orders_init(self, keep: FillsLearner | None = None) -> None:
        """The queue tracker and the fills learner of the tick ladder (None for the depth
        ladder); ``keep``: a learner whose evidence moves onto the new priors (same cells)."""
        self.queue: QueueTracker | None = None
        self.fills_learner: FillsLearner | None = None
        self._fills_version = -1
        if self.queue_levels == 0:
            return
        view = bundle_view(self.bundle)
        cfg = self.effective_config
        self.queue = QueueTracker(self.queue_levels, cfg.tick_size, view.observation.queue_power)
        if not cfg.learn:
            return
        self.fills_learner = FillsLearner(view.fills, view.sigma_bps, cfg.fills_half_life_s,
                                          tau_s=fills_tau_s(cfg, view.observation),
                                          horizon_s=cfg.markout_horizon_s, start=cfg.fills_ladder_start)
        if keep is not None and keep.shape == self.fills_learner.shape:
            self.fills_learner.load(keep.to_dict(), "reload")
        self.apply_fills_learning()

    def _regime_probs(self) -> np.ndarray:
        q = self.last_quotes
        return np.asarray(q.regime_probs) if q is not None else np.asarray(self._state_np().est.regime_probs)

    def on_book(self, bid_px, bid_sz, ask_px, ask_sz) -> None:
        """An L2 snapshot (levels best first, sizes in base units): the queue ahead of the
        resting orders moves (:mod:`mm_runtime.queue_track`); the next steps read it."""
        if self.queue is not None:
            self.queue.on_book(bid_px, bid_sz, ask_px, ask_sz)

    def on_print(self, price: float, side: float, size: float) -> dict[int, float]:
        """A public print (aggressor ``side`` ±1): the queues at its price move; returns
        ``{tick: reach}`` of our orders it reached (:meth:`QueueTracker.on_print`)."""
        return self.queue.on_print(price, side, size) if self.queue is not None else {}

    def place(self, ts: float, prices, sizes, queue_ahead=None) -> None:
        """The ladder that now rests (``(2, K)`` prices and sizes; ``queue_ahead`` (2, K),
        median trades: a replay's own queue estimate of each new order): the tracker keeps the
        place of prices already resting, the learner accrues exposure up to ``ts`` and the
        learned cells are written into the step's state (:meth:`apply_fills_learning`)."""
        if self.queue is None:
            return
        placed = self.queue.place(prices, sizes, ts, queue_ahead)
        if self.fills_learner is not None:
            orders = [(row, k, o.level, o.queue0, kept) for row, k, kept in placed
                      for o in (self.queue.orders[row][k],)]
            self.fills_learner.place(ts, self._regime_probs(), orders)
            self.apply_fills_learning()

    def apply_fills_learning(self) -> bool:
        """Write the learned cells into the step's state when the evidence changed since
        the last write (the step is not retraced: same shapes).  Returns whether it wrote."""
        fl = self.fills_learner
        if fl is None or fl.version == self._fills_version:
            return False
        self._vec = self._packed.with_fills(self._vec, fl.arrays())
        self._fills_version = fl.version
        return True

    def _learn(self, ts: float, mid: float, fill) -> None:
        fl = self.fills_learner
        if fill is not None and self.queue is not None:
            row = 0 if fill[1] > 0 else 1  # our bid filled: we bought
            fl.fill(ts, self._regime_probs(), row, self.queue.key(fill[0]), fill[1], mid)
        if fl.pending and mid > 0:
            fl.on_mid(ts, mid)

    # -- events ------------------------------------------------------------------------
    @property
    def queue_levels(self) -> int:
        """Levels of the tick ladder's queue input (K+1 of the bundle's fills model; 0 for
        the depth ladder, which reads none)."""
        return self._packed.queue_width

    @property
    def one_kernel_step(self) -> bool:
        """Whether the step runs as one XLA kernel (low-latency mode; see
        :class:`PackedStep`)."""
        return self._packed.one_kernel

    def on_event(
        self,
        ts: float,
        mid: float = 0.0,
        *,
        bid: float = 0.0,
        ask: float = 0.0,
        sigma_bps: float = 0.0,
        position: float = 0.0,
        margin_available: float = 0.0,
        trade: tuple[float, float] | None = None,
        fill: tuple[float, float] | tuple[float, float, float] | None = None,
        now: float | None = None,
        queue_ahead=None,
    ) -> Quotes:
        """Process one event and return the quotes (numpy arrays).

        ``queue_ahead``: ``(2, W)`` queue ahead l ticks behind the touch per side in
        median trades, read by the tick ladder (bundles with a fills model); None = the
        quoter's own live estimate (:meth:`on_book`, :meth:`on_print`, :meth:`place`;
        unknown before the first snapshot); NaN = unknown (the longest-queue bucket).

        ``ts`` in seconds; ``trade=(price, aggressor_side)``;
        ``fill=(price, our_side[, quoted_depth_bps])``; ``now`` defaults to the wall
        clock (``ts`` in replay mode).
        """
        t0 = time.perf_counter()
        self._maybe_reload()
        if now is None:
            now = ts if self.replay else self.clock()
        ev = (
            ts,
            now,
            mid,
            bid,
            ask,
            sigma_bps,
            position,
            margin_available,
            trade is not None,
            trade[0] if trade is not None else 0.0,
            trade[1] if trade is not None else 0.0,
            fill is not None,
            fill[0] if fill is not None else 0.0,
            fill[1] if fill is not None else 0.0,
            (fill[2] if len(fill) > 2 else -1.0) if fill is not None else -1.0,
        )
        if self.queue is not None:
            if queue_ahead is None:
                queue_ahead = self.queue.input
            elif not self.queue.has_snapshot and bid > 0 and ask > 0:  # no snapshots (a replay): the touch
                self.queue.best = (self.queue.key(bid), self.queue.key(ask))
            if self.fills_learner is not None:
                self._learn(ts, mid if mid > 0 else 0.5 * (bid + ask), fill)
        self._vec = self._packed(self._vec, self._packed.vector(ev, queue_ahead))
        quotes = self._packed.quotes(self._vec)
        self.last_quotes = quotes
        self.n_events += 1
        if self.metrics is not None:
            self.metrics.latency.observe(time.perf_counter() - t0)
        self._after_step(quotes)
        return quotes

    # -- reload ------------------------------------------------------------------------
    def _stat(self):
        try:
            st = os.stat(self.bundle_path)
        except OSError:
            return None
        try:  # a new signature file (mm_runtime.signing) is a change too
            sg = os.stat(sig_path(self.bundle_path))
            sig = (sg.st_mtime_ns, sg.st_size, sg.st_ino)
        except OSError:
            sig = None
        return (st.st_mtime_ns, st.st_size, st.st_ino, sig)

    def _maybe_reload(self) -> None:
        if self.bundle_path is None:
            return
        t = time.monotonic()
        if t - self._last_reload_check < self.config.reload_check_interval_s:
            return
        self._last_reload_check = t
        sig = self._stat()
        if sig is not None and sig != self._file_sig:
            self._file_sig = sig
            self.reload()

    def reload(self, path: str | os.PathLike | None = None) -> bool:
        """Load a new bundle (default: the watched path).  On any failure the last good
        bundle stays in use and False is returned (logged, counted in metrics)."""
        target = Path(path) if path is not None else self.bundle_path
        if target is None:
            raise ValueError("reload() needs a path: this Quoter was built from an in-memory bundle")
        try:
            new = load_verified_bundle(target, self._bundle_key)
            if new.asset != self.asset:
                raise BundleError(f"{target}: asset: bundle is for {new.asset!r}, this quoter quotes {self.asset!r}")
            try:
                resolve_config(new, self.config)
            except ObservationConflict as exc:
                raise ObservationConflict(f"{target}: {exc}") from None
        except BundleError as exc:
            self.log.error("bundle reload refused; keeping the last good bundle",
                           extra={"fields": {"asset": self.asset, "path": str(target), "error": str(exc),
                                             "model_version": self.bundle.model_version}})
            if self.metrics is not None:
                self.metrics.reload_failed()
            return False
        if new.checksum != self.bundle.checksum:  # e.g. only its .sig changed: nothing to swap
            self.install_bundle(new)
        if path is not None and self.bundle_path is not None and Path(path) == self.bundle_path:
            self._file_sig = self._stat()
        return True

    def install_bundle(self, new: PriorBundle) -> None:
        """Swap in ``new`` priors; learned evidence is re-based onto them when
        ``reload_keeps_learning`` and the shapes match, else reset.  The α evidence is
        reset when the new bundle defines α differently (another markout horizon or
        informed threshold in its ``observation`` block).  Raises
        :class:`ObservationConflict` when ``new`` contradicts this quoter's config."""
        old_state = self.state
        old_bundle, self.bundle = self.bundle, new
        try:
            state = self._with_learned(init(new, self.config))
        finally:
            self.bundle = old_bundle
        same = jax.tree.map(np.shape, state.prior) == jax.tree.map(np.shape, old_state.prior)
        old_view, new_view = bundle_view(self.bundle), bundle_view(new)
        old_obs, new_obs = old_view.observation, new_view.observation
        same_alpha = (old_obs.markout_horizon_s, old_obs.informed_threshold_bps) == (
            new_obs.markout_horizon_s, new_obs.informed_threshold_bps)
        if same:
            # keep the filter, Hawkes, markout buffer and clock; the learned evidence
            # (sufficient statistics) is re-based onto the new priors, or dropped
            est = old_state.est
            if not self.config.reload_keeps_learning:
                est = est._replace(evidence=state.est.evidence)
            elif not same_alpha:  # α learned under another definition: drop its columns
                est = without_alpha_evidence(est, int(np.shape(state.prior.bucket_edges)[0]))
            if old_view.hawkes_kernel_beta.shape != new_view.hawkes_kernel_beta.shape:
                # another number of kernel components: the rows mean other time scales, restart at 0
                est = est._replace(hawkes_excitation=state.est.hawkes_excitation)
            state = state._replace(est=est)
        self.state = state
        old_version, old_lineage = self.bundle.model_version, lineage(self.bundle)
        self.bundle = new
        old_learner = self.fills_learner
        self._own_orders_init(keep=old_learner if (same and self.config.reload_keeps_learning) else None)
        if self.metrics is not None:
            self.metrics.set_bundle(new)
        self.log.info("bundle reloaded", extra={"fields": {
            "asset": self.asset, "change": f"{old_lineage} → {lineage(new)}",
            "model_version": new.model_version, "previous_model_version": old_version,
            "version": new.mlflow.version if new.mlflow else None,
            "run_id": new.mlflow.run_id if new.mlflow else None,
            "kept_learning": bool(same and self.config.reload_keeps_learning),
            "alpha_learning_reset": bool(same and self.config.reload_keeps_learning and not same_alpha)}})

    # -- metrics and logs --------------------------------------------------------------
    def _after_step(self, q: Quotes) -> None:
        t = time.monotonic()
        if self.metrics is not None and t - self._last_metrics >= self.config.metrics_interval_s:
            self._last_metrics = t
            self.update_metrics(q)
        status = (bool(q.valid), int(q.reason), tuple(int(b) for b in q.binding), int(np.argmax(q.regime_probs)))
        if status != self._last_status or t - self._last_log >= self.config.log_interval_s:
            self._last_log = t
            self._last_status = status
            self.log.info("quote status", extra={"fields": self.status_fields(q)})

    def status_fields(self, q: Quotes) -> dict[str, Any]:
        return {
            "asset": self.asset,
            "valid": bool(q.valid),
            "reason": REASONS[int(q.reason)],
            "binding": {s: BINDING_NAMES[int(b)] for s, b in zip(("bid", "ask"), q.binding, strict=True)},
            "reduce_only": bool(q.reduce_only),
            "margin_used": float(q.margin_used),
            "kelly_stochastic": self.config.use_kelly_stochastic,
            "kelly_fraction": float(q.kelly_fraction),
            "regime": REGIMES[int(np.argmax(q.regime_probs))],
            "regime_probs": {r: round(float(p), 6) for r, p in zip(REGIMES, q.regime_probs, strict=True)},
            "sigma_bps": float(q.sigma_bps),
            "half_spread_bps": [float(x) for x in q.half_spread_bps],
            "cold_start": [bool(x) for x in q.cold_start],
            "ladder_params": {k: {"value": v.value, "source": v.source} for k, v in self.ladder_values.items()},
            "model_version": self.bundle.model_version,
        }

    def update_metrics(self, q: Quotes | None = None) -> None:
        """Refresh every gauge now (``on_event`` does this every ``metrics_interval_s``)."""
        if self.metrics is None:
            return
        q = q if q is not None else self.last_quotes
        summ = jax.tree.map(np.asarray, summarize(self.state))
        e = summ.estimates
        m = self.metrics
        buckets = self.bundle.bucket_keys
        m.set_learned("alpha", e.alpha_learned, e.alpha_data_weight, REGIMES, buckets)
        m.set_learned("kappa", e.kappa_learned, e.kappa_data_weight, REGIMES, SIDES)
        m.set_learned("arrival_rate", e.arrival_learned, e.arrival_data_weight, REGIMES, SIDES)
        fl = self.fills_learner
        if fl is not None and fl.version != getattr(self, "_fills_metrics_version", None):
            m.set_fills_learning(fl)
            self._fills_metrics_version = fl.version
        if q is not None:
            m.set_kelly(self.config.use_kelly_stochastic, float(q.alpha_touch), float(q.kelly_fraction),
                        float(q.alpha_decay_bps))
            m.set_status(regime_probs=q.regime_probs, hawkes=q.hawkes_intensity, tier_pnl=summ.tier_pnl,
                         tier_intensity=summ.tier_intensity, valid=bool(q.valid), binding=q.binding,
                         margin_used=q.margin_used)

    def serve_metrics(self, port: int = 0, addr: str = "127.0.0.1"):
        """Start the Prometheus HTTP exporter on loopback; returns (server, thread)."""
        if self.runtime_metrics is None:
            raise RuntimeError("this Quoter was built with metrics=False")
        return self.runtime_metrics.serve(port, addr)
