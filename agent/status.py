"""The agent's status file: a JSON snapshot for operators and labctl, rewritten at most every
`interval` seconds (it costs O(table) to build, so it is throttled, never written per batch)."""

from __future__ import annotations

import logging
import os
import time
from collections import deque
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
    kernel_verified: bool = False  # the kernel was read and compared this session (a restart trusts its ledger first)
    stale_pending: bool = False
    reconnects: int = 0
    malformed_routes: int = 0
    resync_repaired: int = 0  # entries the periodic resync found wrong (drift) and repaired
    last_full_sync: float = 0.0  # unix time
    held_withdrawals: int = 0  # stale withdrawals waiting out stale_withdraw_grace now (agent/withdrawhold.py)
    withdrawals_held: int = 0  # ... held in all, cancelled (their route came back), released to the RIB
    withdrawals_cancelled: int = 0
    withdrawals_released: int = 0


def build_status(cfg: AgentConfig, health: Health, rib: RibView, table: LocalMacTable, reconciler: Reconciler,
                 refused: int = 0, ignored_local_ips: int = 0, last_errors: list[dict[str, object]] | None = None) -> dict[str, object]:
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
        "kernel_verified": health.kernel_verified,
        "connected": health.connected,
        "stale_pending": health.stale_pending,
        "held_withdrawals": health.held_withdrawals,
        "withdrawals_held": health.withdrawals_held,
        "withdrawals_cancelled": health.withdrawals_cancelled,
        "withdrawals_released": health.withdrawals_released,
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
        "resync_repaired": health.resync_repaired,
        "last_full_sync": health.last_full_sync,
        "last_errors": last_errors or [],
        "vnis": {str(v.vni): {"device": v.device, "bridge": v.bridge, "rd": str(v.rd)} for v in cfg.vnis},
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
        # compact: json's C encoder (with `indent` it takes its pure-Python one, 5-10x the CPU; a converging
        # agent of a big lab rewrites the file every STATE_WRITE_INTERVAL)
        write_json_atomic(self.path, build(), mode=0o644)
        return True

    def flush(self, build: Callable[[], dict[str, object]], heartbeat: float | None = None) -> None:
        """Write a pending update now; with `heartbeat`, also when the file is older than that many
        seconds (its `updated` field then proves the agent's loop is alive)."""
        if self.pending or (heartbeat is not None and self.clock() - self._written >= heartbeat):
            self.write(build, force=True)


class RecentErrors(logging.Handler):
    """Keeps the last few warnings and errors, for the status file (what went wrong lately)."""

    def __init__(self, keep: int = 10) -> None:
        super().__init__(logging.WARNING)
        self.records: deque[dict[str, object]] = deque(maxlen=keep)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append({"time": record.created, "level": record.levelname, "message": record.getMessage()})
        except Exception:  # noqa: BLE001 - a broken log call must never break the agent
            self.handleError(record)

    def recent(self) -> list[dict[str, object]]:
        return list(self.records)
