"""The L2 queue-ahead estimate against the exact FIFO queue, and the queue-order basics
per dataset (docs/data/queue.md; results in benchmarks/README.md, "Queue orders").

1. LOBSTER (exact FIFO from the message file) vs the L2 estimate on the same market
   with the messages removed (``method="l2"``: the orderbook file's snapshots and the
   visible prints), on the same placements: fill fraction by level (filled at our price
   / through), paired agreement, fill-time distributions (two-sample KS D, medians);
   then the L2 estimate from snapshots sampled every ``--sample-s`` (0.5 s, Hyperliquid's
   recorder rate), whose placements are the sampled book's.
2. Queue-order basics (fill probability within the re-post interval by level, mean
   markout per horizon) for LOBSTER AAPL_1 / AMZN_5 / GOOG_10 (fifo), Hyperliquid
   BTC / ETH (recorder_2025-09-04) and Binance BTCUSDT perp (l2).

    .venv/bin/python benchmarks/queue_estimator.py [--window 0:1] [--power 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from mm_runtime.observation import ObservationConfig
from models.data.loaders import load
from models.data.queue import queue_orders
from models.data.tables import Market, WindowSpec, validate_books

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def sampled(market: Market, every_s: float) -> Market:
    """The market with its books reduced to the last snapshot in each ``every_s`` bucket
    (stamped at the bucket's end: what a recorder sampling on a clock would see)."""
    bk = market.books
    ts = bk["ts"].to_numpy(np.int64)
    step = int(every_s * 1e9)
    bucket_end = (ts // step + 1) * step
    uts = np.unique(ts)
    last_ts = pd.Series(uts).groupby(uts // step).max().to_numpy()
    keep = np.isin(ts, last_ts)
    out = bk[keep].copy()
    out["ts"] = bucket_end[keep]
    return replace(market, books=validate_books(out.reset_index(drop=True)), messages=None)


def compare(fifo: pd.DataFrame, l2: pd.DataFrame, paired: bool) -> list[dict]:
    rows = []
    for lvl in sorted(fifo["level"].unique()):
        a, b = fifo[fifo.level == lvl], l2[l2.level == lvl]
        fa, fb = a[a.filled], b[b.filled]
        row = {"level": int(lvl), "orders": len(a), "fifo_fill": a.filled.mean(), "l2_fill": b.filled.mean() if len(b) else np.nan,
               "fifo_at_price": (a.outcome == "filled").mean(), "l2_at_price": (b.outcome == "filled").mean() if len(b) else np.nan,
               "fifo_median_s": fa.duration_s.median(), "l2_median_s": fb.duration_s.median(),
               "ks_d": ks_2samp(fa.duration_s, fb.duration_s).statistic if len(fa) and len(fb) else np.nan}
        pa, pb = a[a.outcome == "filled"], b[b.outcome == "filled"]
        row["at_price_median_fifo_s"] = pa.duration_s.median()
        row["at_price_median_l2_s"] = pb.duration_s.median()
        row["ks_d_at_price"] = ks_2samp(pa.duration_s, pb.duration_s).statistic if len(pa) > 1 and len(pb) > 1 else np.nan
        if paired:
            both = a.filled.to_numpy() & b.filled.to_numpy()
            either = a.filled.to_numpy() | b.filled.to_numpy()
            row["agree"] = float((a.filled.to_numpy() == b.filled.to_numpy()).mean())
            row["jaccard"] = float(both.sum() / max(either.sum(), 1))
            same = both & (np.abs(a.duration_s.to_numpy() - b.duration_s.to_numpy()) < 1e-9)
            row["same_time"] = float(same.sum() / max(both.sum(), 1))
            ap, bp = (a.outcome == "filled").to_numpy(), (b.outcome == "filled").to_numpy()
            row["jaccard_at_price"] = float((ap & bp).sum() / max((ap | bp).sum(), 1))
        rows.append(row)
    return rows


def basics(qo: pd.DataFrame) -> list[dict]:
    tau = qo.attrs["repost_interval_s"]
    out = []
    for lvl in sorted(qo["level"].unique()):
        q = qo[qo.level == lvl]
        f = q[q.filled]
        row = {"level": int(lvl), "orders": len(q), "p_fill": float((q.filled & (q.duration_s <= tau)).mean()),
               "through_share": float((f.outcome == "through").mean()) if len(f) else np.nan,
               "capture_bps": float(f.capture_bps.mean()) if len(f) else np.nan}
        for h in qo.attrs["markout_horizons_s"]:
            row[f"mk{h:g}"] = float(f[f"markout_bps@{h:g}s"].mean()) if len(f) else np.nan
        out.append(row)
    return out


def md(rows: list[dict], cols: list[str]) -> str:
    def f(v):
        if isinstance(v, (float, np.floating)):
            return "–" if not np.isfinite(v) else f"{v:.3g}"
        return str(v)
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                     + ["| " + " | ".join(f(r.get(c)) for c in cols) + " |" for r in rows])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--window", default="0:1")
    ap.add_argument("--power", type=float, default=2.0)
    ap.add_argument("--sample-s", type=float, default=0.5)
    ap.add_argument("--json", default="artifacts/benchmarks/queue_estimator.json")
    ap.add_argument("--lobster-only", action="store_true", help="Skip the basics of the crypto datasets.")
    a = ap.parse_args()
    cfg = ObservationConfig(queue_power=a.power)
    print(f"load average {os.getloadavg()}")
    doc: dict = {"window": a.window, "power": a.power, "sample_s": a.sample_s, "compare": {}, "basics": {}}
    for asset in ("AAPL_1", "AMZN_5", "GOOG_10"):
        t = time.perf_counter()
        m = WindowSpec.parse(a.window).cut(load("lobster", DATA / "lobster", asset, with_books=True, with_messages=True))
        fifo = queue_orders(m, cfg)
        t_fifo = time.perf_counter() - t
        t = time.perf_counter()
        l2 = queue_orders(replace(m, messages=None), cfg, method="l2")
        t_l2 = time.perf_counter() - t
        assert (fifo[["ts", "side", "level"]].to_numpy() == l2[["ts", "side", "level"]].to_numpy()).all()
        l2s = queue_orders(sampled(m, a.sample_s), cfg, method="l2")
        doc["compare"][asset] = {"full": compare(fifo, l2, True), "sampled": compare(fifo, l2s, False),
                                 "seconds": {"fifo": t_fifo, "l2": t_l2}}
        doc["basics"][asset] = basics(fifo)
        print(f"\n### {asset}: FIFO vs L2 on the same placements (fifo {t_fifo:.1f} s, l2 {t_l2:.1f} s)")
        print(md(doc["compare"][asset]["full"], ["level", "orders", "fifo_fill", "l2_fill", "fifo_at_price", "l2_at_price",
                                                 "agree", "jaccard", "same_time", "fifo_median_s", "l2_median_s", "ks_d",
                                                 "jaccard_at_price", "at_price_median_fifo_s", "at_price_median_l2_s",
                                                 "ks_d_at_price"]))
        print(f"\n### {asset}: FIFO vs L2 from snapshots every {a.sample_s:g} s")
        print(md(doc["compare"][asset]["sampled"], ["level", "orders", "fifo_fill", "l2_fill", "fifo_at_price",
                                                    "l2_at_price", "fifo_median_s", "l2_median_s", "ks_d",
                                                    "at_price_median_fifo_s", "at_price_median_l2_s", "ks_d_at_price"]))
    for label, src, path, asset in () if a.lobster_only else (("HL BTC", "hyperliquid", DATA / "hyperliquid" / "recorder_2025-09-04", "BTC"),
                                    ("HL ETH", "hyperliquid", DATA / "hyperliquid" / "recorder_2025-09-04", "ETH"),
                                    ("Binance BTCUSDT perp", "binance", DATA / "binance" / "usdm_btcusdt_20240808.gz", None)):
        m = load(src, path, asset, with_books=True)
        doc["basics"][label] = basics(queue_orders(m, cfg))
    for label, rows in doc["basics"].items():
        print(f"\n### basics: {label}")
        print(md(rows, ["level", "orders", "p_fill", "through_share", "capture_bps"]
                 + [f"mk{h:g}" for h in cfg.markout_horizons_s]))
    print(f"\nload average {os.getloadavg()}")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(doc, indent=1, default=float))


if __name__ == "__main__":
    main()
