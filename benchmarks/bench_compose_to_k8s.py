"""Benchmark: translate 100 Compose files into Kubernetes manifests and print files/s.

Standalone: ``python benchmarks/bench_compose_to_k8s.py``. The 100 files are the test corpus
(tests/fixtures/compose: real-world files, the Compose Specification fixture, the Sophia stack),
cycled. Figures: load+translate only, plus translate+strict validation (kubernetes-validate), and
the baseline of loading the YAML alone measured in the same run, so the ratios say what translation
and validation cost on top of parsing.
"""

from __future__ import annotations

import glob
import os
import sys
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, ".ansible", "collections"))

import yaml  # noqa: E402

from ansible_collections.sophia.migrate.plugins.module_utils import _compose, _k8s_validate  # noqa: E402

N = 100


def files() -> list[str]:
    base = os.path.join(ROOT, "tests", "fixtures", "compose")
    found = sorted(glob.glob(os.path.join(base, "corpus", "*.yaml")))
    found += [os.path.join(base, "spec", "compose.yaml"), os.path.join(base, "sophia", "docker-compose.yml")]
    return [found[i % len(found)] for i in range(N)]


def run(label: str, fn, paths: list[str]) -> float:
    start = time.perf_counter()
    count = 0
    for path in paths:
        count += fn(path)
    elapsed = time.perf_counter() - start
    print(f"{label:<34} {len(paths)} files in {elapsed:6.2f} s  {len(paths) / elapsed:8.1f} files/s  ({count} objects)")
    return elapsed


def parse_only(path: str) -> int:
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return len(data.get("services") or {})


def translate(path: str) -> int:
    out = _compose.translate(_compose.load_project([path], profiles=["*"]))
    return sum(len(v) for v in out["objects"].values())


SCHEMAS = _k8s_validate.Schemas()


def translate_validate(path: str) -> int:
    out = _compose.translate(_compose.load_project([path], profiles=["*"]))
    docs = [(path, d) for v in out["objects"].values() for d in v]
    summary = _k8s_validate.validate_documents(docs, SCHEMAS)
    if summary["errors"]:
        raise SystemExit(f"{path}: {summary['errors'][:3]}")
    return len(docs)


def main() -> None:
    paths = files()
    print(f"{len(set(paths))} distinct Compose files, cycled to {len(paths)}")
    translate(paths[0])
    translate_validate(paths[0])  # warm the schema cache
    base = run("baseline: YAML parse only", parse_only, paths)
    tr = run("load + translate", translate, paths)
    tv = run("load + translate + strict validate", translate_validate, paths)
    print(f"ratio translate / parse: {tr / base:.1f}x   translate+validate / translate: {tv / tr:.1f}x")


if __name__ == "__main__":
    main()
