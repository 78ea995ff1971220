"""``python -m flows.cli``: the same as the ``mmcal`` console script."""

from flows.cli import main

main()
