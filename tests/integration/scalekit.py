"""Scale helpers shared by tests/integration/test_scale.py and benchmarks/bench_e2e.py.

- `FakeVtep`: N Type-2 MAC/IP routes of one made-up VTEP (inside the lab's VTEP range, no Type-3,
  so flood lists and convergence checks stay as they are), unique MACs 02:5c:..., unique IPs from a
  first address inside the network's subnet.
- `inject` / `withdraw`: those routes at a gobgpd (the controller's API socket) with AddPathStream
  (one client stream, paths in chunks), withdrawn the same way (`is_withdraw`).
- `KernelCount` / `count_kernel`: how many of them a host's kernel holds (vxlan FDB, bridge FDB,
  neighbour entries), read with agent.netlink_bulk's dump parser inside the namespace.
- `NeighMonitor`: a netlink socket in a namespace subscribed to RTMGRP_NEIGH, counting every
  RTM_NEWNEIGH / RTM_DELNEIGH notification (FDB and neighbour changes) while it runs.
- `proc_usage`: CPU seconds and peak RSS (VmHWM) of processes, from /proc.
"""

from __future__ import annotations

import ipaddress
import os
import select
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

import grpc
from pyroute2 import netns as pyroute2_netns
from pyroute2.netlink.rtnl import RTM_DELNEIGH, RTM_NEWNEIGH
from pyroute2.netlink.rtnl.ndmsg import NTF_EXT_LEARNED, NTF_SELF

from agent.codec import EVPN_FAMILY, decode_paths, encode_macip
from agent.netlink_bulk import NetlinkBulk
from agent.routes import MacIpRoute, RouteDistinguisher, RouteEvent, RouteTarget
from protos.gobgpapi import gobgp_pb2 as gobgp
from protos.gobgpapi import gobgp_pb2_grpc as gobgp_grpc

if TYPE_CHECKING:
    from labctl.lab import Lab

MAC_PREFIX = "02:5c"  # every injected MAC starts with this (the lab's VMs use 02:00)
CHUNK = 1000  # paths per AddPathStream message
RTMGRP_NEIGH = 0x4
_NLMSGHDR = struct.Struct("=IHHII")
_NDMSG_LEN = 12
_NLA = struct.Struct("=HH")
_NDA_LLADDR = 2
_PREFIX_BYTES = bytes.fromhex(MAC_PREFIX.replace(":", ""))


def _describe(data: bytes, offset: int, msg_type: int, lladdr: bytes) -> str:
    """One notification as text: kind, family, ifindex, NUD state, flags, link-layer address."""
    family, ifindex, state, flags, _type = struct.unpack_from("=BxxxiHBB", data, offset + _NLMSGHDR.size)
    kind = "NEWNEIGH" if msg_type == RTM_NEWNEIGH else "DELNEIGH"
    return f"{kind} family={family} ifindex={ifindex} state=0x{state:x} flags=0x{flags:x} lladdr={lladdr.hex(':') or '-'}"


def _lladdr(data: bytes, offset: int, length: int) -> bytes:
    """NDA_LLADDR of the neighbour message at `offset` (b"" if it has none)."""
    pos, end = offset + _NLMSGHDR.size + _NDMSG_LEN, min(offset + length, len(data))
    while pos + 4 <= end:
        nla_len, nla_type = _NLA.unpack_from(data, pos)
        if nla_len < 4:
            break
        if nla_type & 0x3FFF == _NDA_LLADDR:
            return bytes(data[pos + 4:pos + nla_len])
        pos += (nla_len + 3) & ~3
    return b""


@dataclass(frozen=True)
class FakeVtep:
    """N MAC/IP routes behind `vtep` for `vni`; route i: MAC 02:5c:00:xx:xx:xx = i, IP `first_ip` + i."""

    vtep: ipaddress.IPv4Address
    vni: int
    route_target: str  # "ASN:VNI" as the lab's network uses
    first_ip: ipaddress.IPv4Address
    count: int

    def mac(self, i: int) -> str:
        return f"{MAC_PREFIX}:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"

    def ip(self, i: int) -> ipaddress.IPv4Address:
        return self.first_ip + i

    def macs(self) -> dict[str, str]:
        """MAC -> IP text of every route."""
        return {self.mac(i): str(self.ip(i)) for i in range(self.count)}

    def paths(self, withdraw: bool = False) -> Iterator[gobgp.Path]:
        rd = RouteDistinguisher.ip_based(self.vtep, self.vni)
        rts = [RouteTarget.parse(self.route_target)]
        for i in range(self.count):
            path = encode_macip(rd, self.vtep, self.vni, self.mac(i), self.ip(i), rts)
            path.is_withdraw = withdraw
            yield path


def _chunks(paths: Iterator[gobgp.Path], size: int) -> Iterator[gobgp.AddPathStreamRequest]:
    chunk: list[gobgp.Path] = []
    for path in paths:
        chunk.append(path)
        if len(chunk) == size:
            yield gobgp.AddPathStreamRequest(table_type=gobgp.GLOBAL, paths=chunk)
            chunk = []
    if chunk:
        yield gobgp.AddPathStreamRequest(table_type=gobgp.GLOBAL, paths=chunk)


def _stream(address: str, paths: Iterator[gobgp.Path], timeout: float) -> None:
    channel = grpc.insecure_channel(address)
    try:
        stub = gobgp_grpc.GobgpApiStub(channel)
        stub.AddPathStream(_chunks(paths, CHUNK), timeout=timeout)
    finally:
        channel.close()


def inject(address: str, routes: FakeVtep, timeout: float = 300.0) -> None:
    """Add every route of `routes` at the gobgpd at `address` (e.g. unix:///run/evpn-lab/x/x-controller/gobgpd.sock)."""
    _stream(address, routes.paths(), timeout)


def withdraw(address: str, routes: FakeVtep, timeout: float = 300.0) -> None:
    _stream(address, routes.paths(withdraw=True), timeout)


def rib_routes(address: str, timeout: float = 300.0) -> list[RouteEvent]:
    """The best paths of a gobgpd's global EVPN table, decoded (streamed read, one destination per message)."""
    channel = grpc.insecure_channel(address)
    try:
        stub = gobgp_grpc.GobgpApiStub(channel)
        request = gobgp.ListPathRequest(table_type=gobgp.GLOBAL, family=EVPN_FAMILY)
        events: list[RouteEvent] = []
        for rsp in stub.ListPath(request, timeout=timeout):
            events += decode_paths(p for p in rsp.destination.paths if p.best)[0]
        return events
    finally:
        channel.close()


def rib_macs(address: str, vtep: str, vni: int) -> dict[str, set[str]]:
    """MAC -> IPs of the Type-2 routes with next hop `vtep` for `vni` in a gobgpd's table."""
    found: dict[str, set[str]] = {}
    for event in rib_routes(address):
        route = event.route
        if isinstance(route, MacIpRoute) and route.label_vni == vni and str(route.attrs.next_hop) == vtep:
            ips = found.setdefault(route.mac, set())
            if route.ip is not None:
                ips.add(str(route.ip))
    return found


# -- the kernel ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelCount:
    vxlan: int  # unicast "self" entries of the vxlan device pointing at the fake VTEP
    bridge: int  # the bridge's extern_learn entries for injected MACs
    neigh: int  # neighbour entries on the bridge for injected MACs


def kernel_entries(ns: str, vxlan: str, bridge: str, vtep: str) -> tuple[set[str], set[str], dict[str, str]]:
    """(MACs in the vxlan FDB pointing at `vtep`, injected MACs in the bridge FDB, IP -> MAC of injected neighbours)."""
    with NetlinkBulk(netns=ns) as bulk:
        indexes = _indexes(ns)
        vx, br = indexes[vxlan], indexes[bridge]
        fdb = bulk.dump_fdb(vx)
        neigh = bulk.dump_neigh(ifindex=br)
    macs = {r.mac for r in fdb if r.ifindex == vx and r.flags & NTF_SELF and r.dst == vtep and r.mac}
    bridged = {r.mac for r in fdb if r.ifindex == vx and r.dst is None and r.flags & NTF_EXT_LEARNED
               and r.mac and r.mac.startswith(MAC_PREFIX)}
    neighbours = {r.dst: r.mac for r in neigh if r.ifindex == br and r.dst and r.mac and r.mac.startswith(MAC_PREFIX)}
    return macs, bridged, neighbours


def count_kernel(ns: str, vxlan: str, bridge: str, vtep: str) -> KernelCount:
    macs, bridged, neighbours = kernel_entries(ns, vxlan, bridge, vtep)
    return KernelCount(len(macs), len(bridged), len(neighbours))


def _indexes(ns: str) -> dict[str, int]:
    from labctl import netns as lab_netns

    with lab_netns.ns(ns) as ipr:
        return {link.get_attr("IFLA_IFNAME"): link["index"] for link in ipr.get_links()}


# -- watching netlink ------------------------------------------------------------------------------


class NeighMonitor:
    """Counts RTM_NEWNEIGH / RTM_DELNEIGH notifications (FDB and neighbour changes) in namespace `ns`.

    Use as a context manager; `new`, `deleted` and `overruns` (ENOBUFS: notifications lost) are read
    after it stops. Nothing is counted before `__enter__` returns (the socket is bound by then)."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.new = 0
        self.deleted = 0
        self.overruns = 0
        self.injected = 0  # of new + deleted: those about an injected MAC (02:5c:...)
        self.others: list[str] = []  # the first 20 not about an injected MAC, described (what made them)
        self.last = 0.0  # time.monotonic() of the last notification
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def __enter__(self) -> Self:
        pyroute2_netns.pushns(self.ns)
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        finally:
            pyroute2_netns.popns()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        sock.bind((0, RTMGRP_NEIGH))
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name=f"neigh-monitor-{self.ns}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.1)
            if not ready:
                continue
            try:
                data = self._sock.recv(1 << 20)
            except OSError:  # ENOBUFS: the kernel dropped notifications
                self.overruns += 1
                continue
            self.last = time.monotonic()
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, msg_type, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size:
                    break
                if msg_type in (RTM_NEWNEIGH, RTM_DELNEIGH):
                    if msg_type == RTM_NEWNEIGH:
                        self.new += 1
                    else:
                        self.deleted += 1
                    lladdr = _lladdr(data, offset, length)
                    if lladdr.startswith(_PREFIX_BYTES):
                        self.injected += 1
                    elif len(self.others) < 20:
                        self.others.append(_describe(data, offset, msg_type, lladdr))
                offset += (length + 3) & ~3

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._sock is not None:
            self._sock.close()

    @property
    def writes(self) -> int:
        """Every RTM_NEWNEIGH / RTM_DELNEIGH seen."""
        return self.new + self.deleted


# -- processes --------------------------------------------------------------------------------------

ROLES = ("evpn-agent", "gobgpd", "zebra", "bgpd")


def daemon_pids(ns: str) -> dict[str, int]:
    """Role (agent, gobgpd, zebra, bgpd) -> PID of the daemons running in namespace `ns`, found by their
    command line (the daemon itself, not a supervisor or `ip netns exec` wrapper around it)."""
    from labctl import netns as lab_netns

    found: dict[str, int] = {}
    for pid in lab_netns.pids(ns):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        names = [Path(a.decode(errors="replace")).name for a in argv[:2]]
        for role in ROLES:
            if names[0] == role or (len(names) > 1 and names[0].startswith("python") and names[1] == role):
                found["agent" if role == "evpn-agent" else role] = pid
    return found


_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float  # user + system, since the process started
    peak_rss_kib: int  # VmHWM


def proc_usage(pids: Sequence[int]) -> Usage:
    """CPU seconds and peak RSS summed over `pids` (a process that is gone counts 0)."""
    cpu, hwm = 0.0, 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        try:
            fields = stat[stat.rindex(")") + 2:].split()
            cpu += (int(fields[11]) + int(fields[12])) / _TICK
            hwm += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
        except (ValueError, IndexError):
            continue
    return Usage(cpu, hwm)


# -- restarting an agent ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Restart:
    ready: float  # seconds from the old agent's exit until the new one's status file says ready
    verified: float  # ... that it read the kernel and compared it (a restart is ready from its ledger first)
    settled: float  # ... verified, and no stale-entry removal pending
    new: int  # RTM_NEWNEIGH seen in the namespace from just before the SIGTERM to `linger` s after settling
    deleted: int  # RTM_DELNEIGH
    injected: int  # of those, about injected MACs
    overruns: int  # the monitor lost notifications (ENOBUFS): counts are a floor
    owned: int  # owned_fdb_entries the new agent reports
    others: tuple[str, ...] = ()  # the first of the rest, described (NeighMonitor.others)


def restart_agent(lab: Lab, host: str, timeout: float = 120.0, linger: float = 2.0) -> Restart:
    """SIGTERM the agent of `host` (found in its namespace) and have it start again: by its supervisor if
    labctl runs one, else through the node; with a netlink monitor in the namespace throughout."""
    node = lab.node(host)
    old = daemon_pids(host)["agent"]
    with NeighMonitor(host) as monitor:
        os.kill(old, signal.SIGTERM)
        while daemon_pids(host).get("agent") == old:
            time.sleep(0.02)
        start = time.monotonic()
        new = 0
        while time.monotonic() - start < 2.0 and not new:  # a supervisor restarts it within its backoff
            time.sleep(0.05)
            new = daemon_pids(host).get("agent", 0)
        if not new:
            node.start_agent()  # type: ignore[attr-defined]
        ready = verified = settled = None
        while time.monotonic() - start < timeout:
            status = node.agent_status()  # type: ignore[attr-defined]
            if status.get("pid") == old:
                time.sleep(0.05)
                continue  # the old agent's file, not yet rewritten
            if ready is None and status.get("ready"):
                ready = time.monotonic() - start
            if ready is not None and verified is None and status.get("kernel_verified"):
                verified = time.monotonic() - start
            if verified is not None and status.get("stale_pending") is False:
                settled = time.monotonic() - start
                break
            time.sleep(0.05)
        if settled is None or ready is None or verified is None:
            raise AssertionError(f"agent on {host} not ready and settled {timeout:.0f}s after a restart "
                                 f"(see {lab.plan.files(host).agent_log})")
        time.sleep(linger)  # anything the agent would still write shows up here
    owned = int(node.agent_status().get("owned_fdb_entries", 0))  # type: ignore[attr-defined]
    return Restart(ready, verified, settled, monitor.new, monitor.deleted, monitor.injected, monitor.overruns, owned,
                   tuple(monitor.others))
