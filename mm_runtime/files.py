"""Files of the live side: atomic writes, folder swaps and versioned JSON state
documents (the bundle, the live runner's state, the registry's state use them).

Atomicity: a temp file in the target's directory, fsync, ``os.replace``, fsync of
the directory (POSIX rename semantics); a reader sees the old file or the new one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "replace_dir", "parse_state_document"]


def _reject_constant(token: str):
    raise ValueError(f"non-finite number {token} (JSON allows finite numbers only)")


def parse_state_document(raw: bytes | str, origin: str, *, kind: str, schema_version: int,
                         error: type[Exception] = ValueError, what: str = "state file") -> dict[str, Any]:
    """The JSON object of a versioned state file (the live runner's, the registry's):
    finite numbers only, a top-level object whose ``kind`` and ``schema_version`` are
    the expected ones.  Raises ``error`` naming ``origin`` and the problem."""
    def fail(msg: str):
        raise error(f"{origin}: {msg}")

    try:
        doc = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        fail(f"invalid JSON (truncated or corrupt?): {exc}")
    if not isinstance(doc, dict):
        fail("top level must be a JSON object")
    if doc.get("kind") != kind:
        fail(f"kind: expected {kind!r}, got {doc.get('kind')!r} (not a {what})")
    v = doc.get("schema_version")
    if "schema_version" not in doc:
        fail("schema_version: missing")
    if isinstance(v, bool) or v != schema_version:
        fail(f"schema_version: unknown schema version {v!r} (this runtime reads {schema_version})")
    return doc


def replace_dir(tmp: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Put the finished folder ``tmp`` at ``target`` (same parent directory): an
    existing ``target`` is renamed aside first and removed after, so ``target`` is the
    old complete folder or the new complete one, never a half-written one (two
    renames: a directory cannot be swapped in one atomic step on POSIX)."""
    tmp, target = Path(tmp), Path(target)
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
    return target


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temp file in the same directory,
    fsync, rename over ``path``, fsync the directory.  A reader (the hot-reloading
    Quoter) sees either the old file or the new one, never a partial write.
    Returns the path written."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - e.g. platforms without directory fsync
        pass
    return p
