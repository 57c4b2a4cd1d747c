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

# Graceful restart (RFC 4724, with RFC 8538's notification support) on every session of the lab.
# RESTART_TIME: how long peers keep a restarting speaker's routes as stale (gobgpd also applies it when
# the hold timer expires, so a dead host is forgotten after hold + this); it must cover a daemon's restart
# and the session coming back: about 7-8 s with gobgpd, whose peer stays IDLE 5 s (a fixed holdtimeIdle)
# after any session loss, then connects after 1-2 s. DEFERRAL_TIME: how long a restarting gobgpd (started
# with -r) waits for its peers' End-of-RIB before it advertises and sends its own.
GR_RESTART_TIME = 15
GR_DEFERRAL_TIME = 5


@dataclass(frozen=True)
class Neighbor:
    address: ipaddress.IPv4Address  # the peer's loopback
    peer_as: int
    local_address: ipaddress.IPv4Address  # our loopback (the session's source)
    timers: Timers
    multihop_ttl: int
    idle_hold_after_reset: int  # gobgpd only: seconds before reconnecting after a reset
    restart_time: int = GR_RESTART_TIME  # graceful restart (see GR_RESTART_TIME)
    deferral_time: int = GR_DEFERRAL_TIME
    passive: bool = False  # only accept the session, never connect (the controller: one side connects, no collisions)

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
    passive-mode = {str(self.passive).lower()}
  [neighbors.ebgp-multihop.config]
    enabled = true
    multihop-ttl = {self.multihop_ttl}
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = {self.restart_time}
    deferral-time = {self.deferral_time}
    notification-enabled = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "l2vpn-evpn"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
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
            transport=gobgp.Transport(local_address=str(self.local_address), passive_mode=self.passive),
            ebgp_multihop=gobgp.EbgpMultihop(enabled=True, multihop_ttl=self.multihop_ttl),
            graceful_restart=gobgp.GracefulRestart(enabled=True, restart_time=self.restart_time,
                                                   deferral_time=self.deferral_time, notification_enabled=True),
            afi_safis=[gobgp.AfiSafi(
                config=gobgp.AfiSafiConfig(family=gobgp.Family(afi=gobgp.Family.AFI_L2VPN, safi=gobgp.Family.SAFI_EVPN), enabled=True),
                mp_graceful_restart=gobgp.MpGracefulRestart(config=gobgp.MpGracefulRestartConfig(enabled=True)))],
        )

    def frr_session_lines(self) -> str:
        """The `router bgp` lines of this neighbour (FRR has no idle-hold setting: its default applies)."""
        n, t = self.address, self.timers
        return (f" neighbor {n} remote-as {self.peer_as}\n"
                f" neighbor {n} update-source {self.local_address}\n"
                f" neighbor {n} ebgp-multihop {self.multihop_ttl}\n"
                f" neighbor {n} timers {t.keepalive} {t.hold_time}\n"
                f" neighbor {n} timers connect {t.connect_retry}\n"
                + (f" neighbor {n} passive\n" if self.passive else ""))

    def frr_router_lines(self) -> str:
        """The `router bgp` lines for graceful restart (FRR sets it per router, not per neighbour)."""
        return (" bgp graceful-restart\n"
                f" bgp graceful-restart restart-time {self.restart_time}\n"
                f" bgp graceful-restart select-defer-time {self.deferral_time}\n")

    def frr_evpn_lines(self) -> str:
        """The `address-family l2vpn evpn` line of this neighbour."""
        return f"  neighbor {self.address} activate\n"

    def frr_unchanged_lines(self) -> str:
        """A hub's `address-family l2vpn evpn` line that passes the next hop (the VTEP) on unchanged to this
        neighbour (eBGP would otherwise put its own address there)."""
        return f"  neighbor {self.address} attribute-unchanged next-hop\n"
