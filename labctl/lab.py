"""Lab lifecycle: up (with rollback), down (also after a crash), kill/revive a hypervisor, apply new hosts.

A `Lab` is the parsed topology, its plan and its saved state. The topology changes only through
`adopt`, with a new Topology (made by Topology's editing methods): plan and state follow it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from protos import dist

from . import actionlog, build, daemons, keeper, netem, netns, observe, parallel
from .errors import LabError
from .interrupts import INTERRUPT
from .nodes import node_class
from .nodes.base import HostNode, Speaker, start_daemon
from .nodes.controller import ControllerNode, controller_node
from .plan import CONTROLLER_SUFFIX, ROUTER_SUFFIX, UPLINK, LabPlan, NodeFiles, failed_dir, lab_dir, namespace_name, state_file
from .state import LabState, load
from .errors import TopologyError
from .topology import CONTROLLER_NAME_RE, Host, Netem, Topology, Vm, check_lab_name, parse_topology

log = logging.getLogger("evpn.labctl.lab")

Progress = Callable[[str], None]

BUILD_WORKERS = 4  # hypervisors wired at a time (netlink and nft: mostly kernel work)
START_WORKERS = 8  # hypervisors whose daemons start at a time (mostly waiting: processes starting, APIs coming up)
EACH_LINE_UP_TO = 10  # hypervisors: up to this many, `up` prints a progress line per host


def _quiet(_: str) -> None:
    pass


class Lab:
    """A lab of one topology, running or about to be."""

    def __init__(self, topo: Topology, state: LabState) -> None:
        self.topo = topo
        self.plan = LabPlan(topo)
        self.state = state

    # -- discovery ---------------------------------------------------------------

    @classmethod
    def open(cls, lab: str) -> "Lab":
        state = load(lab)
        if state is None:
            raise LabError(f"no lab named {lab!r} is running (labctl up TOPOLOGY)")
        return cls(parse_topology(state.topology, state.source), state)

    def hosts_alive(self) -> list[Host]:
        return [h for h in self.topo.hosts if h.name not in self.state.down_hosts]

    def host(self, name: str) -> Host:
        host = self.topo.host(name)
        if host is None:
            raise LabError(f"{name!r} is not a hypervisor of lab {self.topo.lab} ({', '.join(h.name for h in self.topo.hosts)})")
        return host

    def vm(self, name: str) -> tuple[Host, Vm]:
        """The VM called `name` (or `<lab>-name`) and its host."""
        found = self.topo.locate_vm(name)
        if found is None:
            raise LabError(f"no VM {name!r} in lab {self.topo.lab}")
        return found

    def node(self, host: Host | str) -> HostNode:
        """The hypervisor as its kind (gobgpd + agent, FRR, ...), for the current plan."""
        host = self.host(host) if isinstance(host, str) else host
        return node_class(host.kind)(host, self.plan, self.state)

    def controllers(self) -> list[ControllerNode]:
        """Every controller of the lab, as its kind (gobgpd, FRR)."""
        return [controller_node(c, self.plan, self.state) for c in self.topo.controllers]

    def controllers_alive(self) -> list[ControllerNode]:
        return [c for c in self.controllers() if c.ns not in self.state.down_controllers]

    def controller(self, name: str | None = None) -> ControllerNode:
        """The controller called `name` (its name or namespace; default: the first)."""
        ctl = self.plan.controller_of(name) if name is not None else self.topo.controller
        if ctl is None:
            raise LabError(f"{name!r} is not a controller of lab {self.topo.lab} ({', '.join(c.name for c in self.topo.controllers)})")
        return controller_node(ctl, self.plan, self.state)

    def speaker(self, name: str) -> Speaker:
        """Whatever holds a RIB under that name: a controller or a hypervisor."""
        return self.controller(name) if self.plan.controller_of(name) is not None else self.node(name)

    def wait_converged(self, hosts: list[Host], timeout: float = 60.0) -> float:
        return observe.wait_converged(self, hosts, timeout)

    def record(self, action: str, **fields: object) -> None:
        """Note one of labctl's actions in the lab's action log (`labctl events` shows it)."""
        actionlog.record(self.plan.action_log, action, **fields)

    # -- change ----------------------------------------------------------------------

    def adopt(self, topo: Topology) -> None:
        """From now on the lab is `topo` (already validated): plan and saved state follow."""
        self.topo, self.plan = topo, LabPlan(topo)
        self.state.topology = topo.to_document()
        self.state.save()

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    def up(cls, topo: Topology, source: str, progress: Progress = _quiet) -> "Lab":
        preflight()
        for kind in sorted({h.kind for h in topo.hosts}):
            node_class(kind).preflight()
        existing = [n for n in netns.list_namespaces() if n.startswith(namespace_name(topo.lab, ""))]
        if load(topo.lab) is not None or existing:
            raise LabError(f"lab {topo.lab!r} already exists ({len(existing)} namespaces): run 'labctl down {topo.lab}' first")
        lab = cls(topo, LabState(topo.lab, topo.to_document(), source))
        lab.state.save()
        lab.record("up", topology=source, hosts=len(topo.hosts), vms=len(topo.vms()))
        user_progress = progress

        def progress(message: str) -> None:
            INTERRUPT.check()
            user_progress(message)

        try:
            progress("underlay router and controller")
            build.underlay(lab.plan)
            for controller in lab.controllers():
                progress(f"starting {controller.kind} on controller {controller.name}")
                controller.start()
            hosts = list(topo.hosts)
            steps = {h.name: lab.node(h).start_phases() for h in hosts}

            def build_and_start(host: Host) -> None:
                """Wire the host, then take its daemons' first step (gobgpd: its first connection comes
                5-10 s after it starts, a wait better spent while the other hosts are built)."""
                build.host(lab.plan, host)
                if host.netem is not None:
                    lab.impair(host)  # before its daemons: BGP comes up over the impaired link, as it will run
                steps[host.name][0]()

            progress(f"{len(hosts)} hypervisors: namespace, uplink, bridges, vxlan, VMs, then "
                     f"{_step_names(steps, hosts, 0)} ({min(BUILD_WORKERS, len(hosts))} at a time)")
            parallel.run_all(hosts, build_and_start, BUILD_WORKERS, "build",
                             done=lambda h, _: progress(f"hypervisor {h.name} built") if len(hosts) <= EACH_LINE_UP_TO else None)
            progress("starting the underlay's route keeper")
            lab.start_keeper()
            lab.start_nodes(hosts, progress, steps, first=1)
            progress("waiting for BGP sessions and agents")
            took = lab.wait_converged(list(topo.hosts))
            log.info("event=lab-converged lab=%s seconds=%.2f", topo.lab, took)
            lab.record("up-done", converged_s=f"{took:.2f}")
            lab.state.complete = True
            lab.state.save()
        except BaseException:
            kept = failed_dir(topo.lab)
            user_progress(f"failed: rolling back (logs kept in {kept})")
            teardown(topo.lab, keep_logs=kept)
            raise
        return lab

    def start_nodes(self, hosts: list[Host], progress: Progress, steps: dict[str, list[Callable[[], None]]], first: int = 0) -> None:
        """Start the hosts' daemons step by step (`HostNode.start_phases`, from step `first`): each step
        on every host, START_WORKERS at a time, before the next one."""
        for phase in range(first, max(len(s) for s in steps.values())):
            todo = [h for h in hosts if phase < len(steps[h.name])]
            progress(f"{len(todo)} hypervisors: {_step_names(steps, todo, phase)} ({min(START_WORKERS, len(todo))} at a time)")
            parallel.run_all(todo, lambda h, i=phase: steps[h.name][i](), START_WORKERS, "start",
                             done=lambda h, _: progress(f"{h.name}: step done") if len(hosts) <= EACH_LINE_UP_TO else None)

    def kill(self, name: str) -> None:
        """The hypervisor (or controller) dies: its daemons are killed (SIGKILL) and its uplink goes down."""
        if self.plan.controller_of(name) is not None:
            self.kill_controller(name)
            return
        host = self.host(name)
        if name in self.state.down_hosts:
            raise LabError(f"{name} is already down (labctl revive {name})")
        self.record("kill", host=name, vtep=host.vtep)
        netns.set_link(name, UPLINK, up=False)  # first, so no FIN or NOTIFICATION gets out: peers must use the hold timer
        self.node(host).stop(hard=True)
        self.state.down_hosts.append(name)
        self.state.save()
        log.info("event=host-killed host=%s vtep=%s", name, host.vtep)

    def kill_controller(self, name: str) -> None:
        ctl = self.controller(name)
        if ctl.ns in self.state.down_controllers:
            raise LabError(f"controller {ctl.name} is already down (labctl revive {ctl.name})")
        self.record("kill", controller=ctl.name, address=ctl.ctl.address)
        netns.set_link(ctl.ns, UPLINK, up=False)  # no FIN or NOTIFICATION gets out: the hosts' hold timers notice
        ctl.stop(hard=True)
        self.state.down_controllers.append(ctl.ns)
        self.state.save()
        log.info("event=controller-killed controller=%s address=%s", ctl.name, ctl.ctl.address)

    def revive(self, name: str) -> float:
        if self.plan.controller_of(name) is not None:
            return self.revive_controller(name)
        host = self.host(name)
        if name not in self.state.down_hosts:
            raise LabError(f"{name} is not down")
        self.record("revive", host=name, vtep=host.vtep)
        netns.set_link(name, UPLINK, up=True)
        build.uplink_routes(self.plan, name, host.vtep)  # an interface going down took its routes with it
        self.impair(host)  # the kill stopped the delay line with the other daemons
        self.state.down_hosts.remove(name)
        self.state.save()
        self.node(host).start()
        took = self.wait_converged([host])
        self.record("revive-done", host=name, converged_s=f"{took:.2f}")
        return took

    def revive_controller(self, name: str) -> float:
        ctl = self.controller(name)
        if ctl.ns not in self.state.down_controllers:
            raise LabError(f"controller {ctl.name} is not down")
        self.record("revive", controller=ctl.name, address=ctl.ctl.address)
        netns.set_link(ctl.ns, UPLINK, up=True)
        build.uplink_routes(self.plan, ctl.ns, ctl.ctl.address)
        self.state.down_controllers.remove(ctl.ns)
        self.state.save()
        ctl.start()
        took = self.wait_converged(self.hosts_alive())
        self.record("revive-done", controller=ctl.name, converged_s=f"{took:.2f}")
        return took

    def apply(self, topo: Topology, progress: Progress = _quiet) -> list[Host]:
        """Add the hosts that `topo` has and the running lab lacks; nothing else may change."""
        new_hosts = list(self.topo.hosts_added_by(topo))
        for old_host, new_host in zip(self.topo.hosts, topo.hosts):
            if old_host.netem != new_host.netem:  # the one change apply makes to a running host
                progress(f"{new_host.name}: uplink impairment {new_host.netem.describe() if new_host.netem else 'none'}")
                self.set_netem(new_host.name, new_host.netem)
        if not new_hosts:
            return []
        for kind in sorted({h.kind for h in new_hosts}):
            node_class(kind).preflight()
        old = self.topo
        self.record("apply", hosts=",".join(h.name for h in new_hosts))
        self.adopt(topo)
        created: list[Host] = []
        try:
            self.persist_controller_config()  # before the gRPC adds: a controller restart from now on knows them
            for host in new_hosts:
                build.host(self.plan, host)
                created.append(host)
                self.impair(host)
                self.write_keeper_routes()
                for ctl in self.controllers_alive():
                    progress(f"controller {ctl.name}: adding neighbor {host.vtep} (AS {host.asn})")
                    ctl.add_peer(self.plan.controller_neighbor(host, ctl.ctl))
                progress(f"starting gobgpd and evpn-agent on {host.name}")
                self.node(host).start()
            self.wait_converged(new_hosts)
        except BaseException:
            progress("failed: removing the hosts this apply added")  # (apply's own progress never raises)
            for host in created:
                self.node(host).stop(hard=True)
                build.remove_host(self.plan, host)
            self.adopt(old)
            self.persist_controller_config()
            raise
        return new_hosts

    def impair(self, host: Host) -> str | None:
        """Give `host`'s uplink the impairment its topology entry says (labctl/netem.py); the mechanism used."""
        if host.netem is None and netem.read(self.plan, host.name) is None:
            return None
        return netem.apply(self.plan, self.state, host.name, host.netem)

    def set_netem(self, name: str, impairment: Netem | None) -> str | None:
        """Impair host `name`'s uplink (None: clean it) from now on: the topology records it, so `revive`
        and `status` know it. A down host gets it when revived. The mechanism used (None: cleared or deferred)."""
        self.host(name)
        self.record("netem", host=name, impairment=impairment.describe() if impairment else "clear")
        self.adopt(self.topo.with_netem(name, impairment))
        if name in self.state.down_hosts:
            return None
        return self.impair(self.host(name))

    def keeper_routes_file(self) -> Path:
        return self.plan.node_dir(self.plan.router_ns) / "keeper.routes.json"

    def write_keeper_routes(self) -> None:
        keeper.write_routes(self.keeper_routes_file(), keeper.router_routes(self.plan))

    def start_keeper(self) -> None:
        """The router's route keeper (labctl/keeper.py), supervised: a flapped link gets its route back."""
        self.write_keeper_routes()
        argv = [sys.executable, "-m", "labctl.keeper", "--routes", str(self.keeper_routes_file())]
        start_daemon(self.plan, self.state, self.plan.router_ns, "keeper", argv, self.plan.node_dir(self.plan.router_ns) / "keeper.log")

    def persist_controller_config(self) -> None:
        """Rewrite each controller's config from the current plan (every host a neighbour): peers added at
        run time then survive a restart of its daemon, which reads only this file."""
        for ctl in self.controllers():
            ctl.persist_config()


def _step_names(steps: dict[str, list[Callable[[], None]]], hosts: list[Host], phase: int) -> str:
    """`start gobgpd`: what step `phase` of these hosts' start does (the methods' names)."""
    return ", ".join(sorted({steps[h.name][phase].__name__.strip("_").replace("_", " ") for h in hosts if phase < len(steps[h.name])}))


def preflight() -> None:
    if os.geteuid() != 0:
        raise LabError("labctl must run as root (it creates network namespaces)")
    daemons.find_program("gobgpd")
    daemons.find_program("evpn-agent")
    try:
        dist.check_stubs_match()  # gobgpd ignores fields it does not know: stubs and daemon must agree
    except dist.DistError as exc:
        raise LabError(str(exc)) from None
    if not Path("/sys/module/vxlan").exists():
        try:
            subprocess.run(["modprobe", "vxlan"], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError):
            pass  # built in, or the first vxlan link creation will say what is missing


def owned_namespaces(lab: str, document: object) -> list[str]:
    """The namespaces lab `lab`'s state says are its own (its plan's; from the raw document if it no longer validates)."""
    try:
        return LabPlan(parse_topology(document, "state")).all_namespaces()
    except TopologyError:
        pass
    names = [namespace_name(lab, ROUTER_SUFFIX), namespace_name(lab, CONTROLLER_SUFFIX)]
    controllers = document.get("controllers") if isinstance(document, dict) else None
    names += [namespace_name(lab, c["name"]) for c in (controllers if isinstance(controllers, list) else [])
              if isinstance(c, dict) and isinstance(c.get("name"), str) and CONTROLLER_NAME_RE.match(c["name"])]
    hosts = document.get("hosts") if isinstance(document, dict) else None
    for host in hosts if isinstance(hosts, list) else []:
        if not isinstance(host, dict):
            continue
        if isinstance(host.get("name"), str) and host["name"].startswith(namespace_name(lab, "")):
            names.append(host["name"])
        vms = host.get("vms")
        names += [namespace_name(lab, vm["name"]) for vm in (vms if isinstance(vms, list) else [])
                  if isinstance(vm, dict) and isinstance(vm.get("name"), str)]
    return names


def teardown(lab: str, keep_logs: Path | None = None) -> list[str]:
    """Remove everything of lab `lab` its state names: daemons by recorded PID, leftover processes in its
    namespaces, those namespaces, its run dir. A namespace the state does not name is never touched.

    With `keep_logs`, the run dir's logs and configs are copied there first (for a failed `up`).
    """
    check_lab_name(lab)
    state = load(lab)
    removed: list[str] = []
    run_dir = lab_dir(lab)
    if state is None:
        log.warning("event=teardown-without-state lab=%s run_dir=%s", lab, run_dir)
        owned: list[str] = []
    else:
        daemons.stop_many([(pid, NodeFiles(run_dir / node).marker) for node, roles in state.pids.items() for pid in roles.values()])
        existing = set(netns.list_namespaces())
        owned = [n for n in owned_namespaces(lab, state.topology) if n in existing]
    daemons.kill_pids(netns.pids_in(owned))
    for name in owned:
        netns.remove(name)
        removed.append(name)
    if keep_logs is not None and run_dir.exists():
        shutil.rmtree(keep_logs, ignore_errors=True)
        shutil.copytree(run_dir, keep_logs, ignore=shutil.ignore_patterns("*.sock", state_file(lab).name))
    shutil.rmtree(run_dir, ignore_errors=True)
    return removed
