"""Schedules (flows/schedules.py): the deployments built from a schedules file
(names, cron, timezone, parameters) without serving anything, bad files named by
file and field, ``mmcal serve --check``, and that ``serve`` hands every deployment
to a Prefect runner. Fixtures: tests/flows/conftest.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GOOD = """
timezone = "Europe/London"

[[calibrate]]
asset = "SYN"
source = "synthetic"
path = "market"
cron = "30 3 * * *"
window = "0:0.7"
z = 1.5
[calibrate.sampler]
sampler = "pymc"
draws = 150
chains = 2
[calibrate.sampler_overrides.regime]
sampler = "nutpie"
[calibrate.gate]
max_r_hat = 1.5

[[calibrate]]
asset = "BTC"
source = "hyperliquid"
path = "ABS_DATA/hl/btc"
"""


def _write(tmp_path: Path, text: str) -> Path:
    """The schedules file in tmp_path, with the data folders its entries name
    (``ABS_DATA`` = an absolute path under tmp_path); load_config checks they exist."""
    p = tmp_path / "schedules.toml"
    p.write_text(text.replace("ABS_DATA", str(tmp_path / "data")))
    for d in ("market", "m", "n", "data/hl/btc"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    return p


def test_deployments_from_the_config(tmp_path):
    from flows.schedules import DEFAULT_CRON, build_deployments

    deps = build_deployments(_write(tmp_path, GOOD))
    assert [d.name for d in deps] == ["calibrate-SYN", "calibrate-BTC"]
    assert {d.flow_name for d in deps} == {"scheduled-calibration"}
    assert all(d.entrypoint == "flows/schedules.py:scheduled_calibration" for d in deps)
    syn, btc = deps
    crons = [(d.schedules[0].schedule.cron, d.schedules[0].schedule.timezone) for d in deps]
    assert crons == [("30 3 * * *", "Europe/London"), (DEFAULT_CRON, "Europe/London")]
    p = syn.parameters
    assert p["asset"] == "SYN" and p["source"] == "synthetic" and p["window"] == "0:0.7" and p["z"] == 1.5
    assert p["path"] == str((tmp_path / "market").resolve())        # relative to the file's folder
    assert p["sampler"]["draws"] == 150 and p["sampler"]["chains"] == 2 and p["gate"]["max_r_hat"] == 1.5
    assert btc.parameters["path"] == str(tmp_path / "data/hl/btc") and btc.parameters["window"] == "0:0.8"
    assert p["sampler_overrides"] == {"regime": {"sampler": "nutpie"}}       # only the fields given
    assert btc.parameters["sampler"] == {} and btc.parameters["promote"] is True
    assert btc.parameters["sampler_overrides"] == {}
    assert "SYN" in syn.tags
    # the parameters satisfy the flow's own schema (enforced when a run is created)
    from prefect.utilities.callables import parameter_schema

    from flows.schedules import scheduled_calibration
    assert set(p) <= set(parameter_schema(scheduled_calibration).properties)


def test_the_repository_example_is_valid():
    """Valid but for its data path, which `mmcal demo` writes (absent on a fresh clone)."""
    from flows.schedules import build_deployments, load_config

    root = Path(__file__).resolve().parents[2]
    deps = build_deployments(load_config(root / "schedules.toml", check_paths=False))
    assert deps and deps[0].parameters["source"] == "synthetic"
    assert deps[0].parameters["path"] == str(root / "artifacts" / "demo" / "market")


@pytest.mark.parametrize("entry, problem", [
    ('path = "nowhere"', "calibrate[2].path: no such file or directory: {tmp}/nowhere ('nowhere' from the "
                         "schedules file's folder)"),
    ('path = "ABS_DATA/gone"', "calibrate[2].path: no such file or directory: {tmp}/data/gone"),
    ('path = "binance.gz"', "calibrate[2].path: {tmp}/binance.gz: looks like a binance websocket capture, "
                            "not synthetic ('binance.gz' from the schedules file's folder)"),
])
def test_serve_check_refuses_a_data_path_that_cannot_be_the_data(tmp_path, entry, problem):
    """`mmcal serve --check` (and serving) refuses an entry whose data path does not
    exist or has another source's format: one line naming the file, the entry and
    field, and the problem (it passed, and the failure showed only at the cron time)."""
    import gzip

    from typer.testing import CliRunner

    from flows.cli import app

    (tmp_path / "binance.gz").write_bytes(gzip.compress(b'1 {"stream": "btcusdt@trade", "data": {}}\n'))
    text = GOOD.replace('path = "ABS_DATA/hl/btc"', 'path = "ABS_DATA/hl/btc"\n\n[[calibrate]]\nasset = "ETH"\n'
                        f'source = "synthetic"\n{entry}')
    p = _write(tmp_path, text)
    for args in (["--check"], ["--check", "--json"], []):
        r = CliRunner().invoke(app, ["serve", "--config", str(p), *args])
        assert r.exit_code == 2, r.output
        assert r.stdout == "" and r.stderr == f"mmcal: error: {p}: {problem.format(tmp=tmp_path)}\n", r.stderr


@pytest.mark.parametrize("text, where", [
    ('[[calibrate]]\nasset = "SYN"\nsource = "synthetic"\npath = "m"\ncron = "61 * * * *"\n', "calibrate[0].cron"),
    ('[[calibrate]]\nasset = "SYN"\nsource = "csv"\npath = "m"\n', "calibrate[0].source"),
    ('[[calibrate]]\nasset = "SYN"\nsource = "synthetic"\n', "calibrate[0].path"),
    ('[[calibrate]]\nasset = "SYN"\nsource = "synthetic"\npath = "m"\nwindow = "0.9:0.1"\n', "calibrate[0].window"),
    ('[[calibrate]]\nasset = "SYN"\nsource = "synthetic"\npath = "m"\ncrn = "0 2 * * *"\n', "calibrate[0].crn"),
    ('[[calibrate]]\nasset = "SYN"\nsource = "synthetic"\npath = "m"\n[calibrate.sampler]\ndraws = -1\n',
     "calibrate[0].sampler"),
    ('[[calibrate]]\nasset = "SYN"\nsource = "synthetic"\npath = "m"\n[calibrate.sampler_overrides.vol]\n'
     'sampler = "nutpie"\n', "calibrate[0].sampler_overrides: unknown model 'vol'"),
    ('[[calibrate]]\nasset = "SYN"\nsource = "synthetic"\npath = "m"\n[calibrate.sampler_overrides.regime]\n'
     'sampler = "stan"\n', "calibrate[0].sampler_overrides: regime.sampler"),
    ('timezone = "Mars/Olympus"\n[[calibrate]]\nasset = "SYN"\nsource = "synthetic"\npath = "m"\n', "timezone"),
    ('timezone = "UTC"\n', "calibrate"),
    ('[[calibrate]]\nasset = "SYN"\nsource = "synthetic"\npath = "m"\n'
     '[[calibrate]]\nasset = "syn"\nsource = "synthetic"\npath = "n"\n', "scheduled twice"),
    ("[[calibrate]\n", "not valid TOML"),
])
def test_a_bad_config_names_file_and_field(tmp_path, text, where):
    from flows.schedules import ScheduleConfigError, load_config

    p = _write(tmp_path, text)
    with pytest.raises(ScheduleConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: ") and where in msg and "\n" not in msg, msg


def test_a_missing_config(tmp_path):
    from flows.schedules import ScheduleConfigError, load_config

    with pytest.raises(ScheduleConfigError, match="no such schedules file"):
        load_config(tmp_path / "nope.toml")


def test_serve_check_lists_the_deployments(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    r = CliRunner().invoke(app, ["serve", "--config", str(_write(tmp_path, GOOD)), "--check", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [d["deployment"] for d in doc["deployments"]] == ["scheduled-calibration/calibrate-SYN",
                                                             "scheduled-calibration/calibrate-BTC"]
    assert doc["deployments"][0]["cron"] == "30 3 * * *"


def test_serve_bad_config_is_one_line_exit_2(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    p = _write(tmp_path, '[[calibrate]]\nasset = "SYN"\nsource = "synthetic"\npath = "m"\ncron = "every day"\n')
    r = CliRunner().invoke(app, ["serve", "--config", str(p)])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmcal: error: ") and "calibrate[0].cron" in lines[0]


def test_serve_hands_the_deployments_to_a_prefect_runner(tmp_path, monkeypatch):
    """``mmcal serve`` adds every deployment to one Prefect runner (with ``--limit``)
    and runs it until signalled (both patched here: the real runner registers them
    and runs until interrupted; tests/flows/test_serve.py serves for real)."""
    import prefect.runner

    from typer.testing import CliRunner

    import flows.schedules as S
    from flows.cli import app

    got = {"deps": []}

    class FakeRunner:
        def __init__(self, **kw):
            got["kw"] = kw

        def add_deployment(self, d):
            got["deps"].append(d)

    async def run(runner):
        got["ran"] = runner

    monkeypatch.setattr(prefect.runner, "Runner", FakeRunner)
    monkeypatch.setattr(S, "_run_until_signalled", run)
    r = CliRunner().invoke(app, ["serve", "--config", str(_write(tmp_path, GOOD)), "--limit", "2"])
    assert r.exit_code == 0, r.output
    assert [d.name for d in got["deps"]] == ["calibrate-SYN", "calibrate-BTC"] and got["kw"]["limit"] == 2
    assert got["kw"]["pause_on_shutdown"] is True and isinstance(got["ran"], FakeRunner)
