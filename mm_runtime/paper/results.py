"""The replay's figures: markouts of the fills, PnL per block, drawdown and the
summary table (:func:`summarize_replay`) of a :class:`~mm_runtime.paper.replay.ReplayResult`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..vocabulary import DEPTH_BUCKETS_BPS

if TYPE_CHECKING:
    from .replay import ReplayData, ReplayResult

__all__ = ["MIN_BLOCKS", "auto_block_s", "block_edges", "block_pnl", "edge_terms", "fill_calibration", "learning", "markouts",
           "no_quote_rows", "quoting_note", "summarize_replay"]

MIN_BLOCKS = 10
"""Fewer blocks than this and a block comparison (Sharpe, the paired interval) says
little: the report says so, and ``auto_block_s`` picks blocks short enough."""

_NICE_BLOCKS_S = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)


def auto_block_s(span_s: float, refresh_s: float) -> float:
    """The default block length (s): the longest of 1 s … 1 h, and at least one
    refresh, that gives ``MIN_BLOCKS`` whole blocks over ``span_s``; one refresh when
    the replay is too short for that (then the report says the blocks are too few)."""
    ok = [b for b in _NICE_BLOCKS_S if b >= refresh_s and span_s / b >= MIN_BLOCKS - 1e-9]
    return max(ok) if ok else float(refresh_s)


def quoting_note(not_quoting: dict[str, int], refreshes: int) -> str | None:
    """One line on the refreshes that left no order resting, with the commonest
    reason (``not_quoting``: reason -> refreshes); None when every refresh quoted."""
    missed = sum(not_quoting.values())
    if not missed or not refreshes:
        return None
    (top, n_top), *rest = sorted(not_quoting.items(), key=lambda kv: -kv[1])
    more = f"; also {len(rest)} other reason(s), {missed - n_top} refreshes" if rest else ""
    if missed >= refreshes:
        return f"never quoted ({refreshes} refreshes): {top}{more}"
    share = f"{missed / refreshes:.0%}"
    return f"no quote in {missed} of {refreshes} refreshes ({share}); most often ({n_top}): {top}{more}"


def no_quote_rows(summaries: dict[str, dict]) -> list[dict]:
    """The refreshes that left no order resting, by configuration and reason: one row
    ``{config, reason, refreshes, share}`` per reason of a summary's ``not_quoting``
    (reason -> refreshes), commonest first; ``share`` = refreshes / the replay's
    refreshes. Empty when every refresh of every configuration quoted."""
    rows = []
    for name, s in summaries.items():
        total = s.get("refreshes") or 0
        for reason, n in sorted((s.get("not_quoting") or {}).items(), key=lambda kv: -kv[1]):
            rows.append({"config": name, "reason": reason, "refreshes": int(n),
                         "share": n / total if total else None})
    return rows


def markouts(data: ReplayData, fills: dict[str, np.ndarray], horizons) -> dict[str, np.ndarray]:
    out = {}
    mids = 0.5 * (data.bid + data.ask)
    for h in horizons:
        th = fills["ts"] + h
        idx = np.searchsorted(data.quote_ts, th, side="right") - 1
        ok = (idx >= 0) & (th <= data.quote_ts[-1])
        m = np.where(ok, mids[np.clip(idx, 0, len(mids) - 1)], np.nan)
        out[f"markout_{h:g}s_bps"] = fills["side"] * (m - fills["price"]) / fills["price"] * 1e4 if len(th) else np.zeros(0)
    return out


def _max_drawdown(equity: np.ndarray) -> float:
    if equity.size == 0:
        return 0.0
    peak = np.maximum.accumulate(np.concatenate([[0.0], equity]))[1:]
    return float(np.max(peak - equity))


def fill_calibration(quotes: list[tuple], fills: dict[str, np.ndarray], latency_s: float, end_s: float,
                     horizon_s: float, price_rtol: float = 1e-9) -> dict:
    """Predicted against realised fill rates by level (the ladder's ``fill_prob``).

    ``quotes``: one ``(t, t_next, price (2, K), size (2, K), fill_prob (2, K))`` per
    refresh with a ladder; an order quoted at ``t`` rests from ``t + latency`` until the
    next ladder replaces it (``t_next + latency``, the end of the replay at the last).
    Realised: any fill of ours on that side at that price in that interval.  The ladder
    predicts a fill within ``horizon_s`` (the tick ladder: the refresh interval τ; the
    depth ladder: its first-passage horizon), so compare like with like only when the
    resting time is about that long (``mean_rest_s`` says).  Per level: orders, mean
    predicted, realised share with its binomial sd, and the Brier score over all."""
    if not quotes:
        return {"horizon_s": float(horizon_s), "levels": [], "orders": 0}
    K = np.asarray(quotes[0][2]).shape[1]
    ft = np.asarray(fills.get("ts", []), dtype=float)
    fs = np.asarray(fills.get("side", []), dtype=float)
    fp = np.asarray(fills.get("price", []), dtype=float)
    order = np.argsort(ft, kind="stable")
    ft, fs, fp = ft[order], fs[order], fp[order]
    pred, real, lev, rest = [], [], [], []
    for t, t_next, px, sz, pf in quotes:
        a, b = t + latency_s, min(t_next + latency_s, end_s)
        lo, hi = np.searchsorted(ft, a, side="left"), np.searchsorted(ft, b, side="left")
        for row, side in ((0, 1.0), (1, -1.0)):
            for k in range(K):
                if sz[row, k] <= 0:
                    continue
                p = float(px[row, k])
                hit = np.any((fs[lo:hi] == side) & (np.abs(fp[lo:hi] - p) <= price_rtol * p))
                pred.append(float(pf[row, k]))
                real.append(float(hit))
                lev.append(k)
                rest.append(b - a)
    pred_a, real_a, lev_a = np.asarray(pred), np.asarray(real), np.asarray(lev)
    levels = []
    for k in range(K):
        m = lev_a == k
        n = int(m.sum())
        if n == 0:
            continue
        r = float(real_a[m].mean())
        levels.append({"level": k, "orders": n, "predicted": float(pred_a[m].mean()), "realised": r,
                       "realised_sd": math.sqrt(max(r * (1 - r), 1e-12) / n)})
    return {"horizon_s": float(horizon_s), "mean_rest_s": float(np.mean(rest)), "orders": len(pred),
            "brier": float(np.mean((pred_a - real_a) ** 2)), "levels": levels}


def edge_terms(ladders: list[tuple], tick: float, fee_bps: float, shortfall=None) -> dict:
    """The tick ladder's edge E = δ - s - fee - m by level behind the touch, averaged over
    the refreshes (what the quoter predicted, quoted or not): ``ladders`` holds one
    ``(bid, ask, price (2, K), depth_bps (2, K), edge_bps (2, K), fill_prob (2, K))`` per
    valid refresh; slots off the fitted grid (``fill_prob`` 0) are left out; ``shortfall``
    (L,) the step's capture shortfall s per level (bps; None = 0).  Per level: slots, mean
    spread capture δ at placement (bps from the mid), the shortfall s, the spread capture
    at the fill δ - s, mean predicted markout m = δ - s - fee - E, mean E, the share with
    E > 0 and the mean P(fill within τ)."""
    sf = np.zeros(0) if shortfall is None else np.asarray(shortfall, dtype=float)
    rows: dict[int, list] = {}
    for b, a, px, dep, edge, pf in ladders:
        px, dep, edge, pf = (np.asarray(x, dtype=float) for x in (px, dep, edge, pf))
        for row, touch, sign in ((0, b, 1.0), (1, a, -1.0)):
            if not (touch > 0 and tick > 0):
                continue
            on = pf[row] > 0
            lv = np.rint(sign * (touch - px[row][on]) / tick).astype(int)
            for k, d, e, p in zip(lv, dep[row][on], edge[row][on], pf[row][on], strict=True):
                s = float(sf[k]) if 0 <= k < len(sf) else 0.0
                rows.setdefault(int(k), []).append((d, s, d - s - fee_bps - e, e, p))
    levels = []
    for k in sorted(rows):
        x = np.asarray(rows[k])
        levels.append({"level": k, "slots": len(x), "spread_capture_bps": float(x[:, 0].mean()),
                       "capture_shortfall_bps": float(x[:, 1].mean()),
                       "capture_at_fill_bps": float((x[:, 0] - x[:, 1]).mean()),
                       "markout_bps": float(x[:, 2].mean()), "edge_bps": float(x[:, 3].mean()),
                       "positive_share": float(np.mean(x[:, 3] > 0)), "fill_prob": float(x[:, 4].mean())})
    return {"fee_bps": float(fee_bps), "levels": levels}


def summarize_replay(res: ReplayResult) -> dict:
    """PnL, Sharpe, drawdown, fills, markouts by depth bucket, inventory statistics,
    all from the one set of curves: PnL, final position and last mid are the last
    point of the equity curve (the end of the replay), and the blocks sum to the PnL.

    Sharpe: mean / sd of the PnL change per ``block_s`` block, times √(blocks per
    day of 86,400 s) — a per-day Sharpe of the replayed window (not annualised: one
    day of data says nothing about a year).
    """
    cfg = res.config["replay"]
    f = res.fills
    n = len(f["ts"])
    h0 = cfg["markout_horizons_s"][0]
    mk = f.get(f"markout_{h0:g}s_bps", np.zeros(0))
    edges = list(DEPTH_BUCKETS_BPS) + [math.inf]
    by_bucket = {}
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (f["depth_bps"] >= lo) & (f["depth_bps"] < hi) if n else np.zeros(0, bool)
        vals = mk[sel] if n else np.zeros(0)
        vals = vals[np.isfinite(vals)]
        key = f"[{lo:g},{hi:g})" if math.isfinite(hi) else f"[{lo:g},inf)"
        by_bucket[key] = {"fills": int(sel.sum()) if n else 0,
                          "mean_markout_bps": float(vals.mean()) if vals.size else None,
                          "mean_depth_bps": float(f["depth_bps"][sel].mean()) if n and sel.any() else None}
    blocks = block_pnl(res, cfg["block_s"])
    sharpe = None
    if blocks.size >= 2 and blocks.std(ddof=1) > 0:
        sharpe = float(blocks.mean() / blocks.std(ddof=1) * math.sqrt(86_400.0 / cfg["block_s"]))
    finite_mk = mk[np.isfinite(mk)] if n else np.zeros(0)
    notional = float(np.sum(f["price"] * f["size"])) if n else 0.0
    dur = float(res.t[-1] - res.t[0]) if res.t.size > 1 else 0.0
    pos = res.position
    refreshes = max(res.t.size - 1, 0)  # the last point is the end, not a refresh
    quoted = np.isfinite(res.our_bid[:refreshes]) | np.isfinite(res.our_ask[:refreshes])
    return {
        "pnl": float(res.equity[-1]) if res.t.size else 0.0,
        "sharpe_per_day": sharpe,
        "max_drawdown": _max_drawdown(res.equity),
        "fills": n,
        "fills_bid": int(np.sum(f["side"] > 0)) if n else 0,
        "fills_ask": int(np.sum(f["side"] < 0)) if n else 0,
        "volume_notional": notional,
        "fees": float(np.sum(f["fee"])) if n else 0.0,
        f"mean_markout_{h0:g}s_bps": float(finite_mk.mean()) if finite_mk.size else None,
        "markout_by_bucket": by_bucket,
        "inventory_mean": float(pos.mean()) if pos.size else 0.0,
        "inventory_sd": float(pos.std()) if pos.size else 0.0,
        "inventory_max_abs": float(np.max(np.abs(pos))) if pos.size else 0.0,
        "inventory_mean_abs_notional": float(np.mean(np.abs(pos) * res.mid)) if pos.size else 0.0,
        "final_position": float(pos[-1]) if pos.size else 0.0,
        "last_mid": float(res.mid[-1]) if res.t.size else 0.0,
        "quoted_share": float(quoted.mean()) if refreshes else 0.0,
        "duration_s": dur,
        "refreshes": int(refreshes),
    }


def block_edges(res: ReplayResult, block_s: float) -> np.ndarray:
    """The blocks' ends: every ``block_s`` from the first point, the last (possibly
    shorter) block ending at the end of the replay."""
    if res.t.size < 2:
        return np.zeros(0)
    span = float(res.t[-1] - res.t[0])
    n = max(1, math.ceil(span / block_s - 1e-9))
    return np.append(res.t[0] + block_s * np.arange(1, n), res.t[-1])


def block_pnl(res: ReplayResult, block_s: float) -> np.ndarray:
    """PnL made in each ``block_s`` block: the equity curve's change over the block
    (from 0 at the start), so the blocks sum to the headline PnL, ``equity[-1]``."""
    edges = block_edges(res, block_s)
    if edges.size == 0:
        return np.zeros(0)
    idx = np.clip(np.searchsorted(res.t, edges, side="right") - 1, 0, res.t.size - 1)
    return np.diff(np.concatenate([[0.0], res.equity[idx]]))


def learning(quoter) -> dict:
    """How much the online estimators learned during the replay (data weights are 0
    everywhere when the configuration does not learn)."""
    from ..quoter import summarize

    s = summarize(quoter.state)
    e = s.estimates
    return {
        "alpha_data_weight_max": float(np.max(e.alpha_data_weight)),
        "kappa_data_weight_max": float(np.max(e.kappa_data_weight)),
        "arrival_data_weight_max": float(np.max(e.arrival_data_weight)),
        "tier_pnl": float(s.tier_pnl),
        "tier_intensity": float(s.tier_intensity),
        "events": int(quoter.n_events),
    }
