#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_project_info
short_description: Discover Docker Compose projects (v1 and v2) through the Docker API
version_added: 0.1.0
description:
  - Lists Compose projects from the labels Compose puts on containers, volumes and networks
    (C(com.docker.compose.project), C(.service), C(.config-hash), C(.project.working_dir),
    C(.project.config_files)), so it works for Compose v1 (C(docker-compose)) and v2 (C(docker compose)) alike
    and reports what actually runs rather than what a file says.
  - Per service, its containers with state and health, image, published ports, networks, mounts
    (named volumes and bind mounts with their sizes), restart policy and the B(names) of environment
    variables. Values of environment variables are never returned.
  - Read-only.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
  - sophia.migrate.attributes.INFO_MODULE
requirements:
  - docker (Python library)
  - PyYAML (reads the project's Compose files for RV(project.not_created); without it every service named in
    O(services) must have containers)
options:
  project:
    description: Only this project. When it does not exist the module fails and lists the projects found.
    type: str
  services:
    description:
      - With O(project), fail unless each of these services is in it, either with containers or declared in the
        project's Compose files (read on this host) and never created, as a service behind a profile that was
        never enabled. Such a service is listed in RV(project.not_created). Any other name fails, naming it.
    type: list
    elements: str
  docker_host:
    description: Docker daemon URL. Defaults to C(DOCKER_HOST) or the local socket.
    type: str
  sizes:
    description: Measure named volumes (Docker's disk usage) and bind mounts (walk of the host path).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: What does the Compose host run?
  sophia.migrate.compose_project_info:
  register: compose

- name: The Sophia project, failing early if a service we plan to retire is missing
  sophia.migrate.compose_project_info:
    project: sophia
    services: [mcp-research, mcp-context, redis]
  register: sophia

- name: Named volumes and their sizes
  ansible.builtin.debug:
    msg: "{{ sophia.project.volumes | dict2items | map(attribute='value') | map(attribute='size_bytes') | list }}"
"""

RETURN = r"""
projects:
  description: Every project found (or only O(project)), keyed by name.
  returned: always
  type: dict
project:
  description: The project named by O(project).
  returned: when O(project) is given
  type: dict
  contains:
    working_dir:
      description: Directory Compose ran in.
      type: str
    config_files:
      description: Compose files of the project.
      type: list
      elements: str
    services:
      description: Services keyed by name, each with C(containers), C(images), C(state), C(running).
      type: dict
    volumes:
      description: Named volumes keyed by full name, with C(size_bytes), C(mountpoint) and C(used_by).
      type: dict
    networks:
      description: Networks of the project.
      type: list
      elements: str
    not_created:
      description:
        - Services the project's Compose files declare that have no container (for example behind a profile never
          enabled). Names only; nothing runs for them.
      type: list
      elements: str
    unreadable_config_files:
      description: Compose files of the project that could not be read or parsed on this host.
      type: list
      elements: str
"""

import urllib.parse

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import _docker_compose as dc
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule
from ansible_collections.sophia.migrate.plugins.module_utils._http import redact_url


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "project": {"type": "str"},
            # no default: required_by would otherwise see it always set and demand a project
            "services": {"type": "list", "elements": "str"},
            "docker_host": {"type": "str"},
            "sizes": {"type": "bool", "default": True},
        },
        required_by={"services": "project"},
        supports_check_mode=True,
    )
    if not dc.HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"))
    p = module.params
    if p["docker_host"]:
        try:  # docker-py parses it with urllib: a malformed URL (an unclosed IPv6 bracket) raises ValueError
            urllib.parse.urlsplit(p["docker_host"]).port  # noqa: B018 - a bad port raises ValueError too
        except ValueError as exc:
            module.fail_json(msg=f"compose_project_info: option 'docker_host' is not a valid URL ({exc}): "
                                 f"{redact_url(p['docker_host'])!r}")
    try:
        projects = dc.discover(dc.client(p["docker_host"]), p["project"], p["sizes"])
        result = {"changed": False, "projects": projects}
        if p["project"]:
            result["project"] = dc.require_project(projects, p["project"])
            dc.mark_not_created(result["project"])
            dc.require_services(result["project"], p["services"] or [])
    except dc.ComposeInfoError as exc:
        module.fail_json(msg=f"compose_project_info: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
