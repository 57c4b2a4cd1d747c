"""Unit tests for agent/desired.py classify(): which served VNI (if any) a remote route belongs to."""

from __future__ import annotations

import ipaddress

import pytest

from agent.codec import decode_path, encode_imet
from agent.config import parse_config
from agent.desired import Verdict, classify
from agent.routes import (
    ImetRoute,
    RouteDistinguisher,
    RouteTarget,
)

from tests.unit.builders import CFG, OWN, SEED_CFG, attrs, imet, ip, macip, prefix

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


def test_classify_macip_label_wins_over_ethernet_tag() -> None:
    assert classify(macip(vni=100, etag=200, rts=()), CFG).vni is CFG.vni(100)
    v = classify(macip(vni=999, etag=100, rts=()), CFG)
    assert v.vni is None and v.reason == "VNI 999 not served"


def test_classify_macip_without_label_uses_ethernet_tag_then_route_targets() -> None:
    assert classify(macip(vni=None, etag=200, rts=()), CFG).vni is CFG.vni(200)
    assert classify(macip(vni=None, rts=("65000:200",)), CFG).vni is CFG.vni(200)


def test_classify_macip_own_next_hop() -> None:
    assert classify(macip(OWN, 100), CFG).reason == "own route"


def test_classify_macip_non_vxlan_encapsulation() -> None:
    assert classify(macip(vni=100, encap=10), CFG).reason == "encapsulation 10 is not VXLAN"


def test_classify_decoded_remote_imet() -> None:
    # end to end through the real codec: a remote host's advertisement is accepted ...
    remote = encode_imet(RouteDistinguisher.parse("10.0.0.2:100"), ip("10.0.0.2"), 100, [RouteTarget.parse("65000:100")])
    event = decode_path(remote)
    assert event is not None
    assert classify(event.route, CFG).vni is CFG.vni(100)
    # ... and our own advertisement is recognised as such
    own = decode_path(encode_imet(CFG.vnis[0].rd, CFG.vtep, 100, CFG.vnis[0].export_rts))
    assert own is not None and classify(own.route, CFG).reason == "own route"


