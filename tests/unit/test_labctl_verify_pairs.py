"""Which host pairs verify's packet checks probe: every pair on small labs, a ring sample on big ones."""

from __future__ import annotations

from labctl.generate import generate
from labctl.topology import parse_topology
from labctl.verify import ALL_PAIRS_UP_TO, SAMPLED_PAIRS, host_pairs
from tests.unit.labctl_builders import topology


def test_small_lab_probes_every_pair_and_says_nothing() -> None:
    hosts = list(topology("t", hosts=ALL_PAIRS_UP_TO, vms_per_host=1).hosts)
    pairs, note = host_pairs(hosts)
    assert len(pairs) == ALL_PAIRS_UP_TO * (ALL_PAIRS_UP_TO - 1) // 2 and note == ""


def test_big_lab_probes_a_ring_sample_and_says_so() -> None:
    hosts = list(parse_topology(generate(50, 1)).hosts)
    pairs, note = host_pairs(hosts)
    assert len(pairs) <= SAMPLED_PAIRS
    assert note.startswith(f"sampled {len(pairs)} of 1225 host pairs")
    assert all(a is not b for a, b in pairs)
    ends = {h.name for pair in pairs for h in pair}
    assert len(ends) >= 2 * len(pairs) - 1  # spread over the ring, not one host again and again


def test_seven_hosts_ring_covers_every_host() -> None:
    hosts = list(topology("t", hosts=7, vms_per_host=1).hosts)
    pairs, note = host_pairs(hosts)
    assert len(pairs) == 7 and "of 21" in note
    assert {h.name for pair in pairs for h in pair} == {h.name for h in hosts}
