"""Unit tests for agent/ownedset.py: the packed set behaves as a plain set of entries."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent import ownedset
from agent.ownedset import OwnedSet, mac_int, mac_text
from tests.unit.builders import N, U

ENTRIES = [U(dev, mac, vtep) for dev in ("vx100", "vx200") for mac in ("aa:bb:cc:dd:ee:01", "02:00:00:00:00:02", "AA:BB:CC:DD:EE:01")
           for vtep in ("10.0.0.2", "10.0.0.3", "2001:db8::1")]
ENTRIES += [N(br, ip, mac) for br in ("br100", "br200") for ip in ("192.168.1.5", "10.255.0.1", "2001:db8::5")
            for mac in ("aa:bb:cc:dd:ee:01", "02:00:00:00:00:02", "0x:00:00:00:00:02")]


def test_mac_round_trip_only_for_the_canonical_spelling() -> None:
    assert mac_text(mac_int("aa:bb:cc:dd:ee:01")) == "aa:bb:cc:dd:ee:01"  # type: ignore[arg-type]
    assert mac_int("AA:BB:CC:DD:EE:01") is None and mac_int("aabb.ccdd.ee01") is None and mac_int("0x:00:00:00:00:02") is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from(ENTRIES)), max_size=80), st.integers(0, 3))
def test_behaves_as_a_set_through_adds_removes_and_merges(ops: list, merge_min: int) -> None:
    old = ownedset.MERGE_MIN
    ownedset.MERGE_MIN = merge_min  # tiny: merges happen all the time
    try:
        packed, plain = OwnedSet(), set()
        for add, entry in ops:
            (packed.add if add else packed.discard)(entry)
            (plain.add if add else plain.discard)(entry)
            assert (entry in packed) == (entry in plain)
            if len(plain) % 3 == 0:
                packed.settle()
        assert packed == plain and plain == packed and len(packed) == len(plain)
        assert sorted(map(repr, packed)) == sorted(map(repr, plain))  # equal entries, spelled the same
        assert sorted(map(repr, packed.packed())) == sorted(map(repr, plain))  # the key-set copy, pending changes included
        assert packed - {ENTRIES[0]} == plain - {ENTRIES[0]} and packed & set(ENTRIES[:5]) == plain & set(ENTRIES[:5])
        assert sorted(map(repr, packed.by_device(["vx100", "br200"]))) == sorted(repr(e) for e in plain if e.device in ("vx100", "br200"))
    finally:
        ownedset.MERGE_MIN = old


def test_many_entries_pack_and_merge() -> None:
    entries = [U("vx100", f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}", f"10.0.{i % 7}.1") for i in range(5000)]
    packed = OwnedSet(entries)
    packed.settle()
    assert len(packed) == 5000 and all(e in packed for e in entries) and set(packed) == set(entries)
    for e in entries[::2]:
        packed.discard(e)
    packed.settle()
    assert set(packed) == set(entries[1::2]) and entries[0] not in packed
