"""What a killed ``mmcal`` must not leave behind (DESIGN.md section 7).

* **The temporary Prefect server dies with its parent.** Without ``PREFECT_API_URL``
  Prefect starts a temporary API server (``SubprocessASGIServer``: ``python -m
  uvicorn`` in a child process, ~240 MB, holding a port) and stops it at exit; a
  ``kill -9`` skips that, and the server used to run on, re-parented to init.
  :func:`guard_ephemeral_server` (installed by :func:`flows.runtime.prepare_environment`,
  before Prefect is imported) starts it through :func:`ephemeral_app` instead:
  Prefect's own app plus a watchdog thread that stops the server (SIGTERM, then
  exit after 10 s) as soon as its parent process is gone. A watchdog in the server,
  not ``prctl(PR_SET_PDEATHSIG)``: that signal follows the *thread* that started
  the child, and Prefect starts the server from whichever thread first needs the
  API (the flow's, the log or event worker's). Starting one is also serialised
  across processes sharing ``PREFECT_HOME`` (a lock file there): each server
  migrates the database as it starts, and two at once on a new one would race.
* **Runs left RUNNING by a dead process are closed.** Each ``mmcal`` command that
  runs flows calls :func:`begin`: its flow and task runs are tagged with the
  process (``mmcal-owner:<host>:<pid>:<start>``, :func:`models.concurrency.process_owner`;
  its MLflow runs carry the tag ``mmcal.owner``), and runs still RUNNING (or
  PENDING) whose owner on this host has died are set CRASHED (Prefect, with their
  unfinished task runs) and FAILED (MLflow), reported in one line.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import ExitStack
from typing import Any, Callable

log = logging.getLogger(__name__)

SERVER_MODULE = "prefect.server.api.server"
PARENT_ENV = "MMCAL_SERVER_PARENT_PID"
"""Set for the temporary server only: the pid whose death stops it."""
OWNER_TAG_PREFIX = "mmcal-owner:"
_OPEN_STATES = ("RUNNING", "PENDING", "CANCELLING")


# --------------------------------------------------------------------------- the temporary server
def ephemeral_app():
    """The uvicorn app factory of the guarded temporary server (runs in the server
    process): Prefect's ``create_app()`` and the parent watchdog."""
    from prefect.server.api.server import create_app

    _watch_parent(int(os.environ[PARENT_ENV]))
    return create_app()


def _watch_parent(parent: int, poll_s: float = 0.5, grace_s: float = 10.0) -> None:
    """A daemon thread: when this process's parent is no longer ``parent`` (it died
    and this process was re-parented), SIGTERM this process (uvicorn shuts down
    cleanly) and, should that hang, exit after ``grace_s``."""
    import signal
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        os._exit(1)

    threading.Thread(target=watch, name="mmcal-parent-watchdog", daemon=True).start()


def _guarded_uvicorn_command(self):
    """``SubprocessASGIServer._run_uvicorn_command`` (Prefect 3.8) with the app factory
    :func:`ephemeral_app` in place of ``prefect.server.api.server:create_app``."""
    import subprocess

    import prefect
    from prefect.settings import get_current_settings

    server_env = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1",
                  PARENT_ENV: str(os.getpid())}
    return subprocess.Popen(
        args=[sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent),
              "--factory", f"{__name__}:ephemeral_app", "--host", "127.0.0.1", "--port", str(self.port),
              "--log-level", "error", "--lifespan", "on"],
        env={**os.environ, **server_env, **get_current_settings().to_environment_variables(exclude_unset=True)},
    )


def _patch_server_class(module) -> None:
    cls = module.SubprocessASGIServer
    if getattr(cls, "_mmcal_guarded", False):
        return
    start = cls.start

    def locked_start(self, timeout=None):
        if self.running:
            return
        from prefect.settings import get_current_settings

        from models.concurrency import file_lock

        with file_lock(get_current_settings().home / "ephemeral-server-start.lock"):
            start(self, timeout)

    cls._run_uvicorn_command = _guarded_uvicorn_command
    cls.start = locked_start
    cls._mmcal_guarded = True


class _AfterImport:
    """A ``sys.meta_path`` finder that runs ``then(module)`` right after ``name`` is
    first imported (then steps aside)."""

    def __init__(self, name: str, then: Callable[[Any], None]):
        self.name, self.then = name, then

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        from importlib.machinery import PathFinder

        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader, then = spec.loader, self.then
        exec_module = loader.exec_module

        def exec_then(module):
            exec_module(module)
            then(module)

        loader.exec_module = exec_then
        return spec


def guard_ephemeral_server() -> None:
    """Make Prefect's temporary server die with the process that started it (module
    docstring). Costs nothing until Prefect's server module is imported."""
    if SERVER_MODULE in sys.modules:
        _patch_server_class(sys.modules[SERVER_MODULE])
    elif not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(SERVER_MODULE, _patch_server_class))


# --------------------------------------------------------------------------- stale runs
_TAGS = ExitStack()


def owner_tag() -> str:
    from models.concurrency import process_owner

    return OWNER_TAG_PREFIX + process_owner()


def tag_runs() -> None:
    """Tag every Prefect flow and task run this process creates from now on (this
    thread's context, which the task runners copy) with :func:`owner_tag`."""
    from prefect import tags
    from prefect.context import TagsContext

    tag = owner_tag()
    if tag not in TagsContext.get().current_tags:
        _TAGS.enter_context(tags(tag))


def _dead_owner(tags: list[str]) -> str | None:
    from models.concurrency import owner_dead

    for t in tags or []:
        if t.startswith(OWNER_TAG_PREFIX) and owner_dead(t[len(OWNER_TAG_PREFIX):]):
            return t[len(OWNER_TAG_PREFIX):]
    return None


def close_stale_prefect_runs() -> tuple[int, int, set[str]]:
    """Flow runs still open (RUNNING, PENDING, CANCELLING) whose owner died: set
    CRASHED with their open task runs. Returns (flow runs, task runs, owners)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterStateType, FlowRunFilterState,
                                                TaskRunFilter, TaskRunFilterFlowRunId, TaskRunFilterState,
                                                TaskRunFilterStateType)
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    open_types = [StateType[s] for s in _OPEN_STATES]
    n_flows = n_tasks = 0
    owners: set[str] = set()
    with get_client(sync_client=True) as client:
        runs = _all(client.read_flow_runs, flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=open_types))))
        stale = {r.id: o for r in runs if (o := _dead_owner(r.tags))}
        if not stale:
            return 0, 0, owners
        tasks = _all(client.read_task_runs, task_run_filter=TaskRunFilter(
            state=TaskRunFilterState(type=TaskRunFilterStateType(any_=open_types)),
            flow_run_id=TaskRunFilterFlowRunId(any_=list(stale))))
        for t in tasks:
            client.set_task_run_state(t.id, Crashed(message=_why(stale[t.flow_run_id])), force=True)
            n_tasks += 1
        for run_id, owner in stale.items():
            client.set_flow_run_state(run_id, Crashed(message=_why(owner)), force=True)
            n_flows += 1
            owners.add(owner)
    return n_flows, n_tasks, owners


def _all(read: Callable[..., list], page: int = 200, **filters: Any) -> list:
    """Every row of a Prefect read (pages of ``page``: the API's largest)."""
    rows: list = []
    while True:
        got = read(limit=page, offset=len(rows), **filters)
        rows += got
        if len(got) < page:
            return rows


def _why(owner: str) -> str:
    host, pid, _ = owner.rsplit(":", 2)
    return f"the process that ran it (pid {pid} on {host}) ended without closing it (killed?)"


def close_stale_runs() -> str | None:
    """Close the runs dead processes left open (module docstring); the one line saying
    what was closed, or None. Neither store is required: one that cannot be reached is
    skipped here (the command reports it when it needs it)."""
    from models import tracking

    n_flows = n_tasks = 0
    owners: set[str] = set()
    try:
        n_flows, n_tasks, owners = close_stale_prefect_runs()
    except Exception as e:  # noqa: BLE001 - housekeeping never stops a command
        log.warning("runs left open by dead processes not checked in Prefect: %s: %s", type(e).__name__, e)
    mlflow_runs: list[tuple[str, str]] = []
    try:
        mlflow_runs = tracking.close_stale_runs()
    except tracking.TrackingError as e:  # unreachable: the command says so when it needs MLflow
        log.debug("runs left open by dead processes not checked in MLflow: %s", e)
    except Exception as e:  # noqa: BLE001
        log.warning("runs left open by dead processes not checked in MLflow: %s: %s", type(e).__name__, e)
    owners |= {o for _, o in mlflow_runs}
    if not (n_flows or n_tasks or mlflow_runs):
        return None
    pids = ", ".join(sorted(o.rsplit(":", 2)[1] for o in owners))
    return (f"mmcal: closed the runs a process that died left RUNNING (pid {pids}): {n_flows} Prefect flow run(s) "
            f"and {n_tasks} task run(s) set CRASHED, {len(mlflow_runs)} MLflow run(s) set FAILED")


def begin(say: Callable[[str], None] = print) -> None:
    """Before a command runs flows: tag this process's runs and close the runs dead
    processes left open, saying so (``say``) when there were any."""
    tag_runs()
    msg = close_stale_runs()
    if msg:
        say(msg)


__all__ = ["begin", "close_stale_prefect_runs", "close_stale_runs", "ephemeral_app", "guard_ephemeral_server",
           "owner_tag", "tag_runs"]
