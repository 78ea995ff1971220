"""What the historical estimators share: their settings (:class:`HistoricalConfig`),
one estimate with its error bar (:class:`Estimate`), the passive-fill check and the
small statistics they reuse (normal and Wilson intervals, sweep-clustered means).

Units: bps of the mid, seconds. Rules and citations: docs/models/historical.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy import stats

from mm_runtime.vocabulary import DEPTH_BUCKET_LABELS
from models.data.observations import ObservationConfig


TOUCH_BUCKET = DEPTH_BUCKET_LABELS[0]
FILL_COLUMNS = ("ts", "side", "depth_bps", "markout_bps", "informed", "regime")


class HistoricalConfig(BaseModel):
    """Settings of :func:`calibrate` (docs/models/historical.md for each rule)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    observation: ObservationConfig = Field(default_factory=ObservationConfig)
    ci_level: float = Field(0.90, gt=0.0, lt=1.0)
    fee_bps: float = Field(0.0, description="maker fee in bps per fill (negative = rebate); "
                                            "the runtime's QuoterConfig.fee_bps default")
    latency_s: float = Field(0.0, ge=0.0, description="quote round trip for the derived floor's "
                                                      "latency slippage (0: none)")
    slippage_z: float = Field(1.0, ge=0.0)
    kappa_min_depth_bps: float = Field(0.0, ge=0.0)
    hawkes_groups: int = Field(20, ge=5)
    hawkes_n_tau: int = Field(24, ge=6)
    hawkes_tau_min_s: float | None = Field(None, gt=0.0)
    hawkes_tau_max_s: float | None = Field(None, gt=0.0)
    hawkes_min_events: int = Field(200, ge=10)
    hawkes_min_windows: int = Field(100, ge=10)
    toxic_alpha: float = Field(0.05, gt=0.0, lt=1.0)
    toxic_min_sweeps: int = Field(30, ge=2)
    toxic_min_excess_bps: float = Field(0.0, ge=0.0)
    spread_floor_min_sweeps: int = Field(20, ge=2)
    spread_floor_window_s: float = Field(900.0, gt=0.0)
    cascade_window_s: float = Field(5.0, gt=0.0, description="drop from the peak of this trailing window")
    cascade_horizon_s: float = Field(10.0, gt=0.0, description="absolute mid move over this horizon")
    cascade_min_group: int = Field(20, ge=2)
    cascade_shifts: int = Field(199, ge=19)
    cascade_alpha: float = Field(0.05, gt=0.0, lt=1.0)
    seed: int = 0

    @field_validator("fee_bps")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"fee_bps must be finite, got {v}")
        return v


class Estimate(BaseModel):
    """One estimate: ``value``, standard error ``se``, central interval ``ci`` at the
    config's ``ci_level``, and ``n``: the observations behind it (effective where the
    field says so)."""

    model_config = ConfigDict(frozen=True)

    value: float
    se: float
    ci: tuple[float, float]
    n: float


def _z(level: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 2.0))


def _normal_ci(value: float, se: float, level: float, lo: float = -math.inf,
               hi: float = math.inf) -> tuple[float, float]:
    z = _z(level)
    return (float(max(lo, value - z * se)), float(min(hi, value + z * se)))


def _wilson(p: float, n: float, level: float) -> tuple[float, float]:
    """Wilson (1927) score interval for a proportion p from n (effective) trials."""
    if n <= 0:
        return (0.0, 1.0)
    z = _z(level)
    d = 1.0 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (float(max(0.0, c - h)), float(min(1.0, c + h)))


def _require_columns(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{what}: expected a DataFrame, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(repr(c) for c in missing)}; "
                         f"expected {list(cols)}")


def _sweep_ids(ts: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Cluster id of each fill: fills with the same ts and side are one sweep."""
    key = np.stack([np.asarray(ts, np.int64), np.asarray(side, np.int64)], axis=1)
    if len(key) == 0:
        return np.zeros(0, np.int64)
    _, inv = np.unique(key, axis=0, return_inverse=True)
    return inv.ravel().astype(np.int64)


def _clustered_mean(x: np.ndarray, cl: np.ndarray) -> tuple[float, float, int]:
    """Mean of x and its cluster-robust standard error (Cameron & Miller 2015, eq. 11
    for an intercept-only regression with the small-sample factor C/(C-1)); returns
    (mean, se, number of clusters)."""
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    m = float(x.mean())
    _, cl = np.unique(cl, return_inverse=True)
    C = int(cl.max()) + 1
    s = np.bincount(cl, weights=x - m, minlength=C)
    if C < 2:
        return m, math.nan, C
    v = C / (C - 1) * float((s * s).sum()) / (n * n)
    return m, math.sqrt(v), C


def check_fills(fills: pd.DataFrame, what: str = "fills") -> pd.DataFrame:
    """The passive-fill rows the alpha model keeps (a regime, a finite markout);
    ValueError naming missing columns."""
    _require_columns(fills, FILL_COLUMNS, what)
    keep = (fills["regime"].to_numpy() >= 0) & np.isfinite(fills["markout_bps"].to_numpy(dtype=float))
    return fills[keep].reset_index(drop=True)


def _adverse_bps(f: pd.DataFrame) -> np.ndarray:
    """Adverse mid move against the quote over the markout horizon (bps):
    markout (from the fill price) + depth (docs/models/historical.md)."""
    return f["markout_bps"].to_numpy(dtype=float) + f["depth_bps"].to_numpy(dtype=float)


def _per_sweep(f: pd.DataFrame, x: np.ndarray) -> pd.DataFrame:
    """One row per sweep: its ts, the mean of x over its fills, and its fill count."""
    cl = _sweep_ids(f["ts"].to_numpy(), f["side"].to_numpy())
    C = int(cl.max()) + 1 if len(cl) else 0
    n = np.bincount(cl, minlength=C)
    ts = np.zeros(C, np.int64)
    ts[cl] = f["ts"].to_numpy(np.int64)
    return pd.DataFrame({"ts": ts, "x": np.bincount(cl, weights=x, minlength=C) / np.maximum(n, 1),
                         "n_fills": n})
