"""Where a route becomes desired kernel state.

`RibView` holds the imported remote routes (and the MACs learned locally) and
answers, per batch of events, which kernel FDB entries the batch touched, so
the reconciler works on changes, not on the whole table.

- Type-3 (IMET) from VTEP X for VNI N -> FdbEntry(vxlanN, 00:00:00:00:00:00, X)
  head-end replication: ``bridge fdb append 00:00:00:00:00:00 dev vxlanN dst X``
- Type-5 X/32 (the seed's form, opt-in) -> the same flood entry
- Type-2 (MAC/IP) MAC M behind VTEP X    -> FdbEntry(vxlanN, M, X)
  unicast: ``bridge fdb replace M dev vxlanN dst X self`` + ``... master extern_learn``
  One winner per (device, MAC): highest MAC-mobility sequence number, then the
  lowest VTEP address (RFC 7432 section 15.1); a MAC learned locally competes
  with its own sequence number and, when it wins, no remote entry is installed.
- Type-2 with an IP, IP I of MAC M       -> NeighEntry(bridge of N, I, M)
  ARP/ND suppression: ``ip neigh replace I lladdr M dev br0 nud noarp extern_learn``
  (the vxlan port has neigh_suppress on, so the bridge answers for remote VMs)
"""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, Union

from .addresses import host_ip_problem, vtep_problem
from .config import AgentConfig, VniConfig
from .entries import (
    ZERO_MAC,
    FdbEntry,
    KernelEntry,
    NeighEntry,
    entry_sort_key,
    flood_entry,
)
from .ownedset import FDB, NEIGH, PackedEntries, fdb_key, neigh_key
from .routes import (
    ENCAP_VXLAN,
    PMSI_INGRESS_REPLICATION,
    EvpnRoute,
    ImetRoute,
    IPAddress,
    MacIpRoute,
    PrefixRoute,
    RouteEvent,
    describe_route,
    parse_ip,
)

log = logging.getLogger("evpn.agent.desired")
LOG_EACH_UP_TO = 50  # routes in a batch logged one line each at INFO; a bigger batch: one summary line

@dataclass(frozen=True)
class Verdict:
    """What to do with one route: program it for `vni`, or ignore it for `reason`."""

    vni: VniConfig | None
    reason: str = ""
    vtep: IPAddress | None = None


def _vni_by_route_targets(route: EvpnRoute, cfg: AgentConfig) -> list[VniConfig]:
    return [v for v in cfg.vnis if v.import_rts & route.attrs.route_targets]


def classify(route: EvpnRoute, cfg: AgentConfig) -> Verdict:
    """Decide which served VNI (if any) a remote route belongs to (see `classify_attrs`); a Type-2
    route's IP must also be one a VM of that VNI may have."""
    verdict = classify_attrs(route, cfg)
    return verdict if verdict.vni is None else ip_verdict(route, verdict)


def ip_verdict(route: EvpnRoute, verdict: Verdict) -> Verdict:
    """`verdict` (a served VNI) unless `route` is a Type-2 route whose IP no VM of that VNI may have."""
    assert verdict.vni is not None
    if isinstance(route, MacIpRoute) and route.ip is not None and (problem := host_ip_problem(route.ip, verdict.vni.subnets)) is not None:
        return Verdict(None, f"type-2 IP {route.ip} is not a VM address: {problem}", verdict.vtep)
    return verdict


def classify_attrs(route: EvpnRoute, cfg: AgentConfig) -> Verdict:
    """Decide which served VNI (if any) a remote route belongs to, from everything but a Type-2 IP
    (so routes that share their attributes, label and Ethernet tag share the verdict).

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
    if (problem := vtep_problem(vtep)) is not None:
        return Verdict(None, f"VTEP {vtep} is not a usable unicast IPv4 address: {problem}", vtep)
    number = carried if carried is not None else (route.ethernet_tag or None)
    served = cfg.vni(number) if number is not None else None
    if served is not None:
        candidates = [served]
    elif carried is not None:
        return Verdict(None, f"VNI {carried} not served", vtep)
    else:
        candidates = _vni_by_route_targets(route, cfg)
        if len(candidates) != 1:
            return Verdict(None, "no single served VNI matches its route targets", vtep)
    vni = candidates[0]
    if route.attrs.route_targets and not (vni.import_rts & route.attrs.route_targets):
        rts = ",".join(sorted(map(str, route.attrs.route_targets)))
        return Verdict(None, f"route targets {rts} not imported by VNI {vni.vni}", vtep)
    return Verdict(vni, "", vtep)


LOCAL = "local"  # the winner of a slot held by this host's own VM: install nothing
RouteKey = tuple  # a route's own key (routes.py)
IpKey = Union[int, ipaddress.IPv6Address]  # an IPv4 address as its integer (the object its IPv4Address holds), an IPv6 address as is
IGNORED_REASONS_MAX = 64
ORIGINS_MAX = 4096  # shared Origin objects kept at most (one per VTEP, sequence, VNI, RD and tag in use)


def ip_key(ip: IPAddress) -> IpKey:
    """The key of an address in the neighbour index: no IPv4 integer equals an IPv6Address."""
    return int(ip) if type(ip) is ipaddress.IPv4Address else ip


class Origin(NamedTuple):
    """Where a claim on a MAC comes from. Shared by every claim of one VTEP, sequence, VNI, RD and
    Ethernet tag: a table of 100k MACs behind 200 VTEPs holds a few hundred of these."""

    minus_sequence: int  # the rank, smallest wins (RFC 7432 15.1): highest sequence ...
    vtep_rank: int  # ... then the lowest VTEP, as an integer
    vni: int  # position of the VNI in cfg.vnis (its device and bridge)
    rd: str | None  # the route's RD; None: the MAC is local here
    ethernet_tag: int
    vtep: IPAddress | None  # where the entry sends frames (None: local, no entry)


Claim = tuple  # (Origin, IPAddress | None): one Type-2 route (its IP, if any), or the local MAC (None)


@dataclass(frozen=True)
class MacOwner:
    """Who holds a MAC now, for status and mobility: a VTEP (or 'local') and its sequence number."""

    vtep: str
    sequence: int


class RibView:
    """The remote routes the agent imported and the local MACs, as the slots they claim.

    Three kinds of slot, one winner each; a winning remote claim is one desired kernel entry:

    - MAC slot (VNI, MAC) -> FdbEntry(device, MAC, VTEP) (+ the bridge's extern_learn entry).
      `_macs`: MAC -> its claims (one tuple, or a list when several routes or VNIs claim it).
      Highest sequence wins, then the lowest VTEP; the local MAC competes with its own sequence.
    - neighbour slot (bridge, IP) -> NeighEntry(bridge, IP, MAC). `_ips`: IP -> the MAC(s) whose
      claims carry it; the winner is ranked as above, then the lowest MAC. An IP of a local VM
      (`_local_ips`) beats every remote claim.
    - flood slot (VNI, VTEP) -> the flood entry; `_floods`: Type-3 (and seed Type-5) routes, counted
      per slot in `_flood_claims`.

    Per Type-2 route the view keeps one claim tuple and two index entries; the MAC text and the
    IPv4Address it holds are the route's own objects, which the kernel entries made from them share.
    Kernel entries themselves are made when asked for (`desired`, the entries a batch touched).
    """

    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self._devices = [v.device for v in cfg.vnis]
        self._bridges = [v.bridge for v in cfg.vnis]
        self._vni_index = {v.vni: i for i, v in enumerate(cfg.vnis)}
        self._device_index = {v.device: i for i, v in enumerate(cfg.vnis)}
        self._own_rank = int(cfg.vtep)
        self._macs: dict[str, Claim | list[Claim]] = {}
        self._ips: dict[IpKey, str | list[str]] = {}
        self._local_ips: set[tuple[str, IpKey]] = set()
        self._floods: dict[RouteKey, tuple[int, IPAddress]] = {}
        self._flood_claims: Counter[tuple[int, IPAddress]] = Counter()
        self._origins: dict[tuple, Origin] = {}
        self._remote = 0  # remote routes held
        self._local_macs = 0
        self._entry_counts: Counter[tuple[str, str]] = Counter()  # (slot kind, device or bridge) -> desired entries
        self._route_counts: Counter[tuple[str, str]] = Counter()  # (route type, device) -> routes imported
        self.ignored: Counter[str] = Counter()

    def __len__(self) -> int:
        """Remote routes held, local MACs and local VM addresses."""
        return self._remote + self._local_macs + len(self._local_ips)

    # -- the winner of a slot -------------------------------------------------------------

    def _claims_of(self, mac: str) -> tuple[Claim, ...] | list[Claim]:
        held = self._macs.get(mac)
        if held is None:
            return ()
        return (held,) if type(held) is tuple else held  # type: ignore[return-value]

    def _mac_best(self, vni: int, mac: str) -> Origin | None:
        """The winning claim's origin of MAC slot (vni, mac)."""
        best: Origin | None = None
        for origin, _ in self._claims_of(mac):
            if origin.vni == vni and (best is None or (origin.minus_sequence, origin.vtep_rank) < (best.minus_sequence, best.vtep_rank)):
                best = origin
        return best

    def _mac_outcome(self, vni: int, mac: str) -> IPAddress | str | None:
        """What MAC slot (vni, mac) asks of the kernel: an entry towards a VTEP, LOCAL (nothing), or no claim."""
        best = self._mac_best(vni, mac)
        return None if best is None else (LOCAL if best.vtep is None else best.vtep)

    def _macs_of_ip(self, key: IpKey) -> tuple[str, ...] | list[str]:
        held = self._ips.get(key)
        if held is None:
            return ()
        return (held,) if type(held) is str else held  # type: ignore[return-value]

    def _neigh_best(self, bridge: str, key: IpKey) -> tuple[str, IPAddress] | str | None:
        """The winner of neighbour slot (bridge, IP): (MAC, IP) of the best remote claim, LOCAL, or None."""
        if (bridge, key) in self._local_ips:
            return LOCAL
        best: tuple[int, int, str] | None = None
        found: IPAddress | None = None
        for mac in self._macs_of_ip(key):
            for origin, ip in self._claims_of(mac):
                if ip is not None and self._bridges[origin.vni] == bridge and ip_key(ip) == key:
                    rank = (origin.minus_sequence, origin.vtep_rank, mac)
                    if best is None or rank < best:
                        best, found = rank, ip
        return None if best is None else (best[2], found)  # type: ignore[return-value]

    # -- keeping counts and reporting changes -----------------------------------------------

    def _mac_changed(self, vni: int, mac: str, old: IPAddress | str | None, touched: set[KernelEntry] | None) -> None:
        new = self._mac_outcome(vni, mac)
        if new is old or new == old:
            return
        device = self._devices[vni]
        if old is not None and old is not LOCAL:
            self._entry_counts[("mac", device)] -= 1
            if touched is not None:
                touched.add(FdbEntry(device, mac, old))  # type: ignore[arg-type]
        if new is not None and new is not LOCAL:
            self._entry_counts[("mac", device)] += 1
            if touched is not None:
                touched.add(FdbEntry(device, mac, new))  # type: ignore[arg-type]

    def _neigh_changed(self, bridge: str, key: IpKey, ip: IPAddress, old: tuple[str, IPAddress] | str | None,
                       touched: set[KernelEntry] | None) -> None:
        new = self._neigh_best(bridge, key)
        old_mac = old[0] if type(old) is tuple else old
        new_mac = new[0] if type(new) is tuple else new
        if old_mac == new_mac:
            return
        if type(old) is tuple:
            self._entry_counts[("neigh", bridge)] -= 1
            if touched is not None:
                touched.add(NeighEntry(bridge, ip, old_mac))  # type: ignore[arg-type]
        if type(new) is tuple:
            self._entry_counts[("neigh", bridge)] += 1
            if touched is not None:
                touched.add(NeighEntry(bridge, ip, new_mac))  # type: ignore[arg-type]

    # -- MAC claims ---------------------------------------------------------------------------

    def _add_claim(self, mac: str, claim: Claim, touched: set[KernelEntry] | None) -> None:
        origin, ip = claim
        if ip is not None:  # the neighbour slot's winner before the claim (it is None for a new address)
            key = int(ip) if type(ip) is ipaddress.IPv4Address else ip
            bridge = self._bridges[origin.vni]
            macs = self._ips.get(key)
            first_on_ip = macs is None and (bridge, key) not in self._local_ips
            before = None if first_on_ip else self._neigh_best(bridge, key)
        held = self._macs.get(mac)
        if held is None:  # the first claim on this MAC (nearly always, loading a table): it wins
            self._macs[mac] = claim
            if origin.vtep is not None:
                device = self._devices[origin.vni]
                self._entry_counts[("mac", device)] += 1
                if touched is not None:
                    touched.add(FdbEntry(device, mac, origin.vtep))
        else:
            old = self._mac_outcome(origin.vni, mac)
            if type(held) is tuple:
                self._macs[mac] = [held, claim]  # type: ignore[list-item]
            else:
                held.append(claim)  # type: ignore[union-attr]
            self._mac_changed(origin.vni, mac, old, touched)
        if ip is None:
            return
        if first_on_ip:  # it wins
            self._ips[key] = mac
            self._entry_counts[("neigh", bridge)] += 1
            if touched is not None:
                touched.add(NeighEntry(bridge, ip, mac))
            return
        if macs is None:
            self._ips[key] = mac
        elif type(macs) is str:
            if macs != mac:
                self._ips[key] = [macs, mac]
        elif mac not in macs:
            macs.append(mac)  # type: ignore[union-attr]
        self._neigh_changed(bridge, key, ip, before, touched)

    def _drop_claim(self, mac: str, claim: Claim, touched: set[KernelEntry] | None) -> None:
        """Remove one claim (held for `mac`, compared by identity) and report what that changes."""
        origin, ip = claim
        old = self._mac_outcome(origin.vni, mac)
        if ip is not None:
            key, bridge = ip_key(ip), self._bridges[origin.vni]
            before = self._neigh_best(bridge, key)
        held = self._macs[mac]
        if type(held) is tuple:
            del self._macs[mac]
        else:
            held = [c for c in held if c is not claim]  # type: ignore[union-attr]
            self._macs[mac] = held[0] if len(held) == 1 else held
        self._mac_changed(origin.vni, mac, old, touched)
        if ip is not None:
            if not any(other is not None and ip_key(other) == key for _, other in self._claims_of(mac)):
                macs = self._ips[key]
                if type(macs) is str:
                    del self._ips[key]
                else:
                    rest = [m for m in macs if m != mac]
                    self._ips[key] = rest[0] if len(rest) == 1 else rest
            self._neigh_changed(bridge, key, ip, before, touched)

    def _find_claim(self, mac: str, rd: str | None, tag: int, ip: IPAddress | None, vni: int | None = None) -> Claim | None:
        """The claim of route (rd, tag, mac, ip) (rd None: the local claim of VNI `vni`)."""
        for claim in self._claims_of(mac):
            origin = claim[0]
            if rd is None:
                if origin.rd is None and origin.vni == vni:
                    return claim
            elif origin.rd == rd and origin.ethernet_tag == tag and claim[1] == ip:
                return claim
        return None

    def _origin(self, minus_sequence: int, vtep: IPAddress | None, vni: int, rd: str | None, tag: int) -> Origin:
        """The shared Origin of these values (bounded: past ORIGINS_MAX the table starts afresh)."""
        rank = self._own_rank if vtep is None else int(vtep)
        key = (minus_sequence, rank, vni, rd, tag)
        origin = self._origins.get(key)
        if origin is None:
            if len(self._origins) >= ORIGINS_MAX:
                self._origins.clear()
            origin = self._origins[key] = Origin(minus_sequence, rank, vni, rd, tag, vtep)
        return origin

    # -- applying route events ----------------------------------------------------------------

    def _remove_route(self, route: EvpnRoute, touched: set[KernelEntry] | None) -> None:
        """Forget what the held version of `route` (same key) claimed, if any."""
        if isinstance(route, MacIpRoute):
            if route.mac not in self._macs:
                return
            claim = self._find_claim(route.mac, route.rd.text, route.ethernet_tag, route.ip)
            if claim is None:
                return
            self._drop_claim(route.mac, claim, touched)
            kind, vni = "macip", claim[0].vni
        else:
            key = route.key
            held = self._floods.pop(key, None)
            if held is None:
                return
            self._flood_claims[held] -= 1
            if not self._flood_claims[held]:
                del self._flood_claims[held]
                self._flood_changed(held, -1, touched)
            kind, vni = key[0], held[0]
        self._route_counts[(kind, self._devices[vni])] -= 1
        self._remote -= 1

    def _flood_changed(self, slot: tuple[int, IPAddress], change: int, touched: set[KernelEntry] | None) -> None:
        device = self._devices[slot[0]]
        self._entry_counts[("flood", device)] += change
        if touched is not None:
            touched.add(flood_entry(device, slot[1]))

    def _verdict(self, route: EvpnRoute, cache: dict[tuple, Verdict]) -> Verdict:
        """classify(route), sharing the part that depends on attributes, label and tag within one batch
        (`cache` lives as long as the batch, which keeps the attribute objects whose id it holds)."""
        if not isinstance(route, MacIpRoute):
            return classify(route, self.cfg)
        key = (id(route.attrs), route.label_vni, route.ethernet_tag)
        verdict = cache.get(key)
        if verdict is None:
            verdict = cache[key] = classify_attrs(route, self.cfg)
        if verdict.vni is None or route.ip is None or (problem := host_ip_problem(route.ip, verdict.vni.subnets)) is None:
            return verdict
        return Verdict(None, f"type-2 IP {route.ip} is not a VM address: {problem}", verdict.vtep)

    def _add_route(self, route: EvpnRoute, verdict: Verdict, touched: set[KernelEntry] | None) -> bool:
        """Hold an accepted route; False if it asks for nothing after all (a Type-2 non-unicast MAC)."""
        assert verdict.vni is not None and verdict.vtep is not None
        vni = self._vni_index[verdict.vni.vni]
        if isinstance(route, MacIpRoute):
            mac = route.mac
            if int(mac[:2], 16) & 1 or mac == ZERO_MAC:
                self.ignored["type-2 with a non-unicast MAC"] += 1
                return False
            origin = self._origin(-(route.attrs.mac_mobility_seq or 0), verdict.vtep, vni, route.rd.text, route.ethernet_tag)
            self._add_claim(mac, (origin, route.ip), touched)
            kind = "macip"
        else:
            key = route.key
            slot = (vni, verdict.vtep)
            self._floods[key] = slot
            self._flood_claims[slot] += 1
            if self._flood_claims[slot] == 1:
                self._flood_changed(slot, +1, touched)
            kind = key[0]
        self._route_counts[(kind, self._devices[vni])] += 1
        self._remote += 1
        return True

    def apply(self, events: Iterable[RouteEvent]) -> set[KernelEntry]:
        """Apply a batch of route events; return the entries whose desired presence changed."""
        touched: set[KernelEntry] = set()
        self._apply(list(events), touched)
        return touched

    def _apply(self, events: list[RouteEvent], touched: set[KernelEntry] | None) -> None:
        level = logging.INFO if len(events) <= LOG_EACH_UP_TO else logging.DEBUG  # 100k lines cost seconds of CPU
        verbose = log.isEnabledFor(level)  # describe a route only for a line that is written
        before: dict[tuple[int, str], IPAddress | str | None] | None = {} if verbose and level == logging.INFO else None  # MAC winners before the batch
        cache: dict[tuple, Verdict] = {}
        seen = withdrawn = 0
        for event in events:
            route = event.route
            if before is not None and isinstance(route, MacIpRoute):
                self._note_winners(route.mac, None, before)
            self._remove_route(route, touched)  # an update replaces what the previous version asked for
            if event.withdrawn:
                withdrawn += 1
                if verbose:
                    log.log(level, "event=route-withdrawn %s", describe_route(route))
                continue
            verdict = self._verdict(route, cache)
            if verdict.vni is None:
                if verdict.reason != "own route":
                    self._count_ignored(verdict.reason)
                    log.info("event=route-ignored %s reason=%r", describe_route(route), verdict.reason)
                continue
            if before is not None and isinstance(route, MacIpRoute):
                self._note_winners(route.mac, self._vni_index[verdict.vni.vni], before)
            if not self._add_route(route, verdict, touched):
                continue
            seen += 1
            if verbose:
                log.log(level, "event=route-seen %s device=%s", describe_route(route), verdict.vni.device)
        if before is not None:
            for (vni, mac), old in before.items():
                new = self._mac_outcome(vni, mac)
                if old is not None and old is not LOCAL and new is not None and new is not LOCAL and old != new:
                    log.info("event=remote-mac-moved device=%s mac=%s from=%s to=%s", self._devices[vni], mac, old, new)
        if level == logging.DEBUG:
            log.info("event=routes-applied seen=%d withdrawn=%d (one line per route at DEBUG)", seen, withdrawn)

    def _note_winners(self, mac: str, vni: int | None, before: dict[tuple[int, str], IPAddress | str | None]) -> None:
        """Remember the winners of `mac`'s slots (of `vni`, or of every VNI claiming it) before a change."""
        for index in {origin.vni for origin, _ in self._claims_of(mac)} if vni is None else (vni,):
            if (index, mac) not in before:
                before[(index, mac)] = self._mac_outcome(index, mac)

    def _count_ignored(self, reason: str) -> None:
        """Count an ignored route by reason; distinct reasons are bounded (hostile routes cannot grow it)."""
        if reason not in self.ignored and len(self.ignored) >= IGNORED_REASONS_MAX - 1:
            reason = "other reasons"
        self.ignored[reason] += 1

    # -- local MACs and addresses -------------------------------------------------------------

    def set_local_ip(self, bridge: str, ip: IPAddress, local: bool) -> set[KernelEntry]:
        """Mark `ip` as used by a VM on this host (False: no longer): while it is, no remote claim on it
        becomes a neighbour entry, so this host never answers ARP/ND for its own VM with a remote MAC."""
        touched: set[KernelEntry] = set()
        key = ip_key(ip)
        before = self._neigh_best(bridge, key)
        if local:
            self._local_ips.add((bridge, key))
        else:
            self._local_ips.discard((bridge, key))
        self._neigh_changed(bridge, key, ip, before, touched)
        return touched

    def set_local(self, device: str, mac: str, sequence: int | None) -> set[KernelEntry]:
        """Mark `mac` as local on `device` with its advertised sequence (None: no longer local)."""
        touched: set[KernelEntry] = set()
        vni = self._device_index.get(device)
        if vni is None:  # not a served device: no slot to claim (its routes are not imported either)
            return touched
        claim = self._find_claim(mac, None, 0, None, vni)
        if claim is not None:
            self._drop_claim(mac, claim, touched)
            self._local_macs -= 1
        if sequence is not None:
            self._add_claim(mac, (self._origin(-sequence, None, vni, None, 0), None), touched)
            self._local_macs += 1
        return touched

    def replace(self, events: Iterable[RouteEvent]) -> None:
        """Forget the remote routes and load a full table (after (re)connecting); local MACs stay."""
        self.begin_table()
        self.load(list(events))

    def load(self, events: list[RouteEvent]) -> None:
        """Take part of a full table after `begin_table` (one message of gobgpd's dump: the table is
        never held whole as route objects; 100k of them are ~30 MB)."""
        self._apply(events, None)

    def begin_table(self) -> None:
        """Forget the remote routes before a full table is loaded part by part (`load`); local MACs stay.
        Until the last part is in, the view answers for a partial table: the agent programs nothing
        from it (its full sync waits for the whole table; a read cut short ends the session)."""
        local = [(mac, claim) for mac in self._macs for claim in self._claims_of(mac) if claim[0].rd is None]
        self._macs.clear()
        self._ips.clear()
        self._floods.clear()
        self._flood_claims.clear()
        self._entry_counts.clear()
        self._route_counts.clear()
        self._remote = 0
        self.ignored.clear()
        for mac, claim in local:
            self._add_claim(mac, claim, None)

    # -- queries -----------------------------------------------------------------------

    def entry_counts(self) -> dict[tuple[str, str], int]:
        """(kind: flood|mac|neigh, vxlan device or bridge) -> desired entries; kept as changes happen."""
        return {k: v for k, v in self._entry_counts.items() if v}

    def route_counts(self) -> dict[tuple[str, str], int]:
        """(route type: imet|macip|prefix, vxlan device) -> remote routes in use; kept as changes happen."""
        return {k: v for k, v in self._route_counts.items() if v}

    def wanted_neighbour(self, bridge: str, ip: str) -> NeighEntry | None:
        """The neighbour entry wanted for `ip` (ipaddress's text form) on `bridge`, if any."""
        best = self._neigh_best(bridge, ip_key(parse_ip(ip)))
        return NeighEntry(bridge, best[1], best[0]) if type(best) is tuple else None

    def wants(self, entry: KernelEntry) -> bool:
        if isinstance(entry, NeighEntry):
            best = self._neigh_best(entry.device, ip_key(entry.ip))
            return type(best) is tuple and best[0] == entry.mac
        vni = self._device_index.get(entry.device)
        if vni is None:
            return False
        if entry.mac == ZERO_MAC:
            return (vni, entry.vtep) in self._flood_claims
        outcome = self._mac_outcome(vni, entry.mac)
        return outcome is not None and outcome is not LOCAL and outcome == entry.vtep

    def _fdb_winner_items(self) -> Iterator[tuple[str, str, IPAddress]]:
        """(vxlan device, MAC, VTEP) of every FDB entry wanted (flood entries have the zero MAC)."""
        devices = self._devices
        for vni, vtep in self._flood_claims:
            yield devices[vni], ZERO_MAC, vtep
        for mac, held in self._macs.items():
            if type(held) is tuple:  # one claim on a MAC (nearly every MAC): a remote one wins
                if held[0].vtep is not None:
                    yield devices[held[0].vni], mac, held[0].vtep
                continue
            for vni in {origin.vni for origin, _ in held}:
                best = self._mac_best(vni, mac)
                if best is not None and best.vtep is not None:
                    yield devices[vni], mac, best.vtep

    def _neigh_winner_items(self) -> Iterator[tuple[str, IPAddress, str]]:
        """(bridge, IP, MAC) of every neighbour entry wanted."""
        bridges, macs, local = self._bridges, self._macs, self._local_ips
        for key, held in self._ips.items():
            if type(held) is str:
                claim = macs[held]
                if type(claim) is tuple:  # one MAC with one claim on an address (nearly every address): it
                    bridge = bridges[claim[0].vni]  # wins unless the address is local
                    if not local or (bridge, key) not in local:
                        yield bridge, claim[1], held
                    continue
            for bridge in {bridges[origin.vni] for mac in self._macs_of_ip(key) for origin, ip in self._claims_of(mac)
                           if ip is not None and ip_key(ip) == key}:
                best = self._neigh_best(bridge, key)
                if type(best) is tuple:
                    yield bridge, best[1], best[0]  # type: ignore[misc]

    def _fdb_winners(self) -> set[FdbEntry]:
        return {FdbEntry(device, mac, vtep) for device, mac, vtep in self._fdb_winner_items()}

    def _neigh_winners(self) -> set[NeighEntry]:
        return {NeighEntry(bridge, ip, mac) for bridge, ip, mac in self._neigh_winner_items()}

    def desired(self) -> set[KernelEntry]:
        """Every entry the routes ask for now (made afresh: the view keeps claims, not entries)."""
        out: set[KernelEntry] = self._fdb_winners()  # type: ignore[assignment]
        out |= self._neigh_winners()
        return out

    def desired_packed(self) -> PackedEntries:
        """`desired()` as packed keys (agent/ownedset.py), without an entry object per entry: what a
        whole-table comparison with the kernel and the owned set takes."""
        out = PackedEntries()
        for device, mac, vtep in self._fdb_winner_items():
            key = fdb_key(mac, vtep)
            if key is None:
                out.others.add(FdbEntry(device, mac, vtep))
            else:
                out.of_device(FDB, device).add(key)
        for bridge, ip, mac in self._neigh_winner_items():
            key = neigh_key(ip, mac)
            if key is None:
                out.others.add(NeighEntry(bridge, ip, mac))
            else:
                out.of_device(NEIGH, bridge).add(key)
        return out

    def desired_count(self) -> int:
        return sum(self._entry_counts.values())

    def highest_remote_sequence(self, device: str, mac: str) -> int | None:
        """The highest sequence number among remote routes for `mac` (None: nobody else has it)."""
        vni = self._device_index.get(device)
        seqs = [-origin.minus_sequence for origin, _ in self._claims_of(mac) if origin.vni == vni and origin.vtep is not None]
        return max(seqs) if seqs else None

    def mac_owner(self, device: str, mac: str) -> MacOwner | None:
        vni = self._device_index.get(device)
        best = None if vni is None else self._mac_best(vni, mac)
        if best is None:
            return None
        return MacOwner(LOCAL if best.vtep is None else str(best.vtep), -best.minus_sequence)

    def remote_vteps(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {v.vni: [] for v in self.cfg.vnis}
        for vni, vtep in sorted(self._flood_claims, key=lambda slot: (self._devices[slot[0]], slot[1].version, int(slot[1]))):
            out[self.cfg.vnis[vni].vni].append(str(vtep))
        return out

    def remote_macs(self) -> dict[int, dict[str, str]]:
        by_device = {v.device: v.vni for v in self.cfg.vnis}
        out: dict[int, dict[str, str]] = {v.vni: {} for v in self.cfg.vnis}
        for entry in sorted((e for e in self._fdb_winners() if not e.is_flood), key=entry_sort_key):
            out[by_device[entry.device]][entry.mac] = str(entry.vtep)
        return out

    def remote_neighbours(self) -> dict[str, dict[str, str]]:
        """bridge -> {IP: MAC} of the ARP/ND suppression entries wanted."""
        out: dict[str, dict[str, str]] = {}
        for entry in sorted(self._neigh_winners(), key=entry_sort_key):
            out.setdefault(entry.device, {})[str(entry.ip)] = entry.mac
        return out
