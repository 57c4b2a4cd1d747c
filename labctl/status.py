"""`labctl status`: sessions, agents and flood lists, read live."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from agent.errors import GobgpUnavailable

from .lab import Lab


def render_status(console: Console, lab_name: str) -> None:
    lab = Lab.open(lab_name)
    try:
        sessions = lab.established()
    except GobgpUnavailable as exc:
        sessions = {}
        console.print(f"[red]controller unreachable:[/red] {exc}")
    table = Table(title=f"lab {lab.topo.lab}: hypervisors")
    for column in ("host", "AS", "VTEP", "BGP (at controller)", "agent", "VNI: remote VTEPs (agent)", "flood list (kernel)"):
        table.add_column(column)
    from .verify import read_fdb

    for host in lab.topo.hosts:
        if host.name in lab.state.down_hosts:
            table.add_row(host.name, str(host.asn), str(host.vtep), sessions.get(str(host.vtep), "-"), "[red]down (killed)[/red]", "", "")
            continue
        status = lab.host_view(host)
        agent = "[green]ready[/green]" if status.get("ready") else "[yellow]starting[/yellow]"
        if host.is_frr:
            agent = "[cyan]FRR[/cyan]"
        if status and not status.get("connected"):
            agent = "[red]gobgpd unreachable[/red]"
        remote = status.get("remote_vteps", {}) or {}
        flood = {e for e in read_fdb(lab, host) if e.is_flood}
        table.add_row(
            host.name, str(host.asn), str(host.vtep), sessions.get(str(host.vtep), "?"), agent,
            "; ".join(f"{vni}: {', '.join(v) or '-'}" for vni, v in remote.items()),  # type: ignore[union-attr]
            ", ".join(f"{e.device}→{e.vtep}" for e in sorted(flood)) or "-",
        )
    console.print(table)


def mac_rows(lab: Lab, host_name: str) -> list[tuple[str, str, str, str, str, str]]:
    """(MAC, IPs, VNI, where, VTEP, seq) of one hypervisor: local MACs from its agent, remote ones from its RIB."""
    from agent.routes import MacIpRoute

    from .verify import expected_macs, read_rib

    host = lab.topo.host(host_name)
    assert host is not None
    status = lab.agent_status(host) if not host.is_frr else {}
    rows: list[tuple[str, str, str, str, str, str]] = []
    local = status.get("local_macs", {}) or {}
    local_ips = status.get("local_ips", {}) or {}
    if isinstance(local, dict):
        for key, seq in sorted(local.items()):
            vni, mac = key.split("/", 1)
            ips = ", ".join(local_ips.get(key, [])) if isinstance(local_ips, dict) else ""  # type: ignore[union-attr]
            rows.append((mac, ips, vni, "local", str(host.vtep), str(seq)))
    rib = read_rib(lab, host_name)
    if host.is_frr:  # FRR: its own Type-2 routes are its local MACs
        for e in rib:
            r = e.route
            if isinstance(r, MacIpRoute) and e.local:
                local[f"{r.label_vni}/{r.mac}"] = r.attrs.mac_mobility_seq or 0  # type: ignore[index]
        for e in rib:
            r = e.route
            if isinstance(r, MacIpRoute) and e.local and r.ip is None:
                ips = sorted(str(x.route.ip) for x in rib if isinstance(x.route, MacIpRoute) and x.local and x.route.mac == r.mac and x.route.ip)
                rows.append((r.mac, ", ".join(ips), str(r.label_vni), "local", str(host.vtep), str(r.attrs.mac_mobility_seq or 0)))
    for net in lab.plan.host_networks(host):
        winners = expected_macs(rib, str(host.vtep), net.vni)
        for mac, vtep in sorted(winners.items()):
            if f"{net.vni}/{mac}" in local:
                continue
            routes = [e.route for e in rib if isinstance(e.route, MacIpRoute) and e.route.mac == mac and str(e.route.vtep) == vtep]
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
