"""A real DNS server on loopback (UDP, the DNS wire protocol) that answers a name differently
on each lookup: the outside world of a DNS-rebinding attack, for the crawler's resolver to ask.

`RebindingDNS("rebind.test", ["127.0.0.1", "169.254.169.254"])` answers the first A query for
`rebind.test` with 127.0.0.1 and every later one with 169.254.169.254 (the last answer repeats).
AAAA queries get an empty answer; other names NXDOMAIN. `queries` counts what was asked, by type.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from tests.reliability.server_thread import ServerThread


class RebindingDNS(ServerThread):
    """A threaded UDP DNS server; use as a context manager; `address` is "127.0.0.1:PORT"."""

    def __init__(self, name: str, answers: list[str]) -> None:
        self.name = name.rstrip(".").lower() + "."
        self.answers = list(answers)
        self.queries: Counter[str] = Counter()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        super().__init__()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._sock.getsockname()[1]}"

    def _shutdown(self) -> None:
        self._stop.set()

    def _close(self) -> None:
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(wire)
            except dns.exception.DNSException:
                continue
            self._sock.sendto(self._answer(query).to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries[rdtype] += 1
            count = self.queries[rdtype]
        if question.name.to_text().lower() != self.name:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        if rdtype == "A":
            address = self.answers[min(count, len(self.answers)) - 1]
            response.answer.append(
                dns.rrset.from_text(question.name, 0, dns.rdataclass.IN, "A", address)
            )
        return response
