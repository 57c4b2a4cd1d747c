"""Where a route becomes desired kernel state.

`RibView` holds the imported remote routes and, per VNI, the kernel entries
they call for. It is fed batches of route events and answers which entries a
batch touched, so the reconciler works on changes, not on the whole table.

- Type-3 (IMET) from VTEP X for VNI N  -> FloodEntry(vxlan device of N, X)
  (``bridge fdb append 00:00:00:00:00:00 dev vxlanN dst X``: head-end replication)
- Type-5 X/32 (seed form, opt-in)     -> FloodEntry as above
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from .config import AgentConfig, VniConfig
from .routes import ENCAP_VXLAN, PMSI_INGRESS_REPLICATION, EvpnRoute, ImetRoute, IPAddress, MacIpRoute, PrefixRoute, RouteEvent

log = logging.getLogger("evpn.agent.desired")


@dataclass(frozen=True, order=True)
class FloodEntry:
    """One head-end replication destination: the all-zero MAC on `device` pointing at `vtep`."""

    device: str
    vtep: IPAddress


@dataclass(frozen=True)
class Verdict:
    """What to do with one route: program it for `vni`, or ignore it for `reason`."""

    vni: VniConfig | None
    reason: str = ""
    vtep: IPAddress | None = None


def _vni_by_route_targets(route: EvpnRoute, cfg: AgentConfig) -> list[VniConfig]:
    return [v for v in cfg.vnis if v.import_rts & route.attrs.route_targets]


def classify(route: EvpnRoute, cfg: AgentConfig) -> Verdict:
    """Decide which served VNI (if any) a remote route belongs to.

    The VNI comes from the route itself (PMSI label for Type-3, label for Type-2,
    RFC 8365), else from a non-zero Ethernet tag, else from a unique route-target
    match. A route that carries route targets must carry one the VNI imports; a
    route with none (hand-made with the gobgp CLI) is matched by VNI alone.
    """
    if route.attrs.encapsulation not in (None, ENCAP_VXLAN):
        return Verdict(None, f"encapsulation {route.attrs.encapsulation} is not VXLAN")
    if isinstance(route, ImetRoute):
        vtep: IPAddress = route.originator
        if route.pmsi_type not in (None, PMSI_INGRESS_REPLICATION):
            return Verdict(None, f"PMSI tunnel type {route.pmsi_type} is not ingress replication")
        carried = route.pmsi_vni
    elif isinstance(route, PrefixRoute):
        if not cfg.seed_prefix_vteps:
            return Verdict(None, "type-5 route (seed VTEP form not enabled)")
        if route.prefix.prefixlen != route.prefix.max_prefixlen:
            return Verdict(None, f"type-5 prefix {route.prefix} is not a host route")
        vtep = route.prefix.network_address
        carried = route.label or None
        if carried is None and len(cfg.vnis) == 1:
            carried = cfg.vnis[0].vni
    elif isinstance(route, MacIpRoute):
        vtep = route.attrs.next_hop
        carried = route.label_vni
    else:  # pragma: no cover - the union is closed
        return Verdict(None, f"unsupported route {type(route).__name__}")
    if vtep == cfg.vtep:
        return Verdict(None, "own route", vtep)
    if vtep.version != 4 or vtep.is_unspecified or vtep.is_multicast or vtep.is_loopback:
        return Verdict(None, f"VTEP {vtep} is not a usable unicast IPv4 address", vtep)
    candidates: list[VniConfig] = []
    for number in (carried, route.ethernet_tag or None):
        if number is not None and (served := cfg.vni(number)) is not None:
            candidates = [served]
            break
    if not candidates:
        if carried is not None:
            return Verdict(None, f"VNI {carried} not served", vtep)
        candidates = _vni_by_route_targets(route, cfg)
        if len(candidates) != 1:
            return Verdict(None, "no single served VNI matches its route targets", vtep)
    vni = candidates[0]
    if route.attrs.route_targets and not (vni.import_rts & route.attrs.route_targets):
        rts = ",".join(sorted(map(str, route.attrs.route_targets)))
        return Verdict(None, f"route targets {rts} not imported by VNI {vni.vni}", vtep)
    return Verdict(vni, "", vtep)


class RibView:
    """The remote routes the agent imported, indexed by the kernel entries they ask for."""

    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self._routes: dict[tuple, FloodEntry | None] = {}
        self._flood_refs: dict[FloodEntry, set[tuple]] = {}
        self.ignored: Counter[str] = Counter()
        self.malformed = 0

    def __len__(self) -> int:
        return len(self._routes)

    def _entry_for(self, route: EvpnRoute) -> FloodEntry | None:
        if isinstance(route, MacIpRoute):
            return None  # Type-2 programming is not part of the flood list
        verdict = classify(route, self.cfg)
        if verdict.vni is None:
            if verdict.reason != "own route":
                self.ignored[verdict.reason] += 1
                log.info("event=route-ignored route=%s reason=%r", route.key, verdict.reason)
            return None
        assert verdict.vtep is not None
        return FloodEntry(verdict.vni.device, verdict.vtep)

    def _unref(self, key: tuple, touched: set[FloodEntry]) -> None:
        entry = self._routes.pop(key, None)
        if entry is None:
            return
        refs = self._flood_refs[entry]
        refs.discard(key)
        if not refs:
            del self._flood_refs[entry]
            touched.add(entry)

    def apply(self, events: Iterable[RouteEvent]) -> set[FloodEntry]:
        """Apply a batch of events; return the entries whose desired presence may have changed."""
        touched: set[FloodEntry] = set()
        for event in events:
            key = event.route.key
            self._unref(key, touched)  # an update replaces what the previous version asked for
            if event.withdrawn:
                log.info("event=route-withdrawn route=%s", key)
                continue
            entry = self._entry_for(event.route)
            if entry is None:
                continue
            log.info("event=route-seen route=%s vtep=%s device=%s", key, entry.vtep, entry.device)
            self._routes[key] = entry
            refs = self._flood_refs.setdefault(entry, set())
            if not refs:
                touched.add(entry)
            refs.add(key)
        return touched

    def replace(self, events: Iterable[RouteEvent]) -> None:
        """Forget everything and load a full table (after (re)connecting to gobgpd)."""
        self._routes.clear()
        self._flood_refs.clear()
        self.ignored.clear()
        self.apply(events)

    def wants(self, entry: FloodEntry) -> bool:
        return entry in self._flood_refs

    def desired(self) -> set[FloodEntry]:
        return set(self._flood_refs)

    def remote_vteps(self) -> dict[int, list[str]]:
        by_device = {v.device: v.vni for v in self.cfg.vnis}
        out: dict[int, list[str]] = {v.vni: [] for v in self.cfg.vnis}
        for entry in sorted(self._flood_refs):
            out[by_device[entry.device]].append(str(entry.vtep))
        return out
