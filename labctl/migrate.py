"""Live migration of a VM between hypervisors, and the outage a continuous ping sees meanwhile."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from dataclasses import dataclass

from . import build
from .capture import arp_frame, send_frames
from .errors import LabError
from .lab import Lab
from .topology import Host, Vm

PING_INTERVAL = 0.01
_REPLY_RE = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)")


@dataclass(frozen=True)
class Outage:
    seconds: float  # longest gap between two consecutive echo replies
    sent: int
    received: int


def gratuitous_arp(lab: Lab, vm: Vm) -> None:
    """What a hypervisor makes a VM do after migration: announce its MAC/IP to the segment."""
    send_frames(lab.plan.vm_ns(vm), arp_frame(vm.mac, str(vm.ip), str(vm.ip)))


def move(lab: Lab, vm_name: str, target_name: str) -> tuple[Host, Host, Vm]:
    """Detach the VM's port from its hypervisor, plug it into `target`, and let it announce itself."""
    source, vm = lab.vm(vm_name)
    target = lab.host(target_name)
    if target.name in lab.state.down_hosts:
        raise LabError(f"{target.name} is down")
    if target.name == source.name:
        raise LabError(f"{vm.name} is already on {target.name}")
    network = lab.topo.network(vm.network)
    if network not in lab.plan.host_networks(target):
        raise LabError(f"{target.name} has no bridge for network {network.name}")
    moved = lab.topo.with_vm_moved(vm.name, target.name)
    lab.record("move", vm=vm.name, mac=vm.mac, ip=vm.ip, source=source.name, target=target.name)
    build.unplug_vm(lab.plan, source, vm)  # the VM is paused
    build.plug_vm(lab.plan, target, vm, network)
    lab.adopt(moved)
    gratuitous_arp(lab, vm)
    return source, target, vm


class Pinger:
    """A continuous ping (every 10 ms) from one VM to an address, with timestamps."""

    def __init__(self, lab: Lab, src: Vm, dst_ip: str) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.plan.vm_ns(src), "ping", "-n", "-D", "-i", str(PING_INTERVAL), "-W", "1", dst_ip],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )

    def stop(self) -> Outage:
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=10)
        replies = [(float(m.group(1)), int(m.group(2))) for m in map(_REPLY_RE.match, out.splitlines()) if m]
        sent_match = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        sent = int(sent_match.group(1)) if sent_match else 0
        if len(replies) < 2:
            raise LabError(f"the continuous ping got {len(replies)} replies: no outage can be measured")
        replies.sort()
        gap = max(b[0] - a[0] for a, b in zip(replies, replies[1:]))
        return Outage(seconds=gap, sent=sent, received=len(replies))


def watcher_for(lab: Lab, vm: Vm, exclude: set[str]) -> Vm:
    """A VM of the same network on a hypervisor not involved in the move, to ping from."""
    for host, other in lab.topo.vms():
        if other.network == vm.network and other.name != vm.name and host.name not in exclude and host.name not in lab.state.down_hosts:
            return other
    raise LabError(f"no VM on an uninvolved hypervisor shares {vm.name}'s network to watch the move")


def move_measured(lab: Lab, vm_name: str, target_name: str, settle: float = 1.0) -> tuple[Outage, Host, Host, Vm]:
    source, vm = lab.vm(vm_name)
    watcher = watcher_for(lab, vm, {source.name, target_name})
    pinger = Pinger(lab, watcher, str(vm.ip))
    time.sleep(0.5)
    source, target, vm = move(lab, vm_name, target_name)
    time.sleep(settle + 1.0)
    outage = pinger.stop()
    lab.record("move-measured", vm=vm.name, mac=vm.mac, outage_ms=f"{outage.seconds * 1000:.0f}", replies=f"{outage.received}/{outage.sent}")
    return outage, source, target, vm
