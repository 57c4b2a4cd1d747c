"""Unit tests for agent/events.py and agent/worker.py: the typed queue, batching, and worker deaths."""

from __future__ import annotations

import time

from agent.events import EventQueue, IpsSeen, LocalMacsChanged, WorkerFailed
from agent.worker import Worker


def test_get_times_out_with_none() -> None:
    assert EventQueue().get(0.01) is None


def test_batch_gathers_what_arrives_within_the_window() -> None:
    q = EventQueue()
    first, second = LocalMacsChanged(()), IpsSeen(())
    q.put(second)
    assert q.batch(first, 0.05) == [first, second]
    assert q.empty()


class Crashing(Worker):
    name = "crashing"

    def loop(self) -> None:
        raise OSError(105, "No buffer space available")


class Quiet(Worker):
    name = "quiet"

    def loop(self) -> None:
        while not self.stopping.is_set():
            time.sleep(0.01)


def test_a_dying_worker_reports_itself() -> None:
    q = EventQueue()
    worker = Crashing(q)
    worker.start()
    event = q.get(2.0)
    assert isinstance(event, WorkerFailed) and event.worker == "crashing" and "No buffer space" in event.error


def test_a_stopped_worker_reports_nothing() -> None:
    q = EventQueue()
    worker = Quiet(q)
    worker.start()
    worker.stop()
    deadline = time.monotonic() + 2
    while worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not worker.is_alive() and q.empty()
