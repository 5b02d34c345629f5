"""The answers of the Fly Machines API the client accepts, as its OpenAPI document describes them.

``VOLUME_PROPERTIES`` is the ``Volume`` schema (a unit test keeps it equal to the document) and
``volume_problem`` checks a volume against it; ``fly_error_body`` tells the API's own ``ErrorResponse`` from
any other body (a proxy's page, a wrong ``api_url``), so that only the API's 404 means "not found".
"""

from __future__ import annotations

import json
import typing as t

# The Volume schema of the Machines OpenAPI document (specs/fly-machines-openapi-2024-01.yaml,
# components.schemas.Volume): property -> JSON type. A unit test keeps it equal to the document.
VOLUME_PROPERTIES: dict[str, str] = {
    "attached_alloc_id": "string",
    "attached_machine_id": "string",
    "block_size": "integer",
    "blocks": "integer",
    "blocks_avail": "integer",
    "blocks_free": "integer",
    "created_at": "string",
    "encrypted": "boolean",
    "fstype": "string",
    "id": "string",
    "name": "string",
    "region": "string",
    "size_gb": "integer",
    "snapshot_retention": "integer",
    "state": "string",
    "zone": "string",
}
_JSON_TYPES: dict[str, t.Callable[[t.Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def volume_problem(value: t.Any) -> str | None:
    """Why ``value`` is not a Volume of the OpenAPI document with an id, or None when it is one."""
    if not isinstance(value, dict):
        return "not an object"
    for key, kind in VOLUME_PROPERTIES.items():
        if key in value and not _JSON_TYPES[kind](value[key]):
            return f"'{key}' is not a{'n' if kind == 'integer' else ''} {kind}"
    if not value.get("id"):
        return "no 'id'"
    return None


def fly_error_body(content: bytes) -> bool:
    """Whether an error answer's body is the Fly API's ErrorResponse: a JSON object with an ``error`` text."""
    try:
        body = json.loads(content or b"")
    except ValueError:
        return False
    if not isinstance(body, dict) or not isinstance(body.get("error"), str) or not body["error"].strip():
        return False
    return isinstance(body.get("status", ""), str) and isinstance(body.get("details", {}), dict)
