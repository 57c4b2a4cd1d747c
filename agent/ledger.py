"""Which kernel entries this agent made, kept on disk across restarts, at a cost that follows the
changes, not the table.

The kernel does not record who added a vxlan FDB entry, so the agent keeps its own list; it only
ever removes entries on that list, and entries someone else made are left alone.

On disk: a snapshot (`state_file`) and a journal beside it (`state_file` + ".journal": a first line
{"generation": G} naming the snapshot it continues, then one JSON line per change: ["+"|"-",
"fdb"|"neigh", a, b, c]). A batch appends its changes to the journal; when the journal outgrows the
table, or one batch changes about as much as the table holds (a cold start, whose ownership changes
are not noted one by one), the snapshot is rewritten (atomically, generation G + 1) and the journal
started afresh for it. Loading replays the journal over the snapshot; a torn last line (a crash
mid-write) is ignored. A journal of another generation is not replayed: a crash between the two
steps of a compaction leaves the new snapshot (which holds everything) beside the old journal, whose
changes it must not undo. A journal without the first line (an earlier agent's) is replayed over a
JSON snapshot or none, never over a packed one.

The snapshot is the packed owned set itself (agent/ownedset.py), so that reading 200k entries costs
milliseconds instead of most of a second beside the table read of a restart: one JSON line (format,
generation, byte order, per (kind, device) the number of entries, the entries that do not pack as JSON rows,
the CRC-32 of what follows), then per (kind, device) its sorted keys, the high 64 bits (8 bytes
each) then the low 16 (2 bytes each). A snapshot in the JSON layouts of earlier agents
({"fdb": [[dev, mac, vtep]...], "neigh": [[bridge, ip, mac]...]}, whole or one entry a line) is
still read.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import zlib
from array import array
from socket import AF_INET, inet_pton
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import IO, AbstractSet

from .entries import FdbEntry, KernelEntry, NeighEntry
from .ownedset import FDB, OwnedSet, ipv4, mac_int
from .routes import IPAddress, parse_ip

log = logging.getLogger("evpn.agent.ledger")

COMPACT_MIN_LINES = 10_000  # never compact a journal shorter than this
JOURNAL_SHARE = 8  # compact when the journal has more lines than 1/JOURNAL_SHARE of the entries owned: a packed
# snapshot costs ~10 ns an entry to write, a journal line ~3 us, and a start-up replays the journal at ~3 us a line
CHUNK_LINES = 4096  # lines parsed in one json.loads (C speed, a bounded peak)
SNAPSHOT_HEAD = '{"fdb": ['  # the first line of a JSON snapshot written one entry a line (earlier agents)
PACKED_FORMAT = "evpn-agent-owned-packed"  # the "format" of a packed snapshot's first line
PACKED_VERSION = 1
KINDS = {FDB: "fdb", 1: "neigh"}


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
        self.generation = 0  # the snapshot's (0: none, or an earlier agent's JSON one); its journal says the same
        self._journal_void = False  # the journal on disk is not this snapshot's: rewritten before the next append
        self._load_failed = False  # the snapshot could not be read: never replaced at a clean stop (it may be fine)

    def load(self) -> OwnedSet:
        owned = OwnedSet()
        if self.path is None:
            return owned
        try:
            with open(self.path, "rb") as snapshot:
                first = snapshot.readline()
                header = _packed_header(first)
                if header is not None:
                    _load_packed(header, snapshot, owned)
                    self.generation = header["generation"]  # type: ignore[assignment]
                else:  # a JSON snapshot (an earlier agent's)
                    text = io.TextIOWrapper(snapshot, encoding="utf-8")
                    self._load_snapshot(first.decode("utf-8"), text, owned)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError) as exc:
            log.warning("event=ledger-unreadable path=%s error=%r (owning nothing)", self.path, str(exc))
            self.generation, self._journal_void = 0, True  # (nor is its journal replayed over nothing)
            self._load_failed = True
            return OwnedSet()
        owned.settle()
        self._lines = self._replay(owned)
        owned.settle()
        return owned

    @staticmethod
    def _load_snapshot(first: str, snapshot: IO[str], owned: OwnedSet) -> None:
        """Fill `owned` from a JSON snapshot whose first line was `first`; ValueError/TypeError if it is
        not a whole, well-formed one."""
        if first.rstrip("\n") != SNAPSHOT_HEAD:  # another layout (an older agent's): parsed whole
            data = json.loads(first + snapshot.read())
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
            for kind in ("fdb", "neigh"):
                rows = data.get(kind, [])
                if not isinstance(rows, list):
                    raise ValueError(f"{kind}: expected a list, got {type(rows).__name__}")
                _add_rows(kind, rows, owned)
            return
        kind, ended = "fdb", False
        while True:
            lines = list(islice(snapshot, CHUNK_LINES))
            rows = []
            for line in lines:
                line = line.rstrip("\n")
                if line.startswith("["):
                    if kind not in ("fdb", "neigh") or ended:
                        raise ValueError(f"an entry outside the lists: {line[:40]!r}")
                    rows.append(line[:-1] if line.endswith(",") else line)
                    continue
                _add_rows(kind, json.loads("[" + ",".join(rows) + "]"), owned)
                rows = []
                if kind == "fdb" and line == "],":
                    kind = "neigh-head"
                elif kind == "neigh-head" and line == '"neigh": [':
                    kind = "neigh"
                elif kind == "neigh" and line == "]}" and not ended:
                    ended = True
                else:
                    raise ValueError(f"unexpected line {line[:40]!r} in the snapshot")
            if rows:
                _add_rows(kind, json.loads("[" + ",".join(rows) + "]"), owned)
            if not lines:
                break
        if not ended:
            raise ValueError("the snapshot ends early (cut short)")

    def _replay(self, owned: OwnedSet) -> int:
        assert self.journal_path is not None
        try:
            journal = open(self.journal_path, encoding="utf-8")
        except FileNotFoundError:
            return 0
        except OSError as exc:
            log.warning("event=journal-unreadable path=%s error=%r", self.journal_path, str(exc))
            return 0
        count = 0
        with journal:
            first = journal.readline()
            generation = _journal_generation(first)
            if generation != self.generation and (generation is not None or self.generation):
                # the journal of another snapshot: one replaced before its journal was emptied (a crash
                # between the two steps of a compaction); the snapshot holds all of it already
                if first:
                    log.warning("event=journal-skipped path=%s journal_generation=%s snapshot_generation=%d "
                                "(a compaction was cut short; the snapshot is newer)", self.journal_path, generation, self.generation)
                self._journal_void = True
                return 0
            if generation is None and first:  # an earlier agent's journal (no header): its first line is a change
                self._replay_chunk([first], 0, False, owned)
                count = 1
            for lines, last in _chunks(journal):
                self._replay_chunk(lines, count, last, owned)
                count += len(lines)
        return count

    def _replay_chunk(self, lines: list[str], before: int, last: bool, owned: OwnedSet) -> None:
        """Replay some journal lines (numbered from before + 1); `last`: they end the journal."""
        lines = [line.rstrip("\n") for line in lines]
        try:  # every line whole (the usual case): one parse of them all, at C speed
            rows = json.loads("[" + ",".join(lines) + "]")
        except ValueError:
            rows = None
        if rows is not None and len(rows) == len(lines):
            try:
                _apply_rows(rows, owned)
                return
            except (ValueError, TypeError):
                pass  # a line of the wrong shape: line by line below says which (applying again is harmless)
        for number, line in enumerate(lines, before + 1):
            try:
                op, kind, a, b, c = json.loads(line)
                entry = _entry(kind, a, b, c)
            except (ValueError, TypeError) as exc:
                if last and number == before + len(lines):
                    log.warning("event=journal-torn-line path=%s line=%d (ignored: a write cut short)", self.journal_path, number)
                    break
                log.warning("event=journal-bad-line path=%s line=%d error=%r (skipped)", self.journal_path, number, str(exc))
                continue
            if op == "+":
                owned.add(entry)
            elif op == "-":
                owned.discard(entry)

    def record(self, added: Iterable[KernelEntry], removed: Iterable[KernelEntry], owned: AbstractSet[KernelEntry]) -> None:
        """Append one batch of changes; compact when the journal has outgrown its share of the table."""
        if self.path is None or self.journal_path is None:
            return
        removed, added = list(removed), list(added)
        changes = len(removed) + len(added)
        if changes >= COMPACT_MIN_LINES and 2 * changes >= len(owned):  # a snapshot costs less than the lines
            self.compact(owned)
            return
        texts: dict[int, str] = {}  # the entries (and their addresses) stay alive during this call
        lines = [_line("-", e, texts) for e in removed]  # in no particular order: replaying only needs
        lines += [_line("+", e, texts) for e in added]  # the removals before the additions
        if not lines:
            return
        if self._journal is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if self._journal_void else os.O_APPEND)
            fd = os.open(self.journal_path, flags, 0o600)
            self._journal = os.fdopen(fd, "a")
            if self._journal_void or os.fstat(fd).st_size == 0:
                self._journal.write(_journal_header(self.generation))
            self._journal_void = False
        self._journal.write("\n".join(lines) + "\n")
        self._journal.flush()
        self._lines += len(lines)
        if self._lines > max(COMPACT_MIN_LINES, len(owned) // JOURNAL_SHARE):
            self.compact(owned)

    def compact(self, owned: AbstractSet[KernelEntry]) -> None:
        """Rewrite the snapshot with `owned` (atomically, packed) and empty the journal."""
        if self.path is None or self.journal_path is None:
            return
        packed = owned if isinstance(owned, OwnedSet) else OwnedSet(owned)
        generation = self.generation + 1  # its journal will say so: an older journal is never replayed over it
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as out:
                _write_packed(out, packed, generation)
                out.flush()
                os.fsync(out.fileno())  # on disk before it replaces the old snapshot (a power cut: old or new)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, self.path)
        _fsync_directory(self.path.parent)
        self.generation = generation
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as journal:
            journal.write(_journal_header(generation))
        self._journal_void = False
        self._lines = 0
        log.info("event=ledger-compacted entries=%d", len(packed))

    @property
    def journal_lines(self) -> int:
        """Lines in the journal (replayed over the snapshot at the next load)."""
        return self._lines

    def close(self, owned: AbstractSet[KernelEntry] | None = None) -> None:
        """Close the journal; with `owned` (a clean stop), first store it whole if the journal holds
        changes, so that the next start loads one snapshot and replays nothing. Not after a snapshot
        that could not be read: a read that failed for a passing reason (no file descriptor left, an
        I/O error) would leave a good snapshot that this process's few entries must not replace."""
        if owned is not None and self._lines and not self._load_failed:
            self.compact(owned)
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def _fsync_directory(path: Path) -> None:
    """Make a rename in `path` durable (best effort: some file systems refuse fsync on a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _chunks(journal: IO[str]) -> Iterator[tuple[list[str], bool]]:
    """The journal's lines CHUNK_LINES at a time, each with whether it is the last chunk."""
    chunk = list(islice(journal, CHUNK_LINES))
    while chunk:
        following = list(islice(journal, CHUNK_LINES))
        yield chunk, not following
        chunk = following


def _add_rows(kind: str, rows: list[object], owned: OwnedSet) -> None:
    """Snapshot rows ([dev, mac, vtep] or [bridge, ip, mac]) into `owned`: packed straight from the
    text where they pack (a canonical MAC, an IPv4 address), else as entries."""
    vteps: dict[str, int | None] = {}  # VTEP text -> its integer (None: IPv6), a few hundred at most
    add, add_packed = owned.add, owned.add_packed
    if kind == "fdb":
        for dev, mac, dst in rows:  # type: ignore[misc]
            vtep = vteps.get(dst, -1)
            if vtep == -1:
                address = parse_ip(dst)
                vtep = vteps[dst] = address._ip if address.version == 4 else None
            packed = mac_int(mac) if vtep is not None else None
            if packed is None:
                add(FdbEntry(dev, mac, parse_ip(dst)))
            else:
                add_packed(True, dev, packed << 32 | vtep)  # type: ignore[operator]
    else:
        for dev, ip, mac in rows:  # type: ignore[misc]
            packed = mac_int(mac)
            raw = _ipv4_int(ip) if packed is not None else None
            if raw is None:
                add(NeighEntry(dev, parse_ip(ip), mac))
            else:
                add_packed(False, dev, raw << 48 | packed)  # type: ignore[operator]


def _ipv4_int(text: str) -> int | None:
    """The integer of a dotted-quad IPv4 address as str(IPv4Address) writes it, else None."""
    try:
        raw = inet_pton(AF_INET, text)
    except (OSError, TypeError):
        return None
    value = int.from_bytes(raw, "big")
    return value if text == ipv4(value).__str__() else None  # (leading zeros and the like: parse_ip decides)


def _apply_rows(rows: list[object], owned: OwnedSet) -> None:
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


# -- the packed snapshot -------------------------------------------------------------------------------


def _journal_header(generation: int) -> str:
    """The journal's first line: which snapshot its changes apply to."""
    return json.dumps({"generation": generation}) + "\n"


def _journal_generation(first: str) -> int | None:
    """The generation a journal's first line names; None if it is no header (an earlier agent's journal)."""
    if not first.startswith('{"generation": '):
        return None
    try:
        value = json.loads(first).get("generation")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def _write_packed(out: IO[bytes], owned: OwnedSet, generation: int) -> None:
    """The header line, then each bucket's keys (see the module's docstring)."""
    buckets, payload, crc = [], [], 0
    for kind, device, hi, lo in owned.buckets():
        buckets.append([KINDS[kind], device, len(hi)])
        for part in (hi, lo):
            data = part.tobytes()
            crc = zlib.crc32(data, crc)
            payload.append(data)
    others = sorted(owned.unpacked(), key=lambda e: (e.__class__.__name__, _row(e)))
    header = {"format": PACKED_FORMAT, "version": PACKED_VERSION, "generation": generation, "byteorder": sys.byteorder, "buckets": buckets,
              "fdb": [_row(e)[1:] for e in others if isinstance(e, FdbEntry)],
              "neigh": [_row(e)[1:] for e in others if isinstance(e, NeighEntry)], "crc32": crc}
    out.write(json.dumps(header, ensure_ascii=True).encode("ascii") + b"\n")
    for data in payload:
        out.write(data)


def _packed_header(first: bytes) -> dict[str, object] | None:
    """The header of a packed snapshot whose first line is `first`, None if it is another layout."""
    if not first.startswith(b'{"format": '):
        return None
    try:
        header = json.loads(first)
    except ValueError:
        return None
    return header if isinstance(header, dict) and header.get("format") == PACKED_FORMAT else None


def _load_packed(header: dict[str, object], snapshot: IO[bytes], owned: OwnedSet) -> None:
    """Fill `owned` from a packed snapshot; ValueError/TypeError if it is not a whole, well-formed one."""
    if header.get("version") != PACKED_VERSION:
        raise ValueError(f"packed snapshot version {header.get('version')!r}, this agent reads {PACKED_VERSION}")
    generation = header.get("generation")
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 1:
        raise ValueError(f"generation {generation!r}")
    order = header.get("byteorder")
    if order not in ("little", "big"):
        raise ValueError(f"byteorder {order!r}")
    buckets = header.get("buckets")
    if not isinstance(buckets, list):
        raise TypeError("buckets: expected a list")
    crc, kinds = 0, {name: kind for kind, name in KINDS.items()}
    for item in buckets:
        if not (isinstance(item, list) and len(item) == 3 and item[0] in kinds and isinstance(item[1], str)
                and isinstance(item[2], int) and item[2] >= 0):
            raise ValueError(f"bucket {str(item)[:60]}: expected [kind, device, count]")
        kind, device, count = item
        hi, lo = array("Q"), array("H")
        for part in (hi, lo):
            data = snapshot.read(count * part.itemsize)
            if len(data) != count * part.itemsize:
                raise ValueError("the snapshot ends early (cut short)")
            crc = zlib.crc32(data, crc)
            part.frombytes(data)
            if order != sys.byteorder:
                part.byteswap()
        owned.take_bucket(kinds[kind], device, hi, lo)
    if snapshot.read(1):
        raise ValueError("data after the last bucket")
    if crc != header.get("crc32"):
        raise ValueError("CRC-32 mismatch (the snapshot is damaged)")
    for kind in ("fdb", "neigh"):
        rows = header.get(kind, [])
        if not isinstance(rows, list):
            raise TypeError(f"{kind}: expected a list")
        _add_rows(kind, rows, owned)
