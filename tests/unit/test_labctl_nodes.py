"""Node kinds: loaded by name, one protocol, no kind-specific branches elsewhere."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from labctl import plan as plan_module
from labctl.errors import LabError
from labctl.nodes import KINDS, node_class
from labctl.nodes.base import HostNode, local_macs_of_rib
from labctl.nodes.frr import FrrNode
from labctl.nodes.gobgp_agent import GobgpAgentNode
from labctl.plan import LabPlan
from labctl.state import LabState
from labctl.topology import HOST_KINDS, parse_topology
from tests.unit.labctl_builders import mac_event, make_topology


def test_every_kind_of_the_topology_has_a_node_class() -> None:
    assert set(HOST_KINDS) == set(KINDS)
    for kind in KINDS:
        cls = node_class(kind)
        assert issubclass(cls, HostNode) and cls.kind == kind and not getattr(cls, "__abstractmethods__", None)


def _lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> tuple[LabPlan, LabState]:
    monkeypatch.setattr(plan_module, "RUN_ROOT", tmp_path)
    doc = make_topology("t", hosts=2, vms_per_host=1)
    doc["hosts"][0]["kind"] = kind
    topo = parse_topology(doc)
    return LabPlan(topo), LabState("t", topo.to_document(), "test")


def test_gobgp_node_reads_its_agent_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan, state = _lab(tmp_path, monkeypatch, "gobgp")
    node = GobgpAgentNode(plan.topo.hosts[0], plan, state)
    assert node.control_view().state == "not running" and node.agent_status() == {}
    plan.files("t-1").dir.mkdir(parents=True)
    # the supervisor runs an agent (this process stands in for it), which has not written its status yet
    plan.files("t-1").supervisor_status("agent").write_text(json.dumps({"child_pid": os.getpid()}))
    assert node.control_view().state == "starting"
    status = {"ready": True, "kernel_verified": True, "connected": True, "stale_pending": False, "remote_vteps": {"100": ["10.0.0.102"]},
              "local_macs": {"100/02:00:00:00:01:01": 2}, "local_ips": {"100/02:00:00:00:01:01": ["192.168.100.11"]},
              "pid": os.getpid(), "updated": time.time()}
    plan.files("t-1").agent_status.write_text(json.dumps(status))
    view = node.control_view()
    assert (view.state, view.ready, view.settled, view.remote_vteps) == ("ready", True, True, {"100": ["10.0.0.102"]})
    plan.files("t-1").agent_status.write_text(json.dumps(status | {"held_withdrawals": 2}))
    assert not node.control_view().settled  # stale withdrawals held: its kernel may still change
    plan.files("t-1").agent_status.write_text(json.dumps(status | {"kernel_verified": False}))
    view = node.control_view()  # ready from its ledger, its kernel not read yet
    assert view.ready and not view.settled and view.state == "verifying"
    plan.files("t-1").agent_status.write_text(json.dumps(status | {"connected": False}))
    assert node.control_view().state == "unreachable"
    with pytest.raises(LabError, match="does not run FRR"):
        node.vtysh("show version")
    assert node.reconfigure_refusal() is None


def test_frr_node_refuses_reconfiguration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan, state = _lab(tmp_path, monkeypatch, "frr")
    node = FrrNode(plan.topo.hosts[0], plan, state)
    assert node.reconfigure_refusal() == "runs FRR: attach/detach reconfigure our agent only"
    with pytest.raises(LabError, match="t-1 runs FRR"):
        node.reconfigure()


def test_local_macs_of_a_rib_are_its_own_type2_routes() -> None:
    rib = [mac_event("10.0.0.103", 100, "02:00:00:00:03:07", seq=1, local=True),
           mac_event("10.0.0.103", 100, "02:00:00:00:03:07", ip="192.168.100.37", seq=1, local=True),
           mac_event("10.0.0.101", 100, "02:00:00:00:01:01")]
    [mac] = local_macs_of_rib(rib)
    assert (mac.vni, mac.mac, mac.ips, mac.seq) == (100, "02:00:00:00:03:07", ("192.168.100.37",), 1)


def test_local_macs_do_not_depend_on_the_agents_detail_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above 2,000 routes the agent's status file gives `local_macs` as a count: the local MACs come from
    the node's own Type-2 routes in its RIB, whatever the status file holds."""
    plan, state = _lab(tmp_path, monkeypatch, "gobgp")
    node = GobgpAgentNode(plan.topo.hosts[0], plan, state)
    plan.files("t-1").dir.mkdir(parents=True)
    for local_macs in (2500, {"100/02:00:00:00:09:09": 7}):
        plan.files("t-1").agent_status.write_text(json.dumps({"ready": True, "connected": True, "local_macs": local_macs, "local_ips": "omitted"}))
        rib = [mac_event("10.0.0.101", 100, "02:00:00:00:01:01", seq=2, local=True),
               mac_event("10.0.0.101", 100, "02:00:00:00:01:01", ip="192.168.100.11", seq=2, local=True),
               mac_event("10.0.0.102", 100, "02:00:00:00:02:01")]
        [mac] = node.local_macs(rib)
        assert (mac.key, mac.ips, mac.seq) == ("100/02:00:00:00:01:01", ("192.168.100.11",), 2)
