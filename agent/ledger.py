"""Which kernel entries this agent made, kept in a small JSON file across restarts.

The kernel does not record who added a vxlan FDB entry, so the agent keeps its
own list; it only ever removes entries on that list, and entries someone else
made are left alone.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from pathlib import Path

from .atomicfile import write_json_atomic
from .entries import FdbEntry, KernelEntry, NeighEntry, entry_sort_key

log = logging.getLogger("evpn.agent.ledger")


class Ledger:
    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self) -> set[KernelEntry]:
        if self.path is None or not self.path.exists():
            return set()
        try:
            data = json.loads(self.path.read_text())
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
            owned: set[KernelEntry] = {FdbEntry(dev, mac, ipaddress.ip_address(dst)) for dev, mac, dst in data.get("fdb", [])}
            owned |= {NeighEntry(dev, ipaddress.ip_address(ip), mac) for dev, ip, mac in data.get("neigh", [])}
            return owned
        except (OSError, ValueError, TypeError) as exc:
            log.warning("event=ledger-unreadable path=%s error=%r (owning nothing)", self.path, str(exc))
            return set()

    def save(self, owned: set[KernelEntry]) -> None:
        if self.path is None:
            return
        ordered = sorted(owned, key=entry_sort_key)
        write_json_atomic(self.path, {
            "fdb": [[e.device, e.mac, str(e.vtep)] for e in ordered if isinstance(e, FdbEntry)],
            "neigh": [[e.device, str(e.ip), e.mac] for e in ordered if isinstance(e, NeighEntry)],
        })
