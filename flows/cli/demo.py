"""``mmcal demo``: the main job on the embedded synthetic market (flows/demo.py)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import typer

from flows.cli.app import app, emit_json, flows_start, guarded, stage
from flows.cli.data import write_synthetic
from flows.cli.render import render_demo


def prefect_ui_command() -> str:
    """How to look at the flow runs: a Prefect server on this process's database
    (``PREFECT_HOME``), as typed here (:func:`models.paths.tool_command`); the API's
    address when ``PREFECT_API_URL`` names a server."""
    from models.paths import tool_command

    url = os.environ.get("PREFECT_API_URL")
    if url:
        return f"open {url.removesuffix('/api')}"
    home = os.environ.get("PREFECT_HOME", "")
    return f"PREFECT_HOME={shlex.quote(home)} {tool_command('prefect')} server start"


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("artifacts/demo"), "--out", help="Where the demo writes its market."),
    seed: int = typer.Option(7, "--seed", help="Seed of the synthetic market."),
    duration: float = typer.Option(1800.0, "--duration", help="Simulated seconds of market."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """The main job on the embedded default: simulate -> calibrate (both alpha variants) -> register -> compare ->
    deploy -> a Quoter on the deployed bundle, and where to look."""

    def body():
        import time

        from models.data.loaders import load
        from models.data.tables import WindowSpec, window_market

        t0 = time.perf_counter()
        market_dir = Path(out_dir) / "market"
        write_synthetic(market_dir, seed, duration, force=True)
        market = load("synthetic", market_dir)
        from flows.demo import DEMO_GATE, DEMO_SAMPLER, FIT_WINDOW, demo as demo_flow, paper_ab, replay_ladder

        flows_start()
        stage(f"demo: fit window {FIT_WINDOW} of {duration:.0f} s; CI-sized sampling, {DEMO_SAMPLER['chains']} "
              f"chains x {DEMO_SAMPLER['draws']} draws (regime, hawkes: nutpie; alpha, kappa: pymc) and a gate "
              f"such chains can meet: r_hat <= {DEMO_GATE['max_r_hat']}, ESS >= {DEMO_GATE['min_ess_bulk']:g} "
              "(a real calibration: 4 x 1000 draws, r_hat <= 1.01, ESS >= 400)")
        res = demo_flow(market_dir=str(market_dir), asset=market.asset)
        doc: dict[str, Any] = {"market_dir": str(market_dir), "rows": market.row_counts(), **res, "ladder": None}
        doc["paper"] = None
        if res["deploy"] is not None:
            heldout = window_market(market, *WindowSpec.parse(FIT_WINDOW.split(":")[1] + ":").bounds_ns(market))
            doc["ladder"] = replay_ladder(res["deploy"]["target"], heldout)
            stage("demo: paper trading the deployed bundle on the held-out quarter (static, learned, queue) ...")
            doc["paper"] = paper_ab(res["deploy"]["target"], heldout, Path(out_dir) / "paper")
        from models import tracking

        doc["look"] = {"mlflow_ui": tracking.ui_command(), "tracking_uri": tracking.tracking_uri(),
                       "live_bundle": res["deploy"]["target"] if res["deploy"] else None,
                       "prefect_home": os.environ.get("PREFECT_HOME"), "prefect_ui": prefect_ui_command()}
        doc["wall_s"] = time.perf_counter() - t0
        if as_json:
            emit_json(doc)
        else:
            render_demo(doc, market.asset, duration, FIT_WINDOW)
        return res["deploy"] is not None

    if not guarded(body):
        raise typer.Exit(1)
