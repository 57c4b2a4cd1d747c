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

import logging
from collections import Counter
from collections.abc import Iterable
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
    if isinstance(route, MacIpRoute) and route.ip is not None and (problem := host_ip_problem(route.ip, vni.subnets)) is not None:
        return Verdict(None, f"type-2 IP {route.ip} is not a VM address: {problem}", vtep)
    return Verdict(vni, "", vtep)


class MacSlot(NamedTuple):
    """One unicast MAC on a vxlan device: one winner among the claims (remote routes, or local)."""

    device: str
    mac: str
    kind: str = "mac"


class FloodSlot(NamedTuple):
    """One VTEP in a vxlan device's flood list: every Type-3 route for it asks for the same entry."""

    device: str
    vtep: str
    kind: str = "flood"


class NeighSlot(NamedTuple):
    """One IP on a bridge (ARP/ND suppression): one winner among the MACs claiming it."""

    bridge: str
    ip: str
    kind: str = "neigh"


Slot = Union[MacSlot, FloodSlot, NeighSlot]


class Rank(NamedTuple):
    """How good a claim is; the smallest wins (RFC 7432 15.1): highest sequence, then lowest VTEP,
    then (for an IP claimed by two MACs of one VTEP with one sequence) the lowest MAC: a fixed tie-break."""

    minus_sequence: int
    vtep: int
    mac: str = ""


class Claim(NamedTuple):
    """What one route (or the local bridge) asks of a slot: the entry to install if it wins
    (None: the MAC is local here, install nothing)."""

    rank: Rank
    entry: KernelEntry | None


class LocalKey(NamedTuple):
    """The key under which a locally learned MAC claims its slot (remote routes use their route key)."""

    device: str
    mac: str
    kind: str = "local"


class LocalIpKey(NamedTuple):
    """The key under which an address of a local VM claims its neighbour slot."""

    bridge: str
    ip: str
    kind: str = "local-ip"


def _by_rank(claim: Claim) -> Rank:
    return claim.rank


RANKS_MAX = 4096  # shared Rank objects kept at most (one per VTEP and sequence in use)
LOCAL_IP_RANK = Rank(-(1 << 40), -1)  # beats every remote claim: sequences are 32-bit, VTEPs >= 0
IGNORED_REASONS_MAX = 64

RouteKey = tuple  # a route's own key (routes.py), a LocalKey or a LocalIpKey


@dataclass(frozen=True)
class MacOwner:
    """Who holds a MAC now, for status and mobility: a VTEP (or 'local') and its sequence number."""

    vtep: str
    sequence: int


class RibView:
    """The remote routes the agent imported and the local MACs, indexed by the FDB entries they ask for."""

    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self._route_slots: dict[RouteKey, tuple[Slot, ...]] = {}
        # per slot its claims: one claim (nearly every slot) as a (key, claim) tuple, several as a dict
        self._slots: dict[Slot, tuple[RouteKey, Claim] | dict[RouteKey, Claim]] = {}
        self._ranks: dict[tuple[int, int], Rank] = {}  # (minus sequence, VTEP) -> one shared Rank
        self._winner: dict[Slot, KernelEntry | None] = {}
        self._desired: set[KernelEntry] = set()
        self._flood: set[FdbEntry] = set()  # the flood entries among them (status reads these often)
        self._entry_counts: Counter[tuple[str, str]] = Counter()  # (slot kind, device) -> desired entries
        self._route_counts: Counter[tuple[str, str]] = Counter()  # (route type, device) -> routes imported
        self.ignored: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._route_slots)

    # -- mapping a route to a slot and a candidate --------------------------------

    def _rank(self, minus_sequence: int, vtep: int) -> Rank:
        """The Rank of a MAC claim, shared by every claim of that VTEP and sequence (bounded)."""
        rank = self._ranks.get((minus_sequence, vtep))
        if rank is None:
            if len(self._ranks) >= RANKS_MAX:
                self._ranks.clear()
            rank = self._ranks[(minus_sequence, vtep)] = Rank(minus_sequence, vtep)
        return rank

    def _claims(self, route: EvpnRoute, key: RouteKey) -> list[tuple[Slot, Claim]]:
        verdict = classify(route, self.cfg)
        if verdict.vni is None:
            if verdict.reason != "own route":
                self._count_ignored(verdict.reason)
                log.info("event=route-ignored %s reason=%r", describe_route(route), verdict.reason)
            return []
        assert verdict.vtep is not None
        device = verdict.vni.device
        if isinstance(route, MacIpRoute):
            if int(route.mac[:2], 16) & 1 or route.mac == ZERO_MAC:
                self.ignored["type-2 with a non-unicast MAC"] += 1
                return []
            seq, vtep = -(route.attrs.mac_mobility_seq or 0), int(verdict.vtep)
            found: list[tuple[Slot, Claim]] = [(MacSlot(device, route.mac), Claim(self._rank(seq, vtep), FdbEntry(device, route.mac, verdict.vtep)))]
            if route.ip is not None:
                bridge = verdict.vni.bridge
                ip_text = key[4]  # str(route.ip), the string the route key holds already
                found.append((NeighSlot(bridge, ip_text), Claim(Rank(seq, vtep, route.mac), NeighEntry(bridge, route.ip, route.mac))))
            return found
        return [(FloodSlot(device, str(verdict.vtep)), Claim(Rank(0, 0), flood_entry(device, verdict.vtep)))]

    # -- applying changes ------------------------------------------------------------

    def _claims_in(self, slot: Slot) -> Iterable[Claim]:
        held = self._slots.get(slot)
        if held is None:
            return ()
        return (held[1],) if type(held) is tuple else held.values()  # type: ignore[union-attr]

    def _claim_of(self, slot: Slot, key: RouteKey) -> Claim:
        held = self._slots[slot]
        return held[1] if type(held) is tuple else held[key]  # type: ignore[call-overload,return-value]

    def _rechoose(self, slot: Slot, touched: set[KernelEntry]) -> None:
        held = self._slots.get(slot)
        if held is None:
            new = None
            old = self._winner.pop(slot, None)
        else:
            new = held[1].entry if type(held) is tuple else min(held.values(), key=_by_rank).entry  # type: ignore[union-attr]
            old = self._winner.get(slot)
            self._winner[slot] = new
        if old != new:
            if old is not None:
                self._desired.discard(old)
                self._flood.discard(old)  # type: ignore[arg-type]
                self._entry_counts[(slot.kind, slot[0])] -= 1
                touched.add(old)
            if new is not None:
                self._desired.add(new)
                if isinstance(slot, FloodSlot):
                    self._flood.add(new)  # type: ignore[arg-type]
                self._entry_counts[(slot.kind, slot[0])] += 1
                touched.add(new)

    def _remove(self, key: RouteKey, touched: set[KernelEntry]) -> None:
        slots = self._route_slots.get(key)
        if slots and not isinstance(key, (LocalKey, LocalIpKey)):
            self._route_counts[(key[0], slots[0][0])] -= 1
        for slot in self._route_slots.pop(key, ()):
            held = self._slots.get(slot)
            if type(held) is tuple:
                if held[0] == key:  # type: ignore[index]
                    del self._slots[slot]
            elif held is not None:
                held.pop(key, None)  # type: ignore[union-attr]
                if len(held) <= 1:
                    if held:
                        self._slots[slot] = next(iter(held.items()))  # type: ignore[union-attr]
                    else:
                        del self._slots[slot]
            self._rechoose(slot, touched)

    def _insert(self, key: RouteKey, found: list[tuple[Slot, Claim]], touched: set[KernelEntry]) -> None:
        self._route_slots[key] = tuple(slot for slot, _ in found)
        if not isinstance(key, (LocalKey, LocalIpKey)):
            self._route_counts[(key[0], found[0][0][0])] += 1
        for slot, candidate in found:
            held = self._slots.get(slot)
            if held is None or (type(held) is tuple and held[0] == key):  # type: ignore[index]
                self._slots[slot] = (key, candidate)
            elif type(held) is tuple:
                self._slots[slot] = {held[0]: held[1], key: candidate}  # type: ignore[index]
            else:
                held[key] = candidate  # type: ignore[index]
            self._rechoose(slot, touched)

    def apply(self, events: Iterable[RouteEvent]) -> set[KernelEntry]:
        """Apply a batch of route events; return the entries whose desired presence changed."""
        touched: set[KernelEntry] = set()
        events = list(events)
        level = logging.INFO if len(events) <= LOG_EACH_UP_TO else logging.DEBUG  # 100k lines cost seconds of CPU
        verbose = log.isEnabledFor(level)  # describe a route only for a line that is written
        before: dict[Slot, KernelEntry | None] | None = {} if verbose and level == logging.INFO else None  # MAC winners before the batch
        seen = withdrawn = 0
        for event in events:
            key = event.route.key
            if before is not None:
                self._note_winners(self._route_slots.get(key, ()), before)
            self._remove(key, touched)  # an update replaces what the previous version asked for
            if event.withdrawn:
                withdrawn += 1
                if verbose:
                    log.log(level, "event=route-withdrawn %s", describe_route(event.route))
                continue
            found = self._claims(event.route, key)
            if not found:
                continue
            seen += 1
            if verbose:
                log.log(level, "event=route-seen %s device=%s", describe_route(event.route), found[0][0][0])
            if before is not None:
                self._note_winners([slot for slot, _ in found], before)
            self._insert(key, found, touched)
        if before is not None:
            for old, new in self.remote_moves(before):
                log.info("event=remote-mac-moved device=%s mac=%s from=%s to=%s", new.device, new.mac, old.vtep, new.vtep)
        if level == logging.DEBUG:
            log.info("event=routes-applied seen=%d withdrawn=%d (one line per route at DEBUG)", seen, withdrawn)
        return touched

    def _note_winners(self, slots: Iterable[Slot], before: dict[Slot, KernelEntry | None]) -> None:
        for slot in slots:
            if isinstance(slot, MacSlot) and slot not in before:
                before[slot] = self._winner.get(slot)

    def remote_moves(self, before: dict[Slot, KernelEntry | None]) -> list[tuple[FdbEntry, FdbEntry]]:
        """(old, new) unicast entries of the MACs that a batch moved from one remote VTEP to another."""
        moves = []
        for slot, old in before.items():
            new = self._winner.get(slot)
            if isinstance(old, FdbEntry) and isinstance(new, FdbEntry) and old.vtep != new.vtep:
                moves.append((old, new))
        return moves

    def _count_ignored(self, reason: str) -> None:
        """Count an ignored route by reason; distinct reasons are bounded (hostile routes cannot grow it)."""
        if reason not in self.ignored and len(self.ignored) >= IGNORED_REASONS_MAX - 1:
            reason = "other reasons"
        self.ignored[reason] += 1

    def set_local_ip(self, bridge: str, ip: IPAddress, local: bool) -> set[KernelEntry]:
        """Mark `ip` as used by a VM on this host (False: no longer): while it is, no remote claim on it
        becomes a neighbour entry, so this host never answers ARP/ND for its own VM with a remote MAC."""
        touched: set[KernelEntry] = set()
        key = LocalIpKey(bridge, str(ip))
        self._remove(key, touched)
        if local:
            self._insert(key, [(NeighSlot(bridge, str(ip)), Claim(LOCAL_IP_RANK, None))], touched)
        return touched

    def set_local(self, device: str, mac: str, sequence: int | None) -> set[KernelEntry]:
        """Mark `mac` as local on `device` with its advertised sequence (None: no longer local)."""
        touched: set[KernelEntry] = set()
        key = LocalKey(device, mac)
        self._remove(key, touched)
        if sequence is not None:
            self._insert(key, [(MacSlot(device, mac), Claim(Rank(-sequence, int(self.cfg.vtep)), None))], touched)
        return touched

    def replace(self, events: Iterable[RouteEvent]) -> None:
        """Forget the remote routes and load a full table (after (re)connecting); local MACs stay."""
        local = {k: [(s, self._claim_of(s, k)) for s in slots] for k, slots in self._route_slots.items() if isinstance(k, (LocalKey, LocalIpKey))}
        self._route_slots.clear()
        self._slots.clear()
        self._winner.clear()
        self._desired.clear()
        self._flood.clear()
        self._entry_counts.clear()
        self._route_counts.clear()
        self.ignored.clear()
        scratch: set[KernelEntry] = set()
        for key, found in local.items():
            self._insert(key, found, scratch)
        self.apply(events)

    # -- queries -----------------------------------------------------------------------

    def entry_counts(self) -> dict[tuple[str, str], int]:
        """(kind: flood|mac|neigh, vxlan device or bridge) -> desired entries; kept as changes happen."""
        return {k: v for k, v in self._entry_counts.items() if v}

    def route_counts(self) -> dict[tuple[str, str], int]:
        """(route type: imet|macip|prefix, vxlan device) -> remote routes in use; kept as changes happen."""
        return {k: v for k, v in self._route_counts.items() if v}

    def wanted_neighbour(self, bridge: str, ip: str) -> NeighEntry | None:
        """The neighbour entry wanted for `ip` (ipaddress's text form) on `bridge`, if any."""
        entry = self._winner.get(NeighSlot(bridge, ip))
        return entry if isinstance(entry, NeighEntry) else None

    def wants(self, entry: KernelEntry) -> bool:
        return entry in self._desired

    def desired(self) -> set[KernelEntry]:
        return set(self._desired)

    def desired_count(self) -> int:
        return len(self._desired)

    def highest_remote_sequence(self, device: str, mac: str) -> int | None:
        """The highest sequence number among remote routes for `mac` (None: nobody else has it)."""
        seqs = [-claim.rank.minus_sequence for claim in self._claims_in(MacSlot(device, mac)) if claim.entry is not None]
        return max(seqs) if seqs else None

    def mac_owner(self, device: str, mac: str) -> MacOwner | None:
        claims = list(self._claims_in(MacSlot(device, mac)))
        if not claims:
            return None
        best = min(claims, key=_by_rank)
        entry = best.entry
        return MacOwner(str(entry.vtep) if isinstance(entry, FdbEntry) else "local", -best.rank.minus_sequence)

    def remote_vteps(self) -> dict[int, list[str]]:
        by_device = {v.device: v.vni for v in self.cfg.vnis}
        out: dict[int, list[str]] = {v.vni: [] for v in self.cfg.vnis}
        for entry in sorted(self._flood, key=entry_sort_key):
            out[by_device[entry.device]].append(str(entry.vtep))
        return out

    def remote_macs(self) -> dict[int, dict[str, str]]:
        by_device = {v.device: v.vni for v in self.cfg.vnis}
        out: dict[int, dict[str, str]] = {v.vni: {} for v in self.cfg.vnis}
        for entry in sorted(self._desired, key=entry_sort_key):
            if isinstance(entry, FdbEntry) and not entry.is_flood:
                out[by_device[entry.device]][entry.mac] = str(entry.vtep)
        return out

    def remote_neighbours(self) -> dict[str, dict[str, str]]:
        """bridge -> {IP: MAC} of the ARP/ND suppression entries wanted."""
        out: dict[str, dict[str, str]] = {}
        for entry in sorted(self._desired, key=entry_sort_key):
            if isinstance(entry, NeighEntry):
                out.setdefault(entry.device, {})[str(entry.ip)] = entry.mac
        return out
