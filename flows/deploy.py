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
* one JSON line per deploy / rollback appended to ``<ASSET>.deploy.log``.

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
    by :func:`models.tracking.load_registered_bundle`)."""
    from mm_runtime.bundle import bundle_bytes

    from models import tracking

    bundle, v = tracking.load_registered_bundle(asset, alias=alias, version=version)
    info = tracking.version_info(asset, version=v)
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@task(name="install-bundle")
def install_bundle(asset: str, fetched: dict[str, Any], target: str | None) -> dict[str, Any]:
    """Validate, keep the current live bundle as the previous one, write atomically, log."""
    from mm_runtime.bundle import atomic_write_bytes

    paths = live_paths(asset, target)
    data = fetched["text"].encode("utf-8")
    new = _validate(data, asset, fetched["ref"])          # refuse before touching anything
    live = paths["live"]
    current = live.read_bytes() if live.exists() else None
    entry = {"time": _now(), "action": "deploy", "asset": asset, "version": fetched["version"],
             "ref": fetched["ref"], "run_id": fetched["run_id"], "model_version": new.model_version,
             "checksum": new.checksum, "target": str(live)}
    if current is not None:
        try:
            old = _validate(current, asset, str(live))
            entry["previous_checksum"] = old.checksum
            if old.checksum == new.checksum:
                return {**entry, "status": "unchanged", "previous": None}
        except ValueError:  # a broken live file: replaced, and kept as the previous one for forensics
            entry["previous_checksum"] = None
        atomic_write_bytes(paths["previous"], current)
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
    atomic_write_bytes(live, data)
    if current is not None:
        atomic_write_bytes(prev, current)
    entry = {"time": _now(), "action": "rollback", "asset": asset, "version": version,
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


__all__ = ["deploy", "deploy_log", "live_paths", "rollback"]
