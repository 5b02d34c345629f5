"""Phase 2D's port handover survives a reboot: traffic_shift writes, enables and checks a systemd unit that adds exactly
the handover's DNAT rules at boot, before any rule goes live; a unit that would not restore them stops the handover
with nothing handed over; the rollback removes the unit before the rules.

Real: systemd as PID 1 in a throwaway container (tests/support/remote_host.py, as the staging node), iptables from
Debian in the container's own network namespace, the role's tasks over the Docker connection. The reboot is a
`docker restart`: the container gets a fresh network namespace, so every rule made before it is gone unless something
adds it at boot. A control rule added by hand before each restart proves that (it must be gone afterwards).
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from support.remote_host import ansible_playbook, inventory, remote_host, run_in

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
UNIT = "sophia-migrate-handover.service"
PUBLIC = "192.0.2.10"  # TEST-NET-1: the rule only has to exist; nothing is sent to it
HANDOVER = [{"port": 8443, "destination": PUBLIC, "to": "127.0.0.1:30443"},
            {"port": 8080, "destination": PUBLIC, "to": "127.0.0.1:30080"}]
CONTROL = ["-p", "tcp", "-d", "192.0.2.99", "--dport", "9", "-m", "comment", "--comment", "control", "-j", "DNAT",
           "--to-destination", "127.0.0.1:9"]


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    work = tmp_path_factory.mktemp("handover-persist")
    with remote_host("handover") as host:
        code, out = run_in(host, ["sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
                                              "apt-get install -y -qq --no-install-recommends iptables >/dev/null"])
        assert code == 0, out
        host["work"] = str(work)
        host["inventory"] = inventory(str(work / "hosts.yml"), host, name="edge")
        with open(work / "play.yml", "w") as handle:
            handle.write("- hosts: edge\n  gather_facts: false\n  tasks:\n"
                         "    - ansible.builtin.include_role:\n        name: sophia.migrate.traffic_shift\n"
                         "        tasks_from: handover\n")
        yield host


def handover(host, state: str) -> tuple[int, str]:
    variables = {"traffic_shift_routes": [], "traffic_shift_handover_state": state, "traffic_shift_handover": HANDOVER,
                 "traffic_shift_handover_drain_timeout": 10,
                 "traffic_shift_ledger_path": os.path.join(host["work"], "ledger.json")}
    with open(os.path.join(host["work"], "vars.json"), "w") as handle:
        json.dump(variables, handle)
    res = ansible_playbook(["-i", host["inventory"], os.path.join(host["work"], "play.yml"),
                            "-e", f"@{host['work']}/vars.json"], ROOT)
    out = res.stdout + res.stderr
    assert "Module failed" not in out, out[-4000:]
    return res.returncode, out


def rules(host) -> list[str]:
    """The nat rules of the two chains the handover uses, as iptables -S prints them."""
    listed = []
    for chain in ("PREROUTING", "OUTPUT"):
        code, out = run_in(host, ["iptables", "-w", "-t", "nat", "-S", chain])
        assert code == 0, out
        listed += [line for line in out.splitlines() if line.startswith("-A")]
    return listed


def handover_rules(host) -> list[str]:
    return sorted(line for line in rules(host) if "sophia.migrate handover" in line)


def reboot(host) -> None:
    host["container"].restart(timeout=1)
    deadline = time.monotonic() + 90
    while True:
        _code, out = run_in(host, ["systemctl", "is-system-running"])
        if out.strip() in ("running", "degraded"):
            return
        assert time.monotonic() < deadline, f"systemd did not finish booting: {out}"
        time.sleep(0.5)


def listen(host) -> None:
    """The K3s side's ports answer (the role waits for them before it hands anything over)."""
    for port in (30443, 30080):
        run_in(host, ["systemd-run", f"--unit=fake-ingress-{port}", host["python"], "-m", "http.server", str(port),
                      "--bind", "127.0.0.1"])
    for port in (30443, 30080):
        deadline = time.monotonic() + 20
        while run_in(host, ["sh", "-c", f"ss -Hltn '( sport = :{port} )' | grep -q ."])[0] != 0:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.2)


def ledger(host) -> dict:
    path = os.path.join(host["work"], "ledger.json")
    if not os.path.exists(path):
        return {"entries": []}
    with open(path) as handle:
        return json.load(handle)


def test_a_unit_that_would_not_restore_the_rules_stops_the_handover_before_any_rule(edge):
    # an operator's drop-in that replaces the unit's commands: systemd would run /bin/true at boot
    dropin = f"/etc/systemd/system/{UNIT}.d"
    run_in(edge, ["sh", "-c", f"mkdir -p {dropin} && printf '[Service]\\nExecStart=\\nExecStart=/bin/true\\n' "
                              f"> {dropin}/override.conf && systemctl daemon-reload"])
    listen(edge)
    code, out = handover(edge, "present")
    assert code != 0
    assert f"the handover is not persisted in {UNIT}" in out and "4 rule(s) missing" in out, out[-3000:]
    assert handover_rules(edge) == []  # nothing handed over
    assert not [e for e in ledger(edge)["entries"] if e["step"].startswith("traffic/handover/")]
    # and nothing is left for the next boot either
    assert run_in(edge, ["test", "-e", f"/etc/systemd/system/{UNIT}"])[0] != 0
    run_in(edge, ["sh", "-c", f"rm -rf {dropin} && systemctl daemon-reload"])


def test_the_rules_come_back_after_a_reboot_exactly_once_and_a_rerun_changes_nothing(edge):
    listen(edge)
    code, out = handover(edge, "present")
    assert code == 0, out[-3000:]
    live = handover_rules(edge)
    assert len(live) == 4, live  # 2 ports x PREROUTING and OUTPUT
    assert run_in(edge, ["systemctl", "is-enabled", UNIT])[1].strip() == "enabled"
    done = {e["step"]: e["data"] for e in ledger(edge)["entries"] if e["status"] == "done"}
    assert done["traffic/handover/8443"]["persisted"] == UNIT and done["traffic/handover/8080"]["persisted"] == UNIT

    run_in(edge, ["iptables", "-w", "-t", "nat", "-A", "OUTPUT", *CONTROL])
    assert any("--comment control" in r for r in rules(edge))
    reboot(edge)
    after = rules(edge)
    assert not any("--comment control" in r for r in after), after  # the reboot reset netfilter
    assert handover_rules(edge) == live, (live, after)  # back, each once, as before the reboot
    # at the top of their chains (before anything else that could match the public ports)
    for chain in ("PREROUTING", "OUTPUT"):
        first = next(r for r in after if r.startswith(f"-A {chain} "))
        assert "sophia.migrate handover" in first, after

    listen(edge)
    code, out = handover(edge, "present")
    assert code == 0, out[-3000:]
    changed = re.search(r"^edge\s*:.*changed=(\d+)", out, re.M)
    assert changed and changed.group(1) == "0", out[-3000:]
    assert handover_rules(edge) == live


def test_the_rollback_removes_the_unit_first_and_a_reboot_brings_nothing_back(edge):
    code, out = handover(edge, "absent")
    assert code == 0, out[-3000:]
    assert handover_rules(edge) == []
    assert run_in(edge, ["test", "-e", f"/etc/systemd/system/{UNIT}"])[0] != 0
    assert run_in(edge, ["systemctl", "is-enabled", UNIT])[0] != 0  # no such unit
    reboot(edge)
    assert handover_rules(edge) == []
    last = {e["step"]: e for e in ledger(edge)["entries"]}
    assert last["traffic/handover/8443"]["status"] == "rolled_back"
