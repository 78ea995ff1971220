"""The learned-parameter registry drives the ladder (issue 19 items 2-3): γ, the
spread floor, the depth spacing ratio and the toxic-hour multiplier come from the
registry when their tier is calibrated, else the bundle, else the config, with the
source named; the step's α/κ learning is reported into the registry (one learner)
and survives a restart; a prior-only bundle still posts a minimal ladder."""

import asyncio
import json
import math

import jax
import numpy as np
import pytest

import mm_runtime as mr
from mm_runtime import QuoterConfig, example_bundle
from mm_runtime.bundle import PriorBundle, dump_bundle, with_checksum
from mm_runtime.core import TRACE_COUNTS, batch_step, init, make_event, stack_trees, step, with_ladder_values
from mm_runtime.params import DEFAULT_SPECS, Evidence, Registry
from mm_runtime.params.online import ladder_values, step_evidence
from mm_runtime.quoter import Quoter, quote_once

T0 = 1_700_000_000.0  # 22:13:20 UTC
HOUR = int((T0 % 86_400) // 3_600)


def _with_params(bundle: PriorBundle, **extra) -> PriorBundle:
    doc = bundle.model_dump(mode="json")
    doc["params"].update(extra)
    doc["checksum"] = ""
    return with_checksum(PriorBundle.model_validate(doc))


def _prior_only(asset="TEST", alpha=0.6, strength=4.0) -> PriorBundle:
    """A bundle with no fit behind it whose α prior (0.6 everywhere, worth 4 fills)
    leaves the Kelly ladder without an order: negative edges near the mid, the deep
    levels' sizes below the minimum notional."""
    doc = example_bundle(asset).model_dump(mode="json")
    for cells in doc["params"]["alpha"].values():
        for k in cells:
            cells[k] = {"family": "beta", "a": alpha * strength, "b": (1 - alpha) * strength}
    doc["checksum"] = ""
    doc["model_version"] = "prior-only"
    return with_checksum(PriorBundle.model_validate(doc))


def _calibrate_tier(r: Registry, tier: int, *, short: str | None = None, gamma=0.3, floor=6.0, toxic=1.8,
                    ratio=1.8) -> None:
    """Feed every parameter of ``tier`` its min_n observations (one fewer for ``short``)."""
    for s in DEFAULT_SPECS:
        if s.tier != tier:
            continue
        n = s.min_n - (s.name == short)
        if s.name == "alpha_touch":
            r.update(Evidence.bernoulli(s.name, round(0.2 * n), n))
        elif s.name == "gamma_base":
            r.update(Evidence.poisson(s.name, n, n / gamma))
        elif s.name == "spread_floor_bps":
            r.update(Evidence.of_values(s.name, [floor] * n))
        elif s.name == "toxic_hour_multiplier":
            r.update(Evidence.of_values(s.name, [toxic] * n))
        elif s.name == "depth_spacing_ratio":
            r.update(Evidence.of_values(s.name, [ratio] * n))
        elif s.name in ("kalman_q", "kalman_r"):
            r.update(Evidence.of_values(s.name, list(np.tile([1.0, -1.0], n // 2 + 1)[:n])))
        elif s.name == "microprice_decay":
            r.update(Evidence.bernoulli(s.name, 0.999 * n, n))


# ----------------------------------------------------------------------------- sources
def test_every_value_names_its_source_default_bundle_registry():
    b = example_bundle("BTC")
    cfg = QuoterConfig()
    vals = ladder_values(cfg, b, None)
    assert {k: v.source for k, v in vals.items()} == dict.fromkeys(
        ("gamma", "spread_floor_bps", "level_ratio", "toxic_multiplier"), "default")
    assert [vals[k].value for k in ("gamma", "spread_floor_bps", "level_ratio", "toxic_multiplier")] == \
        [cfg.gamma, cfg.spread_floor_bps, cfg.level_ratio, cfg.toxic_hour_multiplier]
    # a bundle carrying gamma_base and depth_spacing_ratio: those two from the bundle
    bb = _with_params(b, gamma_base={"family": "gamma", "shape": 50.0, "rate": 250.0},
                      depth_spacing_ratio={"family": "lognormal", "mu": math.log(2.0), "sigma": 0.1})
    vals = ladder_values(cfg, bb, Registry.from_bundle(bb))
    assert vals["gamma"].source == "bundle" and vals["gamma"].value == pytest.approx(0.2)
    assert vals["level_ratio"].source == "bundle"
    assert vals["level_ratio"].value == pytest.approx(2.0 * math.exp(0.005), rel=1e-9)
    assert vals["spread_floor_bps"].source == "default" and "tier 1 not calibrated" in vals["gamma"].detail
    # the quote report and the quoter's status say the same
    rep = quote_once(bb, 30_000.0, 0.6, config=cfg, registry=Registry.from_bundle(bb)).to_dict()["summary"]
    assert rep["ladder_params"]["gamma"] == {**vals["gamma"].to_dict()}
    assert rep["ladder_params"]["toxic_hours"] == {"value": [], "source": "default"}
    q = Quoter(bb, cfg, replay=True, metrics=False)
    qq = q.on_event(T0, 30_000.0, margin_available=1e4)
    assert q.status_fields(qq)["ladder_params"]["level_ratio"] == {"value": vals["level_ratio"].value,
                                                                   "source": "bundle"}
    d = np.asarray(qq.depth_bps)[0]
    assert d[2] / d[1] == pytest.approx(vals["level_ratio"].value, rel=1e-6)  # the ladder's spacing


def test_mmcal_quote_json_names_the_sources(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    p = dump_bundle(example_bundle("BTC"), tmp_path / "BTC.json")
    reg = Registry.from_bundle(example_bundle("BTC"))
    _calibrate_tier(reg, 1)
    st = reg.save(tmp_path / "params.json")
    base = ["quote", "--priors", str(p), "--mid", "30000", "--json"]
    r = CliRunner().invoke(app, base)
    assert r.exit_code == 0, r.output
    lp = json.loads(r.stdout)["summary"]["ladder_params"]
    assert {k: lp[k]["source"] for k in ("gamma", "spread_floor_bps", "level_ratio", "toxic_multiplier")} == \
        dict.fromkeys(("gamma", "spread_floor_bps", "level_ratio", "toxic_multiplier"), "default")
    r = CliRunner().invoke(app, base + ["--params-state", str(st)])
    assert r.exit_code == 0, r.output
    lp = json.loads(r.stdout)["summary"]["ladder_params"]
    assert lp["gamma"]["source"] == "registry" and lp["gamma"]["value"] == pytest.approx(reg.estimate("gamma_base"))
    assert lp["level_ratio"]["source"] == "default"  # tier 4 is not calibrated


def test_a_calibrated_tier_changes_gamma_and_the_quotes_and_an_uncalibrated_one_falls_back():
    b = example_bundle("BTC")
    cfg = QuoterConfig(spread_floor_bps=0.0)
    plain = quote_once(b, 30_000.0, 0.6, config=cfg)
    short = Registry.from_bundle(b)
    _calibrate_tier(short, 1, short="gamma_base")
    assert not short.calibration_status().tier1_ready
    fallback = quote_once(b, 30_000.0, 0.6, config=cfg, registry=short)
    assert {k: fallback.summary["ladder_params"][k]["source"] for k in ("gamma", "spread_floor_bps")} == \
        {"gamma": "default", "spread_floor_bps": "default"}
    assert fallback.rows == plain.rows  # the uncalibrated tier changes nothing
    reg = Registry.from_bundle(b)
    _calibrate_tier(reg, 1, floor=6.0)
    assert reg.calibration_status().tier1_ready
    learned = quote_once(b, 30_000.0, 0.6, config=cfg, registry=reg)
    lp = learned.summary["ladder_params"]
    g, floor = reg.estimate("gamma_base"), reg.estimate("spread_floor_bps")
    assert lp["gamma"]["value"] == pytest.approx(g)
    assert {k: lp["gamma"][k] for k in ("source", "param", "detail")} == {
        "source": "registry", "param": "gamma_base", "detail": "tier 1 calibrated: posterior mean"}
    assert g == pytest.approx(0.3, rel=0.1) and lp["spread_floor_bps"]["value"] == pytest.approx(floor)
    assert learned.rows != plain.rows
    # the same ladder as a static config with those values: the registry's values are what the step used
    same = quote_once(b, 30_000.0, 0.6, config=cfg.model_copy(update={"gamma": g, "spread_floor_bps": floor}))
    for a, c in zip(learned.rows, same.rows, strict=True):
        assert a.pop("side") == c.pop("side") and a == pytest.approx(c, rel=1e-12)
    hs = learned.summary["half_spread_bps"]
    assert min(hs.values()) >= floor - 1e-9  # the floor holds
    # tier 4 (the depth spacing ratio) is independent of tier 1
    assert lp["level_ratio"]["source"] == "default"
    _calibrate_tier(reg, 4, ratio=1.8)
    assert reg.calibration_status().tier4_ready
    lp4 = quote_once(b, 30_000.0, 0.6, config=cfg, registry=reg).summary["ladder_params"]
    assert lp4["level_ratio"]["source"] == "registry" and lp4["level_ratio"]["value"] == pytest.approx(1.8, rel=0.02)
    # learning switched off: the registry is passed over
    off = ladder_values(cfg.model_copy(update={"learn": False}), b, reg)
    assert off["gamma"].source == "default" and "learning off" in off["gamma"].detail


def test_toxic_hours_multiply_the_half_spread_and_the_floor_holds():
    b = example_bundle("BTC")
    ev = dict(margin_available=1e4)
    base = QuoterConfig(toxic_hours_utc=(HOUR,), toxic_hour_multiplier=2.0)
    _, q_in = step(init(b, base), make_event(T0, 30_000.0, **ev))
    _, q_out = step(init(b, base), make_event(T0 + 3_600.0, 30_000.0, **ev))
    _, q_plain = step(init(b, QuoterConfig()), make_event(T0, 30_000.0, **ev))
    assert float(q_in.spread_multiplier) == 2.0 and float(q_out.spread_multiplier) == 1.0
    np.testing.assert_allclose(q_in.half_spread_bps, 2.0 * np.asarray(q_plain.half_spread_bps), rtol=1e-12)
    np.testing.assert_allclose(q_out.half_spread_bps, q_plain.half_spread_bps, rtol=1e-12)
    _, q_floor = step(init(b, QuoterConfig(spread_floor_bps=25.0)), make_event(T0, 30_000.0, **ev))
    np.testing.assert_allclose(q_floor.half_spread_bps, 25.0)
    assert np.all(np.asarray(q_floor.depth_bps)[:, 0] >= 25.0 - 1e-9)
    # the registry's toxic hours and multiplier, once tier 1 is calibrated
    reg = Registry.from_bundle(b)
    _calibrate_tier(reg, 1, toxic=1.8)
    reg.set_toxic_hours([HOUR], "test")
    rep = quote_once(b, 30_000.0, 0.6, config=QuoterConfig(), registry=reg)
    assert rep.summary["ladder_params"]["toxic_hours"] == {"value": [HOUR], "source": "registry"}
    assert rep.summary["ladder_params"]["toxic_multiplier"]["source"] == "registry"


# ----------------------------------------------------------------------------- the jitted step
def test_ladder_values_are_state_the_step_is_traced_once_and_vmaps():
    b = example_bundle("BTC")
    s0 = init(b)
    s0, q = step(s0, make_event(T0, 30_000.0, margin_available=1e4))
    traces, cached = TRACE_COUNTS["step"], step._cache_size()
    outs = []
    for g, floor, ratio, tox in ((0.1, 0.0, 1.5, 1.0), (0.5, 8.0, 2.0, 3.0), (0.05, 2.0, 1.2, 0.5)):
        s = with_ladder_values(s0, {"gamma": g, "spread_floor_bps": floor, "level_ratio": ratio,
                                    "toxic_multiplier": tox}, toxic_hours=[HOUR])
        _, q = step(s, make_event(T0 + 1, 30_000.0, margin_available=1e4))
        outs.append(np.asarray(q.half_spread_bps))
    jax.block_until_ready(q)
    assert TRACE_COUNTS["step"] == traces and step._cache_size() == cached
    assert len({tuple(o) for o in outs}) == 3
    # vmapped over assets with different learned values: each row as its own step
    states = [with_ladder_values(init(b), {"gamma": g}) for g in (0.1, 0.4)]
    ev = make_event(T0, 30_000.0, margin_available=1e4)
    _, qb = batch_step(stack_trees(states), stack_trees([ev, ev]))
    for i, s in enumerate(states):
        np.testing.assert_allclose(np.asarray(qb.price)[i], np.asarray(step(s, ev)[1].price), rtol=1e-12)


@pytest.mark.parametrize("bad", [{"gamma": math.nan}, {"gamma": 0.0}, {"level_ratio": 1.0},
                                 {"spread_floor_bps": -1.0}, {"toxic_multiplier": math.inf}, {"kappa": 1.0}])
def test_no_nan_or_out_of_range_value_reaches_the_step(bad):
    s = init(example_bundle())
    with pytest.raises(ValueError, match=f"ladder value {next(iter(bad))!r}"):
        with_ladder_values(s, bad)


def test_non_finite_times_give_no_nan_with_toxic_hours():
    s = init(example_bundle(), QuoterConfig(toxic_hours_utc=tuple(range(24)), toxic_hour_multiplier=3.0))
    for ts in (math.nan, math.inf, -1.0):
        _, q = step(s, make_event(ts, 30_000.0, margin_available=1e4))
        for name, x in q._asdict().items():
            assert np.all(np.isfinite(np.asarray(x, dtype=float))), name


# ----------------------------------------------------------------------------- one learner
def _drive(q: Quoter, n=400, seed=0):
    rng = np.random.default_rng(seed)
    mid = 30_000.0
    for i in range(n):
        t = T0 + 0.25 * i
        mid *= math.exp(rng.normal() * 1e-4 * 0.5)
        kw = {}
        if rng.random() < 0.5:
            side = rng.choice([-1.0, 1.0])
            kw["trade"] = (mid * (1 + side * rng.exponential(4.0) * 1e-4), side)
        if rng.random() < 0.2:
            side = rng.choice([-1.0, 1.0])
            kw["fill"] = (mid * (1 - side * 0.5e-4), side)
        q.on_event(t, mid, margin_available=1e4, **kw)


def test_the_step_reports_alpha_and_kappa_into_the_registry_never_learned_twice():
    b = example_bundle("BTC")
    reg = Registry.from_bundle(b)
    reg.update(Evidence.exponential("kappa", 10, 40.0, source="offline"))  # the registry's own evidence
    own = reg.posterior("kappa")
    q = Quoter(b, replay=True, metrics=False, registry=reg)
    _drive(q)
    q.refresh_learned()
    ev = np.asarray(q.state.est.evidence)
    B = len(b.bucket_keys)
    on = reg.online("kappa")
    assert on.count == pytest.approx(ev[:, 2 * B:2 * B + 2].sum()) and on.count > 50
    assert on.total == pytest.approx(ev[:, 2 * B + 2:2 * B + 4].sum())
    # posterior = the registry's own posterior + the step's report, once
    assert reg.posterior("kappa").shape == pytest.approx(own.shape + on.count)
    assert reg.posterior("kappa").rate == pytest.approx(own.rate + on.total)
    a = reg.online("alpha_touch")
    assert a.trials == pytest.approx(ev[:, 0].sum() + ev[:, B].sum()) and a.trials > 5
    # a second report replaces the first (not added to it)
    q.refresh_learned()
    q.refresh_learned()
    assert reg.posterior("kappa").shape == pytest.approx(own.shape + on.count)
    # the state file holds the registry's own learning only (the step's lives in the live state)
    doc = reg.to_dict()["params"]["kappa"]
    assert doc["posterior"]["shape"] == pytest.approx(own.shape) and doc["online"]["count"] == on.count
    assert step_evidence(q.state)[1] == on
    assert reg.summary("kappa").sources[-1] == "online: quote step: κ[*][*] evidence"  # mmcal params show


def test_registry_state_round_trips_online_and_toxic_hours_and_old_files_still_load(tmp_path):
    reg = Registry(asset="BTC")
    reg.update(Evidence.of_values("spread_floor_bps", [4.0, 6.0]))
    reg.set_online([Evidence.bernoulli("alpha_touch", 3.5, 40.25, source="quote step")])
    reg.set_toxic_hours([3, 14], "historical:BTC")
    p = reg.save(tmp_path / "p.json")
    r2 = Registry(asset="BTC")
    r2.load(p)
    for name in reg.names:
        assert r2.posterior(name) == pytest.approx(reg.posterior(name)), name
    assert r2.online("alpha_touch") == reg.online("alpha_touch")
    assert r2.toxic_hours == (3, 14) and r2.toxic_hours_source == "historical:BTC"
    # a file written before toxic_hour_multiplier, online reports and toxic hours existed
    doc = json.loads(p.read_text())
    del doc["params"]["toxic_hour_multiplier"], doc["toxic_hours"], doc["params"]["alpha_touch"]["online"]
    (tmp_path / "old.json").write_text(json.dumps(doc))
    r3 = Registry(asset="BTC")
    r3.load(tmp_path / "old.json")
    assert r3.posterior("toxic_hour_multiplier") == r3.prior("toxic_hour_multiplier")
    assert r3.online("alpha_touch") is None and r3.toxic_hours == ()
    assert r3.posterior("spread_floor_bps") == pytest.approx(reg.posterior("spread_floor_bps"))
    # other missing parameters are still refused, naming the field
    del doc["params"]["kappa"]
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"bad.json: params.kappa: missing"):
        Registry(asset="BTC").load(tmp_path / "bad.json")


def test_learning_survives_a_restart_registry_included(tmp_path):
    from mm_runtime.live import FeedEvent, LiveConfig, LiveRunner

    bundle = dump_bundle(example_bundle("BTC"), tmp_path / "BTC.json")
    st = tmp_path / "BTC.state.json"
    r1 = LiveRunner(bundle, live=LiveConfig(refresh_s=1.0), state_path=st, market_clock=True)
    rng = np.random.default_rng(3)
    mid = 105_000.0
    for i in range(300):
        mid *= math.exp(rng.normal() * 0.5e-4)
        side = float(rng.choice([-1.0, 1.0]))
        trade = (mid * (1 + side * (1.0 + rng.exponential(6.0)) * 1e-4), side, 5.0) if rng.random() < 0.5 else None
        r1.on_feed_event(FeedEvent(T0 + 0.5 * i, mid - 1.0, mid + 1.0, trade))
    r1.quoter.refresh_learned()
    before = {n: r1.registry.posterior(n) for n in ("alpha_touch", "kappa")}
    assert r1.registry.n("kappa") > 10
    r1.save_state()
    r2 = LiveRunner(bundle, state_path=st, market_clock=True)
    assert r2.restored
    for n, p in before.items():
        assert r2.registry.posterior(n) == pytest.approx(p, rel=1e-12), n
    assert r2.quoter.ladder_params()["gamma"]["source"] == "default"


# ----------------------------------------------------------------------------- cold start
def test_a_prior_only_bundle_posts_a_minimal_ladder_within_every_limit():
    b = _prior_only("BTC")
    cfg = QuoterConfig(min_notional=10.0)
    rep = quote_once(b, 30_000.0, 0.6, config=cfg, margin_available=1e4)
    assert rep.summary["cold_start"] == {"bid": True, "ask": True}
    rows = [r for r in rep.rows if r["size"] > 0]
    assert [(r["side"], r["level"]) for r in rows] == [("bid", 0), ("ask", 0)]  # one order a side
    h = rep.summary["half_spread_bps"]["bid"]
    for r in rows:
        assert r["depth_bps"] == pytest.approx(2.0 * h)  # wide: two half-spreads
        assert r["size"] * r["price"] == pytest.approx(20.0)  # small: twice the minimum notional
    # the same bundle without cold start quotes nothing (the warm-up death spiral)
    off = quote_once(b, 30_000.0, 0.6, config=cfg.model_copy(update={"cold_start": False}), margin_available=1e4)
    assert all(r["size"] == 0 for r in off.rows) and off.summary["cold_start"] == {"bid": False, "ask": False}
    # within the limits: reduce-only past the position limit -> only the reducing side
    ro = quote_once(b, 30_000.0, 0.6, config=cfg.model_copy(update={"max_position": 1.0}), position=2.0,
                    margin_available=1e4)
    assert ro.summary["cold_start"] == {"bid": False, "ask": True}
    # no margin -> nothing; a position headroom below the minimum notional -> nothing on that side
    assert not any(quote_once(b, 30_000.0, 0.6, config=cfg, margin_available=0.0).summary["cold_start"].values())
    tight = quote_once(b, 30_000.0, 0.6, config=cfg.model_copy(update={"max_position": 0.001}), position=0.0009,
                       margin_available=1e4)
    assert tight.summary["cold_start"] == {"bid": False, "ask": True}
    # a learning-off configuration never cold-starts (nothing would ever end it)
    static = quote_once(b, 30_000.0, 0.6, config=cfg.model_copy(update={"learn": False}), margin_available=1e4)
    assert not any(static.summary["cold_start"].values())


def test_cold_start_replay_cells_calibrate_and_the_ladder_tightens():
    """A prior-only bundle on a synthetic market: cold-start orders bring fills, the
    α cells where they fill become calibrated, the cold start ends and the ladder
    quotes closer to the mid than the cold-start orders did."""
    from mm_runtime.paper.replay import ReplayConfig, replay

    from test_paper_replay import _market

    m = _market(seconds=400.0, seed=1)
    # alpha_max_cv relaxed: on this market no fill is informed (α → 0), where the
    # default backstop cv <= 0.5 would never be met (config.py, alpha_max_cv)
    qc = QuoterConfig(alpha_min_n=20.0, alpha_max_cv=1.0)
    r = replay(m, _prior_only(), qc, ReplayConfig(block_s=60.0))
    s = r.summary
    cold = s["cold_start"]
    assert s["fills"] > 20 and cold["refreshes"] > 10 and cold["first_t"] == pytest.approx(r.t[0])
    # it ended, well before the end (at 330 s of 400 since the live filter's jump-robust
    # bars, 290 s before: the regime probabilities spread the first fills over more cells)
    assert cold["last_t"] < r.t[-1] - 50.0
    assert s["learning"]["tier_pnl"] > 0.0 and s["learning"]["alpha_data_weight_max"] > 0.5
    depth = (r.mid - r.our_bid) / r.mid * 1e4
    during = depth[(r.t <= cold["last_t"]) & np.isfinite(depth)]
    after = depth[(r.t > cold["last_t"] + 10.0) & np.isfinite(depth)]
    assert during.size > 10 and after.size > 10
    assert np.median(after) < np.median(during) - 0.5  # bps: the ladder tightened
    # the first 30 s: cold start only, nothing calibrated yet
    early = replay(m.window(m.start, m.start + 30.0), _prior_only(), qc, ReplayConfig(block_s=5.0))
    assert early.summary["learning"]["tier_pnl"] == 0.0
    assert early.summary["cold_start"]["refreshes"] == early.summary["refreshes"]
    # without the cold start: never a quote, never a fill (the warm-up death spiral)
    off = replay(m, _prior_only(), qc.model_copy(update={"cold_start": False}), ReplayConfig(block_s=60.0))
    assert off.summary["fills"] == 0 and off.summary["quoting_note"].startswith("never quoted")


def test_each_refresh_ladder_log_names_the_source_of_each_value(tmp_path):
    import logging

    from mm_runtime.live import FeedEvent, LiveConfig, LiveRunner

    class Keep(logging.Handler):
        def __init__(self):
            super().__init__()
            self.fields = []

        def emit(self, record):
            if record.getMessage() == "ladder":
                self.fields.append(record.fields)

    reg = Registry.from_bundle(example_bundle("BTC"))
    _calibrate_tier(reg, 1, gamma=0.3)
    st = reg.save(tmp_path / "params.json")
    bundle = dump_bundle(example_bundle("BTC"), tmp_path / "BTC.json")
    h = Keep()
    lg = logging.getLogger("mm_runtime.live.test_sources")
    lg.addHandler(h)
    lg.setLevel(logging.INFO)
    r = LiveRunner(bundle, live=LiveConfig(refresh_s=1.0), params_state=st, market_clock=True, logger=lg)
    for i in range(3):
        r.on_feed_event(FeedEvent(T0 + 1.5 * i, 104_999.0, 105_001.0))
    assert len(h.fields) == 3
    lp = h.fields[-1]["ladder_params"]
    assert {k: lp[k]["source"] for k in ("gamma", "spread_floor_bps", "toxic_multiplier", "level_ratio")} == {
        "gamma": "registry", "spread_floor_bps": "registry", "toxic_multiplier": "registry", "level_ratio": "default"}
    assert lp["gamma"]["value"] == pytest.approx(r.registry.estimate("gamma_base"))
    assert float(r.quoter.state.cfg.ladder.gamma) == pytest.approx(lp["gamma"]["value"])
    assert h.fields[-1]["cold_start"] == [False, False] and h.fields[-1]["spread_multiplier"] == 1.0
