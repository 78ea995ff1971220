"""Static vs learned vs queue on real data: calibrate on the first half, paper-trade the second.

    .venv/bin/python -P benchmarks/paper_ab.py [--datasets aapl,amzn,...] [--inference nuts|auto|laplace]
        [--fills-inference nuts|auto|laplace] [--report]

Per dataset: the calibrate flow (real Prefect + MLflow, the same code as
``mmcal calibrate``, the fills model included where the data have books) on the window
``0:0.5`` with 2 chains x 500 draws and a gate of r_hat <= 1.05, ESS >= 100 (a full
calibration is 4 x 1000 draws and 1.01 / 400; these windows are short). A fit that
fails that gate still gives a bundle *for this benchmark only* (exported from the same
posterior draws, its failures recorded in the output): the A/B then says what those
priors would have done, and the gate's verdict is reported next to it. Then
``mmcal paper``'s replay on the held-out window ``0.5:1`` with the configurations
static, learned and queue (static = the original system's constants; learned = the
calibrated trade-through model + online updates, the depth ladder; queue = learned with
the ladder on the tick grid from the fills model), 1 s refresh, 50 ms latency, quotes
on the data's tick grid, trade-through fills plus fills at our price after the queue
ahead (``auto``: the exact FIFO place from LOBSTER's messages, ``l3``; the displayed
queue of the L2 snapshots elsewhere, ``book``), the venue's maker fee (``FEES_BPS``)
and a 20,000 notional position limit; the stale-feed guard at twice the longest silence of
the calibration half (at least 30 s, :func:`stale_limit`); blocks of the replay's default length (at least
10 per window). Per configuration: PnL, fills, markouts by depth, inventory, Sharpe,
the paired block difference against static and learned, the no-quote reasons and
predicted vs realised fill rates by level. Reports go to
artifacts/paper/ab-<dataset>/, numbers to artifacts/benchmarks/paper_ab.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

DATASETS = {
    "aapl": ("lobster", "../shared/data/lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip", None),
    "amzn": ("lobster", "../shared/data/lobster/LOBSTER_SampleFile_AMZN_2012-06-21_5.zip", None),
    "goog": ("lobster", "../shared/data/lobster/LOBSTER_SampleFile_GOOG_2012-06-21_10.zip", None),
    "hl-btc": ("hyperliquid", "../shared/data/hyperliquid/recorder_2025-09-04", "BTC"),
    "hl-eth": ("hyperliquid", "../shared/data/hyperliquid/recorder_2025-09-04", "ETH"),
    "hl-sol": ("hyperliquid", "../shared/data/hyperliquid/recorder_2025-09-04", "SOL"),
    "hl-wlfi": ("hyperliquid", "../shared/data/hyperliquid/recorder_2025-09-04", "WLFI"),
    "binance": ("binance", "../shared/data/binance/usdm_btcusdt_20240808.gz", None),
}
FEES_BPS = {
    # maker fee, bps of notional (negative = rebate); the venue's base tier
    "lobster": -0.4,  # Nasdaq add-liquidity rebate ~ $0.0025/share at AAPL ~ $580 (2012)
    "binance": 2.0,  # USD-M futures regular maker 0.020 %
    "hyperliquid": 1.5,  # perps base-tier maker 0.015 %
}
CONFIGS = ("static", "learned", "queue")
FIT_WINDOW, REPLAY_WINDOW = "0:0.5", "0.5:1"
SAMPLER = {"sampler": "nutpie", "chains": 2, "draws": 500, "tune": 500, "seed": 0}
GATE = {"max_r_hat": 1.05, "min_ess_bulk": 100, "min_ess_tail": 100}
OVERRIDES: dict[str, dict] = {}  # per model, on top of SAMPLER (--fills-inference)
OUT = Path("artifacts/benchmarks/paper_ab.json")  # --out


def _save(doc: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=float))
    os.replace(tmp, out)


def _bundle(source: str, path: str, asset: str | None, cal: dict):
    """The calibration's bundle; when the gate failed, one exported from the same draws."""
    from mm_runtime import load_bundle

    if cal.get("bundle_path"):
        return load_bundle(cal["bundle_path"]), "registered"
    import arviz as az

    from models.data.loaders import load
    from models.data.tables import WindowSpec, window_market
    from models.export import bundle_source, export_bundle

    market = load(source, path, asset=asset)
    market = window_market(market, *WindowSpec.parse(FIT_WINDOW).bounds_ns(market))
    fits = {m: az.from_netcdf(v["idata_path"]) for m, v in cal["models"].items()}
    bundle, _ = export_bundle(market.asset, fits, source=bundle_source(market),
                              diagnostics={"note": "benchmark only: gate failed: " + "; ".join(cal["failures"])})
    return bundle, "gate failed (benchmark-only bundle)"


def stale_limit(fit_market) -> float:
    """The stale-feed guard's limit for the replay, s: twice the longest silence (no quote
    and no trade) of the calibration half that is not a recording gap
    (:func:`models.data.gaps.find_gaps`' threshold), at least the default 30 s -- what an
    operator sets for a venue whose quiet stretches are known (LOBSTER AMZN_5's replay
    half has three silences of 30-42 s; at 30 s the kill switch stopped every
    configuration for 78 % of it)."""
    from models.data.gaps import find_gaps
    from mm_runtime.guards import STALE_FEED_S

    return max(STALE_FEED_S, round(2.0 * find_gaps(fit_market).attrs["longest_quiet_s"], 1))


def heldout_terms(market, bundle, fee_bps: float) -> dict:
    """The edge's terms measured on the held-out window, independently of the fills model:
    hypothetical orders at the touch and behind it (``models.data.queue.queue_orders``,
    the observation rules of the bundle: exact FIFO on LOBSTER, the L2 estimate
    elsewhere), per level: the share filled within the re-post interval, and over the
    fills the spread capture at placement (``depth_bps``, what the ladder's edge counts),
    the capture at the fill (``capture_bps``: from the mid just before the fill, the mid
    the markout starts from), the markout at the Kelly horizon, and the realised edge per
    fill, capture at the fill - markout - fee, with its standard error."""
    import numpy as np

    from models.data.queue import queue_orders

    obs = bundle.observation
    h = float(obs.markout_horizon_s)
    qo = queue_orders(market, obs)
    col = f"markout_bps@{h:g}s"
    levels = []
    for lv in sorted(qo["level"].unique()):
        at = qo[qo["level"] == lv]
        f = at[at["filled"] & at[col].notna()]
        net = f["capture_bps"] - f[col] - fee_bps
        within = float((at["filled"] & (at["duration_s"] <= obs.repost_interval_s)).mean())
        se = lambda x: float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else None  # noqa: E731
        levels.append({"level": int(lv), "orders": int(len(at)), "fills": int(len(f)), "fill_prob": within,
                       "depth_at_placement_bps": float(f["depth_bps"].mean()) if len(f) else None,
                       "capture_at_fill_bps": float(f["capture_bps"].mean()) if len(f) else None,
                       "markout_bps": float(f[col].mean()) if len(f) else None, "markout_se": se(f[col]),
                       "net_bps": float(net.mean()) if len(f) else None, "net_se": se(net)})
    return {"horizon_s": h, "fee_bps": fee_bps, "method": qo.attrs.get("queue_source"), "levels": levels}


def run(name: str) -> dict:
    from flows.calibrate import run_calibration
    from models.data.loaders import load, replay_data
    from models.data.tables import WindowSpec, window_market
    from models.paper_report import ab_document, write_report
    from mm_runtime.guards import GuardConfig
    from mm_runtime.paper.compare import paired, run_ab
    from mm_runtime.paper.replay import ReplayConfig

    source, path, asset = DATASETS[name]
    t0 = time.perf_counter()
    cal = run_calibration(source, path, asset, window=FIT_WINDOW, sampler=SAMPLER, sampler_overrides=OVERRIDES,
                          gate=GATE, plots=False)
    cal_s = time.perf_counter() - t0
    bundle, origin = _bundle(source, path, asset, cal)
    market = load(source, path, asset=asset, with_books=True, **({"with_messages": True} if source == "lobster" else {}))
    stale_s = stale_limit(window_market(market, *WindowSpec.parse(FIT_WINDOW).bounds_ns(market)))
    market = window_market(market, *WindowSpec.parse(REPLAY_WINDOW).bounds_ns(market))
    data = replay_data(market)
    terms = heldout_terms(market, bundle, FEES_BPS[source])
    guards = GuardConfig(stale_feed_s=stale_s)
    ab = run_ab(data, bundle, CONFIGS, ReplayConfig(fee_bps=FEES_BPS[source], guards=guards))
    rs = ab["results"]
    ab["queue_vs_learned"] = paired(rs["learned"], rs["queue"], rs["static"].config["replay"]["block_s"])
    ab["window"], ab["priors"] = REPLAY_WINDOW, f"{origin}: {bundle.model_version}"
    report = write_report(ab, Path("artifacts/paper") / f"ab-{name}")
    (report.parent / "bundle.json").write_text(bundle.model_dump_json(indent=1))
    doc = ab_document(ab)
    # the same without fees: the gross edge of each configuration
    gross = run_ab(data, bundle, CONFIGS, ReplayConfig(fee_bps=0.0, guards=guards))
    gross["window"], gross["priors"] = ab["window"], ab["priors"]
    write_report(gross, Path("artifacts/paper") / f"ab-{name}-nofee")
    doc["zero_fee"] = {k: v for k, v in ab_document(gross).items() if k in ("table", "paired", "summaries")}
    doc.update(report=str(report), calibration={
        "status": cal["status"], "failures": cal["failures"], "run_id": cal["run_id"], "wall_s": cal_s,
        "window": FIT_WINDOW, "sampler": SAMPLER, "sampler_overrides": OVERRIDES, "gate": GATE,
        "models": {m: {k: v.get(k) for k in ("n_obs", "r_hat_max", "ess_bulk_min", "divergences", "cache_hit",
                                              "inference", "psis_khat")}
                   for m, v in cal["models"].items()}},
        queue_vs_learned=ab["queue_vs_learned"], heldout_terms=terms,
        edge_terms=ab["results"]["queue"].summary.get("edge_terms"),
        fill_calibration={k: r.summary.get("fill_calibration") for k, r in ab["results"].items()},
        replay={"trades": int(data.trade_ts.size), "quotes": int(data.quote_ts.size),
                "seconds": float(data.end - data.start), "fee_bps": FEES_BPS[source], "stale_feed_s": stale_s,
                "fill_model": ab["results"]["learned"].summary.get("fill_model")},
        spread_capture=(bundle.params.spread_capture.model_dump() if bundle.params.spread_capture else None))
    return doc


def _rows(d: dict, fee) -> None:
    print(f"   maker fee {fee} bps:")
    print(f"   {'config':>8} {'PnL':>10} {'Sharpe/d':>9} {'maxDD':>9} {'fills':>6} {'mkout1s':>8} "
          f"{'inv sd':>8} {'|q|max':>8} {'fees':>8} {'quoted':>6}")
    for row in d["table"]:
        f = lambda v, w=9, p=2: f"{v:>{w}.{p}f}" if isinstance(v, (int, float)) else f"{'-':>{w}}"  # noqa: E731
        print(f"   {row['config']:>8} {f(row['pnl'], 10)} {f(row['sharpe_per_day'])} {f(row['max_drawdown'])} "
              f"{row['fills']:>6} {f(row['mean_markout_bps'], 8)} {f(row['inventory_sd'], 8, 3)} "
              f"{f(row['inventory_max_abs'], 8, 3)} {f(row['fees'], 8)} {f(row['quoted_share'], 6)}")
    for k, p in d["paired"].items():
        if p["mean_diff"] is None:
            continue
        print(f"   {k} - static: {p['mean_diff']:+.3f} per {p['block_s']:.0f} s block, 95% "
              f"[{p['ci_low']:+.3f}, {p['ci_high']:+.3f}], won {p['wins']}/{p['blocks']}")
    q = d.get("queue_vs_learned")
    if q and q.get("mean_diff") is not None:
        print(f"   queue - learned: {q['mean_diff']:+.3f} per {q['block_s']:.0f} s block, 95% "
              f"[{q['ci_low']:+.3f}, {q['ci_high']:+.3f}], won {q['wins']}/{q['blocks']}")
    for k, c in (d.get("fill_calibration") or {}).items():
        if c and c.get("levels"):
            print(f"   {k} fill rate by level (predicted over {c['horizon_s']:g} s / realised while resting "
                  f"{c['mean_rest_s']:.2f} s): " + ", ".join(
                      f"L{lv['level']} {lv['predicted']:.3f}/{lv['realised']:.3f} (n {lv['orders']})"
                      for lv in c["levels"]))
    et, ht = d.get("edge_terms"), d.get("heldout_terms")
    if et and ht:
        emp = {lv["level"]: lv for lv in ht["levels"]}
        print(f"   edge terms by level, predicted (queue's ladder, mean over refreshes) / held-out queue orders "
              f"({ht['method']}; markout at {ht['horizon_s']:g} s, bps):")
        for lv in et["levels"]:
            e = emp.get(lv["level"])
            if e is None or e["fills"] == 0:
                continue
            print(f"     L{lv['level']}: capture {lv['spread_capture_bps']:.2f} / at placement "
                  f"{e['depth_at_placement_bps']:.2f}, at fill {e['capture_at_fill_bps']:.2f}; markout "
                  f"{lv['markout_bps']:.2f} / {e['markout_bps']:.2f} +- {e['markout_se'] or 0:.2f} (fills {e['fills']}); "
                  f"P(fill) {lv['fill_prob']:.3f} / {e['fill_prob']:.3f}; edge {lv['edge_bps']:+.2f} / realised "
                  f"{e['net_bps']:+.2f} +- {e['net_se'] or 0:.2f}")
    for k, s in d["summaries"].items():
        if s.get("not_quoting"):
            print(f"   {k} not quoting: " + "; ".join(f"{r}: {n} ticks" for r, n in s["not_quoting"].items()))


def report(doc: dict) -> None:
    for name, d in doc.items():
        c = d["calibration"]
        print(f"\n== {name}: calibrated on {c['window']} ({c['status']}, {c['wall_s']:.0f} s"
              + (f"; failures: {'; '.join(c['failures'])}" if c["failures"] else "") + ")")
        r = d["replay"]
        print(f"   replay {d['window']}: {r['seconds']:.0f} s, {r['trades']:,} trades, {r['quotes']:,} quotes; "
              f"report {d['report']}")
        _rows(d, r["fee_bps"])
        if "zero_fee" in d:
            _rows(d["zero_fee"], 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--report", action="store_true", help="print the saved results only")
    ap.add_argument("--inference", choices=("nuts", "auto", "laplace"), default="nuts",
                    help="the calibration's inference (auto: Laplace where its PSIS k_hat < 0.5, else NUTS)")
    ap.add_argument("--fills-inference", choices=("nuts", "auto", "laplace"), default=None,
                    help="the fills model's inference, if other than --inference (its NUTS fit is the slow one: "
                         "benchmarks/README.md, \"Scaling\")")
    ap.add_argument("--out", type=Path, default=OUT, help=f"the results file (default {OUT}); kept entries "
                    "of other datasets stay")
    args = ap.parse_args()
    SAMPLER["inference"] = args.inference
    if args.fills_inference:
        OVERRIDES["fills"] = {"inference": args.fills_inference}
    doc = json.loads(args.out.read_text()) if args.out.exists() else {}
    if not args.report:
        for name in args.datasets.split(","):
            if name not in DATASETS:
                sys.exit(f"--datasets: unknown {name!r}; choose from {', '.join(DATASETS)}")
            print(f"{name}: calibrating on {FIT_WINDOW}, replaying {REPLAY_WINDOW} ...", file=sys.stderr, flush=True)
            doc[name] = run(name)
            _save(doc, args.out)
    report(doc)


if __name__ == "__main__":
    main()
