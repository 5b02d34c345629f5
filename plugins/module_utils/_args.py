"""AnsibleModule with the input checks every module of the collection needs beyond argument_spec types.

- An option with suboptions given a list that holds a number or null (``source: [1]``) fails with the usual
  "must be of type dict" message; ansible-core 2.19 itself raises TypeError for it (in ``set_fallbacks``).
- After validation, whatever the module (suboptions and list elements included):
  a path option cannot hold a NUL character; a float option must be finite (not NaN or infinity);
  an option named ``timeout`` or ``connect_timeout`` must be more than 0 and at most 7 days of seconds; one named
  ``*_timeout``, ``*_interval``, ``interval``, ``initial_delay``, ``backoff``, ``duration`` or ``window`` at most
  7 days (the module checks its lower bound); ``retries`` at most 100; ``port`` / ``*_port`` from 1 to 65535.
  Larger values would overflow (``timestamp out of range``, ``int too large to convert to float``) or wait forever.

Each failure is a clean ``fail_json`` naming the option (``probes[0].timeout``) and the problem.
"""

from __future__ import annotations

import math
import typing as t

from ansible.module_utils import basic

MAX_SECONDS = 7 * 24 * 3600
MAX_RETRIES = 100
SECONDS = ("interval", "initial_delay", "backoff", "duration", "window")


class AnsibleModule(basic.AnsibleModule):
    """``ansible.module_utils.basic.AnsibleModule`` plus the checks in this file's docstring."""

    def _load_params(self) -> None:
        super()._load_params()
        _shield_suboptions(self.argument_spec, self.params)

    def __init__(self, *args: t.Any, failure_note: str = "", **kwargs: t.Any) -> None:
        """``failure_note`` ends the message of a failure found here (flyio_app: "nothing was deleted")."""
        super().__init__(*args, **kwargs)
        problems = list(_problems(self.argument_spec, self.params, ""))
        if problems:
            self.fail_json(msg="; ".join(problems[:5] + ([failure_note] if failure_note else [])), changed=False)


def _shield_suboptions(spec: dict[str, t.Any], params: t.Any) -> None:
    """Turn a number or null where ansible-core expects dicts of suboptions into text, which core refuses cleanly."""
    if not isinstance(params, dict):
        return
    for name, option in spec.items():
        if not option.get("options") or name not in params:
            continue
        value = params[name]
        if isinstance(value, list):
            params[name] = value = [v if isinstance(v, (dict, str)) else repr(v) for v in value]
        for element in value if isinstance(value, list) else [value]:
            _shield_suboptions(option["options"], element)


def _problems(spec: dict[str, t.Any], params: t.Any, prefix: str) -> t.Iterator[str]:
    if not isinstance(params, dict):
        return
    for name, option in spec.items():
        value = params.get(name)
        if value is None:
            continue
        where = f"{prefix}{name}"
        kind = option.get("type", "str")
        if option.get("options"):
            elements = value if isinstance(value, list) else [value]
            for index, element in enumerate(elements):
                sub = f"{where}[{index}]." if isinstance(value, list) else f"{where}."
                yield from _problems(option["options"], element, sub)
            continue
        if kind == "list":
            kind = option.get("elements", "str")
            values = value if isinstance(value, list) else [value]
        else:
            values = [value]
        for item in values:
            problem = _problem(name, kind, item)
            if problem:
                yield f"option '{where}': {problem}"
                break


def _problem(name: str, kind: str, value: t.Any) -> str | None:
    if kind == "path" and isinstance(value, str) and "\x00" in value:
        return "holds a NUL character"
    if kind not in ("float", "int") or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if name in ("timeout", "connect_timeout"):
        if not 0 < value <= MAX_SECONDS:
            return f"must be a positive number of seconds, at most {MAX_SECONDS}, got {value}"
    elif name.endswith("_timeout") or name.endswith("_interval") or name in SECONDS:
        if value > MAX_SECONDS:
            return f"must be at most {MAX_SECONDS} seconds, got {value}"
    elif name == "retries":
        if value > MAX_RETRIES:
            return f"must be at most {MAX_RETRIES}, got {value}"
    elif (name == "port" or name.endswith("_port")) and not 1 <= value <= 65535:
        return f"must be a port number from 1 to 65535, got {value}"
    return None
