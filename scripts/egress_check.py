#!/usr/bin/env python3
"""Reads strace logs (strace -f -yy -e trace=connect,sendto,sendmsg,sendmmsg) and reports
every attempt to send something off the machine.

A packet leaves the machine when:
  - a TCP socket connects to an address that is not loopback (the SYN is sent at connect);
  - a UDP (or other datagram) socket sends to an address that is not loopback, named in the
    call or, for a connected socket, in the socket's decoration (`UDP:[local->remote]`).
A UDP connect() alone sends nothing (programs use it to ask the kernel for a route, e.g.
Chromium's IPv6 reachability probe), so it is not counted. Any datagram sent to port 53 is a
DNS query, whatever server it goes to, and is reported as a name lookup.

Usage: egress_check.py LABEL TRACE...   exit 1 if anything left (or tried to), with details
       egress_check.py --self-test      checks the rules against sample lines
"""

from __future__ import annotations

import ipaddress
import re
import sys

SOCKADDR = re.compile(
    r'sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)'
    r'|sin6_port=htons\((\d+)\).*?inet_pton\(AF_INET6, "([^"]+)"'
)
CALL = re.compile(
    r"^(?:\[pid\s+)?(\d+)\]?\s+(connect|sendto|sendmsg|sendmmsg)\((\d+)(<[A-Za-z0-9]+:\[.*?\]>)?"
)
# A connected datagram socket: <UDP:[127.0.0.1:5000->10.0.0.1:53]> or <UDPv6:[[::1]:1->[::2]:3]>
PEER = re.compile(r"->\[?([0-9a-fA-F:.]+?)\]?:(\d+)\]>$")


def loopback(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def violations(lines) -> tuple[list[str], list[str], int]:
    """(packets off the machine, DNS queries, destinations seen)."""
    off: list[str] = []
    dns: list[str] = []
    seen = 0
    for line in lines:
        m = CALL.match(line)
        if not m:
            continue
        call, decoration = m.group(2), m.group(4) or ""
        dests = [
            (a or b, int(p or q))
            for p, a, q, b in SOCKADDR.findall(line)
        ]
        datagram = "UDP" in decoration or "DGRAM" in decoration
        if call == "connect":
            if datagram:
                continue  # no packet yet; the send shows where it goes
            if "TCP" not in decoration and not dests:
                continue  # AF_UNIX and friends
        else:
            peer = PEER.search(decoration)
            if peer and not dests and datagram:
                dests = [(peer.group(1), int(peer.group(2)))]
        for addr, port in dests:
            seen += 1
            if call != "connect" and port == 53:
                dns.append(line.rstrip())
            elif not loopback(addr):
                off.append(f"{addr} port {port}: {line.rstrip()}")
    return off, dns, seen


SAMPLES_BAD = [
    '12 connect(9<TCP:[1]>, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("3.101.179.203")}, 16) = -1 EINPROGRESS',
    '12 connect(9<TCPv6:[1]>, {sa_family=AF_INET6, sin6_port=htons(80), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2606:4700::1111", &sin6_addr), sin6_scope_id=0}, 28) = 0',
    '13 sendto(7<UDP:[10.0.0.2:5353->10.255.255.53:53]>, "...", 28, 0, NULL, 0) = 28',
    '13 sendto(7<UDP:[1]>, "x", 1, 0, {sa_family=AF_INET, sin_port=htons(123), sin_addr=inet_addr("192.0.2.1")}, 16) = 1',
    '14 sendmmsg(5<UDP:[127.0.0.1:4000->127.0.0.53:53]>, [...], 2, MSG_NOSIGNAL) = 2',
]
SAMPLES_OK = [
    '12 connect(9<TCP:[1]>, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
    '12 connect(9<TCPv6:[1]>, {sa_family=AF_INET6, sin6_port=htons(80), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 0',
    '15 connect(3<UDPv6:[2]>, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:4860:4860::8888", &sin6_addr), sin6_scope_id=0}, 28) = 0',
    '16 connect(4<UNIX:[3]>, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT',
    '17 sendto(5<UDP:[127.0.0.1:36451->127.0.0.1:9999]>, "x", 1, 0, NULL, 0) = 1',
    '18 sendto(6<TCP:[127.0.0.1:1->127.0.0.1:2]>, "GET /", 5, MSG_NOSIGNAL, NULL, 0) = 5',
]


def self_test() -> int:
    off, dns, seen = violations(SAMPLES_BAD)
    problems = []
    if len(off) != 3 or len(dns) != 2:
        problems.append(f"bad samples: {len(off)} off-machine (want 3), {len(dns)} DNS (want 2)")
    off, dns, seen = violations(SAMPLES_OK)
    if off or dns or seen != 3:
        problems.append(f"good samples: {off} {dns}, {seen} destinations (want 3)")
    for p in problems:
        print("egress_check self-test:", p, file=sys.stderr)
    print("egress_check self-test:", "ok" if not problems else "FAILED")
    return 1 if problems else 0


def main(argv: list[str]) -> int:
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    label, traces = argv[1], argv[2:]
    lines: list[str] = []
    for t in traces:
        with open(t, encoding="utf-8", errors="replace") as f:
            lines.extend(f)
    off, dns, seen = violations(lines)
    if off or dns:
        print(f"egress {label}: FAILED: {len(off)} sends off the machine, {len(dns)} DNS queries", file=sys.stderr)
        for x in (off + dns)[:20]:
            print("  " + x[:300], file=sys.stderr)
        return 1
    print(f"egress {label}: {seen} destinations traced, all loopback, no DNS query")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
