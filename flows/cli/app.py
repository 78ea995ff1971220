"""The `mmcal` typer app and the plumbing every command shares (DESIGN.md section 8).

* :data:`app` (with the ``data``, ``params`` and ``live`` groups) and the root callback
  :func:`_root` (warnings and logging; the process's set-up ran when the ``flows``
  package was imported: ``flows/__init__.py``);
* the two consoles: :data:`out` (stdout: tables) and :data:`err` (stderr:
  progress, logs, errors); ``--help`` keeps option names whole
  (:func:`_help_tables_keep_option_names`);
* :func:`guarded` (a command body: input errors become one line and exit 2; a
  config's pydantic error names the flag: :func:`validation_message`),
  :func:`emit_json` (``--json``: one document on stdout), :func:`stage` (one
  progress line), :func:`flows_quiet` (Prefect's tracebacks only with ``--debug``),
  :func:`flows_start` (before a command runs flows).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Callable, Mapping, Optional

import typer
from rich.console import Console

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


class _DefaultRunGroup(typer.core.TyperGroup):
    """A group whose ``run`` is also the group itself: ``mmcal live ARGS`` is ``mmcal live
    run ARGS`` unless ARGS start with another subcommand (``mmcal live reset``)."""

    def parse_args(self, ctx, args):
        if not args or args[0] not in self.commands:
            args = ["run", *args]
        return super().parse_args(ctx, args)


live_app = typer.Typer(cls=_DefaultRunGroup, help="The live quoter process (`mmcal live ARGS` = `mmcal live run "
                       "ARGS`) and its kill switch's reset.")
app.add_typer(live_app, name="live")


def _help_tables_keep_option_names() -> None:
    """``--help``: typer's option tables keep every option name, switch and type whole
    (their columns do not wrap, so rich narrows only the help text, which wraps and
    folds a long word) instead of cutting names to '--max-prior-streng…' on an
    80-column console."""
    try:
        from rich.table import Table
        from rich.text import Text
        from typer import rich_utils
    except ImportError:  # typer without rich: click's plain help, which cuts nothing
        return

    class HelpTable(Table):
        def add_row(self, *renderables, **kwargs):
            super().add_row(*renderables, **kwargs)
            for col in self.columns[:-1]:
                col.no_wrap = True
            self.columns[-1].overflow = "fold"
            last = renderables[-1] if renderables else None
            for item in getattr(last, "renderables", [last]):  # the help text: typer's Columns of Texts
                if isinstance(item, Text) and item.overflow is None:
                    item.overflow = "fold"

    if getattr(rich_utils, "Table", None) is Table:
        rich_utils.Table = HelpTable


_help_tables_keep_option_names()

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


def main() -> None:
    """The console script ``mmcal`` (and ``python -m flows.cli``)."""
    app()


# ---------------------------------------------------------------------------
# helpers


def jsonable(x: Any) -> Any:
    from flows.runtime import jsonable as _jsonable

    return _jsonable(x)


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(doc), indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def _command_params() -> tuple:
    """The options of the command now running (typer runs its own copy of click)."""
    for name in ("typer._click.globals", "click.globals"):
        mod = sys.modules.get(name)
        ctx = mod.get_current_context(silent=True) if mod is not None else None
        if ctx is not None:
            return tuple(ctx.command.params)
    return ()


def _flag_of(field: str, flags: Mapping[str, str]) -> Optional[str]:
    """The current command's flag that sets config field ``field``: ``flags[field]``,
    else the option whose parameter is named ``field`` or spelled ``--field-name``."""
    if field in flags:
        return flags[field]
    dashed = f"--{field.replace('_', '-')}"
    for param in _command_params():
        longs = [o for o in param.opts if o.startswith("--")]
        if dashed in longs:
            return dashed
        if longs and param.name == field:
            return longs[0]
    return None


def validation_message(e: Any, flags: Optional[Mapping[str, str]] = None) -> str:
    """One line for a pydantic ``ValidationError`` of a config built from the options:
    ``FLAG: the problem, got VALUE`` for its first error, the config's field named by
    the command's flag (``flags``: field -> flag where the names differ, e.g.
    ``{"n_levels": "--levels"}``; else the option named like the field)."""
    errors = e.errors()
    if not errors:
        return str(e).splitlines()[0]
    first = errors[0]
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    msg = msg.replace("Input should be ", "must be ", 1)
    loc = [str(x) for x in first.get("loc", ())]
    field = loc[0] if loc else msg.partition(":")[0].strip()
    flag = _flag_of(field, flags or {})
    if loc:
        where = flag or ".".join(loc)
        value = first.get("input")
        got = "" if isinstance(value, (dict, list, tuple)) else f", got {value}"
        line = f"{where}: {msg}{got}"
    elif flag and msg.startswith(field + ":"):  # a check across fields that names its field first
        line = flag + msg[len(field):]
    else:
        line = msg
    return line + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


def guarded(fn: Callable[[], Any], flags: Optional[Mapping[str, str]] = None) -> Any:
    """Run a command body: known input errors become one clear line and exit 2 (a
    pydantic ``ValidationError`` of a config names the option: :func:`validation_message`,
    ``flags`` its field -> flag map)."""
    from pydantic import ValidationError

    from models.data.tables import DataError

    try:
        return fn()
    except typer.Exit:
        raise
    except (CliError, DataError, FileNotFoundError, NotADirectoryError, PermissionError,
            ValueError) as e:
        if _State.debug:
            raise
        msg = validation_message(e, flags) if isinstance(e, ValidationError) else str(e)
        if isinstance(e, FileNotFoundError) and e.filename:
            msg = f"{e.filename}: no such file or directory"
        sampling = sys.modules.get("models.sampling")
        if sampling is not None and isinstance(e, sampling.SampleSizeError):
            msg = f"--draws/--chains: {msg}"  # a trace larger than the memory: the flags that size it
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


def stage(msg: str) -> None:
    """A progress line on stderr, never wrapped or read as markup (paths may hold '[')."""
    err.print(msg, markup=False, highlight=False, soft_wrap=True)


class _NoTraceback(logging.Filter):
    """Drops the traceback from Prefect's log records (their one-line message stays)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("prefect"):
            record.exc_info = None
            record.exc_text = None
        return True


def flows_quiet() -> None:
    """Prefect logs an exception raised in a flow or task with its traceback; mmcal
    reports it as one line (the package's convention), so on the console the traceback
    is kept for ``--debug`` only (Prefect's API still gets the full record)."""
    if _State.debug:
        return
    handlers = logging.getLogger().handlers + logging.getLogger("prefect").handlers
    for h in handlers:
        if not any(isinstance(f, _NoTraceback) for f in h.filters) and "APILog" not in type(h).__name__:
            h.addFilter(_NoTraceback())


def flows_start() -> None:
    """Before a command runs flows: :func:`flows_quiet`, this process's runs tagged with
    it, and the runs a killed process left RUNNING closed, said in one line
    (:func:`flows.housekeeping.begin`)."""
    flows_quiet()
    from flows.housekeeping import begin

    begin(stage)
