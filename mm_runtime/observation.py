"""The observation rules' parameters (:class:`ObservationConfig`): what the fits'
observations -- and so alpha, kappa, Hawkes and the regimes -- *mean*.

Defined here, on the live side, because the prior bundle carries it (its
``observation`` block, DESIGN.md section 5) and the quoter learns alpha online under
the same markout horizon and informed threshold as the fit.  The rules themselves
(markouts, fills, volatility bars) are in ``models.data.observations`` (DESIGN.md
section 3), which re-exports this class.

Units: depths in bps of the mid, times in seconds, sigma in bps/sqrt(s).
The parameters in full, derivations and measurements: docs/data/observations.md.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from .vocabulary import NS

__all__ = ["GAP_FIELDS", "QUEUE_FIELDS", "ObservationConfig"]

QUEUE_FIELDS: tuple[str, ...] = ("queue_levels", "markout_horizons_s", "queue_power")
"""The queue-order rules' fields (bundle schema 3); a schema-1/2 bundle assumes their defaults."""

GAP_FIELDS: tuple[str, ...] = ("gap_factor", "gap_min_seconds")
"""The recording-gap rule's fields: a bundle dumps them only where they differ from their
defaults, so every bundle written before them keeps its bytes (and assumes the defaults)."""


def _ns(seconds: float) -> int:
    return int(round(seconds * NS))


class ObservationConfig(BaseModel):
    """Parameters of the observation rules (recorded with every fit and in the
    synthetic market's truth, so observations can be recomputed exactly).

    ``depth_grid_bps`` (bps of the mid, strictly increasing, > 0) and
    ``repost_interval_s`` (s): the hypothetical passive quotes; ``markout_horizon_s`` (s)
    and ``informed_threshold_bps`` (bps; informed = markout strictly above it): the
    definition of α; ``bar_seconds`` (s, a whole multiple of ``rv_sample_seconds``, s),
    ``rv_floor_sigma_bps`` (bps/sqrt(s), floor of ``log_rv``) and
    ``volatility_estimator`` (``realized``, ``bipower``, ``medrv`` -- the default, jump-robust:
    docs/models/regime_live.md --, ``minrv``): the volatility bars; ``fill_at_price``: a trade at exactly the quote price fills too.
    Queue orders (DESIGN.md section 3): ``queue_levels`` K (orders at the touch and 1..K
    ticks behind it), ``markout_horizons_s`` (s, strictly increasing: markouts after a
    fill), ``queue_power`` (exponent of the L2 probabilistic queue model: a size decrease
    at our price is ahead of us with probability f(ahead)/(f(ahead)+f(behind)),
    f(x) = x**power; hftbacktest's ``PowerProbQueueFunc``).
    Recording gaps (DESIGN.md section 3): no quote and no trade for longer than
    ``max(gap_factor x the 99th percentile of the time between updates, gap_min_seconds)``
    (s) is a gap, excluded from the bars and every exposure (``models.data.gaps``).
    Each field in full: docs/data/observations.md ("The parameters").
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    depth_grid_bps: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0)
    repost_interval_s: float = 1.0
    markout_horizon_s: float = 1.0
    informed_threshold_bps: float = 1.0
    bar_seconds: float = 10.0
    rv_sample_seconds: float = 1.0
    rv_floor_sigma_bps: float = 0.01
    fill_at_price: bool = False
    volatility_estimator: Literal["realized", "bipower", "medrv", "minrv"] = "medrv"
    queue_levels: int = 3
    markout_horizons_s: tuple[float, ...] = (0.5, 1.0, 5.0, 30.0)
    queue_power: float = 2.0
    gap_factor: float = 20.0
    gap_min_seconds: float = 10.0

    @field_validator("depth_grid_bps")
    @classmethod
    def _grid(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if len(v) == 0:
            raise ValueError("depth_grid_bps must not be empty")
        arr = np.asarray(v, dtype=float)
        if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
            raise ValueError(f"depth_grid_bps must be finite and > 0, got {v}")
        if np.any(np.diff(arr) <= 0):
            raise ValueError(f"depth_grid_bps must be strictly increasing, got {v}")
        return tuple(float(x) for x in v)

    @field_validator("queue_levels")
    @classmethod
    def _levels(cls, v: int) -> int:
        if not 0 <= v <= 50:
            raise ValueError(f"queue_levels must be between 0 and 50, got {v}")
        return v

    @field_validator("markout_horizons_s")
    @classmethod
    def _horizons(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        arr = np.asarray(v, dtype=float)
        if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0) or np.any(np.diff(arr) <= 0):
            raise ValueError(f"markout_horizons_s must be non-empty, finite, > 0 and strictly increasing, got {v}")
        return tuple(float(x) for x in v)

    @field_validator("repost_interval_s", "markout_horizon_s", "bar_seconds",
                     "rv_sample_seconds", "rv_floor_sigma_bps", "queue_power", "gap_factor",
                     "gap_min_seconds")
    @classmethod
    def _positive(cls, v: float, info) -> float:
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{info.field_name} must be finite and > 0, got {v}")
        return v

    @field_validator("informed_threshold_bps")
    @classmethod
    def _threshold(cls, v: float) -> float:
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"informed_threshold_bps must be finite and >= 0, got {v}")
        return v

    @model_validator(mode="after")
    def _bar_multiple(self) -> ObservationConfig:
        bar, dt = _ns(self.bar_seconds), _ns(self.rv_sample_seconds)
        if dt <= 0 or bar % dt != 0:
            raise ValueError(f"bar_seconds ({self.bar_seconds}) must be a whole multiple of "
                             f"rv_sample_seconds ({self.rv_sample_seconds})")
        if _ns(self.repost_interval_s) <= 0:
            raise ValueError("repost_interval_s is below 1 ns")
        return self
