"""Latency settings for a live quoter on CPU: the process-level, opt-in
:func:`configure_low_latency_cpu` (single-threaded XLA CPU client, synchronous
dispatch, a raised small-while-loop threshold), :data:`PACKED_STEP_COMPILER_OPTIONS`
(the per-function XLA options that ``PackedStep`` always compiles with) and
:func:`run_once_as_one_kernel` (the single-kernel form ``PackedStep`` uses in
low-latency mode).  Meant for a dedicated live-quoter process (``mmcal live``).

Why (XLA's executor hands kernels to its thread pool past 8 ready ones; one kernel
avoids the executor altogether) and what it measured: docs/runtime/quote_step_latency.md.
"""

from __future__ import annotations

import os

import jax

__all__ = [
    "configure_low_latency_cpu",
    "PACKED_STEP_COMPILER_OPTIONS",
    "packed_step_compiler_options",
    "SMALL_LOOP_BYTES",
    "small_loops_as_kernels",
    "run_once_as_one_kernel",
    "is_one_kernel",
]

SMALL_LOOP_BYTES = 1 << 22
"""``xla_cpu_small_while_loop_byte_threshold`` set by :func:`configure_low_latency_cpu`
(XLA's default is 1 kB); the quote step with the default ladder needs between 64 kB
and 256 kB (docs/runtime/quote_step_latency.md)."""

_SMALL_LOOP_FLAG = "xla_cpu_small_while_loop_byte_threshold"

PACKED_STEP_COMPILER_OPTIONS: dict[str, object] = {
    "xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED",
    "xla_cpu_use_fusion_emitters": False,
}
"""XLA options of the jitted single-asset step (``PackedStep``), whatever the client:
XLA's memory-optimized schedule keeps at most 7 kernels ready at once, below the
executor's thread-pool hand-off; same kernels, bit-identical results.  Measurements:
docs/runtime/quote_step_latency.md."""

_OPTIONS_OK: dict | None = None


def packed_step_compiler_options() -> dict:
    """The entries of :data:`PACKED_STEP_COMPILER_OPTIONS` that this jaxlib accepts
    (each checked once with a trivial compile; an unknown option is left out)."""
    global _OPTIONS_OK
    if _OPTIONS_OK is None:
        import numpy as np

        ok = {}
        for name, value in PACKED_STEP_COMPILER_OPTIONS.items():
            try:
                jax.jit(lambda x: x + 1.0, compiler_options={name: value}).lower(np.float64(0.0)).compile()
                ok[name] = value
            except Exception:  # pragma: no cover - a jaxlib without this option
                pass
        _OPTIONS_OK = ok
    return dict(_OPTIONS_OK)


def small_loops_as_kernels() -> bool:
    """True when this process's XLA flags raise the small-while-loop threshold (set
    by :func:`configure_low_latency_cpu`, or by the user in ``XLA_FLAGS``)."""
    return _SMALL_LOOP_FLAG in os.environ.get("XLA_FLAGS", "")


def run_once_as_one_kernel(fn):
    """``fn(x, *args) -> x'`` as a ``while`` loop whose body is ``fn`` and that runs
    exactly once, for XLA's small-while-loop pass to compile into a single kernel.

    The loop's guard is a carried boolean (false, then true after the body), which
    XLA's while-loop simplifier does not remove.  The result is ``fn(x, *args)``, equal
    to the multi-kernel program up to floating-point contraction
    (docs/runtime/quote_step_latency.md)."""
    import jax.numpy as jnp
    from jax import lax

    def once(x, *args):
        def body(carry):
            return jnp.bool_(True), fn(carry[1], *args)

        return lax.while_loop(lambda carry: jnp.logical_not(carry[0]), body, (jnp.bool_(False), x))[1]

    return once


def is_one_kernel(compiled) -> bool:
    """Whether a compiled (``jax.jit(f).lower(...).compile()``) function's loop was
    compiled into one kernel (XLA marks such a call ``xla_cpu_small_call``)."""
    try:
        return 'xla_cpu_small_call="true"' in compiled.as_text()
    except Exception:  # pragma: no cover - a backend without HLO text
        return False


def configure_low_latency_cpu(sync_dispatch: bool = True, one_kernel_step: bool = True) -> bool:
    """Create JAX's CPU client single-threaded, and (``sync_dispatch``) run CPU
    computations synchronously in the calling thread (``jax_cpu_enable_async_dispatch
    = False``: a quoter blocks on every result anyway, so the hand-off to a dispatch
    thread is pure overhead).  With ``one_kernel_step`` it also adds
    ``--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=``
    :data:`SMALL_LOOP_BYTES` to ``XLA_FLAGS`` (unless ``XLA_FLAGS`` already sets
    backend extra options), so that ``PackedStep`` runs as one kernel.  Returns False
    (and changes nothing) when the backend already exists or the platform cannot set
    CPU affinity."""
    try:
        from jax._src import xla_bridge  # private, guarded: only used to ask "too late?"

        if xla_bridge.backends_are_initialized():
            return False
    except (ImportError, AttributeError):  # pragma: no cover - future jax
        pass
    if not hasattr(os, "sched_setaffinity"):  # pragma: no cover - macOS, Windows
        return False
    cpus = os.sched_getaffinity(0)
    if sync_dispatch:
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    flags = os.environ.get("XLA_FLAGS", "")
    if one_kernel_step and "xla_backend_extra_options" not in flags:
        # XLA reads XLA_FLAGS once, when the backend is created just below; this is a
        # map-valued option, which jit's per-function compiler_options cannot set
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_extra_options={_SMALL_LOOP_FLAG}={SMALL_LOOP_BYTES}".strip()
    try:
        os.sched_setaffinity(0, {min(cpus)})
        jax.devices()  # creates the client now; its thread pool sees one CPU
    finally:
        os.sched_setaffinity(0, cpus)
    return True
