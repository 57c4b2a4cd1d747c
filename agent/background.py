"""A call run in its own thread while the caller does other work (a read beside a wait)."""

from __future__ import annotations

import threading
import time
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """Runs `call` in a daemon thread at once; `result()` waits for it and returns its value, or raises
    what it raised (in the caller's thread: a crash of the background call is the caller's, never a
    silent empty answer)."""

    def __init__(self, call: Callable[[], T], name: str) -> None:
        self._call = call
        self._value: T | None = None
        self._error: BaseException | None = None
        self.started = time.monotonic()
        self.finished: float | None = None  # (monotonic) when the call returned or raised
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._call()
        except BaseException as exc:  # noqa: BLE001 - handed to result()
            self._error = exc
        finally:
            self.finished = time.monotonic()

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
