"""The lab's controllers (eBGP hubs every hypervisor peers with), one class per `kind:` of the topology's
`controllers:` entries: gobgpd (the default), or FRR's bgpd (with zebra, for next-hop tracking).

A controller is built for one `Controller` of the current plan (`Lab.controllers()`): start it, read its
RIB and its sessions (neighbour address -> state in gobgp's words), add a neighbour while it runs, and
rewrite its config file from the plan (so a restarted daemon knows peers added at run time).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from agent.routes import RouteEvent

from ..bgp import Neighbor
from ..errors import LabError
from ..observe import wait_until
from ..plan import LabPlan
from ..rundir import write_private
from ..state import LabState
from ..topology import Controller
from . import frr
from .base import stop_daemons
from .gobgpd import Gobgpd


class ControllerNode(ABC):
    kind: ClassVar[str]
    roles: ClassVar[tuple[str, ...]]  # its supervised daemons

    def __init__(self, ctl: Controller, plan: LabPlan, state: LabState) -> None:
        self.ctl = ctl
        self.plan = plan
        self.state = state
        self.ns = plan.controller_namespace(ctl)

    @property
    def name(self) -> str:
        return self.ctl.name

    @abstractmethod
    def start(self) -> None:
        """Write its config, start its daemons, return once it answers."""

    def stop(self, hard: bool = False) -> None:
        stop_daemons(self.plan, self.state, self.ns, hard)

    @abstractmethod
    def read_rib(self) -> list[RouteEvent]: ...

    @abstractmethod
    def sessions(self) -> dict[str, str]:
        """Neighbour address -> session state (ESTABLISHED, ACTIVE, ...)."""

    @abstractmethod
    def add_peer(self, neighbor: Neighbor) -> None:
        """Add a neighbour to the running daemon."""

    @abstractmethod
    def persist_config(self) -> None:
        """Rewrite the config file from the current plan (every host a neighbour)."""


class GobgpdController(ControllerNode):
    kind = "gobgpd"
    roles = ("gobgpd",)

    @property
    def gobgpd(self) -> Gobgpd:
        return Gobgpd(self.plan, self.state, self.ns)

    def start(self) -> None:
        self.gobgpd.start(self.plan.gobgpd_controller_config(self.ctl))
        self.gobgpd.wait_api()

    def read_rib(self) -> list[RouteEvent]:
        return self.gobgpd.read_rib()

    def sessions(self) -> dict[str, str]:
        return self.gobgpd.sessions()

    def add_peer(self, neighbor: Neighbor) -> None:
        self.gobgpd.add_peer(neighbor)

    def persist_config(self) -> None:
        write_private(self.plan.files(self.ns).gobgpd_config, self.plan.gobgpd_controller_config(self.ctl))


class FrrController(ControllerNode):
    kind = "frr"
    roles = ("bgpd", "zebra")

    def start(self) -> None:
        frr.prepare(self.plan, self.ns, frr.controller_bgpd_config(self.plan, self.ctl))
        frr.start_daemons(self.plan, self.state, self.ns, self.ctl.address)
        wait_until(f"bgpd on {self.ns}", self._answers, 15)

    def _answers(self) -> bool:
        try:
            self.sessions()
            return True
        except LabError:  # vtysh cannot reach bgpd yet
            return False

    def read_rib(self) -> list[RouteEvent]:
        return frr.read_rib(self.plan, self.ns)

    def sessions(self) -> dict[str, str]:
        return frr.sessions(self.plan, self.ns)

    def add_peer(self, neighbor: Neighbor) -> None:
        frr.vtysh(self.plan, self.ns, frr.controller_peer_commands(self.ctl, neighbor))

    def persist_config(self) -> None:
        frr.prepare(self.plan, self.ns, frr.controller_bgpd_config(self.plan, self.ctl))


CONTROLLERS: dict[str, type[ControllerNode]] = {"gobgpd": GobgpdController, "frr": FrrController}


def controller_node(ctl: Controller, plan: LabPlan, state: LabState) -> ControllerNode:
    return CONTROLLERS[ctl.kind](ctl, plan, state)
