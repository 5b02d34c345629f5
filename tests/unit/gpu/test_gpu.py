"""Unit tests for _gpu (nvidia-smi parsing, GPU placement) and the gpu_facts / gpu_plan modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _gpu
from ansible_collections.sophia.migrate.plugins.modules import gpu_facts, gpu_plan
from support.modules import run_module

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "gpu"


def fx(name: str) -> str:
    return (FIX / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(("fixture", "count", "name", "mem", "driver"), [
    ("a10.csv", 1, "NVIDIA A10", 23028, "535.129.03"),
    ("a100_mig.csv", 2, "NVIDIA A100-SXM4-40GB", 40960, "550.54.15"),
    ("h100.csv", 4, "NVIDIA H100 80GB HBM3", 81559, "550.90.07"),
    ("rtx_a6000.csv", 1, "NVIDIA RTX A6000", 49140, "535.183.01"),
])
def test_parse_models(fixture: str, count: int, name: str, mem: int, driver: str) -> None:
    gpus = _gpu.parse_query_csv(fx(fixture))
    assert len(gpus) == count
    assert [g["index"] for g in gpus] == list(range(count))
    assert gpus[0]["name"] == name
    assert gpus[0]["memory_mib"] == mem
    assert gpus[0]["driver_version"] == driver
    assert all(g["uuid"].startswith("GPU-") for g in gpus)


def test_not_applicable_mig_is_not_enabled() -> None:
    g = _gpu.parse_query_csv(fx("a10.csv"))[0]
    assert g["mig_mode"] == "N/A"
    assert g["mig_enabled"] is False


def test_mig_devices_attached() -> None:
    gpus = _gpu.parse_query_csv(fx("a100_mig.csv"))
    _gpu.attach_mig_devices(gpus, fx("a100_mig.L.txt"))
    assert gpus[0]["mig_enabled"] is True and gpus[0]["mig_mode"] == "Enabled"
    assert [d["profile"] for d in gpus[0]["mig_devices"]] == ["3g.20gb", "3g.20gb"]
    assert gpus[0]["mig_devices"][1]["uuid"].startswith("MIG-")
    assert gpus[1]["mig_enabled"] is False and gpus[1]["mig_devices"] == []


def test_mixed_models() -> None:
    gpus = _gpu.parse_query_csv(fx("mixed.csv"))
    assert [g["name"] for g in gpus] == ["NVIDIA A10", "NVIDIA RTX A6000"]


def test_no_devices_is_empty() -> None:
    assert _gpu.parse_query_csv(fx("none.csv")) == []
    assert _gpu.parse_query_csv("") == []


def test_bad_line_names_line() -> None:
    with pytest.raises(ValueError, match="line 1"):
        _gpu.parse_query_csv("0, GPU-x, A10\n")


def test_fallbacks() -> None:
    assert _gpu.parse_list(fx("a10.L.txt"))[0]["name"] == "NVIDIA A10"
    assert _gpu.parse_driver_version(fx("proc-driver-version.txt")) == "535.129.03"
    assert _gpu.parse_cuda_version(fx("nvidia-smi-banner.txt")) == "12.2"
    assert _gpu.count_lspci_nvidia(fx("lspci.txt")) == 2  # the audio function is not counted


def test_plan_dedicated_default_requests() -> None:
    p = _gpu.plan(_gpu.parse_query_csv(fx("h100.csv")))
    assert p["mode"] == "dedicated"
    assert p["time_slicing_replicas"] == 1
    assert p["device_plugin_config"] == {}
    assert p["services"] == {s: {"gpus": 1, "resource": "nvidia.com/gpu", "shared": False}
                             for s in ("mcp-agents", "mcp-context", "mcp-research")}


def test_plan_too_few_gpus_time_slices() -> None:
    p = _gpu.plan(_gpu.parse_query_csv(fx("a10.csv")))
    assert p["mode"] == "time-slicing"
    assert p["time_slicing_replicas"] == 3
    assert all(s["shared"] for s in p["services"].values())
    ts = p["device_plugin_config"]["sharing"]["timeSlicing"]
    assert p["device_plugin_config"]["version"] == "v1"
    assert ts["resources"] == [{"name": "nvidia.com/gpu", "replicas": 3}]


def test_plan_mixed_two_gpus_three_requests() -> None:
    p = _gpu.plan(_gpu.parse_query_csv(fx("mixed.csv")))
    assert p["mode"] == "time-slicing" and p["time_slicing_replicas"] == 2


def test_plan_refusals_have_numbers() -> None:
    with pytest.raises(_gpu.GpuPlanError, match=r"3 GPU.*no GPU"):
        _gpu.plan([])
    with pytest.raises(_gpu.GpuPlanError, match=r"requests 2 GPU.*only 1"):
        _gpu.plan([{}], {"big": 2})
    with pytest.raises(_gpu.GpuPlanError, match="time-slicing is disabled"):
        _gpu.plan([{}], None, allow_time_slicing=False)
    with pytest.raises(_gpu.GpuPlanError, match="needs 10 replicas"):
        _gpu.plan([{}], {f"s{i}": 1 for i in range(10)})
    with pytest.raises(_gpu.GpuPlanError, match="non-negative"):
        _gpu.plan([{}], {"x": -1})


def test_plan_none() -> None:
    assert _gpu.plan([], {})["mode"] == "none"


def test_gpu_facts_module_input(capsys: pytest.CaptureFixture[str]) -> None:
    r = run_module(gpu_facts, {"query_output": fx("a100_mig.csv"), "list_output": fx("a100_mig.L.txt")}, capsys,
                   check_mode=True)
    assert r["changed"] is False
    assert r["gpu_facts"]["count"] == 2
    assert r["gpu_facts"]["source"] == "input"
    assert len(r["gpu_facts"]["gpus"][0]["mig_devices"]) == 2


def test_gpu_facts_module_no_gpu_host(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    r = run_module(gpu_facts, {"nvidia_smi": str(tmp_path / "missing-nvidia-smi")}, capsys)
    assert "failed" not in r
    assert r["gpu_facts"]["gpus"] == [] and r["gpu_facts"]["count"] == 0


def test_gpu_facts_module_runs_binary(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"  # test double printing the recorded H100 output
    fake.write_text(f"#!/bin/sh\ncase \"$1\" in --query-gpu=*) cat {FIX / 'h100.csv'};; -L) ;; "
                    f"*) cat {FIX / 'nvidia-smi-banner.txt'};; esac\n", encoding="utf-8")
    fake.chmod(0o755)
    r = run_module(gpu_facts, {"nvidia_smi": str(fake)}, capsys)
    assert r["gpu_facts"]["count"] == 4 and r["gpu_facts"]["source"] == "nvidia-smi"
    assert r["gpu_facts"]["cuda_version"] == "12.2"


def test_gpu_facts_module_bad_output_fails(capsys: pytest.CaptureFixture[str]) -> None:
    r = run_module(gpu_facts, {"query_output": "garbage"}, capsys)
    assert r["failed"] is True and "gpu_facts" in r["msg"]


def test_gpu_plan_module(capsys: pytest.CaptureFixture[str]) -> None:
    gpus = _gpu.parse_query_csv(fx("h100.csv"))
    r = run_module(gpu_plan, {"gpus": gpus}, capsys, check_mode=True)
    assert r["plan"]["mode"] == "dedicated"
    r = run_module(gpu_plan, {"gpus": gpus[:1], "requests": {"a": 1, "b": 1}}, capsys)
    assert r["plan"]["mode"] == "time-slicing" and r["plan"]["time_slicing_replicas"] == 2
    r = run_module(gpu_plan, {"gpus": [], "requests": {"a": 1}}, capsys)
    assert r["failed"] is True and "no GPU" in r["msg"]
    r = run_module(gpu_plan, {"gpus": gpus, "requests": {"a": "x"}}, capsys)
    assert r["failed"] is True and "requests" in r["msg"]
