"""The set of kernel entries the agent owns, held as packed integers instead of entry objects.

A set of FdbEntry/NeighEntry objects cost ~98 bytes per entry (the object, its MAC string and the
set's slot), two entries per remote route. Here an entry of an IPv4 VTEP / IPv4 neighbour with a
canonical MAC (lowercase, colon-separated: what the codec and the kernel reader make) is one 80-bit
integer in a bucket per (kind, device): FDB = MAC << 32 | VTEP, neighbour = IP << 48 | MAC, stored
sorted as two arrays (the high 64 bits, the low 16): 10 bytes an entry. Changes go to two small
Python sets (added / removed since the last merge) that are merged into the arrays when they grow
past a fraction of the table, so a change costs O(1) amortized and membership O(log n).

Any other entry (an IPv6 VTEP or neighbour, a MAC in another spelling) is kept as the object in a
plain set: same semantics, the old cost. Entries come back out as equal new objects.
"""

from __future__ import annotations

import heapq
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, MutableSet
from ipaddress import IPv4Address

from .entries import FdbEntry, KernelEntry, NeighEntry, entry_sort_key

MERGE_MIN = 1024  # never merge fewer pending changes than this
LO_BITS = 16
LO_MASK = (1 << LO_BITS) - 1
FDB, NEIGH = 0, 1  # the two kinds of packed entries


def mac_int(mac: str) -> int | None:
    """The MAC as an integer if written canonically (a round trip gives back the same string)."""
    if len(mac) != 17 or mac[2::3] != ":::::" or mac.lower() != mac:
        return None
    try:
        raw = bytes.fromhex(mac.replace(":", ""))
    except ValueError:
        return None
    return int.from_bytes(raw, "big") if len(raw) == 6 else None


def _join(hi: int, lo: int) -> int:
    return hi << LO_BITS | lo


def mac_text(value: int) -> str:
    return value.to_bytes(6, "big").hex(":")


_new = object.__new__
_set_ip = IPv4Address._ip.__set__  # type: ignore[attr-defined]  # the slot's own setter


def ipv4(value: int) -> IPv4Address:
    """IPv4Address(value) for a value known to be 32-bit (the constructor's checks cost 3x this)."""
    address = _new(IPv4Address)
    _set_ip(address, value)
    return address


def fdb_key(mac: str, vtep: object) -> int | None:
    """The packed key of the vxlan FDB entry MAC -> VTEP (MAC << 32 | IPv4 VTEP), None if it does not pack."""
    if vtep.__class__ is IPv4Address:
        value = mac_int(mac)
        if value is not None:
            return value << 32 | vtep._ip  # type: ignore[attr-defined]
    return None


def neigh_key(ip: object, mac: str) -> int | None:
    """The packed key of the neighbour entry IP -> MAC (IPv4 << 48 | MAC), None if it does not pack."""
    if ip.__class__ is IPv4Address:
        value = mac_int(mac)
        if value is not None:
            return ip._ip << 48 | value  # type: ignore[attr-defined]
    return None


def pack(entry: object) -> tuple[int, int] | None:
    """(FDB or NEIGH, packed key) of an entry that packs (IPv4 VTEP / IPv4 neighbour, canonical MAC), else None."""
    cls = entry.__class__
    if cls is FdbEntry:
        key = fdb_key(entry.mac, entry.vtep)  # type: ignore[attr-defined]
        return None if key is None else (FDB, key)
    if cls is NeighEntry:
        key = neigh_key(entry.ip, entry.mac)  # type: ignore[attr-defined]
        return None if key is None else (NEIGH, key)
    return None


def unpack(kind: int, device: str, keys: Iterable[int]) -> Iterator[KernelEntry]:
    """The entries of packed `keys` of one kind on `device`, made one at a time (in the keys' order)."""
    addresses: dict[int, IPv4Address] = {}  # one object per VTEP, shared by its entries
    if kind == FDB:
        for key in keys:
            raw = key & 0xFFFFFFFF
            vtep = addresses.get(raw)
            if vtep is None:
                vtep = addresses[raw] = ipv4(raw)
            yield FdbEntry(device, mac_text(key >> 32), vtep)
    else:
        for key in keys:
            yield NeighEntry(device, ipv4(key >> 48), mac_text(key & 0xFFFFFFFFFFFF))


class PackedEntries:
    """Kernel entries as sets of packed keys per (kind, device), plus those that do not pack as objects:
    what a whole-table comparison works on (set operations on integers, no entry object per entry)."""

    __slots__ = ("keys", "others")

    def __init__(self) -> None:
        self.keys: dict[tuple[int, str], set[int]] = {}  # (FDB or NEIGH, vxlan device or bridge) -> keys
        self.others: set[KernelEntry] = set()

    @classmethod
    def of(cls, entries: Iterable[KernelEntry]) -> PackedEntries:
        packed = cls()
        for entry in entries:
            packed.add(entry)
        return packed

    def add(self, entry: KernelEntry) -> None:
        found = pack(entry)
        if found is None:
            self.others.add(entry)
        else:
            self.of_device(found[0], entry.device).add(found[1])

    def of_device(self, kind: int, device: str) -> set[int]:
        """The (live) key set of one kind on `device`."""
        keys = self.keys.get((kind, device))
        if keys is None:
            keys = self.keys[(kind, sys.intern(device))] = set()
        return keys

    def __len__(self) -> int:
        return len(self.others) + sum(len(k) for k in self.keys.values())

    def __iter__(self) -> Iterator[KernelEntry]:
        for (kind, device), keys in self.keys.items():
            yield from unpack(kind, device, keys)
        yield from self.others

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedEntries):
            other = set(other)
        return set(self) == other if isinstance(other, (set, frozenset)) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PackedEntries({len(self)} entries)"


class _Bucket:
    """Sorted packed keys plus the changes not merged yet (added: not in the arrays; removed: in them)."""

    __slots__ = ("hi", "lo", "added", "removed")

    def __init__(self) -> None:
        self.hi = array("Q")
        self.lo = array("H")
        self.added: set[int] = set()
        self.removed: set[int] = set()

    def __len__(self) -> int:
        return len(self.hi) + len(self.added) - len(self.removed)

    def in_arrays(self, key: int) -> bool:
        hi, lo = self.hi, self.lo
        h, low = key >> LO_BITS, key & LO_MASK
        i = bisect_left(hi, h)
        n = len(hi)
        while i < n and hi[i] == h:
            if lo[i] == low:
                return True
            i += 1
        return False

    def __contains__(self, key: int) -> bool:
        if key in self.added:
            return True
        if key in self.removed:
            return False
        return self.in_arrays(key)

    def add(self, key: int) -> None:
        if key in self.removed:
            self.removed.discard(key)
        elif key not in self.added and not self.in_arrays(key):
            self.added.add(key)
            if len(self.added) > max(MERGE_MIN, len(self.hi)):  # within a big batch: doubling, O(1) amortized
                self.merge()

    def discard(self, key: int) -> None:
        if key in self.added:
            self.added.discard(key)
        elif key not in self.removed and self.in_arrays(key):
            self.removed.add(key)
            if len(self.removed) > max(MERGE_MIN, len(self.hi) // 2):
                self.merge()

    def settle(self) -> None:
        """Merge the pending changes once they are more than a sixteenth of the table."""
        if len(self.added) + len(self.removed) > max(MERGE_MIN, len(self.hi) >> 4):
            self.merge()

    def merge(self) -> None:
        hi, lo = array("Q"), array("H")
        add_hi, add_lo = hi.append, lo.append
        adds = sorted(self.added)
        removed = self.removed
        j, na = 0, len(adds)
        nxt = adds[0] if adds else -1
        for h, low in zip(self.hi, self.lo):
            key = h << LO_BITS | low
            while j < na and nxt < key:
                add_hi(nxt >> LO_BITS)
                add_lo(nxt & LO_MASK)
                j += 1
                nxt = adds[j] if j < na else -1
            if removed and key in removed:
                continue
            add_hi(h)
            add_lo(low)
        for key in adds[j:]:
            add_hi(key >> LO_BITS)
            add_lo(key & LO_MASK)
        self.hi, self.lo = hi, lo
        self.added, self.removed = set(), set()

    def keys(self) -> Iterator[int]:
        removed = self.removed
        for h, low in zip(self.hi, self.lo):
            key = h << LO_BITS | low
            if not removed or key not in removed:
                yield key
        yield from list(self.added)


class _BucketKeys:
    """The keys of one bucket, iterable (in array order, then the pending additions) without a copy."""

    __slots__ = ("bucket",)

    def __init__(self, bucket: _Bucket) -> None:
        self.bucket = bucket

    def __iter__(self) -> Iterator[int]:
        return self.bucket.keys()

    def __len__(self) -> int:
        return len(self.bucket)


class OwnedSet(MutableSet):  # type: ignore[type-arg]
    """A set of KernelEntry (==, <=, -, & with plain sets as usual; those operators return plain sets)."""

    __slots__ = ("_fdb", "_neigh", "_others")

    def __init__(self, entries: Iterable[KernelEntry] = ()) -> None:
        self._fdb: dict[str, _Bucket] = {}  # by vxlan device
        self._neigh: dict[str, _Bucket] = {}  # by bridge
        self._others: set[KernelEntry] = set()
        for entry in entries:
            self.add(entry)

    @classmethod
    def _from_iterable(cls, it: Iterable[KernelEntry]) -> set[KernelEntry]:
        return set(it)

    def _bucket_key(self, entry: object) -> tuple[dict[str, _Bucket] | None, int]:
        """(the kind's buckets by device, packed key) of an entry that packs, else (None, 0)."""
        found = pack(entry)
        if found is None:
            return None, 0
        return (self._fdb if found[0] == FDB else self._neigh), found[1]

    def __contains__(self, entry: object) -> bool:
        buckets, key = self._bucket_key(entry)
        if buckets is None:
            return entry in self._others
        bucket = buckets.get(entry.device)  # type: ignore[attr-defined]
        if bucket is None:
            return False
        if key in bucket.added:
            return True
        if key in bucket.removed:
            return False
        hi = bucket.hi
        h = key >> LO_BITS
        i = bisect_left(hi, h)
        if i == len(hi) or hi[i] != h:
            return False
        return True if bucket.lo[i] == key & LO_MASK else bucket.in_arrays(key)

    def add_packed(self, fdb: bool, device: str, key: int) -> None:
        """Add an entry given packed (FDB: MAC << 32 | IPv4 VTEP; neighbour: IPv4 << 48 | MAC)."""
        buckets = self._fdb if fdb else self._neigh
        bucket = buckets.get(device)
        if bucket is None:
            bucket = buckets[sys.intern(device)] = _Bucket()
        bucket.add(key)

    def add(self, entry: KernelEntry) -> None:
        found = pack(entry)
        if found is None:
            self._others.add(entry)
        else:
            self.add_packed(found[0] == FDB, entry.device, found[1])

    def discard(self, entry: KernelEntry) -> None:
        buckets, key = self._bucket_key(entry)
        if buckets is None:
            self._others.discard(entry)
            return
        bucket = buckets.get(entry.device)
        if bucket is not None:
            bucket.discard(key)

    def settle(self) -> None:
        """Fold pending changes into the packed arrays where they have piled up (after a batch)."""
        for buckets in (self._fdb, self._neigh):
            for device, bucket in list(buckets.items()):
                bucket.settle()
                if not bucket.hi and not bucket.added:
                    del buckets[device]

    def __len__(self) -> int:
        return len(self._others) + sum(len(b) for b in self._fdb.values()) + sum(len(b) for b in self._neigh.values())

    def __iter__(self) -> Iterator[KernelEntry]:
        for kind, buckets in ((FDB, self._fdb), (NEIGH, self._neigh)):
            for device, bucket in list(buckets.items()):
                yield from self._decode(kind, device, bucket.keys())
        yield from list(self._others)

    _decode = staticmethod(unpack)

    def packed(self) -> PackedEntries:
        """A view as keys per (kind, device), each an iterable over the packed arrays and the pending
        changes (no entry object, no copy: at 100k routes a set of the 200k keys would cost ~15 MiB
        for the moment of a full sync): the owned side of a whole-table comparison, iterated once."""
        out = PackedEntries()
        for kind, buckets in ((FDB, self._fdb), (NEIGH, self._neigh)):
            for device, bucket in buckets.items():
                if len(bucket):
                    out.keys[(kind, device)] = _BucketKeys(bucket)  # type: ignore[assignment]
        out.others = set(self._others)
        return out

    def buckets(self) -> Iterator[tuple[int, str, array, array]]:
        """(FDB or NEIGH, device, high 64 bits, low 16 bits) of every non-empty bucket, by kind then device:
        sorted arrays with nothing pending (merged here). What a snapshot on disk holds."""
        for kind, buckets in ((FDB, self._fdb), (NEIGH, self._neigh)):
            for device in sorted(buckets):
                bucket = buckets[device]
                if bucket.added or bucket.removed:
                    bucket.merge()
                if bucket.hi:
                    yield kind, device, bucket.hi, bucket.lo

    def take_bucket(self, kind: int, device: str, hi: array, lo: array) -> None:
        """Hold `hi`/`lo` (as `buckets` gives them: sorted by (hi, lo), no duplicate) as the entries of
        one kind on `device`, replacing those held there."""
        bucket = _Bucket()
        bucket.hi, bucket.lo = hi, lo
        (self._fdb if kind == FDB else self._neigh)[sys.intern(device)] = bucket

    def update_keys(self, kind: int, device: str, added: Iterable[int] = (), removed: Iterable[int] = ()) -> None:
        """Add and remove packed keys of one kind on `device` with one rebuild of its arrays (a big full sync)."""
        buckets = self._fdb if kind == FDB else self._neigh
        bucket = buckets.get(device)
        keys: set[int] = set()
        if bucket is not None:
            keys.update(map(_join, bucket.hi, bucket.lo))
            keys -= bucket.removed
            keys |= bucket.added
        keys.difference_update(removed)
        keys.update(added)
        if not keys:
            buckets.pop(device, None)
            return
        ordered = sorted(keys)
        del keys
        self.take_bucket(kind, device, array("Q", [k >> LO_BITS for k in ordered]), array("H", [k & LO_MASK for k in ordered]))

    def unpacked(self) -> list[KernelEntry]:
        """The entries that do not pack (kept as objects)."""
        return list(self._others)

    def by_device(self, devices: Iterable[str]) -> list[KernelEntry]:
        """The entries on the given devices (vxlan devices or bridges)."""
        wanted = set(devices)
        found = [e for kind, buckets in ((FDB, self._fdb), (NEIGH, self._neigh)) for device, b in buckets.items() if device in wanted
                 for e in self._decode(kind, device, b.keys())]
        return found + [e for e in self._others if e.device in wanted]

    def ordered(self, kind: type) -> Iterator[KernelEntry]:
        """The entries of one kind (FdbEntry or NeighEntry) in entry_sort_key order, made one at a time."""
        code = FDB if kind is FdbEntry else NEIGH
        others: dict[str, list[KernelEntry]] = {}
        for entry in self._others:
            if entry.__class__ is kind:
                others.setdefault(entry.device, []).append(entry)
        buckets = self._fdb if code == FDB else self._neigh
        for device in sorted(set(buckets) | set(others)):
            bucket = buckets.get(device)
            if bucket is not None and (bucket.added or bucket.removed):
                bucket.merge()  # the arrays alone, in key order = entry_sort_key order within the device
            packed = self._decode(code, device, bucket.keys()) if bucket is not None else iter(())
            yield from heapq.merge(packed, sorted(others.get(device, ()), key=entry_sort_key), key=entry_sort_key)

    def __repr__(self) -> str:
        return f"OwnedSet({len(self)} entries)"
