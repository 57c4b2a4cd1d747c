"""`labctl chaos` for a minute on a 3-host lab with a fixed seed: every kind of fault (agent, host gobgpd and
controller kill -9, link flap, VM move, MAC burst) and every invariant holding again after each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.chaos import KINDS
from labctl.chaosrun import run
from labctl.lab import Lab
from labctl.topology import load_topology

from .labkit import make_topology, write_topology

LAB = "itchaos"
SEED = 456  # its first six faults are one of each kind (about 35 s of them)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    path = write_topology(tmp_path / "chaos.yaml", make_topology(LAB, hosts=3, vms_per_host=2))
    yield Lab.up(load_topology(path), str(path))  # removed after the test by tests/conftest.py, as every it* lab


def test_a_minute_of_chaos_breaks_no_invariant(lab: Lab) -> None:
    steps: list[str] = []
    summary = run(lab, SEED, duration=50, kinds=KINDS, timeout=45, progress=steps.append)
    report = f"{summary.headline()}\n" + "\n".join(steps)
    assert summary.ok, report
    kinds = summary.by_kind()
    assert set(kinds) == set(KINDS), f"kinds run: {kinds}\n{report}"
    worst = summary.worst_convergence()
    assert worst is not None and worst.convergence is not None and worst.convergence < 30, report
