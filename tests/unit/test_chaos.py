"""labctl chaos, the pure part: durations and kinds from the command line, the seeded fault scheduler, the
invariants over observed RIBs and FDBs, the summary."""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import replace

import pytest

from agent.entries import FdbEntry, NeighEntry, flood_entry
from labctl.chaos import (
    AGENT_KILL,
    BURST_MACS,
    CONTROLLER_KILL,
    FLAP_SECONDS,
    GOBGPD_KILL,
    KINDS,
    LINK_FLAP,
    MAC_BURST,
    VM_MOVE,
    Fault,
    HostView,
    Layout,
    Observation,
    Scheduler,
    StepResult,
    Summary,
    VmPlace,
    check_control,
    check_controller_union,
    check_fdb_rib,
    check_neighbours_rib,
    check_orphans,
    check_pings,
    control_problems,
    parse_duration,
    parse_kinds,
)
from tests.unit.labctl_builders import imet_event, mac_event

VTEPS = {"h1": "10.0.0.101", "h2": "10.0.0.102", "h3": "10.0.0.103"}
VMS = {"vm1": ("h1", "02:00:00:00:01:01", "192.168.100.11"), "vm2": ("h2", "02:00:00:00:02:02", "192.168.100.22"),
       "vm3": ("h3", "02:00:00:00:03:03", "192.168.100.33"), "vm4": ("h1", "02:00:00:00:01:04", "192.168.100.14")}


def layout(frr: str | None = None) -> Layout:
    return Layout(
        hosts=tuple(VTEPS),
        controllers=("controller",),
        roles={h: frozenset({"zebra", "bgpd"} if h == frr else {"gobgpd", "agent"}) for h in VTEPS},
        placement={vm: host for vm, (host, _, _) in VMS.items()},
        vm_network=dict.fromkeys(VMS, "blue"),
        host_networks=dict.fromkeys(VTEPS, frozenset({"blue"})),
        vm_macs=frozenset(mac for _, mac, _ in VMS.values()),
    )


# -- command line ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [("600", 600), ("90s", 90), ("10m", 600), ("1h", 3600), ("1.5m", 90), (" 45S ", 45)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "10x", "-5", "0", "5 m s"])
def test_bad_durations_name_the_value(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_kinds_keep_their_order_and_refuse_unknown_ones() -> None:
    assert parse_kinds("vm-move, agent-kill") == (AGENT_KILL, VM_MOVE)
    with pytest.raises(ValueError, match="unknown fault kind nap"):
        parse_kinds("agent-kill,nap")
    with pytest.raises(ValueError, match="none given"):
        parse_kinds(" , ")


# -- scheduler ------------------------------------------------------------------------------------


def sequence(seed: int, count: int = 60, kinds: tuple[str, ...] = KINDS, lay: Layout | None = None) -> list[Fault]:
    scheduler = Scheduler(seed, lay or layout(), kinds)
    return [scheduler.next() for _ in range(count)]


def test_a_seed_fixes_the_whole_sequence() -> None:
    assert sequence(7) == sequence(7)
    assert sequence(7) != sequence(8)
    assert [f.step for f in sequence(7, 5)] == [1, 2, 3, 4, 5]


def test_every_kind_comes_up_and_only_the_kinds_asked_for() -> None:
    assert {f.kind for f in sequence(3, 100)} == set(KINDS)
    assert {f.kind for f in sequence(3, 50, (LINK_FLAP, MAC_BURST))} == {LINK_FLAP, MAC_BURST}


def test_targets_fit_their_kind() -> None:
    lay = layout(frr="h3")
    for f in sequence(11, 200, lay=lay):
        if f.kind == AGENT_KILL:
            assert f.target in ("h1", "h2")  # h3 runs FRR: no agent there
        elif f.kind == GOBGPD_KILL:
            assert f.target in ("h1", "h2")
        elif f.kind == CONTROLLER_KILL:
            assert f.target == "controller"
        elif f.kind == LINK_FLAP:
            assert f.target in (*VTEPS, "controller") and FLAP_SECONDS[0] <= f.down_for <= FLAP_SECONDS[1]
        elif f.kind == MAC_BURST:
            assert f.target in VMS and BURST_MACS[0] <= len(f.macs) <= BURST_MACS[1]


def test_moves_follow_the_layout_spread_over_the_vms_and_never_empty_a_host() -> None:
    two_each = replace(layout(), placement={f"vm{h}{i}": f"h{h}" for h in (1, 2, 3) for i in (1, 2)},
                       vm_network={f"vm{h}{i}": "blue" for h in (1, 2, 3) for i in (1, 2)})
    scheduler = Scheduler(5, two_each, (VM_MOVE,))
    where = dict(two_each.placement)
    for _ in range(60):
        f = scheduler.next()
        assert f.to != where[f.target] and f.to in VTEPS
        assert list(where.values()).count(where[f.target]) >= 2, f"{f.describe()} empties {where[f.target]}"
        where[f.target] = f.to
        assert dict(scheduler.layout.placement) == where
    counts = Counter(scheduler.moves.values())
    assert max(scheduler.moves.values()) - min(scheduler.moves.values()) <= 1, counts  # least moved first
    one_each = replace(layout(), placement={"vm1": "h1", "vm2": "h2", "vm3": "h3"})
    assert VM_MOVE not in Scheduler(1, one_each).possible()  # one VM per host: none may leave


def test_burst_macs_are_fresh_local_unicast_macs() -> None:
    macs = [m for f in sequence(2, 200, (MAC_BURST,)) for m in f.macs]
    assert len(set(macs)) == len(macs)
    assert not set(macs) & layout().vm_macs
    for mac in macs:
        first = int(mac.split(":")[0], 16)
        assert first & 0x02 and not first & 0x01, mac


def test_a_lab_without_targets_says_so() -> None:
    lay = replace(layout(), controllers=())
    with pytest.raises(ValueError, match="controller-kill"):
        Scheduler(1, lay, (CONTROLLER_KILL,)).next()
    one_host = replace(layout(), hosts=("h1",), placement={"vm1": "h1"})
    assert VM_MOVE not in Scheduler(1, one_host).possible()


# -- invariants ---------------------------------------------------------------------------------------


def host_rib(name: str) -> tuple:
    """What a host's RIB holds when all is well: every host's Type-3 and every VM's MAC and MAC/IP route."""
    events = []
    for host, vtep in VTEPS.items():
        events.append(imet_event(vtep, 100, local=host == name))
    for host, mac, ip in VMS.values():
        events += [mac_event(VTEPS[host], 100, mac, local=host == name), mac_event(VTEPS[host], 100, mac, ip, local=host == name)]
    return tuple(events)


def host_fdb(name: str) -> frozenset[FdbEntry]:
    flood = {flood_entry("vxlan100", ipaddress.ip_address(v)) for h, v in VTEPS.items() if h != name}
    unicast = {FdbEntry("vxlan100", mac, ipaddress.ip_address(VTEPS[h])) for h, mac, _ in VMS.values() if h != name}
    return frozenset(flood | unicast)


def host_neighbours(name: str) -> frozenset[NeighEntry]:
    return frozenset(NeighEntry("br0", ipaddress.ip_address(ip), mac) for h, mac, ip in VMS.values() if h != name)


def healthy() -> Observation:
    hosts = tuple(HostView(h, v, ((100, "vxlan100", "br0"),), "ESTABLISHED", True, host_rib(h), host_fdb(h),
                           frozenset(f"100/{mac}" for hh, mac, _ in VMS.values() if hh == h),
                           frozenset(ip for hh, _, ip in VMS.values() if hh == h), host_neighbours(h)) for h, v in VTEPS.items())
    controller = tuple(replace(e, local=False) for e in host_rib("none"))
    vms = tuple(VmPlace(n, mac, ip, 100, VTEPS[h]) for n, (h, mac, ip) in VMS.items())
    return Observation(hosts, controller, vms, (("vm1", "vm2", True),))


def with_host(obs: Observation, name: str, **changes: object) -> Observation:
    return replace(obs, hosts=tuple(replace(h, **changes) if h.name == name else h for h in obs.hosts))


def test_a_healthy_lab_breaks_nothing() -> None:
    assert control_problems(healthy()) == [] and check_pings(healthy()) == []


def test_sessions_readiness_and_readable_ribs() -> None:
    obs = with_host(healthy(), "h2", session="ACTIVE", ready=False)
    assert check_control(obs) == ["h2: session ACTIVE", "h2: control plane not ready"]
    assert check_control(replace(with_host(healthy(), "h3", rib=None), controller_rib=None)) == ["h3: RIB unreadable", "controller: RIB unreadable"]
    assert control_problems(obs) == check_control(obs)  # nothing else is judged while the control plane is down


def test_fdb_must_equal_rib_both_ways() -> None:
    obs = healthy()
    h1 = obs.hosts[0]
    missing = next(e for e in h1.fdb if e.mac == VMS["vm2"][1])
    assert "FDB and RIB differ on 02:00:00:00:02:02@10.0.0.102" in check_fdb_rib(with_host(obs, "h1", fdb=h1.fdb - {missing}))[0]
    stray = FdbEntry("vxlan100", "02:aa:00:00:00:01", ipaddress.ip_address("10.0.0.103"))
    assert "02:aa:00:00:00:01@10.0.0.103" in check_fdb_rib(with_host(obs, "h1", fdb=h1.fdb | {stray}))[0]
    extra_flood = flood_entry("vxlan100", ipaddress.ip_address("10.0.0.109"))
    assert "floods to 10.0.0.102, 10.0.0.103, 10.0.0.109" in check_fdb_rib(with_host(obs, "h1", fdb=h1.fdb | {extra_flood}))[0]


def test_a_local_winner_has_no_vxlan_entry() -> None:
    obs = healthy()
    # vm2's MAC also appears behind h1 (it moved there): h1 holds it locally, no entry towards h2 wanted
    h1 = obs.hosts[0]
    fdb = frozenset(e for e in h1.fdb if e.mac != VMS["vm2"][1])
    assert check_fdb_rib(with_host(obs, "h1", fdb=fdb, local=h1.local | {f"100/{VMS['vm2'][1]}"})) == []


def test_neighbours_must_equal_the_rib_addresses() -> None:
    obs = healthy()
    h2 = obs.hosts[1]
    gone = next(n for n in h2.neighbours if n.mac == VMS["vm1"][1])
    assert check_neighbours_rib(with_host(obs, "h2", neighbours=h2.neighbours - {gone})) == [
        "h2 br0: neighbours and RIB differ on 192.168.100.11=02:00:00:00:01:01"]
    stale = NeighEntry("br0", ipaddress.ip_address("192.168.100.11"), "02:00:00:00:09:09")
    assert "192.168.100.11=02:00:00:00:09:09" in check_neighbours_rib(with_host(obs, "h2", neighbours=h2.neighbours - {gone} | {stale}))[0]
    igmp = NeighEntry("br0", ipaddress.ip_address("224.0.0.22"), "01:00:5e:00:00:16")  # the kernel's multicast entry
    assert check_neighbours_rib(with_host(obs, "h2", neighbours=h2.neighbours | {igmp})) == []
    # a host whose kernel learns neighbours itself (FRR) is not judged on them
    assert check_neighbours_rib(with_host(obs, "h2", neighbours=None)) == []


def test_an_address_claimed_twice_goes_to_the_higher_sequence_and_never_a_local_one() -> None:
    obs = healthy()
    h3 = obs.hosts[2]
    # vm1 moved h1 -> h2 with sequence 1, h1's old MAC/IP route still there: h3 answers with the winner's MAC
    newer = mac_event("10.0.0.102", 100, "02:00:00:00:01:01", "192.168.100.11", seq=1)
    renamed = mac_event("10.0.0.101", 100, "02:00:00:00:07:07", "192.168.100.11", seq=0)
    rib = (*h3.rib, newer, renamed)
    assert check_neighbours_rib(with_host(obs, "h3", rib=rib)) == []
    # the address is local on h1: no entry for it there whatever remote routes say
    h1 = obs.hosts[0]
    assert check_neighbours_rib(with_host(obs, "h1", rib=(*h1.rib, mac_event("10.0.0.103", 100, "02:00:00:00:07:07", "192.168.100.11", seq=5)))) == []


def test_controller_rib_is_the_union_of_what_hosts_originate() -> None:
    obs = healthy()
    stale = mac_event("10.0.0.102", 100, "02:bb:00:00:00:02")
    problems = check_controller_union(replace(obs, controller_rib=(*obs.controller_rib, stale)))
    assert problems[0].startswith("controller has routes no host originates") and "02:bb:00:00:00:02" in problems[0]
    assert all(p.endswith("missing ('macip', '10.0.0.102:100', 0, '02:bb:00:00:00:02', '')") for p in problems[1:])
    lost = tuple(e for e in obs.controller_rib if not (e.route.key[0] == "imet" and "10.0.0.103" in e.route.key[1]))
    assert "controller lacks routes hosts originate" in check_controller_union(replace(obs, controller_rib=lost))[0]


def test_a_second_controller_must_hold_the_same_routes_as_the_first() -> None:
    obs = healthy()
    assert check_controller_union(replace(obs, other_controllers=(("controller2", obs.controller_rib),))) == []
    behind = obs.controller_rib[:-1]
    problems = check_controller_union(replace(obs, other_controllers=(("controller2", behind),)))
    assert len(problems) == 1 and problems[0].startswith("controller controller2's RIB differs from the first controller's: extra none, missing")
    assert check_controller_union(replace(obs, other_controllers=(("controller2", None),))) == ["controller controller2: RIB unreadable"]


def test_orphans_are_routes_no_vm_or_live_host_explains() -> None:
    obs = healthy()
    unknown = mac_event("10.0.0.101", 100, "02:cc:00:00:00:01")
    moved_away = mac_event("10.0.0.103", 100, VMS["vm1"][1])
    wrong_ip = mac_event("10.0.0.101", 100, VMS["vm1"][1], "192.168.100.99")
    dead = imet_event("10.0.0.109", 100)
    problems = check_orphans(replace(obs, controller_rib=(*obs.controller_rib, unknown, moved_away, wrong_ip, dead)))
    assert problems == [
        "Type-2 02:cc:00:00:00:01 (vni 100) at 10.0.0.101: no VM has that MAC",
        "Type-2 02:00:00:00:01:01 (vm1) at 10.0.0.103: it lives behind 10.0.0.101",
        "Type-2 02:00:00:00:01:01 (vm1) with 192.168.100.99: its address is 192.168.100.11",
        "Type-3 of 10.0.0.109, no live host",
    ]


def test_pings_name_the_pairs_that_failed() -> None:
    obs = replace(healthy(), pings=(("vm1", "vm2", True), ("vm1", "vm3", False)))
    assert check_pings(obs) == ["no ping reply: vm1->vm3"]


# -- summary ------------------------------------------------------------------------------------------


def test_summary_worst_figures_by_kind_and_failures() -> None:
    steps = [
        StepResult(Fault(1, AGENT_KILL, "h1"), 0.5, 0, "vm2 -> vm1"),
        StepResult(Fault(2, LINK_FLAP, "h2", down_for=3.0), 4.0, 2500, "vm1 -> vm2"),
        StepResult(Fault(3, AGENT_KILL, "h2"), 0.7, 10, "vm1 -> vm2"),
    ]
    summary = Summary(42, 600, KINDS, steps, 30.0)
    assert summary.ok and summary.by_kind() == {AGENT_KILL: (2, 0), LINK_FLAP: (1, 0)}
    assert summary.worst_convergence().fault.step == 2 and summary.worst_convergence(AGENT_KILL).fault.step == 3
    assert summary.worst_loss().lost_ms == 2500
    assert summary.headline().startswith("seed 42: 3 of 3 faults survived in 30s; worst convergence 4.00s (step 2, link of h2 down 3.0s)")
    summary.steps.append(StepResult(Fault(4, VM_MOVE, "vm1", to="h3"), None, None, "vm3 -> vm1", ("h1: session IDLE",)))
    assert not summary.ok and summary.by_kind()[VM_MOVE] == (0, 1)
    assert "FAILED step 4 (move vm1 to h3): h1: session IDLE" in summary.headline()


def test_the_printed_summary_names_the_failed_step_and_its_seed() -> None:
    from labctl import cli

    summary = Summary(99, 60, KINDS, [StepResult(Fault(1, AGENT_KILL, "h1"), 0.5, 0, "vm2 -> vm1"),
                                      StepResult(Fault(2, MAC_BURST, "vm2", macs=("02:aa:00:00:00:01",)), None, None, "vm3 -> vm1",
                                                 ("controller has routes no host originates: x",))], 12.0)
    with cli.console.capture() as captured:
        cli.render_chaos(summary, "t")
    text = captured.get()
    assert "seed 99" in text and "agent-kill" in text and "mac-burst" in text
    assert "FAILED step 2 (vm2 MAC changed 1 times and back), seed 99: controller has routes no host originates: x" in text
    assert "labctl chaos --seed 99" in text
