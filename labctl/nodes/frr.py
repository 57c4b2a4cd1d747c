"""Kind "frr": hypervisors that run FRR (zebra + bgpd, `advertise-all-vni`) instead of gobgpd + our agent.

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

from .. import daemons, netns
from ..errors import LabError
from ..observe import fdb_entries, wait_until
from ..plan import LabPlan
from ..rundir import allow_group, write_private
from ..topology import Host
from .base import ControlView, HostNode, start_daemon

FRR_DIR = Path("/usr/lib/frr")
DAEMONS = ("zebra", "bgpd")
FRR_USER = "frr"
_RT_RE = re.compile(r"RT:(\S+):(\d+)")
_MM_RE = re.compile(r"MM:(\d+)")


def frr_dir(plan: LabPlan, host: Host) -> Path:
    return plan.files(host.name).frr_dir


def zebra_config(host: Host) -> str:
    return f"""hostname {host.name}
! next hops (remote VTEPs) are reachable through the default route to the underlay router
ip nht resolve-via-default
!
"""


def bgpd_config(plan: LabPlan, host: Host) -> str:
    neighbor = plan.host_neighbor(host)
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
{neighbor.frr_router_lines()}{neighbor.frr_session_lines()} !
 address-family l2vpn evpn
{neighbor.frr_evpn_lines()}  advertise-all-vni
{vnis} exit-address-family
!
"""


def daemon_argv(plan: LabPlan, host: Host, daemon: str) -> list[str]:
    base = frr_dir(plan, host)
    argv = [str(FRR_DIR / daemon), "-f", str(base / f"{daemon}.conf"), "-i", str(base / f"{daemon}.pid"),
            "-z", str(base / "zserv.api"), "--vty_socket", str(base), "--log", f"file:{base / daemon}.log", "-P", "0"]
    if daemon == "bgpd":
        argv += ["-l", str(host.vtep)]
    return argv


def check_installed() -> None:
    if not (FRR_DIR / "zebra").exists() or shutil.which("vtysh") is None:
        raise LabError("FRR is not installed (scripts/bootstrap installs the 'frr' package)")


def prepare(plan: LabPlan, host: Host) -> None:
    """Write the configs into a directory the frr user owns."""
    check_installed()
    base = frr_dir(plan, host)
    write_private(base / "zebra.conf", zebra_config(host))
    write_private(base / "bgpd.conf", bgpd_config(plan, host))
    shutil.chown(base, FRR_USER, FRR_USER)
    for item in base.iterdir():
        shutil.chown(item, FRR_USER, FRR_USER)
    allow_group(base.parent, FRR_USER)  # the frr user may traverse down to its own directory, nothing more


def vtysh(plan: LabPlan, host: Host, command: str, as_json: bool = False) -> Any:
    argv = ["ip", "netns", "exec", host.name, "vtysh", "--vty_socket", str(frr_dir(plan, host)), "-c", command]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    if result.returncode != 0:
        raise LabError(f"{host.name}: vtysh '{command}' failed: {(result.stderr or result.stdout).strip()}")
    if not as_json:
        return result.stdout
    try:
        return json.loads(result.stdout or "{}")
    except ValueError as exc:
        raise LabError(f"{host.name}: vtysh '{command}' did not answer JSON") from exc


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


def read_rib(plan: LabPlan, host: Host) -> list[RouteEvent]:
    rt_to_vni = {rt: net.vni for net in plan.topo.networks for rt in net.route_targets}
    return parse_evpn_routes(vtysh(plan, host, "show bgp l2vpn evpn route json", as_json=True), rt_to_vni)


class FrrNode(HostNode):
    kind = "frr"
    learns_neighbours_from_arp = True  # zebra advertises the neighbours the kernel learned on the bridge

    @classmethod
    def preflight(cls) -> None:
        check_installed()

    def start(self) -> None:
        host, plan = self.host, self.plan
        prepare(plan, host)
        for net in plan.host_networks(host):
            netns.neigh_suppress(host.name, net.vxlan_device)
            # an address on the bridge and arp_accept: the kernel then learns the VMs' IPs from their
            # ARP, and zebra advertises them as MAC/IP routes (FRR learns neighbours from the SVI)
            netns.address(host.name, net.bridge, plan.bridge_address(net), exist_ok=True)
            netns.sysctl(host.name, f"net.ipv4.conf.{net.bridge}.arp_accept", "1")
        base = frr_dir(plan, host)
        for daemon in DAEMONS:
            start_daemon(plan, self.state, host.name, daemon, daemon_argv(plan, host, daemon), base / f"{daemon}.out")
            if daemon == "zebra":
                wait_until(f"zebra on {host.name}", lambda: (base / "zserv.api").exists(), 10)

    def read_rib(self) -> list[RouteEvent]:
        return read_rib(self.plan, self.host)

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
        return str(vtysh(self.plan, self.host, command))


NODE = FrrNode
