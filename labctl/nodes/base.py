"""The protocol of a hypervisor kind, and what every kind shares (stopping its daemons by PID).

A node is built for one host of the current plan (`Lab.node(host)`); it records its daemons' PIDs in
the lab's state, so `down` finds them whatever the kind.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from agent.routes import MacIpRoute, RouteEvent

from .. import daemons
from ..errors import LabError
from ..plan import LabPlan
from ..state import LabState
from ..topology import Host

log = logging.getLogger("evpn.labctl.nodes")


@dataclass(frozen=True)
class ControlView:
    """What a hypervisor's control plane says about itself."""

    state: str  # "ready", "starting", "unreachable" (its BGP daemon), or the kind's own word ("FRR")
    ready: bool  # done with its first full sync
    settled: bool  # no stale-entry removal pending, no stale withdrawal held (agent/withdrawhold.py)
    remote_vteps: dict[str, list[str]]  # VNI (as text) -> the remote VTEPs it floods to


@dataclass(frozen=True)
class LocalMac:
    """A MAC a hypervisor holds on its own bridge (and advertises)."""

    vni: int
    mac: str
    ips: tuple[str, ...]
    seq: int

    @property
    def key(self) -> str:
        return f"{self.vni}/{self.mac}"


class Speaker(Protocol):
    """Anything with an EVPN RIB labctl can read: the controller, every hypervisor."""

    def read_rib(self) -> list[RouteEvent]: ...


def stop_daemons(plan: LabPlan, state: LabState, node: str, hard: bool = False) -> None:
    """Stop every daemon recorded for `node` (SIGTERM, or SIGKILL when `hard`) and forget them."""
    files = plan.files(node)
    for role, pid in sorted(state.pids.get(node, {}).items()):
        if daemons.stop_supervised(pid, files.marker, files.supervisor_status(role), hard=hard):
            log.info("event=daemon-stopped node=%s role=%s pid=%d hard=%s", node, role, pid, hard)
    state.forget_pids(node)


def start_daemon(plan: LabPlan, state: LabState, node: str, role: str, argv: list[str], log_path: Path,
                 restart_args: tuple[str, ...] = (), unlink: tuple[Path, ...] = ()) -> None:
    """Start daemon `role` of `node` under its supervisor and record the supervisor's PID."""
    status = plan.files(node).supervisor_status(role)
    record_pid(state, node, role, daemons.start_supervised(node, role, argv, log_path, status, restart_args, unlink))


def daemon_pid(plan: LabPlan, node: str, role: str) -> int:
    """The PID of daemon `role` of `node` now (its supervisor's child; 0 if none runs)."""
    return daemons.supervised_child(plan.files(node).supervisor_status(role))


def record_pid(state: LabState, node: str, role: str, pid: int) -> None:
    state.record_pid(node, role, pid)


def local_macs_of_rib(rib: list[RouteEvent]) -> list[LocalMac]:
    """The MACs a RIB's own (locally originated) Type-2 routes advertise, with their addresses."""
    seqs: dict[tuple[int, str], int] = {}
    ips: dict[tuple[int, str], set[str]] = {}
    for e in rib:
        r = e.route
        if isinstance(r, MacIpRoute) and e.local and r.label_vni is not None:
            key = (r.label_vni, r.mac)
            ips.setdefault(key, set())
            if r.ip is not None:
                ips[key].add(str(r.ip))
            else:
                seqs[key] = r.attrs.mac_mobility_seq or 0
            seqs.setdefault(key, r.attrs.mac_mobility_seq or 0)
    return [LocalMac(vni, mac, tuple(sorted(ips[(vni, mac)])), seqs[(vni, mac)]) for vni, mac in sorted(ips)]


class HostNode(ABC):
    """One hypervisor of a given kind. Subclasses set `kind` and implement the abstract methods."""

    kind: ClassVar[str]
    learns_neighbours_from_arp: ClassVar[bool] = False  # the host's stack must see its VMs' ARP (labctl/portsec.py)

    def __init__(self, host: Host, plan: LabPlan, state: LabState) -> None:
        self.host = host
        self.plan = plan
        self.state = state

    @property
    def name(self) -> str:
        return self.host.name

    @classmethod
    def preflight(cls) -> None:
        """Refuse (LabError) before anything is built if this kind cannot run on this machine."""

    @abstractmethod
    def start(self) -> None:
        """Start the node's daemons (its namespace and devices exist) and return once they can be asked."""

    def start_phases(self) -> list[Callable[[], None]]:
        """`start` cut into steps, for `up` to run each step on every host before the next one (a big lab
        starts all its BGP daemons first, so their sessions come up while the rest starts). Run in order,
        the steps do what `start` does."""
        return [self.start]

    def stop(self, hard: bool = False) -> None:
        """Stop the node's daemons (SIGKILL when `hard`: a dying hypervisor)."""
        stop_daemons(self.plan, self.state, self.name, hard)

    @abstractmethod
    def read_rib(self) -> list[RouteEvent]:
        """The node's EVPN RIB, decoded into our route types."""

    @abstractmethod
    def paths_from(self, neighbor: str) -> int:
        """How many EVPN paths its RIB holds from BGP neighbour `neighbor` (stale ones included)."""

    @abstractmethod
    def control_view(self) -> ControlView:
        """What the control plane reports, or has put in the kernel."""

    def local_macs(self, rib: list[RouteEvent]) -> list[LocalMac]:
        """The MACs this node holds locally (`rib`: its RIB, already read): by default what it advertises,
        its own Type-2 routes, which every kind has and which does not depend on a status file's format."""
        return local_macs_of_rib(rib)

    def reconfigure_refusal(self) -> str | None:
        """Why this kind cannot follow network changes at run time (None: it can)."""
        return None

    @abstractmethod
    def reconfigure(self) -> None:
        """Serve the networks the current plan gives the host, and return once it does."""

    def vtysh(self, command: str) -> str:
        """Run a command of FRR's shell on the node."""
        raise LabError(f"{self.name} does not run FRR (evpn-agent rib shows an agent host's routes)")
