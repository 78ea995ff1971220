"""`mmcal paper`: the replay A/B with its report, the Avellaneda-Stoikov mode, and
clear errors (DESIGN.md section 8)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app
from mm_runtime import dump_bundle, example_bundle

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper") / "m"
    r = _run("simulate", "--out", str(out), "--seed", "5", "--duration", "900")
    assert r.exit_code == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def priors(tmp_path_factory):
    return dump_bundle(example_bundle("SYN"), tmp_path_factory.mktemp("b") / "SYN.json")


def test_replay_ab_writes_a_report_and_one_json_document(market, priors, tmp_path):
    rep = tmp_path / "report"
    r = _run("paper", str(market), "--source", "synthetic", "--priors", str(priors), "--configs", "static,learned",
             "--window", "0.4:1", "--block-s", "60", "--fee-bps", "0.5", "--out", str(rep), "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [row["config"] for row in doc["table"]] == ["static", "learned"]
    assert doc["window"] == "0.4:1" and doc["paired"]["learned"]["blocks"] >= 8
    assert all(doc["summaries"][c]["fills"] > 0 for c in ("static", "learned"))
    assert doc["summaries"]["static"]["fees"] > 0
    names = {p.name for p in rep.iterdir()}
    assert {"index.html", "equity.png", "inventory.png", "markouts.png", "ladder.png", "blocks.png", "ab.json"} <= names
    page = (rep / "index.html").read_text()
    assert "Paired comparison against static" in page and "<img" in page
    assert json.loads((rep / "ab.json").read_text())["table"] == doc["table"]


def test_avellaneda_stoikov_mode_prints_the_papers_rows():
    r = _run("paper", "--market", "avellaneda-stoikov", "--gamma", "0.1", "--strategy", "inventory",
             "--paths", "500", "--seed", "2", "--json")
    assert r.exit_code == 0, r.stderr
    rows = json.loads(r.stdout)["rows"]
    assert len(rows) == 1 and rows[0]["n_paths"] == 500
    assert rows[0]["paper"]["profit_mean"] == 62.94 and abs(rows[0]["z"]["profit_mean"]) < 4
    r = _run("paper", "--market", "avellaneda-stoikov", "--gamma", "0.5", "--paths", "100")
    assert r.exit_code == 0 and "inventory" in r.stdout and "symmetric" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [(["--market", "avellaneda-stoikov", "--strategy", "greedy"], "--strategy"),
     (["--market", "avellaneda-stoikov", "--gamma", "-1"], "gamma"),
     (["--market", "nasdaq"], "--market"),
     ([], "give PATH and --source"),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--configs", "static,foo"], "--configs"),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--window", "0.9:0.1"], "--window"),
     (["{market}", "--source", "synthetic", "--priors", "{market}/truth.json"], "truth.json"),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--queue-factor", "2"], "--queue-factor: "),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--queue-model", "none", "--queue-factor",
       "0.5"], "--queue-factor: "),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--latency-s", "-1"], "--latency-s: "),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--refresh-s", "0"], "--refresh-s: "),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--block-s", "0"], "--block-s: "),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--tick-size", "-1"], "--tick-size: "),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--fee-bps", "nan"], "--fee-bps: "),
     (["{market}", "--source", "synthetic", "--priors", "{priors}", "--max-position-notional", "inf"],
      "--max-position-notional: ")],
)
def test_bad_input_is_one_clear_line_and_exit_2(market, priors, args, message, tmp_path):
    """One line naming the flag (no dump of the replay config's validation errors), exit
    2, no report written (a NaN fee used to run a replay in which nothing quotes)."""
    args = [a.format(market=market, priors=priors) for a in args]
    r = _run("paper", *args, "--out", str(tmp_path / "report"))
    assert r.exit_code == 2, r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("mmcal: ")]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr and "Config" not in r.stderr and "validation error" not in r.stderr
    assert not (tmp_path / "report").exists()


def test_bundle_for_another_asset_is_refused(market, tmp_path):
    other = dump_bundle(example_bundle("ETH"), tmp_path / "ETH.json")
    r = _run("paper", str(market), "--source", "synthetic", "--priors", str(other))
    assert r.exit_code == 2 and "ETH" in r.stderr


def test_a_quoter_that_never_quotes_says_why_in_the_table_and_the_report(market, tmp_path):
    """A calibrated bundle with spread capture c = -0.13: its configuration never
    quotes, and the console table and the report say so, with the reason."""
    from mm_runtime.bundle import PriorBundle, with_checksum

    doc = example_bundle("SYN").model_dump(mode="json")
    doc["params"]["spread_capture"] = {"family": "normal", "mu": -0.13, "sigma": 0.02}
    doc["checksum"] = ""
    neg = dump_bundle(with_checksum(PriorBundle.model_validate(doc)), tmp_path / "SYN.json")
    rep = tmp_path / "report"
    r = _run("paper", str(market), "--source", "synthetic", "--priors", str(neg), "--configs", "static,bundle",
             "--window", "0.8:1", "--out", str(rep))
    assert r.exit_code == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("bundle:"))
    assert "never quoted" in line and "no positive Kelly edge at any level: spread capture -0.13" in line
    row = next(ln for ln in r.stdout.splitlines() if ln.strip("│ ").startswith("bundle "))
    assert "never" in row  # the table's "quoted" cell
    # the no-quote reasons with their counts: a table in the console and in the report
    out = r.stdout
    assert "refreshes with no quote" in out
    reason = next(ln for ln in out[out.index("refreshes with no quote"):].splitlines()
                  if "no positive Kelly edge" in ln)
    assert reason.strip("│ ").startswith("bundle") and "100.0%" in reason
    page = (rep / "index.html").read_text()
    assert "bundle never quoted" in page and "spread capture -0.13" in page
    assert "<h2>Refreshes with no quote</h2>" in page
    doc = json.loads((rep / "ab.json").read_text())
    rows = [x for x in doc["no_quote"] if x["config"] == "bundle"]
    n = doc["summaries"]["bundle"]["refreshes"]
    assert rows[0]["refreshes"] == n and rows[0]["share"] == 1.0 and sum(x["refreshes"] for x in rows) == n
    assert f"<td class=num>{n}</td><td class=num>100.0%</td>" in page


def test_default_blocks_give_at_least_ten_and_fewer_are_called_too_few(market, priors, tmp_path):
    base = ["paper", str(market), "--source", "synthetic", "--priors", str(priors), "--window", "0.8:1"]
    r = _run(*base, "--out", str(tmp_path / "a"), "--json")
    assert r.exit_code == 0, r.stderr
    p = json.loads(r.stdout)["paired"]["learned"]
    assert p["blocks"] >= 10 and p["note"] is None
    r = _run(*base, "--block-s", "60", "--out", str(tmp_path / "b"))
    assert r.exit_code == 0, r.stderr
    assert "only 3 blocks of 60 s: too few for the comparison to mean anything" in r.stdout
    assert "too few for the comparison to mean anything" in (tmp_path / "b" / "index.html").read_text()


def test_report_tables_scroll_instead_of_clipping_with_headers_in_words(market, priors, tmp_path):
    """Every table of the report sits in a box that scrolls sideways when wider than
    the page (the page is 1100 px wide; a wide table is never clipped), its headers
    are words that may wrap, and its numbers never wrap or get cut."""
    import re

    rep = tmp_path / "report"
    r = _run("paper", str(market), "--source", "synthetic", "--priors", str(priors), "--window", "0.8:1",
             "--out", str(rep), "--json")
    assert r.exit_code == 0, r.stderr
    page = (rep / "index.html").read_text()
    css = page[page.index("<style>"):page.index("</style>")]
    assert ".wide{max-width:100%;overflow-x:auto" in css and "td.num{white-space:nowrap}" in css
    tables = re.findall(r"(.{0,16})<table>", page)
    assert len(tables) >= 4 and all(t.endswith("<div class=wide>") for t in tables)
    headers = re.findall(r"<th>(.*?)</th>", page)
    assert "Sharpe per day" in headers and "max |inventory|" in headers
    assert not [h for h in headers if "_" in h]
    cells = re.findall(r"<td class=(\w+)>([^<]*)</td>", page)
    assert cells and all(cls == "num" for cls, v in cells if re.fullmatch(r"[-+]?[\d,.]+(e[-+]?\d+)?", v))


def test_report_time_axes_are_clock_time(market, priors):
    """The equity, inventory, ladder and block figures show UTC clock times (HH:MM:SS
    under 20 minutes), not fractions of an hour."""
    import re

    import matplotlib.pyplot as plt

    from mm_runtime import load_bundle
    from mm_runtime.paper.compare import run_ab
    from mm_runtime.paper.replay import ReplayConfig
    from models.data.loaders import load, replay_data
    from models.paper_report import _fig_blocks, _fig_ladder, _fig_series

    d = replay_data(load("synthetic", market))
    d = d.window(d.end - 300.0, d.end + 1.0)
    ab = run_ab(d, load_bundle(priors), ("static", "learned"), ReplayConfig())
    figs = (_fig_series(ab["results"], "equity", "PnL", "Equity"), _fig_ladder(ab["results"]), _fig_blocks(ab))
    for fig in figs:
        ax = fig.axes[-1]
        fig.canvas.draw()
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert len(labels) >= 3 and all(re.fullmatch(r"\d\d:\d\d:\d\d", x) for x in labels), labels
        assert "UTC" in ax.get_xlabel()
        plt.close(fig)
