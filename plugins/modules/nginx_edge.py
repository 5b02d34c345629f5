#!/usr/bin/python
# Copyright: (c) 2026, Sophia Platform Team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nginx_edge
short_description: Point the nginx locations that route given paths at new targets, by structure, across includes
version_added: 0.3.0
description:
  - Reads the whole configuration tree of an nginx (the main file and every file its C(include) directives name,
    globs followed) and finds, for each route, the one C(location) that serves it, wherever it lives. Its
    C(proxy_pass) is pointed at the route's O(routes[].splitter); everything else in every file stays byte for byte.
  - URI semantics are kept. Only the scheme and the address of C(proxy_pass) change and the URI part stays, so
    C(proxy_pass http://ctx_up/;) (which strips the location prefix) becomes C(proxy_pass http://SPLITTER/;) and the
    new target receives exactly the path the old one received. A location whose C(proxy_pass) holds a variable or a
    unix socket is refused.
  - The K3s side needs the client's path, not the stripped one (its Ingress routes by the full path and rewrites
    the prefix itself). Each route's result says how to give it back, RV(routes[].k3s_rewrite) (C(from) the URI
    part, C(to) the location's path), which P(sophia.migrate.traffic_shift#role) applies to the route's K3s servers
    only; or, when a C(rewrite) in the location makes that impossible, RV(routes[].k3s_problem).
  - The first edit of a location records its old target in a variable the location never uses
    (C(set $sophia_migrate_compose_upstream OLD;)), which M(sophia.migrate.nginx_routes) reads back.
  - Every route must be found exactly once, or nothing is written and the module fails naming the route, the places
    found and the files searched.
  - Only the files with a change are written (atomically, mode kept), each backed up once. Then O(validate_command)
    runs; when it fails every file is put back and nothing is reloaded. Then O(reload_command) runs once.
  - With O(verify_url), a request per route is sent through the edge after the reload, and the module fails unless
    the answer carries O(verify_header) (set by the splitter), so a caller records a route's share only once the
    edge really sends that route to the splitter.
  - A second operation, O(acme_challenge), instead of O(routes) - adds to every plain-HTTP server of a host (its
    C(listen) port O(acme_challenge.port), default 80) a
    C(location ^~ /.well-known/acme-challenge/ { proxy_set_header Host $host; proxy_pass http://TARGET; }), so that
    the K3s ingress (cert-manager's HTTP-01 solver) answers the ACME challenges of that host through the public port
    while nginx-proxy owns it; O(acme_challenge.state=absent) removes it again. Idempotent. A server that already
    answers the challenge path from a certbot webroot (C(root DIR;) alone in the location) keeps it - certbot's
    renewals go on - and gets C(try_files $uri @sophia_acme_k3s;) in it plus that named location proxying to TARGET,
    so only the tokens the webroot lacks go to K3s. A challenge location of any other shape is refused, never
    overwritten. The same backup, validate, restore and reload discipline applies.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  config:
    description: The main configuration file (C(nginx.conf)) as this host sees it.
    type: path
    required: true
  path_map:
    description:
      - Absolute C(include) paths as nginx sees them (in its container) mapped to where they are on this host,
        longest prefix first. Relative includes resolve against the directory of O(config), as nginx resolves them
        against its prefix when O(config) is mounted as its main file.
    type: dict
    default: {}
  routes:
    description: The routes to point at their splitters (one of O(routes) and O(acme_challenge) is required).
    type: list
    elements: dict
    suboptions:
      name:
        description: Route id, used in messages and results.
        type: str
        required: true
      path:
        description:
          - The prefix location of the route (C(location /api/context) and C(location /api/context/) both match).
        type: str
      host:
        description: The C(server_name) of the server holding the location; omitted, any server.
        type: str
      location:
        description:
          - The location's arguments exactly as written, for a location that is not a plain prefix, e.g.
            C(~ ^/api/agents/). Takes precedence over O(routes[].path).
        type: str
      splitter:
        description: The new target's address, as C(HOST:PORT).
        type: str
        required: true
      verify_path:
        description:
          - Path requested through the edge by O(verify_url); default the path of the location as written, with its
            trailing C(/) (nginx answers the path without it with a redirect). Required for a regex location.
        type: str
  acme_challenge:
    description:
      - Forward C(/.well-known/acme-challenge/) of a host's plain-HTTP servers to the K3s ingress (or stop doing so).
    type: dict
    suboptions:
      host:
        description: The C(server_name) of the servers to change (every plain-HTTP server that names it).
        type: str
        required: true
      target:
        description:
          - The K3s ingress as C(HOST:PORT) (as nginx-proxy reaches it). Required with O(acme_challenge.state=present).
        type: str
      port:
        description: The plain-HTTP port of the servers to change.
        type: int
        default: 80
      state:
        description: V(present) adds (or re-points) the location, V(absent) removes the one this module added.
        type: str
        choices: [present, absent]
        default: present
  backup:
    description: Keep a copy of each changed file beside it (C(FILE.PID.DATE~)).
    type: bool
    default: true
  validate_command:
    description: Command (a list, or a string split like a shell would) that checks the written configuration.
    type: raw
  reload_command:
    description: Command that reloads nginx, run once after a change that validated.
    type: raw
  verify_url:
    description:
      - Base URL of the edge as seen from this host, e.g. C(https://127.0.0.1:443). The request carries the route's
        host as C(Host) header and as TLS server name, so the certificate is checked against the real name.
    type: str
  verify_header:
    description: Response header the splitter adds; its presence proves the request went through the splitter.
    type: str
    default: X-Sophia-Backend
  ca_path:
    description: CA bundle for the edge's certificate with O(verify_url); default the system's.
    type: path
  validate_certs:
    description: Check the edge's certificate.
    type: bool
    default: true
  timeout:
    description: Seconds to wait, per route, for the edge to answer through the splitter after a reload.
    type: float
    default: 30
"""

EXAMPLES = r"""
- name: Point the API locations of nginx-proxy (conf.d layout) at their splitters
  sophia.migrate.nginx_edge:
    config: /opt/sophia/nginx-proxy/nginx.conf
    path_map: {/etc/nginx: /opt/sophia/nginx-proxy}
    routes:
      - {name: www-api-context, host: www.sophia-intel.ai, path: /api/context, splitter: "172.17.0.1:9103"}
      - {name: www-api-agents, host: www.sophia-intel.ai, location: "~ ^/api/agents/", splitter: "172.17.0.1:9108"}
    validate_command: docker exec sophia-nginx-proxy-1 nginx -t -q
    reload_command: docker exec sophia-nginx-proxy-1 nginx -s reload
    verify_url: https://127.0.0.1:443

- name: During coexistence, the K3s ingress answers the ACME challenges of www through nginx-proxy's port 80
  sophia.migrate.nginx_edge:
    config: /opt/sophia/nginx-proxy/nginx.conf
    path_map: {/etc/nginx: /opt/sophia/nginx-proxy}
    acme_challenge: {host: www.sophia-intel.ai, target: "172.17.0.1:30080"}
    validate_command: docker exec sophia-nginx-proxy-1 nginx -t -q
    reload_command: docker exec sophia-nginx-proxy-1 nginx -s reload
"""

RETURN = r"""
routes:
  description: One entry per route, in the order given (empty with O(acme_challenge)).
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Route id., type: str}
    file: {description: File of the route's C(proxy_pass)., type: str}
    line: {description: Its line., type: int}
    location: {description: The location's arguments., type: str}
    before: {description: The C(proxy_pass) target before., type: str}
    after: {description: "The target now (in check mode, the one it would be).", type: str}
    changed: {description: Whether this route's target changed., type: bool}
    k3s_rewrite:
      description:
        - "How the K3s side gets the client's path back: a path the splitter receives starts with C(from); the
          client sent C(to) followed by the rest. C(null) when the location strips nothing (no URI part, or the
          same path)."
        - "Example: C(location /api/context/ { proxy_pass http://ctx_up/; }) gives C({from: /, to: /api/context/})."
      type: dict
    k3s_problem:
      description: Why the client's path cannot be given back (a C(rewrite) in the location); empty when it can.
      type: str
files:
  description: The files written (or that would be, in check mode).
  returned: always
  type: list
  elements: str
backups:
  description: Backup file per written file.
  returned: when a file was written with O(backup)
  type: dict
verified:
  description: Per route, the value of O(verify_header) in the answer through the edge.
  returned: when O(verify_url) is set and not in check mode
  type: dict
acme_challenge:
  description: With O(acme_challenge), one entry per plain-HTTP server of the host.
  returned: when O(acme_challenge) is set
  type: list
  elements: dict
  contains:
    file: {description: File of the server block., type: str}
    line: {description: Its line., type: int}
    server: {description: The host., type: str}
    action: {description: "added, retargeted, removed or unchanged.", type: str}
"""

import shlex
import time

from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule
from ansible_collections.sophia.migrate.plugins.module_utils._files import atomic_write
from ansible_collections.sophia.migrate.plugins.module_utils._nginx_edge import (
    EdgeError,
    Tree,
    acme_plan,
    apply,
    check_base_url,
    check_splitter,
    location_path,
    plan,
    through_edge,
)


def _argv(value: object, option: str) -> list[str]:
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, list) and value and all(isinstance(v, (str, int)) for v in value):
        return [str(v) for v in value]
    raise EdgeError(f"{option} must be a command: a non-empty list of strings, or a string")


def _run(module: AnsibleModule, argv: list[str], what: str) -> tuple[int, str]:
    rc, out, err = module.run_command(argv)
    return rc, f"{what} ({' '.join(argv)}) exited {rc}: {(err or out).strip()[-2000:]}"


def _commit(module: AnsibleModule, tree: Tree, texts: dict[str, str], result: dict, validate: list[str] | None,
            reload_: list[str] | None) -> None:
    """Back up, write, validate (every file put back on failure), reload (put back and reloaded again on failure)."""
    if module.params["backup"]:
        result["backups"] = {f: module.backup_local(f) for f in sorted(texts)}
    for path, text in texts.items():
        atomic_write(path, text, tree.modes[path])
    for argv, what in ((validate, "validate_command"), (reload_, "reload_command")):
        if argv is None:
            continue
        rc, message = _run(module, argv, what)
        if rc != 0:
            for path in texts:
                atomic_write(path, tree.texts[path], tree.modes[path])
            if what == "reload_command":
                module.run_command(argv)
            module.fail_json(msg=f"nginx_edge: {message}; every file is back as it was"
                             + ("" if what == "reload_command" else " and nginx was not reloaded"), **result)


def run_acme(module: AnsibleModule, validate: list[str] | None, reload_: list[str] | None) -> dict:
    """The acme_challenge operation: add or remove the challenge location in the host's plain-HTTP servers."""
    spec = module.params["acme_challenge"]
    if spec["state"] == "present":
        try:
            check_splitter({"name": "acme_challenge", "splitter": spec["target"] or ""})
        except EdgeError:
            raise EdgeError(f"acme_challenge.target {(spec['target'] or '')[:100]!r} must be HOST:PORT (the K3s "
                            "ingress as nginx-proxy reaches it)") from None
    if not spec["host"] or any(c.isspace() or c in ";{}\"'#" or ord(c) < 33 for c in spec["host"]):
        raise EdgeError(f"acme_challenge.host {spec['host'][:100]!r} must be a server name")
    tree = Tree(module.params["config"], module.params["path_map"])
    texts, changes = acme_plan(tree, spec["host"], spec["port"], spec["target"] or "", spec["state"])
    result: dict = {"changed": bool(texts), "files": sorted(texts), "routes": [],
                    "acme_challenge": [c._asdict() for c in changes]}
    if module._diff:
        result["diff"] = [{"before_header": f, "after_header": f, "before": tree.texts[f], "after": texts[f]}
                          for f in sorted(texts)]
    if texts and not module.check_mode:
        _commit(module, tree, texts, result, validate, reload_)
    return result


def _commands(module: AnsibleModule) -> tuple[list[str] | None, list[str] | None]:
    p = module.params
    validate = _argv(p["validate_command"], "validate_command") if p["validate_command"] is not None else None
    reload_ = _argv(p["reload_command"], "reload_command") if p["reload_command"] is not None else None
    return validate, reload_


def run(module: AnsibleModule) -> dict:
    p = module.params
    if p["acme_challenge"] is not None:
        return run_acme(module, *_commands(module))
    for n, route in enumerate(p["routes"]):
        if not (route.get("path") or route.get("location")):
            raise EdgeError(f"routes[{n}] ({route['name']}): give path or location")
        check_splitter(route)
    if p["verify_url"]:
        check_base_url(p["verify_url"])
    for name in ("timeout",):
        if not 0 < p[name] <= 600:
            raise EdgeError(f"{name} must be more than 0 and at most 600 seconds")
    validate, reload_ = _commands(module)
    tree = Tree(p["config"], p["path_map"])
    edits = plan(tree, p["routes"])
    texts = apply(tree, p["routes"], edits)
    result: dict = {
        "changed": bool(texts), "files": sorted(texts),
        "routes": [{**e._asdict(), "name": e.route, "changed": e.before != e.after} for e in edits],
    }
    for entry in result["routes"]:
        entry.pop("route")
    if module._diff:
        result["diff"] = [{"before_header": f, "after_header": f, "before": tree.texts[f], "after": texts[f]}
                          for f in sorted(texts)]
    if module.check_mode:
        return result
    if texts:
        _commit(module, tree, texts, result, validate, reload_)
    if p["verify_url"]:
        result["verified"] = {}
        failures = []
        for route, edit in zip(p["routes"], edits, strict=True):
            path = route.get("verify_path") or location_path(edit.location)
            if not path:
                raise EdgeError(f"route {route['name']}: location {edit.location} is a regex: give verify_path")
            # a reload replaces nginx's workers within moments: ask again until the deadline
            deadline = time.monotonic() + p["timeout"]
            while True:
                value, problem = through_edge(p["verify_url"], route.get("host"), path, p["verify_header"],
                                              p["ca_path"], p["validate_certs"], min(5.0, p["timeout"]))
                if not problem or time.monotonic() >= deadline:
                    break
                time.sleep(0.2)
            result["verified"][route["name"]] = value
            if problem:
                failures.append(f"{route['name']} ({path}): {problem}")
        if failures:
            module.fail_json(msg="nginx_edge: the edge does not send these routes through the splitter: "
                             + "; ".join(failures), **result)
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "config": {"type": "path", "required": True},
            "path_map": {"type": "dict", "default": {}},
            "routes": {"type": "list", "elements": "dict", "options": {
                "name": {"type": "str", "required": True},
                "path": {"type": "str"},
                "host": {"type": "str"},
                "location": {"type": "str"},
                "splitter": {"type": "str", "required": True},
                "verify_path": {"type": "str"},
            }},
            "acme_challenge": {"type": "dict", "options": {
                "host": {"type": "str", "required": True},
                "target": {"type": "str"},
                "port": {"type": "int", "default": 80},
                "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            }},
            "backup": {"type": "bool", "default": True},
            "validate_command": {"type": "raw"},
            "reload_command": {"type": "raw"},
            "verify_url": {"type": "str"},
            "verify_header": {"type": "str", "default": "X-Sophia-Backend"},
            "ca_path": {"type": "path"},
            "validate_certs": {"type": "bool", "default": True},
            "timeout": {"type": "float", "default": 30},
        },
        required_one_of=[["routes", "acme_challenge"]],
        mutually_exclusive=[["routes", "acme_challenge"]],
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except EdgeError as exc:
        module.fail_json(msg=f"nginx_edge: {exc}", changed=False)


if __name__ == "__main__":
    main()
