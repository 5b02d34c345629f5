"""Benchmark: compose_to_k8s as a playbook runs it (a module process, default options, so validate=true).

Data: the Compose corpus (tests/fixtures/compose/corpus and /work/shared/corpus/compose when present: real
files from public repositories, 1 to 13 objects each), de-duplicated by content, without the files the module
refuses with its default options (listed: services only in profiles, a variable with no value), cycled to the size.
Sizes: 10 and 100 files; the growth ratio between them is printed (flagged when superlinear).

"files/s" is Compose files translated (and validated) per second. Three figures, each against its baseline
measured in the same run, alternating rounds, p90 of 5 rounds:

* ``compose_to_k8s (module process)`` -- one module process (benchmarks/_compose_worker.py) calls the module's
  ``main()`` once per file (one invocation per Compose project, ``src=[file]``, other options default).
  Schemas are loaded once per process and kept. Baseline: the same process kind parsing the files as the
  module parses them (PyYAML's safe loader on libyaml) and nothing else. Goal: >= 100 files/s.
* ``compose_to_k8s (cold cache)`` -- the same, with the in-process schema cache emptied before each file: each
  invocation pays the schema loading a fresh module process pays on a machine where the module ran before (the
  built schemas read from the disk cache, ``SOPHIA_MIGRATE_SCHEMA_CACHE``; the benchmark fills its own
  temporary one before the timed rounds). Goal: >= 100 files/s.
* ``compose_to_k8s (first run on a machine)`` -- the same with the disk cache emptied too before each file:
  kubernetes-validate's schema files parsed and each kind built and written, once per machine. No goal.
* ``compose_to_k8s (process per file)`` -- the realistic playbook loop: one ``python compose_to_k8s.py args``
  process per file. Baseline: one ``python`` process per file that only parses it (PyYAML, libyaml). No goal:
  the interpreter and ansible-core imports alone take longer than 10 ms, so 100 files/s cannot be reached
  this way; the ratio says what the module costs per invocation on top of a bare Python process. Sizes 5 and
  10 (``--process-sizes``) to keep ``make bench`` short.

Run: ``.venv/bin/python benchmarks/bench_compose_to_k8s.py [--rounds 5] [--sizes 10,100] [--process-sizes 5,10]``.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from _harness import Goal, compare, growth  # noqa: E402

CORPUS_DIRS = [os.path.join(ROOT, "tests", "fixtures", "compose", "corpus"), "/work/shared/corpus/compose"]
WORKER = os.path.join(HERE, "_compose_worker.py")
MODULE = os.path.join(ROOT, "plugins", "modules", "compose_to_k8s.py")
SCHEMA_CACHE = tempfile.mkdtemp(prefix="sophia-bench-schemas-")  # removed at the end of main()
os.environ["SOPHIA_MIGRATE_SCHEMA_CACHE"] = SCHEMA_CACHE  # the workers and module processes inherit it
ENV = {**os.environ, "PYTHONPATH": os.path.join(ROOT, ".ansible", "collections")}
GOAL = Goal(">=", 100, on="rate")
PARSE_ONE = ("import sys, yaml; yaml.load(open(sys.argv[1], encoding='utf-8'), "
             "Loader=getattr(yaml, 'CSafeLoader', yaml.SafeLoader))")


def corpus() -> list[str]:
    seen: dict[str, str] = {}
    for directory in CORPUS_DIRS:
        for path in sorted(glob.glob(os.path.join(directory, "*.y*ml"))):
            with open(path, "rb") as handle:
                seen.setdefault(hashlib.sha256(handle.read()).hexdigest(), path)
    if not seen:
        raise SystemExit("no Compose corpus found")
    return sorted(seen.values(), key=os.path.basename)


def translatable(files: list[str]) -> list[str]:
    out = subprocess.run([sys.executable, WORKER, "check", *files], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"worker check failed: {out.stdout[-2000:]}{out.stderr[-2000:]}")
    checked = json.loads(out.stdout)
    for path, msg in checked["refused"].items():
        print(f"left out (refused with the default options): {os.path.basename(path)}: {msg[:160]}")
    if not checked["ok"]:
        raise SystemExit("no Compose file of the corpus translates with the default options")
    return checked["ok"]


def cycled(files: list[str], n: int) -> list[str]:
    return [files[i % len(files)] for i in range(n)]


def worker(mode: str, paths: list[str]):
    def one_round() -> float:
        out = subprocess.run([sys.executable, WORKER, mode, *paths], capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(f"worker {mode} failed: {out.stdout[-2000:]}{out.stderr[-2000:]}")
        return json.loads(out.stdout)["seconds"]
    return one_round


def per_file_processes(paths: list[str], work: str):
    args = []
    for i, path in enumerate(paths):
        name = os.path.join(work, f"args{i}.json")
        with open(name, "w", encoding="utf-8") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": {"src": [path]}}, handle)
        args.append(name)

    def module_round() -> None:
        for name in args:
            out = subprocess.run([sys.executable, MODULE, name], env=ENV, capture_output=True, text=True, check=False)
            result = json.loads(out.stdout or "{}")
            if out.returncode != 0 or not result.get("validation", {}).get("valid"):
                raise SystemExit(f"module failed on {name}: {out.stdout[-2000:]}{out.stderr[-2000:]}")

    def parse_round() -> None:
        for path in paths:
            subprocess.run([sys.executable, "-c", PARSE_ONE, path], check=True)
    return parse_round, module_round


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="10,100")
    parser.add_argument("--process-sizes", default="5,10")
    opts = parser.parse_args()
    files = corpus()
    print(f"{len(files)} distinct Compose files from {', '.join(d for d in CORPUS_DIRS if os.path.isdir(d))}")
    try:
        files = translatable(files)  # also fills the disk cache of built schemas for every kind of the corpus
        print(f"{len(files)} of them translate with the default options")
        for label, mode, goal in (("compose_to_k8s (module process)", "module", GOAL),
                                  ("compose_to_k8s (cold cache)", "module-cold", GOAL),
                                  ("compose_to_k8s (first run on a machine)", "module-first", None)):
            rows = []
            for n in (int(s) for s in opts.sizes.split(",")):
                paths = cycled(files, n)
                rows.append(compare(label, n, worker("parse", paths), worker(mode, paths), rounds=opts.rounds,
                                    rate="files/s", goal=goal))
            growth(rows[0], rows[-1])
            if mode == "module-first":
                translatable(files)  # the next rows find the disk cache filled again
        per_process(files, opts)
    finally:
        shutil.rmtree(SCHEMA_CACHE, ignore_errors=True)
    return 0


def per_process(files: list[str], opts: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as work:
        rows = []
        for n in (int(s) for s in opts.process_sizes.split(",")):
            parse_round, module_round = per_file_processes(cycled(files, n), work)
            rows.append(compare("compose_to_k8s (process per file)", n, parse_round, module_round,
                                rounds=opts.rounds, rate="files/s"))
        growth(rows[0], rows[-1])


if __name__ == "__main__":
    sys.exit(main())
