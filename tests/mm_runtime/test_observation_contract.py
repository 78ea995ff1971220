"""The bundle's observation block defines α for the live quoter: the markout horizon
and the informed threshold come from it, and a QuoterConfig may not contradict it."""

from __future__ import annotations

import os

import numpy as np
import pytest

import mm_runtime as mr
from mm_runtime.estimators import Columns
from mm_runtime.observation import ObservationConfig
from mm_runtime.quoter import ObservationConflict, Quoter, init, make_event, resolve_config, step

MID = 50_000.0
COLS = Columns(4)


def bundle(asset: str = "SYN", **obs) -> mr.PriorBundle:
    b = mr.example_bundle(asset)
    return mr.with_checksum(b.model_copy(update={"observation": ObservationConfig(**obs)}))


def test_the_config_defaults_to_the_bundle():
    b = bundle(markout_horizon_s=5.0, informed_threshold_bps=2.0)
    cfg = mr.QuoterConfig()
    assert cfg.markout_horizon_s is None and cfg.informed_threshold_bps is None
    r = resolve_config(b, cfg)
    assert (r.markout_horizon_s, r.informed_threshold_bps) == (5.0, 2.0)
    lp = init(b, cfg).cfg.learning
    assert (float(lp.markout_horizon_s), float(lp.informed_threshold_bps)) == (5.0, 2.0)
    # restating the bundle's values is fine
    same = mr.QuoterConfig(markout_horizon_s=5.0, informed_threshold_bps=2.0)
    assert float(init(b, same).cfg.learning.markout_horizon_s) == 5.0
    # a schema-1 bundle (no observation block): the defaults, 1 s and 1 bp
    lp = init(mr.example_bundle()).cfg.learning
    assert (float(lp.markout_horizon_s), float(lp.informed_threshold_bps)) == (1.0, 1.0)


@pytest.mark.parametrize(("field", "ours", "theirs"), [("markout_horizon_s", 2.0, 5.0),
                                                       ("informed_threshold_bps", 1.0, 2.0)])
def test_a_contradicting_config_is_refused_naming_both_values(field, ours, theirs):
    b = bundle(**{field: theirs})
    cfg = mr.QuoterConfig(**{field: ours})
    for make in (lambda: init(b, cfg), lambda: Quoter(b, cfg, metrics=False),
                 lambda: mr.quote_once(b, MID, config=cfg)):
        with pytest.raises(ObservationConflict) as exc:
            make()
        msg = str(exc.value)
        assert "\n" not in msg
        assert f"QuoterConfig.{field}={ours:g}" in msg, msg
        assert f"bundle's observation.{field}={theirs:g}" in msg, msg
    assert isinstance(exc.value, mr.BundleError)  # `mmcal quote` reports it as a bundle error


def _markout_resolved(quoter_or_state, wait_s: float, horizon_config=None):
    """A bid filled 3 bp below the mid (bucket [2,5)), the mid then 4 bp below the fill
    price (adverse) at ``10 + wait_s``: the α-success evidence of bucket 1 after it."""
    price = MID * (1 - 3e-4)
    later = price * (1 - 4e-4)
    if isinstance(quoter_or_state, Quoter):
        q = quoter_or_state
        q.on_event(10.0, MID, margin_available=1e4)
        q.on_event(10.0, MID, margin_available=1e4, fill=(price, 1.0))
        q.on_event(10.0 + wait_s, later, margin_available=1e4)
        return float(np.asarray(q.state.est.evidence)[:, COLS.alpha_a.start + 1].sum())
    state = quoter_or_state
    for ev in (make_event(10.0, MID, margin_available=1e4),
               make_event(10.0, MID, margin_available=1e4, fill_price=price, fill_side=1.0),
               make_event(10.0 + wait_s, later, margin_available=1e4)):
        state, _ = step(state, ev)
    return float(np.asarray(state.est.evidence)[:, COLS.alpha_a.start + 1].sum())


def test_a_bundle_with_a_5s_horizon_resolves_markouts_at_5s():
    b5 = bundle(markout_horizon_s=5.0)
    # the pure step: pending at 1 s and at 4.9 s, resolved at 5 s
    assert _markout_resolved(init(b5), 1.0) == 0.0
    assert _markout_resolved(init(b5), 4.9) == 0.0
    assert _markout_resolved(init(b5), 5.0) == pytest.approx(1.0)
    # the default bundle resolves at 1 s (the same events)
    assert _markout_resolved(init(mr.example_bundle()), 1.0) == pytest.approx(1.0)
    # the Quoter (packed path)
    assert _markout_resolved(Quoter(b5, replay=True, metrics=False), 1.0) == 0.0
    assert _markout_resolved(Quoter(b5, replay=True, metrics=False), 5.0) == pytest.approx(1.0)


def test_the_threshold_comes_from_the_bundle():
    """A 4 bp adverse markout is informed under a 1 bp threshold, not under 5 bp."""
    assert _markout_resolved(init(bundle(informed_threshold_bps=5.0)), 1.0) == 0.0
    assert _markout_resolved(init(bundle(informed_threshold_bps=1.0)), 1.0) == pytest.approx(1.0)


def test_hot_reload_refuses_a_bundle_the_config_contradicts(tmp_path):
    path = mr.dump_bundle(bundle(), tmp_path / "live.json")
    quoter = Quoter(path, mr.QuoterConfig(markout_horizon_s=1.0, reload_check_interval_s=0.0), replay=True)
    mr.dump_bundle(bundle(markout_horizon_s=5.0).model_copy(update={"model_version": "v2"}), path)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    q = quoter.on_event(1.0, MID, margin_available=1e4)
    assert bool(q.valid) and quoter.bundle.model_version == "example-v1"  # the last good bundle stays
    assert float(quoter.state.cfg.learning.markout_horizon_s) == 1.0
    assert quoter.runtime_metrics.registry.get_sample_value("mm_bundle_reload_failures_total",
                                                            {"asset": "SYN"}) == 1.0


def test_hot_reload_follows_the_bundle_and_resets_alpha_learned_under_another_definition(tmp_path):
    path = mr.dump_bundle(bundle(), tmp_path / "live.json")
    quoter = Quoter(path, mr.QuoterConfig(reload_check_interval_s=0.0), replay=True, metrics=False)
    assert _markout_resolved(quoter, 1.0) == pytest.approx(1.0)
    quoter.on_event(12.0, MID, margin_available=1e4, trade=(MID * 1.0003, 1.0))
    before = np.asarray(quoter.state.est.evidence).copy()
    assert before[:, COLS.kappa_shape].sum() > 0
    mr.dump_bundle(bundle(markout_horizon_s=5.0).model_copy(update={"model_version": "v2"}), path)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    quoter.on_event(12.0, MID, margin_available=1e4)
    assert quoter.bundle.model_version == "v2"
    assert float(quoter.state.cfg.learning.markout_horizon_s) == 5.0
    after = np.asarray(quoter.state.est.evidence)
    assert not after[:, : COLS.alpha_b.stop].any()  # α: learned under h = 1 s, dropped
    np.testing.assert_array_equal(after[:, COLS.alpha_b.stop:], before[:, COLS.alpha_b.stop:])  # κ, A kept
    assert quoter.effective_config.markout_horizon_s == 5.0 and quoter.config.markout_horizon_s is None
