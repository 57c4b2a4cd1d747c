"""The plan: the naming scheme and the configs a topology becomes (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl import plan as plan_module
from labctl.plan import LabPlan
from labctl.topology import parse_topology
from tests.unit.labctl_builders import topology, two_networks


def test_names_follow_the_scheme() -> None:
    topo = topology()
    plan = LabPlan(topo)
    host = topo.hosts[0]
    vm = host.vms[0]
    assert (plan.router_ns, plan.controller_ns, plan.vm_ns(vm), plan.vm_port(vm)) == ("t-underlay", "t-controller", "t-vm11", "p-vm11")
    assert plan.uplink("t-2").router_if == "r-2" and plan.uplink("t-controller").router_if == "r-controller"
    assert topo.networks[0].bridge == "br0" and topo.networks[0].vxlan_device == "vxlan100"
    assert plan.all_namespaces(host) == ["t-1", "t-vm11", "t-vm12", "t-vm13"]


def test_uplinks_are_consecutive_slash30s_of_the_links_network() -> None:
    plan = LabPlan(topology())
    ctl, h1 = plan.uplink("t-controller"), plan.uplink("t-1")
    assert (str(ctl.subnet), str(ctl.router_ip), str(ctl.node_ip)) == ("10.255.0.0/30", "10.255.0.1", "10.255.0.2")
    assert str(h1.subnet) == "10.255.0.4/30"


def test_files_live_under_the_node_directory() -> None:
    files = LabPlan(topology()).files("t-1")
    assert files.dir == Path("/run/evpn-lab/t/t-1") and files.marker == "/run/evpn-lab/t/t-1/"
    assert [p.name for p in (files.gobgpd_config, files.gobgpd_socket, files.agent_config, files.agent_status, files.agent_state)] == [
        "gobgpd.toml", "gobgpd.sock", "agent.yaml", "agent.status.json", "agent.owned.json"]
    assert plan_module.state_file("t") == Path("/run/evpn-lab/t/state.json")
    assert plan_module.failed_dir("t") == Path("/run/evpn-lab/t.failed")


def test_host_networks_are_those_its_attached_vms_use() -> None:
    topo = parse_topology(two_networks())
    plan = LabPlan(topo)
    assert [n.name for n in plan.host_networks(topo.hosts[0])] == ["blue", "red"]
    assert [n.name for n in plan.host_networks(topo.hosts[2])] == ["blue"]
    bare = topo.with_vm("vm31", detached=True)
    assert [n.name for n in LabPlan(bare).host_networks(bare.hosts[2])] == ["blue"]  # a host keeps the first network


def test_agent_config_serves_the_hosts_networks() -> None:
    topo = parse_topology(two_networks())
    config = LabPlan(topo).agent_config(topo.hosts[0])
    assert config["vtep"] == "10.0.0.101" and config["gobgp_address"] == "127.0.0.1:50051"
    nets = {n.vni: str(n.subnet) for n in topo.networks}
    assert config["vnis"] == [{"vni": 100, "device": "vxlan100", "bridge": "br0", "route_targets": ["65000:100"], "subnets": [nets[100]]},
                              {"vni": 200, "device": "vxlan200", "bridge": "br1", "route_targets": ["65000:200"], "subnets": [nets[200]]}]
    assert config["metrics_address"] == "127.0.0.1:9470"


@pytest.mark.parametrize("which", ["host", "controller"])
def test_gobgpd_configs_hold_the_neighbours(which: str) -> None:
    topo = topology()
    plan = LabPlan(topo)
    conf = plan.gobgpd_host_config(topo.hosts[0]) if which == "host" else plan.gobgpd_controller_config()
    if which == "host":
        assert 'neighbor-address = "10.0.0.100"' in conf and "as = 65001" in conf
    else:
        assert conf.count("[[neighbors]]") == 3 and 'set-next-hop = "unchanged"' in conf
    assert "multihop-ttl = 4" in conf and "idle-hold-time-after-reset = 1" in conf
