"""Unit tests for labctl/portsec.py (rulesets, pure) and the topology's port_security / allowed_address_pairs."""

from __future__ import annotations

import ipaddress

import pytest

from labctl import portsec
from labctl.errors import TopologyError
from labctl.topology import AddressPair, Vm, parse_topology
from tests.unit import labctl_builders as builders

MAC = "02:00:00:00:01:01"
VM = Vm("vm1", MAC, ipaddress.IPv4Address("192.168.100.11"), "blue")


def test_link_local_is_the_modified_eui64_of_the_mac() -> None:
    assert portsec.link_local("02:00:00:00:01:01") == ipaddress.IPv6Address("fe80::ff:fe00:101")
    assert portsec.link_local("52:54:00:12:34:56") == ipaddress.IPv6Address("fe80::5054:ff:fe12:3456")


def test_a_port_admits_only_its_own_mac_and_addresses() -> None:
    rules = portsec.port_chain(portsec.port_policy(VM))
    assert rules[0].startswith("ether saddr != { 02:00:00:00:01:01 } counter drop")
    assert rules[1] == ("ether type arp arp saddr ether . arp saddr ip "
                        "{ 02:00:00:00:01:01 . 192.168.100.11, 02:00:00:00:01:01 . 0.0.0.0 } accept")
    assert rules[2].startswith("ether type arp counter drop")
    assert rules[3] == "ether type ip ether saddr . ip saddr { 02:00:00:00:01:01 . 192.168.100.11 } accept"
    assert rules[4].startswith("ether type ip counter drop")
    assert "nd-neighbor-advert @th,64,128 != { 0xfe80000000000000000000fffe000101 }" in rules[5]
    assert rules[6] == "ether type ip6 ether saddr . ip6 saddr { 02:00:00:00:01:01 . fe80::ff:fe00:101, 02:00:00:00:01:01 . :: } accept"
    assert rules[-1].startswith("counter drop")
    assert not any("0.0.0.0" in r for r in rules[3:5]), "no DHCP in the lab: IPv4 from 0.0.0.0 is not admitted"


def test_allowed_address_pairs_add_macs_and_prefixes() -> None:
    vm = Vm("vm1", MAC, ipaddress.IPv4Address("192.168.100.11"), "blue", allowed_address_pairs=(
        AddressPair(ipaddress.ip_network("192.168.100.64/28")),
        AddressPair(ipaddress.ip_network("192.168.100.99/32"), "02:00:00:00:09:09"),
        AddressPair(ipaddress.ip_network("fd00::5/128"))))
    rules = portsec.port_chain(portsec.port_policy(vm))
    assert rules[0].startswith("ether saddr != { 02:00:00:00:01:01, 02:00:00:00:09:09 }")
    ipv4 = next(r for r in rules if r.startswith("ether type ip ether saddr"))
    assert "02:00:00:00:01:01 . 192.168.100.64/28" in ipv4 and "02:00:00:00:09:09 . 192.168.100.99" in ipv4
    assert "0xfd000000000000000000000000000005" in next(r for r in rules if "nd-neighbor-advert" in r)


def test_port_security_off_admits_everything_and_a_new_address_replaces_the_old() -> None:
    off = Vm("vm2", "02:00:00:00:01:02", ipaddress.IPv4Address("192.168.100.12"), "blue", port_security=False)
    assert portsec.port_chain(portsec.port_policy(off)) == ['counter accept comment "port security off"']
    moved = portsec.port_rules("p-vm1", portsec.port_policy(VM, ipaddress.IPv4Address("192.168.30.7")))
    assert "192.168.30.7" in moved and "192.168.100.11" not in moved
    assert moved.splitlines()[:2] == ["add chain bridge evpn_lab_ports vm_vm1", "flush chain bridge evpn_lab_ports vm_vm1"]
    assert moved.splitlines()[-1] == 'add element bridge evpn_lab_ports port_chains { "p-vm1" : jump vm_vm1 }'


def test_host_rules_keep_tenant_bridges_away_from_the_stack() -> None:
    own = [ipaddress.ip_address("10.0.0.101"), ipaddress.ip_network("127.0.0.0/8")]
    plain = portsec.host_rules(own, learn_arp=False)
    assert "delete table arp evpn_lab_host" in plain and "delete table inet evpn_lab_host" in plain
    assert 'meta iifkind "bridge" counter drop comment "ARP from a tenant bridge"' in plain
    assert 'meta iifkind "bridge" counter drop comment "IP from a tenant bridge to the host"' in plain
    assert "accept" not in plain.replace("policy accept", "")
    learning = portsec.host_rules(own, learn_arp=True)
    assert 'meta iifkind "bridge" arp daddr ip != { 10.0.0.101, 127.0.0.0/8 } accept' in learning


def _doc_with_vm(**fields: object) -> dict:
    doc = builders.make_topology("lab", 2, 1, 3)
    doc["hosts"][0]["vms"][0].update(fields)
    return doc


def test_topology_reads_port_security_and_pairs_and_writes_them_back() -> None:
    topo = parse_topology(_doc_with_vm(port_security=False, allowed_address_pairs=[
        {"ip": "192.168.100.64/28"}, {"ip": "192.168.100.99", "mac": "02:00:00:00:09:09"}]), "t")
    vm = topo.hosts[0].vms[0]
    assert vm.port_security is False
    assert vm.allowed_address_pairs == (AddressPair(ipaddress.ip_network("192.168.100.64/28")),
                                        AddressPair(ipaddress.ip_network("192.168.100.99/32"), "02:00:00:00:09:09"))
    assert parse_topology(topo.to_document(), "again") == topo
    assert parse_topology(builders.make_topology("lab", 2, 1, 3), "t").hosts[0].vms[0].port_security is True


@pytest.mark.parametrize(("fields", "message"), [
    ({"port_security": "off"}, "port_security"),
    ({"allowed_address_pairs": [{"ip": "224.0.0.1"}]}, "not a unicast address"),
    ({"allowed_address_pairs": [{"ip": "192.168.100.1/23"}]}, "not an address or prefix"),
    ({"allowed_address_pairs": [{"ip": "192.168.100.5", "mac": "01:00:5e:00:00:01"}]}, "unicast MAC"),
    ({"allowed_address_pairs": [{"mac": "02:00:00:00:09:09"}]}, "ip"),
    ({"allowed_address_pairs": "192.168.100.5"}, "expected a list"),
])
def test_topology_refuses_bad_port_security_fields(fields: dict, message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        parse_topology(_doc_with_vm(**fields), "t")
