"""Prometheus metrics of the agent, served over HTTP on `metrics_address` (off unless configured).

The main loop publishes a `MetricsSnapshot` of cheap numbers (O(VNIs), kept incrementally by the
RIB view and the tables) after each batch; a scrape reads the last snapshot, so scraping never
walks the tables and never races the main loop. The route-to-kernel latency is a histogram the
main loop observes per batch.

Names follow Prometheus conventions (`evpn_agent_*`, `_total` for counters, seconds as the unit);
labels are low-cardinality only (VNI, kind, route type): never a MAC or an IP.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterator

from prometheus_client import CollectorRegistry, Histogram, start_http_server

from .config import AgentConfig
from .desired import RibView
from .mactable import LocalMacTable
from .reconcile import Reconciler
from .status import Health
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("evpn.agent.metrics")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class MetricsSnapshot:
    """What a scrape reports; built by the main loop from counts it already keeps."""

    routes: dict[tuple[str, int], int] = field(default_factory=dict)  # (type, VNI) -> remote routes in use
    entries: dict[tuple[str, int], int] = field(default_factory=dict)  # (kind, VNI) -> desired kernel entries
    remote_vteps: dict[int, int] = field(default_factory=dict)  # VNI -> remote VTEPs in the flood list
    owned_entries: int = 0
    local_macs: dict[int, int] = field(default_factory=dict)  # VNI -> local MACs advertised
    local_ips: int = 0
    frozen_macs: int = 0
    frozen_ips: int = 0
    connected: bool = False
    ready: bool = False
    last_full_sync: float = 0.0  # unix time
    held_withdrawals: int = 0  # stale withdrawals waiting out the grace now
    counters: dict[str, int] = field(default_factory=dict)  # name (without evpn_agent_ / _total) -> value


COUNTER_HELP = {
    "mac_moves": "MAC moves seen (RFC 7432 15 mobility)",
    "macs_over_limit": "Local MACs not learned because a per-port or per-VNI limit was reached",
    "malformed_routes": "Paths from gobgpd that were not valid EVPN routes (skipped)",
    "kernel_errors": "Netlink operations that failed",
    "reconnects": "Sessions with gobgpd lost and made again",
    "refused_requests": "Requests gobgpd refused (logged, the session goes on)",
    "entries_added": "Kernel entries this agent added",
    "entries_removed": "Kernel entries this agent removed",
    "resync_repaired": "Entries the periodic full resync found wrong in the kernel and repaired (drift)",
    "ignored_local_ips": "Addresses local VMs used that no VM may have (outside the subnet, broadcast...)",
    "withdrawals_held": "Withdrawals of stale paths held for stale_withdraw_grace",
    "withdrawals_cancelled": "Held withdrawals cancelled: the route was announced again within the grace",
    "withdrawals_released": "Held withdrawals that reached the RIB (grace over, or withdrawn for good)",
}


class SnapshotCollector(Collector):
    def __init__(self) -> None:
        self.snapshot = MetricsSnapshot()

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot  # one reference read: the main loop replaces it whole
        routes = GaugeMetricFamily("evpn_agent_routes", "Remote EVPN routes in use, by route type and VNI", labels=["type", "vni"])
        for (kind, vni), n in sorted(s.routes.items()):
            routes.add_metric([kind, str(vni)], n)
        yield routes
        entries = GaugeMetricFamily("evpn_agent_desired_entries", "Kernel entries the RIB asks for, by kind and VNI", labels=["kind", "vni"])
        for (kind, vni), n in sorted(s.entries.items()):
            entries.add_metric([kind, str(vni)], n)
        yield entries
        vteps = GaugeMetricFamily("evpn_agent_remote_vteps", "Remote VTEPs in the flood list, by VNI", labels=["vni"])
        for vni, n in sorted(s.remote_vteps.items()):
            vteps.add_metric([str(vni)], n)
        yield vteps
        macs = GaugeMetricFamily("evpn_agent_local_macs", "Local VM MACs advertised, by VNI", labels=["vni"])
        for vni, n in sorted(s.local_macs.items()):
            macs.add_metric([str(vni)], n)
        yield macs
        yield GaugeMetricFamily("evpn_agent_owned_entries", "Kernel entries this agent made and owns", value=s.owned_entries)
        yield GaugeMetricFamily("evpn_agent_local_ips", "Local VM addresses known", value=s.local_ips)
        yield GaugeMetricFamily("evpn_agent_frozen_macs", "MACs frozen by duplicate detection", value=s.frozen_macs)
        yield GaugeMetricFamily("evpn_agent_frozen_ips", "IPs frozen by duplicate detection", value=s.frozen_ips)
        yield GaugeMetricFamily("evpn_agent_held_withdrawals", "Withdrawals of stale paths held now (stale_withdraw_grace)",
                                value=s.held_withdrawals)
        yield GaugeMetricFamily("evpn_agent_gobgp_connected", "1 while the agent has a session with gobgpd", value=int(s.connected))
        yield GaugeMetricFamily("evpn_agent_ready", "1 once the table is loaded and the kernel synced", value=int(s.ready))
        yield GaugeMetricFamily("evpn_agent_last_full_sync_timestamp_seconds", "Unix time of the last full kernel resync",
                                value=s.last_full_sync)
        for name, help_text in COUNTER_HELP.items():
            yield CounterMetricFamily(f"evpn_agent_{name}", help_text, value=s.counters.get(name, 0))


class AgentMetrics:
    """The registry, the snapshot collector and the latency histogram of one agent."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.collector = SnapshotCollector()
        self.registry.register(self.collector)
        self.route_to_kernel = Histogram(
            "evpn_agent_route_to_kernel_seconds", "Time from a route change reaching the agent to the kernel change it caused",
            buckets=LATENCY_BUCKETS, registry=self.registry)

    def publish(self, snapshot: MetricsSnapshot) -> None:
        self.collector.snapshot = snapshot

    def serve(self, address: str) -> None:
        """Serve /metrics on HOST:PORT in a background thread."""
        host, _, port = address.rpartition(":")
        start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=self.registry)
        log.info("event=metrics-serving address=%s", address)


def snapshot_of(cfg: AgentConfig, health: Health, rib: RibView, table: LocalMacTable, reconciler: Reconciler,
                refused: int, ignored_local_ips: int) -> MetricsSnapshot:
    """A snapshot of counts kept incrementally (O(VNIs), no table walk)."""
    vni_of = {v.device: v.vni for v in cfg.vnis} | {v.bridge: v.vni for v in cfg.vnis}

    def by_vni(counts: dict[tuple[str, str], int]) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}
        for (kind, device), n in counts.items():
            if device in vni_of:
                out[(kind, vni_of[device])] = out.get((kind, vni_of[device]), 0) + n
        return out

    entries = by_vni(rib.entry_counts())
    return MetricsSnapshot(
        routes=by_vni(rib.route_counts()),
        entries=entries,
        remote_vteps={v.vni: entries.get(("flood", v.vni), 0) for v in cfg.vnis},
        owned_entries=len(reconciler.owned),
        local_macs={vni: n for vni, n in table.per_vni.items() if n},
        local_ips=len(table.ip_owner),
        frozen_macs=len(table.frozen),
        frozen_ips=len(table.frozen_ips),
        connected=health.connected,
        ready=health.ready,
        last_full_sync=health.last_full_sync,
        held_withdrawals=health.held_withdrawals,
        counters={
            "mac_moves": table.moves_total,
            "macs_over_limit": table.limited,
            "malformed_routes": health.malformed_routes,
            "kernel_errors": reconciler.errors,
            "reconnects": health.reconnects,
            "refused_requests": refused,
            "entries_added": reconciler.added,
            "entries_removed": reconciler.removed,
            "resync_repaired": health.resync_repaired,
            "ignored_local_ips": ignored_local_ips,
            "withdrawals_held": health.withdrawals_held,
            "withdrawals_cancelled": health.withdrawals_cancelled,
            "withdrawals_released": health.withdrawals_released,
        },
    )
