"""The host agent against real gobgpd and the real kernel, in a small lab of two or three hypervisors."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent.entries import ZERO_MAC, FdbEntry
from agent.ledger import Ledger
from labctl import daemons
from labctl.lab import Lab
from labctl.nodes.gobgp_agent import GobgpAgentNode
from labctl.observe import read_fdb, read_neighbours, read_rib, wait_until

from .labkit import labctl, make_topology, run_in, write_topology

LAB = "itagent"
H1, H2, H3 = f"{LAB}-1", f"{LAB}-2", f"{LAB}-3"


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    topo = write_topology(tmp_path / "lab.yaml", make_topology(LAB, hosts=3, vms_per_host=1))
    result = labctl("up", str(topo))
    assert result.returncode == 0, result.stdout + result.stderr
    # make every VM speak once so Type-2 routes exist
    assert labctl("verify", "--lab", LAB, "--only", "cross-host").returncode == 0
    return Lab.open(LAB)


def _node(lab: Lab, name: str) -> GobgpAgentNode:
    node = lab.node(name)
    assert isinstance(node, GobgpAgentNode)
    return node


def _status(lab: Lab, name: str) -> dict:
    return _node(lab, name).agent_status()


def _restart_agent(lab: Lab, name: str) -> None:
    pid = lab.state.pids[name]["agent"]
    assert daemons.stop(pid, lab.plan.files(name).marker)
    _node(lab, name).start_agent()
    wait_until(f"agent on {name} ready, its kernel verified",
               lambda: bool(_status(lab, name).get("ready") and _status(lab, name).get("kernel_verified")), 15)


def _owned_fdb(lab: Lab, name: str) -> list[list[str]]:
    """The FDB entries the agent's ownership ledger holds (read by the agent's own reader: the packed
    snapshot with its journal replayed over it)."""
    owned = Ledger(lab.plan.files(name).agent_state).load()
    return [[e.device, e.mac, str(e.vtep)] for e in owned if isinstance(e, FdbEntry)]


def _flood(lab: Lab, name: str) -> set[str]:
    return {str(e.vtep) for e in read_fdb(lab, lab.topo.host(name)) if e.is_flood}  # type: ignore[arg-type]


def test_agent_restart_causes_no_churn(lab: Lab) -> None:
    host = lab.topo.host(H1)
    before = read_fdb(lab, host)  # type: ignore[arg-type]
    assert {str(e.vtep) for e in before if e.is_flood} == {"10.0.0.102", "10.0.0.103"}
    assert any(not e.is_flood for e in before), "Type-2 entries expected before the restart"
    monitor = subprocess.Popen(["ip", "netns", "exec", H1, "bridge", "monitor", "fdb"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        _restart_agent(lab, H1)
        time.sleep(1.5)  # let a would-be stale removal happen
    finally:
        monitor.send_signal(signal.SIGTERM)
        seen, _ = monitor.communicate(timeout=5)
    churn = [line for line in seen.splitlines() if "dev vxlan100" in line and "dst" in line]
    assert churn == [], f"netlink saw FDB changes during an agent restart: {churn}"
    status = _status(lab, H1)
    assert status["entries_added"] == 0 and status["entries_removed"] == 0
    assert read_fdb(lab, host) == before  # type: ignore[arg-type]


def test_gobgpd_restart_keeps_data_plane_and_resyncs(lab: Lab) -> None:
    host = lab.topo.host(H1)
    assert host is not None
    before = read_fdb(lab, host)
    pid = lab.state.pids[H1]["gobgpd"]
    daemons.stop(pid, lab.plan.files(H1).marker, hard=True)
    wait_until("agent notices gobgpd is gone", lambda: _status(lab, H1).get("connected") is False, 10)
    time.sleep(1.0)
    assert read_fdb(lab, host) == before, "the data plane must stay as it is while gobgpd is away"
    # (the other hypervisors do withdraw H1's routes: its BGP session is gone and there is no graceful restart)

    _node(lab, H1).start_gobgpd()
    wait_until("agent reconnected", lambda: _status(lab, H1).get("connected") is True, 20)
    lab.wait_converged([host])
    # the others learned H1's VTEP again (the agent re-advertised into the new gobgpd)
    for other in (H2, H3):
        assert "10.0.0.101" in _flood(lab, other)
    wait_until("stale check done", lambda: "stale-removed" in lab.plan.files(H1).agent_log.read_text(), 40)
    assert read_fdb(lab, host) == before
    assert _status(lab, H1)["reconnects"] >= 1


def test_vtep_added_by_hand_the_seed_way_appears_and_disappears(lab: Lab) -> None:
    route = ["multicast", "10.0.0.77", "etag", "0", "rd", "10.0.0.77:100", "rt", "65000:100", "encap", "vxlan"]
    run_in(H1, "gobgp", "global", "rib", "-a", "evpn", "add", *route)
    for name in (H1, H2, H3):
        wait_until(f"{name} floods to 10.0.0.77", lambda n=name: "10.0.0.77" in _flood(lab, n), 10)
    run_in(H1, "gobgp", "global", "rib", "-a", "evpn", "del", *route)
    for name in (H1, H2, H3):
        wait_until(f"{name} forgets 10.0.0.77", lambda n=name: "10.0.0.77" not in _flood(lab, n), 10)


def test_entries_made_by_someone_else_are_left_alone(lab: Lab) -> None:
    run_in(H2, "bridge", "fdb", "append", ZERO_MAC, "dev", "vxlan100", "dst", "10.0.0.250")
    _restart_agent(lab, H2)
    # the restart's kernel read (at its start or right after it) left the foreign entry alone, unclaimed
    owned = _owned_fdb(lab, H2)
    assert ["vxlan100", ZERO_MAC, "10.0.0.101"] in owned, owned  # (the ledger was read: it names its own)
    assert ["vxlan100", ZERO_MAC, "10.0.0.250"] not in owned
    assert "10.0.0.250" in _flood(lab, H2)


def test_hostile_routes_are_ignored_not_fatal(lab: Lab) -> None:
    bad = [
        ["macadv", "01:00:5e:00:00:01", "0.0.0.0", "etag", "0", "label", "100", "rd", "10.0.0.88:100", "rt", "65000:100", "encap", "vxlan"],
        ["multicast", "10.0.0.89", "etag", "0", "rd", "10.0.0.89:100", "rt", "65999:100", "encap", "vxlan", "pmsi", "ingress-repl", "100", "10.0.0.89"],
        ["multicast", "224.0.0.5", "etag", "0", "rd", "10.0.0.90:100", "rt", "65000:100", "encap", "vxlan"],
    ]
    for route in bad:
        run_in(H1, "gobgp", "global", "rib", "-a", "evpn", "add", *route)
    wait_until("H2 counted the ignored routes", lambda: sum(_status(lab, H2).get("ignored_routes", {}).values()) >= 3, 10)
    ignored = _status(lab, H2)["ignored_routes"]
    assert any("non-unicast MAC" in reason for reason in ignored), ignored
    assert any("not imported" in reason for reason in ignored), ignored
    fdb = read_fdb(lab, lab.topo.host(H2))  # type: ignore[arg-type]
    assert not {str(e.vtep) for e in fdb} & {"10.0.0.88", "10.0.0.89", "224.0.0.5"}
    assert FdbEntry("vxlan100", "01:00:5e:00:00:01", __import__("ipaddress").ip_address("10.0.0.88")) not in fdb
    assert _status(lab, H2)["ready"] is True
    assert any(e.route.vtep.exploded == "10.0.0.89" for e in read_rib(lab, H2) if hasattr(e.route, "originator"))


def test_neighbour_entries_flushed_by_the_kernel_come_back(lab: Lab) -> None:
    """A bridge's neighbour table can be flushed under the agent (e.g. the bridge's MAC changed):
    it notices the deletions and puts its ARP suppression entries back at once, not at the next resync."""
    host = lab.topo.host(H1)
    assert host is not None
    assert labctl("verify", "--lab", LAB, "--only", "arp").returncode == 0
    before = read_neighbours(lab, host, "br0")
    assert before, "ARP suppression entries expected"
    run_in(H1, "ip", "neigh", "flush", "dev", "br0")
    wait_until("suppression entries back", lambda: read_neighbours(lab, host, "br0") == before, 5, 0.05)
    assert "event=kernel-dropped-entry" in lab.plan.files(H1).agent_log.read_text()
