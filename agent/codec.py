"""Translate between gobgp's protobuf API paths and our route dataclasses.

Decoding treats every path as untrusted: anything malformed raises
:class:`MalformedRoute` with the field that was wrong, and the caller skips the
route instead of crashing. Encoding builds exactly what RFC 7432 / RFC 8365 ask
for a VXLAN EVPN route: RD, route targets, encapsulation community (VXLAN), VNI
in the label / PMSI label, next hop = VTEP.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError

from protos.gobgpapi import attribute_pb2 as attr
from protos.gobgpapi import gobgp_pb2 as gobgp

from .routes import (
    ENCAP_VXLAN,
    MAX_VNI,
    PMSI_INGRESS_REPLICATION,
    EvpnRoute,
    ImetRoute,
    IPAddress,
    MacIpRoute,
    PathAttrs,
    PrefixRoute,
    RouteDistinguisher,
    RouteError,
    RouteEvent,
    RouteTarget,
    is_number,
)

EVPN_FAMILY = gobgp.Family(afi=gobgp.Family.AFI_L2VPN, safi=gobgp.Family.SAFI_EVPN)
_RT_SUBTYPE = 0x02  # route target sub-type of the AS/IPv4-specific extended communities
_NO_NEIGHBOR = ("", "<nil>", "0.0.0.0", "::")
_NO_IP = ("", "<nil>", "0.0.0.0", "::")  # gobgp renders a MAC-only route's absent IP as "<nil>"
_USED_NLRI = (attr.EVPNInclusiveMulticastEthernetTagRoute, attr.EVPNMACIPAdvertisementRoute, attr.EVPNIPPrefixRoute)


class MalformedRoute(ValueError):
    """A path from gobgpd that is not a valid EVPN route; the message names the field."""


def _unpack(any_msg: any_pb2.Any, message_type: type) -> object | None:
    if not any_msg.Is(message_type.DESCRIPTOR):
        return None
    msg = message_type()
    try:
        any_msg.Unpack(msg)
    except DecodeError as exc:
        raise MalformedRoute(f"{message_type.__name__}: undecodable bytes") from exc
    return msg


def _ip(text: str, field: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError as exc:
        raise MalformedRoute(f"{field}: {text!r} is not an IP address") from exc


def _mac(text: str, field: str) -> str:
    parts = text.lower().split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise MalformedRoute(f"{field}: {text!r} is not a MAC address")
    return ":".join(parts)


def _rd(any_msg: any_pb2.Any) -> RouteDistinguisher:
    if not any_msg.type_url:
        raise MalformedRoute("rd: missing")
    try:
        for kind in (attr.RouteDistinguisherIPAddress, attr.RouteDistinguisherTwoOctetASN, attr.RouteDistinguisherFourOctetASN):
            msg = _unpack(any_msg, kind)
            if msg is not None:
                return RouteDistinguisher.parse(f"{msg.admin}:{msg.assigned}")  # type: ignore[attr-defined]
    except RouteError as exc:
        raise MalformedRoute(f"rd: {exc}") from exc
    raise MalformedRoute(f"rd: unsupported type {any_msg.type_url}")


def _vni(value: int, field: str) -> int:
    if not 0 < value <= MAX_VNI:
        raise MalformedRoute(f"{field}: VNI {value} out of range 1..{MAX_VNI}")
    return value


def _route_targets_and_extras(ext: attr.ExtendedCommunitiesAttribute) -> tuple[set[RouteTarget], int | None, int | None, bool]:
    rts: set[RouteTarget] = set()
    encap: int | None = None
    seq: int | None = None
    sticky = False
    for community in ext.communities:
        try:
            two = _unpack(community, attr.TwoOctetAsSpecificExtended)
            if two is not None and two.sub_type == _RT_SUBTYPE:  # type: ignore[attr-defined]
                rts.add(RouteTarget(str(two.asn), two.local_admin))  # type: ignore[attr-defined]
                continue
            four = _unpack(community, attr.FourOctetAsSpecificExtended)
            if four is not None and four.sub_type == _RT_SUBTYPE:  # type: ignore[attr-defined]
                rts.add(RouteTarget(str(four.asn), four.local_admin))  # type: ignore[attr-defined]
                continue
            v4 = _unpack(community, attr.IPv4AddressSpecificExtended)
            if v4 is not None and v4.sub_type == _RT_SUBTYPE:  # type: ignore[attr-defined]
                rts.add(RouteTarget(v4.address, v4.local_admin))  # type: ignore[attr-defined]
                continue
        except RouteError as exc:
            raise MalformedRoute(f"extended communities: {exc}") from exc
        enc = _unpack(community, attr.EncapExtended)
        if enc is not None:
            encap = enc.tunnel_type  # type: ignore[attr-defined]
            continue
        mob = _unpack(community, attr.MacMobilityExtended)
        if mob is not None:
            seq = mob.sequence_num  # type: ignore[attr-defined]
            sticky = mob.is_sticky  # type: ignore[attr-defined]
    return rts, encap, seq, sticky


def _attrs(path: gobgp.Path) -> tuple[PathAttrs, attr.PmsiTunnelAttribute | None]:
    next_hop: IPAddress | None = None
    rts: set[RouteTarget] = set()
    encap = seq = None
    sticky = False
    pmsi: attr.PmsiTunnelAttribute | None = None
    for pattr in path.pattrs:
        mp = _unpack(pattr, attr.MpReachNLRIAttribute)
        if mp is not None:
            if mp.next_hops:  # type: ignore[attr-defined]
                next_hop = _ip(mp.next_hops[0], "next hop")  # type: ignore[attr-defined]
            continue
        nh = _unpack(pattr, attr.NextHopAttribute)
        if nh is not None:
            next_hop = _ip(nh.next_hop, "next hop")  # type: ignore[attr-defined]
            continue
        ext = _unpack(pattr, attr.ExtendedCommunitiesAttribute)
        if ext is not None:
            rts, encap, seq, sticky = _route_targets_and_extras(ext)  # type: ignore[arg-type]
            continue
        tunnel = _unpack(pattr, attr.PmsiTunnelAttribute)
        if tunnel is not None:
            pmsi = tunnel  # type: ignore[assignment]
    if next_hop is None:
        if not path.is_withdraw:
            raise MalformedRoute("next hop: missing")
        next_hop = ipaddress.IPv4Address(0)
    return PathAttrs(next_hop, frozenset(rts), encap, seq, sticky), pmsi


def decode_path(path: gobgp.Path) -> RouteEvent | None:
    """Decode one gobgp path. None for what the agent does not use (other families, EVPN types 1/4).

    Raises MalformedRoute for a path that claims to be a route we use but is invalid.
    """
    if (path.family.afi, path.family.safi) != (EVPN_FAMILY.afi, EVPN_FAMILY.safi):
        return None
    if not any(path.nlri.Is(kind.DESCRIPTOR) for kind in _USED_NLRI):
        return None  # EVPN types 1 and 4 (multihoming) and others: not used here
    attrs, pmsi = _attrs(path)
    route: EvpnRoute
    imet = _unpack(path.nlri, attr.EVPNInclusiveMulticastEthernetTagRoute)
    if imet is not None:
        route = ImetRoute(
            rd=_rd(imet.rd),  # type: ignore[attr-defined]
            ethernet_tag=imet.ethernet_tag,  # type: ignore[attr-defined]
            originator=_ip(imet.ip_address, "originator IP"),  # type: ignore[attr-defined]
            attrs=attrs,
            pmsi_vni=_vni(pmsi.label, "PMSI tunnel label") if pmsi is not None and pmsi.label else None,
            pmsi_type=pmsi.type if pmsi is not None else None,
        )
    elif (macip := _unpack(path.nlri, attr.EVPNMACIPAdvertisementRoute)) is not None:
        labels = list(macip.labels)  # type: ignore[attr-defined]
        route = MacIpRoute(
            rd=_rd(macip.rd),  # type: ignore[attr-defined]
            ethernet_tag=macip.ethernet_tag,  # type: ignore[attr-defined]
            mac=_mac(macip.mac_address, "MAC address"),  # type: ignore[attr-defined]
            ip=_ip(macip.ip_address, "IP address") if macip.ip_address not in _NO_IP else None,  # type: ignore[attr-defined]
            label_vni=_vni(labels[0], "label") if labels and labels[0] else None,
            attrs=attrs,
        )
    elif (prefix := _unpack(path.nlri, attr.EVPNIPPrefixRoute)) is not None:
        try:
            network = ipaddress.ip_network(f"{prefix.ip_prefix}/{prefix.ip_prefix_len}", strict=False)  # type: ignore[attr-defined]
        except ValueError as exc:
            raise MalformedRoute(f"IP prefix: {exc}") from exc
        route = PrefixRoute(
            rd=_rd(prefix.rd),  # type: ignore[attr-defined]
            ethernet_tag=prefix.ethernet_tag,  # type: ignore[attr-defined]
            prefix=network,
            label=prefix.label,  # type: ignore[attr-defined]
            attrs=attrs,
        )
    else:
        return None
    return RouteEvent(route=route, withdrawn=path.is_withdraw, local=path.neighbor_ip in _NO_NEIGHBOR)


def decode_paths(paths: Iterable[gobgp.Path]) -> tuple[list[RouteEvent], list[str]]:
    """Decode a batch; malformed paths are returned as error strings, never raised."""
    events: list[RouteEvent] = []
    errors: list[str] = []
    for path in paths:
        try:
            event = decode_path(path)
        except MalformedRoute as exc:
            errors.append(str(exc))
            continue
        if event is not None:
            events.append(event)
    return events, errors


# -- encoding -----------------------------------------------------------------


def _any(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def _rd_any(rd: RouteDistinguisher) -> any_pb2.Any:
    admin, _, assigned = rd.text.rpartition(":")
    if is_number(admin):
        if int(admin) <= 0xFFFF:
            return _any(attr.RouteDistinguisherTwoOctetASN(admin=int(admin), assigned=int(assigned)))
        return _any(attr.RouteDistinguisherFourOctetASN(admin=int(admin), assigned=int(assigned)))
    return _any(attr.RouteDistinguisherIPAddress(admin=admin, assigned=int(assigned)))


def _rt_any(rt: RouteTarget) -> any_pb2.Any:
    if rt.is_two_octet_as:
        return _any(attr.TwoOctetAsSpecificExtended(is_transitive=True, sub_type=_RT_SUBTYPE, asn=int(rt.admin), local_admin=rt.value))
    if is_number(rt.admin):
        return _any(attr.FourOctetAsSpecificExtended(is_transitive=True, sub_type=_RT_SUBTYPE, asn=int(rt.admin), local_admin=rt.value))
    return _any(attr.IPv4AddressSpecificExtended(is_transitive=True, sub_type=_RT_SUBTYPE, address=rt.admin, local_admin=rt.value))


def _common_pattrs(nlri: any_pb2.Any, next_hop: IPAddress, rts: Iterable[RouteTarget], extra_communities: Iterable[any_pb2.Any] = ()) -> list[any_pb2.Any]:
    communities = [_rt_any(rt) for rt in sorted(rts)]
    communities.append(_any(attr.EncapExtended(tunnel_type=ENCAP_VXLAN)))
    communities.extend(extra_communities)
    return [
        _any(attr.OriginAttribute(origin=0)),  # IGP
        _any(attr.MpReachNLRIAttribute(family=EVPN_FAMILY, next_hops=[str(next_hop)], nlris=[nlri])),
        _any(attr.ExtendedCommunitiesAttribute(communities=communities)),
    ]


def encode_imet(rd: RouteDistinguisher, vtep: IPAddress, vni: int, rts: Iterable[RouteTarget], ethernet_tag: int = 0) -> gobgp.Path:
    """Type-3 route announcing `vtep` as a flood destination of `vni` (ingress replication)."""
    nlri = _any(attr.EVPNInclusiveMulticastEthernetTagRoute(rd=_rd_any(rd), ethernet_tag=ethernet_tag, ip_address=str(vtep)))
    pattrs = _common_pattrs(nlri, vtep, rts)
    pattrs.append(_any(attr.PmsiTunnelAttribute(flags=0, type=PMSI_INGRESS_REPLICATION, label=vni, id=vtep.packed)))
    return gobgp.Path(family=EVPN_FAMILY, nlri=nlri, pattrs=pattrs)


def encode_macip(
    rd: RouteDistinguisher,
    vtep: IPAddress,
    vni: int,
    mac: str,
    ip: IPAddress | None,
    rts: Iterable[RouteTarget],
    sequence: int = 0,
    ethernet_tag: int = 0,
) -> gobgp.Path:
    """Type-2 route: `mac` (and `ip`) is reachable behind `vtep` in `vni`; MAC mobility seq when > 0."""
    nlri = _any(
        attr.EVPNMACIPAdvertisementRoute(
            rd=_rd_any(rd),
            esi=attr.EthernetSegmentIdentifier(type=0, value=bytes(9)),
            ethernet_tag=ethernet_tag,
            mac_address=mac,
            ip_address=str(ip) if ip is not None else "",
            labels=[vni],
        )
    )
    extra = [_any(attr.MacMobilityExtended(is_sticky=False, sequence_num=sequence))] if sequence > 0 else []
    return gobgp.Path(family=EVPN_FAMILY, nlri=nlri, pattrs=_common_pattrs(nlri, vtep, rts, extra))


def encode_route(route: EvpnRoute) -> gobgp.Path:
    """A Type-3 or Type-2 route of ours as a gobgp path (Type-5 routes are never originated here)."""
    rts = route.attrs.route_targets
    if isinstance(route, ImetRoute):
        return encode_imet(route.rd, route.originator, route.pmsi_vni or 0, rts, route.ethernet_tag)
    if isinstance(route, MacIpRoute):
        return encode_macip(route.rd, route.attrs.next_hop, route.label_vni or 0, route.mac, route.ip, rts,
                            route.attrs.mac_mobility_seq or 0, route.ethernet_tag)
    raise ValueError(f"cannot originate a {type(route).__name__}")
