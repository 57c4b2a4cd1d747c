"""The agent's loop: advertise our VTEP, watch gobgpd's RIB, reconcile the kernel in batches.

If gobgpd goes away the kernel is left exactly as it is; the agent reconnects
with backoff, advertises again, loads the full table, and only then removes
entries that went stale while it was away.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .codec import decode_paths, encode_imet
from .config import AgentConfig
from .desired import RibView
from .errors import GobgpUnavailable
from .gobgp import GobgpClient
from .kernel import Kernel
from .ledger import Ledger
from .reconcile import Reconciler

log = logging.getLogger("evpn.agent")

_END = object()


@dataclass
class Backoff:
    initial: float = 0.2
    maximum: float = 5.0
    current: float = field(init=False, default=0.0)

    def next(self) -> float:
        self.current = self.initial if self.current == 0 else min(self.maximum, self.current * 2)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


class Agent:
    def __init__(self, cfg: AgentConfig, kernel: Kernel, client_factory: Callable[[str], GobgpClient] = GobgpClient) -> None:
        self.cfg = cfg
        self.kernel = kernel
        self.client_factory = client_factory
        self.rib = RibView(cfg)
        self.reconciler = Reconciler(kernel, Ledger(cfg.state_file), [v.device for v in cfg.vnis])
        self.stop_event = threading.Event()
        self.connected = False
        self.ready = False
        self.reconnects = 0
        self.malformed = 0
        self.last_full_sync = 0.0

    # -- advertisement -----------------------------------------------------

    def advertise(self, client: GobgpClient) -> None:
        for vni in self.cfg.vnis:
            client.add_path(encode_imet(vni.rd, self.cfg.vtep, vni.vni, vni.export_rts))
            log.info("event=advertised type=3 vni=%d rd=%s vtep=%s rts=%s", vni.vni, vni.rd, self.cfg.vtep, ",".join(map(str, vni.export_rts)))

    # -- main loop -----------------------------------------------------------

    def run(self) -> None:
        backoff = Backoff()
        while not self.stop_event.is_set():
            client = self.client_factory(self.cfg.gobgp_address)
            try:
                client.wait_ready(timeout=2.0)
                self._session(client, backoff)
            except GobgpUnavailable as exc:
                if self.stop_event.is_set():
                    break
                delay = backoff.next()
                if self.connected:
                    self.reconnects += 1
                self.connected = False
                self._write_status()
                log.warning("event=gobgp-unavailable error=%r retry_in=%.1fs (data plane left as is)", str(exc), delay)
                self.stop_event.wait(delay)
            finally:
                client.close()

    def _session(self, client: GobgpClient, backoff: Backoff) -> None:
        self.advertise(client)
        updates: queue.Queue[object] = queue.Queue()
        reader = threading.Thread(target=self._read_stream, args=(client, updates), name="gobgp-watch", daemon=True)
        reader.start()
        try:
            first = updates.get(timeout=10.0)
        except queue.Empty as exc:
            raise GobgpUnavailable("no initial table from gobgpd within 10s") from exc
        if first is _END or isinstance(first, Exception):
            raise first if isinstance(first, GobgpUnavailable) else GobgpUnavailable("watch ended before the initial table")
        self.connected = True
        backoff.reset()
        events, errors = decode_paths(first)  # type: ignore[arg-type]
        self._count_malformed(errors)
        self.rib.replace(events)
        plan = self.reconciler.full_sync(self.rib.desired())
        self.last_full_sync = time.monotonic()
        log.info("event=synced routes=%d desired=%d added=%d removed=%d", len(events), len(self.rib.desired()), len(plan.add), len(plan.remove))
        self.ready = True
        self._write_status()
        while not self.stop_event.is_set():
            try:
                item = updates.get(timeout=1.0)
            except queue.Empty:
                self._maybe_resync()
                continue
            batch = [item]
            deadline = time.monotonic() + self.cfg.batch_window
            while (left := deadline - time.monotonic()) > 0:
                try:
                    batch.append(updates.get(timeout=left))
                except queue.Empty:
                    break
            self._process(batch)
            self._maybe_resync()

    def _process(self, batch: list[object]) -> None:
        paths = []
        failure: Exception | None = None
        for item in batch:
            if item is _END or isinstance(item, Exception):
                failure = item if isinstance(item, Exception) else GobgpUnavailable("watch stream ended")
                break
            paths.extend(item)  # type: ignore[arg-type]
        events, errors = decode_paths(paths)
        self._count_malformed(errors)
        touched = self.rib.apply(events)
        if touched:
            self.reconciler.sync_touched(touched, self.rib.wants)
        self._write_status()
        if failure is not None:
            raise failure

    def _maybe_resync(self) -> None:
        if time.monotonic() - self.last_full_sync >= self.cfg.resync_interval:
            plan = self.reconciler.full_sync(self.rib.desired())
            self.last_full_sync = time.monotonic()
            if plan:
                log.warning("event=resync-repaired added=%d removed=%d", len(plan.add), len(plan.remove))

    def _count_malformed(self, errors: list[str]) -> None:
        for error in errors:
            self.malformed += 1
            log.warning("event=route-malformed error=%r", error)

    def _read_stream(self, client: GobgpClient, updates: "queue.Queue[object]") -> None:
        try:
            for paths in client.watch_best():
                updates.put(paths)
                if self.stop_event.is_set():
                    return
        except GobgpUnavailable as exc:
            updates.put(exc)
        except Exception as exc:  # noqa: BLE001 - the reader must always report its end
            updates.put(GobgpUnavailable(f"watch failed: {exc!r}"))
        updates.put(_END)

    # -- status ----------------------------------------------------------------

    def status(self) -> dict[str, object]:
        return {
            "name": self.cfg.name,
            "pid": os.getpid(),
            "vtep": str(self.cfg.vtep),
            "ready": self.ready,
            "connected": self.connected,
            "reconnects": self.reconnects,
            "routes": len(self.rib),
            "remote_vteps": {str(k): v for k, v in self.rib.remote_vteps().items()},
            "owned_flood_entries": len(self.reconciler.owned),
            "entries_added": self.reconciler.added,
            "entries_removed": self.reconciler.removed,
            "kernel_errors": self.reconciler.errors,
            "malformed_routes": self.malformed,
            "ignored_routes": dict(self.rib.ignored),
            "updated": time.time(),
        }

    def _write_status(self) -> None:
        path: Path | None = self.cfg.status_file
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.status(), indent=1, sort_keys=True))
        os.replace(tmp, path)
