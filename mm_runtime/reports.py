"""Quote reports: one step's quotes as ladder rows and a summary (``mmcal quote``,
the demo after a replay), and :func:`quote_once`, the one-shot ladder from a
bundle's priors.

Units: depths and edges in bps of the mid, prices in quote currency, sizes in base
units, σ in bps/√s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from .bundle import PriorBundle, load_bundle
from .config import QuoterConfig
from .core import BINDING_NAMES, REASONS, Quotes, _spread_capture, init, make_event, step, with_ladder_values
from .vocabulary import REGIMES

__all__ = ["ladder_rows", "QuoteReport", "quote_once", "quote_report"]


def ladder_rows(q: Quotes) -> list[dict[str, Any]]:
    """Rows (bid levels then ask levels): side, level, depth_bps, price, size, p_fill,
    alpha, kelly_f, edge_bps."""
    rows = []
    for i, side in enumerate(("bid", "ask")):
        for k in range(np.shape(q.price)[1]):
            rows.append({
                "side": side,
                "level": k,
                "depth_bps": float(q.depth_bps[i, k]),
                "price": float(q.price[i, k]),
                "size": float(q.size[i, k]),
                "p_fill": float(q.fill_prob[i, k]),
                "alpha": float(q.alpha[i, k]),
                "kelly_f": float(q.kelly_f[i, k]),
                "edge_bps": float(q.edge_bps[i, k]),
            })
    return rows


@dataclass
class QuoteReport:
    """What ``mmcal quote`` prints: the ladder rows and a summary."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "ladder": self.rows}


def quote_once(
    bundle: PriorBundle | str | os.PathLike,
    mid: float,
    sigma_bps: float = 0.0,
    *,
    position: float = 0.0,
    margin_available: float = 10_000.0,
    bid: float = 0.0,
    ask: float = 0.0,
    config: QuoterConfig | None = None,
    registry=None,
) -> QuoteReport:
    """One quote from the bundle's priors (no learning history): the ladder for
    ``mmcal quote --priors BUNDLE --mid P --sigma S [--position Q --margin M]``.

    ``sigma_bps`` ≤ 0 uses the bundle's regime-weighted σ (stationary regime mix).
    γ, the spread floor, the depth spacing ratio and the toxic-hour multiplier come
    from ``registry`` (a :class:`mm_runtime.params.Registry`) where their tier is
    calibrated, else the bundle, else ``config``; the summary's ``ladder_params`` names
    each one's source.
    Raises :class:`BundleError` for a bad bundle path.
    """
    b = bundle if isinstance(bundle, PriorBundle) else load_bundle(bundle)
    config = config or QuoterConfig()
    from .params.online import ladder_values, toxic_hours  # noqa: PLC0415 (params imports the core)

    vals = ladder_values(config, b, registry)
    hours, hours_source = toxic_hours(config, registry)
    state = with_ladder_values(init(b, config), {k: v.value for k, v in vals.items()},
                               xi_follows_gamma=config.xi is None, toxic_hours=hours)
    ev = make_event(0.0, mid, bid=bid, ask=ask, sigma_bps=sigma_bps, position=position,
                    margin_available=margin_available)
    _, q = step(state, ev)
    params = {k: v.to_dict() for k, v in vals.items()}
    params["toxic_hours"] = {"value": list(hours), "source": hours_source}
    return quote_report(q, b, config, params)


def quote_report(q: Quotes, b: PriorBundle, config: QuoterConfig,
                 ladder_params: dict[str, Any] | None = None) -> QuoteReport:
    """The ladder rows and summary of one step's quotes ``q`` (from ``bundle`` ``b``
    under ``config``): what ``mmcal quote`` prints, and the demo after a replay.
    ``ladder_params``: the registry-driven values and their sources
    (:meth:`mm_runtime.quoter.Quoter.ladder_params`)."""
    q = jax.tree.map(np.asarray, q)
    summary = {
        "asset": b.asset,
        "model_version": b.model_version,
        "valid": bool(q.valid),
        "reason": REASONS[int(q.reason)],
        "mid": float(q.mid),
        "sigma_bps": float(q.sigma_bps),
        "half_spread_bps": {"bid": float(q.half_spread_bps[0]), "ask": float(q.half_spread_bps[1])},
        "skew_bps_per_unit": {"bid": float(q.skew_bps[0]), "ask": float(q.skew_bps[1])},
        "shift_bps": {"bid": float(q.shift_bps[0]), "ask": float(q.shift_bps[1])},
        "binding": {s: BINDING_NAMES[int(x)] for s, x in zip(("bid", "ask"), q.binding, strict=True)},
        "reduce_only": bool(q.reduce_only),
        "margin_used": float(q.margin_used),
        "kelly_stochastic": config.use_kelly_stochastic,
        "kelly_fraction": float(q.kelly_fraction),
        "alpha_touch": float(q.alpha_touch),
        "alpha_decay_bps": float(q.alpha_decay_bps),
        "alpha_floor": float(q.alpha_floor),
        "spread_capture": _spread_capture(b, config),
        "adverse_move_bps": float(b.params.adverse_move_bps.mean()),
        "fee_bps": float(config.fee_bps),
        "regime_probs": {r: float(p) for r, p in zip(REGIMES, q.regime_probs, strict=True)},
        "spread_multiplier": float(q.spread_multiplier),
        "cold_start": {s: bool(x) for s, x in zip(("bid", "ask"), q.cold_start, strict=True)},
    }
    if ladder_params is not None:
        summary["ladder_params"] = ladder_params
    return QuoteReport(rows=ladder_rows(q), summary=summary)
