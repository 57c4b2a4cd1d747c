"""The kernel entries the agent owns: vxlan FDB entries and bridge neighbour (ARP/ND suppression) entries.

Plain values, shared by route selection (`desired.py`), the kernel (`kernel.py`) and the ownership
ledger (`ledger.py`), so none of them has to import another just for the types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .routes import IPAddress

ZERO_MAC = "00:00:00:00:00:00"


@dataclass(frozen=True, order=True, slots=True)
class FdbEntry:
    """One vxlan FDB entry: frames for `mac` on `device` go to `vtep` (the zero MAC = flood list)."""

    device: str
    mac: str
    vtep: IPAddress

    @property
    def is_flood(self) -> bool:
        return self.mac == ZERO_MAC


def flood_entry(device: str, vtep: IPAddress) -> FdbEntry:
    return FdbEntry(device, ZERO_MAC, vtep)


@dataclass(frozen=True, order=True, slots=True)
class NeighEntry:
    """One ARP/ND suppression entry on a bridge: `ip` is at `mac` (a remote VM)."""

    device: str  # the bridge
    ip: IPAddress
    mac: str


KernelEntry = Union[FdbEntry, NeighEntry]


def entry_sort_key(entry: KernelEntry) -> tuple[object, ...]:
    """One order for both kinds of entries: by kind, device, then numerically by address."""
    if isinstance(entry, FdbEntry):
        return ("fdb", entry.device, entry.mac, entry.vtep.version, int(entry.vtep))
    return ("neigh", entry.device, entry.ip.version, int(entry.ip), entry.mac)


def describe(entry: KernelEntry) -> str:
    """Greppable key=value form of an entry for the log."""
    if isinstance(entry, NeighEntry):
        return f"kind=neigh device={entry.device} ip={entry.ip} mac={entry.mac}"
    return f"kind={'flood' if entry.is_flood else 'mac'} device={entry.device} mac={entry.mac} vtep={entry.vtep}"
