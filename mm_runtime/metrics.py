"""Prometheus metrics of the live quoter (label ``asset`` on every series).

Each :class:`RuntimeMetrics` owns its metric families in a dedicated
``CollectorRegistry`` (never the process-global one); one ``RuntimeMetrics`` can serve
many assets (``Quoter(..., metrics=shared)``).  Series names come from the original
system (DESIGN.md section 6): ``mm_kelly_*``, ``mm_learned_*`` (κ in 1/bps, rates in
1/s, with ``_data_weight``), ``mm_calibration_tier``, ``mm_regime_probability``,
``mm_hawkes_intensity`` (1/s), ``mm_margin_used`` (quote currency),
``mm_bundle_info``, ``mm_quote_step_latency_seconds``, ….  A registry parameter whose
name is already a per-cell family is published as its pooled cell, extra labels
``"all"`` (:data:`POOLED`).

Every series with its labels and units: docs/runtime/metrics.md.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

from .bundle import PriorBundle
from .vocabulary import QUEUE_BUCKET_LABELS, REGIMES, SIDES, horizon_label, piece_labels

__all__ = ["RuntimeMetrics", "AssetMetrics", "LEARNED_PARAMS", "POOLED"]

LEARNED_PARAMS = {
    "alpha": ("regime", "bucket"),
    "kappa": ("regime", "side"),
    "arrival_rate": ("regime", "side"),
}
POOLED = "all"
"""Label value of a registry parameter's pooled cell in a per-cell ``mm_learned_*`` family."""
_LATENCY_BUCKETS = (
    5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2, 0.1,
)


class RuntimeMetrics:
    """The metric families, registered once in ``registry`` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        a = ["asset"]

        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, a + list(extra), registry=reg)

        self.kelly_enabled = gauge("mm_kelly_stochastic_enabled", "Kelly-stochastic allocation on (1) or off (0)")
        self.kelly_alpha_touch = gauge("mm_kelly_alpha_touch", "Informed-fill probability at the touch in use")
        self.kelly_fraction = gauge("mm_kelly_fraction", "Effective Kelly fraction (base x regime multiplier)")
        self.kelly_alpha_decay = gauge("mm_kelly_alpha_decay_bps", "Alpha depth decay delta_char in use, bps")
        self.learned = {}
        self.learned_weight = {}
        for name, labels in LEARNED_PARAMS.items():
            self.learned[name] = gauge(f"mm_learned_{name}", f"Online posterior mean of {name}", labels)
            self.learned_weight[name] = gauge(
                f"mm_learned_{name}_data_weight", f"n/(n+prior_strength) of {name}", labels
            )
        # the tick ladder's cells learned from own fills (mm_runtime.fills_learning)
        self.fill_hazard = gauge("mm_learned_fill_hazard", "Online posterior mean fill hazard of a fills cell, 1/s",
                                 ("regime", "level", "queue", "piece"))
        self.fill_hazard_weight = gauge("mm_learned_fill_hazard_data_weight",
                                        "exposure/(exposure+prior rate) of a fills cell",
                                        ("regime", "level", "queue", "piece"))
        self.markout = gauge("mm_learned_markout_bps", "Online posterior mean markout after a fill, bps (+ adverse)",
                             ("regime", "level", "queue", "horizon"))
        self.markout_weight = gauge("mm_learned_markout_bps_data_weight",
                                    "data precision/(prior+data precision) of a markout cell",
                                    ("regime", "level", "queue", "horizon"))
        self.params_calibrated = gauge(
            "mm_learned_params_calibrated", "1 when every registry parameter of the tier is calibrated", ("tier",)
        )
        self._param_gauges: dict[str, tuple[Gauge, Gauge, dict[str, str]]] = {}
        self.tier = gauge("mm_calibration_tier", "Regime-weighted share of trusted learned cells", ("tier",))
        self.regime = gauge("mm_regime_probability", "Filtered volatility-regime probability", ("regime",))
        self.hawkes = gauge("mm_hawkes_intensity", "Current Hawkes intensity of market orders, 1/s", ("side",))
        self.valid = gauge("mm_quote_valid", "1 when the last step produced quotes")
        self.binding = gauge("mm_binding_constraint", "Binding constraint: 0 none, 1 margin, 2 position", ("side",))
        self.margin_used = gauge("mm_margin_used", "Margin used by the ladder (larger side), quote currency")
        self.bundle = Info("mm_bundle", "Prior bundle in use", a, registry=reg)
        self.reload_failures = Counter("mm_bundle_reload_failures", "Refused hot reloads", a, registry=reg)
        self.latency = Histogram(
            "mm_quote_step_latency_seconds", "Quoter.on_event latency", a, buckets=_LATENCY_BUCKETS, registry=reg
        )

    def learned_param(self, name: str) -> tuple[Gauge, Gauge, dict[str, str]]:
        """(estimate gauge, data-weight gauge, extra labels) of registry parameter
        ``name`` (module docstring: a per-cell family's pooled cell, or its own family)."""
        if name in LEARNED_PARAMS:
            return self.learned[name], self.learned_weight[name], {k: POOLED for k in LEARNED_PARAMS[name]}
        if name not in self._param_gauges:
            reg = self.registry
            g = Gauge(f"mm_learned_{name}", f"Learned-parameter registry: posterior mean of {name}",
                      ["asset"], registry=reg)
            w = Gauge(f"mm_learned_{name}_data_weight", f"n/(n+prior_strength) of {name}", ["asset"], registry=reg)
            self._param_gauges[name] = (g, w, {})
        return self._param_gauges[name]

    def for_asset(self, asset: str) -> AssetMetrics:
        return AssetMetrics(self, asset)

    def serve(self, port: int = 0, addr: str = "127.0.0.1"):
        """Start the HTTP exporter (loopback by default); returns (server, thread).
        ``port=0`` picks a free port: ``server.server_port``."""
        return start_http_server(port, addr=addr, registry=self.registry)


class AssetMetrics:
    """Handles bound to one asset label."""

    def __init__(self, families: RuntimeMetrics, asset: str):
        self.f = families
        self.asset = asset
        self.latency = families.latency.labels(asset=asset)

    def set_bundle(self, bundle: PriorBundle) -> None:
        m = bundle.mlflow
        self.f.bundle.labels(asset=self.asset).info(
            {
                "model_version": bundle.model_version,
                "run_id": m.run_id if m and m.run_id else "",
                "registered_model": m.registered_model if m and m.registered_model else "",
                "version": str(m.version) if m and m.version is not None else "",
                "data_sha256": bundle.source.data_sha256[:12],
                "window": f"{bundle.source.window_start.isoformat()}/{bundle.source.window_end.isoformat()}",
                "schema_version": str(bundle.schema_version),
            }
        )

    def reload_failed(self) -> None:
        self.f.reload_failures.labels(asset=self.asset).inc()

    def set_kelly(self, enabled: bool, alpha_touch: float, fraction: float, decay_bps: float) -> None:
        a = self.asset
        self.f.kelly_enabled.labels(asset=a).set(1.0 if enabled else 0.0)
        self.f.kelly_alpha_touch.labels(asset=a).set(alpha_touch)
        self.f.kelly_fraction.labels(asset=a).set(fraction)
        self.f.kelly_alpha_decay.labels(asset=a).set(decay_bps)

    def set_learned(self, name: str, values, weights, keys0, keys1) -> None:
        """``values``/``weights`` indexed [i][j] with label values ``keys0``/``keys1``."""
        l0, l1 = LEARNED_PARAMS[name]
        g, w = self.f.learned[name], self.f.learned_weight[name]
        for i, k0 in enumerate(keys0):
            for j, k1 in enumerate(keys1):
                g.labels(**{"asset": self.asset, l0: k0, l1: k1}).set(float(values[i][j]))
                w.labels(**{"asset": self.asset, l0: k0, l1: k1}).set(float(weights[i][j]))

    def set_learned_param(self, name: str, estimate: float, data_weight: float) -> None:
        """A registry parameter's estimate and data weight (:meth:`RuntimeMetrics.learned_param`)."""
        g, w, extra = self.f.learned_param(name)
        g.labels(asset=self.asset, **extra).set(float(estimate))
        w.labels(asset=self.asset, **extra).set(float(data_weight))

    def set_fills_learning(self, learner) -> None:
        """Every cell of a :class:`~mm_runtime.fills_learning.FillsLearner`: posterior mean
        hazard (shape/rate, 1/s) per piece and markout mean per horizon, with data weights."""
        f, a = self.f, self.asset
        shape, rate = learner.hazard()
        mean, _ = learner.markout()
        wh, wm = learner.data_weights()
        pieces = piece_labels(learner.cuts)
        hz = [horizon_label(h) for h in learner.horizons]
        R, L, Q, P, H = learner.shape
        for r in range(R):
            for lv in range(L):
                for b in range(Q):
                    lab = {"asset": a, "regime": REGIMES[r], "level": str(lv), "queue": QUEUE_BUCKET_LABELS[b]}
                    for k in range(P):
                        f.fill_hazard.labels(**lab, piece=pieces[k]).set(float(shape[r, lv, b, k] / rate[r, lv, b, k]))
                        f.fill_hazard_weight.labels(**lab, piece=pieces[k]).set(float(wh[r, lv, b, k]))
                    for j in range(H):
                        f.markout.labels(**lab, horizon=hz[j]).set(float(mean[r, lv, b, j]))
                        f.markout_weight.labels(**lab, horizon=hz[j]).set(float(wm[r, lv, b, j]))

    def set_params_calibrated(self, tier: int | str, ready: bool) -> None:
        self.f.params_calibrated.labels(asset=self.asset, tier=str(tier)).set(1.0 if ready else 0.0)

    def set_status(self, *, regime_probs, hawkes, tier_pnl, tier_intensity, valid, binding, margin_used) -> None:
        a = self.asset
        for r, p in zip(REGIMES, regime_probs, strict=True):
            self.f.regime.labels(asset=a, regime=r).set(float(p))
        for s, lam in zip(SIDES, hawkes, strict=True):
            self.f.hawkes.labels(asset=a, side=s).set(float(lam))
        self.f.tier.labels(asset=a, tier="pnl").set(float(tier_pnl))
        self.f.tier.labels(asset=a, tier="intensity").set(float(tier_intensity))
        self.f.valid.labels(asset=a).set(1.0 if valid else 0.0)
        for s, b in zip(("bid", "ask"), binding, strict=True):
            self.f.binding.labels(asset=a, side=s).set(float(b))
        self.f.margin_used.labels(asset=a).set(float(margin_used))
