#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nginx_routes
short_description: Parse an nginx-proxy configuration into a route list
version_added: 0.1.0
description:
  - Reads the nginx configuration of the Compose edge (nginx-proxy) and returns one route per host and
    location prefix, the list that the C(ingress_certs) role (Ingress resources) and the C(traffic_shift)
    role consume, so routes are never typed twice.
  - Translated are C(server_name), C(listen ... ssl), prefix and exact C(location) blocks (nested too),
    C(proxy_pass) to C(upstream) blocks or C(host:port), websocket upgrade headers, C(client_max_body_size),
    C(proxy_read_timeout), C(proxy_send_timeout), C(proxy_connect_timeout) and C(proxy_buffering), inherited
    from C(http) to C(server) to C(location) as nginx does. C(include) is followed (globs, relative to the
    directory of O(path) or O(prefix); absolute paths through O(include_root) / O(include_map)).
  - C(proxy_pass) with variables is resolved where the value is static - set by C(set) in the server or location
    (not inside an C(if)) or by a C(map) with only a C(default); C($request_uri) at the end passes the request URI
    on as it came. Any other variable, or a URI part with variables (nginx then replaces the whole request URI),
    is reported in RV(unsupported).
  - A location without C(proxy_pass) whose C(try_files) or C(error_page) falls back to a named location
    (C(location @name)) is routed to that named location's C(proxy_pass); the files served first from the host
    (or the location's own handler) are reported in RV(unsupported).
  - An absolute C(include) that is missing on the controller, and a glob C(include) that matches no file, do not
    stop the parse; each is returned in RV(unresolved_includes) and warned about. A missing relative C(include) is
    an error (the copy of the configuration is incomplete).
  - C(stream {}) blocks (TCP/UDP proxies) are returned in RV(streams) with their ports and warned about; an Ingress
    cannot carry them.
  - Syntax errors that C(nginx -t) rejects (an unclosed block, a missing C(;) that makes C(proxy_pass),
    C(listen), C(set) or another known directive take a wrong number of arguments, a block directive without
    C({), an invalid C(listen) parameter, a flag that is not C(on)/C(off)) fail the module with file and line.
  - Directives that are not translated (C(sub_filter), C(add_header), C(if), C(auth_basic), regular-expression
    locations, static C(root), ...) are returned in RV(unsupported) with file, line and context, never dropped.
  - Host names and paths go into Kubernetes manifests, so they are checked first. A C(server_name) that is not a
    DNS-1123 subdomain (upper case is folded, a wildcard is allowed only as a leading C(*.)), a regular-expression
    (C(~^...)), wildcard-suffix (C(app.*)), C(.name), variable or IP address server name, a C(location) path or
    C(proxy_pass) URI that is not a valid Ingress path (must start with C(/); no whitespace, control or non-ASCII
    characters, no C({ } ; \ " '), no C(//), C(/./), C(/../), C(%2f), no C(/.) or C(/..) at the end) never
    becomes a route; it is returned in RV(rejected) and each is warned about.
  - A location whose C(proxy_pass) the C(traffic_shift) role has pointed at its splitter keeps its old target in
    C(set $sophia_migrate_compose_upstream <target>;); the route is read from that target (the Compose routing) and
    the route's C(split_by) names the splitter, so the routes are the same before and after the splitter is in front.
  - Only reads files; never changes anything.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
  - sophia.migrate.attributes.INFO_MODULE
options:
  path:
    description: The main nginx configuration file (for example C(/etc/nginx/nginx.conf)) or one C(conf.d) file.
    type: path
    required: true
  prefix:
    description: Directory that relative C(include) paths are resolved against (default the directory of O(path)).
    type: path
  include_root:
    description:
      - Directory on the controller that holds a copy of the host's files; an absolute C(include /x/y.conf) is read
        from C(<include_root>/x/y.conf).
    type: path
  include_map:
    description:
      - Host directories mapped to controller directories for absolute C(include) paths (for example
        C(/etc/letsencrypt) to C(/srv/copy/letsencrypt)); the longest matching host directory wins, before
        O(include_root).
    type: dict
    default: {}
  hosts:
    description: Keep only routes of these host names (empty keeps all).
    type: list
    elements: str
    default: []
  fail_on_unsupported:
    description:
      - Fail when any directive is not translated, any host name or path is rejected, any C(include) is unresolved
        or any C(stream) proxy is found (the lists are in the failure result).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Read the routes of the Compose edge
  sophia.migrate.nginx_routes:
    path: /opt/sophia/nginx/nginx.conf
  register: edge

- name: Show what will not be carried over
  ansible.builtin.debug:
    var: edge.unsupported
  when: edge.unsupported | length > 0

- name: Use the routes for Ingress resources
  ansible.builtin.include_role:
    name: sophia.migrate.ingress_certs
  vars:
    ingress_certs_routes: "{{ edge.routes }}"
"""

RETURN = r"""
routes:
  description:
    - One route per host and location, sorted by host and path.
    - C(split_by) is the C(traffic_shift) splitter the location now proxies to (empty when it proxies directly).
  returned: always
  type: list
  elements: dict
  sample:
    - name: www-api-research
      host: www.sophia-intel.ai
      path: /api/research
      path_type: Prefix
      tls: true
      upstreams: ["mcp-research:8080"]
      upstream_name: mcp_research
      upstream_scheme: http
      upstream_path: ""
      websocket: false
      buffering: true
      client_max_body_size: 10m
      timeouts: {read: 300s, send: 300s, connect: 5s}
      source: {file: /etc/nginx/conf.d/sophia-www.conf, line: 44}
      split_by: "http://127.0.0.1:9102"
hosts:
  description: Host names that have at least one route.
  returned: always
  type: list
  elements: str
upstreams:
  description: C(upstream) blocks, name to list of C(host:port).
  returned: always
  type: dict
redirects:
  description:
    - Locations or servers that only redirect (for example HTTP to HTTPS); ingress controllers do this themselves.
  returned: always
  type: list
  elements: dict
handled:
  description: Locations served by the new platform in another way (ACME challenge paths, answered by cert-manager).
  returned: always
  type: list
  elements: dict
servers:
  description: Every C(server) block with its names, ports, TLS flag and certificate paths (for the certificate import).
  returned: always
  type: list
  elements: dict
unsupported:
  description:
    - Directives that are not translated, with C(file), C(line), C(directive), C(context) and sometimes C(reason).
  returned: always
  type: list
  elements: dict
  sample: [{file: /etc/nginx/conf.d/sophia-www.conf, line: 82, directive: "sub_filter http://localhost https://www...",
            context: "server www.sophia-intel.ai location /api/orchestrator"}]
streams:
  description:
    - TCP/UDP proxies of C(stream {}) blocks, which an Ingress cannot carry; each with C(file), C(line), C(listen),
      C(ports), C(protocol) (V(tcp) or V(udp)), C(proxy_pass), C(upstreams) and C(reason).
  returned: always
  type: list
  elements: dict
  sample: [{file: /etc/nginx/nginx.conf, line: 40, listen: ["5432"], ports: [5432], protocol: tcp,
            proxy_pass: postgres, upstreams: ["db:5432"], reason: "a TCP/UDP proxy (stream block) ..."}]
unresolved_includes:
  description:
    - C(include) directives that could not be read, with C(file), C(line), C(include) (as written), C(looked_for)
      (the controller path tried) and C(reason) (a missing absolute file, or a glob that matches no file).
  returned: always
  type: list
  elements: dict
  sample: [{file: /srv/nginx/conf.d/app.conf, line: 12, include: /etc/letsencrypt/options-ssl-nginx.conf,
            looked_for: /etc/letsencrypt/options-ssl-nginx.conf, reason: "no such file on the controller; ..."}]
rejected:
  description:
    - Server names, location paths and C(proxy_pass) targets that cannot be an Ingress host or path, so no route was
      made from them. Each names the C(file) and C(line) of the directive, the C(server) (its first name), the
      C(kind) (C(server_name), C(location) or C(proxy_pass)), the C(value) and the C(reason).
  returned: always
  type: list
  elements: dict
  sample: [{file: /etc/nginx/conf.d/sophia-www.conf, line: 3, server: "server www.sophia-intel.ai",
            kind: server_name, value: "~^(?<app>.+)\\.example\\.com$",
            reason: a regular-expression server_name has no Ingress host equivalent}]
"""

import json

from ansible_collections.sophia.migrate.plugins.module_utils import _nginx_parse, _nginx_routes
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule


def run(params: dict) -> dict:
    result = _nginx_routes.parse_routes(params["path"], params["prefix"], params["include_root"], params["include_map"])
    if params["hosts"]:
        wanted = {h.lower() for h in params["hosts"]}
        result["routes"] = [r for r in result["routes"] if r["host"] in wanted]
        result["hosts"] = [h for h in result["hosts"] if h in wanted]
    return {"changed": False, **result}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "prefix": {"type": "path"},
            "include_root": {"type": "path"},
            "include_map": {"type": "dict", "default": {}},
            "hosts": {"type": "list", "elements": "str", "default": []},
            "fail_on_unsupported": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    bad = [k for k, v in module.params["include_map"].items()
           if not str(k).startswith("/") or not isinstance(v, str) or not v]
    if bad:
        module.fail_json(msg="nginx_routes: option 'include_map': keys must be absolute host directories and values "
                             f"controller directories; not: {', '.join(json.dumps(str(k)) for k in bad)}")
    try:
        result = run(module.params)
    except _nginx_parse.NginxConfigError as exc:
        module.fail_json(msg=f"nginx_routes: option 'path': {exc}")
    for entry in result["rejected"]:
        module.warn(f"nginx_routes: {entry['file']}:{entry['line']} ({entry['server']}): {entry['kind']} "
                    f"{json.dumps(entry['value'])} is not carried over: {entry['reason']}")
    for entry in result["unresolved_includes"]:
        module.warn(f"nginx_routes: {entry['file']}:{entry['line']}: include {json.dumps(entry['include'])} not read "
                    f"({json.dumps(entry['looked_for'])}): {entry['reason']}")
    for entry in result["streams"]:
        module.warn(f"nginx_routes: {entry['file']}:{entry['line']}: stream proxy on {entry['protocol']} port(s) "
                    f"{', '.join(str(p) for p in entry['ports']) or '?'} to {json.dumps(entry['proxy_pass'])} is not "
                    "carried over by an Ingress")
    if module.params["fail_on_unsupported"] and (result["unsupported"] or result["rejected"]
                                                 or result["unresolved_includes"] or result["streams"]):
        module.fail_json(msg=f"nginx_routes: {len(result['unsupported'])} directive(s) are not translated "
                             f"(see 'unsupported'), {len(result['rejected'])} host name(s) or path(s) are "
                             f"rejected (see 'rejected'), {len(result['unresolved_includes'])} include(s) are "
                             f"unresolved (see 'unresolved_includes') and {len(result['streams'])} stream proxy(ies) "
                             "cannot be an Ingress (see 'streams'); fail_on_unsupported=true", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
