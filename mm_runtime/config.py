"""Quoter configuration: one frozen pydantic model with documented defaults.

The numeric fields are copied into the jitted state as arrays by
:func:`mm_runtime.core.init` (so changing a value never retraces the step, and a
batch of assets may carry different limits); ``n_levels`` and ``pending_capacity``
set array shapes.  The last block configures only the Python-side ``Quoter``.

Units: depths bps, times s, sizes base units, prices/notional quote currency,
``gamma`` 1/(bps · base unit) (GLFT risk aversion: a position of q units held for
one second of σ = 1 bps/√s costs γ·q²/2 in these units).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .power import tier_min_n

__all__ = ["QuoterConfig"]

Pos = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]


class QuoterConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    # ---- ladder geometry --------------------------------------------------------
    n_levels: Annotated[int, Field(ge=1, le=64)] = 5
    """K quotes per side."""
    level_ratio: Annotated[float, Field(gt=1.0)] = 1.5
    """Geometric spacing: level k sits at ``half_spread · level_ratio**k`` (plus the skew shift)."""
    min_depth_bps: NonNeg = 0.5
    """No quote closer to the mid than this."""
    max_depth_bps: Annotated[float, Field(gt=0, lt=10_000)] = 2_000.0
    """No quote further than this (keeps bid prices positive)."""
    max_skew_bps: NonNeg = 50.0
    """Cap on the inventory shift ``|skew · position|``."""
    tick_size: NonNeg = 0.0
    """Price grid (quote currency); bids round down, asks up. 0 = no rounding."""
    size_increment: NonNeg = 0.0
    """Size grid (base units); sizes round down. 0 = no rounding."""

    spread_floor_bps: NonNeg = 0.0
    """Minimum GLFT half-spread, bps (the default of the registry's ``spread_floor_bps``;
    0 = none).  The registry's value once tier 1 is calibrated, else the bundle's
    (docs/runtime/ladder.md, "Where each ladder value comes from")."""
    toxic_hour_multiplier: Pos = 1.0
    """The half-spread is multiplied by this in the ``toxic_hours_utc`` (the default of
    the registry's ``toxic_hour_multiplier``)."""
    toxic_hours_utc: tuple[Annotated[int, Field(ge=0, le=23)], ...] = ()
    """UTC hours whose adverse selection is worse (``mmcal params calibrate``'s
    toxic hours); empty = none."""

    # ---- cold start -------------------------------------------------------------
    cold_start: bool = True
    """While α is prior-only (no depth bucket whose α cells are calibrated, regime-
    weighted share ≥ 1/2) and ``learn`` is on, a side the Kelly ladder leaves empty
    gets one small, wide order so that fills arrive (docs/runtime/ladder.md, "Cold
    start")."""
    cold_start_depth_mult: Annotated[float, Field(ge=1)] = 2.0
    """The cold-start order sits this many GLFT half-spreads from the mid (plus the
    inventory shift), within [min_depth_bps, max_depth_bps]."""
    cold_start_notional: NonNeg | None = None
    """Its notional, quote currency; None = twice ``min_notional``.  Capped by the
    margin and position headroom; below ``min_notional`` it is not posted."""

    # ---- GLFT (Guéant, Lehalle, Fernandez-Tapia 2013) ---------------------------
    gamma: Pos = 0.1
    """Risk aversion γ, 1/(bps · base unit)."""
    xi: Pos | None = None
    """ξ of the GLFT closed form; None = γ (the paper's model with ξ = γ)."""
    delta: Pos = 1.0
    """Δ, the GLFT order-size unit, base units."""

    # ---- fill and edge model ----------------------------------------------------
    quote_horizon_s: Pos = 30.0
    """τ of the first-passage fill probability P(δ, τ) = 2Φ(-δ/(σ√τ)): a quote's life."""
    fee_bps: float = 0.0
    """Maker fee in bps (negative = rebate), paid on every fill: an uninformed fill
    gains c·δ - fee, an informed one loses AS + fee (``mm_runtime.ladder.build_ladder``)."""
    spread_capture: float | None = None
    """c, the share of the quoted depth an uninformed fill earns at the markout horizon;
    None = the bundle's ``spread_capture`` mean, or 1 (DESIGN.md §6's SC = δ - fee) when
    the bundle has none."""
    use_hawkes_intensity: bool = False
    """GLFT arrival rate A from the current Hawkes intensity instead of the Poisson rate."""
    use_fills_model: bool = True
    """Where the bundle has a fills model (``params.fills``) and ``tick_size > 0``: the ladder
    on the tick grid with queue-aware fill probabilities (:mod:`mm_runtime.tick_ladder`);
    False = the depth ladder of the other bundles."""
    fills_refresh_s: Pos | None = None
    """τ of the tick ladder's fill probability (s): the refresh interval; None = the
    bundle's ``observation.repost_interval_s`` (the interval the hazard was fitted on)."""
    fills_ladder_start: Literal["glft", "touch"] = "glft"
    """Where the tick ladder starts: "glft" = the tick at GLFT's depth (inventory shift
    included); "touch" = the touch moved back by the inventory shift alone."""
    fills_half_life_s: Pos = 4 * 3600.0
    """The tick ladder's online learning from own fills (:mod:`mm_runtime.fills_learning`):
    its fills, exposure and markout evidence halves every this many seconds (the other
    estimators' 4 h); ``learn=False`` turns it off."""
    sigma_floor_bps: Pos = 1e-3
    """σ below this (bps/√s) is raised to it (a zero σ would make P a step)."""

    # ---- Kelly-stochastic sizing (the original system's flags) ------------------
    use_kelly_stochastic: bool = True
    """Kelly allocation; False = proportional allocation by expected edge P·E."""
    kelly_fraction: Annotated[float, Field(gt=0, le=1)] = 0.25
    """Base Kelly fraction (the original's 0.25)."""
    alpha_model: Literal["buckets", "parametric"] | None = None
    """α(δ) from the per-bucket Beta posteriors ("buckets"), or the original system's
    α_touch·exp(-δ/δ_char) ("parametric").  None (default): "parametric" when
    ``kelly_alpha_touch`` or ``kelly_alpha_decay_bps`` is set, else "buckets"."""
    kelly_alpha_touch: Annotated[float, Field(gt=0, lt=1)] | None = None
    """α_touch of the parametric α(δ) (the original's 0.15); None = the learned/prior
    α of the first depth bucket, regime-weighted."""
    kelly_alpha_decay_bps: Pos | None = None
    """δ_char of the parametric α(δ) (the original's 10 bp); None = the bundle's
    ``alpha_decay_bps`` mean."""
    kelly_alpha_floor: Annotated[float, Field(ge=0, lt=1)] | None = None
    """α_floor of the parametric α(δ) = α_floor + (α_touch − α_floor)·exp(-δ/δ_char) (capped
    at α_touch); None = the bundle's ``alpha_floor`` mean, 0 (the original's decay to zero)
    when the bundle has none."""
    regime_kelly_multipliers: tuple[float, float, float, float] = (1.5, 1.0, 0.5, 0.25)
    """Kelly fraction multiplier per regime low…extreme, weighted by regime probabilities."""
    kelly_fraction_min: Pos = 0.05
    kelly_fraction_max: Annotated[float, Field(gt=0, le=1)] = 0.75
    max_kelly_f: Pos = 10.0
    """Cap on f* = E/Var (Var → 0 when α → 0)."""

    # ---- account limits ---------------------------------------------------------
    leverage: Pos = 1.0
    """Notional per unit of margin: capacity = margin_available · leverage / price."""
    max_position: Pos = 10.0
    """|position| limit, base units; past it the quoter is reduce-only."""
    min_notional: NonNeg = 10.0
    """Levels with price·size below this are dropped (quote currency)."""

    # ---- safety -----------------------------------------------------------------
    max_age_s: Pos = 5.0
    """Market data older than this (now - ts) gives no quotes; also caps the exposure
    credited to the arrival-rate estimator across a gap."""

    # ---- online learning --------------------------------------------------------
    learn: bool = True
    """False = never trust learned values (always the bundle's prior means)."""
    markout_horizon_s: Pos | None = None
    """A fill's markout is taken this long after it, s.  None (default) = the bundle's
    ``observation.markout_horizon_s`` (the fit's definition of α; 1 s for a schema-1
    bundle); a value that differs from the bundle's is refused
    (:func:`mm_runtime.core.resolve_config`)."""
    informed_threshold_bps: float | None = None
    """A fill is informed when its markout exceeds this, bps.  None (default) = the
    bundle's ``observation.informed_threshold_bps`` (1 bp for a schema-1 bundle); a
    value that differs from the bundle's is refused."""
    pending_capacity: Annotated[int, Field(ge=1, le=4096)] = 64
    """Ring buffer of fills awaiting their markout; the oldest is overwritten."""
    forgetting_half_life_s: Pos = 4 * 3600.0
    """Learned evidence halves every this many seconds (the original's 4 h staleness)."""
    alpha_min_n: NonNeg = float(tier_min_n("pnl"))
    """Tier 'pnl' (α): a (regime, bucket) cell is trusted after this many effective
    resolved fills (data alone) …  Default 170, the power analysis's "alpha" row
    (:func:`mm_runtime.power.calibration_thresholds`): α_touch ≈ 0.15 to ±30 % at 90 %,
    n = (1.6449/0.3)²·(0.85/0.15) − 1 = 169.35 → 170.  (The original system used 100,
    which gives only ±39 % at 90 % for α = 0.15.)"""
    alpha_max_cv: Pos = 0.5
    """… and a posterior cv (prior included) at most this (the original's 0.5).  Not
    the power analysis's target (its CV form is 0.30/1.6449 = 0.18): a backstop that,
    once ``alpha_min_n`` fills are in, withholds trust only from cells with a tiny α
    (cv = sqrt((1−α)/(α(a+b+1))) > 0.5 ⇔ α < 1/(1 + 0.25(a+b+1)), about 2 % at
    a + b = 190), where the ±30 % target would ask for some 1,500 fills."""
    intensity_min_n: NonNeg = float(tier_min_n("intensity"))
    """Tier 'intensity' (κ, A): trusted after this many effective arrivals …  Default
    68, the larger of the power analysis's rows "kappa" (κ to ±20 % at 90 %:
    (1.6449/0.2)² = 67.64 → 68) and "arrival_rate" (A to ±30 % at 90 %: 31).  (The
    previous default 30 gave κ only ±30 % at 90 %.)"""
    intensity_max_cv: Pos = 0.5
    """… and a posterior cv 1/sqrt(shape) at most this: implied by the count once
    a0 + n ≥ 4, so only a backstop (the targets' CV forms are 0.12 and 0.18)."""

    # ---- Quoter class (Python side) ---------------------------------------------
    reload_check_interval_s: NonNeg = 1.0
    """How often ``Quoter.on_event`` stats the bundle file for a hot reload."""
    reload_keeps_learning: bool = True
    """On reload, re-base the learned evidence onto the new priors (else reset)."""
    metrics_interval_s: NonNeg = 1.0
    """Gauges are refreshed at most this often (the latency histogram every call)."""
    log_interval_s: NonNeg = 10.0
    """A status log line at most this often (and whenever binding/regime changes)."""

    @model_validator(mode="before")
    @classmethod
    def _resolve_alpha_model(cls, data):
        if isinstance(data, dict) and data.get("alpha_model") is None:
            explicit = data.get("kelly_alpha_touch") is not None or data.get("kelly_alpha_decay_bps") is not None
            data = {**data, "alpha_model": "parametric" if explicit else "buckets"}
        return data

    @model_validator(mode="after")
    def _check(self):
        if self.kelly_fraction_min > self.kelly_fraction_max:
            raise ValueError("kelly_fraction_min must be <= kelly_fraction_max")
        if self.min_depth_bps >= self.max_depth_bps:
            raise ValueError("min_depth_bps must be < max_depth_bps")
        if any(m < 0 for m in self.regime_kelly_multipliers):
            raise ValueError("regime_kelly_multipliers must be >= 0")
        return self
