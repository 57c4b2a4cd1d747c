"""Bring the kernel to the desired state: plan (pure) and apply (netlink + ledger)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

from .entries import KernelEntry, describe, entry_sort_key
from .errors import KernelError

log = logging.getLogger("evpn.agent.reconcile")


@dataclass
class Plan:
    add: list[KernelEntry] = field(default_factory=list)
    remove: list[KernelEntry] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)


def plan_full(desired: set[KernelEntry], present: set[KernelEntry], owned: set[KernelEntry]) -> Plan:
    """Whole-table plan: add what is desired and absent, remove what we own and no longer want."""
    return Plan(add=sorted(desired - present, key=entry_sort_key), remove=sorted((owned & present) - desired, key=entry_sort_key))


def plan_touched(touched: Iterable[KernelEntry], wants: Callable[[KernelEntry], bool], owned: set[KernelEntry]) -> Plan:
    """Plan for the entries one batch of routes touched; never reads the kernel."""
    plan = Plan()
    for entry in sorted(touched, key=entry_sort_key):
        if wants(entry) and entry not in owned:
            plan.add.append(entry)
        elif not wants(entry) and entry in owned:
            plan.remove.append(entry)
    return plan


class FdbTable(Protocol):
    def entries(self, devices: Iterable[str], bridges: Iterable[str] = ()) -> set[KernelEntry]: ...
    def add(self, entry: KernelEntry) -> bool: ...
    def delete(self, entry: KernelEntry) -> bool: ...


class OwnershipStore(Protocol):
    def load(self) -> set[KernelEntry]: ...
    def save(self, owned: set[KernelEntry]) -> None: ...


class Reconciler:
    """Applies plans to the kernel and keeps the set of entries this agent owns."""

    def __init__(self, kernel: FdbTable, ledger: OwnershipStore, devices: Iterable[str], bridges: Iterable[str] = (),
                 save_interval: float = 0.0) -> None:
        self.kernel = kernel
        self.ledger = ledger
        self.devices = tuple(devices)
        self.bridges = tuple(bridges)
        self.owned: set[KernelEntry] = ledger.load()
        self.added = 0
        self.removed = 0
        self.errors = 0
        self.save_interval = save_interval  # coalesce ledger writes (they cost O(owned) each)
        self._last_save = 0.0
        self._unsaved = False

    def serve(self, devices: Iterable[str], bridges: Iterable[str]) -> None:
        """The vxlan devices and bridges whose entries full syncs read (after a config reload)."""
        self.devices = tuple(devices)
        self.bridges = tuple(bridges)

    def full_sync(self, desired: set[KernelEntry], remove_stale: bool = True) -> Plan:
        """Read the kernel once, forget owned entries that vanished, and apply the whole-table plan.

        With remove_stale=False only additions are made (the RIB may still be filling up).
        """
        present = self.kernel.entries(self.devices, self.bridges)
        vanished = self.owned - present
        self.owned &= present
        plan = plan_full(desired, present, self.owned)
        if not remove_stale:
            plan.remove = []
        self._apply(plan)
        if vanished and not plan:
            self._save()  # forget them on disk too: a later hand-made copy is not ours
        return plan

    def sync_touched(self, touched: Iterable[KernelEntry], wants: Callable[[KernelEntry], bool]) -> Plan:
        plan = plan_touched(touched, wants, self.owned)
        self._apply(plan)
        return plan

    def _apply(self, plan: Plan) -> None:
        for entry in plan.remove:
            try:
                self.kernel.delete(entry)
            except KernelError as exc:
                self.errors += 1
                log.error("event=kernel-error op=remove entry=%s error=%r", describe(entry), str(exc))
                continue
            self.owned.discard(entry)
            self.removed += 1
            log.info("event=entry-removed %s", describe(entry))
        for entry in plan.add:
            try:
                made = self.kernel.add(entry)
            except KernelError as exc:
                self.errors += 1
                log.error("event=kernel-error op=add entry=%s error=%r", describe(entry), str(exc))
                continue
            if made:
                self.owned.add(entry)
                self.added += 1
                log.info("event=entry-added %s", describe(entry))
            else:
                log.info("event=entry-present-foreign %s (made by someone else; left alone)", describe(entry))
        if plan:
            self._save()

    def forget_or_remove(self, entry: KernelEntry) -> None:
        """Remove an owned entry of a device that is no longer served (gone already: just forget it)."""
        try:
            self.kernel.delete(entry)
        except KernelError as exc:
            log.warning("event=kernel-error op=remove %s error=%r (forgotten)", describe(entry), str(exc))
        self.owned.discard(entry)
        self.removed += 1
        log.info("event=entry-removed %s reason=vni-no-longer-served", describe(entry))
        self._save()

    def _save(self) -> None:
        now = time.monotonic()
        if self.save_interval and now - self._last_save < self.save_interval:
            self._unsaved = True
            return
        self.ledger.save(self.owned)
        self._last_save, self._unsaved = now, False

    def flush(self) -> None:
        """Write a coalesced ledger update now (called when idle and at shutdown)."""
        if self._unsaved:
            self.ledger.save(self.owned)
            self._last_save, self._unsaved = time.monotonic(), False
