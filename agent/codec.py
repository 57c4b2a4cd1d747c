"""Translate between gobgp's protobuf API paths and our route dataclasses.

Decoding treats every path as untrusted: anything malformed raises
:class:`MalformedRoute` with the field that was wrong, and the caller skips the
route instead of crashing. Encoding builds exactly what RFC 7432 / RFC 8365 ask
for a VXLAN EVPN route: RD, route targets, encapsulation community (VXLAN), VNI
in the label / PMSI label, next hop = VTEP.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

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
    parse_ip,
)

EVPN_FAMILY = gobgp.Family(afi=gobgp.Family.AFI_L2VPN, safi=gobgp.Family.SAFI_EVPN)
_RT_SUBTYPE = 0x02  # route target sub-type of the AS/IPv4-specific extended communities
_NO_NEIGHBOR = ("", "<nil>", "0.0.0.0", "::")
_NO_IP = ("", "<nil>", "0.0.0.0", "::")  # gobgp renders a MAC-only route's absent IP as "<nil>"
_USED_NLRI = frozenset((attr.EVPNInclusiveMulticastEthernetTagRoute, attr.EVPNMACIPAdvertisementRoute, attr.EVPNIPPrefixRoute))


class MalformedRoute(ValueError):
    """A path from gobgpd that is not a valid EVPN route; the message names the field."""


# Every Any the decoder reads is dispatched on its type URL (the part after the last "/", as Any.Is
# compares it) with one dict lookup, and parsed with the message class's FromString (upb, in C).
_KNOWN = (
    attr.EVPNInclusiveMulticastEthernetTagRoute, attr.EVPNMACIPAdvertisementRoute, attr.EVPNIPPrefixRoute,
    attr.RouteDistinguisherIPAddress, attr.RouteDistinguisherTwoOctetASN, attr.RouteDistinguisherFourOctetASN,
    attr.MpReachNLRIAttribute, attr.NextHopAttribute, attr.ExtendedCommunitiesAttribute, attr.PmsiTunnelAttribute,
    attr.TwoOctetAsSpecificExtended, attr.FourOctetAsSpecificExtended, attr.IPv4AddressSpecificExtended,
    attr.EncapExtended, attr.MacMobilityExtended,
)
_BY_NAME: dict[str, type] = {cls.DESCRIPTOR.full_name: cls for cls in _KNOWN}
_BY_URL: dict[str, type] = {"type.googleapis.com/" + name: cls for name, cls in _BY_NAME.items()}
_RD_TYPES = (attr.RouteDistinguisherIPAddress, attr.RouteDistinguisherTwoOctetASN, attr.RouteDistinguisherFourOctetASN)
_RT_TYPES = (attr.TwoOctetAsSpecificExtended, attr.FourOctetAsSpecificExtended, attr.IPv4AddressSpecificExtended)
_NEXT_HOP_TYPES = (attr.MpReachNLRIAttribute, attr.NextHopAttribute)
_MAC_TEXT = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
CACHE_MAX = 4096  # distinct RDs / community sets / VTEP addresses remembered (bounded: hostile paths cannot grow it)


def _kind(any_msg: any_pb2.Any) -> type | None:
    url = any_msg.type_url
    return _BY_URL.get(url) or _BY_NAME.get(url.rpartition("/")[2])


def _parse(cls: type, value: bytes) -> object:
    try:
        return cls.FromString(value)  # type: ignore[attr-defined]
    except DecodeError as exc:
        raise MalformedRoute(f"{cls.__name__}: undecodable bytes") from exc


def _unpack(any_msg: any_pb2.Any, message_type: type) -> object | None:
    if _kind(any_msg) is not message_type:
        return None
    return _parse(message_type, any_msg.value)


def _ip(text: str, field: str) -> IPAddress:
    try:
        return parse_ip(text)
    except ValueError as exc:
        raise MalformedRoute(f"{field}: {text!r} is not an IP address") from exc


def _mac(text: str, field: str) -> str:
    lower = text.lower()
    if _MAC_TEXT.fullmatch(lower) is None:
        raise MalformedRoute(f"{field}: {text!r} is not a MAC address")
    return lower


def _vni(value: int, field: str) -> int:
    if not 0 < value <= MAX_VNI:
        raise MalformedRoute(f"{field}: VNI {value} out of range 1..{MAX_VNI}")
    return value


class _Caches:
    """Decoded values that repeat across paths (RDs, community sets, VTEP addresses), keyed by their
    wire bytes or text; each cache is emptied when it reaches CACHE_MAX entries. The values are
    immutable, so a route shares them with every other route of the same VTEP and VNI."""

    def __init__(self) -> None:
        self.rd: dict[tuple[str, bytes], RouteDistinguisher] = {}
        self.ext: dict[bytes, tuple[frozenset[RouteTarget], int | None, int | None, bool]] = {}
        self.vtep: dict[str, IPAddress] = {}
        self.attrs: dict[tuple[object, ...], PathAttrs] = {}

    @staticmethod
    def put(cache: dict, key: object, value: object) -> None:  # type: ignore[type-arg]
        if len(cache) >= CACHE_MAX:
            cache.clear()
        cache[key] = value


_CACHES = _Caches()


def _rd(any_msg: any_pb2.Any) -> RouteDistinguisher:
    url = any_msg.type_url
    if not url:
        raise MalformedRoute("rd: missing")
    key = (url, any_msg.value)
    found = _CACHES.rd.get(key)
    if found is not None:
        return found
    kind = _kind(any_msg)
    if kind not in _RD_TYPES:
        raise MalformedRoute(f"rd: unsupported type {url}")
    msg = _parse(kind, key[1])  # type: ignore[arg-type]
    try:
        rd = RouteDistinguisher.parse(f"{msg.admin}:{msg.assigned}")  # type: ignore[attr-defined]
    except RouteError as exc:
        raise MalformedRoute(f"rd: {exc}") from exc
    _CACHES.put(_CACHES.rd, key, rd)
    return rd


def _route_targets_and_extras(ext: attr.ExtendedCommunitiesAttribute) -> tuple[frozenset[RouteTarget], int | None, int | None, bool]:
    rts: set[RouteTarget] = set()
    encap: int | None = None
    seq: int | None = None
    sticky = False
    for community in ext.communities:
        kind = _kind(community)
        if kind is None:
            continue
        if kind in _RT_TYPES:
            rt = _parse(kind, community.value)
            if rt.sub_type != _RT_SUBTYPE:  # type: ignore[attr-defined]
                continue
            admin = rt.address if kind is attr.IPv4AddressSpecificExtended else str(rt.asn)  # type: ignore[attr-defined]
            try:
                rts.add(RouteTarget(admin, rt.local_admin))  # type: ignore[attr-defined]
            except RouteError as exc:
                raise MalformedRoute(f"extended communities: {exc}") from exc
        elif kind is attr.EncapExtended:
            encap = _parse(kind, community.value).tunnel_type  # type: ignore[attr-defined]
        elif kind is attr.MacMobilityExtended:
            mob = _parse(kind, community.value)
            seq = mob.sequence_num  # type: ignore[attr-defined]
            sticky = mob.is_sticky  # type: ignore[attr-defined]
    return frozenset(rts), encap, seq, sticky


def _ext(value: bytes) -> tuple[frozenset[RouteTarget], int | None, int | None, bool]:
    found = _CACHES.ext.get(value)
    if found is None:
        found = _route_targets_and_extras(_parse(attr.ExtendedCommunitiesAttribute, value))  # type: ignore[arg-type]
        _CACHES.put(_CACHES.ext, value, found)
    return found


def _vtep(text: str) -> IPAddress:
    found = _CACHES.vtep.get(text)
    if found is None:
        found = _ip(text, "next hop")
        _CACHES.put(_CACHES.vtep, text, found)
    return found


def _attrs(path: gobgp.Path) -> tuple[PathAttrs, attr.PmsiTunnelAttribute | None]:
    next_hop: IPAddress | None = None
    ext: tuple[frozenset[RouteTarget], int | None, int | None, bool] = (frozenset(), None, None, False)
    pmsi: attr.PmsiTunnelAttribute | None = None
    for pattr in path.pattrs:
        kind = _kind(pattr)
        if kind is attr.MpReachNLRIAttribute:
            hops = _parse(kind, pattr.value).next_hops  # type: ignore[attr-defined]
            if hops:
                next_hop = _vtep(hops[0])
        elif kind is attr.NextHopAttribute:
            next_hop = _vtep(_parse(kind, pattr.value).next_hop)  # type: ignore[attr-defined]
        elif kind is attr.ExtendedCommunitiesAttribute:
            ext = _ext(pattr.value)
        elif kind is attr.PmsiTunnelAttribute:
            pmsi = _parse(kind, pattr.value)  # type: ignore[assignment]
    if next_hop is None:
        if not path.is_withdraw:
            raise MalformedRoute("next hop: missing")
        next_hop = _NO_NEXT_HOP
    key = (next_hop, *ext)
    shared = _CACHES.attrs.get(key)
    if shared is None:
        shared = PathAttrs(next_hop, *ext)
        _CACHES.put(_CACHES.attrs, key, shared)
    return shared, pmsi


_NO_NEXT_HOP = ipaddress.IPv4Address(0)
_EVPN = (gobgp.Family.AFI_L2VPN, gobgp.Family.SAFI_EVPN)


def decode_path(path: gobgp.Path) -> RouteEvent | None:
    """Decode one gobgp path. None for what the agent does not use (other families, EVPN types 1/4).

    Raises MalformedRoute for a path that claims to be a route we use but is invalid.
    """
    family = path.family
    if (family.afi, family.safi) != _EVPN:
        return None
    kind = _kind(path.nlri)
    if kind not in _USED_NLRI:
        return None  # EVPN types 1 and 4 (multihoming) and others: not used here
    attrs, pmsi = _attrs(path)
    nlri = _parse(kind, path.nlri.value)  # type: ignore[arg-type]
    route: EvpnRoute
    if kind is attr.EVPNMACIPAdvertisementRoute:
        labels = nlri.labels  # type: ignore[attr-defined]
        ip_text = nlri.ip_address  # type: ignore[attr-defined]
        ip = _ip(ip_text, "IP address") if ip_text not in _NO_IP else None
        route = MacIpRoute(
            rd=_rd(nlri.rd),  # type: ignore[attr-defined]
            ethernet_tag=nlri.ethernet_tag,  # type: ignore[attr-defined]
            mac=_mac(nlri.mac_address, "MAC address"),  # type: ignore[attr-defined]
            ip=ip,
            label_vni=_vni(labels[0], "label") if labels and labels[0] else None,
            attrs=attrs,
            # dotted-quad text that inet_pton took is str(ip) already (one spelling per address)
            ip_text=ip_text if ip is not None and ip.version == 4 else "",
        )
    elif kind is attr.EVPNInclusiveMulticastEthernetTagRoute:
        route = ImetRoute(
            rd=_rd(nlri.rd),  # type: ignore[attr-defined]
            ethernet_tag=nlri.ethernet_tag,  # type: ignore[attr-defined]
            originator=_ip(nlri.ip_address, "originator IP"),  # type: ignore[attr-defined]
            attrs=attrs,
            pmsi_vni=_vni(pmsi.label, "PMSI tunnel label") if pmsi is not None and pmsi.label else None,
            pmsi_type=pmsi.type if pmsi is not None else None,
        )
    else:
        try:
            network = ipaddress.ip_network(f"{nlri.ip_prefix}/{nlri.ip_prefix_len}", strict=False)  # type: ignore[attr-defined]
        except ValueError as exc:
            raise MalformedRoute(f"IP prefix: {exc}") from exc
        route = PrefixRoute(
            rd=_rd(nlri.rd),  # type: ignore[attr-defined]
            ethernet_tag=nlri.ethernet_tag,  # type: ignore[attr-defined]
            prefix=network,
            label=nlri.label,  # type: ignore[attr-defined]
            attrs=attrs,
        )
    return RouteEvent(route=route, withdrawn=path.is_withdraw, local=path.neighbor_ip in _NO_NEIGHBOR, stale=path.stale)


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
