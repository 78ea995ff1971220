"""`mmcal fit` (DESIGN.md section 8) and the model catalog behind it: the JSON document
names the parameters as the synthetic market's truth.json does, reports the gate's
verdict without hiding a failure (exit 0; --strict exits 1), and bad input is one
error line with exit status 2.

Kept short: one 15-minute synthetic market, three small PyMC fits (2 chains x 200
draws), everything else without sampling."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app
from models import catalog

runner = CliRunner()
SMALL = ["--sampler", "pymc", "--draws", "200", "--tune", "200", "--chains", "2", "--no-progress"]
PARAM_FIELDS = {"mean", "sd", "q05", "q95", "r_hat", "ess_bulk", "ess_tail"}


def _run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _var(name: str) -> str:
    return name.partition("[")[0]


def _check_names_against_truth(model: str, names, truth) -> None:
    """Every reported name is a truth.json name (but for the variables the truth has
    no value for), and every truth.json name of a reported variable at the model's
    resolution is reported (the truth also has finer ones, e.g.
    adverse_move_bps[low,buy] per regime and side where alpha fits one
    adverse_move_bps)."""
    params = truth["params"]
    spec = catalog.spec(model)
    reported_vars = {_var(n) for n in names}
    assert reported_vars == set(spec.reported_vars())
    assert {_var(n) for n in names if n not in params} == set(spec.without_truth)
    arity = {_var(n): n.count(",") + ("[" in n) for n in names}
    expected = [k for k in params if _var(k) in arity and k.count(",") + ("[" in k) == arity[_var(k)]]
    assert expected and set(expected) <= set(names), set(expected) - set(names)


@pytest.fixture(scope="module")
def market_dir(tmp_path_factory):
    from models.data.synthetic import simulate_market, write_market

    d = tmp_path_factory.mktemp("fit") / "market"
    write_market(simulate_market(seed=5, duration_s=900.0), d)
    return d


@pytest.fixture(scope="module")
def truth(market_dir):
    return json.loads((market_dir / "truth.json").read_text())


@pytest.fixture(scope="module")
def kappa_run(market_dir):
    """Lenient gate + --strict: the fit passes, so the exit status is 0."""
    return _run("fit", "--model", "kappa", "--source", "synthetic", market_dir, "--regimes", "truth",
                *SMALL, "--max-r-hat", "1.1", "--min-ess", "50", "--strict", "--json")


@pytest.fixture(scope="module")
def alpha_run(market_dir):
    """Default gate (ESS >= 400 cannot hold for 2 x 200 draws): fails, exit status still 0."""
    return _run("fit", "--model", "alpha", "--source", "synthetic", market_dir, "--regimes", "truth",
                *SMALL, "--json")


@pytest.mark.parametrize("model", ["kappa", "alpha"])
def test_fit_json_has_every_truth_name_and_the_fields(model, request, truth):
    r = request.getfixturevalue(f"{model}_run")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)  # stdout holds exactly one JSON document
    assert set(doc) >= {"model", "asset", "source", "n_obs", "sampler", "gate", "diagnostics",
                        "parameters", "model_version"}
    assert doc["model"] == model and doc["source"] == "synthetic" and doc["asset"] == truth["asset"]
    assert doc["n_obs"] > 0 and doc["regimes"] == "truth"
    assert doc["sampler"]["sampler"] == "pymc" and doc["sampler"]["draws"] == 200
    assert doc["sampler"]["chains"] == 2
    assert doc["model_version"].startswith(f"{model}-")

    _check_names_against_truth(model, list(doc["parameters"]), truth)
    for name, p in doc["parameters"].items():
        assert set(p) == PARAM_FIELDS, name
        assert p["q05"] <= p["mean"] <= p["q95"] and p["sd"] > 0, (name, p)

    g = doc["gate"]
    assert isinstance(g["passed"], bool) and isinstance(g["failures"], list)
    assert g["passed"] == (not g["failures"])
    d = doc["diagnostics"]
    for k in ("r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences", "bfmi_min", "loo_elpd",
              "loo_se", "pareto_k_max"):
        assert k in d, k
    assert d["loo_vars"] == [catalog.spec(model).loo_var]
    assert "sampling" in r.stderr and "done in" in r.stderr  # stage lines on stderr


def test_fit_by_laplace_reports_method_khat_and_reason(market_dir):
    """--inference laplace: the Laplace fit's k_hat and reason on stderr, in the JSON
    and in the gate (k_hat, not R-hat/ESS: 2 x 200 resampled draws would fail ESS 400)."""
    r = _run("fit", "--model", "kappa", "--source", "synthetic", market_dir, "--regimes", "truth",
             *SMALL, "--inference", "laplace", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    s, d = doc["sampler"], doc["diagnostics"]
    assert s["inference"] == "laplace" and s["psis_khat"] == pytest.approx(d["psis_khat"])
    assert "PSIS k_hat" in s["inference_reason"] and "inference: laplace" in r.stderr
    from models.sampling import GateConfig

    assert doc["gate"]["passed"] == (d["psis_khat"] < GateConfig().max_psis_k)
    assert not any("ess" in f for f in doc["gate"]["failures"])


def test_gate_failure_is_reported_with_exit_0(alpha_run):
    doc = json.loads(alpha_run.stdout)
    assert alpha_run.exit_code == 0
    assert doc["gate"]["passed"] is False
    assert any("ess" in f for f in doc["gate"]["failures"]), doc["gate"]


def test_strict_exit_status_follows_the_gate(kappa_run):
    doc = json.loads(kappa_run.stdout)
    assert doc["gate"]["passed"] is True, doc["gate"]
    assert doc["gate"]["config"]["max_r_hat"] == 1.1 and doc["gate"]["config"]["min_ess_tail"] == 50
    assert kappa_run.exit_code == 0


def test_table_output_mentions_the_gate_and_strict_fails(market_dir):
    r = _run("fit", "--model", "alpha", "--source", "synthetic", market_dir, "--regimes", "truth",
             *SMALL, "--strict")
    assert r.exit_code == 1, r.stderr
    out = r.stdout
    assert "alpha posterior" in out and "alpha_touch[normal]" in out and "alpha_decay_bps" in out
    for s in ("ess_bulk", "r_hat", "divergences", "BFMI", "elpd_loo", "Pareto k",
              "gate: FAIL", "model version alpha-"):
        assert s in out, s
    assert "Traceback" not in r.stderr


# --------------------------------------------------------------------------- names without sampling
def _names_from_model(name, pm_model):
    import arviz as az
    import xarray as xr

    rng = np.random.default_rng(0)
    coords = {k: list(v) for k, v in pm_model.coords.items()}
    data = {}
    for v in catalog.spec(name).var_names:
        dims = tuple(pm_model.named_vars_to_dims.get(v, ()))
        shape = (2, 4) + tuple(len(coords[d]) for d in dims)
        data[v] = (("chain", "draw") + dims, rng.uniform(0.1, 0.9, shape))
    used = {d for _, (dims, _) in data.items() for d in dims[2:]}
    post = xr.Dataset(data, coords={d: coords[d] for d in used})
    return [r["name"] for r in catalog.parameter_rows(name, az.InferenceData(posterior=post))]


@pytest.mark.parametrize("name", ["regime", "hawkes"])
def test_reported_names_are_truth_json_names(name, market_dir, truth):
    """regime and hawkes are not sampled in this file: their posterior names come from
    the models' own dims and coords, reported through the catalog."""
    from models.data.loaders import load

    market = load("synthetic", market_dir)
    obs = catalog.prepare(name, market, "truth")
    mod = catalog.spec(name).module
    names = _names_from_model(name, mod.build_model(obs))
    _check_names_against_truth(name, names, truth)
    if name == "regime":  # total volatility: truth.json's sigma_bps (sigma_diffusion_bps is not reported)
        assert "sigma_bps[low]" in names and "regime_transition[low,normal]" in names
        assert not any(n.startswith("sigma_diffusion_bps") for n in names)


def test_catalog_regime_paths(market_dir, truth):
    from models.data.loaders import load

    market = load("synthetic", market_dir)
    em = catalog.regime_path(market, "em")
    tr = catalog.regime_path(market, "truth")
    assert catalog.regime_path(market, "quantile") is None
    assert em.shape == tr.shape and em.dtype == np.int8 and set(np.unique(em)) <= {0, 1, 2, 3}
    assert np.array_equal(tr, np.asarray(truth["regime_path"][: len(tr)], dtype=np.int8))
    assert np.array_equal(em, catalog.regime_path(market, "em"))  # deterministic
    obs = catalog.prepare("kappa", market, "em")
    assert catalog.n_obs("kappa", obs) > 0
    with pytest.raises(ValueError, match="unknown model"):
        catalog.spec("gamma")


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("case", ["missing", "unknown_source", "wrong_source", "unknown_asset",
                                  "unknown_model", "bad_regimes", "bad_draws", "bad_divergences", "truth_without_truth",
                                  "components_not_hawkes", "bad_components"])
def test_fit_bad_input_is_one_clear_line(tmp_path, market_dir, case):
    base = ["fit", "--model", "kappa"]
    if case == "missing":
        args, expect = base + ["--source", "synthetic", tmp_path / "nope"], "nope"
    elif case == "unknown_source":
        args, expect = base + ["--source", "nasdaq", market_dir], "unknown source"
    elif case == "wrong_source":
        args, expect = base + ["--source", "lobster", market_dir], str(market_dir)
    elif case == "unknown_asset":
        # the loader refuses to relabel the data: the line names the data's own asset
        args, expect = base + ["--source", "synthetic", market_dir, "--asset", "BTC"], "is 'SYN', not 'BTC'"
    elif case == "unknown_model":
        args, expect = ["fit", "--model", "gamma", "--source", "synthetic", market_dir], "--model"
    elif case == "bad_regimes":
        args, expect = base + ["--source", "synthetic", market_dir, "--regimes", "hmm"], "--regimes"
    elif case == "bad_draws":
        args, expect = base + ["--source", "synthetic", market_dir, "--draws", "0"], "--draws"
    elif case == "bad_divergences":
        args, expect = base + ["--source", "synthetic", market_dir, "--max-divergences", "-1"], "--max-divergences"
    elif case == "components_not_hawkes":
        args, expect = base + ["--source", "synthetic", market_dir, "--hawkes-components", "2"], "--hawkes-components"
    elif case == "bad_components":
        args, expect = (["fit", "--model", "hawkes", "--source", "synthetic", market_dir, "--hawkes-components", "9"],
                        "--hawkes-components: '9'")
    else:  # a synthetic market whose truth lost its regime path stands in for real data
        d = tmp_path / "m"
        d.mkdir()
        for f in market_dir.iterdir():
            (d / f.name).write_bytes(f.read_bytes())
        t = json.loads((d / "truth.json").read_text())
        del t["regime_path"]
        (d / "truth.json").write_text(json.dumps(t))
        args, expect = base + ["--source", "synthetic", d, "--regimes", "truth"], "--regimes truth"
    r = _run(*args)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("mmcal: error")]
    assert len(lines) == 1 and expect in lines[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_draws_beyond_the_memory_are_one_clear_line(market_dir):
    """A trace that cannot fit in memory is refused before sampling (in a real process:
    an allocation failure would abort it with status 134)."""
    import subprocess
    import sys
    from pathlib import Path

    p = subprocess.run([sys.executable, "-m", "flows.cli", "fit", "--model", "kappa", "--source", "synthetic",
                        str(market_dir), "--regimes", "truth", "--draws", str(10**12), "--chains", "1",
                        "--tune", "10", "--no-progress"], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[3], timeout=300)
    assert p.returncode == 2, p.stderr[-2000:]
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("mmcal: error")]
    assert len(lines) == 1 and "--draws/--chains" in lines[0] and "GB" in lines[0], p.stderr[-2000:]
    assert "Traceback" not in p.stderr and p.stdout == ""


def test_regimes_truth_on_real_data_is_an_error(shared_data):
    f = shared_data / "lobster" / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip"
    r = _run("fit", "--model", "kappa", "--source", "lobster", f, "--regimes", "truth")
    assert r.exit_code == 2
    assert "--regimes truth" in r.stderr and "synthetic" in r.stderr and r.stdout == ""


def test_fills_loading_rule_books_only_where_a_model_needs_them(shared_data):
    """The order book (LOBSTER: and its messages) is loaded only for a model that
    needs_books: a kappa fit's market, and so its data hash, is unchanged."""
    from flows.fitting import books_wanted, read_market, read_market_for

    f = shared_data / "lobster" / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip"
    assert books_wanted(("fills",)) and not books_wanted(("regime", "alpha", "kappa", "hawkes"))
    plain = read_market_for(("kappa",), "lobster", f, None)
    assert plain.books is None and plain.messages is None
    assert plain.sha256() == read_market("lobster", f, None).sha256()
    full = read_market_for(("kappa", "fills"), "lobster", f, None)
    assert len(full.books) > 0 and len(full.messages) > 0 and full.sha256() != plain.sha256()


def test_fills_on_real_lobster_data(shared_data):
    """`mmcal fit --model fills` on a short LOBSTER AAPL window: exact-FIFO queue orders
    from the order book and messages, sampled, summarised and gated (tiny draws: the
    verdict is reported, not required to pass)."""
    f = shared_data / "lobster" / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip"
    r = _run("fit", "--model", "fills", "--source", "lobster", f, "--window", "0:0.02", "--sampler", "nutpie",
             "--draws", "100", "--tune", "100", "--chains", "2", "--no-progress", "--json")
    assert r.exit_code == 0, r.stderr[-2000:]
    d = json.loads(r.stdout)
    assert d["window"] == "0:0.02" and d["rows"]["books"] > 0 and d["rows"]["messages"] > 0
    assert d["n_obs"] > 100 and d["obs_unit"] == "queue orders"
    names = set(d["parameters"])
    assert {"fill_hazard[normal]", "fill_queue_coef", "markout_mean_bps[normal,1s]"} <= names
    for p in d["parameters"].values():
        assert set(p) == PARAM_FIELDS and np.isfinite(p["mean"]) and p["sd"] >= 0
    assert isinstance(d["gate"]["passed"], bool) and np.isfinite(d["diagnostics"]["r_hat_max"])
    assert all(v["mean"] > 0 for k, v in d["parameters"].items() if k.startswith("fill_hazard["))
