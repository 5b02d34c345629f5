"""Run an Ansible module's main() in-process and return its JSON result (unit tests)."""

from __future__ import annotations

import json
import typing as t

import pytest
from ansible.module_utils import _internal as module_internal
from ansible.module_utils.common import warnings as module_warnings
from ansible.module_utils.testing import patch_module_args


def run_module(module: t.Any, args: dict[str, t.Any], capsys: pytest.CaptureFixture[str],
               check_mode: bool = False) -> dict[str, t.Any]:
    """Call ``module.main()`` with ``args``; return the parsed result (``failed`` set on fail_json)."""
    if check_mode:
        args = {**args, "_ansible_check_mode": True}
    # Warnings and deprecations are process-wide in ansible-core; a module run in another process never sees
    # those of an earlier test's module (they would end up in this result, and in a result passed on as args).
    module_warnings._global_warnings.clear()
    module_warnings._global_deprecations.clear()
    # Importing controller code (filter plugins, the template engine) in the same test process flips ansible-core
    # into controller mode, where a module's warn() goes to the display instead of its result: run as a module.
    controller, module_internal.is_controller = module_internal.is_controller, False
    try:
        with patch_module_args(args), pytest.raises(SystemExit):
            module.main()
    finally:
        module_internal.is_controller = controller
    out = capsys.readouterr().out
    return json.loads(out)
