"""Unit tests for agent/reconcile.py: pure plans and the Reconciler against an in-memory kernel.

FakeKernel and MemoryLedger are test doubles of the kernel (vxlan FDB entries and the bridges'
neighbour entries) and of the ledger file that implement the FdbTable / OwnershipStore protocols;
the Reconciler itself is the real one.
"""

from __future__ import annotations

import ipaddress
import logging
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import parse_config
from agent.desired import RibView
from agent.entries import KernelEntry, describe, entry_sort_key
from agent.errors import KernelError
from agent.ownedset import OwnedSet, PackedEntries
from agent.reconcile import FdbTable, OwnershipStore, PackedPlan, Plan, Reconciler, plan_packed, plan_touched
from agent.routes import ImetRoute, MacIpRoute, PathAttrs, RouteDistinguisher, RouteEvent, RouteTarget

from tests.unit.builders import E, FakeKernel, MemoryLedger, N, U


A = E("vx100", "10.0.0.2")
B = E("vx100", "10.0.0.3")
C = E("vx200", "10.0.0.2")
D = E("vx200", "10.0.0.4")
MAC = "aa:bb:cc:dd:ee:01"
M2 = U("vx100", MAC, "10.0.0.2")  # unicast: MAC behind 10.0.0.2
M3 = U("vx100", MAC, "10.0.0.3")  # the same MAC behind 10.0.0.3 (after a move)
MAC2 = "aa:bb:cc:dd:ee:02"
DEVICES = ("vx100", "vx200")
BRIDGES = ("br100", "br200")
N1 = N("br100", "192.168.1.5", MAC)  # the VM's address, at MAC
N1B = N("br100", "192.168.1.5", MAC2)  # the same address, now used by another VM
N2 = N("br100", "2001:db8::5", MAC)
N3 = N("br200", "192.168.1.5", MAC)


# -- the whole-table plan (plan_packed, seen as entries) ------------------------------------------------


def plan_full(desired: set, present: set, owned: set) -> Plan:
    """The whole-table plan written with plain sets of entries: the reference plan_packed is held to."""
    return Plan(add=sorted(desired - present, key=entry_sort_key), remove=sorted((owned & present) - desired, key=entry_sort_key))


def whole_table_plan(desired: set, present: set, owned: set) -> Plan:
    """The agent's whole-table plan (plan_packed) of these entries, as entries."""
    return Plan.of_packed(plan_packed(PackedEntries.of(desired), PackedEntries.of(present), PackedEntries.of(owned)))



def test_whole_table_plan_basic() -> None:
    plan = whole_table_plan(desired={A, B}, present={B, C}, owned={C})
    assert plan.add == [A]
    assert plan.remove == [C]


def test_whole_table_plan_never_removes_foreign_entries() -> None:
    # C is present but not ours: not desired, yet not removed
    assert whole_table_plan(desired=set(), present={C}, owned=set()) == Plan([], [])


def test_whole_table_plan_owned_but_absent_is_not_removed() -> None:
    assert whole_table_plan(desired=set(), present=set(), owned={A}).remove == []


def test_whole_table_plan_desired_and_present_is_not_readded() -> None:
    assert whole_table_plan(desired={A}, present={A}, owned=set()).add == []
    assert whole_table_plan(desired={A}, present={A}, owned={A}) == Plan()


def test_whole_table_plan_is_sorted() -> None:
    plan = whole_table_plan(desired={D, C, B, A}, present=set(), owned=set())
    assert plan.add == [A, B, C, D]
    plan = whole_table_plan(desired=set(), present={D, C, B, A}, owned={D, C, B, A})
    assert plan.remove == [A, B, C, D]


def test_whole_table_plan_flood_and_unicast_entries() -> None:
    plan = whole_table_plan(desired={A, M3}, present={A, M2}, owned={A, M2})
    assert plan == Plan(add=[M3], remove=[M2])


def test_whole_table_plan_sorts_flood_before_unicast_per_device() -> None:
    plan = whole_table_plan(desired={M2, C, A}, present=set(), owned=set())
    assert plan.add == [A, M2, C]  # (device, mac, vtep): the zero MAC sorts first


def test_whole_table_plan_mixed_fdb_and_neighbour_entries_sorted() -> None:
    plan = whole_table_plan(desired={N3, N2, N1, C, M2, A}, present=set(), owned=set())
    # FDB entries first (device, MAC, VTEP), then neighbour entries (bridge, IP with IPv4 before IPv6)
    assert plan.add == [A, M2, C, N1, N2, N3]
    plan = whole_table_plan(desired=set(), present={N3, N2, N1, C, M2, A}, owned={N3, N2, N1, C, M2, A})
    assert plan.remove == [A, M2, C, N1, N2, N3]


def test_whole_table_plan_sorts_addresses_numerically_and_mixed_families() -> None:
    nine, ten, six = E("vx100", "10.0.0.9"), E("vx100", "10.0.0.10"), E("vx100", "2001:db8::1")
    n9, n10 = N("br100", "192.168.0.9", MAC), N("br100", "192.168.0.10", MAC)
    # IPv4Address and IPv6Address do not compare with each other: the sort key must not compare them
    plan = whole_table_plan(desired={six, ten, nine, n10, n9, N2}, present=set(), owned=set())
    assert plan.add == [nine, ten, six, n9, n10, N2]


def test_whole_table_plan_ip_moving_to_another_mac() -> None:
    assert whole_table_plan(desired={N1B}, present={N1}, owned={N1}) == Plan(add=[N1B], remove=[N1])
    # the old binding was someone else's: it is left alone
    assert whole_table_plan(desired={N1B}, present={N1}, owned=set()) == Plan(add=[N1B], remove=[])


def test_plan_bool() -> None:
    assert not Plan()
    assert Plan(add=[A])
    assert Plan(remove=[A])


@given(
    desired=st.sets(st.sampled_from([A, B, C, D])),
    present=st.sets(st.sampled_from([A, B, C, D])),
    owned=st.sets(st.sampled_from([A, B, C, D])),
)
def test_whole_table_plan_properties(desired: set, present: set, owned: set) -> None:
    plan = whole_table_plan(desired, present, owned)
    after = (present | set(plan.add)) - set(plan.remove)
    assert desired <= after
    assert set(plan.remove) <= owned  # only our own entries are ever removed
    assert set(plan.remove) <= present
    assert not set(plan.add) & present
    assert not set(plan.add) & set(plan.remove)
    assert (after - desired) <= (present - owned)  # only foreign leftovers remain


# -- plan_touched ----------------------------------------------------------------------


def test_plan_touched_cases() -> None:
    wanted = {A, C}
    plan = plan_touched([D, C, B, A], wanted.__contains__, owned={B, C})
    assert plan.add == [A]  # wanted, not owned
    assert plan.remove == [B]  # owned, not wanted
    # C: wanted and owned -> nothing; D: neither -> nothing (possibly someone else's)


def test_plan_touched_only_looks_at_touched() -> None:
    plan = plan_touched([], lambda e: True, owned={A})
    assert plan == Plan()
    plan = plan_touched([B], lambda e: e == A, owned={A})
    assert plan == Plan()


def test_plan_touched_is_sorted() -> None:
    plan = plan_touched({D, B, C, A}, lambda e: True, owned=set())
    assert plan.add == [A, B, C, D]


def test_plan_touched_mixed_entries() -> None:
    wanted = {N1B, M3}
    plan = plan_touched({N1, N1B, M2, M3, N2}, wanted.__contains__, owned={N1, M2, N2})
    assert plan.add == [M3, N1B]
    assert plan.remove == [M2, N1, N2]  # sorted: FDB, then neighbours (bridge, IPv4 before IPv6)
    assert plan.remove == sorted(plan.remove, key=entry_sort_key)


# -- Reconciler.full_sync ------------------------------------------------------------------


def test_full_sync_from_empty() -> None:
    kernel, ledger = FakeKernel(), MemoryLedger()
    rec = Reconciler(kernel, ledger, DEVICES)
    plan = rec.full_sync({A, C})
    assert plan.add == [A, C] and plan.remove == []
    assert kernel.table == {A, C}
    assert rec.owned == {A, C}
    assert ledger.stored == {A, C}
    assert (rec.added, rec.removed, rec.errors) == (2, 0, 0)
    assert kernel.reads == [(DEVICES, ())]


def test_full_sync_removes_only_what_it_owns() -> None:
    kernel, ledger = FakeKernel(foreign={B}), MemoryLedger()
    rec = Reconciler(kernel, ledger, DEVICES)
    rec.full_sync({A})
    assert rec.full_sync(set()).remove == [A]
    assert kernel.table == {B}
    assert kernel.foreign_removed == []
    assert rec.owned == set() and ledger.stored == set()


def test_foreign_entry_that_is_desired_is_not_taken_over() -> None:
    kernel, ledger = FakeKernel(foreign={A}), MemoryLedger()
    rec = Reconciler(kernel, ledger, DEVICES)
    plan = rec.full_sync({A})
    assert plan == Plan()  # already present: nothing to do
    assert rec.owned == set()
    rec.full_sync(set())  # no longer desired: still not ours to remove
    assert kernel.table == {A}
    assert kernel.ops("del") == []


def test_restart_with_ledger_does_not_remove_and_readd() -> None:
    kernel = FakeKernel(agent_made={A, B, C})
    ledger = MemoryLedger({A, B, C})
    rec = Reconciler(kernel, ledger, DEVICES)
    assert rec.owned == {A, B, C}
    plan = rec.full_sync({A, B, C})
    assert plan == Plan()
    assert kernel.calls == []
    assert ledger.saves == 0  # nothing changed, nothing written


def test_restart_with_ledger_removes_stale_owned_entries_only() -> None:
    kernel = FakeKernel(foreign={D}, agent_made={A, B})
    ledger = MemoryLedger({A, B})
    rec = Reconciler(kernel, ledger, DEVICES)
    plan = rec.full_sync({A})
    assert plan == Plan(add=[], remove=[B])
    assert kernel.calls == [("del", B)]
    assert kernel.table == {A, D}
    assert ledger.stored == {A}


def test_restart_without_ledger_owns_nothing_and_removes_nothing() -> None:
    kernel = FakeKernel(foreign={A, B})  # made by a previous run whose ledger was lost
    rec = Reconciler(kernel, MemoryLedger(), DEVICES)
    rec.full_sync(set())
    assert kernel.table == {A, B}
    assert kernel.ops("del") == []


def test_owned_entry_that_vanished_is_forgotten_and_readded_if_desired() -> None:
    kernel = FakeKernel()
    ledger = MemoryLedger({A})
    rec = Reconciler(kernel, ledger, DEVICES)
    plan = rec.full_sync({A})
    assert plan.add == [A]
    assert kernel.table == {A}
    assert rec.owned == {A}


def test_owned_entry_that_vanished_is_forgotten_not_removed() -> None:
    kernel = FakeKernel(agent_made={A})
    ledger = MemoryLedger({A})
    rec = Reconciler(kernel, ledger, DEVICES)
    kernel.someone_deletes(A)
    rec.full_sync(set())
    assert kernel.ops("del") == []
    assert rec.owned == set()


def test_owned_entry_that_vanished_is_forgotten_in_the_ledger_too() -> None:
    # A was ours; someone deleted it; the agent forgets it in memory. The ledger must forget it
    # as well, or a later restart believes it owns A again.
    kernel = FakeKernel(agent_made={A})
    ledger = MemoryLedger({A})
    rec = Reconciler(kernel, ledger, DEVICES)
    kernel.someone_deletes(A)
    rec.full_sync(set())
    assert rec.owned == set()
    assert ledger.stored == set()


def test_restart_after_vanished_entry_never_removes_a_foreign_recreation() -> None:
    # Same story, continued: an operator now adds A by hand, then the agent restarts.
    kernel = FakeKernel(agent_made={A})
    ledger = MemoryLedger({A})
    Reconciler(kernel, ledger, DEVICES).full_sync({A})
    kernel.someone_deletes(A)
    Reconciler(kernel, ledger, DEVICES).full_sync(set())  # noticed: A is gone, not ours any more
    kernel.someone_adds(A)  # operator's entry
    Reconciler(kernel, ledger, DEVICES).full_sync(set())  # restart
    assert kernel.foreign_removed == []
    assert A in kernel.table


def test_owned_entries_on_devices_not_read_are_forgotten() -> None:
    kernel = FakeKernel(agent_made={A, C})
    rec = Reconciler(kernel, MemoryLedger({A, C}), ["vx100"])  # vx200 no longer served
    rec.full_sync({A})
    assert kernel.reads == [(("vx100",), ())]
    assert rec.owned == {A}
    assert C in kernel.table


def test_full_sync_repairs_drift() -> None:
    kernel, ledger = FakeKernel(), MemoryLedger()
    rec = Reconciler(kernel, ledger, DEVICES)
    rec.full_sync({A, B})
    kernel.someone_deletes(A)
    plan = rec.full_sync({A, B})
    assert plan.add == [A] and plan.remove == []
    assert kernel.table == {A, B}
    assert rec.owned == {A, B}


def test_full_sync_with_bridges_manages_neighbour_entries() -> None:
    kernel, ledger = FakeKernel(), MemoryLedger()
    rec = Reconciler(kernel, ledger, DEVICES, BRIDGES)
    plan = rec.full_sync({A, M2, N1, N2})
    assert plan.add == [A, M2, N1, N2]
    assert kernel.reads == [(DEVICES, BRIDGES)]
    assert kernel.table == {A, M2, N1, N2}
    assert rec.owned == ledger.stored == {A, M2, N1, N2}
    # the IP is used by another VM now
    plan = rec.full_sync({A, M2, N1B, N2})
    assert plan == Plan(add=[N1B], remove=[N1])
    assert kernel.calls[-2:] == [("del", N1), ("add", N1B)]  # removals first
    assert kernel.table == rec.owned == ledger.stored == {A, M2, N1B, N2}
    assert rec.full_sync({A, M2, N1B, N2}) == Plan()


def test_full_sync_leaves_foreign_neighbour_entries_alone() -> None:
    kernel = FakeKernel(foreign={N1, N3})  # e.g. an operator's static entry, the host's own ARP cache
    rec = Reconciler(kernel, MemoryLedger(), DEVICES, BRIDGES)
    assert rec.full_sync({N1}) == Plan()  # present already: not taken over
    rec.full_sync(set())
    assert kernel.table == {N1, N3}
    assert kernel.ops("del") == [] and rec.owned == set()


def test_owned_neighbour_entries_on_bridges_not_read_are_forgotten() -> None:
    kernel = FakeKernel(agent_made={A, N1, N3})
    ledger = MemoryLedger({A, N1, N3})
    rec = Reconciler(kernel, ledger, DEVICES, ["br100"])  # br200 no longer served
    rec.full_sync({A, N1})
    assert kernel.reads == [(DEVICES, ("br100",))]
    assert rec.owned == ledger.stored == {A, N1}
    assert N3 in kernel.table and kernel.ops("del") == []


def test_reconciler_without_bridges_reads_no_neighbour_entries() -> None:
    kernel = FakeKernel(agent_made={A, N1})
    rec = Reconciler(kernel, MemoryLedger({A, N1}), DEVICES)
    assert rec.bridges == ()
    rec.full_sync({A})
    assert kernel.reads == [(DEVICES, ())]
    assert rec.owned == {A}  # not read, so not known to be there: forgotten, never removed
    assert kernel.ops("del") == []


def test_owned_neighbour_entry_that_vanished_is_forgotten_and_readded() -> None:
    kernel = FakeKernel(agent_made={N1})
    ledger = MemoryLedger({N1})
    rec = Reconciler(kernel, ledger, DEVICES, BRIDGES)
    kernel.someone_deletes(N1)
    assert rec.full_sync({N1}).add == [N1]
    assert kernel.table == rec.owned == ledger.stored == {N1}


# -- KernelError handling ------------------------------------------------------------------


def test_kernel_error_on_one_add_does_not_stop_the_others() -> None:
    kernel, ledger = FakeKernel(), MemoryLedger()
    kernel.fail = {B}
    rec = Reconciler(kernel, ledger, DEVICES)
    plan = rec.full_sync({A, B, C})
    assert plan.add == [A, B, C]
    assert kernel.ops("add") == [A, B, C]
    assert kernel.table == {A, C}
    assert rec.owned == {A, C}
    assert ledger.stored == {A, C}
    assert (rec.added, rec.errors) == (2, 1)
    # the next full sync retries it
    kernel.fail = set()
    assert rec.full_sync({A, B, C}).add == [B]
    assert rec.owned == {A, B, C}


def test_kernel_error_on_one_remove_does_not_stop_the_others() -> None:
    kernel = FakeKernel(agent_made={A, B, C})
    ledger = MemoryLedger({A, B, C})
    kernel.fail = {B}
    rec = Reconciler(kernel, ledger, DEVICES)
    plan = rec.full_sync(set())
    assert plan.remove == [A, B, C]
    assert kernel.ops("del") == [A, B, C]
    assert kernel.table == {B}
    assert rec.owned == {B}  # still ours: it is still there
    assert ledger.stored == {B}
    assert (rec.removed, rec.errors) == (2, 1)
    kernel.fail = set()
    assert rec.full_sync(set()).remove == [B]
    assert kernel.table == set()


def test_kernel_errors_on_both_removes_and_adds_in_one_plan() -> None:
    kernel = FakeKernel(agent_made={A, B})
    kernel.fail = {A, D}
    rec = Reconciler(kernel, MemoryLedger({A, B}), DEVICES)
    rec.full_sync({C, D})
    assert kernel.table == {A, C}
    assert rec.owned == {A, C}
    assert rec.errors == 2


def test_kernel_error_on_a_neighbour_entry_is_logged_with_describe(caplog: pytest.LogCaptureFixture) -> None:
    kernel, ledger = FakeKernel(), MemoryLedger()
    kernel.fail = {N1}
    rec = Reconciler(kernel, ledger, DEVICES, BRIDGES)
    with caplog.at_level(logging.INFO, logger="evpn.agent.reconcile"):
        rec.full_sync({N1, N2})
    assert rec.owned == {N2} and rec.errors == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("event=kernel-error op=add entry=kind=neigh device=br100 ip=192.168.1.5 mac=aa:bb:cc:dd:ee:01 ")
               for m in messages), messages
    assert "event=entry-added kind=neigh device=br100 ip=2001:db8::5 mac=aa:bb:cc:dd:ee:01" in messages


def test_remove_of_entry_already_gone_is_forgotten() -> None:
    kernel = FakeKernel()
    rec = Reconciler(kernel, MemoryLedger(), DEVICES)
    rec.owned = {A}
    plan = rec.sync_touched([A], lambda e: False)  # kernel says it was already gone
    assert plan.remove == [A]
    assert rec.owned == set()


# -- Reconciler.sync_touched ------------------------------------------------------------------


def test_sync_touched_never_reads_the_kernel() -> None:
    kernel, ledger = FakeKernel(), MemoryLedger()
    rec = Reconciler(kernel, ledger, DEVICES)
    rec.sync_touched([A, B], {A}.__contains__)
    assert kernel.reads == []
    assert kernel.calls == [("add", A)]
    assert rec.owned == {A}
    assert ledger.stored == {A}


def test_sync_touched_foreign_entry_left_alone() -> None:
    kernel, ledger = FakeKernel(foreign={A}), MemoryLedger()
    rec = Reconciler(kernel, ledger, DEVICES)
    rec.sync_touched([A], lambda e: True)
    assert kernel.calls == [("add", A)]  # EEXIST: made by someone else
    assert rec.owned == set()
    assert rec.added == 0
    rec.sync_touched([A], lambda e: False)
    assert kernel.ops("del") == []
    assert kernel.table == {A}


def test_sync_touched_empty_plan_does_not_write_ledger() -> None:
    kernel, ledger = FakeKernel(), MemoryLedger()
    rec = Reconciler(kernel, ledger, DEVICES)
    rec.sync_touched([A], lambda e: False)
    assert ledger.saves == 0
    assert kernel.calls == []


def test_ledger_gets_a_snapshot_not_a_live_view() -> None:
    kernel, ledger = FakeKernel(), MemoryLedger()
    rec = Reconciler(kernel, ledger, DEVICES)
    rec.sync_touched([A], lambda e: True)
    rec.sync_touched([B], lambda e: True)
    assert ledger.stored == {A, B}
    assert ledger.saves == 2


def test_test_doubles_implement_the_protocols() -> None:
    kernel: FdbTable = FakeKernel()
    ledger: OwnershipStore = MemoryLedger()
    assert kernel.entries(DEVICES) == set() and kernel.entries(DEVICES, BRIDGES) == set() and ledger.load() == set()


def test_unicast_move_removes_old_and_adds_new() -> None:
    kernel, ledger = FakeKernel(), MemoryLedger()
    rec = Reconciler(kernel, ledger, DEVICES)
    rec.sync_touched([M2], {M2}.__contains__)
    assert kernel.table == {M2}
    plan = rec.sync_touched([M2, M3], {M3}.__contains__)
    assert plan == Plan(add=[M3], remove=[M2])
    assert kernel.calls[-2:] == [("del", M2), ("add", M3)]  # removals first
    assert kernel.table == {M3} and rec.owned == {M3} and ledger.stored == {M3}


def test_sync_touched_ip_move_removes_old_binding_first() -> None:
    kernel, ledger = FakeKernel(), MemoryLedger()
    rec = Reconciler(kernel, ledger, DEVICES, BRIDGES)
    rec.sync_touched([N1, M2], {N1, M2}.__contains__)
    plan = rec.sync_touched([N1, N1B, M2], {N1B, M2}.__contains__)
    assert plan == Plan(add=[N1B], remove=[N1])
    assert kernel.calls[-2:] == [("del", N1), ("add", N1B)]
    assert kernel.reads == []
    assert kernel.table == rec.owned == ledger.stored == {M2, N1B}


# -- describe -----------------------------------------------------------------------------------


@pytest.mark.parametrize("entry, text", [
    (A, "kind=flood device=vx100 mac=00:00:00:00:00:00 vtep=10.0.0.2"),
    (M2, "kind=mac device=vx100 mac=aa:bb:cc:dd:ee:01 vtep=10.0.0.2"),
    (U("vx200", MAC, "2001:db8::1"), "kind=mac device=vx200 mac=aa:bb:cc:dd:ee:01 vtep=2001:db8::1"),
    (N1, "kind=neigh device=br100 ip=192.168.1.5 mac=aa:bb:cc:dd:ee:01"),
    (N2, "kind=neigh device=br100 ip=2001:db8::5 mac=aa:bb:cc:dd:ee:01"),
], ids=["flood", "mac", "mac-ipv6-vtep", "neigh", "neigh-ipv6"])
def test_describe(entry: KernelEntry, text: str) -> None:
    assert describe(entry) == text


def test_describe_is_greppable_key_value() -> None:
    for entry in (A, M2, N1, N2):
        fields = dict(part.split("=", 1) for part in describe(entry).split(" "))
        assert fields["device"] == entry.device and fields["mac"] == entry.mac



# -- with the real RibView --------------------------------------------------------------------


def _imet(vtep: str, vni: int, rd: str | None = None) -> ImetRoute:
    return ImetRoute(
        RouteDistinguisher.parse(rd or f"{vtep}:{vni}"), 0, ipaddress.ip_address(vtep),
        PathAttrs(ipaddress.ip_address(vtep), frozenset({RouteTarget("65000", vni)}), 8), vni, 6,
    )


def test_ribview_and_reconciler_together() -> None:
    cfg = parse_config({"vtep": "10.0.0.1", "route_target_asn": 65000, "vnis": [
        {"vni": 100, "device": "vx100", "bridge": "br100"},
        {"vni": 200, "device": "vx200", "bridge": "br200"},
    ]})
    rib = RibView(cfg)
    kernel = FakeKernel(foreign={E("vx100", "10.0.0.9")})
    ledger = MemoryLedger()
    rec = Reconciler(kernel, ledger, [v.device for v in cfg.vnis])

    rib.replace([RouteEvent(_imet("10.0.0.2", 100)), RouteEvent(_imet("10.0.0.9", 100))])
    rec.full_sync(rib.desired())
    assert kernel.table == {A, E("vx100", "10.0.0.9")}
    assert rec.owned == {A}

    # second RD from the same VTEP, a new VTEP in VNI 200, and both VNI-100 routes withdrawn
    touched = rib.apply([
        RouteEvent(_imet("10.0.0.2", 100, rd="65002:1")),
        RouteEvent(_imet("10.0.0.4", 200)),
        RouteEvent(_imet("10.0.0.2", 100), withdrawn=True),
        RouteEvent(_imet("10.0.0.9", 100), withdrawn=True),
    ])
    rec.sync_touched(touched, rib.wants)
    assert kernel.table == {A, D, E("vx100", "10.0.0.9")}  # foreign one untouched
    assert rec.owned == {A, D}

    touched = rib.apply([RouteEvent(_imet("10.0.0.2", 100, rd="65002:1"), withdrawn=True)])
    rec.sync_touched(touched, rib.wants)
    assert kernel.table == {D, E("vx100", "10.0.0.9")}
    assert ledger.stored == {D}
    assert kernel.foreign_removed == []


def _macip(vtep: str, vni: int, mac: str, seq: int | None, rd: str | None = None, ip: str | None = None) -> MacIpRoute:
    return MacIpRoute(
        RouteDistinguisher.parse(rd or f"{vtep}:{vni}"), 0, mac, ipaddress.ip_address(ip) if ip else None, vni,
        PathAttrs(ipaddress.ip_address(vtep), frozenset({RouteTarget("65000", vni)}), 8, seq),
    )


def test_ribview_and_reconciler_with_mac_mobility() -> None:
    cfg = parse_config({"vtep": "10.0.0.1", "route_target_asn": 65000, "vnis": [
        {"vni": 100, "device": "vx100", "bridge": "br100"},
    ]})
    rib = RibView(cfg)
    kernel, ledger = FakeKernel(), MemoryLedger()
    rec = Reconciler(kernel, ledger, ["vx100"])

    rib.replace([RouteEvent(_imet("10.0.0.2", 100)), RouteEvent(_macip("10.0.0.2", 100, MAC, None))])
    rec.full_sync(rib.desired())
    assert kernel.table == {A, M2}

    # the MAC moves to 10.0.0.3 (higher sequence)
    rec.sync_touched(rib.apply([RouteEvent(_macip("10.0.0.3", 100, MAC, 1))]), rib.wants)
    assert kernel.table == {A, M3} and rec.owned == {A, M3}

    # then it moves here: the local claim outbids both, the remote entry goes
    rec.sync_touched(rib.set_local("vx100", MAC, 2), rib.wants)
    assert kernel.table == {A}
    assert ledger.stored == {A}

    # it leaves this host again; the stale claims come back in sequence order
    rec.sync_touched(rib.set_local("vx100", MAC, None), rib.wants)
    assert kernel.table == {A, M3}

    # a full sync agrees with the incremental result
    assert rec.full_sync(rib.desired()) == Plan()


def test_ribview_and_reconciler_with_arp_suppression() -> None:
    cfg = parse_config({"vtep": "10.0.0.1", "route_target_asn": 65000, "vnis": [
        {"vni": 100, "device": "vx100", "bridge": "br100"},
    ]})
    rib = RibView(cfg)
    kernel, ledger = FakeKernel(), MemoryLedger()
    rec = Reconciler(kernel, ledger, [v.device for v in cfg.vnis], [v.bridge for v in cfg.vnis])

    rib.replace([
        RouteEvent(_imet("10.0.0.2", 100)),
        RouteEvent(_macip("10.0.0.2", 100, MAC, None)),
        RouteEvent(_macip("10.0.0.2", 100, MAC, None, ip="192.168.1.5")),
        RouteEvent(_macip("10.0.0.2", 100, MAC, None, ip="2001:db8::5")),
    ])
    rec.full_sync(rib.desired())
    assert kernel.table == {A, M2, N1, N2}

    # 192.168.1.5 is taken over by a VM (MAC2) behind 10.0.0.3, advertised with a higher sequence
    rec.sync_touched(rib.apply([RouteEvent(_macip("10.0.0.3", 100, MAC2, 1, ip="192.168.1.5"))]), rib.wants)
    assert kernel.table == {A, M2, U("vx100", MAC2, "10.0.0.3"), N1B, N2}

    # the first VM moves here: its FDB entry goes, its remaining IPv6 binding stays
    rec.sync_touched(rib.set_local("vx100", MAC, 5), rib.wants)
    assert kernel.table == {A, U("vx100", MAC2, "10.0.0.3"), N1B, N2}

    # 10.0.0.2 withdraws everything
    rec.sync_touched(rib.apply([
        RouteEvent(_imet("10.0.0.2", 100), withdrawn=True),
        RouteEvent(_macip("10.0.0.2", 100, MAC, None), withdrawn=True),
        RouteEvent(_macip("10.0.0.2", 100, MAC, None, ip="192.168.1.5"), withdrawn=True),
        RouteEvent(_macip("10.0.0.2", 100, MAC, None, ip="2001:db8::5"), withdrawn=True),
    ]), rib.wants)
    assert kernel.table == rec.owned == ledger.stored == {U("vx100", MAC2, "10.0.0.3"), N1B}
    assert rib.remote_neighbours() == {"br100": {"192.168.1.5": MAC2}}
    assert rec.full_sync(rib.desired()) == Plan()


# -- property: the reconciler never touches foreign entries and converges ---------------------

_POOL = [A, B, C, D, E("vx100", "10.0.0.5"), E("vx200", "10.0.0.5"), M2, M3, U("vx200", MAC, "10.0.0.5"), N1, N1B, N2, N3]
_entries = st.sets(st.sampled_from(_POOL))
_step = st.one_of(
    st.tuples(st.just("full"), _entries),
    st.tuples(st.just("touched"), _entries, _entries),  # touched set, desired set
    st.tuples(st.just("someone_adds"), st.sampled_from(_POOL)),
    st.tuples(st.just("someone_deletes"), st.sampled_from(_POOL)),
    st.tuples(st.just("fail"), _entries),
)


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(_step, max_size=25))
def test_reconciler_invariants(steps: list[tuple]) -> None:
    kernel, ledger = FakeKernel(), MemoryLedger()
    rec = Reconciler(kernel, ledger, DEVICES, BRIDGES)
    for step in steps:
        kind = step[0]
        plan = Plan()
        if kind == "full":
            desired = step[1]
            plan = rec.full_sync(desired)
            if not kernel.fail:
                assert desired <= kernel.table
                assert kernel.table - desired <= kernel.foreign  # everything else we made is gone
        elif kind == "touched":
            touched, desired = step[1], step[2]
            plan = rec.sync_touched(touched, desired.__contains__)
            for entry in touched - kernel.fail:
                if entry in desired:
                    # wanted: present, unless it was ours and someone deleted it since the last
                    # full sync (sync_touched does not read the kernel; full_sync repairs that)
                    assert entry in kernel.table or entry in rec.owned
                elif entry not in kernel.foreign:
                    assert entry not in kernel.table  # ours and unwanted: removed
        elif kind == "someone_adds":
            # Someone else adds an entry the agent does not currently own. (Re-creating one the
            # agent still believes it owns, between two full syncs, cannot be told apart from
            # the agent's own entry without reading the kernel: out of scope here.)
            if step[1] not in rec.owned:
                kernel.someone_adds(step[1])
        elif kind == "someone_deletes":
            kernel.someone_deletes(step[1])
        elif kind == "fail":
            kernel.fail = set(step[1])
        assert kernel.foreign_removed == []  # never removes an entry made by someone else
        assert not rec.owned & kernel.foreign  # never claims one either
        if plan:
            assert ledger.stored == rec.owned


class SlowLedger(MemoryLedger):
    """A ledger whose load waits until the test lets it go."""

    def __init__(self, owned: set[KernelEntry]) -> None:
        super().__init__(owned)
        self.release = threading.Event()

    def load(self) -> set[KernelEntry]:
        assert self.release.wait(5)
        return super().load()


def test_a_ledger_read_in_the_background_is_waited_for_on_first_use() -> None:
    ledger = SlowLedger({A, C})
    kernel = FakeKernel({A})
    rec = Reconciler(kernel, ledger, DEVICES, load_in_background=True)  # returns before the ledger is read
    threading.Timer(0.1, ledger.release.set).start()
    plan = rec.full_sync({A, B})  # C was ours and is gone from the kernel: forgotten; B is added
    assert plan.add == [B] and plan.remove == []
    assert rec.owned == ledger.stored == {A, B}


class BrokenLedger(SlowLedger):
    def load(self) -> set[KernelEntry]:
        raise OSError("disk on fire")


@pytest.mark.parametrize("background", [True, False])
def test_a_ledger_read_that_crashes_is_the_callers_never_an_empty_ownership(background: bool) -> None:
    kernel = FakeKernel({A})
    with pytest.raises(OSError, match="disk on fire"):  # owning nothing would leak every entry made before
        Reconciler(kernel, BrokenLedger(set()), DEVICES, load_in_background=background).full_sync({A})
    assert kernel.table == {A}


# -- plan_packed: the reference plan_full on packed keys ---------------------------------------------------------

PACKABLE_AND_NOT = [U(dev, mac, vtep) for dev in ("vx100", "vx200")
                    for mac in ("00:00:00:00:00:00", "aa:bb:cc:dd:ee:01", "02:00:00:00:00:02", "AA:BB:CC:DD:EE:01")
                    for vtep in ("10.0.0.2", "10.0.0.3", "2001:db8::1")]
PACKABLE_AND_NOT += [N(br, ip, mac) for br in ("br100", "br200") for ip in ("192.168.1.5", "10.255.0.1", "2001:db8::5")
                     for mac in ("aa:bb:cc:dd:ee:01", "02:00:00:00:00:02", "0x:00:00:00:00:02")]
some_entries = st.sets(st.sampled_from(PACKABLE_AND_NOT), max_size=30)


@settings(max_examples=400, deadline=None)
@given(desired=some_entries, present=some_entries, owned=some_entries)
def test_plan_packed_is_plan_full(desired: set, present: set, owned: set) -> None:
    """Both forms of the owned side: an OwnedSet's arrays (a full sync) and sets (a ledger sync)."""
    for owned_side in (OwnedSet(owned).packed(), PackedEntries.of(owned)):
        packed = plan_packed(PackedEntries.of(desired), PackedEntries.of(present), owned_side)
        plan = Plan.of_packed(packed)
        assert (plan.adds, plan.removes) == (len(desired - present), len((owned & present) - desired))  # counted unpacked
        expected = plan_full(desired, present, owned & present)
        assert list(map(repr, plan.add)) == list(map(repr, expected.add))  # same entries, same order, same spelling
        assert list(map(repr, plan.remove)) == list(map(repr, expected.remove))
        assert list(map(repr, PackedPlan.entries(packed.vanished))) == list(map(repr, sorted(owned - present, key=entry_sort_key)))


# -- a big plan applied as packed keys = the same outcome as entry by entry ----------------------------------

@settings(max_examples=300, deadline=None)
@given(desired=some_entries, present=some_entries, owned=some_entries, fail=some_entries, remove_stale=st.booleans())
def test_packed_apply_ends_where_the_entry_path_ends(desired: set, present: set, owned: set, fail: set,
                                                     remove_stale: bool) -> None:
    import agent.reconcile as reconcile

    outcomes = []
    for threshold in (0, 1 << 30):  # every plan applied as packed keys / none
        kernel, ledger = FakeKernel(foreign=present - owned, agent_made=present & owned), MemoryLedger(owned)
        kernel.fail = set(fail)
        old, reconcile.PACKED_APPLY_MIN = reconcile.PACKED_APPLY_MIN, threshold
        try:
            rec = Reconciler(kernel, ledger, ("vx100", "vx200"), ("br100", "br200"))
            plan = rec.full_sync(desired, remove_stale=remove_stale)
        finally:
            reconcile.PACKED_APPLY_MIN = old
        outcomes.append((kernel.table, set(rec.owned), ledger.stored, (rec.added, rec.removed, rec.errors),
                         [*map(repr, plan.add)], [*map(repr, plan.remove)]))
    assert outcomes[0] == outcomes[1]


# -- ledger_sync: a restart compared with the ledger, not the kernel ------------------------------------------

def test_a_ledger_sync_matching_the_rib_reads_and_writes_nothing() -> None:
    kernel, ledger = FakeKernel(agent_made={A, M2, N1}), MemoryLedger({A, M2, N1})
    rec = Reconciler(kernel, ledger, DEVICES, BRIDGES)
    plan = rec.ledger_sync({A, M2, N1})
    assert plan is not None and not plan
    assert kernel.reads == [] and kernel.calls == [] and ledger.saves == 0


def test_a_ledger_sync_removes_what_is_owned_and_no_longer_desired() -> None:
    kernel = FakeKernel(agent_made={A, B, N1})
    rec = Reconciler(kernel, MemoryLedger({A, B, N1}), DEVICES, BRIDGES)
    plan = rec.ledger_sync({A})
    assert plan is not None and plan.remove == [B, N1] and plan.add == []
    assert kernel.reads == [] and kernel.table == {A} and rec.owned == {A}


def test_a_ledger_sync_keeps_stale_entries_while_the_rib_fills() -> None:
    kernel = FakeKernel(agent_made={A, B})
    rec = Reconciler(kernel, MemoryLedger({A, B}), DEVICES)
    plan = rec.ledger_sync({A}, remove_stale=False)
    assert plan is not None and not plan and kernel.table == {A, B} and rec.owned == {A, B}


def test_a_ledger_sync_looks_up_what_is_desired_and_not_owned() -> None:
    """A desired entry the agent does not own may be someone else's, in the kernel already (a full sync
    leaves it alone: so does the ledger sync, which asks the kernel about that entry only), or new (added)."""
    new, theirs = U("vx100", MAC2, "10.0.0.2"), N1
    kernel = FakeKernel(foreign={theirs}, agent_made={A})
    rec = Reconciler(kernel, MemoryLedger({A}), DEVICES, BRIDGES)
    plan = rec.ledger_sync({A, new, theirs})
    assert plan is not None and plan.add == [new] and plan.remove == []
    assert kernel.reads == [] and sorted(kernel.lookups, key=entry_sort_key) == [new, theirs]
    assert rec.owned == {A, new} and theirs in kernel.foreign


def test_a_ledger_sync_declines_what_it_cannot_look_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.reconcile as reconcile

    kernel = FakeKernel(agent_made={A})
    rec = Reconciler(kernel, MemoryLedger({A}), DEVICES, BRIDGES)
    assert rec.ledger_sync({A, N2}) is None  # IPv6: does not pack
    monkeypatch.setattr(reconcile, "LEDGER_LOOKUP_MAX", 1)
    assert rec.ledger_sync({A, M2, N1}) is None  # more than LEDGER_LOOKUP_MAX to look up

    class Failing(FakeKernel):
        def present_packed(self, kind: int, device: str, keys: object) -> set[int]:
            raise KernelError("looking up 1 entries: netlink lookup: Operation not supported")

    failing = Failing(agent_made={A})
    assert Reconciler(failing, MemoryLedger({A}), DEVICES).ledger_sync({A, M2}) is None  # a failed lookup
    assert kernel.calls == [] and failing.calls == [] and kernel.reads == []


def test_a_ledger_sync_that_would_add_a_flood_entry_does_nothing_and_says_so() -> None:
    """A flood entry not owned cannot be looked up (the kernel answers with its first remote only):
    only a full sync (a kernel read) may decide, so the ledger sync hands back None and has changed
    nothing, not even the removals of the same plan."""
    kernel = FakeKernel(foreign={B}, agent_made={A, C})
    rec = Reconciler(kernel, MemoryLedger({A, C}), DEVICES)
    assert rec.ledger_sync({A, B}) is None
    assert kernel.calls == [] and kernel.reads == [] and rec.owned == {A, C}
    plan = rec.full_sync({A, B})  # what the caller does then: B is left to its maker
    assert plan.add == [] and plan.remove == [C] and B not in rec.owned


def test_a_ledger_sync_forgets_owned_entries_of_devices_no_longer_served() -> None:
    kernel = FakeKernel(agent_made={A, C, N3})
    rec = Reconciler(kernel, MemoryLedger({A, C, N3}), ["vx100"], ["br100"])
    plan = rec.ledger_sync({A})
    assert plan is not None and not plan
    assert rec.owned == {A} and kernel.table == {A, C, N3}  # forgotten, as a full sync does, never removed


@given(
    desired=st.sets(st.sampled_from([A, B, C, D, M2, N1, N2, N3])),
    owned=st.sets(st.sampled_from([A, B, C, D, M2, N1, N2, N3])),
    foreign=st.sets(st.sampled_from([A, B, C, D, M2, N1, N2, N3])),
    remove_stale=st.booleans(),
)
def test_a_ledger_sync_ends_where_a_full_sync_would_when_the_kernel_holds_the_ledger(
        desired: set, owned: set, foreign: set, remove_stale: bool) -> None:
    """The kernel holds exactly what the ledger says the agent made (plus others' entries): the ledger
    sync, when it acts, brings kernel, owned set and ledger where a full sync brings them, unread."""
    foreign = foreign - owned
    runs = []
    for kind in ("ledger", "full"):
        kernel, ledger = FakeKernel(foreign=foreign, agent_made=owned), MemoryLedger(owned)
        rec = Reconciler(kernel, ledger, DEVICES, BRIDGES)
        plan = rec.ledger_sync(desired, remove_stale) if kind == "ledger" else rec.full_sync(desired, remove_stale)
        if plan is None:
            assert desired - owned and kernel.calls == [] and rec.owned == owned
            return
        runs.append((kernel.table, set(rec.owned), ledger.stored, [*map(repr, plan.remove)], kernel.reads == []))
    assert runs[0][:4] == runs[1][:4]
    assert runs[0][4]  # the ledger sync read nothing


# -- the kernel read made ahead of a full sync ----------------------------------------------------------------

def test_a_full_sync_takes_the_read_made_ahead() -> None:
    kernel = FakeKernel(agent_made={A})
    rec = Reconciler(kernel, MemoryLedger({A}), DEVICES)
    rec.read_ahead()
    kernel.someone_adds(B)  # after the read: not seen by this sync
    assert rec.full_sync({A, B}).add == [B] and len(kernel.reads) == 1
    assert kernel.ops("add") == [B] and B not in rec.owned  # someone else's (the add said EEXIST)
    rec.full_sync({A, B})  # no read ahead: read now
    assert len(kernel.reads) == 2


def test_a_read_made_ahead_too_long_ago_is_made_again(monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.reconcile as reconcile

    kernel = FakeKernel()
    rec = Reconciler(kernel, MemoryLedger(), DEVICES)
    rec.read_ahead()
    monkeypatch.setattr(reconcile, "READ_AHEAD_MAX_AGE", -1.0)
    kernel.someone_adds(B)
    assert rec.full_sync({A, B}).add == [A] and len(kernel.reads) == 2  # read again: B is there


def test_a_failed_read_ahead_is_the_syncs_error_and_a_dropped_one_nobodys() -> None:
    class Broken(FakeKernel):
        def packed_entries(self, devices: object, bridges: object = ()) -> PackedEntries:
            raise KernelError("reading entries of ifindex 7: boom")

    rec = Reconciler(Broken(), MemoryLedger(), DEVICES)
    rec.read_ahead()
    with pytest.raises(KernelError, match="boom"):
        rec.full_sync({A})
    rec.read_ahead()
    rec.drop_read_ahead()  # nobody waits for it: nothing raised
    rec.read_ahead()
    rec.sync_touched({A}, lambda e: True)  # applying anything first waits for (and drops) the read
    assert rec._read_ahead is None


def test_a_packed_apply_cut_short_by_a_netlink_failure_still_stores_what_it_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ownership changed by a packed apply is stored whole by the next flush (run()'s, if the failure ends the
    agent): the entries made on the devices before the failure stay ours after a restart."""
    import agent.reconcile as reconcile
    from agent.netlink_bulk import NetlinkBulkError

    class FailsSecond(FakeKernel):
        packed_calls = 0

        def apply_packed(self, kind: int, device: str, keys: object, delete: bool) -> list:  # type: ignore[override]
            self.packed_calls += 1
            if self.packed_calls == 2:
                raise NetlinkBulkError("netlink receive failed: [Errno 105] No buffer space available")
            return super().apply_packed(kind, device, keys, delete)  # type: ignore[arg-type]

    monkeypatch.setattr(reconcile, "PACKED_APPLY_MIN", 1)
    kernel, ledger = FailsSecond(), MemoryLedger()
    rec = Reconciler(kernel, ledger, DEVICES, ("br100",))
    with pytest.raises(NetlinkBulkError):
        rec.full_sync({A, M2, N1})
    rec.flush()  # what Agent.run's `finally` does
    assert {A, M2} <= kernel.table and ledger.stored == set(rec.owned) == {A, M2}
