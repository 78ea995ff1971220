"""models.sampling: every sampler on a tiny model, the gate, seeds, names."""

from __future__ import annotations

import re

import arviz as az
import numpy as np
import pymc as pm
import pytest

from models.sampling import (GateConfig, GateVerdict, SampleSizeError, SamplerConfig, available_memory, diagnostics,
                             flat_names, gate, model_version, sample, summary_table, whitened_mean, whitened_normal)

TRUE_MEAN = 1.5
Y = np.random.default_rng(0).normal(TRUE_MEAN, 1.0, 60)
TINY = dict(draws=1000, tune=500, chains=2, cores=1, seed=11, progressbar=False)  # a tiny model: cheap


def normal_model() -> pm.Model:
    with pm.Model(coords={"obs": np.arange(len(Y))}) as m:
        mu = pm.Normal("mu", 0.0, 5.0)
        sigma = pm.HalfNormal("sigma", 2.0)
        pm.Normal("y", mu, sigma, observed=Y, dims="obs")
    return m


@pytest.fixture(scope="module")
def fits():
    return {s: sample(normal_model(), SamplerConfig(sampler=s, **TINY)) for s in ("pymc", "numpyro", "nutpie")}


@pytest.mark.parametrize("sampler", ["pymc", "numpyro", "nutpie"])
def test_each_sampler_passes_the_gate(fits, sampler):
    idata = fits[sampler]
    d = diagnostics(idata)
    verdict = gate(d)  # the default gate: r_hat <= 1.01, ESS >= 400, no divergence, BFMI >= 0.3
    assert verdict.passed, verdict.failures
    assert d["divergences"] == 0 and d["bfmi_min"] > 0.3
    assert d["chains"] == 2 and d["draws"] == 1000
    assert d["loo_n"] == len(Y) and np.isfinite(d["loo_elpd"]) and d["loo_se"] > 0
    assert d["pareto_k_max"] < 0.7 and d["sampling_time_s"] > 0
    post = idata.posterior["mu"].values
    lo, hi = np.quantile(post, [0.005, 0.995])
    assert lo < TRUE_MEAN < hi
    assert idata.attrs["sampler"] == sampler and idata.attrs["seed"] == 11
    assert "log_likelihood" in idata.groups()


@pytest.mark.parametrize("sampler", ["pymc", "numpyro", "nutpie"])
def test_same_seed_same_draws(fits, sampler):
    again = sample(normal_model(), SamplerConfig(sampler=sampler, **TINY))
    np.testing.assert_array_equal(again.posterior["mu"].values, fits[sampler].posterior["mu"].values)
    other = sample(normal_model(), SamplerConfig(sampler=sampler, **{**TINY, "seed": 12}))
    assert not np.array_equal(other.posterior["mu"].values, fits[sampler].posterior["mu"].values)


def test_too_short_run_fails_with_readable_reasons():
    idata = sample(normal_model(), SamplerConfig(sampler="pymc", draws=20, tune=20, chains=1, cores=1,
                                                  seed=1, progressbar=False))
    v = gate(diagnostics(idata))
    assert not v.passed and not v
    text = "; ".join(v.failures)
    assert re.search(r"ess_bulk \d+ < 400 for (mu|sigma)", text), text
    assert re.search(r"ess_tail \d+ < 400 for (mu|sigma)", text), text


def test_funnel_fails_on_divergences():
    """Neal's funnel, centred: NUTS diverges in the neck."""
    with pm.Model() as funnel:
        v = pm.Normal("v", 0.0, 3.0)
        pm.Normal("x", 0.0, pm.math.exp(v / 2), shape=9)
    idata = sample(funnel, SamplerConfig(sampler="pymc", draws=300, tune=300, chains=2, cores=1, seed=3,
                                         target_accept=0.8, progressbar=False))
    d = diagnostics(idata)
    v = gate(d)
    assert not v.passed
    assert any(re.fullmatch(r"\d+ divergent transitions > 0 allowed \(of 600 draws\)", f) for f in v.failures), \
        v.failures
    assert "loo_note" in d  # no observed variable, no LOO


def test_gate_messages_from_diagnostics():
    diag = {"r_hat_max": 1.04, "r_hat_worst": "hawkes_decay", "ess_bulk_min": 950.0, "ess_tail_min": 800.0,
            "divergences": 0, "bfmi_min": 0.2, "chains": 4, "draws": 1000, "pareto_k_max": 0.9,
            "pareto_k_over_0.7": 3, "loo_n": 5000,
            "per_param": {"hawkes_decay": {"r_hat": 1.04, "ess_bulk": 950.0, "ess_tail": 800.0},
                          "hawkes_branching[buy,sell]": {"r_hat": 1.02, "ess_bulk": 1000.0, "ess_tail": 900.0}}}
    v = gate(diag)
    assert isinstance(v, GateVerdict) and not v.passed
    assert v.failures == ["r_hat 1.040 > 1.01 for hawkes_decay (and 1 more)",
                          "BFMI 0.20 < 0.3 (energy poorly explored)"]
    assert v.warnings == ["Pareto k 0.90 > 0.7 for 3 of 5000 observations (PSIS-LOO unreliable for them)"]
    strict = gate(diag, GateConfig(max_r_hat=1.05, min_bfmi=0.1, pareto_k_blocks=True))
    assert strict.failures == [v.warnings[0]]
    assert gate({**diag, "bfmi_min": 0.5, "r_hat_max": 1.001, "pareto_k_max": 0.5},
                GateConfig(max_r_hat=1.01)).passed
    assert v.as_dict()["passed"] is False


def test_gate_warns_of_a_regime_state_that_is_not_persistent():
    """A regime state expected to last < 2.5 bars is a warning (models.regime.state_durations)."""
    ok = {"r_hat_max": 1.001, "ess_bulk_min": 900.0, "ess_tail_min": 900.0, "divergences": 0, "bfmi_min": 0.9,
          "chains": 4, "draws": 1000, "per_param": {}}
    assert gate({**ok, "regime_duration_bars_min": 3.0, "regime_duration_bars_worst": "low"}).warnings == []
    v = gate({**ok, "regime_duration_bars_min": 2.27, "regime_duration_bars_worst": "low"})
    assert v.passed and len(v.warnings) == 1
    assert v.warnings[0].startswith("regime state low lasts 2.3 bars on average (< 2.5)")
    assert gate({**ok, "regime_duration_bars_min": 2.27}, GateConfig(min_regime_duration_bars=2.0)).warnings == []


def _fake_idata(n_chains=2, n_draws=200, seed=0):
    rng = np.random.default_rng(seed)
    return az.from_dict(
        posterior={"kappa": rng.gamma(5.0, 0.1, (n_chains, n_draws, 4, 2)),
                   "alpha_touch": rng.beta(2, 10, (n_chains, n_draws, 4)),
                   "hawkes_decay": rng.lognormal(0.0, 0.1, (n_chains, n_draws)),
                   "w": rng.normal(size=(n_chains, n_draws, 3))},
        coords={"regime": ["low", "normal", "high", "extreme"], "side": ["buy", "sell"]},
        dims={"kappa": ["regime", "side"], "alpha_touch": ["regime"]},
        log_likelihood={"a": rng.normal(-1, 0.1, (n_chains, n_draws, 30)),
                        "b": rng.normal(-2, 0.1, (n_chains, n_draws, 20))},
    )


def test_flat_names_and_summary_table():
    idata = _fake_idata()
    names = [n for n, _ in flat_names("kappa", idata.posterior["kappa"])]
    assert names[:3] == ["kappa[low,buy]", "kappa[low,sell]", "kappa[normal,buy]"] and len(names) == 8
    assert [n for n, _ in flat_names("hawkes_decay", idata.posterior["hawkes_decay"])] == ["hawkes_decay"]
    assert [n for n, _ in flat_names("w", idata.posterior["w"])] == ["w[0]", "w[1]", "w[2]"]
    rows = summary_table(idata, ["kappa", "alpha_touch", "hawkes_decay"])
    by = {r["name"]: r for r in rows}
    assert set(by) == set(names) | {f"alpha_touch[{r}]" for r in ("low", "normal", "high", "extreme")} | {
        "hawkes_decay"}
    x = idata.posterior["kappa"].sel(regime="high", side="buy").values.ravel()
    r = by["kappa[high,buy]"]
    assert r["mean"] == pytest.approx(x.mean()) and r["sd"] == pytest.approx(x.std(ddof=1))
    assert r["q05"] == pytest.approx(np.quantile(x, 0.05)) and r["q95"] == pytest.approx(np.quantile(x, 0.95))
    assert set(r) == {"name", "mean", "sd", "q05", "q95", "r_hat", "ess_bulk", "ess_tail"}
    assert 0.98 < r["r_hat"] < 1.02 and r["ess_bulk"] > 200
    with pytest.raises(KeyError):
        summary_table(idata, ["nope"])


def test_loo_over_several_observed_variables():
    idata = _fake_idata()
    d = diagnostics(idata, var_names=["kappa"])
    assert d["loo_n"] == 50 and d["loo_vars"] == ["a", "b"]
    one = diagnostics(idata, var_names=["kappa"], loo_var="a")
    assert one["loo_n"] == 30
    assert d["loo_elpd"] < one["loo_elpd"]      # the joint elpd adds b's (negative) terms


def test_model_version_changes_with_config():
    a = model_version("m", {"x": 1})
    assert a.startswith("m-") and len(a) == 14
    assert a == model_version("m", {"x": 1}) != model_version("m", {"x": 2})
    import models.sampling as mod

    assert model_version("m", {"x": 1}, mod) != a       # code version included


def test_code_version_of_a_package_covers_every_module(tmp_path, monkeypatch):
    import importlib

    from models.sampling import code_version

    pkg = tmp_path / "cvpkg"
    (pkg / "sub").mkdir(parents=True)
    for f in ("__init__.py", "a.py", "sub/__init__.py", "sub/b.py"):
        (pkg / f).write_text(f"# {f}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("cvpkg")
    v = code_version(mod)
    assert len(v.split("+")[1].split(".")) == 4          # one sha per module of the package
    (pkg / "sub" / "b.py").write_text("# edited\n")
    assert code_version(mod) != v


def test_log_likelihood_skipped_when_too_large():
    idata = sample(normal_model(), SamplerConfig(sampler="pymc", draws=50, tune=50, chains=1, cores=1, seed=1,
                                                  progressbar=False, max_log_likelihood_size=100))
    assert "log_likelihood" not in idata.groups()
    assert "skipped" in idata.attrs["log_likelihood_note"]
    assert "loo_note" in diagnostics(idata)


def test_a_trace_larger_than_the_memory_is_refused_before_sampling():
    """draws x chains x (posterior scalars + sampler statistics + log-likelihood) x 8
    bytes above the memory available is a SampleSizeError (a ValueError), not an
    allocation failure that aborts the process: here 10,001 posterior values per draw
    at draws sized for about 100 values."""
    import pytensor.tensor as pt

    avail = available_memory()
    if avail is None:
        pytest.skip("the memory available is not known on this platform")
    with pm.Model() as m:
        mu = pm.Normal("mu", 0.0, 5.0)
        pm.Deterministic("wide", mu * pt.ones(10_000))
        pm.Normal("y", mu, 1.0, observed=Y)
    draws = avail // (8 * 100)
    with pytest.raises(SampleSizeError, match=r"draws x chains = [\d,]+ x 2 .*10,001 posterior, 18 sampler"):
        sample(m, SamplerConfig(sampler="pymc", draws=draws, tune=10, chains=2, cores=1, progressbar=False))
    assert issubclass(SampleSizeError, ValueError)


def test_whitened_coordinates_keep_the_prior():
    """whitened_mean / whitened_normal are reparametrisations: forward draws give
    m ~ Normal(mu0, sd0) independent of the scale and x[g] ~ Normal(m, scale) for
    groups with data (pinned or not) and without."""
    est, sd = np.array([0.5, np.nan, 2.0, 1.0]), np.array([0.05, np.inf, 0.3, 3.0])
    with pm.Model():
        tau = pm.HalfNormal("tau", 1.0)
        m = whitened_mean("m", 1.0, 2.0, tau, est, sd)
        x = whitened_normal("x", m, tau, est, sd)
    t, mv, xv = pm.draw([tau, m, x], draws=40_000, random_seed=3)
    assert abs(mv.mean() - 1.0) < 0.05 and abs(mv.std() - 2.0) < 0.05
    assert abs(np.corrcoef(t, mv)[0, 1]) < 0.03
    z = (xv - mv[:, None]) / t[:, None]
    np.testing.assert_allclose(z.mean(0), 0.0, atol=0.03)
    np.testing.assert_allclose(z.std(0), 1.0, atol=0.03)


def test_nutpie_low_rank_mass_matrix_follows_a_correlated_direction():
    """SamplerConfig.nutpie_mass_matrix reaches nutpie: on a Gaussian whose five coordinates
    are correlated 0.99 (sds 2.2 along the diagonal, 0.1 across it) the diagonal mass matrix
    needs many leapfrog steps per draw, the low-rank one few; both recover the covariance."""
    cov = 0.99 * np.ones((5, 5)) + 0.01 * np.eye(5)

    def model():
        with pm.Model() as m:
            pm.MvNormal("x", mu=np.zeros(5), cov=cov)
        return m

    fit = {mm: sample(model(), SamplerConfig(sampler="nutpie", nutpie_mass_matrix=mm, log_likelihood=False,
                                             **TINY)) for mm in ("diag", "low_rank")}
    steps = {mm: float(f.sample_stats["n_steps"].mean()) for mm, f in fit.items()}
    assert steps["low_rank"] < 0.5 * steps["diag"], steps
    for mm, f in fit.items():
        assert f.attrs["nutpie_mass_matrix"] == mm
        x = f.posterior["x"].values.reshape(-1, 5)
        np.testing.assert_allclose(np.cov(x.T), cov, atol=0.25)


def test_fit_memory_released_near_the_memory_map_limit(monkeypatch):
    """A long-lived worker drops JAX's executables before its memory mappings reach
    vm.max_map_count (else XLA aborts it, benchmarks/README.md "Worker memory"): between
    fits from a quarter of the limit, under a running fit only from three quarters."""
    import jax
    import jax.numpy as jnp

    from models import sampling
    from models.sampling import releasing_fit_memory

    assert sampling.memory_maps() is None or sampling.memory_maps()[0] > 10  # this process's, read
    f = jax.jit(lambda x: x * 2.0)
    for maps, outer_kept, inner_kept in [(1_000, 1, 1), (20_000, 1, 0), (50_000, 0, 0)]:
        monkeypatch.setattr(sampling, "memory_maps", lambda m=maps: (m, 65_530))
        with releasing_fit_memory():
            with releasing_fit_memory():  # two fits in flight (threads of one process)
                f(jnp.ones(3))
            assert f._cache_size() == outer_kept, maps  # the other fit still runs
        assert f._cache_size() == inner_kept, maps
        assert float(f(jnp.ones(3))[0]) == 2.0  # compiled again on the next call
        jax.clear_caches()
    sampling._trim_heap()  # glibc's malloc_trim, or nothing: never an error
