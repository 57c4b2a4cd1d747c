"""Plain-dict views of routes for JSON output (labctl verify and `evpn-agent rib` read these)."""

from __future__ import annotations

from .routes import ImetRoute, MacIpRoute, PrefixRoute, RouteEvent


def route_row(event: RouteEvent) -> dict[str, object]:
    route = event.route
    row: dict[str, object] = {
        "rd": str(route.rd),
        "etag": route.ethernet_tag,
        "next_hop": str(route.attrs.next_hop),
        "rts": sorted(str(rt) for rt in route.attrs.route_targets),
        "local": event.local,
    }
    if isinstance(route, ImetRoute):
        row.update(type=3, vtep=str(route.originator), vni=route.pmsi_vni)
    elif isinstance(route, MacIpRoute):
        row.update(type=2, mac=route.mac, ip=str(route.ip) if route.ip else None, vni=route.label_vni, seq=route.attrs.mac_mobility_seq)
    elif isinstance(route, PrefixRoute):
        row.update(type=5, prefix=str(route.prefix), vni=route.label)
    return row
