"""One BGP neighbour of the lab (eBGP multihop, loopback to loopback, family l2vpn-evpn), and its three
renderings side by side: gobgpd's TOML, gobgp's protobuf `Peer` (added over gRPC), FRR's bgpd lines.

Pure; the protobuf stubs are imported only when a `Peer` is asked for.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .topology import Timers


@dataclass(frozen=True)
class Neighbor:
    address: ipaddress.IPv4Address  # the peer's loopback
    peer_as: int
    local_address: ipaddress.IPv4Address  # our loopback (the session's source)
    timers: Timers
    multihop_ttl: int
    idle_hold_after_reset: int  # gobgpd only: seconds before reconnecting after a reset

    def gobgpd_toml(self) -> str:
        t = self.timers
        return f"""
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{self.address}"
    peer-as = {self.peer_as}
  [neighbors.timers.config]
    hold-time = {t.hold_time}
    keepalive-interval = {t.keepalive}
    connect-retry = {t.connect_retry}
    idle-hold-time-after-reset = {self.idle_hold_after_reset}
  [neighbors.transport.config]
    local-address = "{self.local_address}"
  [neighbors.ebgp-multihop.config]
    enabled = true
    multihop-ttl = {self.multihop_ttl}
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "l2vpn-evpn"
"""

    def gobgp_peer(self) -> Any:
        """The same neighbour as a gobgp API `Peer` message."""
        from protos.gobgpapi import gobgp_pb2 as gobgp

        t = self.timers
        return gobgp.Peer(
            conf=gobgp.PeerConf(neighbor_address=str(self.address), peer_asn=self.peer_as),
            timers=gobgp.Timers(config=gobgp.TimersConfig(hold_time=t.hold_time, keepalive_interval=t.keepalive,
                                                          connect_retry=t.connect_retry,
                                                          idle_hold_time_after_reset=self.idle_hold_after_reset)),
            transport=gobgp.Transport(local_address=str(self.local_address)),
            ebgp_multihop=gobgp.EbgpMultihop(enabled=True, multihop_ttl=self.multihop_ttl),
            afi_safis=[gobgp.AfiSafi(config=gobgp.AfiSafiConfig(
                family=gobgp.Family(afi=gobgp.Family.AFI_L2VPN, safi=gobgp.Family.SAFI_EVPN), enabled=True))],
        )

    def frr_session_lines(self) -> str:
        """The `router bgp` lines of this neighbour (FRR has no idle-hold setting: its default applies)."""
        n, t = self.address, self.timers
        return (f" neighbor {n} remote-as {self.peer_as}\n"
                f" neighbor {n} update-source {self.local_address}\n"
                f" neighbor {n} ebgp-multihop {self.multihop_ttl}\n"
                f" neighbor {n} timers {t.keepalive} {t.hold_time}\n"
                f" neighbor {n} timers connect {t.connect_retry}\n")

    def frr_evpn_lines(self) -> str:
        """The `address-family l2vpn evpn` line of this neighbour."""
        return f"  neighbor {self.address} activate\n"
