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
(seconds, default 90) bounds each server's start.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

START_TIMEOUT = float(os.environ.get("MMCAL_SERVER_TIMEOUT", "90"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bin(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"`{name}` is not installed next to {sys.executable} nor on PATH")
    return found


class _Server:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], health: str, log: Path):
        self.name, self.health, self.log = name, health, log
        self._out = open(log, "wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.health, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)   # the server and its workers (its own session)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._out.close()


def _wait(servers: list[_Server]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    pending = list(servers)
    while pending:
        for s in list(pending):
            if s.proc.poll() is not None:
                pytest.fail(f"{s.name} exited with status {s.proc.returncode} before it was healthy:\n{s.tail()}")
            if s.healthy():
                pending.remove(s)
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(f"{s.name} ({s.health})" for s in pending)
            pytest.fail(f"not healthy after {START_TIMEOUT:.0f} s (MMCAL_SERVER_TIMEOUT): {names}\n"
                        + "\n".join(f"--- {s.name} log:\n{s.tail()}" for s in pending))
        time.sleep(1.0)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """``{"mlflow": url, "prefect": api_url}``: both servers up and healthy."""
    root = tmp_path_factory.mktemp("servers")
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("PREFECT_", "MLFLOW_"))}
    mport, pport = _free_port(), _free_port()
    mlflow_url, prefect_url = f"http://127.0.0.1:{mport}", f"http://127.0.0.1:{pport}/api"
    (root / "prefect").mkdir()
    started: list[_Server] = []
    try:
        started.append(_Server("mlflow server", [
            _bin("mlflow"), "server", "--host", "127.0.0.1", "--port", str(mport), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", str(root / "mlartifacts"), "--serve-artifacts"],
            base, f"{mlflow_url}/health", root / "mlflow.log"))
        started.append(_Server("prefect server", [
            _bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(pport)],
            {**base, "PREFECT_HOME": str(root / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
             "PREFECT_UI_ENABLED": "false", "PREFECT_SERVER_UI_ENABLED": "false"},
            f"{prefect_url}/health", root / "prefect.log"))
        t0 = time.perf_counter()
        _wait(started)
        print(f"mlflow server and prefect server healthy in {time.perf_counter() - t0:.1f} s")
        yield {"mlflow": mlflow_url, "prefect": prefect_url}
    finally:
        for s in reversed(started):
            s.stop()


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
