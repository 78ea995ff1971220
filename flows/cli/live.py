"""``mmcal live``: the quoter in real time on a feed (mm_runtime.live)."""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from flows.cli.app import SOURCES, CliError, emit_json, guarded, live_app, stage
from flows.cli.options import check_choice, guard_config, guard_options
from flows.fitting import read_market

LIVE_FEEDS = ("replay", "hyperliquid")
_GUARDS = guard_options()


@live_app.command("run")
def live(
    asset: str = typer.Option(..., "--asset", help="Asset to quote (the bundle's; the Hyperliquid coin)."),
    priors: Path = typer.Option(..., "--priors", help="Deployed bundle (JSON); watched and hot-reloaded."),
    feed: str = typer.Option(..., "--feed", help=f"{' | '.join(LIVE_FEEDS)}"),
    metrics_port: Optional[int] = typer.Option(None, "--metrics-port", help="Serve Prometheus metrics on "
                                               "--metrics-addr:PORT (0 = a free port, logged; default: none)."),
    metrics_addr: str = typer.Option("127.0.0.1", "--metrics-addr", help="Address the metrics endpoint binds "
                                     "(default loopback; e.g. 0.0.0.0 or this host's address for a Prometheus "
                                     "server elsewhere)."),
    state: Optional[Path] = typer.Option(None, "--state", help="State file, restored at start and saved "
                                         "atomically at shutdown (default: ASSET.state.json beside PRIORS)."),
    low_latency_cpu: bool = typer.Option(True, "--low-latency/--no-low-latency", help="Single-threaded XLA CPU "
                                         "client, synchronous dispatch, the quote step compiled as one XLA "
                                         "kernel (a dedicated quoter process)."),
    journal: Optional[Path] = typer.Option(None, "--journal", help="Session journal (JSON lines: every paper fill, "
                                           "ladder and reload with its feed time; appended), what `mmcal paper "
                                           "--reconcile STATE` reads (default: ASSET.journal.jsonl beside the state)."),
    fresh_state: bool = typer.Option(False, "--fresh-state", help="Start from the priors when the state file "
                                     "cannot be restored (corrupt, another asset or layout), moving it aside to "
                                     "NAME.corrupt-TIME; without it such a file stops the start."),
    params_state: Optional[Path] = typer.Option(None, "--params-state", help="Learned-parameter registry state "
                                                "(from `mmcal params calibrate --state`): published as "
                                                "mm_learned_<name> gauges and logged every minute."),
    speed: float = typer.Option(1.0, "--speed", help="Replay: market seconds per wall second (0 or inf = "
                                "as fast as possible)."),
    source: Optional[str] = typer.Option(None, "--source", help=f"Replay: {' | '.join(SOURCES)}"),
    data: Optional[Path] = typer.Option(None, "--data", help="Replay: the market data file or folder."),
    url: str = typer.Option("wss://api.hyperliquid.xyz/ws", "--url", help="Hyperliquid: websocket URL."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many wall seconds."),
    refresh_s: float = typer.Option(1.0, "--refresh-s", help="Publish (and log) a ladder at most this often, s."),
    capital: float = typer.Option(100_000.0, "--capital", help="Paper account capital, quote currency."),
    fee_bps: float = typer.Option(0.0, "--fee-bps", help="Maker fee in bps of notional (negative = rebate)."),
    no_fills: bool = typer.Option(False, "--no-fills", help="No paper fills: position 0, margin = capital."),
    queue_fills: bool = typer.Option(False, "--queue-fills", help="Tick ladder: paper fills also at our own price "
                                     "when a print reaches our estimated queue place (docs/runtime/queue_live.md)."),
    checkpoint_s: float = typer.Option(300.0, "--checkpoint-s", help="Also save the state this often while "
                                       "running, wall seconds (0 = only at shutdown)."),
    as_json: bool = typer.Option(False, "--json", help="At exit, print one JSON summary on stdout."),
    max_daily_loss: Optional[str] = _GUARDS["max_daily_loss"],
    max_drawdown: Optional[str] = _GUARDS["max_drawdown"],
    max_position_hard: Optional[float] = _GUARDS["max_position_hard"],
    max_notional: Optional[float] = _GUARDS["max_notional"],
    stale_feed_s: Optional[float] = _GUARDS["stale_feed_s"],
    max_quote_rate: Optional[float] = _GUARDS["max_quote_rate"],
    no_guards: bool = _GUARDS["no_guards"],
):
    """Run the quoter in real time on a feed (a replay of recorded data, or the Hyperliquid websocket): hot-reload
    the deployed bundle, serve metrics, log each ladder (JSON lines on stderr), keep a paper account (no orders
    are sent), and save the online state every --checkpoint-s and on SIGTERM/SIGINT. The kill switch pulls every quote
    on a trip until `mmcal live reset` (docs/runtime/guards.md)."""

    def body():
        import asyncio

        from mm_runtime import BundleError, configure_low_latency_cpu, load_bundle
        from mm_runtime.bundle import lineage
        from mm_runtime.live import HyperliquidFeed, LiveConfig, LiveRunner, ReplayFeed, StateFileError
        from mm_runtime.logs import configure_json_logging
        from mm_runtime.signing import load_key, verify_bundle

        # a dedicated quoter process: JAX's CPU client single-threaded with synchronous
        # dispatch (mm_runtime.perf; the step's median ~84 -> ~29 us here); must come
        # before anything creates the backend
        low_latency = configure_low_latency_cpu() if low_latency_cpu else False

        check_choice("--feed", feed, LIVE_FEEDS)
        if feed == "replay":
            if source is None or data is None:
                raise CliError("--feed replay: give --source and --data")
            if math.isnan(speed) or speed < 0:
                raise CliError(f"--speed: must be >= 0 (0 or inf = as fast as possible), got {speed}")
        elif source is not None or data is not None:
            raise CliError("--source/--data: only with --feed replay")
        if feed == "hyperliquid" and not url.startswith(("ws://", "wss://")):
            raise CliError(f"--url: expected ws:// or wss://, got {url!r}")
        if metrics_port is not None and not 0 <= metrics_port <= 65535:
            raise CliError(f"--metrics-port: must be 0..65535, got {metrics_port}")
        if duration is not None and not (math.isfinite(duration) and duration > 0):
            raise CliError(f"--duration: must be a positive number of seconds, got {duration}")
        if not Path(priors).is_file():
            raise CliError(f"{priors}: no such file")
        try:
            key = load_key()  # MMCAL_BUNDLE_KEY / MMCAL_BUNDLE_KEY_FILE: only signed bundles go live
            bundle = load_bundle(priors)
            if key is not None:
                verify_bundle(bundle, priors, key)
        except BundleError as e:
            raise CliError(str(e)) from None
        if metrics_port is not None:
            _check_addr(metrics_addr)
        if bundle.asset != asset:
            raise CliError(f"--priors: the bundle is for {bundle.asset!r}, not --asset {asset!r}")
        guards = guard_config(max_daily_loss, max_drawdown, max_position_hard, max_notional, stale_feed_s,
                              max_quote_rate, no_guards)
        state_path = state if state is not None else Path(priors).with_name(f"{asset}.state.json")
        journal_path = journal if journal is not None else state_path.with_name(f"{asset}.journal.jsonl")
        folder = state_path.parent if str(state_path.parent) else Path(".")
        if not (folder.is_dir() and os.access(folder, os.W_OK)):
            raise CliError(f"--state: {state_path}: its folder does not exist or is not writable "
                           "(the state is saved there at shutdown)")
        try:
            live_cfg = LiveConfig(refresh_s=refresh_s, capital=capital, fee_bps=fee_bps, paper_fills=not no_fills,
                                  queue_fills=queue_fills, checkpoint_s=checkpoint_s if checkpoint_s != 0 else None)
        except ValueError as e:  # pydantic: name the option and the rule
            first = e.errors()[0] if hasattr(e, "errors") else {"loc": ("live",), "msg": str(e)}
            opt = "--" + str(first["loc"][0]).replace("_", "-")
            raise CliError(f"{opt}: {first['msg']}") from None

        if feed == "replay":
            from models.data.loaders import replay_data

            mkt = read_market(source, data, asset)
            if mkt.asset != asset:
                raise CliError(f"--asset: {data} holds {mkt.asset!r}, not {asset!r}")
            rd = replay_data(mkt)
            the_feed = ReplayFeed(rd, speed)
            stage(f"live: replaying {asset} ({source}), {len(rd.trade_ts):,} trades, {len(rd.quote_ts):,} quotes, "
                  f"{rd.end - rd.start:,.0f} s at {speed:g}x")
        else:
            the_feed = HyperliquidFeed(url, asset)
            stage(f"live: {asset} from {url}")
        stage(f"live: low-latency CPU mode {'on' if low_latency else 'off'}; bundle {lineage(bundle)}"
              + ("; signature checked" if key is not None else ""))

        # JSON lines on stderr for the runtime's records (not through the plain root handler as well)
        rt_log = logging.getLogger("mm_runtime")
        handler = configure_json_logging(level=rt_log.level or logging.INFO, stream=sys.stderr)
        propagate, rt_log.propagate = rt_log.propagate, False
        try:
            try:
                runner = LiveRunner(priors, live=live_cfg, state_path=state_path, params_state=params_state,
                                    fresh_state=fresh_state, market_clock=the_feed.market_clock, guards=guards,
                                    bundle_key=key, journal_path=journal_path)
            except StateFileError as e:  # its evidence is kept: a fresh start would overwrite it
                hint = "" if fresh_state else " (left as it is; --fresh-state moves it aside and starts fresh)"
                raise CliError(f"{e}{hint}") from None
            form = "one XLA kernel" if runner.quoter.one_kernel_step else "a multi-kernel XLA program"
            stage(f"live: quote step compiled as {form}")
            if metrics_port is not None:
                try:
                    runner.serve_metrics(metrics_port, metrics_addr)
                except OSError as e:
                    flag = "--metrics-port" if metrics_addr == "127.0.0.1" else "--metrics-addr"
                    raise CliError(f"{flag}: cannot listen on {metrics_addr}:{metrics_port}: "
                                   f"{e.strerror or e}") from None
            summary = asyncio.run(runner.run(the_feed, duration))
        finally:
            rt_log.removeHandler(handler)
            rt_log.propagate = propagate
        if as_json:
            emit_json(summary)
        else:
            stage(f"live: stopped ({summary['stopped']}): {summary['events']:,} events, {summary['ladders']:,} "
                  f"ladders, {summary['fills']} paper fills, position {summary['position']:.6g}, "
                  f"model {summary['model_version']}; state saved to {summary['state']}")
            if summary["kill_switch"]["triggered"]:
                stage(f"live: the kill switch is tripped ({summary['kill_switch']['reason']} at "
                      f"{summary['kill_switch']['at_utc']}): no quotes until `mmcal live reset --asset {asset} "
                      f"--state {state_path}`")

    guarded(body)


def _check_addr(addr: str) -> None:
    """``--metrics-addr``: an IPv4/IPv6 address or a host name (one line naming the flag otherwise)."""
    import ipaddress
    import re

    try:
        ipaddress.ip_address(addr)
        return
    except ValueError:
        pass
    if not re.fullmatch(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*",
                        addr):
        raise CliError(f"--metrics-addr: not an IP address or host name: {addr!r}")
