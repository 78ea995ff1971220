"""deploy / rollback (flows/deploy.py): the registered bundle written to the live path
atomically, the previous one kept, a running Quoter hot-reloading each change, and a
bundle that fails validation leaving the live file untouched."""

from __future__ import annotations

import json

import pytest

from mm_runtime import QuoterConfig
from mm_runtime.bundle import BundleError, load_bundle
from mm_runtime.examples import example_bundle
from mm_runtime.quoter import Quoter


def _tick(q: Quoter, t: float):
    return q.on_event(t, 100.0, bid=99.99, ask=100.01, margin_available=10_000.0)


def _stamped(asset: str, version: int):
    """The registered bundle as deploy installs it: its ``mlflow`` block stamped with
    the registered model, the version and the run (checksum recomputed)."""
    from mm_runtime.bundle import PriorBundle, with_checksum

    from models import tracking

    b, _ = tracking.load_registered_bundle(asset, version=version)
    info = tracking.version_info(asset, version=version)
    return with_checksum(PriorBundle.model_validate({**b.body(), "mlflow": {
        "run_id": info.run_id, "registered_model": tracking.registered_model_name(asset), "version": version}}))


def test_deploy_rollback_and_hot_reload(calibrated, mixture, tmp_path, caplog):
    from flows.deploy import deploy, deploy_log, rollback
    from models import tracking

    tracking.set_alias("SYN", "champion", 1)
    target = tmp_path / "live" / "SYN.json"
    first = deploy(asset="SYN", target=str(target))             # the champion
    assert first["status"] == "deployed" and first["version"] == 1 and first["previous"] is None
    reg1, _ = tracking.load_registered_bundle("SYN", version=1)
    v1, v2 = _stamped("SYN", 1), _stamped("SYN", 2)
    # lineage: the live file names its registered version and run (the registry's copy
    # has no version: it is known only once registered); its checksum is valid
    live1 = load_bundle(target)
    assert reg1.mlflow.version is None and reg1.mlflow.run_id == calibrated["run_id"]
    assert live1.checksum == v1.checksum and live1.mlflow.version == 1
    assert live1.mlflow.run_id == calibrated["run_id"] and live1.mlflow.registered_model == "mm-priors-SYN"
    assert {k: v for k, v in live1.body().items() if k != "mlflow"} == {
        k: v for k, v in reg1.body().items() if k != "mlflow"}
    assert first["checksum"] == v1.checksum and first["run_id"] == calibrated["run_id"]
    quoter = Quoter(target, QuoterConfig(reload_check_interval_s=0.0), replay=True, metrics=False)
    assert _tick(quoter, 1.0).valid and quoter.bundle.model_version == v1.model_version

    second = deploy(asset="SYN", version=2, target=str(target))
    assert second["status"] == "deployed" and second["previous_checksum"] == v1.checksum
    assert load_bundle(target.with_name("SYN.previous.json")).checksum == v1.checksum
    with caplog.at_level("INFO", logger="mm_runtime.quoter"):
        _tick(quoter, 2.0)                                       # hot reload on the next event
    assert quoter.bundle.checksum == v2.checksum and quoter.bundle.model_version == v2.model_version
    # the reload says which calibration replaced which: "v1 (run …) → v2 (run …)"
    rec = next(r for r in caplog.records if r.getMessage() == "bundle reloaded")
    assert rec.fields["change"] == (f"v1 (run {calibrated['run_id'][:12]}, {v1.model_version}) → "
                                    f"v2 (run {mixture['run_id'][:12]}, {v2.model_version})")
    assert rec.fields["version"] == 2 and rec.fields["run_id"] == mixture["run_id"]

    again = deploy(asset="SYN", version=2, target=str(target))   # already live: nothing written
    assert again["status"] == "unchanged"

    back = rollback(asset="SYN", target=str(target))
    assert back["status"] == "rolled_back" and back["version"] == 1
    assert load_bundle(target).checksum == v1.checksum
    assert load_bundle(target.with_name("SYN.previous.json")).checksum == v2.checksum  # roll forward possible
    _tick(quoter, 3.0)
    assert quoter.bundle.checksum == v1.checksum
    log = deploy_log("SYN", target)
    assert [e["action"] for e in log] == ["deploy", "deploy", "rollback"]
    assert [e.get("version") for e in log] == [1, 2, 1]
    # no temp files left beside the live bundle
    assert sorted(p.name for p in target.parent.iterdir()) == ["SYN.deploy.log", "SYN.json", "SYN.previous.json"]


def _register_example(asset_in_bundle: str, key: str) -> int:
    from models import tracking

    with tracking.calibration_run("SYN") as run:
        uri = run.log_bundle(example_bundle(asset_in_bundle))
        return tracking.register_bundle(uri, "SYN", cache_key=key, run_id=run.run_id, alias=None)


def test_a_bundle_failing_validation_leaves_the_live_file_untouched(calibrated, lab, tmp_path):
    from flows.deploy import deploy

    target = tmp_path / "SYN.json"
    deploy(asset="SYN", version=1, target=str(target))
    before = target.read_bytes()
    # a bundle for another asset, registered under SYN by mistake
    other = _register_example("OTHER", key="test-other-asset")
    with pytest.raises(BundleError, match="'OTHER'"):
        deploy(asset="SYN", version=other, target=str(target))
    assert target.read_bytes() == before and not target.with_name("SYN.previous.json").exists()
    # a registered bundle modified in the artifact store (checksum no longer matches)
    bad = _register_example("SYN", key="test-tampered")
    files = [p for p in lab["artifacts"].rglob("bundle.json") if "models" in p.parts]
    newest = max(files, key=lambda p: p.stat().st_mtime_ns)
    doc = json.loads(newest.read_text())
    doc["params"]["hawkes_decay"]["mu"] += 0.1
    newest.write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="checksum"):
        deploy(asset="SYN", version=bad, target=str(target))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SYN.deploy.log", "SYN.json"]


def test_deploy_cli(calibrated, tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    target = tmp_path / "live.json"
    run = CliRunner()
    r = run.invoke(app, ["deploy", "--asset", "SYN", "--version", "1", "--target", str(target), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["status"] == "deployed" and doc["version"] == 1 and target.exists()
    r = run.invoke(app, ["rollback", "--asset", "SYN", "--target", str(target)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.output.strip().splitlines()[-1].startswith("mmcal: error: ") and "no previous bundle" in r.output
    r = run.invoke(app, ["deploy", "--asset", "SYN", "--alias", "champion", "--version", "1"])
    assert r.exit_code == 2 and "--alias and --version" in r.output
    r = run.invoke(app, ["deploy", "--asset", "SYN", "--version", "99", "--target", str(target)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.output.strip().splitlines()[-1].startswith("mmcal: error: models:/mm-priors-SYN/99: not found")


def test_an_unreachable_tracking_server_fails_after_retries_and_leaves_the_live_file(calibrated, tmp_path,
                                                                                     monkeypatch):
    """issue #5, faults: with MLflow unreachable the deploy flow retries the fetch (3
    retries, a transient error), then fails naming the server; the live bundle and
    its neighbours are untouched."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    import flows.deploy as fd
    from models import tracking

    target = tmp_path / "SYN.json"
    fd.deploy(asset="SYN", version=1, target=str(target))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    # the same task and retry policy, without the 2 + 5 + 10 s waits
    monkeypatch.setattr(fd, "fetch_bundle", fd.fetch_bundle.with_options(retry_delay_seconds=0))
    state = fd.deploy(asset="SYN", version=2, target=str(target), return_state=True)
    assert state.is_failed()
    with pytest.raises(tracking.TrackingError, match="127.0.0.1:9"):
        state.result()

    async def task_runs():
        async with get_client() as client:
            flt = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
            return await client.read_task_runs(flow_run_filter=flt)

    runs = [r for r in asyncio.run(task_runs()) if r.name.startswith("fetch-bundle")]
    assert len(runs) == 1 and runs[0].run_count == 4  # the first try and 3 retries
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    monkeypatch.undo()
    tracking.configure()
