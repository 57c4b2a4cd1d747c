"""Hostile or broken routes are refused and counted, never installed (unit level: classify + RibView).

Each case is one a BGP peer can send today: a flood entry towards 255.255.255.255 loops broadcasts
back; a neighbour entry for 224.0.0.1, a subnet's broadcast address or a local VM's own address
poisons ARP on the segment.
"""

from __future__ import annotations

import ipaddress

import pytest

from agent.desired import IGNORED_REASONS_MAX, RibView, classify
from agent.localmacs import LocalMac, LocalMacEvent
from agent.ipsnoop import IpSeen
from agent.advertiser import Advertiser
from agent.learning import LocalLearning
from agent.mactable import LocalMacTable

from tests.unit.builders import MAC, N, U, add, imet, macip, make_cfg

SUBNET_CFG = make_cfg(vnis=[{"vni": 100, "device": "vx100", "bridge": "br100", "subnets": ["192.168.100.0/24", "2001:db8:100::/64"]}])


@pytest.mark.parametrize("vtep", ["255.255.255.255", "169.254.0.1", "240.0.0.1", "0.0.0.7", "127.0.0.2", "224.0.0.5"])
def test_type2_next_hop_that_is_no_vtep_is_refused(vtep: str) -> None:
    verdict = classify(macip(vtep), SUBNET_CFG)
    assert verdict.vni is None and "not a usable unicast IPv4 address" in verdict.reason


@pytest.mark.parametrize("vtep", ["255.255.255.255", "169.254.1.1"])
def test_type3_originator_that_is_no_vtep_is_refused_and_counted(vtep: str) -> None:
    rib = RibView(SUBNET_CFG)
    assert rib.apply([add(imet(vtep, 100))]) == set()
    assert rib.desired_count() == 0 and sum(rib.ignored.values()) == 1


@pytest.mark.parametrize("address", ["224.0.0.1", "255.255.255.255", "127.0.0.1", "::1", "192.168.100.255", "192.168.100.0",
                                     "10.99.99.99", "0.0.0.0", "169.254.3.3", "fe80::1", "ff02::1"])
def test_macip_route_with_an_address_no_vm_may_have_is_refused(address: str) -> None:
    rib = RibView(SUBNET_CFG)
    rib.apply([add(macip("10.0.0.2", mac_ip=address))])
    assert rib.desired_count() == 0
    assert any("is not a VM address" in reason for reason in rib.ignored)


def test_macip_route_inside_the_subnet_is_installed() -> None:
    rib = RibView(SUBNET_CFG)
    rib.apply([add(macip("10.0.0.2", mac_ip="192.168.100.37"))])
    assert rib.desired() == {U("vx100", MAC, "10.0.0.2"), N("br100", "192.168.100.37")}


def test_ignored_reasons_are_bounded() -> None:
    rib = RibView(SUBNET_CFG)
    rib.apply([add(macip("10.0.0.2", mac=f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}", mac_ip=f"10.{i >> 8}.{i & 255}.1")) for i in range(500)])
    assert len(rib.ignored) <= IGNORED_REASONS_MAX and sum(rib.ignored.values()) == 500


def test_a_remote_claim_on_a_local_vms_address_is_never_installed() -> None:
    rib = RibView(SUBNET_CFG)
    vm_ip = ipaddress.ip_address("192.168.100.11")
    rib.set_local_ip("br100", vm_ip, True)
    touched = rib.apply([add(macip("10.0.0.2", mac="02:66:66:66:66:66", mac_ip=str(vm_ip), seq=0xFFFFFFFF))])
    assert N("br100", str(vm_ip), "02:66:66:66:66:66") not in rib.desired()
    assert N("br100", str(vm_ip), "02:66:66:66:66:66") not in touched
    # once the VM is gone from this host, the remote claim is what stands
    touched = rib.set_local_ip("br100", vm_ip, False)
    assert touched == {N("br100", str(vm_ip), "02:66:66:66:66:66")} and rib.wants(N("br100", str(vm_ip), "02:66:66:66:66:66"))


def test_local_ip_claims_survive_a_table_reload() -> None:
    rib = RibView(SUBNET_CFG)
    rib.set_local_ip("br100", ipaddress.ip_address("192.168.100.11"), True)
    rib.replace([add(macip("10.0.0.2", mac_ip="192.168.100.11"))])
    assert not any(e for e in rib.desired() if getattr(e, "ip", None) == ipaddress.ip_address("192.168.100.11"))


class Sink:
    def __init__(self) -> None:
        self.added: list[object] = []

    def add_route(self, route: object) -> None:
        self.added.append(route)

    def delete_route(self, route: object) -> None:
        pass


def _learning() -> tuple[LocalLearning, RibView, Sink]:
    rib, adv, sink = RibView(SUBNET_CFG), Advertiser(SUBNET_CFG), Sink()
    adv.sink = sink
    return LocalLearning(SUBNET_CFG, rib, adv, LocalMacTable(max_moves=2)), rib, sink


def test_snooped_address_outside_the_subnet_is_ignored() -> None:
    learning, _, sink = _learning()
    vm = LocalMac(100, "02:00:00:00:00:01")
    learning.macs_changed([LocalMacEvent(vm, True)])
    learning.ips_seen([IpSeen(100, vm.mac, ipaddress.ip_address("10.99.99.99")),
                       IpSeen(100, vm.mac, ipaddress.ip_address("192.168.100.255"))])
    assert learning.ignored_ips == 2
    assert all(getattr(r, "ip", None) is None for r in sink.added)


def test_spoofed_arp_claiming_a_local_vms_address_cannot_make_a_remote_mac_answer() -> None:
    """vm3 (remote) claims vm4's address: vm4's own host keeps answering with nothing but vm4."""
    learning, rib, _ = _learning()
    vm4 = LocalMac(100, "02:00:00:00:00:04")
    ip4 = ipaddress.ip_address("192.168.100.14")
    learning.macs_changed([LocalMacEvent(vm4, True)])
    learning.ips_seen([IpSeen(100, vm4.mac, ip4)])
    rib.apply([add(macip("10.0.0.3", mac="02:00:00:00:00:03", mac_ip=str(ip4), seq=5))])
    assert not any(getattr(e, "ip", None) == ip4 for e in rib.desired())


def test_an_address_flapping_between_macs_is_frozen() -> None:
    learning, _, _ = _learning()
    a, b = LocalMac(100, "02:00:00:00:00:0a"), LocalMac(100, "02:00:00:00:00:0b")
    ip = ipaddress.ip_address("192.168.100.50")
    learning.macs_changed([LocalMacEvent(a, True), LocalMacEvent(b, True)])
    for mac in [a, b, a, b, a, b]:
        learning.ips_seen([IpSeen(100, mac.mac, ip)])
    assert (100, ip) in learning.table.frozen_ips
    owner = learning.table.ip_owner[(100, ip)]
    learning.ips_seen([IpSeen(100, (b if owner == a else a).mac, ip)])
    assert learning.table.ip_owner[(100, ip)] == owner  # frozen: no further change
