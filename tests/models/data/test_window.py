"""Time windows of a market (models/data/tables.py: WindowSpec, window_market): the
``--window`` option of calibrate and compare."""

from __future__ import annotations

import pytest

from models.data.synthetic import simulate_market
from models.data.tables import DataError, WindowSpec, window_market


@pytest.fixture(scope="module")
def market():
    return simulate_market(seed=2, duration_s=300.0)


@pytest.mark.parametrize("text, expect", [
    ("", WindowSpec()), (":", WindowSpec()), ("0:0.8", WindowSpec(0.0, "fraction", 0.8, "fraction")),
    ("0.8:", WindowSpec(0.8, "fraction", None, "fraction")),
    ("60s:240s", WindowSpec(60.0, "seconds", 240.0, "seconds")),
    (":120s", WindowSpec(None, "fraction", 120.0, "seconds")),
])
def test_parse(text, expect):
    assert WindowSpec.parse(text) == expect
    assert WindowSpec.parse(str(expect)) == expect  # str() round-trips


@pytest.mark.parametrize("text, msg", [
    ("0.8", "START:END"), ("a:b", "not a number"), ("0:2", "above 1"), ("0.5:0.2", "after the start"),
    ("-1s:", ">= 0"), ("1:2:3", "START:END"),
])
def test_parse_errors_name_the_problem(text, msg):
    with pytest.raises(ValueError, match=msg):
        WindowSpec.parse(text)


def test_fit_and_heldout_windows_split_the_rows(market):
    w_fit, w_held = WindowSpec.parse("0:0.75"), WindowSpec.parse("0.75:")
    fit = window_market(market, *w_fit.bounds_ns(market))
    held = window_market(market, *w_held.bounds_ns(market))
    assert len(fit.trades) + len(held.trades) == len(market.trades)
    assert len(fit.quotes) + len(held.quotes) == len(market.quotes)
    assert fit.end_ns < held.start_ns
    cut = w_fit.bounds_ns(market)[1]
    assert fit.trades["ts"].max() < cut <= held.trades["ts"].min()
    assert fit.meta["window"]["end_ns"] == cut and fit.truth is market.truth
    assert fit.sha256() != market.sha256()
    # seconds from the start
    lo, hi = WindowSpec.parse("60s:120s").bounds_ns(market)
    assert (lo - market.start_ns, hi - market.start_ns) == (60 * 10**9, 120 * 10**9)
    # the whole market: the same rows
    whole = window_market(market, *WindowSpec().bounds_ns(market))
    assert whole.sha256() == market.sha256()


def test_empty_window_is_a_data_error(market):
    with pytest.raises(DataError, match="no trades"):
        window_market(market, market.end_ns + 10, market.end_ns + 20)
