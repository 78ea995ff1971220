"""Process-level latency settings for a live quoter on CPU (opt-in).

Why: XLA's CPU runtime runs a compiled step as a sequence of kernels ("thunks");
with a multi-threaded client each kernel hand-off goes through its thread pool,
which on a small machine costs ~1 µs per kernel — more than the kernels' work for
a step of this size (~65 kernels).  With a single-threaded client the kernels run
inline in the calling thread (~0.4 µs each): the measured single-asset step goes
from ~80 µs to ~35 µs on a 2-core VM (see benchmarks/README.md).

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

__all__ = ["configure_low_latency_cpu"]


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
