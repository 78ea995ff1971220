r"""The historical calibrator: fast batch estimates from one market's history (issue #7).

``calibrate(market)`` computes, from the canonical tables and the observation rules
of :mod:`models.data.observations` (the *same* observations the Bayesian models fit,
so the two can be compared), one estimate per quantity with its standard error,
interval and the amount of data behind it:

* :func:`alpha_touch` -- the informed share of passive fills at the touch bucket;
* :func:`kappa` -- the depth decay of market-order arrivals per regime and side;
* :func:`hawkes` -- the bivariate exponential Hawkes process by the method of moments;
* :func:`toxic_hours` -- UTC hours whose adverse selection is materially worse;
* :func:`spread_floor` -- PnL after fees per depth bucket and the spread floor;
* :func:`cascade_oi_threshold` -- the open-interest drop that precedes large moves
  (only when the market has an ``open_interest`` table).

:func:`to_evidence` turns a :class:`HistoricalResult` into
:class:`mm_runtime.params.Evidence` for the learned-parameter registry. This is the
"historical calibrator" of the original system's notes (``historical_calibrator.rs``:
``calibrate_alpha_touch``, ``calibrate_kappa``, ``calibrate_hawkes`` "method of
moments from trade arrivals", ``calibrate_toxic_hours``, ``calibrate_spread_floor``,
``calibrate_cascade_threshold`` "from OI drops before bad fills"); the estimators,
their error bars and the evidence sizes below are this module's.

Units (DESIGN.md section 2): depth, markouts, PnL, fees in bps of the mid; time in
s; kappa in 1/bps; rates in events/s. Intervals are central ``ci_level`` intervals
(default 90 %, the level the benchmarks use for posteriors).

alpha_touch
-----------
Observations: :func:`models.data.observations.passive_fills` with the rows
:func:`models.alpha.observations` keeps (a regime, a finite markout). Estimate: the
informed share ``p = k/m`` of the fills in the touch bucket ``[0, 2)`` bps, pooled
and per regime. The fills of one sweep (same ts and side: one market order filling
several grid quotes) share their flag, so the standard error is cluster-robust
with the sweep as the cluster, ``V = C/(C-1) sum_c (k_c - p m_c)^2 / m^2`` (Cameron
& Miller 2015, eq. 11, for a mean), the effective number of independent fills is
``n_eff = p(1-p)/V``, and the interval is Wilson's (1927) with ``n_eff`` trials.
This is the registry's ``alpha_touch`` (the touch *bucket's* share). The Bayesian
model's ``alpha_touch[r]`` is alpha at depth 0, ``alpha(delta) = alpha_touch
exp(-delta/alpha_decay_bps)``: the bucket share is that times the fills' mean
``exp(-delta/alpha_decay_bps)`` (0.91-0.96 for the default grid's 0.5 and 1 bp
quotes and decays of 8-20 bp).

kappa
-----
Observations: :func:`models.kappa.observations` (one arrival per sweep, depth beyond
the mid just before it, clipped at 0). The Bayesian kappa model's likelihood
factorises into counts (which carry A) and depths, ``D ~ Exponential(kappa)`` per
regime and side; kappa enters only the depth factor ``n log kappa - kappa S``. Its
maximum is ``kappa = n/S`` (S = sum of depths, or of ``D - delta0`` above
``kappa_min_depth_bps`` = delta0, as in ``KappaConfig.min_depth_bps``), which is
what this estimator is: the same quantity, the same sufficient statistics, no
pooling. (A log-linear least-squares fit of the counts reaching each grid depth
targets the same kappa but weights the depths arbitrarily and has no exact error
bar; the MLE is efficient.) Exact interval: ``2 kappa S ~ chi2(2n)``, so
``[chi2_{q}(2n), chi2_{1-q}(2n)] / (2 S)``; standard error ``kappa/sqrt(n)``.
Depths of one Hawkes cluster are independent marks in the model, so ``n`` is the
honest count; on real data they may not be (check ``ppc_depths``).

hawkes (method of moments)
--------------------------
Model (as :mod:`models.hawkes`): ``lambda_s(t) = mu[r(t), s] + sum_j n[s, s_j] beta
exp(-beta (t - t_j))``, n[target, source]. With ``K = beta (I - n)`` and ``Sigma =
diag(Lambda)`` (the stationary rates ``Lambda = (I - n)^{-1} mu``), the kernel's
resolvent is ``psi(t) = beta n exp(-K t)`` and the covariance density of the counts
for ``u > 0`` is (Hawkes 1971; the matrix form e.g. Bacry, Mastromatteo & Muzy 2015,
section 3)

    c(u) = Cov(dN(t+u), dN(t)^T)/du^2 = exp(-K u) Q,   Q = beta n Sigma + beta^2 n X n^T,

``X`` the solution of the Lyapunov equation ``K X + X K^T = Sigma``. Integrating it
over windows of length tau (all matrices below commute with K):

    Cov(N[0,tau])                 = Sigma tau + g(K) Q + (g(K) Q)^T,  g(k) = tau/k - (1 - e^{-k tau})/k^2
    Cov(N[tau,2tau], N[0,tau]^T)  = l(K) Q,                           l(k) = (1 - e^{-k tau})^2 / k^2

(``f(K)`` of a 2x2 matrix with real eigenvalues by Newton's divided-difference form
``f(l2) I + f[l1, l2] (K - l2 I)``; a non-negative n has real eigenvalues). In one
dimension these are Da Fonseca & Zaatour's (2014, "Hawkes process: fast
calibration, application to trade clustering, and diffusive limit", J. Futures
Markets 34(6), Props. 3-4) mean, variance and lagged covariance of the counts,
``Var N_tau = Lambda [tau/(1-n)^2 + (1 - 1/(1-n)^2)(1 - e^{-kappa tau})/kappa]`` with
``kappa = beta (1 - n)``; they solve three such moments in closed form for one
window length and one lag. Here the estimator is the minimum-distance (GMM with
a diagonal weight) version over a geometric grid of window lengths, because the
clustering time scale differs by orders of magnitude between markets (the
Bayesian fits give beta ~ 320/s on AAPL and 0.17/s on Hyperliquid BTC) and one
(tau, lag) pair chosen in advance can miss it:

1. *Windows.* ``[0, T)`` is cut into pieces of constant regime (the regime path's
   bars) and at ``hawkes_groups`` equal time blocks (for the jackknife, below). For
   each tau of the grid every piece is tiled with whole windows of length tau
   (a partial last window is dropped); adjacent windows of one piece form the
   lagged pairs. Counts per window and side come from one pass over the sorted
   events (O(N) per tau, however small tau is).
2. *Regimes.* The baselines change with the regime; a count's residual is taken
   against its own regime's rate, ``e_w = N_w - Lambda_{r(w)} tau`` (``Lambda_r``
   = events / time in regime r), so the regime-to-regime rate variation is not
   mistaken for clustering. Within a regime the formulas above hold with
   ``Sigma = diag(Lambda_r)``; they are linear in Sigma, so the sum over windows of
   ``e e^T`` has expectation given by the same formulas with ``Sigma = sum_w
   diag(Lambda_{r(w)})`` (the transient excitation carried across a regime switch is
   neglected: ~1/(beta (1 - rho)) s per switch).
3. *Moments.* Seven curves per tau, normalised by ``tau sqrt(D_a D_b)`` (D = the
   Sigma above, so the diagonal ones are Fano factors): same-window
   buy-buy, sell-sell, buy-sell, and adjacent-window (later, earlier) buy-buy,
   sell-sell, buy-sell, sell-buy. The lagged cross terms are what tell
   n[buy,sell] from n[sell,buy]; the same-window ones are symmetric.
4. *Fit.* Weighted least squares of the seven curves over (n, beta), the entries of
   n in [0, 0.999] with rho(n) < 0.999 (a cross-excitation of exactly 0 is allowed;
   an entry on a bound has a jackknife SE of ~0 that means nothing: see ``notes``),
   weights 1/(jackknife variance of each point) floored at the Poisson variance
   ``1/(tau sqrt(D_a D_b))``; nine starts around the pooled fit below. The
   weighted SSR per degree of freedom (``chi2_dof``) measures how well one
   exponential kernel describes the variance-time curves (~1 when it does; real
   order flow with a multi-scale kernel gives several).
5. *Pooled flow.* The same on the buy+sell counts with the one-dimensional formula
   gives a branching ratio and a decay of the pooled flow (exactly the Hawkes
   process of the pooled events when n's column sums are equal; a starting point
   and a check otherwise).
6. *Baselines.* ``mu_r = (I - n) Lambda_r`` per regime, and their time-weighted
   mean over regimes and sides (the registry's per-side ``hawkes_mu``).
7. *Errors.* Delete-one-block jackknife over the ``hawkes_groups`` (20) time blocks
   (Kunsch 1989; Shao & Tu 1995, ch. 9): each fit is redone with one block's windows
   and events left out, ``SE^2 = (G-1)/G sum_g (theta_g - theta_bar)^2``; blocks of
   T/20 are long against the clusters (1/beta), so they are nearly independent.
   Intervals are normal on the natural scale (branching, baselines) or on the log
   scale (beta).

Window grid: ``tau_min = max(0.01/Lambda, 5 x clock)`` where Lambda is the pooled
rate and the clock is the 1st percentile of the gaps between distinct event
timestamps (Hyperliquid stamps trades per block, ~50-80 ms apart: below a few
blocks the counts are lumpy in a way no point-process kernel describes); ``tau_max``
the longest window that leaves >= ``hawkes_min_windows`` windows, at most T/10;
``hawkes_n_tau`` points, geometric. Both ends can be set.

What it means next to the Bayesian fit: on data simulated from the model the two
estimate the same parameters (the MLE is more efficient). On real order flow,
whose clustering spans time scales from milliseconds to minutes, a single
exponential kernel is misspecified and the two pick different compromises: the
likelihood is dominated by each event's intensity, i.e. by the finest time scale
with many events; the variance-time curves weight every window length on the
grid. ``benchmarks/historical_vs_bayes.py`` shows both.

toxic_hours
-----------
Per passive fill in the touch bucket, the adverse move ``AS = markout_bps +
depth_bps`` (the mid move against the quote over the markout horizon, from the
mid the quote was priced off: the markout is measured from the fill price, which
is ``depth`` better than that mid; exact up to a factor 1 +- depth 1e-4). Unit of
analysis: the sweep (its fills' mean), hour: the UTC hour of the fill. An hour with
at least ``toxic_min_sweeps`` sweeps is compared with all other such hours by
Welch's one-sided t test (H1: its mean AS is higher); the p-values are adjusted by
Holm's (1979) step-down method over the hours tested; an hour is **toxic** when
its adjusted p-value is below ``toxic_alpha`` (5 %) and its excess over the other
hours is at least ``toxic_min_excess_bps`` (0: significance alone). The
multiplier is :func:`mm_runtime.derived.toxic_hour_multiplier` of the toxic hours'
and the other hours' mean AS (floored at 0) and the fee; 1 when no hour is toxic.
No registry parameter takes it (the registry has none for toxic hours).

spread_floor
------------
PnL of a fill, marked to the mid at the markout horizon, after the maker fee:
``pnl = -markout_bps - fee_bps`` = spread captured (depth) - adverse move - fee.
Per alpha depth bucket: mean PnL with a sweep-clustered standard error and a
normal interval. **Floor bucket**: the first bucket (in depth order) with at
least ``spread_floor_min_sweeps`` sweeps and a positive mean; its lower edge is
``floor_bps`` (``significant``: its interval is above 0 too). Next to it the
derived floor :func:`mm_runtime.derived.spread_floor_bps` (fee + mean AS at the
touch + :func:`mm_runtime.derived.latency_slippage_bps` of the market's sigma and
``latency_s``). Registry evidence (``spread_floor_bps``, a Normal with known
observation variance, "one break-even depth per window"): the derived floor of each
``spread_floor_window_s`` window (default 15 min) with at least
``spread_floor_min_sweeps`` touch sweeps.

cascade_oi_threshold
--------------------
Samples: every open-interest snapshot k (time t_k). ``drop_k = 1 - OI_k / max{OI_j :
t_k - W < t_j <= t_k}`` (the fall from the recent peak, W = ``cascade_window_s``) and
``move_k = |log mid(t_k + H) - log mid(t_k)| 1e4`` bps, the absolute mid move over
the next H = ``cascade_horizon_s`` (a large move either way runs over one side of a
market maker's quotes; the mid is the prevailing one). Threshold regression
(Hansen 2000, "Sample splitting and threshold estimation", Econometrica 68(3)):
``move = a + b 1[drop >= c] + e``, c the value minimising the sum of squared
residuals over splits that leave at least ``cascade_min_group`` samples on each
side; reported as the midpoint between the two drops around the split. Interval:
Hansen's likelihood-ratio set ``{c : n_eff (SSR(c) - SSR(c_hat))/SSR(c_hat) <= xi}``,
``xi = -2 log(1 - sqrt(level))`` (his Theorem 2; 5.94 at 90 %), with ``n_eff`` the
number of non-overlapping ``max(W, H)`` windows (the samples overlap and are
autocorrelated; with all n the set would be too narrow). It assumes homoskedastic
errors, which moves after cascades are not: treat it as indicative. Significance:
the sup-F statistic against circular shifts of the move series relative to the
drops (``cascade_shifts`` shifts by at least 10 max(W, H) s; the shifts keep both
series' autocorrelation and break their alignment); ``p < cascade_alpha`` (5 %)
marks the threshold as identified. No open interest: ``None`` with a note.
Choice of W and H: W a few snapshot intervals (a cascade is a sharp drop; with a
long W every sample for W seconds after it still shows the drop, though the move
is over, which pulls the upper group's mean down and the split up), H long enough
to hold the move that follows. Over 20 three-hour synthetic markets (1 s
snapshots, 5 s moves): W = 5 s, H = 10 s gave an RMSE of 0.0012 around the true
0.015 and 20/20 intervals holding it; W = 10 s, H = 5 s an RMSE of 0.0037 (biased
up), 18/20.

Evidence sizes (:func:`to_evidence`)
------------------------------------
Each estimate enters the registry with the information it actually carries,
matched on its variance:

* ``alpha_touch``: bernoulli(p n_eff, n_eff), n_eff the cluster-robust effective
  count above (a Beta posterior then has the estimate's mean and variance).
* ``kappa``: exponential(n, S), the exact sufficient statistics of the pooled depths.
* ``hawkes_alpha`` (a Beta on the self-excitation, the mean of n's diagonal):
  bernoulli(x m, m) with ``m = x(1-x)/SE^2 - 1`` (a Beta(x m, (1-x) m) has mean x
  and variance ``x(1-x)/(m+1) = SE^2``): the jackknife SE, not the number of events.
* ``hawkes_beta`` (Gamma): exponential(k, k/beta), ``k = (beta/SE)^2`` (a Gamma of
  shape k, rate k/beta has mean beta and cv ``1/sqrt(k)`` = SE/beta).
* ``hawkes_mu`` (Gamma, per-side baseline): poisson(mu^2/SE^2, mu/SE^2) (pseudo
  events and pseudo seconds: the Gamma has mean mu and variance SE^2; the raw
  seconds would overstate the information, since the baseline is the rate times
  (1 - n) and inherits n's error and the clustering).
* ``spread_floor_bps``: values, one derived floor per window (above).
* ``cascade_oi_threshold`` (Beta): bernoulli(c m, m), m from the interval's half
  width as for ``hawkes_alpha``; only when the threshold is identified.
Every evidence names its source ``historical:<asset>:<what>``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy import linalg, optimize, stats

from mm_runtime import derived
from mm_runtime.params import Evidence
from models.data import observations as ob
from mm_runtime.vocabulary import DEPTH_BUCKET_LABELS, DEPTH_BUCKETS_BPS, NS, REGIMES, SIDES
from models.data.observations import ObservationConfig
from models.data.tables import DataError, Market

TOUCH_BUCKET = DEPTH_BUCKET_LABELS[0]
FILL_COLUMNS = ("ts", "side", "depth_bps", "markout_bps", "informed", "regime")


# =========================================================================== config & results
class HistoricalConfig(BaseModel):
    """Settings of :func:`calibrate` (module docstring for each rule)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    observation: ObservationConfig = Field(default_factory=ObservationConfig)
    ci_level: float = Field(0.90, gt=0.0, lt=1.0)
    fee_bps: float = Field(0.0, description="maker fee in bps per fill (negative = rebate); "
                                            "the runtime's QuoterConfig.fee_bps default")
    latency_s: float = Field(0.0, ge=0.0, description="quote round trip for the derived floor's "
                                                      "latency slippage (0: none)")
    slippage_z: float = Field(1.0, ge=0.0)
    kappa_min_depth_bps: float = Field(0.0, ge=0.0)
    hawkes_groups: int = Field(20, ge=5)
    hawkes_n_tau: int = Field(24, ge=6)
    hawkes_tau_min_s: float | None = Field(None, gt=0.0)
    hawkes_tau_max_s: float | None = Field(None, gt=0.0)
    hawkes_min_events: int = Field(200, ge=10)
    hawkes_min_windows: int = Field(100, ge=10)
    toxic_alpha: float = Field(0.05, gt=0.0, lt=1.0)
    toxic_min_sweeps: int = Field(30, ge=2)
    toxic_min_excess_bps: float = Field(0.0, ge=0.0)
    spread_floor_min_sweeps: int = Field(20, ge=2)
    spread_floor_window_s: float = Field(900.0, gt=0.0)
    cascade_window_s: float = Field(5.0, gt=0.0, description="drop from the peak of this trailing window")
    cascade_horizon_s: float = Field(10.0, gt=0.0, description="absolute mid move over this horizon")
    cascade_min_group: int = Field(20, ge=2)
    cascade_shifts: int = Field(199, ge=19)
    cascade_alpha: float = Field(0.05, gt=0.0, lt=1.0)
    seed: int = 0

    @field_validator("fee_bps")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"fee_bps must be finite, got {v}")
        return v


class Estimate(BaseModel):
    """One estimate: ``value``, standard error ``se``, central interval ``ci`` at the
    config's ``ci_level``, and ``n``: the observations behind it (effective where the
    field says so)."""

    model_config = ConfigDict(frozen=True)

    value: float
    se: float
    ci: tuple[float, float]
    n: float


class AlphaTouchResult(BaseModel):
    bucket: str = TOUCH_BUCKET
    pooled: Estimate
    per_regime: dict[str, Estimate | None]
    n_fills: int
    n_sweeps: int
    informed_threshold_bps: float
    markout_horizon_s: float
    note: str = ("informed share of the touch bucket's fills; n = effective fills "
                 "(sweep-clustered); Bayesian alpha_touch is alpha at depth 0")


class KappaResult(BaseModel):
    pooled: Estimate
    cells: dict[str, dict[str, Estimate | None]]
    n_arrivals: int
    total_depth_bps: float
    min_depth_bps: float
    negative_depth: int
    note: str = "exponential MLE n / sum(depth) (1/bps); n = arrivals; exact chi-square interval"


class HawkesResult(BaseModel):
    branching: dict[str, dict[str, Estimate]]
    decay: Estimate
    spectral_radius: Estimate
    self_excitation: Estimate
    baseline: dict[str, dict[str, Estimate | None]]
    baseline_mean: Estimate
    pooled_branching_ratio: Estimate
    pooled_decay: Estimate
    n_events: int
    duration_s: float
    groups: int
    taus_s: list[float]
    chi2_dof: float
    chi2_dof_pooled: float
    curves: dict[str, list[list[float]]]
    notes: list[str] = Field(default_factory=list)


class HourStat(BaseModel):
    hour: int
    n_fills: int
    n_sweeps: int
    adverse_bps: float
    se: float
    excess_bps: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    toxic: bool = False


class ToxicHoursResult(BaseModel):
    hours: list[HourStat]
    toxic: list[int]
    toxic_adverse_bps: float | None
    normal_adverse_bps: float | None
    multiplier: float | None
    fee_bps: float
    rule: str
    notes: list[str] = Field(default_factory=list)


class BucketPnL(BaseModel):
    bucket: str
    lo_bps: float
    hi_bps: float
    n_fills: int
    n_sweeps: int
    pnl: Estimate | None


class SpreadFloorResult(BaseModel):
    buckets: list[BucketPnL]
    floor_bucket: str | None
    floor_bps: float | None
    significant: bool
    fee_bps: float
    adverse_selection_bps: float | None
    latency_slippage_bps: float
    derived_floor_bps: float | None
    window_floors_bps: list[float]
    window_s: float
    notes: list[str] = Field(default_factory=list)


class CascadeResult(BaseModel):
    threshold: Estimate
    identified: bool
    p_value: float
    sup_f: float
    n_samples: int
    n_above: int
    mean_move_below_bps: float
    mean_move_above_bps: float
    window_s: float
    horizon_s: float
    notes: list[str] = Field(default_factory=list)


class HistoricalResult(BaseModel):
    """Everything :func:`calibrate` estimated; a component that could not be estimated
    is None and ``notes`` says why."""

    asset: str
    source: str
    duration_s: float
    config: dict[str, Any]
    alpha_touch: AlphaTouchResult | None = None
    kappa: KappaResult | None = None
    hawkes: HawkesResult | None = None
    toxic_hours: ToxicHoursResult | None = None
    spread_floor: SpreadFloorResult | None = None
    cascade: CascadeResult | None = None
    sigma_bps: float | None = None
    timings_s: dict[str, float] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


# =========================================================================== helpers
def _z(level: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 2.0))


def _normal_ci(value: float, se: float, level: float, lo: float = -math.inf,
               hi: float = math.inf) -> tuple[float, float]:
    z = _z(level)
    return (float(max(lo, value - z * se)), float(min(hi, value + z * se)))


def _wilson(p: float, n: float, level: float) -> tuple[float, float]:
    """Wilson (1927) score interval for a proportion p from n (effective) trials."""
    if n <= 0:
        return (0.0, 1.0)
    z = _z(level)
    d = 1.0 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (float(max(0.0, c - h)), float(min(1.0, c + h)))


def _require_columns(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{what}: expected a DataFrame, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(repr(c) for c in missing)}; "
                         f"expected {list(cols)}")


def _sweep_ids(ts: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Cluster id of each fill: fills with the same ts and side are one sweep."""
    key = np.stack([np.asarray(ts, np.int64), np.asarray(side, np.int64)], axis=1)
    if len(key) == 0:
        return np.zeros(0, np.int64)
    _, inv = np.unique(key, axis=0, return_inverse=True)
    return inv.ravel().astype(np.int64)


def _clustered_mean(x: np.ndarray, cl: np.ndarray) -> tuple[float, float, int]:
    """Mean of x and its cluster-robust standard error (Cameron & Miller 2015, eq. 11
    for an intercept-only regression with the small-sample factor C/(C-1)); returns
    (mean, se, number of clusters)."""
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    m = float(x.mean())
    _, cl = np.unique(cl, return_inverse=True)
    C = int(cl.max()) + 1
    s = np.bincount(cl, weights=x - m, minlength=C)
    if C < 2:
        return m, math.nan, C
    v = C / (C - 1) * float((s * s).sum()) / (n * n)
    return m, math.sqrt(v), C


def check_fills(fills: pd.DataFrame, what: str = "fills") -> pd.DataFrame:
    """The passive-fill rows the alpha model keeps (a regime, a finite markout);
    ValueError naming missing columns."""
    _require_columns(fills, FILL_COLUMNS, what)
    keep = (fills["regime"].to_numpy() >= 0) & np.isfinite(fills["markout_bps"].to_numpy(dtype=float))
    return fills[keep].reset_index(drop=True)


def _check_market(market: Market) -> None:
    if not isinstance(market, Market):
        raise ValueError(f"calibrate: expected a Market, got {type(market).__name__}")
    for name, cols in (("trades", ("ts", "price", "size", "side")), ("quotes", ("ts", "bid", "ask"))):
        df = getattr(market, name)
        if df is None or len(df) == 0:
            raise DataError(None, f"{name} table", f"market {market.asset!r} has no {name}")
        _require_columns(df, cols, f"market {market.asset!r} {name} table")
    if market.open_interest is not None:
        _require_columns(market.open_interest, ("ts", "oi"), f"market {market.asset!r} open_interest table")


# =========================================================================== alpha_touch
def _share(informed: np.ndarray, cl: np.ndarray, level: float) -> Estimate | None:
    m = len(informed)
    if m == 0:
        return None
    x = informed.astype(float)
    p, se, C = _clustered_mean(x, cl)
    if not (se > 0):  # all flags equal (or one sweep): the sweeps are the trials
        n_eff = float(C)
        se = math.sqrt(p * (1 - p) / n_eff)
    else:
        n_eff = min(float(m), p * (1 - p) / se**2) if 0 < p < 1 else float(C)
    return Estimate(value=p, se=float(se), ci=_wilson(p, n_eff, level), n=float(n_eff))


def alpha_touch(fills: pd.DataFrame, config: HistoricalConfig | None = None) -> AlphaTouchResult:
    """Informed share of the touch bucket's passive fills, pooled and per regime
    (module docstring). ``fills``: :func:`models.data.observations.passive_fills`
    rows (columns ts, side, depth_bps, markout_bps, informed, regime)."""
    cfg = config or HistoricalConfig()
    f = check_fills(fills)
    touch = f["depth_bps"].to_numpy(dtype=float) < DEPTH_BUCKETS_BPS[1]
    f = f[touch]
    if len(f) == 0:
        raise ValueError("alpha_touch: no passive fill in the touch bucket "
                         f"{TOUCH_BUCKET} bps (the depth grid has no quote there, or nothing traded through)")
    cl = _sweep_ids(f["ts"].to_numpy(), f["side"].to_numpy())
    inf = f["informed"].to_numpy(dtype=bool)
    reg = f["regime"].to_numpy()
    pooled = _share(inf, cl, cfg.ci_level)
    per = {rn: _share(inf[reg == r], cl[reg == r], cfg.ci_level) for r, rn in enumerate(REGIMES)}
    oc = cfg.observation
    return AlphaTouchResult(pooled=pooled, per_regime=per, n_fills=int(len(f)),
                            n_sweeps=int(len(np.unique(cl))),
                            informed_threshold_bps=float(fills.attrs.get("informed_threshold_bps",
                                                                         oc.informed_threshold_bps)),
                            markout_horizon_s=float(fills.attrs.get("markout_horizon_s", oc.markout_horizon_s)))


# =========================================================================== kappa
def _kappa_estimate(n: int, S: float, level: float) -> Estimate | None:
    if n == 0 or not (S > 0):
        return None
    k = n / S
    q = (1.0 - level) / 2.0
    lo, hi = stats.chi2.ppf([q, 1.0 - q], 2 * n) / (2.0 * S)
    return Estimate(value=float(k), se=float(k / math.sqrt(n)), ci=(float(lo), float(hi)), n=float(n))


def kappa(obs, config: HistoricalConfig | None = None) -> KappaResult:
    """Exponential MLE of kappa per regime x side and pooled (module docstring).
    ``obs``: :class:`models.kappa.KappaObs` of one asset."""
    cfg = config or HistoricalConfig()
    for attr in ("depth_bps", "arr_side", "arr_bar", "bar_regime"):
        if not hasattr(obs, attr):
            raise ValueError(f"kappa: expected a models.kappa.KappaObs, got {type(obs).__name__} "
                             f"without {attr!r}")
    if getattr(obs, "n_assets", 1) != 1:
        raise ValueError("kappa: one asset at a time (KappaObs.select(asset))")
    d0 = cfg.kappa_min_depth_bps
    D = np.asarray(obs.depth_bps, dtype=float)
    keep = D >= d0
    if not keep.any():
        raise ValueError(f"kappa: no arrival reaches depth >= {d0} bps")
    x = D[keep] - d0
    side = np.asarray(obs.arr_side)[keep].astype(int)
    reg = np.asarray(obs.bar_regime)[np.asarray(obs.arr_bar)[keep]].astype(int)
    cells: dict[str, dict[str, Estimate | None]] = {}
    for r, rn in enumerate(REGIMES):
        cells[rn] = {}
        for s, sn in enumerate(SIDES):
            sel = (reg == r) & (side == s)
            cells[rn][sn] = _kappa_estimate(int(sel.sum()), float(x[sel].sum()), cfg.ci_level)
    pooled = _kappa_estimate(int(len(x)), float(x.sum()), cfg.ci_level)
    if pooled is None:
        raise ValueError("kappa: every depth is 0 (nothing reached beyond the mid)")
    return KappaResult(pooled=pooled, cells=cells, n_arrivals=int(len(x)), total_depth_bps=float(x.sum()),
                       min_depth_bps=float(d0), negative_depth=int(getattr(obs, "meta", {}).get("negative_depth", 0)))


# =========================================================================== hawkes: moments
def _segments(edges: np.ndarray, regs: np.ndarray, T: float, G: int):
    """Pieces of [0, T) with one regime, cut at G equal time blocks:
    (start, end, regime, group)."""
    edges = np.asarray(edges, dtype=float)
    regs = np.asarray(regs, dtype=np.int64)
    change = np.concatenate(([True], regs[1:] != regs[:-1]))
    pts = np.unique(np.concatenate([edges[change], T * np.arange(1, G) / G, [0.0, T]]))
    pts = pts[(pts >= 0.0) & (pts <= T)]
    st, en = pts[:-1], pts[1:]
    keep = en > st
    st, en = st[keep], en[keep]
    bar = np.maximum(np.searchsorted(edges, st, side="right") - 1, 0)
    return st, en, regs[bar], np.minimum((st * G / T).astype(np.int64), G - 1)


class _TauStats:
    """Window sums for one window length, per (group, regime) cell (G*4 rows):
    ``W``, ``P`` window and adjacent-pair counts; ``A``, ``A1``, ``A0`` (rows, 2)
    event counts in all windows / windows with a predecessor / with a successor;
    ``Q`` (rows, 2, 2) sum of N_a N_b per window; ``L`` (rows, 2, 2) sum over pairs
    of N_a(later) N_b(earlier)."""

    __slots__ = ("W", "P", "A", "A1", "A0", "Q", "L")

    def __init__(self, t, side, seg, G: int, tau: float):
        st, en, reg, grp = seg
        R = 4 * G
        nw = np.floor((en - st) / tau * (1.0 + 1e-12)).astype(np.int64)
        cell_seg = grp * 4 + reg
        self.W = np.bincount(cell_seg, weights=nw, minlength=R)
        self.P = np.bincount(cell_seg, weights=np.maximum(nw - 1, 0), minlength=R)
        si = np.searchsorted(st, t, side="right") - 1
        w = np.floor((t - st[si]) / tau).astype(np.int64)
        ok = w < nw[si]
        si, w, sd = si[ok], w[ok], side[ok].astype(np.int64)
        cell = cell_seg[si]
        self.A = np.bincount(cell * 2 + sd, minlength=2 * R).reshape(R, 2).astype(float)
        m1 = w >= 1
        m0 = w <= nw[si] - 2
        self.A1 = np.bincount(cell[m1] * 2 + sd[m1], minlength=2 * R).reshape(R, 2).astype(float)
        self.A0 = np.bincount(cell[m0] * 2 + sd[m0], minlength=2 * R).reshape(R, 2).astype(float)
        off = np.concatenate(([0], np.cumsum(nw)[:-1]))
        key = off[si] + w  # non-decreasing (events sorted)
        self.Q = np.zeros((R, 2, 2))
        self.L = np.zeros((R, 2, 2))
        if len(key) == 0:
            return
        starts = np.concatenate(([0], np.flatnonzero(np.diff(key)) + 1))
        is_s = (sd == 1).astype(float)
        cs = np.add.reduceat(is_s, starts)
        c = np.stack([np.diff(np.append(starts, len(key))) - cs, cs], axis=1)  # (U, 2) buy, sell
        ukey, ucell = key[starts], cell[starts]
        has_next = w[starts] + 1 < nw[si[starts]]
        j = np.minimum(np.searchsorted(ukey, ukey + 1), len(ukey) - 1)
        nxt = has_next & (ukey[j] == ukey + 1)
        for a in range(2):
            for b in range(2):
                self.Q[:, a, b] = np.bincount(ucell, weights=c[:, a] * c[:, b], minlength=R)
                self.L[:, a, b] = np.bincount(ucell[nxt], weights=c[j[nxt], a] * c[nxt, b], minlength=R)


class _Moments:
    """Observed normalised moment curves for a subset of the time blocks."""

    def __init__(self, taus, stats_: list[_TauStats], C: np.ndarray, O: np.ndarray, mask: np.ndarray):
        G = len(mask)
        cm = np.repeat(mask, 4)  # rows are group*4 + regime
        Cs = C.reshape(G, 4, 2)[mask].sum(0)
        Os = O.reshape(G, 4)[mask].sum(0)
        lam = np.where(Os[:, None] > 0, Cs / np.where(Os > 0, Os, 1.0)[:, None], 0.0)  # (4, 2)
        self.lam, self.occupancy = lam, Os
        nt = len(taus)
        self.S, self.Lg = np.zeros((nt, 2, 2)), np.zeros((nt, 2, 2))
        self.D, self.Dp = np.zeros((nt, 2)), np.zeros((nt, 2))
        for i, (tau, s) in enumerate(zip(taus, stats_)):
            W = s.W.reshape(G, 4)[mask].sum(0)
            P = s.P.reshape(G, 4)[mask].sum(0)
            A = s.A[cm].reshape(-1, 4, 2).sum(0)
            A1 = s.A1[cm].reshape(-1, 4, 2).sum(0)
            A0 = s.A0[cm].reshape(-1, 4, 2).sum(0)
            Q = s.Q[cm].reshape(-1, 4, 2, 2).sum(0)
            L = s.L[cm].reshape(-1, 4, 2, 2).sum(0)
            m = lam * tau  # (4, 2)
            self.S[i] = (Q - m[:, None, :] * A[:, :, None] - m[:, :, None] * A[:, None, :]
                         + W[:, None, None] * m[:, :, None] * m[:, None, :]).sum(0)
            self.Lg[i] = (L - m[:, None, :] * A1[:, :, None] - m[:, :, None] * A0[:, None, :]
                          + P[:, None, None] * m[:, :, None] * m[:, None, :]).sum(0)
            self.D[i] = (W[:, None] * lam).sum(0)
            self.Dp[i] = (P[:, None] * lam).sum(0)
        self.taus = np.asarray(taus, dtype=float)

    def curves(self) -> np.ndarray:
        """(7, n_tau): same-window bb, ss, bs; lagged (later, earlier) bb, ss, bs, sb."""
        t = self.taus
        nD = t[:, None, None] * np.sqrt(self.D[:, :, None] * self.D[:, None, :])
        nP = t[:, None, None] * np.sqrt(self.Dp[:, :, None] * self.Dp[:, None, :])
        S, L = self.S / nD, self.Lg / nP
        return np.stack([S[:, 0, 0], S[:, 1, 1], S[:, 0, 1], L[:, 0, 0], L[:, 1, 1], L[:, 0, 1], L[:, 1, 0]])

    def pooled(self) -> np.ndarray:
        """Fano factor of the pooled (buy + sell) counts per tau."""
        return self.S.sum(axis=(1, 2)) / (self.taus * self.D.sum(1))

    def poisson_var(self) -> np.ndarray:
        """(8, n_tau) Poisson-level variance floor of each curve point: 1/(expected
        events in the windows) = 1/(tau sqrt(D_a D_b)); the last row is the pooled curve."""
        t = self.taus
        d = self.D
        dp = self.Dp
        rows = [t * d[:, 0], t * d[:, 1], t * np.sqrt(d[:, 0] * d[:, 1]),
                t * dp[:, 0], t * dp[:, 1], t * np.sqrt(dp[:, 0] * dp[:, 1]), t * np.sqrt(dp[:, 0] * dp[:, 1]),
                t * d.sum(1)]
        return 1.0 / np.maximum(np.stack(rows), 1e-300)


def _g(k: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """g(k) = tau/k - (1 - e^{-k tau})/k^2, stable for small k tau."""
    x = k * tau
    small = np.abs(x) < 1e-4
    xs = np.where(small, 1.0, x)
    big = (xs + np.expm1(-xs)) / np.where(small, 1.0, k) ** 2
    ser = tau * tau * (0.5 - x / 6.0 + x * x / 24.0)
    return np.where(small, ser, big)


def _l(k: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """l(k) = (1 - e^{-k tau})^2 / k^2."""
    x = k * tau
    small = np.abs(x) < 1e-6
    kk = np.where(small, 1.0, k)
    return np.where(small, tau * tau * (1.0 - x), np.expm1(-x) ** 2 / kk**2)


def _matfun(K: np.ndarray, f, tau: np.ndarray) -> np.ndarray:
    """f(K) (n_tau, 2, 2) for a 2x2 K with real eigenvalues, by the divided-difference
    (Newton) form ``f(l2) I + f[l1, l2] (K - l2 I)`` (exact for 2x2 by Cayley-Hamilton)."""
    tr, det = K[0, 0] + K[1, 1], K[0, 0] * K[1, 1] - K[0, 1] * K[1, 0]
    q = math.sqrt(max(tr * tr / 4.0 - det, 0.0))
    l1, l2 = tr / 2.0 + q, tr / 2.0 - q
    f2 = f(np.full_like(tau, l2), tau)
    if q > 1e-6 * max(abs(tr), 1e-300):
        dd = (f(np.full_like(tau, l1), tau) - f2) / (l1 - l2)
    else:
        lm = tr / 2.0
        h = 1e-5 * max(abs(lm), 1e-12)
        dd = (f(np.full_like(tau, lm + h), tau) - f(np.full_like(tau, lm - h), tau)) / (2 * h)
    I = np.eye(2)
    return f2[:, None, None] * I + dd[:, None, None] * (K - l2 * I)


def _predict(n: np.ndarray, beta: float, m: _Moments) -> np.ndarray:
    """Model curves (7, n_tau) for branching n and decay beta (module docstring)."""
    K = beta * (np.eye(2) - n)
    Qb = []
    for e in np.eye(2):
        X = linalg.solve_continuous_lyapunov(K, np.diag(e))
        Qb.append(beta * n @ np.diag(e) + beta * beta * n @ X @ n.T)
    Qb = np.stack(Qb)  # (2, 2, 2): Q for Sigma = diag(e_s)
    t = m.taus
    QD = np.einsum("ts,sab->tab", m.D, Qb)
    QP = np.einsum("ts,sab->tab", m.Dp, Qb)
    G = _matfun(K, _g, t) @ QD
    cov = G + np.swapaxes(G, 1, 2)
    cov[:, 0, 0] += t * m.D[:, 0]
    cov[:, 1, 1] += t * m.D[:, 1]
    lag = _matfun(K, _l, t) @ QP
    nD = t[:, None, None] * np.sqrt(m.D[:, :, None] * m.D[:, None, :])
    nP = t[:, None, None] * np.sqrt(m.Dp[:, :, None] * m.Dp[:, None, :])
    S, L = cov / nD, lag / nP
    return np.stack([S[:, 0, 0], S[:, 1, 1], S[:, 0, 1], L[:, 0, 0], L[:, 1, 1], L[:, 0, 1], L[:, 1, 0]])


def _fano1(tau: np.ndarray, n: float, kap: float) -> np.ndarray:
    """One-dimensional Fano factor (Da Fonseca & Zaatour 2014):
    a - (a - 1)(1 - e^{-kappa tau})/(kappa tau), a = 1/(1-n)^2."""
    a = 1.0 / (1.0 - n) ** 2
    x = kap * tau
    return a - (a - 1.0) * np.where(x < 1e-8, 1.0 - x / 2.0, -np.expm1(-x) / np.maximum(x, 1e-300))


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


_N_MAX = 0.999
_LOG_BETA = (math.log(1e-4), math.log(1e5))


def _fit_pooled(m: _Moments, var: np.ndarray, start=None):
    """Weighted least squares of the pooled Fano curve over (logit n, log beta), bounded
    (n in [1e-6, 0.999], beta in [1e-4, 1e5] /s)."""
    y = m.pooled()
    sd = np.sqrt(var)

    def res(p):
        n = float(_sig(p[0]))
        return (y - _fano1(m.taus, n, math.exp(p[1]) * (1 - n))) / sd

    lo = np.array([math.log(1e-6), _LOG_BETA[0]])
    hi = np.array([math.log(_N_MAX / (1 - _N_MAX)), _LOG_BETA[1]])
    t = m.taus
    starts = [start] if start is not None else [
        [math.log(n0 / (1 - n0)), math.log(b0)] for n0 in (0.1, 0.3, 0.6, 0.85)
        for b0 in np.geomspace(0.3 / t[-1], 3.0 / t[0], 9)]
    best = None
    for s0 in starts:
        r = optimize.least_squares(res, np.clip(s0, lo + 1e-9, hi - 1e-9), bounds=(lo, hi),
                                   method="trf", max_nfev=400)
        if best is None or r.cost < best.cost:
            best = r
    return float(_sig(best.x[0])), float(math.exp(best.x[1])), best


def _fit_matrix(m: _Moments, var: np.ndarray, starts):
    """Weighted least squares of the seven curves over p = (n00, n01, n10, n11, log beta),
    the entries of n bounded to [0, 0.999] (so a zero cross-excitation is reachable)
    and rho(n) < 0.999 (a point outside gets a large residual; it is never the optimum)."""
    y = m.curves()
    sd = np.sqrt(var)
    bad = np.full(y.size, 1e6)

    def res(p):
        n = p[:4].reshape(2, 2)
        if max(abs(np.linalg.eigvals(n))) >= _N_MAX:
            return bad
        r = ((y - _predict(n, math.exp(p[4]), m)) / sd).ravel()
        return r if np.all(np.isfinite(r)) else bad

    lo = np.array([0, 0, 0, 0, _LOG_BETA[0]])
    hi = np.array([_N_MAX] * 4 + [_LOG_BETA[1]])
    best = None
    for s0 in starts:
        try:
            r = optimize.least_squares(res, np.clip(s0, lo + 1e-9, hi - 1e-9), bounds=(lo, hi),
                                       method="trf", max_nfev=400)
        except (ValueError, np.linalg.LinAlgError, linalg.LinAlgError):
            continue
        if np.isfinite(r.cost) and (best is None or r.cost < best.cost):
            best = r
    if best is None or best.cost >= 0.5 * bad.size * 1e12:
        raise ValueError("hawkes: the moment fit failed from every start")
    return best.x[:4].reshape(2, 2).copy(), float(math.exp(best.x[4])), best


def _jk_se(vals: np.ndarray) -> np.ndarray:
    G = vals.shape[0]
    return np.sqrt((G - 1) / G * ((vals - vals.mean(0)) ** 2).sum(0))


def _tau_grid(t: np.ndarray, seg, T: float, cfg: HistoricalConfig) -> np.ndarray:
    st, en = seg[0], seg[1]
    lam = len(t) / T
    ut = np.unique(t)
    gaps = np.diff(ut)
    clock = float(np.quantile(gaps, 0.01)) if len(gaps) else 0.0
    lo = cfg.hawkes_tau_min_s or max(0.01 / lam, 5.0 * clock)
    if cfg.hawkes_tau_max_s is not None:
        hi = cfg.hawkes_tau_max_s
    else:
        cand = np.geomspace(lo, max(T / 10.0, lo * 1.01), 400)
        nw = np.array([np.floor((en - st) / x).sum() for x in cand])
        ok = cand[nw >= cfg.hawkes_min_windows]
        if len(ok) == 0:
            raise ValueError(f"hawkes: fewer than {cfg.hawkes_min_windows} windows even at tau = {lo:.3g} s "
                             "(too short a market, or regimes switching every bar)")
        hi = float(ok.max())
    if not hi > lo * 1.5:
        raise ValueError(f"hawkes: window range [{lo:.3g}, {hi:.3g}] s is too narrow for a fit")
    return np.geomspace(lo, hi, cfg.hawkes_n_tau)


def _est(value: float, se: float, level: float, n: float, *, log: bool = False,
         lo: float = -math.inf, hi: float = math.inf) -> Estimate:
    if log and value > 0 and math.isfinite(se):
        z = _z(level)
        s = se / value
        # a huge relative se (a decay the windows cannot pin down) must give (≈0, inf),
        # not an OverflowError: exponents above ~709 overflow a double
        ci = (value * math.exp(-min(z * s, 700.0)), value * math.exp(z * s) if z * s < 700.0 else math.inf)
    else:
        ci = _normal_ci(value, se, level, lo, hi)
    return Estimate(value=float(value), se=float(se), ci=(float(ci[0]), float(ci[1])), n=float(n))


def hawkes(obs, config: HistoricalConfig | None = None) -> HawkesResult:
    """Method-of-moments fit of the bivariate exponential Hawkes process (module
    docstring). ``obs``: :class:`models.hawkes.HawkesObs` of one asset (times in s,
    sides 0 buy / 1 sell, the regime path as bar edges and regimes)."""
    cfg = config or HistoricalConfig()
    for attr in ("t", "side", "bar_edges", "bar_regime", "duration_s"):
        if not hasattr(obs, attr):
            raise ValueError(f"hawkes: expected a models.hawkes.HawkesObs, got {type(obs).__name__} "
                             f"without {attr!r}")
    if len(obs.duration_s) != 1:
        raise ValueError("hawkes: one asset at a time (HawkesObs.select(asset))")
    t = np.asarray(obs.t, dtype=float)
    side = np.asarray(obs.side, dtype=np.int64)
    T = float(obs.duration_s[0])
    N = len(t)
    if N < cfg.hawkes_min_events:
        raise ValueError(f"hawkes: {N} arrivals, fewer than hawkes_min_events = {cfg.hawkes_min_events}")
    if np.bincount(side, minlength=2).min() == 0:
        raise ValueError("hawkes: arrivals of one side only; the bivariate fit needs both")
    G = cfg.hawkes_groups
    seg = _segments(np.asarray(obs.bar_edges[0]), np.asarray(obs.bar_regime[0]), T, G)
    taus = _tau_grid(t, seg, T, cfg)
    st, en, reg, grp = seg
    si = np.clip(np.searchsorted(st, t, side="right") - 1, 0, len(st) - 1)
    cell = grp[si] * 4 + reg[si]
    C = np.bincount(cell * 2 + side, minlength=8 * G).astype(float)
    O = np.bincount(grp * 4 + reg, weights=en - st, minlength=4 * G)
    tstats = [_TauStats(t, side, seg, G, tau) for tau in taus]
    allg = np.ones(G, dtype=bool)
    full = _Moments(taus, tstats, C, O, allg)
    jk = [_Moments(taus, tstats, C, O, np.arange(G) != g) for g in range(G)]

    # weights: jackknife variance of each curve point, floored at the Poisson variance
    floor = full.poisson_var()
    v7 = np.maximum(_jk_se(np.stack([m.curves() for m in jk])) ** 2, floor[:7])
    v1 = np.maximum(_jk_se(np.stack([m.pooled() for m in jk])) ** 2, floor[7])

    n1, b1, r1 = _fit_pooled(full, v1)
    pooled_jk = np.array([_fit_pooled(m, v1, start=r1.x)[:2] for m in jk])
    starts = []
    for frac in (0.75, 0.5, 0.95):
        nn = np.array([[frac, 1 - frac], [1 - frac, frac]]) * min(max(n1, 0.02), 0.95)
        for bscale in (1.0, 0.3, 3.0):
            starts.append(np.append(nn.ravel(), math.log(b1 * bscale)))
    n_hat, b_hat, r2 = _fit_matrix(full, v7, starts)
    fits = [_fit_matrix(m, v7, [r2.x]) for m in jk]

    def derived_of(n, beta, m: _Moments):
        mu = m.lam @ (np.eye(2) - n).T  # (4, 2): (I - n) Lambda_r
        occ = m.occupancy
        mu_mean = float((occ[:, None] * mu).sum() / (2.0 * occ.sum()))
        rho = float(max(abs(np.linalg.eigvals(n))))
        return np.concatenate([n.ravel(), [beta, rho, 0.5 * (n[0, 0] + n[1, 1]), mu_mean], mu.ravel()])

    th = derived_of(n_hat, b_hat, full)
    th_jk = np.stack([derived_of(n, b, m) for (n, b, _), m in zip(fits, jk)])
    se = _jk_se(th_jk)
    lvl = cfg.ci_level
    branching = {tn: {sn: _est(th[2 * i + j], se[2 * i + j], lvl, N, lo=0.0, hi=1.0)
                      for j, sn in enumerate(SIDES)} for i, tn in enumerate(SIDES)}
    occ = full.occupancy
    baseline: dict[str, dict[str, Estimate | None]] = {}
    for r, rn in enumerate(REGIMES):
        baseline[rn] = {}
        for s, sn in enumerate(SIDES):
            k = 8 + 2 * r + s
            baseline[rn][sn] = (_est(th[k], se[k], lvl, float(C.reshape(G, 4, 2)[:, r, s].sum()), lo=0.0)
                                if occ[r] > 0 else None)
    chi2 = 2.0 * r2.cost / max(r2.fun.size - 5, 1)
    chi2p = 2.0 * r1.cost / max(r1.fun.size - 2, 1)
    se_p = _jk_se(pooled_jk)
    notes = []
    on_bound = [f"n[{SIDES[i]},{SIDES[j]}]" for i in range(2) for j in range(2) if n_hat[i, j] < 1e-6]
    if on_bound:
        notes.append(f"{', '.join(on_bound)} at the bound 0: the jackknife SE there is not a standard error")
    if chi2 > 3.0:
        notes.append(f"one exponential kernel fits the variance-time curves poorly (chi2/dof {chi2:.1f}): "
                     "the flow clusters on several time scales; the estimates are a compromise over "
                     f"windows {taus[0]:.3g}-{taus[-1]:.3g} s")
    fitted = _predict(n_hat, b_hat, full)
    return HawkesResult(
        branching=branching,
        decay=_est(th[4], se[4], lvl, N, log=True),
        spectral_radius=_est(th[5], se[5], lvl, N, lo=0.0, hi=1.0),
        self_excitation=_est(th[6], se[6], lvl, N, lo=0.0, hi=1.0),
        baseline=baseline,
        baseline_mean=_est(th[7], se[7], lvl, N, lo=0.0),
        pooled_branching_ratio=_est(n1, float(se_p[0]), lvl, N, lo=0.0, hi=1.0),
        pooled_decay=_est(b1, float(se_p[1]), lvl, N, log=True),
        n_events=int(N), duration_s=T, groups=G, taus_s=[float(x) for x in taus],
        chi2_dof=float(chi2), chi2_dof_pooled=float(chi2p),
        curves={"observed": full.curves().tolist(), "fitted": fitted.tolist(),
                "sd": np.sqrt(v7).tolist(), "pooled_observed": [full.pooled().tolist()],
                "pooled_fitted": [_fano1(taus, n1, b1 * (1 - n1)).tolist()]},
        notes=notes)


# =========================================================================== toxic hours
def _adverse_bps(f: pd.DataFrame) -> np.ndarray:
    """Adverse mid move against the quote over the markout horizon (bps):
    markout (from the fill price) + depth (module docstring)."""
    return f["markout_bps"].to_numpy(dtype=float) + f["depth_bps"].to_numpy(dtype=float)


def _per_sweep(f: pd.DataFrame, x: np.ndarray) -> pd.DataFrame:
    """One row per sweep: its ts, the mean of x over its fills, and its fill count."""
    cl = _sweep_ids(f["ts"].to_numpy(), f["side"].to_numpy())
    C = int(cl.max()) + 1 if len(cl) else 0
    n = np.bincount(cl, minlength=C)
    ts = np.zeros(C, np.int64)
    ts[cl] = f["ts"].to_numpy(np.int64)
    return pd.DataFrame({"ts": ts, "x": np.bincount(cl, weights=x, minlength=C) / np.maximum(n, 1),
                         "n_fills": n})


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values."""
    m = len(p)
    order = np.argsort(p)
    adj = np.empty(m)
    run = 0.0
    for k, i in enumerate(order):
        run = max(run, min(1.0, (m - k) * p[i]))
        adj[i] = run
    return adj


def toxic_hours(fills: pd.DataFrame, config: HistoricalConfig | None = None) -> ToxicHoursResult:
    """UTC hours with materially worse adverse selection at the touch (module
    docstring: Welch one-sided tests per hour against the other hours, Holm-adjusted).
    ``fills``: passive fills (columns ts, side, depth_bps, markout_bps, informed, regime)."""
    cfg = config or HistoricalConfig()
    f = check_fills(fills)
    f = f[f["depth_bps"].to_numpy(dtype=float) < DEPTH_BUCKETS_BPS[1]]
    if len(f) == 0:
        raise ValueError(f"toxic_hours: no passive fill in the touch bucket {TOUCH_BUCKET} bps")
    sw = _per_sweep(f, _adverse_bps(f))
    hour = ((sw["ts"].to_numpy() // (3600 * NS)) % 24).astype(int)
    x = sw["x"].to_numpy()
    nf = sw["n_fills"].to_numpy()
    rows: list[HourStat] = []
    eligible = []
    for h in np.unique(hour):
        sel = hour == h
        k = int(sel.sum())
        se = float(x[sel].std(ddof=1) / math.sqrt(k)) if k > 1 else math.nan
        rows.append(HourStat(hour=int(h), n_fills=int(nf[sel].sum()), n_sweeps=k,
                             adverse_bps=float(x[sel].mean()), se=se))
        if k >= cfg.toxic_min_sweeps:
            eligible.append(int(h))
    rule = (f"Welch one-sided t test of each hour with >= {cfg.toxic_min_sweeps} touch sweeps against the "
            f"other such hours, Holm-adjusted p < {cfg.toxic_alpha:g} and excess >= "
            f"{cfg.toxic_min_excess_bps:g} bp")
    notes = []
    toxic: list[int] = []
    if len(eligible) < 2:
        notes.append(f"{len(eligible)} hour(s) with >= {cfg.toxic_min_sweeps} touch sweeps: nothing to compare")
    else:
        el = np.isin(hour, eligible)
        pv = []
        for h in eligible:
            a, b = x[hour == h], x[el & (hour != h)]
            res = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
            pv.append(float(res.pvalue) if np.isfinite(res.pvalue) else 1.0)
        adj = _holm(np.asarray(pv))
        by_hour = {r.hour: r for r in rows}
        for h, p, pa in zip(eligible, pv, adj):
            r = by_hour[h]
            exc = float(r.adverse_bps - x[el & (hour != h)].mean())
            is_toxic = bool(pa < cfg.toxic_alpha and exc >= cfg.toxic_min_excess_bps)
            by_hour[h] = r.model_copy(update={"excess_bps": exc, "p_value": p, "p_adjusted": float(pa),
                                              "toxic": is_toxic})
            if is_toxic:
                toxic.append(h)
        rows = [by_hour[r.hour] for r in rows]
    tox_as = norm_as = mult = None
    if len(eligible) >= 2:
        el = np.isin(hour, eligible)
        tsel = np.isin(hour, toxic)
        norm_as = float(x[el & ~tsel].mean()) if (el & ~tsel).any() else None
        tox_as = float(x[tsel].mean()) if tsel.any() else None
        if norm_as is not None:
            if tox_as is None:
                mult = 1.0
            else:
                try:
                    mult = derived.toxic_hour_multiplier(max(tox_as, 0.0), max(norm_as, 0.0), cfg.fee_bps)
                except ValueError as e:
                    notes.append(f"no multiplier: {e}")
    return ToxicHoursResult(hours=rows, toxic=sorted(toxic), toxic_adverse_bps=tox_as,
                            normal_adverse_bps=norm_as, multiplier=mult, fee_bps=cfg.fee_bps, rule=rule,
                            notes=notes)


# =========================================================================== spread floor
def spread_floor(fills: pd.DataFrame, config: HistoricalConfig | None = None,
                 sigma_bps: float | None = None) -> SpreadFloorResult:
    """Mean PnL after fees per depth bucket, the first profitable bucket, and the
    derived floor fee + adverse selection + latency slippage (module docstring).
    ``sigma_bps``: the market's volatility (bps/sqrt(s)) for the slippage term
    (needed only when ``latency_s`` > 0)."""
    cfg = config or HistoricalConfig()
    f = check_fills(fills)
    if len(f) == 0:
        raise ValueError("spread_floor: no passive fill")
    fee = cfg.fee_bps
    pnl = -f["markout_bps"].to_numpy(dtype=float) - fee
    cl = _sweep_ids(f["ts"].to_numpy(), f["side"].to_numpy())
    b = ob.depth_bucket(f["depth_bps"].to_numpy())
    edges = list(DEPTH_BUCKETS_BPS) + [math.inf]
    buckets = []
    floor_bucket = floor_bps = None
    significant = False
    for i, lab in enumerate(DEPTH_BUCKET_LABELS):
        sel = b == i
        m, se, C = _clustered_mean(pnl[sel], cl[sel])
        est = None
        if sel.any() and math.isfinite(se):
            est = Estimate(value=m, se=se, ci=_normal_ci(m, se, cfg.ci_level), n=float(C))
        buckets.append(BucketPnL(bucket=lab, lo_bps=edges[i], hi_bps=edges[i + 1], n_fills=int(sel.sum()),
                                 n_sweeps=int(C), pnl=est))
        if floor_bucket is None and est is not None and C >= cfg.spread_floor_min_sweeps and m > 0:
            floor_bucket, floor_bps, significant = lab, float(edges[i]), bool(est.ci[0] > 0)
    notes = []
    if floor_bucket is None:
        notes.append(f"no bucket with >= {cfg.spread_floor_min_sweeps} sweeps has a positive mean PnL "
                     f"after a {fee:g} bp fee")
    slip = 0.0
    if cfg.latency_s > 0:
        if sigma_bps is None or not math.isfinite(sigma_bps):
            raise ValueError("spread_floor: latency_s > 0 needs sigma_bps")
        slip = derived.latency_slippage_bps(sigma_bps, cfg.latency_s, cfg.slippage_z)
    touch = b == 0
    as_mean = derived_floor = None
    windows: list[float] = []
    if touch.any():
        ft = f[touch]
        sw = _per_sweep(ft, _adverse_bps(ft))
        as_mean = float(sw["x"].mean())
        derived_floor = derived.spread_floor_bps(fee, max(as_mean, 0.0), slip)
        win = (sw["ts"].to_numpy() - int(f["ts"].min())) // int(round(cfg.spread_floor_window_s * NS))
        for w in np.unique(win):
            xs = sw["x"].to_numpy()[win == w]
            if len(xs) >= cfg.spread_floor_min_sweeps:
                windows.append(derived.spread_floor_bps(fee, max(float(xs.mean()), 0.0), slip))
    else:
        notes.append("no touch fill: no adverse selection, no derived floor")
    return SpreadFloorResult(buckets=buckets, floor_bucket=floor_bucket, floor_bps=floor_bps,
                             significant=significant, fee_bps=fee, adverse_selection_bps=as_mean,
                             latency_slippage_bps=float(slip), derived_floor_bps=derived_floor,
                             window_floors_bps=windows, window_s=cfg.spread_floor_window_s, notes=notes)


# =========================================================================== cascade threshold
def _split_search(d_sorted: np.ndarray, y_sorted: np.ndarray, lo_ok: np.ndarray):
    """SSR of the two-mean fit for every split j (lower group = first j samples) and
    the best admissible split (``lo_ok``: boolean per j)."""
    n = len(y_sorted)
    cs, cs2 = np.cumsum(y_sorted), np.cumsum(y_sorted**2)
    j = np.arange(1, n)
    s1, q1 = cs[:-1], cs2[:-1]
    s2, q2 = cs[-1] - s1, cs2[-1] - q1
    ssr = (q1 - s1**2 / j) + (q2 - s2**2 / (n - j))
    ssr = np.where(lo_ok, ssr, np.inf)
    return ssr, int(np.argmin(ssr))


def cascade_oi_threshold(market: Market, config: HistoricalConfig | None = None) -> CascadeResult | None:
    """The open-interest drop above which large mid moves follow: Hansen's (2000)
    threshold regression of the next ``cascade_horizon_s`` absolute move on the drop
    from the ``cascade_window_s`` peak (module docstring). None when the market has
    no open interest."""
    cfg = config or HistoricalConfig()
    oi = market.open_interest
    if oi is None:
        return None
    _require_columns(oi, ("ts", "oi"), "open_interest")
    if len(oi) < 2 * cfg.cascade_min_group:
        raise ValueError(f"cascade_oi_threshold: {len(oi)} open-interest snapshots, fewer than "
                         f"2 x cascade_min_group = {2 * cfg.cascade_min_group}")
    ts = oi["ts"].to_numpy(np.int64)
    v = oi["oi"].to_numpy(dtype=float)
    W, H = cfg.cascade_window_s, cfg.cascade_horizon_s
    peak = pd.Series(v, index=pd.to_datetime(ts)).rolling(pd.Timedelta(seconds=W)).max().to_numpy()
    drop = np.where(peak > 0, 1.0 - v / np.where(peak > 0, peak, 1.0), 0.0)
    qts = market.quotes["ts"].to_numpy(np.int64)
    mid = 0.5 * (market.quotes["bid"].to_numpy(dtype=float) + market.quotes["ask"].to_numpy(dtype=float))
    h_ns = int(round(H * NS))
    i0 = np.searchsorted(qts, ts, side="right") - 1
    i1 = np.searchsorted(qts, ts + h_ns, side="right") - 1
    ok = (i0 >= 0) & (ts + h_ns <= market.end_ns)
    move = np.abs(np.log(mid[i1[ok]] / mid[i0[ok]])) * 1e4
    d = drop[ok]
    n = len(d)
    g = cfg.cascade_min_group
    if n < 2 * g:
        raise ValueError(f"cascade_oi_threshold: {n} usable snapshots (with a mid before and a horizon "
                         f"inside the data), fewer than {2 * g}")
    order = np.argsort(d, kind="stable")
    ds, ys = d[order], move[order]
    j = np.arange(1, n)
    lo_ok = (j >= g) & (n - j >= g) & (ds[1:] > ds[:-1])  # a split between two distinct drops
    if not lo_ok.any():
        raise ValueError("cascade_oi_threshold: no admissible split (too few distinct drops)")
    ssr, k = _split_search(ds, ys, lo_ok)
    ssr0 = float(((ys - ys.mean()) ** 2).sum())
    ssr_hat = float(ssr[k])
    c_hat = 0.5 * (ds[k] + ds[k + 1])
    sup_f = (ssr0 - ssr_hat) / (ssr_hat / (n - 2))
    # significance: circular shifts of the moves against the drops
    dt = float(np.median(np.diff(ts))) / NS if n > 1 else 1.0
    min_shift = int(math.ceil(10 * max(W, H) / max(dt, 1e-9)))
    rng = np.random.default_rng(cfg.seed)
    exceed, done = 0, 0
    if n > 2 * min_shift:
        for s in rng.integers(min_shift, n - min_shift, cfg.cascade_shifts):
            yy = np.roll(move, int(s))[order]
            ss, kk = _split_search(ds, yy, lo_ok)
            f_s = (float(((yy - yy.mean()) ** 2).sum()) - ss[kk]) / (ss[kk] / (n - 2))
            exceed += f_s >= sup_f
            done += 1
    p = (1 + exceed) / (1 + done) if done else math.nan
    # Hansen's LR confidence set, on the number of non-overlapping windows
    n_eff = max(2.0, n * dt / max(W, H))
    xi = -2.0 * math.log(1.0 - math.sqrt(cfg.ci_level))
    lr = n_eff * (ssr - ssr_hat) / ssr_hat
    inside = np.flatnonzero(lr <= xi)
    mids = 0.5 * (ds[inside] + ds[inside + 1])
    lo, hi = float(mids.min()), float(mids.max())
    z = _z(cfg.ci_level)
    se = max((hi - lo) / (2 * z), 0.5 * float(ds[k + 1] - ds[k]) / z)
    above = d >= c_hat
    notes = ["interval: Hansen's LR set on n_eff non-overlapping windows, homoskedastic errors assumed "
             "(indicative)"]
    if done == 0:
        notes.append("series too short for the circular-shift test")
    return CascadeResult(threshold=Estimate(value=float(c_hat), se=float(se), ci=(lo, hi), n=float(n_eff)),
                         identified=bool(done and p < cfg.cascade_alpha), p_value=float(p), sup_f=float(sup_f),
                         n_samples=int(n), n_above=int(above.sum()),
                         mean_move_below_bps=float(move[~above].mean()), mean_move_above_bps=float(move[above].mean()),
                         window_s=W, horizon_s=H, notes=notes)


# =========================================================================== calibrate
def calibrate(market: Market, config: HistoricalConfig | None = None, *, regimes: Any = None,
              bars: pd.DataFrame | None = None) -> HistoricalResult:
    """Every estimate of this module on one market (module docstring).

    ``regimes``: what :func:`models.data.observations.label_regimes` accepts (one
    int per bar -- the regime model's path or the synthetic truth's ``regime_path``
    --, probabilities, or None for the placeholder quantile labelling); ``bars``
    default to :func:`models.data.observations.volatility_bars` with the config's
    observation rules. A component that cannot be estimated on this market (too few
    fills, arrivals, hours ...) is None and ``notes`` says why; structural problems
    (an empty market, missing columns) raise.
    """
    from models import hawkes as hawkes_model
    from models import kappa as kappa_model

    cfg = config or HistoricalConfig()
    _check_market(market)
    oc = cfg.observation
    if bars is None:
        bars = ob.volatility_bars(market, oc)
    reg = ob.label_regimes(bars, regimes)
    out = HistoricalResult(asset=str(market.asset), source=str(market.source), duration_s=float(market.duration_s),
                           config=cfg.model_dump(mode="json"))
    dur = bars["duration_s"].to_numpy(dtype=float)
    if dur.sum() > 0:
        out.sigma_bps = float(math.sqrt(bars["rv"].to_numpy(dtype=float).sum() / dur.sum()) * 1e4)

    def run(name: str, fn):
        t0 = time.perf_counter()
        try:
            setattr(out, name, fn())
        except (ValueError, DataError) as e:
            out.notes.append(f"{name}: {e}")
        out.timings_s[name] = time.perf_counter() - t0

    fills = None
    t0 = time.perf_counter()
    try:
        fills = check_fills(ob.passive_fills(market, oc, bars=bars, regimes=reg))
    except (ValueError, DataError) as e:
        out.notes.append(f"passive fills: {e}")
    out.timings_s["passive_fills"] = time.perf_counter() - t0
    if fills is not None:
        run("alpha_touch", lambda: alpha_touch(fills, cfg))
        run("toxic_hours", lambda: toxic_hours(fills, cfg))
        run("spread_floor", lambda: spread_floor(fills, cfg, out.sigma_bps))
    run("kappa", lambda: kappa(kappa_model.observations(market, reg, oc, bars=bars), cfg))
    run("hawkes", lambda: hawkes(hawkes_model.observations(market, reg, bars=bars), cfg))
    if market.open_interest is None:
        out.notes.append("cascade: the market has no open interest")
    else:
        run("cascade", lambda: cascade_oi_threshold(market, cfg))
    return out


# =========================================================================== evidence
def _beta_count(x: float, se: float) -> float | None:
    """m with Var Beta(x m, (1-x) m) = x(1-x)/(m+1) = se^2."""
    if not (0 < x < 1) or not (se > 0) or not math.isfinite(se):
        return None
    m = x * (1 - x) / se**2 - 1.0
    return m if m > 0 else None


def to_evidence(result: HistoricalResult) -> list[Evidence]:
    """Registry evidence from a :class:`HistoricalResult` (module docstring, "Evidence
    sizes"): ``alpha_touch``, ``kappa``, ``hawkes_mu``, ``hawkes_alpha``,
    ``hawkes_beta``, ``spread_floor_bps``, ``cascade_oi_threshold``, each only when
    its estimate exists (and, for the cascade, is identified). Toxic hours feed no
    registry parameter."""
    src = f"historical:{result.asset}"
    ev: list[Evidence] = []
    a = result.alpha_touch
    if a is not None and a.pooled.n > 0:
        ev.append(Evidence.bernoulli("alpha_touch", a.pooled.value * a.pooled.n, a.pooled.n,
                                     source=f"{src}:alpha_touch {a.bucket} informed share, "
                                            f"{a.n_fills} fills in {a.n_sweeps} sweeps"))
    k = result.kappa
    if k is not None:
        ev.append(Evidence.exponential("kappa", k.n_arrivals, k.total_depth_bps,
                                       source=f"{src}:kappa MLE, {k.n_arrivals} arrivals"))
    h = result.hawkes
    if h is not None:
        mu = h.baseline_mean
        if mu.value > 0 and mu.se > 0:
            ev.append(Evidence.poisson("hawkes_mu", mu.value**2 / mu.se**2, mu.value / mu.se**2,
                                       source=f"{src}:hawkes MoM baseline per side (pseudo counts from SE)"))
        m = _beta_count(h.self_excitation.value, h.self_excitation.se)
        if m is not None:
            ev.append(Evidence.bernoulli("hawkes_alpha", h.self_excitation.value * m, m,
                                         source=f"{src}:hawkes MoM self-excitation (pseudo trials from SE)"))
        b = h.decay
        if b.value > 0 and b.se > 0 and math.isfinite(b.se):
            kk = (b.value / b.se) ** 2
            ev.append(Evidence.exponential("hawkes_beta", kk, kk / b.value,
                                           source=f"{src}:hawkes MoM decay (pseudo count from SE)"))
    s = result.spread_floor
    if s is not None and s.window_floors_bps:
        ev.append(Evidence.of_values("spread_floor_bps", s.window_floors_bps,
                                     source=f"{src}:derived floor per {s.window_s:g} s window"))
    c = result.cascade
    if c is not None and c.identified:
        m = _beta_count(c.threshold.value, c.threshold.se)
        if m is not None:
            ev.append(Evidence.bernoulli("cascade_oi_threshold", c.threshold.value * m, m,
                                         source=f"{src}:OI-drop threshold regression (pseudo trials from CI)"))
    return ev
