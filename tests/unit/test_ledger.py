"""Unit tests for agent/ledger.py: the ownership snapshot, the journal of changes, compaction."""

from __future__ import annotations

import ipaddress
import json
import os
import stat
import sys
import zlib
from array import array
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.entries import FdbEntry, NeighEntry, entry_sort_key
from agent.ledger import COMPACT_MIN_LINES, Ledger, _row
from agent.reconcile import Plan, Reconciler
from tests.unit.builders import E, FakeKernel, N, U

A = E("vx100", "10.0.0.2")
B = E("vx100", "10.0.0.3")
C = E("vx100", "10.0.0.4")
MAC = "aa:bb:cc:dd:ee:01"
MAC2 = "aa:bb:cc:dd:ee:02"
M2 = U("vx100", MAC, "10.0.0.2")
N1 = N("br100", "192.168.1.5", MAC)
N1B = N("br100", "192.168.1.5", MAC2)
N2 = N("br100", "2001:db8::5", MAC)
N3 = N("br200", "192.168.1.5", MAC)
DEVICES = ("vx100", "vx200")
BRIDGES = ("br100", "br200")


# -- the ledger file ---------------------------------------------------------------------------


def test_ledger_file_round_trip(tmp_path) -> None:
    path = tmp_path / "state" / "owned.json"
    ledger = Ledger(path)
    assert ledger.load() == set()  # no file yet
    ledger.compact({A, M2, U("vx200", MAC, "2001:db8::1")})
    assert Ledger(path).load() == {A, M2, U("vx200", MAC, "2001:db8::1")}
    ledger.compact(set())
    assert Ledger(path).load() == set()
    assert sorted(p.name for p in path.parent.iterdir()) == ["owned.json", "owned.json.journal"]  # no temporary file left


def test_ledger_without_path_owns_nothing_and_writes_nothing(tmp_path) -> None:
    ledger = Ledger(None)
    ledger.record({A}, set(), {A})
    ledger.compact({A})
    assert ledger.load() == set()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["not json", "", '{"fdb": [["vx100", "10.0.0.2"]]}', '{"fdb": [["vx100", "x", "nope"]]}', '{"fdb": 5}'])
def test_ledger_unreadable_owns_nothing(tmp_path, text: str) -> None:
    path = tmp_path / "owned.json"
    path.write_text(text)
    assert Ledger(path).load() == set()


@pytest.mark.parametrize("text", ["[]", "null", "5", '"fdb"'])
def test_ledger_valid_json_that_is_not_an_object_owns_nothing(tmp_path, text: str) -> None:
    # A truncated/garbled ledger is logged as unreadable and the agent owns nothing; the same
    # must hold for a file that happens to be valid JSON of another shape, not crash the agent
    # (Reconciler.__init__ calls load()).
    path = tmp_path / "owned.json"
    path.write_text(text)
    assert Ledger(path).load() == set()


def test_ledger_file_round_trip_with_neighbour_entries(tmp_path) -> None:
    path = tmp_path / "owned.json"
    owned = {A, M2, U("vx200", MAC, "2001:db8::1"), N1, N1B, N2, N3}
    Ledger(path).compact(owned)
    loaded = Ledger(path).load()
    assert loaded == owned
    assert {type(e.ip) for e in loaded if isinstance(e, NeighEntry)} == {ipaddress.IPv4Address, ipaddress.IPv6Address}
    Ledger(path).compact({N2})
    assert Ledger(path).load() == {N2}


def test_ledger_file_format(tmp_path) -> None:
    """The snapshot: one JSON line (buckets with their sizes, the entries that do not pack as rows,
    the CRC-32), then each bucket's sorted keys as 8-byte high and 2-byte low parts."""
    path = tmp_path / "owned.json"
    Ledger(path).compact({N3, N2, N("br100", "192.168.1.10", MAC), N1, M2, E("vx100", "10.0.0.10"), A})
    first, payload = path.read_bytes().split(b"\n", 1)
    header = json.loads(first)
    assert header["format"] == "evpn-agent-owned-packed" and header["version"] == 1 and header["byteorder"] == sys.byteorder
    assert header["buckets"] == [["fdb", "vx100", 3], ["neigh", "br100", 2], ["neigh", "br200", 1]]
    assert header["fdb"] == [] and header["neigh"] == [["br100", "2001:db8::5", MAC]]  # IPv6: kept as a row
    assert header["crc32"] == zlib.crc32(payload) and len(payload) == 6 * 10
    hi = array("Q", payload[:24])
    lo = array("H", payload[24:30])
    assert [h << 16 | low for h, low in zip(hi, lo)] == [int("0" * 12 + "0a000002", 16), int("0" * 12 + "0a00000a", 16),
                                                        int(MAC.replace(":", "") + "0a000002", 16)]  # MAC << 32 | VTEP, sorted


def test_a_snapshot_written_on_a_machine_of_the_other_byte_order_loads(tmp_path) -> None:
    path = tmp_path / "owned.json"
    owned = {A, M2, N1, N3, N2}
    Ledger(path).compact(owned)
    first, payload = path.read_bytes().split(b"\n", 1)
    header = json.loads(first)
    swapped = b""
    for kind, device, count in header["buckets"]:
        for code, size in (("Q", 8), ("H", 2)):
            part = array(code, payload[:count * size])
            payload = payload[count * size:]
            part.byteswap()
            swapped += part.tobytes()
    header["byteorder"] = "big" if sys.byteorder == "little" else "little"
    header["crc32"] = zlib.crc32(swapped)
    path.write_bytes(json.dumps(header).encode() + b"\n" + swapped)
    assert Ledger(path).load() == owned


@pytest.mark.parametrize("damage", ["flip", "extra", "version", "bucket"])
def test_a_damaged_packed_snapshot_owns_nothing(tmp_path, damage: str) -> None:
    path = tmp_path / "owned.json"
    Ledger(path).compact({A, M2, N1})
    first, payload = path.read_bytes().split(b"\n", 1)
    header = json.loads(first)
    if damage == "flip":
        payload = payload[:5] + bytes([payload[5] ^ 1]) + payload[6:]
    elif damage == "extra":
        payload += b"\0"
    elif damage == "version":
        header["version"] = 2
    else:
        header["buckets"][0][2] = -1
    path.write_bytes(json.dumps(header).encode() + b"\n" + payload)
    assert Ledger(path).load() == set()


def test_one_batch_as_big_as_the_table_is_written_as_a_snapshot(tmp_path) -> None:
    """A cold start adds the whole table in one batch: a snapshot (milliseconds) instead of a journal
    line per entry; later small batches go to the journal again."""
    path = tmp_path / "owned.json"
    ledger = Ledger(path)
    ledger.load()
    entries = {U("vx100", f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}", "10.0.0.2") for i in range(COMPACT_MIN_LINES)}
    ledger.record(entries, set(), entries)
    assert path.exists() and (tmp_path / "owned.json.journal").read_text() == '{"generation": 1}\n'
    ledger.record({A}, set(), entries | {A})
    assert len((tmp_path / "owned.json.journal").read_text().splitlines()) == 2  # its header and the change
    assert Ledger(path).load() == entries | {A}


def test_ledger_without_neighbour_list_still_loads(tmp_path) -> None:
    # a ledger written before ARP/ND suppression existed has only the FDB list
    path = tmp_path / "owned.json"
    path.write_text('{"fdb": [["vx100", "00:00:00:00:00:00", "10.0.0.2"], ["vx100", "aa:bb:cc:dd:ee:01", "10.0.0.2"]]}')
    assert Ledger(path).load() == {A, M2}
    path.write_text('{"neigh": [["br100", "192.168.1.5", "aa:bb:cc:dd:ee:01"]]}')
    assert Ledger(path).load() == {N1}
    path.write_text("{}")
    assert Ledger(path).load() == set()


@pytest.mark.parametrize("text", [
    '{"neigh": [["br100", "192.168.1.5"]]}',
    '{"neigh": [["br100", "not-an-ip", "aa:bb:cc:dd:ee:01"]]}',
    '{"neigh": 5}',
    '{"neigh": [5]}',
    '{"fdb": [], "neigh": [["br100", "192.168.1.5", ["aa"]]]}',
    '{"fdb": [["vx100", "00:00:00:00:00:00", "10.0.0.2"]], "neigh": [["br100", "192.168.1.5", "m", "extra"]]}',
])
def test_ledger_unreadable_neighbour_list_owns_nothing(tmp_path, text: str) -> None:
    path = tmp_path / "owned.json"
    path.write_text(text)
    assert Ledger(path).load() == set()


def test_reconciler_with_file_ledger_forgets_vanished_entries_across_restarts(tmp_path) -> None:
    path = tmp_path / "owned.json"
    kernel = FakeKernel()
    Reconciler(kernel, Ledger(path), DEVICES).full_sync({A, M2})
    assert Ledger(path).load() == {A, M2}
    kernel.someone_deletes(M2)
    Reconciler(kernel, Ledger(path), DEVICES).full_sync({A})
    assert Ledger(path).load() == {A}
    kernel.someone_adds(M2)
    Reconciler(kernel, Ledger(path), DEVICES).full_sync({A})
    assert M2 in kernel.table and kernel.foreign_removed == []


def test_reconciler_with_file_ledger_and_neighbour_entries_across_restarts(tmp_path) -> None:
    path = tmp_path / "owned.json"
    kernel = FakeKernel(foreign={N3})
    Reconciler(kernel, Ledger(path), DEVICES, BRIDGES).full_sync({A, M2, N1, N2})
    assert Ledger(path).load() == {A, M2, N1, N2}
    # restart with the same desired state: nothing removed and re-added
    calls = len(kernel.calls)
    assert Reconciler(kernel, Ledger(path), DEVICES, BRIDGES).full_sync({A, M2, N1, N2}) == Plan()
    assert len(kernel.calls) == calls
    # someone deletes N1; the next run forgets it; an operator's re-creation is never removed
    kernel.someone_deletes(N1)
    Reconciler(kernel, Ledger(path), DEVICES, BRIDGES).full_sync({A, M2, N2})
    assert Ledger(path).load() == {A, M2, N2}
    kernel.someone_adds(N1)
    rec = Reconciler(kernel, Ledger(path), DEVICES, BRIDGES)
    assert rec.full_sync({A}) == Plan(remove=[M2, N2])
    assert kernel.table == {A, N1, N3}
    assert kernel.foreign_removed == []


# -- the journal ------------------------------------------------------------------------------


def test_journal_records_changes_and_load_replays_them(tmp_path) -> None:
    path = tmp_path / "owned.json"
    ledger = Ledger(path)
    ledger.load()
    ledger.record({A, M2}, set(), {A, M2})
    ledger.record({N1}, {A}, {M2, N1})
    assert not path.exists()  # no snapshot needed yet: the journal says it all
    assert Ledger(path).load() == {M2, N1}


def test_journal_cost_follows_the_changes_not_the_table(tmp_path) -> None:
    path = tmp_path / "owned.json"
    owned = {U("vx100", f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}", "10.0.0.2") for i in range(3000)}
    ledger = Ledger(path)
    ledger.load()
    ledger.compact(owned)
    snapshot_size = path.stat().st_size
    before = (tmp_path / "owned.json.journal").stat().st_size
    ledger.record({A}, set(), owned | {A})
    grown = (tmp_path / "owned.json.journal").stat().st_size - before
    assert grown < 100 and path.stat().st_size == snapshot_size


def test_a_torn_last_line_is_ignored(tmp_path) -> None:
    path = tmp_path / "owned.json"
    ledger = Ledger(path)
    ledger.load()
    ledger.record({A, B}, set(), {A, B})
    ledger.close()
    with open(tmp_path / "owned.json.journal", "a") as journal:
        journal.write('["-", "fdb", "vx100", "00:00:00:0')  # the agent died mid-write
    assert Ledger(path).load() == {A, B}


def test_compaction_when_the_journal_outgrows_the_table(tmp_path) -> None:
    path = tmp_path / "owned.json"
    ledger = Ledger(path)
    ledger.load()
    for _ in range(COMPACT_MIN_LINES // 2 + 1):
        ledger.record({A}, set(), {A})
        ledger.record(set(), {A}, set())
    assert path.exists()  # compacted once the journal passed COMPACT_MIN_LINES lines
    assert len((tmp_path / "owned.json.journal").read_text().splitlines()) < 10
    assert Ledger(path).load() == set()


def test_a_table_grown_by_additions_is_compacted_once_its_journal_passes_its_share(tmp_path, monkeypatch) -> None:
    """A table that only grew (100k routes learned one batch at a time) used to keep a journal as long
    as itself (compaction waited for twice the table): 200k lines replayed at every start, 0.5 s."""
    import agent.ledger as ledger_module

    monkeypatch.setattr(ledger_module, "COMPACT_MIN_LINES", 10)
    path = tmp_path / "owned.json"
    ledger, owned = Ledger(path), set()
    ledger.load()
    entries = [U("vx100", f"02:00:00:00:00:{i:02x}", "10.0.0.2") for i in range(200)]
    for entry in entries:
        owned.add(entry)
        ledger.record({entry}, set(), owned)
        assert ledger.journal_lines <= max(10, len(owned) // ledger_module.JOURNAL_SHARE)
    assert path.exists() and Ledger(path).load() == owned


def test_a_clean_stop_stores_the_table_whole_and_leaves_no_journal_to_replay(tmp_path) -> None:
    path = tmp_path / "owned.json"
    ledger = Ledger(path)
    ledger.load()
    ledger.record({A, B}, set(), {A, B})
    ledger.close()  # not a clean stop (no owned set given): the journal stays
    assert not path.exists() and Ledger(path).load() == {A, B}
    ledger = Ledger(path)
    ledger.load()
    ledger.record(set(), {B}, {A})
    ledger.close({A})
    assert path.exists() and (tmp_path / "owned.json.journal").read_text().count("\n") == 1  # the header only
    again = Ledger(path)
    assert again.load() == {A} and again.journal_lines == 0
    again.close({A})  # nothing journaled since: no snapshot written
    reloaded = Ledger(path)
    assert reloaded.load() == {A} and again.generation == reloaded.generation == 1


def test_a_clean_stop_after_an_unreadable_snapshot_does_not_replace_it(tmp_path, monkeypatch) -> None:
    """A snapshot that could not be read for a passing reason (EMFILE, EIO) is still the agent's best
    record: a clean stop must not overwrite it with the few entries made since."""
    path = tmp_path / "owned.json"
    ledger = Ledger(path)
    ledger.load()
    ledger.compact({A, B})
    failing = Ledger(path)
    real_open = open

    def no_descriptors(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(file) == str(path):
            raise OSError(24, "Too many open files")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_descriptors)
    assert failing.load() == set()
    monkeypatch.undo()
    failing.record({C}, set(), {C})
    failing.close({C})
    assert Ledger(path).load() == {A, B}


def test_a_crash_between_snapshot_and_journal_truncation_loses_nothing(tmp_path) -> None:
    path = tmp_path / "owned.json"
    ledger = Ledger(path)
    ledger.load()
    ledger.record({A, B, M2}, set(), {A, B, M2})
    ledger.record(set(), {B}, {A, M2})
    journal = (tmp_path / "owned.json.journal").read_text()
    ledger.compact({A, M2})
    (tmp_path / "owned.json.journal").write_text(journal)  # as if truncation never happened
    assert Ledger(path).load() == {A, M2}


def test_ledger_files_are_for_root_only_whatever_the_umask(tmp_path) -> None:
    path = tmp_path / "owned.json"
    old = os.umask(0)
    try:
        ledger = Ledger(path)
        ledger.record({A}, set(), {A})
        ledger.compact({A})
    finally:
        os.umask(old)
    for file in (path, tmp_path / "owned.json.journal"):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=15), st.text(min_size=1, max_size=17), st.ip_addresses(), st.booleans(), st.sampled_from("+-"))
def test_journal_lines_are_what_json_dumps_writes(device: str, mac: str, ip: object, fdb: bool, op: str) -> None:
    from agent.ledger import _line, _row

    entry = FdbEntry(device, mac, ip) if fdb else NeighEntry(device, ip, mac)  # type: ignore[arg-type]
    assert _line(op, entry) == json.dumps([op, *_row(entry)])


def test_a_journal_line_of_the_wrong_shape_is_skipped_also_when_the_whole_journal_parses(tmp_path: Path) -> None:
    """The journal is parsed in one go when every line is JSON; a line of the wrong shape among them
    still costs only that line (and one that holds two values is not taken as two lines)."""
    state = tmp_path / "state.json"
    state.with_name("state.json.journal").write_text(
        '["+", "fdb", "vx100", "02:00:00:00:00:01", "10.0.0.2"]\n'
        '["+", "fdb", "vx100"]\n'
        '["+", "neigh", "br100", "10.1.0.1", "02:00:00:00:00:01"], ["+", "neigh", "br100", "10.1.0.2", "02:00:00:00:00:02"]\n'
        '["-", "fdb", "vx100", "02:00:00:00:00:01", "10.0.0.2"]\n'
        '["+", "neigh", "br100", "10.1.0.3", "02:00:00:00:00:03"]\n')
    assert Ledger(state).load() == {NeighEntry("br100", ipaddress.ip_address("10.1.0.3"), "02:00:00:00:00:03")}


# -- the snapshot read line by line -----------------------------------------------------------------


def _line_snapshot(owned: set) -> str:
    """A snapshot as earlier agents wrote it: JSON, one entry a line."""
    fdb = sorted((e for e in owned if isinstance(e, FdbEntry)), key=entry_sort_key)
    neigh = sorted((e for e in owned if isinstance(e, NeighEntry)), key=entry_sort_key)
    rows = [",\n".join(json.dumps(_row(e)[1:]) for e in part) for part in (fdb, neigh)]
    return '{"fdb": [\n' + (rows[0] + "\n" if rows[0] else "") + '],\n"neigh": [\n' + (rows[1] + "\n" if rows[1] else "") + "]}\n"


def test_an_earlier_agents_line_by_line_snapshot_is_read_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.ledger

    monkeypatch.setattr(agent.ledger, "CHUNK_LINES", 4)  # rows cross chunk boundaries, some exactly
    path = tmp_path / "owned.json"
    for count in (0, 1, 4, 8, 9):
        owned = {U("vx100", f"02:00:00:00:00:{i:02x}", "10.0.0.2") for i in range(count)}
        owned |= {N("br100", f"10.1.0.{i}", MAC) for i in range(count)} | {N2, U("vx200", MAC, "2001:db8::1")}
        path.write_text(_line_snapshot(owned))
        assert len(json.loads(path.read_text())["fdb"]) == count + 1  # (the layout is one JSON document)
        assert Ledger(path).load() == owned
        Ledger(path).compact(owned)  # written again: packed, same entries
        assert path.read_bytes().startswith(b'{"format": ') and Ledger(path).load() == owned


@pytest.mark.parametrize("cut", [1, 20, -4, -2])  # (-1 cuts only the final newline: whole)
def test_a_snapshot_cut_short_owns_nothing(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "owned.json"
    Ledger(path).compact({A, M2, N1, N2})
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    assert Ledger(path).load() == set()
    path.write_text(_line_snapshot({A, M2, N1, N2})[:cut])  # an earlier agent's layout, cut short
    assert Ledger(path).load() == set()


@pytest.mark.parametrize("text", [
    '{"fdb": [\n["vx100", "00:00:00:00:00:00", "10.0.0.2"]\n],\n["br100", "192.168.1.5", "aa:bb:cc:dd:ee:01"]\n"neigh": [\n]}\n',
    '{"fdb": [\n["vx100", "00:00:00:00:00:00", "10.0.0.2"]\n],\n"neigh": [\n]}\n["vx100", "00:00:00:00:00:00", "10.0.0.3"]\n',
    '{"fdb": [\n["vx100", "00:00:00:00:00:00"]\n],\n"neigh": [\n]}\n',
    '{"fdb": [\n["vx100", "00:00:00:00:00:00", "10.0.0.2"]\n],\n"neigh": [\n]}\n]}\n',
])
def test_a_snapshot_of_the_wrong_shape_owns_nothing(tmp_path: Path, text: str) -> None:
    path = tmp_path / "owned.json"
    path.write_text(text)
    assert Ledger(path).load() == set()


def test_a_torn_last_line_after_many_chunks_is_ignored_and_a_bad_line_before_it_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.ledger

    monkeypatch.setattr(agent.ledger, "CHUNK_LINES", 3)
    path = tmp_path / "owned.json"
    ledger = Ledger(path)
    ledger.load()
    ledger.record({A}, set(), {A})
    ledger.close()
    with open(tmp_path / "owned.json.journal", "a") as journal:
        journal.write('["+", "fdb"\n')  # a bad line that ends a chunk (line 3)
        journal.write('["+", "fdb", "vx100", "00:00:00:00:00:00", "10.0.0.3"]\n' * 3)
        journal.write('["-", "fdb", "vx100", "00:00:00:0')  # torn: line 7, alone in the last chunk
    assert Ledger(path).load() == {A, B}



# -- a compaction cut short between its two steps -------------------------------------------------------------

@pytest.mark.parametrize("first_add", [True, False])
def test_the_old_journal_beside_a_newer_snapshot_is_not_replayed(tmp_path: Path, first_add: bool) -> None:
    """A packed apply changes ownership without a journal line, then compacts; killed between replacing the
    snapshot and starting the journal afresh, the old journal sits beside a snapshot that already holds
    more than it: replaying "+A" would own an entry removed since (a later hand-made copy would then be
    deleted), replaying "-A" would forget one made since (never removed)."""
    path = tmp_path / "owned.json"
    ledger = Ledger(path)
    ledger.load()
    if first_add:
        ledger.record({A}, set(), {A})
        journal = (tmp_path / "owned.json.journal").read_text()
        ledger.compact(set())  # A removed as packed keys: in no journal line
        after = set()
    else:
        ledger.record({A}, set(), {A})
        ledger.record(set(), {A}, set())
        journal = (tmp_path / "owned.json.journal").read_text()
        ledger.compact({A})  # A made again as packed keys
        after = {A}
    (tmp_path / "owned.json.journal").write_text(journal)  # as if the journal was never started afresh
    reloaded = Ledger(path)
    assert reloaded.load() == after
    reloaded.record({B}, set(), after | {B})  # the stale journal is replaced, not appended to
    assert Ledger(path).load() == after | {B}


def test_an_earlier_agents_journal_is_replayed_over_a_json_snapshot_never_over_a_packed_one(tmp_path: Path) -> None:
    path = tmp_path / "owned.json"
    path.write_text('{"fdb": [["vx100", "00:00:00:00:00:00", "10.0.0.2"]]}')
    journal = tmp_path / "owned.json.journal"
    journal.write_text('["+", "fdb", "vx100", "00:00:00:00:00:00", "10.0.0.3"]\n["-", "fdb", "vx100", "00:00:00:00:00:00", "10.0.0.2"]\n')
    assert Ledger(path).load() == {B}  # an earlier agent's files: both read
    Ledger(path).compact({B})
    journal.write_text('["+", "fdb", "vx100", "00:00:00:00:00:00", "10.0.0.2"]\n')  # no header: not this snapshot's
    assert Ledger(path).load() == {B}
