"""One module process of the compose_to_k8s benchmark (run by bench_compose_to_k8s.py, not by make bench).

``python _compose_worker.py MODE FILE...`` imports what the module imports, then for each Compose file:

* ``parse``: the file parsed as the module parses it (PyYAML's safe loader on libyaml's parser when PyYAML has
  it), nothing else (the baseline: YAML parsing alone);
* ``module``: the module's ``main()`` with ``src=[FILE]`` and every other option at its default (so
  ``validate=true``), exactly as one task invocation runs it; the result is checked (not failed, validated);
* ``module-cold``: the same, but the per-process schema cache is emptied before each file, so each file pays
  what a fresh module process pays (the first objects of every kind load their schemas, from the disk cache of
  built schemas in $SOPHIA_MIGRATE_SCHEMA_CACHE that an earlier process filled);
* ``module-first``: as ``module-cold``, and the disk cache is emptied too before each file: what the very first
  run on a machine pays (kubernetes-validate's schema files parsed, the kinds built and written to the cache);
* ``check``: which files the module translates with its default options (prints ``{"ok": [...], "refused":
  {file: message}}``): a file it refuses cleanly (services only in profiles, a variable with no value) is left
  out of the timed runs, where it would only measure the refusal.

Prints ``{"seconds": ...}``: wall time from the first file to the last (interpreter start and imports excluded;
they are measured by the across-processes figure of the benchmark).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, ".ansible", "collections"))

import yaml  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_validate  # noqa: E402
from ansible_collections.sophia.migrate.plugins.modules import compose_to_k8s  # noqa: E402

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse(path: str) -> None:
    with open(path, encoding="utf-8") as handle:
        if not isinstance(yaml.load(handle, Loader=LOADER), dict):  # noqa: S506 - a safe loader
            raise SystemExit(f"{path}: not a mapping")


def run(path: str) -> dict:
    out = io.StringIO()
    with patch_module_args({"src": [path]}), contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        compose_to_k8s.main()
    return json.loads(out.getvalue())


def module(path: str) -> None:
    result = run(path)
    if result.get("failed") or not result.get("validation", {}).get("valid"):
        raise SystemExit(f"{path}: {result.get('msg') or result.get('validation')}")


def main(argv: list[str]) -> int:
    mode, paths = argv[1], argv[2:]
    if mode == "check":
        results = {path: run(path) for path in paths}
        print(json.dumps({"ok": [p for p, r in results.items() if not r.get("failed")],
                          "refused": {p: r["msg"] for p, r in results.items() if r.get("failed")}}))
        return 0
    clear = getattr(_k8s_validate, "clear_cache", lambda: None)
    step = {"parse": parse, "module": module, "module-cold": module, "module-first": module}[mode]
    disk = _k8s_validate.cache_dir() if mode == "module-first" else None
    start = time.perf_counter()
    for path in paths:
        if mode in ("module-cold", "module-first"):
            clear()
        if disk:
            shutil.rmtree(disk, ignore_errors=True)
        step(path)
    print(json.dumps({"seconds": time.perf_counter() - start, "files": len(paths)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
