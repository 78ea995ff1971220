"""Many assets on a real Dask cluster: assets per hour with 1 and 2 workers.

    .venv/bin/python -P benchmarks/dask_assets.py [--assets 16] [--workers 1,2] [--durations 300,600,900,1200]

Simulates ``--assets`` synthetic markets (seeds 100, 101, ...; durations cycling through
``--durations`` seconds) into one folder, one subfolder each (``mmcal simulate --asset``).
Then, per worker count W: a cluster of separate processes (``dask scheduler`` and W
single-threaded ``dask worker`` processes, :class:`flows.cluster.ProcessCluster`), a
fresh MLflow store and artifacts folder (no fit is a cache hit), and the command a user
runs, verbatim::

    MMCAL_DASK_ADDRESS=tcp://... mmcal calibrate DIR --source synthetic --asset SYN00 ... \
        --task-runner dask --parallel-assets W --sampler numpyro --chains 2 --draws D --tune D --json

(``--parallel-assets``: one asset at a time per single-threaded worker unless told
otherwise), with every process reporting to one Prefect API (this process's temporary one, as a
Prefect server would be). Measured: wall time, assets per hour, and the records --
every asset's MLflow run FINISHED with a registered version 1 (alias challenger), every
``calibrate-asset`` Prefect flow run and its task runs COMPLETED. Small sampler
settings and a loose gate (the point is throughput, not converged posteriors; the same
settings as the flow tests): the numbers scale with draws. The processes' output is
kept in ``OUT/w<W>/dask-logs``. Writes
artifacts/benchmarks/dask_assets.json and prints a markdown table for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LOOSE_GATE = ["--max-r-hat", "2.0", "--min-ess", "3"]


def simulate(root: Path, n: int, durations: list[float]) -> list[str]:
    from models.data.synthetic import SyntheticConfig, simulate_market, write_market

    assets = []
    for i in range(n):
        name = f"SYN{i:02d}"
        d = root / name
        if not (d / "truth.json").is_file():
            write_market(simulate_market(seed=100 + i, duration_s=durations[i % len(durations)],
                                         config=SyntheticConfig(asset=name)), d)
        assets.append(name)
    return assets


def records(store: str, assets: list[str], since: datetime) -> dict:
    """What MLflow and Prefect hold for this run: counts of complete records."""
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterStartTime

    c = MlflowClient(tracking_uri=store, registry_uri=store)
    exp = c.get_experiment_by_name("mm-calibration")
    runs = c.search_runs([exp.experiment_id], filter_string="tags.`mlflow.parentRunId` IS NULL") if exp else []
    finished = {r.data.tags.get("asset") or r.data.params.get("asset") for r in runs if r.info.status == "FINISHED"}
    registered = 0
    for a in assets:
        try:
            registered += int(c.get_model_version_by_alias(f"mm-priors-{a}", "challenger").version) == 1
        except Exception:  # noqa: BLE001 - a missing model or alias counts as not registered
            pass
    with get_client(sync_client=True) as pc:
        flows = pc.read_flow_runs(flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)),
                                  limit=200)
        subs = [r for r in flows if r.name.startswith(tuple(f"calibrate-{a}-" for a in assets))]
        tasks = []
        for k in range(0, len(subs), 20):
            tasks += pc.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(
                any_=[r.id for r in subs[k:k + 20]])), limit=200)
    return {"mlflow_runs_finished": len(finished & set(assets)), "registered_v1": registered,
            "prefect_asset_flows_completed": sum(r.state_type.value == "COMPLETED" for r in subs),
            "prefect_task_runs": len(tasks),
            "prefect_task_runs_completed": sum(t.state_type.value == "COMPLETED" for t in tasks)}


def one(markets: Path, assets: list[str], workers: int, out: Path, draws: int, parallel: int) -> dict:
    from flows.cluster import ProcessCluster

    work = out / f"w{workers}"
    shutil.rmtree(work, ignore_errors=True)  # a fresh store and fit cache: no fit is a cache hit
    work.mkdir(parents=True)
    store = f"sqlite:///{work / 'mlflow.db'}"
    env = {"MLFLOW_TRACKING_URI": store, "MMCAL_ARTIFACTS": str(work / "artifacts")}
    env.pop("MLFLOW_REGISTRY_URI", None)
    os.environ.update(env)
    since = datetime.now(timezone.utc)
    with ProcessCluster(n_workers=workers, env=env, log_dir=work / "dask-logs") as cluster:
        cmd = [str(REPO / ".venv/bin/mmcal"), "calibrate", str(markets), "--source", "synthetic",
               *[x for a in assets for x in ("--asset", a)], "--task-runner", "dask",
               "--parallel-assets", str(parallel or workers), "--sampler", "numpyro", "--chains", "2",
               "--draws", str(draws), "--tune", str(draws), *LOOSE_GATE, "--no-plots", "--json"]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=REPO, env={**os.environ, **env, "MMCAL_DASK_ADDRESS": cluster.address},
                           capture_output=True, text=True)
        wall = time.perf_counter() - t0
    if p.returncode != 0:  # the row still says what was recorded; the logs are in work/dask-logs
        print(f"mmcal calibrate exited {p.returncode} ({len(assets)} assets, {workers} workers):\n"
              f"{p.stderr[-4000:]}", file=sys.stderr)
    rec = records(store, assets, since)
    load = os.getloadavg()
    return {"exit_code": p.returncode, "workers": workers, "parallel_assets": parallel or workers, "assets": len(assets),
            "wall_s": round(wall, 1),
            "assets_per_hour": round(len(assets) / wall * 3600, 1), "load_avg_1_5_15": [round(x, 2) for x in load],
            **rec}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=16)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--durations", default="300,600,900,1200")
    ap.add_argument("--draws", type=int, default=150)
    ap.add_argument("--parallel-assets", type=int, default=0,
                    help="asset calibrations at a time (0: one per worker)")
    ap.add_argument("--out", default=str(REPO / "artifacts/benchmarks/dask"))
    a = ap.parse_args()
    out = Path(a.out)
    markets = out / "markets"
    assets = simulate(markets, a.assets, [float(x) for x in a.durations.split(",")])
    import flows  # noqa: F401 - the set-up point (Prefect home under the artifacts folder)
    from flows.cluster import share_prefect_api

    share_prefect_api()
    doc = {"machine": {"cpus": os.cpu_count()}, "draws": a.draws, "durations_s": a.durations, "rows": []}
    rows = doc["rows"]
    (REPO / "artifacts/benchmarks").mkdir(parents=True, exist_ok=True)
    for w in a.workers.split(","):  # written after each worker count: a stopped run keeps what it measured
        rows.append(one(markets, assets, int(w), out, a.draws, a.parallel_assets))
        (REPO / "artifacts/benchmarks/dask_assets.json").write_text(json.dumps(doc, indent=2))
    print("| workers | assets at a time | exit | assets | wall (s) | assets / h | MLflow runs finished | registered v1 | "
          "Prefect asset flows completed | task runs completed | load (1/5/15 min) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['parallel_assets']} | {r['exit_code']} | {r['assets']} | {r['wall_s']} | {r['assets_per_hour']} | "
              f"{r['mlflow_runs_finished']}/{r['assets']} | {r['registered_v1']}/{r['assets']} | "
              f"{r['prefect_asset_flows_completed']}/{r['assets']} | "
              f"{r['prefect_task_runs_completed']}/{r['prefect_task_runs']} | "
              f"{' / '.join(str(x) for x in r['load_avg_1_5_15'])} |")


if __name__ == "__main__":
    main()
