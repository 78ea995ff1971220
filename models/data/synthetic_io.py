"""The synthetic market on disk: ``write_market`` writes a directory (trades.parquet,
quotes.parquet, truth.json, README.txt, open_interest.parquet when present, books.parquet
and queue_orders.parquet when the market has queues;
byte-identical for the same market), ``load_synthetic`` reads one back, validated,
with the truth attached.

The generator is :mod:`models.data.synthetic` (which re-exports these names); the
truth.json layout: docs/data/synthetic.md.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.data.tables import (DataError, Market, validate_books, validate_open_interest, validate_quotes,
                                validate_trades)

TRUTH_FORMAT = "mm-calibration/synthetic-truth"
TRUTH_FORMAT_VERSION = 1


_README = """Synthetic market written by mm-calibration (models/data/synthetic.py).

trades.parquet  canonical trades: ts (int64 ns UTC), price, size, side (+1 buyer-
                initiated / -1 seller-initiated), trade_id. Rows of one sweep share
                ts and side.
quotes.parquet  canonical best bid/offer: ts, bid, ask, bid_size, ask_size.
open_interest.parquet  (only when the market has open interest) ts, oi.
books.parquet   (only with queues) L2 snapshots at each re-post: ts, side (+1 bid /
                -1 ask), level (ticks behind the touch), price, size.
queue_orders.parquet  (only with queues) the hypothetical queue orders with their true
                fills and markouts (docs/models/fills.md).
truth.json      the generator's ground truth: parameters under the names used by
                the fits and the prior bundle ("params"), the regime path per
                {bar_seconds} s bar ("regime_path"), the generator config and the
                observation config the truth refers to. See the module docstring
                of models/data/synthetic.py for the model and derivations.

asset {asset}, seed {seed}, duration {duration_s} s, {trades} trades, {quotes} quotes,
{arrivals} arrivals. Load with models.data.synthetic.load_synthetic(<this dir>).
"""


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path, compression="zstd", compression_level=3,
                   write_statistics=True, store_schema=True)


def write_market(market: Market, out_dir: str | Path) -> dict[str, Path]:
    """Write a synthetic market to ``out_dir`` (created if needed): trades.parquet,
    quotes.parquet, truth.json, README.txt, and open_interest.parquet when the market
    has open interest. Deterministic bytes: the same market
    gives byte-identical files (pyarrow writes no timestamps; JSON is written with
    fixed key order). Returns {name: path}."""
    if market.truth is None:
        raise ValueError("write_market needs a synthetic market with a truth dict")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"trades": out / "trades.parquet", "quotes": out / "quotes.parquet",
             "truth": out / "truth.json", "readme": out / "README.txt"}
    _write_parquet(market.trades, paths["trades"])
    _write_parquet(market.quotes, paths["quotes"])
    if market.open_interest is not None:
        paths["open_interest"] = out / "open_interest.parquet"
        _write_parquet(market.open_interest, paths["open_interest"])
    if market.books is not None and market.meta.get("queue_orders") is not None:
        paths["books"] = out / "books.parquet"
        _write_parquet(market.books, paths["books"])
        paths["queue_orders"] = out / "queue_orders.parquet"
        q = market.meta["queue_orders"]
        table = pa.Table.from_pandas(q, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[b"queue_attrs"] = json.dumps(q.attrs, sort_keys=True).encode()
        pq.write_table(table.replace_schema_metadata(meta), paths["queue_orders"], compression="zstd",
                       compression_level=3, write_statistics=True, store_schema=True)
    paths["truth"].write_text(json.dumps(market.truth, indent=1) + "\n", encoding="utf-8")
    c = market.truth.get("counts", {})
    paths["readme"].write_text(_README.format(
        bar_seconds=market.truth.get("bar_seconds"), asset=market.asset,
        seed=market.truth.get("seed"), duration_s=market.truth.get("duration_s"),
        trades=c.get("trades"), quotes=c.get("quotes"), arrivals=c.get("arrivals")),
        encoding="utf-8")
    return paths


def market_dir(path: str | Path, asset: str | None = None) -> Path:
    """The market folder at ``path``: ``path`` itself when it holds a truth.json, else
    its subfolder whose truth names ``asset`` (a folder of several markets, e.g. one
    ``mmcal simulate --asset NAME`` each). A DataError names the folder when none, or
    (without ``asset``) several, match."""
    d = Path(path)
    if not d.is_dir() or (d / "truth.json").is_file():
        return d
    found = {}
    for sub in sorted(p for p in d.iterdir() if p.is_dir() and (p / "truth.json").is_file()):
        try:
            name = json.loads((sub / "truth.json").read_text(encoding="utf-8")).get("asset")
        except (OSError, json.JSONDecodeError, AttributeError):
            continue  # not one of ours: load_synthetic on it would say why
        if isinstance(name, str):
            found.setdefault(name.upper(), sub)
    if not found:
        return d  # load_synthetic names the missing file
    if asset is None:
        if len(found) == 1:
            return next(iter(found.values()))
        raise DataError(d, "", f"holds {len(found)} synthetic markets ({', '.join(sorted(found))}): pick one "
                               "with an asset")
    if str(asset).upper() not in found:
        raise DataError(d, "", f"no synthetic market of asset {asset!r} in it (found {', '.join(sorted(found))})")
    return found[str(asset).upper()]


def load_synthetic(path: str | Path) -> Market:
    """Read a directory written by :func:`write_market`; tables validated (the
    optional open_interest.parquet too, when present), truth attached. Raises
    :class:`DataError` naming the file on any problem."""
    d = Path(path)
    if not d.is_dir():
        raise DataError(d, "", "not a directory (expected a synthetic market written by "
                               "`mmcal simulate`)")
    files = {n: d / f for n, f in (("trades", "trades.parquet"), ("quotes", "quotes.parquet"),
                                   ("truth", "truth.json"))}
    for f in files.values():
        if not f.is_file():
            raise DataError(f, "", "missing file")
    try:
        truth = json.loads(files["truth"].read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(files["truth"], "", f"cannot read JSON: {e}") from None
    if not isinstance(truth, dict) or truth.get("format") != TRUTH_FORMAT:
        raise DataError(files["truth"], "",
                        f"not a synthetic truth file (format != {TRUTH_FORMAT!r})")
    if truth.get("format_version") != TRUTH_FORMAT_VERSION:
        raise DataError(files["truth"], "format_version",
                        f"unsupported version {truth.get('format_version')!r} "
                        f"(expected {TRUTH_FORMAT_VERSION})")
    tables = {}
    for name in ("trades", "quotes"):
        try:
            df = pq.read_table(files[name]).to_pandas()
        except Exception as e:  # pyarrow raises several types for corrupt files
            raise DataError(files[name], "", f"cannot read parquet: {e}") from None
        tables[name] = (validate_trades if name == "trades" else validate_quotes)(df, files[name])
    oi, names = None, ["trades", "quotes", "truth"]
    oi_path = d / "open_interest.parquet"
    if oi_path.is_file():
        try:
            oi_df = pq.read_table(oi_path).to_pandas()
        except Exception as e:  # as above
            raise DataError(oi_path, "", f"cannot read parquet: {e}") from None
        oi = validate_open_interest(oi_df, oi_path)
        files["open_interest"] = oi_path
        names.append("open_interest")
    books, meta = None, {}
    if (d / "books.parquet").is_file() and (d / "queue_orders.parquet").is_file():
        bp, qp = d / "books.parquet", d / "queue_orders.parquet"
        try:
            books = validate_books(pq.read_table(bp).to_pandas(), bp)
        except DataError:
            raise
        except Exception as e:  # as above
            raise DataError(bp, "", f"cannot read parquet: {e}") from None
        try:
            qt = pq.read_table(qp)
            q = qt.to_pandas()
            q.attrs.update(json.loads((qt.schema.metadata or {}).get(b"queue_attrs", b"{}")))
        except Exception as e:  # as above
            raise DataError(qp, "", f"cannot read parquet: {e}") from None
        meta["queue_orders"] = q
        files["books"], files["queue_orders"] = bp, qp
        names += ["books", "queue_orders"]
    return Market(asset=str(truth.get("asset", "SYN")), source="synthetic",
                  trades=tables["trades"], quotes=tables["quotes"], books=books,
                  files=tuple(str(files[n]) for n in names),
                  truth=truth, meta=meta, open_interest=oi)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (used to check deterministic output)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
