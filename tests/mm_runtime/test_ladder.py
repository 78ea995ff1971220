"""GLFT closed form, fill probability, and the Kelly ladder's invariants."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

import mm_runtime  # noqa: F401  (x64)
from mm_runtime.examples import example_bundle
from mm_runtime.config import QuoterConfig
from mm_runtime.ladder import (
    BINDING_MARGIN,
    BINDING_NONE,
    BINDING_POSITION,
    LadderInputs,
    alpha_from_buckets,
    build_ladder,
    effective_kelly_fraction,
    fill_probability,
    glft_quote,
    kelly_optimal_fraction,
)
from mm_runtime.quoter import init


# ----------------------------------------------------------------------------- GLFT
def glft_numpy(A, kappa, sigma, gamma, xi, delta):
    """Guéant–Lehalle–Fernandez-Tapia (2013), written out literally."""
    c1 = (1.0 / (xi * delta)) * math.log(1.0 + xi * delta / kappa)
    c2 = math.sqrt(gamma / (2.0 * A * delta * kappa) * (1.0 + xi * delta / kappa) ** (kappa / (xi * delta) + 1.0))
    return c1 + 0.5 * delta * sigma * c2, sigma * c2


@pytest.mark.parametrize(
    "A,kappa,sigma,gamma,xi,delta",
    [
        (1.0, 0.2, 0.6, 0.1, 0.1, 1.0),
        (2.5, 0.05, 1.7, 0.02, 0.04, 0.5),
        (0.3, 1.2, 0.2, 1.0, 1.0, 2.0),
    ],
)
def test_glft_matches_the_closed_form(A, kappa, sigma, gamma, xi, delta):
    h, k = glft_quote(A, kappa, sigma, gamma, xi, delta)
    h_ref, k_ref = glft_numpy(A, kappa, sigma, gamma, xi, delta)
    assert float(h) == pytest.approx(h_ref, rel=1e-12)
    assert float(k) == pytest.approx(k_ref, rel=1e-12)


def test_glft_worked_example():
    # κ = 0.2 /bp, A = 1 /s, σ = 0.6 bps/√s, γ = ξ = 0.1, Δ = 1: u = ξΔ/κ = 0.5
    h, k = glft_quote(1.0, 0.2, 0.6, 0.1)
    c1 = math.log(1.5) / 0.1  # 4.0546510810816…
    c2 = math.sqrt(0.1 / (2 * 1.0 * 1.0 * 0.2) * 1.5**3)  # (1+u)^(1/u+1) = 1.5³
    assert float(h) == pytest.approx(c1 + 0.5 * 0.6 * c2, rel=1e-13)
    assert float(k) == pytest.approx(0.6 * c2, rel=1e-13)
    assert float(h) == pytest.approx(4.3302187, rel=1e-7)  # 4.0546511 + 0.3 · 0.9185587


def test_glft_limit_small_risk_aversion():
    # ξΔ/κ → 0: c1 → 1/κ and (1+u)^(1/u+1) → e
    for xi in (1e-6, 1e-9, 0.0):
        h, k = glft_quote(1.0, 0.25, 0.0, 1e-6, xi=xi)
        assert float(h) == pytest.approx(4.0, rel=1e-5)
    _, k = glft_quote(2.0, 0.25, 1.0, 1e-4, xi=0.0)
    assert float(k) == pytest.approx(math.sqrt(1e-4 / (2 * 2.0 * 0.25) * math.e), rel=1e-12)


def test_fill_probability_is_first_passage():
    d = np.array([0.0, 0.5, 2.0, 5.0, 20.0])
    p = fill_probability(d, 0.8, 30.0)
    np.testing.assert_allclose(p, 2 * stats.norm.cdf(-d / (0.8 * math.sqrt(30.0))), rtol=1e-12, atol=1e-300)
    assert float(fill_probability(-1.0, 1.0, 1.0)) == 1.0


def test_kelly_fraction_formula():
    f, e = kelly_optimal_fraction(0.15, 5.0, 8.0)
    E = 0.85 * 5 - 0.15 * 8
    V = 13.0**2 * 0.15 * 0.85
    assert float(e) == pytest.approx(E)
    assert float(f) == pytest.approx(E / V)
    f, _ = kelly_optimal_fraction(0.6, 5.0, 8.0)  # negative edge
    assert float(f) == 0.0
    f, _ = kelly_optimal_fraction(0.0, 5.0, 8.0, max_f=10.0)  # Var = 0
    assert float(f) == 10.0


def test_regime_kelly_fraction():
    mult = jnp.array([1.5, 1.0, 0.5, 0.25])
    assert float(effective_kelly_fraction(0.25, jnp.array([1.0, 0, 0, 0]), mult)) == pytest.approx(0.375)
    assert float(effective_kelly_fraction(0.25, jnp.array([0, 0, 0, 1.0]), mult)) == pytest.approx(0.0625)
    assert float(effective_kelly_fraction(0.1, jnp.array([0, 0, 0, 1.0]), mult)) == pytest.approx(0.05)  # clamp
    assert float(effective_kelly_fraction(0.9, jnp.array([1.0, 0, 0, 0]), mult)) == pytest.approx(0.75)


def test_alpha_buckets_lookup():
    d = jnp.array([0.0, 1.99, 2.0, 4.9, 5.0, 9.99, 10.0, 500.0])
    a = alpha_from_buckets(d, jnp.array([0.4, 0.3, 0.2, 0.1]), jnp.array([0.0, 2.0, 5.0, 10.0]))
    np.testing.assert_array_equal(a, [0.4, 0.4, 0.3, 0.3, 0.2, 0.2, 0.1, 0.1])


# ----------------------------------------------------------------------------- the ladder
def ladder_params(**overrides):
    return init(example_bundle(), QuoterConfig(**overrides)).cfg.ladder


PARAMS = {}


def prm(**overrides):
    key = tuple(sorted(overrides.items()))
    if key not in PARAMS:
        PARAMS[key] = ladder_params(**overrides)
    return PARAMS[key]


def inputs(mid=100.0, sigma=0.6, position=0.0, margin=1000.0, A=(1.0, 1.0), kappa=(0.2, 0.2), mult=1.0, **kw):
    base = dict(
        mid=jnp.float64(mid),
        sigma_bps=jnp.float64(sigma),
        position=jnp.float64(position),
        margin_available=jnp.float64(margin),
        arrival=jnp.asarray(A, dtype=float),
        kappa=jnp.asarray(kappa, dtype=float),
        alpha_buckets=jnp.array([0.15, 0.1, 0.05, 0.02]),
        alpha_touch=jnp.float64(0.15),
        alpha_decay_bps=jnp.float64(10.0),
        adverse_move_bps=jnp.float64(8.0),
        spread_capture=jnp.float64(1.0),
        regime_multiplier=jnp.float64(mult),
    )
    base.update(kw)
    return LadderInputs(**base)


ladder = jax.jit(build_ladder)


@pytest.mark.parametrize("capture,fee", [(1.0, 0.0), (0.25, 0.0), (0.25, -0.4), (0.6, 2.0)])
def test_edge_is_the_mean_pnl_of_a_fill(capture, fee):
    """E per level = (1-α)(c·δ - fee) - α(AS + fee): the mean of the two outcomes of a
    fill (uninformed: the mid ends c·δ from the fill price in our favour; informed: AS
    against us), the fee paid on both; Var and f* as the two-point Kelly bet."""
    out = ladder(inputs(spread_capture=jnp.float64(capture)), prm(fee_bps=fee, alpha_model="buckets"))
    d, a = np.asarray(out.depth_bps), np.asarray(out.alpha)
    gain, loss = capture * d - fee, 8.0 + fee
    E = (1 - a) * gain - a * loss
    np.testing.assert_allclose(out.edge_bps, E, rtol=1e-12, atol=1e-12)
    var = (gain + loss) ** 2 * a * (1 - a)
    f = np.where(E > 0, np.minimum(E / var, 10.0), 0.0)
    np.testing.assert_allclose(out.kelly_f, f, rtol=1e-12)
    if capture == 1.0 and fee == 0.0:  # DESIGN.md §6 as written
        np.testing.assert_allclose(out.edge_bps, (1 - a) * d - a * 8.0, rtol=1e-12)


def test_lower_spread_capture_never_adds_size():
    """A smaller c lowers every level's edge, so no level gets more size."""
    full = ladder(inputs(), prm())
    part = ladder(inputs(spread_capture=jnp.float64(0.3)), prm())
    assert np.all(np.asarray(part.edge_bps) < np.asarray(full.edge_bps))
    assert np.all(np.asarray(part.size) <= np.asarray(full.size) + 1e-12)


def test_symmetric_ladder_at_zero_inventory():
    out = ladder(inputs(), prm())
    np.testing.assert_allclose(out.depth_bps[0], out.depth_bps[1], rtol=1e-12)
    h, _ = glft_quote(1.0, 0.2, 0.6, 0.1)
    assert float(out.depth_bps[0, 0]) == pytest.approx(float(h), rel=1e-9)
    ratios = np.asarray(out.depth_bps[0, 1:] / out.depth_bps[0, :-1])
    np.testing.assert_allclose(ratios, 1.5, rtol=1e-9)
    assert np.all(np.asarray(out.price[0]) < 100.0) and np.all(np.asarray(out.price[1]) > 100.0)
    np.testing.assert_allclose(out.size[0], out.size[1], rtol=1e-12)


def test_long_inventory_skews_quotes_down():
    flat = ladder(inputs(), prm())
    long = ladder(inputs(position=2.0), prm())
    # long: the bid moves away from the mid, the ask moves toward it
    assert float(long.depth_bps[0, 0]) > float(flat.depth_bps[0, 0])
    assert float(long.depth_bps[1, 0]) < float(flat.depth_bps[1, 0])
    assert float(long.shift_bps[0]) == pytest.approx(2.0 * float(long.skew_bps[0]), rel=1e-12)
    assert float(long.shift_bps[1]) == pytest.approx(-2.0 * float(long.skew_bps[1]), rel=1e-12)


def test_kelly_sizes_follow_p_times_f():
    out = ladder(inputs(margin=1e3, mult=1.0), prm())
    raw = np.asarray(out.fill_prob * out.kelly_f * out.kelly_fraction)
    bankroll = 1e3 / 100.0
    assert raw.sum(axis=1).max() < 0.99  # Kelly wants less than the whole bankroll
    kept = np.asarray(out.size) > 0
    np.testing.assert_allclose(np.asarray(out.size)[kept], (raw * bankroll)[kept], rtol=1e-9)
    assert out.binding.tolist() == [BINDING_NONE, BINDING_NONE]


def test_margin_binding_scales_to_margin():
    # bankroll 500/100 = 5 units < headroom 10: Kelly wants more than the margin allows
    out = ladder(inputs(margin=500.0), prm(max_kelly_f=10.0, kelly_fraction=1.0, kelly_fraction_max=1.0,
                                           quote_horizon_s=600.0, min_notional=0.0))
    assert out.binding.tolist() == [BINDING_MARGIN, BINDING_MARGIN]
    for side in (0, 1):  # notional at the quoted prices, not at the mid
        assert float(jnp.sum(out.size[side] * out.price[side])) == pytest.approx(500.0, rel=1e-9)
    assert float(out.margin_used) == pytest.approx(500.0, rel=1e-9)


def test_position_binding():
    out = ladder(inputs(margin=1e7, position=9.5), prm(min_notional=0.0))
    assert int(out.binding[0]) == BINDING_POSITION
    assert float(jnp.sum(out.size[0])) == pytest.approx(0.5, rel=1e-9)  # headroom 10 - 9.5
    assert int(out.binding[1]) in (BINDING_NONE, BINDING_POSITION)


def test_reduce_only_past_the_limit():
    out = ladder(inputs(margin=0.0, position=12.0), prm(min_notional=0.0))
    assert bool(out.reduce_only)
    assert float(jnp.sum(out.size[0])) == 0.0  # no buying
    assert 0.0 < float(jnp.sum(out.size[1])) <= 12.0 + 1e-9  # selling reduces, needs no margin
    short = ladder(inputs(margin=0.0, position=-15.0), prm(min_notional=0.0))
    assert float(jnp.sum(short.size[1])) == 0.0 and float(jnp.sum(short.size[0])) > 0.0


def test_min_notional_drops_levels():
    out = ladder(inputs(margin=50.0), prm(min_notional=5.0))
    notional = np.asarray(out.size * out.price)
    assert np.all((notional == 0) | (notional >= 5.0))


def test_proportional_allocation_when_kelly_is_off():
    out = ladder(inputs(margin=2e3), prm(use_kelly_stochastic=False, min_notional=0.0))
    value = np.asarray(out.fill_prob * np.maximum(out.edge_bps, 0))
    size = np.asarray(out.size)
    frac = float(out.kelly_fraction)  # the side's total is kelly_fraction × bankroll (20 units)
    np.testing.assert_allclose(size[0], frac * value[0] / value[0].sum() * 2e3 / 100.0, rtol=1e-9)
    assert out.binding.tolist() == [BINDING_NONE, BINDING_NONE]


def test_parametric_alpha():
    out = ladder(inputs(), prm(alpha_model="parametric"))
    np.testing.assert_allclose(out.alpha, 0.15 * np.exp(-np.asarray(out.depth_bps) / 10.0), rtol=1e-12)


def test_tick_and_lot_rounding():
    out = ladder(inputs(mid=100.0, margin=1e5), prm(tick_size=0.01, size_increment=0.1, min_notional=0.0))
    bid, ask = np.asarray(out.price)
    np.testing.assert_allclose(np.round(bid / 0.01) * 0.01, bid, atol=1e-9)
    np.testing.assert_allclose(np.round(ask / 0.01) * 0.01, ask, atol=1e-9)
    assert np.all(bid < 100.0) and np.all(ask > 100.0)
    sizes = np.asarray(out.size)
    np.testing.assert_allclose(np.round(sizes / 0.1) * 0.1, sizes, atol=1e-9)


# ----------------------------------------------------------------------------- properties
finite = dict(allow_nan=False, allow_infinity=False)
case = st.fixed_dictionaries(
    dict(
        mid=st.floats(1e-3, 1e7, **finite),
        sigma=st.floats(0.0, 1e3, **finite),
        position=st.floats(-50.0, 50.0, **finite),
        margin=st.floats(-1e3, 1e9, **finite),
        A=st.tuples(st.floats(0.0, 1e4, **finite), st.floats(0.0, 1e4, **finite)),
        kappa=st.tuples(st.floats(0.0, 1e3, **finite), st.floats(0.0, 1e3, **finite)),
        mult=st.floats(0.0, 2.0, **finite),
        alpha_touch=st.floats(0.0, 1.0, **finite),
        adverse=st.floats(0.0, 1e3, **finite),
    )
)
PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(c, **cfg):
    inp = inputs(
        mid=c["mid"], sigma=c["sigma"], position=c["position"], margin=c["margin"], A=c["A"],
        kappa=c["kappa"], mult=c["mult"], alpha_touch=jnp.float64(c["alpha_touch"]),
        adverse_move_bps=jnp.float64(c["adverse"]),
    )
    return jax.tree.map(np.asarray, ladder(inp, prm(**cfg)))


@PROPS
@given(case, st.booleans())
def test_no_nan_and_nonnegative_sizes(c, kelly):
    out = run(c, use_kelly_stochastic=kelly)
    for name, x in out._asdict().items():
        if np.issubdtype(np.asarray(x).dtype, np.floating):
            assert np.all(np.isfinite(x)), name
    assert np.all(out.size >= 0)
    assert np.all(out.price >= 0)


@PROPS
@given(case, st.booleans())
def test_totals_within_every_limit(c, kelly):
    out = run(c, use_kelly_stochastic=kelly, min_notional=0.0)
    p = prm(use_kelly_stochastic=kelly, min_notional=0.0)
    q, max_pos = c["position"], float(p.max_position)
    bid_total, ask_total = out.size.sum(axis=1)
    tol = 1e-9 * (1 + max_pos + abs(q))
    # position limit: filling every level of one side keeps |position| within the limit
    # (or, past the limit, only reduces it)
    if abs(q) >= max_pos:
        assert (bid_total if q > 0 else ask_total) == 0.0
        assert (ask_total if q > 0 else bid_total) <= abs(q) + tol
    else:
        assert q + bid_total <= max_pos + tol
        assert q - ask_total >= -max_pos - tol
        # margin: each side's notional within margin × leverage
        cap = max(c["margin"], 0.0) * float(p.leverage)
        for side in (0, 1):
            notional = float(np.sum(out.size[side] * out.price[side]))
            assert notional <= cap * (1 + 1e-9) + 1e-9 * c["mid"]


@PROPS
@given(case, st.floats(0.0, 1e8, **finite), st.booleans())
def test_sizes_monotone_in_margin(c, extra, kelly):
    lo = run(c, use_kelly_stochastic=kelly)
    hi = run(dict(c, margin=c["margin"] + extra), use_kelly_stochastic=kelly)
    assert np.all(hi.size >= lo.size * (1 - 1e-9) - 1e-12)


def test_alpha_model_resolution():
    assert QuoterConfig().alpha_model == "buckets"
    assert QuoterConfig(kelly_alpha_touch=0.15).alpha_model == "parametric"
    assert QuoterConfig(kelly_alpha_decay_bps=10.0).alpha_model == "parametric"
    assert QuoterConfig(kelly_alpha_touch=0.15, alpha_model="buckets").alpha_model == "buckets"
    with pytest.raises(ValueError):
        QuoterConfig(kelly_fraction_min=0.5, kelly_fraction_max=0.4)


def test_glft_sigma_can_be_set_apart_from_the_fill_probability():
    """LadderInputs: sigma_bps for first passage, sigma_glft_bps (when > 0) for GLFT (the
    Quoter passes the total for both: docs/runtime/ladder.md, "Which σ")."""
    p = prm()
    both = ladder(inputs(sigma=0.8), p)
    split = ladder(inputs(sigma=0.8, sigma_glft_bps=jnp.float64(0.3)), p)
    same = ladder(inputs(sigma=0.3), p)
    # GLFT's half-spread follows the diffusive sigma only
    np.testing.assert_allclose(split.half_spread_bps, same.half_spread_bps, rtol=1e-12)
    assert np.all(np.asarray(split.half_spread_bps) < np.asarray(both.half_spread_bps))
    # the fill probability at the split ladder's depths is first passage with the total sigma
    np.testing.assert_allclose(split.fill_prob, fill_probability(split.depth_bps, 0.8, p.quote_horizon_s),
                               rtol=1e-12)


def test_a_diffusive_sigma_in_the_bundle_leaves_the_quotes_on_the_total():
    """A bundle with sigma_diffusive_bps far below sigma_bps quotes the same ladder as
    without it: GLFT and the fill probability both take the total (docs/runtime/ladder.md)."""
    from mm_runtime import Quoter
    from mm_runtime.bundle import PriorBundle, with_checksum
    from mm_runtime.examples import example_bundle

    doc = example_bundle().model_dump(mode="json")
    plain = PriorBundle.model_validate(doc)
    doc["params"]["sigma_diffusive_bps"] = {r: {"family": "lognormal", "mu": -5.0, "sigma": 0.1}
                                            for r in ("low", "normal", "high", "extreme")}
    doc["checksum"] = ""
    split = with_checksum(PriorBundle.model_validate(doc))
    out = []
    for b in (plain, split):
        q = Quoter(b, replay=True, metrics=False)
        out.append(q.on_event(1.7e9, 100.0, margin_available=1e4, now=1.7e9))
    np.testing.assert_allclose(np.asarray(out[0].depth_bps), np.asarray(out[1].depth_bps), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(out[0].size), np.asarray(out[1].size), rtol=1e-12)
