"""Scale-out (DESIGN.md section 7): the same calibrate flow on prefect-dask's
``DaskTaskRunner`` against a cluster of separate processes started by the test
(``dask scheduler`` and two ``dask worker`` processes: :class:`flows.cluster.ProcessCluster`),
reached through ``$MMCAL_DASK_ADDRESS`` as a user reaches theirs: two synthetic assets
calibrated at once, every task of both (the per-asset subflows and their fits) on the
cluster's workers, both runs and versions landing in one MLflow sqlite store written
concurrently, without SQLite lock errors, and every Prefect run of both assets
recorded, completed, in the one Prefect API the workers report to.

The first asset is the session's market (its fits cached by the session), the
second (``SYN2``) another synthetic market, sampled here on the cluster; the
MLflow store is this test's own, so both calibrations log a run and register.
(Not the session market renamed: the fit cache key is the data, not the asset, so
SYN2 would reuse SYN's posteriors and the export refuses a posterior of another
asset.)
Fixtures: tests/flows/conftest.py."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest


@pytest.mark.slow
def test_two_assets_on_a_dask_cluster(calibrated, lab, fit_settings, tmp_path, monkeypatch, caplog):
    pytest.importorskip("distributed")
    pytest.importorskip("prefect_dask")
    import mlflow
    from distributed import Client
    from mlflow import MlflowClient
    from prefect import flow
    from prefect_dask import DaskTaskRunner

    from flows.calibrate import _calibrate_one
    from flows.cluster import ProcessCluster, share_prefect_api
    from flows.runtime import task_runner
    from models import tracking
    from models.data.synthetic import SyntheticConfig, simulate_market, write_market

    syn2 = tmp_path / "syn2"
    write_market(simulate_market(seed=12, duration_s=900.0, config=SyntheticConfig(asset="SYN2")), syn2)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)   # a registry set in the environment would win
    # the workers report to this process's Prefect API (as to a Prefect server); it
    # stays up for the session (the lab fixture stops it)
    monkeypatch.setenv("PREFECT_API_URL", share_prefect_api())
    assert tracking.tracking_uri() == store
    tracking.configure()
    opts = dict(**fit_settings, plots=False)

    @flow(name="calibrate-two-markets")
    def two(jobs: list[tuple[str, str]]) -> list[dict]:
        futs = [_calibrate_one.submit("synthetic", path, asset, "dask", 2, opts) for path, asset in jobs]
        return [f.result() for f in futs]

    caplog.set_level(logging.WARNING)
    since = datetime.now(timezone.utc)
    # one thread per worker, as `mmcal calibrate --task-runner dask` starts them: with
    # as many assets as worker threads, an asset task that held its thread while its
    # fits wait for one would deadlock the cluster (flows.calibrate._calibrate_one)
    cluster = ProcessCluster(n_workers=2, log_dir=tmp_path / "dask-logs").__enter__()
    try:
        monkeypatch.setenv("MMCAL_DASK_ADDRESS", cluster.address)   # the subflows' runners too
        assert isinstance(task_runner("dask"), DaskTaskRunner)
        fl = two.with_options(task_runner=DaskTaskRunner(address=cluster.address),
                              timeout_seconds=600)  # a deadlock fails instead of hanging
        docs = fl([(str(lab["market"]), "SYN"), (str(syn2), "SYN2")])
        assert [d["asset"] for d in docs] == ["SYN", "SYN2"]
        assert all(d["status"] == "registered" and d["version"] == 1 for d in docs), \
            [(d["asset"], d["status"], d["version"], d["run_id"], d["tracking_uri"]) for d in docs]
        assert docs[0]["tracking_uri"] == store
        c = MlflowClient(tracking_uri=store, registry_uri=store)
        exp = c.get_experiment_by_name("mm-calibration")
        runs = c.search_runs([exp.experiment_id], filter_string="tags.`mlflow.parentRunId` IS NULL")
        assert {r.info.run_id for r in runs} >= {d["run_id"] for d in docs}
        assert all(c.get_run(d["run_id"]).info.status == "FINISHED" for d in docs)
        for a in ("SYN", "SYN2"):
            assert int(c.get_model_version_by_alias(f"mm-priors-{a}", "challenger").version) == 1
        text = caplog.text.lower()
        assert "database is locked" not in text and "operationalerror" not in text
        # the tasks ran on the cluster's processes, on both workers (the 2 asset tasks and
        # the subflows' tasks)
        with Client(cluster.address) as client:
            counts = list(client.run(lambda dask_worker: dask_worker.state.executed_count).values())
        assert sum(counts) >= 10 and all(counts), counts
        # Prefect: both assets' subflows and every task run of theirs, completed, in one API
        flows = _flow_runs(since)
        subflows = [r for r in flows if r.name.startswith(("calibrate-SYN-", "calibrate-SYN2-"))]
        assert sorted(r.name.split("-")[1] for r in subflows) == ["SYN", "SYN2"], [r.name for r in flows]
        assert all(r.state_type.value == "COMPLETED" for r in subflows), [(r.name, r.state_type) for r in subflows]
        tasks = _task_runs([r.id for r in subflows])
        assert len(tasks) >= 10 and all(t.state_type.value == "COMPLETED" for t in tasks), \
            [(t.name, t.state_type) for t in tasks]
    finally:
        cluster.__exit__(None, None, None)
        monkeypatch.undo()
        mlflow.set_tracking_uri(tracking.tracking_uri())
        mlflow.set_registry_uri(tracking.tracking_uri())
    # the scheduler's and both workers' output outlive the cluster (evidence of a crash)
    assert sorted(f.name for f in (tmp_path / "dask-logs").glob("*.log")) == ["0.log", "1.log", "2.log"]


def _flow_runs(since) -> list:
    """The flow runs the Prefect API holds that started after ``since``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStartTime

    with get_client(sync_client=True) as c:
        return c.read_flow_runs(flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)),
                                limit=200)


def _task_runs(flow_run_ids: list) -> list:
    """The task runs of these flow runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as c:
        return c.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids)), limit=200)
