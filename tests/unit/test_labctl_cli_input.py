"""Lab names and node names given to the CLI are input: validated with the topology's rule, and a command
touches only what the lab's own state and naming say is its own (no root needed: a fake run directory)."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from labctl import plan as plan_module
from labctl.cli import main
from labctl.state import LabState
from labctl.topology import parse_topology
from tests.unit.labctl_builders import make_topology


@pytest.fixture
def run_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "run" / "evpn-lab"
    root.mkdir(parents=True)
    monkeypatch.setattr(plan_module, "RUN_ROOT", root)
    return root


def _fake_lab(root: Path, name: str) -> Path:
    """A lab's run directory with its state, as `up` leaves it (no namespaces, no processes)."""
    topo = parse_topology(make_topology(name, hosts=2, vms_per_host=1))
    (root / name / f"{name}-1").mkdir(parents=True)
    (root / name / f"{name}-1" / "gobgpd.log").write_text("log line\n")
    (root / name / "state.json").write_text(json.dumps(asdict(LabState(name, topo.to_document(), "test.yaml"))))
    return root / name


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _one_error_line(result: Result, expect: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expect in lines[0], result.output


def test_down_of_a_path_deletes_nothing(tmp_path: Path, run_root: Path) -> None:
    victim = tmp_path / "x"
    victim.mkdir()
    (victim / "keep").write_text("precious")
    _one_error_line(_run("down", str(victim)), "lab name")
    assert (victim / "keep").exists()


def test_down_dotdot_deletes_nothing(run_root: Path) -> None:
    _one_error_line(_run("down", ".."), "lab name")
    assert run_root.exists() and run_root.parent.exists()


def test_down_of_an_empty_name_is_not_the_default(run_root: Path) -> None:
    lab_dir = _fake_lab(run_root, "fake")
    _one_error_line(_run("down", ""), "lab name")
    assert (lab_dir / "state.json").exists()


def test_down_without_a_name_refuses_when_several_labs_run(run_root: Path) -> None:
    _fake_lab(run_root, "one")
    _fake_lab(run_root, "two")
    _one_error_line(_run("down"), "several labs are running")
    assert (run_root / "one").exists() and (run_root / "two").exists()


def test_down_of_an_unknown_lab_touches_nothing(run_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl import netns

    removed: list[str] = []
    monkeypatch.setattr(netns, "list_namespaces", lambda: ["stray-1", "stray-2"])
    monkeypatch.setattr(netns, "remove", removed.append)
    _one_error_line(_run("down", "stray"), "no lab named 'stray'")
    assert removed == []


def test_down_removes_only_the_namespaces_its_state_names(run_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl import daemons, netns

    removed: list[str] = []
    _fake_lab(run_root, "fake")
    monkeypatch.setattr(netns, "list_namespaces", lambda: ["fake-1", "fake-vm11", "fake-stray", "fake-controller", "other-1"])
    monkeypatch.setattr(netns, "remove", removed.append)
    monkeypatch.setattr(netns, "pids", lambda name: [])
    monkeypatch.setattr(daemons, "kill_pids", lambda pids: None)
    result = _run("down", "fake")
    assert result.exit_code == 0, result.output
    assert sorted(removed) == ["fake-1", "fake-controller", "fake-vm11"]
    assert not (run_root / "fake").exists()


def test_logs_of_a_path_lab_reads_nothing(tmp_path: Path, run_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tailed: list[Any] = []
    monkeypatch.setattr(os, "execvp", lambda *argv: tailed.append(argv))
    outside = tmp_path / "x" / "n"
    outside.mkdir(parents=True)
    (outside / "secret.log").write_text("secret")
    _one_error_line(_run("logs", "--lab", "../../x"), "lab name")
    assert tailed == []


def test_logs_of_a_path_node_reads_nothing(run_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tailed: list[Any] = []
    monkeypatch.setattr(os, "execvp", lambda *argv: tailed.append(argv))
    _fake_lab(run_root, "fake")
    (run_root / "other").mkdir()
    (run_root / "other" / "x.log").write_text("not fake's")
    _one_error_line(_run("logs", "../other", "--lab", "fake"), "no node '../other'")
    assert tailed == []
    assert _run("logs", "1", "--lab", "fake").exit_code == 0
    assert tailed and tailed[-1][1][-1].endswith("fake/fake-1/gobgpd.log")


def test_exec_runs_only_in_the_labs_own_namespaces(run_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from labctl import netns

    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "call", lambda argv: calls.append(argv) or 0)
    monkeypatch.setattr(netns, "list_namespaces", lambda: ["foreign", "fake-1"])
    _fake_lab(run_root, "fake")
    _one_error_line(_run("exec", "--lab", "fake", "foreign", "--", "true"), "no node 'foreign'")
    assert calls == []
    assert _run("exec", "--lab", "fake", "vm21", "--", "true").exit_code == 0
    assert calls == [["ip", "netns", "exec", "fake-vm21", "--", "true"]] or calls == [["ip", "netns", "exec", "fake-vm21", "true"]]


def test_state_is_written_for_root_only_whatever_the_umask(run_root: Path) -> None:
    old = os.umask(0)
    try:
        state = LabState("fake", parse_topology(make_topology("fake")).to_document(), "x")
        state.save()
    finally:
        os.umask(old)
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.path.parent.stat().st_mode) == 0o700
