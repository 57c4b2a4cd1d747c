"""localmacs.FdbEventFilter (raw netlink notifications -> local-MAC events) and neighsock's BPF program.

Messages are encoded by pyroute2 (the kernel's layout), so the hand-written parser is checked against
an independent encoder; every outcome is compared with `classify_fdb` / `classify_neigh` (the rule as
pyroute2 decodes it). The BPF program runs in a small classic-BPF interpreter written here.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from pyroute2.netlink.rtnl.ndmsg import ndmsg

from agent.localmacs import (
    AF_BRIDGE,
    AF_INET,
    AF_INET6,
    NTF_EXT_LEARNED,
    NTF_SELF,
    NUD_PERMANENT,
    BridgeScope,
    FdbEventFilter,
    LocalMac,
    LocalMacEvent,
    NeighLost,
    classify_fdb,
    classify_neigh,
    local_from_records,
)
from agent.neighsock import neigh_filter_program
from agent.netlink_bulk import NeighRecord

RTM_NEWNEIGH, RTM_DELNEIGH = 28, 29
NUD_REACHABLE, NUD_NOARP = 0x02, 0x40
BR, VX, VM, BR2, VX2, VM2 = 10, 11, 12, 20, 21, 22
SCOPES = [BridgeScope(100, BR, VX), BridgeScope(200, BR2, VX2)]
VXLAN_OF = {s.vni: s.vxlan_index for s in SCOPES}
MAC = "52:54:00:12:34:56"


def message(event: int = RTM_NEWNEIGH, family: int = AF_BRIDGE, ifindex: int = VM, state: int = NUD_REACHABLE,
            flags: int = 0, mac: str | None = MAC, master: int | None = BR, dst: str | None = None) -> ndmsg:
    msg = ndmsg()
    msg["header"]["type"] = event
    msg["family"], msg["ifindex"], msg["state"], msg["flags"] = family, ifindex, state, flags
    attrs: list[tuple[str, object]] = []
    if dst is not None:
        attrs.append(("NDA_DST", dst))
    if mac is not None:
        attrs.append(("NDA_LLADDR", mac))
    if master is not None:
        attrs.append(("NDA_MASTER", master))
    attrs.append(("NDA_CACHEINFO", {"ndm_confirmed": 1, "ndm_used": 2, "ndm_updated": 3, "ndm_refcnt": 0}))
    msg["attrs"] = attrs
    msg.encode()
    return msg


def raw(msg: ndmsg) -> bytes:
    return bytes(msg.data)


def decoded(msg: ndmsg) -> ndmsg:
    """The message as pyroute2 hands it to a reader (event name set)."""
    out = ndmsg(raw(msg))
    out.decode()
    out["event"] = {RTM_NEWNEIGH: "RTM_NEWNEIGH", RTM_DELNEIGH: "RTM_DELNEIGH"}[msg["header"]["type"]]
    return out


def test_learned_and_forgotten_on_a_vm_port() -> None:
    f = FdbEventFilter(SCOPES)
    assert f.feed(raw(message())) == ([LocalMacEvent(LocalMac(100, MAC), True, VM)], [])
    assert f.feed(raw(message(RTM_DELNEIGH))) == ([LocalMacEvent(LocalMac(100, MAC), False, VM)], [])


def test_the_agents_own_writes_make_no_event() -> None:
    f = FdbEventFilter(SCOPES)
    own = [
        message(ifindex=VX, flags=NTF_SELF, state=NUD_PERMANENT, master=None, dst="10.0.0.2"),  # vxlan self
        message(ifindex=VX, flags=NTF_EXT_LEARNED, state=NUD_REACHABLE),  # bridge master extern_learn
        message(family=AF_INET, ifindex=BR, state=NUD_NOARP, flags=NTF_EXT_LEARNED, master=None, dst="192.168.1.5"),
    ]
    assert f.feed(b"".join(raw(m) for m in own)) == ([], [])


def test_a_local_mac_taken_over_by_the_vxlan_port_is_reported_gone() -> None:
    f = FdbEventFilter(SCOPES)
    f.feed(raw(message()))
    moved = raw(message(ifindex=VX, flags=NTF_EXT_LEARNED))
    assert f.feed(moved) == ([LocalMacEvent(LocalMac(100, MAC), False)], [])
    assert f.feed(moved) == ([], [])  # once


def test_seeded_macs_count_as_local() -> None:
    f = FdbEventFilter(SCOPES)
    f.seed([LocalMac(200, MAC)])
    assert f.feed(raw(message(ifindex=VX2, master=BR2))) == ([LocalMacEvent(LocalMac(200, MAC), False)], [])
    assert f.feed(raw(message(ifindex=VX, master=BR))) == ([], [])  # another VNI: never local there


def test_neighbour_deletion_on_a_served_bridge_is_lost_others_are_not() -> None:
    f = FdbEventFilter(SCOPES)
    gone = message(RTM_DELNEIGH, AF_INET, BR, NUD_NOARP, NTF_EXT_LEARNED, "02:5c:00:00:00:01", None, "192.168.1.5")
    v6 = message(RTM_DELNEIGH, AF_INET6, BR2, NUD_NOARP, 0, None, None, "fd00::5")
    other = message(RTM_DELNEIGH, AF_INET, 99, NUD_NOARP, 0, None, None, "192.168.1.6")
    new = message(RTM_NEWNEIGH, AF_INET, BR, NUD_NOARP, 0, None, None, "192.168.1.7")
    assert f.feed(raw(gone) + raw(v6) + raw(other) + raw(new)) == ([], [NeighLost(BR, "192.168.1.5"), NeighLost(BR2, "fd00::5")])


def test_a_truncated_buffer_is_skipped_not_raised() -> None:
    data = raw(message())
    assert FdbEventFilter(SCOPES).feed(data[:-8]) == ([], [])
    assert FdbEventFilter(SCOPES).feed(struct.pack("=IH", 2, RTM_NEWNEIGH) + b"\0" * 10) == ([], [])


macs = st.sampled_from([MAC, "01:00:5e:00:00:01", "02:5c:00:00:00:07", "33:33:00:00:00:01"])
messages = st.builds(
    message,
    event=st.sampled_from([RTM_NEWNEIGH, RTM_DELNEIGH]),
    family=st.sampled_from([AF_BRIDGE, AF_BRIDGE, AF_INET, AF_INET6]),
    ifindex=st.sampled_from([BR, VX, VM, BR2, VX2, VM2, 99]),
    state=st.sampled_from([NUD_REACHABLE, NUD_NOARP, NUD_PERMANENT, NUD_PERMANENT | NUD_NOARP]),
    flags=st.sampled_from([0, NTF_SELF, NTF_EXT_LEARNED, 0x04]),
    mac=st.none() | macs,
    master=st.sampled_from([None, BR, BR2, 99]),
    dst=st.none() | st.sampled_from(["10.0.0.2", "192.168.1.5", "fd00::1"]),
)


def legal(msg: ndmsg) -> bool:
    """What the kernel can send: a device's own (self) entry never carries NDA_MASTER; only AF_INET
    carries IPv4 and only AF_INET6 IPv6 destinations."""
    if msg["family"] == AF_BRIDGE and msg["flags"] & NTF_SELF and msg.get_attr("NDA_MASTER") is not None:
        return False
    dst = msg.get_attr("NDA_DST")
    return dst is None or msg["family"] == AF_BRIDGE or (":" in dst) == (msg["family"] == AF_INET6)


@settings(max_examples=300, deadline=None)
@given(st.lists(messages, max_size=12))
def test_same_outcome_as_the_pyroute2_rule(batch: list[ndmsg]) -> None:
    """Everything classify_fdb / classify_neigh report, except "behind the vxlan port" for a MAC never
    seen local (which changes nothing in the agent) and the deletion of extern_learn entries."""
    batch = [m for m in batch if legal(m)]
    f = FdbEventFilter(SCOPES)
    changes, lost = f.feed(b"".join(raw(m) for m in batch))
    expected_changes: list[LocalMacEvent] = []
    expected_lost: list[NeighLost] = []
    local: set[LocalMac] = set()
    for msg in batch:
        seen = decoded(msg)
        if seen["family"] == AF_BRIDGE and seen["flags"] & NTF_EXT_LEARNED and msg["header"]["type"] == RTM_DELNEIGH:
            continue  # an extern_learn entry withdrawn: never about a local MAC
        if (event := classify_fdb(seen, SCOPES)) is not None:
            if event.present:
                local.add(event.mac)
            elif seen["ifindex"] == VXLAN_OF[event.mac.vni] and event.mac not in local:
                continue
            else:
                local.discard(event.mac)
            expected_changes.append(event)
        elif (gone := classify_neigh(seen, SCOPES)) is not None:
            expected_lost.append(gone)
    assert (changes, lost) == (expected_changes, expected_lost)


def test_dump_records_give_the_local_macs_only() -> None:
    records = [
        NeighRecord(AF_BRIDGE, VM, MAC, None, 0, NUD_REACHABLE, None, BR),
        NeighRecord(AF_BRIDGE, VX, "02:5c:00:00:00:01", None, NTF_EXT_LEARNED, NUD_REACHABLE, None, BR),
        NeighRecord(AF_BRIDGE, VX, "02:5c:00:00:00:01", "10.0.0.2", NTF_SELF, NUD_PERMANENT, None, None),
        NeighRecord(AF_BRIDGE, VM, "aa:bb:cc:00:00:01", None, 0, NUD_PERMANENT, None, BR),  # the port's own
    ]
    assert local_from_records(records, SCOPES) == {LocalMac(100, MAC): VM}


# -- the kernel-side filter ----------------------------------------------------------------------------


def run_bpf(program: list[tuple[int, int, int, int]], packet: bytes) -> int:
    """A classic-BPF interpreter for the instructions the filter uses (absolute loads, jeq, jset, ret)."""
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == 0x30:
            acc = packet[k]
        elif code == 0x28:
            acc = int.from_bytes(packet[k:k + 2], "big")
        elif code == 0x15:
            pc += jt if acc == k else jf
        elif code == 0x45:
            pc += jt if acc & k else jf
        elif code == 0x06:
            return k
        else:  # pragma: no cover - the program uses nothing else
            raise AssertionError(f"unknown opcode {code:#x}")


@settings(max_examples=300, deadline=None)
@given(messages)
def test_the_kernel_filter_only_drops_what_the_watcher_ignores(msg: ndmsg) -> None:
    if not legal(msg):
        return
    accepted = run_bpf(neigh_filter_program(), raw(msg)) != 0
    f = FdbEventFilter(SCOPES)
    f.seed([LocalMac(100, MAC), LocalMac(200, MAC)])  # so that "behind the vxlan port" reports too
    if not accepted:
        assert f.feed(raw(msg)) == ([], [])


def test_the_kernel_filter_drops_the_agents_own_writes() -> None:
    program = neigh_filter_program()
    vxlan_self = message(ifindex=VX, flags=NTF_SELF, state=NUD_PERMANENT, master=None, dst="10.0.0.2")
    new_neigh = message(family=AF_INET, ifindex=BR, state=NUD_NOARP, flags=NTF_EXT_LEARNED, master=None, dst="192.168.1.5")
    assert run_bpf(program, raw(vxlan_self)) == 0
    assert run_bpf(program, raw(message(RTM_DELNEIGH, ifindex=VX, flags=NTF_SELF, master=None))) == 0
    assert run_bpf(program, raw(new_neigh)) == 0
    assert run_bpf(program, raw(message())) != 0
    assert run_bpf(program, raw(message(ifindex=VX, flags=NTF_EXT_LEARNED))) != 0
    assert run_bpf(program, raw(message(RTM_DELNEIGH, ifindex=VX, flags=NTF_EXT_LEARNED))) == 0  # withdrawn
    assert run_bpf(program, raw(message(RTM_DELNEIGH))) != 0  # a VM's MAC aged out
    assert run_bpf(program, raw(message(RTM_DELNEIGH, AF_INET, BR, NUD_NOARP, 0, None, None, "192.168.1.5"))) != 0
