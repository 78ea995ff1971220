"""Prices on a grid and the L2 snapshots seen from one resting price: the pieces of
the paper exchange's ``book`` queue model (:mod:`mm_runtime.paper.replay`;
docs/runtime/paper.md: hftbacktest's risk-averse queue model)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .replay import ReplayData

__all__ = ["PRICE_RTOL", "Book", "all_or_none", "check_book", "infer_tick", "with_resting"]

PRICE_RTOL = 1e-9
"""Two prices within this relative distance are the same level (a tick-rounded quote,
``k·tick`` in floating point, and a source's ``k/10⁴`` can differ in the last bits)."""


def infer_tick(prices: np.ndarray, min_share: float = 0.99) -> float:
    """The price grid of ``prices``: the smallest gap between distinct prices, to 4
    significant digits, if at least ``min_share`` of the prices lie on its multiples;
    else 0 (continuous or unknown; a smallest gap below 1e-9 of the prices is float
    noise between continuous prices, every price a "multiple" of it)."""
    p = np.unique(np.asarray(prices, float)[np.isfinite(prices)])
    if p.size < 2:
        return 0.0
    gap = float(np.min(np.diff(p)))
    if not gap > 1e-9 * float(np.median(np.abs(p))):  # a few ulps apart: continuous prices, not a grid
        return 0.0
    tick = float(f"{gap:.4g}")
    r = p / tick
    on = np.abs(r - np.round(r)) <= 1e-4  # within 1e-4 of a tick (float error of p / tick)
    return tick if on.mean() >= min_share else 0.0


class Book:
    """The L2 snapshots seen from one resting price: the displayed size there, and
    whether the snapshot shows that price at all.

    A snapshot *shows* price p on a side when p is at or inside its deepest level, or
    when the side has fewer levels than the file's depth (then every resting order is
    in it).  A price it shows with no level there has 0 displayed (also a price
    better than the best: we would be alone at a new best level).  A price deeper
    than the last level of a full snapshot is not shown: its queue is unknown.
    """

    def __init__(self, data: ReplayData):
        self.ts = data.book_ts
        self.px = (data.book_bid_px, data.book_ask_px)  # row 0 = bids, 1 = asks (our ladder's rows)
        self.sz = (data.book_bid_sz, data.book_ask_sz)
        L = data.book_bid_px.shape[1]
        deepest = []
        for row, px in enumerate(self.px):
            full = np.isfinite(px).sum(axis=1) == L
            last = px[:, L - 1] if L else np.full(len(px), np.nan)
            deepest.append(np.where(full, last, -np.inf if row == 0 else np.inf))
        self.deepest = tuple(deepest)

    def before(self, t: float) -> int:
        """Number of snapshots strictly before ``t`` (one at ``t`` already reflects the
        trades at ``t``, see ``models.data.loaders``)."""
        return int(np.searchsorted(self.ts, t, side="left"))

    def displayed(self, row: int, p: float, a: int, b: int) -> np.ndarray:
        """Displayed size at ``p`` in snapshots ``a..b-1`` (NaN where not shown)."""
        tol = PRICE_RTOL * p
        px, sz = self.px[row][a:b], self.sz[row][a:b]
        d = np.where(np.abs(px - p) <= tol, sz, 0.0).sum(axis=1)
        deep = self.deepest[row][a:b]
        shown = (p >= deep - tol) if row == 0 else (p <= deep + tol)
        return np.where(shown, d, np.nan)

    def cap(self, row: int, p: float, q: float, a: int, b: int) -> float:
        """``q`` after the risk-averse rule over snapshots ``a..b-1``: never more
        ahead of us than displayed at our price."""
        if b <= a or q <= 0:
            return q
        d = self.displayed(row, p, a, b)
        d = d[np.isfinite(d)]
        return min(q, float(d.min())) if d.size else q

    def queue_at(self, row: int, p: float, b: int) -> float:
        """Queue ahead of a new order at ``p`` given the snapshots before index ``b``:
        everything the last one displays there (we join the back); inf when no
        snapshot yet or it does not show ``p``."""
        if b <= 0:
            return math.inf
        d = float(self.displayed(row, p, b - 1, b)[0])
        return d if math.isfinite(d) else math.inf

    def ladder_queues(self, bid: float, ask: float, tick: float, t: float, levels: int, unit: float) -> np.ndarray:
        """``(2, levels)``: the displayed size a new order would join at the touch and
        1..levels-1 ticks behind it (row 0 our bids, 1 our asks) in the snapshots before
        ``t``, in units of ``unit`` (the median trade size): the tick ladder's queue input
        (NaN where unknown: no snapshot yet, or a price it does not show)."""
        b = self.before(t)
        out = np.full((2, levels), np.nan)
        for lv in range(levels):
            for row, p in ((0, bid - lv * tick), (1, ask + lv * tick)):
                if p > 0:
                    q = self.queue_at(row, p, b)
                    out[row, lv] = q / unit if math.isfinite(q) else np.nan
        return out


def with_resting(qa: np.ndarray, bid: float, ask: float, tick: float, rest_px: np.ndarray, rest_sz: np.ndarray,
                 rest_q: np.ndarray, unit: float) -> np.ndarray:
    """The tick ladder's queue input ``qa`` (:meth:`Book.ladder_queues`, (2, L)) with the
    levels where one of our lots rests set to the queue ahead of our front lot there
    (``rest_q``: the replay's queue model, base units; an order re-placed at that price
    keeps its place), in units of ``unit``; NaN where that is unknown.  In place."""
    for row, touch, sgn in ((0, bid, -1.0), (1, ask, 1.0)):
        live = rest_sz[row] > 0
        if not np.any(live):
            continue
        for lv in range(qa.shape[1]):
            p = touch + sgn * lv * tick
            m = live & (np.abs(rest_px[row] - p) <= PRICE_RTOL * p)
            if np.any(m):
                q = float(np.min(rest_q[row][m]))
                qa[row, lv] = q / unit if math.isfinite(q) else np.nan
    return qa


def all_or_none(data: ReplayData, names: tuple[str, ...], what: str, where: str) -> bool:
    """Whether ``data`` carries the optional arrays ``names`` (all of them); a ValueError
    naming the first missing one when only some are given."""
    given = [n for n in names if getattr(data, n) is not None]
    if given and len(given) != len(names):
        missing = [n for n in names if n not in given]
        raise ValueError(f"{where}: {missing[0]}: {what} need all of {', '.join(names)}")
    return bool(given)


def check_book(self: ReplayData, where: str) -> None:
    """Refuse book snapshots of the wrong shapes or values, naming the field."""
    names = ("book_ts", "book_bid_px", "book_bid_sz", "book_ask_px", "book_ask_sz")
    if not all_or_none(self, names, "book snapshots", where):
        return
    ts = self.book_ts
    if ts.ndim != 1 or not np.all(np.isfinite(ts)):
        raise ValueError(f"{where}: book_ts: expected a 1-d array of finite times")
    if np.any(np.diff(ts) < 0):
        raise ValueError(f"{where}: book_ts: timestamps must be sorted")
    shape = self.book_bid_px.shape
    for n in names[1:]:
        a = getattr(self, n)
        if a.ndim != 2 or a.shape[0] != ts.size or a.shape != shape:
            raise ValueError(f"{where}: {n}: expected shape ({ts.size}, levels) like book_bid_px "
                             f"{shape}, got {a.shape}")
    for px, sz in (("book_bid_px", "book_bid_sz"), ("book_ask_px", "book_ask_sz")):
        p, s = getattr(self, px), getattr(self, sz)
        if np.any(p[np.isfinite(p)] <= 0) or np.any(np.isinf(p)):
            raise ValueError(f"{where}: {px}: level prices must be > 0 (NaN = no level)")
        if not np.all(np.isfinite(s)) or np.any(s < 0):
            raise ValueError(f"{where}: {sz}: sizes must be finite and >= 0")
