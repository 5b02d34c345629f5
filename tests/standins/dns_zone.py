"""Stand-in for the public DNS of the migrated names: a tiny authoritative DNS server on loopback UDP.

Test code only. It follows RFC 1035 message format through dnspython (queries are parsed with
``dns.message.from_wire``, which rejects malformed messages, and answers are built with
``dns.message.make_response``): A, AAAA and CNAME records from a dict, CNAME chains inside the
zone are followed like a recursive resolver's answer, unknown names get NXDOMAIN, known names
without the type get an empty NOERROR answer. Every query is recorded in ``queries``.
"""

from __future__ import annotations

import socket
import threading
import typing as t

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset


class DnsZoneServer:
    """``DnsZoneServer({"www.example.test": {"A": ["127.0.0.2"]}})`` serving on 127.0.0.1:<port>."""

    def __init__(self, records: dict[str, dict[str, t.Any]], host: str = "127.0.0.1", ttl: int = 60):
        self.records = {k.lower().rstrip("."): v for k, v in records.items()}
        self.ttl = ttl
        self.queries: list[tuple[str, str]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.host, self.port = self.sock.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> DnsZoneServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        rtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rtype))
        if name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        seen = 0
        while name in self.records and seen < 8:
            seen += 1
            entry = self.records[name]
            owner = dns.name.from_text(name)
            if "CNAME" in entry:
                target = entry["CNAME"].rstrip(".") + "."
                response.answer.append(dns.rrset.from_text(owner, self.ttl, "IN", "CNAME", target))
                if rtype == "CNAME":
                    break
                name = entry["CNAME"].lower().rstrip(".")
                continue
            values = entry.get(rtype) or []
            if values:
                response.answer.append(dns.rrset.from_text_list(owner, self.ttl, "IN", rtype, list(values)))
            break
        return response.to_wire()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.sock.sendto(self.answer(wire), peer)
