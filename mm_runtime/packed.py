"""The quote step on flat float64 vectors: the live ``Quoter``'s low-latency path.

:class:`PackedStep` runs :func:`mm_runtime.core.step`'s computation on one donated
state vector ``[estimators | config + priors | last quotes]`` and one event vector,
compiled once per state structure (shared by every ``Quoter``) with
:func:`mm_runtime.perf.packed_step_compiler_options`, and in low-latency mode as one
XLA kernel (:func:`mm_runtime.perf.run_once_as_one_kernel`).  Same numbers as the
pytree step (tested).  :class:`_Layout` is the pytree ⇄ vector map.

Why this shape, and what it measured: docs/runtime/quote_step_latency.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .core import MarketEvent, QuoterState, Quotes, _step_raw, _to_jax, make_event
from .perf import is_one_kernel, packed_step_compiler_options, run_once_as_one_kernel, small_loops_as_kernels

__all__ = ["PackedStep"]


class _Layout:
    """Flat float64 layout of a pytree (leaf order of ``jax.tree.flatten``)."""

    def __init__(self, tree):
        leaves, self.treedef = jax.tree.flatten(tree)
        self.shapes = [tuple(np.shape(x)) for x in leaves]
        self.dtypes = [np.asarray(x).dtype if not hasattr(x, "dtype") else np.dtype(x.dtype) for x in leaves]
        self.sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int).tolist()
        self.size = self.offsets[-1]
        self.key = (str(self.treedef), tuple(self.shapes), tuple(str(d) for d in self.dtypes))
        # per leaf: (kind, start, stop, shape, scalar type); kind = scalar "s" / array
        # "a" + float "f" / bool "b" / other "i" (decided once: the read-out is hot)
        self._plan = [
            (("s" if not shp else "a") + ("b" if dt == np.bool_ else "f" if dt == np.float64 else "i"),
             o, o + n, shp, dt.type)
            for o, n, shp, dt in zip(self.offsets[:-1], self.sizes, self.shapes, self.dtypes, strict=True)
        ]

    def pack_np(self, tree) -> np.ndarray:
        leaves = jax.tree.leaves(tree)
        return np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in leaves])

    def _leaves_np(self, vec: np.ndarray) -> list:
        """The leaves as numpy views into ``vec`` (scalars as numpy scalars; copies
        only for bool/int leaves)."""
        out = []
        for kind, o, e, shp, t in self._plan:
            if kind == "af":
                out.append(vec[o:e].reshape(shp))
            elif kind == "sf":
                out.append(vec[o])
            elif kind == "sb":
                out.append(vec[o] != 0)
            elif kind == "si":
                out.append(t(vec[o]))
            elif kind == "ab":
                out.append(vec[o:e].reshape(shp) != 0)
            else:
                out.append(vec[o:e].reshape(shp).astype(t))
        return out

    def unpack_np(self, vec):
        """The tree of numpy views into ``vec`` (:meth:`_leaves_np`)."""
        return self.treedef.unflatten(self._leaves_np(np.asarray(vec)))

    def pack_jnp(self, tree):
        leaves = jax.tree.leaves(tree)
        return jnp.concatenate([jnp.ravel(x).astype(jnp.float64) for x in leaves])

    def unpack_jnp(self, vec):
        out = []
        for o, n, shp, dt in zip(self.offsets, self.sizes, self.shapes, self.dtypes, strict=False):
            x = vec[o : o + n].reshape(shp)
            out.append(x != 0 if dt == np.bool_ else x.astype(dt))
        return jax.tree.unflatten(self.treedef, out)


_PACKED_CACHE: dict = {}


class PackedStep:
    """The step on one flat float64 vector, for the latency-critical single-asset
    path (``Quoter``):

    * the whole state is one vector ``[estimators | config + priors | last quotes]``,
      donated and returned: one array in (plus the event), one array out.  The
      config + priors part is copied through unchanged; the quotes part is written
      by the step (its input value is ignored), made finite by a single ``where``;
    * the event is one vector in field order (:meth:`event_vector`);
    * it is compiled with :data:`mm_runtime.perf.PACKED_STEP_COMPILER_OPTIONS`
      (bit-identical results);
    * in low-latency mode (:func:`mm_runtime.configure_low_latency_cpu`) it runs as
      one XLA kernel (:func:`mm_runtime.perf.run_once_as_one_kernel`; checked on
      the compiled HLO, ``one_kernel`` says which form is in use; the multi-kernel
      form otherwise).

    Why (dispatch and kernel costs, XLA's executor): docs/runtime/quote_step_latency.md.
    The vector passed in is donated: do not keep it (or numpy views of it) across a
    call; :meth:`quotes` copies what it returns.
    """

    def __init__(self, state: QuoterState):
        self.const_layout = _Layout((state.cfg, state.prior))
        self.est_layout = _Layout(state.est)
        # the queue input's width: the tick ladder's levels, none for the depth ladder
        self.queue_width = 0 if state.cfg.fills is None else int(np.shape(state.cfg.fills.survival)[1])
        ev0 = make_event(0.0, queue_ahead=np.full((2, self.queue_width), np.nan))
        self.event_layout = _Layout(ev0)
        _, q = jax.eval_shape(_step_raw, state, ev0)
        self.quotes_layout = _Layout(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), q))
        # where the tick ladder's cells sit in the const part (written by with_fills)
        paths = jax.tree_util.tree_flatten_with_path((state.cfg, state.prior))[0]
        cl = self.const_layout
        self._fills_spans = [(cl.offsets[i], cl.sizes[i]) for i, (p, _) in enumerate(paths)
                             if ".fills." in jax.tree_util.keystr(p)]
        ne, nc = self.est_layout.size, self.const_layout.size
        self.est_slice = slice(0, ne)
        self.const_slice = slice(ne, ne + nc)
        self.quotes_slice = slice(ne + nc, ne + nc + self.quotes_layout.size)
        one_kernel_wanted = small_loops_as_kernels()
        key = (self.const_layout.key, self.est_layout.key, one_kernel_wanted)
        cached = _PACKED_CACHE.get(key)
        if cached is None:  # one compilation per state structure, shared by every Quoter
            cl, sl, el, ql = self.const_layout, self.est_layout, self.event_layout, self.quotes_layout

            def packed(vec, ev_vec):
                est_vec, const_vec = vec[:ne], vec[ne : ne + nc]
                cfg, prior = cl.unpack_jnp(const_vec)
                s, q = _step_raw(QuoterState(cfg, prior, sl.unpack_jnp(est_vec)), el.unpack_jnp(ev_vec))
                qv = ql.pack_jnp(q)
                return jnp.concatenate([sl.pack_jnp(s.est), const_vec, jnp.where(jnp.isfinite(qv), qv, 0.0)])

            options = packed_step_compiler_options()
            cached = None
            if one_kernel_wanted:
                once = jax.jit(run_once_as_one_kernel(packed), donate_argnums=(0,), compiler_options=options)
                specs = (
                    jax.ShapeDtypeStruct((self.quotes_slice.stop,), jnp.float64),
                    jax.ShapeDtypeStruct((self.event_layout.size,), jnp.float64),
                )
                if is_one_kernel(once.lower(*specs).compile()):
                    cached = (once, True, packed)
            if cached is None:  # the multi-kernel form (also when the loop was too big)
                cached = (jax.jit(packed, donate_argnums=(0,), compiler_options=options), False, packed)
            _PACKED_CACHE[key] = cached
        # python_fn: the un-jitted (vec, ev_vec) -> vec function (for benchmarks)
        self._fn, self.one_kernel, self.python_fn = cached

    def pack(self, state: QuoterState):
        """The state vector (a device array) of ``state``; its quotes part is zeros."""
        return jnp.asarray(np.concatenate([
            self.est_layout.pack_np(state.est),
            self.const_layout.pack_np((state.cfg, state.prior)),
            np.zeros(self.quotes_layout.size),
        ]))

    def unpack(self, vec) -> QuoterState:
        """The :class:`QuoterState` in ``vec`` (copied into new arrays)."""
        v = np.asarray(vec)
        cfg, prior = self.const_layout.unpack_np(v[self.const_slice])
        return _to_jax(QuoterState(cfg, prior, self.est_layout.unpack_np(v[self.est_slice])))

    def __call__(self, vec, ev_vec):
        """(state vector [donated], event vector) -> state vector holding the quotes."""
        return self._fn(vec, ev_vec)

    def event_vector(self, ev: MarketEvent) -> np.ndarray:
        """The event in field order (:meth:`vector` of its fields)."""
        return self.vector(ev[:-1], ev.queue_ahead)  # every field but the last is a scalar

    def vector(self, scalars, queue_ahead=None) -> np.ndarray:
        """An event's scalar fields in order, then (tick ladder only) the queue input cut
        or NaN-padded to ``(2, queue_width)``: the step's event vector."""
        head = np.array(scalars, dtype=np.float64)
        if self.queue_width == 0:
            return head
        return np.concatenate([head, self.queue_vector(queue_ahead)])

    def queue_vector(self, queue_ahead) -> np.ndarray:
        """``queue_ahead`` (None, or (2, W)) as the flat ``(2 * queue_width,)`` part of the
        event vector (NaN = unknown)."""
        out = np.full((2, self.queue_width), np.nan)
        if queue_ahead is not None:
            qa = np.asarray(queue_ahead, dtype=np.float64).reshape(2, -1)
            w = min(qa.shape[1], self.queue_width)
            out[:, :w] = qa[:, :w]
        return out.ravel()

    def with_fills(self, vec, fills) -> jax.Array:
        """``vec`` with the tick ladder's cells replaced by ``fills`` (a
        :class:`~mm_runtime.tick_ladder.FillsArrays` of the same shapes): a new state
        vector, the step not retraced (online learning, :mod:`mm_runtime.fills_learning`)."""
        leaves = jax.tree.leaves(fills)
        if len(leaves) != len(self._fills_spans):
            raise ValueError("with_fills: this state has no tick ladder cells of that layout")
        v = np.array(np.asarray(vec))
        base = self.const_slice.start
        for (o, n), x in zip(self._fills_spans, leaves, strict=True):
            x = np.asarray(x, dtype=np.float64).ravel()
            if x.size != n:
                raise ValueError(f"with_fills: a cell array of {x.size} values where the state has {n}")
            v[base + o : base + o + n] = x
        return jnp.asarray(v)

    def quotes(self, vec) -> Quotes:
        """The quotes written by the last step into ``vec`` (numpy, a copy)."""
        return self.quotes_layout.unpack_np(np.array(np.asarray(vec)[self.quotes_slice]))
