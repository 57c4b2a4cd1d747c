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
        status = lab.agent_status(host)
        agent = "[green]ready[/green]" if status.get("ready") else "[yellow]starting[/yellow]"
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
