"""LOBSTER loader (Nasdaq message + orderbook files) -> canonical tables.

Input (``load_lobster(path, asset=None, *, with_books=False, hidden=False, date=None,
with_messages=False)``):
a LOBSTER zip, a message or orderbook csv (its partner beside it), or a directory of
them (``asset`` picks one: ``"AAPL"``, ``"AMZN_5"``).  Clock: ``ts`` (int64 ns, UTC) =
the trading date's midnight in America/New_York + the message time (seconds after
midnight, parsed as a decimal string, exact to the ns).  Units: prices USD x 10,000
in the files -> USD; sizes in shares.  trades = visible executions (type 4; type 5
hidden ones with ``hidden=True``), aggressor ``side = -direction``; quotes = level 1
of the orderbook file, one per ts; books (``with_books=True``) in long format; halts
in ``meta['halts']``; the order-level messages (``with_messages=True``) as the
``messages`` table, every row of the message file, after checking them against the
orderbook file (a cancellation or execution larger than the size the book showed at its
price just before is a DataError naming both lines).  Source: the LOBSTER file format (lobsterdata.com).

Format notes, side and timing rules, and what was measured on the samples:
docs/data/loaders.md ("LOBSTER").
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from models.data.io import (check_format, collapse_quotes, csv_line_numbers, read_bytes, require_path,
                            to_int, with_rows)
from models.data.tables import (DataError, Market, validate_books, validate_messages, validate_quotes,
                                validate_trades)

EMPTY = 9_999_999_999
PRICE_SCALE = 10_000.0
_NAME = re.compile(r"(?P<ticker>[A-Za-z0-9.\-]+)_(?P<date>\d{4}-\d{2}-\d{2})_\d+_\d+_"
                   r"(?P<kind>message|orderbook)_(?P<level>\d+)\.csv$")
_TIME = re.compile(r"^\d+(\.\d*)?$")


# --------------------------------------------------------------------------- locating files

class _Pair:
    """A message/orderbook pair, either inside a zip or as two files."""

    def __init__(self, label: str, ticker: str, date: str | None, level: int | None,
                 message: str, orderbook: str, zip_path: Path | None = None,
                 dir_path: Path | None = None):
        self.label, self.ticker, self.date, self.level = label, ticker, date, level
        self.message, self.orderbook = message, orderbook
        self.zip_path, self.dir_path = zip_path, dir_path

    def display(self, member: str) -> str:
        if self.zip_path is not None:
            return f"{self.zip_path}!{member}"
        return str(Path(member))

    def read(self, member: str) -> bytes:
        if self.zip_path is not None:
            try:
                with zipfile.ZipFile(self.zip_path) as z:
                    raw = z.read(member)
            except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
                raise DataError(self.zip_path, member, f"cannot read zip member ({e})") from e
            if not raw.strip():
                raise DataError(self.display(member), "", "empty file")
            return raw
        return read_bytes(member)

    @property
    def files(self) -> tuple[str, ...]:
        if self.zip_path is not None:
            return (str(self.zip_path),)
        return (str(self.message), str(self.orderbook))


def _pair_from_names(names: list[str], where: Path, zip_path: Path | None) -> list[_Pair]:
    msgs = [n for n in names if "message" in Path(n).name and n.endswith(".csv")]
    out = []
    for m in msgs:
        head, sep, base = m.rpartition("/")
        ob = head + sep + base.replace("message", "orderbook")
        if ob not in names:
            raise DataError(where, "", f"message file {Path(m).name} has no orderbook file "
                            f"{Path(ob).name} beside it")
        mt = _NAME.search(Path(m).name)
        ticker = mt["ticker"] if mt else Path(m).name.split("_")[0]
        level = int(mt["level"]) if mt else None
        date = mt["date"] if mt else None
        out.append(_Pair(f"{ticker}_{level}" if level is not None else ticker, ticker, date, level,
                         m, ob, zip_path=zip_path))
    return out


def _find_pairs(p: Path) -> list[_Pair]:
    if p.is_dir():
        pairs: list[_Pair] = []
        for c in sorted(p.iterdir()):
            if c.suffix == ".zip":
                pairs += _find_pairs(c)
        csvs = sorted(str(c) for c in p.iterdir() if c.suffix == ".csv")
        pairs += _pair_from_names(csvs, p, None)
        if not pairs:
            raise DataError(p, "", "no LOBSTER zip or message/orderbook csv pair in this directory")
        return pairs
    with open(p, "rb") as fh:
        magic = fh.read(4)
    if p.suffix == ".zip" or magic == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(p) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise DataError(p, "", f"not a readable zip file ({e})") from e
        pairs = _pair_from_names(names, p, p)
        if not pairs:
            raise DataError(p, "", "zip holds no LOBSTER *_message_*.csv file")
        return pairs
    name = p.name
    if "orderbook" in name and "message" not in name:
        msg = p.with_name(name.replace("orderbook", "message"))
        if not msg.exists():
            raise DataError(p, "", f"orderbook file without its message file {msg.name} beside it")
        p = msg
    if "message" not in p.name:
        raise DataError(p, "", "expected a LOBSTER zip, a *_message_*.csv (with its orderbook "
                        "csv beside it) or a directory of them")
    ob = p.with_name(p.name.replace("message", "orderbook"))
    if not ob.exists():
        raise DataError(p, "", f"message file without its orderbook file {ob.name} beside it")
    return _pair_from_names([str(p), str(ob)], p.parent, None)


def _pick(pairs: list[_Pair], asset: str | None, path: Path) -> _Pair:
    if asset is None:
        if len(pairs) == 1:
            return pairs[0]
        raise DataError(path, "", "several LOBSTER files here; pass asset= one of "
                        f"{sorted(p.label for p in pairs)}")
    a = asset.upper()
    hit = [p for p in pairs if p.label.upper() == a] or [p for p in pairs if p.ticker.upper() == a]
    if len(hit) == 1:
        return hit[0]
    if not hit:
        raise DataError(path, "", f"no LOBSTER file for asset {asset!r}; found "
                        f"{sorted(p.label for p in pairs)}")
    raise DataError(path, "", f"asset {asset!r} is ambiguous here; pass one of "
                    f"{sorted(p.label for p in hit)}")


# --------------------------------------------------------------------------- parsing

def parse_time_ns(times: pd.Series, path, lines: np.ndarray | None = None) -> np.ndarray:
    """Seconds-after-midnight decimal strings -> int64 ns, exactly (no float).
    More than 9 decimals are rounded to the nearest ns. ``lines``: each value's
    1-based line in ``path`` (default: value i is on line i + 1, no header)."""
    s = times.astype("string").str.strip()
    ok = s.str.fullmatch(_TIME.pattern).fillna(False).to_numpy(dtype=bool)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise DataError(path, f"line {i + 1 if lines is None else int(lines[i])}, column 'time'",
                        f"cannot parse {times.iloc[i]!r} as seconds after midnight")
    parts = s.str.partition(".")
    sec = parts[0].astype("int64").to_numpy()
    frac = parts[2]
    ns = frac.str.ljust(9, "0").str.slice(0, 9).astype("int64").to_numpy()
    round_up = (frac.str.slice(9, 10).fillna("") >= "5").to_numpy(dtype=bool)
    return sec * 1_000_000_000 + ns + round_up.astype("int64")


def midnight_utc_ns(date: str) -> int:
    """The date's midnight in America/New_York, as UTC epoch ns."""
    return int(pd.Timestamp(date, tz="America/New_York").tz_convert("UTC").value)


_MSG_COLUMNS = ("time", "type", "order_id", "size", "price", "direction")
_OB_FIELDS = ("ask_price", "ask_size", "bid_price", "bid_size")


def _read_message(raw: bytes, path: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(io.BytesIO(raw), header=None, dtype={0: "string"}, skip_blank_lines=True)
    except pd.errors.EmptyDataError as e:
        raise DataError(path, "", "empty message file") from e
    except (pd.errors.ParserError, ValueError) as e:
        raise DataError(path, "", f"cannot parse message csv: {e}") from e
    if df.shape[1] != 6:
        raise DataError(path, "", f"message file must have 6 columns (time, type, order id, size, "
                        f"price, direction), found {df.shape[1]}")
    if len(df) == 0:
        raise DataError(path, "", "empty message file")
    df.columns = list(_MSG_COLUMNS)
    return df


def _ob_column(j: int) -> str:
    """The orderbook file's column ``j`` (0-based) by name: ``'bid_size_2'`` (level 1 = best)."""
    return f"{_OB_FIELDS[j % 4]}_{j // 4 + 1}"


def _read_orderbook(raw: bytes, path: str, n_msg: int) -> tuple[np.ndarray, np.ndarray]:
    """-> (the orderbook's values, each row's 1-based line in the file)."""
    try:
        df = pd.read_csv(io.BytesIO(raw), header=None)
    except pd.errors.EmptyDataError as e:
        raise DataError(path, "", "empty orderbook file") from e
    except (pd.errors.ParserError, ValueError) as e:
        raise DataError(path, "", f"cannot parse orderbook csv: {e}") from e
    if df.shape[1] % 4 != 0:
        raise DataError(path, "", f"orderbook file must have 4 columns per level "
                        f"(ask price, ask size, bid price, bid size), found {df.shape[1]}")
    if len(df) != n_msg:
        raise DataError(path, f"line {min(len(df), n_msg) + 1}", f"orderbook has {len(df)} rows but the "
                        f"message file has {n_msg}: row i must be the book after message i")
    lines = csv_line_numbers(raw, len(df), header=False)
    for c in df.columns:
        if not pd.api.types.is_numeric_dtype(df[c]):
            to_int(df[c], path, lambda i: f"line {lines[i]}", _ob_column(int(c)), "orderbook")
    v = df.to_numpy(dtype="float64")
    bad = ~np.isfinite(v)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(path, f"line {lines[i]}, column {_ob_column(int(j))!r}", "non-finite value in orderbook")
    return v, lines


# --------------------------------------------------------------------------- loader

def load_lobster(path, asset: str | None = None, *, with_books: bool = False,
                 hidden: bool = False, date: str | None = None, with_messages: bool = False) -> Market:
    """Load one LOBSTER message/orderbook pair (see the module docstring for the rules)."""
    p = require_path(path)
    check_format(p, "lobster")
    pair = _pick(_find_pairs(p), asset, p)
    mpath, opath = pair.display(pair.message), pair.display(pair.orderbook)
    date = date or pair.date
    if date is None:
        raise DataError(mpath, "", "cannot tell the trading date from the file name "
                        "(TICKER_YYYY-MM-DD_...); pass date='YYYY-MM-DD'")

    raw = pair.read(pair.message)
    msg = _read_message(raw, mpath)
    n = len(msg)
    line = csv_line_numbers(raw, n, header=False)  # message i is on line line[i]
    rows = lambda i: f"line {line[i]}"  # noqa: E731
    t_ns = parse_time_ns(msg["time"], mpath, line) + midnight_utc_ns(date)
    typ = to_int(msg["type"], mpath, rows, "type", "message type")
    size = to_int(msg["size"], mpath, rows, "size", "message size")
    price = to_int(msg["price"], mpath, rows, "price", "message price")
    direction = to_int(msg["direction"], mpath, rows, "direction", "message direction")
    unknown = ~np.isin(typ, (1, 2, 3, 4, 5, 6, 7))
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise DataError(mpath, f"{rows(i)}, column 'type'", f"unknown message type {typ[i]}")
    back = np.diff(t_ns) < 0
    if back.any():
        i = int(np.flatnonzero(back)[0]) + 1
        raise DataError(mpath, f"{rows(i)}, column 'time'",
                        f"timestamps out of order: {msg['time'].iloc[i]} after {msg['time'].iloc[i - 1]}")

    ob, ob_line = _read_orderbook(pair.read(pair.orderbook), opath, n)
    levels = ob.shape[1] // 4

    # ---- trades
    is_exec = (typ == 4) | ((typ == 5) if hidden else False)
    idx = np.flatnonzero(is_exec)
    d = direction[idx]
    bad = ~np.isin(d, (1, -1))
    if bad.any():
        raise DataError(mpath, f"{rows(idx[np.flatnonzero(bad)[0]])}, column 'direction'",
                        f"execution direction must be +1 or -1, got {d[np.flatnonzero(bad)[0]]}")
    trades = with_rows(pd.DataFrame({
        "ts": t_ns[idx], "price": price[idx] / PRICE_SCALE, "size": size[idx].astype("float64"),
        "side": -d, "trade_id": idx.astype("int64"),
    }), line[idx])
    trades = validate_trades(trades, mpath)

    # ---- quotes (level 1 after each message)
    ask, ask_sz, bid, bid_sz = ob[:, 0], ob[:, 1], ob[:, 2], ob[:, 3]
    empty = (ask >= EMPTY) | (bid <= -EMPTY)
    q = pd.DataFrame({"ts": t_ns, "bid": bid / PRICE_SCALE, "ask": ask / PRICE_SCALE,
                      "bid_size": bid_sz, "ask_size": ask_sz})
    # one state per ts (the last), computed before dropping one-sided states so a
    # ts whose final state is one-sided yields no quote rather than a stale one
    last = np.ones(n, dtype=bool)
    last[:-1] = t_ns[1:] != t_ns[:-1]
    keep = last & ~empty
    q = with_rows(q[keep].reset_index(drop=True), ob_line[keep])
    q, _, n_same = collapse_quotes(q)
    quotes = validate_quotes(q, opath)

    # ---- books
    books = None
    if with_books:
        books = _books(ob, t_ns, levels, last, opath, ob_line)

    messages = None
    if with_messages:
        _check_against_book(typ, size, price, direction, ob, levels, mpath, opath, line, ob_line)
        messages = validate_messages(with_rows(pd.DataFrame({
            "ts": t_ns, "type": typ, "order_id": _msg_ids(msg, mpath, rows), "size": size.astype("float64"),
            "price": np.where(typ == 7, price, price / PRICE_SCALE), "direction": direction,
        }), line), mpath)

    halts = [{"ts": int(t_ns[i]), "line": int(line[i]),
              "event": {-1: "halt", 0: "quoting", 1: "resume"}.get(int(price[i]), f"price {price[i]}")}
             for i in np.flatnonzero(typ == 7)]
    meta = {
        "date": date, "levels": levels, "messages": n,
        "visible_executions": int((typ == 4).sum()),
        "hidden_executions": int((typ == 5).sum()),
        "hidden_included": hidden,
        "cross_trades": int((typ == 6).sum()),
        "halts": halts,
        "clock": "session clock: trading-date midnight America/New_York (UTC) + message seconds",
        "dropped": {
            "quotes_one_side_empty": int((last & empty).sum()),
            "quotes_same_ts_intermediate": int((~last).sum()),
            "quotes_unchanged": int(n_same),
        },
    }
    return Market(asset=pair.ticker, source="lobster", trades=trades, quotes=quotes, books=books,
                  files=pair.files, meta=meta, messages=messages)


def _msg_ids(msg: pd.DataFrame, path, rows) -> np.ndarray:
    return to_int(msg["order_id"], path, rows, "order_id", "order id")


def _check_against_book(typ, size, price, direction, ob, levels, mpath, opath, line, ob_line) -> None:
    """Each cancellation or visible execution (types 2, 3, 4) at a price the orderbook
    file covers must find at least its size there in the book row before it (row i-1 is
    the book before message i); otherwise the level's size would go negative under the
    messages: the files disagree (DataError naming the message line and the book line).
    Prices outside the covered levels (deeper than the last level of a full side) are not
    checked: the file does not show them."""
    i = np.flatnonzero(np.isin(typ, (2, 3, 4)))
    i = i[i >= 1]
    if i.size == 0:
        return
    v = ob[i - 1].reshape(len(i), levels, 4)
    buy = direction[i] == 1
    px = np.where(buy[:, None], v[:, :, 2], v[:, :, 0])
    sz = np.where(buy[:, None], v[:, :, 3], v[:, :, 1])
    p = price[i].astype("float64")
    at = px == p[:, None]
    before = np.where(at, sz, 0.0).sum(axis=1)
    present = np.abs(px) < EMPTY
    full = present.all(axis=1)
    deepest = px[:, -1]
    best = px[:, 0]
    inside = np.where(buy, (p <= best) | ~present[:, 0], (p >= best) | ~present[:, 0])
    covered = inside & np.where(full, np.where(buy, p >= deepest, p <= deepest), True)
    bad = covered & (size[i] > before)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        j = int(i[k])
        what = {2: "cancellation", 3: "deletion", 4: "execution"}[int(typ[j])]
        side = "bid" if buy[k] else "ask"
        raise DataError(mpath, f"line {line[j]}", f"{what} of {int(size[j])} at {p[k] / PRICE_SCALE:g} "
                        f"({side}) but {opath} line {ob_line[j - 1]} shows {before[k]:g} there: the "
                        "level's size would go negative (the message and orderbook files disagree)")


def _books(ob: np.ndarray, t_ns: np.ndarray, levels: int, last: np.ndarray, path, lines) -> pd.DataFrame:
    rows = np.flatnonzero(last)
    snap = ob[rows]
    changed = np.ones(len(rows), dtype=bool)
    changed[1:] = (snap[1:] != snap[:-1]).any(axis=1)
    rows, snap = rows[changed], snap[changed]
    k = len(rows)
    v = snap.reshape(k, levels, 4)
    # (k, side, level): side 0 = bid (+1), 1 = ask (-1)
    px = np.stack([v[:, :, 2], v[:, :, 0]], axis=1)
    sz = np.stack([v[:, :, 3], v[:, :, 1]], axis=1)
    present = np.abs(px) < EMPTY
    side = np.broadcast_to(np.array([1, -1], dtype="int8")[None, :, None], px.shape)
    lvl = np.broadcast_to(np.arange(levels, dtype="int16")[None, None, :], px.shape)
    ts = np.broadcast_to(t_ns[rows][:, None, None], px.shape)
    src = np.broadcast_to(rows[:, None, None], px.shape)
    m = present.ravel()
    df = pd.DataFrame({"ts": ts.ravel()[m], "side": side.ravel()[m], "level": lvl.ravel()[m],
                       "price": px.ravel()[m] / PRICE_SCALE, "size": sz.ravel()[m]})
    return validate_books(with_rows(df, np.asarray(lines)[src.ravel()[m]]), path)
