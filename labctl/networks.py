"""Attach a VM to a network and detach it, on a running lab: bridges and vxlan devices appear and go
with the networks a hypervisor has, and its node is told to serve them (the agent: config rewrite + SIGHUP)."""

from __future__ import annotations

import ipaddress

from . import build
from .errors import LabError
from .lab import Lab
from .topology import Host, Topology


def _refuse_unless_reconfigurable(lab: Lab, host: Host) -> None:
    refusal = lab.node(host).reconfigure_refusal()
    if refusal is not None:
        raise LabError(f"{host.name} {refusal}")


def _switch(lab: Lab, host_name: str, topo: Topology) -> None:
    """Adopt the edited topology: reconfigure the host's node, then remove devices of networks the host lost."""
    old_networks = lab.plan.host_networks(lab.host(host_name))
    lab.adopt(topo)
    host = lab.host(host_name)
    lab.node(host).reconfigure()
    for network in old_networks:
        if network not in lab.plan.host_networks(host):
            build.remove_network_devices(host, network)


def attach(lab: Lab, vm_name: str, network_name: str, ip: str | None = None) -> tuple[Host, str]:
    host, vm = lab.vm(vm_name)
    if host.name in lab.state.down_hosts:
        raise LabError(f"{host.name} is down")
    _refuse_unless_reconfigurable(lab, host)
    network = next((n for n in lab.topo.networks if n.name == network_name), None)
    if network is None:
        raise LabError(f"no network {network_name!r} (networks: {', '.join(n.name for n in lab.topo.networks)})")
    if not vm.detached and vm.network == network.name:
        raise LabError(f"{vm.name} is already attached to {network.name}")
    address = ip or str(vm.ip)
    try:
        if ipaddress.ip_address(address) not in network.subnet:
            raise LabError(f"{vm.name}'s address {address} is not in {network.name} ({network.subnet}): give --ip")
    except ValueError:
        raise LabError(f"{address!r} is not an IPv4 address") from None
    topo = lab.topo.with_vm(vm.name, network=network.name, ip=address, detached=False)
    lab.record("attach", vm=vm.name, mac=vm.mac, network=network.name, ip=address, host=host.name)
    if network not in lab.plan.host_networks(host):
        build.network_devices(host, network)
    build.readdress_vm(lab.plan, host, vm, network, address)
    _switch(lab, host.name, topo)
    return host, address


def detach(lab: Lab, vm_name: str) -> Host:
    host, vm = lab.vm(vm_name)
    _refuse_unless_reconfigurable(lab, host)
    if vm.detached:
        raise LabError(f"{vm.name} is already detached")
    topo = lab.topo.with_vm(vm.name, detached=True)
    lab.record("detach", vm=vm.name, mac=vm.mac, network=vm.network, host=host.name)
    build.release_vm(lab.plan, host, vm)
    _switch(lab, host.name, topo)
    return host
