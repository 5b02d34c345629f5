"""Stand-in for the Fly.io Machines API (test code only; never shipped as a feature).

A stdlib ``http.server`` in a thread that answers the calls sophia.migrate's Fly modules make:

  GET    /v1/apps?org_slug=            Apps_list      (ListAppsResponse)
  GET    /v1/apps/{app}                Apps_show      (App) / 404
  DELETE /v1/apps/{app}[?force=true]   Apps_delete    202, then the app stays visible for ``delete_polls`` GETs
  GET    /v1/apps/{app}/machines       Machines_list  (Machine[])
  GET    /v1/apps/{app}/volumes        Volumes_list   (Volume[])
  GET    /v1/apps/{app}/certificates   fly-docs certificates resource (not in the 2024-01 OpenAPI document)
  POST   /graphql                      app.ipAddresses / app.secrets (GraphQL; no OpenAPI document exists)

Every answer is validated before it is sent: Machines API answers against the OpenAPI document
(``specs/fly-machines-openapi-2024-01.yaml``: the operation is found by method and path template, ``$ref`` is
resolved, the body is checked with jsonschema; error statuses the document does not list are checked against its
``ErrorResponse``), certificates against a schema written from the fly-docs example, GraphQL answers against a
small schema of the fields asked. Problems are collected in ``violations`` (tests assert it stays empty);
deliberately malformed answers (``malformed``) are the only ones not validated.

Faults the tests switch on: ``rate_limited`` (answer 429 with Retry-After to the next N requests),
``forbidden`` (403 for every call about these apps), ``forbid_delete`` (403 on DELETE only), ``malformed``
(path -> raw body sent with 200), ``recorded`` (path -> a recorded answer ``{"status", "content_type", "body"}``
replayed as it is, e.g. a proxy's 404 page), ``delete_polls`` (GETs that still find an app after its DELETE).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import re
import threading
import typing as t
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPEC_CANDIDATES = (
    os.environ.get("FLY_OPENAPI_SPEC", ""),
    os.path.join(ROOT, "specs", "api", "fly-machines-openapi-2024-01.yaml"),  # vendored copy
    os.path.join(ROOT, "..", "shared", "specs", "fly-machines-openapi-2024-01.yaml"),
    "/work/shared/specs/fly-machines-openapi-2024-01.yaml",
)

# From fly-docs machines_api_certificates-resource.md, "List certificates" example response.
CERTIFICATE_LIST_SCHEMA = {
    "type": "object",
    "required": ["certificates"],
    "properties": {
        "certificates": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["hostname", "status"],
                "properties": {
                    "hostname": {"type": "string"},
                    "status": {"type": "string"},
                    "dns_provider": {"type": "string"},
                    "acme_dns_configured": {"type": "boolean"},
                    "acme_alpn_configured": {"type": "boolean"},
                    "acme_http_configured": {"type": "boolean"},
                    "ownership_txt_configured": {"type": "boolean"},
                    "configured": {"type": "boolean"},
                    "acme_requested": {"type": "boolean"},
                    "has_custom_certificate": {"type": "boolean"},
                    "has_fly_certificate": {"type": "boolean"},
                    "created_at": {"type": "string"},
                    "updated_at": {"type": "string"},
                },
            },
        },
        "total_count": {"type": "integer"},
    },
}
# The GraphQL fields flyctl reads for `ips list` and `secrets list` (names only).
GRAPHQL_APP_SCHEMA = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "object",
            "required": ["app"],
            "properties": {
                "app": {
                    "type": ["object", "null"],
                    "properties": {
                        "ipAddresses": {
                            "type": "object",
                            "required": ["nodes"],
                            "properties": {
                                "nodes": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["address", "type"],
                                        "properties": {
                                            "id": {"type": "string"},
                                            "address": {"type": "string"},
                                            "type": {"enum": ["v4", "v6", "shared_v4", "private_v6"]},
                                            "region": {"type": "string"},
                                            "createdAt": {"type": "string"},
                                        },
                                    },
                                }
                            },
                        },
                        "secrets": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name"],
                                "additionalProperties": False,
                                "properties": {"name": {"type": "string"}, "createdAt": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        },
        "errors": {"type": "array"},
    },
}


def spec_path() -> str:
    for candidate in SPEC_CANDIDATES:
        if candidate and os.path.exists(candidate):
            return candidate
    raise FileNotFoundError("fly-machines-openapi-2024-01.yaml not found (set FLY_OPENAPI_SPEC)")


@functools.lru_cache(maxsize=4)
def _load_spec(path: str) -> dict[str, t.Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - safe loaders


class OpenApi:
    """Operations of an OpenAPI 3.0 document and jsonschema validation of their answers ($ref resolved)."""

    def __init__(self, path: str | None = None):
        self.doc = _load_spec(path or spec_path())
        self.base = urllib.parse.urlparse(self.doc["servers"][0]["url"]).path.rstrip("/")  # /v1
        self.routes = []
        for template, ops in self.doc["paths"].items():
            regex = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")
            self.routes.append((template, regex, ops))

    def resolve(self, node: t.Any, depth: int = 0) -> t.Any:
        if depth > 40:
            raise ValueError("$ref nesting too deep")
        if isinstance(node, dict):
            if "$ref" in node:
                target: t.Any = self.doc
                for part in node["$ref"].lstrip("#/").split("/"):
                    target = target[part]
                return self.resolve(target, depth + 1)
            return {k: self.resolve(v, depth + 1) for k, v in node.items() if k not in ("example", "x-enum-varnames")}
        if isinstance(node, list):
            return [self.resolve(v, depth + 1) for v in node]
        return node

    def operation(self, method: str, path: str) -> tuple[str, dict[str, t.Any]] | None:
        local = path.split("?", 1)[0]
        if local.startswith(self.base):
            local = local[len(self.base) :]
        for template, regex, ops in self.routes:
            if regex.match(local) and method.lower() in ops:
                return template, ops[method.lower()]
        return None

    def check_request(self, method: str, path: str) -> list[str]:
        found = self.operation(method, path)
        if not found:
            return [f"{method} {path}: no such operation in the OpenAPI document"]
        template, op = found
        query = urllib.parse.parse_qs(urllib.parse.urlparse(path).query)
        return [
            f"{method} {template}: required query parameter '{prm['name']}' missing"
            for prm in op.get("parameters", [])
            if prm.get("in") == "query" and prm.get("required") and prm["name"] not in query
        ]

    def check_response(self, method: str, path: str, status: int, body: t.Any) -> list[str]:
        found = self.operation(method, path)
        if not found:
            return [f"{method} {path}: no such operation in the OpenAPI document"]
        template, op = found
        response = op.get("responses", {}).get(str(status))
        if response is None:
            if status >= 400:
                schema = self.resolve({"$ref": "#/components/schemas/ErrorResponse"})
                return _validate(schema, body, f"{method} {template} {status} (ErrorResponse)")
            return [f"{method} {template}: status {status} is not a documented answer"]
        content = response.get("content") or {}
        if "application/json" not in content:
            return [] if body is None else [f"{method} {template} {status}: the document says no body"]
        schema = self.resolve(content["application/json"]["schema"])
        return _validate(schema, body, f"{method} {template} {status}")


def _validate(schema: dict[str, t.Any], body: t.Any, where: str) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{where}: {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(body)
    ]


def machine(
    mid: str,
    state: str = "started",
    region: str = "iad",
    image: str = "registry.fly.io/app:v1",
    updated_at: str = "2024-05-01T10:00:00Z",
) -> dict[str, t.Any]:
    repo, _u1, tag = image.partition(":")
    registry, _u1, repository = repo.partition("/")
    return {
        "id": mid,
        "name": f"m-{mid[:6]}",
        "state": state,
        "region": region,
        "instance_id": "01H" + mid,
        "private_ip": "fdaa:0:1::3",
        "created_at": "2024-01-10T09:00:00Z",
        "updated_at": updated_at,
        "config": {"image": image, "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}},
        "image_ref": {"registry": registry, "repository": repository, "tag": tag or "latest", "digest": "sha256:0"},
    }


def volume(vid: str, name: str, size_gb: int, attached_machine_id: str | None = None) -> dict[str, t.Any]:
    return {
        "id": vid,
        "name": name,
        "size_gb": size_gb,
        "state": "created",
        "region": "iad",
        "zone": "a1b2",
        "encrypted": True,
        "fstype": "ext4",
        "created_at": "2024-01-10T09:00:00Z",
        "snapshot_retention": 5,
        "attached_machine_id": attached_machine_id or "",
        "attached_alloc_id": "",
    }


class FlyMachinesStandin:
    """``with FlyMachinesStandin(token="t") as api: api.add_app(...)``; ``api.url`` is the base URL (/v1)."""

    def __init__(self, token: str = "standin-token", host: str = "127.0.0.1", port: int = 0):  # noqa: S107
        self.token = token
        self.openapi = OpenApi()
        self.lock = threading.Lock()
        self.apps: dict[str, dict[str, t.Any]] = {}
        self.requests: list[dict[str, t.Any]] = []
        self.violations: list[str] = []
        self.rate_limited = 0
        self.retry_after = "1"
        self.forbidden: set[str] = set()
        self.forbid_delete: set[str] = set()
        self.malformed: dict[str, bytes] = {}
        self.recorded: dict[str, dict[str, t.Any]] = {}
        self.delete_polls = 0
        self.certificates_endpoint = True
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address[:2]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def graphql_url(self) -> str:
        return f"http://{self.host}:{self.port}/graphql"

    def __enter__(self) -> FlyMachinesStandin:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_app(
        self,
        name: str,
        org: str = "sophia-ai",
        machines: list[dict[str, t.Any]] | None = None,
        volumes: list[dict[str, t.Any]] | None = None,
        certificates: list[str] | None = None,
        ips: list[dict[str, str]] | None = None,
        secrets: dict[str, str] | None = None,
        status: str = "deployed",
    ) -> None:
        with self.lock:
            self.apps[name] = {
                "id": f"id{abs(hash(name)) % 10**12:012d}",
                "name": name,
                "org": org,
                "status": status,
                "machines": machines or [],
                "volumes": volumes or [],
                "certificates": [
                    {
                        "hostname": h,
                        "status": "active",
                        "configured": True,
                        "acme_requested": True,
                        "has_custom_certificate": False,
                        "has_fly_certificate": True,
                        "created_at": "2024-01-15T10:30:00Z",
                        "updated_at": "2024-01-15T12:00:00Z",
                    }
                    for h in certificates or []
                ],
                "ips": ips or [],
                "secrets": dict(secrets or {}),
                "deleting": None,
            }

    def calls(self, method: str | None = None, path_prefix: str = "") -> list[dict[str, t.Any]]:
        return [
            r for r in self.requests if (method is None or r["method"] == method) and r["path"].startswith(path_prefix)
        ]

    # --- request handling -------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                standin.handle(self, "GET")

            def do_POST(self) -> None:
                standin.handle(self, "POST")

            def do_DELETE(self) -> None:
                standin.handle(self, "DELETE")

        return Handler

    def _send(
        self,
        req: BaseHTTPRequestHandler,
        status: int,
        body: t.Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        validate: str = "openapi",
    ) -> None:
        method, path = req.command, req.path
        if raw is None:
            problems: list[str] = []
            if validate == "openapi":
                problems = self.openapi.check_response(method, path, status, body)
            elif validate == "certificates" and status == 200:
                problems = _validate(CERTIFICATE_LIST_SCHEMA, body, f"{method} {path}")
            elif validate == "graphql":
                problems = _validate(GRAPHQL_APP_SCHEMA, body, f"{method} {path}")
            self.violations.extend(problems)
            raw = b"" if body is None else json.dumps(body).encode()
        req.send_response(status)
        if raw:
            req.send_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            req.send_header(key, value)
        req.send_header("Content-Length", str(len(raw)))
        req.end_headers()
        req.wfile.write(raw)

    @staticmethod
    def _replay(req: BaseHTTPRequestHandler, answer: dict[str, t.Any]) -> None:
        """Send a recorded answer as it is (deliberately not validated: it is what some server once sent)."""
        body = answer.get("body", "")
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        req.send_response(int(answer["status"]))
        req.send_header("Content-Type", answer.get("content_type", "application/json"))
        req.send_header("Content-Length", str(len(raw)))
        req.end_headers()
        req.wfile.write(raw)

    def _authorized(self, header: str) -> bool:
        return header in (f"Bearer {self.token}", f"FlyV1 {self.token}")

    def handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        payload = req.rfile.read(length) if length else b""
        parsed = urllib.parse.urlparse(req.path)
        parts = [urllib.parse.unquote(p) for p in parsed.path.split("/") if p]
        query = urllib.parse.parse_qs(parsed.query)
        auth = req.headers.get("Authorization", "")
        with self.lock:
            self.requests.append({"method": method, "path": req.path, "authorization": auth})
            if parts[:1] == ["v1"] and "certificates" not in parts[3:4]:
                self.violations.extend(self.openapi.check_request(method, req.path))
            if not self._authorized(auth):
                self._send(req, 401, {"error": "unauthorized"}, validate="openapi" if parts[:1] == ["v1"] else "")
                return
            if self.rate_limited > 0:
                self.rate_limited -= 1
                self._send(
                    req,
                    429,
                    {"error": "rate limited"},
                    headers={"Retry-After": self.retry_after},
                    validate="openapi" if parts[:1] == ["v1"] else "",
                )
                return
            if parsed.path in self.malformed:
                self._send(req, 200, raw=self.malformed[parsed.path])
                return
            if parsed.path in self.recorded:
                self._replay(req, self.recorded[parsed.path])
                return
            if parts == ["graphql"] and method == "POST":
                self._graphql(req, payload)
                return
            if parts[:2] != ["v1", "apps"]:
                self._send(req, 404, {"error": "not found"}, validate="")
                return
            self._apps(req, method, parts[2:], query)

    def _apps(self, req: BaseHTTPRequestHandler, method: str, rest: list[str], query: dict[str, list[str]]) -> None:
        if not rest:
            org = (query.get("org_slug") or [""])[0]
            apps = [a for a in self.apps.values() if a["org"] == org and a["deleting"] is None]
            self._send(
                req,
                200,
                {
                    "total_apps": len(apps),
                    "apps": [
                        {"id": a["id"], "name": a["name"], "machine_count": len(a["machines"]), "network": {}}
                        for a in apps
                    ],
                },
            )
            return
        name = rest[0]
        if name in self.forbidden or (method == "DELETE" and name in self.forbid_delete):
            self._send(req, 403, {"error": f"you are not allowed to access app {name}"})
            return
        app = self.apps.get(name)
        if app is not None and app["deleting"] is not None and method == "GET" and len(rest) == 1:
            if app["deleting"] <= 0:
                del self.apps[name]
                app = None
            else:
                app["deleting"] -= 1
        if app is None:
            self._send(
                req,
                404,
                {"error": f"app {name} not found"},
                validate="certificates" if rest[1:] == ["certificates"] else "openapi",
            )
            return
        if len(rest) == 1 and method == "GET":
            self._send(
                req,
                200,
                {
                    "id": app["id"],
                    "name": name,
                    "status": app["status"],
                    "organization": {"name": app["org"].title(), "slug": app["org"]},
                },
            )
        elif len(rest) == 1 and method == "DELETE":
            if app["deleting"] is None:
                app["deleting"] = self.delete_polls
                app["status"] = "suspended"
            self._send(req, 202)
        elif rest[1:] == ["machines"] and method == "GET":
            self._send(req, 200, copy.deepcopy(app["machines"]))
        elif rest[1:] == ["volumes"] and method == "GET":
            self._send(req, 200, copy.deepcopy(app["volumes"]))
        elif rest[1:] == ["certificates"] and method == "GET":
            if not self.certificates_endpoint:
                self._send(req, 404, {"error": "not found"}, validate="")
                return
            self._send(
                req,
                200,
                {"certificates": copy.deepcopy(app["certificates"]), "total_count": len(app["certificates"])},
                validate="certificates",
            )
        else:
            self._send(req, 404, {"error": "not found"}, validate="")

    def _graphql(self, req: BaseHTTPRequestHandler, payload: bytes) -> None:
        try:
            doc = json.loads(payload or b"{}")
            name = doc["variables"]["appName"]
        except (ValueError, KeyError, TypeError):
            self._send(req, 400, {"errors": [{"message": "bad request"}]}, validate="")
            return
        if "value" in doc.get("query", "").split("secrets", 1)[-1].split("}", 1)[0]:
            self.violations.append("GraphQL: a secret value was requested")
        app = self.apps.get(name)
        if name in self.forbidden:
            self._send(req, 200, {"data": {"app": None}, "errors": [{"message": "Not authorized"}]}, validate="graphql")
            return
        if app is None:
            self._send(
                req, 200, {"data": {"app": None}, "errors": [{"message": "Could not find App"}]}, validate="graphql"
            )
            return
        body = {
            "data": {
                "app": {
                    "ipAddresses": {
                        "nodes": [
                            {
                                "id": f"ip_{i}",
                                "address": ip["address"],
                                "type": ip.get("type", "v6"),
                                "region": ip.get("region", "global"),
                                "createdAt": "2024-01-10T09:00:00Z",
                            }
                            for i, ip in enumerate(app["ips"])
                        ]
                    },
                    "secrets": [{"name": k, "createdAt": "2024-01-10T09:00:00Z"} for k in sorted(app["secrets"])],
                }
            }
        }
        self._send(req, 200, body, validate="graphql")


def seed_legacy(api: FlyMachinesStandin, org: str = "sophia-ai") -> None:
    """The seed's eight legacy apps, some with machines and volumes (for manual lab rehearsals)."""
    names = [
        "sophiaai-dashboard-v2",
        "sophiaai-mcp-repo-v2",
        "sophiaai-mcp-research-v2",
        "sophiaai-mcp-context-v2",
        "sophiaai-mcp-business-v2",
        "sophiaai-mcp-lambda-v2",
        "sophiaai-mcp-hubspot-v2",
        "sophiaai-jobs-v2",
    ]
    for i, name in enumerate(names):
        api.add_app(
            name,
            org,
            machines=[machine(f"{i:02d}8ed193b950", state="stopped", image=f"registry.fly.io/{name}:deployment-01")],
            ips=[{"address": f"2a09:8280:1::{i + 1}", "type": "v6"}],
            secrets={"REDIS_URL": "x"},
        )
    api.apps["sophiaai-jobs-v2"]["volumes"] = [volume("vol_jobs0001", "jobs_data", 10, "008ed193b950")]


def main() -> None:  # pragma: no cover - manual rehearsals only
    parser = argparse.ArgumentParser(description="Fly Machines API stand-in (test code)")
    parser.add_argument("--port", type=int, default=18470)
    parser.add_argument("--token", default=os.environ.get("FLY_STANDIN_TOKEN", "standin-token"))
    parser.add_argument("--delete-polls", type=int, default=2)
    args = parser.parse_args()
    api = FlyMachinesStandin(token=args.token, port=args.port)
    api.delete_polls = args.delete_polls
    seed_legacy(api)
    print(f"Fly Machines API stand-in on {api.url} (GraphQL {api.graphql_url})", flush=True)
    api.server.serve_forever()


if __name__ == "__main__":  # pragma: no cover
    main()
