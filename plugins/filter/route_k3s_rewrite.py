# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: route_k3s_rewrite
short_description: How the traffic splitter gives a route's K3s side the path the client sent
version_added: 0.3.0
description:
  - A route's edge location may strip its prefix (C(location /api/context/) with C(proxy_pass http://ctx_up/;)), so
    the splitter receives C(/items). The Compose side expects that; the K3s ingress needs C(/api/context/items).
  - "Takes a route of C(traffic_shift_routes) and what M(sophia.migrate.nginx_edge) read from the edge for the routes
    (its C(routes) result, check mode), and returns C(rewrite) (C({from, to}) - a path starting with C(from) is sent
    to the K3s servers as C(to) followed by the rest; null when nothing is stripped) and C(problem)."
  - The edge wins. A route's own C(k3s_rewrite) is used where the edge is not read (no C(traffic_shift_edge_config))
    and must agree with the edge where it is; a disagreement, a malformed C(k3s_rewrite) or an edge location whose
    path cannot be given back (a C(rewrite) in it) is a C(problem) naming the route.
author:
  - Sophia Platform Team (@sophia-ai)
options:
  _input:
    description: One item of C(traffic_shift_routes).
    type: dict
    required: true
  edge_routes:
    description: The C(routes) result of M(sophia.migrate.nginx_edge) (empty when the edge is not read).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: The K3s path of every route
  ansible.builtin.set_fact:
    rewrites: "{{ traffic_shift_routes | map('sophia.migrate.route_k3s_rewrite', edge.routes) | list }}"
"""

RETURN = r"""
_value:
  description: C(rewrite) (a mapping with C(from) and C(to), or null) and C(problem) (empty when there is none).
  type: dict
"""

import re
from collections.abc import Mapping

PATH = re.compile(r"/[A-Za-z0-9._~/%-]*")


def _declared(route):
    value = route.get("k3s_rewrite")
    if value is None:
        return None, ""
    if (not isinstance(value, Mapping) or set(value) != {"from", "to"}
            or not all(isinstance(value[k], str) and PATH.fullmatch(value[k]) for k in ("from", "to"))):
        return None, (f"route {route.get('name')}: k3s_rewrite must be {{from: PATH, to: PATH}}, two paths of "
                      f"letters, digits and . _ ~ / % - (got {str(value)[:120]!r})")
    return {"from": value["from"], "to": value["to"]}, ""


def route_k3s_rewrite(route, edge_routes):
    if not isinstance(route, Mapping):
        return {"rewrite": None, "problem": f"a route must be a mapping, got {type(route).__name__}"}
    declared, problem = _declared(route)
    if problem:
        return {"rewrite": None, "problem": problem}
    edge = next((r for r in edge_routes or [] if isinstance(r, Mapping) and r.get("name") == route.get("name")), None)
    if edge is None:
        return {"rewrite": declared, "problem": ""}
    where = f"route {route.get('name')} ({edge.get('file')}:{edge.get('line')}, location {edge.get('location')})"
    if edge.get("k3s_problem"):
        return {"rewrite": None, "problem": f"{where}: {edge['k3s_problem']}"}
    found = edge.get("k3s_rewrite") or None
    if "k3s_rewrite" in route and declared != found:
        return {"rewrite": None, "problem": f"{where}: k3s_rewrite {declared} disagrees with the edge, which "
                                            f"needs {found}"}
    return {"rewrite": found, "problem": ""}


class FilterModule:
    def filters(self):
        return {"route_k3s_rewrite": route_k3s_rewrite}
