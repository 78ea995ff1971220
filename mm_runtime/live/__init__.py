"""The live quoter process: a :class:`~mm_runtime.Quoter` on a real-time feed
(``mmcal live``, DESIGN.md section 7).

* :mod:`.feeds` — :class:`FeedEvent`, :class:`ReplayFeed`, :class:`HyperliquidParser`,
  :class:`HyperliquidFeed`;
* :mod:`.state` — the state file (document, atomic write, checked parse);
* :mod:`.runner` — :class:`LiveConfig`, :class:`LiveRunner`.

Feeds, paper fills, the state file, logs and metrics: docs/runtime/live.md.
"""

from .feeds import HYPERLIQUID_URL, FeedEvent, HyperliquidFeed, HyperliquidParser, ReplayFeed
from .runner import LiveConfig, LiveRunner
from .state import STATE_KIND, STATE_SCHEMA_VERSION, StateFileError

__all__ = [
    "FeedEvent",
    "ReplayFeed",
    "HyperliquidFeed",
    "HyperliquidParser",
    "LiveConfig",
    "LiveRunner",
    "StateFileError",
    "STATE_KIND",
    "STATE_SCHEMA_VERSION",
    "HYPERLIQUID_URL",
]
