"""Shared builders for the unit tests: configs, routes, kernel entries, and in-memory doubles of the
kernel and the ledger (they implement the FdbTable / OwnershipStore protocols of reconcile.py)."""

from __future__ import annotations

import ipaddress
from typing import Any, Callable, Iterable, Sequence

from agent.config import AgentConfig, parse_config
from agent.entries import FdbEntry, KernelEntry, NeighEntry, describe, flood_entry
from agent.errors import KernelError
from agent.ownedset import PackedEntries, unpack
from agent.routes import (
    ENCAP_VXLAN,
    PMSI_INGRESS_REPLICATION,
    EvpnRoute,
    ImetRoute,
    MacIpRoute,
    PathAttrs,
    PrefixRoute,
    RouteDistinguisher,
    RouteEvent,
    RouteTarget,
)

ip = ipaddress.ip_address
OWN = "10.0.0.1"

def make_cfg(seed: bool = False, **extra: Any) -> AgentConfig:
    raw: dict[str, Any] = {
        "vtep": OWN,
        "route_target_asn": 65000,
        "seed_prefix_vteps": seed,
        "vnis": [
            {"vni": 100, "device": "vx100", "bridge": "br100"},
            {"vni": 200, "device": "vx200", "bridge": "br200"},
        ],
    }
    raw.update(extra)
    return parse_config(raw)


CFG = make_cfg()
SEED_CFG = make_cfg(seed=True)


def attrs(next_hop: str = "10.0.0.2", rts: tuple[str, ...] = ("65000:100",), encap: int | None = ENCAP_VXLAN) -> PathAttrs:
    return PathAttrs(ip(next_hop), frozenset(RouteTarget.parse(r) for r in rts), encap)


def imet(vtep: str = "10.0.0.2", vni: int | None = 100, *, rd: str | None = None, etag: int = 0,
         rts: tuple[str, ...] | None = None, encap: int | None = ENCAP_VXLAN,
         pmsi_type: int | None = PMSI_INGRESS_REPLICATION) -> ImetRoute:
    if rts is None:
        rts = (f"65000:{vni}",) if vni else ()
    return ImetRoute(
        rd=RouteDistinguisher.parse(rd or f"{vtep}:{vni or 1}"),
        ethernet_tag=etag,
        originator=ip(vtep),
        attrs=attrs(vtep, rts, encap),
        pmsi_vni=vni,
        pmsi_type=pmsi_type,
    )


def prefix(net: str = "10.0.0.5/32", label: int = 100, *, rts: tuple[str, ...] = (), rd: str = "10.0.0.5:1") -> PrefixRoute:
    return PrefixRoute(RouteDistinguisher.parse(rd), 0, ipaddress.ip_network(net), label, attrs("10.0.0.5", rts))


MAC = "aa:bb:cc:dd:ee:ff"
MAC2 = "aa:bb:cc:dd:ee:02"
IP1 = "192.168.1.5"


def macip(next_hop: str = "10.0.0.2", vni: int | None = 100, *, mac: str = MAC, seq: int | None = None,
          rd: str | None = None, mac_ip: str | None = None, etag: int = 0,
          rts: tuple[str, ...] | None = None, encap: int | None = ENCAP_VXLAN) -> MacIpRoute:
    if rts is None:
        rts = (f"65000:{vni}",) if vni else ()
    return MacIpRoute(
        RouteDistinguisher.parse(rd or f"{next_hop}:1"),
        etag,
        mac,
        ip(mac_ip) if mac_ip else None,
        vni,
        PathAttrs(ip(next_hop), frozenset(RouteTarget.parse(r) for r in rts), encap, seq),
    )


def add(route: EvpnRoute) -> RouteEvent:
    return RouteEvent(route)


def withdraw(route: EvpnRoute) -> RouteEvent:
    return RouteEvent(route, withdrawn=True)


def E(device: str, vtep: str) -> FdbEntry:
    """A flood (BUM) entry."""
    return flood_entry(device, ip(vtep))


def U(device: str, mac: str, vtep: str) -> FdbEntry:
    """A unicast MAC entry."""
    return FdbEntry(device, mac, ip(vtep))


def N(bridge: str, address: str, mac: str = MAC) -> NeighEntry:
    """An ARP/ND suppression entry on a bridge."""
    return NeighEntry(bridge, ip(address), mac)



class FakeKernel:
    """The vxlan devices' FDB entries (flood and unicast) and the bridges' neighbour entries, with who made each one."""

    def __init__(self, foreign: Iterable[KernelEntry] = (), agent_made: Iterable[KernelEntry] = ()) -> None:
        self.table: set[KernelEntry] = set(foreign) | set(agent_made)
        self.foreign: set[KernelEntry] = set(foreign)
        self.fail: set[KernelEntry] = set()
        self.calls: list[tuple[str, KernelEntry]] = []
        self.reads: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        self.lookups: list[KernelEntry] = []  # entries looked up one by one (present_packed)
        self.foreign_removed: list[KernelEntry] = []

    # FdbTable protocol
    def entries(self, devices: Iterable[str], bridges: Iterable[str] = ()) -> set[KernelEntry]:
        devices, bridges = tuple(devices), tuple(bridges)
        self.reads.append((devices, bridges))
        return {e for e in self.table if e.device in (bridges if isinstance(e, NeighEntry) else devices)}

    def packed_entries(self, devices: Iterable[str], bridges: Iterable[str] = ()) -> PackedEntries:
        return PackedEntries.of(self.entries(devices, bridges))

    def present_packed(self, kind: int, device: str, keys: Sequence[int]) -> set[int]:
        self.lookups.extend(unpack(kind, device, keys))
        if any(e.is_flood for e in unpack(kind, device, keys) if isinstance(e, FdbEntry)):
            raise ValueError("a flood entry cannot be looked up one by one")
        return {key for key, entry in zip(keys, unpack(kind, device, keys)) if entry in self.table}

    def apply_packed(self, kind: int, device: str, keys: Sequence[int], delete: bool) -> list[bool | KernelError]:
        entries = list(unpack(kind, device, keys))
        return self.delete_many(entries) if delete else self.add_many(entries)

    def add(self, entry: KernelEntry) -> bool:
        self.calls.append(("add", entry))
        if entry in self.fail:
            raise KernelError(f"add {describe(entry)}: boom")
        if entry in self.table:
            return False
        self.table.add(entry)
        return True

    def delete(self, entry: KernelEntry) -> bool:
        self.calls.append(("del", entry))
        if entry in self.fail:
            raise KernelError(f"remove {describe(entry)}: boom")
        if entry not in self.table:
            return False
        if entry in self.foreign:
            self.foreign_removed.append(entry)
            self.foreign.discard(entry)
        self.table.discard(entry)
        return True

    def add_many(self, entries: Sequence[KernelEntry]) -> list[bool | KernelError]:
        return [self._outcome(self.add, e) for e in entries]

    def delete_many(self, entries: Sequence[KernelEntry]) -> list[bool | KernelError]:
        return [self._outcome(self.delete, e) for e in entries]

    @staticmethod
    def _outcome(call: Callable[[KernelEntry], bool], entry: KernelEntry) -> bool | KernelError:
        try:
            return call(entry)
        except KernelError as exc:
            return exc

    # what other programs (or an operator) do
    def someone_adds(self, entry: KernelEntry) -> None:
        if entry not in self.table:
            self.table.add(entry)
            self.foreign.add(entry)

    def someone_deletes(self, entry: KernelEntry) -> None:
        self.table.discard(entry)
        self.foreign.discard(entry)

    def ops(self, kind: str) -> list[KernelEntry]:
        return [e for k, e in self.calls if k == kind]


class MemoryLedger:
    def __init__(self, owned: Iterable[KernelEntry] = ()) -> None:
        self.stored: set[KernelEntry] = set(owned)
        self.saves = 0
        self.closed = False

    def load(self) -> set[KernelEntry]:
        return set(self.stored)

    def record(self, added: set[KernelEntry], removed: set[KernelEntry], owned: set[KernelEntry]) -> None:
        assert not added & removed
        self.stored = (self.stored - removed) | added
        assert self.stored == owned, "the changes handed over must add up to what is owned"
        self.saves += 1

    def compact(self, owned: set[KernelEntry]) -> None:
        self.stored = set(owned)
        self.saves += 1

    def close(self, owned: set[KernelEntry] | None = None) -> None:
        if owned is not None:
            assert set(owned) == self.stored, "a clean stop hands over nothing new"
        self.closed = True


# -- plan_full ------------------------------------------------------------------------

