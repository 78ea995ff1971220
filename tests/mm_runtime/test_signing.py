"""Bundle signing (mm_runtime.signing, issue 19 item 6): with a key configured only a
bundle carrying our HMAC-SHA256 goes live; a bundle edited and re-checksummed (what
anyone who can write the live path can do) is refused, the last good one kept, in one
log line; no key = the behaviour before signing (old bundles, no ``.sig``)."""

from __future__ import annotations

import json
import logging

import pytest

from mm_runtime import QuoterConfig, dump_bundle, example_bundle, with_checksum
from mm_runtime.bundle import BundleError, PriorBundle, load_bundle
from mm_runtime.quoter import Quoter
from mm_runtime.signing import (KEY_ENV, KEY_FILE_ENV, SigningError, bundle_signature, load_key,
                                load_verified_bundle, sig_path, write_signature)

KEY = b"test-key-0123456789"


def _tick(q: Quoter, t: float):
    return q.on_event(t, 100.0, bid=99.99, ask=100.01, margin_available=10_000.0)


def _edited(b: PriorBundle, version: str = "edited") -> PriorBundle:
    """The bundle with one parameter changed and its checksum recomputed (valid as a
    bundle: only the signature can tell)."""
    doc = b.body()
    doc["params"]["hawkes_decay"]["mu"] += 0.5
    doc["model_version"] = version
    return with_checksum(PriorBundle.model_validate(doc))


def test_key_from_the_environment_or_a_file(tmp_path):
    assert load_key({}) is None
    assert load_key({KEY_ENV: "abc"}) == b"abc"
    f = tmp_path / "key"
    f.write_bytes(KEY + b"\n")
    assert load_key({KEY_FILE_ENV: str(f)}) == KEY
    with pytest.raises(SigningError, match="both set"):
        load_key({KEY_ENV: "abc", KEY_FILE_ENV: str(f)})
    with pytest.raises(SigningError, match=f"{KEY_FILE_ENV}: .*cannot read"):
        load_key({KEY_FILE_ENV: str(tmp_path / "none")})
    with pytest.raises(SigningError, match=f"{KEY_ENV}: set but empty"):
        load_key({KEY_ENV: ""})
    # the key never appears in a message
    f.write_bytes(b"")
    with pytest.raises(SigningError) as e:
        load_key({KEY_FILE_ENV: str(f)})
    assert KEY.decode() not in str(e.value)


def test_signed_loads_edited_and_rechecksummed_is_refused(tmp_path):
    good = example_bundle("BTC")
    path = dump_bundle(good, tmp_path / "BTC.json")
    # no key: today's behaviour (no .sig needed, none read)
    assert load_verified_bundle(path, None).checksum == good.checksum
    with pytest.raises(BundleError, match="signature: unsigned bundle"):
        load_verified_bundle(path, KEY)
    write_signature(path, good, KEY)
    assert load_verified_bundle(path, KEY).checksum == good.checksum
    doc = json.loads(sig_path(path).read_text())
    assert doc["alg"] == "hmac-sha256" and doc["signatures"] == {good.checksum: bundle_signature(good, KEY)}
    assert KEY.decode() not in sig_path(path).read_text()
    # the signature is detached: the bundle's bytes and checksum are those of an unsigned bundle
    assert load_bundle(path).checksum == good.checksum and "signature" not in path.read_text()
    # an edited value with a recomputed checksum: a valid bundle, refused for its signature
    bad = _edited(good)
    dump_bundle(bad, path)
    assert load_bundle(path).checksum == bad.checksum  # the checksum alone lets it through
    with pytest.raises(BundleError, match=r"BTC\.json: signature: .*no signature for this bundle"):
        load_verified_bundle(path, KEY)
    # ... also when the forger copies the old signature over to the new checksum
    forged = {**doc, "signatures": {bad.checksum: doc["signatures"][good.checksum]}}
    sig_path(path).write_text(json.dumps(forged))
    with pytest.raises(BundleError, match="signature: invalid under the configured key"):
        load_verified_bundle(path, KEY)
    # signed with another key
    write_signature(path, bad, b"another key")
    with pytest.raises(BundleError, match="signature: invalid"):
        load_verified_bundle(path, KEY)
    sig_path(path).write_text("{")
    with pytest.raises(BundleError, match="signature: not a signature file"):
        load_verified_bundle(path, KEY)


def test_hot_reload_refuses_an_unsigned_or_forged_bundle_and_keeps_the_last_good(tmp_path, caplog):
    good = example_bundle("BTC")
    path = tmp_path / "BTC.json"
    write_signature(path, good, KEY)
    dump_bundle(good, path)
    with pytest.raises(BundleError, match="signature"):  # a quoter with a key starts on signed bundles only
        Quoter(path, QuoterConfig(), replay=True, metrics=False, bundle_key=b"other")
    q = Quoter(path, QuoterConfig(reload_check_interval_s=0.0), replay=True, bundle_key=KEY)
    assert bool(_tick(q, 1.0).valid)
    reg = q.runtime_metrics.registry
    bad = _edited(good, "forged")
    with caplog.at_level(logging.INFO, logger="mm_runtime.quoter"):
        dump_bundle(bad, path)                       # unsigned (the .sig holds the good one's only)
        assert bool(_tick(q, 2.0).valid) and q.bundle.checksum == good.checksum
        refused = [r for r in caplog.records if r.getMessage().startswith("bundle reload refused")]
        assert len(refused) == 1 and "signature" in refused[0].fields["error"]
        assert KEY.decode() not in caplog.text
        assert reg.get_sample_value("mm_bundle_reload_failures_total", {"asset": "BTC"}) == 1
        # a properly signed new bundle (the .sig first, as deploy writes it): reloaded
        new = _edited(good, "signed-v2")
        write_signature(path, new, KEY, keep=bad)
        dump_bundle(new, path)
        _tick(q, 3.0)
        assert q.bundle.model_version == "signed-v2"
        assert [r.getMessage() for r in caplog.records].count("bundle reloaded") == 1
    # no key: the same forged file loads (today's behaviour)
    q2 = Quoter(path, QuoterConfig(reload_check_interval_s=0.0), replay=True, metrics=False)
    dump_bundle(bad, path)
    _tick(q2, 1.0)
    assert q2.bundle.model_version == "forged"


def test_a_signature_written_before_its_bundle_refuses_nothing(tmp_path, caplog):
    """deploy writes ``.sig`` (new + current signatures) before the bundle: a quoter
    checking between the two writes still finds the live bundle's signature."""
    old, new = example_bundle("BTC"), _edited(example_bundle("BTC"), "v2")
    path = tmp_path / "BTC.json"
    write_signature(path, old, KEY)
    dump_bundle(old, path)
    q = Quoter(path, QuoterConfig(reload_check_interval_s=0.0), replay=True, metrics=False, bundle_key=KEY)
    with caplog.at_level(logging.INFO, logger="mm_runtime.quoter"):
        write_signature(path, new, KEY, keep=old)
        _tick(q, 1.0)                                  # the .sig changed: checked again, still the old bundle
        dump_bundle(new, path)
        _tick(q, 2.0)
    msgs = [r.getMessage() for r in caplog.records]
    assert not [m for m in msgs if "refused" in m] and q.bundle.model_version == "v2"
    assert msgs.count("bundle reloaded") == 1  # the .sig alone changed nothing: only the new bundle swapped in
