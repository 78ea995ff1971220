"""The parameter-free arrays of the Hawkes likelihood, derived once from
:class:`~models.hawkes.observations.HawkesObs` (numpy, O(N)): per event
(:class:`LikArrays`, :func:`prepare`, for the pointwise terms) and in block layout
(:class:`BlockArrays`, :func:`prepare_blocks`, for the fast total).

Times in seconds, regime times in seconds per regime. Derivation of the
recurrence they feed: docs/models/hawkes.md.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mm_runtime.vocabulary import REGIMES
from models.hawkes.observations import HawkesObs


# --------------------------------------------------------------------------- per event (pointwise terms)
class LikArrays(NamedTuple):
    """Parameter-free arrays derived once from :class:`HawkesObs` (a JAX pytree).

    ``dt``: t_i - t_{i-1} within the asset (0 at an asset's first event);
    ``keep``: 0.0 at an asset's first event, else 1.0 (cuts the recurrence);
    ``prev``: (N, 2) one-hot side of the previous event (0 at the first);
    ``grp``: index of the first event of i's tie group, None without ties;
    ``mu_idx``: flat index (asset, regime, side) into mu (A, 4, 2);
    ``n_idx``: flat index of n[asset, side_i, source=0] in n (A, 2, 2);
    ``src_idx``: flat index (asset, source 0) into colsum(n) (A, 2), None for one asset;
    ``asset``: asset index (None for one asset);
    ``reg_dt``: (N, 4) seconds in each regime inside (t_{i-1}, t_i] (from 0 for
    the first); ``last``: (A,) index of each asset's last event; ``own_last``: (A, 2)
    one-hot side of it; ``tail``: (A,) T - t_last; ``tail_reg``: (A, 4) regime time
    in (t_last, T]. Soft regimes: ``mu_w`` (N, 4) the regime probabilities of each
    event's bar (its baseline is ``sum_r mu_w[r] mu[asset, r, side]``; ``mu_idx`` is then
    the flat index of regime 0, regime r at ``mu_idx + 2 r``), None = hard regimes.
    """

    dt: np.ndarray
    keep: np.ndarray
    prev: np.ndarray
    grp: np.ndarray | None
    mu_idx: np.ndarray
    n_idx: np.ndarray
    src_idx: np.ndarray | None
    asset: np.ndarray | None
    reg_dt: np.ndarray
    last: np.ndarray
    own_last: np.ndarray
    tail: np.ndarray
    tail_reg: np.ndarray
    mu_w: np.ndarray | None = None


def _regime_clock(edges: np.ndarray, regs: np.ndarray, T: float, x: np.ndarray, weights=None):
    """Cumulative time in each regime on [0, x] (x sorted within [0, T]); also the bar of x.
    ``weights``: the bars' regime probabilities (soft regimes), default one-hot on ``regs``."""
    R = len(REGIMES)
    ends = np.minimum(np.append(edges[1:], T), T)
    ln = np.clip(ends - edges, 0.0, None)
    onehot = np.zeros((len(edges), R))
    onehot[np.arange(len(edges)), regs.astype(int)] = 1.0
    if weights is not None:
        onehot = np.asarray(weights, dtype=float)
    cum = np.vstack([np.zeros(R), np.cumsum(onehot * ln[:, None], axis=0)])  # before bar k
    k = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 1)
    within = np.clip(x - edges[k], 0.0, ln[k])
    C = cum[k] + onehot[k] * within[:, None]
    return C, k


def prepare(obs: HawkesObs) -> LikArrays:
    """Precompute the parameter-free arrays of the likelihood (O(N log n_bars))."""
    A, N = obs.n_assets, obs.n_events
    t = np.asarray(obs.t, dtype=np.float64)
    side = obs.side.astype(np.int64)
    asset = obs.asset.astype(np.int64)
    first = np.ones(N, dtype=bool)
    first[1:] = asset[1:] != asset[:-1]
    dt = np.zeros(N)
    dt[1:] = t[1:] - t[:-1]
    dt[first] = 0.0
    prev = np.zeros((N, 2))
    prev[np.flatnonzero(~first), side[np.flatnonzero(~first) - 1]] = 1.0
    # tie groups (within an asset): first index of each run of equal times
    newgrp = first | np.concatenate([[True], dt[1:] != 0.0])
    grp = None
    if not newgrp.all():
        grp = np.maximum.accumulate(np.where(newgrp, np.arange(N), 0))
    reg_dt = np.zeros((N, len(REGIMES)))
    last = np.zeros(A, dtype=np.int64)
    tail = np.zeros(A)
    tail_reg = np.zeros((A, len(REGIMES)))
    for a in range(A):
        idx = np.flatnonzero(asset == a)
        ta = t[idx]
        T = float(obs.duration_s[a])
        edges = np.asarray(obs.bar_edges[a], dtype=float)
        regs = np.asarray(obs.bar_regime[a])
        W = obs.bar_weights(a) if obs.soft else None
        C, k = _regime_clock(edges, regs, T, np.append(ta, T), W)
        Ce, ke = C[:-1], k[:-1]
        d = np.diff(np.vstack([np.zeros(len(REGIMES)), Ce]), axis=0)
        # same bar as the previous event: exact dt in that bar's regime (no cancellation)
        same = np.zeros(len(idx), dtype=bool)
        same[1:] = ke[1:] == ke[:-1]
        same[0] = ke[0] == 0
        dd = np.diff(np.append(0.0, ta))
        d[same] = 0.0
        if W is None:
            d[same, regs[ke[same]].astype(int)] = dd[same]
        else:
            d[same] = dd[same, None] * W[ke[same]]
        reg_dt[idx] = d
        last[a] = idx[-1]
        tail[a] = T - ta[-1]
        tail_reg[a] = C[-1] - C[-2]
        if ke[-1] == k[-1]:
            tail_reg[a] = 0.0
            if W is None:
                tail_reg[a, int(regs[ke[-1]])] = tail[a]
            else:
                tail_reg[a] = tail[a] * W[ke[-1]]
    own_last = np.zeros((A, 2))
    own_last[np.arange(A), side[last]] = 1.0
    soft = obs.soft
    regime = np.zeros(N, np.int64) if soft else obs.regime.astype(np.int64)
    return LikArrays(
        dt=dt, keep=(~first).astype(np.float64), prev=prev, grp=grp,
        mu_idx=(asset * len(REGIMES) + regime) * 2 + side,
        mu_w=obs.event_prob() if soft else None,
        n_idx=(asset * 2 + side) * 2,
        src_idx=None if A == 1 else asset * 2,
        asset=None if A == 1 else asset,
        reg_dt=reg_dt, last=last, own_last=own_last, tail=tail, tail_reg=tail_reg,
    )


# --------------------------------------------------------------------------- block layout (fast total)
BLOCK = 128
"""Largest number of events per block for the JAX likelihood (rows scanned with
``lax.scan``); :func:`auto_block` picks smaller blocks for smaller data."""


def auto_block(n_events: int) -> int:
    """Events per block for ``n_events``: the power of two nearest sqrt(N)/4, in
    [8, BLOCK] (small data wants small blocks; measurements: docs/models/hawkes.md,
    "Block size")."""
    b = 2 ** round(np.log2(max(np.sqrt(max(int(n_events), 1)) / 4.0, 1.0)))
    return int(min(max(b, 8), BLOCK))


class BlockArrays(NamedTuple):
    """Parameter-free arrays for the fast *total* log-likelihood, in block layout.

    Events are laid out in blocks of ``B`` consecutive events, stored as ``(B, nb)``
    arrays whose row ``j`` holds the ``j``-th event of every block (event
    ``b*B + j`` at ``[j, b]``). Each asset is front-padded to whole blocks with
    inert events (``valid = 0``, ``keep = 0``), so every asset's last event sits in
    row ``B - 1`` of its last block (why this layout: docs/models/hawkes.md, "The
    block layout and the three-pass sweep").

    Rows: ``dt``, ``keep`` (0 at an asset's first event and on padding), ``prev0``,
    ``prev1`` (one-hot side of the previous event), ``tie0``, ``tie1`` (numbers of
    earlier events of each side at the same timestamp: ``S = X - tie``, None when
    there are no ties), ``valid``, ``side`` (0/1), ``mu_idx`` (flat (asset, regime,
    side) index into mu (A, 4, 2)), ``asset`` (None for one asset). Per asset:
    ``counts`` (A, 2) events per source side, ``regime_time`` (A, 4) s,
    ``last_block`` (A,), ``own_last`` (A, 2), ``tail`` (A,) = T - t_last. Soft regimes:
    ``mu_w`` (B, nb, 4) the regime probabilities of each event's bar, ``mu_idx`` then
    indexing regime 0 (as in :class:`LikArrays`); None = hard regimes.
    """

    dt: np.ndarray
    keep: np.ndarray
    prev0: np.ndarray
    prev1: np.ndarray
    tie0: np.ndarray | None
    tie1: np.ndarray | None
    valid: np.ndarray
    side: np.ndarray
    mu_idx: np.ndarray
    asset: np.ndarray | None
    counts: np.ndarray
    regime_time: np.ndarray
    last_block: np.ndarray
    own_last: np.ndarray
    tail: np.ndarray
    mu_w: np.ndarray | None = None


def prepare_blocks(obs: HawkesObs, block: int | None = None) -> BlockArrays:
    """Block layout of :class:`BlockArrays` (numpy; O(N)); ``block`` events per
    block, by default :func:`auto_block` of the event count."""
    block = auto_block(obs.n_events) if block is None else int(block)
    A = obs.n_assets
    t = np.asarray(obs.t, dtype=np.float64)
    side = obs.side.astype(np.int64)
    asset = obs.asset.astype(np.int64)
    soft = obs.soft
    regime = np.zeros(len(t), np.int64) if soft else obs.regime.astype(np.int64)
    eprob = obs.event_prob() if soft else None
    cols: dict[str, list[np.ndarray]] = {k: [] for k in
                                         ("dt", "keep", "prev0", "prev1", "tie0", "tie1", "valid",
                                          "side", "mu_idx", "asset", "mu_w")}
    counts = np.zeros((A, 2))
    last_block = np.zeros(A, dtype=np.int64)
    own_last = np.zeros((A, 2))
    tail = np.zeros(A)
    nblocks = 0
    any_tie = False
    for a in range(A):
        idx = np.flatnonzero(asset == a)
        ta, sa, ra = t[idx], side[idx], regime[idx]
        n_a = len(idx)
        pad = (-n_a) % block
        m = pad + n_a
        dt = np.zeros(m)
        dt[pad + 1:] = np.diff(ta)
        keep = np.zeros(m)
        keep[pad + 1:] = 1.0
        prev = np.zeros((m, 2))
        prev[np.arange(pad + 1, m), sa[:-1]] = 1.0
        # earlier same-timestamp events per side (ties do not excite each other)
        tie = np.zeros((m, 2))
        if n_a > 1 and np.any(dt[pad + 1:] == 0.0):
            any_tie = True
            newgrp = np.concatenate([[True], np.diff(ta) != 0.0])
            g = np.maximum.accumulate(np.where(newgrp, np.arange(n_a), 0))
            for s_ in (0, 1):
                c = np.cumsum(sa == s_)                 # events of side s_ in [0, i]
                before_grp = np.where(g > 0, c[g - 1], 0)
                tie[pad:, s_] = np.concatenate([[0], c[:-1]]) - before_grp
        valid = np.zeros(m)
        valid[pad:] = 1.0
        sd = np.zeros(m, dtype=np.int64)
        sd[pad:] = sa
        mi = np.zeros(m, dtype=np.int64)
        mi[pad:] = (a * len(REGIMES) + ra) * 2 + sa
        for k, v in (("dt", dt), ("keep", keep), ("prev0", prev[:, 0]), ("prev1", prev[:, 1]),
                     ("tie0", tie[:, 0]), ("tie1", tie[:, 1]), ("valid", valid), ("side", sd),
                     ("mu_idx", mi), ("asset", np.full(m, a, dtype=np.int64))):
            cols[k].append(v)
        if soft:
            w = np.zeros((m, len(REGIMES)))
            w[:pad, 0] = 1.0                  # padding: a positive baseline (its log-term is masked)
            w[pad:] = eprob[idx]
            cols["mu_w"].append(w)
        counts[a] = np.bincount(sa, minlength=2)
        nblocks += m // block
        last_block[a] = nblocks - 1
        own_last[a, sa[-1]] = 1.0
        tail[a] = float(obs.duration_s[a]) - ta[-1]

    def lay(v, dtype):
        v = np.concatenate(v).astype(dtype)
        return np.ascontiguousarray(v.reshape(-1, block).T)

    return BlockArrays(
        dt=lay(cols["dt"], np.float64), keep=lay(cols["keep"], np.float64),
        prev0=lay(cols["prev0"], np.float64), prev1=lay(cols["prev1"], np.float64),
        tie0=lay(cols["tie0"], np.float64) if any_tie else None,
        tie1=lay(cols["tie1"], np.float64) if any_tie else None,
        valid=lay(cols["valid"], np.float64), side=lay(cols["side"], np.int32),
        mu_idx=lay(cols["mu_idx"], np.int32),
        asset=None if A == 1 else lay(cols["asset"], np.int32),
        counts=counts, regime_time=obs.regime_time(), last_block=last_block,
        own_last=own_last, tail=tail,
        mu_w=np.ascontiguousarray(np.concatenate(cols["mu_w"]).reshape(-1, block, len(REGIMES))
                                  .transpose(1, 0, 2)) if soft else None,
    )

