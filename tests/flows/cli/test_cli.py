"""The command line's conventions (DESIGN.md section 8) on `simulate`, `data inspect`, `demo`:
one JSON document on stdout with --json, one clear error line and exit status 2 on
bad input, no traceback, nothing half-written."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[3]


def _run(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_simulate_writes_market_and_json(tmp_path):
    out = tmp_path / "m"
    r = _run("simulate", "--out", str(out), "--seed", "3", "--duration", "600", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["seed"] == 3 and doc["rows"]["trades"] > 0
    assert {p.name for p in out.iterdir()} >= {"trades.parquet", "quotes.parquet", "truth.json"}


def test_simulate_refuses_to_overwrite_and_leaves_nothing(tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = _run("simulate", "--out", str(out), "--duration", "60")
    assert r.exit_code == 2
    assert "exists and is not empty" in r.stderr and "Traceback" not in r.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temp folder left behind


def test_simulate_rejects_bad_duration(tmp_path):
    r = _run("simulate", "--out", str(tmp_path / "m"), "--duration", "-5")
    assert r.exit_code == 2 and "--duration" in r.stderr
    assert not (tmp_path / "m").exists()


def test_simulate_names_the_asset_and_refuses_a_bad_name(tmp_path):
    r = _run("simulate", "--out", str(tmp_path / "m"), "--duration", "60", "--asset", "ETH-1", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["asset"] == "ETH-1"
    assert json.loads((tmp_path / "m" / "truth.json").read_text())["asset"] == "ETH-1"
    r = _run("simulate", "--out", str(tmp_path / "n"), "--duration", "60", "--asset", "a/b")
    assert r.exit_code == 2 and "--asset: 'a/b' is not a name" in r.stderr
    assert not (tmp_path / "n").exists()


def test_inspect_synthetic_json_matches_truth_counts(tmp_path):
    out = tmp_path / "m"
    assert _run("simulate", "--out", str(out), "--seed", "1", "--duration", "1800").exit_code == 0
    r = _run("data", "inspect", "--source", "synthetic", str(out), "--json")
    assert r.exit_code == 0, r.stderr
    s = json.loads(r.stdout)
    truth = json.loads((out / "truth.json").read_text())
    assert s["rows"]["trades"] == truth["counts"]["trades"]
    assert sum(a["arrivals"] for a in s["arrivals"]) == truth["counts"]["arrivals"]
    assert s["regime_labels"] == "synthetic truth"
    assert sum(v["bars"] for v in s["volatility"]) > 0
    assert [f["bucket"] for f in s["passive_fills"]] == ["[0,2)", "[2,5)", "[5,10)", "[10,inf)"]
    assert s["mid_moves"]["share_by_grid_s"]["0.1"] == 1.0 and s["mid_moves"]["suggested_rv_sample_seconds"] == 0.1


def test_inspect_human_output_has_the_tables(tmp_path):
    out = tmp_path / "m"
    _run("simulate", "--out", str(out), "--duration", "600")
    r = _run("data", "inspect", "--source", "synthetic", str(out))
    assert r.exit_code == 0
    for s in ("mean spread", "mid moves in", "arrivals", "realized volatility per regime", "passive fills"):
        assert s in r.stdout


@pytest.mark.parametrize("case", ["missing", "wrong_source", "unknown_source", "truncated"])
def test_inspect_bad_input_is_one_clear_line(tmp_path, case):
    if case == "missing":
        args, expect = ["--source", "lobster", str(tmp_path / "nope.zip")], "nope.zip"
    elif case == "wrong_source":
        f = tmp_path / "ws.gz"
        with gzip.open(f, "wt") as fh:
            fh.write('1723161255088176367 {"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,'
                     '"s":"BTCUSDT","t":5,"p":"1.0","q":"0.1","X":"MARKET","m":false}}\n')
        args, expect = ["--source", "lobster", str(f)], "binance"
    elif case == "unknown_source":
        args, expect = ["--source", "nasdaq", str(tmp_path)], "unknown source"
    else:
        f = tmp_path / "trades_BTC.csv.gz"
        raw = gzip.compress(b"timestamp,price,size,side,trade_id,exchange_timestamp\n" * 200)
        f.write_bytes(raw[: len(raw) // 2])
        args, expect = ["--source", "hyperliquid", str(tmp_path), "--asset", "BTC"], "trades_BTC"
    r = _run("data", "inspect", *args)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("mmcal: error")]
    assert len(lines) == 1 and expect in lines[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_json_stdout_is_only_json_in_a_real_process(tmp_path):
    """Logs and progress go to stderr: stdout parses as one JSON document."""
    out = tmp_path / "m"
    p = subprocess.run([sys.executable, "-m", "flows.cli", "simulate", "--out", str(out),
                        "--duration", "300", "--json"], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr
    json.loads(p.stdout)
    assert "simulating" in p.stderr


def test_real_data_inspect_lobster(shared_data):
    f = shared_data / "lobster" / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip"
    r = _run("data", "inspect", "--source", "lobster", str(f), "--json")
    assert r.exit_code == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["rows"]["trades"] == 23658          # visible executions, counted independently in tests/data
    assert 0.5 < s["mean_spread_bps"] < 10       # AAPL at ~$580 with a few-cent spread
    assert s["mid_moves"]["suggested_rv_sample_seconds"] == 1.0   # the mid moves in ~50 % of the 1 s intervals


def test_quote_prints_a_ladder_from_a_bundle(tmp_path):
    from mm_runtime import dump_bundle, example_bundle

    b = tmp_path / "b.json"
    dump_bundle(example_bundle("SYN"), b)
    r = _run("quote", "--priors", str(b), "--mid", "100", "--sigma", "0.5", "--position", "1", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    rows = doc["ladder"]
    assert {x["side"] for x in rows} == {"bid", "ask"}
    for x in rows:
        assert x["size"] >= 0 and x["p_fill"] <= 1
        assert (x["price"] < 100) if x["side"] == "bid" else (x["price"] > 100)
    human = _run("quote", "--priors", str(b), "--mid", "100")
    assert human.exit_code == 0 and "P_fill" in human.stdout


@pytest.mark.parametrize("args,expect", [
    (["--mid", "nan"], "--mid"),
    (["--mid", "-1"], "--mid"),
    (["--mid", "100", "--sigma", "inf"], "--sigma"),
])
def test_quote_bad_numbers(tmp_path, args, expect):
    from mm_runtime import dump_bundle, example_bundle

    b = tmp_path / "b.json"
    dump_bundle(example_bundle("SYN"), b)
    r = _run("quote", "--priors", str(b), *args)
    assert r.exit_code == 2 and expect in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args,flag", [
    (["--levels", "0"], "--levels"),
    (["--gamma", "-1"], "--gamma"),
    (["--leverage", "0"], "--leverage"),
    (["--fee-bps", "nan"], "--fee-bps"),
    (["--sigma", "-1"], "--sigma"),    # not quietly the bundle's sigma: 0 asks for that
    (["--margin", "-5"], "--margin"),
])
def test_quote_bad_option_is_one_line_naming_the_flag(tmp_path, args, flag):
    """A value the quoter's config refuses is one line naming the flag, not a dump of
    the config class's validation errors; a negative sigma is refused."""
    from mm_runtime import dump_bundle, example_bundle

    b = tmp_path / "b.json"
    dump_bundle(example_bundle("SYN"), b)
    r = _run("quote", "--priors", str(b), "--mid", "100", *args)
    assert r.exit_code == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mmcal: error: {flag}: "), r.stderr
    assert "Config" not in r.stderr and "pydantic" not in r.stderr and args[1] in lines[0]


def _cli_commands():
    """Every command path of the app (typer's click: groups have ``commands``)."""
    import typer.main

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs is None:
            yield path
            return
        yield path
        for name, sub in subs.items():
            yield from walk(sub, path + [name])

    return list(walk(typer.main.get_command(app), []))


def test_quote_table_never_cuts_a_number(tmp_path, monkeypatch):
    """P_fill 1e-39 printed whole (not '1.024…', which reads as 1), prices and sizes
    too: in redirected output (80 columns by default) and on an 80-column terminal
    (headers wrap, cells stay whole)."""
    import io

    from rich.console import Console

    from flows.cli import render
    from mm_runtime import dump_bundle, example_bundle

    b = tmp_path / "b.json"
    dump_bundle(example_bundle("SYN"), b)
    args = ["quote", "--priors", str(b), "--mid", "4299.7", "--sigma", "0.3"]
    doc = json.loads(_run(*args, "--json").stdout)
    cells = {render._fmt(x[k]) for x in doc["ladder"] for k in ("price", "size", "p_fill", "depth_bps", "edge_bps")}
    assert any("e-" in c for c in cells)                       # a P_fill far below 1e-3
    r = _run(*args)
    assert r.exit_code == 0 and "…" not in r.stdout
    assert all(c in r.stdout for c in cells), sorted(c for c in cells if c not in r.stdout)
    term = io.StringIO()
    monkeypatch.setattr(render, "out", Console(file=term, width=80, force_terminal=True, color_system=None))
    assert _run(*args).exit_code == 0
    text = term.getvalue()
    assert "…" not in text and max(len(ln) for ln in text.splitlines()) <= 80
    assert all(c in text for c in cells), sorted(c for c in cells if c not in text)


def test_help_shows_every_option_name_whole():
    """--help on an 80-column console: no option name is cut ('--max-prior-streng…'),
    nor any help text."""
    for path in _cli_commands():
        r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
        assert r.exit_code == 0, (path, r.output)
        assert "…" not in r.stdout, (path, [ln for ln in r.stdout.splitlines() if "…" in ln])
    r = runner.invoke(app, ["calibrate", "--help"], env={"COLUMNS": "80"})
    for opt in ("--max-prior-strength", "--volatility-estimator", "--informed-threshold", "--parallel-assets"):
        assert opt in r.stdout, opt


def test_quote_tampered_bundle_names_the_problem(tmp_path):
    from mm_runtime import dump_bundle, example_bundle

    b = tmp_path / "b.json"
    dump_bundle(example_bundle("SYN"), b)
    doc = json.loads(b.read_text())
    doc["params"]["kappa"]["low"]["buy"]["rate"] = 1.2345
    b.write_text(json.dumps(doc))
    r = _run("quote", "--priors", str(b), "--mid", "100")
    assert r.exit_code == 2 and "checksum" in r.stderr


def test_inspect_queue_orders_where_the_data_have_books(shared_data, tmp_path):
    """LOBSTER: the exact FIFO table by level and queue bucket; the synthetic market:
    its own queue orders (drawn from the true fill process)."""
    f = shared_data / "lobster" / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip"
    r = _run("data", "inspect", "--source", "lobster", str(f), "--json")
    assert r.exit_code == 0, r.stderr
    q = json.loads(r.stdout)["queue_orders"]
    assert q["available"] and q["method"] == "fifo" and q["queue_levels"] == 3
    assert {row["level"] for row in q["table"]} == {0}          # a 1-level file covers the touch only
    assert sum(row["orders"] for row in q["table"]) == q["orders"] > 40_000
    assert all(0 <= row["fill_prob"] <= 1 for row in q["table"])
    assert all(f"markout_bps@{h:g}s" in q["table"][0] for h in (0.5, 1, 5, 30))
    out = tmp_path / "m"
    _run("simulate", "--out", str(out), "--duration", "300")
    r = _run("data", "inspect", "--source", "synthetic", str(out), "--json")
    assert r.exit_code == 0, r.stderr
    q = json.loads(r.stdout)["queue_orders"]   # the synthetic market's own queue orders (its true process)
    assert q["available"] and q["method"] == "synthetic" and q["orders"] > 0


def test_queue_observation_flags():
    from flows.cli.app import CliError
    from flows.cli.options import observation_settings

    s = observation_settings(queue_levels=5, markout_horizons="0.5, 2,10", queue_power=1.5)
    assert s == {"queue_levels": 5, "markout_horizons_s": (0.5, 2.0, 10.0), "queue_power": 1.5}
    for kw, flag in (({"queue_levels": -1}, "--queue-levels"), ({"markout_horizons": "5,1"}, "--markout-horizons"),
                     ({"markout_horizons": "1,x"}, "--markout-horizons"), ({"queue_power": 0}, "--queue-power"),
                     ({"rv_sample_seconds": 0.3}, "--rv-sample-seconds"), ({"rv_sample_seconds": -1}, "--rv-sample-seconds")):
        with pytest.raises(CliError, match=f"^{flag}: "):
            observation_settings(**kw)
    for cmd in ("fit", "calibrate"):
        h = _run(cmd, "--help").stdout
        assert all(f in h for f in ("--queue-levels", "--markout-horizons", "--queue-power", "--rv-sample-seconds")), cmd
    assert observation_settings(rv_sample_seconds=0.1) == {"rv_sample_seconds": 0.1}


def test_schedules_accept_the_queue_keys(tmp_path):
    from flows.schedules import ScheduleConfigError, load_config

    base = ('[[calibrate]]\nasset = "SYN"\nsource = "synthetic"\npath = "m"\n'
            '[calibrate.observation]\nqueue_levels = 2\nmarkout_horizons_s = [1, 5]\nqueue_power = 3.0\n')
    f = tmp_path / "schedules.toml"
    f.write_text(base)
    cfg = load_config(f, check_paths=False)
    assert cfg.calibrate[0].observation == {"queue_levels": 2, "markout_horizons_s": [1, 5], "queue_power": 3.0}
    f.write_text(base.replace("queue_power = 3.0", "queue_power = -1"))
    with pytest.raises(ScheduleConfigError, match="queue_power"):
        load_config(f, check_paths=False)


def test_fit_report_prints_the_regime_state_durations_and_their_warning(monkeypatch):
    """`mmcal fit --model regime` prints each state's expected duration and the gate's
    warning for a state that does not persist (the doc as fit_one writes it)."""
    import io

    from rich.console import Console

    from flows.cli import render
    from models.sampling import gate

    diag = {"r_hat_max": 1.002, "r_hat_worst": "x", "ess_bulk_min": 900.0, "ess_tail_min": 800.0, "divergences": 0,
            "bfmi_min": 0.9, "chains": 4, "draws": 1000, "per_param": {}, "loo_note": "not computed here",
            "regime_duration_bars_low": 2.27, "regime_duration_bars_normal": 2.06,
            "regime_duration_bars_high": 10.1, "regime_duration_bars_extreme": 37.1,
            "regime_duration_bars_min": 2.06, "regime_duration_bars_worst": "normal"}
    doc = {"model": "regime", "asset": "SYN", "source": "synthetic", "n_obs": 2160, "obs_unit": "volatility bars",
           "regimes": None, "sampler": {"sampler": "nutpie", "chains": 4, "draws": 1000, "wall_s": 150.0},
           "parameters": {}, "diagnostics": diag, "gate": gate(diag).as_dict(), "model_version": "regime-x"}
    term = io.StringIO()
    monkeypatch.setattr(render, "out", Console(file=term, width=200, color_system=None))
    render.render_fit(doc)
    text = term.getvalue()
    assert "expected state durations low / normal / high / extreme: 2.3 / 2.1 / 10.1 / 37.1 bars" in text
    assert "warning: regime state normal lasts 2.1 bars on average (< 2.5)" in text
