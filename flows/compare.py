"""The ``compare`` flow (DESIGN.md section 7): champion vs challenger on held-out data.

::

    resolve the aliases (challenger, champion) -> held-out window (later than both fits)
      -> download both calibrations' posteriors from MLflow -> score on held-out data
      -> comparison table (MLflow run: CSV + markdown + metrics) -> promote: move ``champion``

Held-out data: by default the challenger's own data source and file, from the end
of the later of the two fit windows to the end of the data (calibrate with
``--window 0:0.8`` to leave the last 20 % out); or any other source / path /
window given (a newer file). A held-out window that starts before either fit's
window ends is refused: it would score a model on data it was fitted to.

Scores and the promotion rule: :mod:`models.heldout` (held-out log predictive
density per model, paired differences, promote when the total gain exceeds 2 se
or when there is no champion).

Replay PnL (``replay=True``, the default): both bundles are paper-traded on the same
held-out window (:mod:`mm_runtime.paper`, configuration ``learned``: the bundle plus
online updates; without a champion the challenger is compared with the original
system's ``static`` constants). The paired block comparison (challenger − champion)
and the HTML report are logged with the comparison run (artifacts ``paper/``). It
can veto a promotion over an existing champion: a challenger whose replay PnL is
worse with 95 % confidence (the interval of the mean block difference lies below 0)
is not promoted even when its held-out density is better (:func:`mm_runtime.paper.compare.replay_verdict`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from flows.runtime import artifacts_dir, cache_dir
from flows import tasks as T


@task(name="resolve-versions", retries=3, retry_delay_seconds=[2, 5, 10], retry_condition_fn=T._transient)
def resolve_versions(asset: str) -> dict[str, Any]:
    """The challenger and champion versions with their runs' data parameters."""
    from models import tracking

    out: dict[str, Any] = {}
    for alias in ("challenger", "champion"):
        v = tracking.version_info(asset, alias=alias)
        out[alias] = None if v is None else {"version": v.version, "run_id": v.run_id,
                                             "params": tracking.run_params(v.run_id)}
    return out


@task(name="download-fits", retries=3, retry_delay_seconds=[2, 5, 10], retry_condition_fn=T._transient)
def download_fits(run_id: str) -> dict[str, str]:
    """The four posteriors of a calibration run, as local netCDF paths (downloaded
    once into ``<cache>/runs/<run_id>/``)."""
    from models import tracking

    from models.catalog import names

    dst = cache_dir() / "runs" / run_id
    out = {}
    from models.catalog import spec

    for m in names():
        local = dst / f"{m}.nc"
        try:
            out[m] = str(local if local.exists() else tracking.download_fit(run_id, m, dst))
        except tracking.RegistryNotFound:
            if not spec(m).needs_books:
                raise
            # a model fitted only where the data have books: this calibration has none
    return out


@task(name="score-heldout", task_run_name="score-{label}")
def score_heldout(label: str, fits: dict[str, str], ref: dict, data_sha256: str, observation: dict,
                  max_draws: int) -> dict[str, Any]:
    """Held-out log predictive density of every model of one calibration
    (:func:`models.heldout.score`) on the held-out window ``ref``; the common bars and
    the regime probabilities of each bar (the regime HMM's smoothed probabilities at its
    EM/MAP point, as the fits take them: docs/models/regime_soft.md) under the rules
    ``observation`` (the challenger's)."""
    import arviz as az

    from models import catalog, heldout
    from models.data.observations import ObservationConfig, volatility_bars

    market, _ = T.load_market(ref, data_sha256)
    cfg = ObservationConfig.model_validate(observation)
    bars = volatility_bars(market, cfg)
    regimes = catalog.regime_probabilities(market, bars=bars, config=cfg)
    res = heldout.score({m: az.from_netcdf(p) for m, p in fits.items()}, market, bars=bars, regimes=regimes,
                        max_draws=max_draws)
    get_run_logger().info("%s: held-out elpd %s", label,
                          ", ".join(f"{m} {r['elpd']:.1f}" for m, r in res.items()))
    return T._jsonable(res)


@task(name="paper-replay", task_run_name="paper-replay-{asset}")
def paper_replay(asset: str, versions: dict[str, int], ref: dict, data_sha256: str, out_dir: str) -> dict[str, Any]:
    """Paper-trade each registered version (label -> version; the first label is the
    baseline) on the held-out window ``ref``; writes the report into ``out_dir``."""
    from models import tracking
    from models.data.loaders import replay_data
    from models.paper_report import ab_document, write_report
    from mm_runtime.paper.compare import config_for, run_configs
    from mm_runtime.paper.replay import ReplayConfig

    market, _ = T.load_market(ref, data_sha256)
    data = replay_data(market)
    setups = {}
    for label, version in versions.items():
        bundle, _ = tracking.load_registered_bundle(asset, version=version)
        kind = "static" if label == "static" else "learned"
        setups[label] = config_for(kind, bundle)
    rc = ReplayConfig(block_s=max(30.0, (data.end - data.start) / 20))
    ab = run_configs(data, setups, rc)
    ab["window"] = ref["window"]
    ab["priors"] = ", ".join(f"{k}: version {v}" for k, v in versions.items())
    report = write_report(ab, out_dir)
    doc = ab_document(ab)
    doc["report"] = str(report)
    get_run_logger().info("paper replay on the held-out window: %s", ", ".join(
        f"{r['config']} PnL {r['pnl']:.2f} ({r['fills']} fills)" for r in doc["table"]))
    return T._jsonable({k: doc[k] for k in ("table", "paired", "baseline", "report", "window")})


@task(name="track-comparison", retries=2, retry_delay_seconds=[5, 15], retry_condition_fn=T._transient)
def track_comparison(asset: str, doc: dict[str, Any], markdown: str, promote: bool) -> str:
    """One MLflow run for the comparison (the table as CSV and markdown, the
    differences as metrics, the decision as tags) and, when promoting, the
    ``champion`` alias moved to the challenger. Returns the run id."""
    from models import tracking

    with tracking.calibration_run(asset, kind="compare", tags={
            "challenger_version": doc["challenger"]["version"],
            "champion_version": (doc["champion"] or {}).get("version", "none"),
            "decision": "promote" if doc["promote"] else "keep", "reason": doc["reason"]}) as run:
        run.log_params({"heldout_window_start_ns": doc["heldout"]["start_ns"],
                        "heldout_window_end_ns": doc["heldout"]["end_ns"], "heldout_source": doc["heldout"]["source"],
                        "heldout_path": doc["heldout"]["path"], "z": doc["z"],
                        "heldout_data_sha256": doc["heldout"]["data_sha256"]})
        metrics = {}
        for r in doc["rows"]:
            for k in ("challenger_elpd", "champion_elpd", "elpd_diff", "se", "z_score"):
                if r.get(k) is not None:
                    metrics[f"{r['model']}.{k}"] = r[k]
        metrics["promoted"] = bool(promote)
        run.log_metrics(metrics)
        run.log_table("comparison", [{k: v for k, v in r.items()} for r in doc["rows"]], markdown=markdown)
        run.log_json("comparison.json", doc)
        paper = doc.get("paper")
        if paper:
            for r in paper["table"]:
                metrics[f"paper.{r['config']}.pnl"] = r["pnl"]
                metrics[f"paper.{r['config']}.fills"] = r["fills"]
            for name, p in paper["paired"].items():
                if p["mean_diff"] is not None:
                    metrics[f"paper.{name}_minus_{paper['baseline']}.mean_block_diff"] = p["mean_diff"]
            run.log_metrics(metrics)
            run.log_table("paper_trading", paper["table"])
            run.log_artifacts(Path(paper["report"]).parent, artifact_path="paper")
        if promote:
            tracking.set_alias(asset, "champion", doc["challenger"]["version"])
        return run.run_id


def _window_ns(params: dict[str, str]) -> tuple[int, int]:
    return int(params["window_start_ns"]), int(params["window_end_ns"])


@flow(name="compare", flow_run_name="compare-{asset}")
def compare(asset: str, source: str | None = None, path: str | None = None, window: str | None = None,
            z: float = 2.0, promote: bool = True, max_draws: int = 400, replay: bool = True) -> dict[str, Any]:
    """Champion vs challenger of ``asset`` on held-out data (module docstring).
    Returns the comparison document (rows, decision, versions, run id)."""
    from models import catalog, tracking
    from models.data.tables import WindowSpec
    from models.heldout import Comparison, compare as compare_scores

    logger = get_run_logger()
    v = resolve_versions(asset)
    ch, champ = v["challenger"], v["champion"]
    if ch is None:
        raise ValueError(f"{tracking.registered_model_name(asset)}: no challenger to compare "
                         f"(run `mmcal calibrate` first; registry {tracking.tracking_uri()})")
    base = {"asset": asset, "challenger": {"version": ch["version"], "run_id": ch["run_id"]},
            "champion": None if champ is None else {"version": champ["version"], "run_id": champ["run_id"]},
            "z": z, "run_id": None, "registered_model": tracking.registered_model_name(asset)}
    if champ is not None and champ["version"] == ch["version"]:
        logger.info("the challenger is the champion (version %d): nothing to compare", ch["version"])
        return {**base, "rows": [], "promote": False, "promoted": False, "heldout": None,
                "reason": f"the challenger is the champion (version {ch['version']})"}

    # held-out data: after both fit windows
    p = ch["params"]
    fit_end = max(_window_ns(ch["params"])[1], _window_ns(champ["params"])[1] if champ else 0)
    ref = T.DataRef(source=source or p["source"], path=path or p["path"], asset=asset, window="").model_dump()
    market, _ = T.load_market(ref)

    def secs(ns: int) -> str:  # a time as seconds from the data's start
        return f"{(ns - market.start_ns) / 1e9:,.3f} s"

    if window:
        spec = WindowSpec.parse(window)
        lo, hi = spec.bounds_ns(market)
        if lo < fit_end:
            raise ValueError(f"--window {window!r}: the held-out window starts at {secs(lo)} from the data's "
                             f"start, before the end of a fit window ({secs(fit_end)}); it must start after both "
                             "fits")
        spec.cut(market, "--window")  # one line when the window holds no data
    else:
        lo, hi = max(fit_end, market.start_ns), market.end_ns + 1
    if lo > market.end_ns:
        raise ValueError(f"{ref['path']}: no data after the fit windows (they end at {secs(fit_end)} from the "
                         f"data's start, the data at {secs(market.end_ns)}): calibrate on an earlier window (e.g. "
                         "--window 0:0.8) or give newer held-out data (--source/PATH)")
    href = {**ref, "window": f"{(lo - market.start_ns) / 1e9:.9f}s:{(hi - market.start_ns) / 1e9:.9f}s"}
    hmarket, hsha = T.load_market(href)
    info = {"source": ref["source"], "path": ref["path"], "start_ns": int(hmarket.start_ns),
            "end_ns": int(hmarket.end_ns) + 1, "duration_s": float(hmarket.duration_s),
            "rows": hmarket.row_counts(), "data_sha256": hsha}
    logger.info("held-out data: %.0f s (%s trades) after the fit windows", info["duration_s"],
                f"{info['rows']['trades']:,}")
    ch_fits = download_fits(ch["run_id"])
    rules = _observation(ch_fits[catalog.regime_model()])
    ch_score = score_heldout.submit("challenger", ch_fits, href, hsha, rules, max_draws)
    champ_score = None
    if champ is not None:
        champ_score = score_heldout.submit("champion", download_fits(champ["run_id"]), href, hsha, rules, max_draws)
    paper_f = None
    if replay:
        versions = ({"champion": champ["version"]} if champ is not None else {"static": ch["version"]})
        versions["challenger"] = ch["version"]
        out_dir = artifacts_dir() / "paper" / (f"compare-{asset}-v{ch['version']}-"
                                              + (f"v{champ['version']}" if champ else "static"))
        paper_f = paper_replay.submit(asset, versions, href, hsha, str(out_dir))
    cmp: Comparison = compare_scores(ch_score.result(), champ_score.result() if champ_score else None, z=z)
    cmp.heldout = info
    doc = {**base, **T._jsonable(cmp.as_dict())}
    do_promote = bool(promote and cmp.promote)
    if paper_f is not None:
        from mm_runtime.paper.compare import replay_verdict

        doc["paper"] = paper_f.result()
        veto, why = replay_verdict(doc["paper"]["paired"].get("challenger"))
        doc["paper"]["verdict"] = why
        if do_promote and veto and champ is not None:
            do_promote = False
            doc["reason"] = f"{doc['reason']}; but vetoed by the paper replay: {why}"
    doc["run_id"] = track_comparison(asset, doc, cmp.markdown(), do_promote)
    doc["promoted"] = do_promote
    doc["champion_after"] = ch["version"] if do_promote else (champ or {}).get("version")
    logger.info("%s: %s (%s)", asset, "challenger promoted to champion" if do_promote else "champion kept",
                cmp.reason)
    return doc


def _observation(nc_path: str) -> dict[str, Any]:
    """The observation rules of a fit (:func:`models.heldout.fit_observation_config`)."""
    import arviz as az

    from models.heldout import fit_observation_config

    return fit_observation_config(az.from_netcdf(nc_path)).model_dump(mode="json")


__all__ = ["compare"]
