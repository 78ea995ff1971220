"""`mmcal live` on a replay feed, then `mmcal paper --reconcile STATE` on the same data
(issue 19 item 5): the state names the session journal, the reconciliation's checks
are identical, every difference has a reason, and bad input is one line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from flows.cli import app
from mm_runtime import dump_bundle, example_bundle

runner = CliRunner()


def test_live_session_reconciled_against_the_replay_of_its_window(tmp_path):
    market = tmp_path / "m"
    r = runner.invoke(app, ["simulate", "--out", str(market), "--seed", "7", "--duration", "180"])
    assert r.exit_code == 0, r.stderr
    priors = dump_bundle(example_bundle("SYN"), tmp_path / "SYN.json")
    state = tmp_path / "SYN.state.json"
    r = runner.invoke(app, ["live", "--asset", "SYN", "--priors", str(priors), "--feed", "replay", "--source",
                            "synthetic", "--data", str(market), "--speed", "0", "--state", str(state),
                            "--no-low-latency", "--fee-bps", "1", "--json"])
    assert r.exit_code == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    journal = tmp_path / "SYN.journal.jsonl"
    assert summary["journal"] == str(journal) and json.loads(state.read_text())["journal"] == str(journal)

    r = runner.invoke(app, ["paper", str(market), "--source", "synthetic", "--reconcile", str(state),
                            "--latency-s", "0.2", "--queue-model", "none", "--json"])
    assert r.exit_code == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    assert all(c["identical"] for c in doc["checks"].values()), doc["checks"]
    table = {row["what"]: row for row in doc["table"]}
    assert table["fills"]["live"] == summary["fills"] and table["position"]["live"] == summary["position"]
    assert doc["trades_different"] == sum(v["trades"] for v in doc["by_reason"].values())
    assert "unexplained" not in doc["by_reason"] and doc["replay_config"]["latency_s"] == 0.2
    # the table form
    r = runner.invoke(app, ["paper", str(market), "--source", "synthetic", "--reconcile", str(journal)])
    assert r.exit_code == 0 and "live vs replay" in r.stdout and "identical" in r.stdout, r.stderr[-2000:]

    # bad input: one line naming the flag
    for args, msg in ((["--reconcile", str(tmp_path / "none.json")], "--reconcile: "),
                      (["--reconcile", str(priors)], "not a live state file"),
                      (["--reconcile", str(state), "--session", "5"], "--session: ")):
        r = runner.invoke(app, ["paper", str(market), "--source", "synthetic", *args])
        assert r.exit_code == 2 and msg in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
