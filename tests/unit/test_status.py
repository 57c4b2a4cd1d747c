"""Unit tests for agent/status.py: the status document and its throttled, atomic writer."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from agent.desired import RibView
from agent.localmacs import LocalMac
from agent.mactable import LocalMacTable
from agent.reconcile import Reconciler
from agent.status import DETAIL_LIMIT, Health, StatusWriter, build_status

from tests.unit.builders import CFG, FakeKernel, MemoryLedger, add, imet


def _pieces() -> tuple[RibView, LocalMacTable, Reconciler]:
    rib = RibView(CFG)
    rib.apply([add(imet("10.0.0.2", 100))])
    table = LocalMacTable()
    table.arrived(LocalMac(100, "02:00:00:00:00:01"), None)
    return rib, table, Reconciler(FakeKernel(), MemoryLedger(), ["vx100"])


def test_status_document_fields() -> None:
    rib, table, rec = _pieces()
    doc = build_status(CFG, Health(connected=True, ready=True, reconnects=2), rib, table, rec, refused=1)
    assert doc["ready"] is True and doc["connected"] is True and doc["reconnects"] == 2
    assert doc["remote_vteps"] == {"100": ["10.0.0.2"], "200": []}
    assert doc["local_macs"] == {"100/02:00:00:00:00:01": 0}
    assert doc["refused_requests"] == 1 and doc["routes"] == 1
    json.dumps(doc)  # serialisable


def test_big_tables_become_counts() -> None:
    rib, table, rec = _pieces()
    for i in range(DETAIL_LIMIT + 1):
        table.adopt(LocalMac(100, f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"))
    doc = build_status(CFG, Health(), rib, table, rec)
    assert doc["local_macs"] == len(table)
    assert doc["remote_macs"] == "omitted (too many)"


def test_writer_throttles_and_flushes(tmp_path: Path) -> None:
    now = [100.0]
    writer = StatusWriter(tmp_path / "status.json", interval=0.5, clock=lambda: now[0])
    builds = []

    def build() -> dict[str, object]:
        builds.append(now[0])
        return {"n": len(builds)}

    assert writer.write(build)
    assert not writer.write(build) and writer.pending
    now[0] += 0.6
    writer.flush(build)
    assert not writer.pending and builds == [100.0, 100.6]
    assert json.loads((tmp_path / "status.json").read_text()) == {"n": 2}
    assert writer.write(build, force=True)


def test_writer_sets_mode_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        StatusWriter(tmp_path / "s.json", 0).write(lambda: {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "s.json").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temporary file left


def test_writer_without_path_writes_nothing() -> None:
    assert not StatusWriter(None, 0).write(lambda: {})
