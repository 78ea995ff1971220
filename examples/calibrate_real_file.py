"""Calibrate a real market file through the calibration flow, then read one model's
posterior with ArviZ.

``flows.calibrate.run_calibration`` runs the whole flow (load and validate the data,
fit the regime HMM, then alpha, kappa and Hawkes on its regime path, diagnostics and
the gate, export of the prior bundle, one MLflow run with a nested run per model,
registration). Its result document names each model's posterior (``idata_path``, a
netCDF file) and the exported bundle. The observation rules given here (markout
horizon, informed threshold: what alpha means) are part of every fit's cache key and
travel into the bundle's ``observation`` block, where the live quoter reads them.

Default data: the LOBSTER AAPL sample (Nasdaq, 2012-06-21) under ``../shared/data``,
its first 20 minutes, with small sampler settings and a gate that short chains can
meet: a minute or three on a laptop. Results go to ``$MMCAL_ARTIFACTS`` (a new
temporary folder when unset, so your own registry is untouched).

Run from the repository root:

    .venv/bin/python examples/calibrate_real_file.py [PATH] [--source auto] [--window 0s:1200s]
        [--draws 300] [--chains 2] [--model kappa] [--markout-horizon 1] [--informed-threshold 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AAPL = REPO.parent / "shared" / "data" / "lobster" / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip"
GATE = {"max_r_hat": 1.05, "min_ess_bulk": 50, "min_ess_tail": 50}      # the demo's; default: 1.01, 400, 400
LOOSE_GATE = {"max_r_hat": 2.0, "min_ess_bulk": 3, "min_ess_tail": 3, "max_divergences": 50, "min_bfmi": 0.05}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", nargs="?", default=str(AAPL), help="market data file or folder")
    ap.add_argument("--source", default="auto", help="lobster | binance | hyperliquid | synthetic | auto")
    ap.add_argument("--asset", default=None, help="where the path holds several")
    ap.add_argument("--window", default="0s:1200s", help="fit window START:END (fractions or seconds)")
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--model", default="kappa", help="the posterior to summarize")
    ap.add_argument("--markout-horizon", type=float, default=1.0, help="s (alpha's markout rule)")
    ap.add_argument("--informed-threshold", type=float, default=1.0, help="bps (alpha's informed rule)")
    ap.add_argument("--loose-gate", action="store_true", help="a gate any finished run passes (smoke tests)")
    a = ap.parse_args()
    if not os.environ.get("MMCAL_ARTIFACTS"):  # before the flows are imported: they read it
        os.environ["MMCAL_ARTIFACTS"] = tempfile.mkdtemp(prefix="mmcal-example-")
    print(f"artifacts: {os.environ['MMCAL_ARTIFACTS']}")

    import arviz as az

    from flows.calibrate import run_calibration
    from models import catalog

    res = run_calibration(
        a.source, a.path, a.asset, window=a.window, plots=False,
        sampler={"sampler": "pymc", "draws": a.draws, "tune": a.draws, "chains": a.chains, "cores": 1, "seed": 1,
                 "progressbar": False},
        sampler_overrides={"regime": {"sampler": "nutpie"}, "hawkes": {"sampler": "nutpie"}},
        gate=LOOSE_GATE if a.loose_gate else GATE,
        observation={"markout_horizon_s": a.markout_horizon, "informed_threshold_bps": a.informed_threshold})

    d = res["data"]
    print(f"\n{res['asset']} ({d['source']}), window {d['window']}: {d['duration_s']:.0f} s, "
          f"{d['rows']['trades']:,} trades, {d['bar_seconds']:g} s bars; status {res['status']}")
    num = lambda x, f: "n/a" if x is None else format(x, f)  # noqa: E731 - None: not computable
    for m, r in res["models"].items():
        print(f"  {m:<7} {r['n_obs']:>6} obs  r_hat_max {num(r['r_hat_max'], '.3f')}  "
              f"ess_bulk_min {num(r['ess_bulk_min'], '.0f')}  divergences {r['divergences']}  "
              f"gate {'pass' if r['gate']['passed'] else 'FAIL'}{'  (cached)' if r['cache_hit'] else ''}")
    for f in res["failures"]:
        print(f"  gate failure: {f}")
    print(f"bundle: {res['bundle_path']}")
    if res["bundle_path"]:
        from mm_runtime import load_bundle

        o = load_bundle(res["bundle_path"]).observation     # the rules travel with the priors
        print(f"bundle observation rules: markout horizon {o.markout_horizon_s:g} s, informed threshold "
              f"{o.informed_threshold_bps:g} bps, {o.bar_seconds:g} s bars")
    print(f"registered: {res['registered_model']} version {res['version']} {res['aliases']}")
    print(f"MLflow UI: {res['mlflow_ui']}")

    idata = az.from_netcdf(res["models"][a.model]["idata_path"])
    print(f"\n{a.model} posterior ({res['models'][a.model]['idata_path']}):")
    print(az.summary(idata, var_names=list(catalog.spec(a.model).var_names), kind="all").to_string())


if __name__ == "__main__":
    main()
