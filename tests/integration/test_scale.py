"""Scale for real: 10k Type-2 routes injected at the controller of a 2-host lab (our agent on both).

The kernel of a hypervisor must equal its RIB exactly (vxlan FDB, the bridge's extern_learn entries,
neighbour entries) once the routes are in and once they are withdrawn, and an agent restarted with
10k entries programmed must become ready without a single netlink write (a monitor socket in the
namespace sees no RTM_NEWNEIGH / RTM_DELNEIGH for them). No timing is asserted: only outcomes, with
generous timeouts for the 2-core CI machine.
"""

from __future__ import annotations

import ipaddress
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.entries import FdbEntry, NeighEntry
from agent.kernel import Kernel
from agent.ledger import Ledger
from agent.ownedset import FDB, NEIGH, fdb_key, neigh_key
from agent.reconcile import ledger_sample
from agent.routes import MacIpRoute
from labctl.lab import Lab
from labctl.observe import expected_macs, poll
from labctl.topology import Host

from .labkit import labctl, make_topology, write_topology
from .scalekit import (
    FakeVtep,
    daemon_pids,
    inject,
    restart_agent,
    rib_macs,
    rib_routes,
    withdraw,
)

LAB = "itscale"
N = 10_000
VNI, VXLAN, BRIDGE = 100, "vxlan100", "br0"
FAKE_VTEP = ipaddress.IPv4Address("10.0.0.200")  # a VTEP of the lab's range that no host has
SUBNET = "172.16.0.0/16"
FIRST_IP = ipaddress.IPv4Address("172.16.64.0")
TIMEOUT = 120.0


def _topology(tmp_path: Path) -> Path:
    doc = make_topology(LAB, hosts=2, vms_per_host=1)
    doc["networks"][0]["subnet"] = SUBNET
    for host in doc["hosts"]:
        for vm in host["vms"]:
            vm["ip"] = "172.16.0." + vm["ip"].rsplit(".", 1)[1]
    return write_topology(tmp_path / "scale.yaml", doc)


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    """The lab with the N routes injected at its controller (the autouse cleanup removes it after the test)."""
    result = labctl("up", str(_topology(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    lab = Lab.open(LAB)
    inject(_api(lab, lab.plan.controller_ns), _routes(lab))
    return lab


def _routes(lab: Lab) -> FakeVtep:
    return FakeVtep(FAKE_VTEP, VNI, f"{lab.topo.controller.asn}:{VNI}", FIRST_IP, N)


def _api(lab: Lab, node: str) -> str:
    return f"unix://{lab.plan.files(node).gobgpd_socket}"


def _expected(lab: Lab, host: Host) -> tuple[dict[str, str], set[str], dict[str, str]]:
    """What the host's RIB asks its kernel for: MAC -> VTEP (vxlan FDB), MACs (bridge), IP -> MAC (neighbours)."""
    events = rib_routes(_api(lab, host.name))
    macs = expected_macs(events, str(host.vtep), VNI)
    neighbours = {str(e.route.ip): e.route.mac for e in events
                  if isinstance(e.route, MacIpRoute) and e.route.ip is not None and e.route.label_vni == VNI
                  and macs.get(e.route.mac) == str(e.route.vtep)}
    return macs, set(macs), neighbours


def _actual(host: Host) -> tuple[dict[str, str], set[str], dict[str, str]]:
    from pyroute2.netlink.rtnl.ndmsg import NTF_EXT_LEARNED, NTF_SELF

    from agent.netlink_bulk import NetlinkBulk
    from labctl import netns

    with netns.ns(host.name) as ipr:
        index = {link.get_attr("IFLA_IFNAME"): link["index"] for link in ipr.get_links()}
    with NetlinkBulk(netns=host.name) as bulk:
        fdb = bulk.dump_fdb(index[VXLAN])
        neigh = bulk.dump_neigh(ifindex=index[BRIDGE])
    vx = index[VXLAN]
    unicast = {r.mac: str(r.dst) for r in fdb if r.ifindex == vx and r.flags & NTF_SELF and r.dst
               and r.mac and r.mac != "00:00:00:00:00:00"}
    bridged = {r.mac for r in fdb if r.ifindex == vx and r.dst is None and r.flags & NTF_EXT_LEARNED and r.mac}
    neighbours = {str(r.dst): str(r.mac) for r in neigh if r.ifindex == index[BRIDGE] and r.dst and r.mac}
    return unicast, bridged, neighbours


def _diff(want: object, got: object) -> str:
    if isinstance(want, dict) and isinstance(got, dict):
        missing = sorted(set(want.items()) - set(got.items()))
        extra = sorted(set(got.items()) - set(want.items()))
    else:
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))  # type: ignore[call-overload]
    return f"{len(missing)} missing (first {missing[:3]}), {len(extra)} extra (first {extra[:3]})"


def _assert_kernel_equals_rib(lab: Lab, host: Host, injected: int) -> None:
    """Poll until the host's kernel equals its RIB and the RIB holds `injected` of our routes; assert with a diff."""

    def read() -> tuple[tuple[dict[str, str], set[str], dict[str, str]], tuple[dict[str, str], set[str], dict[str, str]]]:
        return _expected(lab, host), _actual(host)

    def equal(pair: tuple[object, object]) -> bool:
        (want, got) = pair
        return want == got and sum(1 for vtep in want[0].values() if vtep == str(FAKE_VTEP)) == injected  # type: ignore[index]

    polled = poll(read, equal, TIMEOUT, interval=1.0)
    assert polled.value is not None
    want, got = polled.value
    ours = sum(1 for vtep in want[0].values() if vtep == str(FAKE_VTEP))
    assert ours == injected, f"{host.name}: the RIB holds {ours} of the {injected} injected routes"
    for kind, w, g in zip(("vxlan FDB", "bridge entries", "neighbours"), want, got):
        assert w == g, f"{host.name} {kind} differs from the RIB after {polled.seconds:.0f}s: {_diff(w, g)}"


def test_10k_routes_kernel_equals_rib_after_injection_and_withdrawal(lab: Lab) -> None:
    routes = _routes(lab)
    controller = _api(lab, lab.plan.controller_ns)
    held = rib_macs(controller, str(FAKE_VTEP), VNI)
    assert held == {mac: {ip} for mac, ip in routes.macs().items()}, "the controller does not hold exactly the injected routes"
    for host in lab.topo.hosts:
        _assert_kernel_equals_rib(lab, host, N)
    withdraw(controller, routes)
    assert rib_macs(controller, str(FAKE_VTEP), VNI) == {}
    for host in lab.topo.hosts:
        _assert_kernel_equals_rib(lab, host, 0)
        unicast, bridged, neighbours = _actual(host)
        assert not [m for m in bridged | set(unicast) | set(neighbours.values()) if m.startswith("02:5c")], \
            f"{host.name}: injected entries left"


def test_agent_restart_with_10k_programmed_writes_nothing(lab: Lab) -> None:
    host = lab.topo.hosts[0]
    _assert_kernel_equals_rib(lab, host, N)
    before = _actual(host)
    restart = restart_agent(lab, host.name, TIMEOUT)
    assert restart.owned >= 2 * N, restart
    assert restart.overruns == 0, f"the monitor lost notifications (ENOBUFS): {restart}"
    assert restart.injected == 0, f"the restarted agent rewrote {restart.injected} injected entries: {restart}"
    assert _actual(host) == before
    log = lab.plan.files(host.name).agent_log.read_text(errors="replace").splitlines()
    synced = [line for line in log if "event=synced" in line][-1]
    assert "compared_with=ledger" in synced, f"the restart was not made ready from its ledger: {synced}"
    assert any("event=kernel-verified added=0 removed=0" in line for line in log[log.index(synced):]), \
        "the restarted agent did not verify the kernel after its ledger start"


def test_entries_deleted_by_hand_while_the_agent_was_down_come_back(lab: Lab) -> None:
    """A restart looks up a sample of the entries its ledger names (`ledger_sample`) before it trusts the
    ledger. Entries deleted by hand that the sample misses: ready from the ledger, the kernel read right
    after makes them again. One the sample finds missing: the kernel is read before ready."""
    host = lab.topo.hosts[0]
    files = lab.plan.files(host.name)
    _assert_kernel_equals_rib(lab, host, N)
    routes = _routes(lab)

    def delete(sampled: bool) -> Callable[[], None]:
        def run() -> None:  # (the agent is frozen: its ledger on disk is what the next one loads)
            owned = Ledger(files.agent_state).load().packed()
            samples = {kind: set(ledger_sample(kind, owned.keys[(kind, dev)])) for kind, dev in ((FDB, VXLAN), (NEIGH, BRIDGE))}
            chosen = []
            for i in range(N):
                fdb, neigh = FdbEntry(VXLAN, routes.mac(i), FAKE_VTEP), NeighEntry(BRIDGE, routes.ip(i), routes.mac(i))
                hit = fdb_key(fdb.mac, fdb.vtep) in samples[FDB] or neigh_key(neigh.ip, neigh.mac) in samples[NEIGH]
                if hit == sampled:
                    chosen += [fdb, neigh]
                if len(chosen) == (2 if sampled else 200):
                    break
            with Kernel(netns=host.name) as kernel:
                assert all(o is True for o in kernel.delete_many(chosen))
        return run

    def synced_and_after() -> list[str]:
        log = files.agent_log.read_text(errors="replace").splitlines()
        last = max(i for i, line in enumerate(log) if "event=synced" in line)
        return log[last:]

    _kill_agent(host, delete(sampled=False))
    _assert_kernel_equals_rib(lab, host, N)
    lines = poll(synced_and_after, lambda ls: any("event=kernel-verified" in line for line in ls), TIMEOUT, interval=0.5).value
    assert lines is not None and "compared_with=ledger kernel_verified=0" in lines[0], lines
    assert any("event=kernel-verified added=200 removed=0" in line for line in lines), \
        "the kernel verification did not repair the 200 entries deleted by hand"

    _kill_agent(host, delete(sampled=True))
    _assert_kernel_equals_rib(lab, host, N)
    lines = synced_and_after()
    assert "compared_with=kernel kernel_verified=1" in lines[0] and "added=2 " in lines[0], lines[0]
    assert not any("event=kernel-verified" in line for line in lines)


def _kill_agent(host: Host, before_kill: Callable[[], None]) -> int:
    """Freeze the host's agent (SIGSTOP), run `before_kill`, then SIGKILL it: its supervisor starts a new
    one, which finds what happened meanwhile. Returns the old PID."""
    old = daemon_pids(host.name)["agent"]
    os.kill(old, signal.SIGSTOP)
    try:
        before_kill()
    finally:
        os.kill(old, signal.SIGKILL)
        os.kill(old, signal.SIGCONT)
    return old


def test_cold_start_and_a_withdrawal_while_down_at_10k_go_through_the_packed_path(lab: Lab) -> None:
    """A plan of >= 10k entries is applied from packed keys (agent/reconcile.py PACKED_APPLY_MIN): a
    cold start (the agent's entries and ledger gone) adds 20k entries that way, and a restart after
    the routes were withdrawn while the agent was frozen removes them that way; the kernel equals the
    RIB after each, and the ledger (a packed snapshot) says what the agent owns."""
    host = lab.topo.hosts[0]
    files = lab.plan.files(host.name)
    _assert_kernel_equals_rib(lab, host, N)

    def forget_everything() -> None:
        with Kernel(netns=host.name) as kernel:
            ours = [e for e in kernel.entries([VXLAN], [BRIDGE]) if getattr(e, "mac", "").startswith("02:5c")]
            assert len(ours) == 2 * N and all(o is True for o in kernel.delete_many(ours))
        for path in (files.agent_state, files.agent_state.with_name(files.agent_state.name + ".journal")):
            path.unlink(missing_ok=True)

    _kill_agent(host, forget_everything)
    _assert_kernel_equals_rib(lab, host, N)
    log = files.agent_log.read_text(errors="replace")
    assert f"event=entries-applied added={2 * N} removed=0 (as packed keys" in log, "the cold start did not apply its plan as packed keys"
    assert files.agent_state.read_bytes().startswith(b'{"format": "evpn-agent-owned-packed"')
    routes = _routes(lab)
    _kill_agent(host, lambda: withdraw(_api(lab, lab.plan.controller_ns), routes))
    _assert_kernel_equals_rib(lab, host, 0)
    unicast, bridged, neighbours = _actual(host)
    assert not [m for m in bridged | set(unicast) | set(neighbours.values()) if m.startswith("02:5c")], \
        f"{host.name}: injected entries left after the restart"
    assert f"event=entries-applied added=0 removed={2 * N} (as packed keys" in files.agent_log.read_text(errors="replace"), \
        "the restart did not remove the withdrawn routes' entries as packed keys"
    status = poll(lambda: lab.node(host.name).agent_status(), lambda s: s.get("ready") and s.get("stale_pending") is False,  # type: ignore[attr-defined]
                  TIMEOUT, interval=0.5).value
    assert status is not None and int(status.get("owned_fdb_entries", -1)) < 10, status
