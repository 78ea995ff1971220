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

QUEUE_BUCKETS: tuple[float, ...] = (0.0, 2.0, 5.0, 10.0, 20.0)
"""Lower edges of the fills model's queue buckets: the queue ahead of an order at
placement in units of the market's median trade size (half-open intervals, the last
open-ended; docs/models/fills.md)."""

QUEUE_BUCKET_LABELS: tuple[str, ...] = tuple(bucket_keys(QUEUE_BUCKETS))
"""``("[0,2)", "[2,5)", "[5,10)", "[10,20)", "[20,inf)")``."""

HAZARD_CUT_FRACTIONS: tuple[float, ...] = (0.1, 0.3, 0.6)
"""Inner cut points of the fills model's piecewise-constant hazard in time since
placement, as fractions of the re-post interval: pieces ``[0, 0.1 T)``, ``[0.1 T, 0.3 T)``,
``[0.3 T, 0.6 T)``, ``[0.6 T, inf)`` for a re-post interval T (docs/models/fills.md)."""


def hazard_cuts_s(repost_interval_s: float, fractions=HAZARD_CUT_FRACTIONS) -> tuple[float, ...]:
    """The hazard pieces' lower edges in seconds: ``(0, f1 T, f2 T, ...)``."""
    return (0.0, *(float(f) * float(repost_interval_s) for f in fractions))


def piece_labels(cuts_s) -> list[str]:
    """Names of the hazard pieces: ``(0, 0.1, 0.3) -> ["0-0.1s", "0.1-0.3s", "0.3s+"]``."""
    c = [float(x) for x in cuts_s]
    return [f"{lo:g}-{hi:g}s" for lo, hi in zip(c, c[1:], strict=False)] + [f"{c[-1]:g}s+"]


def horizon_label(h: float) -> str:
    """Name of a markout horizon: ``0.5 -> "0.5s"``."""
    return f"{float(h):g}s"


NS: int = 1_000_000_000
"""Nanoseconds per second (canonical timestamps are int64 ns, UTC)."""

__all__ = ["REGIMES", "SIDES", "DEPTH_BUCKETS_BPS", "DEPTH_BUCKET_LABELS", "HAZARD_CUT_FRACTIONS", "NS",
           "QUEUE_BUCKETS", "QUEUE_BUCKET_LABELS", "bucket_keys", "hazard_cuts_s", "horizon_label", "piece_labels"]
