"""Where runs write by default: the artifacts folder (``$MMCAL_ARTIFACTS`` or
``./artifacts``), the one definition the tracking module and the flows share; and
how to run a tool of the project's environment as typed (:func:`tool_command`)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path


def artifacts_dir() -> Path:
    """``$MMCAL_ARTIFACTS`` or ``./artifacts``, resolved."""
    return Path(os.environ.get("MMCAL_ARTIFACTS", "artifacts")).resolve()


REPO = Path(__file__).resolve().parents[1]
MM_SCRIPT = REPO / "mm"


def tool_command(tool: str) -> str:
    """How to type ``tool`` (a command of the project's environment: ``mlflow``,
    ``prefect``) in this shell: through the repository's ``mm`` script, which runs
    the locked environment's tools (``./mm mlflow`` from the repository root, its
    absolute path elsewhere); the bare name without the script (an installed package)."""
    if not MM_SCRIPT.is_file():
        return tool
    return f"./mm {tool}" if Path.cwd().resolve() == REPO else f"{shlex.quote(str(MM_SCRIPT))} {tool}"


__all__ = ["MM_SCRIPT", "REPO", "artifacts_dir", "tool_command"]
