"""The four calibration models as one table, for orchestration code (``mmcal fit``
now, the flows later).

Per model (:data:`MODELS`): the module (imported lazily: ``models.hawkes`` imports
JAX, and PyMC's parallel chains must then use ``spawn``), the posterior
variables that carry the reported parameters, the observed variable whose
pointwise log-likelihood feeds LOO, and what one observation is. Plus
:func:`prepare` (a market -> the model's observations, with the regime path
chosen by name) and :func:`fit` (dispatch to the module).

Reported names are the DESIGN.md section 8 names, the ones of the synthetic
market's ``truth.json`` ``params`` (``alpha_touch[normal]``, ``kappa[high,buy]``,
``hawkes_branching[buy,sell]``, ``sigma_bps[low]``,
``regime_transition[low,normal]``): a posterior variable's flat name
(:func:`models.sampling.flat_names`) is reported as is unless the model's
``rename`` maps the variable to another name. Every model's posterior names
agree with ``truth.json`` today, so every ``rename`` is empty (the regime model's
total volatility ``sigma_bps`` is the truth's ``sigma_bps``; the truth's
diffusion-only volatility is ``sigma_diffusion_bps``). A few reported variables
have no counterpart in ``truth.json`` (:attr:`ModelSpec.without_truth`):
``log_rv_mean`` / ``log_rv_sd`` (the HMM's emission on log realized variance;
the truth gives ``rv_mean`` instead) and ``count_overdispersion`` (the Fano
factor of block counts minus 1, implied by the Hawkes clustering, not a
generator parameter).

Regime paths for alpha, kappa and hawkes (:data:`REGIME_SOURCES`):

* ``"em"`` (default): the regime HMM's MAP point by EM
  (:func:`models.regime.em_fit` on :func:`models.regime.observations`), each
  bar labelled with the argmax of its smoothed probabilities. Fast (no
  sampling) and deterministic.
* ``"truth"``: the synthetic market's true ``regime_path`` (matched to the bars
  by start time); an error for a market without a truth.
* ``"quantile"``: the placeholder labelling of
  :func:`models.data.observations.label_regimes` (``regimes=None``).

The regime model itself takes no regime path (``regimes`` is ignored for it,
except that ``"truth"`` still requires a truth).

No statistics here: only names, lookups and calls into the model modules.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

import numpy as np

RegimeSource = Literal["em", "truth", "quantile"]
REGIME_SOURCES: tuple[str, ...] = ("em", "truth", "quantile")


@dataclass(frozen=True)
class ModelSpec:
    """One model for orchestration code.

    ``module_name``: the model module (``observations``, ``fit``, ``summarize``).
    ``var_names``: posterior variables to report. ``loo_var``: the
    ``log_likelihood`` variable LOO uses. ``n_obs_attr`` / ``obs_unit``: the
    observations' count attribute and what one is. ``uses_regimes``: whether
    :func:`prepare` passes a regime path. ``rename``: posterior variable ->
    reported name where they differ (flat coordinates are kept).
    ``without_truth``: reported variables with no ``truth.json`` counterpart.
    """

    name: str
    module_name: str
    var_names: tuple[str, ...]
    loo_var: str
    n_obs_attr: str
    obs_unit: str
    uses_regimes: bool = True
    rename: Mapping[str, str] = field(default_factory=dict)
    without_truth: tuple[str, ...] = ()

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(self.module_name)

    def reported_name(self, flat: str) -> str:
        """``flat`` posterior name (``var[coords]`` or ``var``) -> reported name."""
        var, bracket, rest = flat.partition("[")
        return self.rename.get(var, var) + bracket + rest

    def reported_vars(self) -> tuple[str, ...]:
        return tuple(self.rename.get(v, v) for v in self.var_names)


MODELS: dict[str, ModelSpec] = {
    s.name: s for s in (
        ModelSpec("regime", "models.regime",
                  ("sigma_bps", "regime_transition", "regime_stationary", "log_rv_mean", "log_rv_sd"),
                  loo_var="log_rv", n_obs_attr="n_bars", obs_unit="volatility bars",
                  uses_regimes=False, without_truth=("log_rv_mean", "log_rv_sd")),
        ModelSpec("alpha", "models.alpha", ("alpha_touch", "alpha_decay_bps", "adverse_move_bps"),
                  loo_var="informed", n_obs_attr="n_fills", obs_unit="passive fills"),
        ModelSpec("kappa", "models.kappa", ("kappa", "arrival_rate", "count_overdispersion"),
                  loo_var="arrivals", n_obs_attr="n_arrivals", obs_unit="arrivals",
                  without_truth=("count_overdispersion",)),
        ModelSpec("hawkes", "models.hawkes", ("hawkes_baseline", "hawkes_branching", "hawkes_decay"),
                  loo_var="arrivals", n_obs_attr="n_events", obs_unit="arrivals"),
    )
}


def spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; ValueError naming the choices otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; one of {', '.join(MODELS)}") from None


def has_truth_path(market) -> bool:
    truth = getattr(market, "truth", None)
    return bool(truth) and "regime_path" in truth


def regime_path(market, regimes: RegimeSource = "em", *, bars=None) -> np.ndarray | None:
    """The regime of each volatility bar (int8, one per row of ``bars``; default
    the market's default bars) chosen by ``regimes`` (module docstring); None for
    ``"quantile"`` (the observation functions' placeholder labelling)."""
    from models import regime as rg

    if regimes not in REGIME_SOURCES:
        raise ValueError(f"unknown regime source {regimes!r}; one of {', '.join(REGIME_SOURCES)}")
    if regimes == "quantile":
        return None
    if regimes == "truth" and not has_truth_path(market):
        raise _no_truth(market)
    robs = rg.observations(market, bars=_bars(market, bars))
    if regimes == "truth":
        if robs.regimes is None:
            raise ValueError("the truth's regime path does not cover the market's bars")
        return robs.regimes
    ref = rg.em_fit(robs)
    return np.argmax(ref["smoothed"], axis=1).astype(np.int8)


def _no_truth(market) -> ValueError:
    return ValueError(f"market {getattr(market, 'asset', '?')!r} ({getattr(market, 'source', '?')}) "
                      "has no true regime path; only the synthetic market has one")


def _bars(market, bars):
    if bars is not None:
        return bars
    from models.data.observations import auto_bar_config, volatility_bars

    return volatility_bars(market, auto_bar_config(market))


def prepare(name: str, market, regimes: RegimeSource = "em", *, bars=None) -> Any:
    """The observations of model ``name`` for one market, with the regime path
    ``regimes`` (module docstring). ``bars``: the volatility bars (default
    :func:`models.data.observations.volatility_bars` with the default rules; the
    regime path and the model's observations use the same bars)."""
    s = spec(name)
    if regimes not in REGIME_SOURCES:
        raise ValueError(f"unknown regime source {regimes!r}; one of {', '.join(REGIME_SOURCES)}")
    if regimes == "truth" and not has_truth_path(market):
        raise _no_truth(market)
    bars = _bars(market, bars)
    if not s.uses_regimes:
        return s.module.observations(market, bars=bars)
    path = regime_path(market, regimes, bars=bars)
    return s.module.observations(market, path, bars=bars)


def n_obs(name: str, obs: Any) -> int:
    """How many observations (:attr:`ModelSpec.obs_unit`) ``obs`` holds."""
    return int(getattr(obs, spec(name).n_obs_attr))


def fit(name: str, obs: Any, sampler_config=None):
    """``<module>.fit(obs, sampler_config)``: the posterior as ``az.InferenceData``."""
    return spec(name).module.fit(obs, sampler_config)


def parameter_rows(name: str, idata) -> list[dict[str, Any]]:
    """:func:`models.sampling.summary_table` of the reported variables, names as reported."""
    from models.sampling import summary_table

    s = spec(name)
    rows = summary_table(idata, s.var_names)
    return [{**r, "name": s.reported_name(r["name"])} for r in rows]


def diagnostics(name: str, idata) -> dict[str, Any]:
    """:func:`models.sampling.diagnostics` on the reported variables with the model's
    ``loo_var`` (or, for a variant whose observed variable differs -- alpha's markout
    mixture observes ``markout`` -- the fit's own log-likelihood); parameter names
    (``per_param``, ``*_worst``) as reported."""
    from models.sampling import diagnostics as diag

    s = spec(name)
    loo_var = s.loo_var
    if "log_likelihood" in idata.groups() and loo_var not in idata.log_likelihood:
        loo_var = None  # another variant's observed variable (alpha's mixture: markout): use what is there
    d = diag(idata, s.var_names, loo_var=loo_var)
    d["per_param"] = {s.reported_name(k): v for k, v in d["per_param"].items()}
    for k in ("r_hat_worst", "ess_bulk_worst", "ess_tail_worst"):
        if d.get(k):
            d[k] = s.reported_name(d[k])
    return d


__all__ = ["MODELS", "ModelSpec", "REGIME_SOURCES", "spec", "regime_path", "prepare", "n_obs", "fit",
           "parameter_rows", "diagnostics", "has_truth_path"]
