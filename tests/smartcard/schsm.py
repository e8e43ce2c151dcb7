#!/usr/bin/python3
"""schsm: an emulated SmartCard-HSM behind vsmartcard's vpcd reader driver.

Speaks vpcd's socket protocol as the "card side": connects to the vpcd reader
(inside pcscd) on 127.0.0.1:PORT and answers the APDUs OpenSC 0.23's sc-hsm
driver sends. Written from the command descriptions in OpenSC's driver
(card-sc-hsm.c, pkcs15-sc-hsm.c, pkcs15init/pkcs15-sc-hsm.c); no code copied.
See tests/smartcard/README.md for the state file, the knobs and the log.
"""

import argparse
import hashlib
import json
import os
import select
import signal
import socket
import struct
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

# The standard SmartCard-HSM ATR: OpenSC's sc-hsm driver knows it.
ATR = bytes.fromhex("3BFE1800008131FE458031815448534D31738021408107FA")
AID = bytes.fromhex("E82B0601040181C31F0201")
DEVICE_CERT = 0x2F02
TOKEN_INFO = 0x2F03
KEY_PREFIX = 0xCC

# Curves by their prime (the GENERATE request names the curve by tag 81).
CURVES = {
    "P-256": (ec.SECP256R1(), 32, hashes.SHA256()),
    "P-384": (ec.SECP384R1(), 48, hashes.SHA384()),
}
PRIMES = {
    bytes.fromhex("FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF"): "P-256",
    bytes.fromhex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE"
                  "FFFFFFFF0000000000000000FFFFFFFF"): "P-384",
}

DEFAULTS = {
    "sign_latency_ms": 170,      # a real card: about 6 ECDSA P-256 signatures a second
    "keygen_latency_ms": 2000,   # EC key generation takes seconds on a card
    "key_slots": 32,             # key pairs the card holds
    "full_sw": "6A84",           # GENERATE on a full card
    "pin_retries": 3,            # retry counter of a fresh state file
    "sw": {},                    # command name -> status word it answers instead
    "removed_file": "",          # while this file exists the card is out of the reader
    "log": "",                   # one line per command (never a PIN)
}


# -- TLV --------------------------------------------------------------------

def tlv_len(n):
    if n < 0x80:
        return bytes([n])
    if n < 0x100:
        return bytes([0x81, n])
    return bytes([0x82, n >> 8, n & 0xFF])


def tlv(tag, value):
    tb = tag.to_bytes(2, "big") if tag > 0xFF else bytes([tag])
    return tb + tlv_len(len(value)) + value


def tlv_parse(data):
    """[(tag, value)] of a flat TLV string (BER tags of one or two bytes)."""
    out = []
    i = 0
    while i < len(data):
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:
            tag = (tag << 8) | data[i]
            i += 1
        n = data[i]
        i += 1
        if n == 0x81:
            n = data[i]
            i += 1
        elif n == 0x82:
            n = (data[i] << 8) | data[i + 1]
            i += 2
        out.append((tag, data[i:i + n]))
        i += n
    return out


def point_of(key):
    return key.public_key().public_bytes(serialization.Encoding.X962,
                                         serialization.PublicFormat.UncompressedPoint)


class CardError(Exception):
    def __init__(self, sw):
        super().__init__("%04X" % sw)
        self.sw = sw


class Card:
    """The card's persistent state (a JSON file) and its command set."""

    def __init__(self, state_path, conf):
        self.path = state_path
        self.conf = conf
        self.selected = None
        self.verified = False
        self.keys = {}
        if os.path.exists(state_path):
            with open(state_path) as f:
                self.st = json.load(f)
        else:
            self.st = self.fresh()
            self.save()
        for kid, k in self.st["keys"].items():
            self.keys[int(kid)] = ec.derive_private_key(int(k["d"], 16), CURVES[k["curve"]][0])

    def fresh(self):
        serial = "DEKH" + os.urandom(3).hex().upper()   # 10 characters: the token serial
        chr_ = serial + "00001"
        dev = ec.generate_private_key(ec.SECP256R1())
        body = (tlv(0x5F29, b"\x00") + tlv(0x42, b"DECA00001") +
                tlv(0x7F49, tlv(0x06, bytes.fromhex("04007F00070202020203")) +
                    tlv(0x86, point_of(dev))) +
                tlv(0x5F20, chr_.encode()))
        cert = tlv(0x7F21, tlv(0x7F4E, body) + tlv(0x5F37, os.urandom(64)))
        retries = int(self.conf["pin_retries"])
        return {
            "serial": serial,
            "pin": "648219",
            "so_pin": "3537363231383830",
            "pin_max": retries,
            "pin_left": retries,
            "so_left": 15,
            "files": {"%04X" % DEVICE_CERT: cert.hex()},
            "keys": {},
        }

    def save(self):
        self.st["keys"] = {}
        for kid, key in self.keys.items():
            curve = "P-256" if key.curve.name == "secp256r1" else "P-384"
            self.st["keys"][str(kid)] = {
                "curve": curve, "d": "%x" % key.private_numbers().private_value}
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.st, f, indent=1)
        os.replace(tmp, self.path)

    def reset(self):
        self.selected = None
        self.verified = False

    # -- helpers -------------------------------------------------------------

    def file(self, fid):
        return self.st["files"].get("%04X" % fid)

    def exists(self, fid):
        if fid >> 8 == KEY_PREFIX:
            return (fid & 0xFF) in self.keys
        return self.file(fid) is not None

    def need_pin(self):
        if not self.verified:
            raise CardError(0x6982)

    def override(self, name):
        sw = self.conf["sw"].get(name)
        if sw:
            raise CardError(int(sw, 16))

    # -- commands ------------------------------------------------------------

    def select(self, p1, p2, data):
        self.override("select")
        if p1 == 0x04:
            if data != AID:
                raise CardError(0x6A82)
            self.selected = None
            if p2 == 0x0C:
                return b""
            # FCP with the proprietary tag 85: options, type FF, version 3.5
            return tlv(0x62, tlv(0x82, b"\x38") + tlv(0x85, bytes.fromhex("0001FF0305")))
        fid = int.from_bytes(data[-2:], "big") if len(data) >= 2 else 0x3F00
        if fid == 0x3F00 and p1 != 0x08:
            self.selected = None
            return b""
        if not self.exists(fid):
            raise CardError(0x6A82)
        self.selected = fid
        if p2 == 0x0C:
            return b""
        size = len(bytes.fromhex(self.file(fid) or ""))
        return tlv(0x62, tlv(0x80, size.to_bytes(2, "big")) + tlv(0x82, b"\x01") +
                   tlv(0x83, fid.to_bytes(2, "big")))

    def read_binary(self, p1, p2, data, le):
        self.override("read")
        fid = (p1 << 8) | p2 or self.selected
        if fid is None or not self.exists(fid) or fid >> 8 == KEY_PREFIX:
            raise CardError(0x6A82)
        off = 0
        for tag, val in tlv_parse(data):
            if tag == 0x54:
                off = int.from_bytes(val, "big")
        content = bytes.fromhex(self.file(fid))
        want = le or 65536
        chunk = content[off:off + want]
        if len(chunk) < want:
            return chunk, 0x6282
        return chunk, 0x9000

    def update_binary(self, p1, p2, data):
        self.override("update")
        fid = (p1 << 8) | p2 or self.selected
        if fid is None or fid == DEVICE_CERT or fid >> 8 == KEY_PREFIX:
            raise CardError(0x6982)
        self.need_pin()
        off, content = 0, b""
        for tag, val in tlv_parse(data):
            if tag == 0x54:
                off = int.from_bytes(val, "big")
            elif tag == 0x53:
                content = val
        old = bytes.fromhex(self.file(fid) or "")
        if len(old) < off:
            old += bytes(off - len(old))
        new = old[:off] + content + old[off + len(content):]
        self.st["files"]["%04X" % fid] = new.hex()
        self.selected = fid
        self.save()
        return b""

    def delete(self, data):
        self.override("delete")
        self.need_pin()
        fid = int.from_bytes(data[:2], "big")
        if fid == DEVICE_CERT or not self.exists(fid):
            raise CardError(0x6A82)
        if fid >> 8 == KEY_PREFIX:
            del self.keys[fid & 0xFF]
        else:
            del self.st["files"]["%04X" % fid]
        self.save()
        return b""

    def enumerate(self):
        self.override("enumerate")
        fids = sorted([(KEY_PREFIX << 8) | k for k in self.keys] +
                      [int(f, 16) for f in self.st["files"] if int(f, 16) != DEVICE_CERT])
        return b"".join(f.to_bytes(2, "big") for f in fids)

    def verify(self, p2, data):
        if p2 in (0x85, 0x86):        # no PIN pad, no biometric template
            raise CardError(0x6A88)
        if p2 == 0x88:
            return self.check_so(data, status_only=not data)
        if p2 != 0x81:
            raise CardError(0x6A88)
        self.override("verify")
        if not data:
            if self.st["pin_left"] == 0:
                raise CardError(0x6983)
            if self.verified:
                return b""
            raise CardError(0x63C0 | self.st["pin_left"])
        if self.st["pin_left"] == 0:
            self.log("verify blocked")
            raise CardError(0x6983)
        if data == self.st["pin"].encode():
            self.st["pin_left"] = self.st["pin_max"]
            self.verified = True
            self.save()
            self.log("verify ok")
            return b""
        self.verified = False
        self.st["pin_left"] -= 1
        self.save()
        self.log("verify fail")
        if self.st["pin_left"] == 0:
            raise CardError(0x6983)
        raise CardError(0x63C0 | self.st["pin_left"])

    def check_so(self, so, status_only=False):
        if self.st["so_left"] == 0:
            raise CardError(0x6983)
        if status_only:
            raise CardError(0x63C0 | self.st["so_left"])
        if so.hex().upper() != self.st["so_pin"].upper():
            self.st["so_left"] -= 1
            self.save()
            self.log("so-pin fail")
            raise CardError(0x6983 if self.st["so_left"] == 0 else 0x63C0 | self.st["so_left"])
        self.st["so_left"] = 15
        return b""

    def change(self, p2, data):
        self.override("change")
        if p2 == 0x88:
            self.check_so(data[:8])
            self.st["so_pin"] = data[8:16].hex().upper()
            self.save()
            return b""
        if p2 != 0x81:
            raise CardError(0x6A88)
        if self.st["pin_left"] == 0:
            raise CardError(0x6983)
        old = self.st["pin"].encode()
        if data[:len(old)] != old:
            self.st["pin_left"] -= 1
            self.save()
            raise CardError(0x6983 if self.st["pin_left"] == 0 else 0x63C0 | self.st["pin_left"])
        self.st["pin"] = data[len(old):].decode()
        self.st["pin_left"] = self.st["pin_max"]
        self.save()
        return b""

    def reset_retry(self, p1, p2, data):
        self.override("unblock")
        if p2 != 0x81:
            raise CardError(0x6A88)
        self.check_so(data[:8])
        if p1 == 0x00 and len(data) > 8:
            self.st["pin"] = data[8:].decode()
        self.st["pin_left"] = self.st["pin_max"]
        self.save()
        self.log("unblock")
        return b""

    def initialize(self, data):
        self.override("initialize")
        fields = dict(tlv_parse(data))
        code = fields.get(0x82, b"")
        if self.st["so_left"] == 0:
            raise CardError(0x6983)
        if code.hex().upper() != self.st["so_pin"].upper():
            self.st["so_left"] -= 1
            self.save()
            raise CardError(0x6982)
        self.keys = {}
        dev = self.st["files"]["%04X" % DEVICE_CERT]
        self.st["files"] = {"%04X" % DEVICE_CERT: dev}
        self.st["pin"] = fields.get(0x81, b"648219").decode()
        retries = fields.get(0x91, bytes([self.st["pin_max"]]))[0]
        self.st["pin_max"] = self.st["pin_left"] = retries
        self.st["so_left"] = 15
        self.verified = False
        self.save()
        self.log("initialize")
        return b""

    def wait(self, ms, channel):
        """Sleeps ms milliseconds; False when the card was pulled meanwhile."""
        end = time.monotonic() + ms / 1000.0
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.02))
            if channel.is_removed():
                return False

    def generate(self, p1, data, channel):
        self.override("generate")
        self.need_pin()
        if len(self.keys) >= int(self.conf["key_slots"]):
            self.log("generate full")
            raise CardError(int(self.conf["full_sw"], 16))
        body = dict(tlv_parse(data))
        pub = dict(tlv_parse(body.get(0x7F49, b"")))
        curve = PRIMES.get(pub.get(0x81))
        if curve is None:
            raise CardError(0x6A80)
        key = ec.generate_private_key(CURVES[curve][0])
        self.keys[p1] = key
        self.save()
        self.log("generate %02X %s" % (p1, curve))
        if not self.wait(int(self.conf["keygen_latency_ms"]), channel):
            return None
        # The public key with the request's domain parameters and the point (86).
        parts = [(t, v) for t, v in tlv_parse(body[0x7F49])]
        parts = [p for p in parts if p[0] != 0x86]
        parts.append((0x86, point_of(key)))
        parts.sort(key=lambda p: 0 if p[0] == 0x06 else p[0])
        pubkey = tlv(0x7F49, b"".join(tlv(t, v) for t, v in parts))
        inner = (tlv(0x5F29, body.get(0x5F29, b"\x00")) + tlv(0x42, body.get(0x42, b"UTCA00001")) +
                 pubkey + tlv(0x5F20, body.get(0x5F20, (self.st["serial"] + "00001").encode())))
        cert = tlv(0x7F21, tlv(0x7F4E, inner) + tlv(0x5F37, os.urandom(2 * CURVES[curve][1])))
        return tlv(0x67, cert + tlv(0x42, (self.st["serial"] + "00001").encode()) +
                   tlv(0x5F37, os.urandom(64)))

    def sign(self, p1, p2, data, channel):
        self.override("sign")
        self.need_pin()
        key = self.keys.get(p1)
        if key is None:
            raise CardError(0x6A88)
        curve = "P-256" if key.curve.name == "secp256r1" else "P-384"
        _, size, hashalg = CURVES[curve]
        if p2 == 0x73:
            digest = hashlib.sha256(data).digest()
        elif p2 == 0x70:
            digest = data
        else:
            raise CardError(0x6A86)
        # ECDSA uses the leftmost bits of a long hash; a short one is its integer.
        digest = digest[:size].rjust(size, b"\x00")
        sig = key.sign(digest, ec.ECDSA(utils.Prehashed(hashalg)))
        self.log("sign %02X" % p1)
        if not self.wait(int(self.conf["sign_latency_ms"]), channel):
            return None
        return sig

    def log(self, line):
        if self.conf["log"]:
            with open(self.conf["log"], "a") as f:
                f.write(line + "\n")

    # -- dispatch ------------------------------------------------------------

    def apdu(self, cmd, channel):
        """Response APDU (data + SW) for a command APDU; None: no answer (card pulled)."""
        cla, ins, p1, p2 = cmd[:4]
        data, le = b"", 0
        body = cmd[4:]
        if len(body) == 1:
            le = body[0] or 256
        elif len(body) == 3 and body[0] == 0:
            le = int.from_bytes(body[1:], "big") or 65536
        elif len(body) > 1 and body[0] == 0:
            n = int.from_bytes(body[1:3], "big")
            data = body[3:3 + n]
            rest = body[3 + n:]
            if rest:
                le = int.from_bytes(rest, "big") or 65536
        elif body:
            n = body[0]
            data = body[1:1 + n]
            rest = body[1 + n:]
            if rest:
                le = rest[0] or 256
        sw = 0x9000
        try:
            key = (cla & 0xF0, ins)
            if key == (0x00, 0xA4):
                out = self.select(p1, p2, data)
            elif key == (0x00, 0xB1):
                out, sw = self.read_binary(p1, p2, data, le)
            elif key == (0x00, 0xB0):
                raise CardError(0x6D00)
            elif key == (0x00, 0xD7):
                out = self.update_binary(p1, p2, data)
            elif key == (0x00, 0xE4):
                out = self.delete(data)
            elif key == (0x80, 0x58):
                out = self.enumerate()
            elif key == (0x00, 0x20):
                out = self.verify(p2, data)
            elif key == (0x00, 0x24):
                out = self.change(p2, data)
            elif key == (0x00, 0x2C):
                out = self.reset_retry(p1, p2, data)
            elif key == (0x80, 0x50):
                out = self.initialize(data)
            elif key == (0x00, 0x46):
                out = self.generate(p1, data, channel)
            elif key == (0x80, 0x68):
                out = self.sign(p1, p2, data, channel)
            elif key == (0x80, 0x52):
                out = bytes([0, 0]) + bytes(8)   # no DKEK shares, none outstanding
            elif key == (0x00, 0x84):
                out = os.urandom(le or 8)
            else:
                raise CardError(0x6D00)
        except CardError as e:
            out, sw = b"", e.sw
        if out is None:
            return None
        return out + sw.to_bytes(2, "big")


class Channel:
    """The socket to vpcd, and the card's presence in the reader."""

    def __init__(self, host, port, removed_file):
        self.addr = (host, port)
        self.removed_file = removed_file
        self.pulled = False
        self.sock = None

    def is_removed(self):
        return self.pulled or bool(self.removed_file and os.path.exists(self.removed_file))

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            part = self.sock.recv(n - len(buf))
            if not part:
                raise ConnectionError("vpcd closed the connection")
            buf += part
        return buf

    def send(self, payload):
        self.sock.sendall(struct.pack(">H", len(payload)) + payload)


def serve(card, chan, ready_file):
    announced = False
    while True:
        if chan.is_removed():
            chan.close()
            time.sleep(0.02)
            continue
        if chan.sock is None:
            try:
                chan.sock = socket.create_connection(chan.addr, timeout=1)
                chan.sock.settimeout(None)
                card.reset()
            except OSError:
                chan.sock = None
                time.sleep(0.05)
                continue
            if ready_file and not announced:
                with open(ready_file, "w") as f:
                    f.write("%d\n" % os.getpid())
                announced = True
        try:
            r, _, _ = select.select([chan.sock], [], [], 0.05)
            if not r:
                continue
            n = struct.unpack(">H", chan.recv_exact(2))[0]
            msg = chan.recv_exact(n) if n else b""
        except (OSError, ConnectionError):
            chan.close()
            continue
        if len(msg) == 1:
            if msg[0] in (0, 1, 2):        # power off, power on, reset
                card.reset()
            elif msg[0] == 4:              # ATR wanted
                chan.send(ATR)
            continue
        if len(msg) < 4:
            continue
        resp = card.apdu(msg, chan)
        if resp is None or chan.is_removed():
            chan.close()                   # pulled in the middle: no answer
            continue
        try:
            chan.send(resp)
        except OSError:
            chan.close()


def main():
    ap = argparse.ArgumentParser(description="emulated SmartCard-HSM for vpcd")
    ap.add_argument("--state", required=True, help="JSON state file (made if missing)")
    ap.add_argument("--config", help="JSON file with the knobs")
    ap.add_argument("--port", type=int, default=35963)
    ap.add_argument("--ready", help="file written once connected to vpcd")
    args = ap.parse_args()

    conf = dict(DEFAULTS)
    if args.config:
        with open(args.config) as f:
            given = json.load(f)
        unknown = set(given) - set(DEFAULTS)
        if unknown:
            sys.exit("schsm: unknown config keys: %s" % ", ".join(sorted(unknown)))
        conf.update(given)
    card = Card(args.state, conf)
    chan = Channel("127.0.0.1", args.port, conf["removed_file"])

    def pull(signum, frame):
        chan.pulled = True

    def insert(signum, frame):
        chan.pulled = False

    signal.signal(signal.SIGUSR1, pull)
    signal.signal(signal.SIGUSR2, insert)
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(0))
    serve(card, chan, args.ready)


if __name__ == "__main__":
    main()
