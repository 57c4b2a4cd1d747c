"""agent.kernel.Kernel against the real kernel in a throwaway namespace itkern-<pid>: bulk add, read
back, ownership answers (someone else's entry, already gone), bulk delete — the calls the reconciler
makes, with what `bridge fdb show` / `ip neigh show` say as the judge."""

from __future__ import annotations

import ipaddress
import os
import subprocess
from collections.abc import Iterator

import pytest

from agent.entries import FdbEntry, NeighEntry, flood_entry
from agent.errors import KernelError
from agent.kernel import Kernel

COUNT = 3000


def run(ns: str, *args: str) -> str:
    result = subprocess.run(["ip", "netns", "exec", ns, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{args}: {result.stderr}"
    return result.stdout


@pytest.fixture
def ns() -> Iterator[str]:
    name = f"itkern-{os.getpid()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for command in ("ip link add br0 type bridge", "ip link add vxlan100 type vxlan id 100 dstport 4789 local 10.0.0.1 nolearning",
                        "ip link set vxlan100 master br0", "ip link set br0 up", "ip link set vxlan100 up"):
            run(name, *command.split())
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def unicast(found: set[FdbEntry | NeighEntry]) -> set[FdbEntry | NeighEntry]:
    """Without the bridge's own multicast neighbours (IGMP/MLD reports it sends: not the agent's business)."""
    return {e for e in found if not (isinstance(e, NeighEntry) and e.ip.is_multicast)}


def _mac(i: int) -> str:
    return f"02:aa:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"


def test_bulk_add_read_delete_with_ownership_answers(ns: str) -> None:
    vteps = [ipaddress.ip_address(f"10.0.1.{i}") for i in range(1, 21)]
    entries: list[FdbEntry | NeighEntry] = [flood_entry("vxlan100", v) for v in vteps]
    entries += [FdbEntry("vxlan100", _mac(i), vteps[i % 20]) for i in range(COUNT)]
    entries += [NeighEntry("br0", ipaddress.ip_address(f"192.168.{i >> 8}.{i & 255}"), _mac(i)) for i in range(1, COUNT)]
    # someone else's neighbour entry: adding the same one answers False (the kernel says EEXIST). An
    # identical flood destination cannot be told apart (append of an existing one succeeds): the
    # reconciler never asks for what a full read found present.
    run(ns, "ip", "neigh", "add", "192.168.200.1", "lladdr", "02:bb:00:00:00:01", "dev", "br0", "nud", "permanent")
    with Kernel(netns=ns) as kernel:
        foreign = NeighEntry("br0", ipaddress.ip_address("192.168.200.1"), "02:bb:00:00:00:01")
        outcomes = kernel.add_many(entries + [foreign])
        assert outcomes[:-1] == [True] * len(entries) and outcomes[-1] is False
        assert unicast(kernel.entries(["vxlan100"], ["br0"])) == set(entries) | {foreign}
        v6 = [NeighEntry("br0", ipaddress.ip_address("2001:db8::8"), _mac(2))]  # (an IPv4 vxlan device takes no IPv6 VTEP)
        assert kernel.add_many(v6) == [True]
        packed = kernel.packed_entries(["vxlan100"], ["br0"])  # what a full sync compares: the same read, packed
        assert unicast(set(packed.others)) == set(v6)  # IPv6 does not pack: kept as entries
        assert unicast(set(packed)) == set(entries) | {foreign} | set(v6)
        assert kernel.delete_many(v6) == [True]
        shown = run(ns, "bridge", "fdb", "show", "dev", "vxlan100")
        assert len([line for line in shown.splitlines() if " dst " in line]) == COUNT + 20
        assert len([line for line in shown.splitlines() if "master br0" in line and "extern_learn" in line]) == COUNT
        assert len(run(ns, "ip", "neigh", "show", "dev", "br0").splitlines()) == COUNT  # ours and the foreign one

        removed = kernel.delete_many(entries)
        assert removed == [True] * len(entries)
        assert kernel.delete_many(entries[:3]) == [False] * 3  # already gone
        assert unicast(kernel.entries(["vxlan100"], ["br0"])) == {foreign}
        assert "extern_learn" not in run(ns, "bridge", "fdb", "show", "dev", "vxlan100")

        missing = kernel.add_many([FdbEntry("vxlan999", _mac(1), vteps[0])])
        assert isinstance(missing[0], KernelError) and "vxlan999" in str(missing[0])
        assert kernel.delete_many([FdbEntry("vxlan999", _mac(1), vteps[0])]) == [False]


def test_entries_looked_up_one_by_one_match_exactly(ns: str) -> None:
    """`present_packed` (a restart's check of the entries its ledger does not name): an entry counts as
    present only with the same VTEP (FDB) or the same MAC (neighbour), as the full read compares."""
    from agent.ownedset import FDB, NEIGH, fdb_key, neigh_key

    vtep, other = ipaddress.ip_address("10.0.1.1"), ipaddress.ip_address("10.0.1.2")
    ip, ip2 = ipaddress.ip_address("192.168.0.5"), ipaddress.ip_address("192.168.0.6")
    with Kernel(netns=ns) as kernel:
        assert kernel.add_many([FdbEntry("vxlan100", _mac(1), vtep), NeighEntry("br0", ip, _mac(1)),
                                flood_entry("vxlan100", vtep)]) == [True] * 3
        fdb = {name: fdb_key(mac, at) for name, (mac, at) in {"same": (_mac(1), vtep), "elsewhere": (_mac(1), other),
                                                               "absent": (_mac(2), vtep)}.items()}
        neigh = {name: neigh_key(addr, mac) for name, (addr, mac) in {"same": (ip, _mac(1)), "other mac": (ip, _mac(2)),
                                                                     "absent": (ip2, _mac(1))}.items()}
        assert kernel.present_packed(FDB, "vxlan100", sorted(fdb.values())) == {fdb["same"]}  # type: ignore[arg-type]
        assert kernel.present_packed(NEIGH, "br0", sorted(neigh.values())) == {neigh["same"]}  # type: ignore[arg-type]
        keys = [fdb_key(_mac(i), vtep) for i in range(3, 3003)]  # many per send(): all absent
        assert kernel.present_packed(FDB, "vxlan100", keys) == set()  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="first remote only"):
            kernel.present_packed(FDB, "vxlan100", [fdb_key("00:00:00:00:00:00", vtep)])  # type: ignore[list-item]
        assert kernel.present_packed(FDB, "nosuchdev", [fdb["same"]]) == set()  # type: ignore[list-item]
