"""A lab of H hypervisors with M VMs each over K networks, as a topology document: what `labctl gen`
prints and what a topology's `scale:` shorthand expands to (one builder, so both give the same lab).

    lab: big
    scale: {hosts: 50, vms: 10, networks: 4}     # optional: asn: 65001, vtep: 10.0.0.101

What it makes, for hypervisor h (1..H), VM v (1..M) and network k (1..K):

    controller   10.0.0.100, AS 65000 (a `controller:` beside `scale:` replaces it)
    hosts        <lab>-<h>, AS asn + h - 1 (default 65000 + h), VTEP vtep + h - 1 (default 10.0.0.(100 + h))
    networks     net<k>, VNI 100 + k - 1, subnet 10.(100 + k).0.0/16 (far from the VTEPs and 10.255/16)
    VMs          vm<h>x<v> (names fit the 13 characters a port name p-<vm> leaves), in network
                 net<1 + (v - 1) mod K> (so every host has every network once M >= K),
                 MAC 02:00:00:<h>:<v>, IP 10.(100 + k).<h>.<v>  (v <= 250: the subnet's last host is kept for FRR)
    bgp timers   hold 3 s / keepalive 1 s up to 10 hosts; 9 s / 3 s above (dozens of daemons on a few cores
                 start slowly: a 3 s hold time then resets sessions while the lab comes up); a `bgp:` beside
                 `scale:` replaces them
    underlay     links 10.255.0.0/16 (an `underlay:` beside `scale:` replaces it)

Pure: nothing is read or written, nothing is validated here but the shape of the numbers; the caller
parses the document (labctl.topology), so every rule of the loader applies to what this makes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

MAX_VMS_PER_HOST = 250  # the last octet of a VM's address
BIG_LAB_HOSTS = 10  # above: relaxed BGP timers
CONTROLLER = {"asn": 65000, "address": "10.0.0.100"}
FIRST_ASN = 65001
FIRST_VTEP = ipaddress.IPv4Address("10.0.0.101")
UNDERLAY = {"links": "10.255.0.0/16"}
SCALE_KEYS = ("hosts", "vms", "networks", "asn", "vtep")  # `scale:`'s keys; hosts is required


@dataclass(frozen=True)
class Scale:
    """How big a generated lab is, and where its hypervisors' numbers start."""

    hosts: int
    vms: int = 0  # per hypervisor
    networks: int = 1
    asn: int = FIRST_ASN  # the first hypervisor's AS; hypervisor h has asn + h - 1
    vtep: ipaddress.IPv4Address = FIRST_VTEP  # the first hypervisor's VTEP; hypervisor h has vtep + h - 1


def timers(hosts: int) -> dict[str, int]:
    hold, keepalive = (3, 1) if hosts <= BIG_LAB_HOSTS else (9, 3)
    return {"hold_time": hold, "keepalive": keepalive}


def document(scale: Scale, lab: str, controller: dict[str, Any] | None = None, bgp: dict[str, Any] | None = None,
             underlay: dict[str, Any] | None = None) -> dict[str, Any]:
    """The topology document of `scale` for lab `lab` (controller, underlay: given ones replace the defaults; bgp: its keys replace the size's timers)."""
    networks = scale.networks
    doc: dict[str, Any] = {
        "lab": lab,
        "bgp": {**timers(scale.hosts), **(bgp or {})},  # a partial bgp: keeps the timers the lab's size needs
        "underlay": dict(underlay) if underlay is not None else dict(UNDERLAY),
        "controller": dict(controller) if controller is not None else dict(CONTROLLER),
        "networks": [{"name": f"net{k}", "vni": 100 + k - 1, "subnet": f"10.{100 + k}.0.0/16"} for k in range(1, networks + 1)],
        "hosts": [],
    }
    for h in range(1, scale.hosts + 1):
        host: dict[str, Any] = {"name": f"{lab}-{h}", "asn": scale.asn + h - 1, "vtep": str(scale.vtep + h - 1), "vms": []}
        for v in range(1, scale.vms + 1):
            k = 1 + (v - 1) % networks
            host["vms"].append({"name": f"vm{h}x{v}", "mac": f"02:00:00:{h:02x}:{v >> 8:02x}:{v & 255:02x}",
                                "ip": f"10.{100 + k}.{h}.{v}", "network": f"net{k}"})
        doc["hosts"].append(host)
    return doc
