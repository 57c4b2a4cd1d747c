"""Operator experience on one real 3x3 lab, through the real CLI: status --json, verify --json and --junit
(each check a test case), graph of the running lab (SVG, PNG, dot, Mermaid), events of a `labctl move`
in time order (followed with -f as they happen), and a killed host drawn as down.

The lab is brought up once for the module (the tests run in file order on it) and removed afterwards,
pass or fail; this module replaces conftest's per-test cleanup with that module-wide one."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.lab import teardown
from labctl.plan import RUN_ROOT

from .labkit import LABCTL, lab_namespaces, labctl, make_topology, write_topology

LAB = "itops"
HOSTS = [f"{LAB}-{i}" for i in (1, 2, 3)]
MOVED_VM, MOVED_MAC, SOURCE, TARGET, BYSTANDER = "vm11", "02:00:00:00:01:01", HOSTS[0], HOSTS[1], HOSTS[2]


def _remove() -> None:
    if (RUN_ROOT / LAB).exists() or lab_namespaces(LAB):
        teardown(LAB)


@pytest.fixture(autouse=True)
def _clean_labs(lab_environment: None) -> None:
    """Overrides conftest's per-test removal of test labs: here one lab serves the whole module."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _remove()
    topo = write_topology(tmp_path_factory.mktemp("ops") / "lab.yaml", make_topology(LAB, hosts=3, vms_per_host=3))
    try:
        up = labctl("up", str(topo))
        assert up.returncode == 0, up.stdout + up.stderr
        assert "waiting for BGP sessions and agents" in up.stderr, "up's progress goes to stderr"
        yield LAB
    finally:
        _remove()
    assert lab_namespaces(LAB) == []


def _json(*args: str) -> object:
    result = labctl(*args, "--lab", LAB)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)  # stdout holds the document and nothing else


def test_status_json(lab: str) -> None:
    doc = _json("status", "--json")
    assert isinstance(doc, dict) and doc["schema"] == 1 and doc["lab"] == LAB and [c["reachable"] for c in doc["controllers"]] == [True]
    assert [h["name"] for h in doc["hosts"]] == HOSTS
    for h in doc["hosts"]:
        assert (h["bgp"], h["control"], h["down"]) == ({"controller": "ESTABLISHED"}, "ready", False), h
        assert {f["vtep"] for f in h["flood"]} == {f"10.0.0.{101 + i}" for i in range(3)} - {h["vtep"]}
        local = {m["mac"] for m in h["macs"] if m["where"] == "local"}
        remote = {m["mac"] for m in h["macs"] if m["where"] == "remote"}
        assert len(local) == 3 and len(remote) == 6 and not local & remote
        assert {r["role"] for r in h["restarts"]} == {"gobgpd", "agent"}


def test_verify_json_and_junit(lab: str, tmp_path: Path) -> None:
    junit = tmp_path / "verify.xml"
    result = labctl("verify", "--lab", LAB, "--json", "--junit", str(junit), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["schema"] == 1 and doc["ok"] is True and doc["failed"] == 0 and doc["seconds"] > 0
    checks = doc["checks"]
    ids = [c["id"] for c in checks]
    assert len(ids) == len(set(ids)) == doc["passed"]
    assert {"rib-own", "rib-learned", "fdb-flood", "same-host", "cross-host", "fdb-macs", "arp-suppression"} <= set(ids)
    for c in checks:
        assert set(c) == {"id", "name", "result", "evidence", "seconds"} and c["result"] == "pass" and c["evidence"], c
    cross = next(c for c in checks if c["id"] == "cross-host")
    assert "replies" in cross["evidence"] and "10.0.0.101" in cross["evidence"]

    suite = ET.parse(junit).getroot()
    cases = suite.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == ids
    assert suite.get("tests") == str(len(ids)) and suite.get("failures") == "0"
    assert all(c.find("failure") is None and float(c.get("time", "-1")) >= 0 for c in cases)

    actions = [json.loads(line) for line in (RUN_ROOT / LAB / "actions.jsonl").read_text().splitlines()]
    assert [a["action"] for a in actions][-2:] == ["verify", "verify-done"]
    assert actions[-1]["passed"] == str(len(ids)) and actions[-1]["failed"] == "0"


def test_graph_of_the_running_lab(lab: str, tmp_path: Path) -> None:
    for name in ("lab.svg", "lab.png", "lab.dot", "lab.mmd"):
        result = labctl("graph", "--lab", LAB, "-o", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        assert (tmp_path / name).stat().st_size > 500, name
    svg = (tmp_path / "lab.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "</svg>" in svg
    assert (tmp_path / "lab.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dot = (tmp_path / "lab.dot").read_text()
    for i, host in enumerate(HOSTS, start=1):
        assert f"{host}\\nVTEP 10.0.0.{100 + i}  AS {65000 + i}" in dot
        assert host.replace("-", "&#45;") in svg  # Graphviz writes '-' in SVG text as an entity
        assert f"vm{i}1" in dot and f"vm{i}3" in svg
    assert dot.count("eBGP ESTABLISHED") == 3 and "DOWN" not in dot
    assert "flowchart TB" in (tmp_path / "lab.mmd").read_text()


def _ndjson(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_events_show_a_move_in_order(lab: str) -> None:
    follower = subprocess.Popen([LABCTL, "events", "-f", "--json", "--lab", LAB, "--mac", MOVED_MAC],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # the follower has read what is there and polls from now on
        moved = labctl("move", MOVED_VM, TARGET, "--lab", LAB)
        assert moved.returncode == 0, moved.stdout + moved.stderr
        time.sleep(2.0)  # two polls
    finally:
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=20)
    assert follower.returncode == 0, err

    timeline = _ndjson(labctl("events", "--json", "--lab", LAB, "--mac", MOVED_MAC).stdout)
    assert [e["ts"] for e in timeline] == sorted(e["ts"] for e in timeline)
    move = next(e for e in timeline if e["source"] == "labctl" and e["event"] == "move")
    assert move["fields"] == {"vm": MOVED_VM, "mac": MOVED_MAC, "ip": "192.168.100.11", "source": SOURCE, "target": TARGET}
    after = [e for e in timeline if e["ts"] >= move["ts"]]

    def first(node: str, event: str, **fields: str) -> dict[str, object]:
        found = [e for e in after if e["node"] == node and e["event"] == event and all(e["fields"].get(k) == v for k, v in fields.items())]  # type: ignore[union-attr]
        assert found, f"no {event} {fields} on {node} after the move: " + "\n".join(json.dumps(e) for e in after)
        return found[0]

    gone = first(SOURCE, "local-mac-gone", mac=MOVED_MAC)  # the source agent sees the VM leave
    learned = first(TARGET, "local-mac-learned", mac=MOVED_MAC)  # the target agent learns it
    seen = first(BYSTANDER, "route-seen", type="macip", mac=MOVED_MAC, vtep="10.0.0.102")  # the third host hears of it
    programmed = first(BYSTANDER, "entry-added", kind="mac", mac=MOVED_MAC, vtep="10.0.0.102")
    assert move["ts"] <= gone["ts"] and move["ts"] <= learned["ts"] <= seen["ts"] <= programmed["ts"]  # type: ignore[operator]

    followed = _ndjson(out)  # what -f printed as it happened: the move and the agents' events of it
    assert any(e["event"] == "move" for e in followed), out + err
    assert {("local-mac-learned", TARGET), ("entry-added", BYSTANDER)} <= {(e["event"], e["node"]) for e in followed}, out

    text = labctl("events", "--lab", LAB, "--node", BYSTANDER, "--event", "entry-", "-n", "5")
    assert text.returncode == 0 and f"{BYSTANDER}" in text.stdout and "entry-" in text.stdout, text.stdout + text.stderr


def test_a_killed_host_is_drawn_down(lab: str, tmp_path: Path) -> None:
    killed = labctl("kill", BYSTANDER, "--no-wait", "--lab", LAB)
    assert killed.returncode == 0, killed.stdout + killed.stderr
    dot = labctl("graph", "--lab", LAB, "--format", "dot")
    assert dot.returncode == 0, dot.stderr
    node = next(line for line in dot.stdout.splitlines() if line.strip().startswith(f'"{BYSTANDER}" ['))
    assert "DOWN (killed)" in node and 'class="down"' in node, node
    assert f"down: {BYSTANDER}" in dot.stdout and dot.stdout.count("eBGP ESTABLISHED") == 2
    svg = labctl("graph", "--lab", LAB, "-o", str(tmp_path / "killed.svg"))
    assert svg.returncode == 0 and (tmp_path / "killed.svg").stat().st_size > 500, svg.stderr
    status = _json("status", "--json", "--no-macs")
    assert [h["down"] for h in status["hosts"]] == [False, False, True]  # type: ignore[index]

    deadline = time.monotonic() + 15  # the controller's hold timer (3 s) notices it
    events: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        events = _ndjson(labctl("events", "--json", "--lab", LAB, "--event", "kill", "--event", "session-down").stdout)
        if any(e["event"] == "session-down" and e["fields"].get("peer") == "10.0.0.103" for e in events):  # type: ignore[union-attr]
            break
        time.sleep(1)
    kill = next(e for e in events if e["event"] == "kill")
    down = [e for e in events if e["event"] == "session-down" and e["node"] == f"{LAB}-controller" and e["fields"].get("peer") == "10.0.0.103"]  # type: ignore[union-attr]
    assert down and kill["fields"] == {"host": BYSTANDER, "vtep": "10.0.0.103"}, events
    assert int(down[0]["ts"]) >= int(kill["ts"])  # type: ignore[call-overload]  # gobgpd logs whole seconds
