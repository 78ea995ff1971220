"""Exact FIFO queue orders from LOBSTER's order-level messages (DESIGN.md section 3).

``follow(market, snaps, plc, tick) -> (t_event, outcome code)`` for the placements of
:func:`models.data.queue.placements`.  Rules (docs/data/queue.md "FIFO"):

* at placement ``t`` the queue ahead is the displayed size at our price in the book
  after the last message with ``ts <= t`` (the orderbook file's row): it includes orders
  resting from before the window or added while the level was outside the covered
  levels, which appear later without an add (type 1) message — they are ahead of us;
* an order is *behind* us when its latest add message comes after placement (message
  index ``>= k0``, the first message with ``ts > t``); every other order at our price is
  ahead;
* cancellations (types 2, 3) and visible executions (type 4) of orders ahead reduce the
  queue ahead (``max(ahead - size, 0)``); orders added later queue behind us;
* a visible execution at our price of an order behind us, or while nothing is ahead,
  fills us (``filled``): price-time priority would have executed us first;
* an execution (type 4 or 5) strictly through our price (a resting buy order below our
  bid, a resting sell order above our ask) fills us ``through``;
* hidden executions (type 5) at our price neither move the queue nor fill us: hidden
  liquidity has no place in the displayed queue (Nasdaq ranks it after displayed size
  at a price);
* a trading halt (type 7, price -1) censors every live order at its time (``away``) and
  no order is placed until trading resumes (type 7, price 1; price 0, quoting resumed,
  is still halted for trading);
* the price leaving the covered levels (a snapshot that does not show it) censors the
  order (``away``) — the file has no messages there; a recording gap's start (placements
  restart after the gap, as for the passive quotes) ``away``; the next re-post
  ``repost``, the data end ``end``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mm_runtime.paper.l3 import add_index  # shared with the paper replay's l3 model
from models.data.queue_book import AWAY, FILLED, THROUGH, Placements, Snapshots
from models.data.tables import Market

__all__ = ["follow", "add_index"]


def follow(market: Market, snaps: Snapshots, plc: Placements, tick: float) -> tuple[np.ndarray, np.ndarray]:
    m = market.messages
    ts = m["ts"].to_numpy(np.int64)
    typ = m["type"].to_numpy()
    size = m["size"].to_numpy(float)
    direction = m["direction"].to_numpy()
    pk = np.rint(m["price"].to_numpy(float) / tick).astype(np.int64)
    added = add_index(m["order_id"].to_numpy(np.int64), typ)

    # messages at each (direction, price) that can touch a queue there
    rel = np.flatnonzero(np.isin(typ, (2, 3, 4)))
    df = pd.DataFrame({"d": direction[rel], "p": pk[rel], "i": rel})
    groups = {(int(d), int(q)): g.to_numpy(np.int64) for (d, q), g in df.groupby(["d", "p"])["i"]}
    # executions per direction (for prints through our price)
    execs = {d: np.flatnonzero(np.isin(typ, (4, 5)) & (direction == d)) for d in (1, -1)}
    halts = ts[(typ == 7) & (m["price"].to_numpy(float) == -1)]  # halt starts
    halt_state = _halted(m)

    n = len(plc.t)
    t_ev = plc.end.copy()
    code = plc.censor_codes()
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        t, e, s, p = int(plc.t[i]), int(plc.end[i]), int(plc.side[i]), plc.price[i]
        if halt_state is not None and halt_state(t):
            keep[i] = False
            continue
        k0 = int(np.searchsorted(ts, t, side="right"))
        k1 = int(np.searchsorted(ts, e, side="right"))
        if k1 <= k0:
            continue
        best_t, best_k, best_c = e, k1, code[i]
        # censoring: the price leaves the covered levels, a halt
        r = 0 if s == 1 else 1
        a0 = int(plc.snap[i]) + 1
        a1 = int(np.searchsorted(snaps.ts, e, side="right"))
        if a1 > a0:
            gone = np.flatnonzero(~snaps.shown(r, np.arange(a0, a1), np.full(a1 - a0, p)))
            if gone.size:
                ta = int(snaps.ts[a0 + gone[0]])
                best_t, best_k, best_c = ta, int(np.searchsorted(ts, ta, side="right")), AWAY
        if halts.size:
            h = halts[(halts > t) & (halts <= e)]
            if h.size and int(h[0]) < best_t:
                best_t, best_k, best_c = int(h[0]), int(np.searchsorted(ts, h[0], side="left")), AWAY
        # prints strictly through our price
        ex = execs[s]
        lo, hi = np.searchsorted(ex, k0), np.searchsorted(ex, min(best_k, k1))
        if hi > lo:
            cand = ex[lo:hi]
            thr = np.flatnonzero(pk[cand] < round(p / tick) if s == 1 else pk[cand] > round(p / tick))
            if thr.size:
                j = int(cand[thr[0]])
                best_t, best_k, best_c = int(ts[j]), j, THROUGH
        # the FIFO queue at our price
        g = groups.get((s, int(round(p / tick))))
        if g is not None:
            lo, hi = np.searchsorted(g, k0), np.searchsorted(g, best_k)
            if hi > lo:
                j = g[lo:hi]
                ahead_order = added[j] < k0
                dec = np.where(ahead_order, size[j], 0.0)
                before = np.maximum(plc.ahead[i] - (np.cumsum(dec) - dec), 0.0)
                hit = np.flatnonzero((typ[j] == 4) & (~ahead_order | (before <= 0)))
                if hit.size:
                    jj = int(j[hit[0]])
                    best_t, best_k, best_c = int(ts[jj]), jj, FILLED
        t_ev[i], code[i] = best_t, best_c
    if not keep.all():
        for f in plc.__dataclass_fields__:
            setattr(plc, f, getattr(plc, f)[keep])
        t_ev, code = t_ev[keep], code[keep]
    return t_ev, code


def _halted(m: pd.DataFrame):
    """A function ``t -> bool`` (the market is halted at ``t``) from the halt messages
    (type 7, price -1 halt, 0 quoting resumes, 1 trading resumes: halted until 1), or None
    when there are none."""
    h = m[m["type"] == 7]
    if not len(h):
        return None
    hts = h["ts"].to_numpy(np.int64)
    state = h["price"].to_numpy(float) != 1  # halted after this message

    def halted(t: int) -> bool:
        i = int(np.searchsorted(hts, t, side="right")) - 1
        return bool(i >= 0 and state[i])

    return halted
