"""A background thread whose death is reported, never silent."""

from __future__ import annotations

import logging
import threading

from .events import EventQueue, WorkerFailed

log = logging.getLogger("evpn.agent.worker")


class Worker:
    """Runs `loop()` in a daemon thread named `name`; an exception ends it with a `WorkerFailed` event."""

    name = "worker"

    def __init__(self, out: EventQueue) -> None:
        self.out = out
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def loop(self) -> None:  # pragma: no cover - subclasses implement it
        raise NotImplementedError

    def _run(self) -> None:
        try:
            self.loop()
        except Exception as exc:  # noqa: BLE001 - a worker's end must always be reported
            if self.stopping.is_set():
                return
            log.error("event=worker-died worker=%s error=%r", self.name, str(exc) or repr(exc))
            self.out.put(WorkerFailed(self.name, str(exc) or repr(exc)))
