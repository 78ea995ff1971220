"""The volatility-regime HMM (models/regime/; DESIGN.md section 4).

* The forward algorithm (numpy, the pytensor-scan reference graph and the JAX Op of
  the PyMC model) equals a brute-force sum over all 4^T state paths; smoothed
  probabilities too (the Op against the scan: tests/models/test_regime_op.py).
* Parameter recovery from the model's own generative process (NumPyro NUTS).
* Summaries: moment-matched Dirichlet rows keep the posterior means; all pass the
  bundle's schema.
* Samplers: PyMC's default NUTS (small smoke run), nutpie (compiles + samples).
* End to end on the synthetic market: decoded path vs the true regime path.

Sampling is kept tiny (2 chains, a few hundred draws, a few hundred bars).
"""

from __future__ import annotations

import itertools
import json
import math
import time

import arviz as az
import numpy as np
import pytest
from scipy.special import logsumexp

from models import regime as rg
from models.data.observations import REGIMES
from models.sampling import SamplerConfig, diagnostics

K = 4


# --------------------------------------------------------------------------- brute force
# pytensor mode of the graph checks below: python implementations (compile in a
# second). The C backend compiles the scan and its gradient with g++ (~1-2 minutes
# on a fresh machine): checked in test_c_backend_equals_python_backend (heavy).
PT_MODE = "FAST_COMPILE"


def _random_params(rng, T=6):
    m = np.sort(rng.normal(-19.0, 1.0, K))
    s = rng.uniform(0.3, 1.2, K)
    P = np.stack([rng.dirichlet(np.ones(K) + 5 * np.eye(K)[k]) for k in range(K)])
    pi = rg.stationary_distribution(P)
    y = rng.normal(-19.0, 1.5, T)
    return m, s, P, pi, y


def _brute_force(le, P, pi):
    """log p(y_{1:t}) for every t and P(z_t = k | y_{1:T}) by enumerating all paths."""
    T = le.shape[0]
    paths = np.array(list(itertools.product(range(K), repeat=T)))  # (K^T, T)
    cum = np.log(pi)[paths[:, 0]] + le[0, paths[:, 0]]
    prefix = []
    for t in range(T):
        if t:
            cum = cum + np.log(P)[paths[:, t - 1], paths[:, t]] + le[t, paths[:, t]]
        # log p(y_{1:t}): the joint of y_{1:t} and z_{1:t}, summed over the distinct z_{1:t}
        _, first = np.unique(paths[:, : t + 1], axis=0, return_index=True)
        prefix.append(logsumexp(cum[first]))
    total = logsumexp(cum)
    w = np.exp(cum - total)
    gamma = np.zeros((T, K))
    for t in range(T):
        np.add.at(gamma[t], paths[:, t], w)
    return np.array(prefix), total, gamma


@pytest.mark.parametrize("seed,T,censor", [(0, 5, False), (1, 6, True), (2, 6, False)])
def test_forward_equals_brute_force(seed, T, censor):
    rng = np.random.default_rng(seed)
    m, s, P, pi, y = _random_params(rng, T)
    censored = np.zeros(T, bool)
    c_val = None
    if censor:
        censored[2] = True
        c_val = float(m[0] - 0.5)
    le = rg.emission_logp(y, m, s, censored, c_val)
    prefix, total, gamma = _brute_force(le, P, pi)
    brute_c = np.diff(prefix, prepend=0.0)

    _, c = rg.forward(le, np.log(P), np.log(pi))
    np.testing.assert_allclose(c, brute_c, rtol=0, atol=1e-10)
    assert abs(c.sum() - total) < 1e-10

    probs, ll = rg.forward_backward(le, np.log(P), np.log(pi))
    np.testing.assert_allclose(probs, gamma, rtol=0, atol=1e-10)
    assert abs(ll - total) < 1e-10

    # the pytensor scan of the PyMC model (python linker here; the C backend: the
    # heavy test below)
    import pytensor
    import pytensor.tensor as pt

    from models.regime.model import _forward_scan

    mv, sv, Pv, piv = pt.vector("m"), pt.vector("s"), pt.matrix("P"), pt.vector("pi")
    out = _forward_scan(pt.as_tensor(y), mv, sv, pt.log(Pv), pt.log(piv), censored, c_val)
    f = pytensor.function([mv, sv, Pv, piv], out, mode=PT_MODE)
    np.testing.assert_allclose(f(m, s, P, pi), brute_c, rtol=0, atol=1e-10)


@pytest.mark.parametrize("censor", [False, True])
def test_model_logp_is_the_forward_algorithm(censor):
    """The observed CustomDist's elementwise log-density at a point = the
    one-step-ahead terms of the brute-force sum at the same parameters (with a
    left-censored bar in the second case); the JAX translation agrees."""
    import pymc as pm

    obs = rg.simulate(None, 3, n_bars=6)
    if censor:
        cen = np.zeros(6, bool)
        cen[3] = True
        obs = rg.RegimeObs(log_rv=obs.log_rv, censored=cen, censor_log_rv=float(obs.log_rv.min()))
    model = rg.build_model(obs)
    rv = model["log_rv"]
    ip = model.initial_point()
    rng = np.random.default_rng(0)
    point = {k: v + 0.1 * rng.standard_normal(np.shape(v)) for k, v in ip.items()}
    params = model.replace_rvs_by_values([model[n] for n in ("log_rv_mean", "log_rv_sd",
                                                             "regime_transition", "regime_stationary")])
    fn = model.compile_fn([model.logp(vars=[rv], sum=False)[0], *params], inputs=model.value_vars,
                          on_unused_input="ignore", mode=PT_MODE)
    c_model, m, s, P, pi = fn(point)
    le = rg.emission_logp(obs.log_rv, m, s, obs.censored, obs.censor_log_rv)
    prefix, total, _ = _brute_force(le, P, pi)
    np.testing.assert_allclose(c_model, np.diff(prefix, prepend=0.0), rtol=0, atol=1e-10)
    np.testing.assert_allclose(pi @ P, pi, atol=1e-12)
    if censor:
        return
    # and the JAX translation (what NumPyro samples) agrees
    from pymc.sampling.jax import get_jaxified_graph

    jfn = get_jaxified_graph(inputs=model.value_vars, outputs=[model.logp()])
    (lp_jax,) = jfn(*[point[v.name] for v in model.value_vars])
    lp_c = model.compile_logp(mode=PT_MODE)(point)
    assert abs(float(lp_jax) - float(lp_c)) < 1e-8
    with model:
        pm.draw(rv, draws=1)  # the random function works (prior predictive)


@pytest.mark.heavy
def test_c_backend_equals_python_backend():
    """PyMC's own sampler runs the model's log-density and gradient on the C
    backend: they equal the python backend's at a random point (censored bar included)."""
    obs = rg.simulate(None, 4, n_bars=12)
    cen = np.zeros(12, bool)
    cen[5] = True
    obs = rg.RegimeObs(log_rv=obs.log_rv, censored=cen, censor_log_rv=float(obs.log_rv.min()))
    model = rg.build_model(obs)
    ip = model.initial_point()
    rng = np.random.default_rng(1)
    point = {k: v + 0.1 * rng.standard_normal(np.shape(v)) for k, v in ip.items()}
    c_lp, py_lp = (model.compile_logp(mode=m)(point) for m in ("FAST_RUN", PT_MODE))
    c_g, py_g = (model.compile_dlogp(mode=m)(point) for m in ("FAST_RUN", PT_MODE))
    assert abs(float(c_lp) - float(py_lp)) < 1e-10
    np.testing.assert_allclose(c_g, py_g, rtol=1e-10, atol=1e-10)


def test_smoothed_probabilities_average_over_draws():
    rng = np.random.default_rng(5)
    T = 6
    draws = [_random_params(rng, T) for _ in range(3)]
    y = draws[0][4]
    obs = rg.RegimeObs(log_rv=y, bar_seconds=10.0)
    post = {
        "log_rv_mean": np.stack([d[0] for d in draws])[None],
        "log_rv_sd": np.stack([d[1] for d in draws])[None],
        "regime_transition": np.stack([d[2] for d in draws])[None],
        "regime_stationary": np.stack([d[3] for d in draws])[None],
        "sigma_bps": np.ones((1, 3, K)),
    }
    idata = az.from_dict(posterior=post)
    idata.attrs["bar_seconds"] = 10.0
    expected = np.mean([_brute_force(rg.emission_logp(y, d[0], d[1]), d[2], d[3])[2] for d in draws], axis=0)
    got = rg.smoothed_probabilities(idata, obs)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-12)
    assert np.array_equal(rg.regime_path(idata, obs), np.argmax(expected, axis=1))
    mean_p = rg.smoothed_probabilities(idata, obs, method="mean")
    assert mean_p.shape == (T, K) and np.allclose(mean_p.sum(axis=1), 1.0)


def test_simulate_is_the_generative_process():
    obs = rg.simulate(None, 11, n_bars=40_000)
    t = rg.truth_arrays({f"sigma_bps[{r}]": v for r, v in zip(REGIMES, (0.10, 0.17, 0.27, 0.40))})
    z, y = obs.regimes, obs.log_rv
    counts = np.zeros((K, K))
    np.add.at(counts, (z[:-1], z[1:]), 1)
    emp = counts / counts.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(emp, t["transition"], atol=0.01)
    for k in range(K):
        assert abs(y[z == k].mean() - t["log_rv_mean"][k]) < 0.03
        assert abs(y[z == k].std() - t["log_rv_sd"][k]) < 0.03
    # sigma_bps of the truth: sqrt(E[rv]/B) 1e4 = the input volatilities
    tp = obs.meta["truth"]
    for r, v in zip(REGIMES, (0.10, 0.17, 0.27, 0.40)):
        assert abs(tp[f"sigma_bps[{r}]"] - v) < 1e-12
    assert abs(sum(tp[f"regime_stationary[{r}]"] for r in REGIMES) - 1) < 1e-12


def test_observations_censor_floored_bars():
    """A bar without any mid change has log_rv at the floor: it is marked censored
    at the smallest unfloored log_rv; the synthetic truth path is attached."""
    from models.data.synthetic import simulate_market

    market = simulate_market(1, duration_s=120.0)
    q = market.quotes.copy()
    t0 = int(q["ts"].iloc[0])
    in_bar = (q["ts"] >= t0 + 20 * 10**9) & (q["ts"] < t0 + 31 * 10**9)  # bar 2, and the grid point after it
    first = q.index[in_bar][0]
    q.loc[in_bar, ["bid", "ask"]] = q.loc[first, ["bid", "ask"]].to_numpy()
    market.quotes = q
    obs = rg.observations(market)
    assert obs.n_bars == 12 and obs.censored.tolist() == [i == 2 for i in range(12)]
    assert obs.censor_log_rv == obs.log_rv[~obs.censored].min()
    assert np.array_equal(obs.regimes, np.asarray(market.truth["regime_path"], dtype=np.int8))
    raw = rg.observations(market, config=rg.RegimeConfig(censor_floored=False))
    assert raw.n_censored == 0 and raw.meta["n_floored"] == 1


def test_obs_validation():
    with pytest.raises(ValueError, match="finite"):
        rg.RegimeObs(log_rv=np.array([1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match="censor_log_rv"):
        rg.RegimeObs(log_rv=np.zeros(3), censored=np.array([True, False, False]))
    with pytest.raises(ValueError, match="increase"):
        rg.truth_arrays({f"log_rv_mean[{r}]": 0.0 for r in REGIMES})


# --------------------------------------------------------------------------- recovery (NumPyro)
RECOVERY = SamplerConfig(sampler="numpyro", draws=200, tune=200, chains=2, seed=1, progressbar=False)
RECOVERY_BARS, RECOVERY_SEED = 400, 5  # a path that visits every regime >= 30 bars (asserted)


@pytest.fixture(scope="module")
def recovery():
    obs = rg.simulate(None, RECOVERY_SEED, n_bars=RECOVERY_BARS)
    assert np.bincount(obs.regimes, minlength=K).min() >= 30
    t0 = time.perf_counter()
    idata = rg.fit(obs, RECOVERY)
    return obs, idata, time.perf_counter() - t0


def test_em_reference_finds_every_regime():
    """The EM start: with unequal occupancy the quantile start alone puts two states
    on one regime (this path: 129/172/68/31 bars); the multi-start EM does not."""
    obs = rg.simulate(None, RECOVERY_SEED, n_bars=RECOVERY_BARS)
    em = rg.em_fit(obs)
    truth = rg.truth_arrays({f"sigma_bps[{r}]": v for r, v in zip(REGIMES, (0.10, 0.17, 0.27, 0.40))})
    assert np.max(np.abs(em["log_rv_mean"] - truth["log_rv_mean"])) < 0.2
    assert rg.path_accuracy(np.argmax(em["smoothed"], axis=1), obs.regimes) > 0.9
    assert em["converged"] and len(em["starts"]) == 6 + math.comb(len(rg.em.START_QUANTILES), K)


def test_em_finds_a_regime_of_three_percent_of_the_bars():
    """A busy synthetic hour (every arrival rate x 5, seed 11: 51/210/87/12 bars per
    regime) where the six original starts all merge high and extreme and split normal
    (best MAP objective -664.7, 52 % of the bars decoded right; NUTS started there put
    2 of 4 chains in each mode: R-hat 1.75, 56 divergences). A start among the quantile
    subsets (:data:`models.regime.em.START_QUANTILES`) finds the better optimum."""
    from flows.fitting import observation_config
    from models import catalog
    from models.data.observations import volatility_bars
    from models.data.synthetic import SyntheticConfig, simulate_market

    base = SyntheticConfig.busy()
    cfg = SyntheticConfig.busy(arrival_rate=tuple(tuple(5 * r for r in pair) for pair in base.arrival_rate))
    m = simulate_market(11, 3600.0, cfg)
    oc = observation_config(m, {})
    bars = volatility_bars(m, oc)
    obs = catalog.prepare("regime", m, bars=bars, config=oc)
    true = np.asarray(catalog.regime_path(m, "truth", bars=bars, config=oc))
    assert np.bincount(true, minlength=K).tolist() == [51, 210, 87, 12]
    em = rg.em_fit(obs)
    upper = [obs.log_rv[true == k].mean() for k in (2, 3)]  # high, extreme: the two the old starts merged
    assert np.max(np.abs(em["log_rv_mean"][2:] - upper)) < 0.2, (em["log_rv_mean"], upper)
    assert rg.path_accuracy(np.argmax(em["smoothed"], axis=1), true) > 0.85
    old = rg.em_fit(obs, start_quantiles=())  # the original six starts: the worse optimum
    assert old["objective"] < em["objective"] - 10.0 and len(old["starts"]) == 6
    assert rg.path_accuracy(np.argmax(old["smoothed"], axis=1), true) < 0.6


def test_recovery_from_simulation(recovery):
    """Every true emission mean/sd and stay probability is inside its 99 % posterior
    interval, and at most 2 of the 12 fall outside the 90 % interval (12 checks at
    90 % each: a calibrated posterior has all 12 inside only 28 % of the time; <= 2
    outside has probability 0.89)."""
    obs, idata, wall = recovery
    truth = obs.meta["truth"]
    names = ([f"log_rv_mean[{r}]" for r in REGIMES] + [f"log_rv_sd[{r}]" for r in REGIMES]
             + [f"regime_transition[{r},{r}]" for r in REGIMES])
    post = idata.posterior
    draws = {}
    for r in REGIMES:
        draws[f"log_rv_mean[{r}]"] = post["log_rv_mean"].sel(regime=r).values.ravel()
        draws[f"log_rv_sd[{r}]"] = post["log_rv_sd"].sel(regime=r).values.ravel()
        draws[f"regime_transition[{r},{r}]"] = post["regime_transition"].sel(
            regime_from=r, regime_to=r).values.ravel()
    out90, out99 = [], []
    for n in names:
        q = np.quantile(draws[n], [0.005, 0.05, 0.95, 0.995])
        line = f"{n}: true {truth[n]:.4f}, 90% [{q[1]:.4f}, {q[2]:.4f}], 99% [{q[0]:.4f}, {q[3]:.4f}]"
        if not q[1] <= truth[n] <= q[2]:
            out90.append(line)
        if not q[0] <= truth[n] <= q[3]:
            out99.append(line)
    print("outside the 90% interval:", out90)
    assert not out99, out99
    assert len(out90) <= 2, out90
    d = diagnostics(idata)
    assert d["r_hat_max"] < 1.05, (d["r_hat_worst"], d["r_hat_max"])  # ordered means: no label switching
    assert d["divergences"] <= 2
    # decoded path
    acc = rg.path_accuracy(rg.regime_path(idata, obs), obs.regimes)
    assert acc >= 0.9, acc
    # pointwise log-likelihood for LOO: one term per bar
    ll = idata.log_likelihood["log_rv"]
    assert ll.shape == (2, RECOVERY.draws, obs.n_bars)
    assert np.isfinite(d["loo_elpd"])
    assert idata.attrs["model_version"].startswith("regime-")
    # persistence: the posterior mean stay probabilities as durations (true 0.95-0.98: 20-50 bars)
    per = json.loads(idata.attrs["regime_persistence"])
    stay = post["regime_transition"].mean(("chain", "draw")).values.diagonal()
    np.testing.assert_allclose([per["duration_bars"][r] for r in REGIMES], 1 / (1 - stay), rtol=1e-6)
    assert per["min_duration_bars"] > 10 and per["shortest"] == REGIMES[int(np.argmax(-1 / (1 - stay)))]
    print(f"numpyro recovery: {obs.n_bars} bars, {wall:.1f} s, accuracy {acc:.3f}, "
          f"r_hat {d['r_hat_max']:.3f}, ess_bulk {d['ess_bulk_min']:.0f}, divergences {d['divergences']}")


def test_summarize_round_trip(recovery):
    from mm_runtime.bundle import DirichletSummary, LogNormalSummary, NormalInverseGammaSummary

    _, idata, _ = recovery
    summ = rg.summarize(idata)
    assert set(summ) == {"regime_transition", "regime_emission", "sigma_bps"}
    post = idata.posterior
    P = post["regime_transition"].stack(s=("chain", "draw")).transpose("s", ...).values
    B = idata.attrs["bar_seconds"]
    for i, r in enumerate(REGIMES):
        d = DirichletSummary(**summ["regime_transition"][r])
        np.testing.assert_allclose(d.mean(), P[:, i, :].mean(axis=0), rtol=0, atol=1e-9)
        # the posterior is far more concentrated than the prior (13 pseudo-transitions)
        assert sum(d.concentration) > 13
        nig = NormalInverseGammaSummary(**summ["regime_emission"][r])
        m = post["log_rv_mean"].sel(regime=r).values.ravel()
        s = post["log_rv_sd"].sel(regime=r).values.ravel()
        assert abs(nig.mu - np.mean(0.5 * m + math.log(1e4) - 0.5 * math.log(B))) < 1e-9
        assert abs(nig.scale / (nig.shape - 1) - np.mean(0.25 * s**2)) < 1e-9
        ln = LogNormalSummary(**summ["sigma_bps"][r])
        sig = post["sigma_bps"].sel(regime=r).values.ravel()
        assert abs(ln.median() / np.median(sig) - 1) < 0.02
    mus = [summ["regime_emission"][r]["mu"] for r in REGIMES]
    assert np.all(np.diff(mus) > 0)  # the bundle requires increasing emission means


# --------------------------------------------------------------------------- other samplers
SMOKE_BARS = 100  # simulate(None, 0, n_bars=100) visits every regime (15/13/31/41 bars)


def _smoke(sampler: str, tune: int, draws: int, model_config: rg.RegimeConfig | None = None, **kw):
    obs = rg.simulate(None, 0, n_bars=SMOKE_BARS)
    cfg = SamplerConfig(sampler=sampler, draws=draws, tune=tune, chains=2, cores=1, seed=1, progressbar=False,
                        **kw)
    t0 = time.perf_counter()
    idata = rg.fit(obs, cfg, model_config)
    wall = time.perf_counter() - t0
    assert idata.log_likelihood["log_rv"].shape == (2, draws, SMOKE_BARS)
    acc = rg.path_accuracy(rg.regime_path(idata, obs, method="mean"), obs.regimes)
    d = diagnostics(idata)
    print(f"{sampler} sampler: {SMOKE_BARS} bars, {tune}+{draws} iterations x 2 chains, {wall:.1f} s "
          f"(compilation included), accuracy {acc:.3f}, r_hat {d['r_hat_max']:.3f}")
    assert acc >= 0.85, acc
    # each chain decodes the path on its own (no label switching, no chain stuck in a
    # wrong labelling). Not the chains' state means within 0.3: with 13 normal bars that
    # state's mean has a minor mode ~0.4 away that 60 draws do not cross (2 of 4 sampler
    # seeds, with either EM start)
    for c in idata.posterior.chain.values:
        acc_c = rg.path_accuracy(rg.regime_path(idata.sel(chain=[c]), obs, method="mean"), obs.regimes)
        assert acc_c >= 0.85, (c, acc_c, idata.posterior["log_rv_mean"].mean("draw").values)


@pytest.mark.heavy
def test_pymc_default_sampler_smoke():
    """PyMC's own NUTS on the C backend (the likelihood Ops' perform call the jitted
    JAX functions), kept to a small run."""
    _smoke("pymc", tune=100, draws=60)


def test_nutpie_sampler():
    """nutpie (SamplerConfig's default, JAX backend, JAX's gradient through the
    likelihood Op's custom VJP): compiles and samples."""
    _smoke("nutpie", tune=150, draws=60)


@pytest.mark.heavy
def test_nutpie_numba_backend():
    """nutpie's numba backend on the pytensor-scan reference graph (1-2.5 minutes of
    numba compilation on a fresh machine; with the default JAX Op, fit runs nutpie's
    JAX backend)."""
    _smoke("nutpie", tune=150, draws=60, model_config=rg.RegimeConfig(likelihood="scan"), nutpie_backend="numba")


# --------------------------------------------------------------------------- synthetic market
def test_end_to_end_synthetic_market():
    """One hour of the synthetic market (360 bars of 10 s), decoded path vs the truth.

    Why the bound is 0.75 and not the ~0.95 of the model's own data: the synthetic
    market's log rv per regime is not Gaussian. Informed sweeps jump the mid by
    ~4-6 bp, which outweighs a whole bar of diffusion, so each regime's log rv is a
    mixture of jump-free bars (at log(sigma_r^2 B)) and jump bars (near log J^2,
    the same for every regime), with the jump share rising from ~7 % (low) to
    ~60 % (extreme) of bars (models/data/synthetic.py). A 4-state Gaussian HMM
    then spends its upper states partly on jump bars. Measured on one-hour markets
    (seeds 1-8): decoding with the *true* emission densities and P gives 94-99.7 %,
    with Gaussians at the true per-regime moments 78-95 %, the fitted Gaussian HMM
    (EM reference) 65-87 %, the placeholder quantile labelling 33-71 %. This seed's
    hour gives ~0.82-0.87 (the posterior of the upper rows is bimodal, "jump-bar
    state" vs "persistent level", so r_hat is poor on one hour and it varies a bit
    between runs)."""
    import pandas as pd

    from models.data.observations import label_regimes
    from models.data.synthetic import simulate_market

    market = simulate_market(7, duration_s=3600.0)
    obs = rg.observations(market)
    assert obs.regimes is not None and obs.n_bars == 360 and obs.n_censored == 0
    cfg = SamplerConfig(sampler="numpyro", draws=100, tune=150, chains=2, seed=1, progressbar=False)
    idata = rg.fit(obs, cfg)
    path = rg.regime_path(idata, obs)
    acc = rg.path_accuracy(path, obs.regimes)
    placeholder = rg.path_accuracy(label_regimes(pd.DataFrame({"log_rv": obs.log_rv})), obs.regimes)
    d = diagnostics(idata)
    print(f"synthetic market: accuracy {acc:.3f} (placeholder quantile labelling {placeholder:.3f}), "
          f"r_hat {d['r_hat_max']:.2f} ({d['r_hat_worst']}); confusion (true x decoded):\n"
          f"{np.histogram2d(obs.regimes, path, bins=[np.arange(5) - 0.5] * 2)[0].astype(int)}")
    assert acc >= 0.75, acc
    assert acc > placeholder + 0.05
    # the quiet regimes are decoded almost perfectly; the errors sit in high/extreme
    assert np.mean(path[obs.regimes == 0] == 0) > 0.9


@pytest.mark.heavy  # ~30-120 s: outside the default run (suite budget); `./mm test -m heavy`
def test_recovery_on_synthetic_market_jump_robust_bars():
    """Issue #3: on the synthetic market itself (not regime.simulate), with MedRV
    bars on a 0.1 s grid (``volatility_estimator="medrv"``, Andersen, Dobrev &
    Schaumburg 2012; ``rv_sample_seconds=0.1``: 100 returns per 10 s bar), the
    regime model recovers the market's truth: the decoded path, every regime's
    *diffusive* volatility (``sigma_diffusion_bps``, what jump-robust bars measure:
    :func:`models.regime.market_truth`) and the transition probabilities.

    Why it can fail: with realized-variance bars the top states collect the
    informed-jump bars (test_end_to_end_synthetic_market): on this hour the EM
    decoding of realized bars (checked here, no sampling) stays below the accuracy
    the MedRV fit must reach, and the top state's sigma_bps lies 4-5x above the
    extreme regime's diffusion level (benchmarks/README.md, "regime on the
    synthetic market: jump-robust bars").
    The extreme regime's MedRV sigma is ~5 % high (measured 0.41-0.44 against
    0.40): Hawkes-clustered informed jumps sometimes fall in neighbouring 0.1 s
    returns, which nearest-neighbour truncation does not remove; hence the 10 %
    tolerance on the posterior means next to the interval count. Seed 1005
    visits all four regimes (118/90/78/74 bars). Measured on the shared 2-core
    machine: 37 s after another regime fit in the same session (graph compiled),
    125 s alone under load average 6, 29 s in a full warm run: marked heavy, so the
    default run (CI) leaves it out; `./mm test -m heavy` runs it."""
    from models.data.observations import ObservationConfig
    from models.data.synthetic import simulate_market

    market = simulate_market(1005, duration_s=3600.0)
    oc = ObservationConfig(volatility_estimator="medrv", rv_sample_seconds=0.1)
    obs = rg.observations(market, config=oc)
    assert obs.n_bars == 360 and obs.meta["observation_config"]["volatility_estimator"] == "medrv"
    counts = np.bincount(obs.regimes, minlength=K)
    assert counts.min() >= 50, counts  # the seed still visits every regime
    # the contrast: realized-variance bars of the same hour (EM decoding, no sampling)
    raw = rg.observations(market, config=ObservationConfig(volatility_estimator="realized"))
    acc_raw = rg.path_accuracy(np.argmax(rg.em_fit(raw)["smoothed"], axis=1), raw.regimes)
    assert acc_raw < 0.9, acc_raw

    cfg = SamplerConfig(sampler="numpyro", draws=150, tune=150, chains=2, seed=2, progressbar=False,
                        log_likelihood=False)
    t0 = time.perf_counter()
    idata = rg.fit(obs, cfg, rg.RegimeConfig(observation=oc))
    wall = time.perf_counter() - t0
    path = rg.regime_path(idata, obs)
    acc = rg.path_accuracy(path, obs.regimes)
    truth = rg.market_truth(market.truth, oc)
    assert truth["sigma_bps[low]"] == market.truth["params"]["sigma_diffusion_bps[low]"]
    d = rg.posterior_draws(idata)
    out90, rel = [], {}
    for k, r in enumerate(REGIMES):
        x, t = d["sigma_bps"][:, k], truth[f"sigma_bps[{r}]"]
        q = np.quantile(x, [0.05, 0.95])
        rel[r] = float(x.mean() / t - 1.0)
        if not q[0] <= t <= q[1]:
            out90.append(f"sigma_bps[{r}]: true {t:.3f}, 90% [{q[0]:.3f}, {q[1]:.3f}]")
    for i, a in enumerate(REGIMES):
        for j, b in enumerate(REGIMES):
            t = truth[f"regime_transition[{a},{b}]"]
            q = np.quantile(d["regime_transition"][:, i, j], [0.05, 0.95])
            if not q[0] <= t <= q[1]:
                out90.append(f"regime_transition[{a},{b}]: true {t:.3f}, 90% [{q[0]:.3f}, {q[1]:.3f}]")
    print(f"synthetic market, MedRV bars: accuracy {acc:.3f} (realized bars, EM: {acc_raw:.3f}), "
          f"{wall:.0f} s; sigma_bps mean / truth - 1: {rel}; outside the 90% interval: {out90}")
    assert acc >= 0.95, acc
    assert all(abs(v) < 0.10 for v in rel.values()), rel
    # 4 sigmas + 16 transition probabilities at 90 %: a calibrated posterior leaves
    # <= 4 of 20 outside with probability ~0.96 (as if independent)
    assert len(out90) <= 4, out90
