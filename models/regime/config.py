"""The regime model's config: observation rules and prior hyperparameters
(:class:`RegimeConfig`), part of the model version.

Units: seconds (bar length, regime duration), log realized variance in natural
log units. Priors explained in docs/models/regime.md.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mm_runtime.vocabulary import REGIMES
from models.data.observations import ObservationConfig

MODEL_NAME = "regime"
K = len(REGIMES)
LOG_1E4 = math.log(1e4)


class RegimeConfig(BaseModel):
    """Observation rules and prior hyperparameters (docs/models/regime.md). Part of the
    model version (``idata.attrs["model_version"]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    observation: ObservationConfig = Field(default_factory=ObservationConfig)
    regime_duration_s: float = Field(180.0, gt=0.0,
                                     description="prior mean time a regime lasts (s): sets the "
                                                 "diagonal concentration, see sticky_concentration()")
    offdiag_concentration: float = Field(1.0, gt=0.0,
                                         description="Dirichlet concentration of P[i, j], j != i")
    learn_stickiness: bool = Field(False, description="learn the diagonal concentration (shared by "
                                                      "the rows) instead of fixing it")
    stickiness_log_sd: float = Field(1.0, gt=0.0, description="prior log-sd of the learned "
                                                              "(diagonal - offdiag) concentration")
    mean_lowest_sd_scale: float = Field(1.0, gt=0.0,
                                        description="prior sd of the lowest mean, in units of sd(log_rv)")
    gap_shape: float = Field(2.0, gt=1.0, description="Gamma shape of the ordered-mean gaps")
    sd_pooled_log_sd: float = Field(0.5, gt=0.0, description="prior sd of log_rv_sd_pooled")
    sd_tau_scale: float = Field(0.25, gt=0.0, description="HalfNormal scale of log_rv_sd_tau")
    censor_floored: bool = Field(True, description="treat floored bars as left-censored (else as data)")
    likelihood: Literal["op", "scan"] = Field(
        "op", description="op: the JAX forward algorithm with its exact gradient as one pytensor Op "
                          "(models.regime.op); scan: the pytensor.scan reference graph, differentiated "
                          "by pytensor (docs/models/regime.md, \"Likelihood\")")

    def sticky_concentration(self, bar_seconds: float) -> float:
        """Diagonal Dirichlet concentration kappa for bars of ``bar_seconds``: the prior
        mean stay probability per bar, kappa / (kappa + 3 offdiag), equals
        ``p = 1 - bar_seconds / regime_duration_s`` (a geometric stay of mean
        duration ``regime_duration_s``), floored at p = 0.5 (kappa >= 3 offdiag)."""
        p = max(1.0 - bar_seconds / self.regime_duration_s, 0.5)
        return (K - 1) * self.offdiag_concentration * p / (1.0 - p)
