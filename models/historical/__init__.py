"""The historical calibrator: fast batch estimates, with standard errors and
intervals, from one market's history, for the learned-parameter registry.

One module per estimator: :mod:`.touch_share` (``alpha_touch``), :mod:`.kappa_mle`
(``kappa``), :mod:`.hawkes_moments` (``hawkes``), :mod:`.toxicity`
(``toxic_hours``), :mod:`.floor` (``spread_floor``), :mod:`.cascade`
(``cascade_oi_threshold``); :mod:`.common` holds what they share,
:mod:`.calibrator` runs them all (``calibrate``) and :mod:`.evidence` sizes the
results as registry evidence (``to_evidence``).

Units (DESIGN.md section 2): bps of the mid, seconds, kappa in 1/bps, rates in
events/s. Source: the original system's ``historical_calibrator.rs``; estimators,
derivations and measurements: docs/models/historical.md.
"""

from __future__ import annotations

from mm_runtime.vocabulary import REGIMES, SIDES

from .calibrator import HistoricalResult, calibrate
from .cascade import CascadeResult, cascade_oi_threshold
from .common import FILL_COLUMNS, TOUCH_BUCKET, Estimate, HistoricalConfig, check_fills
from .evidence import to_evidence
from .floor import BucketPnL, SpreadFloorResult, spread_floor
from .hawkes_moments import HawkesResult, hawkes
from .kappa_mle import KappaResult, kappa
from .touch_share import AlphaTouchResult, alpha_touch
from .toxicity import HourStat, ToxicHoursResult, toxic_hours

__all__ = [
    "FILL_COLUMNS",
    "REGIMES",
    "SIDES",
    "TOUCH_BUCKET",
    "AlphaTouchResult",
    "BucketPnL",
    "CascadeResult",
    "Estimate",
    "HawkesResult",
    "HistoricalConfig",
    "HistoricalResult",
    "HourStat",
    "KappaResult",
    "SpreadFloorResult",
    "ToxicHoursResult",
    "alpha_touch",
    "calibrate",
    "cascade_oi_threshold",
    "check_fills",
    "hawkes",
    "kappa",
    "spread_floor",
    "to_evidence",
    "toxic_hours",
]
