"""Unit tests for agent/statusview.py and `evpn-agent status`."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from agent.tools import tools as main  # status and rib (click); agent.cli dispatches to them
from agent.statusview import LIVE_WITHIN, render, summary

STATUS = {
    "name": "evpn-agent@h1", "vtep": "10.0.0.101", "pid": 42, "ready": True, "kernel_verified": True, "connected": True,
    "updated": 1000.0, "remote_vteps": {"100": ["10.0.0.102"]}, "vnis": {"100": {"device": "vxlan100", "bridge": "br0", "rd": "10.0.0.101:100"}},
    "routes": 7, "owned_fdb_entries": 5, "local_macs": {"100/02:00:00:00:00:01": 0}, "frozen_macs": ["100/02:00:00:00:00:09"],
    "reconnects": 1, "last_errors": [{"time": 990.0, "level": "WARNING", "message": "event=route-malformed"}],
}


def test_summary_of_a_live_agent() -> None:
    view = summary(STATUS, now=1001.0)
    assert view["live"] and view["ready"] and view["gobgp_session"] == "up"
    assert view["vnis"]["100"]["remote_vteps"] == ["10.0.0.102"] and view["local_macs"] == 1
    text = "\n".join(render(view))
    assert "ready" in text and "VNI 100 (vxlan100 on br0): remote VTEPs 10.0.0.102" in text and "reconnects=1" in text


def test_a_restart_ready_from_its_ledger_says_its_kernel_is_not_verified_yet() -> None:
    assert "kernel not verified" not in "\n".join(render(summary(STATUS, now=1001.0)))
    view = summary(STATUS | {"kernel_verified": False}, now=1001.0)
    assert view["ready"] and not view["kernel_verified"]
    assert "(kernel not verified yet: ready from the ledger)" in "\n".join(render(view))


def test_an_old_status_file_means_not_live_and_not_ready() -> None:
    view = summary(STATUS, now=1000.0 + LIVE_WITHIN + 1)
    assert not view["live"] and not view["ready"]
    assert "NOT LIVE" in render(view)[0]


def test_count_form_of_local_macs() -> None:
    assert summary(STATUS | {"local_macs": 5000}, now=1000.0)["local_macs"] == 5000


def test_cli_json_and_exit_code(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_text(json.dumps(STATUS))  # updated long ago: not live
    result = CliRunner().invoke(main, ["status", "--status-file", str(path), "--json"])
    assert result.exit_code == 1 and json.loads(result.output)["live"] is False
    missing = CliRunner().invoke(main, ["status", "--status-file", str(tmp_path / "nope.json")])
    assert missing.exit_code == 1 and "is the agent running" in missing.output and "Traceback" not in missing.output
