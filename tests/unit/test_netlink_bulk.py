"""agent.netlink_bulk without the kernel: encoders against pyroute2 (its own bytes for agent.kernel's
calls, and its ndmsg decoder), the dump parser against pyroute2-encoded messages, and the bulk
sender against a fake kernel socket (ACK matching, ENOBUFS, timeouts)."""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
import time
from collections import deque
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyroute2 import IPBatch
from pyroute2.netlink import (
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_APPEND,
    NLM_F_CAPPED,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_EXCL,
    NLM_F_MULTI,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    nlmsgerr,
)
from pyroute2.netlink.rtnl import RTM_DELNEIGH, RTM_GETNEIGH, RTM_NEWNEIGH
from pyroute2.netlink.rtnl.ndmsg import (
    NTF_EXT_LEARNED,
    NTF_MASTER,
    NTF_SELF,
    NUD_NOARP,
    NUD_PERMANENT,
    ndmsg,
)

from agent import netlink_bulk as nb
from agent.netlink_bulk import (
    Kind,
    NeighRecord,
    NetlinkBulk,
    NetlinkFormatError,
    Op,
    Request,
)

ZERO = "00:00:00:00:00:00"

macs = st.binary(min_size=6, max_size=6).map(lambda b: b.hex(":"))
unicast_macs = macs.filter(lambda m: m != ZERO)
v4 = st.ip_addresses(v=4).map(str)
v6 = st.ip_addresses(v=6).map(str)
ips = st.one_of(v4, v6)
ifindexes = st.integers(min_value=1, max_value=2**31 - 1)
seqs = st.integers(min_value=1, max_value=2**32 - 1)


# ------------------------------------------------------------------ helpers


def pyroute2_bytes(method: str, command: str, **kwargs: object) -> bytes:
    """What pyroute2 would send for IPRoute().<method>(command, **kwargs) (IPBatch: nothing is sent)."""
    batch = IPBatch()
    try:
        getattr(batch, method)(command, **kwargs)
        return bytes(batch.batch)
    finally:
        batch.close()


def without_seq_pid(data: bytes) -> bytes:
    return data[:8] + b"\0" * 8 + data[16:]


def decoded(data: bytes) -> ndmsg:
    msg = ndmsg(data)
    msg.decode()
    return msg


def family_of(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def ntop(ip: str) -> str:
    """The address as the parser (and iproute2) writes it: inet_ntop."""
    return socket.inet_ntop(family_of(ip), ipaddress.ip_address(ip).packed)


def pyroute2_neigh_message(rec: NeighRecord, seq: int = 1, flags: int = NLM_F_MULTI, extra: bool = True) -> bytes:
    """An RTM_NEWNEIGH as the kernel sends it in a dump, encoded by pyroute2."""
    msg = ndmsg()
    msg["header"]["type"] = RTM_NEWNEIGH
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg["family"] = rec.family
    msg["ifindex"] = rec.ifindex
    msg["state"] = rec.state
    msg["flags"] = rec.flags
    attrs: list[tuple[str, object]] = []
    if rec.mac is not None:
        attrs.append(("NDA_LLADDR", rec.mac))
    if rec.dst is not None:
        attrs.append(("NDA_DST", rec.dst))
    if rec.vni is not None:
        attrs.append(("NDA_VNI", rec.vni))
    if rec.master is not None:
        attrs.append(("NDA_MASTER", rec.master))
    if extra:  # attributes the parser must skip
        attrs.append(("NDA_CACHEINFO", {"ndm_confirmed": 1, "ndm_used": 2, "ndm_updated": 3, "ndm_refcnt": 0}))
        attrs.append(("NDA_PROBES", 0))
    msg["attrs"] = attrs
    msg.encode()
    return bytes(msg.data)


def kernel_error(seq: int, code: int, message: str | None = None, orig_type: int = RTM_NEWNEIGH) -> bytes:
    """NLMSG_ERROR as the kernel sends it with NETLINK_CAP_ACK/EXT_ACK: errno, request header, TLVs."""
    flags = 0
    tlvs = b""
    if code:
        flags |= NLM_F_CAPPED
    if message is not None:
        flags |= NLM_F_ACK_TLVS
        text = message.encode() + b"\0"
        tlvs = struct.pack("=HH", 4 + len(text), nb.NLMSGERR_ATTR_MSG) + text
        tlvs += b"\0" * (-len(tlvs) % 4)
    body = struct.pack("=i", -code) + struct.pack("=IHHII", 48, orig_type, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + tlvs
    return struct.pack("=IHHII", 16 + len(body), NLMSG_ERROR, flags, seq, 0) + body


def done(seq: int, code: int = 0) -> bytes:
    return struct.pack("=IHHIIi", 20, NLMSG_DONE, NLM_F_MULTI, seq, 0, -code)


# ------------------------------------------------------------------ encoders = pyroute2's bytes for agent.kernel's calls


@given(ifindex=ifindexes, vtep=ips, seq=seqs)
@settings(max_examples=60)
def test_flood_entry_is_pyroute2_fdb_append(ifindex: int, vtep: str, seq: int) -> None:
    ours = nb.encode(Request.vxlan(Op.ADD, ifindex, ZERO, vtep), seq)
    theirs = pyroute2_bytes("fdb", "append", ifindex=ifindex, lladdr=ZERO, dst=vtep, flags=NTF_SELF, state=NUD_PERMANENT)
    assert without_seq_pid(ours) == without_seq_pid(theirs)
    msg = decoded(ours)
    assert msg["header"]["type"] == RTM_NEWNEIGH
    assert msg["header"]["flags"] == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND
    assert msg["header"]["sequence_number"] == seq
    assert msg["header"]["length"] == len(ours)
    assert (msg["family"], msg["ifindex"], msg["flags"]) == (socket.AF_BRIDGE, ifindex, NTF_SELF)
    assert msg["state"] == NUD_PERMANENT | NUD_NOARP
    assert msg.get_attr("NDA_LLADDR") == ZERO
    assert ipaddress.ip_address(msg.get_attr("NDA_DST")) == ipaddress.ip_address(vtep)


@given(ifindex=ifindexes, mac=unicast_macs, vtep=ips, seq=seqs)
@settings(max_examples=60)
def test_unicast_entry_is_pyroute2_fdb_replace_self(ifindex: int, mac: str, vtep: str, seq: int) -> None:
    ours = nb.encode_vxlan_fdb(Op.ADD, ifindex, mac, ipaddress.ip_address(vtep), seq)
    theirs = pyroute2_bytes("fdb", "replace", ifindex=ifindex, lladdr=mac, dst=vtep, flags=NTF_SELF, state=NUD_PERMANENT)
    assert without_seq_pid(ours) == without_seq_pid(theirs)
    msg = decoded(ours)
    assert msg["header"]["flags"] == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    assert (msg["family"], msg["ifindex"], msg["flags"], msg["state"]) == (socket.AF_BRIDGE, ifindex, NTF_SELF, NUD_PERMANENT)
    assert msg.get_attr("NDA_LLADDR") == mac
    assert ipaddress.ip_address(msg.get_attr("NDA_DST")) == ipaddress.ip_address(vtep)


@given(ifindex=ifindexes, mac=unicast_macs, seq=seqs)
@settings(max_examples=60)
def test_bridge_entry_is_pyroute2_fdb_replace_master(ifindex: int, mac: str, seq: int) -> None:
    ours = nb.encode(Request.bridge(Op.ADD, ifindex, mac), seq)
    theirs = pyroute2_bytes("fdb", "replace", ifindex=ifindex, lladdr=mac, flags=NTF_MASTER | NTF_EXT_LEARNED, state=NUD_NOARP)
    assert without_seq_pid(ours) == without_seq_pid(theirs)
    msg = decoded(ours)
    assert msg["header"]["flags"] == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    assert (msg["family"], msg["ifindex"]) == (socket.AF_BRIDGE, ifindex)
    assert (msg["flags"], msg["state"]) == (NTF_MASTER | NTF_EXT_LEARNED, NUD_NOARP)
    assert msg.get_attr("NDA_LLADDR") == mac
    assert msg.get_attr("NDA_DST") is None


@given(ifindex=ifindexes, mac=macs, vtep=st.ip_addresses(v=4), ip=st.ip_addresses(v=4), seq=seqs,
       op=st.sampled_from([Op.ADD, Op.DEL]), ack=st.booleans())
@settings(max_examples=100)
def test_packed_key_encoders_make_the_same_bytes(ifindex: int, mac: str, vtep: ipaddress.IPv4Address,
                                                 ip: ipaddress.IPv4Address, seq: int, op: Op, ack: bool) -> None:
    """A full sync's big plans go out from packed keys (agent/ownedset.py): the very messages of the entry path."""
    mac_value = int(mac.replace(":", ""), 16)
    fdb_key, neigh_key = mac_value << 32 | int(vtep), int(ip) << 48 | mac_value
    assert nb.encode_fdb_key(op, ifindex, fdb_key, False, seq, ack) == nb.encode(Request.vxlan(op, ifindex, mac, vtep), seq, ack)
    assert nb.encode_fdb_key(op, ifindex, fdb_key, True, seq, ack) == nb.encode(Request.bridge(op, ifindex, mac), seq, ack)
    assert nb.encode_neigh_key(op, ifindex, neigh_key, seq, ack) == nb.encode(Request.neigh(op, ifindex, ip, mac), seq, ack)


@given(ifindex=ifindexes, mac=macs, ip=ips, seq=seqs)
@settings(max_examples=60)
def test_neigh_add_is_pyroute2_neigh_add(ifindex: int, mac: str, ip: str, seq: int) -> None:
    ours = nb.encode(Request.neigh(Op.ADD, ifindex, ip, mac), seq)
    theirs = pyroute2_bytes("neigh", "add", dst=ip, lladdr=mac, ifindex=ifindex, state=NUD_NOARP,
                            flags=NTF_EXT_LEARNED, family=family_of(ip))
    assert without_seq_pid(ours) == without_seq_pid(theirs)
    msg = decoded(ours)
    assert msg["header"]["flags"] == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    assert (msg["family"], msg["ifindex"]) == (family_of(ip), ifindex)
    assert (msg["flags"], msg["state"]) == (NTF_EXT_LEARNED, NUD_NOARP)
    assert msg.get_attr("NDA_LLADDR") == mac
    assert ipaddress.ip_address(msg.get_attr("NDA_DST")) == ipaddress.ip_address(ip)


@given(ifindex=ifindexes, mac=macs, ip=ips, seq=seqs)
@settings(max_examples=40)
def test_neigh_replace_is_ip_neigh_replace(ifindex: int, mac: str, ip: str, seq: int) -> None:
    ours = nb.encode(Request.neigh(Op.REPLACE, ifindex, ipaddress.ip_address(ip), mac), seq)
    theirs = pyroute2_bytes("neigh", "replace", dst=ip, lladdr=mac, ifindex=ifindex, state=NUD_NOARP,
                            flags=NTF_EXT_LEARNED, family=family_of(ip))
    assert without_seq_pid(ours) == without_seq_pid(theirs)
    assert decoded(ours)["header"]["flags"] == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE


@given(ifindex=ifindexes, mac=macs, vtep=ips, seq=seqs)
@settings(max_examples=60)
def test_vxlan_delete_is_pyroute2_fdb_del(ifindex: int, mac: str, vtep: str, seq: int) -> None:
    ours = nb.encode(Request.vxlan(Op.DEL, ifindex, mac, vtep), seq)
    theirs = pyroute2_bytes("fdb", "del", ifindex=ifindex, lladdr=mac, dst=vtep, flags=NTF_SELF)
    assert without_seq_pid(ours) == without_seq_pid(theirs)
    msg = decoded(ours)
    assert msg["header"]["type"] == RTM_DELNEIGH
    assert msg["header"]["flags"] == NLM_F_REQUEST | NLM_F_ACK
    assert (msg["flags"], msg["state"]) == (NTF_SELF, NUD_PERMANENT | NUD_NOARP)
    assert msg.get_attr("NDA_LLADDR") == mac
    assert ipaddress.ip_address(msg.get_attr("NDA_DST")) == ipaddress.ip_address(vtep)


@given(ifindex=ifindexes, mac=macs, seq=seqs)
@settings(max_examples=40)
def test_bridge_delete_is_pyroute2_fdb_del_master(ifindex: int, mac: str, seq: int) -> None:
    ours = nb.encode(Request.bridge(Op.DEL, ifindex, mac), seq)
    theirs = pyroute2_bytes("fdb", "del", ifindex=ifindex, lladdr=mac, flags=NTF_MASTER)
    assert without_seq_pid(ours) == without_seq_pid(theirs)
    msg = decoded(ours)
    assert msg["header"]["type"] == RTM_DELNEIGH
    assert (msg["family"], msg["flags"]) == (socket.AF_BRIDGE, NTF_MASTER)


@given(ifindex=ifindexes, mac=macs, ip=ips, seq=seqs)
@settings(max_examples=60)
def test_neigh_delete_is_pyroute2_neigh_del(ifindex: int, mac: str, ip: str, seq: int) -> None:
    ours = nb.encode(Request.neigh(Op.DEL, ifindex, ip, mac), seq)
    theirs = pyroute2_bytes("neigh", "del", dst=ip, lladdr=mac, ifindex=ifindex, family=family_of(ip))
    assert without_seq_pid(ours) == without_seq_pid(theirs)
    msg = decoded(ours)
    assert msg["header"]["type"] == RTM_DELNEIGH
    assert msg["family"] == family_of(ip)
    assert ipaddress.ip_address(msg.get_attr("NDA_DST")) == ipaddress.ip_address(ip)


@given(kind=st.sampled_from(list(Kind)), op=st.sampled_from(list(Op)), mac=unicast_macs, ip=ips)
def test_ack_false_only_clears_the_ack_bit(kind: Kind, op: Op, mac: str, ip: str) -> None:
    request = Request(op, kind, 7, mac, None if kind is Kind.BRIDGE else ip)
    with_ack, without = nb.encode(request, 5, True), nb.encode(request, 5, False)
    flags_with = struct.unpack_from("=H", with_ack, 6)[0]
    assert flags_with & NLM_F_ACK
    assert without == with_ack[:6] + struct.pack("=H", flags_with & ~NLM_F_ACK) + with_ack[8:]


def test_replace_of_fdb_kinds_is_add() -> None:
    for request in (Request.vxlan(Op.ADD, 3, ZERO, "10.0.0.2"), Request.vxlan(Op.ADD, 3, "02:00:00:00:00:01", "10.0.0.2"),
                    Request.bridge(Op.ADD, 3, "02:00:00:00:00:01")):
        replaced = Request(Op.REPLACE, request.kind, request.ifindex, request.mac, request.ip)
        assert nb.encode(replaced, 9) == nb.encode(request, 9)


def test_mac_and_ip_forms() -> None:
    assert nb.mac_bytes("AA:BB:cc:dd:ee:ff") == nb.mac_bytes("aa-bb-cc-dd-ee-ff") == nb.mac_bytes("aabbccddeeff")
    assert nb.mac_bytes(bytes(range(6))) == bytes(range(6))
    assert nb.ip_bytes("10.0.0.1") == nb.ip_bytes(ipaddress.ip_address("10.0.0.1")) == b"\n\0\0\x01"
    assert nb.ip_bytes(b"\n\0\0\x01") == b"\n\0\0\x01"
    assert nb.ip_bytes("fd00::1") == ipaddress.ip_address("fd00::1").packed


@pytest.mark.parametrize("request_", [
    Request.vxlan(Op.ADD, 3, "02:00:00:00:00", "10.0.0.1"),
    Request.vxlan(Op.ADD, 3, "zz:00:00:00:00:01", "10.0.0.1"),
    Request.vxlan(Op.ADD, 3, "02:00:00:00:00:01", "10.0.0"),
    Request.vxlan(Op.ADD, 3, "02:00:00:00:00:01", "fd00:::1"),
    Request(Op.ADD, Kind.VXLAN, 3, "02:00:00:00:00:01", None),
    Request(Op.ADD, Kind.NEIGH, 3, "02:00:00:00:00:01", None),
    Request.neigh(Op.ADD, 3, b"\x01\x02", "02:00:00:00:00:01"),
])
def test_bad_requests_raise_value_error(request_: Request) -> None:
    with pytest.raises(ValueError):
        nb.encode(request_, 1)


@given(ifindex=st.integers(min_value=0, max_value=2**31 - 1), master=st.integers(min_value=0, max_value=2**31 - 1),
       family=st.sampled_from([socket.AF_BRIDGE, socket.AF_INET, socket.AF_INET6]), seq=seqs)
def test_dump_request(ifindex: int, master: int, family: int, seq: int) -> None:
    msg = decoded(nb.encode_dump_request(family, seq, ifindex, master))
    assert msg["header"]["type"] == RTM_GETNEIGH
    assert msg["header"]["flags"] == NLM_F_REQUEST | NLM_F_DUMP
    assert msg["header"]["sequence_number"] == seq
    assert msg["family"] == family
    assert (msg["state"], msg["flags"]) == (0, 0)
    assert msg.get_attr("NDA_MASTER") == (master or None)
    if family == socket.AF_BRIDGE:  # strict FDB dump: the port in ndm_ifindex
        assert msg["ifindex"] == ifindex
        assert msg.get_attr("NDA_IFINDEX") is None
    else:  # strict neighbour dump: ndm_ifindex must be 0, the device goes in NDA_IFINDEX
        assert msg["ifindex"] == 0
        assert msg.get_attr("NDA_IFINDEX") == (ifindex or None)


# ------------------------------------------------------------------ the dump parser

records = st.builds(
    NeighRecord,
    family=st.sampled_from([socket.AF_BRIDGE, socket.AF_INET, socket.AF_INET6]),
    ifindex=ifindexes,
    mac=st.one_of(st.none(), macs),
    dst=st.one_of(st.none(), ips),
    flags=st.integers(min_value=0, max_value=255),
    state=st.integers(min_value=0, max_value=0xFFFF),
    vni=st.one_of(st.none(), st.integers(min_value=0, max_value=2**24 - 1)),
    master=st.one_of(st.none(), ifindexes),
)


def normalised(rec: NeighRecord) -> tuple[object, ...]:
    """The record with its address as an ipaddress object (text forms of e.g. ::ffff:0:0 differ)."""
    dst = None if rec.dst is None else ipaddress.ip_address(rec.dst)
    return (rec.family, rec.ifindex, rec.mac, dst, rec.flags, rec.state, rec.vni, rec.master)


@given(recs=st.lists(records, max_size=30), extra=st.booleans())
@settings(max_examples=80)
def test_parser_reads_pyroute2_encoded_dump(recs: list[NeighRecord], extra: bool) -> None:
    data = b"".join(pyroute2_neigh_message(r, seq=42, extra=extra) for r in recs) + done(42)
    parsed = nb.parse_messages(data, seq=42)
    assert [normalised(r) for r in parsed.records] == [normalised(r) for r in recs]
    assert parsed.done and parsed.done_seq == 42 and parsed.done_error == 0
    assert parsed.acks == [] and not parsed.interrupted


@given(recs=st.lists(records, min_size=1, max_size=10))
@settings(max_examples=30)
def test_parser_accumulates_across_buffers(recs: list[NeighRecord]) -> None:
    parsed = nb.Parsed([], [])
    for rec in recs:  # one recv() per message, as a dump arrives
        nb.parse_messages(pyroute2_neigh_message(rec, seq=3), 3, parsed)
        assert not parsed.done
    nb.parse_messages(done(3), 3, parsed)
    assert [normalised(r) for r in parsed.records] == [normalised(r) for r in recs] and parsed.done


@given(ifindex=ifindexes, mac=unicast_macs, vtep=ips, ip=ips)
def test_parser_reads_our_own_encoder(ifindex: int, mac: str, vtep: str, ip: str) -> None:
    data = (nb.encode(Request.vxlan(Op.ADD, ifindex, mac, vtep), 1) + nb.encode(Request.bridge(Op.ADD, ifindex, mac), 2)
            + nb.encode(Request.neigh(Op.ADD, ifindex, ip, mac), 3))
    parsed = nb.parse_messages(data)
    assert parsed.records == [
        NeighRecord(socket.AF_BRIDGE, ifindex, mac, ntop(vtep), NTF_SELF, NUD_PERMANENT),
        NeighRecord(socket.AF_BRIDGE, ifindex, mac, None, NTF_MASTER | NTF_EXT_LEARNED, NUD_NOARP),
        NeighRecord(family_of(ip), ifindex, mac, ntop(ip), NTF_EXT_LEARNED, NUD_NOARP),
    ]


def test_parser_skips_other_sequence_numbers() -> None:
    rec = NeighRecord(socket.AF_BRIDGE, 3, "02:00:00:00:00:01", "10.0.0.2", NTF_SELF, NUD_PERMANENT)
    data = pyroute2_neigh_message(rec, seq=0) + pyroute2_neigh_message(rec, seq=8) + kernel_error(9, errno.ENOENT) + done(9)
    parsed = nb.parse_messages(data, seq=8)
    assert parsed.records == [rec] and parsed.acks == [] and not parsed.done
    everything = nb.parse_messages(data)
    assert len(everything.records) == 2 and everything.acks == [nb.Ack(9, errno.ENOENT)] and everything.done


def test_parser_errors_and_acks() -> None:
    data = (kernel_error(10, 0) + kernel_error(11, errno.EEXIST) + kernel_error(12, errno.ENODEV, "unknown ifindex")
            + kernel_error(13, errno.EINVAL, "x" * 5))
    parsed = nb.parse_messages(data)
    assert parsed.acks == [nb.Ack(10, 0), nb.Ack(11, errno.EEXIST), nb.Ack(12, errno.ENODEV, "unknown ifindex"),
                           nb.Ack(13, errno.EINVAL, "xxxxx")]


def test_parser_error_uncapped_with_tlvs() -> None:
    request = nb.encode(Request.bridge(Op.ADD, 3, "02:00:00:00:00:01"), 77)
    text = b"no such device\0"
    tlv = struct.pack("=HH", 4 + len(text), nb.NLMSGERR_ATTR_MSG) + text + b"\0" * (-len(text) % 4)
    body = struct.pack("=i", -errno.ENODEV) + request + tlv
    data = struct.pack("=IHHII", 16 + len(body), NLMSG_ERROR, NLM_F_ACK_TLVS, 77, 0) + body
    assert nb.parse_messages(data).acks == [nb.Ack(77, errno.ENODEV, "no such device")]


def test_parser_reads_pyroute2_nlmsgerr() -> None:
    msg = nlmsgerr()
    msg["header"]["type"] = NLMSG_ERROR
    msg["header"]["sequence_number"] = 5
    msg["error"] = -errno.ENOENT
    msg.encode()
    assert nb.parse_messages(bytes(msg.data)).acks == [nb.Ack(5, errno.ENOENT)]


def test_parser_done_with_error_and_interrupted_dump() -> None:
    rec = NeighRecord(socket.AF_INET, 2, "02:00:00:00:00:01", "192.168.0.1", NTF_EXT_LEARNED, NUD_NOARP)
    data = pyroute2_neigh_message(rec, seq=4, flags=NLM_F_MULTI | NLM_F_DUMP_INTR) + done(4, errno.EINTR)
    parsed = nb.parse_messages(data, 4)
    assert parsed.interrupted and parsed.done and parsed.done_error == errno.EINTR


def test_parser_empty_buffer() -> None:
    parsed = nb.parse_messages(b"")
    assert parsed.records == [] and parsed.acks == [] and not parsed.done


def _valid_buffer() -> bytes:
    recs = [NeighRecord(socket.AF_BRIDGE, 3, "02:00:00:00:00:01", "10.0.0.2", NTF_SELF, NUD_PERMANENT, vni=7),
            NeighRecord(socket.AF_INET6, 2, "02:00:00:00:00:02", "fd00::2", NTF_EXT_LEARNED, NUD_NOARP, master=2)]
    return b"".join(pyroute2_neigh_message(r, seq=1) for r in recs) + kernel_error(1, errno.ENOENT) + done(1)


def test_every_truncation_raises() -> None:
    data = _valid_buffer()
    boundaries = {0}
    offset = 0
    while offset < len(data):
        offset += struct.unpack_from("=I", data, offset)[0]
        boundaries.add(offset)
    for cut in range(len(data)):
        if cut in boundaries:
            nb.parse_messages(data[:cut])
        else:
            with pytest.raises(NetlinkFormatError):
                nb.parse_messages(data[:cut])


@pytest.mark.parametrize("garbage", [
    struct.pack("=IHHII", 0, RTM_NEWNEIGH, 0, 1, 0),  # length 0: would never advance
    struct.pack("=IHHII", 8, RTM_NEWNEIGH, 0, 1, 0),  # shorter than its own header
    struct.pack("=IHHII", 1000, RTM_NEWNEIGH, 0, 1, 0),  # longer than the buffer
    struct.pack("=IHHII", 20, RTM_NEWNEIGH, 0, 1, 0) + b"\0" * 4,  # ndmsg cut
    struct.pack("=IHHII", 18, NLMSG_ERROR, 0, 1, 0) + b"\0\0",  # errno cut
    struct.pack("=IHHIIBxxxiHBB", 32, RTM_NEWNEIGH, 0, 1, 0, 7, 3, 0, 0, 0) + struct.pack("=HH", 0, 1),  # nla_len 0
    struct.pack("=IHHIIBxxxiHBB", 36, RTM_NEWNEIGH, 0, 1, 0, 7, 3, 0, 0, 0) + struct.pack("=HH", 12, 2) + b"\0" * 4,
    b"\xff" * 10,
])
def test_garbage_raises(garbage: bytes) -> None:
    with pytest.raises(NetlinkFormatError):
        nb.parse_messages(garbage)


@given(st.binary(max_size=400))
@settings(max_examples=300)
def test_random_bytes_parse_or_raise_quickly(data: bytes) -> None:
    started = time.monotonic()
    try:
        nb.parse_messages(data)
    except NetlinkFormatError:
        pass
    assert time.monotonic() - started < 1.0


def test_parser_speed() -> None:
    """100k FDB entries parse in well under the 3 s budget (the kernel's part is not included)."""
    recs = [NeighRecord(socket.AF_BRIDGE, 3, f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                        "10.0.0.2", NTF_SELF, NUD_PERMANENT) for i in range(1000)]
    chunk = b"".join(pyroute2_neigh_message(r, seq=1) for r in recs)
    started = time.monotonic()
    for _ in range(100):
        parsed = nb.parse_messages(chunk, 1)
    assert len(parsed.records) == 1000
    assert time.monotonic() - started < 2.0


# ------------------------------------------------------------------ the sender, against a fake kernel


class FakeKernel:
    """A netlink socket whose 'kernel' answers each request like rtnetlink: handled in order inside
    send(), an NLMSG_ERROR for every request with NLM_F_ACK or that failed, queued as one datagram
    each; a full receive queue drops answers and reports ENOBUFS once."""

    def __init__(self, decide: Callable[[int, int, bytes], int] = lambda i, seq, msg: 0,
                 capacity: int = 1 << 30, answer: bool = True) -> None:
        self.decide = decide
        self.capacity = capacity
        self.answer = answer
        self.queue: deque[bytes] = deque()
        self.pending_error = 0
        self.sent: list[bytes] = []
        self.handled = 0
        self.options: dict[tuple[int, int], int] = {}
        self._poll_a, self._poll_b = socket.socketpair()  # a fd that is never readable, for poll()
        self.dump_answers: deque[bytes] = deque()
        self.send_error: int | None = None

    def send(self, data: bytes, flags: int = 0) -> int:
        if self.send_error is not None:
            raise OSError(self.send_error, "fake send error")
        self.sent.append(bytes(data))
        offset = 0
        while offset < len(data):
            length, msg_type, msg_flags, seq, _pid = struct.unpack_from("=IHHII", data, offset)
            message = bytes(data[offset:offset + length])
            offset += length
            if msg_type == RTM_GETNEIGH:
                self.queue.extend(self.dump_answers)
                continue
            code = self.decide(self.handled, seq, message)
            self.handled += 1
            if self.answer and (msg_flags & NLM_F_ACK or code):
                if len(self.queue) >= self.capacity:
                    self.pending_error = errno.ENOBUFS
                else:
                    self.queue.append(kernel_error(seq, code, "fake failure" if code == errno.EINVAL else None,
                                                   msg_type))
        return len(data)

    def recv_into(self, buffer: bytearray, nbytes: int = 0, flags: int = 0) -> int:
        if self.pending_error:
            code, self.pending_error = self.pending_error, 0
            raise OSError(code, "fake overrun")
        if not self.queue:
            raise BlockingIOError(errno.EAGAIN, "empty")
        datagram = self.queue.popleft()
        buffer[:len(datagram)] = datagram
        return len(datagram)

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.options[(level, option)] = value * 2 if level == socket.SOL_SOCKET else value

    def getsockopt(self, level: int, option: int) -> int:
        if option == socket.SO_SNDBUF:
            return self.options.get((level, nb.SO_SNDBUFFORCE), 212992)
        if option == socket.SO_RCVBUF:
            return self.options.get((level, nb.SO_RCVBUFFORCE), 212992)
        return self.options.get((level, option), 0)

    def fileno(self) -> int:
        return self._poll_a.fileno()

    def close(self) -> None:
        self._poll_a.close()
        self._poll_b.close()


def many(count: int) -> list[Request]:
    out: list[Request] = []
    for i in range(count):
        mac = f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"
        out.append([Request.vxlan(Op.ADD, 3, mac, f"10.1.{i >> 8 & 255}.{i & 255}"),
                    Request.bridge(Op.ADD, 3, mac),
                    Request.neigh(Op.ADD, 2, f"fd00::{i:x}", mac)][i % 3])
    return out


def test_results_are_matched_by_sequence_number() -> None:
    failing = {5: errno.EEXIST, 999: errno.ENOENT, 1000: errno.ENODEV, 2499: errno.EINVAL}
    fake = FakeKernel(decide=lambda i, seq, msg: failing.get(i, 0))
    bulk = NetlinkBulk(fake, batch_size=1000)
    requests = many(2500)
    results = bulk.apply(requests)
    assert [r.request for r in results] == requests
    assert {i: r.error for i, r in enumerate(results) if r.error} == failing
    assert results[2499].message == "fake failure" and results[0].ok and results[5].error_name == "EEXIST"
    assert len(fake.sent) == 3  # 1000 + 1000 + 500 per send()
    # every message of a send carries its own consecutive sequence number
    for data in fake.sent:
        seqs_sent = []
        offset = 0
        while offset < len(data):
            length, _t, flags, seq, _p = struct.unpack_from("=IHHII", data, offset)
            assert flags & NLM_F_ACK
            seqs_sent.append(seq)
            offset += length
        assert seqs_sent == list(range(seqs_sent[0], seqs_sent[0] + len(seqs_sent)))


def test_socket_options_and_buffers() -> None:
    fake = FakeKernel()
    bulk = NetlinkBulk(fake, rcvbuf=4 << 20, sndbuf=2 << 20)
    assert fake.options[(nb.SOL_NETLINK, nb.NETLINK_CAP_ACK)] == 1
    assert fake.options[(nb.SOL_NETLINK, nb.NETLINK_EXT_ACK)] == 1
    assert fake.options[(nb.SOL_NETLINK, nb.NETLINK_GET_STRICT_CHK)] == 1
    assert bulk.rcvbuf == 8 << 20 and bulk.sndbuf == 4 << 20
    small = NetlinkBulk(FakeKernel(), batch_size=1000, rcvbuf=100 * nb.NetlinkBulk.ACK_COST // 2)
    assert small.batch_size == 100  # one batch of ACKs must fit in the receive buffer


def test_ack_on_last_only() -> None:
    fake = FakeKernel(decide=lambda i, seq, msg: errno.EEXIST if i in (3, 1500) else 0)
    bulk = NetlinkBulk(fake, batch_size=1000, ack_all=False)
    results = bulk.apply(many(1700))
    assert {i: r.error for i, r in enumerate(results) if r.error} == {3: errno.EEXIST, 1500: errno.EEXIST}
    for data in fake.sent:
        flags = []
        offset = 0
        while offset < len(data):
            length, _t, f, _s, _p = struct.unpack_from("=IHHII", data, offset)
            flags.append(bool(f & NLM_F_ACK))
            offset += length
        assert flags == [False] * (len(flags) - 1) + [True]


def test_enobufs_marks_exactly_the_lost_answers_unknown() -> None:
    fake = FakeKernel(decide=lambda i, seq, msg: errno.ENOENT if i == 2 else 0, capacity=600)
    bulk = NetlinkBulk(fake, batch_size=1000, timeout=5)
    started = time.monotonic()
    results = bulk.apply(many(1000))
    assert time.monotonic() - started < 2  # no waiting for answers that cannot come
    assert [r.error for r in results[:600]] == [0, 0, errno.ENOENT] + [0] * 597
    assert all(r.error == errno.ENOBUFS for r in results[600:])
    assert bulk.batch_size == 500


def test_enobufs_with_ack_on_last_only_leaves_silent_requests_unknown() -> None:
    fake = FakeKernel(decide=lambda i, seq, msg: errno.ENOENT if i < 20 else 0, capacity=10)
    bulk = NetlinkBulk(fake, batch_size=100, ack_all=False)
    results = bulk.apply(many(100))
    assert [r.error for r in results[:10]] == [errno.ENOENT] * 10
    assert all(r.error == errno.ENOBUFS for r in results[10:])


def test_missing_answers_time_out() -> None:
    fake = FakeKernel(answer=False)
    bulk = NetlinkBulk(fake, batch_size=10, timeout=0.05)
    results = bulk.apply(many(15))
    assert [r.error for r in results] == [errno.ETIMEDOUT] * 15


def test_stray_answers_are_ignored() -> None:
    fake = FakeKernel()
    bulk = NetlinkBulk(fake, batch_size=10)
    fake.queue.append(kernel_error(123456, errno.EEXIST))  # left over from someone else
    results = bulk.apply(many(10))
    assert all(r.ok for r in results)


def test_bad_request_is_not_sent() -> None:
    fake = FakeKernel(decide=lambda i, seq, msg: errno.EEXIST if i == 1 else 0)
    bulk = NetlinkBulk(fake, batch_size=10)
    requests = many(3)
    requests.insert(1, Request.vxlan(Op.ADD, 3, "bad", "10.0.0.1"))
    results = bulk.apply(requests)
    assert [r.error for r in results] == [0, errno.EINVAL, errno.EEXIST, 0]
    assert fake.handled == 3
    assert bulk.apply([Request.bridge(Op.ADD, 3, "nope")])[0].error == errno.EINVAL


def test_send_too_big_shrinks_and_retries() -> None:
    fake = FakeKernel()
    bulk = NetlinkBulk(fake, batch_size=100)
    original = fake.send

    def send(data: bytes, flags: int = 0) -> int:
        if len(data) > 1000:
            raise OSError(errno.EMSGSIZE, "too big")
        return original(data, flags)

    fake.send = send  # type: ignore[method-assign]
    results = bulk.apply(many(100))
    assert all(r.ok for r in results) and fake.handled == 100
    assert bulk.batch_size < 100


def test_send_failure_is_reported_per_request() -> None:
    fake = FakeKernel()
    fake.send_error = errno.EPERM
    results = NetlinkBulk(fake, batch_size=10).apply(many(12))
    assert [r.error for r in results] == [errno.EPERM] * 12


def test_empty_apply() -> None:
    assert NetlinkBulk(FakeKernel()).apply([]) == []


def test_dump_through_fake_socket() -> None:
    fake = FakeKernel()
    bulk = NetlinkBulk(fake)
    recs = [NeighRecord(socket.AF_BRIDGE, 3, "02:00:00:00:00:01", "10.0.0.2", NTF_SELF, NUD_PERMANENT),
            NeighRecord(socket.AF_BRIDGE, 4, "02:00:00:00:00:02", "10.0.0.3", NTF_SELF, NUD_PERMANENT),
            NeighRecord(socket.AF_BRIDGE, 3, "02:00:00:00:00:03", None, NTF_MASTER, NUD_NOARP, master=2)]

    def answers(seq: int) -> None:
        fake.dump_answers = deque([pyroute2_neigh_message(recs[0], seq) + pyroute2_neigh_message(recs[1], seq),
                                   pyroute2_neigh_message(recs[2], seq), done(seq)])

    answers(bulk._seq)
    assert bulk.dump_fdb(3) == [recs[0], recs[2]]  # the kernel's filter, checked again here
    request = decoded(fake.sent[-1])
    assert request["ifindex"] == 3 and request["family"] == socket.AF_BRIDGE
    answers(bulk._seq)
    assert bulk.dump_fdb() == recs
    fake.dump_answers = deque([kernel_error(bulk._seq, errno.EINVAL, "Invalid values in header")])
    with pytest.raises(nb.NetlinkDumpError) as failure:
        bulk.dump_fdb(3)
    assert failure.value.code == errno.EINVAL and "Invalid values" in str(failure.value)


def test_dump_without_answer_times_out() -> None:
    bulk = NetlinkBulk(FakeKernel(), timeout=0.05)
    with pytest.raises(nb.NetlinkBulkError):
        bulk.dump_neigh(socket.AF_INET, 2)


def test_sequence_numbers_never_zero_or_wrap_inside_a_batch() -> None:
    bulk = NetlinkBulk(FakeKernel())
    bulk._seq = 0xFFFFFFFF - 5
    first = bulk._next_seq(10)
    assert first == 1 and bulk._seq == 11


def test_sock_and_netns_are_exclusive() -> None:
    with pytest.raises(ValueError):
        NetlinkBulk(FakeKernel(), netns="x")


def test_overrun_with_ack_on_last_only() -> None:
    """Answers dropped, the closing ACK among them: the silent requests are unknown."""
    fake = FakeKernel(decide=lambda i, seq, msg: errno.ENOENT if i in (1, 2, 3) else 0, capacity=2)
    # capacity 2: errors of 1 and 2 queued, error of 3 dropped (ENOBUFS), closing ACK of 9 dropped too
    results = NetlinkBulk(fake, batch_size=10, ack_all=False).apply(many(10))
    assert [r.error for r in results[:3]] == [errno.ENOBUFS, errno.ENOENT, errno.ENOENT]
    assert all(r.error == errno.ENOBUFS for r in results[3:])


def test_overrun_then_closing_ack_still_unknown() -> None:
    """The closing ACK arrives but an error before it was dropped: it proves nothing for the silent ones."""
    fake = FakeKernel(decide=lambda i, seq, msg: errno.ENOENT if i in (1, 2, 3) else 0, capacity=2)
    bulk = NetlinkBulk(fake, batch_size=10, ack_all=False)
    real_send = fake.send

    def send(data: bytes, flags: int = 0) -> int:
        sent = real_send(data, flags)
        closing = struct.unpack_from("=I", data, len(data) - 40 + 8)[0]  # the last request (a bridge entry)
        assert closing == bulk._seq - 1
        fake.queue.append(kernel_error(closing, 0))  # its ACK made it after all
        return sent

    fake.send = send  # type: ignore[method-assign]
    results = bulk.apply(many(9) + [Request.bridge(Op.ADD, 3, "02:00:00:00:00:09")])
    assert [r.error for r in results] == [errno.ENOBUFS, errno.ENOENT, errno.ENOENT] + [errno.ENOBUFS] * 6 + [0]


def _dump_answers(seq: int, rec: NeighRecord, flags: int = NLM_F_MULTI) -> deque[bytes]:
    return deque([pyroute2_neigh_message(rec, seq, flags=flags), done(seq)])


def test_interrupted_dump_is_made_again() -> None:
    fake = FakeKernel()
    bulk = NetlinkBulk(fake)
    rec = NeighRecord(socket.AF_INET, 2, "02:00:00:00:00:01", "192.168.0.1", NTF_EXT_LEARNED, NUD_NOARP)
    original = fake.send
    calls = []

    def send(data: bytes, flags: int = 0) -> int:
        seq = struct.unpack_from("=I", data, 8)[0]
        calls.append(seq)
        fake.dump_answers = _dump_answers(seq, rec, NLM_F_MULTI | (NLM_F_DUMP_INTR if len(calls) == 1 else 0))
        return original(data, flags)

    fake.send = send  # type: ignore[method-assign]
    assert bulk.dump_neigh(socket.AF_INET, 2) == [rec]
    assert len(calls) == 2


def test_dump_interrupted_every_time_raises() -> None:
    fake = FakeKernel()
    bulk = NetlinkBulk(fake)
    rec = NeighRecord(socket.AF_INET, 2, "02:00:00:00:00:01", "192.168.0.1", NTF_EXT_LEARNED, NUD_NOARP)
    original = fake.send

    def send(data: bytes, flags: int = 0) -> int:
        fake.dump_answers = _dump_answers(struct.unpack_from("=I", data, 8)[0], rec, NLM_F_MULTI | NLM_F_DUMP_INTR)
        return original(data, flags)

    fake.send = send  # type: ignore[method-assign]
    with pytest.raises(nb.NetlinkBulkError, match="interrupted"):
        bulk.dump_neigh(socket.AF_INET, 2)


def test_dump_overrun_is_made_again() -> None:
    fake = FakeKernel()
    bulk = NetlinkBulk(fake)
    rec = NeighRecord(socket.AF_BRIDGE, 3, "02:00:00:00:00:01", "10.0.0.1", NTF_SELF, NUD_PERMANENT)
    original = fake.send
    calls = []

    def send(data: bytes, flags: int = 0) -> int:
        calls.append(1)
        fake.dump_answers = _dump_answers(struct.unpack_from("=I", data, 8)[0], rec)
        if len(calls) == 1:
            fake.pending_error = errno.ENOBUFS
        return original(data, flags)

    fake.send = send  # type: ignore[method-assign]
    assert bulk.dump_fdb(3) == [rec]
    assert len(calls) == 2


def test_truncated_datagram_is_an_error() -> None:
    fake = FakeKernel()
    bulk = NetlinkBulk(fake)
    fake.recv_into = lambda buffer, nbytes=0, flags=0: len(buffer) + 1  # type: ignore[method-assign]
    with pytest.raises(nb.NetlinkBulkError, match="truncated"):
        bulk.dump_fdb()


def test_skipped_messages_make_no_record() -> None:
    own = NeighRecord(nb.AF_BRIDGE, 5, "02:5c:00:00:00:01", "10.0.0.2", NTF_SELF, NUD_PERMANENT, None, None)
    bridge = NeighRecord(nb.AF_BRIDGE, 5, "02:5c:00:00:00:01", None, NTF_EXT_LEARNED, NUD_NOARP, None, 4)
    data = pyroute2_neigh_message(own) + pyroute2_neigh_message(bridge)
    seen: list[tuple[int, int, int]] = []

    def skip(family: int, ifindex: int, flags: int) -> bool:
        seen.append((family, ifindex, flags))
        return not flags & NTF_SELF

    assert nb.parse_messages(data, skip=skip).records == [own]
    assert seen == [(nb.AF_BRIDGE, 5, NTF_SELF), (nb.AF_BRIDGE, 5, NTF_EXT_LEARNED)]


def _link(seq: int, index: int, master: int | None, flags: int = 0) -> bytes:
    attrs = struct.pack("=HH", 8, 3) + b"eth\0"  # IFLA_IFNAME first: the parser reads past it
    if master is not None:
        attrs += struct.pack("=HHI", 8, 10, master)
    head = struct.pack("=IHHIIBxHiII", 32 + len(attrs), 16, flags, seq, 0, 0, 1, index, 0, 0)
    return head + attrs


def test_parse_ports_keeps_the_links_of_that_master_and_sees_the_end() -> None:
    from agent.netlink_bulk import NetlinkDumpError, encode_link_dump, parse_ports

    request = encode_link_dump(7, 4)
    assert struct.unpack_from("=IHHI", request)[:4] == (len(request), 18, NLM_F_REQUEST | NLM_F_DUMP, 7)
    assert request[-8:] == struct.pack("=HHI", 8, 10, 4)
    ports: list[int] = []
    data = _link(7, 5, 4) + _link(7, 6, 9) + _link(7, 8, None) + _link(3, 11, 4) + _link(7, 12, 4)
    assert parse_ports(data, 7, 4, ports) is False
    assert ports == [5, 12]  # not another master's port, not one without master, not another sequence's
    assert parse_ports(struct.pack("=IHHIIi", 20, NLMSG_DONE, 0, 7, 0, 0), 7, 4, ports) is True
    with pytest.raises(NetlinkDumpError):
        parse_ports(struct.pack("=IHHIIi", 20, NLMSG_ERROR, 0, 7, 0, -errno.EINVAL) + bytes(16), 7, 4, [])


_records = st.builds(
    NeighRecord,
    family=st.sampled_from([socket.AF_BRIDGE, socket.AF_INET, socket.AF_INET6]),
    ifindex=st.sampled_from([3, 4]),
    mac=st.none() | macs,
    dst=st.none() | ips,
    flags=st.sampled_from([0, NTF_SELF, NTF_EXT_LEARNED, NTF_SELF | NTF_EXT_LEARNED]),
    state=st.sampled_from([NUD_NOARP, NUD_PERMANENT]),
    master=st.none() | st.just(9),
)


@settings(max_examples=200)
@given(records=st.lists(_records, max_size=20), self_only=st.booleans(), done=st.booleans(), intr=st.booleans())
def test_parse_pairs_is_parse_messages_reduced_to_address_pairs(records: list[NeighRecord], self_only: bool,
                                                                 done: bool, intr: bool) -> None:
    """The agent's whole-table reads (Kernel.entries) use parse_pairs: the same entries as parse_messages
    then filtering on ifindex / NTF_SELF / both addresses, as raw bytes; DONE, INTR and other sequences alike."""
    flags = NLM_F_MULTI | (NLM_F_DUMP_INTR if intr else 0)
    data = b"".join(pyroute2_neigh_message(r, seq=5, flags=flags) for r in records)
    data += pyroute2_neigh_message(NeighRecord(socket.AF_BRIDGE, 3, "02:00:00:00:00:09", "10.9.9.9", NTF_SELF, 0), seq=6)
    if done:
        data += struct.pack("=IHHIIi", 20, NLMSG_DONE, NLM_F_MULTI, 5, 0, 0)
    full = nb.parse_messages(data, 5)
    pairs = nb.parse_pairs(data, 5, nb.Parsed([], []), 3, self_only)
    assert pairs.records == [
        (bytes.fromhex(r.mac.replace(":", "")), socket.inet_pton(socket.AF_INET6 if ":" in r.dst else socket.AF_INET, r.dst))
        for r in full.records if r.ifindex == 3 and r.mac and r.dst and (r.flags & NTF_SELF or not self_only)]
    assert (pairs.done, pairs.interrupted) == (full.done, full.interrupted)
    converted = nb.parse_pairs(data, 5, nb.Parsed([], []), 3, self_only, convert=lambda lladdr, dst: lladdr + dst)
    assert converted.records == [lladdr + dst for lladdr, dst in pairs.records]  # what a packed read keeps instead


# ------------------------------------------------------------------ lookups: one GET per entry


@given(ifindex=ifindexes, mac=unicast_macs, seq=seqs)
def test_fdb_get_is_bridge_fdb_get_self(ifindex: int, mac: str, seq: int) -> None:
    msg = decoded(nb.encode_fdb_get(ifindex, bytes.fromhex(mac.replace(":", "")), seq))
    assert (msg["header"]["type"], msg["header"]["flags"], msg["header"]["sequence_number"]) == (RTM_GETNEIGH, NLM_F_REQUEST, seq)
    # what the kernel's strict check (valid_fdb_get_strict) accepts: state and type 0, only NTF_SELF
    assert (msg["family"], msg["ifindex"], msg["state"], msg["flags"], msg["ndm_type"]) == (socket.AF_BRIDGE, ifindex, 0, NTF_SELF, 0)
    assert [name for name, _ in msg["attrs"]] == ["NDA_LLADDR"] and msg.get_attr("NDA_LLADDR") == mac


@given(ifindex=ifindexes, ip=ips, seq=seqs)
def test_neigh_get_is_ip_neigh_get(ifindex: int, ip: str, seq: int) -> None:
    msg = decoded(nb.encode_neigh_get(ifindex, ipaddress.ip_address(ip).packed, seq))
    assert (msg["header"]["type"], msg["header"]["flags"], msg["header"]["sequence_number"]) == (RTM_GETNEIGH, NLM_F_REQUEST, seq)
    # neigh_valid_get_req: no state, type or flags; the device in ndm_ifindex, only NDA_DST
    assert (msg["family"], msg["ifindex"], msg["state"], msg["flags"], msg["ndm_type"]) == (family_of(ip), ifindex, 0, 0, 0)
    assert [name for name, _ in msg["attrs"]] == ["NDA_DST"] and msg.get_attr("NDA_DST") == ntop(ip)


class LookupKernel:
    """A netlink socket answering GET requests as rtnetlink does: the entry (a pyroute2-encoded
    RTM_NEWNEIGH with the request's sequence number) or an NLMSG_ERROR (ENOENT), one datagram each."""

    def __init__(self, entries: dict[str, str], fail: dict[str, int] | None = None, silent: bool = False) -> None:
        self.entries, self.fail, self.silent = entries, fail or {}, silent  # MAC -> VTEP; MAC -> errno
        self.queue: deque[bytes] = deque()
        self.sends = 0
        self.pending_error = 0
        self.options: dict[tuple[int, int], int] = {}
        self._poll_a, self._poll_b = socket.socketpair()

    def send(self, data: bytes, flags: int = 0) -> int:
        self.sends += 1
        offset = 0
        while offset < len(data):
            length, _type, _flags, seq, _pid = struct.unpack_from("=IHHII", data, offset)
            mac = decoded(bytes(data[offset:offset + length])).get_attr("NDA_LLADDR")
            offset += length
            if self.silent:
                continue
            if mac in self.fail or mac not in self.entries:
                self.queue.append(kernel_error(seq, self.fail.get(mac, errno.ENOENT), "Fdb entry not found", RTM_GETNEIGH))
            else:
                self.queue.append(pyroute2_neigh_message(NeighRecord(socket.AF_BRIDGE, 7, mac, self.entries[mac], NTF_SELF,
                                                                     NUD_PERMANENT), seq=seq, flags=0))
        return len(data)

    recv_into, setsockopt, getsockopt = FakeKernel.recv_into, FakeKernel.setsockopt, FakeKernel.getsockopt
    fileno, close = FakeKernel.fileno, FakeKernel.close


def _fdb_lookup(bulk: NetlinkBulk, macs_: list[str]) -> list[object]:
    return bulk.lookup(macs_, lambda mac, seq: nb.encode_fdb_get(7, bytes.fromhex(mac.replace(":", "")), seq),
                       lambda lladdr, dst: (lladdr.hex(":"), socket.inet_ntoa(dst)))


def test_lookup_answers_each_entry_in_order_many_per_send() -> None:
    entries = {f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}": f"10.0.{i >> 8}.{i & 255}" for i in range(0, 2500, 3)}
    wanted = [f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}" for i in range(2500)]
    fake = LookupKernel(entries)
    answers = _fdb_lookup(NetlinkBulk(fake, batch_size=1000), wanted)
    assert answers == [(mac, entries[mac]) if mac in entries else None for mac in wanted]
    assert fake.sends == 3


def test_lookup_raises_on_an_answer_other_than_not_found_and_on_silence() -> None:
    with pytest.raises(nb.NetlinkBulkError, match="Operation not supported"):
        _fdb_lookup(NetlinkBulk(LookupKernel({}, fail={"02:00:00:00:00:02": errno.EOPNOTSUPP})), ["02:00:00:00:00:01", "02:00:00:00:00:02"])
    with pytest.raises(nb.NetlinkBulkError, match="2 of 2 answers missing"):
        _fdb_lookup(NetlinkBulk(LookupKernel({}, silent=True), timeout=0.05), ["02:00:00:00:00:01", "02:00:00:00:00:02"])


def test_answers_of_other_sequence_numbers_and_repeats_are_skipped() -> None:
    rec = NeighRecord(socket.AF_BRIDGE, 7, "02:00:00:00:00:01", "10.0.0.2", NTF_SELF, NUD_PERMANENT)
    answers: list[object] = [nb._UNANSWERED] * 2
    data = (pyroute2_neigh_message(rec, seq=99, flags=0) + pyroute2_neigh_message(rec, seq=11, flags=0)
            + pyroute2_neigh_message(rec, seq=11, flags=0) + kernel_error(10, errno.ENOENT))
    assert nb.parse_answers(data, 10, answers, lambda lladdr, dst: lladdr.hex(":")) == 2
    assert answers == [nb.Ack(10, errno.ENOENT), "02:00:00:00:00:01"]
