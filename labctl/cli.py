"""`labctl`: the command line. Every LabError becomes one red line and exit code 1."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import click
from rich.console import Console
from rich.table import Table

from .errors import LabError
from .state import labs
from .topology import check_lab_name, load_topology

console = Console()
if not console.is_terminal:
    console = Console(width=160)  # logs and CI: long evidence lines instead of narrow wrapped columns
err_console = Console(stderr=True, width=160)
F = TypeVar("F", bound=Callable[..., Any])


def clean_errors(func: F) -> F:
    """Turn LabError (and Ctrl-C) into one line and an exit code, never a traceback."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .interrupts import INTERRUPT, Interrupted

        def on_signal(signum: int, _frame: object) -> None:
            INTERRUPT.signal = signum  # acted on at the next safe point (then rolled back)

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return func(*args, **kwargs)
        except Interrupted as exc:
            err_console.print(f"[red]error:[/red] {exc}; rolled back", highlight=False, soft_wrap=True)
            sys.exit(130)
        except LabError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            sys.exit(1)
        except OSError as exc:  # netlink and socket failures: say what, not where in the code
            logging.getLogger("evpn.labctl").debug("system error", exc_info=True)
            err_console.print(f"[red]error:[/red] system call failed: {exc} (run with -v for details)", highlight=False, soft_wrap=True)
            sys.exit(1)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]


def resolve_lab(lab: str | None) -> str:
    """The lab a command acts on: the one named (validated), or the only running one."""
    if lab is not None:
        return check_lab_name(lab)
    running = labs()
    if len(running) == 1:
        return running[0]
    if not running:
        raise LabError("no lab is running (labctl up TOPOLOGY)")
    raise LabError(f"several labs are running ({', '.join(running)}): name one with --lab")


lab_option = click.option("--lab", "lab_name", help="lab name (default: the only running lab)")


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="log every step (structured lines on stderr)")
def main(verbose: bool) -> None:
    """Build a BGP-EVPN/VXLAN lab in network namespaces and prove it with real traffic."""
    os.umask(0o077)  # what labctl and the daemons it starts create is root's only (modes are also set explicitly)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )


@main.command()
@click.option("--hosts", type=int, required=True, help="hypervisors (at most 64)")
@click.option("--vms", type=int, required=True, help="VMs per hypervisor (at most 512 in all)")
@click.option("--networks", type=int, default=1, show_default=True, help="networks the VMs are spread over")
@click.option("--lab", "lab_name", default="gen", show_default=True, help="lab name")
@clean_errors
def gen(hosts: int, vms: int, networks: int, lab_name: str) -> None:
    """Print a topology of HOSTS hypervisors with VMS VMs each (labctl gen ... > big.yaml)."""
    from .generate import generate, render

    click.echo(render(generate(hosts, vms, networks, check_lab_name(lab_name))), nl=False)


@main.command()
@click.argument("topology", type=click.Path(path_type=Path))
@clean_errors
def check(topology: Path) -> None:
    """Validate a topology file without creating anything."""
    topo = load_topology(topology)
    console.print(f"[green]ok[/green] {topology}: lab {topo.lab}, {len(topo.hosts)} hypervisors, "
                  f"{len(topo.vms())} VMs, {len(topo.networks)} networks")


@main.command()
@click.argument("topology", type=click.Path(path_type=Path))
@clean_errors
def up(topology: Path) -> None:
    """Build the lab of TOPOLOGY and wait until BGP and every agent have converged."""
    from .lab import Lab

    topo = load_topology(topology)
    start = time.monotonic()
    with console.status("starting") as status:
        def progress(message: str) -> None:
            console.print(f"  [dim]{time.monotonic() - start:5.1f}s[/dim] {message}", highlight=False)
            status.update(message)

        lab = Lab.up(topo, str(topology), progress)
    console.print(f"[green]lab {lab.topo.lab} is up[/green] in {time.monotonic() - start:.1f}s: "
                  f"{len(topo.hosts)} hypervisors, {len(topo.vms())} VMs; try 'labctl verify'")
    console.print(f"memory: {lab_memory_line(lab)}", highlight=False, soft_wrap=True)


def lab_memory_line(lab: Any) -> str:
    """`total RSS ... PSS ...` of every process in the lab's namespaces (labctl/memory.py)."""
    from .memory import read_lab, render

    return render(read_lab(lab.plan.all_namespaces()), len(lab.hosts_alive()))


@main.command()
@click.argument("lab_name", required=False)
@clean_errors
def down(lab_name: str | None) -> None:
    """Remove every namespace, interface and process of a lab (also after a crash)."""
    from .lab import teardown
    from .plan import lab_dir
    from .state import load

    name = resolve_lab(lab_name)
    if load(name) is None and not lab_dir(name).exists():
        raise LabError(f"no lab named {name!r} (nothing under {lab_dir(name)}); namespaces are removed only by the lab they belong to")
    removed = teardown(name)
    console.print(f"lab {name}: removed {len(removed)} namespaces")


@main.command()
@click.argument("topology", type=click.Path(path_type=Path))
@lab_option
@clean_errors
def apply(topology: Path, lab_name: str | None) -> None:
    """Add the hypervisors TOPOLOGY has and the running lab lacks (no change on the others)."""
    from .lab import Lab

    topo = load_topology(topology)
    lab = Lab.open(resolve_lab(lab_name) if lab_name is not None else topo.lab)
    added = lab.apply(topo, lambda m: console.print(f"  {m}", highlight=False))
    console.print(f"added {len(added)} hypervisors: {', '.join(h.name for h in added) or 'none'}")


@main.command()
@click.argument("host")
@lab_option
@click.option("--no-wait", is_flag=True, help="do not wait for the survivors to forget it")
@clean_errors
def kill(host: str, lab_name: str | None, no_wait: bool) -> None:
    """A hypervisor dies: daemons killed, uplink down. Waits until the survivors' RIB and FDB forget it."""
    from .bgp import GR_RESTART_TIME
    from .faults import kill_measured
    from .lab import Lab

    lab = Lab.open(resolve_lab(lab_name))
    if no_wait:
        lab.kill(host)
        console.print(f"{host}: uplink down, its daemons killed")
        return
    result, took = kill_measured(lab, host)
    console.print(f"{host}: uplink down, its daemons killed")
    console.print(f"survivors' RIB and FDB clean of {host} after [bold]{took:.2f}s[/bold] "
                  f"(BGP hold time {lab.topo.timers.hold_time}s + graceful-restart time {GR_RESTART_TIME}s: "
                  f"peers keep a silent host's routes as stale that long)")
    if result is not None:
        console.print(f"ping between survivors {result.pair}: lost [bold]{result.outage.lost_ms} ms[/bold]", highlight=False)


@main.command()
@click.argument("node")
@click.argument("daemon", type=click.Choice(["gobgpd", "agent", "zebra", "bgpd"]))
@click.option("--signal", "sig", type=click.Choice(["KILL", "TERM"]), default="KILL", show_default=True)
@lab_option
@clean_errors
def restart(node: str, daemon: str, sig: str, lab_name: str | None) -> None:
    """Kill DAEMON on NODE (a hypervisor or 'controller'); its supervisor restarts it. Prints the recovery
    time and the loss a 10 ms ping across NODE saw, and routes other hosts lost meanwhile."""
    from .faults import restart_measured
    from .lab import Lab

    lab = Lab.open(resolve_lab(lab_name))
    result = restart_measured(lab, node, daemon, getattr(signal, f"SIG{sig}"))
    console.print(result.line(), highlight=False, soft_wrap=True)


@main.command()
@click.argument("node")
@click.option("--down-for", type=float, default=1.0, show_default=True, help="seconds the link stays down")
@lab_option
@clean_errors
def flap(node: str, down_for: float, lab_name: str | None) -> None:
    """Take NODE's underlay link down (the router's end) for --down-for seconds and back up; print how long
    traffic across it was lost and when the fabric converged again."""
    from .faults import flap_measured
    from .lab import Lab

    lab = Lab.open(resolve_lab(lab_name))
    result = flap_measured(lab, node, down_for)
    console.print(result.line(), highlight=False, soft_wrap=True)


@main.command()
@click.argument("host")
@lab_option
@clean_errors
def revive(host: str, lab_name: str | None) -> None:
    """Bring a killed hypervisor back: uplink up, gobgpd and agent started, converged."""
    from .lab import Lab

    lab = Lab.open(resolve_lab(lab_name))
    took = lab.revive(host)
    console.print(f"{host} is back; fabric converged in {took:.2f}s")


@main.command()
@click.argument("vm")
@click.argument("host")
@lab_option
@clean_errors
def move(vm: str, host: str, lab_name: str | None) -> None:
    """Live-migrate VM to HOST (same MAC/IP/VNI; it sends a gratuitous ARP) and report the outage
    a continuous ping from a VM on an uninvolved hypervisor saw."""
    from .lab import Lab
    from .migrate import move_measured
    from .verify import check_migration

    lab = Lab.open(resolve_lab(lab_name))
    outage, source, target, moved = move_measured(lab, vm, host)
    console.print(f"{moved.name} moved {source.name} → {target.name}: outage [bold]{outage.seconds * 1000:.0f} ms[/bold] "
                  f"({outage.received}/{outage.sent} replies at 10 ms)")
    result = check_migration(lab, moved, source, target)
    console.print(f"{'[green]pass[/green]' if result.ok else '[red]FAIL[/red]'} {result.evidence}", highlight=False)
    if not result.ok:
        sys.exit(1)


@main.command()
@click.argument("vm")
@click.argument("network")
@click.option("--ip", help="the VM's address in NETWORK (default: keep its address)")
@lab_option
@clean_errors
def attach(vm: str, network: str, ip: str | None, lab_name: str | None) -> None:
    """Plug VM into NETWORK on its hypervisor (bridge/vxlan made if new there; the agent serves it)."""
    from .lab import Lab
    from .networks import attach as do_attach

    lab = Lab.open(resolve_lab(lab_name))
    host, address = do_attach(lab, vm, network, ip)
    console.print(f"{vm} attached to {network} on {host.name} with {address}")


@main.command()
@click.argument("vm")
@lab_option
@clean_errors
def detach(vm: str, lab_name: str | None) -> None:
    """Unplug VM from its network (devices of a network no VM uses any more on that host go away)."""
    from .lab import Lab
    from .networks import detach as do_detach

    lab = Lab.open(resolve_lab(lab_name))
    host = do_detach(lab, vm)
    console.print(f"{vm} detached on {host.name}")


@main.command()
@lab_option
@click.option("--no-macs", is_flag=True, help="leave out the per-host MAC tables")
@clean_errors
def status(lab_name: str | None, no_macs: bool) -> None:
    """BGP sessions, agents and flood lists of every hypervisor, and each one's MAC table."""
    from .lab import Lab
    from .status import render_mac_tables, render_status

    name = resolve_lab(lab_name)
    render_status(console, name)
    console.print(f"memory: {lab_memory_line(Lab.open(name))}", highlight=False, soft_wrap=True)
    if not no_macs:
        render_mac_tables(console, name)


@main.command()
@lab_option
@click.option("--only", multiple=True, help="run only checks whose id starts with this (repeatable)")
@click.option("--scenario", type=click.Choice(["migration"]), help="also run a scenario: migration = move a VM away and back, measuring the outage")
@clean_errors
def verify(lab_name: str | None, only: tuple[str, ...], scenario: str | None) -> None:
    """Prove the lab works: RIBs, FDBs, real pings and captures. Exit 1 if any check fails."""
    from .lab import Lab
    from .verify import run_checks, run_migration_scenario

    lab = Lab.open(resolve_lab(lab_name))
    start = time.monotonic()
    progress = lambda m: console.print(f"  [dim]{time.monotonic() - start:5.1f}s {m}[/dim]", highlight=False)  # noqa: E731
    results = run_checks(lab, only=only, progress=progress)
    if scenario == "migration":
        results += run_migration_scenario(lab, progress)
    table = Table(title=f"labctl verify: lab {lab.topo.lab}")
    table.add_column("check", no_wrap=True)  # whole check names (the evidence column takes what is left)
    table.add_column("result", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("evidence", overflow="fold", ratio=1)
    for r in results:
        table.add_row(r.name, "[green]pass[/green]" if r.ok else "[red]FAIL[/red]", f"{r.seconds:.1f}s" if r.seconds else "", r.evidence)
    console.print(table)
    failed = [r for r in results if not r.ok]
    console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed in {time.monotonic() - start:.1f}s")
    if failed:
        sys.exit(1)


@main.command()
@click.argument("node", required=False)
@lab_option
@click.option("-f", "--follow", is_flag=True)
@click.option("-n", "--lines", default=40, show_default=True)
@clean_errors
def logs(node: str | None, lab_name: str | None, follow: bool, lines: int) -> None:
    """Show the daemons' logs (all nodes, or one)."""
    from .lab import Lab

    lab = Lab.open(resolve_lab(lab_name))
    nodes = [lab.plan.controller_ns] + [h.name for h in lab.topo.hosts]
    if node is not None:
        ns_name = next((n for n in nodes if node in (n, n.removeprefix(lab.plan.prefix))), None)
        if ns_name is None:
            raise LabError(f"no node {node!r} with logs in lab {lab.topo.lab} ({', '.join(nodes)})")
        nodes = [ns_name]
    base = lab.plan.run_dir.resolve()
    files = [f for n in nodes for f in sorted(lab.plan.node_dir(n).glob("**/*.log")) if f.resolve().is_relative_to(base)]
    if not files:
        raise LabError(f"no logs for {node or 'any node'} under {lab.plan.run_dir}")
    argv = ["tail", "-n", str(lines)] + (["-F"] if follow else []) + [str(f) for f in files]
    os.execvp("tail", argv)


@main.command()
@click.argument("host")
@click.argument("command", nargs=-1, required=True)
@lab_option
@clean_errors
def vtysh(host: str, command: tuple[str, ...], lab_name: str | None) -> None:
    """Run a vtysh command on an FRR hypervisor, e.g. labctl vtysh evpn-3 show evpn mac vni all."""
    from .lab import Lab

    lab = Lab.open(resolve_lab(lab_name))
    console.print(lab.node(host).vtysh(" ".join(command)), highlight=False, soft_wrap=True)


@main.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.argument("node")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@lab_option
@clean_errors
def exec_(node: str, command: tuple[str, ...], lab_name: str | None) -> None:
    """Run COMMAND inside NODE's namespace (a hypervisor, 'controller', 'underlay' or a VM name)."""
    from .lab import Lab

    lab = Lab.open(resolve_lab(lab_name))
    ours = lab.plan.all_namespaces()
    ns_name = next((n for n in ours if node in (n, n.removeprefix(lab.plan.prefix))), None)
    if ns_name is None:
        raise LabError(f"no node {node!r} in lab {lab.topo.lab}")
    sys.exit(subprocess.call(["ip", "netns", "exec", ns_name, *command]))


if __name__ == "__main__":
    main()
