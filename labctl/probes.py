"""Hostile traffic, made for real: what an untrusted VM (or a box on the underlay) can put on the wire.

Used by `labctl verify` (checks vxlan-injection, arp-spoof) and the security integration tests. The
frames are built here (pure) and sent from inside a namespace of the lab: a VM's eth0 (raw Ethernet,
as any root process in a VM can) or a node's IP stack (raw IP, any source address).
"""

from __future__ import annotations

import socket

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from .capture import VXLAN_PORT, Predicate
from .netns import inside

MARKER_MAC = "02:66:66:66:66:66"  # the source MAC of every injected inner frame


def inner_frame(marker_mac: str = MARKER_MAC, payload: bytes = b"evpn-lab injected") -> Ether:
    """What an attacker wants delivered into another network: a broadcast any VM there would receive."""
    return Ether(src=marker_mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=marker_mac, psrc="0.0.0.0", pdst="0.0.0.0") / Raw(payload)


def vxlan_packet(src_ip: str, dst_ip: str, vni: int, inner: Ether | None = None) -> IP:
    """A VXLAN packet (UDP 4789) carrying `inner` into `vni`."""
    return IP(src=src_ip, dst=dst_ip, ttl=64) / UDP(sport=49152, dport=VXLAN_PORT) / VXLAN(vni=vni, flags=0x08) / (inner or inner_frame())


def vxlan_from_vm(vm_mac: str, next_hop_mac: str, src_ip: str, dst_ip: str, vni: int) -> bytes:
    """The Ethernet frame a VM sends to inject into `vni` through `dst_ip` (next hop: `next_hop_mac`)."""
    return bytes(Ether(src=vm_mac, dst=next_hop_mac) / vxlan_packet(src_ip, dst_ip, vni))


def spoofed_garp(mac: str, claimed_ip: str) -> bytes:
    """A gratuitous ARP in which `mac` claims `claimed_ip` (someone else's address, for a spoofer)."""
    return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=mac, psrc=claimed_ip, hwdst="00:00:00:00:00:00", pdst=claimed_ip))


def injected(marker_mac: str = MARKER_MAC) -> Predicate:
    """Captures keep the frames an injection delivered."""
    return lambda pkt: pkt.src.lower() == marker_mac


def arp_reply_for(ip: str) -> Predicate:
    """Captures keep ARP replies that answer for `ip`."""
    return lambda pkt: ARP in pkt and pkt[ARP].op == 2 and pkt[ARP].psrc == ip


def send_ip(ns_name: str, packet: IP, count: int = 3) -> None:
    """Send an IP packet (any source address) `count` times from namespace `ns_name`'s stack."""
    with inside(ns_name):
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    with sock:
        raw = bytes(packet)
        for _ in range(count):
            sock.sendto(raw, (packet[IP].dst, 0))


def udp_broadcast(mac: str, ip: str, broadcast: str) -> bytes:
    """A harmless frame that makes a bridge learn `mac`: UDP to the discard port of the subnet's broadcast
    address, from a VM's own address (no ARP: nobody learns an IP address from it)."""
    return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src=ip, dst=broadcast, ttl=1) / UDP(sport=9, dport=9) / Raw(b"evpn-lab chaos"))
