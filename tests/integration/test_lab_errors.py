"""Bad input gives one clear line and creates nothing; an interrupted `up` leaves nothing `down` cannot remove."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .labkit import LABCTL, labctl, lab_namespaces, lab_processes, make_topology, write_topology

GOOD = make_topology("itbad", hosts=2, vms_per_host=2)


def _broken(edit):  # type: ignore[no-untyped-def]
    doc = copy.deepcopy(GOOD)
    edit(doc)
    return doc


CASES = {
    "unknown key": (_broken(lambda d: d.update(colour="red")), "colour: unknown key"),
    "bad vtep": (_broken(lambda d: d["hosts"][1].update(vtep="10.0.0.1o2")), "hosts[1].vtep"),
    "duplicate host": (_broken(lambda d: d["hosts"][1].update(name="itbad-1")), "hosts[1].name: duplicate"),
    "bad mac": (_broken(lambda d: d["hosts"][0]["vms"][0].update(mac="02:00:00:00:zz:01")), "hosts[0].vms[0].mac"),
    "multicast mac": (_broken(lambda d: d["hosts"][0]["vms"][0].update(mac="03:00:00:00:00:01")), "not a unicast MAC"),
    "vni out of range": (_broken(lambda d: d["networks"][0].update(vni=16777216)), "networks[0].vni"),
    "ip outside subnet": (_broken(lambda d: d["hosts"][0]["vms"][1].update(ip="10.9.9.9")), "hosts[0].vms[1].ip"),
    "overlapping subnet": (_broken(lambda d: d["networks"].append({"name": "red", "vni": 200, "subnet": "192.168.100.128/25"})), "overlaps network"),
    "missing asn": (_broken(lambda d: d["hosts"][0].pop("asn")), "hosts[0].asn: missing"),
    "same asn": (_broken(lambda d: d["hosts"][1].update(asn=65001)), "hosts[1].asn"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_topology_is_one_line_and_creates_nothing(case: str, tmp_path: Path) -> None:
    doc, expected = CASES[case]
    path = write_topology(tmp_path / "bad.yaml", doc)
    result = labctl("up", str(path))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0] and "Traceback" not in result.stderr
    assert lab_namespaces("itbad") == []
    assert not Path("/run/evpn-lab/itbad").exists()


def test_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("lab: [unclosed\n")
    result = labctl("up", str(path))
    assert result.returncode == 1 and "not valid YAML" in result.stderr and "Traceback" not in result.stderr


def test_second_up_refused_and_running_lab_untouched(tmp_path: Path) -> None:
    path = write_topology(tmp_path / "lab.yaml", make_topology("itdup", hosts=2, vms_per_host=1))
    assert labctl("up", str(path)).returncode == 0
    before = lab_namespaces("itdup")
    again = labctl("up", str(path))
    assert again.returncode == 1 and "already exists" in again.stderr
    assert lab_namespaces("itdup") == before
    assert labctl("verify", "--lab", "itdup").returncode == 0


def _interrupted_up(path: Path, sig: int, after: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen([LABCTL, "up", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not lab_namespaces(path.stem) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(after)
    os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_interrupted_up_rolls_back(tmp_path: Path) -> None:
    path = write_topology(tmp_path / "itint.yaml", make_topology("itint", hosts=3))
    result = _interrupted_up(path, signal.SIGINT, after=0.8)
    assert result.returncode != 0
    assert lab_namespaces("itint") == [] and lab_processes("itint") == []


def test_down_after_labctl_was_killed(tmp_path: Path) -> None:
    path = write_topology(tmp_path / "itkill.yaml", make_topology("itkill", hosts=3))
    _interrupted_up(path, signal.SIGKILL, after=1.5)
    assert lab_namespaces("itkill"), "SIGKILL should have left a half-built lab behind"
    down = labctl("down", "itkill")
    assert down.returncode == 0, down.stderr
    assert lab_namespaces("itkill") == [] and lab_processes("itkill") == []
