"""Option checks shared by the commands: the sampler and gate options of ``fit`` and
``calibrate`` (:func:`fit_configs`), a choice among names, a data window."""

from __future__ import annotations

import math
from typing import Any, Optional

from flows.cli.app import CliError

SAMPLERS = ("pymc", "numpyro", "nutpie")


def fit_configs(sampler, draws, tune, chains, seed, progress, max_r_hat, min_ess):
    """SamplerConfig and GateConfig from the options (defaults: the configs' own): the
    one place where ``fit`` and ``calibrate`` turn their sampling and gate options
    into configs."""
    from models.sampling import GateConfig, SamplerConfig

    if sampler is not None and sampler not in SAMPLERS:
        raise CliError(f"--sampler: unknown sampler {sampler!r}; one of {', '.join(SAMPLERS)}")
    for opt, v, lo in (("--draws", draws, 1), ("--tune", tune, 0), ("--chains", chains, 1)):
        if v is not None and v < lo:
            raise CliError(f"{opt}: must be >= {lo}, got {v}")
    if max_r_hat is not None and not (math.isfinite(max_r_hat) and max_r_hat >= 1.0):
        raise CliError(f"--max-r-hat: must be a finite number >= 1, got {max_r_hat}")
    if min_ess is not None and not (math.isfinite(min_ess) and min_ess >= 0):
        raise CliError(f"--min-ess: must be a finite number >= 0, got {min_ess}")
    kw: dict[str, Any] = {"progressbar": progress}
    for k, v in (("sampler", sampler), ("draws", draws), ("tune", tune), ("chains", chains),
                 ("seed", seed)):
        if v is not None:
            kw[k] = v
    gkw: dict[str, Any] = {}
    if max_r_hat is not None:
        gkw["max_r_hat"] = max_r_hat
    if min_ess is not None:
        gkw["min_ess_bulk"] = gkw["min_ess_tail"] = min_ess
    return SamplerConfig(**kw), GateConfig(**gkw)


def check_choice(opt: str, value: Optional[str], choices) -> None:
    if value is not None and value not in choices:
        raise CliError(f"{opt}: unknown choice {value!r}; one of {', '.join(choices)}")


def check_window(opt: str, window: Optional[str]) -> str:
    from models.data.tables import WindowSpec

    try:
        return str(WindowSpec.parse(window)) if window else ""
    except ValueError as e:
        raise CliError(f"{opt}: {e}") from None
