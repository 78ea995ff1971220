"""The queue-ahead estimate of a resting order from L2 data (prints and displayed sizes
at its price): the arithmetic shared by the offline queue orders
(``models.data.queue_l2``) and, later, the live quoter.  numpy only.

Rules (DESIGN.md section 3; hftbacktest's ``ProbQueueModel`` with
``PowerProbQueueFunc``, nkaz001/hftbacktest, written anew here):

* a print at our price on our side of the book of size q consumes the queue ahead
  first: ``ahead' = max(ahead - q, 0)``; it fills us (size: one infinitesimal unit)
  when ``q > ahead``;
* a new snapshot shows ``new`` at our price where the previous one showed ``prev``;
  the prints at our price since then (``traded``) already explain part of the change:
  ``chg = prev - new - traded``.  ``chg <= 0`` (the level grew): the new size queues
  behind us, ``ahead' = min(ahead, new)``.  ``chg > 0`` (cancellations): a share
  ``p = f(ahead) / (f(ahead) + f(behind))`` of it is taken from the part ahead,
  ``f(x) = x**power``, ``behind = max(prev - traded - ahead, 0)``; what the part behind
  cannot absorb comes from ahead too:
  ``ahead' = ahead - p*chg + min(behind - (1-p)*chg, 0)``, clipped to ``[0, new]``.

``power`` is ``ObservationConfig.queue_power`` (default 2: cancellations are likelier
at the end of the queue that is longer).  The rules and the measured error against
the exact FIFO queue on LOBSTER: docs/data/queue.md.
"""

from __future__ import annotations

import numpy as np

__all__ = ["share_ahead", "after_print", "after_depth"]


def share_ahead(ahead, behind, power: float):
    """Probability that a size decrease at our price is from the part ahead of us:
    ``f(ahead) / (f(ahead) + f(behind))``, ``f(x) = x**power`` (hftbacktest's
    ``PowerProbQueueFunc``); 1 when nothing is behind, 0 when nothing is ahead."""
    a = np.maximum(np.asarray(ahead, dtype=float), 0.0)
    b = np.maximum(np.asarray(behind, dtype=float), 0.0)
    fa, fb = a ** power, b ** power
    tot = fa + fb
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(tot > 0, fa / np.where(tot > 0, tot, 1.0), 0.0)
    p = np.where(b <= 0, np.where(a > 0, 1.0, 0.0), p)
    return p if p.ndim else float(p)


def after_print(ahead, qty):
    """A print of ``qty`` at our price against our side: ``(ahead', filled)`` with
    ``ahead' = max(ahead - qty, 0)`` and ``filled = qty > ahead`` (the print reached us)."""
    a = np.asarray(ahead, dtype=float)
    q = np.asarray(qty, dtype=float)
    filled = q > a
    out = np.maximum(a - q, 0.0)
    if out.ndim == 0:
        return float(out), bool(filled)
    return out, filled


def after_depth(ahead, prev, new, traded, power: float):
    """The queue ahead after a snapshot changes our price's displayed size from ``prev``
    to ``new``, ``traded`` of it explained by prints at our price since ``prev`` (see
    the module docstring for the rule)."""
    a = np.asarray(ahead, dtype=float)
    prev = np.asarray(prev, dtype=float)
    new = np.maximum(np.asarray(new, dtype=float), 0.0)
    chg = prev - new - np.asarray(traded, dtype=float)
    behind = np.maximum(prev - np.asarray(traded, dtype=float) - a, 0.0)
    p = np.asarray(share_ahead(a, behind, power), dtype=float)
    dec = a - p * chg + np.minimum(behind - (1.0 - p) * chg, 0.0)
    out = np.where(chg > 0, dec, a)
    out = np.clip(out, 0.0, new)
    return float(out) if out.ndim == 0 else out
