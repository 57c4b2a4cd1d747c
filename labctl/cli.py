"""`labctl`: the command line. Every LabError becomes one red line and exit code 1."""

from __future__ import annotations

import json
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
json_option = click.option("--json", "as_json", is_flag=True, help="print a JSON document on stdout (fields: README, 'Operating the lab')")


def example(*lines: str) -> str:
    """The epilog of a command's --help: examples, shown as written."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def print_json(document: object) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@click.group(epilog=example("labctl up topologies/3x3.yaml && labctl verify", "labctl COMMAND --help"))
@click.option("-v", "--verbose", is_flag=True, help="log every step (structured lines on stderr)")
def main(verbose: bool) -> None:
    """Build a BGP-EVPN/VXLAN lab in network namespaces and prove it with real traffic."""
    os.umask(0o077)  # what labctl and the daemons it starts create is root's only (modes are also set explicitly)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )


@main.command(epilog=example("labctl gen --hosts 20 --vms 5 --networks 2 --lab big > big.yaml"))
@click.option("--hosts", type=int, required=True, help="hypervisors (at most 64)")
@click.option("--vms", type=int, required=True, help="VMs per hypervisor (at most 512 in all)")
@click.option("--networks", type=int, default=1, show_default=True, help="networks the VMs are spread over")
@click.option("--lab", "lab_name", default="gen", show_default=True, help="lab name")
@click.option("--asn", type=int, default=65001, show_default=True, help="the first hypervisor's AS (the next ones count up)")
@click.option("--vtep", default="10.0.0.101", show_default=True, help="the first hypervisor's VTEP (the next ones count up)")
@clean_errors
def gen(hosts: int, vms: int, networks: int, lab_name: str, asn: int, vtep: str) -> None:
    """Print a topology of HOSTS hypervisors with VMS VMs each (labctl gen ... > big.yaml). A topology can
    also say `scale: {hosts: 50, vms: 10, networks: 4}` instead of listing them: it loads as this lab."""
    from .generate import generate, render

    click.echo(render(generate(hosts, vms, networks, check_lab_name(lab_name), asn, vtep)), nl=False)


@main.command(epilog=example("labctl check topologies/3x3.yaml", "labctl check --json topologies/3x3.yaml | jq .ok"))
@click.argument("topology", type=click.Path(path_type=Path))
@json_option
@clean_errors
def check(topology: Path, as_json: bool) -> None:
    """Validate a topology file without creating anything."""
    if as_json:
        from .report import check_document

        try:
            print_json(check_document(str(topology), load_topology(topology)))
        except LabError as exc:
            print_json(check_document(str(topology), None, str(exc)))
            sys.exit(1)
        return
    topo = load_topology(topology)
    console.print(f"[green]ok[/green] {topology}: lab {topo.lab}, {len(topo.hosts)} hypervisors, "
                  f"{len(topo.vms())} VMs, {len(topo.networks)} networks")


@main.command(epilog=example("labctl up topologies/3x3.yaml"))
@click.argument("topology", type=click.Path(path_type=Path))
@clean_errors
def up(topology: Path) -> None:
    """Build the lab of TOPOLOGY and wait until BGP and every agent have converged (progress on stderr)."""
    from .lab import Lab
    from .progress import Steps

    topo = load_topology(topology)
    start = time.monotonic()
    with Steps(err_console, f"up {topo.lab}", total=2 * len(topo.hosts) + 4) as progress:
        lab = Lab.up(topo, str(topology), progress)
    console.print(f"[green]lab {lab.topo.lab} is up[/green] in {time.monotonic() - start:.1f}s: "
                  f"{len(topo.hosts)} hypervisors, {len(topo.vms())} VMs; try 'labctl verify'")
    console.print(f"memory: {lab_memory_line(lab)}", highlight=False, soft_wrap=True)


def lab_memory_line(lab: Any) -> str:
    """`total RSS ... PSS ...` of every process in the lab's namespaces (labctl/memory.py)."""
    from .memory import read_lab, render

    return render(read_lab(lab.plan.all_namespaces()), len(lab.hosts_alive()))


@main.command(epilog=example("labctl down", "labctl down evpn"))
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


@main.command(epilog=example("labctl apply topologies/3x3-plus-one.yaml"))
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


@main.command(epilog=example("labctl kill evpn-2", "labctl kill evpn-2 --no-wait"))
@click.argument("host")
@lab_option
@click.option("--no-wait", is_flag=True, help="do not wait for the survivors to forget it")
@clean_errors
def kill(host: str, lab_name: str | None, no_wait: bool) -> None:
    """A hypervisor (or a controller) dies: daemons killed, uplink down. Waits until the survivors' RIB and
    FDB forget it (a controller: until no host holds a path from it), measuring the ping loss meanwhile."""
    from .bgp import GR_RESTART_TIME
    from .faults import controller_kill_measured, kill_measured
    from .lab import Lab

    lab = Lab.open(resolve_lab(lab_name))
    if lab.plan.controller_of(host) is not None and not no_wait:
        console.print(controller_kill_measured(lab, host).line(), highlight=False, soft_wrap=True)
        return
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


@main.command(epilog=example("labctl restart evpn-1 agent", "labctl restart controller gobgpd --signal TERM"))
@click.argument("node")
@click.argument("daemon", type=click.Choice(["gobgpd", "agent", "zebra", "bgpd"]))
@click.option("--signal", "sig", type=click.Choice(["KILL", "TERM"]), default="KILL", show_default=True)
@lab_option
@clean_errors
def restart(node: str, daemon: str, sig: str, lab_name: str | None) -> None:
    """Kill DAEMON on NODE (a hypervisor or a controller's name); its supervisor restarts it. Prints the recovery
    time and the loss a 10 ms ping across NODE saw, routes other hosts lost meanwhile, and what happened to the
    other hosts' kernel entries (sampled every 0.1 s, and their agents' counters)."""
    from .faults import KernelSampler, restart_measured
    from .lab import Lab

    lab = Lab.open(resolve_lab(lab_name))
    kernel = KernelSampler(lab, [h for h in lab.hosts_alive() if h.name != node])
    try:
        result = restart_measured(lab, node, daemon, getattr(signal, f"SIG{sig}"))
    finally:
        churn = kernel.stop()
    console.print(result.line(), highlight=False, soft_wrap=True)
    console.print(churn.line(), highlight=False, soft_wrap=True)


@main.command(epilog=example("labctl flap evpn-2 --down-for 4"))
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


@main.command(epilog=example("labctl revive evpn-2"))
@click.argument("host")
@lab_option
@clean_errors
def revive(host: str, lab_name: str | None) -> None:
    """Bring a killed hypervisor (or controller) back: uplink up, its daemons started, converged."""
    from .lab import Lab

    lab = Lab.open(resolve_lab(lab_name))
    took = lab.revive(host)
    console.print(f"{host} is back; fabric converged in {took:.2f}s")


@main.command(epilog=example("labctl move vm1 evpn-2"))
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


@main.command(epilog=example("labctl attach vm8 red --ip 192.168.30.38"))
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


@main.command(epilog=example("labctl detach vm10"))
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


@main.command(epilog=example("labctl status", "labctl status --no-macs", "labctl status --json | jq '.hosts[] | {name, bgp, control}'"))
@lab_option
@click.option("--no-macs", is_flag=True, help="leave out the per-host MAC tables")
@json_option
@clean_errors
def status(lab_name: str | None, no_macs: bool, as_json: bool) -> None:
    """BGP sessions, agents and flood lists of every hypervisor, and each one's MAC table."""
    from .lab import Lab
    from .status import collect, render_mac_tables, render_status

    lab = Lab.open(resolve_lab(lab_name))
    view = collect(lab, macs=not no_macs)
    if as_json:
        from .report import status_document

        print_json(status_document(view))
        return
    render_status(console, view)
    console.print(f"memory: {lab_memory_line(lab)}", highlight=False, soft_wrap=True)
    if not no_macs:
        render_mac_tables(console, view)


@main.command(epilog=example("labctl verify", "labctl verify --only rib --only fdb", "labctl verify --json > verify.json",
                              "labctl verify --junit verify.xml   # one test case per check, for CI"))
@lab_option
@click.option("--only", multiple=True, help="run only checks whose id starts with this (repeatable)")
@click.option("--scenario", type=click.Choice(["migration"]), help="also run a scenario: migration = move a VM away and back, measuring the outage")
@json_option
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False, path_type=Path), help="also write the results as JUnit XML to this file")
@clean_errors
def verify(lab_name: str | None, only: tuple[str, ...], scenario: str | None, as_json: bool, junit_file: Path | None) -> None:
    """Prove the lab works: RIBs, FDBs, real pings and captures. Exit 1 if any check fails (progress on stderr)."""
    from .lab import Lab
    from .progress import Steps
    from .report import junit_xml, verify_document
    from .verify import run_checks, run_migration_scenario

    lab = Lab.open(resolve_lab(lab_name))
    started, began = time.time(), time.monotonic()
    lab.record("verify", only=",".join(only) or "all", scenario=scenario or "-")
    with Steps(err_console, f"verify {lab.topo.lab}", total=12 + (2 if scenario else 0), quiet=as_json) as progress:
        results = run_checks(lab, only=only, progress=progress)
        if scenario == "migration":
            results += run_migration_scenario(lab, progress)
    seconds = time.monotonic() - began
    failed = [r for r in results if not r.ok]
    lab.record("verify-done", passed=len(results) - len(failed), failed=len(failed), seconds=f"{seconds:.1f}")
    if junit_file is not None:
        try:
            junit_file.write_text(junit_xml(lab.topo.lab, results, started, seconds))
        except OSError as exc:
            raise LabError(f"--junit {junit_file}: cannot write it ({exc.strerror})") from None
    if as_json:
        print_json(verify_document(lab.topo.lab, results, started, seconds))
        if failed:
            sys.exit(1)
        return
    table = Table(title=f"labctl verify: lab {lab.topo.lab}")
    table.add_column("check", no_wrap=True)  # whole check names (the evidence column takes what is left)
    table.add_column("result", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("evidence", overflow="fold", ratio=1)
    for r in results:
        table.add_row(r.name, "[green]pass[/green]" if r.ok else "[red]FAIL[/red]", f"{r.seconds:.1f}s" if r.seconds else "", r.evidence)
    console.print(table)
    console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed in {seconds:.1f}s")
    if failed:
        sys.exit(1)


def _duration(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    from .chaos import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _kinds(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[str, ...]:
    from .chaos import KINDS, parse_kinds

    try:
        return parse_kinds(value) if value else KINDS
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command(epilog=example("labctl chaos --duration 10m", "labctl chaos --seed 456 --duration 90s --faults agent-kill,link-flap"))
@lab_option
@click.option("--duration", default="10m", show_default=True, callback=_duration, help="how long to keep injecting faults: 600, 90s, 10m, 1h")
@click.option("--seed", type=click.IntRange(0), help="replay the faults of an earlier run (default: a random seed, printed first)")
@click.option("--faults", "kinds", callback=_kinds, help="comma-separated kinds to draw from (default: all): "
              "agent-kill, gobgpd-kill, controller-kill, link-flap, vm-move, mac-burst")
@click.option("--timeout", type=click.FloatRange(1), default=45.0, show_default=True, help="seconds a fault may take until every invariant holds again")
@clean_errors
def chaos(lab_name: str | None, duration: float, seed: int | None, kinds: tuple[str, ...], timeout: float) -> None:
    """Random faults for --duration, each followed by a wait until every invariant holds again (FDB = RIB,
    controller RIB = union of the hosts', no orphan route, every VM pair pings). Exit 1 on the first that
    does not hold within --timeout; the seed replays the run."""
    import random

    from .chaosrun import run
    from .lab import Lab

    seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
    console.print(f"chaos seed [bold]{seed}[/bold] (replay: labctl chaos --seed {seed})", highlight=False)
    lab = Lab.open(resolve_lab(lab_name))
    start = time.monotonic()
    summary = run(lab, seed, duration, kinds, timeout,
                  lambda m: console.print(f"  [dim]{time.monotonic() - start:6.1f}s[/dim] {m}", highlight=False))
    render_chaos(summary, lab.topo.lab)
    if not summary.ok:
        sys.exit(1)


def render_chaos(summary: Any, lab_name: str) -> None:
    table = Table(title=f"labctl chaos: lab {lab_name}, seed {summary.seed}, {summary.elapsed:.0f}s")
    for column in ("fault", "survived", "failed", "worst convergence", "worst loss"):
        table.add_column(column)
    for kind, (good, bad) in summary.by_kind().items():
        conv, loss = summary.worst_convergence(kind), summary.worst_loss(kind)
        table.add_row(kind, str(good), f"[red]{bad}[/red]" if bad else "0",
                      f"{conv.convergence:.2f}s (step {conv.fault.step})" if conv else "-",
                      f"{loss.lost_ms} ms (step {loss.fault.step})" if loss else "-")
    console.print(table)
    console.print(summary.headline(), highlight=False, soft_wrap=True)
    for failed in summary.failures:
        console.print(f"[red]FAILED[/red] step {failed.fault.step} ({failed.fault.describe()}), seed {summary.seed}: "
                      f"{'; '.join(failed.problems)}. Replay: labctl chaos --seed {summary.seed}", highlight=False, soft_wrap=True)


@main.command(epilog=example("labctl logs evpn-1 -n 100", "labctl logs controller -f"))
@click.argument("node", required=False)
@lab_option
@click.option("-f", "--follow", is_flag=True)
@click.option("-n", "--lines", default=40, show_default=True)
@clean_errors
def logs(node: str | None, lab_name: str | None, follow: bool, lines: int) -> None:
    """Show the daemons' logs (all nodes, or one)."""
    from .lab import Lab

    lab = Lab.open(resolve_lab(lab_name))
    nodes = lab.plan.controller_nses + [h.name for h in lab.topo.hosts]
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


@main.command(epilog=example("labctl vtysh evpn-3 show evpn mac vni all"))
@click.argument("host")
@click.argument("command", nargs=-1, required=True)
@lab_option
@clean_errors
def vtysh(host: str, command: tuple[str, ...], lab_name: str | None) -> None:
    """Run a vtysh command on an FRR hypervisor or FRR controller, e.g. labctl vtysh evpn-3 show evpn mac vni all."""
    from .lab import Lab
    from .nodes import frr

    lab = Lab.open(resolve_lab(lab_name))
    ctl = lab.plan.controller_of(host)
    if ctl is not None:
        if ctl.kind != "frr":
            raise LabError(f"controller {ctl.name} runs {ctl.kind}, not FRR")
        console.print(frr.vtysh(lab.plan, lab.plan.controller_namespace(ctl), " ".join(command)), highlight=False, soft_wrap=True)
        return
    console.print(lab.node(host).vtysh(" ".join(command)), highlight=False, soft_wrap=True)


@main.command(name="exec", context_settings={"ignore_unknown_options": True},
              epilog=example("labctl exec evpn-1 -- bridge fdb show dev vxlan100", "labctl exec vm1 -- ping -c 3 192.168.100.37"))
@click.argument("node")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@lab_option
@clean_errors
def exec_(node: str, command: tuple[str, ...], lab_name: str | None) -> None:
    """Run COMMAND inside NODE's namespace (a hypervisor, a controller's name, 'underlay' or a VM name)."""
    from .lab import Lab

    lab = Lab.open(resolve_lab(lab_name))
    ours = lab.plan.all_namespaces()
    ns_name = next((n for n in ours if node in (n, n.removeprefix(lab.plan.prefix))), None)
    if ns_name is None:
        raise LabError(f"no node {node!r} in lab {lab.topo.lab}")
    sys.exit(subprocess.call(["ip", "netns", "exec", ns_name, *command]))


GRAPH_SUFFIXES = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".mermaid": "mermaid"}


@main.command(epilog=example("labctl graph -o lab.svg", "labctl graph --format png -o lab.png",
                             "labctl graph topologies/3x3.yaml --format mermaid   # planned, no lab needed"))
@click.argument("topology", required=False, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["svg", "png", "dot", "mermaid"]), help="default: from -o's suffix, else dot")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="file to write (default: stdout)")
@lab_option
@clean_errors
def graph(topology: Path | None, fmt: str | None, output: Path | None, lab_name: str | None) -> None:
    """Draw the running lab, or TOPOLOGY as planned: underlay router, controller, hypervisors with their VTEP
    and AS, VMs grouped by host and coloured by network, BGP sessions coloured by state, killed hosts down."""
    from .graph import build_graph, render, render_image, to_dot

    fmt = fmt or (GRAPH_SUFFIXES.get(output.suffix.lower(), "dot") if output is not None else "dot")
    if topology is not None:
        model = build_graph(load_topology(topology))
    else:
        from .lab import Lab

        lab = Lab.open(resolve_lab(lab_name))
        from .observe import controller_sessions_or_errors

        states: dict[str, dict[str, str]] = {}
        for name, found in controller_sessions_or_errors(lab).items():
            if isinstance(found, str):
                err_console.print(f"[yellow]controller {name} unreachable ({found}): its sessions drawn as unknown[/yellow]", highlight=False)
                found = {str(h.vtep): "unknown" for h in lab.topo.hosts}
            states[name] = found
        down_ctl = [c.name for c in lab.topo.controllers if lab.plan.controller_namespace(c) in lab.state.down_controllers]
        model = build_graph(lab.topo, lab.state.down_hosts, states, down_ctl)
    data = render_image(to_dot(model), fmt) if fmt in ("svg", "png") else render(model, fmt).encode()
    if output is None:
        if fmt == "png" and sys.stdout.isatty():
            raise LabError("--format png is binary: give -o FILE (or redirect stdout)")
        sys.stdout.buffer.write(data)
        return
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise LabError(f"-o {output}: cannot write it ({exc.strerror})") from None
    err_console.print(f"wrote {output} ({fmt}, {len(data)} bytes)", highlight=False)


@main.command(epilog=example("labctl events", "labctl events -f", "labctl events --mac 02:00:00:00:01:01",
                             "labctl events --node evpn-1 --event mac- --event entry-", "labctl events --json -n 20"))
@lab_option
@click.option("-f", "--follow", is_flag=True, help="keep printing new events (the files are polled every 0.5 s; Ctrl-C ends)")
@json_option
@click.option("--node", "nodes", multiple=True, help="only this node's events ('labctl' for labctl's own; repeatable)")
@click.option("--event", "names", multiple=True, help="only events whose name starts with this (repeatable)")
@click.option("--mac", help="only events naming this MAC")
@click.option("-n", "--lines", type=click.IntRange(min=0), default=0, help="only the last N events before following (0: all)")
@clean_errors
def events(lab_name: str | None, follow: bool, as_json: bool, nodes: tuple[str, ...], names: tuple[str, ...],
           mac: str | None, lines: int) -> None:
    """One timeline of the lab: labctl's actions (up, kill, move, ...) merged with the agents' events (routes
    learned, entries programmed/removed, MACs moved or frozen) and gobgpd's session changes, by time."""
    from .events import Event, render_line, select
    from .interrupts import INTERRUPT
    from .lab import Lab
    from .timeline import Timeline

    lab = Lab.open(resolve_lab(lab_name))
    timeline = Timeline(lab.plan.run_dir, lab.plan.action_log)

    def show(batch: list[Event]) -> None:
        for e in select(batch, nodes, names, mac):
            click.echo(json.dumps(e.document(), ensure_ascii=False) if as_json else render_line(e))

    past = select(timeline.read_new(), nodes, names, mac)
    show(past[-lines:] if lines else past)
    if follow:
        sys.stdout.flush()
        for batch in timeline.follow(stop=lambda: INTERRUPT.signal is not None):
            show(batch)
            sys.stdout.flush()


@main.command()
@click.argument("target", metavar="NODE[:INTERFACE]")
@click.option("-w", "--write", "out", type=click.Path(dir_okay=False, path_type=Path), help="write a pcap file (Wireshark) instead of printing")
@click.option("-c", "--count", type=click.IntRange(min=1), help="stop after this many packets")
@click.option("--filter", "bpf", help="BPF capture filter, as tcpdump's (e.g. 'udp port 4789')")
@lab_option
@clean_errors
def capture(target: str, out: Path | None, count: int | None, bpf: str | None, lab_name: str | None) -> None:
    """Capture packets on a node's interface: a pcap file (-w) or one line per packet, VXLAN shown with its
    VNI and inner frame. NODE: a hypervisor (default interface: uplink), 'controller' (uplink), 'underlay'
    (all its interfaces) or a VM (eth0); NODE:INTERFACE picks one. Ctrl-C stops.

    \b
    Examples:
      labctl capture evpn-1 --count 4 --filter 'udp port 4789'
      10:41:02.113207 10.0.0.101 > 10.0.0.102 VNI 100: 02:00:00:00:01:01 > 02:00:00:00:02:04, IP 192.168.100.11 > 192.168.100.24 ICMP echo-request id 7 seq 1
      labctl capture evpn-1 -w vxlan.pcap --count 100     # then: wireshark vxlan.pcap
      labctl capture vm1 --filter arp                     # inside a VM, on its eth0
      labctl capture evpn-2:br0                           # another interface of a node
    """
    from . import sniff
    from .lab import Lab

    lab = Lab.open(resolve_lab(lab_name))
    point = sniff.resolve(lab.plan, target)
    if bpf:
        sniff.check_filter(point, bpf)
    where = f"{point.label}" + (f" (filter {bpf!r})" if bpf else "")
    if out is None:
        err_console.print(f"[dim]capturing on {where}; Ctrl-C stops[/dim]", highlight=False)
        shown = sniff.live(point, count, bpf, lambda line: click.echo(line))
        err_console.print(f"[dim]{shown} packets[/dim]", highlight=False)
        return
    err_console.print(f"[dim]capturing on {where} into {out}; Ctrl-C stops[/dim]", highlight=False)
    sniff.to_file(point, out.resolve(), count, bpf)
    total, vnis = sniff.pcap_summary(out)
    per_vni = ", ".join(f"VNI {vni}: {n}" for vni, n in sorted(vnis.items()))
    console.print(f"wrote {total} packets to {out}" + (f" ({sum(vnis.values())} VXLAN: {per_vni})" if vnis else ""), highlight=False)


@main.command()
@click.argument("host")
@click.option("--delay", "delay_ms", type=click.FloatRange(0, 10_000), help="milliseconds added to every packet HOST sends")
@click.option("--jitter", "jitter_ms", type=click.FloatRange(0, 10_000), help="± milliseconds around the delay (uniform)")
@click.option("--loss", "loss_pct", type=click.FloatRange(0, 100), help="percent of HOST's packets dropped")
@click.option("--clear", is_flag=True, help="remove every impairment of HOST's uplink")
@lab_option
@clean_errors
def netem(host: str, delay_ms: float | None, jitter_ms: float | None, loss_pct: float | None, clear: bool, lab_name: str | None) -> None:
    """Impair hypervisor HOST's uplink: delay, jitter and loss of what HOST sends (one-way: a ping to an
    equally impaired host sees twice the delay). Options not given keep their value; no option shows the
    current setting. Also settable per host in the topology: netem: {delay_ms: 50, jitter_ms: 5, loss_pct: 1}.

    \b
    Examples:
      labctl netem evpn-1 --delay 50 --jitter 5 --loss 1
      evpn-1: uplink impaired: delay 50 ms, jitter 5 ms, loss 1% (userspace delay line)
      labctl netem evpn-1            # show
      labctl netem evpn-1 --clear
    """
    from . import netem as impair
    from .lab import Lab
    from .topology import Netem

    lab = Lab.open(resolve_lab(lab_name))
    current = lab.host(host).netem
    if clear and any(v is not None for v in (delay_ms, jitter_ms, loss_pct)):
        raise LabError("--clear takes no --delay, --jitter or --loss")
    if not clear and all(v is None for v in (delay_ms, jitter_ms, loss_pct)):
        state = impair.read(lab.plan, host) if host not in lab.state.down_hosts else None
        shown = state.describe() if state else "clean"
        console.print(f"{host}: uplink {shown}" + (f" (topology: {current.describe()}; host down)" if current and not state else ""), highlight=False)
        return
    base = current or Netem()
    wanted = None if clear else Netem(base.delay_ms if delay_ms is None else delay_ms,
                                      base.jitter_ms if jitter_ms is None else jitter_ms,
                                      base.loss_pct if loss_pct is None else loss_pct)
    if wanted == Netem():
        wanted = None
    mechanism = lab.set_netem(host, wanted)
    if wanted is None:
        console.print(f"{host}: uplink clean", highlight=False)
    elif mechanism is None:
        console.print(f"{host}: down; uplink impairment {wanted.describe()} applies when revived", highlight=False)
    else:
        console.print(f"{host}: uplink impaired: {wanted.describe()} ({mechanism})", highlight=False)


if __name__ == "__main__":
    main()
