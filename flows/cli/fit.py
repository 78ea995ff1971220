"""``mmcal fit``: one model on one market, outside Prefect (:func:`flows.fitting.fit_one`);
posterior summary, diagnostics and the export gate's verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from flows.cli.app import CliError, app, emit_json, guarded, stage
from flows.cli.options import check_window, fit_configs, observation_options, observation_settings
from flows.cli.render import render_fit
from models.catalog import names as model_names


def run_fit(model: str, source: str, path: Path, asset: Optional[str], regimes: str,
            sampler_config, gate_config, observation: dict | None = None, window: str = "",
            hawkes_components: str | None = None) -> dict:
    """Load, prepare, sample, diagnose and gate one model (:func:`flows.fitting.fit_one`,
    its steps on stderr); the `mmcal fit --json` document."""
    from flows.fitting import fit_one

    return fit_one(model, source, path, asset, regimes, sampler_config, gate_config, progress=stage,
                   observation=observation, window=window, hawkes_components=hawkes_components)


_OBS = observation_options()


@app.command()
def fit(
    path: Path = typer.Argument(..., help="File or folder of market data."),
    model: str = typer.Option(..., "--model", "-m", help=" | ".join(model_names())),
    source: str = typer.Option(..., "--source", help="lobster | binance | hyperliquid | synthetic"),
    asset: Optional[str] = typer.Option(None, "--asset", help="Asset, where the path holds several."),
    window: Optional[str] = typer.Option(None, "--window", help="Fit window START:END, fractions of the span "
                                         "(0:0.05) or seconds (0s:600s); default all of it."),
    sampler: Optional[str] = typer.Option(None, "--sampler",
                                          help="pymc | numpyro | nutpie (default: nutpie, SamplerConfig's)."),
    draws: Optional[int] = typer.Option(None, "--draws", help="Draws per chain (default 1000)."),
    tune: Optional[int] = typer.Option(None, "--tune", help="Tuning steps per chain (default 1000)."),
    chains: Optional[int] = typer.Option(None, "--chains", help="Chains (default 4)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default 0): same seed, same draws."),
    regimes: str = typer.Option("em", "--regimes",
                                help="Regime path for alpha/kappa/hawkes: em (the regime HMM's EM/MAP path), "
                                     "truth (synthetic market only), quantile (placeholder labels)."),
    inference: Optional[str] = typer.Option(None, "--inference", help="nuts (default) | laplace (Laplace at "
                                            "the MAP, checked by PSIS k-hat) | auto (laplace when k-hat < 0.7, "
                                            "else NUTS)."),
    max_r_hat: Optional[float] = typer.Option(None, "--max-r-hat", help="Gate: largest R-hat (default 1.01)."),
    min_ess: Optional[float] = typer.Option(None, "--min-ess",
                                            help="Gate: smallest bulk and tail ESS (default 400)."),
    max_divergences: Optional[int] = typer.Option(None, "--max-divergences",
                                                  help="Gate: most divergent transitions (default 0)."),
    bar_seconds: Optional[float] = _OBS["bar_seconds"],
    volatility_estimator: Optional[str] = _OBS["volatility_estimator"],
    markout_horizon: Optional[float] = _OBS["markout_horizon"],
    informed_threshold: Optional[float] = _OBS["informed_threshold"],
    depth_grid: Optional[str] = _OBS["depth_grid"],
    repost_interval: Optional[float] = _OBS["repost_interval"],
    queue_levels: Optional[int] = _OBS["queue_levels"],
    markout_horizons: Optional[str] = _OBS["markout_horizons"],
    queue_power: Optional[float] = _OBS["queue_power"],
    rv_sample_seconds: Optional[float] = _OBS["rv_sample_seconds"],
    hawkes_components: Optional[str] = typer.Option(None, "--hawkes-components", help="hawkes: kernel "
                                                    "components 1..6, or auto (by held-out lpd; default 1)."),
    strict: bool = typer.Option(False, "--strict", help="Exit with status 1 when the fit fails the gate."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Sampler progress bars on stderr."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Fit one model to one market: posterior summary, diagnostics and the export gate's verdict.

    Exit status: 0 when the fit ran, whether or not it passes the gate (the verdict is reported); with --strict, 1 when it fails the gate; 2 on bad input.
    """

    def body():
        from models import catalog

        if model not in catalog.MODELS:
            raise CliError(f"--model: unknown model {model!r}; one of {', '.join(catalog.MODELS)}")
        sc, gc = fit_configs(sampler, draws, tune, chains, seed, progress, max_r_hat, min_ess, inference,
                             max_divergences)
        obs = observation_settings(bar_seconds, volatility_estimator, markout_horizon, informed_threshold,
                                   depth_grid, repost_interval, queue_levels, markout_horizons, queue_power,
                                   rv_sample_seconds)
        doc = run_fit(model, source, path, asset, regimes, sc, gc, obs, check_window("--window", window),
                      hawkes_components)
        if as_json:
            emit_json(doc)
        else:
            render_fit(doc)
        return doc["gate"]["passed"]

    passed = guarded(body)
    if strict and not passed:
        raise typer.Exit(1)
