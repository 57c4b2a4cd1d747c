"""`labctl verify`: judging. Every claim is checked against what `observe` reads (RIBs, kernel FDBs and
neighbour tables, real pings between VM namespaces) and what `capture` sees on the underlay links;
this module reads nothing itself."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Callable

from agent.entries import FdbEntry
from agent.routes import MacIpRoute, RouteEvent

from . import netem, portsec, probes
from .capture import arp_frame, capturing, decode_vxlan, from_mac, send_frames
from .errors import LabError
from .lab import Lab
from .migrate import move_measured
from .observe import (
    Snapshot,
    expected_macs,
    imet_vteps,
    link_mac,
    nft_drops,
    ping,
    poll,
    read_fdb,
    read_neighbours,
    read_rib,
    snapshot,
    vm_arp,
    vm_forget,
    wait_until,
    warm_up,
)
from .plan import UPLINK, VM_IFNAME
from .parallel import run_all
from .topology import Host, Network, Vm

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CheckResult:
    id: str
    name: str
    ok: bool
    evidence: str
    seconds: float = 0.0  # how long the check took (verify --json, --junit)


# -- which host pairs the packet checks probe ---------------------------------------------

ALL_PAIRS_UP_TO = 6  # hosts: up to this many, every pair is probed (15 pairs)
SAMPLED_PAIRS = 12  # above: at most this many pairs, spread over a ring of the hosts


SAMPLED_HOSTS = 12  # above ALL_PAIRS_UP_TO hosts: the checks that probe each host probe at most this many
PROBE_WORKERS = 16  # probes (pings, ARP rounds) of one check run at a time (mostly waiting for replies)


def sample_hosts(alive: list[Host]) -> tuple[list[Host], str]:
    """The hosts a per-host probe covers: all up to ALL_PAIRS_UP_TO, else SAMPLED_HOSTS spread evenly
    over the list (deterministic: the same lab gives the same sample), with a note saying so."""
    if len(alive) <= max(ALL_PAIRS_UP_TO, SAMPLED_HOSTS):
        return list(alive), ""
    count = SAMPLED_HOSTS
    chosen = [alive[i * len(alive) // count] for i in range(count)]
    return chosen, f"sampled {len(chosen)} of {len(alive)} hosts; "


def host_pairs(alive: list[Host]) -> tuple[list[tuple[Host, Host]], str]:
    """The host pairs the packet checks probe, and a note saying so when they are a sample.

    Probing every pair of a 50-host lab means 1225 rounds of pings and captures on every uplink; above
    ALL_PAIRS_UP_TO hosts the pairs are neighbours on a ring (h1-h2, h2-h3, ..., hN-h1, every host on
    both ends), thinned evenly to SAMPLED_PAIRS. The control-plane checks (RIBs, FDBs) still cover all hosts."""
    every = list(combinations(alive, 2))
    if len(alive) <= ALL_PAIRS_UP_TO:
        return every, ""
    ring = [(alive[i], alive[(i + 1) % len(alive)]) for i in range(len(alive))]
    step = max(1, -(-len(ring) // SAMPLED_PAIRS))
    chosen = ring[::step][:SAMPLED_PAIRS]
    return chosen, f"sampled {len(chosen)} of {len(every)} host pairs (ring over {len(alive)} hosts); "


# -- probing over an impaired underlay (labctl netem) -----------------------------------------

PINGS = 3  # replies a ping probe must get back


def ping_deadline(lab: Lab) -> float:
    """Seconds a ping probe may take to get PINGS replies: longer when hosts' uplinks are delayed."""
    return 5.0 + 4 * _worst_delay(lab)


def _worst_delay(lab: Lab) -> float:
    """The largest one-way delay (+ jitter) of any live host's uplink, in seconds."""
    return max(((h.netem.delay_ms + h.netem.jitter_ms) / 1000 for h in lab.hosts_alive() if h.netem), default=0.0)


def settle_time(lab: Lab) -> float:
    """How long a capture keeps listening after its probe: packets cross up to two impaired uplinks."""
    return 0.2 + 2 * _worst_delay(lab)


def uplinks(hosts: list[Host]) -> list[tuple[str, tuple[str, ...]]]:
    """Capture points that see all of each host's underlay traffic (an impaired uplink: also its delay line's tap)."""
    return [(h.name, netem.egress_interfaces(h.name) if h.netem else (UPLINK,)) for h in hosts]


def probe_ping(lab: Lab, src: Vm, dst: Vm, count: int = PINGS) -> tuple[int, int, bool]:
    """(sent, received, ok): ping until `count` replies or the deadline; ok = all `count` replies came.
    Over a lossy underlay (netem) a lost echo is sent again instead of failing the check; a clean
    underlay loses none, so there sent == received."""
    sent, got = ping(lab, src, dst, count=count, deadline=ping_deadline(lab))
    return sent, got, got >= count


# -- control plane ---------------------------------------------------------------------


def flood_diff(rib: Iterable[RouteEvent], fdb: Iterable[FdbEntry], vtep: str, vni: int, device: str) -> tuple[set[str], set[str]]:
    """(VTEPs a vxlan device floods to, remote VTEPs the RIB's Type-3 routes of `vni` name)."""
    kernel = {str(e.vtep) for e in fdb if e.device == device and e.is_flood}
    return kernel, set(imet_vteps(rib, vni)) - {vtep}


def unicast_diff(rib: list[RouteEvent], fdb: Iterable[FdbEntry], local: frozenset[str], vtep: str, vni: int,
                 device: str) -> tuple[dict[str, str], dict[str, str]]:
    """(MAC -> VTEP of a vxlan device's unicast entries, MAC -> VTEP the RIB's winning remote Type-2
    routes of `vni` say, leaving out MACs this host holds itself: a local winner has no entry)."""
    have = {e.mac: str(e.vtep) for e in fdb if e.device == device and not e.is_flood}
    want = {m: v for m, v in expected_macs(rib, vtep, vni).items() if f"{vni}/{m}" not in local}
    return have, want



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
    indexed: dict[tuple[str, int], dict[str, str]] = {}  # (viewer, vni) -> its Type-3 VTEPs: each RIB scanned once per VNI

    def imet(viewer: str, vni: int) -> dict[str, str]:
        if (viewer, vni) not in indexed:
            indexed[(viewer, vni)] = imet_vteps(snap.ribs.get(viewer, []), vni)
        return indexed[(viewer, vni)]

    for host in alive:
        for net in lab.plan.host_networks(host):
            viewers = [c.ns for c in lab.controllers_alive()] + [o.name for o in alive if o is not host and net in lab.plan.host_networks(o)]
            for viewer in viewers:
                nh = imet(viewer, net.vni).get(str(host.vtep))
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
    return CheckResult("rib-learned", "every other hypervisor and every controller learned each VTEP", not problems, evidence)


def check_flood_lists(lab: Lab, snap: Snapshot) -> CheckResult:
    problems: list[str] = []
    alive = lab.hosts_alive()
    for host in alive:
        for net in lab.plan.host_networks(host):
            kernel, rib = flood_diff(snap.ribs.get(host.name, []), snap.fdb.get(host.name, set()), str(host.vtep), net.vni, net.vxlan_device)
            expected = {str(o.vtep) for o in alive if o is not host and net in lab.plan.host_networks(o)}
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


def _conversation(frames: list, a: Vm, b: Vm) -> list:
    ips = {str(a.ip), str(b.ip)}
    return [f for f in frames if f is not None and f.inner_kind == "icmp" and {f.inner_src_ip, f.inner_dst_ip} == ips]


def check_same_host(lab: Lab) -> CheckResult | None:
    hosts, sampled = sample_hosts(lab.hosts_alive())
    probes_: list[tuple[Host, Vm, Vm]] = []
    for host in hosts:
        by_net: dict[str, list[Vm]] = {}
        for vm in host.attached:
            by_net.setdefault(vm.network, []).append(vm)
        probes_ += [(host, vms[0], vms[1]) for vms in by_net.values() if len(vms) >= 2]  # one pair per network
    if not probes_:
        return None  # no host has two VMs on one network: nothing to prove

    # one capture per probed host's uplink for all the pings, which run in parallel: a probe's packets are
    # told apart by its VMs' addresses
    with capturing(uplinks(hosts), settle=settle_time(lab)) as caps:
        replies = run_all(probes_, lambda item: probe_ping(lab, item[1], item[2]), PROBE_WORKERS, "same-host")
    seen = {name: [f for f in map(decode_vxlan, cap.packets) if f is not None] for name, cap in caps.items()}
    evidence, ok = [], True
    for (host, a, b), (sent, got, replied) in zip(probes_, replies):
        leaked = _conversation(seen[host.name], a, b)
        ok &= replied and not leaked
        evidence.append(f"{a.name}→{b.name} on {host.name}: {got}/{sent} replies, {len(leaked)} VXLAN packets of it on the uplink")
    return CheckResult("same-host", "VMs on one host talk through the bridge only", ok, sampled + "; ".join(evidence))


def _vm_pairs(probed: list[tuple[Host, Host]], networks: list[Network]) -> list[tuple[Host, Host, Vm, Vm]]:
    """One VM pair per network each host pair shares (the first VM of that network on each host)."""
    pairs = []
    for ha, hb in probed:
        for net in networks:
            pair = next(((a, b) for a in ha.attached for b in hb.attached if a.network == b.network == net.name), None)
            if pair is not None:
                pairs.append((ha, hb, *pair))
    return pairs


def check_cross_host(lab: Lab) -> CheckResult | None:
    """Pings across hosts, each pair's VXLAN seen between exactly its two VTEPs. One capture on every live
    uplink covers all the pairs, whose pings run in parallel: a pair's packets are told apart by its VMs'
    addresses, so a packet of it on a third host's uplink is flooding, whatever else runs."""
    alive = lab.hosts_alive()
    probed, sampled = host_pairs(alive)
    pairs = _vm_pairs(probed, list(lab.topo.networks))
    if not pairs:
        return None  # fewer than two live hosts share a network

    def learn(pair: tuple[Host, Host, Vm, Vm]) -> float | str:
        ha, hb, a, b = pair
        try:
            return warm_up(lab, (ha, a), (hb, b))
        except LabError as exc:
            return str(exc)

    learned = run_all(pairs, learn, PROBE_WORKERS, "warm-up")
    with capturing(uplinks(alive), settle=settle_time(lab)) as caps:
        replies = run_all(pairs, lambda p: probe_ping(lab, p[2], p[3]), PROBE_WORKERS, "cross-host")
    seen = {name: [f for f in map(decode_vxlan, cap.packets) if f is not None] for name, cap in caps.items()}
    evidence, ok = [], True
    for (ha, hb, a, b), learned_in, (sent, got, replied) in zip(pairs, learned, replies):
        frames = {name: _conversation(fs, a, b) for name, fs in seen.items()}
        ends = {str(ha.vtep), str(hb.vtep)}
        wrong_vteps = [f for name in (ha.name, hb.name) for f in frames[name] if {f.outer_src, f.outer_dst} != ends]
        bystanders = {name: len(fs) for name, fs in frames.items() if name not in (ha.name, hb.name) and fs}
        vni = lab.topo.network(a.network).vni
        wrong_vni = [f for fs in frames.values() for f in fs if f.vni != vni]
        good = (not isinstance(learned_in, str) and replied and bool(frames[ha.name]) and bool(frames[hb.name])
                and not wrong_vteps and not bystanders and not wrong_vni)
        ok &= good
        learning = f"MACs learned in {learned_in:.2f}s" if not isinstance(learned_in, str) else f"NOT LEARNED: {learned_in}"
        note = f"{a.name}@{ha.name}→{b.name}@{hb.name}: {learning}, {got}/{sent} replies, " \
               f"VXLAN {ha.vtep}↔{hb.vtep} vni {vni}: {len(frames[ha.name])}+{len(frames[hb.name])} pkts"
        if bystanders:
            note += f", FLOODED to {bystanders}"
        if wrong_vteps or wrong_vni:
            note += f", {len(wrong_vteps)} with wrong VTEPs, {len(wrong_vni)} with wrong VNI"
        evidence.append(note)
    vm_note = f"{len(pairs)} VM pairs; " if sampled else ""
    return CheckResult("cross-host", "VMs across hosts talk over VXLAN, unicast between exactly the two VTEPs", ok,
                       sampled + vm_note + "; ".join(evidence))


def check_mac_tables(lab: Lab, snap: Snapshot) -> CheckResult:
    """Every hypervisor's vxlan unicast FDB holds exactly the remote MACs of its RIB, each at the right VTEP
    (the snapshot's: each host's FDB was read right after its RIB)."""
    problems, counts = [], []
    vm_macs = {vm.mac: (h, vm) for h, vm in lab.topo.vms()}
    for host in lab.hosts_alive():
        if host.name not in snap.ribs:
            problems.append(f"{host.name}: RIB unreadable ({snap.errors.get(host.name, 'not read')})")
            continue
        rib = snap.ribs[host.name]
        fdb = snap.fdb.get(host.name, set())
        local = frozenset(m.key for m in lab.node(host).local_macs(rib))
        for net in lab.plan.host_networks(host):
            have, want = unicast_diff(rib, fdb, local, str(host.vtep), net.vni, net.vxlan_device)
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


def check_arp_suppression(lab: Lab) -> CheckResult | None:
    """An ARP request for a remote VM is answered by the local hypervisor; no ARP crosses the underlay.

    In two rounds over all probed pairs (each round's probes in parallel): first every pair's VMs make
    themselves known, then one capture on every live uplink watches every pair's VMs ARP for each other."""
    alive = lab.hosts_alive()
    probed, sampled = host_pairs(alive)
    pairs = [(ha, hb, *pair) for ha, hb in probed
             if (pair := next(((a, b) for a in ha.attached for b in hb.attached if a.network == b.network), None)) is not None]
    if not pairs:
        return None

    def prepare(pair: tuple[Host, Host, Vm, Vm]) -> str | None:
        """Both VMs announce themselves (gratuitous ARP, as a booting or migrated VM does) and resolve each
        other once, so each hypervisor sees its VM's ARP and learns its address (FRR: through the kernel)."""
        ha, hb, a, b = pair
        bridge = lab.topo.network(a.network).bridge
        for vm in (a, b):
            send_frames(lab.plan.vm_ns(vm), arp_frame(vm.mac, str(vm.ip), str(vm.ip)), count=1)
        vm_forget(lab, a, str(b.ip))
        vm_forget(lab, b, str(a.ip))
        probe_ping(lab, a, b, count=1)
        probe_ping(lab, b, a, count=1)
        try:
            wait_until(f"{ha.name} knows {b.name}'s IP", lambda: read_neighbours(lab, ha, bridge).get(str(b.ip)) == b.mac
                       and read_neighbours(lab, hb, bridge).get(str(a.ip)) == a.mac, 10, 0.05)
        except LabError as exc:
            return str(exc)
        return None

    def probe(pair: tuple[Host, Host, Vm, Vm]) -> tuple[int, int, bool, str | None]:
        _, _, a, b = pair
        vm_forget(lab, a, str(b.ip))
        vm_forget(lab, b, str(a.ip))
        sent, got, replied = probe_ping(lab, a, b, count=1)
        return sent, got, replied, vm_arp(lab, a, str(b.ip))

    prepared = run_all(pairs, prepare, PROBE_WORKERS, "arp-prepare")
    ready = [pair for pair, failure in zip(pairs, prepared) if failure is None]
    with capturing(uplinks(alive), settle=settle_time(lab)) as caps:
        outcomes = run_all(ready, probe, PROBE_WORKERS, "arp-probe")
    arps = [f for cap in caps.values() for f in map(decode_vxlan, cap.packets) if f is not None and f.inner_kind == "arp"]
    evidence, ok = [], True
    probed_out = dict(zip([id(p) for p in ready], outcomes))
    for pair, failure in zip(pairs, prepared):
        _, _, a, b = pair
        ha = pair[0]
        if failure is not None:
            ok = False
            evidence.append(f"{a.name}/{b.name}: {failure}")
            continue
        sent, got, replied, learned = probed_out[id(pair)]
        ips = {str(a.ip), str(b.ip)}
        crossed = [f for f in arps if {f.inner_src_ip, f.inner_dst_ip} == ips]
        good = replied and learned == b.mac and not crossed
        ok &= good
        evidence.append(f"{a.name}@{ha.name} ARP for {b.name}: answered {learned or 'never'} "
                        f"({'right' if learned == b.mac else 'WRONG'} MAC), {len(crossed)} ARP packets on the underlay, ping {got}/{sent}")
    return CheckResult("arp-suppression", "ARP for remote VMs is answered locally (nothing crosses the underlay)", ok, sampled + "; ".join(evidence))


def _migration_problems(vm: Vm, source: Host, target: Host, fdbs: dict[str, set[FdbEntry]],
                        controller_ribs: dict[str, list[RouteEvent]]) -> list[str]:
    """What is still wrong after `vm` moved from `source` to `target`: a host's FDB pointing its MAC elsewhere,
    a controller (each live one: its name -> RIB) still holding the source's route for it."""
    problems = []
    for host_name, entries in fdbs.items():
        pointing = {str(e.vtep) for e in entries if not e.is_flood and e.mac == vm.mac}
        if pointing != {str(target.vtep)}:
            problems.append(f"{host_name} points {vm.mac} at {sorted(pointing) or 'nothing'}")
    for name, rib in sorted(controller_ribs.items()):
        if any(isinstance(e.route, MacIpRoute) and e.route.mac == vm.mac and str(e.route.vtep) == str(source.vtep) for e in rib):
            problems.append(f"{name} still has {source.name}'s route for {vm.mac}")
    return problems


def _controller_ribs(lab: Lab) -> dict[str, list[RouteEvent]]:
    """Every live controller's RIB, by its name."""
    return {c.name: read_rib(lab, c.ns) for c in lab.controllers_alive()}


def check_migration(lab: Lab, vm: Vm, source: Host, target: Host) -> CheckResult:
    """After a move: every live hypervisor points the VM's MAC at the new VTEP (or has it local), the old
    hypervisor withdrew its route, and nobody still names the old VTEP for it."""
    network = lab.topo.network(vm.network)

    def read() -> tuple[dict[str, set[FdbEntry]], dict[str, list[RouteEvent]]]:
        fdbs = {h.name: read_fdb(lab, h) for h in lab.hosts_alive() if h.name != target.name}
        return fdbs, _controller_ribs(lab)

    def judge(seen: tuple[dict[str, set[FdbEntry]], dict[str, list[RouteEvent]]]) -> list[str]:
        return _migration_problems(vm, source, target, *seen)

    polled = poll(read, lambda seen: not judge(seen), 10, 0.05)
    problems = judge(polled.value) if polled.value is not None else ["the RIBs could not be read"]
    ribs = polled.value[1] if polled.value is not None else {}
    seq = next(((r.route.attrs.mac_mobility_seq or 0) for rib in ribs.values() for r in rib
                if isinstance(r.route, MacIpRoute) and r.route.mac == vm.mac and r.route.ip is None), "unknown")
    return CheckResult("migration", f"after moving {vm.name} every FDB follows it", not problems,
                       "; ".join(problems) or f"all FDBs point {vm.mac} at {target.vtep} ({network.vxlan_device}), "
                       f"{source.name} withdrew its route at {', '.join(sorted(ribs)) or 'no controller'}, sequence number now {seq}")


def run_migration_scenario(lab: Lab, progress: Progress = lambda _: None, limit: float = 1.0) -> list[CheckResult]:
    """Move a VM to another hypervisor and back, each time measuring the outage a continuous ping sees."""
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
        began = time.monotonic()
        outage, moved_from, moved_to, moved = move_measured(lab, vm.name, dst.name)
        follow = check_migration(lab, moved, moved_from, moved_to)
        ok = follow.ok and outage.seconds < limit
        results.append(CheckResult(f"migration-{dst.name}", f"{vm.name} moves {src.name} → {dst.name}: outage under {limit:.0f} s, FDBs follow",
                                   ok, f"outage {outage.seconds * 1000:.0f} ms ({outage.received}/{outage.sent} replies); {follow.evidence}",
                                   time.monotonic() - began))
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
        with capturing(uplinks(alive), settle=settle_time(lab)) as caps:
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
    tests: list[tuple[Vm, Vm, Vm]] = []
    tested: set[tuple[str, str]] = set()
    for a, b in ((a, b) for a in vms for b in vms if a.network != b.network):
        if (a.network, b.network) in tested:
            continue
        control = next((c for c in vms if c.network == a.network and c is not a and where[c.name] is not where[a.name]), None)
        if control is None:
            continue
        tested.add((a.network, b.network))
        tests.append((a, b, control))
    if not tests:
        return None

    def probe(test: tuple[Vm, Vm, Vm]) -> tuple[bool, str]:
        a, b, control = test
        points = [(lab.plan.vm_ns(b), VM_IFNAME), (lab.plan.vm_ns(control), VM_IFNAME)]
        with capturing(points, from_mac(a.mac), settle=settle_time(lab)) as caps:
            send_frames(lab.plan.vm_ns(a), arp_frame(a.mac, str(a.ip), str(b.ip)), count=2)
            send_frames(lab.plan.vm_ns(a), bytes(Ether(src=a.mac, dst=b.mac) / IP(src=str(a.ip), dst=str(b.ip)) / ICMP()), count=2)
        leaked = len(caps[lab.plan.vm_ns(b)].packets)
        seen = len(caps[lab.plan.vm_ns(control)].packets)
        return leaked == 0 and seen > 0, (f"{a.name}({a.network})→{b.name}({b.network}): {leaked} frames arrived"
                                          f" (control {control.name} in {a.network} saw {seen})")

    # in parallel: a test's frames come from its VM a's MAC; another test from the same VM only adds
    # frames to its control's count, and a frame of a at a VM of another network is a leak either way
    outcomes = run_all(tests, probe, PROBE_WORKERS, "isolation")
    return CheckResult("isolation", "VMs on different VNIs are isolated at L2", all(ok for ok, _ in outcomes),
                       "; ".join(note for _, note in outcomes))


def _guarded(lab: Lab) -> list[tuple[Host, Vm]]:
    """VMs whose port has port security, with their hosts (the attackers the security checks play)."""
    return [(h, vm) for h in lab.hosts_alive() for vm in h.attached if vm.port_security]


def check_vxlan_injection(lab: Lab) -> CheckResult | None:
    """A VM sends VXLAN packets of another network's VNI to its own hypervisor's VTEP and to a remote one
    (through its hypervisor as next hop, the bridge's MAC): no VM of that network sees the inner frame.
    Control: a normal cross-host ping from the same VM works."""
    alive = lab.hosts_alive()
    for host, a in _guarded(lab):
        others = [h for h in alive if h is not host]
        peer = next((vm for h in others for vm in h.attached if vm.network == a.network), None)
        if not others or peer is None:
            continue
        victim_net = next((n for n in lab.topo.networks if n.name != a.network), lab.topo.network(a.network))
        watched, sampled = sample_hosts(alive)  # a big lab: the two hosts the packets go to and a sample of the others
        watched = list(dict.fromkeys([host, others[0], *watched]))
        sampled = f"sampled: VMs of {len(watched)} of {len(alive)} hosts watched (both targets and a sample); " if sampled else ""
        victims = [vm for h in watched for vm in h.attached if vm.network == victim_net.name and vm is not a]
        if not victims:
            continue
        next_hop = link_mac(host.name, lab.topo.network(a.network).bridge)
        before = nft_drops(host.name, "inet", portsec.HOST_TABLE)
        with capturing([(lab.plan.vm_ns(v), VM_IFNAME) for v in victims], probes.injected(), settle=settle_time(lab)) as caps:
            for vtep in (host.vtep, others[0].vtep):
                frame = probes.vxlan_from_vm(a.mac, next_hop, str(a.ip), str(vtep), victim_net.vni)
                send_frames(lab.plan.vm_ns(a), frame, count=3)
        arrived = {name: len(cap.packets) for name, cap in caps.items() if cap.packets}
        dropped = nft_drops(host.name, "inet", portsec.HOST_TABLE) - before
        sent, got, replied = probe_ping(lab, a, peer)
        ok = not arrived and replied and dropped >= 6
        evidence = (f"{sampled}{a.name}@{host.name} → VNI {victim_net.vni} via {host.vtep} and {others[0].vtep}: "
                    f"{sum(arrived.values())} inner frames arrived at {len(victims)} VMs of {victim_net.name}"
                    f"{' (' + ', '.join(arrived) + ')' if arrived else ''}, {dropped} packets dropped at {host.name}'s stack; "
                    f"control ping {a.name}→{peer.name}: {got}/{sent}")
        return CheckResult("vxlan-injection", "a VM's VXLAN packets to the VTEPs are dropped (no injection into a VNI)", ok, evidence)
    return None


def check_arp_spoof(lab: Lab) -> CheckResult | None:
    """A VM sends a gratuitous ARP claiming another VM's address: its port drops it, no hypervisor changes
    its view of the victim. Control: a third VM's ARP for the victim is answered with the victim's MAC."""
    alive = lab.hosts_alive()
    for host, a in _guarded(lab):
        victim = next(((h, vm) for h in alive if h is not host for vm in h.attached if vm.network == a.network), None)
        if victim is None:
            continue
        vhost, b = victim
        asker = next((vm for h in alive for vm in h.attached if vm.network == a.network and vm not in (a, b)), None)
        bridge = lab.topo.network(a.network).bridge
        send_frames(lab.plan.vm_ns(b), arp_frame(b.mac, str(b.ip), str(b.ip)), count=1)  # the victim announces itself
        observers = [h for h in alive if h is not vhost]
        try:
            wait_until(f"every host resolves {b.name}", lambda: all(read_neighbours(lab, h, bridge).get(str(b.ip)) == b.mac for h in observers), 10, 0.1)
        except LabError as exc:
            return CheckResult("arp-spoof", "a spoofed gratuitous ARP changes no host's view", False, f"before the spoof: {exc}")
        before = nft_drops(host.name, "bridge", portsec.PORTS_TABLE)
        send_frames(lab.plan.vm_ns(a), probes.spoofed_garp(a.mac, str(b.ip)), count=3)
        time.sleep(1.5 + 4 * _worst_delay(lab))  # what a learned spoof would take to reach the other hosts (Type-2 route)
        views = {h.name: read_neighbours(lab, h, bridge).get(str(b.ip)) for h in observers}
        dropped = nft_drops(host.name, "bridge", portsec.PORTS_TABLE) - before
        claimed = [e for rib in _controller_ribs(lab).values() for e in rib if isinstance(e.route, MacIpRoute)
                   and e.route.mac == a.mac and str(e.route.ip) == str(b.ip)]
        ok = all(mac == b.mac for mac in views.values()) and not claimed and dropped >= 3
        evidence = (f"{a.name}@{host.name} claimed {b.ip} ({b.name}@{vhost.name}): {dropped} frames dropped at its port, "
                    f"hosts resolve {b.ip} to " + ", ".join(f"{n}={m or 'nothing'}" for n, m in sorted(views.items()))
                    + f", {len(claimed)} routes bind it to {a.mac}")
        if asker is not None:
            vm_forget(lab, asker, str(b.ip))
            sent, got, replied = probe_ping(lab, asker, b, count=1)
            answered = vm_arp(lab, asker, str(b.ip))
            ok &= answered == b.mac and replied
            evidence += f"; control: {asker.name}'s ARP for {b.ip} answered {answered or 'never'}, ping {got}/{sent}"
        return CheckResult("arp-spoof", "a spoofed gratuitous ARP changes no host's view", ok, evidence)
    return None


def run_checks(lab: Lab, only: tuple[str, ...] = (), progress: Progress = lambda _: None) -> list[CheckResult]:
    """Run the checks (all, or those whose id starts with one of `only`) one after another, each timed."""
    started = time.monotonic()
    snap = snapshot(lab)
    progress(f"read RIBs (gRPC) and FDBs (netlink) of {len(snap.ribs) + len(snap.errors)} nodes in {time.monotonic() - started:.1f}s")
    checks: list[tuple[str, Callable[[], CheckResult | None]]] = [
        ("rib-own", lambda: check_own_vtep(lab, snap)),
        ("rib-learned", lambda: check_learned(lab, snap)),
        ("fdb-flood", lambda: check_flood_lists(lab, snap)),
        ("fdb-macs", lambda: check_mac_tables(lab, snap)),
        ("same-host", lambda: check_same_host(lab)),
        ("cross-host", lambda: check_cross_host(lab)),
        ("isolation", lambda: check_isolation(lab)),
        ("bum-scope", lambda: check_bum_scope(lab)),
        ("arp-suppression", lambda: check_arp_suppression(lab)),
        ("vxlan-injection", lambda: check_vxlan_injection(lab)),
        ("arp-spoof", lambda: check_arp_spoof(lab)),
    ]
    results: list[CheckResult] = []
    for check_id, run in checks:
        if only and not any(check_id.startswith(o) for o in only):
            continue
        started = time.monotonic()
        result = run()
        took = time.monotonic() - started
        progress(f"check {check_id}: {'-' if result is None else 'pass' if result.ok else 'FAIL'} in {took:.1f}s")
        if result is not None:
            results.append(replace(result, seconds=took))
    for dead in lab.state.down_hosts:
        results.append(CheckResult(f"down-{dead}", f"{dead} is down (labctl kill)", True, "excluded from the checks above; its routes must be gone"))
    return results
