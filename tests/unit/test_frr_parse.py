"""FRR's JSON and configs, without FRR: the parsing and rendering labctl relies on for mixed labs."""

from __future__ import annotations

import ipaddress

from agent.routes import ImetRoute, MacIpRoute
from labctl.nodes.frr import bgpd_config, parse_evpn_routes, zebra_config
from labctl.plan import LabPlan
from labctl.topology import parse_topology

FRR_JSON = {
    "10.0.0.101:100": {
        "rd": "10.0.0.101:100",
        "[3]:[0]:[32]:[10.0.0.101]": {"paths": [[{
            "valid": True, "bestpath": True, "routeType": 3, "ethTag": 0, "ip": "10.0.0.101", "peerId": "10.0.0.100",
            "extendedCommunity": {"string": "RT:65000:100 ET:8"}, "nexthops": [{"ip": "10.0.0.101"}]}]]},
        "[2]:[0]:[48]:[02:00:00:00:01:01]:[32]:[192.168.100.11]": {"paths": [[{
            "valid": True, "bestpath": True, "routeType": 2, "ethTag": 0, "mac": "02:00:00:00:01:01", "ip": "192.168.100.11",
            "peerId": "10.0.0.100", "extendedCommunity": {"string": "RT:65000:100 ET:8 MM:3"}, "nexthops": [{"ip": "10.0.0.101"}]}]]},
        "[2]:[0]:[48]:[02:00:00:00:01:02]": {"paths": [[{
            "valid": True, "bestpath": False, "routeType": 2, "mac": "02:00:00:00:01:02", "peerId": "10.0.0.100",
            "extendedCommunity": {"string": "RT:65000:100"}, "nexthops": [{"ip": "10.0.0.101"}]}]]},
    },
    "10.0.0.103:100": {
        "[2]:[0]:[48]:[02:00:00:00:03:07]": {"paths": [[{
            "valid": True, "bestpath": True, "routeType": 2, "mac": "02:00:00:00:03:07", "peerId": "(unspec)",
            "extendedCommunity": {"string": "ET:8 RT:65000:100"}, "nexthops": [{"ip": "10.0.0.103"}]}]]},
    },
    "numPrefix": 4,
}


def test_parse_evpn_routes_best_paths_with_vni_from_route_target() -> None:
    events = parse_evpn_routes(FRR_JSON, {"65000:100": 100})
    assert len(events) == 3  # the non-best path is left out, the counters are not routes
    imet = next(e.route for e in events if isinstance(e.route, ImetRoute))
    assert imet.originator == ipaddress.ip_address("10.0.0.101") and imet.pmsi_vni == 100 and imet.attrs.encapsulation == 8
    macip = next(e.route for e in events if isinstance(e.route, MacIpRoute) and e.route.ip is not None)
    assert (macip.mac, str(macip.ip), macip.label_vni, macip.attrs.mac_mobility_seq) == ("02:00:00:00:01:01", "192.168.100.11", 100, 3)
    local = [e for e in events if e.local]
    assert len(local) == 1 and local[0].route.mac == "02:00:00:00:03:07"  # type: ignore[union-attr]


def test_unknown_route_target_gives_no_vni() -> None:
    events = parse_evpn_routes(FRR_JSON, {})
    assert all(getattr(e.route, "pmsi_vni", None) is None and getattr(e.route, "label_vni", None) is None for e in events)


def test_configs_follow_the_topology() -> None:
    topo = parse_topology({
        "lab": "t", "bgp": {"hold_time": 6, "keepalive": 2}, "controller": {"asn": 65000, "address": "10.0.0.100"},
        "networks": [{"name": "blue", "vni": 100, "subnet": "192.168.100.0/24"}],
        "hosts": [{"name": "t-1", "asn": 65001, "vtep": "10.0.0.101", "kind": "frr",
                   "vms": [{"name": "vm1", "mac": "02:00:00:00:00:01", "ip": "192.168.100.1"}]}],
    })
    host = topo.hosts[0]
    conf = bgpd_config(LabPlan(topo), host)
    for line in ("router bgp 65001", "neighbor 10.0.0.100 remote-as 65000", "neighbor 10.0.0.100 timers 2 6",
                 "advertise-all-vni", "vni 100", "rd 10.0.0.101:100", "route-target import 65000:100",
                 "route-target export 65000:100", "neighbor 10.0.0.100 update-source 10.0.0.101"):
        assert line in conf, line
    assert "ip nht resolve-via-default" in zebra_config(host.name)
