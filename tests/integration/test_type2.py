"""Type-2 for real: remote MACs in every FDB, ARP suppression, VM migration with a measured outage,
duplicate detection — in a 3x3 lab with real gobgpd, kernel bridges/vxlan and packets."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from labctl.lab import Lab
from labctl.observe import snapshot, wait_until
from labctl.migrate import move_measured
from labctl.verify import check_arp_suppression, check_mac_tables, check_migration

from .labkit import labctl, make_topology, run_in, write_topology

LAB = "ittype2"


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    topo = write_topology(tmp_path / "lab.yaml", make_topology(LAB, hosts=3, vms_per_host=2))
    result = labctl("up", str(topo))
    assert result.returncode == 0, result.stdout + result.stderr
    return Lab.open(LAB)


def test_verify_with_type2_checks_passes_and_status_shows_mac_tables(lab: Lab) -> None:
    result = labctl("verify", "--lab", LAB)
    assert result.returncode == 0, result.stdout
    assert "answered locally" in result.stdout and "unicast FDB" in result.stdout
    status = labctl("status", "--lab", LAB)
    assert status.returncode == 0, status.stderr
    # every VM appears in every host's MAC table: local on its own host, remote (with its VTEP) elsewhere
    for host, vm in lab.topo.vms():
        assert status.stdout.count(vm.mac) == 3, f"{vm.mac} not in all three MAC tables"
        assert re.search(rf"{vm.mac}.*{re.escape(str(vm.ip))}.*local", status.stdout)


def test_arp_suppression_check_fails_when_suppression_is_off(lab: Lab) -> None:
    """The check looks at packets: with neigh_suppress off the ARP request crosses the underlay and it fails."""
    assert labctl("verify", "--lab", LAB, "--only", "cross-host").returncode == 0
    for host in lab.topo.hosts:
        run_in(host.name, "bridge", "link", "set", "dev", "vxlan100", "neigh_suppress", "off")
    result = check_arp_suppression(lab)
    assert result is not None and not result.ok, result
    assert re.search(r"[1-9]\d* ARP packets on the underlay", result.evidence), result.evidence


def test_migration_outage_under_a_second_and_every_fdb_follows(lab: Lab) -> None:
    assert labctl("verify", "--lab", LAB, "--only", "cross-host").returncode == 0
    vm = lab.topo.hosts[0].vms[0]
    outage, source, target, moved = move_measured(lab, vm.name, lab.topo.hosts[1].name)
    assert outage.seconds < 1.0, f"outage {outage.seconds:.3f}s"
    result = check_migration(lab, moved, source, target)
    assert result.ok, result.evidence
    # the old hypervisor no longer advertises it, the new one does
    assert lab.topo.host(target.name).vms[-1].name == vm.name  # type: ignore[union-attr]
    assert check_mac_tables(lab, snapshot(lab)).ok
    # and back, through the CLI, with its own report
    back = labctl("move", vm.name, source.name, "--lab", LAB)
    assert back.returncode == 0, back.stdout + back.stderr
    match = re.search(r"outage (\d+) ms", back.stdout)
    assert match and int(match.group(1)) < 1000, back.stdout


def test_migration_scenario_in_verify(lab: Lab) -> None:
    result = labctl("verify", "--lab", LAB, "--only", "rib", "--scenario", "migration")
    assert result.returncode == 0, result.stdout
    outages = [int(ms) for ms in re.findall(r"outage (\d+) ms", result.stdout)]
    assert len(outages) == 2 and all(ms < 1000 for ms in outages), result.stdout


def test_a_duplicate_mac_is_frozen_instead_of_flapping(lab: Lab) -> None:
    """Two live VMs with one MAC on two hypervisors: each time one speaks the MAC 'moves'. After more
    than dad_max_moves (5) moves in the window the agents freeze it rather than flap forever (as FRR)."""
    from labctl import netns
    from labctl.capture import arp_frame, send_frames
    from labctl.plan import VM_IFNAME, vm_port_name

    vm = lab.topo.hosts[0].vms[0]
    h1, h2 = lab.topo.hosts[0].name, lab.topo.hosts[1].name
    rogue = f"{LAB}-rogue"
    netns.create(rogue)
    try:  # the rogue namespace is the test's own, not the lab's: `down` leaves it alone
        port = vm_port_name("rogue")
        netns.veth(h2, port, rogue, VM_IFNAME, mac_b=vm.mac)
        netns.enslave(h2, port, lab.topo.network(vm.network).bridge)

        def frozen() -> bool:
            return any(f"100/{vm.mac}" in (lab.node(h).agent_status().get("frozen_macs") or []) for h in (h1, h2))  # type: ignore[arg-type]

        rounds = 0
        while not frozen() and rounds < 15:  # the two copies speak in turn, each time the MAC "moves"
            rounds += 1
            send_frames(lab.plan.vm_ns(vm), arp_frame(vm.mac, str(vm.ip), str(vm.ip)), count=1)
            time.sleep(0.6)
            send_frames(rogue, arp_frame(vm.mac, str(vm.ip), str(vm.ip)), count=1)
            time.sleep(0.6)
        wait_until(f"{vm.mac} frozen by duplicate detection", frozen, 10)
        assert rounds >= 3, f"frozen after {rounds} rounds: fewer moves than dad_max_moves"
        logs = "".join(lab.plan.files(h).agent_log.read_text() for h in (h1, h2))
        assert "event=mac-duplicate-frozen" in logs and vm.mac in logs
    finally:
        netns.remove(rogue)
