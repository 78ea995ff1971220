"""Processes sharing one ``PREFECT_HOME`` (DESIGN.md section 7).

Without ``PREFECT_API_URL`` each process starts Prefect's temporary API server
(``SubprocessASGIServer``), which migrates the database as it starts: two at once
on a new database would race. :func:`guard_ephemeral_server` (installed by
:func:`flows.runtime.prepare_environment`, before Prefect is imported) serialises
the start across processes with a lock file in ``PREFECT_HOME``.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

SERVER_MODULE = "prefect.server.api.server"


# --------------------------------------------------------------------------- the temporary server
def _patch_server_class(module) -> None:
    cls = module.SubprocessASGIServer
    if getattr(cls, "_mmcal_guarded", False):
        return
    start = cls.start

    def locked_start(self, timeout=None):
        if self.running:
            return
        from prefect.settings import get_current_settings

        from models.concurrency import file_lock

        with file_lock(get_current_settings().home / "ephemeral-server-start.lock"):
            start(self, timeout)

    cls.start = locked_start
    cls._mmcal_guarded = True


class _AfterImport:
    """A ``sys.meta_path`` finder that runs ``then(module)`` right after ``name`` is
    first imported (then steps aside)."""

    def __init__(self, name: str, then: Callable[[Any], None]):
        self.name, self.then = name, then

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        from importlib.machinery import PathFinder

        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader, then = spec.loader, self.then
        exec_module = loader.exec_module

        def exec_then(module):
            exec_module(module)
            then(module)

        loader.exec_module = exec_then
        return spec


def guard_ephemeral_server() -> None:
    """Serialise starting Prefect's temporary server (module docstring). Costs
    nothing until Prefect's server module is imported."""
    if SERVER_MODULE in sys.modules:
        _patch_server_class(sys.modules[SERVER_MODULE])
    elif not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(SERVER_MODULE, _patch_server_class))


__all__ = ["guard_ephemeral_server"]
