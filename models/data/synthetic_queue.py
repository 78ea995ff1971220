"""The synthetic market's order book with queues and its queue orders (step 7 of
:mod:`models.data.synthetic`; docs/data/synthetic.md, "Queues").

Drawn from an RNG stream of its own (a spawned child of the market's seed), so the
trades, quotes and earlier truth values of a seed are unchanged by this layer.

* **Book** (``books`` table, DESIGN.md section 2): a snapshot at every re-post
  (``ObservationConfig.repost_interval_s``): the touch on the tick grid (bid floored,
  ask ceiled to ``tick``), sizes at the touch = the quote's sizes, at 1..K ticks
  behind lognormal (median ``deep_size_median`` growing by ``deep_size_growth`` per
  tick).
* **Queue orders** (the queue-orders table, docs/models/fills.md): at each
  snapshot, per side, one order at the touch and 1..K ticks behind it joining the back
  of the displayed queue. Its time to fill is drawn from the fills model's own truth:
  a piecewise-constant hazard in time since placement (pieces
  :func:`mm_runtime.vocabulary.hazard_cuts_s`) ``h(t) = fill_hazard[r] *
  ratio[piece(t)] * exp(b_q log1p(queue_trades) + b_l level + b_i x)``, x = the signed
  imbalance (``-side * imbalance``: positive when the aggressors' side of the book is
  heavier); censored by the next re-post, by the price moving away (an independent
  exponential time, rate ``away_rate``) and by the data end. A fill is a trade-through
  with probability ``through_share`` (it counts as a fill either way). After a fill the
  markouts at the horizons are cumulative sums of independent normal increments with
  cumulative means ``markout_mean_bps[r, h] + level / queue / imbalance slopes`` and
  increment sds ``markout_sd_bps[r, h]``: the fills model's likelihood exactly.

Truth names (written into ``truth.json`` ``params``) are the fit's reported names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mm_runtime.vocabulary import (HAZARD_CUT_FRACTIONS, NS, REGIMES, hazard_cuts_s, horizon_label,
                                   piece_labels)

Quad = tuple[float, float, float, float]


class QueueConfig(BaseModel):
    """The book with queues and the queue orders' true fill and markout process
    (module docstring). Hazards in 1/s, coefficients per unit of their covariate
    (log1p of queue ahead in median trades, ticks behind the touch, signed imbalance),
    markouts in bps (positive = adverse to the order), ``markout_tau_s`` the time scale
    of the mean markout's rise ``1 - exp(-h / tau)``, ``markout_diffusion_bps`` the
    increments' sd per sqrt(s) (times ``markout_regime_scale[r]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tick: float = Field(0.01, gt=0.0)
    deep_size_median: float = Field(6.0, gt=0.0)
    deep_size_growth: float = Field(0.3, ge=0.0)
    size_log_sd: float = Field(0.8, ge=0.0)
    hazard_cut_fractions: tuple[float, ...] = HAZARD_CUT_FRACTIONS
    fill_hazard: Quad = (2.5, 3.5, 5.0, 7.0)
    fill_piece_ratio: tuple[float, ...] = (0.8, 0.6, 0.5)
    fill_queue_coef: float = -0.6
    fill_level_coef: float = -0.9
    fill_imbalance_coef: float = 0.8
    through_share: float = Field(0.15, ge=0.0, le=1.0)
    away_rate: float = Field(0.2, ge=0.0)
    markout_mean_bps: float = 1.2
    markout_regime_scale: Quad = (0.7, 1.0, 1.4, 2.0)
    markout_level_bps: float = 0.4
    markout_queue_bps: float = 0.25
    markout_imbalance_bps: float = 0.5
    markout_tau_s: float = Field(3.0, gt=0.0)
    markout_diffusion_bps: float = Field(0.25, gt=0.0)

    def cuts_s(self, repost_interval_s: float) -> tuple[float, ...]:
        if len(self.fill_piece_ratio) != len(self.hazard_cut_fractions):
            raise ValueError("queues.fill_piece_ratio needs one entry per inner hazard cut")
        return hazard_cuts_s(repost_interval_s, self.hazard_cut_fractions)

    def markout_truth(self, horizons_s) -> dict[str, np.ndarray]:
        """Cumulative mean intercepts (4, H), slopes (H,) each, increment sds (4, H)."""
        h = np.asarray(horizons_s, dtype=float)
        rise = 1.0 - np.exp(-h / self.markout_tau_s)
        rs = np.asarray(self.markout_regime_scale, dtype=float)
        dh = np.diff(np.concatenate([[0.0], h]))
        return {"mean": rs[:, None] * self.markout_mean_bps * rise[None, :],
                "level": self.markout_level_bps * rise, "queue": self.markout_queue_bps * rise,
                "imbalance": self.markout_imbalance_bps * rise,
                "sd": rs[:, None] * self.markout_diffusion_bps * np.sqrt(dh)[None, :]}


def truth_params(qc: QueueConfig, repost_interval_s: float, horizons_s) -> dict[str, float]:
    """The queue layer's truth under the fills model's reported names."""
    p: dict[str, float] = {}
    for r, rn in enumerate(REGIMES):
        p[f"fill_hazard[{rn}]"] = float(qc.fill_hazard[r])
    labels = piece_labels(qc.cuts_s(repost_interval_s))
    for k, lab in enumerate(labels[1:]):
        p[f"fill_piece_ratio[{lab}]"] = float(qc.fill_piece_ratio[k])
    p["fill_queue_coef"] = float(qc.fill_queue_coef)
    p["fill_level_coef"] = float(qc.fill_level_coef)
    p["fill_imbalance_coef"] = float(qc.fill_imbalance_coef)
    m = qc.markout_truth(horizons_s)
    hl = [horizon_label(h) for h in horizons_s]
    for r, rn in enumerate(REGIMES):
        for j, h in enumerate(hl):
            p[f"markout_mean_bps[{rn},{h}]"] = float(m["mean"][r, j])
    for name in ("level", "queue", "imbalance"):
        for j, h in enumerate(hl):
            p[f"markout_{name}_bps[{h}]"] = float(m[name][j])
    for r, rn in enumerate(REGIMES):
        for j, h in enumerate(hl):
            p[f"markout_sd_bps[{rn},{h}]"] = float(m["sd"][r, j])
    return p


def _invert_piecewise(g: np.ndarray, cuts: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """t with G(t) = g, G(t) = integral of the piecewise-constant ``ratio`` on pieces ``cuts``."""
    G = np.concatenate([[0.0], np.cumsum(ratio[:-1] * np.diff(cuts))])
    t = np.interp(g, G, cuts)
    beyond = g > G[-1]
    t[beyond] = cuts[-1] + (g[beyond] - G[-1]) / ratio[-1]
    return t


def simulate_queues(rng: np.random.Generator, qc: QueueConfig, obs_cfg, quotes: pd.DataFrame,
                    trades: pd.DataFrame, path: np.ndarray, bar_seconds: float, start_ns: int,
                    T: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(books, queue orders) of the synthetic market (module docstring). ``quotes`` and
    ``trades`` the market's tables (ts in ns UTC), ``path`` its regime per bar."""
    R = float(obs_cfg.repost_interval_s)
    K = int(obs_cfg.queue_levels)
    H = tuple(float(h) for h in obs_cfg.markout_horizons_s)
    cuts = np.asarray(qc.cuts_s(R))
    ratio = np.concatenate([[1.0], np.asarray(qc.fill_piece_ratio, dtype=float)])
    R_ns, T_ns = round(R * NS), round(T * NS)
    place = start_ns + R_ns * np.arange(max(1, -(-T_ns // R_ns)), dtype=np.int64)
    place = place[place < start_ns + T_ns]
    qts = quotes["ts"].to_numpy(np.int64)
    qi = np.maximum(np.searchsorted(qts, place, side="right") - 1, 0)
    bid, ask = quotes["bid"].to_numpy()[qi], quotes["ask"].to_numpy()[qi]
    mid = 0.5 * (bid + ask)
    tick = qc.tick
    bid_t = np.floor(bid / tick + 1e-9) * tick
    ask_t = np.ceil(ask / tick - 1e-9) * tick
    nP, L = len(place), K + 1
    size = np.empty((nP, 2, L))
    size[:, 0, 0] = quotes["bid_size"].to_numpy()[qi]
    size[:, 1, 0] = quotes["ask_size"].to_numpy()[qi]
    if K:
        med = qc.deep_size_median * (1.0 + qc.deep_size_growth * np.arange(K))
        size[:, :, 1:] = med * np.exp(qc.size_log_sd * rng.standard_normal((nP, 2, K)))
    lev = np.arange(L)
    price = np.stack([bid_t[:, None] - lev * tick, ask_t[:, None] + lev * tick], axis=1)  # (nP, 2, L)
    books = pd.DataFrame({
        "ts": np.repeat(place, 2 * L), "side": np.tile(np.repeat(np.array([1, -1], np.int8), L), nP),
        "level": np.tile(lev, 2 * nP).astype(np.int16), "price": price.ravel(), "size": size.ravel()})

    # the orders: one per (snapshot, side, level), rows in that order
    n = nP * 2 * L
    ts = books["ts"].to_numpy()
    side = books["side"].to_numpy()
    level = books["level"].to_numpy().astype(np.int16)
    p_ord = books["price"].to_numpy()
    snap = np.repeat(np.arange(nP), 2 * L)
    med_trade = float(np.median(trades["size"].to_numpy()))
    q_ahead = books["size"].to_numpy()
    qt = q_ahead / med_trade
    b0, a0 = size[:, 0, 0], size[:, 1, 0]
    imb = ((b0 - a0) / (b0 + a0))[snap]
    x_imb = -side * imb
    spread_ticks = np.maximum(np.rint((ask_t - bid_t) / tick), 1).astype(np.int16)[snap]
    m0 = mid[snap]
    depth_bps = side * (m0 - p_ord) / m0 * 1e4
    t_rel = (ts - start_ns) / NS
    reg = path[np.minimum((t_rel // bar_seconds).astype(np.int64), len(path) - 1)]
    lam = np.asarray(qc.fill_hazard)[reg] * np.exp(qc.fill_queue_coef * np.log1p(qt)
                                                   + qc.fill_level_coef * level + qc.fill_imbalance_coef * x_imb)
    t_fill = _invert_piecewise(rng.exponential(1.0, n) / lam, cuts, ratio)
    t_away = rng.exponential(1.0 / qc.away_rate, n) if qc.away_rate > 0 else np.full(n, np.inf)
    t_end = T - t_rel
    cens = np.minimum(np.minimum(t_away, R), t_end)
    filled = t_fill < cens
    dur = np.where(filled, t_fill, cens)
    through = filled & (rng.random(n) < qc.through_share)
    outcome = np.where(filled, np.where(through, "through", "filled"),
                       np.where(t_away <= np.minimum(R, t_end), "away", np.where(R <= t_end, "repost", "end")))
    # markouts: cumulative sums of normal increments (the fit's likelihood)
    mt = qc.markout_truth(H)
    xq = np.log1p(qt)
    mu = (mt["mean"][reg] + np.outer(level, mt["level"]) + np.outer(xq, mt["queue"])
          + np.outer(x_imb, mt["imbalance"]))
    dmu = np.diff(np.concatenate([np.zeros((n, 1)), mu], axis=1), axis=1)
    mk = np.cumsum(dmu + mt["sd"][reg] * rng.standard_normal((n, len(H))), axis=1)
    t_f_abs = t_rel + dur
    mk[~filled] = np.nan
    mk[t_f_abs[:, None] + np.asarray(H)[None, :] > T] = np.nan
    fill_ns = ts + np.round(dur * NS).astype(np.int64)
    fi = np.maximum(np.searchsorted(qts, fill_ns, side="left") - 1, 0)  # the mid just before the fill
    mf = 0.5 * (quotes["bid"].to_numpy()[fi] + quotes["ask"].to_numpy()[fi])
    capture = np.where(filled, side * (mf - p_ord) / mf * 1e4, np.nan)
    q = pd.DataFrame({"ts": ts, "side": side.astype(np.int8), "level": level, "price": p_ord,
                      "depth_bps": depth_bps, "queue_ahead": q_ahead, "queue_ahead_trades": qt,
                      "imbalance": imb, "spread_ticks": spread_ticks, "duration_s": dur,
                      "outcome": outcome.astype(object), "filled": filled, "capture_bps": capture})
    for j, h in enumerate(H):
        q[f"markout_bps@{h:g}s"] = mk[:, j]
    q = q[q["duration_s"] > 0].reset_index(drop=True)
    q.attrs.update(queue_attrs(qc, obs_cfg, med_trade, q, source="synthetic"))
    return books, q


def queue_attrs(qc: QueueConfig, obs_cfg, med_trade: float, q: pd.DataFrame, source: str) -> dict[str, Any]:
    """The queue-orders table's ``attrs`` (docs/models/fills.md, the contract)."""
    placed = {f"{'bid' if s > 0 else 'ask'}:{lv}": int(((q['side'] == s) & (q['level'] == lv)).sum())
              for s in (1, -1) for lv in range(int(obs_cfg.queue_levels) + 1)}
    return {"queue_source": source, "tick": float(qc.tick), "median_trade_size": float(med_trade),
            "queue_levels": int(obs_cfg.queue_levels), "repost_interval_s": float(obs_cfg.repost_interval_s),
            "markout_horizons_s": [float(h) for h in obs_cfg.markout_horizons_s], "n_placed": placed}


def clip_to_window(q: pd.DataFrame, start_ns: int, end_ns: int) -> pd.DataFrame:
    """The queue orders placed in ``[start_ns, end_ns)``, censored at ``end_ns`` as the data
    end would censor them (outcome ``end``; markouts past the end NaN)."""
    ts = q["ts"].to_numpy(np.int64)
    out = q[(ts >= start_ns) & (ts < end_ns)].reset_index(drop=True).copy()
    if len(out) == 0:
        out.attrs.update(q.attrs)
        return out
    t = out["ts"].to_numpy(np.int64)
    left = (end_ns - t) / NS
    cut = out["duration_s"].to_numpy() > left
    if cut.any():
        out.loc[cut, "duration_s"] = left[cut]
        out.loc[cut, "outcome"] = "end"
        out.loc[cut, "filled"] = False
        out.loc[cut, "capture_bps"] = np.nan
    to_end = (t - end_ns) / NS + out["duration_s"].to_numpy()   # fill time minus the end, s
    for c in [c for c in out.columns if c.startswith("markout_bps@")]:
        h = float(c.split("@")[1].rstrip("s"))
        bad = (~out["filled"].to_numpy()) | (to_end + h > 0)
        out.loc[bad, c] = np.nan
    out = out[out["duration_s"] > 0].reset_index(drop=True)
    out.attrs.update(q.attrs)
    return out


__all__ = ["QueueConfig", "clip_to_window", "queue_attrs", "simulate_queues", "truth_params"]
