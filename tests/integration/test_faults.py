"""Faults on a running lab, each measured with a 10 ms ping across the affected node and the other hosts'
RIBs sampled every 0.1 s: a daemon killed with SIGKILL comes back by its supervisor, graceful restart keeps
every route and the data plane through a gobgpd restart (host or controller), peers added by `apply`
survive a controller restart, a flapped link heals by itself, and `kill` of a host leaves none of its
processes (supervisors included)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl import daemons, observe
from labctl.faults import KernelSampler, flap_measured, restart_measured
from labctl.lab import Lab
from labctl.topology import load_topology

from .labkit import lab_processes, make_topology, write_topology

LAB = "itfault"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A fresh lab of three hosts, one VM each (every test gets its own: test labs are removed after each
    test); `four.yaml` beside its topology adds a fourth host."""
    doc = make_topology(LAB, hosts=4, vms_per_host=1)
    write_topology(tmp_path / "four.yaml", doc)
    doc["hosts"] = doc["hosts"][:3]
    yield Lab.up(load_topology(write_topology(tmp_path / "three.yaml", doc)), str(tmp_path / "three.yaml"))


def four_hosts(lab: Lab) -> Path:
    return Path(lab.state.source).with_name("four.yaml")


def restarts(lab: Lab, node: str, role: str) -> int:
    info = daemons.supervisor_info(lab.plan.files(node).supervisor_status(role))
    return int(info.get("restarts") or 0)  # type: ignore[call-overload]


def test_agent_kill_is_restarted_and_loses_nothing(lab: Lab) -> None:
    host = f"{LAB}-1"
    result = restart_measured(lab, host, "agent", signal.SIGKILL)
    assert restarts(lab, host, "agent") == 1, result.line()
    assert result.recovered <= 2.0, f"agent restart to converged {result.recovered:.2f}s > 2 s: {result.line()}"
    assert result.outage.lost_ms == 0, f"already-programmed pair lost traffic: {result.line()}"
    # its VMs' MAC/IP routes that gobgpd kept are taken back at start-up, not withdrawn until the next ARP
    assert result.rib_samples >= 5, f"too few RIB samples to see a withdrawal: {result.line()}"
    assert not any(result.withdrawn.values()), f"an agent restart withdrew routes elsewhere: {result.line()}"


def test_host_gobgpd_kill_keeps_routes_everywhere(lab: Lab) -> None:
    host = f"{LAB}-2"
    result = restart_measured(lab, host, "gobgpd", signal.SIGKILL)
    assert restarts(lab, host, "gobgpd") == 1, result.line()
    assert result.rib_samples >= 5, f"too few RIB samples to see a withdrawal: {result.line()}"
    assert not any(result.withdrawn.values()), f"graceful restart should keep every route: {result.line()}"
    assert result.outage.lost_ms == 0, f"data plane lost traffic through a gobgpd restart: {result.line()}"


def test_controller_kill_keeps_applied_peers_traffic_and_every_kernel_entry(lab: Lab) -> None:
    new = lab.apply(load_topology(four_hosts(lab)))
    assert [h.name for h in new] == [f"{LAB}-4"]
    kernel = KernelSampler(lab, lab.hosts_alive())
    try:
        result = restart_measured(lab, "controller", "gobgpd", signal.SIGKILL)
    finally:
        churn = kernel.stop()
    assert restarts(lab, lab.plan.controller_ns, "gobgpd") == 1, result.line()
    sessions = observe.sessions(lab)
    assert sessions.get(str(new[0].vtep)) == "ESTABLISHED", f"the peer added by apply is gone after the restart: {sessions}"
    # gobgpd 3.36's selection deferral counts only the peers already back: the restarted controller sends
    # the first of them its table and End-of-RIB at once, so that host's gobgpd drops the others' stale routes
    # until they are back too (under a second: `result.withdrawn` counts them in the gobgpd RIBs). The agents
    # hold those stale withdrawals for stale_withdraw_grace (agent/withdrawhold.py): no kernel entry moves.
    assert churn.samples >= 50, f"the kernel was read {churn.samples} times during the fault"
    assert not any(churn.missing.values()) and not any(churn.removed_by_agent.values()), f"{churn.line()}; {result.line()}"
    assert result.outage.lost_ms == 0, f"cross-host traffic lost while the controller restarted: {result.line()}; {churn.line()}"


def test_link_flap_heals_within_hold_time(lab: Lab) -> None:
    hold = lab.topo.timers.hold_time
    result = flap_measured(lab, f"{LAB}-3", down_for=hold + 1.0)  # long enough for BGP to notice
    back = result.outage.back_after
    assert back is not None and back <= hold + 2, f"traffic back {back}s after the link returned (hold {hold}s): {result.line()}"
    assert not any(result.withdrawn.values()), f"graceful restart should cover a flap: {result.line()}"


def test_kill_of_a_host_ends_its_supervisors_too(lab: Lab) -> None:
    host = f"{LAB}-3"
    assert [p for p in lab_processes(LAB) if f"/{LAB}/{host}/" in p], "nothing runs for the host before the kill"
    lab.kill(host)
    left = [p for p in lab_processes(LAB) if f"/{LAB}/{host}/" in p]
    assert left == [], f"processes of killed {host} still running: {left}"
