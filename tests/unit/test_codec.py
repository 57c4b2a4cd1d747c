"""Unit tests for agent/codec.py: encoding to gobgp protobufs and decoding untrusted paths."""

from __future__ import annotations

import ipaddress

import pytest
from google.protobuf import any_pb2
from hypothesis import given
from hypothesis import strategies as st

from agent.codec import EVPN_FAMILY, MalformedRoute, decode_path, decode_paths, encode_imet, encode_macip
from agent.routes import (
    ENCAP_VXLAN,
    MAX_VNI,
    PMSI_INGRESS_REPLICATION,
    ImetRoute,
    MacIpRoute,
    PrefixRoute,
    RouteDistinguisher,
    RouteEvent,
    RouteTarget,
)
from protos.gobgpapi import attribute_pb2 as attr
from protos.gobgpapi import gobgp_pb2 as gobgp

V4 = ipaddress.IPv4Address
RD = RouteDistinguisher.parse("10.0.0.1:100")
VTEP = V4("10.0.0.1")
RT = RouteTarget.parse("65000:100")


def pack(message: object) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message)  # type: ignore[arg-type]
    return out


def unpack(packed: any_pb2.Any, kind: type) -> object:
    assert packed.Is(kind.DESCRIPTOR), f"{packed.type_url} is not {kind.DESCRIPTOR.full_name}"
    msg = kind()
    packed.Unpack(msg)
    return msg


def pattrs_of(path: gobgp.Path, kind: type) -> list:
    return [unpack(p, kind) for p in path.pattrs if p.Is(kind.DESCRIPTOR)]


def rt2(asn: int, value: int, sub_type: int = 0x02) -> any_pb2.Any:
    return pack(attr.TwoOctetAsSpecificExtended(is_transitive=True, sub_type=sub_type, asn=asn, local_admin=value))


def encap(tunnel_type: int = ENCAP_VXLAN) -> any_pb2.Any:
    return pack(attr.EncapExtended(tunnel_type=tunnel_type))


def ext(*communities: any_pb2.Any) -> any_pb2.Any:
    return pack(attr.ExtendedCommunitiesAttribute(communities=list(communities)))


def mp_reach(*next_hops: str) -> any_pb2.Any:
    return pack(attr.MpReachNLRIAttribute(family=EVPN_FAMILY, next_hops=list(next_hops)))


def pmsi(label: int, tunnel_type: int = PMSI_INGRESS_REPLICATION, ident: bytes = VTEP.packed) -> any_pb2.Any:
    return pack(attr.PmsiTunnelAttribute(flags=0, type=tunnel_type, label=label, id=ident))


def rd_ip(admin: str = "10.0.0.2", assigned: int = 100) -> any_pb2.Any:
    return pack(attr.RouteDistinguisherIPAddress(admin=admin, assigned=assigned))


def imet_nlri(rd: any_pb2.Any | None = None, ip: str = "10.0.0.2", etag: int = 0) -> any_pb2.Any:
    msg = attr.EVPNInclusiveMulticastEthernetTagRoute(ethernet_tag=etag, ip_address=ip)
    if rd is not None:
        msg.rd.CopyFrom(rd)
    return pack(msg)


def macip_nlri(rd: any_pb2.Any | None = None, mac: str = "aa:bb:cc:dd:ee:ff", ip: str = "", labels: tuple[int, ...] = (100,)) -> any_pb2.Any:
    msg = attr.EVPNMACIPAdvertisementRoute(ethernet_tag=0, mac_address=mac, ip_address=ip, labels=list(labels))
    msg.rd.CopyFrom(rd if rd is not None else rd_ip())
    return pack(msg)


def prefix_nlri(prefix: str = "10.0.0.2", length: int = 32, label: int = 0, rd: any_pb2.Any | None = None) -> any_pb2.Any:
    msg = attr.EVPNIPPrefixRoute(ethernet_tag=0, ip_prefix=prefix, ip_prefix_len=length, gw_address="0.0.0.0", label=label)
    msg.rd.CopyFrom(rd if rd is not None else rd_ip())
    return pack(msg)


def path(nlri: any_pb2.Any, pattrs: list[any_pb2.Any] | None = None, *, withdraw: bool = False,
         neighbor: str = "192.0.2.1", family: gobgp.Family | None = None) -> gobgp.Path:
    if pattrs is None:
        pattrs = [mp_reach("10.0.0.2"), ext(rt2(65000, 100), encap()), pmsi(100, ident=V4("10.0.0.2").packed)]
    return gobgp.Path(family=family or EVPN_FAMILY, nlri=nlri, pattrs=pattrs, is_withdraw=withdraw, neighbor_ip=neighbor)


def good_imet_path(**kw: object) -> gobgp.Path:
    return path(imet_nlri(rd_ip()), **kw)  # type: ignore[arg-type]


# -- encode_imet -------------------------------------------------------------------------


def test_encode_imet_wire_contents() -> None:
    rts = [RouteTarget.parse("65000:100"), RouteTarget.parse("10.9.9.9:7"), RouteTarget.parse("4200000000:5")]
    p = encode_imet(RD, VTEP, 100, rts)

    assert (p.family.afi, p.family.safi) == (gobgp.Family.AFI_L2VPN, gobgp.Family.SAFI_EVPN)
    assert not p.is_withdraw

    nlri = unpack(p.nlri, attr.EVPNInclusiveMulticastEthernetTagRoute)
    assert nlri.ip_address == "10.0.0.1"
    assert nlri.ethernet_tag == 0
    rd = unpack(nlri.rd, attr.RouteDistinguisherIPAddress)
    assert (rd.admin, rd.assigned) == ("10.0.0.1", 100)

    # PMSI tunnel: ingress replication (6), label = VNI, tunnel id = VTEP address bytes
    (tunnel,) = pattrs_of(p, attr.PmsiTunnelAttribute)
    assert tunnel.type == PMSI_INGRESS_REPLICATION == 6
    assert tunnel.label == 100
    assert tunnel.id == bytes([10, 0, 0, 1])

    # MP_REACH next hop = VTEP, carrying the same NLRI
    (mp,) = pattrs_of(p, attr.MpReachNLRIAttribute)
    assert list(mp.next_hops) == ["10.0.0.1"]
    assert (mp.family.afi, mp.family.safi) == (EVPN_FAMILY.afi, EVPN_FAMILY.safi)
    assert list(mp.nlris) == [p.nlri]

    # extended communities: each RT in its own encoding, plus encapsulation VXLAN (8)
    (ec,) = pattrs_of(p, attr.ExtendedCommunitiesAttribute)
    encaps = [unpack(c, attr.EncapExtended) for c in ec.communities if c.Is(attr.EncapExtended.DESCRIPTOR)]
    assert [e.tunnel_type for e in encaps] == [8]
    two = [unpack(c, attr.TwoOctetAsSpecificExtended) for c in ec.communities if c.Is(attr.TwoOctetAsSpecificExtended.DESCRIPTOR)]
    four = [unpack(c, attr.FourOctetAsSpecificExtended) for c in ec.communities if c.Is(attr.FourOctetAsSpecificExtended.DESCRIPTOR)]
    v4 = [unpack(c, attr.IPv4AddressSpecificExtended) for c in ec.communities if c.Is(attr.IPv4AddressSpecificExtended.DESCRIPTOR)]
    assert [(c.asn, c.local_admin, c.sub_type, c.is_transitive) for c in two] == [(65000, 100, 2, True)]
    assert [(c.asn, c.local_admin, c.sub_type, c.is_transitive) for c in four] == [(4200000000, 5, 2, True)]
    assert [(c.address, c.local_admin, c.sub_type, c.is_transitive) for c in v4] == [("10.9.9.9", 7, 2, True)]
    assert len(ec.communities) == 4

    # origin IGP
    (origin,) = pattrs_of(p, attr.OriginAttribute)
    assert origin.origin == 0


def test_encode_imet_rd_encodings() -> None:
    def rd_msg(text: str) -> object:
        p = encode_imet(RouteDistinguisher.parse(text), VTEP, 100, [RT])
        return unpack(p.nlri, attr.EVPNInclusiveMulticastEthernetTagRoute).rd

    two = rd_msg("65001:100")
    assert two.Is(attr.RouteDistinguisherTwoOctetASN.DESCRIPTOR)
    assert (unpack(two, attr.RouteDistinguisherTwoOctetASN).admin, unpack(two, attr.RouteDistinguisherTwoOctetASN).assigned) == (65001, 100)
    four = rd_msg("4200000000:7")
    assert four.Is(attr.RouteDistinguisherFourOctetASN.DESCRIPTOR)
    assert unpack(four, attr.RouteDistinguisherFourOctetASN).admin == 4200000000
    assert rd_msg("10.0.0.1:5").Is(attr.RouteDistinguisherIPAddress.DESCRIPTOR)


def test_encode_imet_without_route_targets_still_has_encapsulation() -> None:
    p = encode_imet(RD, VTEP, 100, [])
    (ec,) = pattrs_of(p, attr.ExtendedCommunitiesAttribute)
    assert len(ec.communities) == 1
    assert unpack(ec.communities[0], attr.EncapExtended).tunnel_type == ENCAP_VXLAN


def test_encode_imet_round_trip() -> None:
    p = encode_imet(RD, VTEP, 100, [RT], ethernet_tag=0)
    event = decode_path(p)
    assert isinstance(event, RouteEvent)
    assert not event.withdrawn
    assert event.local  # no neighbor: originated by our own gobgpd
    route = event.route
    assert isinstance(route, ImetRoute)
    assert route.rd == RD
    assert route.originator == VTEP
    assert route.vtep == VTEP
    assert route.pmsi_vni == 100
    assert route.pmsi_type == PMSI_INGRESS_REPLICATION
    assert route.ethernet_tag == 0
    assert route.attrs.next_hop == VTEP
    assert route.attrs.route_targets == frozenset({RT})
    assert route.attrs.encapsulation == ENCAP_VXLAN
    assert route.attrs.mac_mobility_seq is None
    assert route.attrs.sticky is False


rd_strategy = st.one_of(
    st.builds(lambda ip, n: RouteDistinguisher.ip_based(ip, n), st.ip_addresses(v=4), st.integers(0, 0xFFFF)),
    st.builds(lambda a, n: RouteDistinguisher.parse(f"{a}:{n}"), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)),
    st.builds(lambda a, n: RouteDistinguisher.parse(f"{a}:{n}"), st.integers(0x10000, 0xFFFFFFFF), st.integers(0, 0xFFFF)),
)
rt_strategy = st.one_of(
    st.builds(lambda a, v: RouteTarget(str(a), v), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)),
    st.builds(lambda a, v: RouteTarget(str(a), v), st.integers(0x10000, 0xFFFFFFFF), st.integers(0, 0xFFFF)),
    st.builds(lambda a, v: RouteTarget(str(a), v), st.ip_addresses(v=4), st.integers(0, 0xFFFF)),
)
vtep_strategy = st.ip_addresses(v=4)
vni_strategy = st.integers(1, MAX_VNI)


@given(rd=rd_strategy, vtep=vtep_strategy, vni=vni_strategy, rts=st.frozensets(rt_strategy, max_size=4), etag=st.integers(0, 0xFFFFFFFF))
def test_encode_imet_decode_round_trip_property(rd, vtep, vni, rts, etag) -> None:
    event = decode_path(encode_imet(rd, vtep, vni, rts, ethernet_tag=etag))
    assert event is not None
    route = event.route
    assert isinstance(route, ImetRoute)
    assert (route.rd, route.originator, route.pmsi_vni, route.ethernet_tag) == (rd, vtep, vni, etag)
    assert route.pmsi_type == PMSI_INGRESS_REPLICATION
    assert route.attrs.next_hop == vtep
    assert route.attrs.route_targets == rts
    assert route.attrs.encapsulation == ENCAP_VXLAN


def test_encode_imet_ipv6_vtep_round_trip() -> None:
    vtep = ipaddress.ip_address("2001:db8::1")
    p = encode_imet(RD, vtep, 100, [RT])
    (tunnel,) = pattrs_of(p, attr.PmsiTunnelAttribute)
    assert tunnel.id == vtep.packed and len(tunnel.id) == 16
    event = decode_path(p)
    assert event is not None and event.route.originator == vtep and event.route.attrs.next_hop == vtep


# -- encode_macip ------------------------------------------------------------------------


def test_encode_macip_wire_contents_and_round_trip() -> None:
    ip = V4("192.168.10.5")
    p = encode_macip(RD, VTEP, 200, "AA:BB:CC:00:11:22", ip, [RT], sequence=3, ethernet_tag=0)
    nlri = unpack(p.nlri, attr.EVPNMACIPAdvertisementRoute)
    assert list(nlri.labels) == [200]
    assert nlri.ip_address == "192.168.10.5"
    (mp,) = pattrs_of(p, attr.MpReachNLRIAttribute)
    assert list(mp.next_hops) == ["10.0.0.1"]
    (ec,) = pattrs_of(p, attr.ExtendedCommunitiesAttribute)
    mobility = [unpack(c, attr.MacMobilityExtended) for c in ec.communities if c.Is(attr.MacMobilityExtended.DESCRIPTOR)]
    assert [(m.sequence_num, m.is_sticky) for m in mobility] == [(3, False)]
    assert not pattrs_of(p, attr.PmsiTunnelAttribute)

    event = decode_path(p)
    assert event is not None
    route = event.route
    assert isinstance(route, MacIpRoute)
    assert route.mac == "aa:bb:cc:00:11:22"  # canonical lower case
    assert route.ip == ip
    assert route.label_vni == 200
    assert route.rd == RD
    assert route.vtep == VTEP
    assert route.attrs.mac_mobility_seq == 3
    assert route.attrs.route_targets == frozenset({RT})
    assert route.attrs.encapsulation == ENCAP_VXLAN


def test_encode_macip_without_ip_or_sequence() -> None:
    p = encode_macip(RD, VTEP, 100, "aa:bb:cc:dd:ee:ff", None, [RT])
    (ec,) = pattrs_of(p, attr.ExtendedCommunitiesAttribute)
    assert not any(c.Is(attr.MacMobilityExtended.DESCRIPTOR) for c in ec.communities)
    event = decode_path(p)
    assert event is not None
    assert isinstance(event.route, MacIpRoute)
    assert event.route.ip is None
    assert event.route.attrs.mac_mobility_seq is None
    assert event.route.key == ("macip", "10.0.0.1:100", 0, "aa:bb:cc:dd:ee:ff", "")


@pytest.mark.parametrize("no_ip", ["", "<nil>", "0.0.0.0", "::"])
def test_decode_mac_only_type2_has_no_ip(no_ip: str) -> None:
    # gobgp renders a MAC-only Type-2's absent IP as "<nil>"; all forms mean "no IP" and share a key
    event = decode_path(path(macip_nlri(ip=no_ip)))
    assert event is not None
    assert isinstance(event.route, MacIpRoute)
    assert event.route.ip is None
    assert event.route.key == ("macip", "10.0.0.2:100", 0, "aa:bb:cc:dd:ee:ff", "")
    assert event.route.label_vni == 100


def test_decode_mac_only_type2_withdrawal_matches_announcement() -> None:
    announce = decode_path(path(macip_nlri(ip="<nil>")))
    gone = decode_path(path(macip_nlri(ip="<nil>"), [], withdraw=True))
    assert announce is not None and gone is not None and gone.withdrawn
    assert announce.route.key == gone.route.key


@given(
    rd=rd_strategy,
    vtep=vtep_strategy,
    vni=vni_strategy,
    mac=st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b)),
    ip=st.none() | st.ip_addresses(),
    rts=st.frozensets(rt_strategy, max_size=3),
    seq=st.integers(0, 0xFFFFFFFF),
)
def test_encode_macip_decode_round_trip_property(rd, vtep, vni, mac, ip, rts, seq) -> None:
    event = decode_path(encode_macip(rd, vtep, vni, mac, ip, rts, sequence=seq))
    assert event is not None
    route = event.route
    assert isinstance(route, MacIpRoute)
    assert route.rd == rd and route.mac == mac and route.label_vni == vni
    expected_ip = None if ip is None or ip.is_unspecified else ip
    assert route.ip == expected_ip
    assert route.attrs.next_hop == vtep
    assert route.attrs.route_targets == rts
    assert route.attrs.mac_mobility_seq == (seq if seq > 0 else None)


# -- decode: well-formed hand-built paths ------------------------------------------------


def test_decode_remote_imet_from_neighbor() -> None:
    event = decode_path(good_imet_path())
    assert event is not None
    assert not event.local
    assert isinstance(event.route, ImetRoute)
    assert event.route.originator == V4("10.0.0.2")
    assert event.route.pmsi_vni == 100


@pytest.mark.parametrize("neighbor", ["", "<nil>", "0.0.0.0", "::"])
def test_decode_local_path_markers(neighbor: str) -> None:
    event = decode_path(good_imet_path(neighbor=neighbor))
    assert event is not None and event.local


def test_decode_next_hop_attribute_instead_of_mp_reach() -> None:
    p = path(imet_nlri(rd_ip()), [pack(attr.NextHopAttribute(next_hop="10.0.0.7")), ext(rt2(65000, 100))])
    event = decode_path(p)
    assert event is not None
    assert event.route.attrs.next_hop == V4("10.0.0.7")
    assert event.route.attrs.encapsulation is None
    assert event.route.pmsi_vni is None and event.route.pmsi_type is None


@pytest.mark.parametrize(
    ("rd_any", "text"),
    [
        (rd_ip("10.1.2.3", 65535), "10.1.2.3:65535"),
        (pack(attr.RouteDistinguisherTwoOctetASN(admin=65001, assigned=0xFFFFFFFF)), "65001:4294967295"),
        (pack(attr.RouteDistinguisherFourOctetASN(admin=4200000000, assigned=9)), "4200000000:9"),
    ],
)
def test_decode_rd_kinds(rd_any: any_pb2.Any, text: str) -> None:
    event = decode_path(path(imet_nlri(rd_any)))
    assert event is not None and event.route.rd == RouteDistinguisher(text)


def test_decode_route_targets_all_kinds_and_ignores_other_subtypes() -> None:
    communities = [
        rt2(65000, 100),
        pack(attr.FourOctetAsSpecificExtended(is_transitive=True, sub_type=0x02, asn=4200000000, local_admin=5)),
        pack(attr.IPv4AddressSpecificExtended(is_transitive=True, sub_type=0x02, address="10.9.9.9", local_admin=7)),
        rt2(65000, 999, sub_type=0x03),  # route origin, not a route target
        pack(attr.IPv4AddressSpecificExtended(is_transitive=True, sub_type=0x03, address="10.8.8.8", local_admin=1)),
        pack(attr.MacMobilityExtended(is_sticky=True, sequence_num=9)),
        encap(),
    ]
    event = decode_path(path(imet_nlri(rd_ip()), [mp_reach("10.0.0.2"), ext(*communities)]))
    assert event is not None
    attrs = event.route.attrs
    assert attrs.route_targets == frozenset(
        {RouteTarget("65000", 100), RouteTarget("4200000000", 5), RouteTarget("10.9.9.9", 7)}
    )
    assert attrs.mac_mobility_seq == 9
    assert attrs.sticky is True
    assert attrs.encapsulation == ENCAP_VXLAN


def test_decode_non_vxlan_encapsulation_is_reported_not_rejected() -> None:
    event = decode_path(path(imet_nlri(rd_ip()), [mp_reach("10.0.0.2"), ext(encap(10))]))  # 10 = MPLS
    assert event is not None and event.route.attrs.encapsulation == 10


def test_decode_prefix_route() -> None:
    event = decode_path(path(prefix_nlri("10.0.0.3", 32, label=100)))
    assert event is not None
    route = event.route
    assert isinstance(route, PrefixRoute)
    assert route.prefix == ipaddress.ip_network("10.0.0.3/32")
    assert route.label == 100


def test_decode_prefix_route_host_bits_are_masked() -> None:
    event = decode_path(path(prefix_nlri("10.0.0.3", 24)))
    assert event is not None and event.route.prefix == ipaddress.ip_network("10.0.0.0/24")


def test_decode_withdraw_without_next_hop() -> None:
    event = decode_path(path(imet_nlri(rd_ip()), [], withdraw=True))
    assert event is not None
    assert event.withdrawn
    assert event.route.attrs.next_hop == V4("0.0.0.0")
    assert event.route.key == ("imet", "10.0.0.2:100", 0, "10.0.0.2")


def test_decode_withdraw_has_same_key_as_announcement() -> None:
    announce = decode_path(good_imet_path())
    withdraw = decode_path(path(imet_nlri(rd_ip()), [], withdraw=True))
    assert announce is not None and withdraw is not None
    assert announce.route.key == withdraw.route.key


@pytest.mark.parametrize("label", [1, MAX_VNI])
def test_decode_pmsi_label_bounds_accepted(label: int) -> None:
    event = decode_path(path(imet_nlri(rd_ip()), [mp_reach("10.0.0.2"), pmsi(label)]))
    assert event is not None and event.route.pmsi_vni == label


def test_decode_pmsi_label_zero_means_no_vni() -> None:
    # label 0 is not a VNI: the route is kept but carries no VNI (classify falls back to RTs)
    event = decode_path(path(imet_nlri(rd_ip()), [mp_reach("10.0.0.2"), pmsi(0)]))
    assert event is not None
    assert event.route.pmsi_vni is None
    assert event.route.pmsi_type == PMSI_INGRESS_REPLICATION


def test_decode_other_pmsi_type_is_reported() -> None:
    event = decode_path(path(imet_nlri(rd_ip()), [mp_reach("10.0.0.2"), pmsi(100, tunnel_type=3)]))
    assert event is not None and event.route.pmsi_type == 3


# -- decode: ignored (None) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "family",
    [
        gobgp.Family(afi=gobgp.Family.AFI_IP, safi=gobgp.Family.SAFI_UNICAST),
        gobgp.Family(afi=gobgp.Family.AFI_L2VPN, safi=gobgp.Family.SAFI_VPLS),
        gobgp.Family(afi=gobgp.Family.AFI_IP6, safi=gobgp.Family.SAFI_EVPN),
        gobgp.Family(),
    ],
)
def test_decode_non_evpn_family_returns_none(family: gobgp.Family) -> None:
    assert decode_path(good_imet_path(family=family)) is None


def test_decode_non_evpn_family_returns_none_even_if_garbage() -> None:
    ipv4 = pack(attr.IPAddressPrefix(prefix_len=24, prefix="10.0.0.0"))
    p = gobgp.Path(family=gobgp.Family(afi=gobgp.Family.AFI_IP, safi=gobgp.Family.SAFI_UNICAST), nlri=ipv4)
    assert decode_path(p) is None
    assert decode_paths([p]) == ([], [])


@pytest.mark.parametrize(
    "nlri",
    [
        pack(attr.EVPNEthernetAutoDiscoveryRoute(rd=rd_ip(), ethernet_tag=0, label=100)),
        pack(attr.EVPNEthernetSegmentRoute(rd=rd_ip(), ip_address="10.0.0.2")),
        pack(attr.IPAddressPrefix(prefix_len=24, prefix="10.0.0.0")),  # not even EVPN
        any_pb2.Any(),  # empty NLRI
    ],
)
def test_decode_unknown_nlri_type_returns_none(nlri: any_pb2.Any) -> None:
    assert decode_path(path(nlri)) is None
    assert decode_paths([path(nlri)]) == ([], [])


def test_decode_unknown_nlri_type_returns_none_even_with_bad_attributes() -> None:
    # decode_path's contract: None for what the agent does not use (EVPN types 1/4); a
    # MalformedRoute is only for "a path that claims to be a route we use". A Type-1 route
    # without a next hop (or with an odd attribute) is not one we use, so it must be None.
    type1 = pack(attr.EVPNEthernetAutoDiscoveryRoute(rd=rd_ip(), ethernet_tag=0, label=100))
    assert decode_path(path(type1, [])) is None


# -- decode: malformed ---------------------------------------------------------------------


def _malformed(p: gobgp.Path, field: str) -> str:
    with pytest.raises(MalformedRoute) as info:
        decode_path(p)
    message = str(info.value)
    assert field in message, message
    events, errors = decode_paths([p])
    assert events == [] and errors == [message]
    return message


def test_decode_missing_rd() -> None:
    assert _malformed(path(imet_nlri(rd=None)), "rd") == "rd: missing"


def test_decode_missing_rd_macip() -> None:
    msg = attr.EVPNMACIPAdvertisementRoute(mac_address="aa:bb:cc:dd:ee:ff", labels=[100])
    _malformed(path(pack(msg)), "rd: missing")


def test_decode_unsupported_rd_type() -> None:
    _malformed(path(imet_nlri(pack(attr.IPAddressPrefix(prefix_len=1, prefix="1.0.0.0")))), "rd: unsupported type")


@pytest.mark.parametrize(
    "rd_any",
    [
        rd_ip("bogus", 1),
        rd_ip("2001:db8::1", 1),
        rd_ip("10.0.0.1", 65536),  # type-1 RD has a 16-bit number
        rd_ip("", 1),
    ],
)
def test_decode_bad_rd_contents(rd_any: any_pb2.Any) -> None:
    _malformed(path(imet_nlri(rd_any)), "rd:")


def test_decode_rd_with_non_ascii_digit_admin_is_collected_not_raised() -> None:
    # '²'.isdigit() is True but int('²') fails: a hand-made path must still be a MalformedRoute
    p = path(imet_nlri(rd_ip("²", 1)))
    events, errors = decode_paths([p, good_imet_path()])
    assert len(events) == 1 and len(errors) == 1


@pytest.mark.parametrize("ip", ["", "not-an-ip", "10.0.0.256", "10.0.0.1/32", "1.2.3"])
def test_decode_bad_originator_ip(ip: str) -> None:
    _malformed(path(imet_nlri(rd_ip(), ip=ip)), "originator IP")


@pytest.mark.parametrize("ip", ["not-an-ip", "300.1.1.1", "fe80::zz"])
def test_decode_bad_macip_ip(ip: str) -> None:
    _malformed(path(macip_nlri(ip=ip)), "IP address")


@pytest.mark.parametrize("mac", ["", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00", "aa-bb-cc-dd-ee-ff", "gg:bb:cc:dd:ee:ff", "a:bb:cc:dd:ee:ff0"])
def test_decode_bad_mac(mac: str) -> None:
    _malformed(path(macip_nlri(mac=mac)), "MAC address")


@pytest.mark.parametrize("label", [MAX_VNI + 1, 0xFFFFFFFF])
def test_decode_pmsi_label_out_of_range(label: int) -> None:
    message = _malformed(path(imet_nlri(rd_ip()), [mp_reach("10.0.0.2"), pmsi(label)]), "PMSI tunnel label")
    assert str(label) in message


@pytest.mark.parametrize("label", [MAX_VNI + 1, 0xFFFFFFFF])
def test_decode_macip_label_out_of_range(label: int) -> None:
    _malformed(path(macip_nlri(labels=(label,))), "label")


def test_decode_macip_label_zero_or_missing_means_no_vni() -> None:
    for labels in ((), (0,), (0, 5)):
        event = decode_path(path(macip_nlri(labels=labels)))
        assert event is not None and event.route.label_vni is None


def test_decode_missing_next_hop_on_announcement() -> None:
    _malformed(path(imet_nlri(rd_ip()), [ext(rt2(65000, 100)), pmsi(100)]), "next hop: missing")


def test_decode_mp_reach_without_next_hops_is_missing_next_hop() -> None:
    _malformed(path(imet_nlri(rd_ip()), [mp_reach()]), "next hop: missing")


@pytest.mark.parametrize("nh", ["", "garbage", "10.0.0.999"])
def test_decode_bad_next_hop(nh: str) -> None:
    _malformed(path(imet_nlri(rd_ip()), [mp_reach(nh)]), "next hop")
    _malformed(path(imet_nlri(rd_ip()), [pack(attr.NextHopAttribute(next_hop=nh))]), "next hop")


@pytest.mark.parametrize(
    "community",
    [
        pack(attr.IPv4AddressSpecificExtended(is_transitive=True, sub_type=0x02, address="bogus", local_admin=1)),
        pack(attr.IPv4AddressSpecificExtended(is_transitive=True, sub_type=0x02, address="10.0.0.1", local_admin=70000)),
        pack(attr.FourOctetAsSpecificExtended(is_transitive=True, sub_type=0x02, asn=4200000000, local_admin=70000)),
    ],
)
def test_decode_bad_route_target(community: any_pb2.Any) -> None:
    _malformed(path(imet_nlri(rd_ip()), [mp_reach("10.0.0.2"), ext(community)]), "extended communities")


@pytest.mark.parametrize("length", [33, 200])
def test_decode_bad_prefix_length(length: int) -> None:
    _malformed(path(prefix_nlri("10.0.0.0", length)), "IP prefix")


def test_decode_bad_prefix_address() -> None:
    _malformed(path(prefix_nlri("nope", 32)), "IP prefix")


def test_decode_corrupt_nlri_bytes_are_collected_not_raised() -> None:
    corrupt = any_pb2.Any(type_url="type.googleapis.com/" + attr.EVPNMACIPAdvertisementRoute.DESCRIPTOR.full_name, value=b"\xff\xff\xff")
    with pytest.raises(MalformedRoute, match="undecodable"):
        decode_path(path(corrupt))
    events, errors = decode_paths([path(corrupt), good_imet_path()])
    assert len(events) == 1 and len(errors) == 1


def test_decode_corrupt_attribute_bytes_are_collected_not_raised() -> None:
    # The type URL says MpReachNLRIAttribute but the bytes are not a valid message: the module
    # promises "anything malformed raises MalformedRoute" and decode_paths "never raised".
    corrupt = any_pb2.Any(type_url="type.googleapis.com/" + attr.MpReachNLRIAttribute.DESCRIPTOR.full_name, value=b"\xff\xff\xff")
    bad = path(imet_nlri(rd_ip()), [corrupt])
    events, errors = decode_paths([bad, good_imet_path()])
    assert len(events) == 1 and len(errors) == 1


# -- decode_paths --------------------------------------------------------------------------


def test_decode_paths_collects_errors_and_keeps_order() -> None:
    good1 = good_imet_path()
    good2 = path(imet_nlri(rd_ip("10.0.0.3"), ip="10.0.0.3"), [mp_reach("10.0.0.3")])
    ignored = good_imet_path(family=gobgp.Family(afi=gobgp.Family.AFI_IP, safi=gobgp.Family.SAFI_UNICAST))
    bad_rd = path(imet_nlri(rd=None))
    bad_ip = path(imet_nlri(rd_ip(), ip="nope"))
    bad_vni = path(imet_nlri(rd_ip()), [mp_reach("10.0.0.2"), pmsi(MAX_VNI + 1)])
    no_nh = path(imet_nlri(rd_ip()), [])

    events, errors = decode_paths([bad_rd, good1, ignored, bad_ip, bad_vni, good2, no_nh])

    assert [e.route.originator for e in events] == [V4("10.0.0.2"), V4("10.0.0.3")]
    assert len(errors) == 4
    assert errors[0] == "rd: missing"
    assert errors[1].startswith("originator IP")
    assert errors[2].startswith("PMSI tunnel label")
    assert errors[3] == "next hop: missing"


def test_decode_paths_empty_and_generator() -> None:
    assert decode_paths([]) == ([], [])
    events, errors = decode_paths(p for p in [good_imet_path(), good_imet_path(withdraw=True)])
    assert [e.withdrawn for e in events] == [False, True]
    assert errors == []
