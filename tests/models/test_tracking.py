"""MLflow tracking and registry (models/tracking.py) against a real sqlite store."""

from __future__ import annotations

import json

import mlflow
import pytest

from mm_runtime import BundleError, example_bundle
from models import tracking as tr


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MMCAL_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    yield tmp_path / "artifacts"
    mlflow.set_tracking_uri(None)


def _register(asset="SYN", key="k1"):
    b = example_bundle(asset)
    with tr.calibration_run(asset) as run:
        run.log_params({"window": {"start": "a"}, "draws": 10})
        run.log_metrics({"max_r_hat": 1.002, "nan_is_skipped": float("nan")})
        uri = run.log_bundle(b)
        v = tr.register_bundle(uri, asset, cache_key=key, run_id=run.run_id)
    return b, v, run.run_id


def test_register_load_alias_roundtrip_and_idempotence(store):
    b, v1, run_id = _register()
    assert (store / "mlflow.db").exists()
    loaded, v = tr.load_registered_bundle("SYN", alias="challenger")
    assert v == v1 == 1 and loaded.checksum == b.checksum
    # the same cache key again (a re-run after a kill) does not add a version
    _, v_again, _ = _register(key="k1")
    assert v_again == v1
    _, v2, _ = _register(key="k2")
    assert v2 == 2 and tr.alias_version("SYN", "challenger") == 2
    tr.set_alias("SYN", "champion", 1)
    assert tr.load_registered_bundle("SYN", alias="champion")[1] == 1
    assert tr.load_registered_bundle("SYN", version=2)[1] == 2
    run = mlflow.get_run(run_id)
    assert run.data.metrics["max_r_hat"] == pytest.approx(1.002)
    assert json.loads(run.data.params["window"]) == {"start": "a"}
    # no pickle travels: the registered model holds the JSON bundle and the source file
    files = [p.name for p in store.rglob("*") if p.is_file()]
    assert "bundle.json" in files and "bundle_pyfunc.py" in files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))]


def test_tampered_registered_bundle_is_refused(store):
    _register()
    target = [p for p in store.rglob("bundle.json") if "models" in p.parts][0]
    doc = json.loads(target.read_text())
    doc["params"]["alpha_decay_bps"]["mu"] += 0.5
    target.write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="checksum"):
        tr.load_registered_bundle("SYN", alias="challenger")


def test_missing_alias_is_a_clear_error(store):
    _register()
    with pytest.raises(tr.TrackingError, match="@champion"):
        tr.load_registered_bundle("SYN", alias="champion")


def test_exception_marks_the_run_failed(store):
    with pytest.raises(RuntimeError):
        with tr.calibration_run("SYN") as run:
            rid = run.run_id
            raise RuntimeError("gate failed: r_hat 1.2 > 1.01")
    r = mlflow.get_run(rid)
    assert r.info.status == "FAILED" and "r_hat" in r.data.tags["failure"]


def test_unreachable_server_is_a_tracking_error(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(tr.TrackingError, match="127.0.0.1:9"):
        tr.configure()


def test_configure_does_not_read_back_what_mlflow_exported(store, tmp_path, monkeypatch):
    """mlflow.set_tracking_uri / set_registry_uri export their values to the
    environment; a later configure() for another store must not take them for the
    user's settings (the registry would stay on the first store)."""
    tr.configure()
    first = tr.tracking_uri()
    assert mlflow.get_registry_uri() == first
    second = f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", second)
    tr.configure()
    assert tr.tracking_uri() == second and mlflow.get_registry_uri() == second
    # a registry the user sets is kept
    own = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", own)
    tr.configure()
    assert mlflow.get_tracking_uri() == second and mlflow.get_registry_uri() == own


def test_recording_gaps_are_logged(store):
    """The data's recording gaps: two metrics and a table artifact (none: metrics only)."""
    gaps = [{"start_ns": 10, "end_ns": 20, "length_s": 235.6}, {"start_ns": 30, "end_ns": 40, "length_s": 31.6}]
    with tr.calibration_run("SYN") as run:
        run.log_gaps(gaps)
        rid = run.run_id
    r = mlflow.get_run(rid)
    assert r.data.metrics["gaps_count"] == 2 and r.data.metrics["gaps_seconds"] == pytest.approx(267.2)
    table = [p for p in store.rglob("recording_gaps.csv")]
    assert len(table) == 1 and table[0].read_text().splitlines()[1] == "10,20,235.6"
    with tr.calibration_run("SYN") as run:
        run.log_gaps([])
        rid = run.run_id
    assert mlflow.get_run(rid).data.metrics["gaps_count"] == 0
