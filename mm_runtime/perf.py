"""Latency settings for a live quoter on CPU: the process-level, opt-in
:func:`configure_low_latency_cpu`, and :data:`PACKED_STEP_COMPILER_OPTIONS`, the
per-function XLA options that ``PackedStep`` always compiles with.

Why: XLA's CPU runtime runs a compiled step as a sequence of kernels ("thunks");
kernels that become ready side by side are handed to the client's thread pool,
which on a small machine costs ~1 µs per kernel with the default multi-threaded
client — more than the kernels' work for a step of this size (~70 kernels).  With a
single-threaded client the pool has one thread and the hand-offs are cheaper
(~0.4 µs per kernel): the measured single-asset step went from ~80 µs to ~30 µs on a
2-core VM; :data:`PACKED_STEP_COMPILER_OPTIONS` then cuts the hand-offs themselves
(see benchmarks/README.md).

XLA sizes that pool from the CPU affinity mask at client creation and offers no
flag for it, so :func:`configure_low_latency_cpu` creates the CPU client while the
calling thread is temporarily pinned to one CPU, then restores the mask (the rest
of the process keeps every core).  It must run before anything else touches JAX's
backend; it is meant for a dedicated live-quoter process (``mmcal live``), not for
processes that also run heavy JAX work (NumPyro fits want the thread pool).
"""

from __future__ import annotations

import os

import jax

__all__ = ["configure_low_latency_cpu", "PACKED_STEP_COMPILER_OPTIONS", "packed_step_compiler_options"]

PACKED_STEP_COMPILER_OPTIONS: dict[str, object] = {
    "xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED",
    "xla_cpu_use_fusion_emitters": False,
}
"""XLA options of the jitted single-asset step (``PackedStep``), whatever the client.

XLA:CPU runs a compiled program through a dataflow executor over its ~70 kernels.
Unless every kernel touches only tiny buffers (≤ 512 bytes; here the estimator
state vector alone is 5 kB) or each kernel depends on the one before, the executor
hands ready kernels beyond the first to the client's intra-op thread pool and the
caller waits for them.  With the default schedule the step's kernel graph has 9
source kernels (ready at once); with the memory-optimized schedule (more buffer
reuse, hence more ordering edges between kernels) the same kernels form a graph
with a single source and fewer kernels ready side by side, so fewer hand-offs
happen (XLA's executor VLOG: 73 nodes, 9 → 1 source nodes; still not fully
sequential).  Same HLO, same kernels, same numbers.  Measured on the 2-core VM,
interleaved with the default compilation (both options): single-asset step
32.6 → 22.6 µs median in low-latency mode and 99.8 → 52.6 µs with the default
client (benchmarks/README.md).
Of that, ``xla_cpu_use_fusion_emitters = False`` (XLA's older elemental emitter
for the same fusions) is ~5 % (22.5 → 21.4 µs interleaved), the schedule the rest.  Outputs are bit-identical to the
default compilation (checked over 2 000 events; the packed-vs-pytree test holds).
The scheduler option does not help the pytree ``step`` or ``batch_step``
(measured), so only ``PackedStep`` uses these options."""

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


def configure_low_latency_cpu(sync_dispatch: bool = True) -> bool:
    """Create JAX's CPU client single-threaded, and (``sync_dispatch``) run CPU
    computations synchronously in the calling thread (``jax_cpu_enable_async_dispatch
    = False``: a quoter blocks on every result anyway, so the hand-off to a dispatch
    thread is pure overhead).  Returns False (and changes nothing) when the backend
    already exists or the platform cannot set CPU affinity."""
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
    try:
        os.sched_setaffinity(0, {min(cpus)})
        jax.devices()  # creates the client now; its thread pool sees one CPU
    finally:
        os.sched_setaffinity(0, cpus)
    return True
