"""Held-out comparison of two calibrations of one asset: champion vs challenger
(DESIGN.md section 7, the ``compare`` flow).

Both calibrations are scored on the *same* held-out data, a time window neither
fit saw (later than both fits' windows), by each model's log predictive density
of that data (:func:`models.sampling.predictive_density`:
``lpd_i = log mean_s p(y_i | theta_s)`` per unit, summed):

==========  ==========================================  ===========================================
model       held-out unit                               function
==========  ==========================================  ===========================================
regime      one volatility bar's log rv, one step ahead  :func:`models.regime.heldout_lpd`
alpha       one passive fill's informed flag              :func:`models.alpha.informed_flag_lpd`
            (sweep-weighted; the same score for both
            alpha variants, so threshold vs mixture
            compare here too)
kappa       one (count block, side): count + depths       :func:`models.kappa.heldout_lpd`
hawkes      one arrival: log intensity - compensator      :func:`models.hawkes.heldout_lpd`
==========  ==========================================  ===========================================

Regimes of the held-out data (alpha, kappa and hawkes take them as a covariate):
one path for both calibrations, the regime HMM's EM/MAP path on the held-out bars
(:func:`models.catalog.regime_path` with ``"em"``), so the units are the same for
both and a difference comes from the models' parameters, not from two different
labellings. The held-out bars have the challenger regime fit's bar length; the
regime model itself is scored on bars of its own fit's length (if the two fits
used different bar lengths their regime scores are on different data: reported,
unpaired, and left out of the decision).

Differences (:func:`models.sampling.paired_difference`): challenger minus
champion per model, paired over the units (the se of the sum of pointwise
differences, Vehtari, Gelman & Gabry 2017) when both scored the same units.

Promotion rule (:func:`decide`): the challenger becomes champion when there is no
champion yet, or when its total held-out elpd difference over the comparable
models exceeds ``z`` standard errors (default 2): ``sum_m diff_m > z *
sqrt(sum_m se_m^2)`` (the models score different data, taken as independent).
A tie or a small gain keeps the champion: a change of the live priors needs
evidence. The paper-trading replay PnL joins the decision when that lands.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MODELS: tuple[str, ...] = ("regime", "alpha", "kappa", "hawkes")
DEFAULT_Z = 2.0
DEFAULT_MAX_DRAWS = 400


def _bars(market, bar_seconds: float):
    from models.data.observations import ObservationConfig, volatility_bars

    return volatility_bars(market, ObservationConfig(bar_seconds=float(bar_seconds)))


def model_lpd(name: str, idata, market, *, bars, regimes, max_draws: int | None = DEFAULT_MAX_DRAWS
              ) -> dict[str, Any]:
    """Held-out log predictive density of model ``name`` (a fit ``idata``) on
    ``market`` (the held-out window). ``bars``: the common held-out bars; ``regimes``:
    the regime path on them (module docstring). The regime model uses bars of its
    own fit's bar length."""
    from models import alpha, hawkes, kappa, regime

    if name == "regime":
        B = float(idata.attrs["bar_seconds"])
        own = bars if abs(float(bars.attrs.get("bar_seconds", B)) - B) < 1e-9 else _bars(market, B)
        robs = regime.observations(market, bars=own)
        out = regime.heldout_lpd(idata, robs, max_draws=max_draws)
        out["bar_seconds"] = B
        return out
    if name == "alpha":
        obs = alpha.observations(market, regimes, bars=bars)
        res = alpha.informed_flag_lpd(idata, obs)
        return {**res, "n": res["n_fills"], "unit": "passive fills (informed flag, sweep-weighted)"}
    if name == "kappa":
        return kappa.heldout_lpd(idata, kappa.observations(market, regimes, bars=bars), max_draws=max_draws)
    if name == "hawkes":
        return hawkes.heldout_lpd(idata, hawkes.observations(market, regimes, bars=bars), max_draws=max_draws)
    raise ValueError(f"unknown model {name!r}; one of {', '.join(MODELS)}")


@dataclass
class Comparison:
    """The comparison table (one row per model plus ``total``) and the decision."""

    rows: list[dict[str, Any]]
    promote: bool
    reason: str
    z: float = DEFAULT_Z
    heldout: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "promote": self.promote, "reason": self.reason, "z": self.z,
                "heldout": self.heldout}

    def markdown(self) -> str:
        cols = ["model", "unit", "n", "challenger_elpd", "champion_elpd", "elpd_diff", "se", "paired", "z_score"]
        out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in self.rows:
            out.append("| " + " | ".join(_cell(r.get(c)) for c in cols) + " |")
        out.append("")
        out.append(f"decision: {'promote the challenger' if self.promote else 'keep the champion'} ({self.reason})")
        return "\n".join(out) + "\n"


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.2f}" if math.isfinite(v) else "-"
    return str(v)


def score(fits: Mapping[str, Any], market, *, bars, regimes, models: tuple[str, ...] = MODELS,
          max_draws: int | None = DEFAULT_MAX_DRAWS) -> dict[str, dict[str, Any]]:
    """:func:`model_lpd` of every model of one calibration (``fits``: {name: idata})."""
    return {m: model_lpd(m, fits[m], market, bars=bars, regimes=regimes, max_draws=max_draws)
            for m in models if m in fits}


def compare(challenger: Mapping[str, dict[str, Any]], champion: Mapping[str, dict[str, Any]] | None,
            *, z: float = DEFAULT_Z) -> Comparison:
    """Challenger vs champion from their :func:`score` results (``champion`` None when
    there is none): per-model rows (``challenger_elpd``, ``champion_elpd``,
    ``elpd_diff`` = challenger - champion, ``se``, ``paired``, ``z_score``), a
    ``total`` row over the comparable models, and :func:`decide`'s verdict."""
    from models.sampling import paired_difference

    rows: list[dict[str, Any]] = []
    for m, ch in challenger.items():
        row: dict[str, Any] = {"model": m, "unit": ch.get("unit"), "n": ch.get("n"),
                               "challenger_elpd": ch["elpd"], "challenger_se": ch["se"],
                               "champion_elpd": None, "elpd_diff": None, "se": None, "paired": None,
                               "z_score": None, "comparable": False}
        if champion is not None and m in champion:
            d = paired_difference(ch, champion[m])
            same_unit = m != "regime" or challenger[m].get("bar_seconds") == champion[m].get("bar_seconds")
            row.update(champion_elpd=champion[m]["elpd"], elpd_diff=d["elpd_diff"], se=d["se"],
                       paired=d["paired"], comparable=bool(same_unit),
                       z_score=d["elpd_diff"] / d["se"] if d["se"] > 0 else None)
            if not same_unit:
                row["note"] = "different bar lengths: not the same data, left out of the decision"
        rows.append(row)
    promote, reason, total = decide(rows, champion is not None, z)
    if total is not None:
        rows.append(total)
    return Comparison(rows=rows, promote=promote, reason=reason, z=z)


def decide(rows: list[dict[str, Any]], has_champion: bool, z: float = DEFAULT_Z
           ) -> tuple[bool, str, dict[str, Any] | None]:
    """The promotion rule of the module docstring: ``(promote, reason, total row)``."""
    if not has_champion:
        return True, "no champion yet", None
    comp = [r for r in rows if r.get("comparable")]
    if not comp:
        return False, "no model could be compared on the same held-out data", None
    diff = sum(r["elpd_diff"] for r in comp)
    se = math.sqrt(sum(r["se"] ** 2 for r in comp))
    total = {"model": "total", "unit": "+".join(r["model"] for r in comp), "n": None,
             "challenger_elpd": sum(r["challenger_elpd"] for r in comp),
             "champion_elpd": sum(r["champion_elpd"] for r in comp),
             "elpd_diff": diff, "se": se, "paired": all(r["paired"] for r in comp),
             "z_score": diff / se if se > 0 else None, "comparable": True}
    if se == 0 and diff == 0:
        return False, "identical held-out scores (the same posterior?)", total
    if diff > z * se:
        return True, f"held-out elpd +{diff:.1f} > {z:g} x se {se:.1f}", total
    if diff < -z * se:
        return False, f"the challenger is worse: held-out elpd {diff:.1f} (se {se:.1f})", total
    return False, f"no clear difference: held-out elpd {diff:+.1f} within {z:g} x se {se:.1f}", total


__all__ = ["MODELS", "Comparison", "compare", "decide", "model_lpd", "score"]
