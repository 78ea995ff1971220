"""One entry point for every data source.

``load(source, path, asset=None, **kw)`` dispatches to
``models.data.lobster.load_lobster``, ``models.data.binance.load_binance``,
``models.data.hyperliquid.load_hyperliquid`` or ``models.data.synthetic_io.load_synthetic``
(each module documents its own mapping rules) and returns a validated
:class:`~models.data.tables.Market`. ``source="auto"`` picks the loader with
:func:`~models.data.io.detect_source` (format sniffing; re-exported here).
``replay_data(market)`` turns a market into the arrays paper trading replays.

The I/O helpers the source loaders share live in :mod:`models.data.io`; the loaders
import them from there, and this module imports the loaders, so the imports run one
way. Timing convention shared by every loader: docs/data/loaders.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.data.binance import load_binance
from models.data.hyperliquid import load_hyperliquid
from models.data.io import check_format, detect_source, require_path
from models.data.lobster import load_lobster
from models.data.synthetic_io import load_synthetic, market_dir
from models.data.tables import SOURCES, DataError, Market

__all__ = ["load", "replay_data", "detect_source", "check_format"]


# --------------------------------------------------------------------------- dispatch

def load(source: str, path, asset: str | None = None, **kw: Any) -> Market:
    """Load ``path`` with the loader of ``source`` (one of lobster, binance,
    hyperliquid, synthetic, or ``auto`` to sniff it). Extra keywords go to the loader.
    ``asset`` picks one asset where the path holds several; the market's asset is
    always the data's own (read from the data, or its file names where the format
    has no such field), and an ``asset`` that names another is a DataError."""
    if source == "auto":
        p = require_path(path) if not isinstance(path, (list, tuple)) else path
        first = p[0] if isinstance(p, (list, tuple)) else p
        found = detect_source(first)
        if found is None:
            raise DataError(first, "", "cannot tell the data source from the file; "
                            f"pass source= one of {list(SOURCES)}")
        source = found
    if source == "lobster":
        return load_lobster(path, asset, **kw)
    if source == "binance":
        return load_binance(path, asset, **kw)
    if source == "hyperliquid":
        return load_hyperliquid(path, asset, **kw)
    if source == "synthetic":
        path = market_dir(path, asset)
        market = load_synthetic(path)
        if asset is not None and str(market.asset).upper() != str(asset).upper():
            # the asset is the market's own (truth.json), never relabelled
            raise DataError(Path(path) / "truth.json", "field 'asset'",
                            f"the market is {market.asset!r}, not {asset!r}")
        return market
    raise ValueError(f"unknown data source {source!r}; expected one of {list(SOURCES)} or 'auto'")


# --------------------------------------------------------------------------- replay

def replay_data(market: Market, books: bool = True):
    """The market's trades and best quotes as :class:`mm_runtime.paper.replay.ReplayData`
    (numpy arrays, seconds since the epoch), for paper trading.

    With ``books`` and a market loaded with its L2 snapshots (``with_books=True``), the
    long ``books`` table becomes wide arrays, one row per snapshot timestamp (the last
    state at that ts), ``L`` = the deepest level in the table; a level a snapshot lacks
    has price NaN and size 0.  ``tick`` is the price grid inferred from the trade,
    quote and book prices (:func:`mm_runtime.paper.replay.infer_tick`; 0 if they are
    not on one grid).  A market loaded with its order-level messages (LOBSTER,
    ``with_messages=True``) carries them as the ``msg_*`` arrays (time, event type, order
    id, size, price, direction; halts' prices are LOBSTER's -1/0/1 codes): the replay's
    ``l3`` queue model, which ``auto`` then picks."""
    from mm_runtime.paper.replay import ReplayData, infer_tick

    tr, qt = market.trades, market.quotes
    prices = [tr["price"].to_numpy(float), qt["bid"].to_numpy(float), qt["ask"].to_numpy(float)]
    book = {}
    bk = market.books if books else None
    if bk is not None and len(bk):
        bk = bk.drop_duplicates(["ts", "side", "level"], keep="last")
        uts, row = np.unique(bk["ts"].to_numpy(np.int64), return_inverse=True)
        L = int(bk["level"].max()) + 1
        lvl = bk["level"].to_numpy(np.int64)
        side = bk["side"].to_numpy()
        for name, sgn in (("bid", 1), ("ask", -1)):
            px = np.full((uts.size, L), np.nan)
            sz = np.zeros((uts.size, L))
            m = side == sgn
            px[row[m], lvl[m]] = bk["price"].to_numpy(float)[m]
            sz[row[m], lvl[m]] = bk["size"].to_numpy(float)[m]
            book[f"book_{name}_px"], book[f"book_{name}_sz"] = px, sz
        book["book_ts"] = uts / 1e9
        prices.append(bk["price"].to_numpy(float))
    msgs = getattr(market, "messages", None)
    if msgs is not None and len(msgs):
        book.update(msg_ts=msgs["ts"].to_numpy(np.int64) / 1e9, msg_type=msgs["type"].to_numpy(np.int64),
                    msg_id=msgs["order_id"].to_numpy(np.int64), msg_size=msgs["size"].to_numpy(float),
                    msg_price=msgs["price"].to_numpy(float), msg_dir=msgs["direction"].to_numpy(np.int64))
    return ReplayData(
        asset=market.asset, source=market.source,
        trade_ts=tr["ts"].to_numpy(np.int64) / 1e9,
        trade_price=tr["price"].to_numpy(float), trade_size=tr["size"].to_numpy(float),
        trade_side=tr["side"].to_numpy(float),
        quote_ts=qt["ts"].to_numpy(np.int64) / 1e9,
        bid=qt["bid"].to_numpy(float), ask=qt["ask"].to_numpy(float),
        tick=infer_tick(np.concatenate(prices)),
        **book,
    ).check()
