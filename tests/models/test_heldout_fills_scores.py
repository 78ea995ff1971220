"""The scoring functions of benchmarks/heldout_fills.py (fills vs the depth law, held out)
on tiny hand-built cases with known answers: the depth law's hazard per side, the
exponential survival likelihood mixed over regimes (and that it equals the fills model's
fill-time likelihood when that model's hazard is constant), the IPCW weights and Brier
score of Graf et al. (1999), the Kaplan-Meier fill probability."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "heldout_fills.py"
_spec = importlib.util.spec_from_file_location("heldout_fills", _PATH)
hf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hf)


def test_depth_law_hazard_uses_the_aggressor_side_that_fills_the_order():
    A = np.zeros((1, 4, 2))
    K = np.zeros((1, 4, 2))
    A[0, :, 0], A[0, :, 1] = 2.0, 5.0       # buy aggressors 2/s, sell 5/s
    K[0, :, 0], K[0, :, 1] = 0.5, 1.0
    h = np.exp(hf.depth_law_log_hazard(A, K, np.array([+1, -1, +1]), np.array([1.0, 2.0, -3.0])))
    assert h.shape == (1, 3, 4)
    assert h[0, 0, 0] == pytest.approx(5.0 * math.exp(-1.0))    # a bid: filled by sells
    assert h[0, 1, 0] == pytest.approx(2.0 * math.exp(-1.0))    # an ask: filled by buys
    assert h[0, 2, 0] == pytest.approx(5.0)                     # inside the mid: depth 0
    # far from the mid a steep law's hazard underflows; its log stays exact
    K[:] = 2000.0
    lh = hf.depth_law_log_hazard(A, K, np.array([+1]), np.array([1.0]))
    assert lh[0, 0, 0] == pytest.approx(math.log(5.0) - 2000.0)
    ll = hf.constant_hazard_loglik(lh, np.array([0.3, 0.3]), np.array([False, True]), np.eye(4)[[0, 0]])
    assert ll[0, 0] == pytest.approx(0.0, abs=1e-9)
    assert ll[0, 1] == pytest.approx(math.log(5.0) - 2000.0)


def test_constant_hazard_loglik_and_fill_probability():
    h = np.log(np.array([[[2.0, 1.0, 3.0, 1.0], [2.0, 1.0, 3.0, 1.0]]]))  # (S=1, n=2, 4), logs
    onehot = np.array([[1.0, 0, 0, 0], [1.0, 0, 0, 0]])
    ll = hf.constant_hazard_loglik(h, np.array([0.5, 0.5]), np.array([True, False]), onehot)
    assert ll[0, 0] == pytest.approx(math.log(2.0) - 1.0)         # fill at 0.5 s under h = 2
    assert ll[0, 1] == pytest.approx(-1.0)                        # still resting at 0.5 s
    mix = np.array([[0.0, 0.5, 0.5, 0.0], [0.0, 0.5, 0.5, 0.0]])
    ll = hf.constant_hazard_loglik(h, np.array([0.5, 0.5]), np.array([True, False]), mix)
    assert ll[0, 0] == pytest.approx(math.log(0.5 * math.exp(-0.5) + 0.5 * 3.0 * math.exp(-1.5)))
    assert ll[0, 1] == pytest.approx(math.log(0.5 * math.exp(-0.5) + 0.5 * math.exp(-1.5)))
    p = hf.constant_hazard_fill_prob(h, mix, 1.0)
    assert p[0, 0] == pytest.approx(0.5 * (1 - math.exp(-1.0)) + 0.5 * (1 - math.exp(-3.0)))


def test_the_fills_fill_time_likelihood_with_a_constant_hazard_is_the_depth_laws_form():
    """Both models are scored by one survival likelihood: the fills model's (markouts
    masked, as the benchmark scores it) with its piece ratios 1 and coefficients 0 is the
    constant-hazard likelihood of the depth law."""
    from models import fills
    from models.data.observations import ObservationConfig

    cfg = fills.FillsConfig(observation=ObservationConfig())
    n, H = 4, len(cfg.observation.markout_horizons_s)
    rp = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0.3, 0.7, 0, 0], [0, 0, 0, 1.0]])
    obs = fills.FillsObs(
        assets=("X",), asset=np.zeros(n, np.int32), side=np.array([1, -1, 1, -1], np.int8),
        level=np.zeros(n, np.int16), queue_trades=np.array([0.0, 3.0, 1.0, 30.0]), imbalance=np.zeros(n),
        spread_ticks=np.ones(n, np.int16), depth_bps=np.full(n, 0.5),
        duration_s=np.array([0.05, 1.0, 0.4, 0.7]), filled=np.array([True, False, True, False]),
        through=np.zeros(n, bool), markout_bps=np.full((n, H), np.nan), regime_prob=rp,
        horizons_s=tuple(cfg.observation.markout_horizons_s), repost_interval_s=cfg.observation.repost_interval_s)
    d = fills.design(obs, cfg)
    lh = np.log([0.2, 0.5, 1.0, 4.0])
    P = {"log_hazard": lh[None, :], "log_ratio": np.zeros(len(cfg.cuts_s())), "coef": np.zeros(3),
         "mean": np.zeros((1, 4, H)), "slopes": np.zeros((3, H)), "log_sd": np.zeros((4, H)), "nu": np.nan}
    got = fills.order_loglik(fills.NP, P, d)
    want = hf.constant_hazard_loglik(np.broadcast_to(lh, (1, n, 4)), obs.duration_s, obs.filled, rp)[0]
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_ipcw_weights_and_brier_on_a_hand_case():
    # a fill at 0.2 s, a censoring ("away") at 0.5 s, two orders resting to the re-post at 1 s
    t = np.array([0.2, 0.5, 1.0, 1.0])
    f = np.array([True, False, False, False])
    y, w = hf.censoring_weights(t, f, 1.0)
    # censoring Kaplan-Meier: G(0.2-) = 1; at 0.5 three at risk, one censored: G(1-) = 2/3
    np.testing.assert_allclose(y, [1, 0, 0, 0])
    np.testing.assert_allclose(w, [1.0, 0.0, 1.5, 1.5])
    assert w.sum() == pytest.approx(len(t))
    assert hf.ipcw_brier(np.full(4, 0.25), y, w) == pytest.approx((0.75**2 + 2 * 1.5 * 0.25**2) / 4)
    assert hf.ipcw_brier(y, y, w) == 0.0
    # the Kaplan-Meier fill probability by 1 s: one fill among four at risk
    assert hf.km_fill(t, f, 1.0) == pytest.approx(0.25)
    assert hf.km_fill(t, np.zeros(4, bool), 1.0) == 0.0


def test_ipcw_without_censoring_is_the_plain_brier():
    t = np.array([0.1, 0.3, 1.0, 1.0, 1.0])
    f = np.array([True, True, False, False, False])
    y, w = hf.censoring_weights(t, f, 1.0)
    np.testing.assert_allclose(w, 1.0)
    p = np.array([0.9, 0.2, 0.1, 0.4, 0.0])
    assert hf.ipcw_brier(p, y, w) == pytest.approx(np.mean((y - p) ** 2))


def test_reliability_rows_group_and_score():
    t = np.array([0.2, 0.5, 1.0, 1.0])
    f = np.array([True, False, False, False])
    y, w = hf.censoring_weights(t, f, 1.0)
    rows = hf.reliability_rows({"a": np.array([0.5, 0.5, 0.1, 0.1])}, y, w, t, f, 1.0,
                               np.array([0, 0, 1, 1]), ["hi", "lo", "empty"])
    assert [r["group"] for r in rows] == ["hi", "lo"]
    assert rows[0]["observed"] == pytest.approx(0.5) and rows[1]["observed"] == 0.0
    assert rows[0]["fills"] == 1 and rows[0]["pred_a"] == pytest.approx(0.5)
    assert rows[1]["brier_a"] == pytest.approx(2 * 1.5 * 0.01 / 2)
