"""SIGINT/SIGTERM during a lab operation: noted by the CLI's signal handler, acted on at safe points."""

from __future__ import annotations

from .errors import LabError


class Interrupted(LabError):
    """SIGINT/SIGTERM arrived during a lab operation (raised at a safe point, then rolled back)."""


class InterruptFlag:
    """Set from a signal handler; checked between steps so an interrupt never tears a step in half."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def check(self) -> None:
        if self.signal is not None:
            raise Interrupted(f"interrupted by signal {self.signal}")


INTERRUPT = InterruptFlag()  # the one flag a signal handler can reach (signal handlers take no arguments)
