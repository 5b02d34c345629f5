"""ingress_certs' DNS check runs on the GPU host, where its nameservers are reached, with dnspython installed there.

Found on the staging lab (issue 19): the check was delegated to the controller, so ingress_certs_dns_nameservers
were queried from the controller. In staging the resolver (dnsmasq on the node's private address) is only reachable
from the node: from the controller the query left the machine and an unrelated server answered NXDOMAIN; in
production the check asks what the host's resolvers answer for the names the host serves, on the host.
"""

from __future__ import annotations

import os

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
ISSUANCE = os.path.join(ROOT, "roles", "ingress_certs", "tasks", "issuance.yml")


def _tasks() -> list[dict]:
    with open(ISSUANCE) as handle:
        return yaml.safe_load(handle)


def _index(tasks: list[dict], predicate) -> int:
    return next(n for n, task in enumerate(tasks) if predicate(task))


def test_the_dns_check_runs_on_the_host_not_the_controller():
    tasks = _tasks()
    check = tasks[_index(tasks, lambda t: "sophia.migrate.dns_check" in t)]
    assert check.get("delegate_to") in (None, "{{ inventory_hostname }}"), check


def test_dnspython_is_installed_on_the_host_before_the_check_by_host_python():
    tasks = _tasks()
    check_at = _index(tasks, lambda t: "sophia.migrate.dns_check" in t)
    install_at = _index(tasks, lambda t: (t.get("ansible.builtin.include_role") or {}).get("name")
                        == "sophia.migrate.host_python")
    install = tasks[install_at]
    assert install_at < check_at
    assert "dns" in install["vars"]["host_python_modules"]
    # installed only where the check runs
    assert install["when"] == tasks[check_at]["when"]
