"""The live session's journal: what a paper session did, with timestamps, so that it
can be reconciled with a replay of the same window (``mmcal paper --reconcile STATE``,
:mod:`mm_runtime.paper.reconcile`).

One JSON object per line, appended (a restart appends a new session), flushed after
every record; every record has ``kind``, the feed time ``ts`` (s since the epoch) and
``trades``: how many public trades the session had processed before it (the index of
the trade that caused a fill; a ladder applies from trade ``trades`` on).

* ``session`` (first event): asset, starting account (cash, position: a restored state's
  are not flat), capital, fee, refresh, paper fills on/off, the QuoterConfig, the whole
  bundle the session started with (so the replay uses the same priors) and its lineage;
* ``ladder`` (every publish): valid, reason, model version, per side the levels'
  prices, sizes and depths (``px``, ``sz``, ``depth``: [bid levels, ask levels]);
* ``fill``: side (+1 bought, -1 sold), price, size, level, depth, the trade (price,
  size), the fee paid, the mid, the account after it;
* ``reload``: a new bundle took over (lineage before → after, model versions, checksum);
* ``end`` (shutdown): last feed time, trades, account, PnL, why it stopped.

Format and use: docs/runtime/live.md ("Session journal") and docs/runtime/paper.md
("Reconciling a live session").
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["JOURNAL_SCHEMA_VERSION", "Journal", "JournalError", "read_sessions"]

JOURNAL_SCHEMA_VERSION = 1
KINDS = ("session", "ladder", "fill", "reload", "end")


class JournalError(ValueError):
    """A journal that cannot be read (the message names the file, the 1-based line and the problem)."""


class Journal:
    """Appends a live session's records to ``path`` (module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, kind: str, **fields: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"journal: unknown record kind {kind!r}")
        self._fh.write(json.dumps({"kind": kind, **fields}, allow_nan=False, separators=(",", ":")) + "\n")
        self._fh.flush()

    def start(self, **fields: Any) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        self.write("session", schema_version=JOURNAL_SCHEMA_VERSION, started_at=now, **fields)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def read_sessions(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The sessions of a journal, oldest first: each ``{"session": record, "ladders",
    "fills", "reloads": [records], "end": record or None}`` (``end`` is None for a
    session that was killed). A line that is not a record raises :class:`JournalError`;
    a last line cut short by a crash is ignored."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise JournalError(f"{p}: cannot read: {exc.strerror or exc}") from None
    sessions: list[dict[str, Any]] = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            if i == len(lines):  # the last line of a killed process
                break
            raise JournalError(f"{p}: line {i}: not a JSON record") from None
        kind = rec.get("kind") if isinstance(rec, dict) else None
        if kind not in KINDS:
            raise JournalError(f"{p}: line {i}: kind: expected one of {', '.join(KINDS)}, got {kind!r}")
        if kind == "session":
            if rec.get("schema_version") != JOURNAL_SCHEMA_VERSION:
                raise JournalError(f"{p}: line {i}: schema_version: unknown journal schema "
                                   f"{rec.get('schema_version')!r} (this runtime reads {JOURNAL_SCHEMA_VERSION})")
            sessions.append({"session": rec, "ladders": [], "fills": [], "reloads": [], "end": None, "line": i})
            continue
        if not sessions:
            raise JournalError(f"{p}: line {i}: a {kind} record before any session record")
        s = sessions[-1]
        if kind == "end":
            s["end"] = rec
        else:
            s[kind + "s"].append(rec)
    if not sessions:
        raise JournalError(f"{p}: no session in the journal")
    return sessions
