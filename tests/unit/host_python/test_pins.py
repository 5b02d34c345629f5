"""host_python installs the same versions the collection is tested with (constraints.txt)."""

from __future__ import annotations

import os
import re

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def _constraints():
    pins = {}
    with open(os.path.join(ROOT, "constraints.txt")) as handle:
        for line in handle:
            match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
            if match:
                pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_every_pin_equals_constraints():
    with open(os.path.join(ROOT, "roles", "host_python", "vars", "main.yml")) as handle:
        pins = yaml.safe_load(handle)["_host_python_pins"]
    constraints = _constraints()
    for module, requirement in pins.items():
        name, version = requirement.split("==")
        assert constraints.get(name.lower()) == version, f"{module}: {requirement} vs constraints.txt"


def test_modules_the_roles_ask_for_are_pinned():
    with open(os.path.join(ROOT, "roles", "host_python", "vars", "main.yml")) as handle:
        pins = yaml.safe_load(handle)["_host_python_pins"]
    asked = set()
    for dirpath, _dirs, files in os.walk(os.path.join(ROOT, "roles")):
        for name in files:
            if name.endswith(".yml"):
                with open(os.path.join(dirpath, name)) as handle:
                    for match in re.finditer(r"host_python_modules:\s*\[([^\]]*)\]", handle.read()):
                        asked |= {m.strip() for m in match.group(1).split(",") if m.strip()}
    asked.discard("")
    assert asked and asked <= set(pins), asked - set(pins)
