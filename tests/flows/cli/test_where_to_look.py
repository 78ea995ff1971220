"""The "where to look" commands work as printed (README, ``mmcal calibrate``'s
``look:`` line, the demo's closing lines): ``./mm TOOL`` runs any tool of the
project's environment (``mlflow``, ``prefect`` are not on the PATH of a fresh
machine), and the printed commands name it that way (``./mm`` from the repository
root, the script's absolute path elsewhere).

The real ``./mm`` script runs here (each call checks ``.venv`` against ``uv.lock``,
a no-op when in sync); skipped where ``./mm`` has not installed its uv yet (that
first run downloads it).
"""

from __future__ import annotations

import shlex
import subprocess

import pytest

from models.paths import MM_SCRIPT, REPO

pytestmark = pytest.mark.skipif(not (REPO / ".tools" / "uv" / "bin" / "uv").exists(),
                                reason="./mm has not installed its uv (.tools/uv) on this machine yet")


def _sh(cmd: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_mm_passes_a_tool_of_the_environment_through_and_leaves_the_environment_alone():
    cfg = REPO / ".venv" / "pyvenv.cfg"
    built = cfg.stat().st_mtime_ns if cfg.exists() else None
    r = _sh("./mm mlflow --version", REPO)
    assert r.returncode == 0 and "mlflow, version" in r.stdout, r.stderr[-2000:]
    r = _sh("./mm no-such-tool", REPO)
    assert r.returncode == 2 and "mm: unknown command 'no-such-tool'" in r.stderr
    # not rebuilt (a `./mm mlflow ui` beside a running calibration must not pull its
    # environment from under it): python3 as a pyenv shim used to rebuild it every time
    if built is not None:
        assert cfg.stat().st_mtime_ns == built


def test_the_printed_mlflow_ui_command_works_as_typed_from_the_repository_root(monkeypatch, tmp_path):
    from models import tracking

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("MMCAL_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cmd = tracking.ui_command()
    assert cmd == f"./mm mlflow ui --backend-store-uri sqlite:///{tmp_path / 'artifacts' / 'mlflow.db'}"
    r = _sh(cmd + " --help", REPO)                      # parsed by the real `mlflow ui`, which then stops
    assert r.returncode == 0 and "--backend-store-uri" in r.stdout, r.stderr[-2000:]


def test_the_printed_prefect_command_works_as_typed_elsewhere(monkeypatch, tmp_path):
    from flows.cli.demo import prefect_ui_command

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect home"))
    cmd = prefect_ui_command()
    assert cmd == f"PREFECT_HOME='{tmp_path / 'prefect home'}' {MM_SCRIPT} prefect server start"
    r = _sh(cmd + " --help", tmp_path)
    assert r.returncode == 0 and "--port" in r.stdout, r.stderr[-2000:]
