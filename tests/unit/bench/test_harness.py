"""The benchmark harness: percentile/ratio/goal/growth maths, and results.json merges without losing keys."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "..", "benchmarks")
sys.path.insert(0, os.path.abspath(BENCH))

import _harness as h  # noqa: E402
import report  # noqa: E402


def test_percentile_interpolates_between_ranks():
    values = [10.0, 1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0, 5.0]  # order must not matter
    assert h.percentile(values, 50) == pytest.approx(5.5)
    assert h.percentile(values, 90) == pytest.approx(9.1)
    assert h.percentile(values, 100) == 10.0
    assert h.percentile([1.0, 2.0, 3.0, 4.0, 100.0], 90) == pytest.approx(61.6)  # not a best-of: the slow round shows
    with pytest.raises(ValueError):
        h.percentile([], 90)


def test_summary_ratio_rate_and_goal():
    base = [0.10, 0.10, 0.10, 0.10, 0.20]  # p90 0.16
    subj = [0.40, 0.40, 0.40, 0.40, 0.80]  # p90 0.64
    row = h.summarize("x", 100, base, subj, rate="files/s", goal=h.Goal(">=", 100))
    assert row["baseline"]["p90"] == pytest.approx(0.16)
    assert row["subject"]["p50"] == pytest.approx(0.40)
    assert row["ratio"] == pytest.approx(4.0)
    assert row["subject"]["rate"] == pytest.approx(100 / 0.64)
    assert row["passed"] is True and row["goal"] == ">= 100 files/s"
    slow = h.summarize("x", 50, base, subj, rate="files/s", goal=h.Goal(">=", 100))
    assert slow["subject"]["rate"] == pytest.approx(50 / 0.64) and slow["passed"] is False
    assert h.summarize("x", 1, base, subj, goal=h.Goal("<=", 3, on="ratio"))["passed"] is False
    assert h.summarize("x", 1, base, subj, goal=h.Goal("<=", 0.7, on="subject"))["passed"] is True


def test_rounds_alternate_and_use_returned_costs():
    calls = []
    costs = iter(range(100))

    def side(name):
        def fn():
            calls.append(name)
            return float(next(costs))
        return fn

    base, subj = h.alternate(side("b"), side("s"), rounds=5, warmup=1)
    assert calls == ["b", "s"] * 6
    assert base == [2.0, 4.0, 6.0, 8.0, 10.0] and subj == [3.0, 5.0, 7.0, 9.0, 11.0]
    with pytest.raises(ValueError):
        h.alternate(side("b"), side("s"), rounds=3)


def test_growth_flags_superlinear():
    def row(size, p90):
        return {"name": "g", "size": size, "subject": {"p90": p90}}

    linear = h.growth_ratio(row(10, 0.1), row(100, 1.0))
    assert linear["size_ratio"] == 10 and linear["cost_ratio"] == pytest.approx(10) and not linear["superlinear"]
    assert not h.growth_ratio(row(10, 0.5), row(100, 1.0))["superlinear"]  # fixed cost amortised: sublinear
    quadratic = h.growth_ratio(row(10, 0.1), row(100, 10.0))
    assert quadratic["cost_ratio"] == pytest.approx(100) and quadratic["superlinear"]


def _writer(path: str, prefix: str) -> None:
    for i in range(40):
        h.record(f"{prefix}{i}", {"i": i}, path)


def test_record_keeps_keys_of_concurrent_writers(tmp_path):
    path = str(tmp_path / "results.json")
    h.record("someone else's", {"kept": True}, path)
    procs = [multiprocessing.get_context("fork").Process(target=_writer, args=(path, p)) for p in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    assert data["someone else's"] == {"kept": True}
    assert sorted(data) == sorted(["someone else's"] + [f"{p}{i}" for p in "ab" for i in range(40)])
    h.record("a0", {"i": "new"}, path)  # a rerun replaces its own key only
    assert h.load(path)["a0"] == {"i": "new"} and len(h.load(path)) == 81


def test_report_table_has_every_row(tmp_path, capsys):
    path = str(tmp_path / "results.json")
    small = h.summarize("bench", 10, [1.0] * 5, [2.0] * 5, rate="files/s", goal=h.Goal(">=", 100))
    large = h.summarize("bench", 100, [1.0] * 5, [30.0] * 5, rate="files/s", goal=h.Goal(">=", 100))
    large["growth"] = h.growth_ratio(small, large)
    h.record("bench [10]", small, path)
    h.record("bench [100]", large, path)
    assert report.main(["report.py", path]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["benchmark", "size", "baseline"]
    assert out[2].split()[:4] == ["bench", "10", "10.0", "files/s"] and "FAIL" in out[2]
    assert "15.0x/10x SUPERLINEAR" in out[3] and "FAIL" in out[3]
    assert out[-1].startswith("2 results, 2 FAIL")


def test_report_reads_records_with_sizes_and_counts_each_row(tmp_path, capsys):
    # bench_redis_migrate / bench_qdrant_snapshot keep one record with a printed line per size
    path = str(tmp_path / "results.json")
    h.record("bench [10]", h.summarize("bench", 10, [1.0] * 5, [2.0] * 5, rate="files/s", goal=h.Goal(">=", 1)), path)
    sized = {"measured_at": "2026-01-02T03:04:05Z", "passed": False, "sizes": {
        "1000000": {"line": "redis replicate vs replica (p90) | 1M keys | 8.5s | 7.6s | 0.90x | <= 1.10x | PASS"},
        "100000": {"line": "redis replicate vs replica (p90) | 100k keys | 1.1s | 3.3s | 2.86x | <= 1.10x | FAIL"}}}
    h.record("redis", sized, path)
    h.record("redis_before", sized, path)
    assert report.main(["report.py", path]) == 0
    out = capsys.readouterr().out.splitlines()
    body = out[2:-1]
    assert len(body) == 5 and not any("unreadable" in r for r in body)
    assert body[1].split("  ")[0] == "redis replicate vs replica (p90)" and "100k keys" in body[1] and "FAIL" in body[1]
    assert "1M keys" in body[2] and "0.90x" in body[2] and "PASS" in body[2] and "2026-01-02 03:04" in body[2]
    assert body[3].startswith("redis replicate vs replica (p90) (redis_before)")
    assert out[-1].startswith("5 results, 2 FAIL")
