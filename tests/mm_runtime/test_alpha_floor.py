"""α(δ) with a floor in the runtime (docs/models/alpha.md, "Floor"): a bundle with
``alpha_floor`` quotes the parametric α(δ) = f + (α_touch − f)·e^(−δ/δ_char); a bundle
without it keeps its bytes and quotes exactly as before (α_touch·e^(−δ/δ_char)); the
step is still traced once."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import mm_runtime as mr
from mm_runtime.bundle import bundle_bytes, load_bundle, parse_bundle, with_checksum
from mm_runtime.quoter import TRACE_COUNTS, init, make_event, step

MID = 30_000.0
PARAMETRIC = {"alpha_model": "parametric"}


def _with_floor(mean: float, strength: float = 400.0):
    doc = mr.example_bundle().model_dump(mode="json")
    doc["params"]["alpha_floor"] = {"family": "beta", "a": mean * strength, "b": (1 - mean) * strength}
    doc["checksum"] = ""
    return with_checksum(mr.PriorBundle.model_validate(doc))


def _quote(bundle, **cfg):
    state = init(bundle, mr.QuoterConfig(**cfg))
    _, q = step(state, make_event(1.0, MID, sigma_bps=1.0, margin_available=1e5))
    return state, q


def test_bundle_with_a_floor_quotes_the_floored_alpha():
    b = _with_floor(0.04)
    assert mr.bundle_view(b).alpha_floor == pytest.approx(0.04)
    state, q = _quote(b, **PARAMETRIC)
    at, dec, f = float(q.alpha_touch), float(q.alpha_decay_bps), float(q.alpha_floor)
    assert f == pytest.approx(0.04) and 0 < f < at
    d = np.asarray(q.depth_bps)
    np.testing.assert_allclose(np.asarray(q.alpha), f + (at - f) * np.exp(-d / dec), rtol=1e-12)
    # the floor raises α at every depth > 0 and lowers the edge there
    _, q0 = _quote(b, kelly_alpha_floor=0.0, **PARAMETRIC)
    assert float(q0.alpha_floor) == 0.0
    assert np.all(np.asarray(q.alpha) > np.asarray(q0.alpha))
    assert np.all(np.asarray(q.edge_bps) < np.asarray(q0.edge_bps))
    # the config's override wins; a floor above α_touch is capped at α_touch (α flat in δ)
    _, q2 = _quote(b, kelly_alpha_floor=0.9, kelly_alpha_touch=0.15, kelly_alpha_decay_bps=10.0)
    assert float(q2.alpha_floor) == pytest.approx(0.15)
    np.testing.assert_allclose(np.asarray(q2.alpha), 0.15, rtol=1e-12)


def test_bundle_without_a_floor_is_unchanged(tmp_path):
    """No ``alpha_floor``: the file's bytes have no such key, the view reads 0 and the
    parametric α is α_touch·e^(−δ/δ_char) (f + (α_touch − f)·x with f = 0 is exactly
    α_touch·x in floating point); the bucket α does not read the floor at all."""
    b = mr.example_bundle()
    assert b"alpha_floor" not in bundle_bytes(b)
    p = tmp_path / "b.json"
    p.write_bytes(bundle_bytes(b))
    assert bundle_bytes(load_bundle(p)) == p.read_bytes()
    assert mr.bundle_view(b).alpha_floor == 0.0
    _, q = _quote(b, **PARAMETRIC)
    at, dec = np.asarray(q.alpha_touch), np.asarray(q.alpha_decay_bps)
    assert float(q.alpha_floor) == 0.0
    expect = np.clip(at * np.exp(-np.asarray(q.depth_bps) / dec), 0.0, 1.0)
    np.testing.assert_allclose(np.asarray(q.alpha), expect, rtol=1e-14)  # XLA's exp vs numpy's: ulps
    # buckets mode (the default): a bundle floor changes nothing in the step itself
    _, qb = _quote(b)
    _, qf = _quote(_with_floor(0.04))
    for name in ("alpha", "size", "price", "edge_bps"):
        assert np.array_equal(np.asarray(getattr(qb, name)), np.asarray(getattr(qf, name))), name


def test_alpha_floor_summary_is_validated():
    doc = mr.example_bundle().model_dump(mode="json")
    doc["params"]["alpha_floor"] = {"family": "beta", "a": -1.0, "b": 3.0}
    doc["checksum"] = ""
    raw = mr.bundle.canonical_json(doc)
    import json

    doc["checksum"] = mr.bundle.compute_checksum(json.loads(raw))
    with pytest.raises(mr.bundle.BundleError, match="params.alpha_floor"):
        parse_bundle(json.dumps(doc), origin="x.json")


def test_step_with_and_without_a_floor_is_traced_once():
    s0 = init(mr.example_bundle())
    s1 = init(_with_floor(0.04), mr.QuoterConfig())
    e = make_event(1.0, MID, margin_available=1e5)
    s0, q = step(s0, e)
    traces = TRACE_COUNTS["step"]
    for t in range(2, 6):
        s0, q = step(s0, make_event(float(t), MID, margin_available=1e5))
        s1, q = step(s1, make_event(float(t), MID, margin_available=1e5))
    jax.block_until_ready(q)
    assert TRACE_COUNTS["step"] == traces
