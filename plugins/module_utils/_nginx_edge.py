# Copyright (c) sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Structural edits of an nginx configuration tree: point the locations that route given paths at new targets.

The tree is the main file plus every file its ``include`` directives name (globs, relative to the main file's
directory as nginx resolves them against its prefix, or absolute through a path map). Each directive keeps the
byte span of its text, so an edit replaces exactly the ``proxy_pass`` target (and adds one ``set`` line before it)
and leaves every other byte of every file as it was: comments, layout, other servers. Only files with a change
are written.

Editing a location keeps the URI semantics: only the scheme and the address of ``proxy_pass`` change, the URI part
stays (``proxy_pass http://ctx_up/;`` becomes ``proxy_pass http://127.0.0.1:9103/;``, which strips the location
prefix exactly as before), so the new target receives the path the old one received.
"""

from __future__ import annotations

import glob
import http.client
import os
import re
import socket
import ssl
import typing as t
import urllib.parse

from ansible_collections.sophia.migrate.plugins.module_utils._nginx_parse import _STOCK_INCLUDES as STOCK_INCLUDES
from ansible_collections.sophia.migrate.plugins.module_utils._nginx_parse import NginxConfigError, spans

# the record of where a location pointed before its first edit (read back by nginx_routes)
RECORD = "$sophia_migrate_compose_upstream"
_STOCK = STOCK_INCLUDES


class EdgeError(Exception):
    """A configuration that cannot be read or edited safely; the message names the file, line and route."""


class Node(t.NamedTuple):
    name: str
    args: list[str]
    file: str
    line: int
    start: int  # offset of the directive's first character in its file
    end: int  # offset just after its ';' (or its block's '}')
    arg_spans: list[tuple[int, int]]
    block: list[Node] | None


def parse(text: str, file: str) -> list[Node]:
    """The directives of one file with their spans (the tokenizer is nginx_routes', so both read a file alike)."""
    try:
        tokens = spans(text, file)
    except NginxConfigError as exc:
        raise EdgeError(str(exc)) from exc
    pos = 0

    def block(depth: int) -> list[Node]:
        nonlocal pos
        out: list[Node] = []
        while pos < len(tokens):
            tok, line, start, _end, quoted = tokens[pos]
            if tok == "}" and not quoted:
                if not depth:
                    raise EdgeError(f"{file}:{line}: unexpected '}}'")
                pos += 1
                return out
            if tok in "{;" and not quoted:
                raise EdgeError(f"{file}:{line}: unexpected '{tok}'")
            args, spans = [], []
            pos += 1
            while pos < len(tokens) and (tokens[pos][4] or tokens[pos][0] not in "{};"):
                args.append(tokens[pos][0])
                spans.append((tokens[pos][2], tokens[pos][3]))
                pos += 1
            if pos >= len(tokens) or tokens[pos][0] == "}":
                raise EdgeError(f"{file}:{line}: directive '{tok}' is not terminated by ';' or '{{'")
            closer = tokens[pos][0]
            pos += 1
            if closer == ";":
                out.append(Node(tok, args, file, line, start, tokens[pos - 1][3], spans, None))
            else:
                inner = block(depth + 1)
                out.append(Node(tok, args, file, line, start, tokens[pos - 1][3], spans, inner))
        if depth:
            raise EdgeError(f"{file}: unexpected end of file, a '{{' block is not closed")
        return out

    return block(0)


class Tree:
    """The configuration files of one nginx: their texts and parsed directives, includes followed."""

    def __init__(self, main: str, path_map: dict[str, str] | None = None) -> None:
        self.main = os.path.abspath(main)
        self.root = os.path.dirname(self.main)
        self.path_map = sorted((path_map or {}).items(), key=lambda kv: -len(kv[0]))
        self.texts: dict[str, str] = {}
        self.modes: dict[str, int] = {}
        self.top = self._load(self.main, ())

    def _host_path(self, path: str) -> str:
        if not os.path.isabs(path):
            return os.path.join(self.root, path)
        for prefix, local in self.path_map:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return os.path.join(local, os.path.relpath(path, prefix))
        return path

    def _load(self, path: str, seen: tuple[str, ...]) -> list[Node]:
        if path in seen:
            raise EdgeError(f"{path}: include loop ({' -> '.join((*seen, path))})")
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            self.modes[path] = os.stat(path).st_mode & 0o7777
        except (OSError, UnicodeDecodeError) as exc:
            raise EdgeError(f"{path}: cannot read: {exc}") from exc
        self.texts[path] = text
        return self._expand(parse(text, path), (*seen, path))

    def _expand(self, nodes: list[Node], seen: tuple[str, ...]) -> list[Node]:
        out: list[Node] = []
        for node in nodes:
            if node.name == "include" and node.block is None and len(node.args) == 1:
                if os.path.basename(node.args[0]) in _STOCK:
                    continue
                pattern = self._host_path(node.args[0])
                matches = sorted(glob.glob(pattern))
                if not matches and not glob.has_magic(pattern):
                    raise EdgeError(f"{node.file}:{node.line}: include {node.args[0]}: no such file ({pattern}); "
                                    "map the container's paths to the host's with path_map")
                for match in matches:
                    out.extend(self._load(os.path.abspath(match), seen))
            elif node.block is not None:
                out.append(node._replace(block=self._expand(node.block, seen)))
            else:
                out.append(node)
        return out

    def locations(self) -> t.Iterator[tuple[list[str], Node]]:
        """(server names, location) for every location of every http server, nested locations included."""

        def walk(nodes: list[Node], names: list[str]) -> t.Iterator[tuple[list[str], Node]]:
            for node in nodes:
                if node.name == "location" and node.block is not None:
                    yield names, node
                    yield from walk(node.block, names)

        for context in (n for n in self.top if n.name == "http" and n.block is not None):
            for server in (n for n in context.block if n.name == "server" and n.block is not None):
                names = [a for n in server.block if n.name == "server_name" for a in n.args]
                yield from walk(server.block, names)


def location_text(node: Node) -> str:
    return " ".join(node.args)


def matches(route: dict[str, t.Any], names: list[str], node: Node) -> bool:
    if route.get("host") and route["host"] not in names:
        return False
    if route.get("location"):
        return location_text(node) == route["location"].strip()
    args = node.args
    modifier, path = (args[0], args[1]) if len(args) == 2 else ("", args[0] if args else "")
    if modifier not in ("", "^~", "="):
        return False
    return path.rstrip("/") == route["path"].rstrip("/") or (path == "/" and route["path"] == "/")


_TARGET = re.compile(r"^(?P<scheme>https?)://(?P<address>[^/]+)(?P<uri>/.*)?$")


def _target(node: Node, directive: Node, route: str) -> re.Match[str]:
    value = directive.args[0] if len(directive.args) == 1 else ""
    where = f"{directive.file}:{directive.line}"
    if "$" in value:
        raise EdgeError(f"route {route}: {where}: proxy_pass {value} uses a variable; point the location at a "
                        "fixed upstream first")
    found = _TARGET.match(value)
    if not found or found["address"].startswith("unix:"):
        raise EdgeError(f"route {route}: {where}: proxy_pass target {value!r} is not an http(s) address this "
                        "role can re-point")
    return found


class Edit(t.NamedTuple):
    route: str
    file: str
    line: int
    location: str
    before: str
    after: str
    # the path the K3s side needs back (see k3s_path); None when the splitter's path is already the client's
    k3s_rewrite: dict[str, str] | None
    # why the client's path cannot be given back (a rewrite in the location); empty when it can
    k3s_problem: str


def location_path(location: str) -> str:
    """The path a prefix or exact location serves as written (``/api/context/``, not the route's
    ``/api/context``, which nginx would answer with a redirect); empty for a regex location."""
    args = location.split()
    if len(args) == 1 and not args[0].startswith(("~", "@")):
        return args[0]
    return args[1] if len(args) == 2 and args[0] in ("^~", "=") else ""


_PLAIN_PATH = re.compile(r"^/[A-Za-z0-9._~/%-]*$")


def k3s_path(node: Node, uri: str) -> tuple[dict[str, str] | None, str]:
    """How the splitter gives a route's K3s side the path the client sent.

    The splitter receives what the Compose upstream received. A ``proxy_pass`` with a URI part replaces the matched
    location prefix by that URI (``location /api/context/`` + ``http://up/``: ``/api/context/items`` arrives as
    ``/items``), but the K3s ingress routes by the client's path (its Ingress rewrites the prefix itself), so the
    splitter must put the prefix back for the K3s servers: ``{"from": "/", "to": "/api/context/"}`` (the client's path
    is ``to`` + what follows ``from``). None when nothing was stripped. A ``rewrite`` in the location changes the
    path in a way that cannot be undone in general: that is a problem, named, and the caller refuses the route.
    """
    rewrites = [d for d in node.block or [] if d.name == "rewrite"]
    if rewrites:
        first = rewrites[0]
        return None, (f"{first.file}:{first.line}: the location rewrites the path ({' '.join(first.args)}), so the "
                      "splitter cannot give the K3s ingress the path the client sent")
    prefix = location_path(location_text(node))
    if not uri or uri == prefix:
        return None, ""
    if not prefix:
        return None, f"{node.file}:{node.line}: a regex location with a URI part in proxy_pass"
    for value in (uri, prefix):
        if not _PLAIN_PATH.match(value):
            return None, (f"{node.file}:{node.line}: path {value!r} has characters the splitter's path rewrite does "
                          "not take")
    return {"from": uri, "to": prefix}, ""


def plan(tree: Tree, routes: list[dict[str, t.Any]]) -> list[Edit]:
    """One edit per route (unchanged ones have before == after); refuses a route found zero or several times."""
    found: dict[str, list[tuple[list[str], Node]]] = {r["name"]: [] for r in routes}
    every = list(tree.locations())
    for route in routes:
        # a location that matches but proxies nowhere (`location / { return 301 https://...; }` of the port-80
        # server) routes nothing: only the one that proxies is the route's
        found[route["name"]] = [(names, node) for names, node in every if matches(route, names, node)
                                and any(d.name == "proxy_pass" for d in node.block)]
    edits = []
    for route in routes:
        places = found[route["name"]]
        want = f"location {route.get('location') or route['path']}"
        want += f" in server {route['host']}" if route.get("host") else ""
        if len(places) != 1:
            where = ", ".join(f"{n.file}:{n.line}" for _names, n in places) or "none"
            raise EdgeError(f"route {route['name']}: {want} with a proxy_pass must be found exactly once; found "
                            f"{len(places)} ({where}) in {', '.join(sorted(tree.texts))}")
        node = places[0][1]
        passes = [d for d in node.block if d.name == "proxy_pass"]
        if len(passes) > 1:
            raise EdgeError(f"route {route['name']}: {node.file}:{node.line}: location {location_text(node)} has "
                            f"{len(passes)} proxy_pass directives; exactly one is needed")
        target = _target(node, passes[0], route["name"])
        after = f"http://{route['splitter']}{target['uri'] or ''}"
        rewrite, problem = k3s_path(node, target["uri"] or "")
        edits.append(Edit(route["name"], node.file, passes[0].line, location_text(node), passes[0].args[0], after,
                          rewrite, problem))
    return edits


def apply(tree: Tree, routes: list[dict[str, t.Any]], edits: list[Edit]) -> dict[str, str]:
    """The new text of every file an edit changes (others untouched)."""
    by_name = {r["name"]: r for r in routes}
    splices: dict[str, list[tuple[int, int, str]]] = {}
    every = list(tree.locations())
    for edit in edits:
        if edit.before == edit.after:
            continue
        node = next(n for names, n in every if matches(by_name[edit.route], names, n)
                    and any(d.name == "proxy_pass" for d in n.block))
        directive = next(d for d in node.block if d.name == "proxy_pass")
        text = tree.texts[directive.file]
        recorded = any(d.name == "set" and d.args[:1] == [RECORD] for d in node.block)
        start, end = directive.arg_spans[0]
        new = edit.after
        if not recorded:
            line_start = text.rfind("\n", 0, directive.start) + 1
            indent = text[line_start : directive.start]
            indent = indent if not indent.strip() else " " * len(indent)
            prefix = f"set {RECORD} {edit.before};\n{indent}"
            splices.setdefault(directive.file, []).append((directive.start, directive.start, prefix))
        splices.setdefault(directive.file, []).append((start, end, new))
    out = {}
    for path, parts in splices.items():
        text = tree.texts[path]
        for start, end, new in sorted(parts, key=lambda p: (p[0], p[1]), reverse=True):
            text = text[:start] + new + text[end:]
        out[path] = text
    return out


_SPLITTER = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})|\[[0-9A-Fa-f:.]+\]):\d{1,5}$")


def check_splitter(route: dict[str, t.Any]) -> None:
    value = route.get("splitter") or ""
    if not _SPLITTER.match(value) or not 0 < int(value.rsplit(":", 1)[1]) < 65536:
        raise EdgeError(f"route {route['name']}: splitter {value!r} is not HOST:PORT")


def check_base_url(base: str) -> None:
    """The edge's base URL: http(s)://HOST[:PORT] with nothing after it (the route's path is added)."""
    try:
        parts = urllib.parse.urlsplit(base)
        port = parts.port
    except ValueError as exc:
        raise EdgeError(f"verify_url {base[:200]!r} is not a URL: {exc}") from exc
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query
            or parts.fragment or parts.username or any(ord(c) < 33 for c in base) or (port is not None and port < 1)):
        raise EdgeError(f"verify_url {base[:200]!r} must be http(s)://HOST[:PORT], nothing after it")


def through_edge(base: str, host: str | None, path: str, header: str, ca_path: str | None, validate_certs: bool,
                 timeout: float) -> tuple[str, str]:
    """(value of ``header``, problem) for a GET of ``path`` through the edge at ``base``, sent with the route's host
    as Host header and TLS server name (the certificate is checked against that name, not the address)."""
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "", f"verify_url {base!r} is not an http(s) URL"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    name = host or parts.hostname
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=ca_path) if validate_certs else ssl._create_unverified_context()  # noqa: S323
        conn: http.client.HTTPConnection = _SniConnection(parts.hostname, port, name, context, timeout)
    else:
        conn = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": name, "User-Agent": "sophia.migrate nginx_edge"})
        response = conn.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as exc:
        return "", f"no answer from {base}: {exc}"
    finally:
        conn.close()
    value = response.getheader(header) or ""
    return value, "" if value else f"answered {response.status} without the {header} header (not through the splitter)"


class _SniConnection(http.client.HTTPSConnection):
    def __init__(self, address: str, port: int, name: str, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(address, port, timeout=timeout, context=context)
        self._name, self._context = name, context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._name)


# --- the ACME HTTP-01 challenge path, forwarded to the K3s ingress during coexistence ------------------------------
ACME_PATH = "/.well-known/acme-challenge/"
ACME_ARGS = ["^~", ACME_PATH]
ACME_COMMENT = "# sophia.migrate: ACME HTTP-01 challenges answered by the K3s ingress (cert-manager)"
ACME_NAMED = "@sophia_acme_k3s"
ACME_FALLBACK_COMMENT = "# sophia.migrate: a token not in this webroot goes to the K3s ingress (cert-manager)"


def _listens_plain(server: Node, port: int) -> bool:
    """Whether a server block listens on ``port`` without TLS (no listen directive: nginx's default *:80)."""
    listens = [n.args for n in server.block or [] if n.name == "listen" and n.args]
    if not listens:
        return port == 80
    for args in listens:
        address = args[0]
        tail = address.rsplit("]", 1)[-1].rsplit(":", 1)[-1]
        number = int(tail) if tail.isdigit() else (80 if not address.startswith("unix:") else -1)
        if number == port and "ssl" not in args[1:]:
            return True
    return False


def _default_plain(server: Node, port: int) -> bool:
    """Whether ``server`` is marked ``default_server`` on a plain-HTTP listen of ``port``."""
    return any(n.name == "listen" and ("default_server" in n.args[1:] or "default" in n.args[1:])
               and "ssl" not in n.args[1:] and _listens_plain(Node(**{**server._asdict(), "block": [n]}), port)
               for n in server.block or [])


def acme_servers(tree: Tree, host: str, port: int) -> list[Node]:
    """The http server blocks that serve ``host`` on plain-HTTP ``port``: those naming it, or else the one nginx
    answers it with - the port's ``default_server``, or the first server listening on the port (nginx's rule for a
    name no server has; production's :80 server answers the TLS hosts that have no plain-HTTP server of their own)."""
    host = host.lower()
    out, plain = [], []
    for context in (n for n in tree.top if n.name == "http" and n.block is not None):
        for server in (n for n in context.block if n.name == "server" and n.block is not None):
            if not _listens_plain(server, port):
                continue
            plain.append(server)
            names = [a.lower() for n in server.block if n.name == "server_name" for a in n.args]
            if host in names:
                out.append(server)
    if out or not plain:
        return out
    return [next((s for s in plain if _default_plain(s, port)), plain[0])]


def _acme_locations(server: Node) -> list[Node]:
    return [n for n in server.block or [] if n.name == "location" and n.block is not None
            and any(a.startswith("/.well-known/acme-challenge") for a in n.args)]


def _ours(node: Node) -> bool:
    return node.args in (ACME_ARGS, [ACME_NAMED]) and any(d.name == "proxy_pass" for d in node.block or [])


def _our_try(directive: Node) -> bool:
    return directive.name == "try_files" and directive.args == ["$uri", ACME_NAMED]


def _our_try_files(node: Node) -> list[Node]:
    return [d for d in node.block or [] if _our_try(d)]


def _webroot(node: Node) -> bool:
    """A certbot-style webroot location (``root DIR;`` and nothing else that decides the answer, besides our own
    ``try_files``): the one shape whose tokens can be kept while the others go on to K3s."""
    names = [d.name for d in node.block or [] if not _our_try(d)]
    return names.count("root") == 1 and set(names) <= {"root", "default_type"}


class AcmeChange(t.NamedTuple):
    file: str
    line: int
    server: str
    action: str  # added, retargeted, removed, unchanged


def _cut(text: str, node: Node, comment: str) -> tuple[int, int, str]:
    """The splice removing ``node``, the line break before it and the comment this module wrote above it."""
    start = text.rfind("\n", 0, node.start)
    previous = text.rfind("\n", 0, start) if start > 0 else -1
    if start > 0 and text[previous + 1:start].strip().startswith(comment):
        start = previous
    return (start if start >= 0 else node.start, node.end, "")


def _append(text: str, parent: Node, lines: list[str]) -> tuple[int, int, str]:
    """The splice adding ``lines`` (each relative to the block's indentation, nested lines indented by four more)
    after the last directive of ``parent``'s block, in the indentation of its directives."""
    children = [n for n in parent.block or [] if n.file == parent.file]
    if children:
        first = children[0]
        line_start = text.rfind("\n", 0, first.start) + 1
        indent = text[line_start:first.start]
        indent = indent if not indent.strip() else "    "
        at = children[-1].end
    else:
        line_start = text.rfind("\n", 0, parent.start) + 1
        outer = text[line_start:parent.start]
        indent = (outer if not outer.strip() else "") + "    "
        at = text.index("{", parent.start) + 1
    step = "\t" if indent == "\t" else "    "
    body = "".join("\n" + indent + step * ((len(line) - len(line.lstrip(" "))) // 4) + line.lstrip(" ")
                   for line in lines)
    return (at, at, body)


def _retarget(node: Node, want: str, splices: dict[str, list[tuple[int, int, str]]]) -> str:
    passes = [d for d in node.block or [] if d.name == "proxy_pass"]
    if len(passes) == 1 and passes[0].args == [want]:
        return "unchanged"
    start, end = passes[0].arg_spans[0]
    splices.setdefault(passes[0].file, []).append((start, end, want))
    return "retargeted"


def _proxy_lines(args: list[str], want: str) -> list[str]:
    return [ACME_COMMENT, f"location {' '.join(args)} {{", "    proxy_set_header Host $host;",
            f"    proxy_pass {want};", "}"]


def _absent(tree: Tree, server: Node, found: list[Node], splices: dict[str, list[tuple[int, int, str]]]) -> bool:
    cut = False
    for node in [n for n in server.block or [] if _ours(n)]:
        splices.setdefault(node.file, []).append(_cut(tree.texts[node.file], node, ACME_COMMENT))
        cut = True
    for location in found:
        for directive in _our_try_files(location):
            splices.setdefault(directive.file, []).append(_cut(tree.texts[directive.file], directive,
                                                               ACME_FALLBACK_COMMENT))
            cut = True
    return cut


def _shared(tree: Tree, server: Node, webroot: Node, want: str, splices: dict[str, list[tuple[int, int, str]]]) -> str:
    """A certbot webroot stays: a token it has is answered from it, any other goes to K3s (``try_files`` falling
    back to a named location), so certbot's renewals and cert-manager's orders both pass during coexistence."""
    actions = []
    if not _our_try_files(webroot):
        splices.setdefault(webroot.file, []).append(
            _append(tree.texts[webroot.file], webroot, [ACME_FALLBACK_COMMENT, f"try_files $uri {ACME_NAMED};"]))
        actions.append("added")
    named = [n for n in server.block or [] if n.name == "location" and n.args == [ACME_NAMED]]
    if named:
        actions.append(_retarget(named[0], want, splices))
    else:
        splices.setdefault(server.file, []).append(
            _append(tree.texts[server.file], server, _proxy_lines([ACME_NAMED], want)))
        actions.append("added")
    return "added" if "added" in actions else "retargeted" if "retargeted" in actions else "unchanged"


def acme_plan(tree: Tree, host: str, port: int, target: str, state: str) -> tuple[dict[str, str], list[AcmeChange]]:
    """(new text per changed file, one change per server): in every plain-HTTP server of ``host``, add or remove
    ``location ^~ /.well-known/acme-challenge/ { proxy_set_header Host $host; proxy_pass http://TARGET; }``; where
    the server already serves the path from a certbot webroot, keep it and send only the tokens it does not have to
    K3s (``try_files $uri @sophia_acme_k3s;`` and that named location)."""
    servers = acme_servers(tree, host, port)
    if not servers and state == "present":
        raise EdgeError(f"acme_challenge: no server with server_name {host} listening on plain-HTTP port {port} in "
                        f"{', '.join(sorted(tree.texts))}")
    splices: dict[str, list[tuple[int, int, str]]] = {}
    changes = []
    want = f"http://{target}"
    for server in servers:
        where = f"{server.file}:{server.line}"
        found = _acme_locations(server)
        if state == "absent":
            cut = _absent(tree, server, found, splices)
            changes.append(AcmeChange(server.file, server.line, host, "removed" if cut else "unchanged"))
            continue
        others = [n for n in found if not _ours(n)]
        if len(others) == 1 and _webroot(others[0]):
            changes.append(AcmeChange(server.file, server.line, host, _shared(tree, server, others[0], want,
                                                                              splices)))
            continue
        if others:
            node = others[0]
            raise EdgeError(f"acme_challenge: server {host} ({where}) already answers the challenge path itself: "
                            f"location {' '.join(node.args)} at {node.file}:{node.line}, in a shape this module "
                            "cannot share (only a certbot webroot, 'root DIR;' alone, is kept and shared); "
                            "forwarding it to K3s would break that client's renewals")
        mine = [n for n in found if _ours(n)]
        if mine:
            changes.append(AcmeChange(server.file, server.line, host, _retarget(mine[0], want, splices)))
            continue
        splices.setdefault(server.file, []).append(_append(tree.texts[server.file], server,
                                                           _proxy_lines(ACME_ARGS, want)))
        changes.append(AcmeChange(server.file, server.line, host, "added"))
    out = {}
    for path, parts in splices.items():
        text = tree.texts[path]
        for start, end, new in sorted(parts, key=lambda p: (p[0], p[1]), reverse=True):
            text = text[:start] + new + text[end:]
        out[path] = text
    return out, changes
