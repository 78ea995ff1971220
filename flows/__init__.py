"""Prefect flows, their tasks and the ``mmcal`` command line: orchestration only.

Importing the package runs the one set-up point, :func:`flows.runtime.prepare_environment`
(Prefect's home and settings, which Prefect reads when it is imported), so every way
in -- the CLI, a script, a test, a Dask worker -- is set up before any flow module
imports Prefect.
"""

from flows.runtime import prepare_environment as _prepare_environment

_prepare_environment()
