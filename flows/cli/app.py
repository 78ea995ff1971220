"""The `mmcal` typer app and the plumbing every command shares (DESIGN.md section 8).

* :data:`app` (with the ``data`` and ``params`` groups) and the root callback
  :func:`_root` (warnings and logging; the process's set-up ran when the ``flows``
  package was imported: ``flows/__init__.py``);
* the two consoles: :data:`out` (stdout: tables) and :data:`err` (stderr:
  progress, logs, errors);
* :func:`guarded` (a command body: input errors become one line and exit 2),
  :func:`emit_json` (``--json``: one document on stdout), :func:`stage` (one
  progress line), :func:`flows_quiet` (Prefect's tracebacks only with ``--debug``),
  :func:`flows_start` (before a command runs flows).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Callable

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
