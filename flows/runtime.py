"""Where the flows run: Prefect's API, its home, the task runner (DESIGN.md section 7).

Embedded defaults, each overridable by the standard variables:

* **Prefect API**: ``PREFECT_API_URL`` when set (a Prefect server); otherwise
  Prefect's *ephemeral* local API, a temporary server the first flow of a process
  starts (and stops at exit). Its database lives in ``PREFECT_HOME``, which
  defaults here to ``<artifacts>/prefect`` (``$MMCAL_ARTIFACTS`` or
  ``./artifacts``) when neither ``PREFECT_HOME`` nor ``PREFECT_API_URL`` is set, so
  a run touches nothing outside the repository (a profile in ``~/.prefect`` is then
  not read: point ``PREFECT_HOME`` at it to use it).
* The ephemeral server stops when the process that started it dies, killed or not,
  and processes sharing ``PREFECT_HOME`` start theirs one at a time
  (:func:`flows.housekeeping.guard_ephemeral_server`).
* The ephemeral server gets 180 s to start (Prefect's 20 s default is too short
  on a loaded 2-core machine: its first start migrates a new database), and
  Prefect's anonymous usage analytics are off. Both only where unset.
* **MLflow**: see :mod:`models.tracking` (``MLFLOW_TRACKING_URI``).
* **Task runner** (:func:`task_runner`): ``threads`` (default), ``processes`` or
  ``dask`` -- the same flows on another runner (``--task-runner`` or
  ``$MMCAL_TASK_RUNNER``). The tasks take and return small values (paths, keys,
  run ids) and read the data themselves, so every runner works; ``dask`` needs
  the artifacts folder on storage its workers share (``$MMCAL_DASK_ADDRESS``: a
  scheduler to connect to; unset: a local cluster).

:func:`prepare_environment` must run before ``prefect`` is imported (Prefect reads
its settings at import): the ``flows`` package runs it once, when it is first
imported (``flows/__init__.py``), before any of its modules imports Prefect.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from models.paths import artifacts_dir

TASK_RUNNERS = ("threads", "processes", "dask")


def cache_dir() -> Path:
    """Fitted posteriors (netCDF), their Prefect cache records and plots."""
    return artifacts_dir() / "cache"


def prepare_environment() -> None:
    """Set the defaults of the module docstring (only where unset)."""
    if not os.environ.get("PREFECT_API_URL") and not os.environ.get("PREFECT_HOME"):
        home = artifacts_dir() / "prefect"
        home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from flows.housekeeping import guard_ephemeral_server

    guard_ephemeral_server()


def default_parallel_fits(chains: int) -> int:
    """How many fits to sample at once: the CPUs over the chains of one fit (each
    chain wants a core), at least 1. On a 2-core machine with 2 chains: 1."""
    return max(1, (os.cpu_count() or 1) // max(1, int(chains)))


def _share_ephemeral_api() -> None:
    """Without a Prefect server (no ``PREFECT_API_URL``), this process's temporary
    API is started now and its URL put in the environment, so that the worker
    processes of a local Dask cluster report to it. Otherwise each worker starts a
    temporary server of its own: the subflows' runs are then invisible to this
    process, and when the cluster shuts down (it kills workers still alive after a
    few seconds) their servers are left running (measured: 4 orphaned uvicorn
    processes after a ``--parallel-assets 4`` calibration)."""
    if os.environ.get("PREFECT_API_URL"):
        return
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the instance Prefect's client uses in this process
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url


def task_runner(kind: str | None = None, max_workers: int | None = None) -> Any:
    """A Prefect task runner: ``kind`` (or ``$MMCAL_TASK_RUNNER``, default
    ``threads``) with at most ``max_workers`` tasks at a time (threads, processes)."""
    kind = kind or os.environ.get("MMCAL_TASK_RUNNER") or "threads"
    if kind not in TASK_RUNNERS:
        raise ValueError(f"task runner {kind!r}: one of {', '.join(TASK_RUNNERS)}")
    if kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=max_workers)
    if kind == "processes":
        from prefect.task_runners import ProcessPoolTaskRunner

        return ProcessPoolTaskRunner(max_workers=max_workers)
    from prefect_dask import DaskTaskRunner

    address = os.environ.get("MMCAL_DASK_ADDRESS")
    if address:
        return DaskTaskRunner(address=address)
    # a local cluster: its scheduler, nannies and workers log every connection at
    # INFO on the console; keep warnings and errors (the worker processes read the
    # environment variable when they import distributed)
    import logging

    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    logging.getLogger("distributed").setLevel(logging.WARNING)
    _share_ephemeral_api()
    return DaskTaskRunner(cluster_kwargs={"n_workers": max_workers or 1, "threads_per_worker": 1,
                                          "processes": True})


__all__ = ["TASK_RUNNERS", "artifacts_dir", "cache_dir", "default_parallel_fits", "prepare_environment",
           "task_runner"]


def jsonable(x: Any) -> Any:
    """Plain JSON values from what the flows and the CLI report: numpy arrays and
    scalars to lists and numbers, non-finite floats to null, paths to strings."""
    import math

    import numpy as np

    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        return jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x
