"""Queue orders (DESIGN.md section 3): hypothetical orders at the touch and 1..K ticks
behind it, placed at each re-post, joining the back of the displayed queue at their
price, followed until filled at their price, filled through it, cancelled at the next
re-post, or censored (the price left the levels the data cover, a recording gap
started -- none is placed inside one --, the data end).

``queue_orders(market, config, *, method="auto")`` -> one row per order, the columns
of the queue-orders contract (docs/data/queue.md "The table"): ``ts``, ``side``,
``level``, ``price``, ``depth_bps``, ``queue_ahead``, ``queue_ahead_trades``,
``imbalance``, ``spread_ticks``, ``duration_s``, ``outcome``, ``filled``,
``capture_bps``, ``markout_bps@{h}s``.  ``method``: ``fifo`` = the exact FIFO queue from
order-level messages (``market.messages``, LOBSTER; :mod:`models.data.queue_fifo`),
``l2`` = the queue-ahead estimate from book snapshots and prints
(:mod:`models.data.queue_l2`, arithmetic in :mod:`mm_runtime.queue`), ``auto`` = fifo
where the market has messages, else l2 where it has books.

Shared here: placements (from the last book snapshot at or before each re-post ``t``;
events strictly after ``t`` move the queue), coverage (a price is *shown* by a snapshot
when it is at or inside the deepest level of a full side, or the side has fewer levels
than the file's depth, as in ``mm_runtime.paper.book.Book``), the book checks (missing,
crossed, too sparse: one-line DataErrors naming the file and the snapshot), markouts.
Markout and capture (bps): ``capture = side*(m0 - price)/m0*1e4`` and
``markout@h = -side*(mid(t_fill+h) - m0)/m0*1e4`` with ``m0`` the mid of the last quote
strictly before the fill (positive = adverse), as DESIGN.md section 3 defines markouts.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mm_runtime.observation import ObservationConfig
from mm_runtime.vocabulary import NS
from models.data import queue_fifo, queue_l2
from models.data.queue_book import (OUTCOMES, STALE_GAPS, THROUGH, book_file, check_books, market_tick,
                                    placements)
from models.data.tables import DataError, Market

__all__ = ["OUTCOMES", "queue_orders", "queue_summary"]

def queue_orders(market: Market, config: ObservationConfig | None = None, *, method: str = "auto") -> pd.DataFrame:
    """The queue-orders table of ``market`` (see the module docstring and
    docs/data/queue.md)."""
    config = config or ObservationConfig()
    if method == "auto":
        if market.messages is not None:
            method = "fifo"
        elif market.books is not None:
            method = "l2"
        else:
            raise DataError(book_file(market), "", "no books: queue orders need an order book "
                            "(load the data with its book snapshots: with_books=True)")
    if method == "fifo":
        if market.messages is None:
            raise DataError(book_file(market), "", "method fifo needs order-level messages "
                            "(LOBSTER, loaded with with_messages=True)")
        snaps = check_books(market, config, periodic=False)
        tick = market_tick(market, snaps)
        plc = placements(market, snaps, config, tick)
        t_ev, code = queue_fifo.follow(market, snaps, plc, tick)
    elif method == "l2":
        snaps = check_books(market, config, periodic=True)
        tick = market_tick(market, snaps)
        stale = None  # LOBSTER's orderbook file has a row per message: a quiet book is not stale
        if market.source != "lobster":
            stale = max(int(STALE_GAPS * np.median(np.diff(snaps.ts))), int(config.repost_interval_s * NS))
        plc = placements(market, snaps, config, tick, stale_ns=stale)
        t_ev, code = queue_l2.follow(market, snaps, plc, tick, config.queue_power)
    else:
        raise ValueError(f"unknown queue method {method!r}; expected auto, fifo or l2")
    return _table(market, config, plc, t_ev, code, method, tick)


def _table(market, config, plc: Placements, t_ev, code, method, tick) -> pd.DataFrame:
    q = market.quotes
    qts = q["ts"].to_numpy(np.int64)
    qmid = 0.5 * (q["bid"].to_numpy(float) + q["ask"].to_numpy(float))
    filled = code <= THROUGH
    med = float(np.median(market.trades["size"].to_numpy(float)))
    m0 = np.full(len(t_ev), np.nan)
    i = np.searchsorted(qts, t_ev, side="left") - 1
    ok = filled & (i >= 0)
    m0[ok] = qmid[i[ok]]
    df = pd.DataFrame({
        "ts": plc.t, "side": plc.side, "level": plc.level, "price": plc.price,
        "depth_bps": plc.depth_bps, "queue_ahead": plc.ahead, "queue_ahead_trades": plc.ahead / med,
        "imbalance": plc.imbalance, "spread_ticks": plc.spread_ticks,
        "duration_s": (t_ev - plc.t) / NS,
        "outcome": np.asarray(OUTCOMES, dtype=object)[code],
        "filled": filled,
        "capture_bps": plc.side * (m0 - plc.price) / m0 * 1e4,
    })
    tE = int(market.end_ns)
    for h in config.markout_horizons_s:
        th = t_ev + int(round(h * NS))
        j = np.searchsorted(qts, th, side="right") - 1
        mh = np.where(j >= 0, qmid[np.maximum(j, 0)], np.nan)
        mk = -plc.side * (mh - m0) / m0 * 1e4
        df[f"markout_bps@{h:g}s"] = np.where(filled & (th <= tE), mk, np.nan)
    df = df.astype({"ts": "int64", "side": "int8", "level": "int16", "spread_ticks": "int16"})
    n_placed = {name: [int(((plc.side == s) & (plc.level == j)).sum()) for j in range(config.queue_levels + 1)]
                for s, name in ((1, "bid"), (-1, "ask"))}
    df.attrs.update(queue_source=method, tick=float(tick), median_trade_size=med,
                    queue_levels=int(config.queue_levels), repost_interval_s=float(config.repost_interval_s),
                    markout_horizons_s=[float(h) for h in config.markout_horizons_s], n_placed=n_placed)
    if method == "l2":
        df.attrs["queue_power"] = float(config.queue_power)
    return df.reset_index(drop=True)


def queue_summary(qo: pd.DataFrame, tau_s: float | None = None,
                  buckets: tuple[float, ...] = (0.0, 1.0, 5.0, 20.0)) -> pd.DataFrame:
    """Per level and queue bucket (queue ahead at placement in median trades, ``[0,1),
    [1,5), [5,20), [20,inf)``): ``orders``, ``fills`` (filled at our price or through),
    ``through``, ``fill_prob`` (fills within ``tau_s``, default the re-post interval: the
    share of orders filled before their re-post, censored ones counted as not filled),
    ``median_fill_s`` and the mean markout per horizon over the fills (bps, NaN-skipping)."""
    tau = float(tau_s if tau_s is not None else qo.attrs.get("repost_interval_s", 1.0))
    qb = np.searchsorted(np.asarray(buckets), qo["queue_ahead_trades"].to_numpy(float), side="right") - 1
    labels = [f"[{lo:g},{hi:g})" for lo, hi in zip(buckets, list(buckets[1:]) + [math.inf])]
    mk_cols = [c for c in qo.columns if c.startswith("markout_bps@")]
    rows = []
    for lvl in sorted(qo["level"].unique()):
        for b, lab in enumerate(labels):
            sel = (qo["level"].to_numpy() == lvl) & (qb == b)
            n = int(sel.sum())
            if n == 0:
                continue
            f = qo["filled"].to_numpy()[sel]
            dur = qo["duration_s"].to_numpy()[sel]
            row = {"level": int(lvl), "queue_bucket": lab, "orders": n, "fills": int(f.sum()),
                   "through": int((qo["outcome"].to_numpy()[sel] == "through").sum()),
                   "fill_prob": float((f & (dur <= tau)).mean()),
                   "median_fill_s": float(np.median(dur[f])) if f.any() else math.nan}
            for c in mk_cols:
                v = qo[c].to_numpy()[sel]
                v = v[np.isfinite(v)]
                row[c] = float(v.mean()) if v.size else math.nan
            rows.append(row)
    return pd.DataFrame(rows)
