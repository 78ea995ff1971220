"""Quote-step latency: the jitted JAX step vs a plain NumPy implementation of the same step.

Run:  uv run python benchmarks/bench_quote_step.py [--calls N] [--batch 256] [--quick]

Measures, in one run, on the same stream of synthetic events (Brownian mid, ~30 %
of events with a public trade, ~10 % with an own fill):

* JAX, one asset, the Quoter's path (``PackedStep``: one donated state vector in
  and out, plus the event vector, compiled with
  ``mm_runtime.perf.PACKED_STEP_COMPILER_OPTIONS``; in low-latency mode one XLA
  kernel), per call with ``block_until_ready``, after warm-up: median and p99;
  interleaved (20 alternating blocks) with the same packed function as the multi-
  kernel program (~70 kernels through XLA's executor; low-latency mode only) and
  compiled with XLA's default options;
* the whole ``Quoter.on_event`` (the packed step, the event vector, the quotes read
  back into numpy, the status check), one asset;
* JAX, one asset, the plain pytree API ``mm_runtime.step(state, event)``;
* JAX, a batch of ``--batch`` assets in one ``mm_runtime.batch_step`` call (vmap):
  per call, and per asset (call time / batch);
* NumPy, one asset, :func:`numpy_step` below — the same estimator and ladder math
  written in plain NumPy (checked against the JAX step before timing);
* the JAX numbers again in a child process in "low-latency CPU mode"
  (``mm_runtime.configure_low_latency_cpu()``: XLA CPU client created single-
  threaded, synchronous dispatch, the packed step as one kernel; skip with
  ``--no-child``).

Prints a table and writes artifacts/benchmarks/quote_step.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "artifacts" / "benchmarks" / "quote_step.json"


# ============================================================================ NumPy step
# A line-by-line NumPy port of mm_runtime.core._step_raw (estimators.update,
# estimators.estimates, the regime weighting and ladder.build_ladder), on the same
# QuoterState converted to numpy arrays.  Plain, readable NumPy: what one would
# write without JAX.

_erfc = np.frompyfunc(math.erfc, 1, 1)


def numpy_step(state, ev):
    cfg, prior, est = state
    lp, lad = cfg.learning, cfg.ladder
    fin = np.isfinite
    B = prior.bucket_edges.shape[0]
    S = 2
    C = 2 * B + 4 * S
    N, R = est.pending.shape[0], est.regime_probs.shape[0]

    ts_ok = fin(ev.ts) and fin(ev.now)
    book_given = ev.bid > 0 and ev.ask > 0
    mid = ev.mid if ev.mid > 0 else (0.5 * (ev.bid + ev.ask) if book_given else 0.0)
    market_ok = bool(fin(ev.mid) and fin(ev.bid) and fin(ev.ask) and fin(mid) and mid > 0
                      and not (book_given and ev.bid > ev.ask))
    safe_mid = mid if market_ok else 1.0
    stale = ts_ok and (ev.now - ev.ts > cfg.max_age_s)
    sigma_ok = fin(ev.sigma_bps)
    account_ok = fin(ev.position) and fin(ev.margin_available)
    trade_ok = fin(ev.trade_price) and ev.trade_price > 0 and abs(ev.trade_side) == 1
    fill_ok = fin(ev.fill_price) and ev.fill_price > 0 and abs(ev.fill_side) == 1 and fin(ev.fill_depth_bps)
    extras_ok = (not ev.trade_mask or trade_ok) and (not ev.fill_mask or fill_ok)

    # ---- estimators.update
    p = est.regime_probs
    started = est.started > 0
    dt = max(ev.ts - est.last_ts, 0.0) if (ts_ok and started) else 0.0
    keep = 2.0 ** (-dt / lp.half_life_s)
    exposure = min(dt, lp.max_gap_s)
    prev_mid = est.last_mid
    t_ok = bool(ev.trade_mask and trade_ok and ts_ok and prev_mid > 0)
    evidence = est.evidence * keep
    evidence[:, 2 * B + 3 * S : 2 * B + 4 * S] += p[:, None] * exposure  # A exposure, both sides
    exc = est.hawkes_excitation * np.exp(-prior.hawkes_kernel_beta * dt)[:, None]  # (K, S): one row per component
    if t_ok:
        depth = max(ev.trade_side * (ev.trade_price - prev_mid) / prev_mid * 1e4, 0.0)
        s = 0 if ev.trade_side > 0 else 1
        evidence[:, 2 * B + s] += p  # κ count
        evidence[:, 2 * B + S + s] += p * depth  # κ depth sum
        evidence[:, 2 * B + 2 * S + s] += p  # A count
        exc = exc + prior.hawkes_kernel_beta[:, None] * prior.hawkes_kernel_n[:, :, s]
    pending = est.pending.copy()
    cursor = est.cursor
    f_ok = bool(ev.fill_mask and fill_ok and ts_ok and (ev.fill_depth_bps >= 0 or prev_mid > 0))
    if f_ok:
        if ev.fill_depth_bps >= 0:
            f_depth = ev.fill_depth_bps
        else:
            f_depth = max(ev.fill_side * (prev_mid - ev.fill_price) / prev_mid * 1e4, 0.0)
        bucket = float(np.sum(f_depth >= prior.bucket_edges[1:]))
        pending[int(cursor)] = np.concatenate([[ev.ts, ev.fill_price, ev.fill_side, bucket, 1.0], p])
        cursor = 0.0 if cursor + 1 >= N else cursor + 1
    m_ok = market_ok and ts_ok
    bar_start, sumsq, probs = est.bar_start, est.bar_sumsq, p
    if m_ok:
        if prev_mid > 0:
            r = math.log(safe_mid / prev_mid) * 1e4
            sumsq = sumsq + r * r
            elapsed = ev.ts - bar_start
            if elapsed >= prior.bar_s:
                y = math.log(max(math.sqrt(sumsq / elapsed), 1e-6))
                z = (y - prior.emission_loc) / prior.emission_scale
                ll = prior.emission_const - 0.5 * (prior.emission_df + 1) * np.log1p(z * z / prior.emission_df)
                pred = p @ prior.transition
                post = pred * np.exp(ll - ll.max())
                probs = post / post.sum() if post.sum() > 0 else pred
                bar_start, sumsq = ev.ts, 0.0
        else:
            bar_start = ev.ts
        due = (pending[:, 4] > 0) & (ev.ts - pending[:, 0] >= lp.markout_horizon_s)
        if due.any():
            for i in np.flatnonzero(due):
                price, side, b = pending[i, 1], pending[i, 2], int(pending[i, 3])
                informed = side * (price - safe_mid) / price * 1e4 > lp.informed_threshold_bps
                evidence[:, b if informed else B + b] += pending[i, 5:]
                pending[i, 4] = 0.0
    new_est = est._replace(
        evidence=evidence, regime_probs=probs, hawkes_excitation=exc, pending=pending, cursor=cursor,
        bar_start=bar_start, bar_sumsq=sumsq,
        last_ts=(max(ev.ts, est.last_ts) if started else ev.ts) if ts_ok else est.last_ts,
        last_mid=safe_mid if m_ok else est.last_mid,
        started=1.0 if ts_ok else est.started,
    )

    # ---- estimators.estimates
    nat0 = prior.nat
    nat = nat0 + evidence
    a, b = nat[:, :B], nat[:, B : 2 * B]
    a0, b0 = nat0[:, :B], nat0[:, B : 2 * B]
    a_cal = lp.learn & ((a + b) - (a0 + b0) >= lp.alpha_min_n) & (np.sqrt(b / (a * (a + b + 1))) <= lp.alpha_max_cv)
    alpha_rb = np.where(a_cal, a / (a + b), a0 / (a0 + b0))

    def gamma_used(i):
        sh, rt = nat[:, 2 * B + 2 * i * S : 2 * B + (2 * i + 1) * S], nat[:, 2 * B + (2 * i + 1) * S : 2 * B + (2 * i + 2) * S]
        sh0, rt0 = nat0[:, 2 * B + 2 * i * S : 2 * B + (2 * i + 1) * S], nat0[:, 2 * B + (2 * i + 1) * S : 2 * B + (2 * i + 2) * S]
        cal = lp.learn & (sh - sh0 >= lp.intensity_min_n) & (1 / np.sqrt(sh) <= lp.intensity_max_cv)
        return np.where(cal, sh / rt, sh0 / rt0)

    kappa_rs, arrival_rs = gamma_used(0), gamma_used(1)
    alpha_b = probs @ alpha_rb
    kappa = probs @ kappa_rs
    poisson = probs @ arrival_rs
    hawkes = probs @ prior.hawkes_mu + exc.sum(0)
    sigma_model = probs @ prior.sigma_bps
    regime_mult = probs @ cfg.regime_multipliers

    # ---- ladder.build_ladder
    alpha_touch = cfg.alpha_touch if cfg.alpha_touch > 0 else alpha_b[0]
    alpha_decay = cfg.alpha_decay_bps if cfg.alpha_decay_bps > 0 else prior.alpha_decay_bps
    arrival = (hawkes if cfg.use_hawkes_intensity else poisson)[::-1]
    kappa = kappa[::-1]
    sigma = ev.sigma_bps if (sigma_ok and ev.sigma_bps > 0) else sigma_model
    sig = max(sigma, lad.sigma_floor_bps)
    q = ev.position if fin(ev.position) else 0.0
    margin = ev.margin_available if fin(ev.margin_available) else 0.0
    sgn = np.array([1.0, -1.0])
    A = np.maximum(arrival, 1e-12)
    kap = np.maximum(kappa, 1e-12)
    u = lad.xi * lad.delta / kap
    l = np.log1p(u) / u
    c2 = np.sqrt(lad.gamma / (2 * A * lad.delta * kap) * np.exp(l + u * l))
    h = np.minimum(l / kap + 0.5 * lad.delta * sig * c2, lad.max_depth_bps)
    k = np.minimum(sig * c2, 1e12)
    shift = np.maximum(np.clip(sgn * k * q, -lad.max_skew_bps, lad.max_skew_bps), lad.min_depth_bps - h)
    depth = np.clip(h[:, None] * lad.level_mult[None, :] + shift[:, None], lad.min_depth_bps, lad.max_depth_bps)
    price = safe_mid * (1 - sgn[:, None] * depth * 1e-4)
    if lad.tick_size > 0:
        t = lad.tick_size
        price = np.where(sgn[:, None] > 0, np.floor(price / t) * t, np.ceil(price / t) * t)
    price = np.maximum(price, 0.0)
    depth = sgn[:, None] * (safe_mid - price) / safe_mid * 1e4
    p_fill = np.clip(_erfc(np.maximum(depth, 0) / max(sig * math.sqrt(2 * lad.quote_horizon_s), 1e-300)).astype(float), 0, 1)
    if lad.alpha_parametric:
        alpha = alpha_touch * np.exp(-depth / max(alpha_decay, 1e-12))
    else:
        alpha = alpha_b[np.searchsorted(prior.bucket_edges, depth, side="right") - 1]
    alpha = np.clip(alpha, 0, 1)
    sc = cfg.spread_capture * depth - lad.fee_bps
    AS = prior.adverse_move_bps + lad.fee_bps  # the fee is paid on informed fills too
    edge = (1 - alpha) * sc - alpha * AS
    var = (sc + AS) ** 2 * alpha * (1 - alpha)
    kelly_f = np.where(edge > 0, np.minimum(edge / np.maximum(var, 1e-300), lad.max_kelly_f), 0.0)
    f_eff = min(max(lad.kelly_fraction * regime_mult, lad.kelly_fraction_min), lad.kelly_fraction_max)
    if lad.use_kelly_stochastic:
        raw = p_fill * kelly_f * f_eff
    else:
        value = p_fill * np.maximum(edge, 0)
        raw = f_eff * value / np.maximum(value.sum(axis=1, keepdims=True), 1e-300)
    margin_cap = max(margin, 0.0) * lad.leverage
    headroom = np.maximum(lad.max_position - sgn * q, 0.0)
    reduce_only = abs(q) >= lad.max_position
    bankroll = np.where(reduce_only, np.where(sgn * q < 0, abs(q), 0.0), margin_cap / safe_mid)
    pos_limit = np.where(reduce_only, bankroll, headroom)
    desired = raw * bankroll[:, None]
    total_size, total_notional = desired.sum(axis=1), (desired * price).sum(axis=1)
    s_margin = np.where(reduce_only | (total_notional <= margin_cap), 1.0, margin_cap / np.maximum(total_notional, 1e-300))
    s_pos = np.where(total_size <= pos_limit, 1.0, pos_limit / np.maximum(total_size, 1e-300))
    size = desired * np.minimum(s_margin, s_pos)[:, None]
    wants = raw.sum(axis=1) > 0
    margin_binds = (not reduce_only) & ((s_margin < 1) | ((margin_cap <= 0) & wants)) & (s_margin <= s_pos)
    pos_binds = (s_pos < 1) | ((pos_limit <= 0) & wants)
    binding = np.where(margin_binds, 1, np.where(pos_binds, 2, 0))
    if lad.size_increment > 0:
        size = np.floor(size / lad.size_increment) * lad.size_increment
    size = np.where(size * price >= lad.min_notional, size, 0.0)
    size = np.where(np.isfinite(size) & (size > 0), size, 0.0)

    valid = ts_ok and market_ok and not stale and sigma_ok and account_ok and extras_ok
    ok = valid & np.isfinite(price) & np.isfinite(size)
    quotes = dict(
        valid=valid,
        price=np.where(ok, price, 0.0),
        size=np.where(ok, size, 0.0),
        depth_bps=depth,
        fill_prob=p_fill,
        alpha=alpha,
        kelly_f=kelly_f,
        binding=np.where(valid, binding, 0),
        kelly_fraction=f_eff,
        regime_probs=probs,
    )
    return state._replace(est=new_est), quotes


def numpy_state(state):
    """The QuoterState as writable numpy arrays (scalars as Python/NumPy scalars)."""
    import jax

    def conv(x):
        a = np.array(x)
        return a if a.ndim else a.item()

    return jax.tree.map(conv, state)


# ============================================================================ timing
def synthetic_stream(n, seed=0, mid=30_000.0, dt=0.05):
    rng = np.random.default_rng(seed)
    t = 1_700_000_000.0
    out = []
    for _ in range(n):
        t += dt
        mid *= math.exp(rng.normal() * 0.8e-4 * math.sqrt(dt))
        kw = dict(position=float(np.clip(rng.normal(0, 3), -12, 12)), margin_available=2e4)
        if rng.random() < 0.3:
            side = 1.0 if rng.random() < 0.5 else -1.0
            kw.update(trade_price=mid * (1 + side * rng.exponential(4.0) * 1e-4), trade_side=side)
        if rng.random() < 0.1:
            side = 1.0 if rng.random() < 0.5 else -1.0
            kw.update(fill_price=mid * (1 - side * rng.exponential(3.0) * 1e-4), fill_side=side)
        out.append((t, mid, kw))
    return out


def stats_us(samples):
    a = np.asarray(samples) * 1e6
    return {"median_us": float(np.median(a)), "p99_us": float(np.percentile(a, 99)), "mean_us": float(a.mean()),
            "n": int(a.size)}


def time_calls(fn, n):
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def time_interleaved(fns, n, rounds=20):
    """``n`` timed calls of each of ``fns``, in ``rounds`` alternating blocks."""
    out = [[] for _ in fns]
    per = max(n // rounds, 1)
    for r in range(rounds):
        for f, o in zip(fns, out, strict=True):
            o.extend(time_calls(lambda i, f=f: f(r * per + i), per))
    return out


def bench_bundle(fills: bool, components: int = 1):
    """The example bundle and the default config, or (``--fills``) the example bundle
    with a hand-built fills block and a 0.1 bp tick grid: the tick ladder
    (mm_runtime.tick_ladder); the events carry no queue input (unknown: NaN).
    ``components`` > 1: the example bundle with a hand-built kernel of that many
    components (decays 1000/s down to 0.01/s, equal shares), quoting on the Hawkes
    intensity (``use_hawkes_intensity``)."""
    import mm_runtime as mr

    if components > 1:
        from mm_runtime.examples import with_example_components as with_hawkes_components

        b = with_hawkes_components(mr.example_bundle(), np.geomspace(1000.0, 0.01, components),
                                   np.ones(components))
        return b, mr.QuoterConfig(use_hawkes_intensity=True)
    if not fills:
        return mr.example_bundle(), mr.QuoterConfig()
    from mm_runtime.examples import with_example_fills

    b = with_example_fills(mr.example_bundle(), lambda lv, q: 2.0 * math.exp(-0.9 * lv - 0.4 * q),
                              lambda lv, q: 0.05 + 0.5 * lv)
    return b, mr.QuoterConfig(tick_size=0.3, fills_ladder_start="touch")


def live_queue_inputs(mid: float, tick: float, n: int = 64):
    """``n`` 20-level L2 snapshots around ``mid`` on the grid ``tick`` (random sizes) and
    ``n`` prints at the touch: the live queue tracker's inputs (``--fills``)."""
    rng = np.random.default_rng(7)
    bid = math.floor(mid / tick) * tick
    lv = np.arange(20)
    books = [(bid - lv * tick, rng.lognormal(0, 1, 20), bid + tick + lv * tick, rng.lognormal(0, 1, 20))
             for _ in range(n)]
    prints = [(bid if i % 2 else bid + tick, -1.0 if i % 2 else 1.0, float(rng.lognormal(-1, 1))) for i in range(n)]
    return books, prints


def measure_jax(calls, batch, warmup, fills=False, components=1):
    import jax

    import mm_runtime as mr

    bundle, config = bench_bundle(fills, components)
    stream = synthetic_stream(max(calls, 2000))
    events = [mr.make_event(t, m, **kw) for t, m, kw in stream]
    res = {}

    # ---- one asset, the Quoter's packed path
    state0 = mr.init(bundle, config)
    packed = mr.PackedStep(state0)
    evecs = [packed.event_vector(e) for e in events]
    holder = [packed.pack(state0)]

    def one_packed(i):
        holder[0] = packed(holder[0], evecs[i % len(evecs)])
        holder[0].block_until_ready()

    # the same packed function as the multi-kernel XLA program (~70 kernels through
    # XLA's executor): with PACKED_STEP_COMPILER_OPTIONS (what the Quoter runs when
    # the one-kernel form is not in use) and with XLA's default options; timed
    # interleaved with the Quoter's path, so the medians see the same machine load
    from mm_runtime.perf import packed_step_compiler_options

    refs = {"jax_packed_single_default_xla_options": jax.jit(packed.python_fn, donate_argnums=(0,))}
    if packed.one_kernel:
        refs["jax_packed_single_multi_kernel"] = jax.jit(
            packed.python_fn, donate_argnums=(0,), compiler_options=packed_step_compiler_options())

    def caller(fn):
        h = [packed.pack(state0)]

        def one(i):
            h[0] = fn(h[0], evecs[i % len(evecs)])
            h[0].block_until_ready()

        return one

    fns = [one_packed] + [caller(f) for f in refs.values()]
    for f in fns:
        time_calls(f, warmup)
    timed = time_interleaved(fns, calls)
    res["jax_packed_single"] = dict(stats_us(timed[0]), one_kernel=bool(packed.one_kernel))
    for name, t in zip(refs, timed[1:], strict=True):
        res[name] = stats_us(t)

    # ---- one asset, the whole Quoter.on_event: the packed step plus building the
    # event vector, reading the quotes back into numpy and the status check
    quoter = mr.Quoter(bundle, config, replay=True, metrics=False)
    on_args = [(t, m, dict(position=kw["position"], margin_available=kw["margin_available"],
                           trade=(kw["trade_price"], kw["trade_side"]) if "trade_price" in kw else None,
                           fill=(kw["fill_price"], kw["fill_side"]) if "fill_price" in kw else None))
               for t, m, kw in stream]

    def one_on_event(i):
        t, m, kw = on_args[i % len(on_args)]
        quoter.on_event(t, m, **kw)

    if fills:  # the live queue position: a 20-level book and resting orders, read by on_event
        book, prints = live_queue_inputs(stream[0][1], config.tick_size)
        quoter.on_book(*book[0])
        quoter.on_print(*prints[0])
        ladder = quoter.on_event(stream[0][0], stream[0][1], margin_available=1e5)
        quoter.place(stream[0][0], ladder.price, np.where(ladder.price > 0, 1.0, 0.0))

    time_calls(one_on_event, warmup)
    res["quoter_on_event"] = stats_us(time_calls(one_on_event, max(calls // 4, 1000)))
    if fills:
        assert np.all(np.isfinite(quoter.queue.input[:, 0])), "the tracker's queue input should be known"
        res["quoter_on_book"] = stats_us(time_calls(lambda i: quoter.on_book(*book[i % len(book)]), 2000))
        res["quoter_on_print"] = stats_us(time_calls(lambda i: quoter.on_print(*prints[i % len(prints)]), 2000))

    # ---- one asset, the pytree API
    st = [state0]

    def one_tree(i):
        st[0], q = mr.step(st[0], events[i % len(events)])
        jax.block_until_ready(q)

    time_calls(one_tree, warmup)
    res["jax_pytree_single"] = stats_us(time_calls(one_tree, max(calls // 4, 500)))

    # ---- a batch of assets, one vmapped call
    states = mr.stack_trees([state0] * batch)
    ev_batches = []
    for j in range(16):
        ev_batches.append(jax.tree.map(jax.numpy.asarray, mr.stack_trees(
            [events[(j * 37 + a * 11) % len(events)] for a in range(batch)])))
    bs = [jax.tree.map(jax.numpy.asarray, states)]

    def one_batch(i):
        bs[0], q = mr.batch_step(bs[0], ev_batches[i % len(ev_batches)])
        jax.block_until_ready(q)

    time_calls(one_batch, max(warmup // 10, 20))
    b = stats_us(time_calls(one_batch, max(calls // 20, 200)))
    res["jax_batch"] = dict(b, batch=batch, per_asset_median_us=b["median_us"] / batch,
                            per_asset_p99_us=b["p99_us"] / batch)
    return res, events, state0


def check_numpy_matches(events, state0, n=400):
    import jax

    import mm_runtime as mr

    s_np, s_jx = numpy_state(state0), state0
    worst = 0.0
    for e in events[:n]:
        s_np, q_np = numpy_step(s_np, jax.tree.map(lambda x: np.asarray(x).item() if np.size(x) == 1 else np.asarray(x), e))
        s_jx, q_jx = mr.step(s_jx, e)
        for name in ("price", "size", "depth_bps", "fill_prob", "alpha", "kelly_f", "regime_probs"):
            a, b = np.asarray(q_np[name], dtype=float), np.asarray(getattr(q_jx, name), dtype=float)
            err = float(np.max(np.abs(a - b) / (1.0 + np.abs(b))))
            worst = max(worst, err)
        assert bool(q_np["valid"]) == bool(q_jx.valid)
        assert np.array_equal(np.asarray(q_np["binding"]), np.asarray(q_jx.binding))
    np.testing.assert_allclose(s_np.est.evidence, np.asarray(s_jx.est.evidence), rtol=1e-9, atol=1e-9)
    assert worst < 1e-9, worst
    return worst


def measure_numpy(events, state0, calls, warmup):
    import jax

    evs = [jax.tree.map(lambda x: np.asarray(x).item() if np.size(x) == 1 else np.asarray(x), e) for e in events]
    st = [numpy_state(state0)]

    def one(i):
        st[0], _ = numpy_step(st[0], evs[i % len(evs)])

    time_calls(one, warmup)
    return stats_us(time_calls(one, max(calls // 4, 1000)))


# ============================================================================ main
def child(args) -> dict:
    """The JAX numbers in low-latency CPU mode (single-threaded client, sync dispatch)."""
    import mm_runtime as mr

    ok = mr.configure_low_latency_cpu()
    res, _, _ = measure_jax(args.calls, args.batch, args.warmup, args.fills, args.components)
    res["low_latency_cpu"] = ok
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=2_000)
    ap.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    ap.add_argument("--no-child", action="store_true", help="skip the low-latency-mode child run")
    ap.add_argument("--fills", action="store_true",
                    help="a bundle with a fills model: the tick ladder (no NumPy comparison)")
    ap.add_argument("--components", type=int, default=1,
                    help="kernel components of the bundle's Hawkes kernel (2..6: a hand-built block, "
                    "quoting on the Hawkes intensity)")
    ap.add_argument("--no-numpy", action="store_true",
                    help="skip the NumPy step (its port of the volatility bar predates the MedRV bar statistic)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.quick:
        args.calls, args.warmup = 2_000, 300
    if args.child:
        print(json.dumps(child(args)))
        return

    import jax

    import mm_runtime as mr

    load_start = os.getloadavg()
    res, events, state0 = measure_jax(args.calls, args.batch, args.warmup, args.fills, args.components)
    worst = math.nan
    if not args.no_numpy:
        # the NumPy step implements the depth ladder only: with --fills it runs on the plain bundle
        _, np_events, np_state0 = measure_jax(200, 2, 10) if args.fills else (None, events, state0)
        worst = check_numpy_matches(np_events, np_state0)
        res["numpy_single"] = measure_numpy(np_events, np_state0, args.calls, args.warmup)
    if not args.no_child:
        cmd = [sys.executable, __file__, "--child", "--calls", str(args.calls), "--batch", str(args.batch),
               "--warmup", str(args.warmup), "--components", str(args.components)] + (
                   ["--fills"] if args.fills else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        low = json.loads(out.stdout.strip().splitlines()[-1])
        res["low_latency"] = low

    load_end = os.getloadavg()
    np_us = res["numpy_single"]["median_us"] if "numpy_single" in res else math.nan
    batch_us = res["jax_batch"]["per_asset_median_us"]
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "jax": jax.__version__,
            "numpy": np.__version__,
            "x64": bool(jax.config.jax_enable_x64),
            "backend": jax.default_backend(),
            "loadavg_1_5_15_start": load_start,
            "loadavg_1_5_15_end": load_end,
        },
        "config": {"n_levels": mr.QuoterConfig().n_levels, "pending_capacity": mr.QuoterConfig().pending_capacity,
                   "fills": bool(args.fills), "components": args.components,
                   "calls": args.calls, "batch": args.batch},
        "numpy_vs_jax_max_rel_diff": worst,
        "results": res,
        "targets": {
            "single_median_le_20us": res["jax_packed_single"]["median_us"] <= 20.0,
            "single_median_le_20us_low_latency": (res.get("low_latency", {}).get("jax_packed_single", {})
                                                   .get("median_us", math.inf) <= 20.0),
            "batch_speedup_vs_numpy": np_us / batch_us,
            "batch_speedup_ge_10x": np_us / batch_us >= 10.0,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    rows = [
        ("JAX packed step (Quoter path), 1 asset", res["jax_packed_single"]),
        ("  same, default XLA options (interleaved)", res["jax_packed_single_default_xla_options"]),
        ("Quoter.on_event (packed step + read-out), 1 asset", res["quoter_on_event"]),
    ]
    if "quoter_on_book" in res:
        rows += [("Quoter.on_book (20 levels, live queue)", res["quoter_on_book"]),
                 ("Quoter.on_print (live queue)", res["quoter_on_print"])]
    rows += [
        ("JAX pytree step(state, event), 1 asset", res["jax_pytree_single"]),
    ]
    if "low_latency" in res:
        low = res["low_latency"]
        form = "one kernel" if low["jax_packed_single"].get("one_kernel") else "multi-kernel"
        rows += [(f"  packed, low-latency CPU mode ({form})", low["jax_packed_single"])]
        if "jax_packed_single_multi_kernel" in low:
            rows += [("  packed, low-latency, multi-kernel form", low["jax_packed_single_multi_kernel"])]
        rows += [
            ("  packed, low-latency, multi-kernel, default XLA", low["jax_packed_single_default_xla_options"]),
            ("  Quoter.on_event, low-latency CPU mode", low["quoter_on_event"]),
            ("  pytree, low-latency CPU mode", low["jax_pytree_single"]),
        ]
    rows += [
        (f"JAX batch_step, {args.batch} assets (per call)", res["jax_batch"]),
    ] + ([("NumPy step, 1 asset", res["numpy_single"])] if "numpy_single" in res else [])
    print(f"\nquote step latency ({report['machine']['cpus']} CPUs, jax {jax.__version__}, float64; "
          f"load average 1/5/15 min {'/'.join(f'{x:.1f}' for x in load_start)} at start, "
          f"{'/'.join(f'{x:.1f}' for x in load_end)} at end)")
    print(f"{'':46s} {'median µs':>11s} {'p99 µs':>11s}")
    for name, r in rows:
        print(f"{name:46s} {r['median_us']:11.1f} {r['p99_us']:11.1f}")
    jb = res["jax_batch"]
    print(f"{'JAX batch, per asset':46s} {jb['per_asset_median_us']:11.2f} {jb['per_asset_p99_us']:11.2f}")
    if "low_latency" in res:
        lb = res["low_latency"]["jax_batch"]
        print(f"{'  same, low-latency CPU mode':46s} {lb['per_asset_median_us']:11.2f} "
              f"{lb['per_asset_p99_us']:11.2f}")
    for label, r in [("default mode", res)] + ([("low-latency mode", res["low_latency"])] if "low_latency" in res else []):
        a, b = r["jax_packed_single"]["median_us"], r["jax_packed_single_default_xla_options"]["median_us"]
        print(f"packed step, {label}: {a:.1f} us vs {b:.1f} us with default XLA options (ratio {a / b:.2f})")
        if "jax_packed_single_multi_kernel" in r:
            m = r["jax_packed_single_multi_kernel"]["median_us"]
            print(f"packed step, {label}: one kernel {a:.1f} us vs multi-kernel {m:.1f} us (ratio {a / m:.2f})")
    print(f"\nbatch per-asset throughput vs NumPy: {np_us / batch_us:.0f}x (target >= 10x)")
    print(f"NumPy and JAX agree to {worst:.1e} (max relative difference over 400 events)")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
