"""The ladder on the tick grid (bundles with a fills model): queue-aware fill
probability, the markout's edge, where the ladder starts, the no-quote reason, and
the step's properties (traced once, vmappable, never NaN)."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import mm_runtime as mr
from mm_runtime.examples import with_example_fills
from mm_runtime.paper.replay import _why_empty
from mm_runtime.quoter import TRACE_COUNTS, Quoter, batch_step, init, make_event, stack_trees, step
from mm_runtime.tick_ladder import why_empty_fills

MID, TICK = 100.005, 0.01  # a one-tick book 100.00 / 100.01: the touch is 0.5 bps from the mid


def fills_bundle(hazard, markout, sd=0.1, asset="SYN", shortfall=None):
    """The example bundle with a hand-built fills block (tight gammas, normals of sd ``sd``;
    optionally the capture shortfall per level)."""
    return with_example_fills(mr.example_bundle(asset), hazard, markout, sd=sd, shortfall=shortfall)


def default_hazard(lv, q):
    return 2.0 * math.exp(-0.9 * lv - 0.4 * q)


def config(**kw):
    base = dict(tick_size=TICK, min_depth_bps=0.0, fills_ladder_start="touch", max_kelly_f=10.0)
    return mr.QuoterConfig(**{**base, **kw})


def event(ts=1.0, mid=MID, queue=None, **kw):
    kw = {"bid": mid - TICK / 2, "ask": mid + TICK / 2, "sigma_bps": 0.5, "margin_available": 1e4, **kw}
    return make_event(ts, mid, queue_ahead=np.ones((2, 4)) if queue is None else queue, **kw)


def test_positive_edge_at_the_touch_only_quotes_the_touch():
    # markout 0.2 bps at the touch (capture 0.5 bps: edge +0.3), 3 bps behind it (capture
    # 1.5, 2.5, 3.5 bps: edges < 0)
    b = fills_bundle(default_hazard, lambda lv, q: 0.2 if lv == 0 else 3.0 + 2.0 * lv)
    _, q = step(init(b, config()), event())
    size, price, edge = (np.asarray(x) for x in (q.size, q.price, q.edge_bps))
    assert np.all(size[:, 0] > 0) and np.all(size[:, 1:] == 0)
    np.testing.assert_allclose(price[:, 0], [100.0, 100.01])
    np.testing.assert_allclose(np.asarray(q.depth_bps)[:, 0], 0.5 / MID * 100, rtol=1e-6)
    np.testing.assert_allclose(edge[:, 0], 0.5 / MID * 100 - 0.2, rtol=1e-6)  # δ - fee - m
    assert np.all(edge[:, 1:4] < 0)
    # P(fill within the 1 s re-post) of the touch, bucket [0,2) (queue 1): 1 - exp(-2 · 1)
    np.testing.assert_allclose(np.asarray(q.fill_prob)[:, 0], 1 - math.exp(-2.0), rtol=2e-3)


def test_fill_probability_falls_with_the_queue_and_a_nan_queue_is_the_worst_bucket():
    b = fills_bundle(default_hazard, lambda lv, q: 0.0)
    s = init(b, config())
    p = {}
    for name, qa in (("short", 0.5), ("long", 30.0), ("nan", math.nan), ("inf", math.inf), ("neg", -3.0)):
        _, q = step(s, event(queue=np.full((2, 4), qa)))
        p[name] = np.asarray(q.fill_prob)[:, 0]
        assert all(np.all(np.isfinite(np.asarray(x, dtype=float))) for x in q)
    assert np.all(p["short"] > p["long"])
    np.testing.assert_allclose(p["nan"], p["long"])  # unknown → the longest-queue bucket
    np.testing.assert_allclose(p["inf"], p["long"])
    np.testing.assert_allclose(p["neg"], p["short"])
    # a narrower queue input (W < levels) is padded with "unknown"
    _, q = step(s, event(queue=np.full((2, 1), 0.5)))
    np.testing.assert_allclose(np.asarray(q.fill_prob)[:, 0], p["short"])
    np.testing.assert_allclose(np.asarray(q.fill_prob)[:, 1], 1 - math.exp(-default_hazard(1, 4)), rtol=2e-3)


def test_a_capture_shortfall_above_the_touch_edge_removes_the_quote():
    """The edge counts the capture at the fill: δ - s - fee - m. Markout 0.2 bp at the
    touch (capture at placement 0.5 bp: edge +0.3 without a shortfall); a shortfall of
    0.4 bp makes it -0.1 (≤ 0) and the reason is the markout (δ - s = 0.1 < m)."""
    mk = lambda lv, q: 0.2 if lv == 0 else 3.0 + 2.0 * lv  # noqa: E731
    d0 = 0.5 / MID * 100
    _, q0 = step(init(fills_bundle(default_hazard, mk), config()), event())
    assert np.all(np.asarray(q0.size)[:, 0] > 0)
    np.testing.assert_allclose(np.asarray(q0.edge_bps)[:, 0], d0 - 0.2, rtol=1e-6)
    b = fills_bundle(default_hazard, mk, shortfall=lambda lv: 0.4 + 0.1 * lv)
    cfg = config()
    _, q = step(init(b, cfg), event())
    edge = np.asarray(q.edge_bps)
    np.testing.assert_allclose(edge[:, 0], d0 - 0.4 - 0.2, rtol=1e-6)  # δ - s - fee - m
    np.testing.assert_allclose(edge[:, 1], d0 + 1.0 * TICK / MID * 1e4 - 0.5 - 5.0, rtol=1e-6)
    assert np.all(edge <= 0) and not np.any(np.asarray(q.size) > 0)
    np.testing.assert_array_equal(np.asarray(q.depth_bps), np.asarray(q0.depth_bps))  # δ: still at placement
    quoter = Quoter(b, cfg, replay=True, metrics=False)
    qt = quoter.on_event(1.0, MID, bid=100.0, ask=100.01, sigma_bps=0.5, margin_available=1e4,
                         queue_ahead=np.ones((2, 4)))
    assert _why_empty(qt, quoter, cfg).startswith(
        "no positive Kelly edge at any level: markout (E[markout | fill] >= the spread capture at the fill")


def test_edge_terms_report_the_shortfall():
    from mm_runtime.paper.results import edge_terms

    # one refresh: bid 100.00 / ask 100.02 around a mid of 100.01, levels 0 and 1 per side
    px = np.array([[100.00, 99.99], [100.02, 100.03]])
    dep = np.array([[1.0, 2.0], [1.0, 2.0]])
    edge = np.array([[0.1, -0.5], [0.3, -0.2]])
    pf = np.array([[0.5, 0.2], [0.5, 0.0]])  # the ask's level 1 is off the grid
    et = edge_terms([(100.00, 100.02, px, dep, edge, pf)], 0.01, 0.1, np.array([0.3, 0.6, 0.9, 1.2]))
    lv = {d["level"]: d for d in et["levels"]}
    assert lv[0]["slots"] == 2 and lv[1]["slots"] == 1
    assert lv[0]["capture_shortfall_bps"] == pytest.approx(0.3) and lv[0]["capture_at_fill_bps"] == pytest.approx(0.7)
    assert lv[0]["markout_bps"] == pytest.approx(1.0 - 0.3 - 0.1 - 0.2)  # δ - s - fee - mean E
    assert lv[1]["markout_bps"] == pytest.approx(2.0 - 0.6 - 0.1 + 0.5)
    # no shortfall given: s = 0, the capture at the fill is the capture at placement
    lv = {d["level"]: d for d in edge_terms([(100.00, 100.02, px, dep, edge, pf)], 0.01, 0.1)["levels"]}
    assert lv[0]["capture_shortfall_bps"] == 0.0 and lv[0]["markout_bps"] == pytest.approx(1.0 - 0.1 - 0.2)


def test_one_tick_book_with_markout_above_the_half_spread_gives_no_quote_named_markout():
    b = fills_bundle(default_hazard, lambda lv, q: 5.0 + lv)  # 5 bps adverse; capture 0.5..3.5 bps
    cfg = config()
    quoter = Quoter(b, cfg, replay=True, metrics=False)
    qt = quoter.on_event(1.0, MID, bid=100.0, ask=100.01, sigma_bps=0.5, margin_available=1e4,
                         queue_ahead=np.ones((2, 4)))
    assert bool(qt.valid) and not np.any(np.asarray(qt.size) > 0)
    assert why_empty_fills(qt.fill_prob, qt.depth_bps, qt.edge_bps, cfg.fee_bps) == "markout"
    assert _why_empty(qt, quoter, cfg).startswith("no positive Kelly edge at any level: markout")


def test_a_fee_above_capture_minus_markout_is_named_the_fee():
    b = fills_bundle(default_hazard, lambda lv, q: 0.1 + lv)  # capture - markout = 0.4 bps at every level
    cfg = config(fee_bps=1.0)
    quoter = Quoter(b, cfg, replay=True, metrics=False)
    qt = quoter.on_event(1.0, MID, bid=100.0, ask=100.01, sigma_bps=0.5, margin_available=1e4)
    assert not np.any(np.asarray(qt.size) > 0)
    assert _why_empty(qt, quoter, cfg).startswith("no positive Kelly edge at any level: fee")
    # and a rebate makes the same book worth quoting
    qt = Quoter(b, config(fee_bps=-0.2), replay=True, metrics=False).on_event(
        1.0, MID, bid=100.0, ask=100.01, sigma_bps=0.5, margin_available=1e4)
    assert np.any(np.asarray(qt.size) > 0)


def test_the_start_follows_glft_and_inventory():
    b = fills_bundle(default_hazard, lambda lv, q: -1.0)
    # "glft": level 0 at GLFT's depth in ticks behind the touch (the example's κ puts it
    # several bps out: clipped to the last fitted level, 3)
    _, q = step(init(b, config(fills_ladder_start="glft")), event())
    d = np.asarray(q.depth_bps)
    h = np.asarray(q.half_spread_bps)
    lv = np.clip(np.floor((h - 0.5 / MID * 100) / (TICK / MID * 1e4) + 1e-9), 0, 3)
    np.testing.assert_allclose(d[:, 0], 0.5 / MID * 100 + lv * TICK / MID * 1e4, rtol=1e-6)
    # "touch": flat at the touch; a long position moves the bid back (not the ask)
    s = init(b, config(gamma=0.5))
    _, flat = step(s, event())
    _, longq = step(s, event(position=3.0))
    np.testing.assert_allclose(np.asarray(flat.price)[:, 0], [100.0, 100.01])
    assert np.asarray(longq.price)[0, 0] < 100.0 and np.asarray(longq.price)[1, 0] == pytest.approx(100.01)


def test_without_a_fills_model_the_ladder_is_unchanged():
    plain = mr.example_bundle()
    b = fills_bundle(default_hazard, lambda lv, q: 0.0)
    for cfg_b in (config(use_fills_model=False), config(tick_size=0.0)):
        assert init(b, cfg_b).cfg.fills is None
        _, q1 = step(init(b, cfg_b), event())
        _, q2 = step(init(plain, cfg_b), event())
        for name, x in q1._asdict().items():
            np.testing.assert_array_equal(np.asarray(x), np.asarray(getattr(q2, name)), err_msg=name)
    assert init(plain, config()).cfg.fills is None


def test_the_fills_step_is_traced_once_and_never_nan():
    b = fills_bundle(default_hazard, lambda lv, q: 0.2 if lv == 0 else 3.0)
    state = init(b, config())
    rng = np.random.default_rng(0)
    events = [event(1.0 + i, MID * (1 + 1e-4 * rng.normal()), queue=np.where(rng.random((2, 4)) < 0.3, np.nan,
                                                                            rng.exponential(5.0, (2, 4))))
              for i in range(20)]
    events += [event(30.0, math.nan), event(31.0, queue=np.full((2, 4), math.nan)),
               event(32.0, sigma_bps=math.nan), event(33.0, bid=0.0, ask=0.0)]
    state, q = step(state, events[0])
    traces, cached = TRACE_COUNTS["step"], step._cache_size()
    for e in events[1:]:
        state, q = step(state, e)
        for name, x in q._asdict().items():
            assert np.all(np.isfinite(np.asarray(x, dtype=float))), name
    jax.block_until_ready(q)
    assert TRACE_COUNTS["step"] == traces and step._cache_size() == cached
    assert np.any(np.asarray(q.size) > 0)  # the book-less event: the touch from the tick grid


def test_vmap_over_assets_matches_single_steps():
    bundles = [fills_bundle(default_hazard, lambda lv, q, m=m: m + lv, asset=a, shortfall=sf)
               for a, m, sf in (("A", 0.1, None), ("B", -0.5, lambda lv: 0.2 + 0.1 * lv), ("C", 0.3, None))]
    configs = [config(max_position=m, fee_bps=f) for m, f in ((10, 0.0), (2, -0.2), (50, 0.1))]
    states = [init(b, c) for b, c in zip(bundles, configs, strict=True)]
    batched, singles = stack_trees(states), list(states)
    rng = np.random.default_rng(1)
    for i in range(6):
        evs = [event(1.0 + i, MID, queue=rng.exponential(4.0, (2, 4)), position=float(rng.normal())) for _ in range(3)]
        batched, qb = batch_step(batched, stack_trees(evs))
        for a in range(3):
            singles[a], qa = step(singles[a], evs[a])
            for name in ("price", "size", "fill_prob", "edge_bps", "kelly_f"):
                np.testing.assert_allclose(np.asarray(getattr(qb, name))[a], np.asarray(getattr(qa, name)),
                                           rtol=1e-9, atol=1e-12, err_msg=name)
    assert np.asarray(qb.size).shape == (3, 2, 5) and np.any(np.asarray(qb.size) > 0)


def test_the_quoter_path_matches_the_pytree_step():
    b = fills_bundle(default_hazard, lambda lv, q: 0.2 + 0.5 * lv)
    quoter, state = Quoter(b, config(), replay=True, metrics=False), init(b, config())
    rng = np.random.default_rng(2)
    for i in range(10):
        qa = rng.exponential(4.0, (2, 4))
        q1 = quoter.on_event(1.0 + i, MID, bid=100.0, ask=100.01, sigma_bps=0.5, margin_available=1e4, queue_ahead=qa)
        state, q2 = step(state, event(1.0 + i, queue=qa))
        for name, x in q1._asdict().items():
            np.testing.assert_allclose(np.asarray(x, dtype=float), np.asarray(getattr(q2, name), dtype=float),
                                       rtol=1e-9, atol=1e-12, err_msg=name)  # XLA options differ in ulps


def test_the_replay_passes_the_displayed_queue_and_counts_the_markout_reason():
    """A 2-tick book (99.99 / 100.01): 1 median trade displayed at our bid's touch, 100 at
    the ask's. The markout is small behind a short queue and large behind a long one, so
    with the book the replay quotes the bid touch only; without a book (queue unknown =
    the longest bucket) it never quotes and says the markout is why."""
    from mm_runtime.paper.replay import ReplayConfig, ReplayData, replay

    t0, tick = 1_700_000_000.0, 0.01
    qt = t0 + np.arange(0.0, 30.0, 1.0)
    d = ReplayData("SYN", "unit", np.array([t0 + 5.0]), np.array([100.01]), np.array([1.0]), np.array([1.0]),
                   qt, np.full(qt.size, 99.99), np.full(qt.size, 100.01), tick=tick)
    lv = [(99.99, 1.0), (99.98, 1.0), (99.97, 1.0), (99.96, 1.0)]
    la = [(100.01, 100.0), (100.02, 100.0), (100.03, 100.0), (100.04, 100.0)]
    booked = d._replace(book_ts=np.array([t0 - 0.5]), book_bid_px=np.array([[p for p, _ in lv]]),
                        book_bid_sz=np.array([[s for _, s in lv]]), book_ask_px=np.array([[p for p, _ in la]]),
                        book_ask_sz=np.array([[s for _, s in la]])).check()
    b = fills_bundle(default_hazard, lambda lv_, q: 0.2 if (lv_ == 0 and q == 0) else 4.0 + lv_)
    qc = config(learn=False)
    rc = ReplayConfig(refresh_s=29.0, latency_s=0.0, learn_from_trades=False)
    r = replay(booked, b, qc, rc)
    assert r.our_bid[0] == pytest.approx(99.99) and np.isnan(r.our_ask[0])
    # the edge terms by level: the touch is 1 bp from the mid 100.00 on both sides, its
    # markout 0.2 bp behind the bid's short queue and 4 bp behind the ask's long one
    et = {d["level"]: d for d in r.summary["edge_terms"]["levels"]}
    assert et[0]["slots"] == 2 and et[0]["spread_capture_bps"] == pytest.approx(1.0, rel=1e-6)
    assert et[0]["markout_bps"] == pytest.approx((0.2 + 4.0) / 2, rel=1e-6)
    assert et[0]["positive_share"] == 0.5 and et[1]["markout_bps"] == pytest.approx(5.0, rel=1e-6)
    assert et[1]["edge_bps"] == pytest.approx(2.0 - 5.0, rel=1e-6)
    assert et[0]["capture_shortfall_bps"] == 0.0 and et[0]["capture_at_fill_bps"] == et[0]["spread_capture_bps"]
    # with a shortfall of 0.9 bp at the touch the bid's edge (1 - 0.2) is gone: no quote
    bs = fills_bundle(default_hazard, lambda lv_, q: 0.2 if (lv_ == 0 and q == 0) else 4.0 + lv_,
                      shortfall=lambda lv_: 0.9 if lv_ == 0 else 0.0)
    r2 = replay(booked, bs, qc, rc)
    assert np.all(np.isnan(r2.our_bid)) and np.all(np.isnan(r2.our_ask))
    et2 = {d["level"]: d for d in r2.summary["edge_terms"]["levels"]}
    assert et2[0]["capture_shortfall_bps"] == pytest.approx(0.9) and et2[1]["capture_shortfall_bps"] == 0.0
    assert et2[0]["capture_at_fill_bps"] == pytest.approx(0.1, rel=1e-5)
    assert et2[0]["markout_bps"] == pytest.approx(et[0]["markout_bps"], rel=1e-6)
    r = replay(d.check(), b, qc, rc)
    assert np.all(np.isnan(r.our_bid)) and np.all(np.isnan(r.our_ask))
    (reason, n), = r.summary["not_quoting"].items()
    assert reason.startswith("no positive Kelly edge at any level: markout") and n == r.summary["refreshes"]
