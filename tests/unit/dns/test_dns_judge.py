"""DNS preflight logic without a network: expectations, match modes, bad input."""

from __future__ import annotations

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _dns
from ansible_collections.sophia.migrate.plugins.modules import dns_check
from support.modules import run_module


def resolved(addresses=(), cname=(), errors=()):
    return {"addresses": list(addresses), "cname": list(cname), "cname_chain": [], "errors": list(errors)}


@pytest.mark.parametrize(("got", "match", "ok"), [
    (["192.0.2.1"], "all", True),
    (["192.0.2.1", "192.0.2.9"], "all", False),
    (["192.0.2.1", "192.0.2.9"], "any", True),
    (["192.0.2.9"], "any", False),
    ([], "all", False),
])
def test_judge_modes(got, match, ok):
    assert _dns.judge(resolved(got), {"192.0.2.1"}, set(), ["A"], match)[0] is ok


def test_errors_without_answer_are_mismatch():
    ok, reason = _dns.judge(resolved(errors=["A: timed out"]), {"192.0.2.1"}, set(), ["A"], "all")
    assert not ok and reason == "A: timed out"


def test_normalize_expected_splits_ips_and_names():
    addresses, names = _dns.normalize_expected(["2001:DB8::1", "192.0.2.1", "WWW.Example.ORG."])
    assert addresses == {"2001:db8::1", "192.0.2.1"} and names == {"www.example.org"}


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"record_types": ["MX"]}, "record_types"),
    ({"match": "most"}, "match"),
    ({"port": 0}, "port"),
    ({"nameservers": ["dns.example"]}, "nameservers"),
])
def test_bad_input_names_the_option(kwargs, fragment):
    with pytest.raises(_dns.DnsCheckError, match=fragment):
        _dns.check_hosts(["www.example.org"], ["192.0.2.1"], **{"nameservers": ["127.0.0.1"], **kwargs})


def test_module_reports_bad_nameserver_cleanly(capsys):
    result = run_module(dns_check, {"hosts": ["www.example.org"], "nameservers": ["not-an-ip"]}, capsys)
    assert result["failed"] and "nameservers" in result["msg"]


def test_module_rejects_unknown_record_type(capsys):
    result = run_module(dns_check, {"hosts": ["www.example.org"], "record_types": ["TXT"]}, capsys)
    assert result["failed"] and "record_types" in result["msg"]
