"""Canonical market tables, their validation, and the `Market` container.

Every loader (LOBSTER, Binance, Hyperliquid, synthetic) produces the same three
tables (DESIGN.md section 3); everything downstream reads only these.

Units and conventions (DESIGN.md section 2):

* ``ts``: int64 nanoseconds since the Unix epoch, UTC, exchange time when the
  source has it (LOBSTER has only the session clock: ``ts`` is then the trading
  date's midnight, New York time, converted to UTC, plus the message time).
* prices in quote currency (float64), sizes in base units (float64, > 0).
* ``side`` on trades: +1 buyer-initiated (the aggressor bought), -1 seller-initiated.

Tables
------
``trades``  ts, price, size, side, trade_id (int64; -1 when the source has none)
``quotes``  ts, bid, ask, bid_size, ask_size (best bid/offer after each change)
``books``   ts, side (+1 bid / -1 ask), level (0 = best), price, size  (optional)
``open_interest``  ts, oi (open interest in base units, >= 0; optional: a perpetual
            venue's open-interest snapshots; the historical calibrator's liquidation-
            cascade threshold needs it, nothing else reads it)
``messages`` ts, type, order_id, size, price, direction  (optional: order-level messages,
            LOBSTER's message file with ``with_messages=True``; the exact FIFO queue
            orders of ``models.data.queue`` read it; type as in LOBSTER: 1 add,
            2 partial cancel, 3 delete, 4 visible / 5 hidden execution, 6 cross, 7 halt;
            direction of the *resting* order, +1 buy limit / -1 sell limit)

Rows of one taker sweep share ``ts`` and ``side`` and keep the source's order
(stable sort): they are one *arrival* for the observation rules.

Validation is strict and names the file, the 1-based line (text files, header
counted) or row (parquet, in-memory tables) where the loader knows it, the column,
and the problem. A loader validates
before returning, so a caller never sees a half-valid table.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TRADE_COLUMNS: dict[str, str] = {
    "ts": "int64",
    "price": "float64",
    "size": "float64",
    "side": "int8",
    "trade_id": "int64",
}
QUOTE_COLUMNS: dict[str, str] = {
    "ts": "int64",
    "bid": "float64",
    "ask": "float64",
    "bid_size": "float64",
    "ask_size": "float64",
}
BOOK_COLUMNS: dict[str, str] = {
    "ts": "int64",
    "side": "int8",
    "level": "int16",
    "price": "float64",
    "size": "float64",
}
OPEN_INTEREST_COLUMNS: dict[str, str] = {
    "ts": "int64",
    "oi": "float64",
}
MESSAGE_COLUMNS: dict[str, str] = {
    "ts": "int64",
    "type": "int8",
    "order_id": "int64",
    "size": "float64",
    "price": "float64",
    "direction": "int8",
}
MESSAGE_TYPES = (1, 2, 3, 4, 5, 6, 7)

SOURCES = ("lobster", "binance", "hyperliquid", "synthetic")


class DataError(ValueError):
    """Bad input data. The message names the file, where in it, and what is wrong.

    ``where`` is where in the file, as an editor shows it: ``line 17`` (the 1-based
    line of a text file, header counted), ``row 17`` (the 1-based row of a parquet
    file or an in-memory table), with the column or field (``line 17, column
    'price'``), or a column alone, or empty when the whole file is at fault.
    ``path`` None (an in-memory table) prints no file.
    """

    def __init__(self, path: str | Path | None, where: str, problem: str):
        self.path = str(path) if path is not None else None  # None: an in-memory table
        self.where = where
        self.problem = problem
        loc = "".join(f"{x}: " for x in (self.path, where) if x)
        super().__init__(loc + problem)


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _row_label(df: pd.DataFrame, i: int) -> str:
    """Where row ``i`` of ``df`` came from, for error messages: the loader's
    ``line N`` / ``row N`` (``df.attrs``, set by ``models.data.io.with_rows``,
    aligned with df; ``of NAME`` where the table combines files), else the 1-based
    position ``row N``."""
    src = df.attrs.get("source_rows")
    if src is not None and len(src) == len(df):
        label = f"{df.attrs.get('source_unit', 'line')} {int(src[i])}"
        names = df.attrs.get("source_names")
        if names is not None and len(names) == len(df):
            label += f" of {names[i]}"
        return label
    return f"row {i + 1}"


def _check_columns(df: pd.DataFrame, spec: dict[str, str], path, table: str,
                   optional: tuple[str, ...] = ()) -> None:
    missing = [c for c in spec if c not in df.columns and c not in optional]
    if missing:
        raise DataError(path, f"{table} table",
                        f"missing column(s) {', '.join(repr(c) for c in missing)}; "
                        f"expected {list(spec)}")


def _coerce_numeric(df: pd.DataFrame, cols, path, table: str) -> pd.DataFrame:
    out = {}
    for c in cols:
        s = df[c]
        if not pd.api.types.is_numeric_dtype(s):
            num = pd.to_numeric(s, errors="coerce")
            bad = num.isna().to_numpy() & s.notna().to_numpy()
            if bad.any():
                i = _first_bad(bad)
                raise DataError(path, f"{_row_label(df, i)}, column {c!r}",
                                f"cannot parse {s.iloc[i]!r} as a number ({table})")
            s = num
        out[c] = s
    return df.assign(**out)


def _check_finite_positive(df, cols, path, table, positive=True) -> None:
    for c in cols:
        v = df[c].to_numpy(dtype="float64")
        bad = ~np.isfinite(v)
        if bad.any():
            i = _first_bad(bad)
            raise DataError(path, f"{_row_label(df, i)}, column {c!r}",
                            f"non-finite value {float(v[i])} in {table}")
        if positive:
            bad = v <= 0
            if bad.any():
                i = _first_bad(bad)
                raise DataError(path, f"{_row_label(df, i)}, column {c!r}",
                                f"{c} must be > 0, got {float(v[i])!r} in {table}")


def _check_sorted(df, path, table) -> None:
    ts = df["ts"].to_numpy()
    bad = np.diff(ts) < 0
    if bad.any():
        i = _first_bad(bad) + 1
        raise DataError(path, f"{_row_label(df, i)}, column 'ts'",
                        f"timestamps out of order in {table}: {int(ts[i])} after {int(ts[i - 1])}")


def _finish(df: pd.DataFrame, spec: dict[str, str]) -> pd.DataFrame:
    out = pd.DataFrame({c: df[c].to_numpy().astype(t) for c, t in spec.items()})
    return out


def validate_trades(df: pd.DataFrame, path=None) -> pd.DataFrame:
    """Check and normalise a trades table; returns a new frame in canonical dtypes."""
    if len(df) == 0:
        raise DataError(path, "", "no trades (empty file or nothing parseable)")
    _check_columns(df, TRADE_COLUMNS, path, "trades", optional=("trade_id",))
    if "trade_id" not in df.columns:
        df = df.assign(trade_id=-1)
    df = _coerce_numeric(df, ["ts", "price", "size", "side", "trade_id"], path, "trades")
    _check_finite_positive(df, ["price", "size"], path, "trades")
    side = df["side"].to_numpy()
    bad = ~np.isin(side, (1, -1))
    if bad.any():
        i = _first_bad(bad)
        raise DataError(path, f"{_row_label(df, i)}, column 'side'",
                        f"side must be +1 or -1, got {side[i].item()!r}")
    _check_sorted(df, path, "trades")
    return _finish(df, TRADE_COLUMNS)


def validate_quotes(df: pd.DataFrame, path=None) -> pd.DataFrame:
    """Check and normalise a best-bid/offer table (bid < ask strictly)."""
    if len(df) == 0:
        raise DataError(path, "", "no quotes (empty file or nothing parseable)")
    _check_columns(df, QUOTE_COLUMNS, path, "quotes")
    df = _coerce_numeric(df, list(QUOTE_COLUMNS), path, "quotes")
    _check_finite_positive(df, ["bid", "ask", "bid_size", "ask_size"], path, "quotes")
    bid, ask = df["bid"].to_numpy(), df["ask"].to_numpy()
    bad = bid >= ask
    if bad.any():
        i = _first_bad(bad)
        raise DataError(path, f"{_row_label(df, i)}, columns 'bid'/'ask'",
                        f"crossed or locked quote: bid {float(bid[i])!r} >= ask {float(ask[i])!r}")
    _check_sorted(df, path, "quotes")
    return _finish(df, QUOTE_COLUMNS)


def validate_books(df: pd.DataFrame, path=None) -> pd.DataFrame:
    """Check and normalise L2 snapshots (long format, one row per level and side)."""
    if len(df) == 0:
        raise DataError(path, "", "no book snapshots")
    _check_columns(df, BOOK_COLUMNS, path, "books")
    df = _coerce_numeric(df, list(BOOK_COLUMNS), path, "books")
    _check_finite_positive(df, ["price", "size"], path, "books")
    _check_sorted(df, path, "books")
    return _finish(df, BOOK_COLUMNS)


def validate_messages(df: pd.DataFrame, path=None) -> pd.DataFrame:
    """Check and normalise order-level messages (ts sorted, type in 1..7, direction
    +1/-1, size >= 0 and price finite; a halt's price is its code, -1/0/1)."""
    if len(df) == 0:
        raise DataError(path, "", "no order messages")
    _check_columns(df, MESSAGE_COLUMNS, path, "messages")
    df = _coerce_numeric(df, list(MESSAGE_COLUMNS), path, "messages")
    _check_finite_positive(df, ["size", "price"], path, "messages", positive=False)
    for col, ok in (("type", MESSAGE_TYPES), ("direction", (1, -1))):
        v = df[col].to_numpy()
        bad = ~np.isin(v, ok)
        if bad.any():
            i = _first_bad(bad)
            raise DataError(path, f"{_row_label(df, i)}, column {col!r}",
                            f"{col} must be one of {list(ok)}, got {v[i].item()!r}")
    sz = df["size"].to_numpy(dtype="float64")
    bad = sz < 0
    if bad.any():
        i = _first_bad(bad)
        raise DataError(path, f"{_row_label(df, i)}, column 'size'", f"size must be >= 0, got {sz[i]!r}")
    _check_sorted(df, path, "messages")
    return _finish(df, MESSAGE_COLUMNS)


def validate_open_interest(df: pd.DataFrame, path=None) -> pd.DataFrame:
    """Check and normalise open-interest snapshots (ts sorted, oi finite and >= 0)."""
    if len(df) == 0:
        raise DataError(path, "", "no open-interest snapshots")
    _check_columns(df, OPEN_INTEREST_COLUMNS, path, "open_interest")
    df = _coerce_numeric(df, list(OPEN_INTEREST_COLUMNS), path, "open_interest")
    _check_finite_positive(df, ["oi"], path, "open_interest", positive=False)
    oi = df["oi"].to_numpy(dtype="float64")
    bad = oi < 0
    if bad.any():
        i = _first_bad(bad)
        raise DataError(path, f"{_row_label(df, i)}, column 'oi'",
                        f"open interest must be >= 0, got {float(oi[i])!r}")
    _check_sorted(df, path, "open_interest")
    return _finish(df, OPEN_INTEREST_COLUMNS)


@dataclass
class Market:
    """One asset's canonical tables from one source, plus where they came from.

    ``truth`` is the synthetic market's ground truth (``truth.json``), None for
    real data. ``meta`` holds loader facts worth reporting (e.g. dropped rows and why).
    ``open_interest`` is the optional open-interest table (None when the source has
    none; it is not part of ``start_ns``/``end_ns``, which the trades and quotes define).
    ``messages`` is the optional order-level message table (LOBSTER with
    ``with_messages=True``; None otherwise), likewise outside ``start_ns``/``end_ns``.
    """

    asset: str
    source: str
    trades: pd.DataFrame
    quotes: pd.DataFrame
    books: pd.DataFrame | None = None
    files: tuple[str, ...] = ()
    truth: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    open_interest: pd.DataFrame | None = None
    messages: pd.DataFrame | None = None

    @property
    def start_ns(self) -> int:
        return int(min(self.trades["ts"].iloc[0], self.quotes["ts"].iloc[0]))

    @property
    def end_ns(self) -> int:
        return int(max(self.trades["ts"].iloc[-1], self.quotes["ts"].iloc[-1]))

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def sha256(self) -> str:
        """Hash of the canonical tables' contents (not of the raw files): the data
        identity used in cache keys and in the prior bundle's ``source``. A market
        without open interest or messages hashes as before those tables existed."""
        h = hashlib.sha256()
        for name, df in (("trades", self.trades), ("quotes", self.quotes), ("books", self.books),
                         ("open_interest", self.open_interest), ("messages", self.messages)):
            if df is None:
                continue
            h.update(name.encode())
            for c in df.columns:
                h.update(c.encode())
                h.update(np.ascontiguousarray(df[c].to_numpy()).tobytes())
        return h.hexdigest()

    def row_counts(self) -> dict[str, int]:
        out = {"trades": len(self.trades), "quotes": len(self.quotes),
               "books": 0 if self.books is None else len(self.books)}
        if self.open_interest is not None:
            out["open_interest"] = len(self.open_interest)
        if self.messages is not None:
            out["messages"] = len(self.messages)
        return out


# --------------------------------------------------------------------------- time windows
@dataclass(frozen=True)
class WindowSpec:
    """A time window of a market, written ``START:END`` (the ``--window`` option).

    Each end is a *fraction* of the market's span (a number in [0, 1]: ``0.8``) or
    *seconds* from the market's start (a number with the suffix ``s``: ``600s``);
    an empty end is open (``:0.8`` = from the start to 80 %, ``0.8:`` = from 80 %
    to the end, ``:`` or ``""`` = everything). The window is half-open,
    ``[start, end)``, in the market's own clock (``Market.start_ns`` plus the offset).
    ``0:0.8`` for the fit and ``0.8:1`` for held-out data never share a row.
    """

    start: float | None = None
    start_unit: str = "fraction"
    end: float | None = None
    end_unit: str = "fraction"

    @classmethod
    def parse(cls, text: str | None) -> WindowSpec:
        """``"0:0.8"``, ``"600s:3000s"``, ``"0.8:"``; ValueError naming the problem."""
        if text is None or str(text).strip() in ("", ":"):
            return cls()
        s = str(text).strip()
        if s.count(":") != 1:
            raise ValueError(f"window {text!r}: expected START:END (fractions like 0:0.8 or "
                             "seconds like 600s:3000s; an empty end is open)")
        ends = []
        for part in s.split(":"):
            part = part.strip()
            if not part:
                ends.append((None, "fraction"))
                continue
            unit = "seconds" if part.endswith("s") else "fraction"
            try:
                v = float(part[:-1] if unit == "seconds" else part)
            except ValueError:
                raise ValueError(f"window {text!r}: {part!r} is not a number (fraction) or "
                                 "a number of seconds with the suffix s") from None
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"window {text!r}: {part!r} must be a finite number >= 0")
            if unit == "fraction" and v > 1:
                raise ValueError(f"window {text!r}: fraction {part!r} is above 1 "
                                 f"(seconds are written with the suffix s: {part}s)")
            ends.append((v, unit))
        (a, au), (b, bu) = ends
        if a is not None and b is not None and au == bu and b <= a:
            raise ValueError(f"window {text!r}: the end must come after the start")
        return cls(a, au, b, bu)

    @property
    def is_full(self) -> bool:
        return self.start is None and self.end is None

    def __str__(self) -> str:
        def one(v, u):
            return "" if v is None else (f"{v:g}s" if u == "seconds" else f"{v:g}")

        return f"{one(self.start, self.start_unit)}:{one(self.end, self.end_unit)}"

    def bounds_ns(self, market: Market) -> tuple[int, int]:
        """``[start_ns, end_ns)`` of this window on ``market`` (end exclusive; an open end
        is one past the market's last row)."""
        t0, t1 = market.start_ns, market.end_ns
        span = t1 - t0

        def at(v, unit, default):
            if v is None:
                return default
            off = v * span if unit == "fraction" else v * 1e9
            return t0 + int(round(off))

        return at(self.start, self.start_unit, t0), at(self.end, self.end_unit, t1 + 1)

    def cut(self, market: Market, flag: str = "window") -> Market:
        """The rows of ``market`` in this window (:func:`window_market`); a window that
        holds no trade or quote is a DataError in one line naming ``flag`` (the option,
        e.g. ``--window``) and this window, in seconds from the data's start."""
        return window_market(market, *self.bounds_ns(market), label=f"{flag} {str(self)!r}")


def _secs(x: float) -> str:
    """Seconds for messages: ``299.7 s``, ``300 s`` (ms precision, no trailing zeros)."""
    return (f"{x:,.3f}".rstrip("0").rstrip(".") or "0") + " s"


def window_market(market: Market, start_ns: int | None = None, end_ns: int | None = None, *,
                  label: str | None = None) -> Market:
    """The rows of ``market`` with ``start_ns <= ts < end_ns`` (None = open), as a new
    validated ``Market`` (same asset, source, files and truth; ``meta['window']``
    records the bounds). DataError when the window holds no trade or no quote: one
    line, ``label`` (what the user gave, e.g. ``--window '0.999:1'``; default: the
    window in seconds from the data's start), the problem, and the data's span."""
    lo = market.start_ns if start_ns is None else int(start_ns)
    hi = market.end_ns + 1 if end_ns is None else int(end_ns)

    def cut(df):
        if df is None:
            return None
        ts = df["ts"].to_numpy()
        i, j = np.searchsorted(ts, lo, side="left"), np.searchsorted(ts, hi, side="left")
        return df.iloc[i:j].reset_index(drop=True)

    trades, quotes, books = cut(market.trades), cut(market.quotes), cut(market.books)
    oi = cut(market.open_interest)
    msgs = cut(market.messages)
    if len(trades) == 0 or len(quotes) == 0:
        t0 = market.start_ns
        a = _secs((lo - t0) / 1e9)
        b = "the end" if hi > market.end_ns else _secs((hi - t0) / 1e9)
        data = f"the data ({market.asset}, {market.source}) span {_secs(market.duration_s)}"
        if lo > market.end_ns:
            problem = f"starts at {a} from the data's start, after its end ({data})"
        elif hi <= lo:
            problem = f"ends at {b}, before it starts at {a} from the data's start ({data})"
        elif hi <= t0:
            problem = f"ends before the data start ({data})"
        else:
            problem = (f"no {'trades' if len(trades) == 0 else 'quotes'} between {a} and {b} "
                       f"from the data's start ({data})")
        raise DataError(label or f"window {a} to {b}", "", problem)
    if books is not None and len(books) == 0:
        books = None
    if oi is not None and len(oi) == 0:
        oi = None
    if msgs is not None and len(msgs) == 0:
        msgs = None
    meta = {**market.meta, "window": {"start_ns": lo, "end_ns": hi,
                                      "parent_start_ns": market.start_ns, "parent_end_ns": market.end_ns}}
    return Market(asset=market.asset, source=market.source, trades=trades, quotes=quotes, books=books,
                  files=market.files, truth=market.truth, meta=meta, open_interest=oi,
                  messages=msgs)
