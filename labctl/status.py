"""`labctl status`: sessions, control planes, flood lists and MAC tables, as `observe` reads them.

`collect` reads the lab once into a `StatusView` (plain data); `render_status` / `render_mac_tables`
print it as tables, `report.status_document` turns it into `labctl status --json`.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from agent.errors import GobgpUnavailable
from agent.routes import MacIpRoute

from . import netem
from .daemons import supervisor_info
from .lab import Lab
from .observe import control_view, controller_sessions_or_errors, expected_macs, read_fdb, read_rib

STATE_MARKUP = {
    "ready": "[green]ready[/green]",
    "verifying": "[green]ready[/green] [yellow](reading its kernel)[/yellow]",
    "starting": "[yellow]starting[/yellow]",
    "unreachable": "[red]gobgpd unreachable[/red]",
    "not running": "[red]not running[/red]",
    "not live": "[red]not live (status file stale)[/red]",
    "down": "[red]down (killed)[/red]",
}
DOWN_MARKUP = STATE_MARKUP["down"]


@dataclass(frozen=True)
class Restarts:
    role: str
    count: int
    last_exit: str | None
    running: bool


@dataclass(frozen=True)
class MacRow:
    mac: str
    ips: tuple[str, ...]
    vni: int
    where: str  # "local" or "remote"
    vtep: str
    seq: int


@dataclass(frozen=True)
class HostStatus:
    name: str
    asn: int
    vtep: str
    kind: str
    down: bool  # killed (labctl kill)
    bgp: dict[str, str]  # controller name -> session state there ("-": not listed, "?": unreadable, "down": controller killed)
    control: str  # the control plane's state: ready, starting, unreachable, ... or "down"
    restarts: tuple[Restarts, ...]
    remote_vteps: dict[str, list[str]]  # VNI -> remote VTEPs (the agent's view)
    flood: tuple[tuple[str, str], ...]  # (vxlan device, VTEP) of the kernel's flood entries
    macs: tuple[MacRow, ...] | None  # None: not read (--no-macs, or down)
    mac_error: str | None = None
    netem_topology: str | None = None  # the uplink impairment the topology asks for (labctl netem / netem:)
    netem_kernel: str | None = None  # the one in place now, as the kernel (or the delay line) has it


@dataclass(frozen=True)
class ControllerStatus:
    name: str
    namespace: str
    kind: str  # gobgpd or frr
    address: str
    asn: int
    down: bool  # killed (labctl kill)
    error: str | None  # why its sessions could not be read
    restarts: tuple[Restarts, ...]


@dataclass(frozen=True)
class StatusView:
    lab: str
    controllers: tuple[ControllerStatus, ...]
    hosts: tuple[HostStatus, ...]


def restarts_of(lab: Lab, node: str) -> tuple[Restarts, ...]:
    """The restarts of each supervised daemon of a node."""
    found = []
    for role in sorted(lab.state.pids.get(node, {})):
        info = supervisor_info(lab.plan.files(node).supervisor_status(role))
        last = info.get("last_exit")
        found.append(Restarts(role, int(info.get("restarts") or 0), str(last) if last else None, bool(info.get("child_pid"))))  # type: ignore[call-overload]
    return tuple(found)


def restarts_text(restarts: tuple[Restarts, ...]) -> str:
    """`gobgpd 0, agent 2 (last: signal 9)`."""
    return ", ".join(f"{r.role} {r.count}" + (f" (last: {r.last_exit})" if r.count else "") + ("" if r.running else " [red]down[/red]")
                     for r in restarts) or "-"


def mac_rows(lab: Lab, host_name: str) -> list[MacRow]:
    """One hypervisor's MAC table: its local MACs (as its kind knows them), remote ones from its RIB."""
    host = lab.host(host_name)
    rib = read_rib(lab, host_name)
    local = lab.node(host).local_macs(rib)
    rows = [MacRow(m.mac, tuple(m.ips), m.vni, "local", str(host.vtep), m.seq) for m in local]
    local_keys = {m.key for m in local}
    by_mac_vtep: dict[tuple[str, str], list[MacIpRoute]] = {}  # one pass over the RIB (100k routes: not one per MAC)
    for e in rib:
        if isinstance(e.route, MacIpRoute):
            by_mac_vtep.setdefault((e.route.mac, str(e.route.vtep)), []).append(e.route)
    for net in lab.plan.host_networks(host):
        winners = expected_macs(rib, str(host.vtep), net.vni)
        for mac, vtep in sorted(winners.items()):
            if f"{net.vni}/{mac}" in local_keys:
                continue
            routes = by_mac_vtep.get((mac, vtep), [])
            ips = tuple(sorted({str(r.ip) for r in routes if r.ip is not None}))
            seq = max((r.attrs.mac_mobility_seq or 0) for r in routes) if routes else 0
            rows.append(MacRow(mac, ips, net.vni, "remote", vtep, seq))
    return rows


def collect(lab: Lab, macs: bool = True) -> StatusView:
    """Read the lab once: each controller's sessions, each host's control plane, flood list and MAC table."""
    controllers = []
    read = controller_sessions_or_errors(lab)
    peers: dict[str, dict[str, str] | None] = {}  # controller name -> its sessions (None: unreadable or down)
    for ctl in lab.controllers():
        down = ctl.ns in lab.state.down_controllers
        found = read.get(ctl.name)
        peers[ctl.name] = found if isinstance(found, dict) else None
        error = found if isinstance(found, str) else None
        controllers.append(ControllerStatus(ctl.name, ctl.ns, ctl.kind, str(ctl.ctl.address), ctl.ctl.asn, down, error,
                                            () if down else restarts_of(lab, ctl.ns)))
    down_ctl = {c.name for c in controllers if c.down}
    hosts = []
    for host in lab.topo.hosts:
        bgp = {name: "down" if name in down_ctl else ("?" if p is None else p.get(str(host.vtep), "-")) for name, p in peers.items()}
        if host.name in lab.state.down_hosts:
            hosts.append(HostStatus(host.name, host.asn, str(host.vtep), host.kind, True, bgp, "down", (), {}, (), None))
            continue
        view = control_view(lab, host)
        flood = tuple(sorted((e.device, str(e.vtep)) for e in read_fdb(lab, host) if e.is_flood))
        rows: tuple[MacRow, ...] | None = None
        mac_error = None
        if macs:
            try:
                rows = tuple(mac_rows(lab, host.name))
            except GobgpUnavailable as exc:
                mac_error = str(exc)
        found = netem.read(lab.plan, host.name) if host.netem is not None else None
        hosts.append(HostStatus(host.name, host.asn, str(host.vtep), host.kind, False, bgp, view.state, restarts_of(lab, host.name),
                                dict(view.remote_vteps), flood, rows, mac_error,
                                host.netem.describe() if host.netem else None, found.describe() if found else None))
    return StatusView(lab.topo.lab, tuple(controllers), tuple(hosts))


def render_status(console: Console, view: StatusView) -> None:
    for c in view.controllers:
        state = DOWN_MARKUP if c.down else f"restarts {restarts_text(c.restarts)}"
        console.print(f"controller {c.name} ({c.kind}, AS {c.asn}, {c.address}): {state}", highlight=False)
        if c.error is not None:
            console.print(f"[red]controller {c.name} unreachable:[/red] {c.error}", highlight=False)
    table = Table(title=f"lab {view.lab}: hypervisors")
    bgp_columns = [f"BGP at {c.name}" for c in view.controllers] if len(view.controllers) > 1 else ["BGP (at controller)"]
    for column in ("host", "AS", "VTEP", *bgp_columns, "agent", "restarts", "VNI: remote VTEPs (agent)", "flood list (kernel)"):
        table.add_column(column)
    for h in view.hosts:
        states = [h.bgp.get(c.name, "-") for c in view.controllers]
        if h.down:
            table.add_row(h.name, str(h.asn), h.vtep, *states, DOWN_MARKUP, "", "", "")
            continue
        table.add_row(
            h.name, str(h.asn), h.vtep, *states, STATE_MARKUP.get(h.control, f"[cyan]{h.control}[/cyan]"), restarts_text(h.restarts),
            "; ".join(f"{vni}: {', '.join(v) or '-'}" for vni, v in h.remote_vteps.items()),
            ", ".join(f"{device}→{vtep}" for device, vtep in h.flood) or "-",
        )
    console.print(table)
    for h in view.hosts:
        if h.netem_topology is not None and not h.down:  # as the kernel (or the delay line) has it now, not as the topology says
            console.print(f"{h.name} uplink impaired: {h.netem_kernel or '[red]none in the kernel[/red]'} (topology: {h.netem_topology})",
                          highlight=False)


def render_mac_tables(console: Console, view: StatusView) -> None:
    for h in view.hosts:
        if h.down:
            continue
        table = Table(title=f"{h.name}: MAC table")
        for column in ("MAC", "IP", "VNI", "where", "VTEP", "seq"):
            table.add_column(column)
        if h.mac_error is not None:
            table.add_row("?", h.mac_error, "", "", "", "")
        for r in h.macs or ():
            table.add_row(r.mac, ", ".join(r.ips), str(r.vni), r.where, r.vtep, str(r.seq))
        console.print(table)
