"""The calibrate flow (flows/calibrate.py) against a temporary MLflow store and
Prefect's ephemeral API: what one calibration leaves in MLflow and the registry,
that an unchanged re-run samples nothing, and that a failed gate is logged, not
registered and reported. Fixtures: tests/flows/conftest.py."""

from __future__ import annotations

import os

import mlflow
import pytest
from mlflow import MlflowClient

MODELS = ("regime", "alpha", "kappa", "hawkes", "fills")
STRICT_GATE: dict = {}  # the default gate: the tiny fits fail it


def _client():
    from models import tracking

    tracking.configure()
    return MlflowClient()


def _children(client, run_id):
    run = client.get_run(run_id)
    return client.search_runs([run.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'")


def _artifacts(client, run_id, path=""):
    out = []
    for f in client.list_artifacts(run_id, path):
        out += _artifacts(client, run_id, f.path) if f.is_dir else [f.path]
    return out


def test_first_calibration_is_tracked_and_registered_as_champion(calibrated):
    from mm_runtime.bundle import load_bundle

    from models import tracking

    res = calibrated
    assert res["version"] == 1 and set(res["aliases"]) == {"challenger", "champion"}
    assert all(not m["cache_hit"] for m in res["models"].values())
    assert res["data"]["window"] == "0:0.7"
    c = _client()
    run = c.get_run(res["run_id"])
    p, m = run.data.params, run.data.metrics
    assert p["window"] == "0:0.7" and int(p["rows_trades"]) == res["data"]["rows"]["trades"]
    assert p["data_sha256"] == res["data"]["data_sha256"] and p["model_version"].startswith("bundle-")
    assert '"sampler": "numpyro"' in p["sampler"] and '"nutpie"' in p["sampler"]  # per-model configs
    for k in ("max_r_hat", "min_ess_bulk", "min_ess_tail", "divergences", "min_bfmi", "max_pareto_k",
              "export_fidelity_max_err_sd", "alpha.loo_elpd", "alpha.loo_se", "hawkes.r_hat_max"):
        assert k in m, k
    kids = _children(c, res["run_id"])
    assert sorted(k.data.tags["model"] for k in kids) == sorted(MODELS)
    for k in kids:
        model = k.data.tags["model"]
        files = _artifacts(c, k.info.run_id)
        assert f"inference_data/{model}.nc" in files and f"summary/{model}_az_summary.csv" in files
        assert f"plots/{model}_trace.png" in files and f"plots/{model}_posterior.png" in files
        if model != "hawkes":
            assert f"plots/{model}_ppc.png" in files
        assert {"r_hat_max", "ess_bulk_min", "gate_passed"} <= set(k.data.metrics)
        assert k.data.params["cache_hit"] == "False"
    assert "bundle/bundle.json" in _artifacts(c, res["run_id"])
    # the registry: models:/mm-priors-SYN@champion gives back the bundle, with its MLflow run
    b, v = tracking.load_registered_bundle("SYN", alias="champion")
    assert v == 1 and b.mlflow.run_id == res["run_id"] and b.mlflow.registered_model == "mm-priors-SYN"
    exported = load_bundle(res["bundle_path"])
    assert b.params == exported.params and b.model_version == exported.model_version
    wrapped = mlflow.pyfunc.load_model("models:/mm-priors-SYN@champion").unwrap_python_model()
    assert wrapped.bundle.checksum == b.checksum


def test_unchanged_rerun_samples_nothing(calibrated, calibrate, lab):
    """Timing-free evidence: every fit reports a cache hit (Prefect task state Cached),
    the posterior files are untouched, and no MLflow run or version is added."""
    c = _client()
    exp = c.get_experiment_by_name("mm-calibration")
    n_runs = len(c.search_runs([exp.experiment_id]))
    stamps = {m: os.stat(r["idata_path"]).st_mtime_ns for m, r in calibrated["models"].items()}
    again = calibrate()
    assert again["status"] == "already_registered" and again["version"] == calibrated["version"]
    assert {m: r["cache_hit"] for m, r in again["models"].items()} == {m: True for m in MODELS}
    assert {m: r["cache_key"] for m, r in again["models"].items()} == \
           {m: r["cache_key"] for m, r in calibrated["models"].items()}
    assert {m: os.stat(r["idata_path"]).st_mtime_ns for m, r in again["models"].items()} == stamps
    assert len(c.search_runs([exp.experiment_id])) == n_runs
    assert len(c.search_model_versions("name='mm-priors-SYN'")) >= 1


def test_cache_key_is_data_sampler_and_model_config():
    from flows.tasks import fit_key

    base = dict(asset="SYN", data_sha256="a" * 64, observation={"bar_seconds": 10.0}, regime_path_sha=None,
                sampler={"sampler": "pymc", "draws": 10})
    k = fit_key("regime", **base)
    assert k == fit_key("regime", **base)
    assert fit_key("regime", **{**base, "data_sha256": "b" * 64}) != k
    assert fit_key("regime", **{**base, "asset": "SYN2"}) != k   # same tables, another name
    assert fit_key("regime", **{**base, "sampler": {"sampler": "pymc", "draws": 11}}) != k
    assert fit_key("alpha", **base) != fit_key("alpha", **{**base, "variant": "mixture"})
    # the observation rules are part of every fit's key
    for m in ("regime", "alpha", "kappa"):
        assert fit_key(m, **{**base, "observation": {"bar_seconds": 10.0, "markout_horizon_s": 5.0}}) != \
            fit_key(m, **base)


def test_failed_gate_is_logged_failed_and_not_registered(calibrated, calibrate, lab):
    """The same (cached) fits against the default gate: the MLflow run is kept and
    marked FAILED with the reasons, no version is registered, the Prefect flow run
    ends Failed, and the result says why."""
    from flows.calibrate import result_of

    c = _client()
    n_versions = len(c.search_model_versions("name='mm-priors-SYN'"))
    state = calibrate(state=True, gate=STRICT_GATE)
    assert state.is_failed() and "gate failed" in state.message
    res = result_of(state)
    assert res["status"] == "gate_failed" and res["version"] is None and res["bundle_path"] is None
    assert all(r["cache_hit"] for r in res["models"].values())        # the same fits, not sampled again
    assert res["failures"] and any(f.startswith("regime: ") for f in res["failures"])
    run = c.get_run(res["run_id"])
    assert run.info.status == "FAILED" and run.data.tags["gate"] == "failed"
    assert "gate failed" in run.data.tags["failure"] and "ess_bulk" in run.data.tags["failure"]
    assert "bundle/bundle.json" not in _artifacts(c, res["run_id"])
    assert len(c.search_model_versions("name='mm-priors-SYN'")) == n_versions
    # the per-model gate verdicts are in the run too
    assert "gate.json" in _artifacts(c, res["run_id"])


def test_calibrate_cli_reports_a_failed_gate_with_exit_1(calibrated, lab):
    import json

    from typer.testing import CliRunner

    from flows.cli import app

    # the session's fits (cached: nothing is sampled) against the default gate
    args = ["calibrate", str(lab["market"]), "--source", "synthetic", "--window", "0:0.7", "--sampler", "numpyro",
            "--draws", "150", "--tune", "150", "--chains", "2", "--seed", "3", "--model-sampler", "regime=nutpie",
            "--model-sampler", "hawkes=nutpie", "--model-sampler", "fills=nutpie", "--json", "--no-plots"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["status"] == "gate_failed" and doc["version"] is None
    assert all(m["cache_hit"] for m in doc["models"].values())
    assert doc["run_id"] and doc["mlflow_ui"].split()[1:] == ["mlflow", "ui", "--backend-store-uri",
                                                              f"sqlite:///{lab['artifacts'] / 'mlflow.db'}"]


@pytest.mark.parametrize("args, msg", [
    (["--window", "0:2"], "--window"),
    (["--window", "0.9:0.1"], "--window"),
    (["--sampler", "stan"], "--sampler"),
    (["--model-sampler", "regime"], "--model-sampler"),
    (["--model-sampler", "beta=pymc"], "--model-sampler"),
    (["--alpha-variant", "both"], "--alpha-variant"),
    (["--task-runner", "ray"], "--task-runner"),
    (["--parallel-fits", "0"], "--parallel-fits"),
])
def test_calibrate_cli_bad_options_are_one_line_exit_2(lab, args, msg):
    from typer.testing import CliRunner

    from flows.cli import app

    r = CliRunner().invoke(app, ["calibrate", str(lab["market"]), "--source", "synthetic", *args])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmcal: error: ") and msg in lines[0]


def test_calibrate_cli_missing_data_is_exit_2(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    r = CliRunner().invoke(app, ["calibrate", str(tmp_path / "nope"), "--source", "synthetic"])
    assert r.exit_code == 2 and "no such file" in r.output


def test_calibrate_mapped_over_assets(calibrated, lab, fit_settings):
    """The many-asset flow: one subflow per asset through the task runner, results in
    order (the session's market holds one asset, so it is mapped twice: both cached)."""
    from flows.calibrate import run_many
    from models import tracking

    args = dict(fit_settings)
    tracking.set_alias("SYN", "challenger", 1)
    docs = run_many("synthetic", str(lab["market"]), ["SYN", "SYN"], parallel_assets=2, **args)
    assert [d["asset"] for d in docs] == ["SYN", "SYN"]
    assert all(d["status"] == "already_registered" and d["version"] == 1 for d in docs)
    assert all(m["cache_hit"] for d in docs for m in d["models"].values())


def test_a_cache_record_without_its_posterior_is_refitted(calibrated, calibrate):
    """The Prefect cache record survives but the netCDF was deleted: that fit is
    sampled again (same seed, same draws), the others stay cached."""
    import arviz as az

    nc = calibrated["models"]["kappa"]["idata_path"]
    before = az.from_netcdf(nc).posterior["kappa"].values.copy()
    os.unlink(nc)
    again = calibrate()
    assert again["status"] == "already_registered"
    hits = {m: r["cache_hit"] for m, r in again["models"].items()}
    assert hits == {"regime": True, "alpha": True, "kappa": False, "hawkes": True, "fills": True}
    assert os.path.exists(nc)
    assert (az.from_netcdf(nc).posterior["kappa"].values == before).all()
