"""Memory of one long-lived process that calibrates assets one after another (a Dask
worker's life): resident memory and memory mappings after each asset, by when JAX's
compiled code is dropped.

    .venv/bin/python -P benchmarks/worker_memory.py [--assets 6] [--clear none,asset,auto]

Each ``--clear`` mode runs in a fresh child process, the modes side by side (memory,
not time, is measured): ``flows.calibrate.run_calibration`` on the synthetic markets
that ``dask_assets.py`` simulates (``--markets``; simulated here when missing), in a
row, with the benchmark's sampler settings (numpyro, 2 chains x 150 + 150) and a fresh
MLflow store and artifacts folder. Modes: ``none`` -- nothing released (the project's
``models.sampling.releasing_fit_memory`` switched off in the child: no clear, no heap
trim); ``asset`` -- ``jax.clear_caches()`` and ``gc.collect()`` after each asset,
nothing in between; ``auto`` -- the project's rule. After each
asset the child prints its resident set size (psutil) and its
number of memory mappings (``/proc/self/maps``; the kernel refuses an mmap beyond
``vm.max_map_count``, and XLA's compiler then aborts: "LLVM ERROR: Unable to allocate
section memory"). Prints a markdown table and writes artifacts/benchmarks/worker_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SAMPLER = {"sampler": "numpyro", "chains": 2, "draws": 150, "tune": 150}
GATE = {"max_r_hat": 2.0, "min_ess_bulk": 3, "min_ess_tail": 3}  # dask_assets.LOOSE_GATE


def child(markets: str, assets: list[str], clear: str) -> None:
    import gc

    import psutil

    import flows  # noqa: F401 - the set-up point
    from flows.calibrate import run_calibration
    from models import sampling

    if clear in ("none", "asset"):  # the project's release switched off
        sampling._release_due = lambda last: False
        sampling._trim_heap = lambda: None
    for a in assets:
        doc = run_calibration("synthetic", markets, a, sampler=SAMPLER, gate=GATE, plots=False)
        if clear == "asset":
            import jax

            jax.clear_caches()
            gc.collect()
        m = sampling.memory_maps()
        rss_mb = round(psutil.Process().memory_info().rss / 2**20)
        print(json.dumps({"asset": a, "status": doc["status"], "rss_mb": rss_mb, "maps": m[0] if m else None}),
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=6)
    ap.add_argument("--clear", default="none,asset,auto")
    ap.add_argument("--markets", default=str(REPO / "artifacts/benchmarks/dask/markets"))
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    a = ap.parse_args()
    assets = [f"SYN{i:02d}" for i in range(a.assets)]
    if a.child:
        child(a.markets, assets, a.child)
        return
    if not all((Path(a.markets) / x / "truth.json").is_file() for x in assets):
        from benchmarks.dask_assets import simulate

        simulate(Path(a.markets), a.assets, [300.0, 600.0, 900.0, 1200.0])
    doc = {"assets": assets, "sampler": SAMPLER, "max_map_count": int(Path("/proc/sys/vm/max_map_count").read_text()),
           "modes": {}}
    with tempfile.TemporaryDirectory(prefix="mmcal-mem-") as tmp:
        procs = {}
        for mode in a.clear.split(","):  # side by side: memory, not time, is measured
            d = Path(tmp) / mode
            d.mkdir()
            env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{d}/mlflow.db", "MMCAL_ARTIFACTS": str(d)}
            env.pop("MLFLOW_REGISTRY_URI", None)
            procs[mode] = subprocess.Popen([sys.executable, "-P", __file__, "--assets", str(a.assets),
                                            "--markets", a.markets, "--child", mode], cwd=REPO, env=env,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for mode, p in procs.items():
            out, err = p.communicate()
            rows = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
            if p.returncode != 0:
                print(f"mode {mode}: exited {p.returncode}:\n{err[-3000:]}", file=sys.stderr)
            doc["modes"][mode] = {"exit_code": p.returncode, "rows": rows}
    out = REPO / "artifacts/benchmarks/worker_memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    print("| clear between assets | " + " | ".join(assets) + " |")
    print("|---|" + "---|" * len(assets))
    for mode, m in doc["modes"].items():
        print(f"| {mode}: RSS MB / memory maps | "
              + " | ".join(f"{r['rss_mb']:,} / {r['maps']:,}" for r in m["rows"]) + " |")


if __name__ == "__main__":
    main()
