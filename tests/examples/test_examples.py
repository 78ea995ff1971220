"""The scripts in examples/ run as a user would run them (a subprocess from the
repository root, ``MMCAL_ARTIFACTS`` a temporary folder), with CI-sized settings; the
output is checked for the lines and numbers each one promises.  The real-data ones
need ../shared/data (skipped without it)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    """One artifacts folder for the module: the calibration's registry is what the
    deploy example deploys."""
    return tmp_path_factory.mktemp("examples-artifacts")


def run(script: str, *args: str, artifacts: Path, timeout: float = 240) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "PREFECT_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    env["MMCAL_ARTIFACTS"] = str(artifacts)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    p = subprocess.run([sys.executable, str(REPO / "examples" / script), *args], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, (f"{script} exited {p.returncode}\n--- stdout\n{p.stdout[-4000:]}\n"
                               f"--- stderr\n{p.stderr[-4000:]}")
    return p.stdout


def numbers(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?\d+\.?\d*(?:e[-+]?\d+)?", line)]


def ladder(out: str) -> list[list[float]]:
    rows = [numbers(line) for line in out.splitlines() if re.match(r"^(bid|ask)\s+\d", line)]
    assert len(rows) == 10, out          # QuoterConfig's 5 levels a side
    assert all(len(r) == 7 and all(math.isfinite(x) for x in r) for r in rows), rows
    return rows


def test_add_a_model(artifacts):
    out = run("add_a_model.py", "--duration", "1200", "--draws", "200", "--chains", "2", artifacts=artifacts)
    assert re.search(r"observations: \d+ trade prints", out), out
    sd = numbers(re.search(r"size_log_sd\s+mean .*", out).group(0))[0]
    assert 0.6 < sd < 1.0, out            # the synthetic market's size_log_sd is 0.8
    assert re.search(r"gate: (PASS|FAIL)", out), out
    assert out.count("bundle summary trade_size[") == 4, out
    elpd = numbers(re.search(r"held-out: elpd .*", out).group(0))[0]
    assert math.isfinite(elpd) and elpd < 0, out


def test_deploy_and_quote_example_bundle(tmp_path):
    out = run("deploy_and_quote.py", "--events", "60", artifacts=tmp_path)
    assert "wrote the example bundle to" in out and (tmp_path / "live" / "SYN.json").exists(), out
    assert "valid True (ok)" in out and "markout horizon 1 s, informed threshold 1 bps" in out, out
    rows = ladder(out)
    assert sum(r[4] for r in rows) > 0, out   # some size is quoted


def test_paper_ab(shared_data, tmp_path):
    out = run("paper_ab.py", "--window", "0s:600s", "--block-s", "120", artifacts=tmp_path)
    table = {line.split()[0]: numbers(line) for line in out.splitlines()
             if re.match(r"(static|learned|bundle)\s", line)}
    assert set(table) == {"static", "learned", "bundle"}, out
    assert all(math.isfinite(r[0]) for r in table.values()), out   # PnL
    assert "paired by 120 s blocks against static" in out, out
    assert re.search(r"learned\s+mean [-+]\d", out), out


@pytest.mark.slow
def test_calibrate_real_file_then_deploy(shared_data, artifacts):
    out = run("calibrate_real_file.py", "--window", "0s:600s", "--draws", "100", "--chains", "2", "--loose-gate",
              "--markout-horizon", "5", "--informed-threshold", "2", artifacts=artifacts, timeout=480)
    assert "AAPL (lobster), window 0s:600s" in out and "status registered" in out, out
    bundle = Path(re.search(r"^bundle: (.+)$", out, re.M).group(1))
    assert bundle.exists() and bundle.is_relative_to(artifacts), out
    assert "registered: mm-priors-AAPL version 1" in out, out
    assert "bundle observation rules: markout horizon 5 s, informed threshold 2 bps" in out, out
    summary = [line for line in out.splitlines() if line.startswith("kappa[")]
    assert len(summary) == 8 and all(math.isfinite(numbers(line.split("]", 1)[1])[0]) for line in summary), out

    out = run("deploy_and_quote.py", "--asset", "AAPL", "--mid", "580", "--events", "60", artifacts=artifacts)
    assert "deployed models:/mm-priors-AAPL@champion" in out and (artifacts / "live" / "AAPL.json").exists(), out
    assert "markout horizon 5 s, informed threshold 2 bps" in out, out     # the quoter learns under the fit's rules
    ladder(out)
