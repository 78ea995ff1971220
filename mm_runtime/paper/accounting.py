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

__all__ = ["apply_fills", "mark_to_market"]


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
