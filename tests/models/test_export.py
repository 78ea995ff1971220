"""Moment matching, prior-strength cap and fidelity of the exporter (models/export.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from models import export as ex

RNG = np.random.default_rng(11)
N = 200_000


@pytest.mark.parametrize("fn,dist,expect", [
    (ex.beta_from_draws, stats.beta(3.0, 7.0), {"a": 3.0, "b": 7.0}),
    (ex.gamma_from_draws, stats.gamma(4.0, scale=1 / 2.5), {"shape": 4.0, "rate": 2.5}),
    (ex.lognormal_from_draws, stats.lognorm(0.3, scale=np.exp(1.2)), {"mu": 1.2, "sigma": 0.3}),
    (ex.normal_from_draws, stats.norm(-2.0, 0.5), {"mu": -2.0, "sigma": 0.5}),
    (ex.inverse_gamma_from_draws, stats.invgamma(12.0, scale=5.0), {"shape": 12.0, "scale": 5.0}),
])
def test_moment_matching_recovers_the_family_it_was_drawn_from(fn, dist, expect):
    s = fn(dist.rvs(N, random_state=RNG))
    for k, v in expect.items():
        assert s[k] == pytest.approx(v, rel=0.05), (k, s)
    err = ex.quantile_error(s, dist.rvs(N, random_state=RNG))
    assert err["max_err_sd"] < 0.05


def test_moment_matched_mean_equals_posterior_mean_exactly():
    x = RNG.beta(2, 30, size=4000)
    s = ex.beta_from_draws(x)
    assert s["a"] / (s["a"] + s["b"]) == pytest.approx(x.mean(), rel=1e-12)
    g = ex.gamma_from_draws(x)
    assert g["shape"] / g["rate"] == pytest.approx(x.mean(), rel=1e-12)


def test_dirichlet_and_nig():
    c = np.array([30.0, 5.0, 2.0, 1.0])
    s = ex.dirichlet_from_draws(RNG.dirichlet(c, size=N))
    assert np.allclose(s["concentration"], c, rtol=0.05)
    var = stats.invgamma(10.0, scale=4.5).rvs(N, random_state=RNG)
    mean = RNG.normal(1.5, np.sqrt(var / 8.0))
    nig = ex.normal_inverse_gamma_from_draws(mean, var)
    assert nig["mu"] == pytest.approx(1.5, abs=0.01)
    assert nig["lam"] == pytest.approx(8.0, rel=0.05)
    assert nig["shape"] == pytest.approx(10.0, rel=0.1)


def test_fidelity_flags_a_poor_summary():
    bimodal = np.concatenate([RNG.normal(1, 0.1, N // 2), RNG.normal(3, 0.1, N // 2)])
    s = ex.gamma_from_draws(bimodal)
    assert ex.quantile_error(s, bimodal)["max_err_sd"] > 0.3


@pytest.mark.parametrize("s,key", [
    ({"family": "beta", "a": 300.0, "b": 700.0}, lambda s: s["a"] + s["b"]),
    ({"family": "gamma", "shape": 500.0, "rate": 250.0}, lambda s: s["shape"]),
    ({"family": "dirichlet", "concentration": [90.0, 5.0, 3.0, 2.0]}, lambda s: sum(s["concentration"])),
])
def test_cap_limits_strength_and_keeps_the_mean(s, key):
    capped = ex.cap_strength(s, 50.0)
    assert key(capped) == pytest.approx(50.0)
    mean = {"beta": lambda d: d["a"] / (d["a"] + d["b"]), "gamma": lambda d: d["shape"] / d["rate"],
            "dirichlet": lambda d: d["concentration"][0] / sum(d["concentration"])}[s["family"]]
    assert mean(capped) == pytest.approx(mean(s))
    assert ex.cap_strength(s, None) == s
    assert ex.cap_strength(capped, 1e9) == capped


def test_bad_draws_are_refused():
    with pytest.raises(ValueError, match="beta"):
        ex.beta_from_draws(np.array([0.5, 1.5, 2.0]))
    with pytest.raises(ValueError, match="finite"):
        ex.gamma_from_draws(np.array([1.0, np.nan]))


def _example_summaries():
    from mm_runtime.examples import example_bundle

    b = example_bundle("BTC")
    return [b.params.model_dump(mode="json")], b.source.model_dump(mode="json")


def test_build_bundle_writes_schema_2_with_the_observation_block():
    """The exporter writes the fits' ObservationConfig into the bundle; the quoter then
    resolves markouts under its horizon and threshold."""
    from mm_runtime.bundle import SCHEMA_VERSION, bundle_bytes, parse_bundle
    from mm_runtime.quoter import init
    from models.data.observations import ObservationConfig

    summaries, source = _example_summaries()
    b = ex.build_bundle("BTC", summaries, source=source, model_version="m")
    assert b.schema_version == SCHEMA_VERSION == 3 and b.observation == ObservationConfig()
    obs = ObservationConfig(markout_horizon_s=5.0, informed_threshold_bps=2.0, bar_seconds=20.0)
    b = ex.build_bundle("BTC", summaries, source=source, model_version="m", volatility_bar_s=20.0,
                        observation=obs)
    again = parse_bundle(bundle_bytes(b))
    assert again.observation == obs and again.units.volatility_bar_s == 20.0
    lp = init(again).cfg.learning
    assert (float(lp.markout_horizon_s), float(lp.informed_threshold_bps)) == (5.0, 2.0)
    # without an explicit observation block, its bars are the regime fit's
    assert ex.build_bundle("BTC", summaries, source=source, model_version="m",
                           volatility_bar_s=30.0).observation.bar_seconds == 30.0
    with pytest.raises(ValueError, match="observation.bar_seconds"):
        ex.build_bundle("BTC", summaries, source=source, model_version="m", volatility_bar_s=30.0,
                        observation=ObservationConfig())


def test_model_version_names_the_data_and_the_window():
    """issue 19, lineage: the bundle's model_version hashes the models' versions *and*
    the data the fits saw (data sha256, window). Before, five calibrations of other data
    and windows all carried one version (the models' config and code alone)."""
    import types
    from datetime import datetime, timedelta, timezone

    fits = {m: types.SimpleNamespace(attrs={"model_version": f"{m}-v1"}) for m in ("regime", "alpha", "kappa",
                                                                                     "hawkes")}
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def source(sha: str, start_s: float, end_s: float) -> dict:
        return {"data_sha256": sha * 64, "window_start": (t0 + timedelta(seconds=start_s)).isoformat(),
                "window_end": (t0 + timedelta(seconds=end_s)).isoformat()}

    sources = [source("a", 0, 600), source("a", 0, 900), source("a", 60, 600), source("b", 0, 600),
               source("c", 300, 1200)]
    versions = [ex.combined_model_version(fits, s) for s in sources]
    assert len(set(versions)) == 5 and all(v.startswith("bundle-") and len(v) == 19 for v in versions)
    # the same data and window: the same version, whatever the instants' spelling
    z = {**sources[0], "window_start": sources[0]["window_start"].replace("+00:00", "Z")}
    assert ex.combined_model_version(fits, z) == versions[0]
    # another model version with the same data: another version
    other = {**fits, "alpha": types.SimpleNamespace(attrs={"model_version": "alpha-v2"})}
    assert ex.combined_model_version(other, sources[0]) != versions[0]
    # what every one of them carried before (the models alone)
    assert ex.combined_model_version(fits) not in versions
