"""qdrant_compare against stand-in servers: one changed payload value among 10,000 points, and the other checks."""

from __future__ import annotations

import requests
from qdrant_server import QdrantStandin
from qdrant_support import fill, points, upsert

from ansible_collections.sophia.migrate.plugins.modules import qdrant_compare
from support.modules import run_module


def compare(capsys, src, tgt, **args):
    return run_module(
        qdrant_compare,
        {
            "source": {"url": src.url, "retries": 1, "backoff": 0.05},
            "target": {"url": tgt.url, "retries": 1, "backoff": 0.05},
            "collection": "docs",
            **args,
        },
        capsys,
        check_mode=True,
    )


def test_single_changed_payload_value_among_10000_points_is_found(qdrant, capsys):
    src, tgt = qdrant("src"), qdrant("tgt")
    # Dot: qdrant-client's local mode (behind the stand-in) re-normalises Cosine vectors on every upsert,
    # which may move a last float bit; a real Qdrant stores what it normalised once.
    fill(src.url, "docs", 10_000, dim=8, distance="Dot")
    fill(tgt.url, "docs", 10_000, dim=8, distance="Dot")
    same = compare(capsys, src, tgt, batch_size=1000, search_samples=5)
    assert same["equal"] is True and same["digest"]["points_source"] == 10_000, same
    changed = next(p for p in points(10_000, dim=8, seed=1) if p["id"] == 7321)
    changed["payload"]["meta"]["len"] += 1
    upsert(tgt.url, "docs", [changed])
    diff = compare(capsys, src, tgt, batch_size=1000, search_samples=5)
    assert diff["failed"] and diff["equal"] is False, diff
    assert diff["count"] == {"source": 10_000, "target": 10_000}
    assert diff["differing_points"] == 1 and diff["missing_on_target"] == 0 and diff["only_on_target"] == 0
    assert diff["differences"] == [{"id": 7321, "problem": "payload differs in ['meta']"}]
    assert diff["digest"]["source"] != diff["digest"]["target"]
    assert "collections differ" in diff["msg"]


def test_missing_points_config_and_search_differences(qdrant, capsys):
    src, tgt = qdrant("src"), qdrant("tgt")
    fill(src.url, "docs", 200, dim=4, distance="Dot")
    fill(tgt.url, "docs", 200, dim=4, distance="Euclid")
    res = compare(capsys, src, tgt, fail_on_difference=False, search_samples=4)
    assert res["equal"] is False and not res.get("failed")
    assert res["config_differences"][0]["key"] == "params.vectors"
    assert res["differing_points"] == 0 and res["count"] == {"source": 200, "target": 200}
    assert res["config_differences"][0]["source"]["distance"] == "Dot"
    fill(tgt.url, "other", 199, dim=4, distance="Dot")
    upsert(tgt.url, "other", [{"id": 500, "vector": [0.1, 0.2, 0.3, 0.4], "payload": {}}])
    res = compare(capsys, src, tgt, target_collection="other", fail_on_difference=False, search_samples=3)
    assert res["missing_on_target"] == 1 and res["only_on_target"] == 1, res
    assert {"id": 199, "problem": "missing on target"} in res["differences"]
    assert {"id": 500, "problem": "only on target"} in res["differences"]
    assert res["search"]["samples"] == 3
    missing = compare(capsys, src, tgt, target_collection="nope")
    assert missing["failed"] and "nope" in missing["msg"] and "404" in missing["msg"]


def test_a_restarted_standin_serves_the_same_vectors_and_recovers_equal(qdrant, capsys, tmp_path):
    """Stand-in fidelity: real Qdrant serves the normalised Cosine vector before and after a restart, and a
    snapshot taken after a restart recovers bit-identical. qdrant-client's local mode loads persisted vectors
    raw, so the stand-in normalises them at start; without it this comparison finds every point different."""
    src = qdrant("src")
    fill(src.url, "c", 0, dim=4)
    for p in points(30, dim=4, seed=5):  # one at a time, as the lab's services write
        upsert(src.url, "c", [p])
    before = requests.post(
        f"{src.url}/collections/c/points/scroll", json={"limit": 100, "with_vector": True}, timeout=30
    ).json()
    storage = src.storage
    src.stop()
    again = QdrantStandin(storage).start()
    try:
        after = requests.post(
            f"{again.url}/collections/c/points/scroll", json={"limit": 100, "with_vector": True}, timeout=30
        ).json()
        assert after["result"] == before["result"]
        dst = qdrant("dst")
        snap = requests.post(f"{again.url}/collections/c/snapshots?wait=true", timeout=30).json()["result"]["name"]
        data = requests.get(f"{again.url}/collections/c/snapshots/{snap}", timeout=30).content
        requests.post(
            f"{dst.url}/collections/c/snapshots/upload?wait=true", files={"snapshot": ("c.snapshot", data)}, timeout=30
        ).raise_for_status()
        result = run_module(
            qdrant_compare, {"source": {"url": again.url}, "target": {"url": dst.url}, "collection": "c"}, capsys
        )
        assert result["equal"] is True and result["differing_points"] == 0
    finally:
        again.stop()
