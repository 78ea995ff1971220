"""Hawkes PyMC model (models.hawkes.model): the model's likelihood term, the
stationarity bijection and its Jacobian, and the model identity."""

from __future__ import annotations

import numpy as np
import pytest
from hawkes_cases import random_truth

from models import hawkes as H


def test_model_logp_contains_the_likelihood():
    """The PyMC model's likelihood term at a point equals loglik_jax of its
    deterministics there."""
    import pymc as pm

    rng = np.random.default_rng(3)
    truth = random_truth(rng, 300)
    obs = H.simulate(truth, rng)
    import pytensor

    model = H.build_model(obs)
    outs = model.replace_rvs_by_values([model[k] for k in ("hawkes_loglik", "hawkes_baseline",
                                                           "hawkes_branching", "hawkes_decay")])
    f = pytensor.function(model.value_vars, outs, on_unused_input="ignore", mode="FAST_COMPILE")
    ip = model.initial_point()
    noise = np.random.default_rng(0)
    ll, mu, n, beta = f(*[ip[v.name] + 0.1 * noise.standard_normal(np.shape(ip[v.name]))
                          for v in model.value_vars])
    assert float(ll) == pytest.approx(float(H.loglik_jax({"mu": mu, "n": n, "beta": beta}, obs)), rel=1e-12)
    assert isinstance(model, pm.Model)


# --------------------------------------------------------------------------- parameterisation
def test_branching_bijection_is_stationary_and_invertible():
    rng = np.random.default_rng(0)
    theta = rng.normal(0, 1.5, (5000, 4))
    n = H.branching_from_raw(theta)
    rho = np.max(np.abs(np.linalg.eigvals(n)), axis=-1)
    assert np.all((n > 0) & (n < 1)) and np.all(rho < 1)
    far = H.branching_from_raw(rng.normal(0, 6, (5000, 4)))   # extremes: still never beyond rho = 1
    assert np.all(np.max(np.abs(np.linalg.eigvals(far)), axis=-1) <= 1) and np.all((far >= 0) & (far <= 1))
    ok = np.all((n > 1e-12) & (n < 1 - 1e-12), axis=(1, 2))
    np.testing.assert_allclose(H.branching_to_raw(n[ok]), theta[ok], rtol=1e-6, atol=1e-6)
    # every stationary matrix in (0,1)^4 is reached
    m = np.array([[0.9, 0.05], [0.6, 0.3]])
    assert H.spectral_radius(m) < 1
    np.testing.assert_allclose(H.branching_from_raw(H.branching_to_raw(m)), m, rtol=1e-12)
    with pytest.raises(ValueError):
        H.branching_to_raw(np.array([[0.9, 0.5], [0.5, 0.3]]))   # rho > 1


def test_branching_log_jacobian():
    import pytensor
    import pytensor.tensor as pt

    th = pt.dvector("th")
    n, logjac, _ = H.branching_from_raw_pt(th)
    flat = n.reshape((4,))
    f = pytensor.function([th], [flat, logjac, pytensor.gradient.jacobian(flat, th)])
    for x in np.random.default_rng(1).normal(0, 1.5, (5, 4)):
        _, lj, J = f(x)
        assert lj == pytest.approx(np.log(abs(np.linalg.det(J))), rel=1e-9, abs=1e-9)


# --------------------------------------------------------------------------- identity
def test_version_hashes_the_config_and_every_module_of_the_package(monkeypatch):
    """``version`` changes with the config and with an edit to any module of the package."""
    from pathlib import Path

    import models.sampling as sampling

    obs = H.simulate(random_truth(np.random.default_rng(4), 200), 1)
    base = H.version(obs=obs)
    assert base == H.version(H.HawkesConfig(), obs) and base.startswith("hawkes-")
    assert H.version(H.HawkesConfig(likelihood="graph"), obs) != base
    assert H.version(H.HawkesConfig(priors=H.HawkesPriors(decay_median=2.0)), obs) != base
    files = sorted(Path(H.__file__).parent.glob("*.py"))
    assert {f.stem for f in files} >= {"__init__", "observations", "layout", "likelihood", "op", "model",
                                       "posterior"}
    real = sampling._file_sha
    for f in files:
        monkeypatch.setattr(sampling, "_file_sha",
                            lambda path, f=f: ("0" * 64) if Path(path) == f else real(path))
        assert H.version(obs=obs) != base, f.name
    monkeypatch.setattr(sampling, "_file_sha", real)
    assert H.version(obs=obs) == base
    with pytest.raises(ValueError, match="needs obs"):
        H.version()


def test_config_is_frozen_and_strict():
    cfg = H.HawkesConfig()
    assert cfg.priors == H.HawkesPriors() and cfg.likelihood == "op"
    with pytest.raises(Exception):
        H.HawkesConfig(likelihood="other")
    with pytest.raises(Exception):
        H.HawkesConfig(prior=H.HawkesPriors())
    with pytest.raises(Exception):
        cfg.likelihood = "graph"
