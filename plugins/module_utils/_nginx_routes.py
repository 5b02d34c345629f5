# Copyright (c) sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse an nginx (nginx-proxy) configuration into a route list.

The route list is the single description of the edge that the ``ingress_certs`` role (Ingress
resources) and the ``traffic_shift`` role (weighted edge) consume, so routes are never typed twice.

What is translated: ``server_name``, ``listen`` (``ssl``), ``ssl_certificate``, prefix and exact
``location`` blocks (nested too), ``proxy_pass`` to ``upstream`` blocks or ``host:port``, websocket
upgrade headers, ``client_max_body_size``, ``proxy_{read,send,connect}_timeout``, ``proxy_buffering``;
inherited from ``http`` -> ``server`` -> ``location`` as nginx does. ``include`` is followed (globs,
relative to the main file's directory; ``_nginx_parse``). Everything else that would change behaviour is
reported in ``unsupported`` with file, line and context, never dropped silently.

Host names and paths end up in Kubernetes manifests: a ``server_name`` that is not a DNS-1123 subdomain
(a leading ``*.`` allowed), a regular-expression or wildcard-suffix name, a location path or ``proxy_pass`` URI
with whitespace, control characters or sequences an Ingress path may not hold never becomes a route; it is
reported in ``rejected`` (file, line, server, value, reason; ``_nginx_ingress``).
"""

from __future__ import annotations

import json
import os
import re
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils._nginx_ingress import (
    _duration,
    dns1123,
    ingress_host,
    ingress_path_problem,
    route_name,
    seconds,
)
from ansible_collections.sophia.migrate.plugins.module_utils._nginx_parse import (
    Directive,
    NginxConfigError,
    _Includes,
    check_syntax,
    parse_file,
)

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
_REDIRECT_CODES = ("301", "302", "303", "307", "308")


# traffic_shift's edge edit keeps a location's old target here (set $sophia_migrate_compose_upstream <target>;)
# when it points proxy_pass at the splitter: the route is read from that record, not from the splitter.
SPLIT_MARKER = "$sophia_migrate_compose_upstream"


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


_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_UPSTREAM_HOSTPORT = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")
_STREAM_REASON = ("a TCP/UDP proxy (stream block): an Ingress carries HTTP(S) only; use a Service of type "
                  "LoadBalancer or NodePort, or the ingress controller's TCP/UDP services, for these ports")


class _Parser:
    def __init__(self) -> None:
        self.upstreams: dict[str, list[str]] = {}
        self.routes: list[dict[str, t.Any]] = []
        self.unsupported: list[dict[str, t.Any]] = []
        self.redirects: list[dict[str, t.Any]] = []
        self.servers: list[dict[str, t.Any]] = []
        self.handled: list[dict[str, t.Any]] = []
        self.rejected: list[dict[str, t.Any]] = []
        self.streams: list[dict[str, t.Any]] = []
        # variables with one static value: `map` blocks with only a default ({name: value}; None when not static)
        self.maps: dict[str, str | None] = {}
        self.named: dict[str, Directive] = {}  # the current server's named locations (@name)
        self.named_done: set[str] = set()
        self.server_settings: _Settings | None = None
        self.used_vars: set[str] = set()

    def reject(self, d: Directive, server: str, kind: str, value: str, reason: str) -> None:
        entry = {"file": d.file, "line": d.line, "server": server, "kind": kind, "value": value, "reason": reason}
        if entry not in self.rejected:
            self.rejected.append(entry)

    def report(self, d: Directive, context: str, reason: str = "") -> None:
        entry = {"file": d.file, "line": d.line, "directive": " ".join([d.name, *d.args])[:200], "context": context}
        if reason:
            entry["reason"] = reason
        if entry not in self.unsupported:
            self.unsupported.append(entry)

    def main(self, directives: list[Directive]) -> None:
        http = [d for d in directives if d.name == "http" and d.block is not None]
        for d in directives:
            if d.name == "stream" and d.block is not None:
                self.stream(d.block)
        if http:
            for d in directives:
                if d.name not in MAIN_CONTEXT:
                    self.report(d, "main")
            for h in http:
                self.http(h.block or [])
        else:  # a conf.d snippet: server/upstream blocks at top level
            self.http([d for d in directives if d.name != "stream"])

    def stream(self, block: list[Directive]) -> None:
        """``stream {}``: TCP/UDP proxies, listed with their ports (an Ingress cannot carry them)."""
        upstreams = {d.args[0]: [s.args[0] for s in d.block or [] if s.name == "server" and s.args]
                     for d in block if d.name == "upstream" and d.block is not None and d.args}
        for d in block:
            if d.name != "server" or d.block is None:
                continue
            listens = [x.args for x in d.block if x.name == "listen" and x.args]
            target = next((x.args[0] for x in d.block if x.name == "proxy_pass" and x.args), "")
            self.streams.append({
                "file": d.file, "line": d.line,
                "listen": [" ".join(a) for a in listens],
                "ports": sorted({_port(a[0], 0) for a in listens}),
                "protocol": "udp" if any("udp" in a for a in listens) else "tcp",
                "proxy_pass": target,
                "upstreams": upstreams.get(target, [target] if target else []),
                "reason": _STREAM_REASON,
            })

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
            elif d.name == "map" and d.block is not None and len(d.args) == 2:
                var = d.args[1].lstrip("$")
                entries = [e for e in d.block if e.name not in ("hostnames", "volatile")]
                only_default = len(entries) == 1 and entries[0].name == "default" and len(entries[0].args) == 1
                self.maps[var] = entries[0].args[0] if only_default else None
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
        self.server_settings = settings
        self.named = {d.args[0]: d for d in block if d.name == "location" and d.block is not None
                      and len(d.args) == 1 and d.args[0].startswith("@")}
        self.named_done = set()
        self.used_vars = set()
        variables = _variables(block, self.maps)
        for d in block:
            if d.name == "location" and d.block is not None:
                self.location(d, hosts, tls, settings, context, variables=variables)
            elif d.name == "return" and d.args and d.args[0] in _REDIRECT_CODES:
                self.redirects.append({"hosts": names, "path": "/", "code": int(d.args[0]),
                                       "target": d.args[1] if len(d.args) > 1 else "", "tls": tls})
            elif d.name == "proxy_set_header":
                self.header(d, context)
            elif d.name == "if":
                self.report(d, context, "if blocks are not translated")
            elif d.name == "set":
                continue  # reported below unless a proxy_pass was resolved through it
            elif d.name not in IGNORED:
                self.report(d, context)
        for d in block:
            if d.name == "set" and (len(d.args) != 2 or d.args[0].lstrip("$") not in self.used_vars):
                self.report(d, context)
        for name, d in self.named.items():
            if name not in self.named_done:
                self.report(d, context, "named location not reached by try_files or error_page of a location "
                                        "that is carried over")

    def location(self, loc: Directive, names: list[str], tls: bool, inherited: _Settings, outer: str,
                 parent: str = "", variables: dict[str, str | None] | None = None) -> None:
        args = loc.args
        modifier, path = (args[0], args[1]) if len(args) == 2 else ("", args[0] if args else "/")
        context = f"{outer} location {' '.join(args)}"
        block = loc.block or []
        if path.startswith("@") and not modifier and path in self.named and not parent:
            return  # a named location: followed from the try_files / error_page that reach it
        if modifier in ("~", "~*") or path.startswith("@"):
            proxy = next((d.args[0] for d in block if d.name == "proxy_pass" and d.args), "")
            upgrade = _websocket(_apply(inherited, block).headers)
            self.report(loc, outer, "regular-expression and named locations have no Ingress path equivalent"
                        + (f" (it proxies to {proxy}{' with websocket upgrade headers' if upgrade else ''}; its "
                           "requests fall to the prefix routes)" if proxy else ""))
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
        local_vars = _variables(block, self.maps, variables or {})
        proxy = next((d for d in block if d.name == "proxy_pass" and d.args), None)
        marker = next((d for d in block if d.name == "set" and len(d.args) == 2 and d.args[0] == SPLIT_MARKER), None)
        via: Directive | None = None
        if proxy is None:
            via, target_loc = self.fallback(block, context)
            if target_loc is not None:
                named_block = target_loc.block or []
                proxy = next((d for d in named_block if d.name == "proxy_pass" and d.args), None)
                marker = next((d for d in named_block if d.name == "set" and len(d.args) == 2
                               and d.args[0] == SPLIT_MARKER), None)
                settings = _apply(self.server_settings or inherited, named_block)
                local_vars = _variables(named_block, self.maps, variables or {})
                self.named_location(target_loc, outer)
        used: set[str] = set()
        for d in block:
            if d.name == "location" and d.block is not None:
                self.location(d, names, tls, settings, outer, path, variables)
            elif d.name == "proxy_set_header":
                self.header(d, context)
            elif d is marker or d is via or d.name == "set":
                continue
            elif d.name not in IGNORED:
                self.report(d, context)
        if proxy is None:
            self.report_sets(block, context, used)
            if not any(d.name == "location" for d in block):
                self.report(loc, outer, "location without proxy_pass (static files, return or other handler)")
            return
        self.route(loc, modifier, path, names, tls, settings, proxy, marker, local_vars, used, outer, context)
        self.report_sets(block, context, used)

    def report_sets(self, block: list[Directive], context: str, used: set[str]) -> None:
        for d in block:
            if d.name == "set" and not (d.args and d.args[0] == SPLIT_MARKER) \
                    and (len(d.args) != 2 or d.args[0].lstrip("$") not in used):
                self.report(d, context)

    def fallback(self, block: list[Directive], context: str) -> tuple[Directive | None, Directive | None]:
        """The try_files / error_page of a location without proxy_pass and the named location it falls back to."""
        for d in block:
            if d.name in ("try_files", "error_page") and d.args and d.args[-1].startswith("@"):
                target = self.named.get(d.args[-1])
                if target is None:
                    return None, None
                if d.name == "try_files" and len(d.args) > 1:
                    self.report(d, context, f"files are served from the host first; only the fallback "
                                            f"{d.args[-1]} is carried over")
                elif d.name == "error_page":
                    self.report(d, context, f"the location is served on the host; only its error fallback "
                                            f"{d.args[-1]} is carried over")
                return d, target
        return None, None

    def named_location(self, loc: Directive, outer: str) -> None:
        """Report what a named location reached from a route does that is not translated (once)."""
        name = loc.args[0]
        if name in self.named_done:
            return
        self.named_done.add(name)
        context = f"{outer} location {name}"
        for d in loc.block or []:
            if d.name == "proxy_set_header":
                self.header(d, context)
            elif d.name not in IGNORED and d.name != "set":
                self.report(d, context)

    def route(self, loc: Directive, modifier: str, path: str, names: list[str], tls: bool, settings: _Settings,
              proxy: Directive, marker: Directive | None, variables: dict[str, str | None], used: set[str],
              outer: str, context: str) -> None:
        target = marker.args[1] if marker is not None else proxy.args[0]
        whole_uri = False
        if marker is None and "$" in target:
            resolved, unknown, names_used = _resolve(target, variables)
            if unknown:
                self.report(proxy, context, "proxy_pass with variables that have no static value here ("
                                            + ", ".join(f"${v}" for v in unknown) + "): upstream not resolved")
                return
            used.update(names_used)
            self.used_vars.update(names_used)
            target, whole_uri = resolved, True
            for tail in ("$request_uri", "${request_uri}"):
                if target.endswith(tail):  # the request URI as it came: as proxy_pass without a URI part
                    target, whole_uri = target[: -len(tail)], False
                    break
            if "$" in target or (not whole_uri and re.search(r"://[^/]*/", target)):
                self.report(proxy, context, "proxy_pass with $request_uri after a URI part or inside the target: "
                                            "not translated")
                return
        match = re.fullmatch(r"(?P<scheme>https?)://(?P<host>[^/\s]+)(?P<uri>/.*)?", target, re.DOTALL)
        if not match:
            if marker is not None:
                self.report(marker, context, f"recorded Compose target of the splitter's edge edit ({SPLIT_MARKER}) "
                                             "not understood")
            else:
                self.report(proxy, context, "proxy_pass target not understood")
            return
        scheme, hostport, uri = match["scheme"], match["host"], match["uri"]
        if whole_uri and uri:
            self.report(proxy, context, "proxy_pass with variables and a URI part replaces the whole request "
                                        f"URI with {uri!r} (not a prefix replacement): not translated")
            return
        problem = ingress_path_problem(path)
        if problem:
            self.reject(loc, outer, "location", path, problem)
            return
        problem = ingress_path_problem(uri) if uri else ""
        if problem:
            self.reject(marker or proxy, outer, "proxy_pass", target, f"its URI part: {problem}")
            return
        if hostport.startswith("unix:"):
            self.report(proxy, context, "a unix socket upstream cannot be reached from the cluster")
            return
        if hostport in self.upstreams:
            upstreams = list(self.upstreams[hostport])
        else:
            upstreams = [hostport if ":" in hostport.rsplit("]", 1)[-1] else
                         f"{hostport}:{443 if scheme == 'https' else 80}"]
        bad = [u for u in upstreams if not _UPSTREAM_HOSTPORT.fullmatch(u)]
        if bad:
            self.reject(marker or proxy, outer, "proxy_pass", target,
                        f"upstream {bad[0]!r} is not a host name or address with a port")
            return
        websocket = _websocket(settings.headers)
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


def _websocket(headers: dict[str, str]) -> bool:
    """Whether the request headers a location sends make a websocket upgrade."""
    return ("upgrade" in headers and "upgrade" in headers.get("connection", "").lower()) \
        or headers.get("connection", "") == "$connection_upgrade"


def _variables(block: list[Directive], maps: dict[str, str | None],
               outer: dict[str, str | None] | None = None) -> dict[str, str | None]:
    """Variables with a static value at this level: ``set`` here (None when also set in an ``if``) over ``outer``."""
    found: dict[str, str | None] = dict(outer if outer is not None else maps)
    for d in block:
        if d.name == "set" and len(d.args) == 2 and d.args[0] != SPLIT_MARKER:
            found[d.args[0].lstrip("$")] = d.args[1]
    for d in block:
        if d.name == "if":
            for inner in d.block or []:
                if inner.name == "set" and inner.args:
                    found[inner.args[0].lstrip("$")] = None
    return found


def _resolve(text: str, variables: dict[str, str | None], depth: int = 0) -> tuple[str, list[str], set[str]]:
    """``text`` with its static variables replaced: (text, names without a static value, names used)."""
    unknown: list[str] = []
    used: set[str] = set()

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name == "request_uri":
            return m.group(0)  # judged by the caller (the request URI as it came)
        value = variables.get(name)
        if value is None or depth > 8:
            unknown.append(name)
            return m.group(0)
        used.add(name)
        if "$" in value:
            value, more, inner = _resolve(value, variables, depth + 1)
            unknown.extend(more)
            used.update(inner)
        return value

    return _VARIABLE.sub(sub, text), unknown, used


def _port(listen: str, default: int = 80) -> int:
    tail = listen.rsplit("]", 1)[-1].rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else default


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


def _validated(routes: list[dict[str, t.Any]], parser: _Parser) -> list[dict[str, t.Any]]:
    """Every host, path and upstream checked once more before it leaves the module (a route that fails is rejected)."""
    out = []
    for route in routes:
        source = Directive("route", [], route["source"]["file"], route["source"]["line"], None)
        host, problem = ingress_host(route["host"]) if route["host"] else ("", "")
        if problem or host != route["host"]:
            parser.reject(source, route["name"], "server_name", route["host"], problem or "not a normalised host")
            continue
        problem = ingress_path_problem(route["path"]) or (
            ingress_path_problem(route["upstream_path"]) if route["upstream_path"] else "")
        if problem:
            parser.reject(source, route["name"], "location", route["path"], problem)
            continue
        bad = [u for u in route["upstreams"] if not _UPSTREAM_HOSTPORT.fullmatch(u)]
        if bad or not route["upstreams"]:
            parser.reject(source, route["name"], "proxy_pass", ",".join(route["upstreams"]),
                          "an upstream that is not a host name or address with a port")
            continue
        out.append(route)
    return out


def parse_routes(path: str, prefix: str | None = None, include_root: str | None = None,
                 include_map: dict[str, str] | None = None) -> dict[str, t.Any]:
    """Routes, upstreams, redirects and unsupported directives of the nginx configuration at ``path``.

    ``include_root`` is a directory holding a copy of the host's files (an absolute ``include /x/y`` is read from
    ``<include_root>/x/y``); ``include_map`` maps host directories to controller directories (longest match first).
    """
    includes = _Includes(os.path.abspath(prefix or os.path.dirname(os.path.abspath(path))),
                         include_root or "", dict(include_map or {}), [])
    directives = parse_file(path, None, (), includes)
    check_syntax(directives)
    parser = _Parser()
    parser.main(directives)
    if not parser.servers and not parser.streams:
        unread = ", ".join(f"{u['include']} ({u['file']}:{u['line']})" for u in includes.unresolved)
        raise NginxConfigError(
            f"{os.path.abspath(path)}: no server block (http or stream) in the file or its includes, nothing to route"
            + (f"; {len(includes.unresolved)} include(s) could not be read: {unread}" if unread else ""))
    routes = _validated(_merge(parser.routes), parser)
    hosts = sorted({r["host"] for r in routes if r["host"]})
    return {"routes": routes, "upstreams": parser.upstreams, "hosts": hosts, "redirects": parser.redirects,
            "servers": parser.servers, "handled": parser.handled,
            "unsupported": parser.unsupported, "rejected": parser.rejected, "streams": parser.streams,
            "unresolved_includes": includes.unresolved}
