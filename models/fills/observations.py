"""The fills model's observations: queue orders (DESIGN.md section 3; the table of
docs/models/fills.md) with each order's regime probabilities, as :class:`FillsObs`;
combining assets; orders simulated from the model itself.

Units: durations in s, queue ahead in median trades, markouts in bps (positive =
adverse to the order), imbalance in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mm_runtime.vocabulary import REGIMES, hazard_cuts_s, horizon_label, piece_labels
from models.data.observations import ObservationConfig

FILLED_OUTCOMES = ("filled", "through")
OUTCOMES = ("filled", "through", "repost", "away", "end")


@dataclass(frozen=True, eq=False)
class FillsObs:
    """Queue orders of one or several assets, one row each.

    ``asset`` (int32), ``side`` (+1 bid / -1 ask), ``level`` (ticks behind the touch),
    ``queue_trades`` (queue ahead at placement, median trades), ``imbalance`` (touch
    (bid - ask) / (bid + ask)), ``spread_ticks``, ``depth_bps``, ``duration_s`` (> 0,
    to the fill or the censoring), ``filled`` (bool; trade-through fills included),
    ``through`` (bool), ``markout_bps`` (n x H, NaN where unknown), ``regime_prob``
    (n x 4, rows summing to 1: the bar's regime probabilities at placement),
    ``capture_bps`` (the spread capture at the fill, from the mid just before it:
    ``side (m0 - price) / m0``, bps; NaN where not filled or unknown; None = all NaN).
    """

    assets: tuple[str, ...]
    asset: np.ndarray
    side: np.ndarray
    level: np.ndarray
    queue_trades: np.ndarray
    imbalance: np.ndarray
    spread_ticks: np.ndarray
    depth_bps: np.ndarray
    duration_s: np.ndarray
    filled: np.ndarray
    through: np.ndarray
    markout_bps: np.ndarray
    regime_prob: np.ndarray
    horizons_s: tuple[float, ...]
    repost_interval_s: float
    meta: dict[str, Any] = field(default_factory=dict)
    capture_bps: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.asset)
        if self.capture_bps is None:
            object.__setattr__(self, "capture_bps", np.full(n, np.nan))
        for name in ("side", "level", "queue_trades", "imbalance", "spread_ticks", "depth_bps", "duration_s",
                     "filled", "through", "capture_bps"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"FillsObs.{name}: {len(getattr(self, name))} entries for {n} orders")
        if self.markout_bps.shape != (n, len(self.horizons_s)):
            raise ValueError(f"FillsObs.markout_bps: shape {self.markout_bps.shape}, expected ({n}, "
                             f"{len(self.horizons_s)})")
        if self.regime_prob.shape != (n, len(REGIMES)):
            raise ValueError(f"FillsObs.regime_prob: shape {self.regime_prob.shape}, expected ({n}, 4)")
        if n == 0:
            raise ValueError("FillsObs has no queue orders")
        if not np.all(np.isfinite(self.duration_s)) or np.any(self.duration_s <= 0):
            raise ValueError("FillsObs.duration_s must be finite and > 0")
        if not np.all(np.isfinite(self.queue_trades)) or np.any(self.queue_trades < 0):
            raise ValueError("FillsObs.queue_trades must be finite and >= 0")
        if np.any(np.abs(self.imbalance) > 1 + 1e-9) or not np.all(np.isfinite(self.imbalance)):
            raise ValueError("FillsObs.imbalance must be in [-1, 1]")
        if np.any(self.regime_prob < 0) or not np.allclose(self.regime_prob.sum(1), 1.0, atol=1e-6):
            raise ValueError("FillsObs.regime_prob rows must be probabilities")
        if self.asset.min() < 0 or self.asset.max() >= len(self.assets):
            raise ValueError("FillsObs.asset index out of range")

    @property
    def n_assets(self) -> int:
        return len(self.assets)

    @property
    def n_orders(self) -> int:
        return int(len(self.asset))

    @property
    def n_fills(self) -> int:
        return int(self.filled.sum())

    @property
    def signed_imbalance(self) -> np.ndarray:
        """``-side * imbalance``: positive when the book side of the aggressors that fill
        the order (the asks for our bid) is the heavier one."""
        return -self.side * self.imbalance

    @property
    def regime(self) -> np.ndarray:
        """The most probable regime of each order (int8)."""
        return np.argmax(self.regime_prob, axis=1).astype(np.int8)

    def take(self, idx: np.ndarray) -> FillsObs:
        """The orders ``idx`` (a boolean mask or indices), same assets."""
        f = {k: getattr(self, k)[idx] for k in _ROW_FIELDS}
        return FillsObs(assets=self.assets, horizons_s=self.horizons_s, repost_interval_s=self.repost_interval_s,
                        meta=dict(self.meta), **f)

    def select(self, asset: str) -> FillsObs:
        a = self.assets.index(asset)
        o = self.take(self.asset == a)
        return FillsObs(**{**{k: getattr(o, k) for k in _ROW_FIELDS}, "asset": np.zeros(o.n_orders, np.int32)},
                        assets=(asset,), horizons_s=self.horizons_s, repost_interval_s=self.repost_interval_s,
                        meta=dict(self.meta))


_ROW_FIELDS = ("asset", "side", "level", "queue_trades", "imbalance", "spread_ticks", "depth_bps", "duration_s",
               "filled", "through", "markout_bps", "regime_prob", "capture_bps")


def combine(*obs: FillsObs) -> FillsObs:
    """Concatenate the assets of several :class:`FillsObs` (distinct names, same horizons
    and re-post interval)."""
    if not obs:
        raise ValueError("combine needs at least one FillsObs")
    if len({o.horizons_s for o in obs}) != 1 or len({o.repost_interval_s for o in obs}) != 1:
        raise ValueError("combine: the assets' markout horizons and re-post intervals differ")
    assets: list[str] = []
    parts = []
    for o in obs:
        parts.append(o.asset + len(assets))
        assets.extend(o.assets)
    f = {k: np.concatenate([getattr(o, k) for o in obs]) for k in _ROW_FIELDS if k != "asset"}
    return FillsObs(assets=tuple(assets), asset=np.concatenate(parts).astype(np.int32), horizons_s=obs[0].horizons_s,
                    repost_interval_s=obs[0].repost_interval_s, meta={"combined": [o.meta for o in obs]}, **f)


def capture_shortfall(obs: FillsObs, levels: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Per asset and level 0..``levels``, the mean shortfall of the spread capture at the
    fill against the capture at placement over the filled orders with a known capture:
    ``s = mean(depth_bps - capture_bps)`` (bps), its standard error ``se = sd/sqrt(n)``,
    the sd of single fills ``sd`` and the count ``n``.  The accounting identity behind
    it: a fill's PnL at h is ``side (mid(t_fill + h) - price) = capture_at_fill -
    markout`` with the markout measured from the mid at the fill (DESIGN.md section 3),
    so the edge that prices it is ``E[capture_at_fill] - fee - m = delta - s - fee - m``
    (docs/runtime/ladder.md, "The tick ladder").  A nonparametric plug-in (the sample
    mean), not a posterior.  A level with fewer than 2 such fills gets the pooled mean
    over all levels and, as its ``se``, the pooled sd of single fills (wide; ``pooled``
    True).  An asset with fewer than 2 such fills in all is left out."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    x_all = obs.depth_bps - obs.capture_bps
    ok_all = obs.filled & np.isfinite(x_all) & (obs.level <= levels)
    for a, name in enumerate(obs.assets):
        ok = ok_all & (obs.asset == a)
        if ok.sum() < 2:
            continue
        pool = x_all[ok]
        pm, psd = float(pool.mean()), float(pool.std(ddof=1))
        cells = {}
        for lv in range(levels + 1):
            x = x_all[ok & (obs.level == lv)]
            if len(x) >= 2:
                sd = float(x.std(ddof=1))
                cells[str(lv)] = {"mean": float(x.mean()), "se": sd / float(np.sqrt(len(x))), "sd": sd, "n": len(x),
                                  "pooled": False}
            else:
                cells[str(lv)] = {"mean": pm, "se": psd, "sd": psd, "n": len(x), "pooled": True}
        out[name] = cells
    return out


# =========================================================================== from a market
def queue_table(market, config: ObservationConfig):
    """The market's queue orders (the contract table): the synthetic market's own (its
    true fill process, cut to the market's window), else the queue-order producer
    ``models.data.queue.queue_orders`` (imported here: it is the data layer's)."""
    q = getattr(market, "meta", {}).get("queue_orders")
    if q is not None:
        from models.data.synthetic_queue import clip_to_window

        a = q.attrs
        if tuple(a.get("markout_horizons_s", ())) != tuple(config.markout_horizons_s) \
                or float(a.get("repost_interval_s", -1)) != float(config.repost_interval_s) \
                or int(a.get("queue_levels", -1)) < int(config.queue_levels):
            raise ValueError(
                f"market {market.asset}: its synthetic queue orders were drawn with repost_interval_s="
                f"{a.get('repost_interval_s')}, markout_horizons_s={a.get('markout_horizons_s')}, queue_levels="
                f"{a.get('queue_levels')}; the observation rules ask for {config.repost_interval_s:g}, "
                f"{list(config.markout_horizons_s)}, {config.queue_levels}")
        win = market.meta.get("window") or {}
        end = int(win.get("end_ns", market.end_ns + 1))
        start = int(win.get("start_ns", market.start_ns))
        q2 = clip_to_window(q, start, end)
        keep = q2["level"].to_numpy() <= config.queue_levels
        out = q2[keep].reset_index(drop=True)
        out.attrs.update(q2.attrs)
        return out
    try:
        from models.data.queue import queue_orders
    except ImportError:
        raise ValueError(f"market {market.asset} ({market.source}): no queue-order producer "
                         "(models.data.queue) in this version; only the synthetic market has queue orders") from None
    return queue_orders(market, config)


def has_queue_data(market) -> str | None:
    """None when queue orders can be built for ``market``, else why not (one line)."""
    if getattr(market, "meta", {}).get("queue_orders") is not None:
        return None
    if getattr(market, "books", None) is None and not getattr(market, "meta", {}).get("messages"):
        return f"{market.asset} ({market.source}): no order book (books) in the data, so no queue orders"
    try:
        import models.data.queue  # noqa: F401
    except ImportError:
        return f"{market.asset} ({market.source}): no queue-order producer (models.data.queue) in this version"
    return None


def _regime_probs(bars, regimes, ts: np.ndarray) -> np.ndarray:
    """(n, 4) regime probabilities of the bar of each timestamp: one-hot for a path (or
    the placeholder labelling), the given rows for (n_bars x 4) probabilities; rows of
    timestamps before the first bar are NaN."""
    from models.data import observations as ob

    nb = len(bars)
    p = None if regimes is None else np.asarray(regimes)
    if p is not None and p.ndim == 2:
        if p.shape != (nb, len(REGIMES)):
            raise ValueError(f"regime probabilities have shape {p.shape} for {nb} bars")
        probs = p.astype(float)
    else:
        lab = ob.label_regimes(bars, p)
        probs = np.eye(len(REGIMES))[lab]
    start = bars["bar_start"].to_numpy(dtype=np.int64)
    idx = np.searchsorted(start, ts, side="right") - 1
    out = np.full((len(ts), len(REGIMES)), np.nan)
    ok = idx >= 0
    out[ok] = probs[idx[ok]]
    return out


def observations(market, regimes: Any = None, *, config: ObservationConfig | None = None,
                 bars=None) -> FillsObs:
    """Queue orders of one market as :class:`FillsObs` (DESIGN.md section 3; the table:
    docs/models/fills.md). ``regimes``: one regime per bar (a path: one-hot
    probabilities), an (n_bars x 4) array of probabilities (kept soft), or None (the
    placeholder quantile labelling). Orders placed before the first bar are dropped."""
    from models.data import observations as ob

    cfg = config or ObservationConfig()
    if bars is None:
        bars = ob.volatility_bars(market, cfg)
    q = queue_table(market, cfg)
    ts = q["ts"].to_numpy(np.int64)
    probs = _regime_probs(bars, regimes, ts)
    keep = np.isfinite(probs).all(axis=1)
    q = q[keep]
    probs = probs[keep]
    if len(q) == 0:
        raise ValueError(f"market {market.asset}: no queue orders inside the volatility bars")
    return from_table(q, probs, str(market.asset), cfg, source=getattr(market, "source", None),
                      dropped=int((~keep).sum()))


def from_table(q, probs: np.ndarray, asset: str, cfg: ObservationConfig, *, source: str | None = None,
               dropped: int = 0) -> FillsObs:
    """:class:`FillsObs` of one asset from a queue-orders table and the orders' (n x 4)
    regime probabilities."""
    H = tuple(float(h) for h in cfg.markout_horizons_s)
    mk = np.column_stack([q[f"markout_bps@{h:g}s"].to_numpy(float) for h in H])
    outcome = q["outcome"].to_numpy()
    return FillsObs(
        assets=(asset,), asset=np.zeros(len(q), np.int32),
        side=q["side"].to_numpy().astype(np.int8), level=q["level"].to_numpy().astype(np.int16),
        queue_trades=q["queue_ahead_trades"].to_numpy(float), imbalance=q["imbalance"].to_numpy(float),
        spread_ticks=q["spread_ticks"].to_numpy().astype(np.int16), depth_bps=q["depth_bps"].to_numpy(float),
        duration_s=q["duration_s"].to_numpy(float), filled=q["filled"].to_numpy(bool),
        through=outcome == "through", markout_bps=mk, regime_prob=np.asarray(probs, float), horizons_s=H,
        capture_bps=q["capture_bps"].to_numpy(float) if "capture_bps" in q else None,
        repost_interval_s=float(cfg.repost_interval_s),
        meta={"source": source, "queue_source": q.attrs.get("queue_source"),
              "median_trade_size": q.attrs.get("median_trade_size"), "tick": q.attrs.get("tick"),
              "dropped_before_bars": dropped, "queue_levels": int(cfg.queue_levels),
              "outcomes": {o: int((outcome == o).sum()) for o in OUTCOMES},
              "observation_config": cfg.model_dump(mode="json")})


# =========================================================================== simulation
def truth_names(repost_interval_s: float, horizons_s: Sequence[float],
                fractions: Sequence[float] | None = None) -> list[str]:
    """The model's reported names (those of the synthetic truth) for these settings."""
    cuts = hazard_cuts_s(repost_interval_s) if fractions is None else hazard_cuts_s(repost_interval_s, fractions)
    hl = [horizon_label(h) for h in horizons_s]
    out = [f"fill_hazard[{r}]" for r in REGIMES] + [f"fill_piece_ratio[{p}]" for p in piece_labels(cuts)[1:]]
    out += ["fill_queue_coef", "fill_level_coef", "fill_imbalance_coef"]
    out += [f"markout_mean_bps[{r},{h}]" for r in REGIMES for h in hl]
    out += [f"markout_{n}_bps[{h}]" for n in ("level", "queue", "imbalance") for h in hl]
    out += [f"markout_sd_bps[{r},{h}]" for r in REGIMES for h in hl]
    return out


def simulate(truth: Mapping[str, Any], rng: np.random.Generator | int | None = None, *, duration_s: float = 900.0,
             config: ObservationConfig | None = None, asset: str = "SIM", seed: int | None = None) -> FillsObs:
    """Queue orders drawn from the model's generative process with known parameters:
    a synthetic market of ``duration_s`` (its regime path, book and trades) whose queue
    layer uses ``truth`` -- a :class:`models.data.synthetic_queue.QueueConfig`, a dict of
    its fields, or a synthetic truth dict (its ``config.queues``) -- with the true
    regime path's one-hot probabilities. Returns the observations; their
    ``meta["truth"]`` holds the true values under the reported names."""
    from models.data.synthetic import SyntheticConfig, simulate_market
    from models.data.synthetic_queue import QueueConfig
    from models.data.synthetic_queue import truth_params as qtruth

    if isinstance(truth, QueueConfig):
        qc = truth
    elif "config" in truth and isinstance(truth["config"], Mapping):
        qc = QueueConfig(**truth["config"]["queues"])
    else:
        qc = QueueConfig(**dict(truth))
    cfg = config or ObservationConfig()
    if seed is None:
        seed = int(np.random.default_rng(rng).integers(2**31))
    sc = SyntheticConfig(asset=asset, queues=qc, observation=cfg)
    m = simulate_market(seed, duration_s, sc)
    q = m.meta["queue_orders"]
    path = np.asarray(m.truth["regime_path"], dtype=np.int64)
    k = np.minimum((q["ts"].to_numpy(np.int64) - sc.start_ns) // round(sc.bar_seconds * 1e9), len(path) - 1)
    o = from_table(q, np.eye(len(REGIMES))[path[k]], asset, cfg, source="synthetic")
    o.meta["truth"] = qtruth(qc, cfg.repost_interval_s, cfg.markout_horizons_s)
    o.meta["seed"] = seed
    return o
