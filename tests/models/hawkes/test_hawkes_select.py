"""The number of kernel components by held-out lpd (models.hawkes.select): the time
split keeps every arrival and bar once; on arrivals with two time scales two
components beat one, on one-scale arrivals one is kept."""

from __future__ import annotations

import numpy as np
import pytest

from models import hawkes as H
from models.hawkes.select import choose_components, split_time

MU = np.tile([[0.3, 0.25]], (4, 1))
N2 = np.array([[[0.25, 0.05], [0.05, 0.25]], [[0.2, 0.05], [0.05, 0.2]]])
B2 = np.array([200.0, 0.5])


def test_split_time_keeps_every_arrival_and_bar():
    rng = np.random.default_rng(0)
    obs = H.simulate_components(MU, N2, B2, 305.0, 1, regime_path=rng.integers(0, 4, 31))
    a, b = split_time(obs, 0.8)
    assert a.n_events + b.n_events == obs.n_events
    assert a.duration_s[0] == pytest.approx(244.0) and b.duration_s[0] == pytest.approx(61.0)
    np.testing.assert_allclose(np.concatenate([a.t, b.t + 244.0]), obs.t)
    # the regime time of both parts adds up to the whole window's
    np.testing.assert_allclose(a.regime_time() + b.regime_time(), obs.regime_time())
    assert b.bar_edges[0][0] == 0.0 and b.bar_regime[0][0] == obs.bar_regime[0][24]
    with pytest.raises(ValueError, match="one asset"):
        split_time(H.combine(obs, H.HawkesObs(**{**obs.__dict__, "assets": ("B",)})), 0.5)


@pytest.mark.slow
def test_choose_components_by_heldout_lpd():
    two = H.simulate_components(MU, N2, B2, 1200.0, 2)
    one = H.simulate_components(MU, N2.sum(0)[None], B2[1:], 1200.0, 3)
    k = H.HawkesKernel()
    c2 = choose_components(two, H.HawkesPriors(), k, (1, 2))
    c1 = choose_components(one, H.HawkesPriors(), k, (1, 2))
    assert c2["components"] == 2 and c2["table"][1]["lpd"] > c2["table"][0]["lpd"]
    assert c1["components"] == 1, c1["table"]


@pytest.mark.slow
def test_fit_auto_records_the_choice():
    import json

    from models import catalog
    from models.sampling import SamplerConfig

    obs = H.simulate_components(MU, N2, B2, 600.0, 4)
    cfg = SamplerConfig(sampler="nutpie", draws=30, tune=30, chains=1, cores=1, seed=1, progressbar=False)
    idata = H.fit(obs, cfg, H.HawkesConfig(kernel=H.HawkesKernel(components="auto", candidates=(1, 2))))
    c = json.loads(idata.attrs["hawkes_components_choice"])
    assert [r["components"] for r in c["table"]] == [1, 2] and c["components"] in (1, 2)
    assert ("component" in idata.posterior.dims) == (c["components"] == 2)
    d = catalog.diagnostics("hawkes", idata)
    assert d["hawkes_components"] == c["components"] and "hawkes_heldout_lpd_m2" in d
    assert json.loads(idata.attrs["hawkes_config"]).get("kernel", {"components": 1})["components"] == c["components"]
