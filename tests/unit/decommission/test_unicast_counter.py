"""The idle observation counts TCP/UDP from outside, not ARP/ND/ICMP chatter or loopback."""

from __future__ import annotations

import os

from ansible_collections.sophia.migrate.plugins.module_utils import _docker_compose as dc

DEV = """Inter-|   Receive |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets
    lo: {lo_bytes} {lo} 0 0 0 0 0 0 0 0 0 0 0 0 0 0
  eth0: 9999 {eth} 0 0 0 0 0 0 0 0 0 0 0 0 0 0
"""
SNMP = """Ip: Forwarding DefaultTTL InReceives InHdrErrors
Ip: 1 64 {ip} 0
Icmp: InMsgs InErrors
Icmp: {icmp} 0
Tcp: RtoAlgorithm RtoMin InSegs OutSegs
Tcp: 1 200 {tcp} 0
Udp: InDatagrams NoPorts
Udp: {udp} 0
"""
SNMP6 = """Ip6InReceives                   	{ip6}
Icmp6InMsgs                     	{icmp6}
Udp6InDatagrams                 	{udp6}
"""


def write(root, **v):
    net = os.path.join(root, "42", "net")
    os.makedirs(net, exist_ok=True)
    for name, text in (("dev", DEV), ("snmp", SNMP), ("snmp6", SNMP6)):
        with open(os.path.join(net, name), "w", encoding="ascii") as handle:
            handle.write(text.format(lo_bytes=v["lo"] * 60, ip=0, ip6=0, **v))


def test_counter_excludes_loopback_and_neighbour_chatter(tmp_path):
    write(tmp_path, lo=100, eth=500, tcp=300, udp=20, udp6=5, icmp=7, icmp6=40)
    first = dc._proc_unicast_rx(42, proc=str(tmp_path))
    assert first == 300 + 20 + 5 - 100
    # neighbours' ARP and IPv6 neighbour solicitations (eth0 packets, ICMP) and the container's own
    # loopback health check (50 TCP segments and 10 DNS datagrams over lo) arrive: no change
    write(tmp_path, lo=160, eth=900, tcp=350, udp=30, udp6=5, icmp=9, icmp6=90)
    assert dc._proc_unicast_rx(42, closing=True, proc=str(tmp_path)) == first
    # three TCP segments from another container do count
    write(tmp_path, lo=160, eth=903, tcp=353, udp=30, udp6=5, icmp=9, icmp6=90)
    assert dc._proc_unicast_rx(42, closing=True, proc=str(tmp_path)) == first + 3


def test_missing_namespace_and_no_ipv6(tmp_path):
    assert dc._proc_unicast_rx(42, proc=str(tmp_path)) is None
    write(tmp_path, lo=1, eth=2, tcp=11, udp=0, udp6=0, icmp=0, icmp6=0)
    os.remove(os.path.join(tmp_path, "42", "net", "snmp6"))
    assert dc._proc_unicast_rx(42, proc=str(tmp_path)) == 10


def test_real_namespace_of_this_process():
    assert isinstance(dc._proc_unicast_rx(os.getpid()), int)
