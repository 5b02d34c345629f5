# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: freeze_hold
short_description: The routes a data_migration write freeze holds in the traffic splitter, or what is wrong with them
version_added: 0.3.0
description:
  - Reads C(data_migration_write_freeze.hold) (C(runtime_api), C(routes), optional C(ready_timeout) and C(host))
    and returns, per route, the splitter backend and servers to hold and the URL that must answer 200 through the
    splitter before the hold ends.
  - A route is the name of one of C(traffic_shift_routes) (its backend is C(route_) and the name with C(-) turned
    into C(_), its servers C(compose1) ... one per Compose upstream, its ready URL
    C(http://<traffic_shift_splitter_bind>:<port><health_path>)), or a mapping with C(name) and the C(ready_url),
    C(servers) and C(host) (Host header) to use instead.
  - With C(park) (C(IPV4:PORT) where nothing listens), the held servers are parked there during the hold and go back
    to their Compose upstreams (C(addresses), which must then be C(IPV4:PORT)), and the URLs that must answer are
    the upstreams' own health paths (nothing reaches a parked server through the splitter).
  - Problems are returned, each naming the key at fault, instead of routes (the role's preflight refuses them).
author:
  - Sophia Platform Team (@sophia-ai)
options:
  _input:
    description: C(data_migration_write_freeze.hold).
    type: raw
    required: true
  shift_routes:
    description: C(traffic_shift_routes) as the host sees them (empty when the host has none).
    type: list
    elements: dict
    required: true
  bind:
    description: C(traffic_shift_splitter_bind), the address the splitter's frontends listen on.
    type: str
    default: 127.0.0.1
  health_path:
    description: C(traffic_shift_health_path), for a route that sets no C(health_path).
    type: str
    default: /health
"""

EXAMPLES = r"""
- name: The routes to hold
  ansible.builtin.set_fact:
    held: "{{ (data_migration_write_freeze.hold | sophia.migrate.freeze_hold(traffic_shift_routes)).routes }}"
"""

RETURN = r"""
_value:
  description:
    - C(routes), a list of mappings with C(name), C(backend), C(servers), C(ready_urls), C(host) (or null),
      C(park) (or null) and C(addresses) (server to C(IPV4:PORT), empty without C(park)), and C(problems), one
      message per problem (then C(routes) is empty).
  type: dict
"""

import re
from collections.abc import Mapping

ROUTE_NAME = re.compile(r"[A-Za-z0-9_-]{1,58}")
IPV4_PORT = re.compile(r"(\d{1,3}\.){3}\d{1,3}:\d{1,5}")  # "route_" + name is a HAProxy name of at most 64 characters
HOLD_KEYS = ("runtime_api", "routes", "ready_timeout", "host", "park")
ROUTE_KEYS = ("name", "ready_url", "servers", "host")
KEY = "data_migration_write_freeze.hold"


def _text(value):
    return isinstance(value, str) and value.strip() != ""


def _ready_url(route, bind, health_path):
    host = bind if bind not in ("", "0.0.0.0", "*", "::") else "127.0.0.1"  # noqa: S104 - the wildcard is mapped away
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    path = route.get("health_path") or health_path
    return f"http://{host}:{route.get('port')}{path}"


def _route(item, index, known, bind, health_path, park, problems):
    key = f"{KEY}.routes[{index}]"
    spec = dict(item) if isinstance(item, Mapping) else {"name": item}
    problems += [f"{key}.{k} is not a known key" for k in spec if k not in ROUTE_KEYS]
    name = spec.get("name")
    if not isinstance(name, str) or not ROUTE_NAME.fullmatch(name):
        problems.append(f"{key} must be a route name (1 to 58 letters, digits, '-' and '_'), not {name!r}")
        return None
    shift = known.get(name)
    if shift is None and not _text(spec.get("ready_url")):
        problems.append(f"{key}: {name} is not one of traffic_shift_routes on this host "
                        f"(known: {', '.join(sorted(known)) or 'none'}); give its ready_url")
        return None
    servers = spec.get("servers")
    if servers is None:
        compose = shift.get("compose") if shift else None
        count = len(compose) if isinstance(compose, list) and compose else 1
        servers = [f"compose{i}" for i in range(1, count + 1)]
    if not isinstance(servers, list) or not servers or not all(_text(s) for s in servers):
        problems.append(f"{key}.servers must be a non-empty list of server names, not {servers!r}")
        return None
    addresses = {}
    if park:
        compose = shift.get("compose") if shift else None
        if not isinstance(compose, list) or len(compose) != len(servers) or \
                not all(isinstance(a, str) and IPV4_PORT.fullmatch(a) for a in compose):
            problems.append(f"{key}: {name} cannot be parked: its servers go back to their Compose upstreams, which "
                            f"must be in traffic_shift_routes as IPV4:PORT, one per server (got {compose!r})")
            return None
        addresses = dict(zip(servers, compose, strict=True))
    if spec.get("ready_url"):
        ready_urls = [spec["ready_url"]]
    elif park:  # a parked server is reached at its own address only
        path = shift.get("health_path") or health_path
        ready_urls = [f"http://{address}{path}" for address in addresses.values()]
    else:
        ready_urls = [_ready_url(shift, bind, health_path)]
    if not all(_text(u) and re.match(r"https?://", u) for u in ready_urls):
        problems.append(f"{key}.ready_url must be an http(s) URL, not {spec.get('ready_url')!r}")
        return None
    host = spec.get("host", shift.get("host") if shift else None)
    return {"name": name, "backend": "route_" + name.replace("-", "_"), "servers": servers,
            "ready_urls": ready_urls, "host": host if _text(host) else None, "park": park or None,
            "addresses": addresses}


def freeze_hold(hold, shift_routes, bind="127.0.0.1", health_path="/health"):
    if not isinstance(hold, Mapping):
        return {"routes": [], "problems": [f"{KEY} must be a mapping ({', '.join(HOLD_KEYS)}), not {hold!r}"]}
    problems = [f"{KEY}.{k} is not a known key" for k in hold if k not in HOLD_KEYS]
    if not _text(hold.get("runtime_api")):
        problems.append(f"{KEY}.runtime_api is required: the splitter's Runtime API (traffic_shift_splitter_socket)")
    timeout = hold.get("ready_timeout", 120)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 3600:
        problems.append(f"{KEY}.ready_timeout must be a number of seconds from 1 to 3600, not {timeout!r}")
    if "host" in hold and not _text(hold["host"]):
        problems.append(f"{KEY}.host must be an inventory host name (where the splitter runs), not {hold['host']!r}")
    park = hold.get("park")
    if park is not None and not (isinstance(park, str) and IPV4_PORT.fullmatch(park)):
        problems.append(f"{KEY}.park must be IPV4:PORT where nothing listens (such as 127.0.0.1:1), not {park!r}")
        park = None
    routes = hold.get("routes")
    if not isinstance(routes, list) or not routes:
        problems.append(f"{KEY}.routes must be a non-empty list of route names (traffic_shift_routes), not {routes!r}")
        return {"routes": [], "problems": problems}
    known = {r["name"]: r for r in shift_routes or [] if isinstance(r, Mapping) and isinstance(r.get("name"), str)}
    out = [_route(item, i, known, bind or "127.0.0.1", health_path or "/health", park, problems)
           for i, item in enumerate(routes)]
    names = [r["name"] for r in out if r]
    problems += [f"{KEY}.routes names {n} twice" for n in sorted({n for n in names if names.count(n) > 1})]
    return {"routes": [] if problems else out, "problems": problems}


class FilterModule:
    def filters(self):
        return {"freeze_hold": freeze_hold}
