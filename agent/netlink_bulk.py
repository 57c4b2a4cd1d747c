"""Bulk netlink for FDB and neighbour entries: hand-encoded messages, many per send().

pyroute2 builds every message in Python objects and waits for each ACK, which tops out at a few
thousand requests/s. Here each request is packed with a precompiled `struct.Struct` into exactly the
bytes pyroute2 would send for the same call in `agent.kernel` (same message type, NLM_F_* flags,
ndmsg state/flags, attributes and attribute order; only nlmsg_seq/nlmsg_pid differ), many requests
go out in one `send()`, and the ACKs are read back in bulk and matched to their request by sequence
number. rtnetlink handles a buffer synchronously inside `send()`, message after message, and keeps
going after a failed one, so every request of a batch gets its own answer.

The three kinds of entries (see `agent.kernel.Kernel.add` / `delete`):

==========  ===============================================  ==========================================
kind        add                                              delete
==========  ===============================================  ==========================================
VXLAN       AF_BRIDGE, NTF_SELF, NDA_LLADDR + NDA_DST;        RTM_DELNEIGH, NTF_SELF, state
            flood MAC 00:00:00:00:00:00: NLM_F_CREATE|APPEND  PERMANENT|NOARP, NDA_LLADDR + NDA_DST
            state PERMANENT|NOARP (``bridge fdb append``);
            unicast: NLM_F_CREATE|REPLACE, state PERMANENT
            (``bridge fdb replace ... self``)
BRIDGE      AF_BRIDGE, NTF_MASTER|NTF_EXT_LEARNED, NUD_NOARP, RTM_DELNEIGH, NTF_MASTER, state
            NLM_F_CREATE|REPLACE, NDA_LLADDR                  PERMANENT|NOARP, NDA_LLADDR
NEIGH       AF_INET/AF_INET6, NTF_EXT_LEARNED, NUD_NOARP,     RTM_DELNEIGH, state PERMANENT,
            NDA_DST + NDA_LLADDR; Op.ADD: NLM_F_CREATE|EXCL   NDA_DST + NDA_LLADDR
            (as agent.kernel: EEXIST if present), Op.REPLACE:
            NLM_F_CREATE|REPLACE (``ip neigh replace``)
==========  ===============================================  ==========================================

Every request carries NLM_F_REQUEST|NLM_F_ACK (unless `ack_all=False`, see `NetlinkBulk`).

Results are plain errno values per request (0 = done); nothing is raised for a failed entry, the
caller decides (EEXIST on Op.ADD of a neighbour = it was already there, ENOENT on Op.DEL = already
gone). ENOBUFS / ETIMEDOUT in a result mean "outcome unknown": the answer was lost (receive buffer
overrun) or never came; such a request may or may not have been applied.

Dumps (`NetlinkBulk.dump_fdb`, `dump_neigh`) parse RTM_NEWNEIGH messages with `struct` into
`NeighRecord`s; `parse_messages` is the pure parser, usable on any buffer. What the kernel reports
back (6.x): a vxlan entry has NTF_SELF and NDA_DST, its state as it was set (unicast PERMANENT, flood
PERMANENT|NOARP); a bridge entry has NDA_MASTER = the bridge and ndm_flags NTF_EXT_LEARNED, *without*
NTF_MASTER, state REACHABLE; the bridge also lists its own "permanent" entries for the port (no
NTF_EXT_LEARNED). `dst` is inet_ntop text (as iproute2 prints it): compare via ipaddress.

Use::

    with NetlinkBulk(netns="evpn-1") as bulk:            # or NetlinkBulk(sock) with open_socket(...)
        results = bulk.apply([
            Request.vxlan(Op.ADD, vx, "00:00:00:00:00:00", "10.0.0.2"),   # flood (append)
            Request.vxlan(Op.ADD, vx, mac, "10.0.0.2"),                  # unicast, self
            Request.bridge(Op.ADD, vx, mac),                             # master extern_learn
            Request.neigh(Op.ADD, br, "192.168.1.5", mac),               # ip neigh (EEXIST if there)
        ])
        failed = [r for r in results if r.error not in (0, errno.EEXIST)]
        records = bulk.dump_fdb(vx) + bulk.dump_neigh(ifindex=br)
"""

from __future__ import annotations

import enum
import errno
import ipaddress
import logging
import os
import select
import socket
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self

from .nsenter import NoSuchNamespace, made_in

log = logging.getLogger("evpn.agent.netlink_bulk")

AF_BRIDGE: int = socket.AF_BRIDGE
AF_INET: int = socket.AF_INET
AF_INET6: int = socket.AF_INET6

# Netlink and rtnetlink numbers (linux/netlink.h, linux/rtnetlink.h, linux/neighbour.h), written out so
# the agent needs no netlink library at run time; tests/unit/test_netlink_bulk.py checks them against
# pyroute2's.
NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12
NLM_F_REQUEST = 0x01
NLM_F_ACK = 0x04
NLM_F_DUMP_INTR = 0x10
NLM_F_REPLACE = 0x100
NLM_F_CAPPED = 0x100
NLM_F_EXCL = 0x200
NLM_F_ACK_TLVS = 0x200
NLM_F_DUMP = 0x300
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4
RTM_NEWNEIGH = 28
RTM_DELNEIGH = 29
RTM_GETNEIGH = 30
RTM_SETLINK = 19
RTM_NEWLINK = 16
RTM_GETLINK = 18
NTF_SELF = 0x02
NTF_MASTER = 0x04
NTF_EXT_LEARNED = 0x10
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NDA_DST = 1
NDA_LLADDR = 2
NDA_PORT = 6
NDA_VNI = 7
NDA_IFINDEX = 8
NDA_MASTER = 9
NDA_SRC_VNI = 11
IFLA_PROTINFO = 12
IFLA_MASTER = 10
IFLA_BRPORT_NEIGH_SUPPRESS = 32
NLA_F_NESTED = 0x8000

# Neither pyroute2 nor the socket module define these (linux/netlink.h, asm-generic/socket.h).
NETLINK_CAP_ACK: int = 10  # error ACKs carry only the failed request's header, not the whole request
NLMSGERR_ATTR_MSG: int = 1  # extended ACK: the kernel's error string
SO_SNDBUFFORCE: int = getattr(socket, "SO_SNDBUFFORCE", 32)
SO_RCVBUFFORCE: int = getattr(socket, "SO_RCVBUFFORCE", 33)

ZERO_MAC = "00:00:00:00:00:00"

# NLM_F_* combinations, as pyroute2 makes them (netlink/nlsocket.py make_request_flags)
_REQ = NLM_F_REQUEST | NLM_F_ACK
FLAGS_APPEND = _REQ | NLM_F_CREATE | NLM_F_APPEND
FLAGS_REPLACE = _REQ | NLM_F_CREATE | NLM_F_REPLACE
FLAGS_CREATE = _REQ | NLM_F_CREATE | NLM_F_EXCL
FLAGS_DELETE = _REQ

# ndmsg state/flags per request, identical to what pyroute2 derives for agent.kernel's calls
STATE_VXLAN_APPEND = NUD_PERMANENT | NUD_NOARP  # fdb("append"): pyroute2 adds NOARP
STATE_VXLAN_REPLACE = NUD_PERMANENT  # fdb("replace"): left as given
STATE_BRIDGE = NUD_NOARP
STATE_FDB_DELETE = NUD_PERMANENT | NUD_NOARP  # fdb("del"): pyroute2 adds NOARP, then PERMANENT
STATE_NEIGH = NUD_NOARP
STATE_NEIGH_DELETE = NUD_PERMANENT  # neigh("del"): pyroute2's default state
FLAGS_NDM_VXLAN = NTF_SELF
FLAGS_NDM_BRIDGE = NTF_MASTER | NTF_EXT_LEARNED
FLAGS_NDM_BRIDGE_DELETE = NTF_MASTER
FLAGS_NDM_NEIGH = NTF_EXT_LEARNED

# nlmsghdr (len, type, flags, seq, pid) + ndmsg (family, pad, pad, ifindex, state, flags, type)
_HDR = "=IHHIIBxxxiHBB"
_NLMSGHDR = struct.Struct("=IHHII")
_NDMSG = struct.Struct("=BxxxiHBB")
_NLA = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_ERRNO = struct.Struct("=i")
_PLAIN_ACK = struct.Struct("=IHHIIi")  # nlmsghdr + nlmsgerr.error: enough to recognise a success ACK
_HDR_LEN = _NLMSGHDR.size  # 16
_NDMSG_LEN = _NDMSG.size  # 12

# FDB: NDA_LLADDR then NDA_DST (pyroute2's order for fdb()); neighbour: NDA_DST then NDA_LLADDR
_FDB_MAC = struct.Struct(_HDR + "HH6sxx")
_FDB_MAC_V4 = struct.Struct(_HDR + "HH6sxx" + "HH4s")
_FDB_MAC_V6 = struct.Struct(_HDR + "HH6sxx" + "HH16s")
_NEIGH_V4 = struct.Struct(_HDR + "HH4s" + "HH6sxx")
_NEIGH_V6 = struct.Struct(_HDR + "HH16s" + "HH6sxx")
_GET_V4 = struct.Struct(_HDR + "HH4s")
_GET_V6 = struct.Struct(_HDR + "HH16s")
_DUMP_REQ = struct.Struct(_HDR)
_DUMP_REQ_U32 = struct.Struct(_HDR + "HHI")

_LLADDR_NLA = 4 + 6
_V4_NLA = 4 + 4
_V6_NLA = 4 + 16

IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
IPLike = str | ipaddress.IPv4Address | ipaddress.IPv6Address | bytes


class NetlinkBulkError(RuntimeError):
    """The bulk path itself failed (socket, namespace, dump); never raised for one failed entry."""


class NetlinkFormatError(NetlinkBulkError):
    """A netlink buffer is truncated or malformed."""


class NetlinkDumpError(NetlinkBulkError):
    """The kernel answered a dump request with an error."""

    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = code
        self.kernel_message = message
        text = f"dump failed: {os.strerror(code)} (errno {code})"
        super().__init__(f"{text}: {message}" if message else text)


class Kind(enum.Enum):
    VXLAN = "vxlan"  # the vxlan device's own ("self") entry: MAC -> remote VTEP
    BRIDGE = "bridge"  # the bridge's ("master") entry: MAC behind the vxlan port, extern_learn
    NEIGH = "neigh"  # an IPv4/IPv6 neighbour on the bridge (ARP/ND suppression)


class Op(enum.Enum):
    ADD = "add"  # exactly agent.kernel.Kernel.add (neighbour: create|excl -> EEXIST if present)
    REPLACE = "replace"  # neighbour: ip neigh replace; VXLAN/BRIDGE: encoded as ADD (already replace/append)
    DEL = "del"


@dataclass(frozen=True, slots=True)
class Request:
    """One change. `ip` is the VTEP (NDA_DST) for VXLAN, the neighbour's address for NEIGH, None for BRIDGE."""

    op: Op
    kind: Kind
    ifindex: int
    mac: str
    ip: IPLike | None = None

    @classmethod
    def vxlan(cls, op: Op, ifindex: int, mac: str, vtep: IPLike) -> Request:
        return cls(op, Kind.VXLAN, ifindex, mac, vtep)

    @classmethod
    def bridge(cls, op: Op, ifindex: int, mac: str) -> Request:
        return cls(op, Kind.BRIDGE, ifindex, mac, None)

    @classmethod
    def neigh(cls, op: Op, ifindex: int, ip: IPLike, mac: str) -> Request:
        return cls(op, Kind.NEIGH, ifindex, mac, ip)


@dataclass(slots=True)
class Result:
    """The kernel's answer to one request: `error` 0 on success, else the positive errno."""

    request: Any  # the Request (or what the encoder given to apply() took)
    error: int
    message: str | None = None  # the kernel's extended-ACK text, when it gave one

    @property
    def ok(self) -> bool:
        return self.error == 0

    @property
    def error_name(self) -> str:
        return errno.errorcode.get(self.error, str(self.error)) if self.error else "OK"


@dataclass(frozen=True, slots=True)
class NeighRecord:
    """One RTM_NEWNEIGH of a dump. `mac` lower-case colon hex, `dst` address text; None when absent."""

    family: int
    ifindex: int
    mac: str | None
    dst: str | None
    flags: int
    state: int
    vni: int | None = None  # NDA_VNI (vxlan entries whose VNI differs from the device's)
    master: int | None = None  # NDA_MASTER (bridge entries: the bridge's ifindex)


# --------------------------------------------------------------------------------------------
# encoding


def mac_bytes(mac: str | bytes) -> bytes:
    """'aa:bb:cc:dd:ee:ff' (or '-' / no separators, or 6 raw bytes) -> 6 bytes."""
    if isinstance(mac, (bytes, bytearray)):
        raw = bytes(mac)
    else:
        try:
            raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
        except ValueError:
            raw = b""
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return raw


def ip_bytes(ip: IPLike) -> bytes:
    """IPv4/IPv6 address (text, ipaddress object, or packed 4/16 bytes) -> packed bytes."""
    if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return ip.packed
    if isinstance(ip, (bytes, bytearray)):
        if len(ip) in (4, 16):
            return bytes(ip)
        raise ValueError(f"not a packed IP address: {ip!r}")
    try:
        return socket.inet_pton(AF_INET6 if ":" in ip else AF_INET, ip)
    except (OSError, TypeError) as exc:
        raise ValueError(f"not an IP address: {ip!r}") from exc


def _fdb(msg_type: int, nl_flags: int, seq: int, ifindex: int, state: int, ndm_flags: int,
         mac: bytes, dst: bytes | None) -> bytes:
    if dst is None:
        return _FDB_MAC.pack(_FDB_MAC.size, msg_type, nl_flags, seq, 0, AF_BRIDGE, ifindex, state, ndm_flags, 0,
                             _LLADDR_NLA, NDA_LLADDR, mac)
    if len(dst) == 4:
        return _FDB_MAC_V4.pack(_FDB_MAC_V4.size, msg_type, nl_flags, seq, 0, AF_BRIDGE, ifindex, state, ndm_flags, 0,
                                _LLADDR_NLA, NDA_LLADDR, mac, _V4_NLA, NDA_DST, dst)
    return _FDB_MAC_V6.pack(_FDB_MAC_V6.size, msg_type, nl_flags, seq, 0, AF_BRIDGE, ifindex, state, ndm_flags, 0,
                            _LLADDR_NLA, NDA_LLADDR, mac, _V6_NLA, NDA_DST, dst)


def encode_vxlan_fdb(op: Op, ifindex: int, mac: str | bytes, vtep: IPLike, seq: int = 0, ack: bool = True) -> bytes:
    """The vxlan device's own entry MAC -> VTEP (flood entry when MAC is all zeros: append)."""
    raw, dst = mac_bytes(mac), ip_bytes(vtep)
    ackbit = 0 if ack else NLM_F_ACK
    if op is Op.DEL:
        return _fdb(RTM_DELNEIGH, FLAGS_DELETE & ~ackbit, seq, ifindex, STATE_FDB_DELETE, FLAGS_NDM_VXLAN, raw, dst)
    if raw == b"\x00" * 6:
        return _fdb(RTM_NEWNEIGH, FLAGS_APPEND & ~ackbit, seq, ifindex, STATE_VXLAN_APPEND, FLAGS_NDM_VXLAN, raw, dst)
    return _fdb(RTM_NEWNEIGH, FLAGS_REPLACE & ~ackbit, seq, ifindex, STATE_VXLAN_REPLACE, FLAGS_NDM_VXLAN, raw, dst)


def encode_bridge_fdb(op: Op, ifindex: int, mac: str | bytes, seq: int = 0, ack: bool = True) -> bytes:
    """The bridge's entry: MAC behind port `ifindex` (the vxlan device), master extern_learn."""
    raw = mac_bytes(mac)
    ackbit = 0 if ack else NLM_F_ACK
    if op is Op.DEL:
        return _fdb(RTM_DELNEIGH, FLAGS_DELETE & ~ackbit, seq, ifindex, STATE_FDB_DELETE, FLAGS_NDM_BRIDGE_DELETE,
                    raw, None)
    return _fdb(RTM_NEWNEIGH, FLAGS_REPLACE & ~ackbit, seq, ifindex, STATE_BRIDGE, FLAGS_NDM_BRIDGE, raw, None)


def encode_neigh(op: Op, ifindex: int, ip: IPLike, mac: str | bytes, seq: int = 0, ack: bool = True) -> bytes:
    """A neighbour entry IP -> MAC on the bridge `ifindex` (nud noarp extern_learn)."""
    raw, dst = mac_bytes(mac), ip_bytes(ip)
    ackbit = 0 if ack else NLM_F_ACK
    if op is Op.DEL:
        msg_type, nl_flags, state, ndm_flags = RTM_DELNEIGH, FLAGS_DELETE, STATE_NEIGH_DELETE, 0
    elif op is Op.REPLACE:
        msg_type, nl_flags, state, ndm_flags = RTM_NEWNEIGH, FLAGS_REPLACE, STATE_NEIGH, FLAGS_NDM_NEIGH
    else:
        msg_type, nl_flags, state, ndm_flags = RTM_NEWNEIGH, FLAGS_CREATE, STATE_NEIGH, FLAGS_NDM_NEIGH
    nl_flags &= ~ackbit
    if len(dst) == 4:
        return _NEIGH_V4.pack(_NEIGH_V4.size, msg_type, nl_flags, seq, 0, AF_INET, ifindex, state, ndm_flags, 0,
                              _V4_NLA, NDA_DST, dst, _LLADDR_NLA, NDA_LLADDR, raw)
    return _NEIGH_V6.pack(_NEIGH_V6.size, msg_type, nl_flags, seq, 0, AF_INET6, ifindex, state, ndm_flags, 0,
                          _V6_NLA, NDA_DST, dst, _LLADDR_NLA, NDA_LLADDR, raw)


def encode_fdb_key(op: Op, ifindex: int, key: int, bridge: bool, seq: int = 0, ack: bool = True) -> bytes:
    """`encode_vxlan_fdb` (bridge=False) / `encode_bridge_fdb` (bridge=True) of the entry packed as
    `key` = MAC << 32 | IPv4 VTEP (agent/ownedset.py's FDB key): the same bytes, made from the integer."""
    mac = (key >> 32).to_bytes(6, "big")
    if bridge:
        return encode_bridge_fdb(op, ifindex, mac, seq, ack)
    return encode_vxlan_fdb(op, ifindex, mac, (key & 0xFFFFFFFF).to_bytes(4, "big"), seq, ack)


def encode_neigh_key(op: Op, ifindex: int, key: int, seq: int = 0, ack: bool = True) -> bytes:
    """`encode_neigh` of the entry packed as `key` = IPv4 << 48 | MAC (agent/ownedset.py's neighbour key)."""
    return encode_neigh(op, ifindex, (key >> 48).to_bytes(4, "big"), (key & 0xFFFFFFFFFFFF).to_bytes(6, "big"), seq, ack)


def encode_fdb_get(ifindex: int, mac: bytes, seq: int) -> bytes:
    """RTM_GETNEIGH (one entry, not a dump) of device `ifindex`'s own FDB entry for `mac`, as
    `bridge fdb get MAC dev DEV self`: the kernel answers with the entry (of a flood entry, its first
    remote only) or ENOENT."""
    return _fdb(RTM_GETNEIGH, NLM_F_REQUEST, seq, ifindex, 0, NTF_SELF, mac, None)


def encode_neigh_get(ifindex: int, ip: bytes, seq: int) -> bytes:
    """RTM_GETNEIGH of the neighbour entry for `ip` (4 or 16 bytes) on `ifindex`, as `ip neigh get IP dev
    DEV`: the entry, or ENOENT."""
    if len(ip) == 4:
        return _GET_V4.pack(_GET_V4.size, RTM_GETNEIGH, NLM_F_REQUEST, seq, 0, AF_INET, ifindex, 0, 0, 0, _V4_NLA, NDA_DST, ip)
    return _GET_V6.pack(_GET_V6.size, RTM_GETNEIGH, NLM_F_REQUEST, seq, 0, AF_INET6, ifindex, 0, 0, 0, _V6_NLA, NDA_DST, ip)


def encode(request: Request, seq: int = 0, ack: bool = True) -> bytes:
    """The netlink message for `request` (raises ValueError on a bad MAC/IP or a missing VTEP/IP)."""
    kind = request.kind
    if kind is Kind.VXLAN:
        if request.ip is None:
            raise ValueError(f"vxlan entry without a VTEP: {request}")
        return encode_vxlan_fdb(request.op, request.ifindex, request.mac, request.ip, seq, ack)
    if kind is Kind.BRIDGE:
        return encode_bridge_fdb(request.op, request.ifindex, request.mac, seq, ack)
    if request.ip is None:
        raise ValueError(f"neighbour entry without an IP: {request}")
    return encode_neigh(request.op, request.ifindex, request.ip, request.mac, seq, ack)


_IFINFO = struct.Struct("=IHHIIBxHiII")  # nlmsghdr + ifinfomsg (family, pad, type, index, flags, change)


def encode_neigh_suppress(ifindex: int, on: bool, seq: int) -> bytes:
    """RTM_SETLINK, AF_BRIDGE, IFLA_PROTINFO (nested) { IFLA_BRPORT_NEIGH_SUPPRESS u8 }: what pyroute2's
    brport("set", neigh_suppress=...) and `bridge link set ... neigh_suppress` send."""
    inner = _NLA.pack(5, IFLA_BRPORT_NEIGH_SUPPRESS) + bytes([1 if on else 0]) + b"\0\0\0"
    body = _NLA.pack(4 + len(inner), IFLA_PROTINFO | NLA_F_NESTED) + inner
    size = _IFINFO.size + len(body)
    return _IFINFO.pack(size, RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, 0, AF_BRIDGE, 0, ifindex, 0, 0) + body


def encode_link_dump(seq: int, master: int) -> bytes:
    """RTM_GETLINK dump of the links whose IFLA_MASTER is `master` (the ports of a bridge; the kernel
    filters on it with NETLINK_GET_STRICT_CHK, and `parse_ports` again)."""
    body = _NLA.pack(8, IFLA_MASTER) + _U32.pack(master)
    size = _IFINFO.size + len(body)
    return _IFINFO.pack(size, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, 0, socket.AF_UNSPEC, 0, 0, 0, 0) + body


def parse_ports(data: bytes | bytearray | memoryview, seq: int, master: int, into: list[int]) -> bool:
    """Add to `into` the index of every RTM_NEWLINK of sequence `seq` in `data` whose IFLA_MASTER is
    `master`; True once NLMSG_DONE came. NetlinkDumpError if the kernel refused the dump,
    NetlinkFormatError on a malformed buffer."""
    size, offset, done = len(data), 0, False
    while offset + _HDR_LEN <= size:
        length, msg_type, _flags, msg_seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _HDR_LEN or offset + length > size:
            raise NetlinkFormatError(f"bad netlink message length {length} at offset {offset} (buffer {size} bytes)")
        if msg_seq == seq:
            if msg_type == NLMSG_DONE:
                done = True
            elif msg_type == NLMSG_ERROR and length >= _HDR_LEN + 4:
                code = -_ERRNO.unpack_from(data, offset + _HDR_LEN)[0]
                if code:
                    raise NetlinkDumpError(code)
            elif msg_type == RTM_NEWLINK and length >= _IFINFO.size:
                index = _IFINFO.unpack_from(data, offset)[7]
                pos, end = offset + _IFINFO.size, offset + length
                while pos + 8 <= end:
                    nla_len, nla_type = _NLA.unpack_from(data, pos)
                    if nla_len < 4:
                        break
                    if nla_type & 0x3FFF == IFLA_MASTER and nla_len >= 8:
                        if _U32.unpack_from(data, pos + 4)[0] == master:
                            into.append(index)
                        break
                    pos += (nla_len + 3) & ~3
        offset += (length + 3) & ~3
    return done


def encode_dump_request(family: int, seq: int, ifindex: int = 0, master: int = 0) -> bytes:
    """RTM_GETNEIGH dump. AF_BRIDGE (FDB): `ifindex` = bridge port (ndm_ifindex), `master` = bridge
    (NDA_MASTER); honoured by the kernel with NETLINK_GET_STRICT_CHK. AF_INET/AF_INET6: `ifindex`
    goes in NDA_IFINDEX (the kernel rejects ndm_ifindex in a strict neighbour dump), `master` in NDA_MASTER."""
    flags = NLM_F_REQUEST | NLM_F_DUMP
    if family == AF_BRIDGE:
        if master:
            return _DUMP_REQ_U32.pack(_DUMP_REQ_U32.size, RTM_GETNEIGH, flags, seq, 0, family, ifindex, 0, 0, 0,
                                      8, NDA_MASTER, master)
        return _DUMP_REQ.pack(_DUMP_REQ.size, RTM_GETNEIGH, flags, seq, 0, family, ifindex, 0, 0, 0)
    body = b""
    if ifindex:
        body += _NLA.pack(8, NDA_IFINDEX) + _U32.pack(ifindex)
    if master:
        body += _NLA.pack(8, NDA_MASTER) + _U32.pack(master)
    head = _DUMP_REQ.pack(_DUMP_REQ.size + len(body), RTM_GETNEIGH, flags, seq, 0, family, 0, 0, 0, 0)
    return head + body


# --------------------------------------------------------------------------------------------
# parsing


Skip = Callable[[int, int, int], bool]  # (family, ifindex, ndm_flags) -> leave this message out


@dataclass(slots=True)
class Ack:
    """One NLMSG_ERROR: the request's sequence number and its errno (0 = ACK)."""

    seq: int
    error: int
    message: str | None = None


@dataclass(slots=True)
class Parsed:
    """What one buffer held: neighbour records, ACKs/errors, and whether a NLMSG_DONE ended a dump."""

    records: list[NeighRecord]
    acks: list[Ack]
    done: bool = False
    done_seq: int | None = None
    done_error: int = 0
    interrupted: bool = False  # NLM_F_DUMP_INTR: the table changed during the dump


def _ntop(raw: bytes) -> str:
    if len(raw) == 4:
        return socket.inet_ntop(AF_INET, raw)
    if len(raw) == 16:
        return socket.inet_ntop(AF_INET6, raw)
    return raw.hex()


def _ack_message(data: bytes | memoryview, offset: int, end: int) -> str | None:
    """The NLMSGERR_ATTR_MSG string among the extended-ACK TLVs in data[offset:end]."""
    while offset + 4 <= end:
        nla_len, nla_type = _NLA.unpack_from(data, offset)
        if nla_len < 4 or offset + nla_len > end:
            return None
        if nla_type & 0x3FFF == NLMSGERR_ATTR_MSG:
            return bytes(data[offset + 4:offset + nla_len]).split(b"\0", 1)[0].decode(errors="replace")
        offset += (nla_len + 3) & ~3
    return None


def parse_messages(data: bytes | bytearray | memoryview, seq: int | None = None,
                   into: Parsed | None = None, skip: Skip | None = None) -> Parsed:
    """Parse every netlink message in `data` (the bytes of one or more recv()s, whole messages only).

    RTM_NEWNEIGH -> NeighRecord, NLMSG_ERROR -> Ack (error as a positive errno), NLMSG_DONE ->
    `done`. With `seq` given, messages of another sequence number are skipped (notifications, late
    answers). With `skip`, a neighbour message for which skip(family, ifindex, flags) is true makes no
    record (its attributes are not even read). Other message types are ignored. Raises NetlinkFormatError on a truncated or malformed
    buffer; every step advances by at least one header, so it always terminates.
    """
    out = into if into is not None else Parsed([], [])
    records, acks = out.records, out.acks
    unpack_hdr, unpack_nla, unpack_ndm = _NLMSGHDR.unpack_from, _NLA.unpack_from, _NDMSG.unpack_from
    size = len(data)
    offset = 0
    while offset < size:
        if size - offset < _HDR_LEN:
            raise NetlinkFormatError(f"truncated netlink header at offset {offset} ({size - offset} bytes left)")
        length, msg_type, msg_flags, msg_seq, _pid = unpack_hdr(data, offset)
        if length < _HDR_LEN or offset + length > size:
            raise NetlinkFormatError(
                f"bad netlink message length {length} at offset {offset} (buffer {size} bytes)")
        end = offset + length
        if seq is not None and msg_seq != seq:
            offset += (length + 3) & ~3
            continue
        if msg_flags & NLM_F_DUMP_INTR:
            out.interrupted = True
        if msg_type == RTM_NEWNEIGH:
            if length < _HDR_LEN + _NDMSG_LEN:
                raise NetlinkFormatError(f"RTM_NEWNEIGH too short ({length} bytes) at offset {offset}")
            family, ifindex, state, ndm_flags, _type = unpack_ndm(data, offset + _HDR_LEN)
            if skip is not None and skip(family, ifindex, ndm_flags):
                offset += (length + 3) & ~3
                continue
            mac = dst = vni = master = None
            pos = offset + _HDR_LEN + _NDMSG_LEN
            while pos + 4 <= end:
                nla_len, nla_type = unpack_nla(data, pos)
                if nla_len < 4 or pos + nla_len > end:
                    raise NetlinkFormatError(f"bad attribute length {nla_len} at offset {pos}")
                nla_type &= 0x3FFF
                if nla_type == NDA_LLADDR:
                    mac = bytes(data[pos + 4:pos + nla_len]).hex(":")
                elif nla_type == NDA_DST:
                    dst = _ntop(bytes(data[pos + 4:pos + nla_len]))
                elif nla_type == NDA_VNI and nla_len >= 8:
                    vni = _U32.unpack_from(data, pos + 4)[0]
                elif nla_type == NDA_MASTER and nla_len >= 8:
                    master = _U32.unpack_from(data, pos + 4)[0]
                pos += (nla_len + 3) & ~3
            records.append(NeighRecord(family, ifindex, mac, dst, ndm_flags, state, vni, master))
        elif msg_type == NLMSG_ERROR:
            if length < _HDR_LEN + 4:
                raise NetlinkFormatError(f"NLMSG_ERROR too short ({length} bytes) at offset {offset}")
            code = -_ERRNO.unpack_from(data, offset + _HDR_LEN)[0]
            message = None
            if msg_flags & NLM_F_ACK_TLVS and length >= _HDR_LEN + 4 + _HDR_LEN:
                if msg_flags & NLM_F_CAPPED:
                    tlv = offset + _HDR_LEN + 4 + _HDR_LEN
                else:
                    orig_len = unpack_hdr(data, offset + _HDR_LEN + 4)[0]
                    tlv = offset + _HDR_LEN + 4 + ((orig_len + 3) & ~3)
                message = _ack_message(data, tlv, end)
            acks.append(Ack(msg_seq, code, message))
        elif msg_type == NLMSG_DONE:
            out.done = True
            out.done_seq = msg_seq
            if length >= _HDR_LEN + 4:
                out.done_error = -_ERRNO.unpack_from(data, offset + _HDR_LEN)[0]
        elif msg_type in (NLMSG_NOOP, NLMSG_OVERRUN):
            pass
        offset += (length + 3) & ~3
    return out


def parse_pairs(data: bytes | bytearray | memoryview, seq: int, into: Parsed, ifindex: int,
                self_only: bool = False, convert: Callable[[bytes, bytes], object] | None = None) -> Parsed:
    """What parse_messages does, for the agent's whole-table reads: every RTM_NEWNEIGH of `seq` on
    `ifindex` (with NTF_SELF if `self_only`) that has both NDA_LLADDR and NDA_DST becomes a pair
    (link-layer address bytes, destination address bytes) in `into.records`, or what
    `convert(lladdr, dst)` makes of it (a packed key: no 200k pairs held), nothing else is built.
    ACKs/errors, NLMSG_DONE and NLM_F_DUMP_INTR are read as parse_messages reads them."""
    records, size, offset = into.records, len(data), 0
    unpack_hdr, unpack_ndm = _NLMSGHDR.unpack_from, _NDMSG.unpack_from
    while offset < size:
        if size - offset < _HDR_LEN:
            raise NetlinkFormatError(f"truncated netlink header at offset {offset} ({size - offset} bytes left)")
        length, msg_type, msg_flags, msg_seq, _pid = unpack_hdr(data, offset)
        if length < _HDR_LEN or offset + length > size:
            raise NetlinkFormatError(f"bad netlink message length {length} at offset {offset} (buffer {size} bytes)")
        if msg_seq == seq:
            if msg_flags & NLM_F_DUMP_INTR:
                into.interrupted = True
            if msg_type == RTM_NEWNEIGH:
                if length < _HDR_LEN + _NDMSG_LEN:
                    raise NetlinkFormatError(f"RTM_NEWNEIGH too short ({length} bytes) at offset {offset}")
                _family, index, _state, ndm_flags, _type = unpack_ndm(data, offset + _HDR_LEN)
                if index == ifindex and (ndm_flags & NTF_SELF or not self_only):
                    lladdr, dst = _lladdr_dst(data, offset + _HDR_LEN + _NDMSG_LEN, offset + length)
                    if lladdr and dst:
                        records.append((lladdr, dst) if convert is None else convert(lladdr, dst))  # type: ignore[arg-type]
            elif msg_type != RTM_NEWNEIGH:
                parse_messages(data[offset:offset + ((length + 3) & ~3)], seq, into)  # errors, done: as ever
        offset += (length + 3) & ~3
    return into


def _lladdr_dst(data: bytes | bytearray | memoryview, pos: int, end: int) -> tuple[bytes | None, bytes | None]:
    """NDA_LLADDR and NDA_DST of a neighbour message whose attributes are data[pos:end]."""
    lladdr = dst = None
    unpack_nla = _NLA.unpack_from
    while pos + 4 <= end:
        nla_len, nla_type = unpack_nla(data, pos)
        if nla_len < 4 or pos + nla_len > end:
            raise NetlinkFormatError(f"bad attribute length {nla_len} at offset {pos}")
        nla_type &= 0x3FFF
        if nla_type == NDA_LLADDR:
            lladdr = bytes(data[pos + 4:pos + nla_len])
        elif nla_type == NDA_DST:
            dst = bytes(data[pos + 4:pos + nla_len])
        pos += (nla_len + 3) & ~3
    return lladdr, dst


def parse_answers(data: bytes | bytearray | memoryview, first: int, answers: list[Any],
                  convert: Callable[[bytes, bytes], object]) -> int:
    """The answers to GET requests numbered `first`, `first + 1`, ... in `data`: an RTM_NEWNEIGH puts
    `convert(lladdr, dst)` at its request's place in `answers` (None if it lacks either), an
    NLMSG_ERROR its errno as an `Ack`. Messages of other sequence numbers are skipped. Returns how many
    places were filled."""
    filled, size, offset, count = 0, len(data), 0, len(answers)
    unpack_hdr = _NLMSGHDR.unpack_from
    while offset < size:
        if size - offset < _HDR_LEN:
            raise NetlinkFormatError(f"truncated netlink header at offset {offset} ({size - offset} bytes left)")
        length, msg_type, _flags, msg_seq, _pid = unpack_hdr(data, offset)
        if length < _HDR_LEN or offset + length > size:
            raise NetlinkFormatError(f"bad netlink message length {length} at offset {offset} (buffer {size} bytes)")
        place = (msg_seq - first) & 0xFFFFFFFF
        if place < count and answers[place] is _UNANSWERED:
            if msg_type == RTM_NEWNEIGH:
                if length < _HDR_LEN + _NDMSG_LEN:
                    raise NetlinkFormatError(f"RTM_NEWNEIGH too short ({length} bytes) at offset {offset}")
                lladdr, dst = _lladdr_dst(data, offset + _HDR_LEN + _NDMSG_LEN, offset + length)
                answers[place] = convert(lladdr, dst) if lladdr and dst else None
                filled += 1
            elif msg_type == NLMSG_ERROR:
                parsed = parse_messages(data[offset:offset + ((length + 3) & ~3)])
                answers[place] = parsed.acks[0] if parsed.acks else Ack(msg_seq, errno.EIO)
                filled += 1
        offset += (length + 3) & ~3
    return filled


_UNANSWERED = object()


# --------------------------------------------------------------------------------------------
# the socket


class NetlinkSocketLike(Protocol):
    def send(self, data: bytes, flags: int = 0) -> int: ...
    def recv_into(self, buffer: bytearray, nbytes: int = 0, flags: int = 0) -> int: ...
    def setsockopt(self, level: int, option: int, value: int) -> None: ...
    def getsockopt(self, level: int, option: int) -> int: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...


def open_socket(netns: str | None = None) -> socket.socket:
    """A NETLINK_ROUTE socket in namespace `netns` (default: ours), joined to no multicast group.

    Made while this thread is switched into the namespace (setns), as agent.kernel.open_iproute
    does, never by forking (forking a process that runs gRPC threads can deadlock it).
    """
    try:
        return made_in(netns, _new_socket)
    except NoSuchNamespace as exc:
        raise NetlinkBulkError(str(exc)) from None


def _new_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        sock.bind((0, 0))
    except OSError:
        sock.close()
        raise
    return sock


def _set_buffer(sock: NetlinkSocketLike, force: int, plain: int, size: int) -> int:
    """Set a socket buffer to `size` (beyond rmem_max/wmem_max with CAP_NET_ADMIN); the size in effect."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except OSError:
        try:
            sock.setsockopt(socket.SOL_SOCKET, plain, size)
        except OSError as exc:
            log.warning("event=netlink-bulk-bufsize-failed option=%s size=%d error=%s", plain, size, exc)
    return int(sock.getsockopt(socket.SOL_SOCKET, plain))


class NetlinkBulk:
    """Bulk FDB/neighbour changes and dumps through one netlink socket (use it from one thread).

    `sock`: a NETLINK_ROUTE socket made elsewhere (e.g. by `open_socket(netns)`); it must not be
    joined to multicast groups (notifications would fill the receive buffer). Without it, a socket
    is opened in `netns` (default: the current namespace) and closed by `close()`.

    `batch_size` requests go out per send(). Their ACKs are all read before the next send, so the
    receive buffer only has to hold one batch of ACKs: it is set to `rcvbuf` (SO_RCVBUFFORCE, else
    SO_RCVBUF) and the batch is shrunk to what the buffer in effect can hold. ACKs of failed
    requests carry only the request's header (NETLINK_CAP_ACK) plus the kernel's message
    (NETLINK_EXT_ACK). If ENOBUFS is reported anyway, the requests whose answer was lost get
    ENOBUFS as their result (outcome unknown) and later batches are halved.

    `ack_all=False` asks for an ACK on the last request of each batch only: the kernel still answers
    every failed request, and since it handles the batch in order inside send(), the last ACK proves
    every request before it without an answer succeeded. Fewer ACKs, less work on both sides; the
    bytes then differ from pyroute2's by the NLM_F_ACK bit.
    """

    #: receive-buffer cost of one ACK (skb truesize; measured ~830 bytes on 6.x), for batch sizing
    ACK_COST = 1280

    def __init__(self, sock: NetlinkSocketLike | None = None, *, netns: str | None = None,
                 batch_size: int = 1000, sndbuf: int = 4 << 20, rcvbuf: int = 8 << 20,
                 timeout: float = 10.0, ack_all: bool = True) -> None:
        if sock is not None and netns is not None:
            raise ValueError("give either sock or netns, not both")
        self._own = sock is None
        self.sock: NetlinkSocketLike = open_socket(netns) if sock is None else sock
        self.timeout = timeout
        self.ack_all = ack_all
        self._seq = int(time.time()) & 0x3FFFFFFF or 1
        self._buf = bytearray(1 << 17)
        self._view = memoryview(self._buf)
        for option in (NETLINK_EXT_ACK, NETLINK_CAP_ACK, NETLINK_GET_STRICT_CHK):
            try:
                self.sock.setsockopt(SOL_NETLINK, option, 1)
            except OSError as exc:  # old kernel: still works, with less detail / no dump filtering
                log.warning("event=netlink-bulk-sockopt-failed option=%d error=%s", option, exc)
        self.sndbuf = _set_buffer(self.sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, sndbuf)
        self.rcvbuf = _set_buffer(self.sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, rcvbuf)
        # a send() must fit in the send buffer (else EMSGSIZE): at most 60 bytes per request
        limit = max(1, min(self.rcvbuf // self.ACK_COST, (self.sndbuf - 4096) // 64))
        self.batch_size = max(1, min(batch_size, limit))
        if self.batch_size < batch_size:
            log.info("event=netlink-bulk-batch-limited requested=%d batch=%d sndbuf=%d rcvbuf=%d",
                     batch_size, self.batch_size, self.sndbuf, self.rcvbuf)

    # -- life cycle

    def close(self) -> None:
        if self._own:
            self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_seq(self, count: int) -> int:
        """First of `count` consecutive sequence numbers (never 0, no wrap inside a batch)."""
        if self._seq + count >= 0xFFFFFFFF:
            self._seq = 1
        first = self._seq
        self._seq += count
        return first

    # -- receiving

    def _recv(self, deadline: float) -> int | None:
        """One datagram into self._buf: its size; None when nothing came before `deadline`.
        Raises OSError(ENOBUFS) when the kernel dropped messages for this socket."""
        while True:
            try:
                return self._checked(self.sock.recv_into(self._buf, 0, socket.MSG_DONTWAIT | socket.MSG_TRUNC))
            except (BlockingIOError, InterruptedError):
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            poller = select.poll()
            poller.register(self.sock.fileno(), select.POLLIN)
            poller.poll(remaining * 1000)

    def _drain_now(self) -> int | None:
        try:
            return self._checked(self.sock.recv_into(self._buf, 0, socket.MSG_DONTWAIT | socket.MSG_TRUNC))
        except (BlockingIOError, InterruptedError):
            return None

    def _checked(self, size: int) -> int:
        """With MSG_TRUNC the kernel reports a datagram's real size: one larger than our buffer was cut."""
        if size > len(self._buf):  # cannot happen with rtnetlink (dump skbs are at most 32 KiB)
            raise NetlinkBulkError(f"netlink datagram of {size} bytes truncated to {len(self._buf)}")
        return size

    # -- changes

    def apply(self, requests: Sequence[Any], encoder: Callable[[Any, int, bool], bytes] = encode) -> list[Result]:
        """Send every request, in order, `batch_size` per send(); one Result per request, same order.
        `encoder(request, seq, ack)` makes a request's message (default: `encode` of a Request).

        A request that cannot be encoded (bad MAC/IP) gets EINVAL with the reason and is not sent.
        """
        results: list[Result] = [None] * len(requests)  # type: ignore[list-item]
        started = time.monotonic()
        failures = 0
        position = 0
        total = len(requests)
        while position < total:
            chunk = requests[position:position + self.batch_size]
            done = self._apply_batch(chunk, position, results, encoder)
            failures += sum(1 for r in results[position:position + done] if r.error)
            position += done
        elapsed = time.monotonic() - started
        log.log(logging.INFO if failures or total >= 1000 else logging.DEBUG,
                "event=netlink-bulk-applied requests=%d failed=%d seconds=%.3f rate=%.0f",
                total, failures, elapsed, total / elapsed if elapsed > 0 else 0.0)
        return results

    def _apply_batch(self, chunk: Sequence[Any], position: int, results: list[Result],
                     encoder: Callable[[Any, int, bool], bytes] = encode) -> int:
        """Send one batch; fill results[position:...]; return how many requests it handled."""
        count = len(chunk)
        first = self._next_seq(count)
        ack_all = self.ack_all
        parts: list[bytes] = []
        sent_index: list[int] = []  # batch offset -> index in chunk (skipping unencodable ones)
        for i, request in enumerate(chunk):
            try:
                parts.append(encoder(request, first + len(parts), ack_all))
            except ValueError as exc:
                results[position + i] = Result(request, errno.EINVAL, str(exc))
                log.warning("event=netlink-bulk-bad-request request=%s error=%s", request, exc)
                continue
            sent_index.append(i)
        if not parts:
            return count
        if not ack_all:  # the last request carries the ACK that closes the batch
            parts[-1] = encoder(chunk[sent_index[-1]], first + len(parts) - 1, True)
        data = b"".join(parts)
        try:
            self.sock.send(data)
        except OSError as exc:
            if exc.errno in (errno.EMSGSIZE, errno.ENOBUFS, errno.ENOMEM) and len(sent_index) > 1:
                # nothing of this buffer reached rtnetlink: retry smaller
                self.batch_size = max(1, len(sent_index) // 2)
                log.warning("event=netlink-bulk-send-shrink error=%s bytes=%d batch=%d",
                            errno.errorcode.get(exc.errno or 0, exc.errno), len(data), self.batch_size)
                for i in range(count):
                    results[position + i] = None  # type: ignore[call-overload]
                return 0
            code = exc.errno or errno.EIO
            for i in sent_index:
                results[position + i] = Result(chunk[i], code, f"send failed: {exc}")
            log.error("event=netlink-bulk-send-failed error=%s requests=%d", exc, len(sent_index))
            return count
        self._collect(first, chunk, sent_index, position, results)
        return count

    def _collect(self, first: int, chunk: Sequence[Request], sent_index: list[int], position: int,
                 results: list[Result]) -> None:
        """Read the answers of one batch (sequence numbers first .. first+len(sent_index)-1)."""
        n = len(sent_index)
        answer: list[int | None] = [None] * n
        messages: dict[int, str] = {}
        outstanding = n if self.ack_all else 1  # ack_all=False: wait for the last request's ACK
        last = n - 1
        closed = False
        overrun = False
        deadline = time.monotonic() + self.timeout
        parsed = Parsed([], [])
        while not closed:
            try:
                size = self._drain_now() if overrun else self._recv(deadline)
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise NetlinkBulkError(f"netlink receive failed: {exc}") from exc
                # ACKs were dropped. Everything of this batch was handled inside send(), so what
                # is still queued is all there is: read it without waiting, then give up.
                overrun = True
                log.warning("event=netlink-enobufs batch=%d rcvbuf=%d", n, self.rcvbuf)
                continue
            if size is None:
                break
            if size >= _PLAIN_ACK.size:  # fast path: a datagram holding one success ACK
                length, msg_type, _flags, ack_seq, _pid, code = _PLAIN_ACK.unpack_from(self._buf, 0)
                if length == size and msg_type == NLMSG_ERROR and code == 0:
                    offset = (ack_seq - first) & 0xFFFFFFFF
                    if offset < n and answer[offset] is None:
                        answer[offset] = 0
                        if self.ack_all:
                            outstanding -= 1
                            closed = outstanding == 0
                        elif offset == last:
                            closed = True
                    continue
            parsed.acks.clear()
            try:
                parse_messages(self._view[:size], None, parsed)
            except NetlinkFormatError as exc:
                raise NetlinkBulkError(f"malformed netlink answer: {exc}") from exc
            parsed.records.clear()  # not ours to keep (a shared socket may get notifications)
            for ack in parsed.acks:
                offset = (ack.seq - first) & 0xFFFFFFFF
                if offset >= n:
                    log.debug("event=netlink-bulk-stray-ack seq=%d", ack.seq)
                    continue
                if answer[offset] is None:
                    answer[offset] = ack.error
                    if ack.message:
                        messages[offset] = ack.message
                    if self.ack_all:
                        outstanding -= 1
                        closed = outstanding == 0
                    elif offset == last:
                        closed = True
        if overrun or not closed:
            # ack_all=False: after an overrun even the closing ACK proves nothing (errors may be lost)
            lost = errno.ENOBUFS if overrun else errno.ETIMEDOUT
            unknown = sum(1 for a in answer if a is None)
            log.error("event=netlink-bulk-answers-missing reason=%s unknown=%d batch=%d",
                      errno.errorcode[lost], unknown, n)
            if overrun:
                self.batch_size = max(1, self.batch_size // 2)
            for offset in range(n):
                if answer[offset] is None:
                    answer[offset] = lost
        for offset, index in enumerate(sent_index):
            code = answer[offset]
            results[position + index] = Result(chunk[index], 0 if code is None else code, messages.get(offset))

    # -- lookups

    def lookup(self, items: Sequence[Any], encoder: Callable[[Any, int], bytes],
               convert: Callable[[bytes, bytes], object]) -> list[Any]:
        """One GET request per item (`encoder(item, seq)`, `batch_size` per send()); per item, in
        order, what `convert(lladdr, dst)` makes of the kernel's answer, or None when the kernel has no
        such entry (ENOENT). Any other answer raises NetlinkBulkError (so does a missing one)."""
        out: list[Any] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start:start + self.batch_size]
            first = self._next_seq(len(chunk))
            try:
                self.sock.send(b"".join(encoder(item, first + i) for i, item in enumerate(chunk)))
            except OSError as exc:
                raise NetlinkBulkError(f"netlink lookup send failed: {exc}") from exc
            answers: list[Any] = [_UNANSWERED] * len(chunk)
            missing = len(chunk)
            deadline = time.monotonic() + self.timeout
            while missing:
                try:
                    size = self._recv(deadline)
                except OSError as exc:
                    raise NetlinkBulkError(f"netlink lookup receive failed: {exc}") from exc
                if size is None:
                    raise NetlinkBulkError(f"netlink lookup: {missing} of {len(chunk)} answers missing after {self.timeout} s")
                missing -= parse_answers(self._view[:size], first, answers, convert)
            for answer in answers:
                if isinstance(answer, Ack):
                    if answer.error != errno.ENOENT:
                        text = f"netlink lookup: {os.strerror(answer.error)}"
                        raise NetlinkBulkError(f"{text}: {answer.message}" if answer.message else text)
                    answer = None
                out.append(answer)
        return out

    # -- one request

    def call(self, message: bytes, seq: int) -> tuple[int, str | None]:
        """Send one request (carrying NLM_F_ACK and sequence `seq`) and wait for its answer: (errno, the
        kernel's message). Anything else read meanwhile (other sequence numbers) is skipped."""
        self.sock.send(message)
        deadline = time.monotonic() + self.timeout
        while True:
            size = self._recv(deadline)
            if size is None:
                raise NetlinkBulkError(f"netlink: no answer within {self.timeout} s")
            parsed = parse_messages(self._view[:size], seq)
            if parsed.acks:
                return parsed.acks[0].error, parsed.acks[0].message

    def set_neigh_suppress(self, ifindex: int, on: bool) -> None:
        """`bridge link set dev IFINDEX neigh_suppress on|off` (a bridge port's ARP/ND suppression)."""
        seq = self._next_seq(1)
        code, message = self.call(encode_neigh_suppress(ifindex, on, seq), seq)
        if code:
            text = f"neigh_suppress on ifindex {ifindex}: {os.strerror(code)}"
            raise NetlinkBulkError(f"{text}: {message}" if message else text)

    # -- dumps

    def dump_pairs(self, family: int, ifindex: int, self_only: bool = False,
                   convert: Callable[[bytes, bytes], object] | None = None) -> list[Any]:
        """(link-layer address, destination address) bytes of every entry of `family` on `ifindex` that
        has both (see parse_pairs), or what `convert` makes of each; same request, retries and errors
        as `dump`, no record objects."""
        return self.dump(family, ifindex, parse=lambda data, seq, into: parse_pairs(data, seq, into, ifindex, self_only, convert))  # type: ignore[return-value]

    def dump(self, family: int, ifindex: int = 0, master: int = 0, skip: Skip | None = None,
             parse: Callable[[memoryview, int, Parsed], object] | None = None) -> list[NeighRecord]:
        """Every RTM_NEWNEIGH of an RTM_GETNEIGH dump of `family`, filtered by the kernel as
        `encode_dump_request` says (and again here by ifindex: an old kernel may ignore the filter),
        and here by `skip` (see parse_messages: no record is made for those).

        A dump the kernel marks inconsistent (NLM_F_DUMP_INTR) or that lost answers (ENOBUFS) is
        made again, up to 3 times; then NetlinkBulkError. NetlinkDumpError: the kernel refused it."""
        for attempt in range(3):
            seq = self._next_seq(1)
            started = time.monotonic()
            self.sock.send(encode_dump_request(family, seq, ifindex, master))
            parsed = Parsed([], [])
            deadline = time.monotonic() + self.timeout
            while not parsed.done:
                try:
                    size = self._recv(deadline)
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise NetlinkBulkError(f"netlink dump receive failed: {exc}") from exc
                    parsed.interrupted = True  # something was dropped: read on to the end, dump again
                    continue
                if size is None:
                    raise NetlinkBulkError(f"netlink dump: no answer within {self.timeout} s")
                deadline = time.monotonic() + self.timeout
                if parse is None:
                    parse_messages(self._view[:size], seq, parsed, skip)
                else:
                    parse(self._view[:size], seq, parsed)
                if parsed.acks:
                    ack = parsed.acks[0]
                    raise NetlinkDumpError(ack.error, ack.message)
            if parsed.done_error:
                raise NetlinkDumpError(parsed.done_error)
            records = parsed.records
            if ifindex and parse is None:
                records = [r for r in records if r.ifindex == ifindex]
            if not parsed.interrupted:
                log.debug("event=netlink-dump family=%d ifindex=%d records=%d seconds=%.3f",
                          family, ifindex, len(records), time.monotonic() - started)
                return records
            log.warning("event=netlink-dump-interrupted family=%d ifindex=%d attempt=%d", family, ifindex, attempt + 1)
        log.error("event=netlink-dump-inconsistent family=%d ifindex=%d records=%d", family, ifindex, len(records))
        raise NetlinkBulkError(f"netlink dump of family {family} ifindex {ifindex} interrupted 3 times "
                               "(the table kept changing or answers were dropped)")

    def dump_fdb(self, ifindex: int = 0, master: int = 0, skip: Skip | None = None) -> list[NeighRecord]:
        """The FDB (AF_BRIDGE) entries of bridge port / vxlan device `ifindex` (0: all): its own
        ("self") entries and the bridge's ("master") entries pointing at it. `master`: only ports
        of that bridge. `skip`: see parse_messages."""
        return self.dump(AF_BRIDGE, ifindex, master, skip)

    def bridge_ports(self, bridge: int) -> list[int]:
        """Indexes of the ports of bridge `bridge` (one RTM_GETLINK dump)."""
        seq = self._next_seq(1)
        self.sock.send(encode_link_dump(seq, bridge))
        ports: list[int] = []
        done = False
        while not done:
            size = self._recv(time.monotonic() + self.timeout)
            if size is None:
                raise NetlinkBulkError(f"netlink link dump: no answer within {self.timeout} s")
            done = parse_ports(self._view[:size], seq, bridge, ports)
        return ports

    def dump_neigh(self, family: int = socket.AF_UNSPEC, ifindex: int = 0) -> list[NeighRecord]:
        """The IPv4 and/or IPv6 neighbour entries on `ifindex` (0: all); AF_UNSPEC: both families."""
        if family == socket.AF_UNSPEC:
            return self.dump(AF_INET, ifindex) + self.dump(AF_INET6, ifindex)
        return self.dump(family, ifindex)


def results_by_error(results: Iterable[Result]) -> dict[int, list[Result]]:
    """Results grouped by errno (0 = success), for logging and decisions."""
    grouped: dict[int, list[Result]] = {}
    for result in results:
        grouped.setdefault(result.error, []).append(result)
    return grouped
