"""``mmcal paper``: paper trading, a replay of market data through the Quoter for several
configurations (mm_runtime.paper), or the Avellaneda-Stoikov (2008) synthetic market."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from flows.cli.app import SOURCES, CliError, app, emit_json, guarded, stage
from flows.cli.options import check_choice, check_window, guard_config, guard_options
from flows.cli.render import render_as, render_paper
from flows.fitting import read_market


QUEUE_MODELS = ("auto", "book", "factor", "none", "l3")
"""``mmcal paper --queue-model``: ``mm_runtime.paper.replay.ReplayConfig.queue_model``."""
_GUARDS = guard_options()


def _replay_bundle(priors: Optional[Path], asset: str):
    from mm_runtime import load_bundle

    if priors is not None:
        return load_bundle(priors), str(priors)
    from models import tracking

    try:
        bundle, version = tracking.load_registered_bundle(asset, alias="champion")
    except tracking.RegistryNotFound as e:
        raise CliError(f"--priors: not given, and no champion for {asset} ({e}); calibrate first "
                       "(mmcal calibrate) or pass --priors BUNDLE") from None
    return bundle, f"models:/{tracking.registered_model_name(asset)}@champion (version {version})"


def _journal_of(path: Path) -> Path:
    """The session journal of ``--reconcile PATH``: PATH itself (a ``.jsonl`` journal) or
    the one a live state file names."""
    import json

    if not path.is_file():
        raise CliError(f"--reconcile: {path}: no such file")
    if path.suffix == ".jsonl":
        return path
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CliError(f"--reconcile: {path}: not a live state file (invalid JSON: {e})") from None
    if not isinstance(doc, dict) or doc.get("kind") != "mm_runtime.live_state":
        raise CliError(f"--reconcile: {path}: not a live state file (kind {doc.get('kind') if isinstance(doc, dict) else None!r})")
    if not doc.get("journal"):
        raise CliError(f"--reconcile: {path}: the state names no session journal (saved by a runner without one; "
                       "pass the journal file itself)")
    j = Path(doc["journal"])
    if not j.is_file():
        raise CliError(f"--reconcile: {path}: its journal {j} does not exist")
    return j


@app.command()
def paper(
    path: Optional[Path] = typer.Argument(None, metavar="[path]", help="Market data to replay (not with --market)."),
    source: Optional[str] = typer.Option(None, "--source", help=f"{' | '.join(SOURCES)}"),
    asset: Optional[str] = typer.Option(None, "--asset", help="Asset, where the path holds several."),
    configs: str = typer.Option("static,learned,queue", "--configs", help="Comma-separated: static, learned, bundle, queue "
                                "(the first is the baseline of the paired comparison)."),
    priors: Optional[Path] = typer.Option(None, "--priors", help="Bundle file (default: the registered champion)."),
    window: Optional[str] = typer.Option(None, "--window", help="Replay window START:END (fractions or seconds), "
                                         "e.g. 0.5:1 to replay data the priors were not fitted on."),
    refresh_s: float = typer.Option(1.0, "--refresh-s", help="Quote refresh interval, s."),
    latency_s: float = typer.Option(0.05, "--latency-s", help="Order latency, s."),
    fee_bps: float = typer.Option(0.0, "--fee-bps", help="Maker fee in bps of notional (negative = rebate)."),
    queue_model: str = typer.Option("auto", "--queue-model", help="Fills at our price: auto (l3 where the data "
                                    "has order-level messages, book where it has L2 snapshots, else factor) | l3 "
                                    "(exact FIFO place from LOBSTER messages) | book (queue position from the book) | "
                                    "factor (--queue-factor x the print) | none (trade-through only)."),
    queue_factor: float = typer.Option(0.0, "--queue-factor", help="Share of a print at our price that fills us "
                                       "(--queue-model factor, and auto's fallback without books)."),
    tick_size: Optional[float] = typer.Option(None, "--tick-size", help="Price grid the quotes are rounded to "
                                              "(default: the data's tick, inferred from its prices; 0 = none)."),
    max_position_notional: float = typer.Option(20_000.0, "--max-position-notional", help="Position limit, notional."),
    block_s: Optional[float] = typer.Option(None, "--block-s", help="Block length of the paired comparison, s "
                                            "(default: the longest of 1 s .. 1 h giving at least 10 blocks)."),
    reconcile: Optional[Path] = typer.Option(None, "--reconcile", help="A live session's state file (or its "
                                             "journal): compare its fills, position and PnL with the replay of "
                                             "the same window of PATH, side by side, and explain the differences."),
    session: int = typer.Option(-1, "--session", help="--reconcile: which session of the journal (1 = the first, "
                                "-1 = the last)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Report folder (default artifacts/paper/ASSET-...)."),
    market: Optional[str] = typer.Option(None, "--market", help="avellaneda-stoikov: the synthetic market instead."),
    gamma: Optional[list[float]] = typer.Option(None, "--gamma", help="AS risk aversion (repeat; default 0.1 0.01 1)."),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="inventory | symmetric (default both)."),
    paths: int = typer.Option(1000, "--paths", help="AS Monte Carlo paths."),
    seed: int = typer.Option(0, "--seed", help="AS random seed."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    max_daily_loss: Optional[str] = _GUARDS["max_daily_loss"],
    max_drawdown: Optional[str] = _GUARDS["max_drawdown"],
    max_position_hard: Optional[float] = _GUARDS["max_position_hard"],
    max_notional: Optional[float] = _GUARDS["max_notional"],
    stale_feed_s: Optional[float] = _GUARDS["stale_feed_s"],
    max_quote_rate: Optional[float] = _GUARDS["max_quote_rate"],
    no_guards: bool = _GUARDS["no_guards"],
):
    """Paper trading: replay market data through the Quoter for several configurations (static vs learned)
    and write an HTML report; or run the Avellaneda-Stoikov (2008) market against the paper's table."""

    def as_body():
        from mm_runtime.paper import avellaneda_stoikov as AS

        if market != "avellaneda-stoikov":
            raise CliError(f"--market: unknown market {market!r}; the one synthetic market is avellaneda-stoikov")
        if path is not None or source is not None:
            raise CliError("--market: replays take PATH --source; the synthetic market takes neither")
        strategies = AS.STRATEGIES if strategy is None else (strategy,)
        check_choice("--strategy", strategy, AS.STRATEGIES)
        rows = []
        for g in (gamma or [0.1, 0.01, 1.0]):
            for s in strategies:
                try:
                    res = AS.simulate(g, s, paths, seed)
                except ValueError as e:
                    raise CliError(f"--gamma/--paths: {e}") from None
                row = res.row()
                if (float(g), s) in AS.PAPER_TABLE:
                    row.update(AS.compare_to_paper(res))
                else:
                    row.update(paper={k: None for k in ("spread", "profit_mean", "profit_std", "final_q_mean",
                                                        "final_q_std")}, z=None, max_abs_z=None)
                rows.append(row)
        if as_json:
            emit_json({"market": "avellaneda-stoikov", "rows": rows})
        else:
            render_as(rows)
        return True

    def replay_body():
        import time

        from models.data.loaders import replay_data
        from models.data.tables import DataError, WindowSpec
        from models.paper_report import ab_document, write_report
        from mm_runtime.paper.compare import CONFIGS, run_ab
        from mm_runtime.paper.replay import ReplayConfig

        if path is None or source is None:
            raise CliError("paper: give PATH and --source (a replay), or --market avellaneda-stoikov")
        for flag, v in (("--refresh-s", refresh_s), ("--latency-s", latency_s), ("--fee-bps", fee_bps),
                        ("--queue-factor", queue_factor), ("--tick-size", tick_size),
                        ("--max-position-notional", max_position_notional), ("--block-s", block_s)):
            if v is not None and not math.isfinite(v):
                raise CliError(f"{flag}: must be a finite number, got {v}")
        check_choice("--queue-model", queue_model, QUEUE_MODELS)
        # the options' config, checked before any data is read (a bad value: one line naming its flag)
        guards = guard_config(max_daily_loss, max_drawdown, max_position_hard, max_notional, stale_feed_s,
                              max_quote_rate, no_guards)
        rc = ReplayConfig(refresh_s=refresh_s, latency_s=latency_s, fee_bps=fee_bps, queue_factor=queue_factor,
                          queue_model=queue_model, tick_size=tick_size,
                          max_position_notional=max_position_notional, block_s=block_s, progress_every_s=5.0,
                          guards=guards)
        names = tuple(c.strip() for c in configs.split(",") if c.strip())
        for c in names:
            if c not in CONFIGS:
                raise CliError(f"--configs: unknown configuration {c!r}; choose from {', '.join(CONFIGS)}")
        if len(set(names)) != len(names) or not names:
            raise CliError(f"--configs: give distinct configurations, got {configs!r}")
        if queue_model in ("auto", "book", "l3"):
            try:
                mkt = read_market(source, path, asset, with_books=True, with_messages=queue_model != "book")
            except DataError as e:
                if queue_model != "auto":
                    raise CliError(f"--queue-model {queue_model}: cannot load the book snapshots: {e}") from None
                stage(f"paper: no book snapshots ({e}); fills at our price by --queue-factor")
                mkt = read_market(source, path, asset)
        else:
            mkt = read_market(source, path, asset)
        win = check_window("--window", window)
        if win:
            mkt = WindowSpec.parse(win).cut(mkt, "--window")
        bundle, origin = _replay_bundle(priors, mkt.asset)
        if bundle.asset != mkt.asset:
            raise CliError(f"--priors: the bundle is for {bundle.asset!r}, the data is {mkt.asset!r}")
        data = replay_data(mkt)
        books = (f"{len(data.book_ts):,} book snapshots ({data.book_bid_px.shape[1]} levels)" if data.has_book
                 else "no books") + (f", {len(data.msg_ts):,} order messages" if data.has_messages else "")
        stage(f"paper: {mkt.asset} ({source}), {len(data.trade_ts):,} trades, {len(data.quote_ts):,} quotes, {books}, "
              f"{data.end - data.start:,.0f} s; configurations {', '.join(names)}; priors {origin}")
        try:
            ab = run_ab(data, bundle, names, rc, progress=lambda c, f: stage(f"  {c}: {100 * f:.0f}%"))
        except ValueError as e:
            raise CliError(f"paper: {e}") from None
        ab["window"], ab["priors"] = win or None, origin
        target = out_dir or Path("artifacts/paper") / f"{mkt.asset}-{source}-{time.strftime('%Y%m%dT%H%M%S')}"
        report = write_report(ab, target)
        doc = {**ab_document(ab), "report": str(report)}
        if as_json:
            emit_json(doc)
        else:
            render_paper(doc)
        return True

    def reconcile_body():
        from mm_runtime.live.journal import read_sessions
        from mm_runtime.paper.reconcile import reconcile as reconcile_session
        from mm_runtime.paper.replay import ReplayConfig
        from models.data.loaders import replay_data
        from models.data.tables import DataError

        from flows.cli.render import render_reconcile

        if market is not None or path is None or source is None:
            raise CliError("--reconcile: give PATH and --source: the market data of the session's window")
        journal = _journal_of(reconcile)
        sessions = read_sessions(journal)
        if session == 0 or not -len(sessions) <= session <= len(sessions):
            raise CliError(f"--session: {journal} holds {len(sessions)} session(s); give 1..{len(sessions)} or -1")
        ses = sessions[session - 1 if session > 0 else session]
        check_choice("--queue-model", queue_model, QUEUE_MODELS)
        rc = ReplayConfig(latency_s=latency_s, queue_model=queue_model, queue_factor=queue_factor,
                          tick_size=tick_size)
        the_asset = asset or ses["session"]["asset"]
        if the_asset != ses["session"]["asset"]:
            raise CliError(f"--asset: the session quoted {ses['session']['asset']!r}, not {the_asset!r}")
        try:
            mkt = read_market(source, path, the_asset, with_books=queue_model in ("auto", "book", "l3"),
                              with_messages=queue_model in ("auto", "l3"))
        except DataError:
            if queue_model in ("book", "l3"):
                raise
            mkt = read_market(source, path, the_asset)
        try:
            doc = reconcile_session(ses, replay_data(mkt), rc)
        except ValueError as e:
            raise CliError(f"--reconcile: {e}") from None
        doc["journal"] = str(journal)
        if as_json:
            emit_json(doc)
        else:
            render_reconcile(doc)
        return True

    if reconcile is not None:
        if not guarded(reconcile_body):
            raise typer.Exit(1)
        return
    if not guarded(as_body if market is not None else replay_body):
        raise typer.Exit(1)
