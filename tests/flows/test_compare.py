"""The compare flow (flows/compare.py): champion vs challenger on held-out data later
than both fits, the comparison table in MLflow, and the champion alias moved only
by the promotion rule. Registry: version 1 (alpha threshold) and version 2 (alpha
mixture) of the session (tests/flows/conftest.py), so this also compares the two
alpha variants, as the compare flow is meant to."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

NAME = "mm-priors-SYN"


def _aliases(champion: int | None, challenger: int):
    from models import tracking

    c = tracking.client()
    try:
        c.delete_registered_model_alias(NAME, "champion")
    except Exception:  # noqa: BLE001 - not set
        pass
    if champion is not None:
        tracking.set_alias("SYN", "champion", champion)
    tracking.set_alias("SYN", "challenger", challenger)


def _artifacts(client, run_id, path=""):
    out = []
    for f in client.list_artifacts(run_id, path):
        out += _artifacts(client, run_id, f.path) if f.is_dir else [f.path]
    return out


def test_compare_scores_both_on_later_data_and_keeps_the_champion(calibrated, mixture):
    from flows.compare import compare
    from models import tracking

    _aliases(champion=1, challenger=2)
    doc = compare(asset="SYN", z=1e9)   # an impossible bar: the champion stays whatever the scores
    assert doc["challenger"]["version"] == 2 and doc["champion"]["version"] == 1
    rows = {r["model"]: r for r in doc["rows"]}
    assert set(rows) == {"regime", "alpha", "kappa", "hawkes", "fills", "total"}
    for m in ("regime", "alpha", "kappa", "hawkes", "fills"):
        r = rows[m]
        assert r["paired"] and r["n"] > 0 and r["challenger_elpd"] is not None and r["champion_elpd"] is not None
    # only alpha differs between the two versions: the other models share their fits
    for m in ("regime", "kappa", "hawkes", "fills"):
        assert rows[m]["elpd_diff"] == pytest.approx(0.0, abs=1e-9)
    assert rows["alpha"]["unit"].startswith("passive fills")
    # held-out data starts where the fits' window ends (0.7 of the data)
    fit_end = int(tracking.run_params(calibrated["run_id"])["window_end_ns"])
    assert doc["heldout"]["start_ns"] >= fit_end and doc["heldout"]["rows"]["trades"] > 0
    assert not doc["promoted"] and tracking.alias_version("SYN", "champion") == 1
    c = MlflowClient()
    run = c.get_run(doc["run_id"])
    assert run.data.tags["kind"] == "compare" and run.data.tags["decision"] == "keep"
    assert {"tables/comparison.csv", "tables/comparison.md", "comparison.json"} <= set(_artifacts(c, doc["run_id"]))
    assert "alpha.elpd_diff" in run.data.metrics and run.data.metrics["promoted"] == 0.0
    # the paper-trading replay of both versions on the same held-out window
    paper = doc["paper"]
    assert [r["config"] for r in paper["table"]] == ["champion", "challenger"]
    assert paper["paired"]["challenger"]["blocks"] >= 5 and paper["verdict"].startswith(("replay", "challenger"))
    assert all(r["fills"] > 0 for r in paper["table"])
    arts = set(_artifacts(c, doc["run_id"]))
    assert {"paper/index.html", "paper/equity.png", "paper/ab.json", "tables/paper_trading.csv"} <= arts
    assert "paper.challenger.pnl" in run.data.metrics


def test_compare_promotes_when_there_is_no_champion(calibrated, mixture):
    from flows.compare import compare
    from models import tracking

    _aliases(champion=None, challenger=2)
    doc = compare(asset="SYN")
    assert doc["promoted"] and doc["reason"] == "no champion yet"
    assert tracking.alias_version("SYN", "champion") == 2 and doc["champion_after"] == 2
    # with --no-promote the alias stays where it is
    _aliases(champion=None, challenger=1)
    doc = compare(asset="SYN", promote=False)
    assert not doc["promoted"] and tracking.alias_version("SYN", "champion") is None
    _aliases(champion=1, challenger=2)


def test_challenger_equal_to_champion_is_nothing_to_compare(calibrated):
    from flows.compare import compare

    _aliases(champion=1, challenger=1)
    doc = compare(asset="SYN")
    assert doc["rows"] == [] and not doc["promoted"] and "is the champion" in doc["reason"]
    _aliases(champion=1, challenger=2)


def test_heldout_window_overlapping_a_fit_is_refused(calibrated, mixture):
    from flows.compare import compare

    _aliases(champion=1, challenger=2)
    with pytest.raises(ValueError, match="before the end of a fit window"):
        compare(asset="SYN", window="0.5:1")


def test_compare_cli(calibrated, mixture):
    from typer.testing import CliRunner

    from flows.cli import app

    _aliases(champion=1, challenger=2)
    r = CliRunner().invoke(app, ["compare", "--asset", "SYN", "--no-promote", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["rows"][-1]["model"] == "total" and not doc["promoted"]
    r = CliRunner().invoke(app, ["compare", "--asset", "NOPE"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.output.strip().splitlines()[-1].startswith("mmcal: error: mm-priors-NOPE: no challenger")
    r = CliRunner().invoke(app, ["compare", "--asset", "SYN", "--window", "x:y"])
    assert r.exit_code == 2 and "--window" in r.output
