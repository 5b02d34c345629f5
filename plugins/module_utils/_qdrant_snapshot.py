"""The states of sophia.migrate.qdrant_snapshot: listed, present, absent, downloaded, and the dispatch on ``state``.

Snapshots are collection snapshots, or full (storage) snapshots when no collection is given; they are listed,
created (or a recent one reused), deleted and downloaded through Qdrant's REST API (``_qdrant_rest``,
``_qdrant_download``); state=uploaded and state=recovered are ``_qdrant_recover``'s.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils._files import sha256_file
from ansible_collections.sophia.migrate.plugins.module_utils._http import HttpClient
from ansible_collections.sophia.migrate.plugins.module_utils._qdrant import (
    Endpoint,
    QdrantError,
    SnapshotRequest,
    split_url,
)
from ansible_collections.sophia.migrate.plugins.module_utils._qdrant_download import download
from ansible_collections.sophia.migrate.plugins.module_utils._qdrant_recover import state_recovered
from ansible_collections.sophia.migrate.plugins.module_utils._qdrant_rest import (
    api,
    get_collection,
    list_snapshots,
    snapshot_path,
    snapshots_path,
)

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def _age_seconds(creation_time: str | None) -> float | None:
    if not creation_time:
        return None
    try:
        stamp = dt.datetime.fromisoformat(creation_time.replace("Z", "+00:00"))
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.timezone.utc)
        return (dt.datetime.now(dt.timezone.utc) - stamp).total_seconds()
    except ValueError:
        return None


def _target_label(req: SnapshotRequest) -> str:
    return f"collection {req.collection!r}" if req.collection else "full storage"


def state_listed(ep: Endpoint, http: HttpClient, req: SnapshotRequest) -> dict[str, t.Any]:
    snaps = list_snapshots(ep, http, req.collection)
    return {"changed": False, "snapshots": snaps, "msg": f"{len(snaps)} snapshot(s) of {_target_label(req)}"}


def state_present(ep: Endpoint, http: HttpClient, req: SnapshotRequest, check_mode: bool) -> dict[str, t.Any]:
    snaps = list_snapshots(ep, http, req.collection)
    if req.snapshot_name:
        found = next((s for s in snaps if s["name"] == req.snapshot_name), None)
        if found is None:
            raise QdrantError(
                f"{ep.name}: snapshot {req.snapshot_name!r} of {_target_label(req)} does not exist; "
                "Qdrant names new snapshots itself, so omit option 'snapshot_name' to create one"
            )
        return {"changed": False, "snapshot": found, "msg": f"snapshot {found['name']} exists"}
    if req.reuse_max_age > 0 and snaps:
        newest = snaps[-1]
        age = _age_seconds(newest.get("creation_time"))
        if age is not None and age <= req.reuse_max_age:
            return {
                "changed": False,
                "snapshot": newest,
                "msg": f"reusing snapshot {newest['name']} ({age:.0f}s old <= reuse_max_age)",
            }
    if req.collection and get_collection(ep, http, req.collection) is None:
        raise QdrantError(f"{ep.name}: collection {req.collection!r} does not exist; check option 'collection'")
    if check_mode:
        return {"changed": True, "msg": f"would create a snapshot of {_target_label(req)}"}
    start = time.monotonic()
    snap = api(
        ep,
        http,
        "POST",
        snapshots_path(req.collection),
        f"creating a snapshot of {_target_label(req)}",
        params={"wait": "true"},
    )
    return {
        "changed": True,
        "snapshot": snap,
        "snapshot_seconds": round(time.monotonic() - start, 3),
        "msg": f"created snapshot {snap['name']} of {_target_label(req)} ({snap.get('size')} bytes)",
    }


def state_absent(ep: Endpoint, http: HttpClient, req: SnapshotRequest, check_mode: bool) -> dict[str, t.Any]:
    if not req.snapshot_name:
        raise QdrantError("option 'snapshot_name' is required when state=absent")
    snaps = list_snapshots(ep, http, req.collection)
    found = next((s for s in snaps if s["name"] == req.snapshot_name), None)
    if found is None:
        return {"changed": False, "msg": f"snapshot {req.snapshot_name} is absent"}
    diff = {"before": {"snapshot": found["name"]}, "after": {}}
    if check_mode:
        return {"changed": True, "diff": diff, "msg": f"would delete snapshot {found['name']}"}
    api(
        ep,
        http,
        "DELETE",
        snapshot_path(req.collection, found["name"]),
        f"deleting snapshot {found['name']}",
        params={"wait": "true"},
    )
    return {"changed": True, "diff": diff, "snapshot": found, "msg": f"deleted snapshot {found['name']}"}


def state_downloaded(ep: Endpoint, http: HttpClient, req: SnapshotRequest, check_mode: bool) -> dict[str, t.Any]:
    if not req.dest:
        raise QdrantError("option 'dest' is required when state=downloaded")
    snaps = list_snapshots(ep, http, req.collection)
    if not snaps:
        raise QdrantError(
            f"{ep.name}: {_target_label(req)} has no snapshot to download; create one first (state=present)"
        )
    if req.snapshot_name:
        snap = next((s for s in snaps if s["name"] == req.snapshot_name), None)
        if snap is None:
            raise QdrantError(
                f"{ep.name}: snapshot {req.snapshot_name!r} of {_target_label(req)} not found; "
                f"existing: {[s['name'] for s in snaps][-5:]}"
            )
    else:
        snap = snaps[-1]
    dest = os.path.join(req.dest, snap["name"]) if os.path.isdir(req.dest) else req.dest
    expected = (req.checksum or snap.get("checksum") or "").lower() or None
    if req.checksum and snap.get("checksum") and req.checksum.lower() != snap["checksum"].lower():
        raise QdrantError(
            f"option 'checksum' ({req.checksum}) differs from the checksum Qdrant reports for "
            f"{snap['name']} ({snap['checksum']})"
        )
    warnings = [] if expected else [f"Qdrant reports no checksum for {snap['name']}: only its size is verified"]
    base = {"snapshot": snap, "path": dest, "warnings": warnings}
    if os.path.exists(dest) and not req.force and os.path.getsize(dest) == snap.get("size"):
        have = sha256_file(dest, req.chunk_size) if expected else None
        if expected and have == expected:
            return {
                **base,
                "changed": False,
                "sha256": have,
                "size_bytes": snap["size"],
                "checksum_verified": True,
                "msg": f"{dest} already holds snapshot {snap['name']} (sha256 matches)",
            }
    if check_mode:
        return {**base, "changed": True, "msg": f"would download snapshot {snap['name']} to {dest}"}
    got = download(
        ep, http, snapshot_path(req.collection, snap["name"]), dest, expected, snap.get("size"), req.chunk_size,
        flush_size=req.flush_size,
    )
    return {
        **base,
        **got,
        "changed": True,
        "checksum_verified": bool(expected),
        "msg": f"downloaded snapshot {snap['name']} to {dest} ({got['size_bytes']} bytes, sha256 "
        f"{'verified' if expected else 'computed'}, {got['throughput_mib_s']} MiB/s)",
    }


def snapshot(ep: Endpoint, req: SnapshotRequest, check_mode: bool) -> dict[str, t.Any]:
    """Entry point of qdrant_snapshot: dispatch on ``req.state``."""
    if req.checksum and not SHA256_RE.match(req.checksum.lower()):
        raise QdrantError(f"option 'checksum' must be 64 hex digits (sha256), got {req.checksum!r}")
    if req.chunk_size < 65536 or req.chunk_size > 64 * 1048576:
        raise QdrantError("option 'chunk_size' must be between 65536 and 67108864 bytes")
    if req.flush_size != 0 and req.flush_size < req.chunk_size:
        raise QdrantError(
            f"option 'flush_size' must be 0 (flush only at the end) or at least chunk_size ({req.chunk_size}), "
            f"got {req.flush_size}"
        )
    if req.location and split_url("location", req.location).scheme not in ("http", "https", "file"):
        raise QdrantError("option 'location' must be an http://, https:// or file:// URL")
    start = time.monotonic()
    http = ep.http()
    if req.state == "listed":
        result = state_listed(ep, http, req)
    elif req.state == "present":
        result = state_present(ep, http, req, check_mode)
    elif req.state == "absent":
        result = state_absent(ep, http, req, check_mode)
    elif req.state == "downloaded":
        result = state_downloaded(ep, http, req, check_mode)
    else:
        result = state_recovered(ep, http, req, check_mode)
    result["state"] = req.state
    result["attempts"] = http.attempts
    result["duration_seconds"] = round(time.monotonic() - start, 3)
    return result
