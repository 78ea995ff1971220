"""Soft regimes (docs/models/regime_soft.md): the models take the bars' regime
probabilities; a one-hot input reproduces the hard path's observations and likelihood."""

from __future__ import annotations

import numpy as np
import pytest

from models import alpha, catalog, kappa
from models.data import observations as ob
from models.data.synthetic import simulate_market
from models.sampling import SamplerConfig


@pytest.fixture(scope="module")
def market():
    return simulate_market(11, 600.0)


@pytest.fixture(scope="module")
def bars(market):
    return ob.volatility_bars(market)


@pytest.fixture(scope="module")
def probs(market, bars):
    return catalog.regime_probabilities(market, bars=bars)


def _onehot(path):
    return np.eye(4)[np.asarray(path)]


def test_regime_weights_rows(bars, probs):
    path = np.argmax(probs, axis=1)
    np.testing.assert_array_equal(ob.regime_weights(bars, path), _onehot(path))
    w = ob.regime_weights(bars, probs)
    assert w.shape == probs.shape and np.allclose(w.sum(1), 1.0)
    bad = probs.copy()
    bad[3] = 0.0
    with pytest.raises(ValueError, match="bar 4 .1-based"):
        ob.regime_weights(bars, bad)


def test_alpha_one_hot_reproduces_the_path_and_soft_splits_each_fill(market, bars, probs):
    path = np.argmax(probs, axis=1).astype(np.int8)
    hard = alpha.observations(market, path, bars=bars)
    onehot = alpha.observations(market, _onehot(path), bars=bars)
    for f in ("asset", "regime", "side", "depth_bps", "informed", "markout_bps", "weight"):
        np.testing.assert_array_equal(getattr(hard, f), getattr(onehot, f))
    soft = np.full_like(probs, 0.25)
    s = alpha.observations(market, soft, bars=bars)
    assert s.n_fills == 4 * hard.n_fills
    # every fill's weight is shared out over the regimes, in total unchanged
    np.testing.assert_allclose(s.weight.reshape(-1, 4).sum(1), hard.weight)


def test_kappa_one_hot_reproduces_the_path(market, bars, probs):
    path = np.argmax(probs, axis=1).astype(np.int8)
    hard = kappa.observations(market, path, bars=bars)
    onehot = kappa.observations(market, _onehot(path), bars=bars)
    assert not onehot.soft
    lp_h = kappa.build_model(hard).compile_logp()
    m = kappa.build_model(onehot)
    assert m.compile_logp()(m.initial_point()) == lp_h(m.initial_point())


@pytest.mark.parametrize("soft_likelihood", ["expected", "mixture"])
def test_kappa_soft_likelihood_with_one_hot_weights_equals_the_hard_likelihood(market, bars, probs, monkeypatch,
                                                                               soft_likelihood):
    path = np.argmax(probs, axis=1).astype(np.int8)
    cfg = kappa.KappaConfig(soft_likelihood=soft_likelihood)
    hard = kappa.build_model(kappa.observations(market, path, bars=bars), cfg)
    point = hard.initial_point()
    monkeypatch.setattr(kappa.KappaObs, "soft", property(lambda self: True))
    mix = kappa.build_model(kappa.observations(market, _onehot(path), bars=bars), cfg)
    assert mix.compile_logp()(point) == pytest.approx(hard.compile_logp()(point), abs=1e-8)
    # and its gradient
    g_h, g_m = hard.compile_dlogp()(point), mix.compile_dlogp()(point)
    np.testing.assert_allclose(g_m, g_h, atol=1e-8)


def test_kappa_fits_on_soft_regimes(market, bars):
    soft = ob.regime_weights(bars, catalog.regime_probabilities(market, bars=bars))
    soft = 0.7 * soft + 0.3 * np.roll(soft, 1, axis=1)      # uncertain bars
    obs = kappa.observations(market, soft, bars=bars)
    assert obs.soft
    idata = kappa.fit(obs, SamplerConfig(sampler="nutpie", chains=2, draws=40, tune=40, seed=1,
                                         progressbar=False))
    k = idata.posterior["kappa"].values
    assert np.all(np.isfinite(k)) and np.all(k > 0)
    lpd = kappa.heldout_lpd(idata, obs)
    assert np.isfinite(lpd["elpd"])


def _ambiguous_obs(seed: int = 0, n_bars: int = 48, bar_s: float = 60.0) -> kappa.KappaObs:
    """Bars whose regime probabilities are spread (0.55 / 0.25 / 0.15 / 0.05 in a random
    order, as on LOBSTER AAPL where 165 of 181 count blocks have no regime above 0.9) and
    whose arrivals are the same law in every regime except 15 % burst bars (A 1.5/s,
    kappa 2.5/bp against 0.4/s, 1.0/bp): the data a regime mixture can split."""
    rng = np.random.default_rng(seed)
    burst = rng.random(n_bars) < 0.15
    rate, decay = np.where(burst, 1.5, 0.4), np.where(burst, 2.5, 1.0)
    cnt = rng.poisson(np.repeat(rate[:, None] * bar_s, 2, axis=1))
    bar = np.repeat(np.repeat(np.arange(n_bars), 2), cnt.ravel())
    P = np.array([rng.permutation([0.55, 0.25, 0.15, 0.05]) for _ in range(n_bars)])
    return kappa.KappaObs(
        assets=("X",), bar_asset=np.zeros(n_bars, np.int32), bar_regime=P.argmax(1).astype(np.int8),
        bar_exposure_s=np.full(n_bars, bar_s), arr_asset=np.zeros(len(bar), np.int32), arr_bar=bar,
        arr_side=np.repeat(np.tile([0, 1], n_bars), cnt.ravel()).astype(np.int8),
        depth_bps=rng.exponential(1.0 / decay[bar]), bar_prob=P)


def _local_modes(model, n_starts: int = 4, seed: int = 0) -> np.ndarray:
    """Log densities (sampled coordinates, with the Jacobian) of the local maxima that
    L-BFGS reaches from ``n_starts`` dispersed starts around the initial point."""
    from pymc.blocking import DictToArrayBijection, RaveledVars
    from scipy.optimize import minimize

    start = model.initial_point()
    x0 = DictToArrayBijection.map({v.name: start[v.name] for v in model.value_vars})
    f = DictToArrayBijection.mapf(model.compile_fn([model.logp(), model.dlogp()], inputs=model.value_vars),
                                  start)

    def cost(x):
        v, g = f(RaveledVars(x, x0.point_map_info))
        return -float(v), -np.asarray(g, dtype=float)

    rng = np.random.default_rng(seed)
    return np.array([-minimize(cost, x0.data + 1.5 * rng.standard_normal(x0.data.size), jac=True,
                               method="L-BFGS-B", options={"maxiter": 5000}).fun for _ in range(n_starts)])


def test_kappa_soft_likelihood_is_unimodal_where_the_regime_mixture_is_not():
    """The AAPL gate failure (docs/models/kappa.md, "Soft regimes"): on spread regime
    probabilities the mixture over regimes lets each cell capture the burst blocks, a
    local mode per choice; the expected log-likelihood (the default) has one mode."""
    obs = _ambiguous_obs()
    assert obs.soft
    lp = _local_modes(kappa.build_model(obs))
    assert np.ptp(lp) < 1e-3, f"several local modes with the default soft likelihood: {lp}"
    mix = _local_modes(kappa.build_model(obs, kappa.KappaConfig(soft_likelihood="mixture")))
    assert np.ptp(mix) > 1.0          # the constructed data do separate the mixture's modes


# --------------------------------------------------------------------------- hawkes
def _hawkes_params():
    rng = np.random.default_rng(0)
    return {"mu": rng.uniform(0.05, 0.4, (4, 2)), "n": np.array([[0.3, 0.1], [0.15, 0.25]]), "beta": np.array(1.7)}


def test_hawkes_one_hot_reproduces_the_path(market, bars, probs):
    from models import hawkes

    path = np.argmax(probs, axis=1).astype(np.int8)
    hard = hawkes.observations(market, path, bars=bars)
    onehot = hawkes.observations(market, _onehot(path), bars=bars)
    assert not onehot.soft
    np.testing.assert_array_equal(onehot.regime_time(), hard.regime_time())
    p = _hawkes_params()
    assert float(hawkes.loglik_jax(p, onehot)) == float(hawkes.loglik_jax(p, hard))


@pytest.mark.parametrize("components", [1, 2])
def test_hawkes_soft_baseline_matches_the_reference_and_its_gradient(market, bars, components):
    import jax

    from models import hawkes

    soft = 0.6 * _onehot(np.arange(len(bars)) % 4) + 0.4 * _onehot((np.arange(len(bars)) + 1) % 4)
    obs = hawkes.observations(market, soft, bars=bars)
    assert obs.soft
    p = _hawkes_params()
    if components == 2:  # soft baselines with a two-component kernel (30/s and 0.5/s)
        p = {**p, "n": np.stack([0.6 * p["n"], 0.4 * p["n"]]), "beta": np.array([30.0, 0.5])}
    ref = hawkes.loglik_naive(p, obs)
    assert float(hawkes.loglik_jax(p, obs)) == pytest.approx(ref, rel=1e-10)
    # blocks padded with inert events (a block size that does not divide the events)
    assert obs.n_events % 7 != 0
    assert float(hawkes.loglik_jax(p, hawkes.jax_data(obs, 7))) == pytest.approx(ref, rel=1e-10)
    assert float(np.sum(hawkes.pointwise_loglik_jax(p, obs))) == pytest.approx(ref, rel=1e-10)
    # soft regime time: the bars' lengths shared by their probabilities
    assert obs.regime_time().sum() == pytest.approx(float(obs.duration_s[0]))
    # the exact (custom-VJP) gradient against autodiff of the per-event terms
    _, g = hawkes.loglik_value_and_grad(p, obs)
    jp = {k: jax.numpy.asarray(v, dtype=float) for k, v in p.items()}
    g_ref = jax.grad(lambda q: hawkes.pointwise_loglik_jax(q, obs).sum())(jp)
    for k in ("mu", "n", "beta"):
        np.testing.assert_allclose(np.asarray(g[k]).reshape(np.shape(g_ref[k])), g_ref[k], rtol=1e-8, atol=1e-10)


# --------------------------------------------------------------------------- total and diffusive sigma
def test_regime_total_and_diffusive_sigma_reach_the_bundle(market):
    """A regime posterior on MedRV bars exports sigma_bps = total volatility (from the
    bars' realized variance and the draws' smoothed probabilities) and
    sigma_diffusive_bps = the emission's (diffusive) sigma; the runtime reads both."""
    import arviz as az

    from mm_runtime.bundle import PriorBundle
    from mm_runtime.examples import example_bundle
    from mm_runtime.view import bundle_view
    from models import regime as rg

    obs = rg.observations(market)
    assert obs.meta["observation_config"]["volatility_estimator"] == "medrv" and obs.log_rv_total is not None
    # jump bars: the realized variance far above MedRV (bar by bar either can be the larger)
    assert np.max(obs.log_rv_total - obs.log_rv) > 2.0 and np.mean(obs.log_rv_total - obs.log_rv) > 0.2
    ref = rg.em_fit(obs)
    rng = np.random.default_rng(0)
    S = 20
    m = np.sort(ref["log_rv_mean"])[None, None] + 0.01 * rng.standard_normal((1, S, 4))
    sd = np.asarray(ref["log_rv_sd"])[None, None] * np.ones((1, S, 4))
    P = np.asarray(ref["regime_transition"])[None, None] * np.ones((1, S, 4, 4))
    pi = np.stack([rg.stationary_distribution(P[0, i]) for i in range(S)])[None]
    sig = np.sqrt(np.exp(m + sd ** 2 / 2) / obs.bar_seconds) * 1e4
    idata = az.from_dict(posterior={"log_rv_mean": m, "log_rv_sd": sd, "regime_transition": P,
                                    "regime_stationary": pi, "sigma_bps": sig},
                         dims={"log_rv_mean": ["regime"], "log_rv_sd": ["regime"], "sigma_bps": ["regime"],
                               "regime_stationary": ["regime"],
                               "regime_transition": ["regime_from", "regime_to"]},
                         coords={"regime": list(rg.REGIMES), "regime_from": list(rg.REGIMES),
                                 "regime_to": list(rg.REGIMES)})
    idata.attrs.update(bar_seconds=obs.bar_seconds, volatility_estimator="medrv")
    rg.model.add_total_sigma(idata, obs)
    tot = idata.posterior["sigma_total_bps"].values
    assert tot.shape == (1, S, 4) and np.all(np.isfinite(tot))
    s = rg.summarize(idata)
    assert set(s) == {"regime_transition", "regime_emission", "sigma_bps", "sigma_diffusive_bps"}
    mean = lambda d: np.array([np.exp(d[r]["mu"] + d[r]["sigma"] ** 2 / 2) for r in rg.REGIMES])  # noqa: E731
    assert np.allclose(mean(s["sigma_diffusive_bps"]), sig[0].mean(0), rtol=0.05)
    assert np.allclose(mean(s["sigma_bps"]), tot[0].mean(0), rtol=0.05)
    # realized bars: one sigma (the total), no diffusive block (today's bundles)
    idata.attrs["volatility_estimator"] = "realized"
    assert "sigma_diffusive_bps" not in rg.summarize(idata)
    # the bundle: optional block, read by the view; without it the diffusive sigma is sigma_bps
    doc = example_bundle().model_dump(mode="json")
    v0 = bundle_view(PriorBundle.model_validate(doc))
    np.testing.assert_array_equal(v0.sigma_diffusive_bps, v0.sigma_bps)
    doc["params"]["sigma_diffusive_bps"] = {r: {"family": "lognormal", "mu": float(np.log(0.1 * (k + 1))),
                                                "sigma": 0.1} for k, r in enumerate(rg.REGIMES)}
    v = bundle_view(PriorBundle.model_validate(doc))
    assert np.all(v.sigma_diffusive_bps < v.sigma_bps)
    bad = dict(doc["params"]["sigma_diffusive_bps"])
    del bad["high"]
    doc["params"]["sigma_diffusive_bps"] = bad
    with pytest.raises(ValueError, match="sigma_diffusive_bps"):
        PriorBundle.model_validate(doc)
