"""A medium generated lab (12 hypervisors x 4 VMs, 2 networks, written as the `scale:` shorthand) through
the real CLI: `up` expands it to the lab `labctl gen` makes, starts the hosts in parallel and prints the
lab's memory, `verify` passes while probing a sample of the host pairs
and saying so (each check timed), `status` prints the memory too, `down` leaves nothing behind.
(The 50 x 10 figures come from benchmarks/bench_lab.py: too heavy for every test run.)"""

from __future__ import annotations

import re
from pathlib import Path

from labctl.generate import generate
from labctl.plan import RUN_ROOT
from labctl.state import load
from labctl.topology import parse_topology

from .labkit import lab_namespaces, lab_processes, labctl

LAB = "itsl"
HOSTS, VMS, NETWORKS = 12, 4, 2


def test_medium_lab_up_verify_sampled_down(tmp_path: Path) -> None:
    path = tmp_path / "medium.yaml"
    path.write_text(f"lab: {LAB}\nscale: {{hosts: {HOSTS}, vms: {VMS}, networks: {NETWORKS}}}\n")

    up = labctl("up", str(path), timeout=240)
    assert up.returncode == 0, up.stdout + up.stderr
    assert len(lab_namespaces(LAB)) == 2 + HOSTS + HOSTS * VMS
    state = load(LAB)  # the running lab is the expanded topology, the very one `labctl gen` writes
    assert state is not None and parse_topology(state.topology) == parse_topology(generate(HOSTS, VMS, NETWORKS, LAB))
    memory = re.search(r"memory: total RSS (\d+) MiB, PSS (\d+) MiB in (\d+) processes", up.stdout)
    assert memory is not None, up.stdout
    rss, pss, processes = map(int, memory.groups())
    # per hypervisor gobgpd, evpn-agent and a supervisor each; the controller's gobgpd and its supervisor; the keeper's
    assert processes >= 4 * HOSTS + 3 and 0 < pss <= rss, up.stdout

    verify = labctl("verify", "--lab", LAB, timeout=300)
    out = verify.stdout
    assert verify.returncode == 0, out + verify.stderr
    summary = re.search(r"(\d+) passed, 0 failed in [\d.]+s", out)
    assert summary is not None and int(summary.group(1)) >= 9, out
    pairs = HOSTS * (HOSTS - 1) // 2
    sampled = re.search(rf"sampled (\d+) of {pairs} host pairs \(ring over {HOSTS} hosts\)", out)
    assert sampled is not None and 0 < int(sampled.group(1)) < pairs, out
    for check in ("cross-host", "arp-suppression", "same-host", "fdb-macs"):  # the progress lines time every check
        assert re.search(rf"check {check}: pass in [\d.]+s", verify.stderr), verify.stderr  # the progress lines

    checked = labctl("check", str(path))
    assert checked.returncode == 0 and f"{HOSTS} hypervisors, {HOSTS * VMS} VMs" in checked.stdout, checked.stdout + checked.stderr
    graph = labctl("graph", "--lab", LAB, "--format", "dot")
    assert graph.returncode == 0 and f'"{LAB}-{HOSTS}"' in graph.stdout, graph.stdout + graph.stderr

    status = labctl("status", "--lab", LAB, "--no-macs")
    assert status.returncode == 0 and "memory: total RSS" in status.stdout, status.stdout + status.stderr

    down = labctl("down", LAB, timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert lab_namespaces(LAB) == [] and lab_processes(LAB) == [] and not (RUN_ROOT / LAB).exists()
