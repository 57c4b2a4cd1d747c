"""Unit tests for agent/service.py: the session loop with an in-memory gobgpd and kernel.

The doubles: FakeGobgp (a RouteSink and watch stream the test drives), FakeKernel/MemoryLedger
from builders. The Agent, RIB view, learning, advertiser and reconciler are the real ones; no
worker threads are started (the test puts their events on the queue itself).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import pathlib
import queue
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from agent.entries import FdbEntry
from agent.errors import AgentFailure, GobgpRefused, GobgpUnavailable, KernelError
from agent.events import LocalMacsChanged, WorkerFailed
from agent.localmacs import LocalMac, LocalMacEvent
from agent.routes import EvpnRoute, MacIpRoute, RouteEvent
from agent.service import Agent
from agent.vxlan_guard import VxlanGuard
from tests.unit.builders import CFG, E, FakeKernel, N, U, add, imet, macip, withdraw

VM = LocalMac(100, "02:00:00:00:00:01")


class FakeGobgp:
    """A gobgpd: the test feeds `stream`; the agent's add/delete calls are recorded."""

    def __init__(self, table: list[RouteEvent], refuse_deletes: bool = False) -> None:
        self.stream: queue.Queue[list[RouteEvent] | None] = queue.Queue()
        self.table = table
        self.calls: list[tuple[str, EvpnRoute]] = []
        self.refuse_deletes = refuse_deletes
        self.closed = False

    def wait_ready(self, timeout: float) -> None:
        pass

    def close(self) -> None:
        self.closed = True
        self.stream.put(None)

    def list_peers(self) -> list[tuple[str, int, str]]:
        return [("10.0.0.100", 65000, "ESTABLISHED")]

    def add_route(self, route: EvpnRoute) -> None:
        self.calls.append(("add", route))

    def delete_route(self, route: EvpnRoute) -> None:
        self.calls.append(("del", route))
        if self.refuse_deletes:
            raise GobgpRefused("DeletePath failed: INVALID_ARGUMENT: invalid MAC mobility sequence number")

    def watch(self) -> FakeWatch:
        return FakeWatch(self)


class FakeWatch:
    """The agent's view of a gobgpd watch: the table at the time of the call, then what the test feeds."""

    def __init__(self, gobgp: FakeGobgp) -> None:
        self.gobgp = gobgp
        self.table_events = list(gobgp.table)

    def table(self) -> Iterator[tuple[list[RouteEvent], list[str]]]:
        yield self.table_events, []

    def changes(self) -> Iterator[tuple[list[RouteEvent], list[str]]]:
        while (events := self.gobgp.stream.get()) is not None:
            yield events, []
        raise GobgpUnavailable("closed")

    def cancel(self) -> None:
        self.gobgp.stream.put(None)


class FakeBulk:
    def bridge_ports(self, bridge: int) -> list[int]:
        return [bridge + 1]  # the vxlan device (no VM ports)

    def dump_fdb(self, *_: object, **__: object) -> list[object]:
        return []


class Kernel(FakeKernel):
    """FakeKernel plus the device queries the agent makes at start-up."""

    bulk = FakeBulk()

    def ifindex(self, device: str) -> int | None:
        return {"vx100": 11, "br100": 10, "vx200": 21, "br200": 20}.get(device)

    def forget_devices(self) -> None:
        pass

    def set_neigh_suppress(self, device: str, on: bool = True) -> None:
        pass


def wait_for(what: str, check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


class Running:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.agent.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.agent.stop_event.set()
        self.thread.join(5)


def make_agent(gobgp: FakeGobgp, kernel: Kernel | None = None) -> tuple[Agent, Kernel]:
    kernel = kernel or Kernel()
    agent = Agent(CFG, kernel, client_factory=lambda _: gobgp, worker_factory=lambda *_: [])  # type: ignore[arg-type,return-value]
    return agent, kernel


def test_initial_table_programs_the_kernel_and_advertises_our_vtep() -> None:
    gobgp = FakeGobgp([add(imet("10.0.0.2", 100)), add(macip("10.0.0.2", mac="02:00:00:00:00:22", seq=1))])
    agent, kernel = make_agent(gobgp)
    with Running(agent):
        wait_for("ready", lambda: agent.health.ready)
        assert kernel.table == {E("vx100", "10.0.0.2"), U("vx100", "02:00:00:00:00:22", "10.0.0.2")}
        advertised = {r.key for op, r in gobgp.calls if op == "add"}
        assert {r.key for r in (imet("10.0.0.1", 100, rd="10.0.0.1:100"), imet("10.0.0.1", 200, rd="10.0.0.1:200"))} <= advertised
        gobgp.stream.put([withdraw(imet("10.0.0.2", 100))])
        wait_for("flood entry removed", lambda: E("vx100", "10.0.0.2") not in kernel.table)


def test_a_local_mac_is_advertised_outbidding_a_remote_claim() -> None:
    gobgp = FakeGobgp([add(macip("10.0.0.2", mac=VM.mac, seq=4))])
    agent, kernel = make_agent(gobgp)
    with Running(agent):
        wait_for("ready", lambda: agent.health.ready)
        agent.events.put(LocalMacsChanged((LocalMacEvent(VM, True),)))
        wait_for("MAC route", lambda: any(isinstance(r, MacIpRoute) and r.mac == VM.mac for _, r in gobgp.calls))
        route = next(r for _, r in gobgp.calls if isinstance(r, MacIpRoute) and r.mac == VM.mac)
        assert route.attrs.mac_mobility_seq == 5
        wait_for("remote entry replaced by the local MAC", lambda: U("vx100", VM.mac, "10.0.0.2") not in kernel.table)


def test_a_refused_withdrawal_does_not_end_the_session() -> None:
    gobgp = FakeGobgp([], refuse_deletes=True)
    agent, _ = make_agent(gobgp)
    with Running(agent) as running:
        wait_for("ready", lambda: agent.health.ready)
        agent.events.put(LocalMacsChanged((LocalMacEvent(VM, True),)))
        agent.events.put(LocalMacsChanged((LocalMacEvent(VM, False),)))
        wait_for("refusal counted", lambda: agent.advertiser.refused == 1)
        time.sleep(0.2)
        assert agent.health.connected and agent.health.reconnects == 0 and running.error is None


def test_a_dead_worker_ends_the_agent_not_ready() -> None:
    gobgp = FakeGobgp([])
    agent, _ = make_agent(gobgp)
    with Running(agent) as running:
        wait_for("ready", lambda: agent.health.ready)
        agent.events.put(WorkerFailed("fdb-watch", "ENOBUFS"))
        running.thread.join(5)
        assert isinstance(running.error, AgentFailure) and "fdb-watch" in str(running.error)
        assert not agent.health.ready


@pytest.mark.parametrize("seq", [0xFFFFFFFF])
def test_a_remote_claim_at_the_top_of_the_sequence_range_does_not_crash(seq: int) -> None:
    gobgp = FakeGobgp([add(macip("10.0.0.2", mac=VM.mac, seq=seq))])
    agent, _ = make_agent(gobgp)
    with Running(agent) as running:
        wait_for("ready", lambda: agent.health.ready)
        agent.events.put(LocalMacsChanged((LocalMacEvent(VM, True),)))
        wait_for("frozen", lambda: VM in agent.table.frozen)
        assert running.error is None and agent.health.connected


def _sample(agent: Agent, name: str, **labels: str) -> float | None:
    return agent.metrics.registry.get_sample_value(name, labels or None)


def test_metrics_follow_the_rib_and_the_kernel() -> None:
    gobgp = FakeGobgp([add(imet("10.0.0.2", 100)), add(macip("10.0.0.2", mac="02:00:00:00:00:22", mac_ip="192.168.1.22", seq=1))])
    agent, kernel = make_agent(gobgp)
    with Running(agent):
        wait_for("ready", lambda: agent.health.ready)
        agent.events.put(LocalMacsChanged((LocalMacEvent(VM, True),)))
        wait_for("metrics", lambda: _sample(agent, "evpn_agent_local_macs", vni="100") == 1)
        assert _sample(agent, "evpn_agent_routes", type="macip", vni="100") == 1
        assert _sample(agent, "evpn_agent_routes", type="imet", vni="100") == 1
        assert _sample(agent, "evpn_agent_remote_vteps", vni="100") == 1
        assert _sample(agent, "evpn_agent_desired_entries", kind="neigh", vni="100") == 1
        assert _sample(agent, "evpn_agent_owned_entries") == len(kernel.table) == 3
        assert _sample(agent, "evpn_agent_ready") == 1 and _sample(agent, "evpn_agent_kernel_verified") == 1 and _sample(agent, "evpn_agent_gobgp_connected") == 1
        assert _sample(agent, "evpn_agent_entries_added_total") == 3
        gobgp.stream.put([withdraw(imet("10.0.0.2", 100))])
        wait_for("latency observed", lambda: (_sample(agent, "evpn_agent_route_to_kernel_seconds_count") or 0) >= 1)
        wait_for("VTEP gone", lambda: _sample(agent, "evpn_agent_remote_vteps", vni="100") == 0)


# -- the stale withdrawal grace (agent/withdrawhold.py) -----------------------------------------------

def stale_withdraw(route: EvpnRoute) -> RouteEvent:
    """What gobgpd's watch reports when it drops a lost peer's stale path (graceful restart)."""
    return RouteEvent(route, withdrawn=True, stale=True)


class ReconnectingGobgp(FakeGobgp):
    """A gobgpd whose watch the test ends (`stream.put(None)`); the agent reconnects to the same one."""

    def close(self) -> None:
        self.closed = True


def grace_agent(gobgp: FakeGobgp, grace: float, guard: VxlanGuard | None = None) -> tuple[Agent, Kernel]:
    kernel = Kernel()
    agent = Agent(dataclasses.replace(CFG, stale_withdraw_grace=grace), kernel, client_factory=lambda _: gobgp,  # type: ignore[arg-type,return-value]
                  worker_factory=lambda *_: [], vxlan_guard=guard)
    return agent, kernel


REMOTE_MAC = macip("10.0.0.3", mac="02:00:00:00:00:33", mac_ip="192.168.1.33", seq=1)
TABLE = [add(imet("10.0.0.2", 100)), add(imet("10.0.0.3", 100)), add(REMOTE_MAC)]


def test_a_stale_withdrawal_changes_nothing_when_the_route_comes_back_within_the_grace() -> None:
    sent: list[str] = []
    gobgp = FakeGobgp(list(TABLE))
    agent, kernel = grace_agent(gobgp, grace=30.0, guard=VxlanGuard(runner=lambda doc: sent.append(doc) or ""))
    with Running(agent):
        wait_for("ready", lambda: agent.health.ready)
        before = set(kernel.table)
        assert len(before) == 4  # two flood entries, the MAC, its neighbour entry
        # the controller restarted: this host's gobgpd got its End-of-RIB early and dropped 10.0.0.3's stale routes
        gobgp.stream.put([stale_withdraw(imet("10.0.0.3", 100)), stale_withdraw(REMOTE_MAC)])
        wait_for("held", lambda: agent.status()["held_withdrawals"] == 2)
        time.sleep(0.2)
        assert kernel.table == before and agent.reconciler.removed == 0
        assert agent.vxlan_guard is not None and ipaddress.ip_address("10.0.0.3") in (agent.vxlan_guard.applied or ())
        wait_for("metric", lambda: _sample(agent, "evpn_agent_held_withdrawals") == 2)
        gobgp.stream.put([add(imet("10.0.0.3", 100)), add(REMOTE_MAC)])  # 10.0.0.3 is back at the controller
        wait_for("cancelled", lambda: agent.status()["held_withdrawals"] == 0)
        status = agent.status()
        assert (status["withdrawals_held"], status["withdrawals_cancelled"], status["withdrawals_released"]) == (2, 2, 0)
        time.sleep(0.2)
        assert kernel.table == before and agent.reconciler.removed == 0
        assert not [c for c in kernel.calls if c[0] != "add"], "no kernel entry was touched"


def test_a_held_withdrawal_is_released_on_time_without_further_events(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="evpn.agent.withdrawhold")
    gobgp = FakeGobgp(list(TABLE))
    agent, kernel = grace_agent(gobgp, grace=0.3)
    with Running(agent):
        wait_for("ready", lambda: agent.health.ready)
        held_at = time.monotonic()
        gobgp.stream.put([stale_withdraw(imet("10.0.0.3", 100))])
        wait_for("held", lambda: len(agent.withdraw_hold) == 1)
        time.sleep(0.1)  # within the grace: still held, the entry still in the kernel
        assert E("vx100", "10.0.0.3") in kernel.table and len(agent.withdraw_hold) == 1
        assert agent._held_wait(1.0) <= 0.3  # the idle loop wakes at the deadline, not after its usual 1 s
        wait_for("released and removed", lambda: E("vx100", "10.0.0.3") not in kernel.table, timeout=2.0)
        assert time.monotonic() - held_at >= 0.3, "released before the grace was over"
        assert E("vx100", "10.0.0.2") in kernel.table
    assert "event=withdraw-held type=imet" in caplog.text and "event=withdraw-released type=imet" in caplog.text


def test_a_genuine_withdrawal_is_not_delayed_by_the_grace() -> None:
    gobgp = FakeGobgp(list(TABLE))
    agent, kernel = grace_agent(gobgp, grace=60.0)
    with Running(agent):
        wait_for("ready", lambda: agent.health.ready)
        gobgp.stream.put([withdraw(REMOTE_MAC)])  # the MAC left 10.0.0.3: an UPDATE withdrew it
        wait_for("removed at once", lambda: U("vx100", REMOTE_MAC.mac, "10.0.0.3") not in kernel.table, timeout=1.0)
        assert len(agent.withdraw_hold) == 0


def test_grace_zero_removes_a_stale_withdrawal_at_once() -> None:
    gobgp = FakeGobgp(list(TABLE))
    agent, kernel = grace_agent(gobgp, grace=0.0)
    with Running(agent):
        wait_for("ready", lambda: agent.health.ready)
        gobgp.stream.put([stale_withdraw(imet("10.0.0.3", 100))])
        wait_for("removed at once", lambda: E("vx100", "10.0.0.3") not in kernel.table, timeout=1.0)


def test_held_withdrawals_outlive_a_new_session_until_their_deadline() -> None:
    gobgp = ReconnectingGobgp(list(TABLE))
    agent, kernel = grace_agent(gobgp, grace=1.5)
    with Running(agent):
        wait_for("ready", lambda: agent.health.ready)
        gobgp.stream.put([stale_withdraw(imet("10.0.0.3", 100)), stale_withdraw(imet("10.0.0.2", 100))])
        wait_for("held", lambda: len(agent.withdraw_hold) == 2)
        # the session ends; the new session's table has 10.0.0.2 back, not 10.0.0.3 (every peer up: no stale wait)
        gobgp.table = [add(imet("10.0.0.2", 100)), add(REMOTE_MAC)]
        gobgp.stream.put(None)
        wait_for("second session", lambda: agent.session == 2 and agent.health.kernel_verified)  # (reset per session)
        assert len(agent.withdraw_hold) == 1 and imet("10.0.0.3", 100).key in agent.withdraw_hold
        assert E("vx100", "10.0.0.3") in kernel.table and E("vx100", "10.0.0.2") in kernel.table
        wait_for("released at its deadline", lambda: E("vx100", "10.0.0.3") not in kernel.table, timeout=3.0)
        assert E("vx100", "10.0.0.2") in kernel.table and U("vx100", REMOTE_MAC.mac, "10.0.0.3") in kernel.table


def test_a_table_read_cut_short_programs_nothing_and_the_next_session_loads_it_whole() -> None:
    """The table goes into the RIB message by message; if gobgpd goes away in the middle, the session
    ends before any full sync: the kernel is left as it is, and the next session loads the table whole."""
    table = [add(imet("10.0.0.2", 100)), add(macip("10.0.0.2", mac="02:00:00:00:00:22", seq=1)),
             add(macip("10.0.0.3", mac="02:00:00:00:00:33", seq=1))]
    gobgp = FakeGobgp(table)
    reads = []

    class CutShort(FakeWatch):
        def table(self) -> Iterator[tuple[list[RouteEvent], list[str]]]:
            reads.append(len(kernel.calls))  # kernel calls made before this read
            yield self.table_events[:2], []
            if len(reads) == 1:
                raise GobgpUnavailable("gobgpd at test: watch ended: UNAVAILABLE")
            yield self.table_events[2:], []

    gobgp.watch = lambda: CutShort(gobgp)  # type: ignore[method-assign]
    agent, kernel = make_agent(gobgp)
    with Running(agent):
        wait_for("the second session's full sync", lambda: agent.health.ready)
        assert reads == [0, 0]  # the first read was cut short and nothing was programmed from its part
        adds = kernel.ops("add")
        assert kernel.calls and all(kind == "add" for kind, _ in kernel.calls)  # nothing removed, ever
        assert U("vx100", "02:00:00:00:00:33", "10.0.0.3") in adds and E("vx100", "10.0.0.2") in adds
        assert len(adds) == len(set(adds))  # one full sync programmed it: the first session made nothing


# -- a restart made ready from the ledger, the kernel verified right after ----------------------------------

def _restarted(tmp_path: pathlib.Path, table: list[RouteEvent], kernel: Kernel, caplog: pytest.LogCaptureFixture) -> Agent:
    """An agent with the state file of an earlier one on `kernel`, run until its kernel is verified."""
    gobgp = FakeGobgp(table)
    agent = Agent(dataclasses.replace(CFG, state_file=tmp_path / "owned"), kernel, client_factory=lambda _: gobgp,  # type: ignore[arg-type,return-value]
                  worker_factory=lambda *_: [])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="evpn.agent"), Running(agent):
        wait_for("kernel verified", lambda: agent.health.ready and agent.health.kernel_verified)
        time.sleep(0.05)
    return agent


def _events(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage().split()[0] for r in caplog.records if r.getMessage().startswith(("event=synced", "event=kernel-"))]


BIG_TABLE = TABLE + [add(macip("10.0.0.3", mac=f"02:00:00:00:01:{i:02x}", seq=1)) for i in range(40)]  # > LEDGER_SAMPLE a device


def _unicast_sample(tmp_path: pathlib.Path) -> tuple[list[FdbEntry], list[FdbEntry]]:
    """The agent's unicast FDB entries on vx100 as its ledger holds them: (looked up at a ledger start, not)."""
    from agent.ledger import Ledger
    from agent.ownedset import FDB, unpack
    from agent.reconcile import ledger_sample

    keys = list(Ledger(tmp_path / "owned").load().packed().keys[(FDB, "vx100")])
    sample = set(ledger_sample(FDB, keys))
    entries = [(key, next(unpack(FDB, "vx100", [key]))) for key in keys if key >> 32]
    return [e for k, e in entries if k in sample], [e for k, e in entries if k not in sample]  # type: ignore[misc]


def test_a_restart_is_ready_from_its_ledger_and_verifies_the_kernel_after(tmp_path: pathlib.Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    kernel = Kernel()
    _restarted(tmp_path, BIG_TABLE, kernel, caplog)  # the first run: a cold start, compared with the kernel
    assert "compared_with=kernel" in caplog.text and "event=kernel-verified" not in caplog.text
    programmed, reads = set(kernel.table), len(kernel.reads)
    kernel.calls.clear()
    _, unsampled = _unicast_sample(tmp_path)
    gone = unsampled[-1]
    kernel.someone_deletes(gone)  # while no agent runs: an entry the start-up's sample does not look at
    agent = _restarted(tmp_path, BIG_TABLE, kernel, caplog)
    synced = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("event=synced"))
    assert "compared_with=ledger kernel_verified=0" in synced and "added=0 removed=0" in synced
    assert _events(caplog) == ["event=synced", "event=kernel-verified"]  # ready first, then the one kernel read
    assert len(kernel.reads) == reads + 1
    assert kernel.table == programmed and kernel.ops("add") == [gone]
    assert agent.health.resync_repaired == 1 and "the kernel differed from the ledger" in caplog.text


def test_a_restart_whose_kernel_lost_an_entry_of_the_sample_reads_the_kernel_first(
        tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    """A reboot, a device made again, a bridge whose neighbours were flushed: the ledger names entries the
    kernel lost, so the agent must not call itself ready before it has read the kernel."""
    kernel = Kernel()
    _restarted(tmp_path, BIG_TABLE, kernel, caplog)
    programmed = set(kernel.table)
    sampled, _ = _unicast_sample(tmp_path)
    kernel.someone_deletes(sampled[0])
    kernel.calls.clear()
    _restarted(tmp_path, BIG_TABLE, kernel, caplog)
    assert "event=ledger-sync-declined reason=owned-entries-missing vx100=1" in caplog.text
    assert _events(caplog) == ["event=synced"] and "compared_with=kernel kernel_verified=1" in caplog.text
    assert kernel.table == programmed and kernel.ops("add") == [sampled[0]]


def test_a_kernel_read_that_fails_after_a_ledger_start_ends_the_agent_not_ready(
        tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    kernel = Kernel()
    _restarted(tmp_path, TABLE, kernel, caplog)

    class Unreadable(Kernel):
        def packed_entries(self, devices: object, bridges: object = ()) -> object:
            raise KernelError("reading entries of ifindex 11: Input/output error")

    broken = Unreadable()
    broken.table = set(kernel.table)
    gobgp = FakeGobgp(TABLE)
    agent = Agent(dataclasses.replace(CFG, state_file=tmp_path / "owned"), broken, client_factory=lambda _: gobgp,  # type: ignore[arg-type,return-value]
                  worker_factory=lambda *_: [])
    states: list[tuple[bool, bool]] = []
    agent._write_status = lambda force=False: states.append((agent.health.ready, agent.health.kernel_verified))  # type: ignore[method-assign]
    with pytest.raises(KernelError, match="Input/output error"):
        agent.run()
    assert (True, False) in states  # ready from the ledger, then the verification's read failed:
    assert states[-1] == (False, False)  # the last word is not ready


def test_a_restart_whose_table_brings_a_new_mac_looks_it_up_and_leaves_someone_elses_copy_alone(
        tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    kernel = Kernel()
    _restarted(tmp_path, TABLE[:2], kernel, caplog)
    theirs = U("vx100", "02:00:00:00:00:33", "10.0.0.3")
    kernel.someone_adds(theirs)  # someone else's copy of the new route's FDB entry
    kernel.calls.clear()
    _restarted(tmp_path, TABLE, kernel, caplog)
    assert _events(caplog) == ["event=synced", "event=kernel-verified"] and "compared_with=ledger" in caplog.text
    assert set(kernel.lookups) >= {theirs} and theirs in kernel.foreign  # looked up, left to its maker
    assert [e for e in kernel.ops("add")] == [N("br100", "192.168.1.33", "02:00:00:00:00:33")]  # the new, absent entry
    assert "event=kernel-verified added=0 removed=0" in caplog.text


def test_a_restart_whose_table_brings_a_new_vtep_compares_with_the_kernel_first(
        tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    """A flood entry cannot be looked up one by one (the kernel answers with its first remote only)."""
    kernel = Kernel()
    _restarted(tmp_path, TABLE[:1], kernel, caplog)
    kernel.someone_adds(E("vx100", "10.0.0.3"))
    _restarted(tmp_path, TABLE[:2], kernel, caplog)
    assert _events(caplog) == ["event=synced"] and "compared_with=kernel" in caplog.text
    assert E("vx100", "10.0.0.3") in kernel.foreign  # left to its maker, as before


def test_a_neighbour_loss_seen_before_the_last_kernel_read_leaves_the_entry_owned() -> None:
    """The full sync that read the kernel after the loss put the entry back (owned again); taking the
    loss afterwards would forget it and re-add it: "exists", and nobody would own it any more."""
    from agent.events import NeighboursLost
    from agent.localmacs import NeighLost

    gobgp = FakeGobgp(TABLE)
    agent, kernel = make_agent(gobgp)
    entry = N("br100", "192.168.1.33", "02:00:00:00:00:33")
    with Running(agent):
        wait_for("ready", lambda: agent.health.ready and agent.health.kernel_verified)
        assert entry in agent.reconciler.owned and entry in kernel.table
        agent.events.put(NeighboursLost((NeighLost(10, "192.168.1.33"),), agent.reconciler.read_started - 1.0))
        agent.events.put(LocalMacsChanged(()))  # a later event: the loss's batch has been handled
        time.sleep(0.3)
        assert entry in agent.reconciler.owned and entry in kernel.table
        kernel.someone_deletes(entry)  # a loss after the read: forgotten and made again
        agent.events.put(NeighboursLost((NeighLost(10, "192.168.1.33"),), time.monotonic()))
        wait_for("re-added", lambda: entry in kernel.table and entry in agent.reconciler.owned)
