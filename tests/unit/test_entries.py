"""Unit tests for agent/entries.py: the kernel entry values and their order."""

from __future__ import annotations

import ipaddress


from agent.entries import ZERO_MAC, FdbEntry, KernelEntry, NeighEntry, entry_sort_key, flood_entry

from tests.unit.builders import IP1, MAC2, MAC, E, N, U, ip

# -- FdbEntry -------------------------------------------------------------------------------


def test_flood_entry_helper_and_is_flood() -> None:
    entry = flood_entry("vx100", ip("10.0.0.2"))
    assert entry == FdbEntry("vx100", ZERO_MAC, ip("10.0.0.2"))
    assert entry.mac == "00:00:00:00:00:00"
    assert entry.is_flood
    assert not U("vx100", MAC, "10.0.0.2").is_flood
    assert sorted([U("vx100", MAC, "10.0.0.2"), E("vx100", "10.0.0.2")]) == [E("vx100", "10.0.0.2"), U("vx100", MAC, "10.0.0.2")]


# -- entry_sort_key ---------------------------------------------------------------------------------


def test_entry_sort_key_orders_mixed_entries() -> None:
    entries: list[KernelEntry] = [
        N("br100", "2001:db8::1"),
        N("br100", "192.168.0.10"),
        N("br100", "192.168.0.9", MAC2),
        N("br100", "192.168.0.9", MAC),
        N("br099", "192.168.0.200"),
        U("vx100", MAC, "10.0.0.10"),
        U("vx100", MAC, "10.0.0.9"),
        U("vx100", MAC, "2001:db8::9"),
        E("vx100", "10.0.0.10"),
        E("vx100", "10.0.0.9"),
        E("vx099", "10.0.0.200"),
    ]
    assert sorted(entries, key=entry_sort_key) == [
        # FDB entries first: by device, MAC (the zero MAC first), then VTEP numerically (IPv4 before IPv6)
        E("vx099", "10.0.0.200"),
        E("vx100", "10.0.0.9"),
        E("vx100", "10.0.0.10"),
        U("vx100", MAC, "10.0.0.9"),
        U("vx100", MAC, "10.0.0.10"),
        U("vx100", MAC, "2001:db8::9"),
        # then neighbour entries: by bridge, then IP numerically (IPv4 before IPv6), then MAC
        N("br099", "192.168.0.200"),
        N("br100", "192.168.0.9", MAC2),  # aa:bb:cc:dd:ee:02
        N("br100", "192.168.0.9", MAC),  # aa:bb:cc:dd:ee:ff
        N("br100", "192.168.0.10"),
        N("br100", "2001:db8::1"),
    ]


def test_entry_sort_key_is_a_total_order_on_distinct_entries() -> None:
    entries = [E("vx100", "10.0.0.2"), U("vx100", MAC, "10.0.0.2"), N("br100", "10.0.0.2"), N("br100", "::a"), U("vx100", MAC, "::2")]
    keys = [entry_sort_key(e) for e in entries]
    assert len(set(keys)) == len(entries)


def test_neigh_entry_is_hashable_and_compares_by_value() -> None:
    assert N("br100", IP1) == NeighEntry("br100", ipaddress.IPv4Address(IP1), MAC)
    assert len({N("br100", IP1), N("br100", IP1), N("br100", IP1, MAC2)}) == 2
    assert N("br100", IP1) != U("br100", MAC, IP1)


