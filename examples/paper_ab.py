"""Paper-trade an A/B on a real replay: the original system's static constants against
the calibrated bundle with online learning (and without), on the same market path.

The market's trades, best quotes and book snapshots (``models.data.loaders.replay_data``)
are replayed through a ``Quoter`` once per configuration (``mm_runtime.paper.compare``:
``static``, ``learned``, ``bundle``), with order latency, queue position from the book
and the venue's tick. It prints the side-by-side table (PnL, Sharpe, drawdown, fills,
markouts, inventory) and the paired comparison: each configuration against the first,
block by block, with a 95 % t interval of the mean PnL difference. ``mmcal paper`` does
the same and writes an HTML report.

Default: 30 minutes of the LOBSTER AAPL sample under ``../shared/data`` and the
example bundle (``mm_runtime.example_bundle``); ``--priors`` takes a calibrated bundle
(the ``bundle:`` path ``examples/calibrate_real_file.py`` prints). Run from the
repository root:

    .venv/bin/python examples/paper_ab.py [PATH] [--source auto] [--window 0.5:0.58]
        [--priors BUNDLE.json] [--configs static,learned,bundle] [--block-s 300]
"""

from __future__ import annotations

import argparse
from pathlib import Path

AAPL = Path(__file__).resolve().parents[2] / "shared" / "data" / "lobster" / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", nargs="?", default=str(AAPL), help="market data file or folder")
    ap.add_argument("--source", default="auto", help="lobster | binance | hyperliquid | synthetic | auto")
    ap.add_argument("--asset", default=None, help="where the path holds several")
    ap.add_argument("--window", default="0s:1800s", help="replay window START:END (fractions or seconds)")
    ap.add_argument("--priors", default=None, help="bundle file (default: the example bundle)")
    ap.add_argument("--configs", default="static,learned,bundle", help="the first is the baseline")
    ap.add_argument("--block-s", type=float, default=300.0, help="block length of the paired comparison, s")
    a = ap.parse_args()

    from mm_runtime import example_bundle, load_bundle
    from mm_runtime.paper.compare import run_ab
    from mm_runtime.paper.replay import ReplayConfig
    from models.data.loaders import load, replay_data
    from models.data.tables import DataError, WindowSpec, window_market

    try:
        market = load(a.source, a.path, a.asset, with_books=True)    # the book: queue position at our price
    except DataError:
        market = load(a.source, a.path, a.asset)
    market = window_market(market, *WindowSpec.parse(a.window).bounds_ns(market))
    bundle = load_bundle(a.priors) if a.priors else example_bundle(market.asset)
    data = replay_data(market)
    print(f"{market.asset} ({market.source}), window {a.window}: {data.end - data.start:.0f} s, "
          f"{len(data.trade_ts):,} trades, {len(data.quote_ts):,} quotes, tick {data.tick:g}; "
          f"priors {a.priors or 'example bundle'} ({bundle.model_version})")

    ab = run_ab(data, bundle, tuple(a.configs.split(",")), ReplayConfig(block_s=a.block_s))
    cols = {"pnl": "PnL", "sharpe_per_day": "Sharpe/day", "max_drawdown": "max DD", "fills": "fills",
            "mean_markout_bps": "markout bps", "inventory_sd": "inv sd", "quoted_share": "quoted"}
    print(f"\n{'config':<9}" + "".join(f"{h:>12}" for h in cols.values()))
    for row in ab["table"]:
        print(f"{row['config']:<9}" + "".join(f"{'n/a':>12}" if row[c] is None else f"{row[c]:>12.4g}" for c in cols))
    print(f"\npaired by {a.block_s:g} s blocks against {ab['baseline']} (PnL difference, 95% t interval):")
    for name, p in ab["paired"].items():
        if p["mean_diff"] is None:
            print(f"  {name:<8} {p['blocks']} blocks: too few for an interval")
            continue
        print(f"  {name:<8} mean {p['mean_diff']:+.4g}  [{p['ci_low']:+.4g}, {p['ci_high']:+.4g}]  "
              f"won {p['wins']}/{p['blocks']} blocks")


if __name__ == "__main__":
    main()
