"""One model fitted to one market outside Prefect: load -> observations -> fit ->
diagnostics -> gate, the steps of ``mmcal fit`` (DESIGN.md section 8).

Plain functions, not Prefect tasks: nothing is cached, tracked or registered (the
calibration flow, :mod:`flows.calibrate` with :mod:`flows.tasks`, runs the same
steps as cached tasks). Every number comes from ``models`` (:mod:`models.catalog`
and :func:`models.sampling.gate`). Bad input raises :class:`InputError` (a
``ValueError``) whose message names the ``mmcal fit`` option or the file at fault.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional


class InputError(ValueError):
    """Bad input to a fit (an option's value, or what the data holds): one line for the user."""


def _quiet(msg: str) -> None:
    pass


def read_market(source: str, path: Path, asset: Optional[str], with_books: bool = False,
                with_messages: bool = False):
    """The market of ``path`` by the loader of ``source`` (``auto``: sniffed; book snapshots too with
    ``with_books``, where the source has them: the synthetic market has none; LOBSTER's
    order-level messages too with ``with_messages``, for the exact FIFO queue orders)."""
    from models.data.loaders import detect_source, load
    from models.data.tables import SOURCES

    if source not in SOURCES and source != "auto":
        raise InputError(f"--source: unknown source {source!r}; one of {', '.join(SOURCES)}")
    if not Path(path).exists():
        raise InputError(f"{path}: no such file or directory")
    if source == "auto":  # sniffed here, so the book rule below knows the source
        source = detect_source(Path(path)) or "auto"  # undetectable: the loader's one-line error
    if with_books and source != "synthetic":  # the synthetic market has no books
        extra = {"with_messages": True} if with_messages and source == "lobster" else {}
        return load(source, path, asset=asset, with_books=True, **extra)
    return load(source, path, asset=asset)


def books_wanted(models) -> bool:
    """Whether a fit of ``models`` needs the order book (and LOBSTER's messages): when
    one of them :attr:`models.catalog.ModelSpec.needs_books` (the ``fills`` model's
    queue orders). The one rule of :func:`read_market_for` and the calibration flow's
    loading (:func:`flows.tasks.load_market`)."""
    from models import catalog

    return any(catalog.spec(m).needs_books for m in models)


def read_market_for(models, source: str, path: Path, asset: Optional[str]):
    """The market of ``path`` as a fit of ``models`` needs it: with the book snapshots
    (and, for LOBSTER, the order-level messages: exact FIFO queue orders) where
    :func:`books_wanted` and the source has books; otherwise without them, as before
    (so only markets whose books are now loaded change their data hash). A
    Hyperliquid recorder folder without an orderbooks file loads without books (the
    fills model is then skipped: :func:`models.catalog.skip_reason`); any other
    error in the books (a crossed snapshot, messages that disagree with the book) is
    reported, not hidden."""
    from models.data.tables import DataError

    if source == "synthetic" or not books_wanted(models):
        return read_market(source, path, asset)
    try:
        return read_market(source, path, asset, with_books=True, with_messages=True)
    except DataError as e:
        if not str(e.problem).startswith("with_books=True but no orderbooks file"):
            raise
        return read_market(source, path, asset)


def observation_config(market, settings: dict | None = None):
    """The observation rules of a fit or calibration (DESIGN.md section 3):
    ``settings`` (ObservationConfig fields) over the defaults, with the volatility bar
    length chosen from the data (:func:`models.data.observations.auto_bar_config`)
    unless ``settings`` set it."""
    from models.data.observations import ObservationConfig, auto_bar_config

    cfg = ObservationConfig.model_validate(settings or {})
    return cfg if "bar_seconds" in (settings or {}) else auto_bar_config(market, cfg)


def fit_one(model: str, source: str, path: Path, asset: Optional[str], regimes: str,
            sampler_config, gate_config, progress: Callable[[str], None] = _quiet,
            observation: dict | None = None, window: str = "", hawkes_components: str | None = None) -> dict:
    """Load, prepare, sample, diagnose and gate one model; the `mmcal fit --json` document.

    ``regimes``: the regime path alpha, kappa and hawkes condition on (one of
    :data:`models.catalog.REGIME_SOURCES`); ``sampler_config`` and ``gate_config``: a
    :class:`models.sampling.SamplerConfig` and :class:`models.sampling.GateConfig`;
    ``observation``: observation-rule settings (:func:`observation_config`);
    ``window``: a part of the data (:class:`models.data.tables.WindowSpec` text, ""
    = all of it); ``hawkes_components``: the hawkes kernel's number of components (1..6 or
    auto: chosen by held-out lpd); ``progress`` gets one line per step."""
    from models import catalog
    from models.sampling import gate

    spec = catalog.spec(model)
    if regimes not in catalog.REGIME_SOURCES:
        raise InputError(f"--regimes: unknown choice {regimes!r}; one of {', '.join(catalog.REGIME_SOURCES)}")
    if hawkes_components is not None:
        if model != "hawkes":
            raise InputError(f"--hawkes-components: applies to --model hawkes, not {model}")
        if hawkes_components != "auto" and hawkes_components not in {str(m) for m in range(1, 7)}:
            raise InputError(f"--hawkes-components: {hawkes_components!r} is not auto or 1..6")
    t_start = time.perf_counter()
    progress(f"loading {source} data from {path} ...")
    market = read_market_for((model,), source, path, asset)
    if asset is not None and str(market.asset).upper() != asset.upper():
        raise InputError(f"--asset: {path} holds {market.asset!r}, not {asset!r}")
    if window:
        from models.data.tables import WindowSpec

        market = WindowSpec.parse(window).cut(market, "--window")
    why = catalog.skip_reason(model, market.row_counts(), source)
    if why is not None:
        raise InputError(f"--model {model}: {path} ({source}): {why}")
    if regimes == "truth" and not catalog.has_truth_path(market):
        raise InputError(f"--regimes truth: {path} ({source}) has no true regime path; "
                         "only the synthetic market has one (use --regimes em)")
    if spec.uses_regimes:
        how = {"em": "EM/MAP path of the regime HMM", "truth": "the synthetic truth's path",
               "quantile": "placeholder quantile labels"}[regimes]
        progress(f"computing {spec.obs_unit} with regimes from {how} ...")
    else:
        progress(f"computing {spec.obs_unit} ...")
    cfg = observation_config(market, observation)
    obs = catalog.prepare(model, market, regimes, config=cfg)
    n = catalog.n_obs(model, obs)
    progress(f"{n:,} {spec.obs_unit} ({time.perf_counter() - t_start:.1f} s)")
    sc = sampler_config
    progress(f"sampling {model}: {sc.sampler}{'' if sc.inference == 'nuts' else ' or ' + sc.inference}, {sc.chains} chains x {sc.draws} draws "
             f"(+{sc.tune} tune), seed {sc.seed} ...")
    t0 = time.perf_counter()
    mc = catalog.model_config(model, None, cfg)
    if hawkes_components is not None:
        m = hawkes_components if hawkes_components == "auto" else int(hawkes_components)
        mc = mc.model_copy(update={"kernel": mc.kernel.model_copy(update={"components": m})})
    idata = catalog.fit(model, obs, sc, mc)
    progress(f"sampled in {time.perf_counter() - t0:.1f} s; diagnostics and LOO ...")
    if "inference_reason" in idata.attrs:
        progress(f"inference: {idata.attrs['inference']}; {idata.attrs['inference_reason']}")
    rows = catalog.parameter_rows(model, idata)
    diag = catalog.diagnostics(model, idata)
    verdict = gate(diag, gate_config)
    diag.pop("per_param", None)  # the same numbers are in "parameters"
    a = idata.attrs
    doc = {
        "model": model,
        "asset": str(market.asset),
        "source": source,
        "path": str(path),
        "window": window or None,
        "rows": market.row_counts(),
        "regimes": regimes if spec.uses_regimes else None,
        "n_obs": n,
        "obs_unit": spec.obs_unit,
        "observation": cfg.model_dump(mode="json"),
        "sampler": {"sampler": a.get("sampler", sc.sampler), "draws": a.get("draws", sc.draws),
                    "tune": a.get("tune", sc.tune), "chains": a.get("chains", sc.chains),
                    "seed": a.get("seed", sc.seed), "target_accept": a.get("target_accept", sc.target_accept),
                    "wall_s": a.get("sampling_wall_s"), "inference": a.get("inference", "nuts"),
                    "psis_khat": a.get("psis_khat"), "inference_reason": a.get("inference_reason")},
        "gate": {**verdict.as_dict(), "config": gate_config.model_dump()},
        "diagnostics": diag,
        "parameters": {r["name"]: {k: r[k] for k in ("mean", "sd", "q05", "q95", "r_hat", "ess_bulk",
                                                      "ess_tail")} for r in rows},
        "model_version": a.get("model_version"),
        "wall_s": time.perf_counter() - t_start,
    }
    progress(f"done in {doc['wall_s']:.1f} s")
    return doc
