"""Faults on a running lab, and what the data plane lost meanwhile.

A fault (a daemon killed, a link flapped, a host killed) runs while a VM pings another every 10 ms across
the affected node, as `labctl move` measures a migration; other hosts' RIBs are sampled every 0.1 s
meanwhile, so a route withdrawn and re-learned in between is seen. The result says how many ms of
pings were lost, the longest gap, how long recovery took, and which routes went missing where.

Parsing ping output and judging samples is pure (`parse_replies`, `Outage.of`, `missing_items`).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from agent.errors import GobgpUnavailable
from agent.routes import RouteEvent

from . import daemons, netns, observe
from .bgp import GR_RESTART_TIME
from .errors import LabError
from .lab import Lab
from .nodes.base import daemon_pid
from .topology import Host, Vm

log = logging.getLogger("evpn.labctl.faults")

PING_INTERVAL = 0.01
SAMPLE_INTERVAL = 0.1
_REPLY_RE = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)")
_SENT_RE = re.compile(r"(\d+) packets transmitted, (\d+) received")


# -- pure ---------------------------------------------------------------------------------------


def parse_replies(output: str) -> tuple[list[float], int]:
    """(sorted wall-clock times of echo replies, packets sent) from `ping -D` output."""
    replies = sorted(float(m.group(1)) for m in map(_REPLY_RE.match, output.splitlines()) if m)
    sent = _SENT_RE.search(output)
    return replies, int(sent.group(1)) if sent else 0


@dataclass(frozen=True)
class Outage:
    sent: int
    received: int
    longest_gap: float  # seconds between two consecutive replies (0.01 when nothing was lost)
    back_after: float | None  # seconds from `since` (e.g. a link's return) to the first reply after it

    @property
    def lost_ms(self) -> int:
        """Pings lost, as milliseconds of traffic (one ping every 10 ms)."""
        return max(0, self.sent - self.received) * int(PING_INTERVAL * 1000)

    @classmethod
    def of(cls, replies: list[float], sent: int, since: float | None = None) -> Outage:
        if len(replies) < 2:
            raise LabError(f"the continuous ping got {len(replies)} replies: no loss can be measured")
        gap = max(b - a for a, b in pairwise(replies))
        back = None
        if since is not None:
            after = [t for t in replies if t >= since]
            back = after[0] - since if after else None
        return cls(sent, len(replies), gap, back)


def route_keys(rib: Iterable[RouteEvent]) -> set[tuple[object, ...]]:
    return {e.route.key for e in rib}


def missing_items(baseline: dict[str, set[Any]], samples: dict[str, list[set[Any]]]) -> dict[str, set[Any]]:
    """Node -> its baseline items (routes, kernel entries) absent from at least one sample."""
    return {node: {k for sample in samples.get(node, []) for k in keys - sample} for node, keys in baseline.items()}


# -- measuring -----------------------------------------------------------------------------------


class Pinger:
    """`ping -D -i 0.01` from one VM to an address until stopped."""

    def __init__(self, lab: Lab, src: Vm, dst_ip: str) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.plan.vm_ns(src), "ping", "-n", "-D", "-i", str(PING_INTERVAL), "-W", "1", dst_ip],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )

    def stop(self, since: float | None = None) -> Outage:
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=10)
        replies, sent = parse_replies(out)
        return Outage.of(replies, sent, since)


class _Sampler:
    """Reads something of some nodes (`read(name)`, a set) once as a baseline, then every SAMPLE_INTERVAL
    in a thread until `_halt`; a read that fails (one of `errors`) is counted, not a sample."""

    what = "?"  # for the log: what is read

    def __init__(self, names: Iterable[str], read: Callable[[str], set[Any]], errors: tuple[type[BaseException], ...]) -> None:
        self._read, self._errors = read, errors
        self.baseline = {n: read(n) for n in names}
        self.samples: dict[str, list[set[Any]]] = {n: [] for n in self.baseline}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{self.what}-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            for name in self.baseline:
                try:
                    self.samples[name].append(self._read(name))
                except self._errors as exc:  # a missing sample: stop() reports the fewest samples read
                    log.warning("event=%s-sample-failed node=%s error=%r", self.what, name, str(exc))

    def _halt(self) -> dict[str, set[Any]]:
        """Stop sampling; per node, the baseline's items some sample lacked."""
        self._stop.set()
        self._thread.join(5)
        return missing_items(self.baseline, self.samples)


class RibSampler(_Sampler):
    """Reads the RIBs of some nodes every 0.1 s in a thread; remembers what each sample lacked."""

    what = "rib"

    def __init__(self, lab: Lab, nodes: list[str]) -> None:
        super().__init__(nodes, lambda node: route_keys(observe.read_rib(lab, node)), (GobgpUnavailable, LabError))

    def stop(self) -> dict[str, int]:
        """Node -> how many of its baseline routes some sample lacked."""
        missing = self._halt()
        for key in sorted(set().union(*missing.values()), key=str)[:5]:
            log.warning("event=route-missing-during-fault key=%s", key)
        return {node: len(keys) for node, keys in missing.items()}


def kernel_entries(lab: Lab, host: Host) -> set[object]:
    """A hypervisor's overlay entries in the kernel: vxlan FDB (flood and unicast) and its bridges' neighbours."""
    entries: set[object] = set(observe.read_fdb(lab, host))
    for net in lab.plan.host_networks(host):
        entries |= observe.read_neighbour_entries(lab, host, net.bridge)
    return entries


AGENT_COUNTERS = ("entries_removed", "withdrawals_held", "withdrawals_cancelled")


def agent_counters(lab: Lab, hosts: Iterable[Host]) -> dict[str, dict[str, int]]:
    """Each host's agent's AGENT_COUNTERS so far, from its status file (0 for a host without an agent)."""
    counts = {}
    for host in hosts:
        status = getattr(lab.node(host), "agent_status", lambda: {})()
        counts[host.name] = {key: int(status.get(key) or 0) for key in AGENT_COUNTERS}
    return counts


@dataclass(frozen=True)
class KernelChurn:
    """What happened to the hosts' kernel entries during a fault."""

    missing: dict[str, int]  # host -> baseline entries absent from at least one 0.1 s sample
    removed_by_agent: dict[str, int]  # host -> entries its agent removed meanwhile (its counter: no sample can miss one)
    samples: int
    held: dict[str, int] = field(default_factory=dict)  # host -> stale withdrawals its agent held meanwhile
    cancelled: dict[str, int] = field(default_factory=dict)  # ... of which the route came back within the grace

    def line(self) -> str:
        gone = ", ".join(f"{h} {n}" for h, n in sorted(self.missing.items()) if n) or "none"
        removed = ", ".join(f"{h} {n}" for h, n in sorted(self.removed_by_agent.items()) if n) or "none"
        held = ", ".join(f"{h} {n}/{self.cancelled.get(h, 0)}" for h, n in sorted(self.held.items()) if n) or "none"
        return (f"kernel entries missing in {self.samples} samples: {gone}; removed by the agents: {removed}; "
                f"stale withdrawals held/cancelled: {held}")


class KernelSampler(_Sampler):
    """Reads the hosts' kernel entries every 0.1 s in a thread (as RibSampler reads RIBs), and their agents'
    removal counters before and after."""

    what = "kernel"

    def __init__(self, lab: Lab, hosts: list[Host]) -> None:
        self.lab = lab
        self.hosts = hosts
        by_name = {h.name: h for h in hosts}
        self.counters = agent_counters(lab, hosts)
        super().__init__(by_name, lambda name: kernel_entries(lab, by_name[name]), (OSError, LabError))

    def stop(self) -> KernelChurn:
        gone = self._halt()
        for host, entries in gone.items():
            for entry in sorted(entries, key=str)[:5]:
                log.warning("event=kernel-entry-missing-during-fault host=%s entry=%s", host, entry)
        missing = {host: len(entries) for host, entries in gone.items()}
        after = agent_counters(self.lab, self.hosts)
        delta = {key: {h: after[h][key] - self.counters[h][key] for h in after} for key in AGENT_COUNTERS}
        churn = KernelChurn(missing, delta["entries_removed"], min((len(v) for v in self.samples.values()), default=0),
                            delta["withdrawals_held"], delta["withdrawals_cancelled"])
        log.info("event=kernel-churn %s", churn.line())
        return churn


@dataclass(frozen=True)
class FaultResult:
    fault: str
    pair: str  # "vm4 -> vm1"
    outage: Outage
    recovered: float  # seconds from the fault to the recovery condition
    withdrawn: dict[str, int] = field(default_factory=dict)  # other node -> baseline routes it lost meanwhile
    rib_samples: int = 0  # RIB reads of the node read least often meanwhile (0: `withdrawn` saw nothing)

    def line(self) -> str:
        gone = ", ".join(f"{n} {c}" for n, c in sorted(self.withdrawn.items()) if c) or "none"
        back = f", traffic back {self.outage.back_after * 1000:.0f} ms after the link returned" if self.outage.back_after is not None else ""
        return (f"{self.fault}: recovered in {self.recovered:.2f}s; ping {self.pair} lost {self.outage.lost_ms} ms "
                f"({self.outage.received}/{self.outage.sent} replies, longest gap {self.outage.longest_gap * 1000:.0f} ms{back}); "
                f"routes withdrawn elsewhere: {gone} ({self.rib_samples} RIB samples)")


def pair_across(lab: Lab, host: Host | None, avoid: set[str] = frozenset()) -> tuple[Vm, Vm]:  # type: ignore[assignment]
    """Two VMs of one network on different live hosts: the second on `host` when given, neither on `avoid`."""
    alive = [h for h in lab.hosts_alive() if h.name not in avoid]
    for dst_host in ([host] if host is not None else alive):
        for dst in dst_host.attached:
            for src_host in alive:
                if src_host.name == dst_host.name:
                    continue
                for src in src_host.attached:
                    if src.network == dst.network:
                        return src, dst
    raise LabError(f"no two VMs of one network on different live hosts{' across ' + host.name if host else ''} to measure with")


def measured(lab: Lab, fault: str, pair: tuple[Vm, Vm], action: Callable[[], float | None], recovered: Callable[[], bool],
             timeout: float, watch: list[str], settle: float = 1.0) -> FaultResult:
    """Ping across `pair` and sample the RIBs of `watch` while `action` runs; wait for `recovered()`.

    `action` may return the wall-clock time traffic could flow again (a link's return): the outage then
    also says how long after that the first reply came."""
    src, dst = pair
    _, got = observe.ping(lab, src, dst, count=3)  # ARP and FDB in place: an already-programmed pair
    if got == 0:
        raise LabError(f"{src.name} cannot reach {dst.name} before the fault: nothing to measure")
    sampler = RibSampler(lab, watch)
    pinger = Pinger(lab, src, str(dst.ip))
    time.sleep(0.5)
    start = time.monotonic()
    since = None
    try:
        since = action()
        polled = observe.poll(recovered, bool, timeout, 0.05)
        took = time.monotonic() - start
        time.sleep(settle)
    finally:
        withdrawn = sampler.stop()
        rib_samples = min((len(v) for v in sampler.samples.values()), default=0)
        outage = pinger.stop(since)
    if not polled.ok:
        raise LabError(f"{fault}: not recovered within {timeout:.0f}s (ping lost {outage.lost_ms} ms)")
    result = FaultResult(fault, f"{src.name} -> {dst.name}", outage, took, withdrawn, rib_samples)
    log.info("event=fault-measured fault=%r recovered=%.2f lost_ms=%d gap_ms=%.0f withdrawn=%s", fault, took,
             outage.lost_ms, outage.longest_gap * 1000, withdrawn)
    return result


# -- faults ---------------------------------------------------------------------------------------


def node_ns(lab: Lab, node: str) -> str:
    """A controller's name (`controller`, `controller2`, ...) or a hypervisor's name -> its namespace."""
    ctl = lab.plan.controller_of(node)
    if ctl is not None:
        return lab.plan.controller_namespace(ctl)
    return lab.host(node).name


def host_of(lab: Lab, ns_name: str) -> Host | None:
    """The hypervisor of namespace `ns_name`, None for a controller."""
    return None if lab.plan.controller_of(ns_name) is not None else lab.host(ns_name)


def kill_daemon(lab: Lab, node: str, role: str, sig: int = signal.SIGKILL) -> int:
    """Send `sig` to the daemon `role` of `node` (not to its supervisor). Returns the PID signalled."""
    ns_name = node_ns(lab, node)
    roles = lab.state.pids.get(ns_name, {})
    if role not in roles:
        raise LabError(f"{ns_name} runs no {role} ({', '.join(sorted(roles)) or 'nothing'})")
    pid = daemon_pid(lab.plan, ns_name, role)
    marker = lab.plan.files(ns_name).marker
    if not pid or not daemons.alive(pid, marker):
        raise LabError(f"{role} on {ns_name} is not running now (its supervisor is restarting it)")
    lab.record("restart", node=ns_name, daemon=role, pid=pid, signal=signal.Signals(sig).name)
    os.kill(pid, sig)
    log.info("event=daemon-signalled node=%s role=%s pid=%d signal=%d", ns_name, role, pid, sig)
    return pid


def restarted(lab: Lab, ns_name: str, role: str, old_pid: int) -> bool:
    pid = daemon_pid(lab.plan, ns_name, role)
    return bool(pid) and pid != old_pid and daemons.alive(pid, lab.plan.files(ns_name).marker)


def restart_measured(lab: Lab, node: str, role: str, sig: int = signal.SIGKILL, timeout: float = 60.0) -> FaultResult:
    """Kill a daemon; recovered = its supervisor restarted it and the whole fabric converged again."""
    ns_name = node_ns(lab, node)
    host = host_of(lab, ns_name)
    pair = pair_across(lab, host)
    watch = [h.name for h in lab.hosts_alive() if host is None or h.name != host.name]
    old: list[int] = []

    def action() -> None:
        old.append(kill_daemon(lab, node, role, sig))

    def recovered() -> bool:
        return restarted(lab, ns_name, role, old[0]) and observe.converged(lab, lab.hosts_alive())

    name = signal.Signals(sig).name
    return measured(lab, f"{role} on {ns_name} {name}", pair, action, recovered, timeout, watch)


def flap(lab: Lab, node: str, down_for: float) -> float:
    """The node's link to the router goes down (the router's end: a cable or switch port) and comes back
    after `down_for` seconds. Returns the wall-clock time it came back."""
    ns_name = node_ns(lab, node)
    router_if = lab.plan.uplink(ns_name).router_if
    lab.record("flap", node=ns_name, down_for_s=down_for)
    netns.set_link(lab.plan.router_ns, router_if, up=False)
    log.info("event=link-down node=%s router_if=%s", ns_name, router_if)
    time.sleep(down_for)
    netns.set_link(lab.plan.router_ns, router_if, up=True)
    lab.record("flap-up", node=ns_name)
    log.info("event=link-up node=%s router_if=%s", ns_name, router_if)
    return time.time()


def flap_measured(lab: Lab, node: str, down_for: float, timeout: float = 60.0) -> FaultResult:
    """Flap a node's link; recovered = the fabric converged again (the keeper restored the route)."""
    ns_name = node_ns(lab, node)
    host = host_of(lab, ns_name)
    pair = pair_across(lab, host)
    watch = [h.name for h in lab.hosts_alive() if host is None or h.name != host.name]
    return measured(lab, f"link of {ns_name} down {down_for:.1f}s", pair, lambda: flap(lab, node, down_for),
                    lambda: observe.converged(lab, lab.hosts_alive()), timeout, watch)


def controller_kill_measured(lab: Lab, name: str) -> FaultResult:
    """`labctl kill` of a controller (uplink down, daemons SIGKILLed) with a ping across two hosts and every
    host's RIB sampled; recovered = no host holds a path from it any more (its hold timer expired, then
    the graceful-restart time: the hosts kept its paths as stale until then)."""
    ctl = lab.controller(name)
    address = str(ctl.ctl.address)
    hosts = lab.hosts_alive()

    def forgotten() -> bool:
        return all(lab.node(h).paths_from(address) == 0 for h in hosts)

    limit = lab.topo.timers.hold_time * 3 + GR_RESTART_TIME + 15
    return measured(lab, f"controller {ctl.name} killed", pair_across(lab, None), lambda: lab.kill(ctl.ns), forgotten, limit,
                    [h.name for h in hosts], settle=0.5)


def kill_measured(lab: Lab, name: str) -> tuple[FaultResult | None, float]:
    """`labctl kill` with a ping between two survivors meanwhile: (their loss, seconds until the survivors
    forgot the host). Without two survivors sharing a network, nothing is pinged (None)."""
    host = lab.host(name)
    start = time.monotonic()
    try:
        pair = pair_across(lab, None, avoid={host.name})
    except LabError:
        lab.kill(name)
        return None, observe.wait_forgotten(lab, name, since=start, timeout=lab.topo.timers.hold_time * 3 + 30)
    forgot: list[float] = []

    def recovered() -> bool:
        if observe.mentions(lab, host):
            return False
        forgot.append(time.monotonic() - start)
        return True

    limit = lab.topo.timers.hold_time * 3 + 30
    result = measured(lab, f"host {name} killed", pair, lambda: lab.kill(name), recovered, limit,
                      [h.name for h in lab.hosts_alive() if h.name != name], settle=0.5)
    return result, forgot[-1]
