"""The regime HMM's JAX likelihood (models/regime/likelihood.py, op.py): the Op
the model samples with equals the pytensor-scan reference graph, value and
gradient w.r.t. every free parameter, on the synthetic market's bars and on a
censored case, on every path a sampler takes (pytensor's ``perform``, the JAX
translation with pytensor's gradient graph, and JAX's own gradient of the
translated log-density, which NumPyro uses)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import regime as rg
from models.regime.likelihood import loglik_value_and_grad, loglik_vjp_jit, regime_data

PT_MODE = "FAST_COMPILE"  # the scan's reference graph on the python linker (compiles in seconds)


@pytest.fixture(scope="module")
def market_obs():
    from models.data.synthetic import simulate_market

    return rg.observations(simulate_market(7, duration_s=3600.0))


def _censored(obs: rg.RegimeObs) -> rg.RegimeObs:
    """The same bars with the lowest 5 % left-censored at their 5 % quantile."""
    cut = float(np.quantile(obs.log_rv, 0.05))
    cen = obs.log_rv <= cut
    return rg.RegimeObs(log_rv=np.where(cen, cut, obs.log_rv), censored=cen, censor_log_rv=cut,
                        bar_seconds=obs.bar_seconds)


def _point(model, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {k: v + 0.3 * rng.standard_normal(np.shape(v)) for k, v in model.initial_point().items()}


def _rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("censor", [False, True])
def test_op_equals_scan_logp_and_gradient(market_obs, censor):
    """Model log-density (priors + likelihood) and its gradient w.r.t. every free
    parameter: the Op on each path vs the scan, to 1e-8 relative (measured ~1e-14)."""
    from pymc.sampling.jax import get_jaxified_graph

    obs = _censored(market_obs) if censor else market_obs
    assert obs.n_bars == 360 and obs.n_censored == (18 if censor else 0)
    ref = rg.em_fit(obs)
    scan = rg.build_model(obs, rg.RegimeConfig(likelihood="scan"), reference=ref)
    op = rg.build_model(obs, rg.RegimeConfig(likelihood="op"), reference=ref)
    names = [v.name for v in op.value_vars]
    assert names == [v.name for v in scan.value_vars]
    n_free = sum(int(np.size(v)) for v in op.initial_point().values())
    assert n_free == 1 + 3 + 1 + 1 + 4 + 12          # lowest, gaps, pooled, tau, z, 4 rows of P
    jlogp = get_jaxified_graph(inputs=op.value_vars, outputs=[op.logp()])
    jgrad = jax.jit(jax.grad(lambda *a: jlogp(*a)[0], argnums=tuple(range(len(names)))))
    ref_fns = (scan.compile_logp(mode=PT_MODE), scan.compile_dlogp(mode=PT_MODE))
    paths = {"perform": (op.compile_logp(mode=PT_MODE), op.compile_dlogp(mode=PT_MODE)),
             "jax": (op.compile_logp(mode="JAX"), op.compile_dlogp(mode="JAX")),
             "jax.grad": (lambda p: jlogp(*[p[n] for n in names])[0],
                          lambda p: np.concatenate([np.ravel(x) for x in jgrad(*[p[n] for n in names])]))}
    point = _point(op, int(censor))          # a point 0.3 (unconstrained units) around the EM start
    lp_ref, g_ref = (float(ref_fns[0](point)), ref_fns[1](point))
    assert np.isfinite(lp_ref) and g_ref.shape == (n_free,) and np.all(np.isfinite(g_ref))
    for path, (flp, fg) in paths.items():
        lp, g = flp(point), fg(point)
        assert float(lp) == pytest.approx(lp_ref, rel=1e-8), path
        assert _rel(g, g_ref) < 1e-8, (path, _rel(g, g_ref))
    # the pointwise terms (the log_likelihood group) too
    rv_scan, rv_op = scan["log_rv"], op["log_rv"]
    c_scan = scan.compile_fn(scan.logp(vars=[rv_scan], sum=False)[0], mode=PT_MODE)(point)
    c_op = op.compile_fn(op.logp(vars=[rv_op], sum=False)[0], mode="JAX")(point)
    assert c_op.shape == (obs.n_bars,)
    np.testing.assert_allclose(c_op, c_scan, rtol=1e-9, atol=1e-12)


def test_gradient_is_the_smoothed_marginals():
    """For cotangent 1 the gradient w.r.t. the emission log-densities is P(z_t | y_{1:T})
    (Fisher's identity): the adjoint against the numpy forward-backward, and the JAX
    value against the numpy forward filter; an arbitrary cotangent against JAX's own
    differentiation of the log-space forward recursion."""
    from jax.scipy.special import logsumexp

    from models.regime.likelihood import emission_logp_jax, forward_terms

    obs = rg.simulate(None, 2, n_bars=300)
    em = rg.em_fit(obs)
    m, s, P = np.sort(em["log_rv_mean"]), em["log_rv_sd"], em["regime_transition"]
    pi = rg.stationary_distribution(P)
    le = np.asarray(emission_logp_jax(jnp.asarray(m), jnp.asarray(s), regime_data(obs.log_rv)))
    np.testing.assert_allclose(le, rg.emission_logp(obs.log_rv, m, s), rtol=1e-13)
    c, vjp = jax.vjp(forward_terms, jnp.asarray(le), jnp.asarray(P), jnp.asarray(pi))
    _, c_np = rg.forward(le, np.log(P), np.log(pi))
    np.testing.assert_allclose(c, c_np, rtol=1e-12)
    gamma, ll = rg.forward_backward(le, np.log(P), np.log(pi))
    np.testing.assert_allclose(vjp(jnp.ones(obs.n_bars))[0], gamma, atol=1e-10)

    def log_space(le, P, pi):
        def step(f, le_t):
            a = logsumexp(f[:, None] + jnp.log(P), axis=0) + le_t
            return a - logsumexp(a), logsumexp(a)

        a0 = jnp.log(pi) + le[0]
        _, cs = jax.lax.scan(step, a0 - logsumexp(a0), le[1:])
        return jnp.concatenate([logsumexp(a0)[None], cs])

    g = jnp.asarray(np.random.default_rng(3).normal(size=obs.n_bars))
    _, vjp_ref = jax.vjp(log_space, jnp.asarray(le), jnp.asarray(P), jnp.asarray(pi))
    for a, b in zip(vjp(g), vjp_ref(g)):
        assert _rel(a, b) < 1e-10
    # the jitted public helpers agree with each other
    d = regime_data(obs.log_rv)
    val, grads = loglik_value_and_grad({"m": m, "s": s, "P": P, "pi": pi}, d)
    assert float(val) == pytest.approx(ll, rel=1e-12)
    gv = loglik_vjp_jit(m, s, P, pi, jnp.ones(obs.n_bars), d)
    for k, x in zip(("m", "s", "P", "pi"), gv):
        np.testing.assert_allclose(grads[k], x, rtol=1e-12)


def test_every_sampler_path_uses_the_op(market_obs):
    """The compiled log-density gradient of PyMC's sampler holds the Op's gradient Op
    and no Scan; the JAX translation (NumPyro, nutpie) holds no scan of pytensor's."""
    from models.regime.op import RegimeLogLikGradOp, RegimeLogLikOp

    model = rg.build_model(market_obs)
    for mode in (PT_MODE, "JAX"):
        f = model.compile_dlogp(mode=mode)
        ops = {type(n.op).__name__ for n in f.f.maker.fgraph.apply_nodes}
        assert RegimeLogLikGradOp.__name__ in ops and "Scan" not in ops, (mode, ops)
        f = model.compile_logp(mode=mode)
        ops = {type(n.op).__name__ for n in f.f.maker.fgraph.apply_nodes}
        assert RegimeLogLikOp.__name__ in ops and "Scan" not in ops, (mode, ops)
