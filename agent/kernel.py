"""Netlink side effects (pyroute2): read and change the vxlan devices' FDB."""

from __future__ import annotations

import ipaddress
import logging
from typing import Iterable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .desired import FloodEntry
from .errors import KernelError

log = logging.getLogger("evpn.agent.kernel")

ZERO_MAC = "00:00:00:00:00:00"
_EEXIST = 17
_ENOENT = 2


class Kernel:
    """The FDB of this host's vxlan devices, through one netlink socket."""

    def __init__(self, netns: str | None = None) -> None:
        self._ipr = IPRoute(netns=netns) if netns else IPRoute()
        self._ifindex: dict[str, int] = {}

    def close(self) -> None:
        self._ipr.close()

    def __enter__(self) -> "Kernel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ifindex(self, device: str) -> int | None:
        """Index of `device`, looked up once; None if it does not exist."""
        if device not in self._ifindex:
            found = self._ipr.link_lookup(ifname=device)
            if not found:
                return None
            self._ifindex[device] = found[0]
        return self._ifindex[device]

    def forget(self, device: str) -> None:
        self._ifindex.pop(device, None)

    def flood_entries(self, devices: Iterable[str]) -> set[FloodEntry]:
        """All head-end replication entries (zero MAC with a dst) on the given vxlan devices."""
        found: set[FloodEntry] = set()
        for device in devices:
            index = self.ifindex(device)
            if index is None:
                log.warning("event=device-missing device=%s", device)
                continue
            for msg in self._ipr.fdb("dump", ifindex=index):
                if msg.get("ifindex") != index:
                    continue
                dst = msg.get_attr("NDA_DST")
                if msg.get_attr("NDA_LLADDR") == ZERO_MAC and dst:
                    found.add(FloodEntry(device, ipaddress.ip_address(dst)))
        return found

    def add_flood(self, entry: FloodEntry) -> bool:
        """Append a flood destination; False if it already existed."""
        index = self._require(entry.device)
        try:
            self._ipr.fdb("append", ifindex=index, lladdr=ZERO_MAC, dst=str(entry.vtep))
        except NetlinkError as exc:
            if exc.code == _EEXIST:
                return False
            raise KernelError(f"add flood entry {entry.vtep} on {entry.device}: {exc}") from exc
        return True

    def del_flood(self, entry: FloodEntry) -> bool:
        """Remove one flood destination; False if it was already gone."""
        index = self.ifindex(entry.device)
        if index is None:
            return False
        try:
            self._ipr.fdb("del", ifindex=index, lladdr=ZERO_MAC, dst=str(entry.vtep))
        except NetlinkError as exc:
            if exc.code == _ENOENT:
                return False
            raise KernelError(f"remove flood entry {entry.vtep} on {entry.device}: {exc}") from exc
        return True

    def _require(self, device: str) -> int:
        index = self.ifindex(device)
        if index is None:
            raise KernelError(f"vxlan device {device} does not exist")
        return index
