"""The agent's loop: advertise, watch gobgpd's RIB and the local bridges, reconcile the kernel in batches.

Two sources feed one queue: the gRPC watch of gobgpd's best paths (remote
routes) and the netlink watch of the bridges' FDB (local VM MACs). The main
thread drains the queue in batches and applies each batch to the RibView and
then to the kernel.

If gobgpd goes away the kernel is left exactly as it is; the agent reconnects
with backoff, loads the full table, advertises again, and only then removes
entries that went stale while it was away.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections import deque
import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from protos.gobgpapi import gobgp_pb2 as gobgp

from .codec import decode_path, decode_paths, encode_imet, encode_macip, MalformedRoute
from .config import AgentConfig, ConfigError, VniConfig
from .desired import RibView
from .entries import NeighEntry, entry_sort_key
from .errors import GobgpUnavailable
from .gobgp import GobgpClient
from .kernel import Kernel
from .ledger import Ledger
from .ipsnoop import IpSeen, IpSnooper
from .localmacs import BridgeScope, LocalMac, LocalMacEvent, LocalMacWatcher, NeighLost, dump_local
from .reconcile import Reconciler
from .routes import IPAddress, RouteEvent

log = logging.getLogger("evpn.agent")

STATE_WRITE_INTERVAL = 0.5  # seconds: status and ownership files are rewritten at most this often
STATUS_DETAIL_LIMIT = 2000  # above this many entries the status file carries counts, not tables


@dataclass
class Backoff:
    initial: float = 0.2
    maximum: float = 5.0
    current: float = field(init=False, default=0.0)

    def next(self) -> float:
        self.current = self.initial if self.current == 0 else min(self.maximum, self.current * 2)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


@dataclass(frozen=True)
class RibBatch:
    session: int
    paths: list[gobgp.Path]


@dataclass(frozen=True)
class WatchEnded:
    session: int
    error: GobgpUnavailable


class Resync(Exception):
    """Leave the current gobgpd session and start a new one at once (after a config reload)."""


class Agent:
    def __init__(self, cfg: AgentConfig, kernel: Kernel, client_factory: Callable[[str], GobgpClient] = GobgpClient,
                 config_loader: Callable[[], AgentConfig] | None = None) -> None:
        self.cfg = cfg
        self.config_loader = config_loader
        self.reload_requested = False
        self._local_workers: list[LocalMacWatcher | IpSnooper] = []
        self.kernel = kernel
        self.client_factory = client_factory
        self.rib = RibView(cfg)
        self.reconciler = Reconciler(kernel, Ledger(cfg.state_file), [v.device for v in cfg.vnis], [v.bridge for v in cfg.vnis],
                                     save_interval=STATE_WRITE_INTERVAL)
        self.moves: dict[LocalMac, deque[float]] = {}
        self.frozen: dict[LocalMac, float] = {}  # duplicate-address detection: MAC -> when it was frozen
        self._status_written = 0.0
        self._status_pending = False
        self.events: queue.Queue[object] = queue.Queue()
        self.stop_event = threading.Event()
        self.local: dict[LocalMac, int] = {}  # local MAC -> advertised MAC-mobility sequence
        self.ips: dict[LocalMac, set[IPAddress]] = {}  # addresses each MAC was seen using (ARP/ND)
        self.ip_owner: dict[tuple[int, IPAddress], LocalMac] = {}
        self.advertised: set[tuple] = set()
        self.client: GobgpClient | None = None
        self.session = 0
        self.connected = False
        self.ready = False
        self.reconnects = 0
        self.malformed = 0
        self.last_full_sync = 0.0
        self.stale_pending_since: float | None = None
        self.peers_up_since: float | None = None
        self._sessions = itertools.count(1)

    # -- what we advertise -------------------------------------------------------------

    def _vni(self, number: int) -> VniConfig:
        vni = self.cfg.vni(number)
        assert vni is not None
        return vni

    def _own_paths(self) -> dict[tuple, gobgp.Path]:
        paths: dict[tuple, gobgp.Path] = {}
        for vni in self.cfg.vnis:
            path = encode_imet(vni.rd, self.cfg.vtep, vni.vni, vni.export_rts)
            paths[self._key(path)] = path
        for mac, seq in self.local.items():
            for ip in [None, *sorted(self.ips.get(mac, ()), key=str)]:
                path = self._macip_path(mac, seq, ip)
                paths[self._key(path)] = path
        return paths

    def _macip_path(self, mac: LocalMac, seq: int, ip: IPAddress | None = None) -> gobgp.Path:
        vni = self._vni(mac.vni)
        return encode_macip(vni.rd, self.cfg.vtep, vni.vni, mac.mac, ip, vni.export_rts, seq)

    def _announce(self, mac: LocalMac, seq: int, withdraw: bool = False) -> None:
        """Advertise (or withdraw) the MAC-only route and one MAC/IP route per known address."""
        for ip in [None, *sorted(self.ips.get(mac, ()), key=str)]:
            path = self._macip_path(mac, seq, ip)
            self._send(lambda c, p=path: c.delete_path(p) if withdraw else c.add_path(p))

    @staticmethod
    def _key(path: gobgp.Path) -> tuple:
        event = decode_path(path)
        assert event is not None
        return event.route.key

    def advertise_all(self, client: GobgpClient, table: list[gobgp.Path]) -> None:
        """Advertise what we should, withdraw own routes gobgpd still holds that we no longer want."""
        wanted = self._own_paths()
        for key, path in wanted.items():
            client.add_path(path)
            log.info("event=advertised route=%s", key)
        for path in table:
            try:
                event = decode_path(path)
            except MalformedRoute:
                continue
            if event is not None and event.local and event.route.vtep == self.cfg.vtep and event.route.key not in wanted:
                client.delete_path(path)
                log.info("event=withdrew-stale route=%s", event.route.key)
        self.advertised = set(wanted)

    # -- local MACs ---------------------------------------------------------------------

    def _scopes(self) -> list[BridgeScope]:
        """Bridge and vxlan ifindex of every served VNI (those whose devices exist)."""
        scopes = []
        for vni in self.cfg.vnis:
            bridge, vxlan = self.kernel.ifindex(vni.bridge), self.kernel.ifindex(vni.device)
            if bridge is None or vxlan is None:
                log.error("event=vni-devices-missing vni=%d bridge=%s device=%s (no local learning for it)", vni.vni, vni.bridge, vni.device)
                continue
            scopes.append(BridgeScope(vni.vni, bridge, vxlan))
        return scopes

    def _local_sequence(self, mac: LocalMac, floor: int = 0) -> int:
        """RFC 7432 15.1: a MAC that is new here outbids every remote claim on it."""
        remote = self.rib.highest_remote_sequence(self._vni(mac.vni).device, mac.mac)
        return max(floor, remote + 1 if remote is not None else 0)

    def _local_changed(self, events: list[LocalMacEvent]) -> set:
        touched: set = set()
        for event in events:
            if self.cfg.vni(event.mac.vni) is None:
                continue  # from a watcher of a VNI no longer served
            mac, device = event.mac, self._vni(event.mac.vni).device
            if mac in self.frozen:
                continue  # duplicate: this host no longer changes what it says about the MAC
            if event.present and mac not in self.local:
                if self.rib.highest_remote_sequence(device, mac.mac) is not None and self._record_move(mac, "arrived here"):
                    continue
                seq = self._local_sequence(mac)
                self.local[mac] = seq
                touched |= self.rib.set_local(device, mac.mac, seq)
                log.info("event=local-mac-learned vni=%d mac=%s seq=%d ips=%s", mac.vni, mac.mac, seq,
                         ",".join(map(str, sorted(self.ips.get(mac, ()), key=str))) or "-")
                self._announce(mac, seq)
            elif not event.present and mac in self.local:
                seq = self.local.pop(mac)
                touched |= self.rib.set_local(device, mac.mac, None)
                log.info("event=local-mac-gone vni=%d mac=%s", mac.vni, mac.mac)
                self._announce(mac, seq, withdraw=True)
        return touched

    def _ips_seen(self, seen: list[IpSeen]) -> None:
        """A VM used an address: bind it to its MAC and, if the MAC is local, advertise MAC/IP."""
        for item in seen:
            if self.cfg.vni(item.vni) is None:
                continue
            mac = LocalMac(item.vni, item.mac)
            previous = self.ip_owner.get((item.vni, item.ip))
            if previous == mac:
                continue
            if previous is not None:
                self.ips.get(previous, set()).discard(item.ip)
                if previous in self.local:
                    path = self._macip_path(previous, self.local[previous], item.ip)
                    self._send(lambda c, p=path: c.delete_path(p))
                log.info("event=ip-moved vni=%d ip=%s from=%s to=%s", item.vni, item.ip, previous.mac, mac.mac)
            self.ip_owner[(item.vni, item.ip)] = mac
            self.ips.setdefault(mac, set()).add(item.ip)
            if mac in self.local:
                log.info("event=local-ip-learned vni=%d mac=%s ip=%s", item.vni, item.mac, item.ip)
                path = self._macip_path(mac, self.local[mac], item.ip)
                self._send(lambda c, p=path: c.add_path(p))

    def _send(self, call: Callable[[GobgpClient], object]) -> None:
        """Tell gobgpd now if connected; otherwise the next session's advertise_all catches up."""
        if self.client is not None and self.connected:
            call(self.client)

    # -- main loop ------------------------------------------------------------------------

    def _start_local(self, vnis: Iterable[VniConfig]) -> None:
        """Local learning for `vnis`: dump the bridges' MACs, switch on ARP suppression, start the watchers."""
        self.kernel.forget_devices()
        scopes = self._scopes()
        wanted = {v.vni for v in vnis}
        for mac in sorted(dump_local(self.kernel.ipr, [s for s in scopes if s.vni in wanted])):
            if mac not in self.local:
                self.local[mac] = 0
                self.rib.set_local(self._vni(mac.vni).device, mac.mac, 0)
        for vni in vnis:
            if self.kernel.ifindex(vni.device) is not None:
                self.kernel.set_neigh_suppress(vni.device, True)
        for worker in self._local_workers:
            worker.stop()
        bridges = {v.bridge: v.vni for v in self.cfg.vnis if self.kernel.ifindex(v.bridge) is not None}
        self._local_workers = [LocalMacWatcher(scopes, self.events), IpSnooper(bridges, self.events)]
        for worker in self._local_workers:
            worker.start()

    def request_reload(self) -> None:
        """Ask for a config reload (SIGHUP); it happens in the main loop between batches."""
        self.reload_requested = True

    def _reload(self) -> None:
        """Serve the VNIs of the re-read config: the others' kernel entries and routes are not touched."""
        self.reload_requested = False
        if self.config_loader is None:
            return
        try:
            new = self.config_loader()
        except ConfigError as exc:
            log.error("event=reload-refused error=%r (keeping the running config)", str(exc))
            return
        if (new.vtep, new.gobgp_address) != (self.cfg.vtep, self.cfg.gobgp_address):
            log.error("event=reload-refused error='vtep and gobgp_address cannot change at run time; restart the agent'")
            return
        old = {v.vni: v for v in self.cfg.vnis}
        kept = {v.vni: v for v in new.vnis if old.get(v.vni) == v}
        gone = [v for n, v in old.items() if n not in kept]
        added = [v for v in new.vnis if v.vni not in kept]
        gone_devices = {v.device for v in gone} | {v.bridge for v in gone}
        for entry in sorted((e for e in self.reconciler.owned if e.device in gone_devices), key=entry_sort_key):
            self.reconciler.forget_or_remove(entry)
        for mac in [m for m in self.local if m.vni not in kept]:
            self._announce(mac, self.local.pop(mac), withdraw=True)
        for mac in [m for m in self.ips if m.vni not in kept]:
            for ip in self.ips.pop(mac):
                self.ip_owner.pop((mac.vni, ip), None)
        self.cfg = new
        self.rib = RibView(new)
        for mac, seq in self.local.items():
            self.rib.set_local(self._vni(mac.vni).device, mac.mac, seq)
        self.reconciler.devices = tuple(v.device for v in new.vnis)
        self.reconciler.bridges = tuple(v.bridge for v in new.vnis)
        self._start_local(added)
        log.info("event=reloaded kept=%s added=%s removed=%s", ",".join(map(str, kept)) or "-",
                 ",".join(str(v.vni) for v in added) or "-", ",".join(str(v.vni) for v in gone) or "-")
        raise Resync("config reloaded")  # a fresh table for the new VNIs; kept VNIs see no change

    def run(self) -> None:
        self._start_local(self.cfg.vnis)
        backoff = Backoff()
        try:
            while not self.stop_event.is_set():
                client = self.client_factory(self.cfg.gobgp_address)
                try:
                    client.wait_ready(timeout=2.0)
                    self._session(client, backoff)
                except Resync:
                    continue  # reconnect at once: not an outage
                except GobgpUnavailable as exc:
                    if self.stop_event.is_set():
                        break
                    delay = backoff.next()
                    if self.connected:
                        self.reconnects += 1
                    self.connected = False
                    self._write_status(force=True)
                    log.warning("event=gobgp-unavailable error=%r retry_in=%.1fs (data plane left as is)", str(exc), delay)
                    self.stop_event.wait(delay)
                finally:
                    self.connected = False
                    self.client = None
                    client.close()
        finally:
            for worker in self._local_workers:
                worker.stop()
            self.reconciler.flush()

    def _session(self, client: GobgpClient, backoff: Backoff) -> None:
        self.session = session = next(self._sessions)
        reader = threading.Thread(target=self._read_stream, args=(client, session), name="gobgp-watch", daemon=True)
        reader.start()
        table = self._initial_table(session)
        self.client, self.connected = client, True
        backoff.reset()
        events, errors = decode_paths(table)
        self._count_malformed(errors)
        self.rib.replace(events)
        self._resequence_local(events)
        self.advertise_all(client, table)
        self.stale_pending_since = time.monotonic()
        settled = self._peers_settled(client)
        plan = self.reconciler.full_sync(self.rib.desired(), remove_stale=settled)
        self.last_full_sync = time.monotonic()
        log.info("event=synced routes=%d desired=%d added=%d removed=%d local_macs=%d stale_removal=%s",
                 len(events), self.rib.desired_count(), len(plan.add), len(plan.remove), len(self.local),
                 "done" if settled else "deferred until BGP sessions are up")
        if settled:
            self.stale_pending_since = None
        self.ready = True
        self._write_status(force=True)
        while not self.stop_event.is_set():
            if self.reload_requested:
                self._reload()
            try:
                batch = [self.events.get(timeout=0.5 if self.stale_pending_since else 1.0)]
            except queue.Empty:
                self._maybe_remove_stale(client)
                self._maybe_resync()
                self._flush_state()
                continue
            deadline = time.monotonic() + self.cfg.batch_window
            while (left := deadline - time.monotonic()) > 0:
                try:
                    batch.append(self.events.get(timeout=left))
                except queue.Empty:
                    break
            self._process(batch, session)
            self._maybe_remove_stale(client)
            self._maybe_resync()
            if self.events.empty():
                self._flush_state()

    def _initial_table(self, session: int) -> list[gobgp.Path]:
        """The first table event of this session's watch is the whole RIB (gobgp's init=true)."""
        deadline = time.monotonic() + 10.0
        pending_local: list[object] = []
        try:
            while True:
                item = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
                if isinstance(item, RibBatch) and item.session == session:
                    return item.paths
                if isinstance(item, WatchEnded) and item.session == session:
                    raise item.error
                if isinstance(item, list):
                    pending_local.append(item)  # local MAC events wait for the table
        except queue.Empty as exc:
            raise GobgpUnavailable("no initial table from gobgpd within 10s") from exc
        finally:
            for item in pending_local:
                self.events.put(item)

    def _resequence_local(self, events: list[RouteEvent]) -> None:
        """After (re)connecting: keep the sequence we advertised before, or outbid a remote claim."""
        own_seq = {(e.route.mac, e.route.label_vni): e.route.attrs.mac_mobility_seq or 0 for e in events
                   if e.local and hasattr(e.route, "mac") and e.route.vtep == self.cfg.vtep}
        for mac in list(self.local):
            seq = self._local_sequence(mac, floor=own_seq.get((mac.mac, mac.vni), 0))
            if seq != self.local[mac]:
                self.local[mac] = seq
                self.rib.set_local(self._vni(mac.vni).device, mac.mac, seq)

    def _process(self, batch: list[object], session: int) -> None:
        paths: list[gobgp.Path] = []
        local_events: list[LocalMacEvent] = []
        seen: list[IpSeen] = []
        lost: list[NeighLost] = []
        failure: GobgpUnavailable | None = None
        for item in batch:
            if isinstance(item, RibBatch):
                if item.session == session:
                    paths.extend(item.paths)
            elif isinstance(item, WatchEnded):
                if item.session == session:
                    failure = item.error
            elif isinstance(item, list):
                local_events.extend(e for e in item if isinstance(e, LocalMacEvent))
                seen.extend(e for e in item if isinstance(e, IpSeen))
                lost.extend(e for e in item if isinstance(e, NeighLost))
        events, errors = decode_paths(paths)
        self._count_malformed(errors)
        touched = self.rib.apply(events) | self._kernel_lost(lost)
        self._log_remote_claims(events)
        try:
            self._ips_seen(seen)  # first: a MAC learned in this batch is announced with its addresses
            touched |= self._local_changed(local_events)
        finally:
            if touched:
                self.reconciler.sync_touched(touched, self.rib.wants)
            self._write_status()
        if failure is not None:
            raise failure

    def _kernel_lost(self, lost: list[NeighLost]) -> set:
        """Owned neighbour entries the kernel dropped by itself: forget them, so they are made again if wanted."""
        bridges = {self.kernel.ifindex(v.bridge): v.bridge for v in self.cfg.vnis}
        touched: set = set()
        gone = {(bridges.get(item.bridge_index), ipaddress.ip_address(item.ip)) for item in lost}
        for entry in [e for e in self.reconciler.owned if isinstance(e, NeighEntry) and (e.device, e.ip) in gone]:
            self.reconciler.owned.discard(entry)
            touched.add(entry)
            log.warning("event=kernel-dropped-entry kind=neigh device=%s ip=%s mac=%s (re-adding if still wanted)",
                        entry.device, entry.ip, entry.mac)
        return touched

    def _log_remote_claims(self, events: list[RouteEvent]) -> None:
        """Log remote claims on MACs that are local here. If the claim wins (higher sequence) the remote
        entry is installed on the vxlan port, the bridge reports the MAC there and it stops being local."""
        for event in events:
            route = event.route
            if event.withdrawn or not hasattr(route, "mac") or route.vtep == self.cfg.vtep:
                continue
            mac = LocalMac(route.label_vni or 0, route.mac)
            if mac in self.local:
                log.info("event=mac-claimed-remotely vni=%d mac=%s vtep=%s seq=%s local_seq=%d",
                         mac.vni, mac.mac, route.vtep, route.attrs.mac_mobility_seq, self.local[mac])
                if (route.attrs.mac_mobility_seq or 0) > self.local[mac]:
                    self._record_move(mac, f"moved to {route.vtep}")

    def _record_move(self, mac: LocalMac, how: str) -> bool:
        """Count a move of `mac`; freeze it (True) when it moved more than dad_max_moves times in dad_window."""
        now = time.monotonic()
        history = self.moves.setdefault(mac, deque())
        history.append(now)
        while history and now - history[0] > self.cfg.dad_window:
            history.popleft()
        log.info("event=mac-moved vni=%d mac=%s how=%r moves_in_window=%d", mac.vni, mac.mac, how, len(history))
        if len(history) > self.cfg.dad_max_moves:
            self.frozen[mac] = now
            log.warning("event=mac-duplicate-frozen vni=%d mac=%s moves=%d window=%.0fs (no further updates from this host)",
                        mac.vni, mac.mac, len(history), self.cfg.dad_window)
            return True
        return False

    def _peers_settled(self, client: GobgpClient) -> bool:
        """True when every configured BGP neighbor is established (the table we hold is complete)."""
        peers = client.list_peers()
        return bool(peers) and all(state == "ESTABLISHED" for _, _, state in peers)

    def _maybe_remove_stale(self, client: GobgpClient) -> None:
        """Remove entries left from before the reconnect once the sessions are up and the RIB had
        `stale_settle` seconds to fill, or after `stale_timeout` whatever happens."""
        if self.stale_pending_since is None:
            return
        now = time.monotonic()
        if self._peers_settled(client):
            if self.peers_up_since is None:
                self.peers_up_since = now
        else:
            self.peers_up_since = None
        settled = self.peers_up_since is not None and now - self.peers_up_since >= self.cfg.stale_settle
        if settled or now - self.stale_pending_since >= self.cfg.stale_timeout:
            plan = self.reconciler.full_sync(self.rib.desired())
            self.last_full_sync = now
            self.stale_pending_since = self.peers_up_since = None
            log.info("event=stale-removed removed=%d added=%d reason=%s", len(plan.remove), len(plan.add),
                     "sessions-up" if settled else "timeout")
            self._write_status(force=True)

    def _maybe_resync(self) -> None:
        if self.stale_pending_since is None and time.monotonic() - self.last_full_sync >= self.cfg.resync_interval:
            plan = self.reconciler.full_sync(self.rib.desired())
            self.last_full_sync = time.monotonic()
            if plan:
                log.warning("event=resync-repaired added=%d removed=%d", len(plan.add), len(plan.remove))

    def _count_malformed(self, errors: list[str]) -> None:
        for error in errors:
            self.malformed += 1
            log.warning("event=route-malformed error=%r", error)

    def _read_stream(self, client: GobgpClient, session: int) -> None:
        try:
            for paths in client.watch_best():
                self.events.put(RibBatch(session, paths))
                if self.stop_event.is_set():
                    return
        except GobgpUnavailable as exc:
            self.events.put(WatchEnded(session, exc))
        except Exception as exc:  # noqa: BLE001 - the reader must always report its end
            self.events.put(WatchEnded(session, GobgpUnavailable(f"watch failed: {exc!r}")))

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        detailed = self.rib.desired_count() <= STATUS_DETAIL_LIMIT
        tables: dict[str, object] = {
            "remote_vteps": {str(k): v for k, v in self.rib.remote_vteps().items()},
            "remote_macs": {str(k): v for k, v in self.rib.remote_macs().items()} if detailed else "omitted (too many)",
            "remote_neighbours": self.rib.remote_neighbours() if detailed else "omitted (too many)",
            "local_macs": {f"{m.vni}/{m.mac}": seq for m, seq in sorted(self.local.items())} if detailed else len(self.local),
            "local_ips": {f"{m.vni}/{m.mac}": sorted(map(str, self.ips.get(m, ()))) for m in sorted(self.local) if self.ips.get(m)} if detailed else "omitted",
            "frozen_macs": sorted(f"{m.vni}/{m.mac}" for m in self.frozen),
        }
        return tables | {
            "name": self.cfg.name,
            "pid": os.getpid(),
            "vtep": str(self.cfg.vtep),
            "ready": self.ready,
            "connected": self.connected,
            "stale_pending": self.stale_pending_since is not None,
            "reconnects": self.reconnects,
            "routes": len(self.rib),
            "owned_fdb_entries": len(self.reconciler.owned),
            "entries_added": self.reconciler.added,
            "entries_removed": self.reconciler.removed,
            "kernel_errors": self.reconciler.errors,
            "malformed_routes": self.malformed,
            "ignored_routes": dict(self.rib.ignored),
            "updated": time.time(),
        }

    def _flush_state(self) -> None:
        self.reconciler.flush()
        if self._status_pending:
            self._write_status(force=True)

    def _write_status(self, force: bool = False) -> None:
        path: Path | None = self.cfg.status_file
        if path is None:
            return
        now = time.monotonic()
        if not force and now - self._status_written < STATE_WRITE_INTERVAL:
            self._status_pending = True
            return
        self._status_written, self._status_pending = now, False
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.status(), indent=1, sort_keys=True))
        os.replace(tmp, path)
