"""Unit tests for agent/localmacs.py: classify_fdb on hand-built AF_BRIDGE netlink messages.

The messages are real pyroute2 ``ndmsg`` objects (no socket, no namespace): the same class
pyroute2 hands out for RTM_NEWNEIGH / RTM_DELNEIGH, with the fields and attributes the kernel
fills for a bridge FDB entry.
"""

from __future__ import annotations

import pytest
from pyroute2.netlink.rtnl.ndmsg import ndmsg

from agent.localmacs import (
    AF_BRIDGE,
    NTF_EXT_LEARNED,
    NTF_SELF,
    NUD_PERMANENT,
    BridgeScope,
    LocalMac,
    LocalMacEvent,
    classify_fdb,
)

NUD_REACHABLE = 0x02
NUD_STALE = 0x04
NUD_NOARP = 0x40  # "static" bridge entries
NTF_MASTER = 0x04
NTF_STICKY = 0x40

BR100, VX100, VM1 = 10, 11, 12  # ifindexes: bridge, its vxlan port, a VM tap
BR200, VX200, VM2 = 20, 21, 22
SCOPES = [BridgeScope(100, BR100, VX100), BridgeScope(200, BR200, VX200)]
MAC = "52:54:00:12:34:56"


def fdb_msg(
    mac: str | None = MAC,
    *,
    ifindex: int = VM1,
    master: int | None = BR100,
    state: int = NUD_REACHABLE,
    flags: int = 0,
    event: str = "RTM_NEWNEIGH",
    family: int = AF_BRIDGE,
) -> ndmsg:
    msg = ndmsg()
    msg["family"] = family
    msg["ifindex"] = ifindex
    msg["state"] = state
    msg["flags"] = flags
    msg["event"] = event
    attrs = []
    if mac is not None:
        attrs.append(("NDA_LLADDR", mac))
    if master is not None:
        attrs.append(("NDA_MASTER", master))
    msg["attrs"] = attrs
    return msg


def test_fake_message_looks_like_pyroute2s() -> None:
    msg = fdb_msg()
    assert msg.get("family") == AF_BRIDGE == 7
    assert msg.get_attr("NDA_LLADDR") == MAC and msg.get_attr("NDA_MASTER") == BR100
    assert msg.get_attr("NDA_VNI") is None


# -- present ------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [NUD_REACHABLE, NUD_STALE])
def test_learned_on_vm_port_is_present(state: int) -> None:
    assert classify_fdb(fdb_msg(state=state), SCOPES) == LocalMacEvent(LocalMac(100, MAC), present=True)


def test_static_entry_on_vm_port_is_present() -> None:
    # `bridge fdb add MAC dev tap master static`: not the port's own address
    assert classify_fdb(fdb_msg(state=NUD_NOARP), SCOPES) == LocalMacEvent(LocalMac(100, MAC), present=True)


def test_mac_is_lower_cased() -> None:
    event = classify_fdb(fdb_msg("52:54:00:AB:CD:EF"), SCOPES)
    assert event == LocalMacEvent(LocalMac(100, "52:54:00:ab:cd:ef"), present=True)


def test_second_bridge_maps_to_its_vni() -> None:
    event = classify_fdb(fdb_msg(ifindex=VM2, master=BR200), SCOPES)
    assert event == LocalMacEvent(LocalMac(200, MAC), present=True)


def test_locally_administered_unicast_mac_is_present() -> None:
    event = classify_fdb(fdb_msg("02:00:00:00:00:01"), SCOPES)
    assert event is not None and event.present


# -- not present -----------------------------------------------------------------------------


def test_deleted_from_vm_port_is_not_present() -> None:
    assert classify_fdb(fdb_msg(event="RTM_DELNEIGH"), SCOPES) == LocalMacEvent(LocalMac(100, MAC), present=False)


@pytest.mark.parametrize("event", ["RTM_NEWNEIGH", "RTM_DELNEIGH"])
@pytest.mark.parametrize("flags", [0, NTF_EXT_LEARNED, NTF_MASTER])
def test_on_vxlan_port_is_not_present(event: str, flags: int) -> None:
    # learned behind the vxlan port (or installed there by the agent): the MAC is remote
    msg = fdb_msg(ifindex=VX100, flags=flags, event=event)
    assert classify_fdb(msg, SCOPES) == LocalMacEvent(LocalMac(100, MAC), present=False)


def test_vxlan_port_of_another_bridge_is_not_this_bridges_vxlan_port() -> None:
    # ifindex VX200 but master BR100 cannot be a vxlan port of VNI 100: it is a plain port there
    event = classify_fdb(fdb_msg(ifindex=VX200, master=BR100), SCOPES)
    assert event == LocalMacEvent(LocalMac(100, MAC), present=True)


# -- ignored ---------------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["RTM_NEWNEIGH", "RTM_DELNEIGH"])
def test_permanent_entry_on_vm_port_is_ignored(event: str) -> None:
    # the port's own address (`bridge fdb show` says "permanent")
    assert classify_fdb(fdb_msg(state=NUD_PERMANENT, event=event), SCOPES) is None
    assert classify_fdb(fdb_msg(state=NUD_PERMANENT | NUD_NOARP, event=event), SCOPES) is None


@pytest.mark.parametrize("event", ["RTM_NEWNEIGH", "RTM_DELNEIGH"])
@pytest.mark.parametrize("flags", [NTF_SELF, NTF_EXT_LEARNED, NTF_SELF | NTF_EXT_LEARNED, NTF_EXT_LEARNED | NTF_STICKY])
def test_self_or_extern_learned_entry_on_vm_port_is_ignored(event: str, flags: int) -> None:
    assert classify_fdb(fdb_msg(flags=flags, event=event), SCOPES) is None


def test_bridge_own_address_is_ignored() -> None:
    assert classify_fdb(fdb_msg(ifindex=BR100, state=NUD_PERMANENT), SCOPES) is None


def test_unknown_bridge_is_ignored() -> None:
    assert classify_fdb(fdb_msg(ifindex=99, master=98), SCOPES) is None
    assert classify_fdb(fdb_msg(), []) is None


def test_no_master_is_ignored() -> None:
    # entries of a device's own FDB (e.g. the vxlan device's `self` entries) carry no NDA_MASTER
    assert classify_fdb(fdb_msg(ifindex=VX100, master=None, flags=NTF_SELF), SCOPES) is None
    assert classify_fdb(fdb_msg(master=None), SCOPES) is None


def test_no_lladdr_is_ignored() -> None:
    assert classify_fdb(fdb_msg(mac=None), SCOPES) is None


@pytest.mark.parametrize("mac", ["01:00:5e:00:00:01", "33:33:00:00:00:01", "ff:ff:ff:ff:ff:ff", "01:80:C2:00:00:00"])
@pytest.mark.parametrize("ifindex", [VM1, VX100])
def test_multicast_mac_is_ignored(mac: str, ifindex: int) -> None:
    assert classify_fdb(fdb_msg(mac, ifindex=ifindex), SCOPES) is None


@pytest.mark.parametrize("family", [2, 10, 0])  # AF_INET / AF_INET6 neighbours, unset
def test_not_af_bridge_is_ignored(family: int) -> None:
    assert classify_fdb(fdb_msg(family=family), SCOPES) is None


def test_message_without_flags_or_state_fields() -> None:
    # pyroute2 leaves unset fields as None; classify_fdb treats them as 0
    msg = ndmsg()
    msg["family"] = AF_BRIDGE
    msg["ifindex"] = VM1
    msg["event"] = "RTM_NEWNEIGH"
    msg["attrs"] = [("NDA_LLADDR", MAC), ("NDA_MASTER", BR100)]
    assert classify_fdb(msg, SCOPES) == LocalMacEvent(LocalMac(100, MAC), present=True)


def test_scopes_may_be_a_one_shot_iterable() -> None:
    assert classify_fdb(fdb_msg(ifindex=VM2, master=BR200), iter(SCOPES)) == LocalMacEvent(LocalMac(200, MAC), present=True)


def test_event_carries_the_port_it_was_learned_on() -> None:
    event = classify_fdb(fdb_msg(ifindex=VM1), SCOPES)
    assert event is not None and event.port == VM1
