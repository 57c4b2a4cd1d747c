"""The topology file: parsed and validated before anything is created."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import TopologyError
from .nodes import DEFAULT_KIND, KINDS
from .plan import (
    CONTROLLER_SUFFIX,
    ROUTER_SUFFIX,
    bridge_name,
    namespace_name,
    vxlan_name,
)

LAB_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
SUFFIX_RE = re.compile(r"^[a-z0-9]{1,11}$")
VM_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")
NET_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
MAX_VNI = 0xFFFFFF
RESERVED_SUFFIXES = (CONTROLLER_SUFFIX, ROUTER_SUFFIX)
HOST_KINDS = tuple(KINDS)


@dataclass(frozen=True)
class Network:
    name: str
    vni: int
    subnet: ipaddress.IPv4Network
    bridge: str
    route_targets: tuple[str, ...]

    @property
    def vxlan_device(self) -> str:
        return vxlan_name(self.vni)


@dataclass(frozen=True)
class Vm:
    name: str
    mac: str
    ip: ipaddress.IPv4Address
    network: str
    detached: bool = False  # unplugged from its network's bridge (labctl detach)


@dataclass(frozen=True)
class Host:
    name: str
    asn: int
    vtep: ipaddress.IPv4Address
    vms: tuple[Vm, ...]
    kind: str = DEFAULT_KIND  # a module of labctl.nodes: "gobgp" (gobgpd + evpn-agent), "frr" (zebra + bgpd)

    @property
    def attached(self) -> tuple[Vm, ...]:
        """The VMs plugged into a network (all but the detached ones)."""
        return tuple(vm for vm in self.vms if not vm.detached)


@dataclass(frozen=True)
class Controller:
    asn: int
    address: ipaddress.IPv4Address


@dataclass(frozen=True)
class Timers:
    hold_time: int
    keepalive: int
    connect_retry: int


@dataclass(frozen=True)
class Topology:
    lab: str
    timers: Timers
    links: ipaddress.IPv4Network
    controller: Controller
    networks: tuple[Network, ...]
    hosts: tuple[Host, ...]

    def network(self, name: str) -> Network:
        return next(n for n in self.networks if n.name == name)

    def host(self, name: str) -> Host | None:
        return next((h for h in self.hosts if h.name == name), None)

    def vms(self, attached_only: bool = True) -> list[tuple[Host, Vm]]:
        return [(h, vm) for h in self.hosts for vm in (h.attached if attached_only else h.vms)]

    def locate_vm(self, name: str) -> tuple[Host, Vm] | None:
        """The VM called `name` (or `<lab>-name`) and the host it is on."""
        short = name.removeprefix(namespace_name(self.lab, ""))
        return next(((h, vm) for h, vm in self.vms(attached_only=False) if vm.name == short), None)

    # -- editing: every change returns a new, validated topology ---------------------------

    def with_vm(self, name: str, *, network: str | None = None, ip: str | None = None,
                detached: bool | None = None) -> "Topology":
        """This topology with VM `name` plugged into another network, given another address, or (un)plugged."""
        def edit(vm: Vm) -> Vm:
            return replace(vm, network=network if network is not None else vm.network,
                           ip=ipaddress.IPv4Address(ip) if ip is not None else vm.ip,
                           detached=detached if detached is not None else vm.detached)

        hosts = tuple(replace(h, vms=tuple(edit(vm) if vm.name == name else vm for vm in h.vms)) for h in self.hosts)
        return replace(self, hosts=hosts).validated()

    def with_vm_moved(self, name: str, target: str) -> "Topology":
        """This topology with VM `name` moved to the end of host `target`'s VMs."""
        found = self.locate_vm(name)
        if found is None:
            raise TopologyError(f"no VM {name!r} in lab {self.lab}")
        _, moving = found
        hosts = []
        for h in self.hosts:
            vms = tuple(vm for vm in h.vms if vm.name != moving.name)
            hosts.append(replace(h, vms=vms + (moving,) if h.name == target else vms))
        return replace(self, hosts=tuple(hosts)).validated()

    def hosts_added_by(self, new: "Topology") -> tuple[Host, ...]:
        """The hosts `new` adds to this topology; TopologyError if it changes anything else."""
        if new.lab != self.lab:
            raise TopologyError(f"topology is for lab {new.lab!r}, the running lab is {self.lab!r}")
        if (new.controller, new.networks, new.timers, new.links) != (self.controller, self.networks, self.timers, self.links):
            raise TopologyError("apply can only add hosts: controller, networks, bgp and underlay must stay the same")
        if new.hosts[: len(self.hosts)] != self.hosts:
            raise TopologyError("apply can only add hosts: the existing hosts must be listed first, unchanged")
        return new.hosts[len(self.hosts):]

    def validated(self) -> "Topology":
        """Run the file's validation on this (edited) topology: itself, or TopologyError naming the field."""
        try:
            return parse_topology(self.to_document(), "edit")
        except TopologyError as exc:
            raise TopologyError(str(exc).split(": ", 1)[-1]) from None

    def to_document(self) -> dict[str, Any]:
        """The topology as a YAML-equivalent document, every default spelled out (parses back to an equal Topology)."""
        return {
            "lab": self.lab,
            "bgp": {"hold_time": self.timers.hold_time, "keepalive": self.timers.keepalive, "connect_retry": self.timers.connect_retry},
            "underlay": {"links": str(self.links)},
            "controller": {"asn": self.controller.asn, "address": str(self.controller.address)},
            "networks": [{"name": n.name, "vni": n.vni, "subnet": str(n.subnet), "bridge": n.bridge, "route_targets": list(n.route_targets)}
                         for n in self.networks],
            "hosts": [{"name": h.name, "kind": h.kind, "asn": h.asn, "vtep": str(h.vtep),
                       "vms": [{"name": vm.name, "mac": vm.mac, "ip": str(vm.ip), "network": vm.network, "detached": vm.detached} for vm in h.vms]}
                      for h in self.hosts],
        }


class _Reader:
    """Field access that names the path of every problem (``hosts[1].vtep``)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> TopologyError:
        return TopologyError(f"{self.source}: {where}: {problem}")

    def mapping(self, value: Any, where: str, required: set[str], optional: set[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}")
        for key in value:
            if key not in required | optional:
                allowed = ", ".join(sorted(required | optional))
                raise self.fail(f"{where}.{key}" if where else str(key), f"unknown key (allowed: {allowed})")
        for key in sorted(required):
            if value.get(key) is None:
                raise self.fail(f"{where}.{key}" if where else key, "missing")
        return value

    def integer(self, value: Any, where: str, low: int, high: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.fail(where, f"{value!r} must be an integer in {low}..{high}")
        return value

    def name(self, value: Any, where: str, pattern: re.Pattern[str], hint: str) -> str:
        if not isinstance(value, str) or not pattern.match(value):
            raise self.fail(where, f"{value!r} is not a valid name ({hint})")
        return value

    def ipv4(self, value: Any, where: str) -> ipaddress.IPv4Address:
        try:
            return ipaddress.IPv4Address(str(value).split("/")[0] if isinstance(value, str) else value)
        except (ipaddress.AddressValueError, ValueError):
            raise self.fail(where, f"{value!r} is not an IPv4 address") from None

    def network(self, value: Any, where: str) -> ipaddress.IPv4Network:
        try:
            return ipaddress.IPv4Network(str(value), strict=True)
        except ValueError as exc:
            raise self.fail(where, f"{value!r} is not an IPv4 network ({exc})") from None

    def items(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list) or not value:
            raise self.fail(where, "expected a non-empty list")
        return value


def parse_topology(data: Any, source: str = "topology") -> Topology:
    """Validate a loaded YAML document; raise TopologyError naming the first problem found."""
    r = _Reader(source)
    top = r.mapping(data, "", {"lab", "controller", "networks", "hosts"}, {"bgp", "underlay"})
    lab = r.name(top["lab"], "lab", LAB_NAME_RE, "1-8 of a-z 0-9, starting with a letter, no '-'")
    bgp = r.mapping(top.get("bgp") or {}, "bgp", set(), {"hold_time", "keepalive", "connect_retry"})
    hold = r.integer(bgp.get("hold_time", 3), "bgp.hold_time", 3, 65535)
    keepalive = r.integer(bgp.get("keepalive", 1), "bgp.keepalive", 1, 21845)
    if keepalive * 3 > hold:
        raise r.fail("bgp.keepalive", f"{keepalive}s is more than a third of hold_time {hold}s")
    timers = Timers(hold, keepalive, r.integer(bgp.get("connect_retry", 1), "bgp.connect_retry", 1, 120))
    underlay = r.mapping(top.get("underlay") or {}, "underlay", set(), {"links"})
    links = r.network(underlay.get("links", "10.255.0.0/16"), "underlay.links")
    ctl = r.mapping(top["controller"], "controller", {"asn", "address"}, set())
    controller = Controller(r.integer(ctl["asn"], "controller.asn", 1, 4294967294), r.ipv4(ctl["address"], "controller.address"))

    networks: list[Network] = []
    for i, raw in enumerate(r.items(top["networks"], "networks")):
        where = f"networks[{i}]"
        net = r.mapping(raw, where, {"name", "vni", "subnet"}, {"route_targets", "bridge"})
        name = r.name(net["name"], f"{where}.name", NET_NAME_RE, "1-16 of a-z 0-9 _, starting with a letter")
        vni = r.integer(net["vni"], f"{where}.vni", 1, MAX_VNI)
        subnet = r.network(net["subnet"], f"{where}.subnet")
        if subnet.prefixlen > 29:
            raise r.fail(f"{where}.subnet", f"{subnet} is too small for VMs (at most /29)")
        rts = net.get("route_targets") or [f"{controller.asn}:{vni}"]
        if not isinstance(rts, list) or not all(isinstance(x, str) and re.match(r"^\d+:\d+$", x) for x in rts):
            raise r.fail(f"{where}.route_targets", f"{rts!r} must be a list like ['65000:{vni}']")
        bridge = r.name(net.get("bridge", bridge_name(i)), f"{where}.bridge", re.compile(r"^[a-z][a-z0-9]{0,7}$"), "1-8 of a-z 0-9")
        for other in networks:
            if other.name == name:
                raise r.fail(f"{where}.name", f"duplicate network name {name!r}")
            if other.vni == vni:
                raise r.fail(f"{where}.vni", f"VNI {vni} already used by network {other.name!r}")
            if other.subnet.overlaps(subnet):
                raise r.fail(f"{where}.subnet", f"{subnet} overlaps network {other.name!r} ({other.subnet})")
            if other.bridge == bridge:
                raise r.fail(f"{where}.bridge", f"bridge {bridge!r} already used by network {other.name!r}")
        if subnet.overlaps(links):
            raise r.fail(f"{where}.subnet", f"{subnet} overlaps underlay.links {links}")
        networks.append(Network(name, vni, subnet, bridge, tuple(rts)))

    hosts: list[Host] = []
    seen_vms: dict[str, str] = {}
    seen_macs: dict[str, str] = {}
    seen_ips: dict[ipaddress.IPv4Address, str] = {}
    underlay_ips = {controller.address: "controller.address"}
    for i, raw in enumerate(r.items(top["hosts"], "hosts")):
        where = f"hosts[{i}]"
        h = r.mapping(raw, where, {"name", "asn", "vtep"}, {"vms", "kind"})
        kind = h.get("kind", DEFAULT_KIND)
        if kind not in HOST_KINDS:
            raise r.fail(f"{where}.kind", f"{kind!r} must be one of {', '.join(HOST_KINDS)}")
        name = h["name"]
        if not isinstance(name, str) or not name.startswith(f"{lab}-") or not SUFFIX_RE.match(name[len(lab) + 1:]):
            raise r.fail(f"{where}.name", f"{name!r} must be '{lab}-' followed by 1-11 of a-z 0-9 (e.g. {lab}-{i + 1})")
        if name[len(lab) + 1:] in RESERVED_SUFFIXES:
            raise r.fail(f"{where}.name", f"{name!r} is reserved for the lab's own nodes")
        asn = r.integer(h["asn"], f"{where}.asn", 1, 4294967294)
        vtep = r.ipv4(h["vtep"], f"{where}.vtep")
        for other in hosts:
            if other.name == name:
                raise r.fail(f"{where}.name", f"duplicate host name {name!r}")
            if other.asn == asn:
                raise r.fail(f"{where}.asn", f"AS {asn} already used by host {other.name!r} (each hypervisor has its own AS)")
        if asn == controller.asn:
            raise r.fail(f"{where}.asn", f"AS {asn} is the controller's AS")
        if vtep in underlay_ips:
            raise r.fail(f"{where}.vtep", f"{vtep} already used by {underlay_ips[vtep]}")
        if vtep in links or not vtep.is_private or vtep.is_loopback or vtep.is_multicast or vtep.is_unspecified:
            raise r.fail(f"{where}.vtep", f"{vtep} must be a private unicast address outside underlay.links {links}")
        for net in networks:
            if vtep in net.subnet:
                raise r.fail(f"{where}.vtep", f"{vtep} is inside network {net.name!r} ({net.subnet})")
        underlay_ips[vtep] = f"{where}.vtep"
        vms: list[Vm] = []
        raw_vms = h.get("vms") or []
        if not isinstance(raw_vms, list):
            raise r.fail(f"{where}.vms", "expected a list")
        for j, raw_vm in enumerate(raw_vms):
            vw = f"{where}.vms[{j}]"
            v = r.mapping(raw_vm, vw, {"name", "mac", "ip"}, {"network", "detached"})
            detached = v.get("detached", False)
            if not isinstance(detached, bool):
                raise r.fail(f"{vw}.detached", f"{detached!r} must be true or false")
            vm_name = r.name(v["name"], f"{vw}.name", VM_NAME_RE, "1-10 of a-z 0-9, starting with a letter")
            if vm_name in seen_vms:
                raise r.fail(f"{vw}.name", f"duplicate VM name {vm_name!r} (also on {seen_vms[vm_name]})")
            if namespace_name(lab, vm_name) in {hh.name for hh in hosts} | {name} | {namespace_name(lab, s) for s in RESERVED_SUFFIXES}:
                raise r.fail(f"{vw}.name", f"{vm_name!r} clashes with a node name")
            mac = str(v["mac"]).lower()
            if not MAC_RE.match(mac):
                raise r.fail(f"{vw}.mac", f"{v['mac']!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
            if int(mac[:2], 16) & 1 or mac == "00:00:00:00:00:00":
                raise r.fail(f"{vw}.mac", f"{mac} is not a unicast MAC")
            if mac in seen_macs:
                raise r.fail(f"{vw}.mac", f"{mac} already used by VM {seen_macs[mac]!r}")
            if v.get("network") is None and len(networks) > 1:
                raise r.fail(f"{vw}.network", "missing (the topology has several networks)")
            net_name = v.get("network", networks[0].name)
            net = next((n for n in networks if n.name == net_name), None)
            if net is None:
                raise r.fail(f"{vw}.network", f"{net_name!r} is not a network of this topology")
            ip = r.ipv4(v["ip"], f"{vw}.ip")
            if ip not in net.subnet or ip in (net.subnet.network_address, net.subnet.broadcast_address):
                raise r.fail(f"{vw}.ip", f"{ip} is not a host address of network {net.name!r} ({net.subnet})")
            if ip in seen_ips:
                raise r.fail(f"{vw}.ip", f"{ip} already used by VM {seen_ips[ip]!r}")
            seen_vms[vm_name] = name
            seen_macs[mac] = vm_name
            seen_ips[ip] = vm_name
            vms.append(Vm(vm_name, mac, ip, net.name, detached))
        hosts.append(Host(name, asn, vtep, tuple(vms), kind))
    if controller.address in links or any(controller.address in n.subnet for n in networks):
        raise r.fail("controller.address", f"{controller.address} must be outside underlay.links and the networks")
    if links.prefixlen > 30 or 2 ** (30 - links.prefixlen) < len(hosts) + 1:
        raise r.fail("underlay.links", f"{links} has too few /30 links for the controller and {len(hosts)} hosts")
    return Topology(lab, timers, links, controller, tuple(networks), tuple(hosts))


def load_topology(path: Path) -> Topology:
    try:
        text = path.read_text()
    except OSError as exc:
        raise TopologyError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "document"
        raise TopologyError(f"{path}: {where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return parse_topology(data, str(path))
