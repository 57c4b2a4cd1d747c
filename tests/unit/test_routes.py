"""Unit tests for agent/routes.py: route targets, route distinguishers, route keys."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.routes import (
    ImetRoute,
    MacIpRoute,
    PathAttrs,
    PrefixRoute,
    RouteDistinguisher,
    RouteError,
    RouteTarget,
    is_number,
)

V4 = ipaddress.IPv4Address


# -- RouteTarget.parse: accepted forms ------------------------------------------


@pytest.mark.parametrize(
    ("text", "admin", "value"),
    [
        ("65000:100", "65000", 100),
        ("1:0", "1", 0),
        ("0:0", "0", 0),
        ("65535:4294967295", "65535", 0xFFFFFFFF),  # 2-octet AS: 32-bit value
        ("65536:65535", "65536", 0xFFFF),  # 4-octet AS: 16-bit value
        ("4294967295:65535", "4294967295", 0xFFFF),
        ("10.0.0.1:65535", "10.0.0.1", 0xFFFF),  # IPv4 admin: 16-bit value
        ("192.0.2.7:0", "192.0.2.7", 0),
        ("0065000:100", "65000", 100),  # leading zeros in an ASN are canonicalised
        ("65000:0100", "65000", 100),
    ],
)
def test_route_target_parse_valid(text: str, admin: str, value: int) -> None:
    rt = RouteTarget.parse(text)
    assert rt == RouteTarget(admin, value)
    assert rt.admin == admin
    assert rt.value == value
    assert str(rt) == f"{admin}:{value}"


def test_route_target_parse_accepts_non_str_via_str() -> None:
    class Weird:
        def __str__(self) -> str:
            return "65001:7"

    assert RouteTarget.parse(Weird()) == RouteTarget("65001", 7)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "65000",
        ":100",
        "65000:",
        "65000:-1",
        "65000:+1",
        "65000:1.5",
        "65000:abc",
        "65000: 100",
        " 65000:100",
        "abc:100",
        "::1:100",  # IPv6 admin is not a route target admin
        "10.0.0.256:1",
        "10.0.0:1",
        "010.0.0.1:1",  # leading zero octet is rejected by ipaddress
        "65535:4294967296",  # value above 32 bits for 2-octet AS
        "65536:65536",  # 4-octet AS only has 16 bits of value
        "4294967295:65536",
        "4294967296:1",  # AS above 32 bits
        "10.0.0.1:65536",  # IPv4 admin only has 16 bits of value
    ],
)
def test_route_target_parse_invalid(text: str) -> None:
    with pytest.raises(RouteError):
        RouteTarget.parse(text)


def test_route_target_error_message_names_route_target() -> None:
    with pytest.raises(RouteError, match=r"route target"):
        RouteTarget.parse("65536:70000")
    with pytest.raises(RouteError, match=r"neither an AS number nor an IPv4 address"):
        RouteTarget.parse("host.example:1")
    with pytest.raises(RouteError, match=r"expected ASN:NUMBER"):
        RouteTarget.parse("nocolon")


@pytest.mark.parametrize("text", ["²:1", "65000:²", "①:5", "65000:③"])
def test_route_target_parse_non_ascii_digits_raise_route_error(text: str) -> None:
    # str.isdigit() is True for '²', '①', ... but int() rejects them: hostile input must
    # still surface as RouteError (the error type every caller catches), not a bare ValueError.
    with pytest.raises(RouteError):
        RouteTarget.parse(text)


# -- RouteTarget constructor validation -------------------------------------------


@pytest.mark.parametrize(
    ("admin", "value"),
    [
        ("65000", -1),
        ("65000", 0x1_0000_0000),
        ("65536", 0x10000),
        ("4294967296", 0),
        ("10.0.0.1", 0x10000),
        ("10.0.0.1", -1),
        ("not-an-ip", 1),
        ("", 1),
        ("2001:db8::1", 1),
    ],
)
def test_route_target_constructor_validates(admin: str, value: int) -> None:
    with pytest.raises(RouteError):
        RouteTarget(admin, value)


def test_route_target_two_octet_flag() -> None:
    assert RouteTarget("0", 1).is_two_octet_as
    assert RouteTarget("65535", 1).is_two_octet_as
    assert not RouteTarget("65536", 1).is_two_octet_as
    assert not RouteTarget("10.0.0.1", 1).is_two_octet_as


def test_route_target_is_hashable_frozen_and_ordered() -> None:
    a = RouteTarget.parse("65000:100")
    b = RouteTarget.parse("65000:100")
    c = RouteTarget.parse("65000:200")
    assert a == b and hash(a) == hash(b)
    assert len({a, b, c}) == 2
    assert sorted([c, a]) == [a, c]
    with pytest.raises(AttributeError):
        a.value = 5  # type: ignore[misc]


@given(asn=st.integers(0, 0xFFFF), value=st.integers(0, 0xFFFFFFFF))
def test_route_target_two_octet_round_trip(asn: int, value: int) -> None:
    rt = RouteTarget.parse(f"{asn}:{value}")
    assert RouteTarget.parse(str(rt)) == rt
    assert rt.is_two_octet_as


@given(asn=st.integers(0x10000, 0xFFFFFFFF), value=st.integers(0, 0xFFFF))
def test_route_target_four_octet_round_trip(asn: int, value: int) -> None:
    rt = RouteTarget.parse(f"{asn}:{value}")
    assert RouteTarget.parse(str(rt)) == rt
    assert not rt.is_two_octet_as


@given(asn=st.integers(0x10000, 0xFFFFFFFF), value=st.integers(0x10000, 0xFFFFFFFF))
def test_route_target_four_octet_rejects_wide_value(asn: int, value: int) -> None:
    with pytest.raises(RouteError):
        RouteTarget.parse(f"{asn}:{value}")


@given(ip=st.ip_addresses(v=4), value=st.integers(0, 0xFFFF))
def test_route_target_ipv4_round_trip(ip: ipaddress.IPv4Address, value: int) -> None:
    rt = RouteTarget.parse(f"{ip}:{value}")
    assert rt == RouteTarget(str(ip), value)
    assert RouteTarget.parse(str(rt)) == rt


@given(st.text(alphabet="0123456789.:-+abfx ", max_size=30))
def test_route_target_parse_never_raises_anything_but_route_error(text: str) -> None:
    try:
        rt = RouteTarget.parse(text)
    except RouteError:
        return
    assert RouteTarget.parse(str(rt)) == rt


# -- RouteDistinguisher ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("10.0.0.101:100", "10.0.0.101:100"),
        ("10.0.0.101:0", "10.0.0.101:0"),
        ("10.0.0.101:65535", "10.0.0.101:65535"),
        ("10.0.0.101:00100", "10.0.0.101:100"),
        ("65001:100", "65001:100"),
        ("065001:0100", "65001:100"),
        ("0:0", "0:0"),
        ("65535:4294967295", "65535:4294967295"),  # type 0: 2-octet AS, 32-bit number
        ("4200000000:65535", "4200000000:65535"),  # type 2: 4-octet AS, 16-bit number
    ],
)
def test_route_distinguisher_parse_valid(text: str, canonical: str) -> None:
    rd = RouteDistinguisher.parse(text)
    assert rd.text == canonical
    assert str(rd) == canonical
    assert RouteDistinguisher.parse(str(rd)) == rd


@pytest.mark.parametrize(
    "text",
    [
        "",
        "10.0.0.1",
        "10.0.0.1:",
        "10.0.0.1:-1",
        "10.0.0.1:x",
        ":100",
        "host:100",
        "::1:100",
        "10.0.0.300:1",
        "10.0.0.1:65536",  # type 1 only has a 16-bit number
    ],
)
def test_route_distinguisher_parse_invalid(text: str) -> None:
    with pytest.raises(RouteError, match="route distinguisher"):
        RouteDistinguisher.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "65000:4294967296",  # type 0: assigned number is 32 bits
        "70000:70000",  # type 2: 4-octet AS carries only a 16-bit number
        "4294967296:1",  # no RD type has an AS wider than 32 bits
    ],
)
def test_route_distinguisher_parse_rejects_out_of_range_asn_forms(text: str) -> None:
    # RFC 4364 4.2: type 0 = 2-octet AS + 4-octet number, type 2 = 4-octet AS + 2-octet
    # number. Anything else cannot be put on the wire (ip_based checks its range the same way).
    with pytest.raises(RouteError):
        RouteDistinguisher.parse(text)


@pytest.mark.parametrize("text", ["²:1", "65000:²"])
def test_route_distinguisher_parse_non_ascii_digits_raise_route_error(text: str) -> None:
    with pytest.raises(RouteError):
        RouteDistinguisher.parse(text)


def test_route_distinguisher_ip_based() -> None:
    rd = RouteDistinguisher.ip_based(V4("10.0.0.101"), 100)
    assert rd == RouteDistinguisher("10.0.0.101:100")
    assert RouteDistinguisher.ip_based(V4("10.0.0.1"), 0).text == "10.0.0.1:0"
    assert RouteDistinguisher.ip_based(V4("10.0.0.1"), 65535).text == "10.0.0.1:65535"


@pytest.mark.parametrize("assigned", [-1, 65536, 0xFFFFFF])
def test_route_distinguisher_ip_based_range(assigned: int) -> None:
    with pytest.raises(RouteError, match="0..65535"):
        RouteDistinguisher.ip_based(V4("10.0.0.1"), assigned)


@given(ip=st.ip_addresses(v=4), assigned=st.integers(0, 0xFFFF))
def test_route_distinguisher_ip_based_equals_parse(ip: ipaddress.IPv4Address, assigned: int) -> None:
    assert RouteDistinguisher.ip_based(ip, assigned) == RouteDistinguisher.parse(f"{ip}:{assigned}")


@given(st.text(alphabet="0123456789.:-+abfx ", max_size=30))
def test_route_distinguisher_parse_never_raises_anything_but_route_error(text: str) -> None:
    try:
        rd = RouteDistinguisher.parse(text)
    except RouteError:
        return
    assert RouteDistinguisher.parse(str(rd)) == rd


# -- is_number ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0", "7", "65000", "0065000", "4294967296"])
def test_is_number_ascii_digits(text: str) -> None:
    assert is_number(text)


@pytest.mark.parametrize("text", ["", " 1", "1 ", "-1", "+1", "1.0", "\u00b2", "\u0661", "\uff11", "1\n", "0x10", "1_000"])
def test_is_number_rejects_everything_else(text: str) -> None:
    assert not is_number(text)


# -- route keys ----------------------------------------------------------------------


def _attrs(nh: str = "10.0.0.2") -> PathAttrs:
    return PathAttrs(next_hop=ipaddress.ip_address(nh))


def test_route_keys_and_vtep() -> None:
    rd = RouteDistinguisher.parse("10.0.0.2:100")
    imet = ImetRoute(rd, 0, V4("10.0.0.2"), _attrs("10.0.0.9"), pmsi_vni=100, pmsi_type=6)
    assert imet.key == ("imet", "10.0.0.2:100", 0, "10.0.0.2")
    assert imet.vtep == V4("10.0.0.2")  # originator, not the next hop
    # the key does not depend on the attributes, so an update replaces the previous version
    assert ImetRoute(rd, 0, V4("10.0.0.2"), _attrs(), pmsi_vni=200).key == imet.key

    mac = MacIpRoute(rd, 5, "aa:bb:cc:dd:ee:ff", None, 100, _attrs("10.0.0.3"))
    assert mac.key == ("macip", "10.0.0.2:100", 5, "aa:bb:cc:dd:ee:ff", "")
    assert mac.vtep == V4("10.0.0.3")
    mac_ip = MacIpRoute(rd, 5, "aa:bb:cc:dd:ee:ff", V4("192.168.1.1"), 100, _attrs())
    assert mac_ip.key[-1] == "192.168.1.1"

    prefix = PrefixRoute(rd, 0, ipaddress.ip_network("10.0.0.2/32"), 100, _attrs())
    assert prefix.key == ("prefix", "10.0.0.2:100", 0, "10.0.0.2/32")
    assert len({imet.key, mac.key, mac_ip.key, prefix.key}) == 4
