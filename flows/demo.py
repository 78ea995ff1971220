"""The demo: the whole job on the embedded synthetic market (``mmcal demo``, ``./mm demo``).

One Prefect flow (``demo``) with the real flows as subflows::

    calibrate (alpha threshold variant, fit window 0:0.75)   -> version A, challenger (+ champion if none)
    calibrate (alpha mixture variant, same window)            -> version B, challenger
        (the regime, kappa and hawkes fits are the cached ones of the first calibration)
    compare B vs the champion on the held-out last quarter    -> promote or keep
    deploy the champion to artifacts/live/<ASSET>.json

then (:func:`replay_ladder`) a ``Quoter`` on the deployed file, hot-reload armed,
replays the last minutes of the held-out data and prints its ladder, and
(:func:`paper_ab`) the deployed bundle is paper-traded on the whole held-out quarter,
learned (the trade-through model + online updates) and queue (learned with the
tick-grid ladder from the fills model) against the original system's static
constants, with an HTML report.

Sampler settings are CI-sized (:data:`DEMO_SAMPLER`: 2 chains x 500 draws; the regime
HMM 2 x 2000 on nutpie, about 50 s with its JAX likelihood) on half an hour of market so the job finishes in about three minutes on
a 2-core machine, and the gate is one such short chains can meet (:data:`DEMO_GATE`:
R-hat <= 1.05, bulk/tail ESS >= 50, no divergences, BFMI >= 0.3). The default gate of
a real calibration asks for R-hat <= 1.01 and ESS >= 400: the regime HMM mixes slowly
on the synthetic market (its upper states trade off persistent volatility against
jump bars, see ``tests/models/test_regime.py``; 3-5 effective draws per 100 here: 2 x 600
gave R-hat 1.09 and ESS 18, 2 x 2000 gives R-hat 1.016 and ESS 96), so it needs the default 4 x 1000 draws or more for that. The
settings and the gate are printed, and logged with every MLflow run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.runtime import default_parallel_fits, task_runner

DEMO_SAMPLER: dict[str, Any] = {"sampler": "pymc", "draws": 500, "tune": 500, "chains": 2, "cores": 1,
                                "seed": 7, "progressbar": False}
DEMO_SAMPLER_OVERRIDES: dict[str, dict] = {"regime": {"sampler": "nutpie", "draws": 2000, "tune": 1000},
                                           "hawkes": {"sampler": "nutpie"}, "fills": {"sampler": "nutpie"}}
DEMO_GATE: dict[str, Any] = {"max_r_hat": 1.05, "min_ess_bulk": 50, "min_ess_tail": 50}
FIT_WINDOW = "0:0.75"


@flow(name="demo", flow_run_name="demo-{asset}")
def demo(market_dir: str, asset: str = "SYN", window: str = FIT_WINDOW, sampler: dict | None = None,
         sampler_overrides: dict | None = None, gate: dict | None = None) -> dict[str, Any]:
    """Calibrate twice (the two alpha variants), compare, deploy (module docstring).
    Returns ``{"calibrations": [...], "comparison": ..., "deploy": ...}``; stops
    after the first calibration when it fails the gate (``deploy`` None)."""
    from flows.calibrate import calibrate_asset, result_of
    from flows.compare import compare
    from flows.deploy import deploy

    logger = get_run_logger()
    sampler = sampler or DEMO_SAMPLER
    kw = dict(source="synthetic", path=str(market_dir), window=window, sampler=sampler,
              sampler_overrides=DEMO_SAMPLER_OVERRIDES if sampler_overrides is None else sampler_overrides,
              gate=DEMO_GATE if gate is None else gate)
    runner = task_runner(None, default_parallel_fits(int(sampler.get("chains", 2))))
    cal = calibrate_asset.with_options(task_runner=runner)
    out: dict[str, Any] = {"calibrations": [], "comparison": None, "deploy": None}
    first = result_of(cal(alpha_variant="threshold", return_state=True, **kw))
    out["calibrations"].append(first)
    if first["status"] == "gate_failed":
        logger.error("the first calibration failed the gate: nothing to compare or deploy")
        return out
    second = result_of(cal(alpha_variant="mixture", return_state=True, **kw))
    out["calibrations"].append(second)
    if second["status"] != "gate_failed":
        out["comparison"] = compare(asset=first["asset"])
    else:
        logger.warning("the mixture variant failed the gate: not compared")
    out["deploy"] = deploy(asset=first["asset"], alias="champion")
    return out


def replay_ladder(bundle_path: str | Path, market, seconds: float = 120.0) -> dict[str, Any]:
    """A ``Quoter`` on the deployed bundle file (watched: a new deploy is hot-reloaded)
    replays the last ``seconds`` of ``market`` (quote updates and public trades, in
    time order, event time as the clock) and returns its last ladder (the
    ``mmcal quote`` document) with the number of events and the learned state's
    data weights."""
    import numpy as np

    from mm_runtime import QuoterConfig
    from mm_runtime.quoter import Quoter, quote_report

    config = QuoterConfig()
    quoter = Quoter(bundle_path, config, replay=True, metrics=False)
    start = market.end_ns - int(seconds * 1e9)
    q_ = market.quotes[market.quotes["ts"] >= start]
    t_ = market.trades[market.trades["ts"] >= start]
    events = sorted([(int(ts), 0, float(b), float(a)) for ts, b, a in zip(q_["ts"], q_["bid"], q_["ask"])]
                    + [(int(ts), 1, float(p), float(s)) for ts, p, s in zip(t_["ts"], t_["price"], t_["side"])])
    bid = ask = None
    last = None
    for ts, kind, x, y in events:
        if kind == 0:
            bid, ask = x, y
            last = quoter.on_event(ts / 1e9, bid=bid, ask=ask, margin_available=10_000.0)
        elif bid is not None:
            last = quoter.on_event(ts / 1e9, bid=bid, ask=ask, trade=(x, y), margin_available=10_000.0)
    if last is None:
        raise ValueError("no quotes in the replay window")
    rep = quote_report(last, quoter.bundle, config, quoter.ladder_params()).to_dict()
    rep["replay"] = {"events": quoter.n_events, "seconds": seconds, "bundle": str(bundle_path),
                     "model_version": quoter.bundle.model_version,
                     "hawkes_intensity": [float(v) for v in np.asarray(last.hawkes_intensity)]}
    return rep


def paper_ab(bundle_path: str | Path, market, out_dir: str | Path) -> dict[str, Any]:
    """Paper-trade the deployed bundle on ``market`` (static vs learned vs queue; blocks: the
    replay's default, at least 10); writes the report into ``out_dir`` and returns the
    ``mmcal paper`` document."""
    from mm_runtime import load_bundle
    from mm_runtime.paper.compare import run_ab
    from mm_runtime.paper.replay import ReplayConfig
    from models.data.loaders import replay_data
    from models.paper_report import ab_document, write_report

    ab = run_ab(replay_data(market), load_bundle(bundle_path), ("static", "learned", "queue"), ReplayConfig())
    ab["window"], ab["priors"] = "held-out quarter", str(bundle_path)
    report = write_report(ab, out_dir)
    return {**ab_document(ab), "report": str(report)}


__all__ = ["DEMO_GATE", "DEMO_SAMPLER", "DEMO_SAMPLER_OVERRIDES", "FIT_WINDOW", "demo", "paper_ab", "replay_ladder"]
