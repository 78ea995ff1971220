"""``mmcal live reset``: re-arm the live quoter's kill switch (mm_runtime.guards) by
writing the reset file its process watches (docs/runtime/guards.md)."""

from __future__ import annotations

import getpass
import json
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from flows.cli.app import CliError, emit_json, guarded, live_app, stage


def _saved_switch(state_path: Path, asset: str) -> Optional[dict]:
    """The kill switch as the state file last saved it (None: no file, or none saved)."""
    if not state_path.exists():
        return None
    try:
        doc = json.loads(state_path.read_text())
    except (OSError, ValueError) as e:
        raise CliError(f"{state_path}: cannot read the state file: {e}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "mm_runtime.live_state":
        raise CliError(f"{state_path}: not a live state file (kind {doc.get('kind') if isinstance(doc, dict) else None!r})")
    if doc.get("asset") != asset:
        raise CliError(f"--asset: the state file {state_path} is for {doc.get('asset')!r}, not {asset!r}")
    g = doc.get("guards")
    return g if isinstance(g, dict) else None


@live_app.command("reset")
def live_reset(
    asset: str = typer.Option(..., "--asset", help="The asset whose kill switch to reset."),
    priors: Optional[Path] = typer.Option(None, "--priors", help="The deployed bundle `mmcal live` runs on "
                                          "(its state file is ASSET.state.json beside it)."),
    state: Optional[Path] = typer.Option(None, "--state", help="The state file of `mmcal live` (its --state)."),
    note: Optional[str] = typer.Option(None, "--note", help="Why (logged with the reset)."),
    fills_learning: bool = typer.Option(False, "--fills-learning", help="Also drop the tick ladder's cells learned "
                                        "from own fills (back to the bundle's fills model)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Reset the kill switch of `mmcal live`: writes STATE.reset, which the running process applies within a
    second (and removes); a process that is not running applies it at its next start. Quoting resumes; the
    day's loss and the drawdown are measured again from the equity at the reset."""

    def body():
        if state is None and priors is None:
            raise CliError("live reset: give --state FILE (the one `mmcal live` uses) or --priors BUNDLE")
        from mm_runtime.files import atomic_write_bytes
        from mm_runtime.live.runner import reset_path_for

        state_path = state if state is not None else Path(priors).with_name(f"{asset}.state.json")
        if not state_path.parent.is_dir():
            raise CliError(f"--state: {state_path}: its folder does not exist")
        saved = _saved_switch(state_path, asset)
        target = reset_path_for(state_path)
        try:
            user = f"{getpass.getuser()}@{socket.gethostname()}"
        except (KeyError, OSError):
            user = "unknown"
        now = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        request = {"asset": asset, "by": f"mmcal live reset ({user})", "note": note, "requested_at": now,
                   "fills_learning": fills_learning}
        try:
            atomic_write_bytes(target, (json.dumps(request) + "\n").encode())
        except OSError as e:
            raise CliError(f"{target}: cannot write the reset file: {e.strerror or e}") from None
        trip = (saved or {}).get("trip") if (saved or {}).get("tripped") else None
        doc = {"asset": asset, "reset_file": str(target), "state": str(state_path), "requested_at": now,
               "note": note, "fills_learning": fills_learning, "saved_switch": {"tripped": bool(trip), "trip": trip} if saved is not None else None}
        if as_json:
            emit_json(doc)
            return
        if trip:
            stage(f"live reset: the state file last saved the switch tripped by {trip['reason']} at "
                  f"{trip.get('at_utc')} (value {trip.get('value'):.6g}, limit {trip.get('limit'):.6g} "
                  f"{trip.get('unit', '')})")
        elif saved is not None:
            stage("live reset: the state file last saved the switch not tripped")
        stage(f"live reset: wrote {target}; a running `mmcal live` applies it within a second (its log says "
              "\"kill switch reset\"), a stopped one at its next start")

    guarded(body)
