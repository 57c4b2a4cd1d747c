"""Netlink side effects: read and change the vxlan devices' FDB and the bridges' neighbour entries.

Every entry goes through `netlink_bulk` (hand-encoded messages, many per send(), ACKs matched
by sequence), and so does the one bridge-port setting (neigh_suppress); device indexes come from
if_nametoindex inside the namespace. No netlink library is loaded at run time (pyroute2 alone
would add about 11 MB to the agent's RSS)."""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from socket import AF_BRIDGE, AF_INET, AF_INET6
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Union

from .entries import FdbEntry, KernelEntry, NeighEntry, describe
from .errors import KernelError
from .netlink_bulk import (
    NetlinkBulk,
    NetlinkBulkError,
    Op,
    encode,
    encode_fdb_get,
    encode_fdb_key,
    encode_neigh_get,
    encode_neigh_key,
    Request,
)
from .nsenter import NoSuchNamespace, made_in
from .ownedset import FDB, NEIGH, PackedEntries, unpack
from .routes import IPAddress

Outcome = Union[bool, KernelError]

log = logging.getLogger("evpn.agent.kernel")



def _fdb_key(lladdr: bytes, dst: bytes) -> int | tuple[bytes, bytes]:
    """A vxlan FDB entry read from the kernel as its packed key, or the pair if it does not pack (IPv6)."""
    return int.from_bytes(lladdr + dst, "big") if len(lladdr) == 6 and len(dst) == 4 else (lladdr, dst)


def _neigh_key(lladdr: bytes, dst: bytes) -> int | tuple[bytes, bytes]:
    """A neighbour entry read from the kernel as its packed key, or the pair if it does not pack (IPv6)."""
    return int.from_bytes(dst + lladdr, "big") if len(lladdr) == 6 and len(dst) == 4 else (lladdr, dst)


def _address(packed: bytes) -> IPAddress:
    return ipaddress.IPv4Address(packed) if len(packed) == 4 else ipaddress.IPv6Address(packed)


class Kernel:
    """The FDB of this host's vxlan devices, through one netlink socket (used from one thread)."""

    def __init__(self, netns: str | None = None) -> None:
        self._netns = netns
        try:
            self._bulk = NetlinkBulk(netns=netns, ack_all=False)  # many per send(); failures still answered one by one
        except NetlinkBulkError as exc:
            raise KernelError(str(exc)) from None
        self._ifindex: dict[str, int] = {}

    def close(self) -> None:
        self._bulk.close()

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def bulk(self) -> NetlinkBulk:
        """The bulk socket (entries and dumps); used from the agent's main thread only."""
        return self._bulk

    def ifindex(self, device: str) -> int | None:
        """Index of `device`, looked up once; None if it does not exist."""
        if device not in self._ifindex:
            try:
                self._ifindex[device] = made_in(self._netns, lambda: socket.if_nametoindex(device))
            except (OSError, ValueError):  # no such device (or a name no device can have)
                return None
            except NoSuchNamespace as exc:
                raise KernelError(str(exc)) from None
        return self._ifindex[device]

    def forget_devices(self) -> None:
        """Drop cached ifindexes (devices may have been deleted and made again)."""
        self._ifindex.clear()

    def entries(self, devices: Iterable[str], bridges: Iterable[str] = ()) -> set[KernelEntry]:
        """Every vxlan FDB entry with a remote VTEP (flood and unicast) on `devices`, and every
        neighbour entry with a link-layer address on `bridges`, as entry objects (`packed_entries`
        unpacked: the agent itself compares the packed form)."""
        return set(self.packed_entries(devices, bridges))

    def packed_entries(self, devices: Iterable[str], bridges: Iterable[str] = ()) -> PackedEntries:
        """What `entries` reads, as packed keys (ownedset.py's encoding: FDB = MAC << 32 | IPv4 VTEP,
        neighbour = IPv4 << 48 | MAC): one integer per entry made straight from the kernel's bytes as
        they are read, and an entry object only for what does not pack (IPv6)."""
        found = PackedEntries()
        for bridge in bridges:
            index = self.ifindex(bridge)
            if index is None:
                log.warning("event=device-missing device=%s", bridge)
                continue
            keys = found.of_device(NEIGH, bridge)
            for family in (AF_INET, AF_INET6):
                for item in self._pairs(family, index, False, _neigh_key):
                    if item.__class__ is int:
                        keys.add(item)
                    elif len(item[1]) in (4, 16):
                        found.others.add(NeighEntry(bridge, _address(item[1]), item[0].hex(":")))
        for device in devices:
            index = self.ifindex(device)
            if index is None:
                log.warning("event=device-missing device=%s", device)
                continue
            keys = found.of_device(FDB, device)
            for item in self._pairs(AF_BRIDGE, index, True, _fdb_key):
                if item.__class__ is int:
                    keys.add(item)
                elif len(item[1]) in (4, 16):
                    found.others.add(FdbEntry(device, item[0].hex(":"), _address(item[1])))
        return found

    def _pairs(self, family: int, index: int, self_only: bool, convert: Callable[[bytes, bytes], object]) -> list[Any]:
        try:
            return self._bulk.dump_pairs(family, index, self_only, convert)
        except NetlinkBulkError as exc:
            raise KernelError(f"reading entries of ifindex {index}: {exc}") from exc

    def add_many(self, entries: Sequence[KernelEntry]) -> list[Outcome]:
        """Install entries in bulk; per entry True (made), False (an identical one existed: someone
        else's) or the error. Same messages as `add`, many per send()."""
        return self._bulk_apply(entries, delete=False)

    def delete_many(self, entries: Sequence[KernelEntry]) -> list[Outcome]:
        """Remove entries in bulk; per entry True (removed), False (already gone) or the error."""
        return self._bulk_apply(entries, delete=True)

    def apply_packed(self, kind: int, device: str, keys: Sequence[int], delete: bool) -> list[Outcome]:
        """`add_many` / `delete_many` for entries given as packed keys of one kind on `device` (see
        ownedset.py): the messages are made from the integers, no entry object (a cold start's
        200k entries)."""
        index = self.ifindex(device)
        if index is None:
            missing: Outcome = False if delete else KernelError(f"device {device} does not exist")
            return [missing] * len(keys)
        op = Op.DEL if delete else Op.ADD
        requests: list[tuple[int, bool]] = []  # (key, the bridge's entry) for FDB; (key, False) for neighbours
        owners: list[tuple[int, bool]] = []
        if kind == FDB:
            for position, key in enumerate(keys):
                requests.append((key, False))
                owners.append((position, True))
                if key >> 32:  # not the flood entry: the bridge's own entry too
                    requests.append((key, True))
                    owners.append((position, False))

            def encoder(request: tuple[int, bool], seq: int, ack: bool) -> bytes:
                return encode_fdb_key(op, index, request[0], request[1], seq, ack)
        else:
            requests = [(key, False) for key in keys]
            owners = [(position, True) for position in range(len(keys))]

            def encoder(request: tuple[int, bool], seq: int, ack: bool) -> bytes:
                return encode_neigh_key(op, index, request[0], seq, ack)
        return self._outcomes(requests, owners, len(keys), delete,
                              lambda position: describe(next(unpack(kind, device, (keys[position],)))), encoder)

    def present_packed(self, kind: int, device: str, keys: Sequence[int]) -> set[int]:
        """Which of these entries (packed keys of one kind on `device`, flood entries excluded: the kernel
        answers a GET of one with its first remote only) the kernel holds exactly as given (the same VTEP,
        the same MAC): one GET each, many per send(), no dump (a vxlan FDB dump walks the bridge's whole
        table again for every 32 KiB answer: 1.4 s at 100k)."""
        index = self.ifindex(device)
        if index is None or not keys:
            return set()
        if kind == FDB:
            if any(not key >> 32 for key in keys):
                raise ValueError("a flood entry cannot be looked up one by one (the kernel answers with its first remote only)")
            answers = self._lookup(keys, lambda key, seq: encode_fdb_get(index, (key >> 32).to_bytes(6, "big"), seq), _fdb_key)
        else:
            answers = self._lookup(keys, lambda key, seq: encode_neigh_get(index, (key >> 48).to_bytes(4, "big"), seq), _neigh_key)
        return {key for key, answer in zip(keys, answers) if answer == key}

    def _lookup(self, keys: Sequence[int], encoder: Callable[[int, int], bytes], convert: Callable[[bytes, bytes], object]) -> list[Any]:
        try:
            return self._bulk.lookup(keys, encoder, convert)
        except NetlinkBulkError as exc:
            raise KernelError(f"looking up {len(keys)} entries: {exc}") from exc

    def _bulk_apply(self, entries: Sequence[KernelEntry], delete: bool) -> list[Outcome]:
        op = Op.DEL if delete else Op.ADD
        outcomes: list[Outcome] = [True] * len(entries)
        requests: list[Request] = []
        owners: list[tuple[int, bool]] = []  # per request: (entry position, decides the outcome)
        for position, entry in enumerate(entries):
            index = self.ifindex(entry.device)
            if index is None:
                outcomes[position] = False if delete else KernelError(f"device {entry.device} does not exist")
                continue
            if isinstance(entry, NeighEntry):
                requests.append(Request.neigh(op, index, entry.ip, entry.mac))
                owners.append((position, True))
                continue
            requests.append(Request.vxlan(op, index, entry.mac, entry.vtep))
            owners.append((position, True))
            if not entry.is_flood:  # the bridge's own entry: MAC behind the vxlan port, extern_learn
                requests.append(Request.bridge(op, index, entry.mac))
                owners.append((position, False))
        if not requests:
            return outcomes
        done = self._outcomes(requests, owners, len(entries), delete, lambda position: describe(entries[position]))
        return [o if isinstance(o, KernelError) or o is False else done[i] for i, o in enumerate(outcomes)]

    def _outcomes(self, requests: Sequence[object], owners: list[tuple[int, bool]], count: int, delete: bool,
                  describe_at: Callable[[int], str], encoder: Callable[[Any, int, bool], bytes] = encode) -> list[Outcome]:
        """Apply `requests` (owners: per request, the entry's position and whether its answer decides
        the entry's outcome); per entry True, False (gone already / someone else's) or the error."""
        outcomes: list[Outcome] = [True] * count
        absent = errno.ENOENT if delete else errno.EEXIST  # "nothing to do": gone already / someone else's
        for (position, decides), result in zip(owners, self._bulk.apply(requests, encoder)):
            if result.ok or isinstance(outcomes[position], KernelError):
                continue
            if result.error == absent:
                if decides:
                    outcomes[position] = False
                continue  # the bridge entry alone missing on delete: fine
            what = "remove" if delete else "add"
            outcomes[position] = KernelError(f"{what} {describe_at(position)}: {result.error_name}"
                                             + (f" ({result.message})" if result.message else ""))
        return outcomes

    def set_neigh_suppress(self, device: str, on: bool = True) -> None:
        """ARP/ND suppression on a bridge port (the vxlan device): the bridge answers from its neighbour table."""
        try:
            self._bulk.set_neigh_suppress(self._require(device), on)
        except NetlinkBulkError as exc:
            raise KernelError(f"{device}: {exc}") from exc

    def _require(self, device: str) -> int:
        index = self.ifindex(device)
        if index is None:
            raise KernelError(f"vxlan device {device} does not exist")
        return index
