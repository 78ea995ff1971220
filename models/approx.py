"""Inference that scales with the data: a Laplace approximation at the MAP, checked
against the exact posterior by Pareto-smoothed importance sampling (PSIS).

:func:`models.sampling.sample` calls :func:`sample_approx` when
``SamplerConfig.inference`` is ``"laplace"`` or ``"auto"``:

* ``laplace``: the MAP of the model's log density on the unconstrained space
  (Jacobian included, as Stan's ``laplace`` method does), found by L-BFGS-B with
  the gradient of the model's JAX translation (pytensor's gradient graph, jitted)
  and polished by Newton steps with the finite-difference Hessian;
  the Hessian there by central differences of that gradient (Nocedal & Wright 2006,
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


class _Density:
    """The model's joint log density on the raveled unconstrained vector (the
    transforms' Jacobian included) as jitted JAX functions of pymc's JAX translation
    (``get_jaxified_graph``, the graph nutpie's JAX backend runs; the catalog's
    likelihood Ops all have a JAX form): ``logp_dlogp`` for the optimiser, and
    ``logp_many`` / ``dlogp_many`` / ``posterior_many`` mapping many points in one
    compiled loop (``jax.lax.map``). The former pytensor C functions, called once per
    point from Python (4,000 PSIS draws, 2d Hessian columns), ran the matrix products
    through Python where pytensor finds no BLAS (measured before / after:
    benchmarks/README.md, "The approximation on JAX"). ``gradient`` says which gradient
    is used (recorded as ``idata.attrs["approx_gradient"]``)."""

    def __init__(self, model):
        import jax
        from pymc.blocking import DictToArrayBijection

        jax.config.update("jax_enable_x64", True)
        self.model = model
        self.start = model.initial_point()
        x0 = DictToArrayBijection.map({v.name: self.start[v.name] for v in model.value_vars})
        self.x0, self.info = np.asarray(x0.data, dtype=float), x0.point_map_info
        of_x = self._of_x
        lp = model.logp(jacobian=True)
        f_lp = of_x([lp])
        try:  # pytensor's gradient graph (the likelihood Ops' exact adjoints), jitted
            f_both = of_x([lp, model.dlogp(jacobian=True)])
            jax.jit(f_both).lower(self.x0)
            grad = lambda x: f_both(x)[1]  # noqa: E731
            self.gradient = "pytensor graph"
        except Exception:  # a graph JAX cannot trace (the fills model's Split by data sizes)
            vg = jax.value_and_grad(lambda x: f_lp(x)[0])
            f_both = lambda x: vg(x)  # noqa: E731
            grad = lambda x: vg(x)[1]  # noqa: E731
            self.gradient = "jax.grad"
        self._both = jax.jit(f_both)
        self._logp_many = jax.jit(lambda X: jax.lax.map(lambda x: f_lp(x)[0], X))
        self._dlogp_many = jax.jit(lambda X: jax.lax.map(grad, X))
        self._jax = jax

    def _of_x(self, outputs):
        """The JAX translation of ``outputs`` as a function of the raveled vector."""
        from pymc.sampling.jax import get_jaxified_graph

        f = get_jaxified_graph(inputs=self.model.value_vars, outputs=outputs)
        layout = [(tuple(shape), int(size)) for _name, shape, size, _dtype in self.info]

        def of(x):
            parts, i = [], 0
            for shape, size in layout:
                parts.append(x[i:i + size].reshape(shape))
                i += size
            return f(*parts)

        return of

    def logp_dlogp(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = self._both(np.asarray(x, dtype=float))
        return float(v), np.asarray(g, dtype=float)

    def logp(self, x: np.ndarray) -> float:
        return self.logp_dlogp(x)[0]

    def logp_many(self, X: np.ndarray) -> np.ndarray:
        """log p at each row of ``X`` (n, d)."""
        return np.asarray(self._logp_many(np.asarray(X, dtype=float)), dtype=float)

    def dlogp_many(self, X: np.ndarray) -> np.ndarray:
        """The gradient at each row of ``X`` (n, d)."""
        return np.asarray(self._dlogp_many(np.asarray(X, dtype=float)), dtype=float)

    def posterior_many(self, X: np.ndarray, var_names: Sequence[str] | None) -> dict[str, np.ndarray]:
        """The constrained free variables and deterministics (what ``pm.sample`` stores)
        at each row of ``X``: name -> (n, *shape)."""
        from pymc.util import get_default_varnames

        outs = get_default_varnames(self.model.unobserved_value_vars, include_transformed=False)
        if var_names is not None:
            outs = [v for v in outs if v.name in var_names]
        f = self._of_x(outs)
        res = self._jax.jit(lambda X: self._jax.lax.map(lambda x: tuple(f(x)), X))(np.asarray(X, dtype=float))
        return {v.name: np.asarray(r) for v, r in zip(outs, res)}


NEWTON_STEPS = 50
"""Newton steps after L-BFGS-B at most (:func:`laplace`)."""


def _precision(dens, x: np.ndarray, fd_step: float) -> np.ndarray:
    """``-H`` at ``x``: central differences of the exact gradient, one column per
    coordinate (all 2d gradients in one compiled loop), symmetrised; not jax.hessian:
    forward mode does not pass through the likelihoods' custom_vjp adjoints."""
    d = x.size
    h = fd_step * np.maximum(1.0, np.abs(x))
    E = np.diag(h)
    G = dens.dlogp_many(np.concatenate([x + E, x - E]))
    H = ((G[:d] - G[d:]) / (2 * h)[:, None]).T
    return -(H + H.T) / 2


def laplace(model, *, maxiter: int = 5000, fd_step: float = 1e-5, newton_steps: int = NEWTON_STEPS,
            tol: float = 1e-8) -> LaplaceFit:
    """The Laplace approximation of ``model``'s posterior on the unconstrained space
    (module docstring). Raises :class:`ApproxError` where it cannot be formed.

    The mode: L-BFGS-B, then Newton steps with the finite-difference Hessian until the
    Newton decrement ``g' P^-1 g`` is below ``tol``, ``P = -H``; where ``P`` is not
    positive definite, the step uses ``|P|`` (its eigenvalues' absolute values,
    floored at 1e-3: the saddle-free Newton step of Dauphin et al. 2014), with
    backtracking. Why: on the fills model (82 coordinates, 28,695 orders of the busy
    synthetic hour) L-BFGS-B stopped at its iteration limit 188 log-density units
    below the mode, with four zero-mass logits at -47 where the Hessian is flat, and
    the fit was refused as "not negative definite"; nine Newton steps reach the mode
    (gradient norm 4e-12, smallest curvature 0.155): docs/sampling.md."""
    from scipy.optimize import minimize

    dens = _Density(model)
    n = [0]

    def cost(x):
        n[0] += 1
        v, g = dens.logp_dlogp(x)
        if not math.isfinite(v) or not np.all(np.isfinite(g)):
            return 1e300, np.zeros_like(x)
        return -v, -g

    res = minimize(cost, dens.x0, jac=True, method="L-BFGS-B",
                   options={"maxiter": maxiter, "maxfun": 2 * maxiter, "gtol": 1e-8, "ftol": 1e-14})
    mode = res.x
    lp, g = dens.logp_dlogp(mode)
    if not math.isfinite(lp):
        raise ApproxError(f"Laplace: no finite mode found ({res.message})")
    d = mode.size
    for i in range(newton_steps + 1):  # the last pass only computes the Hessian at the mode
        P = _precision(dens, mode, fd_step)
        n[0] += 2 * d + 1
        if not np.all(np.isfinite(P)):
            raise ApproxError("Laplace: the Hessian at the MAP is not finite")
        lam, vecs = np.linalg.eigh(P)
        step = vecs @ ((vecs.T @ g) / np.maximum(np.abs(lam), 1e-3))
        if float(g @ step) < tol or i == newton_steps:  # converged (or flat: refused below)
            break
        t = 1.0
        while t > 1e-8:
            lp_t, g_t = dens.logp_dlogp(mode + t * step)
            n[0] += 1
            if math.isfinite(lp_t) and lp_t >= lp:
                break
            t /= 2
        else:
            break  # no ascent along the step: the mode as far as the arithmetic goes
        mode, lp, g = mode + t * step, lp_t, g_t
    if lam[0] <= 0:
        raise ApproxError(f"Laplace: the Hessian at the MAP is not negative definite (smallest "
                          f"curvature {-lam[0]:.3g} >= 0): no Gaussian approximation there")
    fit = LaplaceFit(mode, lam, vecs, lp, dens.info, dens.start, n[0])
    fit.density = dens  # the exact log density, for the importance ratios (compiled once)
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


def _to_idata(model, fit: LaplaceFit, theta: np.ndarray, chains: int, draws: int, var_names):
    import arviz as az

    post = {n: v.reshape(chains, draws, *v.shape[1:])
            for n, v in fit.density.posterior_many(theta, var_names).items()}
    dims = {n: list(model.named_vars_to_dims.get(n, ())) for n in post}
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
        logp = fit.density.logp_many(theta)
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
        attrs["approx_gradient"] = fit.density.gradient
        attrs["approx_evals"] = int(fit.n_evals)
    idata.attrs.update(attrs)
    return idata
