"""Shared builders for labctl's tests (unit and integration): topology documents and parsed topologies."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import yaml

from agent.routes import ImetRoute, MacIpRoute, PathAttrs, RouteDistinguisher, RouteEvent, RouteTarget
from labctl.topology import Topology, parse_topology

REPO = Path(__file__).resolve().parents[2]


def make_topology(lab: str, hosts: int = 3, vms_per_host: int = 3, hold_time: int = 3) -> dict[str, Any]:
    """A topology document like topologies/3x3.yaml, for lab `lab`, with `hosts` hypervisors."""
    doc: dict[str, Any] = {
        "lab": lab,
        "bgp": {"hold_time": hold_time, "keepalive": 1},
        "controller": {"asn": 65000, "address": "10.0.0.100"},
        "networks": [{"name": "blue", "vni": 100, "subnet": "192.168.100.0/24"}],
        "hosts": [],
    }
    for h in range(1, hosts + 1):
        doc["hosts"].append({
            "name": f"{lab}-{h}", "asn": 65000 + h, "vtep": f"10.0.0.{100 + h}",
            "vms": [{"name": f"vm{h}{v}", "mac": f"02:00:00:00:{h:02x}:{v:02x}", "ip": f"192.168.100.{h * 10 + v}"}
                    for v in range(1, vms_per_host + 1)],
        })
    return doc


def two_networks(lab: str = "t") -> dict[str, Any]:
    """Three hosts, networks blue (everywhere) and red (hosts 1 and 2 only)."""
    doc = make_topology(lab, hosts=3, vms_per_host=1)
    doc["networks"].append({"name": "red", "vni": 200, "subnet": "192.168.200.0/24"})
    for host in doc["hosts"]:
        host["vms"][0]["network"] = "blue"
    for h in (1, 2):
        doc["hosts"][h - 1]["vms"].append({"name": f"red{h}", "mac": f"02:00:00:00:{h:02x}:99", "ip": f"192.168.200.{h}", "network": "red"})
    return doc


def topology(lab: str = "t", **kwargs: Any) -> Topology:
    return parse_topology(make_topology(lab, **kwargs))


def repo_document(name: str) -> dict[str, Any]:
    """One of the repository's topologies/*.yaml as a document."""
    data: dict[str, Any] = yaml.safe_load((REPO / "topologies" / name).read_text())
    return data


def imet_event(vtep: str, vni: int, next_hop: str | None = None, local: bool = False) -> RouteEvent:
    attrs = PathAttrs(ipaddress.ip_address(next_hop or vtep), frozenset({RouteTarget.parse(f"65000:{vni}")}), 8)
    return RouteEvent(ImetRoute(RouteDistinguisher.parse(f"{vtep}:{vni}"), 0, ipaddress.ip_address(vtep), attrs, pmsi_vni=vni), local=local)


def mac_event(vtep: str, vni: int, mac: str, ip: str | None = None, seq: int | None = None, local: bool = False) -> RouteEvent:
    attrs = PathAttrs(ipaddress.ip_address(vtep), frozenset({RouteTarget.parse(f"65000:{vni}")}), 8, seq)
    route = MacIpRoute(RouteDistinguisher.parse(f"{vtep}:{vni}"), 0, mac, ipaddress.ip_address(ip) if ip else None, vni, attrs)
    return RouteEvent(route, local=local)
