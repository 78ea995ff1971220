"""MLflow tracking and the model registry: the one module that talks to MLflow.

Defaults (DESIGN.md section 7): tracking and registry in ``sqlite:///<artifacts>/mlflow.db``
with the artifact store under ``<artifacts>/mlruns``, where ``<artifacts>`` is
``$MMCAL_ARTIFACTS`` or ``./artifacts``. The standard ``MLFLOW_TRACKING_URI`` (and
``MLFLOW_REGISTRY_URI``) switch to a real server.

What a calibration leaves in MLflow:

* one parent run per calibration (``asset``, data window, row counts, data sha256,
  sampler config, model version as params; the bundle and its export fidelity),
* one nested run per model (diagnostics as metrics: max r_hat, min ESS bulk/tail,
  divergences, min BFMI, elpd_loo and its se, max Pareto k; artifacts:
  InferenceData netCDF, az.summary CSV, plots as PNG),
* a registered model ``mm-priors-<asset>`` whose versions are the bundles, logged
  as a models-from-code pyfunc (`models/bundle_pyfunc.py`) with the bundle JSON
  as its only artifact (no pickle); aliases ``challenger`` and ``champion``.

A version carries the tag ``cache_key`` (data hash + model config + code version):
registering the same key twice returns the existing version, so a calibration
killed after registering and run again does not create a duplicate.

Every run carries the tag ``mmcal.owner`` (the process, :mod:`models.concurrency`):
:func:`close_stale_runs` ends FAILED the runs a killed process left RUNNING.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mm_runtime.bundle import BundleError, PriorBundle, canonical_json, parse_bundle
from models.concurrency import file_lock, owner_dead, process_owner
from models.paths import artifacts_dir, tool_command

log = logging.getLogger(__name__)

EXPERIMENT = "mm-calibration"
OWNER_TAG = "mmcal.owner"
"""Tag of every run this module starts: the process (:func:`models.concurrency.process_owner`)."""
BUNDLE_FILE = "bundle.json"
PYFUNC_SOURCE = Path(__file__).with_name("bundle_pyfunc.py")


class TrackingError(RuntimeError):
    """MLflow could not be reached or refused a request (message names the URI)."""


class RegistryNotFound(TrackingError):
    """The registry has no such version or alias (not worth retrying)."""


def default_tracking_uri() -> str:
    return f"sqlite:///{artifacts_dir() / 'mlflow.db'}"


# What configure() handed to mlflow.set_tracking_uri / set_registry_uri. MLflow
# exports both to the environment (for child processes), so without this a later
# configure() would read its own earlier choice back as if the user had set it
# (e.g. keep the registry of a previous store after MLFLOW_TRACKING_URI changed).
_SET_BY_US: dict[str, str] = {}


def _user_env(name: str) -> str | None:
    """``os.environ[name]`` unless it is only the value configure() exported."""
    v = os.environ.get(name)
    return None if not v or v == _SET_BY_US.get(name) else v


def tracking_uri() -> str:
    return _user_env("MLFLOW_TRACKING_URI") or default_tracking_uri()


def registry_uri() -> str:
    """``MLFLOW_REGISTRY_URI`` when the user set it, else the tracking store."""
    return _user_env("MLFLOW_REGISTRY_URI") or tracking_uri()


def registered_model_name(asset: str) -> str:
    return f"mm-priors-{asset}"


def configure() -> str:
    """Point mlflow at the configured store and make sure the experiment exists.
    Returns the experiment id. Raises TrackingError with the URI when unreachable."""
    uri = tracking_uri()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # small files: bars are noise
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    reg = registry_uri()
    user = {k: _user_env(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(reg)
    for k, v in (("MLFLOW_TRACKING_URI", uri), ("MLFLOW_REGISTRY_URI", reg)):
        if user[k] is None:       # our choice, now exported by mlflow
            _SET_BY_US[k] = v
        else:                     # the user's: keep reading it
            _SET_BY_US.pop(k, None)
    try:
        with _store_lock(uri):
            return _experiment_id(uri)
    except MlflowException as e:
        raise TrackingError(f"MLflow at {uri}: {e.message if hasattr(e, 'message') else e}") from None
    except Exception as e:  # connection errors surface as requests/urllib3 exceptions
        raise TrackingError(f"MLflow at {uri} is unreachable: {type(e).__name__}: {e}") from None


def _store_lock(uri: str):
    """For a local sqlite store: a lock beside the database, so that processes opening
    a new store at once do not race on its schema migration (measured: "table
    _alembic_tmp_tags already exists"). A server needs none."""
    if uri.startswith("sqlite:///"):
        return file_lock(uri[len("sqlite:///"):] + ".lock")
    return contextlib.nullcontext()


def _experiment_id(uri: str) -> str:
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        location = None
        if uri.startswith("sqlite:"):
            location = (artifacts_dir() / "mlruns").as_uri()
        try:
            return mlflow.create_experiment(EXPERIMENT, artifact_location=location)
        except MlflowException:  # created concurrently by a parallel calibration
            exp = mlflow.get_experiment_by_name(EXPERIMENT)
    return exp.experiment_id


def _flat_metrics(d: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_metrics(v, key + "."))
        elif isinstance(v, bool):
            out[key] = float(v)
        elif isinstance(v, (int, float)) and v == v and abs(v) != float("inf"):
            out[key] = float(v)
    return out


@dataclass
class CalibrationRun:
    """Handle on the parent run of one calibration."""

    run_id: str
    asset: str
    experiment_id: str | None = None

    def log_params(self, params: dict[str, Any]) -> None:
        flat = {}
        for k, v in params.items():
            flat[k] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
        mlflow.log_params({k: str(v)[:6000] for k, v in flat.items()})

    def log_metrics(self, metrics: dict[str, Any], prefix: str = "") -> None:
        mlflow.log_metrics(_flat_metrics(metrics, prefix))

    def log_model_fit(self, model: str, idata, diagnostics: dict[str, Any],
                      summary_rows: list[dict[str, Any]] | None = None,
                      figures: dict[str, Any] | None = None,
                      params: dict[str, Any] | None = None,
                      gate_warnings: Sequence[str] = ()) -> str:
        """A nested run for one model: diagnostics as metrics, the InferenceData as
        netCDF, az.summary as CSV, figures as PNG (matplotlib figures, or paths of PNG
        files already written). ``idata`` may be an InferenceData or the path of its
        netCDF file. ``gate_warnings`` (e.g. Pareto k above 0.7) become the run's
        ``gate_warnings`` param and tag ("none" without any). Returns the nested run id."""
        import arviz as az

        warned = "; ".join(gate_warnings)[:5000] or "none"
        # the parent's experiment (without it MLflow puts a nested run in the active
        # experiment, "Default", where nothing finds it)
        with mlflow.start_run(run_name=f"{self.asset}:{model}", nested=True, experiment_id=self.experiment_id,
                              tags={"asset": self.asset, "model": model, "gate_warnings": warned,
                                    OWNER_TAG: process_owner()}) as child:
            mlflow.log_params({k: str(v)[:6000] for k, v in {**(params or {}), "gate_warnings": warned}.items()})
            mlflow.log_metrics(_flat_metrics(diagnostics))
            with tempfile.TemporaryDirectory() as tmp:
                t = Path(tmp)
                nc = t / f"{model}.nc"
                if isinstance(idata, (str, Path)):
                    nc.write_bytes(Path(idata).read_bytes())
                    idata = az.from_netcdf(str(nc))
                else:
                    idata.to_netcdf(str(nc))
                mlflow.log_artifact(str(nc), artifact_path="inference_data")
                summ = az.summary(idata, kind="all")
                summ.to_csv(t / f"{model}_az_summary.csv")
                mlflow.log_artifact(str(t / f"{model}_az_summary.csv"), artifact_path="summary")
                if summary_rows:
                    (t / f"{model}_params.json").write_text(json.dumps(summary_rows, indent=1, default=float))
                    mlflow.log_artifact(str(t / f"{model}_params.json"), artifact_path="summary")
                for name, fig in (figures or {}).items():
                    if isinstance(fig, (str, Path)):  # a PNG already written
                        png = t / f"{name}.png"
                        png.write_bytes(Path(fig).read_bytes())
                    else:
                        png = t / f"{name}.png"
                        fig.savefig(png, dpi=110, bbox_inches="tight")
                    mlflow.log_artifact(str(png), artifact_path="plots")
            return child.info.run_id

    def log_bundle(self, bundle: PriorBundle) -> str:
        """Log the bundle JSON and the pyfunc wrapper; returns the logged model's URI."""
        with tempfile.TemporaryDirectory() as tmp, _no_type_hint_warning(), _quiet("mlflow.utils.environment"):
            path = Path(tmp) / BUNDLE_FILE
            path.write_bytes(_bundle_bytes(bundle))
            mlflow.log_artifact(str(path), artifact_path="bundle")
            info = mlflow.pyfunc.log_model(
                name="prior_bundle",
                python_model=str(PYFUNC_SOURCE),
                artifacts={"bundle": str(path)},
                pip_requirements=["jax", "numpy", "pydantic>=2", "prometheus-client", "pandas", "mlflow"],
                metadata={"asset": bundle.asset, "model_version": bundle.model_version,
                          "bundle_checksum": bundle.checksum},
            )
        return info.model_uri

    def fail(self, reason: str) -> None:
        mlflow.set_tags({"status": "failed", "failure": reason[:5000]})

    def set_tags(self, tags: dict[str, Any]) -> None:
        mlflow.set_tags({k: str(v)[:5000] for k, v in tags.items()})

    def log_table(self, name: str, rows: list[dict[str, Any]], markdown: str | None = None,
                  artifact_path: str = "tables") -> None:
        """``rows`` as ``<name>.csv`` (and ``markdown`` as ``<name>.md``) artifacts."""
        import csv

        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            cols: list[str] = []
            for r in rows:
                cols += [k for k in r if k not in cols]
            with open(t / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=cols)
                w.writeheader()
                for r in rows:
                    w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
            mlflow.log_artifact(str(t / f"{name}.csv"), artifact_path=artifact_path)
            if markdown is not None:
                (t / f"{name}.md").write_text(markdown, encoding="utf-8")
                mlflow.log_artifact(str(t / f"{name}.md"), artifact_path=artifact_path)

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Every file under ``local_dir`` as artifacts of this run (under ``artifact_path``)."""
        mlflow.log_artifacts(str(local_dir), artifact_path=artifact_path)

    def log_gaps(self, gaps: list[dict[str, Any]]) -> None:
        """The data's recording gaps (``models.data.gaps``): metrics ``gaps_count`` and
        ``gaps_seconds``, and the table ``tables/recording_gaps.csv`` when there are any."""
        mlflow.log_metrics({"gaps_count": float(len(gaps)),
                            "gaps_seconds": float(sum(g["length_s"] for g in gaps))})
        if gaps:
            self.log_table("recording_gaps", gaps)

    def log_json(self, name: str, doc: Any, artifact_path: str = "") -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str), encoding="utf-8")
            mlflow.log_artifact(str(path), artifact_path=artifact_path or None)

    def end_failed(self, reason: str) -> None:
        """Finish this run as FAILED with ``reason`` (a gate failure: the run stays in
        MLflow, visibly failed, and nothing is registered)."""
        self.fail(reason)
        mlflow.end_run(status="FAILED")


@contextmanager
def _no_type_hint_warning() -> Iterator[None]:
    """Drop MLflow's advice to type-hint ``predict`` (the wrapper takes rows of market
    state with any columns on purpose). MLflow re-enables the warning inside its own
    call (``simplefilter("once")``), so a filter cannot hold it: the display is
    dropped instead, for this one message and only here."""
    with warnings.catch_warnings():
        show = warnings.showwarning

        def filtered(message, category, *args, **kwargs):
            if "type hints to the `predict` method" not in str(message):
                show(message, category, *args, **kwargs)

        warnings.showwarning = filtered
        yield


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Raise one logger's level to ERROR for the duration."""
    lg = logging.getLogger(logger_name)
    old = lg.level
    lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        lg.setLevel(old)


def _bundle_bytes(bundle: PriorBundle) -> bytes:
    doc = bundle.body()
    doc["checksum"] = bundle.checksum
    return json.dumps(doc, indent=1, sort_keys=True, allow_nan=False).encode()


@contextmanager
def calibration_run(asset: str, run_name: str | None = None,
                    tags: dict[str, str] | None = None, kind: str = "calibrate") -> Iterator[CalibrationRun]:
    """Parent run of one calibration (``kind="compare"``: of one comparison). An
    exception inside marks it FAILED (with the reason as a tag) and propagates."""
    exp_id = configure()
    # the tags come with the run (a process killed right after creating it still owns it)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name or f"{kind}:{asset}",
                          tags={"asset": asset, "kind": kind, OWNER_TAG: process_owner(),
                                **{k: str(v) for k, v in (tags or {}).items()}}) as run:
        handle = CalibrationRun(run.info.run_id, asset, exp_id)
        try:
            yield handle
        except BaseException as e:
            handle.fail(f"{type(e).__name__}: {e}")
            mlflow.end_run(status="FAILED")
            raise


def client() -> MlflowClient:
    configure()
    return MlflowClient()


def register_bundle(model_uri: str, asset: str, cache_key: str, run_id: str,
                    alias: str | None = "challenger", tags: dict[str, Any] | None = None) -> int:
    """Register the logged bundle as a version of ``mm-priors-<asset>`` (idempotent
    per cache_key) and point ``alias`` at it. ``tags`` go on a new version. Returns
    the version number."""
    c = client()
    name = registered_model_name(asset)
    try:
        c.get_registered_model(name)
    except MlflowException:
        try:
            c.create_registered_model(name, description=f"Prior bundles for {asset} (mm-calibration)")
        except MlflowException:
            pass  # created concurrently
    existing = [v for v in c.search_model_versions(f"name='{name}'")
                if v.tags.get("cache_key") == cache_key]
    if existing:
        version = int(min(existing, key=lambda v: int(v.version)).version)
        log.info("bundle for %s with cache key %s already registered as version %d", asset, cache_key[:12], version)
    else:
        vtags = {k: str(v)[:5000] for k, v in (tags or {}).items()}
        # a logged model's URI (models:/m-<id>) must come with its model_id: a tracking
        # server refuses the version otherwise (a local sqlite store does not check)
        model_id = model_uri[len("models:/"):] if model_uri.startswith("models:/m-") else None
        mv = c.create_model_version(name, source=model_uri, run_id=run_id, model_id=model_id,
                                    tags={**vtags, "cache_key": cache_key, "asset": asset})
        version = int(mv.version)
    if alias:
        c.set_registered_model_alias(name, alias, str(version))
    return version


def set_alias(asset: str, alias: str, version: int) -> None:
    client().set_registered_model_alias(registered_model_name(asset), alias, str(version))


def alias_version(asset: str, alias: str) -> int | None:
    try:
        return int(client().get_model_version_by_alias(registered_model_name(asset), alias).version)
    except MlflowException:
        return None


@dataclass
class VersionInfo:
    """One registered version of ``mm-priors-<asset>``: its number, the run that
    logged it, its tags and the aliases pointing at it."""

    asset: str
    version: int
    run_id: str
    tags: dict[str, str]
    aliases: list[str]

    @property
    def uri(self) -> str:
        return f"models:/{registered_model_name(self.asset)}/{self.version}"


def _info(asset: str, mv) -> VersionInfo:
    return VersionInfo(asset=asset, version=int(mv.version), run_id=mv.run_id, tags=dict(mv.tags or {}),
                       aliases=list(getattr(mv, "aliases", []) or []))


def _model_version(asset: str, alias: str | None, version: int | None):
    """The registry's model version for an alias or a version number (exactly one);
    raises MlflowException when there is none."""
    if (alias is None) == (version is None):
        raise ValueError("give exactly one of alias or version")
    c, name = client(), registered_model_name(asset)
    return c.get_model_version_by_alias(name, alias) if alias else c.get_model_version(name, str(version))


def version_info(asset: str, alias: str | None = None, version: int | None = None) -> VersionInfo | None:
    """The version an alias points at (or version ``version``); None when there is none."""
    try:
        return _info(asset, _model_version(asset, alias, version))
    except MlflowException:
        return None


def find_version(asset: str, cache_key: str) -> VersionInfo | None:
    """The (first) registered version carrying ``cache_key``; None when there is none."""
    c = client()
    name = registered_model_name(asset)
    try:
        found = [v for v in c.search_model_versions(f"name='{name}'") if v.tags.get("cache_key") == cache_key]
    except MlflowException:
        return None
    if not found:
        return None
    mv = min(found, key=lambda v: int(v.version))
    # search results may not carry aliases: read the version itself
    return _info(asset, c.get_model_version(name, mv.version))


def download_fit(run_id: str, model: str, dst_dir: str | Path) -> Path:
    """The InferenceData netCDF of ``model`` logged by calibration run ``run_id`` (its
    nested run tagged ``model``), downloaded into ``dst_dir``. TrackingError when the
    run has none."""
    configure()
    c = MlflowClient()
    run = c.get_run(run_id)
    children = c.search_runs([run.info.experiment_id],
                             filter_string=f"tags.`mlflow.parentRunId` = '{run_id}' and tags.model = '{model}'")
    if not children:
        raise RegistryNotFound(f"run {run_id}: no nested run for model {model!r} ({tracking_uri()})")
    dst = Path(dst_dir)
    dst.mkdir(parents=True, exist_ok=True)
    path = mlflow.artifacts.download_artifacts(run_id=children[0].info.run_id,
                                               artifact_path=f"inference_data/{model}.nc", dst_path=str(dst))
    return Path(path)


def run_params(run_id: str) -> dict[str, str]:
    """The params of a run (e.g. the data source and window of a calibration)."""
    configure()
    return dict(MlflowClient().get_run(run_id).data.params)


def ui_command() -> str:
    """How to look at the store: the ``mlflow ui`` command for a local sqlite store
    (as typed here: :func:`models.paths.tool_command`), else the server's URI."""
    uri = tracking_uri()
    if uri.startswith("sqlite:"):
        return f"{tool_command('mlflow')} ui --backend-store-uri {shlex.quote(uri)}"
    return f"open {uri}"


def close_stale_runs() -> list[tuple[str, str]]:
    """Runs of the experiment still RUNNING whose owner (tag ``mmcal.owner``) has died
    on this host (:func:`models.concurrency.owner_dead`): each ends FAILED with the
    reason as its ``failure`` tag. Returns [(run id, owner)]."""
    exp_id = configure()
    c = MlflowClient()
    closed = []
    for r in c.search_runs([exp_id], filter_string="attributes.status = 'RUNNING'", max_results=1000):
        owner = r.data.tags.get(OWNER_TAG)
        if owner and owner_dead(owner):
            host, pid, _ = owner.rsplit(":", 2)
            c.set_tag(r.info.run_id, "status", "failed")
            c.set_tag(r.info.run_id, "failure", f"the process that ran it (pid {pid} on {host}) ended "
                                                "without closing it (killed?)")
            c.set_terminated(r.info.run_id, status="FAILED")
            closed.append((r.info.run_id, owner))
    return closed


def load_registered_bundle(asset: str, alias: str | None = None,
                           version: int | None = None) -> tuple[PriorBundle, int]:
    """Resolve ``models:/mm-priors-<asset>@<alias>`` (or a version), download its
    bundle JSON and validate it (checksum, schema, support). A tampered bundle
    raises BundleError naming the registry URI."""
    name = registered_model_name(asset)
    try:
        mv = _model_version(asset, alias, version)
    except MlflowException as e:
        ref = f"@{alias}" if alias else f"/{version}"
        raise RegistryNotFound(f"models:/{name}{ref}: not found in the registry ({tracking_uri()})") from e
    uri = f"models:/{name}/{mv.version}"
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        found = list(local.rglob(BUNDLE_FILE))
        if not found:
            raise BundleError(f"{uri}: no {BUNDLE_FILE} in the registered model")
        raw = found[0].read_bytes()
    return parse_bundle(raw, origin=uri), int(mv.version)


__all__ = [
    "CalibrationRun", "OWNER_TAG", "RegistryNotFound", "TrackingError", "VersionInfo", "alias_version",
    "calibration_run", "close_stale_runs", "configure", "default_tracking_uri", "download_fit", "find_version", "load_registered_bundle", "register_bundle",
    "registered_model_name", "run_params", "set_alias", "tracking_uri", "ui_command", "version_info",
    "canonical_json",
]
