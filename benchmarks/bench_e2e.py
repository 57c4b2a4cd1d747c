#!/usr/bin/env python3
"""End-to-end scale benchmark: N remote MACs through a live lab, our agent against FRR in the same run.

Not a pytest test: run it as root under the integration lock, read the figures.

It brings up lab `bench` (topologies/mixed.yaml renamed: bench-1 and bench-2 run gobgpd + evpn-agent,
bench-3 runs FRR; network blue widened to 172.16.0.0/14 so 100k VM addresses fit), and for each N of
`--sizes`:

1. inject    N Type-2 MAC/IP routes of a made-up VTEP 10.0.0.200 (VNI 100, no Type-3) at the
             controller's gobgpd with AddPathStream (tests/integration/scalekit.py); on bench-1 (agent)
             and bench-3 (FRR): seconds until all N vxlan FDB entries and all N neighbour entries are in
             the kernel (a netlink monitor in each namespace says when changes stop, a dump of the
             tables confirms), CPU seconds spent meanwhile (/proc/<pid>/stat: agent, agent + its
             gobgpd, zebra + bgpd), peak RSS (VmHWM).
2. cold      the agent on bench-1 is stopped (SIGSTOP), every entry it made and its ledger are removed,
             then it is killed and its supervisor starts it afresh with the N routes already in its
             gobgpd: seconds from the kill until the kernel holds all N again (Python start-up, table
             read and decode, programming), CPU of the new agent meanwhile.
   restart   the agent on bench-1 is stopped and started again with N programmed: seconds until its
             status file says ready (the RIB loaded and compared with the agent's ledger), until the
             kernel is verified (read and compared, right after), and until stale removal is settled;
             RTM_NEWNEIGH / RTM_DELNEIGH notifications in bench-1 meanwhile, until 2 s after settling
             (a restart that rewrites nothing shows 0).
3. withdraw  the N routes withdrawn at the controller: seconds until none is left in either kernel, CPU.
4. kernel    in a scratch namespace bnche-<pid>: agent.kernel.Kernel.add_many for the same N entries
             (vxlan "self" + bridge "master extern_learn" + neighbour) against iproute2
             `bridge -batch` + `ip -batch` adding them.

Ratios are against the FRR host (or iproute2) of the same run. The lab is torn down at the end, also on
error or Ctrl-C (SIGINT/SIGTERM).

Usage:  flock /tmp/evpn-integration.lock .venv/bin/python benchmarks/bench_e2e.py [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yaml

from agent.entries import FdbEntry, KernelEntry, NeighEntry
from agent.kernel import Kernel
from agent.ledger import Ledger
from labctl.lab import Lab
from labctl.supervise import HEALTHY_AFTER
from tests.integration.scalekit import (
    FakeVtep,
    KernelCount,
    NeighMonitor,
    count_kernel,
    daemon_pids,
    inject,
    proc_usage,
    restart_agent,
    withdraw,
)

DEFAULT_LAB = "bench"
LABCTL = str(Path(sys.executable).parent / "labctl")
SUBNET = "172.16.0.0/14"
SUBNET_NET = ipaddress.ip_network(SUBNET)
FAKE_VTEP = ipaddress.IPv4Address("10.0.0.200")
FIRST_IP = ipaddress.IPv4Address("172.17.0.0")
VNI, VXLAN, BRIDGE = 100, "vxlan100", "br0"
MAX_SIZE = 200_000
IDLE_SAMPLE = 3.0  # seconds of idle CPU measured before each size


def out(text: str = "") -> None:
    print(text, flush=True)


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    mem = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0)
    return f"{os.cpu_count()} cores ({model}), {mem // 1024} GiB, Linux {platform.release()}"


def hosts(lab: str) -> tuple[str, str]:
    """The agent host and the FRR host of lab `lab`."""
    return f"{lab}-1", f"{lab}-3"


def topology_document(lab: str) -> dict[str, object]:
    """topologies/mixed.yaml as lab `lab`, network blue widened to SUBNET (VM addresses moved into it)."""
    doc = yaml.safe_load((REPO / "topologies" / "mixed.yaml").read_text())
    old = doc["lab"]
    doc["lab"] = lab
    doc["networks"][0]["subnet"] = SUBNET
    for host in doc["hosts"]:
        host["name"] = host["name"].replace(f"{old}-", f"{lab}-", 1)
        for vm in host["vms"]:
            vm["ip"] = "172.16.0." + vm["ip"].rsplit(".", 1)[1]
    return doc


def labctl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LABCTL, *args], check=False, capture_output=True, text=True, timeout=timeout)


# -- phases ------------------------------------------------------------------------------------


@dataclass
class Side:
    """One hypervisor measured: its namespace and its daemons (found in the namespace, so a supervisor
    or wrapper between labctl and the daemon does not matter)."""

    name: str
    host: str
    pids: dict[str, int] = field(default_factory=dict)  # role -> pid

    def __post_init__(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        self.pids = daemon_pids(self.host)

    def usage(self, roles: tuple[str, ...]) -> tuple[float, int]:
        u = proc_usage([self.pids[r] for r in roles if r in self.pids])
        return u.cpu_seconds, u.peak_rss_kib


def vm_rss(pid: int) -> int:
    """Resident set size of `pid` now, KiB (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)


def wait_kernel(sides: list[Side], monitors: dict[str, NeighMonitor], want: int, since: float,
                timeout: float) -> dict[str, tuple[float | None, KernelCount]]:
    """Per side: seconds from `since` until its kernel holds `want` vxlan entries and `want` neighbour
    entries of the fake VTEP (None: not within `timeout`; the time is that of the last netlink
    notification), and the last count. A dump runs only when that namespace's notifications have
    paused for 0.5 s (so polling costs little CPU while the daemons work)."""
    done: dict[str, float | None] = {s.name: None for s in sides}
    counts: dict[str, KernelCount] = {}
    deadline = since + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        for side in sides:
            if done[side.name] is not None:
                continue
            monitor = monitors[side.name]
            if time.monotonic() - max(monitor.last, since) < 0.5:
                continue  # still changing
            counts[side.name] = count = count_kernel(side.host, VXLAN, BRIDGE, str(FAKE_VTEP))
            if count.vxlan == want and count.neigh == want:
                done[side.name] = max((monitor.last or since) - since, 0.0)
        if all(v is not None for v in done.values()):
            break
    for side in sides:
        counts.setdefault(side.name, count_kernel(side.host, VXLAN, BRIDGE, str(FAKE_VTEP)))
    return {name: (done[name], counts[name]) for name in done}


def run_size(lab: Lab, size: int, timeout: float, quick: bool = False) -> dict[str, object]:
    agent_host, frr_host = hosts(lab.topo.lab)
    routes = FakeVtep(FAKE_VTEP, VNI, f"{lab.topo.controller.asn}:{VNI}", FIRST_IP, size)
    address = f"unix://{lab.plan.files(lab.plan.controller_ns).gobgpd_socket}"
    agent = Side("agent", agent_host)
    frr = Side("frr", frr_host)
    sides = [agent, frr]
    roles = {"agent": ("agent",), "agent+gobgpd": ("agent", "gobgpd"), "zebra+bgpd": ("zebra", "bgpd")}
    result: dict[str, object] = {"size": size}

    def cpu() -> dict[str, float]:
        return {"agent": agent.usage(roles["agent"])[0], "agent+gobgpd": agent.usage(roles["agent+gobgpd"])[0],
                "zebra+bgpd": frr.usage(roles["zebra+bgpd"])[0]}

    result["rss_before_kib"] = {"agent": vm_rss(agent.pids["agent"]), "zebra+bgpd": sum(vm_rss(frr.pids[r]) for r in ("zebra", "bgpd"))}
    before = cpu()
    time.sleep(IDLE_SAMPLE)  # what the daemons spend doing nothing, for comparison
    after = cpu()
    result["idle_cpu"] = {k: (after[k] - before[k]) / IDLE_SAMPLE for k in before}
    with NeighMonitor(agent_host) as m1, NeighMonitor(frr_host) as m3:
        monitors = {"agent": m1, "frr": m3}
        before = cpu()
        start = time.monotonic()
        inject(address, routes)
        result["inject_s"] = time.monotonic() - start
        result["add"] = wait_kernel(sides, monitors, size, start, timeout)
        after = cpu()
    result["add_cpu"] = {k: after[k] - before[k] for k in before}
    result["rss_kib"] = {"agent": agent.usage(("agent",))[1], "agent+gobgpd": agent.usage(roles["agent+gobgpd"])[1],
                         "zebra+bgpd": frr.usage(roles["zebra+bgpd"])[1],
                         "controller gobgpd": proc_usage([daemon_pids(lab.plan.controller_ns)["gobgpd"]]).peak_rss_kib}
    result["rss_after_kib"] = {"agent": vm_rss(agent.pids["agent"]), "zebra+bgpd": sum(vm_rss(frr.pids[r]) for r in ("zebra", "bgpd"))}
    for name, (seconds, count) in result["add"].items():  # type: ignore[attr-defined]
        out(f"  N={size}: {name} kernel {'complete' if seconds is not None else f'INCOMPLETE after {timeout:.0f}s'}: "
            f"{count.vxlan} vxlan, {count.bridge} bridge, {count.neigh} neighbour entries")

    out(f"  N={size}: cold start of the agent on {agent_host}")
    result["cold"] = cold_start(lab, agent_host, size, timeout)
    # a restart of a healthy agent: the supervisor delays restarting one that lived under HEALTHY_AFTER s
    # (a crash loop's backoff), which would be counted in the restart's time
    time.sleep(HEALTHY_AFTER)
    out(f"  N={size}: restarting the agent on {agent_host}")
    restart = restart_agent(lab, agent_host)
    result["restart"] = {"ready": restart.ready, "verified": restart.verified, "settled": restart.settled, "new": restart.new, "deleted": restart.deleted,
                         "injected": restart.injected, "overruns": restart.overruns, "owned": restart.owned,
                         "others": list(restart.others)}
    result["synced"] = synced_lines(lab, agent_host)
    agent.refresh()  # the restarted agent
    if quick:
        return result

    with NeighMonitor(agent_host) as m1, NeighMonitor(frr_host) as m3:
        monitors = {"agent": m1, "frr": m3}
        before = cpu()
        start = time.monotonic()
        withdraw(address, routes)
        result["withdraw_s"] = time.monotonic() - start
        result["remove"] = wait_kernel(sides, monitors, 0, start, timeout)
        after = cpu()
    result["remove_cpu"] = {k: after[k] - before[k] for k in before}
    return result


def synced_lines(lab: Lab, host: str) -> list[str]:
    """The agent's `event=synced` log lines (its phases: seconds_table= seconds_rib= seconds_kernel=)."""
    path = lab.plan.files(host).agent_log
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line.split("event=synced ", 1)[1] for line in lines if "event=synced " in line]


def cold_start(lab: Lab, host: str, size: int, timeout: float) -> dict[str, float | None]:
    """Kill the agent of `host` after removing its entries and its ledger; seconds until its replacement
    (started by the supervisor) has all `size` MACs in the kernel again (its last netlink write of one
    of them, seen by a monitor socket, once a dump confirms all N), and that agent's CPU seconds."""
    old = daemon_pids(host)["agent"]
    files = lab.plan.files(host)
    os.kill(old, signal.SIGSTOP)
    try:
        with Kernel(netns=host) as kernel:
            # every entry the agent made (its ledger says which: the lab's other hosts' too, else the new
            # agent would take them for someone else's, and its restarts would read the kernel for them)
            made = set(Ledger(files.agent_state).load())
            ours = [e for e in kernel.entries([VXLAN], [BRIDGE]) if str(getattr(e, "vtep", "")) == str(FAKE_VTEP)
                    or (isinstance(e, NeighEntry) and e.ip in SUBNET_NET) or e in made]
            failed = [o for o in kernel.delete_many(ours) if o is not True]
        if failed:
            raise RuntimeError(f"cold start: {len(failed)} entries not removed, first: {failed[0]}")
        for path in (files.agent_state, files.agent_state.with_name(files.agent_state.name + ".journal")):
            path.unlink(missing_ok=True)
        if count_kernel(host, VXLAN, BRIDGE, str(FAKE_VTEP)) != KernelCount(0, 0, 0):
            raise RuntimeError("cold start: entries left in the kernel after removal")
        monitor = NeighMonitor(host).__enter__()  # from here on: the new agent's writes
    finally:
        os.kill(old, signal.SIGKILL)
        os.kill(old, signal.SIGCONT)
    start = time.monotonic()
    try:
        new = 0
        while not new and time.monotonic() - start < timeout:
            time.sleep(0.05)
            if (pid := daemon_pids(host).get("agent", 0)) != old:
                new = pid
        # the time of the agent's last write of an injected MAC once the kernel holds all N (sampled
        # every 50 ms; the tables are dumped only when those writes pause: a dump of 100k FDB entries
        # costs the kernel seconds and would slow the agent; other neighbour changes, such as the
        # VMs' ARP entries ageing, are not the agent's work and do not count)
        complete = None
        seen, changed = 0, start
        while time.monotonic() - start < timeout:
            time.sleep(0.05)
            now = time.monotonic()
            if monitor.injected != seen:
                seen, changed = monitor.injected, now
                continue
            if seen and now - changed >= 0.5:
                count = count_kernel(host, VXLAN, BRIDGE, str(FAKE_VTEP))
                if count.vxlan == size and count.neigh == size:
                    complete = changed - start
                    break
                changed = now  # not there yet: look again after the next pause
    finally:
        monitor.__exit__(None, None, None)
    if not new:
        raise RuntimeError(f"cold start: no agent running on {host} after the kill")
    wait_ready(lab, host, old, timeout)
    return {"complete": complete, "cpu": proc_usage([new]).cpu_seconds}


def wait_ready(lab: Lab, host: str, old: int, timeout: float) -> None:
    node = lab.node(host)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = node.agent_status()  # type: ignore[attr-defined]
        if status.get("pid") not in (None, old) and status.get("ready") and status.get("stale_pending") is False:
            return
        time.sleep(0.1)
    raise RuntimeError(f"agent on {host} not ready {timeout:.0f}s after a cold start")


# -- Kernel.add_many against iproute2 -------------------------------------------------------------------


def scratch_namespace(name: str) -> None:
    for argv in (["ip", "netns", "add", name],
                 ["ip", "-n", name, "link", "add", "br0", "type", "bridge"],
                 ["ip", "-n", name, "link", "add", "vxlan100", "type", "vxlan", "id", "100", "dstport", "4789",
                  "local", "10.0.0.1", "nolearning"],
                 ["ip", "-n", name, "link", "set", "vxlan100", "master", "br0"],
                 ["ip", "-n", name, "link", "set", "br0", "up"],
                 ["ip", "-n", name, "link", "set", "vxlan100", "up"]):
        subprocess.run(argv, check=True, capture_output=True)


def kernel_rates(size: int) -> dict[str, float]:
    """Seconds to add, then to remove, N MAC entries (vxlan self + bridge master + neighbour) with
    Kernel.add_many / delete_many and with iproute2's `bridge -batch` + `ip -batch`."""
    routes = FakeVtep(FAKE_VTEP, VNI, "65000:100", FIRST_IP, size)
    entries: list[KernelEntry] = []
    for i in range(size):
        entries.append(FdbEntry(VXLAN, routes.mac(i), FAKE_VTEP))
        entries.append(NeighEntry(BRIDGE, routes.ip(i), routes.mac(i)))
    seconds: dict[str, float] = {}
    for method in ("add_many", "iproute2"):
        name = f"bnche-{os.getpid()}"
        scratch_namespace(name)
        try:
            if method == "add_many":
                with Kernel(netns=name) as kernel:
                    start = time.perf_counter()
                    outcomes = kernel.add_many(entries)
                    seconds[method] = time.perf_counter() - start
                    check_count(name, method, size)
                    start = time.perf_counter()
                    outcomes += kernel.delete_many(entries)
                    seconds[method + " del"] = time.perf_counter() - start
                failed = [o for o in outcomes if o is not True]
                if failed:
                    raise RuntimeError(f"Kernel.add_many/delete_many: {len(failed)} entries not done, first: {failed[0]}")
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    for verb, key in (("replace", method), ("del", method + " del")):
                        fdb, neigh = Path(tmp) / f"fdb-{verb}", Path(tmp) / f"neigh-{verb}"
                        extra = " permanent" if verb == "replace" else ""
                        fdb.write_text("".join(f"fdb {verb} {routes.mac(i)} dev vxlan100 dst {FAKE_VTEP} self{extra}\n"
                                               f"fdb {verb} {routes.mac(i)} dev vxlan100 master"
                                               f"{' extern_learn' if verb == 'replace' else ''}\n" for i in range(size)))
                        neigh.write_text("".join(f"neigh replace {routes.ip(i)} lladdr {routes.mac(i)} dev br0 nud noarp extern_learn\n"
                                                 if verb == "replace" else f"neigh del {routes.ip(i)} dev br0\n"
                                                 for i in range(size)))
                        start = time.perf_counter()
                        subprocess.run(["ip", "netns", "exec", name, "bridge", "-batch", str(fdb)], check=True, capture_output=True)
                        subprocess.run(["ip", "netns", "exec", name, "ip", "-batch", str(neigh)], check=True, capture_output=True)
                        seconds[key] = time.perf_counter() - start
                        if verb == "replace":
                            check_count(name, method, size)
            count = count_kernel(name, VXLAN, BRIDGE, str(FAKE_VTEP))
            if (count.vxlan, count.bridge, count.neigh) != (0, 0, 0):
                raise RuntimeError(f"{method}: kernel holds {count} after removal, expected none")
        finally:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    return seconds


def check_count(namespace: str, method: str, size: int) -> None:
    count = count_kernel(namespace, VXLAN, BRIDGE, str(FAKE_VTEP))
    if (count.vxlan, count.bridge, count.neigh) != (size, size, size):
        raise RuntimeError(f"{method}: kernel holds {count}, expected {size} of each")


# -- report -----------------------------------------------------------------------------------------


def fmt(value: float | None, unit: str = "s") -> str:
    return f"{value:.2f}{unit}" if value is not None else "timeout"


def ratio(ours: float | None, ref: float | None) -> str:
    if ours is None or ref is None or ref <= 0:
        return "-"
    return f"{ours / ref:.2f}x"


def report(results: list[dict[str, object]], kernel: dict[int, dict[str, float]]) -> None:
    out()
    out("programming N remote MACs (inject at the controller -> kernel), our agent vs FRR on the same lab")
    out(f"{'N':>7} {'phase':9} {'what':18} {'agent':>10} {'FRR':>10} {'agent/FRR':>10}")
    for r in results:
        n = r["size"]
        if "remove" not in r:  # --quick
            a, f = r["add"]["agent"][0], r["add"]["frr"][0]  # type: ignore[index]
            out(f"{n:7d} {'add':9} {'kernel complete':18} {fmt(a):>10} {fmt(f):>10} {ratio(a, f):>10}")
            continue
        for phase, key in (("add", "add"), ("withdraw", "remove")):
            times = r[key]  # type: ignore[index]
            a, f = times["agent"][0], times["frr"][0]  # type: ignore[index]
            out(f"{n:7d} {phase:9} {'kernel complete':18} {fmt(a):>10} {fmt(f):>10} {ratio(a, f):>10}")
            c = r[f"{key}_cpu"]  # type: ignore[index]
            out(f"{n:7d} {phase:9} {'cpu agent':18} {fmt(c['agent']):>10} {fmt(c['zebra+bgpd']):>10} "  # type: ignore[index]
                f"{ratio(c['agent'], c['zebra+bgpd']):>10}")  # type: ignore[index]
            out(f"{n:7d} {phase:9} {'cpu agent+gobgpd':18} {fmt(c['agent+gobgpd']):>10} {fmt(c['zebra+bgpd']):>10} "  # type: ignore[index]
                f"{ratio(c['agent+gobgpd'], c['zebra+bgpd']):>10}")  # type: ignore[index]
        idle = r["idle_cpu"]  # type: ignore[index]
        out(f"{n:7d} {'idle':9} {'cpu agent /s':18} {idle['agent']:9.3f}s {idle['zebra+bgpd']:9.3f}s "  # type: ignore[index]
            f"{'(agent+gobgpd ' + format(idle['agent+gobgpd'], '.3f') + 's)':>10}")  # type: ignore[index]
        rss = r["rss_kib"]  # type: ignore[index]
        out(f"{n:7d} {'peak':9} {'rss agent MiB':18} {rss['agent'] / 1024:9.1f}M {rss['zebra+bgpd'] / 1024:9.1f}M "  # type: ignore[index]
            f"{ratio(rss['agent'], rss['zebra+bgpd']):>10}")  # type: ignore[index]
        out(f"{n:7d} {'peak':9} {'rss +gobgpd MiB':18} {rss['agent+gobgpd'] / 1024:9.1f}M {rss['zebra+bgpd'] / 1024:9.1f}M "  # type: ignore[index]
            f"{ratio(rss['agent+gobgpd'], rss['zebra+bgpd']):>10}")  # type: ignore[index]
        before, after = r["rss_before_kib"], r["rss_after_kib"]  # type: ignore[index]
        out(f"{n:7d} {'rss':9} {'before -> holding N':18} agent {before['agent'] / 1024:.1f} -> {after['agent'] / 1024:.1f} MiB "  # type: ignore[index]
            f"({(after['agent'] - before['agent']) * 1024 / n:.0f} B/route), zebra+bgpd {before['zebra+bgpd'] / 1024:.1f} -> "  # type: ignore[index]
            f"{after['zebra+bgpd'] / 1024:.1f} MiB ({(after['zebra+bgpd'] - before['zebra+bgpd']) * 1024 / n:.0f} B/route)")  # type: ignore[index]
        out(f"{n:7d} {'inject':9} {'controller':18} {r['inject_s']:9.2f}s (AddPathStream; withdraw {r['withdraw_s']:.2f}s; "
            f"controller gobgpd peak RSS {rss['controller gobgpd'] / 1024:.0f} MiB)")  # type: ignore[index]
    out()
    out("agent cold start with N routes in its gobgpd (bench-1: kernel entries and ledger removed, agent killed)")
    out(f"{'N':>7} {'kernel complete':>16} {'cpu of the new agent':>21}")
    for r in results:
        c = r["cold"]  # type: ignore[index]
        out(f"{r['size']:7d} {fmt(c['complete']):>16} {fmt(c['cpu']):>21}")  # type: ignore[index]
    out()
    out("agent restart with N programmed (bench-1)")
    out(f"{'N':>7} {'ready':>8} {'verified':>9} {'settled':>8} {'NEWNEIGH':>9} {'DELNEIGH':>9} {'on injected':>12} {'overruns':>9} {'owned':>8}")
    for r in results:
        s = r["restart"]  # type: ignore[index]
        out(f"{r['size']:7d} {s['ready']:7.2f}s {s['verified']:8.2f}s {s['settled']:7.2f}s {s['new']:9d} {s['deleted']:9d} {s['injected']:12d} {s['overruns']:9d} {s['owned']:8d}")  # type: ignore[index]
        for other in s.get("others", []):  # type: ignore[attr-defined]
            out(f"{'':7} not injected: {other}")
    out()
    out("the agent's own account of its last sessions (cold start, restart): event=synced ...")
    for r in results:
        for line in r.get("synced", [])[-2:]:  # type: ignore[attr-defined]
            out(f"{r['size']:7d} {line}")
    if kernel:
        out()
        out("kernel programming, N MACs = 3N netlink requests (vxlan self + bridge master + neighbour), scratch namespace")
        out(f"{'N':>7} {'op':>4} {'Kernel':>9} {'iproute2':>9} {'Kernel MAC/s':>13} {'iproute2 MAC/s':>15} {'speed vs iproute2':>18}")
        for n, s in kernel.items():
            for op, suffix in (("add", ""), ("del", " del")):
                ours, ref = s["add_many" + suffix], s["iproute2" + suffix]
                out(f"{n:7d} {op:>4} {ours:8.2f}s {ref:8.2f}s {n / ours:13.0f} {n / ref:15.0f} {ref / ours:17.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated N (at most 200000)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for a kernel to follow")
    parser.add_argument("--lab", default=DEFAULT_LAB, help="name of the lab to bring up (and remove)")
    parser.add_argument("--skip-kernel", action="store_true", help="leave out Kernel.add_many vs iproute2")
    parser.add_argument("--quick", action="store_true",
                        help="only inject, cold start and restart (no idle sample, no withdrawal, no Kernel vs iproute2): "
                             "for iterating on start-up; figures for the README come from a full run")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes or any(not 0 < s <= MAX_SIZE for s in sizes):
        parser.error(f"--sizes: each N between 1 and {MAX_SIZE}")
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    out(f"machine: {machine()}")
    gobgp_versions = REPO / ".gobgp" / "versions"
    if gobgp_versions.exists():
        out("gobgpd: " + gobgp_versions.read_text().splitlines()[0])

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, on_term)
    results: list[dict[str, object]] = []
    kernel: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        topo = Path(tmp) / "bench.yaml"
        topo.write_text(yaml.safe_dump(topology_document(args.lab), sort_keys=False))
        try:
            started = time.monotonic()
            up = labctl("up", str(topo))
            if up.returncode != 0:
                raise RuntimeError(f"labctl up failed: {(up.stderr or up.stdout).strip()[-2000:]}")
            agent_host, frr_host = hosts(args.lab)
            out(f"lab {args.lab} up in {time.monotonic() - started:.1f}s ({agent_host}: gobgpd + evpn-agent, {frr_host}: FRR)")
            lab = Lab.open(args.lab)
            for size in sizes:
                out(f"  N={size}: injecting")
                try:
                    results.append(run_size(lab, size, args.timeout, args.quick))
                except Exception as exc:  # noqa: BLE001 - report what was measured, then the failure
                    out(f"  N={size}: FAILED: {exc!r}")
                    break
                report(results[-1:], {})
        finally:
            down = labctl("down", args.lab)
            if down.returncode != 0:
                out(f"labctl down {args.lab} failed: {down.stderr.strip()}")
            signal.signal(signal.SIGTERM, previous)
    if not (args.skip_kernel or args.quick):
        for size in sizes:
            kernel[size] = kernel_rates(size)
    report(results, kernel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
