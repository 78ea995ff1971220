"""``mmcal status``: which calibration is live, per asset (the live file's lineage next
to the registry's champion and challenger)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from flows.cli.app import CliError, app, emit_json, guarded
from flows.cli.render import render_status


@app.command()
def status(
    asset: Optional[list[str]] = typer.Option(None, "--asset", help="Asset (repeat; default: every live bundle "
                                              "in artifacts/live)."),
    target: Optional[Path] = typer.Option(None, "--target", help="Live bundle path (one --asset; default "
                                          "artifacts/live/ASSET.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Which calibration is live: per asset, the live file's version, run, data window and signature, the
    registry's champion and challenger, and whether the live file is the champion."""

    def body():
        from flows.deploy import live_assets, live_status

        assets = list(asset or [])
        if target is not None and len(assets) != 1:
            raise CliError("--target: give exactly one --asset with it")
        if not assets:
            assets = live_assets()
            if not assets:
                raise CliError("--asset: none given, and no live bundle in artifacts/live (deploy one first: "
                               "mmcal deploy --asset A)")
        docs = [live_status(a, str(target) if target else None) for a in assets]
        if as_json:
            emit_json({"assets": docs})
        else:
            render_status(docs)

    guarded(body)
