"""What the agent's threads tell its main loop: one small class per kind of event, one typed queue.

Producers: the gobgpd watch (`RoutesChanged`, `WatchEnded`), the bridge FDB watcher
(`LocalMacsChanged`, `LocalMacsSnapshot`, `NeighboursLost`), the ARP/ND snooper (`IpsSeen`), and any worker that dies
(`WorkerFailed`). The main loop (`service.py`) drains the queue in batches.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from .errors import GobgpUnavailable

if TYPE_CHECKING:
    from .ipsnoop import IpSeen
    from .localmacs import LocalMac, LocalMacEvent, NeighLost
    from .routes import RouteEvent


@dataclass(frozen=True, slots=True)
class RoutesChanged:
    """Decoded best-path changes of one gobgpd session (the first of a session is its whole table)."""

    session: int
    events: list[RouteEvent]
    errors: list[str]  # malformed paths, one description each
    received: float = 0.0  # monotonic time the agent got them (route-to-kernel latency starts here)


@dataclass(frozen=True, slots=True)
class WatchEnded:
    """The gobgpd watch of `session` ended: the session is over."""

    session: int
    error: GobgpUnavailable


@dataclass(frozen=True, slots=True)
class LocalMacsChanged:
    """VM MACs that appeared behind, or left, this host's bridges."""

    changes: tuple[LocalMacEvent, ...]


@dataclass(frozen=True, slots=True)
class LocalMacsSnapshot:
    """Every local MAC of the VNIs in `vnis`, read again after netlink events were lost."""

    vnis: frozenset[int]
    present: dict[LocalMac, int]  # MAC -> the bridge port it sits behind


@dataclass(frozen=True, slots=True)
class NeighboursLost:
    """Neighbour entries the kernel deleted on served bridges (ours are put back if still wanted)."""

    items: tuple[NeighLost, ...]
    seen: float = float("inf")  # (monotonic) when the watcher read the deletions (unknown: never dropped)


@dataclass(frozen=True, slots=True)
class IpsSeen:
    """Addresses local VMs were seen using (ARP/ND)."""

    items: tuple[IpSeen, ...]


@dataclass(frozen=True, slots=True)
class WorkerFailed:
    """A background worker died: the agent cannot tell the truth any more and must exit."""

    worker: str
    error: str


AgentEvent = Union[RoutesChanged, WatchEnded, LocalMacsChanged, LocalMacsSnapshot, NeighboursLost, IpsSeen, WorkerFailed]


class EventQueue:
    """A thread-safe FIFO of AgentEvents."""

    def __init__(self) -> None:
        self._queue: queue.Queue[AgentEvent] = queue.Queue()

    def put(self, event: AgentEvent) -> None:
        self._queue.put(event)

    def get(self, timeout: float) -> AgentEvent | None:
        """The next event, or None if none came within `timeout` seconds."""
        try:
            return self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def batch(self, first: AgentEvent, window: float) -> list[AgentEvent]:
        """`first` and whatever else arrives within `window` seconds after it."""
        batch = [first]
        deadline = time.monotonic() + window
        while (left := deadline - time.monotonic()) > 0:
            item = self.get(left)
            if item is None:
                break
            batch.append(item)
        return batch

    def empty(self) -> bool:
        return self._queue.empty()
