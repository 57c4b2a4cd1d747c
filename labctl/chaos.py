"""Chaos, the pure part: which fault comes next (a seeded scheduler), what must hold after each (invariants
over observed data), and what the run amounts to (the summary). `labctl/chaosrun.py` does the faults and
the observing; nothing here touches a lab.

A seed fixes the whole sequence of faults: the scheduler draws only from its own `random.Random(seed)`
and from the layout it keeps itself (a VM move changes it), never from time or from the lab, so
`labctl chaos --seed N` replays the faults of an earlier run step by step.
"""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from agent.entries import FdbEntry, NeighEntry
from agent.routes import ImetRoute, MacIpRoute, RouteEvent

from .verify import flood_diff, unicast_diff

AGENT_KILL = "agent-kill"
GOBGPD_KILL = "gobgpd-kill"
CONTROLLER_KILL = "controller-kill"
LINK_FLAP = "link-flap"
VM_MOVE = "vm-move"
MAC_BURST = "mac-burst"
KINDS = (AGENT_KILL, GOBGPD_KILL, CONTROLLER_KILL, LINK_FLAP, VM_MOVE, MAC_BURST)

FLAP_SECONDS = (0.5, 4.5)  # a link stays down this long: below and above the lab's 3 s hold time
BURST_MACS = (2, 4)  # MACs a VM takes in turn during a burst, before its own comes back
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([smh]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """`90s`, `10m`, `1h` or plain seconds -> seconds. ValueError naming the problem otherwise."""
    match = _DURATION_RE.fullmatch(str(text).strip().lower())
    if not match:
        raise ValueError(f"{text!r} is no duration: use seconds (600), 90s, 10m or 1h")
    seconds = float(match.group(1)) * _UNIT[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be more than 0 s")
    return seconds


def parse_kinds(text: str) -> tuple[str, ...]:
    """`agent-kill,vm-move` -> the kinds, in KINDS' order. ValueError naming an unknown one."""
    wanted = [k.strip() for k in str(text).split(",") if k.strip()]
    unknown = [k for k in wanted if k not in KINDS]
    if unknown or not wanted:
        raise ValueError(f"unknown fault kind {', '.join(unknown) or '(none given)'}: choose from {', '.join(KINDS)}")
    return tuple(k for k in KINDS if k in wanted)


# -- the scheduler -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """What the scheduler needs to know of a lab: live hosts and the daemons they run, the controllers,
    where each VM is plugged and which networks each host has."""

    hosts: tuple[str, ...]
    controllers: tuple[str, ...]
    roles: Mapping[str, frozenset[str]]  # host -> daemons it runs ("gobgpd", "agent", "zebra", ...)
    placement: Mapping[str, str]  # VM -> host
    vm_network: Mapping[str, str]  # VM -> network
    host_networks: Mapping[str, frozenset[str]]  # host -> networks it has
    vm_macs: frozenset[str] = frozenset()

    def moved(self, vm: str, host: str) -> Layout:
        return replace(self, placement={**self.placement, vm: host})

    def hosts_running(self, role: str) -> list[str]:
        return [h for h in self.hosts if role in self.roles.get(h, frozenset())]

    def move_targets(self, vm: str) -> list[str]:
        """Where `vm` may go: another host with its network, and only from a host it does not leave empty
        (every host keeps a VM, so a fault on it always has traffic across it to measure)."""
        source = self.placement[vm]
        if sum(1 for h in self.placement.values() if h == source) < 2:
            return []
        return [h for h in self.hosts if h != source and self.vm_network[vm] in self.host_networks.get(h, frozenset())]


@dataclass(frozen=True)
class Fault:
    step: int
    kind: str
    target: str  # a host, a controller or a VM
    to: str = ""  # vm-move: the host it goes to
    down_for: float = 0.0  # link-flap: seconds the link stays down
    macs: tuple[str, ...] = ()  # mac-burst: the MACs the VM takes in turn

    def describe(self) -> str:
        if self.kind == VM_MOVE:
            return f"move {self.target} to {self.to}"
        if self.kind == LINK_FLAP:
            return f"link of {self.target} down {self.down_for:.1f}s"
        if self.kind == MAC_BURST:
            return f"{self.target} MAC changed {len(self.macs)} times and back"
        daemon = {AGENT_KILL: "agent", GOBGPD_KILL: "gobgpd", CONTROLLER_KILL: "the BGP daemon"}[self.kind]
        return f"kill -9 {daemon} on {self.target}"


class Scheduler:
    """The faults of one seed, in order. A VM move always takes one of the VMs moved least so far, so no
    MAC moves often enough to trip duplicate detection (5 moves in 180 s), and never empties a host."""

    def __init__(self, seed: int, layout: Layout, kinds: Sequence[str] = KINDS) -> None:
        self.rng = random.Random(seed)
        self.layout = layout
        self.kinds = tuple(kinds)
        self.moves: dict[str, int] = {vm: 0 for vm in layout.placement}
        self.step = 0
        self._used_macs = set(layout.vm_macs)

    def possible(self) -> list[str]:
        """The kinds this layout allows now (a kind without a target is left out)."""
        lay = self.layout
        able = {
            AGENT_KILL: bool(lay.hosts_running("agent")),
            GOBGPD_KILL: bool(lay.hosts_running("gobgpd")),
            CONTROLLER_KILL: bool(lay.controllers),
            LINK_FLAP: bool(lay.hosts or lay.controllers),
            VM_MOVE: any(lay.move_targets(vm) for vm in lay.placement),
            MAC_BURST: bool(lay.placement),
        }
        return [k for k in self.kinds if able[k]]

    def next(self) -> Fault:
        kinds = self.possible()
        if not kinds:
            raise ValueError(f"no fault of {', '.join(self.kinds)} has a target in this lab")
        self.step += 1
        kind = self.rng.choice(kinds)
        rng, lay = self.rng, self.layout
        if kind == AGENT_KILL:
            return Fault(self.step, kind, rng.choice(lay.hosts_running("agent")))
        if kind == GOBGPD_KILL:
            return Fault(self.step, kind, rng.choice(lay.hosts_running("gobgpd")))
        if kind == CONTROLLER_KILL:
            return Fault(self.step, kind, rng.choice(lay.controllers))
        if kind == LINK_FLAP:
            return Fault(self.step, kind, rng.choice(lay.hosts + lay.controllers), down_for=round(rng.uniform(*FLAP_SECONDS), 1))
        if kind == VM_MOVE:
            movable = sorted(vm for vm in lay.placement if lay.move_targets(vm))
            least = min(self.moves[vm] for vm in movable)
            vm = rng.choice([v for v in movable if self.moves[v] == least])
            to = rng.choice(lay.move_targets(vm))
            self.moves[vm] += 1
            self.layout = lay.moved(vm, to)
            return Fault(self.step, kind, vm, to=to)
        vm = rng.choice(sorted(lay.placement))
        return Fault(self.step, kind, vm, macs=tuple(self._fresh_mac() for _ in range(rng.randint(*BURST_MACS))))

    def _fresh_mac(self) -> str:
        """A locally administered unicast MAC no VM has and no earlier burst used."""
        while True:
            raw = (0x02 << 40) | self.rng.getrandbits(40)
            mac = ":".join(f"{(raw >> s) & 0xFF:02x}" for s in range(40, -8, -8))
            if mac not in self._used_macs:
                self._used_macs.add(mac)
                return mac


# -- invariants ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostView:
    """One hypervisor as observed at one moment."""

    name: str
    vtep: str
    networks: tuple[tuple[int, str, str], ...]  # (VNI, vxlan device, bridge) of each network it has
    session: str  # its BGP session as the controller reports it
    ready: bool  # its control plane is ready and settled
    rib: tuple[RouteEvent, ...] | None  # None: unreadable
    fdb: frozenset[FdbEntry]
    local: frozenset[str]  # "<vni>/<mac>" of the MACs it holds itself
    local_ips: frozenset[str] = frozenset()  # the addresses of those MACs
    neighbours: frozenset[NeighEntry] | None = None  # of its bridges; None: the kernel learns them (not from routes)


@dataclass(frozen=True)
class VmPlace:
    name: str
    mac: str
    ip: str
    vni: int
    vtep: str  # of the host it is plugged into


@dataclass(frozen=True)
class Observation:
    hosts: tuple[HostView, ...]
    controller_rib: tuple[RouteEvent, ...] | None  # the first live controller's; None: unreadable
    vms: tuple[VmPlace, ...]
    pings: tuple[tuple[str, str, bool], ...] = ()  # (from, to, replied); empty: not probed
    other_controllers: tuple[tuple[str, tuple[RouteEvent, ...] | None], ...] = ()  # (name, RIB) of a second live controller


def _short(items: Iterable[object], limit: int = 3) -> str:
    listed = sorted(map(str, items))
    return ", ".join(listed[:limit]) + (f" (+{len(listed) - limit})" if len(listed) > limit else "")


def check_control(obs: Observation) -> list[str]:
    """Every session established, every control plane ready, every RIB readable."""
    problems = [f"{h.name}: session {h.session}" for h in obs.hosts if h.session != "ESTABLISHED"]
    problems += [f"{h.name}: control plane not ready" for h in obs.hosts if not h.ready]
    problems += [f"{h.name}: RIB unreadable" for h in obs.hosts if h.rib is None]
    if obs.controller_rib is None:
        problems.append("controller: RIB unreadable")
    return problems


def check_fdb_rib(obs: Observation) -> list[str]:
    """Every host's vxlan FDB = its RIB: flood lists = Type-3 VTEPs, unicast entries = winning remote Type-2."""
    problems = []
    for h in obs.hosts:
        if h.rib is None:
            continue
        rib = list(h.rib)
        for vni, device, _ in h.networks:
            kernel, wanted = flood_diff(rib, h.fdb, h.vtep, vni, device)
            if kernel != wanted:
                problems.append(f"{h.name} {device}: floods to {_short(kernel)}, RIB says {_short(wanted)}")
            have, want = unicast_diff(rib, h.fdb, h.local, h.vtep, vni, device)
            if have != want:
                diff = set(have.items()) ^ set(want.items())
                problems.append(f"{h.name} {device}: FDB and RIB differ on {_short(f'{m}@{v}' for m, v in diff)}")
    return problems


def expected_neighbours(rib: list[RouteEvent], vtep: str, vni: int, local_ips: frozenset[str]) -> dict[str, str]:
    """IP -> MAC the RIB's remote MAC/IP routes of `vni` say (highest sequence, then lowest VTEP, then
    lowest MAC wins), leaving out the addresses of this host's own VMs (never answered with a remote MAC)."""
    best: dict[str, tuple[tuple[int, int, str], str]] = {}
    for e in rib:
        r = e.route
        if isinstance(r, MacIpRoute) and r.label_vni == vni and r.ip is not None and str(r.vtep) != vtep:
            rank = (-(r.attrs.mac_mobility_seq or 0), int(r.vtep), r.mac)
            if str(r.ip) not in best or rank < best[str(r.ip)][0]:
                best[str(r.ip)] = (rank, r.mac)
    return {ip: mac for ip, (_, mac) in best.items() if ip not in local_ips}


def check_neighbours_rib(obs: Observation) -> list[str]:
    """Every host's ARP/ND suppression entries (its bridges' neighbours) = the remote addresses of its RIB."""
    problems = []
    for h in obs.hosts:
        if h.rib is None or h.neighbours is None:
            continue
        for vni, _, bridge in h.networks:
            have = {str(n.ip): n.mac for n in h.neighbours if n.device == bridge and not n.ip.is_multicast}  # the kernel's own
            want = expected_neighbours(list(h.rib), h.vtep, vni, h.local_ips)
            if have != want:
                diff = set(have.items()) ^ set(want.items())
                problems.append(f"{h.name} {bridge}: neighbours and RIB differ on {_short(f'{ip}={m}' for ip, m in diff)}")
    return problems


def check_controller_union(obs: Observation) -> list[str]:
    """The controller's RIB = the union of the routes the hosts originate, and every host's RIB = the controller's."""
    if obs.controller_rib is None:
        return []
    ctrl = {e.route.key for e in obs.controller_rib}
    union = {e.route.key for h in obs.hosts if h.rib is not None for e in h.rib if e.local}
    problems = []
    if ctrl - union:
        problems.append(f"controller has routes no host originates: {_short(ctrl - union)}")
    if union - ctrl:
        problems.append(f"controller lacks routes hosts originate: {_short(union - ctrl)}")
    for h in obs.hosts:
        if h.rib is not None and (keys := {e.route.key for e in h.rib}) != ctrl:
            problems.append(f"{h.name}'s RIB differs from the controller's: extra {_short(keys - ctrl) or 'none'}, "
                            f"missing {_short(ctrl - keys) or 'none'}")
    for name, rib in obs.other_controllers:  # redundant controllers hold the same routes
        if rib is None:
            problems.append(f"controller {name}: RIB unreadable")
        elif (keys := {e.route.key for e in rib}) != ctrl:
            problems.append(f"controller {name}'s RIB differs from the first controller's: extra {_short(keys - ctrl) or 'none'}, "
                            f"missing {_short(ctrl - keys) or 'none'}")
    return problems


def check_orphans(obs: Observation) -> list[str]:
    """No route a VM or a live host does not explain: each Type-2 is a VM's MAC (and its own address)
    at the VTEP it is plugged behind, each Type-3 a live host's."""
    if obs.controller_rib is None:
        return []
    by_mac = {(vm.vni, vm.mac): vm for vm in obs.vms}
    live = {h.vtep for h in obs.hosts}
    problems = []
    for e in obs.controller_rib:
        r = e.route
        if isinstance(r, ImetRoute):
            if str(r.originator) not in live:
                problems.append(f"Type-3 of {r.originator}, no live host")
        elif isinstance(r, MacIpRoute):
            vm = by_mac.get((r.label_vni or 0, r.mac))
            if vm is None:
                problems.append(f"Type-2 {r.mac} (vni {r.label_vni}) at {r.vtep}: no VM has that MAC")
            elif str(r.vtep) != vm.vtep:
                problems.append(f"Type-2 {r.mac} ({vm.name}) at {r.vtep}: it lives behind {vm.vtep}")
            elif r.ip is not None and ipaddress.ip_address(vm.ip) != r.ip:
                problems.append(f"Type-2 {r.mac} ({vm.name}) with {r.ip}: its address is {vm.ip}")
    return problems


def check_pings(obs: Observation) -> list[str]:
    failed = [f"{a}->{b}" for a, b, ok in obs.pings if not ok]
    return [f"no ping reply: {_short(failed, 6)}"] if failed else []


def control_problems(obs: Observation) -> list[str]:
    """Every invariant that RIBs and FDBs alone decide (pings are judged apart, once these hold)."""
    problems = check_control(obs)
    if problems:
        return problems
    return check_fdb_rib(obs) + check_neighbours_rib(obs) + check_controller_union(obs) + check_orphans(obs)


# -- the run's outcome ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    fault: Fault
    convergence: float | None  # seconds from the fault's end to every invariant holding (None: never)
    lost_ms: int | None  # traffic a 10 ms ping across the affected host lost (None: not measured)
    probe: str = ""  # "vm4 -> vm1"
    problems: tuple[str, ...] = ()  # invariants still broken at the timeout, or what went wrong
    held_by: tuple[str, ...] = ()  # what was broken last before every invariant held (why it took that long)

    @property
    def ok(self) -> bool:
        return not self.problems and self.convergence is not None


@dataclass
class Summary:
    seed: int
    duration: float
    kinds: tuple[str, ...]
    steps: list[StepResult] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    @property
    def failures(self) -> list[StepResult]:
        return [s for s in self.steps if not s.ok]

    def by_kind(self) -> dict[str, tuple[int, int]]:
        """Kind -> (survived, failed), for every kind that ran."""
        out: dict[str, tuple[int, int]] = {}
        for s in self.steps:
            good, bad = out.get(s.fault.kind, (0, 0))
            out[s.fault.kind] = (good + s.ok, bad + (not s.ok))
        return out

    def worst_convergence(self, kind: str | None = None) -> StepResult | None:
        done = [s for s in self.steps if s.convergence is not None and kind in (None, s.fault.kind)]
        return max(done, key=lambda s: s.convergence or 0.0, default=None)

    def worst_loss(self, kind: str | None = None) -> StepResult | None:
        measured = [s for s in self.steps if s.lost_ms is not None and kind in (None, s.fault.kind)]
        return max(measured, key=lambda s: s.lost_ms or 0, default=None)

    def headline(self) -> str:
        survived = sum(s.ok for s in self.steps)
        conv, loss = self.worst_convergence(), self.worst_loss()
        text = (f"seed {self.seed}: {survived} of {len(self.steps)} faults survived in {self.elapsed:.0f}s; worst convergence "
                + (f"{conv.convergence:.2f}s (step {conv.fault.step}, {conv.fault.describe()})" if conv else "n/a")
                + "; worst loss " + (f"{loss.lost_ms} ms (step {loss.fault.step}, {loss.fault.describe()})" if loss else "n/a"))
        for f in self.failures:
            text += f"; FAILED step {f.fault.step} ({f.fault.describe()}): {'; '.join(f.problems) or 'not converged'}"
        return text
