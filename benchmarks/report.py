"""Print one table of every benchmark result in benchmarks/results.json (written by benchmarks/_harness.py).

Columns: name, size, baseline and subject (p90; as a rate when the benchmark has one), ratio (subject cost /
baseline cost at p90), growth between its two sizes (flagged when superlinear), goal, PASS/FAIL, the 1-minute load
average and when it ran.
Two shapes of record are read: the shared harness's rows (``name``, ``size``, ``baseline``, ``subject``, ...), and
a record with ``sizes`` whose entries each carry their printed ``line`` (``name | size | baseline | subject |
ratio | goal | PASS/FAIL``: bench_redis_migrate.py, bench_qdrant_snapshot.py); each size is a row.
Run: ``.venv/bin/python benchmarks/report.py [results.json]``. Always exits 0 when the file is readable:
a FAIL is a measurement, not an error.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import RESULTS, fmt_side, load

HEAD = ("benchmark", "size", "baseline", "subject", "ratio", "growth", "goal", "result", "load", "when")


def _harness_row(row: dict) -> tuple[str, ...]:
    g = row.get("growth")
    grown = "" if not g else (f"{g['cost_ratio']:.1f}x/{g['size_ratio']:g}x"
                              + (" SUPERLINEAR" if g["superlinear"] else ""))
    verdict = "" if "passed" not in row else ("PASS" if row["passed"] else "FAIL")
    return (row["name"], str(row["size"]), fmt_side(row, "baseline"), fmt_side(row, "subject"),
            f"{row['ratio']:.2f}x", grown, row.get("goal", ""), verdict,
            str(row.get("load", "")), str(row.get("when", "")).replace("T", " ")[:16])


def _sized_rows(key: str, record: dict) -> list[tuple[str, ...]]:
    """Rows of a record with ``sizes`` (one per size, from its printed ``line``), smallest size first; a record
    kept under another key than its benchmark's (``--name redis_migrate_before``) says so after the name."""
    out = []
    when = str(record.get("measured_at", "")).replace("T", " ")[:16]
    for _key, fig in sorted(record["sizes"].items(), key=lambda kv: (len(kv[0]), kv[0])):
        parts = [p.strip() for p in fig["line"].split("|")]
        if len(parts) != 7:  # name, size, baseline, subject, ratio, goal, verdict
            raise ValueError(fig["line"])
        name, size, base, subj, ratio, goal, verdict = parts
        if not name.startswith(key):
            name = f"{name} ({key})"
        out.append((name, size, base, subj, ratio, "", goal, verdict, str(fig.get("load", "")), when))
    return out


def rows(results: dict) -> list[tuple[str, ...]]:
    out = []

    def order(key: str) -> tuple:
        row = results[key] if isinstance(results[key], dict) else {}
        return (str(row.get("name", key)), row.get("size") if isinstance(row.get("size"), int) else 0, key)

    for key in sorted(results, key=order):
        row = results[key]
        try:
            if isinstance(row.get("sizes"), dict):
                out.extend(_sized_rows(key, row))
            else:
                out.append(_harness_row(row))
        except (KeyError, TypeError, AttributeError, ValueError):
            out.append((key, "", "", "", "", "", "", "unreadable", "", ""))
    return out


def table(results: dict) -> str:
    body = rows(results)
    widths = [max(len(r[i]) for r in [HEAD, *body]) for i in range(len(HEAD))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [HEAD, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else RESULTS
    results = load(path)
    if not results:
        print(f"no benchmark results in {path}")
        return 0
    print(table(results))
    body = rows(results)
    failed = sum(1 for r in body if r[7] == "FAIL")
    print(f"{len(body)} results, {failed} FAIL (p90 of alternating rounds; ratio = subject / baseline cost)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
