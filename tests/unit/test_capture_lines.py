"""`labctl capture`'s pure parts: one line per packet (VXLAN with its VNI and inner frame), the NODE[:IF]
target, and tcpdump's command line — on packets built with scapy, without root."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from labctl.capture import summary_line
from labctl.errors import LabError
from labctl.sniff import CapturePoint, parse_target, tcpdump_argv

A, B = "02:00:00:00:01:01", "02:00:00:00:02:04"


def _wire(pkt: Ether) -> Ether:
    """As a capture reads it: bytes on the wire, decoded again."""
    return Ether(bytes(pkt))


def _vxlan(inner: Ether, vni: int = 100) -> Ether:
    return _wire(Ether(src="02:aa:00:00:00:01", dst="02:bb:00:00:00:01") / IP(src="10.0.0.101", dst="10.0.0.102")
                 / UDP(sport=51234, dport=4789) / VXLAN(vni=vni, flags=0x08) / inner)


def test_vxlan_shows_outer_vteps_vni_and_the_inner_icmp() -> None:
    inner = Ether(src=A, dst=B) / IP(src="192.168.100.11", dst="192.168.100.24") / ICMP(type=8, id=7, seq=3)
    assert summary_line(_vxlan(inner, vni=4242)) == (
        f"10.0.0.101 > 10.0.0.102 VNI 4242: {A} > {B}, IP 192.168.100.11 > 192.168.100.24 ICMP echo-request id 7 seq 3")


def test_vxlan_carrying_arp() -> None:
    inner = Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=A, psrc="192.168.100.11", pdst="192.168.100.24")
    line = summary_line(_vxlan(inner, vni=200))
    assert line == f"10.0.0.101 > 10.0.0.102 VNI 200: {A} > ff:ff:ff:ff:ff:ff, ARP who-has 192.168.100.24 tell 192.168.100.11"


def test_plain_frames() -> None:
    bgp = _wire(Ether(src=A, dst=B) / IP(src="10.0.0.101", dst="10.0.0.100") / TCP(sport=179, dport=40000, flags="PA") / Raw(b"x" * 19))
    assert summary_line(bgp) == f"{A} > {B}, IP 10.0.0.101.179 > 10.0.0.100.40000 TCP [PA] len 19"
    reply = _wire(Ether(src=B, dst=A) / ARP(op=2, hwsrc=B, psrc="192.168.100.24", pdst="192.168.100.11"))
    assert summary_line(reply) == f"{B} > {A}, ARP 192.168.100.24 is-at {B}"
    v6 = _wire(Ether(src=A, dst=B) / IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=5, dport=53))
    assert summary_line(v6) == f"{A} > {B}, IP6 fd00::1.5 > fd00::2.53 UDP len 0"
    lldp = _wire(Ether(src=A, dst=B, type=0x88CC) / Raw(b"abc"))
    assert summary_line(lldp) == f"{A} > {B}, ethertype 0x88cc, length 17"


def test_udp_to_another_port_is_not_vxlan() -> None:
    pkt = _wire(Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000, dport=4790) / Raw(b"\x08" + b"\0" * 7))
    assert "VNI" not in summary_line(pkt)


@pytest.mark.parametrize(("text", "expected"), [
    ("evpn-1", ("evpn-1", None)), ("evpn-1:br0", ("evpn-1", "br0")), ("vm1:eth0", ("vm1", "eth0")),
])
def test_targets(text: str, expected: tuple[str, str | None]) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize("text", ["", ":uplink", "evpn-1:"])
def test_bad_targets_are_one_line(text: str) -> None:
    with pytest.raises(LabError, match="expected NODE or NODE:INTERFACE"):
        parse_target(text)


def test_tcpdump_argv() -> None:
    point = CapturePoint("evpn-1", "evpn-1", "uplink")
    argv = tcpdump_argv(point, "/tmp/x.pcap", 10, "udp port 4789", live=False)
    assert argv[:4] == ["ip", "netns", "exec", "evpn-1"]
    assert argv[4:] == ["tcpdump", "-n", "-i", "uplink", "-s", "0", "-Z", "root", "-U", "-w", "/tmp/x.pcap", "-c", "10", "udp port 4789"]
    live = tcpdump_argv(point, "-", None, None, live=True)
    assert live[-3:] == ["-w", "-", "--immediate-mode"] and "-c" not in live
