# Copyright (c) sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Compose translation's output: Secret data and secret values redacted (``redact()``), and the manifests as
deterministic multi-document YAML (``dump()``)."""

from __future__ import annotations

import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils._compose_load import yaml
from ansible_collections.sophia.migrate.plugins.module_utils._compose_translate_context import _b64

REDACTED = "VALUE_REDACTED"


def redact(value: t.Any, secrets: set[str]) -> t.Any:
    """Copy of ``value`` with Secret data and any secret value replaced by REDACTED."""
    # the secrets and their base64 forms, longest first, computed once for the whole value
    needles = [s for s in sorted(set(secrets) | {_b64(s) for s in secrets if s}, key=len, reverse=True)
               if s and len(s) >= 4]
    return _redact(value, needles)


def _redact(value: t.Any, needles: list[str]) -> t.Any:
    if isinstance(value, dict):
        if value.get("kind") == "Secret" and isinstance(value.get("data"), dict):
            out = {k: _redact(v, needles) for k, v in value.items() if k not in ("data", "stringData")}
            out["data"] = dict.fromkeys(sorted(value["data"]), REDACTED)
            return out
        return {k: _redact(v, needles) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, needles) for v in value]
    if isinstance(value, str):
        for s in needles:
            if s in value:
                value = value.replace(s, REDACTED)
        return value
    return value


def dump(docs: list[dict[str, t.Any]]) -> str:
    """Deterministic multi-document YAML."""
    return yaml.safe_dump_all(docs, default_flow_style=False, sort_keys=True, explicit_start=True, width=1000)
