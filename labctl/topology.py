"""The topology file: parsed and validated before anything is created."""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from agent.routes import RouteError, RouteTarget

from .errors import TopologyError
from .nodes import DEFAULT_KIND, KINDS
from .scale import MAX_VMS_PER_HOST, SCALE_KEYS, Scale
from .scale import document as scale_document
from .plan import CONTROLLER_SUFFIX, ROUTER_SUFFIX, UPLINK, bridge_name, namespace_name, vxlan_name

RESERVED_DEVICE_RE = re.compile(rf"^(lo|{UPLINK}|vxlan\d+)\Z")  # interfaces a hypervisor already has or gets

LAB_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}\Z")
LAB_NAME_HINT = "1-8 of a-z 0-9, starting with a letter, no '-'"
SUFFIX_RE = re.compile(r"^[a-z0-9]{1,11}\Z")
VM_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}\Z")
NET_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}\Z")
BRIDGE_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}\Z")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")
RT_RE = re.compile(r"^\d{1,10}:\d{1,10}\Z")
# The lab's route distinguishers are <VTEP>:<VNI> (type 1, as the agent's and FRR's defaults): a 16-bit number
MAX_VNI = 0xFFFF
# Sane sizes for a lab on one machine: each hypervisor runs two daemons (about 100 MB), each VM is a namespace
MAX_HOSTS = 64
MAX_VMS = 512
MAX_NETWORKS = 64
MAX_FILE_BYTES = 256 * 1024
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
class AddressPair:
    """An address (or prefix) a VM may use besides its own, optionally with another MAC (OpenStack's allowed-address-pairs)."""

    ip: ipaddress.IPv4Network | ipaddress.IPv6Network
    mac: str | None = None  # None: the VM's own MAC


@dataclass(frozen=True)
class Vm:
    name: str
    mac: str
    ip: ipaddress.IPv4Address
    network: str
    detached: bool = False  # unplugged from its network's bridge (labctl detach)
    port_security: bool = True  # its port admits only its own MAC and addresses (labctl/portsec.py)
    allowed_address_pairs: tuple[AddressPair, ...] = ()


@dataclass(frozen=True)
class Netem:
    """Link impairment on a hypervisor's uplink, outgoing (tc netem): one-way, so a ping between two hosts
    impaired alike sees twice the delay."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0

    def describe(self) -> str:
        parts = [f"delay {self.delay_ms:g} ms"] + ([f"jitter {self.jitter_ms:g} ms"] if self.jitter_ms else [])
        return ", ".join(parts + [f"loss {self.loss_pct:g}%"])

    def to_document(self) -> dict[str, float]:
        return {"delay_ms": self.delay_ms, "jitter_ms": self.jitter_ms, "loss_pct": self.loss_pct}


MAX_NETEM_DELAY_MS = 10_000.0


@dataclass(frozen=True)
class Host:
    name: str
    asn: int
    vtep: ipaddress.IPv4Address
    vms: tuple[Vm, ...]
    kind: str = DEFAULT_KIND  # a module of labctl.nodes: "gobgp" (gobgpd + evpn-agent), "frr" (zebra + bgpd)
    netem: Netem | None = None  # impairment of its uplink (labctl netem); None: a clean link

    @property
    def attached(self) -> tuple[Vm, ...]:
        """The VMs plugged into a network (all but the detached ones)."""
        return tuple(vm for vm in self.vms if not vm.detached)


CONTROLLER_KINDS = ("gobgpd", "frr")
MAX_CONTROLLERS = 2
CONTROLLER_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,10}\Z")  # r-<name> on the router stays within IFNAMSIZ
DEFAULT_CONTROLLER_NAMES = (CONTROLLER_SUFFIX, f"{CONTROLLER_SUFFIX}2")


@dataclass(frozen=True)
class Controller:
    """An eBGP hub every hypervisor peers with: gobgpd, or FRR's bgpd (interop). A lab has one or two,
    in one AS (see `parse_topology`)."""

    asn: int
    address: ipaddress.IPv4Address
    name: str = CONTROLLER_SUFFIX  # its namespace is <lab>-<name>
    kind: str = "gobgpd"


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
    controllers: tuple[Controller, ...]
    networks: tuple[Network, ...]
    hosts: tuple[Host, ...]

    @property
    def controller(self) -> Controller:
        """The first controller (its AS makes the default route targets)."""
        return self.controllers[0]

    def controller_named(self, name: str) -> Controller | None:
        return next((c for c in self.controllers if c.name == name), None)

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

    def with_netem(self, host: str, netem: Netem | None) -> "Topology":
        """This topology with host `host`'s uplink impaired by `netem` (None: clean)."""
        if self.host(host) is None:
            raise TopologyError(f"{host!r} is not a hypervisor of lab {self.lab} ({', '.join(h.name for h in self.hosts)})")
        hosts = tuple(replace(h, netem=netem) if h.name == host else h for h in self.hosts)
        return replace(self, hosts=hosts).validated()

    def hosts_added_by(self, new: "Topology") -> tuple[Host, ...]:
        """The hosts `new` adds to this topology; TopologyError if it changes anything else."""
        if new.lab != self.lab:
            raise TopologyError(f"topology is for lab {new.lab!r}, the running lab is {self.lab!r}")
        if (new.controllers, new.networks, new.timers, new.links) != (self.controllers, self.networks, self.timers, self.links):
            raise TopologyError("apply can only add hosts: controller, networks, bgp and underlay must stay the same")
        unimpaired = [replace(h, netem=None) for h in new.hosts[: len(self.hosts)]]  # apply may change a host's netem
        if unimpaired != [replace(h, netem=None) for h in self.hosts]:
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
            **self._controllers_document(),
            "networks": [{"name": n.name, "vni": n.vni, "subnet": str(n.subnet), "bridge": n.bridge, "route_targets": list(n.route_targets)}
                         for n in self.networks],
            "hosts": [{"name": h.name, "kind": h.kind, "asn": h.asn, "vtep": str(h.vtep),
                       "vms": [{"name": vm.name, "mac": vm.mac, "ip": str(vm.ip), "network": vm.network, "detached": vm.detached,
                                "port_security": vm.port_security,
                                "allowed_address_pairs": [{"ip": str(p.ip), **({"mac": p.mac} if p.mac else {})}
                                                          for p in vm.allowed_address_pairs]} for vm in h.vms],
                       **({"netem": h.netem.to_document()} if h.netem else {})}
                      for h in self.hosts],
        }

    def _controllers_document(self) -> dict[str, Any]:
        """The old `controller:` form for one default controller (state files stay as they were), else `controllers:`."""
        if len(self.controllers) == 1 and self.controller.name == CONTROLLER_SUFFIX and self.controller.kind == "gobgpd":
            return {"controller": {"asn": self.controller.asn, "address": str(self.controller.address)}}
        return {"controllers": [{"name": c.name, "kind": c.kind, "asn": c.asn, "address": str(c.address)} for c in self.controllers]}


def _address_pairs(r: Any, raw: Any, vw: str) -> tuple[AddressPair, ...]:
    """A VM's allowed_address_pairs: a list of {ip: address or prefix, mac: optional unicast MAC}."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > 16:
        raise r.fail(f"{vw}.allowed_address_pairs", "expected a list of at most 16 {ip, mac} mappings")
    pairs = []
    for k, item in enumerate(raw):
        pw = f"{vw}.allowed_address_pairs[{k}]"
        p = r.mapping(item, pw, {"ip"}, {"mac"})
        try:
            net = ipaddress.ip_network(str(p["ip"]), strict=True)
        except ValueError:
            raise r.fail(f"{pw}.ip", f"{_show(p['ip'])} is not an address or prefix (192.168.100.50 or 192.168.100.64/28)") from None
        if net.is_multicast or net.is_loopback or net.is_unspecified or net.network_address.is_unspecified:
            raise r.fail(f"{pw}.ip", f"{net} is not a unicast address or prefix")
        mac = p.get("mac")
        if mac is not None and (not isinstance(mac, str) or not MAC_RE.match(mac.lower()) or int(mac[:2], 16) & 1):
            raise r.fail(f"{pw}.mac", f"{_show(mac)} is not a unicast MAC address (aa:bb:cc:dd:ee:ff)")
        pairs.append(AddressPair(net, mac.lower() if mac else None))
    return tuple(pairs)


def _netem(r: Any, raw: Any, where: str) -> Netem | None:
    """A host's `netem: {delay_ms, jitter_ms, loss_pct}` (all optional, numbers); all zero is a clean link."""
    if raw is None:
        return None
    m = r.mapping(raw, where, set(), {"delay_ms", "jitter_ms", "loss_pct"})
    delay = r.number(m.get("delay_ms", 0), f"{where}.delay_ms", 0, MAX_NETEM_DELAY_MS, "ms")
    jitter = r.number(m.get("jitter_ms", 0), f"{where}.jitter_ms", 0, MAX_NETEM_DELAY_MS, "ms")
    loss = r.number(m.get("loss_pct", 0), f"{where}.loss_pct", 0, 100, "%")
    if jitter > delay:
        raise r.fail(f"{where}.jitter_ms", f"{jitter:g} ms is more than delay_ms {delay:g} ms (a packet cannot leave before it was sent)")
    netem = Netem(float(delay), float(jitter), float(loss))
    return netem if netem != Netem() else None


def _show(value: Any, limit: int = 40) -> str:
    """A value as it may appear in a one-line message: repr, newlines escaped, cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def check_lab_name(name: Any) -> str:
    """`name` if it is a valid lab name (the topology's rule), else TopologyError: every command that takes
    a lab name goes through this, so a name can never be a path or another lab's prefix."""
    if not isinstance(name, str) or not LAB_NAME_RE.match(name):
        raise TopologyError(f"lab name {_show(name)} is not valid ({LAB_NAME_HINT})")
    return name


class _Reader:
    """Field access that names the path of every problem (``hosts[1].vtep``)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> TopologyError:
        return TopologyError(_one_line(f"{self.source}: {where}: {problem}"))

    def mapping(self, value: Any, where: str, required: set[str], optional: set[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where or "document", f"expected a mapping, got {type(value).__name__}")
        for key in value:
            if key not in required | optional:
                allowed = ", ".join(sorted(required | optional))
                shown = key if isinstance(key, str) and key.isidentifier() else _show(key)
                raise self.fail(f"{where}.{shown}" if where else str(shown), f"unknown key (allowed: {allowed})")
        for key in sorted(required):
            if value.get(key) is None:
                raise self.fail(f"{where}.{key}" if where else key, "missing")
        return value

    def integer(self, value: Any, where: str, low: int, high: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.fail(where, f"{_show(value)} must be an integer in {low}..{high}")
        return value

    def number(self, value: Any, where: str, low: float, high: float, unit: str) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or not low <= value <= high:
            raise self.fail(where, f"{_show(value)} must be a number in {low:g}..{high:g} ({unit})")
        return float(value)

    def name(self, value: Any, where: str, pattern: re.Pattern[str], hint: str) -> str:
        if not isinstance(value, str) or not pattern.match(value):
            raise self.fail(where, f"{_show(value)} is not a valid name ({hint})")
        return value

    def ipv4(self, value: Any, where: str) -> ipaddress.IPv4Address:
        if not isinstance(value, str):
            raise self.fail(where, f"{_show(value)} is not an IPv4 address")
        text, _, prefix = value.partition("/")  # "10.0.0.1/32" is accepted as the address
        try:
            if prefix and prefix != "32":
                raise ValueError(value)
            return ipaddress.IPv4Address(text)
        except ValueError:
            raise self.fail(where, f"{_show(value)} is not an IPv4 address") from None

    def unicast(self, address: ipaddress.IPv4Address, where: str) -> ipaddress.IPv4Address:
        """A private unicast address (a loopback of the lab's underlay)."""
        if (not address.is_private or address.is_loopback or address.is_multicast or address.is_unspecified
                or address.is_link_local or address.is_reserved or address == ipaddress.IPv4Address("255.255.255.255")):
            raise self.fail(where, f"{address} must be a private unicast address (e.g. 10.0.0.100)")
        return address

    def network(self, value: Any, where: str) -> ipaddress.IPv4Network:
        if not isinstance(value, str) or "/" not in value:
            raise self.fail(where, f"{_show(value)} is not an IPv4 network (e.g. 192.168.100.0/24)")
        try:
            net = ipaddress.IPv4Network(value, strict=True)
        except ValueError as exc:
            raise self.fail(where, f"{_show(value)} is not an IPv4 network ({exc})") from None
        if net.is_multicast or net.is_link_local or net.is_loopback or net.is_reserved or net.is_unspecified or net.network_address.is_unspecified:
            raise self.fail(where, f"{net} is not a unicast network (multicast, link-local, loopback and reserved ranges are refused)")
        return net

    def items(self, value: Any, where: str, limit: int) -> list[Any]:
        if not isinstance(value, list) or not value:
            raise self.fail(where, "expected a non-empty list")
        if len(value) > limit:
            raise self.fail(where, f"{len(value)} entries: a lab takes at most {limit}")
        return value

    def route_targets(self, value: Any, where: str, default: str) -> tuple[str, ...]:
        rts = value or [default]
        if not isinstance(rts, list) or not all(isinstance(x, str) and RT_RE.match(x) for x in rts):
            raise self.fail(where, f"{_show(rts)} must be a list like [{default!r}]")
        for rt in rts:
            try:
                RouteTarget.parse(rt)
            except RouteError as exc:
                raise self.fail(where, str(exc)) from None
        return tuple(rts)


def parse_topology(data: Any, source: str = "topology") -> Topology:
    """Validate a loaded YAML document; raise TopologyError naming the first problem found.

    Everything `up` would trip over is refused here, so `labctl check` says what `up` would say.
    A document with `scale:` is expanded first (`expand_scale`)."""
    r = _Reader(source)
    if isinstance(data, Mapping) and "scale" in data:
        return _parse_expanded(r, expand_scale(r, data))
    top = r.mapping(data, "", {"lab", "networks", "hosts"}, {"bgp", "underlay", "controller", "controllers"})
    lab = r.name(top["lab"], "lab", LAB_NAME_RE, LAB_NAME_HINT)
    bgp = r.mapping(top.get("bgp") or {}, "bgp", set(), {"hold_time", "keepalive", "connect_retry"})
    hold = r.integer(bgp.get("hold_time", 3), "bgp.hold_time", 3, 65535)
    keepalive = r.integer(bgp.get("keepalive", 1), "bgp.keepalive", 1, 21845)
    if keepalive * 3 > hold:
        raise r.fail("bgp.keepalive", f"{keepalive}s is more than a third of hold_time {hold}s")
    timers = Timers(hold, keepalive, r.integer(bgp.get("connect_retry", 1), "bgp.connect_retry", 1, 120))
    underlay = r.mapping(top.get("underlay") or {}, "underlay", set(), {"links"})
    links = r.network(underlay.get("links", "10.255.0.0/16"), "underlay.links")
    controllers = _controllers(r, top)
    controller = controllers[0]

    networks: list[Network] = []
    for i, raw in enumerate(r.items(top["networks"], "networks", MAX_NETWORKS)):
        where = f"networks[{i}]"
        net = r.mapping(raw, where, {"name", "vni", "subnet"}, {"route_targets", "bridge"})
        name = r.name(net["name"], f"{where}.name", NET_NAME_RE, "1-16 of a-z 0-9 _, starting with a letter")
        vni = r.integer(net["vni"], f"{where}.vni", 1, MAX_VNI)
        subnet = r.network(net["subnet"], f"{where}.subnet")
        if subnet.prefixlen > 29:
            raise r.fail(f"{where}.subnet", f"{subnet} is too small for VMs (at most /29)")
        rts = r.route_targets(net.get("route_targets"), f"{where}.route_targets", f"{controller.asn}:{vni}")
        bridge = r.name(net.get("bridge", bridge_name(i)), f"{where}.bridge", BRIDGE_NAME_RE, "1-8 of a-z 0-9")
        if RESERVED_DEVICE_RE.match(bridge):
            raise r.fail(f"{where}.bridge", f"{bridge!r} is a name the lab gives another interface (lo, {UPLINK}, vxlan<VNI>)")
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
        networks.append(Network(name, vni, subnet, bridge, rts))

    hosts: list[Host] = []
    seen_vms: dict[str, str] = {}
    seen_macs: dict[str, str] = {}
    seen_ips: dict[ipaddress.IPv4Address, str] = {}
    underlay_ips = {c.address: where for where, c in zip(_controller_fields(top), controllers)}
    controller_names = {c.name for c in controllers}
    vm_count = 0
    for i, raw in enumerate(r.items(top["hosts"], "hosts", MAX_HOSTS)):
        where = f"hosts[{i}]"
        h = r.mapping(raw, where, {"name", "asn", "vtep"}, {"vms", "kind", "netem"})
        kind = h.get("kind", DEFAULT_KIND)
        if not isinstance(kind, str) or kind not in HOST_KINDS:
            raise r.fail(f"{where}.kind", f"{_show(kind)} must be one of {', '.join(HOST_KINDS)}")
        name = h["name"]
        if not isinstance(name, str) or not name.startswith(f"{lab}-") or not SUFFIX_RE.match(name[len(lab) + 1:]):
            raise r.fail(f"{where}.name", f"{_show(name)} must be '{lab}-' followed by 1-11 of a-z 0-9 (e.g. {lab}-{i + 1})")
        if name[len(lab) + 1:] in RESERVED_SUFFIXES or name[len(lab) + 1:] in controller_names:
            raise r.fail(f"{where}.name", f"{name!r} is reserved for the lab's own nodes (underlay, controllers)")
        asn = r.integer(h["asn"], f"{where}.asn", 1, 4294967294)
        vtep = r.ipv4(h["vtep"], f"{where}.vtep")
        for other in hosts:
            if other.name == name:
                raise r.fail(f"{where}.name", f"duplicate host name {name!r}")
            if other.asn == asn:
                raise r.fail(f"{where}.asn", f"AS {asn} already used by host {other.name!r} (each hypervisor has its own AS)")
        if asn == controller.asn:
            raise r.fail(f"{where}.asn", f"AS {asn} is the controllers' AS")
        if vtep in underlay_ips:
            raise r.fail(f"{where}.vtep", f"{vtep} already used by {underlay_ips[vtep]}")
        if vtep in links or not vtep.is_private or vtep.is_loopback or vtep.is_multicast or vtep.is_unspecified or vtep.is_link_local:
            raise r.fail(f"{where}.vtep", f"{vtep} must be a private unicast address outside underlay.links {links}")
        for net in networks:
            if vtep in net.subnet:
                raise r.fail(f"{where}.vtep", f"{vtep} is inside network {net.name!r} ({net.subnet})")
        underlay_ips[vtep] = f"{where}.vtep"
        vms: list[Vm] = []
        raw_vms = h.get("vms") or []
        if not isinstance(raw_vms, list):
            raise r.fail(f"{where}.vms", "expected a list")
        vm_count += len(raw_vms)
        if vm_count > MAX_VMS:
            raise r.fail(f"{where}.vms", f"more than {MAX_VMS} VMs in the lab: a lab takes at most {MAX_VMS}")
        for j, raw_vm in enumerate(raw_vms):
            vw = f"{where}.vms[{j}]"
            v = r.mapping(raw_vm, vw, {"name", "mac", "ip"}, {"network", "detached", "port_security", "allowed_address_pairs"})
            detached = v.get("detached", False)
            if not isinstance(detached, bool):
                raise r.fail(f"{vw}.detached", f"{_show(detached)} must be true or false")
            vm_name = r.name(v["name"], f"{vw}.name", VM_NAME_RE, "1-10 of a-z 0-9, starting with a letter")
            if vm_name in seen_vms:
                raise r.fail(f"{vw}.name", f"duplicate VM name {vm_name!r} (also on {seen_vms[vm_name]})")
            if vm_name in RESERVED_SUFFIXES or vm_name in controller_names:
                raise r.fail(f"{vw}.name", f"{vm_name!r} clashes with a node name")
            if not isinstance(v["mac"], str):
                raise r.fail(f"{vw}.mac", f"{_show(v['mac'])} is not a MAC address (write it in quotes: \"aa:bb:cc:dd:ee:ff\")")
            mac = v["mac"].lower()
            if not MAC_RE.match(mac):
                raise r.fail(f"{vw}.mac", f"{_show(v['mac'])} is not a MAC address (aa:bb:cc:dd:ee:ff)")
            if int(mac[:2], 16) & 1 or mac == "00:00:00:00:00:00":
                raise r.fail(f"{vw}.mac", f"{mac} is not a unicast MAC")
            if mac in seen_macs:
                raise r.fail(f"{vw}.mac", f"{mac} already used by VM {seen_macs[mac]!r}")
            if v.get("network") is None and len(networks) > 1:
                raise r.fail(f"{vw}.network", "missing (the topology has several networks)")
            net_name = v.get("network", networks[0].name)
            net = next((n for n in networks if isinstance(net_name, str) and n.name == net_name), None)
            if net is None:
                raise r.fail(f"{vw}.network", f"{_show(net_name)} is not a network of this topology")
            ip = r.ipv4(v["ip"], f"{vw}.ip")
            if ip not in net.subnet or ip in (net.subnet.network_address, net.subnet.broadcast_address):
                raise r.fail(f"{vw}.ip", f"{ip} is not a host address of network {net.name!r} ({net.subnet})")
            if ip == net.subnet.broadcast_address - 1:
                raise r.fail(f"{vw}.ip", f"{ip} is the last host address of {net.name!r}, kept for the bridge of FRR hypervisors")
            if ip in seen_ips:
                raise r.fail(f"{vw}.ip", f"{ip} already used by VM {seen_ips[ip]!r}")
            seen_vms[vm_name] = name
            seen_macs[mac] = vm_name
            seen_ips[ip] = vm_name
            port_security = v.get("port_security", True)
            if not isinstance(port_security, bool):
                raise r.fail(f"{vw}.port_security", f"{_show(port_security)} must be true or false")
            vms.append(Vm(vm_name, mac, ip, net.name, detached, port_security, _address_pairs(r, v.get("allowed_address_pairs"), vw)))
        hosts.append(Host(name, asn, vtep, tuple(vms), kind, _netem(r, h.get("netem"), f"{where}.netem")))
    host_names = {h.name: i for i, h in enumerate(hosts)}
    for i, host in enumerate(hosts):
        for j, vm in enumerate(host.vms):
            if namespace_name(lab, vm.name) in host_names:
                raise r.fail(f"hosts[{i}].vms[{j}].name", f"{vm.name!r} clashes with host {namespace_name(lab, vm.name)!r} "
                             f"(both would be namespace {namespace_name(lab, vm.name)})")
    for where, c in zip(_controller_fields(top), controllers):
        if c.address in links or any(c.address in n.subnet for n in networks):
            raise r.fail(f"{where}", f"{c.address} must be outside underlay.links and the networks")
    if links.prefixlen > 30 or 2 ** (30 - links.prefixlen) < len(hosts) + len(controllers):
        raise r.fail("underlay.links", f"{links} has too few /30 links for {len(controllers)} controller(s) and {len(hosts)} hosts")
    return Topology(lab, timers, links, controllers, tuple(networks), tuple(hosts))


SCALE_GENERATES = ("hosts", "networks", "controllers")  # fields `scale:` makes itself (the one controller may be given)
HOST_FIELD_RE = re.compile(r"^hosts\[(\d+)\]\.(asn|vtep)(: .*)\Z")


def expand_scale(r: _Reader, top: Mapping[str, Any]) -> dict[str, Any]:
    """The document a `scale: {hosts, vms, networks, asn, vtep}` topology stands for (labctl/scale.py: the
    lab `labctl gen` writes). Beside `scale:` only lab, bgp, underlay and controller may be given (they
    replace the generated ones); hosts and networks are refused, naming the field."""
    for field in SCALE_GENERATES:
        if field in top:
            raise r.fail(field, "not with scale: (scale generates the hosts, their VMs and the networks; "
                                "'labctl gen' writes them out for editing)")
    r.mapping(top, "", {"lab", "scale"}, {"bgp", "underlay", "controller"})
    lab = r.name(top["lab"], "lab", LAB_NAME_RE, LAB_NAME_HINT)
    m = r.mapping(top["scale"], "scale", {"hosts"}, set(SCALE_KEYS) - {"hosts"})
    hosts = r.integer(m["hosts"], "scale.hosts", 1, MAX_HOSTS)
    vms = r.integer(m.get("vms", 0), "scale.vms", 0, MAX_VMS_PER_HOST)
    if hosts * vms > MAX_VMS:
        raise r.fail("scale.vms", f"{hosts} hosts x {vms} VMs = {hosts * vms} VMs: a lab takes at most {MAX_VMS}")
    networks = r.integer(m.get("networks", 1), "scale.networks", 1, MAX_NETWORKS)
    asn = r.integer(m.get("asn", Scale.asn), "scale.asn", 1, 4294967295 - hosts)
    vtep = r.ipv4(m.get("vtep", str(Scale.vtep)), "scale.vtep")
    if int(vtep) + hosts - 1 > 0xFFFFFFFF:
        raise r.fail("scale.vtep", f"{vtep} leaves no room for {hosts} consecutive VTEPs")
    for field in ("bgp", "underlay", "controller"):
        if top.get(field) is not None and not isinstance(top[field], Mapping):
            raise r.fail(field, f"expected a mapping, got {type(top[field]).__name__}")
    return scale_document(Scale(hosts, vms, networks, asn, vtep), lab, top.get("controller"), top.get("bgp"), top.get("underlay"))


def _parse_expanded(r: _Reader, doc: dict[str, Any]) -> Topology:
    """Parse what `scale:` expanded to; a problem of a generated host is reported on the scale field that made it."""
    try:
        return parse_topology(doc, r.source)
    except TopologyError as exc:
        where = str(exc).removeprefix(f"{r.source}: ")
        host = HOST_FIELD_RE.match(where)
        if host is not None:
            index, field, problem = host.groups()
            raise r.fail(f"scale.{field}", f"hypervisor {int(index) + 1}'s {field.upper() if field == 'vtep' else 'AS'}{problem}") from None
        if where.startswith(("bgp", "underlay", "controller", "lab")):
            raise
        raise r.fail("scale", f"the lab it makes is refused: {where}") from None


def _controller_fields(top: Mapping[str, Any]) -> list[str]:
    """Where each controller's address is written in the document (for messages)."""
    if "controllers" in top:
        return [f"controllers[{i}].address" for i in range(len(top["controllers"]))]
    return ["controller.address"]


def _controllers(r: _Reader, top: Mapping[str, Any]) -> tuple[Controller, ...]:
    """`controller: {asn, address}` (one gobgpd), or `controllers:` a list of one or two
    `{name, kind: gobgpd|frr, asn, address}`.

    Both controllers are in one AS: a host learns every route from both, and re-advertises what it
    learned from one to the other (an ordinary eBGP speaker does); the other controller then finds its
    own AS in the path and drops it, so no host ever carries routes between the controllers and a route
    lost at one controller is not found again through a host (no path hunting). Two ASes would accept
    those longer paths."""
    if ("controller" in top) == ("controllers" in top):
        raise r.fail("controllers", "give either controller (one) or controllers (a list of one or two), not both" if "controller" in top
                     else "missing (controller: {asn, address}, or controllers: a list of one or two)")
    if "controller" in top:
        ctl = r.mapping(top["controller"], "controller", {"asn", "address"}, set())
        return (Controller(r.integer(ctl["asn"], "controller.asn", 1, 4294967294),
                           r.unicast(r.ipv4(ctl["address"], "controller.address"), "controller.address")),)
    raw = top["controllers"]
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_CONTROLLERS:
        raise r.fail("controllers", f"expected a list of 1 or {MAX_CONTROLLERS} controllers, got {_show(raw)}")
    found: list[Controller] = []
    for i, item in enumerate(raw):
        where = f"controllers[{i}]"
        c = r.mapping(item, where, {"asn", "address"}, {"name", "kind"})
        name = r.name(c.get("name", DEFAULT_CONTROLLER_NAMES[i]), f"{where}.name", CONTROLLER_NAME_RE,
                      "1-11 of a-z 0-9, starting with a letter")
        if name in RESERVED_SUFFIXES and name != CONTROLLER_SUFFIX:
            raise r.fail(f"{where}.name", f"{name!r} is reserved for the underlay router")
        kind = c.get("kind", "gobgpd")
        if kind not in CONTROLLER_KINDS:
            raise r.fail(f"{where}.kind", f"{_show(kind)} must be one of {', '.join(CONTROLLER_KINDS)}")
        asn = r.integer(c["asn"], f"{where}.asn", 1, 4294967294)
        address = r.unicast(r.ipv4(c["address"], f"{where}.address"), f"{where}.address")
        for j, other in enumerate(found):
            if other.name == name:
                raise r.fail(f"{where}.name", f"duplicate controller name {name!r}")
            if other.address == address:
                raise r.fail(f"{where}.address", f"{address} already used by controllers[{j}]")
            if other.asn != asn:
                raise r.fail(f"{where}.asn", f"AS {asn} differs from controllers[{j}]'s AS {other.asn}: both controllers share one "
                             "AS (eBGP's AS-path check then keeps hosts from passing one controller's routes to the other)")
        found.append(Controller(asn, address, name, kind))
    return tuple(found)


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe subset without aliases or anchors (no alias bombs) and without duplicate mapping keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a topology", event.start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(None, None, "anchors (&name) are not allowed in a topology", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value", key_node.start_mark) from None
                if duplicate:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {_show(key)}", key_node.start_mark)
        return super().construct_mapping(node, deep)


def load_document(text: str, source: str) -> Any:
    """Parse YAML text with the strict loader; TopologyError (one line, with the line number) if it is not."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "document"
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "cannot be read"
        raise TopologyError(_one_line(f"{source}: {where}: not valid YAML ({problem})")) from None
    except RecursionError:
        raise TopologyError(_one_line(f"{source}: document: nested too deeply")) from None


def load_topology(path: Path) -> Topology:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise TopologyError(_one_line(f"{path}: cannot read: {exc.strerror}")) from None
    if len(raw) > MAX_FILE_BYTES:
        raise TopologyError(_one_line(f"{path}: larger than {MAX_FILE_BYTES // 1024} KB: not a lab topology"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TopologyError(_one_line(f"{path}: byte {exc.start}: not UTF-8 text")) from None
    return parse_topology(load_document(text, str(path)), str(path))
