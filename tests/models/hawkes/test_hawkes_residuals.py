"""Time-rescaling goodness of fit (models.hawkes.residuals) and a CI-sized fit of the
M-component kernel: the KS statistic tells the true kernel from a wrong one, every
fit records it, the catalog's diagnostics carry it as metrics, the QQ plot is written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models import catalog
from models import hawkes as H
from models.sampling import SamplerConfig

MU = np.tile([[0.3, 0.25]], (4, 1))
N2 = np.array([[[0.25, 0.05], [0.05, 0.25]], [[0.2, 0.05], [0.05, 0.2]]])
B2 = np.array([200.0, 0.5])


def test_rescaled_intervals_are_exp1_under_the_truth():
    obs = H.simulate_components(MU, N2, B2, 2400.0, 4)
    good = H.goodness_of_fit({"mu": MU, "n": N2, "beta": B2}, obs)
    one = H.goodness_of_fit({"mu": MU, "n": N2.sum(0), "beta": np.array(5.0)}, obs)
    assert good["n"] == obs.n_events and good["ties"] == 0
    assert good["ks_d"] < 0.03 and good["ks_p"] > 0.01 and abs(good["mean"] - 1) < 0.05
    assert one["ks_d"] > 0.1 and set(one) >= {"ks_d_buy", "ks_d_sell", "ks_p_buy", "ks_p_sell"}
    # the compensators of both sides add up to the total compensator of the window
    taus = H.rescaled_intervals({"mu": MU, "n": N2, "beta": B2}, obs)
    assert [len(t) for t in taus] == list(np.bincount(obs.side, minlength=2))


def test_one_component_matches_the_two_parametrisations():
    obs = H.simulate_components(MU, N2[:1], B2[1:], 600.0, 5)
    a = H.rescaled_intervals({"mu": MU, "n": N2[0], "beta": np.array(B2[1])}, obs)
    b = H.rescaled_intervals({"mu": MU, "n": N2[:1], "beta": B2[1:]}, obs)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def fit2():
    obs = H.simulate_components(MU, N2, B2, 900.0, 6)
    cfg = SamplerConfig(sampler="nutpie", draws=60, tune=60, chains=1, cores=1, seed=1, progressbar=False)
    return obs, H.fit(obs, cfg, H.HawkesConfig(kernel=H.HawkesKernel(components=2)))


@pytest.mark.slow
def test_two_component_fit_records_goodness_and_components(fit2, tmp_path):
    obs, idata = fit2
    post = idata.posterior
    assert post["hawkes_kernel_branching"].dims[2:] == ("component", "target", "source")
    beta = post["hawkes_decay"].values.reshape(-1, 2)
    assert np.all(beta[:, 0] > beta[:, 1])                       # ordered, fastest first
    np.testing.assert_allclose(post["hawkes_kernel_branching"].sum("component"), post["hawkes_branching"])
    assert float(post["hawkes_spectral_radius"].max()) < 1
    g = json.loads(idata.attrs["hawkes_gof"])
    assert g["ks_d"] < 0.05 and g["n"] == obs.n_events
    assert json.loads(idata.attrs["hawkes_config"])["kernel"]["components"] == 2
    d = catalog.diagnostics("hawkes", idata)
    assert d["hawkes_ks_d"] == g["ks_d"] and "hawkes_ks_d_sell" in d
    lpd = H.heldout_lpd(idata, H.simulate_components(MU, N2, B2, 300.0, 7))
    assert np.isfinite(lpd["elpd"])
    assert H.qq_plot(idata, obs, tmp_path / "qq.png").stat().st_size > 1000


def test_one_component_config_record_is_unchanged():
    obs = H.simulate_components(MU, N2[:1], B2[1:], 60.0, 8)
    assert "kernel" not in H.resolved_config(H.HawkesConfig(), obs)
    assert "kernel" in H.resolved_config(H.HawkesConfig(kernel=H.HawkesKernel(components=3)), obs)
    with pytest.raises(ValueError, match="decay_range"):
        H.HawkesKernel(components=2, decay_range=(5.0, 1.0))
    np.testing.assert_allclose(H.HawkesKernel(components=3).grid(), [1000.0, np.sqrt(10.0), 0.01])
