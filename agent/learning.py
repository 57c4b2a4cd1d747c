"""Where a VM's MAC (and IP) becomes a route: local learning tied to the RIB view and the advertiser.

The bridge watcher and the ARP/ND snooper report what VMs do; this module asks the pure
`LocalMacTable` what that means (learned, gone, moved, frozen, IP rebound), tells the RIB view
(a local MAC competes with remote claims for its FDB slot) and advertises or withdraws the
Type-2 routes.
"""

from __future__ import annotations

import logging
from typing import Iterable, Mapping

from .addresses import host_ip_problem
from .advertiser import Advertiser
from .config import AgentConfig
from .desired import RibView
from .entries import KernelEntry
from .ipsnoop import IpSeen
from .localmacs import LocalMac, LocalMacEvent
from .mactable import LocalMacTable
from .routes import MacIpRoute, RouteEvent

log = logging.getLogger("evpn.agent.learning")


class LocalLearning:
    def __init__(self, cfg: AgentConfig, rib: RibView, advertiser: Advertiser, table: LocalMacTable) -> None:
        self.cfg = cfg
        self.rib = rib
        self.advertiser = advertiser
        self.table = table
        self.ignored_ips = 0  # snooped addresses a VM may not have

    def reconfigure(self, cfg: AgentConfig, rib: RibView) -> None:
        """Serve a new config with a fresh RIB view; the local MACs that stay compete in it again."""
        self.cfg, self.rib = cfg, rib
        self.advertiser.cfg = cfg
        for mac, seq in self.table.sequences.items():
            self.rib.set_local(self._device(mac), mac.mac, seq)
            self._local_ips(mac, True)

    def _device(self, mac: LocalMac) -> str:
        served = self.cfg.vni(mac.vni)
        assert served is not None
        return served.device

    def adopt(self, macs: Mapping[LocalMac, int]) -> None:
        """MACs found in the bridges at start-up (MAC -> port): local, sequence 0 until the table says otherwise."""
        for mac in sorted(macs):
            if self.cfg.vni(mac.vni) is not None and self.table.adopt(mac, 0, macs[mac]):
                self.rib.set_local(self._device(mac), mac.mac, 0)
                self._local_ips(mac, True)

    def macs_changed(self, changes: Iterable[LocalMacEvent]) -> set[KernelEntry]:
        touched: set[KernelEntry] = set()
        for change in changes:
            mac = change.mac
            if self.cfg.vni(mac.vni) is None:
                continue  # from a watcher of a VNI no longer served
            device = self._device(mac)
            if change.present:
                learned = self.table.arrived(mac, self.rib.highest_remote_sequence(device, mac.mac), change.port)
                if learned is None:
                    continue
                touched |= self.rib.set_local(device, mac.mac, learned.sequence) | self._local_ips(mac, True)
                ips = self.table.ips_of(mac)
                log.info("event=local-mac-learned vni=%d mac=%s seq=%d ips=%s", mac.vni, mac.mac, learned.sequence,
                         ",".join(map(str, ips)) or "-")
                self.advertiser.announce(mac, learned.sequence, ips)
            else:
                forgotten = self.table.left(mac)
                if forgotten is None:
                    continue
                touched |= self.rib.set_local(device, mac.mac, None) | self._local_ips(mac, False)
                log.info("event=local-mac-gone vni=%d mac=%s", mac.vni, mac.mac)
                self.advertiser.announce(mac, forgotten.sequence, self.table.ips_of(mac), withdraw=True)
        return touched

    def snapshot(self, vnis: Iterable[int], present: Mapping[LocalMac, int]) -> set[KernelEntry]:
        """A full read of the bridges (after lost netlink events, MAC -> port): learn what is new,
        forget what left."""
        scope = set(vnis)
        now = set(present)
        known = {m for m in self.table.sequences if m.vni in scope}
        changes = [LocalMacEvent(m, False) for m in sorted(known - now)]
        changes += [LocalMacEvent(m, True, present[m]) for m in sorted(now - known)]
        if changes:
            log.info("event=local-macs-resynced learned=%d gone=%d", len(now - known), len(known - now))
        return self.macs_changed(changes)

    def ips_seen(self, seen: Iterable[IpSeen]) -> set[KernelEntry]:
        """A VM used an address: bind it to its MAC and, if the MAC is local, advertise MAC/IP.
        Addresses a VM may not have (outside the network's subnets, broadcast, multicast...) are ignored."""
        touched: set[KernelEntry] = set()
        for item in seen:
            served = self.cfg.vni(item.vni)
            if served is None:
                continue
            if (problem := host_ip_problem(item.ip, served.subnets)) is not None:
                self.ignored_ips += 1
                log.info("event=local-ip-ignored vni=%d mac=%s ip=%s reason=%r", item.vni, item.mac, item.ip, problem)
                continue
            rebound = self.table.bind_ip(item.vni, item.mac, item.ip)
            if rebound is None:
                continue
            previous = rebound.previous
            if previous is not None and (old_seq := self.table.sequence(previous)) is not None:
                self.advertiser.announce_ip(previous, old_seq, item.ip, withdraw=True)
            seq = self.table.sequence(rebound.mac)
            touched |= self.rib.set_local_ip(served.bridge, item.ip, seq is not None)
            if seq is not None:
                log.info("event=local-ip-learned vni=%d mac=%s ip=%s", item.vni, item.mac, item.ip)
                self.advertiser.announce_ip(rebound.mac, seq, item.ip)
        return touched

    def _local_ips(self, mac: LocalMac, local: bool) -> set[KernelEntry]:
        """The addresses of `mac` claim (or stop claiming) their neighbour slots as local."""
        served = self.cfg.vni(mac.vni)
        assert served is not None
        touched: set[KernelEntry] = set()
        for ip in self.table.ips_of(mac):
            touched |= self.rib.set_local_ip(served.bridge, ip, local)
        return touched

    def remote_claims(self, events: Iterable[RouteEvent]) -> None:
        """Remote claims on MACs that are local here. A winning claim (higher sequence) counts as a move;
        the remote entry is installed, the bridge then reports the MAC behind the vxlan port and it stops
        being local."""
        for event in events:
            route = event.route
            if event.withdrawn or not isinstance(route, MacIpRoute) or route.vtep == self.cfg.vtep:
                continue
            mac = LocalMac(route.label_vni or 0, route.mac)
            local_seq = self.table.sequence(mac)
            if local_seq is None:
                continue
            seq = route.attrs.mac_mobility_seq or 0
            log.info("event=mac-claimed-remotely vni=%d mac=%s vtep=%s seq=%d local_seq=%d", mac.vni, mac.mac, route.vtep, seq, local_seq)
            self.table.remote_claim(mac, seq, str(route.vtep))

    def resequence(self, table_events: Iterable[RouteEvent]) -> None:
        """After (re)connecting: keep the sequence we advertised before, or outbid a remote claim."""
        own = {(e.route.mac, e.route.label_vni): e.route.attrs.mac_mobility_seq or 0 for e in table_events
               if e.local and isinstance(e.route, MacIpRoute) and e.route.vtep == self.cfg.vtep}
        for mac in list(self.table.sequences):
            device = self._device(mac)
            changed = self.table.resequence(mac, own.get((mac.mac, mac.vni), 0), self.rib.highest_remote_sequence(device, mac.mac))
            if changed is not None:
                self.rib.set_local(device, mac.mac, changed)

    def readopt_ips(self, table_events: Iterable[RouteEvent]) -> None:
        """After (re)connecting: a MAC/IP route of ours that gobgpd still holds (from before an agent
        restart) keeps its address if its MAC is local here now. The address goes through `ips_seen`, as
        if the VM had just used it, so it is not withdrawn and re-learned from the VM's next ARP (a moment
        without its MAC/IP route on every other host). The session's full sync programs what it changed."""
        seen = []
        for event in table_events:
            route = event.route
            if (not event.local or event.withdrawn or not isinstance(route, MacIpRoute) or route.ip is None
                    or route.vtep != self.cfg.vtep):
                continue
            served = self.cfg.vni(route.label_vni or 0)
            if served is not None and served.rd == route.rd and LocalMac(served.vni, route.mac) in self.table:
                seen.append(IpSeen(served.vni, route.mac, route.ip))
        if seen:
            log.info("event=local-ips-readopted routes=%d (MAC/IP routes gobgpd held for MACs still local)", len(seen))
            self.ips_seen(seen)

    def drop_vnis(self, kept: set[int]) -> None:
        """Withdraw the routes of local MACs in VNIs no longer served and forget them."""
        addresses = {mac: self.table.ips_of(mac) for mac in self.table.sequences if mac.vni not in kept}
        for gone in self.table.drop_vnis(kept):
            self.advertiser.announce(gone.mac, gone.sequence, addresses.get(gone.mac, ()), withdraw=True)
