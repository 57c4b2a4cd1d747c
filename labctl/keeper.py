"""The underlay router's route keeper: `python -m labctl.keeper --routes FILE` inside `<lab>-underlay`.

The router reaches each node's loopback (VTEP, controller address) through a static /32 via the node's
end of its /30. The kernel deletes such a route when the router's end of the link goes down, and a
static route never comes back by itself: one flap of a host's link cut its VTEP off for good. The
keeper puts back, within `interval` (0.2 s), every route of the routes file that is missing; it reads
the file on every round, so `labctl apply` only rewrites the file.

Why this and not a routing protocol in the underlay (OSPF or BGP unnumbered with FRR on the router and
every node): it would mean zebra plus a routing daemon in every namespace, gobgp hosts included, for a
star topology with one path per node — more processes on a 2-core machine, slower `up`, and a second
control plane to reason about, to heal one thing: a static route removed with its link. The keeper
restores it as fast as a protocol would (its link-up is the trigger) and runs under the supervisor too.

The route computation (`router_routes`, `missing`) is pure and unit-tested.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .plan import LabPlan

log = logging.getLogger("evpn.labctl.keeper")

INTERVAL = 0.2  # seconds between two looks at the routing table


def router_routes(plan: LabPlan) -> list[tuple[str, str]]:
    """(destination, gateway) of every static route the router needs: each node's loopback /32."""
    nodes = [(plan.controller_namespace(c), c.address) for c in plan.topo.controllers] + [(h.name, h.vtep) for h in plan.topo.hosts]
    return [(f"{loopback}/32", str(plan.uplink(ns).node_ip)) for ns, loopback in nodes]


def write_routes(path: Path, routes: list[tuple[str, str]]) -> None:
    from .rundir import write_private_json

    write_private_json(path, [{"dst": dst, "gateway": gw} for dst, gw in routes])


def read_routes(path: Path) -> list[tuple[str, str]]:
    try:
        return [(str(r["dst"]), str(r["gateway"])) for r in json.loads(path.read_text())]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def missing(wanted: list[tuple[str, str]], present: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """The wanted routes the table lacks (a route to the right place through another gateway counts as wrong)."""
    return [route for route in wanted if route not in present]


def _present(ipr: object) -> set[tuple[str, str]]:
    found = set()
    for msg in ipr.get_routes(family=2, table=254):  # type: ignore[attr-defined]
        dst, gw = msg.get_attr("RTA_DST"), msg.get_attr("RTA_GATEWAY")
        if dst and gw:
            found.add((f"{dst}/{msg['dst_len']}", gw))
    return found


def run(routes_file: Path, interval: float = INTERVAL) -> None:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    ipr = IPRoute()
    failing: set[tuple[str, str]] = set()
    while True:
        for dst, gw in missing(read_routes(routes_file), _present(ipr)):
            try:
                ipr.route("replace", dst=dst, gateway=gw)
                failing.discard((dst, gw))
                log.warning("event=route-restored dst=%s gateway=%s", dst, gw)
            except NetlinkError as exc:
                if (dst, gw) not in failing:  # the link is still down: say it once, keep trying
                    failing.add((dst, gw))
                    log.info("event=route-unrestorable dst=%s gateway=%s error=%r (link down?)", dst, gw, str(exc))
        time.sleep(interval)


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labctl.keeper", description=__doc__.splitlines()[0])
    parser.add_argument("--routes", required=True, type=Path)
    parser.add_argument("--interval", type=float, default=INTERVAL)
    opts = parser.parse_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    run(opts.routes, opts.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
