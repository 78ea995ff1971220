"""alpha with a floor vs without, out of sample: both fitted on the first half of each
real dataset and scored on the second by the held-out log predictive density of the
informed flags (:func:`models.alpha.heldout_lpd`, the compare flow's score for alpha),
paired over the same held-out fills (:func:`models.alpha.compare_informed_flag`).

    .venv/bin/python benchmarks/heldout_alpha_floor.py                  # every dataset
    .venv/bin/python benchmarks/heldout_alpha_floor.py --datasets aapl,hl-btc
    .venv/bin/python benchmarks/heldout_alpha_floor.py --report         # the saved results

Per dataset, sequentially: ``--window 0:0.5`` for the fit and ``0.5:1`` held out
(:class:`models.data.tables.WindowSpec`); the observation rules as ``mmcal fit``
chooses them on the fit half (default ObservationConfig, automatic bar length); the
EM/MAP regime path of each half (:func:`models.catalog.prepare` with ``"em"``); the
threshold variant with the floor (``AlphaConfig()``) and without
(``AlphaConfig(floor=False)``), PyMC's NUTS, 2 chains x 500 draws after 500 tuning
steps (modest: the shared 2-core machine). Printed: held-out elpd of each, the paired
difference (floor - no floor) with its standard error (sweep-weighted fills, as the
fits), and per depth bucket the held-out informed share against each fit's mean
predicted alpha (what the quoter's buckets would use) and the bucket's share of the
elpd difference. Saved to ``artifacts/benchmarks/heldout_alpha_floor.json``.
Results: benchmarks/README.md ("alpha with a floor").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HL = "../shared/data/hyperliquid/recorder_2025-09-04"
DATASETS = {
    "aapl": ("lobster", "../shared/data/lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip", None),
    "amzn": ("lobster", "../shared/data/lobster/LOBSTER_SampleFile_AMZN_2012-06-21_1.zip", None),
    "goog": ("lobster", "../shared/data/lobster/LOBSTER_SampleFile_GOOG_2012-06-21_1.zip", None),
    "hl-btc": ("hyperliquid", HL, "BTC"),
    "hl-eth": ("hyperliquid", HL, "ETH"),
    "hl-sol": ("hyperliquid", HL, "SOL"),
    "hl-wlfi": ("hyperliquid", HL, "WLFI"),
    "binance-btc": ("binance", "../shared/data/binance/usdm_btcusdt_20240808.gz", None),
}


def _post(idata, name):
    x = np.asarray(idata.posterior[name].values).ravel()
    return {"mean": float(x.mean()), "sd": float(x.std(ddof=1))}


def run(ds: str, draws: int) -> dict:
    from flows.fitting import observation_config, read_market
    from models import alpha as al
    from models import catalog
    from models.alpha.posterior import _per_fill_draws
    from models.data.tables import WindowSpec
    from models.sampling import SamplerConfig, diagnostics
    from mm_runtime.vocabulary import DEPTH_BUCKET_LABELS, DEPTH_BUCKETS_BPS

    source, path, asset = DATASETS[ds]
    t0 = time.perf_counter()
    market = read_market(source, Path(path), asset)
    fit_m, held_m = WindowSpec.parse("0:0.5").cut(market), WindowSpec.parse("0.5:1").cut(market)
    cfg = observation_config(fit_m)
    obs_fit = catalog.prepare("alpha", fit_m, "em", config=cfg)
    obs_held = catalog.prepare("alpha", held_m, "em", config=cfg)
    print(f"[{ds}] {market.asset}: {obs_fit.n_fills} fit / {obs_held.n_fills} held-out fills, bars "
          f"{cfg.bar_seconds:g} s ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    sc = SamplerConfig(sampler="pymc", chains=2, cores=1, draws=draws, tune=draws, seed=1, progressbar=False)
    doc = {"dataset": ds, "asset": str(market.asset), "bar_seconds": cfg.bar_seconds,
           "n_fit": obs_fit.n_fills, "n_held": obs_held.n_fills,
           "sweeps_fit": float(obs_fit.weight.sum()), "sweeps_held": float(obs_held.weight.sum()),
           "sampler": f"pymc NUTS, 2 chains x {draws} draws (+{draws} tune)"}
    fits, scores = {}, {}
    for name, mc in (("floor", al.AlphaConfig()), ("no_floor", al.AlphaConfig(floor=False))):
        t1 = time.perf_counter()
        idata = al.fit(obs_fit, sc, mc)
        d = diagnostics(idata, ["alpha_touch", "alpha_decay_bps"] + (["alpha_floor"] if mc.floor else []))
        fits[name] = idata
        scores[name] = al.heldout_lpd(idata, obs_held)
        doc[name] = {"elpd": scores[name]["elpd"], "se": scores[name]["se"], "divergences": d["divergences"],
                     "r_hat_max": d["r_hat_max"], "ess_bulk_min": d["ess_bulk_min"],
                     "wall_s": time.perf_counter() - t1,
                     "alpha_decay_bps": _post(idata, "alpha_decay_bps"),
                     "alpha_touch": {r: float(v) for r, v in zip(
                         ("low", "normal", "high", "extreme"),
                         idata.posterior["alpha_touch"].mean(("chain", "draw")).values)}}
        if mc.floor:
            doc[name]["alpha_floor"] = _post(idata, "alpha_floor")
        print(f"[{ds}] {name}: elpd {doc[name]['elpd']:.1f}, div {d['divergences']}, r_hat {d['r_hat_max']:.3f} "
              f"({doc[name]['wall_s']:.0f} s)", file=sys.stderr, flush=True)
    rows = al.compare_informed_flag(scores)
    sign = 1.0 if rows[0]["name"] == "floor" else -1.0
    doc["diff"] = {"elpd_diff": sign * rows[1]["elpd_diff"], "se": rows[1]["diff_se"]}  # floor - no floor
    # per depth bucket: held-out informed share vs each fit's mean predicted alpha; elpd difference
    b = np.searchsorted(np.asarray(DEPTH_BUCKETS_BPS), obs_held.depth_bps, side="right") - 1
    w = obs_held.weight
    pw = {k: _per_fill_draws(fits[k], obs_held)["alpha"].mean(0) for k in fits}
    pdiff = np.asarray(scores["floor"]["pointwise"]) - np.asarray(scores["no_floor"]["pointwise"])
    buckets = []
    for i, lab in enumerate(DEPTH_BUCKET_LABELS):
        m = b == i
        if not m.any():
            continue
        buckets.append({"bucket": lab, "fills": int(m.sum()),
                        "informed_share": float(np.sum(w[m] * obs_held.informed[m]) / np.sum(w[m])),
                        "alpha_floor_fit": float(np.sum(w[m] * pw["floor"][m]) / np.sum(w[m])),
                        "alpha_no_floor_fit": float(np.sum(w[m] * pw["no_floor"][m]) / np.sum(w[m])),
                        "elpd_diff": float(np.sum(w[m] * pdiff[m]))})
    doc["buckets"] = buckets
    doc["wall_s"] = time.perf_counter() - t0
    return doc


def report(doc: dict) -> None:
    print("| dataset | fit / held-out fills | alpha_floor (fit) | decay bp floor / none | elpd floor | elpd none "
          "| diff (floor - none) ± se | z |")
    print("|---|---|---|---|---|---|---|---|")
    for ds, r in doc.items():
        f, n = r["floor"], r["no_floor"]
        z = r["diff"]["elpd_diff"] / r["diff"]["se"] if r["diff"]["se"] > 0 else float("nan")
        print(f"| {ds} | {r['n_fit']:,} / {r['n_held']:,} | {f['alpha_floor']['mean']:.3f} ± "
              f"{f['alpha_floor']['sd']:.3f} | {f['alpha_decay_bps']['mean']:.1f} / {n['alpha_decay_bps']['mean']:.1f} "
              f"| {f['elpd']:.1f} | {n['elpd']:.1f} | {r['diff']['elpd_diff']:+.1f} ± {r['diff']['se']:.1f} | {z:+.1f} |")
    print("\nper depth bucket (held-out half): informed share | mean alpha floor fit | no-floor fit | elpd diff")
    for ds, r in doc.items():
        cells = "; ".join(f"{x['bucket']} n={x['fills']}: {x['informed_share']:.3f} | {x['alpha_floor_fit']:.3f} | "
                          f"{x['alpha_no_floor_fit']:.3f} | {x['elpd_diff']:+.1f}" for x in r["buckets"])
        print(f"- {ds}: {cells}")
    print("\nsampling: " + "; ".join(f"{ds} div {r['floor']['divergences']}/{r['no_floor']['divergences']} "
                                     f"r_hat {r['floor']['r_hat_max']:.3f}/{r['no_floor']['r_hat_max']:.3f} "
                                     f"{r['floor']['wall_s']:.0f}/{r['no_floor']['wall_s']:.0f} s"
                                     for ds, r in doc.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--out", default="artifacts/benchmarks/heldout_alpha_floor.json")
    ap.add_argument("--report", action="store_true", help="print the saved results")
    a = ap.parse_args()
    out = Path(a.out)
    doc = json.loads(out.read_text()) if out.exists() else {}
    if not a.report:
        for ds in a.datasets.split(","):
            if ds not in DATASETS:
                raise SystemExit(f"--datasets: unknown dataset {ds!r}; one of {', '.join(DATASETS)}")
            doc[ds] = run(ds, a.draws)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(doc, indent=1, default=float))
    report(doc)


if __name__ == "__main__":
    main()
