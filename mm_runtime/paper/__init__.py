"""Paper trading: a replay of recorded markets through a ``Quoter`` and the
Avellaneda–Stoikov synthetic market that validates its accounting."""

from . import accounting, avellaneda_stoikov

__all__ = ["accounting", "avellaneda_stoikov"]
