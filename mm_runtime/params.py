"""The learned-parameter registry (issue #7): every parameter of the live quoter
with a tier, a conjugate family, a prior, a learned estimate and a stated origin.

This module starts with the contract between data and the registry, :class:`Evidence`:
the sufficient statistics of some data about one named parameter.  The historical
calibrator (``models.historical``) and the online side both produce it; the
registry turns it into a conjugate update of that parameter's family.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Evidence", "EVIDENCE_KINDS"]

EVIDENCE_KINDS = ("bernoulli", "poisson", "exponential", "values")
"""What an :class:`Evidence` carries:

``bernoulli``    ``successes`` out of ``trials`` (Beta families).
``poisson``      ``count`` events in ``exposure`` seconds (Gamma rate families).
``exponential``  ``count`` observations of an exponential variable summing to
                 ``total`` (Gamma rate of an exponential: κ from depths, β from lags).
``values``       ``values``: direct observations of the quantity (Normal,
                 LogNormal, Inverse-Gamma families).
"""


class Evidence(NamedTuple):
    """Sufficient statistics of data about one registry parameter ``name``.

    Build one with the class methods; ``weight`` scales the statistics (a soft or
    down-weighted update, 0 < weight <= 1), ``source`` says where it came from
    (shown by ``mmcal params``).
    """

    name: str
    kind: str
    successes: float = 0.0
    trials: float = 0.0
    count: float = 0.0
    exposure: float = 0.0
    total: float = 0.0
    values: tuple[float, ...] = ()
    weight: float = 1.0
    source: str = ""

    @classmethod
    def bernoulli(cls, name: str, successes: float, trials: float, *, weight: float = 1.0, source: str = "") -> Evidence:
        return cls(name, "bernoulli", successes=float(successes), trials=float(trials), weight=weight, source=source)

    @classmethod
    def poisson(cls, name: str, count: float, exposure: float, *, weight: float = 1.0, source: str = "") -> Evidence:
        return cls(name, "poisson", count=float(count), exposure=float(exposure), weight=weight, source=source)

    @classmethod
    def exponential(cls, name: str, count: float, total: float, *, weight: float = 1.0, source: str = "") -> Evidence:
        return cls(name, "exponential", count=float(count), total=float(total), weight=weight, source=source)

    @classmethod
    def of_values(cls, name: str, values, *, weight: float = 1.0, source: str = "") -> Evidence:
        return cls(name, "values", values=tuple(float(v) for v in values), weight=weight, source=source)
