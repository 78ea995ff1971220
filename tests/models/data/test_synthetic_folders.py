"""A folder of several synthetic markets (one subfolder each, as ``mmcal simulate
--asset NAME --out DIR/NAME`` writes them): ``--asset`` picks one, for many-asset
calibrations (``mmcal calibrate DIR --source synthetic --asset A --asset B``)."""

from __future__ import annotations

import pytest

from models.data.loaders import load
from models.data.synthetic import SyntheticConfig, simulate_market, write_market
from models.data.tables import DataError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("markets")
    for seed, name in ((1, "AAA"), (2, "BBB")):
        write_market(simulate_market(seed=seed, duration_s=60.0, config=SyntheticConfig(asset=name)), root / name.lower())
    return root


def test_the_asset_picks_its_subfolder(folder):
    a, b = load("synthetic", folder, "AAA"), load("synthetic", folder, "bbb")
    assert (a.asset, b.asset) == ("AAA", "BBB")
    assert a.sha256() != b.sha256()
    assert a.sha256() == load("synthetic", folder / "aaa").sha256()   # the same market as its own folder


def test_several_markets_need_an_asset_and_an_unknown_one_is_named(folder):
    with pytest.raises(DataError, match=r"holds 2 synthetic markets \(AAA, BBB\)"):
        load("synthetic", folder)
    with pytest.raises(DataError, match=r"no synthetic market of asset 'CCC' in it \(found AAA, BBB\)"):
        load("synthetic", folder, "CCC")


def test_a_market_folder_still_refuses_another_asset(folder):
    with pytest.raises(DataError, match="the market is 'AAA', not 'BBB'"):
        load("synthetic", folder / "aaa", "BBB")
