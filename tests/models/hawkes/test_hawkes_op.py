"""Hawkes likelihood on the pytensor side (models.hawkes.op): the graph and the Op
equal the JAX likelihood and its gradient."""

from __future__ import annotations

import numpy as np
import pytest
from hawkes_cases import random_truth, with_ties

from models import hawkes as H


def test_pytensor_graph_and_op_equal_jax():
    import pytensor
    import pytensor.tensor as pt

    rng = np.random.default_rng(21)
    truth = random_truth(rng, 300)
    obs = with_ties(H.simulate(truth, rng), 0.05)
    p = truth.params()
    mu, n, b = pt.dtensor3("mu"), pt.dtensor3("n"), pt.dvector("b")
    vals = (p["mu"][None], p["n"][None], np.asarray(p["beta"]).reshape(1))
    ref_v, ref_g = H.loglik_value_and_grad(p, obs)
    # the graph on the python linker: the same graph under numba is 30-75 s of numba
    # compilation on a fresh machine
    for name, ll, mode in (("graph", H.loglik_pt(mu, n, b, obs, block=4), "FAST_COMPILE"),
                           ("op", H.loglik_op(mu, n, b, obs), "FAST_RUN"),
                           ("op-jax", H.loglik_op(mu, n, b, obs), "JAX")):
        f = pytensor.function([mu, n, b], [ll, *pytensor.grad(ll, [mu, n, b])], mode=mode)
        v, gm, gn, gb = f(*vals)
        assert float(v) == pytest.approx(float(ref_v), rel=1e-10), name
        np.testing.assert_allclose(gm[0], np.asarray(ref_g["mu"]), rtol=1e-8, err_msg=name)
        np.testing.assert_allclose(gn[0], np.asarray(ref_g["n"]), rtol=1e-8, err_msg=name)
        np.testing.assert_allclose(gb[0], float(ref_g["beta"]), rtol=1e-8, err_msg=name)

