"""Verify the k3s_gpu host preparation on the converged systemd container."""

import pytest


@pytest.mark.parametrize("pkg", ["curl", "iptables", "conntrack", "socat"])
def test_packages_installed(host, pkg):
    assert host.package(pkg).is_installed


def test_modules_load_file(host):
    f = host.file("/etc/modules-load.d/k3s.conf")
    assert f.exists and f.mode == 0o644
    lines = [x for x in f.content_string.splitlines() if x and not x.startswith("#")]
    assert lines == ["overlay", "br_netfilter"]


def test_sysctl_file(host):
    f = host.file("/etc/sysctl.d/90-k3s.conf")
    assert f.user == "root"
    assert "net.ipv4.ip_forward = 1" in f.content_string
    assert "fs.inotify.max_user_watches = 524288" in f.content_string


def test_systemd_is_pid1(host):
    assert host.process.get(pid=1).comm == "systemd"


def test_k3s_config_dir(host):
    assert host.file("/etc/rancher/k3s").is_directory
