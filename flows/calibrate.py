"""The ``calibrate`` flows (DESIGN.md section 7): one asset, or many mapped.

One asset (:func:`calibrate_asset`), the models in the catalog's stages
(:func:`models.catalog.stages`)::

    load-data (validate, window, the observation rules with the bar length)
      -> fit regime -> regime-path (from the regime posterior)
      -> fit alpha | fit kappa | fit hawkes        (submitted together: parallel on a runner that can)
      -> diagnose each (diagnostics + gate) -> plots each
      -> export (only when every gate passed) -> find-registered (an unchanged re-run stops here)
      -> track-calibration: one MLflow run, a nested run per model, the bundle registered
         with alias ``challenger`` (and ``champion`` when there is none)

A failed gate: the MLflow run is logged with the failures and ends FAILED, nothing
is exported or registered, and the flow run ends ``Failed`` with the reasons (its
data is the same result document, so callers still get the details).

Fits are cached by :func:`flows.tasks.fit_key` (data hash + model config + sampler
config + code version): an unchanged re-run samples nothing; the per-model
``cache_hit`` in the result says so (task state ``Cached``, or a posterior found
in the cache).

Calibrations at the same time on one artifacts folder (:func:`_locks`, file locks
keyed by the cache keys): a fit is sampled by one of them while the others wait
and then take it from the cache, and find-or-register runs once per bundle key, so
the same bundle is registered once and the others report ``already_registered``
with its version.

Many assets (:func:`calibrate`): the one-asset flow mapped over the assets (a task
per asset running the subflow), as many at a time as ``parallel_assets``.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator

from prefect import flow, get_run_logger, task
from prefect.states import Failed

from flows.runtime import cache_dir, default_parallel_fits, task_runner
from flows import tasks as T


def _configs(sampler: dict | None, overrides: dict[str, dict] | None, gate: dict | None
             ) -> tuple[dict[str, dict], dict]:
    """Per-model sampler configs (``sampler`` with the model's ``overrides`` on top)
    and the gate config, as JSON-ready dicts."""
    from models.catalog import names
    from models.sampling import GateConfig, SamplerConfig

    unknown = set(overrides or {}) - set(names())
    if unknown:
        raise ValueError(f"sampler overrides for unknown model(s) {sorted(unknown)}; models: {', '.join(names())}")
    per = {m: SamplerConfig.model_validate({**(sampler or {}), **(overrides or {}).get(m, {})}).model_dump(mode="json")
           for m in names()}
    return per, GateConfig.model_validate(gate or {}).model_dump(mode="json")


@contextmanager
def _locks(keys: list[str]) -> Iterator[None]:
    """Hold the file locks of ``keys`` (fit or bundle cache keys; in sorted order, so
    two calibrations never wait on each other crosswise): a calibration running
    at the same time on the same artifacts folder waits until these fits are sampled
    (then its fit tasks find them in the cache) or this bundle is registered (then it
    finds the version). Logs when it waits."""
    from models.concurrency import file_lock, lock_path

    with ExitStack() as stack:
        for k in sorted(set(keys)):
            stack.enter_context(file_lock(lock_path(k), on_wait=lambda k=k: get_run_logger().info(
                "%s: another calibration is working on it; waiting for it to finish", k)))
        yield


def _submit_fit(model: str, key: str, **kw):
    return T.fit_model.with_options(result_storage=cache_dir()).submit(model, key=key, **kw)


def _fit_result(model: str, key: str, future, **kw) -> dict[str, Any]:
    """Wait for a fit; a cached record whose netCDF is gone is refreshed."""
    future.wait()
    res = future.result()
    cached = future.state.name == "Cached"
    if cached and not Path(res["idata_path"]).exists():
        get_run_logger().warning("%s: cached record without its posterior file; sampling again", model)
        fut = T.fit_model.with_options(result_storage=cache_dir(), refresh_cache=True).submit(model, key=key, **kw)
        res, cached = fut.result(), False
    return {**res, "cache_hit": bool(cached or res.get("reused"))}


def _run_name() -> str:
    from prefect.runtime import flow_run

    p = flow_run.parameters
    what = p.get("asset") or Path(str(p.get("path", "data"))).name
    return f"calibrate-{what}-{p.get('window') or 'all'}-{p.get('alpha_variant', 'threshold')}"


@flow(name="calibrate-asset", flow_run_name=_run_name)
def calibrate_asset(source: str, path: str, asset: str | None = None, window: str = "",
                    sampler: dict | None = None, sampler_overrides: dict[str, dict] | None = None,
                    gate: dict | None = None, alpha_variant: str = "threshold",
                    max_prior_strength: float | None = None, plots: bool = True,
                    register_version: bool = True, observation: dict | None = None) -> dict[str, Any]:
    """Calibrate one asset end to end (module docstring). ``sampler`` / ``gate``:
    ``SamplerConfig`` / ``GateConfig`` fields (defaults: theirs), ``sampler_overrides``
    per model on top of ``sampler`` (e.g. ``{"regime": {"sampler": "numpyro"}}``); ``window``: the fit
    window (``WindowSpec`` text, e.g. ``0:0.8``); ``alpha_variant``: ``threshold``
    or ``mixture``; ``observation``: ``ObservationConfig`` fields (the rest default;
    the bar length chosen from the data unless given). Returns the result document
    (status ``registered``, ``already_registered``, ``logged`` or ``gate_failed``)."""
    from models import catalog
    from models.data.observations import ObservationConfig

    logger = get_run_logger()
    variants = {"alpha": catalog.check_variant("alpha", alpha_variant)}
    ObservationConfig.model_validate(observation or {})  # bad settings fail here, before any work
    samplers, gate_d = _configs(sampler, sampler_overrides, gate)
    ref = T.DataRef(source=source, path=str(path), asset=asset, window=window or "").model_dump()
    info = T.load_data(ref, observation)
    asset = info["asset"]
    sha, obs_cfg = info["data_sha256"], info["observation"]
    logger.info("observation rules: %s", ", ".join(f"{k}={v}" for k, v in obs_cfg.items()))
    common = dict(ref=ref, data_sha256=sha, observation=obs_cfg)

    keys: dict[str, str] = {}
    fits: dict[str, dict] = {}
    rpath: dict[str, Any] | None = None
    skipped = {m: r for m in catalog.names() if (r := catalog.skip_reason(m, info["rows"], source))}
    for m, why in skipped.items():
        logger.warning("%s: %s", asset, why)
    for stage in catalog.stages():
        stage = tuple(m for m in stage if m not in skipped)
        futures, kws = {}, {}
        for m in stage:
            uses = catalog.spec(m).uses_regimes
            keys[m] = T.fit_key(m, asset=asset, data_sha256=sha, observation=obs_cfg, sampler=samplers[m],
                                regime_path_sha=rpath["sha256"] if uses else None, variant=variants.get(m))
            kws[m] = dict(regime_path_file=rpath["path"] if uses else None, sampler=samplers[m],
                          variant=variants.get(m), **common)
        with _locks([keys[m] for m in stage]):
            for m in stage:
                futures[m] = _submit_fit(m, keys[m], **kws[m])
            for m in stage:
                fits[m] = _fit_result(m, keys[m], futures[m], **kws[m])
        if rpath is None:
            # the first stage holds the regime model: its posterior's path conditions the rest
            rpath = T.regime_path(fits[catalog.regime_model()], ref, sha, obs_cfg)
            logger.info("regime path: bars per regime (low, normal, high, extreme) %s", rpath["occupancy"])
    models = tuple(fits)
    diag_f = {m: T.diagnose.submit(m, fits[m], gate_d) for m in models}
    diags = {m: f.result() for m, f in diag_f.items()}
    figures: dict[str, dict] = {}
    if plots:
        plot_f = {m: T.plot_fit.submit(m, fits[m], ref, sha, obs_cfg,
                                       rpath["path"] if catalog.spec(m).uses_regimes else None)
                  for m in models}
        figures = {m: f.result() for m, f in plot_f.items()}
    failures = [f"{m}: {msg}" for m in models for msg in diags[m]["gate"]["failures"]]
    params = {"sampler": samplers, "gate": gate_d, "alpha_variant": alpha_variant,
              "max_prior_strength": max_prior_strength if max_prior_strength is not None else "none",
              **{f"skipped.{m}": why for m, why in skipped.items()}}
    bundle_path = key = None
    if failures:
        tracked = T.track_calibration(asset, ref, info, fits, diags, figures, None, params, None, register_version)
    else:
        key = T.bundle_key({m: fits[m]["key"] for m in models}, max_prior_strength)
        # find-or-register is one step per bundle key: a second calibration of the same
        # bundle waits here for the first and then finds its version
        with _locks([key]):
            bundle_path = T.export(asset, {m: fits[m] for m in models}, info["bundle_source"], max_prior_strength,
                                   key, obs_cfg)
            found = T.find_registered(asset, key) if register_version else None
            if found is not None:
                T.point_alias(asset, "challenger", found["version"])
                logger.info("unchanged calibration: already registered as version %d (run %s)",
                            found["version"], found["run_id"])
                tracked = {"status": "already_registered", "run_id": found["run_id"], "version": found["version"],
                           "aliases": sorted(set(found["aliases"]) | {"challenger"}), "failures": []}
            else:
                tracked = T.track_calibration(asset, ref, info, fits, diags, figures, bundle_path, params, key,
                                              register_version)
    result = _result(asset, ref, info, fits, diags, rpath, bundle_path, key, tracked, failures)
    result["skipped"] = skipped
    if tracked["status"] == "gate_failed":
        return Failed(message=f"{asset}: gate failed, not registered: " + "; ".join(failures), data=result)
    return result


def _result(asset, ref, info, fits, diags, rpath, bundle_path, key, tracked, failures) -> dict[str, Any]:
    from models import tracking

    per = {}
    for m, f in fits.items():
        d = diags[m]["diagnostics"]
        per[m] = {"cache_hit": f["cache_hit"], "cache_key": f["key"], "n_obs": f["n_obs"],
                  "sampling_wall_s": f["wall_s"], "gate": diags[m]["gate"], "model_version": diags[m]["model_version"],
                  "r_hat_max": d.get("r_hat_max"), "ess_bulk_min": d.get("ess_bulk_min"),
                  "ess_tail_min": d.get("ess_tail_min"), "divergences": d.get("divergences"),
                  "bfmi_min": d.get("bfmi_min"), "loo_elpd": d.get("loo_elpd"), "loo_se": d.get("loo_se"),
                  "pareto_k_max": d.get("pareto_k_max"), "idata_path": f["idata_path"],
                  "inference": d.get("inference", "nuts"), "psis_khat": d.get("psis_khat"),
                  "inference_reason": d.get("inference_reason")}
    return {"asset": asset, "status": tracked["status"], "run_id": tracked["run_id"],
            "version": tracked["version"], "aliases": tracked["aliases"],
            "registered_model": tracking.registered_model_name(asset), "bundle_path": bundle_path,
            "bundle_cache_key": key, "failures": failures, "data": {**{k: info[k] for k in (
                "source", "data_sha256", "rows", "start_ns", "end_ns", "duration_s", "bar_seconds",
                "observation")},
                "path": ref["path"], "window": ref["window"] or ":"},
            "regime_occupancy": rpath["occupancy"], "models": per,
            "tracking_uri": tracking.tracking_uri(), "mlflow_ui": tracking.ui_command()}


def result_of(state) -> dict[str, Any]:
    """The result document of a finished ``calibrate_asset`` run (also of a Failed one:
    a gate failure carries it as its data); an exception is re-raised."""
    res = state.result(raise_on_failure=False)
    if isinstance(res, BaseException):
        raise res
    return res


def run_calibration(source: str, path: str, asset: str | None = None, *, runner: str | None = None,
                    parallel_fits: int | None = None, **kw: Any) -> dict[str, Any]:
    """Run :func:`calibrate_asset` on the configured task runner; returns the result
    document whether or not the gate passed (``status``)."""
    from models.sampling import SamplerConfig

    chains = SamplerConfig.model_validate(kw.get("sampler") or {}).chains
    workers = parallel_fits or default_parallel_fits(chains)
    fl = calibrate_asset.with_options(task_runner=task_runner(runner, workers))
    return result_of(fl(source=source, path=str(path), asset=asset, return_state=True, **kw))


def _in_dask_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
        return True
    except (ImportError, ValueError):
        return False


@task(name="calibrate-one", task_run_name="calibrate-{asset}")
def _calibrate_one(source: str, path: str, asset: str | None, runner: str | None, parallel_fits: int | None,
                   kw: dict[str, Any]) -> dict[str, Any]:
    """One asset's subflow. On a Dask worker this task only orchestrates: its fits are
    tasks on the same cluster, so it leaves the worker's thread pool while it waits
    (``distributed.secede`` / ``rejoin``, Dask's rule for tasks that launch tasks).
    Without that, as many assets as the cluster has worker threads (``mmcal calibrate
    --task-runner dask --parallel-assets 4``: 4 single-threaded workers) hold every
    thread waiting for fits that can never start: a deadlock (measured: 4 Hyperliquid
    coins hung with no progress for 10 minutes)."""
    seceded = False
    if _in_dask_worker():
        from distributed import secede

        secede()
        seceded = True
    try:
        return run_calibration(source, path, asset, runner=runner, parallel_fits=parallel_fits, **kw)
    finally:
        if seceded:
            from distributed import rejoin

            rejoin()


def submit_bounded(task_, calls, limit: int | None, poll_s: float = 0.5) -> list:
    """``task_.submit(*args)`` for every ``args`` tuple of ``calls``, in order, with at most ``limit``
    of them unfinished at a time (None or 0: all at once): the bound that ``--parallel-assets``
    promises and the Dask task runner on an existing cluster does not set (measured: 16
    asset flows at once in one worker process, which crashed four times,
    benchmarks/README.md "Many assets on a Dask cluster"). Prefect futures."""
    import time

    futures: list = []
    for args in calls:
        while limit and sum(not f.wrapped_future.done() for f in futures) >= limit:
            time.sleep(poll_s)
        futures.append(task_.submit(*args))
    return futures


@flow(name="calibrate", flow_run_name="calibrate-{source}")
def calibrate(source: str, path: str, assets: list[str | None], runner: str | None = None,
              parallel_fits: int | None = None, options: dict[str, Any] | None = None,
              parallel_assets: int | None = None) -> list[dict[str, Any]]:
    """:func:`calibrate_asset` over ``assets`` of one source (each asset a subflow run;
    the results in order), at most ``parallel_assets`` at a time (:func:`submit_bounded`).
    ``options``: the one-asset flow's keyword arguments (window, sampler, gate, ...)."""
    from models import tracking

    # create (or migrate) the tracking store here, once, before the assets run in
    # parallel: several processes initialising a new sqlite store at the same time race
    # on its schema migration (measured: "table _alembic_tmp_tags already exists" with 4
    # Dask worker processes on an empty store)
    tracking.configure()
    futures = submit_bounded(_calibrate_one, [(source, path, a, runner, parallel_fits, options or {})
                                              for a in assets], parallel_assets)
    return [f.result() for f in futures]


def run_many(source: str, path: str, assets: list[str | None], *, runner: str | None = None,
             parallel_assets: int = 1, parallel_fits: int | None = None, **kw: Any) -> list[dict[str, Any]]:
    """Run :func:`calibrate` with ``parallel_assets`` assets at a time."""
    fl = calibrate.with_options(task_runner=task_runner(runner, parallel_assets))
    return fl(source=source, path=str(path), assets=list(assets), runner=runner, parallel_fits=parallel_fits,
              options=kw, parallel_assets=parallel_assets)


__all__ = ["calibrate", "calibrate_asset", "result_of", "run_calibration", "run_many"]
