"""Conjugate summaries: the JSON form of each prior in a bundle's ``params``.

Each summary is ``{"family": …, …parameters}`` (DESIGN.md section 5):

=====================  ====================================================  =========
family                 parameters (support)                                  mean
=====================  ====================================================  =========
beta                   a > 0, b > 0                                          a/(a+b)
gamma                  shape > 0, rate > 0                                   shape/rate
normal                 mu, sigma > 0, obs_sigma > 0 (optional)               mu
inverse_gamma          shape > 0, scale > 0, mu (optional known mean)        scale/(shape-1)
normal_inverse_gamma   mu, lam > 0, shape > 0, scale > 0                     mu
lognormal              mu, sigma > 0 (log θ ~ N(mu, sigma²))                 exp(mu+sigma²/2)
dirichlet              concentration: list, each > 0                         c/sum(c)
=====================  ====================================================  =========

All numbers must be finite.  Moments and updates of the families:
:mod:`mm_runtime.conjugate`; the exporter's moment matching: ``models.export``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "BetaSummary",
    "GammaSummary",
    "NormalSummary",
    "InverseGammaSummary",
    "NormalInverseGammaSummary",
    "LogNormalSummary",
    "DirichletSummary",
    "ConjugateSummary",
    "PositiveSummary",
    "check_keys",
]


def check_keys(tree: dict, expected, where: str, what: str) -> None:
    """Raise ``ValueError`` (one line naming ``where``) when ``tree`` misses a key of
    ``expected`` or has another: the key checks of the bundle's parameter trees."""
    missing = [k for k in expected if k not in tree]
    if missing:
        raise ValueError(f"{where}.{missing[0]}: missing {what} '{missing[0]}'")
    extra = [k for k in tree if k not in expected]
    if extra:
        raise ValueError(f"{where}.{extra[0]}: unknown {what} '{extra[0]}' (expected {list(expected)})")


def _is_none(v: Any) -> bool:
    """Optional summary fields are left out of the document when unset, so that a
    loaded bundle dumps to the same bytes (and checksum) as the file it came from."""
    return v is None


Pos = Annotated[float, Field(gt=0)]
Finite = float  # finiteness is enforced by ``allow_inf_nan=False`` on every model


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# ----------------------------------------------------------------------------- summaries
class BetaSummary(_Model):
    family: Literal["beta"] = "beta"
    a: Pos
    b: Pos

    def mean(self) -> float:
        return self.a / (self.a + self.b)

    def strength(self) -> float:
        return self.a + self.b


class GammaSummary(_Model):
    family: Literal["gamma"] = "gamma"
    shape: Pos
    rate: Pos

    def mean(self) -> float:
        return self.shape / self.rate

    def strength(self) -> float:
        return self.shape


class NormalSummary(_Model):
    family: Literal["normal"] = "normal"
    mu: Finite
    sigma: Pos
    obs_sigma: Pos | None = Field(None, exclude_if=_is_none)

    def mean(self) -> float:
        return self.mu


class InverseGammaSummary(_Model):
    family: Literal["inverse_gamma"] = "inverse_gamma"
    shape: Pos
    scale: Pos
    mu: Finite | None = Field(None, exclude_if=_is_none)

    def mean(self) -> float:
        return self.scale / (self.shape - 1.0) if self.shape > 1.0 else math.inf


class NormalInverseGammaSummary(_Model):
    family: Literal["normal_inverse_gamma"] = "normal_inverse_gamma"
    mu: Finite
    lam: Pos
    shape: Pos
    scale: Pos

    def mean(self) -> float:
        return self.mu

    def predictive(self) -> tuple[float, float, float]:
        """(df, loc, scale) of the Student-t posterior predictive of one observation."""
        df = 2.0 * self.shape
        scale = math.sqrt(self.scale * (1.0 + 1.0 / self.lam) / self.shape)
        return df, self.mu, scale


class LogNormalSummary(_Model):
    family: Literal["lognormal"] = "lognormal"
    mu: Finite
    sigma: Pos

    def mean(self) -> float:
        return math.exp(self.mu + 0.5 * self.sigma**2)

    def median(self) -> float:
        return math.exp(self.mu)


class DirichletSummary(_Model):
    family: Literal["dirichlet"] = "dirichlet"
    concentration: Annotated[list[Pos], Field(min_length=2)]

    def mean(self) -> list[float]:
        s = sum(self.concentration)
        return [c / s for c in self.concentration]


ConjugateSummary = Annotated[
    Union[
        BetaSummary,
        GammaSummary,
        NormalSummary,
        InverseGammaSummary,
        NormalInverseGammaSummary,
        LogNormalSummary,
        DirichletSummary,
    ],
    Field(discriminator="family"),
]
"""Any conjugate summary, discriminated by ``family``."""

PositiveSummary = Annotated[Union[GammaSummary, LogNormalSummary], Field(discriminator="family")]
_SUMMARY_ADAPTER: TypeAdapter = TypeAdapter(ConjugateSummary)
