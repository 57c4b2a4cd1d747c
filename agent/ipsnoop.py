"""Learn local VMs' IP addresses from what they send: ARP (requests, replies, gratuitous) and IPv6
neighbour discovery, read with packet sockets on the served bridges. Works the same on a real
hypervisor: no help from whoever created the VMs."""

from __future__ import annotations

import ipaddress
import logging
import select
import socket
import struct
from dataclasses import dataclass

from .events import EventQueue, IpsSeen
from .routes import IPAddress
from .worker import Worker

log = logging.getLogger("evpn.agent.ipsnoop")

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
ICMPV6 = 58
ND_NEIGHBOR_SOLICIT = 135
ND_NEIGHBOR_ADVERT = 136


@dataclass(frozen=True)
class IpSeen:
    """VM `mac` uses address `ip` on the bridge of `vni`."""

    vni: int
    mac: str
    ip: IPAddress


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse_frame(frame: bytes) -> tuple[str, IPAddress] | None:
    """(MAC, IP) a frame proves, or None. Only the sender's own binding is taken (sender MAC = frame source)."""
    if len(frame) < 14:
        return None
    src = frame[6:12]
    ethertype = struct.unpack("!H", frame[12:14])[0]
    offset = 14
    if ethertype == ETH_P_8021Q and len(frame) >= 18:
        ethertype = struct.unpack("!H", frame[16:18])[0]
        offset = 18
    if src[0] & 1 or src == bytes(6):
        return None
    if ethertype == ETH_P_ARP:
        arp = frame[offset:offset + 28]
        if len(arp) < 28:
            return None
        htype, ptype, hlen, plen = struct.unpack("!HHBB", arp[:6])
        if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4) or arp[8:14] != src:
            return None
        ip = ipaddress.IPv4Address(arp[14:18])
        if ip.is_unspecified or ip.is_multicast or ip.is_loopback or ip.is_link_local:
            return None  # ARP probes (0.0.0.0) prove nothing
        return _mac(src), ip
    if ethertype == ETH_P_IPV6:
        ip6 = frame[offset:]
        if len(ip6) < 40 + 24 or ip6[6] != ICMPV6:
            return None
        icmp_type = ip6[40]
        source = ipaddress.IPv6Address(ip6[8:24])
        if icmp_type == ND_NEIGHBOR_ADVERT:
            addr = ipaddress.IPv6Address(ip6[48:64])  # the target address the sender announces
        elif icmp_type == ND_NEIGHBOR_SOLICIT:
            addr = source  # the sender's own address (:: during duplicate address detection)
        else:
            return None
        if addr.is_unspecified or addr.is_link_local or addr.is_multicast or addr.is_loopback:
            return None
        return _mac(src), addr
    return None


class IpSnooper(Worker):
    """One thread reading ARP and IPv6 frames on every served bridge; results go out as `IpsSeen`."""

    name = "ip-snoop"

    def __init__(self, bridges: dict[str, int], out: EventQueue) -> None:
        super().__init__(out)
        self.bridges = bridges  # bridge name -> VNI

    def _open(self) -> dict[socket.socket, int]:
        sockets: dict[socket.socket, int] = {}
        for bridge, vni in self.bridges.items():
            for proto in (ETH_P_ARP, ETH_P_IPV6):
                try:
                    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
                    sock.bind((bridge, proto))
                    # promiscuous while we listen: the bridge then also hands us unicast frames between
                    # VMs and remote VTEPs (ARP replies, ND adverts), not only broadcasts
                    index = socket.if_nametoindex(bridge)
                    sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack("iHH8s", index, PACKET_MR_PROMISC, 0, b""))
                except OSError as exc:
                    log.error("event=snoop-unavailable bridge=%s error=%r (no IP learning there)", bridge, str(exc))
                    continue
                sockets[sock] = vni
        return sockets

    def loop(self) -> None:
        sockets = self._open()
        try:
            while not self.stopping.is_set() and sockets:
                ready, _, _ = select.select(list(sockets), [], [], 0.5)
                seen: list[IpSeen] = []
                for sock in ready:
                    frame, address = sock.recvfrom(2048)
                    if address[2] == PACKET_OUTGOING:
                        continue
                    found = parse_frame(frame)
                    if found is not None:
                        seen.append(IpSeen(sockets[sock], found[0], found[1]))
                if seen:
                    self.out.put(IpsSeen(tuple(seen)))
        finally:
            for sock in sockets:
                sock.close()
