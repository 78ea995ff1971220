"""`mmcal params show`: the learned-parameter registry on the command line (issue #7
item 6): every parameter with tier, family, prior, estimate, 95% interval, data
weight and calibration; --json prints one document; bad input is one clear line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import mm_runtime as mr
from flows.cli import app
from mm_runtime.params import DEFAULT_SPECS, Evidence, Registry

runner = CliRunner()
NAMES = [s.name for s in DEFAULT_SPECS]


def _run(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _state(tmp_path):
    r = Registry(asset="BTC")
    r.update(Evidence.bernoulli("alpha_touch", 40, 200, source="fills"))
    r.update(Evidence.exponential("kappa", 80, 390.0))
    return r, r.save(tmp_path / "state.json")


def test_show_defaults_json():
    r = _run("params", "show", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [p["name"] for p in doc["params"]] == NAMES
    assert doc["tier1_ready"] is False and doc["schema_version"] == 1 and doc["state"] is None
    p = {x["name"]: x for x in doc["params"]}
    a = p["alpha_touch"]
    assert (a["tier"], a["family"], a["prior_mean"], a["prior_strength"]) == (1, "beta", 0.25, 8.0)
    assert a["interval"][0] < 0.25 < a["interval"][1]
    assert a["data_weight"] == 0 and a["calibrated"] is False and a["in_use"] == "prior" and a["min_n"] == 170
    assert p["kappa"]["unit"] == "1/bps" and p["kalman_q"]["family"] == "inverse_gamma"


def test_show_table():
    r = _run("params", "show")
    assert r.exit_code == 0, r.stderr
    for s in NAMES + ["95% lo", "data weight", "calibrated", "tier 1 (P&L critical): not ready", "priors: default"]:
        assert s in r.stdout, s


def test_show_state_file(tmp_path):
    reg, path = _state(tmp_path)
    r = _run("params", "show", "--state", str(path), "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["asset"] == "BTC" and doc["state"] == str(path)
    a = next(p for p in doc["params"] if p["name"] == "alpha_touch")
    assert a["n"] == 200 and a["calibrated"] is True and a["sources"] == ["fills"]
    assert a["estimate"] == reg.estimate("alpha_touch")
    assert a["interval"] == list(reg.interval("alpha_touch"))
    assert a["data_weight"] == reg.data_weight("alpha_touch")


def test_show_with_bundle_priors(tmp_path):
    bundle = mr.dump_bundle(mr.example_bundle("BTC"), tmp_path / "b.json")
    _, path = _state(tmp_path)
    r = _run("params", "show", "--priors", str(bundle), "--state", str(path), "--json")
    assert r.exit_code == 0, r.stderr
    p = {x["name"]: x for x in json.loads(r.stdout)["params"]}
    assert p["kappa"]["prior_source"].startswith("bundle BTC example-v1")
    assert p["kappa"]["n"] == 80  # the state's evidence, re-based onto the bundle's prior
    assert p["gamma_base"]["prior_source"].startswith("default")


def test_truncated_state_is_one_clear_line(tmp_path):
    _, path = _state(tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    r = _run("params", "show", "--state", str(path))
    assert r.exit_code == 2
    assert r.stderr.startswith(f"mmcal: error: {path}: invalid JSON") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""


def test_missing_files_are_one_clear_line(tmp_path):
    r = _run("params", "show", "--state", str(tmp_path / "nope.json"))
    assert r.exit_code == 2 and "nope.json: cannot read" in r.stderr
    r = _run("params", "show", "--priors", str(tmp_path / "nob.json"))
    assert r.exit_code == 2 and "nob.json" in r.stderr and "Traceback" not in r.stderr


def test_calibrate_feeds_the_historical_estimates_and_saves_the_state(tmp_path):
    """`mmcal params calibrate`: the historical calibrator on a synthetic market with open
    interest, its evidence applied to the registry, the state saved; a second run on the
    same data adds the same evidence again (the state accumulates)."""
    market = tmp_path / "m"
    r = _run("simulate", "--out", str(market), "--seed", "4", "--duration", "1800", "--open-interest")
    assert r.exit_code == 0, r.stderr
    truth = json.loads((market / "truth.json").read_text())
    state = tmp_path / "reg.json"
    r = _run("params", "calibrate", str(market), "--source", "synthetic", "--state", str(state), "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    moved = {m["name"]: m for m in doc["moved"]}
    # Hawkes evidence is sized by the method of moments' standard errors: on half an hour
    # (~400 events) it is nearly unidentified and adds (almost) nothing, by design
    assert {"alpha_touch", "kappa", "spread_floor_bps"} <= set(moved)
    assert all(m["data_weight_after"] >= m["data_weight_before"] == 0.0 for m in moved.values())
    assert moved["alpha_touch"]["data_weight_after"] > 0.5
    assert moved["kappa"]["before"] == 0.2 and moved["kappa"]["after"] != 0.2
    assert "cascade_oi_threshold" in moved  # the market has open interest
    assert abs(doc["estimates"]["cascade"]["threshold"]["value"] - truth["params"]["cascade_oi_threshold"]) < 0.01
    assert doc["state"] == str(state) and Registry().load(state) is None
    w1 = moved["kappa"]["data_weight_after"]
    r = _run("params", "calibrate", str(market), "--source", "synthetic", "--state", str(state), "--json")
    again = {m["name"]: m for m in json.loads(r.stdout)["moved"]}
    assert again["kappa"]["data_weight_before"] == w1 and again["kappa"]["data_weight_after"] > w1


def test_calibrate_bad_input_is_one_line(tmp_path):
    r = _run("params", "calibrate", str(tmp_path / "nope"), "--source", "synthetic")
    assert r.exit_code == 2 and "no such file" in r.stderr
    r = _run("params", "calibrate", str(tmp_path), "--source", "nasdaq")
    assert r.exit_code == 2 and "--source" in r.stderr
