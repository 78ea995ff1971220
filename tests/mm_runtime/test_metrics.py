"""Prometheus metrics: a dedicated registry served on loopback, scraped and parsed."""

from __future__ import annotations

import urllib.request

from prometheus_client import CollectorRegistry, REGISTRY
from prometheus_client.parser import text_string_to_metric_families

import mm_runtime as mr
from mm_runtime.bundle import MlflowRef
from mm_runtime.metrics import RuntimeMetrics


def scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_metrics_served_and_parsed():
    quoter = mr.Quoter(mr.example_bundle("BTC"), replay=True)
    for i in range(5):
        quoter.on_event(1.0 + i, 30_000.0, margin_available=1e4, trade=(30_003.0, 1.0))
    quoter.update_metrics()
    server, thread = quoter.serve_metrics(port=0)
    try:
        s = scrape(server.server_port)
    finally:
        server.shutdown()
        server.server_close()
    a = (("asset", "BTC"),)
    assert s[("mm_kelly_stochastic_enabled", a)] == 1.0
    assert s[("mm_kelly_fraction", a)] > 0
    assert 0 < s[("mm_kelly_alpha_touch", a)] < 1
    assert s[("mm_kelly_alpha_decay_bps", a)] > 0
    assert s[("mm_quote_valid", a)] == 1.0
    key = ("mm_learned_kappa", (("asset", "BTC"), ("regime", "normal"), ("side", "buy")))
    assert s[key] > 0
    assert 0 < s[("mm_learned_kappa_data_weight", key[1])] < 1
    assert ("mm_learned_alpha", (("asset", "BTC"), ("bucket", "[0,2)"), ("regime", "low"))) in s
    assert ("mm_learned_arrival_rate_data_weight", (("asset", "BTC"), ("regime", "high"), ("side", "sell"))) in s
    probs = [s[("mm_regime_probability", (("asset", "BTC"), ("regime", r)))] for r in mr.REGIMES]
    assert abs(sum(probs) - 1.0) < 1e-9
    info = [k for k in s if k[0] == "mm_bundle_info"]
    assert len(info) == 1
    labels = dict(info[0][1])
    assert labels["model_version"] == "example-v1" and labels["schema_version"] == "3" and labels["run_id"] == ""
    assert labels["version"] == "" and labels["registered_model"] == ""  # not a registered bundle
    assert s[("mm_quote_step_latency_seconds_count", a)] == 5.0
    assert ("mm_binding_constraint", (("asset", "BTC"), ("side", "bid"))) in s


def test_bundle_info_names_the_registered_version_and_run():
    """issue 19, lineage: a deployed bundle's version, run and data window are labels
    of mm_bundle_info."""
    b = mr.example_bundle("A")
    b = mr.with_checksum(b.model_copy(update={"mlflow": MlflowRef(run_id="r" * 32, registered_model="mm-priors-A",
                                                                  version=4)}))
    m = RuntimeMetrics(CollectorRegistry())
    mr.Quoter(b, metrics=m)
    got = [s.labels for fam in m.registry.collect() if fam.name == "mm_bundle" for s in fam.samples][0]
    assert (got["version"], got["run_id"], got["registered_model"]) == ("4", "r" * 32, "mm-priors-A")
    assert got["window"].startswith("2026-01-01T00:00:00+00:00/") and len(got["data_sha256"]) == 12


def test_registries_are_private_and_shareable():
    shared = RuntimeMetrics(CollectorRegistry())
    mr.Quoter(mr.example_bundle("A"), metrics=shared)
    mr.Quoter(mr.example_bundle("B"), metrics=shared)  # same families, another label value
    b = mr.example_bundle("A")
    window = f"{b.source.window_start.isoformat()}/{b.source.window_end.isoformat()}"
    assert shared.registry.get_sample_value("mm_bundle_info", {
        "asset": "A", "model_version": "example-v1", "run_id": "", "registered_model": "", "version": "",
        "data_sha256": b.source.data_sha256[:12], "window": window, "schema_version": "3"}) == 1.0
    assert REGISTRY.get_sample_value("mm_kelly_fraction", {"asset": "A"}) is None  # not the global registry
