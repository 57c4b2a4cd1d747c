"""What this host advertises through gobgpd: its VTEP per VNI (Type-3) and its VMs (Type-2).

Routes are built here as plain route dataclasses (routes.py); the gRPC client encodes them.
A request gobgpd refuses is logged and counted, never a reason to drop the session.
"""

from __future__ import annotations

import logging
from typing import Iterable, Protocol

from .config import AgentConfig
from .errors import GobgpRefused
from .localmacs import LocalMac
from .mactable import LocalMacTable
from .routes import ENCAP_VXLAN, PMSI_INGRESS_REPLICATION, EvpnRoute, ImetRoute, IPAddress, MacIpRoute, PathAttrs, RouteEvent, describe_route

log = logging.getLogger("evpn.agent.advertiser")


class RouteSink(Protocol):
    def add_route(self, route: EvpnRoute) -> None: ...
    def delete_route(self, route: EvpnRoute) -> None: ...


def imet_route(cfg: AgentConfig, vni: int) -> ImetRoute:
    """Type-3: this VTEP wants the BUM traffic of `vni` (ingress replication, VNI in the PMSI label)."""
    served = cfg.vni(vni)
    assert served is not None
    attrs = PathAttrs(cfg.vtep, frozenset(served.export_rts), ENCAP_VXLAN)
    return ImetRoute(served.rd, 0, cfg.vtep, attrs, pmsi_vni=vni, pmsi_type=PMSI_INGRESS_REPLICATION)


def macip_route(cfg: AgentConfig, mac: LocalMac, sequence: int, ip: IPAddress | None = None) -> MacIpRoute:
    """Type-2: `mac` (and `ip`) lives behind this VTEP in its VNI, with its MAC-mobility sequence."""
    served = cfg.vni(mac.vni)
    assert served is not None
    attrs = PathAttrs(cfg.vtep, frozenset(served.export_rts), ENCAP_VXLAN, sequence if sequence > 0 else None)
    return MacIpRoute(served.rd, 0, mac.mac, ip, mac.vni, attrs)


class Advertiser:
    """Keeps gobgpd's table of our own routes equal to what the VNIs and local VMs ask for."""

    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.sink: RouteSink | None = None  # the connected gobgpd; None between sessions
        self.refused = 0

    def wanted(self, table: LocalMacTable) -> dict[tuple, EvpnRoute]:
        routes: list[EvpnRoute] = [imet_route(self.cfg, v.vni) for v in self.cfg.vnis]
        for mac, seq in table.sequences.items():
            routes += [macip_route(self.cfg, mac, seq, ip) for ip in [None, *table.ips_of(mac)]]
        return {route.key: route for route in routes}

    def sync(self, sink: RouteSink, table: LocalMacTable, current: Iterable[RouteEvent]) -> None:
        """At the start of a session: advertise what we should, withdraw own routes gobgpd still holds
        that we no longer want (from before a restart or a reload)."""
        self.sink = sink
        wanted = self.wanted(table)
        for route in wanted.values():
            self._send(route, withdraw=False)
            log.info("event=advertised %s", describe_route(route))
        for event in current:
            if event.local and event.route.vtep == self.cfg.vtep and event.route.key not in wanted:
                self._send(event.route, withdraw=True)
                log.info("event=withdrew-stale %s", describe_route(event.route))

    def announce(self, mac: LocalMac, sequence: int, ips: Iterable[IPAddress], withdraw: bool = False) -> None:
        """Advertise (or withdraw) the MAC-only route and one MAC/IP route per address."""
        for ip in [None, *ips]:
            self._send(macip_route(self.cfg, mac, sequence, ip), withdraw)

    def announce_ip(self, mac: LocalMac, sequence: int, ip: IPAddress, withdraw: bool = False) -> None:
        self._send(macip_route(self.cfg, mac, sequence, ip), withdraw)

    def _send(self, route: EvpnRoute, withdraw: bool) -> None:
        """Tell gobgpd now if connected; otherwise the next session's sync() catches up."""
        if self.sink is None:
            return
        try:
            if withdraw:
                self.sink.delete_route(route)
            else:
                self.sink.add_route(route)
        except GobgpRefused as exc:
            self.refused += 1
            log.error("event=gobgp-refused op=%s %s error=%r", "withdraw" if withdraw else "advertise", describe_route(route), str(exc))
