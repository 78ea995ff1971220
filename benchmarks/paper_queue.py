"""Queue position at our price: the replay's fill rules side by side on real data.

    .venv/bin/python -P benchmarks/paper_queue.py --priors BUNDLE [--window 0.5:1]

LOBSTER AAPL 2012-06-21 (level-1 book), the held-out half ``0.5:1`` of
``paper_ab.py``, configurations static and learned of ``BUNDLE`` (the AAPL bundle
``paper_ab.py`` calibrated on ``0:0.5``), 1 s refresh, 50 ms latency, the Nasdaq
rebate (−0.4 bp), a 20,000 notional limit; fill rules (``ReplayConfig.queue_model``):

* ``through``: trade-through only, continuous prices (``paper_ab.py``'s setting);
* ``through+tick``: trade-through only, quotes on the 0.01 grid;
* ``optimistic``: + every print at our price fills us (``factor``, ``queue_factor`` 1);
* ``book``: + prints at our price fill us after the displayed queue ahead
  (hftbacktest's risk-averse model; the level-1 file shows the queue at the touch only).

Numbers to artifacts/benchmarks/paper_queue.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DATA = "../shared/data/lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip"
RULES = {
    "through": {"queue_model": "none"},
    "through+tick": {"queue_model": "none", "tick_size": 0.01},
    "optimistic": {"queue_model": "factor", "queue_factor": 1.0, "tick_size": 0.01},
    "book": {"queue_model": "book"},
}
OUT = Path("artifacts/benchmarks/paper_queue.json")


def main() -> None:
    import numpy as np

    from models.data.loaders import load, replay_data
    from models.data.tables import WindowSpec, window_market
    from mm_runtime import load_bundle
    from mm_runtime.paper.compare import config_for
    from mm_runtime.paper.replay import ReplayConfig, replay

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--priors", required=True)
    ap.add_argument("--window", default="0.5:1")
    args = ap.parse_args()
    market = load("lobster", DATA, with_books=True)
    market = window_market(market, *WindowSpec.parse(args.window).bounds_ns(market))
    data = replay_data(market)
    bundle = load_bundle(args.priors)
    rows = []
    for cfg in ("static", "learned"):
        b, qc = config_for(cfg, bundle)
        for rule, kw in RULES.items():
            t = time.perf_counter()
            r = replay(data, b, qc, ReplayConfig(fee_bps=-0.4, block_s=600.0, **kw), name=f"{cfg}/{rule}")
            s, f = r.summary, r.fills
            at = f["at_price"] == 1.0
            mk = f["markout_1s_bps"]
            row = {"config": cfg, "rule": rule, "pnl": s["pnl"], "fills": s["fills"], "fills_at_price": int(at.sum()),
                   "volume": float(f["size"].sum()), "volume_at_price": float(f["size"][at].sum()),
                   "markout_1s_bps": s["mean_markout_1s_bps"],
                   "markout_1s_at_price_bps": float(np.nanmean(mk[at])) if at.any() else None,
                   "markout_1s_through_bps": float(np.nanmean(mk[~at])) if (~at).any() else None,
                   "fees": s["fees"], "inventory_sd": s["inventory_sd"], "seconds": time.perf_counter() - t,
                   "queue": s["fill_model"].get("book_levels")}
            rows.append(row)
            print(f"{cfg:8s} {rule:13s} PnL {row['pnl']:+9.2f} fills {row['fills']:5d} (at price {row['fills_at_price']:4d}) "
                  f"vol {row['volume']:8.1f} mk1s {row['markout_1s_bps'] or float('nan'):+.2f} "
                  f"(at {row['markout_1s_at_price_bps'] if row['markout_1s_at_price_bps'] is not None else float('nan'):+.2f}) "
                  f"{row['seconds']:.1f}s {row['queue'] or ''}", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"data": DATA, "window": args.window, "priors": args.priors,
                               "trades": int(data.trade_ts.size), "book_snapshots": int(data.book_ts.size),
                               "seconds": float(data.end - data.start), "rows": rows}, indent=1, default=float))


if __name__ == "__main__":
    main()
