"""labctl gen: generated topologies load, respect the loader's limits, and spread VMs over networks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from labctl.errors import TopologyError
from labctl.generate import generate, render
from labctl.topology import load_topology


def test_generated_yaml_loads_as_the_same_document(tmp_path: Path) -> None:
    doc = generate(3, 3)
    text = render(doc)
    assert yaml.safe_load(text) == doc
    path = tmp_path / "gen.yaml"
    path.write_text(text)
    topo = load_topology(path)
    assert [h.name for h in topo.hosts] == ["gen-1", "gen-2", "gen-3"]
    assert len(topo.vms()) == 9 and len(topo.networks) == 1
    assert topo.timers.hold_time == 3


def test_fifty_hosts_ten_vms_four_networks(tmp_path: Path) -> None:
    doc = generate(50, 10, 4, lab="big")
    path = tmp_path / "big.yaml"
    path.write_text(render(doc))
    topo = load_topology(path)
    assert topo.lab == "big" and len(topo.hosts) == 50 and len(topo.vms()) == 500
    assert topo.timers.hold_time == 9 and topo.timers.keepalive == 3  # a big lab on few cores: relaxed timers
    # every host has every network (M >= K), and VMs are spread evenly
    for host in topo.hosts:
        assert {vm.network for vm in host.vms} == {"net1", "net2", "net3", "net4"}
    per_net = [sum(1 for _, vm in topo.vms() if vm.network == n.name) for n in topo.networks]
    assert max(per_net) - min(per_net) <= 50
    assert len({vm.mac for _, vm in topo.vms()}) == 500 and len({vm.ip for _, vm in topo.vms()}) == 500
    assert all(len(f"p-{vm.name}") <= 15 for _, vm in topo.vms())  # interface name limit


def test_hosts_without_vms() -> None:
    doc = generate(2, 0)
    assert all(h["vms"] == [] for h in doc["hosts"])
    assert yaml.safe_load(render(doc)) == doc


@pytest.mark.parametrize(("hosts", "vms", "networks", "words"), [
    (65, 1, 1, "at most 64"),
    (60, 10, 1, "at most 512"),
    (1, 251, 1, "at most 250"),
    (0, 1, 1, "at least 1"),
    (1, 1, 65, "at most 64"),
])
def test_beyond_the_limits_is_refused_with_the_reason(hosts: int, vms: int, networks: int, words: str) -> None:
    with pytest.raises(TopologyError, match=words):
        generate(hosts, vms, networks)


def test_lab_name_is_validated() -> None:
    with pytest.raises(TopologyError):
        generate(1, 1, lab="Bad-Name")
