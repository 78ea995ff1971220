"""Scaling: fit wall time and peak memory against the number of arrivals.

    .venv/bin/python -P benchmarks/scaling.py --sizes 1h,6h,24h,72h,aapl --targets calibrate,regime,alpha,kappa,hawkes,fills \
        --inference auto,nuts [--repeats 1]
    .venv/bin/python -P benchmarks/scaling.py --report          # table + log-log plot from what was measured

Markets: busy synthetic markets of 1, 6, 24 and 72 hours -- :meth:`SyntheticConfig.busy`
(n = [[0.3, 0.1], [0.1, 0.3]], beta = 1/s) with every arrival rate times ``--rate-scale``
(default 5: ~25k arrivals per hour, so ~0.6M in 24 h and ~1.8M in 72 h; the plain busy
profile has ~5k per hour, 0.36M in 72 h), seed 11 -- written once under
``--out``/markets, and the LOBSTER AAPL sample day (``aapl``: the whole day,
``--source lobster``).

A point is one command a user runs, in a child process, with the defaults (nutpie,
4 chains x 1000 draws + 1000 tune, gate R-hat 1.01 / ESS 400):

* ``calibrate``: ``mmcal calibrate PATH --source S --inference I --json`` -- every model
  of the catalog the data supports, gated, tracked in MLflow, registered -- with a fresh
  MLflow store, artifacts folder and Prefect home per run (no fit is a cache hit);
* a model name: ``mmcal fit PATH --model M --source S --inference I --json``.

``--bars ESTIMATOR@SECONDS`` (e.g. ``realized@30``) adds ``--volatility-estimator
ESTIMATOR --bar-seconds SECONDS`` to the command; ``default`` (the default) leaves the
volatility bars to the data's default rules. On the busy markets the default bars (MedRV,
10 s) are a mixture within regimes and the regime fit fails its gate from 6 h on
(docs/models/regime.md, "Persistence"); their times are not those of a usable fit.

Measured: wall time of the child, its CPU time (user + system of the child and every
descendant it waited for: ``getrusage(RUSAGE_CHILDREN)``; on a machine shared with
other jobs the CPU time is the steadier number), peak memory (the largest sum of RSS over the child's
process tree -- the temporary Prefect server included -- polled every 0.2 s with
psutil), the sampling time the command reports (per model, for ``calibrate``), the
number of arrivals (the Hawkes model's events), the inference each fit used and the
load average before and after. Every run is appended to
``artifacts/benchmarks/scaling.jsonl`` (a point already measured ``--repeats`` times is
skipped, so an interrupted run resumes); ``--report`` prints the markdown tables
(medians over the repeats) and writes the log-log plot (``--plot``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

AAPL = REPO / "../shared/data/lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip"
MODELS = ("regime", "alpha", "kappa", "hawkes", "fills")
HOURS = {"1h": 1, "6h": 6, "24h": 24, "72h": 72}


def market(size: str, out: Path, rate_scale: float) -> tuple[Path, str, dict]:
    """(path, source, facts) of one market; the synthetic ones are simulated once."""
    if size == "aapl":
        return AAPL.resolve(), "lobster", {"market": "LOBSTER AAPL 2012-06-21 (whole day)"}
    from models.data.synthetic import SyntheticConfig, simulate_market, write_market

    d = out / "markets" / f"busy_x{rate_scale:g}_{size}"
    facts_file = d / "scaling_facts.json"
    if not facts_file.is_file():
        base = SyntheticConfig.busy()
        cfg = SyntheticConfig.busy(asset="SYN", arrival_rate=tuple(
            tuple(r * rate_scale for r in pair) for pair in base.arrival_rate))
        t0 = time.perf_counter()
        m = simulate_market(11, HOURS[size] * 3600.0, cfg)
        facts = {"market": f"busy synthetic x{rate_scale:g}, {size}", "truth_arrivals": len(m.meta["truth_arrivals"]),
                 "rows": m.row_counts(), "simulate_s": round(time.perf_counter() - t0, 1)}
        write_market(m, d)
        facts_file.write_text(json.dumps(facts))
    return d, "synthetic", json.loads(facts_file.read_text())


def measure(cmd: list[str], env: dict[str, str], poll_s: float = 0.2) -> dict:
    """Run ``cmd``; wall time, peak RSS of its process tree, stdout, exit status."""
    import psutil

    import resource

    load0 = os.getloadavg()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(p.pid)
    peak = 0
    import threading

    out: dict[str, str] = {}
    readers = [threading.Thread(target=lambda k=k, f=f: out.__setitem__(k, f.read()), daemon=True)
               for k, f in (("stdout", p.stdout), ("stderr", p.stderr))]
    for r in readers:
        r.start()
    while p.poll() is None:
        rss = 0
        try:
            for q in [root, *root.children(recursive=True)]:
                try:
                    rss += q.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        peak = max(peak, rss)
        time.sleep(poll_s)
    wall = time.perf_counter() - t0
    for r in readers:
        r.join()
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru.ru_utime - ru0.ru_utime) + (ru.ru_stime - ru0.ru_stime)
    return {"rc": p.returncode, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "peak_rss_mb": round(peak / 2**20),
            "load_before": [round(x, 2) for x in load0], "load_after": [round(x, 2) for x in os.getloadavg()],
            "stdout": out.get("stdout", ""), "stderr": out.get("stderr", "")}


def bar_rule(text: str, flag: str) -> tuple[str, str] | None:
    """A bar rule: ``default`` -> None; ``ESTIMATOR@SECONDS`` -> (estimator, seconds);
    else exits with one line naming ``flag``."""
    if text == "default":
        return None
    est, _, sec = text.partition("@")
    if not est or not sec:
        raise SystemExit(f"{flag}: {text!r} is not 'default' or ESTIMATOR@SECONDS (e.g. realized@30)")
    return est, sec


def bar_args(bars: str) -> list[str]:
    """``--bars`` as mmcal flags: ``default`` -> none; ``ESTIMATOR@SECONDS`` ->
    ``--volatility-estimator ESTIMATOR --bar-seconds SECONDS``."""
    rule = bar_rule(bars, "--bars")
    return [] if rule is None else ["--volatility-estimator", rule[0], "--bar-seconds", rule[1]]


def key(r: dict) -> tuple:
    """A point: target, size, inference and bars (rows before ``--bars``: default)."""
    return r["target"], r["size"], r["inference"], r.get("bars", "default")


def run_point(target: str, size: str, inference: str, out: Path, rate_scale: float, bars: str = "default") -> dict:
    path, source, facts = market(size, out, rate_scale)
    mmcal = str(REPO / ".venv/bin/mmcal")
    env = dict(os.environ)
    tmp = tempfile.mkdtemp(prefix=f"{target}-{size}-{inference}-{bars.replace('@', '')}-", dir=out)
    env.update({"MMCAL_ARTIFACTS": f"{tmp}/artifacts", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
                "PREFECT_HOME": f"{tmp}/prefect"})
    env.pop("MLFLOW_REGISTRY_URI", None)
    env.pop("PREFECT_API_URL", None)
    if target == "calibrate":
        cmd = [mmcal, "calibrate", str(path), "--source", source, "--inference", inference, "--json"]
    else:
        cmd = [mmcal, "fit", str(path), "--model", target, "--source", source, "--inference", inference,
               "--no-progress", "--json"]
    cmd += bar_args(bars)
    r = measure(cmd, env)
    row = {"target": target, "size": size, "inference": inference, "bars": bars, "rate_scale": rate_scale, **facts,
           "cmd": " ".join(cmd[1:]), **{k: r[k] for k in ("rc", "wall_s", "cpu_s", "peak_rss_mb", "load_before",
                                      "load_after")},
           "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                    text=True).stdout.strip()}
    try:
        doc = json.loads(r["stdout"])
    except json.JSONDecodeError:
        row["error"] = (r["stderr"] or r["stdout"])[-2000:]
        return row
    if target == "calibrate":
        row["status"] = doc.get("status")
        row["failures"] = doc.get("failures")
        row["models"] = {m: {"sampling_wall_s": round(v.get("sampling_wall_s") or 0.0, 1), "n_obs": v.get("n_obs"),
                             "inference": v.get("inference"), "psis_khat": v.get("psis_khat"),
                             "gate": (v.get("gate") or {}).get("passed") if isinstance(v.get("gate"), dict)
                             else v.get("gate")}
                         for m, v in doc.get("models", {}).items()}
        hawkes = row["models"].get("hawkes", {})
        row["arrivals"] = hawkes.get("n_obs")
    else:
        s = doc.get("sampler", {})
        row.update({"n_obs": doc.get("n_obs"), "sampling_wall_s": round(s.get("wall_s") or 0.0, 1),
                    "fit_wall_s": round(doc.get("wall_s") or 0.0, 1), "used": s.get("inference"),
                    "psis_khat": s.get("psis_khat"), "gate": doc.get("gate", {}).get("passed"),
                    "failures": doc.get("gate", {}).get("failures")})
    return row


def load_rows(jsonl: Path) -> list[dict]:
    return [json.loads(x) for x in jsonl.read_text().splitlines() if x.strip()] if jsonl.is_file() else []


def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _fmt(x, nd=0):
    return "—" if x is None else f"{x:,.{nd}f}"


def report(rows: list[dict], plot: Path | None) -> None:
    arrivals = {}
    for r in rows:  # the market's arrivals: the Hawkes model's events, wherever measured, else the generator's
        n = r.get("arrivals") or (r.get("n_obs") if r["target"] == "hawkes" else None) or r.get("truth_arrivals")
        if n:
            arrivals[r["size"]] = n
    sizes = [s for s in ("1h", "6h", "24h", "72h", "aapl") if any(r["size"] == s for r in rows)]
    bar_rules = sorted({key(r)[3] for r in rows}, key=lambda b: (b != "default", b))
    print("| market | arrivals | target | inference | bars | runs | wall s (median) | CPU s | sampling s | peak RSS MB | "
          "used (k̂) | gate | load before → after |")
    print("|---|---:|---|---|---|---:|---:|---:|---:|---:|---|---|---|")
    for s in sizes:
        for t, inf, b in ((t, inf, b) for t in ("calibrate", *MODELS) for inf in ("nuts", "auto") for b in bar_rules):
            g = [r for r in rows if key(r) == (t, s, inf, b) and "error" not in r]
            if not g:
                continue
            if t == "calibrate":
                samp = _med([sum(m["sampling_wall_s"] for m in r["models"].values()) for r in g])
                used = ", ".join(f"{m}:{v['inference']}" + (f" ({v['psis_khat']:.2f})" if v.get("psis_khat")
                                                           is not None else "")
                                 for m, v in g[-1]["models"].items())
                gate = str(g[-1].get("status"))
            else:
                samp = _med([r["sampling_wall_s"] for r in g])
                k = g[-1].get("psis_khat")
                used = f"{g[-1].get('used')}" + (f" ({k:.2f})" if k is not None else "")
                gate = "; ".join("pass" if r.get("gate") else "fail" for r in g)
            loads = "; ".join(f"{r['load_before'][0]:.1f} → {r['load_after'][0]:.1f}" for r in g)
            print(f"| {s} | {_fmt(arrivals.get(s))} | {t} | {inf} | {b} | {len(g)} | "
                  f"{_fmt(_med([r['wall_s'] for r in g]), 1)} | {_fmt(_med([r.get('cpu_s') for r in g]), 1)} | "
                  f"{_fmt(samp, 1)} | {_fmt(_med([r['peak_rss_mb'] for r in g]))} | {used} | {gate} | {loads} |")
    calib = [r for r in rows if r["target"] == "calibrate" and "models" in r]
    if calib:
        print("\nPer model inside `mmcal calibrate` (sampling s, median):\n")
        print("| market | inference | bars | " + " | ".join(MODELS) + " |")
        print("|---|---|---|" + "---:|" * len(MODELS))
        for s in sizes:
            for inf, b in ((inf, b) for inf in ("nuts", "auto") for b in bar_rules):
                g = [r for r in calib if key(r)[1:] == (s, inf, b)]
                if g:
                    print(f"| {s} | {inf} | {b} | " + " | ".join(
                        _fmt(_med([r["models"].get(m, {}).get("sampling_wall_s") for r in g]), 1) for m in MODELS) + " |")
    errors = [r for r in rows if "error" in r]
    for r in errors:
        print(f"\nerror: {r['target']} {r['size']} {r['inference']}: {r['error'][-300:]}")
    if plot is not None:
        _plot(rows, arrivals, plot)


def _plot(rows, arrivals, plot: Path) -> None:
    import matplotlib
    from matplotlib.ticker import NullFormatter

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = {}
    for t, inf, b in sorted({key(r)[:1] + key(r)[2:] for r in rows}):
        pts = sorted((arrivals[s], _med([r["wall_s"] for r in rows if key(r) == (t, s, inf, b) and "error" not in r]))
                     for s in {r["size"] for r in rows} if s in arrivals and s != "aapl")
        pts = [(n, w) for n, w in pts if w is not None]
        if pts:
            lines[t, inf, b] = pts
    if not any(len(pts) >= 2 for pts in lines.values()):  # one size (or AAPL alone) is no curve
        print("\nplot: fewer than two synthetic sizes measured for every target; not written")
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=90)

    def failed(r):  # the gate refused the fit (or the calibration registered nothing)
        return r.get("status") != "registered" if r["target"] == "calibrate" else r.get("gate") is False

    bad = [(arrivals[r["size"]], r["wall_s"]) for r in rows
           if failed(r) and "error" not in r and r["size"] in arrivals and r["size"] != "aapl"]
    for (t, inf, b), pts in lines.items():
        ax.plot(*zip(*pts), "-" if inf == "nuts" else "--", marker="o" if t == "calibrate" else ".",
                lw=2 if t == "calibrate" else 1, label=f"{t} ({inf}" + ("" if b == "default" else f", {b}") + ")")
    if bad:
        ax.plot(*zip(*bad), "x", color="black", ms=7, ls="none", label="gate failed")
    for (n, w, lab) in (((5e5, 600, "24 h target: 10 min")),):
        ax.axhline(w, color="grey", lw=0.6, ls=":")
        ax.text(min(n for pts in lines.values() for n, _ in pts), w * 1.07, lab, fontsize=7, color="grey")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels overlap
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("arrivals in the market (Hawkes events)")
    ax.set_ylabel("wall time, s (median)")
    ax.set_title("mmcal fit / calibrate wall time vs N (busy synthetic)", fontsize=9)
    ax.legend(fontsize=6, ncol=1, loc="upper right")
    fig.tight_layout()
    plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(plot)
    print(f"\nplot: {plot}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1h,6h,aapl", help="comma-separated: 1h, 6h, 24h, 72h, aapl")
    ap.add_argument("--targets", default="calibrate", help="calibrate and/or model names, comma-separated")
    ap.add_argument("--inference", default="auto,nuts")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--rate-scale", type=float, default=5.0)
    ap.add_argument("--bars", default="default", help="default, or ESTIMATOR@SECONDS (e.g. realized@30): "
                                                      "--volatility-estimator and --bar-seconds of the command")
    ap.add_argument("--out", default=str(REPO / "artifacts/benchmarks/scaling"))
    ap.add_argument("--report", action="store_true", help="only print the tables (and write the plot)")
    ap.add_argument("--plot", default=str(REPO / "benchmarks/scaling.png"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    jsonl = REPO / "artifacts/benchmarks/scaling.jsonl"
    if not a.report:
        bar_args(a.bars)  # checked before any run
        for size in a.sizes.split(","):
            for target in a.targets.split(","):
                for inf in a.inference.split(","):
                    done = [r for r in load_rows(jsonl) if key(r) == (target, size, inf, a.bars) and "error" not in r]
                    for _ in range(a.repeats - len(done)):
                        row = run_point(target, size, inf, out, a.rate_scale, a.bars)
                        with jsonl.open("a") as f:
                            f.write(json.dumps(row) + "\n")
                        print(json.dumps({k: v for k, v in row.items() if k not in ("cmd", "models")}), flush=True)
    report(load_rows(jsonl), Path(a.plot) if a.plot else None)


if __name__ == "__main__":
    main()
