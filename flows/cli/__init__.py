"""`mmcal`: the one command-line entry point (DESIGN.md section 8).

Conventions for every subcommand:

* human-readable tables and progress by default (progress and logs on stderr);
* ``--json`` prints exactly one JSON document on stdout, nothing else;
* errors: one line ``mmcal: error: <input>: <problem>`` on stderr, exit status 2,
  no traceback unless ``mmcal --debug ...``.

One module per command group, each registering its commands on :data:`app`:
:mod:`~flows.cli.data` (simulate, data inspect), :mod:`~flows.cli.fit`,
:mod:`~flows.cli.quote`, :mod:`~flows.cli.calibrate` (calibrate, compare, deploy,
rollback, serve), :mod:`~flows.cli.paper`, :mod:`~flows.cli.demo`,
:mod:`~flows.cli.params` (params show, params calibrate), :mod:`~flows.cli.live`
(live, the same as live run), :mod:`~flows.cli.live_reset` (live reset),
:mod:`~flows.cli.status`;
the shared plumbing in :mod:`~flows.cli.app`, option checks in
:mod:`~flows.cli.options`, the tables in :mod:`~flows.cli.render`. Orchestration
only: no statistics here (``mmcal fit``'s steps are :mod:`flows.fitting`).
"""

from __future__ import annotations

from flows.cli.app import SOURCES, CliError, app, data_app, emit_json, err, guarded, main, out, params_app

# the command modules, imported in the order `mmcal --help` lists their commands
from flows.cli import data, fit, quote, calibrate, status, paper, demo, params, live, live_reset  # noqa: E402,F401,I001  isort:skip

from flows.cli.calibrate import TASK_RUNNERS  # noqa: E402
from flows.cli.data import write_synthetic  # noqa: E402
from flows.cli.fit import run_fit  # noqa: E402
from flows.cli.live import LIVE_FEEDS  # noqa: E402
from flows.cli.options import SAMPLERS, fit_configs  # noqa: E402
from flows.cli.paper import QUEUE_MODELS  # noqa: E402
from flows.cli.render import (  # noqa: E402
    render_as,
    render_calibration,
    render_comparison,
    render_demo,
    render_deploy,
    render_fit,
    render_inspect,
    render_ladder,
    render_moved,
    render_paper,
    render_params,
    render_schedules,
)

__all__ = [
    "LIVE_FEEDS", "QUEUE_MODELS", "SAMPLERS", "SOURCES", "TASK_RUNNERS", "CliError", "app", "data_app", "emit_json",
    "err", "fit_configs", "guarded", "main", "out", "params_app", "render_as", "render_calibration",
    "render_comparison", "render_demo", "render_deploy", "render_fit", "render_inspect", "render_ladder",
    "render_moved", "render_paper", "render_params", "render_schedules", "run_fit", "write_synthetic",
]
