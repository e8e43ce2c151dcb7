#!/usr/bin/env python3
"""A tiny authoritative DNS responder for the tests (Python 3 stdlib only).

It answers, over UDP and TCP on ADDRESS@PORT, the DS question for ZONE with
the DS records whose raw rdata (hex) the test gives, AA set, NOERROR; an
empty answer when none is given. Any other question is REFUSED. With --tc,
UDP answers are truncated (TC, no records), so the client must ask over TCP.
Each query is logged as "udp|tcp NAME TYPE" to --log. It writes --pidfile
once listening and exits after --lifetime seconds whatever happens.

    dnsresp.py --address 127.0.0.1 --port P --zone example.com. \
               --ds 3824 0d02... --ds 010203 --log FILE --pidfile FILE
"""
import argparse
import os
import selectors
import socket
import struct
import sys
import time

TYPE_DS = 43
TYPES = {1: "A", 2: "NS", 6: "SOA", 28: "AAAA", 43: "DS", 46: "RRSIG", 48: "DNSKEY"}


def read_name(msg, pos):
    """The question name (no compression in questions), lower case, final dot."""
    labels = []
    while True:
        n = msg[pos]
        pos += 1
        if n == 0:
            break
        if n > 63:
            raise ValueError("bad label")
        labels.append(msg[pos:pos + n].decode("ascii", "replace").lower())
        pos += n
    return ".".join(labels) + ".", pos


def answer(query, zone, rdatas, truncate):
    """The reply to one query, or None to stay silent."""
    if len(query) < 12:
        return None, None
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000 or qdcount != 1:
        return None, None
    name, pos = read_name(query, 12)
    qtype, qclass = struct.unpack("!HH", query[pos:pos + 4])
    question = query[12:pos + 4]
    rd = flags & 0x0100
    desc = "%s %s" % (name, TYPES.get(qtype, "TYPE%d" % qtype))
    if name != zone or qtype != TYPE_DS or qclass != 1:
        return struct.pack("!HHHHHH", qid, 0x8000 | rd | 5, 1, 0, 0, 0) + question, desc
    records = [] if truncate else rdatas
    head = struct.pack("!HHHHHH", qid, 0x8400 | rd | (0x0200 if truncate else 0), 1,
                       len(records), 0, 0)
    body = b"".join(struct.pack("!HHHIH", 0xC00C, TYPE_DS, 1, 300, len(r)) + r for r in records)
    return head + question + body, desc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--zone", required=True)
    ap.add_argument("--ds", action="append", default=[], help="raw DS rdata in hex")
    ap.add_argument("--tc", action="store_true")
    ap.add_argument("--log", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--lifetime", type=float, default=120)
    a = ap.parse_args()
    zone = a.zone.lower().rstrip(".") + "."
    rdatas = [bytes.fromhex(h) for h in a.ds]

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((a.address, a.port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((a.address, a.port))
    tcp.listen(4)
    sel = selectors.DefaultSelector()
    sel.register(udp, selectors.EVENT_READ)
    sel.register(tcp, selectors.EVENT_READ)
    log = open(a.log, "a", buffering=1)
    with open(a.pidfile + ".tmp", "w") as f:
        f.write("%d\n" % os.getpid())
    os.rename(a.pidfile + ".tmp", a.pidfile)

    end = time.monotonic() + a.lifetime
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=max(0.0, end - time.monotonic())):
            try:
                if key.fileobj is udp:
                    query, peer = udp.recvfrom(65535)
                    reply, desc = answer(query, zone, rdatas, a.tc)
                    if desc:
                        log.write("udp %s\n" % desc)
                    if reply:
                        udp.sendto(reply, peer)
                else:
                    conn, _ = tcp.accept()
                    conn.settimeout(5)
                    with conn:
                        raw = conn.recv(2, socket.MSG_WAITALL)
                        if len(raw) != 2:
                            continue
                        (n,) = struct.unpack("!H", raw)
                        query = conn.recv(n, socket.MSG_WAITALL)
                        reply, desc = answer(query, zone, rdatas, False)
                        if desc:
                            log.write("tcp %s\n" % desc)
                        if reply:
                            conn.sendall(struct.pack("!H", len(reply)) + reply)
            except (OSError, ValueError, struct.error) as e:
                print("dnsresp: %s" % e, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
