"""Local MAC learning: which VM MACs sit behind this host's bridges (netlink dump + events).

A MAC is local when the bridge learned it on a port that is not the VXLAN
device, and it is not one of the bridge's own (permanent) port addresses.
"""

from __future__ import annotations

import logging
import select
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from socket import AF_BRIDGE, AF_INET, AF_INET6

from .events import EventQueue, LocalMacsChanged, LocalMacsSnapshot, NeighboursLost
from .neighsock import is_overflow, open_neigh_listener
from .netlink_bulk import (
    NDA_DST,
    NDA_LLADDR,
    NDA_MASTER,
    NTF_EXT_LEARNED,
    NTF_SELF,
    NUD_PERMANENT,
    RTM_DELNEIGH,
    RTM_NEWNEIGH,
    NeighRecord,
    NetlinkBulk,
)
from .worker import Worker

log = logging.getLogger("evpn.agent.localmacs")

RCVBUF = 32 * 1024 * 1024  # bytes: room for a burst of FDB events before the kernel drops any (ENOBUFS)
RECV_BUFFER = 64 * 1024  # bytes: one notification per datagram, far less than this
POLL_MS = 500  # how often the watcher looks at its stop flag while nothing happens

_HDR = struct.Struct("=IH")  # nlmsg_len, nlmsg_type
_NDM = struct.Struct("=BxxxiHB")  # ndm_family, pad, ifindex, state, flags
_NLA = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_MIN_NEIGH = 16 + 12  # nlmsghdr + ndmsg

@dataclass(frozen=True, order=True)
class LocalMac:
    vni: int
    mac: str


@dataclass(frozen=True)
class LocalMacEvent:
    mac: LocalMac
    present: bool
    port: int = field(default=0, compare=False)  # ifindex of the bridge port it sits behind (0: unknown)


@dataclass(frozen=True)
class NeighLost:
    """The kernel dropped a neighbour entry on a served bridge (e.g. flushed when the bridge's MAC changed)."""

    bridge_index: int
    ip: str


@dataclass(frozen=True)
class BridgeScope:
    """One served VNI as the kernel sees it: bridge and vxlan device by ifindex."""

    vni: int
    bridge_index: int
    vxlan_index: int


def classify_neigh(msg: object, scopes: Iterable[BridgeScope]) -> NeighLost | None:
    """An IPv4/IPv6 neighbour deleted on a served bridge, or None."""
    get = msg.get  # type: ignore[attr-defined]
    if get("family") not in (AF_INET, AF_INET6) or get("event") != "RTM_DELNEIGH":
        return None
    ip = msg.get_attr("NDA_DST")  # type: ignore[attr-defined]  (a flushed entry's deletion carries no MAC)
    if ip is None or all(s.bridge_index != get("ifindex") for s in scopes):
        return None
    return NeighLost(get("ifindex"), str(ip))


def classify_entry(is_new: bool, ifindex: int, flags: int, state: int, mac: str | None, master: int | None,
                   scopes: Iterable[BridgeScope]) -> LocalMacEvent | None:
    """The rule for one AF_BRIDGE neighbour message (its fields already read): a local-MAC event, or None."""
    if master is None or mac is None or int(mac[:2], 16) & 1:
        return None
    scope = next((s for s in scopes if s.bridge_index == master), None)
    if scope is None:
        return None
    local = LocalMac(scope.vni, mac.lower())
    if ifindex == scope.vxlan_index:
        # the MAC sits behind the vxlan port (remote, or moved away): not local
        return LocalMacEvent(local, present=False)
    if flags & (NTF_SELF | NTF_EXT_LEARNED) or state & NUD_PERMANENT:
        return None  # a port's own address, or an entry a control plane installed
    return LocalMacEvent(local, present=is_new, port=ifindex)


def classify_fdb(msg: object, scopes: Iterable[BridgeScope]) -> LocalMacEvent | None:
    """Turn one AF_BRIDGE neighbour message (a pyroute2 ndmsg) into a local-MAC event, or None if it is not one."""
    get = msg.get  # type: ignore[attr-defined]
    if get("family") != AF_BRIDGE:
        return None
    return classify_entry(get("event") == "RTM_NEWNEIGH", get("ifindex") or 0, get("flags") or 0, get("state") or 0,
                          msg.get_attr("NDA_LLADDR"), msg.get_attr("NDA_MASTER"), scopes)  # type: ignore[attr-defined]


def local_from_records(records: Iterable[NeighRecord], scopes: list[BridgeScope]) -> dict[LocalMac, int]:
    """Every local MAC among FDB dump records, with the port (ifindex) it sits behind."""
    found: dict[LocalMac, int] = {}
    for r in records:
        if r.family != AF_BRIDGE or r.flags & NTF_SELF:
            continue  # a device's own entries (vxlan "self": most of a big table), never local MACs
        event = classify_entry(True, r.ifindex, r.flags, r.state, r.mac, r.master, scopes)
        if event is not None and event.present:
            found[event.mac] = event.port
    return found


def dump_local(bulk: NetlinkBulk, scopes: list[BridgeScope]) -> dict[LocalMac, int]:
    """Every local MAC behind the served bridges, with the port (ifindex) it sits behind.

    Read port by port, the vxlan port left out: the kernel walks the whole bridge FDB again for every
    32 KiB answer of a dump, so one dump of a bridge holding 100k remote MACs costs it ~700 walks of
    the table (1.5-2 s of CPU), a dump of a VM's port one walk."""
    found: dict[LocalMac, int] = {}
    for scope in scopes:
        def skip(_family: int, ifindex: int, flags: int, vxlan: int = scope.vxlan_index) -> bool:
            return ifindex == vxlan or bool(flags & NTF_SELF)  # a device's own entries: never local MACs

        for port in bulk.bridge_ports(scope.bridge_index):
            if port != scope.vxlan_index:
                found.update(local_from_records(bulk.dump_fdb(ifindex=port, skip=skip), [scope]))
    return found


class FdbEventFilter:
    """Reads raw neighbour notifications (netlink bytes) into local-MAC events and lost neighbours, and
    drops the agent's own writes before building anything.

    Same outcome as `classify_fdb` / `classify_neigh` on every message, with two differences: a bridge
    entry behind the vxlan port (what the agent installs for every remote MAC) is reported as "not
    local" only for a MAC this filter saw local (`seed` and the events it reported), the only MACs for
    which that report changes anything; and the deletion of an extern_learn entry (what the agent
    withdraws) is not reported at all (a local MAC taken over by one was reported at the takeover). So the agent's own 100k extern_learn entries cost a header read
    and a set lookup each, not an event.
    """

    def __init__(self, scopes: list[BridgeScope]) -> None:
        self._by_bridge = {s.bridge_index: s for s in scopes}
        self._bridges = frozenset(self._by_bridge)
        self._local: set[tuple[int, bytes]] = set()  # (VNI, raw MAC) seen behind a local port

    def seed(self, present: Iterable[LocalMac]) -> None:
        """The local MACs of a fresh read of the bridges (replaces what was known)."""
        self._local = {(m.vni, bytes.fromhex(m.mac.replace(":", ""))) for m in present}

    def feed(self, data: bytes | bytearray | memoryview) -> tuple[list[LocalMacEvent], list[NeighLost]]:
        """Every message of one or more whole notifications in `data`; malformed ones are skipped."""
        changes: list[LocalMacEvent] = []
        lost: list[NeighLost] = []
        size, offset = len(data), 0
        unpack_hdr, unpack_ndm, unpack_nla, unpack_u32 = _HDR.unpack_from, _NDM.unpack_from, _NLA.unpack_from, _U32.unpack_from
        by_bridge, local = self._by_bridge, self._local
        while offset + _HDR.size <= size:
            length, msg_type = unpack_hdr(data, offset)
            if length < _HDR.size or offset + length > size:
                log.warning("event=netlink-malformed offset=%d length=%d size=%d (rest of the buffer skipped)", offset, length, size)
                break
            end, start = offset + length, offset
            offset += (length + 3) & ~3
            if msg_type not in (RTM_NEWNEIGH, RTM_DELNEIGH) or length < _MIN_NEIGH:
                continue
            family, ifindex, state, flags = unpack_ndm(data, start + 16)
            if family == AF_BRIDGE:
                if flags & NTF_SELF or (flags & NTF_EXT_LEARNED and msg_type == RTM_DELNEIGH):
                    continue  # a device's own entry (the vxlan "self" entries), an extern_learn entry withdrawn
            elif family not in (AF_INET, AF_INET6) or msg_type != RTM_DELNEIGH or ifindex not in self._bridges:
                continue
            raw = dst = None
            master = 0
            pos = start + _MIN_NEIGH
            while pos + 4 <= end:
                nla_len, nla_type = unpack_nla(data, pos)
                if nla_len < 4 or pos + nla_len > end:
                    break
                nla_type &= 0x3FFF
                if nla_type == NDA_LLADDR:
                    raw = bytes(data[pos + 4:pos + nla_len])
                elif nla_type == NDA_MASTER and nla_len >= 8:
                    master = unpack_u32(data, pos + 4)[0]
                elif nla_type == NDA_DST:
                    dst = bytes(data[pos + 4:pos + nla_len])
                pos += (nla_len + 3) & ~3
            if family != AF_BRIDGE:
                if dst is not None and len(dst) in (4, 16):
                    lost.append(NeighLost(ifindex, socket.inet_ntop(family, dst)))
                continue
            scope = by_bridge.get(master)
            if scope is None or raw is None or not raw or raw[0] & 1:
                continue
            key = (scope.vni, raw)
            if ifindex == scope.vxlan_index:
                if key in local:  # a local MAC now behind the vxlan port: it moved away
                    local.discard(key)
                    changes.append(LocalMacEvent(LocalMac(scope.vni, raw.hex(":")), present=False))
                continue
            if flags & NTF_EXT_LEARNED or state & NUD_PERMANENT:
                continue
            if msg_type == RTM_NEWNEIGH:
                local.add(key)
                changes.append(LocalMacEvent(LocalMac(scope.vni, raw.hex(":")), present=True, port=ifindex))
            else:
                local.discard(key)
                changes.append(LocalMacEvent(LocalMac(scope.vni, raw.hex(":")), present=False, port=ifindex))
        return changes, lost


class LocalMacWatcher(Worker):
    """Reads bridge FDB events in a thread of its own, from a raw netlink socket whose kernel-side filter
    (agent/neighsock.py) already dropped most of the agent's own writes; `FdbEventFilter` the rest.

    It starts with a read of the bridges (reported as a `LocalMacsSnapshot`: what changed between the
    agent's start-up read and the subscription is not missed). If the kernel drops events (ENOBUFS: a
    burst overflowed the socket), it reads the whole table again and reports it the same way, so
    nothing learned or lost goes unnoticed.
    """

    name = "fdb-watch"

    def __init__(self, scopes: list[BridgeScope], out: EventQueue) -> None:
        super().__init__(out)
        self.scopes = scopes
        self.filter = FdbEventFilter(scopes)

    def loop(self) -> None:
        sock = open_neigh_listener(RCVBUF)
        try:
            self._resync()
            buffer = bytearray(RECV_BUFFER)
            view = memoryview(buffer)
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            while not self.stopping.is_set():
                poller.poll(POLL_MS)
                try:
                    self._drain(sock, buffer, view)
                except OSError as exc:
                    if not is_overflow(exc):
                        raise
                    log.warning("event=netlink-overflow worker=%s (events lost; reading the bridges' FDB again)", self.name)
                    self._resync()
        finally:
            sock.close()

    def _resync(self) -> None:
        with NetlinkBulk() as bulk:
            present = dump_local(bulk, self.scopes)
        self.filter.seed(present)
        self.out.put(LocalMacsSnapshot(frozenset(s.vni for s in self.scopes), present))

    def _drain(self, sock: socket.socket, buffer: bytearray, view: memoryview) -> None:
        """Read every queued notification, then report them (one event per kind)."""
        changes: list[LocalMacEvent] = []
        lost: list[NeighLost] = []
        while True:
            try:
                size = sock.recv_into(buffer)
            except (BlockingIOError, InterruptedError):
                break
            found, gone = self.filter.feed(view[:size])
            changes += found
            lost += gone
        if changes:
            self.out.put(LocalMacsChanged(tuple(changes)))
        if lost:
            self.out.put(NeighboursLost(tuple(lost), time.monotonic()))
