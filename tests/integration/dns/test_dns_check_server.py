"""dns_check against a real DNS server on a loopback UDP port (match, mismatch, CNAME, NXDOMAIN, timeout)."""

from __future__ import annotations

import socket
import time

import pytest
from standins.dns_zone import DnsZoneServer

from ansible_collections.sophia.migrate.plugins.module_utils import _dns
from ansible_collections.sophia.migrate.plugins.modules import dns_check
from support.modules import run_module

ZONE = {
    "www.sophia-intel.ai": {"A": ["127.0.0.10"], "AAAA": ["fd00::10"]},
    "api.sophia-intel.ai": {"A": ["127.0.0.10", "127.0.0.99"]},
    "docs.sophia-intel.ai": {"CNAME": "www.sophia-intel.ai"},
    "old.sophia-intel.ai": {"A": ["127.0.0.20"]},
}


@pytest.fixture
def zone():
    with DnsZoneServer(ZONE) as server:
        yield server


def test_match_through_real_server(zone, capsys):
    result = run_module(dns_check, {"hosts": ["www.sophia-intel.ai"], "expected_addresses": ["127.0.0.10", "fd00::10"],
                                    "nameservers": ["127.0.0.1"], "port": zone.port}, capsys)
    assert result["matched"] is True and result["mismatched"] == []
    host = result["results"][0]
    assert host["addresses"] == ["127.0.0.10", "fd00::10"]
    assert ("www.sophia-intel.ai", "A") in zone.queries and ("www.sophia-intel.ai", "AAAA") in zone.queries


def test_mismatch_stray_ipv6_and_extra_address(zone, capsys):
    result = run_module(dns_check, {"hosts": ["www.sophia-intel.ai", "api.sophia-intel.ai"],
                                    "expected_addresses": ["127.0.0.10"], "nameservers": ["127.0.0.1"],
                                    "port": zone.port}, capsys)
    assert result["matched"] is False
    assert result["mismatched"] == ["www.sophia-intel.ai", "api.sophia-intel.ai"]
    assert "fd00::10" in result["results"][0]["reason"]
    assert "127.0.0.99" in result["results"][1]["reason"]


def test_match_any_accepts_partial(zone):
    result = _dns.check_hosts(["api.sophia-intel.ai"], ["127.0.0.10"], ["A"], ["127.0.0.1"], zone.port, match="any")
    assert result["matched"] is True


def test_cname_followed_and_reported(zone):
    result = _dns.check_hosts(["docs.sophia-intel.ai"], ["127.0.0.10"], ["A"], ["127.0.0.1"], zone.port)
    host = result["results"][0]
    assert host["match"] is True and host["cname_chain"] == ["www.sophia-intel.ai"]
    result = _dns.check_hosts(["docs.sophia-intel.ai"], ["www.sophia-intel.ai"], ["CNAME"], ["127.0.0.1"], zone.port)
    assert result["matched"] is True and result["results"][0]["cname"] == ["www.sophia-intel.ai"]
    result = _dns.check_hosts(["docs.sophia-intel.ai"], ["other.example"], ["CNAME"], ["127.0.0.1"], zone.port)
    assert result["matched"] is False and "not one of" in result["results"][0]["reason"]


def test_nxdomain_is_a_mismatch_with_reason(zone):
    result = _dns.check_hosts(["missing.sophia-intel.ai"], ["127.0.0.10"], ["A", "AAAA"], ["127.0.0.1"], zone.port)
    assert result["matched"] is False and "NXDOMAIN" in result["results"][0]["reason"]


def test_fail_on_mismatch_names_host_and_address(zone, capsys):
    result = run_module(dns_check, {"hosts": ["old.sophia-intel.ai"], "expected_addresses": ["127.0.0.10"],
                                    "nameservers": ["127.0.0.1"], "port": zone.port, "fail_on_mismatch": True}, capsys)
    assert result["failed"] is True
    assert "old.sophia-intel.ai" in result["msg"] and "127.0.0.20" in result["msg"]


def test_silent_server_times_out_quickly():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        start = time.monotonic()
        result = _dns.check_hosts(["www.sophia-intel.ai"], ["127.0.0.10"], ["A"], ["127.0.0.1"],
                                  silent.getsockname()[1], timeout=0.5)
        assert time.monotonic() - start < 10
        assert result["matched"] is False and "timed out" in result["results"][0]["reason"]
    finally:
        silent.close()
