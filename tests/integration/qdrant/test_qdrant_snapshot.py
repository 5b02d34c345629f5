"""qdrant_snapshot against stand-in servers: roundtrip, corruption, broken transfers, refusals, check mode."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import pathlib
import threading
import time

import pytest
import requests
from qdrant_support import StandinProcess, fill, upsert

from ansible_collections.sophia.migrate.plugins.modules import qdrant_compare, qdrant_snapshot
from support.modules import run_module

FAST = {"retries": 2, "backoff": 0.05, "timeout": 10}


def snap(capsys, url: str, check_mode: bool = False, **args):
    return run_module(qdrant_snapshot, {"url": url, **FAST, **args}, capsys, check_mode=check_mode)


def leftovers(directory: pathlib.Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_roundtrip_create_download_upload_recover_compare(qdrant, capsys, tmp_path):
    src, tgt = qdrant("src"), qdrant("tgt")
    fill(src.url, "docs", 500, dim=16)
    dest = tmp_path / "backup"
    dest.mkdir()

    checked = snap(capsys, src.url, check_mode=True, collection="docs")
    assert checked["changed"] is True and "would create" in checked["msg"]
    assert requests.get(f"{src.url}/collections/docs/snapshots", timeout=5).json()["result"] == []

    created = snap(capsys, src.url, collection="docs")
    assert created["changed"] is True, created
    name = created["snapshot"]["name"]
    assert len(created["snapshot"]["checksum"]) == 64

    would = snap(capsys, src.url, check_mode=True, collection="docs", state="downloaded", dest=str(dest))
    assert would["changed"] is True and leftovers(dest) == []

    got = snap(capsys, src.url, collection="docs", state="downloaded", dest=str(dest), snapshot_name=name)
    assert got["changed"] is True and got["checksum_verified"] is True, got
    assert got["sha256"] == created["snapshot"]["checksum"]
    assert leftovers(dest) == [name]
    assert oct(os.stat(dest / name).st_mode & 0o777) == "0o600"

    again = snap(capsys, src.url, collection="docs", state="downloaded", dest=str(dest / name))
    assert again["changed"] is False and "already holds" in again["msg"], again

    up_args = {"collection": "docs", "state": "uploaded", "src": str(dest / name), "source": {"url": src.url}}
    planned = snap(capsys, tgt.url, check_mode=True, **up_args)
    assert planned["changed"] is True and planned["compatibility"]["target_version"] == "1.19.0"
    assert requests.get(f"{tgt.url}/collections/docs", timeout=5).status_code == 404

    recovered = snap(capsys, tgt.url, **up_args)
    assert recovered["changed"] is True and recovered["recovered"] is True, recovered
    assert recovered["points_count"] == 500 and recovered["checksum_sent"] == got["sha256"]
    upload = [r for r in tgt.requests if r.endswith("/snapshots/upload")]
    assert upload == ["POST /collections/docs/snapshots/upload"]

    second = snap(capsys, tgt.url, **up_args)
    assert second["changed"] is False and "already present" in second["msg"]

    cmp = run_module(
        qdrant_compare, {"source": {"url": src.url}, "target": {"url": tgt.url}, "collection": "docs"}, capsys
    )
    assert cmp["equal"] is True and cmp["count"] == {"source": 500, "target": 500}, cmp
    assert cmp["digest"]["source"] == cmp["digest"]["target"]

    listed = snap(capsys, src.url, collection="docs", state="listed")
    assert [s["name"] for s in listed["snapshots"]] == [name]
    gone = snap(capsys, src.url, collection="docs", state="absent", snapshot_name=name, check_mode=True)
    assert gone["changed"] is True and snap(capsys, src.url, collection="docs", state="listed")["snapshots"]
    gone = snap(capsys, src.url, collection="docs", state="absent", snapshot_name=name)
    assert gone["changed"] is True and gone["diff"]["before"] == {"snapshot": name}
    assert snap(capsys, src.url, collection="docs", state="absent", snapshot_name=name)["changed"] is False


def test_recover_from_url_with_checksum_and_full_snapshot(qdrant, capsys, tmp_path):
    src, tgt = qdrant("src"), qdrant("tgt")
    fill(src.url, "docs", 120)
    created = snap(capsys, src.url, collection="docs")
    name, checksum = created["snapshot"]["name"], created["snapshot"]["checksum"]
    location = f"{src.url}/collections/docs/snapshots/{name}"
    bad = snap(
        capsys,
        tgt.url,
        collection="docs",
        state="recovered",
        location=location,
        checksum="0" * 64,
        source_version="1.19.0",
    )
    assert bad["failed"] and "checksum mismatch" in bad["msg"]
    ok = snap(
        capsys,
        tgt.url,
        collection="docs",
        state="recovered",
        location=location,
        checksum=checksum,
        source_version="1.19.0",
    )
    assert ok["changed"] is True and ok["points_count"] == 120, ok

    full = snap(capsys, src.url)
    assert full["changed"] is True and full["snapshot"]["name"].startswith("full-snapshot-")
    got = snap(capsys, src.url, state="downloaded", dest=str(tmp_path))
    assert got["checksum_verified"] is True and got["sha256"] == full["snapshot"]["checksum"]
    refused = snap(capsys, tgt.url, state="uploaded", src=got["path"])
    assert refused["failed"] and "option 'collection' is required" in refused["msg"]
    reused = snap(capsys, src.url, reuse_max_age=3600)
    assert reused["changed"] is False and "reusing" in reused["msg"]


def test_corrupted_download_fails_and_leaves_nothing(qdrant, capsys, tmp_path):
    src = qdrant("src")
    fill(src.url, "docs", 300)
    snap(capsys, src.url, collection="docs")
    src.faults.corrupt_download = True
    dest = tmp_path / "dl"
    dest.mkdir()
    res = snap(capsys, src.url, collection="docs", state="downloaded", dest=str(dest / "docs.snapshot"))
    assert res["failed"] and "checksum mismatch" in res["msg"] and "nothing kept" in res["msg"], res
    assert res["sha256"] != res["expected_sha256"]
    assert leftovers(dest) == []


def test_connection_cut_mid_transfer_is_resumed_or_restarted(qdrant, capsys, tmp_path):
    src = qdrant("src")
    fill(src.url, "docs", 2000, dim=32)
    created = snap(capsys, src.url, collection="docs")
    size = created["snapshot"]["size"]
    src.faults.drop_after_bytes, src.faults.drops = size // 3, 2
    res = snap(
        capsys, src.url, collection="docs", state="downloaded", dest=str(tmp_path / "a.snapshot"), chunk_size=65536
    )
    assert not res.get("failed"), res
    assert res["resumed"] >= 1 and res["transfer_failures"] == 2 and res["sha256"] == created["snapshot"]["checksum"]
    ranges = [r for r in src.requests if r.startswith("GET /collections/docs/snapshots/")]
    assert len(ranges) == 3

    src.faults.drop_after_bytes, src.faults.drops, src.faults.ignore_range = size // 2, 1, True
    res = snap(capsys, src.url, collection="docs", state="downloaded", dest=str(tmp_path / "b.snapshot"))
    assert res["restarted"] == 1 and res["resumed"] == 0 and res["checksum_verified"] is True, res
    assert leftovers(tmp_path) == ["a.snapshot", "b.snapshot", "storage-src-0"]


def test_server_dies_mid_transfer_clean_failure_then_retry_succeeds(capsys, tmp_path):
    storage = str(tmp_path / "storage")
    proc = StandinProcess(storage, "--throttle-bps", "400000").start()
    try:
        fill(proc.url, "docs", 1500, dim=64)
        created = snap(capsys, proc.url, collection="docs")
        assert created["snapshot"]["size"] > 1_000_000, created
        dest = tmp_path / "dl"
        dest.mkdir()
        result: dict = {}

        def download() -> None:
            try:
                result.update(
                    snap(
                        capsys,
                        proc.url,
                        collection="docs",
                        state="downloaded",
                        dest=str(dest),
                        retries=2,
                        backoff=0.2,
                        chunk_size=65536,
                    )
                )
            except BaseException as exc:  # shown by the assertion below
                result["error"] = repr(exc)

        worker = threading.Thread(target=download)
        worker.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(p.stat().st_size > 100_000 for p in dest.iterdir()):
            time.sleep(0.05)
        proc.kill()  # the server dies mid-transfer and does not come back
        worker.join(60)
    finally:
        proc.stop()
    assert result.get("failed") and "nothing was kept" in result["msg"], result
    assert leftovers(dest) == []
    proc = StandinProcess(storage).start()  # back, same storage, no throttle
    try:
        again = snap(capsys, proc.url, collection="docs", state="downloaded", dest=str(dest))
    finally:
        out = proc.stop()
    assert again["changed"] is True and again["sha256"] == created["snapshot"]["checksum"], again
    assert leftovers(dest) == [created["snapshot"]["name"]]
    assert "OpenAPI violation" not in out


def test_incompatible_targets_are_refused(qdrant, capsys, tmp_path):
    src = qdrant("src")
    fill(src.url, "docs", 50, dim=8)
    snap(capsys, src.url, collection="docs")
    path = snap(capsys, src.url, collection="docs", state="downloaded", dest=str(tmp_path))["path"]

    newer = qdrant("newer", version="1.21.2")
    res = snap(capsys, newer.url, collection="docs", state="uploaded", src=path)
    assert res["failed"] and "more than one minor version ahead" in res["msg"], res
    older = qdrant("older", version="1.18.0")
    res = snap(capsys, older.url, collection="docs", state="uploaded", src=path, check_mode=True)
    assert res["failed"] and "no downgrades" in res["msg"]

    other = qdrant("other", version="1.20.0")
    fill(other.url, "docs", 5, dim=12, distance="Dot")
    res = snap(capsys, other.url, collection="docs", state="uploaded", src=path, force=True)
    assert (
        res["failed"]
        and "target vectors [<unnamed>=12 Dot] differ from the snapshot's [<unnamed>=8 Cosine]" in res["msg"]
    ), res
    assert requests.get(f"{other.url}/collections/docs", timeout=5).json()["result"]["points_count"] == 5

    sharded = qdrant("sharded")
    fill(sharded.url, "docs", 5, dim=8, shard_number=3)
    res = snap(capsys, sharded.url, collection="docs", state="uploaded", src=path, force=True)
    assert res["failed"] and "target has 3 shard(s), the snapshot 1" in res["msg"]
    assert not any(r.endswith("/upload") for r in other.requests + sharded.requests + newer.requests)

    res = snap(capsys, newer.url, collection="docs", state="recovered", location=f"{src.url}/x")
    assert res["failed"] and "option 'source' (the Qdrant it came from) or 'source_version'" in res["msg"]


def test_retries_api_key_and_input_errors(qdrant, capsys, tmp_path):
    src = qdrant("src", api_key="s3cret-key")
    fill(src.url, "docs", 10, headers={"api-key": "s3cret-key"})
    denied = snap(capsys, src.url, collection="docs", state="listed")
    assert denied["failed"] and "check option api_key" in denied["msg"]
    src.faults.fail_next = [503, 502]
    listed = snap(capsys, src.url, collection="docs", state="listed", api_key="s3cret-key")
    assert listed["changed"] is False and listed["attempts"] == 3, listed
    made = snap(capsys, src.url, collection="docs", api_key="s3cret-key")
    assert "s3cret-key" not in str(made)
    for args, text in (
        ({"state": "absent", "collection": "docs"}, "option 'snapshot_name' is required"),
        ({"state": "downloaded", "collection": "docs", "dest": str(tmp_path / "no" / "x")}, "does not exist"),
        ({"state": "downloaded", "collection": "docs", "dest": str(tmp_path), "checksum": "xyz"}, "64 hex"),
        ({"state": "present", "collection": "nope"}, "collection 'nope' does not exist"),
        ({"state": "uploaded", "collection": "docs"}, "exactly one of options 'src'"),
    ):
        res = snap(capsys, src.url, api_key="s3cret-key", **args)
        assert res["failed"] and text in res["msg"], (args, res["msg"])
    res = run_module(qdrant_snapshot, {"url": "http://user:pw@127.0.0.1:1", "state": "listed"}, capsys)
    assert res["failed"] and "must not embed credentials" in res["msg"] and "pw" not in res["msg"]
    res = snap(capsys, "http://127.0.0.1:1", state="listed", retries=1)
    assert res["failed"] and "cannot reach the server" in res["msg"]


@pytest.mark.parametrize("validate", [True])
def test_standin_cli_serves_the_lab_endpoints(tmp_path, validate):
    proc = StandinProcess(str(tmp_path / "s")).start()
    try:
        assert requests.get(f"{proc.url}/readyz", timeout=5).status_code == 200
        assert requests.get(f"{proc.url}/healthz", timeout=5).status_code == 200
        fill(proc.url, "lab", 20)
        assert requests.get(f"{proc.url}/collections", timeout=5).json()["result"]["collections"] == [{"name": "lab"}]
        upsert(proc.url, "lab", [{"id": 99, "vector": [0.1] * 8, "payload": {"x": 1}}])
        info = requests.get(f"{proc.url}/collections/lab", timeout=5).json()["result"]
        assert info["points_count"] == 21 and info["config"]["params"]["vectors"]["size"] == 8
        page = requests.post(f"{proc.url}/collections/lab/points/scroll", json={"limit": 100}, timeout=5).json()
        assert len(page["result"]["points"]) == 21
    finally:
        out = proc.stop()
    assert "OpenAPI violation" not in out, out


def test_a_download_is_flushed_to_disk_every_flush_size_bytes_while_it_streams(capsys, tmp_path, monkeypatch):
    """Before: one fsync of the whole file at the end. Now fdatasync every flush_size bytes during the transfer."""
    size, name = 40 << 20, "big-1-2026-01-01-00-00-00.snapshot"
    body = os.urandom(1 << 20) * 40
    listing = json.dumps({"status": "ok", "time": 0.0, "result": [
        {"name": name, "creation_time": "2026-01-01T00:00:00", "size": size,
         "checksum": hashlib.sha256(body).hexdigest()}]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = listing if self.path == "/collections/big/snapshots" else body
            self.send_response(200)
            self.send_header("Content-Type", "application/json" if data is listing else "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for i in range(0, len(data), 1 << 20):  # in pieces, as a network delivers it
                self.wfile.write(data[i:i + (1 << 20)])

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seen: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        seen.append(os.fstat(fd).st_size)  # how much of the file was there at this flush
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    try:
        dest = tmp_path / "big.snapshot"
        res = snap(capsys, f"http://127.0.0.1:{server.server_address[1]}", collection="big", state="downloaded",
                   dest=str(dest), chunk_size=1 << 20, flush_size=4 << 20)
    finally:
        server.shutdown()
        server.server_close()
    assert not res.get("failed"), res
    assert res["checksum_verified"] is True and dest.stat().st_size == size and dest.stat().st_mode & 0o777 == 0o600
    # flushed while streaming (partial files; only the last flush may race with the end of the transfer),
    # at least one per two windows and a write
    assert len(seen) == res["flushes"] >= size // (9 << 20), seen
    assert all(0 < n < size for n in seen[:-1]) and seen == sorted(seen), seen
    # flush_size=0: the whole file at the end only (the former behaviour, still available)
    seen.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        res = snap(capsys, f"http://127.0.0.1:{server.server_address[1]}", collection="big", state="downloaded",
                   dest=str(tmp_path / "again.snapshot"), flush_size=0)
    finally:
        server.shutdown()
        server.server_close()
    assert res["checksum_verified"] is True and res["flushes"] == 0 and seen == []
