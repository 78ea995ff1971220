"""Risk limits of the kill switch derived from the account, the Kelly fraction and σ.

Pure functions of plain floats; out-of-domain inputs raise ``ValueError`` naming the
argument.  They live here (not in ``models``) because the live kill switch
(:mod:`mm_runtime.guards`) derives its default daily-loss and drawdown limits from
them; ``models.historical.derived`` re-exports them with the other derived constants.

Source: ``original-bayesian-learning-notes.txt`` (background), ``derived_constants.rs``
(``derive_max_daily_loss()``, ``derive_max_drawdown()``) and ``kill_switch.rs``
(``KillSwitchConfig::from_account_kelly()``).  The derivations and units:
docs/models/historical.md#derived-constants; how the kill switch uses them:
docs/runtime/guards.md.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from . import _checks as _c

__all__ = [
    "Z_99",
    "SECONDS_PER_DAY",
    "sigma_daily_from_bps",
    "max_daily_loss",
    "var99",
    "max_drawdown",
    "kill_switch_limits",
]

Z_99: float = NormalDist().inv_cdf(0.99)
"""One-sided 99% standard-normal quantile, 2.3263478740408408."""

SECONDS_PER_DAY = 86_400.0


def sigma_daily_from_bps(sigma_bps: float, day_s: float = SECONDS_PER_DAY) -> float:
    """Daily return volatility as a fraction: ``σ_daily = σ · √day_s · 1e-4``.

    Units: ``sigma_bps`` bps/√s (the quoter's σ), ``day_s`` seconds per day (86 400 for
    a 24 h market); result a fraction per day (0.03 = 3%).  Square-root-of-time
    scaling of Brownian volatility.  A unit bridge for :func:`max_daily_loss`.
    """
    sigma = _c.non_negative("sigma_bps", sigma_bps)
    day = _c.positive("day_s", day_s)
    return sigma * math.sqrt(day) * 1e-4


def max_daily_loss(account_value: float, kelly_fraction: float, sigma_daily: float) -> float:
    """Daily loss limit: ``L = account × f × 2σ_daily``.

    The Kelly-sized exposure f·account has a daily P&L standard deviation of about
    f·account·σ_daily; a loss beyond two of those (a one-sided ~2.3% day under a
    normal approximation) stops trading for the day.  ``f × 2σ_daily`` alone is the
    limit as a fraction of the account (the original's ``max_daily_loss_fraction``).

    Units: ``account_value`` quote currency (≥ 0); ``kelly_fraction`` f, the fraction
    of the account deployed, in (0, 1] (the original's 0.25, ``QuoterConfig.kelly_fraction``);
    ``sigma_daily`` the asset's daily return volatility as a fraction (≥ 0; see
    :func:`sigma_daily_from_bps`).  Result: quote currency.

    Source: ``derive_max_daily_loss()`` ("Kelly-scaled from account × f × 2σ") and
    ``KillSwitchConfig::from_account_kelly()`` in the original notes.
    """
    account = _c.non_negative("account_value", account_value)
    f = _c.real("kelly_fraction", kelly_fraction)
    if not 0.0 < f <= 1.0:
        raise ValueError(f"kelly_fraction must be in (0, 1], got {f}")
    sigma = _c.non_negative("sigma_daily", sigma_daily)
    return account * f * 2.0 * sigma


def var99(sigma: float, horizon: float = 1.0) -> float:
    """One-sided 99% value at risk of a zero-mean normal return: ``z₀.₉₉ · σ · √horizon``.

    z₀.₉₉ = ``NormalDist().inv_cdf(0.99)`` = 2.3263478740408408 (:data:`Z_99`).
    Units: ``sigma`` the return volatility per unit of time (a fraction, e.g. daily σ;
    or bps per √unit, the result is then in bps); ``horizon`` in that unit of time
    (> 0).  Result: a loss, in σ's unit (a fraction of the position's value).
    Square-root-of-time scaling; drift ignored (negligible at these horizons).

    Source: "VaR parameters" among the first-principles derivations of the original
    notes (used by ``derive_max_drawdown()``).
    """
    sigma = _c.non_negative("sigma", sigma)
    horizon = _c.positive("horizon", horizon)
    return Z_99 * sigma * math.sqrt(horizon)


def max_drawdown(var99_fraction: float, horizon_factor: float) -> float:
    """Drawdown limit: ``DD = VaR₉₉ × horizon_factor``.

    Units: ``var99_fraction`` the 99% VaR over one base period as a fraction of the
    account (≥ 0, see :func:`var99`); ``horizon_factor`` dimensionless (> 0), the
    scaling from the VaR period to the drawdown window — √N for an N-period window
    by the square-root-of-time rule.  Result: a fraction of the account (a value ≥ 1
    means the limit cannot bind before the account is gone).

    Source: ``derive_max_drawdown()`` ("VaR_99 × horizon_factor") in the original notes.
    """
    v = _c.non_negative("var99_fraction", var99_fraction)
    k = _c.positive("horizon_factor", horizon_factor)
    return v * k


def kill_switch_limits(
    account_value: float, kelly_fraction: float, sigma_daily: float, drawdown_horizon_days: float = 5.0
) -> dict[str, float]:
    """Kill-switch limits derived from the account, the Kelly fraction and daily σ.

    With f = ``kelly_fraction``, σ_d = ``sigma_daily`` (fraction per day),
    H = ``drawdown_horizon_days``::

        max_daily_loss_fraction = f · 2σ_d                         (:func:`max_daily_loss`)
        max_drawdown_fraction   = VaR₉₉(f·σ_d, 1 day) · √H = z₀.₉₉ · f · σ_d · √H
                                                                  (:func:`var99`, :func:`max_drawdown`)
        max_daily_loss = account · max_daily_loss_fraction         [quote currency]
        max_drawdown   = account · max_drawdown_fraction           [quote currency]

    The drawdown limit is the 99% VaR of the Kelly-sized exposure over an H-day
    window; since z₀.₉₉ > 2 it is never tighter than the daily limit for H ≥ 1.
    H = 5 (a trading week) is this module's convention, not from the notes.

    Units: ``account_value`` quote currency; ``kelly_fraction`` in (0, 1];
    ``sigma_daily`` fraction per day; ``drawdown_horizon_days`` days (> 0).

    Source: ``KillSwitchConfig::from_account_kelly()`` in the original notes.
    """
    account = _c.non_negative("account_value", account_value)
    daily = max_daily_loss(account, kelly_fraction, sigma_daily)
    f, sigma = float(kelly_fraction), float(sigma_daily)
    horizon = _c.positive("drawdown_horizon_days", drawdown_horizon_days)
    dd_fraction = max_drawdown(var99(f * sigma, 1.0), math.sqrt(horizon))
    return {
        "max_daily_loss": daily,
        "max_daily_loss_fraction": f * 2.0 * sigma,
        "max_drawdown": account * dd_fraction,
        "max_drawdown_fraction": dd_fraction,
    }
