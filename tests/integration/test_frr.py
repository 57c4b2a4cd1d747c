"""Mixed fabric: a hypervisor running FRR (zebra + bgpd, advertise-all-vni) beside gobgpd + our agent.
VTEPs, MACs and ARP suppression both ways, kill/revive of either kind, and migration between them."""

from __future__ import annotations

from pathlib import Path

from labctl.lab import Lab
from labctl.migrate import move_measured
from labctl.observe import read_rib
from labctl.verify import check_migration

from .labkit import labctl, lab_namespaces, lab_processes, repo_topology

LAB = "itfrr"


def _verify() -> str:
    result = labctl("verify", "--lab", LAB)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_mixed_fabric_with_frr(tmp_path: Path) -> None:
    assert labctl("up", str(repo_topology("mixed.yaml", LAB, tmp_path))).returncode == 0
    lab = Lab.open(LAB)
    ours, frr_host = lab.topo.hosts[0], lab.topo.hosts[2]
    assert (frr_host.kind, ours.kind) == ("frr", "gobgp")
    out = _verify()
    assert "answered locally" in out and "exactly the two VTEPs" in out

    # the FRR host's RIB (through vtysh JSON) holds our Type-3 and Type-2 routes, and ours holds FRR's
    frr_rib = read_rib(lab, frr_host.name)
    assert any(getattr(e.route, "originator", None) == ours.vtep for e in frr_rib)
    assert any(getattr(e.route, "mac", None) == ours.vms[0].mac for e in frr_rib)
    our_rib = read_rib(lab, ours.name)
    assert any(getattr(e.route, "originator", None) == frr_host.vtep and e.route.pmsi_vni == 100 for e in our_rib)  # type: ignore[union-attr]
    vtysh = labctl("vtysh", frr_host.name, "show", "evpn", "vni", "100", "--lab", LAB)
    assert vtysh.returncode == 0 and str(ours.vtep) in vtysh.stdout

    # a VM migrates from our hypervisor to FRR's and back
    vm = ours.vms[0]
    for target in (frr_host.name, ours.name):
        outage, source, moved_to, moved = move_measured(lab, vm.name, target)
        assert outage.seconds < 1.0, f"{vm.name} → {target}: outage {outage.seconds:.3f}s"
        result = check_migration(lab, moved, source, moved_to)
        assert result.ok, result.evidence

    # either kind of hypervisor dies and comes back
    for name in (frr_host.name, ours.name):
        killed = labctl("kill", name, "--lab", LAB)
        assert killed.returncode == 0, killed.stdout + killed.stderr
        assert f"{name} is down" in _verify()
        revived = labctl("revive", name, "--lab", LAB)
        assert revived.returncode == 0, revived.stdout + revived.stderr
        _verify()

    assert labctl("down", LAB).returncode == 0
    assert lab_namespaces(LAB) == [] and lab_processes(LAB) == []
