"""Replay recorded market data through a :class:`~mm_runtime.Quoter` (paper trading):
quotes refreshed every ``refresh_s`` of market time and resting after ``latency_s``,
trade-through fills plus fills at our price by a queue model (``none``, ``factor``,
or ``book``: queue position from L2 snapshots, hftbacktest's risk-averse model), maker
fees, equity marked at the mid, markouts at several horizons, and the kill switch
(:mod:`mm_runtime.guards`, the live process's own): a trip pulls every quote (after
the latency) until a reset at ``ReplayConfig.guard_resets_s``.

Inputs are numpy arrays (:class:`ReplayData`), so this module stays free of pandas;
``models.data.loaders.replay_data`` builds them from any source's canonical tables.
The simulated exchange's rules in full: docs/runtime/paper.md.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import Callable
from typing import Annotated, Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..bundle import PriorBundle
from ..config import QuoterConfig
from ..core import fills_tau_s
from ..guards import GuardConfig, KillSwitch, resolve_limits
from ..quoter import REASONS, Quoter
from ..tick_ladder import EMPTY_TERMS, why_empty_fills
from .accounting import apply_fills, mark_to_market
from .book import PRICE_RTOL, Book, check_book, infer_tick, with_resting
from .l3 import MSG_FIELDS, L3Queue, check_messages
from .results import auto_block_s, block_pnl, edge_terms, fill_calibration, learning, markouts, quoting_note, summarize_replay

__all__ = ["ReplayConfig", "ReplayData", "ReplayResult", "block_pnl", "infer_tick", "replay", "summarize_replay"]


class ReplayData(NamedTuple):
    """One asset's market events, sorted by time (seconds since the epoch).

    The ``book_*`` arrays are optional L2 snapshots (``None`` = trades and best quotes
    only): ``book_ts`` (n,), and per side (n, L) level prices, best first (NaN where the
    snapshot has no level there), and displayed sizes (0 there).  ``tick`` is the
    data's price grid (0 = unknown or continuous); the book queue model needs it.
    """

    asset: str
    source: str
    trade_ts: np.ndarray
    trade_price: np.ndarray
    trade_size: np.ndarray
    trade_side: np.ndarray  # +1 aggressor bought, -1 sold
    quote_ts: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    book_ts: np.ndarray | None = None
    book_bid_px: np.ndarray | None = None
    book_bid_sz: np.ndarray | None = None
    book_ask_px: np.ndarray | None = None
    book_ask_sz: np.ndarray | None = None
    tick: float = 0.0
    msg_ts: np.ndarray | None = None  # order-level messages (LOBSTER), the l3 queue model's input:
    msg_type: np.ndarray | None = None  # time, event type 1..7, order id, size, price,
    msg_id: np.ndarray | None = None  # direction (+1 buy order, -1 sell); see .l3
    msg_size: np.ndarray | None = None
    msg_price: np.ndarray | None = None
    msg_dir: np.ndarray | None = None

    @property
    def has_book(self) -> bool:
        return self.book_ts is not None

    @property
    def has_messages(self) -> bool:
        return self.msg_ts is not None

    def check(self) -> ReplayData:
        """Refuse arrays that would make a replay meaningless, naming the field."""
        where = f"{self.source}:{self.asset}"
        for name in ("trade_ts", "trade_price", "trade_size", "trade_side", "quote_ts", "bid", "ask"):
            a = getattr(self, name)
            if a.ndim != 1:
                raise ValueError(f"{where}: {name}: expected a 1-d array, got shape {a.shape}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{where}: {name}: {int(np.sum(~np.isfinite(a)))} non-finite values")
        if len(self.trade_ts) == 0 or len(self.quote_ts) == 0:
            raise ValueError(f"{where}: nothing to replay ({len(self.trade_ts)} trades, {len(self.quote_ts)} quotes)")
        if not (len(self.trade_ts) == len(self.trade_price) == len(self.trade_size) == len(self.trade_side)):
            raise ValueError(f"{where}: trades: columns have different lengths")
        if not (len(self.quote_ts) == len(self.bid) == len(self.ask)):
            raise ValueError(f"{where}: quotes: columns have different lengths")
        if np.any(np.diff(self.trade_ts) < 0) or np.any(np.diff(self.quote_ts) < 0):
            raise ValueError(f"{where}: timestamps must be sorted (trades and quotes)")
        if np.any(self.trade_price <= 0) or np.any(self.trade_size <= 0):
            raise ValueError(f"{where}: trades: price and size must be positive")
        if not np.all(np.isin(self.trade_side, (-1.0, 1.0))):
            raise ValueError(f"{where}: trade_side: must be +1 or -1")
        if np.any(self.bid <= 0) or np.any(self.ask <= 0):
            raise ValueError(f"{where}: quotes: bid and ask must be positive")
        if not (math.isfinite(self.tick) and self.tick >= 0):
            raise ValueError(f"{where}: tick: must be a finite number >= 0, got {self.tick!r}")
        check_book(self, where)
        check_messages(self, where)
        return self

    @property
    def start(self) -> float:
        return float(min(self.trade_ts[0], self.quote_ts[0]))

    @property
    def end(self) -> float:
        return float(max(self.trade_ts[-1], self.quote_ts[-1]))

    def window(self, start: float, end: float) -> ReplayData:
        """The events with ``start <= ts < end``."""
        t = (self.trade_ts >= start) & (self.trade_ts < end)
        q = (self.quote_ts >= start) & (self.quote_ts < end)
        out = self._replace(trade_ts=self.trade_ts[t], trade_price=self.trade_price[t],
                            trade_size=self.trade_size[t], trade_side=self.trade_side[t],
                            quote_ts=self.quote_ts[q], bid=self.bid[q], ask=self.ask[q])
        if self.has_book:
            b = (self.book_ts >= start) & (self.book_ts < end)
            out = out._replace(book_ts=self.book_ts[b], book_bid_px=self.book_bid_px[b],
                               book_bid_sz=self.book_bid_sz[b], book_ask_px=self.book_ask_px[b],
                               book_ask_sz=self.book_ask_sz[b])
        if self.has_messages:
            m = (self.msg_ts >= start) & (self.msg_ts < end)
            out = out._replace(**{n: getattr(self, n)[m] for n in MSG_FIELDS})
        return out


Pos = Annotated[float, Field(gt=0)]

_QUOTER_LOG = logging.getLogger("mm_runtime.paper.quoter")
"""The replayed quoter's own per-status log lines are noise in a replay (thousands per
hour); only its warnings and errors (e.g. a refused bundle) pass by default."""
_QUOTER_LOG.setLevel(logging.WARNING)
_GUARD_LOG = logging.getLogger("mm_runtime.paper.guards")
"""The kill switch's trip and reset records of a replay."""


class ReplayConfig(BaseModel):
    """How the simulated exchange behaves (units: s, bps, quote currency)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    refresh_s: Pos = 1.0
    """Quotes are recomputed this often (market time)."""
    latency_s: Annotated[float, Field(ge=0)] = 0.05
    """Decision → resting (and cancel) delay."""
    fee_bps: float = 0.0
    """Maker fee in bps of notional (negative = rebate).  Also the quoter's fee."""
    queue_model: Literal["auto", "none", "factor", "book", "l3"] = "auto"
    """How a print *at* our price fills us (prints strictly through it always do):
    ``none`` never (trade-through only); ``factor`` ``queue_factor`` × the print;
    ``book`` after the displayed size ahead of us is consumed (queue position from the
    L2 snapshots, see the module docstring); ``l3`` our exact FIFO place from order-level
    messages (:mod:`.l3`); ``auto`` = ``l3`` when the data carries messages and books on a
    known price grid, else ``book`` when it carries book snapshots on a grid, else
    ``factor`` (with the default ``queue_factor`` 0 that is trade-through only, the
    replay's behaviour before books were used)."""
    queue_factor: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Share of a trade *at* our price that fills us (0 = trade-through only); the
    ``factor`` model, and ``auto``'s fallback on data without books."""
    tick_size: Annotated[float, Field(ge=0)] | None = None
    """The venue's price grid; quotes are rounded to it away from the mid (the
    quoter's ``tick_size``).  None: the quoter config's own, and where that is 0 the
    data's tick (``ReplayData.tick``, inferred from its prices): orders rest only on
    the venue's grid, and a replay quoting between ticks earns spread no order could
    (measured on AAPL: +42.5 with sub-tick quotes, −15.7 on the cent grid).  The
    ``book`` model needs a grid (a queue exists only at a price level of the book).
    0 = continuous prices (when the data have no grid, e.g. the synthetic market)."""
    cap_by_trade_size: bool = True
    capital: Pos = 100_000.0
    """Starting cash (quote currency); free margin = equity − |q|·mid/leverage."""
    max_position_notional: Pos | None = 20_000.0
    """Sets the quoter's ``max_position`` to this notional at the first mid (so one
    setting means the same risk on AAPL and on BTC); None keeps the QuoterConfig's."""
    markout_horizons_s: tuple[float, ...] = (1.0, 5.0, 30.0)
    block_s: Pos | None = None
    """Time blocks of the Sharpe ratio and of the paired comparison (:mod:`.compare`).
    None: the longest of 1 s … 1 h that gives at least 10 blocks over the replay
    (:func:`~mm_runtime.paper.results.auto_block_s`)."""
    learn_from_trades: bool = True
    """Pass every public trade to the quoter (its online κ, A, Hawkes updates)."""
    progress_every_s: Annotated[float, Field(ge=0)] = 0.0
    """Call ``progress`` every this many wall-clock seconds (0 = never)."""
    guards: GuardConfig = GuardConfig()
    """The kill switch's limits (:mod:`mm_runtime.guards`; the account is ``capital``)."""
    guard_resets_s: tuple[Annotated[float, Field(ge=0)], ...] = ()
    """Manual resets of the kill switch, seconds after the replay's first quote."""

    @model_validator(mode="after")
    def _queue_settings(self) -> ReplayConfig:
        if self.queue_factor > 0 and self.queue_model in ("none", "book", "l3"):
            raise ValueError(f"queue_factor: {self.queue_factor} has no effect with queue_model="
                             f"{self.queue_model!r} (it is the 'factor' model's share; 'auto' uses it "
                             "only on data without books)")
        return self


class ReplayResult(NamedTuple):
    """One configuration's replay.  The curves are sampled at every refresh time and,
    as their last point, at the end of the replay (one refresh after the last ladder;
    orders cancelled, so ``our_bid``/``our_ask`` are NaN there).  Every figure of the
    summary comes from these curves: PnL = ``equity[-1]`` = the sum of the block PnLs."""

    name: str
    asset: str
    source: str
    config: dict
    # equity curve, sampled at every refresh time and at the end
    t: np.ndarray
    mid: np.ndarray
    equity: np.ndarray  # cash + position·mid − capital (PnL)
    position: np.ndarray
    # the ladder over time: best bid/ask we quoted (NaN = no quote) and the market's
    our_bid: np.ndarray
    our_ask: np.ndarray
    mkt_bid: np.ndarray
    mkt_ask: np.ndarray
    # fills (one row per fill)
    fills: dict[str, np.ndarray]
    summary: dict
    seconds: float


_FILL_FIELDS = ("ts", "side", "price", "size", "level", "depth_bps", "fee", "trade_price", "mid", "at_price")

def _prevailing(ts: np.ndarray, t: float, strict: bool) -> int:
    """Index of the last quote at (or strictly before) ``t``; -1 if none."""
    return int(np.searchsorted(ts, t, side="left" if strict else "right")) - 1


def replay(
    data: ReplayData,
    bundle: PriorBundle,
    quoter_config: QuoterConfig | None = None,
    config: ReplayConfig | None = None,
    *,
    name: str = "replay",
    progress: Callable[[float], None] | None = None,
    registry=None,
) -> ReplayResult:
    """Run one configuration over ``data``; see the module docstring for the rules.
    ``registry``: a learned-parameter registry whose calibrated risk tier sets the
    kill switch's default loss limits (:func:`mm_runtime.guards.resolve_limits`)."""
    cfg = config or ReplayConfig()
    data = data.check()
    where = f"{data.source}:{data.asset}"
    t_wall = time.perf_counter()
    first_mid = 0.5 * (data.bid[0] + data.ask[0])
    qc = quoter_config or QuoterConfig()
    tick = cfg.tick_size if cfg.tick_size is not None else qc.tick_size
    if cfg.tick_size is None and tick == 0:
        tick = data.tick
    mode = cfg.queue_model
    if mode == "auto":  # a book on a price grid (a continuous-price book, e.g. the synthetic one, has no queues to follow)
        mode = ("l3" if data.has_messages else "book") if data.has_book and tick > 0 else "factor"
    if mode == "l3" and not data.has_messages:
        raise ValueError(f"{where}: queue_model: 'l3' needs order-level messages, and this data has none "
                         "(LOBSTER loaded with with_messages=True, or use queue_model 'book')")
    if mode in ("book", "l3") and not data.has_book:
        raise ValueError(f"{where}: queue_model: {mode!r} needs book snapshots, and this data has none "
                         "(load it with with_books=True, or use queue_model 'factor' or 'none')")
    if mode in ("book", "l3") and tick == 0:
        raise ValueError(f"{where}: tick_size: the {mode} queue model needs quotes on the price grid and "
                         "the data's tick is unknown (ReplayData.tick = 0); pass tick_size")
    update = {"fee_bps": cfg.fee_bps}
    if tick != qc.tick_size:
        update["tick_size"] = tick
    if cfg.max_position_notional is not None:
        update["max_position"] = cfg.max_position_notional / first_mid
    qc = qc.model_copy(update=update)
    quoter = Quoter(bundle, qc, replay=True, metrics=False, logger=_QUOTER_LOG)
    limits = resolve_limits(cfg.guards, account=cfg.capital, quoter_config=qc, bundle=bundle, registry=registry)
    kill = KillSwitch(limits, asset=data.asset, config=cfg.guards, logger=_GUARD_LOG)
    fee = cfg.fee_bps * 1e-4
    qf = cfg.queue_factor if mode == "factor" else 0.0
    book = Book(data) if mode == "book" else None
    l3 = L3Queue(data) if mode == "l3" else None
    # the tick ladder's queue input (bundles with a fills model): the displayed size at each
    # level when the ladder is placed, in median trades (the fills model's covariate)
    qbook = l3.book if l3 is not None else book
    q_levels = quoter.queue_levels if qbook is not None else 0
    q_unit = float(np.median(data.trade_size)) if len(data.trade_size) else 1.0

    t0 = float(data.quote_ts[0])  # the first moment a quote is possible
    # whole refresh intervals only: the last ladder rests until the refresh after it,
    # t_end, which is the end of the replay (every order cancelled, the last mark)
    n_ticks = int(math.floor((data.end - t0) / cfg.refresh_s + 1e-9))
    if n_ticks == 0:
        raise ValueError(f"{where}: the data spans less than one refresh interval ({cfg.refresh_s} s)")
    ticks = t0 + cfg.refresh_s * np.arange(n_ticks + 1)  # the refresh times, then t_end
    t_end = float(ticks[-1])
    if cfg.block_s is None:
        cfg = cfg.model_copy(update={"block_s": auto_block_s(t_end - t0, cfg.refresh_s)})
    # the stale-feed guard: every silence (no trade, no quote) longer than its limit
    updates = np.unique(np.concatenate([data.trade_ts, data.quote_ts]))
    updates = updates[updates >= t0]
    long_gap = np.flatnonzero(np.diff(updates) > limits["stale_feed"].value)
    gap_start, gap_end = updates[long_gap], updates[long_gap + 1]
    resets = sorted(t0 + s for s in cfg.guard_resets_s)

    cash, pos = cfg.capital, 0.0
    K = qc.n_levels
    # resting orders: columns 0..K-1 = the ladder's levels, K..2K-1 = a second lot per
    # level (book model only: the part of a level added behind its kept front part)
    rest_px = np.zeros((2, 2 * K))
    rest_sz = np.zeros((2, 2 * K))
    rest_depth = np.zeros((2, 2 * K))
    rest_q = np.full((2, 2 * K), math.inf)  # others' displayed size ahead of each lot
    rest_qi = np.zeros((2, 2 * K), dtype=np.int64)  # snapshots applied to rest_q (book); l3: first message behind
    pending: collections.deque = collections.deque()  # (activation time, price, size, depth), in time order
    fills = {k: [] for k in _FILL_FIELDS}
    out = {k: np.full(n_ticks + 1, np.nan) for k in ("mid", "equity", "position", "our_bid", "our_ask", "mkt_bid", "mkt_ask")}
    last_ts = t0
    why_not = {}  # refresh ticks without a resting order, by reason
    cold = {"refreshes": 0, "first_t": None, "last_t": None}  # ladders with a cold-start order
    queue_stats = {"kept": 0, "joined": 0, "unknown": 0}
    quoted = []  # (t, next refresh, price, size, fill_prob) of every ladder with an order
    tick_ladders = [] if quoter.state.cfg.fills is not None else None  # the edge terms, every refresh

    def market_at(t: float, strict: bool):
        i = _prevailing(data.quote_ts, t, strict)
        if i < 0:
            return 0.0, 0.0, 0.0, -math.inf
        b, a = float(data.bid[i]), float(data.ask[i])
        return b, a, 0.5 * (b + a), float(data.quote_ts[i])

    def free_margin(mid: float) -> float:
        eq = mark_to_market(cash, pos, mid)
        return max(0.0, eq - abs(pos) * mid / qc.leverage)

    nxt = {"gap": 0, "reset": 0}

    def guard(x: float, mid: float) -> bool:
        """Resets due, the stale-feed guard and the account guards at ``x``; on a trip
        every resting and pending order is cancelled after the latency.  Returns
        whether quoting is allowed."""
        was = kill.tripped
        while nxt["reset"] < len(resets) and resets[nxt["reset"]] <= x:
            kill.reset(resets[nxt["reset"]], equity=mark_to_market(cash, pos, mid) if mid > 0 else None,
                       position=pos, mid=mid, by="replay (ReplayConfig.guard_resets_s)")
            nxt["reset"] += 1
            was = False
        while nxt["gap"] < len(gap_start) and gap_start[nxt["gap"]] + limits["stale_feed"].value < x:
            g = nxt["gap"]
            nxt["gap"] += 1
            if gap_end[g] > (kill.resets[-1]["at"] if kill.resets else -math.inf):
                kill.last_update = float(gap_start[g])
                kill.check_stale(min(x, float(gap_end[g])))
        kill.market_update(x)
        if mid > 0:
            kill.check(x, equity=mark_to_market(cash, pos, mid), position=pos, mid=mid)
        if kill.tripped and not was:
            pull(x)
        return not kill.tripped

    def pull(x: float) -> None:
        """Cancel everything: pending ladders dropped, an empty one after the latency."""
        pending.clear()
        pending.append((x + cfg.latency_s, np.zeros((2, K)), np.zeros((2, K)), np.zeros((2, K))))
        if cfg.latency_s == 0:
            activate(*pending.popleft())

    def record(tt: float, row: int, k: int, q: float, trade_px: float, mid: float, at_price: bool) -> tuple:
        """Book a fill of ``q`` of lot ``k`` (cash, position, the fills table)."""
        nonlocal cash, pos
        fprice = float(rest_px[row, k])
        cash, pos = apply_fills(cash, pos, fprice, q if row == 0 else -q, fee)  # our bid filled: we buy
        for key, v in zip(_FILL_FIELDS, (tt, 1.0 if row == 0 else -1.0, fprice, q, float(k % K),
                                         float(rest_depth[row, k]), fee * abs(fprice * q), trade_px, mid,
                                         float(at_price)), strict=True):
            fills[key].append(v)
        return fprice, 1.0 if row == 0 else -1.0, float(rest_depth[row, k])

    def activate(t_a: float, new_px, new_sz, new_depth) -> None:
        """The ladder decided ``latency_s`` ago starts resting at ``t_a``."""
        nonlocal rest_px, rest_sz, rest_depth, rest_q, rest_qi
        if l3 is not None:  # the messages before t_a move the lots resting until then
            for f_ts, r, k, q, p in l3.advance(t_a, rest_px, rest_sz, rest_q, rest_qi, inclusive=False):
                record(f_ts, r, k, q, p, market_at(f_ts, strict=True)[2], True)
        px2 = np.concatenate([new_px, new_px], axis=1)
        sz2 = np.concatenate([new_sz, np.zeros_like(new_sz)], axis=1)
        d2 = np.concatenate([new_depth, new_depth], axis=1)
        q2 = np.full((2, 2 * K), math.inf)
        qi2 = np.zeros((2, 2 * K), dtype=np.int64)
        if book is not None or l3 is not None:
            b = book.before(t_a) if book is not None else l3.k0(t_a)
            qi2[:] = b
            old_left = rest_sz.copy()
            for row in (0, 1):
                for k in range(K):
                    n = float(sz2[row, k])
                    if n <= 0:
                        continue
                    p = float(px2[row, k])
                    # our orders already resting at p keep their place (an amend down keeps
                    # priority); what this level adds beyond them joins the back of the queue
                    same = np.flatnonzero((old_left[row] > 0) & (np.abs(rest_px[row] - p) <= PRICE_RTOL * p))
                    lots = []
                    for j in same:
                        q_old = book.cap(row, p, float(rest_q[row, j]), int(rest_qi[row, j]), b) if l3 is None \
                            else float(rest_q[row, j])
                        lots.append((q_old, int(rest_qi[row, j]) if l3 is not None else b, int(j)))
                    lots.sort()
                    parts = []  # (size, queue ahead, snapshot index or first message behind)
                    for q_old, qi_old, j in lots:
                        if n <= 0:
                            break
                        take = min(n, float(old_left[row, j]))
                        old_left[row, j] -= take
                        parts.append((take, q_old, qi_old))
                        n -= take
                    if parts:
                        queue_stats["kept"] += 1
                    if n > 0:
                        q_new = book.queue_at(row, p, b) if l3 is None else l3.join(row, p, t_a)
                        queue_stats["unknown" if math.isinf(q_new) else "joined"] += 1
                        parts.append((n, q_new, b))
                    front = parts[0]
                    back = (sum(s for s, _, _ in parts[1:]), max((q for _, q, _ in parts[1:]), default=math.inf),
                            max((i for _, _, i in parts[1:]), default=b))
                    sz2[row, k], q2[row, k], qi2[row, k] = front
                    if back[0] > 0:  # later parts merged: the worst place among them (conservative)
                        sz2[row, K + k], q2[row, K + k], qi2[row, K + k] = back
        rest_px, rest_sz, rest_depth, rest_q, rest_qi = px2, sz2, d2, q2, qi2
        if q_levels:  # the quoter's own orders: its fills learning (cells at placement)
            quoter.place(t_a, rest_px[:, :K], rest_sz[:, :K] + rest_sz[:, K:], queue_ahead=rest_q[:, :K] / q_unit)

    j = 0  # next trade
    n_trades = len(data.trade_ts)
    last_progress = time.monotonic()
    for i in range(n_ticks + 1):
        t_next = ticks[i]  # at i == n_ticks: the end of the replay
        while j < n_trades and data.trade_ts[j] < t_next:
            tt = float(data.trade_ts[j])
            while pending and pending[0][0] <= tt:
                activate(*pending.popleft())
            px, side, tsize = float(data.trade_price[j]), float(data.trade_side[j]), float(data.trade_size[j])
            b, a, mid, qts = market_at(tt, strict=True)
            last_ts = max(qts, tt)
            row = 1 if side > 0 else 0  # a buy lifts asks (row 1); a sell hits bids (row 0)
            live = rest_sz[row] > 0
            tol = PRICE_RTOL * px
            through = (rest_px[row] < px - tol) if side > 0 else (rest_px[row] > px + tol)
            at = np.abs(rest_px[row] - px) <= tol
            if book is not None:
                hit = live & (through | at)
            else:
                hit = live & (through | (at & (qf > 0)))
            my_fills, left = [], tsize
            if l3 is not None:  # fills at our price from the executions up to tt; those at this print's
                for _, r, k, q, p in l3.advance(tt, rest_px, rest_sz, rest_q, rest_qi):  # price take from it
                    my_fills.append(record(tt, r, k, q, p, mid, True))
                    left -= q if (r == row and abs(p - px) <= tol) else 0.0
                live = rest_sz[row] > 0
                hit = hit & live
            if book is not None and np.any(live & at):
                nb = book.before(tt)
                for k in np.flatnonzero(live & at):
                    rest_q[row, k] = book.cap(row, px, float(rest_q[row, k]), int(rest_qi[row, k]), nb)
                    rest_qi[row, k] = nb
            # nearest levels first (best price for the aggressor); at one price, the lot
            # with the least ahead of it first
            order = np.lexsort((rest_q[row], rest_px[row] if side > 0 else -rest_px[row]))
            own_ahead = 0.0  # our own size at this print's price ahead of the lot (book model)
            at_left = None  # the print as it reaches its own price level
            for k in order:
                if not hit[k] or left <= 0:
                    continue
                cap = left if cfg.cap_by_trade_size else math.inf
                at_price = bool(at[k] and not through[k])
                if at_price and book is not None:
                    if at_left is None:
                        at_left = left
                    q = min(rest_sz[row, k], max(0.0, at_left - rest_q[row, k] - own_ahead))
                    own_ahead += rest_sz[row, k]
                    left = max(0.0, at_left - rest_q[row, k] - own_ahead) if cfg.cap_by_trade_size else left
                else:
                    if at_price:
                        cap = min(cap, qf * tsize)
                    q = min(rest_sz[row, k], cap)
                    if cfg.cap_by_trade_size:
                        left -= q
                if q <= 0:
                    continue
                rest_sz[row, k] -= q
                my_fills.append(record(tt, row, k, q, px, mid, at_price))
            if book is not None:
                # the print consumed the queue at its price (whoever it filled in the data);
                # a level it traded through is empty
                rest_q[row] = np.where(at & ~through, np.maximum(0.0, rest_q[row] - tsize), rest_q[row])
                rest_q[row] = np.where(through, 0.0, rest_q[row])
            if mid > 0 and (cfg.learn_from_trades or my_fills):
                first_fill = my_fills[0] if my_fills else None
                quoter.on_event(last_ts, mid, bid=b, ask=a, position=pos, margin_available=free_margin(mid),
                                trade=(px, side) if cfg.learn_from_trades else None, fill=first_fill, now=tt)
                for extra in my_fills[1:]:
                    quoter.on_event(last_ts, mid, bid=b, ask=a, position=pos,
                                    margin_available=free_margin(mid), fill=extra, now=tt)
            guard(tt, mid)
            j += 1
        if i == n_ticks:
            break
        t = float(ticks[i])
        while pending and pending[0][0] <= t:
            activate(*pending.popleft())
        b, a, mid, qts = market_at(t, strict=False)
        last_ts = max(last_ts, qts)
        if mid <= 0:
            continue
        allowed = guard(t, mid)
        qa = qbook.ladder_queues(b, a, tick, t, q_levels, q_unit) if q_levels else None
        if qa is not None:  # where our lots rest: their queue ahead (the replay's queue model)
            with_resting(qa, b, a, tick, rest_px, rest_sz, rest_q, q_unit)
        qt = quoter.on_event(last_ts, mid, bid=b, ask=a, position=pos, margin_available=free_margin(mid), now=t,
                             queue_ahead=qa)
        if allowed and bool(qt.valid) and not kill.allow_quotes(t, int(np.sum(np.asarray(qt.size) > 0))):
            pull(t)
            allowed = False
        if allowed and np.any(qt.cold_start):
            cold["refreshes"] += 1
            cold["first_t"] = t if cold["first_t"] is None else cold["first_t"]
            cold["last_t"] = t
        if not allowed:  # the kill switch: no quotes until a reset
            new_px, new_sz, new_depth = np.zeros((2, K)), np.zeros((2, K)), np.zeros((2, K))
            key = f"kill switch: {kill.trip['reason']}"
            why_not[key] = why_not.get(key, 0) + 1
        elif bool(qt.valid):
            new_px, new_sz, new_depth = np.array(qt.price), np.array(qt.size), np.array(qt.depth_bps)
            if tick_ladders is not None:
                tick_ladders.append((b, a, new_px, new_depth, np.array(qt.edge_bps), np.array(qt.fill_prob)))
            if not np.any(new_sz > 0):
                key = _why_empty(qt, quoter, qc)
                why_not[key] = why_not.get(key, 0) + 1
            else:
                quoted.append((t, float(ticks[i + 1]), new_px, new_sz, np.array(qt.fill_prob)))
        else:  # no quotes: cancel everything (after the latency)
            new_px, new_sz, new_depth = np.zeros((2, K)), np.zeros((2, K)), np.zeros((2, K))
            key = REASONS[int(qt.reason)]
            why_not[key] = why_not.get(key, 0) + 1
        pending.append((t + cfg.latency_s, new_px, new_sz, new_depth))
        if cfg.latency_s == 0:
            activate(*pending.popleft())
        out["mid"][i] = mid
        out["mkt_bid"][i], out["mkt_ask"][i] = b, a
        out["equity"][i] = mark_to_market(cash, pos, mid) - cfg.capital
        out["position"][i] = pos
        bids, asks = new_px[0][new_sz[0] > 0], new_px[1][new_sz[1] > 0]
        out["our_bid"][i] = bids.max() if bids.size else np.nan
        out["our_ask"][i] = asks.min() if asks.size else np.nan
        if progress is not None and cfg.progress_every_s > 0 and time.monotonic() - last_progress >= cfg.progress_every_s:
            last_progress = time.monotonic()
            progress((t - t0) / max(t_end - t0, 1e-9))

    # the end of the replay: orders cancelled, the last point of the equity curve (no
    # ladder: our_bid/our_ask stay NaN there)
    b, a, mid, _ = market_at(t_end, strict=False)
    out["mid"][n_ticks], out["mkt_bid"][n_ticks], out["mkt_ask"][n_ticks] = mid, b, a
    out["equity"][n_ticks] = mark_to_market(cash, pos, mid) - cfg.capital
    out["position"][n_ticks] = pos
    fills_np = {k: np.asarray(v, dtype=float) for k, v in fills.items()}
    fills_np.update(markouts(data, fills_np, cfg.markout_horizons_s))
    keep = ~np.isnan(out["mid"])
    res = ReplayResult(
        name=name, asset=data.asset, source=data.source,
        config={"replay": cfg.model_dump(), "quoter": quoter.effective_config.model_dump(),
                "model_version": bundle.model_version, "queue_model": mode},
        t=ticks[keep], mid=out["mid"][keep], equity=out["equity"][keep], position=out["position"][keep],
        our_bid=out["our_bid"][keep], our_ask=out["our_ask"][keep],
        mkt_bid=out["mkt_bid"][keep], mkt_ask=out["mkt_ask"][keep],
        fills=fills_np,
        summary={}, seconds=0.0,
    )
    summary = summarize_replay(res)
    summary["learning"] = learning(quoter)
    ks = kill.status()
    ks["at_replay_s"] = ks["at"] - t0 if ks["at"] is not None else None
    summary["kill_switch"] = ks
    summary["cold_start"] = cold
    summary["not_quoting"] = dict(sorted(why_not.items(), key=lambda kv: -kv[1]))
    summary["quoting_note"] = quoting_note(summary["not_quoting"], summary["refreshes"])
    horizon = qc.quote_horizon_s  # the depth ladder's first passage; the tick ladder's τ:
    if quoter.state.cfg.fills is not None:
        horizon = fills_tau_s(qc, bundle.observation)
    summary["fill_calibration"] = fill_calibration(quoted, fills_np, cfg.latency_s, t_end, float(horizon))
    if tick_ladders is not None:
        summary["edge_terms"] = edge_terms(tick_ladders, float(qc.tick_size), float(qc.fee_bps),
                                           np.asarray(quoter.state.cfg.fills.capture_shortfall_bps))
    summary["fill_model"] = {"queue_model": mode, "tick_size": float(qc.tick_size),
                             "ladder": "tick" if quoter.state.cfg.fills is not None else "depth",
                             "fills_at_price": int(np.sum(fills_np["at_price"] > 0)),
                             "fills_through": int(np.sum(fills_np["at_price"] == 0)),
                             **({"book_levels": queue_stats} if book is not None else {}),
                             **({"l3": {**queue_stats, **l3.stats}} if l3 is not None else {})}
    return res._replace(summary=summary, seconds=time.perf_counter() - t_wall)


def _why_empty(qt, quoter: Quoter, qc: QuoterConfig) -> str:
    """Why a valid ladder holds no order, in words (the reasons are few and stable so
    that the replay can count refreshes by reason): no level with a positive Kelly
    edge (with the spread capture c, the adverse move and the fee that make it so), a
    margin or position limit on every side that has one, else sizes rounded away."""
    edge = np.asarray(qt.edge_bps)
    if quoter.state.cfg.fills is not None:
        return _why_empty_fills(qt, qc)
    if not np.any(edge > 0):
        c = float(quoter.state.cfg.spread_capture)
        adverse = float(quoter.state.prior.adverse_move_bps)
        if c <= 0:
            return (f"no positive Kelly edge at any level: spread capture {c:+.2f} (an uninformed fill "
                    f"earns c x depth - fee <= 0 at every depth; fee {qc.fee_bps:g} bps)")
        return (f"no positive Kelly edge at any level: spread capture {c:.2f}, adverse move {adverse:.3g} bps, "
                f"fee {qc.fee_bps:g} bps (the informed share alpha is too high at every quoted depth)")
    return _limit_reason(qt, edge) or (f"every level with a positive edge sized below the minimum notional "
                                       f"({qc.min_notional:g}) or the size increment")


def _limit_reason(qt, edge: np.ndarray) -> str | None:
    """The margin or position limit that emptied the sides with a positive edge, if any."""
    binding = np.asarray(qt.binding)[np.any(edge > 0, axis=1)]
    if np.any(binding == 1):
        return "margin limit: no free margin for the levels with a positive edge"
    if np.any(binding == 2) or bool(qt.reduce_only):
        return "position limit: no room on the side with a positive edge"
    return None


def _why_empty_fills(qt, qc: QuoterConfig) -> str:
    """:func:`_why_empty` for the tick ladder: the term that made every edge ≤ 0
    (:func:`mm_runtime.tick_ladder.why_empty_fills`), else the limits, else the fill
    probability that sized every positive edge away."""
    term = why_empty_fills(qt.fill_prob, qt.depth_bps, qt.edge_bps, qc.fee_bps)
    if term is not None:
        return f"no positive Kelly edge at any level: {term} ({EMPTY_TERMS[term].format(fee=qc.fee_bps)})"
    return _limit_reason(qt, np.asarray(qt.edge_bps)) or (
        f"fill probability: every level with a positive edge sized below the minimum notional "
        f"({qc.min_notional:g}) or the size increment (size ~ P(fill) x f*)")
