"""The learned-parameter registry: :class:`Registry` keeps a prior and a posterior
of each :class:`~mm_runtime.params.specs.ParamSpec`, applies
:class:`~mm_runtime.params.evidence.Evidence`, says which tiers are calibrated and
which value to use, saves and restores its state (atomic JSON), and publishes
metrics and a periodic log record.  Plain Python over :mod:`mm_runtime.conjugate`
(not in the jitted hot path).

Calibration rule, bundle priors, state file format and monitoring:
docs/runtime/params.md.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, NamedTuple

from .. import _checks as _c
from ..bundle import PriorBundle, atomic_write_bytes, parse_state_document
from ..conjugate import BetaParams
from .bundle_priors import BUNDLE_MAX_STRENGTH, bundle_priors
from .evidence import _FAMILY, _PARAMS, Evidence, _apply, _floats, check_evidence
from .specs import DEFAULT_SPECS, TIERS, ParamSpec, spec_prior

if TYPE_CHECKING:  # pragma: no cover
    from ..metrics import AssetMetrics

__all__ = [
    "STATE_SCHEMA_VERSION",
    "LOG_INTERVAL_S",
    "CalibrationStatus",
    "ParamSummary",
    "RegistryStateError",
    "Registry",
]

log = logging.getLogger("mm_runtime.params")

STATE_SCHEMA_VERSION = 1
STATE_KIND = "mm_runtime.params.Registry"
LOG_INTERVAL_S = 60.0
"""Default interval of the "learned parameters" log record (:meth:`Registry.maybe_log`)."""
DEFAULT_SOURCE = "default (the original system's prior)"
_MAX_SOURCES = 20
_POSITIVE_FIELDS = {"a", "b", "shape", "rate", "var", "obs_var", "scale", "lam"}


# ----------------------------------------------------------------------------- results
class CalibrationStatus(NamedTuple):
    """Per-tier readiness (a tier is ready when all its parameters are calibrated)."""

    tier1_ready: bool
    tier2_ready: bool
    tier3_ready: bool
    tier4_ready: bool
    calibrated: dict[str, bool]
    """Per parameter."""

    def ready(self, tier: int) -> bool:
        if tier not in TIERS:
            raise ValueError(f"tier must be one of {TIERS}, got {tier!r}")
        return bool(self[tier - 1])

    def tiers(self) -> dict[str, bool]:
        return {f"tier{t}_ready": self.ready(t) for t in TIERS}


class ParamSummary(NamedTuple):
    """Everything ``mmcal params show`` prints about one parameter."""

    name: str
    tier: int
    family: str
    unit: str
    prior_mean: float
    prior_strength: float
    prior_source: str
    estimate: float
    """Posterior mean (lognormal: the plug-in mean exp(mu + E[σ²]/2))."""
    std: float
    lo: float
    hi: float
    """95 % equal-tailed credible interval (lognormal: of the median exp(mu))."""
    data_weight: float
    n: float
    cv: float
    """Posterior cv (of 1 − p for the ``complement`` Beta parameters)."""
    min_n: int
    max_cv: float
    calibrated: bool
    tier_ready: bool
    value: float
    """What :meth:`Registry.value` returns: ``estimate`` when the tier is ready, else ``prior_mean``."""
    in_use: str
    """``learned`` or ``prior``."""
    updates: int
    sources: tuple[str, ...]
    threshold: str
    note: str

    def to_dict(self) -> dict[str, Any]:
        d = self._asdict()
        d["interval"] = [d.pop("lo"), d.pop("hi")]
        d["sources"] = list(self.sources)
        return d


class RegistryStateError(ValueError):
    """A registry state file that is refused; the message names the file and the field."""


@dataclass
class _Entry:
    prior: Any
    post: Any
    """The posterior in use: ``base`` with the ``online`` evidence folded in."""
    prior_source: str
    updates: int = 0
    sources: list[str] = field(default_factory=list)
    base: Any = None
    """The registry's own posterior: the prior plus the evidence given to :meth:`Registry.update`."""
    online: Evidence | None = None
    """What the quote step learned about this parameter (:meth:`Registry.set_online`): a
    view of the step's state, replaced (not accumulated) at each report."""

    def __post_init__(self):
        if self.base is None:
            self.base = self.post


ADDED_LATER = frozenset({"toxic_hour_multiplier"})
"""Parameters added after state files were first written: a file without one loads
with that parameter at its prior."""


def _evidence_doc(ev: Evidence) -> dict[str, Any]:
    d = ev._asdict()
    d.pop("name")
    d["values"] = list(d["values"])
    return d


def _evidence_of(name: str, d: Any) -> Evidence:
    if not isinstance(d, dict) or set(d) - set(Evidence._fields):
        raise ValueError(f"must be an object with fields among {list(Evidence._fields[1:])}")
    d = dict(d)
    d["values"] = tuple(d.get("values", ()))
    return Evidence(name=name, **d)


# ----------------------------------------------------------------------------- registry
class Registry:
    """The learned parameters: prior and posterior of each :class:`ParamSpec`.

    ``Registry()`` has the default priors (:data:`DEFAULT_SPECS`);
    :meth:`from_bundle` takes them from a prior bundle where it has them.
    """

    def __init__(
        self,
        specs: Iterable[ParamSpec] | None = None,
        *,
        asset: str = "",
        priors: Mapping[str, tuple[Any, str]] | None = None,
    ):
        specs = tuple(DEFAULT_SPECS if specs is None else specs)
        names = [s.name for s in specs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"parameter {sorted(dup)[0]!r}: defined twice")
        self.specs: dict[str, ParamSpec] = {s.name: s for s in specs}
        self.asset = asset
        priors = dict(priors or {})
        unknown = set(priors) - set(self.specs)
        if unknown:
            raise ValueError(f"parameter {sorted(unknown)[0]!r}: a prior for an unknown parameter")
        self._entries: dict[str, _Entry] = {}
        for s in specs:
            prior, source = priors.get(s.name, (spec_prior(s), DEFAULT_SOURCE))
            prior = _floats(prior)
            self._entries[s.name] = _Entry(prior, prior, source)
        self._last_log: float | None = None
        self.toxic_hours: tuple[int, ...] = ()
        """UTC hours found toxic (``mmcal params calibrate``); the ladder's toxic-hour
        multiplier applies in them."""
        self.toxic_hours_source = ""

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_bundle(
        cls,
        bundle: PriorBundle,
        specs: Iterable[ParamSpec] | None = None,
        *,
        max_strength: float | None = BUNDLE_MAX_STRENGTH,
    ) -> Registry:
        """Default priors, replaced by the bundle's where it has the parameter
        (:func:`~mm_runtime.params.bundle_priors.bundle_priors`)."""
        specs = tuple(DEFAULT_SPECS if specs is None else specs)
        if max_strength is not None:
            max_strength = _c.positive("max_strength", max_strength)
        return cls(specs, asset=bundle.asset, priors=bundle_priors(bundle, specs, max_strength))

    # -- access ---------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.specs)

    def spec(self, name: str) -> ParamSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise ValueError(f"parameter {name!r}: unknown (known: {', '.join(self.specs)})") from None

    def prior(self, name: str):
        """The prior's conjugate parameters (a NamedTuple of floats)."""
        self.spec(name)
        return self._entries[name].prior

    def posterior(self, name: str):
        """The posterior's conjugate parameters (a NamedTuple of floats)."""
        self.spec(name)
        return self._entries[name].post

    def _fam(self, name: str):
        return _FAMILY[self.spec(name).family]

    # -- learning -------------------------------------------------------------------
    def update(self, ev: Evidence) -> None:
        """Apply one piece of evidence (checked first: :func:`check_evidence`)."""
        self.update_all([ev])

    def update_all(self, evidence: Iterable[Evidence]) -> None:
        """Apply several; all are checked before any is applied (all or nothing)."""
        evs = self._checked(evidence)
        for ev in evs:
            e = self._entries[ev.name]
            e.base = _apply(self.specs[ev.name].family, e.base, ev)
            e.post = self._folded(ev.name, e)
            e.updates += 1
            if ev.source and ev.source not in e.sources:
                e.sources = (e.sources + [ev.source])[-_MAX_SOURCES:]

    def _checked(self, evidence: Iterable[Evidence]) -> list[Evidence]:
        """All of ``evidence``, each checked (known name, family's support) before any is used."""
        evs = list(evidence)
        for ev in evs:
            name = getattr(ev, "name", None)
            if isinstance(name, str) and name not in self.specs:
                raise ValueError(f"evidence for {name!r}: name: unknown parameter (known: {', '.join(self.specs)})")
            check_evidence(ev, self.specs[name].family if isinstance(name, str) else None)
        return evs

    def forget(self, dt: float, half_life: float) -> None:
        """Exponential forgetting toward the prior over ``dt`` seconds
        (:meth:`mm_runtime.conjugate._Family.forget`)."""
        dt, half_life = _c.non_negative("dt", dt), _c.positive("half_life", half_life)
        for name, e in self._entries.items():
            e.base = _floats(self._fam(name).forget(e.base, e.prior, dt, half_life))
            e.post = self._folded(name, e)

    def _folded(self, name: str, e: _Entry):
        return e.base if e.online is None else _apply(self.specs[name].family, e.base, e.online)

    def set_online(self, evidence: Iterable[Evidence]) -> None:
        """Install what the quote step has learned about some parameters (one
        :class:`Evidence` per parameter: the step's sufficient statistics since its
        prior, :func:`mm_runtime.params.online.step_evidence`).  It *replaces* the
        previous report of the same parameter: the step's state is the source of the
        online learning, the registry shows it on top of its own posterior and never
        learns it a second time (docs/runtime/params.md, "One online-learning system").
        All are checked before any is installed."""
        evs = self._checked(evidence)
        for ev in evs:
            e = self._entries[ev.name]
            e.online = ev
            e.post = self._folded(ev.name, e)

    def online(self, name: str) -> Evidence | None:
        """The quote step's last report about ``name`` (None: none)."""
        self.spec(name)
        return self._entries[name].online

    def set_toxic_hours(self, hours: Iterable[int], source: str = "") -> None:
        """Record the toxic UTC hours (0-23) and where they come from."""
        hs = tuple(sorted({int(h) for h in hours}))
        if any(not 0 <= h <= 23 for h in hs):
            raise ValueError(f"toxic hours: must be UTC hours 0-23, got {list(hs)}")
        self.toxic_hours, self.toxic_hours_source = hs, source

    # -- estimates ------------------------------------------------------------------
    def estimate(self, name: str) -> float:
        """Posterior mean (the shrinkage estimate)."""
        return float(self._fam(name).mean(self._entries[name].post))

    def prior_mean(self, name: str) -> float:
        return float(self._fam(name).mean(self._entries[name].prior))

    def interval(self, name: str, level: float = 0.95) -> tuple[float, float]:
        """Equal-tailed credible interval of the posterior."""
        lo, hi = self._fam(name).interval(self._entries[name].post, _c.open_unit("level", level))
        return float(lo), float(hi)

    def n(self, name: str) -> float:
        """Effective observations absorbed since the prior."""
        e = self._entries[name]
        return float(self._fam(name).n(e.post, e.prior))

    def data_weight(self, name: str) -> float:
        """``n / (n + prior strength)``."""
        e = self._entries[name]
        return float(self._fam(name).data_weight(e.post, e.prior))

    def cv(self, name: str) -> float:
        """Posterior cv, of ``1 − p`` for a ``complement`` Beta parameter."""
        post = self._entries[name].post
        if self.spec(name).complement:
            post = BetaParams(post.b, post.a)
        return float(self._fam(name).cv(post))

    def is_calibrated(self, name: str) -> bool:
        """``n >= min_n`` and ``cv <= max_cv`` (docs/runtime/params.md)."""
        s = self.spec(name)
        return self.n(name) >= s.min_n and self.cv(name) <= s.max_cv

    def calibration_status(self) -> CalibrationStatus:
        cal = {name: self.is_calibrated(name) for name in self.specs}
        ready = [all(cal[n] for n, s in self.specs.items() if s.tier == t) for t in TIERS]
        return CalibrationStatus(*ready, calibrated=cal)

    def value(self, name: str, status: CalibrationStatus | None = None) -> float:
        """The value to use: the learned estimate once the parameter's tier is ready,
        the prior mean before."""
        status = status or self.calibration_status()
        return self.estimate(name) if status.ready(self.spec(name).tier) else self.prior_mean(name)

    def values(self) -> dict[str, float]:
        st = self.calibration_status()
        return {name: self.value(name, st) for name in self.specs}

    def summary(self, name: str, status: CalibrationStatus | None = None) -> ParamSummary:
        s, e, fam = self.spec(name), self._entries[name], self._fam(name)
        status = status or self.calibration_status()
        lo, hi = self.interval(name)
        ready = status.ready(s.tier)
        est, pm = self.estimate(name), self.prior_mean(name)
        return ParamSummary(
            name=name, tier=s.tier, family=s.family, unit=s.unit,
            prior_mean=pm, prior_strength=float(fam.strength(e.prior)), prior_source=e.prior_source,
            estimate=est, std=float(fam.std(e.post)), lo=lo, hi=hi,
            data_weight=self.data_weight(name), n=self.n(name), cv=self.cv(name),
            min_n=s.min_n, max_cv=s.max_cv, calibrated=status.calibrated[name], tier_ready=ready,
            value=est if ready else pm, in_use="learned" if ready else "prior",
            updates=e.updates, sources=tuple(e.sources) + ((f"online: {e.online.source}",) if e.online else ()),
            threshold=s.threshold, note=s.note,
        )

    def summaries(self) -> list[ParamSummary]:
        st = self.calibration_status()
        return [self.summary(name, st) for name in self.specs]

    # -- persistence ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The state document (without ``saved_at``)."""
        return {
            "schema_version": STATE_SCHEMA_VERSION,
            "kind": STATE_KIND,
            "asset": self.asset,
            "params": {
                name: {
                    "family": self.specs[name].family,
                    "tier": self.specs[name].tier,
                    "prior": e.prior._asdict(),
                    "posterior": e.base._asdict(),
                    **({"online": _evidence_doc(e.online)} if e.online is not None else {}),
                    "prior_source": e.prior_source,
                    "updates": e.updates,
                    "sources": list(e.sources),
                }
                for name, e in self._entries.items()
            },
            **({"toxic_hours": {"hours": list(self.toxic_hours), "source": self.toxic_hours_source}}
               if self.toxic_hours else {}),
        }

    def save(self, path: str | Path) -> Path:
        """Write the state atomically (temp file, fsync, rename); returns the path."""
        doc = self.to_dict()
        doc["saved_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        data = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        return atomic_write_bytes(path, data.encode("utf-8"))

    def load(self, path: str | Path, *, keep_priors: bool = False) -> None:
        """Restore the state saved by :meth:`save`.  All or nothing: a refused file
        raises :class:`RegistryStateError` (naming the file and the field) and leaves
        the registry unchanged.  ``keep_priors=True`` keeps this registry's priors
        (e.g. a new bundle's) and re-bases the file's evidence onto them: the
        natural parameters ``prior_new + (posterior − prior)_file``, the same rule
        as a hot reload of the quoter's estimators."""
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise RegistryStateError(f"{p}: cannot read: {exc.strerror or exc}") from None
        asset, entries, toxic = self._parse_state(raw, str(p))
        if keep_priors:
            for name, e in entries.items():
                cur = self._entries[name].prior
                e.base = self._rebase(name, e.base, e.prior, cur, str(p))
                e.prior, e.prior_source = cur, self._entries[name].prior_source
        for name, e in entries.items():
            e.post = self._folded(name, e)
        self._entries = entries
        self.asset = asset or self.asset
        self.toxic_hours, self.toxic_hours_source = toxic

    def _rebase(self, name: str, post, old_prior, new_prior, origin: str):
        fam = self._fam(name)
        nat = tuple(
            n + (q - o)
            for n, q, o in zip(fam._to_natural(new_prior), fam._to_natural(post), fam._to_natural(old_prior),
                               strict=True)
        )
        out = _floats(fam._from_natural(nat, new_prior))
        self._check_support(name, "posterior", out._asdict(), origin)
        return out

    def _check_support(self, name: str, what: str, values: dict[str, float], origin: str) -> None:
        for k, v in values.items():
            if k in _POSITIVE_FIELDS and not v > 0:
                raise RegistryStateError(f"{origin}: params.{name}.{what}.{k}: must be > 0, got {v}")

    def _parse_state(self, raw: bytes, origin: str) -> tuple[str, dict[str, _Entry]]:
        def fail(msg: str):
            raise RegistryStateError(f"{origin}: {msg}")

        doc = parse_state_document(raw, origin, kind=STATE_KIND, schema_version=STATE_SCHEMA_VERSION,
                                   error=RegistryStateError, what="registry state file")
        asset = doc.get("asset", "")
        if not isinstance(asset, str):
            fail("asset: must be a string")
        if self.asset and asset and asset != self.asset:
            fail(f"asset: the state is for {asset!r}, this registry is for {self.asset!r}")
        params = doc.get("params")
        if not isinstance(params, dict):
            fail("params: missing or not an object")
        for name in self.specs:
            if name not in params and name not in ADDED_LATER:
                fail(f"params.{name}: missing")
        for name in params:
            if name not in self.specs:
                fail(f"params.{name}: unknown parameter (this registry has {', '.join(self.specs)})")
        entries = {}
        for name, spec in self.specs.items():
            if name not in params:  # a parameter added after the file was written: its prior
                cur = self._entries[name]
                entries[name] = _Entry(cur.prior, cur.prior, cur.prior_source)
                continue
            d = params[name]
            where = f"params.{name}"
            if not isinstance(d, dict):
                fail(f"{where}: must be an object")
            if d.get("family") != spec.family:
                fail(f"{where}.family: expected {spec.family!r}, got {d.get('family')!r}")
            got = {}
            for what in ("prior", "posterior"):
                fields = _PARAMS[spec.family]._fields
                x = d.get(what)
                if not isinstance(x, dict) or set(x) != set(fields):
                    fail(f"{where}.{what}: must be an object with exactly {list(fields)}")
                for k in fields:
                    val = x[k]
                    if isinstance(val, bool) or not isinstance(val, int | float) or not math.isfinite(val):
                        fail(f"{where}.{what}.{k}: must be a finite number, got {val!r}")
                self._check_support(name, what, x, origin)
                got[what] = _PARAMS[spec.family](*(float(x[k]) for k in fields))
            updates = d.get("updates", 0)
            if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:
                fail(f"{where}.updates: must be an integer >= 0, got {updates!r}")
            sources = d.get("sources", [])
            if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
                fail(f"{where}.sources: must be a list of strings")
            prior_source = d.get("prior_source", "")
            if not isinstance(prior_source, str):
                fail(f"{where}.prior_source: must be a string")
            online = None
            if "online" in d:
                try:
                    online = check_evidence(_evidence_of(name, d["online"]), spec.family)
                except (TypeError, ValueError) as exc:
                    fail(f"{where}.online: {exc}")
            entries[name] = _Entry(got["prior"], got["posterior"], prior_source, updates, list(sources),
                                   online=online)
        tox = doc.get("toxic_hours", {"hours": [], "source": ""})
        hours = tox.get("hours") if isinstance(tox, dict) else None
        if (not isinstance(hours, list) or not all(isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 23
                                                   for h in hours)
                or not isinstance(tox.get("source", ""), str)):
            fail("toxic_hours: must be an object with 'hours' (UTC hours 0-23) and 'source'")
        return asset, entries, (tuple(sorted(set(hours))), tox.get("source", ""))

    # -- monitoring -----------------------------------------------------------------
    def publish(self, metrics: AssetMetrics) -> None:
        """Set ``mm_learned_<name>``, ``mm_learned_<name>_data_weight`` and
        ``mm_learned_params_calibrated{tier}`` on an asset's metrics."""
        st = self.calibration_status()
        for name in self.specs:
            metrics.set_learned_param(name, self.estimate(name), self.data_weight(name))
        for t in TIERS:
            metrics.set_params_calibrated(t, st.ready(t))

    def evolution_fields(self) -> dict[str, Any]:
        """The fields of the "learned parameters" log record."""
        st = self.calibration_status()
        params = {}
        for name, spec in self.specs.items():
            est, pm = self.estimate(name), self.prior_mean(name)
            params[name] = {
                "tier": spec.tier,
                "estimate": est,
                "prior_mean": pm,
                "value": est if st.ready(spec.tier) else pm,
                "data_weight": self.data_weight(name),
                "n": self.n(name),
                "calibrated": st.calibrated[name],
            }
        return {"asset": self.asset, **st.tiers(), "params": params}

    def log_evolution(self, logger: logging.Logger | None = None) -> None:
        """One structured record (``extra={"fields": ...}``, :mod:`mm_runtime.logs`)."""
        (logger or log).info("learned parameters", extra={"fields": self.evolution_fields()})

    def maybe_log(self, now: float, interval_s: float = LOG_INTERVAL_S, logger: logging.Logger | None = None) -> bool:
        """:meth:`log_evolution` if ``interval_s`` seconds have passed since the last
        record (``now`` in seconds, any clock); returns whether it logged."""
        if self._last_log is not None and now - self._last_log < interval_s:
            return False
        self._last_log = now
        self.log_evolution(logger)
        return True
