"""One module process of the compose_to_k8s benchmark (run by bench_compose_to_k8s.py, not by make bench).

``python _compose_worker.py MODE FILE...`` imports what the module imports, then for each Compose file:

* ``parse``: ``yaml.safe_load`` of the file (the baseline: YAML parsing alone);
* ``module``: the module's ``main()`` with ``src=[FILE]`` and every other option at its default (so
  ``validate=true``), exactly as one task invocation runs it; the result is checked (not failed, validated);
* ``module-cold``: the same, but the per-process schema cache is emptied before each file, so each file pays
  what a fresh module process pays (the first objects of every kind load their schemas).

Prints ``{"seconds": ...}``: wall time from the first file to the last (interpreter start and imports excluded;
they are measured by the across-processes figure of the benchmark).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, ".ansible", "collections"))

import yaml  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_validate  # noqa: E402
from ansible_collections.sophia.migrate.plugins.modules import compose_to_k8s  # noqa: E402


def parse(path: str) -> None:
    with open(path, encoding="utf-8") as handle:
        if not isinstance(yaml.safe_load(handle), dict):
            raise SystemExit(f"{path}: not a mapping")


def module(path: str) -> None:
    out = io.StringIO()
    with patch_module_args({"src": [path]}), contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        compose_to_k8s.main()
    result = json.loads(out.getvalue())
    if result.get("failed") or not result.get("validation", {}).get("valid"):
        raise SystemExit(f"{path}: {result.get('msg') or result.get('validation')}")


def main(argv: list[str]) -> int:
    mode, paths = argv[1], argv[2:]
    clear = getattr(_k8s_validate, "clear_cache", lambda: None)
    step = {"parse": parse, "module": module, "module-cold": module}[mode]
    start = time.perf_counter()
    for path in paths:
        if mode == "module-cold":
            clear()
        step(path)
    print(json.dumps({"seconds": time.perf_counter() - start, "files": len(paths)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
