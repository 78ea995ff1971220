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
params_app = typer.Typer(help="The learned-parameter registry (mm_runtime.params).", no_args_is_help=True)
app.add_typer(params_app, name="params")

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
    if not verbose:  # a performance hint printed by every process that compiles a model
        import warnings

        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
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
    from flows.runtime import jsonable

    return jsonable(x)


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
        tracking = sys.modules.get("models.tracking")
        if tracking is not None and isinstance(e, tracking.TrackingError) and not _State.debug:
            # the registry or tracking server refused or is unreachable: the message names it
            err.print(f"mmcal: error: {e}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2)
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


def write_synthetic(out_dir: Path, seed: int, duration: float, force: bool, open_interest: bool = False):
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
        from mm_runtime.bundle import replace_dir
        from models.data.synthetic import OpenInterestConfig, SyntheticConfig

        config = SyntheticConfig(open_interest=OpenInterestConfig()) if open_interest else None
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
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Generate the synthetic market (known ground truth) into a folder."""

    def body():
        market = write_synthetic(out_dir, seed, duration, force, open_interest)
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


def _load(source: str, path: Path, asset: Optional[str], with_books: bool = False):
    from models.data.loaders import load

    if source not in SOURCES:
        raise CliError(f"--source: unknown source {source!r}; one of {', '.join(SOURCES)}")
    if not Path(path).exists():
        raise CliError(f"{path}: no such file or directory")
    if with_books and source != "synthetic":  # the synthetic market has no books
        return load(source, path, asset=asset, with_books=True)
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
    if "spread_capture" in s:
        out.print(f"edge per fill = (1-alpha)(c*depth - fee) - alpha(AS + fee): spread capture c "
                  f"{s['spread_capture']:.3f}, adverse move AS {s['adverse_move_bps']:.3g} bps, "
                  f"fee {s['fee_bps']:g} bps", markup=False, highlight=False)
    out.print(_table("ladder", ["side", "level", "depth bps", "price", "size", "P_fill", "alpha", "edge bps",
                                "Kelly f"],
                     [[r["side"], r["level"], r["depth_bps"], r["price"], r["size"], r["p_fill"],
                       r["alpha"], r["edge_bps"], r["kelly_f"]] for r in rep["ladder"]]))


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
# calibrate, compare, deploy, rollback (Prefect flows: flows/calibrate.py, compare.py, deploy.py)

TASK_RUNNERS = ("threads", "processes", "dask")


class _NoTraceback(logging.Filter):
    """Drops the traceback from Prefect's log records (their one-line message stays)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("prefect"):
            record.exc_info = None
            record.exc_text = None
        return True


def _flows_quiet() -> None:
    """Prefect logs an exception raised in a flow or task with its traceback; mmcal
    reports it as one line (the convention above), so on the console the traceback
    is kept for ``--debug`` only (Prefect's API still gets the full record)."""
    if _State.debug:
        return
    handlers = logging.getLogger().handlers + logging.getLogger("prefect").handlers
    for h in handlers:
        if not any(isinstance(f, _NoTraceback) for f in h.filters) and "APILog" not in type(h).__name__:
            h.addFilter(_NoTraceback())


def _check_choice(opt: str, value: Optional[str], choices) -> None:
    if value is not None and value not in choices:
        raise CliError(f"{opt}: unknown choice {value!r}; one of {', '.join(choices)}")


def _check_window(opt: str, window: Optional[str]) -> str:
    from models.data.tables import WindowSpec

    try:
        return str(WindowSpec.parse(window)) if window else ""
    except ValueError as e:
        raise CliError(f"{opt}: {e}") from None


def render_calibration(doc: dict) -> None:
    d = doc["data"]
    ess = lambda v: None if v is None else int(round(v))  # noqa: E731
    rows = []
    for m, r in doc["models"].items():
        rows.append([m, "hit" if r["cache_hit"] else "sampled", r["n_obs"], r["sampling_wall_s"], r["r_hat_max"],
                     ess(r["ess_bulk_min"]), ess(r["ess_tail_min"]), r["divergences"], r["bfmi_min"],
                     r["loo_elpd"], r["pareto_k_max"], "PASS" if r["gate"]["passed"] else "FAIL"])
    _print_wide(_table(f"calibration of {doc['asset']}: {d['source']} {d['path']} window {d['window']} "
                       f"({d['duration_s']:.0f} s, {d['rows']['trades']:,} trades, {d['bar_seconds']:g} s bars)",
                       ["model", "cache", "n obs", "sampling s", "max r_hat", "min ess bulk", "min ess tail",
                        "divergences", "min BFMI", "elpd_loo", "max Pareto k", "gate"], rows))
    lines = []
    st = doc["status"]
    if st == "gate_failed":
        lines.append(f"gate FAILED: not exported, not registered (MLflow run {doc['run_id']}, status FAILED)")
        lines += [f"  - {f}" for f in doc["failures"]]
    elif st in ("registered", "already_registered"):
        how = "registered" if st == "registered" else "unchanged calibration, already registered"
        lines.append(f"{how}: models:/{doc['registered_model']}/{doc['version']} "
                     f"(aliases: {', '.join(doc['aliases'])}); MLflow run {doc['run_id']}")
        lines.append(f"bundle: {doc['bundle_path']}")
    else:
        lines.append(f"logged (not registered): MLflow run {doc['run_id']}; bundle {doc['bundle_path']}")
    lines.append(f"look: {doc['mlflow_ui']}")
    for ln in lines:
        out.print(ln, markup=False, highlight=False, soft_wrap=True)


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
    max_r_hat: Optional[float] = typer.Option(None, "--max-r-hat", help="Gate: largest R-hat (default 1.01)."),
    min_ess: Optional[float] = typer.Option(None, "--min-ess", help="Gate: smallest bulk and tail ESS (default 400)."),
    model_samplers: Optional[list[str]] = typer.Option(None, "--model-sampler", help="MODEL=SAMPLER: another "
                                                       "sampler for one model (repeatable), e.g. regime=numpyro."),
    alpha_variant: str = typer.Option("threshold", "--alpha-variant", help="threshold | mixture (markout mixture)."),
    max_prior_strength: Optional[float] = typer.Option(None, "--max-prior-strength",
                                                       help="Cap every summary at this many pseudo-observations."),
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
        sc, gc = _fit_configs(sampler, draws, tune, chains, seed, progress, max_r_hat, min_ess)
        _check_choice("--alpha-variant", alpha_variant, ("threshold", "mixture"))
        _check_choice("--task-runner", runner, TASK_RUNNERS)
        w = _check_window("--window", window)
        if source not in SOURCES:
            raise CliError(f"--source: unknown source {source!r}; one of {', '.join(SOURCES)}")
        if not Path(path).exists():
            raise CliError(f"{path}: no such file or directory")
        for opt, v in (("--parallel-fits", parallel_fits), ("--parallel-assets", parallel_assets)):
            if v is not None and v < 1:
                raise CliError(f"{opt}: must be >= 1, got {v}")
        if max_prior_strength is not None and not (math.isfinite(max_prior_strength) and max_prior_strength > 0):
            raise CliError(f"--max-prior-strength: must be a positive number, got {max_prior_strength}")
        overrides: dict[str, dict] = {}
        for item in model_samplers or []:
            m, eq, smp = item.partition("=")
            if not eq or m not in ("regime", "alpha", "kappa", "hawkes") or smp not in SAMPLERS:
                raise CliError(f"--model-sampler: {item!r}: expected MODEL=SAMPLER with MODEL one of regime, alpha, "
                               f"kappa, hawkes and SAMPLER one of {', '.join(SAMPLERS)}")
            overrides[m] = {"sampler": smp}
        from flows.calibrate import run_calibration, run_many
        _flows_quiet()

        kw = dict(window=w, sampler=sc.model_dump(mode="json"), sampler_overrides=overrides,
                  gate=gc.model_dump(mode="json"),
                  alpha_variant=alpha_variant, max_prior_strength=max_prior_strength, plots=plots)
        names = list(assets or [None])
        _stage(f"calibrating {', '.join(a or '(the file’s asset)' for a in names)} from {source} {path} "
               f"({sc.sampler}, {sc.chains} chains x {sc.draws} draws) ...")
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


def render_comparison(doc: dict) -> None:
    ch, champ = doc["challenger"], doc["champion"]
    title = (f"{doc['asset']}: challenger v{ch['version']} vs "
             + (f"champion v{champ['version']}" if champ else "no champion"))
    if doc.get("heldout"):
        h = doc["heldout"]
        title += f" on held-out data ({h['duration_s']:.0f} s, {h['rows']['trades']:,} trades)"
    if doc["rows"]:
        _print_wide(_table(title, ["model", "unit", "n", "challenger elpd", "champion elpd", "difference", "se",
                                   "paired", "z"],
                           [[r["model"], r.get("unit"), r.get("n"), r["challenger_elpd"], r["champion_elpd"],
                             r["elpd_diff"], r["se"], {True: "yes", False: "no"}.get(r["paired"], "-"),
                             r["z_score"]] for r in doc["rows"]]))
    else:
        out.print(title, markup=False, highlight=False)
    if doc.get("paper"):
        p = doc["paper"]
        render_paper({**p, "asset": doc["asset"], "source": "held-out replay", "report": p.get("report")})
        out.print(p.get("verdict", ""), markup=False, highlight=False, soft_wrap=True)
    verdict = ("promoted: the challenger is now the champion" if doc["promoted"]
               else "kept the champion" if champ else "not promoted (--no-promote)")
    out.print(f"{verdict} ({doc['reason']})", markup=False, highlight=False, soft_wrap=True)
    if doc.get("run_id"):
        out.print(f"comparison logged: MLflow run {doc['run_id']}", markup=False, highlight=False)


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
        w = _check_window("--window", window)
        from flows.compare import compare as compare_flow
        _flows_quiet()

        _stage(f"comparing the challenger of {asset} with its champion on held-out data ...")
        doc = compare_flow(asset=asset, source=source, path=str(path) if path else None, window=w or None, z=z,
                           promote=promote, max_draws=max_draws)
        if as_json:
            emit_json(doc)
        else:
            render_comparison(doc)

    guarded(body)


def _render_deploy(doc: dict) -> None:
    if doc["status"] == "unchanged":
        msg = f"{doc['target']} already holds this bundle ({doc['ref']}, model {doc['model_version']}): unchanged"
    elif doc["action"] == "rollback":
        msg = (f"rolled back {doc['target']} to model {doc['model_version']}"
               + (f" (version {doc['version']})" if doc.get("version") else ""))
    else:
        msg = (f"deployed {doc['ref']} (version {doc['version']}, model {doc['model_version']}) to {doc['target']}"
               + (f"; previous kept as {doc['previous']}" if doc.get("previous") else ""))
    out.print(msg, markup=False, highlight=False, soft_wrap=True)


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
        _flows_quiet()

        doc = deploy_flow(asset=asset, alias=None if version is not None else (alias or "champion"),
                          version=version, target=str(target) if target else None)
        if as_json:
            emit_json(doc)
        else:
            _render_deploy(doc)

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
        _flows_quiet()

        doc = rollback_flow(asset=asset, target=str(target) if target else None)
        if as_json:
            emit_json(doc)
        else:
            _render_deploy(doc)

    guarded(body)


# ---------------------------------------------------------------------------
# serve


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
    PREFECT_API_URL to a Prefect server (`prefect server start`)."""

    def body():
        if limit is not None and limit < 1:
            raise CliError(f"--limit: must be >= 1, got {limit}")
        from flows.schedules import build_deployments, config_path, load_config
        _flows_quiet()

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
                _print_wide(_table(f"{config_path(config)}: {len(rows)} scheduled calibration(s)",
                                   ["deployment", "cron", "timezone", "source", "path", "window"],
                                   [[r["deployment"], r["cron"], r["timezone"], r["source"], r["path"], r["window"]]
                                    for r in rows]))
            return
        if not os.environ.get("PREFECT_API_URL"):
            _stage("mmcal serve: PREFECT_API_URL is not set: serving on a temporary local API that stops with this "
                   "process (runs are kept in PREFECT_HOME)")
        from flows.schedules import serve as serve_deployments

        _stage(f"serving {', '.join(r['deployment'] for r in rows)} (Ctrl-C stops) ...")
        serve_deployments(cfg, limit=limit)

    guarded(body)


# ---------------------------------------------------------------------------
# demo


def render_paper(doc: dict) -> None:
    rows = [[r["config"], r["pnl"], r["sharpe_per_day"], r["max_drawdown"], r["fills"], r["mean_markout_bps"],
             r["inventory_sd"], r["inventory_max_abs"], r["fees"], r["quoted_share"]] for r in doc["table"]]
    _print_wide(_table(f"paper trading {doc['asset']} ({doc['source']}, window {doc.get('window') or 'all'})",
                       ["config", "PnL", "Sharpe/day", "max DD", "fills", "markout bps", "inv sd", "inv max|q|",
                        "fees", "quoted"], rows))
    if doc["paired"]:
        prow = [[k, v["blocks"], v["mean_diff"], v["ci_low"], v["ci_high"], f"{v['wins']}/{v['blocks']}"]
                for k, v in doc["paired"].items()]
        out.print(_table(f"paired by {next(iter(doc['paired'].values()))['block_s']:.0f} s blocks vs "
                         f"{doc['baseline']} (PnL difference, 95% t interval)",
                         ["config", "blocks", "mean diff", "low", "high", "blocks won"], prow))
    if doc.get("report"):
        out.print(f"report: {doc['report']}", markup=False, highlight=False, soft_wrap=True)


def render_as(rows: list[dict]) -> None:
    t = [[r["gamma"], r["strategy"], r["spread"], r["profit_mean"], r["profit_std"], r["final_q_mean"],
          r["final_q_std"], r["paper"]["spread"], r["paper"]["profit_mean"], r["paper"]["profit_std"],
          r["paper"]["final_q_mean"], r["paper"]["final_q_std"], r["max_abs_z"]] for r in rows]
    _print_wide(_table(f"Avellaneda-Stoikov (2008) market, {rows[0]['n_paths']} paths, seed {rows[0]['seed']} "
                       "(ours | the paper's table; z: difference / Monte Carlo SE)",
                       ["gamma", "strategy", "spread", "profit", "sd", "q_T", "sd(q_T)", "paper spread",
                        "paper profit", "sd", "q_T", "sd(q_T)", "max|z|"], t))


QUEUE_MODELS = ("auto", "book", "factor", "none")
"""``mmcal paper --queue-model``: ``mm_runtime.paper.replay.ReplayConfig.queue_model``."""


def _replay_bundle(priors: Optional[Path], asset: str):
    from mm_runtime import load_bundle

    if priors is not None:
        return load_bundle(priors), str(priors)
    from models import tracking

    try:
        bundle, version = tracking.load_registered_bundle(asset, alias="champion")
    except tracking.RegistryNotFound as e:
        raise CliError(f"--priors: not given, and no champion for {asset} ({e}); calibrate first "
                       "(mmcal calibrate) or pass --priors BUNDLE") from None
    return bundle, f"models:/{tracking.registered_model_name(asset)}@champion (version {version})"


@app.command()
def paper(
    path: Optional[Path] = typer.Argument(None, metavar="[path]", help="Market data to replay (not with --market)."),
    source: Optional[str] = typer.Option(None, "--source", help=f"{' | '.join(SOURCES)}"),
    asset: Optional[str] = typer.Option(None, "--asset", help="Asset, where the path holds several."),
    configs: str = typer.Option("static,learned", "--configs", help="Comma-separated: static, learned, bundle "
                                "(the first is the baseline of the paired comparison)."),
    priors: Optional[Path] = typer.Option(None, "--priors", help="Bundle file (default: the registered champion)."),
    window: Optional[str] = typer.Option(None, "--window", help="Replay window START:END (fractions or seconds), "
                                         "e.g. 0.5:1 to replay data the priors were not fitted on."),
    refresh_s: float = typer.Option(1.0, "--refresh-s", help="Quote refresh interval, s."),
    latency_s: float = typer.Option(0.05, "--latency-s", help="Order latency, s."),
    fee_bps: float = typer.Option(0.0, "--fee-bps", help="Maker fee in bps of notional (negative = rebate)."),
    queue_model: str = typer.Option("auto", "--queue-model", help="Fills at our price: auto (book where the data "
                                    "has L2 snapshots, else factor) | book (queue position from the book) | factor "
                                    "(--queue-factor x the print) | none (trade-through only)."),
    queue_factor: float = typer.Option(0.0, "--queue-factor", help="Share of a print at our price that fills us "
                                       "(--queue-model factor, and auto's fallback without books)."),
    tick_size: Optional[float] = typer.Option(None, "--tick-size", help="Price grid the quotes are rounded to "
                                              "(default: the data's tick, inferred from its prices; 0 = none)."),
    max_position_notional: float = typer.Option(20_000.0, "--max-position-notional", help="Position limit, notional."),
    block_s: float = typer.Option(600.0, "--block-s", help="Block length of the paired comparison, s."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Report folder (default artifacts/paper/ASSET-...)."),
    market: Optional[str] = typer.Option(None, "--market", help="avellaneda-stoikov: the synthetic market instead."),
    gamma: Optional[list[float]] = typer.Option(None, "--gamma", help="AS risk aversion (repeat; default 0.1 0.01 1)."),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="inventory | symmetric (default both)."),
    paths: int = typer.Option(1000, "--paths", help="AS Monte Carlo paths."),
    seed: int = typer.Option(0, "--seed", help="AS random seed."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Paper trading: replay market data through the Quoter for several configurations (static vs learned)
    and write an HTML report; or run the Avellaneda-Stoikov (2008) market against the paper's table."""

    def as_body():
        from mm_runtime.paper import avellaneda_stoikov as AS

        if market != "avellaneda-stoikov":
            raise CliError(f"--market: unknown market {market!r}; the one synthetic market is avellaneda-stoikov")
        if path is not None or source is not None:
            raise CliError("--market: replays take PATH --source; the synthetic market takes neither")
        strategies = AS.STRATEGIES if strategy is None else (strategy,)
        _check_choice("--strategy", strategy, AS.STRATEGIES)
        rows = []
        for g in (gamma or [0.1, 0.01, 1.0]):
            for s in strategies:
                try:
                    res = AS.simulate(g, s, paths, seed)
                except ValueError as e:
                    raise CliError(f"--gamma/--paths: {e}") from None
                row = res.row()
                if (float(g), s) in AS.PAPER_TABLE:
                    row.update(AS.compare_to_paper(res))
                else:
                    row.update(paper={k: None for k in ("spread", "profit_mean", "profit_std", "final_q_mean",
                                                        "final_q_std")}, z=None, max_abs_z=None)
                rows.append(row)
        if as_json:
            emit_json({"market": "avellaneda-stoikov", "rows": rows})
        else:
            render_as(rows)
        return True

    def replay_body():
        import time

        from models.data.loaders import replay_data
        from models.data.tables import DataError, WindowSpec, window_market
        from models.paper_report import ab_document, write_report
        from mm_runtime.paper.compare import CONFIGS, run_ab
        from mm_runtime.paper.replay import ReplayConfig

        if path is None or source is None:
            raise CliError("paper: give PATH and --source (a replay), or --market avellaneda-stoikov")
        names = tuple(c.strip() for c in configs.split(",") if c.strip())
        for c in names:
            if c not in CONFIGS:
                raise CliError(f"--configs: unknown configuration {c!r}; choose from {', '.join(CONFIGS)}")
        if len(set(names)) != len(names) or not names:
            raise CliError(f"--configs: give distinct configurations, got {configs!r}")
        _check_choice("--queue-model", queue_model, QUEUE_MODELS)
        if queue_model in ("auto", "book"):
            try:
                mkt = _load(source, path, asset, with_books=True)
            except DataError as e:
                if queue_model == "book":
                    raise CliError(f"--queue-model book: cannot load the book snapshots: {e}") from None
                _stage(f"paper: no book snapshots ({e}); fills at our price by --queue-factor")
                mkt = _load(source, path, asset)
        else:
            mkt = _load(source, path, asset)
        win = _check_window("--window", window)
        if win:
            mkt = window_market(mkt, *WindowSpec.parse(win).bounds_ns(mkt))
        bundle, origin = _replay_bundle(priors, mkt.asset)
        if bundle.asset != mkt.asset:
            raise CliError(f"--priors: the bundle is for {bundle.asset!r}, the data is {mkt.asset!r}")
        try:
            rc = ReplayConfig(refresh_s=refresh_s, latency_s=latency_s, fee_bps=fee_bps, queue_factor=queue_factor,
                              queue_model=queue_model, tick_size=tick_size,
                              max_position_notional=max_position_notional, block_s=block_s, progress_every_s=5.0)
        except ValueError as e:
            raise CliError(f"paper: {e}") from None
        data = replay_data(mkt)
        books = (f"{len(data.book_ts):,} book snapshots ({data.book_bid_px.shape[1]} levels)" if data.has_book
                 else "no books")
        _stage(f"paper: {mkt.asset} ({source}), {len(data.trade_ts):,} trades, {len(data.quote_ts):,} quotes, {books}, "
               f"{data.end - data.start:,.0f} s; configurations {', '.join(names)}; priors {origin}")
        try:
            ab = run_ab(data, bundle, names, rc, progress=lambda c, f: _stage(f"  {c}: {100 * f:.0f}%"))
        except ValueError as e:
            raise CliError(f"paper: {e}") from None
        ab["window"], ab["priors"] = win or None, origin
        target = out_dir or Path("artifacts/paper") / f"{mkt.asset}-{source}-{time.strftime('%Y%m%dT%H%M%S')}"
        report = write_report(ab, target)
        doc = {**ab_document(ab), "report": str(report)}
        if as_json:
            emit_json(doc)
        else:
            render_paper(doc)
        return True

    if not guarded(as_body if market is not None else replay_body):
        raise typer.Exit(1)


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

        _flows_quiet()
        _stage(f"demo: fit window {FIT_WINDOW} of {duration:.0f} s; CI-sized sampling, {DEMO_SAMPLER['chains']} "
               f"chains x {DEMO_SAMPLER['draws']} draws (regime, hawkes: nutpie; alpha, kappa: pymc) and a gate "
               f"such chains can meet: r_hat <= {DEMO_GATE['max_r_hat']}, ESS >= {DEMO_GATE['min_ess_bulk']:g} "
               "(a real calibration: 4 x 1000 draws, r_hat <= 1.01, ESS >= 400)")
        res = demo_flow(market_dir=str(market_dir), asset=market.asset)
        doc: dict[str, Any] = {"market_dir": str(market_dir), "rows": market.row_counts(), **res, "ladder": None}
        doc["paper"] = None
        if res["deploy"] is not None:
            heldout = window_market(market, *WindowSpec.parse(FIT_WINDOW.split(":")[1] + ":").bounds_ns(market))
            doc["ladder"] = replay_ladder(res["deploy"]["target"], heldout)
            _stage("demo: paper trading the deployed bundle on the held-out quarter (static vs learned) ...")
            doc["paper"] = paper_ab(res["deploy"]["target"], heldout, Path(out_dir) / "paper")
        from models import tracking

        doc["look"] = {"mlflow_ui": tracking.ui_command(), "tracking_uri": tracking.tracking_uri(),
                       "live_bundle": res["deploy"]["target"] if res["deploy"] else None,
                       "prefect_home": os.environ.get("PREFECT_HOME")}
        doc["wall_s"] = time.perf_counter() - t0
        if as_json:
            emit_json(doc)
            return res["deploy"] is not None
        out.rule("1. synthetic market")
        out.print(f"{market.asset}: {duration:.0f} s, {market.row_counts()['trades']:,} trades, "
                  f"{market.row_counts()['quotes']:,} quotes in {market_dir} (truth.json beside it); "
                  f"fit on {FIT_WINDOW}, the rest held out", markup=False, highlight=False)
        for i, cal in enumerate(res["calibrations"]):
            variant = "threshold" if i == 0 else "mixture"
            out.rule(f"{2 + i}. calibrate (alpha {variant} variant)")
            render_calibration(cal)
        n = 2 + len(res["calibrations"])
        if res["comparison"] is not None:
            out.rule(f"{n}. compare on the held-out quarter")
            render_comparison(res["comparison"])
            n += 1
        if res["deploy"] is None:
            out.print("the calibration failed the gate: nothing deployed (see the failures above)")
            return False
        out.rule(f"{n}. deploy")
        _render_deploy(res["deploy"])
        lad = doc["ladder"]
        out.rule(f"{n + 1}. a Quoter on the deployed bundle (replay of the last {lad['replay']['seconds']:.0f} s, "
                 f"{lad['replay']['events']} events)")
        render_ladder(lad)
        out.rule(f"{n + 2}. paper trading on the held-out quarter: learned vs the original static constants")
        render_paper(doc["paper"])
        out.rule("where to look")
        last = res["calibrations"][-1]
        lines = [f"MLflow: {doc['look']['mlflow_ui']}   (then http://127.0.0.1:5000, experiment mm-calibration)",
                 f"  calibration runs: {', '.join(c['run_id'] for c in res['calibrations'])}"
                 + (f"; comparison run: {res['comparison']['run_id']}" if res["comparison"] and
                    res["comparison"].get("run_id") else ""),
                 f"  registered model: {last['registered_model']} (aliases champion, challenger)",
                 f"live bundle: {res['deploy']['target']} (a Quoter watching it hot-reloads each "
                 "`mmcal deploy` / `mmcal rollback`)",
                 f"paper-trading report: {doc['paper']['report']}",
                 f"Prefect runs: PREFECT_HOME={doc['look']['prefect_home']} prefect server start",
                 f"done in {doc['wall_s']:.0f} s"]
        for ln in lines:
            out.print(ln, markup=False, highlight=False, soft_wrap=True)
        return True

    if not guarded(body):
        raise typer.Exit(1)


# ---------------------------------------------------------------------------
# params (the learned-parameter registry, mm_runtime.params)


def _g(v: Any) -> str:
    """4 significant digits (the registry's values span 1e-3 .. 1e3 and sit near 1)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    s = f"{v:.4g}"
    return f"{v:.6g}" if s in ("1", "-1") and v != float(s) else s  # 0.99997 is not 1


def render_params(doc: dict) -> None:
    rows = []
    for p in doc["params"]:
        lo, hi = p["interval"]
        rows.append([p["name"], p["tier"], p["family"], f"{_g(p['prior_mean'])} (s={_g(p['prior_strength'])})",
                     _g(p["estimate"]), _g(lo), _g(hi), f"{p['data_weight']:.3f}", f"{_g(p['n'])}/{p['min_n']}",
                     "yes" if p["calibrated"] else "no", p["in_use"], p["unit"]])
    _print_wide(_table(f"learned parameters{' of ' + doc['asset'] if doc['asset'] else ''}",
                       ["parameter", "tier", "family", "prior mean (strength)", "estimate", "95% lo", "95% hi",
                        "data weight", "n/min_n", "calibrated", "in use", "unit"], rows))
    for t, name in doc["tier_names"].items():
        ps = [p for p in doc["params"] if str(p["tier"]) == t]
        ready = doc[f"tier{t}_ready"]
        out.print(f"tier {t} ({name}): {'ready' if ready else 'not ready'} "
                  f"({sum(p['calibrated'] for p in ps)}/{len(ps)} calibrated)", markup=False, highlight=False)
    sources = sorted({p["prior_source"] for p in doc["params"]})
    out.print("priors: " + "; ".join(sources), markup=False, highlight=False, soft_wrap=True)


@params_app.command("show")
def params_show(
    state: Optional[Path] = typer.Option(None, "--state", help="Registry state file (JSON) to show."),
    priors: Optional[Path] = typer.Option(
        None, "--priors", help="Prior bundle whose priors replace the defaults (with --state: the state's "
                               "evidence re-based onto them)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Every learned parameter: tier, family, prior, estimate, 95% interval, data weight, calibrated."""

    def body():
        from mm_runtime import load_bundle
        from mm_runtime.params import STATE_SCHEMA_VERSION, TIER_NAMES, Registry

        reg = Registry.from_bundle(load_bundle(priors)) if priors is not None else Registry()
        if state is not None:
            reg.load(state, keep_priors=priors is not None)
        st = reg.calibration_status()
        doc = {"asset": reg.asset, "state": state, "priors": priors, "schema_version": STATE_SCHEMA_VERSION,
               **st.tiers(), "tier_names": {str(t): n for t, n in TIER_NAMES.items()},
               "params": [reg.summary(n, st).to_dict() for n in reg.names]}
        if as_json:
            emit_json(doc)
        else:
            render_params(_jsonable(doc))

    guarded(body)


def render_moved(doc: dict) -> None:
    rows = [[m["name"], m["tier"], m["evidence"], m["before"], m["after"], m["data_weight_before"],
             m["data_weight_after"], "yes" if m["calibrated_after"] else "no", m["source"]] for m in doc["moved"]]
    _print_wide(_table(f"historical calibration of {doc['asset']} ({doc['source']}, {doc['duration_s']:,.0f} s): "
                       "what moved", ["parameter", "tier", "evidence", "before", "after", "weight before",
                                      "weight after", "calibrated", "from"], rows))
    for name, ok in doc["tiers"].items():
        out.print(f"{name}: {'ready' if ok else 'not ready'}", markup=False, highlight=False)
    for note in doc["notes"]:
        out.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    if doc.get("state"):
        out.print(f"state saved: {doc['state']}", markup=False, highlight=False)


@params_app.command("calibrate")
def params_calibrate(
    path: Path = typer.Argument(..., metavar="PATH", help="Market data (file or folder)."),
    source: str = typer.Option(..., "--source", help=f"{' | '.join(SOURCES)}"),
    asset: Optional[str] = typer.Option(None, "--asset", help="Asset, where the path holds several."),
    window: Optional[str] = typer.Option(None, "--window", help="Data window START:END (fractions or seconds)."),
    state: Optional[Path] = typer.Option(None, "--state", help="Registry state: loaded if it exists, and the "
                                         "updated state saved there (atomically)."),
    priors: Optional[Path] = typer.Option(None, "--priors", help="Prior bundle whose priors replace the defaults."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Run the historical calibrator (method of moments, models.historical) on market data and feed its
    estimates to the registry's conjugate updates; prints what moved."""

    def body():
        from mm_runtime import load_bundle
        from mm_runtime.params import Registry
        from models import historical
        from models.data.tables import WindowSpec, window_market

        mkt = _load(source, path, asset)
        win = _check_window("--window", window)
        if win:
            mkt = window_market(mkt, *WindowSpec.parse(win).bounds_ns(mkt))
        reg = Registry.from_bundle(load_bundle(priors)) if priors is not None else Registry(asset=mkt.asset)
        if state is not None and state.exists():
            reg.load(state, keep_priors=priors is not None)
        before = {n: reg.summary(n) for n in reg.names}
        _stage(f"historical calibration of {mkt.asset} ({source}, {mkt.duration_s:,.0f} s) ...")
        res = historical.calibrate(mkt)
        evidence = historical.to_evidence(res)
        reg.update_all(evidence)
        st = reg.calibration_status()
        moved = []
        for ev in evidence:
            b, a = before[ev.name], reg.summary(ev.name, st)
            amount = {"bernoulli": f"{ev.successes:g}/{ev.trials:g}", "poisson": f"{ev.count:g} in {ev.exposure:g} s",
                      "exponential": f"n {ev.count:g}, sum {ev.total:.4g}", "values": f"{len(ev.values)} values"}
            moved.append({"name": ev.name, "tier": a.tier, "evidence": f"{ev.kind} {amount[ev.kind]}",
                          "before": b.estimate, "after": a.estimate, "data_weight_before": b.data_weight,
                          "data_weight_after": a.data_weight, "calibrated_after": a.calibrated,
                          "source": ev.source})
        saved = str(reg.save(state)) if state is not None else None
        doc = {"asset": mkt.asset, "source": source, "window": win or None, "duration_s": mkt.duration_s,
               "moved": moved, "tiers": st.tiers(), "notes": list(res.notes), "state": saved,
               "estimates": res.model_dump(mode="json")}
        if as_json:
            emit_json(doc)
        else:
            render_moved(_jsonable(doc))
        return True

    if not guarded(body):
        raise typer.Exit(1)


# ---------------------------------------------------------------------------
# live (mm_runtime.live)

LIVE_FEEDS = ("replay", "hyperliquid")


@app.command()
def live(
    asset: str = typer.Option(..., "--asset", help="Asset to quote (the bundle's; the Hyperliquid coin)."),
    priors: Path = typer.Option(..., "--priors", help="Deployed bundle (JSON); watched and hot-reloaded."),
    feed: str = typer.Option(..., "--feed", help=f"{' | '.join(LIVE_FEEDS)}"),
    metrics_port: Optional[int] = typer.Option(None, "--metrics-port", help="Serve Prometheus metrics on "
                                               "127.0.0.1:PORT (0 = a free port, logged; default: none)."),
    state: Optional[Path] = typer.Option(None, "--state", help="State file, restored at start and saved "
                                         "atomically at shutdown (default: ASSET.state.json beside PRIORS)."),
    low_latency_cpu: bool = typer.Option(True, "--low-latency/--no-low-latency", help="Single-threaded XLA CPU "
                                         "client, synchronous dispatch, the quote step compiled as one XLA "
                                         "kernel (a dedicated quoter process)."),
    params_state: Optional[Path] = typer.Option(None, "--params-state", help="Learned-parameter registry state "
                                                "(from `mmcal params calibrate --state`): published as "
                                                "mm_learned_<name> gauges and logged every minute."),
    speed: float = typer.Option(1.0, "--speed", help="Replay: market seconds per wall second (0 or inf = "
                                "as fast as possible)."),
    source: Optional[str] = typer.Option(None, "--source", help=f"Replay: {' | '.join(SOURCES)}"),
    data: Optional[Path] = typer.Option(None, "--data", help="Replay: the market data file or folder."),
    url: str = typer.Option("wss://api.hyperliquid.xyz/ws", "--url", help="Hyperliquid: websocket URL."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many wall seconds."),
    refresh_s: float = typer.Option(1.0, "--refresh-s", help="Publish (and log) a ladder at most this often, s."),
    capital: float = typer.Option(100_000.0, "--capital", help="Paper account capital, quote currency."),
    fee_bps: float = typer.Option(0.0, "--fee-bps", help="Maker fee in bps of notional (negative = rebate)."),
    no_fills: bool = typer.Option(False, "--no-fills", help="No paper fills: position 0, margin = capital."),
    checkpoint_s: float = typer.Option(300.0, "--checkpoint-s", help="Also save the state this often while "
                                       "running, wall seconds (0 = only at shutdown)."),
    as_json: bool = typer.Option(False, "--json", help="At exit, print one JSON summary on stdout."),
):
    """Run the quoter in real time on a feed (a replay of recorded data, or the Hyperliquid websocket): hot-reload
    the deployed bundle, serve metrics, log each ladder (JSON lines on stderr), keep a paper account (no orders
    are sent), and save the online state every --checkpoint-s and on SIGTERM/SIGINT."""

    def body():
        import asyncio

        from mm_runtime import BundleError, configure_low_latency_cpu, load_bundle
        from mm_runtime.live import HyperliquidFeed, LiveConfig, LiveRunner, ReplayFeed
        from mm_runtime.logs import configure_json_logging

        # a dedicated quoter process: JAX's CPU client single-threaded with synchronous
        # dispatch (mm_runtime.perf; the step's median ~84 -> ~29 us here); must come
        # before anything creates the backend
        low_latency = configure_low_latency_cpu() if low_latency_cpu else False

        _check_choice("--feed", feed, LIVE_FEEDS)
        if feed == "replay":
            if source is None or data is None:
                raise CliError("--feed replay: give --source and --data")
            if math.isnan(speed) or speed < 0:
                raise CliError(f"--speed: must be >= 0 (0 or inf = as fast as possible), got {speed}")
        elif source is not None or data is not None:
            raise CliError("--source/--data: only with --feed replay")
        if feed == "hyperliquid" and not url.startswith(("ws://", "wss://")):
            raise CliError(f"--url: expected ws:// or wss://, got {url!r}")
        if metrics_port is not None and not 0 <= metrics_port <= 65535:
            raise CliError(f"--metrics-port: must be 0..65535, got {metrics_port}")
        if duration is not None and not (math.isfinite(duration) and duration > 0):
            raise CliError(f"--duration: must be a positive number of seconds, got {duration}")
        if not Path(priors).is_file():
            raise CliError(f"{priors}: no such file")
        try:
            bundle = load_bundle(priors)
        except BundleError as e:
            raise CliError(str(e)) from None
        if bundle.asset != asset:
            raise CliError(f"--priors: the bundle is for {bundle.asset!r}, not --asset {asset!r}")
        state_path = state if state is not None else Path(priors).with_name(f"{asset}.state.json")
        folder = state_path.parent if str(state_path.parent) else Path(".")
        if not (folder.is_dir() and os.access(folder, os.W_OK)):
            raise CliError(f"--state: {state_path}: its folder does not exist or is not writable "
                           "(the state is saved there at shutdown)")
        try:
            live_cfg = LiveConfig(refresh_s=refresh_s, capital=capital, fee_bps=fee_bps, paper_fills=not no_fills,
                                  checkpoint_s=checkpoint_s if checkpoint_s != 0 else None)
        except ValueError as e:  # pydantic: name the option and the rule
            first = e.errors()[0] if hasattr(e, "errors") else {"loc": ("live",), "msg": str(e)}
            opt = "--" + str(first["loc"][0]).replace("_", "-")
            raise CliError(f"{opt}: {first['msg']}") from None

        if feed == "replay":
            from models.data.loaders import replay_data

            mkt = _load(source, data, asset)
            if mkt.asset != asset:
                raise CliError(f"--asset: {data} holds {mkt.asset!r}, not {asset!r}")
            rd = replay_data(mkt)
            the_feed = ReplayFeed(rd, speed)
            _stage(f"live: replaying {asset} ({source}), {len(rd.trade_ts):,} trades, {len(rd.quote_ts):,} quotes, "
                   f"{rd.end - rd.start:,.0f} s at {speed:g}x")
        else:
            the_feed = HyperliquidFeed(url, asset)
            _stage(f"live: {asset} from {url}")
        _stage(f"live: low-latency CPU mode {'on' if low_latency else 'off'}")

        # JSON lines on stderr for the runtime's records (not through the plain root handler as well)
        rt_log = logging.getLogger("mm_runtime")
        handler = configure_json_logging(level=rt_log.level or logging.INFO, stream=sys.stderr)
        propagate, rt_log.propagate = rt_log.propagate, False
        try:
            runner = LiveRunner(priors, live=live_cfg, state_path=state_path, params_state=params_state,
                                market_clock=the_feed.market_clock)
            form = "one XLA kernel" if runner.quoter.one_kernel_step else "a multi-kernel XLA program"
            _stage(f"live: quote step compiled as {form}")
            if metrics_port is not None:
                try:
                    runner.serve_metrics(metrics_port)
                except OSError as e:
                    raise CliError(f"--metrics-port: cannot listen on 127.0.0.1:{metrics_port}: "
                                   f"{e.strerror or e}") from None
            summary = asyncio.run(runner.run(the_feed, duration))
        finally:
            rt_log.removeHandler(handler)
            rt_log.propagate = propagate
        if as_json:
            emit_json(summary)
        else:
            _stage(f"live: stopped ({summary['stopped']}): {summary['events']:,} events, {summary['ladders']:,} "
                   f"ladders, {summary['fills']} paper fills, position {summary['position']:.6g}, "
                   f"model {summary['model_version']}; state saved to {summary['state']}")

    guarded(body)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
