"""The numpy HMM core: stationary distribution, Gaussian (optionally
left-censored) emission log-densities, and the normalized forward filter, backward
pass and smoothed marginals in log space, batched over leading dims.

Source: Rabiner (1989), section III.A; log-sum-exp form e.g. Murphy (2012),
section 17.4.2. Derivation: docs/models/regime.md.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import log_ndtr, logsumexp

_CENSOR_Z_MIN = -37.0  # log Phi(z) below this is ~ -690: clip to keep erfc > 0


def stationary_distribution(P: np.ndarray) -> np.ndarray:
    """pi with pi P = pi, sum 1 (solves (I - P + 1 1')' pi = 1; P ergodic). Batched over leading dims."""
    P = np.asarray(P, dtype=float)
    n = P.shape[-1]
    A = np.swapaxes(np.eye(n) - P + 1.0, -1, -2)
    return np.linalg.solve(A, np.ones(P.shape[:-2] + (n,))[..., None])[..., 0]


def emission_logp(y: np.ndarray, m: np.ndarray, s: np.ndarray, censored: np.ndarray | None = None,
                  censor_log_rv: float | None = None) -> np.ndarray:
    """log p(y_t | z_t = k): array (..., T, K) for parameters m, s of shape (..., K)."""
    y = np.asarray(y, dtype=float)
    m = np.asarray(m, dtype=float)[..., None, :]
    s = np.asarray(s, dtype=float)[..., None, :]
    z = (y[:, None] - m) / s
    le = -0.5 * z**2 - np.log(s) - 0.5 * math.log(2.0 * math.pi)
    if censored is not None and np.any(censored):
        lc = log_ndtr(np.maximum((censor_log_rv - m) / s, _CENSOR_Z_MIN))
        le = np.where(np.asarray(censored)[:, None], lc, le)
    return le


def forward(log_e: np.ndarray, log_P: np.ndarray, log_pi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalized forward filter in log space (docs/models/regime.md).

    ``log_e`` (..., T, K) emission log-densities, ``log_P`` (..., K, K), ``log_pi``
    (..., K). Returns ``(log_f, c)``: ``log_f[..., t, k] = log P(z_t = k | y_{1:t})``
    and ``c[..., t] = log p(y_t | y_{1:t-1})`` (sum = the log-likelihood).
    """
    log_e = np.asarray(log_e, dtype=float)
    T = log_e.shape[-2]
    log_f = np.empty_like(log_e)
    c = np.empty(log_e.shape[:-1])
    a = log_pi + log_e[..., 0, :]
    for t in range(T):
        if t:
            a = logsumexp(log_f[..., t - 1, :, None] + log_P, axis=-2) + log_e[..., t, :]
        c[..., t] = logsumexp(a, axis=-1)
        log_f[..., t, :] = a - c[..., t, None]
    return log_f, c


def backward(log_e: np.ndarray, log_P: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Scaled backward pass: ``log_b[..., t, i] = log p(y_{t+1:T} | z_t = i) - sum_{u>t} c_u``."""
    log_e = np.asarray(log_e, dtype=float)
    T = log_e.shape[-2]
    log_b = np.zeros_like(log_e)
    for t in range(T - 2, -1, -1):
        log_b[..., t, :] = (logsumexp(log_P + (log_e[..., t + 1, :] + log_b[..., t + 1, :])[..., None, :],
                                      axis=-1) - c[..., t + 1, None])
    return log_b


def forward_backward(log_e: np.ndarray, log_P: np.ndarray, log_pi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed marginals ``P(z_t = k | y_{1:T})`` (..., T, K) and the log-likelihood (...)."""
    log_f, c = forward(log_e, log_P, log_pi)
    log_b = backward(log_e, log_P, c)
    g = log_f + log_b
    g = g - logsumexp(g, axis=-1, keepdims=True)
    return np.exp(g), c.sum(axis=-1)
