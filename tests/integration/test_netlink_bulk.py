"""agent.netlink_bulk against the real kernel, in a throwaway namespace itnlb-<pid> (bridge br0 with
vxlan100): 2,000 entries of each kind applied in bulk, read back with our dump parser and with
iproute2 (`bridge fdb show`, `ip neigh show`), deleted again; errors matched to their entry."""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pyroute2.netlink.rtnl.ndmsg import (
    NTF_EXT_LEARNED,
    NTF_SELF,
    NUD_NOARP,
    NUD_PERMANENT,
)

from agent.localmacs import BridgeScope, dump_local, local_from_records
from agent.netlink_bulk import Kind, NeighRecord, NetlinkBulk, Op, Request, open_socket

COUNT = 2000
FLOODS = 50
ZERO = "00:00:00:00:00:00"


@dataclass
class Lab:
    ns: str
    bridge: int
    vxlan: int


def run(ns: str, *args: str) -> str:
    result = subprocess.run(["ip", "netns", "exec", ns, *args], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{args}: {result.stderr}"
    return result.stdout


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A namespace named itnlb-<pid> (test cleanup removes every it* namespace), removed even on failure."""
    ns = f"itnlb-{os.getpid()}"
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for command in (
            "ip link add br0 type bridge",
            "ip link add vxlan100 type vxlan id 100 dstport 4789 local 10.0.0.1 nolearning",
            "ip link set vxlan100 master br0",
            "ip link set br0 up",
            "ip link set vxlan100 up",
        ):
            run(ns, *command.split())
        links = {link["ifname"]: link["ifindex"] for link in json.loads(run(ns, "ip", "-j", "link", "show"))}
        yield Lab(ns, links["br0"], links["vxlan100"])
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def mac(i: int) -> str:
    return f"02:42:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}:07"


def vtep(i: int) -> str:
    return f"10.{1 + (i >> 16 & 127)}.{i >> 8 & 255}.{i & 255}"


def neigh_ip(i: int) -> str:
    return f"192.168.{i >> 8 & 255}.{i & 255}" if i % 2 else f"fd00::{i:x}"


def entries(lab: Lab, op: Op) -> list[Request]:
    out: list[Request] = []
    for i in range(COUNT):
        out.append(Request.vxlan(op, lab.vxlan, mac(i), vtep(i)))
        out.append(Request.bridge(op, lab.vxlan, mac(i)))
        out.append(Request.neigh(op, lab.bridge, neigh_ip(i), mac(i)))
    for i in range(FLOODS):
        out.append(Request.vxlan(op, lab.vxlan, ZERO, f"172.16.0.{i + 1}"))
    return out


def canon(ip: str) -> str:
    return str(ipaddress.ip_address(ip))


def expected_fdb() -> tuple[set[tuple[str, str]], set[str]]:
    vx = {(mac(i), canon(vtep(i))) for i in range(COUNT)} | {(ZERO, canon(f"172.16.0.{i + 1}")) for i in range(FLOODS)}
    return vx, {mac(i) for i in range(COUNT)}


def expected_neigh() -> set[tuple[str, str]]:
    return {(canon(neigh_ip(i)), mac(i)) for i in range(COUNT)}


def our_fdb(records: list[NeighRecord], lab: Lab) -> tuple[set[tuple[str, str]], set[str]]:
    vx: set[tuple[str, str]] = set()
    br: set[str] = set()
    for r in records:
        assert r.ifindex == lab.vxlan and r.family == socket.AF_BRIDGE
        if r.flags & NTF_SELF and r.dst is not None:
            assert r.state & NUD_PERMANENT and r.mac is not None
            vx.add((r.mac, canon(r.dst)))
        elif r.flags & NTF_EXT_LEARNED:
            assert r.master == lab.bridge and r.mac is not None
            br.add(r.mac)
    return vx, br


def our_neigh(records: list[NeighRecord], lab: Lab) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for r in records:
        assert r.ifindex == lab.bridge
        if r.flags & NTF_EXT_LEARNED:
            assert r.state == NUD_NOARP and r.dst is not None and r.mac is not None
            found.add((canon(r.dst), r.mac))
    return found


def iproute2_fdb(lab: Lab) -> tuple[set[tuple[str, str]], set[str]]:
    """`bridge fdb show dev vxlan100`: '<mac> dst <ip> self permanent', '<mac> extern_learn master br0'."""
    vx: set[tuple[str, str]] = set()
    br: set[str] = set()
    for line in run(lab.ns, "bridge", "fdb", "show", "dev", "vxlan100").splitlines():
        words = line.split()
        if "dst" in words and "self" in words:
            vx.add((words[0], canon(words[words.index("dst") + 1])))
        elif "extern_learn" in words and "master" in words:
            br.add(words[0])
    return vx, br


def iproute2_neigh(lab: Lab) -> set[tuple[str, str]]:
    """`ip neigh show dev br0`: '<ip> lladdr <mac> extern_learn NOARP'."""
    found: set[tuple[str, str]] = set()
    for version in ("-4", "-6"):
        for line in run(lab.ns, "ip", version, "neigh", "show", "dev", "br0").splitlines():
            words = line.split()
            if "extern_learn" in words and "lladdr" in words:
                assert "NOARP" in words, line
                found.add((canon(words[0]), words[words.index("lladdr") + 1]))
    return found


def test_bulk_add_dump_delete(lab: Lab) -> None:
    with NetlinkBulk(netns=lab.ns) as bulk:
        requests = entries(lab, Op.ADD)
        results = bulk.apply(requests)
        assert [r.request for r in results] == requests
        failed = [r for r in results if not r.ok]
        assert failed == []

        want_vx, want_br = expected_fdb()
        want_neigh = expected_neigh()
        assert len(want_vx) == COUNT + FLOODS and len(want_br) == len(want_neigh) == COUNT

        ours = our_fdb(bulk.dump_fdb(lab.vxlan), lab)
        assert ours == (want_vx, want_br)
        assert iproute2_fdb(lab) == (want_vx, want_br)
        assert our_neigh(bulk.dump_neigh(ifindex=lab.bridge), lab) == want_neigh
        assert iproute2_neigh(lab) == want_neigh
        # the kernel's filter: a dump of the bridge's own port list has none of the vxlan's entries
        assert all(r.ifindex == lab.bridge for r in bulk.dump_fdb(lab.bridge))
        # whole-table dump without a filter holds them too
        assert our_fdb([r for r in bulk.dump_fdb() if r.ifindex == lab.vxlan], lab) == (want_vx, want_br)

        # applying the same set again changes nothing and fails nowhere (replace / append) ...
        again = bulk.apply([r for r in requests if r.kind is not Kind.NEIGH])
        assert all(r.ok for r in again)
        # ... except Op.ADD of a neighbour, which (as agent.kernel) reports that it exists; replace does not
        neigh = [r for r in requests if r.kind is Kind.NEIGH]
        assert {r.error for r in bulk.apply(neigh)} == {errno.EEXIST}
        assert all(r.ok for r in bulk.apply([Request(Op.REPLACE, r.kind, r.ifindex, r.mac, r.ip) for r in neigh]))
        assert our_fdb(bulk.dump_fdb(lab.vxlan), lab) == (want_vx, want_br)

        results = bulk.apply(entries(lab, Op.DEL))
        assert [r for r in results if not r.ok] == []
        assert our_fdb(bulk.dump_fdb(lab.vxlan), lab) == (set(), set())
        assert iproute2_fdb(lab) == (set(), set())
        assert our_neigh(bulk.dump_neigh(ifindex=lab.bridge), lab) == set()
        assert iproute2_neigh(lab) == set()


def test_errors_are_matched_to_their_entry(lab: Lab) -> None:
    sock = open_socket(lab.ns)  # a socket made elsewhere (setns), handed in
    try:
        bulk = NetlinkBulk(sock, batch_size=64)
        present = entries(lab, Op.ADD)[:300]
        assert all(r.ok for r in bulk.apply(present))

        # deleting: one entry of each kind is missing, in the middle of present ones
        deletes = [Request(Op.DEL, r.kind, r.ifindex, r.mac, r.ip) for r in present]
        missing = {
            10: Request.vxlan(Op.DEL, lab.vxlan, "02:99:00:00:00:01", "10.99.0.1"),
            71: Request.bridge(Op.DEL, lab.vxlan, "02:99:00:00:00:02"),
            200: Request.neigh(Op.DEL, lab.bridge, "192.168.250.250", "02:99:00:00:00:03"),
        }
        for position, request in sorted(missing.items()):
            deletes.insert(position, request)
        results = bulk.apply(deletes)
        assert {i: r.error for i, r in enumerate(results) if not r.ok} == {i: errno.ENOENT for i in missing}
        assert our_fdb(bulk.dump_fdb(lab.vxlan), lab) == (set(), set())

        # adding on an interface index that does not exist fails for exactly those entries
        unknown = 1_000_000 + lab.vxlan
        adds = entries(lab, Op.ADD)[:90]
        bad_positions = {5, 6, 44, 89}
        for i in sorted(bad_positions):
            r = adds[i]
            adds[i] = Request(r.op, r.kind, unknown, r.mac, r.ip)
        results = bulk.apply(adds)
        errors = {i: r.error for i, r in enumerate(results) if not r.ok}
        assert set(errors) == bad_positions
        assert all(code in (errno.ENODEV, errno.EINVAL) for code in errors.values()), errors
        assert len(our_fdb(bulk.dump_fdb(lab.vxlan), lab)[0]) == len(
            [r for i, r in enumerate(adds) if r.kind is Kind.VXLAN and i not in bad_positions])
        # a bad MAC never reaches the kernel and does not disturb its neighbours
        results = bulk.apply([adds[0], Request.bridge(Op.ADD, lab.vxlan, "not-a-mac"), adds[1]])
        assert [r.error for r in results] == [0, errno.EINVAL, 0]
    finally:
        sock.close()


def test_master_filter_and_ack_on_last_only(lab: Lab) -> None:
    with NetlinkBulk(netns=lab.ns, ack_all=False, batch_size=500) as bulk:
        adds = entries(lab, Op.ADD)[:1500]
        results = bulk.apply(adds)
        assert all(r.ok for r in results)
        neigh = [r for r in adds if r.kind is Kind.NEIGH]
        results = bulk.apply(adds)  # neighbours now exist: EEXIST, reported although no ACK was asked
        assert {i for i, r in enumerate(results) if r.error == errno.EEXIST} == {
            i for i, r in enumerate(adds) if r.kind is Kind.NEIGH}
        assert len(neigh) == 500
        # the bridge's entries carry NDA_MASTER (ndm_flags has no NTF_MASTER in a dump)
        by_master = bulk.dump_fdb(0, master=lab.bridge)
        assert {r.mac for r in by_master if r.flags & NTF_EXT_LEARNED and r.master == lab.bridge} == {
            r.mac for r in adds if r.kind is Kind.BRIDGE}
        assert {(r.mac, r.dst) for r in by_master if r.flags & NTF_SELF and r.dst} == {
            (r.mac, r.ip) for r in adds if r.kind is Kind.VXLAN}
        assert {r.ifindex for r in by_master} <= {lab.bridge, lab.vxlan}


def test_receive_overrun_loses_track_of_nothing(lab: Lab) -> None:
    """A receive buffer too small for one batch of ACKs (shrunk behind NetlinkBulk's back): the kernel
    drops ACKs and reports ENOBUFS; the requests whose ACK was lost are reported ENOBUFS (unknown),
    all others OK, none missing, and the next batches are smaller."""
    with NetlinkBulk(netns=lab.ns, batch_size=2000) as bulk:
        assert bulk.batch_size == 2000
        bulk.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)  # the kernel's minimum (about 2 ACKs)
        adds = [r for r in entries(lab, Op.ADD) if r.kind is not Kind.NEIGH][:2000]
        results = bulk.apply(adds)
        codes = [r.error for r in results]
        assert set(codes) <= {0, errno.ENOBUFS} and errno.ENOBUFS in codes
        assert [r.request for r in results] == adds
        assert bulk.batch_size < 2000
        # unknown outcome, but the kernel did handle every request: all entries are there
        vx, br = our_fdb(bulk.dump_fdb(lab.vxlan), lab)
        assert len(vx) == len([r for r in adds if r.kind is Kind.VXLAN])
        assert len(br) == len([r for r in adds if r.kind is Kind.BRIDGE])


def test_local_macs_read_port_by_port_equal_a_whole_bridge_dump(lab: Lab) -> None:
    """dump_local reads each VM port (not the bridge: its 32 KiB answers each cost the kernel a walk of
    the whole FDB); with 3000 remote MACs behind the vxlan port it finds exactly what a dump of the
    whole bridge finds."""
    for i in (1, 2):
        run(lab.ns, "ip", "link", "add", f"vm{i}", "type", "veth", "peer", "name", f"vm{i}p")
        run(lab.ns, "ip", "link", "set", f"vm{i}", "master", "br0")
        run(lab.ns, "ip", "link", "set", f"vm{i}", "up")
        run(lab.ns, "ip", "link", "set", f"vm{i}p", "up")  # a port without carrier takes no learned MAC
        for j in range(3):
            run(lab.ns, "bridge", "fdb", "add", f"02:00:00:00:0{i}:0{j}", "dev", f"vm{i}", "master", "dynamic")
    links = {link["ifname"]: link["ifindex"] for link in json.loads(run(lab.ns, "ip", "-j", "link", "show"))}
    scope = BridgeScope(100, lab.bridge, lab.vxlan)
    with NetlinkBulk(netns=lab.ns) as bulk:
        assert all(r.ok for r in bulk.apply(entries(lab, Op.ADD)[:9000]))
        assert sorted(bulk.bridge_ports(lab.bridge)) == sorted([lab.vxlan, links["vm1"], links["vm2"]])
        whole = local_from_records(bulk.dump_fdb(master=lab.bridge), [scope])
        assert {m.mac for m, port in whole.items() if port == links["vm1"]} >= {f"02:00:00:00:01:0{j}" for j in range(3)}
        assert dump_local(bulk, [scope]) == whole
