"""Sampling, convergence diagnostics, the export gate and summary tables.

Shared by every model module (regime, alpha, kappa, hawkes; DESIGN.md section 4):
a model module builds a ``pm.Model`` and calls :func:`sample`; the flow calls
:func:`diagnostics` and :func:`gate` (a fit that fails the gate is not exported)
and logs :func:`summary_table`. :func:`predictive_density` and
:func:`paired_difference` score held-out data; :func:`model_version` names a fit.

``SamplerConfig.inference`` ``"laplace"`` / ``"auto"`` hands the fit to
:mod:`models.approx` (a Laplace approximation checked by PSIS; the gate then checks
its ``k_hat``). Samplers (``SamplerConfig.sampler``), all NUTS through
``pm.sample(nuts_sampler=...)``:
``"nutpie"`` (default; ``nutpie_backend`` ``"jax"`` or ``"numba"``), ``"pymc"`` and
``"numpyro"``. ``seed`` fixes the draws bit for bit for all three. The pointwise
log-likelihood (for LOO) is computed after sampling with the JAX backend
(``LOG_LIKELIHOOD_MODE``), unless larger than ``max_log_likelihood_size``. With
several observed variables LOO concatenates their pointwise terms (``loo_var=``
picks one). The parametrization helpers (``centred_groups``, ``mixed_normal``,
``whitened_normal``, ``whitened_mean``) live in :mod:`models.parametrization` and
are re-exported here. Choice of sampler, measured timings and derivations:
docs/sampling.md.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.parametrization import centred_groups, mixed_normal, whitened_mean, whitened_normal
from models.predictive import paired_difference, predictive_density, thin_index

__all__ = [
    "SAMPLE_DIMS", "SamplerConfig", "GateConfig", "GateVerdict", "code_version", "model_version",
    "LOG_LIKELIHOOD_MODE", "SAMPLE_STATS_PER_DRAW", "SampleSizeError", "available_memory", "trace_bytes",
    "check_trace_fits", "sample", "asset_index", "flat_names", "flatten", "diagnostics",
    "gate", "summary_table", "thin_index", "predictive_density", "paired_difference",
    # re-exported from models.parametrization and models.predictive
    "centred_groups", "mixed_normal", "whitened_normal", "whitened_mean",
]

SAMPLE_DIMS = ("chain", "draw")


# =========================================================================== configs
class SamplerConfig(BaseModel):
    """How to sample a model (choice of sampler: docs/sampling.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sampler: Literal["pymc", "numpyro", "nutpie"] = "nutpie"
    draws: int = Field(1000, ge=1)
    tune: int = Field(1000, ge=0)
    chains: int = Field(4, ge=1)
    target_accept: float = Field(0.95, gt=0.0, lt=1.0, description=(
        "NUTS target acceptance; 0.95 rather than PyMC's 0.8 / 0.9: the hierarchical models "
        "have funnels where data are thin (measured: 4 divergent transitions in 4,000 draws "
        "for the regime HMM and for alpha on 35 min of Hyperliquid BTC at 0.9, none at 0.95)"))
    seed: int = 0
    cores: int | None = Field(None, ge=1, description="parallel chains; None = min(chains, CPUs)")
    progressbar: bool = True
    log_likelihood: bool = True
    max_log_likelihood_size: int = Field(
        20_000_000, ge=0, description="skip the pointwise log-likelihood above this many "
        "elements (chains x draws x observations; 8 bytes each)")
    nutpie_backend: Literal["numba", "jax"] = "jax"
    nutpie_gradient_backend: Literal["pytensor", "jax"] = Field(
        "pytensor", description="who differentiates the log-density for nutpie: pytensor's "
        "gradient graph, or jax.value_and_grad of its JAX translation (JAX backend only)")
    nutpie_mass_matrix: Literal["diag", "low_rank"] = Field(
        "diag", description="nutpie's mass matrix: diagonal, or the diagonal plus the leading "
        "directions of the draws' and gradients' covariance (low_rank_modified_mass_matrix; "
        "Seyboldt 2024, nutpie docs: fewer leapfrog steps where the posterior has correlated "
        "directions)")
    mp_ctx: Literal["auto", "fork", "forkserver", "spawn"] = Field(
        "auto", description="process start method of PyMC's parallel chains; auto = spawn "
        "once JAX is imported (a forked JAX process deadlocks), else PyMC's default")
    numpyro_chain_method: Literal["auto", "parallel", "sequential", "vectorized"] = "auto"
    inference: Literal["nuts", "laplace", "auto"] = Field("nuts", description=(
        "nuts; laplace (Laplace at the MAP, PSIS-resampled); auto: laplace when its PSIS "
        "k_hat < max_psis_k, else NUTS (models.approx, docs/sampling.md)"))
    max_psis_k: float = Field(0.5, gt=0.0, description=(
        "auto's threshold on the approximation's k_hat: 0.5, not PSIS's usual 0.7 (fits with "
        "k_hat 0.58-0.66 missed the 0.1 sd / 10 % agreement with NUTS, benchmarks/README.md)"))

    def resolved_cores(self) -> int:
        return self.cores or max(1, min(self.chains, os.cpu_count() or 1))


class GateConfig(BaseModel):
    """Thresholds a fit must meet to be exported (DESIGN.md section 4).

    R-hat and ESS thresholds follow Vehtari et al. (2021, "Rank-normalization,
    folding, and localization"): rank-normalised split R-hat < 1.01 and bulk/tail
    ESS > 400 (100 per chain for 4 chains). BFMI < 0.3 signals poorly explored
    energy (Betancourt 2016). Pareto k > 0.7 makes PSIS-LOO unreliable for those
    observations (Vehtari et al. 2024); it is reported as a warning unless
    ``pareto_k_blocks`` (point-process and time-series terms often have a few
    influential observations without the posterior being wrong).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_r_hat: float = 1.01
    min_ess_bulk: float = 400.0
    min_ess_tail: float = 400.0
    max_divergences: int = 0
    min_bfmi: float = 0.3
    max_pareto_k: float = 0.7
    pareto_k_blocks: bool = False
    max_psis_k: float = 0.5  # an approximate fit (models.approx): PSIS k_hat instead of R-hat/ESS/NUTS checks
    # regime HMM: a state expected to last fewer bars is a warning (models.regime.state_durations). Measured:
    # the misfit states of a jump-dominated synthetic market last 2.0-2.3 bars, the shortest on the real
    # datasets 3.0 (docs/models/regime.md, "Persistence")
    min_regime_duration_bars: float = 2.5


@dataclass(frozen=True)
class GateVerdict:
    """``passed`` and the human-readable reasons (``failures`` block export,
    ``warnings`` do not)."""

    passed: bool
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.passed

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failures": list(self.failures), "warnings": list(self.warnings)}


# =========================================================================== identity
def _file_sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _source_files(m: ModuleType | str | Path) -> list[Path]:
    """The source file of a module or path; every ``.py`` file of a package."""
    if not isinstance(m, ModuleType):
        return [Path(m)]
    if hasattr(m, "__path__"):
        return sorted(p for d in m.__path__ for p in Path(d).rglob("*.py"))
    return [Path(inspect.getsourcefile(m))]


def code_version(*modules: ModuleType | str | Path) -> str:
    """The package version plus the sha256 of the given modules' source files (for a
    package, of every module in it, so that editing any of them changes the version)."""
    try:
        from importlib.metadata import version

        pkg = version("mm-calibration")
    except Exception:  # not installed as a distribution (e.g. run from a checkout)
        pkg = "0+unknown"
    shas = []
    for m in modules:
        shas.extend(_file_sha(path)[:16] for path in _source_files(m))
    return pkg + ("+" + ".".join(shas) if shas else "")


def model_version(model_name: str, config: Mapping[str, Any] | BaseModel,
                  *modules: ModuleType | str | Path) -> str:
    """Model identity: ``"<name>-<12 hex>"``, the hash of the model config plus
    the code version (pymc-marketing style). Stored as ``idata.attrs["model_version"]``."""
    cfg = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)
    payload = json.dumps({"model": model_name, "config": cfg, "code": code_version(*modules)},
                         sort_keys=True, default=str)
    return f"{model_name}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


# =========================================================================== sampling
def _chain_method(cfg: SamplerConfig) -> str:
    if cfg.numpyro_chain_method != "auto":
        return cfg.numpyro_chain_method
    import jax

    if cfg.chains > 1 and jax.local_device_count() >= cfg.chains and cfg.resolved_cores() > 1:
        return "parallel"
    return "sequential"


def _n_observed(model) -> int:
    n = 0
    for rv in model.observed_RVs:
        val = model.rvs_to_values[rv]
        data = getattr(val, "data", None)
        if data is None:
            try:
                data = val.eval()
            except Exception:
                return -1
        n += int(np.size(data))
    return n


LOG_LIKELIHOOD_MODE = "JAX"
"""pytensor mode of the pointwise log-likelihood function (why JAX: docs/sampling.md)."""


SAMPLE_STATS_PER_DRAW = {"nutpie": 13, "pymc": 18, "numpyro": 7}
"""Sampler statistics stored per draw (energy, tree depth, step size, divergence, ...),
counted from each sampler's ``sample_stats`` group."""


class SampleSizeError(ValueError):
    """The trace of ``draws x chains`` would not fit in the memory available."""


def available_memory() -> int | None:
    """Bytes of memory this process can still take: ``MemAvailable`` of /proc/meminfo
    (Linux), else the free physical pages (``os.sysconf``), lowered to what a cgroup v2
    memory limit leaves; None where none of these is known."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            pass
    try:  # cgroup v2: "0::/path" in /proc/self/cgroup, memory.max and memory.current under it
        rel = next(ln[3:] for ln in Path("/proc/self/cgroup").read_text().splitlines() if ln.startswith("0::"))
        d = Path("/sys/fs/cgroup") / rel.lstrip("/")
        limit = (d / "memory.max").read_text().strip()
        if limit != "max":
            left = max(0, int(limit) - int((d / "memory.current").read_text()))
            avail = left if avail is None else min(avail, left)
    except (OSError, ValueError, StopIteration):
        pass
    return avail


def _posterior_scalars(model, var_names: Sequence[str] | None) -> int:
    """Scalars one draw of the posterior holds: the free variables and deterministics
    (those of ``var_names`` when given), from their shapes."""
    import pytensor
    import pytensor.tensor as pt

    variables = [v for v in (*model.free_RVs, *model.deterministics)
                 if var_names is None or v.name in var_names]
    if not variables:
        return 0
    try:
        f = pytensor.function([], [pt.as_tensor(v.shape) for v in variables],
                              givens=[(o, model.rvs_to_values[o]) for o in model.observed_RVs],
                              mode=pytensor.compile.mode.FAST_COMPILE, on_unused_input="ignore")
        return int(sum(np.prod(shape, dtype=np.int64) for shape in f()))
    except Exception:  # a shape that needs the data to compute: the free variables' own sizes
        return int(sum(np.size(v) for v in model.initial_point().values()))


def trace_bytes(draws: int, chains: int, per_draw: int) -> int:
    """Bytes of a trace of ``draws x chains`` draws of ``per_draw`` float64 values."""
    return int(draws) * int(chains) * int(per_draw) * 8


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.1f} MB"


def check_trace_fits(draws: int, chains: int, per_draw: int, what: str = "") -> None:
    """Raise :class:`SampleSizeError` when ``draws x chains x per_draw`` float64 values
    exceed :func:`available_memory` (no check where that is unknown). ``what`` says
    what a draw holds, for the message."""
    need = trace_bytes(draws, chains, per_draw)
    avail = available_memory()
    if avail is not None and need > avail:
        raise SampleSizeError(
            f"draws x chains = {draws:,} x {chains:,} would need about {_gb(need)} for the trace "
            f"({per_draw:,} values per draw{': ' + what if what else ''}; 8 bytes each), more than the "
            f"{_gb(avail)} of memory available: lower the draws or the chains")


def sample(model, config: SamplerConfig | None = None, *, var_names: Sequence[str] | None = None):
    """Sample ``model`` with NUTS as configured; returns an ``az.InferenceData``.

    Refuses (:class:`SampleSizeError`) a trace larger than the memory available
    (:func:`check_trace_fits`: posterior scalars, sampler statistics and pointwise
    log-likelihood per draw, times draws x chains) before sampling.
    Adds ``log_likelihood`` (docs/sampling.md) and ``idata.attrs``:
    ``sampler``, ``seed``, ``draws``, ``tune``, ``chains``, ``target_accept``,
    ``sampling_wall_s`` (compilation + sampling, wall clock) and, when the
    pointwise log-likelihood was skipped, ``log_likelihood_note``.
    """
    import pymc as pm

    cfg = config or SamplerConfig()
    if cfg.inference != "nuts":
        from models.approx import sample_approx

        return sample_approx(model, cfg, var_names=var_names, nuts=sample, log_likelihood=add_log_likelihood)
    n_post = _posterior_scalars(model, var_names)
    n_stats = SAMPLE_STATS_PER_DRAW.get(cfg.sampler, 0)
    n_obs = _n_observed(model) if cfg.log_likelihood and model.observed_RVs else 0
    n_ll = n_obs if 0 < n_obs * cfg.chains * cfg.draws <= cfg.max_log_likelihood_size else 0
    check_trace_fits(cfg.draws, cfg.chains, n_post + n_stats + n_ll,
                     f"{n_post:,} posterior, {n_stats} sampler statistics, {n_ll:,} log-likelihood")
    cores = cfg.resolved_cores()
    kwargs: dict[str, Any] = dict(
        draws=cfg.draws, tune=cfg.tune, chains=cfg.chains, random_seed=cfg.seed,
        target_accept=cfg.target_accept, progressbar=cfg.progressbar, model=model,
        nuts_sampler=cfg.sampler, compute_convergence_checks=False, var_names=var_names,
    )
    if cfg.sampler == "pymc":
        kwargs["cores"] = cores
        if cores > 1 and cfg.chains > 1:
            if cfg.mp_ctx != "auto":
                kwargs["mp_ctx"] = cfg.mp_ctx
            elif "jax" in sys.modules:
                kwargs["mp_ctx"] = "spawn"
    elif cfg.sampler == "numpyro":
        kwargs["nuts_sampler_kwargs"] = {"chain_method": _chain_method(cfg)}
    elif cfg.sampler == "nutpie":
        kwargs["nuts_sampler_kwargs"] = {"backend": cfg.nutpie_backend, "cores": cores,
                                         "gradient_backend": cfg.nutpie_gradient_backend,
                                         "save_warmup": False,
                                         "low_rank_modified_mass_matrix": cfg.nutpie_mass_matrix == "low_rank"}
    t0 = time.perf_counter()
    idata = pm.sample(**kwargs)
    wall = time.perf_counter() - t0
    add_log_likelihood(idata, model, cfg)
    idata.attrs.update({
        "sampler": cfg.sampler, "seed": int(cfg.seed), "draws": int(cfg.draws),
        "tune": int(cfg.tune), "chains": int(cfg.chains),
        "target_accept": float(cfg.target_accept), "sampling_wall_s": float(wall),
    })
    if cfg.sampler == "nutpie":
        idata.attrs["nutpie_mass_matrix"] = cfg.nutpie_mass_matrix
    return idata


_FITS_IN_FLIGHT = 0
_FITS_LOCK = threading.Lock()


def memory_maps() -> tuple[int, int] | None:
    """(memory mappings of this process, ``vm.max_map_count``), None without /proc."""
    try:
        with open("/proc/self/maps", "rb") as f:
            n = sum(1 for _ in f)
        return n, int(Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):
        return None


def _release_due(last: bool) -> bool:
    """Whether to drop the compiled code now: between fits once this process holds a
    quarter of the mappings the kernel allows, or even under another fit at three
    quarters (it recompiles, rather than the process aborting); between fits wherever
    the count cannot be read."""
    m = memory_maps()
    if m is None:
        return last
    n, cap = m
    return n > 0.75 * cap or (last and n > 0.25 * cap)


def _trim_heap() -> None:
    """Give the C heap's free pages back to the kernel (glibc ``malloc_trim``; a no-op
    elsewhere). glibc keeps the pages a thread's arena freed: a worker's resident memory
    grew ~0.8 GB per asset and one ``malloc_trim(0)`` took it from 7.5 to 3.0 GB
    (benchmarks/README.md, "Worker memory"); Dask's nanny trims only the main arena
    (``MALLOC_TRIM_THRESHOLD_``)."""
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library this process runs on
    except (OSError, AttributeError):  # not glibc
        return
    trim(0)


@contextmanager
def releasing_fit_memory() -> Iterator[None]:
    """Around one fit in a long-lived process (a Dask worker, ``mmcal serve``): when the
    last fit in flight ends, free the fit's memory for good (``gc.collect`` and
    :func:`_trim_heap`), and drop JAX's compiled executables (``jax.clear_caches``) when
    the process's memory mappings near ``vm.max_map_count`` (:func:`_release_due`).
    Every fit compiles functions of its own that nothing reuses, and each executable
    keeps mappings; a worker calibrating assets one after another reached the limit
    (65,530) after 7 assets and XLA aborted it ("LLVM ERROR: Unable to allocate section
    memory"). Not dropped after every fit: each clear makes the next fits recompile what
    they share (a cost not separated from the machine's variation: benchmarks/README.md,
    "Worker memory")."""
    global _FITS_IN_FLIGHT
    with _FITS_LOCK:
        _FITS_IN_FLIGHT += 1
    try:
        yield
    finally:
        with _FITS_LOCK:  # held while clearing: no fit of this process starts compiling meanwhile
            _FITS_IN_FLIGHT -= 1
            last = _FITS_IN_FLIGHT == 0
            if "jax" in sys.modules and _release_due(last):
                sys.modules["jax"].clear_caches()
            if last:
                import gc

                gc.collect()
                _trim_heap()


def add_log_likelihood(idata, model, cfg: SamplerConfig) -> None:
    """The pointwise log-likelihood group (``LOG_LIKELIHOOD_MODE``), or
    ``attrs["log_likelihood_note"]`` when larger than ``max_log_likelihood_size``."""
    import pymc as pm

    if not (cfg.log_likelihood and model.observed_RVs):
        return
    n_obs = _n_observed(model)
    size = n_obs * cfg.chains * cfg.draws
    if n_obs < 0 or size > cfg.max_log_likelihood_size:
        idata.attrs["log_likelihood_note"] = (f"pointwise log-likelihood skipped: {size} elements > "
                                              f"max_log_likelihood_size={cfg.max_log_likelihood_size}")
    else:
        pm.compute_log_likelihood(idata, model=model, extend_inferencedata=True,
                                  progressbar=False, compile_kwargs={"mode": LOG_LIKELIHOOD_MODE})


# =========================================================================== fit assets
def asset_index(assets: Sequence[str], asset: str | None) -> int:
    """Index of ``asset`` among a fit's ``assets``; None is allowed for a one-asset fit."""
    assets = list(assets)
    if asset is None:
        if len(assets) > 1:
            raise ValueError(f"the fit holds several assets {assets}: pass asset=")
        return 0
    if asset not in assets:
        raise ValueError(f"asset {asset!r} not in the fit ({assets})")
    return assets.index(asset)


# =========================================================================== names
def _label(v: Any) -> str:
    if isinstance(v, (np.generic,)):
        v = v.item()
    return str(v)


def flat_names(name: str, da) -> list[tuple[str, dict[str, Any]]]:
    """Scalar names of a posterior variable and the selection for each.

    ``hawkes_branching`` with dims (target, source) and coords buy/sell gives
    ``hawkes_branching[buy,buy]``, ``hawkes_branching[buy,sell]``, ...
    (row-major over the variable's own dims, chain/draw excluded); a scalar
    variable keeps its name; dims without coordinates use the integer index.
    """
    dims = [d for d in da.dims if d not in SAMPLE_DIMS]
    if not dims:
        return [(name, {})]
    values = []
    for d in dims:
        if d in da.coords:
            values.append([_label(x) for x in da.coords[d].values])
        else:
            values.append([str(i) for i in range(da.sizes[d])])
    out = []
    for idx in np.ndindex(*[len(v) for v in values]):
        labels = [values[k][i] for k, i in enumerate(idx)]
        out.append((f"{name}[{','.join(labels)}]", {d: i for d, i in zip(dims, idx)}))
    return out


def flatten(ds, var_names: Iterable[str] | None = None) -> dict[str, Any]:
    """``{flat name: value}`` for every scalar of the variables of an xarray
    Dataset (e.g. the output of ``az.rhat``); values keep any chain/draw dims."""
    names = list(var_names) if var_names is not None else list(ds.data_vars)
    out: dict[str, Any] = {}
    for v in names:
        da = ds[v]
        for flat, sel in flat_names(v, da):
            out[flat] = da.isel(sel).values if sel else da.values
    return out


def _posterior_names(idata, var_names):
    if var_names is None:
        return list(idata.posterior.data_vars)
    missing = [v for v in var_names if v not in idata.posterior]
    if missing:
        raise KeyError(f"not in the posterior: {missing}; have {list(idata.posterior.data_vars)}")
    return list(var_names)


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


# =========================================================================== diagnostics
def _loo(idata, loo_var: str | None) -> dict[str, Any]:
    import arviz as az
    import xarray as xr

    ll = idata.log_likelihood
    names = [loo_var] if loo_var else list(ll.data_vars)
    if len(names) == 1:
        src, var = idata, names[0]
    else:
        C, D = ll.sizes["chain"], ll.sizes["draw"]
        vals = np.concatenate([ll[v].transpose("chain", "draw", ...).values.reshape(C, D, -1)
                               for v in names], axis=2)
        joint = xr.Dataset({"__joint__": (("chain", "draw", "__obs__"), vals)},
                           coords={"chain": ll.chain, "draw": ll.draw})
        src, var = az.InferenceData(posterior=idata.posterior, log_likelihood=joint), "__joint__"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = az.loo(src, pointwise=True, var_name=var)
    k = np.asarray(res["pareto_k"]).ravel()
    return {
        "loo_elpd": _finite(res["elpd_loo"]), "loo_se": _finite(res["se"]),
        "p_loo": _finite(res["p_loo"]), "pareto_k_max": _finite(np.max(k)) if k.size else None,
        "pareto_k_over_0.7": int(np.sum(k > 0.7)), "loo_n": int(k.size),
        "loo_vars": names, "loo_warnings": sorted({str(w.message).split("\n")[0] for w in caught}),
        "pareto_k": k,
    }


def diagnostics(idata, var_names: Sequence[str] | None = None, *, loo_var: str | None = None) -> dict[str, Any]:
    """Convergence and fit diagnostics of a posterior (JSON-friendly; None = not available).

    Keys: ``r_hat_max`` / ``r_hat_worst`` (rank-normalised split R-hat, the worst
    scalar by its flat name), ``ess_bulk_min`` / ``ess_bulk_worst``,
    ``ess_tail_min`` / ``ess_tail_worst``, ``per_param`` ({flat name: {r_hat,
    ess_bulk, ess_tail}}), ``divergences``, ``bfmi_min`` (over chains, az.bfmi),
    ``chains``, ``draws``, ``sampling_time_s``, and with a ``log_likelihood``
    group ``loo_elpd``, ``loo_se``, ``p_loo``, ``pareto_k_max``,
    ``pareto_k_over_0.7``, ``loo_n`` (several observed variables:
    docs/sampling.md). Scalars whose R-hat is undefined (constants) are skipped.
    """
    import arviz as az

    names = _posterior_names(idata, var_names)
    post = idata.posterior
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rh = flatten(az.rhat(idata, var_names=names))
        eb = flatten(az.ess(idata, var_names=names, method="bulk"))
        et = flatten(az.ess(idata, var_names=names, method="tail"))
    per = {k: {"r_hat": _finite(rh[k]), "ess_bulk": _finite(eb[k]), "ess_tail": _finite(et[k])}
           for k in rh}

    def worst(key, fn):
        items = [(v[key], k) for k, v in per.items() if v[key] is not None]
        if not items:
            return None, None
        val, name = fn(items)
        return val, name

    r_max, r_name = worst("r_hat", max)
    b_min, b_name = worst("ess_bulk", min)
    t_min, t_name = worst("ess_tail", min)
    out: dict[str, Any] = {
        "r_hat_max": r_max, "r_hat_worst": r_name,
        "ess_bulk_min": b_min, "ess_bulk_worst": b_name,
        "ess_tail_min": t_min, "ess_tail_worst": t_name,
        "per_param": per,
        "chains": int(post.sizes["chain"]), "draws": int(post.sizes["draw"]),
        "divergences": None, "bfmi_min": None,
        "sampling_time_s": _finite(idata.attrs.get("sampling_wall_s",
                                                   post.attrs.get("sampling_time", float("nan")))),
    }
    if "inference" in idata.attrs:  # models.approx: method, k_hat of the approximation, why
        out.update({k: idata.attrs.get(k) for k in ("inference", "inference_requested", "inference_reason")})
        out.update({k: _finite(idata.attrs[k]) for k in ("psis_khat", "psis_ess") if k in idata.attrs})
    stats = idata.get("sample_stats") if hasattr(idata, "get") else getattr(idata, "sample_stats", None)
    if stats is not None:
        if "diverging" in stats:
            out["divergences"] = int(np.asarray(stats["diverging"]).sum())
        if "energy" in stats:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out["bfmi_min"] = _finite(np.min(az.bfmi(idata)))
    if "log_likelihood" in idata.groups():
        loo = _loo(idata, loo_var)
        loo.pop("pareto_k")
        out.update(loo)
    else:
        out["loo_note"] = idata.attrs.get("log_likelihood_note", "no log_likelihood group")
    return out


def _nuts_checks(diag: Mapping[str, Any], cfg: GateConfig, failures: list[str], notes: list[str]) -> None:
    """R-hat, ESS, divergences and BFMI of an MCMC fit (:func:`gate`)."""
    per = diag.get("per_param") or {}

    def more(key, bad):
        n = sum(1 for v in per.values() if v.get(key) is not None and bad(v[key]))
        return f" (and {n - 1} more)" if n > 1 else ""

    r = diag.get("r_hat_max")
    if r is None:
        failures.append("r_hat unavailable (no finite R-hat for any parameter)")
    elif r > cfg.max_r_hat:
        failures.append(f"r_hat {r:.3f} > {cfg.max_r_hat:g} for {diag.get('r_hat_worst')}"
                        + more("r_hat", lambda x: x > cfg.max_r_hat))
    for key, lim in (("ess_bulk", cfg.min_ess_bulk), ("ess_tail", cfg.min_ess_tail)):
        v = diag.get(f"{key}_min")
        if v is None:
            failures.append(f"{key} unavailable")
        elif v < lim:
            failures.append(f"{key} {v:.0f} < {lim:g} for {diag.get(f'{key}_worst')}"
                            + more(key, lambda x, lim=lim: x < lim))
    dv = diag.get("divergences")
    total = (diag.get("chains") or 0) * (diag.get("draws") or 0)
    if dv is None:
        notes.append("no divergence statistics in sample_stats")
    elif dv > cfg.max_divergences:
        failures.append(f"{dv} divergent transitions > {cfg.max_divergences} allowed "
                        f"(of {total} draws)")
    b = diag.get("bfmi_min")
    if b is None:
        notes.append("BFMI unavailable (no energy in sample_stats)")
    elif b < cfg.min_bfmi:
        failures.append(f"BFMI {b:.2f} < {cfg.min_bfmi:g} (energy poorly explored)")


def gate(diag: Mapping[str, Any], config: GateConfig | None = None) -> GateVerdict:
    """Check diagnostics against the gate; failures read like
    ``"r_hat 1.04 > 1.01 for hawkes_decay (and 2 more)"``. A fit by an approximation
    (``diag["inference"] == "laplace"``, :mod:`models.approx`) is checked on its PSIS
    ``k_hat`` (< ``max_psis_k``) instead of R-hat, ESS, divergences and BFMI."""
    cfg = config or GateConfig()
    failures: list[str] = []
    notes: list[str] = []
    if diag.get("inference") == "laplace":
        k = diag.get("psis_khat")
        if k is None or not k < cfg.max_psis_k:
            failures.append(f"PSIS k_hat {'unavailable' if k is None else f'{k:.2f}'} >= {cfg.max_psis_k:g} "
                            "(Laplace approximation unreliable)")
    else:
        _nuts_checks(diag, cfg, failures, notes)
    k = diag.get("pareto_k_max")
    if k is not None and k > cfg.max_pareto_k:
        msg = (f"Pareto k {k:.2f} > {cfg.max_pareto_k:g} for {diag.get('pareto_k_over_0.7', '?')} "
               f"of {diag.get('loo_n', '?')} observations (PSIS-LOO unreliable for them)")
        (failures if cfg.pareto_k_blocks else notes).append(msg)
    if "loo_note" in diag:
        notes.append(f"LOO not computed: {diag['loo_note']}")
    d = diag.get("regime_duration_bars_min")
    if d is not None and d < cfg.min_regime_duration_bars:
        notes.append(f"regime state {diag.get('regime_duration_bars_worst', '?')} lasts {d:.1f} bars on average "
                     f"(< {cfg.min_regime_duration_bars:g}): it holds the spread of the bars' variance within "
                     "regimes, not a regime; the bar statistic is a mixture at this bar length "
                     "(docs/models/regime.md, \"Persistence\": try longer bars or the other volatility estimator)")
    return GateVerdict(passed=not failures, failures=failures, warnings=notes)


# =========================================================================== summaries
def summary_table(idata, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One row per scalar parameter: ``name`` (flat, e.g. ``kappa[high,buy]``),
    ``mean``, ``sd``, ``q05``, ``q95``, ``r_hat``, ``ess_bulk``, ``ess_tail``.

    ``names``: posterior variables to include (default: all).
    """
    import arviz as az

    var_names = _posterior_names(idata, names)
    draws = flatten(idata.posterior, var_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rh = flatten(az.rhat(idata, var_names=var_names))
        eb = flatten(az.ess(idata, var_names=var_names, method="bulk"))
        et = flatten(az.ess(idata, var_names=var_names, method="tail"))
    rows = []
    for name, x in draws.items():
        x = np.asarray(x, dtype=float).ravel()
        q05, q95 = np.quantile(x, [0.05, 0.95])
        rows.append({"name": name, "mean": float(x.mean()), "sd": float(x.std(ddof=1)) if x.size > 1 else 0.0,
                     "q05": float(q05), "q95": float(q95), "r_hat": _finite(rh[name]),
                     "ess_bulk": _finite(eb[name]), "ess_tail": _finite(et[name])})
    return rows
