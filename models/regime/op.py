"""The regime HMM likelihood on the pytensor side: the JAX forward algorithm of
:mod:`.likelihood` wrapped as one Op with its exact gradient (the likelihood of
:func:`models.regime.model.build_model`, hence of every sampler).

``perform`` calls the jitted JAX functions (PyMC's own NUTS, C backend; nutpie's
numba backend in object mode); ``jax_funcify`` inlines them (NumPyro, nutpie's JAX
backend, the pointwise log-likelihood). Design and timings: docs/models/regime.md,
"Likelihood".
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.jax.dispatch import jax_funcify

from .likelihood import RegimeData, loglik_terms, loglik_terms_jit, loglik_vjp, loglik_vjp_jit

_N_DATA = 3  # y, censored, censor_log_rv: inputs without a gradient


def _data_inputs(y, censored, censor_log_rv) -> list:
    return [pt.as_tensor_variable(y).astype("float64"), pt.as_tensor_variable(censored).astype("bool"),
            pt.as_tensor_variable(censor_log_rv).astype("float64")]


def _params(m, s, P, pi) -> list:
    return [pt.as_tensor_variable(x).astype("float64") for x in (m, s, P, pi)]


class RegimeLogLikOp(Op):
    """(y (T,), censored (T,) bool, censor_log_rv (), m (K,), s (K,), P (K, K),
    pi (K,)) -> c (T,): the per-bar one-step-ahead log densities
    (:func:`.likelihood.loglik_terms`). Gradient w.r.t. (m, s, P, pi):
    :class:`RegimeLogLikGradOp` (the exact vector-Jacobian product); the data
    inputs are disconnected."""

    __props__ = ()

    def make_node(self, y, censored, censor_log_rv, m, s, P, pi):
        ins = _data_inputs(y, censored, censor_log_rv) + _params(m, s, P, pi)
        return Apply(self, ins, [ins[0].type()])

    def perform(self, node, inputs, outputs):
        y, cen, cv, *params = inputs
        outputs[0][0] = np.asarray(loglik_terms_jit(*params, RegimeData(y, cen, cv)), dtype=np.float64)

    def connection_pattern(self, node):
        return [[False]] * _N_DATA + [[True]] * 4

    def grad(self, inputs, output_grads):
        grads = RegimeLogLikGradOp()(*inputs, output_grads[0])
        return [DisconnectedType()() for _ in range(_N_DATA)] + list(grads)


class RegimeLogLikGradOp(Op):
    """(y, censored, censor_log_rv, m, s, P, pi, g (T,)) -> the gradients of
    ``sum_t g_t c_t`` w.r.t. (m, s, P, pi)."""

    __props__ = ()

    def make_node(self, y, censored, censor_log_rv, m, s, P, pi, g):
        ins = (_data_inputs(y, censored, censor_log_rv) + _params(m, s, P, pi)
               + [pt.as_tensor_variable(g).astype("float64")])
        return Apply(self, ins, [x.type() for x in ins[_N_DATA:_N_DATA + 4]])

    def perform(self, node, inputs, outputs):
        y, cen, cv, m, s, P, pi, g = inputs
        grads = loglik_vjp_jit(m, s, P, pi, g, RegimeData(y, cen, cv))
        for o, gr in zip(outputs, grads):
            o[0] = np.asarray(gr, dtype=np.float64)


@jax_funcify.register(RegimeLogLikOp)
def _jax_funcify_loglik(op, **kwargs):
    def regime_loglik_terms(y, censored, censor_log_rv, m, s, P, pi):
        return loglik_terms(m, s, P, pi, RegimeData(y, censored, censor_log_rv))

    return regime_loglik_terms


@jax_funcify.register(RegimeLogLikGradOp)
def _jax_funcify_grad(op, **kwargs):
    def regime_loglik_vjp(y, censored, censor_log_rv, m, s, P, pi, g):
        return loglik_vjp(m, s, P, pi, g, RegimeData(y, censored, censor_log_rv))

    return regime_loglik_vjp


def loglik_op(y, m, s, P, pi, censored: np.ndarray | None = None, censor_log_rv: float | None = None):
    """Symbolic per-bar log densities (T,) of the bars ``y`` through
    :class:`RegimeLogLikOp`; bars flagged ``censored`` (numpy bool, or None for none)
    use the censored density at ``censor_log_rv``."""
    if censored is None or not np.any(censored):
        cen, cv = pt.zeros_like(pt.as_tensor_variable(y), dtype="bool"), 0.0
    else:
        cen, cv = np.asarray(censored, bool), float(censor_log_rv)
    return RegimeLogLikOp()(y, cen, cv, m, s, P, pi)
