"""Unit tests for agent/addresses.py: the one rule for VTEP addresses and VM addresses, exhaustively."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.addresses import host_ip_problem, vtep_problem

ip = ipaddress.ip_address
NET = ipaddress.ip_network("192.168.100.0/24")
NET6 = ipaddress.ip_network("2001:db8:100::/64")

BAD_ANYWHERE = {
    "0.0.0.0": "unspecified", "::": "unspecified",
    "127.0.0.1": "loopback", "127.255.0.9": "loopback", "::1": "loopback",
    "224.0.0.1": "multicast", "239.1.2.3": "multicast", "ff02::1": "multicast",
    "255.255.255.255": "broadcast",
    "0.1.2.3": "this network",
    "169.254.0.0": "link-local", "169.254.10.20": "link-local", "fe80::1": "link-local",
    "240.0.0.1": "reserved", "250.1.1.1": "reserved",
}


@pytest.mark.parametrize("text,why", sorted(BAD_ANYWHERE.items()))
def test_never_a_vtep(text: str, why: str) -> None:
    problem = vtep_problem(ip(text))
    assert problem is not None and (why in problem or "IPv4" in problem)


@pytest.mark.parametrize("text,why", sorted(BAD_ANYWHERE.items()))
def test_never_a_host(text: str, why: str) -> None:
    problem = host_ip_problem(ip(text))
    assert problem is not None and why in problem


@pytest.mark.parametrize("text", ["10.0.0.101", "172.16.5.5", "192.0.2.1", "100.64.0.1", "8.8.8.8", "10.255.255.254"])
def test_usable_vteps(text: str) -> None:
    assert vtep_problem(ip(text)) is None


def test_ipv6_vtep_is_refused() -> None:
    assert "IPv4" in (vtep_problem(ip("2001:db8::1")) or "")


@pytest.mark.parametrize("text", ["192.168.100.1", "192.168.100.37", "192.168.100.254"])
def test_host_inside_its_subnet(text: str) -> None:
    assert host_ip_problem(ip(text), [NET]) is None


@pytest.mark.parametrize("text,why", [
    ("192.168.100.0", "network address"), ("192.168.100.255", "broadcast address"),
    ("10.99.99.99", "outside"), ("192.168.101.1", "outside"), ("2001:db8:200::5", "outside"),
])
def test_host_outside_or_special_in_its_subnet(text: str, why: str) -> None:
    problem = host_ip_problem(ip(text), [NET, NET6])
    assert problem is not None and why in problem


def test_ipv6_host_inside_subnet_and_point_to_point_v4() -> None:
    assert host_ip_problem(ip("2001:db8:100::5"), [NET, NET6]) is None
    p2p = ipaddress.ip_network("10.1.1.0/31")
    assert host_ip_problem(ip("10.1.1.0"), [p2p]) is None and host_ip_problem(ip("10.1.1.1"), [p2p]) is None


def test_no_subnets_means_any_subnet() -> None:
    assert host_ip_problem(ip("10.99.99.99")) is None


@given(st.ip_addresses())
def test_rule_is_total_and_consistent(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    """Every address gets an answer, never an exception; what the common rule refuses, both refuse."""
    v, h = vtep_problem(addr), host_ip_problem(addr)
    if h is not None:
        assert v is not None
    if addr.is_multicast or addr.is_loopback or addr.is_unspecified or addr.is_link_local:
        assert v is not None and h is not None


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_host_in_subnet_iff_inside_and_not_network_or_broadcast(n: int) -> None:
    addr = ipaddress.IPv4Address(n)
    ok = host_ip_problem(addr, [NET]) is None
    assert ok == (addr in NET and addr not in (NET.network_address, NET.broadcast_address))


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.integers(0, 0xFFFFFFFF), st.sampled_from([0, 0x7F000001, 0xE0000001, 0xFFFFFFFF, 0x00000001, 0xA9FE0101,
                                                                0xF0000001, 0xEFFFFFFF, 0xDFFFFFFF, 0x0A000001])))
def test_the_ipv4_integer_checks_are_ipaddress_s(n: int) -> None:
    """_v4_problem (the fast path) says what the ipaddress properties say, in the same order."""
    from agent.addresses import _v4_problem

    addr = ipaddress.IPv4Address(n)
    expected = next((why for test, why in (
        (addr.is_unspecified, "unspecified"), (addr.is_loopback, "loopback"), (addr.is_multicast, "multicast"),
        (addr == ipaddress.IPv4Address("255.255.255.255"), "broadcast"), (addr in ipaddress.ip_network("0.0.0.0/8"), "in 0.0.0.0/8 (this network)"),
        (addr.is_link_local, "link-local"), (addr.is_reserved, "reserved (240.0.0.0/4)")) if test), None)
    assert _v4_problem(n) == expected


_NETS = [ipaddress.ip_network(n) for n in ("10.1.0.0/16", "10.1.2.0/24", "192.168.7.0/30", "192.168.7.4/31",
                                            "192.168.7.8/32", "2001:db8::/64", "172.16.0.0/12")]


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.integers(0, 0xFFFFFFFF), st.sampled_from([0x0A010000, 0x0A01FFFF, 0x0A010200, 0x0A0102FF, 0xC0A80700,
                                                                0xC0A80703, 0xC0A80704, 0xC0A80705, 0xC0A80708, 0xAC100000])),
       st.lists(st.sampled_from(_NETS), max_size=4))
def test_the_ipv4_host_check_on_integers_is_the_ipaddress_one(n: int, nets: list) -> None:
    """host_ip_problem's IPv4 fast path answers what the rule written with ipaddress answers, word for word."""
    addr = ipaddress.IPv4Address(n)
    from agent.addresses import _common_problem

    def reference() -> str | None:
        problem = _common_problem(addr)
        if problem is not None or not nets:
            return problem
        inside = [net for net in nets if net.version == 4 and addr in net]
        if not inside:
            return f"outside the network's subnets {', '.join(map(str, nets))}"
        for net in inside:
            if net.prefixlen <= 30 and addr == net.network_address:
                return f"the network address of {net}"
            if net.prefixlen <= 30 and addr == net.broadcast_address:
                return f"the broadcast address of {net}"
        return None

    assert host_ip_problem(addr, nets) == reference()
    assert host_ip_problem(addr, tuple(nets)) == reference()
