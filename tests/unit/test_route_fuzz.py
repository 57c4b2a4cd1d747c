"""Fuzz: random EVPN paths, as a broken or hostile BGP peer could make gobgpd hand them over, go
through the whole route pipeline (decode → classify → RibView) without a single exception.

Paths are built from the real protobuf types with random field values (random strings where
addresses belong, out-of-range numbers, wrong attribute types, truncated or random bytes packed
as a known type), so the decoder sees every shape of damage, not only what a well-behaved gobgpd sends.
"""

from __future__ import annotations

from google.protobuf import any_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.codec import EVPN_FAMILY, decode_paths
from agent.desired import RibView
from protos.gobgpapi import attribute_pb2 as attr
from protos.gobgpapi import gobgp_pb2 as gobgp

from tests.unit.builders import make_cfg

CFG = make_cfg(vnis=[{"vni": 100, "device": "vx100", "bridge": "br100", "subnets": ["192.168.100.0/24"]},
                     {"vni": 200, "device": "vx200", "bridge": "br200"}])

texts = st.one_of(st.sampled_from(["10.0.0.2", "255.255.255.255", "0.0.0.0", "::1", "fe80::1", "<nil>", "", "192.168.100.255",
                                   "aa:bb:cc:dd:ee:ff", "01:00:5e:00:00:01", "zz:zz", "10.0.0.1"]), st.text(max_size=20))
u32 = st.one_of(st.sampled_from([0, 1, 100, 200, 0xFFFFFF, 0x1000000, 0xFFFFFFFF]), st.integers(0, 0xFFFFFFFF))


def packed(message: object) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message)  # type: ignore[arg-type]
    return out


def garbage(type_name: str, data: bytes) -> any_pb2.Any:
    return any_pb2.Any(type_url=f"type.googleapis.com/apipb.{type_name}", value=data)


rds = st.one_of(
    st.builds(lambda a, n: packed(attr.RouteDistinguisherIPAddress(admin=a, assigned=n)), texts, u32),
    st.builds(lambda a, n: packed(attr.RouteDistinguisherTwoOctetASN(admin=a, assigned=n)), u32, u32),
    st.builds(lambda a, n: packed(attr.RouteDistinguisherFourOctetASN(admin=a, assigned=n)), u32, u32),
    st.just(any_pb2.Any()),
    st.builds(garbage, st.just("RouteDistinguisherIPAddress"), st.binary(max_size=12)),
)
nlris = st.one_of(
    st.builds(lambda rd, tag, ip: packed(attr.EVPNInclusiveMulticastEthernetTagRoute(rd=rd, ethernet_tag=tag, ip_address=ip)), rds, u32, texts),
    st.builds(lambda rd, tag, mac, ip, labels: packed(attr.EVPNMACIPAdvertisementRoute(
        rd=rd, ethernet_tag=tag, mac_address=mac, ip_address=ip, labels=labels)), rds, u32, texts, texts, st.lists(u32, max_size=3)),
    st.builds(lambda rd, tag, prefix, plen, label: packed(attr.EVPNIPPrefixRoute(
        rd=rd, ethernet_tag=tag, ip_prefix=prefix, ip_prefix_len=plen, label=label)), rds, u32, texts, u32, u32),
    st.builds(garbage, st.sampled_from(["EVPNMACIPAdvertisementRoute", "EVPNInclusiveMulticastEthernetTagRoute", "Nonsense"]),
              st.binary(max_size=40)),
)
communities = st.one_of(
    st.builds(lambda asn, value: packed(attr.TwoOctetAsSpecificExtended(is_transitive=True, sub_type=2, asn=asn, local_admin=value)), u32, u32),
    st.builds(lambda address, value: packed(attr.IPv4AddressSpecificExtended(is_transitive=True, sub_type=2, address=address, local_admin=value)), texts, u32),
    st.builds(lambda kind: packed(attr.EncapExtended(tunnel_type=kind)), u32),
    st.builds(lambda seq, sticky: packed(attr.MacMobilityExtended(sequence_num=seq, is_sticky=sticky)), u32, st.booleans()),
    st.builds(garbage, st.sampled_from(["MacMobilityExtended", "TwoOctetAsSpecificExtended"]), st.binary(max_size=12)),
)
pattrs = st.lists(st.one_of(
    st.builds(lambda nh, nlri: packed(attr.MpReachNLRIAttribute(family=EVPN_FAMILY, next_hops=nh, nlris=[nlri])), st.lists(texts, max_size=2), nlris),
    st.builds(lambda nh: packed(attr.NextHopAttribute(next_hop=nh)), texts),
    st.builds(lambda cs: packed(attr.ExtendedCommunitiesAttribute(communities=cs)), st.lists(communities, max_size=4)),
    st.builds(lambda kind, label, ident: packed(attr.PmsiTunnelAttribute(type=kind, label=label, id=ident)), u32, u32, st.binary(max_size=16)),
    st.builds(garbage, st.sampled_from(["PmsiTunnelAttribute", "ExtendedCommunitiesAttribute", "OriginAttribute"]), st.binary(max_size=20)),
), max_size=5)
families = st.one_of(st.just(EVPN_FAMILY), st.builds(lambda a, s: gobgp.Family(afi=a, safi=s), st.integers(0, 30), st.integers(0, 200)))
paths = st.builds(lambda family, nlri, attrs, neighbor, withdraw: gobgp.Path(
    family=family, nlri=nlri, pattrs=attrs, neighbor_ip=neighbor, is_withdraw=withdraw), families, nlris, pattrs, texts, st.booleans())


@settings(max_examples=400, deadline=None)
@given(st.lists(paths, max_size=8))
def test_random_paths_never_raise_anywhere_in_the_pipeline(batch: list[gobgp.Path]) -> None:
    events, errors = decode_paths(batch)
    assert len(events) + len(errors) <= len(batch)
    rib = RibView(CFG)
    rib.apply(events)
    rib.replace(events)
    for entry in rib.desired():
        vtep = getattr(entry, "vtep", None)
        assert vtep is None or (vtep.version == 4 and not vtep.is_multicast and not vtep.is_loopback and str(vtep) != "255.255.255.255")
    rib.remote_vteps(), rib.remote_macs(), rib.remote_neighbours(), rib.entry_counts(), rib.route_counts()
