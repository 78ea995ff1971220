"""``--parallel-assets`` bounds the asset flows running at once on every task runner
(flows.calibrate.submit_bounded): the Dask runner on an existing cluster sets no limit
of its own, so the bound is the flow's. A real Prefect flow on a thread pool wider than
the bound; each task records how many of them run at the same time.
Fixtures: tests/flows/conftest.py (Prefect's ephemeral API)."""

from __future__ import annotations

import threading
import time

import pytest
from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

from flows.calibrate import submit_bounded

_lock = threading.Lock()
_running = {"now": 0, "max": 0}


@task
def _asset(name: str) -> str:
    with _lock:
        _running["now"] += 1
        _running["max"] = max(_running["max"], _running["now"])
    time.sleep(0.3)
    with _lock:
        _running["now"] -= 1
    return name.upper()


@pytest.mark.parametrize("limit, expect_max", [(2, 2), (None, 6)])
def test_at_most_limit_assets_run_at_once_and_results_keep_their_order(limit, expect_max):
    _running.update(now=0, max=0)

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=6))
    def many(names: list[str]) -> list[str]:
        return [f.result() for f in submit_bounded(_asset, [(n,) for n in names], limit, poll_s=0.02)]

    names = ["a", "b", "c", "d", "e", "f"]
    assert many(names) == [n.upper() for n in names]
    assert _running["max"] == expect_max, _running
