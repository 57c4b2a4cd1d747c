"""Wiring a lab from its plan: namespaces, the underlay's /30s and routes, bridges, vxlan devices, VM ports.

Only links and addresses: the daemons are the node kinds' business (labctl/nodes/).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from . import netns, portsec
from .nodes import node_class
from .plan import UNDERLAY_MTU, UPLINK, VM_IFNAME, LabPlan
from .topology import Host, Network, Vm


def underlay(plan: LabPlan) -> None:
    """The router's namespace (forwarding on) and the controllers', linked to it."""
    netns.create(plan.router_ns)
    netns.sysctl(plan.router_ns, "net.ipv4.ip_forward", "1")
    for ctl in plan.topo.controllers:
        ns_name = plan.controller_namespace(ctl)
        netns.create(ns_name)
        uplink(plan, ns_name, ctl.address)


def uplink(plan: LabPlan, node_ns: str, loopback: ipaddress.IPv4Address) -> None:
    """The node's /30 to the router, its loopback (/32 on lo) and the routes both ways."""
    link = plan.uplink(node_ns)
    netns.veth(plan.router_ns, link.router_if, node_ns, UPLINK, mtu=UNDERLAY_MTU)
    netns.address(plan.router_ns, link.router_if, f"{link.router_ip}/30")
    netns.address(node_ns, UPLINK, f"{link.node_ip}/30")
    netns.address(node_ns, "lo", f"{loopback}/32")
    uplink_routes(plan, node_ns, loopback)


def uplink_routes(plan: LabPlan, node_ns: str, loopback: ipaddress.IPv4Address) -> None:
    """Default route of the node, route to its loopback on the router (idempotent: also after a link flap)."""
    link = plan.uplink(node_ns)
    netns.route(node_ns, "0.0.0.0/0", str(link.router_ip))
    netns.route(plan.router_ns, f"{loopback}/32", str(link.node_ip))


def host(plan: LabPlan, node: Host) -> None:
    """A hypervisor: namespace, uplink, a bridge and vxlan device per network it has, its VMs on their bridges."""
    netns.create(node.name)
    host_hardening(node.name)
    uplink(plan, node.name, node.vtep)
    for net in plan.host_networks(node):
        network_devices(node, net)
    for vp in plan.vm_plans(node):
        netns.create(vp.ns)
        # the VM's eth0 comes up only once its port is on the bridge: what the VM sends as it "boots" (IPv6
        # DAD, MLD) then always reaches the bridge, which learns its MAC (hosts built in parallel left
        # some VMs unknown: their first frames left before the port was enslaved)
        netns.veth(node.name, vp.port, vp.ns, VM_IFNAME, mac_b=vp.vm.mac, up_b=False)
        if not vp.vm.detached:
            netns.enslave(node.name, vp.port, vp.network.bridge)
        netns.address(vp.ns, VM_IFNAME, f"{vp.vm.ip}/{vp.network.subnet.prefixlen}")
        netns.set_link(vp.ns, VM_IFNAME, up=True)
    tenant_isolation(plan, node)


def host_hardening(node_ns: str) -> None:
    """Before any device exists: no IPv6 on the host's devices (a tenant bridge carries no host address,
    not even a link-local one), no forwarding, ARP answered only for addresses of the asking interface."""
    netns.sysctl(node_ns, "net.ipv6.conf.default.disable_ipv6", "1")
    netns.sysctl(node_ns, "net.ipv4.ip_forward", "0")
    netns.sysctl(node_ns, "net.ipv4.conf.all.arp_ignore", "1")
    if Path("/proc/sys/net/bridge").is_dir():  # br_netfilter loaded: bridged frames would cross the IP/ARP hooks
        for table in ("iptables", "ip6tables", "arptables"):
            netns.sysctl(node_ns, f"net.bridge.bridge-nf-call-{table}", "0")


def tenant_isolation(plan: LabPlan, node: Host) -> None:
    """The host's stack out of its VMs' reach, and port security on every VM port (labctl/portsec.py)."""
    own = [node.vtep, plan.uplink(node.name).node_ip, ipaddress.ip_network("127.0.0.0/8")]
    own += [ipaddress.ip_interface(plan.bridge_address(net)).ip for net in plan.topo.networks]
    ruleset = portsec.host_rules(own, learn_arp=node_class(node.kind).learns_neighbours_from_arp) + portsec.ports_base()
    ruleset += "".join(portsec.port_rules(vp.port, portsec.port_policy(vp.vm)) for vp in plan.vm_plans(node))
    portsec.load(node.name, ruleset)


def network_devices(node: Host, net: Network) -> None:
    """A network's bridge and vxlan device (local = the host's VTEP) on a hypervisor."""
    netns.bridge(node.name, net.bridge)
    netns.vxlan(node.name, net.vxlan_device, net.vni, str(node.vtep), net.bridge)


def remove_network_devices(node: Host, net: Network) -> None:
    netns.delete_link(node.name, net.vxlan_device)
    netns.delete_link(node.name, net.bridge)


def plug_vm(plan: LabPlan, node: Host, vm: Vm, net: Network) -> None:
    """A new port for an existing VM namespace on `node`, on `net`'s bridge, with the VM's address."""
    vm_ns, port = plan.vm_ns(vm), plan.vm_port(vm)
    portsec.load(node.name, portsec.port_rules(port, portsec.port_policy(vm)))  # before the port exists
    netns.veth(node.name, port, vm_ns, VM_IFNAME, mac_b=vm.mac)
    netns.enslave(node.name, port, net.bridge)
    netns.address(vm_ns, VM_IFNAME, f"{vm.ip}/{net.subnet.prefixlen}")


def unplug_vm(plan: LabPlan, node: Host, vm: Vm) -> None:
    """Delete the VM's port on `node` (its eth0 goes with it: the VM is paused)."""
    netns.delete_link(node.name, plan.vm_port(vm))


def readdress_vm(plan: LabPlan, node: Host, vm: Vm, net: Network, address: str) -> None:
    """Move the VM's port to `net`'s bridge and give the VM `address` there."""
    port, vm_ns = plan.vm_port(vm), plan.vm_ns(vm)
    netns.release(node.name, port)
    portsec.load(node.name, portsec.port_rules(port, portsec.port_policy(vm, ipaddress.IPv4Address(address))))
    netns.flush_addresses(vm_ns, VM_IFNAME)
    netns.address(vm_ns, VM_IFNAME, f"{address}/{net.subnet.prefixlen}")
    netns.enslave(node.name, port, net.bridge)


def release_vm(plan: LabPlan, node: Host, vm: Vm) -> None:
    """Take the VM's port off its bridge (the VM stays, unplugged)."""
    netns.release(node.name, plan.vm_port(vm))


def remove_host(plan: LabPlan, node: Host) -> None:
    """The hypervisor's namespaces (its VMs' too) and the router's end of its uplink."""
    for ns_name in reversed(plan.all_namespaces(node)):
        netns.remove(ns_name)
    netns.delete_link(plan.router_ns, plan.uplink(node.name).router_if)
