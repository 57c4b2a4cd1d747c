"""Packet captures on the lab's interfaces (scapy), opened inside the node's namespace."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet

from .netns import inside

VXLAN_PORT = 4789
ETH_P_ALL = 0x0003


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


# -- one line per packet (labctl capture's live view), pure -------------------------------------

ARP_OPS = {1: "who-has", 2: "is-at"}


def _l3(pkt: Packet) -> str:
    """The network-layer part of a line: ARP, IPv4/IPv6 with ICMP, TCP or UDP details, else scapy's summary."""
    if ARP in pkt:
        arp = pkt[ARP]
        if arp.op == 1:
            return f"ARP who-has {arp.pdst} tell {arp.psrc}"
        if arp.op == 2:
            return f"ARP {arp.psrc} is-at {arp.hwsrc}"
        return f"ARP op {arp.op} {arp.psrc} > {arp.pdst}"
    ip = pkt[IP] if IP in pkt else pkt[IPv6] if IPv6 in pkt else None
    if ip is None:
        return f"ethertype 0x{pkt.type:04x}, length {len(pkt)}" if isinstance(pkt, Ether) else pkt.summary()
    family = "IP" if isinstance(ip, IP) else "IP6"
    if ICMP in pkt:
        icmp = pkt[ICMP]
        kind = {0: "echo-reply", 8: "echo-request"}.get(int(icmp.type), f"type {icmp.type} code {icmp.code}")
        extra = f" id {icmp.id} seq {icmp.seq}" if icmp.type in (0, 8) else ""
        return f"{family} {ip.src} > {ip.dst} ICMP {kind}{extra}"
    for proto, name in ((TCP, "TCP"), (UDP, "UDP")):
        if proto in pkt:
            seg = pkt[proto]
            flags = f" [{seg.flags}]" if proto is TCP else ""
            return f"{family} {ip.src}.{seg.sport} > {ip.dst}.{seg.dport} {name}{flags} len {len(seg.payload)}"
    return f"{family} {ip.src} > {ip.dst} proto {ip.proto if isinstance(ip, IP) else ip.nh}"


def _frame(pkt: Packet) -> str:
    macs = f"{pkt.src} > {pkt.dst}, " if isinstance(pkt, Ether) else ""
    return macs + _l3(pkt)


def summary_line(pkt: Packet) -> str:
    """One line for a captured frame; a VXLAN packet as `outer src > dst VNI n: inner frame`."""
    if IP in pkt and UDP in pkt and VXLAN in pkt and VXLAN_PORT in (pkt[UDP].dport, pkt[UDP].sport):
        inner = pkt[VXLAN].payload
        return f"{pkt[IP].src} > {pkt[IP].dst} VNI {int(pkt[VXLAN].vni)}: " + (_frame(inner) if inner else "(no inner frame)")
    return _frame(pkt)


Predicate = Callable[[Packet], bool]


def vxlan_only(pkt: Packet) -> bool:
    return UDP in pkt and VXLAN_PORT in (pkt[UDP].dport, pkt[UDP].sport)


def is_vxlan_frame(frame: bytes) -> bool:
    """The bytes-level test of `vxlan_only` (untagged IPv4/UDP, port 4789 either way), done before scapy
    parses a frame: BGP and other traffic on the uplinks is dropped without building packets."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return False
    udp = 14 + (frame[14] & 0x0F) * 4
    if len(frame) < udp + 4:
        return False
    return VXLAN_PORT in (int.from_bytes(frame[udp:udp + 2], "big"), int.from_bytes(frame[udp + 2:udp + 4], "big"))


def from_mac(mac: str) -> Predicate:
    return lambda pkt: pkt.src.lower() == mac.lower()


class Capture:
    """A running capture on `ifname` inside namespace `ns_name`, keeping the frames `keep` accepts.

    The packet socket is opened inside the namespace and bound by name there, so a VM's "eth0" is the
    VM's, never the machine's own.
    """

    def __init__(self, ns_name: str, ifname: str | tuple[str, ...], keep: Predicate) -> None:
        names = (ifname,) if isinstance(ifname, str) else ifname  # several: one capture of all of them
        self.where = f"{ns_name}/{'+'.join(names)}"
        self.keep = keep
        self.prefilter = is_vxlan_frame if keep is vxlan_only else None
        self._socks = []
        for name in names:
            with inside(ns_name):
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.bind((name, ETH_P_ALL))
            self._socks.append(sock)
        self._stop = threading.Event()
        self.packets: list[Packet] = []
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.where}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select(self._socks, [], [], 0.05)
            for sock in ready:
                frame = sock.recv(65535)
                if self.prefilter is not None and not self.prefilter(frame):
                    continue
                pkt = Ether(frame)
                if self.keep(pkt):
                    self.packets.append(pkt)

    def request_stop(self) -> None:
        """Ask the reader to end (`stop` then waits for it): many captures end in parallel this way."""
        self._stop.set()

    def stop(self, settle: float = 0.2) -> list[Packet]:
        time.sleep(settle)  # let the last packets in flight arrive
        self._stop.set()
        self._thread.join(timeout=2)
        for sock in self._socks:
            sock.close()
        return self.packets


def send_frames(ns_name: str, frame: bytes, ifname: str = "eth0", count: int = 3, gap: float = 0.05) -> None:
    """Send a raw Ethernet frame `count` times from `ifname` inside namespace `ns_name`."""
    with inside(ns_name):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    with sock:  # opened inside the namespace, so `ifname` is that namespace's
        sock.bind((ifname, 0))
        for _ in range(count):
            sock.send(frame)
            time.sleep(gap)


def arp_frame(mac: str, ip: str, target: str) -> bytes:
    """A broadcast ARP request from (mac, ip) for `target`; target == ip makes it a gratuitous ARP."""
    return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=mac, psrc=ip, hwdst="00:00:00:00:00:00", pdst=target))


@contextlib.contextmanager
def capturing(points: list[tuple[str, str | tuple[str, ...]]], keep: Predicate = vxlan_only, settle: float = 0.2) -> Iterator[dict[str, Capture]]:
    """Capture on several (namespace, interface) points at once; stops them all on exit, `settle` seconds
    after the block (packets in flight; longer on impaired links)."""
    caps: dict[str, Capture] = {}
    try:
        for ns_name, ifname in points:
            caps[ns_name] = Capture(ns_name, ifname, keep)
        time.sleep(0.1)
        yield caps
    finally:
        time.sleep(settle)  # the last packets in flight: waited for once, not once per point (50 uplinks: 10 s)
        for cap in caps.values():
            cap.request_stop()
        for cap in caps.values():
            cap.stop(settle=0.0)
