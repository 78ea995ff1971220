"""Queue orders from L2 data: the queue-ahead estimate from book snapshots and prints
(DESIGN.md section 3; Hyperliquid's 20-level snapshots, Binance's books rebuilt from
depth diffs, or LOBSTER's orderbook file without its messages).

``follow(market, snaps, plc, tick, power) -> (t_event, outcome code)`` for the
placements of :func:`models.data.queue.placements`.  Rules (docs/data/queue.md "L2"):
the queue ahead at placement is the displayed size at our price; then, in time order
(prints before a snapshot with the same ``ts``: a snapshot reflects the prints at its
time), a print at our price against our side moves the queue by
:func:`mm_runtime.queue.after_print` and fills us when it reaches us (``filled``), a
snapshot moves it by :func:`mm_runtime.queue.after_depth` (decreases not explained by
prints are ahead of us with probability ``f(ahead)/(f(ahead)+f(behind))``,
``f(x) = x**power``; increases queue behind us); a print strictly through our price
fills us ``through``; a snapshot that no longer shows our price censors the order
(``away``); a recording gap's start ``away`` (no order is placed inside a gap); the
next re-post ``repost``; the data end ``end``.
"""

from __future__ import annotations

import numpy as np

from mm_runtime.paper.book import PRICE_RTOL
from mm_runtime.queue import after_depth, after_print
from models.data.queue_book import AWAY, FILLED, THROUGH, Placements, Snapshots
from models.data.tables import Market

__all__ = ["follow"]


def follow(market: Market, snaps: Snapshots, plc: Placements, tick: float,
           power: float) -> tuple[np.ndarray, np.ndarray]:
    tr = market.trades
    by_side = {}
    for agg in (1, -1):  # our bid (+1) is hit by sell aggressors (-1)
        m = tr["side"].to_numpy() == agg
        by_side[agg] = (tr["ts"].to_numpy(np.int64)[m], tr["price"].to_numpy(float)[m],
                        tr["size"].to_numpy(float)[m])
    n = len(plc.t)
    t_ev = plc.end.copy()
    code = plc.censor_codes()
    for i in range(n):
        t, e, s, p = int(plc.t[i]), int(plc.end[i]), int(plc.side[i]), float(plc.price[i])
        r = 0 if s == 1 else 1
        tol = PRICE_RTOL * p
        stop_t, stop_c = e, code[i]
        a0 = int(plc.snap[i]) + 1
        a1 = int(np.searchsorted(snaps.ts, e, side="right"))
        rows = np.arange(a0, a1)
        if rows.size:
            pv = np.full(rows.size, p)
            gone = np.flatnonzero(~snaps.shown(r, rows, pv))
            if gone.size:
                stop_t, stop_c = int(snaps.ts[rows[gone[0]]]), AWAY
                rows = rows[:gone[0]]
        tts, tpx, tsz = by_side[-s]
        lo = int(np.searchsorted(tts, t, side="right"))
        hi = int(np.searchsorted(tts, stop_t, side="right"))  # a snapshot reflects the prints at its ts
        through = np.flatnonzero((tpx[lo:hi] < p - tol) if s == 1 else (tpx[lo:hi] > p + tol))
        if through.size:
            hi = lo + int(through[0])
            stop_t, stop_c = int(tts[hi]), THROUGH
            hi_at = int(np.searchsorted(tts, stop_t, side="right"))  # prints at our price in that sweep
        else:
            hi_at = hi
        at = lo + np.flatnonzero(np.abs(tpx[lo:hi_at] - p) <= tol)
        if at.size:
            if through.size:  # a sweep prints at our price before going through it
                at = at[tts[at] <= stop_t]
            rows = rows[snaps.ts[rows] < tts[at[-1]]] if at.size else rows[:0]
            fill_t = _walk(plc.ahead[i], tts[at], tsz[at], snaps.ts[rows],
                           snaps.displayed(r, rows, np.full(rows.size, p)), power)
            if fill_t is not None and fill_t <= stop_t:
                stop_t, stop_c = fill_t, FILLED
        t_ev[i], code[i] = stop_t, stop_c
    return t_ev, code


def _walk(ahead: float, pts, psz, sts, sdisp, power: float):
    """Merge prints (``pts``, ``psz``) and snapshots (``sts``, displayed ``sdisp``) in time
    order, prints first at equal ts; the ts of the print that reaches us, or None."""
    prev = ahead
    traded = 0.0
    j = 0
    for k in range(len(pts)):
        while j < len(sts) and sts[j] < pts[k]:
            ahead = after_depth(ahead, prev, sdisp[j], traded, power)
            prev, traded = float(sdisp[j]), 0.0
            j += 1
        ahead, filled = after_print(ahead, psz[k])
        if filled:
            return int(pts[k])
        traded += float(psz[k])
    return None
