"""The ``deploy`` and ``rollback`` flows (DESIGN.md section 7).

deploy: resolve ``models:/mm-priors-<ASSET>@<alias>`` (default ``champion``) or a
version, download its bundle JSON (the registry's bytes, no pickle), validate it
as the live quoter will (:func:`mm_runtime.bundle.parse_bundle`: checksum, schema
version, parameters, supports; and the asset), then install it at the live path:

* default target ``<artifacts>/live/<ASSET>.json`` (``--target``);
* the current live bundle is first copied to ``<ASSET>.previous.json`` (what
  ``rollback`` restores), then the new one written atomically (temp file in the
  same directory, fsync, rename, fsync of the directory:
  :func:`mm_runtime.bundle.atomic_write_bytes`), so a hot-reloading ``Quoter``
  watching the target sees the old file or the new one, never a partial one;
* one JSON line per deploy / rollback appended to ``<ASSET>.deploy.log``;
* the installed bundle's ``mlflow`` block names the registered model, the version
  and the run (stamped at deploy, the checksum recomputed): the live file says which
  calibration it is (``mmcal status``);
* with a signing key configured (``MMCAL_BUNDLE_KEY`` or ``MMCAL_BUNDLE_KEY_FILE``),
  ``<ASSET>.json.sig`` is written before the bundle (:mod:`mm_runtime.signing`), and
  ``rollback`` signs the bundle it restores.

A bundle that fails validation is refused before anything is written: the live
file stays as it was. Deploying the bundle that is already live changes nothing.

rollback: the previous bundle (validated) becomes live and the replaced one
becomes the previous, so a second rollback rolls forward again.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from flows.runtime import artifacts_dir
from flows import tasks as T


def live_paths(asset: str, target: str | os.PathLike | None = None) -> dict[str, Path]:
    """``live`` (the target), ``previous`` and ``log`` paths of an asset's deployment."""
    live = Path(target) if target else artifacts_dir() / "live" / f"{asset}.json"
    stem = live.name[:-5] if live.name.endswith(".json") else live.name
    return {"live": live, "previous": live.with_name(f"{stem}.previous.json"),
            "log": live.with_name(f"{stem}.deploy.log")}


@task(name="fetch-bundle", retries=3, retry_delay_seconds=[2, 5, 10], retry_condition_fn=T._transient)
def fetch_bundle(asset: str, alias: str | None, version: int | None) -> dict[str, Any]:
    """The registered bundle's JSON text and where it came from (validated on the way
    by :func:`models.tracking.load_registered_bundle`), its ``mlflow`` block stamped with
    the registered model, the version number and the run that logged it (the checksum
    recomputed), so the live file says which calibration it is."""
    from mm_runtime.bundle import PriorBundle, bundle_bytes

    from models import tracking

    bundle, v = tracking.load_registered_bundle(asset, alias=alias, version=version)
    info = tracking.version_info(asset, version=v)
    run_id = (info.run_id if info else None) or (bundle.mlflow.run_id if bundle.mlflow else None)
    stamp = {"run_id": run_id, "registered_model": tracking.registered_model_name(asset), "version": v}
    bundle = PriorBundle.model_validate({**bundle.body(), "mlflow": stamp})
    ref = f"models:/{tracking.registered_model_name(asset)}" + (f"@{alias}" if alias else f"/{v}")
    return {"text": bundle_bytes(bundle).decode("utf-8"), "version": v, "ref": ref,
            "run_id": info.run_id if info else None, "aliases": info.aliases if info else []}


def _validate(data: bytes, asset: str, origin: str):
    from mm_runtime.bundle import BundleError, parse_bundle

    b = parse_bundle(data, origin=origin)
    if b.asset != asset:
        raise BundleError(f"{origin}: asset: bundle is for {b.asset!r}, deploying {asset!r}")
    return b


def _log(path: Path, entry: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def deploy_log(asset: str, target: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The deploy log's entries, oldest first."""
    p = live_paths(asset, target)["log"]
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def signing_key() -> bytes | None:
    """The bundle signing key (``MMCAL_BUNDLE_KEY`` / ``MMCAL_BUNDLE_KEY_FILE``,
    :func:`mm_runtime.signing.load_key`); None: deploys are not signed."""
    from mm_runtime.signing import load_key

    return load_key()


def _sign(live: Path, bundle, key: bytes, keep) -> None:
    from mm_runtime.signing import write_signature

    write_signature(live, bundle, key, keep=keep)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@task(name="install-bundle")
def install_bundle(asset: str, fetched: dict[str, Any], target: str | None) -> dict[str, Any]:
    """Validate, keep the current live bundle as the previous one, write atomically, log."""
    from mm_runtime.bundle import atomic_write_bytes

    key = signing_key()  # read here, never a task parameter (Prefect records those)
    paths = live_paths(asset, target)
    data = fetched["text"].encode("utf-8")
    new = _validate(data, asset, fetched["ref"])          # refuse before touching anything
    live = paths["live"]
    current = live.read_bytes() if live.exists() else None
    entry = {"time": _now(), "action": "deploy", "asset": asset, "version": fetched["version"],
             "ref": fetched["ref"], "run_id": fetched["run_id"], "model_version": new.model_version,
             "checksum": new.checksum, "target": str(live)}
    old = None
    if current is not None:
        try:
            old = _validate(current, asset, str(live))
            entry["previous_checksum"] = old.checksum
            if old.checksum == new.checksum:
                if key is not None:
                    _sign(live, new, key, None)
                return {**entry, "status": "unchanged", "previous": None, "signed": key is not None}
        except ValueError:  # a broken live file: replaced, and kept as the previous one for forensics
            entry["previous_checksum"] = None
        atomic_write_bytes(paths["previous"], current)
    if key is not None:  # the signature first: a reloading quoter finds it with the new file
        _sign(live, new, key, old)
    entry["signed"] = key is not None
    atomic_write_bytes(live, data)
    _log(paths["log"], entry)
    get_run_logger().info("deployed %s (version %s, model %s) to %s", fetched["ref"], fetched["version"],
                          new.model_version, live)
    return {**entry, "status": "deployed", "previous": str(paths["previous"]) if current is not None else None}


@flow(name="deploy", flow_run_name="deploy-{asset}")
def deploy(asset: str, alias: str | None = "champion", version: int | None = None,
           target: str | None = None) -> dict[str, Any]:
    """Deploy a registered bundle (``alias``, or ``version`` when given) to the live
    path (module docstring). Returns the deploy log entry with ``status``."""
    if version is not None:
        alias = None
    if alias is None and version is None:
        raise ValueError("deploy needs an alias or a version")
    return install_bundle(asset, fetch_bundle(asset, alias, version), target)


@task(name="restore-previous")
def restore_previous(asset: str, target: str | None) -> dict[str, Any]:
    from mm_runtime.bundle import atomic_write_bytes

    paths = live_paths(asset, target)
    prev = paths["previous"]
    if not prev.exists():
        raise ValueError(f"{prev}: no previous bundle to roll back to (deploy at least twice first)")
    data = prev.read_bytes()
    b = _validate(data, asset, str(prev))
    live = paths["live"]
    current = live.read_bytes() if live.exists() else None
    # the version of the previous bundle: the deploy log's last entry with its checksum
    version = next((e.get("version") for e in reversed(deploy_log(asset, target))
                    if e.get("checksum") == b.checksum), None)
    key = signing_key()
    old = None
    if current is not None:
        try:
            old = _validate(current, asset, str(live))
        except ValueError:
            old = None
    if key is not None:  # the restored bundle was validated above: signed as a deploy would
        _sign(live, b, key, old)
    atomic_write_bytes(live, data)
    if current is not None:
        atomic_write_bytes(prev, current)
    entry = {"signed": key is not None, "time": _now(), "action": "rollback", "asset": asset, "version": version,
             "model_version": b.model_version, "checksum": b.checksum, "target": str(live),
             "run_id": b.mlflow.run_id if b.mlflow else None}
    if current is not None:
        try:
            entry["previous_checksum"] = _validate(current, asset, str(live)).checksum
        except ValueError:
            entry["previous_checksum"] = None
    _log(paths["log"], entry)
    get_run_logger().info("rolled %s back to model %s (version %s)", live, b.model_version, version)
    return {**entry, "status": "rolled_back"}


@flow(name="rollback", flow_run_name="rollback-{asset}")
def rollback(asset: str, target: str | None = None) -> dict[str, Any]:
    """Swap the live bundle and the previous one (module docstring)."""
    return restore_previous(asset, target)


def _registry_entry(asset: str, alias: str) -> dict[str, Any] | None:
    from models import tracking

    info = tracking.version_info(asset, alias=alias)
    if info is None:
        return None
    return {"version": info.version, "run_id": info.run_id, "model_version": info.tags.get("model_version"),
            "data_sha256": info.tags.get("data_sha256"), "window": info.tags.get("window"),
            "aliases": sorted(info.aliases)}


def live_status(asset: str, target: str | os.PathLike | None = None) -> dict[str, Any]:
    """Which calibration is live for ``asset`` (``mmcal status``): the live file's
    lineage (model version, registered version, run, data window and sha256; whether it
    loads, and its signature when a signing key is configured), the registry's
    ``champion`` and ``challenger``, and whether the live file is the champion (its
    stamped version is the champion's and its model version the champion's)."""
    from mm_runtime.bundle import BundleError, load_bundle, lineage
    from mm_runtime.signing import sig_path, verify_bundle

    from models import tracking

    live = live_paths(asset, target)["live"]
    doc: dict[str, Any] = {"asset": asset, "target": str(live), "registered_model": tracking.registered_model_name(asset)}
    b = None
    if not live.exists():
        doc["live"] = {"status": "missing"}
    else:
        try:
            b = load_bundle(live)
        except BundleError as e:
            doc["live"] = {"status": "invalid", "error": str(e)}
    if b is not None:
        m = b.mlflow
        doc["live"] = {"status": "ok", "lineage": lineage(b), "model_version": b.model_version,
                       "version": m.version if m else None, "run_id": m.run_id if m else None,
                       "data_source": b.source.data_source, "window_start": b.source.window_start.isoformat(),
                       "window_end": b.source.window_end.isoformat(), "data_sha256": b.source.data_sha256,
                       "created_at": b.created_at.isoformat(), "checksum": b.checksum}
        key = signing_key()
        if key is None:
            doc["live"]["signature"] = "present (no key configured)" if sig_path(live).exists() else "none"
        else:
            try:
                verify_bundle(b, live, key)
                doc["live"]["signature"] = "valid"
            except BundleError as e:
                doc["live"]["signature"] = f"refused: {e}"
    champion, challenger = _registry_entry(asset, "champion"), _registry_entry(asset, "challenger")
    doc["champion"], doc["challenger"] = champion, challenger
    doc["live_is_champion"] = bool(b is not None and champion is not None and b.mlflow is not None
                                   and b.mlflow.version == champion["version"]
                                   and champion["model_version"] in (None, b.model_version))
    return doc


def live_assets(root: str | os.PathLike | None = None) -> list[str]:
    """The assets with a live bundle ``ASSET.json`` in ``<artifacts>/live`` (or ``root``)."""
    folder = Path(root) if root else artifacts_dir() / "live"
    if not folder.is_dir():
        return []
    # ASSET.json; not ASSET.previous.json, ASSET.state.json (mmcal live's state beside it), …
    return sorted(p.name[:-5] for p in folder.glob("*.json") if "." not in p.name[:-5])


__all__ = ["deploy", "deploy_log", "live_assets", "live_paths", "live_status", "rollback"]
