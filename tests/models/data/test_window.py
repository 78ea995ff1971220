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
    with pytest.raises(DataError, match="no trades|after its end") as ei:
        window_market(market, market.end_ns + 10, market.end_ns + 20)
    assert "<memory>" not in str(ei.value) and " ns" not in str(ei.value)


@pytest.mark.parametrize("text, parts", [
    ("0.999:1", ["--window '0.999:1': no trades between 299.7 s and 300 s from the data's start",
                 "(the data (SYN, synthetic) span 300 s)"]),
    ("5000s:", ["--window '5000s:': starts at 5,000 s from the data's start, after its end",
                "span 300 s"]),
    ("100s:0.1", ["--window '100s:0.1': ends at 30 s, before it starts at 100 s"]),
])
def test_window_outside_the_data_is_one_line_in_seconds(market, text, parts):
    """A window that holds no data names the option and the window as given, the
    data's span in seconds and the problem, in one line (it said ``<memory>`` and
    raw nanoseconds)."""
    with pytest.raises(DataError) as ei:
        WindowSpec.parse(text).cut(market, "--window")
    msg = str(ei.value)
    for p in parts:
        assert p in msg, msg
    assert "\n" not in msg and "<memory>" not in msg and " ns" not in msg
    # a window inside the data cuts as window_market does
    ok = WindowSpec.parse("60s:0.5").cut(market, "--window")
    assert ok.sha256() == window_market(market, *WindowSpec.parse("60s:0.5").bounds_ns(market)).sha256()


def test_cli_window_outside_the_data_is_one_line(tmp_path, market):
    """`mmcal params calibrate --window 5000s:` on a 300 s market: exit 2, one line."""
    from typer.testing import CliRunner

    from flows.cli import app
    from models.data.synthetic import write_market

    write_market(market, tmp_path / "m")
    r = CliRunner().invoke(app, ["params", "calibrate", str(tmp_path / "m"), "--source", "synthetic",
                                 "--window", "5000s:"], catch_exceptions=False)
    assert r.exit_code == 2
    line = r.stderr.strip()
    assert line == ("mmcal: error: --window '5000s:': starts at 5,000 s from the data's start, after its end "
                    "(the data (SYN, synthetic) span 300 s)"), line
