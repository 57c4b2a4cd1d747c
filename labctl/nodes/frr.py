"""Kind "frr": hypervisors that run FRR (zebra + bgpd, `advertise-all-vni`) instead of gobgpd + our agent;
and the FRR controller (bgpd as an eBGP hub for l2vpn evpn, no VNIs of its own: `controller_bgpd_config`).

Config rendering and the parsing of FRR's JSON are pure; starting the daemons and asking vtysh are
the side effects. FRR runs as its own `frr` user (it keeps the capabilities it needs); each node has
its own vty/zserv sockets under the node's run directory, so several FRR nodes coexist.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from agent.routes import (
    ImetRoute,
    MacIpRoute,
    PathAttrs,
    RouteDistinguisher,
    RouteEvent,
    RouteTarget,
)

from .. import netns
from ..bgp import Neighbor
from ..errors import LabError
from ..observe import fdb_entries, wait_until
from ..plan import LabPlan
from ..rundir import allow_group, write_private
from ..state import LabState
from ..topology import Controller, Host
from .base import ControlView, HostNode, start_daemon

FRR_DIR = Path("/usr/lib/frr")
DAEMONS = ("zebra", "bgpd")
FRR_USER = "frr"
_RT_RE = re.compile(r"RT:(\S+):(\d+)")
_MM_RE = re.compile(r"MM:(\d+)")


def frr_dir(plan: LabPlan, node: str) -> Path:
    return plan.files(node).frr_dir


def zebra_config(node: str) -> str:
    return f"""hostname {node}
! next hops (remote VTEPs) are reachable through the default route to the underlay router
ip nht resolve-via-default
!
"""


def bgpd_config(plan: LabPlan, host: Host) -> str:
    neighbors = plan.host_neighbors(host)
    vnis = "".join(
        f"""  vni {net.vni}
   rd {host.vtep}:{net.vni}
{''.join(f'   route-target import {rt}{chr(10)}   route-target export {rt}{chr(10)}' for rt in net.route_targets)}  exit-vni
"""
        for net in plan.host_networks(host)
    )
    return f"""frr defaults datacenter
hostname {host.name}
!
router bgp {host.asn}
 bgp router-id {host.vtep}
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
{neighbors[0].frr_router_lines()}{"".join(n.frr_session_lines() for n in neighbors)} !
 address-family l2vpn evpn
{"".join(n.frr_evpn_lines() for n in neighbors)}  advertise-all-vni
{vnis} exit-address-family
!
"""


def controller_bgpd_config(plan: LabPlan, ctl: Controller) -> str:
    """FRR's bgpd as the lab's eBGP hub: every host a (passive) neighbour, l2vpn evpn passed on with the next
    hop (the VTEP) unchanged; no VNI of its own (no advertise-all-vni), route targets untouched (FRR rewrites
    none on eBGP); it prepends its AS like the gobgpd hub, so hosts' enforce-first-as holds."""
    neighbors = [plan.controller_neighbor(h, ctl) for h in plan.topo.hosts]
    router = neighbors[0].frr_router_lines() if neighbors else ""
    return f"""frr defaults datacenter
hostname {plan.controller_namespace(ctl)}
!
router bgp {ctl.asn}
 bgp router-id {ctl.address}
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
{router}{"".join(n.frr_session_lines() for n in neighbors)} !
 address-family l2vpn evpn
{"".join(n.frr_evpn_lines() + n.frr_unchanged_lines() for n in neighbors)} exit-address-family
!
"""


def controller_peer_commands(ctl: Controller, neighbor: Neighbor) -> list[str]:
    """The vtysh commands that add `neighbor` to a running FRR controller (as its config file has it)."""
    lines = [f"router bgp {ctl.asn}", *neighbor.frr_session_lines().splitlines(), "address-family l2vpn evpn",
             *neighbor.frr_evpn_lines().splitlines(), *neighbor.frr_unchanged_lines().splitlines()]
    return ["configure terminal", *(line.strip() for line in lines)]


def daemon_argv(plan: LabPlan, node: str, daemon: str, listen: ipaddress.IPv4Address) -> list[str]:
    base = frr_dir(plan, node)
    argv = [str(FRR_DIR / daemon), "-f", str(base / f"{daemon}.conf"), "-i", str(base / f"{daemon}.pid"),
            "-z", str(base / "zserv.api"), "--vty_socket", str(base), "--log", f"file:{base / daemon}.log", "-P", "0"]
    if daemon == "bgpd":
        argv += ["-l", str(listen)]
    return argv


def check_installed() -> None:
    if not (FRR_DIR / "zebra").exists() or shutil.which("vtysh") is None:
        raise LabError("FRR is not installed (scripts/bootstrap installs the 'frr' package)")


def prepare(plan: LabPlan, node: str, bgpd_conf: str) -> None:
    """Write the configs into a directory the frr user owns."""
    check_installed()
    base = frr_dir(plan, node)
    write_private(base / "zebra.conf", zebra_config(node))
    write_private(base / "bgpd.conf", bgpd_conf)
    shutil.chown(base, FRR_USER, FRR_USER)
    for item in base.iterdir():
        shutil.chown(item, FRR_USER, FRR_USER)
    allow_group(base.parent, FRR_USER)  # the frr user may traverse down to its own directory, nothing more


def start_daemons(plan: LabPlan, state: LabState, node: str, listen: ipaddress.IPv4Address) -> None:
    """zebra, then bgpd (listening on `listen`), under their supervisors."""
    base = frr_dir(plan, node)
    for daemon in DAEMONS:
        start_daemon(plan, state, node, daemon, daemon_argv(plan, node, daemon, listen), base / f"{daemon}.out")
        if daemon == "zebra":
            wait_until(f"zebra on {node}", lambda: (base / "zserv.api").exists(), 10)


def vtysh(plan: LabPlan, node: str, command: str | list[str], as_json: bool = False, timeout: float = 20) -> Any:
    commands = [command] if isinstance(command, str) else command
    argv = ["ip", "netns", "exec", node, "vtysh", "--vty_socket", str(frr_dir(plan, node))]
    for c in commands:
        argv += ["-c", c]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise LabError(f"{node}: vtysh '{commands[-1]}' did not answer within {timeout:.0f}s") from None
    if result.returncode != 0:
        raise LabError(f"{node}: vtysh '{commands[-1]}' failed: {(result.stderr or result.stdout).strip()}")
    if not as_json:
        return result.stdout
    try:
        return json.loads(result.stdout or "{}")
    except ValueError as exc:
        raise LabError(f"{node}: vtysh '{commands[-1]}' did not answer JSON") from exc


def parse_evpn_routes(data: dict[str, Any], rt_to_vni: dict[str, int]) -> list[RouteEvent]:
    """FRR's `show bgp l2vpn evpn route json` as our RouteEvents (best paths of types 2 and 3).

    FRR's JSON carries no label for these routes, so the VNI comes from the route target, through
    the topology's RT -> VNI map.
    """
    events: list[RouteEvent] = []
    for rd, prefixes in data.items():
        if not isinstance(prefixes, dict):
            continue
        for prefix in prefixes.values():
            if not isinstance(prefix, dict):
                continue
            for group in prefix.get("paths", []):
                for path in group:
                    if not path.get("bestpath"):
                        continue
                    event = _event(rd, path, rt_to_vni)
                    if event is not None:
                        events.append(event)
    return events


def _event(rd: str, path: dict[str, Any], rt_to_vni: dict[str, int]) -> RouteEvent | None:
    communities = str((path.get("extendedCommunity") or {}).get("string", ""))
    rts = frozenset(RouteTarget.parse(f"{a}:{v}") for a, v in _RT_RE.findall(communities))
    seq_match = _MM_RE.search(communities)
    nexthops = path.get("nexthops") or [{}]
    attrs = PathAttrs(
        next_hop=ipaddress.ip_address(nexthops[0].get("ip", "0.0.0.0")),
        route_targets=rts,
        encapsulation=8 if "ET:8" in communities else None,
        mac_mobility_seq=int(seq_match.group(1)) if seq_match else None,
    )
    vni = next((rt_to_vni[str(rt)] for rt in rts if str(rt) in rt_to_vni), None)
    local = path.get("peerId") == "(unspec)"
    if path.get("routeType") == 3:
        route = ImetRoute(RouteDistinguisher.parse(rd), int(path.get("ethTag", 0)), ipaddress.ip_address(path["ip"]), attrs, pmsi_vni=vni)
        return RouteEvent(route, local=local)
    if path.get("routeType") == 2:
        ip = path.get("ip")
        route2 = MacIpRoute(RouteDistinguisher.parse(rd), int(path.get("ethTag", 0)), str(path["mac"]).lower(),
                            ipaddress.ip_address(ip) if ip else None, vni, attrs)
        return RouteEvent(route2, local=local)
    return None


def read_rib(plan: LabPlan, node: str) -> list[RouteEvent]:
    rt_to_vni = {rt: net.vni for net in plan.topo.networks for rt in net.route_targets}
    return parse_evpn_routes(vtysh(plan, node, "show bgp l2vpn evpn route json", as_json=True), rt_to_vni)


def count_paths_from(data: dict[str, Any], neighbor: str) -> int:
    """Paths (best or not) of `show bgp l2vpn evpn route json` received from `neighbor`."""
    return sum(1 for prefixes in data.values() if isinstance(prefixes, dict)
               for prefix in prefixes.values() if isinstance(prefix, dict)
               for group in prefix.get("paths", []) for path in group if path.get("peerId") == neighbor)


def parse_sessions(data: dict[str, Any]) -> dict[str, str]:
    """`show bgp neighbors json` as neighbour address -> state in gobgp's words (ESTABLISHED, ACTIVE, ...)."""
    return {addr: str(info.get("bgpState", "unknown")).upper() for addr, info in data.items() if isinstance(info, dict)}


def sessions(plan: LabPlan, node: str) -> dict[str, str]:
    return parse_sessions(vtysh(plan, node, "show bgp neighbors json", as_json=True))


class FrrNode(HostNode):
    kind = "frr"
    learns_neighbours_from_arp = True  # zebra advertises the neighbours the kernel learned on the bridge

    @classmethod
    def preflight(cls) -> None:
        check_installed()

    def start(self) -> None:
        host, plan = self.host, self.plan
        prepare(plan, host.name, bgpd_config(plan, host))
        for net in plan.host_networks(host):
            netns.neigh_suppress(host.name, net.vxlan_device)
            # an address on the bridge and arp_accept: the kernel then learns the VMs' IPs from their
            # ARP, and zebra advertises them as MAC/IP routes (FRR learns neighbours from the SVI)
            netns.address(host.name, net.bridge, plan.bridge_address(net), exist_ok=True)
            netns.sysctl(host.name, f"net.ipv4.conf.{net.bridge}.arp_accept", "1")
        start_daemons(plan, self.state, host.name, host.vtep)

    def read_rib(self) -> list[RouteEvent]:
        return read_rib(self.plan, self.name)

    def paths_from(self, neighbor: str) -> int:
        return count_paths_from(vtysh(self.plan, self.name, "show bgp l2vpn evpn route json", as_json=True), neighbor)

    def control_view(self) -> ControlView:
        """FRR reports nothing of its own here: what zebra programmed into the kernel is its view."""
        networks = self.plan.host_networks(self.host)
        entries = fdb_entries(self.name, [n.vxlan_device for n in networks])
        remote = {str(n.vni): sorted(str(e.vtep) for e in entries if e.is_flood and e.device == n.vxlan_device) for n in networks}
        return ControlView("FRR", True, True, remote)

    def reconfigure_refusal(self) -> str | None:
        return "runs FRR: attach/detach reconfigure our agent only"

    def reconfigure(self) -> None:
        raise LabError(f"{self.name} {self.reconfigure_refusal()}")

    def vtysh(self, command: str) -> str:
        return str(vtysh(self.plan, self.name, command))


NODE = FrrNode
