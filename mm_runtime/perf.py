"""Latency settings for a live quoter on CPU: the process-level, opt-in
:func:`configure_low_latency_cpu`, :data:`PACKED_STEP_COMPILER_OPTIONS` (the per-
function XLA options that ``PackedStep`` always compiles with) and
:func:`run_once_as_one_kernel` (the single-kernel form ``PackedStep`` uses in
low-latency mode).

Why: XLA's CPU runtime runs a compiled step as a sequence of kernels ("thunks",
~70 for the quote step) through a dataflow executor.  Whenever more than 8 kernels
are ready side by side (``Thunk::ExecuteSession::kSplitThreshold``) it hands half of
them to the client's intra-op thread pool and the caller then waits for that
thread: a wake-up that costs ~1 µs on a busy machine and ~80–100 µs on an idle
2-core VM (measured: a formulation of the step with 9–12 kernels ready at once ran
in ~100 µs instead of ~20 µs; benchmarks/README.md).  Which formulations cross
that line depends on XLA's schedule, not on anything visible in the Python code.
In low-latency mode the step therefore runs as **one** kernel: XLA's small-while-
loop pass compiles a small ``while`` loop, with everything in its body, into a
single kernel when the loop accesses fewer bytes than
``xla_cpu_small_while_loop_byte_threshold``, and :func:`configure_low_latency_cpu`
raises that threshold (:data:`SMALL_LOOP_BYTES`) for its process;
:func:`run_once_as_one_kernel` wraps the step in such a loop, run exactly once.

With the default multi-threaded client the pool has one thread per core; with a
single-threaded client (:func:`configure_low_latency_cpu`) it has one.  XLA sizes
that pool from the CPU affinity mask at client creation and offers no flag for it,
so :func:`configure_low_latency_cpu` creates the CPU client while the calling
thread is temporarily pinned to one CPU, then restores the mask (the rest of the
process keeps every core).  It must run before anything else touches JAX's
backend; it is meant for a dedicated live-quoter process (``mmcal live``), not for
processes that also run heavy JAX work (NumPyro fits want the thread pool, and the
raised loop threshold applies to every ``while`` loop the process compiles).
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
(XLA's default is 1 kB).  XLA compares it with the bytes that every instruction of a
loop reads and writes, summed: between 64 kB and 256 kB for the quote step with the
default ladder (not hoisted at 64 kB, hoisted at 256 kB), so 4 MB leaves room for
larger ladders and markout buffers (20 levels with a 1 024-slot buffer: still one
kernel)."""

_SMALL_LOOP_FLAG = "xla_cpu_small_while_loop_byte_threshold"

PACKED_STEP_COMPILER_OPTIONS: dict[str, object] = {
    "xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED",
    "xla_cpu_use_fusion_emitters": False,
}
"""XLA options of the jitted single-asset step (``PackedStep``), whatever the client.

In the multi-kernel form (without :func:`configure_low_latency_cpu`) the step's ~70
kernels run through XLA's dataflow executor, which hands kernels to the intra-op
thread pool when more than 8 are ready at once (module docstring).  With the
default schedule the kernel graph has 9 source kernels (ready at once); with the
memory-optimized schedule (more buffer reuse, hence more ordering edges between
kernels) it has a single source and at most 7 kernels ready side by side (XLA's
executor VLOG, replayed), so no hand-off happens.  Same HLO, same kernels, same
numbers.  Measured on the 2-core VM in session 5, interleaved with the default
compilation: single-asset step 32.6 → 22.6 µs median in low-latency mode and
99.8 → 52.6 µs with the default client; ``xla_cpu_use_fusion_emitters = False``
(XLA's older elemental emitter for the same fusions) was ~5 % of that.  Outputs
are bit-identical to the default compilation (the packed-vs-pytree test holds).
In the one-kernel form (low-latency mode) the options are kept: the kernel runs the
same fusions.  The scheduler option does not help the pytree ``step`` or
``batch_step`` (measured), so only ``PackedStep`` uses these options."""

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

    The loop's guard is a carried boolean (false, then true after the body): XLA's
    while-loop simplifier removes a loop whose integer counter runs to 1 (measured),
    but not this one, so the loop — and the kernel — survive optimization.  The
    result is ``fn(x, *args)``: the same fused computations run inside one function,
    equal to the multi-kernel program up to floating-point contraction (the quote
    step's quotes: largest absolute difference 9e-16 over 2 000 events)."""
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
