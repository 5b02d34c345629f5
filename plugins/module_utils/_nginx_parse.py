# Copyright (c) sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read an nginx configuration: tokens (with their offsets, for editors that keep every other byte), directives,
``include`` spliced in (globs, relative to the main file's directory, or mapped from the host's paths), and the
checks ``nginx -t`` makes on the directives read here."""

from __future__ import annotations

import glob
import json
import os
import typing as t

_STOCK_INCLUDES = frozenset({"mime.types", "fastcgi_params", "fastcgi.conf", "uwsgi_params", "scgi_params"})


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
    return [(tok, line, quoted) for tok, line, _start, _end, quoted in spans(text, file)]


def spans(text: str, file: str) -> list[tuple[str, int, int, int, bool]]:
    """(token, line, start, end, quoted): each token with the offsets of its text in ``text`` (quotes included), for
    editors that change one token and keep every other byte (sophia.migrate.nginx_edge)."""
    tokens: list[tuple[str, int, int, int, bool]] = []
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
        elif c == "{" and _lua_block_opening(tokens):
            # an OpenResty *_by_lua_block: its body is Lua, not nginx syntax; kept as one argument
            start, start_line, (i, line, code) = i, line, _lua_block(text, i, line, file)
            tokens.extend([(code, start_line, start, i, True), (";", line, i, i, False)])
        elif c in "{};":
            tokens.append((c, line, i, i + 1, False))
            i += 1
        elif c in "\"'":
            start, start_line, quote, buf = i, line, c, []
            i += 1
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
            i += 1
            tokens.append(("".join(buf), start_line, start, i, True))
        else:
            start, depth = i, 0
            while i < n:
                ch = text[i]
                if ch == "{" and i > start and text[i - 1] == "$":
                    depth += 1  # ${var}
                elif ch == "}" and depth:
                    depth -= 1
                elif ch == "\\" and i + 1 < n and text[i + 1] != "\n":
                    i += 1  # an escaped character is part of the word (nginx: "\;", "\{", "\ ")
                elif ch.isspace() or ch in ";{}" or (ch == "#" and i == start):
                    break
                i += 1
            tokens.append((text[start:i], line, start, i, False))
    return tokens


def _lua_block_opening(tokens: list[tuple[str, int, int, int, bool]]) -> bool:
    """Whether a '{' opens the Lua body of a ``*_by_lua_block`` directive (its name, then arguments)."""
    for pos in range(len(tokens) - 1, -1, -1):
        tok, quoted = tokens[pos][0], tokens[pos][4]
        if not quoted and tok in ("{", "}", ";"):
            return False
        if pos == 0 or (not tokens[pos - 1][4] and tokens[pos - 1][0] in ("{", "}", ";")):
            return tok.endswith("_by_lua_block")
    return False


def _lua_block(text: str, i: int, line: int, file: str) -> tuple[int, int, str]:
    """(position after the closing '}', line there, the Lua code) of the block that opens at ``text[i]``."""
    start_line, depth, start, n = line, 0, i, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        elif c in "\"'":
            i += 1
            while i < n and text[i] != c:
                if text[i] == "\\":
                    i += 1
                elif text[i] == "\n":
                    line += 1
                i += 1
        elif c == "-" and text.startswith("--", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1, line, text[start + 1:i]
        i += 1
    raise NginxConfigError(f"{file}:{start_line}: a *_by_lua_block is not closed")


# Directives that take a block ("{") and those that end with ";", with nginx's argument counts (min, max; None for
# no maximum) as its ngx_command_t tables declare them. Only the directives read here and common ones are checked, so
# that a missing ';' that nginx itself rejects ("invalid number of arguments", "is not terminated by ';'") is never
# read as a directive with extra arguments. Unknown (third-party module) directives are not judged.
_BLOCK_DIRECTIVES = {"http": (0, 0), "events": (0, 0), "stream": (0, 0), "mail": (0, 0), "location": (1, 2),
                     "upstream": (1, 1), "map": (2, 2), "types": (0, 0), "if": (1, None), "limit_except": (1, None),
                     "geo": (1, 2), "split_clients": (2, 2)}
_SIMPLE_DIRECTIVES = {
    "proxy_pass": (1, 1), "server_name": (1, None), "client_max_body_size": (1, 1), "proxy_read_timeout": (1, 1),
    "proxy_send_timeout": (1, 1), "proxy_connect_timeout": (1, 1), "proxy_buffering": (1, 1),
    "proxy_set_header": (2, 2), "set": (2, 2), "return": (1, 2), "ssl_certificate": (1, 1),
    "ssl_certificate_key": (1, 1), "include": (1, 1), "root": (1, 1), "alias": (1, 1), "try_files": (2, None),
    "error_page": (2, None), "rewrite": (2, 3), "proxy_http_version": (1, 1), "keepalive": (1, 1),
    "worker_processes": (1, 1), "worker_connections": (1, 1), "user": (1, 2), "pid": (1, 1), "index": (1, None),
    "add_header": (2, 3), "proxy_hide_header": (1, 1), "server_tokens": (1, 1), "sendfile": (1, 1),
    "keepalive_timeout": (1, 2), "default_type": (1, 1), "ssl_ciphers": (1, 1), "gzip": (1, 1), "http2": (1, 1),
    "auth_basic": (1, 1), "auth_basic_user_file": (1, 1), "allow": (1, 1), "deny": (1, 1), "expires": (1, 2),
    "proxy_redirect": (1, 2), "listen": (1, None), "ssl_protocols": (1, None), "tcp_nopush": (1, 1),
    "tcp_nodelay": (1, 1), "resolver": (1, None), "ssl_session_cache": (1, 2), "ssl_session_timeout": (1, 1),
    "ssl_prefer_server_ciphers": (1, 1), "proxy_request_buffering": (1, 1),
}
_FLAG_DIRECTIVES = frozenset({"proxy_buffering", "sendfile", "tcp_nopush", "tcp_nodelay", "gzip", "http2",
                              "ssl_prefer_server_ciphers", "proxy_request_buffering"})
_LISTEN_FLAGS = frozenset({"default_server", "default", "ssl", "http2", "quic", "proxy_protocol", "reuseport",
                           "deferred", "bind", "spdy", "udp"})
_LISTEN_OPTIONS = ("backlog=", "rcvbuf=", "sndbuf=", "accept_filter=", "fastopen=", "ipv6only=", "so_keepalive=",
                   "setfib=", "max_conns=")
# Inside these blocks the entries are data (map/types/geo/split_clients pairs), not directives.
_DATA_BLOCKS = frozenset({"map", "types", "geo", "split_clients"})


def check_syntax(directives: list[Directive], parent: str = "") -> None:
    """Raise NginxConfigError (file:line) for what ``nginx -t`` rejects among the directives read here."""
    if parent in _DATA_BLOCKS:
        return
    for d in directives:
        where = f"{d.file}:{d.line}"
        if d.name == "server" and parent == "upstream":
            if d.block is not None:
                raise NginxConfigError(f'{where}: directive "server" is not terminated by ";"')
            _check_arity(d, 1, None)
        elif d.name == "server":
            if d.block is None:
                raise NginxConfigError(f'{where}: directive "server" has no opening "{{"')
            _check_arity(d, 0, 0)
        elif d.name in _BLOCK_DIRECTIVES:
            if d.block is None:
                raise NginxConfigError(f'{where}: directive "{d.name}" has no opening "{{"')
            _check_arity(d, *_BLOCK_DIRECTIVES[d.name])
        elif d.name in _SIMPLE_DIRECTIVES:
            if d.block is not None:
                raise NginxConfigError(f'{where}: directive "{d.name}" is not terminated by ";"')
            _check_arity(d, *_SIMPLE_DIRECTIVES[d.name])
            if d.name in _FLAG_DIRECTIVES and d.args[0] not in ("on", "off"):
                raise NginxConfigError(f'{where}: invalid value "{d.args[0]}" in "{d.name}" directive, '
                                       'it must be "on" or "off"')
            if d.name == "listen":
                for arg in d.args[1:]:
                    if arg not in _LISTEN_FLAGS and not arg.startswith(_LISTEN_OPTIONS):
                        raise NginxConfigError(f'{where}: invalid parameter "{arg}" in "listen" directive'
                                               f"{_missing_semicolon(d)}")
        if d.block is not None:
            check_syntax(d.block, d.name)


def _missing_semicolon(d: Directive) -> str:
    extra = next((a for a in d.args if a in _SIMPLE_DIRECTIVES or a in _BLOCK_DIRECTIVES or a == "server"), "")
    return f" (a missing ';' before {json.dumps(extra)}?)" if extra else ""


def _check_arity(d: Directive, low: int, high: int | None) -> None:
    if len(d.args) < low or (high is not None and len(d.args) > high):
        raise NginxConfigError(f'{d.file}:{d.line}: invalid number of arguments in "{d.name}" directive'
                               f"{_missing_semicolon(d)}")


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
                raise NginxConfigError(f"{file}:{line}: unexpected '}}' after directive '{name}' "
                                       "(it is not terminated by ';')")
        if depth:
            raise NginxConfigError(f"{file}: unexpected end of file, a '{{' block is not closed")
        return out

    return block(0)


class _Includes(t.NamedTuple):
    """Where ``include`` paths are looked for, and the includes that could not be resolved."""
    root: str  # relative includes
    include_root: str  # a copy of the host's files: an absolute include /x/y is read from <include_root>/x/y
    include_map: dict[str, str]  # host directory -> controller directory (the longest match wins)
    unresolved: list[dict[str, t.Any]]


def _host_path(name: str, inc: _Includes) -> str:
    """The controller path that an absolute include path of the host maps to."""
    for host_dir in sorted(inc.include_map, key=len, reverse=True):
        prefix = host_dir.rstrip("/")
        if name == prefix or name.startswith(prefix + "/"):
            return os.path.join(inc.include_map[host_dir], name[len(prefix):].lstrip("/"))
    if inc.include_root:
        return os.path.join(inc.include_root, name.lstrip("/"))
    return name


def parse_file(path: str, root: str | None = None, _seen: tuple[str, ...] = (),
               includes: _Includes | None = None) -> list[Directive]:
    """Parse ``path`` and splice in every ``include`` (paths relative to ``root``, default its directory).

    An absolute include that is missing on the controller (or a glob that matches nothing) is recorded in
    ``includes.unresolved`` and the rest is read; a missing relative include is an error (the copy is incomplete).
    """
    path = os.path.abspath(path)
    if path in _seen:
        raise NginxConfigError(f"{path}: include loop ({' -> '.join(_seen)})")
    if includes is None:
        includes = _Includes(root or os.path.dirname(path), "", {}, [])
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise NginxConfigError(f"{path}: cannot read: {exc}") from exc
    return _expand(parse_text(text, path), includes, (*_seen, path))


def _expand(directives: list[Directive], inc: _Includes, seen: tuple[str, ...]) -> list[Directive]:
    out: list[Directive] = []
    for d in directives:
        if d.name == "include" and d.block is None and len(d.args) == 1:
            name = d.args[0]
            if os.path.basename(name) in _STOCK_INCLUDES:
                continue  # nginx's stock MIME/CGI parameter files: nothing to route
            pattern = _host_path(name, inc) if os.path.isabs(name) else os.path.join(inc.root, name)
            matches = sorted(glob.glob(pattern))
            if not matches:
                entry = {"file": d.file, "line": d.line, "include": name, "looked_for": pattern}
                if glob.has_magic(pattern):
                    inc.unresolved.append({**entry, "reason": "the glob matches no file (nginx reads nothing here)"})
                elif os.path.isabs(name):
                    inc.unresolved.append({**entry, "reason": (
                        "no such file on the controller; give include_root (a copy of the host's files) or "
                        "include_map so that it can be read")})
                else:
                    raise NginxConfigError(f"{d.file}:{d.line}: include {name}: no such file ({pattern})")
            for match in matches:
                out.extend(parse_file(match, None, seen, inc))
        elif d.block is not None:
            out.append(d._replace(block=_expand(d.block, inc, seen)))
        else:
            out.append(d)
    return out
