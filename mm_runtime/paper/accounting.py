"""Cash / position bookkeeping shared by the replay and the Avellaneda–Stoikov market.

One rule, used everywhere a simulated fill happens, so the synthetic market that is
checked against a published table validates the same code the replay runs:

    position += q                      (q > 0 bought, q < 0 sold, base units)
    cash     -= q · price + fee · |q| · price

``fee`` is the maker fee as a fraction of notional (negative = rebate).  Value marked
at a price m is ``cash + position · m`` (:func:`mark_to_market`).  Works on floats and
on numpy arrays (vectorized over paths).
"""

from __future__ import annotations

import numpy as np

__all__ = ["apply_fills", "mark_to_market", "trade_through"]


def apply_fills(cash, position, price, qty, fee: float = 0.0):
    """``(cash, position)`` after filling ``qty`` (signed, base units) at ``price``.

    ``qty == 0`` changes nothing (so a mask times a size can be passed directly).
    """
    notional = np.multiply(qty, price)
    cash = cash - notional - fee * np.abs(notional)
    return cash, position + qty


def mark_to_market(cash, position, mark):
    """Account value at ``mark``: ``cash + position · mark``."""
    return cash + np.multiply(position, mark)


def trade_through(prices, sizes, trade_price: float, side: float, size: float) -> list[tuple[int, float]]:
    """The live runner's paper fill rule (docs/runtime/live.md "Paper fills"): one public
    trade (``side`` +1 a buy lifting asks, -1 a sell hitting bids) fills the resting
    orders of the side it hits (``prices``/``sizes`` of that side's levels) priced
    strictly through it, nearest first, up to the trade's size.  ``sizes`` is decreased
    in place; returns ``[(level, filled size)]`` in fill order.  The reconciliation of a
    live session (:mod:`mm_runtime.paper.reconcile`) re-runs the session's ladders
    through this same rule."""
    through = (sizes > 0) & ((prices < trade_price) if side > 0 else (prices > trade_price))
    out = []
    left = size
    for k in (np.argsort(prices) if side > 0 else np.argsort(-prices)):
        if not through[k] or left <= 0:
            continue
        q = min(float(sizes[k]), left)
        left -= q
        sizes[k] -= q
        out.append((int(k), q))
    return out
