"""The Prefect tasks the flows are made of (orchestration only: every number comes
from ``models``; every MLflow call from ``models.tracking``).

Tasks are coarse and pass small values: a :class:`DataRef` (where the data is and
which window), cache keys, file paths and run ids. A task that needs the market
loads it itself through :func:`load_market` (memoised per process, so a threaded
runner loads it once; a process or Dask worker once per worker) and checks its
sha256 against the one the flow saw, so every runner computes on the same data.

The observation rules (:class:`models.data.observations.ObservationConfig`) are
resolved once, by :func:`load_data` (:func:`flows.fitting.observation_config`: the
caller's settings; the bar length chosen from the data unless set), and travel as a JSON dict to every task that builds
observations, into every fit's attributes, the MLflow run's params and the bundle.

Fit cache (DESIGN.md section 7: "cache keys are data hash + model config + code
version"): :func:`fit_key` hashes the model name, the asset, the data's sha256 (of the
window), the observation rules, the regime path the model conditions on (its sha),
the model's own config (:func:`models.catalog.model_config`: variant, priors), the
sampler config and the code version of the model's modules plus the sampling,
observation and catalog code (``models.sampling.code_version``). :func:`fit_model` is a Prefect
task with that key as its ``cache_key_fn``: the result (a small JSON record with
the netCDF's path) is kept in ``<artifacts>/cache`` next to the posterior
``<key>.nc``, so re-running an unchanged calibration returns the cached record
(task state ``Cached``) and samples nothing. A netCDF found without its record
(e.g. a Prefect store wiped) is reused as well (``reused``); a record whose
netCDF is gone is refreshed (the flow re-runs the task with ``refresh_cache``).
The cache is never consulted for anything but the exact key.

Retries: I/O tasks (loading data, MLflow) retry on transient errors (network,
OS); sampling never retries (a failed fit is a finding, not a glitch).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from pydantic import BaseModel, ConfigDict

from flows.runtime import cache_dir, jsonable


# --------------------------------------------------------------------------- data
class DataRef(BaseModel):
    """Where a calibration's data is: loader ``source``, ``path``, ``asset`` (where the
    path holds several) and the ``window`` (:class:`models.data.tables.WindowSpec`
    text, "" = all of it)."""

    model_config = ConfigDict(frozen=True)

    source: str
    path: str
    asset: str | None = None
    window: str = ""

    def describe(self) -> str:
        w = f" window {self.window}" if self.window else ""
        a = f" asset {self.asset}" if self.asset else ""
        return f"{self.source} {self.path}{a}{w}"


def _stat_key(path: str) -> tuple:
    try:
        st = os.stat(path)
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return ()


@functools.lru_cache(maxsize=4)
def _load(source: str, path: str, asset: str | None, window: str, stat: tuple):
    from flows.fitting import read_market_for
    from models import catalog
    from models.data.tables import WindowSpec

    spec = WindowSpec.parse(window)
    # with the order book where a catalog model needs it and the source has one
    market = read_market_for(catalog.names(), source, Path(path), asset)
    if asset is not None and str(market.asset).upper() != str(asset).upper():
        raise ValueError(f"{path} holds {market.asset!r}, not {asset!r}")
    if not spec.is_full:
        market = spec.cut(market, "window")
    return market, market.sha256()


def load_market(ref: DataRef | dict, expect_sha: str | None = None):
    """The (windowed) market of ``ref`` and its sha256, memoised per process; a
    ValueError when it is not the data ``expect_sha`` names (changed on disk). Loaded
    with its order book (LOBSTER: and messages) where a catalog model needs one and the
    source has it (:func:`flows.fitting.read_market_for`), so the sha256 covers them."""
    ref = DataRef.model_validate(ref)
    market, sha = _load(ref.source, str(Path(ref.path).resolve()), ref.asset, ref.window,
                        _stat_key(ref.path))
    if expect_sha is not None and sha != expect_sha:
        raise ValueError(f"{ref.path}: the data changed during the calibration "
                         f"(sha256 {sha[:12]}… instead of {expect_sha[:12]}…)")
    return market, sha


def _transient(task, task_run, state) -> bool:
    """Retry only what may go away: OS and network errors and an unreachable MLflow,
    not bad input, a missing file or a version the registry does not have."""
    from models.tracking import RegistryNotFound, TrackingError

    try:
        state.result()
    except (FileNotFoundError, NotADirectoryError, PermissionError, IsADirectoryError, RegistryNotFound):
        return False
    except (OSError, ConnectionError, TimeoutError, TrackingError):
        return True
    except Exception as e:  # noqa: BLE001 - MLflow's and requests' own network errors
        name = type(e).__name__
        return any(k in name for k in ("Connection", "Timeout", "HTTPError", "RestException"))
    return False


def _obs_config(observation: dict):
    from models.data.observations import ObservationConfig

    return ObservationConfig.model_validate(observation)


@task(name="load-data", retries=2, retry_delay_seconds=2, retry_condition_fn=_transient)
def load_data(ref: dict, observation: dict | None = None) -> dict[str, Any]:
    """Load and validate the data (the loader's validation), cut the window, resolve
    the observation rules (:func:`observation_config`: ``observation`` settings, the
    bar length from the data unless set). Returns the data's identity and shape and
    the rules (``observation``, JSON), all small."""
    from flows.fitting import observation_config
    from models.data.gaps import find_gaps
    from models.export import bundle_source

    logger = get_run_logger()
    r = DataRef.model_validate(ref)
    t0 = time.perf_counter()
    market, sha = load_market(r)
    cfg = observation_config(market, observation)
    info = {"asset": str(market.asset), "source": str(market.source), "data_sha256": sha,
            "rows": market.row_counts(), "start_ns": int(market.start_ns), "end_ns": int(market.end_ns),
            "duration_s": float(market.duration_s), "bar_seconds": float(cfg.bar_seconds),
            "observation": cfg.model_dump(mode="json"),
            "bundle_source": bundle_source(market), "has_truth": bool(market.truth)}
    gaps = find_gaps(market, cfg)
    info["gaps"] = [{"start_ns": int(a), "end_ns": int(b), "length_s": float(ln)}
                    for a, b, ln in zip(gaps["start_ns"], gaps["end_ns"], gaps["length_s"])]
    for g in info["gaps"]:
        logger.warning("recording gap: %.1f s from %.1f s after the start (excluded from bars and exposures)",
                       g["length_s"], (g["start_ns"] - info["start_ns"]) / 1e9)
    logger.info("loaded %s: %s trades, %s quotes, %.0f s; %g s volatility bars (%.1f s)",
                r.describe(), f"{info['rows']['trades']:,}", f"{info['rows']['quotes']:,}",
                info["duration_s"], cfg.bar_seconds, time.perf_counter() - t0)
    return info


# --------------------------------------------------------------------------- keys
def _sha(doc: Any) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def fit_code_version(model: str) -> str:
    """Code version of a fit: the model's modules and the code every fit goes through."""
    import importlib

    from models import catalog
    from models.sampling import code_version

    return code_version(catalog.spec(model).module, *(importlib.import_module(m) for m in (
        "models.sampling", "models.parametrization", "models.data.observations", "models.data.bars",
        "models.data.observation_summary", "mm_runtime.observation", "models.catalog")))


SAMPLER_RUNTIME_ONLY = ("progressbar", "cores")
"""SamplerConfig fields that change how a fit runs, not its draws (same seed, same draws)."""


def fit_key(model: str, *, asset: str, data_sha256: str, observation: dict, sampler: dict,
            regime_path_sha: str | None, variant: str | None = None) -> str:
    """The cache key of one fit (module docstring). The sampler settings that do not
    change the draws (progress bars, parallel cores) are not part of it. ``asset``
    is: the data hash covers the tables' contents, not the asset's name, and a
    posterior carries the name in its coordinates and attributes."""
    from models import catalog

    draws_cfg = {k: v for k, v in sampler.items() if k not in SAMPLER_RUNTIME_ONLY}
    mc = catalog.model_config(model, variant, _obs_config(observation))
    doc = {"model": model, "asset": str(asset).upper(), "data_sha256": data_sha256,
           "observation": _obs_config(observation).model_dump(mode="json"),
           "regime_path_sha256": regime_path_sha, "sampler": draws_cfg, "code": fit_code_version(model),
           "model_config": mc.model_dump(mode="json")}
    return f"{model}-{_sha(doc)[:24]}"


def bundle_key(fit_keys: dict[str, str], max_prior_strength: float | None) -> str:
    """The identity of an export: the four fits' keys, the strength cap and the export
    code. Registered as the version's ``cache_key`` (one version per bundle key)."""
    import models.export as ex
    from models.sampling import code_version

    doc = {"fits": dict(sorted(fit_keys.items())), "max_prior_strength": max_prior_strength,
           "code": code_version(ex)}
    return f"bundle-{_sha(doc)[:24]}"


# --------------------------------------------------------------------------- fits
def observations(model: str, market, observation: dict, regime_path_file: str | None):
    """The observations of ``model`` on ``market`` under the rules ``observation`` and,
    for a model that takes one, the regime path stored in ``regime_path_file``."""
    import numpy as np

    from models import catalog
    from models.data.observations import volatility_bars

    cfg = _obs_config(observation)
    bars = volatility_bars(market, cfg)
    path = None
    if catalog.spec(model).uses_regimes:
        path = np.load(regime_path_file)
        if len(path) != len(bars):
            raise ValueError(f"regime path has {len(path)} bars, the market {len(bars)}")
    return catalog.observations(model, market, path, config=cfg, bars=bars)


def _write_netcdf(idata, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        idata.to_netcdf(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _key_of(context, parameters) -> str:
    return parameters["key"]


@task(name="fit", cache_key_fn=_key_of, persist_result=True, result_serializer="json",
      task_run_name="fit-{model}")
def fit_model(model: str, ref: dict, data_sha256: str, observation: dict, sampler: dict,
              regime_path_file: str | None, variant: str | None, key: str) -> dict[str, Any]:
    """Sample one model (no retries) and store its posterior as ``<cache>/<key>.nc``,
    with the observation rules in its ``observation_config`` attribute.
    Returns ``{"model", "key", "idata_path", "reused", "n_obs", "wall_s"}``."""
    from models import catalog
    from models.sampling import SamplerConfig, releasing_fit_memory

    logger = get_run_logger()
    nc = cache_dir() / f"{key}.nc"
    market, _ = load_market(ref, data_sha256)
    obs = observations(model, market, observation, regime_path_file)
    n = catalog.n_obs(model, obs)
    if nc.exists():
        logger.info("%s: posterior found in the cache (%s), not sampling", model, nc.name)
        return {"model": model, "key": key, "idata_path": str(nc), "reused": True, "n_obs": n, "wall_s": 0.0}
    sc = SamplerConfig.model_validate(sampler)
    logger.info("%s: sampling %s %s (%s%s, %d chains x %d draws + %d tune) ...", model, f"{n:,}",
                catalog.spec(model).obs_unit, sc.sampler, "" if sc.inference == "nuts" else f" or {sc.inference}",
                sc.chains, sc.draws, sc.tune)
    t0 = time.perf_counter()
    with releasing_fit_memory():  # a long-lived worker must not accumulate compiled code or freed heap
        idata = catalog.fit(model, obs, sc, catalog.model_config(model, variant, _obs_config(observation)))
    idata.attrs["observation_config"] = json.dumps(_obs_config(observation).model_dump(mode="json"))
    idata.attrs["asset"] = str(market.asset)
    idata.attrs["cache_key"] = key
    wall = time.perf_counter() - t0
    _write_netcdf(idata, nc)
    logger.info("%s: sampled in %.1f s", model, wall)
    if "inference_reason" in idata.attrs:
        logger.info("%s: inference %s; %s", model, idata.attrs["inference"], idata.attrs["inference_reason"])
    return {"model": model, "key": key, "idata_path": str(nc), "reused": False, "n_obs": n, "wall_s": wall}


def _idata(path: str):
    import arviz as az

    return az.from_netcdf(path)


@task(name="regime-path", task_run_name="regime-path")
def regime_path(regime_fit: dict, ref: dict, data_sha256: str, observation: dict) -> dict[str, Any]:
    """The regime probabilities of every bar from the regime posterior
    (:func:`models.regime.smoothed_probabilities`, the parameters integrated out; the
    other models take them as soft regimes, docs/models/regime_soft.md), stored beside
    the regime fit as ``<key>.probs.npy`` (n_bars x 4); returns its path, sha256 and the
    occupancy of the most probable regimes."""
    import numpy as np

    from models import regime

    out = Path(regime_fit["idata_path"]).with_suffix(".probs.npy")
    if not out.exists():
        market, _ = load_market(ref, data_sha256)
        robs = observations("regime", market, observation, None)
        probs = regime.smoothed_probabilities(_idata(regime_fit["idata_path"]), robs)
        fd, tmp = tempfile.mkstemp(prefix=".probs.", suffix=".npy", dir=out.parent)
        os.close(fd)
        np.save(tmp, np.asarray(probs, dtype=np.float64))
        os.replace(tmp, out)
    data = np.load(out)
    return {"path": str(out), "sha256": hashlib.sha256(data.tobytes()).hexdigest(),
            "occupancy": np.bincount(np.argmax(data, axis=1), minlength=4).tolist()}


@task(name="diagnose", task_run_name="diagnose-{model}")
def diagnose(model: str, fit: dict, gate: dict) -> dict[str, Any]:
    """Diagnostics (:func:`models.catalog.diagnostics`), the gate's verdict
    (:func:`models.sampling.gate`) and the parameter table of one fit."""
    from models import catalog
    from models.sampling import GateConfig
    from models.sampling import gate as run_gate

    idata = _idata(fit["idata_path"])
    d = catalog.diagnostics(model, idata)
    verdict = run_gate(d, GateConfig.model_validate(gate))
    get_run_logger().info("%s: gate %s%s", model, "PASS" if verdict.passed else "FAIL",
                          "" if verdict.passed else ": " + "; ".join(verdict.failures))
    return {"model": model, "diagnostics": _jsonable(d), "gate": verdict.as_dict(),
            "parameters": _jsonable(catalog.parameter_rows(model, idata)),
            "model_version": str(idata.attrs.get("model_version"))}


@task(name="plots", task_run_name="plots-{model}")
def plot_fit(model: str, fit: dict, ref: dict, data_sha256: str, observation: dict,
             regime_path_file: str | None) -> dict[str, str]:
    """Trace, posterior and posterior predictive plots of one fit (:mod:`models.plots`),
    written once beside the fit (``<key>.plots/``); returns {name: PNG path}."""
    from models.plots import model_plots

    out = Path(fit["idata_path"]).with_suffix(".plots")
    done = {p.stem.split("_", 1)[1]: str(p) for p in sorted(out.glob("*.png"))} if out.is_dir() else {}
    if done:
        return done
    market, _ = load_market(ref, data_sha256)
    obs = observations(model, market, observation, regime_path_file)
    tmp = Path(tempfile.mkdtemp(prefix=".plots.", dir=out.parent))
    paths = model_plots(model, _idata(fit["idata_path"]), obs, tmp, prefix=f"{market.asset} ")
    try:
        os.replace(tmp, out)              # all plots appear at once
    except OSError:                       # written meanwhile by a parallel run: keep those
        shutil.rmtree(tmp, ignore_errors=True)
    return {k: str(out / Path(p).name) for k, p in paths.items()}


@task(name="export", task_run_name="export-{asset}")
def export(asset: str, fits: dict[str, dict], source: dict, max_prior_strength: float | None,
           key: str, observation: dict) -> str:
    """The prior bundle from the fits (:func:`models.export.export_bundle`) with the
    observation rules they used, written as ``<artifacts>/bundles/<asset>/<key>.json``
    (once per key); returns the path."""
    from mm_runtime.bundle import dump_bundle

    from flows.runtime import artifacts_dir
    from models.export import export_bundle

    out = artifacts_dir() / "bundles" / asset / f"{key}.json"
    if out.exists():
        return str(out)
    bundle, _ = export_bundle(asset, {m: _idata(f["idata_path"]) for m, f in fits.items()}, source=source,
                              max_prior_strength=max_prior_strength, observation=_obs_config(observation))
    dump_bundle(bundle, out)
    get_run_logger().info("exported the prior bundle %s (model version %s)", out.name, bundle.model_version)
    return str(out)


# --------------------------------------------------------------------------- tracking
@task(name="find-registered", retries=3, retry_delay_seconds=[2, 5, 10], retry_condition_fn=_transient)
def find_registered(asset: str, key: str) -> dict[str, Any] | None:
    """The registered version holding bundle ``key`` (a re-run of an unchanged
    calibration), or None."""
    from models import tracking

    v = tracking.find_version(asset, key)
    return None if v is None else {"version": v.version, "run_id": v.run_id, "aliases": v.aliases}


_DIAG_METRICS = ("r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences", "bfmi_min", "loo_elpd",
                 "loo_se", "p_loo", "pareto_k_max", "pareto_k_over_0.7", "sampling_time_s", "psis_khat",
                 "psis_ess")


def _diag_metrics(d: dict) -> dict[str, Any]:
    return {k: d.get(k) for k in _DIAG_METRICS if d.get(k) is not None}


def summary_metrics(diags: dict[str, dict], fidelity_max: float | None = None) -> dict[str, Any]:
    """The calibration's headline metrics: worst over the models (and per model)."""
    out: dict[str, Any] = {}
    vals = {m: d["diagnostics"] for m, d in diags.items()}

    def agg(key, fn):
        xs = [v[key] for v in vals.values() if v.get(key) is not None]
        return fn(xs) if xs else None

    for name, key, fn in (("max_r_hat", "r_hat_max", max), ("min_ess_bulk", "ess_bulk_min", min),
                          ("min_ess_tail", "ess_tail_min", min), ("divergences", "divergences", sum),
                          ("min_bfmi", "bfmi_min", min), ("max_pareto_k", "pareto_k_max", max)):
        v = agg(key, fn)
        if v is not None:
            out[name] = v
    for m, v in vals.items():
        for k, x in _diag_metrics(v).items():
            out[f"{m}.{k}"] = x
        out[f"{m}.gate_passed"] = bool(diags[m]["gate"]["passed"])
    if fidelity_max is not None:
        out["export_fidelity_max_err_sd"] = fidelity_max
    return out


@task(name="track-calibration", retries=2, retry_delay_seconds=[5, 15], retry_condition_fn=_transient)
def track_calibration(asset: str, ref: dict, info: dict, fits: dict[str, dict], diags: dict[str, dict],
                      plots: dict[str, dict], bundle_path: str | None, params: dict[str, Any],
                      key: str | None, register: bool = True) -> dict[str, Any]:
    """One MLflow run for the calibration (params, headline metrics, one nested run
    per model with its InferenceData, az.summary, parameters and plots, the bundle)
    and, when every gate passed, the bundle registered as a version with alias
    ``challenger`` (and ``champion`` when there is none yet). A failed gate ends the
    run FAILED with the reasons and registers nothing. The gates' warnings (e.g.
    Pareto k above 0.7) are logged, and tagged on the run and on each model's run
    (``gate_warnings``)."""
    from mm_runtime.bundle import PriorBundle, load_bundle, with_checksum

    from models import tracking
    from models.concurrency import file_lock, lock_path

    logger = get_run_logger()
    failures = [f"{m}: {msg}" for m, d in diags.items() for msg in d["gate"]["failures"]]
    warned = [f"{m}: {msg}" for m, d in diags.items() for msg in d["gate"].get("warnings", [])]
    for w in warned:  # e.g. Pareto k above 0.7: on the console and in the run, not only in gate.json
        logger.warning("gate warning: %s", w)
    bundle = load_bundle(bundle_path) if bundle_path else None
    fid = None
    if bundle is not None:
        fid = (bundle.diagnostics.get("export_fidelity") or {}).get("max_quantile_err_sd")
    with tracking.calibration_run(asset, tags={"data_sha256": info["data_sha256"],
                                               "gate": "passed" if not failures else "failed",
                                               "gate_warnings": "; ".join(warned)[:5000] or "none"}) as run:
        r = DataRef.model_validate(ref)
        run.log_params({
            "source": r.source, "path": r.path, "asset": asset, "window": r.window or ":",
            "window_start": info["bundle_source"]["window_start"], "window_end": info["bundle_source"]["window_end"],
            "window_start_ns": info["start_ns"], "window_end_ns": info["end_ns"] + 1,
            "rows_trades": info["rows"]["trades"], "rows_quotes": info["rows"]["quotes"],
            "rows_books": info["rows"]["books"], "data_sha256": info["data_sha256"],
            "bar_seconds": info["bar_seconds"], **params,
            **{f"observation.{k}": v for k, v in info["observation"].items()},
            "model_versions": {m: d["model_version"] for m, d in diags.items()},
            "model_version": bundle.model_version if bundle is not None else "",
            "bundle_cache_key": key or "",
        })
        run.log_metrics(summary_metrics(diags, fid))
        run.log_gaps(info.get("gaps", []))
        for m, f in fits.items():
            d = diags[m]
            run.log_model_fit(m, f["idata_path"], {**_diag_metrics(d["diagnostics"]),
                                                   "gate_passed": d["gate"]["passed"]},
                              summary_rows=d["parameters"],
                              figures={f"{m}_{k}": p for k, p in (plots.get(m) or {}).items()},
                              params={"model_version": d["model_version"], "cache_key": f["key"],
                                      "cache_hit": f.get("cache_hit", False), "n_obs": f["n_obs"],
                                      "sampling_wall_s": round(f.get("wall_s", 0.0), 2),
                                      "gate_failures": "; ".join(d["gate"]["failures"]) or "none",
                                      "inference": d["diagnostics"].get("inference", "nuts"),
                                      "inference_reason": (d["diagnostics"].get("inference_reason") or "")[:500]},
                              gate_warnings=d["gate"].get("warnings", []))
        run.log_json("gate.json", {m: d["gate"] for m, d in diags.items()})
        if failures or bundle is None:
            reason = "gate failed: " + "; ".join(failures) if failures else "no bundle"
            logger.warning("calibration of %s not registered (%s); MLflow run %s", asset, reason, run.run_id)
            run.end_failed(reason)
            return {"status": "gate_failed", "run_id": run.run_id, "version": None, "aliases": [],
                    "failures": failures}
        ref_doc = {"run_id": run.run_id, "registered_model": tracking.registered_model_name(asset)}
        bundle = with_checksum(PriorBundle.model_validate({**bundle.body(), "mlflow": ref_doc}))
        uri = run.log_bundle(bundle)
        if not register:
            return {"status": "logged", "run_id": run.run_id, "version": None, "aliases": [], "failures": []}
        version = tracking.register_bundle(uri, asset, cache_key=key, run_id=run.run_id, alias="challenger",
                                           tags={"model_version": bundle.model_version,
                                                 "data_sha256": info["data_sha256"],
                                                 "window": r.window or ":"})
        aliases = ["challenger"]
        # the first champion: check-and-set under a lock per registered model, so two
        # calibrations registering different bundles at once do not both claim it
        with file_lock(lock_path(f"{tracking.registered_model_name(asset)}.champion")):
            if tracking.alias_version(asset, "champion") is None:
                tracking.set_alias(asset, "champion", version)
                aliases.append("champion")
        run.set_tags({"registered_version": version, "aliases": ",".join(aliases)})
    logger.info("registered %s version %d (%s); MLflow run %s", tracking.registered_model_name(asset), version,
                ", ".join(aliases), run.run_id)
    return {"status": "registered", "run_id": run.run_id, "version": version, "aliases": aliases, "failures": []}


@task(name="set-alias", retries=3, retry_delay_seconds=[2, 5, 10], retry_condition_fn=_transient)
def point_alias(asset: str, alias: str, version: int) -> None:
    from models import tracking

    tracking.set_alias(asset, alias, version)


_jsonable = jsonable


__all__ = ["DataRef", "bundle_key", "diagnose", "export", "find_registered",
           "fit_key", "fit_model", "load_data", "load_market", "observations", "plot_fit", "point_alias",
           "regime_path", "summary_metrics", "track_calibration"]
