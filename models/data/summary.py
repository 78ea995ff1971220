"""The data summary behind `mmcal data inspect` (and the demo's first step).

Everything here is computed from the canonical tables and the observation rules
of `models.data.observations`; the CLI only formats it.

* mean spread: time-weighted mean of (ask - bid) / mid in bps over the quote
  table (each BBO weighted by how long it stood; the last one gets no weight).
* realized volatility per regime: mean of the bars' sigma_bps (bps/sqrt(s)) and
  the pooled sigma sqrt(sum rv / sum bar time) * 1e4 over the bars of each regime.
  Regime labels come from the regime model when one is given, else from the
  placeholder quantile labelling of `observations.label_regimes`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.data import observations as ob
from models.data.tables import Market


def time_weighted_spread_bps(quotes) -> float:
    bid = quotes["bid"].to_numpy()
    ask = quotes["ask"].to_numpy()
    mid = 0.5 * (bid + ask)
    spread = (ask - bid) / mid * 1e4
    ts = quotes["ts"].to_numpy()
    w = np.diff(ts).astype("float64")
    if len(w) == 0 or w.sum() <= 0:
        return float(spread.mean())
    return float(np.sum(spread[:-1] * w) / w.sum())


def inspect_market(market: Market, config: "ob.ObservationConfig | None" = None,
                   regimes=None) -> dict[str, Any]:
    """Summary of one market: row counts, span, arrivals, spread, vol per regime, fills."""
    config = config or ob.ObservationConfig()
    arr = ob.arrivals(market)
    bars = ob.volatility_bars(market, config)
    reg = ob.label_regimes(bars) if regimes is None else np.asarray(regimes)
    fills = ob.passive_fills(market, config, bars=bars, regimes=reg)

    vol = []
    for r, name in enumerate(ob.REGIMES):
        sel = reg == r
        n = int(sel.sum())
        if n == 0:
            vol.append({"regime": name, "bars": 0, "share": 0.0,
                        "mean_sigma_bps": None, "pooled_sigma_bps": None})
            continue
        rv = bars["rv"].to_numpy()[sel]
        vol.append({
            "regime": name,
            "bars": n,
            "share": n / len(reg),
            "mean_sigma_bps": float(bars["sigma_bps"].to_numpy()[sel].mean()),
            "pooled_sigma_bps": float(np.sqrt(rv.sum() / (n * config.bar_seconds)) * 1e4),
        })

    side = arr["side"].to_numpy()
    depth = arr["depth_bps"].to_numpy()
    arrivals = {
        "buy": int((side == 1).sum()),
        "sell": int((side == -1).sum()),
        "buy_per_s": float((side == 1).sum() / max(market.duration_s, 1e-9)),
        "sell_per_s": float((side == -1).sum() / max(market.duration_s, 1e-9)),
        "mean_depth_bps_buy": float(depth[side == 1].mean()) if (side == 1).any() else None,
        "mean_depth_bps_sell": float(depth[side == -1].mean()) if (side == -1).any() else None,
        "prints_per_arrival": float(arr["n_prints"].mean()) if len(arr) else None,
    }
    return {
        "asset": market.asset,
        "source": market.source,
        "files": list(market.files),
        "rows": market.row_counts(),
        "start": _iso(market.start_ns),
        "end": _iso(market.end_ns),
        "duration_s": market.duration_s,
        "data_sha256": market.sha256(),
        "arrivals": arrivals,
        "mean_spread_bps": time_weighted_spread_bps(market.quotes),
        "regime_labels": "given" if regimes is not None else "quantile placeholder",
        "volatility": vol,
        "passive_fills": ob.fill_table(fills),
        "observation_config": config.model_dump(),
        "meta": market.meta,
    }


def _iso(ns: int) -> str:
    return np.datetime_as_string(np.datetime64(int(ns), "ns"), unit="ms") + "Z"
