"""calibrate: every historical estimate on one market (the entry point of
``mmcal params calibrate``), each timed, a component that cannot be estimated left
None with a note.

Units: as the estimators'; ``sigma_bps`` in bps/sqrt(s). Overview: docs/models/historical.md.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from models.data import observations as ob
from models.data.tables import DataError, Market

from .cascade import CascadeResult, cascade_oi_threshold
from .common import HistoricalConfig, _require_columns, check_fills
from .floor import SpreadFloorResult, spread_floor
from .hawkes_moments import HawkesResult, hawkes
from .kappa_mle import KappaResult, kappa
from .touch_share import AlphaTouchResult, alpha_touch
from .toxicity import ToxicHoursResult, toxic_hours


class HistoricalResult(BaseModel):
    """Everything :func:`calibrate` estimated; a component that could not be estimated
    is None and ``notes`` says why."""

    asset: str
    source: str
    duration_s: float
    config: dict[str, Any]
    alpha_touch: AlphaTouchResult | None = None
    kappa: KappaResult | None = None
    hawkes: HawkesResult | None = None
    toxic_hours: ToxicHoursResult | None = None
    spread_floor: SpreadFloorResult | None = None
    cascade: CascadeResult | None = None
    sigma_bps: float | None = None
    timings_s: dict[str, float] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


def _check_market(market: Market) -> None:
    if not isinstance(market, Market):
        raise ValueError(f"calibrate: expected a Market, got {type(market).__name__}")
    for name, cols in (("trades", ("ts", "price", "size", "side")), ("quotes", ("ts", "bid", "ask"))):
        df = getattr(market, name)
        if df is None or len(df) == 0:
            raise DataError(None, f"{name} table", f"market {market.asset!r} has no {name}")
        _require_columns(df, cols, f"market {market.asset!r} {name} table")
    if market.open_interest is not None:
        _require_columns(market.open_interest, ("ts", "oi"), f"market {market.asset!r} open_interest table")


def calibrate(market: Market, config: HistoricalConfig | None = None, *, regimes: Any = None,
              bars: pd.DataFrame | None = None) -> HistoricalResult:
    """Every estimate of this package on one market (docs/models/historical.md).

    ``regimes``: what :func:`models.data.observations.label_regimes` accepts (one
    int per bar -- the regime model's path or the synthetic truth's ``regime_path``
    --, probabilities, or None for the placeholder quantile labelling); ``bars``
    default to :func:`models.data.observations.volatility_bars` with the config's
    observation rules. A component that cannot be estimated on this market (too few
    fills, arrivals, hours ...) is None and ``notes`` says why; structural problems
    (an empty market, missing columns) raise.
    """
    from models import hawkes as hawkes_model
    from models import kappa as kappa_model

    cfg = config or HistoricalConfig()
    _check_market(market)
    oc = cfg.observation
    if bars is None:
        bars = ob.volatility_bars(market, oc)
    reg = ob.label_regimes(bars, regimes)
    out = HistoricalResult(asset=str(market.asset), source=str(market.source), duration_s=float(market.duration_s),
                           config=cfg.model_dump(mode="json"))
    dur = bars["duration_s"].to_numpy(dtype=float)
    if dur.sum() > 0:
        out.sigma_bps = float(math.sqrt(bars["rv"].to_numpy(dtype=float).sum() / dur.sum()) * 1e4)

    def run(name: str, fn):
        t0 = time.perf_counter()
        try:
            setattr(out, name, fn())
        except (ValueError, DataError) as e:
            out.notes.append(f"{name}: {e}")
        out.timings_s[name] = time.perf_counter() - t0

    fills = None
    t0 = time.perf_counter()
    try:
        fills = check_fills(ob.passive_fills(market, oc, bars=bars, regimes=reg))
    except (ValueError, DataError) as e:
        out.notes.append(f"passive fills: {e}")
    out.timings_s["passive_fills"] = time.perf_counter() - t0
    if fills is not None:
        run("alpha_touch", lambda: alpha_touch(fills, cfg))
        run("toxic_hours", lambda: toxic_hours(fills, cfg))
        run("spread_floor", lambda: spread_floor(fills, cfg, out.sigma_bps))
    run("kappa", lambda: kappa(kappa_model.observations(market, reg, config=oc, bars=bars), cfg))
    run("hawkes", lambda: hawkes(hawkes_model.observations(market, reg, config=oc, bars=bars), cfg))
    if market.open_interest is None:
        out.notes.append("cascade: the market has no open interest")
    else:
        run("cascade", lambda: cascade_oi_threshold(market, cfg))
    return out
