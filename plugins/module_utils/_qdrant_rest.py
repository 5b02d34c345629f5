"""Qdrant's REST API for sophia.migrate.qdrant_snapshot: JSON calls, snapshot paths, listing and collection info.

The calls go through ``_http.HttpClient`` (requests), with its retries, TLS options and secret-safe errors; any
failure is a ``QdrantError`` naming the server (URL without credentials) and what was being attempted.
"""

from __future__ import annotations

import json
import typing as t
import urllib.parse

from ansible_collections.sophia.migrate.plugins.module_utils._http import HttpClient, HttpError
from ansible_collections.sophia.migrate.plugins.module_utils._qdrant import Endpoint, QdrantError


def quoted(name: str) -> str:
    """``name`` as one segment of a URL path (every reserved character escaped)."""
    return urllib.parse.quote(name, safe="")


def snapshots_path(collection: str | None) -> str:
    return f"/collections/{quoted(collection)}/snapshots" if collection else "/snapshots"


def snapshot_path(collection: str | None, name: str) -> str:
    return f"{snapshots_path(collection)}/{quoted(name)}"


def error_text(exc: HttpError) -> str:
    """Qdrant's own message from the body of a failed call, else the HTTP error."""
    try:
        return json.loads(exc.body)["status"]["error"]
    except (ValueError, KeyError, TypeError):
        return str(exc)


def api(
    ep: Endpoint,
    http: HttpClient,
    method: str,
    path: str,
    what: str,
    expected: t.Iterable[int] = (200,),
    **kwargs: t.Any,
) -> t.Any:
    """One JSON call; returns Qdrant's ``result``; any failure is a QdrantError naming ``ep`` and ``what``."""
    try:
        body = http.json(method, path, expected=expected, **kwargs)
    except HttpError as exc:
        if exc.status in (401, 403):
            raise QdrantError(
                f"{ep.name}: {what}: HTTP {exc.status}: the API key was refused; "
                f"check option {'api_key' if ep.label == 'url' else ep.label + '.api_key'}",
                status=exc.status,
            ) from exc
        detail = error_text(exc) if exc.status else str(exc)
        raise QdrantError(f"{ep.name}: {what} failed: {detail}", status=exc.status) from exc
    if isinstance(body, dict) and "result" in body:
        return body["result"]
    return body


def server_version(ep: Endpoint, http: HttpClient) -> str:
    info = api(ep, http, "GET", "/", "reading the server version")
    if not isinstance(info, dict) or not info.get("version"):
        raise QdrantError(f"{ep.name}: GET / did not return a version (is this a Qdrant server?)")
    return str(info["version"])


def list_snapshots(ep: Endpoint, http: HttpClient, collection: str | None) -> list[dict[str, t.Any]]:
    what = f"listing snapshots of collection {collection!r}" if collection else "listing full snapshots"
    try:
        items = api(ep, http, "GET", snapshots_path(collection), what) or []
    except QdrantError as exc:
        if collection and exc.facts.get("status") == 404:
            raise QdrantError(
                f"{ep.name}: collection {collection!r} does not exist; check option 'collection'", status=404
            ) from exc
        raise
    return sorted(items, key=lambda s: (s.get("creation_time") or "", s.get("name") or ""))


def get_collection(ep: Endpoint, http: HttpClient, collection: str) -> dict[str, t.Any] | None:
    """Collection info, or None when it does not exist."""
    try:
        return http.json("GET", f"/collections/{quoted(collection)}", expected=(200,))["result"]
    except HttpError as exc:
        if exc.status == 404:
            return None
        raise QdrantError(f"{ep.name}: reading collection {collection!r} failed: {error_text(exc)}") from exc
