"""The prior bundle: round trip, checksum, and one test per refusal case."""

from __future__ import annotations

import json
import logging
import os

import pytest

from mm_runtime.bundle import (
    REGIMES,
    SCHEMA_VERSION,
    SIDES,
    BundleError,
    PriorBundle,
    bucket_keys,
    compute_checksum,
    dump_bundle,
    load_bundle,
    bundle_bytes,
    parse_bundle,
    with_checksum,
)
from mm_runtime.examples import example_bundle
from mm_runtime.observation import GAP_FIELDS, QUEUE_FIELDS, ObservationConfig


@pytest.fixture
def doc() -> dict:
    """The example bundle as a JSON document (a fresh copy per test)."""
    return json.loads(json.dumps(example_bundle().model_dump(mode="json")))


def write(tmp_path, doc: dict, *, fix_checksum: bool = True) -> os.PathLike:
    if fix_checksum:
        doc = dict(doc, checksum=compute_checksum(doc))
    p = tmp_path / "bundle.json"
    p.write_text(json.dumps(doc))
    return p


def refused(tmp_path, doc, *fragments, fix_checksum=True) -> str:
    with pytest.raises(BundleError) as exc:
        load_bundle(write(tmp_path, doc, fix_checksum=fix_checksum))
    msg = str(exc.value)
    for f in fragments:
        assert f in msg, msg
    return msg


# ----------------------------------------------------------------------------- round trip
def test_round_trip(tmp_path):
    b = example_bundle("BTC")
    path = dump_bundle(b, tmp_path / "live" / "BTC.json")
    again = load_bundle(path)
    assert again == b
    assert again.checksum == compute_checksum(json.loads(path.read_text()))
    # dump of the loaded bundle is byte-identical
    path2 = dump_bundle(again, tmp_path / "copy.json")
    assert path2.read_bytes() == path.read_bytes()


def schema1(doc: dict) -> dict:
    """``doc`` as a schema-1 document (no observation block), checksummed."""
    doc = {k: v for k, v in doc.items() if k != "observation"}
    doc["schema_version"] = 1
    return dict(doc, checksum=compute_checksum(doc))


def test_schema_2_round_trips_byte_identical_with_its_observation_block(tmp_path):
    obs = ObservationConfig(markout_horizon_s=5.0, informed_threshold_bps=2.0, depth_grid_bps=(1.0, 3.0),
                            volatility_estimator="bipower")
    b = with_checksum(example_bundle("BTC").model_copy(update={"observation": obs, "schema_version": 2}))
    path = dump_bundle(b, tmp_path / "b.json")
    raw = path.read_bytes()
    assert json.loads(raw)["schema_version"] == 2
    # schema 2 predates the queue-order fields: they are not written (their defaults are assumed)
    assert json.loads(raw)["observation"] == obs.model_dump(mode="json", exclude=set(QUEUE_FIELDS) | set(GAP_FIELDS))
    again = load_bundle(path)
    assert again == b and again.observation == obs
    assert bundle_bytes(again) == raw
    assert dump_bundle(again, tmp_path / "again.json").read_bytes() == raw


def test_schema_1_loads_with_the_default_observation_and_says_so(tmp_path, doc, caplog):
    """A bundle written before the observation block existed: it loads, the defaults
    are assumed (one log record of the bundle module naming the file), and it dumps
    to the very same bytes (same checksum)."""
    d1 = schema1(doc)
    path = tmp_path / "old.json"
    raw = (json.dumps(d1, indent=2, ensure_ascii=False) + "\n").encode()
    path.write_bytes(raw)
    with caplog.at_level(logging.INFO, logger="mm_runtime.bundle"):
        b = load_bundle(path)
    # the defaults of that time: realized-variance bars (medrv is the default now)
    assert b.schema_version == 1 and b.observation == ObservationConfig(volatility_estimator="realized")
    recs = [r for r in caplog.records if r.name == "mm_runtime.bundle"]
    assert len(recs) == 1 and recs[0].levelno in (logging.INFO, logging.WARNING)
    msg = recs[0].getMessage()
    for fragment in (str(path), "SYN", "observation block absent (schema 1)", "defaults assumed",
                     "markout_horizon_s=1", "informed_threshold_bps=1", "volatility_estimator=realized"):
        assert fragment in msg, msg
    assert b.checksum == d1["checksum"] == compute_checksum(b.body())
    assert "observation" not in b.body() and "observation" not in b.model_dump(mode="json")
    assert bundle_bytes(b) == raw
    assert dump_bundle(b, tmp_path / "again.json").read_bytes() == raw
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mm_runtime.bundle"):  # a schema-2 load says nothing
        load_bundle(write(tmp_path, doc))
    assert not [r for r in caplog.records if r.name == "mm_runtime.bundle"]


def test_the_observation_block_belongs_to_schema_2_only(tmp_path, doc):
    refused(tmp_path, {**schema1(doc), "observation": doc["observation"]},
            "observation: not part of schema 1")
    doc.pop("observation")
    refused(tmp_path, doc, "observation: missing")


def test_refuses_a_bad_observation_block(tmp_path, doc):
    doc["observation"]["markout_horizon_s"] = -1.0
    refused(tmp_path, doc, "observation.markout_horizon_s", "must be finite and > 0")
    doc["observation"]["markout_horizon_s"] = 1.0
    doc["observation"]["extra_rule"] = 1
    refused(tmp_path, doc, "observation.extra_rule")


def test_observation_bars_are_the_units_bars(tmp_path, doc):
    doc["observation"]["bar_seconds"] = 20.0
    refused(tmp_path, doc, "observation.bar_seconds", "units.volatility_bar_s")
    doc["units"]["volatility_bar_s"] = 20.0
    assert load_bundle(write(tmp_path, doc)).observation.bar_seconds == 20.0


def test_spread_capture_is_optional(tmp_path, doc):
    """Without ``spread_capture`` the document has no such key (old bundles keep their
    bytes and checksum); with one it is a normal summary and round-trips."""
    assert "spread_capture" not in doc["params"]
    assert "spread_capture" not in json.loads(bundle_bytes(example_bundle()))["params"]
    doc["params"]["spread_capture"] = {"family": "normal", "mu": 0.27, "sigma": 0.03}
    b = load_bundle(write(tmp_path, doc))
    assert b.params.spread_capture.mean() == pytest.approx(0.27)
    again = load_bundle(dump_bundle(b, tmp_path / "again.json"))
    assert again == b
    doc["params"]["spread_capture"] = {"family": "beta", "a": 1.0, "b": 2.0}
    refused(tmp_path, doc, "params.spread_capture")


def test_fills_capture_shortfall_is_optional(tmp_path):
    """``params.fills.capture_shortfall_bps``: absent, the fills block keeps its bytes and
    the runtime's shortfall is 0; present, one normal per level 0..K that round-trips
    into the view; a missing or unknown level is refused, naming the field."""
    from mm_runtime.examples import with_example_fills
    from mm_runtime.view import bundle_view

    plain = with_example_fills(example_bundle(), lambda lv, q: 1.0, lambda lv, q: 0.5)
    doc = json.loads(bundle_bytes(plain))
    assert "capture_shortfall_bps" not in doc["params"]["fills"]
    assert load_bundle(write(tmp_path, doc)).checksum == plain.checksum
    assert bundle_view(plain).fills.capture_shortfall_bps.tolist() == [0.0] * 4
    sf = with_example_fills(example_bundle(), lambda lv, q: 1.0, lambda lv, q: 0.5, shortfall=lambda lv: 0.1 + lv)
    back = load_bundle(dump_bundle(sf, tmp_path / "sf.json"))
    assert back == sf and back.checksum != plain.checksum
    assert back.params.fills.capture_shortfall_bps["2"].mean() == pytest.approx(2.1)
    assert bundle_view(back).fills.capture_shortfall_bps.tolist() == pytest.approx([0.1, 1.1, 2.1, 3.1])
    doc = json.loads(bundle_bytes(sf))
    doc["params"]["fills"]["capture_shortfall_bps"].pop("3")
    refused(tmp_path, doc, "params.fills.capture_shortfall_bps.3", "missing level")
    doc["params"]["fills"]["capture_shortfall_bps"]["3"] = {"family": "normal", "mu": 0.0, "sigma": 0.1}
    doc["params"]["fills"]["capture_shortfall_bps"]["4"] = {"family": "normal", "mu": 0.0, "sigma": 0.1}
    refused(tmp_path, doc, "params.fills.capture_shortfall_bps.4", "unknown level")


def test_dump_is_atomic_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "b.json"
    dump_bundle(example_bundle(), target)
    dump_bundle(example_bundle("OTHER"), target)  # replace in place
    assert load_bundle(target).asset == "OTHER"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json"]


def test_dump_recomputes_the_checksum(tmp_path):
    b = example_bundle().model_copy(update={"checksum": "0" * 64})
    assert load_bundle(dump_bundle(b, tmp_path / "b.json")).checksum == with_checksum(b).checksum


def test_example_bundle_layout():
    b = example_bundle()
    assert b.schema_version == SCHEMA_VERSION == 3
    assert b.observation == ObservationConfig()
    assert b.regimes == list(REGIMES)
    assert b.depth_buckets_bps == [0, 2, 5, 10]
    assert b.bucket_keys == ["[0,2)", "[2,5)", "[5,10)", "[10,inf)"]
    p = b.params
    assert p.alpha["normal"]["[0,2)"].family == "beta"
    assert abs(p.kappa["normal"]["buy"].mean() - 0.2) < 1e-12
    assert set(p.hawkes_branching) == set(SIDES)
    assert p.regime_emission["low"].family == "normal_inverse_gamma"
    assert b.checksum == compute_checksum(b.body())


def test_bucket_keys():
    assert bucket_keys([0, 2, 5, 10]) == ["[0,2)", "[2,5)", "[5,10)", "[10,inf)"]
    assert bucket_keys([0, 1.5]) == ["[0,1.5)", "[1.5,inf)"]


def test_extra_params_are_validated_and_kept(tmp_path, doc):
    doc["params"]["alpha_touch"] = {r: {"family": "beta", "a": 3.0, "b": 17.0} for r in REGIMES}
    b = load_bundle(write(tmp_path, doc))
    assert b.params.model_extra["alpha_touch"]["low"]["a"] == 3.0
    doc["params"]["alpha_touch"]["low"]["b"] = -1.0
    refused(tmp_path, doc, "params.alpha_touch.low", "greater than 0")


# ----------------------------------------------------------------------------- refusals
def test_refuses_bad_checksum(tmp_path, doc):
    doc["checksum"] = compute_checksum(doc)
    doc["params"]["kappa"]["low"]["buy"]["rate"] = 1.0  # tampered after checksumming
    refused(tmp_path, doc, "checksum", "mismatch", fix_checksum=False)


def test_refuses_missing_checksum(tmp_path, doc):
    doc.pop("checksum")
    refused(tmp_path, doc, "checksum: missing", fix_checksum=False)


@pytest.mark.parametrize("version", [4, 0, "2", True])
def test_refuses_unknown_schema_version(tmp_path, doc, version):
    doc["schema_version"] = version
    refused(tmp_path, doc, "schema_version", f"unknown schema version {version!r}", "reads 1 or 2 or 3")


def test_refuses_missing_schema_version(tmp_path, doc):
    doc.pop("schema_version")
    refused(tmp_path, doc, "schema_version: missing")


def test_refuses_missing_parameter(tmp_path, doc):
    doc["params"].pop("hawkes_decay")
    refused(tmp_path, doc, "params.hawkes_decay", "Field required")


def test_refuses_missing_regime_cell(tmp_path, doc):
    doc["params"]["kappa"]["high"].pop("sell")
    refused(tmp_path, doc, "params.kappa.high.sell", "missing side")


def test_refuses_missing_bucket(tmp_path, doc):
    doc["params"]["alpha"]["extreme"].pop("[5,10)")
    refused(tmp_path, doc, "params.alpha.extreme.[5,10)", "missing bucket")


def test_refuses_unknown_key(tmp_path, doc):
    doc["params"]["arrival_rate"]["normal"]["bid"] = {"family": "gamma", "shape": 1.0, "rate": 1.0}
    refused(tmp_path, doc, "params.arrival_rate.normal.bid", "unknown side")


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (("alpha", "low", "[0,2)", "a"), 0.0, "params.alpha.low.[0,2).a"),
        (("kappa", "normal", "buy", "shape"), -1.0, "params.kappa.normal.buy.shape"),
        (("arrival_rate", "high", "sell", "rate"), 0.0, "params.arrival_rate.high.sell.rate"),
        (("hawkes_decay", "sigma"), -0.3, "params.hawkes_decay.sigma"),
        (("regime_emission", "low", "lam"), 0.0, "params.regime_emission.low.lam"),
    ],
)
def test_refuses_out_of_support(tmp_path, doc, path, value, fragment):
    node = doc["params"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    refused(tmp_path, doc, fragment, "greater than 0")


def test_refuses_wrong_family(tmp_path, doc):
    doc["params"]["alpha"]["low"]["[0,2)"] = {"family": "gamma", "shape": 1.0, "rate": 1.0}
    refused(tmp_path, doc, "params.alpha.low.[0,2)")


def test_refuses_unknown_family(tmp_path, doc):
    doc["params"]["sigma_bps"]["low"] = {"family": "weibull", "k": 1.0}
    refused(tmp_path, doc, "params.sigma_bps.low")


def test_refuses_bad_dirichlet_row(tmp_path, doc):
    doc["params"]["regime_transition"]["high"]["concentration"] = [1.0, 2.0, 3.0]
    refused(tmp_path, doc, "params.regime_transition.high.concentration", "needs 4 entries")
    doc["params"]["regime_transition"]["high"]["concentration"] = [1.0, 2.0, 0.0, 3.0]
    refused(tmp_path, doc, "params.regime_transition.high.concentration.2")


def test_refuses_unordered_emission_means(tmp_path, doc):
    doc["params"]["regime_emission"]["high"]["mu"] = doc["params"]["regime_emission"]["low"]["mu"]
    refused(tmp_path, doc, "params.regime_emission", "increase strictly")


def test_refuses_explosive_hawkes(tmp_path, doc):
    for t in SIDES:
        for s in SIDES:
            doc["params"]["hawkes_branching"][t][s] = {"family": "beta", "a": 9.0, "b": 1.0}
    refused(tmp_path, doc, "params.hawkes_branching", "spectral radius")


def test_refuses_bad_buckets(tmp_path, doc):
    doc["depth_buckets_bps"] = [0, 5, 2, 10]
    refused(tmp_path, doc, "depth_buckets_bps")


def test_refuses_other_regimes(tmp_path, doc):
    doc["regimes"] = ["calm", "normal", "high", "extreme"]
    refused(tmp_path, doc, "regimes")


def test_refuses_bad_source(tmp_path, doc):
    doc["source"]["data_sha256"] = "xyz"
    refused(tmp_path, doc, "source.data_sha256")


def test_refuses_naive_timestamp(tmp_path, doc):
    doc["created_at"] = "2026-01-01T00:00:00"
    refused(tmp_path, doc, "created_at")


def test_refuses_invalid_json(tmp_path):
    p = tmp_path / "b.json"
    p.write_text('{"schema_version": 1, "asset": ')
    with pytest.raises(BundleError, match="invalid JSON"):
        load_bundle(p)


def test_refuses_nan_token(tmp_path, doc):
    raw = json.dumps(dict(doc, checksum=compute_checksum(doc)))
    raw = raw.replace('"rate": 0.5', '"rate": NaN', 1)
    with pytest.raises(BundleError, match="invalid JSON.*NaN"):
        parse_bundle(raw)


def test_refuses_non_object(tmp_path):
    with pytest.raises(BundleError, match="JSON object"):
        parse_bundle("[1, 2]")


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(BundleError, match="nope.json"):
        load_bundle(tmp_path / "nope.json")


def test_constructing_an_invalid_bundle_in_python_fails(doc):
    doc["params"]["kappa"]["low"]["buy"]["shape"] = -2.0
    with pytest.raises(ValueError):
        PriorBundle.model_validate(doc)
