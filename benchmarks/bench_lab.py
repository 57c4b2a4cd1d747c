#!/usr/bin/env python3
"""Big-lab benchmark: write a `scale:` topology (the lab `labctl gen` makes), then time `labctl up`,
`labctl verify` and `labctl down` through the real CLI, sum the CPU `up` cost (labctl and the helpers it
waited for, and every process of the lab, per role: agents, gobgpd, supervisors, keeper), read the memory
of every process of the lab while it runs, and check that `down` left no namespace and no process behind.
`--profile-up FILE` records `up` with py-spy (collapsed stacks; heavy: its own CPU shows in the figures).

Not a pytest test: run it as root (under the integration lock on a shared machine), read the figures:

    flock /tmp/evpn-integration.lock .venv/bin/python benchmarks/bench_lab.py [--hosts 50 --vms 10 --networks 4]

Prints each command's own output (up's progress and memory line, verify's per-check times) and a
summary; exit code 1 if a step failed or something was left behind. The lab is always brought down.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labctl.memory import lab_pids, read_lab
from labctl.memory import render as render_memory
from labctl.plan import RUN_ROOT, LabPlan
from labctl.topology import load_document, parse_topology
from tests.integration.labkit import lab_namespaces, lab_processes

LABCTL = str(Path(sys.executable).parent / "labctl")


def timed(argv: list[str], timeout: float, wrap: list[str] | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.monotonic()
    result = subprocess.run([*(wrap or []), LABCTL, *argv], capture_output=True, text=True, timeout=timeout, check=False)
    return time.monotonic() - start, result


def children_cpu() -> float:
    """CPU seconds (user + system) of every child this process has waited for so far (labctl and its helpers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_by_role(namespaces: list[str]) -> dict[str, tuple[int, float]]:
    """Role (comm) -> (processes, CPU seconds each has used so far, its waited children included: an agent's nft)."""
    tick = os.sysconf("SC_CLK_TCK")
    roles: dict[str, tuple[int, float]] = {}
    for pid in lab_pids(namespaces):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
        count, total = roles.get(comm, (0, 0.0))
        roles[comm] = (count + 1, total + seconds)
    return roles


def render_cpu(roles: dict[str, tuple[int, float]], labctl: float) -> str:
    parts = [f"{role} {n} x {total / n:.2f} s" for role, (n, total) in sorted(roles.items(), key=lambda r: -r[1][1])]
    total = labctl + sum(t for _, t in roles.values())
    return f"total {total:.1f} s: labctl (and its helpers) {labctl:.1f} s, " + ", ".join(parts)


def show(title: str, result: subprocess.CompletedProcess[str]) -> None:
    print(f"---- {title} (exit {result.returncode})")
    print(result.stdout.rstrip())
    if result.stderr.strip():
        print(result.stderr.rstrip())


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024

    return f"{os.cpu_count()} x {cpu}, {mem:.0f} GiB, Linux {platform.release()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--vms", type=int, default=10)
    parser.add_argument("--networks", type=int, default=4)
    parser.add_argument("--lab", default="benchlab", help="lab name (its namespaces are <lab>-*)")
    parser.add_argument("--profile-up", metavar="FILE", type=Path,
                        help="record `up` with py-spy (collapsed stacks of labctl and every Python process it starts, "
                             "CPU samples only) into FILE; the CPU figures then include py-spy's cost")
    args = parser.parse_args()
    wrap = None
    if args.profile_up:
        wrap = [str(Path(sys.executable).parent / "py-spy"), "record", "--subprocesses", "-r", "25", "-f", "raw", "-o", str(args.profile_up), "--"]

    text = f"lab: {args.lab}\nscale: {{hosts: {args.hosts}, vms: {args.vms}, networks: {args.networks}}}\n"
    topo = parse_topology(load_document(text, "bench"), "bench")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{args.lab}.yaml"
        path.write_text(text)
        failures: list[str] = []
        figures: dict[str, str] = {}
        try:
            before = children_cpu()
            took, result = timed(["up", str(path)], 600, wrap)
            show("labctl up", result)
            figures["up"] = f"{took:.1f} s"
            if result.returncode != 0:
                failures.append("up failed")
                return 1
            figures["cpu of up"] = render_cpu(cpu_by_role(LabPlan(topo).all_namespaces()), children_cpu() - before)
            started = time.monotonic()
            memory = read_lab(LabPlan(topo).all_namespaces())
            figures["memory"] = render_memory(memory, args.hosts) + f" (read in {time.monotonic() - started:.1f} s)"
            took, result = timed(["verify", "--lab", args.lab], 900)
            show("labctl verify", result)
            summary = re.search(r"(\d+) passed, (\d+) failed", result.stdout)
            figures["verify"] = f"{took:.1f} s, " + (f"{summary.group(1)} checks pass, {summary.group(2)} fail" if summary else "no summary")
            sampled = sorted(set(re.findall(r"sampled \d+ of \d+ (?:host pairs|hosts)", result.stdout)))
            figures["sampled"] = "; ".join(sampled) or "nothing (every pair probed)"
            if result.returncode != 0:
                failures.append("verify failed")
        finally:
            took, result = timed(["down", args.lab], 300)
            show("labctl down", result)
            figures["down"] = f"{took:.1f} s"
            left_ns, left_proc = lab_namespaces(args.lab), lab_processes(args.lab)
            figures["left behind"] = f"{len(left_ns)} namespaces, {len(left_proc)} processes, run dir " + \
                ("present" if (RUN_ROOT / args.lab).exists() else "gone")
            if result.returncode != 0 or left_ns or left_proc:
                failures.append("down left something behind")
            print(f"==== {args.hosts} hosts x {args.vms} VMs, {args.networks} networks on {machine()}")
            for key, value in figures.items():
                print(f"{key:12} {value}")
            if failures:
                print("FAILED: " + ", ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
