"""Option checks shared by the commands: the sampler and gate options of ``fit`` and
``calibrate`` (:func:`fit_configs`), their observation-rule options
(:func:`observation_options`, :func:`observation_settings`), the kill switch's options
of ``live`` and ``paper`` (:func:`guard_options`, :func:`guard_config`), a choice among
names, a data window."""

from __future__ import annotations

import math
from typing import Any, Optional

from flows.cli.app import CliError

SAMPLERS = ("pymc", "numpyro", "nutpie")
INFERENCE = ("auto", "nuts", "laplace")
"""``--inference``: NUTS, the Laplace approximation checked by PSIS, or auto (models.approx)."""


def fit_configs(sampler, draws, tune, chains, seed, progress, max_r_hat, min_ess, inference=None,
                max_divergences=None):
    """SamplerConfig and GateConfig from the options (defaults: the configs' own): the
    one place where ``fit`` and ``calibrate`` turn their sampling and gate options
    into configs. Draws x chains whose trace cannot fit in the memory available are
    refused here (``models.sampling.sample`` checks again with the model's size)."""
    from models.sampling import (SAMPLE_STATS_PER_DRAW, GateConfig, SampleSizeError, SamplerConfig,
                                 check_trace_fits)

    if sampler is not None and sampler not in SAMPLERS:
        raise CliError(f"--sampler: unknown sampler {sampler!r}; one of {', '.join(SAMPLERS)}")
    if inference is not None and inference not in INFERENCE:
        raise CliError(f"--inference: unknown method {inference!r}; one of {', '.join(INFERENCE)}")
    for opt, v, lo in (("--draws", draws, 1), ("--tune", tune, 0), ("--chains", chains, 1)):
        if v is not None and v < lo:
            raise CliError(f"{opt}: must be >= {lo}, got {v}")
    if max_r_hat is not None and not (math.isfinite(max_r_hat) and max_r_hat >= 1.0):
        raise CliError(f"--max-r-hat: must be a finite number >= 1, got {max_r_hat}")
    if min_ess is not None and not (math.isfinite(min_ess) and min_ess >= 0):
        raise CliError(f"--min-ess: must be a finite number >= 0, got {min_ess}")
    if max_divergences is not None and max_divergences < 0:
        raise CliError(f"--max-divergences: must be >= 0, got {max_divergences}")
    kw: dict[str, Any] = {"progressbar": progress}
    for k, v in (("sampler", sampler), ("draws", draws), ("tune", tune), ("chains", chains),
                 ("seed", seed), ("inference", inference)):
        if v is not None:
            kw[k] = v
    gkw: dict[str, Any] = {}
    if max_r_hat is not None:
        gkw["max_r_hat"] = max_r_hat
    if min_ess is not None:
        gkw["min_ess_bulk"] = gkw["min_ess_tail"] = min_ess
    if max_divergences is not None:
        gkw["max_divergences"] = max_divergences
    sc = SamplerConfig(**kw)
    try:  # the smallest trace any model makes (one parameter and the sampler statistics) must fit
        check_trace_fits(sc.draws, sc.chains, 1 + min(SAMPLE_STATS_PER_DRAW.values()),
                         "at least one parameter and the sampler statistics")
    except SampleSizeError as e:
        raise CliError(f"--draws/--chains: {e}") from None
    return sc, GateConfig(**gkw)


OBSERVATION_FLAGS: dict[str, str] = {
    "bar_seconds": "--bar-seconds",
    "volatility_estimator": "--volatility-estimator",
    "rv_sample_seconds": "--rv-sample-seconds",
    "markout_horizon_s": "--markout-horizon",
    "informed_threshold_bps": "--informed-threshold",
    "depth_grid_bps": "--depth-grid",
    "repost_interval_s": "--repost-interval",
    "queue_levels": "--queue-levels",
    "markout_horizons_s": "--markout-horizons",
    "queue_power": "--queue-power",
}
"""ObservationConfig field -> the ``fit`` / ``calibrate`` flag that sets it."""


def observation_options() -> dict[str, Any]:
    """The observation-rule options of ``fit`` and ``calibrate`` (typer defaults, one
    set for both commands): unset = the ObservationConfig default (the bar length:
    chosen from the data)."""
    import typer

    return {
        "bar_seconds": typer.Option(None, "--bar-seconds", help="Volatility bar length, s (default: the "
                                    "shortest with >= 10 price moves per bar on average)."),
        "volatility_estimator": typer.Option(None, "--volatility-estimator", help="Bar variance: medrv "
                                             "(default) | minrv | bipower (jump-robust) | realized."),
        "rv_sample_seconds": typer.Option(None, "--rv-sample-seconds", help="Grid on which the mid is sampled "
                                          "for the bar variance, s (default 1; 0.1 where the mid moves in nearly "
                                          "every 0.1 s interval: `mmcal data inspect` says so)."),
        "markout_horizon": typer.Option(None, "--markout-horizon", help="Markout horizon h of a fill, s "
                                        "(default 1); the live quoter resolves markouts at the same h."),
        "informed_threshold": typer.Option(None, "--informed-threshold", help="A fill is informed when its "
                                           "markout at h exceeds this, bps (default 1)."),
        "depth_grid": typer.Option(None, "--depth-grid", help="Depths of the hypothetical passive quotes, bps, "
                                   "comma-separated (default 0.5,1,2,3,5,7.5,10,15,20)."),
        "repost_interval": typer.Option(None, "--repost-interval", help="Re-post interval of the hypothetical "
                                        "quotes, s (default 1)."),
        "queue_levels": typer.Option(None, "--queue-levels", help="Queue orders at the touch and 1..K ticks "
                                     "behind it: K (default 3)."),
        "markout_horizons": typer.Option(None, "--markout-horizons", help="Markout horizons after a queue "
                                         "order's fill, s, comma-separated (default 0.5,1,5,30)."),
        "queue_power": typer.Option(None, "--queue-power", help="L2 queue estimate: a size decrease is ahead of "
                                    "us with probability f(ahead)/(f(ahead)+f(behind)), f(x)=x**P (default 2)."),
    }


def observation_settings(bar_seconds=None, volatility_estimator=None, markout_horizon=None,
                         informed_threshold=None, depth_grid=None, repost_interval=None,
                         queue_levels=None, markout_horizons=None, queue_power=None,
                         rv_sample_seconds=None) -> dict[str, Any]:
    """The ObservationConfig fields the flags set (only those given), validated: a
    bad value is a :class:`CliError` naming the flag."""
    from pydantic import ValidationError

    from models.data.observations import ObservationConfig

    settings: dict[str, Any] = {}
    if depth_grid is not None:
        try:
            settings["depth_grid_bps"] = tuple(float(x) for x in str(depth_grid).split(",") if x.strip())
        except ValueError:
            raise CliError(f"--depth-grid: expected comma-separated numbers (bps), got {depth_grid!r}") from None
    if markout_horizons is not None:
        try:
            settings["markout_horizons_s"] = tuple(float(x) for x in str(markout_horizons).split(",") if x.strip())
        except ValueError:
            raise CliError(f"--markout-horizons: expected comma-separated numbers (s), "
                           f"got {markout_horizons!r}") from None
    for field, v in (("bar_seconds", bar_seconds), ("volatility_estimator", volatility_estimator),
                     ("markout_horizon_s", markout_horizon), ("informed_threshold_bps", informed_threshold),
                     ("repost_interval_s", repost_interval), ("queue_levels", queue_levels),
                     ("queue_power", queue_power), ("rv_sample_seconds", rv_sample_seconds)):
        if v is not None:
            settings[field] = v
    try:
        ObservationConfig.model_validate(settings)
    except ValidationError as e:
        err = e.errors()[0]
        field = err["loc"][0] if err["loc"] else next(iter(settings), "")
        flag = OBSERVATION_FLAGS.get(str(field), "observation rules")
        raise CliError(f"{flag}: {err['msg'].removeprefix('Value error, ')}") from None
    return settings


def guard_options() -> dict[str, Any]:
    """The kill switch's options of ``live`` and ``paper`` (mm_runtime.guards; typer
    defaults, one set for both commands): unset = the documented default."""
    import typer

    return {
        "max_daily_loss": typer.Option(None, "--max-daily-loss", help="Kill switch: loss since 00:00 UTC, marked "
                                       "to market, as quote currency (500) or a percentage of the capital (2%) "
                                       "(default: the registry's calibrated max_daily_loss_fraction, else "
                                       "capital x Kelly fraction x 2 sigma_daily)."),
        "max_drawdown": typer.Option(None, "--max-drawdown", help="Kill switch: fall from the equity peak, quote "
                                     "currency (1500) or a percentage of the capital (5%) (default: the "
                                     "registry's calibrated max_drawdown, else the 99% VaR over 5 days)."),
        "max_position_hard": typer.Option(None, "--max-position-hard", help="Kill switch: |position| limit, base "
                                          "units (default 1.5 x the ladder's max_position)."),
        "max_notional": typer.Option(None, "--max-notional", help="Kill switch: |position| x mid limit, quote "
                                     "currency (default: capital x leverage)."),
        "stale_feed_s": typer.Option(None, "--stale-feed-s", help="Kill switch: seconds without a market update "
                                     "(default 30)."),
        "max_quote_rate": typer.Option(None, "--max-quote-rate", help="Kill switch: orders placed per second over "
                                       "10 s (default 50)."),
        "no_guards": typer.Option(False, "--no-guards", help="Switch the kill switch off (not advised)."),
    }


GUARD_FLAGS = {"max_daily_loss": "--max-daily-loss", "max_drawdown": "--max-drawdown",
               "max_position": "--max-position-hard", "max_notional": "--max-notional",
               "stale_feed_s": "--stale-feed-s", "max_quote_rate": "--max-quote-rate"}
"""GuardConfig field -> the ``live`` / ``paper`` flag that sets it."""


def guard_config(max_daily_loss=None, max_drawdown=None, max_position_hard=None, max_notional=None,
                 stale_feed_s=None, max_quote_rate=None, no_guards=False):
    """The kill switch's :class:`~mm_runtime.guards.GuardConfig` from the options; a bad
    value is a :class:`CliError` naming the flag."""
    from pydantic import ValidationError

    from mm_runtime.guards import GuardConfig, parse_limit

    kw: dict[str, Any] = {"enabled": not no_guards}
    for field, v in (("max_daily_loss", max_daily_loss), ("max_drawdown", max_drawdown)):
        if v is not None:
            try:
                parse_limit(v, GUARD_FLAGS[field])
            except ValueError as e:
                raise CliError(str(e)) from None
            kw[field] = v
    for field, v in (("max_position", max_position_hard), ("max_notional", max_notional),
                     ("stale_feed_s", stale_feed_s), ("max_quote_rate", max_quote_rate)):
        if v is not None:
            if not (math.isfinite(v) and v > 0):
                raise CliError(f"{GUARD_FLAGS[field]}: must be a finite number > 0, got {v}")
            kw[field] = v
    try:
        return GuardConfig(**kw)
    except ValidationError as e:  # pragma: no cover - every field is checked above
        err = e.errors()[0]
        raise CliError(f"{GUARD_FLAGS.get(str(err['loc'][0]), 'guards')}: {err['msg']}") from None


def check_choice(opt: str, value: Optional[str], choices) -> None:
    if value is not None and value not in choices:
        raise CliError(f"{opt}: unknown choice {value!r}; one of {', '.join(choices)}")


def check_window(opt: str, window: Optional[str]) -> str:
    from models.data.tables import WindowSpec

    try:
        return str(WindowSpec.parse(window)) if window else ""
    except ValueError as e:
        raise CliError(f"{opt}: {e}") from None
