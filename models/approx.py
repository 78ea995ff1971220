"""Inference that scales with the data: a Laplace approximation at the MAP, checked
against the exact posterior by Pareto-smoothed importance sampling (PSIS).

:func:`models.sampling.sample` calls :func:`sample_approx` when
``SamplerConfig.inference`` is ``"laplace"`` or ``"auto"``:

* ``laplace``: the MAP of the model's log density on the unconstrained space
  (Jacobian included, as Stan's ``laplace`` method does), found by L-BFGS-B with
  pytensor's gradient (so the regime model's JAX likelihood Op works unchanged); the
  Hessian there by central differences of that gradient (Nocedal & Wright 2006,
  "Numerical Optimization", section 8.1); the approximation ``q = N(mode, (-H)^-1)``
  (Gelman et al. 2013, "Bayesian Data Analysis", 3rd ed., section 4.1).
* the check: ``S = chains x draws`` draws from ``q``, importance ratios
  ``log p(theta, y) - log q(theta)``, smoothed by PSIS (``arviz.psislw``); the
  Pareto shape ``k_hat`` of their tail says whether ``q`` is close enough to the
  posterior for importance sampling to correct it: ``k_hat < 0.7`` reliable
  (Vehtari, Simpson, Gelman, Yao & Gabry 2024, "Pareto smoothed importance
  sampling", JMLR 25(72), section 3; Yao, Vehtari, Simpson & Gelman 2018, "Yes, but
  did it work?: evaluating variational inference", ICML).
* the posterior: ``chains x draws`` draws resampled (with replacement) from the
  ``S`` proposals by their smoothed weights (sampling-importance-resampling, Rubin
  1988; PSIS-resampling as in Pathfinder, Zhang et al. 2022, JMLR 23(306)).
* ``auto``: the approximation when ``k_hat < max_psis_k`` (0.5), else NUTS (the
  approximation's ``k_hat`` and the reason are kept on the NUTS fit).

``idata.attrs`` gets ``inference`` (``"laplace"`` or ``"nuts"``), ``inference_requested``,
``inference_reason``, ``psis_khat``, ``psis_ess`` (Kish's effective sample size of
the smoothed weights), ``map_logp``, ``approx_wall_s``. Measured agreement with NUTS
and timings: docs/sampling.md ("Laplace + PSIS"), benchmarks/README.md.
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np

__all__ = ["APPROX_METHODS", "ApproxError", "LaplaceFit", "laplace", "psis_khat", "sample_approx"]

APPROX_METHODS = ("laplace",)
"""Approximate inference methods (``SamplerConfig.inference`` besides nuts and auto)."""


class ApproxError(ValueError):
    """The approximation could not be formed (no finite mode, a Hessian that is not
    negative definite there)."""


class LaplaceFit:
    """A Gaussian approximation on the unconstrained space: ``mode``, the eigen
    decomposition of the precision ``-H = V diag(lam) V^T``, the pymc point layout."""

    def __init__(self, mode: np.ndarray, lam: np.ndarray, vecs: np.ndarray, logp_mode: float,
                 point_map_info, start: dict, n_evals: int):
        self.mode, self.lam, self.vecs = mode, lam, vecs
        self.logp_mode, self.point_map_info, self.start, self.n_evals = logp_mode, point_map_info, start, n_evals

    @property
    def sd(self) -> np.ndarray:
        """Marginal standard deviations of ``q`` (unconstrained space)."""
        return np.sqrt(np.einsum("ij,j,ij->i", self.vecs, 1.0 / self.lam, self.vecs))

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` draws of ``q`` (n, d) and their ``log q``."""
        d = self.mode.size
        z = rng.standard_normal((n, d))
        theta = self.mode + (z / np.sqrt(self.lam)) @ self.vecs.T
        logq = -0.5 * np.sum(z * z, axis=1) - 0.5 * d * math.log(2 * math.pi) + 0.5 * np.sum(np.log(self.lam))
        return theta, logq


def _raveled(model):
    """Functions of the raveled unconstrained vector: ``logp(x)``, ``dlogp(x)`` and
    ``logp_dlogp(x)`` (the model's joint log density with the transforms' Jacobian, its
    gradient, both from one compiled function: the optimiser needs both at every step and
    two functions ran the forward graph twice), the start vector and layout."""
    from pymc.blocking import DictToArrayBijection, RaveledVars

    start = model.initial_point()
    x0 = DictToArrayBijection.map({v.name: start[v.name] for v in model.value_vars})
    logp = DictToArrayBijection.mapf(model.compile_logp(jacobian=True), start)
    dlogp = DictToArrayBijection.mapf(model.compile_dlogp(jacobian=True), start)
    both = DictToArrayBijection.mapf(model.compile_fn([model.logp(jacobian=True), model.dlogp(jacobian=True)],
                                                      inputs=model.value_vars, on_unused_input="ignore"), start)
    info = x0.point_map_info

    def logp_dlogp(x):
        v, g = both(RaveledVars(x, info))
        return float(v), np.asarray(g, dtype=float)

    return (lambda x: float(logp(RaveledVars(x, info))),
            lambda x: np.asarray(dlogp(RaveledVars(x, info)), dtype=float), logp_dlogp, x0, start)


def laplace(model, *, maxiter: int = 5000, fd_step: float = 1e-5) -> LaplaceFit:
    """The Laplace approximation of ``model``'s posterior on the unconstrained space
    (module docstring). Raises :class:`ApproxError` where it cannot be formed."""
    from scipy.optimize import minimize

    logp, dlogp, logp_dlogp, x0, start = _raveled(model)
    n = [0]

    def cost(x):
        n[0] += 1
        v, g = logp_dlogp(x)
        if not math.isfinite(v) or not np.all(np.isfinite(g)):
            return 1e300, np.zeros_like(x)
        return -v, -g

    res = minimize(cost, x0.data.astype(float), jac=True, method="L-BFGS-B",
                   options={"maxiter": maxiter, "maxfun": 2 * maxiter, "gtol": 1e-8, "ftol": 1e-14})
    mode = res.x
    lp = logp(mode)
    if not math.isfinite(lp):
        raise ApproxError(f"Laplace: no finite mode found ({res.message})")
    d = mode.size
    H = np.empty((d, d))
    for i in range(d):  # central differences of the exact gradient, one column per coordinate
        h = fd_step * max(1.0, abs(mode[i]))
        e = np.zeros(d)
        e[i] = h
        H[:, i] = (dlogp(mode + e) - dlogp(mode - e)) / (2 * h)
    n[0] += 2 * d
    P = -(H + H.T) / 2  # precision
    if not np.all(np.isfinite(P)):
        raise ApproxError("Laplace: the Hessian at the MAP is not finite")
    lam, vecs = np.linalg.eigh(P)
    if lam[0] <= 0:
        raise ApproxError(f"Laplace: the Hessian at the MAP is not negative definite (smallest "
                          f"curvature {-lam[0]:.3g} >= 0): no Gaussian approximation there")
    fit = LaplaceFit(mode, lam, vecs, lp, x0.point_map_info, start, n[0])
    fit.logp = logp  # the exact log density, for the importance ratios (compiled once)
    return fit


def psis_khat(log_p: np.ndarray, log_q: np.ndarray) -> tuple[float, np.ndarray]:
    """Pareto ``k_hat`` of the importance ratios ``log_p - log_q`` (``arviz.psislw``,
    Vehtari et al. 2024) and the smoothed, normalised log weights. Non-finite
    ``log_p`` (a draw outside the support) gets weight zero."""
    import arviz as az

    lr = np.asarray(log_p, float) - np.asarray(log_q, float)
    lr = np.where(np.isfinite(lr), lr, -np.inf)
    if not np.any(np.isfinite(lr)):
        return math.inf, np.full(lr.shape, -math.log(lr.size))
    fin = np.isfinite(lr)
    lr = np.where(fin, lr - np.max(lr[fin]), np.min(lr[fin]) - np.max(lr[fin]) - 1e3)  # ~zero weight
    lw, k = az.psislw(lr, reff=1.0)
    return float(k), np.asarray(lw)


def _posterior_fn(model, var_names: Sequence[str] | None):
    """The constrained free variables and deterministics as a function of the value
    variables (what ``pm.sample`` stores), and their names."""
    from pymc.util import get_default_varnames

    outs = get_default_varnames(model.unobserved_value_vars, include_transformed=False)
    if var_names is not None:
        outs = [v for v in outs if v.name in var_names]
    return model.compile_fn(outs=outs, inputs=model.value_vars, on_unused_input="ignore"), [v.name for v in outs]


def _to_idata(model, fit: LaplaceFit, theta: np.ndarray, chains: int, draws: int, var_names):
    import arviz as az
    from pymc.blocking import DictToArrayBijection, RaveledVars

    fn, names = _posterior_fn(model, var_names)
    rows = [fn(DictToArrayBijection.rmap(RaveledVars(x, fit.point_map_info), fit.start)) for x in theta]
    post = {n: np.stack([np.asarray(r[i]) for r in rows]).reshape(chains, draws, *np.shape(rows[0][i]))
            for i, n in enumerate(names)}
    dims = {n: list(model.named_vars_to_dims.get(n, ())) for n in names}
    used = {d for ds in dims.values() for d in ds}
    coords = {d: list(v) for d, v in model.coords.items() if d in used and v is not None}
    return az.from_dict(posterior=post, dims={n: d for n, d in dims.items() if d}, coords=coords)


def sample_approx(model, cfg, *, var_names: Sequence[str] | None = None, nuts=None, log_likelihood=None):
    """Fit ``model`` as ``cfg.inference`` says (``"laplace"`` or ``"auto"``; module
    docstring); ``nuts(model, cfg, var_names=)`` samples with NUTS (``auto``'s
    fallback), ``log_likelihood(idata, model, cfg)`` adds the pointwise
    log-likelihood (both passed by :func:`models.sampling.sample`, which this module
    does not import). Returns an ``az.InferenceData`` with the ``inference*`` and
    ``psis_*`` attrs."""

    t0 = time.perf_counter()
    S = cfg.chains * cfg.draws
    khat, reason, idata, ess, fit = math.inf, "", None, None, None
    times: dict[str, float] = {}
    try:
        fit = laplace(model)
        times["map_hessian_s"] = time.perf_counter() - t0
        theta, logq = fit.draw(S, np.random.default_rng(cfg.seed))
        logp = np.array([fit.logp(x) for x in theta])
        khat, lw = psis_khat(logp, logq)
        times["psis_s"] = time.perf_counter() - t0 - times["map_hessian_s"]
        w = np.exp(lw - np.max(lw))
        w /= w.sum()
        ess = float(1.0 / np.sum(w * w))
    except ApproxError as e:
        reason = str(e)
    ok = khat < cfg.max_psis_k
    if cfg.inference == "laplace" and fit is None:
        raise ApproxError(f"{reason}; use inference 'nuts' or 'auto'")
    if ok or cfg.inference == "laplace":
        if not reason:
            reason = (f"Laplace at the MAP: PSIS k_hat {khat:.2f} "
                      + (f"< {cfg.max_psis_k:g} (reliable)" if ok else f">= {cfg.max_psis_k:g} (unreliable; "
                         "forced by inference='laplace')"))
        idx = np.random.default_rng(cfg.seed + 1).choice(S, size=S, replace=True, p=w)
        t1 = time.perf_counter()
        idata = _to_idata(model, fit, theta[idx], cfg.chains, cfg.draws, var_names)
        times["posterior_s"] = time.perf_counter() - t1
        method = "laplace"
        wall = time.perf_counter() - t0
        log_likelihood(idata, model, cfg)
        idata.attrs.update({"sampler": "laplace", "seed": int(cfg.seed), "draws": int(cfg.draws), "tune": 0,
                            "chains": int(cfg.chains), "target_accept": float(cfg.target_accept),
                            "sampling_wall_s": float(wall)})
    else:
        reason = (reason or f"Laplace PSIS k_hat {khat:.2f} >= {cfg.max_psis_k:g}: the Gaussian at the MAP "
                  "misses the posterior's shape") + "; NUTS instead"
        approx_wall = time.perf_counter() - t0
        idata = nuts(model, cfg.model_copy(update={"inference": "nuts"}), var_names=var_names)
        method = "nuts"
        idata.attrs["approx_wall_s"] = float(approx_wall)
    attrs: dict[str, Any] = {"inference": method, "inference_requested": cfg.inference,
                             "inference_reason": reason,
                             "psis_khat": float(khat) if math.isfinite(khat) else float("nan")}
    if ess is not None:
        attrs["psis_ess"] = ess
    attrs.update({f"approx_{k}": round(v, 3) for k, v in times.items()})
    if fit is not None:
        attrs["map_logp"] = float(fit.logp_mode)
        attrs["approx_evals"] = int(fit.n_evals)
    idata.attrs.update(attrs)
    return idata
