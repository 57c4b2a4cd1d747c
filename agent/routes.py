"""EVPN route model: plain dataclasses, independent of gobgp's protobufs."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from typing import Union

IPv4 = ipaddress.IPv4Address
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

ENCAP_VXLAN = 8  # RFC 8365 / IANA BGP tunnel type 8
PMSI_INGRESS_REPLICATION = 6  # RFC 6514 tunnel type 6
MAX_VNI = 0xFFFFFF
_DIGITS = re.compile(r"[0-9]+")


def parse_ip(text: str) -> IPAddress:
    """ipaddress.ip_address(text), about 3x faster for dotted-quad IPv4 (inet_pton takes exactly the
    spellings ipaddress takes: four decimal parts, no leading zeros). ValueError if it is no address."""
    try:
        return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, text))
    except (OSError, ValueError, TypeError):
        return ipaddress.ip_address(text)


def is_number(text: str) -> bool:
    """ASCII digits only (str.isdigit() also accepts '²', which int() refuses)."""
    return _DIGITS.fullmatch(text) is not None


class RouteError(ValueError):
    """A value that cannot be part of a valid EVPN route; the message names the field."""


@dataclass(frozen=True, order=True, slots=True)
class RouteTarget:
    """A route target ``admin:value`` (RFC 4360 / RFC 5668): admin is an AS number or an IPv4 address.

    2-octet AS (admin <= 65535) carries a 32-bit value; 4-octet AS and IPv4 admins carry 16 bits.
    """

    admin: str
    value: int

    def __post_init__(self) -> None:
        where = f"route target {self.admin}:{self.value}"
        if is_number(self.admin):
            asn = int(self.admin)
            if asn > 0xFFFFFFFF:
                raise RouteError(f"{where}: AS must be 0..4294967295")
            limit = 0xFFFFFFFF if asn <= 0xFFFF else 0xFFFF
        else:
            try:
                ipaddress.IPv4Address(self.admin)
            except ipaddress.AddressValueError as exc:
                raise RouteError(f"{where}: {self.admin!r} is neither an AS number nor an IPv4 address") from exc
            limit = 0xFFFF
        if not 0 <= self.value <= limit:
            raise RouteError(f"{where}: value must be 0..{limit} for this kind of route target")

    @classmethod
    def parse(cls, text: str) -> RouteTarget:
        admin, sep, value = str(text).rpartition(":")
        if not sep or not admin or not is_number(value):
            raise RouteError(f"route target {text!r}: expected ASN:NUMBER or IPv4:NUMBER, e.g. 65000:100")
        if is_number(admin):
            admin = str(int(admin))
        return cls(admin, int(value))

    @property
    def is_two_octet_as(self) -> bool:
        return is_number(self.admin) and int(self.admin) <= 0xFFFF

    def __str__(self) -> str:
        return f"{self.admin}:{self.value}"


@dataclass(frozen=True, order=True, slots=True)
class RouteDistinguisher:
    """A route distinguisher, kept as its canonical text (``10.0.0.101:100`` or ``65001:100``)."""

    text: str

    @classmethod
    def ip_based(cls, ip: IPv4, assigned: int) -> RouteDistinguisher:
        if not 0 <= assigned <= 0xFFFF:
            raise RouteError(f"route distinguisher {ip}:{assigned}: assigned number must be 0..65535 for type 1")
        return cls(f"{ip}:{assigned}")

    @classmethod
    def parse(cls, text: str) -> RouteDistinguisher:
        admin, sep, assigned = str(text).rpartition(":")
        if not sep or not is_number(assigned):
            raise RouteError(f"route distinguisher {text!r}: expected IP:NUMBER or ASN:NUMBER")
        if is_number(admin):
            asn, number = int(admin), int(assigned)
            if asn <= 0xFFFF and number > 0xFFFFFFFF:
                raise RouteError(f"route distinguisher {text!r}: a 2-byte AS takes a number up to 4294967295")
            if 0xFFFF < asn <= 0xFFFFFFFF and number > 0xFFFF:
                raise RouteError(f"route distinguisher {text!r}: a 4-byte AS takes a number up to 65535")
            if asn > 0xFFFFFFFF:
                raise RouteError(f"route distinguisher {text!r}: AS must be at most 4294967295")
            return cls(f"{asn}:{number}")
        try:
            return cls.ip_based(ipaddress.IPv4Address(admin), int(assigned))
        except ipaddress.AddressValueError as exc:
            raise RouteError(f"route distinguisher {text!r}: {admin!r} is neither an ASN nor an IPv4 address") from exc

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class PathAttrs:
    """The attributes the agent acts on, shared by every route type."""

    next_hop: IPAddress
    route_targets: frozenset[RouteTarget] = frozenset()
    encapsulation: int | None = None  # ENCAP_VXLAN when the encapsulation community is present
    mac_mobility_seq: int | None = None
    sticky: bool = False


@dataclass(frozen=True, slots=True)
class ImetRoute:
    """EVPN Type-3, Inclusive Multicast Ethernet Tag: "VTEP `originator` wants BUM traffic of this VNI"."""

    rd: RouteDistinguisher
    ethernet_tag: int
    originator: IPAddress
    attrs: PathAttrs
    pmsi_vni: int | None = None  # MPLS label field of the PMSI tunnel attribute = VNI (RFC 8365 5.1.3)
    pmsi_type: int | None = None

    @property
    def key(self) -> tuple[str, str, int, str]:
        return ("imet", self.rd.text, self.ethernet_tag, str(self.originator))

    @property
    def vtep(self) -> IPAddress:
        return self.originator


@dataclass(frozen=True, slots=True)
class MacIpRoute:
    """EVPN Type-2, MAC/IP Advertisement: "MAC (and IP) lives behind VTEP next_hop"."""

    rd: RouteDistinguisher
    ethernet_tag: int
    mac: str  # lower-case aa:bb:cc:dd:ee:ff
    ip: IPAddress | None
    label_vni: int | None  # first label = VNI (RFC 8365 5.1.3)
    attrs: PathAttrs
    ip_text: str = field(default="", compare=False, repr=False)  # str(ip), when the decoder had it already

    @property
    def key(self) -> tuple[str, str, int, str, str]:
        return ("macip", self.rd.text, self.ethernet_tag, self.mac, self.ip_text or str(self.ip or ""))

    @property
    def vtep(self) -> IPAddress:
        return self.attrs.next_hop


@dataclass(frozen=True, slots=True)
class PrefixRoute:
    """EVPN Type-5, IP Prefix. Only used for the seed's ``add prefix <vtep>/32`` VTEP form (opt-in)."""

    rd: RouteDistinguisher
    ethernet_tag: int
    prefix: ipaddress.IPv4Network | ipaddress.IPv6Network
    label: int
    attrs: PathAttrs

    @property
    def key(self) -> tuple[str, str, int, str]:
        return ("prefix", self.rd.text, self.ethernet_tag, str(self.prefix))

    @property
    def vtep(self) -> IPAddress:
        """The seed's form: the prefix (a /32) is the VTEP."""
        return self.prefix.network_address


EvpnRoute = Union[ImetRoute, MacIpRoute, PrefixRoute]


def describe_route(route: EvpnRoute) -> str:
    """Greppable key=value form of a route for the log: `type=macip rd=10.0.0.1:100 mac=... ip=- vtep=... seq=0`."""
    if isinstance(route, MacIpRoute):
        return (f"type=macip rd={route.rd.text} mac={route.mac} ip={route.ip or '-'} vtep={route.vtep} "
                f"seq={route.attrs.mac_mobility_seq or 0}")
    if isinstance(route, ImetRoute):
        return f"type=imet rd={route.rd.text} vtep={route.originator}"
    return f"type=prefix rd={route.rd.text} prefix={route.prefix}"


@dataclass(frozen=True, slots=True)
class RouteEvent:
    """One change seen in gobgpd's best-path table."""

    route: EvpnRoute
    withdrawn: bool = False
    local: bool = field(default=False)  # originated by this gobgpd (no neighbor)
    stale: bool = False  # gobgpd's graceful-restart mark: on a withdrawal, a lost peer's stale path dropped
