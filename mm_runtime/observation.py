"""The observation rules' parameters (:class:`ObservationConfig`): what the fits'
observations -- and so alpha, kappa, Hawkes and the regimes -- *mean*.

Defined here, on the live side, because the prior bundle carries it (its
``observation`` block, DESIGN.md section 5) and the quoter learns alpha online under
the same markout horizon and informed threshold as the fit.  The rules themselves
(markouts, fills, volatility bars) are in ``models.data.observations`` (DESIGN.md
section 3), which re-exports this class.

Units: depths in bps of the mid, times in seconds, sigma in bps/sqrt(s).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from .vocabulary import NS

__all__ = ["ObservationConfig"]


def _ns(seconds: float) -> int:
    return int(round(seconds * NS))


class ObservationConfig(BaseModel):
    """Parameters of the observation rules (recorded with every fit and in the
    synthetic market's truth, so observations can be recomputed exactly).

    * ``depth_grid_bps``: depths (bps of the mid) of the hypothetical passive
      quotes, strictly increasing, > 0.
    * ``repost_interval_s``: the hypothetical quotes are re-posted every this
      many seconds at the then-prevailing mid.
    * ``markout_horizon_s``: h, the markout horizon (s).
    * ``informed_threshold_bps``: a fill is ``informed`` when its markout at h is
      strictly above this (bps), default 1 bp at h = 1 s (DESIGN.md section 3).
    * ``bar_seconds``: volatility bar length (s).
    * ``rv_sample_seconds``: the mid is sampled previous-tick on this grid for
      realized variance; ``bar_seconds`` must be a whole multiple of it.
    * ``rv_floor_sigma_bps``: floor for ``log_rv`` (see
      ``models.data.observations.volatility_bars``), expressed as a volatility in
      bps/sqrt(s): a bar whose realized variance is
      below ``(rv_floor_sigma_bps * 1e-4)**2 * bar_seconds`` (in particular a
      bar with no price change, rv = 0) gets ``log_rv`` of that floor instead of
      ``-inf``. Default 0.01 bps/sqrt(s), i.e. ``log_rv`` >= log(1e-11) = -25.3 for
      10 s bars, far below any traded market (the synthetic market's quietest
      regime diffuses at 0.10 bps/sqrt(s) plus jumps).
    * ``fill_at_price``: if False (default) a fill needs a trade strictly through
      the quote price; if True a trade at exactly the quote price fills too.
    * ``volatility_estimator``: how a bar's variance (``iv``, hence ``log_rv`` and
      ``sigma_bps``) is computed from its sampled returns
      (``models.data.observations.volatility_bars``, ``VOLATILITY_ESTIMATORS``):
      ``"realized"`` (sum of squares: diffusion
      plus jumps), or a jump-robust estimator of the diffusive (integrated)
      variance: ``"bipower"`` (Barndorff-Nielsen & Shephard 2004; scaling
      mu1^-2 = pi/2), ``"medrv"`` (Andersen, Dobrev & Schaumburg 2012;
      pi/(6 - 4 sqrt(3) + pi) = 1.419) or ``"minrv"`` (same paper; pi/(pi - 2) =
      2.752), each on the bar's non-zero returns. Default ``"realized"``: the
      live regime filter (``mm_runtime.estimators``) computes realized variance,
      and the jump-robust bars recover the synthetic market's diffusive
      volatilities only on a finer grid (benchmarks/README.md, "regime on the
      synthetic market: jump-robust bars").
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
    volatility_estimator: Literal["realized", "bipower", "medrv", "minrv"] = "realized"

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

    @field_validator("repost_interval_s", "markout_horizon_s", "bar_seconds",
                     "rv_sample_seconds", "rv_floor_sigma_bps")
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
