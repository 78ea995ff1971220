"""The metrics endpoint's address (issue 19 item 6): loopback by default,
``mmcal live --metrics-addr`` for a Prometheus server elsewhere; the flag parses,
binds, and a bad or foreign address is one line naming it."""

from __future__ import annotations

import json
import urllib.request

from typer.testing import CliRunner

from mm_runtime import dump_bundle, example_bundle
from mm_runtime.live import LiveRunner


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def test_runner_binds_loopback_by_default_and_the_address_given(tmp_path):
    bundle = dump_bundle(example_bundle("BTC"), tmp_path / "BTC.json")
    r = LiveRunner(bundle, market_clock=True)
    port = r.serve_metrics(0)
    assert r.metrics_server.server_address[0] == "127.0.0.1" and "mm_bundle_info" in _scrape(port)
    r.metrics_server.shutdown()
    r2 = LiveRunner(bundle, market_clock=True)
    port = r2.serve_metrics(0, "0.0.0.0")  # every interface: reachable on loopback too
    assert r2.metrics_server.server_address[0] == "0.0.0.0" and "mm_bundle_info" in _scrape(port)
    r2.metrics_server.shutdown()


def test_mmcal_live_metrics_addr_parses_and_binds(tmp_path):
    from flows.cli import app

    run = CliRunner()
    market = tmp_path / "m"
    assert run.invoke(app, ["simulate", "--out", str(market), "--seed", "2", "--duration", "30"]).exit_code == 0
    priors = dump_bundle(example_bundle("SYN"), tmp_path / "SYN.json")
    base = ["live", "--asset", "SYN", "--priors", str(priors), "--no-low-latency"]
    r = run.invoke(app, base + ["--feed", "replay", "--source", "synthetic", "--data", str(market), "--speed", "0",
                                "--metrics-port", "0", "--metrics-addr", "0.0.0.0", "--json"])
    assert r.exit_code == 0, r.stderr[-2000:]
    served = [json.loads(x) for x in r.stderr.splitlines() if x.startswith("{") and '"metrics served"' in x]
    assert len(served) == 1 and served[0]["url"].startswith("http://0.0.0.0:")
    # a malformed address, and one that is not this host's (TEST-NET-1, RFC 5737): one line naming the flag
    for addr, msg in (("not an address!", "--metrics-addr: not an IP address or host name"),
                      ("192.0.2.1", "--metrics-addr: cannot listen on 192.0.2.1:")):
        r = run.invoke(app, base + ["--feed", "hyperliquid", "--metrics-port", "0", "--metrics-addr", addr])
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.exit_code == 2 and msg in lines[-1] and "Traceback" not in r.stderr, r.stderr[-2000:]
