"""The handover's rules (handover_rules: what the boot unit writes and what the persistence check looks for) and
Phase 2D's refusal to retire the Compose stack while a port's handover is not persisted (handover_unpersisted)."""

from __future__ import annotations

import os
import subprocess

import jinja2
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sophia.migrate.plugins.filter.handover_rules import handover_rules
from ansible_collections.sophia.migrate.plugins.filter.handover_unpersisted import handover_unpersisted

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PRODUCTION = [{"port": 443, "destination": "192.222.51.223", "to": "192.222.51.223:30443"},
              {"port": 80, "destination": "192.222.51.223", "to": "192.222.51.223:30080"}]


def test_one_rule_per_port_and_chain_in_order_with_the_comment_the_role_gives():
    rules = handover_rules(PRODUCTION, ["PREROUTING", "OUTPUT"])
    assert [(r["port"], r["chain"]) for r in rules] == [(443, "PREROUTING"), (443, "OUTPUT"), (80, "PREROUTING"),
                                                        (80, "OUTPUT")]
    assert rules[0]["spec"] == ('-p tcp -d 192.222.51.223 --dport 443 -m comment --comment '
                                '"sophia.migrate handover 443" -j DNAT --to-destination 192.222.51.223:30443')
    assert "-d " not in handover_rules([{"port": "8443", "to": "127.0.0.1:1"}], ["OUTPUT"])[0]["spec"]


@pytest.mark.parametrize("item, chains, named", [
    ({"port": "443; reboot", "to": "a:1"}, ["OUTPUT"], "port must be a port number"),
    ({"port": 70000, "to": "a:1"}, ["OUTPUT"], "port must be a port number"),
    ({"port": True, "to": "a:1"}, ["OUTPUT"], "port must be a port number"),
    ({"port": 443, "to": "a:1 && rm -rf /"}, ["OUTPUT"], "to must be host:port"),
    ({"port": 443, "to": "a:99999"}, ["OUTPUT"], "the port of to"),
    ({"port": 443, "to": "a:1", "destination": "$(id)"}, ["OUTPUT"], "destination must be an address"),
    ({"to": "a:1"}, ["OUTPUT"], "has no 'port'"),
    ({"port": 443, "to": "a:1"}, ["output; id"], "is not a nat chain name"),
    ({"port": 443, "to": "a:1"}, "OUTPUT", "chains must be a non-empty list"),
    ("443", ["OUTPUT"], "must be a mapping"),
])
def test_a_value_that_would_reach_the_boot_units_shell_is_refused_by_name(item, chains, named):
    with pytest.raises(AnsibleFilterError, match=named):
        handover_rules([item], chains)


def test_the_unit_template_inserts_each_rule_only_when_missing_and_the_shell_parses_it(tmp_path):
    with open(os.path.join(ROOT, "roles", "traffic_shift", "templates", "handover.service.j2")) as handle:
        template = jinja2.Template(handle.read())
    rules = handover_rules(PRODUCTION, ["PREROUTING", "OUTPUT"])
    unit = template.render(traffic_shift_handover=PRODUCTION, _traffic_shift_handover_rules=rules)
    starts = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert len(starts) == 4
    for rule, start in zip(rules, starts, strict=True):
        assert f"-C {rule['chain']} {rule['spec']} 2>/dev/null || iptables -w -t nat -I {rule['chain']} 1 " \
               f"{rule['spec']}'" in start
        # what systemd passes to /bin/sh -c, parsed by sh -n (syntax only): the quotes around the comment hold
        script = start[len("/bin/sh -c '"):-1]
        assert subprocess.run(["sh", "-n", "-c", script], check=False).returncode == 0, script
    assert "After=network-online.target docker.service k3s.service" in unit and "WantedBy=multi-user.target" in unit


def _ledger(*entries):
    return {"entries": [{"step": step, "status": status, "data": data} for step, status, data in entries]}


def test_phase2d_refuses_each_port_not_handed_over_with_persisted_rules():
    unit = "sophia-migrate-handover.service"
    ledger = _ledger(("traffic/handover/443", "done", {"persisted": unit}),
                     ("traffic/handover/80", "done", {"persisted": False}))
    assert handover_unpersisted(ledger, [443]) == []
    assert handover_unpersisted(ledger, [443, 80, 8080]) == [
        "port 80: handed over but not persisted (no boot unit restores its DNAT rules)",
        "port 8080: no handover recorded"]
    # the latest record counts: a rollback after a persisted handover is not a handover
    later = _ledger(("traffic/handover/443", "done", {"persisted": unit}),
                    ("traffic/handover/443", "rolled_back", {"persisted": False}))
    assert handover_unpersisted(later, [443]) == ["port 443: the handover's latest record is 'rolled_back', not done"]


@pytest.mark.parametrize("ledger, ports", [([], [443]), ({"entries": {}}, [443]), ({"entries": []}, "443"),
                                           ({"entries": []}, ["https"])])
def test_bad_input_is_named(ledger, ports):
    with pytest.raises(AnsibleFilterError, match="handover_unpersisted"):
        handover_unpersisted(ledger, ports)
