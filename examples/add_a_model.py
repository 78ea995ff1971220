"""Adding a model, worked through (docs/adding_a_model.md): a model module with the
common signature set, its catalog entry, then observations -> fit -> diagnostics ->
summaries -> held-out score through the catalog, on the synthetic market.

The model, ``trade_size``: the size of public market-order prints (base units) per
volatility regime, lognormal (how large the orders that hit a ladder are):

    log size_i ~ Normal(log size_median[regime_i], size_log_sd)

The synthetic market draws every print's size from one lognormal (its config's
``trade_size_median`` 0.5 and ``size_log_sd`` 0.8), so each regime should recover those.

Run from the repository root (about a minute):

    .venv/bin/python examples/add_a_model.py [--duration 1800] [--draws 500] [--chains 2]

Here the module is this file and the entry is added to ``models.catalog.MODELS`` at run
time; in the project the module is ``models/trade_size.py`` and the entry is written
into the ``MODELS`` literal of ``models/catalog.py`` (then every flow picks it up).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mm_runtime.vocabulary import REGIMES

MODEL_NAME = "trade_size"


# ----------------------------------------------------------------------------- the module
@dataclass(frozen=True)
class TradeSizeObs:
    """One print per row: ``regime`` (int8 0..3, the regime of its volatility bar) and
    ``log_size`` (log base units)."""

    asset: str
    regime: np.ndarray
    log_size: np.ndarray

    @property
    def n_trades(self) -> int:
        return int(self.log_size.size)


class TradeSizeConfig(BaseModel):
    """Priors (part of the model version): log median ~ Normal(mu, sd), log sd ~ HalfNormal(scale)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    log_median_mu: float = 0.0
    log_median_sd: float = Field(2.0, gt=0)
    log_sd_scale: float = Field(1.0, gt=0)


def observations(market, regimes=None, *, config=None, bars=None) -> TradeSizeObs:
    """Each trade print's size and the regime of its bar (``regimes``: one per bar)."""
    from models.data.observations import label_regimes, regime_at, volatility_bars

    bars = volatility_bars(market, config) if bars is None else bars
    ts, size = market.trades["ts"].to_numpy(np.int64), market.trades["size"].to_numpy(float)
    reg = regime_at(ts, bars, label_regimes(bars, regimes))
    keep = (reg >= 0) & (size > 0)              # prints before the first bar have no regime
    return TradeSizeObs(str(market.asset), reg[keep].astype(np.int8), np.log(size[keep]))


def simulate(truth, rng=None, n: int = 2000) -> TradeSizeObs:
    """``n`` prints from ``{"size_median": {regime: v}, "size_log_sd": s}``, regimes uniform."""
    rng = np.random.default_rng(rng)
    reg = rng.integers(0, len(REGIMES), n).astype(np.int8)
    mu = np.log([truth["size_median"][r] for r in REGIMES])[reg]
    return TradeSizeObs("SIM", reg, mu + truth["size_log_sd"] * rng.standard_normal(n))


def version(model_config=None, obs=None) -> str:
    from models.sampling import model_version

    return model_version(MODEL_NAME, model_config or TradeSizeConfig(), sys.modules[__name__])


def fit(obs: TradeSizeObs, sampler=None, model_config=None):
    import pymc as pm

    from models.sampling import sample

    cfg = model_config or TradeSizeConfig()
    with pm.Model(coords={"regime": list(REGIMES)}) as model:
        log_median = pm.Normal("log_median", cfg.log_median_mu, cfg.log_median_sd, dims="regime")
        pm.Deterministic("size_median", pm.math.exp(log_median), dims="regime")
        sd = pm.HalfNormal("size_log_sd", cfg.log_sd_scale)
        pm.Normal("log_size", log_median[obs.regime], sd, observed=obs.log_size)
    idata = sample(model, sampler)                   # NUTS as configured, with the log-likelihood
    idata.attrs.update(model_name=MODEL_NAME, model_version=version(cfg), asset=obs.asset,
                       n_trades=obs.n_trades, trade_size_config=json.dumps(cfg.model_dump()))
    return idata


def summary_draws(idata, asset=None) -> dict:
    """The draws behind :func:`summarize`, same nesting (one asset per fit: ``asset`` unused)."""
    post = idata.posterior.stack(s=("chain", "draw"))
    return {"trade_size": {r: post["size_median"].sel(regime=r).values for r in REGIMES}}


def summarize(idata, asset=None) -> dict:
    """``{"trade_size": {regime: lognormal}}``, moment-matched (the bundle's families)."""
    from models.export import lognormal_from_draws

    return {k: {r: lognormal_from_draws(x) for r, x in v.items()} for k, v in summary_draws(idata, asset).items()}


def heldout_lpd(idata, obs: TradeSizeObs, asset=None, *, max_draws: int | None = 400) -> dict:
    """Log predictive density of held-out prints, one term per print."""
    from scipy import stats

    from models.sampling import predictive_density, thin_index

    post = idata.posterior.stack(s=("chain", "draw")).transpose("s", ...)
    idx = thin_index(post.sizes["s"], max_draws)
    mu, sd = post["log_median"].values[idx][:, obs.regime], post["size_log_sd"].values[idx][:, None]
    return predictive_density(stats.norm.logpdf(obs.log_size[None, :], mu, sd), unit="prints")


# ----------------------------------------------------------------------------- the catalog entry
def register():
    from models import catalog

    catalog.MODELS[MODEL_NAME] = catalog.ModelSpec(  # stage 1: after the regime model, on its path
        MODEL_NAME, __name__, var_names=("size_median", "size_log_sd"), summary_vars=("size_median",),
        loo_var="log_size", n_obs_attr="n_trades", obs_unit="trade prints", stage=1,
        config_class="TradeSizeConfig", without_truth=("size_median", "size_log_sd"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=1800.0, help="synthetic market, seconds")
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--sampler", default="numpyro", choices=("pymc", "numpyro", "nutpie"))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    from models import catalog
    from models.data.synthetic import simulate_market
    from models.data.tables import WindowSpec, window_market
    from models.sampling import GateConfig, SamplerConfig, gate

    register()
    market = simulate_market(seed=a.seed, duration_s=a.duration)
    fit_m, held_m = (window_market(market, *WindowSpec.parse(w).bounds_ns(market)) for w in ("0:0.75", "0.75:1"))
    obs = catalog.prepare(MODEL_NAME, fit_m, regimes="truth")     # "em" on real data
    print(f"observations: {catalog.n_obs(MODEL_NAME, obs)} {catalog.spec(MODEL_NAME).obs_unit}, "
          f"per regime {np.bincount(obs.regime, minlength=4).tolist()}")
    sampler = SamplerConfig(sampler=a.sampler, draws=a.draws, tune=a.draws, chains=a.chains, cores=1,
                            seed=a.seed, progressbar=False)
    idata = catalog.fit(MODEL_NAME, obs, sampler, catalog.model_config(MODEL_NAME))
    print(f"model version {catalog.version(MODEL_NAME)}")
    for r in catalog.parameter_rows(MODEL_NAME, idata):
        print(f"  {r['name']:<24} mean {r['mean']:.4f}  90% [{r['q05']:.4f}, {r['q95']:.4f}]  "
              f"r_hat {r['r_hat']:.3f}  ess_bulk {r['ess_bulk']:.0f}")
    truth = market.truth["config"]
    print(f"truth: size_median {truth['trade_size_median']}, size_log_sd {truth['size_log_sd']}")
    diag = catalog.diagnostics(MODEL_NAME, idata)
    verdict = gate(diag, GateConfig(min_ess_bulk=100, min_ess_tail=100))   # default 400: for 4 x 1000 draws
    print(f"gate: {'PASS' if verdict.passed else 'FAIL ' + '; '.join(verdict.failures)} "
          f"(r_hat_max {diag['r_hat_max']:.3f}, loo_elpd {diag['loo_elpd']:.1f})")
    summaries, _ = catalog.summarize(MODEL_NAME, idata, market.asset)
    for r, leaf in summaries[MODEL_NAME].items():
        print(f"  bundle summary {MODEL_NAME}[{r}]: lognormal(mu={leaf['mu']:.4f}, sigma={leaf['sigma']:.4f})")
    held = catalog.prepare(MODEL_NAME, held_m, regimes="truth")
    lpd = catalog.heldout_lpd(MODEL_NAME, idata, held)
    print(f"held-out: elpd {lpd['elpd']:.1f} (se {lpd['se']:.1f}) over {lpd['n']} {lpd['unit']}")


if __name__ == "__main__":
    main()
