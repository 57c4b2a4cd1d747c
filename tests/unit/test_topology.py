"""The parsed topology is the lab's one source of truth: edits return new, validated topologies, and the
document stored in the state file parses back to the same topology."""

from __future__ import annotations

import ipaddress

import pytest

from labctl.errors import TopologyError
from labctl.topology import parse_topology
from tests.unit.labctl_builders import make_topology, repo_document, topology, two_networks


@pytest.mark.parametrize("name", ["3x3.yaml", "3x3-plus-one.yaml", "mixed.yaml", "multitenant.yaml"])
def test_document_round_trip_of_every_repository_topology(name: str) -> None:
    topo = parse_topology(repo_document(name))
    assert parse_topology(topo.to_document()) == topo


def test_defaults_are_spelled_out_in_the_document() -> None:
    doc = topology().to_document()
    assert doc["networks"][0]["bridge"] == "br0" and doc["networks"][0]["route_targets"] == ["65000:100"]
    assert doc["hosts"][0]["kind"] == "gobgp" and doc["bgp"]["connect_retry"] == 1


def test_with_vm_moved_returns_a_new_topology_and_leaves_the_old_one() -> None:
    old = topology()
    new = old.with_vm_moved("vm11", "t-2")
    assert [vm.name for vm in new.host("t-2").vms] == ["vm21", "vm22", "vm23", "vm11"]  # type: ignore[union-attr]
    assert "vm11" not in [vm.name for vm in new.host("t-1").vms]  # type: ignore[union-attr]
    assert [vm.name for vm in old.host("t-1").vms] == ["vm11", "vm12", "vm13"]  # type: ignore[union-attr]


def test_with_vm_moved_of_an_unknown_vm_names_it() -> None:
    with pytest.raises(TopologyError, match="no VM 'vm99'"):
        topology().with_vm_moved("vm99", "t-2")


def test_with_vm_changes_network_and_address_and_validates() -> None:
    topo = parse_topology(two_networks())
    moved = topo.with_vm("vm11", network="red", ip="192.168.200.11")
    _, vm = moved.locate_vm("vm11")  # type: ignore[misc]
    assert (vm.network, vm.ip) == ("red", ipaddress.IPv4Address("192.168.200.11"))
    with pytest.raises(TopologyError, match=r"vms\[1\].ip: 192.168.200.1 already used") as caught:
        topo.with_vm("vm11", network="red", ip="192.168.200.1")
    assert not str(caught.value).startswith("edit")  # the message names the field, not a file
    with pytest.raises(TopologyError, match="not a host address"):
        topo.with_vm("vm11", network="red")  # keeps its blue address


def test_with_vm_detached_and_back() -> None:
    topo = topology().with_vm("vm12", detached=True)
    assert [vm.name for vm in topo.host("t-1").attached] == ["vm11", "vm13"]  # type: ignore[union-attr]
    assert topo.with_vm("vm12", detached=False) == topology()


def test_locate_vm_accepts_the_namespace_name() -> None:
    topo = topology()
    assert topo.locate_vm("t-vm22")[1].name == "vm22"  # type: ignore[index]
    assert topo.locate_vm("nothing") is None


def test_hosts_added_by_only_accepts_added_hosts() -> None:
    three, four = topology(), topology(hosts=4)
    assert [h.name for h in three.hosts_added_by(four)] == ["t-4"]
    assert three.hosts_added_by(three) == ()
    with pytest.raises(TopologyError, match="existing hosts must be listed first"):
        four.hosts_added_by(three)
    with pytest.raises(TopologyError, match="for lab 'u'"):
        three.hosts_added_by(topology("u"))
    other_timers = parse_topology(make_topology("t", hold_time=6))
    with pytest.raises(TopologyError, match="controller, networks, bgp and underlay"):
        three.hosts_added_by(other_timers)
