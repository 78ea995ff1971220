"""Benchmark of the Hawkes log-likelihood (DESIGN.md section 4: O(N), never O(N^2)).

Measures, on ~1e6 simulated events (one asset, regime switches every few bars):

* ``jax_value_and_grad``: :func:`models.hawkes.loglik_value_and_grad` (the jitted
  ``jax.value_and_grad`` of ``loglik_jax``; target <= 0.1 s on a 2-core CPU);
* ``jax_value``: ``loglik_jax`` alone;
* ``pytensor_op_logp_dlogp``: logp + gradient of the PyMC model's likelihood term
  (``HawkesLogLikOp``) compiled by pytensor (C backend), i.e. what PyMC's own
  sampler calls per leapfrog step;
* ``pytensor_graph_logp_dlogp``: the pure-pytensor graph (``loglik_pt``,
  gradient by pytensor) compiled with the numba backend (compile time reported;
  the C backend needs many minutes to compile this graph, see ``--graph-c``);

all after compilation, median of ``--repeats`` (>= 10) runs, wall clock. Then the
precision of the O(N) scan, of the pointwise form and of the logcumsumexp
formulation against the O(N^2) reference on a small sample (one hour at
beta = 2/s and one day at beta = 50/s).

Writes ``artifacts/benchmarks/hawkes.json`` and prints a table. Timings depend on
the machine and its load: the JSON records the CPU count and the load average.

    uv run python benchmarks/bench_hawkes.py [--events 1000000] [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _median_time(fn, repeats: int) -> tuple[float, float]:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), float(np.min(ts))


def _truth(n_events: int, rng: np.random.Generator, decay: float = 2.0):
    from models import hawkes as H

    base = ((0.25, 0.22), (0.45, 0.40), (0.80, 0.75), (1.40, 1.30))
    n = ((0.30, 0.10), (0.05, 0.25))
    # sticky regime path on 10 s bars
    P = np.array([[0.97, 0.02, 0.008, 0.002], [0.01, 0.97, 0.015, 0.005],
                  [0.005, 0.03, 0.95, 0.015], [0.005, 0.02, 0.05, 0.925]])
    inv = np.linalg.inv(np.eye(2) - np.asarray(n))
    rate = float(np.mean([(inv @ np.asarray(b)).sum() for b in base]))
    T = n_events / rate
    n_bars = int(math.ceil(T / 10.0))
    u = rng.random(n_bars)
    path = np.empty(n_bars, dtype=int)
    path[0] = 1
    cum = np.cumsum(P, axis=1)
    for k in range(1, n_bars):
        path[k] = min(int(np.searchsorted(cum[path[k - 1]], u[k], side="right")), 3)
    return H.HawkesTruth(baseline=base, branching=n, decay=decay, regime_path=tuple(int(x) for x in path),
                         duration_s=T)


def _logcumsumexp_loglik(params, obs) -> float:
    """The same log-likelihood with X_i = exp(logcumsumexp_{j<i}(beta t_j) - beta t_i)
    (jax.lax.cumlogsumexp), ties ignored: the formulation the scan replaces."""
    import jax
    import jax.numpy as jnp

    mu, n, beta = (np.asarray(params[k], float) for k in ("mu", "n", "beta"))
    beta = float(beta)
    t, s, r = obs.t, obs.side.astype(int), obs.regime.astype(int)
    T = float(obs.duration_s[0])
    bt = jnp.asarray(beta * t)
    S = []
    for src in (0, 1):
        x = jnp.where(jnp.asarray(s == src), bt, -jnp.inf)
        lc = jax.lax.cumlogsumexp(x)                      # includes j = i
        prev = jnp.concatenate([jnp.array([-jnp.inf]), lc[:-1]])
        S.append(np.asarray(jnp.exp(prev - bt)))
    lam = mu[r, s] + beta * (n[s, 0] * S[0] + n[s, 1] * S[1])
    D = obs.regime_time()[0]
    comp = float((mu.sum(axis=1) * D).sum()) + float((n.sum(axis=0)[s] * -np.expm1(-beta * (T - t))).sum())
    return float(np.log(lam).sum() - comp)


def precision(rng: np.random.Generator) -> list[dict]:
    from models import hawkes as H

    out = []
    cases = [("1 h, beta 2/s", 3600.0, 2.0), ("1 day, beta 50/s (sparse)", 86400.0, 50.0)]
    for label, T, beta in cases:
        base = ((0.30, 0.25), (0.5, 0.4), (0.9, 0.8), (1.5, 1.3))
        scale = 1.0 if T <= 3600 else 0.02   # ~3-5k events either way
        base = tuple(tuple(b * scale for b in row) for row in base)
        path = tuple(int(x) for x in rng.integers(0, 4, int(T / 10)))
        truth = H.HawkesTruth(baseline=base, branching=((0.3, 0.1), (0.05, 0.25)), decay=beta,
                              regime_path=path, duration_s=T)
        obs = H.simulate(truth, rng)
        p = truth.params()
        ref = H.loglik_naive(p, obs)
        row = {"case": label, "events": obs.n_events, "reference_O(N^2)": ref}
        for name, v in (("scan_total", float(H.loglik_jax(p, obs))),
                        ("scan_pointwise_sum", float(H.pointwise_loglik_jax(p, obs).sum())),
                        ("logcumsumexp", _logcumsumexp_loglik(p, obs))):
            row[f"rel_err_{name}"] = abs(v - ref) / abs(ref)
        out.append(row)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-graph", action="store_true", help="skip the pure-pytensor graph (numba)")
    ap.add_argument("--graph-c", action="store_true", help="also compile the graph with the C backend (slow)")
    ap.add_argument("--out", default=str(REPO / "artifacts" / "benchmarks" / "hawkes.json"))
    args = ap.parse_args(argv)
    repeats = max(10, args.repeats)

    import jax
    import pytensor
    import pytensor.tensor as pt

    from models import hawkes as H

    rng = np.random.default_rng(args.seed)
    truth = _truth(args.events, rng)
    t0 = time.perf_counter()
    obs = H.simulate(truth, rng)
    sim_s = time.perf_counter() - t0
    if obs.n_events < args.events:        # the regime path's occupancy shifts the mean rate
        truth = _truth(int(args.events * args.events / obs.n_events * 1.01), rng)
        obs = H.simulate(truth, rng)
    p = {k: jax.numpy.asarray(v) for k, v in truth.params().items()}
    t0 = time.perf_counter()
    d = H.jax_data(obs)
    prep_s = time.perf_counter() - t0
    rows = []

    t0 = time.perf_counter()
    jax.block_until_ready(H.loglik_value_and_grad(p, d))
    comp = time.perf_counter() - t0
    med, mn = _median_time(lambda: jax.block_until_ready(H.loglik_value_and_grad(p, d)), repeats)
    rows.append({"name": "jax_value_and_grad", "median_s": med, "min_s": mn, "compile_s": comp})
    t0 = time.perf_counter()
    jax.block_until_ready(H.loglik_jax(p, d))
    comp = time.perf_counter() - t0
    med, mn = _median_time(lambda: jax.block_until_ready(H.loglik_jax(p, d)), repeats)
    rows.append({"name": "jax_value", "median_s": med, "min_s": mn, "compile_s": comp})

    mu_v, n_v, b_v = pt.dtensor3("mu"), pt.dtensor3("n"), pt.dvector("beta")
    vals = (np.asarray(p["mu"])[None], np.asarray(p["n"])[None], np.asarray(p["beta"]).reshape(1))
    ll = H.loglik_op(mu_v, n_v, b_v, obs)
    t0 = time.perf_counter()
    f = pytensor.function([mu_v, n_v, b_v], [ll, *pytensor.grad(ll, [mu_v, n_v, b_v])])
    f(*vals)
    comp = time.perf_counter() - t0
    # a new point on every call (the Op caches the last point's value and gradient)
    counter = iter(range(1, 10 ** 6))
    med, mn = _median_time(lambda: f(vals[0], vals[1], vals[2] * (1 + 1e-9 * next(counter))), repeats)
    rows.append({"name": "pytensor_op_logp_dlogp (C backend)", "median_s": med, "min_s": mn, "compile_s": comp})

    modes = [] if args.no_graph else ["NUMBA"] + (["FAST_RUN"] if args.graph_c else [])
    for mode in modes:
        llg = H.loglik_pt(mu_v, n_v, b_v, obs)
        t0 = time.perf_counter()
        fg = pytensor.function([mu_v, n_v, b_v], [llg, *pytensor.grad(llg, [mu_v, n_v, b_v])], mode=mode)
        fg(*vals)
        comp = time.perf_counter() - t0
        med, mn = _median_time(lambda: fg(*vals), repeats)
        rows.append({"name": f"pytensor_graph_logp_dlogp ({mode})", "median_s": med, "min_s": mn,
                     "compile_s": comp, "value_matches_jax": abs(float(fg(*vals)[0]) - float(H.loglik_jax(p, d)))})

    prec = precision(np.random.default_rng(args.seed + 1))
    result = {
        "events": obs.n_events, "duration_s": float(obs.duration_s[0]), "simulate_s": sim_s,
        "prepare_s": prep_s, "repeats": repeats, "timings": rows, "precision": prec,
        "machine": {"cpus": os.cpu_count(), "loadavg": list(os.getloadavg()),
                    "platform": platform.platform(), "python": platform.python_version(),
                    "jax": jax.__version__, "pytensor": pytensor.__version__,
                    "jax_backend": jax.default_backend()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"Hawkes log-likelihood, N = {obs.n_events:,} events over {obs.duration_s[0]:,.0f} s "
          f"(simulate {sim_s:.1f} s, prepare {prep_s:.2f} s; load avg {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs)")
    print(f"{'what':45s} {'median s':>10s} {'min s':>10s} {'compile s':>10s}")
    for r in rows:
        print(f"{r['name']:45s} {r['median_s']:10.4f} {r['min_s']:10.4f} {r['compile_s']:10.1f}")
    print("\nprecision vs the O(N^2) reference (relative error of the total log-likelihood)")
    for r in prec:
        print(f"  {r['case']:28s} N={r['events']:5d}  scan {r['rel_err_scan_total']:.1e}  "
              f"pointwise {r['rel_err_scan_pointwise_sum']:.1e}  logcumsumexp {r['rel_err_logcumsumexp']:.1e}")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
