"""Live queue position: the queue ahead of each of the quoter's resting orders, kept from
L2 snapshots and prints with the estimator of the offline queue orders
(:mod:`mm_runtime.queue`: ``after_print``, ``after_depth``), and the tick ladder's queue
input built from it.  numpy and plain Python only (not traced).

Rules (the offline rules of ``models.data.queue_l2``, docs/data/queue.md "L2", applied to
orders that stay on the book across refreshes):

* an order placed at a price where none of ours rests joins the back of the queue: the
  queue ahead is the displayed size there in the last snapshot (0 at a price better
  than the best; unknown, NaN, at a price deeper than a full snapshot shows, or before
  the first snapshot); an order re-placed at a price where ours already rests keeps its
  place (an amend keeps priority);
* a print of size q at our price against our side: ``after_print`` (the queue ahead
  shrinks by q; the print reaches us when q > ahead, by ``q - ahead``); a print through
  our price empties the queue ahead;
* a snapshot: ``after_depth`` with the displayed sizes of the previous and the new
  snapshot at our price and the prints there in between (cancellations ahead of us with
  probability ``f(ahead)/(f(ahead)+f(behind))``, ``f(x) = x**power``; growth queues
  behind us); a snapshot that does not show our price leaves the estimate as it is;
* the step's queue input (:class:`~mm_runtime.core.MarketEvent` ``queue_ahead``, (2, L),
  level l = l ticks behind the touch): at a level where an order of ours rests, its
  queue ahead; elsewhere the displayed size an order would join; in median trade sizes
  (the fills model's unit: the median of the last ``unit_window`` prints); NaN where
  unknown (the fills model's longest-queue bucket).

Measured on the Hyperliquid capture and the units: docs/runtime/queue_live.md.
"""

from __future__ import annotations

import collections
import math

import numpy as np

from .queue import after_depth, after_print

__all__ = ["QueueTracker"]


class _Order:
    __slots__ = ("ahead", "prev", "traded", "placed_ts", "level", "queue0")

    def __init__(self, ahead: float, prev: float, placed_ts: float, level: int, queue0: float):
        self.ahead = ahead  # base units ahead of us (NaN = unknown)
        self.prev = prev  # displayed size at our price in the last snapshot (NaN = not shown)
        self.traded = 0.0  # prints at our price since that snapshot
        self.placed_ts = placed_ts
        self.level = level  # ticks behind the touch at placement
        self.queue0 = queue0  # queue ahead at placement, median trades (NaN = unknown)


class QueueTracker:
    """The queue ahead of the resting orders of one asset (row 0 our bids, 1 our asks),
    on a price grid ``tick`` (module docstring for the rules).  ``levels``: width of the
    step's queue input; ``power``: ``ObservationConfig.queue_power``."""

    def __init__(self, levels: int, tick: float, power: float = 2.0, unit_window: int = 1000):
        if not (tick > 0 and math.isfinite(tick)):
            raise ValueError(f"tick: must be a finite number > 0, got {tick!r}")
        self.levels = int(levels)
        self.tick = float(tick)
        self.power = float(power)
        self.orders: tuple[dict[int, _Order], dict[int, _Order]] = ({}, {})
        self._disp: tuple[dict[int, float], dict[int, float]] | None = None
        self._deep = (-math.inf, math.inf)  # the deepest tick a full snapshot shows per side
        self._depth = 0  # the most levels a side of a snapshot has had (a "full" side has as many)
        self.best = (0, 0)  # best bid / ask, ticks
        self._sizes: collections.deque = collections.deque(maxlen=int(unit_window))
        self._n_prints = 0
        self.unit = math.nan
        self.input = np.full((2, self.levels), np.nan)
        self.stats = collections.Counter()

    @property
    def has_snapshot(self) -> bool:
        """Whether a book snapshot has been seen (else only prints and placements)."""
        return self._disp is not None

    # -- grid ---------------------------------------------------------------------------
    def key(self, price: float) -> int:
        return int(round(price / self.tick))

    def displayed(self, row: int, k: int) -> float:
        """Displayed size at tick ``k`` on side ``row`` in the last snapshot: 0 at a price it
        shows without a level, NaN where it does not show the price (or no snapshot yet)."""
        if self._disp is None:
            return math.nan
        d = self._disp[row].get(k)
        if d is not None:
            return d
        deep = self._deep[row]
        shown = k >= deep if row == 0 else k <= deep
        return 0.0 if shown else math.nan

    # -- market data --------------------------------------------------------------------
    def on_book(self, bid_px, bid_sz, ask_px, ask_sz) -> None:
        """A new L2 snapshot (levels best first; NaN prices or zero sizes are no level)."""
        disp, deep = [], []
        n = 0
        for row, (px, sz) in enumerate(((bid_px, bid_sz), (ask_px, ask_sz))):
            px, sz = np.asarray(px, dtype=float), np.asarray(sz, dtype=float)
            ok = np.isfinite(px) & (px > 0) & np.isfinite(sz) & (sz > 0)
            keys = np.rint(px[ok] / self.tick).astype(np.int64)
            d = dict(zip(keys.tolist(), sz[ok].tolist(), strict=True))
            disp.append(d)
            n = max(n, len(d))
            deep.append(keys)
        self._depth = max(self._depth, n)
        self._deep = tuple((int(k.min()) if row == 0 else int(k.max())) if (len(k) >= self._depth and len(k)) else
                           (-math.inf if row == 0 else math.inf) for row, k in enumerate(deep))
        self._disp = (disp[0], disp[1])
        if disp[0] and disp[1]:
            self.best = (max(disp[0]), min(disp[1]))
        moved, vals = [], []  # the orders the shared rule moves: one vectorised call
        for row in (0, 1):
            for k, o in self.orders[row].items():
                new = self.displayed(row, k)
                if not math.isfinite(new):
                    self.stats["not_shown"] += 1
                    continue
                if math.isfinite(o.ahead) and math.isfinite(o.prev):
                    moved.append(o)
                    vals.append((o.ahead, o.prev, new, o.traded))
                elif not math.isfinite(o.ahead):  # unknown so far: the back of what is shown now
                    o.ahead = new
                o.prev, o.traded = new, 0.0
        if moved:
            a, pv, nw, tr = np.array(vals).T
            for o, x in zip(moved, np.atleast_1d(after_depth(a, pv, nw, tr, self.power)).tolist(), strict=True):
                o.ahead = x
        self._refresh_input()

    def on_print(self, price: float, side: float, size: float) -> dict[int, float]:
        """A public print (aggressor ``side`` +1 buy / -1 sell): the queues at and above it
        move; returns ``{tick: reach}`` for our orders on the side it hits at its price,
        ``reach = size - ahead before it`` (> 0: the print reached us by that much)."""
        if size > 0 and math.isfinite(size):
            self._sizes.append(float(size))
            self._n_prints += 1
            if self._n_prints <= 20 or self._n_prints % 50 == 0:  # the median, not on every print
                self.unit = float(np.median(self._sizes))
        row = 1 if side > 0 else 0  # a buy lifts asks (row 1); a sell hits bids (row 0)
        k = self.key(price)
        out = {}
        for ko, o in self.orders[row].items():
            through = ko < k if row == 1 else ko > k
            if ko == k:
                before = o.ahead
                if math.isfinite(before):
                    o.ahead, _ = after_print(before, size)
                    out[ko] = size - before
                o.traded += size
            elif through:
                o.ahead = 0.0
        if self.orders[row]:
            self._refresh_input()
        return out

    # -- our orders ---------------------------------------------------------------------
    def place(self, prices, sizes, ts: float, queue_ahead=None) -> list[tuple[int, int, bool]]:
        """The ladder now resting: ``prices``/``sizes`` (2, K); an order where ``size > 0``.
        Prices already resting keep their place; new ones join the back (module
        docstring); ``queue_ahead`` (2, K), median trades, overrides the joined queue of
        new orders (a replay's own queue model).  Returns ``(row, tick, kept)`` of every resting order."""
        prices, sizes = np.asarray(prices, dtype=float), np.asarray(sizes, dtype=float)
        out = []
        for row in (0, 1):
            old, new = self.orders[row], {}
            touch = self.best[row]
            for j in range(prices.shape[1]):
                if not sizes[row, j] > 0 or not prices[row, j] > 0:
                    continue
                k = self.key(float(prices[row, j]))
                if k in new:
                    continue
                if k in old:
                    new[k] = old[k]
                    out.append((row, k, True))
                    continue
                disp = self.displayed(row, k)
                u = self.unit
                if queue_ahead is not None:
                    q0 = float(np.asarray(queue_ahead, dtype=float)[row, j])
                    ahead = q0 * u if u > 0 else math.nan
                else:
                    ahead = disp
                    q0 = ahead / u if (math.isfinite(ahead) and u > 0) else math.nan
                level = (touch - k if row == 0 else k - touch) if touch else j
                new[k] = _Order(ahead, disp, float(ts), max(int(level), 0), q0)
                out.append((row, k, False))
            self.orders = (new, self.orders[1]) if row == 0 else (self.orders[0], new)
        self._refresh_input()
        return out

    def cancel_all(self) -> None:
        self.orders = ({}, {})
        self._refresh_input()

    def order(self, row: int, price: float) -> _Order | None:
        return self.orders[row].get(self.key(price))

    # -- the step's input ---------------------------------------------------------------
    def _refresh_input(self) -> None:
        out = self.input
        u = self.unit
        if self._disp is None or not (u > 0):
            out.fill(np.nan)
            return
        for row in (0, 1):
            t = self.best[row]
            mine = self.orders[row]
            step = -1 if row == 0 else 1
            for lv in range(self.levels):
                k = t + step * lv
                o = mine.get(k)
                q = o.ahead if o is not None else self.displayed(row, k)
                out[row, lv] = q / u if math.isfinite(q) else np.nan

    def queue_input(self) -> np.ndarray:
        """The step's queue input (2, levels), median trades (a copy)."""
        return self.input.copy()
