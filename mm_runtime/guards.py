"""The kill switch and its guards, shared by the live process and the paper replay.

Six guards watch one asset's quoting (DESIGN.md §6, "Safety"); the first one past its
limit *trips* the switch: every quote is pulled at once and quoting stays off — the
quoter keeps stepping and learning — until a manual reset (:meth:`KillSwitch.reset`;
``mmcal live reset`` or the reset file of the live process).  The guards (units):

``daily_loss``   the loss since the start of the UTC day, marked to market (quote currency)
``drawdown``     the fall from the highest equity seen (quote currency)
``position``     |position| (base units), a hard limit past the ladder's reduce-only one
``notional``     |position| · mid (quote currency)
``stale_feed``   seconds without a market update (trade or quote)
``quote_rate``   orders placed per second over a sliding window (quotes/s)

PnL is marked to market: equity = cash + position · mid, the cash holding every
fill's price and fee (realised + unrealised, net of fees).  The UTC day starts at
00:00:00 UTC of the switch's clock (the market's time in a replay, the wall clock
live); the day's reference equity is the equity at the first check of that day.
A reset accepts what is lost so far: the day's loss and the drawdown are measured
again from the equity at the reset, and a position or notional past its limit at
the reset is allowed until it shrinks back under the limit (it trips again if it
grows).  Defaults and their sources (:func:`resolve_limits`): the registry's
calibrated ``max_daily_loss_fraction`` / ``max_drawdown``, else the limits derived
from the account, the Kelly fraction and σ (:mod:`mm_runtime.risk_limits`).

Every guard, its default, the reset and the metrics: docs/runtime/guards.md.
"""

from __future__ import annotations

import collections
import logging
import math
import weakref
from datetime import datetime, timezone
from typing import Annotated, Any, NamedTuple

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .bundle import PriorBundle
from .config import QuoterConfig
from .risk_limits import SECONDS_PER_DAY, kill_switch_limits, sigma_daily_from_bps
from .view import bundle_view

__all__ = [
    "GUARDS",
    "UNITS",
    "Limit",
    "parse_limit",
    "GuardConfig",
    "ResolvedLimit",
    "resolve_limits",
    "stationary_sigma_bps",
    "KillSwitch",
    "GuardStateError",
    "utc",
]

GUARDS = ("stale_feed", "position", "notional", "daily_loss", "drawdown", "quote_rate")
"""The guards, in the order they are checked (the first past its limit names the trip)."""
UNITS = {"daily_loss": "quote currency", "drawdown": "quote currency", "position": "base units",
         "notional": "quote currency", "stale_feed": "s", "quote_rate": "quotes/s"}
HARD_POSITION_FACTOR = 1.5
"""Default hard position limit = this × ``QuoterConfig.max_position`` (the ladder's
reduce-only point): the ladder sizes each side within the headroom to that point, so a
position half as large again past it means the ladder's own limit has failed."""
STALE_FEED_S = 30.0
"""Default stale-feed limit, s: above the longest silence of the sample data
(LOBSTER AAPL 18.0 s, Binance 0.75 s, Hyperliquid 3.4 s; docs/runtime/guards.md)."""
MAX_QUOTE_RATE = 50.0
"""Default quote-rate limit, orders/s: 5 × the default ladder's own rate (5 levels ×
2 sides every 1 s = 10/s)."""
DRAWDOWN_HORIZON_DAYS = 5.0
_MAX_HISTORY = 50

PosFloat = Annotated[float, Field(gt=0)]


def utc(t: float | None) -> str | None:
    """Seconds since the epoch as ISO 8601 UTC (``…Z``)."""
    if t is None or not math.isfinite(t):
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ----------------------------------------------------------------------------- limits
class Limit(NamedTuple):
    """A loss limit: an amount in quote currency, or a fraction of the account."""

    value: float
    fraction: bool

    def amount(self, account: float) -> float:
        return self.value * account if self.fraction else self.value

    def text(self) -> str:
        return f"{self.value * 100:g}%" if self.fraction else f"{self.value:g}"


def parse_limit(text: str | float, flag: str) -> Limit:
    """``"500"`` → 500 in quote currency; ``"2%"`` → 0.02 of the account.  A bad value
    raises ``ValueError`` whose one line names ``flag``."""
    s = str(text).strip()
    pct = s.endswith("%")
    num = s[:-1].strip() if pct else s
    try:
        v = float(num)
    except ValueError:
        v = math.nan
    if not math.isfinite(v) or not num:
        raise ValueError(f"{flag}: expected an amount in quote currency (e.g. 500) or a percentage of the "
                         f"account (e.g. 2%), got {text!r}")
    if v <= 0:
        raise ValueError(f"{flag}: must be > 0, got {text!r}")
    if pct and v >= 100:
        raise ValueError(f"{flag}: a percentage of the account must be below 100%, got {text!r}")
    return Limit(v / 100.0 if pct else v, pct)


class GuardConfig(BaseModel):
    """The kill switch's limits; ``None`` = the default (docs/runtime/guards.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    enabled: bool = True
    """False: no guard is checked (the switch never trips)."""
    max_daily_loss: str | None = None
    """Quote currency (``"500"``) or a percentage of the account (``"2%"``); None = the
    registry's calibrated ``max_daily_loss_fraction``, else derived (account × f × 2σ_daily)."""
    max_drawdown: str | None = None
    """Same syntax; None = the registry's calibrated ``max_drawdown``, else derived
    (account × z₀.₉₉ · f · σ_daily · √5)."""
    max_position: PosFloat | None = None
    """Hard |position| limit, base units; None = 1.5 × the ladder's ``max_position``."""
    max_notional: PosFloat | None = None
    """Hard |position|·mid limit, quote currency; None = account × leverage."""
    stale_feed_s: PosFloat = STALE_FEED_S
    """No market update for this long → trip."""
    max_quote_rate: PosFloat = MAX_QUOTE_RATE
    """Orders placed per second, averaged over ``quote_rate_window_s``."""
    quote_rate_window_s: PosFloat = 10.0
    drawdown_horizon_days: PosFloat = DRAWDOWN_HORIZON_DAYS
    """H of the derived drawdown limit (VaR₉₉ over H days)."""
    day_s: PosFloat = SECONDS_PER_DAY
    """Seconds of trading per day, for σ_daily = σ·√day_s (86 400: a 24 h market)."""

    @field_validator("max_daily_loss", "max_drawdown", mode="before")
    @classmethod
    def _limit(cls, v, info):
        if v is None:
            return None
        return parse_limit(v, info.field_name).text()


class ResolvedLimit(NamedTuple):
    value: float
    unit: str
    source: str


def stationary_sigma_bps(bundle: PriorBundle) -> float:
    """σ of the bundle's regime mix, bps/√s: sqrt(Σ_r π_r σ_r²) with π the HMM's
    stationary distribution (the variance of a mixture of zero-mean returns)."""
    v = bundle_view(bundle)
    return float(math.sqrt(np.sum(np.asarray(v.stationary) * np.asarray(v.sigma_bps) ** 2)))


def resolve_limits(cfg: GuardConfig, *, account: float, quoter_config: QuoterConfig, bundle: PriorBundle,
                   registry=None) -> dict[str, ResolvedLimit]:
    """Each guard's limit with the source it came from.  Daily loss and drawdown: the
    config's value; else the registry's ``max_daily_loss_fraction`` / ``max_drawdown``
    × ``account`` when their tier is calibrated (``registry``: a
    :class:`mm_runtime.params.Registry`); else :func:`mm_runtime.risk_limits.kill_switch_limits`
    of the account, the Kelly fraction (``quoter_config.kelly_fraction``) and σ_daily
    from the bundle's stationary σ (:func:`stationary_sigma_bps`)."""
    sigma_bps = stationary_sigma_bps(bundle)
    sd = sigma_daily_from_bps(sigma_bps, cfg.day_s)
    f = quoter_config.kelly_fraction
    derived = kill_switch_limits(account, f, sd, cfg.drawdown_horizon_days)
    why = (f"derived: account {account:g} x Kelly fraction {f:g} x sigma_daily {sd:.4g} "
           f"(sigma {sigma_bps:.4g} bps/sqrt(s) of the bundle's stationary regime mix)")
    status = registry.calibration_status() if registry is not None else None
    out: dict[str, ResolvedLimit] = {}
    for guard, field, reg_name, dkey, formula in (
            ("daily_loss", "max_daily_loss", "max_daily_loss_fraction", "max_daily_loss", "2 f sigma_daily"),
            ("drawdown", "max_drawdown", "max_drawdown", "max_drawdown",
             f"z99 f sigma_daily sqrt({cfg.drawdown_horizon_days:g} d)")):
        given = getattr(cfg, field)
        if given is not None:
            lim = parse_limit(given, field)
            src = f"--{field.replace('_', '-')} {given}" + (f" of account {account:g}" if lim.fraction else "")
            out[guard] = ResolvedLimit(lim.amount(account), UNITS[guard], src)
        elif status is not None and status.ready(registry.spec(reg_name).tier):
            frac = float(registry.estimate(reg_name))
            out[guard] = ResolvedLimit(frac * account, UNITS[guard],
                                       f"registry {reg_name} {frac:.4g} (tier {registry.spec(reg_name).tier} "
                                       f"calibrated) x account {account:g}")
        else:
            out[guard] = ResolvedLimit(float(derived[dkey]), UNITS[guard], f"{why}: {formula}")
    if cfg.max_position is not None:
        out["position"] = ResolvedLimit(float(cfg.max_position), UNITS["position"], "--max-position-hard")
    else:
        out["position"] = ResolvedLimit(HARD_POSITION_FACTOR * quoter_config.max_position, UNITS["position"],
                                        f"{HARD_POSITION_FACTOR:g} x the ladder's max_position "
                                        f"{quoter_config.max_position:g}")
    if cfg.max_notional is not None:
        out["notional"] = ResolvedLimit(float(cfg.max_notional), UNITS["notional"], "--max-notional")
    else:
        out["notional"] = ResolvedLimit(account * quoter_config.leverage, UNITS["notional"],
                                        f"account {account:g} x leverage {quoter_config.leverage:g}")
    out["stale_feed"] = ResolvedLimit(cfg.stale_feed_s, UNITS["stale_feed"],
                                      "--stale-feed-s" if cfg.stale_feed_s != STALE_FEED_S
                                      else f"default {STALE_FEED_S:g} s (longest silence of the sample data: 18 s)")
    out["quote_rate"] = ResolvedLimit(cfg.max_quote_rate, UNITS["quote_rate"],
                                      (f"--max-quote-rate" if cfg.max_quote_rate != MAX_QUOTE_RATE
                                       else f"default {MAX_QUOTE_RATE:g}/s (5 x the default ladder's 10/s)")
                                      + f" over {cfg.quote_rate_window_s:g} s")
    return {g: ResolvedLimit(float(out[g].value), out[g].unit, out[g].source) for g in GUARDS}


# ----------------------------------------------------------------------------- metrics
_FAMILIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _families(registry: CollectorRegistry) -> dict[str, Any]:
    """The kill switch's metric families in ``registry`` (created once per registry)."""
    fam = _FAMILIES.get(registry)
    if fam is None:
        a = ["asset"]
        fam = {
            "switch": Gauge("mm_kill_switch", "1 while the kill switch is tripped by this reason, else 0",
                            a + ["reason"], registry=registry),
            "limit": Gauge("mm_guard_limit", "Limit of each guard (units: docs/runtime/guards.md)", a + ["guard"],
                           registry=registry),
            "value": Gauge("mm_guard_value", "Current value of each guard, same units as mm_guard_limit",
                           a + ["guard"], registry=registry),
            "trips": Counter("mm_kill_switch_trips", "Kill-switch trips", a + ["reason"], registry=registry),
        }
        _FAMILIES[registry] = fam
    return fam


# ----------------------------------------------------------------------------- the switch
class GuardStateError(ValueError):
    """A saved kill-switch state that cannot be restored (names the origin and field)."""


class KillSwitch:
    """One asset's guards and the latched switch.  Plain Python, no I/O; the caller
    feeds it the clock (s since the epoch), market updates, the account and the
    ladders it is about to place:

    * :meth:`market_update` for every market event (after :meth:`check_stale`);
    * :meth:`check` with the marked-to-market equity, position and mid (after fills
      and at each refresh) — False means pull every quote;
    * :meth:`allow_quotes` before placing a ladder of ``n`` orders;
    * :meth:`reset` by the operator.

    ``limits``: :func:`resolve_limits`.  ``logger`` gets one record per trip and reset
    (``extra={"fields": …}``); ``metrics``: a ``CollectorRegistry`` for
    ``mm_kill_switch{asset,reason}``, ``mm_guard_limit{asset,guard}``,
    ``mm_guard_value{asset,guard}`` and ``mm_kill_switch_trips_total{asset,reason}``.
    """

    def __init__(self, limits: dict[str, ResolvedLimit], *, asset: str, config: GuardConfig | None = None,
                 logger: logging.Logger | None = None, metrics: CollectorRegistry | None = None):
        self.config = config or GuardConfig()
        self._cache_limits(limits)
        self.asset = asset
        self.log = logger or logging.getLogger("mm_runtime.guards")
        self.tripped = False
        self.trip: dict[str, Any] | None = None  # the trip in force
        self.trips: list[dict[str, Any]] = []
        self.resets: list[dict[str, Any]] = []
        self.day: int | None = None
        self.day_start_equity: float | None = None
        self.peak_equity: float | None = None
        self.position_allowance = 0.0
        self.notional_allowance = 0.0
        self.last_update: float | None = None
        self.values: dict[str, float] = {g: 0.0 for g in GUARDS}
        self._quotes: collections.deque = collections.deque()  # (time, orders)
        self._quotes_sum = 0.0
        self._fam = _families(metrics) if metrics is not None else None
        self._value_gauges = {}  # the labelled children, looked up once (the check runs per event)
        if self._fam is not None:
            self._value_gauges = {g: self._fam["value"].labels(asset=asset, guard=g) for g in GUARDS}
            for g in GUARDS:
                self._fam["limit"].labels(asset=asset, guard=g).set(self.limits[g].value)
                self._value_gauges[g].set(0.0)
                self._fam["switch"].labels(asset=asset, reason=g).set(0.0)

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def _cache_limits(self, limits: dict[str, ResolvedLimit]) -> None:
        self.limits = dict(limits)
        self._lim_stale, self._lim_position, self._lim_notional, self._lim_daily, self._lim_dd = (
            float(self.limits[g].value) for g in ("stale_feed", "position", "notional", "daily_loss", "drawdown"))

    def set_limits(self, limits: dict[str, ResolvedLimit]) -> None:
        """New limits (a hot-reloaded bundle's); the latched state is kept."""
        self._cache_limits(limits)
        if self._fam is not None:
            for g in GUARDS:
                self._fam["limit"].labels(asset=self.asset, guard=g).set(self.limits[g].value)

    # -- inputs --------------------------------------------------------------------------
    def market_update(self, ts: float) -> None:
        """A market event (trade or quote) stamped ``ts``."""
        if self.last_update is None or ts > self.last_update:
            self.last_update = float(ts)

    def check_stale(self, now: float, numbers: dict[str, float] | None = None) -> bool:
        """Trip when no market update came for more than ``stale_feed_s`` before ``now``
        (call it before :meth:`market_update` of a new event).  Returns whether quoting
        is allowed.  ``numbers``: extra fields of the trip's record."""
        if self.last_update is not None:
            age = max(0.0, float(now) - self.last_update)
            self._set("stale_feed", age)
            if age > self._lim_stale and self.enabled and not self.tripped:
                self._trip("stale_feed", now, age, {"last_update": self.last_update,
                                                    "last_update_utc": utc(self.last_update), **(numbers or {})})
        return not self.tripped

    def check(self, now: float, *, equity: float, position: float, mid: float) -> bool:
        """Update the PnL references (UTC day, peak) and check every guard but the quote
        rate at ``now``; trips on the first one past its limit.  Returns whether quoting
        is allowed.  ``equity`` = cash + position·mid (quote currency).  (Runs on every
        event of the live process: plain arithmetic, the record built only on a trip.)"""
        now, equity, position, mid = float(now), float(equity), float(position), float(mid)
        day = int(now // 86_400.0)
        if self.day != day or self.day_start_equity is None:
            self.day, self.day_start_equity = day, equity
        if self.peak_equity is None or equity > self.peak_equity:
            self.peak_equity = equity
        q = abs(position)
        notional = q * mid
        lim_q, lim_n = self._lim_position, self._lim_notional
        if q <= lim_q:
            self.position_allowance = 0.0
        if notional <= lim_n:
            self.notional_allowance = 0.0
        daily = max(0.0, self.day_start_equity - equity)
        drawdown = max(0.0, self.peak_equity - equity)
        v = self.values
        v["position"], v["notional"], v["daily_loss"], v["drawdown"] = q, notional, daily, drawdown
        if self.last_update is not None and now - self.last_update > self._lim_stale and not self.tripped:
            self.check_stale(now, self._numbers(equity, position, mid))
        elif self.last_update is not None:
            self._set("stale_feed", max(0.0, now - self.last_update))
        if self.tripped or not self.enabled:
            return not self.tripped
        for guard, value, limit in (("position", q, max(lim_q, self.position_allowance)),
                                    ("notional", notional, max(lim_n, self.notional_allowance)),
                                    ("daily_loss", daily, self._lim_daily), ("drawdown", drawdown, self._lim_dd)):
            if value > limit:
                self._trip(guard, now, value, self._numbers(equity, position, mid))
                return False
        return True

    def _numbers(self, equity: float, position: float, mid: float) -> dict[str, float]:
        return {"equity": equity, "position": position, "mid": mid, "day_start_equity": self.day_start_equity,
                "peak_equity": self.peak_equity}

    def allow_quotes(self, now: float, n: int) -> bool:
        """Whether ``n`` orders may be placed at ``now``; placing them would take the
        rate over ``max_quote_rate`` (averaged over ``quote_rate_window_s``) → trip.
        Records them when allowed."""
        if self.tripped:
            return False
        w = self.config.quote_rate_window_s
        while self._quotes and self._quotes[0][0] <= now - w:
            self._quotes_sum -= self._quotes.popleft()[1]
        rate = (self._quotes_sum + n) / w
        if self.enabled and n > 0 and rate > self.limits["quote_rate"].value:
            self._set("quote_rate", rate)
            self._trip("quote_rate", now, rate, {"orders": int(n), "window_s": w,
                                                 "orders_in_window": int(self._quotes_sum + n)})
            return False
        if n > 0:
            self._quotes.append((float(now), float(n)))
            self._quotes_sum += n
        self._set("quote_rate", self._quotes_sum / w)
        return True

    # -- trip and reset ------------------------------------------------------------------
    def _set(self, guard: str, value: float) -> None:
        self.values[guard] = float(value)

    def publish(self) -> None:
        """Set ``mm_guard_value`` from the latest values (the live runner calls it at each
        refresh; a trip and a reset call it too)."""
        for g, gauge in self._value_gauges.items():
            gauge.set(self.values[g])

    def _trip(self, reason: str, now: float, value: float, numbers: dict[str, Any]) -> None:
        lim = self.limits[reason]
        self.tripped = True
        self.trip = {"reason": reason, "at": float(now), "at_utc": utc(now), "value": float(value),
                     "limit": lim.value, "unit": lim.unit, "source": lim.source,
                     **{k: (float(v) if isinstance(v, (int, float, np.floating)) else v) for k, v in numbers.items()}}
        self.trips = (self.trips + [self.trip])[-_MAX_HISTORY:]
        self.publish()
        if self._fam is not None:
            self._fam["switch"].labels(asset=self.asset, reason=reason).set(1.0)
            self._fam["trips"].labels(asset=self.asset, reason=reason).inc()
        self.log.error("kill switch tripped: every quote pulled until a manual reset",
                       extra={"fields": {"asset": self.asset, "event": "kill_switch", **self.trip}})

    def reset(self, now: float, *, equity: float | None = None, position: float = 0.0, mid: float = 0.0,
              by: str = "manual", note: str | None = None) -> bool:
        """Re-arm the switch (returns whether it was tripped).  The day's loss and the
        drawdown are measured again from ``equity`` (None: from the equity at the next
        check); a position or notional past its limit is allowed until it shrinks back
        under it."""
        was = self.trip
        if equity is not None and math.isfinite(equity):
            self.day = int(math.floor(float(now) / 86_400.0))
            self.day_start_equity = self.peak_equity = float(equity)
        else:  # not known (no mid yet): the next check takes the equity of that moment
            self.day = self.day_start_equity = self.peak_equity = None
        self.position_allowance = abs(float(position))
        self.notional_allowance = abs(float(position)) * float(mid)
        self.last_update = None if self.last_update is None else max(self.last_update, float(now))
        self._quotes.clear()
        self._quotes_sum = 0.0
        self.tripped, self.trip = False, None
        rec = {"at": float(now), "at_utc": utc(now), "by": by, "note": note,
               "was_tripped": was is not None, "previous_reason": was["reason"] if was else None}
        self.resets = (self.resets + [rec])[-_MAX_HISTORY:]
        self.publish()
        if self._fam is not None:
            for g in GUARDS:
                self._fam["switch"].labels(asset=self.asset, reason=g).set(0.0)
        self.log.warning("kill switch reset: quoting resumes" if was else "kill switch reset (it was not tripped)",
                         extra={"fields": {"asset": self.asset, "event": "kill_switch_reset", **rec,
                                           "previous": was}})
        return was is not None

    # -- reports and persistence ---------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """``{triggered, reason, at, at_utc, value, limit, unit, source, …}`` of the trip in
        force (or of the last one, ``triggered`` false after a reset), with the limits,
        every trip and reset."""
        last = self.trip or (self.trips[-1] if self.trips else None)
        return {
            "enabled": self.enabled,
            "triggered": self.tripped,
            "reason": last["reason"] if self.tripped else None,
            "at": last["at"] if self.tripped else None,
            "at_utc": last["at_utc"] if self.tripped else None,
            "trip": self.trip,
            "trips": list(self.trips),
            "resets": list(self.resets),
            "limits": {g: l._asdict() for g, l in self.limits.items()},
            "values": dict(self.values),
        }

    def to_dict(self) -> dict[str, Any]:
        """The latched state, for the live state file (limits are resolved again at start)."""
        return {"tripped": self.tripped, "trip": self.trip, "trips": self.trips, "resets": self.resets,
                "day": self.day, "day_start_equity": self.day_start_equity, "peak_equity": self.peak_equity,
                "position_allowance": self.position_allowance, "notional_allowance": self.notional_allowance}

    def restore(self, doc: dict[str, Any] | None, origin: str) -> None:
        """Restore :meth:`to_dict`'s document; a tripped switch stays tripped (its metric
        set again).  Raises :class:`GuardStateError` naming ``origin`` and the field."""
        if doc is None:
            return

        def fail(msg: str):
            raise GuardStateError(f"{origin}: guards.{msg}")

        if not isinstance(doc, dict):
            raise GuardStateError(f"{origin}: guards: must be an object")
        tripped = doc.get("tripped", False)
        if not isinstance(tripped, bool):
            fail("tripped: must be true or false")
        trip = doc.get("trip")
        if tripped and not (isinstance(trip, dict) and trip.get("reason") in GUARDS):
            fail(f"trip: a tripped switch needs a trip with a reason among {', '.join(GUARDS)}")
        for name in ("day_start_equity", "peak_equity", "position_allowance", "notional_allowance", "day"):
            v = doc.get(name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)):
                fail(f"{name}: must be a finite number or null")
        for name in ("trips", "resets"):
            if not isinstance(doc.get(name, []), list):
                fail(f"{name}: must be a list")
        self.tripped, self.trip = tripped, (trip if tripped else None)
        self.trips, self.resets = list(doc.get("trips", [])), list(doc.get("resets", []))
        self.day = int(doc["day"]) if doc.get("day") is not None else None
        self.day_start_equity = doc.get("day_start_equity")
        self.peak_equity = doc.get("peak_equity")
        self.position_allowance = float(doc.get("position_allowance") or 0.0)
        self.notional_allowance = float(doc.get("notional_allowance") or 0.0)
        if self.tripped and self._fam is not None:
            self._fam["switch"].labels(asset=self.asset, reason=self.trip["reason"]).set(1.0)
