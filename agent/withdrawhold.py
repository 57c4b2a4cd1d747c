"""The stale withdrawal grace: a withdrawal of a stale path waits `grace` seconds before it reaches the RIB.

gobgpd (graceful restart, receiving side) marks a lost peer's paths stale and drops the ones still stale
when that peer sends its End-of-RIB, or when the restart time runs out; the watch then reports
withdrawals that carry `stale=true` (gobgpd clones the stale path into the withdrawal). gobgpd 3.36's
restarted controller sends its End-of-RIB to the first host back before the other hosts have reconnected
(README, "Faults and recovery"), so that host's gobgpd drops routes that come back 0.2-0.9 s later. Held
here, such a withdrawal is cancelled by the route's re-announcement and the kernel never changes.

- a withdrawal with `stale=true` is held until `now + grace`; a route announced again before that (same
  route key) cancels it; at the deadline the withdrawal is released to the RIB;
- every other withdrawal (a peer's UPDATE withdrawing a route: `stale=false`) passes at once, and so does
  a genuine withdrawal of a route that is held (it ends the hold);
- a new session's table cancels the holds of the routes it has; a held route it lacks stays held until its
  deadline (its announcement is handed to the RIB again in the meantime), whatever the agent's session did;
- grace 0 holds nothing.

Pure: the caller passes the time; `log_changes` writes the greppable lines of one step.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from .routes import RouteEvent, describe_route

log = logging.getLogger("evpn.agent.withdrawhold")
LOG_EACH_UP_TO = 50  # held/released/cancelled routes of one step logged one line each; more: one summary line

RouteKey = tuple  # a route's key (routes.py)


@dataclass(slots=True)
class HoldChanges:
    """What one step did: withdrawals held, held ones cancelled (the route came back) or released."""

    held: list[RouteEvent] = field(default_factory=list)
    cancelled: list[RouteEvent] = field(default_factory=list)  # the withdrawals that were held
    released: list[RouteEvent] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.held or self.cancelled or self.released)


@dataclass(frozen=True, slots=True)
class _Held:
    deadline: float
    withdrawal: RouteEvent


class WithdrawHold:
    """Stale withdrawals waiting for their route to come back, by route key, with their deadlines."""

    def __init__(self, grace: float) -> None:
        if grace < 0:
            raise ValueError(f"stale withdrawal grace {grace!r} must be >= 0 seconds")
        self.grace = grace
        self._held: dict[RouteKey, _Held] = {}
        self._deadlines: list[tuple[float, int, RouteKey]] = []  # heap; entries whose key was cancelled are skipped
        self._order = 0
        self._back: set[RouteKey] = set()  # held routes a table being read has (table_part .. table_end)
        self.held_total = 0
        self.cancelled_total = 0
        self.released_total = 0

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, key: object) -> bool:
        return key in self._held

    def next_deadline(self) -> float | None:
        """When the next held withdrawal is due (None: nothing held)."""
        while self._deadlines and self._stale_top():
            heapq.heappop(self._deadlines)
        return self._deadlines[0][0] if self._deadlines else None

    def _stale_top(self) -> bool:
        deadline, _, key = self._deadlines[0]
        held = self._held.get(key)
        return held is None or held.deadline != deadline

    def admit(self, events: Iterable[RouteEvent], now: float, changes: HoldChanges | None = None) -> tuple[list[RouteEvent], HoldChanges]:
        """The events to apply now, in their order (stale withdrawals taken out and held), and what changed."""
        changes = changes if changes is not None else HoldChanges()
        passed: list[RouteEvent] = []
        holding = self.grace > 0
        for event in events:
            if event.withdrawn and event.stale and holding and not event.local:
                key = event.route.key
                if key not in self._held:  # a repeated stale withdrawal keeps the first deadline
                    self._hold(key, event, now + self.grace)
                    changes.held.append(event)
                continue
            if not self._held:  # nothing held: no key to look up (the common case, 100k events a batch)
                passed.append(event)
                continue
            held = self._held.pop(event.route.key, None)
            if held is not None:
                if event.withdrawn:  # a genuine withdrawal: the route goes now
                    self.released_total += 1
                    changes.released.append(held.withdrawal)
                else:
                    self.cancelled_total += 1
                    changes.cancelled.append(held.withdrawal)
            passed.append(event)
        return passed, changes

    def _hold(self, key: RouteKey, event: RouteEvent, deadline: float) -> None:
        self._held[key] = _Held(deadline, event)
        self._order += 1
        heapq.heappush(self._deadlines, (deadline, self._order, key))
        self.held_total += 1

    def due(self, now: float, changes: HoldChanges | None = None) -> tuple[list[RouteEvent], HoldChanges]:
        """The held withdrawals whose deadline has come (oldest first), released to the RIB."""
        changes = changes if changes is not None else HoldChanges()
        released: list[RouteEvent] = []
        while (deadline := self.next_deadline()) is not None and deadline <= now:
            _, _, key = heapq.heappop(self._deadlines)
            held = self._held.pop(key)
            released.append(held.withdrawal)
        self.released_total += len(released)
        changes.released.extend(released)
        return released, changes

    def resync(self, table: list[RouteEvent], now: float) -> tuple[list[RouteEvent], HoldChanges]:
        """A new session's full table: the routes it has end their holds; the held routes it lacks are
        added (their announcement, marked stale) so the RIB keeps them until their deadline."""
        self.table_begin()
        self.table_part(table)
        kept, changes = self.table_end()
        return (table + kept if kept else table), changes

    def table_begin(self) -> None:
        """A new session's full table is about to be read part by part (`table_part`, then `table_end`)."""
        self._back = set()

    def table_part(self, events: list[RouteEvent]) -> None:
        """Part of the table: its held routes are back (their holds end at `table_end`, once the table is
        whole: a read cut short ends none)."""
        if self._held:
            held, back = self._held, self._back
            back.update(key for key in (event.route.key for event in events) if key in held)

    def table_end(self) -> tuple[list[RouteEvent], HoldChanges]:
        """After the whole table: the holds of the routes it had end; the announcements of the held routes
        it lacked come back, marked stale, for the RIB to keep until their deadline."""
        changes = HoldChanges()
        for key in self._back:
            held = self._held.pop(key, None)
            if held is not None:
                self.cancelled_total += 1
                changes.cancelled.append(held.withdrawal)
        self._back = set()
        kept = [RouteEvent(h.withdrawal.route, withdrawn=False, local=False, stale=True) for h in self._held.values()]
        return kept, changes


def log_changes(changes: HoldChanges, grace: float, held_now: int) -> None:
    """Greppable lines: `event=withdraw-held|withdraw-cancelled|withdraw-released`, one per route up to
    LOG_EACH_UP_TO of a kind in one step, else one summary line with the count and the VTEPs."""
    for name, events, why in (("withdraw-held", changes.held, f"grace={grace:g}s"),
                              ("withdraw-cancelled", changes.cancelled, "reason=route-back"),
                              ("withdraw-released", changes.released, "reason=grace-over-or-withdrawn")):
        if not events:
            continue
        if len(events) <= LOG_EACH_UP_TO:
            for event in events:
                log.info("event=%s %s %s held_now=%d", name, describe_route(event.route), why, held_now)
        else:
            vteps = sorted({str(e.route.vtep) for e in events})
            log.info("event=%s count=%d vteps=%s %s held_now=%d", name, len(events), ",".join(vteps[:20]) + (",..." if len(vteps) > 20 else ""),
                     why, held_now)
