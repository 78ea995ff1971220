"""Processes sharing one artifacts folder: who owns a run, and file locks.

* :func:`process_owner`: this process as ``<host>:<pid>:<start time>`` (the start
  time tells a reused pid apart); a run tagged with it (MLflow tag ``mmcal.owner``,
  Prefect tag ``mmcal-owner:...``) can be told stale later by :func:`owner_dead`
  (same host, and that process is gone, a zombie, or another process with that
  pid). A run owned by another host is never judged.
* :func:`file_lock`: an exclusive ``flock`` on ``<artifacts>/locks/<name>.lock``
  (or a given path). The kernel releases it when its holder exits, killed or not,
  so a crashed calibration never leaves a lock behind. It serialises processes
  sharing the folder on one machine (or a file system with working ``flock``).
"""

from __future__ import annotations

import fcntl
import functools
import os
import re
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from models.paths import artifacts_dir


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (seconds since the epoch, 2 decimals), None
    when there is no such process or it is a zombie (dead, not yet reaped)."""
    import psutil

    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        return f"{p.create_time():.2f}"
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


@functools.lru_cache(maxsize=None)
def _owner(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def process_owner() -> str:
    """This process: ``<host>:<pid>:<start time>``."""
    return _owner(os.getpid())


def owner_dead(owner: str) -> bool:
    """Whether the process ``owner`` (a :func:`process_owner` value) has ended. False
    for another host's process or a value not of that form (not ours to judge)."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    host, pid, started = parts
    if host != socket.gethostname():
        return False
    return _start_time(int(pid)) != started


def lock_path(name: str) -> Path:
    """``<artifacts>/locks/<name>.lock`` (``name`` made file-name safe)."""
    return artifacts_dir() / "locks" / f"{re.sub(r'[^A-Za-z0-9._-]', '_', name)}.lock"


@contextmanager
def file_lock(path: str | Path, on_wait: Callable[[], None] | None = None) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block; when
    another process (or another open of the file in this one) holds it, call
    ``on_wait`` once and block until it is free. Yields whether it had to wait."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        waited = False
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waited = True
            if on_wait is not None:
                on_wait()
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield waited
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


__all__ = ["file_lock", "lock_path", "owner_dead", "process_owner"]
