"""Summaries of the observations (``mmcal data inspect``, the reports): passive fills
by alpha depth bucket, bars per regime, arrivals per side and regime.

Units: depth in bps of the mid, time in seconds, sigma in bps/sqrt(s), rates in
events/s, ``kappa_mle`` in 1/bps. The observations themselves come from
:mod:`models.data.observations`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mm_runtime.vocabulary import DEPTH_BUCKET_LABELS, DEPTH_BUCKETS_BPS, REGIMES
from models.data.bars import label_regimes, regime_at


def depth_bucket(depth_bps: np.ndarray | Sequence[float]) -> np.ndarray:
    """Index of the alpha depth bucket ``[0,2), [2,5), [5,10), [10,inf)`` of each
    depth (bps). Negative depths are put in the first bucket (clipped at 0)."""
    d = np.maximum(np.asarray(depth_bps, dtype=float), 0.0)
    return (np.searchsorted(np.asarray(DEPTH_BUCKETS_BPS), d, side="right") - 1).astype(np.int8)


def fill_table(fills: pd.DataFrame, by_regime: bool = False) -> pd.DataFrame:
    """Summary of passive fills by alpha depth bucket (``[0,2), [2,5), [5,10),
    [10,inf)`` bps; :data:`DEPTH_BUCKETS_BPS`), optionally per regime.

    Columns: (``regime``, ``regime_name``,) ``bucket`` (label), ``lo_bps``,
    ``hi_bps``, ``fills``, ``informed`` (count), ``informed_share``,
    ``informed_share_se`` (binomial, sqrt(p(1-p)/n)), ``markout_mean_bps``.
    Every bucket appears (empty ones with ``fills`` 0 and NaN shares), for each
    regime present when ``by_regime``.
    """
    b = depth_bucket(fills["depth_bps"].to_numpy()) if len(fills) else np.zeros(0, np.int8)
    edges = list(DEPTH_BUCKETS_BPS) + [math.inf]
    groups = [None]
    reg = None
    if by_regime:
        reg = fills["regime"].to_numpy()
        groups = [int(g) for g in range(len(REGIMES))]
    inf = fills["informed"].to_numpy(dtype=bool) if len(fills) else np.zeros(0, bool)
    mk = fills["markout_bps"].to_numpy(dtype=float) if len(fills) else np.zeros(0)
    rows = []
    for g in groups:
        for i, lab in enumerate(DEPTH_BUCKET_LABELS):
            sel = b == i
            if g is not None:
                sel &= reg == g
            n = int(sel.sum())
            k = int(inf[sel].sum())
            share = k / n if n else math.nan
            row = {}
            if g is not None:
                row.update(regime=g, regime_name=REGIMES[g])
            row.update(bucket=lab, lo_bps=edges[i], hi_bps=edges[i + 1], fills=n, informed=k,
                       informed_share=share,
                       informed_share_se=math.sqrt(share * (1 - share) / n) if n else math.nan,
                       markout_mean_bps=float(mk[sel].mean()) if n else math.nan)
            rows.append(row)
    return pd.DataFrame(rows)


def regime_summary(bars: pd.DataFrame, regimes: Any = None) -> pd.DataFrame:
    """Per regime: ``bars``, ``occupancy`` (share of bars), ``duration_s``,
    ``sigma_bps_mean`` (sqrt of the mean bar variance ``iv`` per second,
    bps/sqrt(s): the regime's volatility as the bars' ``volatility_estimator``
    measures it; bars without an ``iv`` column use ``rv``), ``log_rv_mean``,
    ``log_rv_sd``. ``regimes`` as in :func:`label_regimes` (default: the
    placeholder labelling). All four regimes are listed, empty ones with 0 bars
    and NaN statistics."""
    reg = label_regimes(bars, regimes)
    rv = bars["iv" if "iv" in bars.columns else "rv"].to_numpy(dtype=float)
    dur = bars["duration_s"].to_numpy(dtype=float)
    lrv = bars["log_rv"].to_numpy(dtype=float)
    rows = []
    for g, name in enumerate(REGIMES):
        sel = reg == g
        n = int(sel.sum())
        d = float(dur[sel].sum())
        rows.append({"regime": g, "regime_name": name, "bars": n,
                     "occupancy": n / len(reg) if len(reg) else math.nan,
                     "duration_s": d,
                     "sigma_bps_mean": math.sqrt(rv[sel].sum() / d) * 1e4 if d > 0 else math.nan,
                     "log_rv_mean": float(lrv[sel].mean()) if n else math.nan,
                     "log_rv_sd": float(lrv[sel].std(ddof=1)) if n > 1 else math.nan})
    return pd.DataFrame(rows)


def arrival_summary(arr: pd.DataFrame, bars: pd.DataFrame | None = None,
                    regimes: Any = None, duration_s: float | None = None) -> pd.DataFrame:
    """Arrival statistics per side (and per regime when ``bars`` and ``regimes``
    are given).

    * ``rate_per_s`` = arrivals / exposure; exposure is ``duration_s`` (default
      ``arr.attrs['duration_s']``), or per regime the summed ``duration_s`` of
      its bars.
    * depth statistics use depth clipped at 0 (see :func:`arrivals`):
      ``mean_depth_bps``, and ``kappa_mle`` = 1 / mean clipped depth (1/bps): the
      maximum-likelihood decay of an exponential depth law.
    * ``negative_depth`` counts arrivals whose raw depth was < 0 (stale quotes).

    Columns: (``regime``, ``regime_name``,) ``side``, ``side_name`` (buy/sell),
    ``arrivals``, ``exposure_s``, ``rate_per_s``, ``mean_prints``, ``mean_size``,
    ``mean_depth_bps``, ``kappa_mle``, ``negative_depth``.
    """
    side = arr["side"].to_numpy()
    depth = arr["depth_bps"].to_numpy(dtype=float)
    dpos = np.maximum(depth, 0.0)
    if (bars is None) != (regimes is None):
        raise ValueError("give both bars and regimes, or neither")
    if bars is not None:
        reg_bar = label_regimes(bars, regimes)
        reg = regime_at(arr["ts"].to_numpy(), bars, reg_bar)
        dur = bars["duration_s"].to_numpy(dtype=float)
        groups = [(g, float(dur[reg_bar == g].sum())) for g in range(len(REGIMES))]
    else:
        reg = None
        T = duration_s if duration_s is not None else arr.attrs.get("duration_s")
        if T is None:
            raise ValueError("duration_s is needed (arrivals carry it in attrs['duration_s'])")
        groups = [(None, float(T))]
    rows = []
    for g, expo in groups:
        for s, name in ((1, "buy"), (-1, "sell")):
            sel = side == s
            if g is not None:
                sel &= reg == g
            n = int(sel.sum())
            md = float(dpos[sel].mean()) if n else math.nan
            row = {}
            if g is not None:
                row.update(regime=g, regime_name=REGIMES[g])
            row.update(side=s, side_name=name, arrivals=n, exposure_s=expo,
                       rate_per_s=n / expo if expo > 0 else math.nan,
                       mean_prints=float(arr["n_prints"].to_numpy()[sel].mean()) if n else math.nan,
                       mean_size=float(arr["size"].to_numpy()[sel].mean()) if n else math.nan,
                       mean_depth_bps=md,
                       kappa_mle=1.0 / md if n and md > 0 else math.nan,
                       negative_depth=int((depth[sel] < 0).sum()))
            rows.append(row)
    return pd.DataFrame(rows)
