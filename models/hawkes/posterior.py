"""Read-outs of a fitted Hawkes posterior: the pointwise ``log_likelihood`` group
(:func:`add_log_likelihood`, for LOO), the log predictive density of held-out
arrivals (:func:`heldout_lpd`), and the conjugate summaries in the bundle's nested
layout (:func:`summary_draws`, :func:`summarize`).

Log densities in nats per arrival; rates in events/s, decay in 1/s. The pointwise
terms and their caveats: docs/models/hawkes.md, "Pointwise terms".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mm_runtime.vocabulary import REGIMES, SIDES
from models.hawkes.layout import prepare
from models.hawkes.likelihood import _jax_add_at, _jax_scan, _pointwise, _to_jax
from models.hawkes.observations import HawkesObs


# --------------------------------------------------------------------------- log-likelihood and held-out density
PARAM_VARS = ("hawkes_baseline", "hawkes_branching", "hawkes_decay")
"""The posterior variables that carry the DESIGN.md section 8 parameters."""


def _posterior_params(idata) -> dict[str, np.ndarray]:
    """Posterior draws as batched params: mu (S, A, 4, 2), n (S, A, 2, 2), beta (S, A);
    with M > 1 kernel components n (S, A, M, 2, 2), beta (S, A, M)."""
    post = idata.posterior
    out = {}
    multi = "hawkes_kernel_branching" in post
    n_var = "hawkes_kernel_branching" if multi else "hawkes_branching"
    b_var = "hawkes_kernel_decay" if "hawkes_kernel_decay" in post else "hawkes_decay"
    for key, var, nd in (("mu", "hawkes_baseline", 2), ("n", n_var, 2 + multi), ("beta", b_var, 0 + multi)):
        da = post[var]
        x = da.transpose("chain", "draw", ...).values
        x = x.reshape((-1,) + x.shape[2:])
        if x.ndim == nd + 1:            # single asset: add the asset axis
            x = x[:, None]
        out[key] = x
    return out


def add_log_likelihood(idata, obs: HawkesObs, max_size: int = 20_000_000) -> None:
    """Add the ``log_likelihood`` group (variable ``arrivals``) to ``idata``.

    Per event (the terms ``l_i`` of docs/models/hawkes.md, summing to the
    log-likelihood) when chains x draws x N <= ``max_size``; otherwise the terms
    are summed over K contiguous segments of events (K = max_size // draws), so
    PSIS-LOO becomes leave-one-segment-out (dimension ``segment``; noted in
    ``idata.attrs["log_likelihood_note"]``).
    """
    import xarray as xr

    post = idata.posterior
    C, D = post.sizes["chain"], post.sizes["draw"]
    S, N = C * D, obs.n_events
    if S * N <= max_size:
        K, seg = N, None
    else:
        K = max(1, max_size // S)
        seg = jnp.asarray(np.minimum((np.arange(N) * K) // N, K - 1))
    vals = _pointwise_at_draws(_posterior_params(idata), obs, seg, K).reshape(C, D, K)
    dim = "event" if seg is None else "segment"
    ds = xr.Dataset({"arrivals": (("chain", "draw", dim), vals)},
                    coords={"chain": post.chain.values, "draw": post.draw.values})
    idata.add_groups({"log_likelihood": ds})
    if seg is not None:
        idata.attrs["log_likelihood_note"] = (
            f"log-likelihood summed over {K} contiguous segments of ~{N // K} events "
            f"(chains x draws x events > {max_size}): LOO is leave-one-segment-out")


def _pointwise_at_draws(prm: Mapping[str, np.ndarray], obs: HawkesObs, seg=None, n_seg: int | None = None
                       ) -> np.ndarray:
    """(S, N) per-event terms at S posterior draws (batched params of
    :func:`_posterior_params`), or (S, n_seg) sums over the segments ``seg``."""
    d = _to_jax(prepare(obs))

    def one(p):
        v = _pointwise(jnp, _jax_scan, _jax_add_at, p["mu"], p["n"], p["beta"], d)
        return v if seg is None else jax.ops.segment_sum(v, seg, num_segments=n_seg)

    return np.asarray(jax.lax.map(jax.jit(one), {k: jnp.asarray(v) for k, v in prm.items()}, batch_size=16))


def heldout_lpd(idata, obs: HawkesObs, asset: str | None = None, *,
                max_draws: int | None = 400) -> dict[str, Any]:
    """Log predictive density of held-out arrivals ``obs`` (one asset, a window the
    fit did not see): per event the one-step term ``l_i`` of the fit's
    ``log_likelihood`` (log intensity at the event minus the compensator since the
    previous event; docs/models/hawkes.md), at up to ``max_draws`` evenly thinned
    posterior draws, averaged per event (:func:`models.sampling.predictive_density`).
    The held-out window starts with no history (the excitation of the events before
    it is not carried over), as the fit's own window does."""
    from models.sampling import predictive_density, thin_index

    if obs.n_assets != 1:
        raise ValueError("heldout_lpd takes the observations of one asset")
    name = asset or obs.assets[0]
    fitted = json.loads(idata.attrs["assets"]) if "assets" in idata.attrs else [name]
    if name not in fitted:
        raise ValueError(f"asset {name!r} not in the fit ({fitted})")
    a = fitted.index(name)
    prm = _posterior_params(idata)
    idx = thin_index(len(prm["beta"]), max_draws)
    prm = {k: v[idx][:, a:a + 1] for k, v in prm.items()}
    return predictive_density(_pointwise_at_draws(prm, obs), unit="arrivals")


# --------------------------------------------------------------------------- summaries
def _asset_posterior(idata, asset: str | None):
    """The posterior of one asset (the ``asset`` dim selected away)."""
    post = idata.posterior
    if "asset" in post.dims:
        assets = [str(a) for a in post["asset"].values]
        if asset is None:
            raise ValueError(f"several assets in the posterior {assets}: pass asset=")
        if asset not in assets:
            raise KeyError(f"asset {asset!r} not in {assets}")
        post = post.sel(asset=asset)
    elif asset is not None and "assets" in idata.attrs and asset not in json.loads(idata.attrs["assets"]):
        raise KeyError(f"asset {asset!r} not in {idata.attrs['assets']}")
    return post


def summary_draws(idata, asset: str | None = None) -> dict[str, Any]:
    """Posterior draws (chains x draws, flattened) of every summarized quantity, in the
    layout of :func:`summarize` (the exporter measures each summary's fidelity on them):
    ``{"hawkes_baseline": {regime: {side: draws}}, "hawkes_branching": {target:
    {source: draws}}, "hawkes_decay": draws}``; a fit with M > 1 kernel components adds
    ``"hawkes_components": [{"decay": draws, "branching": {target: {source: draws}}}]``
    (fastest first), ``hawkes_branching`` is their total and ``hawkes_decay`` the decay
    of the one exponential with the kernel's total branching and mean lag, per draw
    (``mm_runtime.hawkes_kernel.mean_lag_decay``: ``1 / sum_m w_m / beta_m``, ``w_m``
    the component's share of the summed branching matrix). With several assets pass
    ``asset=``."""
    from mm_runtime.hawkes_kernel import mean_lag_decay

    post = _asset_posterior(idata, asset)

    def flat(name: str, *dims: str) -> np.ndarray:
        da = post[name].transpose("chain", "draw", *dims)
        return np.asarray(da.values, dtype=float).reshape((-1,) + da.shape[2:])

    def matrix(x: np.ndarray) -> dict:          # (S, 2, 2) -> {target: {source: draws}}
        return {t: {s: x[:, i, j] for j, s in enumerate(SIDES)} for i, t in enumerate(SIDES)}

    mu = flat("hawkes_baseline", "regime", "side")        # (S, 4, 2)
    n = flat("hawkes_branching", "target", "source")      # (S, 2, 2)
    out = {
        "hawkes_baseline": {r: {s: mu[:, i, j] for j, s in enumerate(SIDES)} for i, r in enumerate(REGIMES)},
        "hawkes_branching": matrix(n),
    }
    if "hawkes_kernel_branching" not in post:
        out["hawkes_decay"] = flat("hawkes_decay")
        return out
    nk = flat("hawkes_kernel_branching", "component", "target", "source")             # (S, M, 2, 2)
    beta = flat("hawkes_kernel_decay" if "hawkes_kernel_decay" in post else "hawkes_decay", "component")
    out["hawkes_decay"] = mean_lag_decay(nk.sum((2, 3)), beta)
    out["hawkes_components"] = [{"decay": beta[:, m], "branching": matrix(nk[:, m])} for m in range(nk.shape[1])]
    return out


def summarize(idata, asset: str | None = None) -> dict[str, Any]:
    """Conjugate summaries by moment matching (the families and equations of
    :mod:`models.export`), in the nested layout of ``mm_runtime.bundle``:
    ``{"hawkes_baseline": {regime: {side: gamma}}, "hawkes_branching": {target:
    {source: beta}}, "hawkes_decay": lognormal}``, plus with M > 1 kernel components
    ``"hawkes_components": [{"decay": lognormal, "branching": {target: {source:
    beta}}}]`` (:func:`summary_draws`; docs/runtime/bundle.md,
    "params.hawkes_components"). The gamma (``shape = m^2/v, rate = m/v``) and the beta
    (``a = m k, b = (1 - m) k``, ``k = m (1 - m)/v - 1``) have the posterior's mean ``m``
    and variance ``v``; so does the lognormal (``models.export.lognormal_from_draws``).
    The components' beta means sum to the total's (the draws do).

    With several assets pass ``asset=``; the layout is the single-asset one.
    """
    from models.export import beta_from_draws, gamma_from_draws, lognormal_from_draws

    d = summary_draws(idata, asset)

    def matrix(tree: dict) -> dict:
        return {t: {s: beta_from_draws(x) for s, x in per.items()} for t, per in tree.items()}

    out = {
        "hawkes_baseline": {r: {s: gamma_from_draws(x) for s, x in per.items()}
                            for r, per in d["hawkes_baseline"].items()},
        "hawkes_branching": matrix(d["hawkes_branching"]),
        "hawkes_decay": lognormal_from_draws(d["hawkes_decay"]),
    }
    if "hawkes_components" in d:
        out["hawkes_components"] = [{"decay": lognormal_from_draws(c["decay"]), "branching": matrix(c["branching"])}
                                    for c in d["hawkes_components"]]
    return out
