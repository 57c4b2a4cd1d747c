"""Operator tools in real labs: `labctl capture` (a pcap scapy reads back with the right VXLAN, the live
one-line view with VNIs, Ctrl-C, bad input) and `labctl netem` (delay measured by ping, verify passing
under 50 ms and 1 % loss on every host, --clear, the setting surviving kill/revive)."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.utils import rdpcap

from labctl.lab import Lab
from labctl.topology import Vm

from .labkit import LABCTL, labctl, make_topology, run_in, write_topology

CAP_LAB = "itcap"
NETEM_LAB = "itnetem"
# BPF: VXLAN whose inner frame is IPv4 ICMP (UDP header 8 + VXLAN header 8; inner ethertype at +12, IP protocol at +14+9)
INNER_ICMP4 = "udp port 4789 and udp[28:2] = 0x0800 and udp[39] = 1"


def _up(tmp_path: Path, doc: dict) -> Lab:
    topo = write_topology(tmp_path / "lab.yaml", doc)
    result = labctl("up", str(topo))
    assert result.returncode == 0, result.stdout + result.stderr
    return Lab.open(doc["lab"])


def _rtts(lab: Lab, src: str, dst_ip: str, count: int = 10) -> list[float]:
    out = run_in(f"{lab.topo.lab}-{src}", "ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2", dst_ip, check=False).stdout
    return [float(ms) for ms in re.findall(r"time=([\d.]+) ms", out)]


def _started(proc: subprocess.Popen[str]) -> None:
    """Wait until the capture runs (labctl says so on stderr before tcpdump starts; tcpdump needs a moment)."""
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "capturing on" in line, line
    time.sleep(1.5)


def _capture_while_pinging(lab: Lab, capture_args: list[str], src: str, dst_ip: str, pings: int,
                           timeout: float = 20) -> tuple[subprocess.CompletedProcess[str], list[float]]:
    """`labctl capture ...` (ending by its --count) while `src` pings `dst_ip`: its outcome and the RTTs."""
    proc = subprocess.Popen([LABCTL, "capture", *capture_args, "--lab", lab.topo.lab], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _started(proc)
        rtts = _rtts(lab, src, dst_ip, count=pings)
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), rtts


def _learned(lab: Lab, src: str, dst: Vm) -> None:
    """Warm up: `src` pings `dst` until its hypervisor has `dst`'s MAC in its vxlan FDB, so what the test
    then captures is the conversation itself (no ARP, no flooding of a MAC not yet learned)."""
    host = next(h for h in lab.topo.hosts if any(vm.name == src for vm in h.vms))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        _rtts(lab, src, str(dst.ip), count=1)
        if dst.mac in run_in(host.name, "bridge", "fdb", "show", "dynamic", check=False).stdout:
            return
        time.sleep(0.3)
    raise AssertionError(f"{host.name} never learned {dst.name}'s MAC {dst.mac} within 20 s")


def test_capture_writes_a_pcap_with_the_vxlan_of_a_cross_host_ping(tmp_path: Path) -> None:
    lab = _up(tmp_path, make_topology(CAP_LAB, hosts=3, vms_per_host=1))
    h1, h2 = lab.topo.hosts[0], lab.topo.hosts[1]
    a, b = h1.vms[0], h2.vms[0]
    vni = lab.topo.network(a.network).vni
    _learned(lab, a.name, b)
    pcap = tmp_path / "f.pcap"
    done, rtts = _capture_while_pinging(lab, [h1.name, "-w", str(pcap), "--count", "12", "--filter", "udp port 4789"], a.name, str(b.ip), 10)
    out = done.stdout
    assert done.returncode == 0 and len(rtts) == 10, done.stderr
    assert f"wrote 12 packets to {pcap} (12 VXLAN: VNI {vni}: 12)" in out, out
    packets = rdpcap(str(pcap))  # what Wireshark opens: pcap, Ethernet, VXLAN on UDP 4789
    assert len(packets) == 12 and all(isinstance(p, Ether) and VXLAN in p and int(p[VXLAN].vni) == vni for p in packets)
    echoes = [p for p in packets if IP in p[VXLAN].payload]  # (the first ARP and the VMs' IPv6 solicitations are flooded too)
    assert len(echoes) >= 6, [p.summary() for p in packets]
    for pkt in echoes:
        assert {pkt[IP].src, pkt[IP].dst} == {str(h1.vtep), str(h2.vtep)}
        inner = pkt[VXLAN].payload
        assert {inner.src, inner.dst} == {a.mac, b.mac}
        assert ICMP in inner and {inner[IP].src, inner[IP].dst} == {str(a.ip), str(b.ip)}
    assert {int(p[VXLAN].payload[ICMP].type) for p in echoes} == {0, 8}  # requests and replies


def test_live_capture_shows_vnis_stops_on_ctrl_c_and_refuses_bad_input(tmp_path: Path) -> None:
    lab = _up(tmp_path, make_topology(CAP_LAB, hosts=2, vms_per_host=1))
    h1 = lab.topo.hosts[0]
    a, b = h1.vms[0], lab.topo.hosts[1].vms[0]
    proc = subprocess.Popen([LABCTL, "capture", h1.name, "--lab", CAP_LAB], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _started(proc)
        assert len(_rtts(lab, a.name, str(b.ip), count=3)) == 3
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and re.search(r"\d+ packets", err), err
    vxlan_lines = [line for line in out.splitlines() if " VNI 100: " in line]
    assert any(f"{h1.vtep} > " in line and f"{a.mac} > {b.mac}, IP {a.ip} > {b.ip} ICMP echo-request" in line
               for line in vxlan_lines), out
    assert any(f"IP {b.ip} > {a.ip} ICMP echo-reply" in line for line in vxlan_lines), out
    # --count ends a live capture by itself; a VM and an interface can be named
    counted, _ = _capture_while_pinging(lab, [f"{a.name}:eth0", "--count", "2", "--filter", "icmp"], a.name, str(b.ip), 3, timeout=15)
    out = counted.stdout
    assert counted.returncode == 0, counted.stderr
    lines = out.strip().splitlines()
    assert len(lines) == 2 and f"{a.mac} > {b.mac}, IP {a.ip} > {b.ip} ICMP echo-request" in lines[0], out
    # bad input: one line, exit 1
    bad = labctl("capture", h1.name, "--filter", "udp port", "--lab", CAP_LAB, timeout=30)
    assert bad.returncode == 1 and "--filter 'udp port'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    for target, needle in (("nosuch", "no node 'nosuch'"), (f"{h1.name}:eth9", "has no interface 'eth9'")):
        bad = labctl("capture", target, "--count", "1", "--lab", CAP_LAB, timeout=30)
        assert bad.returncode == 1 and needle in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_netem_delay_is_measured_by_ping_and_verify_passes_under_delay_and_loss(tmp_path: Path) -> None:
    doc = make_topology(NETEM_LAB, hosts=3, vms_per_host=2)
    for host in doc["hosts"]:
        host["netem"] = {"delay_ms": 50, "jitter_ms": 5, "loss_pct": 1}
    lab = _up(tmp_path, doc)
    h1, h2, h3 = lab.topo.hosts
    a, b = h1.vms[0], h2.vms[0]
    status = labctl("status", "--lab", NETEM_LAB, "--no-macs")
    assert status.returncode == 0 and f"{h1.name} uplink impaired: delay 50 ms, jitter 5 ms, loss 1%" in status.stdout, status.stdout
    # one-way on each host's egress: a ping across two impaired hosts sees twice the delay
    rtts = _rtts(lab, a.name, str(b.ip))
    assert len(rtts) >= 7 and min(rtts) >= 90 and sum(rtts) / len(rtts) >= 95, rtts
    # on this kernel (no sch_netem) a userspace delay line impairs the uplink: what the host sends is
    # captured on its tap, before the delay (the delay line's sends bypass the uplink's packet taps)
    # (only VXLAN whose inner frame is IPv4 ICMP: a VM's IPv6 solicitations are flooded too, at any time)
    cap, _ = _capture_while_pinging(lab, [f"{h1.name}:nm-uplink", "--count", "2", "--filter", INNER_ICMP4], a.name, str(b.ip), 4)
    assert f"{h1.vtep} > {h2.vtep} VNI 100: {a.mac} > {b.mac}, IP {a.ip} > {b.ip} ICMP echo-request" in cap.stdout, cap.stdout + cap.stderr
    same_host = _rtts(lab, a.name, str(h1.vms[1].ip))
    assert same_host and max(same_host) < 20, same_host  # the bridge, no uplink: not impaired
    result = labctl("verify", "--lab", NETEM_LAB, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VMs across hosts talk over VXLAN" in result.stdout and "0 failed" in result.stdout
    # --clear on both ends: back to a clean link
    for host in (h1, h2):
        cleared = labctl("netem", host.name, "--clear", "--lab", NETEM_LAB)
        assert cleared.returncode == 0 and "uplink clean" in cleared.stdout, cleared.stdout + cleared.stderr
    rtts = _rtts(lab, a.name, str(b.ip))
    assert len(rtts) == 10 and max(rtts) < 20, rtts
    # set at run time on one end only (one-way), kept across kill and revive
    shown = labctl("netem", h1.name, "--delay", "30", "--lab", NETEM_LAB)
    assert shown.returncode == 0 and "delay 30 ms, loss 0%" in shown.stdout, shown.stdout + shown.stderr
    assert labctl("kill", h1.name, "--no-wait", "--lab", NETEM_LAB).returncode == 0
    revived = labctl("revive", h1.name, "--lab", NETEM_LAB)
    assert revived.returncode == 0, revived.stdout + revived.stderr
    rtts = _rtts(lab, a.name, str(b.ip))
    assert len(rtts) == 10 and min(rtts) >= 29 and max(rtts) < 60, rtts
    assert "delay 30 ms" in labctl("netem", h1.name, "--lab", NETEM_LAB).stdout
    # bad values: one line naming the option or field
    bad = labctl("netem", h1.name, "--loss", "120", "--lab", NETEM_LAB)
    assert bad.returncode != 0 and "--loss" in bad.stderr, bad.stderr
    bad = labctl("netem", h1.name, "--jitter", "40", "--lab", NETEM_LAB)
    assert bad.returncode == 1 and "jitter_ms" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert h3.netem is not None
