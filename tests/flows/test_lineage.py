"""Which calibration is live (issue 19, items 4 and 6) against the session's real
MLflow registry (sqlite): the deployed file names its registered version and run with
a valid checksum, ``mmcal status`` sets it beside the champion and challenger, deploy
signs when a key is configured and ``mmcal live`` then refuses a bundle edited and
re-checksummed, and two calibrations of other windows carry other model versions."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mm_runtime.bundle import PriorBundle, dump_bundle, load_bundle, with_checksum
from mm_runtime.signing import KEY_ENV, load_verified_bundle, sig_path

KEY = "lineage-test-key"


def test_status_prints_the_live_version_its_run_window_and_the_registry_aliases(calibrated, mixture, tmp_path):
    from flows.cli import app
    from models import tracking

    tracking.set_alias("SYN", "champion", 1)
    tracking.set_alias("SYN", "challenger", 2)
    target = tmp_path / "SYN.json"
    run = CliRunner()
    r = run.invoke(app, ["deploy", "--asset", "SYN", "--version", "2", "--target", str(target), "--json"])
    assert r.exit_code == 0, r.output
    live = load_bundle(target)  # the checksum of the stamped file is valid
    assert (live.mlflow.version, live.mlflow.run_id) == (2, mixture["run_id"])

    r = run.invoke(app, ["status", "--asset", "SYN", "--target", str(target), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)["assets"][0]
    lv = doc["live"]
    assert (lv["version"], lv["run_id"], lv["model_version"]) == (2, mixture["run_id"], live.model_version)
    assert lv["window_start"] == live.source.window_start.isoformat() and lv["signature"] == "none"
    assert lv["data_sha256"] == live.source.data_sha256 == calibrated["data"]["data_sha256"]
    assert doc["champion"]["version"] == 1 and doc["champion"]["run_id"] == calibrated["run_id"]
    assert doc["challenger"]["version"] == 2 and doc["challenger"]["run_id"] == mixture["run_id"]
    assert doc["live_is_champion"] is False
    r = run.invoke(app, ["status", "--asset", "SYN", "--target", str(target)])
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    assert "v2" in text and mixture["run_id"][:12] in text and "no" in text.split("live is champion")[-1]
    assert live.source.window_start.isoformat()[:10] in text

    tracking.set_alias("SYN", "champion", 2)   # promoted: the live file is now the champion
    doc = json.loads(run.invoke(app, ["status", "--asset", "SYN", "--target", str(target), "--json"]).stdout)
    assert doc["assets"][0]["live_is_champion"] is True
    tracking.set_alias("SYN", "champion", 1)

    r = run.invoke(app, ["status", "--target", str(target)])
    assert r.exit_code == 2 and "--target: give exactly one --asset" in r.stderr
    r = run.invoke(app, ["status", "--asset", "SYN", "--target", str(tmp_path / "none.json"), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["assets"][0]["live"]["status"] == "missing"


def test_deploy_signs_and_live_refuses_an_edited_rechecksummed_bundle(calibrated, mixture, tmp_path, monkeypatch):
    from flows.cli import app
    from flows.deploy import deploy, rollback

    target = tmp_path / "SYN.json"
    deploy(asset="SYN", version=1, target=str(target))       # no key: no signature (today's behaviour)
    assert not sig_path(target).exists()
    monkeypatch.setenv(KEY_ENV, KEY)
    again = deploy(asset="SYN", version=1, target=str(target))
    assert again["status"] == "unchanged" and again["signed"] and sig_path(target).exists()
    second = deploy(asset="SYN", version=2, target=str(target))
    assert second["status"] == "deployed" and second["signed"] is True
    assert load_verified_bundle(target, KEY.encode()).mlflow.version == 2
    assert KEY not in sig_path(target).read_text() and KEY not in target.with_name("SYN.deploy.log").read_text()
    back = rollback(asset="SYN", target=str(target))          # the restored bundle is signed too
    assert back["signed"] and load_verified_bundle(target, KEY.encode()).mlflow.version == 1

    # anyone who can write the live path: one value edited, the checksum recomputed
    doc = load_bundle(target).body()
    doc["params"]["hawkes_decay"]["mu"] += 0.3
    forged = with_checksum(PriorBundle.model_validate(doc))
    dump_bundle(forged, target)
    assert load_bundle(target).checksum == forged.checksum   # the checksum cannot tell
    r = CliRunner().invoke(app, ["live", "--asset", "SYN", "--priors", str(target), "--feed", "hyperliquid",
                                 "--no-low-latency"])
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "signature" in lines[0] and str(target) in lines[0], r.stderr
    assert KEY not in r.output
    # status says so too
    r = CliRunner().invoke(app, ["status", "--asset", "SYN", "--target", str(target), "--json"])
    assert json.loads(r.stdout)["assets"][0]["live"]["signature"].startswith("refused: ")
    monkeypatch.delenv(KEY_ENV)


@pytest.mark.heavy
def test_calibrations_of_other_windows_carry_other_model_versions(calibrated, calibrate):
    """The reproduction of issue 19's "five calibrations, one model_version": the same
    data, models and code on another window now carry another version. Heavy: four new
    fits (7 min on the shared 2-core machine at load 20; the hash itself is tested
    without sampling in tests/models/test_export.py)."""
    other = calibrate(window="0:0.6", register_version=False, plots=False)
    a = load_bundle(calibrated["bundle_path"])
    b = load_bundle(other["bundle_path"])
    assert a.source.window_end != b.source.window_end
    assert a.model_version != b.model_version
    assert a.diagnostics["models"]["kappa"]["model_version"] == b.diagnostics["models"]["kappa"]["model_version"]


def test_status_lists_live_bundles_not_their_neighbours(tmp_path):
    from flows.deploy import live_assets

    for name in ("SYN.json", "SYN.previous.json", "SYN.state.json", "SYN.journal.jsonl", "SYN.json.sig",
                 "BTC.json", "BTC.deploy.log"):
        (tmp_path / name).write_text("{}")
    assert live_assets(tmp_path) == ["BTC", "SYN"]
    assert live_assets(tmp_path / "none") == []
