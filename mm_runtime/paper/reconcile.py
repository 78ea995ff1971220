"""Reconcile a live paper session with a replay of the same window (``mmcal paper
--reconcile STATE``).

The live runner journals what it did (:mod:`mm_runtime.live.journal`: every ladder,
fill and reload with its feed time and trade index). Given the market data of the
same window, :func:`reconcile` checks what must be identical and explains what may
differ:

1. **market**: the public trades the session processed and those of the data's
   window (count, first and last time) are the same;
2. **accounting**: the journal's fills, booked from the session's starting account
   with :func:`~mm_runtime.paper.accounting.apply_fills`, give its final position,
   cash and PnL exactly;
3. **exchange**: the session's own ladders, run over the window's trades with the live
   fill rule (:func:`~mm_runtime.paper.accounting.trade_through`), give exactly its
   fills;
4. **replay**: the window through the paper exchange (:func:`~mm_runtime.paper.replay.replay`)
   with the bundle the session started with and the session's capital, fee, refresh
   and quoter settings, side by side with the session (fills, volume, position, PnL,
   fees); each fill one side has and the other has not (matched by the trade that
   caused it) gets a reason:

   * ``queue``: the replay filled at our price after the queue ahead (its queue model);
     the live runner fills only on trades through our price;
   * ``reload``: after the session's first hot reload the live quoter quoted another
     bundle than the replay's;
   * ``latency``: the trade came less than ``latency_s`` after the replay's refresh, when
     the replay's new ladder was not yet resting (the live runner rests a ladder at once);
   * ``ladder``: the two quoters' best prices on that side differed at the trade (the
     live quoter steps on every quote update and refreshes at the first event
     ``refresh_s`` after its last ladder; the replay steps on trades and a fixed grid);
   * ``size``: same best price, another size (position or margin headroom, a level
     partly filled before);
   * ``restored``: the session started from a restored state (position, cash), the
     replay flat: said once, on the position and PnL rows.

Method and a worked example: docs/runtime/paper.md ("Reconciling a live session").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..bundle import PriorBundle
from ..config import QuoterConfig
from .accounting import apply_fills, mark_to_market, trade_through
from .replay import ReplayConfig, ReplayData, replay

__all__ = ["REASONS", "reconcile"]

REASONS = {
    "queue": "the replay filled at our price after the queue ahead (its queue model); the live runner fills "
             "only on trades through our price",
    "reload": "after the session's hot reload the live quoter quoted another bundle than the replay's",
    "latency": "the trade came within latency_s of the replay's refresh: its new ladder was not resting yet "
               "(the live runner rests a ladder at once)",
    "ladder": "the quoters' best prices differed at this trade (the live quoter steps on every quote update and "
              "refreshes at the first event refresh_s after its last ladder; the replay on trades and a fixed grid)",
    "size": "same best price, another size (position or margin headroom, or the level partly filled before)",
    "unexplained": "no rule above explains it",
}
_TOL = 1e-9


def _rel_eq(a: float, b: float) -> bool:
    return abs(a - b) <= _TOL * max(1.0, abs(a), abs(b))


def _visible_trades(data: ReplayData) -> np.ndarray:
    """Indices of the trades a replay feed passes on (those after the first quote)."""
    return np.flatnonzero(data.trade_ts >= data.quote_ts[0]) if len(data.quote_ts) else np.array([], dtype=int)


def _exchange_check(session: dict, data: ReplayData, idx: np.ndarray) -> dict[str, Any]:
    """The session's ladders over the window's trades with the live fill rule."""
    ladders, fills = session["ladders"], session["fills"]
    fee = session["session"]["fee_bps"] * 1e-4
    got: list[tuple[int, float, float, float]] = []
    li, px, sz = 0, None, None
    if session["session"].get("paper_fills", True):
        for j, t in enumerate(idx):
            while li < len(ladders) and ladders[li]["trades"] <= j:
                px, sz = np.array(ladders[li]["px"], float), np.array(ladders[li]["sz"], float)
                li += 1
            if px is None:
                continue
            side = float(data.trade_side[t])
            row = 1 if side > 0 else 0
            for k, q in trade_through(px[row], sz[row], float(data.trade_price[t]), side, float(data.trade_size[t])):
                got.append((j, 1.0 if row == 0 else -1.0, float(px[row, k]), q))
    want = [(int(f["trades"]), float(f["side"]), float(f["price"]), float(f["size"])) for f in fills]
    first = next((i for i, (a, b) in enumerate(zip(got, want, strict=False))
                  if a[:2] != b[:2] or not (_rel_eq(a[2], b[2]) and _rel_eq(a[3], b[3]))), None)
    if first is None and len(got) != len(want):
        first = min(len(got), len(want))
    out = {"identical": first is None, "fills_resimulated": len(got), "fills_journal": len(want), "fee_rate": fee}
    if first is not None:
        out["first_difference"] = {"index": first, "resimulated": got[first] if first < len(got) else None,
                                   "journal": want[first] if first < len(want) else None}
    return out


def _accounting_check(session: dict) -> dict[str, Any]:
    s, end = session["session"], session["end"]
    cash, pos = float(s["cash"]), float(s["position"])
    fee = float(s["fee_bps"]) * 1e-4
    for f in session["fills"]:
        cash, pos = apply_fills(cash, pos, float(f["price"]), float(f["side"]) * float(f["size"]), fee)
    out: dict[str, Any] = {"position": float(pos), "cash": float(cash)}
    if end is None:
        out.update(identical=None, note="the session has no end record (killed): nothing to compare against")
        return out
    pnl = float(mark_to_market(cash, pos, end["mid"]) - s["capital"]) if end["mid"] > 0 else 0.0
    out.update(pnl=pnl, journal={"position": end["position"], "cash": end["cash"], "pnl": end["pnl"]},
               identical=bool(_rel_eq(pos, end["position"]) and _rel_eq(cash, end["cash"])
                              and _rel_eq(pnl, end["pnl"])))
    return out


def _best(px: np.ndarray, sz: np.ndarray, row: int) -> float:
    live = sz[row] > 0
    if not np.any(live):
        return math.nan
    return float(np.max(px[row][live]) if row == 0 else np.min(px[row][live]))


def reconcile(session: dict[str, Any], data: ReplayData, config: ReplayConfig | None = None) -> dict[str, Any]:
    """Reconcile one journaled session (:func:`mm_runtime.live.journal.read_sessions`)
    with the replay of its window in ``data`` (module docstring). ``config``'s
    latency, queue model, tick and markout settings are the replay's; its capital,
    fee, refresh and position limit are taken from the session."""
    s, end = session["session"], session["end"]
    try:  # validated as a bundle (the journal re-dumps it: its checksum is the runtime's, not the file's text)
        bundle = PriorBundle.model_validate(s["bundle"])
    except ValueError as exc:
        raise ValueError(f"journal: session.bundle: not a valid bundle: {exc}") from None
    qc = QuoterConfig.model_validate(s["quoter"])
    t_first = float(s["ts"])
    t_last = float(end["ts"]) if end is not None else max(
        [float(r["ts"]) for r in session["ladders"] + session["fills"]] or [t_first])
    win = data.check().window(t_first, float(np.nextafter(t_last, math.inf)))
    idx = _visible_trades(win)
    n_live = int(end["trades"]) if end is not None else None
    market = {"trades_live": n_live, "trades_data": int(len(idx)),
              "first_trade_ts": float(win.trade_ts[idx[0]]) if len(idx) else None,
              "last_trade_ts": float(win.trade_ts[idx[-1]]) if len(idx) else None,
              "identical": n_live is None or n_live == len(idx)}
    exchange = _exchange_check(session, win, idx)
    accounting = _accounting_check(session)

    rc = (config or ReplayConfig()).model_copy(update={
        "capital": float(s["capital"]), "fee_bps": float(s["fee_bps"]), "refresh_s": float(s["refresh_s"]),
        "max_position_notional": None, "progress_every_s": 0.0})
    if rc.tick_size is None:
        rc = rc.model_copy(update={"tick_size": float(qc.tick_size)})
    res = replay(win, bundle, qc, rc, name="replay")

    # ---- side by side
    lf = session["fills"]
    live_side = np.array([f["side"] for f in lf], float)
    live_size = np.array([f["size"] for f in lf], float)
    live_fee = float(sum(f["fee"] for f in lf))
    rf = res.fills
    live_pos = float(end["position"]) if end is not None else accounting["position"]
    live_pnl = float(end["pnl"]) if end is not None else None
    table = [
        {"what": "fills", "live": len(lf), "replay": int(len(rf["ts"]))},
        {"what": "bought", "live": float(live_size[live_side > 0].sum()), "replay": float(rf["size"][rf["side"] > 0].sum())},
        {"what": "sold", "live": float(live_size[live_side < 0].sum()), "replay": float(rf["size"][rf["side"] < 0].sum())},
        {"what": "fees", "live": live_fee, "replay": float(rf["fee"].sum())},
        {"what": "position", "live": live_pos, "replay": float(res.position[-1])},
        {"what": "pnl", "live": live_pnl, "replay": float(res.equity[-1])},
    ]
    for row in table:
        row["diff"] = None if row["live"] is None else float(row["live"]) - float(row["replay"])

    # ---- fill by fill, matched by the trade that caused it (time, aggressor side, price)
    trade_key = {j: (float(win.trade_ts[t]), float(win.trade_side[t]), float(win.trade_price[t]))
                 for j, t in enumerate(idx)}
    live_by: dict[tuple, list[dict]] = {}
    for f in lf:
        key = trade_key.get(int(f["trades"]), (float(f["ts"]), -float(f["side"]), float(f["trade_price"])))
        live_by.setdefault((key[0], key[1]), []).append(f)
    rep_by: dict[tuple, list[int]] = {}
    for i in range(len(rf["ts"])):
        rep_by.setdefault((float(rf["ts"][i]), -float(rf["side"][i])), []).append(i)
    reload_ts = float(session["reloads"][0]["ts"]) if session["reloads"] else math.inf
    ticks = res.t
    lad_ts = np.array([float(r["ts"]) for r in session["ladders"]])
    rows = []
    n_same = 0
    for key in sorted(set(live_by) | set(rep_by)):
        ts, aggressor = key
        lv, rp = live_by.get(key, []), rep_by.get(key, [])
        l_vol = float(sum(f["size"] for f in lv))
        r_vol = float(sum(rf["size"][i] for i in rp))
        if lv and rp and _rel_eq(l_vol, r_vol) and all(
                _rel_eq(float(f["price"]), float(rf["price"][i])) for f, i in zip(lv, rp, strict=False)) \
                and len(lv) == len(rp):
            n_same += 1
            continue
        row = 1 if aggressor > 0 else 0   # the side of our ladder the trade hit
        k = int(np.searchsorted(lad_ts, ts, side="left")) - 1   # the live ladder resting before the trade
        live_best = math.nan
        if k >= 0:
            r = session["ladders"][k]
            live_best = _best(np.array(r["px"], float), np.array(r["sz"], float), row)
        ti = int(np.searchsorted(ticks, ts - rc.latency_s, side="right")) - 1
        rep_best = math.nan
        if ti >= 0:
            rep_best = float(res.our_bid[ti] if row == 0 else res.our_ask[ti])
        tick_before = float(ticks[int(np.searchsorted(ticks, ts, side="right")) - 1]) if len(ticks) else -math.inf
        if rp and any(rf["at_price"][i] > 0 for i in rp) and not lv:
            reason = "queue"
        elif ts >= reload_ts:
            reason = "reload"
        elif rc.latency_s > 0 and ts - tick_before < rc.latency_s:
            reason = "latency"
        elif not (math.isnan(live_best) and math.isnan(rep_best)) and not _rel_eq(
                0.0 if math.isnan(live_best) else live_best, 0.0 if math.isnan(rep_best) else rep_best):
            reason = "ladder"
        elif lv and rp:
            reason = "size"
        else:
            reason = "unexplained"
        rows.append({"ts": ts, "side": "bid" if row == 0 else "ask", "reason": reason,
                     "live_size": l_vol, "replay_size": r_vol,
                     "live_best": None if math.isnan(live_best) else live_best,
                     "replay_best": None if math.isnan(rep_best) else rep_best})
    by_reason: dict[str, dict[str, Any]] = {}
    for r in rows:
        b = by_reason.setdefault(r["reason"], {"trades": 0, "live_volume": 0.0, "replay_volume": 0.0,
                                               "explanation": REASONS[r["reason"]]})
        b["trades"] += 1
        b["live_volume"] += r["live_size"]
        b["replay_volume"] += r["replay_size"]
        if r["live_best"] is not None and r["replay_best"] is not None:
            b.setdefault("_gaps", []).append(abs(r["live_best"] - r["replay_best"]) / r["replay_best"] * 1e4)
    for b in by_reason.values():  # how far apart the two ladders' best prices were, bps
        gaps = b.pop("_gaps", None)
        if gaps:
            b["median_best_price_gap_bps"] = float(np.median(gaps))
    notes = []
    if float(s["position"]) != 0.0 or not _rel_eq(float(s["cash"]), float(s["capital"])):
        notes.append(f"restored: the session started from a restored state (position {s['position']:.6g}, cash "
                     f"{s['cash']:.2f}); the replay starts flat with {s['capital']:.2f}")
    for r in session["reloads"]:
        notes.append(f"reload at {r['ts']:.3f} (after {r['trades']} trades): the live quoter switched to {r['to']}")
    return {
        "asset": s["asset"], "window": {"start": t_first, "end": t_last, "seconds": t_last - t_first},
        "bundle": s["lineage"], "reloads": [{"ts": r["ts"], "trades": r["trades"], "to": r["to"]}
                                           for r in session["reloads"]],
        "checks": {"market": market, "accounting": accounting, "exchange": exchange},
        "replay_config": {"latency_s": rc.latency_s, "queue_model": res.config["queue_model"],
                          "tick_size": float(res.summary["fill_model"]["tick_size"]),
                          "refresh_s": rc.refresh_s, "fee_bps": rc.fee_bps, "capital": rc.capital},
        "table": table, "trades_matched": n_same, "trades_different": len(rows),
        "by_reason": by_reason, "differences": rows, "notes": notes,
    }
