"""The data summary behind `mmcal data inspect` (and the demo's first step).

Everything here is computed from the canonical tables with the observation rules
of `models.data.observations`; the CLI only formats it.

* mean spread: time-weighted mean of (ask - bid) / mid in bps over the quote
  table (each BBO weighted by how long it stood; the last one gets no weight).
* realized volatility per regime: `observations.regime_summary` (sqrt of the
  regime's pooled realized variance per second, bps/sqrt(s)). Regime labels are,
  in order of preference: the ones given by the caller (the regime model's path),
  the synthetic market's true path, or the placeholder quantile labelling of
  `observations.label_regimes`. The summary says which.
* queue orders (where the market carries an order book: LOBSTER's messages and
  orderbook file, Hyperliquid / Binance snapshots): `models.data.queue.queue_orders`
  summarised by level and queue bucket (`queue.queue_summary`); otherwise the reason
  there are none. `data_sha256` is the hash of the trades and quotes (the tables the
  other observations read), whether or not the books were loaded.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from models.data import observations as ob
from models.data.gaps import find_gaps
from models.data.tables import DataError, Market


def time_weighted_spread_bps(quotes: pd.DataFrame) -> float:
    bid = quotes["bid"].to_numpy()
    ask = quotes["ask"].to_numpy()
    spread = (ask - bid) / (0.5 * (bid + ask)) * 1e4
    w = np.diff(quotes["ts"].to_numpy()).astype("float64")
    if len(w) == 0 or w.sum() <= 0:
        return float(spread.mean())
    return float(np.sum(spread[:-1] * w) / w.sum())


def _finite(v: float) -> float | None:
    """None for NaN or infinity (JSON has neither)."""
    return v if np.isfinite(v) else None


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (_finite(v) if isinstance(v, float) else v)
             for k, v in row.items()} for row in df.to_dict(orient="records")]


def inspect_market(market: Market, config: ob.ObservationConfig | None = None,
                   regimes: Any = None) -> dict[str, Any]:
    """Summary of one market: row counts, span, arrivals, spread, vol per regime, fills,
    queue orders (where ``market`` carries books or order-level messages)."""
    config = config or ob.ObservationConfig()
    queue = queue_section(market, config)
    market = replace(market, books=None, messages=None)
    bars = ob.volatility_bars(market, config)
    if regimes is not None:
        labels = "given"
    elif market.truth is not None and "regime_path" in market.truth:
        regimes = np.asarray(market.truth["regime_path"])[: len(bars)]
        labels = "synthetic truth"
    else:
        labels = "placeholder (quantiles of log realized vol)"
    reg = ob.label_regimes(bars, regimes)
    arr = ob.arrivals(market)
    fills = ob.passive_fills(market, config, bars=bars, regimes=reg)

    meta = {k: v for k, v in market.meta.items() if not isinstance(v, pd.DataFrame)}
    gaps = find_gaps(market, config)
    observed_s = market.duration_s - float(gaps["length_s"].sum())
    return {
        "asset": market.asset,
        "source": market.source,
        "files": list(market.files),
        "rows": market.row_counts(),
        "start": _iso(market.start_ns),
        "end": _iso(market.end_ns),
        "duration_s": market.duration_s,
        "data_sha256": market.sha256(),
        "observed_s": observed_s,
        "gaps": {"reference_s": gaps.attrs["reference_s"], "threshold_s": gaps.attrs["threshold_s"],
                 "table": [{"start": _iso(int(a)), "end": _iso(int(b)), "start_s": (int(a) - market.start_ns) / 1e9,
                            "length_s": float(ln)}
                           for a, b, ln in zip(gaps["start_ns"], gaps["end_ns"], gaps["length_s"])]},
        "arrivals": _records(ob.arrival_summary(arr, duration_s=observed_s)),
        "arrivals_by_regime": _records(ob.arrival_summary(arr, bars, reg)),
        "mean_spread_bps": time_weighted_spread_bps(market.quotes),
        "mid_moves": {"share_by_grid_s": {str(dt): _finite(ob.moving_share(market, dt))
                                          for dt in (0.1, 0.2, 0.5, 1.0)},
                      "suggested_rv_sample_seconds": ob.choose_rv_sample_seconds(market, config)},
        "regime_labels": labels,
        "volatility": _records(ob.regime_summary(bars, reg)),
        "passive_fills": _records(ob.fill_table(fills)),
        "passive_fills_by_regime": _records(ob.fill_table(fills, by_regime=True)),
        "queue_orders": queue,
        "observation_config": config.model_dump(),
        "meta": meta,
    }


def queue_section(market: Market, config: ob.ObservationConfig) -> dict[str, Any]:
    """The queue orders of ``market`` summarised (``available``, ``method``, ``orders``,
    ``filled``, ``table``: per level and queue bucket), or ``available: False`` with the
    ``reason`` (no order book; snapshots too sparse to follow a queue).  Other bad book
    data (crossed books, messages that disagree with the book) raise their DataError."""
    from models.data.queue import queue_orders, queue_summary

    synthetic = (market.meta or {}).get("queue_orders")
    if synthetic is not None:  # the synthetic market's own: its true fill process, cut to its window
        from models.data.synthetic_queue import clip_to_window

        win = market.meta.get("window") or {}
        qo = clip_to_window(synthetic, int(win.get("start_ns", market.start_ns)),
                            int(win.get("end_ns", market.end_ns + 1)))
        qo = qo[qo["level"].to_numpy() <= config.queue_levels].reset_index(drop=True)
        qo.attrs.update(synthetic.attrs)
    elif market.books is None and market.messages is None:
        why = ("the synthetic market has no order book" if market.source == "synthetic"
               else "no order book in the data loaded")
        return {"available": False, "reason": why}
    else:
        try:
            qo = queue_orders(market, config)
        except DataError as e:
            if "too sparse" in e.problem or e.problem.startswith("no books"):
                return {"available": False, "reason": str(e)}
            raise
    a = qo.attrs
    return {"available": True, "method": a["queue_source"], "orders": len(qo), "filled": int(qo["filled"].sum()),
            "through": int((qo["outcome"] == "through").sum()),
            "outcomes": {k: int(v) for k, v in qo["outcome"].value_counts().items()},
            "tick": a["tick"], "median_trade_size": a["median_trade_size"], "queue_levels": a["queue_levels"],
            "repost_interval_s": a["repost_interval_s"], "markout_horizons_s": a["markout_horizons_s"],
            "queue_power": a.get("queue_power"), "n_placed": a["n_placed"],
            "table": _records(queue_summary(qo))}


def truth_comparison(market: Market, config: ob.ObservationConfig | None = None) -> list[dict[str, Any]]:
    """The synthetic truth next to what the observation rules measure on the
    generated data, on the true regime path: arrival rate A and depth decay kappa
    (1 / mean depth) per regime x side, and the informed share of passive fills in
    each depth bucket per regime, whose truth is the mean over those fills of
    alpha_touch[r] * exp(-delta / alpha_decay_bps)."""
    config = config or ob.ObservationConfig()
    truth = market.truth or {}
    params = truth.get("params", {})
    if not params:
        return []
    bars = ob.volatility_bars(market, config)
    reg = np.asarray(truth["regime_path"])[: len(bars)]
    rows = []
    for a in _records(ob.arrival_summary(ob.arrivals(market), bars, reg)):
        key = f"{a['regime_name']},{a['side_name']}"
        for name, obs_key in (("arrival_rate", "rate_per_s"), ("kappa", "kappa_mle")):
            p = f"{name}[{key}]"
            rows.append({"quantity": p, "truth": params.get(p), "observed": a[obs_key],
                         "n": a["arrivals"]})
    fills = ob.passive_fills(market, config, bars=bars, regimes=reg)
    bucket = ob.depth_bucket(fills["depth_bps"].to_numpy())
    fr = fills["regime"].to_numpy()
    depth = fills["depth_bps"].to_numpy()
    informed = fills["informed"].to_numpy(dtype=bool)
    decay = params["alpha_decay_bps"]
    for r, rname in enumerate(ob.REGIMES):
        for b, blabel in enumerate(ob.DEPTH_BUCKET_LABELS):
            sel = (fr == r) & (bucket == b)
            n = int(sel.sum())
            if n == 0:
                continue
            expected = float(np.mean(params[f"alpha_touch[{rname}]"] * np.exp(-depth[sel] / decay)))
            rows.append({"quantity": f"informed share {blabel} bp [{rname}]", "truth": expected,
                         "observed": float(informed[sel].mean()), "n": n})
    return rows


def _iso(ns: int) -> str:
    return np.datetime_as_string(np.datetime64(int(ns), "ns"), unit="ms") + "Z"
