"""Coverage of estimators written independently of the fills model, on the markets of
the fills coverage study (``coverage_study.py --models fills``): is a shortfall of the
posterior's coverage on a block of seeds the model's, or those seeds'?

    .venv/bin/python -P benchmarks/fills_reference.py --seed0 1000 --seeds 20 --duration 600 \
        [--compare coverage_fills.json]

Per seed, on the same queue orders (:func:`models.fills.observations`, true regime path):

* **hazard**: the piecewise-exponential proportional-hazards MLE (Holford 1980; Laird &
  Olivier 1981: a Poisson GLM of the fill indicators per hazard piece with the
  exposure as offset), fitted by Newton-Raphson; Wald intervals on the log scale from
  the inverse Fisher information;
* **markout means and slopes**: per horizon, feasible GLS of the cumulative markout on
  regime dummies and the three covariates, weights from each regime's residual
  variance; Wald intervals;
* **markout increment sds**: per horizon, OLS of the increment on regime dummies and
  covariates; chi-square interval of each regime's residual sd.

Only the regimes the market visits (with > 5 fills) are scored. Pooled 90 % coverage
with two intervals: Wilson (pairs treated as independent) and a bootstrap over seeds
(the parameters of one market share its data, so the seed is the independent unit).
``--compare`` scores the posterior of a coverage-study JSON on the same (seed,
parameter) pairs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

Z90 = 1.6448536269514722
MIN_FILLS = 5


def hazard_mle(E: np.ndarray, D: np.ndarray, R: np.ndarray, X: np.ndarray, keep: list[int],
               iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Poisson-GLM MLE of log hazard per kept regime, log piece ratios (pieces 1..),
    covariate coefficients; returns (estimate, covariance). ``E``, ``D`` (n, P)."""
    n, P = E.shape
    cols = [(R == r).astype(float) for r in keep]
    rows_X, rows_y, rows_off = [], [], []
    for p in range(P):
        m = E[:, p] > 0
        piece = np.zeros((m.sum(), P - 1))
        if p > 0:
            piece[:, p - 1] = 1.0
        rows_X.append(np.column_stack([c[m] for c in cols] + [piece, X[m]]))
        rows_y.append(D[m, p])
        rows_off.append(np.log(E[m, p]))
    A, y, off = np.vstack(rows_X), np.concatenate(rows_y), np.concatenate(rows_off)
    b = np.zeros(A.shape[1])
    b[:len(keep)] = np.log(max(y.sum(), 1.0) / np.exp(off).sum())
    for _ in range(iters):
        mu = np.exp(off + A @ b)
        info = A.T @ (A * mu[:, None])
        step = np.linalg.solve(info, A.T @ (y - mu))
        b = b + step
        if np.max(np.abs(step)) < 1e-10:
            break
    mu = np.exp(off + A @ b)
    return b, np.linalg.inv(A.T @ (A * mu[:, None]))


def _wls(A: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    info = A.T @ (A * w[:, None])
    return np.linalg.solve(info, A.T @ (w * y)), np.linalg.inv(info)


def reference(seed: int, duration_s: float) -> dict[str, dict[str, float]]:
    """{param: {"z", "in90"}} of the independent estimators on one market (module docstring)."""
    from scipy.stats import chi2

    from models import fills as fm
    from models.data.synthetic import simulate_market
    from mm_runtime.vocabulary import REGIMES, horizon_label, piece_labels

    market = simulate_market(seed, duration_s)
    truth = market.truth["params"]
    obs = fm.observations(market, np.asarray(market.truth["regime_path"]))
    d = fm.design(obs, fm.FillsConfig())
    R = obs.regime
    out: dict[str, dict[str, float]] = {}

    def score(name: str, est: float, se: float, log: bool = False) -> None:
        t = np.log(truth[name]) if log else truth[name]
        z = (t - est) / se
        out[name] = {"z": float(z), "in90": bool(abs(z) < Z90)}

    f = obs.filled
    keep = [r for r in range(len(REGIMES)) if (f & (R == r)).sum() > MIN_FILLS]
    b, cov = hazard_mle(d["E"], d["D"], R, d["X"], keep)
    se = np.sqrt(np.diag(cov))
    names = ([f"fill_hazard[{REGIMES[r]}]" for r in keep]
             + [f"fill_piece_ratio[{lab}]" for lab in piece_labels(fm.FillsConfig().cuts_s())[1:]])
    for i, nm in enumerate(names):
        score(nm, b[i], se[i], log=True)
    for i, nm in enumerate(("fill_queue_coef", "fill_level_coef", "fill_imbalance_coef")):
        score(nm, b[len(names) + i], se[len(names) + i])

    Xf, Rf = d["X"][f], R[f]
    for j, h in enumerate(obs.horizons_s):
        hl = horizon_label(h)
        y = obs.markout_bps[f][:, j]
        ok = np.isfinite(y)
        kj = [r for r in keep if (ok & (Rf == r)).sum() > MIN_FILLS]
        A = np.column_stack([(Rf == r).astype(float) for r in kj] + [Xf])[ok]
        b0, _ = _wls(A, y[ok], np.ones(ok.sum()))
        e, v = y[ok] - A @ b0, np.ones(ok.sum())
        for r in kj:
            s = Rf[ok] == r
            v[s] = e[s].var()
        b1, c1 = _wls(A, y[ok], 1.0 / v)
        se1 = np.sqrt(np.diag(c1))
        nm = [f"markout_mean_bps[{REGIMES[r]},{hl}]" for r in kj] + [
            f"markout_{c}_bps[{hl}]" for c in ("queue", "level", "imbalance")]
        for i, n_ in enumerate(nm):
            score(n_, b1[i], se1[i])
        # increment sds: OLS of the increment, chi-square interval per regime
        prev = obs.markout_bps[f][:, j - 1] if j else np.zeros(len(y))
        inc = y - prev
        ok2 = np.isfinite(inc)
        A2 = np.column_stack([(Rf == r).astype(float) for r in kj] + [Xf])[ok2]
        b2, _ = _wls(A2, inc[ok2], np.ones(ok2.sum()))
        e2 = inc[ok2] - A2 @ b2
        for r in kj:
            s = Rf[ok2] == r
            dof = max(int(s.sum()) - 1 - round(Xf.shape[1] * s.sum() / len(s)), 1)   # slopes shared
            ss = float((e2[s] ** 2).sum())
            lo, hi = np.sqrt(ss / chi2.ppf(0.95, dof)), np.sqrt(ss / chi2.ppf(0.05, dof))
            t = truth[f"markout_sd_bps[{REGIMES[r]},{hl}]"]
            est = np.sqrt(ss / dof)
            out[f"markout_sd_bps[{REGIMES[r]},{hl}]"] = {
                "z": float((t - est) / (est / np.sqrt(2 * dof))), "in90": bool(lo <= t <= hi)}
    return out


def pooled(per_seed: dict[int, dict[str, dict[str, float]]], n_boot: int = 4000) -> dict[str, float]:
    """Pooled 90 % coverage with a Wilson and a seed-bootstrap 95 % interval."""
    from scipy.stats import binomtest

    seeds = sorted(per_seed)
    k = np.array([sum(v["in90"] for v in per_seed[s].values()) for s in seeds], float)
    n = np.array([len(per_seed[s]) for s in seeds], float)
    w = binomtest(int(k.sum()), int(n.sum()), 0.9).proportion_ci(0.95, method="wilson")
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(seeds), (n_boot, len(seeds)))
    boot = k[idx].sum(1) / n[idx].sum(1)
    return {"k": int(k.sum()), "n": int(n.sum()), "cov": float(k.sum() / n.sum()),
            "wilson": (float(w.low), float(w.high)),
            "boot": (float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))),
            "z_sd": float(np.std([v["z"] for s in seeds for v in per_seed[s].values()], ddof=1))}


def posterior_on(path: Path, per_seed: dict[int, dict[str, dict[str, float]]],
                 duration_s: float) -> dict[int, dict[str, dict[str, float]]]:
    """The coverage study's fills posteriors on the reference's (seed, parameter) pairs."""
    runs = json.loads(path.read_text())["runs"]
    post: dict[int, dict[str, dict[str, float]]] = {}
    for r in runs:
        if r["model"] != "fills" or r["seed"] not in per_seed or float(r["duration_s"]) != duration_s:
            continue
        post[r["seed"]] = {k: {"z": r["params"][k]["z"], "in90": r["params"][k]["in90"]}
                           for k in per_seed[r["seed"]] if k in r["params"]}
    return post


def _line(label: str, p: dict[str, float]) -> str:
    return (f"| {label} | {p['k']}/{p['n']} = {p['cov']:.1%} | [{p['wilson'][0]:.1%}, {p['wilson'][1]:.1%}] "
            f"| [{p['boot'][0]:.1%}, {p['boot'][1]:.1%}] | {p['z_sd']:.2f} |")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed0", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--compare", type=Path, action="append", default=[],
                    help="coverage-study JSON(s) with fills runs on these seeds")
    args = ap.parse_args(argv)
    seeds = range(args.seed0, args.seed0 + args.seeds)
    ref = {s: reference(s, args.duration) for s in seeds}
    print("| estimator | 90 % coverage | Wilson 95 % | seed bootstrap 95 % | sd of z |")
    print("|---|---|---|---|---|")
    print(_line(f"MLE / FGLS, seeds {seeds[0]}..{seeds[-1]}", pooled(ref)))
    for path in args.compare:
        post = posterior_on(path, ref, args.duration)
        if not post:
            print(f"{path}: no fills runs of {args.duration:g} s markets on these seeds", file=sys.stderr)
            continue
        print(_line(f"posterior ({path.name}), {len(post)} seeds", pooled(post)))
        print(_line("MLE / FGLS on the same seeds", pooled({s: ref[s] for s in post})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
