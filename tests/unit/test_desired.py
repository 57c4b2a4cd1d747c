"""Unit tests for agent/desired.py: classify() and RibView bookkeeping."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.codec import decode_path, encode_imet
from agent.config import AgentConfig, parse_config
from agent.desired import FloodEntry, RibView, Verdict, classify
from agent.routes import (
    ENCAP_VXLAN,
    PMSI_INGRESS_REPLICATION,
    EvpnRoute,
    ImetRoute,
    MacIpRoute,
    PathAttrs,
    PrefixRoute,
    RouteDistinguisher,
    RouteEvent,
    RouteTarget,
)

ip = ipaddress.ip_address
OWN = "10.0.0.1"


def make_cfg(seed: bool = False, **extra: Any) -> AgentConfig:
    raw: dict[str, Any] = {
        "vtep": OWN,
        "route_target_asn": 65000,
        "seed_prefix_vteps": seed,
        "vnis": [
            {"vni": 100, "device": "vx100", "bridge": "br100"},
            {"vni": 200, "device": "vx200", "bridge": "br200"},
        ],
    }
    raw.update(extra)
    return parse_config(raw)


CFG = make_cfg()
SEED_CFG = make_cfg(seed=True)


def attrs(next_hop: str = "10.0.0.2", rts: tuple[str, ...] = ("65000:100",), encap: int | None = ENCAP_VXLAN) -> PathAttrs:
    return PathAttrs(ip(next_hop), frozenset(RouteTarget.parse(r) for r in rts), encap)


def imet(vtep: str = "10.0.0.2", vni: int | None = 100, *, rd: str | None = None, etag: int = 0,
         rts: tuple[str, ...] | None = None, encap: int | None = ENCAP_VXLAN,
         pmsi_type: int | None = PMSI_INGRESS_REPLICATION) -> ImetRoute:
    if rts is None:
        rts = (f"65000:{vni}",) if vni else ()
    return ImetRoute(
        rd=RouteDistinguisher.parse(rd or f"{vtep}:{vni or 1}"),
        ethernet_tag=etag,
        originator=ip(vtep),
        attrs=attrs(vtep, rts, encap),
        pmsi_vni=vni,
        pmsi_type=pmsi_type,
    )


def prefix(net: str = "10.0.0.5/32", label: int = 100, *, rts: tuple[str, ...] = (), rd: str = "10.0.0.5:1") -> PrefixRoute:
    return PrefixRoute(RouteDistinguisher.parse(rd), 0, ipaddress.ip_network(net), label, attrs("10.0.0.5", rts))


def macip(next_hop: str = "10.0.0.2", vni: int | None = 100) -> MacIpRoute:
    return MacIpRoute(RouteDistinguisher.parse(f"{next_hop}:1"), 0, "aa:bb:cc:dd:ee:ff", None, vni, attrs(next_hop, (f"65000:{vni}",)))


def add(route: EvpnRoute) -> RouteEvent:
    return RouteEvent(route)


def withdraw(route: EvpnRoute) -> RouteEvent:
    return RouteEvent(route, withdrawn=True)


def E(device: str, vtep: str) -> FloodEntry:
    return FloodEntry(device, ip(vtep))


# -- classify --------------------------------------------------------------------------


def test_classify_vni_from_pmsi_label() -> None:
    v = classify(imet(vni=200), CFG)
    assert v == Verdict(CFG.vni(200), "", ip("10.0.0.2"))


def test_classify_pmsi_label_wins_over_ethernet_tag() -> None:
    v = classify(imet(vni=100, etag=200, rts=()), CFG)
    assert v.vni is CFG.vni(100)


def test_classify_vni_from_ethernet_tag() -> None:
    v = classify(imet(vni=None, etag=200, rts=()), CFG)
    assert v.vni is CFG.vni(200)
    assert v.vtep == ip("10.0.0.2")


def test_classify_vni_from_unique_route_target() -> None:
    v = classify(imet(vni=None, rts=("65000:200", "65099:1")), CFG)
    assert v.vni is CFG.vni(200)


def test_classify_no_vni_and_ambiguous_route_targets() -> None:
    v = classify(imet(vni=None, rts=("65000:100", "65000:200")), CFG)
    assert v.vni is None and v.reason == "no single served VNI matches its route targets"
    assert v.vtep == ip("10.0.0.2")


def test_classify_no_vni_and_no_route_targets() -> None:
    v = classify(imet(vni=None, rts=()), CFG)
    assert v.vni is None and v.reason == "no single served VNI matches its route targets"


def test_classify_route_target_matching_two_vnis_sharing_an_rt() -> None:
    cfg = parse_config({
        "vtep": OWN,
        "vnis": [
            {"vni": 100, "device": "vx100", "bridge": "b", "route_targets": ["65000:1"]},
            {"vni": 200, "device": "vx200", "bridge": "b", "route_targets": ["65000:1"]},
        ],
    })
    assert classify(imet(vni=None, rts=("65000:1",)), cfg).vni is None
    # the VNI carried by the route settles it
    assert classify(imet(vni=200, rts=("65000:1",)), cfg).vni is cfg.vni(200)


def test_classify_carried_vni_not_served() -> None:
    v = classify(imet(vni=999, rts=("65000:100",)), CFG)
    assert v.vni is None and v.reason == "VNI 999 not served"


def test_classify_carried_vni_not_served_is_not_rescued_by_ethernet_tag() -> None:
    # The route says its VNI is 999 (PMSI label, RFC 8365 5.1.3). classify's contract is
    # "PMSI label ..., *else* a non-zero Ethernet tag": the tag is a fallback for routes that
    # carry no VNI. Programming this VTEP into VNI 100 would send VNI-100 BUM traffic to a VTEP
    # that asked for VNI 999.
    v = classify(imet(vni=999, etag=100, rts=()), CFG)
    assert v.vni is None
    assert v.reason == "VNI 999 not served"


def test_classify_route_target_not_imported() -> None:
    v = classify(imet(vni=100, rts=("65000:200",)), CFG)
    assert v.vni is None
    assert v.reason == "route targets 65000:200 not imported by VNI 100"
    assert v.vtep == ip("10.0.0.2")


def test_classify_not_imported_reason_lists_sorted_rts() -> None:
    v = classify(imet(vni=100, rts=("65001:9", "65000:200")), CFG)
    assert v.reason == "route targets 65000:200,65001:9 not imported by VNI 100"


def test_classify_one_imported_rt_among_others_is_enough() -> None:
    assert classify(imet(vni=100, rts=("65000:100", "65099:5")), CFG).vni is CFG.vni(100)


def test_classify_route_without_rts_matched_by_vni_alone() -> None:
    assert classify(imet(vni=100, rts=()), CFG).vni is CFG.vni(100)


def test_classify_own_route() -> None:
    v = classify(imet(vtep=OWN, vni=100), CFG)
    assert v == Verdict(None, "own route", ip(OWN))


def test_classify_own_route_even_if_otherwise_invalid_vni() -> None:
    assert classify(imet(vtep=OWN, vni=999), CFG).reason == "own route"


@pytest.mark.parametrize("encap", [0, 1, 7, 10, 13])
def test_classify_non_vxlan_encapsulation(encap: int) -> None:
    v = classify(imet(vni=100, encap=encap), CFG)
    assert v.vni is None and v.reason == f"encapsulation {encap} is not VXLAN"


def test_classify_missing_encapsulation_is_accepted() -> None:
    assert classify(imet(vni=100, encap=None), CFG).vni is CFG.vni(100)


@pytest.mark.parametrize("pmsi_type", [0, 3, 5, 7])
def test_classify_non_ingress_replication_pmsi(pmsi_type: int) -> None:
    v = classify(imet(vni=100, pmsi_type=pmsi_type), CFG)
    assert v.vni is None and "is not ingress replication" in v.reason


def test_classify_imet_without_pmsi_attribute() -> None:
    assert classify(imet(vni=None, pmsi_type=None, rts=("65000:100",)), CFG).vni is CFG.vni(100)


@pytest.mark.parametrize("vtep", ["0.0.0.0", "127.0.0.1", "224.0.0.5", "239.1.1.1", "2001:db8::1", "::"])
def test_classify_unusable_vtep(vtep: str) -> None:
    route = ImetRoute(RouteDistinguisher.parse("10.0.0.2:100"), 0, ip(vtep), attrs("10.0.0.2"), 100, 6)
    v = classify(route, CFG)
    assert v.vni is None and "is not a usable unicast IPv4 address" in v.reason


def test_classify_type5_disabled() -> None:
    v = classify(prefix(), CFG)
    assert v.vni is None and v.reason == "type-5 route (seed VTEP form not enabled)"


def test_classify_type5_host_route() -> None:
    v = classify(prefix("10.0.0.5/32", 200), SEED_CFG)
    assert v.vni is SEED_CFG.vni(200)
    assert v.vtep == ip("10.0.0.5")


@pytest.mark.parametrize("net", ["10.0.0.0/24", "10.0.0.4/31", "0.0.0.0/0"])
def test_classify_type5_only_host_routes(net: str) -> None:
    v = classify(prefix(net), SEED_CFG)
    assert v.vni is None and v.reason == f"type-5 prefix {ipaddress.ip_network(net)} is not a host route"


def test_classify_type5_ipv6_host_route_is_not_a_vtep() -> None:
    v = classify(prefix("2001:db8::5/128"), SEED_CFG)
    assert v.vni is None and "not a usable unicast IPv4" in v.reason


def test_classify_type5_own_vtep() -> None:
    assert classify(prefix(f"{OWN}/32"), SEED_CFG).reason == "own route"


def test_classify_type5_label_zero_single_vni_defaults_to_it() -> None:
    cfg = parse_config({"vtep": OWN, "route_target_asn": 65000, "seed_prefix_vteps": True,
                        "vnis": [{"vni": 100, "device": "vx100", "bridge": "br"}]})
    assert classify(prefix(label=0), cfg).vni is cfg.vni(100)


def test_classify_type5_label_zero_several_vnis_uses_route_targets() -> None:
    assert classify(prefix(label=0), SEED_CFG).vni is None
    assert classify(prefix(label=0, rts=("65000:200",)), SEED_CFG).vni is SEED_CFG.vni(200)


def test_classify_type5_label_not_served() -> None:
    assert classify(prefix(label=999), SEED_CFG).reason == "VNI 999 not served"


def test_classify_macip_uses_next_hop_and_label() -> None:
    v = classify(macip("10.0.0.7", 200), CFG)
    assert v.vni is CFG.vni(200) and v.vtep == ip("10.0.0.7")


def test_classify_decoded_remote_imet() -> None:
    # end to end through the real codec: a remote host's advertisement is accepted ...
    remote = encode_imet(RouteDistinguisher.parse("10.0.0.2:100"), ip("10.0.0.2"), 100, [RouteTarget.parse("65000:100")])
    event = decode_path(remote)
    assert event is not None
    assert classify(event.route, CFG).vni is CFG.vni(100)
    # ... and our own advertisement is recognised as such
    own = decode_path(encode_imet(CFG.vnis[0].rd, CFG.vtep, 100, CFG.vnis[0].export_rts))
    assert own is not None and classify(own.route, CFG).reason == "own route"


# -- RibView ---------------------------------------------------------------------------


def test_ribview_add_and_withdraw() -> None:
    rib = RibView(CFG)
    r = imet("10.0.0.2", 100)
    assert rib.apply([add(r)]) == {E("vx100", "10.0.0.2")}
    assert rib.desired() == {E("vx100", "10.0.0.2")}
    assert rib.wants(E("vx100", "10.0.0.2"))
    assert not rib.wants(E("vx200", "10.0.0.2"))
    assert len(rib) == 1
    assert rib.apply([withdraw(r)]) == {E("vx100", "10.0.0.2")}
    assert rib.desired() == set()
    assert not rib.wants(E("vx100", "10.0.0.2"))
    assert len(rib) == 0


def test_ribview_withdraw_matches_by_key_not_attributes() -> None:
    rib = RibView(CFG)
    r = imet("10.0.0.2", 100)
    rib.apply([add(r)])
    # what gobgp sends for a withdrawal: same NLRI, no next hop / attributes
    gone = ImetRoute(r.rd, r.ethernet_tag, r.originator, PathAttrs(ipaddress.IPv4Address(0)))
    assert rib.apply([withdraw(gone)]) == {E("vx100", "10.0.0.2")}
    assert rib.desired() == set()


def test_ribview_second_rd_same_vtep_is_refcounted() -> None:
    rib = RibView(CFG)
    a = imet("10.0.0.2", 100, rd="10.0.0.2:100")
    b = imet("10.0.0.2", 100, rd="65002:100")
    entry = E("vx100", "10.0.0.2")
    assert rib.apply([add(a)]) == {entry}
    assert rib.apply([add(b)]) == set()  # already desired: nothing changes
    assert len(rib) == 2
    assert rib.apply([withdraw(a)]) == set()  # b still asks for it
    assert rib.desired() == {entry}
    assert rib.apply([withdraw(b)]) == {entry}
    assert rib.desired() == set()


def test_ribview_withdraw_order_reversed() -> None:
    rib = RibView(CFG)
    a = imet("10.0.0.2", 100, rd="10.0.0.2:100")
    b = imet("10.0.0.2", 100, rd="65002:100")
    rib.apply([add(a), add(b)])
    assert rib.apply([withdraw(b)]) == set()
    assert rib.apply([withdraw(a)]) == {E("vx100", "10.0.0.2")}


def test_ribview_update_changing_vni() -> None:
    rib = RibView(CFG)
    rd = "10.0.0.2:7"
    rib.apply([add(imet("10.0.0.2", 100, rd=rd))])
    touched = rib.apply([add(imet("10.0.0.2", 200, rd=rd))])  # same key, new VNI
    assert touched == {E("vx100", "10.0.0.2"), E("vx200", "10.0.0.2")}
    assert rib.desired() == {E("vx200", "10.0.0.2")}
    assert len(rib) == 1
    assert rib.apply([withdraw(imet("10.0.0.2", 200, rd=rd))]) == {E("vx200", "10.0.0.2")}
    assert rib.desired() == set()


def test_ribview_update_changing_vni_while_other_route_keeps_old_entry() -> None:
    rib = RibView(CFG)
    rib.apply([add(imet("10.0.0.2", 100, rd="10.0.0.2:7")), add(imet("10.0.0.2", 100, rd="10.0.0.2:8"))])
    touched = rib.apply([add(imet("10.0.0.2", 200, rd="10.0.0.2:7"))])
    assert touched == {E("vx200", "10.0.0.2")}  # vx100 is still wanted by the :8 route
    assert rib.desired() == {E("vx100", "10.0.0.2"), E("vx200", "10.0.0.2")}


def test_ribview_update_that_becomes_ignored() -> None:
    rib = RibView(CFG)
    rib.apply([add(imet("10.0.0.2", 100, rd="10.0.0.2:7"))])
    touched = rib.apply([add(imet("10.0.0.2", 100, rd="10.0.0.2:7", rts=("65000:200",)))])
    assert touched == {E("vx100", "10.0.0.2")}
    assert rib.desired() == set()
    assert len(rib) == 0
    assert rib.ignored["route targets 65000:200 not imported by VNI 100"] == 1


def test_ribview_reannouncement_keeps_desired() -> None:
    rib = RibView(CFG)
    r = imet("10.0.0.2", 100)
    rib.apply([add(r)])
    rib.apply([add(r)])
    assert rib.desired() == {E("vx100", "10.0.0.2")}
    assert len(rib) == 1


def test_ribview_withdraw_unknown_route_is_noop() -> None:
    rib = RibView(CFG)
    rib.apply([add(imet("10.0.0.2", 100))])
    assert rib.apply([withdraw(imet("10.0.0.3", 100))]) == set()
    assert rib.desired() == {E("vx100", "10.0.0.2")}


def test_ribview_add_then_withdraw_in_one_batch() -> None:
    rib = RibView(CFG)
    r = imet("10.0.0.2", 100)
    touched = rib.apply([add(r), withdraw(r)])
    assert rib.desired() == set()
    assert E("vx100", "10.0.0.2") in touched  # may have changed: the reconciler re-checks it


def test_ribview_ignored_counters() -> None:
    rib = RibView(CFG)
    touched = rib.apply([
        add(imet(OWN, 100)),  # own: silently skipped
        add(imet("10.0.0.2", 999, rd="10.0.0.2:1")),
        add(imet("10.0.0.3", 999, rd="10.0.0.3:1")),
        add(imet("10.0.0.4", 100, encap=10)),
        add(prefix()),  # seed form not enabled
        add(macip()),  # Type-2 is not part of the flood list
    ])
    assert touched == set()
    assert rib.desired() == set()
    assert len(rib) == 0
    assert rib.ignored == {
        "VNI 999 not served": 2,
        "encapsulation 10 is not VXLAN": 1,
        "type-5 route (seed VTEP form not enabled)": 1,
    }
    assert "own route" not in rib.ignored


def test_ribview_macip_never_becomes_a_flood_entry() -> None:
    rib = RibView(CFG)
    assert rib.apply([add(macip("10.0.0.7", 100))]) == set()
    assert rib.apply([withdraw(macip("10.0.0.7", 100))]) == set()
    assert rib.ignored == {}


def test_ribview_type5_seed_form() -> None:
    rib = RibView(SEED_CFG)
    r = prefix("10.0.0.5/32", 100)
    assert rib.apply([add(r)]) == {E("vx100", "10.0.0.5")}
    # an IMET from the same VTEP under another key shares the entry
    i = imet("10.0.0.5", 100)
    assert rib.apply([add(i)]) == set()
    assert rib.apply([withdraw(r)]) == set()
    assert rib.apply([withdraw(i)]) == {E("vx100", "10.0.0.5")}
    assert rib.apply([add(prefix("10.0.0.0/24", 100))]) == set()


def test_ribview_replace() -> None:
    rib = RibView(CFG)
    rib.apply([add(imet("10.0.0.2", 100)), add(imet("10.0.0.3", 999))])
    assert rib.ignored
    rib.replace([add(imet("10.0.0.4", 200)), add(imet("10.0.0.4", 200, rd="65004:1"))])
    assert rib.desired() == {E("vx200", "10.0.0.4")}
    assert len(rib) == 2
    assert rib.ignored == {}
    # refcounts were rebuilt from the new table, not carried over
    assert rib.apply([withdraw(imet("10.0.0.2", 100))]) == set()
    assert rib.apply([withdraw(imet("10.0.0.4", 200))]) == set()
    assert rib.apply([withdraw(imet("10.0.0.4", 200, rd="65004:1"))]) == {E("vx200", "10.0.0.4")}


def test_ribview_replace_with_empty_table() -> None:
    rib = RibView(CFG)
    rib.apply([add(imet("10.0.0.2", 100))])
    rib.replace([])
    assert rib.desired() == set() and len(rib) == 0


def test_remote_vteps() -> None:
    rib = RibView(CFG)
    assert rib.remote_vteps() == {100: [], 200: []}
    rib.apply([
        add(imet("10.0.0.10", 100)),
        add(imet("10.0.0.9", 100)),
        add(imet("10.0.0.9", 100, rd="65009:1")),  # second RD: listed once
        add(imet("10.0.0.2", 200)),
        add(imet(OWN, 100)),  # own route is not remote
    ])
    # sorted by address, not as text ("10.0.0.10" > "10.0.0.9")
    assert rib.remote_vteps() == {100: ["10.0.0.9", "10.0.0.10"], 200: ["10.0.0.2"]}


def test_desired_returns_a_copy() -> None:
    rib = RibView(CFG)
    rib.apply([add(imet("10.0.0.2", 100))])
    snapshot = rib.desired()
    snapshot.clear()
    assert rib.desired() == {E("vx100", "10.0.0.2")}


# -- property: incremental == from scratch -------------------------------------------------

_VTEPS = ["10.0.0.2", "10.0.0.3", OWN]
_RDS = ["{vtep}:100", "65000:1"]
_UNIVERSE: list[EvpnRoute] = []
for _vtep in _VTEPS:
    for _rd in _RDS:
        for _vni, _rts in ((100, ("65000:100",)), (200, ("65000:200",)), (100, ("65000:200",)), (999, ()), (None, ("65000:200",))):
            _UNIVERSE.append(imet(_vtep, _vni, rd=_rd.format(vtep=_vtep), rts=_rts))
    _UNIVERSE.append(imet(_vtep, 100, rd=f"{_vtep}:100", encap=10))
_UNIVERSE += [
    prefix("10.0.0.2/32", 100, rd="10.0.0.2:5"),
    prefix("10.0.0.2/32", 200, rd="10.0.0.2:5"),
    prefix("10.0.0.3/32", 0, rd="10.0.0.3:5", rts=("65000:100",)),
    prefix("10.0.0.0/24", 100, rd="10.0.0.3:5"),
    macip("10.0.0.2", 100),
]

event_strategy = st.builds(RouteEvent, route=st.sampled_from(_UNIVERSE), withdrawn=st.booleans())
batches_strategy = st.lists(st.lists(event_strategy, min_size=1, max_size=6), max_size=15)


def _from_scratch(live: dict[tuple, EvpnRoute], cfg: AgentConfig) -> set[FloodEntry]:
    out = set()
    for route in live.values():
        if isinstance(route, MacIpRoute):
            continue
        verdict = classify(route, cfg)
        if verdict.vni is not None:
            assert verdict.vtep is not None
            out.add(FloodEntry(verdict.vni.device, verdict.vtep))
    return out


@settings(max_examples=300, deadline=None)
@given(batches=batches_strategy, seed=st.booleans())
def test_ribview_incremental_matches_from_scratch(batches: list[list[RouteEvent]], seed: bool) -> None:
    cfg = SEED_CFG if seed else CFG
    rib = RibView(cfg)
    live: dict[tuple, EvpnRoute] = {}
    all_entries: set[FloodEntry] = set()
    for batch in batches:
        before = rib.desired()
        touched = rib.apply(batch)
        for event in batch:
            if event.withdrawn:
                live.pop(event.route.key, None)
            else:
                live[event.route.key] = event.route
        after = rib.desired()
        expected = _from_scratch(live, cfg)
        assert after == expected
        # every entry whose desired presence changed was reported to the reconciler
        assert before ^ after <= touched
        all_entries |= before | after | touched
        for entry in all_entries:
            assert rib.wants(entry) == (entry in expected)
        assert len(rib) == sum(
            1 for r in live.values() if not isinstance(r, MacIpRoute) and classify(r, cfg).vni is not None
        )
    # a fresh view loaded with the final table agrees
    fresh = RibView(cfg)
    fresh.replace(add(r) for r in live.values())
    assert fresh.desired() == rib.desired()
    assert fresh.remote_vteps() == rib.remote_vteps()
