"""The model catalog: every model of the calibration listed once, with what
orchestration code (the flows, ``mmcal fit``, the exporter, the held-out comparison,
the plots) needs to know about it. Adding a model = one module with the common
signatures + one :class:`ModelSpec` here (docs/adding_a_model.md).

Every model module has the same shape (DESIGN.md section 4)::

    observations(market, regimes=None, *, config: ObservationConfig, bars=None) -> Obs
    simulate(truth, rng=None, ...) -> Obs
    fit(obs, sampler: SamplerConfig | None = None, model_config=None) -> az.InferenceData
    summarize(idata, asset=None) -> {name: conjugate summary}   (+ summary_draws, same nesting)
    heldout_lpd(idata, obs, asset=None, *, max_draws=400) -> {"elpd", "se", "n", "unit", ...}
    version(model_config=None, obs=None) -> "<name>-<hash>"

Reported names are the DESIGN.md section 8 names, those of the synthetic market's
``truth.json`` (``alpha_touch[normal]``, ``kappa[high,buy]``): a posterior
variable's flat name is reported as is unless ``rename`` maps it.

Regimes for the models that condition on them (:data:`REGIME_SOURCES`):
``"em"`` (default: the regime HMM's smoothed probabilities of every bar at its EM/MAP
point, carried as probabilities -- soft regimes, docs/models/regime_soft.md --; fast
and deterministic), ``"truth"`` (the synthetic
market's true path; an error elsewhere), ``"quantile"`` (the placeholder labelling
of :func:`models.data.observations.label_regimes`).

No statistics here: names, lookups and calls into the model modules.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

RegimeSource = Literal["em", "truth", "quantile"]
REGIME_SOURCES: tuple[str, ...] = ("em", "truth", "quantile")


@dataclass(frozen=True)
class ModelSpec:
    """One model of the calibration.

    ``module_name``: the model module (the common signatures above).
    ``var_names``: posterior variables reported (tables, diagnostics, the gate).
    ``summary_vars``: posterior variables behind the exported summaries (their
    diagnostics go into the bundle). ``loo_var``: the ``log_likelihood`` variable
    LOO uses. ``n_obs_attr`` / ``obs_unit``: the observations' count attribute and
    what one is. ``stage``: fit order (stage 0 gives the regime path the later
    stages condition on; models of one stage are fitted in parallel).
    ``uses_regimes``: whether the observations take a regime path;
    ``provides_regimes``: the model whose posterior gives that path (one, stage 0).
    ``config_class``: the module's model-config class (pydantic; a field
    ``observation`` receives the ObservationConfig, a field ``variant`` the variant).
    ``variants``: the model's variants, the default first. ``ppc``: the posterior
    predictive plot, ``"module:function"`` of ``(idata, obs, path) -> path`` (None:
    trace and posterior plots only). ``needs_books``: the model observes queue orders,
    so it is fitted only where the data have an order book (:func:`skip_reason`; a
    bundle without it has no block of its own). ``rename``: posterior
    variable -> reported name where they differ. ``without_truth``: reported
    variables with no ``truth.json`` counterpart.
    """

    name: str
    module_name: str
    var_names: tuple[str, ...]
    summary_vars: tuple[str, ...]
    loo_var: str
    n_obs_attr: str
    obs_unit: str
    stage: int
    config_class: str
    uses_regimes: bool = True
    provides_regimes: bool = False
    variants: tuple[str, ...] = ("default",)
    ppc: str | None = None
    needs_books: bool = False
    rename: Mapping[str, str] = field(default_factory=dict)
    without_truth: tuple[str, ...] = ()

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(self.module_name)

    def ppc_plot(self):
        """The function :attr:`ppc` names, or None."""
        if self.ppc is None:
            return None
        mod, _, fn = self.ppc.partition(":")
        return getattr(importlib.import_module(mod), fn)

    def reported_name(self, flat: str) -> str:
        """``flat`` posterior name (``var[coords]`` or ``var``) -> reported name."""
        var, bracket, rest = flat.partition("[")
        return self.rename.get(var, var) + bracket + rest

    def reported_vars(self) -> tuple[str, ...]:
        return tuple(self.rename.get(v, v) for v in self.var_names)


MODELS: dict[str, ModelSpec] = {
    s.name: s for s in (
        ModelSpec("regime", "models.regime",
                  var_names=("sigma_bps", "sigma_total_bps", "regime_transition", "regime_stationary",
                             "log_rv_mean", "log_rv_sd"),
                  summary_vars=("log_rv_mean", "log_rv_sd", "regime_transition", "sigma_bps", "sigma_total_bps"),
                  loo_var="log_rv", n_obs_attr="n_bars", obs_unit="volatility bars", stage=0,
                  config_class="RegimeConfig", uses_regimes=False, provides_regimes=True,
                  ppc="models.plots:regime_ppc",
                  # sigma_total_bps: truth.json has it as sigma_bps (models.regime.market_truth maps it)
                  without_truth=("log_rv_mean", "log_rv_sd", "sigma_total_bps")),
        ModelSpec("alpha", "models.alpha",
                  var_names=("alpha_touch", "alpha_decay_bps", "alpha_floor", "adverse_move_bps"),
                  summary_vars=("alpha_touch", "alpha_decay_bps", "alpha_floor", "adverse_move_bps",
                                "spread_capture"),
                  loo_var="informed", n_obs_attr="n_fills", obs_unit="passive fills", stage=1,
                  config_class="AlphaConfig", variants=("threshold", "mixture"), ppc="models.plots:alpha_ppc",
                  # the synthetic market's informed flow has no floor (true alpha_floor = 0,
                  # not written into its truth.json, which stays byte-identical)
                  without_truth=("alpha_floor",)),
        ModelSpec("kappa", "models.kappa",
                  var_names=("kappa", "arrival_rate", "count_overdispersion"),
                  summary_vars=("kappa", "arrival_rate"),
                  loo_var="arrivals", n_obs_attr="n_arrivals", obs_unit="arrivals", stage=1,
                  config_class="KappaConfig", ppc="models.plots:kappa_ppc", without_truth=("count_overdispersion",)),
        ModelSpec("hawkes", "models.hawkes",
                  # the kernel's components (M > 1 only): reported, gated and exported with the total
                  var_names=("hawkes_baseline", "hawkes_branching", "hawkes_decay", "hawkes_kernel_branching",
                             "hawkes_kernel_decay"),
                  summary_vars=("hawkes_baseline", "hawkes_branching", "hawkes_decay", "hawkes_kernel_branching",
                                "hawkes_kernel_decay"),
                  loo_var="arrivals", n_obs_attr="n_events", obs_unit="arrivals", stage=1,
                  config_class="HawkesConfig", ppc="models.hawkes.residuals:qq_plot",
                  without_truth=("hawkes_kernel_branching", "hawkes_kernel_decay")),
        ModelSpec("fills", "models.fills",
                  var_names=("fill_hazard", "fill_piece_ratio", "fill_queue_coef", "fill_level_coef",
                             "fill_imbalance_coef", "markout_mean_bps", "markout_queue_bps", "markout_level_bps",
                             "markout_imbalance_bps", "markout_sd_bps", "markout_zero_prob"),
                  summary_vars=("fill_hazard", "fill_piece_ratio", "fill_queue_coef", "fill_level_coef",
                                "markout_mean_bps", "markout_queue_bps", "markout_level_bps"),
                  loo_var="queue_orders", n_obs_attr="n_orders", obs_unit="queue orders", stage=1,
                  config_class="FillsConfig", ppc="models.plots:fills_ppc", needs_books=True),
    )
}
"""The catalog, in fit order."""



def names() -> tuple[str, ...]:
    """The catalog's model names, in fit order (read when called: an entry added at run
    time, as in examples/add_a_model.py, is included)."""
    return tuple(MODELS)


def stages() -> list[tuple[str, ...]]:
    """The models grouped by :attr:`ModelSpec.stage`, in order: ``[("regime",), ("alpha", "kappa", "hawkes")]``."""
    by: dict[int, list[str]] = {}
    for s in MODELS.values():
        by.setdefault(s.stage, []).append(s.name)
    return [tuple(by[k]) for k in sorted(by)]


def skip_reason(name: str, rows: Mapping[str, int], source: str = "") -> str | None:
    """Why model ``name`` is not fitted on data with these row counts
    (``Market.row_counts()``) from ``source``, or None when it is: a model that
    :attr:`ModelSpec.needs_books` needs an order book, and on real data the queue-order
    producer (``models.data.queue``)."""
    if not spec(name).needs_books:
        return None
    if not rows.get("books"):
        return f"{name} not fitted: the data have no order book (books: 0 rows), so no queue orders"
    if source != "synthetic":
        import importlib.util

        if importlib.util.find_spec("models.data.queue") is None:
            return f"{name} not fitted: no queue-order producer (models.data.queue) for {source} data in this version"
    return None


def regime_model() -> str:
    """The model whose posterior gives the regime path the others condition on."""
    return next(s.name for s in MODELS.values() if s.provides_regimes)


def spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; ValueError naming the choices otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; one of {', '.join(MODELS)}") from None


def check_variant(name: str, variant: str | None) -> str:
    """``variant`` of model ``name`` (None: its default); ValueError naming the choices."""
    s = spec(name)
    if variant is None:
        return s.variants[0]
    if variant not in s.variants:
        raise ValueError(f"model {name}: unknown variant {variant!r}; one of {', '.join(s.variants)}")
    return variant


def model_config(name: str, variant: str | None = None, observation=None):
    """The model config of ``name`` (its :attr:`ModelSpec.config_class`) for ``variant``
    and the observation rules ``observation`` (used by models whose config has them)."""
    s = spec(name)
    cls = getattr(s.module, s.config_class)
    kw: dict[str, Any] = {}
    if observation is not None and "observation" in cls.model_fields:
        kw["observation"] = observation
    if "variant" in cls.model_fields:
        kw["variant"] = check_variant(name, variant)
    else:
        check_variant(name, variant)
    return cls(**kw)


def has_truth_path(market) -> bool:
    truth = getattr(market, "truth", None)
    return bool(truth) and "regime_path" in truth


def _bars(market, bars, config=None):
    if bars is not None:
        return bars
    from models.data.observations import auto_bar_config, volatility_bars

    return volatility_bars(market, config if config is not None else auto_bar_config(market))


def regime_path(market, regimes: RegimeSource = "em", *, bars=None, config=None):
    """The regime of each volatility bar (int8, one per row of ``bars``; default the
    bars of ``config``, else the market's default bars) chosen by ``regimes``
    (module docstring); None for ``"quantile"``."""
    import numpy as np

    rg = spec(regime_model()).module
    if regimes not in REGIME_SOURCES:
        raise ValueError(f"unknown regime source {regimes!r}; one of {', '.join(REGIME_SOURCES)}")
    if regimes == "quantile":
        return None
    if regimes == "truth" and not has_truth_path(market):
        raise _no_truth(market)
    robs = rg.observations(market, config=config, bars=_bars(market, bars, config))
    if regimes == "truth":
        if robs.regimes is None:
            raise ValueError("the truth's regime path does not cover the market's bars")
        return robs.regimes
    return np.argmax(regime_probabilities(market, bars=bars, config=config), axis=1).astype(np.int8)


def regime_probabilities(market, *, bars=None, config=None):
    """(n_bars, 4) regime probabilities of each volatility bar (``bars`` as in
    :func:`regime_path`): the regime HMM's smoothed probabilities at its EM/MAP point
    (the ``"em"`` source, as probabilities)."""
    rg = spec(regime_model()).module
    robs = rg.observations(market, config=config, bars=_bars(market, bars, config))
    return rg.em_fit(robs)["smoothed"]


def _no_truth(market) -> ValueError:
    return ValueError(f"market {getattr(market, 'asset', '?')!r} ({getattr(market, 'source', '?')}) "
                      "has no true regime path; only the synthetic market has one")


def observations(name: str, market, regimes=None, *, config=None, bars=None) -> Any:
    """``<module>.observations`` of model ``name``: ``regimes`` (a path per bar) is
    passed to the models that take one."""
    s = spec(name)
    return s.module.observations(market, regimes if s.uses_regimes else None, config=config, bars=bars)


def prepare(name: str, market, regimes: RegimeSource = "em", *, bars=None, config=None) -> Any:
    """The observations of model ``name`` for one market under the observation rules
    ``config`` (default: the defaults with the market's bar length), with the regime
    path ``regimes`` (module docstring); the regime path and the observations use
    the same bars."""
    s = spec(name)
    if regimes not in REGIME_SOURCES:
        raise ValueError(f"unknown regime source {regimes!r}; one of {', '.join(REGIME_SOURCES)}")
    if regimes == "truth" and not has_truth_path(market):
        raise _no_truth(market)
    bars = _bars(market, bars, config)
    path = None
    if s.uses_regimes:
        path = (regime_probabilities(market, bars=bars, config=config) if regimes == "em"
                else regime_path(market, regimes, bars=bars, config=config))
    return observations(name, market, path, config=config, bars=bars)


def n_obs(name: str, obs: Any) -> int:
    """How many observations (:attr:`ModelSpec.obs_unit`) ``obs`` holds."""
    return int(getattr(obs, spec(name).n_obs_attr))


def fit(name: str, obs: Any, sampler=None, model_config=None):
    """``<module>.fit(obs, sampler, model_config)``: the posterior as ``az.InferenceData``."""
    return spec(name).module.fit(obs, sampler, model_config)


def version(name: str, model_config=None, obs=None) -> str:
    """``<module>.version(model_config, obs)``: the model version a fit stores."""
    return spec(name).module.version(model_config, obs)


def summarize(name: str, idata, asset: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(<module>.summarize(idata, asset), <module>.summary_draws(idata, asset))``."""
    mod = spec(name).module
    return mod.summarize(idata, asset), mod.summary_draws(idata, asset)


def heldout_lpd(name: str, idata, obs, asset: str | None = None, *, max_draws: int | None = 400
                ) -> dict[str, Any]:
    """``<module>.heldout_lpd``: the held-out log predictive density (``elpd``, ``se``, ``n``, ``unit``)."""
    return spec(name).module.heldout_lpd(idata, obs, asset, max_draws=max_draws)


def _present(s: ModelSpec, idata) -> list[str]:
    """The reported variables the fit has (a model option may leave one out, e.g.
    alpha without its floor; a fit of an older model version may lack a newer one)."""
    return [v for v in s.var_names if v in idata.posterior]


def parameter_rows(name: str, idata) -> list[dict[str, Any]]:
    """:func:`models.sampling.summary_table` of the reported variables, names as reported."""
    from models.sampling import summary_table

    s = spec(name)
    rows = summary_table(idata, _present(s, idata))
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
        loo_var = None
    d = diag(idata, _present(s, idata), loo_var=loo_var)
    d["per_param"] = {s.reported_name(k): v for k, v in d["per_param"].items()}
    for k in ("r_hat_worst", "ess_bulk_worst", "ess_tail_worst"):
        if d.get(k):
            d[k] = s.reported_name(d[k])
    if "hawkes_gof" in idata.attrs:     # time-rescaling KS (models.hawkes.residuals), as metrics
        g = json.loads(idata.attrs["hawkes_gof"])
        d.update({f"hawkes_{k}": float(v) for k, v in g.items() if k.startswith("ks_")})
    if "regime_persistence" in idata.attrs:     # expected state durations (models.regime.persistence)
        g = json.loads(idata.attrs["regime_persistence"])
        d.update({f"regime_duration_bars_{k}": v for k, v in g["duration_bars"].items() if v is not None})
        if g["min_duration_bars"] is not None:
            d["regime_duration_bars_min"] = float(g["min_duration_bars"])
            d["regime_duration_bars_worst"] = g["shortest"]
    if "hawkes_components_choice" in idata.attrs:     # M by held-out lpd (models.hawkes.select)
        c = json.loads(idata.attrs["hawkes_components_choice"])
        d["hawkes_components"] = int(c["components"])
        d.update({f"hawkes_heldout_lpd_m{r['components']}": float(r["lpd"]) for r in c["table"]})
    return d


__all__ = ["MODELS", "ModelSpec", "REGIME_SOURCES", "check_variant", "diagnostics", "fit",
           "has_truth_path", "heldout_lpd", "model_config", "n_obs", "names", "observations", "parameter_rows", "prepare",
           "regime_model", "regime_path", "regime_probabilities", "skip_reason", "spec", "stages", "summarize", "version"]
