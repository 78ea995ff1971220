"""Book snapshots, placements and book checks of the queue orders (shared by
:mod:`models.data.queue` and its two follow-up rules, :mod:`models.data.queue_fifo` and
:mod:`models.data.queue_l2`).

Placements: every re-post ``t`` and side, the touch and 1..K ticks behind it that the
last book snapshot at or before ``t`` shows; events strictly after ``t`` move the queue.
Coverage: a price is *shown* by a snapshot when it is at or inside the deepest level of a
full side, or the side has fewer levels than the file's depth (as in
``mm_runtime.paper.book.Book``).  Book checks: missing, crossed, too sparse -- one-line
DataErrors naming the file and the snapshot.  Rules in full: docs/data/queue.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mm_runtime.observation import ObservationConfig
from mm_runtime.paper.book import PRICE_RTOL, infer_tick
from mm_runtime.vocabulary import NS
from models.data.gaps import find_gaps, repost_grid
from models.data.tables import DataError, Market

__all__ = ["OUTCOMES", "Snapshots", "Placements", "check_books", "market_tick", "placements", "book_file"]

OUTCOMES = ("filled", "through", "repost", "away", "end")
"""Outcome codes 0..4 of the follow-up functions, in the table as these strings."""
FILLED, THROUGH, REPOST, AWAY, END = range(5)

STALE_GAPS = 10
"""An L2 placement (snapshots on a clock: Hyperliquid, Binance) is skipped when the last
snapshot is older than this many median snapshot gaps, or the re-post interval if longer
(a recording outage, not a quiet book)."""


@dataclass
class Snapshots:
    """Book snapshots as wide arrays: ``ts`` (n,), ``px``/``sz`` (2, n, L) with row 0 the
    bids and row 1 the asks (price NaN, size 0 where a level is absent), ``deep`` (2, n):
    the deepest shown price per side (-inf / +inf when the side has fewer than L levels,
    so every price is shown)."""

    ts: np.ndarray
    px: np.ndarray
    sz: np.ndarray
    deep: np.ndarray
    path: str

    @classmethod
    def of(cls, market: Market, path: str) -> Snapshots:
        bk = market.books.drop_duplicates(["ts", "side", "level"], keep="last")
        ts, row = np.unique(bk["ts"].to_numpy(np.int64), return_inverse=True)
        L = int(bk["level"].max()) + 1
        lvl = bk["level"].to_numpy(np.int64)
        side = bk["side"].to_numpy()
        px = np.full((2, ts.size, L), np.nan)
        sz = np.zeros((2, ts.size, L))
        for r, sgn in ((0, 1), (1, -1)):
            m = side == sgn
            px[r, row[m], lvl[m]] = bk["price"].to_numpy(float)[m]
            sz[r, row[m], lvl[m]] = bk["size"].to_numpy(float)[m]
        full = np.isfinite(px).all(axis=2)
        deep = np.stack([np.where(full[0], px[0, :, -1], -np.inf), np.where(full[1], px[1, :, -1], np.inf)])
        return cls(ts, px, sz, deep, path)

    def displayed(self, r: int, rows: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Displayed size at price ``p[i]`` in snapshot ``rows[i]`` on side row ``r``."""
        px, sz = self.px[r][rows], self.sz[r][rows]
        p = np.asarray(p, float)
        hit = np.abs(px - p[..., None]) <= PRICE_RTOL * np.abs(p[..., None])
        return np.where(hit, sz, 0.0).sum(axis=-1)

    def shown(self, r: int, rows: np.ndarray, p: np.ndarray) -> np.ndarray:
        deep = self.deep[r][rows]
        tol = PRICE_RTOL * np.abs(p)
        return (p >= deep - tol) if r == 0 else (p <= deep + tol)


@dataclass
class Placements:
    """The orders placed (arrays aligned): placement ``t`` (ns), ``end`` (ns: the next
    re-post, the start of a recording gap or the data end), ``side`` (+1/-1), ``level``,
    ``price``, ``ahead`` (displayed size at the price in the placement snapshot ``snap``),
    touch ``imbalance``, ``spread_ticks``, ``depth_bps`` and whether the window was cut by
    the data end (``at_end``) or by a recording gap (``at_gap``)."""

    t: np.ndarray
    end: np.ndarray
    at_end: np.ndarray
    at_gap: np.ndarray
    side: np.ndarray
    level: np.ndarray
    price: np.ndarray
    ahead: np.ndarray
    imbalance: np.ndarray
    spread_ticks: np.ndarray
    depth_bps: np.ndarray
    snap: np.ndarray

    def censor_codes(self) -> np.ndarray:
        """The outcome of an order nothing happens to: ``end`` (cut by the data end),
        ``away`` (cut by a recording gap's start) or ``repost``."""
        return np.where(self.at_end, END, np.where(self.at_gap, AWAY, REPOST)).astype(np.int8)


def book_file(market: Market) -> str:
    for key in ("orderbook", "book"):
        hit = [f for f in market.files if key in str(f).split("/")[-1]]
        if hit:
            return str(hit[0])
    return str(market.files[0]) if market.files else f"{market.asset} ({market.source}) books table"


def _iso(ns: int) -> str:
    return np.datetime_as_string(np.datetime64(int(ns), "ns"), unit="ms") + "Z"


def check_books(market: Market, config: ObservationConfig, periodic: bool) -> Snapshots:
    """The book snapshots, or a DataError: no books, a crossed snapshot, or (``periodic``
    snapshots, L2 sources) a median gap between snapshots longer than the re-post
    interval (too sparse to follow a queue through one order's life)."""
    path = book_file(market)
    if market.books is None or len(market.books) == 0:
        raise DataError(path, "", "no books: queue orders need an order book (load the data with its "
                        "book snapshots: with_books=True)")
    s = Snapshots.of(market, path)
    bid, ask = s.px[0, :, 0], s.px[1, :, 0]
    crossed = np.isfinite(bid) & np.isfinite(ask) & (bid >= ask)
    if crossed.any():
        i = int(np.flatnonzero(crossed)[0])
        raise DataError(path, f"book snapshot {i + 1} (ts {_iso(s.ts[i])})",
                        f"crossed book: bid {bid[i]:g} >= ask {ask[i]:g}")
    if periodic:
        if s.ts.size < 2:
            raise DataError(path, "book snapshot 1", "too sparse for queue tracking: a single snapshot")
        gap = np.diff(s.ts) / NS
        med = float(np.median(gap))
        if med > config.repost_interval_s:
            i = int(np.flatnonzero(gap > config.repost_interval_s)[0]) + 1
            raise DataError(path, f"book snapshot {i + 1} (ts {_iso(s.ts[i])})",
                            f"too sparse for queue tracking: median gap between snapshots {med:g} s "
                            f"> the re-post interval {config.repost_interval_s:g} s")
    return s


def market_tick(market: Market, snaps: Snapshots) -> float:
    prices = np.concatenate([snaps.px[np.isfinite(snaps.px)], market.trades["price"].to_numpy(float)])
    tick = infer_tick(prices)
    if not tick > 0:
        raise DataError(snaps.path, "", "book prices are not on a tick grid: queue levels need one")
    return tick


def placements(market: Market, snaps: Snapshots, config: ObservationConfig, tick: float,
               stale_ns: int | None = None) -> Placements:
    """Every re-post ``t_k = t0 + k*R`` (``t0`` the first quote, ``t_k`` before the data
    end) and side, the touch and 1..K ticks behind it that the snapshot at or before
    ``t_k`` shows (both sides present, not older than ``stale_ns`` when given).
    Recording gaps (:func:`models.data.gaps.find_gaps`), as for the passive quotes: the
    grid restarts at the end of each gap, an order alive at a gap's start ends there
    (``at_gap``: censored, ``away``), and no order is placed inside a gap."""
    R = int(round(config.repost_interval_s * NS))
    t0, tE = int(market.quotes["ts"].iloc[0]), int(market.end_ns)
    t, end, at_gap = repost_grid(find_gaps(market, config), t0, tE, R)
    a = np.searchsorted(snaps.ts, t, side="right") - 1
    ok = a >= 0
    if stale_ns is not None:
        ok &= (t - snaps.ts[np.maximum(a, 0)]) <= stale_ns
    t, a, end, at_gap = t[ok], a[ok], end[ok], at_gap[ok]
    bid, ask = snaps.px[0, a, 0], snaps.px[1, a, 0]
    bsz, asz = snaps.sz[0, a, 0], snaps.sz[1, a, 0]
    ok = np.isfinite(bid) & np.isfinite(ask)
    t, a, end, at_gap = t[ok], a[ok], end[ok], at_gap[ok]
    bid, ask, bsz, asz = bid[ok], ask[ok], bsz[ok], asz[ok]
    mid = 0.5 * (bid + ask)
    imb = (bsz - asz) / (bsz + asz)
    spread = np.rint((ask - bid) / tick).astype(np.int16)
    parts = []
    for r, s, best in ((0, 1, bid), (1, -1, ask)):
        for j in range(config.queue_levels + 1):
            p = np.round((best - s * j * tick) / tick) * tick
            shown = snaps.shown(r, a, p)
            k = np.flatnonzero(shown)
            parts.append((k, s, j, p[k], snaps.displayed(r, a[k], p[k])))
    k = np.concatenate([q[0] for q in parts])
    out = Placements(
        t=t[k], end=end[k], at_end=(t + R > tE)[k], at_gap=at_gap[k],
        side=np.concatenate([np.full(len(q[0]), q[1], np.int8) for q in parts]),
        level=np.concatenate([np.full(len(q[0]), q[2], np.int16) for q in parts]),
        price=np.concatenate([q[3] for q in parts]),
        ahead=np.concatenate([q[4] for q in parts]),
        imbalance=imb[k], spread_ticks=spread[k], depth_bps=np.zeros(len(k)), snap=a[k])
    out.depth_bps = out.side * (mid[k] - out.price) / mid[k] * 1e4
    order = np.lexsort((out.level, out.side, out.t))
    for f in out.__dataclass_fields__:
        setattr(out, f, getattr(out, f)[order])
    return out
