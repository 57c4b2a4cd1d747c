"""Bring the kernel to the desired state: plan (pure) and apply (netlink + ledger)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

from .desired import FdbEntry
from .errors import KernelError

log = logging.getLogger("evpn.agent.reconcile")


@dataclass
class Plan:
    add: list[FdbEntry] = field(default_factory=list)
    remove: list[FdbEntry] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)


def plan_full(desired: set[FdbEntry], present: set[FdbEntry], owned: set[FdbEntry]) -> Plan:
    """Whole-table plan: add what is desired and absent, remove what we own and no longer want."""
    return Plan(add=sorted(desired - present), remove=sorted((owned & present) - desired))


def plan_touched(touched: Iterable[FdbEntry], wants: Callable[[FdbEntry], bool], owned: set[FdbEntry]) -> Plan:
    """Plan for the entries one batch of routes touched; never reads the kernel."""
    plan = Plan()
    for entry in sorted(touched):
        if wants(entry) and entry not in owned:
            plan.add.append(entry)
        elif not wants(entry) and entry in owned:
            plan.remove.append(entry)
    return plan


class FdbTable(Protocol):
    def entries(self, devices: Iterable[str]) -> set[FdbEntry]: ...
    def add(self, entry: FdbEntry) -> bool: ...
    def delete(self, entry: FdbEntry) -> bool: ...


class OwnershipStore(Protocol):
    def load(self) -> set[FdbEntry]: ...
    def save(self, owned: set[FdbEntry]) -> None: ...


class Reconciler:
    """Applies plans to the kernel and keeps the set of entries this agent owns."""

    def __init__(self, kernel: FdbTable, ledger: OwnershipStore, devices: Iterable[str]) -> None:
        self.kernel = kernel
        self.ledger = ledger
        self.devices = tuple(devices)
        self.owned: set[FdbEntry] = ledger.load()
        self.added = 0
        self.removed = 0
        self.errors = 0

    def full_sync(self, desired: set[FdbEntry], remove_stale: bool = True) -> Plan:
        """Read the kernel once, forget owned entries that vanished, and apply the whole-table plan.

        With remove_stale=False only additions are made (the RIB may still be filling up).
        """
        present = self.kernel.entries(self.devices)
        vanished = self.owned - present
        self.owned &= present
        plan = plan_full(desired, present, self.owned)
        if not remove_stale:
            plan.remove = []
        self._apply(plan)
        if vanished and not plan:
            self.ledger.save(self.owned)  # forget them on disk too: a later hand-made copy is not ours
        return plan

    def sync_touched(self, touched: Iterable[FdbEntry], wants: Callable[[FdbEntry], bool]) -> Plan:
        plan = plan_touched(touched, wants, self.owned)
        self._apply(plan)
        return plan

    def _apply(self, plan: Plan) -> None:
        for entry in plan.remove:
            try:
                self.kernel.delete(entry)
            except KernelError as exc:
                self.errors += 1
                log.error("event=kernel-error op=remove device=%s mac=%s vtep=%s error=%r", entry.device, entry.mac, entry.vtep, str(exc))
                continue
            self.owned.discard(entry)
            self.removed += 1
            log.info("event=fdb-removed device=%s mac=%s vtep=%s", entry.device, entry.mac, entry.vtep)
        for entry in plan.add:
            try:
                made = self.kernel.add(entry)
            except KernelError as exc:
                self.errors += 1
                log.error("event=kernel-error op=add device=%s mac=%s vtep=%s error=%r", entry.device, entry.mac, entry.vtep, str(exc))
                continue
            if made:
                self.owned.add(entry)
                self.added += 1
                log.info("event=fdb-added device=%s mac=%s vtep=%s", entry.device, entry.mac, entry.vtep)
            else:
                log.info("event=fdb-present-foreign device=%s mac=%s vtep=%s (made by someone else; left alone)", entry.device, entry.mac, entry.vtep)
        if plan:
            self.ledger.save(self.owned)
