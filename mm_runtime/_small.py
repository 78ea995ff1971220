"""Reductions over tiny static axes, unrolled into elementwise ops.

XLA on CPU runs every fusion as a separate kernel (~0.3–1 µs each on a small
machine) and ends a fusion at every reduce; a sum over 4 regimes written as
``x[0] + x[1] + x[2] + x[3]`` stays inside the surrounding elementwise fusion.
Used on axes whose length is a small compile-time constant (regimes, sides,
buckets, ladder levels).
"""

from __future__ import annotations

import functools
import operator

import jax.numpy as jnp

__all__ = ["usum", "umax", "uweighted"]


def _parts(x, axis: int):
    x = jnp.asarray(x)
    axis = axis % x.ndim
    return [x[(slice(None),) * axis + (i,)] for i in range(x.shape[axis])]


def usum(x, axis: int = 0):
    """Sum over a short static axis, unrolled."""
    return functools.reduce(operator.add, _parts(x, axis))


def umax(x, axis: int = 0):
    """Max over a short static axis, unrolled."""
    return functools.reduce(jnp.maximum, _parts(x, axis))


def uweighted(w, x):
    """Σ_i w[i]·x[i] over the leading axis of ``x`` (``w`` a short vector), unrolled."""
    return functools.reduce(operator.add, [w[i] * x[i] for i in range(x.shape[0])])
