"""Scale-out (DESIGN.md section 7): the same calibrate flow on prefect-dask's
``DaskTaskRunner`` with a real ``distributed.LocalCluster`` (2 in-process workers):
two synthetic assets calibrated at once, every task of both (the per-asset
subflows and their fits) on the cluster, both runs and versions landing in one
MLflow sqlite store written concurrently, without SQLite lock errors.

The first asset is the session's market (its fits cached by the session), the
second (``SYN2``) another synthetic market, sampled here on the cluster; the
MLflow store is this test's own, so both calibrations log a run and register.
(Not the session market renamed: the fit cache key is the data, not the asset, so
SYN2 would reuse SYN's posteriors and the export refuses a posterior of another
asset.)
Fixtures: tests/flows/conftest.py."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture()
def cluster():
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("prefect_dask")
    # one thread per worker, as `mmcal calibrate --task-runner dask` starts them: with
    # as many assets as worker threads, an asset task that held its thread while its
    # fits wait for one would deadlock the cluster (flows.calibrate._calibrate_one)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as c:
        yield c


@pytest.mark.slow
def test_two_assets_on_a_dask_cluster(calibrated, lab, fit_settings, cluster, tmp_path, monkeypatch, caplog):
    import mlflow
    from mlflow import MlflowClient
    from prefect_dask import DaskTaskRunner

    from flows.calibrate import calibrate as calibrate_many
    from flows.runtime import task_runner
    from models import tracking
    from models.data.synthetic import SyntheticConfig, simulate_market, write_market

    syn2 = tmp_path / "syn2"
    write_market(simulate_market(seed=12, duration_s=900.0, config=SyntheticConfig(asset="SYN2")), syn2)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)   # a registry set in the environment would win
    monkeypatch.setenv("MMCAL_DASK_ADDRESS", cluster.scheduler_address)   # the subflows' runners too
    assert isinstance(task_runner("dask"), DaskTaskRunner)
    assert tracking.tracking_uri() == store
    tracking.configure()
    opts = dict(**fit_settings, plots=False)

    from prefect import flow

    from flows.calibrate import _calibrate_one

    @flow(name="calibrate-two-markets")
    def two(jobs: list[tuple[str, str]]) -> list[dict]:
        futs = [_calibrate_one.submit("synthetic", path, asset, "dask", 2, opts) for path, asset in jobs]
        return [f.result() for f in futs]

    caplog.set_level(logging.WARNING)
    try:
        fl = two.with_options(task_runner=DaskTaskRunner(address=cluster.scheduler_address),
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
        # the tasks ran on the cluster, on both workers (the 2 asset tasks and the subflows' tasks)
        counts = [w.state.executed_count for w in cluster.workers.values()]
        assert sum(counts) >= 10 and all(counts), counts
    finally:
        monkeypatch.undo()
        mlflow.set_tracking_uri(tracking.tracking_uri())
        mlflow.set_registry_uri(tracking.tracking_uri())
