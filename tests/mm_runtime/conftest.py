"""Fixtures of the runtime tests: ``records``, the live runner's log records
(message, structured fields) captured at INFO."""

from __future__ import annotations

import logging

import pytest


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append((record.getMessage(), getattr(record, "fields", {})))


@pytest.fixture
def records():
    h = _Records()
    lg = logging.getLogger("mm_runtime.live")
    old = lg.level
    lg.addHandler(h)
    lg.setLevel(logging.INFO)
    yield h.records
    lg.removeHandler(h)
    lg.setLevel(old)
