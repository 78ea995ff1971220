"""The number of kernel components M by held-out log predictive density
(docs/models/hawkes.md, "Choosing M"): the window is split in time
(:func:`split_time`), each candidate kernel is fitted at its penalised maximum
(:func:`models.hawkes.start.penalised_mle`, the MAP of the one-asset model without
the regime pooling) on the first part, and the plug-in log density of the arrivals of
the last part (which starts with no history, as :func:`models.hawkes.heldout_lpd`
does) is compared (:func:`choose_components`). Log densities in nats per arrival.
"""

from __future__ import annotations

import numpy as np

from models.hawkes.likelihood import pointwise_loglik_jax
from models.hawkes.observations import HawkesObs
from models.hawkes.start import decay_floor, penalised_mle, point_params


def split_time(obs: HawkesObs, frac: float) -> tuple[HawkesObs, HawkesObs]:
    """(first, last): one asset's window cut at ``frac`` of its duration; the last part's
    times and bar edges start at 0 at the cut (its first bar is the one the cut falls in)."""
    if obs.n_assets != 1:
        raise ValueError("split_time takes one asset")
    if not 0 < frac < 1:
        raise ValueError(f"frac must be in (0, 1), got {frac}")
    T = float(obs.duration_s[0])
    cut = frac * T
    edges, regs = np.asarray(obs.bar_edges[0], float), np.asarray(obs.bar_regime[0])
    k = int(np.searchsorted(edges, cut, side="right") - 1)
    early = obs.t < cut
    if early.all() or not early.any():
        raise ValueError(f"no arrivals on one side of the cut at {cut:.3f} s")

    def part(sel, t, dur, e, r):
        return HawkesObs(assets=obs.assets, t=t, side=obs.side[sel], asset=obs.asset[sel],
                         regime=obs.regime[sel], duration_s=np.array([dur]), bar_edges=(e,), bar_regime=(r,),
                         start_ns=obs.start_ns, meta=dict(obs.meta))

    first = part(early, obs.t[early], cut, edges[:k + 1], regs[:k + 1])
    last = part(~early, obs.t[~early] - cut, T - cut, np.append(0.0, edges[k + 1:] - cut), regs[k:])
    return first, last


def map_heldout(obs: HawkesObs, priors, kernel, frac: float = 0.8) -> dict:
    """Fit ``kernel`` at the penalised maximum on the first ``frac`` of each asset's
    window and score the rest: ``{"lpd": nats per held-out arrival, "n": arrivals,
    "train_value": the fit's objective, "beta": decays}`` (summed over assets)."""
    total, n, betas = 0.0, 0, []
    for a in obs.assets:
        train, test = split_time(obs.select(a) if obs.n_assets > 1 else obs, frac)
        st = penalised_mle(train, priors, decay_floor(train, priors.max_decay_lifetime_windows),
                           kernel if kernel.components > 1 else None)
        prm = point_params(st, kernel)
        ll = float(np.sum(np.asarray(pointwise_loglik_jax(prm, test))))
        total += ll
        n += test.n_events
        betas.append(np.atleast_1d(prm["beta"]).tolist())
    return {"lpd": total / n, "n": n, "beta": betas}


def choose_components(obs: HawkesObs, priors, kernel, candidates=(1, 2, 3, 4), frac: float = 0.8) -> dict:
    """The M of ``candidates`` (ascending) with the largest held-out lpd
    (:func:`map_heldout`), where a larger M replaces the best smaller one only if its
    total held-out log density is more than 1 nat higher (ties go to the simpler kernel).
    Returns ``{"components": M, "table": [{"components", "lpd", "n", "beta"}], "frac"}``."""
    rows = []
    for m in candidates:
        k = kernel.model_copy(update={"components": int(m)})
        rows.append({"components": int(m), **map_heldout(obs, priors, k, frac)})
    best = rows[0]
    for r in rows[1:]:
        if (r["lpd"] - best["lpd"]) * r["n"] > 1.0:
            best = r
    return {"components": best["components"], "table": rows, "frac": frac}
