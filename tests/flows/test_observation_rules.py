"""The observation contract travels (DESIGN.md section 3): a calibration with a 5 s
markout horizon and a 2 bp informed threshold fits alpha on those rules, logs them,
writes them into the bundle, and a quoter on that bundle resolves markouts at 5 s."""

from __future__ import annotations

import json

import numpy as np
import pytest

RULES = {"markout_horizon_s": 5.0, "informed_threshold_bps": 2.0}


@pytest.fixture(scope="module")
def five_second(calibrate):
    """The session's market calibrated under the 5 s / 2 bp rules (not registered:
    the session's aliases stay as the other flow tests expect them)."""
    from flows.cli.options import observation_settings

    settings = observation_settings(markout_horizon=5, informed_threshold=2)
    assert settings == RULES
    res = calibrate(observation=settings, register_version=False, plots=False)
    assert res["status"] == "logged", res
    return res


def test_the_rules_reach_every_fit_the_run_and_the_bundle(five_second, calibrated):
    import arviz as az
    from mlflow import MlflowClient

    from mm_runtime.bundle import load_bundle

    obs = five_second["data"]["observation"]
    assert {k: obs[k] for k in RULES} == RULES
    # every fit was sampled again: the rules are part of every cache key
    assert all(not m["cache_hit"] for m in five_second["models"].values())
    assert all(five_second["models"][m]["cache_key"] != calibrated["models"][m]["cache_key"]
               for m in five_second["models"])
    for m, r in five_second["models"].items():
        attrs = az.from_netcdf(r["idata_path"]).attrs
        assert json.loads(attrs["observation_config"])["markout_horizon_s"] == 5.0, m
    alpha = az.from_netcdf(five_second["models"]["alpha"]["idata_path"]).attrs
    assert (alpha["markout_horizon_s"], alpha["informed_threshold_bps"]) == (5.0, 2.0)
    params = MlflowClient().get_run(five_second["run_id"]).data.params
    assert float(params["observation.markout_horizon_s"]) == 5.0
    assert float(params["observation.informed_threshold_bps"]) == 2.0
    bundle = load_bundle(five_second["bundle_path"])
    assert bundle.schema_version == 3
    assert (bundle.observation.markout_horizon_s, bundle.observation.informed_threshold_bps) == (5.0, 2.0)
    assert bundle.observation.bar_seconds == bundle.units.volatility_bar_s == obs["bar_seconds"]


def test_a_quoter_on_that_bundle_resolves_markouts_at_5s(five_second):
    from mm_runtime.bundle import load_bundle
    from mm_runtime.estimators import Columns
    from mm_runtime.quoter import Quoter

    bundle = load_bundle(five_second["bundle_path"])
    mid = 100.0
    price, later = mid * (1 - 3e-4), mid * (1 - 3e-4) * (1 - 4e-4)   # a bid 3 bp deep, then 4 bp adverse

    def alpha_evidence(wait_s: float) -> float:
        q = Quoter(bundle, replay=True, metrics=False)
        assert q.effective_config.markout_horizon_s == 5.0 and q.effective_config.informed_threshold_bps == 2.0
        q.on_event(10.0, mid, margin_available=1e4)
        q.on_event(10.0, mid, margin_available=1e4, fill=(price, 1.0))
        q.on_event(10.0 + wait_s, later, margin_available=1e4)
        ev = np.asarray(q.state.est.evidence)
        cols = Columns(len(bundle.bucket_keys))
        return float(ev[:, cols.alpha_a].sum() + ev[:, cols.alpha_b].sum())

    assert alpha_evidence(1.0) == 0.0          # still pending at the old 1 s horizon
    assert alpha_evidence(5.0) == pytest.approx(1.0)


def test_the_cli_flags_give_the_same_rules(five_second, lab):
    """``mmcal calibrate --markout-horizon 5 --informed-threshold 2`` resolves the same
    rules: every fit is found in the cache of the flow run above (an impossible gate
    keeps it from registering anything)."""
    from typer.testing import CliRunner

    from flows.cli import app

    args = ["calibrate", str(lab["market"]), "--source", "synthetic", "--window", "0:0.7", "--sampler", "numpyro",
            "--draws", "150", "--tune", "150", "--chains", "2", "--seed", "3", "--model-sampler", "regime=nutpie",
            "--model-sampler", "hawkes=nutpie", "--model-sampler", "fills=nutpie", "--markout-horizon", "5",
            "--informed-threshold", "2",
            "--max-r-hat", "1.0", "--min-ess", "1e9", "--json", "--no-plots"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["status"] == "gate_failed"
    assert {k: doc["data"]["observation"][k] for k in RULES} == RULES
    assert {m: v["cache_key"] for m, v in doc["models"].items()} == \
           {m: v["cache_key"] for m, v in five_second["models"].items()}
