"""Node kinds: what runs on a hypervisor. One module per kind, loaded by name (as netlab's providers).

A kind is a class with the `HostNode` protocol of `base.py` (start, stop, read its RIB, read what its
control plane put in the kernel, its local MACs, reconfigure, its own CLI). A new kind (another BGP
daemon, a real remote host) is a new module here and a line in KINDS, not branches elsewhere.

- base.py         the protocol and what every kind shares (PIDs, stopping)
- gobgpd.py       the gobgpd daemon (config, start, API, RIB) for the controller and gobgp hosts
- gobgp_agent.py  kind "gobgp": gobgpd + our evpn-agent
- frr.py          kind "frr": FRR's zebra + bgpd (advertise-all-vni); the FRR controller's config
- controller.py   the lab's controllers (eBGP hubs): gobgpd or FRR's bgpd, by the topology's `controllers:` kind
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import HostNode

KINDS: dict[str, str] = {"gobgp": "gobgp_agent", "frr": "frr"}  # topology `kind:` -> module of labctl.nodes
DEFAULT_KIND = "gobgp"


def node_class(kind: str) -> type[HostNode]:
    """The class implementing host kind `kind` (its module's NODE)."""
    module = importlib.import_module(f"{__name__}.{KINDS[kind]}")
    node: type[HostNode] = module.NODE
    return node
