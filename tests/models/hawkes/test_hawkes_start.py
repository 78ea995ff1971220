"""Where the one-asset Hawkes model's chains start (models.hawkes.start) and the
decay floor: every chain of every seed starts at the mode, and the decay prior is
the LogNormal truncated at 1 / window (docs/models/hawkes.md, "Decay floor and
starting point"). No sampling: the initial points the samplers use."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hawkes_cases import random_truth

from models import hawkes as H
from models.hawkes.start import decay_floor, penalised_mle


def _compiled(model, names):
    import pytensor

    outs = model.replace_rvs_by_values([model[k] for k in names])
    return pytensor.function(model.value_vars, outs, on_unused_input="ignore", mode="FAST_COMPILE")


def test_every_chain_starts_at_the_mode():
    """The samplers' jittered initial points (PyMC's, which nutpie and numpyro also use)
    put the decay of every chain within a factor 1.5 of the penalised MLE, which lies near
    the truth; the former start (prior median, jittered) does not."""
    from pymc.initial_point import make_initial_point_fns_per_chain

    rng = np.random.default_rng(11)
    truth = random_truth(rng, 900.0)
    obs = H.simulate(truth, rng)
    st = penalised_mle(obs, H.HawkesPriors(), decay_floor(obs, 1.0))
    assert abs(math.log(st["beta"] / truth.decay)) < math.log(2.0)
    model = H.build_model(obs)
    f = _compiled(model, ["hawkes_decay", "hawkes_branching"])
    fns = make_initial_point_fns_per_chain(model=model, overrides=None, jitter_rvs=set(model.free_RVs), chains=8)
    for seed, fn in enumerate(fns):
        ip = fn(seed)
        beta, n = f(*[ip[v.name] for v in model.value_vars])
        assert abs(math.log(float(beta) / st["beta"])) < math.log(1.5), seed
        np.testing.assert_allclose(n, H.branching_from_raw(st["theta"]), atol=0.35)
    plain = H.build_model(obs, H.HawkesPriors(start="prior"))
    g = _compiled(plain, ["hawkes_decay"])
    ip = plain.initial_point()
    assert float(g(*[ip[v.name] for v in plain.value_vars])[0]) == pytest.approx(1.0, rel=1e-9)


def test_decay_floor_and_prior():
    """beta >= 1/T however far the flat coordinate goes, and the decay's potential is the
    LogNormal log-density of beta truncated at 1/T, on log(beta - 1/T) coordinates
    (differences between points, so the normalising constants cancel)."""
    from scipy import stats

    rng = np.random.default_rng(5)
    obs = H.simulate(random_truth(rng, 300.0), rng)
    T = float(obs.duration_s[0])
    assert decay_floor(obs, 1.0) == pytest.approx(1.0 / T) and decay_floor(obs, None) == 0.0
    pr = H.HawkesPriors(start="prior", decay_median=0.7, log_decay_sd=1.3)
    model = H.build_model(obs, pr)
    f = _compiled(model, ["hawkes_decay", "hawkes_decay_prior"])
    ip = model.initial_point()
    vals = []
    for z in (-60.0, -3.0, 0.0, 2.5):
        point = dict(ip, hawkes_log_decay_shift=np.asarray(z))
        beta, lp = f(*[point[v.name] for v in model.value_vars])
        assert float(beta) >= 1.0 / T
        vals.append((float(beta), float(lp)))
    b_min = 1.0 / T
    # density of u = log(beta - b_min): p_beta(beta) * (beta - b_min)
    ref = [stats.lognorm.logpdf(b, s=1.3, scale=0.7) + math.log(b - b_min) for b, _ in vals[1:]]
    got = [lp for _, lp in vals[1:]]
    np.testing.assert_allclose(np.diff(got), np.diff(ref), rtol=1e-9, atol=1e-9)
