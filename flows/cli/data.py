"""``mmcal simulate`` (the synthetic market, known ground truth) and ``mmcal data
inspect`` (what a market file holds)."""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import typer

from flows.cli.app import CliError, app, data_app, emit_json, err, guarded, out
from flows.cli.options import check_window
from flows.cli.render import render_inspect
from flows.fitting import read_market


def write_synthetic(out_dir: Path, seed: int, duration: float, force: bool, open_interest: bool = False,
                    asset: str = "SYN"):
    """Simulate and write the synthetic market atomically: into a temporary folder
    beside the target, renamed into place only when complete."""
    from models.data.synthetic import simulate_market, write_market

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise CliError(f"{out_dir}: exists and is not empty (use --force to replace it)")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", asset):
        raise CliError(f"--asset: {asset!r} is not a name (letters, digits, '.', '_', '-'; at most 64)")
    if duration <= 0 or not math.isfinite(duration):
        raise CliError(f"--duration: must be a positive number of seconds, got {duration}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        err.print(f"simulating {duration:.0f} s of synthetic market (seed {seed}) ...")
        from mm_runtime.bundle import replace_dir
        from models.data.synthetic import OpenInterestConfig, SyntheticConfig

        config = SyntheticConfig(asset=asset, **({"open_interest": OpenInterestConfig()} if open_interest else {}))
        market = simulate_market(seed=seed, duration_s=duration, config=config)
        write_market(market, tmp)
        replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return market


@app.command()
def simulate(
    out_dir: Path = typer.Option(..., "--out", help="Folder to write trades/quotes parquet and truth.json into."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives byte-identical files."),
    duration: float = typer.Option(3600.0, "--duration", help="Simulated seconds."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out folder."),
    open_interest: bool = typer.Option(False, "--open-interest", help="Also an open-interest series with "
                                       "liquidation cascades (truth: cascade_oi_threshold)."),
    asset: str = typer.Option("SYN", "--asset", help="The market's asset name (several markets, each in a "
                              "subfolder of one folder, calibrate together: --asset per market)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Generate the synthetic market (known ground truth) into a folder."""

    def body():
        market = write_synthetic(out_dir, seed, duration, force, open_interest, asset)
        files = sorted(str(p) for p in Path(out_dir).iterdir())
        doc = {"out": str(out_dir), "asset": market.asset, "seed": seed, "duration_s": duration,
               "rows": market.row_counts(), "files": files}
        if as_json:
            emit_json(doc)
        else:
            out.print(f"wrote {out_dir}: {market.row_counts()['trades']} trades, "
                      f"{market.row_counts()['quotes']} quotes, truth.json")

    guarded(body)


@data_app.command("inspect")
def data_inspect(
    path: Path = typer.Argument(..., help="File or folder of market data."),
    source: str = typer.Option(..., "--source", help="lobster | binance | hyperliquid | synthetic"),
    asset: Optional[str] = typer.Option(None, "--asset", help="Asset, where the path holds several."),
    window: Optional[str] = typer.Option(None, "--window", help="Part of the data START:END, fractions of the "
                                         "span (0:0.05) or seconds (0s:600s); default all of it."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Row counts, time span, arrivals, spread, volatility per regime, passive fills and queue orders."""

    def body():
        from models.data.summary import inspect_market

        err.print(f"loading {source} data from {path} ...")
        win = check_window("--window", window)
        market = read_market(source, path, asset, with_books=True, with_messages=True)
        if win:
            from models.data.tables import WindowSpec

            market = WindowSpec.parse(win).cut(market, "--window")
        err.print("computing observations ...")
        s = inspect_market(market)
        if as_json:
            emit_json(s)
        else:
            render_inspect(s)

    guarded(body)
