"""The bundle's ``params.hawkes_components`` block and the runtime's intensity
recursion with M kernel components (mm_runtime.hawkes_kernel; docs/runtime/bundle.md,
"params.hawkes_components").

* a bundle without the block loads, dumps and quotes exactly as before: on a fixed
  event stream quoting on the Hawkes intensity, the prices and sizes equal bit for bit
  those recorded with the code before the component axis (data/hawkes_one_component.json),
  the intensities to 1e-15 relative (floating-point contraction: see the test);
* with an M = 3 block the step's excitation equals the O(N^2 M) sum over past arrivals
  on a path simulated with three components;
* the block's checks (count, order, stationarity, the total) fail with one line naming
  the field; padding keeps one trace for every M and lets assets of different M share
  one vmapped step; a state file saved before the component axis restores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest

import mm_runtime as mr
from mm_runtime.bundle import BundleError, bundle_bytes, parse_bundle
from mm_runtime.core import TRACE_COUNTS
from mm_runtime.examples import with_example_components as with_hawkes_components
from mm_runtime.hawkes_kernel import MAX_COMPONENTS, mean_lag_decay
from mm_runtime.live import state as state_file
from mm_runtime.view import bundle_view

DATA = Path(__file__).parent / "data" / "hawkes_one_component.json"
CFG = mr.QuoterConfig(use_hawkes_intensity=True)


def stream(n=300, seed=11):
    """The events behind data/hawkes_one_component.json (do not change)."""
    rng = np.random.default_rng(seed)
    t, mid, out = 1_700_000_000.0, 30_000.0, []
    for _ in range(n):
        t += float(rng.exponential(0.2))
        mid *= math.exp(rng.normal() * 1e-4)
        kw = dict(position=float(rng.normal(0, 2)), margin_available=2e4)
        if rng.random() < 0.5:
            side = 1.0 if rng.random() < 0.5 else -1.0
            kw.update(trade_price=mid * (1 + side * rng.exponential(3.0) * 1e-4), trade_side=side)
        out.append((t, mid, kw))
    return out


def run(bundle, events):
    s = mr.init(bundle, CFG)
    out = []
    for t, m, kw in events:
        s, q = mr.step(s, mr.make_event(t, m, **kw))
        out.append((s, q))
    return out


def reload(bundle):
    return parse_bundle(bundle_bytes(bundle), origin="test.json")


# --------------------------------------------------------------------------- M = 1 is today
def test_one_component_bundle_quotes_exactly_as_before():
    want = json.loads(DATA.read_text())
    got = run(mr.example_bundle(), stream())
    assert len(got) == len(want) == 300
    for (_, q), w in zip(got, want, strict=True):
        # the intensities to the last bits: XLA on CPU may contract e*exp(-b dt) + b n into one
        # fused multiply-add or not depending on which kernel holds it (the code before the
        # component axis gives a result 1 ulp apart for the same expression jitted alone);
        # measured: 39 of 600 values differ, by at most 2 ulp; the quotes are bit for bit
        np.testing.assert_allclose(np.asarray(q.hawkes_intensity), w["hawkes"], rtol=1e-15, atol=0)
        assert np.asarray(q.price).ravel().tolist() == w["price"]
        assert np.asarray(q.size).ravel().tolist() == w["size"]
    s = got[-1][0]
    assert np.all(np.asarray(s.est.hawkes_excitation)[1:] == 0.0)        # padding rows stay exactly zero


def test_bundle_without_block_keeps_its_bytes_and_view():
    b = mr.example_bundle()
    raw = bundle_bytes(b)
    assert b"hawkes_components" not in raw and bundle_bytes(parse_bundle(raw)) == raw
    v = bundle_view(b)
    np.testing.assert_array_equal(v.hawkes_kernel_n, v.hawkes_n[None])
    np.testing.assert_array_equal(v.hawkes_kernel_beta, [v.hawkes_beta])


def test_one_component_block_equals_no_block():
    b = mr.example_bundle()
    b1 = reload(with_hawkes_components(b, [b.params.hawkes_decay.mean()], [1.0]))
    assert len(b1.params.hawkes_components) == 1
    ev = stream(120)
    for (_, q0), (_, q1) in zip(run(b, ev), run(b1, ev), strict=True):
        np.testing.assert_allclose(q1.hawkes_intensity, q0.hawkes_intensity, rtol=1e-12)


# --------------------------------------------------------------------------- M = 3 vs the offline sum
def test_three_components_match_the_direct_sum():
    from models.data.synthetic import simulate_hawkes_arrivals

    decays = np.array([300.0, 3.0, 0.03])
    shares = np.array([0.5, 0.3, 0.2])
    b = reload(with_hawkes_components(mr.example_bundle(), decays, shares))
    v = bundle_view(b)
    n, beta = v.hawkes_kernel_n, v.hawkes_kernel_beta                       # (3, 2, 2), (3,)
    np.testing.assert_allclose(beta, decays, rtol=1e-12)
    np.testing.assert_allclose(n.sum(0), v.hawkes_n, rtol=1e-12)
    rng = np.random.default_rng(5)
    T = 60.0
    ts, ss = simulate_hawkes_arrivals(rng, T, 10.0, np.zeros(6, dtype=int), np.full((4, 2), 0.8), n, beta)
    assert 60 < len(ts) < 2000
    t0, mid = 1_700_000_000.0, 30_000.0
    times = t0 + ts                                                          # the clock the step sees
    events = [(t0, mid, {})] + [(float(t), mid, dict(trade_price=mid * (1 + (1e-4 if s == 0 else -1e-4)),
                                                          trade_side=1.0 if s == 0 else -1.0))
                                for t, s in zip(times, ss, strict=True)]
    out = run(b, events)[1:]
    for i, (st, q) in enumerate(out):
        dt = times[i] - times[: i + 1]                                       # the event's own jump included
        direct = np.einsum("mj,mtj->t", beta[:, None] * np.exp(-beta[:, None] * dt[None, :]),
                           n[:, :, ss[: i + 1]])
        base = np.asarray(st.est.regime_probs) @ np.asarray(st.prior.hawkes_mu)
        np.testing.assert_allclose(np.asarray(q.hawkes_intensity) - base, direct, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.asarray(st.est.hawkes_excitation)[:3].sum(0), direct, rtol=1e-9, atol=1e-12)
        assert np.all(np.isfinite(q.hawkes_intensity))
    assert np.all(np.asarray(out[-1][0].est.hawkes_excitation)[3:] == 0.0)


# --------------------------------------------------------------------------- validation
def _doc(decays=(300.0, 3.0, 0.03), shares=(0.5, 0.3, 0.2)):
    return with_hawkes_components(mr.example_bundle(), decays, shares).model_dump(mode="json")


def _refused(doc, match):
    doc = dict(doc)
    doc.pop("checksum", None)
    raw = json.dumps({**doc, "checksum": mr.bundle.compute_checksum(doc)})
    with pytest.raises(BundleError, match=match) as e:
        parse_bundle(raw, origin="b.json")
    assert "\n" not in str(e.value) and str(e.value).startswith("b.json: params.hawkes_components")


def test_block_checks_name_the_field():
    doc = _doc()
    assert reload(parse_bundle(json.dumps(doc))).params.hawkes_components[2].decay.mean() == pytest.approx(0.03)
    seven = _doc(tuple(np.geomspace(1000, 0.01, 6)), (1,) * 6)
    extra = json.loads(json.dumps(seven["params"]["hawkes_components"][-1]))
    extra["decay"]["mu"] -= 1.0
    seven["params"]["hawkes_components"].append(extra)
    _refused(seven, r"7 components \(must be 1..6\)")


def test_block_checks_order_total_and_stationarity():
    doc = _doc()
    swapped = json.loads(json.dumps(doc))
    c = swapped["params"]["hawkes_components"]
    c[0]["decay"], c[1]["decay"] = c[1]["decay"], c[0]["decay"]
    _refused(swapped, r"hawkes_components.1.decay: mean 300/s is not below component 0's 3/s")
    off = json.loads(json.dumps(doc))
    off["params"]["hawkes_components"][0]["branching"]["buy"]["sell"]["a"] *= 1.5
    _refused(off, r"sums to .* at \[buy\]\[sell\], params.hawkes_branching.buy.sell has mean")
    big = json.loads(json.dumps(doc))
    for comp in big["params"]["hawkes_components"]:
        for t in ("buy", "sell"):
            for s in ("buy", "sell"):
                comp["branching"][t][s] = {"family": "beta", "a": 0.4, "b": 0.6}
    _refused(big, r"spectral radius of the summed mean branching matrix is 2.4")
    missing = json.loads(json.dumps(doc))
    del missing["params"]["hawkes_components"][1]["branching"]["sell"]
    _refused(missing, r"hawkes_components.1.branching.sell: missing side 'sell'")


# --------------------------------------------------------------------------- shapes: one trace, vmap, state file
def test_padding_keeps_one_trace_and_a_shared_vmapped_step():
    b1 = mr.example_bundle()
    b4 = with_hawkes_components(b1, np.geomspace(1000.0, 0.01, 4), np.ones(4))
    s1, s4 = mr.init(b1, CFG), mr.init(b4, CFG)
    assert jax.tree.map(np.shape, s1) == jax.tree.map(np.shape, s4)
    assert np.shape(s4.est.hawkes_excitation) == (MAX_COMPONENTS, 2)
    ev = [mr.make_event(100.0 + i, 30_000.0, trade_price=30_001.0, trade_side=1.0, margin_available=1e4)
          for i in range(3)]
    for s in (s1, s4):
        for e in ev:
            s, _ = mr.step(s, e)
    before = TRACE_COUNTS["step"]
    for s in (s1, s4):
        for e in ev:
            s, q = mr.step(s, e)
    assert TRACE_COUNTS["step"] == before                                   # no retrace for another M
    batch = mr.stack_trees([s1, s4])
    bq = mr.batch_step(batch, mr.stack_trees([ev[0], ev[0]]))[1]
    for k, s in enumerate((s1, s4)):
        np.testing.assert_allclose(np.asarray(bq.hawkes_intensity)[k], mr.step(s, ev[0])[1].hawkes_intensity,
                                   rtol=1e-12)


def test_state_saved_before_the_component_axis_restores():
    b = mr.example_bundle()
    q = mr.Quoter(b, CFG, replay=True, metrics=False)
    for t, m, kw in stream(40):
        q.on_event(t, m, position=kw["position"], margin_available=kw["margin_available"],
                   trade=(kw["trade_price"], kw["trade_side"]) if "trade_price" in kw else None)
    est = q.state.est
    doc = state_file.state_document(asset=b.asset, bundle=b, events=40, est=est, cash=0.0, position=0.0)
    old = np.asarray(est.hawkes_excitation)[0]
    doc["est"]["hawkes_excitation"] = {"shape": [2], "data": old.tolist()}   # the layout of before
    fresh = mr.init(b, CFG).est
    got, _ = state_file.parse_state(json.dumps(doc).encode(), "s.json", asset=b.asset, fresh=fresh, capital=1.0)
    np.testing.assert_array_equal(np.asarray(got.hawkes_excitation), np.asarray(est.hawkes_excitation))


def test_reload_to_another_kernel_restarts_the_excitation():
    b1 = mr.example_bundle()
    q = mr.Quoter(b1, CFG, replay=True, metrics=False)
    for t, m, kw in stream(40):
        q.on_event(t, m, trade=(kw["trade_price"], kw["trade_side"]) if "trade_price" in kw else None)
    assert np.asarray(q.state.est.hawkes_excitation).sum() > 0
    q.install_bundle(with_hawkes_components(b1, [100.0, 1.0], [0.5, 0.5]))
    assert np.all(np.asarray(q.state.est.hawkes_excitation) == 0.0)


def test_mean_lag_decay():
    # shares 1/2, 1/2 of decays 10 and 1: mean lag (0.1 + 1)/2 = 0.55 s
    assert mean_lag_decay([0.5, 0.5], [10.0, 1.0]) == pytest.approx(1 / 0.55)
    assert mean_lag_decay([[1.0, 3.0]], [[2.0, 2.0]])[0] == pytest.approx(2.0)


def test_registry_reads_the_total_and_the_mean_lag_decay():
    from mm_runtime.params import Registry

    b = with_hawkes_components(mr.example_bundle(), [300.0, 3.0, 0.03], [0.5, 0.3, 0.2])
    r = Registry.from_bundle(b, max_strength=None)
    assert r.prior_mean("hawkes_beta") == pytest.approx(mean_lag_decay([0.5, 0.3, 0.2], [300.0, 3.0, 0.03]))
    assert r.prior_mean("hawkes_alpha") == pytest.approx(0.3)            # the total self-excitation
    assert "total of 3 kernel components" in r.summary("hawkes_alpha").prior_source
    assert "mean-lag decay" in r.summary("hawkes_beta").prior_source
    plain = Registry.from_bundle(mr.example_bundle(), max_strength=None)
    assert "kernel" not in plain.summary("hawkes_alpha").prior_source + plain.summary("hawkes_beta").prior_source
