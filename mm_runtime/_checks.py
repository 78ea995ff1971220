"""Argument checks of the pure helper modules (:mod:`mm_runtime.power`,
:mod:`mm_runtime.params`, and offline :mod:`models.historical.derived`): plain floats
out, ``ValueError`` naming the argument."""

from __future__ import annotations

import math


def real(name: str, x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real scalar, got {x!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def positive(name: str, x) -> float:
    v = real(name, x)
    if v <= 0:
        raise ValueError(f"{name} must be > 0, got {v}")
    return v


def non_negative(name: str, x) -> float:
    v = real(name, x)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


def open_unit(name: str, x) -> float:
    v = real(name, x)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {v}")
    return v
