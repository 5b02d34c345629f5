"""Unit tests of module_utils/_qdrant*.py, the modules' input checks and the stand-in's spec validator (no servers)."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import threading
import time
import types

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import (
    _files,
    _http,
    _qdrant,
    _qdrant_compare,
    _qdrant_compat,
    _qdrant_download,
    _qdrant_recover,
)
from ansible_collections.sophia.migrate.plugins.modules import qdrant_compare, qdrant_snapshot
from support.modules import run_module

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "standins"))


@pytest.mark.parametrize(
    ("source", "target", "ok", "text"),
    [
        ("1.19.0", "1.19.3", True, "same or next minor"),
        ("1.19.2", "1.20.0", True, "same or next minor"),
        ("1.19.0", "1.21.0", False, "more than one minor version ahead"),
        ("1.19.0", "1.18.9", False, "no downgrades"),
        ("1.19.0", "2.0.0", False, "major version"),
        ("v1.12", "1.13.1-dev", True, "same or next minor"),
    ],
)
def test_version_compatibility(source, target, ok, text):
    got, reason = _qdrant_compat.version_compatible(source, target)
    assert got is ok and text in reason


def test_config_conflicts_name_the_difference():
    snap = {"params": {"vectors": {"text": {"size": 768, "distance": "Cosine"}}, "shard_number": 2}}
    same = {"params": {"vectors": {"text": {"size": 768, "distance": "Cosine", "on_disk": True}}, "shard_number": 2}}
    assert _qdrant_compat.config_conflicts(snap, same, "c") == []
    other = {"params": {"vectors": {"text": {"size": 1024, "distance": "Cosine"}}, "sparse_vectors": {"bm25": {}}}}
    reasons = _qdrant_compat.config_conflicts(snap, other, "c")
    assert "target vectors [text=1024 Cosine] differ from the snapshot's [text=768 Cosine]" in reasons[0]
    assert "sparse vectors ['bm25']" in reasons[1] and "target has 1 shard(s), the snapshot 2" in reasons[2]


def test_redact_url_and_endpoint_checks():
    assert _http.redact_url("https://u:p@h.example:6333/x?token=1") == "https://h.example:6333/x"
    with pytest.raises(_qdrant.QdrantError, match="must be an http"):
        _qdrant.Endpoint.from_params("url", {"url": "ftp://h"})


def test_search_equal_allows_ties_in_any_order():
    def p(i, s):
        return types.SimpleNamespace(id=i, score=s)

    assert _qdrant_compare.search_equal([p(1, 0.9), p(2, 0.5), p(3, 0.5)], [p(1, 0.9), p(3, 0.5), p(2, 0.5)])
    assert _qdrant_compare.search_equal([p(1, 0.9), p(2, 0.5)], [p(1, 0.9), p(7, 0.5)])  # cut tie group at the limit
    assert not _qdrant_compare.search_equal([p(1, 0.9), p(2, 0.5)], [p(2, 0.9), p(1, 0.5)])


def test_id_order_numbers_before_uuids():
    ids = ["6f1c2b1e-0000-4000-8000-000000000000", 10, 2, "00000000-0000-4000-8000-000000000001"]
    assert sorted(ids, key=_qdrant_compare.id_key) == [2, 10, ids[3], ids[0]]


def test_config_diff_normalises_defaults():
    a = {"params": {"vectors": {"size": 4, "distance": "Dot"}, "shard_number": None}}
    b = {"params": {"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 1}}
    assert _qdrant_compare.config_diff(a, b, _qdrant_compare.DEFAULT_CONFIG_KEYS) == []


def test_read_snapshot_meta_and_sha256(tmp_path):
    path = tmp_path / "s.snapshot"
    with tarfile.open(path, "w") as tar:
        for name, data in (("config.json", b'{"params": {"shard_number": 1}}'), ("version.info", b"1.19.0\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert _qdrant_compat.read_snapshot_meta(str(path)) == {
        "config": {"params": {"shard_number": 1}},
        "version": "1.19.0",
    }
    assert _files.sha256_file(str(path), 65536) == hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "bad").write_bytes(b"not a tar")
    with pytest.raises(_qdrant.QdrantError, match="not a readable Qdrant snapshot"):
        _qdrant_compat.read_snapshot_meta(str(tmp_path / "bad"))


def test_multipart_body_streams_the_file(tmp_path):
    src = tmp_path / "a.snapshot"
    src.write_bytes(os.urandom(300_000))
    body = _qdrant_recover._MultipartBody(str(src), "BOUNDARY", chunk=65536)
    data = b""
    while chunk := body.read(8192):
        data += chunk
    body.close()
    assert len(data) == len(body)
    assert data.startswith(b"--BOUNDARY\r\n") and data.endswith(b"\r\n--BOUNDARY--\r\n")
    assert src.read_bytes() in data


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ({"state": "listed", "checksum": "abc"}, "64 hex digits"),
        ({"state": "listed", "chunk_size": 10}, "chunk_size"),
        ({"state": "listed", "flush_size": 1000}, "option 'flush_size' must be 0 (flush only at the end) or at least"),
        ({"state": "recovered", "collection": "c", "location": "gopher://x"}, "option 'location'"),
        ({"state": "listed", "url": "http://a:b@host"}, "must not embed credentials"),
    ],
)
def test_snapshot_input_errors(capsys, args, text):
    res = run_module(qdrant_snapshot, {"url": "http://127.0.0.1:1", **args}, capsys)
    assert res["failed"] and text in res["msg"]


def test_compare_input_errors(capsys):
    res = run_module(
        qdrant_compare,
        {
            "source": {"url": "http://127.0.0.1:1"},
            "target": {"url": "http://127.0.0.1:1"},
            "collection": "c",
            "batch_size": 0,
        },
        capsys,
    )
    assert res["failed"] and "option 'batch_size'" in res["msg"]


def test_api_keys_are_no_log():
    assert qdrant_snapshot.ARGUMENT_SPEC["api_key"]["no_log"] is True
    assert qdrant_snapshot.ARGUMENT_SPEC["location_api_key"]["no_log"] is True
    assert qdrant_snapshot.ARGUMENT_SPEC["source"]["options"]["api_key"]["no_log"] is True
    assert qdrant_compare.ARGUMENT_SPEC["source"]["options"]["api_key"]["no_log"] is True
    assert qdrant_snapshot.ARGUMENT_SPEC["validate_certs"]["default"] is True


def test_spec_validator_catches_a_wrong_answer():
    from qdrant_server import SpecValidator, find_spec  # noqa: PLC0415

    spec = find_spec()
    assert spec is not None, "the vendored specs/api/qdrant-openapi-v1.19.json is missing"
    v = SpecValidator(spec)
    good = {"status": "ok", "time": 0.1, "result": [{"name": "a.snapshot", "size": 3, "checksum": None}]}
    assert v.check_response("GET", "/collections/c/snapshots", 200, good) == []
    bad = {"status": "ok", "time": 0.1, "result": [{"name": "a.snapshot", "size": "3"}]}
    assert v.check_response("GET", "/collections/c/snapshots", 200, bad)
    assert v.check_request("PUT", "/collections/c/snapshots/recover", {}, {"priority": "snapshot"})
    assert v.check_request("POST", "/collections/c/nothing", {}, None)


class _PagedClient:
    """A qdrant-client stand-in for ``scroll`` only: pages of records; ``fail_on`` raises on that call."""

    def __init__(self, pages, fail_on=None):
        self.pages, self.fail_on, self.calls = pages, fail_on, 0

    def scroll(self, collection_name, limit, offset, with_payload, with_vectors):
        self.calls += 1
        if self.calls == self.fail_on:
            raise ConnectionError("connection reset by peer")
        index = offset or 0
        nxt = index + 1 if index + 1 < len(self.pages) else None
        return self.pages[index], nxt


def _records(ids):
    return [types.SimpleNamespace(id=i, vector=[float(i), 0.5], payload={"n": i}) for i in ids]


def test_prefetched_scroll_yields_every_point_in_order_and_digests_it():
    pytest.importorskip("qdrant_client")
    client = _PagedClient([_records(range(p * 3, p * 3 + 3)) for p in range(5)])
    side = _qdrant_compare._Side(
        _qdrant.Endpoint(label="source", url="http://q:6333", retries=0), client, "c", 3, depth=1
    )
    ids = [point[0] for point in side.points()]
    assert ids == list(range(15)) and side.count == 15 and side.ordered and client.calls == 5
    again = _qdrant_compare._Side(_qdrant.Endpoint(label="source", url="http://q:6333", retries=0), client, "c", 3)
    client.calls = 0
    list(again.points())
    assert again.digest == side.digest != 0


def test_a_scroll_failing_in_the_fetch_thread_is_raised_to_the_caller_naming_the_server():
    pytest.importorskip("qdrant_client")
    client = _PagedClient([_records(range(p * 3, p * 3 + 3)) for p in range(5)], fail_on=3)
    side = _qdrant_compare._Side(_qdrant.Endpoint(label="target", url="http://k3s:30333", retries=0), client, "c", 3)
    seen = []
    with pytest.raises(_qdrant.QdrantError, match=r"k3s:30333.*scrolling collection 'c'.*cannot reach"):
        for point in side.points():
            seen.append(point[0])
    assert seen == list(range(6))  # the two pages read before the failure, nothing after it


def test_a_scroll_left_early_stops_its_fetch_thread():
    pytest.importorskip("qdrant_client")
    client = _PagedClient([_records(range(p * 3, p * 3 + 3)) for p in range(50)])
    side = _qdrant_compare._Side(
        _qdrant.Endpoint(label="source", url="http://left-early:6333", retries=0), client, "c", 3
    )
    points = side.points()
    next(points)
    points.close()  # what compare() does with the other side when one side fails
    deadline = time.monotonic() + 5
    while any(th.name.startswith("scroll-") and "left-early" in th.name for th in threading.enumerate()):
        assert time.monotonic() < deadline, "the fetch thread kept running"
        time.sleep(0.05)
    assert client.calls < 50  # it stopped reading ahead instead of scrolling to the end


class _Disk:
    """A stand-in for fdatasync that records how much had been written when it was called (and may fail)."""

    def __init__(self, flusher_box: list, fail_after: int | None = None) -> None:
        self.box, self.fail_after, self.calls = flusher_box, fail_after, []

    def __call__(self, fd: int) -> None:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise OSError(28, "No space left on device")
        self.calls.append(self.box[0].written)
        time.sleep(0.001)  # a disk takes a moment


def test_the_flusher_syncs_every_window_while_writing_and_keeps_at_most_two_windows_unflushed():
    box: list = []
    disk = _Disk(box)
    flusher = _qdrant_download._Flusher(-1, 4 << 20, sync=disk)
    box.append(flusher)
    behind = []
    for _mib in range(64):  # 64 MiB in 1 MiB writes
        flusher.wrote(1 << 20)
        behind.append(flusher.written - flusher.flushed)
    flusher.close()
    assert max(behind) <= 2 * (4 << 20)  # dirty data stays flat: the writer waits for the disk
    # each flush covers at most two windows and one write (9 MiB): at least 7 flushes for 64 MiB
    assert flusher.syncs == len(disk.calls) >= 64 // 9
    assert flusher.flushed >= (64 - 9) << 20  # the final fsync is left with the tail only
    assert disk.calls == sorted(disk.calls) and disk.calls[0] >= 4 << 20  # each flush covers a full window


def test_a_failing_flush_is_raised_to_the_writer():
    box: list = []
    flusher = _qdrant_download._Flusher(-1, 1 << 20, sync=_Disk(box, fail_after=1))
    box.append(flusher)
    with pytest.raises(OSError, match="No space left"):
        for _mib in range(64):
            flusher.wrote(1 << 20)
        flusher.close()


def test_flush_size_zero_starts_no_thread_and_flushes_nothing():
    flusher = _qdrant_download._Flusher(-1, 0, sync=lambda fd: pytest.fail("flushed"))
    flusher.wrote(1 << 30)
    flusher.close()
    assert flusher.syncs == 0 and flusher.thread is None


def test_a_flush_that_ends_after_the_file_restarted_from_zero_does_not_count_the_old_bytes():
    started, release = threading.Event(), threading.Event()

    def slow(fd: int) -> None:
        started.set()
        release.wait(5)

    flusher = _qdrant_download._Flusher(-1, 1 << 20, sync=slow)
    flusher.wrote(2 << 20)  # a flush of these 2 MiB starts and hangs
    assert started.wait(5)
    flusher.restart()  # meanwhile the server ignored Range: the file starts again from byte 0
    release.set()
    flusher.close()
    assert flusher.syncs == 1 and flusher.written == 0 and flusher.flushed == 0


def test_the_file_is_written_in_bounded_slices_and_short_writes_are_continued(monkeypatch):
    """A 4 MiB chunk goes to the file in write(2) calls of at most WRITE_SLICE bytes (large writes cost the kernel
    far more per byte on the test machine, see the constant's comment); a short write is continued where it ended,
    so every byte lands once and in order."""
    calls: list[int] = []
    out = bytearray()

    def fake_write(fd: int, data: memoryview) -> int:
        assert fd == 7
        n = len(data) if len(calls) % 3 else max(1, len(data) // 2)  # every third call writes only half
        calls.append(len(data))
        out.extend(bytes(data[:n]))
        return n

    monkeypatch.setattr(_qdrant_download.os, "write", fake_write)
    chunk = os.urandom(4 << 20)
    _qdrant_download._write_all(7, memoryview(chunk))
    assert bytes(out) == chunk
    assert max(calls) == _qdrant_download.WRITE_SLICE < len(chunk)
    assert len(calls) > len(chunk) // _qdrant_download.WRITE_SLICE  # the short writes were continued
