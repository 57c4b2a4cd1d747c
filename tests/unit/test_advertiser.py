"""Unit tests for agent/advertiser.py: our own routes, built as route dataclasses and sent to a sink."""

from __future__ import annotations

import ipaddress

from agent.advertiser import Advertiser, imet_route, macip_route
from agent.codec import decode_path, encode_route
from agent.errors import GobgpRefused
from agent.localmacs import LocalMac
from agent.mactable import LocalMacTable
from agent.routes import ENCAP_VXLAN, PMSI_INGRESS_REPLICATION, EvpnRoute, ImetRoute, MacIpRoute, RouteEvent, RouteTarget

from tests.unit.builders import CFG, OWN

VM = LocalMac(100, "02:00:00:00:00:01")
IP = ipaddress.ip_address("192.168.100.11")


class Sink:
    def __init__(self, refuse: bool = False) -> None:
        self.calls: list[tuple[str, EvpnRoute]] = []
        self.refuse = refuse

    def add_route(self, route: EvpnRoute) -> None:
        self.calls.append(("add", route))
        if self.refuse:
            raise GobgpRefused("AddPath failed: INVALID_ARGUMENT")

    def delete_route(self, route: EvpnRoute) -> None:
        self.calls.append(("del", route))
        if self.refuse:
            raise GobgpRefused("DeletePath failed: invalid MAC mobility sequence number")


def test_imet_route_is_what_rfc_8365_asks_for() -> None:
    route = imet_route(CFG, 100)
    assert route.originator == ipaddress.ip_address(OWN) == route.attrs.next_hop
    assert route.pmsi_vni == 100 and route.pmsi_type == PMSI_INGRESS_REPLICATION
    assert route.attrs.encapsulation == ENCAP_VXLAN
    assert route.attrs.route_targets == {RouteTarget.parse("65000:100")}
    assert str(route.rd) == f"{OWN}:100"


def test_macip_route_carries_sequence_only_when_positive() -> None:
    assert macip_route(CFG, VM, 0).attrs.mac_mobility_seq is None
    route = macip_route(CFG, VM, 4, IP)
    assert route.attrs.mac_mobility_seq == 4 and route.ip == IP and route.label_vni == 100


def test_own_routes_round_trip_through_the_codec() -> None:
    for route in (imet_route(CFG, 200), macip_route(CFG, VM, 3, IP), macip_route(CFG, VM, 0)):
        event = decode_path(encode_route(route))
        assert event is not None and event.route == route


def test_wanted_has_one_imet_per_vni_and_one_route_per_mac_and_ip() -> None:
    table = LocalMacTable()
    table.arrived(VM, None)
    table.bind_ip(100, VM.mac, IP)
    keys = set(Advertiser(CFG).wanted(table))
    assert keys == {imet_route(CFG, 100).key, imet_route(CFG, 200).key, macip_route(CFG, VM, 0).key, macip_route(CFG, VM, 0, IP).key}


def test_sync_advertises_and_withdraws_only_our_stale_routes() -> None:
    adv, sink, table = Advertiser(CFG), Sink(), LocalMacTable()
    stale = macip_route(CFG, LocalMac(100, "02:00:00:00:00:99"), 0)
    remote = MacIpRoute(stale.rd, 0, "02:00:00:00:00:98", None, 100, stale.attrs.__class__(ipaddress.ip_address("10.0.0.9")))
    adv.sync(sink, table, [RouteEvent(stale, local=True), RouteEvent(remote, local=False), RouteEvent(imet_route(CFG, 100), local=True)])
    added = [r for op, r in sink.calls if op == "add"]
    deleted = [r for op, r in sink.calls if op == "del"]
    assert {r.key for r in added} == {imet_route(CFG, 100).key, imet_route(CFG, 200).key}
    assert deleted == [stale]


def test_nothing_is_sent_without_a_session() -> None:
    adv = Advertiser(CFG)
    adv.announce(VM, 0, [IP])  # no sink: the next sync catches up


def test_announce_withdraws_mac_only_and_every_ip_route() -> None:
    adv, sink = Advertiser(CFG), Sink()
    adv.sink = sink
    adv.announce(VM, 2, [IP], withdraw=True)
    assert [(op, r.ip) for op, r in sink.calls] == [("del", None), ("del", IP)]


def test_a_refused_request_is_counted_not_raised() -> None:
    adv, sink = Advertiser(CFG), Sink(refuse=True)
    adv.sink = sink
    adv.announce(VM, 2, [IP], withdraw=True)
    adv.announce_ip(VM, 2, IP)
    assert adv.refused == 3 and len(sink.calls) == 3


def test_imet_of_each_vni_differs_by_rd() -> None:
    a, b = imet_route(CFG, 100), imet_route(CFG, 200)
    assert isinstance(a, ImetRoute) and a.key != b.key
