"""Attach a VM to a network and detach it, on a running lab: bridges and vxlan devices appear and go
with the networks a hypervisor has, and its agent is told to serve them (config rewrite + SIGHUP)."""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import signal
from typing import Any

from . import daemons, netns
from .errors import LabError, TopologyError
from .lab import Lab, wait_until
from .migrate import find_vm
from .plan import LabPlan
from .topology import Host, Network, Topology, parse_topology


def _edit_vm(lab: Lab, vm_name: str, **changes: Any) -> tuple[dict[str, Any], Topology]:
    document = copy.deepcopy(lab.state.topology)
    for host in document["hosts"]:  # type: ignore[union-attr]
        for vm in host.get("vms") or []:
            if vm["name"] == vm_name:
                vm.update(changes)
    try:
        return document, parse_topology(document, lab.state.source)  # type: ignore[arg-type]
    except TopologyError as exc:
        raise LabError(str(exc).split(": ", 1)[-1]) from None


def reconfigure_agent(lab: Lab, host: Host) -> None:
    """Rewrite the host's agent config from the plan, SIGHUP the agent, wait until it serves those VNIs."""
    node_dir = lab.plan.node_dir(host.name)
    config = lab.plan.agent_config(host)
    (node_dir / "agent.yaml").write_text(json.dumps(config, indent=1))
    pid = lab.state.pids.get(host.name, {}).get("agent")
    if not pid or not daemons.alive(pid, lab.marker(host.name)):
        raise LabError(f"the agent on {host.name} is not running")
    os.kill(pid, signal.SIGHUP)
    want = {str(v["vni"]) for v in config["vnis"]}  # type: ignore[union-attr, index]

    def serving() -> bool:
        status = lab.agent_status(host)
        return set(status.get("remote_vteps", {}) or {}) == want and bool(status.get("ready")) and not status.get("stale_pending")

    wait_until(f"the agent on {host.name} to serve VNIs {','.join(sorted(want))}", serving, 60)


def _ensure_devices(lab: Lab, host: Host, network: Network) -> None:
    if network not in lab.plan.host_networks(host):
        netns.bridge(host.name, network.bridge)
        netns.vxlan(host.name, network.vxlan_device, network.vni, str(host.vtep), network.bridge)


def _switch(lab: Lab, host_name: str, document: dict[str, Any], topo: Topology) -> None:
    """Adopt the edited topology: reconfigure the agent, then remove devices of networks the host lost."""
    old_networks = lab.plan.host_networks(lab._host(host_name))
    lab.topo, lab.plan = topo, LabPlan(topo)
    lab.state.topology = document
    lab.state.save()
    host = lab._host(host_name)
    reconfigure_agent(lab, host)
    for network in old_networks:
        if network not in lab.plan.host_networks(host):
            netns.delete_link(host.name, network.vxlan_device)
            netns.delete_link(host.name, network.bridge)


def attach(lab: Lab, vm_name: str, network_name: str, ip: str | None = None) -> tuple[Host, str]:
    host, vm = find_vm(lab, vm_name)
    if host.name in lab.state.down_hosts:
        raise LabError(f"{host.name} is down")
    if host.is_frr:
        raise LabError(f"{host.name} runs FRR: attach/detach reconfigure our agent only")
    network = next((n for n in lab.topo.networks if n.name == network_name), None)
    if network is None:
        raise LabError(f"no network {network_name!r} (networks: {', '.join(n.name for n in lab.topo.networks)})")
    if not vm.detached and vm.network == network.name:
        raise LabError(f"{vm.name} is already attached to {network.name}")
    address = ip or str(vm.ip)
    if ipaddress.ip_address(address) not in network.subnet:
        raise LabError(f"{vm.name}'s address {address} is not in {network.name} ({network.subnet}): give --ip")
    document, topo = _edit_vm(lab, vm.name, network=network.name, ip=address, detached=False)
    _ensure_devices(lab, host, network)
    port, vm_ns = f"p-{vm.name}", lab.plan.vm_ns(vm)
    netns.release(host.name, port)
    netns.flush_addresses(vm_ns, "eth0")
    netns.address(vm_ns, "eth0", f"{address}/{network.subnet.prefixlen}")
    netns.enslave(host.name, port, network.bridge)
    _switch(lab, host.name, document, topo)
    return host, address


def detach(lab: Lab, vm_name: str) -> Host:
    host, vm = find_vm(lab, vm_name)
    if host.is_frr:
        raise LabError(f"{host.name} runs FRR: attach/detach reconfigure our agent only")
    if vm.detached:
        raise LabError(f"{vm.name} is already detached")
    document, topo = _edit_vm(lab, vm.name, detached=True)
    netns.release(host.name, f"p-{vm.name}")
    _switch(lab, host.name, document, topo)
    return host
