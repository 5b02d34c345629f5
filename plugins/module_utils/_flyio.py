"""Fly.io plumbing for the Phase 1 audit: Machines API client, repository scan, verdicts, report.

API surface used (``../specs/fly-machines-openapi-2024-01.yaml`` and ``../specs/fly-docs/``):

- ``GET /apps?org_slug=`` (Apps_list), ``GET /apps/{app}`` (Apps_show), ``DELETE /apps/{app}`` (Apps_delete,
  answers 202, deletion is asynchronous), ``GET /apps/{app}/machines``, ``GET /apps/{app}/volumes``.
- ``GET /apps/{app}/certificates`` is documented in fly-docs (certificates resource) but is not part of the
  2024-01 OpenAPI document; a 404 on it for an existing app is reported as "unavailable", not as an error.
- IP assignments and secret names have no Machines API endpoint in these documents ("Currently this is done
  using flyctl or the Fly.io GraphQL API"): they are read from the GraphQL API (``app.ipAddresses``,
  ``app.secrets``, the queries flyctl uses). Secret values are never requested, only names.

Tokens: ``FlyV1 ...`` (macaroon) tokens are sent as they are, ``fm1_``/``fm2_`` macaroons get the ``FlyV1``
scheme, anything else is a ``Bearer`` token. The token is never part of a message or a result.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import stat
import time
import typing as t
import urllib.parse

try:
    import tomllib
except ImportError:  # Python < 3.11 on the managed host: a top-level `app =` line is looked for instead
    tomllib = None  # type: ignore[assignment]

from ansible_collections.sophia.migrate.plugins.module_utils._files import atomic_write
from ansible_collections.sophia.migrate.plugins.module_utils._http import HttpClient, HttpError

DEFAULT_API_URL = "https://api.machines.dev/v1"
DEFAULT_GRAPHQL_URL = "https://api.fly.io/graphql"
INCLUDE = ("machines", "volumes", "certificates", "ips", "secrets")
# The seed's Phase 1 report: the legacy apps, all on .fly.dev.
SEED_APPS = (
    "sophiaai-dashboard-v2",
    "sophiaai-mcp-repo-v2",
    "sophiaai-mcp-research-v2",
    "sophiaai-mcp-context-v2",
    "sophiaai-mcp-business-v2",
    "sophiaai-mcp-lambda-v2",
    "sophiaai-mcp-hubspot-v2",
    "sophiaai-jobs-v2",
)
VERDICTS = ("gone", "safe to destroy", "blocked")
_APP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

GRAPHQL_APP_QUERY = (
    "query($appName: String!) { app(name: $appName) { "
    "ipAddresses { nodes { id address type region createdAt } } "
    "secrets { name createdAt } } }"
)


class FlyError(Exception):
    """A Fly API call failed or answered something unusable; the message says what was attempted."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class FlyForbidden(FlyError):
    """HTTP 403: the token may not see or touch this app. Nothing is ever deleted on a 403."""


def auth_header(token: str) -> str:
    """Authorization header value for a plain (Bearer) or macaroon (FlyV1) token."""
    token = (token or "").strip()
    if not token:
        raise FlyError("api_token: no token given (set api_token or FLY_API_TOKEN)")
    if token.startswith("FlyV1 "):
        return token
    if token.lower().startswith("bearer "):
        return "Bearer " + token[7:].strip()
    if token.startswith(("fm1_", "fm2_", "fm1r_", "fm1a_")):
        return "FlyV1 " + token
    return "Bearer " + token


def valid_app_name(name: str) -> bool:
    return isinstance(name, str) and bool(_APP_NAME.match(name or ""))


_HEADER_SAFE = re.compile(r"^[\x21-\x7e]+(?: [\x21-\x7e]+)*$")


def token_problem(token: t.Any) -> str | None:
    """Why a token cannot be sent in an Authorization header (never quoting it), or None."""
    if not isinstance(token, str) or not token.strip():
        return "api_token: no token given (set api_token or FLY_API_TOKEN)"
    if not _HEADER_SAFE.match(token.strip()):
        return (
            "api_token: the token holds a line break, a control character or a non-ASCII character, which an HTTP "
            "header cannot carry (the value is not shown)"
        )
    return None


def url_secrets(url: t.Any) -> set[str]:
    """The credentials a URL carries (userinfo password, secret-named query values), to be masked in any output."""
    if not isinstance(url, str):
        return set()
    found = {m.group(3) for m in _URL_USERINFO.finditer(url)} | {m.group(2) for m in _SECRET_PARAM.finditer(url)}
    return {value for value in found if value and value != REDACTED}


def url_problem(option: str, url: t.Any) -> str | None:
    """Why ``url`` is not a usable http(s) URL for ``option`` (credentials redacted from the message), or None."""
    shown = redact_secrets(str(url))
    if not isinstance(url, str) or not url.strip():
        return f"{option}: empty"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return f"{option}: {shown!r} holds a space or a control character"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"{option}: {shown!r} is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"{option}: {shown!r} must start with https:// (or http:// for a local stand-in)"
    if not parts.hostname:
        return f"{option}: {shown!r} has no host"
    if port == 0:
        return f"{option}: {shown!r} has port 0"
    return None


class FlyClient:
    """Machines API (+ GraphQL for IPs and secret names) through the shared HttpClient (retries on 429/5xx)."""

    def __init__(
        self,
        token: str,
        api_url: str = DEFAULT_API_URL,
        graphql_url: str = DEFAULT_GRAPHQL_URL,
        timeout: float = 30.0,
        validate_certs: bool = True,
        retries: int = 5,
        backoff: float = 1.0,
        sleep: t.Callable[[float], None] = time.sleep,
    ):
        problems = [
            p
            for p in (
                token_problem(token),
                url_problem("api_url", api_url),
                url_problem("graphql_url", graphql_url),
                None if _number(timeout) and timeout > 0 else f"timeout: must be a positive number, got {timeout!r}",
                None if _number(retries) and retries >= 0 else f"retries: must be 0 or more, got {retries!r}",
                None if _number(backoff) and backoff >= 0 else f"backoff: must be 0 or more, got {backoff!r}",
            )
            if p
        ]
        if problems:
            raise FlyError("; ".join(f"option '{p.split(':', 1)[0]}':{p.split(':', 1)[1]}" for p in problems))
        self._token = token.strip()
        headers = {"Authorization": auth_header(token), "Accept": "application/json"}
        try:
            self.http = HttpClient(
                api_url,
                headers=headers,
                timeout=timeout,
                validate_certs=validate_certs,
                retries=retries,
                backoff=backoff,
                sleep=sleep,
            )
        except HttpError as exc:
            raise FlyError(str(exc)) from exc
        self.graphql_url = graphql_url

    def _send(self, what: str, method: str, path: str, expected: tuple[int, ...], **kwargs: t.Any) -> t.Any:
        """HttpClient.request; a request that cannot even be built (bad URL, header) is a FlyError, not a crash."""
        try:
            return self.http.request(method, path, expected=expected, **kwargs)
        except HttpError:
            raise
        except ValueError as exc:  # requests' InvalidURL, MissingSchema, InvalidSchema, InvalidHeader; encodings
            detail = "" if "header" in str(exc).lower() or isinstance(exc, UnicodeError) else f": {exc}"
            raise FlyError(
                self._scrub(
                    f"{what}: {method} {redact_secrets(self.http.url(path))}: the request could not be sent "
                    f"({type(exc).__name__}{detail})"
                )
            ) from None

    def _scrub(self, text: str) -> str:
        if self._token and self._token in text:
            text = text.replace(self._token, "********")
        return text

    def _call(
        self,
        what: str,
        method: str,
        path: str,
        expected: t.Iterable[int] = (200,),
        fly_404: bool = False,
        **kwargs: t.Any,
    ) -> t.Any:
        """JSON answer of one call; 404 -> None when 404 is expected; 401/403 and others -> FlyError.

        With ``fly_404``, a 404 counts only when its body is the Fly API's ``ErrorResponse`` (a JSON object with an
        ``error`` text): any other 404 (a proxy's page, a wrong ``api_url``) is a FlyError, never "not found".
        """
        expected = tuple(expected)
        try:
            response = self._send(what, method, path, expected, **kwargs)
        except HttpError as exc:
            msg = self._scrub(f"{what}: {exc}")
            if exc.status == 401:
                raise FlyError(f"{msg} (the API token is missing, invalid or expired)", 401) from None
            if exc.status == 403:
                raise FlyForbidden(f"{msg} (the token is not allowed to do this)", 403) from None
            if exc.status == 429:
                raise FlyError(f"{msg} (still rate limited after {self.http.retries} retries)", 429) from None
            raise FlyError(msg, exc.status) from None
        if response.status_code == 404:
            if fly_404 and not fly_error_body(response.content):
                excerpt = " ".join(response.text.split())[:120]
                raise FlyError(
                    self._scrub(
                        f"{what}: {method} {self.http.url(path)}: HTTP 404 with a body that is not a Fly API error "
                        f"({excerpt!r}): the answer may not come from the Fly Machines API (check api_url)"
                    ),
                    404,
                )
            return None
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            excerpt = " ".join(response.text.split())[:120]
            raise FlyError(
                self._scrub(
                    f"{what}: {method} {self.http.url(path)}: the API answered "
                    f"HTTP {response.status_code} with malformed JSON: {excerpt!r}"
                ),
                response.status_code,
            ) from None

    @staticmethod
    def _expect(what: str, value: t.Any, kind: type, key: str | None = None) -> t.Any:
        if key is not None:
            if not isinstance(value, dict) or not isinstance(value.get(key), kind):
                raise FlyError(
                    f"{what}: malformed answer from the API: expected an object with "
                    f"'{key}' ({kind.__name__}), got {_shape(value)}"
                )
            return value[key]
        if not isinstance(value, kind):
            raise FlyError(f"{what}: malformed answer from the API: expected {kind.__name__}, got {_shape(value)}")
        return value

    # --- Machines API ------------------------------------------------------------------------------
    def list_apps(self, org: str) -> list[dict[str, t.Any]]:
        what = f"list apps of org '{org}'"
        data = self._call(what, "GET", "/apps", params={"org_slug": org})
        apps = self._expect(what, data, list, "apps")
        out = []
        for item in apps:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise FlyError(f"{what}: malformed answer from the API: an app without a name ({_shape(item)})")
            out.append(
                {
                    "name": item["name"],
                    "id": item.get("id"),
                    "machine_count": item.get("machine_count"),
                    "volume_count": item.get("volume_count"),
                }
            )
        return out

    def get_app(self, name: str) -> dict[str, t.Any] | None:
        what = f"read app '{name}'"
        data = self._call(what, "GET", f"/apps/{_q(name)}", expected=(200, 404), fly_404=True)
        if data is None:
            return None
        data = self._expect(what, data, dict)
        org = data.get("organization") if isinstance(data.get("organization"), dict) else {}
        return {
            "id": data.get("id"),
            "name": data.get("name") or name,
            "status": data.get("status"),
            "organization": org.get("slug"),
        }

    def list_machines(self, name: str) -> list[dict[str, t.Any]] | None:
        what = f"list machines of app '{name}'"
        data = self._call(what, "GET", f"/apps/{_q(name)}/machines", expected=(200, 404))
        if data is None:
            return None
        out = []
        for raw in self._expect(what, data, list):
            m = self._expect(what, raw, dict)
            config = m.get("config") if isinstance(m.get("config"), dict) else {}
            ref = m.get("image_ref") if isinstance(m.get("image_ref"), dict) else {}
            image = config.get("image") or (
                f"{ref.get('registry', '')}/{ref.get('repository', '')}:{ref.get('tag', '')}".strip("/:")
                if ref
                else None
            )
            out.append(
                {
                    "id": m.get("id"),
                    "name": m.get("name"),
                    "state": m.get("state"),
                    "region": m.get("region"),
                    "image": image,
                    "updated_at": m.get("updated_at"),
                    "created_at": m.get("created_at"),
                }
            )
        return out

    def list_volumes(self, name: str) -> list[dict[str, t.Any]]:
        """The app's volumes, from a 200 answer whose body is a list of Volume objects (OpenAPI Volumes_list).

        Anything else raises FlyError - a 404 whatever its body (the app exists, so its volumes are unknown, not
        absent), an error status, a body that is not a JSON list, a volume that breaks the document's ``Volume``
        schema or has no ``id`` (it could not be named in a backup declaration).
        """
        what = f"list volumes of app '{name}'"
        path = f"/apps/{_q(name)}/volumes"
        data = self._call(what, "GET", path, expected=(200, 404))
        if data is None:
            raise FlyError(
                f"{what}: GET {self.http.url(path)} answered HTTP 404: the volumes are unknown, not absent", 404
            )
        if not isinstance(data, list):
            raise FlyError(f"{what}: malformed answer from the API: expected a list of volumes, got {_shape(data)}")
        out = []
        for i, v in enumerate(data):
            problem = volume_problem(v)
            if problem:
                raise FlyError(f"{what}: malformed answer from the API: volume {i}: {problem} ({_shape(v)})")
            out.append(
                {
                    "id": v["id"],
                    "name": v.get("name"),
                    "size_gb": v.get("size_gb"),
                    "state": v.get("state"),
                    "region": v.get("region"),
                    "attached_machine_id": v.get("attached_machine_id") or None,
                    "attached": bool(v.get("attached_machine_id") or v.get("attached_alloc_id")),
                    "encrypted": v.get("encrypted"),
                    "created_at": v.get("created_at"),
                }
            )
        return out

    def list_certificates(self, name: str) -> list[dict[str, t.Any]] | None:
        """Certificates (fly-docs certificates resource); None when the endpoint answers 404."""
        what = f"list certificates of app '{name}'"
        data = self._call(what, "GET", f"/apps/{_q(name)}/certificates", expected=(200, 404))
        if data is None:
            return None
        out = []
        for raw in self._expect(what, data, list, "certificates"):
            c = self._expect(what, raw, dict)
            out.append(
                {
                    "hostname": c.get("hostname"),
                    "status": c.get("status"),
                    "configured": c.get("configured"),
                    "has_custom_certificate": c.get("has_custom_certificate"),
                    "has_fly_certificate": c.get("has_fly_certificate"),
                }
            )
        return out

    def delete_app(self, name: str, force: bool = False) -> int:
        """DELETE /apps/{app}; returns the status (202 accepted, 404 already gone). Raises FlyForbidden on 403."""
        what = f"delete app '{name}'"
        path = f"/apps/{_q(name)}" + ("?force=true" if force else "")
        try:
            response = self._send(what, "DELETE", path, (200, 202, 204, 404))
        except HttpError as exc:
            msg = self._scrub(f"{what}: {exc}")
            if exc.status == 403:
                raise FlyForbidden(
                    f"{msg} (the token is not allowed to delete this app; nothing was deleted)", 403
                ) from None
            raise FlyError(msg, exc.status) from None
        return response.status_code

    # --- GraphQL (IPs, secret names) -----------------------------------------------------------------
    def graphql_app(self, name: str) -> dict[str, t.Any]:
        what = f"read IP assignments and secret names of app '{name}' (GraphQL)"
        data = self._call(
            what, "POST", self.graphql_url, json={"query": GRAPHQL_APP_QUERY, "variables": {"appName": name}}
        )
        data = self._expect(what, data, dict)
        if data.get("errors"):
            msgs = [str(e.get("message")) if isinstance(e, dict) else str(e) for e in data["errors"]]
            raise FlyError(self._scrub(f"{what}: {'; '.join(msgs)}"))
        app = (data.get("data") or {}).get("app") if isinstance(data.get("data"), dict) else None
        if not isinstance(app, dict):
            raise FlyError(f"{what}: malformed answer from the API: no data.app object ({_shape(data)})")
        nodes = (app.get("ipAddresses") or {}).get("nodes") if isinstance(app.get("ipAddresses"), dict) else None
        secrets = app.get("secrets")
        if not isinstance(nodes, list) or not isinstance(secrets, list):
            raise FlyError(f"{what}: malformed answer from the API: ipAddresses.nodes and secrets must be lists")
        ips = [
            {"address": n.get("address"), "type": n.get("type"), "region": n.get("region")}
            for n in nodes
            if isinstance(n, dict)
        ]
        # names only: a value is never requested, and anything else the server might send is dropped here
        names = sorted(str(s.get("name")) for s in secrets if isinstance(s, dict) and s.get("name"))
        return {"ips": ips, "secret_names": names}

    # --- composition -----------------------------------------------------------------------------------
    def app_info(self, name: str, include: t.Iterable[str] = INCLUDE) -> dict[str, t.Any]:
        """Everything the audit needs about one app; ``exists`` False on 404, None when forbidden."""
        include = set(include)
        info: dict[str, t.Any] = {
            "name": name,
            "exists": False,
            "forbidden": False,
            "status": None,
            "organization": None,
            "hostname": f"{name}.fly.dev",
            "machines": [],
            "volumes": [],
            "certificates": [],
            "ips": [],
            "secret_names": [],
            "incomplete": [],
        }
        try:
            app = self.get_app(name)
        except FlyForbidden as exc:
            info.update(exists=None, forbidden=True, error=str(exc))
            return info
        if app is None:
            return info
        info.update(exists=True, status=app["status"], organization=app["organization"], id=app["id"])
        if "machines" in include:
            info["machines"] = self.list_machines(name) or []
        if "volumes" in include:
            try:
                info["volumes"] = self.list_volumes(name)
            except FlyError as exc:
                if exc.status == 401:
                    raise
                info["volumes"] = None
                info["incomplete"].append(f"volumes: {exc}")
        else:
            info["volumes"] = None
            info["incomplete"].append("volumes: not requested (include)")
        if "certificates" in include:
            try:
                certs = self.list_certificates(name)
            except FlyForbidden as exc:
                certs, info["incomplete"] = None, [*info["incomplete"], f"certificates: {exc}"]
            if certs is None:
                info["certificates"] = None
                if not any(i.startswith("certificates:") for i in info["incomplete"]):
                    info["incomplete"].append("certificates: endpoint not available on this API (404)")
            else:
                info["certificates"] = certs
        if include & {"ips", "secrets"}:
            try:
                extra = self.graphql_app(name)
                info["ips"] = extra["ips"] if "ips" in include else []
                info["secret_names"] = extra["secret_names"] if "secrets" in include else []
            except FlyError as exc:
                info["ips"] = info["secret_names"] = None
                info["incomplete"].append(f"ips/secrets: {exc}")
        info["machine_count"] = len(info["machines"])
        info["started_machines"] = sum(1 for m in info["machines"] if m.get("state") == "started")
        vols = info["volumes"]
        info["volume_count"] = len(vols) if vols is not None else None
        info["volume_total_gb"] = sum(v.get("size_gb") or 0 for v in vols) if vols is not None else None
        return info

    def wait_gone(
        self, name: str, timeout: float, interval: float, clock: t.Callable[[], float] = time.monotonic
    ) -> tuple[bool, int]:
        """Poll GET /apps/{app} until it answers 404. Returns (gone, polls)."""
        deadline = clock() + timeout
        polls = 0
        while True:
            polls += 1
            if self.get_app(name) is None:
                return True, polls
            if clock() >= deadline:
                return False, polls
            self.http.sleep(interval)


def _number(value: t.Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _shape(value: t.Any) -> str:
    text = json.dumps(value)[:80] if not isinstance(value, (bytes, bytearray)) else repr(value[:80])
    return f"{type(value).__name__} {text}"


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


def backup_names(declared: t.Any) -> set[str]:
    """Volume ids/names a backup declaration names: a list of them, or a dict of them -> where the data went.

    Free text and ``true`` name no volume (they only say that something was saved somewhere).
    """
    if isinstance(declared, (list, tuple)):
        return {str(x).strip() for x in declared if isinstance(x, str) and x.strip()}
    if isinstance(declared, dict):
        return {str(k).strip() for k, v in declared.items() if isinstance(v, str) and v.strip() and str(k).strip()}
    return set()


def backup_declaration_problem(declared: t.Any) -> str | None:
    """Why a backup declaration is malformed (None when it is usable): see backup_names for the forms."""
    if declared is None or declared is True or declared is False or isinstance(declared, str):
        return None
    if isinstance(declared, (list, tuple)):
        bad = [x for x in declared if not isinstance(x, str) or not x.strip()]
        return f"the list must hold volume ids or names (text), got {bad[0]!r}" if bad else None
    if isinstance(declared, dict):
        for key, where in declared.items():
            if not isinstance(key, str) or not key.strip():
                return f"a key must be a volume id or name, got {key!r}"
            if not isinstance(where, str) or not where.strip():
                return f"volume {key}: say where its data was saved (a non-empty text), got {where!r}"
        return None
    return f"must be a list of volume ids/names or a dict volume -> where its data was saved, got {declared!r}"


def volumes_not_backed_up(volumes: list[dict[str, t.Any]], declared: t.Any) -> list[dict[str, t.Any]]:
    """The volumes whose id or name the declaration does not name."""
    named = backup_names(declared)
    return [v for v in volumes if v.get("id") not in named and (v.get("name") or None) not in named]


def gather(client: FlyClient, apps: list[str], org: str | None, include: t.Iterable[str]) -> dict[str, t.Any]:
    """Info for the org's apps and the named apps (in that order, without duplicates)."""
    names: list[str] = []
    org_apps: list[str] = []
    if org:
        org_apps = [a["name"] for a in client.list_apps(org)]
        names.extend(org_apps)
    for name in apps:
        if name not in names:
            names.append(name)
    results = [client.app_info(name, include) for name in names]
    return {
        "apps": results,
        "org_apps": org_apps,
        "missing": [r["name"] for r in results if r["exists"] is False],
        "forbidden": [r["name"] for r in results if r["forbidden"]],
    }


def what_will_be_lost(info: dict[str, t.Any]) -> dict[str, t.Any]:
    """What deleting the app destroys, as far as it is known (``unknown`` lists the gaps, volumes included)."""
    vols = info.get("volumes") or []
    return {
        "machines": len(info.get("machines") or []),
        "volumes": [
            {
                "id": v.get("id"),
                "name": v.get("name"),
                "size_gb": v.get("size_gb"),
                "attached_machine_id": v.get("attached_machine_id"),
            }
            for v in vols
        ],
        "volume_total_gb": sum(int(v.get("size_gb") or 0) for v in vols),
        "certificates": [c.get("hostname") for c in (info.get("certificates") or [])],
        "ips": [i.get("address") for i in (info.get("ips") or [])],
        "secret_names": list(info.get("secret_names") or []),
        "unknown": list(info.get("incomplete") or []),
    }


# --- secret redaction ------------------------------------------------------------------------------------
# A scanned line is kept as evidence (file:line, the matching text), but repositories hold credentials: every
# text taken from a scanned file goes through redact_secrets() before it is returned or written. What is
# removed is the secret itself; the key name, scheme, user, host and app name stay, so the finding stays useful.
REDACTED = "REDACTED"

_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s/?#@:'\"`<>]*):([^\s@'\"`<>]+)@")
_SECRET_PARAM = re.compile(
    r"(?i)([?&;][a-z0-9_.\[\]-]*?(?:token|key|secret|passw(?:or)?d|pass|pwd|sig|signature|auth|credential|"
    r"session)[a-z0-9_.\[\]-]*=)([^&#\s'\"`<>]+)"
)
_FLYV1 = re.compile(r"\b(FlyV1)\s+[A-Za-z0-9_+/=,.-]+")
_FLY_MACAROON = re.compile(r"\b(fm[12][ar]?_)[A-Za-z0-9_+/=,.-]+")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/=-]{8,})")
_TOKEN_SHAPES = (
    re.compile(r"\b(gh[pousr]_)[A-Za-z0-9]{20,}"),  # GitHub tokens
    re.compile(r"\b(github_pat_)[A-Za-z0-9_]{20,}"),  # GitHub fine-grained tokens
    re.compile(r"\b(glpat-)[A-Za-z0-9_-]{20,}"),  # GitLab
    re.compile(r"\b(A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA))[A-Z0-9]{12,}\b"),  # AWS access key ids
    re.compile(r"\b(eyJ)[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*)?"),  # JWTs
    re.compile(r"\b(xox[abposr]-)[A-Za-z0-9-]{10,}"),  # Slack
    re.compile(r"\b((?:sk|rk)_(?:live|test)_)[A-Za-z0-9]{10,}"),  # Stripe secret keys
    re.compile(r"\b(sk-(?:ant-|proj-)?)[A-Za-z0-9_-]{20,}"),  # OpenAI / Anthropic
    re.compile(r"\b(AIza)[0-9A-Za-z_-]{30,}"),  # Google API keys
    re.compile(r"\b(npm_)[A-Za-z0-9]{30,}"),  # npm
)
_SECRET_FLAG = re.compile(
    r"(?i)(?<![\w-])(--?[a-z0-9-]*(?:token|password|passwd|secret|api-?key|private-key|access-key)[a-z0-9-]*"
    r"(?:=|[ \t]+))(?=[^\s-])([^\s'\"`]+)"
)
_ASSIGN = re.compile(r"""(?<![\w.$])(["']?)([A-Za-z_][\w.-]*)\1([ \t]*[:=][ \t]*)""")
_LONG_TOKEN = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{32,}={0,2}(?![A-Za-z0-9+/=])")
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "tokens",
        "apikey",
        "privatekey",
        "accesskey",
        "secretkey",
        "credential",
        "credentials",
        "authorization",
    }
)
# Parts of a word that name a secret wherever they are (PGPASSWORD, MYSECRET, githubtoken).
_SECRET_PARTS = ("password", "passwd", "passphrase", "secret", "token", "apikey", "credential")
# A key whose last word says what kind of value it holds is not a secret value (SECRET_NAME, TOKEN_URL, ...).
_NOT_SECRET_LAST = frozenset(
    {
        "url",
        "uri",
        "host",
        "hostname",
        "endpoint",
        "port",
        "file",
        "path",
        "dir",
        "name",
        "names",
        "id",
        "ids",
        "type",
        "env",
        "var",
        "ref",
        "header",
        "ttl",
        "expiry",
        "expires",
        "length",
        "count",
        "size",
        "mode",
        "version",
    }
)
_REFERENCE_VALUE = re.compile(
    r"""^(?:\$\{\{[^{}]*\}\}|\$\{?[A-Za-z_]\w*\}?|\{\{[^{}]*\}\}|<[^<>]*>|%\([\w.-]+\)s|\*+|REDACTED|"""
    r"""[\[\]{}|>~-]*|\|-|>-|null|none|true|false)$""",
    re.I,
)
_URL_VALUE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


_SPACED_END = re.compile(r"[ \t]+#|$")
_SHELL_END = re.compile(r"[\s;&|)'\"`]|$")
# A value already reduced by the rules above ("Bearer REDACTED", "ghp_REDACTED") keeps what is left of it.
_ALREADY_REDACTED = re.compile(r"^(?:[A-Za-z][\w-]*\s+)?[\w-]*" + REDACTED + r"$")
_USER_FLAG = re.compile(r"(?<!\S)(-u|--user)([ \t]+|=)([^\s:'\"`]+):([^\s'\"`]+)")


def _key_words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key)
    return [w for w in re.split(r"[\s_.\-]+", spaced.lower()) if w]


def secret_key(key: str) -> bool:
    """Whether an assignment's key names a secret (PASSWORD, DB_PASS, apiKey, AWS_SECRET_ACCESS_KEY, ...)."""
    words = _key_words(key)
    if not words or words[-1] in _NOT_SECRET_LAST:
        return False
    return any(w in _SECRET_WORDS or any(part in w for part in _SECRET_PARTS) for w in words) or (
        "key" in words and len(words) > 1
    )


def _value_span(text: str, start: int, spaced: bool) -> tuple[int, int]:
    """Start and end of the value that begins at ``start`` (inside the quotes when quoted)."""
    if start >= len(text):
        return start, start
    quote = text[start]
    if quote in "\"'`":
        i = start + 1
        while i < len(text) and text[i] != quote:
            i += 2 if text[i] == "\\" and quote == '"' else 1
        return start + 1, min(i, len(text))
    if spaced:  # YAML / TOML / ini: the rest of the line, up to a comment
        m = _SPACED_END.search(text, start)
        end = m.start() if m else len(text)
        while end > start and text[end - 1] in " \t":
            end -= 1
        # a quote that closes around the whole assignment ('Authorization: Basic xyz') is not part of the value
        while end > start and text[end - 1] in "'\"`" and text[start:end].count(text[end - 1]) % 2 == 1:
            end -= 1
        return start, end
    m = _SHELL_END.search(text, start)
    return start, m.start() if m else len(text)


def _redact_assignments(text: str) -> str:
    out: list[str] = []
    pos = 0
    search_from = 0
    while True:
        m = _ASSIGN.search(text, search_from)
        if not m:
            break
        search_from = m.end()
        if not secret_key(m.group(2)):
            continue
        sep = m.group(3)
        start, end = _value_span(text, m.end(), spaced=":" in sep or sep != sep.strip())
        value = text[start:end].strip()
        if not value or any(p.match(value) for p in (_REFERENCE_VALUE, _URL_VALUE, _ALREADY_REDACTED)):
            continue
        out.append(text[pos:start])
        out.append(REDACTED)
        pos = search_from = end
    out.append(text[pos:])
    return "".join(out)


def _redact_flag(m: re.Match[str]) -> str:
    value = m.group(2).strip("\"'")
    return m.group(0) if _REFERENCE_VALUE.match(value) else m.group(1) + REDACTED


def _redact_long_token(m: re.Match[str]) -> str:
    token = m.group(0)
    classes = (re.search(r"[a-z]", token), re.search(r"[A-Z]", token), re.search(r"[0-9]", token))
    return REDACTED if all(classes) else token


def redact_secrets(text: str) -> str:
    """``text`` without the credentials it may hold; idempotent (redacting twice changes nothing more).

    Removed: the password of ``scheme://user:password@host``, query parameters named like token/key/secret/
    password/sig/auth, ``FlyV1 ...`` and ``fm1_``/``fm2_`` macaroons, Bearer/Basic credentials, common token shapes
    (GitHub, GitLab, AWS access key ids, JWTs, Slack, Stripe, OpenAI, Google, npm), the value of command-line flags
    and of ``KEY=value`` / ``key: value`` / ``"key": "value"`` assignments whose key names a secret, and long
    mixed-case base64-like strings. Kept: key names, schemes, users, hosts, app names, variable references
    (``${{ secrets.X }}``, ``$X``, ``{{ x }}``) and URLs that are assignment values (their credentials removed).
    """
    if not isinstance(text, str) or not text:
        return text
    text = _shown(text)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{m.group(2)}:{REDACTED}@", text)
    text = _SECRET_PARAM.sub(lambda m: m.group(1) + REDACTED, text)
    text = _FLYV1.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _FLY_MACAROON.sub(lambda m: m.group(1) + REDACTED, text)
    text = _AUTH_SCHEME.sub(
        lambda m: m.group(0) if not re.search(r"[0-9._~+/=-]", m.group(3)) else m.group(1) + m.group(2) + REDACTED,
        text,
    )
    for shape in _TOKEN_SHAPES:
        text = shape.sub(lambda m: m.group(1) + REDACTED, text)
    text = _USER_FLAG.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}:{REDACTED}", text)
    text = _SECRET_FLAG.sub(_redact_flag, text)
    text = _redact_assignments(text)
    return _LONG_TOKEN.sub(_redact_long_token, text)


def redact_value(value: t.Any) -> t.Any:
    """Copy of ``value`` with every string (not dict keys) passed through redact_secrets."""
    if isinstance(value, str):
        return redact_secrets(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value


# --- repository scan -------------------------------------------------------------------------------------
SCAN_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("fly_dev_hostname", re.compile(r"\b((?:[a-z0-9-]+\.)*[a-z0-9-]+\.fly\.dev)\b", re.I)),
    ("internal_hostname", re.compile(r"\b((?:[a-z0-9-]+\.)*[a-z0-9-]+\.(?:internal|flycast))\b", re.I)),
    (
        "registry_image",
        re.compile(r"\b(registry\.fly\.io/[A-Za-z0-9._/-]+(?::[A-Za-z0-9._-]+)?(?:@sha256:[0-9a-f]+)?)"),
    ),
    ("fly_variable", re.compile(r"(?<![A-Za-z0-9_])(FLY_[A-Z0-9_]+)")),
    (
        "flyctl",
        re.compile(
            r"(superfly/flyctl-actions[^\s'\"]*|\bflyctl\b[^\n]*|\bfly (?:deploy|apps|secrets|scale|"
            r"ips|certs|volumes|machine)\b[^\n]*)"
        ),
    ),
)
_FLYCTL_APP = re.compile(r"(?:\s-a|\s--app)[\s=]+([a-z0-9][a-z0-9-]*)")
# `flyctl deploy --config fly-danger.toml`, `fly deploy -c deploy/fly.toml`, `--config=...` (also in the args of
# superfly/flyctl-actions); the fly command comes first on the (continuation-joined) line.
_FLYCTL_CONFIG = re.compile(
    r"""(?:\bfly(?:ctl)?\b|\bargs\s*:)[^\n]*?(?<=\s)(?:--config|-c)(?:=|\s+)(["']?)([^\s"';|&)]+)\1""")
_FLY_TOML_APP = re.compile(r"""^\s*app\s*=\s*["']([^"']+)["']""")
NOT_FLY_INTERNAL = ("docker.internal", "containers.internal", "compute.internal", "ec2.internal")
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", ".tox"})


def _is_binary(path: str, sample: int = 8192) -> bool:
    """A NUL byte in the first ``sample`` bytes makes a file binary; text that is not UTF-8 is still read.

    Raises OSError when the file cannot be read.
    """
    with open(path, "rb") as handle:
        chunk = handle.read(sample)
    return b"\0" in chunk


def _reference_app(kind: str, value: str) -> str | None:
    """The Fly app a reference points at, when it names one."""
    low = value.lower()
    if kind == "fly_dev_hostname":
        return low[: -len(".fly.dev")].rsplit(".", 1)[-1]
    if kind == "internal_hostname":
        parts = low.split(".")
        return parts[-2] if len(parts) >= 2 else None
    if kind == "registry_image":
        rest = value.split("/", 1)[1]
        return rest.split("/", 1)[0].split(":", 1)[0].split("@", 1)[0].lower()
    if kind == "fly_toml_app":
        return low
    if kind == "flyctl":
        m = _FLYCTL_APP.search(value)
        return m.group(1).lower() if m else None
    return None


def _shown(text: str) -> str:
    """``text`` as valid UTF-8: bytes of a non-UTF-8 file name (surrogate escapes) become U+FFFD."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that does not stand for a byte
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


def _reason(exc: OSError) -> str:
    return f"unreadable: {exc.strerror or exc.__class__.__name__}"


def scan_paths(paths: list[str], max_file_size: int = 2_000_000, max_line: int = 300) -> dict[str, t.Any]:
    """Fly references in the given trees: each with file, line, kind, value and the app it names.

    Nothing raises for what is found in a tree: a file or directory that cannot be read is listed in ``skipped``
    with the reason ``unreadable: ...`` (the scan is then incomplete), binary files and files larger than
    ``max_file_size`` with theirs. Texts taken from the files are redacted (redact_secrets).
    """
    refs: list[dict[str, t.Any]] = []
    skipped: list[dict[str, str]] = []
    fly_tomls: list[dict[str, t.Any]] = []
    files = 0
    missing = [_shown(p) for p in paths if not os.path.lexists(p)]

    def walk_error(exc: OSError) -> None:
        skipped.append({"file": _shown(str(exc.filename)), "reason": _reason(exc)})

    notes: list[dict[str, t.Any]] = []
    named: list[tuple[str, str, int, str]] = []  # (scanned root, workflow, line, config as written)
    seen_tomls: set[str] = set()
    scanned: set[str] = set()  # files read in the walk
    for root_path in paths:
        if not os.path.lexists(root_path):
            continue
        walker = (
            [(os.path.dirname(root_path), [], [os.path.basename(root_path)])]
            if not os.path.isdir(root_path)
            else os.walk(root_path, onerror=walk_error)
        )
        for dirpath, dirnames, filenames in walker:
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for fname in sorted(filenames):
                path = os.path.join(dirpath, fname)
                if os.path.islink(path) or not os.path.isfile(path):
                    if path == root_path:
                        kind = "a symbolic link" if os.path.islink(path) else "not a regular file"
                        skipped.append({"file": _shown(path), "reason": f"{kind}, not read"})
                    continue
                try:
                    if os.path.getsize(path) > max_file_size:
                        skipped.append({"file": _shown(path), "reason": f"larger than {max_file_size} bytes"})
                        continue
                    if _is_binary(path):
                        skipped.append({"file": _shown(path), "reason": "binary"})
                        continue
                    before = len(fly_tomls)
                    found = _scan_file(path, fname, fly_tomls, max_line, notes=notes)
                    if len(fly_tomls) > before:
                        seen_tomls.add(os.path.realpath(path))
                    scanned.add(os.path.realpath(path))
                    if _is_workflow(path):
                        named.extend((root_path, path, line, cfg) for line, cfg in _workflow_configs(path))
                except OSError as exc:
                    skipped.append({"file": _shown(path), "reason": _reason(exc)})
                    continue
                files += 1
                refs.extend(found)
    for root_path, workflow, line, config in named:
        where = f"{_shown(workflow)}:{line}"
        if "$" in config or "{{" in config:
            notes.append({"file": _shown(workflow), "line": line, "reason": (
                f"the Fly configuration of a deploy step is named by a variable ({redact_secrets(config)}); "
                "not resolved, scan that file by its path")})
            continue
        target = _config_path(root_path, workflow, config)
        if target is None:
            notes.append({"file": _shown(workflow), "line": line, "reason": (
                f"the Fly configuration {redact_secrets(config)} named in the deploy step lies outside the scanned "
                "tree; not read")})
            continue
        if os.path.realpath(target) in seen_tomls:
            continue
        if not os.path.isfile(target) or os.path.islink(target):
            notes.append({"file": _shown(workflow), "line": line, "reason": (
                f"the Fly configuration {redact_secrets(config)} named in the deploy step ({where}) was not found "
                f"in the tree ({_shown(target)})")})
            continue
        seen_tomls.add(os.path.realpath(target))
        try:
            if os.path.getsize(target) > max_file_size or _is_binary(target):
                skipped.append({"file": _shown(target), "reason": f"larger than {max_file_size} bytes or binary"})
                continue
            found = _scan_file(target, os.path.basename(target), fly_tomls, max_line, notes=notes, named_in=where)
        except OSError as exc:
            skipped.append({"file": _shown(target), "reason": _reason(exc)})
            continue
        if os.path.realpath(target) in scanned:  # read as text in the walk: only its app = line is new
            found = [r for r in found if r["kind"] in ("fly_toml_app", "fly_toml")]
        else:
            files += 1
        refs.extend(found)
    return {
        "references": refs,
        "fly_tomls": fly_tomls,
        "files_scanned": files,
        "skipped": skipped,
        "missing_paths": missing,
        "apps_referenced": sorted({r["app"] for r in refs if r.get("app")}),
        "notes": notes,
    }


def _is_workflow(path: str) -> bool:
    return f"{os.sep}.github{os.sep}workflows{os.sep}" in path


def _workflow_configs(path: str) -> list[tuple[int, str]]:
    """(line, config path as written) of each fly deploy step of a workflow that names its configuration."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = handle.read().split("\n")
    found: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        start, text = i, lines[i]
        while text.rstrip().endswith("\\") and i + 1 < len(lines):  # shell line continuations
            i += 1
            text = text.rstrip()[:-1] + " " + lines[i].strip()
        for m in _FLYCTL_CONFIG.finditer(text):
            found.append((start + 1, m.group(2)))
        i += 1
    return found


def _config_path(root_path: str, workflow: str, config: str) -> str | None:
    """The file a workflow's ``--config`` names: relative to the checkout holding .github (the step's default
    working directory); None when it lies outside the scanned tree."""
    checkout = workflow.split(f"{os.sep}.github{os.sep}workflows{os.sep}", 1)[0]
    target = os.path.normpath(os.path.join(checkout, config))
    base = os.path.normpath(root_path if os.path.isdir(root_path) else os.path.dirname(root_path))
    if not os.path.isdir(root_path):
        base = checkout
    if target != base and not target.startswith(base.rstrip(os.sep) + os.sep):
        return None
    return target


def _toml_app(path: str, notes: list[dict[str, t.Any]]) -> bool:
    """Whether a ``*.toml`` file not named fly*.toml is a Fly configuration (a top-level ``app = "..."``).

    A file that is not UTF-8 or not TOML is not one; it is noted, never a failure.
    """
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        notes.append({"file": _shown(path), "line": None,
                      "reason": f"not UTF-8 (byte {exc.start}), not read as a Fly configuration"})
        return False
    if tomllib is None:
        for line in text.splitlines():
            if line.lstrip().startswith("["):
                return False
            if _FLY_TOML_APP.match(line):
                return True
        return False
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        notes.append({"file": _shown(path), "line": None,
                      "reason": f"not valid TOML ({redact_secrets(str(exc))}), not read as a Fly configuration"})
        return False
    return isinstance(data.get("app"), str)


def unreadable(scan: dict[str, t.Any]) -> list[str]:
    """Files and directories of a scan that could not be read."""
    return [
        str(s.get("file"))
        for s in scan.get("skipped") or []
        if isinstance(s, dict) and str(s.get("reason", "")).startswith("unreadable")
    ]


def _scan_file(path: str, fname: str, fly_tomls: list[dict[str, t.Any]], max_line: int,
               notes: list[dict[str, t.Any]] | None = None, named_in: str = "") -> list[dict[str, t.Any]]:
    out: list[dict[str, t.Any]] = []
    tomls: list[dict[str, t.Any]] = []
    is_toml = bool(named_in) or fname == "fly.toml" or (fname.startswith("fly.") and fname.endswith(".toml"))
    if not is_toml and fname.endswith(".toml"):
        is_toml = _toml_app(path, notes if notes is not None else [])
    is_workflow = _is_workflow(path)
    with open(path, encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, 1):
            text = line.rstrip("\n")
            seen: set[tuple[str, str]] = set()
            if is_toml:
                m = _FLY_TOML_APP.match(text)
                if m:
                    tomls.append({"file": _shown(path), "line": lineno, "app": redact_secrets(m.group(1)),
                                  **({"named_in": named_in} if named_in else {})})
                    out.append(_ref(path, lineno, "fly_toml_app", m.group(1), text, max_line))
            for kind, pattern in SCAN_PATTERNS:
                if kind == "flyctl" and not is_workflow:
                    continue
                for m in pattern.finditer(text):
                    value = m.group(1).strip()
                    if (kind, value) in seen or (
                        kind == "internal_hostname" and value.lower().endswith(NOT_FLY_INTERNAL)
                    ):
                        continue
                    seen.add((kind, value))
                    out.append(_ref(path, lineno, kind, value, text, max_line))
    if is_toml and not any(r["kind"] == "fly_toml_app" for r in out):
        tomls.append({"file": _shown(path), "line": None, "app": None, **({"named_in": named_in} if named_in else {})})
        out.append(_ref(path, 1, "fly_toml", "", "fly.toml without app =", max_line))
    fly_tomls.extend(tomls)  # only once the whole file was read
    return out


def _ref(path: str, line: int, kind: str, value: str, text: str, max_line: int) -> dict[str, t.Any]:
    """One reference; ``value`` and ``text`` are redacted (the app is read from the value before)."""
    shown = _shown(path)
    return {
        "file": shown,
        "line": line,
        "location": f"{shown}:{line}",
        "kind": kind,
        "value": redact_secrets(value),
        "app": _reference_app(kind, value) if value else None,
        "text": redact_secrets(text.strip())[:max_line],
    }


# --- verdict -----------------------------------------------------------------------------------------------
def assemble_probes(
    dns_results: list[dict[str, t.Any]], http_results: list[dict[str, t.Any]]
) -> list[dict[str, t.Any]]:
    """One probe per host from dns_check's ``results`` and ansible.builtin.uri's loop ``results``."""
    http = {}
    for r in http_results or []:
        item = r.get("item") if isinstance(r, dict) else None
        if isinstance(item, dict) and item.get("host") and not r.get("skipped"):
            http[item["host"]] = r
    out = []
    for d in dns_results or []:
        host = str(d.get("host", ""))
        h = http.get(host, {})
        status = h.get("status")
        status = int(status) if isinstance(status, int) and status > 0 else None
        detail = "; ".join(d.get("errors") or []) or ("" if status else str(h.get("msg", "")))
        out.append(
            {
                "app": host[: -len(".fly.dev")] if host.endswith(".fly.dev") else host,
                "host": host,
                "resolves": bool(d.get("addresses")),
                "addresses": list(d.get("addresses") or []),
                "status": status,
                "url": h.get("url", ""),
                "detail": detail[:200],
            }
        )
    return out


def judge_app(
    info: dict[str, t.Any] | None,
    name: str,
    scan: dict[str, t.Any] | None,
    probe: dict[str, t.Any] | None,
    backups: dict[str, t.Any],
) -> dict[str, t.Any]:
    """``gone``, ``safe to destroy`` or ``blocked`` with reasons, from the evidence gathered."""
    reasons: list[str] = []
    notes: list[str] = []
    scan = scan or {}
    mine = [r for r in scan.get("references") or [] if r.get("app") == name]
    ref_lines = [f"{r['location']} ({r['kind']}: {r['value']})" for r in mine]
    if info is None:
        return {
            "app": name,
            "verdict": "blocked",
            "reasons": ["no API evidence (no token given, or the API step was skipped): existence, volumes unknown"],
            "notes": ref_lines,
            "references": mine,
        }
    if info.get("forbidden"):
        return {
            "app": name,
            "verdict": "blocked",
            "reasons": [f"the token cannot read this app (HTTP 403): {info.get('error', '')}".strip()],
            "notes": [],
            "references": mine,
        }
    if info.get("exists") is False:
        if mine:
            notes.append(f"app is gone but {len(mine)} reference(s) remain: " + "; ".join(ref_lines[:20]))
        if probe and probe.get("resolves"):
            notes.append(f"{probe.get('host')} still resolves to {', '.join(probe.get('addresses') or [])}")
        return {"app": name, "verdict": "gone", "reasons": [], "notes": notes, "references": mine}
    started = [m for m in info.get("machines") or [] if m.get("state") == "started"]
    if started:
        reasons.append(
            f"{len(started)} machine(s) started ({', '.join(str(m.get('id')) for m in started)}): "
            "stop them and watch for traffic first"
        )
    if probe and probe.get("status") is not None and 0 < int(probe["status"]) < 500:
        reasons.append(f"{probe.get('url')} answers HTTP {probe['status']}: it may still serve traffic")
    if mine:
        reasons.append(f"{len(mine)} reference(s) left in the repositories: " + "; ".join(ref_lines[:20]))
    if not scan.get("files_scanned") and not scan.get("references"):
        reasons.append("no repository scan (flyio_audit_repo_paths empty or unreadable): references unknown")
    if scan.get("missing_paths"):
        reasons.append(f"repository path(s) not found, scan incomplete: {', '.join(scan['missing_paths'])}")
    gaps = unreadable(scan)
    if gaps:
        reasons.append(f"{len(gaps)} file(s)/director(ies) could not be read, scan incomplete: {', '.join(gaps[:10])}")
    declared = backups.get(name)
    volumes = info.get("volumes")
    if not isinstance(volumes, list):
        gap = next((g for g in info.get("incomplete") or [] if str(g).startswith("volumes:")), "")
        reasons.append(
            "the volumes could not be listed, so none can be ruled out"
            + (f" ({gap[len('volumes:') :].strip()})" if gap else "")
        )
    else:
        vague = "" if not (declared is True or isinstance(declared, str)) else " (a text or true names no volume)"
        for vol in volumes_not_backed_up(volumes, declared):
            reasons.append(
                f"volume {vol.get('id')} ({vol.get('name')}, {vol.get('size_gb')} GB) has no declared backup: "
                f"name it by id or name in the app's backups{vague}"
            )
    for gap in info.get("incomplete") or []:
        notes.append(f"not known: {gap}")
    verdict = "blocked" if reasons else "safe to destroy"
    return {"app": name, "verdict": verdict, "reasons": reasons, "notes": notes, "references": mine}


# --- report ------------------------------------------------------------------------------------------------
def _md(text: t.Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(doc: dict[str, t.Any]) -> str:
    lines = [
        f"# Fly.io audit ({doc['environment']})",
        "",
        f"- run: `{doc['run_id']}`",
        f"- written: {doc['written_at']}",
        f"- API: {doc['api']}",
        f"- destroy enabled: {doc['destroy']}",
        "",
        "## Verdicts",
        "",
        "| app | verdict | machines | volumes | certificates | IPs | reasons / notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in doc["verdicts"]:
        info = doc["apps"].get(v["app"]) or {}
        vols = info.get("volumes")
        vol_text = (
            "unknown"
            if vols is None and info.get("exists")
            else ", ".join(f"{x.get('id')} {x.get('name')} {x.get('size_gb')} GB" for x in vols or []) or "-"
        )
        certs = info.get("certificates")
        ips = info.get("ips")
        cert_text = (
            "unknown"
            if certs is None and info.get("exists")
            else ", ".join(str(c.get("hostname")) for c in certs or []) or "-"
        )
        ip_text = (
            "unknown"
            if ips is None and info.get("exists")
            else ", ".join(str(i.get("address")) for i in ips or []) or "-"
        )
        why = "; ".join(v["reasons"] + v["notes"]) or "-"
        machines = len(info.get("machines") or []) if info.get("exists") else "-"
        lines.append(
            f"| {v['app']} | **{v['verdict']}** | {machines} | {_md(vol_text)} | {_md(cert_text)} | "
            f"{_md(ip_text)} | {_md(why)} |"
        )
    if doc.get("destroyed"):
        lines += ["", "## Destroyed in this run", ""]
        lines += [f"- {d['name']}: {d.get('msg', '')}" for d in doc["destroyed"]]
    lines += ["", "## Probes", "", "| host | resolves | addresses | HTTPS status | detail |", "|---|---|---|---|---|"]
    for p in doc["probes"]:
        lines.append(
            f"| {p.get('host')} | {p.get('resolves')} | {', '.join(p.get('addresses') or []) or '-'} | "
            f"{p.get('status') if p.get('status') is not None else '-'} | {_md(p.get('detail', ''))} |"
        )
    scan = doc["scan"]
    lines += [
        "",
        "## Repository references",
        "",
        f"Scanned {scan.get('files_scanned', 0)} files in: " + ", ".join(f"`{p}`" for p in doc["repo_paths"]),
        "",
    ]
    if scan.get("missing_paths"):
        lines += [f"- missing path: `{p}`" for p in scan["missing_paths"]] + [""]
    lines += ["| file:line | kind | value | app |", "|---|---|---|---|"]
    for r in scan.get("references", []):
        lines.append(f"| `{_md(r['location'])}` | {r['kind']} | `{_md(r['value'])}` | {r.get('app') or '-'} |")
    if doc.get("skipped_steps"):
        lines += ["", "## Skipped", ""] + [f"- {s}" for s in doc["skipped_steps"]]
    return "\n".join(lines) + "\n"


def audit_report(
    apps: list[str],
    infos: list[dict[str, t.Any]] | None,
    scan: dict[str, t.Any],
    probes: list[dict[str, t.Any]],
    backups: dict[str, t.Any],
    destroyed: list[dict[str, t.Any]],
    environment: str,
    run_id: str,
    api: str,
    destroy: bool,
    repo_paths: list[str],
    skipped_steps: list[str],
) -> dict[str, t.Any]:
    by_name = {i["name"]: i for i in infos or []}
    probe_by_app = {p.get("app"): p for p in probes}
    names = list(dict.fromkeys([*apps, *by_name]))
    gone_now = {d["name"] for d in destroyed if d.get("deleted")}
    verdicts = []
    for name in names:
        info = by_name.get(name) if infos is not None else None
        if name in gone_now:
            info = {**(info or {}), "name": name, "exists": False}
        verdicts.append(judge_app(info, name, scan, probe_by_app.get(name), backups))
    counts = {v: sum(1 for x in verdicts if x["verdict"] == v) for v in VERDICTS}
    # everything that goes into the report and the module's result, redacted (scan texts, URLs, messages)
    return redact_value(
        {
            "environment": environment,
            "run_id": run_id,
            "written_at": _now(),
            "api": api,
            "destroy": destroy,
            "repo_paths": repo_paths,
            "apps": by_name,
            "verdicts": verdicts,
            "counts": counts,
            "probes": probes,
            "scan": scan,
            "destroyed": destroyed,
            "skipped_steps": skipped_steps,
        }
    )


REPORT_FILES = {"json": "flyio_audit.json", "markdown": "flyio_audit.md"}
# What a scan result carries into the report (sophia.migrate.flyio_repo_scan returns the skipped files as
# ``skipped_files``: ``skipped`` is a reserved key in Ansible results).
SCAN_KEYS = ("references", "fly_tomls", "files_scanned", "skipped", "missing_paths", "apps_referenced", "notes")


def scan_for_report(scan: dict[str, t.Any] | None) -> dict[str, t.Any]:
    """The scan part of a report from a ``scan_paths`` result or a registered flyio_repo_scan result."""
    scan = dict(scan or {})
    if "skipped_files" in scan:
        scan["skipped"] = scan.pop("skipped_files")
    elif not isinstance(scan.get("skipped"), list):
        scan.pop("skipped", None)  # a registered task result's 'skipped: true', not the list of skipped files
    # a scan result from elsewhere (an older version, a hand-made one) is redacted here as well
    return redact_value({k: scan[k] for k in SCAN_KEYS if k in scan})


def report_paths(directory: str, run_id: str) -> dict[str, str]:
    run_dir = os.path.join(directory, run_id)
    return {key: os.path.join(run_dir, name) for key, name in REPORT_FILES.items()}


def report_texts(doc: dict[str, t.Any]) -> dict[str, str]:
    return {"json": json.dumps(doc, indent=2, sort_keys=True) + "\n", "markdown": render_markdown(doc)}


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise FlyError(f"cannot read the existing report {path}: {getattr(exc, 'strerror', None) or exc}") from exc


REPORT_MODE = 0o600
# Modes left as they are on existing report files: nothing beyond owner read/write and group read (0640).
_REPORT_MODE_ALLOWED = 0o640


def _mode_too_open(path: str) -> bool:
    try:
        return bool(stat.S_IMODE(os.stat(path).st_mode) & ~_REPORT_MODE_ALLOWED)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise FlyError(f"cannot read the mode of the existing report {path}: {exc.strerror or exc}") from exc


def _shown_before(key: str, text: str | None) -> str | None:
    """An existing report's text for the diff, redacted (a report written by an earlier version may hold secrets)."""
    if text is None:
        return None
    if key == "json":
        try:
            return json.dumps(redact_value(json.loads(text)), indent=2, sort_keys=True) + "\n"
        except ValueError:
            pass
    return "\n".join(redact_secrets(line) for line in text.split("\n"))


def _write_private(path: str, text: str) -> None:
    """Write ``path`` atomically, mode 0600 from the start (a temporary file in the same directory, then rename)."""
    atomic_write(path, text, REPORT_MODE)


def sync_report(directory: str, run_id: str, doc: dict[str, t.Any], check_mode: bool = False) -> dict[str, t.Any]:
    """Write the report files (mode 0600) unless they already hold the same audit.

    ``written_at`` alone does not make a difference: when the files on disk differ from ``doc`` only by it, they
    are left as they are (and their ``written_at`` is kept). A file that holds the same audit but whose mode lets
    more than its owner write or more than owner and group read is set to 0600 (a change). Returns ``paths``,
    ``changed``, ``doc`` (as on disk afterwards), ``before`` and ``after`` (file texts, None for a file that did
    not exist; ``before`` redacted). In check mode nothing is written; ``changed`` tells whether it would be.
    """
    paths = report_paths(directory, run_id)
    raw = {key: _read_text(path) for key, path in paths.items()}
    before = {key: _shown_before(key, text) for key, text in raw.items()}
    too_open = [path for path in paths.values() if _mode_too_open(path)]
    try:
        previous = json.loads(raw["json"]) if raw["json"] is not None else None
    except ValueError:
        previous = None
    run_dir = os.path.dirname(paths["json"])
    if isinstance(previous, dict) and isinstance(previous.get("written_at"), str):
        kept = {**doc, "written_at": previous["written_at"]}
        texts = report_texts(kept)
        if texts == raw:
            if too_open and not check_mode:
                try:
                    for path in too_open:
                        os.chmod(path, REPORT_MODE)
                except OSError as exc:
                    raise FlyError(f"cannot set the mode of the report {path}: {exc.strerror or exc}") from exc
            return {"paths": paths, "changed": bool(too_open), "doc": kept, "before": before, "after": texts}
    texts = report_texts(doc)
    changed = texts != raw or bool(too_open)
    if changed and not check_mode:
        try:
            os.makedirs(run_dir, exist_ok=True)
            for key in ("json", "markdown"):
                _write_private(paths[key], texts[key])
        except OSError as exc:
            raise FlyError(f"cannot write the report under {run_dir}: {exc.strerror or exc}") from exc
    return {"paths": paths, "changed": changed, "doc": doc, "before": before, "after": texts}


def write_report(directory: str, run_id: str, doc: dict[str, t.Any], check_mode: bool = False) -> dict[str, str]:
    """Paths of the report files, written unless check_mode (see sync_report)."""
    return sync_report(directory, run_id, doc, check_mode)["paths"]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
