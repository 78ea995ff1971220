"""Evidence about one registry parameter and its conjugate update.

:class:`Evidence` holds the sufficient statistics of some data about one named
parameter (produced by ``models.historical`` and by the online side);
:func:`check_evidence` refuses malformed or non-conjugate evidence, naming the
parameter and the field; :func:`_apply` folds checked evidence into a posterior
(conjugate updates of :mod:`mm_runtime.conjugate` only).

Families, evidence kinds and their pairing: docs/runtime/params.md.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import _checks as _c
from ..conjugate import (
    BetaBernoulli,
    BetaParams,
    GammaExponential,
    GammaParams,
    GammaPoisson,
    InverseGammaKnownMean,
    InverseGammaParams,
    LogNormal,
    NIGParams,
    NormalKnownVariance,
    NormalParams,
)

__all__ = ["Evidence", "EVIDENCE_KINDS", "FAMILIES", "CONJUGATE_KINDS", "check_evidence"]

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


# ----------------------------------------------------------------------------- families
FAMILIES = ("beta", "gamma", "normal", "inverse_gamma", "lognormal")
"""Conjugate families a registry parameter can have (docs/runtime/params.md)."""

CONJUGATE_KINDS: dict[str, tuple[str, ...]] = {
    "beta": ("bernoulli",),
    "gamma": ("poisson", "exponential"),
    "normal": ("values",),
    "inverse_gamma": ("values",),
    "lognormal": ("values",),
}
"""Evidence kinds conjugate to each family (anything else is refused)."""

_FAMILY = {
    "beta": BetaBernoulli,
    "gamma": GammaPoisson,  # mean/std/interval/strength are shared by both Gamma families
    "normal": NormalKnownVariance,
    "inverse_gamma": InverseGammaKnownMean,
    "lognormal": LogNormal,
}
_PARAMS = {
    "beta": BetaParams,
    "gamma": GammaParams,
    "normal": NormalParams,
    "inverse_gamma": InverseGammaParams,
    "lognormal": NIGParams,
}


# ----------------------------------------------------------------------------- checking and folding
def check_evidence(ev: Evidence, family: str | None = None) -> Evidence:
    """Refuse malformed evidence (and, given ``family``, evidence not conjugate to it)
    with a ``ValueError`` naming the parameter and the field; returns ``ev``."""
    name = getattr(ev, "name", None)
    if not isinstance(ev, Evidence):
        raise ValueError(f"evidence: expected an Evidence, got {type(ev).__name__}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"evidence: name: must be a non-empty string, got {name!r}")
    where = f"evidence for {name!r}"
    if ev.kind not in EVIDENCE_KINDS:
        raise ValueError(f"{where}: kind: unknown kind {ev.kind!r} (expected one of {EVIDENCE_KINDS})")
    if family is not None:
        if family not in CONJUGATE_KINDS:
            raise ValueError(f"{where}: family: unknown family {family!r}")
        if ev.kind not in CONJUGATE_KINDS[family]:
            raise ValueError(
                f"{where}: kind: {ev.kind!r} is not conjugate to the {family} family of {name!r} "
                f"(expected {' or '.join(CONJUGATE_KINDS[family])})"
            )
    try:
        w = _c.real("weight", ev.weight)
        if not 0.0 < w <= 1.0:
            raise ValueError(f"weight must be in (0, 1], got {w}")
        if ev.kind == "bernoulli":
            s, t = _c.non_negative("successes", ev.successes), _c.non_negative("trials", ev.trials)
            if s > t:
                raise ValueError(f"successes ({s:g}) must be <= trials ({t:g})")
        elif ev.kind == "poisson":
            _c.non_negative("count", ev.count)
            _c.non_negative("exposure", ev.exposure)
        elif ev.kind == "exponential":
            n, tot = _c.non_negative("count", ev.count), _c.non_negative("total", ev.total)
            if n == 0 and tot > 0:
                raise ValueError(f"total ({tot:g}) must be 0 when count is 0")
        else:
            for i, x in enumerate(ev.values):
                v = _c.real(f"values[{i}]", x)
                if family == "lognormal" and not v > 0:
                    raise ValueError(f"values[{i}] must be > 0 for a lognormal, got {v}")
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    return ev


@partial(jax.jit, static_argnums=0)
def _fold_values(family, post, xs, n, w):
    """``n`` single-observation updates ``family.update(post, xs[i], w)``, in order."""
    return lax.fori_loop(0, n, lambda i, p: family.update(p, xs[i], w), post)


def _floats(p):
    return type(p)(*(float(x) for x in p))


def _apply(family: str, post, ev: Evidence):
    """The posterior after ``ev`` (already checked); conjugate updates only."""
    w = float(ev.weight)
    if ev.kind == "bernoulli":
        return _floats(BetaBernoulli.update_counts(post, w * ev.successes, w * (ev.trials - ev.successes)))
    if ev.kind == "poisson":
        return _floats(GammaPoisson.update(post, ev.count, ev.exposure, w))
    if ev.kind == "exponential":
        if ev.count == 0:
            return post
        # count observations summing to total = one update at their mean, weighted count:
        # shape + w·count, rate + w·total (GammaExponential.update, linear in the statistics)
        return _floats(GammaExponential.update(post, ev.total / ev.count, w * ev.count))
    if not ev.values:
        return post
    n = len(ev.values)
    size = 1 << (n - 1).bit_length()  # padded to a power of two: one compilation per size
    xs = np.ones(size)
    xs[:n] = ev.values
    p = _PARAMS[family](*(jnp.asarray(x, dtype=jnp.float64) for x in post))
    return _floats(_fold_values(_FAMILY[family], p, jnp.asarray(xs), n, w))

