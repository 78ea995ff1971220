"""``mmcal params show`` and ``mmcal params calibrate``: the learned-parameter registry
(mm_runtime.params) and the historical calibrator that feeds it (models.historical)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from flows.cli.app import SOURCES, emit_json, guarded, jsonable, params_app, stage
from flows.cli.options import check_window
from flows.cli.render import render_moved, render_params
from flows.fitting import read_market


@params_app.command("show")
def params_show(
    state: Optional[Path] = typer.Option(None, "--state", help="Registry state file (JSON) to show."),
    priors: Optional[Path] = typer.Option(
        None, "--priors", help="Prior bundle whose priors replace the defaults (with --state: the state's "
                               "evidence re-based onto them)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Every learned parameter: tier, family, prior, estimate, 95% interval, data weight, calibrated."""

    def body():
        from mm_runtime import load_bundle
        from mm_runtime.params import STATE_SCHEMA_VERSION, TIER_NAMES, Registry

        reg = Registry.from_bundle(load_bundle(priors)) if priors is not None else Registry()
        if state is not None:
            reg.load(state, keep_priors=priors is not None)
        st = reg.calibration_status()
        doc = {"asset": reg.asset, "state": state, "priors": priors, "schema_version": STATE_SCHEMA_VERSION,
               **st.tiers(), "tier_names": {str(t): n for t, n in TIER_NAMES.items()},
               "params": [reg.summary(n, st).to_dict() for n in reg.names]}
        if as_json:
            emit_json(doc)
        else:
            render_params(jsonable(doc))

    guarded(body)


@params_app.command("calibrate")
def params_calibrate(
    path: Path = typer.Argument(..., metavar="PATH", help="Market data (file or folder)."),
    source: str = typer.Option(..., "--source", help=f"{' | '.join(SOURCES)}"),
    asset: Optional[str] = typer.Option(None, "--asset", help="Asset, where the path holds several."),
    window: Optional[str] = typer.Option(None, "--window", help="Data window START:END (fractions or seconds)."),
    state: Optional[Path] = typer.Option(None, "--state", help="Registry state: loaded if it exists, and the "
                                         "updated state saved there (atomically)."),
    priors: Optional[Path] = typer.Option(None, "--priors", help="Prior bundle whose priors replace the defaults."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Run the historical calibrator (method of moments, models.historical) on market data and feed its
    estimates to the registry's conjugate updates; prints what moved."""

    def body():
        from mm_runtime import load_bundle
        from mm_runtime.params import Registry
        from models import historical
        from models.data.tables import WindowSpec

        mkt = read_market(source, path, asset)
        win = check_window("--window", window)
        if win:
            mkt = WindowSpec.parse(win).cut(mkt, "--window")
        reg = Registry.from_bundle(load_bundle(priors)) if priors is not None else Registry(asset=mkt.asset)
        if state is not None and state.exists():
            reg.load(state, keep_priors=priors is not None)
        before = {n: reg.summary(n) for n in reg.names}
        stage(f"historical calibration of {mkt.asset} ({source}, {mkt.duration_s:,.0f} s) ...")
        res = historical.calibrate(mkt)
        evidence = historical.to_evidence(res)
        reg.update_all(evidence)
        if res.toxic_hours is not None and res.toxic_hours.multiplier is not None:  # the hours the multiplier is for
            reg.set_toxic_hours(res.toxic_hours.toxic, f"historical:{mkt.asset}:toxic_hours ({res.toxic_hours.rule})")
        st = reg.calibration_status()
        moved = []
        for ev in evidence:
            b, a = before[ev.name], reg.summary(ev.name, st)
            amount = {"bernoulli": f"{ev.successes:g}/{ev.trials:g}", "poisson": f"{ev.count:g} in {ev.exposure:g} s",
                      "exponential": f"n {ev.count:g}, sum {ev.total:.4g}", "values": f"{len(ev.values)} values"}
            moved.append({"name": ev.name, "tier": a.tier, "evidence": f"{ev.kind} {amount[ev.kind]}",
                          "before": b.estimate, "after": a.estimate, "data_weight_before": b.data_weight,
                          "data_weight_after": a.data_weight, "calibrated_after": a.calibrated,
                          "source": ev.source})
        saved = str(reg.save(state)) if state is not None else None
        doc = {"asset": mkt.asset, "source": source, "window": win or None, "duration_s": mkt.duration_s,
               "moved": moved, "tiers": st.tiers(), "notes": list(res.notes), "state": saved,
               "estimates": res.model_dump(mode="json")}
        if as_json:
            emit_json(doc)
        else:
            render_moved(jsonable(doc))
        return True

    if not guarded(body):
        raise typer.Exit(1)
