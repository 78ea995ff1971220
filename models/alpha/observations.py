"""Alpha's observations: passive fills as :class:`AlphaObs` (DESIGN.md section 3
rules), combining assets, sweep weights, and fills simulated from the model's
generative process.

Units: depths and markouts in bps (markout positive = adverse, from the fill
price), horizons in seconds. Sweep weighting and the generative model:
docs/models/alpha.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mm_runtime.vocabulary import DEPTH_BUCKETS_BPS, REGIMES
from models.data.observations import ObservationConfig

BUCKET_REPRESENTATIVE_BPS: tuple[float, ...] = (1.0, 3.5, 7.5, 15.0)
"""Depth used for a bucket with no fills at all: the midpoint, 15 bp for [10,inf)."""
Weighting = Literal["sweep", "none"]


# =========================================================================== observations
@dataclass(frozen=True, eq=False)
class AlphaObs:
    """Passive fills of one or several assets (one row per fill).

    ``asset`` (int32 index into ``assets``), ``regime`` (int8 0..3), ``side``
    (int8, +1 our bid filled / -1 our ask), ``depth_bps`` (the quote's delta on
    the grid), ``informed`` (bool flag of the observation rule), ``markout_bps``
    (positive = adverse, from the fill price), ``weight`` (sweep weight, see the
    docs/models/alpha.md), ``informed_threshold_bps`` and ``markout_horizon_s`` (the
    rule's parameters; they must agree across assets).
    """

    assets: tuple[str, ...]
    asset: np.ndarray
    regime: np.ndarray
    side: np.ndarray
    depth_bps: np.ndarray
    informed: np.ndarray
    markout_bps: np.ndarray
    weight: np.ndarray
    informed_threshold_bps: float = 1.0
    markout_horizon_s: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.depth_bps)
        arrays = (self.asset, self.regime, self.side, self.informed, self.markout_bps, self.weight)
        if any(len(x) != n for x in arrays):
            raise ValueError("AlphaObs arrays must all have one entry per fill")
        if len(self.assets) == 0 or len(set(self.assets)) != len(self.assets):
            raise ValueError(f"assets must be non-empty and distinct, got {self.assets}")
        if n == 0:
            raise ValueError("AlphaObs has no fills")
        if self.asset.min() < 0 or self.asset.max() >= len(self.assets):
            raise ValueError("asset index out of range")
        empty = [self.assets[a] for a in np.flatnonzero(np.bincount(self.asset, minlength=len(self.assets)) == 0)]
        if empty:
            raise ValueError(f"asset(s) {empty} have no fills")
        if self.regime.min() < 0 or self.regime.max() >= len(REGIMES):
            raise ValueError(f"regime must be in 0..{len(REGIMES) - 1}")
        if not np.all(np.isfinite(self.depth_bps)) or np.any(self.depth_bps < 0):
            raise ValueError("depth_bps must be finite and >= 0")
        if not np.all(np.isfinite(self.markout_bps)):
            raise ValueError("markout_bps must be finite")
        if not np.all(np.isfinite(self.weight)) or np.any(self.weight <= 0) or np.any(self.weight > 1):
            raise ValueError("weight must be in (0, 1]")

    @property
    def n_fills(self) -> int:
        return int(len(self.depth_bps))

    @property
    def n_assets(self) -> int:
        return len(self.assets)

    def select(self, asset: str) -> AlphaObs:
        """The fills of one asset."""
        a = self.assets.index(asset)
        m = self.asset == a
        return AlphaObs(assets=(asset,), asset=np.zeros(int(m.sum()), np.int32),
                        regime=self.regime[m], side=self.side[m], depth_bps=self.depth_bps[m],
                        informed=self.informed[m], markout_bps=self.markout_bps[m],
                        weight=self.weight[m], informed_threshold_bps=self.informed_threshold_bps,
                        markout_horizon_s=self.markout_horizon_s, meta=dict(self.meta))

    def cells(self) -> dict[str, np.ndarray]:
        """Weighted binomial cells by (asset, regime, depth): ``asset``, ``regime``,
        ``depth_bps``, ``n`` (sum of weights), ``k`` (sum of weights of informed
        fills), ``fills`` and ``informed_fills`` (raw counts)."""
        key = np.stack([self.asset.astype(float), self.regime.astype(float), self.depth_bps], axis=1)
        uniq, inv = np.unique(key, axis=0, return_inverse=True)
        inv = inv.ravel()
        m = len(uniq)
        w = self.weight
        y = self.informed.astype(float)
        return {
            "asset": uniq[:, 0].astype(np.int32), "regime": uniq[:, 1].astype(np.int8),
            "depth_bps": uniq[:, 2],
            "n": np.bincount(inv, weights=w, minlength=m), "k": np.bincount(inv, weights=w * y, minlength=m),
            "fills": np.bincount(inv, minlength=m), "informed_fills": np.bincount(inv, weights=y, minlength=m),
        }

    def bucket_depths(self) -> dict[str, Any]:
        """Depth weights per asset and bucket for :func:`summarize` (docs/models/alpha.md)."""
        depths = np.unique(np.concatenate([self.depth_bps, BUCKET_REPRESENTATIVE_BPS]))
        W = np.zeros((self.n_assets, len(DEPTH_BUCKETS_BPS), len(depths)))
        di = np.searchsorted(depths, self.depth_bps)
        np.add.at(W, (self.asset, _bucket(self.depth_bps), di), self.weight)
        pooled = W.sum(axis=0)
        for a in range(self.n_assets):
            for b in range(len(DEPTH_BUCKETS_BPS)):
                if W[a, b].sum() > 0:
                    W[a, b] /= W[a, b].sum()
                elif pooled[b].sum() > 0:
                    W[a, b] = pooled[b] / pooled[b].sum()
                else:
                    W[a, b] = 0.0
                    W[a, b, np.searchsorted(depths, BUCKET_REPRESENTATIVE_BPS[b])] = 1.0
        return {"assets": list(self.assets), "depth_bps": depths.tolist(), "weights": W.tolist()}


def _bucket(depth: np.ndarray) -> np.ndarray:
    d = np.maximum(np.asarray(depth, dtype=float), 0.0)
    return np.searchsorted(np.asarray(DEPTH_BUCKETS_BPS), d, side="right") - 1


def combine(*obs: AlphaObs) -> AlphaObs:
    """Concatenate the assets of several :class:`AlphaObs` (names must differ and the
    informed threshold and horizon must agree: otherwise the flags mean different things)."""
    if not obs:
        raise ValueError("combine needs at least one AlphaObs")
    thr = {o.informed_threshold_bps for o in obs}
    hor = {o.markout_horizon_s for o in obs}
    if len(thr) > 1 or len(hor) > 1:
        raise ValueError(f"assets use different informed rules (thresholds {thr}, horizons {hor})")
    assets: list[str] = []
    offs = []
    for o in obs:
        offs.append(len(assets))
        assets.extend(o.assets)
    cat = lambda name: np.concatenate([getattr(o, name) for o in obs])  # noqa: E731
    return AlphaObs(
        assets=tuple(assets), asset=np.concatenate([o.asset + k for o, k in zip(obs, offs)]).astype(np.int32),
        regime=cat("regime").astype(np.int8), side=cat("side").astype(np.int8),
        depth_bps=cat("depth_bps").astype(float), informed=cat("informed").astype(bool),
        markout_bps=cat("markout_bps").astype(float), weight=cat("weight").astype(float),
        informed_threshold_bps=obs[0].informed_threshold_bps, markout_horizon_s=obs[0].markout_horizon_s,
        meta={"combined": [o.meta for o in obs]})


def sweep_weights(ts: np.ndarray, side: np.ndarray) -> np.ndarray:
    """1 / (number of fills sharing the fill's timestamp and side): the fills of one sweep."""
    ts = np.asarray(ts, dtype=np.int64)
    side = np.asarray(side, dtype=np.int64)
    if len(ts) == 0:
        return np.zeros(0)
    key = np.stack([ts, side], axis=1)
    _, inv, cnt = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    return 1.0 / cnt[inv.ravel()]


def observations(market, regimes: Any = None, *, config: ObservationConfig | None = None,
                 bars=None, weighting: Weighting = "sweep") -> AlphaObs:
    """Passive fills of one market as :class:`AlphaObs` (DESIGN.md section 3 rules,
    :func:`models.data.observations.passive_fills`).

    ``regimes``: what :func:`models.data.observations.label_regimes` accepts (one
    int per bar, e.g. the regime model's path or the synthetic truth's
    ``regime_path``; an (n_bars x 4) probability array -- the regime model's smoothed
    probabilities: each fill then enters once per regime of its bar, its weight
    multiplied by that regime's probability --; None = the placeholder
    quantile labelling). ``config``: the observation rules (default
    :class:`ObservationConfig`, the synthetic market's default too). Fills
    without a regime (before the first bar) are dropped. ``weighting``: see the
    docs/models/alpha.md.
    """
    from models.data import observations as ob

    cfg = config or ObservationConfig()
    if bars is None:
        bars = ob.volatility_bars(market, cfg)
    reg = ob.label_regimes(bars, regimes)
    fills = ob.passive_fills(market, cfg, bars=bars, regimes=reg)
    keep = (fills["regime"].to_numpy() >= 0) & np.isfinite(fills["markout_bps"].to_numpy())
    f = fills[keep]
    ts, side = f["ts"].to_numpy(np.int64), f["side"].to_numpy()
    w = np.ones(len(f))
    if weighting == "sweep" and len(f):
        w *= sweep_weights(ts, side).sum() / len(f)  # n_sweeps / n_fills (docs/models/alpha.md)
    # soft regimes: a fill is split over the regimes of its bar with its weight times the
    # regime's probability (one row per fill and regime of positive probability; a
    # one-hot row leaves the fill as it is); docs/models/regime_soft.md
    P = ob.weights_at(ts, bars, ob.regime_weights(bars, regimes))
    fi, ri = np.nonzero(P > 0)
    return AlphaObs(
        assets=(str(market.asset),), asset=np.zeros(len(fi), np.int32),
        regime=ri.astype(np.int8), side=side[fi].astype(np.int8),
        depth_bps=f["depth_bps"].to_numpy(dtype=float)[fi], informed=f["informed"].to_numpy(dtype=bool)[fi],
        markout_bps=f["markout_bps"].to_numpy(dtype=float)[fi], weight=w[fi] * P[fi, ri],
        informed_threshold_bps=cfg.informed_threshold_bps, markout_horizon_s=cfg.markout_horizon_s,
        meta={"source": getattr(market, "source", None), "dropped": int((~keep).sum()),
              "weighting": weighting, "observation_config": cfg.model_dump(mode="json"),
              "n_passive_fills": int(len(f)), "soft_regimes": bool(len(fi) > len(f))})


# =========================================================================== truth & simulation
DEFAULT_MARKOUT_NOISE_BPS = (0.3, 0.5, 0.8, 1.2)


def truth_params(truth: Mapping[str, Any]) -> dict[str, float]:
    """Flat ``{name: value}`` (DESIGN.md section 8 names) from a synthetic market's
    truth dict (which holds them under ``params``) or from such a flat dict."""
    p = truth.get("params", truth)
    return {str(k): float(v) for k, v in p.items() if isinstance(v, (int, float))}


def simulate(truth: Mapping[str, Any], rng: np.random.Generator | int | None = None, *,
             n_fills: int = 20_000, depth_grid_bps: Sequence[float] | None = None,
             regime_weights: Sequence[float] = (0.30, 0.45, 0.18, 0.07),
             fill_depth_decay: float = 0.35, informed_threshold_bps: float = 1.0,
             flag: Literal["coin", "threshold"] = "coin", asset: str = "SIM",
             markout_horizon_s: float = 1.0) -> AlphaObs:
    """Fills drawn from the model's own generative process (independent fills, weight 1).

    ``truth`` (flat names or a synthetic truth dict): ``alpha_touch[<regime>]`` for
    the 4 regimes and ``alpha_decay_bps`` (required); ``alpha_floor`` (0; below every
    ``alpha_touch``), ``adverse_move_bps`` (5),
    ``adverse_shape`` (2), ``markout_offset_bps`` (0), ``spread_capture`` (1),
    ``markout_noise_bps[<regime>]`` (0.3, 0.5, 0.8, 1.2) optional. Design: a fill's regime ~ Categorical
    (``regime_weights``), its depth on ``depth_grid_bps`` (default the observation
    grid) with P(delta) proportional to ``exp(-fill_depth_decay delta)`` (deep quotes fill
    rarely). Then ``informed ~ Bernoulli(alpha_floor + (alpha_touch[r] - alpha_floor)
    exp(-delta/alpha_decay_bps))``
    and the markout ~ Gamma(shape, mean adverse_move_bps) if informed, else
    Normal(-spread_capture * delta + markout_offset_bps, markout_noise_bps[r]): exactly the mixture
    model, and (``flag="coin"``) the threshold model's flag is the generator's
    coin, so both variants are exactly specified on this data. ``flag="threshold"``
    applies the observation rule instead (``informed = markout > threshold``), as
    on real data: then neither variant is exact (the flag is a noisy coin).
    """
    p = truth_params(truth)
    rng = np.random.default_rng(rng)
    at = np.array([p[f"alpha_touch[{r}]"] for r in REGIMES])
    decay = p["alpha_decay_bps"]
    floor = p.get("alpha_floor", 0.0)
    if not 0.0 <= floor < at.min():
        raise ValueError(f"alpha_floor: {floor:g} must be in [0, min alpha_touch = {at.min():g})")
    as_mean = p.get("adverse_move_bps", 5.0)
    shape = p.get("adverse_shape", 2.0)
    off = p.get("markout_offset_bps", 0.0)
    capture = p.get("spread_capture", 1.0)
    noise = np.array([p.get(f"markout_noise_bps[{r}]", d) for r, d in zip(REGIMES, DEFAULT_MARKOUT_NOISE_BPS)])
    grid = np.asarray(depth_grid_bps if depth_grid_bps is not None else ObservationConfig().depth_grid_bps, float)
    rw = np.asarray(regime_weights, float)
    reg = rng.choice(len(REGIMES), size=n_fills, p=rw / rw.sum()).astype(np.int8)
    pd_ = np.exp(-fill_depth_decay * grid)
    depth = grid[rng.choice(len(grid), size=n_fills, p=pd_ / pd_.sum())]
    alpha = floor + (at[reg] - floor) * np.exp(-depth / decay)  # floor 0: exactly at * exp(...)
    informed = rng.random(n_fills) < alpha
    mk = np.where(informed, rng.gamma(shape, as_mean / shape, n_fills),
                  -capture * depth + off + noise[reg] * rng.standard_normal(n_fills))
    side = np.where(rng.random(n_fills) < 0.5, 1, -1).astype(np.int8)
    if flag == "threshold":
        informed = mk > informed_threshold_bps
    truth_flat = {f"alpha_touch[{r}]": float(at[i]) for i, r in enumerate(REGIMES)}
    truth_flat.update({"alpha_decay_bps": decay, "alpha_floor": floor, "adverse_move_bps": as_mean, "adverse_shape": shape,
                       "markout_offset_bps": off, "spread_capture": capture})
    truth_flat.update({f"markout_noise_bps[{r}]": float(noise[i]) for i, r in enumerate(REGIMES)})
    return AlphaObs(assets=(asset,), asset=np.zeros(n_fills, np.int32), regime=reg, side=side,
                    depth_bps=depth, informed=informed, markout_bps=mk, weight=np.ones(n_fills),
                    informed_threshold_bps=informed_threshold_bps, markout_horizon_s=markout_horizon_s,
                    meta={"truth": truth_flat, "simulated": True})
