"""Export of a Hawkes fit with M = 2 kernel components (models.hawkes.summarize ->
models.export -> mm_runtime.bundle ``params.hawkes_components`` -> the quoter): a
CI-sized real fit (nutpie, one chain of 60 draws, ~700 simulated arrivals), exported with
the rest of the example bundle's parameters, written and loaded; the loaded block's means
are the posterior means, the fidelity report covers every component leaf, and the
Quoter's Hawkes intensity on a stream of trades equals the intensity computed directly
(O(N^2 M) sum over the arrivals) from the posterior means of the draws."""

from __future__ import annotations

import math

import numpy as np
import pytest

import mm_runtime as mr
from mm_runtime.bundle import SIDES, bundle_bytes, dump_bundle, load_bundle
from mm_runtime.hawkes_kernel import mean_lag_decay
from models import export as ex
from models import hawkes as H
from models.sampling import SamplerConfig

MU = np.tile([[0.3, 0.25]], (4, 1))
N2 = np.array([[[0.25, 0.05], [0.05, 0.25]], [[0.2, 0.05], [0.05, 0.2]]])
B2 = np.array([200.0, 0.5])


@pytest.fixture(scope="module")
def fit2():
    obs = H.simulate_components(MU, N2, B2, 900.0, 6)
    cfg = SamplerConfig(sampler="nutpie", draws=60, tune=60, chains=1, cores=1, seed=1, progressbar=False,
                        log_likelihood=False)
    return H.fit(obs, cfg, H.HawkesConfig(kernel=H.HawkesKernel(components=2)))


@pytest.fixture(scope="module")
def bundle(fit2, tmp_path_factory):
    hawkes = H.summarize(fit2)
    others = {k: v for k, v in mr.example_bundle().model_dump(mode="json")["params"].items()
              if not k.startswith("hawkes_")}
    fidelity = ex.fidelity_report(hawkes, H.summary_draws(fit2))
    b = ex.build_bundle("SYN", [others, hawkes], source=mr.example_bundle().source.model_dump(mode="json"),
                        model_version="test-m2", fidelity=fidelity)
    path = dump_bundle(b, tmp_path_factory.mktemp("b") / "SYN.json")
    return load_bundle(path), fidelity


@pytest.mark.slow
def test_two_components_export_and_load(fit2, bundle):
    b, fidelity = bundle
    d = H.summary_draws(fit2)
    comps = b.params.hawkes_components
    assert len(comps) == 2 and comps[0].decay.mean() > comps[1].decay.mean()
    for m, c in enumerate(comps):
        assert c.decay.mean() == pytest.approx(np.mean(d["hawkes_components"][m]["decay"]), rel=1e-12)
        for t in SIDES:
            for s in SIDES:
                x = d["hawkes_components"][m]["branching"][t][s]
                assert c.branching[t][s].mean() == pytest.approx(np.mean(x), rel=1e-12)
    # the total and the representative decay (one exponential with the kernel's mean lag)
    post = fit2.posterior
    nk = post["hawkes_kernel_branching"].values.reshape(-1, 2, 2, 2)
    beta = post["hawkes_decay"].values.reshape(-1, 2)
    np.testing.assert_allclose(b.params.hawkes_decay.mean(), np.mean(mean_lag_decay(nk.sum((2, 3)), beta)),
                               rtol=1e-12)
    assert b.params.hawkes_branching["buy"]["buy"].mean() == pytest.approx(nk[:, :, 0, 0].sum(1).mean(), rel=1e-12)
    assert {"hawkes_components[0,decay]", "hawkes_components[1,branching,sell,buy]"} <= set(fidelity)
    assert bundle_bytes(b) == bundle_bytes(load_bundle_bytes(b))


def load_bundle_bytes(b):
    return mr.bundle.parse_bundle(bundle_bytes(b))


@pytest.mark.slow
def test_quoter_intensity_is_the_direct_sum_at_the_posterior_means(fit2, bundle):
    b, _ = bundle
    post = fit2.posterior
    n = post["hawkes_kernel_branching"].values.reshape(-1, 2, 2, 2).mean(0)        # (M, target, source)
    beta = post["hawkes_decay"].values.reshape(-1, 2).mean(0)                      # (M,)
    q = mr.Quoter(b, mr.QuoterConfig(use_hawkes_intensity=True), replay=True, metrics=False)
    rng = np.random.default_rng(3)
    t, mid, times, sides = 1000.0, 30_000.0, [], []
    q.on_event(t, mid, margin_available=1e4)
    for _ in range(200):
        t += float(rng.exponential(0.05))
        side = int(rng.random() < 0.5)
        times.append(t)
        sides.append(side)
        out = q.on_event(t, mid, margin_available=1e4, trade=(mid * (1 + (1e-4 if side == 0 else -1e-4)),
                                                               1.0 if side == 0 else -1.0))
        lam = np.asarray(out.hawkes_intensity)
        assert np.all(np.isfinite(lam)) and bool(out.valid)
        dt = t - np.asarray(times)
        direct = np.einsum("mj,mtj->t", beta[:, None] * np.exp(-beta[:, None] * dt[None, :]), n[:, :, sides])
        base = np.asarray(q.state.est.regime_probs) @ np.asarray(q.state.prior.hawkes_mu)
        np.testing.assert_allclose(lam, base + direct, rtol=1e-9)
    assert math.isfinite(float(lam.sum())) and lam.min() > base.min()


@pytest.mark.slow
def test_components_are_reported_and_gated(fit2):
    """The component split is among the reported variables (tables, the gate) and the
    summarized ones (the bundle's diagnostics); a one-component fit simply lacks it."""
    from models import catalog

    names = {r["name"] for r in catalog.parameter_rows("hawkes", fit2)}
    assert sum(n.startswith("hawkes_kernel_branching[") for n in names) == 8  # (component, target, source)
    from models.sampling import diagnostics

    split = diagnostics(fit2, var_names=["hawkes_kernel_branching"])
    d = ex.model_diagnostics("hawkes", fit2)
    assert d["ess_bulk_min"] <= split["ess_bulk_min"]  # the split's ESS counts in the bundle's diagnostics
