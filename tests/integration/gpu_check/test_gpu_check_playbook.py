"""playbooks/gpu-check.yml on this machine, which has no NVIDIA GPU: it stops cleanly, says why, and exits 0."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("nvidia_smi", ["nvidia-smi", "/nonexistent/nvidia-smi"])
def test_gpu_check_skips_cleanly_without_a_gpu(nvidia_smi, tmp_path):
    # this machine has no GPU; the second case makes that so on any machine
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"gpu_check_nvidia_smi={nvidia_smi}",
         "playbooks/gpu-check.yml"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    out = " ".join(proc.stdout.split())
    assert proc.returncode == 0, out[-3000:]
    assert "gpu-check skipped on localhost: no NVIDIA GPU (nvidia-smi found none" in out
    assert "Nothing to check." in out
    assert "plan GPU placement" not in out  # it stopped before the plan and the runtime checks
    assert "failed=0" in out
    if nvidia_smi == "nvidia-smi":
        assert shutil.which("nvidia-smi") is None, "a machine with nvidia-smi: only the second case applies"
