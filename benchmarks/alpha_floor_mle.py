"""Independent check of alpha's floor on real data: maximum likelihood (scipy) of
alpha_r(delta) with and without a floor on the passive fills of LOBSTER AMZN_1 and
GOOG_1, the likelihood-ratio statistic, the informed share by depth against both
fitted curves, and the distance of the MLE from ``mmcal fit --model alpha``'s
posterior means (in posterior sd).

    .venv/bin/python benchmarks/alpha_floor_mle.py                 # AMZN_1, GOOG_1
    .venv/bin/python benchmarks/alpha_floor_mle.py --datasets amzn --draws 500
    .venv/bin/python benchmarks/alpha_floor_mle.py --mle-only     # keep the saved posterior

The fills are the models' own alpha observations (``mmcal fit``'s path:
:func:`flows.fitting.observation_config`, default ObservationConfig with the automatic
bar length, EM/MAP regime path); the likelihood below is written from the formulas,
not from the PyMC model: a fill at depth d in regime r is informed with probability

    no floor:  alpha_r(d) = a_r exp(-d / D)                       (DESIGN.md section 4)
    floor:     alpha_r(d) = f + (a_r - f) exp(-d / D),  0 <= f <= min_r a_r

(Bernoulli per fill; the floor's constraint is the model's parametrisation
f = phi min_r a_r, phi in [0, 1]; the unconstrained f in [0, 1) is fitted too, to see
whether the constraint binds; and both again with one alpha_touch for all regimes,
"pooled"). LR = 2 (l_floor - l_nofloor) per fill (untempered)
and with every fill weighted n_sweeps / n_fills (the models' sweep tempering,
docs/models/alpha.md); the null puts f on its boundary, so LR is referred to
0.5 chi2_0 + 0.5 chi2_1 (Self & Liang 1987): 5 % critical value 2.71. The posterior
is :func:`flows.fitting.fit_one` (what ``mmcal fit --json`` prints) with PyMC's NUTS,
2 chains x ``--draws`` draws. Results: benchmarks/README.md ("alpha with a floor").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import optimize, special, stats

DATASETS = {
    "amzn": ("lobster", "../shared/data/lobster/LOBSTER_SampleFile_AMZN_2012-06-21_1.zip", None),
    "goog": ("lobster", "../shared/data/lobster/LOBSTER_SampleFile_GOOG_2012-06-21_1.zip", None),
}
REGIMES = ("low", "normal", "high", "extreme")


def _cells(r, d, y):
    """Fills grouped by (regime, depth): (regime, depth, n, k)."""
    key = np.stack([r.astype(float), d], axis=1)
    u, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.ravel()
    n = np.bincount(inv, minlength=len(u)).astype(float)
    k = np.bincount(inv, weights=y.astype(float), minlength=len(u))
    return u[:, 0].astype(int), u[:, 1], n, k


def _alpha(theta, regs, kind, r, d):
    """alpha per cell from unconstrained theta = [logit a_r (present regimes), log D, (floor coord)]."""
    R = len(regs)
    a = np.full(4, np.nan)
    a[regs] = special.expit(theta[:R])
    D = np.exp(theta[R])
    e = np.exp(-d / D)
    if kind == "none":
        return a[r] * e
    if kind == "constrained":
        f = special.expit(theta[R + 1]) * np.nanmin(a)
    else:
        f = special.expit(theta[R + 1])
    return f + (a[r] - f) * e


def _nll(theta, regs, kind, r, d, n, k):
    p = np.clip(_alpha(theta, regs, kind, r, d), 1e-12, 1 - 1e-12)
    return -float(np.sum(k * np.log(p) + (n - k) * np.log1p(-p)))


def mle(r, d, n, k, kind):
    """Best of several L-BFGS starts; returns the parameters on their natural scale."""
    regs = np.unique(r)
    R = len(regs)
    best = None
    for a0 in (0.1, 0.3):
        for D0 in (2.0, 10.0, 40.0):
            for f0 in ((None,) if kind == "none" else (0.05, 0.5, 0.9)):
                x0 = [special.logit(a0)] * R + [np.log(D0)] + ([] if f0 is None else [special.logit(f0)])
                res = optimize.minimize(_nll, np.array(x0, float), args=(regs, kind, r, d, n, k),
                                        method="L-BFGS-B")
                if best is None or res.fun < best.fun:
                    best = res
    th = best.x
    a = dict(zip([REGIMES[i] for i in regs], special.expit(th[:R]).tolist()))
    out = {"loglik": -best.fun, "alpha_touch": a, "alpha_decay_bps": float(np.exp(th[R]))}
    if kind == "constrained":
        out["alpha_floor"] = float(special.expit(th[R + 1]) * min(a.values()))
    elif kind == "free":
        out["alpha_floor"] = float(special.expit(th[R + 1]))
    out["theta"] = th.tolist()
    return out


def depth_table(r, d, y, fits):
    """Observed informed share per depth of the grid vs each fitted curve (fill-averaged over regimes)."""
    rows = []
    regs = np.unique(r)
    for dep in np.unique(d):
        m = d == dep
        row = {"depth_bps": float(dep), "fills": int(m.sum()), "informed_share": float(y[m].mean())}
        for name, (fit, kind) in fits.items():
            row[name] = float(_alpha(np.asarray(fit["theta"]), regs, kind, r[m], d[m]).mean())
        rows.append(row)
    return rows


def pooled(r, d, y, w) -> dict:
    """The same two fits with one alpha_touch for all regimes (regimes pooled)."""
    cr, cd, cn, ck = _cells(np.zeros_like(r), d, y)
    f = {k: mle(cr, cd, cn, ck, k) for k in ("none", "constrained")}
    lr = 2 * (f["constrained"]["loglik"] - f["none"]["loglik"])
    z = np.zeros_like(r)
    return {"mle": f, "lr": lr, "lr_tempered": lr * w,
            "depth_table": depth_table(z, d, y, {"no_floor": (f["none"], "none"),
                                                 "floor": (f["constrained"], "constrained")})}


def run(ds: str, draws: int, old: dict | None = None) -> dict:
    from flows.fitting import fit_one, observation_config, read_market
    from models import catalog
    from models.sampling import GateConfig, SamplerConfig

    source, path, asset = DATASETS[ds]
    t0 = time.perf_counter()
    market = read_market(source, Path(path), asset)
    cfg = observation_config(market)
    obs = catalog.prepare("alpha", market, "em", config=cfg)
    r, d, y = obs.regime.astype(int), obs.depth_bps, obs.informed
    w = float(obs.weight[0])  # one constant sweep weight per asset
    cr, cd, cn, ck = _cells(r, d, y)
    fits = {k: mle(cr, cd, cn, ck, k) for k in ("none", "constrained", "free")}
    lr = 2 * (fits["constrained"]["loglik"] - fits["none"]["loglik"])
    lr_free = 2 * (fits["free"]["loglik"] - fits["none"]["loglik"])
    mix = lambda x: 0.5 * stats.chi2.sf(x, 1)  # noqa: E731  (0.5 chi2_0 + 0.5 chi2_1 tail)
    doc = {"dataset": ds, "asset": str(market.asset), "n_fills": int(obs.n_fills),
           "sweep_weight": w, "bar_seconds": cfg.bar_seconds,
           "regime_fills": {REGIMES[i]: int(np.sum(r == i)) for i in np.unique(r)},
           "mle": fits, "lr": lr, "lr_tempered": lr * w, "p_lr": mix(lr), "p_lr_tempered": mix(lr * w),
           "lr_free": lr_free, "lr_free_tempered": lr_free * w,
           "depth_table": depth_table(r, d, y, {"no_floor": (fits["none"], "none"),
                                                 "floor": (fits["constrained"], "constrained")}),
           "pooled": pooled(r, d, y, w)}
    if old is not None and "posterior" in old:  # --mle-only: keep the saved posterior
        for k in ("posterior", "posterior_divergences", "posterior_n_obs"):
            doc[k] = old[k]
        return _vs_posterior(doc, fits)
    print(f"[{ds}] {obs.n_fills} fills, sweep weight {w:.3f}; MLE done ({time.perf_counter() - t0:.0f} s); "
          f"sampling ...", file=sys.stderr, flush=True)
    sc = SamplerConfig(sampler="pymc", chains=2, cores=1, draws=draws, tune=draws, seed=1, progressbar=False)
    post = fit_one("alpha", source, Path(path), asset, "em", sc, GateConfig(max_r_hat=1.05, min_ess_bulk=50, min_ess_tail=50))
    doc["posterior"] = {k: {"mean": v["mean"], "sd": v["sd"], "r_hat": v["r_hat"]}
                        for k, v in post["parameters"].items()}
    doc["posterior_divergences"] = post["diagnostics"]["divergences"]
    doc["posterior_n_obs"] = post["n_obs"]
    doc["wall_s"] = time.perf_counter() - t0
    return _vs_posterior(doc, fits)


def _vs_posterior(doc: dict, fits: dict) -> dict:
    z = {}
    mc = fits["constrained"]
    for name, v in [(f"alpha_touch[{k}]", x) for k, x in mc["alpha_touch"].items()] + [
            ("alpha_decay_bps", mc["alpha_decay_bps"]), ("alpha_floor", mc["alpha_floor"])]:
        p = doc["posterior"].get(name)
        if p:
            z[name] = {"mle": v, "post_mean": p["mean"], "post_sd": p["sd"], "z": (v - p["mean"]) / p["sd"]}
    doc["mle_vs_posterior"] = z
    return doc


def report(doc: dict) -> None:
    m = doc["mle"]
    print(f"\n## {doc['asset']} ({doc['dataset']}): {doc['n_fills']:,} passive fills, sweep weight "
          f"{doc['sweep_weight']:.3f}, bars {doc['bar_seconds']:g} s, regimes {doc['regime_fills']}")
    for k in ("none", "constrained", "free"):
        a = ", ".join(f"{r} {v:.3f}" for r, v in m[k]["alpha_touch"].items())
        fl = f", floor {m[k]['alpha_floor']:.3f}" if "alpha_floor" in m[k] else ""
        print(f"  MLE {k:11s}: loglik {m[k]['loglik']:.1f}; alpha_touch {a}; decay {m[k]['alpha_decay_bps']:.2f} bp{fl}")
    print(f"  LR floor vs none: {doc['lr']:.1f} (tempered {doc['lr_tempered']:.1f}; p {doc['p_lr']:.2g} / "
          f"{doc['p_lr_tempered']:.2g}); unconstrained floor: {doc['lr_free']:.1f} ({doc['lr_free_tempered']:.1f})")
    if "pooled" in doc:
        pm = doc["pooled"]
        print(f"  regimes pooled (one alpha_touch): no floor alpha_touch "
              f"{pm['mle']['none']['alpha_touch']['low']:.3f} decay {pm['mle']['none']['alpha_decay_bps']:.2f} bp; "
              f"floor: alpha_touch {pm['mle']['constrained']['alpha_touch']['low']:.3f} decay "
              f"{pm['mle']['constrained']['alpha_decay_bps']:.2f} bp floor {pm['mle']['constrained']['alpha_floor']:.3f}; "
              f"LR {pm['lr']:.1f} (tempered {pm['lr_tempered']:.1f})")
        print("  pooled | depth bp | informed share | no-floor MLE | floor MLE |: " + "; ".join(
            f"{x['depth_bps']:g}: {x['informed_share']:.3f} | {x['no_floor']:.3f} | {x['floor']:.3f}"
            for x in pm["depth_table"]))
    print("  | depth bp | fills | informed share | no-floor MLE | floor MLE |")
    for row in doc["depth_table"]:
        print(f"  | {row['depth_bps']:g} | {row['fills']} | {row['informed_share']:.3f} | {row['no_floor']:.3f} "
              f"| {row['floor']:.3f} |")
    print(f"  posterior (2 chains, divergences {doc['posterior_divergences']}) vs floor MLE:")
    for k, v in doc["mle_vs_posterior"].items():
        print(f"  | {k} | {v['mle']:.4f} | {v['post_mean']:.4f} ± {v['post_sd']:.4f} | {v['z']:+.2f} sd |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="amzn,goog")
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--out", default="artifacts/benchmarks/alpha_floor_mle.json")
    ap.add_argument("--report", action="store_true", help="print the saved results")
    ap.add_argument("--mle-only", action="store_true", help="redo the MLE, keep the saved posterior")
    a = ap.parse_args()
    out = Path(a.out)
    doc = json.loads(out.read_text()) if out.exists() else {}
    if not a.report:
        for ds in a.datasets.split(","):
            doc[ds] = run(ds, a.draws, doc.get(ds) if a.mle_only else None)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(doc, indent=1, default=float))
    for ds in doc:
        report(doc[ds])


if __name__ == "__main__":
    main()
