"""Lab lifecycle: up (with rollback), down (also after a crash), kill/revive a hypervisor, apply new hosts."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from agent.errors import GobgpUnavailable
from agent.gobgp import GobgpClient

from . import daemons, netns
from .errors import LabError
from .plan import EBGP_TTL, GOBGP_API, UNDERLAY_MTU, UPLINK, LabPlan
from .state import LabState, load, state_path
from .topology import Host, Topology, parse_topology

log = logging.getLogger("evpn.labctl.lab")

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def socket_path(plan: LabPlan, node: str) -> Path:
    return plan.node_dir(node) / "gobgpd.sock"


def gobgp_client(plan: LabPlan, node: str, timeout: float = 3.0) -> GobgpClient:
    return GobgpClient(f"unix://{socket_path(plan, node)}", timeout=timeout)


class Interrupted(LabError):
    """SIGINT/SIGTERM arrived during a lab operation (raised at a safe point, then rolled back)."""


class InterruptFlag:
    """Set from a signal handler; checked between steps so an interrupt never tears a step in half."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def check(self) -> None:
        if self.signal is not None:
            raise Interrupted(f"interrupted by signal {self.signal}")


INTERRUPT = InterruptFlag()


def wait_until(what: str, predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> float:
    """Poll `predicate` until true; return the seconds it took. LabError naming `what` on timeout."""
    start = time.monotonic()
    while True:
        INTERRUPT.check()
        try:
            if predicate():
                return time.monotonic() - start
        except GobgpUnavailable:
            pass
        if time.monotonic() - start > timeout:
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


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

    def agent_status(self, host: Host) -> dict[str, object]:
        try:
            return dict(json.loads((self.plan.node_dir(host.name) / "agent.status.json").read_text()))
        except (OSError, ValueError):
            return {}

    # -- build ---------------------------------------------------------------------

    def _build_underlay(self, progress: Progress) -> None:
        progress("underlay router and controller")
        netns.create(self.plan.router_ns)
        netns.sysctl(self.plan.router_ns, "net.ipv4.ip_forward", "1")
        netns.create(self.plan.controller_ns)
        self._uplink(self.plan.controller_ns, self.topo.controller.address)

    def _uplink(self, node_ns: str, loopback: object) -> None:
        link = self.plan.uplink(node_ns)
        netns.veth(self.plan.router_ns, link.router_if, node_ns, UPLINK, mtu=UNDERLAY_MTU)
        netns.address(self.plan.router_ns, link.router_if, f"{link.router_ip}/30")
        netns.address(node_ns, UPLINK, f"{link.node_ip}/30")
        netns.address(node_ns, "lo", f"{loopback}/32")
        self._uplink_routes(node_ns, loopback)

    def _uplink_routes(self, node_ns: str, loopback: object) -> None:
        link = self.plan.uplink(node_ns)
        netns.route(node_ns, "0.0.0.0/0", str(link.router_ip))
        netns.route(self.plan.router_ns, f"{loopback}/32", str(link.node_ip))

    def _build_host(self, host: Host, progress: Progress) -> None:
        progress(f"hypervisor {host.name}: namespace, uplink, bridge, vxlan, VMs")
        netns.create(host.name)
        self._uplink(host.name, host.vtep)
        for net in self.plan.host_networks(host):
            netns.bridge(host.name, net.bridge)
            netns.vxlan(host.name, net.vxlan_device, net.vni, str(host.vtep), net.bridge)
        for vp in self.plan.vm_plans(host):
            netns.create(vp.ns)
            netns.veth(host.name, vp.port, vp.ns, "eth0", mac_b=vp.vm.mac)
            if not vp.vm.detached:
                netns.enslave(host.name, vp.port, vp.network.bridge)
            netns.address(vp.ns, "eth0", f"{vp.vm.ip}/{vp.network.subnet.prefixlen}")

    # -- daemons ---------------------------------------------------------------------

    def _start_gobgpd(self, node: str, config: str) -> None:
        node_dir = self.plan.node_dir(node)
        node_dir.mkdir(parents=True, exist_ok=True)
        conf = node_dir / "gobgpd.toml"
        conf.write_text(config)
        sock = socket_path(self.plan, node)
        sock.unlink(missing_ok=True)
        argv = [daemons.find_program("gobgpd"), "-f", str(conf), "-t", "toml", "-p", "--pprof-disable",
                "--api-hosts", f"{GOBGP_API},unix://{sock}"]
        self.state.pids.setdefault(node, {})["gobgpd"] = daemons.start(node, argv, node_dir / "gobgpd.log")
        self.state.save()

    def _start_agent(self, host: Host) -> None:
        node_dir = self.plan.node_dir(host.name)
        conf = node_dir / "agent.yaml"
        conf.write_text(json.dumps(self.plan.agent_config(host), indent=1))
        (node_dir / "agent.status.json").unlink(missing_ok=True)
        argv = [daemons.find_program("evpn-agent"), "run", "--config", str(conf)]
        self.state.pids.setdefault(host.name, {})["agent"] = daemons.start(host.name, argv, node_dir / "agent.log")
        self.state.save()

    def marker(self, node: str) -> str:
        """What every command line of this node's daemons contains (guards against recycled PIDs)."""
        return str(self.plan.node_dir(node)) + "/"

    def _stop_node(self, node: str, hard: bool = False) -> None:
        for role, pid in sorted(self.state.pids.get(node, {}).items()):
            if daemons.stop(pid, self.marker(node), hard=hard):
                log.info("event=daemon-stopped node=%s role=%s pid=%d hard=%s", node, role, pid, hard)
        self.state.pids.pop(node, None)
        self.state.save()

    def _wait_gobgpd(self, node: str) -> None:
        def api_up() -> bool:
            if not socket_path(self.plan, node).exists():
                return False
            client = gobgp_client(self.plan, node)
            try:
                client.list_peers()
                return True
            finally:
                client.close()

        wait_until(f"gobgpd API on {node}", api_up, 10)

    def established(self) -> dict[str, str]:
        """Controller's view: host VTEP -> BGP session state."""
        client = gobgp_client(self.plan, self.plan.controller_ns)
        try:
            return {addr: state for addr, _, state in client.list_peers()}
        finally:
            client.close()

    def wait_converged(self, hosts: list[Host], timeout: float = 60.0) -> float:
        # gobgpd waits 5-10 s (random) before its first connect attempt: allow for a few of those
        """Until every given host's session is up and its agent is ready and knows every other live VTEP."""
        vteps = {str(h.vtep) for h in self.hosts_alive()}

        def converged() -> bool:
            states = self.established()
            if any(states.get(str(h.vtep)) != "ESTABLISHED" for h in hosts):
                return False
            for h in self.hosts_alive():
                status = self.host_view(h)
                if not status.get("ready") or status.get("stale_pending", True):
                    return False
                remote = status.get("remote_vteps", {})
                for net in self.plan.host_networks(h):
                    want = {str(o.vtep) for o in self.hosts_alive() if o is not h and net in self.plan.host_networks(o)}
                    if set(remote.get(str(net.vni), [])) != want & vteps:  # type: ignore[union-attr]
                        return False
            return True

        return wait_until("BGP sessions established and agents converged", converged, timeout)

    def _start_host(self, host: Host) -> None:
        if host.is_frr:
            self._start_frr(host)
            return
        self._start_gobgpd(host.name, self.plan.gobgpd_host_config(host))
        self._wait_gobgpd(host.name)
        self._start_agent(host)

    def _start_frr(self, host: Host) -> None:
        from . import frr

        frr.prepare(self.plan, host)
        for net in self.plan.host_networks(host):
            netns.neigh_suppress(host.name, net.vxlan_device)
            # an address on the bridge and arp_accept: the kernel then learns the VMs' IPs from their
            # ARP, and zebra advertises them as MAC/IP routes (FRR learns neighbours from the SVI)
            netns.address(host.name, net.bridge, f"{net.subnet.broadcast_address - 1}/{net.subnet.prefixlen}", exist_ok=True)
            netns.sysctl(host.name, f"net.ipv4.conf.{net.bridge}.arp_accept", "1")
        for daemon in ("zebra", "bgpd"):
            argv = frr.daemon_argv(self.plan, host, daemon)
            self.state.pids.setdefault(host.name, {})[daemon] = daemons.start(host.name, argv, frr.frr_dir(self.plan, host) / f"{daemon}.out")
            self.state.save()
            if daemon == "zebra":
                wait_until(f"zebra on {host.name}", lambda: (frr.frr_dir(self.plan, host) / "zserv.api").exists(), 10)

    def host_view(self, host: Host) -> dict[str, object]:
        """What a hypervisor's control plane reports: the agent's status, or (FRR) the kernel it programs."""
        if not host.is_frr:
            return self.agent_status(host)
        from agent.kernel import Kernel

        with Kernel(netns=host.name) as kernel:
            entries = kernel.entries([n.vxlan_device for n in self.plan.host_networks(host)])
        remote = {str(n.vni): sorted(str(e.vtep) for e in entries if e.is_flood and e.device == n.vxlan_device)
                  for n in self.plan.host_networks(host)}
        return {"ready": True, "stale_pending": False, "remote_vteps": remote}

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    def up(cls, topo: Topology, document: dict[str, object], source: str, progress: Progress = _quiet) -> "Lab":
        preflight()
        existing = [n for n in netns.list_namespaces() if n.startswith(f"{topo.lab}-")]
        if load(topo.lab) is not None or existing:
            raise LabError(f"lab {topo.lab!r} already exists ({len(existing)} namespaces): run 'labctl down {topo.lab}' first")
        lab = cls(topo, LabState(topo.lab, document, source))
        lab.state.save()
        user_progress = progress

        def progress(message: str) -> None:
            INTERRUPT.check()
            user_progress(message)

        try:
            lab._build_underlay(progress)
            for host in topo.hosts:
                lab._build_host(host, progress)
            progress("starting gobgpd on the controller")
            lab._start_gobgpd(lab.plan.controller_ns, lab.plan.gobgpd_controller_config())
            lab._wait_gobgpd(lab.plan.controller_ns)
            for host in topo.hosts:
                progress(f"starting gobgpd and evpn-agent on {host.name}")
                lab._start_host(host)
            progress("waiting for BGP sessions and agents")
            took = lab.wait_converged(list(topo.hosts))
            log.info("event=lab-converged lab=%s seconds=%.2f", topo.lab, took)
            lab.state.complete = True
            lab.state.save()
        except BaseException:
            kept = lab.plan.run_dir.with_name(f"{topo.lab}.failed")
            user_progress(f"failed: rolling back (logs kept in {kept})")
            teardown(topo.lab, keep_logs=kept)
            raise
        return lab

    def kill(self, name: str) -> None:
        """The hypervisor dies: its daemons are killed (SIGKILL) and its uplink goes down."""
        host = self._host(name)
        if name in self.state.down_hosts:
            raise LabError(f"{name} is already down (labctl revive {name})")
        netns.set_link(name, UPLINK, up=False)  # first, so no FIN or NOTIFICATION gets out: peers must use the hold timer
        self._stop_node(name, hard=True)
        self.state.down_hosts.append(name)
        self.state.save()
        log.info("event=host-killed host=%s vtep=%s", name, host.vtep)

    def revive(self, name: str) -> float:
        host = self._host(name)
        if name not in self.state.down_hosts:
            raise LabError(f"{name} is not down")
        netns.set_link(name, UPLINK, up=True)
        self._uplink_routes(name, host.vtep)  # an interface going down took its routes with it
        self.state.down_hosts.remove(name)
        self.state.save()
        self._start_host(host)
        return self.wait_converged([host])

    def apply(self, topo: Topology, document: dict[str, object], progress: Progress = _quiet) -> list[Host]:
        """Add the hosts that `topo` has and the running lab lacks; nothing else may change."""
        if topo.lab != self.topo.lab:
            raise LabError(f"topology is for lab {topo.lab!r}, the running lab is {self.topo.lab!r}")
        old = self.topo
        if (topo.controller, topo.networks, topo.timers, topo.links) != (old.controller, old.networks, old.timers, old.links):
            raise LabError("apply can only add hosts: controller, networks, bgp and underlay must stay the same")
        if topo.hosts[: len(old.hosts)] != old.hosts:
            raise LabError("apply can only add hosts: the existing hosts must be listed first, unchanged")
        new_hosts = list(topo.hosts[len(old.hosts):])
        if not new_hosts:
            return []
        old_document = self.state.topology
        self.topo, self.plan = topo, LabPlan(topo)
        self.state.topology = document
        created: list[Host] = []
        try:
            for host in new_hosts:
                self._build_host(host, progress)
                created.append(host)
                progress(f"controller: adding neighbor {host.vtep} (AS {host.asn})")
                self._add_controller_peer(host)
                progress(f"starting gobgpd and evpn-agent on {host.name}")
                self._start_host(host)
            self.state.save()
            self.wait_converged(new_hosts)
        except BaseException:
            progress("failed: removing the hosts this apply added")  # (apply's own progress never raises)
            for host in created:
                self._remove_host(host)
            self.topo, self.plan = old, LabPlan(old)
            self.state.topology = old_document
            self.state.save()
            raise
        return new_hosts

    def _add_controller_peer(self, host: Host) -> None:
        from protos.gobgpapi import gobgp_pb2 as gobgp

        t = self.topo.timers
        peer = gobgp.Peer(
            conf=gobgp.PeerConf(neighbor_address=str(host.vtep), peer_asn=host.asn),
            timers=gobgp.Timers(config=gobgp.TimersConfig(hold_time=t.hold_time, keepalive_interval=t.keepalive, connect_retry=t.connect_retry,
                                                          idle_hold_time_after_reset=1)),
            transport=gobgp.Transport(local_address=str(self.topo.controller.address)),
            ebgp_multihop=gobgp.EbgpMultihop(enabled=True, multihop_ttl=EBGP_TTL),
            afi_safis=[gobgp.AfiSafi(config=gobgp.AfiSafiConfig(family=gobgp.Family(afi=gobgp.Family.AFI_L2VPN, safi=gobgp.Family.SAFI_EVPN), enabled=True))],
        )
        client = gobgp_client(self.plan, self.plan.controller_ns)
        try:
            client.add_peer(peer)
        finally:
            client.close()

    def _remove_host(self, host: Host) -> None:
        self._stop_node(host.name, hard=True)
        for ns_name in reversed(self.plan.all_namespaces(host)):
            netns.remove(ns_name)
        netns.delete_link(self.plan.router_ns, self.plan.uplink(host.name).router_if)

    def _host(self, name: str) -> Host:
        host = self.topo.host(name)
        if host is None:
            raise LabError(f"{name!r} is not a hypervisor of lab {self.topo.lab} ({', '.join(h.name for h in self.topo.hosts)})")
        return host


def preflight() -> None:
    if os.geteuid() != 0:
        raise LabError("labctl must run as root (it creates network namespaces)")
    daemons.find_program("gobgpd")
    daemons.find_program("evpn-agent")
    if not Path("/sys/module/vxlan").exists():
        try:
            import subprocess

            subprocess.run(["modprobe", "vxlan"], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError):
            pass  # built in, or the first vxlan link creation will say what is missing


def teardown(lab: str, keep_logs: Path | None = None) -> list[str]:
    """Remove everything of lab `lab`: daemons by recorded PID, leftover processes in its namespaces, the namespaces, its run dir.

    With `keep_logs`, the run dir's logs and configs are moved there first (for a failed `up`).
    """
    state = load(lab)
    removed: list[str] = []
    if state is not None:
        run_dir = state_path(lab).parent
        for node, roles in state.pids.items():
            for pid in roles.values():
                daemons.stop(pid, f"{run_dir}/{node}/")
    ours = [n for n in netns.list_namespaces() if n.startswith(f"{lab}-")]
    for name in ours:
        daemons.kill_pids(netns.pids(name))
    for name in ours:
        netns.remove(name)
        removed.append(name)
    run_dir = state_path(lab).parent
    if keep_logs is not None and run_dir.exists():
        shutil.rmtree(keep_logs, ignore_errors=True)
        shutil.copytree(run_dir, keep_logs, ignore=shutil.ignore_patterns("*.sock", "state.json"))
    shutil.rmtree(run_dir, ignore_errors=True)
    return removed
