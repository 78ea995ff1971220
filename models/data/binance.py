"""Binance raw websocket capture loader -> canonical tables.

Input (``load_binance(path, asset=None, *, with_books=False, book_levels=20)``): a
capture file (gzip or text, lines ``<local_receive_ns> <raw JSON>``), a list of them
or a directory (day files of one capture are merged; ``asset`` picks a capture by
name or symbol).  Streams: ``<sym>@trade``, ``<sym>@bookTicker``, ``<sym>@depth*``
and the REST depth snapshot.  Clock: ``ts`` = exchange time, ms -> ns; spot
bookTicker messages carry none, so theirs is estimated from the local receive time
(:func:`exchange_time_from_local`).  Units: prices in quote currency, sizes in base
units; trade side from ``m`` (buyer is maker -> -1).  Books (``with_books=True``)
follow Binance's snapshot + diff rules.  Source: the Binance spot and USD-M futures
websocket stream documentation.

Format notes, the clock estimate and what it measured: docs/data/loaders.md ("Binance").
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left, insort
from pathlib import Path

import numpy as np
import pandas as pd

from models.data.io import (check_format, collapse_quotes, order_by_time, read_bytes,
                            require_path, to_float, with_rows)
from models.data.tables import DataError, Market, validate_books, validate_quotes, validate_trades

MS = 1_000_000
_GROUP = re.compile(r"^(?P<key>.+?)(?:_(?P<date>\d{8}))?(?:\.(?:gz|txt|jsonl|log))*$")


# --------------------------------------------------------------------------- files

def _group_key(p: Path) -> str:
    m = _GROUP.match(p.name)
    return (m["key"] if m else p.stem).lower()


def _resolve(path, asset: str | None) -> list[Path]:
    if isinstance(path, (list, tuple)):
        if not path:
            raise DataError(None, "", "empty list of capture files")
        files = [require_path(p) for p in path]
        for f in files:
            if f.is_dir():
                raise DataError(f, "", "expected capture files in the list, got a directory")
        return files
    p = require_path(path)
    if p.is_file():
        return [p]
    files = sorted(c for c in p.iterdir() if c.is_file() and not c.name.startswith(".")
                   and c.name not in ("LICENSE", "README.md", "README"))
    if not files:
        raise DataError(p, "", "no capture files in this directory")
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(_group_key(f), []).append(f)
    if asset is None:
        if len(groups) == 1:
            return next(iter(groups.values()))
        raise DataError(p, "", f"several captures here; pass asset= one of {sorted(groups)}")
    a = asset.lower()
    hit = [k for k in groups if k == a] or [k for k in groups if k.split("_", 1)[-1] == a]
    if len(hit) == 1:
        return groups[hit[0]]
    if not hit:
        raise DataError(p, "", f"no capture for asset {asset!r}; found {sorted(groups)}")
    raise DataError(p, "", f"asset {asset!r} is ambiguous here; pass one of {sorted(hit)}")


# --------------------------------------------------------------------------- parsing

class _Capture:
    """Raw fields of one capture file, per stream, with their line indices."""

    def __init__(self, path: Path):
        self.path = path
        self.trades: list[tuple] = []      # (row, local, T, t, p, q, m, X, sym)
        self.quotes: list[tuple] = []      # (row, local, T|E|-1, u, b, B, a, A, sym)
        self.depth: list[tuple] = []       # (row, local, T|E, U, u, pu|None, bids, asks, sym)
        self.snapshots: list[tuple] = []   # (row, local, lastUpdateId, bids, asks)
        self.ignored = 0
        self.n_lines = 0


def _where(i: int) -> str:
    """Line ``i`` (0-based index into the capture's lines) as an editor shows it."""
    return f"line {i + 1}"


def _parse_file(path: Path, with_books: bool) -> _Capture:
    raw = read_bytes(path)
    cap = _Capture(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(path, "", f"not UTF-8 text ({e})") from e
    lines = text.split("\n")
    if lines and not lines[-1].strip():
        lines.pop()
    cap.n_lines = len(lines)
    loads = json.JSONDecoder().decode
    for i, ln in enumerate(lines):
        sp = ln.find(" ")
        try:
            local = int(ln[:sp]) if sp > 0 else None
        except ValueError:
            local = None
        if local is None:
            raise DataError(path, _where(i), "expected '<local_receive_ns> <json>', got "
                            f"{ln[:60]!r}")
        js = ln[sp + 1:]
        if not with_books and "@depth" in js[:64]:
            continue
        try:
            d = loads(js)
        except ValueError as e:
            raise DataError(path, _where(i), f"invalid JSON ({e})") from e
        if not isinstance(d, dict):
            raise DataError(path, _where(i), "JSON message is not an object")
        try:
            if "stream" in d:
                stream = d["stream"]
                x = d["data"]
                kind = stream.split("@", 1)[1] if "@" in stream else ""
                if kind == "trade":
                    cap.trades.append((i, local, x["T"], x["t"], x["p"], x["q"], x["m"],
                                       x.get("X"), x["s"]))
                elif kind == "bookTicker":
                    te = x.get("T", x.get("E", -1))
                    cap.quotes.append((i, local, te, x["u"], x["b"], x["B"], x["a"], x["A"], x["s"]))
                elif kind.startswith("depth"):
                    cap.depth.append((i, local, x.get("T", x["E"]), x["U"], x["u"], x.get("pu"),
                                      x["b"], x["a"], x["s"]))
                else:
                    cap.ignored += 1
            elif "lastUpdateId" in d:
                cap.snapshots.append((i, local, d["lastUpdateId"], d["bids"], d["asks"]))
            else:
                cap.ignored += 1
        except KeyError as e:
            raise DataError(path, _where(i), f"message lacks field {e.args[0]!r}") from e
        except (TypeError, AttributeError) as e:
            raise DataError(path, _where(i), f"malformed message ({e})") from e
    return cap


def _ints(vals, path, rows, col) -> np.ndarray:
    try:
        return np.array(vals, dtype="int64")
    except (TypeError, ValueError, OverflowError):
        for k, v in enumerate(vals):
            if isinstance(v, bool) or not isinstance(v, int):
                raise DataError(path, f"{_where(rows[k])}, field {col!r}",
                                f"expected an integer, got {v!r}") from None
        raise


def _trades_of(cap: _Capture) -> tuple[pd.DataFrame, int]:
    """Per-file trades table (validated, in file order) + raw local/T arrays."""
    path, tr = cap.path, cap.trades
    rows = np.array([r[0] for r in tr], dtype="int64")
    where = lambda i: _where(int(rows[i]))  # noqa: E731
    local = _ints([r[1] for r in tr], path, rows, "local")
    T = _ints([r[2] for r in tr], path, rows, "T")
    tid = _ints([r[3] for r in tr], path, rows, "t")
    price = to_float([r[4] for r in tr], path, where, "p", "trade price", "field")
    size = to_float([r[5] for r in tr], path, where, "q", "trade quantity", "field")
    m = [r[6] for r in tr]
    for k, v in enumerate(m):
        if not isinstance(v, bool):
            raise DataError(path, f"{where(k)}, field 'm'", f"expected true/false, got {v!r}")
    side = np.where(np.array(m, dtype=bool), -1, 1).astype("int8")
    X = np.array([r[7] if r[7] is not None else "MARKET" for r in tr], dtype=object)
    market = X == "MARKET"
    n_not_market = int((~market).sum())
    df = pd.DataFrame({"ts": T * MS, "price": price, "size": size, "side": side, "trade_id": tid,
                       "local": local})
    with_rows(df, rows + 1)
    order_by_time(df["ts"].to_numpy(), path, "trades", where, 0)
    v = validate_trades(df, path)  # checks values with this file's line numbers
    v["local"] = local
    v["sym"] = [r[8] for r in tr]
    v = v[market].reset_index(drop=True)
    return v, n_not_market


def _quotes_of(cap: _Capture) -> pd.DataFrame:
    path, q = cap.path, cap.quotes
    rows = np.array([r[0] for r in q], dtype="int64")
    where = lambda i: _where(int(rows[i]))  # noqa: E731
    df = pd.DataFrame({
        "row": rows,
        "local": _ints([r[1] for r in q], path, rows, "local"),
        "exch": _ints([r[2] for r in q], path, rows, "T"),
        "u": _ints([r[3] for r in q], path, rows, "u"),
        "bid": to_float([r[4] for r in q], path, where, "b", "best bid price", "field"),
        "bid_size": to_float([r[5] for r in q], path, where, "B", "best bid quantity", "field"),
        "ask": to_float([r[6] for r in q], path, where, "a", "best ask price", "field"),
        "ask_size": to_float([r[7] for r in q], path, where, "A", "best ask quantity", "field"),
        "sym": [r[8] for r in q],
        "file": path.name,
    })
    has = df["exch"].to_numpy() >= 0
    if has.any():
        ts = df["exch"].to_numpy()[has] * MS
        order_by_time(ts, path, "quotes", lambda i: where(int(np.flatnonzero(has)[i])), 0)
    if (~has).any():
        loc = df["local"].to_numpy()[~has]
        back = np.diff(loc) < 0
        if back.any():
            i = int(np.flatnonzero(~has)[int(np.flatnonzero(back)[0]) + 1])
            raise DataError(path, where(i), "local receive times out of order in a bookTicker "
                            "stream without exchange time (needed for the clock fallback)")
    # value checks with this file's rows (ts placeholder: ordering checked above)
    chk = with_rows(df[["bid", "ask", "bid_size", "ask_size"]].assign(ts=0), rows + 1)
    validate_quotes(chk, path)
    return df


def touch_consistency(quote_ts: np.ndarray, bid: np.ndarray, ask: np.ndarray, trade_ts: np.ndarray,
                      trade_price: np.ndarray, trade_side: np.ndarray) -> float:
    """Fraction of trades that print at or through the touch of the last quote
    *strictly before* them (buys at >= ask, sells at <= bid). ``quote_ts`` sorted.
    Physically every aggressor trade does; on the USD-M files with the exchange
    clock this is 99.7-99.96%, so it measures how well a quote clock is aligned."""
    j = np.searchsorted(quote_ts, trade_ts, side="left") - 1
    ok = j >= 0
    if not ok.any():
        return float("nan")
    jj = j[ok]
    p, s = trade_price[ok], trade_side[ok]
    hit = np.where(s == 1, p >= ask[jj], p <= bid[jj])
    return float(hit.mean())


def exchange_time_from_local(local_ns: np.ndarray, bid: np.ndarray, ask: np.ndarray,
                             trade_local_ns: np.ndarray, trade_ts: np.ndarray,
                             trade_price: np.ndarray, trade_side: np.ndarray,
                             search_ms: int = 60, min_trades: int = 100) -> tuple[np.ndarray, dict]:
    """Exchange-time estimate for quotes that carry only the local receive time.

    ``ts = local + offset + shift`` (ns): ``offset`` = median(trade T - trade local
    receive) over the capture's trades; ``shift`` in [-search_ms, +search_ms] ms (1 ms
    steps) maximises :func:`touch_consistency` (ties: smallest |shift|; 0 with fewer than
    ``min_trades`` trades).  Monotone in ``local_ns``.  Returns (ts, info).  Why and
    what it measured: docs/data/loaders.md ("Binance").
    """
    local_ns = np.asarray(local_ns, dtype="int64")
    d = np.asarray(trade_ts, dtype="int64") - np.asarray(trade_local_ns, dtype="int64")
    offset = int(np.median(d))
    base = local_ns + offset
    order = np.argsort(base, kind="stable")
    qb, qa, qt = np.asarray(bid)[order], np.asarray(ask)[order], base[order]
    tts = np.asarray(trade_ts, dtype="int64")
    tp, tsd = np.asarray(trade_price), np.asarray(trade_side)
    c0 = touch_consistency(qt, qb, qa, tts, tp, tsd)
    best, best_c = 0, c0
    if len(tts) >= min_trades:
        for sh in sorted(range(-search_ms, search_ms + 1), key=abs):
            c = touch_consistency(qt + sh * MS, qb, qa, tts, tp, tsd)
            if c > best_c:
                best, best_c = sh, c
    q25, q75 = np.percentile(d, [25, 75])
    info = {"offset_ms": offset / MS, "offset_iqr_ms": float(q75 - q25) / MS,
            "shift_ms": best, "touch_consistency_median_offset": round(c0, 4),
            "touch_consistency": round(best_c, 4), "n_reference": int(len(d))}
    return base + best * MS, info


# --------------------------------------------------------------------------- books

class _BookSide:
    __slots__ = ("levels", "prices", "desc")

    def __init__(self, desc: bool):
        self.levels: dict[float, float] = {}
        self.prices: list[float] = []  # ascending
        self.desc = desc

    def load(self, rows) -> None:
        self.levels = {float(p): float(q) for p, q in rows if float(q) > 0}
        self.prices = sorted(self.levels)

    def apply(self, rows) -> None:
        lv, pr = self.levels, self.prices
        for ps, qs in rows:
            p, q = float(ps), float(qs)
            if q == 0.0:
                if p in lv:
                    del lv[p]
                    del pr[bisect_left(pr, p)]
            else:
                if p not in lv:
                    insort(pr, p)
                lv[p] = q

    def top(self, n: int) -> list[float]:
        return self.prices[:-n - 1:-1] if self.desc else self.prices[:n]


def _books(caps: list[_Capture], levels: int) -> tuple[pd.DataFrame | None, dict]:
    diffs = [(c.path, r) for c in caps for r in c.depth]
    snaps = [(c.path, r) for c in caps for r in c.snapshots]
    info: dict = {"diffs": len(diffs), "snapshots": len(snaps)}
    if not snaps:
        info["status"] = "no REST depth snapshot in the capture: books not built"
        return None, info
    if not diffs:
        info["status"] = "no depth diffs in the capture: books not built"
        return None, info
    spath, (_, _, last_id, sb, sa) = snaps[0]
    futures = diffs[0][1][5] is not None
    bids, asks = _BookSide(True), _BookSide(False)
    try:
        bids.load(sb)
        asks.load(sa)
    except (TypeError, ValueError) as e:
        raise DataError(spath, "", f"malformed depth snapshot ({e})") from e
    out_ts, out_side, out_lvl, out_px, out_sz = [], [], [], [], []
    prev_u = None
    applied = skipped = 0
    for path, (row, _, t, U, u, pu, b, a, _) in diffs:
        if prev_u is None:
            if (u < last_id) if futures else (u <= last_id):
                skipped += 1
                continue
            ok = (U <= last_id <= u) if futures else (U <= last_id + 1 <= u)
            if not ok:
                info["status"] = (f"first diff after the snapshot ({path} {_where(row)}, U={U}, u={u}) "
                                  f"does not bracket lastUpdateId={last_id}: books not built")
                return None, info
        else:
            ok = (pu == prev_u) if futures else (U == prev_u + 1)
            if not ok:
                info["status"] = f"sequence gap at {path} {_where(row)}: books end there"
                info["gap_row"] = row
                break
        try:
            bids.apply(b)
            asks.apply(a)
        except (TypeError, ValueError) as e:
            raise DataError(path, _where(row), f"malformed depth update ({e})") from e
        prev_u = u
        applied += 1
        ts = t * MS
        for sgn, side in ((1, bids), (-1, asks)):
            top = side.top(levels)
            k = len(top)
            out_ts.extend([ts] * k)
            out_side.extend([sgn] * k)
            out_lvl.extend(range(k))
            out_px.extend(top)
            out_sz.extend([side.levels[p] for p in top])
    info.update(applied=applied, skipped_before_snapshot=skipped)
    info.setdefault("status", "ok")
    if not out_ts:
        info["status"] = "no depth diff after the snapshot: books not built"
        return None, info
    df = pd.DataFrame({"ts": np.array(out_ts, dtype="int64"), "side": np.array(out_side, dtype="int8"),
                       "level": np.array(out_lvl, dtype="int16"), "price": np.array(out_px),
                       "size": np.array(out_sz)})
    order_by_time(df["ts"].to_numpy(), caps[0].path, "books",
                  lambda i: f"row {i + 1} of the books built from the depth diffs", 0)
    return validate_books(df, caps[0].path), info


# --------------------------------------------------------------------------- loader

def load_binance(path, asset: str | None = None, *, with_books: bool = False,
                 book_levels: int = 20) -> Market:
    """Load a Binance websocket capture (see the module docstring for the rules)."""
    files = _resolve(path, asset)
    for f in files:
        check_format(f, "binance")
    caps = [_parse_file(f, with_books) for f in files]
    # one capture split across files: order the files by their first local time
    caps.sort(key=lambda c: min([r[1] for r in c.trades[:1] + c.quotes[:1]] or [0]))
    label = path if not isinstance(path, (list, tuple)) else files[0]

    syms = sorted({r[-1] for c in caps for r in c.trades} | {r[-1] for c in caps for r in c.quotes})
    if not syms:
        raise DataError(label, "", "no trade or bookTicker messages in the capture")
    if asset is not None and asset.upper() in syms:
        sym = asset.upper()
    elif len(syms) == 1:
        sym = syms[0]
        if asset is not None and asset.lower() not in (sym.lower(),) and \
                asset.lower() not in {_group_key(f) for f in files}:
            raise DataError(label, "", f"capture is of {sym}, not {asset!r}")
    else:
        raise DataError(label, "", f"capture holds several symbols {syms}; pass asset=")
    for c in caps:
        c.trades = [r for r in c.trades if r[-1] == sym]
        c.quotes = [r for r in c.quotes if r[-1] == sym]
        c.depth = [r for r in c.depth if r[-1] == sym]
    dropped: dict[str, int] = {}

    # ---- trades
    parts, n_not_market = [], 0
    for c in caps:
        if c.trades:
            v, nm = _trades_of(c)
            parts.append(v)
            n_not_market += nm
    if not parts:
        raise DataError(label, "", f"no {sym.lower()}@trade messages in the capture")
    tr = pd.concat(parts, ignore_index=True)
    dup = tr["trade_id"].duplicated().to_numpy()
    tr = tr[~dup].reset_index(drop=True)
    tr = tr.iloc[np.argsort(tr["ts"].to_numpy(), kind="stable")].reset_index(drop=True)
    dropped["trades_duplicate_id"] = int(dup.sum())
    dropped["trades_not_market"] = n_not_market
    trade_local = tr["local"].to_numpy()
    trades = validate_trades(tr.drop(columns=["local", "sym"]), label)

    # ---- quotes
    qparts = [_quotes_of(c) for c in caps if c.quotes]
    if not qparts:
        raise DataError(label, "", f"no {sym.lower()}@bookTicker messages in the capture")
    q = pd.concat(qparts, ignore_index=True)
    dupq = q["u"].duplicated().to_numpy()
    q = q[~dupq].reset_index(drop=True)
    dropped["quotes_duplicate_update_id"] = int(dupq.sum())
    exch = q["exch"].to_numpy()
    has = exch >= 0
    ts = np.where(has, exch * MS, 0)
    clock: dict = {"trades": "exchange T (ms)"}
    if has.all():
        clock["quotes"] = "exchange T (ms; E where T is absent)"
    if (~has).any():
        est, info = exchange_time_from_local(
            q["local"].to_numpy()[~has], q["bid"].to_numpy()[~has], q["ask"].to_numpy()[~has],
            trade_local, trades["ts"].to_numpy(), trades["price"].to_numpy(), trades["side"].to_numpy())
        ts[~has] = est
        clock["quotes"] = ("local receive + median(trade T - local) + shift aligning trades with "
                           "the touch" + (" (rows without T/E only)" if has.any() else ""))
        clock.update(info)
    q["ts"] = ts
    order = np.argsort(ts, kind="stable")
    q = q.iloc[order].reset_index(drop=True)
    q = with_rows(q[["ts", "bid", "ask", "bid_size", "ask_size"]].copy(), q["row"].to_numpy() + 1, "line",
                  q["file"].to_numpy() if len(caps) > 1 else None)
    q, n_same_ts, n_same = collapse_quotes(q)
    dropped["quotes_same_ts_intermediate"] = int(n_same_ts)
    dropped["quotes_unchanged"] = int(n_same)
    quotes = validate_quotes(q, label)

    # ---- books
    books = None
    meta: dict = {"symbol": sym, "market": _group_key(files[0]).split("_", 1)[0],
                  "clock": clock, "dropped": dropped,
                  "ignored_lines": sum(c.ignored for c in caps),
                  "lines": sum(c.n_lines for c in caps)}
    if with_books:
        books, meta["books"] = _books(caps, book_levels)
    else:
        meta["books"] = {"status": "not requested (with_books=False)"}
    return Market(asset=sym, source="binance", trades=trades, quotes=quotes, books=books,
                  files=tuple(str(c.path) for c in caps), meta=meta)
