"""The MACs and IPs of this host's VMs, with MAC mobility and duplicate detection (pure, no I/O).

- A MAC that appears here while other VTEPs advertise it is advertised with their highest
  sequence number + 1 (RFC 7432 15.1), so it wins everywhere.
- A MAC that moves more than `max_moves` times within `window` seconds is frozen (duplicate
  address detection, as FRR does): this host stops changing what it says about it.
- A remote claim at the top of the 32-bit sequence range cannot be outbid: the MAC is frozen
  here rather than advertised with a sequence that would wrap to 0 and lose.
- Each IP a VM uses is bound to one MAC; a second MAC claiming it takes it over (the caller
  withdraws the old MAC/IP route); an IP that changes MAC too often is frozen like a MAC.
- At most `max_per_port` MACs behind one bridge port and `max_per_vni` in one VNI are learned:
  a VM that sends from thousands of source MACs gets the first few advertised, the rest are
  counted (`limited`) and logged, never turned into routes on every host of the fabric.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable

from .localmacs import LocalMac
from .routes import IPAddress

log = logging.getLogger("evpn.agent.mactable")

MAX_SEQUENCE = 0xFFFFFFFF  # the MAC Mobility community carries 32 bits


@dataclass(frozen=True, slots=True)
class Learned:
    """`mac` is local now: advertise it with `sequence`."""

    mac: LocalMac
    sequence: int


@dataclass(frozen=True, slots=True)
class Forgotten:
    """`mac` left this host: withdraw what was advertised with `sequence`."""

    mac: LocalMac
    sequence: int


@dataclass(frozen=True, slots=True)
class IpRebound:
    """`ip` now belongs to `mac`; `previous` held it before (its MAC/IP route must go), if anyone did."""

    vni: int
    ip: IPAddress
    mac: LocalMac
    previous: LocalMac | None


@dataclass
class LocalMacTable:
    """What this host advertises about its VMs, and the history duplicate detection needs."""

    max_moves: int = 5
    window: float = 180.0
    clock: Callable[[], float] = field(default=lambda: 0.0)
    max_per_port: int = 64
    max_per_vni: int = 8192
    sequences: dict[LocalMac, int] = field(default_factory=dict)  # local MAC -> advertised sequence
    ips: dict[LocalMac, set[IPAddress]] = field(default_factory=dict)  # addresses each MAC was seen using
    ip_owner: dict[tuple[int, IPAddress], LocalMac] = field(default_factory=dict)
    moves: dict[LocalMac, deque[float]] = field(default_factory=dict)
    frozen: dict[LocalMac, float] = field(default_factory=dict)  # MAC -> when it was frozen
    ip_moves: dict[tuple[int, IPAddress], deque[float]] = field(default_factory=dict)
    frozen_ips: dict[tuple[int, IPAddress], float] = field(default_factory=dict)  # (VNI, IP) -> when it was frozen
    ports: dict[LocalMac, int] = field(default_factory=dict)  # local MAC -> bridge port ifindex (0: unknown)
    per_port: Counter[tuple[int, int]] = field(default_factory=Counter)  # (VNI, port) -> local MACs
    per_vni: Counter[int] = field(default_factory=Counter)
    limited: int = 0  # MACs not learned because a limit was reached
    moves_total: int = 0  # MAC moves seen since start
    claims_counted: dict[LocalMac, tuple[int, str]] = field(default_factory=dict)  # last winning remote claim counted

    # -- MACs -------------------------------------------------------------------------------

    def __contains__(self, mac: LocalMac) -> bool:
        return mac in self.sequences

    def __len__(self) -> int:
        return len(self.sequences)

    def sequence(self, mac: LocalMac) -> int | None:
        return self.sequences.get(mac)

    def ips_of(self, mac: LocalMac) -> list[IPAddress]:
        """The addresses of `mac`, in a stable order."""
        return sorted(self.ips.get(mac, ()), key=lambda ip: (ip.version, int(ip)))

    def adopt(self, mac: LocalMac, sequence: int = 0, port: int = 0) -> bool:
        """A MAC found at start-up (bridge dump): local, no move. False if it was known already
        (or over a limit)."""
        if mac in self.sequences or not self._admit(mac, port):
            return False
        self._add(mac, sequence, port)
        return True

    def arrived(self, mac: LocalMac, remote_sequence: int | None, port: int = 0) -> Learned | None:
        """`mac` appeared behind this host's bridge (on `port`); `remote_sequence` is the highest sequence
        other VTEPs advertise for it (None: nobody). None: nothing to advertise (known, frozen, frozen
        now, or over a limit)."""
        if mac in self.frozen or mac in self.sequences:
            return None
        if not self._admit(mac, port):
            return None
        if remote_sequence is not None and self.record_move(mac, "arrived here"):
            return None
        sequence = next_sequence(remote_sequence)
        if sequence is None:
            self._freeze(mac, f"a remote claim carries the highest sequence number {MAX_SEQUENCE}")
            return None
        self._add(mac, sequence, port)
        return Learned(mac, sequence)

    def left(self, mac: LocalMac) -> Forgotten | None:
        """`mac` is no longer behind this host's bridge."""
        if mac in self.frozen or mac not in self.sequences:
            return None
        return Forgotten(mac, self._remove(mac))

    def _admit(self, mac: LocalMac, port: int) -> bool:
        over = None
        if self.per_vni[mac.vni] >= self.max_per_vni:
            over = f"per-VNI limit {self.max_per_vni}"
        elif port and self.per_port[(mac.vni, port)] >= self.max_per_port:
            over = f"per-port limit {self.max_per_port}"
        if over is None:
            return True
        self.limited += 1
        if self.limited == 1 or self.limited % 1000 == 0:  # a flood must not flood the log too
            log.warning("event=mac-limit-reached vni=%d mac=%s port=%d limit=%r not_learned_total=%d",
                        mac.vni, mac.mac, port, over, self.limited)
        return False

    def _add(self, mac: LocalMac, sequence: int, port: int) -> None:
        self.sequences[mac] = sequence
        self.ports[mac] = port
        self.per_vni[mac.vni] += 1
        if port:
            self.per_port[(mac.vni, port)] += 1

    def _remove(self, mac: LocalMac) -> int:
        sequence = self.sequences.pop(mac)
        port = self.ports.pop(mac, 0)
        self.per_vni[mac.vni] -= 1
        if port:
            self.per_port[(mac.vni, port)] -= 1
        return sequence

    def resequence(self, mac: LocalMac, own_advertised: int, remote_sequence: int | None) -> int | None:
        """After (re)connecting: keep the sequence we advertised before, or outbid a remote claim.
        Returns the new sequence if it changed."""
        if mac not in self.sequences:
            return None
        outbid = next_sequence(remote_sequence)
        wanted = own_advertised if outbid is None else max(own_advertised, outbid)
        if wanted == self.sequences[mac]:
            return None
        self.sequences[mac] = wanted
        return wanted

    def remote_claim(self, mac: LocalMac, sequence: int, vtep: str) -> bool:
        """Another VTEP claims a MAC that is local here. True if the claim wins (a move away)."""
        if mac not in self.sequences or sequence <= self.sequences[mac]:
            return False
        if self.claims_counted.get(mac) == (sequence, vtep):
            return True  # the same claim again (its MAC-only and MAC/IP routes both carry it): one move
        self.claims_counted[mac] = (sequence, vtep)
        self.record_move(mac, f"moved to {vtep}")
        return True

    def record_move(self, mac: LocalMac, how: str) -> bool:
        """Count a move of `mac`; freeze it (True) when it moved more than `max_moves` times in `window`."""
        now = self.clock()
        history = self.moves.setdefault(mac, deque())
        history.append(now)
        while history and now - history[0] > self.window:
            history.popleft()
        self.moves_total += 1
        log.info("event=mac-moved vni=%d mac=%s how=%r moves_in_window=%d", mac.vni, mac.mac, how, len(history))
        if len(history) > self.max_moves:
            self._freeze(mac, f"{len(history)} moves in {self.window:.0f}s")
            return True
        return False

    def _freeze(self, mac: LocalMac, why: str) -> None:
        self.frozen[mac] = self.clock()
        log.warning("event=mac-duplicate-frozen vni=%d mac=%s reason=%r (no further updates from this host)",
                    mac.vni, mac.mac, why)

    # -- IPs --------------------------------------------------------------------------------

    def bind_ip(self, vni: int, mac: str, ip: IPAddress) -> IpRebound | None:
        """VM `mac` was seen using `ip`. None if that binding is known already, or if the address is
        frozen: it changed MAC more than `max_moves` times in `window` (duplicate address detection
        for IPs, as FRR does; two VMs fighting over one address, or one spoofing another)."""
        owner = LocalMac(vni, mac)
        previous = self.ip_owner.get((vni, ip))
        if previous == owner or (vni, ip) in self.frozen_ips:
            return None
        if previous is not None:
            log.info("event=ip-moved vni=%d ip=%s from=%s to=%s", vni, ip, previous.mac, mac)
            if self._record_ip_move(vni, ip):
                return None
            self.ips.get(previous, set()).discard(ip)
        self.ip_owner[(vni, ip)] = owner
        self.ips.setdefault(owner, set()).add(ip)
        return IpRebound(vni, ip, owner, previous)

    def _record_ip_move(self, vni: int, ip: IPAddress) -> bool:
        now = self.clock()
        history = self.ip_moves.setdefault((vni, ip), deque())
        history.append(now)
        while history and now - history[0] > self.window:
            history.popleft()
        if len(history) > self.max_moves:
            self.frozen_ips[(vni, ip)] = now
            log.warning("event=ip-duplicate-frozen vni=%d ip=%s moves=%d window=%.0fs (kept with its current MAC)",
                        vni, ip, len(history), self.window)
            return True
        return False

    # -- VNIs -------------------------------------------------------------------------------

    def drop_vnis(self, kept: set[int]) -> list[Forgotten]:
        """Forget every MAC and IP of VNIs not in `kept`; the MACs that were advertised are returned."""
        gone = [Forgotten(m, self._remove(m)) for m in sorted(self.sequences) if m.vni not in kept]
        for mac in [m for m in self.ips if m.vni not in kept]:
            for ip in self.ips.pop(mac):
                self.ip_owner.pop((mac.vni, ip), None)
        return gone


def next_sequence(remote: int | None) -> int | None:
    """The sequence that outbids `remote` (0 when nobody else claims the MAC); None when nothing can."""
    if remote is None:
        return 0
    if remote >= MAX_SEQUENCE:
        return None
    return max(remote, -1) + 1
