"""A killed calibration leaves nothing running (flows/housekeeping.py).

A real ``mmcal calibrate`` is SIGKILLed while its MLflow run is open (the fits are
in the cache of :func:`concurrent_pair`, so it gets there in seconds): its
temporary Prefect server must go with it, and the next ``mmcal calibrate`` closes
the runs it left RUNNING (Prefect flow and task runs CRASHED, MLflow runs FAILED),
saying so in one line. The stores are read directly (their sqlite databases).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time

import psutil

STALE_LINE = "closed the runs a process that died left RUNNING"


def _rows(db, sql: str, args=()) -> list[tuple]:
    with sqlite3.connect(db, timeout=30) as c:
        return c.execute(sql, args).fetchall()


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_killed_calibration_leaves_no_server_and_the_next_run_closes_its_runs(cli_world, concurrent_pair):
    assert all(rc == 0 for rc, _, _ in concurrent_pair), "the cached fits are missing"
    env, root = cli_world["env"], cli_world["root"]
    # a new bundle key (another strength cap), the same cached fits: it goes on to log an MLflow run
    cmd = cli_world["calibrate"]("--max-prior-strength", "50", "--json")
    open_before = {r[0] for r in _rows(cli_world["mlflow_db"], "select run_uuid from runs where status = 'RUNNING'")}
    with open(root / "killed.err", "w+") as err:
        proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=err)
        deadline, running = time.monotonic() + 600, []
        while not running:
            assert proc.poll() is None, f"it ended before its MLflow run was open: {proc.returncode}"
            assert time.monotonic() < deadline, "no MLflow run opened in 600 s"
            time.sleep(0.1)
            running = [r[0] for r in _rows(cli_world["mlflow_db"],
                                           "select run_uuid from runs where status = 'RUNNING'")
                       if r[0] not in open_before]
        children = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    servers = [c for c in children if "uvicorn" in " ".join(c.cmdline())]
    assert servers, [c.cmdline() for c in children]

    # the temporary server (and anything else it started) goes with it
    deadline = time.monotonic() + 60
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.5)
    survivors = [c.cmdline() for c in children if _alive(c)]
    for c in children:                       # do not leave them to the next test either way
        if _alive(c):
            c.kill()
    assert not survivors, f"still running after the kill: {survivors}"

    # it left its runs open
    flow_runs = [r[0] for r in _rows(cli_world["prefect_db"], "select id from flow_run where state_type = 'RUNNING'")]
    assert flow_runs
    marks = ",".join("?" * len(flow_runs))
    open_tasks = _rows(cli_world["prefect_db"], f"select id from task_run where flow_run_id in ({marks}) "
                       "and state_type in ('RUNNING', 'PENDING')", flow_runs)
    assert open_tasks
    mlflow_open = [r[0] for r in _rows(cli_world["mlflow_db"], "select run_uuid from runs where status = 'RUNNING'")]
    assert set(running) <= set(mlflow_open)

    # the next run closes them, in one line, and goes on
    res = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [ln for ln in res.stderr.splitlines() if STALE_LINE in ln]
    assert len(lines) == 1 and f"pid {proc.pid}" in lines[0], res.stderr[-3000:]
    assert json.loads(res.stdout)["status"] == "registered"

    states = dict(_rows(cli_world["prefect_db"], f"select id, state_type from flow_run where id in ({marks})",
                        flow_runs))
    assert set(states.values()) == {"CRASHED"}, states
    tasks = dict(_rows(cli_world["prefect_db"], f"select id, state_type from task_run where id in "
                       f"({','.join('?' * len(open_tasks))})", [t[0] for t in open_tasks]))
    assert set(tasks.values()) == {"CRASHED"}, tasks
    ml = dict(_rows(cli_world["mlflow_db"], f"select run_uuid, status from runs where run_uuid in "
                    f"({','.join('?' * len(mlflow_open))})", mlflow_open))
    assert set(ml.values()) == {"FAILED"}, ml
    reason = _rows(cli_world["mlflow_db"], "select value from tags where run_uuid = ? and key = 'failure'",
                   (running[0],))
    assert reason and f"pid {proc.pid}" in reason[0][0]
    assert not _rows(cli_world["prefect_db"], "select id from flow_run where state_type = 'RUNNING'")
