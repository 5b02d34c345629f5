"""Qdrant plumbing shared by sophia.migrate.qdrant_snapshot and sophia.migrate.qdrant_compare: how to reach a server.

This file holds what every Qdrant job speaks in: ``QdrantError`` (a message naming the server, URL without
credentials, and what was being attempted), ``Endpoint`` (one server's URL, API key, TLS options, retries),
the connection options of the modules' argument specs and the snapshot request with its defaults.

The jobs live beside it, one file each:

* ``_qdrant_rest``: Qdrant's REST API through ``_http.HttpClient`` (requests): JSON calls, snapshot paths, listing;
* ``_qdrant_compat``: can a target take a snapshot (Qdrant version: same or next minor; collection config:
  vectors, sparse vectors, shard count), read from the snapshot file or from its source server;
* ``_qdrant_download``: a snapshot streamed to disk, hashed, flushed, resumed, verified, renamed into place;
* ``_qdrant_recover``: a collection recovered from an uploaded file or from a URL the target fetches;
* ``_qdrant_snapshot``: the states of qdrant_snapshot (listed, present, absent, downloaded, uploaded/recovered);
* ``_qdrant_client``: qdrant-client (imported lazily), with retries and secret-safe errors;
* ``_qdrant_compare``: the proof of equality of qdrant_compare (config, count, digest, search parity).

qdrant-client has create/list/delete/recover calls for snapshots, but importing it costs ~65 MB of
resident memory (grpc, numpy, pydantic), which alone would break the flat < 100 MB budget of a
snapshot download; the snapshot calls are a handful of JSON requests, so they go through requests
with the same retries, TLS options and secret-safe errors as the download itself.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
import typing as t
import urllib.parse

from ansible_collections.sophia.migrate.plugins.module_utils._http import HttpClient, redact_url

STATES = ("present", "absent", "downloaded", "uploaded", "recovered", "listed")
PRIORITIES = ("snapshot", "replica", "no_sync")
DEFAULT_CHUNK = 4 * 1024 * 1024
DEFAULT_FLUSH = 64 * 1024 * 1024  # a download is flushed to disk every this many bytes (0: only at the end)
# Connection options of a Qdrant endpoint, shared by the modules' argument specs.
CONNECTION_SPEC: dict[str, dict[str, t.Any]] = {
    "url": {"type": "str", "required": True},
    "api_key": {"type": "str", "no_log": True},
    "validate_certs": {"type": "bool", "default": True},
    "ca_path": {"type": "path"},
    "client_cert": {"type": "path"},
    "client_key": {"type": "path", "no_log": False},
    "timeout": {"type": "float", "default": 60},
    "retries": {"type": "int", "default": 3},
    "backoff": {"type": "float", "default": 1.0},
}


class QdrantError(Exception):
    """A Qdrant step that failed; the message names the server and the step."""

    def __init__(self, msg: str, **facts: t.Any) -> None:
        super().__init__(msg)
        self.facts = facts


def split_url(label: str, url: t.Any) -> urllib.parse.SplitResult:
    """``url`` parsed, port included; a malformed one (an unclosed IPv6 bracket, a bad port) is a QdrantError
    naming the option and showing the URL without credentials or query."""
    try:
        parts = urllib.parse.urlsplit(str(url or ""))
        parts.port  # noqa: B018 - parsing the port raises ValueError on a bad one
    except ValueError as exc:
        raise QdrantError(f"option '{label}' is not a valid URL ({exc}): {redact_url(url)!r}") from exc
    return parts


@dataclasses.dataclass
class Endpoint:
    """How to reach one Qdrant server. ``label`` names the option (url / source / target)."""

    label: str
    url: str
    api_key: str | None = None
    validate_certs: bool = True
    ca_path: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0

    @classmethod
    def from_params(cls, label: str, params: dict[str, t.Any]) -> Endpoint:
        fields = {f.name for f in dataclasses.fields(cls)} - {"label"}
        ep = cls(label=label, **{k: v for k, v in params.items() if k in fields and v is not None})
        parts = split_url(label, ep.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise QdrantError(f"option '{label}' must be an http:// or https:// URL, got {redact_url(ep.url or '')!r}")
        if parts.username or parts.password:
            raise QdrantError(f"option '{label}' must not embed credentials; use api_key")
        prefix = "" if label == "url" else f"{label}."
        if ep.api_key and not re.fullmatch(r"[\x20-\x7e]+", ep.api_key):  # it travels as an HTTP header value
            raise QdrantError(f"option '{prefix}api_key' must be printable ASCII text")
        for name in ("ca_path", "client_cert", "client_key"):
            value = getattr(ep, name)
            if value and not os.path.isfile(value):
                raise QdrantError(f"option '{prefix}{name}': {value!r:.200} is not a file")
        return ep

    @property
    def name(self) -> str:
        return f"{self.label} {redact_url(self.url)}"

    def http(self, sleep: t.Callable[[float], None] = time.sleep) -> HttpClient:
        headers = {"api-key": self.api_key} if self.api_key else {}
        return HttpClient(
            self.url,
            headers=headers,
            timeout=self.timeout,
            validate_certs=self.validate_certs,
            ca_path=self.ca_path,
            client_cert=self.client_cert,
            client_key=self.client_key,
            retries=self.retries,
            backoff=self.backoff,
            sleep=sleep,
        )


@dataclasses.dataclass
class SnapshotRequest:
    """What qdrant_snapshot is asked to do: its options, as the module hands them over."""

    state: str
    collection: str | None = None
    snapshot_name: str | None = None
    dest: str | None = None
    src: str | None = None
    location: str | None = None
    location_api_key: str | None = None
    checksum: str | None = None
    priority: str = "snapshot"
    wait: bool = True
    force: bool = False
    reuse_max_age: float = 0.0
    source: Endpoint | None = None
    source_collection: str | None = None
    source_version: str | None = None
    check_compatibility: bool = True
    chunk_size: int = DEFAULT_CHUNK
    flush_size: int = DEFAULT_FLUSH
