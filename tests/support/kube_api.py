"""A Kubernetes API server stand-in for core/v1 Secrets and Namespaces and cert-manager's Certificates, for the
kubernetes.core modules in tests.

Stand-in: no kube-apiserver (nor K3s) binary can run here. It answers what the kubernetes Python client's dynamic
client and kubernetes.core's k8s / k8s_info use for these kinds, as the API server does: discovery (/version, /api,
/api/v1, /apis, /apis/cert-manager.io/v1), GET of one object (404 with a Status of reason NotFound when absent) or of
a namespace's list, POST to create (409 AlreadyExists, 404 when the namespace does not exist), PUT to replace and
PATCH to merge (each a new resourceVersion), and a Secret's ``data`` checked as base64. Certificates are read-only:
cert-manager writes them, and a test puts them in place as cert-manager would (put_object). Every change is recorded
(method, plural, name) so a test can assert what was and was not written. Plain HTTP without authentication: the
kubeconfig it writes has no credentials.
"""

from __future__ import annotations

import base64
import binascii
import http.server
import itertools
import json
import re
import threading
import typing as t

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
RESOURCES = {
    "namespaces": {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
                   "verbs": [v for v in _VERBS if v != "deletecollection"], "shortNames": ["ns"]},
    "secrets": {"name": "secrets", "singularName": "secret", "namespaced": True, "kind": "Secret", "verbs": _VERBS},
}
# cert-manager.io/v1 (specs/k8s/cert-manager-crd-cert-manager.io_certificates-v1.21.1.yaml): read by the roles
CERT_MANAGER = {
    "certificates": {"name": "certificates", "singularName": "certificate", "namespaced": True, "kind": "Certificate",
                     "verbs": _VERBS, "shortNames": ["cert", "certs"], "categories": ["cert-manager"]},
}
_API_VERSION = {**dict.fromkeys(RESOURCES, "v1"), **dict.fromkeys(CERT_MANAGER, "cert-manager.io/v1")}
_OBJECT = re.compile(r"^/(?:api/v1|apis/cert-manager\.io/v1)/(?:namespaces/(?P<ns>[^/]+)/)?"
                     r"(?P<plural>namespaces|secrets|certificates)(?:/(?P<name>[^/?]+))?$")


def status(code: int, reason: str, message: str) -> dict[str, t.Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


class KubeApi:
    """The server; ``objects`` is keyed by (plural, namespace or '', name)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, t.Any]] = {}
        self.writes: list[tuple[str, str, str]] = []
        self._versions = itertools.count(1)
        self._lock = threading.Lock()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: t.Any) -> None:
                pass

            def _send(self, code: int, body: dict[str, t.Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> t.Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"null")

            def do_GET(self) -> None:
                self._send(*api.get(self.path.split("?", 1)[0]))

            def do_POST(self) -> None:
                self._send(*api.write("POST", self.path.split("?", 1)[0], self._body()))

            def do_PUT(self) -> None:
                self._send(*api.write("PUT", self.path.split("?", 1)[0], self._body()))

            def do_PATCH(self) -> None:
                self._send(*api.patch(self.path.split("?", 1)[0], self._body()))

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, path: str) -> str:
        config = {"apiVersion": "v1", "kind": "Config", "current-context": "standin",
                  "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
                  "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "standin"}}],
                  "users": [{"name": "standin", "user": {}}]}
        with open(path, "w") as handle:
            json.dump(config, handle)
        return path

    # --- discovery and reads --------------------------------------------------------------------------------------
    def get(self, path: str) -> tuple[int, dict[str, t.Any]]:
        if path == "/version":
            return 200, {"major": "1", "minor": "31", "gitVersion": "v1.31.4+k3s1", "platform": "linux/amd64"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
        if path == "/api/v1":
            return 200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": list(RESOURCES.values())}
        if path == "/apis":
            version = {"groupVersion": "cert-manager.io/v1", "version": "v1"}
            return 200, {"kind": "APIGroupList", "apiVersion": "v1",
                         "groups": [{"name": "cert-manager.io", "versions": [version], "preferredVersion": version}]}
        if path == "/apis/cert-manager.io/v1":
            return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "cert-manager.io/v1",
                         "resources": list(CERT_MANAGER.values())}
        match = _OBJECT.match(path)
        if not match or _API_VERSION[match["plural"]] != ("v1" if path.startswith("/api/") else "cert-manager.io/v1"):
            return 404, status(404, "NotFound", f"the server could not find the requested resource ({path})")
        if not match["name"]:
            kind = {**RESOURCES, **CERT_MANAGER}[match["plural"]]["kind"]
            with self._lock:
                items = [o for (plural, ns, _name), o in sorted(self.objects.items())
                         if plural == match["plural"] and (ns == (match["ns"] or "") or not match["ns"])]
            return 200, {"kind": f"{kind}List", "apiVersion": _API_VERSION[match["plural"]],
                         "metadata": {"resourceVersion": str(next(self._versions))}, "items": items}
        with self._lock:
            obj = self.objects.get((match["plural"], match["ns"] or "", match["name"]))
        if obj is None:
            return 404, status(404, "NotFound", f'{match["plural"]} "{match["name"]}" not found')
        return 200, obj

    # --- writes ------------------------------------------------------------------------------------------------------
    def write(self, method: str, path: str, body: t.Any) -> tuple[int, dict[str, t.Any]]:
        match = _OBJECT.match(path)
        if not match or not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            return 400, status(400, "BadRequest", f"cannot {method} {path}")
        plural, namespace = match["plural"], match["ns"] or ""
        name = match["name"] if method == "PUT" else body["metadata"].get("name")
        if not name or body["metadata"].get("name", name) != name:
            return 400, status(400, "BadRequest", "metadata.name is missing or does not match the path")
        if plural not in RESOURCES:
            return 405, status(405, "MethodNotAllowed", f"{plural} are read-only here (cert-manager writes them)")
        kind = RESOURCES[plural]["kind"]
        if body.get("kind") != kind or body.get("apiVersion") != "v1":
            got = f"{body.get('apiVersion')} {body.get('kind')}"
            return 400, status(400, "BadRequest", f"expected v1 {kind}, got {got}")
        if plural == "secrets":
            problem = self._secret_problem(body)
            if problem:
                return 422, status(422, "Invalid", f'Secret "{name}" is invalid: {problem}')
        key = (plural, namespace, name)
        with self._lock:
            if namespace and ("namespaces", "", namespace) not in self.objects:
                return 404, status(404, "NotFound", f'namespaces "{namespace}" not found')
            if method == "POST" and key in self.objects:
                return 409, status(409, "AlreadyExists", f'{plural} "{name}" already exists')
            if method == "PUT" and key not in self.objects:
                return 404, status(404, "NotFound", f'{plural} "{name}" not found')
            stored = json.loads(json.dumps(body))
            stored["metadata"].update({"name": name, "resourceVersion": str(next(self._versions))})
            if namespace:
                stored["metadata"]["namespace"] = namespace
            self.objects[key] = stored
            self.writes.append((method, plural, name))
        return (201 if method == "POST" else 200), stored

    def patch(self, path: str, body: t.Any) -> tuple[int, dict[str, t.Any]]:
        """A merge patch (RFC 7386; for these kinds a strategic merge patch merges the same way): recorded as a
        write only when it changes the object."""
        match = _OBJECT.match(path)
        if not match or not match["name"] or not isinstance(body, dict):
            return 400, status(400, "BadRequest", f"cannot PATCH {path}")
        key = (match["plural"], match["ns"] or "", match["name"])
        with self._lock:
            current = self.objects.get(key)
            if current is None:
                return 404, status(404, "NotFound", f'{match["plural"]} "{match["name"]}" not found')
            patched = _merge(json.loads(json.dumps(current)), body)
            patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            if patched != current:
                patched["metadata"]["resourceVersion"] = str(next(self._versions))
                self.objects[key] = patched
                self.writes.append(("PATCH", match["plural"], match["name"]))
            return 200, patched

    @staticmethod
    def _secret_problem(body: dict[str, t.Any]) -> str:
        for field, value in (body.get("data") or {}).items():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError, TypeError):
                return f"data[{field}]: not base64"
        if body.get("type") == "kubernetes.io/tls" and not {"tls.crt", "tls.key"} <= set(body.get("data") or {}):
            return "data[tls.crt] and data[tls.key] are required for type kubernetes.io/tls"
        return ""

    def put_object(self, plural: str, namespace: str, obj: dict[str, t.Any]) -> None:
        """Store ``obj`` as another writer (cert-manager, an operator) would, without recording it."""
        with self._lock:
            if namespace:
                self.objects.setdefault(("namespaces", "", namespace),
                                        {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": namespace, "resourceVersion": str(next(self._versions))}})
            obj = json.loads(json.dumps(obj))
            obj["metadata"]["resourceVersion"] = str(next(self._versions))
            self.objects[(plural, namespace, obj["metadata"]["name"])] = obj


def _merge(target: t.Any, patch: t.Any) -> t.Any:
    """RFC 7386 JSON merge patch: objects merge, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result
