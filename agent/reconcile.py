"""Bring the kernel to the desired state: plan (pure) and apply (netlink + ledger)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

from .desired import FloodEntry
from .errors import KernelError

log = logging.getLogger("evpn.agent.reconcile")


@dataclass
class Plan:
    add: list[FloodEntry] = field(default_factory=list)
    remove: list[FloodEntry] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)


def plan_full(desired: set[FloodEntry], present: set[FloodEntry], owned: set[FloodEntry]) -> Plan:
    """Whole-table plan: add what is desired and absent, remove what we own and no longer want."""
    return Plan(add=sorted(desired - present), remove=sorted((owned & present) - desired))


def plan_touched(touched: Iterable[FloodEntry], wants: Callable[[FloodEntry], bool], owned: set[FloodEntry]) -> Plan:
    """Plan for the entries one batch of routes touched; never reads the kernel."""
    plan = Plan()
    for entry in sorted(touched):
        if wants(entry) and entry not in owned:
            plan.add.append(entry)
        elif not wants(entry) and entry in owned:
            plan.remove.append(entry)
    return plan


class FloodTable(Protocol):
    def flood_entries(self, devices: Iterable[str]) -> set[FloodEntry]: ...
    def add_flood(self, entry: FloodEntry) -> bool: ...
    def del_flood(self, entry: FloodEntry) -> bool: ...


class OwnershipStore(Protocol):
    def load(self) -> set[FloodEntry]: ...
    def save(self, flood: set[FloodEntry]) -> None: ...


class Reconciler:
    """Applies plans to the kernel and keeps the set of entries this agent owns."""

    def __init__(self, kernel: FloodTable, ledger: OwnershipStore, devices: Iterable[str]) -> None:
        self.kernel = kernel
        self.ledger = ledger
        self.devices = tuple(devices)
        self.owned: set[FloodEntry] = ledger.load()
        self.added = 0
        self.removed = 0
        self.errors = 0

    def full_sync(self, desired: set[FloodEntry]) -> Plan:
        """Read the kernel once, forget owned entries that vanished, and apply the whole-table plan."""
        present = self.kernel.flood_entries(self.devices)
        self.owned &= present
        plan = plan_full(desired, present, self.owned)
        self._apply(plan)
        return plan

    def sync_touched(self, touched: Iterable[FloodEntry], wants: Callable[[FloodEntry], bool]) -> Plan:
        plan = plan_touched(touched, wants, self.owned)
        self._apply(plan)
        return plan

    def _apply(self, plan: Plan) -> None:
        for entry in plan.remove:
            try:
                self.kernel.del_flood(entry)
            except KernelError as exc:
                self.errors += 1
                log.error("event=kernel-error op=remove device=%s vtep=%s error=%r", entry.device, entry.vtep, str(exc))
                continue
            self.owned.discard(entry)
            self.removed += 1
            log.info("event=flood-removed device=%s vtep=%s", entry.device, entry.vtep)
        for entry in plan.add:
            try:
                made = self.kernel.add_flood(entry)
            except KernelError as exc:
                self.errors += 1
                log.error("event=kernel-error op=add device=%s vtep=%s error=%r", entry.device, entry.vtep, str(exc))
                continue
            if made:
                self.owned.add(entry)
                self.added += 1
                log.info("event=flood-added device=%s vtep=%s", entry.device, entry.vtep)
            else:
                log.info("event=flood-present-foreign device=%s vtep=%s (made by someone else; left alone)", entry.device, entry.vtep)
        if plan:
            self.ledger.save(self.owned)
