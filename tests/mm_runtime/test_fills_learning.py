"""Online learning of the fills cells from own fills (issue 16, item 3): the Gamma–Poisson
and normal–normal updates against hand computations, forgetting, no NaN without
exposure, the ladder using the learned cells, the metrics, the live state file and
its reset, and bundles without a fills block unchanged."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import mm_runtime as mr
from mm_runtime.examples import with_example_fills
from mm_runtime.fills_learning import FillsLearner
from mm_runtime.live import LiveConfig, LiveRunner, StateFileError
from mm_runtime.quoter import Quoter
from mm_runtime.view import bundle_view

ONE = np.array([1.0, 0.0, 0.0, 0.0])  # all in the first regime


def bundle(strength=1000.0, asset="SYN"):
    return with_example_fills(mr.example_bundle(asset), lambda lv, q: 2.0 * math.exp(-0.9 * lv - 0.4 * q),
                              lambda lv, q: 0.3, sd=0.1, strength=strength)


def learner(b=None, half_life=1e12, sigma=None):
    v = bundle_view(b or bundle())
    return FillsLearner(v.fills, v.sigma_bps if sigma is None else sigma, half_life, tau_s=1.0, horizon_s=1.0), v


def test_the_conjugate_updates_match_a_hand_computation():
    fl, v = learner(sigma=np.array([2.0, 3.0, 4.0, 5.0]))
    np.testing.assert_allclose(fl.cuts, [0.0, 0.1, 0.3, 0.6])  # the 1 s re-post's pieces
    fl.place(0.0, ONE, [(0, 100, 0, 1.0, False)])  # touch, queue 1 median print: bucket [0,2)
    assert fl.fill(0.25, ONE, 0, 100, +1.0, mid=100.0)  # our bid filled after 0.25 s
    a, b = fl.hazard()
    a0, b0 = v.fills.hazard_shape[0, 0, 0], v.fills.hazard_rate[0, 0, 0]
    np.testing.assert_allclose(a[0, 0, 0], a0 + [0, 1, 0, 0])  # shape += fills (piece 0.1-0.3 s)
    np.testing.assert_allclose(b[0, 0, 0], b0 + [0.1, 0.15, 0, 0])  # rate += exposure per piece
    np.testing.assert_allclose(a[1:], v.fills.hazard_shape[1:])  # other regimes: prior
    assert not fl.open  # the order's spell ended with its fill
    # markouts at 0.5 and 1 s: the mid fell 1 bp after our buy (adverse +1), then 2 bp
    assert fl.on_mid(0.75, 99.99) == 1 and fl.on_mid(1.25, 99.98) == 1
    m, sd = fl.markout()
    for j, (h, x) in enumerate(((0.5, 1.0), (1.0, 2.0))):
        v_obs = 2.0**2 * h  # σ_r² h of the first regime
        prec = 1 / 0.1**2 + 1 / v_obs
        assert m[0, 0, 0, j] == pytest.approx((0.3 / 0.1**2 + x / v_obs) / prec)
        assert sd[0, 0, 0, j] == pytest.approx(prec**-0.5)
    assert m[0, 0, 0, 2] == pytest.approx(0.3)  # 5 s: not due yet
    assert len(fl.pending) == 2


def test_soft_regimes_split_the_evidence():
    fl, v = learner()
    p = np.array([0.5, 0.25, 0.25, 0.0])
    fl.place(0.0, p, [(1, 7, 2, 30.0, False)])  # level 2, queue 30 → the last bucket
    fl.expose(0.05, p)
    np.testing.assert_allclose(fl.e[:, 2, 4, 0], p * 0.05)
    fl.fill(0.05, p, 1, 7, -1.0, mid=50.0)
    np.testing.assert_allclose(fl.n[:, 2, 4, 0], p)
    assert fl.n.sum() == pytest.approx(1.0)


def test_forgetting_halves_the_evidence_every_half_life():
    fl, v = learner(half_life=10.0)
    fl.place(0.0, ONE, [(0, 100, 0, 1.0, False)])
    fl.fill(1.0, ONE, 0, 100, +1.0, mid=100.0)  # decays from t=0: 2^-0.1 on the exposure first
    n1, e1 = fl.n.sum(), fl.e.sum()
    assert n1 == pytest.approx(1.0) and e1 == pytest.approx(1.0)
    fl.decay(11.0)
    assert fl.n.sum() == pytest.approx(0.5) and fl.e.sum() == pytest.approx(0.5)
    fl.decay(31.0)
    assert fl.n.sum() == pytest.approx(0.125)
    fl.decay(10_000.0)  # long after: back at the prior
    a, b = fl.hazard()
    np.testing.assert_allclose(a, v.fills.hazard_shape, atol=1e-12)
    np.testing.assert_allclose(b, v.fills.hazard_rate, atol=1e-12)


def test_no_exposure_no_fills_is_the_prior_and_never_nan():
    fl, v = learner()
    fl.expose(5.0, ONE)  # nothing open
    fl.on_mid(5.0, 100.0)
    a, b = fl.hazard()
    np.testing.assert_array_equal(a, v.fills.hazard_shape)
    np.testing.assert_array_equal(b, v.fills.hazard_rate)
    m, _ = fl.markout()
    np.testing.assert_array_equal(m, v.fills.markout_mean_bps)
    # a prior of infinite sd (an improper NIG): its mean without data, the data's mean with
    flat = dataclasses.replace(v.fills, markout_sd_bps=np.full(np.shape(v.fills.markout_sd_bps), np.inf))
    fl2 = FillsLearner(flat, v.sigma_bps, 1e12, tau_s=1.0, horizon_s=1.0)
    assert all(np.all(np.isfinite(np.asarray(x, dtype=float))) for x in fl2.arrays())
    np.testing.assert_array_equal(fl2.markout()[0], v.fills.markout_mean_bps)
    fl2.place(0.0, ONE, [(0, 1, 0, 0.5, False)])
    fl2.fill(0.0, ONE, 0, 1, +1.0, mid=100.0)
    fl2.on_mid(0.5, 100.02)  # favourable: -2 bp
    assert fl2.markout()[0][0, 0, 0, 0] == pytest.approx(-2.0)
    assert all(np.all(np.isfinite(np.asarray(x, dtype=float))) for x in fl2.arrays())
    # a fill of an order the learner never saw placed is not learned from
    assert not fl2.fill(1.0, ONE, 1, 99, -1.0, mid=100.0)


def test_the_ladder_uses_the_learned_cells_and_the_metrics_show_them():
    cfg = mr.QuoterConfig(tick_size=1.0, min_depth_bps=0.0, fills_ladder_start="touch", max_kelly_f=10.0)
    q = Quoter(bundle(strength=2.0), cfg, replay=True)
    kw = dict(bid=100.0, ask=101.0, sigma_bps=0.5, margin_available=1e5)
    q.on_book(np.array([100.0]), np.array([0.5]), np.array([101.0]), np.array([0.5]))
    q.on_print(101.0, +1, 1.0)
    before = np.asarray(q.on_event(1.0, **kw).fill_prob)[0, 0]
    t = 1.0
    for _ in range(30):  # our touch bid filled 0.05 s after every placement: a fast cell
        q.place(t, np.array([[100.0], [0.0]]), np.array([[1.0], [0.0]]))
        t += 0.05
        q.on_event(t, fill=(100.0, 1.0, 0.5), **kw)
        t += 1.0
    q.place(t, np.array([[100.0], [0.0]]), np.array([[1.0], [0.0]]))
    after = np.asarray(q.on_event(t, **kw).fill_prob)[0, 0]
    assert q.fills_learner.n_fills == 30 and after > before + 0.1
    q.update_metrics()
    reg = q.runtime_metrics.registry
    shape, rate = q.fills_learner.hazard()
    r = int(np.argmax(q.fills_learner.n.sum(axis=(1, 2, 3))))
    lab = {"asset": "SYN", "regime": mr.REGIMES[r], "level": "0", "queue": "[0,2)", "piece": "0-0.1s"}
    assert reg.get_sample_value("mm_learned_fill_hazard", lab) == pytest.approx(shape[r, 0, 0, 0] / rate[r, 0, 0, 0])
    assert reg.get_sample_value("mm_learned_fill_hazard_data_weight", lab) > 0
    m, _ = q.fills_learner.markout()
    lab_m = {k: v for k, v in lab.items() if k != "piece"} | {"horizon": "0.5s"}
    assert reg.get_sample_value("mm_learned_markout_bps", lab_m) == pytest.approx(m[r, 0, 0, 0])


def test_a_bundle_without_fills_is_unchanged():
    b = mr.example_bundle("SYN")
    cfg = mr.QuoterConfig(tick_size=1.0)
    a, c = Quoter(b, cfg, replay=True, metrics=False), Quoter(b, cfg, replay=True, metrics=False)
    assert a.queue is None and a.fills_learner is None
    a.on_book(np.array([100.0]), np.array([1.0]), np.array([101.0]), np.array([1.0]))
    assert a.on_print(100.0, -1, 1.0) == {}
    a.place(1.0, np.array([[100.0], [101.0]]), np.array([[1.0], [1.0]]))
    kw = dict(bid=100.0, ask=101.0, sigma_bps=0.5, margin_available=1e5)
    qa, qc = a.on_event(2.0, **kw), c.on_event(2.0, **kw)
    for x, y in zip(qa, qc, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_the_learned_cells_are_saved_restored_and_reset(tmp_path, records):
    path = mr.dump_bundle(bundle(asset="BTC"), tmp_path / "BTC.json")
    cfg = mr.QuoterConfig(tick_size=1.0, min_depth_bps=0.0, fills_ladder_start="touch")
    state = tmp_path / "BTC.state.json"
    r = LiveRunner(path, cfg, LiveConfig(), state_path=state, market_clock=True)
    fl = r.quoter.fills_learner
    fl.place(0.0, ONE, [(0, 100, 0, 1.0, False)])
    fl.fill(0.25, ONE, 0, 100, 1.0, mid=100.0)
    fl.on_mid(1.0, 99.99)
    r.save_state()
    doc = json.loads(state.read_text())
    assert doc["fills_learning"]["fills"] == 1
    r2 = LiveRunner(path, cfg, LiveConfig(), state_path=state, market_clock=True)
    for k in ("n", "e", "w", "s"):
        np.testing.assert_array_equal(getattr(r2.quoter.fills_learner, k), getattr(fl, k))
    assert r2.quoter._fills_version == r2.quoter.fills_learner.version  # written into the step's cells
    # the reset file of `mmcal live reset --fills-learning` drops them
    from typer.testing import CliRunner

    from flows.cli import app

    out = CliRunner().invoke(app, ["live", "reset", "--asset", "BTC", "--state", str(state), "--fills-learning"])
    assert out.exit_code == 0, out.output
    assert r2.poll_reset()
    assert r2.quoter.fills_learner.n.sum() == 0 and r2.quoter.fills_learner.e.sum() == 0
    assert any(msg == "fills learning reset" and f["by"].startswith("mmcal live reset") for msg, f in records)
    # a malformed block refuses the file, naming the field
    doc["fills_learning"]["e"] = [-1.0] * len(doc["fills_learning"]["e"])
    state.write_text(json.dumps(doc))
    with pytest.raises(StateFileError, match=r"fills_learning\.e"):
        LiveRunner(path, cfg, LiveConfig(), state_path=state, market_clock=True)
