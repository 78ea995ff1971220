"""What the alpha fit estimates against the synthetic market's truth, without fitting
(``coverage_study.py --alpha-estimands``; benchmarks/README.md, "What the alpha fit
estimates")."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def alpha_estimands(seeds: Sequence[int], duration_s: float) -> str:
    """What the alpha fit estimates vs the truth, without fitting (markdown table).

    Pooled over the seeds' markets (true regime path, the default observation
    rules): alpha_touch[r] as ``sum(w y) / sum(w exp(-delta / alpha_decay_bps))``
    and the adverse move as ``sum(w m y) / sum(w y)`` (m = markout), with the flag
    y = the generator's coin (``meta['truth_arrivals']``, joined on ts and side)
    or the observed threshold flag, and weights w = 1 per fill or the sweep
    weights ``1/m`` the model uses. The threshold model with sweep weights
    (column "flag, sweep") is what :func:`models.alpha.fit` estimates.
    """
    from models import alpha as al
    from models.data import observations as ob
    from models.data.observations import REGIMES
    from models.data.synthetic import simulate_market

    K = len(REGIMES)
    cols = (("coin", "fill"), ("coin", "sweep"), ("flag", "fill"), ("flag", "sweep"))
    num = {c: np.zeros(K) for c in cols}
    den = {c: np.zeros(K) for c in cols}
    adv = {c: np.zeros(2) for c in cols}
    adv_truth_fill = np.zeros(2)
    truth: dict[str, float] = {}
    for seed in seeds:
        m = simulate_market(seed, duration_s)
        p = m.truth["params"]
        truth = p
        path = np.asarray(m.truth["regime_path"])
        f = ob.passive_fills(m, bars=ob.volatility_bars(m), regimes=path)
        f = f[(f["regime"].to_numpy() >= 0) & np.isfinite(f["markout_bps"].to_numpy())]
        ta = m.meta["truth_arrivals"]
        coin_of = dict(zip(zip(ta["ts"].to_numpy(np.int64).tolist(), ta["side"].to_numpy().tolist()),
                           ta["informed"].to_numpy(bool).tolist()))
        ts, side = f["ts"].to_numpy(np.int64), f["side"].to_numpy()
        # our bid (side +1) is filled by a sell arrival (-1): the arrival's side is -side
        coin = np.array([coin_of[(t, -int(s_))] for t, s_ in zip(ts.tolist(), side.tolist())], bool)
        flag = f["informed"].to_numpy(bool)
        reg = f["regime"].to_numpy().astype(int)
        mk = f["markout_bps"].to_numpy(float)
        e = np.exp(-f["depth_bps"].to_numpy(float) / p["alpha_decay_bps"])
        sw = al.sweep_weights(ts, side)
        for c in cols:
            y = coin if c[0] == "coin" else flag
            w = sw if c[1] == "sweep" else np.ones(len(f))
            num[c] += np.bincount(reg, weights=w * y, minlength=K)
            den[c] += np.bincount(reg, weights=w * e, minlength=K)
            adv[c] += [np.sum(w[y] * mk[y]), np.sum(w[y])]
        arr_side = np.where(side < 0, "buy", "sell")
        tv = np.array([p[f"adverse_move_bps[{REGIMES[r]},{s_}]"] for r, s_ in zip(reg, arr_side)])
        adv_truth_fill += [tv[coin].sum(), coin.sum()]
    head = ["", "truth"] + [f"{a}, {b}" for a, b in cols]
    lines = [f"alpha estimands pooled over {len(seeds)} markets of {duration_s:.0f} s (seeds "
             f"{seeds[0]}..{seeds[-1]}): flag = generator's coin or observed threshold flag; "
             "weights = 1 per fill or 1/m per sweep (what the fit uses: \"flag, sweep\").", "",
             "| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r, name in enumerate(REGIMES):
        t = truth[f"alpha_touch[{name}]"]
        vals = [num[c][r] / den[c][r] for c in cols]
        lines.append(f"| alpha_touch[{name}] | {t:.3f} | "
                     + " | ".join(f"{v:.4f} ({v / t - 1:+.0%})" for v in vals) + " |")
    t = truth["adverse_move_bps"]
    vals = [adv[c][0] / adv[c][1] for c in cols]
    lines.append(f"| adverse_move_bps | {t:.2f} (per fill, this regime mix: "
                 f"{adv_truth_fill[0] / adv_truth_fill[1]:.2f}) | "
                 + " | ".join(f"{v:.2f} ({v / t - 1:+.0%})" for v in vals) + " |")
    return "\n".join(lines) + "\n"
