"""The multi-scale Hawkes kernel on real order flow: for M = 1..4 components (free
ordered decays, models.hawkes.HawkesKernel) the time-rescaling KS D of the fit on the
whole window, the branching ratio (spectral radius of sum_m n^m), the decays, and the
held-out log predictive density of the last 20 % of the window for the fit on the first
80 % (models.hawkes.select.map_heldout). Fits at the penalised maximum (MAP without the
regime pooling, models.hawkes.start.penalised_mle), not NUTS: 4 kernels x 2 fits x 5
markets at full size are hours of sampling on a loaded 2-core machine.

Regimes: the quantile labels of the volatility bars (catalog regime source "quantile"),
so no regime HMM is fitted first; the baseline is per regime x side as in the model.

    uv run python benchmarks/hawkes_multiscale_real.py --datasets amzn,goog,aapl,hl-btc,hl-eth
    uv run python benchmarks/hawkes_multiscale_real.py --datasets amzn --max-events 20000

Results: artifacts/benchmarks/hawkes_multiscale_real.json (one entry per dataset, saved
after each), table in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

DATASETS = {
    "amzn": ("lobster", "../shared/data/lobster/LOBSTER_SampleFile_AMZN_2012-06-21_1.zip", None),
    "goog": ("lobster", "../shared/data/lobster/LOBSTER_SampleFile_GOOG_2012-06-21_1.zip", None),
    "aapl": ("lobster", "../shared/data/lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip", None),
    "hl-btc": ("hyperliquid", "../shared/data/hyperliquid/recorder_2025-09-04", "BTC"),
    "hl-eth": ("hyperliquid", "../shared/data/hyperliquid/recorder_2025-12-10_ETH", "ETH"),
}


def truncate(obs, max_events: int | None):
    """The first ``max_events`` arrivals (the window ends at the next arrival)."""
    from models.hawkes.select import split_time

    if max_events is None or obs.n_events <= max_events:
        return obs
    frac = float(obs.t[max_events]) / float(obs.duration_s[0])
    return split_time(obs, frac)[0]


def main() -> None:
    from models import catalog
    from models import hawkes as H
    from models.data import loaders
    from models.data import observations as ob
    from models.hawkes.model import branching_from_raw
    from models.hawkes.select import map_heldout
    from models.hawkes.start import decay_floor, penalised_mle

    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="amzn,goog,aapl,hl-btc,hl-eth")
    ap.add_argument("--components", default="1,2,3,4")
    ap.add_argument("--max-events", type=int, default=None)
    args = ap.parse_args()
    out = Path("artifacts/benchmarks/hawkes_multiscale_real.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = json.loads(out.read_text()) if out.exists() else {}
    pr = H.HawkesPriors()
    for ds in args.datasets.split(","):
        source, path, asset = DATASETS[ds]
        t0 = time.perf_counter()
        market = loaders.load(source, path, asset)
        cfg = ob.auto_bar_config(market)
        obs = truncate(catalog.prepare("hawkes", market, "quantile", config=cfg), args.max_events)
        gaps = np.diff(obs.t)
        same = np.diff(obs.side) == 0
        print(f"[{ds}] {obs.n_events} arrivals over {obs.duration_s[0]:.0f} s; same-side gaps < 1 ms: "
              f"{np.mean(gaps[same] < 1e-3):.3f}; load {os.getloadavg()}", file=sys.stderr, flush=True)
        res = doc.setdefault(ds, {"rows": []})
        res.update(n_events=obs.n_events, duration_s=float(obs.duration_s[0]),
                   same_side_gaps_below_1ms=float(np.mean(gaps[same] < 1e-3)))
        for m in (int(x) for x in args.components.split(",")):
            res["rows"] = [r for r in res["rows"] if r["components"] != m]     # a re-run replaces its rows
            t1 = time.perf_counter()
            k = H.HawkesKernel(components=m)
            st = penalised_mle(obs, pr, decay_floor(obs, pr.max_decay_lifetime_windows), k if m > 1 else None)
            n_tot = branching_from_raw(st["theta"])
            if m == 1:
                n_k = n_tot
            else:
                full = np.concatenate([np.zeros((2, 2, 1)), st["weights_raw"]], axis=-1)
                w = np.exp(full - full.max(-1, keepdims=True))
                n_k = np.moveaxis(n_tot[..., None] * (w / w.sum(-1, keepdims=True)), -1, 0)
            prm = {"mu": np.exp(st["log_mu"]), "n": n_k, "beta": np.asarray(st["beta"])}
            gof = H.goodness_of_fit(prm, obs)
            held = map_heldout(obs, pr, k)
            row = {"components": m, "ks_d": gof["ks_d"], "ks_d_buy": gof.get("ks_d_buy"),
                   "ks_d_sell": gof.get("ks_d_sell"), "ties": gof["ties"],
                   "branching_ratio": H.spectral_radius(n_tot), "beta": np.atleast_1d(st["beta"]).tolist(),
                   "component_ratio": [H.spectral_radius(x) for x in np.reshape(n_k, (-1, 2, 2))],
                   "heldout_lpd": held["lpd"], "heldout_n": held["n"], "wall_s": time.perf_counter() - t1}
            res["rows"] = sorted(res["rows"] + [row], key=lambda r: r["components"])
            out.write_text(json.dumps(doc, indent=1))
            print(f"[{ds}] M={m}: KS D {row['ks_d']:.4f} rho {row['branching_ratio']:.3f} beta "
                  f"{np.round(row['beta'], 4).tolist()} held-out lpd {row['heldout_lpd']:.4f} "
                  f"({row['wall_s']:.0f} s)", file=sys.stderr, flush=True)
        print(f"[{ds}] done in {time.perf_counter() - t0:.0f} s; load {os.getloadavg()}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
