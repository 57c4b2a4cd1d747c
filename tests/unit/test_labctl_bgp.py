"""One BGP neighbour, three renderings: they must say the same thing."""

from __future__ import annotations

import ipaddress

import pytest

from labctl.bgp import Neighbor
from labctl.topology import Timers

N = Neighbor(ipaddress.IPv4Address("10.0.0.100"), 65000, ipaddress.IPv4Address("10.0.0.101"), Timers(6, 2, 3), 4, 1)


def test_gobgpd_toml() -> None:
    toml = N.gobgpd_toml()
    for line in ('neighbor-address = "10.0.0.100"', "peer-as = 65000", "hold-time = 6", "keepalive-interval = 2", "connect-retry = 3",
                 "idle-hold-time-after-reset = 1", 'local-address = "10.0.0.101"', "multihop-ttl = 4", 'afi-safi-name = "l2vpn-evpn"'):
        assert line in toml, line


def test_frr_lines() -> None:
    lines = N.frr_session_lines() + N.frr_evpn_lines()
    for line in ("neighbor 10.0.0.100 remote-as 65000", "neighbor 10.0.0.100 update-source 10.0.0.101",
                 "neighbor 10.0.0.100 ebgp-multihop 4", "neighbor 10.0.0.100 timers 2 6", "neighbor 10.0.0.100 timers connect 3",
                 "neighbor 10.0.0.100 activate"):
        assert line in lines, line


def test_gobgp_peer() -> None:
    pytest.importorskip("protos.gobgpapi.gobgp_pb2", reason="gobgp API stubs not generated")
    peer = N.gobgp_peer()
    assert (peer.conf.neighbor_address, peer.conf.peer_asn, peer.transport.local_address) == ("10.0.0.100", 65000, "10.0.0.101")
    t = peer.timers.config
    assert (t.hold_time, t.keepalive_interval, t.connect_retry, t.idle_hold_time_after_reset) == (6, 2, 3, 1)
    assert peer.ebgp_multihop.enabled and peer.ebgp_multihop.multihop_ttl == 4
    assert len(peer.afi_safis) == 1 and peer.afi_safis[0].config.enabled
