"""Shared fixtures: where the real market data lives (../shared/data beside the repo)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real market data not found at {SHARED_DATA} (../shared/data beside the repository)")
    return SHARED_DATA


def pytest_xdist_make_scheduler(config, log):
    """Work units for pytest-xdist (``-n``, see pyproject's addopts): each test module
    whole on one worker (its module-scoped fits are computed once), and every flow
    test module directly in tests/flows (they share one session's calibrated
    registry) on the same worker; the command-line modules in tests/flows/cli are
    scheduled one module at a time like the rest.  (xdist's ``loadgroup`` marks do
    not work with pytest 9.2: xdist 3.8 rewrites ``item._nodeid``, which pytest no
    longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "tests/flows" if _is_flow_module(module) else module

    return ModuleScheduling(config, log)


def _is_flow_module(module: str) -> bool:
    """``tests/flows/test_x.py``, not ``tests/flows/cli/test_x.py``."""
    folder, _, _ = module.rpartition("/")
    return folder == "tests/flows"
