"""Held-out comparison of two calibrations of one asset: champion vs challenger
(DESIGN.md section 7, the ``compare`` flow).

Both calibrations are scored on the same later window neither fit saw, by each model's
log predictive density of it (nats; :func:`models.sampling.predictive_density`), on
observations defined by the rules each fit used and one shared set of regime
probabilities per bar (the regime HMM's smoothed probabilities at its EM/MAP point).
Differences are challenger minus champion per model, paired over the units when both
scored the same ones (Vehtari, Gelman & Gabry 2017).  :func:`decide` promotes the
challenger when there is no champion or when the summed elpd difference exceeds ``z``
standard errors (default 2).

Each model's held-out unit, the regime path and the rule in full: docs/models/heldout.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_Z = 2.0
DEFAULT_MAX_DRAWS = 400


def fit_observation_config(idata):
    """The observation rules a fit used: ``idata.attrs["observation_config"]`` (JSON),
    else the defaults with the fit's ``bar_seconds`` where it records one."""
    import json

    from models.data.observations import ObservationConfig

    doc = idata.attrs.get("observation_config")
    if doc:
        return ObservationConfig.model_validate(json.loads(doc) if isinstance(doc, str) else doc)
    bar = idata.attrs.get("bar_seconds")
    return ObservationConfig() if bar is None else ObservationConfig(bar_seconds=float(bar))


def model_lpd(name: str, idata, market, *, bars, regimes, max_draws: int | None = DEFAULT_MAX_DRAWS
              ) -> dict[str, Any]:
    """Held-out log predictive density of model ``name`` (a fit ``idata``) on
    ``market`` (the held-out window), under the fit's observation rules. ``bars``:
    the common held-out bars; ``regimes``: the regime path on them (module
    docstring). A model without a regime path uses bars of its own fit's length."""
    from models import catalog
    from models.data.observations import volatility_bars

    cfg = fit_observation_config(idata)
    common = float(bars.attrs.get("bar_seconds", cfg.bar_seconds))
    if catalog.spec(name).uses_regimes:
        cfg = cfg.model_copy(update={"bar_seconds": common})
    elif abs(common - cfg.bar_seconds) > 1e-9:
        bars = volatility_bars(market, cfg)
    obs = catalog.observations(name, market, regimes, config=cfg, bars=bars)
    return catalog.heldout_lpd(name, idata, obs, max_draws=max_draws)


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


def score(fits: Mapping[str, Any], market, *, bars, regimes, models: tuple[str, ...] | None = None,
          max_draws: int | None = DEFAULT_MAX_DRAWS) -> dict[str, dict[str, Any]]:
    """:func:`model_lpd` of every model of one calibration (``fits``: {name: idata};
    ``models``: default the catalog's)."""
    from models.catalog import names

    return {m: model_lpd(m, fits[m], market, bars=bars, regimes=regimes, max_draws=max_draws)
            for m in (models or names()) if m in fits}


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
            same_unit = challenger[m].get("bar_seconds") == champion[m].get("bar_seconds")
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


__all__ = ["Comparison", "fit_observation_config", "compare", "decide", "model_lpd", "score"]
