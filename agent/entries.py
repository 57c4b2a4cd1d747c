"""The kernel entries the agent owns: vxlan FDB entries and bridge neighbour (ARP/ND suppression) entries.

Plain values, shared by route selection (`desired.py`), the kernel (`kernel.py`) and the ownership
ledger (`ledger.py`), so none of them has to import another just for the types.

Written out by hand rather than as frozen dataclasses: a table of 100k MACs makes and hashes
hundreds of thousands of them at every start and full sync, and the generated `__init__` (one
`object.__setattr__` per field) and `__hash__` (through IPv4Address's Python-level hash) took
0.6 us each; these take 0.15-0.3 us. Same fields, equality, order, hashing rule and repr as before.
"""

from __future__ import annotations

from functools import total_ordering
from sys import intern
from typing import Any, Union

from .routes import IPAddress

ZERO_MAC = "00:00:00:00:00:00"


def _frozen(self: object, name: str, value: object = None) -> None:
    raise AttributeError(f"cannot assign to field {name!r}: {type(self).__name__} is immutable")


@total_ordering
class FdbEntry:
    """One vxlan FDB entry: frames for `mac` on `device` go to `vtep` (the zero MAC = flood list)."""

    __slots__ = ("device", "mac", "vtep")
    device: str
    mac: str
    vtep: IPAddress

    def __init__(self, device: str, mac: str, vtep: IPAddress) -> None:
        _fdb_device(self, intern(device))  # one string per device name, whoever made the entry (a ledger load makes 200k)
        _fdb_mac(self, mac)
        _fdb_vtep(self, vtep)

    __setattr__ = _frozen
    __delattr__ = _frozen  # type: ignore[assignment]

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is not FdbEntry:
            return NotImplemented
        return self.mac == other.mac and self.device == other.device and self.vtep == other.vtep

    def __hash__(self) -> int:
        return hash((self.device, self.mac, self.vtep._ip))  # the address's integer: equal addresses, equal hashes

    def __lt__(self, other: Any) -> bool:
        if other.__class__ is not FdbEntry:
            return NotImplemented
        return (self.device, self.mac, self.vtep) < (other.device, other.mac, other.vtep)

    def __repr__(self) -> str:
        return f"FdbEntry(device={self.device!r}, mac={self.mac!r}, vtep={self.vtep!r})"

    def __reduce__(self) -> tuple[type, tuple[str, str, IPAddress]]:
        return FdbEntry, (self.device, self.mac, self.vtep)

    @property
    def is_flood(self) -> bool:
        return self.mac == ZERO_MAC


_fdb_device = FdbEntry.device.__set__  # type: ignore[attr-defined]  # the slots' own setters (the class refuses setattr)
_fdb_mac = FdbEntry.mac.__set__  # type: ignore[attr-defined]
_fdb_vtep = FdbEntry.vtep.__set__  # type: ignore[attr-defined]


def flood_entry(device: str, vtep: IPAddress) -> FdbEntry:
    return FdbEntry(device, ZERO_MAC, vtep)


@total_ordering
class NeighEntry:
    """One ARP/ND suppression entry on a bridge: `ip` is at `mac` (a remote VM)."""

    __slots__ = ("device", "ip", "mac")
    device: str  # the bridge
    ip: IPAddress
    mac: str

    def __init__(self, device: str, ip: IPAddress, mac: str) -> None:
        _neigh_device(self, intern(device))
        _neigh_ip(self, ip)
        _neigh_mac(self, mac)

    __setattr__ = _frozen
    __delattr__ = _frozen  # type: ignore[assignment]

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is not NeighEntry:
            return NotImplemented
        return self.mac == other.mac and self.device == other.device and self.ip == other.ip

    def __hash__(self) -> int:
        return hash((self.device, self.ip._ip, self.mac))

    def __lt__(self, other: Any) -> bool:
        if other.__class__ is not NeighEntry:
            return NotImplemented
        return (self.device, self.ip, self.mac) < (other.device, other.ip, other.mac)

    def __repr__(self) -> str:
        return f"NeighEntry(device={self.device!r}, ip={self.ip!r}, mac={self.mac!r})"

    def __reduce__(self) -> tuple[type, tuple[str, IPAddress, str]]:
        return NeighEntry, (self.device, self.ip, self.mac)


_neigh_device = NeighEntry.device.__set__  # type: ignore[attr-defined]
_neigh_ip = NeighEntry.ip.__set__  # type: ignore[attr-defined]
_neigh_mac = NeighEntry.mac.__set__  # type: ignore[attr-defined]

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
