"""Fixtures of the flow tests: one temporary world for the whole session.

* Prefect: its ephemeral local API with a temporary ``PREFECT_HOME`` (set here,
  before anything imports prefect: Prefect reads its settings at import). A
  ``PREFECT_API_URL`` of the environment is ignored: these tests never touch a
  real server.
* MLflow and the artifacts: ``MMCAL_ARTIFACTS`` points at a temporary folder (so
  the tracking store is ``sqlite:///<tmp>/artifacts/mlflow.db``, the fit cache
  ``<tmp>/artifacts/cache``); ``MLFLOW_TRACKING_URI`` is unset.
* One 15-minute synthetic market; the fits use tiny sampler settings (the point is
  the orchestration, not converged posteriors: 150 draws of the regime HMM on 63
  bars give r_hat up to ~1.5 and bulk ESS down to ~4, the upper states being
  bimodal on so little data) and a gate loose enough for them (:data:`LOOSE_GATE`);
  the default gate (:data:`STRICT_GATE`) fails them, which
  is the gate-failure case. The fits are cached by the flows themselves, so every
  test that calibrates the same data again samples nothing.

The session's registry holds ``mm-priors-SYN`` version 1 (alpha threshold
variant, :func:`calibrated`) and version 2 (alpha mixture variant,
:func:`mixture`); tests that depend on the aliases set them first.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_ROOT = Path(tempfile.mkdtemp(prefix="mmcal-flows-"))
os.environ.pop("PREFECT_API_URL", None)
os.environ["PREFECT_HOME"] = str(_ROOT / "prefect")
(_ROOT / "prefect").mkdir()

SAMPLER = {"sampler": "numpyro", "draws": 150, "tune": 150, "chains": 2, "cores": 1, "seed": 3, "progressbar": False}
SAMPLER_OVERRIDES = {"regime": {"sampler": "nutpie"}, "hawkes": {"sampler": "nutpie"}}
LOOSE_GATE = {"max_r_hat": 2.0, "min_ess_bulk": 3, "min_ess_tail": 3, "max_divergences": 50, "min_bfmi": 0.05}
STRICT_GATE: dict = {}
FIT_WINDOW = "0:0.7"


@pytest.fixture(scope="session")
def lab():
    """The session's artifacts folder (``MMCAL_ARTIFACTS``) and market directory."""
    from models.data.synthetic import simulate_market, write_market

    old = {k: os.environ.get(k) for k in ("MMCAL_ARTIFACTS", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    os.environ["MMCAL_ARTIFACTS"] = str(_ROOT / "artifacts")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    market = _ROOT / "market"
    write_market(simulate_market(seed=11, duration_s=900.0), market)
    yield {"artifacts": _ROOT / "artifacts", "market": market}
    # stop Prefect's ephemeral server now, while pytest's output capture still exists
    # (at exit its goodbye line would go to a closed stream)
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer

    APILogWorker.drain_all(timeout=10)  # ship the last run logs before the API goes away
    for server in list(SubprocessASGIServer._instances.values()):
        server.stop()
    import mlflow

    mlflow.set_tracking_uri(None)
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    shutil.rmtree(_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def fit_settings():
    """The session's calibration settings (window, sampler, per-model samplers, loose
    gate): a calibration of the session's market with them hits its fit cache."""
    return dict(window=FIT_WINDOW, sampler=dict(SAMPLER), sampler_overrides=dict(SAMPLER_OVERRIDES),
                gate=dict(LOOSE_GATE))


@pytest.fixture(scope="session")
def calibrate(lab, fit_settings):
    """``calibrate(**kw)``: the one-asset calibration of the session's market (tiny
    sampler, loose gate, fit window 0:0.7 unless ``kw`` says otherwise); the result
    document, or with ``state=True`` the Prefect flow run's final state."""
    from flows.calibrate import calibrate_asset, run_calibration

    def run(state: bool = False, **kw):
        args = {**fit_settings, **kw}
        if state:
            return calibrate_asset(source="synthetic", path=str(lab["market"]), return_state=True, **args)
        return run_calibration("synthetic", str(lab["market"]), **args)

    return run


@pytest.fixture(scope="session")
def calibrated(calibrate):
    """Version 1: the threshold alpha variant (first calibration: champion too)."""
    res = calibrate()
    assert res["status"] == "registered", res
    return res


@pytest.fixture(scope="session")
def mixture(calibrate, calibrated):
    """Version 2: the same data with the alpha mixture variant (only alpha is sampled)."""
    res = calibrate(alpha_variant="mixture")
    assert res["status"] == "registered", res
    return res
