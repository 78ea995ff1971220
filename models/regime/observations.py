"""The regime model's observations: log realized variance per volatility bar as
:class:`RegimeObs` (DESIGN.md section 3 rules), the synthetic truth as this model
estimates it, and bars simulated from the model's generative process.

Units: ``log_rv`` in natural log units of the bar's variance of the log mid,
bar lengths in seconds, ``sigma_bps`` in bps/sqrt(s). Censoring and the
truth's mapping: docs/models/regime.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mm_runtime.vocabulary import REGIMES
from models.data.observations import ObservationConfig

from .config import K, RegimeConfig
from .hmm import stationary_distribution


# =========================================================================== observations
@dataclass(frozen=True, eq=False)
class RegimeObs:
    """Log realized variance per volatility bar.

    ``log_rv`` (float64, one per bar; natural log of the bar's realized variance),
    ``bar_seconds`` (s), ``censored`` (bool per bar: left-censored at
    ``censor_log_rv``; see docs/models/regime.md), ``bar_start`` (int64 ns, None
    when simulated), ``regimes`` (int8 reference path, e.g. the synthetic truth's
    or the simulated one; never used by the fit; None when unknown), ``asset``,
    ``meta``. ``log_rv_total`` (optional, one per bar): the log of the bar's *realized*
    variance (diffusion plus jumps, floored like ``log_rv``) when ``log_rv`` is a
    jump-robust estimate; the fit turns it into each regime's total volatility
    (``sigma_total_bps``, docs/models/regime_live.md).
    """

    log_rv: np.ndarray
    bar_seconds: float = 10.0
    censored: np.ndarray | None = None
    censor_log_rv: float | None = None
    bar_start: np.ndarray | None = None
    regimes: np.ndarray | None = None
    asset: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    log_rv_total: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.log_rv_total is not None:
            yt = np.asarray(self.log_rv_total, dtype=np.float64)
            if yt.shape != np.shape(self.log_rv) or not np.all(np.isfinite(yt)):
                raise ValueError("log_rv_total must hold one finite value per bar")
            object.__setattr__(self, "log_rv_total", yt)
        y = np.asarray(self.log_rv, dtype=np.float64)
        object.__setattr__(self, "log_rv", y)
        if y.ndim != 1 or len(y) < 2:
            raise ValueError(f"log_rv must be 1-D with at least 2 bars, got shape {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ValueError(f"log_rv must be finite (bar {int(np.flatnonzero(~np.isfinite(y))[0])} is not)")
        if not (math.isfinite(self.bar_seconds) and self.bar_seconds > 0):
            raise ValueError(f"bar_seconds must be > 0, got {self.bar_seconds}")
        c = np.zeros(len(y), bool) if self.censored is None else np.asarray(self.censored, bool)
        if c.shape != y.shape:
            raise ValueError("censored must have one entry per bar")
        object.__setattr__(self, "censored", c)
        if c.any():
            if self.censor_log_rv is None or not math.isfinite(self.censor_log_rv):
                raise ValueError("censored bars need a finite censor_log_rv")
            if c.all():
                raise ValueError("every bar is censored: no price moved in any bar")
        if self.regimes is not None:
            r = np.asarray(self.regimes)
            if r.shape != y.shape or (len(r) and (r.min() < 0 or r.max() >= K)):
                raise ValueError(f"regimes must be one int in 0..{K - 1} per bar")
            object.__setattr__(self, "regimes", r.astype(np.int8))

    @property
    def n_bars(self) -> int:
        return int(len(self.log_rv))

    @property
    def n_censored(self) -> int:
        return int(self.censored.sum())

    def uncensored(self) -> np.ndarray:
        return self.log_rv[~self.censored]


def observations(market, regimes: Any = None, *, config: RegimeConfig | ObservationConfig | None = None,
                 bars=None) -> RegimeObs:
    """Log realized variance per bar of one market (DESIGN.md section 3,
    :func:`models.data.observations.volatility_bars`).

    ``regimes``: an optional *reference* path (one int per bar, e.g. to score the
    fit); when None and the market is synthetic, the truth's ``regime_path`` is
    attached (matched by bar start time). The fit never uses it.
    ``config``: a :class:`RegimeConfig` (its ``observation``) or an
    :class:`ObservationConfig` (default: the defaults, 10 s bars).
    Floored bars (no price change) are marked censored when
    ``RegimeConfig.censor_floored`` (default); see docs/models/regime.md.
    """
    from models.data import observations as ob

    rc = config if isinstance(config, RegimeConfig) else RegimeConfig(
        observation=config or ObservationConfig())
    cfg = rc.observation
    if bars is None:
        bars = ob.volatility_bars(market, cfg)
    else:
        # bars made with other rules (e.g. ob.auto_bar_config): their bar length and
        # variance estimator win, and are what the observations record
        upd = {}
        if float(bars.attrs.get("bar_seconds", cfg.bar_seconds)) != cfg.bar_seconds:
            upd["bar_seconds"] = float(bars.attrs["bar_seconds"])
        if bars.attrs.get("volatility_estimator", cfg.volatility_estimator) != cfg.volatility_estimator:
            upd["volatility_estimator"] = str(bars.attrs["volatility_estimator"])
        if upd:
            cfg = cfg.model_copy(update=upd)
    y = bars["log_rv"].to_numpy(dtype=np.float64)
    floor = float(bars.attrs.get("log_rv_floor", math.log((cfg.rv_floor_sigma_bps * 1e-4) ** 2 * cfg.bar_seconds)))
    floored = y <= floor + 1e-9
    censored = floored if rc.censor_floored else np.zeros(len(y), bool)
    censor = float(y[~floored].min()) if (censored.any() and (~floored).any()) else None
    start = bars["bar_start"].to_numpy(dtype=np.int64)
    total = None
    if "rv" in bars and "n_returns" in bars:
        # the realized (total) variance rescaled to a full bar like log_rv, same floor
        m = round(cfg.bar_seconds / float(bars.attrs.get("rv_sample_seconds", cfg.rv_sample_seconds)))
        n_ret = np.maximum(bars["n_returns"].to_numpy(dtype=float), 1.0)
        total = np.log(np.maximum(bars["rv"].to_numpy(dtype=float) * m / n_ret, math.exp(floor)))
    ref = None
    if regimes is not None:
        ref = ob.label_regimes(bars, regimes)
    elif getattr(market, "truth", None) and "regime_path" in market.truth:
        ref = _truth_path_at(market.truth, start)
    return RegimeObs(log_rv=y, bar_seconds=float(cfg.bar_seconds), censored=censored,
                     censor_log_rv=censor, bar_start=start, regimes=ref, log_rv_total=total,
                     asset=str(getattr(market, "asset", "")),
                     meta={"source": getattr(market, "source", None), "n_floored": int(floored.sum()),
                           "log_rv_floor": floor, "observation_config": cfg.model_dump(mode="json")})


JUMP_ROBUST_ESTIMATORS = ("bipower", "medrv", "minrv")
"""Values of ``ObservationConfig.volatility_estimator`` that estimate the diffusive
variance of a bar (jumps removed): the regime's ``sigma_bps`` is then the
synthetic market's ``sigma_diffusion_bps``."""


def market_truth(truth: Mapping[str, Any], observation: ObservationConfig | None = None) -> dict[str, float]:
    """The synthetic market's flat truth (``truth["params"]``, DESIGN.md section 8
    names) as this model estimates it with the bars of ``observation`` (default
    :class:`ObservationConfig`): with a jump-robust ``volatility_estimator``
    (:data:`JUMP_ROBUST_ESTIMATORS`) the bars measure the diffusion only, so
    ``sigma_bps[r]`` is the truth's ``sigma_diffusion_bps[r]``; with
    ``"realized"`` it is the truth's ``sigma_bps[r]`` (diffusion plus informed
    jumps). Transition and stationary probabilities are the truth's either way.
    Raises ``KeyError`` naming the missing entry when the truth lacks one."""
    oc = observation or ObservationConfig()
    p = {k: float(v) for k, v in _flat(truth).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for r in REGIMES:
        if f"sigma_bps[{r}]" in p:
            p[f"sigma_total_bps[{r}]"] = p[f"sigma_bps[{r}]"]
    if oc.volatility_estimator in JUMP_ROBUST_ESTIMATORS:
        for r in REGIMES:
            key = f"sigma_diffusion_bps[{r}]"
            if key not in p:
                raise KeyError(f"truth has no {key!r}: needed to score a jump-robust "
                               f"({oc.volatility_estimator}) regime fit")
            p[f"sigma_bps[{r}]"] = p[key]
    return p


def _truth_path_at(truth: Mapping[str, Any], bar_start: np.ndarray) -> np.ndarray | None:
    """The synthetic truth's regime of the truth bar containing each bar start."""
    path = np.asarray(truth["regime_path"], dtype=np.int8)
    b_ns = int(round(float(truth.get("bar_seconds", 10.0)) * 1e9))
    t0 = int(truth.get("start_ns", bar_start[0] if len(bar_start) else 0))
    idx = (np.asarray(bar_start, dtype=np.int64) - t0) // b_ns
    if len(idx) == 0 or idx.min() < 0:
        return None
    return path[np.minimum(idx, len(path) - 1)]


# =========================================================================== truth & simulation
DEFAULT_TRANSITION = (
    (0.970, 0.020, 0.008, 0.002),
    (0.015, 0.960, 0.020, 0.005),
    (0.010, 0.030, 0.940, 0.020),
    (0.005, 0.015, 0.060, 0.920),
)
"""A sticky matrix for simulation tests (stays 0.97/0.96/0.94/0.92 per bar, i.e.
mean durations of 33/25/17/12 bars; stationary ~0.28/0.37/0.25/0.09)."""
DEFAULT_LOG_RV_SD = 0.47
"""Default emission sd of log rv: the sampling sd of log(chi2_10 / 10), i.e. a
Gaussian diffusion sampled with 10 returns per bar (sqrt(trigamma(5)))."""


def _flat(truth: Mapping[str, Any]) -> dict[str, Any]:
    p = dict(truth.get("params", {})) if isinstance(truth.get("params"), Mapping) else {}
    p.update({k: v for k, v in truth.items() if k != "params"})
    return p


def truth_arrays(truth: Mapping[str, Any], bar_seconds: float | None = None) -> dict[str, Any]:
    """``transition`` (4x4), ``log_rv_mean`` (4), ``log_rv_sd`` (4), ``bar_seconds``
    from a truth mapping (flat DESIGN.md section 8 names or a synthetic truth dict).

    * transition: ``regime_transition`` (4x4 nested list) or the flat
      ``regime_transition[<from>,<to>]`` (default :data:`DEFAULT_TRANSITION`);
    * emission sd: ``log_rv_sd[<regime>]`` (default :data:`DEFAULT_LOG_RV_SD`);
    * emission mean: ``log_rv_mean[<regime>]``, else from the expected bar rv
      ``rv_mean[<regime>]``, else from ``sigma_bps[<regime>]`` (total
      volatility, bps/sqrt(s)): ``m = log(E rv) - s^2/2`` (the
      log-normal mean, docs/models/regime.md).
    """
    p = _flat(truth)
    B = float(bar_seconds if bar_seconds is not None else p.get("bar_seconds", 10.0))
    if "regime_transition" in p and not isinstance(p["regime_transition"], (int, float)):
        P = np.asarray(p["regime_transition"], dtype=float)
    elif f"regime_transition[{REGIMES[0]},{REGIMES[0]}]" in p:
        P = np.array([[float(p[f"regime_transition[{a},{b}]"]) for b in REGIMES] for a in REGIMES])
    else:
        P = np.asarray(DEFAULT_TRANSITION, dtype=float)
    if P.shape != (K, K) or np.any(P < 0) or not np.allclose(P.sum(axis=1), 1.0, atol=1e-9):
        raise ValueError(f"regime_transition must be a {K}x{K} matrix of rows summing to 1")
    s = np.array([float(p.get(f"log_rv_sd[{r}]", DEFAULT_LOG_RV_SD)) for r in REGIMES])
    if all(f"log_rv_mean[{r}]" in p for r in REGIMES):
        m = np.array([float(p[f"log_rv_mean[{r}]"]) for r in REGIMES])
    else:
        for key, conv in (("rv_mean", lambda v: v),
                          ("sigma_bps", lambda v: (v * 1e-4) ** 2 * B)):
            if all(f"{key}[{r}]" in p for r in REGIMES):
                erv = np.array([conv(float(p[f"{key}[{r}]"])) for r in REGIMES])
                m = np.log(erv) - s**2 / 2.0
                break
        else:
            raise ValueError("truth needs log_rv_mean[<regime>], rv_mean[<regime>], "
                             "or sigma_bps[<regime>] for every regime")
    if np.any(np.diff(m) <= 0) or np.any(s <= 0):
        raise ValueError(f"emission means must increase strictly and sds be > 0, got {m}, {s}")
    return {"transition": P, "log_rv_mean": m, "log_rv_sd": s, "bar_seconds": B}


def truth_params(truth: Mapping[str, Any], bar_seconds: float | None = None) -> dict[str, float]:
    """Flat names of the regime model's parameters for a truth (see :func:`truth_arrays`):
    ``regime_transition[a,b]``, ``regime_stationary[r]``, ``log_rv_mean[r]``,
    ``log_rv_sd[r]``, ``sigma_bps[r]`` (= sqrt(E[rv|r]/B) 1e4, total volatility)."""
    t = truth_arrays(truth, bar_seconds)
    P, m, s, B = t["transition"], t["log_rv_mean"], t["log_rv_sd"], t["bar_seconds"]
    pi = stationary_distribution(P)
    sig = np.sqrt(np.exp(m + s**2 / 2) / B) * 1e4
    out: dict[str, float] = {}
    for i, a in enumerate(REGIMES):
        for j, b in enumerate(REGIMES):
            out[f"regime_transition[{a},{b}]"] = float(P[i, j])
    for k, r in enumerate(REGIMES):
        out[f"regime_stationary[{r}]"] = float(pi[k])
        out[f"log_rv_mean[{r}]"] = float(m[k])
        out[f"log_rv_sd[{r}]"] = float(s[k])
        out[f"sigma_bps[{r}]"] = float(sig[k])
    return out


def simulate_path(P: np.ndarray, n_bars: int, rng: np.random.Generator,
                  initial: np.ndarray | None = None) -> np.ndarray:
    """A Markov chain path (int8) of ``n_bars`` steps, the first drawn from
    ``initial`` (default: the stationary distribution of P); the synthetic
    market's path simulator."""
    from models.data.synthetic import markov_path

    P = np.asarray(P, dtype=float)
    init = stationary_distribution(P) if initial is None else np.asarray(initial, dtype=float)
    return markov_path(rng, P, init, n_bars)


def simulate(truth: Mapping[str, Any] | None = None, rng: np.random.Generator | int | None = None, *,
             n_bars: int = 500, bar_seconds: float | None = None, asset: str = "SIM") -> RegimeObs:
    """Bars drawn from the model's exact generative process: a Markov chain path
    started from the stationary distribution of P, then ``log_rv_t ~ Normal(m_z,
    s_z)`` (no censoring). ``truth``: see :func:`truth_arrays` (None = the
    defaults: :data:`DEFAULT_TRANSITION`, volatilities ``sigma_bps`` 0.10 / 0.17 /
    0.27 / 0.40 bps/sqrt(s) (the synthetic market's diffusion levels, here as the
    whole bar variance) and emission sd :data:`DEFAULT_LOG_RV_SD`). The true path
    is ``obs.regimes``; the true parameters (flat names) are ``obs.meta["truth"]``."""
    truth = truth if truth is not None else {f"sigma_bps[{r}]": v
                                             for r, v in zip(REGIMES, (0.10, 0.17, 0.27, 0.40))}
    t = truth_arrays(truth, bar_seconds)
    rng = np.random.default_rng(rng)
    path = simulate_path(t["transition"], int(n_bars), rng)
    y = t["log_rv_mean"][path] + t["log_rv_sd"][path] * rng.standard_normal(int(n_bars))
    return RegimeObs(log_rv=y, bar_seconds=t["bar_seconds"], regimes=path, asset=asset,
                     meta={"truth": truth_params(truth, t["bar_seconds"]), "simulated": True})
