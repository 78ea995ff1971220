"""The paper exchange's ``l3`` queue model: our order's exact FIFO place from
order-level messages (LOBSTER's message file), numpy only.

Rules (the same as the offline FIFO queue orders, ``models.data.queue_fifo``;
docs/runtime/paper.md "l3"; LOBSTER event types: 1 submit, 2 partial cancel,
3 delete, 4 visible execution, 5 hidden execution, 6 cross, 7 halt):

* our order joins the back of the queue at its price when it becomes active (at
  ``t_a``): the queue ahead is the displayed size there in the book before ``t_a``
  (:meth:`mm_runtime.paper.book.Book.queue_at`), which includes the orders resting
  from before the window that have no add message (they are ahead of us);
* an order is *behind* us when its latest add message is at or after ``t_a``
  (message index ``>= k0``, the first message with ``ts >= t_a``); every other order
  at our price is ahead;
* cancellations (types 2, 3) of orders ahead reduce the queue ahead
  (``max(ahead - size, 0)``); those of orders behind us do not;
* a visible execution (type 4) of size ``s`` at our price consumes the queue ahead
  first (price-time priority) and fills us by what is left of it:
  ``fill = min(our size, max(s - ahead, 0))``, ``ahead' = max(ahead - s, 0)``; so an
  execution smaller than the queue ahead fills nothing and moves us up, and an
  execution of an order behind us (impossible while we rest ahead of it) fills us;
  several of our lots at one price are filled in their queue order;
* hidden executions (type 5), crosses (6) and halts (7) neither move the queue nor
  fill us at our price (hidden liquidity has no place in the displayed queue); a
  print strictly through our price fills us as in every queue model (the replay's
  trade loop).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .book import PRICE_RTOL, Book, all_or_none

if TYPE_CHECKING:
    from .replay import ReplayData

__all__ = ["L3Queue", "add_index"]


def add_index(order_id: np.ndarray, typ: np.ndarray) -> np.ndarray:
    """For each message, the index of the latest add (type 1) message of its order id
    at or before it; -1 when the order was never added in the file (it rested before
    the window or was added outside the covered levels)."""
    order_id, typ = np.asarray(order_id), np.asarray(typ)
    n = len(order_id)
    out = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return out
    o = np.lexsort((np.arange(n), order_id))  # by id, then time
    ids = order_id[o]
    g = np.concatenate([[0], np.cumsum(ids[1:] != ids[:-1])])  # group number per row
    base = (g + 1).astype(np.int64) * (n + 1)  # groups on disjoint, increasing ranges
    v = np.where(typ[o] == 1, o, -1) + base
    out[o] = np.maximum.accumulate(v) - base  # the running max restarts in each group
    return out


class L3Queue:
    """The messages of one replay and a cursor through them.  The replay keeps each
    resting lot's queue ahead (``q``) and its first-behind message index (``k0``);
    :meth:`advance` applies the messages up to a time to them and returns our fills."""

    def __init__(self, data: ReplayData):
        self.book = Book(data)  # the queue ahead at activation (displayed size)
        self.ts = np.asarray(data.msg_ts, float)
        self.typ = np.asarray(data.msg_type, np.int64)
        self.size = np.asarray(data.msg_size, float)
        self.price = np.asarray(data.msg_price, float)
        self.row = np.where(np.asarray(data.msg_dir) > 0, 0, 1)  # buy orders rest on the bid side (our row 0)
        self.added = add_index(np.asarray(data.msg_id), self.typ)
        self.next = 0  # messages before this index are applied
        self.stats = {"messages_applied": 0, "fills": 0}

    def k0(self, t: float) -> int:
        """Index of the first message at or after ``t``: orders added from there on are
        behind an order placed at ``t``."""
        return int(np.searchsorted(self.ts, t, side="left"))

    def join(self, row: int, p: float, t: float) -> float:
        """The queue ahead of an order placed at ``p`` at ``t`` (its ``k0`` is
        :meth:`k0`); inf when the
        book does not show ``p`` (nothing moves it then, only prints through it fill)."""
        return self.book.queue_at(row, p, self.book.before(t))

    def advance(self, t: float, px: np.ndarray, sz: np.ndarray, q: np.ndarray, k0: np.ndarray,
                inclusive: bool = True) -> list[tuple[float, int, int, float, float]]:
        """Apply the messages up to ``t`` (``ts <= t``; ``< t`` unless ``inclusive``) to
        the lots ``(2, n)`` ``px``, ``sz`` (left to fill), ``q`` (ahead), ``k0`` (updated
        in place; ``sz`` too).  Returns the fills ``(ts, row, lot, size, price)``."""
        end = int(np.searchsorted(self.ts, t, side="right" if inclusive else "left"))
        a, self.next = self.next, max(self.next, end)
        fills: list[tuple[float, int, int, float, float]] = []
        if end <= a or not np.any(sz > 0):
            return fills
        span = np.arange(a, end)
        span = span[np.isin(self.typ[span], (2, 3, 4))]
        live = [(r, px[r][sz[r] > 0]) for r in (0, 1)]
        mine = np.zeros(span.size, dtype=bool)
        for r, prices in live:
            for p in prices:
                mine |= (self.row[span] == r) & (np.abs(self.price[span] - p) <= PRICE_RTOL * p)
        for m in span[mine]:
            r, p, s, ty = int(self.row[m]), float(self.price[m]), float(self.size[m]), int(self.typ[m])
            lots = np.flatnonzero((sz[r] > 0) & (np.abs(px[r] - p) <= PRICE_RTOL * p))
            self.stats["messages_applied"] += 1
            if ty in (2, 3):
                for k in lots:
                    if self.added[m] < k0[r, k]:  # an order ahead of this lot
                        q[r, k] = max(q[r, k] - s, 0.0)
                continue
            own_ahead = 0.0  # our own size at p ahead of the lot
            for k in lots[np.argsort(q[r, lots], kind="stable")]:
                f = min(float(sz[r, k]), max(0.0, s - q[r, k] - own_ahead))
                own_ahead += sz[r, k]
                q[r, k] = max(q[r, k] - s, 0.0)
                if f > 0:
                    sz[r, k] -= f
                    fills.append((float(self.ts[m]), r, int(k), f, p))
        self.stats["fills"] += len(fills)
        return fills


MSG_FIELDS = ("msg_ts", "msg_type", "msg_id", "msg_size", "msg_price", "msg_dir")


def check_messages(data: ReplayData, where: str) -> None:
    """Refuse order-level messages that would make the ``l3`` model meaningless,
    naming the field (all six or none; 1-d, equal lengths, sorted times, types 1..7,
    directions ±1, finite sizes ≥ 0)."""
    if not all_or_none(data, MSG_FIELDS, "order-level messages", where):
        return
    n = len(data.msg_ts)
    for name in MSG_FIELDS:
        a = np.asarray(getattr(data, name))
        if a.ndim != 1 or len(a) != n:
            raise ValueError(f"{where}: {name}: expected a 1-d array of {n} values like msg_ts, got shape {a.shape}")
        if not np.all(np.isfinite(a.astype(float))):
            raise ValueError(f"{where}: {name}: {int(np.sum(~np.isfinite(a.astype(float))))} non-finite values")
    if np.any(np.diff(data.msg_ts) < 0):
        raise ValueError(f"{where}: msg_ts: timestamps must be sorted")
    if not np.all(np.isin(data.msg_type, np.arange(1, 8))):
        raise ValueError(f"{where}: msg_type: LOBSTER event types are 1..7")
    if not np.all(np.isin(data.msg_dir, (-1, 1))):
        raise ValueError(f"{where}: msg_dir: must be +1 (buy order) or -1 (sell order)")
    if np.any(np.asarray(data.msg_size) < 0):
        raise ValueError(f"{where}: msg_size: sizes must be >= 0")
