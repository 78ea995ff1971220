"""The project's vocabulary, defined once (DESIGN.md section 2): regimes, sides,
depth buckets and the time unit of the canonical tables. Every module imports
these names from here.
"""

from __future__ import annotations

REGIMES: tuple[str, ...] = ("low", "normal", "high", "extreme")
"""The 4 volatility regimes, ordered by volatility."""

SIDES: tuple[str, ...] = ("buy", "sell")
"""Per-side parameters are named by the aggressor: a ``buy`` arrival lifts our ask."""

DEPTH_BUCKETS_BPS: tuple[float, ...] = (0.0, 2.0, 5.0, 10.0)
"""Lower edges of α's depth buckets in bps of the mid (as in the original system)."""


def bucket_keys(edges) -> list[str]:
    """Keys of the depth buckets, half-open intervals in bps:
    ``[0, 2, 5, 10] -> ["[0,2)", "[2,5)", "[5,10)", "[10,inf)"]``."""
    e = [float(x) for x in edges]
    return [f"[{lo:g},{hi:g})" for lo, hi in zip(e, e[1:], strict=False)] + [f"[{e[-1]:g},inf)"]


DEPTH_BUCKET_LABELS: tuple[str, ...] = tuple(bucket_keys(DEPTH_BUCKETS_BPS))
"""``("[0,2)", "[2,5)", "[5,10)", "[10,inf)")``."""

NS: int = 1_000_000_000
"""Nanoseconds per second (canonical timestamps are int64 ns, UTC)."""

__all__ = ["REGIMES", "SIDES", "DEPTH_BUCKETS_BPS", "DEPTH_BUCKET_LABELS", "NS", "bucket_keys"]
