"""Unit tests for agent/ipsnoop.py: parse_frame on frames built with scapy (no sockets, no namespaces).

parse_frame learns a VM's (MAC, IP) binding from what the VM itself sends: ARP requests, replies
and gratuitous ARP (the sender's address, only when the ARP sender MAC is the Ethernet source), and
IPv6 neighbour discovery (NA: the target address; NS: the IPv6 source address). Probes and
addresses that cannot belong to a VM (unspecified, multicast, link-local, loopback) prove nothing.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw

from agent.ipsnoop import IpSeen, parse_frame

VM = "52:54:00:12:34:56"
OTHER = "52:54:00:ab:cd:ef"
BCAST = "ff:ff:ff:ff:ff:ff"
V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


def arp(op: int = 1, *, src: str = VM, hwsrc: str | None = None, psrc: str = "192.168.1.5",
        pdst: str = "192.168.1.1", dst: str = BCAST, hwdst: str = "00:00:00:00:00:00", vlan: int | None = None,
        **fields: object) -> bytes:
    """An Ethernet frame carrying ARP; the ARP sender MAC defaults to the Ethernet source."""
    layer = ARP(op=op, hwsrc=hwsrc or src, psrc=psrc, hwdst=hwdst, pdst=pdst, **fields)
    return _frame(layer, src=src, dst=dst, vlan=vlan)


def na(target: str = "2001:db8::5", *, src: str = VM, ip_src: str | None = None, dst: str = "33:33:00:00:00:01",
       ip_dst: str = "ff02::1", vlan: int | None = None, option: bool = True, **flags: object) -> bytes:
    """An unsolicited neighbour advertisement for `target` (with the target link-layer option)."""
    icmp: Packet = ICMPv6ND_NA(tgt=target, **flags)
    if option:
        icmp = icmp / ICMPv6NDOptDstLLAddr(lladdr=src)
    return _frame(IPv6(src=ip_src or target, dst=ip_dst) / icmp, src=src, dst=dst, vlan=vlan)


def ns(source: str = "2001:db8::5", target: str = "2001:db8::1", *, src: str = VM, vlan: int | None = None,
       option: bool = True) -> bytes:
    """A neighbour solicitation from `source` asking for `target` (solicited-node multicast)."""
    solicited = ipaddress.IPv6Address(target).packed[-3:]
    ip_dst = str(ipaddress.IPv6Address(b"\xff\x02" + bytes(9) + b"\x01\xff" + solicited))
    icmp: Packet = ICMPv6ND_NS(tgt=target)
    if option:
        icmp = icmp / ICMPv6NDOptSrcLLAddr(lladdr=src)
    mac_dst = "33:33:ff:" + ":".join(f"{b:02x}" for b in solicited)
    return _frame(IPv6(src=source, dst=ip_dst) / icmp, src=src, dst=mac_dst, vlan=vlan)


def _frame(payload: Packet, *, src: str, dst: str, vlan: int | None) -> bytes:
    if vlan is None:
        return bytes(Ether(src=src, dst=dst) / payload)
    return bytes(Ether(src=src, dst=dst) / Dot1Q(vlan=vlan) / payload)


# -- ARP ------------------------------------------------------------------------------------------


def test_arp_request_proves_the_sender_binding() -> None:
    frame = arp(op=1, psrc="192.168.1.5", pdst="192.168.1.1")
    assert len(frame) == 42
    assert parse_frame(frame) == (VM, V4("192.168.1.5"))


def test_arp_reply_proves_the_sender_binding() -> None:
    frame = arp(op=2, psrc="192.168.1.5", pdst="192.168.1.1", dst=OTHER, hwdst=OTHER)
    assert parse_frame(frame) == (VM, V4("192.168.1.5"))


@pytest.mark.parametrize("op", [1, 2], ids=["request", "reply"])
def test_gratuitous_arp(op: int) -> None:
    # sender and target address are the VM's own, sent to broadcast (after boot, after a migration)
    frame = arp(op=op, psrc="192.168.1.5", pdst="192.168.1.5", hwdst=BCAST if op == 2 else "00:00:00:00:00:00")
    assert parse_frame(frame) == (VM, V4("192.168.1.5"))


def test_arp_announcement_after_probe() -> None:
    probe = arp(op=1, psrc="0.0.0.0", pdst="192.168.1.5")  # RFC 5227 probe: "is anyone using .5?"
    announce = arp(op=1, psrc="192.168.1.5", pdst="192.168.1.5")
    assert parse_frame(probe) is None
    assert parse_frame(announce) == (VM, V4("192.168.1.5"))


def test_arp_takes_the_sender_not_the_target() -> None:
    # a request names the address it asks for; that address's owner is someone else
    assert parse_frame(arp(psrc="10.1.2.3", pdst="10.1.2.99"))[1] == V4("10.1.2.3")  # type: ignore[index]


@pytest.mark.parametrize("hwsrc", [OTHER, "52:54:00:12:34:57", BCAST, "00:00:00:00:00:00"])
def test_arp_sender_mac_must_be_the_ethernet_source(hwsrc: str) -> None:
    # proxy ARP, a relayed or a spoofed frame: the frame does not prove the binding of its source
    assert parse_frame(arp(hwsrc=hwsrc)) is None


@pytest.mark.parametrize("src", ["01:00:5e:00:00:01", "33:33:00:00:00:01", BCAST, "03:00:00:00:00:00", "00:00:00:00:00:00"])
def test_arp_from_a_non_unicast_or_zero_source_is_ignored(src: str) -> None:
    assert parse_frame(arp(src=src, hwsrc=src)) is None


@pytest.mark.parametrize("psrc", [
    "0.0.0.0",  # probe
    "224.0.0.1", "239.255.255.250",  # multicast
    "169.254.1.1", "169.254.0.1",  # link-local
    "127.0.0.1", "127.255.0.9",  # loopback
])
def test_arp_sender_addresses_that_prove_nothing(psrc: str) -> None:
    assert parse_frame(arp(psrc=psrc)) is None


@pytest.mark.parametrize("psrc", ["192.168.1.5", "10.0.0.1", "172.16.0.10", "100.64.0.1", "8.8.8.8", "192.0.2.1"])
def test_arp_usable_sender_addresses(psrc: str) -> None:
    assert parse_frame(arp(psrc=psrc)) == (VM, V4(psrc))


def test_arp_locally_administered_unicast_source_is_accepted() -> None:
    mac = "02:00:00:00:00:01"
    assert parse_frame(arp(src=mac)) == (mac, V4("192.168.1.5"))


def test_arp_mac_is_returned_lower_case_with_colons() -> None:
    found = parse_frame(arp(src="AA:BB:CC:DD:EE:0F"))
    assert found == ("aa:bb:cc:dd:ee:0f", V4("192.168.1.5"))


@pytest.mark.parametrize("vlan", [1, 100, 4094])
def test_arp_behind_an_8021q_tag(vlan: int) -> None:
    frame = arp(vlan=vlan)
    assert frame[12:14] == b"\x81\x00" and len(frame) == 46
    assert parse_frame(frame) == (VM, V4("192.168.1.5"))


def test_arp_behind_an_8021q_tag_still_checks_the_sender_mac() -> None:
    assert parse_frame(arp(vlan=100, hwsrc=OTHER)) is None
    assert parse_frame(arp(vlan=100, psrc="0.0.0.0")) is None


def test_arp_with_ethernet_padding_is_accepted() -> None:
    # on the wire a frame is at least 60 bytes: ARP is followed by zero padding
    frame = arp() + bytes(18)
    assert len(frame) == 60
    assert parse_frame(frame) == (VM, V4("192.168.1.5"))


@pytest.mark.parametrize("offset, value", [
    (14, b"\x00\x06"),  # hardware type IEEE 802, not Ethernet
    (16, b"\x86\xdd"),  # protocol type not IPv4
    (18, b"\x08"),  # hardware address length
    (19, b"\x10"),  # protocol address length
], ids=["htype", "ptype", "hlen", "plen"])
def test_arp_for_other_hardware_or_protocols_is_ignored(offset: int, value: bytes) -> None:
    # the valid frame with one header field changed (the addresses stay where they were)
    frame = bytearray(arp())
    assert parse_frame(bytes(frame)) is not None
    frame[offset:offset + len(value)] = value
    assert parse_frame(bytes(frame)) is None


@pytest.mark.parametrize("fields", [{"hwtype": 6}, {"hwlen": 8}, {"plen": 16}], ids=["hwtype", "hwlen", "plen"])
def test_arp_built_for_other_hardware_or_lengths_is_ignored(fields: dict) -> None:
    assert parse_frame(arp(**fields)) is None


@pytest.mark.parametrize("cut", [14, 15, 20, 41])
def test_truncated_arp_is_ignored(cut: int) -> None:
    assert parse_frame(arp()[:cut]) is None


@pytest.mark.parametrize("cut", [14, 16, 17, 18, 30, 45])
def test_truncated_tagged_arp_is_ignored(cut: int) -> None:
    assert parse_frame(arp(vlan=100)[:cut]) is None


# -- IPv6 neighbour discovery --------------------------------------------------------------------


def test_unsolicited_na_proves_the_target() -> None:
    assert parse_frame(na("2001:db8::5")) == (VM, V6("2001:db8::5"))


def test_na_takes_the_target_not_the_ipv6_source() -> None:
    # a solicited NA from the VM's link-local address, announcing its global one
    frame = na("2001:db8::5", ip_src="fe80::5054:ff:fe12:3456", ip_dst="2001:db8::1", dst=OTHER, S=1)
    assert parse_frame(frame) == (VM, V6("2001:db8::5"))


def test_na_without_options_is_accepted() -> None:
    frame = na("2001:db8::5", option=False)
    assert len(frame) == 14 + 40 + 24
    assert parse_frame(frame) == (VM, V6("2001:db8::5"))


@pytest.mark.parametrize("target", ["fe80::1", "fe80::5054:ff:fe12:3456", "::", "ff02::1", "ff05::2", "::1"],
                         ids=["link-local", "link-local-eui64", "unspecified", "multicast", "multicast-site", "loopback"])
def test_na_targets_that_prove_nothing(target: str) -> None:
    assert parse_frame(na(target, ip_src="fe80::1")) is None


@pytest.mark.parametrize("target", ["2001:db8::5", "fd00:1::5", "2a00:1450:4001:81c::200e", "2001:db8::ffff:192.168.1.5"])
def test_na_usable_targets(target: str) -> None:
    assert parse_frame(na(target)) == (VM, V6(target))


def test_ns_proves_the_ipv6_source() -> None:
    assert parse_frame(ns("2001:db8::5", "2001:db8::1")) == (VM, V6("2001:db8::5"))


def test_ns_does_not_take_the_target() -> None:
    # the target is the address being looked up: someone else's
    found = parse_frame(ns("2001:db8::5", "2001:db8::99"))
    assert found is not None and found[1] == V6("2001:db8::5")


def test_ns_for_duplicate_address_detection_is_ignored() -> None:
    # DAD: from ::, asking whether the tentative address (the target) is in use
    assert parse_frame(ns("::", "2001:db8::5", option=False)) is None


@pytest.mark.parametrize("source", ["fe80::5054:ff:fe12:3456", "ff02::1", "::1"], ids=["link-local", "multicast", "loopback"])
def test_ns_sources_that_prove_nothing(source: str) -> None:
    assert parse_frame(ns(source, "2001:db8::1")) is None


def test_ns_without_options_is_accepted() -> None:
    assert parse_frame(ns("2001:db8::5", option=False)) == (VM, V6("2001:db8::5"))


@pytest.mark.parametrize("src", ["33:33:00:00:00:01", "01:00:5e:00:00:01", BCAST, "00:00:00:00:00:00"])
def test_nd_from_a_non_unicast_or_zero_source_is_ignored(src: str) -> None:
    assert parse_frame(na(src=src)) is None
    assert parse_frame(ns(src=src)) is None


@pytest.mark.parametrize("vlan", [1, 100, 4094])
def test_nd_behind_an_8021q_tag(vlan: int) -> None:
    assert parse_frame(na("2001:db8::5", vlan=vlan)) == (VM, V6("2001:db8::5"))
    assert parse_frame(ns("2001:db8::6", vlan=vlan)) == (VM, V6("2001:db8::6"))


def test_nd_mac_is_the_ethernet_source_lower_case() -> None:
    assert parse_frame(na(src="AA:BB:CC:00:11:22")) == ("aa:bb:cc:00:11:22", V6("2001:db8::5"))


@pytest.mark.parametrize("icmp", [
    ICMPv6ND_RS(),
    ICMPv6ND_RA(),
    ICMPv6EchoRequest(data=bytes(32)),
], ids=["router-solicitation", "router-advertisement", "echo-request"])
def test_other_icmpv6_messages_are_ignored(icmp: Packet) -> None:
    # padded, so that the frame is long enough for the ICMPv6 type to be looked at
    frame = bytes(Ether(src=VM, dst="33:33:00:00:00:02") / IPv6(src="2001:db8::5", dst="ff02::2") / icmp) + bytes(24)
    assert len(frame) >= 14 + 64
    assert parse_frame(frame) is None


def test_ipv6_that_is_not_icmpv6_is_ignored() -> None:
    frame = bytes(Ether(src=VM, dst=OTHER) / IPv6(src="2001:db8::5", dst="2001:db8::1") / UDP(sport=546, dport=547) / Raw(bytes(40)))
    assert parse_frame(frame) is None


def test_nd_after_an_extension_header_is_not_parsed() -> None:
    # NS/NA never carry extension headers; whatever follows one is not looked into
    frame = bytes(Ether(src=VM, dst="33:33:00:00:00:01") / IPv6(src="2001:db8::5", dst="ff02::1")
                  / IPv6ExtHdrHopByHop() / ICMPv6ND_NA(tgt="2001:db8::5"))
    assert parse_frame(frame) is None


@pytest.mark.parametrize("cut", [14, 30, 54, 60, 77])
def test_truncated_na_is_ignored(cut: int) -> None:
    frame = na(option=False)
    assert len(frame) == 78
    assert parse_frame(frame[:cut]) is None


@pytest.mark.parametrize("cut", [14, 18, 58, 81])
def test_truncated_tagged_ns_is_ignored(cut: int) -> None:
    frame = ns(vlan=7, option=False)
    assert len(frame) == 82
    assert parse_frame(frame[:cut]) is None


# -- anything else --------------------------------------------------------------------------------


@pytest.mark.parametrize("frame", [
    b"",
    b"\x00",
    bytes(13),
    bytes(14),
    bytes(60),
    b"\xff" * 64,
    bytes.fromhex("ffffffffffff525400123456") + b"\x08\x06",  # ARP ethertype, nothing after it
    bytes.fromhex("ffffffffffff525400123456") + b"\x81\x00",  # 802.1Q, tag cut off
    bytes.fromhex("ffffffffffff525400123456") + b"\x81\x00\x00\x64",  # tag without inner ethertype
    bytes.fromhex("ffffffffffff525400123456") + b"\x86\xdd",  # IPv6, nothing after it
], ids=["empty", "one-byte", "13-bytes", "14-zero", "60-zero", "all-ones", "arp-empty", "vlan-cut", "vlan-no-type", "ipv6-empty"])
def test_garbage_and_short_frames(frame: bytes) -> None:
    assert parse_frame(frame) is None


def test_ipv4_frames_are_ignored() -> None:
    frame = bytes(Ether(src=VM, dst=OTHER) / IP(src="192.168.1.5", dst="192.168.1.1") / UDP() / Raw(bytes(40)))
    assert parse_frame(frame) is None


def test_arp_bytes_behind_another_ethertype_are_ignored() -> None:
    frame = bytearray(arp())
    frame[12:14] = b"\x08\x00"
    assert parse_frame(bytes(frame)) is None


def test_ipseen_is_a_value() -> None:
    assert IpSeen(100, VM, V4("192.168.1.5")) == IpSeen(100, VM, V4("192.168.1.5"))
    assert len({IpSeen(100, VM, V4("192.168.1.5")), IpSeen(200, VM, V4("192.168.1.5"))}) == 2


# -- properties -----------------------------------------------------------------------------------

_unicast_macs = st.binary(min_size=6, max_size=6).filter(lambda b: not b[0] & 1 and b != bytes(6))
_vlans = st.one_of(st.none(), st.integers(0, 4095))


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _check_result(frame: bytes, found: object) -> None:
    """Whatever parse_frame returns is None or (the frame's own source MAC, an address that can be a VM's)."""
    if found is None:
        return
    assert isinstance(found, tuple) and len(found) == 2
    mac, address = found
    assert mac == _mac_text(frame[6:12])
    assert isinstance(address, (V4, V6))
    assert not (address.is_unspecified or address.is_multicast or address.is_loopback or address.is_link_local)


@settings(max_examples=1000, deadline=None)
@given(frame=st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(frame: bytes) -> None:
    _check_result(frame, parse_frame(frame))


_headers = st.sampled_from([
    bytes.fromhex("ffffffffffff525400123456" "0806"),
    bytes.fromhex("ffffffffffff525400123456" "8100" "0064" "0806"),
    bytes.fromhex("333300000001525400123456" "86dd"),
    bytes.fromhex("333300000001525400123456" "8100" "0064" "86dd"),
])


@settings(max_examples=1000, deadline=None)
@given(header=_headers, body=st.binary(max_size=120))
def test_arbitrary_arp_and_ipv6_bodies_never_raise(header: bytes, body: bytes) -> None:
    # random bytes behind the ethertypes parse_frame looks into, so its parsers are reached
    frame = header + body
    _check_result(frame, parse_frame(frame))


_valid_frames = st.sampled_from([
    arp(), arp(op=2), arp(vlan=100), arp(psrc="10.9.8.7", pdst="10.9.8.7"),
    na(), na(vlan=5), na(option=False), ns(), ns(vlan=4094), ns(option=False),
])


@settings(max_examples=500, deadline=None)
@given(frame=_valid_frames, data=st.data())
def test_truncated_and_mutated_valid_frames_never_raise(frame: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(frame)))
    _check_result(frame[:cut], parse_frame(frame[:cut]))
    mutated = bytearray(frame)
    for index in data.draw(st.lists(st.integers(0, len(frame) - 1), max_size=6)):
        mutated[index] = data.draw(st.integers(0, 255))
    _check_result(bytes(mutated), parse_frame(bytes(mutated)))


@pytest.mark.parametrize("frame", [arp(), arp(vlan=100), na(option=False), ns(option=False), ns(vlan=3, option=False)],
                         ids=["arp", "arp-vlan", "na", "ns", "ns-vlan"])
def test_every_proper_prefix_of_a_minimal_frame_is_ignored(frame: bytes) -> None:
    assert parse_frame(frame) is not None
    for cut in range(len(frame)):
        assert parse_frame(frame[:cut]) is None, cut


def _usable(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not (address.is_unspecified or address.is_multicast or address.is_loopback or address.is_link_local)


@settings(max_examples=300, deadline=None)
@given(mac=_unicast_macs, address=st.ip_addresses(v=4), op=st.sampled_from([1, 2]), vlan=_vlans)
def test_arp_learns_exactly_the_usable_sender_addresses(mac: bytes, address: ipaddress.IPv4Address, op: int, vlan: int | None) -> None:
    frame = arp(op=op, src=_mac_text(mac), psrc=str(address), vlan=vlan)
    assert parse_frame(frame) == ((_mac_text(mac), address) if _usable(address) else None)


@settings(max_examples=300, deadline=None)
@given(mac=_unicast_macs, address=st.ip_addresses(v=6), vlan=_vlans)
def test_na_learns_exactly_the_usable_targets(mac: bytes, address: ipaddress.IPv6Address, vlan: int | None) -> None:
    frame = na(str(address), src=_mac_text(mac), ip_src="fe80::1", vlan=vlan)
    assert parse_frame(frame) == ((_mac_text(mac), address) if _usable(address) else None)


@settings(max_examples=300, deadline=None)
@given(mac=_unicast_macs, address=st.ip_addresses(v=6), vlan=_vlans)
def test_ns_learns_exactly_the_usable_sources(mac: bytes, address: ipaddress.IPv6Address, vlan: int | None) -> None:
    frame = ns(str(address), "2001:db8::1", src=_mac_text(mac), vlan=vlan)
    assert parse_frame(frame) == ((_mac_text(mac), address) if _usable(address) else None)


@settings(max_examples=200, deadline=None)
@given(mac=_unicast_macs, other=_unicast_macs, address=st.ip_addresses(v=4))
def test_arp_with_a_foreign_sender_mac_is_never_learned(mac: bytes, other: bytes, address: ipaddress.IPv4Address) -> None:
    frame = arp(src=_mac_text(mac), hwsrc=_mac_text(other), psrc=str(address))
    assert parse_frame(frame) == ((_mac_text(mac), address) if mac == other and _usable(address) else None)
