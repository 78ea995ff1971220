"""Integration: ``mmcal serve`` against a real Prefect server, a scheduled deployment's
flow run executed by the served process (issue #5, items 5 and 6).

A real ``prefect server`` and a real ``mlflow server`` on loopback (the ``servers``
fixture of tests/flows/conftest.py); a schedules file with one asset (the session's
synthetic market, its CI-sized sampler settings and loose gate, a cron in a non-UTC
time zone); ``mmcal serve --config FILE`` as a subprocess with ``PREFECT_API_URL``,
``MLFLOW_TRACKING_URI`` and a temporary ``MMCAL_ARTIFACTS``. The test waits until the
deployment is registered, checks its cron schedule and parameters against the file,
creates a flow run of it for now (what a cron tick does) and waits until *the served
process* has run it to Completed; then reads back the flow run and its two subflow
runs (calibrate-asset, compare) from Prefect and the registered version and its
aliases from MLflow. Then it creates a second run and sends SIGTERM while that one is
running: ``mmcal serve`` cancels it (``Cancelled``, "Runner is shutting down."), leaves
the first ``Completed``, pauses the schedule and exits 0 without a traceback.

The served process's fit cache is the session's (``<MMCAL_ARTIFACTS>/cache`` is a link
to it) and its settings are the session's (``fit_settings``), so after the other flow
tests its fits are cache hits and the test mostly measures the servers and ``mmcal
serve`` starting; alone, the served process samples the four models once.

``MMCAL_SERVE_TIMEOUT`` (seconds, default 600) bounds the wait for the flow run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = float(os.environ.get("MMCAL_SERVE_TIMEOUT", "600"))
DEPLOY_TIMEOUT = 180.0          # `mmcal serve` importing the flows and registering the deployment
CRON, TZ = "17 3 * * 1-5", "Europe/Paris"


def _toml_table(name: str, d: dict) -> str:
    """A TOML table of scalars (JSON's strings, numbers and booleans are TOML's)."""
    return f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in d.items())


def _schedules(path: Path, market: Path, fs: dict) -> Path:
    text = (f'timezone = "{TZ}"\n\n[[calibrate]]\nasset = "SYN"\nsource = "synthetic"\n'
            f"path = {json.dumps(str(market))}\ncron = \"{CRON}\"\nwindow = \"{fs['window']}\"\n"
            + _toml_table("calibrate.sampler", fs["sampler"])
            + "".join(_toml_table(f"calibrate.sampler_overrides.{m}", o) for m, o in fs["sampler_overrides"].items())
            + _toml_table("calibrate.gate", fs["gate"]))
    path.write_text(text)
    return path


def _until(what: str, timeout: float, probe, proc: subprocess.Popen, tail, every: float = 1.0):
    """Call ``probe()`` until it returns something not None; fail after ``timeout`` s
    or as soon as the served process has exited."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got is not None:
            return got
        if proc.poll() is not None:
            pytest.fail(f"mmcal serve exited with status {proc.returncode} while waiting for {what}:\n{tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout:.0f} s\n--- mmcal serve log:\n{tail()}")
        time.sleep(every)


def test_mmcal_serve_runs_the_scheduled_deployment(servers, lab, fit_settings, background, tmp_path):
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterParentFlowRunId, TaskRunFilter,
                                                TaskRunFilterFlowRunId)
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.schedules import build_deployments, deployment_name, load_config

    t0 = time.perf_counter()
    cfg_file = _schedules(tmp_path / "schedules.toml", lab["market"], fit_settings)
    expected = build_deployments(cfg_file)[0]
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (lab["artifacts"] / "cache").mkdir(parents=True, exist_ok=True)
    (artifacts / "cache").symlink_to(lab["artifacts"] / "cache", target_is_directory=True)
    serve = background("mmcal serve", ["mmcal", "serve", "--config", str(cfg_file)], {
        "PREFECT_API_URL": servers["prefect"], "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_TRACKING_URI": servers["mlflow"], "MMCAL_ARTIFACTS": str(artifacts)}, cwd=ROOT)
    name = f"scheduled-calibration/{deployment_name('SYN')}"
    timings = {}

    with temporary_settings(updates={PREFECT_API_URL: servers["prefect"]}), get_client(sync_client=True) as client:
        def deployment():
            try:
                return client.read_deployment_by_name(name)
            except ObjectNotFound:
                return None

        dep = _until(f"deployment {name} registered", DEPLOY_TIMEOUT, deployment, serve.proc, serve.tail)
        timings["registered"] = time.perf_counter() - t0

        # the cron schedule of the file is attached (active), and the parameters are the file's
        cfg = load_config(cfg_file).calibrate[0]
        assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in dep.schedules] == [(cfg.cron, TZ, True)]
        assert dep.parameters == json.loads(json.dumps(expected.parameters))
        assert dep.parameters["sampler_overrides"] == fit_settings["sampler_overrides"]
        assert dep.entrypoint == "flows/schedules.py:scheduled_calibration" and not dep.paused

        # a run now, as a cron tick would create it: the served process picks it up and runs it
        run = client.create_flow_run_from_deployment(dep.id)

        def finished():
            fr = client.read_flow_run(run.id)
            return fr if fr.state is not None and fr.state.is_final() else None

        fr = _until(f"flow run {run.id} finished", RUN_TIMEOUT, finished, serve.proc, serve.tail, every=2.0)
        timings["run"] = time.perf_counter() - t0 - timings["registered"]
        assert fr.state.type == StateType.COMPLETED, (
            f"flow run {fr.name}: {fr.state.type.value}: {fr.state.message}\n--- mmcal serve log:\n{serve.tail(60)}")
        assert fr.deployment_id == dep.id and fr.name == "scheduled-SYN" and fr.parameters["asset"] == "SYN"

        # its subflow runs: calibrate-asset then compare, both Completed
        subs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[fr.id])))
        by_flow = {client.read_flow(s.flow_id).name: s for s in subs}
        assert set(by_flow) == {"calibrate-asset", "compare"}, {k: s.name for k, s in by_flow.items()}
        assert all(s.state.type == StateType.COMPLETED for s in subs), [(s.name, s.state) for s in subs]
        cal, cmp_ = by_flow["calibrate-asset"], by_flow["compare"]
        assert cal.name == f"calibrate-SYN-{fit_settings['window']}-threshold" and cmp_.name == "compare-SYN"
        assert cmp_.start_time >= cal.end_time
        tasks = client.read_task_runs(task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[cal.id])))
        fits = {t.name: t.state.name for t in tasks if t.name.startswith("fit-")}
        assert set(fits) == {"fit-regime", "fit-alpha", "fit-kappa", "fit-hawkes", "fit-fills"}, fits

    # MLflow: the served run registered version 1 of mm-priors-SYN (challenger, and champion: the first)
    c = MlflowClient(tracking_uri=servers["mlflow"], registry_uri=servers["mlflow"])
    v = c.get_model_version_by_alias("mm-priors-SYN", "challenger")
    assert v.version == "1" and set(c.get_registered_model("mm-priors-SYN").aliases) == {"challenger", "champion"}
    mrun = c.get_run(v.run_id)
    assert mrun.info.status == "FINISHED"
    assert mrun.data.params["window"] == fit_settings["window"] and mrun.data.params["path"] == str(lab["market"])

    # SIGTERM while a second run is in flight: mmcal serve cancels that run, leaves the finished one
    # Completed, pauses the schedule and exits 0 without a traceback
    with temporary_settings(updates={PREFECT_API_URL: servers["prefect"]}), get_client(sync_client=True) as client:
        second = client.create_flow_run_from_deployment(dep.id)

        def running():
            st = client.read_flow_run(second.id).state
            return st if st is not None and (st.is_running() or st.is_final()) else None

        st = _until(f"flow run {second.id} running", 120, running, serve.proc, serve.tail, every=0.5)
        assert st.is_running(), st
        t1 = time.perf_counter()
        serve.proc.send_signal(signal.SIGTERM)
        try:
            rc = serve.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"mmcal serve still running 60 s after SIGTERM:\n{serve.tail()}")
        timings["stop"] = time.perf_counter() - t1
        log = serve.log.read_text(errors="replace")
        assert rc == 0 and "Traceback" not in log, f"exit status {rc}:\n{serve.tail(60)}"
        st2 = client.read_flow_run(second.id).state
        assert st2.type == StateType.CANCELLED and st2.message == "Runner is shutting down.", st2
        assert client.read_flow_run(fr.id).state.type == StateType.COMPLETED
        assert client.read_deployment(dep.id).paused       # a stopped `mmcal serve` leaves its schedules paused
    print(f"mmcal serve: deployment registered after {timings['registered']:.1f} s, flow run done in "
          f"{timings['run']:.1f} s, fits {fits}, stopped in {timings['stop']:.1f} s; "
          f"total {time.perf_counter() - t0:.1f} s")
