#!/usr/bin/env python3
"""Scale benchmark of the EVPN host agent, towards 100k FDB entries.

Not a pytest test: run it, read the figures. Every figure comes with a ratio
against a reference measured in the same run, so numbers stay comparable
across machines:

1. decode    agent.codec.decode_paths on N gobgp paths (Type-2 + 5% Type-3, built
             with encode_macip / encode_imet) -> paths/s, against a protobuf floor
             (unpack every Any of the same paths by a type_url lookup, build nothing).
2. apply     agent.desired.RibView.apply loading N Type-2 routes in batches of
             1000 -> routes/s (also with the agent's INFO logging on); then the
             cost of one more batch of 100 updates (MAC moves, withdrawals, new
             MACs) on a table of N, against a naive "recompute the desired set
             from scratch after each batch" reference implemented here (it keeps
             the routes and feeds them all to a fresh RibView: same meaning,
             no incremental bookkeeping).
             Ratio vs the smallest N shows whether the incremental cost is flat.
             Also (2b) the O(N) work the service does after each batch that
             changed something: the ledger journal (100 changes) and the status
             file's RIB views (Service._write_status), plus the full sync's comparison (plan_packed).
3. memory    tracemalloc retained / peak bytes per route of a RibView holding N
             routes, against a plain dict route-key -> route (what the naive
             approach has to keep; per route, measured on at most 10k routes);
             beside it the other long-lived per-route structure of the agent, the
             reconciler's owned set (the N FDB + N neighbour entries desired()
             makes, in an OwnedSet, against a plain set of them), and the RSS a
             fresh process grows by holding both (VmRSS before and after, as
             bench_e2e measures the live agent); 3b: Ledger.load of that set's
             snapshot (kept, peak, seconds) and the RSS when it comes from there.
4. kernel    (root; --skip-kernel to leave out) in namespace bench-k, N unicast
             FDB entries (from N MAC-only Type-2 routes, so no neighbour entries)
             through agent.kernel.Kernel.add vs iproute2 `bridge -batch`
             adding the same entries (vxlan "self" + bridge "master extern_learn",
             as Kernel.add does) in namespace bench-r; Kernel.entries() dump vs
             `bridge fdb show`; a restart without churn (ledger load +
             Reconciler.full_sync with nothing to change).

Usage:  .venv/bin/python benchmarks/bench_scale.py [--sizes 1000,10000,100000]
                 [--kernel-sizes 1000,10000] [--skip-kernel]
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import logging
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Callable, Iterable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.codec import decode_paths, encode_imet, encode_macip  # noqa: E402
from agent.config import AgentConfig, parse_config  # noqa: E402
from agent.desired import RibView  # noqa: E402
from agent.entries import FdbEntry  # noqa: E402
from agent.ledger import Ledger  # noqa: E402
from agent.ownedset import OwnedSet, PackedEntries  # noqa: E402
from agent.reconcile import plan_packed  # noqa: E402
from agent.routes import ENCAP_VXLAN, MacIpRoute, PathAttrs, RouteDistinguisher, RouteEvent, RouteTarget  # noqa: E402
from protos.gobgpapi import attribute_pb2 as attr  # noqa: E402

OWN_VTEP = "10.0.0.1"
RT_ASN = 65000
PURE_VNIS = (100, 101, 102, 103)
KERNEL_VNI = 100
N_VTEPS = 200  # remote VTEPs the Type-2 routes are spread over
LOAD_BATCH = 1000
UPDATE_BATCH = 100  # 30 moves (advert + old withdrawn) + 20 withdrawals + 20 new MACs
INC_REPS = 30  # incremental batches timed on RibView (min and median)
NAIVE_REPS = 3  # of which the naive reference recomputes (and is timed) on this many
SAMPLE = 10_000  # per-route figures that do not depend on N are taken on at most this many routes
NS_KERNEL = "bench-k"
NS_REF = "bench-r"
MAIN_PID = os.getpid()  # pyroute2 forks helpers (netns sockets): only this process cleans up
_created: set[str] = set()  # the namespaces this run made, the only ones it removes


def out(text: str = "") -> None:
    print(text, flush=True)


# -- workload ----------------------------------------------------------------------------


def make_cfg(vnis: Iterable[int]) -> AgentConfig:
    return parse_config({
        "vtep": OWN_VTEP,
        "route_target_asn": RT_ASN,
        "vnis": [{"vni": v, "device": f"vxlan{v}", "bridge": f"br{v}"} for v in vnis],
    })


VTEP_BASE = 0x0A010001  # remote VTEP j is 10.1.0.1 + j
IP_BASE = 0xAC100000  # MAC i has IP 172.16.0.0 + i


def vtep_text(j: int) -> str:
    return str(ipaddress.IPv4Address(VTEP_BASE + j))


def mac_text(i: int) -> str:
    return (b"\x02" + i.to_bytes(5, "big")).hex(":")  # locally administered unicast


VTEP_TEXTS = [vtep_text(j) for j in range(N_VTEPS)]


class MacState:
    """Route i of the table: MAC i (with IP i) behind VTEP vtep_idx in vni, with a mobility sequence."""

    __slots__ = ("vtep", "vni", "seq")

    def __init__(self, vtep: int, vni: int, seq: int = 0) -> None:
        self.vtep, self.vni, self.seq = vtep, vni, seq


def initial_state(i: int, vnis: tuple[int, ...]) -> MacState:
    return MacState(i % N_VTEPS, vnis[(i // N_VTEPS) % len(vnis)])


def macip_route(i: int, st: MacState, with_ip: bool = True) -> MacIpRoute:
    """The route decode_path would give for MAC i in state st (fresh objects per route, like decode)."""
    return MacIpRoute(
        rd=RouteDistinguisher(f"{VTEP_TEXTS[st.vtep]}:{st.vni}"),
        ethernet_tag=0,
        mac=mac_text(i),
        ip=ipaddress.IPv4Address(IP_BASE + i) if with_ip else None,
        label_vni=st.vni,
        attrs=PathAttrs(ipaddress.IPv4Address(VTEP_BASE + st.vtep), frozenset({RouteTarget(str(RT_ASN), st.vni)}),
                        ENCAP_VXLAN, st.seq or None),
    )


def encode_type2(i: int, st: MacState):
    vtep = ipaddress.IPv4Address(VTEP_BASE + st.vtep)
    return encode_macip(RouteDistinguisher.ip_based(vtep, st.vni), vtep, st.vni, mac_text(i),
                        ipaddress.IPv4Address(IP_BASE + i), [RouteTarget(str(RT_ASN), st.vni)], sequence=st.seq)


def encode_type3(k: int, vnis: tuple[int, ...]):
    vtep = ipaddress.IPv4Address(VTEP_BASE + k % 1250)
    vni = vnis[(k // 1250) % len(vnis)]
    return encode_imet(RouteDistinguisher.ip_based(vtep, vni), vtep, vni, [RouteTarget(str(RT_ASN), vni)])


class Churn:
    """Generates batches of 100 route events on a table of N MACs, keeping the table at N."""

    def __init__(self, n: int, vnis: tuple[int, ...], seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.vnis = vnis
        self.state = {i: initial_state(i, vnis) for i in range(n)}
        self.alive = list(range(n))
        self.next_new = n

    def _take(self) -> int:
        pos = self.rng.randrange(len(self.alive))
        self.alive[pos], self.alive[-1] = self.alive[-1], self.alive[pos]
        return self.alive.pop()

    def batch(self) -> list[RouteEvent]:
        events: list[RouteEvent] = []
        moved = [self._take() for _ in range(30)]
        gone = [self._take() for _ in range(20)]
        for i in moved:  # MAC mobility: the new VTEP advertises seq+1, then the old one withdraws
            old = self.state[i]
            new = MacState((old.vtep + 1 + self.rng.randrange(N_VTEPS - 1)) % N_VTEPS, old.vni, old.seq + 1)
            events.append(RouteEvent(macip_route(i, new)))
            events.append(RouteEvent(macip_route(i, old), withdrawn=True))
            self.state[i] = new
        for i in gone:
            events.append(RouteEvent(macip_route(i, self.state.pop(i)), withdrawn=True))
        for _ in range(20):
            i = self.next_new
            self.next_new += 1
            self.state[i] = st = initial_state(i, self.vnis)
            events.append(RouteEvent(macip_route(i, st)))
        self.alive.extend(moved)
        self.alive.extend(range(self.next_new - 20, self.next_new))
        assert len(events) == UPDATE_BATCH
        return events


# -- the naive reference: recompute desired() from scratch after each batch --------------------


class NaiveDesired:
    """Keeps every route; after each batch recomputes the whole desired set from scratch and diffs it.

    The recomputation is the agent's own logic (a fresh RibView fed every route), so the reference
    always means exactly what RibView means; only the incremental bookkeeping is missing.
    """

    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.routes: dict[tuple, RouteEvent] = {}
        self.desired: set = set()

    def update(self, events: Iterable[RouteEvent]) -> None:
        for event in events:
            if event.withdrawn:
                self.routes.pop(event.route.key, None)
            else:
                self.routes[event.route.key] = event

    def recompute(self) -> set:
        view = RibView(self.cfg)
        view.apply(self.routes.values())
        new = view.desired()
        touched = new ^ self.desired
        self.desired = new
        return touched

    def apply(self, events: Iterable[RouteEvent]) -> set:
        self.update(events)
        return self.recompute()


def fdb_unicast(entries: Iterable[object]) -> list[FdbEntry]:
    """The unicast vxlan FDB entries of a desired set (it may hold other kinds, e.g. neighbour entries)."""
    return sorted(e for e in entries if isinstance(e, FdbEntry) and not e.is_flood)


# -- measurements ----------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


_BY_TYPE_URL = {
    "type.googleapis.com/" + cls.DESCRIPTOR.full_name: cls
    for cls in (attr.OriginAttribute, attr.MpReachNLRIAttribute, attr.NextHopAttribute, attr.ExtendedCommunitiesAttribute,
                attr.PmsiTunnelAttribute, attr.EVPNMACIPAdvertisementRoute, attr.EVPNInclusiveMulticastEthernetTagRoute,
                attr.RouteDistinguisherIPAddress, attr.RouteDistinguisherTwoOctetASN, attr.RouteDistinguisherFourOctetASN,
                attr.TwoOctetAsSpecificExtended, attr.EncapExtended, attr.MacMobilityExtended)
}


def protobuf_floor(paths: list) -> int:
    """Reference for decode: unpack every Any of every path (one dict lookup on type_url), build nothing."""
    count = 0

    def unpack(any_msg):  # type: ignore[no-untyped-def]
        msg = _BY_TYPE_URL[any_msg.type_url]()
        msg.ParseFromString(any_msg.value)
        return msg

    for path in paths:
        unpack(unpack(path.nlri).rd)
        for pattr in path.pattrs:
            msg = unpack(pattr)
            if isinstance(msg, attr.ExtendedCommunitiesAttribute):
                for community in msg.communities:
                    unpack(community)
        count += 1
    return count


def bench_decode(n: int, type2_paths: list, type3_paths: list) -> tuple[dict, list[RouteEvent]]:
    n3 = n // 20
    paths = type2_paths[:n] + type3_paths[:n3]
    gc.collect()
    secs, (events, errors) = timed(lambda: decode_paths(paths))  # type: ignore[misc]
    assert not errors and len(events) == len(paths), (errors[:3], len(events))
    gc.collect()
    floor_secs, _ = timed(lambda: protobuf_floor(paths))
    return {"paths": len(paths), "secs": secs, "rate": len(paths) / secs, "floor_rate": len(paths) / floor_secs,
            "ratio": secs / floor_secs}, events[:n]


def load(rib: RibView, events: list[RouteEvent]) -> float:
    t0 = time.perf_counter()
    for k in range(0, len(events), LOAD_BATCH):
        rib.apply(events[k:k + LOAD_BATCH])
    return time.perf_counter() - t0


def bench_apply(n: int, cfg: AgentConfig, type2_events: list[RouteEvent], tmp: Path) -> dict:
    gc.collect()
    rib = RibView(cfg)
    secs = load(rib, type2_events)
    desired = rib.desired()
    assert len(rib) == n and len(fdb_unicast(desired)) == n, (len(rib), len(fdb_unicast(desired)))
    res: dict = {"load_secs": secs, "load_rate": n / secs, "entries_per_route": len(desired) / n}

    # the same load with the agent's INFO logging on (its default), into /dev/null
    agent_log = logging.getLogger("evpn.agent")
    with open(os.devnull, "w") as sink:
        handler = logging.StreamHandler(sink)
        handler.setFormatter(logging.Formatter("%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"))
        saved = (agent_log.level, agent_log.propagate)
        agent_log.addHandler(handler)
        agent_log.setLevel(logging.INFO)
        agent_log.propagate = False
        try:
            gc.collect()
            sample = type2_events[:SAMPLE]
            secs_info = load(RibView(cfg), sample)
        finally:
            agent_log.removeHandler(handler)
            agent_log.setLevel(saved[0])
            agent_log.propagate = saved[1]
    res["load_rate_info"] = len(sample) / secs_info

    # incremental: one more batch of 100 updates on a table of n, RibView vs naive recompute
    churn = Churn(n, PURE_VNIS)
    naive = NaiveDesired(cfg)
    naive.update(type2_events)
    naive.desired = rib.desired()  # what its recomputation would give now (checked at the end)
    every = INC_REPS // NAIVE_REPS
    inc: list[float] = []
    ref: list[float] = []
    touched_sizes: list[int] = []
    gc.collect()
    for rep in range(INC_REPS):
        batch = churn.batch()
        secs, touched = timed(lambda: rib.apply(batch))
        inc.append(secs)
        touched_sizes.append(len(touched))  # type: ignore[arg-type]
        if rep % every == every - 1:
            secs, _ = timed(lambda: naive.apply(batch))
            ref.append(secs)
        else:
            naive.update(batch)
    assert (INC_REPS - 1) % every == every - 1  # the last batch was a recomputing one
    assert naive.desired == rib.desired(), "naive reference and RibView disagree"
    res["inc_ms"] = statistics.median(inc) * 1e3
    res["inc_min_ms"] = min(inc) * 1e3
    res["naive_ms"] = statistics.median(ref) * 1e3
    res["speedup"] = res["naive_ms"] / res["inc_ms"]  # both medians
    res["touched"] = statistics.median(touched_sizes)

    # O(N) work the service does after every batch that changed something (reconcile + status file)
    owned = rib.desired()
    ledger = Ledger(tmp / f"ledger-{n}.json")
    ledger.compact(owned)
    side_reps = 3 if n <= 10_000 else 1
    some = set(list(owned)[:100])  # one batch of 100 changes: what the journal costs per batch

    def ledger_batch() -> None:
        ledger.record(set(), some, owned - some)
        ledger.record(some, set(), owned)

    res["ledger_save_ms"] = statistics.median(timed(ledger_batch)[0] for _ in range(side_reps)) * 1e3

    def status() -> None:  # the RIB-sized part of Service.status() / _write_status()
        doc = {"routes": len(rib), "remote_vteps": {str(k): v for k, v in rib.remote_vteps().items()},
               "remote_macs": {str(k): v for k, v in rib.remote_macs().items()}}
        if hasattr(rib, "remote_neighbours"):
            doc["remote_neighbours"] = rib.remote_neighbours()
        (tmp / "status.json").write_text(json.dumps(doc, indent=1, sort_keys=True))

    res["status_ms"] = statistics.median(timed(status)[0] for _ in range(side_reps)) * 1e3
    keys = PackedEntries.of(owned)  # the full sync's comparison: desired, kernel and owned alike (nothing to do)
    res["plan_full_ms"] = timed(lambda: plan_packed(keys, keys, keys))[0] * 1e3
    return res


def _events(k: int, n: int) -> list[RouteEvent]:
    return [RouteEvent(macip_route(i, initial_state(i, PURE_VNIS))) for i in range(k, min(n, k + LOAD_BATCH))]


def bench_memory(n: int, cfg: AgentConfig, tmp: Path) -> dict:
    def traced(fill: Callable[[list[RouteEvent]], None], n: int) -> tuple[int, int]:
        gc.collect()
        tracemalloc.start()
        try:
            for k in range(0, n, LOAD_BATCH):
                events = _events(k, n)
                fill(events)
                del events
            gc.collect()
            current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return current, peak

    rib = RibView(cfg)
    cur, peak = traced(rib.apply, n)
    assert len(rib) == n
    gc.collect()
    tracemalloc.start()
    plain = set(rib.desired())  # the reference: the owned entries as a set of entry objects (before #12)
    set_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(plain) == 2 * n
    del plain
    gc.collect()
    tracemalloc.start()
    owned = OwnedSet(rib.desired())  # what Reconciler.owned holds once the N routes are programmed
    owned.settle()  # (Reconciler.flush does, after each batch)
    owned_bytes, owned_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(owned) == 2 * n
    ledger_path = tmp / f"owned-{n}.json"
    Ledger(ledger_path).compact(owned)
    del owned, rib
    gc.collect()
    t0 = time.perf_counter()
    loaded = Ledger(ledger_path).load()  # a restart: the snapshot of the 2N entries read back
    load_secs = time.perf_counter() - t0  # (untraced: tracemalloc slows it several times)
    del loaded
    gc.collect()
    tracemalloc.start()
    loaded = Ledger(ledger_path).load()
    load_bytes, load_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(loaded) == 2 * n
    del loaded
    m = min(n, SAMPLE)  # the reference's bytes per route do not depend on N
    naive = NaiveDesired(cfg)
    ncur, _ = traced(naive.update, m)
    assert len(naive.routes) == m
    rss = rss_child(n)
    rss_ledger = rss_child(n, ledger_path)
    return {"set_bytes": set_bytes / n, "owned_peak": owned_peak / n, "load_bytes": load_bytes / n, "load_peak": load_peak / n,
            "load_secs": load_secs, "rss_ledger_bytes": rss_ledger["grown"] / n,
"bytes": cur / n, "peak": peak / n, "naive_bytes": ncur / m, "ratio": (cur / n) / (ncur / m), "total_mb": cur / 2**20,
            "owned_bytes": owned_bytes / n, "rss_bytes": rss["grown"] / n, "rss_before_mb": rss["before"] / 2**20}


def vm_rss() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def rss_child(n: int, ledger: Path | None = None) -> dict[str, int]:
    """VmRSS a fresh interpreter grows by loading N routes into a RibView in batches and keeping the
    entries desired() makes in an OwnedSet (the reconciler's owned set), after everything is imported;
    with `ledger`, the owned set is read from that ledger instead (a restart)."""
    proc = subprocess.run([sys.executable, __file__, "--rss-child", str(n), *([str(ledger)] if ledger else [])],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def rss_child_main(n: int, ledger: str | None = None) -> int:
    from agent.cli import tune_malloc

    tune_malloc()  # as `evpn-agent run` does
    cfg = make_cfg(PURE_VNIS)
    RibView(cfg).apply(_events(0, 1))  # every code path warm, nothing held
    gc.collect()
    before = vm_rss()
    rib = RibView(cfg)
    for k in range(0, n, LOAD_BATCH):
        rib.apply(_events(k, n))
    if ledger:
        owned = Ledger(Path(ledger)).load()
    else:
        owned = OwnedSet(rib.desired())
        owned.settle()
    gc.collect()
    print(json.dumps({"before": before, "grown": vm_rss() - before, "routes": len(rib), "owned": len(owned)}))
    return 0


# -- kernel --------------------------------------------------------------------------------


def ip_cmd(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


def ns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def ns_delete(name: str) -> None:
    """Remove a namespace this run created (never from a forked child of pyroute2's)."""
    if os.getpid() != MAIN_PID or name not in _created:
        return
    if ns_exists(name):
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    _created.discard(name)


def ns_require(*names: str) -> None:
    for name in names:
        if not ns_exists(name):
            raise RuntimeError(f"namespace {name} vanished during the run (removed by another process?)")


def ns_setup(name: str) -> None:
    if ns_exists(name):
        raise RuntimeError(f"namespace {name} already exists: another run of this benchmark, or a leftover "
                           f"(remove it with: ip netns del {name})")
    ip_cmd("netns", "add", name)
    _created.add(name)
    ip_cmd("-n", name, "link", "add", "br0", "type", "bridge")
    ip_cmd("-n", name, "link", "add", f"vxlan{KERNEL_VNI}", "type", "vxlan", "id", str(KERNEL_VNI),
           "local", OWN_VTEP, "dstport", "4789", "nolearning")
    ip_cmd("-n", name, "link", "set", f"vxlan{KERNEL_VNI}", "master", "br0")
    ip_cmd("-n", name, "link", "set", "br0", "up")
    ip_cmd("-n", name, "link", "set", f"vxlan{KERNEL_VNI}", "up")


def fdb_show(ns: str, device: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(["bridge", "-n", ns, "fdb", "show", "dev", device], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bridge -n {ns} fdb show dev {device}: exit {proc.returncode}: {proc.stderr.strip()}")
    return time.perf_counter() - t0, proc.stdout


def fdb_counts(text: str) -> tuple[int, int]:
    lines = text.splitlines()
    return sum(" dst " in ln for ln in lines), sum("extern_learn" in ln for ln in lines)


def bench_kernel(n: int, tmp: Path) -> dict:
    from agent.kernel import Kernel
    from agent.reconcile import Reconciler

    cfg = make_cfg([KERNEL_VNI])
    device = f"vxlan{KERNEL_VNI}"
    rib = RibView(cfg)
    # MAC-only routes: exactly N unicast FDB entries (a route with an IP would also ask for a neighbour entry)
    load(rib, [RouteEvent(macip_route(i, initial_state(i, (KERNEL_VNI,)), with_ip=False)) for i in range(n)])
    desired = rib.desired()
    entries = fdb_unicast(desired)
    if len(entries) != n or len(desired) != n:
        raise RuntimeError(f"{n} MAC-only routes gave {len(desired)} desired entries, {len(entries)} unicast FDB")
    res: dict = {}
    kernel = None
    try:
        ns_setup(NS_KERNEL)
        ns_setup(NS_REF)

        kernel = Kernel(netns=NS_KERNEL)
        kernel.ifindex(device)  # socket and index lookup outside the timing

        def program() -> None:
            outcomes = kernel.add_many(entries)
            if not all(outcome is True for outcome in outcomes):
                raise RuntimeError(f"{sum(outcome is not True for outcome in outcomes)} entries not made")

        secs, _ = timed(program)
        ns_require(NS_KERNEL, NS_REF)
        res["add_rate"] = n / secs
        res["add_secs"] = secs
        kernel.close()
        kernel = None

        batch_file = tmp / f"fdb-{n}.batch"
        with batch_file.open("w") as f:
            for e in entries:
                f.write(f"fdb replace {e.mac} dev {device} dst {e.vtep} self permanent\n")
                f.write(f"fdb replace {e.mac} dev {device} master extern_learn\n")
        t0 = time.perf_counter()
        subprocess.run(["bridge", "-n", NS_REF, "-batch", str(batch_file)], check=True, capture_output=True)
        ref_secs = time.perf_counter() - t0
        res["ref_rate"] = n / ref_secs
        res["add_ratio"] = res["ref_rate"] / res["add_rate"]

        # both namespaces hold the same entries: N vxlan entries with dst, N bridge entries extern_learn
        show_k_secs, shown_k = fdb_show(NS_KERNEL, device)
        _, shown_r = fdb_show(NS_REF, device)
        counts = fdb_counts(shown_k), fdb_counts(shown_r)
        if counts[0] != (n, n) or counts[1] != (n, n):
            raise RuntimeError(f"unexpected FDB contents (dst, extern_learn): agent {counts[0]}, bridge -batch {counts[1]}, want {(n, n)}")

        ns_require(NS_KERNEL)
        kernel = Kernel(netns=NS_KERNEL)
        kernel.ifindex(device)
        secs, found = timed(lambda: kernel.entries([device]))
        if found != desired:
            raise RuntimeError(f"Kernel.entries() returned {len(found)} entries, {len(desired ^ found)} differ from desired")  # type: ignore[arg-type]
        res["dump_secs"] = secs
        res["dump_ref_secs"] = min(show_k_secs, fdb_show(NS_KERNEL, device)[0])
        res["dump_ratio"] = secs / res["dump_ref_secs"]
        kernel.close()
        kernel = None

        # restart without churn: open netlink, load the ledger (the previous run owns all N), full sync
        ledger_path = tmp / f"owned-{n}.json"
        Ledger(ledger_path).compact(desired)
        if Ledger(ledger_path).load() != desired:
            raise RuntimeError(f"ledger {ledger_path} does not read back")
        ns_require(NS_KERNEL)
        t0 = time.perf_counter()
        kernel = Kernel(netns=NS_KERNEL)
        reconciler = Reconciler(kernel, Ledger(ledger_path), [device])
        t1 = time.perf_counter()
        plan = reconciler.full_sync(rib.desired())
        t2 = time.perf_counter()
        if plan or reconciler.errors or len(reconciler.owned) != n:
            raise RuntimeError(f"full_sync without churn: +{len(plan.add)} -{len(plan.remove)}, "
                               f"{reconciler.errors} errors, owns {len(reconciler.owned)} of {n}")
        res["restart_open_secs"] = t1 - t0
        res["restart_sync_secs"] = t2 - t1
        res["restart_secs"] = t2 - t0
    finally:
        if kernel is not None:
            kernel.close()
        ns_delete(NS_KERNEL)
        ns_delete(NS_REF)
    return res


# -- report --------------------------------------------------------------------------------


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    out(f"\n{title}")
    out("  " + "  ".join(h.rjust(w) for h, w in zip(header, widths)))
    out("  " + "  ".join("-" * w for w in widths))
    for r in rows:
        out("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths)))


def num(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def sizes_arg(text: str) -> list[int]:
    try:
        sizes = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers like 1000,10000")
    if not sizes or sizes[0] < LOAD_BATCH:
        raise argparse.ArgumentTypeError(f"sizes must be >= {LOAD_BATCH}")
    return sizes


def on_sigterm(*_: object) -> None:
    if os.getpid() != MAIN_PID:
        os._exit(143)  # a forked pyroute2 helper inherited this handler: no unwinding, no cleanup there
    sys.exit(143)  # in the benchmark itself: unwind so the finally blocks remove the namespaces


def main() -> int:
    if sys.argv[1:2] == ["--rss-child"]:
        return rss_child_main(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=sizes_arg, default=sizes_arg("1000,10000,100000"), help="N for decode/apply/memory (default 1000,10000,100000)")
    parser.add_argument("--kernel-sizes", type=sizes_arg, default=sizes_arg("1000,10000"), help="N for the kernel part (default 1000,10000)")
    parser.add_argument("--skip-kernel", action="store_true", help="leave out the kernel part (needs root and network namespaces)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)

    started = time.perf_counter()
    sizes: list[int] = args.sizes
    cfg = make_cfg(PURE_VNIS)
    out(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; sizes {sizes}; "
        f"kernel sizes {'skipped' if args.skip_kernel else args.kernel_sizes}")

    t0 = time.perf_counter()
    biggest = sizes[-1]
    type2_paths = [encode_type2(i, initial_state(i, PURE_VNIS)) for i in range(biggest)]
    type3_paths = [encode_type3(k, PURE_VNIS) for k in range(biggest // 20)]
    out(f"built {len(type2_paths) + len(type3_paths)} gobgp paths with encode_macip/encode_imet in {time.perf_counter() - t0:.1f}s")

    decode_res: dict[int, dict] = {}
    apply_res: dict[int, dict] = {}
    mem_res: dict[int, dict] = {}
    kernel_res: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="evpn-scale-") as tmpdir:
        tmp = Path(tmpdir)
        for n in sizes:
            t0 = time.perf_counter()
            decode_res[n], events = bench_decode(n, type2_paths, type3_paths)
            t1 = time.perf_counter()
            apply_res[n] = bench_apply(n, cfg, events, tmp)
            del events
            t2 = time.perf_counter()
            mem_res[n] = bench_memory(n, cfg, tmp)
            t3 = time.perf_counter()
            out(f"N={n}: decode {t1 - t0:.1f}s, apply {t2 - t1:.1f}s, memory {t3 - t2:.1f}s")
        del type2_paths, type3_paths
        gc.collect()

        if not args.skip_kernel:
            if os.geteuid() != 0:
                out("kernel part skipped: needs root (network namespaces)")
            else:
                for n in args.kernel_sizes:
                    t0 = time.perf_counter()
                    kernel_res[n] = bench_kernel(n, tmp)
                    out(f"N={n}: kernel done in {time.perf_counter() - t0:.1f}s")

    base = sizes[0]
    table("1. decode_paths (N Type-2 + N/20 Type-3 paths) vs protobuf floor (unpack every Any by type_url, build nothing)",
          ["N", "paths", "seconds", "paths/s", "us/path", "floor paths/s", "decode/floor x"],
          [[str(n), str(r["paths"]), f"{r['secs']:.2f}", num(r["rate"]), f"{1e6 / r['rate']:.1f}", num(r["floor_rate"]),
            num(r["ratio"])] for n, r in decode_res.items()])
    table(f"2. RibView.apply: load N Type-2 routes in batches of {LOAD_BATCH}; then +1 batch of {UPDATE_BATCH} updates "
          f"({INC_REPS} batches) vs naive recompute-from-scratch",
          ["N", "entries/route", "load routes/s", f"at INFO log (<={SAMPLE // 1000}k)", "+100 upd ms min/med",
           f"min vs N={base}", "naive ms", "speedup x (med)", "touched"],
          [[str(n), f"{r['entries_per_route']:.2f}", num(r["load_rate"]), num(r["load_rate_info"]),
            f"{r['inc_min_ms']:.2f} / {r['inc_ms']:.2f}", f"{r['inc_min_ms'] / apply_res[base]['inc_min_ms']:.2f}",
            num(r["naive_ms"]), num(r["speedup"]), f"{r['touched']:.0f}"]
           for n, r in apply_res.items()])
    table("2b. O(N) work after each batch that changes something (ms) vs the +100 batch itself",
          ["N", "apply +100", "ledger +100", "status views+json", "full-sync plan", "save+status / apply"],
          [[str(n), f"{r['inc_ms']:.3f}", num(r["ledger_save_ms"]), num(r["status_ms"]), num(r["plan_full_ms"]),
            num((r["ledger_save_ms"] + r["status_ms"]) / r["inc_ms"])] for n, r in apply_res.items()])
    table(f"3. memory (tracemalloc), RibView holding N routes vs the naive reference's dict route-key -> route (<={SAMPLE // 1000}k); "
          "the reconciler's owned set of the 2N entries; RSS of a fresh process holding both",
          ["N", "RibView B/route", "peak B/route", "total MiB", "naive dict B/route", "ratio", "RSS grown B/route"],
          [[str(n), num(r["bytes"]), num(r["peak"]), num(r["total_mb"]), num(r["naive_bytes"]), f"{r['ratio']:.2f}",
            num(r["rss_bytes"])] for n, r in mem_res.items()])
    table("3b. the owned set (B/route, 2 entries a route): OwnedSet vs a set of entry objects (the reference); "
          "Ledger.load of its snapshot (a restart); RSS of a fresh process whose owned set came from the ledger",
          ["N", "OwnedSet", "(peak)", "set of entries", "set/OwnedSet x", "Ledger.load kept", "(peak)", "load s",
           "RSS grown (ledger) B/route"],
          [[str(n), num(r["owned_bytes"]), num(r["owned_peak"]), num(r["set_bytes"]), f"{r['set_bytes'] / r['owned_bytes']:.1f}",
            num(r["load_bytes"]), num(r["load_peak"]), f"{r['load_secs']:.2f}", num(r["rss_ledger_bytes"])]
           for n, r in mem_res.items()])
    if kernel_res:
        table("4. kernel (namespace bench-k / reference bench-r): N unicast entries (vxlan self + bridge master extern_learn)",
              ["N", "Kernel.add /s", "bridge -batch /s", "ref/agent x", "entries() s", "fdb show s", "dump x",
               "restart s", "(open+ledger s)", "(full_sync s)"],
              [[str(n), num(r["add_rate"]), num(r["ref_rate"]), num(r["add_ratio"]), f"{r['dump_secs']:.3f}",
                f"{r['dump_ref_secs']:.3f}", num(r["dump_ratio"]), f"{r['restart_secs']:.3f}",
                f"{r['restart_open_secs']:.3f}", f"{r['restart_sync_secs']:.3f}"] for n, r in kernel_res.items()])
        biggest_k = max(kernel_res)
        r = kernel_res[biggest_k]
        out(f"\n  extrapolated to 100k entries from N={biggest_k}: Kernel.add {100_000 / r['add_rate']:.0f}s, "
            f"bridge -batch {100_000 / r['ref_rate']:.1f}s, entries() {r['dump_secs'] * 100_000 / biggest_k:.0f}s, "
            f"restart {r['restart_secs'] * 100_000 / biggest_k:.0f}s")
    out(f"\ntotal {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:  # belt and braces: the namespaces this run made go whatever happened
        for leftover in sorted(_created):
            ns_delete(leftover)
