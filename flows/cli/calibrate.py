"""The registry's life cycle, each command a Prefect flow: ``mmcal calibrate``
(flows/calibrate.py), ``compare`` (flows/compare.py), ``deploy`` and ``rollback``
(flows/deploy.py), and ``serve`` (the scheduled calibrations, flows/schedules.py)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

import typer

from flows.cli.app import SOURCES, CliError, app, emit_json, flows_quiet, flows_start, guarded, stage
from flows.cli.options import (SAMPLERS, check_choice, check_window, fit_configs, observation_options,
                               observation_settings)
from flows.cli.render import render_calibration, render_comparison, render_deploy, render_schedules
from flows.runtime import TASK_RUNNERS


_OBS = observation_options()


@app.command()
def calibrate(
    path: Path = typer.Argument(..., help="File or folder of market data."),
    source: str = typer.Option(..., "--source", help="lobster | binance | hyperliquid | synthetic"),
    assets: Optional[list[str]] = typer.Option(None, "--asset", help="Asset (repeat for several: fitted one "
                                               "after another, or in parallel with --parallel-assets)."),
    window: Optional[str] = typer.Option(None, "--window", help="Fit window START:END, fractions of the span "
                                         "(0:0.8) or seconds from its start (600s:3000s); default all."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="pymc | numpyro | nutpie (default nutpie)."),
    draws: Optional[int] = typer.Option(None, "--draws", help="Draws per chain (default 1000)."),
    tune: Optional[int] = typer.Option(None, "--tune", help="Tuning steps per chain (default 1000)."),
    chains: Optional[int] = typer.Option(None, "--chains", help="Chains (default 4)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default 0)."),
    inference: Optional[str] = typer.Option(None, "--inference", help="nuts (default) | laplace (Laplace at "
                                            "the MAP, checked by PSIS k-hat) | auto (laplace when k-hat < 0.7, "
                                            "else NUTS)."),
    max_r_hat: Optional[float] = typer.Option(None, "--max-r-hat", help="Gate: largest R-hat (default 1.01)."),
    min_ess: Optional[float] = typer.Option(None, "--min-ess", help="Gate: smallest bulk and tail ESS (default 400)."),
    max_divergences: Optional[int] = typer.Option(None, "--max-divergences",
                                                  help="Gate: most divergent transitions (default 0)."),
    model_samplers: Optional[list[str]] = typer.Option(None, "--model-sampler", help="MODEL=SAMPLER: another "
                                                       "sampler for one model (repeatable), e.g. regime=numpyro."),
    alpha_variant: str = typer.Option("threshold", "--alpha-variant", help="threshold | mixture (markout mixture)."),
    max_prior_strength: Optional[float] = typer.Option(None, "--max-prior-strength",
                                                       help="Cap every summary at this many pseudo-observations."),
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
    runner: Optional[str] = typer.Option(None, "--task-runner", help="threads (default) | processes | dask "
                                         "(or $MMCAL_TASK_RUNNER)."),
    parallel_fits: Optional[int] = typer.Option(None, "--parallel-fits", help="Fits sampled at once "
                                                "(default: CPUs / chains)."),
    parallel_assets: int = typer.Option(1, "--parallel-assets", help="Assets calibrated at once."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Trace, posterior and PPC plots to MLflow."),
    progress: bool = typer.Option(False, "--progress/--no-progress", help="Sampler progress bars on stderr "
                                  "(the flow logs each step either way)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Calibrate one asset (or several): fit the four models, gate, export, log to MLflow and register the bundle
    as the challenger.

    Exit status: 0 when registered (or already registered); 1 when a gate failed (the MLflow run is kept, marked
    FAILED; nothing registered); 2 on bad input.
    """

    def body():
        sc, gc = fit_configs(sampler, draws, tune, chains, seed, progress, max_r_hat, min_ess, inference,
                             max_divergences)
        from models.catalog import spec

        check_choice("--alpha-variant", alpha_variant, spec("alpha").variants)
        obs = observation_settings(bar_seconds, volatility_estimator, markout_horizon, informed_threshold,
                                   depth_grid, repost_interval, queue_levels, markout_horizons, queue_power,
                                   rv_sample_seconds)
        check_choice("--task-runner", runner, TASK_RUNNERS)
        w = check_window("--window", window)
        if source not in SOURCES:
            raise CliError(f"--source: unknown source {source!r}; one of {', '.join(SOURCES)}")
        if not Path(path).exists():
            raise CliError(f"{path}: no such file or directory")
        for opt, v in (("--parallel-fits", parallel_fits), ("--parallel-assets", parallel_assets)):
            if v is not None and v < 1:
                raise CliError(f"{opt}: must be >= 1, got {v}")
        if max_prior_strength is not None and not (math.isfinite(max_prior_strength) and max_prior_strength > 0):
            raise CliError(f"--max-prior-strength: must be a positive number, got {max_prior_strength}")
        from models.catalog import MODELS

        overrides: dict[str, dict] = {}
        for item in model_samplers or []:
            m, eq, smp = item.partition("=")
            if not eq or m not in MODELS or smp not in SAMPLERS:
                raise CliError(f"--model-sampler: {item!r}: expected MODEL=SAMPLER with MODEL one of "
                               f"{', '.join(MODELS)} and SAMPLER one of {', '.join(SAMPLERS)}")
            overrides[m] = {"sampler": smp}
        from flows.calibrate import run_calibration, run_many
        flows_start()

        kw = dict(window=w, sampler=sc.model_dump(mode="json"), sampler_overrides=overrides,
                  gate=gc.model_dump(mode="json"),
                  alpha_variant=alpha_variant, max_prior_strength=max_prior_strength, plots=plots,
                  observation=obs)
        names = list(assets or [None])
        stage(f"calibrating {', '.join(a or '(the file’s asset)' for a in names)} from {source} {path} "
              f"({sc.sampler}{'' if sc.inference == 'nuts' else ', inference ' + sc.inference}, {sc.chains} chains x "
              f"{sc.draws} draws) ...")
        if len(names) == 1:
            docs = [run_calibration(source, str(path), names[0], runner=runner, parallel_fits=parallel_fits, **kw)]
        else:
            docs = run_many(source, str(path), names, runner=runner, parallel_assets=parallel_assets,
                            parallel_fits=parallel_fits, **kw)
        if as_json:
            emit_json(docs[0] if len(docs) == 1 else docs)
        else:
            for d in docs:
                render_calibration(d)
        return all(d["status"] != "gate_failed" for d in docs)

    if not guarded(body):
        raise typer.Exit(1)


@app.command()
def compare(
    asset: str = typer.Option(..., "--asset", help="Asset whose champion and challenger to compare."),
    path: Optional[Path] = typer.Argument(None, help="Held-out data (default: the challenger's data file)."),
    source: Optional[str] = typer.Option(None, "--source", help="Source of PATH."),
    window: Optional[str] = typer.Option(None, "--window", help="Held-out window START:END of the data (default: "
                                         "from the end of the later fit window to the end of the data)."),
    z: float = typer.Option(2.0, "--z", help="Promote when the held-out elpd gain exceeds z standard errors."),
    promote: bool = typer.Option(True, "--promote/--no-promote", help="Move the champion alias when warranted."),
    max_draws: int = typer.Option(400, "--max-draws", help="Posterior draws used for the held-out scores."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Champion vs challenger on held-out data (log predictive density per model); promote by moving the champion
    alias; the comparison table is logged to MLflow."""

    def body():
        if (path is None) != (source is None):
            raise CliError("--source and PATH go together (held-out data from another file)")
        if source is not None and source not in SOURCES:
            raise CliError(f"--source: unknown source {source!r}; one of {', '.join(SOURCES)}")
        if path is not None and not Path(path).exists():
            raise CliError(f"{path}: no such file or directory")
        if not (math.isfinite(z) and z >= 0):
            raise CliError(f"--z: must be a finite number >= 0, got {z}")
        if max_draws < 1:
            raise CliError(f"--max-draws: must be >= 1, got {max_draws}")
        w = check_window("--window", window)
        from flows.compare import compare as compare_flow
        flows_start()

        stage(f"comparing the challenger of {asset} with its champion on held-out data ...")
        doc = compare_flow(asset=asset, source=source, path=str(path) if path else None, window=w or None, z=z,
                           promote=promote, max_draws=max_draws)
        if as_json:
            emit_json(doc)
        else:
            render_comparison(doc)

    guarded(body)


@app.command()
def deploy(
    asset: str = typer.Option(..., "--asset", help="Asset to deploy."),
    alias: Optional[str] = typer.Option(None, "--alias", help="Registry alias to deploy (default champion)."),
    version: Optional[int] = typer.Option(None, "--version", help="Registered version to deploy instead."),
    target: Optional[Path] = typer.Option(None, "--target", help="Live bundle path "
                                          "(default artifacts/live/ASSET.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Validate a registered bundle and write it to the live path atomically (the previous one is kept for
    rollback); a running quoter hot-reloads it."""

    def body():
        if alias is not None and version is not None:
            raise CliError("--alias and --version: give one of them")
        if version is not None and version < 1:
            raise CliError(f"--version: must be >= 1, got {version}")
        from flows.deploy import deploy as deploy_flow
        flows_start()

        doc = deploy_flow(asset=asset, alias=None if version is not None else (alias or "champion"),
                          version=version, target=str(target) if target else None)
        if as_json:
            emit_json(doc)
        else:
            render_deploy(doc)

    guarded(body)


@app.command()
def rollback(
    asset: str = typer.Option(..., "--asset", help="Asset to roll back."),
    target: Optional[Path] = typer.Option(None, "--target", help="Live bundle path "
                                          "(default artifacts/live/ASSET.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Put the previously deployed bundle back (a second rollback rolls forward again)."""

    def body():
        from flows.deploy import rollback as rollback_flow
        flows_start()

        doc = rollback_flow(asset=asset, target=str(target) if target else None)
        if as_json:
            emit_json(doc)
        else:
            render_deploy(doc)

    guarded(body)


@app.command()
def serve(
    config: Optional[Path] = typer.Option(None, "--config", help="Schedules file (default $MMCAL_SCHEDULES or "
                                          "./schedules.toml)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Flow runs at once (default: no limit)."),
    check: bool = typer.Option(False, "--check", help="Validate the file and list the deployments; serve nothing."),
    as_json: bool = typer.Option(False, "--json", help="With --check: print one JSON document on stdout."),
):
    """Serve the scheduled calibrations: one Prefect deployment per asset of the schedules file (calibrate on its
    cron, then compare with the champion), until interrupted. Needs a Prefect API that stays up: set
    PREFECT_API_URL to a Prefect server (`./mm prefect server start`)."""

    def body():
        if limit is not None and limit < 1:
            raise CliError(f"--limit: must be >= 1, got {limit}")
        from flows.schedules import build_deployments, config_path, load_config
        flows_quiet()

        cfg = load_config(config)
        deps = build_deployments(cfg)
        rows = [{"deployment": f"{d.flow_name}/{d.name}", "cron": d.schedules[0].schedule.cron,
                 "timezone": d.schedules[0].schedule.timezone, "asset": d.parameters["asset"],
                 "source": d.parameters["source"], "path": d.parameters["path"],
                 "window": d.parameters["window"]} for d in deps]
        if check:
            if as_json:
                emit_json({"config": str(config_path(config)), "deployments": rows})
            else:
                render_schedules(str(config_path(config)), rows)
            return
        flows_start()
        if not os.environ.get("PREFECT_API_URL"):
            stage("mmcal serve: PREFECT_API_URL is not set: serving on a temporary local API that stops with this "
                  "process (runs are kept in PREFECT_HOME)")
        from flows.schedules import serve as serve_deployments

        stage(f"serving {', '.join(r['deployment'] for r in rows)} (Ctrl-C stops) ...")
        serve_deployments(cfg, limit=limit)

    guarded(body)
