#!/usr/bin/env python3
"""Benchmark of agent.netlink_bulk against pyroute2 per-entry calls and iproute2's -batch mode.

Not a pytest test: run it (as root), read the figures. In a throwaway namespace bnlb-<pid> (removed
at the end, also on error or Ctrl-C) with bridge br0 and vxlan100 (dstport 4789, local 10.0.0.1,
nolearning), for each kind of entry and each size N:

    vxlan   N unicast entries of the vxlan device: MAC -> VTEP ("self")
    bridge  N bridge entries: MAC behind the vxlan port ("master extern_learn")
    neigh   N neighbour entries on br0: IPv4 -> MAC ("nud noarp extern_learn")

it measures add, dump (read back only those entries' device) and delete with

    bulk           NetlinkBulk.apply / dump_fdb / dump_neigh (an ACK per request)
    bulk-acklast   the same with ack_all=False (an ACK per batch, errors still reported)
    pyroute2       IPRoute.fdb / IPRoute.neigh per entry, as agent.kernel does (only N <= --pyroute2-max)
    iproute2       `bridge -batch` (vxlan, bridge) / `ip -batch` (neigh), the same entries; dumps with
                   `bridge fdb show dev vxlan100` / `ip neigh show dev br0` -- the reference

Each method starts from freshly made devices; after each add the entries are counted through a
dump, so a method that silently did less is caught. Prints entries/s and the ratio to iproute2.

Usage:  flock /tmp/evpn-integration.lock .venv/bin/python benchmarks/bench_netlink.py
            [--sizes 10000,100000] [--kinds vxlan,bridge,neigh] [--pyroute2-max 10000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyroute2 import IPRoute
from pyroute2 import netns as pyroute2_netns
from pyroute2.netlink.rtnl.ndmsg import (
    NTF_EXT_LEARNED,
    NTF_MASTER,
    NTF_SELF,
    NUD_NOARP,
    NUD_PERMANENT,
)

from agent.netlink_bulk import NeighRecord, NetlinkBulk, Op, Request

KINDS = ("vxlan", "bridge", "neigh")
METHODS = ("bulk", "bulk-acklast", "pyroute2", "iproute2")


@dataclass(slots=True)
class Row:
    kind: str
    size: int
    op: str
    method: str
    seconds: float
    count: int

    @property
    def rate(self) -> float:
        return self.size / self.seconds if self.seconds > 0 else float("inf")


class Namespace:
    def __init__(self, name: str) -> None:
        self.name = name
        self.bridge = 0
        self.vxlan = 0

    def ip(self, *args: str) -> str:
        result = subprocess.run(["ip", "-n", self.name, *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"ip -n {self.name} {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def exec(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(["ip", "netns", "exec", self.name, *args], capture_output=True, text=True, input=stdin, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip()[:500]}")
        return result.stdout

    def fresh_devices(self) -> None:
        """br0 + vxlan100, made again (a clean FDB and neighbour table for every method)."""
        links = {link["ifname"] for link in json.loads(self.ip("-j", "link", "show"))}
        for name in ("vxlan100", "br0"):
            if name in links:
                self.ip("link", "del", name)
        self.ip("link", "add", "br0", "type", "bridge")
        self.ip("link", "add", "vxlan100", "type", "vxlan", "id", "100", "dstport", "4789", "local", "10.0.0.1",
                "nolearning")
        self.ip("link", "set", "vxlan100", "master", "br0")
        self.ip("link", "set", "br0", "up")
        self.ip("link", "set", "vxlan100", "up")
        index = {link["ifname"]: link["ifindex"] for link in json.loads(self.ip("-j", "link", "show"))}
        self.bridge, self.vxlan = index["br0"], index["vxlan100"]


def mac(i: int) -> str:
    return f"02:42:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}:01"


def ip4(i: int, first: int) -> str:
    return f"{first}.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


def requests(kind: str, size: int, ns: Namespace, op: Op) -> list[Request]:
    if kind == "vxlan":
        return [Request.vxlan(op, ns.vxlan, mac(i), ip4(i, 10)) for i in range(size)]
    if kind == "bridge":
        return [Request.bridge(op, ns.vxlan, mac(i)) for i in range(size)]
    return [Request.neigh(op, ns.bridge, ip4(i, 172), mac(i)) for i in range(size)]


def batch_lines(kind: str, size: int, op: Op) -> str:
    add = op is not Op.DEL
    if kind == "vxlan":
        verb = "fdb replace" if add else "fdb del"
        tail = " self permanent" if add else " self"
        return "".join(f"{verb} {mac(i)} dev vxlan100 dst {ip4(i, 10)}{tail}\n" for i in range(size))
    if kind == "bridge":
        if add:
            return "".join(f"fdb replace {mac(i)} dev vxlan100 master extern_learn\n" for i in range(size))
        return "".join(f"fdb del {mac(i)} dev vxlan100 master\n" for i in range(size))
    if add:
        return "".join(f"neigh replace {ip4(i, 172)} lladdr {mac(i)} dev br0 nud noarp extern_learn\n"
                       for i in range(size))
    return "".join(f"neigh del {ip4(i, 172)} lladdr {mac(i)} dev br0\n" for i in range(size))


def ours(kind: str, records: list[NeighRecord]) -> int:
    """How many of the dumped records are entries of this benchmark's kind."""
    if kind == "vxlan":
        return sum(1 for r in records if r.flags & NTF_SELF and r.dst is not None and r.mac and r.mac.startswith("02:42"))
    return sum(1 for r in records if r.flags & NTF_EXT_LEARNED and r.mac and r.mac.startswith("02:42"))


def count_entries(kind: str, ns: Namespace) -> int:
    with NetlinkBulk(netns=ns.name) as bulk:
        if kind == "neigh":
            return ours(kind, bulk.dump_neigh(ifindex=ns.bridge))
        return ours(kind, bulk.dump_fdb(ns.vxlan))


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    count = fn()
    return time.perf_counter() - started, count


# ---------------------------------------------------------------- the methods


def run_bulk(kind: str, size: int, ns: Namespace, batch: int, ack_all: bool) -> dict[str, tuple[float, int]]:
    out: dict[str, tuple[float, int]] = {}
    adds, dels = requests(kind, size, ns, Op.ADD), requests(kind, size, ns, Op.DEL)
    with NetlinkBulk(netns=ns.name, batch_size=batch, ack_all=ack_all) as bulk:
        def apply(reqs: list[Request]) -> int:
            results = bulk.apply(reqs)
            failed = [r for r in results if not r.ok]
            if failed:
                raise RuntimeError(f"{len(failed)} failed, first: {failed[0]}")
            return len(results)

        def dump() -> int:
            if kind == "neigh":
                return ours(kind, bulk.dump_neigh(ifindex=ns.bridge))
            return ours(kind, bulk.dump_fdb(ns.vxlan))

        out["add"] = timed(lambda: apply(adds))
        out["dump"] = timed(dump)
        out["delete"] = timed(lambda: apply(dels))
    return out


def run_pyroute2(kind: str, size: int, ns: Namespace) -> dict[str, tuple[float, int]]:
    out: dict[str, tuple[float, int]] = {}
    pyroute2_netns.pushns(ns.name)
    try:
        ipr = IPRoute()
    finally:
        pyroute2_netns.popns()
    try:
        def add() -> int:
            for i in range(size):  # the calls of agent.kernel.Kernel.add
                if kind == "vxlan":
                    ipr.fdb("replace", ifindex=ns.vxlan, lladdr=mac(i), dst=ip4(i, 10), flags=NTF_SELF, state=NUD_PERMANENT)
                elif kind == "bridge":
                    ipr.fdb("replace", ifindex=ns.vxlan, lladdr=mac(i), flags=NTF_MASTER | NTF_EXT_LEARNED, state=NUD_NOARP)
                else:
                    ipr.neigh("add", dst=ip4(i, 172), lladdr=mac(i), ifindex=ns.bridge, state=NUD_NOARP,
                              flags=NTF_EXT_LEARNED, family=2)
            return size

        def dump() -> int:  # as agent.kernel.Kernel.entries
            found = 0
            if kind == "neigh":
                for msg in ipr.neigh("dump", ifindex=ns.bridge):
                    if msg.get("ifindex") == ns.bridge and msg.get_attr("NDA_DST") and msg.get_attr("NDA_LLADDR"):
                        found += msg.get("flags") & NTF_EXT_LEARNED != 0
                return found
            for msg in ipr.fdb("dump", ifindex=ns.vxlan):
                if msg.get("ifindex") != ns.vxlan or not msg.get_attr("NDA_LLADDR"):
                    continue
                if kind == "vxlan":
                    found += msg.get_attr("NDA_DST") is not None and msg.get("flags") & NTF_SELF != 0
                else:
                    found += msg.get("flags") & NTF_EXT_LEARNED != 0
            return found

        def delete() -> int:
            for i in range(size):  # the calls of agent.kernel.Kernel.delete
                if kind == "vxlan":
                    ipr.fdb("del", ifindex=ns.vxlan, lladdr=mac(i), dst=ip4(i, 10), flags=NTF_SELF)
                elif kind == "bridge":
                    ipr.fdb("del", ifindex=ns.vxlan, lladdr=mac(i), flags=NTF_MASTER)
                else:
                    ipr.neigh("del", dst=ip4(i, 172), lladdr=mac(i), ifindex=ns.bridge, family=2)
            return size

        out["add"] = timed(add)
        out["dump"] = timed(dump)
        out["delete"] = timed(delete)
    finally:
        ipr.close()
    return out


def run_iproute2(kind: str, size: int, ns: Namespace) -> dict[str, tuple[float, int]]:
    out: dict[str, tuple[float, int]] = {}
    tool = "ip" if kind == "neigh" else "bridge"
    with tempfile.TemporaryDirectory() as tmp:
        add_file, del_file = Path(tmp) / "add", Path(tmp) / "del"
        add_file.write_text(batch_lines(kind, size, Op.ADD))
        del_file.write_text(batch_lines(kind, size, Op.DEL))

        def dump() -> int:
            if kind == "neigh":
                text = ns.exec("ip", "-4", "neigh", "show", "dev", "br0")
                return sum(1 for line in text.splitlines() if "extern_learn" in line)
            text = ns.exec("bridge", "fdb", "show", "dev", "vxlan100")
            if kind == "vxlan":
                return sum(1 for line in text.splitlines() if line.startswith("02:42") and " dst " in line)
            return sum(1 for line in text.splitlines() if line.startswith("02:42") and "extern_learn" in line)

        out["add"] = timed(lambda: (ns.exec(tool, "-batch", str(add_file)), size)[1])
        out["dump"] = timed(dump)
        out["delete"] = timed(lambda: (ns.exec(tool, "-batch", str(del_file)), size)[1])
    return out


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--pyroute2-max", type=int, default=None,
                        help="largest N for pyroute2 (default: the smallest size)")
    parser.add_argument("--batch", type=int, default=1000, help="requests per send() of the bulk path")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    kinds = [k for k in args.kinds.split(",") if k]
    methods = [m for m in args.methods.split(",") if m]
    pyroute2_max = min(sizes) if args.pyroute2_max is None else args.pyroute2_max
    for k in kinds:
        if k not in KINDS:
            parser.error(f"unknown kind {k}")
    for m in methods:
        if m not in METHODS:
            parser.error(f"unknown method {m}")

    ns = Namespace(f"bnlb-{os.getpid()}")
    subprocess.run(["ip", "netns", "add", ns.name], check=True)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rows: list[Row] = []
    try:
        for kind in kinds:
            for size in sizes:
                for method in methods:
                    if method == "pyroute2" and size > pyroute2_max:
                        continue
                    ns.fresh_devices()
                    if method == "bulk":
                        measured = run_bulk(kind, size, ns, args.batch, True)
                    elif method == "bulk-acklast":
                        measured = run_bulk(kind, size, ns, args.batch, False)
                    elif method == "pyroute2":
                        measured = run_pyroute2(kind, size, ns)
                    else:
                        measured = run_iproute2(kind, size, ns)
                    for op in ("add", "dump", "delete"):
                        seconds, count = measured[op]
                        if op == "dump" and count != size:
                            raise RuntimeError(f"{method} {kind} N={size}: dump found {count} entries, expected {size}")
                        rows.append(Row(kind, size, op, method, seconds, count))
                    left = count_entries(kind, ns)
                    if left:
                        raise RuntimeError(f"{method} {kind} N={size}: {left} entries left after delete")
                    print(f"  done {kind:6} N={size:<7} {method:12} " + "  ".join(
                        f"{op} {measured[op][0]:.2f}s" for op in ("add", "dump", "delete")), file=sys.stderr, flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, check=False)

    reference = {(r.kind, r.size, r.op): r.rate for r in rows if r.method == "iproute2"}
    print()
    print(f"{'kind':7} {'N':>7} {'op':7} {'method':13} {'seconds':>8} {'entries/s':>11} {'vs iproute2':>11}")
    for r in rows:
        ref = reference.get((r.kind, r.size, r.op))
        ratio = f"{r.rate / ref:10.2f}x" if ref else f"{'-':>11}"
        print(f"{r.kind:7} {r.size:7d} {r.op:7} {r.method:13} {r.seconds:8.3f} {r.rate:11.0f} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
