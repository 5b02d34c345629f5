"""Run a small play on localhost through ansible-playbook (integration tests of roles and task files).

The variables go in as a JSON file (``-e @vars.json``), so types survive; the interpreter is this venv's
Python, the configuration the repository's ansible.cfg, the output without colour.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import typing as t

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.dirname(sys.executable)


def run_play(workdir: t.Any, play: str, variables: dict[str, t.Any], check: bool = False,
             timeout: int = 300) -> subprocess.CompletedProcess:
    """Write ``play`` and ``variables`` under ``workdir`` and run them; return the finished process."""
    play_path, vars_path = os.path.join(str(workdir), "play.yml"), os.path.join(str(workdir), "vars.json")
    with open(play_path, "w") as handle:
        handle.write(play)
    with open(vars_path, "w") as handle:
        json.dump(variables, handle)
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", play_path, "-e", f"@{vars_path}",
            "-e", f"ansible_python_interpreter={sys.executable}", *(["--check", "--diff"] if check else [])]
    env = {**os.environ, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def role_play(role: str) -> str:
    """A play on localhost that runs one role of the collection."""
    return f"- hosts: localhost\n  connection: local\n  gather_facts: false\n  roles:\n    - sophia.migrate.{role}\n"


def changed(out: str) -> int:
    """``changed=`` of localhost in the recap."""
    match = re.search(r"^localhost\s*:\s*ok=\d+\s+changed=(\d+)", out, re.M)
    assert match, out[-3000:]
    return int(match.group(1))
