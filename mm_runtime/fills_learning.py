"""Online learning of the fills model's cells from the quoter's own orders and fills.

A cell is (regime r, level l, queue bucket b) as in the bundle's ``params.fills`` block
(docs/models/fills.md, "Exported cells"): l = ticks behind the touch at placement, b = the
bucket of the queue ahead at placement (median trades).  numpy only (not traced); the
learned cells reach the jitted step as its :class:`~mm_runtime.tick_ladder.FillsArrays`
(same shapes: no retrace).

* **Fill hazard** (Gamma–Poisson, the conjugate pair of a piecewise-exponential hazard:
  Friedman 1982; Gelman et al., BDA3 §2.6): each resting order accrues exposure in the
  hazard piece k of its age (time since placement) and a fill is an event in the piece
  it happens in; with regime probabilities p_r at the time (the quoter's filter), cell
  (r, l, b, k) gets ``E += p_r dt`` and ``N += p_r`` per fill; the posterior is
  ``Gamma(a0 + N, b0 + E)`` (shape += fills, rate += exposure).  An order ends at its
  first fill (as the offline queue orders do); one still resting is a new order from
  its next placement.
* **Markout means** (normal–normal with known variance, BDA3 §2.5): a fill's markout at
  horizon h, ``x = -side (mid(t+h) - mid(t)) / mid(t)`` bps (positive = adverse, the
  offline definition), weighs ``p_r`` into its cell; with the single markout's variance
  ``v_rh = σ_r² h`` (σ_r the bundle's regime volatility, bps/√s: a Brownian mid over h;
  floored at 1e-6 bps²) the posterior of the cell's mean is
  ``prec = 1/s0² + W/v``, ``mean = (μ0/s0² + S/v) / prec`` with ``W = Σ p_r``,
  ``S = Σ p_r x``; a prior with infinite sd (an improper NIG in the bundle) has
  ``1/s0² = 0``, and without data it stays the prior.
* **Forgetting**: every sufficient statistic (N, E, W, S) decays by ``2^(-Δt/T½)``
  (``QuoterConfig.fills_half_life_s``) before each update, so the posterior returns to
  the bundle's prior with half-life T½ once the data stop (the estimators' power-prior
  forgetting, docs/runtime/estimators.md).

Zero exposure and no fills leave the prior exactly (no division by the data).
Derivation and checks: docs/runtime/queue_live.md.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any

import numpy as np

from .tick_ladder import FillsArrays, fills_arrays

__all__ = ["FillsLearner", "LEARNING_KIND"]

LEARNING_KIND = "mm_runtime.fills_learning"
_FIELDS = ("n", "e", "w", "s")


class FillsLearner:
    """The learned fills cells of one asset (module docstring).  ``view``: the bundle's
    :class:`~mm_runtime.view.FillsView`; ``sigma_bps`` (R,) the regimes' σ."""

    def __init__(self, view, sigma_bps, half_life_s: float, *, tau_s: float, horizon_s: float,
                 start: str = "glft"):
        self.view = view
        self.half_life_s = float(half_life_s)
        self.tau_s, self.horizon_s, self.start = float(tau_s), float(horizon_s), start
        R, L, Q, P = np.shape(view.hazard_shape)
        H = np.shape(view.markout_mean_bps)[-1]
        self.shape = (R, L, Q, P, H)
        self.cuts = np.asarray(view.cuts_s, dtype=float)
        self.edges = np.asarray(view.queue_edges, dtype=float)
        self.horizons = np.asarray(view.horizons_s, dtype=float)
        sig = np.asarray(sigma_bps, dtype=float)
        self.noise_var = np.maximum(sig[:, None] ** 2 * self.horizons[None, :], 1e-6)  # (R, H)
        sd0 = np.asarray(view.markout_sd_bps, dtype=float)
        self.prec0 = np.where(np.isfinite(sd0) & (sd0 > 0), 1.0 / np.where(sd0 > 0, sd0, 1.0) ** 2, 0.0)
        self.reset()

    # -- state --------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the prior: no evidence, no open orders, no pending markouts."""
        R, L, Q, P, H = self.shape
        self.n = np.zeros((R, L, Q, P))  # fills
        self.e = np.zeros((R, L, Q, P))  # exposure, s
        self.w = np.zeros((R, L, Q, H))  # markout weights
        self.s = np.zeros((R, L, Q, H))  # weighted markout sums, bps
        self.t = math.nan  # time of the last decay
        self.open: dict[tuple[int, int], list[float]] = {}  # (row, tick) -> [level, bucket, placed, last]
        self.pending: collections.deque = collections.deque()  # (due, j, l, b, p_r, side, mid0)
        self.n_fills = 0
        self.n_markouts = 0
        self.version = 0  # bumped on every change of the evidence

    def to_dict(self) -> dict[str, Any]:
        """The evidence as a JSON-able document (the live state file's ``fills_learning``)."""
        return {"kind": LEARNING_KIND, "shape": list(self.shape), "half_life_s": self.half_life_s,
                "t": None if math.isnan(self.t) else self.t, "fills": self.n_fills, "markouts": self.n_markouts,
                **{k: getattr(self, k).ravel().tolist() for k in _FIELDS}}

    def load(self, doc: dict[str, Any], origin: str) -> None:
        """Restore :meth:`to_dict`'s document; a ValueError naming ``origin`` and the field
        when it does not fit this bundle's cells (nothing is changed then)."""
        if not isinstance(doc, dict) or doc.get("kind") != LEARNING_KIND:
            raise ValueError(f"{origin}: fills_learning: not a {LEARNING_KIND} document")
        if doc.get("shape") != list(self.shape):
            raise ValueError(f"{origin}: fills_learning.shape: {doc.get('shape')} does not match this bundle's "
                             f"fills cells {list(self.shape)}")
        arrs = {}
        for k in _FIELDS:
            cur = getattr(self, k)
            try:
                a = np.asarray(doc.get(k), dtype=float)
            except (TypeError, ValueError):
                raise ValueError(f"{origin}: fills_learning.{k}: must be numbers") from None
            if a.size != cur.size or not np.all(np.isfinite(a)) or (k != "s" and np.any(a < 0)):
                raise ValueError(f"{origin}: fills_learning.{k}: expected {cur.size} finite numbers "
                                 f"({'any sign' if k == 's' else '>= 0'})")
            arrs[k] = a.reshape(cur.shape)
        t = doc.get("t")
        if t is not None and not (isinstance(t, int | float) and math.isfinite(t)):
            raise ValueError(f"{origin}: fills_learning.t: must be a finite time or null")
        for k, a in arrs.items():
            setattr(self, k, a)
        self.t = math.nan if t is None else float(t)
        self.n_fills, self.n_markouts = int(doc.get("fills", 0)), int(doc.get("markouts", 0))
        self.version += 1

    # -- updates ------------------------------------------------------------------------
    def decay(self, t: float) -> None:
        """Forget up to ``t``: every statistic × ``2^(-(t - t_last)/T½)``."""
        if math.isnan(self.t):
            self.t = t
            return
        dt = t - self.t
        if dt <= 0:
            return
        f = 0.5 ** (dt / self.half_life_s)
        for k in _FIELDS:
            getattr(self, k).__imul__(f)
        self.t = t

    def bucket(self, queue: float) -> int:
        """The queue bucket of ``queue`` median trades (NaN, inf → the last; as the step)."""
        if not math.isfinite(queue):
            return len(self.edges) - 1
        return int(np.searchsorted(self.edges, max(queue, 0.0), side="right") - 1)

    def expose(self, t: float, regime_probs) -> None:
        """Exposure of every open order from its last update to ``t``, split over the hazard
        pieces by its age, weighted by ``regime_probs``."""
        self.decay(t)
        if not self.open:
            return
        pr = np.asarray(regime_probs, dtype=float)
        hi = np.append(self.cuts[1:], np.inf)
        for rec in self.open.values():
            lv, b, placed, last = rec
            a0, a1 = last - placed, t - placed
            if a1 <= a0:
                continue
            ov = np.clip(np.minimum(hi, a1) - np.maximum(self.cuts, a0), 0.0, None)  # (P,)
            self.e[:, int(lv), int(b), :] += pr[:, None] * ov[None, :]
            rec[3] = t
        self.version += 1

    def place(self, t: float, regime_probs, orders) -> None:
        """The ladder now resting: ``orders`` = ``(row, tick, level, queue0, kept)``; exposure
        is accrued up to ``t`` first; an order not in ``orders`` ends (censored), a kept
        one goes on, a new one (or one whose last spell ended in a fill) starts at ``t``."""
        self.expose(t, regime_probs)
        L = self.shape[1]
        new = {}
        for row, k, level, q0, kept in orders:
            key = (int(row), int(k))
            if kept and key in self.open:
                new[key] = self.open[key]
            elif level <= L - 1:
                new[key] = [float(level), float(self.bucket(q0)), float(t), float(t)]
        self.open = new

    def fill(self, t: float, regime_probs, row: int, k: int, side: float, mid: float) -> bool:
        """Our order (``row``, tick ``k``) filled at ``t`` (mid ``mid``): one event in the
        piece of its age, its markouts scheduled; the order's spell ends.  Returns whether
        it was an open order (a fill of an unknown order is not learned from)."""
        self.expose(t, regime_probs)
        rec = self.open.pop((int(row), int(k)), None)
        if rec is None:
            return False
        lv, b, placed, _ = rec
        pr = np.asarray(regime_probs, dtype=float)
        piece = int(np.clip(np.searchsorted(self.cuts, t - placed, side="right") - 1, 0, len(self.cuts) - 1))
        self.n[:, int(lv), int(b), piece] += pr
        self.n_fills += 1
        if mid > 0:
            for j, h in enumerate(self.horizons):
                self.pending.append((t + float(h), j, int(lv), int(b), pr.copy(), float(side), float(mid)))
        self.version += 1
        return True

    def on_mid(self, t: float, mid: float) -> int:
        """Resolve the markouts due by ``t`` at the mid ``mid``; returns how many."""
        if not self.pending or not mid > 0:
            return 0
        due = [x for x in self.pending if x[0] <= t]
        if not due:
            return 0
        self.pending = collections.deque(x for x in self.pending if x[0] > t)
        self.decay(t)
        for _, j, lv, b, pr, side, m0 in due:
            x = -side * (mid - m0) / m0 * 1e4
            self.w[:, lv, b, j] += pr
            self.s[:, lv, b, j] += pr * x
        self.n_markouts += len(due)
        self.version += 1
        return len(due)

    # -- posterior ----------------------------------------------------------------------
    def hazard(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior Gamma ``(shape, rate)`` (R, L, Q, P)."""
        return np.asarray(self.view.hazard_shape) + self.n, np.asarray(self.view.hazard_rate) + self.e

    def markout(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior normal ``(mean, sd)`` (R, L, Q, H) of each cell's markout mean, bps."""
        mu0 = np.asarray(self.view.markout_mean_bps, dtype=float)
        data_prec = self.w / self.noise_var[:, None, None, :]
        prec = self.prec0 + data_prec
        safe = np.where(prec > 0, prec, 1.0)
        mean = np.where(prec > 0, (self.prec0 * mu0 + self.s / self.noise_var[:, None, None, :]) / safe, mu0)
        sd = np.where(prec > 0, 1.0 / np.sqrt(safe), np.inf)
        return mean, sd

    def data_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Share of the posterior from the data: ``E / (b0 + E)`` per hazard cell and
        ``(W/v) / (1/s0² + W/v)`` per markout cell (0 without data)."""
        b0 = np.asarray(self.view.hazard_rate, dtype=float)
        dh = self.e / (b0 + self.e)
        data_prec = self.w / self.noise_var[:, None, None, :]
        tot = self.prec0 + data_prec
        dm = np.where(tot > 0, data_prec / np.where(tot > 0, tot, 1.0), 0.0)
        return dh, dm

    def learned_view(self):
        """The bundle's :class:`~mm_runtime.view.FillsView` with the posterior cells."""
        a, b = self.hazard()
        m, sd = self.markout()
        return dataclasses.replace(self.view, hazard_shape=a, hazard_rate=b, markout_mean_bps=m, markout_sd_bps=sd)

    def arrays(self) -> FillsArrays:
        """The step's :class:`FillsArrays` of the posterior (same shapes as the prior's)."""
        return fills_arrays(self.learned_view(), self.tau_s, self.horizon_s, self.start)
