"""Prometheus metrics of the agent, served over HTTP on `metrics_address` (off unless configured).

The main loop publishes a `MetricsSnapshot` of cheap numbers (O(VNIs), kept incrementally by the
RIB view and the tables) after each batch; a scrape reads the last snapshot, so scraping never
walks the tables and never races the main loop. The route-to-kernel latency is a histogram the
main loop observes per batch.

Names follow Prometheus conventions (`evpn_agent_*`, `_total` for counters, seconds as the unit);
labels are low-cardinality only (VNI, kind, route type): never a MAC or an IP.

The text exposition format (version 0.0.4) and its one-page HTTP server are written here rather
than taken from prometheus_client, whose import (74 modules: its registry, WSGI server, ...) was
2.2 MB of an idle agent's 48 MB.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

from .config import AgentConfig
from .desired import RibView
from .mactable import LocalMacTable
from .reconcile import Reconciler
from .status import Health

log = logging.getLogger("evpn.agent.metrics")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REQUEST_MAX = 8192  # bytes of an HTTP request read at most
CLIENT_TIMEOUT = 5.0  # seconds a scraper may take to send its request

Labels = tuple[tuple[str, str], ...]
Sample = tuple[str, Labels, float]  # name, labels, value


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
    kernel_verified: bool = False
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


class Family:
    """One metric family of the text format: its HELP and TYPE lines and its samples."""

    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name, self.kind, self.help = name, kind, help_text
        self.samples: list[Sample] = []

    def add(self, value: float, suffix: str = "", **labels: str) -> Family:
        self.samples.append((self.name + suffix, tuple(labels.items()), float(value)))
        return self


def _number(value: float) -> str:
    """A sample value as Prometheus (and prometheus_client) write it: 2.0, 0.25, +Inf."""
    if value == float("inf"):
        return "+Inf"
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(families: list[Family]) -> str:
    """The text exposition format, version 0.0.4."""
    lines = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for name, labels, value in family.samples:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{name}{{{text}}} {_number(value)}" if labels else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


class LatencyHistogram:
    """A Prometheus histogram (cumulative buckets, count, sum), observed by the main loop."""

    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help = name, help_text
        self.bounds = (*buckets, float("inf"))
        self._counts = [0] * len(self.bounds)
        self._sum = 0.0
        self._created = time.time()
        self._lock = threading.Lock()  # a scrape reads from the server's thread

    def observe(self, value: float) -> None:
        with self._lock:
            self._sum += value
            for i, bound in enumerate(self.bounds):
                if value <= bound:
                    self._counts[i] += 1
                    break

    def family(self) -> Family:
        with self._lock:
            counts, total = list(self._counts), self._sum
        family = Family(self.name, "histogram", self.help)
        running = 0
        for bound, n in zip(self.bounds, counts):
            running += n
            family.add(running, "_bucket", le=_number(bound))
        family.add(running, "_count").add(total, "_sum")
        return family


def families(s: MetricsSnapshot) -> Iterator[Family]:
    """The snapshot's metric families, in a fixed order."""
    routes = Family("evpn_agent_routes", "gauge", "Remote EVPN routes in use, by route type and VNI")
    for (kind, vni), n in sorted(s.routes.items()):
        routes.add(n, type=kind, vni=str(vni))
    yield routes
    entries = Family("evpn_agent_desired_entries", "gauge", "Kernel entries the RIB asks for, by kind and VNI")
    for (kind, vni), n in sorted(s.entries.items()):
        entries.add(n, kind=kind, vni=str(vni))
    yield entries
    vteps = Family("evpn_agent_remote_vteps", "gauge", "Remote VTEPs in the flood list, by VNI")
    for vni, n in sorted(s.remote_vteps.items()):
        vteps.add(n, vni=str(vni))
    yield vteps
    macs = Family("evpn_agent_local_macs", "gauge", "Local VM MACs advertised, by VNI")
    for vni, n in sorted(s.local_macs.items()):
        macs.add(n, vni=str(vni))
    yield macs
    yield Family("evpn_agent_owned_entries", "gauge", "Kernel entries this agent made and owns").add(s.owned_entries)
    yield Family("evpn_agent_local_ips", "gauge", "Local VM addresses known").add(s.local_ips)
    yield Family("evpn_agent_frozen_macs", "gauge", "MACs frozen by duplicate detection").add(s.frozen_macs)
    yield Family("evpn_agent_frozen_ips", "gauge", "IPs frozen by duplicate detection").add(s.frozen_ips)
    yield Family("evpn_agent_held_withdrawals", "gauge", "Withdrawals of stale paths held now (stale_withdraw_grace)").add(
        s.held_withdrawals)
    yield Family("evpn_agent_gobgp_connected", "gauge", "1 while the agent has a session with gobgpd").add(int(s.connected))
    yield Family("evpn_agent_ready", "gauge", "1 once the table is loaded and the kernel synced").add(int(s.ready))
    yield Family("evpn_agent_kernel_verified", "gauge",
                 "1 once this session read the kernel and compared it (a restart is ready from its ledger first)").add(
        int(s.kernel_verified))
    yield Family("evpn_agent_last_full_sync_timestamp_seconds", "gauge", "Unix time of the last full kernel resync").add(s.last_full_sync)
    for name, help_text in COUNTER_HELP.items():
        yield Family(f"evpn_agent_{name}", "counter", help_text).add(s.counters.get(name, 0), "_total")


class AgentMetrics:
    """The last snapshot and the latency histogram of one agent, and the HTTP endpoint serving them."""

    def __init__(self) -> None:
        self.snapshot = MetricsSnapshot()
        self.route_to_kernel = LatencyHistogram(
            "evpn_agent_route_to_kernel_seconds", "Time from a route change reaching the agent to the kernel change it caused",
            LATENCY_BUCKETS)
        self._server: socket.socket | None = None

    @property
    def registry(self) -> AgentMetrics:
        """What a prometheus_client registry offered callers: `get_sample_value`."""
        return self

    def publish(self, snapshot: MetricsSnapshot) -> None:
        self.snapshot = snapshot  # one reference write: a scrape reads either the old or the new one

    def families(self) -> list[Family]:
        return [*families(self.snapshot), self.route_to_kernel.family()]

    def exposition(self) -> str:
        return render(self.families())

    def get_sample_value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """The value of one sample (name with its suffix, e.g. `_total`), None if there is none."""
        wanted = dict(labels or {})
        for family in self.families():
            for sample_name, sample_labels, value in family.samples:
                if sample_name == name and dict(sample_labels) == wanted:
                    return value
        return None

    def serve(self, address: str) -> None:
        """Serve the metrics on HOST:PORT (any path) from a background thread."""
        host, _, port = address.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server = socket.socket(family, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, int(port)))
        server.listen(16)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), name="metrics-http", daemon=True).start()
        log.info("event=metrics-serving address=%s", address)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # closed
            try:
                with conn:
                    conn.settimeout(CLIENT_TIMEOUT)
                    self._answer(conn)
            except OSError as exc:
                log.debug("event=metrics-client-error error=%r", str(exc))

    def _answer(self, conn: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request and len(request) < REQUEST_MAX:
            chunk = conn.recv(4096)
            if not chunk:
                break
            request += chunk
        method = request.split(b" ", 1)[0]
        if method not in (b"GET", b"HEAD"):
            conn.sendall(b"HTTP/1.0 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        body = self.exposition().encode()
        head = (f"HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        conn.sendall(head if method == b"HEAD" else head + body)


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
        kernel_verified=health.kernel_verified,
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
