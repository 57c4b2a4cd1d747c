"""The `scale:` shorthand: a topology of `lab` and `scale: {hosts, vms, networks}` loads as the very lab
`labctl gen` writes (one generator), `check`, `graph` and `up`'s loader take it, and every wrong value
or forbidden neighbour field is one line naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from labctl.cli import main
from labctl.errors import TopologyError
from labctl.generate import generate, render
from labctl.topology import load_topology, parse_topology

REPO = Path(__file__).resolve().parents[2]


def _refused(doc: Any, field: str) -> str:
    with pytest.raises(TopologyError) as caught:
        parse_topology(doc, "lab.yaml")
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"lab.yaml: {field}: "), message
    return message


def _scale(**scale: Any) -> dict[str, Any]:
    return {"lab": "big", "scale": scale}


@pytest.mark.parametrize(("hosts", "vms", "networks"), [(50, 10, 4), (3, 3, 1), (12, 4, 2), (2, 0, 1), (64, 8, 64)])
def test_expands_to_what_gen_writes(tmp_path: Path, hosts: int, vms: int, networks: int) -> None:
    generated = tmp_path / "gen.yaml"
    generated.write_text(render(generate(hosts, vms, networks, "big")))
    shorthand = tmp_path / "scale.yaml"
    shorthand.write_text(f"lab: big\nscale: {{hosts: {hosts}, vms: {vms}, networks: {networks}}}\n")
    topo = load_topology(shorthand)
    assert topo == load_topology(generated)
    assert len(topo.hosts) == hosts and len(topo.vms()) == hosts * vms and len(topo.networks) == networks


def test_defaults_are_no_vms_and_one_network() -> None:
    topo = parse_topology(_scale(hosts=2))
    assert [h.name for h in topo.hosts] == ["big-1", "big-2"] and topo.vms() == [] and len(topo.networks) == 1
    assert topo.timers.hold_time == 3  # up to 10 hosts: the short timers


def test_first_as_and_vtep_count_up() -> None:
    topo = parse_topology(_scale(hosts=3, vms=1, asn=4200000001, vtep="10.1.2.254"))
    assert [h.asn for h in topo.hosts] == [4200000001, 4200000002, 4200000003]
    assert [str(h.vtep) for h in topo.hosts] == ["10.1.2.254", "10.1.2.255", "10.1.3.0"]
    assert parse_topology(generate(3, 1, lab="big", asn=4200000001, vtep="10.1.2.254")) == topo  # gen --asn/--vtep: the same


def test_bgp_underlay_and_controller_beside_scale_replace_the_generated_ones() -> None:
    topo = parse_topology({"lab": "big", "scale": {"hosts": 20, "vms": 1},
                           "bgp": {"hold_time": 30, "keepalive": 10}, "underlay": {"links": "172.16.0.0/16"},
                           "controller": {"asn": 64512, "address": "10.0.0.99"}})
    assert (topo.timers.hold_time, topo.timers.keepalive) == (30, 10)
    assert str(topo.links) == "172.16.0.0/16"
    assert (topo.controller.asn, str(topo.controller.address)) == (64512, "10.0.0.99")
    assert topo.hosts[0].asn == 65001 and str(topo.hosts[0].vtep) == "10.0.0.101"


def test_a_partial_bgp_beside_scale_keeps_the_timers_of_the_labs_size() -> None:
    topo = parse_topology({"lab": "big", "scale": {"hosts": 20, "vms": 1}, "bgp": {"hold_time": 30}})
    assert (topo.timers.hold_time, topo.timers.keepalive) == (30, 3)  # keepalive of a big lab, not the loader's 1 s


def test_the_expanded_topology_round_trips() -> None:
    """The state file keeps the expanded document (`to_document`): it parses back to the same lab."""
    topo = parse_topology(_scale(hosts=5, vms=2, networks=2))
    assert parse_topology(topo.to_document()) == topo


@pytest.mark.parametrize("field", ["hosts", "networks", "controllers"])
def test_fields_scale_generates_are_refused_beside_it(field: str) -> None:
    doc = _scale(hosts=2) | {field: []}
    assert "not with scale" in _refused(doc, field)


@pytest.mark.parametrize(("scale", "field", "words"), [
    ({"hosts": 0}, "scale.hosts", "1..64"),
    ({"hosts": 65}, "scale.hosts", "1..64"),
    ({"hosts": "50"}, "scale.hosts", "integer"),
    ({"hosts": True}, "scale.hosts", "integer"),
    ({"hosts": 2, "vms": -1}, "scale.vms", "0..250"),
    ({"hosts": 2, "vms": 251}, "scale.vms", "0..250"),
    ({"hosts": 60, "vms": 10}, "scale.vms", "600 VMs: a lab takes at most 512"),
    ({"hosts": 2, "networks": 0}, "scale.networks", "1..64"),
    ({"hosts": 2, "networks": 65}, "scale.networks", "1..64"),
    ({"hosts": 2, "asn": 0}, "scale.asn", "integer"),
    ({"hosts": 2, "asn": 4294967294}, "scale.asn", "integer"),  # the second host would be beyond 32 bits
    ({"hosts": 3, "asn": 64999}, "scale.asn", "hypervisor 2's AS: AS 65000 is the controllers' AS"),
    ({"hosts": 2, "vtep": "10.0.0.300"}, "scale.vtep", "not an IPv4 address"),
    ({"hosts": 2, "vtep": 10}, "scale.vtep", "not an IPv4 address"),
    ({"hosts": 3, "vtep": "10.0.0.99"}, "scale.vtep", "hypervisor 2's VTEP: 10.0.0.100 already used by controller.address"),
    ({"hosts": 2, "vtep": "8.8.8.8"}, "scale.vtep", "private unicast"),
    ({"hosts": 2, "vtep": "10.101.0.1"}, "scale.vtep", "inside network 'net1'"),
    ({"hosts": 6, "vtep": "255.255.255.254"}, "scale.vtep", "no room for 6"),
    ({}, "scale.hosts", "missing"),
    ({"hosts": 2, "racks": 2}, "scale.racks", "unknown key (allowed: asn, hosts, networks, vms, vtep)"),
])
def test_bad_scale_values_name_the_field(scale: dict[str, Any], field: str, words: str) -> None:
    assert words in _refused({"lab": "big", "scale": scale}, field)


@pytest.mark.parametrize(("doc", "field"), [
    ({"lab": "big", "scale": [50, 10]}, "scale"),
    ({"lab": "big", "scale": None, "hosts": []}, "hosts"),
    ({"scale": {"hosts": 2}}, "lab"),
    ({"lab": "Big", "scale": {"hosts": 2}}, "lab"),
    ({"lab": "big", "scale": {"hosts": 2}, "bgp": {"hold_time": 2}}, "bgp.hold_time"),
    ({"lab": "big", "scale": {"hosts": 2}, "bgp": [3]}, "bgp"),
    ({"lab": "big", "scale": {"hosts": 2}, "controller": {"asn": 65000}}, "controller.address"),
    ({"lab": "big", "scale": {"hosts": 2}, "flavour": 1}, "flavour"),
    ({"lab": "big", "scale": {"hosts": 2}, "underlay": {"links": "10.101.0.0/16"}}, "scale"),  # the generated networks' subnets
])
def test_fields_beside_scale_are_validated(doc: dict[str, Any], field: str) -> None:
    _refused(doc, field)


def test_the_repository_scale_topology_is_the_50_by_10_lab() -> None:
    topo = load_topology(REPO / "topologies" / "scale-50x10.yaml")
    assert len(topo.hosts) == 50 and len(topo.vms()) == 500 and len(topo.networks) == 4
    assert topo == parse_topology(generate(50, 10, 4, topo.lab))


def test_check_and_graph_take_a_scale_topology(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("lab: big\nscale: {hosts: 3, vms: 2, networks: 2}\n")
    checked = CliRunner().invoke(main, ["check", str(path)])
    assert checked.exit_code == 0 and "3 hypervisors, 6 VMs, 2 networks" in checked.output, checked.output
    graph = CliRunner().invoke(main, ["graph", str(path), "--format", "dot"])
    assert graph.exit_code == 0 and "big-3" in graph.output and "vm3x2" in graph.output, graph.output
    path.write_text("lab: big\nscale: {hosts: 3, vms: 300}\n")
    refused = CliRunner().invoke(main, ["check", str(path)])
    assert refused.exit_code == 1 and "scale.vms" in refused.output and refused.output.count("\n") == 1, refused.output
