"""Conjugate families in JAX: the online half of the Bayesian calibration.

Each family (:class:`BetaBernoulli`, :class:`GammaPoisson`, :class:`GammaExponential`,
:class:`NormalKnownVariance`, :class:`NormalInverseGamma`,
:class:`InverseGammaKnownMean`, :class:`LogNormal` = NIG on the logs,
:class:`DirichletCategorical`) is a namespace class of pure, jit- and vmap-friendly
functions over a ``NamedTuple`` of arrays (any batch shape): ``update`` (soft, by
``weight``), ``mean``, ``std``, ``interval``, ``n``, ``data_weight``,
``is_calibrated`` (``n >= min_n`` and ``std/|mean| <= max_cv``) and ``forget``
(natural parameters decayed toward the prior by ``2**(-dt/half_life)``, ``dt`` and
``half_life`` in s).  Sources: Gelman et al., *Bayesian Data
Analysis* (3rd ed.), ch. 2–3; Murphy (2007), *Conjugate Bayesian analysis of the
Gaussian distribution*.

The interface in full, prior strengths and design notes: docs/runtime/conjugate.md.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.special import betainc, gammainc, gammaincc, ndtri

__all__ = [
    "BetaParams",
    "GammaParams",
    "NormalParams",
    "NIGParams",
    "InverseGammaParams",
    "DirichletParams",
    "BetaBernoulli",
    "GammaPoisson",
    "GammaExponential",
    "NormalKnownVariance",
    "NormalInverseGamma",
    "InverseGammaKnownMean",
    "LogNormal",
    "DirichletCategorical",
    "beta_ppf",
    "gamma_ppf",
    "student_t_ppf",
    "normal_ppf",
    "forget_factor",
]

_N_BISECT = 120  # bisection steps for the quantile functions (bracket width / 2**120)


# --------------------------------------------------------------------------- quantiles
def _bisect(f, lo, hi, n_iter: int = _N_BISECT):
    """Root of an increasing ``f`` in ``[lo, hi]`` by ``n_iter`` bisection steps."""

    def body(_, carry):
        lo, hi = carry
        mid = 0.5 * (lo + hi)
        below = f(mid) < 0
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = lax.fori_loop(0, n_iter, body, (lo, hi))
    return 0.5 * (lo + hi)


def _beta_ppf_logit(q, a, b):
    """logit of the ``q`` quantile of Beta(a, b) (bisection on the logit scale).

    Searching on ``y = logit(x)`` gives relative precision in both tails; for
    ``q > 1/2`` the symmetric problem ``1 - X ~ Beta(b, a)`` is solved instead so
    that ``betainc`` is evaluated where it is accurate.
    """
    q, a, b = jnp.broadcast_arrays(*(jnp.asarray(v, dtype=float) for v in (q, a, b)))
    upper = q > 0.5
    qq = jnp.where(upper, 1.0 - q, q)
    aa = jnp.where(upper, b, a)
    bb = jnp.where(upper, a, b)
    lo = jnp.full_like(qq, -740.0)
    hi = jnp.full_like(qq, 740.0)
    y = _bisect(lambda y: betainc(aa, bb, jax.nn.sigmoid(y)) - qq, lo, hi)
    return jnp.where(upper, -y, y)


@jax.jit
def beta_ppf(q, a, b):
    """Quantile function of Beta(a, b) (no ``betaincinv`` in jax.scipy: bisection)."""
    return jax.nn.sigmoid(_beta_ppf_logit(q, a, b))


@jax.jit
def gamma_ppf(q, shape, rate=1.0):
    """Quantile function of Gamma(shape, rate) (bisection on log x; no ``gammaincinv``)."""
    q, shape, rate = jnp.broadcast_arrays(
        *(jnp.asarray(v, dtype=float) for v in (q, shape, rate))
    )
    upper = q > 0.5
    lo = jnp.full_like(q, -740.0)
    hi = jnp.log(shape + 40.0 * jnp.sqrt(shape) + 60.0)

    def f(z):
        x = jnp.exp(z)
        # increasing in z in both branches; the upper tail uses Q = 1 - P for precision
        return jnp.where(upper, (1.0 - q) - gammaincc(shape, x), gammainc(shape, x) - q)

    return jnp.exp(_bisect(f, lo, hi)) / rate


@jax.jit
def student_t_ppf(q, df):
    """Quantile function of Student's t with ``df`` degrees of freedom.

    ``t_q = -sqrt(df (1-x)/x)`` with ``x = I^{-1}_{2q}(df/2, 1/2)`` for ``q < 1/2``
    (Abramowitz & Stegun 26.7.1 / 26.5), written on the logit of ``x``.
    """
    q, df = jnp.broadcast_arrays(*(jnp.asarray(v, dtype=float) for v in (q, df)))
    p = jnp.minimum(q, 1.0 - q)
    y = _beta_ppf_logit(2.0 * p, 0.5 * df, jnp.full_like(df, 0.5))
    t = jnp.sqrt(df) * jnp.exp(-0.5 * y)  # = sqrt(df (1-x)/x)
    return jnp.where(q < 0.5, -t, t)


def normal_ppf(q):
    """Standard normal quantile (``jax.scipy.special.ndtri``)."""
    return ndtri(jnp.asarray(q, dtype=float))


def _tails(level):
    level = jnp.asarray(level, dtype=float)
    return 0.5 * (1.0 - level), 0.5 * (1.0 + level)


def forget_factor(dt, half_life):
    """Weight ``2**(-dt/half_life)`` kept by the data part after ``dt`` seconds."""
    dt = jnp.maximum(jnp.asarray(dt, dtype=float), 0.0)
    return jnp.exp2(-dt / half_life)


# --------------------------------------------------------------------------- base
class _Family:
    """Shared ``n``/``data_weight``/``is_calibrated``/``forget`` from three hooks:
    ``strength`` (pseudo-observations), ``_to_natural``/``_from_natural`` (a tuple
    of arrays linear in the sufficient statistics)."""

    @classmethod
    def n(cls, post, prior):
        """Effective observations absorbed since ``prior`` (>= 0)."""
        return jnp.maximum(cls.strength(post) - cls.strength(prior), 0.0)

    @classmethod
    def data_weight(cls, post, prior):
        """``n / (n + prior_strength)`` in [0, 1): how much the estimate is data."""
        n = cls.n(post, prior)
        return n / (n + cls.strength(prior))

    @classmethod
    def cv(cls, post):
        """Coefficient of variation ``std / |mean|`` of the posterior."""
        m = jnp.abs(cls.mean(post))
        return cls.std(post) / jnp.maximum(m, jnp.finfo(jnp.result_type(float)).tiny)

    @classmethod
    def is_calibrated(cls, post, prior, min_n, max_cv):
        """Enough data (``n >= min_n``) and a tight posterior (``cv <= max_cv``)."""
        return (cls.n(post, prior) >= min_n) & (cls.cv(post) <= max_cv)

    @classmethod
    def forget(cls, post, prior, dt, half_life):
        """Exponential forgetting toward ``prior`` with the given half-life (s)."""
        w = forget_factor(dt, half_life)
        p_nat = cls._to_natural(prior)
        q_nat = cls._to_natural(post)
        mixed = tuple(p + w * (q - p) for p, q in zip(p_nat, q_nat, strict=True))
        return cls._from_natural(mixed, post)


# --------------------------------------------------------------------------- Beta
class BetaParams(NamedTuple):
    """Beta(a, b) on a probability."""

    a: jax.Array
    b: jax.Array


class BetaBernoulli(_Family):
    """Beta prior, Bernoulli observations ``x in {0, 1}`` (fractional allowed)."""

    Params = BetaParams

    @staticmethod
    def update(post: BetaParams, x, weight=1.0) -> BetaParams:
        return BetaParams(post.a + weight * x, post.b + weight * (1.0 - x))

    @staticmethod
    def update_counts(post: BetaParams, successes, failures) -> BetaParams:
        return BetaParams(post.a + successes, post.b + failures)

    @staticmethod
    def mean(post):
        return post.a / (post.a + post.b)

    @staticmethod
    def std(post):
        s = post.a + post.b
        return jnp.sqrt(post.a * post.b / (s * s * (s + 1.0)))

    @staticmethod
    def interval(post, level=0.95):
        lo, hi = _tails(level)
        return beta_ppf(lo, post.a, post.b), beta_ppf(hi, post.a, post.b)

    @staticmethod
    def strength(post):
        return post.a + post.b

    @staticmethod
    def _to_natural(p):
        return (p.a, p.b)

    @staticmethod
    def _from_natural(nat, like):
        return BetaParams(*nat)


# --------------------------------------------------------------------------- Gamma
class GammaParams(NamedTuple):
    """Gamma(shape, rate) on a positive rate."""

    shape: jax.Array
    rate: jax.Array


class _GammaBase(_Family):
    Params = GammaParams

    @staticmethod
    def mean(post):
        return post.shape / post.rate

    @staticmethod
    def std(post):
        return jnp.sqrt(post.shape) / post.rate

    @staticmethod
    def cv(post):
        return 1.0 / jnp.sqrt(post.shape)

    @staticmethod
    def interval(post, level=0.95):
        lo, hi = _tails(level)
        return gamma_ppf(lo, post.shape, post.rate), gamma_ppf(hi, post.shape, post.rate)

    @staticmethod
    def strength(post):
        return post.shape

    @staticmethod
    def _to_natural(p):
        return (p.shape, p.rate)

    @staticmethod
    def _from_natural(nat, like):
        return GammaParams(*nat)


class GammaPoisson(_GammaBase):
    """Gamma prior on a Poisson rate: ``count`` events seen over ``exposure`` seconds."""

    @staticmethod
    def update(post: GammaParams, count, exposure, weight=1.0) -> GammaParams:
        return GammaParams(post.shape + weight * count, post.rate + weight * exposure)


class GammaExponential(_GammaBase):
    """Gamma prior on the rate of exponential observations ``x >= 0``."""

    @staticmethod
    def update(post: GammaParams, x, weight=1.0) -> GammaParams:
        return GammaParams(post.shape + weight, post.rate + weight * x)


# --------------------------------------------------------------------------- Normal
class NormalParams(NamedTuple):
    """Normal(mu, var) on a mean; observations ~ Normal(mean, obs_var), obs_var known."""

    mu: jax.Array
    var: jax.Array
    obs_var: jax.Array


class NormalKnownVariance(_Family):
    Params = NormalParams

    @staticmethod
    def update(post: NormalParams, x, weight=1.0) -> NormalParams:
        prec = 1.0 / post.var + weight / post.obs_var
        mu = (post.mu / post.var + weight * x / post.obs_var) / prec
        return NormalParams(mu, 1.0 / prec, post.obs_var)

    @staticmethod
    def mean(post):
        return post.mu

    @staticmethod
    def std(post):
        return jnp.sqrt(post.var)

    @staticmethod
    def interval(post, level=0.95):
        lo, hi = _tails(level)
        s = jnp.sqrt(post.var)
        return post.mu + normal_ppf(lo) * s, post.mu + normal_ppf(hi) * s

    @staticmethod
    def strength(post):
        return post.obs_var / post.var

    @staticmethod
    def _to_natural(p):
        return (1.0 / p.var, p.mu / p.var)

    @staticmethod
    def _from_natural(nat, like):
        prec, eta = nat
        return NormalParams(eta / prec, 1.0 / prec, like.obs_var)


# --------------------------------------------------------------------------- NIG
class NIGParams(NamedTuple):
    """Normal–Inverse-Gamma: sigma² ~ InvGamma(shape, scale), mu | sigma² ~ N(mu, sigma²/lam)."""

    mu: jax.Array
    lam: jax.Array
    shape: jax.Array
    scale: jax.Array


class NormalInverseGamma(_Family):
    """Unknown mean and variance.  ``mean``/``interval`` refer to the mean ``mu``,
    whose marginal posterior is Student-t with ``2·shape`` degrees of freedom, location
    ``mu`` and scale ``sqrt(scale / (lam·shape))``."""

    Params = NIGParams

    @staticmethod
    def update(post: NIGParams, x, weight=1.0) -> NIGParams:
        lam = post.lam + weight
        mu = (post.lam * post.mu + weight * x) / lam
        shape = post.shape + 0.5 * weight
        scale = post.scale + 0.5 * weight * post.lam * (x - post.mu) ** 2 / lam
        return NIGParams(mu, lam, shape, scale)

    @staticmethod
    def mean(post):
        return post.mu

    @staticmethod
    def variance_mean(post):
        """E[sigma²] = scale/(shape-1) (shape > 1; else the mode scale/(shape+1))."""
        return jnp.where(
            post.shape > 1.0, post.scale / (post.shape - 1.0), post.scale / (post.shape + 1.0)
        )

    @staticmethod
    def std(post):
        """Posterior sd of ``mu`` (t marginal; for shape <= 1 its scale parameter)."""
        d = jnp.where(post.shape > 1.0, post.shape - 1.0, post.shape)
        return jnp.sqrt(post.scale / (post.lam * d))

    @staticmethod
    def interval(post, level=0.95):
        lo, hi = _tails(level)
        df = 2.0 * post.shape
        s = jnp.sqrt(post.scale / (post.lam * post.shape))
        return post.mu + student_t_ppf(lo, df) * s, post.mu + student_t_ppf(hi, df) * s

    @staticmethod
    def strength(post):
        return post.lam

    @staticmethod
    def _to_natural(p):
        return (p.lam, p.lam * p.mu, p.shape, p.scale + 0.5 * p.lam * p.mu**2)

    @staticmethod
    def _from_natural(nat, like):
        lam, lam_mu, shape, s = nat
        mu = lam_mu / lam
        return NIGParams(mu, lam, shape, s - 0.5 * lam * mu**2)


# --------------------------------------------------------------------------- Inverse-Gamma
class InverseGammaParams(NamedTuple):
    """InvGamma(shape, scale) on a variance; observations ~ N(mu, variance), mu known."""

    shape: jax.Array
    scale: jax.Array
    mu: jax.Array


class InverseGammaKnownMean(_Family):
    Params = InverseGammaParams

    @staticmethod
    def update(post: InverseGammaParams, x, weight=1.0) -> InverseGammaParams:
        return InverseGammaParams(
            post.shape + 0.5 * weight, post.scale + 0.5 * weight * (x - post.mu) ** 2, post.mu
        )

    @staticmethod
    def mean(post):
        """scale/(shape-1); +inf where shape <= 1 (the mean does not exist)."""
        return jnp.where(post.shape > 1.0, post.scale / (post.shape - 1.0), jnp.inf)

    @staticmethod
    def std(post):
        s = post.shape
        ok = s > 2.0
        return jnp.where(ok, post.scale / ((s - 1.0) * jnp.sqrt(jnp.where(ok, s - 2.0, 1.0))), jnp.inf)

    @staticmethod
    def interval(post, level=0.95):
        lo, hi = _tails(level)
        # X ~ InvGamma(shape, scale)  <=>  1/X ~ Gamma(shape, rate=scale)
        return (
            post.scale / gamma_ppf(hi, post.shape),
            post.scale / gamma_ppf(lo, post.shape),
        )

    @staticmethod
    def strength(post):
        return 2.0 * post.shape

    @staticmethod
    def _to_natural(p):
        return (p.shape, p.scale)

    @staticmethod
    def _from_natural(nat, like):
        return InverseGammaParams(nat[0], nat[1], like.mu)


# --------------------------------------------------------------------------- LogNormal
class LogNormal(NormalInverseGamma):
    """Positive observations with ``log x ~ N(mu, s²)``; NIG(mu, lam, shape, scale) on
    ``(mu, s²)``.  Both the location and the spread are learned (unlike the original
    system's log-normal, which never updated its variance).

    ``mean`` is the plug-in mean of the observations ``exp(mu + E[s²]/2)``;
    ``median`` is ``exp(mu)``; ``interval`` is the credible interval of the median
    ``exp(mu)`` (the exponential of the Student-t interval of ``mu``).
    """

    Params = NIGParams

    @staticmethod
    def update(post: NIGParams, x, weight=1.0) -> NIGParams:
        return NormalInverseGamma.update(post, jnp.log(x), weight)

    @staticmethod
    def mean(post):
        return jnp.exp(post.mu + 0.5 * NormalInverseGamma.variance_mean(post))

    @staticmethod
    def median(post):
        return jnp.exp(post.mu)

    @staticmethod
    def std(post):
        # sd of exp(mu) under a normal approximation of mu's marginal (delta method, exact
        # for a log-normal): median * sqrt(exp(v) - 1)
        v = NormalInverseGamma.std(post) ** 2
        return jnp.exp(post.mu) * jnp.sqrt(jnp.expm1(v))

    @staticmethod
    def cv(post):
        v = NormalInverseGamma.std(post) ** 2
        return jnp.sqrt(jnp.expm1(v))

    @staticmethod
    def interval(post, level=0.95):
        lo, hi = NormalInverseGamma.interval(post, level)
        return jnp.exp(lo), jnp.exp(hi)


# --------------------------------------------------------------------------- Dirichlet
class DirichletParams(NamedTuple):
    """Dirichlet(concentration) over the last axis (categories)."""

    concentration: jax.Array


class DirichletCategorical(_Family):
    """Dirichlet prior, categorical observations given as one-hot vectors or as
    probability vectors (soft observations), over the last axis."""

    Params = DirichletParams

    @staticmethod
    def update(post: DirichletParams, x, weight=1.0) -> DirichletParams:
        return DirichletParams(post.concentration + jnp.asarray(weight)[..., None] * x)

    @staticmethod
    def mean(post):
        c = post.concentration
        return c / jnp.sum(c, axis=-1, keepdims=True)

    @staticmethod
    def std(post):
        c = post.concentration
        c0 = jnp.sum(c, axis=-1, keepdims=True)
        m = c / c0
        return jnp.sqrt(m * (1.0 - m) / (c0 + 1.0))

    @classmethod
    def is_calibrated(cls, post, prior, min_n, max_cv):
        """All categories' marginal cv <= max_cv and n >= min_n (batch shape)."""
        return (cls.n(post, prior) >= min_n) & jnp.all(cls.cv(post) <= max_cv, axis=-1)

    @staticmethod
    def interval(post, level=0.95):
        """Marginal intervals: component i ~ Beta(c_i, c0 - c_i)."""
        lo, hi = _tails(level)
        c = post.concentration
        rest = jnp.sum(c, axis=-1, keepdims=True) - c
        return beta_ppf(lo, c, rest), beta_ppf(hi, c, rest)

    @staticmethod
    def strength(post):
        return jnp.sum(post.concentration, axis=-1)

    @staticmethod
    def _to_natural(p):
        return (p.concentration,)

    @staticmethod
    def _from_natural(nat, like):
        return DirichletParams(nat[0])
