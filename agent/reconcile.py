"""Bring the kernel to the desired state: plan (pure) and apply (netlink + ledger)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import AbstractSet, Callable, Iterable, Protocol, Sequence, Union

from .background import Background
from .entries import KernelEntry, describe, entry_sort_key
from .errors import KernelError
from .ownedset import FDB, NEIGH, OwnedSet, PackedEntries, unpack

log = logging.getLogger("evpn.agent.reconcile")
LOG_EACH_UP_TO = 50  # entries of a plan logged one line each at INFO; a bigger plan: one summary line
READ_AHEAD_MAX_AGE = 10.0  # seconds: a kernel read made ahead of a full sync is used if it is no older


@dataclass
class Plan:
    add: list[KernelEntry] = field(default_factory=list)
    remove: list[KernelEntry] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)


def plan_full(desired: AbstractSet[KernelEntry], present: AbstractSet[KernelEntry], owned: AbstractSet[KernelEntry]) -> Plan:
    """Whole-table plan: add what is desired and absent, remove what we own and no longer want."""
    return Plan(add=sorted(desired - present, key=entry_sort_key), remove=sorted((owned & present) - desired, key=entry_sort_key))


def plan_packed(desired: PackedEntries, present: PackedEntries, owned: PackedEntries) -> tuple[Plan, list[KernelEntry]]:
    """`plan_full` on packed keys (set operations on integers), and the owned entries the kernel no
    longer holds. Entry objects are made only for the entries in the answer, in entry_sort_key order
    (packed keys sort as their entries do within one kind and device)."""
    plan, vanished = Plan(), []
    for kind in (FDB, NEIGH):
        for device in sorted({d for k, d in desired.keys if k == kind} | {d for k, d in present.keys if k == kind}
                             | {d for k, d in owned.keys if k == kind}):
            want, have, mine = (side.keys.get((kind, device), _NONE) for side in (desired, present, owned))
            plan.add.extend(unpack(kind, device, sorted(want - have)))
            plan.remove.extend(unpack(kind, device, sorted((mine & have) - want)))
            vanished.extend(unpack(kind, device, sorted(mine - have)))
    if desired.others or present.others or owned.others:  # entries that do not pack (IPv6): rare, compared as objects
        plan.add = sorted(plan.add + list(desired.others - present.others), key=entry_sort_key)
        plan.remove = sorted(plan.remove + list((owned.others & present.others) - desired.others), key=entry_sort_key)
        vanished += owned.others - present.others
    return plan, vanished


_NONE: frozenset[int] = frozenset()


def plan_touched(touched: Iterable[KernelEntry], wants: Callable[[KernelEntry], bool], owned: AbstractSet[KernelEntry]) -> Plan:
    """Plan for the entries one batch of routes touched; never reads the kernel."""
    plan = Plan()
    for entry in sorted(touched, key=entry_sort_key):
        if wants(entry) and entry not in owned:
            plan.add.append(entry)
        elif not wants(entry) and entry in owned:
            plan.remove.append(entry)
    return plan


Outcome = Union[bool, KernelError]  # per entry: True done, False nothing to do (present already / absent), or why it failed


class FdbTable(Protocol):
    def packed_entries(self, devices: Iterable[str], bridges: Iterable[str] = ()) -> PackedEntries: ...
    def add_many(self, entries: Sequence[KernelEntry]) -> list[Outcome]: ...
    def delete_many(self, entries: Sequence[KernelEntry]) -> list[Outcome]: ...


class OwnershipStore(Protocol):
    def load(self) -> Iterable[KernelEntry]: ...  # an OwnedSet is taken as is, anything else is copied into one
    def record(self, added: set[KernelEntry], removed: set[KernelEntry], owned: OwnedSet) -> None: ...


class Reconciler:
    """Applies plans to the kernel (in batches) and keeps the set of entries this agent owns.

    Ownership changes are handed to the store as they happen (added/removed since the last write),
    so keeping it costs O(changes), never O(owned), per batch. The owned entries are held packed
    (OwnedSet: ~10 bytes an IPv4 entry instead of ~98 for a set of entry objects).
    """

    def __init__(self, kernel: FdbTable, ledger: OwnershipStore, devices: Iterable[str], bridges: Iterable[str] = (),
                 load_in_background: bool = False) -> None:
        self.kernel = kernel
        self.ledger = ledger
        self.devices = tuple(devices)
        self.bridges = tuple(bridges)
        self._owned: OwnedSet | None = None
        self._loading: Background[OwnedSet] | None = None
        if load_in_background:  # the ledger is read while the caller does other work (gRPC waits)
            self._loading = Background(self._load, "ledger-load")
        else:
            self._owned = self._load()
        self._read_ahead: Background[PackedEntries] | None = None
        self.added = 0
        self.removed = 0
        self.errors = 0
        self._gained: set[KernelEntry] = set()
        self._lost: set[KernelEntry] = set()

    def _load(self) -> OwnedSet:
        loaded = self.ledger.load()  # (Ledger.load itself logs and owns nothing on an unreadable file)
        return loaded if isinstance(loaded, OwnedSet) else OwnedSet(loaded)

    @property
    def owned(self) -> OwnedSet:
        """The entries this agent made (waits for the ledger on first use if it is being read; a crash
        of that read is raised here, never taken for an empty ownership)."""
        if self._loading is not None:
            self._owned, self._loading = self._loading.result(), None
        return self._owned  # type: ignore[return-value]

    @owned.setter
    def owned(self, entries: Iterable[KernelEntry]) -> None:
        if self._loading is not None:
            self._loading.result()
            self._loading = None
        self._owned = entries if isinstance(entries, OwnedSet) else OwnedSet(entries)

    # -- reading the kernel ahead of a full sync

    def read_ahead(self) -> None:
        """Start reading the kernel for the next full sync now, in a thread (the caller waits for gobgpd
        meanwhile; the kernel's own walk of a big FDB is time in a system call, beside that wait).
        Nothing else may use the kernel until that sync, or `drop_read_ahead`."""
        self.drop_read_ahead()
        self._read_ahead = Background(lambda: self.kernel.packed_entries(self.devices, self.bridges), "kernel-read")

    def drop_read_ahead(self) -> None:
        """Wait for a read started by `read_ahead` and forget it (the sync it was for is not coming)."""
        ahead, self._read_ahead = self._read_ahead, None
        if ahead is not None:
            try:
                ahead.result()
            except Exception as exc:  # noqa: BLE001 - nobody uses this read: the next one will say it again
                log.debug("event=kernel-read-ahead-dropped error=%r", str(exc))

    def _present(self) -> PackedEntries:
        """The kernel's entries: the read made ahead, if younger than READ_AHEAD_MAX_AGE, else read now."""
        ahead, self._read_ahead = self._read_ahead, None
        if ahead is not None:
            present = ahead.result()
            age = time.monotonic() - (ahead.finished or 0.0)
            if age <= READ_AHEAD_MAX_AGE:
                log.debug("event=kernel-read-ahead-used seconds_old=%.2f", age)
                return present
            log.info("event=kernel-read-ahead-too-old seconds_old=%.1f (reading again)", age)
        return self.kernel.packed_entries(self.devices, self.bridges)

    def serve(self, devices: Iterable[str], bridges: Iterable[str]) -> None:
        """The vxlan devices and bridges whose entries full syncs read (after a config reload)."""
        self.devices = tuple(devices)
        self.bridges = tuple(bridges)

    def full_sync(self, desired: AbstractSet[KernelEntry] | PackedEntries, remove_stale: bool = True,
                  present: PackedEntries | None = None) -> Plan:
        """Read the kernel once (or take `present`, or the read started by `read_ahead`), forget owned
        entries that vanished, and apply the whole-table plan. Compared as packed keys (nothing to change at 100k
        routes: no entry object made).

        With remove_stale=False only additions are made (the RIB may still be filling up).
        """
        if present is None:
            present = self._present()
        wanted = desired if isinstance(desired, PackedEntries) else PackedEntries.of(desired)
        plan, vanished = plan_packed(wanted, present, self.owned.packed())
        del present, wanted
        for entry in vanished:
            self.forget(entry)  # on disk too: a later hand-made copy is not ours
        if not remove_stale:
            plan.remove = []
        self._apply(plan)
        self.flush()
        return plan

    def sync_touched(self, touched: Iterable[KernelEntry], wants: Callable[[KernelEntry], bool]) -> Plan:
        plan = plan_touched(touched, wants, self.owned)
        self._apply(plan)
        self.flush()
        return plan

    def forget(self, entry: KernelEntry) -> None:
        """An owned entry is gone from the kernel without us (dropped by the kernel, deleted by hand)."""
        if entry in self.owned:
            self.owned.discard(entry)
            self._note(entry, owned=False)

    def _note(self, entry: KernelEntry, owned: bool) -> None:
        gained, lost = (self._gained, self._lost) if owned else (self._lost, self._gained)
        if entry in lost:
            lost.discard(entry)  # undone before it was written
        else:
            gained.add(entry)

    def _apply(self, plan: Plan) -> None:
        self.drop_read_ahead()  # the kernel is ours again (one netlink socket, one thread at a time)
        level = logging.INFO if len(plan.remove) + len(plan.add) <= LOG_EACH_UP_TO else logging.DEBUG
        added, removed = self.added, self.removed
        self._apply_logged(plan, level)
        if level == logging.DEBUG:
            log.info("event=entries-applied added=%d removed=%d (one line per entry at DEBUG)",
                     self.added - added, self.removed - removed)

    def _apply_logged(self, plan: Plan, level: int) -> None:
        each = log.isEnabledFor(level)  # a line per entry (describe() costs more than the bookkeeping)
        if plan.remove:
            for entry, outcome in zip(plan.remove, self.kernel.delete_many(plan.remove)):
                if isinstance(outcome, KernelError):
                    self.errors += 1
                    log.error("event=kernel-error op=remove entry=%s error=%r", describe(entry), str(outcome))
                    continue
                self.owned.discard(entry)
                self._note(entry, owned=False)
                self.removed += 1
                if each:
                    log.log(level, "event=entry-removed %s", describe(entry))
        if plan.add:
            for entry, outcome in zip(plan.add, self.kernel.add_many(plan.add)):
                if isinstance(outcome, KernelError):
                    self.errors += 1
                    log.error("event=kernel-error op=add entry=%s error=%r", describe(entry), str(outcome))
                elif outcome:
                    self.owned.add(entry)
                    self._note(entry, owned=True)
                    self.added += 1
                    if each:
                        log.log(level, "event=entry-added %s", describe(entry))
                elif each:
                    log.log(level, "event=entry-present-foreign %s (made by someone else; left alone)", describe(entry))

    def forget_or_remove(self, entry: KernelEntry) -> None:
        """Remove an owned entry of a device that is no longer served (gone already: just forget it)."""
        self.drop_read_ahead()
        outcome = self.kernel.delete_many([entry])[0]
        if isinstance(outcome, KernelError):
            log.warning("event=kernel-error op=remove %s error=%r (forgotten)", describe(entry), str(outcome))
        self.forget(entry)
        self.removed += 1
        log.info("event=entry-removed %s reason=vni-no-longer-served", describe(entry))
        self.flush()

    def flush(self) -> None:
        """Hand the ownership changes since the last write to the store."""
        if self._gained or self._lost:
            self.ledger.record(self._gained, self._lost, self.owned)
            self._gained, self._lost = set(), set()
        self.owned.settle()
