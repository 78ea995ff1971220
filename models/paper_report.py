"""The paper-trading report: one HTML page plus PNGs per A/B comparison.

``write_report(ab, out_dir)`` takes the document of :func:`mm_runtime.paper.compare.run_ab`
and writes ``index.html`` (tables: the A/B table, the paired block comparison,
markouts by depth bucket), ``equity.png``, ``inventory.png``, ``markouts.png``,
``ladder.png``, ``blocks.png`` and ``ab.json`` (every number of the page) into
``out_dir``, atomically (a temporary folder renamed into place).  Time axes are UTC
clock time; tables scroll sideways in a box when wider than the page, their headers
are words and their numbers never wrap.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mm_runtime.bundle import replace_dir  # noqa: E402
from mm_runtime.paper.replay import block_pnl  # noqa: E402
from mm_runtime.paper.results import block_edges, no_quote_rows  # noqa: E402

__all__ = ["ab_document", "write_report"]

_MAX_POINTS = 4000


def _thin(*arrays):
    n = len(arrays[0])
    if n <= _MAX_POINTS:
        return arrays
    idx = np.linspace(0, n - 1, _MAX_POINTS).astype(int)
    return tuple(a[idx] for a in arrays)


def _clock(t) -> np.ndarray:
    """Epoch seconds as UTC clock times (datetime64, µs) for a time axis."""
    return np.round(np.asarray(t, float) * 1e6).astype("int64").astype("datetime64[us]")


def _time_axis(ax, t0: float, t1: float) -> None:
    """Clock-time ticks (UTC; seconds shown when the span is under 20 minutes) and
    the day in the axis label."""
    utc = dt.timezone.utc
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=4, maxticks=9, tz=utc))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M" if t1 - t0 >= 1200 else "%H:%M:%S", tz=utc))
    ax.set_xlabel(f"time (UTC, {dt.datetime.fromtimestamp(t0, utc):%Y-%m-%d})")


def _span(results) -> tuple[float, float]:
    ts = [r.t for r in results.values() if r.t.size]
    return min(float(t[0]) for t in ts), max(float(t[-1]) for t in ts)


def ab_document(ab: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready part of an A/B result (no arrays)."""
    return {
        "asset": ab["asset"], "source": ab["source"], "baseline": ab["baseline"],
        "window": ab.get("window"), "priors": ab.get("priors"),
        "table": ab["table"], "paired": ab["paired"],
        "summaries": {k: r.summary for k, r in ab["results"].items()},
        "configs": {k: r.config for k, r in ab["results"].items()},
        "seconds": {k: r.seconds for k, r in ab["results"].items()},
        "no_quote": no_quote_rows({k: r.summary for k, r in ab["results"].items()}),
    }


def _save(fig, path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fig_series(results, field: str, ylabel: str, title: str, label=lambda name, r: name):
    """One line per configuration of ``ReplayResult.<field>`` over clock time."""
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for name, r in results.items():
        x, y = _thin(_clock(r.t), getattr(r, field))
        ax.plot(x, y, label=label(name, r), lw=1.0)
    ax.axhline(0, color="0.6", lw=0.6)
    _time_axis(ax, *_span(results))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def _fig_markouts(results):
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.4))
    names = list(results)
    buckets = list(next(iter(results.values())).summary["markout_by_bucket"])
    w = 0.8 / max(len(names), 1)
    x = np.arange(len(buckets))
    for i, name in enumerate(names):
        mb = results[name].summary["markout_by_bucket"]
        a1.bar(x + i * w, [mb[b]["fills"] for b in buckets], w, label=name)
        a2.bar(x + i * w, [mb[b]["mean_markout_bps"] if mb[b]["mean_markout_bps"] is not None else 0.0
                           for b in buckets], w, label=name)
    for a, title in ((a1, "fills by quoted depth (bps)"), (a2, "mean markout at the first horizon (bps)")):
        a.set_xticks(x + w * (len(names) - 1) / 2)
        a.set_xticklabels(buckets)
        a.set_title(title, fontsize=10)
    a2.axhline(0, color="0.4", lw=0.6)
    a1.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _fig_ladder(results):
    n = len(results)
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.6 * n), sharex=True, squeeze=False)
    for ax, (name, r) in zip(axes[:, 0], results.items(), strict=True):
        mid = r.mid
        bps = lambda p: (p - mid) / mid * 1e4  # noqa: E731
        x, mb, ma, ob, oa = _thin(_clock(r.t), bps(r.mkt_bid), bps(r.mkt_ask), bps(r.our_bid), bps(r.our_ask))
        ax.fill_between(x, mb, ma, color="0.85", label="market bid–ask", step="post")
        ax.plot(x, ob, lw=0.7, color="tab:blue", label="our best bid")
        ax.plot(x, oa, lw=0.7, color="tab:red", label="our best ask")
        ax.set_ylabel("bps from mid")
        ax.set_title(f"{name}: the ladder's touch over time", fontsize=10)
        if (r.summary.get("quoting_note") or "").startswith("never"):
            ax.text(0.5, 0.5, "never quoted (the reason: under the side-by-side table)", transform=ax.transAxes,
                    ha="center", va="center", color="#8a1f11")
        ax.legend(loc="upper right", fontsize=7)
    _time_axis(axes[-1, 0], *_span(results))
    fig.tight_layout()
    return fig


def _fig_blocks(ab):
    """Each block's PnL difference at the block's start (clock time)."""
    base = ab["results"][ab["baseline"]]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    for name, cmp in ab["paired"].items():
        d = block_pnl(ab["results"][name], cmp["block_s"]) - block_pnl(base, cmp["block_s"])
        ends = block_edges(base, cmp["block_s"])
        starts = np.concatenate([[base.t[0]], ends[:-1]])[: d.size]
        ax.plot(_clock(starts), d, marker="o", ms=3, lw=0.8, label=f"{name} − {ab['baseline']}")
        if cmp["ci_low"] is not None:
            ax.axhspan(cmp["ci_low"], cmp["ci_high"], alpha=0.15)
    ax.axhline(0, color="0.4", lw=0.6)
    _time_axis(ax, *_span(ab["results"]))
    ax.set_xlabel(f"block start, {ax.get_xlabel()}")
    ax.set_ylabel("PnL difference per block")
    ax.set_title("Paired comparison (shaded: 95% interval of the mean difference)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return html.escape(str(v))


_LABELS = {
    "config": "configuration", "pnl": "PnL", "sharpe_per_day": "Sharpe per day", "max_drawdown": "max drawdown",
    "mean_markout_bps": "mean markout (bps)", "inventory_sd": "inventory sd",
    "inventory_max_abs": "max |inventory|", "volume_notional": "volume (notional)", "quoted_share": "quoted share",
    "not_quoting": "not quoting", "block_s": "block (s)", "mean_diff": "mean difference",
    "sd_diff": "sd of differences", "ci_low": "interval low", "ci_high": "interval high", "wins": "blocks won",
    "mean_depth_bps": "mean depth (bps)", "tier_pnl": "tier PnL",
}


def _label(col: str) -> str:
    """A column's header in words (``sharpe_per_day`` -> "Sharpe per day")."""
    return _LABELS.get(col, col.replace("_", " "))


def _table(rows: list[dict], cols: list[str]) -> str:
    """A table in a box that scrolls sideways when it is wider than the page (never
    clipped); headers wrap between words, numbers never (``td.num``)."""
    head = "".join(f"<th>{html.escape(_label(c))}</th>" for c in cols)

    def td(v) -> str:
        text = isinstance(v, str) and len(v) > 24
        return f"<td class={'text' if text else 'num'}>{_cell(v)}</td>"

    body = "".join("<tr>" + "".join(td(r.get(c)) for c in cols) + "</tr>" for r in rows)
    return f"<div class=wide><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
.wide{max-width:100%;overflow-x:auto;margin:0.6em 0 1.4em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f3f3f3;white-space:normal;min-width:4em}td.num{white-space:nowrap}
td.text{text-align:left;white-space:normal;min-width:14em;max-width:32em}
td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:0.4em 0}
.note{color:#555;font-size:0.92em}.warn{color:#8a1f11;font-weight:600}"""


def _kill_switch_rows(results) -> tuple[list[dict], list[dict]]:
    """Per configuration, the kill switch's first trip and state at the end; the limits
    (with their sources) of each configuration."""
    rows, limits = [], []
    for name, r in results.items():
        ks = r.summary.get("kill_switch") or {}
        first = (ks.get("trips") or [None])[0]
        rows.append({"config": name, "triggered at the end": bool(ks.get("triggered")),
                     "trips": len(ks.get("trips", [])), "resets": len(ks.get("resets", [])),
                     "reason": first["reason"] if first else None, "at (UTC)": first["at_utc"] if first else None,
                     "value": first["value"] if first else None, "limit": first["limit"] if first else None,
                     "unit": first["unit"] if first else None})
        for g, lim in (ks.get("limits") or {}).items():
            limits.append({"config": name, "guard": g, "limit": lim["value"], "unit": lim["unit"],
                           "source": lim["source"]})
    return rows, limits


def write_report(ab: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write the page and its figures; returns the path of ``index.html``."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        results = ab["results"]
        _save(_fig_series(results, "equity", "PnL (quote currency, marked to mid)", "Equity",
                          label=lambda name, r: f"{name} ({r.summary['pnl']:+.2f})"), tmp / "equity.png")
        _save(_fig_series(results, "position", "position (base units)", "Inventory"), tmp / "inventory.png")
        _save(_fig_markouts(results), tmp / "markouts.png")
        _save(_fig_ladder(results), tmp / "ladder.png")
        if ab["paired"]:
            _save(_fig_blocks(ab), tmp / "blocks.png")
        doc = ab_document(ab)
        (tmp / "ab.json").write_text(json.dumps(doc, indent=1, default=float))
        paired_rows = [{"config": k, **{f: x for f, x in v.items() if f != "note"}} for k, v in ab["paired"].items()]
        bucket_rows = []
        for name, r in results.items():
            for b, v in r.summary["markout_by_bucket"].items():
                bucket_rows.append({"config": name, "depth bucket (bps)": b, **v})
        learn_rows = [{"config": k, **r.summary["learning"]} for k, r in results.items()]
        cal_rows = [{"config": k, "horizon (s)": c["horizon_s"], "mean rest (s)": c.get("mean_rest_s"), **lv,
                     "Brier": c.get("brier")}
                    for k, r in results.items() for c in [r.summary.get("fill_calibration") or {}]
                    for lv in c.get("levels", [])]
        edge_rows = [{"config": k, "fee (bps)": e["fee_bps"], **lv}
                     for k, r in results.items() for e in [r.summary.get("edge_terms") or {}]
                     for lv in e.get("levels", [])]
        ks_rows, limit_rows = _kill_switch_rows(results)
        rc = next(iter(results.values())).config["replay"]
        parts = [
            f"<h1>Paper trading: {html.escape(ab['asset'])} ({html.escape(ab['source'])})</h1>",
            f"<p class=note>window {html.escape(str(ab.get('window') or 'all'))}; priors "
            f"{html.escape(str(ab.get('priors') or '–'))}; refresh {rc['refresh_s']} s, latency "
            f"{rc['latency_s']} s, maker fee {rc['fee_bps']} bps, queue factor {rc['queue_factor']}, "
            f"position limit {rc['max_position_notional']} notional. Fills: trade-through (a print beyond "
            "our price); markout = side × (mid(t+h) − fill price) in bps, positive = profitable.</p>",
            "<h2>Side by side</h2>",
            *[f"<p class=warn>{html.escape(r['config'])} {html.escape(r['not_quoting'])}</p>"
              for r in doc["table"] if (r.get("not_quoting") or "").startswith("never")],
            _table(doc["table"], list(doc["table"][0])),
        ]
        if doc["no_quote"]:
            parts += ["<h2>Refreshes with no quote</h2>",
                      "<p class=note>Per configuration, why a refresh left no order resting (the term "
                      "that made every edge &le; 0, a limit, sizes rounded away); share = of its "
                      "refreshes.</p>",
                      _table([{**r, "share": None if r["share"] is None else f"{r['share']:.1%}"}
                              for r in doc["no_quote"]], ["config", "reason", "refreshes", "share"])]
        if paired_rows:
            notes = dict.fromkeys(v["note"] for v in ab["paired"].values() if v.get("note"))
            parts += [f"<h2>Paired comparison against {html.escape(ab['baseline'])}</h2>",
                      *[f"<p class=warn>{html.escape(n)}</p>" for n in notes],
                      "<p class=note>PnL difference per time block; Student-t 95% interval of the mean.</p>",
                      _table(paired_rows, list(paired_rows[0])), '<img src="blocks.png" alt="blocks">']
        parts += ["<h2>Kill switch</h2>",
                  *[f"<p class=warn>{html.escape(r['config'])}: kill switch tripped by {html.escape(r['reason'])} "
                    f"at {html.escape(str(r['at (UTC)']))}: quotes pulled until a reset</p>"
                    for r in ks_rows if r["reason"] and r["triggered at the end"]],
                  "<p class=note>Every quote pulled on a trip (after the latency) until a manual reset; PnL "
                  "marked to market, net of fees; the day starts 00:00 UTC (docs/runtime/guards.md).</p>",
                  _table(ks_rows, list(ks_rows[0])), _table(limit_rows, list(limit_rows[0])) if limit_rows else "",
                  '<h2>Equity</h2><img src="equity.png" alt="equity">',
                  '<h2>Inventory</h2><img src="inventory.png" alt="inventory">',
                  '<h2>Fills and markouts by depth</h2><img src="markouts.png" alt="markouts">',
                  _table(bucket_rows, list(bucket_rows[0])) if bucket_rows else "",
                  *(["<h2>Predicted vs realised fill rate by level</h2>",
                     "<p class=note>Per ladder level (0 = nearest the mid): the ladder's mean fill "
                     "probability over its horizon against the share of those orders filled while they "
                     "rested (until the next ladder replaced them), with its binomial sd.</p>",
                     _table(cal_rows, list(cal_rows[0]))] if cal_rows else []),
                  *(["<h2>The tick ladder's edge by level</h2>",
                     "<p class=note>Per level behind the touch, over every refresh (quoted or not): the "
                     "spread capture &delta; (bps from the mid at placement), the bundle's capture shortfall s "
                     "(the mean move of the mid toward the order before it fills), the spread capture at the "
                     "fill &delta; &minus; s, the fills model's markout m after a fill at the Kelly horizon, "
                     "the edge E = &delta; &minus; s &minus; fee &minus; m, the share of refreshes with "
                     "E &gt; 0 and P(fill within &tau;).</p>",
                     _table(edge_rows, list(edge_rows[0]))] if edge_rows else []),
                  '<h2>The ladder over time</h2><img src="ladder.png" alt="ladder">',
                  "<h2>Online learning at the end of the replay</h2>",
                  _table(learn_rows, list(learn_rows[0])),
                  '<p class=note>Every number: <a href="ab.json">ab.json</a>.</p>']
        page = (f"<!doctype html><html><head><meta charset=utf-8><title>paper {html.escape(ab['asset'])}</title>"
                f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")
        (tmp / "index.html").write_text(page)
        replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / "index.html"
