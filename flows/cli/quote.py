"""``mmcal quote``: the quote ladder for one market state from a prior bundle."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from flows.cli.app import CliError, app, emit_json, guarded
from flows.cli.render import render_ladder


@app.command()
def quote(
    priors: Path = typer.Option(..., "--priors", help="Prior bundle (JSON) to quote from."),
    mid: float = typer.Option(..., "--mid", help="Mid price, quote currency."),
    sigma: float = typer.Option(0.0, "--sigma", help="Volatility, bps/sqrt(s); 0 = the bundle's regime-weighted sigma."),
    position: float = typer.Option(0.0, "--position", help="Current position, base units (+ long)."),
    margin: float = typer.Option(10_000.0, "--margin", help="Margin available, quote currency."),
    levels: int = typer.Option(5, "--levels", help="Quotes per side."),
    gamma: float = typer.Option(0.1, "--gamma", help="GLFT risk aversion, 1/(bps * base unit)."),
    fee: float = typer.Option(0.0, "--fee-bps", help="Maker fee in bps (negative = rebate)."),
    leverage: Optional[float] = typer.Option(None, "--leverage", help="Leverage on margin."),
    max_position: Optional[float] = typer.Option(None, "--max-position", help="Position limit, base units."),
    no_kelly: bool = typer.Option(False, "--no-kelly", help="Proportional allocation instead of Kelly-stochastic."),
    params_state: Optional[Path] = typer.Option(
        None, "--params-state",
        help="Learned-parameter registry state (mmcal params calibrate --state): drives gamma, the spread floor, "
             "the depth spacing ratio and the toxic-hour multiplier where their tier is calibrated."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Print the quote ladder for one market state from a prior bundle."""

    def body():
        from mm_runtime import BundleError, QuoterConfig, load_bundle, quote_once
        from mm_runtime.params import Registry, RegistryStateError

        for name, v in (("--mid", mid), ("--sigma", sigma), ("--position", position), ("--margin", margin)):
            if not math.isfinite(v):
                raise CliError(f"{name}: must be a finite number, got {v}")
        if mid <= 0:
            raise CliError(f"--mid: must be > 0, got {mid}")
        if margin < 0:
            raise CliError(f"--margin: must be >= 0, got {margin}")
        if sigma < 0:  # quote_once reads any sigma <= 0 as "the bundle's": only 0 means that here
            raise CliError(f"--sigma: must be >= 0 (0 = the bundle's sigma), got {sigma}")
        if not Path(priors).is_file():
            raise CliError(f"{priors}: no such file")
        kw = dict(n_levels=levels, gamma=gamma, fee_bps=fee, use_kelly_stochastic=not no_kelly)
        if leverage is not None:
            kw["leverage"] = leverage
        if max_position is not None:
            kw["max_position"] = max_position
        try:
            config = QuoterConfig(**kw)
            bundle = load_bundle(priors)
            registry = None
            if params_state is not None:
                if not Path(params_state).is_file():
                    raise CliError(f"{params_state}: no such file (--params-state)")
                registry = Registry.from_bundle(bundle)
                registry.load(params_state, keep_priors=True)
            rep = quote_once(bundle, mid, sigma, position=position, margin_available=margin, config=config,
                             registry=registry)
        except (BundleError, RegistryStateError) as e:
            raise CliError(str(e)) from None
        doc = rep.to_dict()
        if as_json:
            emit_json(doc)
        else:
            render_ladder(doc)

    guarded(body, flags={"n_levels": "--levels", "use_kelly_stochastic": "--no-kelly"})
