"""A calibration killed half way (SIGKILL, no clean-up of any kind) and run again
completes, with no duplicate model version (issue #5, faults).

The killed process is a real one: ``run_calibration`` (what ``mmcal calibrate``
runs) in a child Python with its own ephemeral Prefect, on the session's market and
MLflow store. Its regime, kappa and hawkes fits are the session's cached ones and its
alpha fit is new (another sampler seed), so the child is killed while it samples
alpha: after the MLflow run was opened, before anything was registered. The re-run
(in this process) samples alpha again, registers one version, and a third run adds
nothing: versions are keyed by the calibration's cache key (data hash, model config,
code version), not by run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

SAMPLING_ALPHA = "alpha: sampling"
TIMEOUT_S = float(os.environ.get("MMCAL_RESTART_TIMEOUT", "300"))


def _child(lab, settings: dict, tmp_path) -> subprocess.Popen:
    code = (
        "import json, sys\n"
        "from flows.calibrate import run_calibration\n"
        "kw = json.loads(sys.argv[1])\n"
        "print(json.dumps(run_calibration('synthetic', sys.argv[2], **kw), default=str))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-c", code, json.dumps(settings), str(lab["market"])],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def test_a_calibration_killed_half_way_reruns_to_one_version(calibrated, mixture, lab, fit_settings, calibrate,
                                                            tmp_path):
    from mlflow import MlflowClient

    from models import tracking

    name = tracking.registered_model_name("SYN")
    client = MlflowClient()
    before = {v.version for v in client.search_model_versions(f"name='{name}'")}
    settings = {**fit_settings, "sampler_overrides": {**fit_settings["sampler_overrides"],
                                                      "alpha": {"seed": 5}}, "plots": False}
    proc = _child(lab, settings, tmp_path)
    seen, deadline = [], time.monotonic() + TIMEOUT_S
    try:
        for raw in proc.stdout:  # until the child is sampling alpha
            seen.append(raw.decode(errors="replace").rstrip())
            if SAMPLING_ALPHA in seen[-1] or time.monotonic() > deadline:
                break
        assert SAMPLING_ALPHA in seen[-1], "\n".join(seen[-30:])
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert {v.version for v in client.search_model_versions(f"name='{name}'")} == before  # nothing registered

    again = calibrate(**settings)
    assert again["status"] == "registered", again
    assert not again["models"]["alpha"]["cache_hit"] and again["models"]["kappa"]["cache_hit"]
    after = [v for v in client.search_model_versions(f"name='{name}'") if v.version not in before]
    assert [int(v.version) for v in after] == [again["version"]]

    third = calibrate(**settings)
    assert third["version"] == again["version"] and all(m["cache_hit"] for m in third["models"].values())
    assert len(client.search_model_versions(f"name='{name}'")) == len(before) + 1
