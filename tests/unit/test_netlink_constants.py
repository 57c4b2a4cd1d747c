"""The netlink numbers agent.netlink_bulk writes out (so the agent loads no netlink library) equal
pyroute2's, and the one link request it encodes is the bytes pyroute2 makes for it."""

from __future__ import annotations

import pyroute2.netlink as nl
import pytest
from pyroute2.netlink.rtnl import RTM_DELNEIGH, RTM_GETNEIGH, RTM_NEWNEIGH, RTM_SETLINK
from pyroute2.netlink.rtnl import ndmsg as nd
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg, protinfo_bridge

from agent import netlink_bulk as nb
from agent.nsenter import NoSuchNamespace, made_in

NAMES = ["NETLINK_ROUTE", "SOL_NETLINK", "NETLINK_EXT_ACK", "NETLINK_GET_STRICT_CHK", "NLM_F_REQUEST", "NLM_F_ACK",
         "NLM_F_DUMP_INTR", "NLM_F_REPLACE", "NLM_F_CAPPED", "NLM_F_EXCL", "NLM_F_ACK_TLVS", "NLM_F_DUMP", "NLM_F_CREATE",
         "NLM_F_APPEND", "NLMSG_NOOP", "NLMSG_ERROR", "NLMSG_DONE", "NLMSG_OVERRUN"]


@pytest.mark.parametrize("name", NAMES)
def test_netlink_numbers_are_pyroute2s(name: str) -> None:
    assert getattr(nb, name) == getattr(nl, name)


def test_rtnetlink_numbers_are_pyroute2s() -> None:
    assert (nb.RTM_NEWNEIGH, nb.RTM_DELNEIGH, nb.RTM_GETNEIGH, nb.RTM_SETLINK) == (RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH, RTM_SETLINK)
    assert (nb.NTF_SELF, nb.NTF_MASTER, nb.NTF_EXT_LEARNED) == (nd.NTF_SELF, nd.NTF_MASTER, nd.NTF_EXT_LEARNED)
    assert (nb.NUD_NOARP, nb.NUD_PERMANENT) == (nd.NUD_NOARP, nd.NUD_PERMANENT)
    nda = {name: index for index, (name, *_rest) in enumerate(nd.ndmsg.nla_map)}
    for name in ("NDA_DST", "NDA_LLADDR", "NDA_PORT", "NDA_VNI", "NDA_IFINDEX", "NDA_MASTER", "NDA_SRC_VNI"):
        assert getattr(nb, name) == nda[name], name
    ifla = {name: index for index, (name, *_rest) in enumerate(ifinfmsg.nla_map)}
    assert nb.IFLA_PROTINFO == ifla["IFLA_PROTINFO"]
    brport = {name: index for index, (name, *_rest) in enumerate(protinfo_bridge.nla_map)}
    assert nb.IFLA_BRPORT_NEIGH_SUPPRESS == brport["IFLA_BRPORT_NEIGH_SUPPRESS"]


@pytest.mark.parametrize("on", [True, False])
def test_neigh_suppress_request_is_what_pyroute2_encodes(on: bool) -> None:
    msg = ifinfmsg()
    msg["header"]["type"] = RTM_SETLINK
    msg["header"]["flags"] = nl.NLM_F_REQUEST | nl.NLM_F_ACK
    msg["header"]["sequence_number"] = 42
    msg["family"], msg["index"] = nb.AF_BRIDGE, 7
    msg["attrs"] = [("IFLA_PROTINFO", {"attrs": [("IFLA_BRPORT_NEIGH_SUPPRESS", int(on))]}, nb.NLA_F_NESTED)]
    msg.encode()
    assert nb.encode_neigh_suppress(7, on, 42) == bytes(msg.data)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../../proc/1/ns/net"])
def test_namespace_names_cannot_leave_the_netns_directory(name: str) -> None:
    with pytest.raises(NoSuchNamespace):
        made_in(name, lambda: None)


def test_missing_namespace_is_named() -> None:
    with pytest.raises(NoSuchNamespace, match="does not exist"):
        made_in("no-such-namespace-evpn-test", lambda: None)


def test_no_namespace_calls_the_factory_here() -> None:
    assert made_in(None, lambda: 5) == 5
