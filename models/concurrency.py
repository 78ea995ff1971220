"""Processes sharing one artifacts folder: file locks.

* :func:`file_lock`: an exclusive ``flock`` on ``<artifacts>/locks/<name>.lock``
  (or a given path). The kernel releases it when its holder exits, killed or not,
  so a crashed calibration never leaves a lock behind. It serialises processes
  sharing the folder on one machine (or a file system with working ``flock``).
"""

from __future__ import annotations

import fcntl
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from models.paths import artifacts_dir


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


__all__ = ["file_lock", "lock_path"]
