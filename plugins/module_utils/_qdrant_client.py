"""qdrant-client for sophia.migrate.qdrant_compare: imported lazily, built from an ``Endpoint``, called with retries.

qdrant-client costs ~65 MB of resident memory (grpc, numpy, pydantic): it is imported on first use only, so
qdrant_snapshot never pays for it. ``qc_call`` retries transient failures and turns the client's errors into a
``QdrantError`` naming the server (URL without credentials) and what was being attempted.
"""

from __future__ import annotations

import json
import ssl
import time
import typing as t
import urllib.parse

from ansible_collections.sophia.migrate.plugins.module_utils._http import RETRY_STATUSES
from ansible_collections.sophia.migrate.plugins.module_utils._qdrant import Endpoint, QdrantError


def import_qdrant_client() -> t.Any:
    """qdrant_client, imported on first use (it is large); raises ImportError when missing."""
    import qdrant_client  # noqa: PLC0415 - deliberately lazy

    return qdrant_client


def make_client(ep: Endpoint) -> t.Any:
    qc = import_qdrant_client()
    parts = urllib.parse.urlsplit(ep.url)
    https = parts.scheme == "https"
    verify: t.Any = False
    try:
        if ep.validate_certs:
            verify = ssl.create_default_context(cafile=ep.ca_path) if ep.ca_path else True
            if ep.client_cert and isinstance(verify, ssl.SSLContext):
                verify.load_cert_chain(ep.client_cert, ep.client_key)
            elif ep.client_cert:
                verify = ssl.create_default_context()
                verify.load_cert_chain(ep.client_cert, ep.client_key)
    except (ssl.SSLError, OSError, ValueError) as exc:  # not PEM, a key that does not match, unreadable
        raise QdrantError(f"{ep.name}: cannot use the CA / client certificate files: {exc}") from exc
    return qc.QdrantClient(
        host=parts.hostname,
        port=parts.port or (443 if https else 80),
        https=https,
        prefix=parts.path.rstrip("/") or None,
        api_key=ep.api_key,
        timeout=max(1, int(ep.timeout)),
        verify=verify,
        check_compatibility=False,
    )


def qc_call(
    ep: Endpoint,
    what: str,
    fn: t.Callable[..., t.Any],
    *args: t.Any,
    sleep: t.Callable[[float], None] = time.sleep,
    **kwargs: t.Any,
) -> t.Any:
    """Call qdrant-client with retries on transient failures; errors become QdrantError."""
    import_qdrant_client()
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse  # noqa: PLC0415

    for attempt in range(ep.retries + 1):
        last = attempt >= ep.retries
        try:
            return fn(*args, **kwargs)
        except UnexpectedResponse as exc:
            if exc.status_code in RETRY_STATUSES and not last:
                sleep(min(ep.backoff * (2**attempt), 30.0))
                continue
            try:
                detail = json.loads(exc.content)["status"]["error"]
            except (ValueError, KeyError, TypeError):
                detail = (exc.content or b"").decode(errors="replace")[:300]
            hint = "; check api_key" if exc.status_code in (401, 403) else ""
            raise QdrantError(
                f"{ep.name}: {what}: HTTP {exc.status_code}: {detail}{hint}", status=exc.status_code
            ) from exc
        except (ResponseHandlingException, OSError, ConnectionError) as exc:
            if not last:
                sleep(min(ep.backoff * (2**attempt), 30.0))
                continue
            raise QdrantError(f"{ep.name}: {what}: cannot reach the server ({exc.__class__.__name__})") from exc
        except Exception as exc:
            if exc.__class__.__module__.startswith("httpx") and not last:
                sleep(min(ep.backoff * (2**attempt), 30.0))
                continue
            if exc.__class__.__module__.startswith(("httpx", "qdrant_client", "pydantic")):
                raise QdrantError(f"{ep.name}: {what}: {exc.__class__.__name__}: {exc}") from exc
            raise
    raise QdrantError(f"{ep.name}: {what}: no attempt made")  # pragma: no cover
