"""`labctl capture`: tcpdump inside a node's namespace, to a pcap file or as a live one-line-per-packet view.

tcpdump writes the pcap (Wireshark decodes VXLAN on UDP 4789 by default); the live view reads tcpdump's
pcap stream (`-w -`) with scapy and prints `capture.summary_line` per packet. Nodes: a hypervisor (default
interface: its uplink), the controller (uplink), the underlay router (`underlay` or `router`; default: all
its interfaces, `any`) or a VM (eth0); `NODE:IF` picks an interface.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import LabError
from .netns import ns
from .plan import UPLINK, VM_IFNAME, LabPlan

ANY = "any"
ROUTER_ALIASES = ("router", "underlay")


@dataclass(frozen=True)
class CapturePoint:
    node: str  # as the user named it
    ns_name: str
    ifname: str

    @property
    def label(self) -> str:
        return f"{self.node}:{self.ifname}"


def parse_target(text: str) -> tuple[str, str | None]:
    """`NODE[:IF]` → (node, interface or None) (pure)."""
    node, sep, ifname = text.partition(":")
    if not node or (sep and not ifname):
        raise LabError(f"capture target {text!r}: expected NODE or NODE:INTERFACE (e.g. evpn-1 or evpn-1:br0)")
    return node, ifname or None


def resolve(plan: LabPlan, text: str) -> CapturePoint:
    """The namespace and interface a `NODE[:IF]` names in this lab (the interface must exist there)."""
    node, ifname = parse_target(text)
    short = node.removeprefix(plan.prefix)
    if short in ROUTER_ALIASES:
        ns_name, default = plan.router_ns, ANY
    elif node in (plan.controller_ns, "controller"):
        ns_name, default = plan.controller_ns, UPLINK
    elif plan.topo.host(node) is not None:
        ns_name, default = node, UPLINK
    elif plan.topo.locate_vm(node) is not None:
        found = plan.topo.locate_vm(node)
        assert found is not None
        ns_name, default = plan.vm_ns(found[1]), VM_IFNAME
    else:
        hosts = ", ".join(h.name for h in plan.topo.hosts)
        raise LabError(f"no node {node!r} in lab {plan.lab} (hypervisors {hosts}, controller, underlay, or a VM name)")
    chosen = ifname or default
    if chosen != ANY:
        names = interfaces(ns_name)
        if chosen not in names:
            raise LabError(f"{node} has no interface {chosen!r} (it has: {', '.join(names)})")
    return CapturePoint(node, ns_name, chosen)


def interfaces(ns_name: str) -> list[str]:
    with ns(ns_name) as ipr:
        return sorted(str(link.get_attr("IFLA_IFNAME")) for link in ipr.get_links())


def tcpdump_argv(point: CapturePoint, out: str, count: int | None, bpf: str | None, live: bool) -> list[str]:
    """The tcpdump command line inside the node's namespace (pure). `-Z root`: tcpdump keeps root to write
    the file where it was asked (it drops to its own user otherwise)."""
    argv = ["ip", "netns", "exec", point.ns_name, "tcpdump", "-n", "-i", point.ifname, "-s", "0", "-Z", "root", "-U", "-w", out]
    if live:
        argv.append("--immediate-mode")
    if count is not None:
        argv += ["-c", str(count)]
    if bpf:
        argv.append(bpf)
    return argv


def check_filter(point: CapturePoint, bpf: str) -> None:
    """Compile the BPF filter for the interface (tcpdump -d): a bad one is a one-line LabError."""
    result = subprocess.run(["ip", "netns", "exec", point.ns_name, "tcpdump", "-d", "-i", point.ifname, bpf],
                            check=False, capture_output=True, text=True, timeout=20)
    if result.returncode != 0:
        lines = [line.removeprefix("tcpdump: ") for line in result.stderr.splitlines() if line.strip()]
        raise LabError(f"--filter {bpf!r}: {lines[-1] if lines else 'not a valid BPF filter'}")


@contextlib.contextmanager
def _stopped_by_signals(proc: subprocess.Popen[bytes]) -> Iterator[list[int]]:
    """While the block runs, SIGINT/SIGTERM end the capture (tcpdump gets SIGINT, flushes, exits) instead of labctl."""
    seen: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        seen.append(signum)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield seen
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _failure(proc: subprocess.Popen[bytes], stderr: bytes) -> LabError:
    lines = [line.removeprefix("tcpdump: ") for line in stderr.decode(errors="replace").splitlines()
             if line.strip() and "listening on" not in line and "packets" not in line]
    return LabError(f"tcpdump failed (exit {proc.returncode}): {lines[-1] if lines else 'no message'}")


def to_file(point: CapturePoint, path: Path, count: int | None, bpf: str | None) -> None:
    """Capture into a pcap file until `count` packets or Ctrl-C."""
    proc = subprocess.Popen(tcpdump_argv(point, str(path), count, bpf, live=False),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    with _stopped_by_signals(proc) as stopped:
        _, stderr = proc.communicate()
    if proc.returncode != 0 and not stopped:
        raise _failure(proc, stderr)


def live(point: CapturePoint, count: int | None, bpf: str | None, emit: Callable[[str], None]) -> int:
    """Print one line per packet (scapy reading tcpdump's pcap stream) until `count` packets or Ctrl-C.
    Returns the number of packets shown."""
    from scapy.error import Scapy_Exception
    from scapy.utils import PcapReader

    from .capture import summary_line

    proc = subprocess.Popen(tcpdump_argv(point, "-", count, bpf, live=True),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    shown = 0
    with _stopped_by_signals(proc) as stopped:
        try:
            for pkt in PcapReader(proc.stdout):
                stamp = time.strftime("%H:%M:%S", time.localtime(float(pkt.time))) + f".{int(float(pkt.time) % 1 * 1e6):06d}"
                emit(f"{stamp} {summary_line(pkt)}")
                shown += 1
        except (EOFError, Scapy_Exception):
            pass  # tcpdump ended before writing a header (nothing captured, or it failed: said below)
        stderr = proc.stderr.read()
        proc.wait()
    if proc.returncode != 0 and not stopped:
        raise _failure(proc, stderr)
    return shown


def pcap_summary(path: Path) -> tuple[int, dict[int, int]]:
    """(packets, {VNI: VXLAN packets}) of a pcap file, read back with scapy."""
    from scapy.layers.vxlan import VXLAN
    from scapy.utils import PcapReader

    total, vnis = 0, {}  # type: int, dict[int, int]
    with PcapReader(str(path)) as reader:
        for pkt in reader:
            total += 1
            if VXLAN in pkt:
                vni = int(pkt[VXLAN].vni)
                vnis[vni] = vnis.get(vni, 0) + 1
    return total, vnis
