"""`labctl status`: sessions, control planes, flood lists and MAC tables, as `observe` reads them."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from agent.errors import GobgpUnavailable
from agent.routes import MacIpRoute

from . import netem
from .daemons import supervisor_info
from .lab import Lab
from .observe import control_view, expected_macs, read_fdb, read_rib, sessions

STATE_MARKUP = {
    "ready": "[green]ready[/green]",
    "starting": "[yellow]starting[/yellow]",
    "unreachable": "[red]gobgpd unreachable[/red]",
    "not running": "[red]not running[/red]",
    "not live": "[red]not live (status file stale)[/red]",
}


def restarts_text(lab: Lab, node: str) -> str:
    """`gobgpd 0, agent 2 (last: signal 9)`: restarts of each supervised daemon of a node."""
    parts = []
    for role in sorted(lab.state.pids.get(node, {})):
        info = supervisor_info(lab.plan.files(node).supervisor_status(role))
        count = int(info.get("restarts") or 0)  # type: ignore[call-overload]
        last = f" (last: {info.get('last_exit')})" if count else ""
        parts.append(f"{role} {count}{last}" + ("" if info.get("child_pid") else " [red]down[/red]"))
    return ", ".join(parts) or "-"


def render_status(console: Console, lab_name: str) -> None:
    lab = Lab.open(lab_name)
    try:
        peers = sessions(lab)
    except GobgpUnavailable as exc:
        peers = {}
        console.print(f"[red]controller unreachable:[/red] {exc}")
    table = Table(title=f"lab {lab.topo.lab}: hypervisors")
    console.print(f"controller {lab.plan.controller_ns}: restarts {restarts_text(lab, lab.plan.controller_ns)}", highlight=False)
    for column in ("host", "AS", "VTEP", "BGP (at controller)", "agent", "restarts", "VNI: remote VTEPs (agent)", "flood list (kernel)"):
        table.add_column(column)
    for host in lab.topo.hosts:
        if host.name in lab.state.down_hosts:
            table.add_row(host.name, str(host.asn), str(host.vtep), peers.get(str(host.vtep), "-"), "[red]down (killed)[/red]", "", "", "")
            continue
        view = control_view(lab, host)
        flood = {e for e in read_fdb(lab, host) if e.is_flood}
        table.add_row(
            host.name, str(host.asn), str(host.vtep), peers.get(str(host.vtep), "?"),
            STATE_MARKUP.get(view.state, f"[cyan]{view.state}[/cyan]"), restarts_text(lab, host.name),
            "; ".join(f"{vni}: {', '.join(v) or '-'}" for vni, v in view.remote_vteps.items()),
            ", ".join(f"{e.device}→{e.vtep}" for e in sorted(flood)) or "-",
        )
    console.print(table)
    for host in lab.hosts_alive():
        if host.netem is not None:  # as the kernel (or the delay line) has it now, not as the topology says
            found = netem.read(lab.plan, host.name)
            console.print(f"{host.name} uplink impaired: {found.describe() if found else '[red]none in the kernel[/red]'} "
                          f"(topology: {host.netem.describe()})", highlight=False)


def mac_rows(lab: Lab, host_name: str) -> list[tuple[str, str, str, str, str, str]]:
    """(MAC, IPs, VNI, where, VTEP, seq) of one hypervisor: its local MACs (as its kind knows them), remote ones from its RIB."""
    host = lab.host(host_name)
    rib = read_rib(lab, host_name)
    local = lab.node(host).local_macs(rib)
    rows = [(m.mac, ", ".join(m.ips), str(m.vni), "local", str(host.vtep), str(m.seq)) for m in local]
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
            ips = ", ".join(sorted({str(r.ip) for r in routes if r.ip is not None}))
            seq = max((r.attrs.mac_mobility_seq or 0) for r in routes) if routes else 0
            rows.append((mac, ips, str(net.vni), "remote", vtep, str(seq)))
    return rows


def render_mac_tables(console: Console, lab_name: str) -> None:
    lab = Lab.open(lab_name)
    for host in lab.hosts_alive():
        table = Table(title=f"{host.name}: MAC table")
        for column in ("MAC", "IP", "VNI", "where", "VTEP", "seq"):
            table.add_column(column)
        try:
            for row in mac_rows(lab, host.name):
                table.add_row(*row)
        except GobgpUnavailable as exc:
            table.add_row("?", str(exc), "", "", "", "")
        console.print(table)
