"""Held-out scoring (models/heldout.py and the models' heldout_lpd functions): the
predictive density from pointwise log-likelihoods, paired differences, the promotion
rule, and each model's held-out terms against an independent computation (the
forward algorithm, the Hawkes likelihood, the kappa model's own log-likelihood)."""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import pytest
from scipy.special import logsumexp

from models import hawkes as H
from models import heldout
from models import kappa as kp
from models import regime as rg
from models.data.observations import REGIMES
from models.sampling import SamplerConfig, paired_difference, predictive_density


# --------------------------------------------------------------------------- the arithmetic
def test_predictive_density_is_log_mean_density_per_unit():
    rng = np.random.default_rng(0)
    ll = rng.normal(-2.0, 0.5, (50, 7))
    r = predictive_density(ll)
    e = np.log(np.exp(ll).mean(axis=0))
    np.testing.assert_allclose(r["pointwise"], e, rtol=1e-12)
    assert r["elpd"] == pytest.approx(e.sum())
    assert r["se"] == pytest.approx(math.sqrt(7 * np.var(e)))  # sqrt(n var), Vehtari et al. 2017
    w = np.arange(1.0, 8.0)
    rw = predictive_density(ll, w)
    assert rw["elpd"] == pytest.approx(np.sum(w * e))
    with pytest.raises(ValueError, match="weight"):
        predictive_density(ll, np.ones(3))


def test_paired_difference_uses_the_pointwise_differences():
    rng = np.random.default_rng(1)
    common = rng.normal(-3.0, 2.0, 200)           # most variation is shared between the two
    a = {"pointwise": common + 0.05, "weight": np.ones(200), "elpd": (common + 0.05).sum(), "se": 28.0}
    b = {"pointwise": common + rng.normal(0, 0.01, 200), "weight": np.ones(200), "se": 28.0}
    b["elpd"] = b["pointwise"].sum()
    d = paired_difference(a, b)
    assert d["paired"] and d["elpd_diff"] == pytest.approx(a["elpd"] - b["elpd"])
    assert d["se"] < 1.0                          # paired: the shared variation cancels
    c = {"pointwise": common[:100], "weight": np.ones(100), "elpd": common[:100].sum(), "se": 20.0}
    u = paired_difference(a, c)
    assert not u["paired"] and u["se"] == pytest.approx(math.hypot(28.0, 20.0))


def _row(model, diff, se, comparable=True):
    return {"model": model, "challenger_elpd": 10.0 + diff, "champion_elpd": 10.0, "elpd_diff": diff, "se": se,
            "paired": True, "comparable": comparable}


def test_promotion_rule():
    assert heldout.decide([], has_champion=False)[:2] == (True, "no champion yet")
    promote, reason, total = heldout.decide([_row("alpha", 5.0, 1.0), _row("kappa", 3.0, 1.0)], True)
    assert promote and total["elpd_diff"] == 8.0 and total["se"] == pytest.approx(math.sqrt(2))
    promote, reason, _ = heldout.decide([_row("alpha", 2.0, 1.5)], True)
    assert not promote and "no clear difference" in reason
    promote, reason, _ = heldout.decide([_row("alpha", -9.0, 1.0)], True)
    assert not promote and "worse" in reason
    # a model scored on other units (bars of another length) does not count
    promote, _, total = heldout.decide([_row("regime", 100.0, 1.0, comparable=False), _row("alpha", 0.1, 1.0)], True)
    assert not promote and total["unit"] == "alpha"
    assert heldout.decide([_row("regime", 100.0, 1.0, comparable=False)], True)[0] is False


def test_compare_table_and_markdown():
    rng = np.random.default_rng(2)
    ch = {m: predictive_density(rng.normal(-1, 0.1, (20, 30))) for m in ("alpha", "kappa")}
    champ = {m: predictive_density(rng.normal(-1.5, 0.1, (20, 30))) for m in ("alpha", "kappa")}
    cmp = heldout.compare(ch, champ, z=2.0)
    assert [r["model"] for r in cmp.rows] == ["alpha", "kappa", "total"]
    assert cmp.promote and cmp.rows[-1]["elpd_diff"] > 0
    md = cmp.markdown()
    assert md.startswith("| model |") and "promote the challenger" in md
    first = heldout.compare(ch, None)
    assert first.promote and first.reason == "no champion yet" and first.rows[0]["champion_elpd"] is None


# --------------------------------------------------------------------------- the models' held-out terms
def test_regime_heldout_terms_are_the_forward_normalisers():
    rng = np.random.default_rng(3)
    obs = rg.simulate(None, 4, n_bars=120)
    S, K = 3, len(REGIMES)
    m = np.sort(rng.normal(-20, 1.0, (S, K)), axis=1)
    s = rng.uniform(0.3, 0.8, (S, K))
    P = np.stack([rng.dirichlet(1.0 + 30 * np.eye(K)[k], size=S) for k in range(K)], axis=1)
    pi = rg.stationary_distribution(P)
    idata = az.from_dict(posterior={"log_rv_mean": m[None], "log_rv_sd": s[None], "regime_transition": P[None],
                                    "regime_stationary": pi[None], "sigma_bps": np.ones((1, S, K))})
    idata.attrs["bar_seconds"] = obs.bar_seconds
    r = rg.heldout_lpd(idata, obs)
    c = np.stack([rg.forward(rg.emission_logp(obs.log_rv, m[i], s[i]), np.log(P[i]), np.log(pi[i]))[1]
                  for i in range(S)])
    np.testing.assert_allclose(r["pointwise"], logsumexp(c, axis=0) - math.log(S), rtol=1e-10)
    # one draw: the held-out elpd is that draw's log-likelihood of the bars
    one = idata.isel(draw=[0])
    total = rg.forward_backward(rg.emission_logp(obs.log_rv, m[0], s[0]), np.log(P[0]), np.log(pi[0]))[1]
    assert rg.heldout_lpd(one, obs)["elpd"] == pytest.approx(float(total), rel=1e-10)
    bad = rg.RegimeObs(log_rv=obs.log_rv, bar_seconds=30.0)
    with pytest.raises(ValueError, match="bars"):
        rg.heldout_lpd(idata, bad)


def test_hawkes_heldout_at_one_draw_is_the_loglikelihood():
    rng = np.random.default_rng(4)
    truth = H.HawkesTruth(baseline=((0.2, 0.3), (0.3, 0.2), (0.5, 0.4), (0.8, 0.7)),
                          branching=((0.2, 0.1), (0.1, 0.2)), decay=1.5,
                          regime_path=tuple(int(x) for x in rng.integers(0, 4, 30)), duration_s=300.0, asset="SYN")
    obs = H.simulate(truth, rng)
    p = truth.params()
    post = {"hawkes_baseline": np.asarray(p["mu"])[None, None], "hawkes_branching": np.asarray(p["n"])[None, None],
            "hawkes_decay": np.asarray([[p["beta"]]])}
    idata = az.from_dict(posterior=post, dims={"hawkes_baseline": ["regime", "side"],
                                               "hawkes_branching": ["target", "source"]})
    idata.attrs["assets"] = '["SYN"]'
    r = H.heldout_lpd(idata, obs)
    assert r["n"] == obs.n_events and r["unit"] == "arrivals"
    assert r["elpd"] == pytest.approx(H.loglik_naive(p, obs), rel=1e-8)
    with pytest.raises(ValueError, match="not in the fit"):
        H.heldout_lpd(idata, obs, asset="OTHER")


@pytest.fixture(scope="module")
def kappa_fit():
    obs = kp.simulate_hawkes(_kappa_truth(), 6)
    idata = kp.fit(obs, SamplerConfig(sampler="pymc", draws=60, tune=60, chains=1, cores=1, seed=2,
                                      progressbar=False))
    return obs, idata


def _kappa_truth() -> dict:
    p = {}
    for i, r in enumerate(REGIMES):
        for s in ("buy", "sell"):
            p[f"kappa[{r},{s}]"] = 0.5 - 0.1 * i
            p[f"arrival_rate[{r},{s}]"] = 0.3 + 0.2 * i
    return {"params": p, "regime_path": [(i // 15) % 4 for i in range(180)], "bar_seconds": 10.0}


def test_kappa_heldout_terms_equal_the_models_loglikelihood(kappa_fit):
    """On the fitted data itself, heldout_lpd's per-row terms are the fit's own
    pointwise log-likelihood (PyMC's logp of ``arrivals``): the same NB1 + depth
    formula, written once in PyMC and once in scipy."""
    obs, idata = kappa_fit
    r = kp.heldout_lpd(idata, obs, max_draws=None)
    ll = idata.log_likelihood["arrivals"].transpose("chain", "draw", ...).values
    ll = ll.reshape(-1, ll.shape[2])
    np.testing.assert_allclose(r["pointwise"], logsumexp(ll, axis=0) - math.log(ll.shape[0]), rtol=1e-8, atol=1e-8)
    assert r["n"] == 2 * kp.block_rows(obs)["n_blocks"]
