"""Hyperliquid loader (recorder csv/csv.gz, recorder parquet chunks, raw websocket)
-> canonical tables.

Input (``load_hyperliquid(path, asset=None, *, with_books=False, max_reorder_s=60.0,
trim_to_quotes=True)``): a recorder directory or file (``trades_COIN``,
``prices_COIN``, ``orderbooks_COIN``), a parquet chunk directory, or a raw websocket
capture (``trades`` and ``l2Book`` channels).  Clock: ``ts`` = the exchange timestamp,
ms -> ns.  Units: prices in quote currency, sizes in coin units; side = the taker's (``buy``/``B``
-> +1, ``sell``/``A`` -> -1).  Trades are de-duplicated by id, backward steps up to
``max_reorder_s`` (s) re-sorted, trades before the first quote trimmed; quotes come
from the ``prices`` BBO stream (else orderbook level 0), one per ts; gaps over 10 s
in ``meta['quote_gaps_s']``.

Format notes, the replay and crossing rules, and what was measured on the samples:
docs/data/loaders.md ("Hyperliquid").
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from models.data.io import (check_format, collapse_quotes, csv_line_numbers, order_by_time, read_bytes,
                            read_csv_checked, require_path, to_float, to_int, with_rows)
from models.data.tables import DataError, Market, validate_books, validate_quotes, validate_trades

MS = 1_000_000
KINDS = ("trades", "prices", "orderbooks")
_REC_FILE = re.compile(r"^(?P<kind>trades|prices|orderbooks)_(?P<coin>[^.]+)\.(?P<ext>csv|csv\.gz|parquet)$")
TRADE_COLS = ("price", "size", "side", "trade_id", "exchange_timestamp")
PRICE_COLS = ("price", "size", "side", "exchange_timestamp")


# --------------------------------------------------------------------------- reading

def _unit(path) -> str:
    """How a file's rows are counted in errors: ``row`` (parquet) or ``line`` (text)."""
    return "row" if str(path).endswith(".parquet") else "line"


def _of(path, multi: bool) -> str:
    """`` of NAME`` where the error's path is a folder of several files, else ''."""
    return f" of {Path(path).name}" if multi else ""


class _Part:
    """One file's rows of one stream (recorder csv or one parquet chunk); ``num[i]``
    is row i's number as errors give it (the csv's 1-based line, header counted, or
    the parquet file's 1-based row)."""

    def __init__(self, path: Path, df: pd.DataFrame, num: np.ndarray):
        self.path, self.df, self.num, self.unit = path, df, num, _unit(path)

    def where(self, i: int) -> str:
        return f"{self.unit} {int(self.num[i])}"


def _read_table(path: Path, required: tuple[str, ...], coin: str) -> _Part:
    if path.suffix == ".parquet":
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # noqa: BLE001 - pyarrow raises many types
            raise DataError(path, "", f"cannot read parquet file ({type(e).__name__}: {e})") from e
        num = np.arange(1, len(df) + 1)
    else:
        raw = read_bytes(path)
        df = read_csv_checked(path, raw)
        num = csv_line_numbers(raw, len(df), header=True)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(path, f"column(s) {', '.join(map(repr, missing))}",
                        f"missing; found columns {list(df.columns)[:12]}")
    part = _Part(path, df, num)
    _check_coin_column(part, coin)
    return part


def _ts_of(part: _Part, col: str = "exchange_timestamp") -> np.ndarray:
    return to_int(part.df[col], part.path, part.where, col, "exchange time (ms)") * MS


def _src_rows(src: list[tuple]) -> tuple[np.ndarray, str, np.ndarray | None]:
    """(file, number) pairs -> numbers, unit, file names (None when one file)."""
    nums = np.array([r for _, r in src], dtype="int64")
    files = {str(f) for f, _ in src}
    names = np.array([Path(f).name for f, _ in src], dtype=object) if len(files) > 1 else None
    return nums, _unit(src[0][0]) if src else "line", names


# --------------------------------------------------------------------------- trades

def _side_from_text(s: pd.Series, path, rows_label) -> np.ndarray:
    t = s.astype("string").str.strip().str.lower()
    side = np.where(t.isin(["buy", "b"]).fillna(False), 1,
                    np.where(t.isin(["sell", "a"]).fillna(False), -1, 0)).astype("int8")
    bad = side == 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(path, f"{rows_label(i)}, column 'side'",
                        f"trade side must be buy/sell (B/A), got {s.iloc[i]!r}")
    return side


def _trade_frame(path: Path, rows: np.ndarray, ts: np.ndarray, price, size, side_txt, tid,
                 kind: str = "column") -> pd.DataFrame:
    """Validated per-file trades in file order (ordering handled by the caller);
    ``rows[i]``: row i's line (text) or row (parquet) number in ``path``; ``kind``:
    ``column`` (recorder) or ``field`` (websocket JSON)."""
    unit = _unit(path)
    wh = lambda i: f"{unit} {int(rows[i])}"  # noqa: E731
    df = pd.DataFrame({
        "ts": ts,
        "price": to_float(price, path, wh, "price" if kind == "column" else "px", "trade price", kind),
        "size": to_float(size, path, wh, "size" if kind == "column" else "sz", "trade size", kind),
        "side": _side_from_text(pd.Series(side_txt).reset_index(drop=True), path, wh),
        "trade_id": to_int(pd.Series(tid).reset_index(drop=True), path, wh,
                           "trade_id" if kind == "column" else "tid", "trade id", kind),
    })
    chk = with_rows(df.assign(ts=0), rows, unit)
    validate_trades(chk, path)  # value checks naming this file's lines
    df["row"] = rows
    df["file"] = str(path)
    return df


def _finish_trades(parts: list[pd.DataFrame], label, max_reorder_s: float, multi: bool
                   ) -> tuple[pd.DataFrame, dict, dict]:
    tr = pd.concat(parts, ignore_index=True)
    dup = tr["trade_id"].duplicated().to_numpy()
    tr = tr[~dup].reset_index(drop=True)
    files, rows = tr["file"].to_numpy(), tr["row"].to_numpy()
    where = lambda i: f"{_unit(files[i])} {rows[i]}{_of(files[i], multi)}"  # noqa: E731
    perm, n_back = order_by_time(tr["ts"].to_numpy(), files[0] if not multi else label,
                                 "trades", where, int(max_reorder_s * 1e9))
    if perm is not None:
        tr = tr.iloc[perm].reset_index(drop=True)
    return tr, {"trades_duplicate_id": int(dup.sum())}, {"trades": n_back}


# --------------------------------------------------------------------------- quotes

def _quotes_from_prices(parts: list[_Part], multi: bool) -> tuple[pd.DataFrame, dict]:
    """Combine one-sided best bid/ask rows into BBO rows (see module docstring)."""
    frames = []
    for part in parts:
        df = part.df
        n = len(df)
        if n == 0:
            continue
        wh = part.where
        ts = _ts_of(part)
        order_by_time(ts, part.path, "prices", wh, 0)
        side = df["side"].astype("string").str.strip().str.lower()
        isbid = side.eq("bid").fillna(False).to_numpy(dtype=bool)
        isask = side.eq("ask").fillna(False).to_numpy(dtype=bool)
        bad = ~(isbid | isask)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(part.path, f"{wh(i)}, column 'side'",
                            f"prices side must be bid/ask, got {df['side'].iloc[i]!r}")
        price = to_float(df["price"], part.path, wh, "price", "best price")
        size = to_float(df["size"], part.path, wh, "size", "best size")
        # value checks (finite, > 0) with this file's rows
        _check_pos(pd.DataFrame({"price": price, "size": size}), part.path, wh)
        frames.append(pd.DataFrame({"ts": ts, "price": price, "size": size, "bid": isbid,
                                    "row": part.num, "file": str(part.path)}))
    if not frames:
        raise DataError(parts[0].path if parts else None, "", "no best bid/ask rows (empty prices file)")
    d = pd.concat(frames, ignore_index=True)
    ts = d["ts"].to_numpy()
    if len(frames) > 1:
        files_arr, rows_arr = d["file"].to_numpy(), d["row"].to_numpy()
        order_by_time(ts, Path(frames[0]["file"].iloc[0]).parent, "prices",
                      lambda i: f"{_unit(files_arr[i])} {rows_arr[i]}{_of(files_arr[i], True)}", 0)
    uts, inv = np.unique(ts, return_inverse=True)
    k = len(uts)
    out = {}
    for name, m in (("bid", d["bid"].to_numpy()), ("ask", ~d["bid"].to_numpy())):
        idx = np.flatnonzero(m)
        # last row of this side per ts: later rows overwrite earlier ones
        px = np.full(k, np.nan)
        sz = np.full(k, np.nan)
        row_at = np.full(k, -1)
        px[inv[idx]] = d["price"].to_numpy()[idx]
        sz[inv[idx]] = d["size"].to_numpy()[idx]
        row_at[inv[idx]] = idx
        own = row_at >= 0
        # carry forward from the previous ts where this side is absent
        fill = np.maximum.accumulate(np.where(own, np.arange(k), -1))
        ok = fill >= 0
        out[name] = (np.where(ok, px[np.maximum(fill, 0)], np.nan),
                     np.where(ok, sz[np.maximum(fill, 0)], np.nan), own, row_at)
    bid, bid_sz, own_b, row_b = out["bid"]
    ask, ask_sz, own_a, row_a = out["ask"]
    known = ~np.isnan(bid) & ~np.isnan(ask)
    crossed = known & (bid >= ask)
    self_crossed = crossed & own_b & own_a
    if self_crossed.any():
        j = int(np.flatnonzero(self_crossed)[0])
        r = int(max(row_b[j], row_a[j]))
        raise DataError(d["file"].iloc[r], f"{_unit(d['file'].iloc[r])} {d['row'].iloc[r]}, columns 'price'/'side'",
                        f"crossed or locked best bid/ask at one exchange timestamp: "
                        f"bid {float(bid[j])!r} >= ask {float(ask[j])!r}")
    keep = known & ~crossed
    src = np.maximum(row_b, row_a)
    q = pd.DataFrame({"ts": uts[keep], "bid": bid[keep], "ask": ask[keep],
                      "bid_size": bid_sz[keep], "ask_size": ask_sz[keep]})
    rows = src[keep]
    with_rows(q, d["row"].to_numpy()[rows], _unit(d["file"].iloc[0]),
              d["file"].map(lambda f: Path(f).name).to_numpy()[rows] if len(frames) > 1 else None)
    dropped = {"quotes_one_side_unknown": int((~known).sum()),
               "quotes_transient_crossed": int((crossed & ~self_crossed).sum()),
               "quotes_same_ts_rows_combined": int(len(d) - k)}
    return q, dropped


def _check_pos(df: pd.DataFrame, path, wh) -> None:
    for c in ("price", "size"):
        v = df[c].to_numpy()
        bad = ~np.isfinite(v)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(path, f"{wh(i)}, column {c!r}", f"non-finite value {float(v[i])!r}")
        bad = v <= 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(path, f"{wh(i)}, column {c!r}", f"{c} must be > 0, got {float(v[i])!r}")


def _book_arrays(parts: list[_Part], multi: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Orderbook snapshots -> ts (n,), price/size (n, 2 sides, L), source (file, row)."""
    ts_l, px_l, sz_l, src = [], [], [], []
    for part in parts:
        df = part.df
        if len(df) == 0:
            continue
        lab = part.where
        lv = sorted(int(m.group(1)) for c in df.columns if (m := re.fullmatch(r"bid_price_(\d+)", c)))
        if not lv:
            raise DataError(part.path, "column 'bid_price_0'", "missing: no bid_price_i columns")
        cols = []
        for i in range(lv[-1] + 1):
            for c in (f"bid_price_{i}", f"bid_size_{i}", f"ask_price_{i}", f"ask_size_{i}"):
                if c not in df.columns:
                    raise DataError(part.path, f"column {c!r}", "missing")
                cols.append(c)
        vals = np.column_stack([to_float(df[c], part.path, lab, c, "orderbook") for c in cols])
        L = lv[-1] + 1
        v = vals.reshape(len(df), L, 4)
        ts = _ts_of(part)
        order_by_time(ts, part.path, "orderbooks", lab, 0)
        ts_l.append(ts)
        px_l.append(np.stack([v[:, :, 0], v[:, :, 2]], axis=1))
        sz_l.append(np.stack([v[:, :, 1], v[:, :, 3]], axis=1))
        src += [(part.path, int(r)) for r in part.num]
    if not ts_l:
        raise DataError(parts[0].path if parts else None, "", "no orderbook snapshots (empty file)")
    L = max(p.shape[2] for p in px_l)
    pad = lambda a: np.concatenate([a, np.full((a.shape[0], 2, L - a.shape[2]), np.nan)], axis=2)  # noqa: E731
    return (np.concatenate(ts_l), np.concatenate([pad(p) for p in px_l]),
            np.concatenate([pad(s) for s in sz_l]), src)


def _quotes_from_book(ts, px, sz, src) -> tuple[pd.DataFrame, dict]:
    bid, ask = px[:, 0, 0], px[:, 1, 0]
    known = np.isfinite(bid) & np.isfinite(ask)
    crossed = known & (bid >= ask)
    if crossed.any():
        j = int(np.flatnonzero(crossed)[0])
        path, r = src[j]
        raise DataError(path, f"{_unit(path)} {r}, level 0",
                        f"crossed or locked book: best bid {float(bid[j])!r} >= best ask {float(ask[j])!r}")
    q = pd.DataFrame({"ts": ts[known], "bid": bid[known], "ask": ask[known],
                      "bid_size": sz[known, 0, 0], "ask_size": sz[known, 1, 0]})
    nums, unit, names = _src_rows(src)
    with_rows(q, nums[known], unit, None if names is None else names[known])
    return q, {"quotes_one_side_empty": int((~known).sum())}


def _books_long(ts, px, sz, src, path) -> tuple[pd.DataFrame, int]:
    n, _, L = px.shape
    flat = np.concatenate([px.reshape(n, -1), sz.reshape(n, -1)], axis=1)
    same = np.zeros(n, dtype=bool)
    if n > 1:
        eq = (flat[1:] == flat[:-1]) | (np.isnan(flat[1:]) & np.isnan(flat[:-1]))
        same[1:] = eq.all(axis=1) & (ts[1:] == ts[:-1])
    keep = ~same
    ts, px, sz = ts[keep], px[keep], sz[keep]
    nums, unit, names = _src_rows(src)
    rows = nums[keep]
    k = len(ts)
    present = ~np.isnan(px)
    side = np.broadcast_to(np.array([1, -1], dtype="int8")[None, :, None], px.shape)
    lvl = np.broadcast_to(np.arange(L, dtype="int16")[None, None, :], px.shape)
    tsb = np.broadcast_to(ts[:, None, None], px.shape)
    rb = np.broadcast_to(rows[:, None, None], px.shape)
    m = present.ravel()
    df = pd.DataFrame({"ts": tsb.ravel()[m], "side": side.ravel()[m], "level": lvl.ravel()[m],
                       "price": px.ravel()[m], "size": sz.ravel()[m]})
    nb = None if names is None else np.broadcast_to(names[keep][:, None, None], px.shape).ravel()[m]
    return validate_books(with_rows(df, rb.ravel()[m], unit, nb), path), int(same.sum())


# --------------------------------------------------------------------------- recorder

def _coin_of_dir_name(name: str) -> str | None:
    """The coin a chunk directory's name ends with (``recorder_2025-12-10_ETH`` -> ETH), else None."""
    m = re.search(r"_([A-Za-z][A-Za-z0-9]*)$", name)
    return m.group(1).upper() if m else None


def _recorder_files(p: Path, asset: str | None) -> tuple[str, dict[str, list[Path]], bool]:
    """-> (coin, {kind: [files]}, multi_file) for a flat recorder dir or a chunk dir.
    A chunk dir's coin is its name's ``_COIN`` suffix (the chunk files carry none);
    an ``asset`` that differs from it is refused, so data are never relabelled."""
    subdirs = {c.name: c for c in p.iterdir() if c.is_dir() and c.name in KINDS}
    if subdirs:
        files = {k: sorted(f for f in d.iterdir() if f.is_file() and f.suffix in (".parquet", ".csv", ".gz"))
                 for k, d in subdirs.items()}
        named = _coin_of_dir_name(p.name)
        if asset is not None and named is not None and asset.upper() != named:
            raise DataError(p, "", f"the folder name says the data are {named}, not {asset!r} "
                            "(the chunk files carry no coin; rename the folder if its name is wrong)")
        coin = named or (asset.upper() if asset else None)
        if coin is None:
            raise DataError(p, "", "cannot tell the coin: the folder name has no _COIN suffix "
                            "(e.g. recorder_2025-12-10_ETH); pass asset=")
        return coin, files, True
    found: dict[str, dict[str, Path]] = {}
    for f in p.iterdir():
        m = _REC_FILE.match(f.name)
        if m:
            found.setdefault(m["coin"], {})[m["kind"]] = f
    if not found:
        raise DataError(p, "", "no recorder files (trades_COIN.csv[.gz], prices_COIN..., "
                        "orderbooks_COIN...) and no trades/ prices/ orderbooks/ folders here")
    if asset is None:
        if len(found) > 1:
            raise DataError(p, "", f"several coins here; pass asset= one of {sorted(found)}")
        coin = next(iter(found))
    else:
        hit = [c for c in found if c.upper() == asset.upper()]
        if not hit:
            raise DataError(p, "", f"no recorder files for asset {asset!r}; found {sorted(found)}")
        coin = hit[0]
    return coin.upper(), {k: [f] for k, f in found[coin].items()}, False


def _check_coin_column(part: _Part, coin: str) -> None:
    """Where a recorder table has a ``coin`` column (Hyperliquid's own field name),
    every row must be ``coin``: the data's own label beats the file or folder name."""
    if "coin" not in part.df.columns or len(part.df) == 0:
        return
    col = part.df["coin"].astype("string").str.strip().str.upper()
    bad = (col != coin).fillna(True).to_numpy(dtype=bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(part.path, f"{part.where(i)}, column 'coin'",
                        f"the data are {part.df['coin'].iloc[i]!r}, not {coin!r}")


def _load_recorder(p: Path, asset, with_books, max_reorder_s, trim_to_quotes) -> Market:
    coin, files, multi = _recorder_files(p, asset)
    if not files.get("trades"):
        raise DataError(p, "", f"no trades file for {coin}")
    for fl in files.values():
        for f in fl:
            check_format(f, "hyperliquid")
    meta: dict = {"coin": coin, "form": "parquet chunks" if multi else "recorder csv",
                  "clock": "exchange_timestamp (ms)"}
    # trades
    tparts = []
    for f in files["trades"]:
        part = _read_table(f, TRADE_COLS, coin)
        df = part.df
        if len(df) == 0:
            continue
        tparts.append(_trade_frame(f, part.num, _ts_of(part), df["price"], df["size"],
                                   df["side"], df["trade_id"]))
    if not tparts:
        raise DataError(files["trades"][0], "", "no trades (empty file)")
    tr, dropped, reordered = _finish_trades(tparts, p, max_reorder_s, multi)
    # quotes + books
    book_parts = None
    if files.get("orderbooks") and (with_books or not files.get("prices")):
        book_parts = [_read_table(f, ("exchange_timestamp",), coin) for f in files["orderbooks"]]
        bts, bpx, bsz, bsrc = _book_arrays(book_parts, multi)
    if files.get("prices"):
        pparts = [_read_table(f, PRICE_COLS, coin) for f in files["prices"]]
        q, qd = _quotes_from_prices(pparts, multi)
        meta["quotes_from"] = "prices (best bid/ask stream)"
        qpath = files["prices"][0] if not multi else files["prices"][0].parent
    elif book_parts is not None:
        q, qd = _quotes_from_book(bts, bpx, bsz, bsrc)
        meta["quotes_from"] = "orderbooks level 0"
        qpath = files["orderbooks"][0] if not multi else files["orderbooks"][0].parent
    else:
        raise DataError(p, "", f"no prices or orderbooks file for {coin}: no quotes")
    dropped.update(qd)
    books = None
    if with_books:
        if book_parts is None:
            raise DataError(p, "", f"with_books=True but no orderbooks file for {coin}")
        # a crossed snapshot is bad input even when quotes come from prices
        _quotes_from_book(bts, bpx, bsz, bsrc)
        bpath = files["orderbooks"][0] if not multi else files["orderbooks"][0].parent
        books, dropped["books_duplicate_snapshots"] = _books_long(bts, bpx, bsz, bsrc, bpath)
    all_files = tuple(str(f) for fl in files.values() for f in fl)
    return _finish(coin, tr, q, books, qpath, p, trim_to_quotes, dropped, reordered, meta, all_files)


# --------------------------------------------------------------------------- websocket

def _where_line(i: int) -> str:
    """Line ``i`` (0-based index into the capture's lines) as an editor shows it."""
    return f"line {i + 1}"


def _load_ws(files: list[Path], asset, with_books, max_reorder_s, trim_to_quotes, label) -> Market:
    trades_raw: list[tuple] = []   # (file, line, coin, time, px, sz, side, tid); line 1-based
    books_raw: list[tuple] = []    # (file, line, coin, time, bids, asks)
    ignored = 0
    for f in files:
        text = read_bytes(f).decode("utf-8", errors="replace")
        lines = text.split("\n")
        if lines and not lines[-1].strip():
            lines.pop()
        dec = json.JSONDecoder().decode
        for i, ln in enumerate(lines):
            sp = ln.find(" ")
            if sp <= 0 or not ln[:sp].isdigit():
                raise DataError(f, _where_line(i), f"expected '<local_ns> <json>', got {ln[:60]!r}")
            try:
                d = dec(ln[sp + 1:])
            except ValueError as e:
                raise DataError(f, _where_line(i), f"invalid JSON ({e})") from e
            if not isinstance(d, dict):
                raise DataError(f, _where_line(i), "JSON message is not an object")
            ch = d.get("channel")
            try:
                if ch == "trades":
                    for x in d["data"]:
                        trades_raw.append((f, i + 1, x["coin"], x["time"], x["px"], x["sz"], x["side"],
                                           x["tid"]))
                elif ch == "l2Book":
                    x = d["data"]
                    lv = x["levels"]
                    if not isinstance(lv, list) or len(lv) != 2:
                        raise DataError(f, _where_line(i), "l2Book 'levels' must be [bids, asks]")
                    books_raw.append((f, i + 1, x["coin"], x["time"], lv[0], lv[1]))
                else:
                    ignored += 1
            except KeyError as e:
                raise DataError(f, _where_line(i), f"{ch} message lacks field {e.args[0]!r}") from e
            except TypeError as e:
                raise DataError(f, _where_line(i), f"malformed {ch} message ({e})") from e
    coins = sorted({r[2] for r in trades_raw} | {r[2] for r in books_raw})
    if not coins:
        raise DataError(label, "", "no trades or l2Book messages in the capture")
    if asset is None:
        if len(coins) > 1:
            raise DataError(label, "", f"capture holds several coins {coins}; pass asset=")
        coin = coins[0]
    else:
        hit = [c for c in coins if c.upper() == asset.upper()]
        if not hit:
            raise DataError(label, "", f"no data for asset {asset!r}; the capture holds {coins}")
        coin = hit[0]
    trades_raw = [r for r in trades_raw if r[2] == coin]
    books_raw = [r for r in books_raw if r[2] == coin]
    if not trades_raw:
        raise DataError(label, "", f"no trades for {coin} in the capture")
    if not books_raw:
        raise DataError(label, "", f"no l2Book messages for {coin} in the capture: no quotes")
    meta: dict = {"coin": coin, "form": "websocket capture", "clock": "exchange time (ms)",
                  "ignored_messages": ignored, "quotes_from": "l2Book level 0"}
    multi = len(files) > 1
    # trades, per file
    tparts = []
    for f in files:
        rs = [r for r in trades_raw if r[0] == f]
        if not rs:
            continue
        rows = np.array([r[1] for r in rs])
        tt = pd.Series([r[3] for r in rs], dtype="object")
        ts = to_int(tt, f, lambda i: f"line {rows[i]}", "time", "trade time (ms)", "field") * MS
        tparts.append(_trade_frame(f, rows, ts, [r[4] for r in rs], [r[5] for r in rs],
                                   [r[6] for r in rs], pd.Series([r[7] for r in rs], dtype="object"),
                                   "field"))
    tr, dropped, reordered = _finish_trades(tparts, label, max_reorder_s, multi)
    # l2Book -> arrays
    n = len(books_raw)
    L = max(max(len(r[4]), len(r[5])) for r in books_raw) or 1
    px = np.full((n, 2, L), np.nan)
    sz = np.full((n, 2, L), np.nan)
    src = []
    for j, (f, i, _, _, bids, asks) in enumerate(books_raw):
        src.append((f, i))
        for s, lv in ((0, bids), (1, asks)):
            try:
                for k, e in enumerate(lv):
                    px[j, s, k] = float(e["px"])
                    sz[j, s, k] = float(e["sz"])
            except (KeyError, TypeError, ValueError) as e:
                raise DataError(f, f"line {i}", f"malformed l2Book level ({e!r})") from e
    where = lambda j: f"line {src[j][1]}{_of(src[j][0], multi)}"  # noqa: E731
    out = label if multi else files[0]  # the path errors about the combined tables name
    bts = to_int(pd.Series([r[3] for r in books_raw], dtype="object"), out, where, "time",
                 "l2Book time (ms)", "field") * MS
    for f in files:
        sel = np.array([s[0] == f for s in src])
        if sel.any():
            idx = np.flatnonzero(sel)
            order_by_time(bts[idx], f, "l2Book", lambda j: f"line {src[idx[j]][1]}", 0)
    if multi:
        order_by_time(bts, label, "l2Book", where, 0)
    for j in range(n):
        for s in (0, 1):
            ok = ~np.isnan(px[j, s])
            bad = ~np.isfinite(px[j, s][ok]) | (px[j, s][ok] <= 0) | ~np.isfinite(sz[j, s][ok]) | (sz[j, s][ok] <= 0)
            if bad.any():
                raise DataError(src[j][0], f"line {src[j][1]}, field 'levels'",
                                "l2Book level with a non-finite or non-positive price/size")
    q, qd = _quotes_from_book(bts, px, sz, src)
    dropped.update(qd)
    books = None
    if with_books:
        books, dropped["books_duplicate_snapshots"] = _books_long(bts, px, sz, src, out)
    return _finish(coin, tr, q, books, out, label, trim_to_quotes, dropped, reordered, meta,
                   tuple(str(f) for f in files))


# --------------------------------------------------------------------------- common end

def _finish(coin, tr, q, books, qpath, label, trim_to_quotes, dropped, reordered, meta, files) -> Market:
    q, n_same_ts, n_same = collapse_quotes(q)
    dropped["quotes_same_ts_intermediate"] = dropped.get("quotes_same_ts_intermediate", 0) + n_same_ts
    dropped["quotes_unchanged"] = n_same
    quotes = validate_quotes(q, qpath)
    if trim_to_quotes:
        early = tr["ts"].to_numpy() < quotes["ts"].iloc[0]
        dropped["trades_before_first_quote"] = int(early.sum())
        tr = tr[~early].reset_index(drop=True)
    files_col = tr["file"].to_numpy()
    several = len(set(files_col)) > 1
    with_rows(tr, tr["row"].to_numpy(), _unit(files_col[0]) if len(tr) else "line",
              np.array([Path(f).name for f in files_col], dtype=object) if several else None)
    trades = validate_trades(tr.drop(columns=["row", "file"]), label if several else
                             (files_col[0] if len(tr) else label))
    gaps = np.diff(quotes["ts"].to_numpy()) / 1e9
    big = np.flatnonzero(gaps > 10)
    meta.update(dropped=dropped, reordered=reordered,
                quote_gaps_s=[{"after_ts": int(quotes["ts"].iloc[i]), "seconds": float(gaps[i])}
                              for i in big])
    return Market(asset=coin, source="hyperliquid", trades=trades, quotes=quotes, books=books,
                  files=files, meta=meta)


def load_hyperliquid(path, asset: str | None = None, *, with_books: bool = False,
                     max_reorder_s: float = 60.0, trim_to_quotes: bool = True) -> Market:
    """Load Hyperliquid recorder files or a websocket capture (rules: module docstring)."""
    p = require_path(path)
    check_format(p, "hyperliquid")
    if p.is_dir():
        is_rec = any(c.is_dir() and c.name in KINDS for c in p.iterdir()) or \
            any(_REC_FILE.match(c.name) for c in p.iterdir())
        if is_rec:
            return _load_recorder(p, asset, with_books, max_reorder_s, trim_to_quotes)
        ws = sorted(c for c in p.iterdir() if c.is_file() and c.name not in ("LICENSE", "README.md"))
        if not ws:
            raise DataError(p, "", "no Hyperliquid recorder or websocket files here")
        return _load_ws(ws, asset, with_books, max_reorder_s, trim_to_quotes, p)
    m = _REC_FILE.match(p.name)
    if m:
        if asset is not None and asset.upper() != m["coin"].upper():
            raise DataError(p, "", f"file is for {m['coin']}, not {asset!r}")
        if m["ext"] == "parquet":
            raise DataError(p, "", "a single parquet chunk: pass the chunk directory "
                            "(with trades/ prices/ orderbooks/) instead")
        return _load_recorder(p.parent, m["coin"], with_books, max_reorder_s, trim_to_quotes)
    return _load_ws([p], asset, with_books, max_reorder_s, trim_to_quotes, p)
