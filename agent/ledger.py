"""Which kernel entries this agent made, kept on disk across restarts, at a cost that follows the
changes, not the table.

The kernel does not record who added a vxlan FDB entry, so the agent keeps its own list; it only
ever removes entries on that list, and entries someone else made are left alone.

On disk: a snapshot (`state_file`, JSON: {"fdb": [[dev, mac, vtep]...], "neigh": [[bridge, ip, mac]...]})
and a journal beside it (`state_file` + ".journal", one JSON line per change: ["+"|"-", "fdb"|"neigh",
a, b, c]). A batch appends its changes to the journal; when the journal outgrows the table, the
snapshot is rewritten (atomically) and the journal emptied. Loading replays the journal over the
snapshot; a torn last line (a crash mid-write) is ignored. Replaying a journal over a snapshot that
already holds its changes gives the same set, so a crash between the two steps of a compaction
loses nothing.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from .atomicfile import write_json_atomic
from .entries import FdbEntry, KernelEntry, NeighEntry, entry_sort_key
from .routes import IPAddress, parse_ip

log = logging.getLogger("evpn.agent.ledger")

COMPACT_MIN_LINES = 10_000  # never compact a journal shorter than this


def _row(entry: KernelEntry) -> list[str]:
    if isinstance(entry, FdbEntry):
        return ["fdb", entry.device, entry.mac, str(entry.vtep)]
    return ["neigh", entry.device, str(entry.ip), entry.mac]


_quote = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]  # str -> JSON string literal (C)


def _line(op: str, entry: KernelEntry, texts: dict[int, str] | None = None) -> str:
    """One journal line, the JSON array json.dumps makes for ["+"|"-", kind, a, b, c], built without
    json.dumps's per-call machinery (a journal line per entry changed: 100k per big batch). `texts`:
    address text by id() of the address object, for objects alive meanwhile (a VTEP is shared by
    thousands of entries; ipaddress's str() costs about a microsecond)."""
    if isinstance(entry, FdbEntry):
        vtep = entry.vtep
        if texts is None:
            text = str(vtep)
        else:
            text = texts.get(id(vtep))  # type: ignore[assignment]
            if text is None:
                text = texts[id(vtep)] = str(vtep)
        return f'["{op}", "fdb", {_quote(entry.device)}, {_quote(entry.mac)}, "{text}"]'
    return f'["{op}", "neigh", {_quote(entry.device)}, "{entry.ip}", {_quote(entry.mac)}]'


def _entry(kind: str, a: str, b: str, c: str) -> KernelEntry:
    if kind == "fdb":
        return FdbEntry(a, b, parse_ip(c))
    if kind == "neigh":
        return NeighEntry(a, parse_ip(b), c)
    raise ValueError(f"unknown entry kind {kind!r}")


class Ledger:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.journal_path = path.with_name(path.name + ".journal") if path is not None else None
        self._journal: IO[str] | None = None
        self._lines = 0

    def load(self) -> set[KernelEntry]:
        if self.path is None:
            return set()
        owned: set[KernelEntry] = set()
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                if not isinstance(data, dict):
                    raise ValueError(f"expected a JSON object, got {type(data).__name__}")
                vteps: dict[str, IPAddress] = {}  # one object per VTEP, shared by its entries
                owned = {FdbEntry(dev, mac, vteps.get(dst) or vteps.setdefault(dst, parse_ip(dst)))
                         for dev, mac, dst in data.get("fdb", [])}
                owned |= {NeighEntry(dev, parse_ip(ip), mac) for dev, ip, mac in data.get("neigh", [])}
            except (OSError, ValueError, TypeError) as exc:
                log.warning("event=ledger-unreadable path=%s error=%r (owning nothing)", self.path, str(exc))
                return set()
        self._lines = self._replay(owned)
        return owned

    def _replay(self, owned: set[KernelEntry]) -> int:
        assert self.journal_path is not None
        try:
            text = self.journal_path.read_text()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            log.warning("event=journal-unreadable path=%s error=%r", self.journal_path, str(exc))
            return 0
        lines = text.splitlines()
        try:  # every line whole (the usual case): one parse of them all, at C speed
            rows = json.loads("[" + ",".join(lines) + "]")
        except ValueError:
            rows = None
        if rows is not None and len(rows) == len(lines):
            try:
                self._apply_rows(rows, owned)
                return len(lines)
            except (ValueError, TypeError):
                pass  # a line of the wrong shape: line by line below says which (applying again is harmless)
        for number, line in enumerate(lines, 1):
            try:
                op, kind, a, b, c = json.loads(line)
                entry = _entry(kind, a, b, c)
            except (ValueError, TypeError) as exc:
                if number == len(lines):
                    log.warning("event=journal-torn-line path=%s line=%d (ignored: a write cut short)", self.journal_path, number)
                    break
                log.warning("event=journal-bad-line path=%s line=%d error=%r (skipped)", self.journal_path, number, str(exc))
                continue
            if op == "+":
                owned.add(entry)
            elif op == "-":
                owned.discard(entry)
        return len(lines)

    @staticmethod
    def _apply_rows(rows: list[object], owned: set[KernelEntry]) -> None:
        """Replay parsed journal lines in order; ValueError/TypeError at the first malformed one (the
        entries before it are applied: replaying them again gives the same set)."""
        vteps: dict[str, IPAddress] = {}  # one object per VTEP, shared by its entries
        add, discard = owned.add, owned.discard
        for row in rows:
            op, kind, a, b, c = row  # type: ignore[misc]
            if kind == "fdb":
                vtep = vteps.get(c)
                if vtep is None:
                    vtep = vteps[c] = parse_ip(c)
                entry: KernelEntry = FdbEntry(a, b, vtep)
            else:
                entry = _entry(kind, a, b, c)
            if op == "+":
                add(entry)
            elif op == "-":
                discard(entry)

    def record(self, added: Iterable[KernelEntry], removed: Iterable[KernelEntry], owned: set[KernelEntry]) -> None:
        """Append one batch of changes; compact when the journal has outgrown the table."""
        if self.path is None or self.journal_path is None:
            return
        texts: dict[int, str] = {}  # the entries (and their addresses) stay alive during this call
        lines = [_line("-", e, texts) for e in removed]  # in no particular order: replaying only needs
        lines += [_line("+", e, texts) for e in added]  # the removals before the additions
        if not lines:
            return
        if self._journal is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._journal = os.fdopen(fd, "a")
        self._journal.write("\n".join(lines) + "\n")
        self._journal.flush()
        self._lines += len(lines)
        if self._lines > max(COMPACT_MIN_LINES, 2 * len(owned)):
            self.compact(owned)

    def compact(self, owned: set[KernelEntry]) -> None:
        """Rewrite the snapshot with `owned` and empty the journal."""
        if self.path is None or self.journal_path is None:
            return
        ordered = sorted(owned, key=entry_sort_key)
        write_json_atomic(self.path, {
            "fdb": [_row(e)[1:] for e in ordered if isinstance(e, FdbEntry)],
            "neigh": [_row(e)[1:] for e in ordered if isinstance(e, NeighEntry)],
        })
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        self._lines = 0
        log.info("event=ledger-compacted entries=%d", len(owned))

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
