# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: endpoint_problems
short_description: What is wrong with the endpoint of a data_migration Redis or Qdrant option
version_added: 0.1.0
description:
  - Checks the C(endpoint) of a C(data_migration_redis) or C(data_migration_qdrant) mapping before anything is
    written, and returns one message per problem, each naming the bad key (empty list when all is well or when
    there is no endpoint).
  - An endpoint has C(network), C(alias), C(source_container), C(target_container) (non-empty strings) and an
    optional C(forward) with C(host) (required), C(port) (required, 1-65535), C(image) and C(listen_port) (1-65535).
  - With C(forward), C(target_container) is the forwarder the role creates, so it must differ from
    C(source_container).
author:
  - Sophia Platform Team (@sophia-ai)
options:
  _input:
    description: The C(data_migration_redis) or C(data_migration_qdrant) mapping.
    type: dict
    required: true
  name:
    description: The variable name used in the messages.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Refuse a malformed endpoint before anything is written
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join('; ') }}"
  vars:
    problems: "{{ data_migration_redis | sophia.migrate.endpoint_problems('data_migration_redis') }}"
"""

RETURN = r"""
_value:
  description: Messages, each naming the key at fault (for example C(data_migration_redis.endpoint.forward.port)).
  type: list
  elements: str
"""

from collections.abc import Mapping

ENDPOINT_KEYS = ("network", "alias", "source_container", "target_container")
FORWARD_KEYS = ("host", "port", "image", "listen_port")


def _port(value):
    """The port as an int when it is one (an int or a string of digits, as Jinja may render it), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        port = value
    elif isinstance(value, str) and value.strip().isdigit():
        port = int(value.strip())
    else:
        return None
    return port if 1 <= port <= 65535 else None


def _text(value):
    return isinstance(value, str) and value.strip() != ""


def endpoint_problems(options, name):
    if not isinstance(options, Mapping) or "endpoint" not in options:
        return []
    key = f"{name}.endpoint"
    endpoint = options["endpoint"]
    if not isinstance(endpoint, Mapping):
        return [f"{key} must be a mapping ({', '.join(ENDPOINT_KEYS)}, optional forward), not {endpoint!r}"]
    problems = [f"{key}.{k} is not a known key" for k in endpoint if k not in (*ENDPOINT_KEYS, "forward")]
    problems += [f"{key}.{k} is required (a non-empty string)" for k in ENDPOINT_KEYS if not _text(endpoint.get(k))]
    if "forward" not in endpoint:
        return problems
    forward = endpoint["forward"]
    fkey = f"{key}.forward"
    if not isinstance(forward, Mapping):
        return [*problems, f"{fkey} must be a mapping (host, port, optional image and listen_port), not {forward!r}"]
    problems += [f"{fkey}.{k} is not a known key" for k in forward if k not in FORWARD_KEYS]
    if not _text(forward.get("host")):
        problems.append(f"{fkey}.host is required (the address of the K3s node the NodePort listens on)")
    if "port" not in forward:
        problems.append(f"{fkey}.port is required (the K3s NodePort, 1-65535)")
    elif _port(forward["port"]) is None:
        problems.append(f"{fkey}.port must be a port number 1-65535, not {forward['port']!r}")
    if "listen_port" in forward and _port(forward["listen_port"]) is None:
        problems.append(f"{fkey}.listen_port must be a port number 1-65535, not {forward['listen_port']!r}")
    if "image" in forward and not _text(forward["image"]):
        problems.append(f"{fkey}.image must be a non-empty image reference, not {forward['image']!r}")
    if _text(endpoint.get("target_container")) and endpoint.get("target_container") == endpoint.get("source_container"):
        problems.append(
            f"{key}.target_container names the forwarder the role creates; it must differ from source_container "
            f"({endpoint['source_container']})"
        )
    return problems


class FilterModule:
    def filters(self):
        return {"endpoint_problems": endpoint_problems}
