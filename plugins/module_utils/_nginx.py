"""Parse an nginx (nginx-proxy) configuration into a route list.

The route list is the single description of the edge that the ``ingress_certs`` role (Ingress
resources) and the ``traffic_shift`` role (weighted edge) consume, so routes are never typed twice.

What is translated: ``server_name``, ``listen`` (``ssl``), ``ssl_certificate``, prefix and exact
``location`` blocks (nested too), ``proxy_pass`` to ``upstream`` blocks or ``host:port``, websocket
upgrade headers, ``client_max_body_size``, ``proxy_{read,send,connect}_timeout``, ``proxy_buffering``;
inherited from ``http`` -> ``server`` -> ``location`` as nginx does. ``include`` is followed (globs,
relative to the main file's directory). Everything else that would change behaviour is reported in
``unsupported`` with file, line and context, never dropped silently.

Host names and paths end up in Kubernetes manifests: a ``server_name`` that is not a DNS-1123 subdomain
(a leading ``*.`` allowed), a regular-expression or wildcard-suffix name, a location path or ``proxy_pass`` URI
with whitespace, control characters or sequences an Ingress path may not hold never becomes a route; it is
reported in ``rejected`` (file, line, server, value, reason).
"""

from __future__ import annotations

import glob
import hashlib
import ipaddress
import json
import os
import re
import typing as t

NGINX_DEFAULTS = {"client_max_body_size": "1m", "read": "60s", "send": "60s", "connect": "60s"}

# Directives that need no translation: handled by the ingress controller, logging, or
# performance tuning with no effect on routing.
IGNORED = frozenset({
    "access_log", "error_log", "log_format", "sendfile", "tcp_nopush", "tcp_nodelay", "keepalive_timeout",
    "keepalive_requests", "types_hash_max_size", "server_tokens", "default_type", "types", "gzip", "gzip_vary",
    "gzip_proxied", "gzip_comp_level", "gzip_buffers", "gzip_http_version", "gzip_types", "gzip_min_length",
    "gzip_disable", "charset", "server_names_hash_bucket_size", "server_names_hash_max_size", "resolver",
    "resolver_timeout", "ssl_protocols", "ssl_ciphers", "ssl_prefer_server_ciphers", "ssl_session_cache",
    "ssl_session_timeout", "ssl_session_tickets", "ssl_stapling", "ssl_stapling_verify", "ssl_dhparam",
    "ssl_ecdh_curve", "ssl_trusted_certificate", "ssl_certificate", "ssl_certificate_key", "http2", "ssl",
    "proxy_http_version", "proxy_redirect", "proxy_buffer_size", "proxy_buffers", "proxy_busy_buffers_size",
    "client_body_buffer_size", "large_client_header_buffers", "client_header_buffer_size", "proxy_buffering",
    "proxy_read_timeout", "proxy_send_timeout", "proxy_connect_timeout", "client_max_body_size",
    "proxy_pass", "proxy_set_header", "listen", "server_name", "include", "keepalive", "map", "server",
    "location", "upstream", "http", "events", "zone", "open_file_cache", "reset_timedout_connection",
    "variables_hash_max_size", "variables_hash_bucket_size", "proxy_headers_hash_max_size",
    "proxy_headers_hash_bucket_size", "real_ip_header", "set_real_ip_from", "real_ip_recursive",
    "underscores_in_headers",
})
# Outside ``http``: process-level settings with no meaning for an Ingress.
MAIN_CONTEXT = frozenset({"user", "worker_processes", "pid", "worker_rlimit_nofile", "error_log", "load_module",
                          "include", "daemon", "worker_connections", "multi_accept", "use", "events", "http",
                          "env", "pcre_jit", "worker_cpu_affinity", "stream", "mail"})
# Headers that every ingress controller sets on its own (or that make websockets work).
STANDARD_HEADERS = frozenset({"host", "x-real-ip", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                              "x-forwarded-port", "upgrade", "connection"})
_STOCK_INCLUDES = frozenset({"mime.types", "fastcgi_params", "fastcgi.conf", "uwsgi_params", "scgi_params"})
_REDIRECT_CODES = ("301", "302", "303", "307", "308")
_DNS1123 = re.compile(r"[^a-z0-9-]+")
_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
# Kubernetes' Ingress rule host: a DNS-1123 subdomain, optionally a wildcard in the first label only.
_INGRESS_HOST = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")
# An Ingress Prefix/Exact path (and the URI part of proxy_pass): printable ASCII without whitespace, and without the
# characters the NGINX ingress controllers refuse in a path ({, }, ;, \) or that would end a quoted annotation.
_INGRESS_PATH = re.compile(r"/[\x21-\x7e]*")
_PATH_FORBIDDEN_CHARS = frozenset('{};\\"\'')
# Kubernetes' Ingress path validation (networking/validation: invalidPathSequences / invalidPathSuffixes).
_PATH_FORBIDDEN_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_PATH_FORBIDDEN_SUFFIXES = ("/..", "/.")


# traffic_shift's edge edit keeps a location's old target here (set $sophia_migrate_compose_upstream <target>;)
# when it points proxy_pass at the splitter: the route is read from that record, not from the splitter.
SPLIT_MARKER = "$sophia_migrate_compose_upstream"


class NginxConfigError(Exception):
    """A configuration that cannot be read or parsed (message names file and line)."""


class Directive(t.NamedTuple):
    name: str
    args: list[str]
    file: str
    line: int
    block: list[Directive] | None


def tokenize(text: str, file: str) -> list[tuple[str, int, bool]]:
    """(token, line, quoted) triples; ``{``, ``}`` and ``;`` are tokens of their own."""
    tokens: list[tuple[str, int, bool]] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "{};":
            tokens.append((c, line, False))
            i += 1
        elif c in "\"'":
            start_line, quote, i, buf = line, c, i + 1, []
            while i < n and text[i] != quote:
                if text[i] == "\\" and i + 1 < n:
                    buf.append({"n": "\n", "t": "\t", "r": "\r"}.get(text[i + 1], text[i + 1]))
                    i += 2
                    continue
                if text[i] == "\n":
                    line += 1
                buf.append(text[i])
                i += 1
            if i >= n:
                raise NginxConfigError(f"{file}:{start_line}: unterminated quoted string")
            tokens.append(("".join(buf), start_line, True))
            i += 1
        else:
            start, depth = i, 0
            while i < n:
                ch = text[i]
                if ch == "{" and i > start and text[i - 1] == "$":
                    depth += 1  # ${var}
                elif ch == "}" and depth:
                    depth -= 1
                elif ch.isspace() or ch in ";{}" or (ch == "#" and i == start):
                    break
                i += 1
            tokens.append((text[start:i], line, False))
    return tokens


def parse_text(text: str, file: str) -> list[Directive]:
    tokens = tokenize(text, file)
    pos = 0

    def block(depth: int) -> list[Directive]:
        nonlocal pos
        out: list[Directive] = []
        while pos < len(tokens):
            tok, line, quoted = tokens[pos]
            if tok == "}" and not quoted:
                if depth == 0:
                    raise NginxConfigError(f"{file}:{line}: unexpected '}}'")
                pos += 1
                return out
            if tok in ("{", ";") and not quoted:
                raise NginxConfigError(f"{file}:{line}: unexpected '{tok}'")
            name, args = tok, []
            pos += 1
            while pos < len(tokens) and (tokens[pos][2] or tokens[pos][0] not in "{};"):
                args.append(tokens[pos][0])
                pos += 1
            if pos >= len(tokens):
                raise NginxConfigError(f"{file}:{line}: directive '{name}' is not terminated by ';' or '{{'")
            end = tokens[pos][0]
            pos += 1
            if end == ";":
                out.append(Directive(name, args, file, line, None))
            elif end == "{":
                out.append(Directive(name, args, file, line, block(depth + 1)))
            else:
                raise NginxConfigError(f"{file}:{line}: unexpected '}}' after directive '{name}'")
        if depth:
            raise NginxConfigError(f"{file}: unexpected end of file, a '{{' block is not closed")
        return out

    return block(0)


def parse_file(path: str, root: str | None = None, _seen: tuple[str, ...] = ()) -> list[Directive]:
    """Parse ``path`` and splice in every ``include`` (paths relative to ``root``, default its directory)."""
    path = os.path.abspath(path)
    if path in _seen:
        raise NginxConfigError(f"{path}: include loop ({' -> '.join(_seen)})")
    root = root or os.path.dirname(path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise NginxConfigError(f"{path}: cannot read: {exc}") from exc
    return _expand(parse_text(text, path), root, (*_seen, path))


def _expand(directives: list[Directive], root: str, seen: tuple[str, ...]) -> list[Directive]:
    out: list[Directive] = []
    for d in directives:
        if d.name == "include" and d.block is None and len(d.args) == 1:
            if os.path.basename(d.args[0]) in _STOCK_INCLUDES:
                continue  # nginx's stock MIME/CGI parameter files: nothing to route
            pattern = d.args[0] if os.path.isabs(d.args[0]) else os.path.join(root, d.args[0])
            matches = sorted(glob.glob(pattern))
            if not matches and not glob.has_magic(pattern):
                raise NginxConfigError(f"{d.file}:{d.line}: include {d.args[0]}: no such file ({pattern})")
            for match in matches:
                out.extend(parse_file(match, root, seen))
        elif d.block is not None:
            out.append(d._replace(block=_expand(d.block, root, seen)))
        else:
            out.append(d)
    return out


def _duration(value: str) -> str:
    return f"{value}s" if re.fullmatch(r"\d+", value) else value


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(value: str) -> int:
    """nginx time ("90", "5s", "1h", "1m30s") in whole seconds (at least 1)."""
    parts = re.findall(r"(\d+)(ms|[smhdw]?)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return 60
    return max(1, int(sum(int(n) * _UNITS[u or "s"] for n, u in parts)))


def dns1123(text: str, limit: int = 63) -> str:
    name = _DNS1123.sub("-", text.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name) or "root"
    if len(name) > limit:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[: limit - 9].rstrip('-')}-{digest}"
    return name


def route_name(host: str, path: str) -> str:
    label = host.split(".", maxsplit=1)[0] if host and host not in ("_", "") else "default"
    if label.startswith("*"):
        label = "wildcard"
    rest = path.strip("/")
    return dns1123(f"{label}-{rest}" if rest else f"{label}-root")


def ingress_host(name: str) -> tuple[str, str]:
    """(host, problem) for a ``server_name``: the Ingress host ("" for the catch-all) or why it cannot be one.

    nginx compares names case-insensitively, so ASCII upper case is folded; anything else that is not a DNS-1123
    subdomain (with at most a leading ``*.``) is refused, never repaired.
    """
    if name in ("_", ""):
        return "", ""
    if name.startswith("~"):
        return "", "a regular-expression server_name has no Ingress host equivalent"
    if "$" in name:
        return "", "a server_name with variables has no Ingress host equivalent"
    if name.startswith(".") and not name.startswith(".."):
        return "", ("'.name' (nginx: the name and all its subdomains) is not one Ingress host; "
                    "list the name and '*.name' instead")
    if name.endswith(".*") or "*" in name.lstrip("*"):
        return "", "a wildcard other than a leading '*.' (for example 'app.*') has no Ingress host equivalent"
    host = name.lower() if name.isascii() else name
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return "", "an IP address is not an Ingress host"
    if len(host) > 253 or not _INGRESS_HOST.fullmatch(host):
        return "", ("not a DNS-1123 subdomain (letters, digits, '-' and '.', labels of at most 63 characters, "
                    "at most 253 in all; a wildcard only as a leading '*.')")
    return host, ""


def ingress_path_problem(path: str) -> str:
    """Why ``path`` cannot be an Ingress ``Prefix``/``Exact`` path ("" when it can)."""
    if not path.startswith("/"):
        return "an Ingress path must start with '/'"
    if not _INGRESS_PATH.fullmatch(path):
        return "an Ingress path must be printable ASCII without whitespace or control characters"
    bad = sorted(_PATH_FORBIDDEN_CHARS.intersection(path))
    if bad:
        return f"an Ingress path must not contain {' '.join(repr(c) for c in bad)}"
    for seq in _PATH_FORBIDDEN_SEQUENCES:
        if seq in path:
            return f"an Ingress path must not contain {seq!r}"
    for suffix in _PATH_FORBIDDEN_SUFFIXES:
        if path.endswith(suffix):
            return f"an Ingress path must not end with {suffix!r}"
    return ""


class _Settings(t.NamedTuple):
    body: str
    read: str
    send: str
    connect: str
    buffering: bool
    headers: dict[str, str]


def _apply(settings: _Settings, block: list[Directive]) -> _Settings:
    body, read, send, connect = settings.body, settings.read, settings.send, settings.connect
    buffering = settings.buffering
    headers: dict[str, str] | None = None
    for d in block:
        if not d.args:
            continue
        if d.name == "client_max_body_size":
            body = d.args[0]
        elif d.name == "proxy_read_timeout":
            read = _duration(d.args[0])
        elif d.name == "proxy_send_timeout":
            send = _duration(d.args[0])
        elif d.name == "proxy_connect_timeout":
            connect = _duration(d.args[0])
        elif d.name == "proxy_buffering":
            buffering = d.args[0] != "off"
        elif d.name == "proxy_set_header" and len(d.args) >= 2:
            # nginx: proxy_set_header at a level replaces (not extends) the inherited set.
            if headers is None:
                headers = {}
            headers[d.args[0].lower()] = d.args[1]
    return _Settings(body, read, send, connect, buffering, settings.headers if headers is None else headers)


class _Parser:
    def __init__(self) -> None:
        self.upstreams: dict[str, list[str]] = {}
        self.routes: list[dict[str, t.Any]] = []
        self.unsupported: list[dict[str, t.Any]] = []
        self.redirects: list[dict[str, t.Any]] = []
        self.servers: list[dict[str, t.Any]] = []
        self.handled: list[dict[str, t.Any]] = []
        self.rejected: list[dict[str, t.Any]] = []

    def reject(self, d: Directive, server: str, kind: str, value: str, reason: str) -> None:
        entry = {"file": d.file, "line": d.line, "server": server, "kind": kind, "value": value, "reason": reason}
        if entry not in self.rejected:
            self.rejected.append(entry)

    def report(self, d: Directive, context: str, reason: str = "") -> None:
        entry = {"file": d.file, "line": d.line, "directive": " ".join([d.name, *d.args])[:200], "context": context}
        if reason:
            entry["reason"] = reason
        self.unsupported.append(entry)

    def main(self, directives: list[Directive]) -> None:
        http = [d for d in directives if d.name == "http" and d.block is not None]
        if http:
            for d in directives:
                if d.name not in MAIN_CONTEXT:
                    self.report(d, "main")
            for h in http:
                self.http(h.block or [])
        else:  # a conf.d snippet: server/upstream blocks at top level
            self.http(directives)

    def http(self, block: list[Directive]) -> None:
        for d in block:
            if d.name == "upstream" and d.block is not None and d.args:
                servers = []
                for s in d.block:
                    if s.name == "server" and s.args:
                        servers.append(s.args[0])
                    elif s.name not in ("keepalive", "zone", "keepalive_timeout", "keepalive_requests",
                                        "least_conn", "ip_hash", "random", "hash"):
                        self.report(s, f"upstream {d.args[0]}")
                self.upstreams[d.args[0]] = servers
        settings = _apply(_Settings(NGINX_DEFAULTS["client_max_body_size"], NGINX_DEFAULTS["read"],
                                    NGINX_DEFAULTS["send"], NGINX_DEFAULTS["connect"], True, {}), block)
        for d in block:
            if d.name == "server" and d.block is not None:
                self.server(d, settings)
            elif d.name not in IGNORED:
                self.report(d, "http")
            elif d.name == "proxy_set_header":
                self.header(d, "http")

    def header(self, d: Directive, context: str) -> None:
        if d.args and d.args[0].lower() not in STANDARD_HEADERS:
            self.report(d, context, "custom request header")

    def server(self, server: Directive, inherited: _Settings) -> None:
        block = server.block or []
        names = [a for d in block if d.name == "server_name" for a in d.args] or ["_"]
        listens = [d.args for d in block if d.name == "listen"] or [["80"]]
        tls = any("ssl" in args for args in listens) or any(d.name == "ssl" and d.args == ["on"] for d in block)
        ports = sorted({_port(args[0]) for args in listens})
        cert = next((d.args[0] for d in block if d.name == "ssl_certificate" and d.args), "")
        key = next((d.args[0] for d in block if d.name == "ssl_certificate_key" and d.args), "")
        # (a name with newlines or control characters is shown JSON-quoted in reports)
        context = f"server {names[0] if names[0].isprintable() else json.dumps(names[0])}"
        self.servers.append({"names": names, "ports": ports, "tls": tls, "ssl_certificate": cert,
                             "ssl_certificate_key": key, "file": server.file, "line": server.line})
        hosts: list[str] = []
        name_directives = [d for d in block if d.name == "server_name"] or [server]
        for name in names:
            host, problem = ingress_host(name)
            if problem:
                where = next((d for d in name_directives if name in d.args), server)
                self.reject(where, context, "server_name", name, problem)
            elif host not in hosts:
                hosts.append(host)
        settings = _apply(inherited, block)
        for d in block:
            if d.name == "location" and d.block is not None:
                self.location(d, hosts, tls, settings, context)
            elif d.name == "return" and d.args and d.args[0] in _REDIRECT_CODES:
                self.redirects.append({"hosts": names, "path": "/", "code": int(d.args[0]),
                                       "target": d.args[1] if len(d.args) > 1 else "", "tls": tls})
            elif d.name == "proxy_set_header":
                self.header(d, context)
            elif d.name == "if":
                self.report(d, context, "if blocks are not translated")
            elif d.name not in IGNORED:
                self.report(d, context)

    def location(self, loc: Directive, names: list[str], tls: bool, inherited: _Settings, outer: str,
                 parent: str = "") -> None:
        args = loc.args
        modifier, path = (args[0], args[1]) if len(args) == 2 else ("", args[0] if args else "/")
        context = f"{outer} location {' '.join(args)}"
        block = loc.block or []
        if modifier in ("~", "~*") or path.startswith("@"):
            self.report(loc, outer, "regular-expression and named locations have no Ingress path equivalent")
            return
        if path.startswith("/.well-known/acme-challenge"):
            self.handled.append({"file": loc.file, "line": loc.line, "location": path, "context": outer,
                                 "by": "cert-manager HTTP-01 solver"})
            return
        ret = next((d for d in block if d.name == "return" and d.args and d.args[0] in _REDIRECT_CODES), None)
        if ret is not None and not any(d.name in ("proxy_pass", "location") for d in block):
            self.redirects.append({"hosts": names, "path": path, "code": int(ret.args[0]),
                                   "target": ret.args[1] if len(ret.args) > 1 else "", "tls": tls})
            return
        settings = _apply(inherited, block)
        proxy = next((d for d in block if d.name == "proxy_pass" and d.args), None)
        marker = next((d for d in block if d.name == "set" and len(d.args) == 2 and d.args[0] == SPLIT_MARKER), None)
        for d in block:
            if d.name == "location" and d.block is not None:
                self.location(d, names, tls, settings, outer, path)
            elif d.name == "proxy_set_header":
                self.header(d, context)
            elif d is marker:
                continue
            elif d.name not in IGNORED:
                self.report(d, context)
        if proxy is None:
            if not any(d.name == "location" for d in block):
                self.report(loc, outer, "location without proxy_pass (static files, return or other handler)")
            return
        target = marker.args[1] if marker is not None else proxy.args[0]
        match = re.fullmatch(r"(?P<scheme>https?)://(?P<host>[^/\s]+)(?P<uri>/.*)?", target, re.DOTALL)
        if not match:
            if marker is not None:
                self.report(marker, context, f"recorded Compose target of the splitter's edge edit ({SPLIT_MARKER}) "
                                             "not understood")
            else:
                self.report(proxy, context, "proxy_pass target not understood")
            return
        if "$" in target:
            self.report(proxy, context, "proxy_pass with variables: upstream taken literally")
        scheme, hostport, uri = match["scheme"], match["host"], match["uri"]
        problem = ingress_path_problem(path)
        if problem:
            self.reject(loc, outer, "location", path, problem)
            return
        problem = ingress_path_problem(uri) if uri else ""
        if problem:
            self.reject(marker or proxy, outer, "proxy_pass", target, f"its URI part: {problem}")
            return
        if hostport in self.upstreams:
            upstreams = list(self.upstreams[hostport])
        else:
            upstreams = [hostport if ":" in hostport.rsplit("]", 1)[-1] else
                         f"{hostport}:{443 if scheme == 'https' else 80}"]
        websocket = ("upgrade" in settings.headers and "upgrade" in settings.headers.get("connection", "").lower()) \
            or settings.headers.get("connection", "") == "$connection_upgrade"
        for host in names:
            self.routes.append({
                "name": route_name(host, path),
                "host": host,
                "path": path,
                "path_type": "Exact" if modifier == "=" else "Prefix",
                "tls": tls,
                "upstreams": upstreams,
                "upstream_name": hostport if hostport in self.upstreams else "",
                "upstream_scheme": scheme,
                "upstream_path": uri or "",
                "websocket": bool(websocket),
                "buffering": settings.buffering,
                "client_max_body_size": settings.body,
                "timeouts": {"read": settings.read, "send": settings.send, "connect": settings.connect},
                "timeout_seconds": {"read": seconds(settings.read), "send": seconds(settings.send),
                                    "connect": seconds(settings.connect)},
                "source": {"file": loc.file, "line": loc.line},
                "split_by": proxy.args[0] if marker is not None else "",
            })


def _port(listen: str) -> int:
    tail = listen.rsplit("]", 1)[-1].rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 80


def _merge(routes: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """One route per (host, path): a TLS server wins over its plain-HTTP twin; names made unique."""
    by_key: dict[tuple[str, str, str], dict[str, t.Any]] = {}
    for route in routes:
        key = (route["host"], route["path"], route["path_type"])
        if key not in by_key or (route["tls"] and not by_key[key]["tls"]):
            by_key[key] = route
    out = sorted(by_key.values(), key=lambda r: (r["host"], r["path"], r["path_type"]))
    used: dict[str, int] = {}
    for route in out:
        base = route["name"]
        if route["path_type"] == "Exact":
            base = dns1123(f"{base}-exact")
        name = base
        if name in used:
            used[base] += 1
            name = dns1123(f"{base}-{used[base]}")
        used.setdefault(name, 1)
        route["name"] = name
    return out


def parse_routes(path: str, prefix: str | None = None) -> dict[str, t.Any]:
    """Routes, upstreams, redirects and unsupported directives of the nginx configuration at ``path``."""
    parser = _Parser()
    parser.main(parse_file(path, prefix))
    routes = _merge(parser.routes)
    hosts = sorted({r["host"] for r in routes if r["host"]})
    return {"routes": routes, "upstreams": parser.upstreams, "hosts": hosts, "redirects": parser.redirects,
            "servers": parser.servers, "handled": parser.handled,
            "unsupported": parser.unsupported, "rejected": parser.rejected}
