"""Progress of a long command (up, verify) on stderr, so stdout stays clean for --json: on a terminal a
live bar with the current step, steps done and elapsed time; otherwise one timestamped line per step."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)


class Steps:
    """Use as the `progress` callback of Lab.up / run_checks: each call starts the next step."""

    def __init__(self, console: Console, title: str, total: int | None = None, quiet: bool = False) -> None:
        self.console = console
        self.title = title
        self.total = total
        self.quiet = quiet  # no per-step lines off a terminal (--json: the caller wants only the document)
        self.start = time.monotonic()
        self.live: Progress | None = None
        self.task = None
        self.done = 0

    def __enter__(self) -> Self:
        if self.console.is_terminal:
            self.live = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[step]}"), console=self.console, transient=True)
            self.live.start()
            self.task = self.live.add_task(self.title, total=self.total, step="")
        return self

    def __call__(self, message: str) -> None:
        elapsed = time.monotonic() - self.start
        if self.live is not None and self.task is not None:
            if self.done:
                self.live.advance(self.task)
            if self.total is not None and self.done >= self.total:  # more steps than announced: grow the bar
                self.total += 1
                self.live.update(self.task, total=self.total)
            self.live.update(self.task, step=message)
            self.live.console.print(f"  [dim]{elapsed:6.1f}s[/dim] {message}", highlight=False)
        elif not self.quiet:
            self.console.print(f"  {elapsed:6.1f}s {message}", highlight=False, soft_wrap=True)
        self.done += 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.live is not None:
            self.live.stop()
