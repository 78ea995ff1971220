"""Coverage study of the models' posteriors on the synthetic market (issue #3).

For every seed and model: simulate the synthetic market
(:func:`models.data.synthetic.simulate_market`), fit the model, and for every
parameter that is both in the market's truth (``truth["params"]``, flat DESIGN.md
section 8 names) and in the model's posterior, record

* whether the truth lies in the central 90 % and 50 % posterior intervals
  (quantiles 0.05/0.95 and 0.25/0.75 of the pooled draws),
* the z-score ``(truth - posterior mean) / posterior sd`` (> 0: the posterior is
  below the truth),
* the truth's posterior quantile (share of draws below it; uniform on [0, 1]
  for a calibrated posterior),

plus the fit's convergence diagnostics on the exported variables
(:attr:`models.catalog.ModelSpec.summary_vars`), its verdict under the export gate
(:func:`models.sampling.gate`, default :class:`~models.sampling.GateConfig`
unless ``--gate-*`` say otherwise) and its wall time.

How each model is fitted (as in ``tests/models/test_*.py``' end-to-end tests):

* ``alpha``: threshold variant (:func:`models.alpha.fit`) on the market's passive
  fills, regimes = the true regime path. The observed ``informed`` flag is the
  observation rule (markout above a threshold), not the generator's coin, and is
  biased upward by a documented amount (``models/data/synthetic.py``, "What makes
  the observed flag deviate from alpha"); the truth is the generator's
  ``alpha_touch``. The fit's sweep weights shift what it estimates as well
  (``--alpha-estimands`` prints the estimands next to the truth, no fits).
* ``kappa``: :func:`models.kappa.fit` on the market's arrivals, true regime path.
* ``hawkes``: :func:`models.hawkes.fit` on the market's arrivals, true regime path.
* ``fills``: :func:`models.fills.fit` on the market's queue orders (the synthetic
  queue layer's true fill and markout process), true regime path (one-hot).
* ``regime``: :func:`models.regime.fit` on :func:`models.regime.observations`
  (log variance per bar by ``--volatility-estimator``, default the
  ``ObservationConfig`` default; the truth path is not used by the fit). Scored
  against :func:`models.regime.market_truth`: with a jump-robust estimator the
  regimes' ``sigma_bps`` is the truth's ``sigma_diffusion_bps``.
* ``regime-sim``: :func:`models.regime.fit` on bars drawn from the HMM's own
  generative process (:func:`models.regime.simulate`, 360 bars, the synthetic
  market's transition matrix and volatility levels): the recovery check of the
  regime model where it is exactly specified (on the synthetic market itself the
  log realized variance of a regime is a mixture of jump and no-jump bars, so its
  lognormal emission is misspecified there).

A calibrated posterior covers each parameter in 90 % of the seeds (50 % for the
50 % interval), z has mean 0 and sd 1. The pooled coverage of a model is over
all its parameters and seeds; its binomial interval (Wilson, 95 %) treats the
parameter x seed pairs as independent, which they are not within a fit (the
parameters share the data), so it is too narrow: read it as a rough guide. The
interval from resampling whole seeds (bootstrap) is the honest one.

Results go to ``--out`` (JSON, rewritten atomically after every fit). A rerun
with the same settings skips the (seed, model) pairs already there, so a long
run can be interrupted and resumed; records with other settings stay in the
file but are left out of the report (the settings: duration, draws, tune,
chains, sampler, target_accept). ``--report-only`` prints the tables of an
existing file. The report is printed with rich and written as markdown
(``--markdown``).

    uv run python benchmarks/coverage_study.py --models alpha,kappa,hawkes --seeds 20

Sampler: nutpie for alpha, kappa and hawkes (measured here, 2 x (500 + 500)
draws on a one-hour market: nutpie 12 / 24 / 26 s per fit after the first,
numpyro 21 / 41 / 41 s, PyMC's NUTS 49 s for alpha), numpyro for regime (the
regime module's recommendation); ``--sampler`` overrides it for all models.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# run as a script: make the repository importable
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MODELS = ("alpha", "kappa", "hawkes", "regime", "regime-sim", "fills")
DEFAULT_SAMPLER = {"alpha": "nutpie", "kappa": "nutpie", "hawkes": "nutpie", "regime": "numpyro",
                   "regime-sim": "numpyro", "fills": "nutpie"}
REGIME_SIM_BARS = 360
"""regime-sim: bars per simulated sequence (1 h of 10 s bars, like the one-hour markets)."""
FORMAT = "mm-calibration/coverage"
FORMAT_VERSION = 1
SETTING_KEYS = ("duration_s", "draws", "tune", "chains", "sampler", "target_accept", "regimes")
REGIME_SETTING_KEYS = ("volatility_estimator",)
"""Settings of the ``regime`` model only (a record without one predates the option:
realized variance)."""


# =========================================================================== fitting
def _n_obs(model: str, obs) -> int:
    return int({"alpha": lambda o: o.n_fills, "kappa": lambda o: o.n_arrivals,
                "hawkes": lambda o: o.n_events, "regime": lambda o: o.n_bars,
                "regime-sim": lambda o: o.n_bars, "fills": lambda o: o.n_orders}[model](obs))


def _regime_observation(estimator: str | None):
    from models.data.observations import ObservationConfig

    return ObservationConfig() if estimator is None else ObservationConfig(volatility_estimator=estimator)


def fit_model(model: str, market, cfg, estimator: str | None = None, regimes: str = "truth",
              kappa_soft: str | None = None, rv_sample_seconds: float | None = None):
    """Observations and fit of one model on one synthetic market (module docstring);
    ``estimator``: the regime model's ``volatility_estimator`` (None: the default);
    ``regimes``: ``"truth"`` (the true path) or ``"em"`` (as ``mmcal fit`` does: the bar
    length chosen from the data, regimes decoded by the regime model, no truth);
    ``kappa_soft``: kappa's ``KappaConfig.soft_likelihood`` (None: the default);
    ``rv_sample_seconds``: with ``"em"``, the bars' grid (``mmcal fit --rv-sample-seconds``)."""
    if regimes == "em" and model in ("alpha", "kappa", "hawkes", "fills"):
        from flows.fitting import observation_config
        from models import catalog

        settings = {} if rv_sample_seconds is None else {"rv_sample_seconds": rv_sample_seconds}
        obs = catalog.prepare(model, market, "em", config=observation_config(market, settings))
        mc = None
        if model == "kappa" and kappa_soft is not None:
            from models.kappa import KappaConfig

            mc = KappaConfig(soft_likelihood=kappa_soft)
        return obs, catalog.fit(model, obs, cfg, mc)
    path = np.asarray(market.truth["regime_path"])
    if model == "alpha":
        from models import alpha as m

        obs = m.observations(market, path)
        return obs, m.fit(obs, cfg)
    if model == "kappa":
        from models import kappa as m

        obs = m.observations(market, path)
        return obs, m.fit(obs, cfg)
    if model == "hawkes":
        from models import hawkes as m

        obs = m.observations(market, path)
        return obs, m.fit(obs, cfg)
    if model == "regime":
        from models import regime as m

        oc = _regime_observation(estimator)
        obs = m.observations(market, config=oc)
        return obs, m.fit(obs, cfg, m.RegimeConfig(observation=oc))
    if model == "regime-sim":
        from models import regime as m

        obs = regime_sim_obs(market.truth["seed"])
        return obs, m.fit(obs, cfg)
    if model == "fills":
        from models import fills as m

        obs = m.observations(market, path)
        return obs, m.fit(obs, cfg)
    raise ValueError(f"unknown model {model!r} (expected one of {MODELS})")


def regime_sim_obs(seed: int):
    """regime-sim: bars from the HMM's own generative process (:func:`models.regime.simulate`,
    default truth: the synthetic market's transition matrix and volatility levels),
    where the model is exactly specified; the synthetic market's log realized variance
    is a mixture per regime (jump bars), see the regime model's docstring."""
    from models import regime as m

    return m.simulate(None, np.random.default_rng(10_000 + seed), n_bars=REGIME_SIM_BARS)


def _gate_vars(model: str, idata, covered: Sequence[str]) -> list[str]:
    from models import catalog

    names = [v for v in catalog.MODELS[model].summary_vars if v in idata.posterior] if model in catalog.MODELS else []
    return names or sorted({c.split("[")[0] for c in covered})


def _regime_index(name: str) -> int | None:
    from models.data.observations import REGIMES

    _, _, rest = name.partition("[")
    first = rest.rstrip("]").split(",")[0] if rest else ""
    return REGIMES.index(first) if first in REGIMES else None


def evaluate(model: str, idata, truth: dict[str, Any], regime_bars: Sequence[int],
             gate_config) -> dict[str, Any]:
    """Per-parameter coverage record and the fit's diagnostics / gate verdict."""
    from models.sampling import diagnostics, flatten, gate

    params = {k: float(v) for k, v in truth["params"].items() if isinstance(v, (int, float))}
    draws = flatten(idata.posterior)
    covered = sorted(k for k in draws if k in params)
    out: dict[str, Any] = {}
    for name in covered:
        x = np.asarray(draws[name], dtype=float).ravel()
        t = params[name]
        q05, q25, q75, q95 = np.quantile(x, [0.05, 0.25, 0.75, 0.95])
        mean, sd = float(x.mean()), float(x.std(ddof=1))
        ri = _regime_index(name)
        out[name] = {
            "truth": t, "mean": mean, "sd": sd,
            "q05": float(q05), "q25": float(q25), "q75": float(q75), "q95": float(q95),
            "in90": bool(q05 <= t <= q95), "in50": bool(q25 <= t <= q75),
            "z": (t - mean) / sd if sd > 0 else None,
            "quantile": float(np.mean(x < t)),
            "regime_bars": int(regime_bars[ri]) if ri is not None else None,
        }
    names = _gate_vars(model, idata, covered)
    diag = diagnostics(idata, var_names=names)
    verdict = gate(diag, gate_config)
    return {
        "params": out,
        "diagnostics": {k: diag.get(k) for k in ("r_hat_max", "r_hat_worst", "ess_bulk_min", "ess_bulk_worst",
                                                 "ess_tail_min", "ess_tail_worst", "divergences",
                                                 "bfmi_min", "sampling_time_s")},
        "gate_vars": names,
        "gate": {"passed": verdict.passed, "failures": list(verdict.failures)},
    }


# =========================================================================== results file
def load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "runs": []}
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise SystemExit(f"{path}: not a coverage results file (format {data.get('format')!r})")
    return data


def save(path: Path, data: dict[str, Any]) -> None:
    """Atomic: write a temporary file next to ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _settings(args, model: str) -> dict[str, Any]:
    from models.sampling import SamplerConfig

    ta = args.target_accept if args.target_accept is not None else SamplerConfig().target_accept
    st = {"duration_s": float(args.duration), "draws": int(args.draws), "tune": int(args.tune),
          "chains": int(args.chains), "sampler": args.sampler or DEFAULT_SAMPLER[model],
          "target_accept": float(ta)}
    if model == "regime":
        st["volatility_estimator"] = args.volatility_estimator
    st["regimes"] = args.regimes
    if args.rv_sample_seconds is not None:
        st["rv_sample_seconds"] = float(args.rv_sample_seconds)
    if args.tag:
        st["tag"] = args.tag
    return st


def _matches(run: dict[str, Any], settings: dict[str, Any]) -> bool:
    extra = {"volatility_estimator": "realized", "regimes": "truth"}
    if run.get("tag") != settings.get("tag"):
        return False
    return all(run.get(k, extra.get(k)) == settings[k] for k in SETTING_KEYS + REGIME_SETTING_KEYS
               if k in settings)


# =========================================================================== report
def _wilson(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    if n == 0:
        return float("nan"), float("nan")
    ci = binomtest(k, n, 0.9).proportion_ci(0.95, method="wilson")
    return float(ci.low), float(ci.high)


def _seed_bootstrap(rs: Sequence[dict[str, Any]], key: str = "in90", n_boot: int = 4000) -> tuple[float, float]:
    """95 % interval of the pooled coverage resampling whole fits (seeds): the parameters
    of one fit share its data, so the seed is the independent unit (benchmarks/README.md,
    "fills ... with queues": the Wilson interval of the pairs was too narrow there)."""
    if len(rs) < 2:
        return float("nan"), float("nan")
    k = np.array([sum(p[key] for p in r["params"].values()) for r in rs], dtype=float)
    n = np.array([len(r["params"]) for r in rs], dtype=float)
    idx = np.random.default_rng(0).integers(0, len(rs), (n_boot, len(rs)))
    boot = k[idx].sum(1) / n[idx].sum(1)
    return float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))


def _outside(k: int, n: int, p: float) -> bool:
    """The nominal p is outside the Wilson 95 % interval of k/n."""
    from scipy.stats import binomtest

    if n == 0:
        return False
    ci = binomtest(k, n, p).proportion_ci(0.95, method="wilson")
    return not ci.low <= p <= ci.high


def _param_sort_key(name: str):
    from models.data.observations import REGIMES

    base, _, rest = name.partition("[")
    parts = rest.rstrip("]").split(",") if rest else []
    order = {r: i for i, r in enumerate(REGIMES)} | {"buy": 10, "sell": 11}
    return (base, [order.get(p, 99) for p in parts], parts)


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per model: one row per parameter and the pooled coverage."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by_model.setdefault(r["model"], []).append(r)
    out: dict[str, dict[str, Any]] = {}
    for model in [m for m in MODELS if m in by_model] + sorted(set(by_model) - set(MODELS)):
        rs = sorted(by_model[model], key=lambda r: r["seed"])
        names = sorted({p for r in rs for p in r["params"]}, key=_param_sort_key)
        rows = []
        for name in names:
            recs = [r["params"][name] for r in rs if name in r["params"]]
            n = len(recs)
            k90 = sum(p["in90"] for p in recs)
            k50 = sum(p["in50"] for p in recs)
            z = np.array([p["z"] for p in recs if p["z"] is not None], dtype=float)
            bars = [p["regime_bars"] for p in recs if p.get("regime_bars") is not None]
            visited = [p for p in recs if p.get("regime_bars") is not None and p["regime_bars"] > 0]
            truths = sorted({round(p["truth"], 12) for p in recs})
            rows.append({
                "name": name, "n": n, "k90": k90, "k50": k50,
                "truth": truths[0] if len(truths) == 1 else None,
                "post_mean": float(np.mean([p["mean"] for p in recs])),
                "post_sd": float(np.mean([p["sd"] for p in recs])),
                "z_mean": float(z.mean()) if z.size else float("nan"),
                "z_sd": float(z.std(ddof=1)) if z.size > 1 else float("nan"),
                "bars_median": float(np.median(bars)) if bars else None,
                "k90_visited": sum(p["in90"] for p in visited) if bars else None,
                "n_visited": len(visited) if bars else None,
                "off90": _outside(k90, n, 0.9), "off50": _outside(k50, n, 0.5),
            })
        n_all = sum(r["n"] for r in rows)
        k90_all = sum(r["k90"] for r in rows)
        k50_all = sum(r["k50"] for r in rows)
        diag = [r["diagnostics"] for r in rs]

        def vals(key):
            return [d[key] for d in diag if d.get(key) is not None]

        out[model] = {
            "rows": rows, "fits": len(rs), "seeds": [r["seed"] for r in rs],
            "settings": {k: rs[0].get(k, "realized" if k == "volatility_estimator" else None)
                         for k in SETTING_KEYS + (REGIME_SETTING_KEYS if model == "regime" else ())},
            "pooled90": (k90_all, n_all, *_wilson(k90_all, n_all)),
            "pooled50": (k50_all, n_all, *_wilson(k50_all, n_all)),
            "pooled90_seed_bootstrap": _seed_bootstrap(rs),
            "gate_passed": sum(bool(r["gate"]["passed"]) for r in rs),
            "r_hat_max": max(vals("r_hat_max"), default=float("nan")),
            "ess_bulk_min": min(vals("ess_bulk_min"), default=float("nan")),
            "ess_tail_min": min(vals("ess_tail_min"), default=float("nan")),
            "divergences": sum(vals("divergences")),
            "fits_with_divergences": sum(1 for v in vals("divergences") if v > 0),
            "wall_median_s": float(np.median([r["wall_s"] for r in rs])),
            "wall_total_s": float(np.sum([r["wall_s"] for r in rs])),
            "n_obs_median": float(np.median([r["n_obs"] for r in rs])),
            "gate_failures": _failure_counts(rs),
        }
    return out


def _failure_counts(rs) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rs:
        for f in r["gate"]["failures"]:
            kind = f.split(" ")[0] if not f[0].isdigit() else "divergences"
            kind = {"r_hat": "r_hat", "ess_bulk": "ess_bulk", "ess_tail": "ess_tail",
                    "BFMI": "bfmi"}.get(kind, kind)
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def _fmt(x: float | None, spec: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return format(x, spec)


def _cells(row: dict[str, Any]) -> list[str]:
    n = row["n"]
    mark90 = " !" if row["off90"] else ""
    mark50 = " !" if row["off50"] else ""
    return [
        row["name"], _fmt(row["truth"], ".4g"), _fmt(row["post_mean"], ".4g"), _fmt(row["post_sd"], ".3g"),
        f"{row['k90']}/{n} ({row['k90'] / n:.0%}){mark90}", f"{row['k50']}/{n} ({row['k50'] / n:.0%}){mark50}",
        _fmt(row["z_mean"], "+.2f"), _fmt(row["z_sd"], ".2f"),
        _fmt(row["bars_median"], ".0f") if row["bars_median"] is not None else "",
        (f"{row['k90_visited']}/{row['n_visited']}" if row["n_visited"] else "–")
        if row["n_visited"] is not None else "",
    ]


HEADERS = ["parameter", "truth", "mean of post. mean", "mean post. sd", "coverage 90 %", "coverage 50 %",
           "mean z", "sd z", "bars (median)", "coverage 90 %, regime visited"]


def _model_line(model: str, s: dict[str, Any]) -> list[str]:
    k, n, lo, hi = s["pooled90"]
    k5, n5, lo5, hi5 = s["pooled50"]
    fails = ", ".join(f"{k} {v}" for k, v in sorted(s["gate_failures"].items())) or "none"
    st = s["settings"]
    return [
        f"{s['fits']} fits ({st['sampler']}, {st['chains']} x ({st['tune']} + {st['draws']}) draws, "
        f"target_accept {st['target_accept']:g}, "
        + (f"bars by {st['volatility_estimator']}, " if "volatility_estimator" in st else "")
        + f"{st['duration_s']:.0f} s markets, median {s['n_obs_median']:.0f} observations per fit); "
        f"median {s['wall_median_s']:.1f} s per fit, {s['wall_total_s'] / 60:.1f} min in all.",
        f"Pooled coverage 90 %: {k}/{n} = {k / n:.1%} (Wilson 95 % [{lo:.1%}, {hi:.1%}]; "
        f"resampling seeds [{s['pooled90_seed_bootstrap'][0]:.1%}, {s['pooled90_seed_bootstrap'][1]:.1%}]); "
        f"50 %: {k5}/{n5} = {k5 / n5:.1%} ([{lo5:.1%}, {hi5:.1%}]).",
        f"Gate (exported variables): {s['gate_passed']}/{s['fits']} passed; failures: {fails}; "
        f"worst r_hat {_fmt(s['r_hat_max'], '.3f')}, min ESS bulk {_fmt(s['ess_bulk_min'], '.0f')} / "
        f"tail {_fmt(s['ess_tail_min'], '.0f')}, {s['divergences']} divergences in "
        f"{s['fits_with_divergences']} fits.",
    ]


LEGEND = ("coverage: fits whose central 90 % (50 %) interval holds the truth; \" !\" = the nominal "
          "level is outside the Wilson 95 % interval of k/n. z = (truth − posterior mean) / posterior sd "
          "(> 0: posterior below the truth). bars: median number of 10 s bars the parameter's regime "
          "occupies in the true path; the last column counts only the fits whose market visits that "
          "regime (otherwise the posterior is the pooled prior).")


def markdown(summary: dict[str, dict[str, Any]]) -> str:
    lines = []
    for model, s in summary.items():
        lines.append(f"#### {model}")
        lines.append("")
        lines.extend(f"{x}  " if i < 2 else x for i, x in enumerate(_model_line(model, s)))
        lines.append("")
        lines.append("| " + " | ".join(HEADERS) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(HEADERS) - 1)) + "|")
        for row in s["rows"]:
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(row)) + " |")
        lines.append("")
    lines.append(LEGEND)
    lines.append("")
    return "\n".join(lines)


def print_rich(summary: dict[str, dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    con = Console() if sys.stdout.isatty() else Console(width=160)
    for model, s in summary.items():
        t = Table(title=f"coverage: {model}", title_justify="left")
        for i, h in enumerate(HEADERS):
            t.add_column(h, justify="left" if i == 0 else "right")
        for row in s["rows"]:
            cells = [escape(c) for c in _cells(row)]
            if row["off90"]:
                cells[4] = f"[bold red]{cells[4]}[/]"
            if row["off50"]:
                cells[5] = f"[bold red]{cells[5]}[/]"
            t.add_row(*cells)
        con.print(t)
        for line in _model_line(model, s):
            con.print(line, highlight=False)
        con.print()
    con.print(LEGEND, highlight=False)


# =========================================================================== main
def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS),
                   help="comma-separated subset of alpha,kappa,hawkes,regime (default: all)")
    p.add_argument("--seeds", type=int, default=20, help="number of seeds (default 20)")
    p.add_argument("--seed0", type=int, default=1000, help="first seed (default 1000: seeds 1000..1019)")
    p.add_argument("--duration", type=float, default=3600.0,
                   help="synthetic market length in s (default 3600: ~700 arrivals, ~1.7k fills)")
    p.add_argument("--draws", type=int, default=500)
    p.add_argument("--tune", type=int, default=500)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--sampler", choices=("nutpie", "numpyro", "pymc"), default=None,
                   help="for every model (default: nutpie for alpha/kappa/hawkes, numpyro for regime)")
    p.add_argument("--target-accept", type=float, default=None,
                   help="NUTS target acceptance (default: SamplerConfig's)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "coverage.json")
    p.add_argument("--markdown", type=Path, default=None,
                   help="markdown report (default: --out with suffix .md)")
    p.add_argument("--volatility-estimator", default=None,
                   choices=("realized", "bipower", "medrv", "minrv"),
                   help="regime: the bars' variance estimator (default: ObservationConfig's)")
    p.add_argument("--regimes", choices=("truth", "em"), default="truth",
                   help="alpha/kappa/hawkes/fills: the true regime path (default) or, as `mmcal fit` "
                        "does, the regimes decoded by the regime model with the bar length chosen from "
                        "the data (end to end, no truth)")
    p.add_argument("--rv-sample-seconds", type=float, default=None,
                   help="with --regimes em: the volatility bars' grid, s (as `mmcal fit --rv-sample-seconds`; "
                        "default: ObservationConfig's)")
    p.add_argument("--tag", default="", help="a label kept with the records (e.g. the code state: "
                                             "before / after); records with another tag are not reused")
    p.add_argument("--kappa-soft-likelihood", choices=("expected", "mixture"), default=None,
                   help="kappa with --regimes em: KappaConfig.soft_likelihood (default: the model's); "
                        "give records of each a --tag of their own")
    p.add_argument("--report-only", action="store_true", help="no fits: report what --out holds")
    p.add_argument("--alpha-estimands", action="store_true",
                   help="no fits: print what the alpha fit estimates vs the truth on these seeds' markets")
    p.add_argument("--gate-max-r-hat", type=float, default=None, help="default: GateConfig's (1.01)")
    p.add_argument("--gate-min-ess", type=float, default=None, help="bulk and tail; default GateConfig's (400)")
    a = p.parse_args(argv)
    a.models = [m.strip() for m in a.models.split(",") if m.strip()]
    bad = [m for m in a.models if m not in MODELS]
    if bad:
        p.error(f"unknown model(s) {bad}; expected a subset of {list(MODELS)}")
    if a.markdown is None:
        a.markdown = a.out.with_suffix(".md")
    if a.volatility_estimator is None:
        from models.data.observations import ObservationConfig

        a.volatility_estimator = ObservationConfig().volatility_estimator
    return a


def _quiet() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in ("pymc", "pytensor", "jax", "numba", "arviz"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    _quiet()
    from models.sampling import GateConfig, SamplerConfig

    gate_kw: dict[str, Any] = {}
    if args.gate_max_r_hat is not None:
        gate_kw["max_r_hat"] = args.gate_max_r_hat
    if args.gate_min_ess is not None:
        gate_kw["min_ess_bulk"] = gate_kw["min_ess_tail"] = args.gate_min_ess
    gate_config = GateConfig(**gate_kw)

    seeds = list(range(args.seed0, args.seed0 + args.seeds))
    if args.alpha_estimands:
        from alpha_estimands import alpha_estimands

        print(alpha_estimands(seeds, args.duration))
        return 0
    data = load(args.out)
    todo = [(s, m) for s in seeds for m in args.models
            if not any(r["seed"] == s and r["model"] == m and _matches(r, _settings(args, m))
                       for r in data["runs"])]
    if not args.report_only:
        from models.data.synthetic import simulate_market

        total = len(todo)
        if total < len(seeds) * len(args.models):
            print(f"{len(seeds) * len(args.models) - total} (seed, model) pairs already in {args.out}; "
                  f"{total} to fit", file=sys.stderr, flush=True)
        t_start = time.perf_counter()
        market_cache: dict[int, Any] = {}
        for i, (seed, model) in enumerate(todo, 1):
            st = _settings(args, model)
            if seed not in market_cache:
                market_cache.clear()
                market_cache[seed] = simulate_market(seed, args.duration)
            market = market_cache[seed]
            path = np.asarray(market.truth["regime_path"])
            truth = market.truth
            if model == "regime-sim":
                sim = regime_sim_obs(seed)
                path, truth = sim.regimes, {"params": sim.meta["truth"]}
            elif model == "regime":
                from models.regime import market_truth

                truth = {"params": market_truth(truth, _regime_observation(args.volatility_estimator))}
            bars = np.bincount(path, minlength=4).tolist()
            cfg = SamplerConfig(sampler=st["sampler"], draws=args.draws, tune=args.tune, chains=args.chains,
                                target_accept=st["target_accept"], seed=seed, progressbar=False,
                                log_likelihood=False)
            print(f"[{i}/{total}] seed {seed} {model}: fitting ({st['sampler']}) ...", file=sys.stderr,
                  flush=True)
            t0 = time.perf_counter()
            obs, idata = fit_model(model, market, cfg, args.volatility_estimator, args.regimes,
                                   args.kappa_soft_likelihood, args.rv_sample_seconds)
            wall = time.perf_counter() - t0
            rec = evaluate(model, idata, truth, bars, gate_config)
            run = {"seed": seed, "model": model, **st, "wall_s": wall, "n_obs": _n_obs(model, obs),
                   "regime_bars": bars, "gate_config": gate_config.model_dump(mode="json"),
                   "model_version": str(idata.attrs.get("model_version")), **rec}
            data["runs"] = [r for r in data["runs"]
                            if not (r["seed"] == seed and r["model"] == model and _matches(r, st))] + [run]
            save(args.out, data)
            ps = rec["params"]
            k90 = sum(p["in90"] for p in ps.values())
            elapsed = time.perf_counter() - t_start
            print(f"[{i}/{total}] seed {seed} {model}: {wall:.1f} s, n_obs {run['n_obs']}, "
                  f"in 90 % {k90}/{len(ps)}, gate {'pass' if rec['gate']['passed'] else 'FAIL'}"
                  f"{'' if rec['gate']['passed'] else ' (' + '; '.join(rec['gate']['failures']) + ')'}; "
                  f"elapsed {elapsed / 60:.1f} min, ~{elapsed / i * (total - i) / 60:.0f} min left",
                  file=sys.stderr, flush=True)

    runs = [r for r in data["runs"] if r["model"] in args.models and r["seed"] in seeds
            and _matches(r, _settings(args, r["model"]))]
    if not runs:
        print(f"no results for these settings in {args.out}", file=sys.stderr)
        return 1
    summary = summarize(runs)
    print_rich(summary)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(markdown(summary))
    print(f"wrote {args.out} and {args.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
