"""Deploy a prior bundle and quote from it with the live ``Quoter``.

With ``--asset``, the registered bundle of that asset (alias ``--alias``, default
``champion``) in the registry at ``$MMCAL_ARTIFACTS`` is deployed by the deploy flow
(``flows.deploy.deploy``: validated, written atomically to ``<artifacts>/live/ASSET.json``,
the previous one kept for rollback): e.g. after ``examples/calibrate_real_file.py``
with the same ``MMCAL_ARTIFACTS``. Without it, the hand-written example bundle
(``mm_runtime.example_bundle``) is written to that path instead: no registry needed.

A ``Quoter`` then watches the file (a new deploy is hot-reloaded; it learns alpha under
the bundle's markout horizon and informed threshold, printed first), takes a minute of
made-up market events (best bid/ask every 0.5 s, a public trade every 2 s, one fill of
our own bid, which leaves us long) and prints its last ladder: depth, price, size,
fill probability, α and edge per level.

Run from the repository root:

    .venv/bin/python examples/deploy_and_quote.py [--asset AAPL] [--mid 100] [--events 120]
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

SIGMA_BPS = 1.0  # volatility of the made-up mid, bps/sqrt(s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--asset", default=None, help="deploy this asset's registered bundle (default: the example)")
    ap.add_argument("--alias", default="champion")
    ap.add_argument("--mid", type=float, default=100.0, help="starting mid price")
    ap.add_argument("--events", type=int, default=120, help="market updates, one per 0.5 s")
    ap.add_argument("--margin", type=float, default=10_000.0, help="margin available, quote currency")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if not os.environ.get("MMCAL_ARTIFACTS"):  # before the flows are imported: they read it
        os.environ["MMCAL_ARTIFACTS"] = tempfile.mkdtemp(prefix="mmcal-example-")

    from flows.deploy import deploy, live_paths
    from mm_runtime import Quoter, QuoterConfig, dump_bundle, example_bundle, ladder_rows
    from mm_runtime.quoter import quote_report

    if a.asset:
        entry = deploy(asset=a.asset, alias=a.alias)
        path = entry["target"]
        print(f"deployed {entry['ref']} (model {entry['model_version']}): {entry['status']} -> {path}")
    else:
        path = dump_bundle(example_bundle("SYN"), live_paths("SYN")["live"])
        print(f"wrote the example bundle to {path}")

    quoter = Quoter(path, QuoterConfig(), replay=True, metrics=False)   # replay: event time is the clock
    c = quoter.effective_config          # the markout rule alpha is learned under: the fit's, from the bundle
    print(f"markout horizon {c.markout_horizon_s:g} s, informed threshold {c.informed_threshold_bps:g} bps "
          f"(the bundle's observation rules)")
    rng = np.random.default_rng(a.seed)
    t0, mid, q, position = 1_700_000_000.0, a.mid, None, 0.0
    for i in range(a.events):
        ts = t0 + 0.5 * i
        mid *= np.exp(1e-4 * SIGMA_BPS * np.sqrt(0.5) * rng.standard_normal())  # a 0.5 s step
        bid, ask = mid * (1 - 1e-4), mid * (1 + 1e-4)                      # 2 bps wide
        trade = fill = None
        if i % 4 == 3:                                                     # a market order at the touch
            side = rng.choice([1.0, -1.0])
            trade = (ask if side > 0 else bid, side)
        if i == a.events // 2 and q is not None and q.size[0, 0] > 0:     # our level-0 bid is hit
            fill = (float(q.price[0, 0]), 1.0, float(q.depth_bps[0, 0]))
            position += float(q.size[0, 0])
            print(f"fill: bought {q.size[0, 0]:.4f} at {fill[0]:.4f} ({fill[2]:.2f} bps from the mid)")
        q = quoter.on_event(ts, bid=bid, ask=ask, trade=trade, fill=fill, position=position,
                            margin_available=a.margin)

    s = quote_report(q, quoter.bundle, quoter.config).summary
    print(f"{quoter.asset} after {quoter.n_events} events, position {position:.4f}: mid {s['mid']:.4f}, "
          f"valid {s['valid']} ({s['reason']}), sigma {s['sigma_bps']:.3f} bps/sqrt(s), half spread bid/ask "
          f"{s['half_spread_bps']['bid']:.3f}/{s['half_spread_bps']['ask']:.3f} bps, "
          f"alpha at the touch {s['alpha_touch']:.4f}")
    print("regime probabilities:", {r: round(p, 3) for r, p in s["regime_probs"].items()})
    print(f"{'side':<5}{'level':>6}{'depth_bps':>11}{'price':>13}{'size':>10}{'p_fill':>8}{'alpha':>8}{'edge_bps':>10}")
    for r in ladder_rows(q):
        print(f"{r['side']:<5}{r['level']:>6}{r['depth_bps']:>11.3f}{r['price']:>13.4f}{r['size']:>10.4f}"
              f"{r['p_fill']:>8.3f}{r['alpha']:>8.4f}{r['edge_bps']:>10.3f}")


if __name__ == "__main__":
    main()
