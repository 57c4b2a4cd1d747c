"""Reading a lab's timeline from its run directory: labctl's action log and every node's daemon logs,
read from where the last read stopped (so `labctl events -f` follows them by polling). Parsing and
merging are `events.py`'s (pure) job."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .events import Event, merge, parse_action_line, parse_log_line


@dataclass
class _Followed:
    path: Path
    node: str | None  # None: labctl's action log
    offset: int = 0
    partial: bytes = b""  # a line still being written


class Timeline:
    """Every event file of one lab's run directory; `read_new` returns what was appended since the last call."""

    def __init__(self, run_dir: Path, action_log: Path) -> None:
        self.run_dir = run_dir
        self.action_log = action_log
        self._files: dict[Path, _Followed] = {}

    def _discover(self) -> None:
        found = [(self.action_log, None)]
        if self.run_dir.is_dir():
            for node_dir in sorted(p for p in self.run_dir.iterdir() if p.is_dir() and not p.is_symlink()):
                found += [(f, node_dir.name) for f in sorted(node_dir.glob("*.log")) if f.is_file() and not f.is_symlink()]
        for path, node in found:
            if path not in self._files and path.exists():
                self._files[path] = _Followed(path, node)

    def read_new(self) -> list[Event]:
        self._discover()
        streams = []
        for followed in self._files.values():
            try:
                with followed.path.open("rb") as f:
                    size = f.seek(0, 2)
                    if size < followed.offset:  # truncated or replaced: read it again from the start
                        followed.offset, followed.partial = 0, b""
                    f.seek(followed.offset)
                    data = followed.partial + f.read()
                    followed.offset = f.tell()
            except OSError:
                continue  # gone with its node (a host removed): its events were read before
            *lines, followed.partial = data.split(b"\n")
            text = [line.decode(errors="replace") for line in lines]
            if followed.node is None:
                events = [parse_action_line(line) for line in text]
            else:
                events = [parse_log_line(line, followed.node) for line in text]
            streams.append([e for e in events if e is not None])
        return merge(*streams)

    def follow(self, interval: float = 0.5, stop: Callable[[], bool] = lambda: False) -> Iterator[list[Event]]:
        """Batches of new events, polling every `interval` seconds, until `stop()`."""
        while not stop():
            time.sleep(interval)
            batch = self.read_new()
            if batch:
                yield batch
