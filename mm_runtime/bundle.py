"""The prior bundle: the contract between the offline fits and the live quoter.

One JSON document per asset (DESIGN.md section 5), defined here once: the pydantic
schema (:class:`PriorBundle`), its validation, the canonical JSON and ``sha256``
checksum (:func:`canonical_json`), atomic load and dump.  The exporter in ``models``
produces exactly this; the runtime refuses anything else.  Units (``units`` block):
depth bps, time s, sigma bps/sqrt(s), kappa 1/bps, rates 1/s.  Schema 2 carries the
``observation`` block (:class:`~mm_runtime.observation.ObservationConfig`); a schema-1
document loads with its defaults assumed.  Schema 3 adds the queue-order rules to that
block and an optional ``params.fills`` block (:class:`FillsBlock`: the fills model's
hazards and markouts per regime x level x queue bucket cell).  An optional ``params.hawkes_components``
list carries a Hawkes kernel of M > 1 components (:mod:`mm_runtime.hawkes_kernel`; no version change:
without it a document keeps its bytes).  The quoter reads a bundle through its typed
view (:mod:`mm_runtime.view`).

Layout, the ``params`` families and the checksum rule: docs/runtime/bundle.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_serializer,
    model_validator,
)

from .files import _reject_constant, atomic_write_bytes, parse_state_document, replace_dir
from .hawkes_kernel import HawkesComponent, check_components
from .observation import GAP_FIELDS, QUEUE_FIELDS, ObservationConfig
from .summaries import (
    _SUMMARY_ADAPTER,
    BetaSummary,
    ConjugateSummary,
    DirichletSummary,
    GammaSummary,
    InverseGammaSummary,
    LogNormalSummary,
    NormalInverseGammaSummary,
    NormalSummary,
    Pos,
    PositiveSummary,
    _is_none,
    _Model,
)
from .summaries import check_keys as _keys
from .vocabulary import DEPTH_BUCKETS_BPS, QUEUE_BUCKET_LABELS, REGIMES, SIDES, bucket_keys, horizon_label, piece_labels

__all__ = [
    "SCHEMA_VERSION",
    "SCHEMA_VERSIONS",
    "REGIMES",
    "SIDES",
    "DEFAULT_DEPTH_BUCKETS_BPS",
    "BundleError",
    "BetaSummary",
    "GammaSummary",
    "NormalSummary",
    "InverseGammaSummary",
    "NormalInverseGammaSummary",
    "LogNormalSummary",
    "DirichletSummary",
    "ConjugateSummary",
    "ObservationConfig",
    "BundleSource",
    "MlflowRef",
    "Units",
    "FillsBlock",
    "Params",
    "PriorBundle",
    "bucket_keys",
    "canonical_json",
    "compute_checksum",
    "with_checksum",
    "lineage",
    "load_bundle",
    "parse_bundle",
    "dump_bundle",
    "bundle_bytes",
    "atomic_write_bytes",
    "replace_dir",
    "parse_state_document",
]

SCHEMA_VERSION = 3
"""The schema version this runtime writes."""
SCHEMA_VERSIONS: tuple[int, ...] = (1, 2, 3)
"""The schema versions this runtime reads (1: no ``observation`` block; 2: no queue-order
rules in it, no ``params.fills``)."""
DEFAULT_DEPTH_BUCKETS_BPS: tuple[float, ...] = DEPTH_BUCKETS_BPS


log = logging.getLogger(__name__)


class BundleError(ValueError):
    """A bundle that the runtime refuses; the message names the file and the field."""


# ----------------------------------------------------------------------------- metadata
_SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class BundleSource(_Model):
    data_source: Annotated[str, Field(min_length=1)]
    window_start: AwareDatetime
    window_end: AwareDatetime
    row_counts: dict[str, Annotated[int, Field(ge=0)]]
    data_sha256: _SHA256

    @model_validator(mode="after")
    def _window(self):
        if self.window_end < self.window_start:
            raise ValueError("source.window_end: before window_start")
        return self


class MlflowRef(_Model):
    run_id: str | None = None
    registered_model: str | None = None
    version: Annotated[int, Field(ge=1)] | None = None


class Units(_Model):
    """Units of every number in ``params`` (DESIGN.md section 2); fixed by schema 1."""

    depth: Literal["bps"] = "bps"
    time: Literal["s"] = "s"
    sigma: Literal["bps/sqrt(s)"] = "bps/sqrt(s)"
    kappa: Literal["1/bps"] = "1/bps"
    rate: Literal["1/s"] = "1/s"
    volatility_bar_s: Pos = 10.0
    regime_emission: Literal["ln(sigma_bps_per_sqrt_s) per volatility bar"] = (
        "ln(sigma_bps_per_sqrt_s) per volatility bar"
    )


class FillsBlock(BaseModel):
    """The fills model's cells (schema 3): ``hazard[regime][level][queue bucket][piece]``
    (gamma, 1/s: the hazard of that piece of time since placement) and
    ``markout_bps[regime][level][queue bucket][horizon]`` (normal or
    normal-inverse-gamma, bps: the mean markout at that horizon after a fill). Levels
    are ``"0"``..``"K"`` (``observation.queue_levels``), buckets
    :data:`~mm_runtime.vocabulary.QUEUE_BUCKET_LABELS`, pieces named by
    :func:`~mm_runtime.vocabulary.piece_labels` (``"0-0.1s"``, ..., ``"0.6s+"``), horizons by
    :func:`~mm_runtime.vocabulary.horizon_label` of ``observation.markout_horizons_s``.
    Optional ``capture_shortfall_bps[level]`` (normal, bps): the mean of the capture at
    placement minus the capture at the fill over the fit's filled orders (a plug-in, mean
    and standard error); absent = 0, and the document keeps its bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    hazard: dict[str, dict[str, dict[str, dict[str, GammaSummary]]]]
    markout_bps: dict[str, dict[str, dict[str, dict[str, NormalSummary | NormalInverseGammaSummary]]]]
    capture_shortfall_bps: dict[str, NormalSummary] | None = Field(None, exclude_if=_is_none)

    def cuts_s(self) -> list[float]:
        """The pieces' lower edges (s), read from the piece names."""
        first = self.hazard[REGIMES[0]]["0"][QUEUE_BUCKET_LABELS[0]]
        return [float(k.split("-")[0].rstrip("s+")) for k in first]


def _check_fills(f: FillsBlock, obs: ObservationConfig) -> None:
    levels = [str(k) for k in range(obs.queue_levels + 1)]
    horizons = [horizon_label(h) for h in obs.markout_horizons_s]
    pieces = list(f.hazard.get(REGIMES[0], {}).get("0", {}).get(QUEUE_BUCKET_LABELS[0], {}))
    try:
        cuts = f.cuts_s() if pieces else []
    except ValueError:
        raise ValueError(f"params.fills.hazard: piece names {pieces} are not of piece_labels' form") from None
    if not pieces or piece_labels(cuts) != pieces:
        raise ValueError(f"params.fills.hazard: piece names {pieces} are not of piece_labels' form")
    for name, inner in (("hazard", pieces), ("markout_bps", horizons)):
        tree = getattr(f, name)
        _keys(tree, REGIMES, f"params.fills.{name}", "regime")
        for r in REGIMES:
            _keys(tree[r], levels, f"params.fills.{name}.{r}", "level")
            for lv in levels:
                _keys(tree[r][lv], QUEUE_BUCKET_LABELS, f"params.fills.{name}.{r}.{lv}", "queue bucket")
                for b in QUEUE_BUCKET_LABELS:
                    _keys(tree[r][lv][b], inner, f"params.fills.{name}.{r}.{lv}.{b}",
                          "piece" if name == "hazard" else "horizon")
    if f.capture_shortfall_bps is not None:
        _keys(f.capture_shortfall_bps, levels, "params.fills.capture_shortfall_bps", "level")


class Params(BaseModel):
    """The conjugate summaries; see the module docstring for the layout."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    alpha: dict[str, dict[str, BetaSummary]]
    alpha_decay_bps: LogNormalSummary
    adverse_move_bps: PositiveSummary
    kappa: dict[str, dict[str, GammaSummary]]
    arrival_rate: dict[str, dict[str, GammaSummary]]
    hawkes_baseline: dict[str, dict[str, GammaSummary]]
    hawkes_branching: dict[str, dict[str, BetaSummary]]
    hawkes_decay: LogNormalSummary
    regime_transition: dict[str, DirichletSummary]
    regime_emission: dict[str, NormalInverseGammaSummary]
    sigma_bps: dict[str, PositiveSummary]
    # optional (absent = 1); left out of the document when None so that bundles without
    # it keep their bytes and checksum
    spread_capture: NormalSummary | None = Field(None, exclude_if=_is_none)
    # optional (absent = 0: alpha decays to zero), same rule: α(δ) = f + (α_touch - f)·e^(-δ/δ_char)
    alpha_floor: BetaSummary | None = Field(None, exclude_if=_is_none)
    # schema 3, optional: the fills model's cells where the data had an order book
    fills: FillsBlock | None = Field(None, exclude_if=_is_none)
    # optional (absent: the diffusive sigma is not known, sigma_bps serves both): per regime,
    # the diffusive volatility of a regime fit on jump-robust bars; sigma_bps is then the
    # total volatility (diffusion plus jumps). docs/runtime/bundle.md, "sigma_bps"
    sigma_diffusive_bps: dict[str, PositiveSummary] | None = Field(None, exclude_if=_is_none)
    # optional (absent: one exponential, hawkes_branching and hawkes_decay): the kernel's M
    # components, fastest first; hawkes_branching stays their total, hawkes_decay the one
    # exponential with its mean lag. docs/runtime/bundle.md, "params.hawkes_components"
    hawkes_components: list[HawkesComponent] | None = Field(None, exclude_if=_is_none)

    @model_validator(mode="after")
    def _extras(self):
        for key, node in (self.__pydantic_extra__ or {}).items():
            _validate_extra(node, f"params.{key}")
        return self


def _validate_extra(node: Any, where: str) -> None:
    if isinstance(node, dict) and "family" in node:
        try:
            _SUMMARY_ADAPTER.validate_python(node)
        except ValidationError as exc:
            raise ValueError(f"{where}: {_first_error(exc)}") from None
    elif isinstance(node, dict) and node:
        for k, v in node.items():
            _validate_extra(v, f"{where}.{k}")
    else:
        raise ValueError(f"{where}: expected a conjugate summary or an object of them")


def _first_error(exc: ValidationError) -> str:
    e = exc.errors()[0]
    loc = ".".join(str(p) for p in e["loc"])
    return f"{loc}: {e['msg']}" if loc else e["msg"]


# ----------------------------------------------------------------------------- bundle
class PriorBundle(_Model):
    schema_version: Literal[1, 2, 3] = SCHEMA_VERSION
    asset: Annotated[str, Field(min_length=1)]
    created_at: AwareDatetime
    model_version: Annotated[str, Field(min_length=1)]
    source: BundleSource
    mlflow: MlflowRef | None = None
    observation: ObservationConfig = ObservationConfig()
    """The fits' observation rules (schema 2; the defaults for a schema-1 bundle)."""
    units: Units = Units()
    regimes: list[str] = list(REGIMES)
    depth_buckets_bps: list[float] = list(DEFAULT_DEPTH_BUCKETS_BPS)
    params: Params
    diagnostics: dict[str, Any] = {}
    checksum: str = ""

    @model_validator(mode="before")
    @classmethod
    def _observation_block(cls, data):
        """Schema 2 carries the ``observation`` block, schema 1 has none."""
        if isinstance(data, dict):
            version = data.get("schema_version", SCHEMA_VERSION)
            if version == 1 and data.get("observation") is not None:
                raise ValueError("observation: not part of schema 1 (a bundle with an observation "
                                 "block is schema_version 2)")
            if version == 1:
                # the rules of that time: realized-variance bars (medrv became the default later)
                data = {**data, "observation": {"volatility_estimator": "realized"}}
            if version in (2, 3) and data.get("observation") is None:
                raise ValueError(f"observation: missing (schema {version} carries the ObservationConfig the "
                                 "fits used)")
            params = data.get("params")
            if version in (1, 2) and isinstance(params, dict) and params.get("fills") is not None:
                raise ValueError(f"params.fills: not part of schema {version} (a bundle with a fills block "
                                 "is schema_version 3)")
        return data

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        """A schema-1 bundle dumps without the ``observation`` block, a schema-2 bundle
        without the queue-order fields (their defaults were assumed on load), so each
        keeps its bytes and checksum."""
        doc = handler(self)
        if self.schema_version == 1:
            doc.pop("observation", None)
        elif self.schema_version == 2 and isinstance(doc.get("observation"), dict):
            for name in QUEUE_FIELDS:  # schema 3's fields: a schema-2 bundle keeps its bytes
                doc["observation"].pop(name, None)
        if isinstance(doc.get("observation"), dict):
            for name in GAP_FIELDS:  # written only when not the default: older bundles keep their bytes
                if doc["observation"].get(name) == ObservationConfig.model_fields[name].default:
                    doc["observation"].pop(name, None)
        return doc

    @model_validator(mode="after")
    def _semantics(self):
        if self.schema_version >= 2 and self.observation.bar_seconds != self.units.volatility_bar_s:
            raise ValueError(
                f"observation.bar_seconds: {self.observation.bar_seconds:g} s differs from "
                f"units.volatility_bar_s {self.units.volatility_bar_s:g} s (the regime filter's "
                f"bars are the fit's)"
            )
        if list(self.regimes) != list(REGIMES):
            raise ValueError(f"regimes: must be {list(REGIMES)}, got {self.regimes}")
        e = self.depth_buckets_bps
        if not e or e[0] != 0.0 or any(b <= a for a, b in zip(e, e[1:], strict=False)):
            raise ValueError("depth_buckets_bps: must start at 0 and increase strictly")
        p = self.params
        if p.fills is not None:
            _check_fills(p.fills, self.observation)
        buckets = bucket_keys(e)
        _keys(p.alpha, REGIMES, "params.alpha", "regime")
        for r in REGIMES:
            _keys(p.alpha[r], buckets, f"params.alpha.{r}", "bucket")
        for name in ("kappa", "arrival_rate", "hawkes_baseline"):
            tree = getattr(p, name)
            _keys(tree, REGIMES, f"params.{name}", "regime")
            for r in REGIMES:
                _keys(tree[r], SIDES, f"params.{name}.{r}", "side")
        _keys(p.hawkes_branching, SIDES, "params.hawkes_branching", "side")
        for s in SIDES:
            _keys(p.hawkes_branching[s], SIDES, f"params.hawkes_branching.{s}", "side")
        for name in ("regime_transition", "regime_emission", "sigma_bps"):
            _keys(getattr(p, name), REGIMES, f"params.{name}", "regime")
        if p.sigma_diffusive_bps is not None:
            _keys(p.sigma_diffusive_bps, REGIMES, "params.sigma_diffusive_bps", "regime")
        for r in REGIMES:
            n = len(p.regime_transition[r].concentration)
            if n != len(REGIMES):
                raise ValueError(
                    f"params.regime_transition.{r}.concentration: needs {len(REGIMES)} "
                    f"entries (one per regime), got {n}"
                )
        mus = [p.regime_emission[r].mu for r in REGIMES]
        if any(b <= a for a, b in zip(mus, mus[1:], strict=False)):
            raise ValueError(
                f"params.regime_emission: means must increase strictly low→extreme, got {mus}"
            )
        n_mat = np.array([[p.hawkes_branching[t][s].mean() for s in SIDES] for t in SIDES])
        rho = float(np.max(np.abs(np.linalg.eigvals(n_mat))))
        if not rho < 1.0:
            raise ValueError(
                f"params.hawkes_branching: spectral radius of the mean branching matrix "
                f"is {rho:.4g} (must be < 1 for a stationary Hawkes process)"
            )
        if p.hawkes_components is not None:
            check_components(p.hawkes_components, p.hawkes_branching)
        return self

    # ------------------------------------------------------------------ conveniences
    @property
    def bucket_keys(self) -> list[str]:
        return bucket_keys(self.depth_buckets_bps)

    def body(self) -> dict[str, Any]:
        """The JSON document without ``checksum`` (what the checksum covers)."""
        return self.model_dump(mode="json", exclude={"checksum"})


def lineage(bundle: PriorBundle) -> str:
    """Which calibration a bundle is, in words: ``v4 (run 1a2b3c4d5e6f, bundle-…)`` for
    a registered version (its ``mlflow`` block, filled at deploy), else
    ``bundle-… (not registered)``."""
    m = bundle.mlflow
    if m is not None and m.version is not None:
        run = f"run {m.run_id[:12]}, " if m.run_id else ""
        return f"v{m.version} ({run}{bundle.model_version})"
    if m is not None and m.run_id:
        return f"{bundle.model_version} (run {m.run_id[:12]}, no registered version)"
    return f"{bundle.model_version} (not registered)"


# ----------------------------------------------------------------------------- checksum + io
def canonical_json(body: Any) -> bytes:
    """Canonical bytes: sorted keys, no whitespace, UTF-8, no NaN/Infinity."""
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def compute_checksum(body: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of ``body`` (a ``checksum`` key is ignored)."""
    return hashlib.sha256(canonical_json({k: v for k, v in body.items() if k != "checksum"})).hexdigest()


def with_checksum(bundle: PriorBundle) -> PriorBundle:
    """A copy of ``bundle`` whose ``checksum`` matches its body."""
    return bundle.model_copy(update={"checksum": compute_checksum(bundle.body())})


def _format_validation(exc: ValidationError) -> str:
    msgs = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        msgs.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(msgs)


def parse_bundle(raw: bytes | str, *, origin: str = "<bundle>") -> PriorBundle:
    """Parse and validate bundle JSON; raise :class:`BundleError` naming the field."""
    try:
        doc = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{origin}: invalid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BundleError(f"{origin}: invalid bundle: top level must be a JSON object")
    if "schema_version" not in doc:
        raise BundleError(f"{origin}: schema_version: missing")
    version = doc["schema_version"]
    if isinstance(version, bool) or version not in SCHEMA_VERSIONS:
        raise BundleError(
            f"{origin}: schema_version: unknown schema version {version!r} "
            f"(this runtime reads {' or '.join(str(v) for v in SCHEMA_VERSIONS)})"
        )
    checksum = doc.get("checksum")
    if not isinstance(checksum, str) or not checksum:
        raise BundleError(f"{origin}: checksum: missing")
    try:
        actual = compute_checksum(doc)
    except ValueError as exc:  # pragma: no cover - json.loads already refused NaN
        raise BundleError(f"{origin}: invalid JSON: {exc}") from None
    if actual != checksum:
        raise BundleError(
            f"{origin}: checksum: mismatch (file says {checksum[:12]}…, body hashes to "
            f"{actual[:12]}…): the bundle was modified or truncated"
        )
    try:
        bundle = PriorBundle.model_validate(doc)
    except ValidationError as exc:
        raise BundleError(f"{origin}: {_format_validation(exc)}") from None
    if bundle.schema_version == 1:
        o = bundle.observation
        log.info(
            "%s: bundle %s: observation block absent (schema 1): defaults assumed "
            "(markout_horizon_s=%g, informed_threshold_bps=%g, volatility_estimator=%s: the bars of that time)",
            origin, bundle.asset, o.markout_horizon_s, o.informed_threshold_bps, o.volatility_estimator,
            extra={"fields": {"path": origin, "asset": bundle.asset, "schema_version": 1,
                              "model_version": bundle.model_version,
                              "observation": o.model_dump(mode="json")}},
        )
    return bundle


def load_bundle(path: str | os.PathLike) -> PriorBundle:
    """Read, verify (checksum, schema version, parameters, supports) and parse a bundle."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise BundleError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return parse_bundle(raw, origin=str(p))


def bundle_bytes(bundle: PriorBundle) -> bytes:
    """The file form of ``bundle`` (with a fresh checksum): indented JSON, UTF-8."""
    b = with_checksum(bundle)
    data = json.dumps(b.model_dump(mode="json"), indent=2, ensure_ascii=False, allow_nan=False)
    return (data + "\n").encode("utf-8")


def dump_bundle(bundle: PriorBundle, path: str | os.PathLike) -> Path:
    """Write ``bundle`` (with a fresh checksum) atomically (:func:`atomic_write_bytes`).
    Returns the path written."""
    return atomic_write_bytes(path, bundle_bytes(bundle))
