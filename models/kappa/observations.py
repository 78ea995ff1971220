"""Kappa's observations: market-order arrivals and the exposure of each
volatility bar as :class:`KappaObs` (DESIGN.md section 3 rules), combining
assets, and arrivals simulated from the model (Poisson / negative-binomial counts)
or from a Hawkes process (clustered counts).

Units: depths in bps beyond the mid, exposure in seconds, rates in events/s.
Model and depth handling: docs/models/kappa.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mm_runtime.vocabulary import NS, REGIMES, SIDES
from models.data.observations import ObservationConfig


# =========================================================================== observations
@dataclass(frozen=True, eq=False)
class KappaObs:
    """Arrivals and exposure of one or several assets.

    Bars (the regime model's bars; one row per asset x bar): ``bar_asset``
    (int32), ``bar_regime`` (int8 0..3), ``bar_exposure_s`` (seconds the bar
    covers). Arrivals (one row each): ``arr_asset``, ``arr_bar`` (global row
    index into the bars), ``arr_side`` (int8, 0 buy / 1 sell), ``depth_bps``
    (clipped at 0, see docs/models/kappa.md). ``bar_prob`` (optional, n_bars x 4): the
    bars' regime probabilities (soft regimes; ``bar_regime`` is then their most
    probable regime); None = one-hot on ``bar_regime``.
    """

    assets: tuple[str, ...]
    bar_asset: np.ndarray
    bar_regime: np.ndarray
    bar_exposure_s: np.ndarray
    arr_asset: np.ndarray
    arr_bar: np.ndarray
    arr_side: np.ndarray
    depth_bps: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    bar_prob: np.ndarray | None = None

    def __post_init__(self) -> None:
        A = len(self.assets)
        if self.bar_prob is not None:
            bp = np.asarray(self.bar_prob, dtype=float)
            if bp.shape != (len(self.bar_asset), len(REGIMES)) or np.any(bp < 0) \
                    or not np.allclose(bp.sum(axis=1), 1.0, atol=1e-6):
                raise ValueError("bar_prob must hold one row of 4 regime probabilities per bar")
            object.__setattr__(self, "bar_prob", bp)
        if A == 0 or len(set(self.assets)) != A:
            raise ValueError(f"assets must be non-empty and distinct, got {self.assets}")
        nb, na = len(self.bar_asset), len(self.arr_asset)
        if not (len(self.bar_regime) == len(self.bar_exposure_s) == nb):
            raise ValueError("bar arrays must have one entry per bar")
        if not (len(self.arr_bar) == len(self.arr_side) == len(self.depth_bps) == na):
            raise ValueError("arrival arrays must have one entry per arrival")
        if nb == 0:
            raise ValueError("KappaObs has no bars")
        if self.bar_asset.min() < 0 or self.bar_asset.max() >= A:
            raise ValueError("bar asset index out of range")
        if np.any(np.bincount(self.bar_asset, minlength=A) == 0):
            raise ValueError("every asset needs at least one bar")
        if self.bar_regime.min() < 0 or self.bar_regime.max() >= len(REGIMES):
            raise ValueError(f"bar_regime must be in 0..{len(REGIMES) - 1}")
        if not np.all(np.isfinite(self.bar_exposure_s)) or np.any(self.bar_exposure_s <= 0):
            raise ValueError("bar_exposure_s must be finite and > 0")
        if na:
            if self.arr_bar.min() < 0 or self.arr_bar.max() >= nb:
                raise ValueError("arr_bar out of range")
            if np.any(self.bar_asset[self.arr_bar] != self.arr_asset):
                raise ValueError("an arrival's bar belongs to another asset")
            if np.any(~np.isin(self.arr_side, (0, 1))):
                raise ValueError("arr_side must be 0 (buy) or 1 (sell)")
            if not np.all(np.isfinite(self.depth_bps)) or np.any(self.depth_bps < 0):
                raise ValueError("depth_bps must be finite and >= 0 (clip before)")

    @property
    def n_assets(self) -> int:
        return len(self.assets)

    @property
    def n_bars(self) -> int:
        return int(len(self.bar_asset))

    @property
    def n_arrivals(self) -> int:
        return int(len(self.arr_asset))

    def probs(self) -> np.ndarray:
        """(n_bars, 4) regime probabilities of the bars (one-hot without ``bar_prob``)."""
        return np.eye(len(REGIMES))[self.bar_regime] if self.bar_prob is None else self.bar_prob

    @property
    def soft(self) -> bool:
        """Whether some bar's regime is uncertain (a probability strictly between 0 and 1)."""
        return self.bar_prob is not None and bool(np.any((self.bar_prob > 0) & (self.bar_prob < 1)))

    @property
    def arr_regime(self) -> np.ndarray:
        return self.bar_regime[self.arr_bar]

    def bar_stats(self, min_depth_bps: float = 0.0) -> dict[str, np.ndarray]:
        """Per (bar, side) sufficient statistics: ``count`` (arrivals with D >=
        min_depth) and ``depth_sum`` (sum of D - min_depth), shape (n_bars, 2)."""
        keep = self.depth_bps >= min_depth_bps
        idx = self.arr_bar[keep] * 2 + self.arr_side[keep].astype(np.int64)
        cnt = np.bincount(idx, minlength=2 * self.n_bars).reshape(self.n_bars, 2)
        s = np.bincount(idx, weights=self.depth_bps[keep] - min_depth_bps,
                        minlength=2 * self.n_bars).reshape(self.n_bars, 2)
        return {"count": cnt, "depth_sum": s}

    def exposure(self) -> np.ndarray:
        """(A, 4) seconds per asset and regime."""
        out = np.zeros((self.n_assets, len(REGIMES)))
        np.add.at(out, (self.bar_asset, self.bar_regime), self.bar_exposure_s)
        return out

    def select(self, asset: str) -> KappaObs:
        a = self.assets.index(asset)
        bm = self.bar_asset == a
        new_index = np.full(self.n_bars, -1, dtype=np.int64)
        new_index[bm] = np.arange(int(bm.sum()))
        am = self.arr_asset == a
        return KappaObs(assets=(asset,), bar_asset=np.zeros(int(bm.sum()), np.int32),
                        bar_regime=self.bar_regime[bm], bar_exposure_s=self.bar_exposure_s[bm],
                        arr_asset=np.zeros(int(am.sum()), np.int32), arr_bar=new_index[self.arr_bar[am]],
                        arr_side=self.arr_side[am], depth_bps=self.depth_bps[am], meta=dict(self.meta),
                        bar_prob=None if self.bar_prob is None else self.bar_prob[bm])


def combine(*obs: KappaObs) -> KappaObs:
    """Concatenate the assets of several :class:`KappaObs` (names must differ)."""
    if not obs:
        raise ValueError("combine needs at least one KappaObs")
    assets: list[str] = []
    a_off, b_off = [], []
    nb = 0
    for o in obs:
        a_off.append(len(assets))
        b_off.append(nb)
        assets.extend(o.assets)
        nb += o.n_bars
    cat = lambda f: np.concatenate([f(o, a, b) for o, a, b in zip(obs, a_off, b_off)])  # noqa: E731
    return KappaObs(
        assets=tuple(assets),
        bar_asset=cat(lambda o, a, b: o.bar_asset + a).astype(np.int32),
        bar_regime=cat(lambda o, a, b: o.bar_regime).astype(np.int8),
        bar_exposure_s=cat(lambda o, a, b: o.bar_exposure_s).astype(float),
        arr_asset=cat(lambda o, a, b: o.arr_asset + a).astype(np.int32),
        arr_bar=cat(lambda o, a, b: o.arr_bar + b).astype(np.int64),
        arr_side=cat(lambda o, a, b: o.arr_side).astype(np.int8),
        depth_bps=cat(lambda o, a, b: o.depth_bps).astype(float),
        meta={"combined": [o.meta for o in obs]},
        bar_prob=None if all(o.bar_prob is None for o in obs) else cat(lambda o, a, b: o.probs()))


def _single(asset: str, bar_regime, bar_exposure, arr_bar, arr_side, depth, meta, bar_prob=None) -> KappaObs:
    return KappaObs(assets=(asset,), bar_asset=np.zeros(len(bar_regime), np.int32),
                    bar_regime=np.asarray(bar_regime, np.int8), bar_exposure_s=np.asarray(bar_exposure, float),
                    arr_asset=np.zeros(len(arr_bar), np.int32), arr_bar=np.asarray(arr_bar, np.int64),
                    arr_side=np.asarray(arr_side, np.int8), depth_bps=np.asarray(depth, float), meta=meta,
                    bar_prob=bar_prob)


def observations(market, regimes: Any = None, *, config: ObservationConfig | None = None,
                 bars=None) -> KappaObs:
    """Arrivals of one market as :class:`KappaObs` (DESIGN.md section 3 rules).

    * Arrivals: :func:`models.data.observations.arrivals` (one per sweep; its
      ``depth_bps`` is the depth reached beyond the mid just before it), clipped
      at 0 (docs/models/kappa.md); side +1 -> buy (0), -1 -> sell (1).
    * Bars and exposure: :func:`models.data.observations.volatility_bars`; bar k
      covers ``[bar_start, bar_end)`` and the last one extends to the end of the
      data (``market.end_ns``), as in ``regime_at``; its exposure is the time it
      covers, up to the start of a recording gap (``bars.attrs["gaps_ns"]``).
      Arrivals before the first bar (before the first quote) are dropped.
    * Regimes: what ``label_regimes`` accepts (one int per bar, e.g. the regime
      model's path or the synthetic truth's ``regime_path``; None = placeholder
      quantile labelling), or the bars' (n_bars x 4) regime probabilities: kept as
      ``bar_prob`` (the likelihood then mixes each count block over the regimes,
      docs/models/regime_soft.md), the most probable regime as ``bar_regime``.
    """
    from models.data import observations as ob

    cfg = config or ObservationConfig()
    arr = ob.arrivals(market)
    if bars is None:
        bars = ob.volatility_bars(market, cfg)
    reg = ob.label_regimes(bars, regimes)
    start = bars["bar_start"].to_numpy(dtype=np.int64)
    end = bars["bar_end"].to_numpy(dtype=np.int64).copy()
    tE = int(market.end_ns)
    end[-1] = max(tE, start[-1] + 1)
    end = np.minimum(end, np.maximum(tE, start + 1))
    if bars.attrs.get("gaps_ns"):
        # a bar that runs into a recording gap is exposed until the gap starts (models.data.gaps)
        gs = np.array([g[0] for g in bars.attrs["gaps_ns"]], dtype=np.int64)
        k = np.searchsorted(gs, start, side="left")
        inside = k < len(gs)
        end[inside] = np.maximum(np.minimum(end[inside], gs[k[inside]]), start[inside] + 1)
    exposure = (end - start) / NS
    ts = arr["ts"].to_numpy(dtype=np.int64)
    keep = ts >= start[0]
    bar = np.searchsorted(start, ts[keep], side="right") - 1
    side = np.where(arr["side"].to_numpy()[keep] > 0, 0, 1)
    raw = arr["depth_bps"].to_numpy(dtype=float)[keep]
    meta = {"source": getattr(market, "source", None), "dropped_before_first_bar": int((~keep).sum()),
            "negative_depth": int((raw < 0).sum()), "bar_seconds": float(cfg.bar_seconds)}
    soft = regimes is not None and np.asarray(regimes).ndim == 2
    prob = ob.regime_weights(bars, regimes) if soft else None
    return _single(str(market.asset), reg, exposure, bar, side, np.maximum(raw, 0.0), meta, prob)


# =========================================================================== truth & simulation
def truth_params(truth: Mapping[str, Any]) -> dict[str, float]:
    """Flat ``{name: value}`` from a synthetic truth dict (``params``) or a flat dict."""
    p = truth.get("params", truth)
    return {str(k): float(v) for k, v in p.items() if isinstance(v, (int, float))}


def _grid(p: Mapping[str, float], name: str, default: float | None = None) -> np.ndarray | None:
    out = np.empty((len(REGIMES), 2))
    for r, rn in enumerate(REGIMES):
        for s, sn in enumerate(SIDES):
            key = f"{name}[{rn},{sn}]"
            if key not in p:
                if default is None:
                    return None
                out[r, s] = default
            else:
                out[r, s] = p[key]
    return out


def _path(truth: Mapping[str, Any], regime_path, duration_s, bar_seconds) -> tuple[np.ndarray, np.ndarray]:
    """(regime per bar, exposure per bar)."""
    if regime_path is None:
        regime_path = truth.get("regime_path")
    if regime_path is None:
        n = int(math.ceil((duration_s or 3600.0) / bar_seconds))
        regime_path = np.repeat(np.arange(len(REGIMES)), int(math.ceil(n / len(REGIMES))))[:n]
    path = np.asarray(regime_path, dtype=np.int8)
    T = float(duration_s if duration_s is not None else truth.get("duration_s", bar_seconds * len(path)))
    n = int(math.ceil(T / bar_seconds - 1e-12))
    path = path[:n]
    b0 = bar_seconds * np.arange(len(path))
    return path, np.minimum(bar_seconds, T - b0)


def simulate(truth: Mapping[str, Any], rng: np.random.Generator | int | None = None, *,
             regime_path: Sequence[int] | None = None, duration_s: float | None = None,
             bar_seconds: float | None = None, asset: str = "SIM") -> KappaObs:
    """Arrivals from the model's own generative process.

    ``truth`` (flat names or a synthetic truth dict): ``kappa[<regime>,<side>]``
    and ``arrival_rate[<regime>,<side>]`` for all 4 x 2 cells; optional
    ``count_overdispersion[<side>]`` = d (counts per bar are then the model's
    negative binomial with mean A T_b and variance A T_b (1 + d), else Poisson(A
    T_b)). The regime path (one
    regime per bar of ``bar_seconds``, default 10 s) is ``regime_path``, else the
    truth's ``regime_path``, else equal blocks of the 4 regimes over
    ``duration_s`` (default 3600 s). Depths ~ Exponential(kappa[r, s]).
    """
    p = truth_params(truth)
    rng = np.random.default_rng(rng)
    bs = float(bar_seconds or truth.get("bar_seconds", 10.0))
    path, blen = _path(truth, regime_path, duration_s, bs)
    A = _grid(p, "arrival_rate")
    kap = _grid(p, "kappa")
    d = [p.get(f"count_overdispersion[{sn}]") for sn in SIDES]
    if A is None or kap is None:
        raise ValueError("truth needs arrival_rate[r,s] and kappa[r,s] for every regime and side")
    mean = A[path] * blen[:, None]  # (bars, 2)
    if d[0] is None or d[1] is None:
        cnt = rng.poisson(mean)
    else:
        ph = np.maximum(mean / np.asarray(d, dtype=float)[None, :], 1e-12)  # NB1: phi = mean / d
        cnt = rng.poisson(rng.gamma(ph, mean / ph))
    bar = np.repeat(np.repeat(np.arange(len(path)), 2), cnt.ravel())
    side = np.repeat(np.tile([0, 1], len(path)), cnt.ravel())
    depth = rng.exponential(1.0 / kap[path[bar], side])
    return _single(asset, path, blen, bar, side, depth,
                   {"truth": {k: v for k, v in p.items() if k.split("[")[0] in
                              ("kappa", "arrival_rate", "count_overdispersion")}, "simulated": True,
                    "bar_seconds": bs})


def simulate_hawkes(truth: Mapping[str, Any], rng: np.random.Generator | int | None = None, *,
                    branching: float = 0.5, decay: float = 0.5, regime_path: Sequence[int] | None = None,
                    duration_s: float | None = None, bar_seconds: float | None = None,
                    asset: str = "SIM") -> KappaObs:
    """Clustered arrivals: per side, a self-exciting Hawkes process (kernel
    ``branching * decay * exp(-decay t)``) with baseline ``A (1 - branching)`` so its
    stationary rate is ``arrival_rate``; simulated exactly by the cluster
    representation (Hawkes & Oakes 1974). An event's regime (and depth law) is
    that of the bar it falls in. Count variance over long windows is
    ``A T / (1 - branching)^2`` (Fano factor 1/(1-n)^2), the case the Poisson
    likelihood gets wrong."""
    p = truth_params(truth)
    rng = np.random.default_rng(rng)
    bs = float(bar_seconds or truth.get("bar_seconds", 10.0))
    path, blen = _path(truth, regime_path, duration_s, bs)
    T = float(blen.sum())
    A = _grid(p, "arrival_rate")
    kap = _grid(p, "kappa")
    if A is None or kap is None:
        raise ValueError("truth needs arrival_rate[r,s] and kappa[r,s] for every regime and side")
    b0 = bs * np.arange(len(path))
    bars, sides = [], []
    for s in range(2):
        cnt = rng.poisson(A[path, s] * (1.0 - branching) * blen)
        t = np.repeat(b0, cnt) + rng.random(int(cnt.sum())) * np.repeat(blen, cnt)
        gen, all_t = t, [t]
        while len(gen):
            kids = rng.poisson(branching, len(gen))
            gen = np.repeat(gen, kids) + rng.exponential(1.0 / decay, int(kids.sum()))
            gen = gen[gen < T]
            all_t.append(gen)
        t = np.concatenate(all_t)
        bars.append(np.minimum((t // bs).astype(np.int64), len(path) - 1))
        sides.append(np.full(len(t), s, np.int8))
    bar, side = np.concatenate(bars), np.concatenate(sides)
    order = np.lexsort((side, bar))
    bar, side = bar[order], side[order]
    depth = rng.exponential(1.0 / kap[path[bar], side])
    return _single(asset, path, blen, bar, side, depth,
                   {"truth": {k: v for k, v in p.items() if k.split("[")[0] in ("kappa", "arrival_rate")},
                    "simulated": True, "hawkes": {"branching": branching, "decay": decay}, "bar_seconds": bs})
