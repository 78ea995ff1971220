"""A Dask cluster of separate processes -- ``dask scheduler`` and ``dask worker``, the
commands a cluster's own start-up scripts run -- for the many-asset benchmark and the
scale-out integration test (DESIGN.md section 7). A real cluster is started the same
way on other machines; ``mmcal calibrate --task-runner dask`` (or ``mmcal serve`` with
``MMCAL_TASK_RUNNER=dask``) then connects to it through ``$MMCAL_DASK_ADDRESS``
(README, "Many assets on a Dask cluster").

The workers run the project's code: they start in the repository root, with its
folder on ``PYTHONPATH``, and with the environment that points every process at the
same records -- ``PREFECT_API_URL`` (a Prefect server, or the caller's temporary API:
:func:`share_prefect_api`), ``MLFLOW_TRACKING_URI`` and ``MMCAL_ARTIFACTS`` (the
fit cache; storage every worker sees).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def share_prefect_api() -> str:
    """The Prefect API URL the workers must report to: ``$PREFECT_API_URL``, or this
    process's temporary API, started now and put in the environment."""
    from flows.runtime import _share_ephemeral_api

    _share_ephemeral_api()
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        raise RuntimeError("no Prefect API to share with the workers (set PREFECT_API_URL)")
    return url


class ProcessCluster:
    """``with ProcessCluster(n_workers=2) as c: c.address`` -- a ``dask scheduler`` and
    ``n_workers`` single-threaded ``dask worker`` processes on loopback, stopped (SIGTERM,
    then SIGKILL after ``grace_s``) on exit. The processes inherit this process's
    environment, plus ``env``. Each process's output goes to ``<n>.log`` in ``log_dir``,
    kept after exit (a crashed worker's traceback is evidence), or in a temporary folder
    deleted on exit when ``log_dir`` is None."""

    def __init__(self, n_workers: int = 2, *, nthreads: int = 1, env: Mapping[str, str] | None = None,
                 start_timeout_s: float = 120.0, grace_s: float = 10.0, log_dir: str | Path | None = None):
        if n_workers < 1:
            raise ValueError(f"n_workers must be >= 1, got {n_workers}")
        self.n_workers, self.nthreads = int(n_workers), int(nthreads)
        self.env, self.start_timeout_s, self.grace_s = dict(env or {}), start_timeout_s, grace_s
        self.address: str | None = None
        self._procs: list[subprocess.Popen] = []
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._dir: Path | None = None

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        env.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
        return env

    def _spawn(self, *args: str) -> subprocess.Popen:
        assert self._dir is not None
        with open(self._dir / f"{len(self._procs)}.log", "wb") as log:  # the child keeps its own copy
            p = subprocess.Popen([str(Path(sys.executable).with_name("dask")), *args], cwd=REPO,
                                 env=self._environment(), stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        self._procs.append(p)
        return p

    def logs(self) -> str:
        """Every process's output so far (for an error message)."""
        if self._dir is None:
            return ""
        return "\n".join(f"--- {f.name}\n{f.read_text(errors='replace')[-4000:]}"
                         for f in sorted(self._dir.glob("*.log")))

    def __enter__(self) -> ProcessCluster:
        if self.log_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mmcal-dask-")
            self._dir = Path(self._tmp.name)
        else:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            for f in self.log_dir.glob("*.log"):  # a previous cluster's logs would be read as ours
                f.unlink()
            (self.log_dir / "scheduler.json").unlink(missing_ok=True)
            self._dir = self.log_dir
        sched_file = self._dir / "scheduler.json"
        self._spawn("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", str(sched_file))
        try:
            deadline = time.monotonic() + self.start_timeout_s
            while not sched_file.is_file():
                self._check_alive(deadline)
            self.address = json.loads(sched_file.read_text())["address"]
            for _ in range(self.n_workers):
                self._spawn("worker", self.address, "--nthreads", str(self.nthreads), "--nworkers", "1",
                            "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{len(self._procs)}")
            from distributed import Client

            with Client(self.address, timeout=self.start_timeout_s) as c:
                c.wait_for_workers(self.n_workers, timeout=self.start_timeout_s)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _check_alive(self, deadline: float) -> None:
        for p in self._procs:
            if p.poll() is not None:
                raise RuntimeError(f"dask process exited with status {p.returncode}:\n{self.logs()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Dask scheduler did not start in {self.start_timeout_s:g} s:\n{self.logs()}")
        time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        for p in reversed(self._procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for p in self._procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self._procs.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


__all__ = ["ProcessCluster", "share_prefect_api"]
