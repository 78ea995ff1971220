"""The regime HMM's likelihood: value + gradient alone, and whole ``mmcal fit
--model regime`` runs of two checkouts (before/after a change), interleaved.

    # value + gradient at 360 / 780 / 8,640 bars (this checkout)
    uv run python benchmarks/bench_regime.py grad
    # fits: this checkout vs another one (e.g. a worktree of the parent commit),
    # interleaved, each with its own environment (<checkout>/.venv/bin/mmcal)
    uv run python benchmarks/bench_regime.py fits --before ../base --repeats 3 \\
        --data lobster:../shared/data/lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip \\
        --data synthetic:/tmp/syn24h --settings default,small

``grad`` times, per number of bars (bars from ``regime.simulate``, parameters at the
EM point): the JAX likelihood with its hand-written adjoint
(``likelihood.loglik_value_and_grad``), a plain log-space ``jax.lax.scan`` forward
algorithm differentiated by ``jax.value_and_grad`` (the reference of the issue), and
the whole model's log-density + gradient (priors included) translated to JAX and
jitted: with the Op and JAX's gradient (what NumPyro and, since this change,
nutpie run), with the Op and pytensor's gradient graph, and with the previous
``pytensor.scan`` graph and pytensor's gradient (what nutpie ran before). Medians
of ``--repeats`` timing loops.

``fits`` runs ``<checkout>/.venv/bin/mmcal fit <data> --model regime --source ...
--json`` for each checkout, data set, sampler setting and repeat, the checkouts
alternating (same period, same load), and records the process wall time, the
fit's own ``wall_s`` and sampling wall, min bulk ESS over the reported parameters
(ESS/s = min ESS bulk / wall), max r_hat, divergences and the 1-min load average
before and after each run. Settings: ``default`` = ``SamplerConfig()`` (nutpie,
4 chains x (1000 tune + 1000 draws)), ``small`` = 2 chains x (300 + 300).
Results: ``--out`` (JSON, written after every run) and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = {"default": [], "small": ["--chains", "2", "--tune", "300", "--draws", "300"]}


def _load() -> float:
    return os.getloadavg()[0]


# =========================================================================== value + gradient
def _timeit(f, args, min_time: float = 0.3, repeats: int = 5) -> float:
    """Median seconds per call of ``f(*args)`` (outputs blocked on), ``repeats`` loops."""
    import jax

    jax.block_until_ready(f(*args))
    n, t = 1, 0.0
    while t < 0.05:                       # calibrate the loop length
        t0 = time.perf_counter()
        for _ in range(n):
            out = f(*args)
        jax.block_until_ready(out)
        t = time.perf_counter() - t0
        n *= 2
    n = max(1, int(n * min_time / max(t, 1e-9)))
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            out = f(*args)
        jax.block_until_ready(out)
        ts.append((time.perf_counter() - t0) / n)
    return statistics.median(ts)


def _log_space_scan():
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp

    from models.regime.likelihood import emission_logp_jax

    def total(m, s, P, pi, d):
        le = emission_logp_jax(m, s, d)
        lP = jnp.log(P)

        def step(f, le_t):
            a = logsumexp(f[:, None] + lP, axis=0) + le_t
            c = logsumexp(a)
            return a - c, c

        a0 = jnp.log(pi) + le[0]
        c0 = logsumexp(a0)
        _, cs = jax.lax.scan(step, a0 - c0, le[1:])
        return c0 + cs.sum()

    return jax.jit(jax.value_and_grad(total, argnums=(0, 1, 2, 3)))


def bench_grad(a) -> list[dict]:
    import jax
    import numpy as np
    import pytensor
    from pymc.sampling.jax import get_jaxified_graph

    from models import regime as rg
    from models.regime.likelihood import loglik_value_and_grad, regime_data

    plain = _log_space_scan()
    rows = []
    for T in [int(x) for x in a.bars.split(",")]:
        obs = rg.simulate(None, a.seed, n_bars=T)
        ref = rg.em_fit(obs)
        m, s, P = np.sort(ref["log_rv_mean"]), np.asarray(ref["log_rv_sd"]), np.asarray(ref["regime_transition"])
        pi = rg.stationary_distribution(P)
        d = regime_data(obs.log_rv)
        params = {"m": m, "s": s, "P": P, "pi": pi}
        row = {"bars": T, "load_before": _load()}
        row["op_jax_ms"] = 1e3 * _timeit(loglik_value_and_grad, (params, d), repeats=a.repeats)
        row["plain_lax_scan_ms"] = 1e3 * _timeit(plain, (m, s, P, pi, d), repeats=a.repeats)
        for lik in ("op", "scan"):
            model = rg.build_model(obs, rg.RegimeConfig(likelihood=lik), reference=ref)
            point = model.initial_point()
            args = [point[v.name] for v in model.value_vars]
            pt_grad = jax.jit(get_jaxified_graph(inputs=model.value_vars,
                                                 outputs=[model.logp(), *pytensor.grad(model.logp(),
                                                                                      model.value_vars)]))
            row[f"model_{lik}_ptgrad_ms"] = 1e3 * _timeit(pt_grad, args, repeats=a.repeats)
            if lik == "op":
                jlogp = get_jaxified_graph(inputs=model.value_vars, outputs=[model.logp()])
                jgrad = jax.jit(jax.value_and_grad(lambda *x: jlogp(*x)[0], argnums=tuple(range(len(args)))))
                row["model_op_jaxgrad_ms"] = 1e3 * _timeit(jgrad, args, repeats=a.repeats)
        row["load_after"] = _load()
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"value + gradient per call, ms (median of {a.repeats} loops; load {rows[0]['load_before']:.1f} .. "
          f"{rows[-1]['load_after']:.1f})")
    print("| bars | likelihood alone: JAX, hand-written adjoint | likelihood alone: plain lax.scan + jax.grad "
          "| model, Op, JAX gradient (nutpie, NumPyro) | model, Op, pytensor gradient graph "
          "| model, pytensor scan, pytensor gradient graph (before) | before / after |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['bars']:,} | {r['op_jax_ms']:.3f} | {r['plain_lax_scan_ms']:.3f} | {r['model_op_jaxgrad_ms']:.3f} | "
              f"{r['model_op_ptgrad_ms']:.3f} | {r['model_scan_ptgrad_ms']:.3f} | "
              f"{r['model_scan_ptgrad_ms'] / r['model_op_jaxgrad_ms']:.1f}x |")
    return rows


# =========================================================================== whole fits
def _fit(checkout: Path, source: str, path: str, setting: str, seed: int) -> dict:
    cmd = [str(checkout / ".venv" / "bin" / "mmcal"), "fit", path, "--model", "regime", "--source", source,
           "--seed", str(seed), "--no-progress", "--json", *SETTINGS[setting]]
    load0 = _load()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=checkout, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    row = {"checkout": str(checkout), "source": source, "path": path, "setting": setting, "seed": seed,
           "process_wall_s": wall, "load_before": load0, "load_after": _load(), "rc": p.returncode}
    if p.returncode != 0:
        row["error"] = p.stderr[-2000:]
        return row
    doc = json.loads(p.stdout)
    d = doc["diagnostics"]
    row.update({"fit_wall_s": doc["wall_s"], "sampling_wall_s": doc["sampler"]["wall_s"], "n_obs": doc["n_obs"],
                "min_ess_bulk": d["ess_bulk_min"], "min_ess_tail": d.get("ess_tail_min"),
                "max_r_hat": d["r_hat_max"], "divergences": d["divergences"],
                "ess_bulk_per_s": d["ess_bulk_min"] / doc["wall_s"], "gate_passed": doc["gate"]["passed"],
                "model_version": doc.get("model_version")})
    return row


def _write(out: Path, a, rows: list) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(a).items()},
                               "cpu_count": os.cpu_count(), "rows": rows}, indent=2))
    os.replace(tmp, out)


def _med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else float("nan")


def bench_fits(a) -> list[dict]:
    after, before = Path(a.after).resolve(), Path(a.before).resolve()
    rows: list[dict] = []
    data = [d.split(":", 1) for d in a.data]
    for rep in range(a.repeats):
        for source, path in data:
            for setting in a.settings.split(","):
                order = (before, after) if rep % 2 == 0 else (after, before)
                for checkout in order:
                    r = _fit(checkout, source, str(Path(path).resolve()), setting, a.seed + rep)
                    r["which"] = "after" if checkout == after else "before"
                    r["repeat"] = rep
                    rows.append(r)
                    _write(Path(a.out), a, rows)
                    print(json.dumps({k: v for k, v in r.items() if k != "error"}), file=sys.stderr, flush=True)
                    if r["rc"] != 0:
                        print(r["error"], file=sys.stderr, flush=True)
    print("| data | setting | bars | before: wall s | after: wall s | wall ratio | before: min ESS bulk / s "
          "| after: min ESS bulk / s | ESS/s ratio | after: max r_hat, div | load (1 min) | n |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|")
    for source, path in data:
        for setting in a.settings.split(","):
            sel = [r for r in rows if r["source"] == source and r["path"] == str(Path(path).resolve())
                   and r["setting"] == setting and r["rc"] == 0]
            b = [r for r in sel if r["which"] == "before"]
            f = [r for r in sel if r["which"] == "after"]
            if not b or not f:
                continue
            loads = [r["load_before"] for r in sel] + [r["load_after"] for r in sel]
            print(f"| {source} | {setting} | {f[0]['n_obs']:,} | {_med(b, 'fit_wall_s'):.1f} | "
                  f"{_med(f, 'fit_wall_s'):.1f} | {_med(b, 'fit_wall_s') / _med(f, 'fit_wall_s'):.1f}x | "
                  f"{_med(b, 'ess_bulk_per_s'):.2f} | {_med(f, 'ess_bulk_per_s'):.2f} | "
                  f"{_med(f, 'ess_bulk_per_s') / _med(b, 'ess_bulk_per_s'):.1f}x | "
                  f"{max(r['max_r_hat'] for r in f):.3f}, {max(r['divergences'] for r in f)} | "
                  f"{min(loads):.1f}-{max(loads):.1f} | {len(b)}+{len(f)} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    g = sub.add_parser("grad", help="value + gradient alone")
    g.add_argument("--bars", default="360,780,8640")
    g.add_argument("--seed", type=int, default=3)
    g.add_argument("--repeats", type=int, default=5)
    g.add_argument("--out", default="artifacts/benchmarks/regime_grad.json")
    f = sub.add_parser("fits", help="mmcal fit --model regime, two checkouts interleaved")
    f.add_argument("--before", required=True, help="checkout to compare against (with its own .venv)")
    f.add_argument("--after", default=".", help="checkout measured (default: this one)")
    f.add_argument("--data", action="append", required=True, help="source:path (repeatable)")
    f.add_argument("--settings", default="default,small", help=f"comma-separated, of {sorted(SETTINGS)}")
    f.add_argument("--repeats", type=int, default=3)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out", default="artifacts/benchmarks/regime_fits.json")
    a = ap.parse_args()
    rows = bench_grad(a) if a.what == "grad" else bench_fits(a)
    if a.what == "grad":
        _write(Path(a.out), a, rows)


if __name__ == "__main__":
    main()
