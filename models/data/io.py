"""Shared I/O helpers of the source loaders: format sniffing, reading (gzip-aware)
files, parsing columns with errors that name the line, time order, quote collapsing.

Where errors point in a file: ``line N``, the 1-based line of a text file (csv,
websocket capture; decompressed; header counted), as an editor shows it; ``row N``,
the 1-based row of a parquet file or an in-memory table; ``... of NAME`` where a
table combines several files; then the column (csv) or field (JSON).

``detect_source(path)`` looks at a file's first bytes (or a directory's files) and
names the source whose *format* it has, or returns None:

* ``lobster``: a zip holding ``*_message_*.csv``; a headerless csv whose first line
  is 6 numbers starting with seconds-after-midnight (message file) or 4k integers
  (orderbook file).
* ``binance``: text/gzip lines ``<local_ns> {json}`` whose JSON has ``"stream"``
  or is a REST depth snapshot (``"lastUpdateId"``).
* ``hyperliquid``: such lines whose JSON has ``"channel"``; a csv / parquet with an
  ``exchange_timestamp`` column (the recorder); a recorder directory
  (``trades_COIN.csv[.gz]`` files or ``trades/`` ``orderbooks/`` ``prices/`` chunk folders).
* ``synthetic``: a directory holding ``truth.json`` (the generator writes its
  ground truth next to the data).

Loaders call :func:`check_format` first, so giving a file of another source's format
fails at once with e.g. ``DataError(path, '', "looks like a binance websocket
capture, not lobster")`` instead of a confusing parse error.

:func:`collapse_quotes` applies the timing convention every loader shares (at most
one quote per timestamp, the state after the last event at that ts); why, and what
was measured: docs/data/loaders.md.

This module imports nothing from the source loaders or the dispatcher
(:mod:`models.data.loaders`), which import from it.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from models.data.tables import DataError

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
PARQUET_MAGIC = b"PAR1"

_FORMAT_NAMES = {
    "lobster": "a LOBSTER message/orderbook file",
    "binance": "a binance websocket capture",
    "hyperliquid": "a hyperliquid recorder/websocket file",
    "synthetic": "a synthetic market directory",
}


# --------------------------------------------------------------------------- sniffing

_LOBSTER_MSG = re.compile(rb"^\d+(\.\d+)?,-?\d+,-?\d+,-?\d+,-?\d+,-?\d+\r?$")
_INT_CSV = re.compile(rb"^-?\d+(,-?\d+)*\r?$")
_WS_LINE = re.compile(rb"^\d+ \{")


def _head(path: Path, n: int = 65536) -> bytes:
    """First (decompressed) bytes of a file; b'' if it cannot be read."""
    try:
        with open(path, "rb") as f:
            raw = f.read(4)
        if raw.startswith(GZIP_MAGIC):
            with gzip.open(path, "rb") as f:
                return f.read(n)
        if raw.startswith(ZIP_MAGIC):
            return raw
        with open(path, "rb") as f:
            return f.read(n)
    except (OSError, EOFError, zlib.error):
        return b""


def _sniff_bytes(head: bytes) -> str | None:
    line = head.split(b"\n", 1)[0].strip()
    if not line:
        return None
    if _WS_LINE.match(line):
        js = line.split(b" ", 1)[1]
        if js.startswith(b'{"stream"') or b'"lastUpdateId"' in js[:64]:
            return "binance"
        if js.startswith(b'{"channel"') or b'"channel"' in js[:64]:
            return "hyperliquid"
        try:
            d = json.loads(js)
        except ValueError:
            return None
        if isinstance(d, dict):
            if "stream" in d or "lastUpdateId" in d:
                return "binance"
            if "channel" in d:
                return "hyperliquid"
        return None
    if b"exchange_timestamp" in line:
        return "hyperliquid"
    if _LOBSTER_MSG.match(line):
        return "lobster"
    if _INT_CSV.match(line) and (line.count(b",") + 1) % 4 == 0:
        return "lobster"
    return None


def _sniff_file(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError:
        return None
    if magic.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError):
            return None
        return "lobster" if any("_message_" in n and n.endswith(".csv") for n in names) else None
    if magic == PARQUET_MAGIC:
        try:
            import pyarrow.parquet as pq
            cols = pq.read_schema(path).names
        except Exception:  # noqa: BLE001 - unreadable parquet: unknown format
            return None
        return "hyperliquid" if "exchange_timestamp" in cols else None
    if path.name == "truth.json":
        return "synthetic"
    return _sniff_bytes(_head(path))


def detect_source(path) -> str | None:
    """Name the source whose format ``path`` (file or directory) has, else None."""
    p = Path(path)
    if p.is_dir():
        names = {c.name for c in p.iterdir()}
        if "truth.json" in names:
            return "synthetic"
        if {"trades", "orderbooks", "prices"} & {c.name for c in p.iterdir() if c.is_dir()}:
            return "hyperliquid"
        if any(re.match(r"(trades|orderbooks|prices)_.+\.(csv|csv\.gz|parquet)$", n) for n in names):
            return "hyperliquid"
        for c in sorted(p.iterdir()):
            if c.is_file():
                s = _sniff_file(c)
                if s is not None:
                    return s
        return None
    if p.is_file():
        return _sniff_file(p)
    return None


def check_format(path, expected: str) -> None:
    """Raise DataError if ``path`` has the format of a source other than ``expected``."""
    found = detect_source(path)
    if found is not None and found != expected:
        raise DataError(path, "", f"looks like {_FORMAT_NAMES[found]}, not {expected}")


# --------------------------------------------------------------------------- I/O helpers

def require_path(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(p, "", "no such file or directory")
    return p


def read_bytes(path) -> bytes:
    """Whole file contents, gunzipped when the file is gzip (by magic number).
    A truncated or corrupt gzip, or an unreadable file, is a DataError."""
    p = require_path(path)
    try:
        with open(p, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(p, "", f"cannot read file: {e}") from e
    if raw.startswith(GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
            raise DataError(p, "", f"truncated or corrupt gzip file ({type(e).__name__}: {e})") from e
    if not raw.strip():
        raise DataError(p, "", "empty file")
    return raw


def read_csv_checked(path, raw: bytes | None = None, **kw) -> pd.DataFrame:
    """pandas.read_csv on a (possibly gzip) file with every failure as DataError."""
    if raw is None:
        raw = read_bytes(path)
    try:
        return pd.read_csv(io.BytesIO(raw), **kw)
    except pd.errors.EmptyDataError as e:
        raise DataError(path, "", "empty file (no header or rows)") from e
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as e:
        raise DataError(path, "", f"cannot parse as csv: {e}") from e


def to_float(values, path, where_rows, column: str, what: str, kind: str = "column") -> np.ndarray:
    """Strings/objects -> float64; the first unparseable value is a DataError
    naming its line (``where_rows(i)`` gives value i's ``line N``/``row N``) and
    its ``kind`` (``column`` of a csv, ``field`` of a JSON message)."""
    if not isinstance(values, pd.Series):
        try:  # fast path: numpy parses numeric strings ("61800.30", "nan", "inf")
            arr = np.asarray(values, dtype="float64")
            if arr.ndim == 1:
                return arr
        except (TypeError, ValueError):
            pass
    s = pd.Series(values, dtype="object") if not isinstance(values, pd.Series) else values
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype="float64")
    num = pd.to_numeric(s, errors="coerce")
    bad = num.isna().to_numpy() & ~_is_nan_text(s)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(path, f"{where_rows(i)}, {kind} {column!r}",
                        f"cannot parse {s.iloc[i]!r} as a number ({what})")
    return num.to_numpy(dtype="float64")


def _is_nan_text(s: pd.Series) -> np.ndarray:
    """True where the value spells NaN (parseable, caught later as non-finite)."""
    if s.dtype == object or pd.api.types.is_string_dtype(s):
        txt = s.astype("string").str.strip().str.lower()
        return txt.isin(["nan"]).fillna(False).to_numpy(dtype=bool)
    return np.zeros(len(s), dtype=bool)


def to_int(values, path, where_rows, column: str, what: str, kind: str = "column") -> np.ndarray:
    """Strings/objects -> int64 (exact: no float round trip); DataError on the first
    bad value, named as in :func:`to_float`."""
    s = values if isinstance(values, pd.Series) else pd.Series(values, dtype="object")
    if pd.api.types.is_integer_dtype(s):
        return s.to_numpy(dtype="int64")
    txt = s.astype("string").str.strip()
    ok = txt.str.fullmatch(r"[+-]?\d+").fillna(False).to_numpy(dtype=bool)
    if not ok.all():
        if pd.api.types.is_float_dtype(s):
            v = s.to_numpy()
            ok = np.isfinite(v) & (v == np.round(v))
            if ok.all():
                return v.astype("int64")
        i = int(np.flatnonzero(~ok)[0])
        raise DataError(path, f"{where_rows(i)}, {kind} {column!r}",
                        f"cannot parse {s.iloc[i]!r} as an integer ({what})")
    return txt.astype("int64").to_numpy()


def order_by_time(ts: np.ndarray, path, table: str, where_rows, max_back_ns: int = 0,
                  ) -> tuple[np.ndarray | None, int]:
    """Check that ``ts`` runs forward. Backward steps of at most ``max_back_ns`` are
    tolerated (returns a stable sort permutation and the number of backward steps);
    a larger one is a DataError naming the row. Returns (None, 0) when in order."""
    if len(ts) < 2:
        return None, 0
    d = np.diff(ts)
    back = d < 0
    if not back.any():
        return None, 0
    # size of each backward jump measured against the running maximum so far
    runmax = np.maximum.accumulate(ts)
    lag = runmax[:-1] - ts[1:]
    too_far = lag > max_back_ns
    if too_far.any():
        i = int(np.flatnonzero(too_far)[0]) + 1
        raise DataError(path, f"{where_rows(i)}, column 'ts'",
                        f"timestamps out of order in {table}: {int(ts[i])} comes after "
                        f"{int(runmax[i - 1])} ({lag[i - 1] / 1e9:.3f} s back"
                        + (f", more than the {max_back_ns / 1e9:g} s tolerated)" if max_back_ns else ")"))
    return np.argsort(ts, kind="stable"), int(back.sum())


def collapse_quotes(q: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """At most one BBO per timestamp (the last state at that ts), then drop rows that
    repeat the previous BBO. Keeps ``source_rows`` in attrs aligned.
    Returns (frame, n_same_ts_collapsed, n_unchanged_dropped)."""
    src = q.attrs.get("source_rows")
    names = q.attrs.get("source_names")
    unit = q.attrs.get("source_unit", "line")
    ts = q["ts"].to_numpy()
    keep = np.ones(len(q), dtype=bool)
    keep[:-1] = ts[1:] != ts[:-1]
    n_ts = int((~keep).sum())
    q = q[keep]
    if src is not None:
        src = np.asarray(src)[keep]
        names = None if names is None else np.asarray(names)[keep]
    vals = q[["bid", "ask", "bid_size", "ask_size"]].to_numpy()
    same = np.zeros(len(q), dtype=bool)
    if len(q) > 1:
        same[1:] = (vals[1:] == vals[:-1]).all(axis=1)
    q = q[~same].reset_index(drop=True)
    if src is not None:
        with_rows(q, src[~same], unit, None if names is None else names[~same])
    else:
        q.attrs.pop("source_rows", None)
    return q, n_ts, int(same.sum())


def with_rows(df: pd.DataFrame, numbers, unit: str = "line", names=None) -> pd.DataFrame:
    """Attach where each row came from, for validation errors (tables.py): its number
    as an editor shows it (``unit`` ``line``: the 1-based line of a text file, header
    counted; ``row``: the 1-based row of a parquet file) and, where the table combines
    several files, each row's file name (``names``, aligned)."""
    df.attrs["source_rows"] = np.asarray(numbers)
    df.attrs["source_unit"] = unit
    if names is not None:
        df.attrs["source_names"] = np.asarray(names)
    else:
        df.attrs.pop("source_names", None)
    return df


def csv_line_numbers(raw: bytes, n: int, header: bool) -> np.ndarray:
    """The 1-based text line of each of the ``n`` rows pandas read from the csv text
    ``raw`` (header counted; pandas skips blank and whitespace-only lines)."""
    first = 2 if header else 1
    if not re.search(rb"(^|\n)[ \t\r]*(\n|$)", raw.rstrip(b"\r\n")):
        return np.arange(first, first + n)
    nonblank = [k + 1 for k, ln in enumerate(raw.split(b"\n")) if ln.strip()]
    nums = np.array(nonblank[1:] if header else nonblank, dtype="int64")
    return nums[:n] if len(nums) >= n else np.arange(first, first + n)
