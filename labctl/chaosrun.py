"""`labctl chaos`: random faults on a running lab for a bounded time, each followed by a wait until every
invariant holds again (`labctl/chaos.py` decides which fault and judges; this module does and reads).

Each step: a 10 ms ping across the affected host runs while the fault happens (`faults.measured`), then
the lab is observed until every invariant holds or the timeout passes: sessions up and agents ready,
every vxlan FDB = its RIB, the controller's RIB = the union of the routes the hosts originate (and every
host's RIB = the controller's), no route that no VM or live host explains, every pair of VMs of a network
pings. The first step that does not converge ends the run: the lab is then left as it is, to be looked at.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from itertools import combinations

from agent.errors import GobgpUnavailable
from agent.routes import MacIpRoute

from . import faults, migrate, netns, observe, portsec, probes
from .capture import send_frames
from .chaos import (
    AGENT_KILL,
    CONTROLLER_KILL,
    GOBGPD_KILL,
    LINK_FLAP,
    MAC_BURST,
    VM_MOVE,
    Fault,
    HostView,
    Layout,
    Observation,
    Scheduler,
    StepResult,
    Summary,
    VmPlace,
    check_pings,
    control_problems,
)
from .errors import LabError
from .interrupts import INTERRUPT
from .lab import Lab
from .plan import VM_IFNAME
from .topology import Host, Vm

log = logging.getLogger("evpn.labctl.chaos")

Progress = Callable[[str], None]
BURST_GAP = 0.3  # seconds a VM keeps each MAC of a burst (the agent learns and advertises it meanwhile)
LEARN_TIMEOUT = 5.0  # seconds the MACs of a burst may take to reach the controller
ROLE = {AGENT_KILL: "agent", GOBGPD_KILL: "gobgpd", CONTROLLER_KILL: "gobgpd"}


def controllers(lab: Lab) -> list[str]:
    """The controller nodes a fault may hit, named as `labctl restart` and `flap` take them (one or two)."""
    return [c.name for c in lab.topo.controllers if lab.plan.controller_namespace(c) not in lab.state.down_controllers]


def controller_role(lab: Lab, name: str) -> str:
    """The BGP daemon of a controller, the one a controller-kill hits (gobgpd, or FRR's bgpd): the first
    of its kind's supervised daemons."""
    return lab.controller(name).roles[0]


def host_sessions(lab: Lab) -> dict[str, str]:
    """Host VTEP -> its BGP state across every live controller: ESTABLISHED only if established at each."""
    merged: dict[str, str] = {}
    for name, found in observe.controller_sessions_or_errors(lab).items():
        seen = found if isinstance(found, dict) else {}
        for h in lab.topo.hosts:
            state = seen.get(str(h.vtep), "unknown")
            if merged.get(str(h.vtep), "ESTABLISHED") == "ESTABLISHED":
                merged[str(h.vtep)] = state if state == "ESTABLISHED" or len(lab.topo.controllers) == 1 else f"{state} at {name}"
    return merged


def layout(lab: Lab) -> Layout:
    alive = lab.hosts_alive()
    vms = [(h, vm) for h in alive for vm in h.attached]
    return Layout(
        hosts=tuple(h.name for h in alive),
        controllers=tuple(controllers(lab)),
        roles={h.name: frozenset(lab.state.pids.get(h.name, {})) for h in alive},
        placement={vm.name: h.name for h, vm in vms},
        vm_network={vm.name: vm.network for _, vm in vms},
        host_networks={h.name: frozenset(n.name for n in lab.plan.host_networks(h)) for h in alive},
        vm_macs=frozenset(vm.mac for _, vm in lab.topo.vms(attached_only=False)),
    )


# -- observing ---------------------------------------------------------------------------------------


def _rib(lab: Lab, node: str) -> tuple | None:
    try:
        return tuple(observe.read_rib(lab, node))
    except (GobgpUnavailable, LabError):
        return None


def observe_lab(lab: Lab) -> Observation:
    """RIBs, FDBs, sessions and readiness of every live node, and where every VM is plugged (no pings)."""
    sessions = host_sessions(lab)
    hosts = []
    for h in lab.hosts_alive():
        rib = _rib(lab, h.name)
        node = lab.node(h)
        view = node.control_view()
        local = node.local_macs(list(rib)) if rib is not None else []
        networks = lab.plan.host_networks(h)
        neighbours = None
        if not node.learns_neighbours_from_arp:  # else the kernel's own ARP entries are there too
            neighbours = frozenset(n for net in networks for n in observe.read_neighbour_entries(lab, h, net.bridge))
        hosts.append(HostView(h.name, str(h.vtep), tuple((n.vni, n.vxlan_device, n.bridge) for n in networks),
                              sessions.get(str(h.vtep), "unknown"), view.ready and view.settled, rib,
                              frozenset(observe.read_fdb(lab, h)), frozenset(m.key for m in local),
                              frozenset(ip for m in local for ip in m.ips), neighbours))
    vms = tuple(VmPlace(vm.name, vm.mac, str(vm.ip), lab.topo.network(vm.network).vni, str(h.vtep))
                for h in lab.hosts_alive() for vm in h.attached)
    alive = lab.controllers_alive()
    first = _rib(lab, alive[0].ns) if alive else None
    others = tuple((c.name, _rib(lab, c.ns)) for c in alive[1:])
    return Observation(tuple(hosts), first, vms, other_controllers=others)


def vm_pairs(lab: Lab) -> list[tuple[Vm, Vm]]:
    """Every pair of plugged VMs of one network on live hosts."""
    vms = [vm for h in lab.hosts_alive() for vm in h.attached]
    return [(a, b) for a, b in combinations(vms, 2) if a.network == b.network]


def ping_pairs(lab: Lab) -> tuple[tuple[str, str, bool], ...]:
    """One ping per VM pair, several at once; a pair without a reply gets a second try of two pings."""
    def one(pair: tuple[Vm, Vm]) -> tuple[str, str, bool]:
        a, b = pair
        ok = observe.ping(lab, a, b, count=1)[1] > 0 or observe.ping(lab, a, b, count=2)[1] > 0
        return a.name, b.name, ok

    with ThreadPoolExecutor(max_workers=8) as pool:
        return tuple(pool.map(one, vm_pairs(lab)))


def judge(lab: Lab) -> tuple[list[str], float]:
    """Every invariant broken now (empty: all hold), and when the RIBs and FDBs judged had all been read
    (monotonic). Pings only once RIBs and FDBs agree."""
    try:
        obs = observe_lab(lab)
    except (OSError, LabError) as exc:
        return [f"observation failed: {exc}"], time.monotonic()
    read = time.monotonic()
    problems = control_problems(obs)
    if problems:
        return problems, read
    return check_pings(replace(obs, pings=ping_pairs(lab))), read


# -- faults ------------------------------------------------------------------------------------------


def _controller_macs(lab: Lab) -> set[str]:
    """The MACs every live controller holds a Type-2 route for."""
    held = [{e.route.mac for e in observe.read_rib(lab, c.ns) if isinstance(e.route, MacIpRoute)} for c in lab.controllers_alive()]
    return set.intersection(*held) if held else set()


def mac_burst(lab: Lab, vm_name: str, macs: tuple[str, ...], gap: float = BURST_GAP) -> None:
    """The VM takes each of `macs` in turn (its port admitting them meanwhile, as a cloud updates a port)
    and says something with each, so its bridge learns it; once the controller holds a route for each, its
    own MAC comes back, the port forgets the others (as a hypervisor flushes a port whose MAC changed) and
    the VM announces itself. The invariants then want every route of the burst withdrawn everywhere."""
    host, vm = lab.vm(vm_name)
    port, vm_ns = lab.plan.vm_port(vm), lab.plan.vm_ns(vm)
    broadcast = str(lab.topo.network(vm.network).subnet.broadcast_address)
    own = portsec.port_policy(vm)
    wider = replace(own, pairs=own.pairs + tuple((mac, ipaddress.ip_network(vm.ip)) for mac in macs))
    portsec.load(host.name, portsec.port_rules(port, wider))
    try:
        for mac in macs:
            netns.set_mac(vm_ns, VM_IFNAME, mac)
            send_frames(vm_ns, probes.udp_broadcast(mac, str(vm.ip), broadcast), count=1)
            time.sleep(gap)
        # the burst counts only if it was learned: every MAC of it advertised and at the controller
        observe.wait_until(f"the controller to learn {vm.name}'s burst MACs", lambda: set(macs) <= _controller_macs(lab), LEARN_TIMEOUT, 0.05)
    finally:
        netns.set_mac(vm_ns, VM_IFNAME, vm.mac)
        portsec.load(host.name, portsec.port_rules(port, own))
        for mac in macs:
            netns.forget_fdb(host.name, port, mac)
        migrate.gratuitous_arp(lab, vm)
    log.info("event=mac-burst vm=%s host=%s macs=%s", vm.name, host.name, ",".join(macs))


@dataclass
class Injection:
    pair: tuple[Vm, Vm]  # the ping across the affected host
    action: Callable[[], float | None]  # does the fault; may return when traffic could flow again
    done: Callable[[], bool]  # the fault is over: a daemon restarted, a hold timer past
    pending: str = ""  # what `done` waits for


def _pair_behind(lab: Lab, host_name: str, avoid: str) -> tuple[Vm, Vm]:
    """Two VMs of one network, the second on `host_name`, neither called `avoid`."""
    alive = lab.hosts_alive()
    for dst in lab.host(host_name).attached:
        for src in (vm for h in alive if h.name != host_name for vm in h.attached):
            if dst.name != avoid and src.name != avoid and src.network == dst.network:
                return src, dst
    return faults.pair_across(lab, None)


def _pair_across(lab: Lab, host: Host | None) -> tuple[Vm, Vm]:
    """A ping across `host` (any two hosts' VMs if it has none plugged, or for the controller)."""
    return faults.pair_across(lab, host if host is not None and host.attached else None)


def injection(lab: Lab, fault: Fault) -> Injection:
    if fault.kind in ROLE:
        node = fault.target
        role = controller_role(lab, node) if fault.kind == CONTROLLER_KILL else ROLE[fault.kind]
        ns_name = faults.node_ns(lab, node)
        host = faults.host_of(lab, ns_name)
        old: list[int] = []
        return Injection(_pair_across(lab, host), lambda: old.append(faults.kill_daemon(lab, node, role)) and None,
                         lambda: faults.restarted(lab, ns_name, role, old[0]), f"{role} restarted")
    if fault.kind == LINK_FLAP:
        ns_name = faults.node_ns(lab, fault.target)
        host = faults.host_of(lab, ns_name)
        # a link back within the hold time may still cost the session: TCP retransmits what the link lost
        # only after its backoff, and the peer's hold timer may expire meanwhile. The flap is over once
        # that timer would have expired (hold time after the link went down, and a second).
        decided = lab.topo.timers.hold_time + 1.0
        went_down: list[float] = []

        def flap() -> float:
            went_down.append(time.monotonic())
            return faults.flap(lab, fault.target, fault.down_for)

        return Injection(_pair_across(lab, host), flap, lambda: time.monotonic() >= went_down[0] + decided,
                         "hold time + 1 s after the link went down")
    if fault.kind == VM_MOVE:
        source, vm = lab.vm(fault.target)
        try:
            pair = (migrate.watcher_for(lab, vm, {source.name, fault.to}), vm)
        except LabError:
            pair = _pair_behind(lab, source.name, vm.name)
        return Injection(pair, lambda: migrate.move(lab, fault.target, fault.to) and None, lambda: True)
    if fault.kind == MAC_BURST:
        host, vm = lab.vm(fault.target)
        return Injection(_pair_behind(lab, host.name, vm.name), lambda: mac_burst(lab, fault.target, fault.macs), lambda: True)
    raise LabError(f"unknown fault kind {fault.kind!r}")


def run_step(lab: Lab, fault: Fault, timeout: float) -> StepResult:
    """Do one fault under a 10 ms ping and wait until every invariant holds again (at most `timeout` s)."""
    try:
        inj = injection(lab, fault)
    except LabError as exc:
        return StepResult(fault, None, None, "", (f"cannot set the fault up: {exc}",))
    ended: list[float] = []
    converged: list[float] = []
    last: list[str] = []
    held_by: list[str] = []
    since: list[float] = []  # when the invariants began to hold without a break (reset by a failing look)

    def action() -> float | None:
        back = inj.action()
        ended.append(time.monotonic())
        return back

    def recovered() -> bool:
        problems, read = judge(lab)
        if problems:
            last[:] = held_by[:] = problems
            since.clear()
            return False
        since[:] = since or [read]  # RIBs and FDBs read all right (then the pings confirmed)
        if not inj.done():  # not over yet: a daemon still to come back, a hold timer still running
            last[:] = [f"{fault.describe()}: not over yet ({inj.pending})"]
            return False
        converged.append(max(0.0, since[0] - ended[0]))
        return True

    probe = f"{inj.pair[0].name} -> {inj.pair[1].name}"
    try:
        result = faults.measured(lab, fault.describe(), inj.pair, action, recovered, timeout, watch=[], settle=0.0)
    except LabError as exc:
        log.warning("event=chaos-step-failed step=%d fault=%r error=%r problems=%r", fault.step, fault.describe(), str(exc), last)
        return StepResult(fault, None, None, probe, tuple(last) or (str(exc),))
    return StepResult(fault, converged[-1], result.outage.lost_ms, result.pair, held_by=tuple(held_by))


def run(lab: Lab, seed: int, duration: float, kinds: tuple[str, ...], timeout: float, progress: Progress) -> Summary:
    """Faults one after another until `duration` has passed (the last one is seen through) or one fails."""
    summary = Summary(seed, duration, kinds)
    start = time.monotonic()
    progress("checking the invariants before the first fault")
    before = observe.poll(lambda: judge(lab)[0], lambda problems: not problems, timeout, 0.5)
    if not before.ok:
        raise LabError(f"the lab breaks invariants before any fault: {'; '.join(before.value or ['unobservable'])}")
    scheduler = Scheduler(seed, layout(lab), kinds)
    while time.monotonic() - start < duration:
        INTERRUPT.check()
        fault = scheduler.next()
        progress(f"step {fault.step} at {time.monotonic() - start:5.1f}s: {fault.describe()}")
        step = run_step(lab, fault, timeout)
        summary.steps.append(step)
        summary.elapsed = time.monotonic() - start
        if not step.ok:
            progress(f"step {fault.step} FAILED: {'; '.join(step.problems)}")
            break
        slow = f" (last broken: {'; '.join(step.held_by)[:200]})" if step.held_by and (step.convergence or 0) >= 1 else ""
        progress(f"  converged {step.convergence:.2f}s after it, ping {step.probe} lost {step.lost_ms} ms{slow}")
    summary.elapsed = time.monotonic() - start
    return summary
