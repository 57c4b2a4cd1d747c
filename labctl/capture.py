"""Packet captures on the lab's interfaces (scapy), opened inside the node's namespace."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Iterator

from pyroute2 import netns
from scapy.all import AsyncSniffer, conf  # type: ignore[attr-defined]
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet

VXLAN_PORT = 4789


@dataclass(frozen=True)
class VxlanFrame:
    """One VXLAN packet seen on an underlay link: outer VTEPs, VNI and the inner frame's key fields."""

    outer_src: str
    outer_dst: str
    vni: int
    inner_src_mac: str
    inner_dst_mac: str
    inner_src_ip: str | None
    inner_dst_ip: str | None
    inner_kind: str  # 'icmp', 'arp', 'other'


def decode_vxlan(pkt: Packet) -> VxlanFrame | None:
    if IP not in pkt or UDP not in pkt or pkt[UDP].dport != VXLAN_PORT or VXLAN not in pkt:
        return None
    inner = pkt[VXLAN].payload
    if not isinstance(inner, Ether):
        return None
    src_ip = dst_ip = None
    kind = "other"
    if IP in inner:
        src_ip, dst_ip = inner[IP].src, inner[IP].dst
        kind = "icmp" if inner[IP].proto == 1 else "ip"
    elif ARP in inner:
        src_ip, dst_ip = inner[ARP].psrc, inner[ARP].pdst
        kind = "arp"
    return VxlanFrame(pkt[IP].src, pkt[IP].dst, int(pkt[VXLAN].vni), inner.src.lower(), inner.dst.lower(), src_ip, dst_ip, kind)


class Capture:
    """A running capture on `ifname` inside namespace `ns_name` with a BPF filter."""

    def __init__(self, ns_name: str, ifname: str, bpf: str) -> None:
        self.where = f"{ns_name}/{ifname}"
        netns.pushns(ns_name)
        try:
            self._sock = conf.L2listen(iface=ifname, filter=bpf)
        finally:
            netns.popns()
        self._sniffer = AsyncSniffer(opened_socket=self._sock, store=True)
        self._sniffer.start()
        self.packets: list[Packet] = []

    def stop(self) -> list[Packet]:
        time.sleep(0.2)  # let the last packets in flight arrive
        result = self._sniffer.stop()
        self.packets = list(result) if result is not None else []
        self._sock.close()
        return self.packets


@contextlib.contextmanager
def capturing(points: list[tuple[str, str]], bpf: str) -> Iterator[dict[str, Capture]]:
    """Capture on several (namespace, interface) points at once; stops them all on exit."""
    caps: dict[str, Capture] = {}
    try:
        for ns_name, ifname in points:
            caps[ns_name] = Capture(ns_name, ifname, bpf)
        time.sleep(0.1)
        yield caps
    finally:
        for cap in caps.values():
            cap.stop()
