"""Reading a lab, never judging it: RIBs (gRPC or vtysh, through the node kinds), kernel FDBs and
neighbour tables (netlink), BGP sessions, VM probes (ping, a VM's ARP cache), and waiting for an
observation to satisfy a predicate — `poll` returns the last observation either way, as FRR's
topotest `run_and_expect` does. `verify` judges what this module reads; `status` shows it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Generic, Iterable, Iterator, TypeVar

from agent.entries import FdbEntry, NeighEntry
from agent.errors import GobgpUnavailable
from agent.netlink_bulk import NetlinkBulk, open_socket
from agent.routes import ImetRoute, MacIpRoute, RouteEvent

from . import netns
from .bgp import GR_RESTART_TIME
from .errors import LabError
from .interrupts import INTERRUPT
from .parallel import run_all
from .plan import VM_IFNAME
from .topology import Host, Vm

if TYPE_CHECKING:
    from .lab import Lab
    from .nodes.base import ControlView

T = TypeVar("T")


# -- waiting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Polled(Generic[T]):
    ok: bool  # the predicate held before the timeout
    value: T | None  # the last observation (None if none could be read)
    seconds: float


def poll(read: Callable[[], T], ok: Callable[[T], bool], timeout: float, interval: float = 0.1) -> Polled[T]:
    """Read until `ok(observation)` or `timeout`; the last observation either way. An unreachable gobgpd
    counts as an observation not yet made; an interrupt (SIGINT/SIGTERM) raises at the next round."""
    start = time.monotonic()
    last: T | None = None
    while True:
        INTERRUPT.check()
        try:
            last = read()
            if ok(last):
                return Polled(True, last, time.monotonic() - start)
        except GobgpUnavailable:
            pass
        if time.monotonic() - start > timeout:
            return Polled(False, last, time.monotonic() - start)
        time.sleep(interval)


def wait_until(what: str, predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> float:
    """Poll `predicate` until true; return the seconds it took. LabError naming `what` on timeout."""
    polled = poll(predicate, bool, timeout, interval)
    if not polled.ok:
        raise LabError(f"timed out after {timeout:.0f}s waiting for {what}")
    return polled.seconds


# -- control plane and kernel -------------------------------------------------------------------


def read_rib(lab: Lab, node: str) -> list[RouteEvent]:
    """A node's EVPN RIB (the controller's or a hypervisor's), decoded by its kind."""
    return lab.speaker(node).read_rib()


@contextlib.contextmanager
def _bulk(ns_name: str) -> Iterator[tuple[NetlinkBulk, dict[str, int]]]:
    """A bulk netlink reader inside `ns_name` and the namespace's interface indexes by name.

    Both are made while this thread is in the namespace (labctl.netns.inside: safe from many threads at
    once, as verify's probes run); one dump then reads all of a kind, parsed without pyroute2."""
    with netns.inside(ns_name):
        sock = open_socket()
        indexes = {name: index for index, name in socket.if_nameindex()}
    try:
        with NetlinkBulk(sock) as bulk:
            yield bulk, indexes
    finally:
        sock.close()


def fdb_entries(ns_name: str, devices: Iterable[str]) -> set[FdbEntry]:
    """The FDB entries with a remote VTEP (flood and unicast) of `devices` in a namespace (one dump)."""
    address = ipaddress.ip_address
    with _bulk(ns_name) as (bulk, indexes):
        names = {indexes[d]: d for d in devices if d in indexes}
        records = bulk.dump_fdb()
    return {FdbEntry(names[r.ifindex], r.mac, address(r.dst)) for r in records if r.ifindex in names and r.dst and r.mac}


def read_fdb(lab: Lab, host: Host) -> set[FdbEntry]:
    """A hypervisor's vxlan FDB entries with a remote VTEP, for every network it has."""
    return fdb_entries(host.name, [n.vxlan_device for n in lab.plan.host_networks(host)])


def read_neighbours(lab: Lab, host: Host, bridge: str) -> dict[str, str]:
    """IP -> MAC of the bridge's neighbour table (the ARP suppression entries)."""
    with _bulk(host.name) as (bulk, indexes):
        index = indexes.get(bridge)
        records = bulk.dump_neigh(ifindex=index) if index is not None else []
    return {str(ipaddress.ip_address(r.dst)): r.mac for r in records if r.ifindex == index and r.dst and r.mac}


def read_neighbour_entries(lab: Lab, host: Host, bridge: str) -> set[NeighEntry]:
    """The neighbour entries (with a link-layer address) of a hypervisor's bridge."""
    with _bulk(host.name) as (bulk, indexes):
        index = indexes.get(bridge)
        records = bulk.dump_neigh(ifindex=index) if index is not None else []
    return {NeighEntry(bridge, ipaddress.ip_address(r.dst), r.mac) for r in records if r.ifindex == index and r.dst and r.mac}


def sessions(lab: Lab) -> dict[str, str]:
    """The first controller's view: host VTEP -> BGP session state."""
    return lab.controller().sessions()


def controller_sessions(lab: Lab) -> dict[str, dict[str, str]]:
    """Each live controller's view (its name -> host VTEP -> BGP session state)."""
    return {c.name: c.sessions() for c in lab.controllers_alive()}


def controller_sessions_or_errors(lab: Lab) -> dict[str, dict[str, str] | str]:
    """Each live controller's view as `controller_sessions`, or why it could not be read (a controller
    restarting must not stop status, graph or chaos)."""
    found: dict[str, dict[str, str] | str] = {}
    for c in lab.controllers_alive():
        try:
            found[c.name] = c.sessions()
        except (GobgpUnavailable, LabError) as exc:
            found[c.name] = str(exc)
    return found


def control_view(lab: Lab, host: Host) -> ControlView:
    """What a hypervisor's control plane reports (its agent's status, or the kernel FRR programs)."""
    return lab.node(host).control_view()


@dataclass(frozen=True)
class Snapshot:
    """RIBs and FDBs read once, so every check judges the same moment."""

    ribs: dict[str, list[RouteEvent]]  # node -> decoded EVPN routes of its global RIB
    fdb: dict[str, set[FdbEntry]]  # host -> vxlan FDB entries with a remote VTEP (flood and unicast)
    errors: dict[str, str]


SNAPSHOT_WORKERS = 4  # nodes read at a time (their gobgpd serialises while we decode)


def snapshot(lab: Lab) -> Snapshot:
    """Every node's RIB (one ListPath each) and every live host's vxlan FDB (one dump each); a host's
    FDB is read right after its RIB, so the two describe nearly the same moment."""
    ribs: dict[str, list[RouteEvent]] = {}
    fdb: dict[str, set[FdbEntry]] = {}
    errors: dict[str, str] = {}
    hosts = {h.name: h for h in lab.hosts_alive()}

    def read(node: str) -> None:
        try:
            ribs[node] = read_rib(lab, node)
        except (GobgpUnavailable, LabError) as exc:
            errors[node] = str(exc)
        if node in hosts:
            fdb[node] = read_fdb(lab, hosts[node])

    run_all([*(c.ns for c in lab.controllers_alive()), *hosts], read, SNAPSHOT_WORKERS, "snapshot")
    return Snapshot(ribs, fdb, errors)


# -- what a RIB says (pure) -------------------------------------------------------------------


def imet_vteps(events: Iterable[RouteEvent], vni: int) -> dict[str, str]:
    """VTEP -> next hop of the Type-3 routes for `vni` in a RIB."""
    return {str(e.route.originator): str(e.route.attrs.next_hop) for e in events
            if isinstance(e.route, ImetRoute) and e.route.pmsi_vni == vni}


def expected_macs(events: list[RouteEvent], own_vtep: str, vni: int) -> dict[str, str]:
    """MAC -> VTEP the RIB says (remote Type-2 of `vni`, highest sequence then lowest VTEP wins)."""
    best: dict[str, tuple[tuple[int, int], str]] = {}
    for e in events:
        r = e.route
        if isinstance(r, MacIpRoute) and r.label_vni == vni and str(r.vtep) != own_vtep:
            rank = (-(r.attrs.mac_mobility_seq or 0), int(r.vtep))
            if r.mac not in best or rank < best[r.mac][0]:
                best[r.mac] = (rank, str(r.vtep))
    return {mac: vtep for mac, (_, vtep) in best.items()}


def names_vtep(events: Iterable[RouteEvent], vtep: str) -> bool:
    """True if any route of a RIB was originated by (Type-3) or points at (next hop) `vtep`."""
    return any(str(getattr(e.route, "originator", e.route.attrs.next_hop)) == vtep for e in events)


# -- VMs ------------------------------------------------------------------------------------------


def ping(lab: Lab, src: Vm, dst: Vm, count: int = 3, deadline: float | None = None) -> tuple[int, int]:
    """(sent, received) of a real ping from one VM namespace to another VM's IP. With a `deadline` (seconds)
    ping keeps sending until `count` replies came back or the deadline passed (a lossy link: the probe
    proves reachability; the lost ones show as sent > received)."""
    wait = ["-w", str(math.ceil(deadline))] if deadline is not None else []  # ping takes whole seconds only
    out = subprocess.run(
        ["ip", "netns", "exec", lab.plan.vm_ns(src), "ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "1", *wait, str(dst.ip)],
        capture_output=True, text=True, timeout=(deadline or count) + 5,
    ).stdout
    for line in out.splitlines():
        if "packets transmitted" in line:
            parts = line.split(",")
            return int(parts[0].split()[0]), int(parts[1].split()[0])
    return count, 0


def vm_arp(lab: Lab, vm: Vm, ip: str) -> str | None:
    """The MAC a VM's ARP cache holds for `ip`."""
    with netns.ns(lab.plan.vm_ns(vm)) as ipr:
        index = ipr.link_lookup(ifname=VM_IFNAME)[0]
        for msg in ipr.neigh("dump", ifindex=index):
            if msg.get_attr("NDA_DST") == ip and msg.get_attr("NDA_LLADDR"):
                return str(msg.get_attr("NDA_LLADDR")).lower()
    return None


def vm_forget(lab: Lab, vm: Vm, ip: str) -> None:
    """Flush one entry of a VM's ARP cache, so its next packet has to ARP (prepares a probe)."""
    with netns.ns(lab.plan.vm_ns(vm)) as ipr:
        index = ipr.link_lookup(ifname=VM_IFNAME)[0]
        for msg in ipr.neigh("dump", ifindex=index):
            if msg.get_attr("NDA_DST") == ip:
                ipr.neigh("del", dst=ip, ifindex=index)


def warm_up(lab: Lab, end_a: tuple[Host, Vm], end_b: tuple[Host, Vm]) -> float:
    """One uncaptured ping so both VMs speak, then wait until each host's FDB points the other's MAC at its VTEP.

    Returns the seconds from the first packet to both unicast entries being programmed (Type-2 learning time).
    """
    (ha, a), (hb, b) = end_a, end_b
    device = lab.topo.network(a.network).vxlan_device
    start = time.monotonic()
    ping(lab, a, b, count=1, deadline=5)  # until one reply: both VMs have spoken, even over a lossy underlay
    want = {ha.name: FdbEntry(device, b.mac, hb.vtep), hb.name: FdbEntry(device, a.mac, ha.vtep)}
    host_of = {ha.name: ha, hb.name: hb}
    wait_until(f"Type-2 entries for {a.name} and {b.name}", lambda: all(entry in read_fdb(lab, host_of[h]) for h, entry in want.items()), 10, 0.02)
    return time.monotonic() - start


# -- convergence and forgetting -------------------------------------------------------------------


def converged(lab: Lab, hosts: list[Host]) -> bool:
    """Every given host's session is up at every live controller, and every live host's control plane is
    ready and knows exactly the other live VTEPs of each of its networks."""
    alive = lab.hosts_alive()
    vteps = {str(h.vtep) for h in alive}
    for h in alive:  # first the hosts' own views (files, cheap): the controllers are asked only once they agree
        view = control_view(lab, h)
        if not view.ready or not view.settled:
            return False
        for net in lab.plan.host_networks(h):
            want = {str(o.vtep) for o in alive if o is not h and net in lab.plan.host_networks(o)}
            if set(view.remote_vteps.get(str(net.vni), [])) != want & vteps:
                return False
    for states in controller_sessions(lab).values():  # (a busy controller answers slowly while a big lab starts)
        if any(states.get(str(h.vtep)) != "ESTABLISHED" for h in hosts):
            return False
    return True


def wait_converged(lab: Lab, hosts: list[Host], timeout: float = 60.0) -> float:
    # gobgpd waits 5-10 s (random) before its first connect attempt: the timeout allows for a few of those.
    # A round reads every host's status: on a big lab, every 0.5 s (the CPU is the daemons' while they start)
    interval = 0.1 if len(lab.hosts_alive()) <= 10 else 0.5
    return wait_until("BGP sessions established and agents converged", lambda: converged(lab, hosts), timeout, interval)


def mentions(lab: Lab, host: Host) -> list[str]:
    """Where the survivors still name `host`: RIB routes or flood entries."""
    found = []
    for other in lab.hosts_alive():
        if other is host:
            continue
        try:
            if names_vtep(read_rib(lab, other.name), str(host.vtep)):
                found.append(f"{other.name} RIB")
        except GobgpUnavailable:
            found.append(f"{other.name} RIB unreadable")
        if any(str(e.vtep) == str(host.vtep) for e in read_fdb(lab, other)):
            found.append(f"{other.name} FDB")
    return found


def wait_forgotten(lab: Lab, name: str, since: float | None = None, timeout: float | None = None) -> float:
    """Seconds from `since` (default: now) until no survivor's RIB or FDB names host `name`."""
    host = lab.host(name)
    start = since if since is not None else time.monotonic()
    limit = timeout if timeout is not None else lab.topo.timers.hold_time * 3 + GR_RESTART_TIME + 10  # GR keeps it as stale
    wait_until(f"the survivors to forget {name}", lambda: not mentions(lab, host), limit, interval=0.05)
    return time.monotonic() - start


# -- tenant isolation: nftables counters, device MACs ------------------------------------------------


def link_mac(ns_name: str, ifname: str) -> str:
    """The MAC address of `ifname` inside namespace `ns_name` (e.g. a hypervisor's bridge)."""
    with netns.ns(ns_name) as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise LabError(f"{ns_name}: interface {ifname} not found")
        return str(ipr.get_links(found[0])[0].get_attr("IFLA_ADDRESS")).lower()


def nft_drops(ns_name: str, family: str, table: str) -> int:
    """Packets the counted drop rules of nftables table `family table` in `ns_name` dropped (0: no such table)."""
    import json

    result = subprocess.run(["ip", "netns", "exec", ns_name, "nft", "-j", "list", "table", family, table],
                            capture_output=True, text=True, timeout=10, check=False)
    if result.returncode != 0:
        return 0
    total = 0
    for item in json.loads(result.stdout).get("nftables", []):
        exprs = item.get("rule", {}).get("expr", []) if isinstance(item, dict) else []
        if any(isinstance(e, dict) and "drop" in e for e in exprs):
            total += sum(int(e["counter"].get("packets", 0)) for e in exprs if isinstance(e, dict) and isinstance(e.get("counter"), dict))
    return total
