"""mm_runtime — the live side: prior bundle schema (:mod:`~mm_runtime.bundle`, read
through its typed view :mod:`~mm_runtime.view`), conjugate families, online
estimators, the GLFT/Kelly quote ladder, the quote step (pure core
:mod:`~mm_runtime.core`, packed low-latency path :mod:`~mm_runtime.packed`), the
``Quoter`` (:mod:`~mm_runtime.quoter`), quote reports, metrics, the kill switch
(:mod:`~mm_runtime.guards`, its derived limits :mod:`~mm_runtime.risk_limits`), and the
learned-parameter registry (:mod:`mm_runtime.params`).

Dependencies: jax, numpy, pydantic, prometheus-client and the standard library only
(never pymc, pytensor, arviz, prefect, mlflow, pandas, scipy, ``models`` or
``flows``; a test checks ``sys.modules`` after ``import mm_runtime``).

Float64: importing this package sets ``jax_enable_x64`` (process-wide).  The quoter
needs it: at a price of 100 000 a float32 ulp is ~0.8 µbp (fine) but epoch-second
timestamps lose 128 s, and conjugate sums over long sessions lose counts; on CPU the
step's cost is dominated by dispatch, not by the width of its arithmetic.  Code that
imports ``mm_runtime`` (e.g. ``models`` for the bundle schema) therefore runs JAX
(and NumPyro) in float64 too.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from . import conjugate  # noqa: E402
from .bundle import (  # noqa: E402
    DEFAULT_DEPTH_BUCKETS_BPS,
    REGIMES,
    SCHEMA_VERSION,
    SCHEMA_VERSIONS,
    SIDES,
    BundleError,
    ConjugateSummary,
    PriorBundle,
    bucket_keys,
    canonical_json,
    compute_checksum,
    dump_bundle,
    load_bundle,
    parse_bundle,
    with_checksum,
)
from .config import QuoterConfig  # noqa: E402
from .examples import example_bundle  # noqa: E402
from .ladder import fill_probability, glft_quote  # noqa: E402
from .logs import JsonFormatter, configure_json_logging  # noqa: E402
from .metrics import RuntimeMetrics  # noqa: E402
from .observation import ObservationConfig  # noqa: E402
from .params import CalibrationStatus, Evidence, Registry, RegistryStateError  # noqa: E402
from .perf import configure_low_latency_cpu  # noqa: E402
from .quoter import (  # noqa: E402
    BINDING_NAMES,
    REASONS,
    MarketEvent,
    ObservationConflict,
    PackedStep,
    Quoter,
    QuoteReport,
    QuoterState,
    Quotes,
    Summary,
    batch_step,
    init,
    ladder_rows,
    make_event,
    quote_once,
    resolve_config,
    stack_trees,
    step,
    summarize,
)
from .view import BundleView, bundle_view  # noqa: E402

__all__ = [
    "BINDING_NAMES",
    "DEFAULT_DEPTH_BUCKETS_BPS",
    "REASONS",
    "REGIMES",
    "SCHEMA_VERSION",
    "SCHEMA_VERSIONS",
    "SIDES",
    "BundleError",
    "BundleView",
    "CalibrationStatus",
    "ConjugateSummary",
    "Evidence",
    "JsonFormatter",
    "MarketEvent",
    "ObservationConfig",
    "ObservationConflict",
    "PackedStep",
    "PriorBundle",
    "QuoteReport",
    "Quoter",
    "QuoterConfig",
    "QuoterState",
    "Registry",
    "RegistryStateError",
    "Quotes",
    "RuntimeMetrics",
    "Summary",
    "batch_step",
    "bucket_keys",
    "bundle_view",
    "canonical_json",
    "compute_checksum",
    "configure_json_logging",
    "configure_low_latency_cpu",
    "conjugate",
    "dump_bundle",
    "example_bundle",
    "fill_probability",
    "glft_quote",
    "init",
    "ladder_rows",
    "load_bundle",
    "make_event",
    "parse_bundle",
    "quote_once",
    "resolve_config",
    "stack_trees",
    "step",
    "summarize",
    "with_checksum",
]
