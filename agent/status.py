"""The agent's status file: a JSON snapshot for operators and labctl, rewritten at most every
`interval` seconds (it costs O(table) to build, so it is throttled, never written per batch)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .atomicfile import write_json_atomic
from .config import AgentConfig
from .desired import RibView
from .mactable import LocalMacTable
from .reconcile import Reconciler

DETAIL_LIMIT = 2000  # above this many entries the file carries counts, not tables


@dataclass
class Health:
    """What the session loop knows about itself."""

    connected: bool = False
    ready: bool = False
    stale_pending: bool = False
    reconnects: int = 0
    malformed_routes: int = 0
    resync_repaired: int = 0  # entries the periodic resync found wrong (drift) and repaired
    last_full_sync: float = 0.0  # unix time


def build_status(cfg: AgentConfig, health: Health, rib: RibView, table: LocalMacTable, reconciler: Reconciler,
                 refused: int = 0, ignored_local_ips: int = 0) -> dict[str, object]:
    detailed = rib.desired_count() <= DETAIL_LIMIT and len(table) <= DETAIL_LIMIT
    macs = sorted(table.sequences.items())
    tables: dict[str, object] = {
        "remote_vteps": {str(k): v for k, v in rib.remote_vteps().items()},
        "remote_macs": {str(k): v for k, v in rib.remote_macs().items()} if detailed else "omitted (too many)",
        "remote_neighbours": rib.remote_neighbours() if detailed else "omitted (too many)",
        "local_macs": {f"{m.vni}/{m.mac}": seq for m, seq in macs} if detailed else len(macs),
        "local_ips": {f"{m.vni}/{m.mac}": [str(ip) for ip in table.ips_of(m)] for m, _ in macs if table.ips.get(m)}
        if detailed else "omitted",
        "frozen_macs": sorted(f"{m.vni}/{m.mac}" for m in table.frozen),
        "frozen_ips": sorted(f"{vni}/{ip}" for vni, ip in table.frozen_ips),
    }
    return tables | {
        "name": cfg.name,
        "pid": os.getpid(),
        "vtep": str(cfg.vtep),
        "ready": health.ready,
        "connected": health.connected,
        "stale_pending": health.stale_pending,
        "reconnects": health.reconnects,
        "routes": len(rib),
        "owned_fdb_entries": len(reconciler.owned),
        "entries_added": reconciler.added,
        "entries_removed": reconciler.removed,
        "kernel_errors": reconciler.errors,
        "malformed_routes": health.malformed_routes,
        "refused_requests": refused,
        "ignored_local_ips": ignored_local_ips,
        "macs_over_limit": table.limited,
        "ignored_routes": dict(rib.ignored),
        "updated": time.time(),
    }


class StatusWriter:
    """Writes the status file atomically, at most once per `interval` unless forced."""

    def __init__(self, path: Path | None, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.interval = interval
        self.clock = clock
        self._written = float("-inf")
        self.pending = False

    def write(self, build: Callable[[], dict[str, object]], force: bool = False) -> bool:
        """Write now if due (or forced); otherwise remember that a write is pending. True if written."""
        if self.path is None:
            return False
        now = self.clock()
        if not force and now - self._written < self.interval:
            self.pending = True
            return False
        self._written, self.pending = now, False
        write_json_atomic(self.path, build(), mode=0o644, indent=1)
        return True

    def flush(self, build: Callable[[], dict[str, object]]) -> None:
        if self.pending:
            self.write(build, force=True)
