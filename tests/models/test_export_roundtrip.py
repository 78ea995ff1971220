"""Export round trip with real fits (DESIGN.md section 5): the four models fitted on
one short synthetic market, exported (`models.export.export_bundle`), written with
`dump_bundle`, read back with `load_bundle`; the runtime's prior means are then the
posterior means, the fidelity report covers every summary, the strength cap holds,
and the runtime quotes from the bundle.

What "the runtime's prior mean equals the posterior mean" means: every family is
moment matched on its natural scale (`models.export`), so beta, gamma, lognormal,
dirichlet (each category) and normal_inverse_gamma (its ``mu``, the mean of the
emission-mean draws) have the posterior mean as their mean up to float rounding
(``REL_TOL``); a lognormal also has the posterior variance as its variance.

Sampler settings are CI-sized (the regime HMM is the slow fit; no pointwise
log-likelihood, so no LOO); nothing here needs converged chains: the round trip is
exact for whatever draws the fits return.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mm_runtime.bundle import REGIMES, SIDES, PriorBundle, dump_bundle, load_bundle
from mm_runtime.quoter import Quoter, init, quote_once, summarize
from models import alpha as al
from models import catalog
from models import export as ex
from models import hawkes as H
from models import kappa as kp
from models import regime as rg
from models.data.synthetic import simulate_market
from models.sampling import SamplerConfig

SEED, DURATION_S = 0, 1800.0
_CI = dict(chains=2, cores=1, seed=4, progressbar=False, log_likelihood=False)
FAST = SamplerConfig(sampler="pymc", draws=300, tune=300, **_CI)         # alpha, kappa: ~5 s each
HAWKES = SamplerConfig(sampler="nutpie", draws=300, tune=300, **_CI)     # ~380 events
REGIME = SamplerConfig(sampler="numpyro", draws=100, tune=100, **_CI)    # 180 bars: the slow one
REL_TOL = 1e-12
CAP = 20.0


def rel(a, b, floor: float = 1e-300) -> float:
    """Max relative difference of a to b; ``floor=1`` for log-scale quantities (which
    may sit near 0): the difference relative to max(|b|, 1)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), floor)))


@pytest.fixture(scope="module")
def market():
    return simulate_market(SEED, DURATION_S)


@pytest.fixture(scope="module")
def fits(market):
    path = np.asarray(market.truth["regime_path"])
    return {
        "regime": rg.fit(rg.observations(market), REGIME),
        "alpha": al.fit(al.observations(market, path), FAST),
        "kappa": kp.fit(kp.observations(market, path), FAST),
        "hawkes": H.fit(H.observations(market, path), HAWKES),
    }


@pytest.fixture(scope="module")
def draws(market, fits):
    """The posterior draws behind every summary, one tree in the bundle's layout."""
    out = dict(rg.summary_draws(fits["regime"]))
    for mod, name in ((al, "alpha"), (kp, "kappa"), (H, "hawkes")):
        out.update(mod.summary_draws(fits[name], asset=market.asset))
    return out


@pytest.fixture(scope="module")
def exported(market, fits):
    return ex.export_bundle(market.asset, fits, source=ex.bundle_source(market))


@pytest.fixture(scope="module")
def loaded(exported, tmp_path_factory):
    bundle, _ = exported
    path = dump_bundle(bundle, tmp_path_factory.mktemp("bundle") / "SYN.json")
    return path, load_bundle(path)


def leaf(params, path):
    node = getattr(params, path[0])
    for k in path[1:]:
        node = node[k]
    return node


def summary_tree(bundle: PriorBundle) -> dict:
    return bundle.model_dump(mode="json")["params"]


# --------------------------------------------------------------------------- round trip
def test_loaded_prior_means_equal_posterior_means(loaded, draws):
    _, b = loaded
    worst: dict[str, float] = {}
    items = ex.leaves(summary_tree(b), draws)
    # every leaf of the schema: alpha 16, alpha_decay_bps, adverse_move_bps, kappa 8,
    # arrival_rate 8, hawkes_baseline 8, hawkes_branching 4, hawkes_decay,
    # regime_transition 4, regime_emission 4, sigma_bps 4, sigma_diffusive_bps 4 (MedRV
    # bars, the default), spread_capture, alpha_floor
    assert len(items) == 65
    for path, s, x in items:
        name, fam = ex.flat_name(path), s["family"]
        summ = leaf(b.params, path)
        if fam in ("beta", "gamma"):
            d = rel(summ.mean(), np.mean(x))
        elif fam == "dirichlet":
            d = rel(summ.mean(), np.mean(x, axis=0))
        elif fam == "normal_inverse_gamma":
            d = rel(summ.mean(), np.mean(x["mean"]), floor=1.0)  # on ln sigma
        elif fam == "normal":
            d = max(rel(summ.mean(), np.mean(x)), rel(summ.sigma ** 2, np.var(x, ddof=1)))
        else:
            assert fam == "lognormal", name
            d = max(rel(summ.mean(), np.mean(x)),
                    rel(math.expm1(summ.sigma ** 2) * summ.mean() ** 2, np.var(x, ddof=1)))
        assert d < REL_TOL, (name, d)
        worst[fam] = max(worst.get(fam, 0.0), d)
    print("max relative difference, runtime prior vs posterior:", worst)


def test_runtime_state_carries_the_posterior_means(loaded, draws):
    """The arrays `init` builds (what the quoter really uses) hold the same means."""
    _, b = loaded
    state = init(b)
    prior = state.prior
    est = summarize(state).estimates  # at init: no evidence, the prior means
    buckets = b.bucket_keys
    alpha = [[np.mean(draws["alpha"][r][k]) for k in buckets] for r in REGIMES]
    assert rel(est.alpha, alpha) < REL_TOL
    for name, got in (("kappa", est.kappa), ("arrival_rate", est.arrival), ("hawkes_baseline", prior.hawkes_mu)):
        want = [[np.mean(draws[name][r][s]) for s in SIDES] for r in REGIMES]
        assert rel(got, want) < REL_TOL, name
    n = [[np.mean(draws["hawkes_branching"][t][s]) for s in SIDES] for t in SIDES]
    assert rel(prior.hawkes_kernel_n[0], n) < REL_TOL      # one kernel component: row 0, the rest padding
    assert not np.any(np.asarray(prior.hawkes_kernel_n)[1:])
    T = [np.mean(draws["regime_transition"][r], axis=0) for r in REGIMES]
    assert rel(prior.transition, T) < REL_TOL
    # the emission predictive is centred on the posterior mean of the emission means
    loc = [np.mean(draws["regime_emission"][r]["mean"]) for r in REGIMES]
    assert rel(prior.emission_loc, loc, floor=1.0) < REL_TOL
    # lognormal leaves: the runtime's mean exp(mu + sigma^2/2) is the posterior mean
    for got, x in ((prior.hawkes_kernel_beta[0], draws["hawkes_decay"]), (prior.alpha_decay_bps, draws["alpha_decay_bps"]),
                   (prior.adverse_move_bps, draws["adverse_move_bps"]),
                   (prior.sigma_bps, [draws["sigma_bps"][r] for r in REGIMES])):
        assert rel(got, np.asarray(x).mean(-1)) < REL_TOL
    assert float(prior.bar_s) == float(b.units.volatility_bar_s) == 10.0
    # schema 2: the observation block (the default rules, with the regime fit's bars)
    assert b.schema_version == 3 and b.observation.bar_seconds == b.units.volatility_bar_s
    assert float(state.cfg.learning.markout_horizon_s) == b.observation.markout_horizon_s == 1.0
    # the ladder's spread capture c is the posterior mean
    assert rel(state.cfg.spread_capture, np.mean(draws["spread_capture"])) < REL_TOL
    # the parametric alpha(delta)'s floor is alpha_floor's posterior mean
    assert rel(state.cfg.alpha_floor, np.mean(draws["alpha_floor"])) < REL_TOL


def test_bundle_metadata(exported, loaded, fits, market):
    bundle, _ = exported
    path, b = loaded
    assert b.checksum == bundle.checksum and b.body() == bundle.body()
    assert b.asset == market.asset and b.source.data_sha256 == market.sha256()
    assert b.source.row_counts == market.row_counts()
    assert b.model_version == ex.combined_model_version(fits, ex.bundle_source(market))
    assert b.model_version.startswith("bundle-") and b.model_version != ex.combined_model_version(fits)
    models = b.diagnostics["models"]
    # fills is fitted only where the data have books: exported without it, the bundle has no fills block
    assert set(models) == set(fits) == set(catalog.names()) - {"fills"}
    assert b.params.fills is None and "fills" not in b.model_dump(mode="json")["params"]
    for name, idata in fits.items():
        assert models[name]["model_version"] == idata.attrs["model_version"]
        assert models[name]["r_hat_max"] is not None and models[name]["draws"] == idata.posterior.sizes["draw"]
    assert b.diagnostics["max_prior_strength"] is None


def test_fidelity_report_covers_every_leaf(exported, loaded, draws):
    _, fidelity = exported
    _, b = loaded
    expected = set()
    for path, s, _ in ex.leaves(summary_tree(b), draws):
        if s["family"] == "dirichlet":
            expected |= {ex.flat_name(path + (r,)) for r in REGIMES}
        elif s["family"] == "normal_inverse_gamma":
            expected |= {ex.flat_name(path + (m,)) for m in ("mean", "var")}
        else:
            expected.add(ex.flat_name(path))
    assert set(fidelity) == expected
    assert {"kappa[high,buy]", "alpha[low,[0,2)]", "hawkes_branching[buy,sell]", "hawkes_decay",
            "regime_transition[low,normal]", "regime_emission[extreme,var]", "sigma_bps[low]"} <= expected
    for name, err in fidelity.items():
        assert set(err) == {"q05_err_sd", "q50_err_sd", "q95_err_sd", "max_err_sd"}, name
        assert all(math.isfinite(v) and v >= 0 for v in err.values()), (name, err)
    stored = b.diagnostics["export_fidelity"]
    assert stored["per_param"] == fidelity
    assert stored["max_quantile_err_sd"] == max(e["max_err_sd"] for e in fidelity.values())
    worst = {}
    for name, e in fidelity.items():
        head = name.partition("[")[0]
        worst[head] = max(worst.get(head, 0.0), e["max_err_sd"])
    print("max quantile error (posterior sd) per parameter:", worst)


# --------------------------------------------------------------------------- cap
def test_cap_limits_strength_keeps_means_and_is_recorded(market, fits, exported, draws):
    uncapped, _ = exported
    capped, fidelity = ex.export_bundle(market.asset, fits, source=ex.bundle_source(market),
                                        max_prior_strength=CAP, with_model_diagnostics=False)
    assert capped.diagnostics["max_prior_strength"] == CAP
    assert fidelity == exported[1]  # measured before the cap
    n_capped = 0
    for (path, s, x), (_, s0, _) in zip(ex.leaves(summary_tree(capped), draws),
                                        ex.leaves(summary_tree(uncapped), draws), strict=True):
        summ, summ0 = leaf(capped.params, path), leaf(uncapped.params, path)
        fam = s["family"]
        if fam in ("lognormal", "normal"):  # no pseudo-observation count: left alone
            assert s == s0
            continue
        strength = {"beta": lambda d: d["a"] + d["b"], "gamma": lambda d: d["shape"],
                    "dirichlet": lambda d: sum(d["concentration"]),
                    "normal_inverse_gamma": lambda d: max(d["lam"], 2 * d["shape"])}[fam]
        assert strength(s) <= CAP * (1 + 1e-12), (path, s)
        n_capped += strength(s0) > CAP * (1 + 1e-12)
        assert rel(summ.mean(), summ0.mean()) < REL_TOL, path
    assert n_capped > 10  # the cap is not vacuous on this fit


# --------------------------------------------------------------------------- runtime
def test_runtime_quotes_from_the_exported_bundle(loaded, market):
    path, b = loaded
    rep = quote_once(path, mid=100.0, margin_available=10_000.0)
    assert rep.summary["valid"] and rep.summary["model_version"] == b.model_version
    assert all(math.isfinite(v) for row in rep.rows for v in row.values() if not isinstance(v, str))
    assert any(row["size"] > 0 for row in rep.rows)

    q = Quoter(path, replay=True, metrics=False)
    quotes = market.quotes.iloc[:200]
    for ts, bid, ask in zip(quotes["ts"], quotes["bid"], quotes["ask"], strict=True):
        out = q.on_event(ts / 1e9, bid=bid, ask=ask, margin_available=10_000.0)
    assert bool(out.valid)
    for f in out:
        assert np.all(np.isfinite(np.asarray(f, dtype=float))), f
    live = out.size > 0
    assert live.any()
    mid = 0.5 * (bid + ask)
    assert np.all(out.price[0][live[0]] < mid) and np.all(out.price[1][live[1]] > mid)


def test_export_refuses_incomplete_or_foreign_fits(market, fits):
    src = ex.bundle_source(market)
    with pytest.raises(ValueError, match="hawkes"):
        ex.export_bundle(market.asset, {k: v for k, v in fits.items() if k != "hawkes"}, source=src)
    with pytest.raises(ValueError, match="asset"):
        ex.export_bundle("OTHER", fits, source=src)
