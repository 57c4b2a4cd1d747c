"""Everything a lab is made of, derived from its topology: names, addresses, files, BGP neighbours, configs.

Pure: no side effects, so what `up` will build can be tested without root.

The naming scheme, stated once (nothing else in labctl builds one of these names):

    namespaces   <lab>-underlay (the router), <lab>-<controller name> per controller (<lab>-controller,
                 and e.g. <lab>-controller2), each hypervisor (its topology name, <lab>-<suffix>),
                 <lab>-<vm> per VM
    interfaces   uplink: a node's end of its /30 to the router; r-<suffix>: the router's end of it
                 (suffixes and controller names are at most 11 characters: r-<suffix> fits IFNAMSIZ);
                 p-<vm>: a VM's port on its hypervisor's bridge; eth0: the VM's end of that port
    devices      br<i>: the bridge of the i-th network (unless the topology names it); vxlan<VNI>
    files        /run/evpn-lab/<lab>/state.json: what the lab is made of (state.py)
                 /run/evpn-lab/<lab>/actions.jsonl: labctl's actions on the lab (actionlog.py; labctl events)
                 /run/evpn-lab/<lab>/<node>/: gobgpd.toml, gobgpd.sock, gobgpd.log, agent.yaml,
                 agent.log, agent.status.json, agent.owned.json, <role>.supervisor.json (restarts),
                 frr/ (FRR's configs, sockets, logs; an FRR controller's too), netem.json and netem.log
                 (the uplink's userspace delay line, labctl/netem.py)
                 /run/evpn-lab/<lab>.failed/: the logs of an `up` that rolled back

The topology module asks this one for its default bridge names and for the names a topology may not
take; this module imports the topology's types for annotations only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .bgp import Neighbor

if TYPE_CHECKING:
    from .topology import Controller, Host, Network, Topology, Vm

AGENT_METRICS = "127.0.0.1:9470"  # each agent's Prometheus endpoint, on its own namespace's loopback
GOBGP_API = "127.0.0.1:50051"  # inside each namespace: its own loopback
UPLINK = "uplink"
VM_IFNAME = "eth0"
UNDERLAY_MTU = 9000  # a fabric with jumbo frames: VMs keep 1500 under VXLAN's 50 bytes
RUN_ROOT = Path("/run/evpn-lab")
EBGP_TTL = 4  # sessions run between loopbacks (VTEP <-> controller), two routed hops apart
IDLE_HOLD_AFTER_RESET = 1  # seconds before gobgpd reconnects after a session reset
ROUTER_SUFFIX = "underlay"
CONTROLLER_SUFFIX = "controller"


# -- the naming scheme (see the module docstring) ------------------------------------------


def bridge_name(index: int) -> str:
    """The default bridge of the network at position `index` of the topology."""
    return f"br{index}"


def vxlan_name(vni: int) -> str:
    return f"vxlan{vni}"


def vm_port_name(vm_name: str) -> str:
    return f"p-{vm_name}"


def router_if_name(suffix: str) -> str:
    return f"r-{suffix}"


def namespace_name(lab: str, suffix: str) -> str:
    """Every namespace of lab `lab` is `<lab>-<suffix>`: nodes, hypervisors and VMs alike."""
    return f"{lab}-{suffix}"


def lab_dir(lab: str) -> Path:
    return RUN_ROOT / lab


def state_file(lab: str) -> Path:
    return lab_dir(lab) / "state.json"


def failed_dir(lab: str) -> Path:
    return RUN_ROOT / f"{lab}.failed"


@dataclass(frozen=True)
class NodeFiles:
    """The files of one node under its run directory."""

    dir: Path

    @property
    def marker(self) -> str:
        """What every command line of this node's daemons contains (guards against recycled PIDs)."""
        return f"{self.dir}/"

    @property
    def gobgpd_config(self) -> Path:
        return self.dir / "gobgpd.toml"

    @property
    def gobgpd_socket(self) -> Path:
        return self.dir / "gobgpd.sock"

    @property
    def gobgpd_log(self) -> Path:
        return self.dir / "gobgpd.log"

    @property
    def agent_config(self) -> Path:
        return self.dir / "agent.yaml"

    @property
    def agent_log(self) -> Path:
        return self.dir / "agent.log"

    @property
    def agent_status(self) -> Path:
        return self.dir / "agent.status.json"

    @property
    def agent_state(self) -> Path:
        return self.dir / "agent.owned.json"

    @property
    def frr_dir(self) -> Path:
        return self.dir / "frr"

    @property
    def netem_config(self) -> Path:
        return self.dir / "netem.json"

    @property
    def netem_log(self) -> Path:
        return self.dir / "netem.log"

    def supervisor_status(self, role: str) -> Path:
        """The JSON status of the supervisor running daemon `role` (gobgpd, agent, zebra, bgpd, keeper)."""
        return self.dir / f"{role}.supervisor.json"


# -- what a lab is made of -----------------------------------------------------------------


@dataclass(frozen=True)
class Uplink:
    """A /30 between the underlay router (``router_if``) and a node (``uplink``)."""

    node_ns: str
    router_if: str
    subnet: ipaddress.IPv4Network

    @property
    def router_ip(self) -> ipaddress.IPv4Address:
        return self.subnet.network_address + 1

    @property
    def node_ip(self) -> ipaddress.IPv4Address:
        return self.subnet.network_address + 2


@dataclass(frozen=True)
class VmPlan:
    vm: Vm
    host: str
    ns: str
    port: str  # the veth end on the hypervisor's bridge
    network: Network


class LabPlan:
    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.lab = topo.lab
        self.prefix = namespace_name(topo.lab, "")
        self.router_ns = namespace_name(topo.lab, ROUTER_SUFFIX)
        self.controller_nses = [namespace_name(topo.lab, c.name) for c in topo.controllers]
        self.controller_ns = self.controller_nses[0]  # the first controller's
        self.run_dir = lab_dir(topo.lab)

    # -- names and addresses ---------------------------------------------------

    def uplink(self, node_ns: str) -> Uplink:
        order = self.controller_nses + [h.name for h in self.topo.hosts]
        index = order.index(node_ns)
        subnet = ipaddress.IPv4Network((int(self.topo.links.network_address) + 4 * index, 30))
        return Uplink(node_ns, router_if_name(node_ns[len(self.prefix):]), subnet)

    def controller_of(self, node: str) -> Controller | None:
        """The controller whose namespace (or name) is `node`, None if it is no controller."""
        for ns_name, ctl in zip(self.controller_nses, self.topo.controllers):
            if node in (ns_name, ctl.name):
                return ctl
        return None

    def controller_namespace(self, ctl: Controller) -> str:
        return namespace_name(self.lab, ctl.name)

    def vm_ns(self, vm: Vm) -> str:
        return namespace_name(self.lab, vm.name)

    def vm_port(self, vm: Vm) -> str:
        return vm_port_name(vm.name)

    def vm_plans(self, host: Host) -> list[VmPlan]:
        return [VmPlan(vm, host.name, self.vm_ns(vm), self.vm_port(vm), self.topo.network(vm.network)) for vm in host.vms]

    def host_networks(self, host: Host) -> list[Network]:
        """Networks present on a host: those its VMs use (a host with no VM of a network gets no flooding of it)."""
        used = {vm.network for vm in host.attached}
        return [n for n in self.topo.networks if n.name in used] or list(self.topo.networks[:1])

    def bridge_address(self, network: Network) -> str:
        """An address for a bridge that needs one (FRR learns VM addresses from its SVI): the subnet's last host."""
        return f"{network.subnet.broadcast_address - 1}/{network.subnet.prefixlen}"

    def node_dir(self, node: str) -> Path:
        return self.run_dir / node

    @property
    def action_log(self) -> Path:
        return self.run_dir / "actions.jsonl"

    def files(self, node: str) -> NodeFiles:
        return NodeFiles(self.node_dir(node))

    def all_namespaces(self, host: Host | None = None) -> list[str]:
        if host is not None:
            return [host.name] + [self.vm_ns(vm) for vm in host.vms]
        names = [self.router_ns, *self.controller_nses]
        for h in self.topo.hosts:
            names += self.all_namespaces(h)
        return names

    # -- BGP ---------------------------------------------------------------------

    def host_neighbors(self, host: Host) -> list[Neighbor]:
        """The hypervisor's sessions: one to each controller."""
        return [Neighbor(c.address, c.asn, host.vtep, self.topo.timers, EBGP_TTL, IDLE_HOLD_AFTER_RESET) for c in self.topo.controllers]

    def controller_neighbor(self, host: Host, ctl: Controller | None = None) -> Neighbor:
        """A controller's (default: the first's) session to one hypervisor."""
        # passive: only the hypervisors connect. Two active sides (gobgpd 3.36 retries after 1-2 s) keep
        # closing each other's attempts during their idle-hold time and can lock each other out for minutes.
        ctl = ctl or self.topo.controller
        return Neighbor(host.vtep, host.asn, ctl.address, self.topo.timers, EBGP_TTL, IDLE_HOLD_AFTER_RESET, passive=True)

    # -- daemon configs ----------------------------------------------------------

    def gobgpd_host_config(self, host: Host) -> str:
        return f"""# gobgpd on hypervisor {host.name}, generated by labctl
[global.config]
  as = {host.asn}
  router-id = "{host.vtep}"
  port = 179
  local-address-list = ["{host.vtep}"]
{"".join(n.gobgpd_toml() for n in self.host_neighbors(host))}"""

    def gobgpd_controller_config(self, ctl: Controller | None = None) -> str:
        ctl = ctl or self.topo.controller
        neighbors = "".join(self.controller_neighbor(h, ctl).gobgpd_toml() for h in self.topo.hosts)
        return f"""# gobgpd on controller {ctl.name} (eBGP hub), generated by labctl.
# The hub passes EVPN routes on with their next hop (the VTEP) unchanged.
[global.config]
  as = {ctl.asn}
  router-id = "{ctl.address}"
  port = 179
  local-address-list = ["{ctl.address}"]
[global.apply-policy.config]
  export-policy-list = ["keep-vtep-next-hop"]
  default-export-policy = "accept-route"

[[policy-definitions]]
  name = "keep-vtep-next-hop"
  [[policy-definitions.statements]]
    name = "next-hop-unchanged"
    [policy-definitions.statements.actions]
      route-disposition = "accept-route"
      [policy-definitions.statements.actions.bgp-actions]
        set-next-hop = "unchanged"
{neighbors}"""

    def agent_config(self, host: Host) -> dict[str, object]:
        files = self.files(host.name)
        return {
            "name": f"evpn-agent@{host.name}",
            "gobgp_address": GOBGP_API,
            "vtep": str(host.vtep),
            "status_file": str(files.agent_status),
            "state_file": str(files.agent_state),
            "metrics_address": AGENT_METRICS,
            "vnis": [
                {
                    "vni": net.vni,
                    "device": net.vxlan_device,
                    "bridge": net.bridge,
                    "route_targets": list(net.route_targets),
                    "subnets": [str(net.subnet)],
                }
                for net in self.host_networks(host)
            ],
        }
