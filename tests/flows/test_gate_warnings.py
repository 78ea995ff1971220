"""The gates' warnings where the user looks: the ``mmcal calibrate`` table and the
MLflow runs (the calibration's and each model's), not only gate.json. Fixtures:
tests/flows/conftest.py."""

from __future__ import annotations


def test_gate_warnings_are_printed_and_tagged_in_mlflow(calibrated, calibrate, fit_settings, capsys):
    """A gate warning (Pareto k above the gate's max_pareto_k: 0 here, so every model
    with LOO has one; a warning, not a failure) is printed by the calibrate table,
    tagged on the calibration's MLflow run and set as param and tag of each model's
    nested run, not only written to gate.json. The session's fits (``calibrated``):
    nothing is sampled, nothing registered."""
    from mlflow import MlflowClient

    from flows.cli.render import render_calibration
    from models import tracking

    res = calibrate(gate={**fit_settings["gate"], "max_pareto_k": 0.0}, register_version=False, plots=False)
    assert res["status"] == "logged" and all(r["cache_hit"] for r in res["models"].values()), res
    warned = {m: r["gate"]["warnings"] for m, r in res["models"].items() if r["gate"]["warnings"]}
    # the loose-gate fits warn of PSIS-LOO's Pareto k (the fills model may warn of other checks too,
    # the regime model of a state that does not persist on this short market)
    assert warned and all("Pareto k" in w or (m == "regime" and w.startswith("regime state"))
                          for m, ws in warned.items() if m != "fills" for w in ws)
    capsys.readouterr()
    render_calibration(res)
    printed = capsys.readouterr().out
    for m, ws in warned.items():
        assert f"warning: {m}: {ws[0]}" in printed
    tracking.configure()
    c = MlflowClient()
    run = c.get_run(res["run_id"])
    assert all(f"{m}: {ws[0]}" in run.data.tags["gate_warnings"] for m, ws in warned.items())
    kids = c.search_runs([run.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{res['run_id']}'")
    assert kids
    for k in kids:
        m = k.data.tags["model"]
        expect = "; ".join(warned.get(m, [])) or "none"
        assert k.data.tags["gate_warnings"] == expect and k.data.params["gate_warnings"] == expect
