"""`mmcal`: the one command-line entry point (DESIGN.md section 8).

Conventions for every subcommand:

* human-readable tables and progress by default (progress and logs on stderr);
* ``--json`` prints exactly one JSON document on stdout, nothing else;
* errors: one line ``mmcal: error: <input>: <problem>`` on stderr, exit status 2,
  no traceback unless ``mmcal --debug ...``.

This module is orchestration only: no statistics here.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

app = typer.Typer(
    name="mmcal",
    help="Calibrate a market maker's parameters offline; quote with them online.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect market data.", no_args_is_help=True)
app.add_typer(data_app, name="data")

out = Console()                   # stdout: tables
err = Console(stderr=True)        # stderr: progress, logs, errors
log = logging.getLogger("mmcal")

SOURCES = ("lobster", "binance", "hyperliquid", "synthetic")


class _State:
    debug = False


class CliError(Exception):
    """An error meant for the user: printed as one line, exit status 2."""


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
          verbose: bool = typer.Option(False, "--verbose", "-v", help="More log output on stderr.")):
    _State.debug = debug
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in ("mmcal", "models", "flows", "mm_runtime"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


# ---------------------------------------------------------------------------
# helpers


def _jsonable(x: Any) -> Any:
    import numpy as np

    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(_jsonable(doc), indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def guarded(fn: Callable[[], Any]) -> Any:
    """Run a command body: known input errors become one clear line and exit 2."""
    from models.data.tables import DataError

    try:
        return fn()
    except typer.Exit:
        raise
    except (CliError, DataError, FileNotFoundError, NotADirectoryError, PermissionError,
            ValueError) as e:
        if _State.debug:
            raise
        msg = str(e)
        if isinstance(e, FileNotFoundError) and e.filename:
            msg = f"{e.filename}: no such file or directory"
        err.print(f"mmcal: error: {msg}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    except KeyboardInterrupt:
        err.print("mmcal: interrupted")
        raise typer.Exit(130)
    except Exception as e:  # a bug, not bad input: still one line unless --debug
        if _State.debug:
            raise
        err.print(f"mmcal: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)",
                  markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        if v != 0 and (abs(v) < 10 ** (-digits) or abs(v) >= 1e6):
            return f"{v:.{digits}e}"
        return f"{v:.{digits}f}"
    return str(v)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=Text(title), title_justify="left", header_style="bold")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*[Text(_fmt(v)) for v in r])  # Text: '[low,buy]' is not markup
    return t


# ---------------------------------------------------------------------------
# simulate


def write_synthetic(out_dir: Path, seed: int, duration: float, force: bool):
    """Simulate and write the synthetic market atomically: into a temporary folder
    beside the target, renamed into place only when complete."""
    from models.data.synthetic import simulate_market, write_market

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise CliError(f"{out_dir}: exists and is not empty (use --force to replace it)")
    if duration <= 0 or not math.isfinite(duration):
        raise CliError(f"--duration: must be a positive number of seconds, got {duration}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        err.print(f"simulating {duration:.0f} s of synthetic market (seed {seed}) ...")
        market = simulate_market(seed=seed, duration_s=duration)
        write_market(market, tmp)
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return market


@app.command()
def simulate(
    out_dir: Path = typer.Option(..., "--out", help="Folder to write trades/quotes parquet and truth.json into."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives byte-identical files."),
    duration: float = typer.Option(3600.0, "--duration", help="Simulated seconds."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out folder."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Generate the synthetic market (known ground truth) into a folder."""

    def body():
        market = write_synthetic(out_dir, seed, duration, force)
        files = sorted(str(p) for p in Path(out_dir).iterdir())
        doc = {"out": str(out_dir), "seed": seed, "duration_s": duration,
               "rows": market.row_counts(), "files": files}
        if as_json:
            emit_json(doc)
        else:
            out.print(f"wrote {out_dir}: {market.row_counts()['trades']} trades, "
                      f"{market.row_counts()['quotes']} quotes, truth.json")

    guarded(body)


# ---------------------------------------------------------------------------
# data inspect


def _load(source: str, path: Path, asset: Optional[str]):
    from models.data.loaders import load

    if source not in SOURCES:
        raise CliError(f"--source: unknown source {source!r}; one of {', '.join(SOURCES)}")
    if not Path(path).exists():
        raise CliError(f"{path}: no such file or directory")
    return load(source, path, asset=asset)


def render_inspect(s: dict) -> None:
    rows = s["rows"]
    out.print(f"[bold]{s['asset']}[/bold] ({s['source']})  {s['start']} -> {s['end']}  "
              f"({s['duration_s']:.1f} s)")
    out.print(f"rows: trades {rows['trades']:,}  quotes {rows['quotes']:,}  books {rows['books']:,}")
    out.print(f"mean spread: {s['mean_spread_bps']:.3f} bps (time-weighted)")
    out.print(_table("arrivals (market orders; one sweep = one arrival)",
                     ["side", "arrivals", "per s", "prints/arrival", "mean depth bps", "kappa mle 1/bps"],
                     [[a["side_name"], a["arrivals"], a["rate_per_s"], a["mean_prints"],
                       a["mean_depth_bps"], a["kappa_mle"]] for a in s["arrivals"]]))
    out.print(_table(f"realized volatility per regime (bps/sqrt(s); labels: {s['regime_labels']})",
                     ["regime", "bars", "occupancy", "sigma", "mean log rv", "sd log rv"],
                     [[v["regime_name"], v["bars"], v["occupancy"], v["sigma_bps_mean"],
                       v["log_rv_mean"], v["log_rv_sd"]] for v in s["volatility"]]))
    oc = s["observation_config"]
    out.print(_table(f"passive fills by depth bucket (re-post every {oc['repost_interval_s']} s; markout "
                     f"at {oc['markout_horizon_s']} s; informed = markout > {oc['informed_threshold_bps']} bp)",
                     ["bucket", "fills", "informed share", "se", "mean markout bps"],
                     [[f["bucket"], f["fills"], f["informed_share"], f["informed_share_se"],
                       f["markout_mean_bps"]] for f in s["passive_fills"]]))
    notes = {k: v for k, v in s.get("meta", {}).items() if k != "truth_arrivals"}
    if notes:
        out.print(f"loader notes: {json.dumps(_jsonable(notes))}", markup=False, highlight=False)


@data_app.command("inspect")
def data_inspect(
    path: Path = typer.Argument(..., help="File or folder of market data."),
    source: str = typer.Option(..., "--source", help="lobster | binance | hyperliquid | synthetic"),
    asset: Optional[str] = typer.Option(None, "--asset", help="Asset, where the path holds several."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Row counts, time span, arrivals, spread, volatility per regime and passive fills."""

    def body():
        from models.data.summary import inspect_market

        err.print(f"loading {source} data from {path} ...")
        market = _load(source, path, asset)
        err.print("computing observations ...")
        s = inspect_market(market)
        if as_json:
            emit_json(s)
        else:
            render_inspect(s)

    guarded(body)


# ---------------------------------------------------------------------------
# fit

SAMPLERS = ("pymc", "numpyro", "nutpie")


def _fit_configs(sampler, draws, tune, chains, seed, progress, max_r_hat, min_ess):
    """SamplerConfig and GateConfig from the options (defaults: the configs' own)."""
    from models.sampling import GateConfig, SamplerConfig

    if sampler is not None and sampler not in SAMPLERS:
        raise CliError(f"--sampler: unknown sampler {sampler!r}; one of {', '.join(SAMPLERS)}")
    for opt, v, lo in (("--draws", draws, 1), ("--tune", tune, 0), ("--chains", chains, 1)):
        if v is not None and v < lo:
            raise CliError(f"{opt}: must be >= {lo}, got {v}")
    if max_r_hat is not None and not (math.isfinite(max_r_hat) and max_r_hat >= 1.0):
        raise CliError(f"--max-r-hat: must be a finite number >= 1, got {max_r_hat}")
    if min_ess is not None and not (math.isfinite(min_ess) and min_ess >= 0):
        raise CliError(f"--min-ess: must be a finite number >= 0, got {min_ess}")
    kw: dict[str, Any] = {"progressbar": progress}
    for k, v in (("sampler", sampler), ("draws", draws), ("tune", tune), ("chains", chains),
                 ("seed", seed)):
        if v is not None:
            kw[k] = v
    gkw: dict[str, Any] = {}
    if max_r_hat is not None:
        gkw["max_r_hat"] = max_r_hat
    if min_ess is not None:
        gkw["min_ess_bulk"] = gkw["min_ess_tail"] = min_ess
    return SamplerConfig(**kw), GateConfig(**gkw)


def _stage(msg: str) -> None:
    """A progress line on stderr, never wrapped or read as markup (paths may hold '[')."""
    err.print(msg, markup=False, highlight=False, soft_wrap=True)


def run_fit(model: str, source: str, path: Path, asset: Optional[str], regimes: str,
            sampler_config, gate_config) -> dict:
    """Load, prepare, sample, diagnose and gate one model; the `mmcal fit --json` document."""
    import time

    from models import catalog
    from models.sampling import gate

    spec = catalog.spec(model)
    if regimes not in catalog.REGIME_SOURCES:
        raise CliError(f"--regimes: unknown choice {regimes!r}; one of {', '.join(catalog.REGIME_SOURCES)}")
    t_start = time.perf_counter()
    _stage(f"loading {source} data from {path} ...")
    market = _load(source, path, asset)
    if asset is not None and str(market.asset).upper() != asset.upper():
        raise CliError(f"--asset: {path} holds {market.asset!r}, not {asset!r}")
    if regimes == "truth" and not catalog.has_truth_path(market):
        raise CliError(f"--regimes truth: {path} ({source}) has no true regime path; "
                       "only the synthetic market has one (use --regimes em)")
    if spec.uses_regimes:
        how = {"em": "EM/MAP path of the regime HMM", "truth": "the synthetic truth's path",
               "quantile": "placeholder quantile labels"}[regimes]
        _stage(f"computing {spec.obs_unit} with regimes from {how} ...")
    else:
        _stage(f"computing {spec.obs_unit} ...")
    obs = catalog.prepare(model, market, regimes)
    n = catalog.n_obs(model, obs)
    _stage(f"{n:,} {spec.obs_unit} ({time.perf_counter() - t_start:.1f} s)")
    sc = sampler_config
    _stage(f"sampling {model}: {sc.sampler}, {sc.chains} chains x {sc.draws} draws "
           f"(+{sc.tune} tune), seed {sc.seed} ...")
    t0 = time.perf_counter()
    idata = catalog.fit(model, obs, sc)
    _stage(f"sampled in {time.perf_counter() - t0:.1f} s; diagnostics and LOO ...")
    rows = catalog.parameter_rows(model, idata)
    diag = catalog.diagnostics(model, idata)
    verdict = gate(diag, gate_config)
    diag.pop("per_param", None)  # the same numbers are in "parameters"
    a = idata.attrs
    doc = {
        "model": model,
        "asset": str(market.asset),
        "source": source,
        "path": str(path),
        "regimes": regimes if spec.uses_regimes else None,
        "n_obs": n,
        "obs_unit": spec.obs_unit,
        "sampler": {"sampler": a.get("sampler", sc.sampler), "draws": a.get("draws", sc.draws),
                    "tune": a.get("tune", sc.tune), "chains": a.get("chains", sc.chains),
                    "seed": a.get("seed", sc.seed), "target_accept": a.get("target_accept", sc.target_accept),
                    "wall_s": a.get("sampling_wall_s")},
        "gate": {**verdict.as_dict(), "config": gate_config.model_dump()},
        "diagnostics": diag,
        "parameters": {r["name"]: {k: r[k] for k in ("mean", "sd", "q05", "q95", "r_hat", "ess_bulk",
                                                      "ess_tail")} for r in rows},
        "model_version": a.get("model_version"),
        "wall_s": time.perf_counter() - t_start,
    }
    _stage(f"done in {doc['wall_s']:.1f} s")
    return doc


def _print_wide(table: Table) -> None:
    """Print a table without truncating its cells: parameter names are never cut to
    'kappa[hi…'. Redirected output gets the table's natural width; on a terminal
    the first column folds instead."""
    from rich.measure import Measurement

    table.columns[0].overflow = "fold"
    if out.is_terminal:
        out.print(table)
        return
    width = Measurement.get(out, out.options.update(width=10_000), table).maximum
    Console(width=max(out.width, width)).print(table)  # stdout as `out`, only wider


def render_fit(doc: dict) -> None:
    s = doc["sampler"]
    regimes = f", regimes {doc['regimes']}" if doc["regimes"] else ""
    ess = lambda v: None if v is None else int(round(v))  # noqa: E731
    _print_wide(_table(f"{doc['model']} posterior: {doc['asset']} ({doc['source']}), {doc['n_obs']:,} "
                       f"{doc['obs_unit']}{regimes}; {s['sampler']}, {s['chains']} chains x {s['draws']} draws",
                       ["parameter", "mean", "sd", "5%", "95%", "r_hat", "ess_bulk", "ess_tail"],
                       [[name, p["mean"], p["sd"], p["q05"], p["q95"], p["r_hat"], ess(p["ess_bulk"]),
                         ess(p["ess_tail"])] for name, p in doc["parameters"].items()]))
    d = doc["diagnostics"]
    f = lambda v, n=3: _fmt(v, n)  # noqa: E731
    lines = [
        f"max r_hat {f(d.get('r_hat_max'))} ({d.get('r_hat_worst') or '-'});  "
        f"min ess bulk {f(ess(d.get('ess_bulk_min')))} ({d.get('ess_bulk_worst') or '-'}), "
        f"tail {f(ess(d.get('ess_tail_min')))} ({d.get('ess_tail_worst') or '-'})",
        f"divergences {f(d.get('divergences'))};  min BFMI {f(d.get('bfmi_min'), 2)};  "
        f"sampling {f(s.get('wall_s'), 1)} s",
    ]
    if "loo_elpd" in d:
        lines.append(f"elpd_loo {f(d.get('loo_elpd'), 1)} ± {f(d.get('loo_se'), 1)} "
                     f"(p_loo {f(d.get('p_loo'), 1)}; {d.get('loo_n')} terms of "
                     f"{', '.join(d.get('loo_vars', []))});  max Pareto k {f(d.get('pareto_k_max'), 2)} "
                     f"({d.get('pareto_k_over_0.7')} above 0.7)")
    else:
        lines.append(f"LOO: {d.get('loo_note', 'not computed')}")
    g = doc["gate"]
    lines.append(f"gate: {'PASS' if g['passed'] else 'FAIL (not exportable)'}")
    lines += [f"  - {msg}" for msg in g["failures"]]
    lines += [f"  warning: {msg}" for msg in g["warnings"]]
    lines.append(f"model version {doc['model_version']}")
    for ln in lines:
        out.print(ln, markup=False, highlight=False, soft_wrap=True)


@app.command()
def fit(
    path: Path = typer.Argument(..., help="File or folder of market data."),
    model: str = typer.Option(..., "--model", "-m", help="regime | alpha | kappa | hawkes"),
    source: str = typer.Option(..., "--source", help="lobster | binance | hyperliquid | synthetic"),
    asset: Optional[str] = typer.Option(None, "--asset", help="Asset, where the path holds several."),
    sampler: Optional[str] = typer.Option(None, "--sampler",
                                          help="pymc | numpyro | nutpie (default: nutpie, SamplerConfig's)."),
    draws: Optional[int] = typer.Option(None, "--draws", help="Draws per chain (default 1000)."),
    tune: Optional[int] = typer.Option(None, "--tune", help="Tuning steps per chain (default 1000)."),
    chains: Optional[int] = typer.Option(None, "--chains", help="Chains (default 4)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default 0): same seed, same draws."),
    regimes: str = typer.Option("em", "--regimes",
                                help="Regime path for alpha/kappa/hawkes: em (the regime HMM's EM/MAP path), "
                                     "truth (synthetic market only), quantile (placeholder labels)."),
    max_r_hat: Optional[float] = typer.Option(None, "--max-r-hat", help="Gate: largest R-hat (default 1.01)."),
    min_ess: Optional[float] = typer.Option(None, "--min-ess",
                                            help="Gate: smallest bulk and tail ESS (default 400)."),
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
        sc, gc = _fit_configs(sampler, draws, tune, chains, seed, progress, max_r_hat, min_ess)
        doc = run_fit(model, source, path, asset, regimes, sc, gc)
        if as_json:
            emit_json(doc)
        else:
            render_fit(doc)
        return doc["gate"]["passed"]

    passed = guarded(body)
    if strict and not passed:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------
# quote


def render_ladder(rep: dict) -> None:
    s = rep["summary"]
    if not s["valid"]:
        out.print(f"no quotes: {s['reason']}")
        return
    out.print(f"{s['asset']}  mid {s['mid']:.6g}  sigma {s['sigma_bps']:.4g} bps/sqrt(s)  "
              f"kelly fraction {s['kelly_fraction']:.3f}  alpha_touch {s['alpha_touch']:.3f}  "
              f"binding bid/ask {s['binding']['bid']}/{s['binding']['ask']}  "
              f"margin used {s['margin_used']:.2f}", markup=False, highlight=False)
    out.print(_table("ladder", ["side", "level", "depth bps", "price", "size", "P_fill", "alpha", "Kelly f"],
                     [[r["side"], r["level"], r["depth_bps"], r["price"], r["size"], r["p_fill"],
                       r["alpha"], r["kelly_f"]] for r in rep["ladder"]]))


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
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Print the quote ladder for one market state from a prior bundle."""

    def body():
        from mm_runtime import BundleError, QuoterConfig, quote_once

        for name, v in (("--mid", mid), ("--sigma", sigma), ("--position", position), ("--margin", margin)):
            if not math.isfinite(v):
                raise CliError(f"{name}: must be a finite number, got {v}")
        if mid <= 0:
            raise CliError(f"--mid: must be > 0, got {mid}")
        if not Path(priors).is_file():
            raise CliError(f"{priors}: no such file")
        kw = dict(n_levels=levels, gamma=gamma, fee_bps=fee, use_kelly_stochastic=not no_kelly)
        if leverage is not None:
            kw["leverage"] = leverage
        if max_position is not None:
            kw["max_position"] = max_position
        try:
            config = QuoterConfig(**kw)
            rep = quote_once(priors, mid, sigma, position=position, margin_available=margin, config=config)
        except BundleError as e:
            raise CliError(str(e)) from None
        doc = rep.to_dict()
        if as_json:
            emit_json(doc)
        else:
            render_ladder(doc)

    guarded(body)


# ---------------------------------------------------------------------------
# demo


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("artifacts/demo"), "--out", help="Where the demo writes."),
    seed: int = typer.Option(7, "--seed"),
    duration: float = typer.Option(3600.0, "--duration", help="Simulated seconds of market."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """The main job on the embedded default: the synthetic market end to end."""

    def body():
        from models.data.loaders import load
        from models.data.summary import inspect_market, truth_comparison

        market_dir = Path(out_dir) / "market"
        write_synthetic(market_dir, seed, duration, force=True)
        market = load("synthetic", market_dir)
        s = inspect_market(market)
        truth_cmp = truth_comparison(market)
        doc = {"market_dir": str(market_dir), "summary": s, "truth_vs_observed": truth_cmp}
        if as_json:
            emit_json(doc)
            return
        out.rule("1. synthetic market")
        out.print(f"written to {market_dir} (trades.parquet, quotes.parquet, truth.json)")
        render_inspect(s)
        out.rule("2. observations vs the generator's truth")
        out.print(_table("measured by the observation rules on the true regime path",
                         ["parameter", "truth", "observed", "n"],
                         [[r["quantity"], r["truth"], r["observed"], r["n"]] for r in truth_cmp]))
        out.print("\nnext: `mmcal data inspect --source lobster ../shared/data/lobster/"
                  "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip` for real data.")

    guarded(body)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
