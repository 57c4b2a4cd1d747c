"""Helpers for the integration tests: generated topologies, the real CLI, and leftover detection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from labctl import netns
from labctl.plan import RUN_ROOT
from tests.unit import labctl_builders as builders

TEST_LAB_PREFIX = "it"  # every lab a test creates is named it*, so cleanup touches only ours
LABCTL = str(Path(sys.executable).parent / "labctl")


def make_topology(lab: str, hosts: int = 3, vms_per_host: int = 3, hold_time: int = 3) -> dict[str, Any]:
    """A topology like topologies/3x3.yaml, for test lab `lab` (it*), with `hosts` hypervisors."""
    assert lab.startswith(TEST_LAB_PREFIX)
    return builders.make_topology(lab, hosts, vms_per_host, hold_time)


def repo_topology(name: str, lab: str, tmp_path: Path) -> Path:
    """One of the repository's topologies/*.yaml, renamed to test lab `lab` (hosts renamed with it)."""
    doc = builders.repo_document(name)
    old = doc["lab"]
    doc["lab"] = lab
    for host in doc["hosts"]:
        host["name"] = host["name"].replace(f"{old}-", f"{lab}-", 1)
    return write_topology(tmp_path / name, doc)


def write_topology(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def labctl(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LABCTL, *args], capture_output=True, text=True, timeout=timeout)


def lab_namespaces(lab: str) -> list[str]:
    return [n for n in netns.list_namespaces() if n.startswith(f"{lab}-")]


def lab_processes(lab: str) -> list[str]:
    """Processes whose command line names this lab's run directory (daemons started by labctl)."""
    marker = f"{RUN_ROOT}/{lab}/"
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmd:
                found.append(f"{proc.name}: {cmd.strip()}")
    return found


def run_in(ns_name: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns_name, *argv], capture_output=True, text=True, check=check, timeout=60)
