"""Where runs write by default: the artifacts folder (``$MMCAL_ARTIFACTS`` or
``./artifacts``), the one definition the tracking module and the flows share."""

from __future__ import annotations

import os
from pathlib import Path


def artifacts_dir() -> Path:
    """``$MMCAL_ARTIFACTS`` or ``./artifacts``, resolved."""
    return Path(os.environ.get("MMCAL_ARTIFACTS", "artifacts")).resolve()


__all__ = ["artifacts_dir"]
