"""The live queue position and the fills learning on the recorded Hyperliquid websocket
capture (25 s of BTC ``l2Book`` + ``trades``): the live runner on the parsed messages,
the example bundle with a hand-built fills block (no fit behind it: hazard
2 exp(-0.9 level - 0.4 bucket) /s, markout 0), tick $1.

Run:  uv run python benchmarks/live_queue_capture.py

Prints, with ``queue_fills`` off and on: the feed's snapshots and prints, the orders the
quoter tracked (new / kept across refreshes), how often a kept order's queue ahead moved
up, the queue ahead at placement in median prints, the fills (through / at our price),
the learner's exposure, fills and resolved markouts, the per-event time of
``on_feed_event``, and whether the step was retraced.  Numbers: docs/runtime/queue_live.md.
"""

from __future__ import annotations

import gzip
import math
import tempfile
import time
from pathlib import Path

import numpy as np

import mm_runtime as mr
from mm_runtime.examples import with_example_fills
from mm_runtime.live import HyperliquidParser, LiveConfig, LiveRunner
from mm_runtime.quoter import TRACE_COUNTS

ROOT = Path(__file__).resolve().parents[1]
CAPTURE = ROOT.parent / "shared" / "data" / "hyperliquid" / "ws_2025-01-26" / "btc_20250126.gz"


def main() -> None:
    p = HyperliquidParser("BTC")
    with gzip.open(CAPTURE, "rt") as fh:
        evs = [ev for line in fh for ev in p.parse(line.rstrip("\n").split(" ", 1)[1])]
    n_books, n_prints = sum(e.book is not None for e in evs), sum(e.trade is not None for e in evs)
    b = with_example_fills(mr.example_bundle("BTC"), lambda lv, q: 2.0 * math.exp(-0.9 * lv - 0.4 * q),
                           lambda lv, q: 0.0)
    cfg = mr.QuoterConfig(tick_size=1.0, min_depth_bps=0.0, fills_ladder_start="touch")
    print(f"capture: {len(evs)} events, {n_books} snapshots (20 levels), {n_prints} prints, "
          f"{evs[-1].ts - evs[0].ts:.1f} s")
    with tempfile.TemporaryDirectory() as d:
        path = mr.dump_bundle(b, Path(d) / "BTC.json")
        for queue_fills in (False, True):
            r = LiveRunner(path, cfg, LiveConfig(queue_fills=queue_fills), market_clock=True)
            r.warm_up()
            traces = TRACE_COUNTS["step"]
            seen, moved, kept_obs, q0 = {}, 0, 0, []
            fills_at = 0
            t_ev = []
            for ev in evs:
                before = r.n_fills
                t0 = time.perf_counter()
                r.on_feed_event(ev)
                t_ev.append(time.perf_counter() - t0)
                if ev.trade is not None and r.n_fills > before:
                    px = ev.trade[0]
                    row = 1 if ev.trade[1] > 0 else 0
                    fills_at += int(np.any(np.abs(r._rest_px[row] - px) < 1e-9))
                for row in (0, 1):
                    for k, o in r.quoter.queue.orders[row].items():
                        key = (row, k, o.placed_ts)
                        if key in seen:
                            kept_obs += 1
                            moved += int(math.isfinite(o.ahead) and o.ahead < seen[key])
                        else:
                            q0.append(o.queue0)
                        seen[key] = o.ahead
            fl = r.quoter.fills_learner
            q0 = np.asarray(q0, dtype=float)
            print(f"\nqueue_fills={queue_fills}: {len(seen)} orders tracked; a kept order's queue ahead moved up "
                  f"on {moved} of {kept_obs} updates; queue ahead at placement (median prints) median "
                  f"{np.nanmedian(q0):.2f}, unknown {int(np.sum(~np.isfinite(q0)))}")
            print(f"  fills {r.n_fills} (events with a fill at our own price: {fills_at}); learner: exposure "
                  f"{fl.e.sum():.1f} order-s, fills {fl.n_fills}, markouts resolved {fl.n_markouts}")
            print(f"  on_feed_event median {np.median(t_ev) * 1e6:.0f} µs (p99 {np.quantile(t_ev, 0.99) * 1e6:.0f} µs); "
                  f"step retraced: {TRACE_COUNTS['step'] - traces} times; median print unit "
                  f"{r.quoter.queue.unit:g} BTC")


if __name__ == "__main__":
    main()
