"""Integration: the calibrate flow against real servers, as in production.

A real ``mlflow server`` (sqlite backend and proxied artifacts in a temporary
folder) and a real ``prefect server start`` (temporary ``PREFECT_HOME``), both on
loopback at free ports, started as subprocesses and stopped in the fixture's
finalizer. One calibration of the session's tiny synthetic market runs with
``MLFLOW_TRACKING_URI`` and ``PREFECT_API_URL`` pointing at them; the test then
reads back through their APIs: the MLflow run (params, metrics, artifacts), the
registered version and its aliases (MlflowClient), and the flow run's state
(Prefect's client). The fits come from the session's cache when other flow tests
ran first, so the test mostly measures the two servers (a minute or two alone).

``pytest -m integration tests/flows/test_servers.py``; ``MMCAL_SERVER_TIMEOUT``
(seconds, default 90) bounds each server's start. The servers: the ``servers``
fixture of tests/flows/conftest.py.
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.integration

def test_calibrate_against_real_mlflow_and_prefect_servers(servers, calibrate, lab, monkeypatch):
    import mlflow
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.calibrate import result_of
    from models import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", servers["mlflow"])
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    t0 = time.perf_counter()
    try:
        with temporary_settings(updates={PREFECT_API_URL: servers["prefect"]}):
            state = calibrate(state=True)
            res = result_of(state)
            flow_run_id = state.state_details.flow_run_id
            with get_client(sync_client=True) as client:
                fr = client.read_flow_run(flow_run_id)
                tasks = client.read_task_runs()
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=10)           # ship the run logs while the server is up
        wall = time.perf_counter() - t0

        # Prefect: the flow run is on the server, Completed, with its fit tasks
        assert fr.state.type == StateType.COMPLETED, fr.state
        assert fr.name.startswith("calibrate-") and fr.parameters["source"] == "synthetic"
        names = {t.name for t in tasks if t.flow_run_id == flow_run_id}
        assert {"fit-regime", "fit-alpha", "fit-kappa", "fit-hawkes", "export-SYN"} <= names, names
        assert any(n.startswith("load-data") for n in names), names

        # MLflow: the run, its params / metrics / artifacts, the registered version and aliases
        assert res["status"] == "registered" and res["tracking_uri"] == servers["mlflow"]
        c = MlflowClient(tracking_uri=servers["mlflow"], registry_uri=servers["mlflow"])
        run = c.get_run(res["run_id"])
        assert run.info.status == "FINISHED"
        assert run.data.params["window"] == "0:0.7" and run.data.params["data_sha256"] == res["data"]["data_sha256"]
        assert {"max_r_hat", "min_ess_bulk", "alpha.loo_elpd"} <= set(run.data.metrics)
        assert "bundle/bundle.json" in [f.path for f in c.list_artifacts(res["run_id"], "bundle")]
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")       # proxied by the server
        v = c.get_model_version_by_alias("mm-priors-SYN", "challenger")
        assert int(v.version) == res["version"] == 1 and v.run_id == res["run_id"]
        assert set(c.get_registered_model("mm-priors-SYN").aliases) == {"challenger", "champion"}
        bundle, version = tracking.load_registered_bundle("SYN", alias="champion")
        assert version == 1 and bundle.mlflow.run_id == res["run_id"]
        print(f"calibration against the servers: {wall:.1f} s")
    finally:
        monkeypatch.undo()
        mlflow.set_tracking_uri(tracking.tracking_uri())            # back to the session's sqlite store
        mlflow.set_registry_uri(tracking.tracking_uri())
