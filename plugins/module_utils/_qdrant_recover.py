"""A Qdrant collection recovered from a snapshot for sophia.migrate.qdrant_snapshot (state=uploaded / recovered).

``upload`` sends a local snapshot file (multipart, streamed from disk); ``location`` lets the target fetch the
snapshot itself (``recover_from_url``); both with ``priority`` and the checksum so the server verifies too, after a
compatibility check of the target (``_qdrant_compat``). A collection that already holds points is kept unless
``force``; a location's credentials and query never appear in a message or a diff.
"""

from __future__ import annotations

import os
import time
import typing as t
import uuid

from ansible_collections.sophia.migrate.plugins.module_utils._files import sha256_file
from ansible_collections.sophia.migrate.plugins.module_utils._http import (
    RETRY_STATUSES,
    HttpClient,
    HttpError,
    redact_url,
)
from ansible_collections.sophia.migrate.plugins.module_utils._qdrant import Endpoint, QdrantError, SnapshotRequest
from ansible_collections.sophia.migrate.plugins.module_utils._qdrant_compat import (
    read_snapshot_meta,
    target_compatibility,
)
from ansible_collections.sophia.migrate.plugins.module_utils._qdrant_rest import error_text, get_collection, quoted


class _MultipartBody:
    """multipart/form-data with one file part ``snapshot``, read from disk in chunks (has a length)."""

    def __init__(self, path: str, boundary: str, chunk: int = 1024 * 1024) -> None:
        name = os.path.basename(path).replace('"', "")
        self.head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="snapshot"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{boundary}--\r\n".encode()
        self.size = os.path.getsize(path)
        self.len = len(self.head) + self.size + len(self.tail)
        self.handle = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.stage = 0
        self.chunk = chunk

    def __len__(self) -> int:
        return self.len

    def read(self, n: int = -1) -> bytes:
        if self.stage == 0:
            self.stage = 1
            return self.head
        if self.stage == 1:
            data = self.handle.read(max(n, self.chunk) if n and n > 0 else self.chunk)
            if data:
                return data
            self.stage = 2
        if self.stage == 2:
            self.stage = 3
            return self.tail
        return b""

    def close(self) -> None:
        self.handle.close()


def upload(
    ep: Endpoint,
    http: HttpClient,
    collection: str,
    src: str,
    checksum: str,
    priority: str,
    wait: bool,
    sleep: t.Callable[[float], None] = time.sleep,
) -> dict[str, t.Any]:
    params = {"priority": priority, "wait": str(wait).lower(), "checksum": checksum}
    path = f"/collections/{quoted(collection)}/snapshots/upload"
    start = time.monotonic()
    for attempt in range(ep.retries + 1):
        boundary = uuid.uuid4().hex
        body = _MultipartBody(src, boundary)
        try:
            response = http.request(
                "POST",
                path,
                expected=(200, 202),
                retry=False,
                params=params,
                data=body,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            return {
                "recovered": response.status_code == 200,
                "accepted": response.status_code == 202,
                "upload_seconds": round(time.monotonic() - start, 3),
                "upload_attempts": attempt + 1,
            }
        except HttpError as exc:
            transient = exc.status is None or exc.status in RETRY_STATUSES
            if not transient or attempt >= ep.retries:
                raise QdrantError(
                    f"{ep.name}: uploading {src} to recover collection {collection!r} failed: "
                    f"{error_text(exc) if exc.status else exc}",
                    status=exc.status,
                ) from exc
            sleep(min(ep.backoff * (2**attempt), 30.0))
        finally:
            body.close()
    raise QdrantError(f"{ep.name}: upload: no attempt made")  # pragma: no cover


def _check_recover_request(req: SnapshotRequest) -> None:
    """The options a recovery needs: a collection and exactly one of src / location."""
    if not req.collection:
        raise QdrantError(
            "option 'collection' is required to upload or recover (Qdrant recovers full snapshots "
            "only from the command line)"
        )
    if bool(req.src) == bool(req.location):
        raise QdrantError(
            f"state={req.state}: give exactly one of options 'src' (a local file to upload) and "
            "'location' (a URL the target fetches itself)"
        )
    if req.state == "uploaded" and not req.src:
        raise QdrantError("option 'src' is required when state=uploaded")


def _read_src(req: SnapshotRequest, checksum: str | None, result: dict[str, t.Any]) -> tuple[str, dict[str, t.Any]]:
    """The local snapshot ``src``: its sha256 (it must match option 'checksum') and metadata, noted in ``result``."""
    if not os.path.isfile(req.src):
        raise QdrantError(f"option 'src': {req.src} is not a file")
    actual = sha256_file(req.src, req.chunk_size)
    if checksum and checksum != actual:
        raise QdrantError(
            f"option 'src': {req.src} has sha256 {actual}, option 'checksum' says {checksum}; "
            "refusing to upload a corrupted snapshot"
        )
    meta = read_snapshot_meta(req.src)
    result.update(path=req.src, sha256=actual, size_bytes=os.path.getsize(req.src))
    return actual, meta


def _kept(ep: Endpoint, req: SnapshotRequest, result: dict[str, t.Any], points: int) -> dict[str, t.Any]:
    """The answer when the target already holds the collection with points and force is off: nothing recovered."""
    return {
        **result,
        "changed": False,
        "warnings": [
            f"collection {req.collection!r} already exists on {ep.name} with {points} point(s) and a compatible "
            "config; not overwritten (force=false). Prove equality with sophia.migrate.qdrant_compare, or set "
            "force=true to replace it with the snapshot"
        ],
        "msg": f"collection {req.collection!r} already present on the target; nothing recovered",
    }


def _recover_from_location(
    ep: Endpoint, http: HttpClient, req: SnapshotRequest, checksum: str | None
) -> dict[str, t.Any]:
    """Ask the target to fetch the snapshot at ``location`` itself and recover the collection from it."""
    body: dict[str, t.Any] = {"location": req.location, "priority": req.priority}
    if checksum:
        body["checksum"] = checksum
    if req.location_api_key:
        body["api_key"] = req.location_api_key
    start = time.monotonic()
    try:
        response = http.request(
            "PUT",
            f"/collections/{quoted(req.collection)}/snapshots/recover",
            expected=(200, 202),
            params={"wait": str(req.wait).lower()},
            json=body,
        )
    except HttpError as exc:
        # Qdrant's error may quote the location it could not fetch: only its redacted form is shown
        detail = (error_text(exc) if exc.status else str(exc)).replace(req.location, redact_url(req.location))
        raise QdrantError(
            f"{ep.name}: recovering collection {req.collection!r} from {redact_url(req.location)} failed: {detail}",
            status=exc.status,
        ) from exc
    return {
        "recovered": response.status_code == 200,
        "accepted": response.status_code == 202,
        "recover_seconds": round(time.monotonic() - start, 3),
    }


def state_recovered(ep: Endpoint, http: HttpClient, req: SnapshotRequest, check_mode: bool) -> dict[str, t.Any]:
    """state=uploaded / recovered: recover a collection from the local file ``src`` or from ``location``."""
    _check_recover_request(req)
    meta: dict[str, t.Any] = {}
    checksum = (req.checksum or "").lower() or None
    result: dict[str, t.Any] = {"collection": req.collection, "priority": req.priority}
    if req.src:
        checksum, meta = _read_src(req, checksum, result)
    target = get_collection(ep, http, req.collection)
    if req.check_compatibility:
        result["compatibility"] = target_compatibility(ep, http, req, meta, target)
    points = (target or {}).get("points_count") or 0
    if target is not None and points and not req.force:
        return _kept(ep, req, result, points)
    diff = {
        "before": {"collection": req.collection, "points_count": points if target else None},
        # the file's name only: a location's query (a presigned URL's signature) and credentials stay out
        "after": {
            "collection": req.collection,
            "recovered_from": os.path.basename(req.src or redact_url(req.location)),
        },
    }
    if check_mode:
        return {
            **result,
            "changed": True,
            "diff": diff,
            "msg": f"would recover collection {req.collection!r} from {req.src or redact_url(req.location)}",
        }
    if req.src:
        got = upload(ep, http, req.collection, req.src, checksum, req.priority, req.wait)
    else:
        got = _recover_from_location(ep, http, req, checksum)
        result["location"] = redact_url(req.location)
    after = get_collection(ep, http, req.collection) if req.wait else None
    if after is not None:
        result["points_count"] = after.get("points_count")
    return {
        **result,
        **got,
        "changed": True,
        "diff": diff,
        "checksum_sent": checksum,
        "msg": f"recovered collection {req.collection!r} on {ep.name} with priority={req.priority}"
        + (f" ({result.get('points_count')} points)" if after is not None else " (accepted, in progress)"),
    }
