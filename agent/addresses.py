"""What a VTEP address and what a VM's (host) IP address may be: the one rule, used for routes
received from BGP and for addresses snooped from local VMs alike.

A route that breaks the rule is refused and counted (never installed, never a crash): a flood
entry towards 255.255.255.255 loops broadcasts back, a neighbour entry for 224.0.0.1 or for a
subnet's broadcast address poisons ARP for everyone on the segment.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, Union

from .routes import IPAddress

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # RFC 1122 "this network": never a destination
_LIMITED_BROADCAST = ipaddress.ip_address("255.255.255.255")


def _v4_problem(n: int) -> str | None:
    """_common_problem for an IPv4 address as an integer: the same checks in the same order, on the
    integer (ipaddress's is_* properties build a network per call: ~10 us per address)."""
    if n == 0:
        return "unspecified"
    top = n >> 24
    if top == 127:
        return "loopback"
    if n >> 28 == 0xE:
        return "multicast"
    if n == 0xFFFFFFFF:
        return "broadcast"
    if top == 0:
        return "in 0.0.0.0/8 (this network)"
    if n >> 16 == 0xA9FE:
        return "link-local"
    if n >> 28 == 0xF:
        return "reserved (240.0.0.0/4)"
    return None


def _common_problem(addr: IPAddress) -> str | None:
    if type(addr) is ipaddress.IPv4Address:
        return _v4_problem(int(addr))
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_loopback:
        return "loopback"
    if addr.is_multicast:
        return "multicast"
    if addr == _LIMITED_BROADCAST:
        return "broadcast"
    if addr.version == 4 and addr in _THIS_NETWORK:
        return "in 0.0.0.0/8 (this network)"
    if addr.is_link_local:
        return "link-local"
    if addr.version == 4 and addr.is_reserved:
        return "reserved (240.0.0.0/4)"
    return None


def vtep_problem(addr: IPAddress) -> str | None:
    """Why `addr` cannot be a VTEP (a VXLAN tunnel end point of the IPv4 underlay); None if it can."""
    if addr.version != 4:
        return "not IPv4 (the underlay is IPv4)"
    return _common_problem(addr)


def host_ip_problem(addr: IPAddress, subnets: Iterable[IPNetwork] = ()) -> str | None:
    """Why `addr` cannot be a VM's address in a network with `subnets` (none given: any subnet);
    None if it can. A subnet's network and broadcast addresses are refused (IPv4, prefixes up to /30)."""
    if type(addr) is ipaddress.IPv4Address:
        return _v4_host_problem(addr._ip, subnets if type(subnets) is tuple else tuple(subnets))  # type: ignore[attr-defined]
    problem = _common_problem(addr)
    if problem is not None:
        return problem
    nets = tuple(subnets)
    if not nets:
        return None
    inside = [n for n in nets if n.version == addr.version and addr in n]
    if not inside:
        return f"outside the network's subnets {', '.join(map(str, nets))}"
    for net in inside:
        if net.version == 4 and net.prefixlen <= 30:
            if addr == net.network_address:
                return f"the network address of {net}"
            if addr == net.broadcast_address:
                return f"the broadcast address of {net}"
    return None


def _v4_host_problem(n: int, nets: tuple[IPNetwork, ...]) -> str | None:
    """host_ip_problem for an IPv4 address as an integer: the same checks in the same order, on integers
    (a table of 100k Type-2 routes checks 100k addresses: 2.5 -> 0.8 us each)."""
    problem = _v4_problem(n)
    if problem is not None:
        return problem
    if not nets:
        return None
    inside = False
    for net in nets:
        if net.version != 4:
            continue
        low, high = net.network_address._ip, net.broadcast_address._ip  # type: ignore[union-attr]
        if not low <= n <= high:
            continue
        inside = True
        if net.prefixlen <= 30:
            if n == low:
                return f"the network address of {net}"
            if n == high:
                return f"the broadcast address of {net}"
    return None if inside else f"outside the network's subnets {', '.join(map(str, nets))}"
