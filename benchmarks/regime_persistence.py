"""The regime HMM's EM point per volatility-bar rule: each state's expected duration and,
on a synthetic market, the share of bars decoded right (docs/models/regime.md,
"Persistence").

For every rule ``ESTIMATOR@BAR_SECONDS`` (``--rules``, default MedRV and realized
variance at 10-60 s bars) the market's regime bars are built as ``mmcal fit --model
regime --volatility-estimator ESTIMATOR --bar-seconds BAR_SECONDS`` builds them
(:func:`flows.fitting.observation_config`, :func:`models.catalog.prepare`), the EM/MAP
point is fitted (:func:`models.regime.em_fit`, where the sampler's chains start) and
one markdown row is printed: bars, the states' expected durations in bars
(:func:`models.regime.state_durations`), the shortest, and, where the market has a true
regime path, the share of bars whose argmax regime is the true one.

    .venv/bin/python -P benchmarks/regime_persistence.py artifacts/benchmarks/scaling/markets/busy_x5_6h \\
        --source synthetic
    .venv/bin/python -P benchmarks/regime_persistence.py ../shared/data/lobster/LOBSTER_SampleFile_GOOG_2012-06-21_1.zip \\
        --source lobster --rules default

``default``: the data's default bars (what ``mmcal fit`` uses without bar flags).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RULES = "medrv@10,medrv@15,medrv@30,medrv@60,realized@10,realized@15,realized@20,realized@30,realized@60"


def settings(rule: str) -> dict:
    """``default`` -> {}; ``ESTIMATOR@SECONDS`` -> the observation settings
    (:func:`benchmarks.scaling.bar_rule`, the same syntax as ``scaling.py --bars``)."""
    from benchmarks.scaling import bar_rule

    r = bar_rule(rule, "--rules")
    return {} if r is None else {"volatility_estimator": r[0], "bar_seconds": float(r[1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--source", required=True)
    ap.add_argument("--asset")
    ap.add_argument("--rules", default=RULES, help="comma-separated: default or ESTIMATOR@BAR_SECONDS")
    a = ap.parse_args()
    rules = a.rules.split(",")
    for r in rules:
        settings(r)  # checked before the data are read
    from flows.fitting import observation_config, read_market_for
    from models import catalog
    from models.regime import em_fit, state_durations

    market = read_market_for(("regime",), a.source, Path(a.path), a.asset)
    truth = catalog.has_truth_path(market)
    print(f"{a.path} ({a.source}{', ' + a.asset if a.asset else ''})\n")
    print("| bars | n | expected durations, bars (low / normal / high / extreme) | shortest | decoded right | EM s |")
    print("|---|---:|---|---:|---:|---:|")
    for rule in rules:
        t0 = time.perf_counter()
        cfg = observation_config(market, settings(rule))
        obs = catalog.prepare("regime", market, "em", config=cfg)
        em = em_fit(obs)
        d = state_durations(em["regime_transition"])
        right = "—"
        if truth:
            true = np.asarray(catalog.regime_path(market, "truth", config=cfg))
            right = f"{np.mean(np.argmax(em['smoothed'], axis=1) == true):.1%}"
        name = f"{cfg.volatility_estimator} {cfg.bar_seconds:g} s" + (" (default)" if rule == "default" else "")
        print(f"| {name} | {obs.n_bars:,} | {' / '.join(f'{x:.1f}' for x in d)} | {d.min():.1f} | {right} | "
              f"{time.perf_counter() - t0:.1f} |", flush=True)


if __name__ == "__main__":
    main()
