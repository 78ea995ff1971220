"""Optional signing of deployed bundles: only our own bundles go live.

The checksum (:func:`mm_runtime.bundle.compute_checksum`) guards against corruption,
not against a bundle edited and re-checksummed by anyone who can write the live path.
With a key configured, ``mmcal deploy`` (and ``rollback``) signs the bundle it installs
and ``mmcal live`` (start and every hot reload) refuses a bundle without a valid
signature, keeping the last good one.

* Signature: HMAC-SHA256 (RFC 2104, FIPS 198-1; Python's :mod:`hmac`) keyed by the
  configured key over the bundle's canonical body (:func:`mm_runtime.bundle.canonical_json`
  of ``body()``: the bytes the checksum hashes), hex.
* Where it lives: a detached file ``<bundle>.sig`` beside the bundle (JSON:
  ``{"kind", "schema_version", "alg", "signatures": {checksum: hmac hex}}``), so a
  bundle's bytes, its checksum and every older bundle and runtime are unchanged. The
  file holds the signatures of the live bundle and of the one being replaced (keyed by
  their checksums), so a quoter that reads the new ``.sig`` before the new bundle (two
  atomic writes, not one) still finds the signature of the bundle it sees.
* The key: ``MMCAL_BUNDLE_KEY`` (its UTF-8 bytes) or ``MMCAL_BUNDLE_KEY_FILE`` (the
  file's bytes, a trailing newline dropped); never logged, never written anywhere,
  never passed as a flow parameter. No key: no signing, no check (the behaviour
  before signing existed).

docs/runtime/bundle.md ("Signing").
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Mapping
from hashlib import sha256
from pathlib import Path

from .bundle import BundleError, PriorBundle, canonical_json, load_bundle
from .files import atomic_write_bytes

__all__ = ["KEY_ENV", "KEY_FILE_ENV", "SIG_KIND", "SigningError", "bundle_signature", "load_key",
           "load_verified_bundle", "sig_path", "verify_bundle", "write_signature"]

KEY_ENV = "MMCAL_BUNDLE_KEY"
KEY_FILE_ENV = "MMCAL_BUNDLE_KEY_FILE"
SIG_KIND = "mm_runtime.bundle_signature"
SIG_SCHEMA_VERSION = 1
ALG = "hmac-sha256"


class SigningError(BundleError):
    """A key that cannot be read, or a signature file that cannot be written."""


def load_key(env: Mapping[str, str] | None = None) -> bytes | None:
    """The configured signing key: ``MMCAL_BUNDLE_KEY`` or the file named by
    ``MMCAL_BUNDLE_KEY_FILE`` (not both); None when neither is set. An empty key or an
    unreadable file raises :class:`SigningError` naming the variable (never the key)."""
    env = os.environ if env is None else env
    text, file = env.get(KEY_ENV), env.get(KEY_FILE_ENV)
    if text == "" or file == "":
        raise SigningError(f"{KEY_ENV if text == '' else KEY_FILE_ENV}: set but empty (unset it to run "
                           "without signing)")
    if text and file:
        raise SigningError(f"{KEY_ENV} and {KEY_FILE_ENV}: both set; configure one signing key")
    if text:
        return text.encode("utf-8")
    if file:
        try:
            key = Path(file).read_bytes()
        except OSError as exc:
            raise SigningError(f"{KEY_FILE_ENV}: {file}: cannot read: {exc.strerror or exc}") from None
        key = key[:-1] if key.endswith(b"\n") else key
        if not key:
            raise SigningError(f"{KEY_FILE_ENV}: {file}: the key file is empty")
        return key
    return None


def bundle_signature(bundle: PriorBundle, key: bytes) -> str:
    """HMAC-SHA256 (hex) of the bundle's canonical body under ``key``."""
    return hmac.new(key, canonical_json(bundle.body()), sha256).hexdigest()


def sig_path(bundle_path: str | os.PathLike) -> Path:
    """The detached signature file of a bundle file: ``<bundle>.sig``."""
    p = Path(bundle_path)
    return p.with_name(p.name + ".sig")


def _read_signatures(path: Path) -> dict[str, str] | None:
    """The ``signatures`` map of a signature file; None when there is none; a file
    that is not one raises :class:`BundleError` naming it."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BundleError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BundleError(f"{path}: signature: not a signature file (invalid JSON)") from None
    sigs = doc.get("signatures") if isinstance(doc, dict) else None
    if not (isinstance(doc, dict) and doc.get("kind") == SIG_KIND and doc.get("alg") == ALG
            and isinstance(sigs, dict) and all(isinstance(v, str) for v in sigs.values())):
        raise BundleError(f"{path}: signature: not a {ALG} signature file of a bundle")
    return sigs


def verify_bundle(bundle: PriorBundle, bundle_path: str | os.PathLike, key: bytes) -> None:
    """Raise :class:`BundleError` (naming the bundle file and the field ``signature``)
    unless ``<bundle_path>.sig`` holds this bundle's valid HMAC under ``key``."""
    path = sig_path(bundle_path)
    sigs = _read_signatures(path)
    origin = str(bundle_path)
    if sigs is None:
        raise BundleError(f"{origin}: signature: unsigned bundle (no {path.name}) and a signing key is "
                          f"configured ({KEY_ENV} / {KEY_FILE_ENV})")
    got = sigs.get(bundle.checksum)
    if got is None:
        raise BundleError(f"{origin}: signature: {path.name} has no signature for this bundle "
                          f"(checksum {bundle.checksum[:12]}…)")
    if not hmac.compare_digest(got, bundle_signature(bundle, key)):
        raise BundleError(f"{origin}: signature: invalid under the configured key (the bundle was edited "
                          "after signing, or signed with another key)")


def load_verified_bundle(path: str | os.PathLike, key: bytes | None) -> PriorBundle:
    """:func:`mm_runtime.bundle.load_bundle`, then, when ``key`` is given, its signature
    checked (:func:`verify_bundle`)."""
    bundle = load_bundle(path)
    if key is not None:
        verify_bundle(bundle, path, key)
    return bundle


def write_signature(bundle_path: str | os.PathLike, bundle: PriorBundle, key: bytes,
                    keep: PriorBundle | None = None) -> Path:
    """Write ``<bundle_path>.sig`` atomically with ``bundle``'s signature and, when given,
    ``keep``'s (the bundle still live until ``bundle`` replaces it: module docstring).
    Write it *before* the bundle. Returns the path."""
    sigs = {bundle.checksum: bundle_signature(bundle, key)}
    if keep is not None and keep.checksum != bundle.checksum:
        sigs[keep.checksum] = bundle_signature(keep, key)
    doc = {"kind": SIG_KIND, "schema_version": SIG_SCHEMA_VERSION, "alg": ALG, "signatures": sigs}
    try:
        return atomic_write_bytes(sig_path(bundle_path), (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())
    except OSError as exc:
        raise SigningError(f"{sig_path(bundle_path)}: cannot write: {exc.strerror or exc}") from None
