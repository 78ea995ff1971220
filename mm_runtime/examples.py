"""Hand-written bundles for tests, benchmarks and ``mmcal quote`` without a registry:
:func:`example_bundle` (plausible constants, no fit behind it) and the builders that
add a fills block or Hawkes kernel components to one (docs/runtime/bundle.md,
"example_bundle").  Kept apart from :mod:`mm_runtime.bundle` (the schema, its checks
and I/O)."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timezone

import numpy as np

from .bundle import DEFAULT_DEPTH_BUCKETS_BPS, BundleSource, Params, PriorBundle, with_checksum
from .hawkes_kernel import mean_lag_decay
from .observation import ObservationConfig
from .vocabulary import (QUEUE_BUCKET_LABELS, REGIMES, SIDES, bucket_keys, hazard_cuts_s,
                         horizon_label, piece_labels)

__all__ = ["example_bundle", "with_example_fills", "with_example_components"]


def example_bundle(asset: str = "SYN") -> PriorBundle:
    """A plausible hand-written bundle (no fit behind it), for tests and ``mmcal quote``
    before a real export exists: the original system's alpha and kappa, hand-set rates,
    Hawkes, sticky transitions and volatilities by regime.  Every value's origin:
    docs/runtime/bundle.md ("example_bundle").
    """
    created = datetime(2026, 1, 1, tzinfo=timezone.utc)
    buckets = bucket_keys(DEFAULT_DEPTH_BUCKETS_BPS)
    centres = [1.0, 3.5, 7.5, 15.0]
    regime_scale = {"low": 0.7, "normal": 1.0, "high": 1.4, "extreme": 2.0}
    kappa = {"low": 0.3, "normal": 0.2, "high": 0.12, "extreme": 0.06}
    rate = {"low": 0.5, "normal": 1.0, "high": 2.0, "extreme": 4.0}
    sigma = {"low": 0.3, "normal": 0.6, "high": 1.2, "extreme": 2.5}
    stay = {"low": 0.98, "normal": 0.98, "high": 0.95, "extreme": 0.90}

    def beta(mean: float, strength: float) -> dict:
        return {"family": "beta", "a": mean * strength, "b": (1.0 - mean) * strength}

    def gamma(mean: float, shape: float = 10.0) -> dict:
        return {"family": "gamma", "shape": shape, "rate": shape / mean}

    def transition_row(i: int) -> dict:
        row = [0.0] * len(REGIMES)
        row[i] = stay[REGIMES[i]]
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(REGIMES)]
        for j in neighbours:
            row[j] = (1.0 - row[i]) / len(neighbours)
        # every entry > 0 (Dirichlet support): a small floor for the far regimes
        row = [max(x, 0.002) for x in row]
        total = sum(row)
        return {"family": "dirichlet", "concentration": [100.0 * x / total for x in row]}

    emission_sd, emission_n = 0.25, 50.0
    params = {
        "alpha": {
            r: {
                k: beta(min(0.15 * math.exp(-c / 10.0) * regime_scale[r], 0.9), 20.0)
                for k, c in zip(buckets, centres, strict=True)
            }
            for r in REGIMES
        },
        "alpha_decay_bps": {"family": "lognormal", "mu": math.log(10.0), "sigma": 0.5},
        "adverse_move_bps": {"family": "gamma", "shape": 4.0, "rate": 0.5},
        "kappa": {r: {s: gamma(kappa[r]) for s in SIDES} for r in REGIMES},
        "arrival_rate": {r: {s: gamma(rate[r]) for s in SIDES} for r in REGIMES},
        "hawkes_baseline": {r: {s: gamma(0.6 * rate[r]) for s in SIDES} for r in REGIMES},
        "hawkes_branching": {
            t: {s: beta(0.3 if s == t else 0.1, 20.0) for s in SIDES} for t in SIDES
        },
        "hawkes_decay": {"family": "lognormal", "mu": math.log(2.0), "sigma": 0.3},
        "regime_transition": {r: transition_row(i) for i, r in enumerate(REGIMES)},
        "regime_emission": {
            r: {
                "family": "normal_inverse_gamma",
                "mu": math.log(sigma[r]),
                "lam": emission_n,
                "shape": 1.0 + emission_n / 2.0,
                "scale": emission_sd**2 * emission_n / 2.0,
            }
            for r in REGIMES
        },
        "sigma_bps": {
            r: {"family": "lognormal", "mu": math.log(sigma[r]), "sigma": 0.1} for r in REGIMES
        },
    }
    bundle = PriorBundle(
        asset=asset,
        created_at=created,
        model_version="example-v1",
        source=BundleSource(
            data_source="hand-written example (no data)",
            window_start=created,
            window_end=created,
            row_counts={},
            data_sha256=hashlib.sha256(b"").hexdigest(),
        ),
        mlflow=None,
        observation=ObservationConfig(),
        params=Params.model_validate(params),
        diagnostics={
            "note": "hand-written example bundle: values from the original system's "
            "constants, not a fit (see mm_runtime.examples.example_bundle)"
        },
    )
    return with_checksum(bundle)


def with_example_fills(bundle: PriorBundle, hazard, markout, sd: float = 0.1, strength: float = 1000.0,
                       shortfall=None) -> PriorBundle:
    """``bundle`` as schema 3 with a hand-built ``params.fills`` block (no fit behind it;
    tests, benchmarks): ``hazard(level, bucket)`` (1/s, every hazard piece and regime;
    a gamma of shape ``strength``) and ``markout(level, bucket)`` (bps, every horizon and
    regime; a normal of sd ``sd``); ``bucket`` indexes ``QUEUE_BUCKET_LABELS``;
    optionally ``shortfall(level)`` (bps; a normal of sd ``sd``): the capture shortfall."""
    obs = bundle.observation
    pieces = piece_labels(hazard_cuts_s(obs.repost_interval_s))
    hz = [horizon_label(h) for h in obs.markout_horizons_s]

    def tree(fn, inner):
        return {r: {str(lv): {qb: {k: fn(lv, qi) for k in inner} for qi, qb in enumerate(QUEUE_BUCKET_LABELS)}
                    for lv in range(obs.queue_levels + 1)} for r in REGIMES}

    doc = bundle.model_dump(mode="json")
    doc["schema_version"] = 3
    doc["params"]["fills"] = {
        "hazard": tree(lambda lv, q: {"family": "gamma", "shape": strength, "rate": strength / hazard(lv, q)}, pieces),
        "markout_bps": tree(lambda lv, q: {"family": "normal", "mu": markout(lv, q), "sigma": sd}, hz),
    }
    if shortfall is not None:
        doc["params"]["fills"]["capture_shortfall_bps"] = {
            str(lv): {"family": "normal", "mu": shortfall(lv), "sigma": sd} for lv in range(obs.queue_levels + 1)}
    return with_checksum(PriorBundle.model_validate(doc))


def with_example_components(bundle: PriorBundle, decays, shares, strength: float = 200.0) -> PriorBundle:
    """``bundle`` with a hand-built ``params.hawkes_components`` block (no fit behind it; tests,
    benchmarks): decays ``decays`` (1/s, fastest first; lognormal, sd 0.1 in logs, mean the decay)
    and ``shares`` (M,) of every entry of the total branching (betas of ``strength``
    pseudo-observations); ``hawkes_decay`` becomes the kernel's mean-lag decay."""
    w = np.asarray(shares, dtype=float) / np.sum(shares)
    total = bundle.params.hawkes_branching
    lognormal = lambda m: {"family": "lognormal", "mu": math.log(float(m)) - 0.005, "sigma": 0.1}  # noqa: E731
    doc = bundle.model_dump(mode="json")
    doc["params"]["hawkes_components"] = [
        {"decay": lognormal(b), "branching": {t: {s: {"family": "beta", "a": total[t][s].mean() * wm * strength,
                                                      "b": (1.0 - total[t][s].mean() * wm) * strength}
                                                  for s in SIDES} for t in SIDES}}
        for b, wm in zip(decays, w, strict=True)]
    doc["params"]["hawkes_decay"] = lognormal(mean_lag_decay(w, np.asarray(decays, dtype=float)))
    return with_checksum(PriorBundle.model_validate(doc))
