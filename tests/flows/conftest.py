"""Fixtures of the flow tests: one temporary world for the whole session.

* Prefect: its ephemeral local API with a temporary ``PREFECT_HOME`` (set here,
  before anything imports prefect: Prefect reads its settings at import). A
  ``PREFECT_API_URL`` of the environment is ignored: only the ``integration``
  tests touch real servers, the ones :func:`servers` starts on loopback.
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

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

_ROOT = Path(tempfile.mkdtemp(prefix="mmcal-flows-"))
os.environ.pop("PREFECT_API_URL", None)
os.environ["PREFECT_HOME"] = str(_ROOT / "prefect")
(_ROOT / "prefect").mkdir()

SAMPLER = {"sampler": "numpyro", "draws": 150, "tune": 150, "chains": 2, "cores": 1, "seed": 3, "progressbar": False}
SAMPLER_OVERRIDES = {"regime": {"sampler": "nutpie"}, "hawkes": {"sampler": "nutpie"}, "fills": {"sampler": "nutpie"}}
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


# --------------------------------------------------------------------------- real servers (integration)
START_TIMEOUT = float(os.environ.get("MMCAL_SERVER_TIMEOUT", "90"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bin(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"`{name}` is not installed next to {sys.executable} nor on PATH")
    return found


class _Server:
    """A background process in a session of its own (``stop`` ends it and its children),
    stdout and stderr to ``log``; ``health``: a URL that answers 200 once it is up."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], health: str | None, log: Path,
                 cwd: str | os.PathLike | None = None):
        self.name, self.health, self.log = name, health, log
        self._out = open(log, "wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, cwd=cwd)

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def healthy(self) -> bool:
        if self.health is None:
            return self.proc.poll() is None
        try:
            with urllib.request.urlopen(self.health, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)   # the server and its workers (its own session)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        try:                                          # children it left behind (its session)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._out.close()


def _wait(servers: list[_Server]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    pending = list(servers)
    while pending:
        for s in list(pending):
            if s.proc.poll() is not None:
                pytest.fail(f"{s.name} exited with status {s.proc.returncode} before it was healthy:\n{s.tail()}")
            if s.healthy():
                pending.remove(s)
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(f"{s.name} ({s.health})" for s in pending)
            pytest.fail(f"not healthy after {START_TIMEOUT:.0f} s (MMCAL_SERVER_TIMEOUT): {names}\n"
                        + "\n".join(f"--- {s.name} log:\n{s.tail()}" for s in pending))
        time.sleep(1.0)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """``{"mlflow": url, "prefect": api_url}``: a real ``mlflow server`` (sqlite backend,
    proxied artifacts) and a real ``prefect server start`` (temporary ``PREFECT_HOME``),
    on loopback at free ports, up and healthy; stopped when the module is done (each
    module that uses them gets its own, with an empty registry)."""
    root = tmp_path_factory.mktemp("servers")
    base = _server_env()
    mport, pport = _free_port(), _free_port()
    mlflow_url, prefect_url = f"http://127.0.0.1:{mport}", f"http://127.0.0.1:{pport}/api"
    (root / "prefect").mkdir()
    started: list[_Server] = []
    try:
        started.append(_Server("mlflow server", [
            _bin("mlflow"), "server", "--host", "127.0.0.1", "--port", str(mport), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", str(root / "mlartifacts"), "--serve-artifacts"],
            # no job-execution workers (seven huey consumers importing mlflow: a slower start; unused here)
            {**base, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, f"{mlflow_url}/health", root / "mlflow.log"))
        started.append(_Server("prefect server", [
            _bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(pport)],
            {**base, "PREFECT_HOME": str(root / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
             "PREFECT_UI_ENABLED": "false", "PREFECT_SERVER_UI_ENABLED": "false"},
            f"{prefect_url}/health", root / "prefect.log"))
        t0 = time.perf_counter()
        _wait(started)
        print(f"mlflow server and prefect server healthy in {time.perf_counter() - t0:.1f} s")
        yield {"mlflow": mlflow_url, "prefect": prefect_url}
    finally:
        for s in reversed(started):
            s.stop()


def _server_env() -> dict[str, str]:
    """The environment without any PREFECT_* / MLFLOW_* variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}


@pytest.fixture
def background(tmp_path):
    """``background(name, cmd, env, cwd=None)``: start ``cmd`` (``cmd[0]`` found next to
    this Python, else on PATH) as a :class:`_Server` without a health URL, in this
    environment less its PREFECT_* / MLFLOW_* variables plus ``env``, output in
    ``<tmp>/<name>.log``; whatever is still running is stopped at teardown."""
    started: list[_Server] = []

    def start(name: str, cmd: list[str], env: dict[str, str], cwd: str | os.PathLike | None = None) -> _Server:
        s = _Server(name, [_bin(cmd[0]), *cmd[1:]], {**_server_env(), **env}, None,
                    tmp_path / f"{name.replace(' ', '-')}.log", cwd=cwd)
        started.append(s)
        return s

    yield start
    for s in reversed(started):
        s.stop()


# --------------------------------------------------------------------------- mmcal processes
TINY_CALIBRATION = ["--source", "synthetic", "--sampler", "numpyro", "--draws", "50", "--tune", "50",
                    "--chains", "2", "--seed", "1", "--max-r-hat", "10", "--min-ess", "1", "--max-divergences", "10",
                    "--no-plots", "--model-sampler", "fills=nutpie"]
"""``mmcal calibrate`` options of the process tests: the smallest sampling whose
diagnostics exist (R-hat needs 2 chains) and a gate it passes (these tests are about
processes, not posteriors). The gate allows a few divergences: numpyro's 2 x 50 draws of
the hawkes model gave 1 divergent transition on some machines and none on others (the
same code and seed). Fills on nutpie: with the regime probabilities as soft weights
numpyro's 2 x 50 draws gave BFMI 0.05."""


def mmcal_command(*args: str) -> list[str]:
    """The ``mmcal`` console script of this environment with ``args``."""
    exe = Path(sys.executable).with_name("mmcal")
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "flows.cli", *args]


@pytest.fixture(scope="session")
def cli_world():
    """A world of its own for ``mmcal`` processes: a 300 s synthetic market written by
    ``mmcal simulate``, empty artifacts (MLflow store, fit cache) and ``PREFECT_HOME``;
    ``env`` is this environment with those (and no other PREFECT_* / MLFLOW_* /
    MMCAL_* variable); ``calibrate(*more)`` the ``mmcal calibrate`` command of the
    market with :data:`TINY_CALIBRATION` and ``more`` options."""
    root = Path(tempfile.mkdtemp(prefix="mmcal-procs-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "MMCAL_"))}
    env.update(MMCAL_ARTIFACTS=str(root / "artifacts"), PREFECT_HOME=str(root / "prefect"))
    market = root / "market"
    r = subprocess.run(mmcal_command("simulate", "--out", str(market), "--duration", "300", "--seed", "1"),
                       env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    yield {"root": root, "env": env, "market": market, "artifacts": root / "artifacts",
           "prefect_db": root / "prefect" / "prefect.db", "mlflow_db": root / "artifacts" / "mlflow.db",
           "calibrate": lambda *more: mmcal_command("calibrate", str(market), *TINY_CALIBRATION, *more)}
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def concurrent_pair(cli_world):
    """Two identical ``mmcal calibrate --json`` (:data:`TINY_CALIBRATION`) started at
    once on the empty :func:`cli_world`: ``[(exit status, JSON document or None,
    stderr)]`` in start order. Afterwards the world holds these fits in its cache."""
    cmd = cli_world["calibrate"]("--json")
    procs = []
    for i in range(2):
        err = open(cli_world["root"] / f"pair-{i}.err", "w+")
        procs.append((subprocess.Popen(cmd, env=cli_world["env"], cwd=cli_world["root"], stdout=subprocess.PIPE,
                                       stderr=err, text=True), err))
    out = []
    for p, err in procs:
        stdout, _ = p.communicate(timeout=1200)
        err.seek(0)
        try:
            doc = json.loads(stdout)
        except ValueError:
            doc = None
        out.append((p.returncode, doc, err.read()))
        err.close()
    return out
