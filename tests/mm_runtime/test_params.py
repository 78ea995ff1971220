"""The learned-parameter registry (mm_runtime.params, issue #7 items 1 and 5):
default priors and posteriors against closed forms (scipy.stats), evidence checks,
tier status, learned-vs-prior selection, bundle priors, atomic save/restore,
metrics and the periodic log record."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from scipy import stats

import mm_runtime as mr
from mm_runtime.bundle import PriorBundle
from mm_runtime.estimators import prior_arrays
from mm_runtime.logs import JsonFormatter
from mm_runtime.metrics import RuntimeMetrics
from mm_runtime.params import (
    DEFAULT_SPECS,
    Evidence,
    Registry,
    RegistryStateError,
    check_evidence,
    param_spec,
)

RTOL = 1e-9
Q = (0.025, 0.975)


def spec(name):
    return next(s for s in DEFAULT_SPECS if s.name == name)


# ----------------------------------------------------------------------------- priors
def test_default_priors_match_the_issue():
    r = Registry()
    # Beta(mean m, strength s): a = m s, b = (1 - m) s
    assert r.prior("alpha_touch") == (2.0, 6.0)
    assert r.prior("max_daily_loss_fraction") == pytest.approx((1.0, 49.0))
    assert r.prior("microprice_decay") == pytest.approx((999.0, 1.0))
    # Gamma(mean m, strength s): shape s, rate s/m
    assert r.prior("gamma_base") == pytest.approx((3.0, 20.0))
    assert r.prior("kappa") == pytest.approx((4.0, 20.0))  # 2000 per price fraction = 0.2 per bp
    # Normal(5, var 4), worth one observation
    assert r.prior("spread_floor_bps") == (5.0, 4.0, 4.0)
    # InverseGamma(mean m, strength s): shape s/2, scale m (shape - 1)
    assert r.prior("kalman_q") == pytest.approx((10.0, 9.0, 0.0))
    assert r.prior("kalman_r") == pytest.approx((10.0, 2.25, 0.0))
    for s in DEFAULT_SPECS:
        assert r.prior_mean(s.name) == pytest.approx(s.mean, rel=1e-12), s.name
        assert r.n(s.name) == 0 and r.data_weight(s.name) == 0
        assert r.estimate(s.name) == pytest.approx(s.mean, rel=1e-12)
    # LogNormal(mean 1.5, cv 0.2): the estimate is 1.5 and the median's prior cv is 0.2
    assert r.cv("depth_spacing_ratio") == pytest.approx(0.2, rel=1e-12)
    assert [s.tier for s in DEFAULT_SPECS] == [1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 4]


def test_thresholds_from_the_power_analysis():
    got = {s.name: s.min_n for s in DEFAULT_SPECS}
    assert got == {
        "alpha_touch": 170, "gamma_base": 31, "spread_floor_bps": 30, "toxic_hour_multiplier": 30,
        "max_daily_loss_fraction": 1473, "max_drawdown": 571, "cascade_oi_threshold": 1473,
        "kappa": 68, "hawkes_mu": 84, "hawkes_alpha": 70, "hawkes_beta": 31, "regime_sticky_diagonal": 571,
        "kalman_q": 65, "kalman_r": 65, "depth_spacing_ratio": 30, "microprice_decay": 30031,
    }
    assert spec("kappa").max_cv == pytest.approx(0.2 / 1.6448536269514715)
    assert spec("gamma_base").max_cv == pytest.approx(0.3 / 1.6448536269514715)
    # hand check: Beta at p = 0.05 (1 - 0.95), ±30 % at 90 %: (1.6449/0.3)² · 19 − 1 = 570.2 → 571
    assert math.ceil((1.6448536269514715 / 0.3) ** 2 * 19 - 1) == 571
    # Inverse-Gamma: 2/c² + 4 = 64.1 → 65
    assert math.ceil(2 / (0.3 / 1.6448536269514715) ** 2 + 4) == 65


# ----------------------------------------------------------------------------- closed forms
def test_beta_posterior_against_scipy():
    r = Registry()
    r.update(Evidence.bernoulli("alpha_touch", 30, 200, source="fills"))
    a, b = 2.0 + 30, 6.0 + 170
    assert r.posterior("alpha_touch") == (a, b)
    d = stats.beta(a, b)
    assert r.estimate("alpha_touch") == pytest.approx(d.mean(), rel=RTOL)
    assert r.interval("alpha_touch") == pytest.approx(d.ppf(Q), rel=1e-9)
    assert r.data_weight("alpha_touch") == pytest.approx(200 / 208)
    assert r.summary("alpha_touch").std == pytest.approx(d.std(), rel=RTOL)
    # a soft update: weight 0.5 halves the statistics
    r2 = Registry()
    r2.update(Evidence.bernoulli("alpha_touch", 30, 200, weight=0.5))
    assert r2.posterior("alpha_touch") == (2.0 + 15, 6.0 + 85)


def test_gamma_poisson_and_exponential_against_scipy():
    r = Registry()
    r.update(Evidence.poisson("hawkes_mu", 120, 200.0))  # Gamma(5, 10) + 120 events in 200 s
    d = stats.gamma(5 + 120, scale=1 / (10 + 200.0))
    assert r.posterior("hawkes_mu") == pytest.approx((125.0, 210.0))
    assert r.estimate("hawkes_mu") == pytest.approx(d.mean(), rel=RTOL)
    assert r.interval("hawkes_mu") == pytest.approx(d.ppf(Q), rel=1e-9)
    assert r.data_weight("hawkes_mu") == pytest.approx(120 / 125)

    r.update(Evidence.exponential("kappa", 50, 300.0))  # Gamma(4, 20) + 50 depths summing to 300 bps
    d = stats.gamma(4 + 50, scale=1 / (20 + 300.0))
    assert r.posterior("kappa") == pytest.approx((54.0, 320.0))
    assert r.interval("kappa") == pytest.approx(d.ppf(Q), rel=1e-9)
    assert r.n("kappa") == pytest.approx(50)


def test_normal_known_variance_against_closed_form():
    rng = np.random.default_rng(0)
    xs = rng.normal(6.0, 2.0, 25)
    r = Registry()
    r.update(Evidence.of_values("spread_floor_bps", xs))
    prec = 1 / 4 + len(xs) / 4  # prior var 4, obs var 4
    mu = (5 / 4 + xs.sum() / 4) / prec
    assert r.posterior("spread_floor_bps") == pytest.approx((mu, 1 / prec, 4.0), rel=1e-12)
    assert r.interval("spread_floor_bps") == pytest.approx(stats.norm(mu, prec**-0.5).ppf(Q), rel=1e-9)
    assert r.n("spread_floor_bps") == pytest.approx(25)


def test_inverse_gamma_against_scipy():
    rng = np.random.default_rng(1)
    xs = rng.normal(0.0, 1.2, 40)  # innovations, bps; known mean 0
    r = Registry()
    r.update(Evidence.of_values("kalman_q", xs))
    shape, scale = 10 + 20, 9 + 0.5 * float(np.sum(xs**2))
    assert r.posterior("kalman_q") == pytest.approx((shape, scale, 0.0), rel=1e-12)
    d = stats.invgamma(shape, scale=scale)
    assert r.estimate("kalman_q") == pytest.approx(d.mean(), rel=RTOL)
    assert r.interval("kalman_q") == pytest.approx(d.ppf(Q), rel=1e-8)
    assert r.data_weight("kalman_q") == pytest.approx(40 / 60)  # strength 2·shape


def test_lognormal_against_the_nig_closed_form():
    rng = np.random.default_rng(2)
    xs = rng.lognormal(math.log(1.7), 0.15, 12)
    r = Registry()
    mu0, lam0, a0, b0 = r.prior("depth_spacing_ratio")
    r.update(Evidence.of_values("depth_spacing_ratio", xs))
    y = np.log(xs)
    n, ybar = len(y), y.mean()
    lam = lam0 + n  # Murphy (2007) eqs. 86-89
    mu = (lam0 * mu0 + n * ybar) / lam
    a = a0 + n / 2
    b = b0 + 0.5 * np.sum((y - ybar) ** 2) + lam0 * n * (ybar - mu0) ** 2 / (2 * lam)
    assert r.posterior("depth_spacing_ratio") == pytest.approx((mu, lam, a, b), rel=1e-10)
    t = stats.t(2 * a, loc=mu, scale=math.sqrt(b / (lam * a)))
    assert r.interval("depth_spacing_ratio") == pytest.approx(np.exp(t.ppf(Q)), rel=1e-8)
    assert r.estimate("depth_spacing_ratio") == pytest.approx(math.exp(mu + 0.5 * b / (a - 1)), rel=1e-12)


# ----------------------------------------------------------------------------- evidence checks
@pytest.mark.parametrize(
    "ev, words",
    [
        (Evidence.poisson("hawkes_mu", -1, 10), ("'hawkes_mu'", "count", ">= 0")),
        (Evidence.poisson("hawkes_mu", 1, -10), ("'hawkes_mu'", "exposure")),
        (Evidence.bernoulli("alpha_touch", 5, 3), ("'alpha_touch'", "successes", "trials")),
        (Evidence.bernoulli("alpha_touch", -1, 3), ("'alpha_touch'", "successes")),
        (Evidence.of_values("spread_floor_bps", [1.0, math.nan]), ("'spread_floor_bps'", "values[1]", "finite")),
        (Evidence.of_values("kalman_r", [0.1, math.inf]), ("'kalman_r'", "values[1]")),
        (Evidence.of_values("depth_spacing_ratio", [1.2, -1.0]), ("'depth_spacing_ratio'", "values[1]", "> 0")),
        (Evidence("alpha_touch", "counts"), ("'alpha_touch'", "kind", "unknown kind 'counts'")),
        (Evidence.of_values("alpha_touch", [0.2]), ("'alpha_touch'", "kind", "not conjugate", "beta")),
        (Evidence.poisson("spread_floor_bps", 1, 1), ("'spread_floor_bps'", "not conjugate", "normal")),
        (Evidence.exponential("kappa", 0, 3.0), ("'kappa'", "total", "count is 0")),
        (Evidence.bernoulli("alpha_touch", 1, 2, weight=0.0), ("'alpha_touch'", "weight")),
        (Evidence.bernoulli("alpha_touch", 1, 2, weight=1.5), ("'alpha_touch'", "weight")),
        (Evidence.bernoulli("alpha_tuch", 1, 2), ("'alpha_tuch'", "unknown parameter")),
    ],
)
def test_bad_evidence_is_refused_naming_parameter_and_field(ev, words):
    r = Registry()
    before = r.to_dict()
    with pytest.raises(ValueError) as exc:
        r.update_all([Evidence.bernoulli("alpha_touch", 1, 2), ev])  # the good one is not applied either
    for w in words:
        assert w in str(exc.value), (w, str(exc.value))
    assert r.to_dict() == before


def test_check_evidence_without_a_family():
    assert check_evidence(Evidence.of_values("x", [1.0, 2.0])) is not None
    with pytest.raises(ValueError, match="'x': kind"):
        check_evidence(Evidence("x", "nope"))


def test_empty_evidence_is_a_no_op():
    r = Registry()
    r.update_all([Evidence.of_values("kalman_q", []), Evidence.exponential("kappa", 0, 0),
                  Evidence.bernoulli("alpha_touch", 0, 0)])
    assert all(r.n(n) == 0 for n in r.names)


# ----------------------------------------------------------------------------- tiers
def _calibrate_tier1(r, short: str | None = None):
    """Feed tier 1 exactly min_n observations (one fewer for ``short``)."""
    n = {s.name: s.min_n - (s.name == short) for s in DEFAULT_SPECS if s.tier == 1}
    r.update(Evidence.bernoulli("alpha_touch", round(0.2 * n["alpha_touch"]), n["alpha_touch"]))
    r.update(Evidence.poisson("gamma_base", n["gamma_base"], n["gamma_base"] / 0.12))
    r.update(Evidence.of_values("spread_floor_bps", [6.0] * n["spread_floor_bps"]))
    r.update(Evidence.of_values("toxic_hour_multiplier", [1.2] * n["toxic_hour_multiplier"]))


@pytest.mark.parametrize("short", ["alpha_touch", "gamma_base", "spread_floor_bps", "toxic_hour_multiplier"])
def test_tier_is_not_ready_one_observation_short(short):
    r = Registry()
    _calibrate_tier1(r, short)
    st = r.calibration_status()
    assert not st.tier1_ready and not st.calibrated[short]
    assert sum(st.calibrated.values()) == 3
    assert r.value("spread_floor_bps") == 5.0  # prior mean while the tier is not ready
    assert r.summary(short).in_use == "prior"


def test_tier_flips_at_min_n_and_value_switches_to_learned():
    r = Registry()
    assert r.values() == {s.name: pytest.approx(s.mean) for s in DEFAULT_SPECS}
    _calibrate_tier1(r)
    st = r.calibration_status()
    assert st.tier1_ready and st.ready(1)
    assert not (st.tier2_ready or st.tier3_ready or st.tier4_ready)
    prec = 1 / 4 + 30 / 4
    assert r.value("spread_floor_bps") == pytest.approx((5 / 4 + 30 * 6 / 4) / prec)
    assert r.value("alpha_touch") == pytest.approx((2 + 34) / (8 + 170))
    assert r.value("kappa") == pytest.approx(0.2)  # tier 3 not ready: the prior
    s = r.summary("gamma_base")
    assert s.calibrated and s.tier_ready and s.in_use == "learned" and s.value == s.estimate


def test_max_cv_also_gates():
    # enough trials, but α so small that the posterior cv exceeds max_cv: not calibrated
    r = Registry()
    r.update(Evidence.bernoulli("alpha_touch", 0, 400))
    assert r.n("alpha_touch") >= 170 and r.cv("alpha_touch") > spec("alpha_touch").max_cv
    assert not r.is_calibrated("alpha_touch")


def test_complement_parameters_use_the_cv_of_one_minus_p():
    r = Registry()
    a, b = r.prior("regime_sticky_diagonal")
    assert r.cv("regime_sticky_diagonal") == pytest.approx(stats.beta(b, a).std() / stats.beta(b, a).mean())
    r.update(Evidence.bernoulli("regime_sticky_diagonal", 0.95 * 571, 571))
    assert r.is_calibrated("regime_sticky_diagonal")


def test_forgetting_halves_the_evidence():
    r = Registry()
    r.update(Evidence.bernoulli("alpha_touch", 40, 100))
    r.update(Evidence.of_values("kalman_q", [1.0] * 40))
    r.forget(dt=3600.0, half_life=3600.0)
    assert r.posterior("alpha_touch") == pytest.approx((2 + 20, 6 + 30))
    assert r.n("kalman_q") == pytest.approx(20)


# ----------------------------------------------------------------------------- bundle
def test_bundle_overrides_priors_by_moment_matching():
    b = mr.example_bundle("BTC")
    pi = np.asarray(prior_arrays(b).stationary)
    r = Registry.from_bundle(b)
    assert r.asset == "BTC"
    # alpha_touch: the stationary mixture of the first bucket's Betas, moments kept
    cells = [b.params.alpha[x]["[0,2)"] for x in mr.REGIMES]
    m = sum(w * c.mean() for w, c in zip(pi, cells))
    v = sum(w * (c.mean() * (1 - c.mean()) / (c.a + c.b + 1) + c.mean() ** 2) for w, c in zip(pi, cells)) - m * m
    a, bb = r.prior("alpha_touch")
    assert a / (a + bb) == pytest.approx(m, rel=1e-12)
    assert stats.beta(a, bb).var() == pytest.approx(v, rel=1e-9)
    # kappa: 1/bps in both; regimes × sides mixed
    cells = [b.params.kappa[x][s] for x in mr.REGIMES for s in mr.SIDES]
    m = sum(w / 2 * c.mean() for w, c in zip(np.repeat(pi, 2), cells))
    assert r.prior_mean("kappa") == pytest.approx(m, rel=1e-12)
    # hawkes_beta: lognormal → gamma with the same mean and variance
    d = b.params.hawkes_decay
    shape, rate = r.prior("hawkes_beta")
    assert shape / rate == pytest.approx(d.mean(), rel=1e-12)
    assert shape == pytest.approx(1 / math.expm1(d.sigma**2), rel=1e-12)
    # hawkes_alpha: both diagonal cells are Beta(6, 14)
    assert r.prior("hawkes_alpha") == pytest.approx((6.0, 14.0))
    # regime_sticky_diagonal: the diagonal marginals, stationary mix
    diag = [b.params.regime_transition[x].mean()[i] for i, x in enumerate(mr.REGIMES)]
    assert r.prior_mean("regime_sticky_diagonal") == pytest.approx(float(np.dot(pi, diag)), rel=1e-12)
    # not in the bundle: the default
    assert r.prior("gamma_base") == Registry().prior("gamma_base")
    assert r.summary("gamma_base").prior_source.startswith("default")
    assert "params.kappa" in r.summary("kappa").prior_source


def test_bundle_prior_strength_is_capped():
    b = mr.example_bundle()
    r = Registry.from_bundle(b, max_strength=5.0)
    a, bb = r.prior("hawkes_alpha")
    assert a + bb == pytest.approx(5.0) and a / (a + bb) == pytest.approx(0.3)
    assert r.prior("hawkes_beta").shape == pytest.approx(5.0)
    assert r.prior_mean("hawkes_beta") == pytest.approx(b.params.hawkes_decay.mean())


def test_bundle_extra_params_override_by_name():
    b = mr.example_bundle("ETH")
    doc = b.model_dump(mode="json")
    doc["params"]["spread_floor_bps"] = {"family": "normal", "mu": 7.0, "sigma": 1.0}
    doc["params"]["max_drawdown"] = {"family": "beta", "a": 3.0, "b": 57.0}
    r = Registry.from_bundle(PriorBundle.model_validate(doc))
    assert r.prior("spread_floor_bps") == pytest.approx((7.0, 1.0, 4.0))  # obs var kept: strength 4
    assert r.prior("max_drawdown") == pytest.approx((3.0, 57.0))
    assert "params.max_drawdown" in r.summary("max_drawdown").prior_source


# ----------------------------------------------------------------------------- save / restore
def _learned():
    r = Registry(asset="BTC")
    r.update_all([
        Evidence.bernoulli("alpha_touch", 12, 80, source="fills 2026-01-01"),
        Evidence.exponential("kappa", 40, 210.0, source="sweeps"),
        Evidence.of_values("kalman_r", [0.3, -0.6, 0.4, 0.1]),
        Evidence.of_values("depth_spacing_ratio", [1.3, 1.8, 1.6]),
    ])
    return r


def test_save_restore_round_trip(tmp_path):
    r = _learned()
    path = r.save(tmp_path / "state.json")
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == 1 and doc["kind"] == "mm_runtime.params.Registry" and doc["saved_at"]
    r2 = Registry()
    r2.load(path)
    assert r2.to_dict() == r.to_dict()
    assert r2.asset == "BTC"
    for n in r.names:
        assert r2.estimate(n) == r.estimate(n) and r2.interval(n) == r.interval(n)
    assert r2.summary("alpha_touch").sources == ("fills 2026-01-01",)


def _corrupt(path, how):
    doc = json.loads(path.read_text())
    if how == "truncated":
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
        return "invalid JSON"
    if how == "empty":
        path.write_bytes(b"")
        return "invalid JSON"
    if how == "schema":
        doc["schema_version"] = 2
        expect = "schema_version"
    elif how == "kind":
        doc["kind"] = "bundle"
        expect = "kind"
    elif how == "missing":
        del doc["params"]["kappa"]
        expect = "params.kappa: missing"
    elif how == "unknown":
        doc["params"]["kappa2"] = doc["params"]["kappa"]
        expect = "params.kappa2: unknown parameter"
    elif how == "family":
        doc["params"]["kappa"]["family"] = "beta"
        expect = "params.kappa.family"
    elif how == "support":
        doc["params"]["alpha_touch"]["posterior"]["b"] = -1.0
        expect = "params.alpha_touch.posterior.b"
    elif how == "fields":
        del doc["params"]["kalman_q"]["prior"]["scale"]
        expect = "params.kalman_q.prior"
    elif how == "asset":
        doc["asset"] = "ETH"
        expect = "asset"
    path.write_text(json.dumps(doc))
    return expect


@pytest.mark.parametrize(
    "how", ["truncated", "empty", "schema", "kind", "missing", "unknown", "family", "support", "fields", "asset"]
)
def test_bad_state_is_refused_and_the_previous_state_kept(tmp_path, how):
    path = _learned().save(tmp_path / "state.json")
    expect = _corrupt(path, how)
    r = Registry(asset="BTC")
    r.update(Evidence.poisson("hawkes_mu", 7, 10.0))
    before = r.to_dict()
    with pytest.raises(RegistryStateError) as exc:
        r.load(path)
    assert str(path) in str(exc.value) and expect in str(exc.value), str(exc.value)
    assert r.to_dict() == before


def test_non_finite_state_is_refused(tmp_path):
    path = _learned().save(tmp_path / "state.json")
    path.write_text(path.read_text().replace('"a": 14.0', '"a": NaN', 1))
    with pytest.raises(RegistryStateError, match="invalid JSON"):
        Registry().load(path)


def test_missing_state_file(tmp_path):
    with pytest.raises(RegistryStateError, match="cannot read"):
        Registry().load(tmp_path / "nope.json")


def test_load_keep_priors_rebases_the_evidence(tmp_path):
    path = _learned().save(tmp_path / "state.json")
    r = Registry.from_bundle(mr.example_bundle("BTC"))
    a0, b0 = r.prior("alpha_touch")
    s0, r0 = r.prior("kappa")
    r.load(path, keep_priors=True)
    assert r.prior("alpha_touch") == (a0, b0)
    assert r.posterior("alpha_touch") == pytest.approx((a0 + 12, b0 + 68))
    assert r.posterior("kappa") == pytest.approx((s0 + 40, r0 + 210.0))
    assert r.n("kalman_r") == pytest.approx(4) and r.n("depth_spacing_ratio") == pytest.approx(3)
    assert r.summary("kappa").prior_source.startswith("bundle")


# ----------------------------------------------------------------------------- metrics, logs
def test_metrics_published_beside_the_quoter():
    shared = RuntimeMetrics(CollectorRegistry())
    q = mr.Quoter(mr.example_bundle("BTC"), metrics=shared, replay=True)
    q.on_event(1.0, 30_000.0, margin_available=1e4, trade=(30_003.0, 1.0))
    q.update_metrics()
    r = Registry.from_bundle(mr.example_bundle("BTC"))
    r.update(Evidence.bernoulli("alpha_touch", 30, 200))
    r.publish(shared.for_asset("BTC"))
    get = shared.registry.get_sample_value
    a = {"asset": "BTC"}
    assert get("mm_learned_alpha_touch", a) == pytest.approx(r.estimate("alpha_touch"))
    assert get("mm_learned_alpha_touch_data_weight", a) == pytest.approx(r.data_weight("alpha_touch"))
    assert get("mm_learned_kalman_q", a) == pytest.approx(1.0)
    # kappa: the quoter's per-cell family, the registry's pooled cell "all"
    pooled = {"asset": "BTC", "regime": "all", "side": "all"}
    assert get("mm_learned_kappa", pooled) == pytest.approx(r.estimate("kappa"))
    assert get("mm_learned_kappa_data_weight", pooled) == 0.0
    assert get("mm_learned_kappa", {"asset": "BTC", "regime": "normal", "side": "buy"}) > 0
    for t in "1234":
        assert get("mm_learned_params_calibrated", {"asset": "BTC", "tier": t}) == 0.0
    _calibrate_tier1(r)
    r.publish(shared.for_asset("BTC"))
    assert get("mm_learned_params_calibrated", {"asset": "BTC", "tier": "1"}) == 1.0
    r.publish(shared.for_asset("ETH"))  # a second asset: same families, new label values
    assert get("mm_learned_alpha_touch", {"asset": "ETH"}) is not None


def test_periodic_parameter_evolution_log(caplog):
    r = Registry(asset="BTC")
    with caplog.at_level(logging.INFO, logger="mm_runtime.params"):
        assert r.maybe_log(100.0, interval_s=60.0)
        r.update(Evidence.bernoulli("alpha_touch", 10, 40))
        assert not r.maybe_log(130.0, interval_s=60.0)
        assert r.maybe_log(160.0, interval_s=60.0)
    recs = [x for x in caplog.records if x.getMessage() == "learned parameters"]
    assert len(recs) == 2
    line = json.loads(JsonFormatter().format(recs[-1]))
    assert line["asset"] == "BTC" and line["tier1_ready"] is False
    p = line["params"]["alpha_touch"]
    assert p["n"] == 40 and p["estimate"] == pytest.approx(12 / 48) and p["value"] == 0.25
    assert set(line["params"]) == {s.name for s in DEFAULT_SPECS}


# ----------------------------------------------------------------------------- specs
@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(family="poisson"), ("'x'", "family")),
        (dict(tier=5), ("'x'", "tier")),
        (dict(family="inverse_gamma", strength=2.0), ("'x'", "strength", "> 2")),
        (dict(family="beta", mean=1.2), ("'x'", "mean")),
        (dict(family="normal"), ("'x'", "var")),
        (dict(name="Bad-Name"), ("name",)),
    ],
)
def test_param_spec_validation(kw, words):
    args = dict(name="x", tier=1, family="gamma", mean=0.5, strength=4.0, unit="", note="")
    args.update(kw)
    with pytest.raises(ValueError) as exc:
        param_spec(**args)
    for w in words:
        assert w in str(exc.value)
