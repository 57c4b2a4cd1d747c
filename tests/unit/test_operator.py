"""Operator experience, the pure parts: the graph model and its dot/Mermaid renderings, the event timeline
(parsing every log format, merging, selecting, following files), labctl's action lines, the JSON documents
and the JUnit XML, progress off a terminal, and every command's --help with an example."""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from labctl.actionlog import action_line
from labctl.cli import main
from labctl.events import (
    Event,
    key_values,
    merge,
    parse_action_line,
    parse_log_line,
    render_line,
    select,
)
from labctl.graph import (
    NETWORK_COLOURS,
    SESSION_COLOURS,
    build_graph,
    to_dot,
    to_mermaid,
)
from labctl.progress import Steps
from labctl.report import (
    SCHEMA,
    check_document,
    junit_xml,
    status_document,
    verify_document,
)
from labctl.status import ControllerStatus, HostStatus, MacRow, Restarts, StatusView
from labctl.timeline import Timeline
from labctl.topology import Controller, parse_topology
from labctl.verify import CheckResult
from tests.unit.labctl_builders import topology, two_networks

# -- graph ------------------------------------------------------------------------------------------------


def test_planned_graph_names_every_node_and_draws_sessions_as_planned() -> None:
    topo = topology("g", hosts=3, vms_per_host=3)
    dot = to_dot(build_graph(topo))
    for host in topo.hosts:
        assert f'"{host.name}" [label="{host.name}\\nVTEP {host.vtep}  AS {host.asn}' in dot
        assert f'"cluster_{host.name.replace("-", "_")}"' in dot
    for _, vm in topo.vms():
        assert f'"vm:{vm.name}"' in dot and vm.mac in dot
    assert "planned (from the topology file)" in dot
    assert dot.count("eBGP planned") == 3 and SESSION_COLOURS["planned"] in dot
    assert "DOWN" not in dot


def test_running_graph_colours_sessions_by_state_and_marks_a_killed_host_down() -> None:
    topo = topology("g", hosts=3, vms_per_host=1)
    graph = build_graph(topo, ["g-2"], {"controller": {"10.0.0.101": "ESTABLISHED", "10.0.0.103": "ACTIVE"}})
    states = {h.name: (h.session, h.down) for h in graph.hosts}
    assert states == {"g-1": ("ESTABLISHED", False), "g-2": ("down", True), "g-3": ("ACTIVE", False)}
    dot = to_dot(graph)
    killed = next(line for line in dot.splitlines() if line.strip().startswith('"g-2" ['))
    assert "DOWN (killed)" in killed and 'class="down"' in killed
    up = next(line for line in dot.splitlines() if line.strip().startswith('"g-1" ['))
    assert 'class="up"' in up and "BGP ESTABLISHED" in up
    assert "down: g-2" in dot
    assert f'color="{SESSION_COLOURS["ESTABLISHED"]}"' in dot and f'color="{SESSION_COLOURS["down"]}"' in dot


def test_vms_are_coloured_by_network() -> None:
    graph = build_graph(parse_topology(two_networks("g")))
    colours = {n.name: n.colour for n in graph.networks}
    assert colours == {"blue": NETWORK_COLOURS[0], "red": NETWORK_COLOURS[1]}
    dot = to_dot(graph)
    red_vm = next(line for line in dot.splitlines() if line.strip().startswith('"vm:red1" ['))
    assert f'fillcolor="{NETWORK_COLOURS[1]}"' in red_vm
    assert '"net:red"' in dot and "VNI 200" in dot


def test_dot_quotes_what_it_is_given() -> None:
    dot = to_dot(build_graph(topology("g", hosts=1, vms_per_host=1)))
    assert dot.startswith('graph "lab g" {') and dot.rstrip().endswith("}")
    assert dot.count("{") == dot.count("}")


def test_mermaid_has_a_subgraph_per_host_and_a_style_per_link() -> None:
    topo = topology("g", hosts=2, vms_per_host=2)
    text = to_mermaid(build_graph(topo, ["g-2"], {"controller": {"10.0.0.101": "ESTABLISHED"}}))
    assert text.startswith("---\ntitle: lab g: running; down: g-2\n---\nflowchart TB\n")
    assert 'subgraph c_g_1["g-1"]' in text and 'subgraph c_g_2["g-2 DOWN"]' in text
    links = [line for line in text.splitlines() if " --- " in line or " ---|" in line or " ===|" in line]
    styles = [line for line in text.splitlines() if line.strip().startswith("linkStyle ")]
    assert len(links) == len(styles) == 1 + 2 * 2 + 2 * 2  # router-controller, per host: uplink + BGP, per VM: port
    assert "  class h_g_2 down" in text.splitlines()


def test_two_controllers_each_drawn_with_its_own_sessions_and_a_killed_one_down() -> None:
    topo = topology("g", hosts=2, vms_per_host=1)
    second = Controller(asn=topo.controller.asn, address=ipaddress.IPv4Address("10.0.0.99"), name="ctl2", kind="frr")
    topo = dataclasses.replace(topo, controllers=(topo.controller, second))
    graph = build_graph(topo, (), {"controller": {"10.0.0.101": "ESTABLISHED", "10.0.0.102": "ESTABLISHED"}}, ["ctl2"])
    assert [(c.name, c.kind, c.down) for c in graph.controllers] == [("controller", "gobgpd", False), ("ctl2", "frr", True)]
    assert [h.sessions for h in graph.hosts] == [("ESTABLISHED", "down"), ("ESTABLISHED", "down")]
    dot = to_dot(graph)
    assert dot.count("eBGP ESTABLISHED") == 2 and dot.count("eBGP down") == 2
    hub = next(line for line in dot.splitlines() if line.strip().startswith('"ctl:ctl2" ['))
    assert "DOWN (killed)" in hub and "frr" in hub and "down: ctl2" in dot
    assert "BGP controller ESTABLISHED, ctl2 down" in dot
    text = to_mermaid(graph)
    assert text.count("ctl_ctl2 ===|") == 2 and "  class ctl_ctl2 down" in text.splitlines()


# -- events -------------------------------------------------------------------------------------------------

AGENT = "2026-11-26 09:24:57,723 level=INFO logger=evpn.agent.desired event=route-seen type=macip rd=10.0.0.103:100 mac=02:00:00:00:03:09 ip=- vtep=10.0.0.103 seq=0 device=vxlan100"
MOVED = "2026-11-26 09:24:58,100 level=INFO logger=evpn.agent.mactable event=mac-moved vni=100 mac=02:00:00:00:01:01 how='moved to 10.0.0.102' moves_in_window=1"
SUPERVISOR = "2026-11-26T09:24:55 logger=evpn.labctl.supervise event=child-started role=gobgpd pid=15276 restarts=0"
PEER_UP = 'time="2026-11-26T09:24:57Z" level=info msg="Peer Up" Key=10.0.0.101 State=BGP_FSM_OPENCONFIRM Topic=Peer'
PEER_DOWN = 'time="2026-11-26T09:25:30Z" level=info msg="Peer Down" Key=10.0.0.102 Reason=hold-timer-expired State=BGP_FSM_ESTABLISHED Topic=Peer'


def local(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_agent_lines_become_events_with_their_fields() -> None:
    e = parse_log_line(AGENT, "h-1")
    assert e == Event(local("2026-11-26T09:24:57.723"), "h-1", "agent", "route-seen",
                      {"type": "macip", "rd": "10.0.0.103:100", "mac": "02:00:00:00:03:09", "ip": "-", "vtep": "10.0.0.103",
                       "seq": "0", "device": "vxlan100"})
    moved = parse_log_line(MOVED, "h-1")
    assert moved is not None and moved.event == "mac-moved" and moved.fields["how"] == "moved to 10.0.0.102"


def test_supervisor_and_gobgpd_lines() -> None:
    sup = parse_log_line(SUPERVISOR, "h-1")
    assert sup is not None and (sup.source, sup.event, sup.fields["role"]) == ("supervisor", "child-started", "gobgpd")
    up = parse_log_line(PEER_UP, "lab-controller")
    assert up is not None and (up.source, up.event, up.fields["peer"]) == ("gobgpd", "session-up", "10.0.0.101")
    assert up.time == datetime(2026, 11, 26, 9, 24, 57, tzinfo=UTC).timestamp()
    down = parse_log_line(PEER_DOWN, "lab-controller")
    assert down is not None and down.event == "session-down" and down.fields["Reason"] == "hold-timer-expired"


@pytest.mark.parametrize("line", [
    "", "garbage", 'time="2026-11-26T09:24:55Z" level=info msg="Add Peer" Key=10.0.0.101 Topic=config',
    "2026-11-26 09:24:56,409 level=INFO logger=evpn.agent no event here", "2026-13-45 99:99:99,000 level=INFO logger=x event=a",
    'time="not a time" level=info msg="Peer Up" Key=1',
])
def test_lines_that_are_no_events(line: str) -> None:
    assert parse_log_line(line, "n") is None


def test_gobgpd_errors_are_kept() -> None:
    e = parse_log_line('time="2026-11-26T09:24:55Z" level=error msg="failed to connect" Key=10.0.0.1', "n")
    assert e is not None and e.event == "gobgpd-error" and e.fields["msg"] == "failed to connect"


def test_key_values_with_quotes_and_prose() -> None:
    assert key_values("a=1 b='x y' c=\"q r\" (a comment) d=(1, 2)") == {"a": "1", "b": "x y", "c": "q r", "d": "(1, 2)"}


def test_action_lines_round_trip() -> None:
    now = datetime(2026, 11, 26, 9, 30, 0, 123456, tzinfo=UTC)
    line = action_line("move", {"vm": "vm1", "mac": "02:00:00:00:01:01", "hosts": 3}, now)
    assert line.endswith("\n") and list(json.loads(line)) == ["time", "action", "vm", "mac", "hosts"]
    e = parse_action_line(line)
    assert e == Event(now.timestamp(), "labctl", "labctl", "move", {"vm": "vm1", "mac": "02:00:00:00:01:01", "hosts": "3"})
    assert parse_action_line('{"time": "2026-11-26T09:30:00+00:00", "act') is None
    assert parse_action_line('["not", "an", "object"]') is None


def test_merge_orders_by_time_and_keeps_file_order_on_ties() -> None:
    a = [Event(2.0, "n", "agent", "a1"), Event(2.0, "n", "agent", "a2"), Event(5.0, "n", "agent", "a3")]
    b = [Event(1.0, "labctl", "labctl", "move"), Event(3.0, "labctl", "labctl", "kill")]
    assert [e.event for e in merge(a, b)] == ["move", "a1", "a2", "kill", "a3"]


def test_select_by_node_event_and_mac() -> None:
    events = [parse_log_line(AGENT, "lab-1"), parse_log_line(MOVED, "lab-2"), parse_log_line(PEER_UP, "lab-controller"),
              Event(0.0, "labctl", "labctl", "move", {"mac": "02:00:00:00:01:01"})]
    assert [e.event for e in select(events, nodes=("2",))] == ["mac-moved"]  # a node's suffix works too
    assert [e.event for e in select(events, nodes=("labctl",))] == ["move"]
    assert [e.event for e in select(events, names=("mac-", "session-"))] == ["mac-moved", "session-up"]
    assert [e.event for e in select(events, mac="02:00:00:00:01:01")] == ["mac-moved", "move"]


def test_render_line_and_document() -> None:
    e = parse_log_line(MOVED, "lab-1")
    assert e is not None
    line = render_line(e)
    assert line.startswith(datetime.fromtimestamp(e.time).strftime("%H:%M:%S.100 lab-1"))
    assert "mac-moved" in line and "mac=02:00:00:00:01:01" in line
    doc = e.document()
    assert doc["schema"] == SCHEMA and doc["event"] == "mac-moved" and doc["time"].endswith("+00:00")
    assert json.loads(json.dumps(doc)) == doc


def test_timeline_reads_what_was_appended_and_finds_new_files(tmp_path: Path) -> None:
    run = tmp_path / "lab"
    (run / "lab-1").mkdir(parents=True)
    actions = run / "actions.jsonl"
    actions.write_text(action_line("up", {"hosts": 1}, datetime(2026, 11, 25, tzinfo=UTC)))  # a day before the logs' lines
    agent_log = run / "lab-1" / "agent.log"
    agent_log.write_text(AGENT + "\n" + MOVED[:40])  # the second line is still being written
    timeline = Timeline(run, actions)
    assert [e.event for e in timeline.read_new()] == ["up", "route-seen"]
    with agent_log.open("a") as f:
        f.write(MOVED[40:] + "\n")
    (run / "lab-controller").mkdir()
    (run / "lab-controller" / "gobgpd.log").write_text(PEER_UP + "\n")
    assert [e.event for e in timeline.read_new()] == ["session-up", "mac-moved"]  # only what is new, in time order
    assert timeline.read_new() == []


# -- JSON documents and JUnit ---------------------------------------------------------------------------------

RESULTS = [CheckResult("rib-own", "each local RIB holds its own VTEP", True, "3 own Type-3 routes present", 0.5),
           CheckResult("fdb-flood", "vxlan flood lists = other live VTEPs = RIB", False, "h-1 vxlan100: flood list [] != ['10.0.0.102']", 0.25)]


def test_verify_document() -> None:
    doc = verify_document("lab", RESULTS, 1795685099.0, 1.5)
    assert doc["schema"] == SCHEMA and doc["ok"] is False and (doc["passed"], doc["failed"]) == (1, 1)
    assert doc["checks"][0] == {"id": "rib-own", "name": "each local RIB holds its own VTEP", "result": "pass",
                                "evidence": "3 own Type-3 routes present", "seconds": 0.5}
    assert doc["checks"][1]["result"] == "fail"
    assert json.loads(json.dumps(doc)) == doc


def test_junit_has_a_test_case_per_check_and_failures_with_evidence() -> None:
    root = ET.fromstring(junit_xml("lab", RESULTS, 1795685099.0, 1.5))
    assert root.tag == "testsuites" and root.get("tests") == "2" and root.get("failures") == "1"
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == ["rib-own", "fdb-flood"]
    assert cases[0].find("failure") is None and cases[0].get("time") == "0.500"
    failure = cases[1].find("failure")
    assert failure is not None and "10.0.0.102" in (failure.text or "") and "flood lists" in failure.get("message", "")


def test_check_document() -> None:
    topo = topology("c", hosts=2, vms_per_host=1)
    doc = check_document("c.yaml", topo)
    assert doc["ok"] is True and doc["hypervisors"] == 2 and doc["vms"] == 2 and doc["hosts"][0]["vtep"] == "10.0.0.101"
    bad = check_document("c.yaml", None, "c.yaml: hosts[0].asn: missing")
    assert bad == {"schema": SCHEMA, "topology": "c.yaml", "ok": False, "error": "c.yaml: hosts[0].asn: missing"}


def test_status_document() -> None:
    up = HostStatus("h-1", 65001, "10.0.0.101", "gobgp", False, {"controller": "ESTABLISHED"}, "ready", (Restarts("agent", 1, "signal 9", True),),
                    {"100": ["10.0.0.102"]}, (("vxlan100", "10.0.0.102"),), (MacRow("02:00:00:00:01:01", ("192.168.100.11",), 100, "local", "10.0.0.101", 0),))
    down = HostStatus("h-2", 65002, "10.0.0.102", "gobgp", True, {"controller": "ACTIVE"}, "down", (), {}, (), None)
    ctl = ControllerStatus("controller", "lab-controller", "gobgpd", "10.0.0.100", 65000, False, None, ())
    doc = status_document(StatusView("lab", (ctl,), (up, down)))
    assert doc["schema"] == SCHEMA and doc["controllers"][0]["reachable"] is True and doc["controllers"][0]["kind"] == "gobgpd"
    assert doc["hosts"][0]["bgp"] == {"controller": "ESTABLISHED"}
    first, second = doc["hosts"]
    assert first["restarts"] == [{"role": "agent", "count": 1, "last_exit": "signal 9", "running": True}]
    assert first["flood"] == [{"device": "vxlan100", "vtep": "10.0.0.102"}]
    assert first["macs"] == [{"mac": "02:00:00:00:01:01", "ips": ["192.168.100.11"], "vni": 100, "where": "local", "vtep": "10.0.0.101", "seq": 0}]
    assert second["down"] is True and second["macs"] is None
    assert json.loads(json.dumps(doc)) == doc


# -- progress and the CLI's help ----------------------------------------------------------------------------


def test_progress_off_a_terminal_is_one_line_per_step_or_nothing() -> None:
    out = io.StringIO()
    with Steps(Console(file=out, force_terminal=False, width=200), "up", total=3) as step:
        step("underlay router and controller")
        step("waiting for BGP sessions")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].endswith("underlay router and controller") and "s " in lines[0]
    quiet = io.StringIO()
    with Steps(Console(file=quiet, force_terminal=False), "verify", quiet=True) as step:
        step("check rib-own")
    assert quiet.getvalue() == ""


def test_every_command_answers_help_with_an_example() -> None:
    runner = CliRunner()
    for name in [None, *main.commands]:
        result = runner.invoke(main, [name, "--help"] if name else ["--help"])
        assert result.exit_code == 0, (name, result.output)
        assert re.search(r"Examples:\n +labctl ", result.output), name


def test_check_json(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("lab: c\ncontroller: {asn: 65000, address: 10.0.0.100}\nnetworks: [{name: blue, vni: 100, subnet: 192.168.100.0/24}]\n"
                    "hosts: [{name: c-1, asn: 65001, vtep: 10.0.0.101, vms: []}]\n")
    result = CliRunner().invoke(main, ["check", "--json", str(good)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True
    bad = tmp_path / "bad.yaml"
    bad.write_text("lab: c\n")
    result = CliRunner().invoke(main, ["check", "--json", str(bad)])
    doc = json.loads(result.output)
    assert result.exit_code == 1 and doc["ok"] is False and "bad.yaml" in doc["error"]


def test_status_tables_render_the_same_view() -> None:
    from labctl.status import render_mac_tables, render_status

    up = HostStatus("h-1", 65001, "10.0.0.101", "gobgp", False, {"controller": "ESTABLISHED", "ctl2": "ACTIVE"}, "ready", (Restarts("agent", 2, "signal 9", True),),
                    {"100": ["10.0.0.102"]}, (("vxlan100", "10.0.0.102"),), (MacRow("02:00:00:00:01:01", ("192.168.100.11",), 100, "local", "10.0.0.101", 3),))
    down = HostStatus("h-2", 65002, "10.0.0.102", "gobgp", True, {"controller": "ACTIVE", "ctl2": "down"}, "down", (), {}, (), None)
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False)
    controllers = (ControllerStatus("controller", "lab-controller", "gobgpd", "10.0.0.100", 65000, False, "connection refused",
                                    (Restarts("gobgpd", 0, None, True),)),
                   ControllerStatus("ctl2", "lab-ctl2", "frr", "10.0.0.99", 65000, True, None, ()))
    view = StatusView("lab", controllers, (up, down))
    render_status(console, view)
    render_mac_tables(console, view)
    text = out.getvalue()
    assert "controller controller unreachable: connection refused" in text
    assert "controller controller (gobgpd, AS 65000, 10.0.0.100): restarts gobgpd 0" in text
    assert "controller ctl2 (frr, AS 65000, 10.0.0.99): down (killed)" in text and "BGP at ctl2" in text
    assert "agent 2 (last: signal 9)" in text and "vxlan100→10.0.0.102" in text and "100: 10.0.0.102" in text
    assert "down (killed)" in text and "h-1: MAC table" in text and "h-2: MAC table" not in text
    assert "02:00:00:00:01:01" in text and "192.168.100.11" in text
