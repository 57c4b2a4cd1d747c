"""Two controllers (pure): the topology's `controllers:` list and its one-line field errors, the names and
uplinks the plan gives them, every host peering with both, the FRR controller's config."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from labctl.errors import TopologyError
from labctl.keeper import router_routes
from labctl.lab import owned_namespaces
from labctl.nodes.frr import (
    bgpd_config,
    controller_bgpd_config,
    controller_peer_commands,
    count_paths_from,
    parse_sessions,
)
from labctl.plan import LabPlan
from labctl.topology import parse_topology
from tests.unit.labctl_builders import make_topology, repo_document

TWO = [{"name": "controller", "kind": "gobgpd", "asn": 65000, "address": "10.0.0.100"},
       {"name": "rr2", "kind": "frr", "asn": 65000, "address": "10.0.0.99"}]


def two_controllers(controllers: list[dict[str, Any]] | None = None, **host_edits: Any) -> dict[str, Any]:
    doc = make_topology("t", hosts=3, vms_per_host=1)
    del doc["controller"]
    doc["controllers"] = copy.deepcopy(controllers if controllers is not None else TWO)
    for i, host in enumerate(doc["hosts"]):
        host.update(host_edits if i == 0 else {})
    return doc


def refused(doc: Any, field: str) -> str:
    with pytest.raises(TopologyError) as caught:
        parse_topology(doc, "lab.yaml")
    message = str(caught.value)
    assert "\n" not in message and f"lab.yaml: {field}:" in message, message
    return message


def test_the_old_single_controller_form_is_one_gobgpd_named_controller() -> None:
    topo = parse_topology(make_topology("t"))
    assert [(c.name, c.kind, c.asn, str(c.address)) for c in topo.controllers] == [("controller", "gobgpd", 65000, "10.0.0.100")]
    assert "controller" in topo.to_document() and "controllers" not in topo.to_document()  # state files keep their form


def test_two_controllers_parse_and_round_trip() -> None:
    topo = parse_topology(two_controllers())
    assert [(c.name, c.kind) for c in topo.controllers] == [("controller", "gobgpd"), ("rr2", "frr")]
    assert parse_topology(topo.to_document()) == topo


def test_names_and_kinds_default() -> None:
    topo = parse_topology(two_controllers([{"asn": 65000, "address": "10.0.0.100"}, {"asn": 65000, "address": "10.0.0.99"}]))
    assert [(c.name, c.kind) for c in topo.controllers] == [("controller", "gobgpd"), ("controller2", "gobgpd")]


@pytest.mark.parametrize("repo_file", ["3x3-2ctl.yaml", "3x3-2ctl-frr.yaml"])
def test_repository_topologies_with_two_controllers_are_valid(repo_file: str) -> None:
    topo = parse_topology(repo_document(repo_file))
    assert len(topo.controllers) == 2 and len({c.asn for c in topo.controllers}) == 1


@pytest.mark.parametrize(("edit", "field", "words"), [
    (lambda d: d.update(controller={"asn": 65000, "address": "10.0.0.100"}), "controllers", "not both"),
    (lambda d: d.pop("controllers"), "controllers", "missing"),
    (lambda d: d.update(controllers=[]), "controllers", "1 or 2"),
    (lambda d: d["controllers"].append({"asn": 65000, "address": "10.0.0.98", "name": "c3"}), "controllers", "1 or 2"),
    (lambda d: d["controllers"][1].update(asn=65100), "controllers[1].asn", "share one AS"),
    (lambda d: d["controllers"][1].update(kind="bird"), "controllers[1].kind", "gobgpd, frr"),
    (lambda d: d["controllers"][1].update(name="controller"), "controllers[1].name", "duplicate"),
    (lambda d: d["controllers"][1].update(name="underlay"), "controllers[1].name", "reserved"),
    (lambda d: d["controllers"][1].update(name="averyverylongname"), "controllers[1].name", "1-11"),
    (lambda d: d["controllers"][1].update(name="../x"), "controllers[1].name", "not a valid name"),
    (lambda d: d["controllers"][1].update(address="10.0.0.100"), "controllers[1].address", "already used"),
    (lambda d: d["controllers"][1].update(address="8.8.8.8"), "controllers[1].address", "private unicast"),
    (lambda d: d["controllers"][1].update(address="10.255.0.9"), "controllers[1].address", "outside underlay.links"),
    (lambda d: d["controllers"][1].update(port=179), "controllers[1].port", "unknown key"),
    (lambda d: d["hosts"][0].update(vtep="10.0.0.99"), "hosts[0].vtep", "controllers[1].address"),
    (lambda d: d["hosts"][0].update(name="t-rr2"), "hosts[0].name", "reserved"),
    (lambda d: d["hosts"][0]["vms"][0].update(name="rr2"), "hosts[0].vms[0].name", "clashes"),
    (lambda d: d["hosts"][0].update(asn=65000), "hosts[0].asn", "controllers' AS"),
    (lambda d: d.update(underlay={"links": "10.255.0.0/28"}), "underlay.links", "too few"),
])
def test_bad_controllers_are_refused_with_one_line_naming_the_field(edit: Any, field: str, words: str) -> None:
    doc = two_controllers()
    edit(doc)
    assert words in refused(doc, field)


def test_each_controller_gets_a_namespace_an_uplink_and_a_router_route() -> None:
    plan = LabPlan(parse_topology(two_controllers()))
    assert plan.controller_nses == ["t-controller", "t-rr2"] and plan.controller_ns == "t-controller"
    assert plan.all_namespaces()[:3] == ["t-underlay", "t-controller", "t-rr2"]
    links = [plan.uplink(n) for n in ("t-controller", "t-rr2", "t-1")]
    assert [str(u.subnet) for u in links] == ["10.255.0.0/30", "10.255.0.4/30", "10.255.0.8/30"]
    assert all(len(u.router_if) <= 15 for u in links) and links[1].router_if == "r-rr2"
    assert ("10.0.0.99/32", "10.255.0.6") in router_routes(plan)
    assert plan.controller_of("rr2") == plan.controller_of("t-rr2") == plan.topo.controllers[1]
    assert plan.controller_of("t-1") is None


def test_owned_namespaces_of_a_broken_state_still_name_the_second_controller() -> None:
    doc = two_controllers()
    doc["hosts"][0]["asn"] = "broken"
    assert "t-rr2" in owned_namespaces("t", doc)


def test_every_host_peers_with_both_controllers() -> None:
    doc = two_controllers()
    doc["hosts"][2]["kind"] = "frr"
    topo = parse_topology(doc)
    plan = LabPlan(topo)
    toml = plan.gobgpd_host_config(topo.hosts[0])
    assert toml.count("[[neighbors]]") == 2 and 'neighbor-address = "10.0.0.100"' in toml and 'neighbor-address = "10.0.0.99"' in toml
    frr_host = bgpd_config(plan, topo.hosts[2])
    for address in ("10.0.0.100", "10.0.0.99"):
        assert f"neighbor {address} remote-as 65000" in frr_host and f"  neighbor {address} activate" in frr_host
    assert frr_host.count("bgp graceful-restart\n") == 1


def test_gobgpd_controller_config_is_per_controller() -> None:
    topo = parse_topology(two_controllers([TWO[0], {**TWO[1], "kind": "gobgpd"}]))
    plan = LabPlan(topo)
    second = plan.gobgpd_controller_config(topo.controllers[1])
    assert 'router-id = "10.0.0.99"' in second and second.count('local-address = "10.0.0.99"') == 3
    assert second.count("passive-mode = true") == 3


def test_frr_controller_config_is_a_hub_without_vnis() -> None:
    topo = parse_topology(two_controllers())
    plan = LabPlan(topo)
    conf = controller_bgpd_config(plan, topo.controllers[1])
    for line in ("router bgp 65000", " bgp router-id 10.0.0.99", " no bgp ebgp-requires-policy", " bgp graceful-restart",
                 " neighbor 10.0.0.101 remote-as 65001", " neighbor 10.0.0.101 passive", " neighbor 10.0.0.101 update-source 10.0.0.99",
                 "  neighbor 10.0.0.103 attribute-unchanged next-hop", "  neighbor 10.0.0.102 activate"):
        assert line + "\n" in conf, line
    assert "advertise-all-vni" not in conf and "vni " not in conf and "route-target" not in conf
    commands = controller_peer_commands(topo.controllers[1], plan.controller_neighbor(topo.hosts[0], topo.controllers[1]))
    assert commands[:2] == ["configure terminal", "router bgp 65000"]
    assert "neighbor 10.0.0.101 attribute-unchanged next-hop" in commands and "address-family l2vpn evpn" in commands


def test_frr_sessions_and_paths_from_a_neighbour_parse() -> None:
    assert parse_sessions({"10.0.0.101": {"bgpState": "Established"}, "10.0.0.102": {"bgpState": "Active"}}) == {
        "10.0.0.101": "ESTABLISHED", "10.0.0.102": "ACTIVE"}
    rib = {"10.0.0.102:100": {"[3]:[0]:[32]:[10.0.0.102]": {"paths": [[{"peerId": "10.0.0.100"}, {"peerId": "10.0.0.99"}]]},
                              "[2]:[0]:[48]:[02:00:00:00:02:04]": {"paths": [[{"peerId": "10.0.0.99"}]]}},
           "numPrefix": 2}
    assert count_paths_from(rib, "10.0.0.99") == 2 and count_paths_from(rib, "10.0.0.100") == 1
