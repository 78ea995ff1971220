"""Parametrizations of hierarchical normal priors for NUTS: centred, non-centred, or
whitened by each group's conditional posterior (used by alpha, kappa and hawkes;
re-exported by :mod:`models.sampling`).

Sources: Papaspiliopoulos, Roberts & Skold 2007 (centred vs non-centred); derivation
of the whitened forms and why they are used: docs/sampling.md.
"""

from __future__ import annotations

import numpy as np


def centred_groups(est: np.ndarray, sd: np.ndarray, ratio: float, min_spread: float) -> np.ndarray:
    """Which groups to sample centred (``parametrization="auto"``): those whose data
    pin them, i.e. whose sampling sd is below ``1/ratio`` of the spread of the group
    estimates (the spread stands in for the hierarchical scale: data precision >
    ratio^2 x prior precision). ``est``/``sd``: crude per-group estimates and their
    sampling sds (NaN / inf where a group has no data). Used by alpha, kappa and hawkes."""
    est, sd = np.asarray(est, dtype=float), np.asarray(sd, dtype=float)
    ok = np.isfinite(est) & np.isfinite(sd)
    spread = float(np.std(est[ok])) if ok.sum() >= 2 else 0.0
    return ok & (sd * ratio < max(spread, min_spread))


def mixed_normal(name: str, loc, scale, centred: np.ndarray, dims: tuple[str, ...] | None = None):
    """Normal(loc, scale) over flattened groups: centred (``x ~ Normal(loc, scale)``,
    variable ``<name>_centred``) where ``centred``, non-centred (``x = loc + scale *
    z``, z ~ Normal(0, 1), variable ``<name>_z``) elsewhere. The same distribution;
    only the sampler's coordinates differ (Papaspiliopoulos, Roberts & Skold 2007).
    ``dims`` name the variable when all groups use one form. Returns a flat (n,) tensor."""
    import pymc as pm
    import pytensor.tensor as pt

    centred = np.asarray(centred, dtype=bool).ravel()
    n = len(centred)
    loc = pt.broadcast_to(loc, (n,))
    ic, inc = np.flatnonzero(centred), np.flatnonzero(~centred)
    if dims and (len(ic) == n or len(inc) == n):
        coords = pm.modelcontext(None).coords
        shape = tuple(len(coords[d]) for d in dims)
        if len(inc) == n:
            return loc + scale * pt.reshape(pm.Normal(f"{name}_z", 0.0, 1.0, dims=dims), (n,))
        return pt.reshape(pm.Normal(f"{name}_centred", pt.reshape(loc, shape), scale, dims=dims), (n,))
    out = pt.zeros(n)
    if len(inc):
        z = pm.Normal(f"{name}_z", 0.0, 1.0, shape=len(inc))
        out = pt.set_subtensor(out[inc], loc[inc] + scale * z)
    if len(ic):
        x = pm.Normal(f"{name}_centred", loc[ic], scale, shape=len(ic))
        out = pt.set_subtensor(out[ic], x)
    return out


def _data_terms(est, sd, has_data):
    """(mask, est with 0 where no data, precision 1/sd^2 with 0 where no data): numpy
    arrays (mask from NaN / inf) or tensors (mask ``has_data`` required)."""
    import pytensor.tensor as pt

    if has_data is None:
        est, sd = np.asarray(est, dtype=float), np.asarray(sd, dtype=float)
        ok = np.isfinite(est) & np.isfinite(sd) & (sd > 0)
        return ok, np.where(ok, est, 0.0), np.where(ok, 1.0 / np.where(ok, sd, 1.0) ** 2, 0.0)
    ok = np.asarray(has_data, dtype=bool)
    one = pt.ones_like(pt.as_tensor_variable(sd))
    return ok, pt.where(ok, est, 0.0), pt.where(ok, 1.0 / pt.where(ok, sd, one) ** 2, 0.0)


def whitened_normal(name: str, loc, scale, est, sd, has_data: np.ndarray | None = None,
                    dims: tuple[str, ...] | None = None):
    """Normal(loc, scale) over groups in coordinates whitened by each group's
    conditional posterior under a normal approximation of its data (``est`` the crude
    estimate, ``sd`` its sampling sd: numpy arrays with NaN / inf where a group has no
    data, or tensors with the mask ``has_data``). The sampled variable is
    ``<name>_white``; x ~ Normal(loc, scale) exactly (a reparametrisation, not an
    approximation). Returns a tensor of est's shape (``dims`` name the sampled
    variable's axes). Derivation and why: docs/sampling.md."""
    import pymc as pm
    import pytensor.tensor as pt

    ok, y, prec = _data_terms(est, sd, has_data)
    shape = ok.shape
    loc = pt.broadcast_to(loc, shape)
    tp = scale**2 * prec                       # scale^2 / sd^2, 0 without data
    w = tp / (1.0 + tp)
    h = scale / pt.sqrt(1.0 + tp)
    kw = {"dims": dims} if dims else {"shape": shape}
    xw = pm.Normal(f"{name}_white", w * (loc - y) / h, pt.sqrt(1.0 + tp), **kw)
    return loc + w * (y - loc) + h * xw


def whitened_mean(name: str, mu0, sd0: float, scale, est, sd, has_data: np.ndarray | None = None,
                  dims: str | None = None):
    """The hierarchical mean ``m ~ Normal(mu0, sd0)`` of groups ``x[g] ~ Normal(m, scale)``
    (the last axis of ``est`` indexes the groups; leading axes, named ``dims``, give
    several means), whitened by its conditional posterior given the groups' data
    (``est``, ``sd``, ``has_data`` as in :func:`whitened_normal`). The sampled variable
    is ``<name>_white``; m is registered as the deterministic ``<name>``. Derivation
    and why: docs/sampling.md."""
    import pymc as pm
    import pytensor.tensor as pt

    ok, y, prec = _data_terms(est, sd, has_data)
    wts = pt.where(ok, prec / (1.0 + scale**2 * prec), 0.0)    # 1 / (scale^2 + sd^2)
    P = 1.0 / sd0**2 + pt.sum(wts, axis=-1)
    c = (mu0 / sd0**2 + pt.sum(wts * y, axis=-1)) / P
    root = pt.sqrt(P)
    kw = {"dims": dims} if dims else {"shape": ok.shape[:-1]}
    mw = pm.Normal(f"{name}_white", (mu0 - c) * root, sd0 * root, **kw)
    return pm.Deterministic(name, c + mw / root, **({"dims": dims} if dims else {}))
