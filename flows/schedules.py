"""Schedules (DESIGN.md section 7): Prefect deployments with cron schedules,
declared in code from a small config file, served by one command (``mmcal serve``).

The config (``schedules.toml`` in the repository root by default, or
``$MMCAL_SCHEDULES``, or ``mmcal serve --config``) lists the assets::

    timezone = "UTC"            # of every cron (optional, default UTC)

    [[calibrate]]
    asset = "SYN"               # the registered model is mm-priors-SYN
    source = "synthetic"        # lobster | binance | hyperliquid | synthetic
    path = "artifacts/demo/market"   # relative paths: from the config file's folder
    cron = "0 2 * * *"          # default: daily at 02:00
    window = "0:0.8"            # fit window; compare scores the rest (held out)
    # optional: alpha_variant, z, promote, max_prior_strength,
    #           [calibrate.sampler] / [calibrate.gate] (SamplerConfig / GateConfig fields),
    #           [calibrate.sampler_overrides.MODEL] (SamplerConfig fields for one model on
    #           top of [calibrate.sampler], as `mmcal calibrate --model-sampler`),
    #           [calibrate.observation] (ObservationConfig fields: the observation rules,
    #           e.g. markout_horizon_s, informed_threshold_bps, bar_seconds, and the queue
    #           orders' queue_levels, markout_horizons_s = [0.5, 1, 5, 30], queue_power)

Each entry becomes one deployment ``calibrate-<ASSET>`` of the flow
``scheduled-calibration``: calibrate the asset (:func:`flows.calibrate.calibrate_asset`)
and, when a challenger was registered, compare it with the champion right after
(:func:`flows.compare.compare`, which promotes when warranted). One flow run does
both, so the comparison always sees the calibration that ran just before it.

A bad config is a :class:`ScheduleConfigError` naming the file and the field
(``schedules.toml: calibrate[0].cron: Invalid cron string ...``); so is an entry
whose data path does not exist or has another source's format
(``schedules.toml: calibrate[0].path: no such file or directory: ...``), checked
when the file is read (``mmcal serve`` and ``--check``), not at the cron time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import tomllib
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)

SOURCES = ("lobster", "binance", "hyperliquid", "synthetic")
DEFAULT_CONFIG = "schedules.toml"
DEFAULT_CRON = "0 2 * * *"


class ScheduleConfigError(ValueError):
    """A schedules file that cannot be used; the message names the file and field."""


class CalibrationSchedule(BaseModel):
    """One ``[[calibrate]]`` entry."""

    model_config = ConfigDict(extra="forbid")

    asset: str = Field(min_length=1)
    source: str
    path: str = Field(min_length=1)
    cron: str = DEFAULT_CRON
    window: str = "0:0.8"
    alpha_variant: str = "threshold"
    z: float = Field(2.0, ge=0)
    promote: bool = True
    max_prior_strength: float | None = Field(None, gt=0)
    sampler: dict[str, Any] = Field(default_factory=dict)
    sampler_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    gate: dict[str, Any] = Field(default_factory=dict)
    observation: dict[str, Any] = Field(default_factory=dict)

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if v not in SOURCES:
            raise ValueError(f"unknown source {v!r}; one of {', '.join(SOURCES)}")
        return v

    @field_validator("asset")
    @classmethod
    def _asset(cls, v: str) -> str:
        if not all(c.isalnum() or c in "-_." for c in v):
            raise ValueError(f"asset {v!r}: letters, digits, '-', '_' and '.' only")
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        from prefect.client.schemas.schedules import CronSchedule

        try:
            CronSchedule(cron=v)
        except ValidationError as e:
            raise ValueError(e.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        from models.data.tables import WindowSpec

        WindowSpec.parse(v)
        return v

    @field_validator("alpha_variant")
    @classmethod
    def _variant(cls, v: str) -> str:
        from models.catalog import check_variant

        return check_variant("alpha", v)

    @field_validator("observation")
    @classmethod
    def _observation(cls, v: dict) -> dict:
        from models.data.observations import ObservationConfig

        try:
            ObservationConfig.model_validate(v)
        except ValidationError as e:
            err = e.errors()[0]
            where = f"{_loc(err['loc'])}: " if err["loc"] else ""
            raise ValueError(where + err["msg"].removeprefix("Value error, ")) from None
        return dict(v)

    @field_validator("sampler")
    @classmethod
    def _sampler(cls, v: dict) -> dict:
        from models.sampling import SamplerConfig

        return SamplerConfig.model_validate(v).model_dump(mode="json") if v else {}

    @field_validator("sampler_overrides")
    @classmethod
    def _overrides(cls, v: dict, info: ValidationInfo) -> dict:
        from models.catalog import names
        from models.sampling import SamplerConfig

        MODELS = names()

        out = {}
        for model, fields in v.items():
            if model not in MODELS:
                raise ValueError(f"unknown model {model!r}; one of {', '.join(MODELS)}")
            try:  # on top of [calibrate.sampler] (when that one is valid), as the flow merges them
                merged = SamplerConfig.model_validate({**info.data.get("sampler", {}), **fields})
            except ValidationError as e:
                err = e.errors()[0]
                raise ValueError(f"{model}.{_loc(err['loc'])}: {err['msg']}") from None
            out[model] = {k: merged.model_dump(mode="json")[k] for k in fields}
        return out

    @field_validator("gate")
    @classmethod
    def _gate(cls, v: dict) -> dict:
        from models.sampling import GateConfig

        return GateConfig.model_validate(v).model_dump(mode="json") if v else {}


class SchedulesConfig(BaseModel):
    """The whole file: a timezone and the ``[[calibrate]]`` entries (assets unique)."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = "UTC"
    calibrate: list[CalibrationSchedule] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @model_validator(mode="after")
    def _unique(self) -> "SchedulesConfig":
        seen: set[str] = set()
        for i, s in enumerate(self.calibrate):
            if s.asset.upper() in seen:
                raise ValueError(f"calibrate[{i}].asset: {s.asset!r} is scheduled twice")
            seen.add(s.asset.upper())
        return self


def config_path(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$MMCAL_SCHEDULES``, else ``./schedules.toml``."""
    return Path(path or os.environ.get("MMCAL_SCHEDULES") or DEFAULT_CONFIG)


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_config(path: str | os.PathLike | None = None, *, check_paths: bool = True) -> SchedulesConfig:
    """Read and validate a schedules file; relative data paths are resolved against
    the file's folder. A :class:`ScheduleConfigError` names the file and field.
    With ``check_paths`` (default) each entry's data path must exist and must not
    have another source's format (:func:`models.data.io.check_format`): a missing
    path would otherwise fail only at the cron time."""
    p = config_path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScheduleConfigError(f"{p}: no such schedules file") from None
    except OSError as e:
        raise ScheduleConfigError(f"{p}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ScheduleConfigError(f"{p}: not valid TOML: {e}") from None
    try:
        cfg = SchedulesConfig.model_validate(raw)
    except ValidationError as e:
        errs = []
        for err in e.errors():
            msg = err["msg"].removeprefix("Value error, ")
            errs.append(f"{_loc(err['loc'])}: {msg}" if err["loc"] else msg)
        raise ScheduleConfigError(f"{p}: " + "; ".join(errs)) from None
    base = p.resolve().parent
    for i, s in enumerate(cfg.calibrate):
        given = s.path
        s.path = str((base / s.path).resolve()) if not Path(s.path).is_absolute() else s.path
        if check_paths:
            problem = _data_path_problem(s.source, s.path)
            if problem:
                rel = f" ({given!r} from the schedules file's folder)" if given != s.path else ""
                raise ScheduleConfigError(f"{p}: calibrate[{i}].path: {problem}{rel}")
    return cfg


def _data_path_problem(source: str, path: str) -> str | None:
    """Why ``path`` cannot be ``source`` data, or None (existence and format sniffing
    only: the data are loaded when the calibration runs)."""
    from models.data.io import check_format
    from models.data.tables import DataError

    if not Path(path).exists():
        return f"no such file or directory: {path}"
    try:
        check_format(path, source)
    except DataError as e:
        return str(e)
    return None


def deployment_name(asset: str) -> str:
    return f"calibrate-{asset}"


@flow(name="scheduled-calibration", flow_run_name="scheduled-{asset}")
def scheduled_calibration(asset: str, source: str, path: str, window: str = "0:0.8",
                          sampler: dict | None = None, gate: dict | None = None,
                          sampler_overrides: dict[str, dict] | None = None,
                          alpha_variant: str = "threshold", max_prior_strength: float | None = None,
                          z: float = 2.0, promote: bool = True, observation: dict | None = None) -> dict[str, Any]:
    """Calibrate ``asset`` and, when a challenger stands, compare it with the champion.
    Returns ``{"calibration": <calibrate document>, "comparison": <compare document or None>}``;
    a failed gate fails the flow run (nothing registered, nothing compared)."""
    from prefect.states import Failed

    from flows.calibrate import run_calibration
    from flows.compare import compare

    logger = get_run_logger()
    cal = run_calibration(source, path, asset, sampler=sampler or {}, sampler_overrides=sampler_overrides or {},
                          gate=gate or {}, window=window,
                          alpha_variant=alpha_variant, max_prior_strength=max_prior_strength,
                          observation=observation or {})
    out: dict[str, Any] = {"calibration": cal, "comparison": None}
    if cal["status"] == "gate_failed":
        return Failed(message=f"{asset}: gate failed, nothing compared: " + "; ".join(cal["failures"]), data=out)
    if cal["status"] in ("registered", "already_registered"):
        out["comparison"] = compare(asset=asset, z=z, promote=promote)
        logger.info("%s: %s", asset, out["comparison"]["reason"])
    return out


def build_deployments(config: SchedulesConfig | str | os.PathLike | None = None) -> list:
    """One Prefect deployment per ``[[calibrate]]`` entry (cron in the file's timezone,
    parameters from the entry); nothing is sent to an API."""
    from prefect.schedules import Schedule

    cfg = config if isinstance(config, SchedulesConfig) else load_config(config)
    out = []
    for s in cfg.calibrate:
        params = {"asset": s.asset, "source": s.source, "path": s.path, "window": s.window,
                  "sampler": s.sampler, "sampler_overrides": s.sampler_overrides, "gate": s.gate,
                  "alpha_variant": s.alpha_variant, "max_prior_strength": s.max_prior_strength, "z": s.z,
                  "promote": s.promote, "observation": s.observation}
        out.append(scheduled_calibration.to_deployment(
            name=deployment_name(s.asset), schedule=Schedule(cron=s.cron, timezone=cfg.timezone),
            parameters=params, tags=["mmcal", "calibrate", s.asset],
            description=f"Calibrate {s.asset} ({s.source} {s.path}, window {s.window}) on '{s.cron}' "
                        f"{cfg.timezone}, then compare with the champion."))
    return out


def serve(config: SchedulesConfig | str | os.PathLike | None = None, limit: int | None = None) -> None:
    """Serve every deployment of the config until SIGINT or SIGTERM (a Prefect runner:
    registers them with the API and runs their scheduled flow runs in subprocesses).

    On the first signal the runner stops polling, cancels the flow runs in flight
    (state ``Cancelled``, "Runner is shutting down.") and pauses the deployments'
    schedules, as Prefect's ``serve`` means to; a second signal exits at once. Not
    Prefect's ``serve`` itself: its SIGTERM handler (Prefect 3.8) calls ``Runner.stop``
    from inside the event loop, which only creates the ``astop`` coroutine (never
    awaited), then ``sys.exit``: a run in flight had its process killed and stayed
    ``Running`` in the API for good, and the exit could log an asyncio traceback."""
    from prefect.runner import Runner

    runner = Runner(limit=limit, pause_on_shutdown=True)
    for d in build_deployments(config):
        runner.add_deployment(d)       # registers it with the API (before the runner's loop starts)
    asyncio.run(_run_until_signalled(runner))


async def _run_until_signalled(runner) -> None:
    """``runner.start()``, stopped gracefully (``runner.astop()``) by SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    signalled: list[str] = []
    stopping: list[asyncio.Task] = []

    async def stop(signame: str) -> None:
        logging.getLogger("prefect.runner").info(
            "%s received: stopping (flow runs in flight are cancelled, schedules paused) ...", signame)
        await runner.astop()

    def on_signal(signum: int, frame: Any = None) -> None:   # in the main thread, between two steps of the loop
        if signalled or not runner.started:
            raise KeyboardInterrupt       # a second signal, or one before the runner is up: at once
        signalled.append(signal.Signals(signum).name)
        loop.call_soon_threadsafe(lambda: stopping.append(loop.create_task(stop(signalled[0]))))

    runner.handle_sigterm = on_signal      # Runner.start installs this one for SIGTERM
    _cancel_only_unfinished(runner)
    previous = signal.signal(signal.SIGINT, on_signal)
    try:
        await runner.start()
        for t in stopping:
            await t
    finally:
        signal.signal(signal.SIGINT, previous)


def _cancel_only_unfinished(runner) -> None:
    """Make ``runner.cancel_all`` (called by ``astop``) leave alone the flow runs that
    have already finished: Prefect's cancels every run whose process it still tracks,
    so a run that had just Completed while its process exited turned Cancelled.
    Needs the runner's process and cancellation managers (Prefect 3.8, set when the
    runner starts); without them Prefect's own ``cancel_all`` runs."""
    prefects = runner.cancel_all

    async def cancel_all() -> None:
        procs, cancels = getattr(runner, "_process_manager", None), getattr(runner, "_cancellation_manager", None)
        if not (hasattr(procs, "flow_run_ids") and hasattr(cancels, "cancel")):
            return await prefects()
        logger = logging.getLogger("prefect.runner")
        for flow_run_id in procs.flow_run_ids():
            try:
                fr = await runner._client.read_flow_run(flow_run_id)
                if fr.state is not None and fr.state.is_final():
                    logger.info("flow run '%s' already %s: left to exit", fr.name, fr.state.name)
                    continue
                await cancels.cancel(fr, state_msg="Runner is shutting down.")
            except Exception:
                logger.exception("could not cancel flow run %s", flow_run_id)

    runner.cancel_all = cancel_all


__all__ = ["CalibrationSchedule", "ScheduleConfigError", "SchedulesConfig", "build_deployments", "config_path",
           "deployment_name", "load_config", "scheduled_calibration", "serve"]
