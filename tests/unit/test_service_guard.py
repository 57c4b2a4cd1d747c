"""The session loop drives the VXLAN source guard (agent/vxlan_guard.py): installed at once with the
table's VTEPs; a new VTEP is allowed at once, in the batch that brings its Type-3 and before the kernel
gets its flood entry (one `nft` run per batch, however many VTEPs it brings); VTEPs that leave are
taken out coalesced, at most one `nft` run per GUARD_INTERVAL, and not while stale entries are kept.

Real Agent, RIB, reconciler and guard. The clock the agent reads is the test's (it moves only when the
test moves it: an update seen while it stands still is not the coalesced one); the nft runner and the
kernel write into one log, so the order of guard updates and kernel programming is checked."""

from __future__ import annotations

import json

from agent.entries import FdbEntry
from agent.routes import RouteEvent
from agent.service import GUARD_INTERVAL, Agent
from agent.vxlan_guard import VxlanGuard
from tests.unit.builders import CFG, E, add, imet, macip, withdraw
from tests.unit.test_service import FakeGobgp, Kernel, ReconnectingGobgp, Running, wait_for


class Clock:
    """The agent's clock: stands still until the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Nft:
    """Records each nft document as the VTEPs it adds and removes, in `order` too."""

    def __init__(self, order: list[tuple[str, ...]]) -> None:
        self.runs: list[tuple[set[str], set[str]]] = []
        self.order = order

    def __call__(self, document: str) -> str:
        added: set[str] = set()
        removed: set[str] = set()
        for item in json.loads(document)["nftables"]:
            for verb, target in ((v, item[v]) for v in ("add", "delete") if v in item):
                if "element" in target:
                    (added if verb == "add" else removed).update(target["element"]["elem"])
        self.runs.append((added, removed))
        self.order.append(("nft", *sorted(added)))
        return ""

    def allowed(self) -> set[str]:
        allowed: set[str] = set()
        for added, removed in self.runs:
            allowed = (allowed - removed) | added
        return allowed


class OrderKernel(Kernel):
    """The fake kernel, noting each flood entry it is given in the shared log."""

    def __init__(self, order: list[tuple[str, ...]]) -> None:
        super().__init__()
        self.order = order

    def add(self, entry: object) -> bool:  # type: ignore[override]
        if isinstance(entry, FdbEntry) and entry.is_flood:
            self.order.append(("flood", str(entry.vtep)))
        return super().add(entry)  # type: ignore[arg-type]


class CountingGuard(VxlanGuard):
    """The real guard, counting the coalesced follows it has finished (with or without an nft run)."""

    follows = 0

    def follow(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        super().follow(*args, **kwargs)  # type: ignore[arg-type]
        self.follows += 1


class Setup:
    def __init__(self, gobgp: FakeGobgp) -> None:
        self.order: list[tuple[str, ...]] = []
        self.clock = Clock()
        self.nft = Nft(self.order)
        self.kernel = OrderKernel(self.order)
        self.gobgp = gobgp
        self.guard = CountingGuard(runner=self.nft)
        self.agent = Agent(CFG, self.kernel, client_factory=lambda _: gobgp, clock=self.clock,  # type: ignore[arg-type,return-value]
                           worker_factory=lambda *_: [], vxlan_guard=self.guard)

    def batch(self, events: list[RouteEvent], *floods: FdbEntry, gone: tuple[FdbEntry, ...] = ()) -> None:
        """One batch (the next one is sent after the kernel has this one's entries)."""
        self.gobgp.stream.put(events)
        wait_for("the batch's flood entries in the kernel",
                 lambda: all(e in self.kernel.table for e in floods) and not any(e in self.kernel.table for e in gone))

    def coalesced_follow(self) -> None:
        """Move the clock past GUARD_INTERVAL and wait for the loop's coalesced follow to be done."""
        follows = self.guard.follows
        self.clock.advance(GUARD_INTERVAL)
        wait_for("the coalesced follow", lambda: self.guard.follows > follows, timeout=2)

    def admitted_before_programmed(self, vtep: str) -> bool:
        """The nft run that allows `vtep` came before the kernel got a flood entry to it."""
        nft = next(i for i, item in enumerate(self.order) if item[0] == "nft" and vtep in item[1:])
        flood = next(i for i, item in enumerate(self.order) if item == ("flood", vtep))
        return nft < flood


def test_a_new_vtep_is_allowed_in_its_batch_before_its_flood_entry_is_made() -> None:
    s = Setup(FakeGobgp([add(imet("10.0.0.2", 100))]))
    with Running(s.agent):
        wait_for("the guard installed", lambda: bool(s.nft.runs))
        assert s.nft.allowed() == {"10.0.0.2"}
        # the clock stands still: right after the install (well inside GUARD_INTERVAL), a new VTEP goes in at once
        s.batch([add(imet("10.0.0.3", 100))], E("vx100", "10.0.0.3"))
        assert s.nft.runs[1] == ({"10.0.0.3"}, set())
        assert s.admitted_before_programmed("10.0.0.3")
        s.batch([add(imet("10.0.0.4", 200))], E("vx200", "10.0.0.4"))  # and the next batch's, right after that update
        assert s.nft.runs[2] == ({"10.0.0.4"}, set())
        assert s.admitted_before_programmed("10.0.0.4")
        assert len(s.nft.runs) == 3
        # a known VTEP in another VNI, a Type-2 of a known VTEP: no nft run, now or when the interval is over
        s.batch([add(imet("10.0.0.3", 200)), add(macip("10.0.0.3", mac="02:00:00:00:00:33", seq=1))], E("vx200", "10.0.0.3"))
        s.coalesced_follow()
        assert len(s.nft.runs) == 3 and s.nft.allowed() == {"10.0.0.2", "10.0.0.3", "10.0.0.4"}
        assert s.agent.health.ready


def test_vteps_that_leave_go_coalesced_at_most_once_per_interval_and_new_ones_still_at_once() -> None:
    vteps = [f"10.0.0.{n}" for n in range(2, 7)]
    s = Setup(FakeGobgp([add(imet(v, 100)) for v in vteps]))
    with Running(s.agent):
        wait_for("the guard installed", lambda: bool(s.nft.runs))
        runs = len(s.nft.runs)
        s.batch([withdraw(imet("10.0.0.2", 100))], gone=(E("vx100", "10.0.0.2"),))
        s.batch([withdraw(imet("10.0.0.3", 100))], gone=(E("vx100", "10.0.0.3"),))
        # a batch that takes one VTEP out and brings another: the new one at once, the leaving one waits
        s.batch([withdraw(imet("10.0.0.4", 100)), add(imet("10.0.0.7", 100))], E("vx100", "10.0.0.7"), gone=(E("vx100", "10.0.0.4"),))
        assert s.nft.runs[runs:] == [({"10.0.0.7"}, set())]
        assert s.admitted_before_programmed("10.0.0.7")
        assert s.nft.allowed() == {*vteps, "10.0.0.7"}  # no removal inside the interval
        s.clock.advance(GUARD_INTERVAL)  # the interval since the install is over: one run takes all three out
        wait_for("the leaving VTEPs out", lambda: s.nft.allowed() == {"10.0.0.5", "10.0.0.6", "10.0.0.7"}, timeout=2)
        assert s.nft.runs[runs + 1:] == [(set(), {"10.0.0.2", "10.0.0.3", "10.0.0.4"})]
        runs = len(s.nft.runs)
        # the next removal waits a whole interval after that update, a new VTEP right after it does not
        s.batch([add(imet("10.0.0.8", 100))], E("vx100", "10.0.0.8"))
        s.batch([withdraw(imet("10.0.0.5", 100))], gone=(E("vx100", "10.0.0.5"),))
        s.clock.advance(GUARD_INTERVAL / 2)
        s.batch([withdraw(imet("10.0.0.6", 100))], gone=(E("vx100", "10.0.0.6"),))
        assert s.nft.runs[runs:] == [({"10.0.0.8"}, set())]
        s.clock.advance(GUARD_INTERVAL / 2)
        wait_for("the next removal", lambda: len(s.nft.runs) == runs + 2, timeout=2)
        assert s.nft.runs[-1] == (set(), {"10.0.0.5", "10.0.0.6"})
        assert s.nft.allowed() == {"10.0.0.7", "10.0.0.8"}


def test_many_new_vteps_cost_one_nft_run_per_batch_not_one_per_vtep() -> None:
    s = Setup(FakeGobgp([add(imet("10.0.0.2", 100))]))
    with Running(s.agent):
        wait_for("the guard installed", lambda: bool(s.nft.runs))
        # ten batches of three new VTEPs each (two VNIs), all inside one interval: ten runs of three
        for b in range(10):
            vteps = [f"10.0.1.{3 * b + k}" for k in range(3)]
            s.batch([add(imet(v, vni)) for v in vteps for vni in (100, 200)], *(E("vx200", v) for v in vteps))
        assert [added for added, _ in s.nft.runs[1:]] == [{f"10.0.1.{3 * b + k}" for k in range(3)} for b in range(10)]
        assert all(not removed for _, removed in s.nft.runs)
        # one batch with ten new VTEPs (and some known ones): one run
        news = [f"10.0.2.{n}" for n in range(10)]
        s.batch([add(imet(v, 100)) for v in [*news, "10.0.1.0", "10.0.1.1"]], *(E("vx100", v) for v in news))
        assert len(s.nft.runs) == 12 and s.nft.runs[-1] == (set(news), set())
        assert all(s.admitted_before_programmed(v) for v in news)
        s.coalesced_follow()  # it finds the set as it should be: no run
        assert len(s.nft.runs) == 12 and len(s.nft.allowed()) == 41


class UnsettledGobgp(ReconnectingGobgp):
    """A gobgpd whose BGP sessions the test brings down (the agent then keeps its stale entries)."""

    peers_up = True

    def list_peers(self) -> list[tuple[str, int, str]]:
        return [("10.0.0.100", 65000, "ESTABLISHED" if self.peers_up else "ACTIVE")]


def test_a_new_vtep_while_stale_entries_are_kept_leaves_their_vteps_allowed() -> None:
    gobgp = UnsettledGobgp([add(imet("10.0.0.2", 100)), add(imet("10.0.0.3", 100))])
    s = Setup(gobgp)
    with Running(s.agent):
        wait_for("the guard installed", lambda: s.nft.allowed() == {"10.0.0.2", "10.0.0.3"})
        # gobgpd restarted: its table lacks 10.0.0.3 so far, the BGP sessions are not up: 10.0.0.3's entry stays
        gobgp.table, gobgp.peers_up = [add(imet("10.0.0.2", 100))], False
        gobgp.stream.put(None)
        wait_for("second session", lambda: s.agent.session == 2 and s.agent.health.ready)
        assert s.agent.stale_pending_since is not None and E("vx100", "10.0.0.3") in s.kernel.table
        s.batch([add(imet("10.0.0.4", 100))], E("vx100", "10.0.0.4"))
        assert s.nft.runs[-1] == ({"10.0.0.4"}, set()) and s.admitted_before_programmed("10.0.0.4")
        s.coalesced_follow()
        assert s.nft.allowed() == {"10.0.0.2", "10.0.0.3", "10.0.0.4"}  # kept while its stale entry is
        s.clock.advance(CFG.stale_timeout)  # the stale entries go: so does their VTEP
        wait_for("the stale VTEP out", lambda: s.nft.allowed() == {"10.0.0.2", "10.0.0.4"}, timeout=3)
        assert E("vx100", "10.0.0.3") not in s.kernel.table


def test_a_new_vtep_before_the_guard_was_installed_installs_it_whole() -> None:
    """Not reached through the loop (it installs before the first batch); the guard must not be given a
    diff against a set this process never installed (a previous agent's table may hold other sources)."""
    s = Setup(FakeGobgp([]))
    touched = s.agent.rib.apply([add(imet("10.0.0.2", 100)), add(imet("10.0.0.3", 200)), add(imet("10.0.0.2", 200))])
    s.agent._admit_new_vteps(touched)
    assert s.guard.follows == 1 and s.nft.allowed() == {"10.0.0.2", "10.0.0.3"} and not s.agent._guard_due
    s.agent._admit_new_vteps(s.agent.rib.apply([add(imet("10.0.0.4", 100))]))
    assert s.guard.follows == 1 and s.nft.runs[-1] == ({"10.0.0.4"}, set())


def test_a_sessions_table_vteps_are_allowed_before_its_full_sync_programs_them() -> None:
    """At a session's start the guard follows the table (the install, on a fresh agent) before the full
    sync makes the flood entries; on a reconnect a VTEP new in the table is allowed before its entry too."""
    gobgp = ReconnectingGobgp([add(imet("10.0.0.2", 100))])
    setup = Setup(gobgp)
    with Running(setup.agent):
        wait_for("ready", lambda: setup.agent.health.ready)
        assert setup.admitted_before_programmed("10.0.0.2")
        sessions = setup.agent.session
        gobgp.table = [add(imet("10.0.0.2", 100)), add(imet("10.0.0.4", 100))]
        gobgp.stream.put(None)  # the watch ends: the agent reconnects and reads the new table
        wait_for("the new session's flood entry", lambda: setup.agent.session > sessions and E("vx100", "10.0.0.4") in setup.kernel.table)
        assert setup.admitted_before_programmed("10.0.0.4")
        assert "10.0.0.2" in setup.nft.allowed()
