"""The Hawkes log-likelihood on the pytensor side: the JAX sweep of
:mod:`models.hawkes.likelihood` wrapped as one Op with its exact gradient
(:class:`HawkesLogLikOp`, :func:`loglik_op`: the default likelihood of the PyMC
model), and the same block algorithm as a pure pytensor graph differentiated by
pytensor (:func:`loglik_pt`; :func:`pointwise_loglik_pt` for checks).

Parameters batched per asset: mu (A, 4, 2) events/s, n (A, 2, 2), beta (A,) 1/s.
The odd/even scan is Blelloch (1990). Compile times and design notes:
docs/models/hawkes.md, "The pytensor graph".
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.jax.dispatch import jax_funcify

from models.hawkes.layout import BlockArrays, LikArrays, prepare, prepare_blocks
from models.hawkes.likelihood import _jax_sweep, _loglik_batched, _pointwise, _total_blocks
from models.hawkes.observations import HawkesObs


PT_BLOCK = 16
"""Events per block for the pytensor graph (rows unrolled in the graph)."""


# --------------------------------------------------------------------------- pytensor graph
def linear_scan_pt(a, cs: Sequence, n: int) -> list:
    """Inclusive scans ``X_i = a_i X_{i-1} + c_i`` (X_{-1} = 0) in pytensor, for
    each 1-D ``c`` in ``cs`` sharing the factors ``a``; ``n`` is the static length.

    The odd/even recursion of Blelloch (1990) / ``jax.lax.associative_scan``:
    combine adjacent pairs, recurse on the n/2 pairs, fill in the even positions.
    O(n) work in ~2 log2(n) vectorised slice/elementwise steps, differentiable,
    and compiles to C, numba and JAX alike (no ``Scan`` op).
    """
    cs = list(cs)
    if n == 1:
        return cs
    m = n // 2
    a_e, a_o = a[0:2 * m:2], a[1:2 * m:2]
    odd = linear_scan_pt(a_e * a_o, [a_o * c[0:2 * m:2] + c[1:2 * m:2] for c in cs], m)  # X at 1, 3, ..
    ne = (n - 1) // 2                                          # even positions 2, 4, ...
    out = []
    for c, xo in zip(cs, odd):
        xe = pt.concatenate([c[0:1], a[2::2] * xo[:ne] + c[2::2]])           # n - m values
        inter = pt.stack([xe[:m], xo], axis=1).reshape((2 * m,))
        out.append(pt.concatenate([inter, xe[m:]]) if n % 2 else inter)
    return out


def _pt_carry_scan(p, e0, e1):
    """Across-block scan for the pytensor graph: a sequential ``pytensor.scan``
    over the nb = N/B blocks (compiles far faster than the odd/even
    :func:`linear_scan_pt`; docs/models/hawkes.md, "The pytensor graph")."""

    def step(pb, x0b, x1b, c0, c1):
        return pb * c0 + x0b, pb * c1 + x1b

    zero = pt.zeros((), dtype="float64")
    x, y = pytensor.scan(step, sequences=[p, e0, e1], outputs_info=[zero, zero],
                         return_updates=False)
    return x, y


def loglik_pt(mu, n, beta, obs: HawkesObs | BlockArrays, block: int = PT_BLOCK):
    """Symbolic total log-likelihood (pytensor scalar) for batched mu (A, 4, 2),
    n (A, 2, 2), beta (A,): the graph :func:`models.hawkes.model.build_model` uses
    with ``likelihood="graph"`` (same block algorithm as
    :func:`models.hawkes.likelihood.loglik_jax`, rows unrolled in the graph, the carry
    across blocks by :func:`_pt_carry_scan`). Differentiated by pytensor itself."""
    d = prepare_blocks(obs, block) if isinstance(obs, HawkesObs) else obs
    # the data enter as shared variables, not constants: pytensor's rewrites hash and
    # fold constants, which makes compilation O(N) slow (docs/models/hawkes.md)
    dc = BlockArrays(*(None if v is None else
                       (pytensor.shared(v, borrow=True) if np.ndim(v) == 2 else pt.constant(v))
                       for v in d))
    return _total_blocks(pt, _pt_carry_scan, mu, n, beta, dc, rows=d.dt.shape[0])


def _pt_add_at(x, idx, v):
    return pt.inc_subtensor(x[idx], v)


def _pt_scan_cols(a, c):
    """(N, k) adapter of :func:`linear_scan_pt` for :func:`_pointwise`."""
    N = int(a.type.shape[0])
    cols = linear_scan_pt(a, [c[:, k] for k in range(2)], N)
    return pt.stack(cols, axis=1)


def pointwise_loglik_pt(mu, n, beta, obs_or_arrays: HawkesObs | LikArrays):
    """Symbolic per-event log-likelihood (pytensor) for batched mu (A, 4, 2),
    n (A, 2, 2), beta (A,) -- for checks; the model uses :func:`loglik_pt`."""
    d = prepare(obs_or_arrays) if isinstance(obs_or_arrays, HawkesObs) else obs_or_arrays
    dc = LikArrays(*(None if v is None else pt.constant(v) for v in d))
    return _pointwise(pt, _pt_scan_cols, _pt_add_at, mu, n, beta, dc)


# --------------------------------------------------------------------------- the JAX likelihood as an Op
class HawkesLogLikOp(Op):
    """Total Hawkes log-likelihood of fixed data as a pytensor Op over
    (mu (A,4,2), n (A,2,2), beta (A,)) -> scalar, computed by the JAX sweep of
    :func:`models.hawkes.likelihood.loglik_jax` (the default likelihood of
    :func:`models.hawkes.model.build_model`).

    ``perform`` calls the jitted JAX function (PyMC's sampler, C backend);
    ``jax_funcify`` inlines it (NumPyro, nutpie's jax backend); nutpie's numba
    backend calls ``perform`` in numba object mode. The gradient is
    :class:`HawkesGradOp` (the exact forward-sensitivity gradient). ``key`` (a
    hash of the data) makes two Ops equal only for identical data.
    """

    __props__ = ("key",)

    def __init__(self, data: BlockArrays, key: str):
        self.data = data
        self.key = key
        self._jdata = None

    def __getstate__(self):
        st = dict(self.__dict__)
        st["_jdata"] = None
        return st

    def jdata(self) -> BlockArrays:
        if self._jdata is None:
            self._jdata = BlockArrays(*(None if v is None else jnp.asarray(v) for v in self.data))
        return self._jdata

    def make_node(self, mu, n, beta):
        ins = [pt.as_tensor_variable(x).astype("float64") for x in (mu, n, beta)]
        return Apply(self, ins, [pt.dscalar()])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = np.asarray(_value_and_grad_cached(self, inputs)[0], dtype=np.float64)

    def grad(self, inputs, output_grads):
        g = output_grads[0]
        g_mu, g_n, g_beta = HawkesGradOp(self.data, self.key)(*inputs)
        return [g * g_mu, g * g_n, g * g_beta]


class HawkesGradOp(Op):
    """Gradient of :class:`HawkesLogLikOp` w.r.t. (mu, n, beta)."""

    __props__ = ("key",)

    def __init__(self, data: BlockArrays, key: str):
        self.data = data
        self.key = key
        self._jdata = None

    __getstate__ = HawkesLogLikOp.__getstate__
    jdata = HawkesLogLikOp.jdata

    def make_node(self, mu, n, beta):
        ins = [pt.as_tensor_variable(x).astype("float64") for x in (mu, n, beta)]
        return Apply(self, ins, [x.type() for x in ins])

    def perform(self, node, inputs, outputs):
        _, grads = _value_and_grad_cached(self, inputs)
        for o, g in zip(outputs, grads):
            o[0] = np.array(g, dtype=np.float64)


_LAST: dict[str, tuple] = {}


def _value_and_grad_cached(op, inputs):
    """Value and gradient at ``inputs``, computed together once: PyMC evaluates
    the likelihood Op and its gradient Op at the same point in every leapfrog step
    (docs/models/hawkes.md, "The Op's value/gradient cache"). One entry per data key."""
    key = op.key
    sig = b"".join(np.ascontiguousarray(x, dtype=np.float64).tobytes() for x in inputs)
    hit = _LAST.get(key)
    if hit is not None and hit[0] == sig:
        return hit[1]
    val, grads = _value_and_grad_batched_jit(*inputs, op.jdata())
    out = (float(val), tuple(np.asarray(g, dtype=np.float64) for g in grads))
    _LAST[key] = (sig, out)
    return out


_value_and_grad_batched_jit = jax.jit(lambda mu, n, beta, d: _jax_sweep(mu, n, beta, d, grad=True))


@jax_funcify.register(HawkesLogLikOp)
def _jax_funcify_loglik(op, **kwargs):
    d = op.jdata()

    def hawkes_loglik(mu, n, beta):
        return _loglik_batched(mu, n, beta, d)

    return hawkes_loglik


@jax_funcify.register(HawkesGradOp)
def _jax_funcify_grad(op, **kwargs):
    d = op.jdata()

    def hawkes_loglik_grad(mu, n, beta):
        return _jax_sweep(mu, n, beta, d, grad=True)[1]

    return hawkes_loglik_grad


def _data_key(d: BlockArrays) -> str:
    h = hashlib.sha256()
    for v in d:
        if v is not None:
            h.update(np.ascontiguousarray(v).tobytes())
            h.update(str(v.shape).encode())
        else:
            h.update(b"none")
    return h.hexdigest()[:20]


def loglik_op(mu, n, beta, obs: HawkesObs, block: int | None = None):
    """Symbolic total log-likelihood through :class:`HawkesLogLikOp`."""
    d = prepare_blocks(obs, block)
    return HawkesLogLikOp(d, _data_key(d))(mu, n, beta)

