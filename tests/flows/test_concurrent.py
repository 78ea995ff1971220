"""Two identical ``mmcal calibrate`` at once on one artifacts folder (flows/calibrate.py,
``_locks``): each fit is sampled once (the other run waits and takes it from the
cache), the bundle is registered once, and the two report the same version, one
``registered``, the other ``already_registered``.

Real processes on a fresh world (:func:`cli_world`, :func:`concurrent_pair` in
conftest.py): new Prefect and MLflow databases, opened by both at once.
"""

from __future__ import annotations

import sqlite3

from models.catalog import names


def test_two_identical_calibrations_at_once_register_one_version_and_say_so(concurrent_pair, cli_world):
    for rc, doc, err in concurrent_pair:
        assert rc == 0 and doc is not None, err[-3000:]
    docs = [doc for _, doc, _ in concurrent_pair]
    assert sorted(d["status"] for d in docs) == ["already_registered", "registered"], \
        [(d["status"], d["version"]) for d in docs]
    first = next(d for d in docs if d["status"] == "registered")
    second = next(d for d in docs if d["status"] == "already_registered")
    assert first["version"] == second["version"] == 1
    assert second["run_id"] == first["run_id"]           # the run that registered it
    assert "champion" in first["aliases"] and "challenger" in second["aliases"]

    with sqlite3.connect(cli_world["mlflow_db"]) as db:
        versions = db.execute("select version, run_id from model_versions where name = 'mm-priors-SYN'").fetchall()
        calibration_runs = db.execute("select count(*) from tags where key = 'kind' and value = 'calibrate'"
                                      ).fetchone()[0]
    assert versions == [(1, first["run_id"])]
    assert calibration_runs == 1                           # the second logged nothing of its own

    # every fit sampled by one of the two; the other took it from the cache
    sampled = sorted(m for d in docs for m, r in d["models"].items() if not r["cache_hit"])
    assert sampled == sorted(names())
    for m in names():
        assert docs[0]["models"][m]["cache_key"] == docs[1]["models"][m]["cache_key"]
