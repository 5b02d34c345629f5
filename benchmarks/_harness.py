"""Shared benchmark harness: baseline and subject measured in the same run, alternating rounds, p90, goal.

API (everything a ``benchmarks/bench_*.py`` needs)::

    from _harness import compare, growth, record

    small = compare("compose_to_k8s", size=10, baseline=parse_10, subject=module_10,
                    rounds=5, rate="files/s", goal=Goal(">=", 100, on="rate"))
    large = compare("compose_to_k8s", size=100, baseline=parse_100, subject=module_100,
                    rate="files/s", goal=Goal(">=", 100, on="rate"))
    growth(small, large)          # prints and stores the growth ratio, flags superlinear growth

* ``baseline`` and ``subject`` are zero-argument callables, each doing ONE round. A round's cost is its wall
  time in seconds, unless the callable returns a number: then that number is the cost (lower is better: its own
  timing in seconds, a p99 latency in ms, ...; say which with ``unit=``).
* Rounds alternate baseline, subject, baseline, subject, ... (``rounds`` >= 5 each, after ``warmup`` rounds
  of each that are not counted), so drift on a busy machine hits both alike. Reported: p50 and p90 of each
  side's round costs (p90 = the pessimistic side; never a best-of) and ``ratio`` = subject p90 / baseline p90
  (how many times the subject costs the baseline). With ``rate="files/s"`` the costs are seconds per round of
  ``size`` units and the rates ``size / p90`` are printed as well.
* ``Goal(op, value, on="rate"|"subject"|"ratio")``: PASS when ``<on> <op> <value>`` holds at p90. A FAIL is a
  measurement: the benchmark still exits 0 (``make bench`` fails only when a benchmark crashes).
* ``compare`` prints one line and calls ``record(f"{name} [{size}]", row)``; ``growth`` adds the growth ratio
  to the larger size's row. ``record`` read-modify-writes ``benchmarks/results.json`` under a lock (other
  benchmarks write their own keys concurrently; keys it did not write are kept). ``benchmarks/report.py``
  prints the table of all of them. ``BENCH_RESULTS`` overrides the file's path.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import tempfile
import time
import typing as t
from dataclasses import dataclass

RESULTS = os.environ.get("BENCH_RESULTS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json")
# Growth above (size ratio x this) is flagged superlinear: round-to-round noise on a shared 2-core machine.
SUPERLINEAR_TOLERANCE = 1.3


def percentile(values: t.Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class Goal:
    """``on`` (``rate``, ``subject`` or ``ratio``, taken at p90) must satisfy ``op value``."""

    op: str
    value: float
    on: str = "rate"

    def __post_init__(self) -> None:
        if self.op not in (">=", "<=") or self.on not in ("rate", "subject", "ratio"):
            raise ValueError(f"bad goal {self}")

    def text(self, unit: str) -> str:
        what = {"rate": "", "subject": "", "ratio": "ratio "}[self.on]
        suffix = "x" if self.on == "ratio" else f" {unit}"
        return f"{what}{self.op} {self.value:g}{suffix}"

    def met(self, measured: float) -> bool:
        return measured >= self.value if self.op == ">=" else measured <= self.value


def _round(fn: t.Callable[[], t.Any]) -> float:
    start = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - start
    return float(out) if isinstance(out, (int, float)) and not isinstance(out, bool) else elapsed


def alternate(baseline: t.Callable[[], t.Any], subject: t.Callable[[], t.Any], rounds: int = 5,
              warmup: int = 1) -> tuple[list[float], list[float]]:
    """Costs of ``rounds`` alternating rounds of each (after ``warmup`` uncounted rounds of each)."""
    if rounds < 5:
        raise ValueError("at least 5 rounds: a p90 of fewer says nothing")
    base: list[float] = []
    subj: list[float] = []
    for i in range(warmup + rounds):
        b, s = _round(baseline), _round(subject)
        if i >= warmup:
            base.append(b)
            subj.append(s)
    return base, subj


def summarize(name: str, size: int, base: list[float], subj: list[float], unit: str = "s",
              rate: str | None = None, goal: Goal | None = None) -> dict[str, t.Any]:
    """The row of one benchmark at one size, from the round costs of both sides."""
    row: dict[str, t.Any] = {"name": name, "size": size, "unit": unit, "rounds": len(subj),
                             "baseline": {"p50": percentile(base, 50), "p90": percentile(base, 90), "rounds": base},
                             "subject": {"p50": percentile(subj, 50), "p90": percentile(subj, 90), "rounds": subj}}
    row["ratio"] = row["subject"]["p90"] / row["baseline"]["p90"] if row["baseline"]["p90"] else math.inf
    if rate:
        row["rate_unit"] = rate
        for side in ("baseline", "subject"):
            p90 = row[side]["p90"]
            row[side]["rate"] = size / p90 if p90 else math.inf
    if goal is not None:
        measured = {"rate": row["subject"].get("rate"), "subject": row["subject"]["p90"],
                    "ratio": row["ratio"]}[goal.on]
        if measured is None:
            raise ValueError("a rate goal needs rate=")
        row["goal"] = goal.text(rate if goal.on == "rate" else unit)
        row["passed"] = goal.met(measured)
    row["when"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    row["load"] = round(os.getloadavg()[0], 2)  # 1-minute load average at the end: a busy machine shows here
    return row


def fmt_side(row: dict[str, t.Any], side: str) -> str:
    data = row[side]
    if "rate" in data:
        return f"{data['rate']:.1f} {row['rate_unit']}"
    return f"{data['p90']:.3g} {row['unit']}"


def line(row: dict[str, t.Any]) -> str:
    verdict = "" if "passed" not in row else ("PASS" if row["passed"] else "FAIL")
    goal = f"goal {row['goal']}: {verdict}" if verdict else "no goal"
    return (f"{row['name']} [{row['size']}]: baseline {fmt_side(row, 'baseline')}, subject {fmt_side(row, 'subject')} "
            f"(p90 of {row['rounds']} alternating rounds), ratio {row['ratio']:.2f}x, {goal} (load {row['load']})")


def compare(name: str, size: int, baseline: t.Callable[[], t.Any], subject: t.Callable[[], t.Any], *,
            rounds: int = 5, warmup: int = 1, unit: str = "s", rate: str | None = None, goal: Goal | None = None,
            extra: dict[str, t.Any] | None = None, save: bool = True) -> dict[str, t.Any]:
    """Alternate rounds of both, print the line, record the row (key ``"<name> [<size>]"``) and return it."""
    base, subj = alternate(baseline, subject, rounds, warmup)
    row = summarize(name, size, base, subj, unit, rate, goal)
    if extra:
        row.update(extra)
    print(line(row), flush=True)
    if save:
        record(f"{name} [{size}]", row)
    return row


def growth_ratio(small: dict[str, t.Any], large: dict[str, t.Any]) -> dict[str, t.Any]:
    """Subject p90 cost growth between two sizes; superlinear when it outgrows the size ratio (with tolerance)."""
    size_ratio = large["size"] / small["size"]
    ratio = large["subject"]["p90"] / small["subject"]["p90"]
    return {"from": small["size"], "to": large["size"], "size_ratio": size_ratio, "cost_ratio": ratio,
            "superlinear": ratio > size_ratio * SUPERLINEAR_TOLERANCE}


def growth(small: dict[str, t.Any], large: dict[str, t.Any], save: bool = True) -> dict[str, t.Any]:
    """Print the growth ratio, add it to the larger size's row and record that row again."""
    g = growth_ratio(small, large)
    flag = ("SUPERLINEAR" if g["superlinear"] else "sublinear" if g["cost_ratio"] < g["size_ratio"]
            else f"linear (within {SUPERLINEAR_TOLERANCE}x)")
    print(f"{large['name']} growth {g['from']} -> {g['to']} ({g['size_ratio']:g}x size): "
          f"cost {g['cost_ratio']:.2f}x, {flag}", flush=True)
    large["growth"] = g
    if save:
        record(f"{large['name']} [{large['size']}]", large)
    return g


@contextlib.contextmanager
def _locked(path: str) -> t.Iterator[None]:
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def load(path: str | None = None) -> dict[str, t.Any]:
    path = path or RESULTS
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def record(name: str, data: dict[str, t.Any], path: str | None = None) -> None:
    """Set ``name`` in the results file to ``data``, keeping every other key (locked read-modify-write)."""
    path = path or RESULTS
    with _locked(path):
        results = load(path)
        results[name] = data
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".results.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1, sort_keys=True)
            handle.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
