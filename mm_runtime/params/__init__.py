"""The learned-parameter registry (issue #7): every parameter of the live quoter
with a tier, a conjugate family, a prior, a learned estimate and a stated origin.

* :mod:`.evidence` — :class:`Evidence`, :func:`check_evidence`, conjugate updates;
* :mod:`.specs` — :class:`ParamSpec`, :func:`param_spec`, default priors and
  calibration thresholds, :data:`DEFAULT_SPECS`;
* :mod:`.bundle_priors` — priors moment-matched from a prior bundle;
* :mod:`.registry` — :class:`Registry`, its state file, metrics and log record.

Parameters, parametrisations, thresholds, bundle mapping and state format:
docs/runtime/params.md.
"""

from .bundle_priors import BUNDLE_MAX_STRENGTH, bundle_priors
from .evidence import CONJUGATE_KINDS, EVIDENCE_KINDS, FAMILIES, Evidence, check_evidence
from .registry import (
    DEFAULT_SOURCE,  # noqa: F401 - public constants outside __all__, importable as before
    LOG_INTERVAL_S,
    STATE_KIND,  # noqa: F401
    STATE_SCHEMA_VERSION,
    CalibrationStatus,
    ParamSummary,
    Registry,
    RegistryStateError,
)
from .specs import (
    DEFAULT_SPECS,
    MIN_N_FLOOR,
    TARGET_CONFIDENCE,
    TARGET_REL_PRECISION,
    TIER_NAMES,
    TIERS,
    ParamSpec,
    param_spec,
    spec_prior,
)

__all__ = [
    "Evidence",
    "EVIDENCE_KINDS",
    "FAMILIES",
    "CONJUGATE_KINDS",
    "TIERS",
    "TIER_NAMES",
    "MIN_N_FLOOR",
    "TARGET_REL_PRECISION",
    "TARGET_CONFIDENCE",
    "BUNDLE_MAX_STRENGTH",
    "STATE_SCHEMA_VERSION",
    "LOG_INTERVAL_S",
    "ParamSpec",
    "param_spec",
    "spec_prior",
    "DEFAULT_SPECS",
    "check_evidence",
    "CalibrationStatus",
    "ParamSummary",
    "RegistryStateError",
    "Registry",
    "bundle_priors",
]
