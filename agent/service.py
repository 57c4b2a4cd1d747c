"""The agent's session loop: connect to gobgpd, load the table, then apply batches of events.

A session starts a gobgpd watch of the best-path table: gobgpd sends the whole table first, then
every change after it, on the same stream. Producers feed one typed queue
(events.py): the gobgpd watch (remote routes, decoded in its thread), the bridge FDB watcher and the ARP/ND snooper (local VMs). The main thread drains the
queue in batches and hands each batch to the RIB view (remote routes -> desired entries), to
local learning (VM MACs/IPs -> our routes), and to the reconciler (desired -> kernel).

If gobgpd goes away the kernel is left exactly as it is; the agent reconnects with backoff,
loads the full table, advertises again, and only then removes entries that went stale while
it was away. A dead worker thread ends the agent with AgentFailure (exit non-zero), so a
supervisor restarts it instead of it reporting `ready` while deaf.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .advertiser import Advertiser
from .config import AgentConfig, ConfigError, VniConfig
from .desired import RibView
from .entries import ZERO_MAC, FdbEntry, KernelEntry, entry_sort_key
from .errors import AgentFailure, GobgpUnavailable
from .events import (
    AgentEvent,
    EventQueue,
    IpsSeen,
    LocalMacsChanged,
    LocalMacsSnapshot,
    NeighboursLost,
    RoutesChanged,
    WatchEnded,
    WorkerFailed,
)
from .gobgp import GobgpClient, RouteWatch
from .ipsnoop import IpSeen, IpSnooper
from .kernel import Kernel
from .learning import LocalLearning
from .ledger import Ledger
from .localmacs import (
    BridgeScope,
    LocalMacEvent,
    LocalMacWatcher,
    NeighLost,
    dump_local,
)
from .mactable import LocalMacTable
from .metrics import AgentMetrics, snapshot_of
from .reconcile import Reconciler
from .reload import plan_reload
from .routes import RouteEvent
from .status import Health, RecentErrors, StatusWriter, build_status
from .vxlan_guard import VxlanGuard
from .withdrawhold import WithdrawHold, log_changes
from .worker import Worker

log = logging.getLogger("evpn.agent")

STATE_WRITE_INTERVAL = 0.5  # seconds: the status file is rewritten at most this often
STATUS_HEARTBEAT = 5.0  # seconds: the status file is rewritten at least this often while the loop runs
GUARD_INTERVAL = 0.5  # seconds: the VXLAN source guard's set is updated at most this often (coalesced)


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


class Resync(Exception):
    """Leave the current gobgpd session and start a new one at once (after a config reload)."""


@dataclass
class Batch:
    """One batch of queued events, sorted by kind (only those of the current session)."""

    routes: list[RouteEvent] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    local: list[LocalMacEvent] = field(default_factory=list)
    snapshots: list[LocalMacsSnapshot] = field(default_factory=list)
    seen: list[IpSeen] = field(default_factory=list)
    lost: list[NeighLost] = field(default_factory=list)
    ended: GobgpUnavailable | None = None
    failed: WorkerFailed | None = None
    received: float | None = None  # when the oldest route change of the batch reached the agent

    @classmethod
    def of(cls, items: Iterable[AgentEvent], session: int, read_since: float = float("-inf")) -> Batch:
        """`read_since`: when the kernel read of the last full sync began; deletions seen before it are
        left out (that sync found them and put back what was wanted: taken again, a neighbour entry
        would be forgotten and its re-add answered "exists", leaving it owned by nobody)."""
        batch = cls()
        for item in items:
            if isinstance(item, RoutesChanged):
                if item.session == session:
                    batch.routes.extend(item.events)
                    batch.malformed.extend(item.errors)
                    if item.events and item.received and (batch.received is None or item.received < batch.received):
                        batch.received = item.received
            elif isinstance(item, WatchEnded):
                if item.session == session:
                    batch.ended = item.error
            elif isinstance(item, LocalMacsChanged):
                batch.local.extend(item.changes)
            elif isinstance(item, LocalMacsSnapshot):
                batch.snapshots.append(item)
            elif isinstance(item, IpsSeen):
                batch.seen.extend(item.items)
            elif isinstance(item, NeighboursLost):
                if item.seen >= read_since:
                    batch.lost.extend(item.items)
            elif isinstance(item, WorkerFailed):
                batch.failed = item
        return batch


WorkerFactory = Callable[[list[BridgeScope], dict[str, int], EventQueue], list[Worker]]


def local_workers(scopes: list[BridgeScope], bridges: dict[str, int], out: EventQueue) -> list[Worker]:
    """The threads that watch this host's VMs: bridge FDB events and ARP/ND frames."""
    return [LocalMacWatcher(scopes, out), IpSnooper(bridges, out)]


class Agent:
    def __init__(self, cfg: AgentConfig, kernel: Kernel, client_factory: Callable[[str], GobgpClient] = GobgpClient,
                 config_loader: Callable[[], AgentConfig] | None = None, clock: Callable[[], float] = time.monotonic,
                 worker_factory: WorkerFactory | None = None, vxlan_guard: VxlanGuard | None = None) -> None:
        self.cfg = cfg
        self.vxlan_guard = vxlan_guard  # None: no VXLAN source guard (config vxlan_source_guard: false, unit tests)
        self.config_loader = config_loader
        self.reload_requested = False
        self.kernel = kernel
        self.client_factory = client_factory
        self.clock = clock
        self.rib = RibView(cfg)
        self.withdraw_hold = WithdrawHold(cfg.stale_withdraw_grace)  # stale withdrawals wait here (agent/withdrawhold.py)
        self.reconciler = Reconciler(kernel, Ledger(cfg.state_file), [v.device for v in cfg.vnis], [v.bridge for v in cfg.vnis],
                                     load_in_background=True)  # read beside start-up and the table read
        self.table = LocalMacTable(cfg.dad_max_moves, cfg.dad_window, clock, cfg.mac_limit_per_port, cfg.mac_limit_per_vni)
        self.advertiser = Advertiser(cfg)
        self.learning = LocalLearning(cfg, self.rib, self.advertiser, self.table)
        self.events = EventQueue()
        self.stop_event = threading.Event()
        self.health = Health()
        self.status_writer = StatusWriter(cfg.status_file, STATE_WRITE_INTERVAL, clock)
        self.metrics = AgentMetrics()
        self.recent_errors = RecentErrors()
        logging.getLogger("evpn").addHandler(self.recent_errors)
        self._workers: list[Worker] = []
        self.worker_factory: WorkerFactory = worker_factory or local_workers
        self.session = 0
        self.last_full_sync = 0.0
        self.stale_pending_since: float | None = None
        self.peers_up_since: float | None = None
        self._sessions = itertools.count(1)
        self._guard_due = True  # the flood lists may have changed since the VXLAN source guard last followed them
        self._guard_at = float("-inf")  # (clock) when the guard last followed them

    # -- local workers ----------------------------------------------------------------------

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

    def _start_local(self, vnis: Iterable[VniConfig]) -> None:
        """Local learning for `vnis`: dump the bridges' MACs, switch on ARP suppression, (re)start the workers."""
        self.kernel.forget_devices()
        scopes = self._scopes()
        wanted = {v.vni for v in vnis}
        self.learning.adopt(dump_local(self.kernel.bulk, [s for s in scopes if s.vni in wanted]))
        for vni in vnis:
            if self.kernel.ifindex(vni.device) is not None:
                self.kernel.set_neigh_suppress(vni.device, True)
        for worker in self._workers:
            worker.stop()
        bridges = {v.bridge: v.vni for v in self.cfg.vnis if self.kernel.ifindex(v.bridge) is not None}
        self._workers = self.worker_factory(scopes, bridges, self.events)
        for worker in self._workers:
            worker.start()

    # -- config reload ------------------------------------------------------------------------

    def request_reload(self) -> None:
        """Ask for a config reload (SIGHUP); it happens in the main loop between batches."""
        self.reload_requested = True

    def _reload(self) -> None:
        """Serve the VNIs of the re-read config: the kept ones' kernel entries and routes are not touched."""
        self.reload_requested = False
        if self.config_loader is None:
            return
        try:
            new = self.config_loader()
            plan = plan_reload(self.cfg, new)
        except ConfigError as exc:
            log.error("event=reload-refused error=%r (keeping the running config)", str(exc))
            return
        for entry in sorted((e for e in self.reconciler.owned if e.device in plan.removed_devices), key=entry_sort_key):
            self.reconciler.forget_or_remove(entry)
        self.learning.drop_vnis({v.vni for v in plan.kept})
        self.cfg = new
        self.rib = RibView(new)
        self.withdraw_hold.grace = new.stale_withdraw_grace
        self.learning.reconfigure(new, self.rib)
        self.reconciler.serve([v.device for v in new.vnis], [v.bridge for v in new.vnis])
        self._start_local(plan.added)
        log.info("event=reloaded kept=%s added=%s removed=%s", ",".join(str(v.vni) for v in plan.kept) or "-",
                 ",".join(str(v.vni) for v in plan.added) or "-", ",".join(str(v.vni) for v in plan.removed) or "-")
        raise Resync("config reloaded")  # a fresh table for the new VNIs; kept VNIs see no change

    # -- sessions --------------------------------------------------------------------------------

    def run(self) -> None:
        if self.cfg.metrics_address:
            self.metrics.serve(self.cfg.metrics_address)
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
                except AgentFailure:
                    raise
                except GobgpUnavailable as exc:
                    if self.stop_event.is_set():
                        break
                    delay = backoff.next()
                    if self.health.connected:
                        self.health.reconnects += 1
                    self.health.connected = False
                    self._write_status(force=True)
                    log.warning("event=gobgp-unavailable error=%r retry_in=%.1fs (data plane left as is)", str(exc), delay)
                    self.stop_event.wait(delay)
                finally:
                    self.health.connected = False
                    self.advertiser.sink = None
                    client.close()
        finally:
            self.health.ready = False  # whatever ends the agent (a stop, a worker's death, a kernel error)
            try:
                self._write_status(force=True)
            except Exception as exc:  # noqa: BLE001 - the stop below (workers, ledger) must still happen
                log.error("event=status-write-failed error=%r", str(exc))
            for worker in self._workers:
                worker.stop()
            self.reconciler.close()
            logging.getLogger("evpn").removeHandler(self.recent_errors)

    def _session(self, client: GobgpClient, backoff: Backoff) -> None:
        self.session = session = next(self._sessions)
        started = time.monotonic()
        self.health.kernel_verified = False  # (this session's kernel read is still to come)
        trusted = self._ledger_trusted()
        if not trusted:
            self.reconciler.read_ahead()  # the kernel's entries, read beside the table read (for the full sync)
        try:
            watch = client.watch()  # the table first, then the changes after it, on one stream
        except BaseException:
            self.reconciler.drop_read_ahead()
            raise
        own: list[RouteEvent] = []  # our routes gobgpd holds: kept for the steps below
        errors: list[str] = []
        routes = 0
        self.withdraw_hold.table_begin()
        self.rib.begin_table()  # the table goes into the RIB message by message, never held whole
        try:
            for found, failed in watch.table():
                errors += failed
                routes += len(found)
                own += [event for event in found if event.local]
                self.withdraw_hold.table_part(found)  # held routes that are back (their holds end with the table)
                self.rib.load(found)
        except BaseException:
            watch.cancel()
            self.reconciler.drop_read_ahead()
            raise
        read = time.monotonic()
        reader = threading.Thread(target=self._read_stream, args=(watch, session), name="gobgp-watch", daemon=True)
        reader.start()
        self.health.connected = True
        backoff.reset()
        self._count_malformed(errors)
        self.rib.load(self._held_lacking())  # the routes whose withdrawal is still held stay
        self.learning.resequence(own)
        self.learning.readopt_ips(own)  # our MAC/IP routes gobgpd kept: their IPs stay bound
        self.advertiser.sync(client, self.table, own)
        del own, errors
        self.stale_pending_since = self.clock()
        self._guard_due, self._guard_at = True, float("-inf")
        self._follow_guard()  # the table's VTEPs allowed before their flood entries are made (stale ones kept)
        settled = self._peers_settled(client)
        selected = time.monotonic()
        plan = self.reconciler.ledger_sync(self.rib.desired_packed(), remove_stale=settled) if trusted else None
        compared_with = "ledger" if plan is not None else "kernel"
        if plan is None:  # not trusted, or the ledger could not tell: read the kernel now
            plan = self.reconciler.full_sync(self.rib.desired_packed(), remove_stale=settled)
            self.last_full_sync = self.clock()
            self.health.last_full_sync = time.time()
            self.health.kernel_verified = True
        log.info("event=synced routes=%d desired=%d added=%d removed=%d local_macs=%d stale_removal=%s "
                 "compared_with=%s kernel_verified=%d seconds_table=%.2f seconds_rib=%.2f seconds_compare=%.2f",
                 routes, self.rib.desired_count(), plan.adds, plan.removes, len(self.table),
                 "done" if settled else "deferred-until-bgp-sessions-are-up", compared_with,
                 self.health.kernel_verified, read - started, selected - read, time.monotonic() - selected)
        del plan  # (a cold start's: 200k packed keys)
        if settled:
            self.stale_pending_since = None
            self._guard_due = True  # the stale VTEPs kept above may go now (coalesced)
        self.health.ready = True
        self._write_status(force=True)
        while not self.stop_event.is_set():
            self._follow_guard()
            if self.reload_requested:
                self._reload()
            wait = self._held_wait(0.5 if self.stale_pending_since else 1.0)
            if self._guard_due:  # back in time for the guard's next update
                wait = max(0.0, min(wait, self._guard_at + GUARD_INTERVAL - self.clock()))
            if not self.health.kernel_verified:
                wait = 0.0  # the verification comes right after what is queued now
            first = self.events.get(wait)
            if first is not None:
                self._process(Batch.of(self.events.batch(first, self.cfg.batch_window), session, self.reconciler.read_started))
            self._verify_kernel()
            self._release_held()
            self._maybe_remove_stale(client)
            self._maybe_resync()
            if self.events.empty():
                self._flush_state()
            self._publish_metrics()

    def _ledger_trusted(self) -> bool:
        """Whether this session's first sync may compare the RIB with the ledger instead of the kernel
        (`Reconciler.ledger_sync`, which checks a sample of the owned entries first): when the agent owns
        entries (its ledger, or the session before this one) and every served device is there (asked
        afresh: one may have been made again since). Cold starts, a lost or damaged ledger and a missing
        device read the kernel first."""
        self.kernel.forget_devices()
        return bool(len(self.reconciler.owned)) and all(
            self.kernel.ifindex(name) is not None for v in self.cfg.vnis for name in (v.device, v.bridge))

    def _verify_kernel(self) -> None:
        """After a session was made ready from the ledger: read the kernel and repair what differs (a full
        sync), once, in the loop's first turn (after the events that came during the table read). Drift
        found here was made behind the agent's back (an entry deleted by hand while it was away or
        disconnected): logged as a warning and counted in resync_repaired. A kernel read that fails ends
        the agent, as the full sync of a session's start does (its supervisor starts it again, not ready)."""
        if self.health.kernel_verified:
            return
        started = time.monotonic()
        plan = self.reconciler.full_sync(self.rib.desired_packed(), remove_stale=self.stale_pending_since is None)
        self.last_full_sync = self.clock()
        self.health.last_full_sync = time.time()
        self.health.kernel_verified = True
        if plan:
            self.health.resync_repaired += plan.adds + plan.removes
            log.warning("event=kernel-verified added=%d removed=%d seconds=%.2f (the kernel differed from the ledger: repaired)",
                        plan.adds, plan.removes, time.monotonic() - started)
        else:
            log.info("event=kernel-verified added=0 removed=0 seconds=%.2f", time.monotonic() - started)
        self._write_status(force=True)

    def _follow_guard(self) -> None:
        """VXLAN source guard: allowed sources = the flood lists' VTEPs (agent/vxlan_guard.py); while stale
        entries are kept (gobgpd restarted, its RIB refilling) their VTEPs stay allowed too.

        Only after something that could change them (route changes, stale removal), and at most every
        GUARD_INTERVAL: each follow sorts and parses the flood lists and may run `nft`, and a big lab's agent
        takes its 49 peers' VTEPs in over dozens of batches while it converges. The first update of a session
        (the install) is at once, and so is a new VTEP (`_admit_new_vteps`, one `nft` run per batch that
        brings any: a median 28 per agent of a 50 x 10 lab): what waits here is the removal of VTEPs that left."""
        if self.vxlan_guard is None or not self._guard_due or self.clock() - self._guard_at < GUARD_INTERVAL:
            return
        self._guard_due, self._guard_at = False, self.clock()
        self.vxlan_guard.follow(self.rib.remote_vteps(), keep=self.stale_pending_since is not None)

    def _admit_new_vteps(self, touched: set[KernelEntry]) -> None:
        """A flood entry the RIB gained for a VTEP the guard does not allow yet: allow it now, before the
        kernel gets the entry (its first packet must not be dropped). All of a batch's new VTEPs go in one
        `nft` run, whatever the time since the last one; removals wait for `_follow_guard`.

        `touched`: the entries whose desired presence the batch changed (RibView.apply); only its flood
        entries are looked at, so a batch without a new flood slot costs a walk over it and no `nft`."""
        guard = self.vxlan_guard
        if guard is None:
            return
        allowed = guard.applied or frozenset()
        wants = self.rib.wants
        new = {e.vtep for e in touched
               if e.__class__ is FdbEntry and e.mac == ZERO_MAC and e.vtep not in allowed and wants(e)}
        if not new:
            return
        if guard.applied is None:  # not installed by this process yet (the loop installs first): install whole
            self._guard_due, self._guard_at = False, self.clock()
            guard.follow(self.rib.remote_vteps(), keep=self.stale_pending_since is not None)
        else:
            guard.admit(new)

    def _process(self, batch: Batch) -> None:
        if batch.failed is not None:
            raise AgentFailure(f"worker {batch.failed.worker} died: {batch.failed.error}")
        self._count_malformed(batch.malformed)
        self._guard_due = self._guard_due or bool(batch.routes)
        touched = self.rib.apply(self._hold_stale(batch.routes))
        self._admit_new_vteps(touched)  # before the kernel gets the batch's flood entries
        touched |= self._kernel_lost(batch.lost)
        self.learning.remote_claims(batch.routes)
        try:
            touched |= self.learning.ips_seen(batch.seen)  # first: a MAC learned in this batch is announced with its addresses
            touched |= self.learning.macs_changed(batch.local)
            for snapshot in batch.snapshots:
                touched |= self.learning.snapshot(snapshot.vnis, snapshot.present)
        finally:
            if touched:
                self.reconciler.sync_touched(touched, self.rib.wants)
                if batch.received is not None:
                    self.metrics.route_to_kernel.observe(max(0.0, time.monotonic() - batch.received))
            self._write_status()
        if batch.ended is not None:
            raise batch.ended

    # -- stale withdrawal grace: the RIB sees a stale path's withdrawal `stale_withdraw_grace` s late, or never

    def _hold_stale(self, routes: list[RouteEvent]) -> list[RouteEvent]:
        """The batch's route events the RIB takes now: stale withdrawals are held, a route back cancels its hold."""
        passed, changes = self.withdraw_hold.admit(routes, self.clock())
        if changes:
            log_changes(changes, self.withdraw_hold.grace, len(self.withdraw_hold))
        return passed

    def _held_lacking(self) -> list[RouteEvent]:
        """After a new session's whole table: the holds of the routes it had end; the routes whose
        withdrawal is still held and that it lacked stay (until their deadline)."""
        kept, cancelled = self.withdraw_hold.table_end()
        if cancelled or len(self.withdraw_hold):
            log_changes(cancelled, self.withdraw_hold.grace, len(self.withdraw_hold))
        return kept

    def _held_wait(self, default: float) -> float:
        """How long the loop may wait for events: not past the next held withdrawal's deadline."""
        deadline = self.withdraw_hold.next_deadline()
        return default if deadline is None else max(0.0, min(default, deadline - self.clock()))

    def _release_held(self) -> None:
        """Hand the withdrawals whose grace is over to the RIB, and the kernel."""
        released, changes = self.withdraw_hold.due(self.clock())
        if not released:
            return
        log_changes(changes, self.withdraw_hold.grace, len(self.withdraw_hold))
        self._guard_due = True  # their VTEPs may leave the allowed set now
        touched = self.rib.apply(released)
        if touched:
            self.reconciler.sync_touched(touched, self.rib.wants)
        self._write_status()

    def _kernel_lost(self, lost: list[NeighLost]) -> set[KernelEntry]:
        """Owned neighbour entries the kernel dropped by itself: forget them, so they are made again if wanted.

        Looked up per lost address (the wanted entry of that bridge and IP), so the agent's own deletions,
        which arrive here too, cost a lookup each and never a walk over the owned entries."""
        if not lost:
            return set()
        bridges = {self.kernel.ifindex(v.bridge): v.bridge for v in self.cfg.vnis}
        touched: set[KernelEntry] = set()
        owned = self.reconciler.owned
        for item in lost:
            bridge = bridges.get(item.bridge_index)
            if bridge is None:
                continue
            try:
                ip = str(ipaddress.ip_address(item.ip))
            except ValueError:
                continue
            entry = self.rib.wanted_neighbour(bridge, ip)
            if entry is None or entry not in owned or entry in touched:
                continue
            self.reconciler.forget(entry)
            touched.add(entry)
            log.warning("event=kernel-dropped-entry kind=neigh device=%s ip=%s mac=%s (re-adding if still wanted)",
                        entry.device, entry.ip, entry.mac)
        return touched

    def _peers_settled(self, client: GobgpClient) -> bool:
        """True when every configured BGP neighbor is established (the table we hold is complete)."""
        peers = client.list_peers()
        return bool(peers) and all(state == "ESTABLISHED" for _, _, state in peers)

    def _maybe_remove_stale(self, client: GobgpClient) -> None:
        """Remove entries left from before the reconnect once the sessions are up and the RIB had
        `stale_settle` seconds to fill, or after `stale_timeout` whatever happens."""
        if self.stale_pending_since is None:
            return
        now = self.clock()
        if self._peers_settled(client):
            if self.peers_up_since is None:
                self.peers_up_since = now
        else:
            self.peers_up_since = None
        settled = self.peers_up_since is not None and now - self.peers_up_since >= self.cfg.stale_settle
        if settled or now - self.stale_pending_since >= self.cfg.stale_timeout:
            plan = self.reconciler.full_sync(self.rib.desired_packed())
            self.last_full_sync = now
            self.health.last_full_sync = time.time()
            self.stale_pending_since = self.peers_up_since = None
            self._guard_due = True  # the stale VTEPs the guard kept may go now
            log.info("event=stale-removed removed=%d added=%d reason=%s", plan.removes, plan.adds,
                     "sessions-up" if settled else "timeout")
            self._write_status(force=True)

    def _maybe_resync(self) -> None:
        if self.stale_pending_since is None and self.clock() - self.last_full_sync >= self.cfg.resync_interval:
            plan = self.reconciler.full_sync(self.rib.desired_packed())
            self.last_full_sync = self.clock()
            self.health.last_full_sync = time.time()
            if plan:
                self.health.resync_repaired += plan.adds + plan.removes
                log.warning("event=resync-repaired added=%d removed=%d", plan.adds, plan.removes)

    def _count_malformed(self, errors: list[str]) -> None:
        for error in errors:
            self.health.malformed_routes += 1
            log.warning("event=route-malformed error=%r", error)

    def _read_stream(self, watch: RouteWatch, session: int) -> None:
        try:
            for events, errors in watch.changes():
                self.events.put(RoutesChanged(session, events, errors, time.monotonic()))
                if self.stop_event.is_set():
                    return
        except GobgpUnavailable as exc:
            self.events.put(WatchEnded(session, exc))
        except Exception as exc:  # noqa: BLE001 - the reader must always report its end
            self.events.put(WatchEnded(session, GobgpUnavailable(f"watch failed: {exc!r}")))

    # -- status ------------------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        self.health.stale_pending = self.stale_pending_since is not None
        self._count_held()
        return build_status(self.cfg, self.health, self.rib, self.table, self.reconciler, self.advertiser.refused,
                            self.learning.ignored_ips, self.recent_errors.recent())

    def _count_held(self) -> None:
        hold = self.withdraw_hold
        self.health.held_withdrawals = len(hold)
        self.health.withdrawals_held, self.health.withdrawals_cancelled, self.health.withdrawals_released = (
            hold.held_total, hold.cancelled_total, hold.released_total)

    def _publish_metrics(self) -> None:
        self._count_held()
        self.metrics.publish(snapshot_of(self.cfg, self.health, self.rib, self.table, self.reconciler,
                                         self.advertiser.refused, self.learning.ignored_ips))

    def _flush_state(self) -> None:
        self.reconciler.flush()
        self.status_writer.flush(self.status, heartbeat=STATUS_HEARTBEAT)

    def _write_status(self, force: bool = False) -> None:
        self.status_writer.write(self.status, force)
