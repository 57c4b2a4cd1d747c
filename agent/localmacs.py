"""Local MAC learning: which VM MACs sit behind this host's bridges (netlink dump + events).

A MAC is local when the bridge learned it on a port that is not the VXLAN
device, and it is not one of the bridge's own (permanent) port addresses.
"""

from __future__ import annotations

import logging
from socket import AF_BRIDGE, AF_INET, AF_INET6
import errno
from dataclasses import dataclass, field
from typing import Iterable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTMGRP_NEIGH
from pyroute2.netlink.rtnl.ndmsg import NTF_EXT_LEARNED, NTF_SELF, NUD_PERMANENT

from .events import EventQueue, LocalMacsChanged, LocalMacsSnapshot, NeighboursLost
from .worker import Worker

log = logging.getLogger("evpn.agent.localmacs")

RCVBUF = 8 * 1024 * 1024  # bytes: room for a burst of FDB events before the kernel drops any (ENOBUFS)



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


def classify_fdb(msg: object, scopes: Iterable[BridgeScope]) -> LocalMacEvent | None:
    """Turn one AF_BRIDGE neighbour message into a local-MAC event, or None if it is not one."""
    get = msg.get  # type: ignore[attr-defined]
    if get("family") != AF_BRIDGE:
        return None
    master = msg.get_attr("NDA_MASTER")  # type: ignore[attr-defined]
    mac = msg.get_attr("NDA_LLADDR")  # type: ignore[attr-defined]
    if master is None or mac is None or int(mac[:2], 16) & 1:
        return None
    scope = next((s for s in scopes if s.bridge_index == master), None)
    if scope is None:
        return None
    local = LocalMac(scope.vni, mac.lower())
    if get("ifindex") == scope.vxlan_index:
        # the MAC sits behind the vxlan port (remote, or moved away): not local
        return LocalMacEvent(local, present=False)
    if (get("flags") or 0) & (NTF_SELF | NTF_EXT_LEARNED) or (get("state") or 0) & NUD_PERMANENT:
        return None  # a port's own address, or an entry a control plane installed
    return LocalMacEvent(local, present=get("event") == "RTM_NEWNEIGH", port=get("ifindex") or 0)


def dump_local(ipr: IPRoute, scopes: list[BridgeScope]) -> dict[LocalMac, int]:
    """Every local MAC behind the served bridges, with the port (ifindex) it sits behind."""
    found: dict[LocalMac, int] = {}
    for msg in ipr.fdb("dump"):
        event = classify_fdb(msg, scopes)
        if event is not None and event.present:
            found[event.mac] = event.port
    return found


def _close_overflowed(ipr: IPRoute) -> None:
    """Close a socket that may have overflowed: pyroute2 (0.9) keeps the ENOBUFS its reader met and raises
    it again from close(), which would kill the watcher that just handled it (an agent restart loop at
    100k entries)."""
    try:
        ipr.close()
    except OSError as exc:
        if exc.errno != errno.ENOBUFS:
            raise


def _is_overflow(error: object) -> bool:
    """The kernel dropped notifications for this socket (ENOBUFS), raised or carried in a message header."""
    return errno.ENOBUFS in (getattr(error, "code", None), getattr(error, "errno", None))


class LocalMacWatcher(Worker):
    """Reads bridge FDB events in a thread of its own (pyroute2 sockets stay in the thread that made them).

    If the kernel drops events (ENOBUFS: a burst overflowed the socket), the watcher reads the whole
    table again and reports it as a `LocalMacsSnapshot`, so nothing learned or lost goes unnoticed.
    """

    name = "fdb-watch"

    def __init__(self, scopes: list[BridgeScope], out: EventQueue) -> None:
        super().__init__(out)
        self.scopes = scopes

    def loop(self) -> None:
        while not self.stopping.is_set():
            ipr = IPRoute(rcvbuf=RCVBUF)
            try:
                ipr.bind(groups=RTMGRP_NEIGH)
                self._watch(ipr)  # returns after an overflow: a fresh socket, and a fresh dump
            finally:
                _close_overflowed(ipr)
            if not self.stopping.is_set():
                with IPRoute() as ipr:
                    present = dump_local(ipr, self.scopes)
                self.out.put(LocalMacsSnapshot(frozenset(s.vni for s in self.scopes), present))

    def _watch(self, ipr: IPRoute) -> None:
        while not self.stopping.is_set():
            try:
                messages = list(ipr.get())
                overflow = any(_is_overflow(msg.get("header", {}).get("error")) for msg in messages)
            except (NetlinkError, OSError) as exc:
                if not _is_overflow(exc):
                    raise
                overflow = True
            if overflow:
                log.warning("event=netlink-overflow worker=%s (events lost; reading the bridges' FDB again)", self.name)
                return
            changes: list[LocalMacEvent] = []
            lost: list[NeighLost] = []
            for msg in messages:
                change = classify_fdb(msg, self.scopes)
                if change is not None:
                    changes.append(change)
                elif (gone := classify_neigh(msg, self.scopes)) is not None:
                    lost.append(gone)
            if changes:
                self.out.put(LocalMacsChanged(tuple(changes)))
            if lost:
                self.out.put(NeighboursLost(tuple(lost)))
