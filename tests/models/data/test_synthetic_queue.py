"""The synthetic market's book with queues and its queue orders: the existing market keeps
its bytes (trades, quotes, earlier truth values: sha256 of the parent commit's output), the
queue orders follow the contract (docs/models/fills.md) and travel through the directory."""

import hashlib
import json

import numpy as np
import pytest

from models.data.synthetic import SyntheticConfig, file_sha256, load_synthetic, simulate_market, write_market
from models.data.synthetic_queue import clip_to_window

# sha256 of trades.parquet / quotes.parquet and of the params (sorted JSON) written by the
# commit before the queue layer existed (same seeds and durations)
PARENT = {
    (0, 300.0): ("553021366d3c9f705c15897a6a50afe22654ae6c596022b3db4b6d8e6c7551f4",
                 "2c7319e7cb00039b839d1532a00608b6f367b7563aa8490039095ab03d153721"),
    (7, 600.0): ("b82779c527d7f2b076ac365994d9dd5c73fc48e060ddee2843007ade3dc4fe43",
                 "8215f9f2fca04c74c3f049e0185aeceb67806c8118200a851b3f275b0f88fb8e"),
    (11, 120.0): ("b164575e326adff40eceaee3a44ff02fb67e749fc836f105c1ea674909d01685",
                  "1a75c8e8e42595f4974023f8c69ba12a0cf8a88b5ba059e93d8efde4417bcc9d"),
}
PARENT_PARAMS = "db0a6cae51ab5868ce7aa4fd93f7674a5e87942cd02218afba5c81f7aca3e0d7"
QUEUE_PREFIXES = ("fill_", "markout_mean_bps[", "markout_level_bps", "markout_queue_bps",
                  "markout_imbalance_bps", "markout_sd_bps")

CONTRACT = ["ts", "side", "level", "price", "depth_bps", "queue_ahead", "queue_ahead_trades", "imbalance",
            "spread_ticks", "duration_s", "outcome", "filled", "capture_bps", "markout_bps@0.5s",
            "markout_bps@1s", "markout_bps@5s", "markout_bps@30s"]


@pytest.mark.parametrize("seed,duration", sorted(PARENT))
def test_existing_market_keeps_its_bytes(tmp_path, seed, duration):
    m = simulate_market(seed, duration)
    paths = write_market(m, tmp_path)
    assert (file_sha256(paths["trades"]), file_sha256(paths["quotes"])) == PARENT[(seed, duration)]
    old = {k: v for k, v in m.truth["params"].items() if not k.startswith(QUEUE_PREFIXES)}
    assert hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest() == PARENT_PARAMS
    assert len(m.truth["params"]) > len(old)


def test_queue_orders_contract_and_round_trip(tmp_path):
    m = simulate_market(3, 400.0)
    q = m.meta["queue_orders"]
    assert list(q.columns) == CONTRACT
    assert q.attrs["queue_source"] == "synthetic" and q.attrs["queue_levels"] == 3
    assert set(q["outcome"]) <= {"filled", "through", "repost", "away", "end"}
    np.testing.assert_array_equal(q["filled"], q["outcome"].isin(["filled", "through"]))
    assert (q["duration_s"] > 0).all() and (q["duration_s"] <= 1.0 + 1e-9).all()
    assert q["imbalance"].between(-1, 1).all()
    # fills fall with the level (the truth's level coefficient is negative)
    rate = q.groupby("level")["filled"].mean().to_numpy()
    assert np.all(np.diff(rate) < 0)
    # markouts only after fills
    assert q.loc[~q["filled"], "markout_bps@1s"].isna().all()
    # the book: K+1 levels per side at every re-post, bids below asks
    b = m.books
    assert len(b) == 400 * 2 * 4
    top = b[b["level"] == 0].pivot(index="ts", columns="side", values="price")
    assert (top[1] < top[-1]).all()
    write_market(m, tmp_path)
    back = load_synthetic(tmp_path)
    assert back.sha256() == m.sha256()
    assert back.meta["queue_orders"].equals(q) and back.meta["queue_orders"].attrs == q.attrs
    # without queues: no books, no queue orders, no queue truth
    plain = simulate_market(3, 60.0, SyntheticConfig(queues=None))
    assert plain.books is None and "queue_orders" not in plain.meta
    assert not any(k.startswith("fill_") for k in plain.truth["params"])


def test_clip_to_window_censors_at_the_end():
    m = simulate_market(3, 200.0)
    q = m.meta["queue_orders"]
    t0 = int(q["ts"].iloc[0])
    end = t0 + 100 * 10**9 + 500_000_000          # mid-way through a re-post interval
    c = clip_to_window(q, t0, end)
    assert c["ts"].max() < end
    t_end = (c["ts"].to_numpy() + c["duration_s"].to_numpy() * 1e9)
    assert np.all(t_end <= end + 1)
    last = c[c["ts"] == c["ts"].max()]
    assert (last["outcome"].isin(["end", "filled", "through", "away"])).all()
    assert c.attrs == q.attrs
