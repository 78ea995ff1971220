"""The human-readable output of the commands (rich tables on stdout): one ``render_*``
per ``--json`` document, printing what that document holds."""

from __future__ import annotations

import json
import math
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from flows.cli.app import jsonable, out
from mm_runtime.vocabulary import REGIMES


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        if v != 0 and (abs(v) < 10 ** (-digits) or abs(v) >= 1e6):
            return f"{v:.{digits}e}"
        return f"{v:.{digits}f}"
    return str(v)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    """A table whose cells are never cut: a column too narrow for the console folds its
    cells onto more lines instead of ending them with an ellipsis ('5.115…' for
    5.115e-85 reads as 5)."""
    t = Table(title=Text(title), title_justify="left", header_style="bold")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right", overflow="fold")
    for r in rows:
        t.add_row(*[Text(_fmt(v)) for v in r])  # Text: '[low,buy]' is not markup
    return t


def _fit_columns(table: Table, width: int) -> None:
    """On a console narrower than the table: fix the column widths so that every cell
    stays on one line and only the headers wrap at their spaces ('depth bps' over two
    lines), with less padding where needed (none at the edges, then none at all), when
    the console is wide enough for that (else rich folds the cells)."""
    from rich.cells import cell_len

    n = len(table.columns)
    natural, least = [], []
    for col in table.columns:
        longest = max((cell_len(str(c)) for c in col.cells), default=0)
        words = str(col.header).split() or [""]
        natural.append(max(longest, cell_len(str(col.header))))
        least.append(max(longest, *(cell_len(w) for w in words)))
    if sum(natural) + 3 * n + 1 <= width:
        return
    # borders + padding: one space each side; none at the table's edges; none at all
    for overhead, padding, edge in ((3 * n + 1, (0, 1), True), (3 * n - 1, (0, 1), False), (n + 1, (0, 0), False)):
        if sum(least) + overhead <= width:
            table.padding, table.pad_edge = padding, edge
            break
    else:
        return
    spare, widths = width - overhead - sum(least), list(least)
    for i in sorted(range(len(widths)), key=lambda i: natural[i] - least[i]):  # fewest wrapped headers
        add = min(spare, natural[i] - widths[i])
        widths[i] += add
        spare -= add
    for col, w in zip(table.columns, widths):
        col.width = w


def _print_wide(table: Table) -> None:
    """Print a table without truncating its cells: parameter names are never cut to
    'kappa[hi…', numbers never to '5.115…'. Redirected output gets the table's
    natural width; on a terminal too narrow for it the headers wrap, and where that
    is not enough the cells fold (:func:`_table`)."""
    from rich.measure import Measurement

    if out.is_terminal:
        _fit_columns(table, out.width)
        out.print(table)
        return
    width = Measurement.get(out, out.options.update(width=10_000), table).maximum
    Console(width=max(out.width, width)).print(table)  # stdout as `out`, only wider


def _g(v: Any) -> str:
    """4 significant digits (the registry's values span 1e-3 .. 1e3 and sit near 1)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    s = f"{v:.4g}"
    return f"{v:.6g}" if s in ("1", "-1") and v != float(s) else s  # 0.99997 is not 1


def render_inspect(s: dict) -> None:
    rows = s["rows"]
    out.print(f"[bold]{s['asset']}[/bold] ({s['source']})  {s['start']} -> {s['end']}  "
              f"({s['duration_s']:.1f} s)")
    out.print(f"rows: trades {rows['trades']:,}  quotes {rows['quotes']:,}  books {rows['books']:,}")
    out.print(f"mean spread: {s['mean_spread_bps']:.3f} bps (time-weighted)")
    if s.get("mid_moves"):
        mm = s["mid_moves"]
        shares = "  ".join(f"{g} s {v:.0%}" for g, v in mm["share_by_grid_s"].items() if v is not None)
        g = mm["suggested_rv_sample_seconds"]
        why = ("the finest where the mid moves in >= 90 %" if g < s["observation_config"]["rv_sample_seconds"]
               else "the default: the mid moves in < 90 % of every finer grid's intervals")
        out.print(f"mid moves in: {shares} of the intervals; rv grid for --rv-sample-seconds: {g:g} s ({why})")
    _render_gaps(s.get("gaps"))
    out.print(_table("arrivals (market orders; one sweep = one arrival)",
                     ["side", "arrivals", "per s", "prints/arrival", "mean depth bps", "kappa mle 1/bps"],
                     [[a["side_name"], a["arrivals"], a["rate_per_s"], a["mean_prints"],
                       a["mean_depth_bps"], a["kappa_mle"]] for a in s["arrivals"]]))
    out.print(_table(f"realized volatility per regime (bps/sqrt(s); labels: {s['regime_labels']})",
                     ["regime", "bars", "occupancy", "sigma", "mean log rv", "sd log rv"],
                     [[v["regime_name"], v["bars"], v["occupancy"], v["sigma_bps_mean"],
                       v["log_rv_mean"], v["log_rv_sd"]] for v in s["volatility"]]))
    oc = s["observation_config"]
    out.print(_table(f"passive fills by depth bucket (re-post every {oc['repost_interval_s']} s; markout "
                     f"at {oc['markout_horizon_s']} s; informed = markout > {oc['informed_threshold_bps']} bp)",
                     ["bucket", "fills", "informed share", "se", "mean markout bps"],
                     [[f["bucket"], f["fills"], f["informed_share"], f["informed_share_se"],
                       f["markout_mean_bps"]] for f in s["passive_fills"]]))
    _render_queue(s.get("queue_orders"))
    notes = {k: v for k, v in s.get("meta", {}).items() if k != "truth_arrivals"}
    if notes:
        out.print(f"loader notes: {json.dumps(jsonable(notes))}", markup=False, highlight=False)


def _render_gaps(g: dict | None) -> None:
    if not g:
        return
    head = (f"recording gaps (no quote and no trade for > {g['threshold_s']:.3g} s; time between updates, "
            f"99th percentile {g['reference_s']:.3g} s)")
    if not g["table"]:
        out.print(f"{head}: none", markup=False, highlight=False)
        return
    out.print(_table(head, ["start", "end", "start s", "length s"],
                     [[r["start"], r["end"], r["start_s"], r["length_s"]] for r in g["table"]]))


def _render_queue(q: dict | None) -> None:
    if not q:
        return
    if not q["available"]:
        out.print(f"queue orders: none ({q['reason']})", markup=False, highlight=False, soft_wrap=True)
        return
    hs = q["markout_horizons_s"]
    title = (f"queue orders ({q['method']}; {q['orders']:,} orders, {q['filled']:,} filled, {q['through']:,} "
             f"of them through; P(fill) within the {q['repost_interval_s']:g} s re-post; queue ahead in median "
             f"trades of {q['median_trade_size']:g}; markouts bps, + = adverse)")
    _print_wide(_table(title, ["level", "queue", "orders", "fills", "P(fill)", "median s"]
                     + [f"markout {h:g}s" for h in hs],
                     [[r["level"], r["queue_bucket"], r["orders"], r["fills"], r["fill_prob"], r["median_fill_s"]]
                      + [r.get(f"markout_bps@{h:g}s") for h in hs] for r in q["table"]]))


def render_fit(doc: dict) -> None:
    s = doc["sampler"]
    regimes = f", regimes {doc['regimes']}" if doc["regimes"] else ""
    ess = lambda v: None if v is None else int(round(v))  # noqa: E731
    _print_wide(_table(f"{doc['model']} posterior: {doc['asset']} ({doc['source']}), {doc['n_obs']:,} "
                       f"{doc['obs_unit']}{regimes}; {s['sampler']}, {s['chains']} chains x {s['draws']} draws",
                       ["parameter", "mean", "sd", "5%", "95%", "r_hat", "ess_bulk", "ess_tail"],
                       [[name, p["mean"], p["sd"], p["q05"], p["q95"], p["r_hat"], ess(p["ess_bulk"]),
                         ess(p["ess_tail"])] for name, p in doc["parameters"].items()]))
    d = doc["diagnostics"]
    f = lambda v, n=3: _fmt(v, n)  # noqa: E731
    lines = [
        f"max r_hat {f(d.get('r_hat_max'))} ({d.get('r_hat_worst') or '-'});  "
        f"min ess bulk {f(ess(d.get('ess_bulk_min')))} ({d.get('ess_bulk_worst') or '-'}), "
        f"tail {f(ess(d.get('ess_tail_min')))} ({d.get('ess_tail_worst') or '-'})",
        f"divergences {f(d.get('divergences'))};  min BFMI {f(d.get('bfmi_min'), 2)};  "
        f"sampling {f(s.get('wall_s'), 1)} s",
    ]
    if d.get("inference_reason"):
        lines.insert(0, f"inference: {d.get('inference')} (PSIS k_hat {f(d.get('psis_khat'), 2)}); "
                        f"{d['inference_reason']}")
    if "loo_elpd" in d:
        lines.append(f"elpd_loo {f(d.get('loo_elpd'), 1)} ± {f(d.get('loo_se'), 1)} "
                     f"(p_loo {f(d.get('p_loo'), 1)}; {d.get('loo_n')} terms of "
                     f"{', '.join(d.get('loo_vars', []))});  max Pareto k {f(d.get('pareto_k_max'), 2)} "
                     f"({d.get('pareto_k_over_0.7')} above 0.7)")
    else:
        lines.append(f"LOO: {d.get('loo_note', 'not computed')}")
    if "hawkes_ks_d" in d:
        lines.append(f"time-rescaling KS D {f(d['hawkes_ks_d'])} (p {f(d.get('hawkes_ks_p'), 2)}; buy "
                     f"{f(d.get('hawkes_ks_d_buy'))}, sell {f(d.get('hawkes_ks_d_sell'))}) at the posterior mean")
    if "regime_duration_bars_min" in d:
        dur = " / ".join(f(d.get(f"regime_duration_bars_{r}"), 1) for r in REGIMES)
        lines.append(f"expected state durations {' / '.join(REGIMES)}: {dur} bars "
                     "at the posterior mean transition")
    if "hawkes_components" in d:
        lpd = "; ".join(f"M={k.rsplit('m', 1)[1]}: {f(v, 4)}" for k, v in d.items()
                        if k.startswith("hawkes_heldout_lpd_m"))
        lines.append(f"kernel components: M = {d['hawkes_components']} by held-out lpd (nats/arrival, "
                     f"MAP on the first part of the window): {lpd}")
    g = doc["gate"]
    lines.append(f"gate: {'PASS' if g['passed'] else 'FAIL (not exportable)'}")
    lines += [f"  - {msg}" for msg in g["failures"]]
    lines += [f"  warning: {msg}" for msg in g["warnings"]]
    lines.append(f"model version {doc['model_version']}")
    for ln in lines:
        out.print(ln, markup=False, highlight=False, soft_wrap=True)


def render_ladder(rep: dict) -> None:
    s = rep["summary"]
    if not s["valid"]:
        out.print(f"no quotes: {s['reason']}")
        return
    out.print(f"{s['asset']}  mid {s['mid']:.6g}  sigma {s['sigma_bps']:.4g} bps/sqrt(s)  "
              f"kelly fraction {s['kelly_fraction']:.3f}  alpha_touch {s['alpha_touch']:.3f}  "
              f"binding bid/ask {s['binding']['bid']}/{s['binding']['ask']}  "
              f"margin used {s['margin_used']:.2f}", markup=False, highlight=False)
    if "spread_capture" in s:
        out.print(f"edge per fill = (1-alpha)(c*depth - fee) - alpha(AS + fee): spread capture c "
                  f"{s['spread_capture']:.3f}, adverse move AS {s['adverse_move_bps']:.3g} bps, "
                  f"fee {s['fee_bps']:g} bps", markup=False, highlight=False)
    if "ladder_params" in s:
        lp = s["ladder_params"]
        out.print("learned values: " + ", ".join(
            f"{k} {v['value']:.4g} ({v['source']})" for k, v in lp.items() if k != "toxic_hours")
            + f", toxic hours {lp['toxic_hours']['value'] or 'none'} ({lp['toxic_hours']['source']})"
            + ("; cold start: " + "/".join(k for k, v in s["cold_start"].items() if v) if any(
                s.get("cold_start", {}).values()) else ""), markup=False, highlight=False)
    _print_wide(_table("ladder", ["side", "level", "depth bps", "price", "size", "P_fill", "alpha", "edge bps",
                                  "Kelly f"],
                       [[r["side"], r["level"], r["depth_bps"], r["price"], r["size"], r["p_fill"],
                         r["alpha"], r["edge_bps"], r["kelly_f"]] for r in rep["ladder"]]))


def render_calibration(doc: dict) -> None:
    d = doc["data"]
    ess = lambda v: None if v is None else int(round(v))  # noqa: E731
    rows = []
    for m, r in doc["models"].items():
        rows.append([m, "hit" if r["cache_hit"] else "sampled", r["n_obs"], r["sampling_wall_s"], r["r_hat_max"],
                     ess(r["ess_bulk_min"]), ess(r["ess_tail_min"]), r["divergences"], r["bfmi_min"],
                     r["loo_elpd"], r["pareto_k_max"], "PASS" if r["gate"]["passed"] else "FAIL"])
    _print_wide(_table(f"calibration of {doc['asset']}: {d['source']} {d['path']} window {d['window']} "
                       f"({d['duration_s']:.0f} s, {d['rows']['trades']:,} trades, {d['bar_seconds']:g} s bars)",
                       ["model", "cache", "n obs", "sampling s", "max r_hat", "min ess bulk", "min ess tail",
                        "divergences", "min BFMI", "elpd_loo", "max Pareto k", "gate"], rows))
    lines = [f"inference: {m}: {r['inference']}; {r['inference_reason']}" for m, r in doc["models"].items()
             if r.get("inference_reason")]
    lines += [f"warning: {m}: {w}" for m, r in doc["models"].items() for w in r["gate"].get("warnings", [])]
    lines += [f"skipped: {why} (the bundle has no {m} block)" for m, why in (doc.get("skipped") or {}).items()]
    st = doc["status"]
    if st == "gate_failed":
        lines.append(f"gate FAILED: not exported, not registered (MLflow run {doc['run_id']}, status FAILED)")
        lines += [f"  - {f}" for f in doc["failures"]]
    elif st in ("registered", "already_registered"):
        how = "registered" if st == "registered" else "unchanged calibration, already registered"
        lines.append(f"{how}: models:/{doc['registered_model']}/{doc['version']} "
                     f"(aliases: {', '.join(doc['aliases'])}); MLflow run {doc['run_id']}")
        lines.append(f"bundle: {doc['bundle_path']}")
    else:
        lines.append(f"logged (not registered): MLflow run {doc['run_id']}; bundle {doc['bundle_path']}")
    lines.append(f"look: {doc['mlflow_ui']}")
    for ln in lines:
        out.print(ln, markup=False, highlight=False, soft_wrap=True)


def render_comparison(doc: dict) -> None:
    ch, champ = doc["challenger"], doc["champion"]
    title = (f"{doc['asset']}: challenger v{ch['version']} vs "
             + (f"champion v{champ['version']}" if champ else "no champion"))
    if doc.get("heldout"):
        h = doc["heldout"]
        title += f" on held-out data ({h['duration_s']:.0f} s, {h['rows']['trades']:,} trades)"
    if doc["rows"]:
        _print_wide(_table(title, ["model", "unit", "n", "challenger elpd", "champion elpd", "difference", "se",
                                   "paired", "z"],
                           [[r["model"], r.get("unit"), r.get("n"), r["challenger_elpd"], r["champion_elpd"],
                             r["elpd_diff"], r["se"], {True: "yes", False: "no"}.get(r["paired"], "-"),
                             r["z_score"]] for r in doc["rows"]]))
    else:
        out.print(title, markup=False, highlight=False)
    if doc.get("paper"):
        p = doc["paper"]
        render_paper({**p, "asset": doc["asset"], "source": "held-out replay", "report": p.get("report")})
        out.print(p.get("verdict", ""), markup=False, highlight=False, soft_wrap=True)
    verdict = ("promoted: the challenger is now the champion" if doc["promoted"]
               else "kept the champion" if champ else "not promoted (--no-promote)")
    out.print(f"{verdict} ({doc['reason']})", markup=False, highlight=False, soft_wrap=True)
    if doc.get("run_id"):
        out.print(f"comparison logged: MLflow run {doc['run_id']}", markup=False, highlight=False)


def render_deploy(doc: dict) -> None:
    if doc["status"] == "unchanged":
        msg = f"{doc['target']} already holds this bundle ({doc['ref']}, model {doc['model_version']}): unchanged"
    elif doc["action"] == "rollback":
        msg = (f"rolled back {doc['target']} to model {doc['model_version']}"
               + (f" (version {doc['version']})" if doc.get("version") else ""))
    else:
        msg = (f"deployed {doc['ref']} (version {doc['version']}, model {doc['model_version']}) to {doc['target']}"
               + (f"; previous kept as {doc['previous']}" if doc.get("previous") else ""))
    out.print(msg, markup=False, highlight=False, soft_wrap=True)


def render_paper(doc: dict) -> None:
    rows = [[r["config"], r["pnl"], r["sharpe_per_day"], r["max_drawdown"], r["fills"], r["mean_markout_bps"],
             r["inventory_sd"], r["inventory_max_abs"], r["fees"],
             "never" if r["quoted_share"] == 0 else r["quoted_share"]]
            for r in doc["table"]]
    _print_wide(_table(f"paper trading {doc['asset']} ({doc['source']}, window {doc.get('window') or 'all'})",
                       ["config", "PnL", "Sharpe/day", "max DD", "fills", "markout bps", "inv sd", "inv max|q|",
                        "fees", "quoted"], rows))
    for r in doc["table"]:  # why a configuration did not quote, under the table
        if r.get("not_quoting"):
            out.print(f"  {r['config']}: {r['not_quoting']}", markup=False, highlight=False, soft_wrap=True)
        if r.get("kill_switch"):
            out.print(f"  {r['config']}: kill switch: {r['kill_switch']}", markup=False, highlight=False,
                      soft_wrap=True)
    if doc.get("no_quote"):
        _print_wide(_table("refreshes with no quote", ["config", "reason", "refreshes", "share"],
                           [[r["config"], r["reason"], r["refreshes"],
                             None if r["share"] is None else f"{r['share']:.1%}"] for r in doc["no_quote"]]))
    if doc["paired"]:
        prow = [[k, v["blocks"], v["mean_diff"], v["ci_low"], v["ci_high"], f"{v['wins']}/{v['blocks']}"]
                for k, v in doc["paired"].items()]
        out.print(_table(f"paired by {next(iter(doc['paired'].values()))['block_s']:g} s blocks vs "
                         f"{doc['baseline']} (PnL difference, 95% t interval)",
                         ["config", "blocks", "mean diff", "low", "high", "blocks won"], prow))
        for note in dict.fromkeys(v.get("note") for v in doc["paired"].values() if v.get("note")):
            out.print(f"  {note}", markup=False, highlight=False, soft_wrap=True)
    if doc.get("report"):
        out.print(f"report: {doc['report']}", markup=False, highlight=False, soft_wrap=True)


def render_as(rows: list[dict]) -> None:
    t = [[r["gamma"], r["strategy"], r["spread"], r["profit_mean"], r["profit_std"], r["final_q_mean"],
          r["final_q_std"], r["paper"]["spread"], r["paper"]["profit_mean"], r["paper"]["profit_std"],
          r["paper"]["final_q_mean"], r["paper"]["final_q_std"], r["max_abs_z"]] for r in rows]
    _print_wide(_table(f"Avellaneda-Stoikov (2008) market, {rows[0]['n_paths']} paths, seed {rows[0]['seed']} "
                       "(ours | the paper's table; z: difference / Monte Carlo SE)",
                       ["gamma", "strategy", "spread", "profit", "sd", "q_T", "sd(q_T)", "paper spread",
                        "paper profit", "sd", "q_T", "sd(q_T)", "max|z|"], t))


def render_params(doc: dict) -> None:
    rows = []
    for p in doc["params"]:
        lo, hi = p["interval"]
        rows.append([p["name"], p["tier"], p["family"], f"{_g(p['prior_mean'])} (s={_g(p['prior_strength'])})",
                     _g(p["estimate"]), _g(lo), _g(hi), f"{p['data_weight']:.3f}", f"{_g(p['n'])}/{p['min_n']}",
                     "yes" if p["calibrated"] else "no", p["in_use"], p["unit"]])
    _print_wide(_table(f"learned parameters{' of ' + doc['asset'] if doc['asset'] else ''}",
                       ["parameter", "tier", "family", "prior mean (strength)", "estimate", "95% lo", "95% hi",
                        "data weight", "n/min_n", "calibrated", "in use", "unit"], rows))
    for t, name in doc["tier_names"].items():
        ps = [p for p in doc["params"] if str(p["tier"]) == t]
        ready = doc[f"tier{t}_ready"]
        out.print(f"tier {t} ({name}): {'ready' if ready else 'not ready'} "
                  f"({sum(p['calibrated'] for p in ps)}/{len(ps)} calibrated)", markup=False, highlight=False)
    sources = sorted({p["prior_source"] for p in doc["params"]})
    out.print("priors: " + "; ".join(sources), markup=False, highlight=False, soft_wrap=True)


def render_moved(doc: dict) -> None:
    rows = [[m["name"], m["tier"], m["evidence"], m["before"], m["after"], m["data_weight_before"],
             m["data_weight_after"], "yes" if m["calibrated_after"] else "no", m["source"]] for m in doc["moved"]]
    _print_wide(_table(f"historical calibration of {doc['asset']} ({doc['source']}, {doc['duration_s']:,.0f} s): "
                       "what moved", ["parameter", "tier", "evidence", "before", "after", "weight before",
                                      "weight after", "calibrated", "from"], rows))
    for name, ok in doc["tiers"].items():
        out.print(f"{name}: {'ready' if ok else 'not ready'}", markup=False, highlight=False)
    for note in doc["notes"]:
        out.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    if doc.get("state"):
        out.print(f"state saved: {doc['state']}", markup=False, highlight=False)


def render_schedules(config: str, rows: list[dict]) -> None:
    """``mmcal serve --check``: the deployments of a schedules file."""
    _print_wide(_table(f"{config}: {len(rows)} scheduled calibration(s)",
                       ["deployment", "cron", "timezone", "source", "path", "window"],
                       [[r["deployment"], r["cron"], r["timezone"], r["source"], r["path"], r["window"]]
                        for r in rows]))


def render_demo(doc: dict, asset: str, duration: float, fit_window: str) -> None:
    """``mmcal demo``: each step's table under a numbered rule, then where to look."""
    out.rule("1. synthetic market")
    out.print(f"{asset}: {duration:.0f} s, {doc['rows']['trades']:,} trades, "
              f"{doc['rows']['quotes']:,} quotes in {doc['market_dir']} (truth.json beside it); "
              f"fit on {fit_window}, the rest held out", markup=False, highlight=False)
    for i, cal in enumerate(doc["calibrations"]):
        variant = "threshold" if i == 0 else "mixture"
        out.rule(f"{2 + i}. calibrate (alpha {variant} variant)")
        render_calibration(cal)
    n = 2 + len(doc["calibrations"])
    if doc["comparison"] is not None:
        out.rule(f"{n}. compare on the held-out quarter")
        render_comparison(doc["comparison"])
        n += 1
    if doc["deploy"] is None:
        out.print("the calibration failed the gate: nothing deployed (see the failures above)")
        return
    out.rule(f"{n}. deploy")
    render_deploy(doc["deploy"])
    lad = doc["ladder"]
    out.rule(f"{n + 1}. a Quoter on the deployed bundle (replay of the last {lad['replay']['seconds']:.0f} s, "
             f"{lad['replay']['events']} events)")
    render_ladder(lad)
    out.rule(f"{n + 2}. paper trading on the held-out quarter: learned vs the original static constants")
    render_paper(doc["paper"])
    out.rule("where to look")
    last = doc["calibrations"][-1]
    lines = [f"MLflow: {doc['look']['mlflow_ui']}   (then http://127.0.0.1:5000, experiment mm-calibration)",
             f"  calibration runs: {', '.join(c['run_id'] for c in doc['calibrations'])}"
             + (f"; comparison run: {doc['comparison']['run_id']}" if doc["comparison"] and
                doc["comparison"].get("run_id") else ""),
             f"  registered model: {last['registered_model']} (aliases champion, challenger)",
             f"live bundle: {doc['deploy']['target']} (a Quoter watching it hot-reloads each "
             "`mmcal deploy` / `mmcal rollback`)",
             f"paper-trading report: {doc['paper']['report']}",
             f"Prefect runs: {doc['look']['prefect_ui']}"
             + ("" if doc["look"]["prefect_ui"].startswith("open ") else "   (then http://127.0.0.1:4200)"),
             f"done in {doc['wall_s']:.0f} s"]
    for ln in lines:
        out.print(ln, markup=False, highlight=False, soft_wrap=True)


def render_status(docs: list[dict]) -> None:
    """``mmcal status``: one row per asset, then the champion and challenger per asset."""
    def reg(e: dict | None) -> str:
        return "-" if e is None else f"v{e['version']} (run {str(e['run_id'])[:12]})"

    rows = []
    for d in docs:
        lv = d["live"]
        if lv["status"] != "ok":
            rows.append([d["asset"], lv["status"] + (f": {lv['error']}" if lv.get("error") else ""), "-", "-", "-",
                         reg(d["champion"]), reg(d["challenger"]), "no"])
            continue
        rows.append([d["asset"], f"v{lv['version']}" if lv["version"] is not None else "unregistered",
                     str(lv["run_id"] or "-")[:12], f"{lv['window_start']} .. {lv['window_end']}",
                     lv["signature"], reg(d["champion"]), reg(d["challenger"]),
                     "yes" if d["live_is_champion"] else "no"])
    _print_wide(_table("live bundles", ["asset", "live", "run", "data window", "signature", "champion",
                                        "challenger", "live is champion"], rows))
    for d in docs:
        lv = d["live"]
        if lv["status"] == "ok":
            out.print(f"  {d['asset']}: {d['target']}: model {lv['model_version']}, data {lv['data_source']} "
                      f"sha256 {lv['data_sha256'][:12]}", markup=False, highlight=False, soft_wrap=True)


def render_reconcile(doc: dict) -> None:
    """``mmcal paper --reconcile``: the checks, live vs replay side by side, the reasons."""
    w = doc["window"]
    checks = doc["checks"]
    rows = [[name, "identical" if c.get("identical") else ("-" if c.get("identical") is None else "DIFFERENT"),
             ", ".join(f"{k} {_fmt(v) if not isinstance(v, dict) else ''}".strip() for k, v in c.items()
                       if k not in ("identical", "journal", "first_difference", "note"))]
            for name, c in checks.items()]
    _print_wide(_table(f"reconcile {doc['asset']}: session {w['seconds']:.0f} s from {w['start']:.3f} "
                       f"(bundle {doc['bundle']})", ["check", "result", "numbers"], rows))
    rc = doc["replay_config"]
    _print_wide(_table(f"live vs replay (latency {rc['latency_s']:g} s, queue {rc['queue_model']}, tick "
                       f"{rc['tick_size']:g})", ["", "live", "replay", "live - replay"],
                       [[r["what"], _fmt(r["live"]), _fmt(r["replay"]), _fmt(r["diff"])] for r in doc["table"]]))
    out.print(f"trades with the same fills: {doc['trades_matched']}, with different fills: {doc['trades_different']}",
              markup=False, highlight=False, soft_wrap=True)
    if doc["by_reason"]:
        _print_wide(_table("why they differ", ["reason", "trades", "live volume", "replay volume", "explanation"],
                           [[k, v["trades"], _fmt(v["live_volume"]), _fmt(v["replay_volume"]),
                             v["explanation"] + (f" (median gap {v['median_best_price_gap_bps']:.2f} bp)"
                                                 if "median_best_price_gap_bps" in v else "")]
                            for k, v in doc["by_reason"].items()]))
    for n in doc["notes"]:
        out.print(f"  {n}", markup=False, highlight=False, soft_wrap=True)
