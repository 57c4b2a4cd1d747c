"""Unit tests for agent/mactable.py: local MACs, MAC mobility sequences, duplicate detection, IP binding."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.localmacs import LocalMac
from agent.mactable import MAX_SEQUENCE, Forgotten, IpRebound, Learned, LocalMacTable, next_sequence

VM = LocalMac(100, "02:00:00:00:00:01")
VM2 = LocalMac(100, "02:00:00:00:00:02")
IP = ipaddress.ip_address("192.168.100.11")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def table(max_moves: int = 5, window: float = 180.0) -> tuple[LocalMacTable, Clock]:
    clock = Clock()
    return LocalMacTable(max_moves, window, clock), clock


def test_new_mac_nobody_else_has_gets_sequence_zero() -> None:
    t, _ = table()
    assert t.arrived(VM, None) == Learned(VM, 0)
    assert VM in t and t.sequence(VM) == 0 and len(t) == 1


def test_mac_arriving_from_another_vtep_outbids_it() -> None:
    t, _ = table()
    assert t.arrived(VM, 7) == Learned(VM, 8)


def test_known_mac_arriving_again_is_nothing_new() -> None:
    t, _ = table()
    t.arrived(VM, None)
    assert t.arrived(VM, None) is None


def test_left_returns_what_to_withdraw() -> None:
    t, _ = table()
    t.arrived(VM, 3)
    assert t.left(VM) == Forgotten(VM, 4)
    assert VM not in t
    assert t.left(VM) is None


@pytest.mark.parametrize("remote", [MAX_SEQUENCE, MAX_SEQUENCE + 5])
def test_remote_claim_at_the_top_of_the_range_freezes_instead_of_overflowing(remote: int) -> None:
    t, _ = table()
    assert t.arrived(VM, remote) is None
    assert VM in t.frozen and VM not in t


def test_next_sequence_bounds() -> None:
    assert next_sequence(None) == 0
    assert next_sequence(0) == 1
    assert next_sequence(MAX_SEQUENCE - 1) == MAX_SEQUENCE
    assert next_sequence(MAX_SEQUENCE) is None


@given(st.one_of(st.none(), st.integers(min_value=0, max_value=2**40)))
def test_next_sequence_is_always_a_32_bit_value_or_none(remote: int | None) -> None:
    result = next_sequence(remote)
    assert result is None or 0 <= result <= MAX_SEQUENCE
    if result is not None and remote is not None:
        assert result > remote


def test_more_than_max_moves_in_the_window_freezes() -> None:
    """Arriving while another VTEP holds the MAC is a move, and so is losing it to a higher sequence."""
    t, clock = table(max_moves=3, window=60)
    clock.now += 1
    assert t.arrived(VM, 1) == Learned(VM, 2)  # move 1
    assert t.remote_claim(VM, 3, "10.0.0.9")  # move 2
    t.left(VM)
    assert t.arrived(VM, 3) == Learned(VM, 4)  # move 3: still allowed
    assert VM not in t.frozen
    assert t.remote_claim(VM, 5, "10.0.0.9")  # move 4 > 3: frozen
    assert VM in t.frozen
    assert t.left(VM) is None and t.arrived(VM, 100) is None  # frozen: this host says nothing more about it


def test_moves_outside_the_window_do_not_accumulate() -> None:
    t, clock = table(max_moves=2, window=10)
    for _ in range(6):
        clock.now += 11
        assert not t.record_move(VM, "test")
    assert VM not in t.frozen


def test_frozen_mac_is_not_forgotten_when_it_leaves() -> None:
    t, _ = table(max_moves=0)
    t.arrived(VM, None)
    assert t.remote_claim(VM, 5, "10.0.0.9")
    assert VM in t.frozen
    assert t.left(VM) is None


def test_remote_claim_with_lower_or_equal_sequence_is_no_move() -> None:
    t, _ = table()
    t.arrived(VM, 4)  # seq 5
    moves = len(t.moves[VM])  # the arrival itself was one
    assert not t.remote_claim(VM, 5, "10.0.0.9")
    assert not t.remote_claim(VM, 1, "10.0.0.9")
    assert len(t.moves[VM]) == moves


def test_resequence_keeps_own_sequence_or_outbids() -> None:
    t, _ = table()
    t.adopt(VM)
    assert t.resequence(VM, own_advertised=3, remote_sequence=None) == 3
    assert t.resequence(VM, own_advertised=3, remote_sequence=None) is None
    assert t.resequence(VM, own_advertised=3, remote_sequence=9) == 10
    assert t.resequence(VM, own_advertised=3, remote_sequence=MAX_SEQUENCE) == 3


def test_adopt_only_once() -> None:
    t, _ = table()
    assert t.adopt(VM)
    assert not t.adopt(VM, 5)
    assert t.sequence(VM) == 0


def test_bind_ip_and_rebind_to_another_mac() -> None:
    t, _ = table()
    assert t.bind_ip(100, VM.mac, IP) == IpRebound(100, IP, VM, None)
    assert t.bind_ip(100, VM.mac, IP) is None
    assert t.bind_ip(100, VM2.mac, IP) == IpRebound(100, IP, VM2, VM)
    assert t.ips_of(VM) == [] and t.ips_of(VM2) == [IP]


def test_ips_of_is_ordered_numerically_v4_before_v6() -> None:
    t, _ = table()
    for text in ["192.168.100.20", "2001:db8::1", "192.168.100.3"]:
        t.bind_ip(100, VM.mac, ipaddress.ip_address(text))
    assert [str(ip) for ip in t.ips_of(VM)] == ["192.168.100.3", "192.168.100.20", "2001:db8::1"]


def test_drop_vnis_returns_advertised_macs_and_forgets_ips() -> None:
    t, _ = table()
    other = LocalMac(200, "02:00:00:00:00:09")
    t.arrived(VM, None)
    t.arrived(other, 2)
    t.bind_ip(200, other.mac, IP)
    assert t.drop_vnis({100}) == [Forgotten(other, 3)]
    assert other not in t and t.ips_of(other) == [] and (200, IP) not in t.ip_owner
    assert VM in t


def test_per_port_limit_stops_a_mac_flood_and_counts_it() -> None:
    t = LocalMacTable(max_per_port=3, max_per_vni=100)
    learned = [t.arrived(LocalMac(100, f"02:00:00:00:01:{i:02x}"), None, port=7) for i in range(10)]
    assert sum(1 for x in learned if x is not None) == 3 and t.limited == 7
    assert t.arrived(LocalMac(100, "02:00:00:00:02:01"), None, port=8) is not None  # another port is fine
    t.left(LocalMac(100, "02:00:00:00:01:00"))
    assert t.arrived(LocalMac(100, "02:00:00:00:01:09"), None, port=7) is not None  # room again


def test_per_vni_limit_and_adopt_respects_limits() -> None:
    t = LocalMacTable(max_per_port=100, max_per_vni=2)
    assert t.adopt(LocalMac(100, "02:00:00:00:00:01"), 0, 5)
    assert t.adopt(LocalMac(100, "02:00:00:00:00:02"), 0, 6)
    assert not t.adopt(LocalMac(100, "02:00:00:00:00:03"), 0, 7)
    assert t.arrived(LocalMac(200, "02:00:00:00:00:03"), None, 7) is not None  # another VNI
    assert t.drop_vnis({200}) and t.per_vni[100] == 0 and t.arrived(LocalMac(100, "02:00:00:00:00:09"), None, 5)


def test_one_remote_claim_seen_twice_is_one_move() -> None:
    """A VTEP's MAC-only and MAC/IP routes carry the same sequence: together they are one move."""
    t, _ = table()
    t.arrived(VM, None)
    assert t.remote_claim(VM, 3, "10.0.0.9") and t.remote_claim(VM, 3, "10.0.0.9")
    assert t.moves_total == 1
