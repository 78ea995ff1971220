"""The regime HMM as a PyMC model (the forward algorithm as the JAX Op of
:mod:`.op`, or the ``pytensor.scan`` reference graph; anchored at the EM point),
the fit and the model version.

Units: ``log_rv`` in natural log units, ``sigma_bps`` in bps/sqrt(s). Model,
priors, likelihood and cost: docs/models/regime.md.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from mm_runtime.vocabulary import REGIMES
from models.sampling import SamplerConfig, model_version, sample

from .config import K, MODEL_NAME, RegimeConfig
from .em import em_fit, prior_centres
from .hmm import _CENSOR_Z_MIN
from .observations import RegimeObs, simulate_path
from .op import loglik_op
from .posterior import persistence


# =========================================================================== pytensor model
def _forward_scan(y, m, s, log_P, log_pi, censored: np.ndarray | None, censor_log_rv: float | None):
    """Per-bar one-step-ahead log densities c_t (pytensor vector; docs/models/regime.md):
    the forward algorithm in log space as a ``pytensor.scan``, differentiated by
    pytensor. The reference graph (``RegimeConfig.likelihood="scan"``); the model's
    default is the JAX Op (:func:`.op.loglik_op`)."""
    import pytensor
    import pytensor.tensor as pt
    from pytensor.tensor.math import logsumexp as lse

    z = (y[:, None] - m[None, :]) / s[None, :]
    le = -0.5 * z**2 - pt.log(s)[None, :] - 0.5 * math.log(2.0 * math.pi)
    if censored is not None and np.any(censored):
        zc = pt.maximum((censor_log_rv - m) / s, _CENSOR_Z_MIN)
        lc = pt.log(0.5 * pt.erfc(-zc / math.sqrt(2.0)))
        le = pt.switch(pt.as_tensor(np.asarray(censored, bool))[:, None], lc[None, :], le)

    def step(le_t, f_prev, lP):
        a = lse(f_prev[:, None] + lP, axis=0) + le_t
        c = lse(a)
        return a - c, c

    a0 = log_pi + le[0]
    c0 = lse(a0)
    _, cs = pytensor.scan(step, sequences=[le[1:]], outputs_info=[a0 - c0, None],
                          non_sequences=[log_P], return_updates=False)
    return pt.concatenate([c0[None], cs])


def _core(x, ndim: int):
    """Drop leading (broadcast) batch dims PyMC may add to CustomDist parameters."""
    return x[(0,) * (x.ndim - ndim)] if x.ndim > ndim else x


def _make_logp(obs: RegimeObs, likelihood: str):
    """The observed CustomDist's elementwise log-density: the per-bar terms c_t of
    the JAX Op (``"op"``) or of the scan (``"scan"``)."""
    censored, censor_log_rv = obs.censored, obs.censor_log_rv
    if likelihood not in ("op", "scan"):
        raise ValueError(f"RegimeConfig.likelihood must be 'op' or 'scan', got {likelihood!r}")

    def logp(value, m, s, P, pi):
        import pytensor.tensor as pt

        m, s, P, pi = _core(m, 1), _core(s, 1), _core(P, 2), _core(pi, 1)
        if likelihood == "op":
            return loglik_op(value, m, s, P, pi, censored, censor_log_rv)
        return _forward_scan(value, m, s, pt.log(P), pt.log(pi), censored, censor_log_rv)

    return logp


def _random(m, s, P, pi, rng=None, size=None):
    """Exact simulation of the HMM (uncensored): one path per leading size index."""
    rng = rng if rng is not None else np.random.default_rng()
    m, s, P, pi = (np.asarray(x, dtype=float) for x in (m, s, P, pi))
    m, s, pi = m.reshape(-1, K)[0], s.reshape(-1, K)[0], pi.reshape(-1, K)[0]
    P = P.reshape(-1, K, K)[0]
    size = tuple(size) if size is not None else (1,)
    T = size[-1]
    n = int(np.prod(size[:-1])) if len(size) > 1 else 1
    out = np.empty((n, T))
    for i in range(n):
        path = simulate_path(P, T, rng, initial=pi)
        out[i] = m[path] + s[path] * rng.standard_normal(T)
    return out.reshape(size)


def _anchored(name: str, prior, ref: np.ndarray | float, step: float, log_scale: bool, dims=None):
    """A parameter x written as ``x = ref + step * v`` (``log_scale``: ``x = ref *
    exp(step * v)``) with the value v sampled and the prior of x exactly
    ``prior`` (a PyMC distribution ``.dist``): v's log-density is
    ``logp_prior(x) + log |dx/dv|``. v's support point is 0, so every sampler starts
    at x = ref (the EM reference) and PyMC's uniform [-1, 1] initial jitter moves x
    by at most ``step`` (times x). The posterior is unchanged: this only decides
    where the chains start (see :func:`build_model`). Returns x (a Deterministic)."""
    import pymc as pm
    import pytensor.tensor as pt

    ref = np.asarray(ref, dtype=float)
    shape = ref.shape

    def to_x(v):
        return ref * pt.exp(step * v) if log_scale else ref + step * v

    def logp(v):
        x = to_x(v)
        jac = pt.log(step * x) if log_scale else pt.log(step)
        return pm.logp(prior, x) + jac

    def random(rng=None, size=None):
        rng = rng if rng is not None else np.random.default_rng()
        x = pm.draw(prior, draws=1, random_seed=rng)
        x = np.broadcast_to(x, shape)
        return np.log(x / ref) / step if log_scale else (x - ref) / step

    def support_point(rv, size):
        return pt.zeros(shape)

    v = pm.CustomDist(f"{name}_anchored", logp=logp, random=random, support_point=support_point,
                      shape=shape, dims=dims if shape else None)
    return pm.Deterministic(name, to_x(v), dims=dims if shape else None)


def build_model(obs: RegimeObs, config: RegimeConfig | None = None, reference: Mapping[str, Any] | None = None):
    """The PyMC model (docs/models/regime.md) for one sequence of bars.

    ``reference``: where the chains start (``log_rv_mean``, ``log_rv_sd``; default
    :func:`em_fit`). The lowest mean, the gaps and the pooled sd are
    parameterized around it (:func:`_anchored`) so that every sampler, whatever
    its initial jitter, starts next to one consistent configuration of the four
    states; the priors (and so the posterior) do not depend on it."""
    import pymc as pm
    import pytensor.tensor as pt

    cfg = config or RegimeConfig()
    pc = prior_centres(obs, cfg)
    ref = reference if reference is not None else em_fit(obs, cfg)
    ref_m = np.sort(np.asarray(ref["log_rv_mean"], dtype=float))
    ref_sd = np.asarray(ref["log_rv_sd"], dtype=float)
    ref_gaps = np.maximum(np.diff(ref_m), 0.05 * pc["sd_log_rv"])
    coords = {"regime": list(REGIMES), "regime_from": list(REGIMES), "regime_to": list(REGIMES),
              "gap": [f"{REGIMES[k - 1]}-{REGIMES[k]}" for k in range(1, K)],
              "bar": np.arange(obs.n_bars)}
    with pm.Model(coords=coords) as model:
        lowest = _anchored("log_rv_mean_lowest", pm.Normal.dist(pc["mean_lowest_mu"], pc["mean_lowest_sd"]),
                           ref_m[0], 0.1 * float(ref_sd.min()), log_scale=False)
        gaps = _anchored("log_rv_gap", pm.Gamma.dist(cfg.gap_shape, cfg.gap_shape / pc["gap_mean"], shape=K - 1),
                         ref_gaps, 0.1, log_scale=True, dims="gap")
        m = pm.Deterministic("log_rv_mean", pt.concatenate([lowest[None], lowest + pt.cumsum(gaps)]),
                             dims="regime")
        pooled = _anchored("log_rv_sd_pooled", pm.Normal.dist(pc["sd_pooled_mu"], pc["sd_pooled_sd"]),
                           float(np.log(ref_sd).mean()), 0.1, log_scale=False)
        tau = pm.HalfNormal("log_rv_sd_tau", sigma=cfg.sd_tau_scale)
        z = pm.Normal("log_rv_sd_z", 0.0, 1.0, dims="regime")
        s = pm.Deterministic("log_rv_sd", pt.exp(pooled + tau * z), dims="regime")
        kappa0 = cfg.sticky_concentration(obs.bar_seconds)
        if cfg.learn_stickiness:
            excess = pm.LogNormal("regime_stickiness_excess",
                                  mu=math.log(max(kappa0 - cfg.offdiag_concentration, 1e-3)),
                                  sigma=cfg.stickiness_log_sd)
            kappa = pm.Deterministic("regime_stickiness", cfg.offdiag_concentration + excess)
        else:
            kappa = pt.as_tensor(kappa0)
        conc = cfg.offdiag_concentration + pt.eye(K) * (kappa - cfg.offdiag_concentration)
        P = pm.Dirichlet("regime_transition", a=conc, dims=("regime_from", "regime_to"))
        A = (pt.eye(K) - P + pt.ones((K, K))).T
        pi = pm.Deterministic("regime_stationary", pt.linalg.solve(A, pt.ones(K)), dims="regime")
        pm.Deterministic("sigma_bps", pt.sqrt(pt.exp(m + s**2 / 2.0) / obs.bar_seconds) * 1e4, dims="regime")
        pm.CustomDist("log_rv", m, s, P, pi, logp=_make_logp(obs, cfg.likelihood),
                      random=_random, signature="(k),(k),(k,k),(k)->()", observed=obs.log_rv, dims="bar")
    return model


def version(model_config: RegimeConfig | None = None, obs: RegimeObs | None = None) -> str:
    """The model version :func:`fit` stores: hash of ``model_config`` (with the
    observation rules) and the code of every module of :mod:`models.regime`;
    ``obs`` is not used."""
    package = sys.modules[__package__]  # this package (loaded: it holds this module)

    return model_version(MODEL_NAME, model_config or RegimeConfig(), package)


def add_total_sigma(idata, obs: RegimeObs, chunk: int = 250) -> None:
    """Add ``sigma_total_bps`` (chain, draw, regime; bps/sqrt(s)) to the posterior: each
    regime's total volatility (diffusion plus jumps) at every draw,
    ``sqrt(sum_t g_tk rv_t / sum_t g_tk / B) 1e4`` with ``g_tk`` the draw's smoothed
    probability of regime k at bar t (forward-backward) and ``rv_t`` the bar's realized
    variance (``obs.log_rv_total``). With jump-robust bars the emission's ``sigma_bps``
    is the diffusive volatility and this is the total one (docs/models/regime_live.md);
    nothing is added without ``log_rv_total``."""
    import xarray as xr

    from .hmm import emission_logp, forward_backward

    if obs.log_rv_total is None:
        return
    post = idata.posterior

    def draws(name):
        v = np.asarray(post[name].transpose("chain", "draw", ...).values, dtype=float)
        return v.reshape(-1, *v.shape[2:]), v.shape[:2]

    m, shape = draws("log_rv_mean")
    sd, _ = draws("log_rv_sd")
    P, _ = draws("regime_transition")
    pi, _ = draws("regime_stationary")
    rv = np.exp(obs.log_rv_total)
    out = np.empty_like(m)
    with np.errstate(divide="ignore"):
        for a in range(0, len(m), chunk):
            b = slice(a, a + chunk)
            le = emission_logp(obs.log_rv, m[b], sd[b], obs.censored, obs.censor_log_rv)
            g, _ = forward_backward(le, np.log(P[b]), np.log(np.maximum(pi[b], 0.0)))
            w = g.sum(axis=1)
            out[b] = np.sqrt(np.einsum("stk,t->sk", g, rv) / np.maximum(w, 1e-300) / obs.bar_seconds) * 1e4
    post["sigma_total_bps"] = xr.DataArray(out.reshape(*shape, K), dims=("chain", "draw", "regime"),
                                           coords={"regime": list(REGIMES)})


def fit(obs: RegimeObs, sampler: SamplerConfig | None = None, model_config: RegimeConfig | None = None):
    """Sample the posterior; returns ``az.InferenceData`` with the per-bar
    ``log_likelihood`` (``log_rv``: one-step-ahead log densities) and attrs
    ``model_name``, ``model_version`` (hash of ``model_config`` + the package's
    code), ``bar_seconds``, ``n_bars``, ``n_censored``, ``censor_log_rv``,
    ``prior_centres``, ``em_reference`` (JSON: the EM point where the chains
    start, with its log-likelihood) and ``regime_persistence`` (JSON: each state's
    expected duration, :func:`.posterior.persistence`).

    With the JAX Op (``likelihood="op"``, the default) nutpie runs its JAX backend
    (the numba backend would call the Op in numba's object mode) with JAX's own
    gradient of the translated log-density, which goes through the likelihood's
    ``custom_vjp`` (one forward and one reverse pass; pytensor's gradient graph
    costs ~2-3x more per call: docs/models/regime.md, "Likelihood")."""
    mc = model_config or RegimeConfig()
    cfg = sampler or SamplerConfig()
    if mc.likelihood == "op" and cfg.sampler == "nutpie":
        cfg = cfg.model_copy(update={"nutpie_backend": "jax", "nutpie_gradient_backend": "jax"})
    ref = em_fit(obs, mc)
    idata = sample(build_model(obs, mc, reference=ref), cfg)
    add_total_sigma(idata, obs)
    idata.attrs["regime_persistence"] = json.dumps(persistence(idata))
    idata.attrs["model_name"] = MODEL_NAME
    idata.attrs["volatility_estimator"] = str(obs.meta.get("observation_config", {}).get(
        "volatility_estimator", "realized"))
    idata.attrs["model_version"] = version(mc)
    idata.attrs["bar_seconds"] = float(obs.bar_seconds)
    idata.attrs["n_bars"] = int(obs.n_bars)
    idata.attrs["n_censored"] = int(obs.n_censored)
    idata.attrs["censor_log_rv"] = float("nan") if obs.censor_log_rv is None else float(obs.censor_log_rv)
    idata.attrs["asset"] = obs.asset
    idata.attrs["prior_centres"] = json.dumps(prior_centres(obs, mc))
    idata.attrs["em_reference"] = json.dumps({
        k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
        for k, v in ref.items() if k != "smoothed"})
    return idata
