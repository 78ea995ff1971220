"""Smoke tests of the scaling, Dask and regime-persistence benchmark scripts: they import, answer --help,
and the scaling report computes medians and writes its plot (no fit is run here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", ["scaling.py", "dask_assets.py", "regime_persistence.py"])
def test_help(script):
    p = subprocess.run([sys.executable, "-P", str(REPO / "benchmarks" / script), "--help"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "usage:" in p.stdout


def test_report_medians_and_plot(tmp_path, capsys):
    sys.path.insert(0, str(REPO))
    from benchmarks import scaling

    def row(size, wall, rss, arrivals):
        return {"target": "calibrate", "size": size, "inference": "auto", "wall_s": wall, "cpu_s": wall * 1.5, "peak_rss_mb": rss,
                "load_before": [9.0, 9.0, 9.0], "load_after": [10.0, 10.0, 10.0], "arrivals": arrivals,
                "status": "registered", "models": {"hawkes": {"sampling_wall_s": wall / 2, "n_obs": arrivals,
                                                               "inference": "laplace", "psis_khat": 0.3}}}

    rows = [row("1h", 10.0, 500, 1000), row("1h", 30.0, 700, 1000), row("1h", 20.0, 600, 1000),
            row("6h", 50.0, 900, 6000)]
    plot = tmp_path / "scaling.png"
    scaling.report(rows, plot)
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("| 1h |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == "1,000" and cells[4] == "default" and cells[5] == "3" and cells[6] == "20.0"
    assert cells[7] == "30.0" and cells[9] == "600" and "hawkes:laplace (0.30)" in cells[10]
    assert cells[11] == "registered"
    assert plot.is_file() and plot.stat().st_size > 1000
    # another bar rule is its own point, not a repeat of the default's
    scaling.report(rows + [{**row("1h", 99.0, 100, 1000), "bars": "realized@30"}], None)
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("| 1h |")]
    assert [c.strip() for c in lines[1].strip("|").split("|")][4:7] == ["realized@30", "1", "99.0"]
    assert scaling.bar_args("realized@30") == ["--volatility-estimator", "realized", "--bar-seconds", "30"]
    with pytest.raises(SystemExit, match="--bars"):
        scaling.bar_args("realized")
