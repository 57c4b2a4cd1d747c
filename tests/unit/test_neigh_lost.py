"""localmacs.classify_neigh: neighbour deletions on served bridges (the agent's self-heal trigger)."""

from __future__ import annotations

from pyroute2.netlink.rtnl.ndmsg import ndmsg

from agent.localmacs import AF_BRIDGE, AF_INET, BridgeScope, NeighLost, classify_neigh

SCOPES = [BridgeScope(vni=100, bridge_index=3, vxlan_index=4)]


def _msg(event: str, family: int = AF_INET, ifindex: int = 3, ip: str | None = "192.168.100.24") -> ndmsg:
    msg = ndmsg()
    msg["family"], msg["ifindex"], msg["event"] = family, ifindex, event
    msg["attrs"] = [("NDA_DST", ip)] if ip else []
    return msg


def test_deletion_on_a_served_bridge_is_reported_without_a_mac() -> None:
    assert classify_neigh(_msg("RTM_DELNEIGH"), SCOPES) == NeighLost(3, "192.168.100.24")


def test_other_messages_are_not() -> None:
    assert classify_neigh(_msg("RTM_NEWNEIGH"), SCOPES) is None
    assert classify_neigh(_msg("RTM_DELNEIGH", ifindex=9), SCOPES) is None
    assert classify_neigh(_msg("RTM_DELNEIGH", family=AF_BRIDGE), SCOPES) is None
    assert classify_neigh(_msg("RTM_DELNEIGH", ip=None), SCOPES) is None
