"""GPU discovery (nvidia-smi parsing) and GPU placement planning for K3s.

Pure functions, no Ansible imports, so they are unit-testable on recorded outputs.
"""

from __future__ import annotations

import re
import typing as t

QUERY_FIELDS = ("index", "uuid", "name", "memory.total", "driver_version", "mig.mode.current")
QUERY_ARGS = ["--query-gpu=" + ",".join(QUERY_FIELDS), "--format=csv,noheader,nounits"]
DEFAULT_REQUESTS: dict[str, int] = {"mcp-research": 1, "mcp-context": 1, "mcp-agents": 1}
RESOURCE = "nvidia.com/gpu"
_NA = {"[n/a]", "n/a", "[not supported]", "not supported", ""}


class GpuPlanError(ValueError):
    """Requests cannot be placed on the GPUs found."""


def _val(raw: str) -> str | None:
    v = raw.strip()
    return None if v.lower() in _NA else v


def parse_query_csv(text: str) -> list[dict[str, t.Any]]:
    """Parse ``nvidia-smi --query-gpu=<QUERY_FIELDS> --format=csv,noheader,nounits`` output."""
    gpus: list[dict[str, t.Any]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.lower().startswith(("no devices were found", "nvidia-smi has failed")):
            return []
        cols = [c.strip() for c in line.split(",")]
        if len(cols) != len(QUERY_FIELDS):
            raise ValueError(f"nvidia-smi line {lineno}: expected {len(QUERY_FIELDS)} columns, "
                             f"got {len(cols)}: {line!r}")
        index, uuid, name, mem, driver, mig = (_val(c) for c in cols)
        if index is None or not index.isdigit():
            raise ValueError(f"nvidia-smi line {lineno}: bad index {cols[0]!r}")
        gpus.append({
            "index": int(index),
            "uuid": uuid,
            "name": name,
            "memory_mib": int(mem) if mem and mem.isdigit() else None,
            "driver_version": driver,
            "mig_mode": mig or "N/A",
            "mig_enabled": (mig or "").lower() == "enabled",
        })
    return gpus


_L_RE = re.compile(r"^GPU (\d+): (.+?) \(UUID: ([^)]+)\)\s*$")
_L_MIG_RE = re.compile(r"^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: ([^)]+)\)\s*$")


def parse_list(text: str) -> list[dict[str, t.Any]]:
    """Parse ``nvidia-smi -L`` (fallback): GPUs plus their MIG devices, without memory/driver."""
    gpus: list[dict[str, t.Any]] = []
    for line in text.splitlines():
        m = _L_RE.match(line)
        if m:
            gpus.append({"index": int(m.group(1)), "uuid": m.group(3), "name": m.group(2), "memory_mib": None,
                         "driver_version": None, "mig_mode": "N/A", "mig_enabled": False, "mig_devices": []})
            continue
        mm = _L_MIG_RE.match(line)
        if mm and gpus:
            gpus[-1]["mig_devices"].append({"profile": mm.group(1), "device": int(mm.group(2)), "uuid": mm.group(3)})
            gpus[-1]["mig_enabled"] = True
            gpus[-1]["mig_mode"] = "Enabled"
    return gpus


def attach_mig_devices(gpus: list[dict[str, t.Any]], list_text: str) -> None:
    """Add MIG devices from ``nvidia-smi -L`` to GPUs parsed from the CSV query (matched by UUID)."""
    by_uuid = {g["uuid"]: g for g in parse_list(list_text)}
    for g in gpus:
        g["mig_devices"] = by_uuid.get(g["uuid"], {}).get("mig_devices", [])


_DRV_RE = re.compile(r"Kernel Module\s+(?:for\s+\S+\s+)?(\d+\.\d+(?:\.\d+)?)")


def parse_driver_version(text: str) -> str | None:
    """Driver version from ``/proc/driver/nvidia/version``."""
    m = _DRV_RE.search(text)
    return m.group(1) if m else None


_CUDA_RE = re.compile(r"CUDA Version:\s*(\d+\.\d+)")


def parse_cuda_version(text: str) -> str | None:
    """CUDA version from the banner of plain ``nvidia-smi``."""
    m = _CUDA_RE.search(text)
    return m.group(1) if m else None


def count_lspci_nvidia(text: str) -> int:
    """Count NVIDIA 3D/VGA controllers in ``lspci -nn`` output (vendor 10de), the last fallback."""
    return sum(1 for line in text.splitlines()
               if "[10de:" in line and re.search(r"(3D|VGA compatible) controller", line))


def plan(gpus: list[dict[str, t.Any]], requests: dict[str, int] | None = None, allow_time_slicing: bool = True,
         max_replicas: int = 8) -> dict[str, t.Any]:
    """Place GPU requests: dedicated GPUs when enough exist, time-slicing replicas when not.

    MIG-enabled GPUs are counted as one schedulable GPU each (the plan uses the whole-GPU resource).
    Raises GpuPlanError with the numbers when the requests cannot fit.
    """
    reqs = dict(DEFAULT_REQUESTS if requests is None else requests)
    for name, n in reqs.items():
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise GpuPlanError(f"service {name!r}: GPU request must be a non-negative integer, got {n!r}")
    reqs = {k: v for k, v in sorted(reqs.items()) if v > 0}
    wanted = sum(reqs.values())
    physical = len(gpus)
    base = {"gpus_found": physical, "gpus_requested": wanted}
    if wanted == 0:
        return {**base, "mode": "none", "time_slicing_replicas": 1, "services": {}, "device_plugin_config": {}}
    if physical == 0:
        raise GpuPlanError(f"{wanted} GPU(s) requested by {len(reqs)} service(s) but no GPU was found")
    if wanted <= physical:
        services = {k: {"gpus": v, "resource": RESOURCE, "shared": False} for k, v in reqs.items()}
        return {**base, "mode": "dedicated", "time_slicing_replicas": 1, "services": services,
                "device_plugin_config": {}}
    biggest = max(reqs.values())
    if biggest > physical:
        raise GpuPlanError(f"a service requests {biggest} GPU(s) but only {physical} GPU(s) exist; "
                           "time-slicing cannot give one pod more GPUs than the node has")
    if not allow_time_slicing:
        raise GpuPlanError(f"{wanted} GPU(s) requested but only {physical} found and time-slicing is disabled")
    replicas = -(-wanted // physical)
    if replicas > max_replicas:
        raise GpuPlanError(f"{wanted} GPU(s) requested on {physical} GPU(s) needs {replicas} replicas per GPU, "
                           f"more than the maximum {max_replicas}")
    services = {k: {"gpus": v, "resource": RESOURCE, "shared": True} for k, v in reqs.items()}
    config = {"version": "v1", "flags": {"migStrategy": "none"},
              "sharing": {"timeSlicing": {"renameByDefault": False, "failRequestsGreaterThanOne": False,
                                          "resources": [{"name": RESOURCE, "replicas": replicas}]}}}
    return {**base, "mode": "time-slicing", "time_slicing_replicas": replicas, "services": services,
            "device_plugin_config": config}
