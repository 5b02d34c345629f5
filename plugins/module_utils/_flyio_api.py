"""Fly.io API client for the Phase 1 audit: Machines API (+ GraphQL), its options and the answers it accepts.

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

import json
import re
import time
import typing as t
import urllib.parse

from ansible_collections.sophia.migrate.plugins.module_utils._flyio_answers import fly_error_body, volume_problem
from ansible_collections.sophia.migrate.plugins.module_utils._flyio_redact import redact_secrets
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
