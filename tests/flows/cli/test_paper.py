"""`mmcal paper`: the replay A/B with its report, the Avellaneda-Stoikov mode, and
clear errors (DESIGN.md section 8)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app
from mm_runtime import dump_bundle, example_bundle

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper") / "m"
    r = _run("simulate", "--out", str(out), "--seed", "5", "--duration", "900")
    assert r.exit_code == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def priors(tmp_path_factory):
    return dump_bundle(example_bundle("SYN"), tmp_path_factory.mktemp("b") / "SYN.json")


def test_replay_ab_writes_a_report_and_one_json_document(market, priors, tmp_path):
    rep = tmp_path / "report"
    r = _run("paper", str(market), "--source", "synthetic", "--priors", str(priors), "--configs", "static,learned",
             "--window", "0.4:1", "--block-s", "60", "--fee-bps", "0.5", "--out", str(rep), "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [row["config"] for row in doc["table"]] == ["static", "learned"]
    assert doc["window"] == "0.4:1" and doc["paired"]["learned"]["blocks"] >= 8
    assert all(doc["summaries"][c]["fills"] > 0 for c in ("static", "learned"))
    assert doc["summaries"]["static"]["fees"] > 0
    names = {p.name for p in rep.iterdir()}
    assert {"index.html", "equity.png", "inventory.png", "markouts.png", "ladder.png", "blocks.png", "ab.json"} <= names
    page = (rep / "index.html").read_text()
    assert "Paired comparison against static" in page and "<img" in page
    assert json.loads((rep / "ab.json").read_text())["table"] == doc["table"]


def test_avellaneda_stoikov_mode_prints_the_papers_rows():
    r = _run("paper", "--market", "avellaneda-stoikov", "--gamma", "0.1", "--strategy", "inventory",
             "--paths", "500", "--seed", "2", "--json")
    assert r.exit_code == 0, r.stderr
    rows = json.loads(r.stdout)["rows"]
    assert len(rows) == 1 and rows[0]["n_paths"] == 500
    assert rows[0]["paper"]["profit_mean"] == 62.94 and abs(rows[0]["z"]["profit_mean"]) < 4
    r = _run("paper", "--market", "avellaneda-stoikov", "--gamma", "0.5", "--paths", "100")
    assert r.exit_code == 0 and "inventory" in r.stdout and "symmetric" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [(["--market", "avellaneda-stoikov", "--strategy", "greedy"], "--strategy"),
     (["--market", "avellaneda-stoikov", "--gamma", "-1"], "gamma"),
     (["--market", "nasdaq"], "--market"),
     ([], "give PATH and --source"),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--configs", "static,foo"], "--configs"),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--window", "0.9:0.1"], "--window"),
     (["{market}", "--source", "synthetic", "--priors", "{market}/truth.json"], "truth.json"),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--queue-factor", "2"], "--queue-factor: "),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--queue-model", "none", "--queue-factor",
       "0.5"], "--queue-factor: "),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--latency-s", "-1"], "--latency-s: "),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--refresh-s", "0"], "--refresh-s: "),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--block-s", "0"], "--block-s: "),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--tick-size", "-1"], "--tick-size: "),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--fee-bps", "nan"], "--fee-bps: "),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--max-position-notional", "inf"],
      "--max-position-notional: ")],
)
def test_bad_input_is_one_clear_line_and_exit_2(market, priors, args, message, tmp_path):
    """One line naming the flag (no dump of the replay config's validation errors), exit
    2, no report written (a NaN fee used to run a replay in which nothing quotes)."""
    args = [a.format(market=market, priors=priors) for a in args]
    r = _run("paper", *args, "--out", str(tmp_path / "report"))
    assert r.exit_code == 2, r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("mmcal: ")]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr and "Config" not in r.stderr and "validation error" not in r.stderr
    assert not (tmp_path / "report").exists()


def test_bundle_for_another_asset_is_refused(market, tmp_path):
    other = dump_bundle(example_bundle("ETH"), tmp_path / "ETH.json")
    r = _run("paper", str(market), "--source", "synthetic", "--priors", str(other))
    assert r.exit_code == 2 and "ETH" in r.stderr
