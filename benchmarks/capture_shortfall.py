"""The capture shortfall per level as the fills fit exports it (issue 16, the edge's
capture term): queue orders of a window under the default observation rules
(``models.fills.observations``, the placeholder regimes: the regimes do not enter),
then ``models.fills.capture_shortfall`` -- per level the mean of ``depth_bps -
capture_bps`` over the filled orders with a known capture, its se and the fill count --
beside the mean capture at placement and at the fill.  Seconds per window.

    .venv/bin/python benchmarks/capture_shortfall.py [WINDOW ...]   # default 0:0.15 0:0.5 0.5:1

Numbers: benchmarks/README.md, "The capture shortfall of the tick ladder's edge".
"""

from __future__ import annotations

import sys
import time

import numpy as np

from models.data.loaders import load
from models.data.observations import ObservationConfig
from models.data.tables import WindowSpec, window_market
from models.fills import capture_shortfall, observations

DATA, ASSET = "../shared/data/hyperliquid/recorder_2025-09-04", "BTC"


def main(windows: list[str]) -> None:
    full = load("hyperliquid", DATA, asset=ASSET, with_books=True)
    cfg = ObservationConfig()
    print("| window | level | fills | capture at placement (bp) | capture at the fill (bp) | shortfall ± se (bp) |")
    print("|---|---|---|---|---|---|")
    for win in windows:
        t0 = time.perf_counter()
        m = window_market(full, *WindowSpec.parse(win).bounds_ns(full))
        o = observations(m, None, config=cfg)
        cs = capture_shortfall(o, cfg.queue_levels)[ASSET]
        for lv in range(cfg.queue_levels + 1):
            sel = o.filled & np.isfinite(o.capture_bps) & (o.level == lv)
            c = cs[str(lv)]
            print(f"| {win} | {lv} | {c['n']} | {o.depth_bps[sel].mean():.3f} | {o.capture_bps[sel].mean():.3f} "
                  f"| {c['mean']:.3f} ± {c['se']:.3f} |")
        print(f"<!-- {win}: {o.n_orders} orders, {time.perf_counter() - t0:.1f} s -->")


if __name__ == "__main__":
    main(sys.argv[1:] or ["0:0.15", "0:0.5", "0.5:1"])
