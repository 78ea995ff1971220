"""The live quoter's state file: the estimator state (every
:class:`~mm_runtime.estimators.EstimatorState` leaf by name, shape + flat float64
values), the paper account, the asset, the bundle's ``model_version`` and the
definition of α the evidence was learned under (markout horizon, informed
threshold: :func:`alpha_definition`), as one
JSON document written atomically (temp file, fsync, rename) and read back with
every field checked (:class:`StateFileError` names the file and the field); a file
that was refused is moved aside (:func:`set_aside`), never overwritten.

When it is written, what is refused and how a restored state is re-based:
docs/runtime/live.md ("State file").
"""

from __future__ import annotations

import copy
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import PriorBundle, atomic_write_bytes, parse_state_document
from ..estimators import EstimatorState
from ..view import bundle_view

__all__ = [
    "STATE_KIND",
    "STATE_SCHEMA_VERSION",
    "StateFileError",
    "state_document",
    "write_state",
    "parse_state",
    "read_state",
    "set_aside",
    "reset_clock",
    "alpha_definition",
    "saved_alpha_definition",
    "check_fills_learning",
]

STATE_KIND = "mm_runtime.live_state"
STATE_SCHEMA_VERSION = 1

# the estimator leaves that follow the clock (reset when a feed restarts in the past)
_CLOCK_FIELDS = ("hawkes_excitation", "pending", "cursor", "bar_stats", "last_ts", "last_mid", "started")
_OLD_BAR_FIELDS = {"bar_start", "bar_sumsq"}
"""The open bar as saved before the bar statistic followed the fit's rule
(``mm_runtime.barvar``): such a file restores with a fresh open bar."""


class StateFileError(ValueError):
    """A state file that cannot be restored (the message names the file and why)."""


def alpha_definition(bundle: PriorBundle) -> dict[str, float]:
    """The rules that define α's evidence under ``bundle``: its observation block's
    markout horizon (s) and informed threshold (bps)."""
    obs = bundle_view(bundle).observation
    return {"markout_horizon_s": float(obs.markout_horizon_s),
            "informed_threshold_bps": float(obs.informed_threshold_bps)}


def saved_alpha_definition(doc: dict[str, Any]) -> dict[str, float]:
    """The α definition a state document was saved under (a document written before
    it was recorded: the defaults, 1 s and 1 bp, those of every bundle of that time)."""
    d = doc.get("alpha_definition") or {}
    return {"markout_horizon_s": float(d.get("markout_horizon_s", 1.0)),
            "informed_threshold_bps": float(d.get("informed_threshold_bps", 1.0))}


def state_document(*, asset: str, bundle: PriorBundle, events: int, est: EstimatorState, cash: float,
                   position: float) -> dict[str, Any]:
    """The state document of ``est`` and the paper account (``cash``, ``position``),
    stamped with the time of the call."""
    return {
        "schema_version": STATE_SCHEMA_VERSION,
        "kind": STATE_KIND,
        "asset": asset,
        "model_version": bundle.model_version,
        "bundle_schema_version": bundle.schema_version,
        "alpha_definition": alpha_definition(bundle),
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "events": events,
        "account": {"cash": float(cash), "position": float(position)},
        "est": {name: {"shape": list(np.shape(v)), "data": np.asarray(v, dtype=np.float64).ravel().tolist()}
                for name, v in zip(EstimatorState._fields, est, strict=True)},
    }


def write_state(path: str | os.PathLike, doc: dict[str, Any]) -> Path:
    """Write ``doc`` atomically (temp file, fsync, rename); returns the path."""
    data = json.dumps(doc, allow_nan=False) + "\n"
    return atomic_write_bytes(path, data.encode("utf-8"))


def parse_state(raw: bytes, origin: str, *, asset: str, fresh: EstimatorState,
                capital: float) -> tuple[EstimatorState, dict[str, Any]]:
    """The estimator state and the document of a state file, checked against this
    quoter's ``asset`` and the leaf shapes of ``fresh``; a document without an
    account gets ``capital`` in cash.  Raises :class:`StateFileError` naming
    ``origin`` and the problem."""
    def fail(msg: str):
        raise StateFileError(f"{origin}: {msg}")

    doc = parse_state_document(raw, origin, kind=STATE_KIND, schema_version=STATE_SCHEMA_VERSION,
                               error=StateFileError, what="live state file")
    if doc.get("asset") != asset:
        fail(f"asset: the state is for {doc.get('asset')!r}, this quoter quotes {asset!r}")
    est_doc = doc.get("est")
    if isinstance(est_doc, dict) and _OLD_BAR_FIELDS <= set(est_doc) and "bar_stats" not in est_doc:
        est_doc = {k: v for k, v in est_doc.items() if k not in _OLD_BAR_FIELDS}
        est_doc["bar_stats"] = {"shape": list(np.shape(fresh.bar_stats)),
                                "data": np.asarray(fresh.bar_stats, dtype=np.float64).ravel().tolist()}
    exc = est_doc.get("hawkes_excitation") if isinstance(est_doc, dict) else None
    if isinstance(exc, dict) and exc.get("shape") == [np.shape(fresh.hawkes_excitation)[1]] and isinstance(
            exc.get("data"), list):
        # saved with one kernel component (before the component axis): its excitation is row 0
        rows = np.zeros(np.shape(fresh.hawkes_excitation)).tolist()
        rows[0] = exc["data"]
        est_doc = {**est_doc, "hawkes_excitation": {"shape": list(np.shape(fresh.hawkes_excitation)),
                                                    "data": [x for r in rows for x in r]}}
    if not isinstance(est_doc, dict) or set(est_doc) != set(EstimatorState._fields):
        fail(f"est: must be an object with exactly {list(EstimatorState._fields)}")
    leaves = {}
    for name, cur in zip(EstimatorState._fields, fresh, strict=True):
        item = est_doc[name]
        if not isinstance(item, dict) or not isinstance(item.get("data"), list):
            fail(f"est.{name}: must be an object with 'shape' and 'data'")
        shape = tuple(np.shape(cur))
        if item.get("shape") != list(shape):
            fail(f"est.{name}: shape {item.get('shape')} does not match this quoter's {list(shape)} "
                 "(another bundle layout or quoter configuration)")
        try:
            arr = np.asarray(item["data"], dtype=np.float64)
        except (TypeError, ValueError):
            fail(f"est.{name}: data must be numbers")
        if arr.size != int(np.prod(shape, dtype=np.int64)) or not np.all(np.isfinite(arr)):
            fail(f"est.{name}: expected {int(np.prod(shape, dtype=np.int64))} finite numbers")
        leaves[name] = arr.reshape(shape)
    acct = doc.get("account", {"cash": capital, "position": 0.0})
    if not isinstance(acct, dict) or not all(
            isinstance(acct.get(k), int | float) and not isinstance(acct.get(k), bool)
            and math.isfinite(acct.get(k)) for k in ("cash", "position")):
        fail("account: must be an object with finite 'cash' and 'position'")
    return EstimatorState(**leaves), doc


def read_state(path: str | os.PathLike) -> bytes:
    """The bytes of a state file; an unreadable one raises :class:`StateFileError`."""
    p = Path(path)
    try:
        return p.read_bytes()
    except OSError as exc:
        raise StateFileError(f"{p}: cannot read: {exc.strerror or exc}") from None


def set_aside(path: str | os.PathLike) -> Path:
    """Move a state file that was refused out of the way, overwriting nothing: to
    ``<name>.corrupt-<UTC time>`` beside it (``-2``, ``-3``, ... when that is taken);
    returns the new path. Raises :class:`StateFileError` when it cannot be moved."""
    p = Path(path)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for i in range(1, 1000):
        target = p.with_name(f"{p.name}.corrupt-{stamp}" + (f"-{i}" if i > 1 else ""))
        if target.exists() or target.is_symlink():
            continue
        try:
            os.rename(p, target)
        except OSError as exc:
            raise StateFileError(f"{p}: cannot move it aside to {target.name}: {exc.strerror or exc}") from None
        return target
    raise StateFileError(f"{p}: cannot move it aside: {p.name}.corrupt-{stamp}-* all taken")


def reset_clock(est: EstimatorState, fresh: EstimatorState) -> EstimatorState:
    """``est`` with the leaves that follow the clock (markout buffer, volatility bar,
    Hawkes excitation, last mid/ts) taken from ``fresh``; learned evidence and regime
    probabilities kept."""
    return est._replace(**{k: getattr(fresh, k) for k in _CLOCK_FIELDS})


def check_fills_learning(doc: dict[str, Any], learner, origin: str) -> tuple[dict[str, Any] | None, Any]:
    """The state's learned fills cells (``fills_learning``, :mod:`mm_runtime.fills_learning`)
    when they fit ``learner``'s cells, checked on a scratch copy (nothing changes here):
    ``(block, None)``; ``(None, saved shape)`` when saved for other cells (another fills
    layout: dropped, the caller warns); ``(None, None)`` when there is nothing to restore.
    A malformed block raises :class:`StateFileError` naming ``origin`` and the field."""
    saved = doc.get("fills_learning")
    if learner is None or saved is None:
        return None, None
    if isinstance(saved, dict) and saved.get("shape") != list(learner.shape):
        return None, saved.get("shape")
    scratch = copy.copy(learner)
    scratch.reset()
    try:
        scratch.load(saved, origin)
    except ValueError as e:
        raise StateFileError(str(e)) from None
    return saved, None
