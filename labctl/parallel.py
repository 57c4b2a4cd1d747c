"""Run the same step for many items on a bounded pool of threads (building hosts, starting daemons,
running checks), stopping early on the first failure or on an interrupt.

The work is I/O and waiting (netlink, starting processes, gRPC, pings): threads overlap it even under
the GIL. The caller's thread only waits, polling `INTERRUPT` so that Ctrl-C / SIGTERM (handled in the
main thread) still ends a long step: the items not yet started are cancelled, the running ones finish,
then the first error is raised and the caller rolls back as it would after a sequential failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from .interrupts import INTERRUPT

log = logging.getLogger("evpn.labctl.parallel")

T = TypeVar("T")
R = TypeVar("R")

POLL = 0.2  # seconds between interrupt checks while waiting


def run_all(items: Sequence[T], work: Callable[[T], R], workers: int, name: str = "labctl",
            done: Callable[[T, R], None] | None = None) -> list[R]:
    """`work(item)` for every item, at most `workers` at a time; the results in the items' order.

    `done(item, result)` is called in the caller's thread as each item finishes (progress lines).
    The first exception (in order of completion) is raised once the running items have ended;
    items not started by then never start. With `workers` <= 1 the items run one after another here.
    """
    if workers <= 1 or len(items) <= 1:
        results = []
        for item in items:
            INTERRUPT.check()
            result = work(item)
            if done is not None:
                done(item, result)
            results.append(result)
        return results
    pool = ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix=name)
    futures: dict[Future[R], int] = {}
    try:
        futures = {pool.submit(work, item): i for i, item in enumerate(items)}
        pending: set[Future[R]] = set(futures)
        while pending:
            INTERRUPT.check()
            finished, pending = wait(pending, timeout=POLL, return_when=FIRST_COMPLETED)
            for future in finished:
                error = future.exception()
                if error is not None:
                    raise error
                if done is not None:
                    done(items[futures[future]], future.result())
    except BaseException:
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [future.result() for future in sorted(futures, key=futures.__getitem__)]


def chunks(items: Iterable[T], size: int) -> list[list[T]]:
    """`items` cut into lists of at most `size`."""
    out: list[list[T]] = []
    for item in items:
        if not out or len(out[-1]) >= size:
            out.append([])
        out[-1].append(item)
    return out
