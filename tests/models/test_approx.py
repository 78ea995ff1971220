"""Laplace + PSIS (models.approx): a small synthetic fit by laplace with its k_hat, the
auto rule both ways (a good Gaussian posterior; a Cauchy posterior the Gaussian cannot
cover, and a threshold override), the gate both ways, the CLI flag's error."""

from __future__ import annotations

import math

import numpy as np
import pymc as pm
import pytest

from models.approx import ApproxError, laplace, psis_khat
from models.sampling import GateConfig, SamplerConfig, diagnostics, gate, sample

SMALL = dict(draws=300, tune=300, chains=2, progressbar=False, sampler="pymc", cores=1)


def _normal_model(n: int = 400, seed: int = 1):
    y = np.random.default_rng(seed).normal(1.0, 2.0, size=n)
    with pm.Model(coords={"g": ["a", "b"]}) as m:
        mu = pm.Normal("mu", 0.0, 10.0, dims="g")
        s = pm.HalfNormal("s", 5.0)
        pm.Deterministic("mu_sum", mu.sum())
        pm.Normal("y", mu[0] + mu[1], s, observed=y)
    return m, y


def test_laplace_matches_the_conjugate_answer_and_khat_is_small():
    """For a near-Gaussian posterior the mode and curvature reproduce the analytic
    mean and sd of mu_sum (~ ybar, s/sqrt(n)), k_hat is well under 0.7 and the draws
    are resampled into chains x draws with the model's coords and deterministics."""
    m, y = _normal_model()
    idata = sample(m, SamplerConfig(inference="laplace", **SMALL))
    a = idata.attrs
    assert a["inference"] == "laplace" and a["sampler"] == "laplace"
    assert a["approx_gradient"] == "pytensor graph"  # this graph traces in JAX: no jax.grad fallback
    assert 0 <= a["psis_khat"] < 0.5 and a["psis_ess"] > 300
    post = idata.posterior
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 300 and list(post["g"].values) == ["a", "b"]
    tot = post["mu_sum"].values.ravel()
    assert abs(tot.mean() - y.mean()) < 0.05
    assert abs(tot.std() / (y.std() / math.sqrt(len(y))) - 1) < 0.15
    assert "log_likelihood" in idata.groups()
    d = diagnostics(idata)
    assert d["inference"] == "laplace" and d["psis_khat"] == pytest.approx(a["psis_khat"])
    assert gate(d).passed


def test_newton_steps_finish_what_lbfgs_left():
    """L-BFGS-B stopped after 2 iterations, far from the mode: the Newton steps reach
    the same mode as a converged L-BFGS-B, with a zero gradient there."""
    m, _ = _normal_model()
    full = laplace(m)
    short = laplace(m, maxiter=2)
    np.testing.assert_allclose(short.mode, full.mode, atol=1e-6)
    assert np.linalg.norm(short.density.logp_dlogp(short.mode)[1]) < 1e-6
    alone = laplace(m, maxiter=2, newton_steps=0)  # the L-BFGS-B point alone: not the mode
    assert np.max(np.abs(alone.mode - full.mode)) > 1e-3


@pytest.mark.slow
def test_kappa_synthetic_fit_by_laplace_has_a_khat():
    """A model of the catalog (kappa on 2 h of its own simulated arrivals) fits by
    Laplace: finite k_hat, and the 90 % intervals of kappa hold most true values."""
    from models import kappa as kp

    truth = {f"kappa[{r},{s}]": 0.5 - 0.08 * i for i, r in enumerate(kp.REGIMES) for s in kp.SIDES}
    truth |= {f"arrival_rate[{r},{s}]": 0.3 + 0.3 * i for i, r in enumerate(kp.REGIMES) for s in kp.SIDES}
    obs = kp.simulate(truth, np.random.default_rng(0), duration_s=2 * 3600.0)
    idata = kp.fit(obs, SamplerConfig(inference="laplace", **SMALL))
    a = idata.attrs
    assert a["inference"] == "laplace" and math.isfinite(a["psis_khat"]) and a["psis_ess"] > 0
    k = idata.posterior["kappa"]
    lo, hi = k.quantile(0.05, ("chain", "draw")), k.quantile(0.95, ("chain", "draw"))
    inside = [float(lo.sel(regime=r, side=s)) <= truth[f"kappa[{r},{s}]"] <= float(hi.sel(regime=r, side=s))
              for r in kp.REGIMES for s in kp.SIDES]
    assert sum(inside) >= 6, inside


def _cauchy_model():
    with pm.Model() as m:
        pm.StudentT("x", nu=1.0, mu=0.0, sigma=1.0)  # Cauchy: tails no Gaussian can cover
    return m


def test_psis_khat_flags_a_cauchy_posterior():
    m = _cauchy_model()
    fit = laplace(m)
    theta, logq = fit.draw(4000, np.random.default_rng(0))
    k, lw = psis_khat(fit.density.logp_many(theta), logq)
    assert k > 0.7 and lw.shape == (4000,)


def test_auto_uses_laplace_when_khat_is_small():
    m, _ = _normal_model()
    idata = sample(m, SamplerConfig(inference="auto", **SMALL))
    assert idata.attrs["inference"] == "laplace" and idata.attrs["inference_requested"] == "auto"
    assert "< 0.5 (reliable)" in idata.attrs["inference_reason"]


def test_auto_falls_back_to_nuts_on_a_bad_approximation():
    """The Cauchy posterior: k_hat >= 0.7, so auto samples with NUTS and says why; the
    fit then has NUTS's sampler statistics and is gated on R-hat/ESS, not k_hat."""
    idata = sample(_cauchy_model(), SamplerConfig(inference="auto", **SMALL))
    a = idata.attrs
    assert a["inference"] == "nuts" and a["sampler"] == "pymc" and a["psis_khat"] >= 0.7
    assert "NUTS instead" in a["inference_reason"]
    assert "diverging" in idata.sample_stats
    d = diagnostics(idata)
    assert d["inference"] == "nuts" and d["r_hat_max"] is not None


def test_auto_threshold_override_forces_nuts():
    m, _ = _normal_model()
    idata = sample(m, SamplerConfig(inference="auto", max_psis_k=1e-9, **SMALL))
    assert idata.attrs["inference"] == "nuts" and "NUTS instead" in idata.attrs["inference_reason"]


def test_forced_laplace_without_a_mode_is_an_error():
    """A flat direction (a variable the likelihood does not see, with an improper
    flat prior) has no negative definite Hessian: forced laplace says so."""
    with pm.Model() as m:
        pm.Flat("a")
        pm.Normal("b", 0, 1)
    with pytest.raises(ApproxError, match="not negative definite"):
        sample(m, SamplerConfig(inference="laplace", **SMALL))


def test_gate_knows_both():
    good = {"inference": "laplace", "psis_khat": 0.3, "r_hat_max": None, "ess_bulk_min": None,
            "ess_tail_min": None, "divergences": None, "bfmi_min": None}
    v = gate(good)
    assert v.passed and not v.failures
    bad = dict(good, psis_khat=0.85)
    v = gate(bad)
    assert not v.passed and "PSIS k_hat 0.85 >= 0.5" in v.failures[0]
    assert gate(good, GateConfig(max_psis_k=0.2)).passed is False
    nuts = {"inference": "nuts", "psis_khat": 0.95, "r_hat_max": 1.2, "r_hat_worst": "x", "ess_bulk_min": 1000,
            "ess_tail_min": 1000, "divergences": 0, "bfmi_min": 1.0, "chains": 2, "draws": 100}
    v = gate(nuts)  # a NUTS fit (auto's fallback): R-hat counts, the rejected k_hat does not
    assert not v.passed and v.failures == ["r_hat 1.200 > 1.01 for x"]
    assert gate(dict(nuts, r_hat_max=1.001)).passed


def test_cli_inference_flag_error():
    from typer.testing import CliRunner

    from flows.cli import app

    r = CliRunner().invoke(app, ["fit", "--model", "kappa", "--source", "synthetic", ".", "--inference",
                                 "vi"], catch_exceptions=False)
    assert r.exit_code == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("mmcal: error")]
    assert len(lines) == 1 and "--inference: unknown method 'vi'; one of auto, nuts, laplace" in lines[0]
