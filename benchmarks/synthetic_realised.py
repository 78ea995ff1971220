"""What the synthetic data themselves say about the arrival rate and kappa per regime:
the maximum-likelihood estimates from the generator's own arrivals (the true regime
path, every arrival's true depth), pooled over a range of seeds, against the truth.

A coverage study on a handful of seeds measures the model *and* the seeds: when the
realised arrivals of those seeds lie off the truth, every model's intervals miss
together. Estimators (exact for the generator, independent of the models): rate
A[r, s] = arrivals / time in regime r; kappa[r, s] = 1 / mean depth (exponential
depths, all arrivals: informed ones are thinned from the same depth law,
docs/data/synthetic.md). z: the pooled estimate's distance from the truth in
Poisson standard errors (1 / sqrt(arrivals); the Hawkes clustering widens the rate's
by up to 1 / (1 - n) = 1.25 here, n = 0.2 the branching's spectral radius).

With ``--decode``: the regime HMM's EM/MAP decoding as ``mmcal fit`` makes it
(``models.catalog.regime_probabilities``, the bar length chosen from the data, on the
1 s grid or ``--rv-sample-seconds``) against the true path: per seed, the true and
decoded bars per regime and the share decoded right (argmax), and the pooled confusion.
``--old-em-starts``: EM from its six original starts only (``em_fit(...,
start_quantiles=())``), the decoding before the quantile-subset starts.

    uv run python benchmarks/synthetic_realised.py --seeds 7000:7010 --seeds 8000:8060
    uv run python benchmarks/synthetic_realised.py --decode --seeds 7100:7110 --duration 21600 [--rv-sample-seconds 0.1]
    uv run python benchmarks/synthetic_realised.py --decode --seeds 7010:7020 [--old-em-starts]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def realised(seeds: range, duration_s: float) -> list[dict]:
    from models.data.synthetic import REGIMES, SIDES, SyntheticConfig, simulate_market

    cfg = SyntheticConfig()
    n = np.zeros((4, 2))
    depth = np.zeros((4, 2))
    time_s = np.zeros(4)
    for seed in seeds:
        m = simulate_market(seed=seed, duration_s=duration_s, config=cfg)
        ta = m.meta["truth_arrivals"]
        path = np.asarray(m.truth["regime_path"])
        time_s += np.bincount(path, minlength=4) * m.truth["bar_seconds"]
        for r in range(4):
            for s, sign in enumerate((1, -1)):
                d = ta.depth_bps[(ta.regime == r) & (ta.side == sign)].to_numpy()
                n[r, s] += len(d)
                depth[r, s] += d.sum()
    rows = []
    for r, rn in enumerate(REGIMES):
        for s, sn in enumerate(SIDES):
            k = n[r, s]
            rate, kap = k / time_s[r], k / depth[r, s]
            a_true, k_true = cfg.rates()[r, s], cfg.kappas()[r, s]
            rows.append({"cell": f"{rn},{sn}", "arrivals": int(k),
                         "rate": rate, "rate_truth": a_true, "rate_z": (rate / a_true - 1) * np.sqrt(k),
                         "kappa": kap, "kappa_truth": k_true, "kappa_z": (kap / k_true - 1) * np.sqrt(k)})
    return rows


def decoding(seeds: range, duration_s: float, rv_sample_seconds: float | None, old_em_starts: bool = False) -> None:
    from flows.fitting import observation_config
    from models import catalog
    from models import regime as rg
    from models.data.observations import volatility_bars
    from models.data.synthetic import REGIMES, simulate_market

    conf = np.zeros((4, 4), dtype=np.int64)
    print("| seed | true bars per regime | decoded | right |\n|---|---|---|---|")
    for seed in seeds:
        m = simulate_market(seed=seed, duration_s=duration_s)
        cfg = observation_config(m, {} if rv_sample_seconds is None else {"rv_sample_seconds": rv_sample_seconds})
        bars = volatility_bars(m, cfg)
        if old_em_starts:
            dec = np.argmax(rg.em_fit(catalog.prepare("regime", m, bars=bars, config=cfg), start_quantiles=())
                            ["smoothed"], axis=1)
        else:
            dec = np.argmax(catalog.regime_probabilities(m, bars=bars, config=cfg), axis=1)
        true = np.asarray(catalog.regime_path(m, "truth", bars=bars, config=cfg))
        np.add.at(conf, (true, dec), 1)
        print(f"| {seed} | {np.bincount(true, minlength=4).tolist()} | {np.bincount(dec, minlength=4).tolist()} "
              f"| {np.mean(dec == true):.3f} |")
    print(f"\nbars {cfg.bar_seconds:g} s on a {cfg.rv_sample_seconds:g} s grid; pooled right "
          f"{np.trace(conf) / conf.sum():.4f}; rows true, columns decoded ({', '.join(REGIMES)}):\n")
    for r, rn in enumerate(REGIMES):
        print(f"    {rn:8s} " + " ".join(f"{v:6d}" for v in conf[r]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", action="append", required=True, metavar="A:B",
                    help="a range of seeds, A inclusive to B exclusive (repeatable)")
    ap.add_argument("--duration", type=float, default=3600.0, help="seconds per market")
    ap.add_argument("--decode", action="store_true", help="the regime decoding against the true path instead")
    ap.add_argument("--rv-sample-seconds", type=float, default=None, help="with --decode: the bars' grid, s")
    ap.add_argument("--old-em-starts", action="store_true", help="with --decode: EM from its six original starts")
    a = ap.parse_args()
    for spec in a.seeds:
        try:
            lo, hi = (int(x) for x in spec.split(":"))
        except ValueError:
            ap.error(f"--seeds {spec!r}: expected A:B, two integers")
        print(f"\nseeds {lo}-{hi - 1}, {a.duration:g} s each\n")
        if a.decode:
            decoding(range(lo, hi), a.duration, a.rv_sample_seconds, a.old_em_starts)
            continue
        print("| cell | arrivals | rate (truth) | z | kappa (truth) | z |\n|---|---|---|---|---|---|")
        for w in realised(range(lo, hi), a.duration):
            print(f"| {w['cell']} | {w['arrivals']:,} | {w['rate']:.4f} ({w['rate_truth']:g}) | {w['rate_z']:+.1f} "
                  f"| {w['kappa']:.3f} ({w['kappa_truth']:g}) | {w['kappa_z']:+.1f} |")


if __name__ == "__main__":
    main()
