"""`labctl verify`: every claim checked against real state — gobgpd RIBs over gRPC, kernel FDBs over
netlink, real pings between VM namespaces and captures on the underlay links."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from itertools import combinations
from typing import Callable, Iterable

from agent.codec import decode_paths
from agent.entries import FdbEntry, NeighEntry
from agent.errors import GobgpUnavailable
from agent.kernel import Kernel
from agent.routes import ImetRoute, MacIpRoute, RouteEvent

from .capture import arp_frame, capturing, decode_vxlan, from_mac, send_frames
from .errors import LabError
from .lab import Lab, gobgp_client, wait_until
from .plan import UPLINK
from .topology import Host, Vm

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CheckResult:
    id: str
    name: str
    ok: bool
    evidence: str


@dataclass(frozen=True)
class Snapshot:
    """RIBs and FDBs read once, so every check judges the same moment."""

    ribs: dict[str, list[RouteEvent]]  # node -> decoded EVPN routes of its global RIB
    fdb: dict[str, set[FdbEntry]]  # host -> vxlan FDB entries with a remote VTEP (flood and unicast)
    errors: dict[str, str]


def read_rib(lab: Lab, node: str) -> list[RouteEvent]:
    """A node's EVPN RIB, decoded: gobgpd over gRPC, or FRR's bgpd through vtysh's JSON."""
    host = lab.topo.host(node)
    if host is not None and host.is_frr:
        from . import frr

        return frr.read_rib(lab.plan, host)
    client = gobgp_client(lab.plan, node)
    try:
        events, errors = decode_paths(client.list_evpn())
    finally:
        client.close()
    if errors:
        raise LabError(f"{node}: malformed routes in RIB: {errors[0]}")
    return events


def read_fdb(lab: Lab, host: Host) -> set[FdbEntry]:
    with Kernel(netns=host.name) as kernel:
        return kernel.entries([n.vxlan_device for n in lab.plan.host_networks(host)])


def snapshot(lab: Lab) -> Snapshot:
    ribs: dict[str, list[RouteEvent]] = {}
    fdb: dict[str, set[FdbEntry]] = {}
    errors: dict[str, str] = {}
    for node in [lab.plan.controller_ns] + [h.name for h in lab.hosts_alive()]:
        try:
            ribs[node] = read_rib(lab, node)
        except (GobgpUnavailable, LabError) as exc:
            errors[node] = str(exc)
    for host in lab.hosts_alive():
        fdb[host.name] = read_fdb(lab, host)
    return Snapshot(ribs, fdb, errors)


def imet_vteps(events: Iterable[RouteEvent], vni: int) -> dict[str, str]:
    """VTEP -> next hop of the Type-3 routes for `vni` in a RIB."""
    return {str(e.route.originator): str(e.route.attrs.next_hop) for e in events
            if isinstance(e.route, ImetRoute) and e.route.pmsi_vni == vni}


# -- control plane ---------------------------------------------------------------------


def check_own_vtep(lab: Lab, snap: Snapshot) -> CheckResult:
    bad, good = [], []
    for host in lab.hosts_alive():
        for net in lab.plan.host_networks(host):
            found = imet_vteps(snap.ribs.get(host.name, []), net.vni).get(str(host.vtep))
            (good if found == str(host.vtep) else bad).append(f"{host.name}/vni{net.vni}")
    errors = [f"{n}: {e}" for n, e in snap.errors.items()]
    return CheckResult("rib-own", "each local RIB holds its own VTEP (Type-3)", not bad and not errors,
                       "; ".join(errors + ([f"missing: {', '.join(bad)}"] if bad else [f"{len(good)} own Type-3 routes present"])))


def check_learned(lab: Lab, snap: Snapshot) -> CheckResult:
    problems: list[str] = []
    count = 0
    alive = lab.hosts_alive()
    for host in alive:
        for net in lab.plan.host_networks(host):
            viewers = [lab.plan.controller_ns] + [o.name for o in alive if o is not host and net in lab.plan.host_networks(o)]
            for viewer in viewers:
                nh = imet_vteps(snap.ribs.get(viewer, []), net.vni).get(str(host.vtep))
                if nh is None:
                    problems.append(f"{viewer} lacks {host.name}'s VTEP {host.vtep} (vni {net.vni})")
                elif nh != str(host.vtep):
                    problems.append(f"{viewer} has {host.name}'s VTEP with next hop {nh}, not {host.vtep}")
                else:
                    count += 1
    for dead in lab.state.down_hosts:
        dead_host = lab.topo.host(dead)
        assert dead_host is not None
        for viewer, events in snap.ribs.items():
            if any(str(getattr(e.route, "originator", "")) == str(dead_host.vtep) for e in events):
                problems.append(f"{viewer} still has a route of down host {dead}")
    evidence = "; ".join(problems) if problems else f"{count} (viewer, VTEP) pairs learned with next hop intact"
    if lab.state.down_hosts:
        evidence += f"; down: {', '.join(lab.state.down_hosts)} (absent from every RIB)" if not problems else ""
    return CheckResult("rib-learned", "every other hypervisor and the controller learned each VTEP", not problems, evidence)


def check_flood_lists(lab: Lab, snap: Snapshot) -> CheckResult:
    problems: list[str] = []
    alive = lab.hosts_alive()
    for host in alive:
        for net in lab.plan.host_networks(host):
            kernel = {str(e.vtep) for e in snap.fdb.get(host.name, set()) if e.device == net.vxlan_device and e.is_flood}
            expected = {str(o.vtep) for o in alive if o is not host and net in lab.plan.host_networks(o)}
            rib = set(imet_vteps(snap.ribs.get(host.name, []), net.vni)) - {str(host.vtep)}
            if kernel != expected:
                problems.append(f"{host.name} {net.vxlan_device}: flood list {sorted(kernel)} != live VTEPs {sorted(expected)}")
            if kernel != rib:
                problems.append(f"{host.name} {net.vxlan_device}: flood list {sorted(kernel)} != RIB {sorted(rib)}")
    def lists(host: Host) -> str:
        per_device: dict[str, list[str]] = {}
        for e in sorted(snap.fdb.get(host.name, set()), key=lambda e: int(e.vtep)):
            if e.is_flood:
                per_device.setdefault(e.device, []).append(str(e.vtep))
        return " ".join(f"{dev}→{','.join(v)}" for dev, v in sorted(per_device.items()))

    return CheckResult("fdb-flood", "vxlan flood lists = other live VTEPs = RIB", not problems,
                       "; ".join(problems) or f"{len(alive)} hypervisors agree: " + "; ".join(f"{h.name}: {lists(h)}" for h in alive))


# -- data plane -------------------------------------------------------------------------


def ping(lab: Lab, src: Vm, dst: Vm, count: int = 3) -> tuple[int, int]:
    """(sent, received) of a real ping from one VM namespace to another VM's IP."""
    out = subprocess.run(
        ["ip", "netns", "exec", lab.plan.vm_ns(src), "ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "1", str(dst.ip)],
        capture_output=True, text=True, timeout=count + 5,
    ).stdout
    for line in out.splitlines():
        if "packets transmitted" in line:
            parts = line.split(",")
            return int(parts[0].split()[0]), int(parts[1].split()[0])
    return count, 0


def _conversation(frames: list, a: Vm, b: Vm) -> list:
    ips = {str(a.ip), str(b.ip)}
    return [f for f in frames if f is not None and f.inner_kind == "icmp" and {f.inner_src_ip, f.inner_dst_ip} == ips]


def check_same_host(lab: Lab) -> CheckResult | None:
    evidence, ok = [], True
    for host in lab.hosts_alive():
        by_net: dict[str, list[Vm]] = {}
        for vm in host.attached:
            by_net.setdefault(vm.network, []).append(vm)
        for a, b in (vms[:2] for vms in by_net.values() if len(vms) >= 2):  # one pair per network
            with capturing([(host.name, UPLINK)]) as caps:
                sent, got = ping(lab, a, b)
            leaked = _conversation([decode_vxlan(p) for p in caps[host.name].packets], a, b)
            good = got == sent and not leaked
            ok &= good
            evidence.append(f"{a.name}→{b.name} on {host.name}: {got}/{sent} replies, {len(leaked)} VXLAN packets of it on the uplink")
    if not evidence:
        return None  # no host has two VMs on one network: nothing to prove
    return CheckResult("same-host", "VMs on one host talk through the bridge only", ok, "; ".join(evidence))


def check_cross_host(lab: Lab) -> CheckResult | None:
    alive = lab.hosts_alive()
    evidence, ok = [], True
    pairs = []
    for ha, hb in combinations(alive, 2):
        for net in lab.topo.networks:  # one VM pair per network the two hosts share
            pair = next(((a, b) for a in ha.attached for b in hb.attached if a.network == b.network == net.name), None)
            if pair is not None:
                pairs.append((ha, hb, pair))
    for ha, hb, (a, b) in pairs:
        learned_in = warm_up(lab, (ha, a), (hb, b))
        with capturing([(h.name, UPLINK) for h in alive]) as caps:
            sent, got = ping(lab, a, b)
        frames = {name: _conversation([decode_vxlan(p) for p in cap.packets], a, b) for name, cap in caps.items()}
        ends = {str(ha.vtep), str(hb.vtep)}
        wrong_vteps = [f for name in (ha.name, hb.name) for f in frames[name] if {f.outer_src, f.outer_dst} != ends]
        bystanders = {name: len(fs) for name, fs in frames.items() if name not in (ha.name, hb.name) and fs}
        vni = lab.topo.network(a.network).vni
        wrong_vni = [f for fs in frames.values() for f in fs if f.vni != vni]
        good = got == sent and bool(frames[ha.name]) and bool(frames[hb.name]) and not wrong_vteps and not bystanders and not wrong_vni
        ok &= good
        note = f"{a.name}@{ha.name}→{b.name}@{hb.name}: MACs learned in {learned_in:.2f}s, {got}/{sent} replies, " \
               f"VXLAN {ha.vtep}↔{hb.vtep} vni {vni}: {len(frames[ha.name])}+{len(frames[hb.name])} pkts"
        if bystanders:
            note += f", FLOODED to {bystanders}"
        if wrong_vteps or wrong_vni:
            note += f", {len(wrong_vteps)} with wrong VTEPs, {len(wrong_vni)} with wrong VNI"
        evidence.append(note)
    if not evidence:
        return None  # fewer than two live hosts share a network
    return CheckResult("cross-host", "VMs across hosts talk over VXLAN, unicast between exactly the two VTEPs", ok, "; ".join(evidence))


def warm_up(lab: Lab, end_a: tuple[Host, Vm], end_b: tuple[Host, Vm]) -> float:
    """One uncaptured ping so both VMs speak, then wait until each host's FDB points the other's MAC at its VTEP.

    Returns the seconds from the first packet to both unicast entries being programmed (Type-2 learning time).
    """
    (ha, a), (hb, b) = end_a, end_b
    device = lab.topo.network(a.network).vxlan_device
    start = time.monotonic()
    ping(lab, a, b, count=1)
    want = {ha.name: FdbEntry(device, b.mac, hb.vtep), hb.name: FdbEntry(device, a.mac, ha.vtep)}
    host_of = {ha.name: ha, hb.name: hb}
    wait_until(f"Type-2 entries for {a.name} and {b.name}", lambda: all(entry in read_fdb(lab, host_of[h]) for h, entry in want.items()), 10, 0.02)
    return time.monotonic() - start


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


def local_macs(lab: Lab, host: Host, rib: list[RouteEvent]) -> set[str]:
    """'VNI/MAC' of the MACs a hypervisor holds locally: its agent says so, or (FRR) its own Type-2 routes."""
    if host.is_frr:
        return {f"{e.route.label_vni}/{e.route.mac}" for e in rib if isinstance(e.route, MacIpRoute) and e.local}
    return set(lab.agent_status(host).get("local_macs", {}))  # type: ignore[arg-type]


def check_mac_tables(lab: Lab) -> CheckResult:
    """Every hypervisor's vxlan unicast FDB holds exactly the remote MACs of its RIB, each at the right VTEP."""
    problems, counts = [], []
    vm_macs = {vm.mac: (h, vm) for h, vm in lab.topo.vms()}
    for host in lab.hosts_alive():
        rib = read_rib(lab, host.name)
        fdb = read_fdb(lab, host)
        local = local_macs(lab, host, rib)
        for net in lab.plan.host_networks(host):
            want = expected_macs(rib, str(host.vtep), net.vni)
            have = {e.mac: str(e.vtep) for e in fdb if e.device == net.vxlan_device and not e.is_flood}
            want = {m: v for m, v in want.items() if f"{net.vni}/{m}" not in local}  # a local winner has no entry
            if have != want:
                diff = sorted(set(have.items()) ^ set(want.items()))
                problems.append(f"{host.name} vni {net.vni}: kernel and RIB differ on {diff[:4]}")
            for mac, vtep in have.items():
                owner = vm_macs.get(mac)
                if owner is not None and str(owner[0].vtep) != vtep:
                    problems.append(f"{host.name}: {mac} ({owner[1].name}) points at {vtep}, lives behind {owner[0].vtep}")
            counts.append(f"{host.name}/{net.vxlan_device}:{len(have)}")
    return CheckResult("fdb-macs", "vxlan unicast FDB = remote MACs in the RIB, at the right VTEP", not problems,
                       "; ".join(problems) or f"remote MAC entries per host {', '.join(counts)}; all match RIB and topology")


def read_neighbours(lab: Lab, host: Host, bridge: str) -> dict[str, str]:
    """IP -> MAC of the bridge's neighbour table (the ARP suppression entries)."""
    with Kernel(netns=host.name) as kernel:
        return {str(e.ip): e.mac for e in kernel.entries([], [bridge]) if isinstance(e, NeighEntry)}


def vm_forget(lab: Lab, vm: Vm, ip: str) -> None:
    """Flush one entry of a VM's ARP cache, so its next packet has to ARP."""
    from . import netns as ns

    with ns.ns(lab.plan.vm_ns(vm)) as ipr:
        index = ipr.link_lookup(ifname="eth0")[0]
        for msg in ipr.neigh("dump", ifindex=index):
            if msg.get_attr("NDA_DST") == ip:
                ipr.neigh("del", dst=ip, ifindex=index)


def vm_arp(lab: Lab, vm: Vm, ip: str) -> str | None:
    from . import netns as ns

    with ns.ns(lab.plan.vm_ns(vm)) as ipr:
        index = ipr.link_lookup(ifname="eth0")[0]
        for msg in ipr.neigh("dump", ifindex=index):
            if msg.get_attr("NDA_DST") == ip and msg.get_attr("NDA_LLADDR"):
                return str(msg.get_attr("NDA_LLADDR")).lower()
    return None


def check_arp_suppression(lab: Lab) -> CheckResult | None:
    """An ARP request for a remote VM is answered by the local hypervisor; no ARP crosses the underlay."""
    alive = lab.hosts_alive()
    evidence, ok = [], True
    for ha, hb in combinations(alive, 2):
        pair = next(((a, b) for a in ha.attached for b in hb.attached if a.network == b.network), None)
        if pair is None:
            continue
        a, b = pair
        bridge = lab.topo.network(a.network).bridge
        # both VMs announce themselves (gratuitous ARP, as a booting or migrated VM does) and resolve each
        # other once, so each hypervisor sees its VM's ARP and learns its address (FRR: through the kernel)
        for vm in (a, b):
            send_frames(lab.plan.vm_ns(vm), arp_frame(vm.mac, str(vm.ip), str(vm.ip)), count=1)
        vm_forget(lab, a, str(b.ip))
        vm_forget(lab, b, str(a.ip))
        ping(lab, a, b, count=1)
        ping(lab, b, a, count=1)
        try:
            wait_until(f"{ha.name} knows {b.name}'s IP", lambda: read_neighbours(lab, ha, bridge).get(str(b.ip)) == b.mac
                       and read_neighbours(lab, hb, bridge).get(str(a.ip)) == a.mac, 10, 0.05)
        except LabError as exc:
            ok = False
            evidence.append(f"{a.name}/{b.name}: {exc}")
            continue
        vm_forget(lab, a, str(b.ip))
        vm_forget(lab, b, str(a.ip))
        with capturing([(h.name, UPLINK) for h in alive]) as caps:
            sent, got = ping(lab, a, b, count=1)
        ips = {str(a.ip), str(b.ip)}
        crossed = [f for cap in caps.values() for f in map(decode_vxlan, cap.packets)
                   if f is not None and f.inner_kind == "arp" and {f.inner_src_ip, f.inner_dst_ip} == ips]
        learned = vm_arp(lab, a, str(b.ip))
        good = got == sent and learned == b.mac and not crossed
        ok &= good
        evidence.append(f"{a.name}@{ha.name} ARP for {b.name}: answered {learned or 'never'} "
                        f"({'right' if learned == b.mac else 'WRONG'} MAC), {len(crossed)} ARP packets on the underlay, ping {got}/{sent}")
    if not evidence:
        return None
    return CheckResult("arp-suppression", "ARP for remote VMs is answered locally (nothing crosses the underlay)", ok, "; ".join(evidence))


def check_migration(lab: Lab, vm: Vm, source: Host, target: Host) -> CheckResult:
    """After a move: every live hypervisor points the VM's MAC at the new VTEP (or has it local), the old
    hypervisor withdrew its route, and nobody still names the old VTEP for it."""
    problems = []
    network = lab.topo.network(vm.network)

    def settled() -> bool:
        problems.clear()
        for host in lab.hosts_alive():
            if host.name == target.name:
                continue
            entries = {e for e in read_fdb(lab, host) if not e.is_flood and e.mac == vm.mac}
            if {str(e.vtep) for e in entries} != {str(target.vtep)}:
                problems.append(f"{host.name} points {vm.mac} at {sorted(str(e.vtep) for e in entries) or 'nothing'}")
        for event in read_rib(lab, lab.plan.controller_ns):
            r = event.route
            if isinstance(r, MacIpRoute) and r.mac == vm.mac and str(r.vtep) == str(source.vtep):
                problems.append(f"controller still has {source.name}'s route for {vm.mac}")
                break
        return not problems

    try:
        wait_until(f"FDBs to follow {vm.name}", settled, 10, 0.05)
    except LabError:
        pass
    seq = next(((r.route.attrs.mac_mobility_seq or 0) for r in read_rib(lab, lab.plan.controller_ns)
                if isinstance(r.route, MacIpRoute) and r.route.mac == vm.mac and r.route.ip is None), "unknown")
    return CheckResult("migration", f"after moving {vm.name} every FDB follows it", not problems,
                       "; ".join(problems) or f"all FDBs point {vm.mac} at {target.vtep} ({network.vxlan_device}), "
                       f"{source.name} withdrew its route, sequence number now {seq}")


def run_migration_scenario(lab: Lab, progress: Progress = lambda _: None, limit: float = 1.0) -> list[CheckResult]:
    """Move a VM to another hypervisor and back, each time measuring the outage a continuous ping sees."""
    from .migrate import move_measured

    alive = lab.hosts_alive()
    if len(alive) < 3:
        return [CheckResult("migration", "VM migration", False, "needs three live hypervisors (source, target, watcher)")]
    source, target = alive[0], alive[1]
    vm = next((v for v in source.attached if lab.topo.network(v.network) in lab.plan.host_networks(target)), None)
    if vm is None:
        return [CheckResult("migration", "VM migration", False, f"no VM of {source.name} can move to {target.name}")]
    results = []
    for src, dst in ((source, target), (target, source)):
        progress(f"moving {vm.name} {src.name} → {dst.name} under a 10 ms ping")
        outage, moved_from, moved_to, moved = move_measured(lab, vm.name, dst.name)
        follow = check_migration(lab, moved, moved_from, moved_to)
        ok = follow.ok and outage.seconds < limit
        results.append(CheckResult(f"migration-{dst.name}", f"{vm.name} moves {src.name} → {dst.name}: outage under {limit:.0f} s, FDBs follow",
                                   ok, f"outage {outage.seconds * 1000:.0f} ms ({outage.received}/{outage.sent} replies); {follow.evidence}"))
    return results


def broadcast_from(lab: Lab, vm: Vm) -> None:
    """A broadcast ARP request from `vm` for an unused address of its subnet: BUM traffic of its network."""
    unused = str(lab.topo.network(vm.network).subnet.broadcast_address - 1)
    send_frames(lab.plan.vm_ns(vm), arp_frame(vm.mac, str(vm.ip), unused))


def check_bum_scope(lab: Lab) -> CheckResult | None:
    """A broadcast in one network reaches every hypervisor that has it and none that lacks it."""
    alive = lab.hosts_alive()
    evidence, ok = [], True
    for net in lab.topo.networks:
        having = [h for h in alive if net in lab.plan.host_networks(h)]
        lacking = [h for h in alive if h not in having]
        sender = next(((h, vm) for h in having for vm in h.attached if vm.network == net.name), None)
        if not lacking or sender is None or len(having) < 2:
            continue
        src_host, vm = sender
        with capturing([(h.name, UPLINK) for h in alive]) as caps:
            broadcast_from(lab, vm)
        got = {name: sum(1 for f in map(decode_vxlan, cap.packets) if f is not None and f.inner_src_mac == vm.mac and f.inner_dst_mac == "ff:ff:ff:ff:ff:ff")
               for name, cap in caps.items()}
        leaked = {h.name: got[h.name] for h in lacking if got[h.name]}
        missing = [h.name for h in having if h is not src_host and not got[h.name]]
        ok &= not leaked and not missing
        evidence.append(f"{net.name} (vni {net.vni}) broadcast from {vm.name}: reached {', '.join(h.name for h in having if got[h.name] and h is not src_host) or 'nobody'}"
                        + (f", MISSED {missing}" if missing else "") + f"; hosts without it ({', '.join(h.name for h in lacking)}) saw "
                        + (f"{leaked}" if leaked else "nothing"))
    if not evidence:
        return None
    return CheckResult("bum-scope", "a broadcast reaches only the hypervisors that have its network", ok, "; ".join(evidence))


def check_isolation(lab: Lab) -> CheckResult | None:
    """VMs of different networks (VNIs) share no L2: frames from one never arrive at the other.

    Different networks have different subnets, so a ping between them would fail for want of a route
    whatever the overlay did. The check works at L2 instead: VM a sends a broadcast ARP for b's address
    and a unicast frame to b's MAC; a capture inside b sees neither, while a capture in a VM of a's own
    network on another host sees the broadcast (the control that proves the frames were sent).
    """
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether

    alive = lab.hosts_alive()
    where = {vm.name: h for h in alive for vm in h.attached}
    vms = [vm for h in alive for vm in h.attached]
    evidence, ok = [], True
    tested: set[tuple[str, str]] = set()
    for a, b in ((a, b) for a in vms for b in vms if a.network != b.network):
        if (a.network, b.network) in tested:
            continue
        control = next((c for c in vms if c.network == a.network and c is not a and where[c.name] is not where[a.name]), None)
        if control is None:
            continue
        tested.add((a.network, b.network))
        points = [(lab.plan.vm_ns(b), "eth0"), (lab.plan.vm_ns(control), "eth0")]
        with capturing(points, from_mac(a.mac)) as caps:
            send_frames(lab.plan.vm_ns(a), arp_frame(a.mac, str(a.ip), str(b.ip)), count=2)
            send_frames(lab.plan.vm_ns(a), bytes(Ether(src=a.mac, dst=b.mac) / IP(src=str(a.ip), dst=str(b.ip)) / ICMP()), count=2)
        leaked = len(caps[lab.plan.vm_ns(b)].packets)
        seen = len(caps[lab.plan.vm_ns(control)].packets)
        ok &= leaked == 0 and seen > 0
        evidence.append(f"{a.name}({a.network})→{b.name}({b.network}): {leaked} frames arrived"
                        f" (control {control.name} in {a.network} saw {seen})")
    if not evidence:
        return None
    return CheckResult("isolation", "VMs on different VNIs are isolated at L2", ok, "; ".join(evidence))


def run_checks(lab: Lab, only: tuple[str, ...] = (), progress: Progress = lambda _: None) -> list[CheckResult]:
    progress("reading RIBs (gRPC) and FDBs (netlink)")
    snap = snapshot(lab)
    checks: list[tuple[str, Callable[[], CheckResult | None]]] = [
        ("rib-own", lambda: check_own_vtep(lab, snap)),
        ("rib-learned", lambda: check_learned(lab, snap)),
        ("fdb-flood", lambda: check_flood_lists(lab, snap)),
        ("same-host", lambda: check_same_host(lab)),
        ("cross-host", lambda: check_cross_host(lab)),
        ("isolation", lambda: check_isolation(lab)),
        ("bum-scope", lambda: check_bum_scope(lab)),
        ("fdb-macs", lambda: check_mac_tables(lab)),
        ("arp-suppression", lambda: check_arp_suppression(lab)),
    ]
    results: list[CheckResult] = []
    for check_id, run in checks:
        if only and not any(check_id.startswith(o) for o in only):
            continue
        progress(f"check {check_id}")
        result = run()
        if result is not None:
            results.append(result)
    for dead in lab.state.down_hosts:
        results.append(CheckResult(f"down-{dead}", f"{dead} is down (labctl kill)", True, "excluded from the checks above; its routes must be gone"))
    return results


def mentions(lab: Lab, host: Host) -> list[str]:
    """Where the survivors still name `host`: RIB routes or flood entries."""
    found = []
    for other in lab.hosts_alive():
        if other is host:
            continue
        try:
            if any(str(getattr(e.route, "originator", e.route.attrs.next_hop)) == str(host.vtep) for e in read_rib(lab, other.name)):
                found.append(f"{other.name} RIB")
        except GobgpUnavailable:
            found.append(f"{other.name} RIB unreadable")
        if any(str(e.vtep) == str(host.vtep) for e in read_fdb(lab, other)):
            found.append(f"{other.name} FDB")
    return found


def wait_forgotten(lab: Lab, name: str, since: float | None = None, timeout: float | None = None) -> float:
    """Seconds from `since` (default: now) until no survivor's RIB or FDB names host `name`."""
    host = lab.topo.host(name)
    assert host is not None
    start = since if since is not None else time.monotonic()
    limit = timeout if timeout is not None else lab.topo.timers.hold_time * 3 + 10
    wait_until(f"the survivors to forget {name}", lambda: not mentions(lab, host), limit, interval=0.05)
    return time.monotonic() - start
