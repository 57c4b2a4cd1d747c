"""Pure parts of fault handling: supervisor backoff, agent liveness, the keeper's routes, graceful restart config."""

from __future__ import annotations

import ipaddress

from labctl.bgp import GR_DEFERRAL_TIME, GR_RESTART_TIME, Neighbor
from labctl.keeper import missing, router_routes
from labctl.nodes.gobgp_agent import agent_liveness
from labctl.plan import LabPlan
from labctl.supervise import HEALTHY_AFTER, INITIAL_BACKOFF, MAX_BACKOFF, describe_exit, next_backoff
from labctl.topology import Timers, parse_topology
from tests.unit.labctl_builders import make_topology


def test_backoff_doubles_to_a_bound_and_resets_after_a_healthy_run() -> None:
    waits = []
    backoff = 0.0
    for _ in range(8):
        backoff = next_backoff(backoff, lived=0.5)
        waits.append(backoff)
    assert waits[0] == INITIAL_BACKOFF and waits[1] == 2 * INITIAL_BACKOFF and waits[-1] == MAX_BACKOFF
    assert next_backoff(MAX_BACKOFF, lived=HEALTHY_AFTER) == INITIAL_BACKOFF


def test_exit_descriptions() -> None:
    assert describe_exit(-9) == "signal 9" and describe_exit(1) == "code 1"


def test_agent_liveness_believes_only_a_fresh_file_of_the_running_agent() -> None:
    now = 1000.0
    fresh = {"pid": 42, "updated": now - 1}
    assert agent_liveness(fresh, 42, now) is None
    assert agent_liveness(fresh, 0, now) == "not running"  # the supervisor runs no agent: the file is a corpse's
    assert agent_liveness(fresh, 43, now) == "starting"  # a restarted agent has not written yet
    assert agent_liveness({"pid": 42, "updated": now - 60}, 42, now) == "not live"  # its loop hangs
    assert agent_liveness({"pid": 42}, 42, now) == "not live"
    assert agent_liveness({}, 42, now) is None  # just started: no file yet


def test_keeper_routes_are_each_nodes_loopback_via_its_uplink() -> None:
    plan = LabPlan(parse_topology(make_topology("t", hosts=2, vms_per_host=1)))
    routes = router_routes(plan)
    assert len(routes) == 3
    for (dst, gw), ns in zip(routes, [plan.controller_ns] + [h.name for h in plan.topo.hosts]):
        assert ipaddress.ip_network(dst).prefixlen == 32 and gw == str(plan.uplink(ns).node_ip)
    assert missing(routes, set(routes[1:])) == [routes[0]]
    wrong_gateway = {(routes[0][0], "10.9.9.9")} | set(routes[1:])
    assert missing(routes, wrong_gateway) == [routes[0]]


NEIGHBOR = Neighbor(ipaddress.IPv4Address("10.0.0.100"), 65000, ipaddress.IPv4Address("10.0.0.101"), Timers(3, 1, 1), 4, 1)


def test_every_session_has_graceful_restart_in_all_three_renderings() -> None:
    toml = NEIGHBOR.gobgpd_toml()
    assert "[neighbors.graceful-restart.config]" in toml and f"restart-time = {GR_RESTART_TIME}" in toml
    assert "notification-enabled = true" in toml and "[neighbors.afi-safis.mp-graceful-restart.config]" in toml
    assert f"deferral-time = {GR_DEFERRAL_TIME}" in toml
    peer = NEIGHBOR.gobgp_peer()
    assert peer.graceful_restart.enabled and peer.graceful_restart.restart_time == GR_RESTART_TIME
    assert peer.graceful_restart.notification_enabled and peer.afi_safis[0].mp_graceful_restart.config.enabled
    assert f" bgp graceful-restart restart-time {GR_RESTART_TIME}\n" in NEIGHBOR.frr_router_lines()


def test_vxlan_guard_keeps_the_sources_of_stale_entries() -> None:
    from agent.vxlan_guard import VxlanGuard

    sent: list[str] = []
    guard = VxlanGuard(runner=lambda doc: sent.append(doc) or "")
    guard.follow({100: ["10.0.0.102", "10.0.0.103"]})
    # gobgpd restarted: the RIB is empty while the FDB's stale entries still point at both VTEPs
    guard.follow({}, keep=True)
    assert guard.applied == {ipaddress.ip_address("10.0.0.102"), ipaddress.ip_address("10.0.0.103")}
    guard.follow({100: ["10.0.0.102"]})  # stale removal done: the set follows the RIB again
    assert guard.applied == {ipaddress.ip_address("10.0.0.102")}


def test_missing_items_are_the_baseline_items_some_sample_lacked() -> None:
    from labctl.faults import missing_items

    baseline = {"h1": {1, 2, 3}, "h2": {7}, "h3": {9}}
    samples = {"h1": [{1, 2, 3}, {1, 3}, {2, 3}], "h2": [{7, 8}], "h3": []}  # h3: no sample, so nothing seen missing
    assert missing_items(baseline, samples) == {"h1": {1, 2}, "h2": set(), "h3": set()}
