"""A VM is untrusted tenant code: every attack here is made for real, from a VM's namespace (raw frames,
ip commands) or from the underlay router, against a lab with gobgp+agent hosts and one FRR host.

- VXLAN injection: a VM of green sends VXLAN of blue's VNI to its hypervisor's VTEP and to a remote one;
  no blue VM receives the inner frame (port security, and the host's stack unreachable from tenant bridges)
- the hypervisor's stack: no ARP answer for any host address, no IP delivered to it (both kinds)
- ARP spoofing: a gratuitous ARP claiming another VM's IP is dropped at the port; allowed-address-pairs pass
- MAC flood: 1,500 source MACs from a VM without port security: at most the agent's per-port limit (64)
  become routes, the agent stays ready and still learns a new MAC
- VXLAN source guard: VXLAN from an underlay address that is no VTEP of the RIB is dropped (counted);
  the same packet from a VTEP's address is delivered (the control); a VTEP that leaves is taken out, and
  allowed again (before its flood entry is made) when it comes back
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet

from agent.routes import MacIpRoute
from agent.vxlan_guard import dropped_packets
from labctl import portsec, probes
from labctl.capture import arp_frame, capturing, decode_vxlan, send_frames
from labctl.lab import Lab
from labctl.netns import inside
from labctl.nodes.gobgp_agent import GobgpAgentNode
from labctl.observe import (
    link_mac,
    nft_drops,
    ping,
    read_neighbours,
    read_rib,
    vm_arp,
    wait_until,
)
from labctl.plan import UPLINK, VM_IFNAME

from .labkit import labctl, run_in, write_topology

LAB = "itsec"
H1, H2, H3 = f"{LAB}-1", f"{LAB}-2", f"{LAB}-3"
PAIR_IP, PAIR2_IP, PAIR2_MAC = "192.168.100.50", "192.168.100.51", "02:00:00:00:01:52"


def topology() -> dict:
    def vm(name: str, mac: str, ip: str, net: str, **extra: object) -> dict:
        return {"name": name, "mac": mac, "ip": ip, "network": net, **extra}

    return {
        "lab": LAB,
        "bgp": {"hold_time": 3, "keepalive": 1},
        "controller": {"asn": 65000, "address": "10.0.0.100"},
        "networks": [{"name": "blue", "vni": 100, "subnet": "192.168.100.0/24"},
                     {"name": "green", "vni": 200, "subnet": "192.168.200.0/24"}],
        "hosts": [
            {"name": H1, "asn": 65001, "vtep": "10.0.0.101", "vms": [
                vm("vm1", "02:00:00:00:01:01", "192.168.200.11", "green"),
                vm("vm2", "02:00:00:00:01:02", "192.168.100.12", "blue",
                   allowed_address_pairs=[{"ip": PAIR_IP}, {"ip": PAIR2_IP, "mac": PAIR2_MAC}]),
                vm("vm3", "02:00:00:00:01:03", "192.168.100.13", "blue", port_security=False)]},
            {"name": H2, "asn": 65002, "vtep": "10.0.0.102", "vms": [
                vm("vm4", "02:00:00:00:02:04", "192.168.100.24", "blue"),
                vm("vm5", "02:00:00:00:02:05", "192.168.200.25", "green")]},
            {"name": H3, "kind": "frr", "asn": 65003, "vtep": "10.0.0.103", "vms": [
                vm("vm7", "02:00:00:00:03:07", "192.168.100.37", "blue"),
                vm("vm9", "02:00:00:00:03:09", "192.168.200.39", "green")]},
        ],
    }


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    result = labctl("up", str(write_topology(tmp_path / "itsec.yaml", topology())))
    assert result.returncode == 0, result.stdout + result.stderr
    lab = Lab.open(LAB)
    for host in lab.topo.hosts:  # every VM announces itself once (a booting VM does): Type-2 routes exist
        for vm in host.vms:
            send_frames(lab.plan.vm_ns(vm), arp_frame(vm.mac, str(vm.ip), str(vm.ip)), count=1)
    return lab


def _vm(lab: Lab, name: str):  # type: ignore[no-untyped-def]
    return next(vm for h in lab.topo.hosts for vm in h.vms if vm.name == name)


def _ns(lab: Lab, name: str) -> str:
    return lab.plan.vm_ns(_vm(lab, name))


def _agent(lab: Lab, host: str) -> GobgpAgentNode:
    node = lab.node(host)
    assert isinstance(node, GobgpAgentNode)
    return node


def _bound(lab: Lab, node: str, ip: str) -> set[str]:
    """The MACs the node's RIB binds `ip` to (Type-2 MAC/IP routes)."""
    return {e.route.mac for e in read_rib(lab, node) if isinstance(e.route, MacIpRoute) and str(e.route.ip) == ip}


def test_a_vm_can_neither_reach_its_hypervisor_nor_inject_vxlan(lab: Lab) -> None:
    vm1, vm9 = _vm(lab, "vm1"), _vm(lab, "vm9")
    blue = [lab.plan.vm_ns(_vm(lab, n)) for n in ("vm2", "vm3", "vm4", "vm7")]
    h1_bridge_mac = link_mac(H1, lab.topo.network("green").bridge)

    # the tenant bridges carry no host address, not even an IPv6 link-local one (FRR's bridge has its IPv4 one)
    for host in (H1, H2):
        shown = run_in(host, "ip", "-j", "addr", "show", "dev", lab.topo.network("blue").bridge).stdout
        assert json.loads(shown)[0].get("addr_info", []) == [], shown

    # (c) ARP for every hypervisor address from a VM: no answer, on both kinds; control: ARP for a VM is answered
    targets = {H1: (vm1, ["10.0.0.101", str(lab.plan.uplink(H1).node_ip), "127.0.0.1"]),
               H3: (vm9, ["10.0.0.103", str(lab.plan.uplink(H3).node_ip), lab.plan.bridge_address(lab.topo.network("green")).split("/")[0]])}
    for host, (vm, addresses) in targets.items():
        ns = lab.plan.vm_ns(vm)
        run_in(ns, "ip", "route", "add", "10.0.0.0/8", "dev", VM_IFNAME)  # the attacker makes the VTEPs on-link
        for address in addresses:
            with capturing([(ns, VM_IFNAME)], probes.arp_reply_for(address)) as caps:
                send_frames(ns, arp_frame(vm.mac, str(vm.ip), address), count=3)
            assert caps[ns].packets == [], f"{host} answered ARP for {address} from {vm.name}"
        peer = _vm(lab, "vm5")
        with capturing([(ns, VM_IFNAME)], probes.arp_reply_for(str(peer.ip))) as caps:
            send_frames(ns, arp_frame(vm.mac, str(vm.ip), str(peer.ip)), count=2)
        assert caps[ns].packets, f"control: nobody answered {vm.name}'s ARP for {peer.name}"
    # ... and IP to the host is not delivered, even with the host's MAC known: ping and TCP to BGP's port
    run_in(_ns(lab, "vm1"), "ip", "neigh", "replace", "10.0.0.101", "lladdr", h1_bridge_mac, "dev", VM_IFNAME)
    assert run_in(_ns(lab, "vm1"), "ping", "-c", "2", "-i", "0.2", "-W", "1", "10.0.0.101", check=False).returncode != 0
    assert run_in(_ns(lab, "vm1"), "timeout", "3", "bash", "-c", "exec 3<>/dev/tcp/10.0.0.101/179", check=False).returncode != 0
    before_stack = nft_drops(H1, "inet", portsec.HOST_TABLE)

    # (a) VXLAN injection into blue (VNI 100) through the local VTEP and through a remote one, from vm1
    # (port security on: its own source address) and from vm3 (port security off, spoofing a VTEP's address)
    with capturing([(ns, VM_IFNAME) for ns in blue], probes.injected()) as caps:
        for vtep in ("10.0.0.101", "10.0.0.102", "10.0.0.103"):
            send_frames(_ns(lab, "vm1"), probes.vxlan_from_vm(vm1.mac, h1_bridge_mac, str(vm1.ip), vtep, 100), count=3)
            vm3 = _vm(lab, "vm3")
            send_frames(_ns(lab, "vm3"), probes.vxlan_from_vm(vm3.mac, link_mac(H1, lab.topo.network("blue").bridge),
                                                               "10.0.0.102", vtep, 100), count=3)
    arrived = {ns: len(c.packets) for ns, c in caps.items() if c.packets}
    assert arrived == {}, f"injected frames reached {arrived}"
    assert nft_drops(H1, "inet", portsec.HOST_TABLE) - before_stack >= 9, "vm3's packets were not dropped at the host's stack"

    # control: the VMs still talk, across hosts and kinds
    assert ping(lab, vm1, _vm(lab, "vm5")) == (3, 3)
    assert ping(lab, vm1, vm9) == (3, 3)


def test_spoofed_arp_is_dropped_at_the_port_and_address_pairs_pass(lab: Lab) -> None:
    vm2, vm4, vm7 = _vm(lab, "vm2"), _vm(lab, "vm4"), _vm(lab, "vm7")
    bridge = lab.topo.network("blue").bridge
    wait_until("every host resolves vm4", lambda: all(read_neighbours(lab, lab.topo.host(h), bridge).get(str(vm4.ip)) == vm4.mac
                                                      for h in (H1, H3)), 10)
    before = nft_drops(H1, "bridge", portsec.PORTS_TABLE)

    # (b) vm2 claims vm4's address: gratuitous ARP, ARP reply, and IPv4 from it
    send_frames(lab.plan.vm_ns(vm2), probes.spoofed_garp(vm2.mac, str(vm4.ip)), count=3)
    reply = Ether(src=vm2.mac, dst=vm7.mac) / ARP(op=2, hwsrc=vm2.mac, psrc=str(vm4.ip), hwdst=vm7.mac, pdst=str(vm7.ip))
    send_frames(lab.plan.vm_ns(vm2), bytes(reply), count=3)
    # ... and a frame with vm4's MAC as source
    send_frames(lab.plan.vm_ns(vm2), bytes(Ether(src=vm4.mac, dst="ff:ff:ff:ff:ff:ff") / IP(src=str(vm4.ip), dst="192.168.100.255") / ICMP()), count=3)
    time.sleep(1.5)
    assert nft_drops(H1, "bridge", portsec.PORTS_TABLE) - before >= 9
    for host in (H1, H3):
        assert read_neighbours(lab, lab.topo.host(host), bridge).get(str(vm4.ip)) == vm4.mac, host
    assert _bound(lab, lab.plan.controller_ns, str(vm4.ip)) == {vm4.mac}
    assert vm4.mac not in {m.mac for m in _agent(lab, H1).local_macs(read_rib(lab, H1))}
    # a VM on a third host still resolves the victim to its real MAC
    run_in(lab.plan.vm_ns(vm7), "ip", "neigh", "flush", "dev", VM_IFNAME)
    assert ping(lab, vm7, vm4, count=2) == (2, 2)
    assert vm_arp(lab, vm7, str(vm4.ip)) == vm4.mac

    # control: the addresses of vm2's allowed-address-pairs pass (own MAC, and a pair with its own MAC)
    send_frames(lab.plan.vm_ns(vm2), probes.spoofed_garp(vm2.mac, PAIR_IP), count=2)
    send_frames(lab.plan.vm_ns(vm2), probes.spoofed_garp(PAIR2_MAC, PAIR2_IP), count=2)
    wait_until("the pairs are advertised", lambda: _bound(lab, lab.plan.controller_ns, PAIR_IP) == {vm2.mac}
               and _bound(lab, lab.plan.controller_ns, PAIR2_IP) == {PAIR2_MAC}, 10)


def test_a_mac_flood_stops_at_the_port_limit_and_learning_goes_on(lab: Lab) -> None:
    vm2, vm3 = _vm(lab, "vm2"), _vm(lab, "vm3")
    ports = lab.plan.vm_ns(vm3)
    flood = [f"02:aa:00:00:{i >> 8:02x}:{i & 0xff:02x}" for i in range(1500)]
    def send_flood(ns: str, macs: list[str], own_dst: str) -> None:
        with inside(ns):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        with sock:
            sock.bind((VM_IFNAME, 0))
            for mac in macs:  # unicast to the sender's own MAC: the bridge learns the source and forwards nothing
                sock.send(bytes(Ether(src=mac, dst=own_dst, type=0x88B5) / b"flood"))

    # with port security (vm2): none of it passes the port
    send_flood(lab.plan.vm_ns(vm2), [f"02:bb:00:00:00:{i:02x}" for i in range(200)], vm2.mac)
    # (d) without port security (vm3): 1,500 source MACs
    started = time.monotonic()
    send_flood(ports, flood, vm3.mac)

    def remote_flood_macs() -> int:
        return sum(1 for e in read_rib(lab, H2) if isinstance(e.route, MacIpRoute) and e.route.mac.startswith(("02:aa:", "02:bb:")))

    wait_until("the flood's MACs are advertised up to the limit", lambda: remote_flood_macs() >= 60, 30)
    time.sleep(2)
    learned = remote_flood_macs()
    assert 60 <= learned <= 64, learned
    assert not any(e.route.mac.startswith("02:bb:") for e in read_rib(lab, H2) if isinstance(e.route, MacIpRoute))
    status = _agent(lab, H1).agent_status()
    assert status.get("ready") is True, status
    assert int(status.get("macs_over_limit") or 0) > 0 or "event=mac-limit-reached" in lab.plan.files(H1).agent_log.read_text()

    # the agent keeps learning: a new MAC on another port (vm2's second allowed pair) becomes a route
    send_frames(lab.plan.vm_ns(vm2), probes.spoofed_garp(PAIR2_MAC, PAIR2_IP), count=2)
    wait_until("a new MAC after the flood is learned", lambda: _bound(lab, H2, PAIR2_IP) == {PAIR2_MAC}, 15)
    assert time.monotonic() - started < 120


def _carries_marker(pkt: Packet) -> bool:
    frame = decode_vxlan(pkt)
    return frame is not None and frame.inner_src_mac == probes.MARKER_MAC


def _guard_drops(host: str) -> int:
    return dropped_packets(json.loads(run_in(host, "nft", "-j", "list", "table", "inet", "evpn_agent").stdout))


def test_vxlan_from_an_address_no_route_names_is_dropped_by_the_guard(lab: Lab) -> None:
    wait_until("guards installed", lambda: all(run_in(h, "nft", "list", "set", "inet", "evpn_agent", "vxlan_sources_v4",
                                                      check=False).returncode == 0 for h in (H1, H2)), 10)
    shown = run_in(H1, "nft", "list", "set", "inet", "evpn_agent", "vxlan_sources_v4").stdout
    assert "10.0.0.102" in shown and "10.0.0.103" in shown and "10.0.0.101" not in shown, shown
    router = lab.plan.router_ns
    router_ip = str(lab.plan.uplink(H1).router_ip)
    vm2 = lab.plan.vm_ns(_vm(lab, "vm2"))
    before = _guard_drops(H1)
    # (e) from the router's own address, and from a spoofed address that is no VTEP: dropped and counted
    with capturing([(H1, UPLINK)], _carries_marker) as uplink, capturing([(vm2, VM_IFNAME)], probes.injected()) as inside_vm:
        probes.send_ip(router, probes.vxlan_packet(router_ip, "10.0.0.101", 100), count=3)
        probes.send_ip(router, probes.vxlan_packet("10.0.0.177", "10.0.0.101", 100), count=3)
    assert len(uplink[H1].packets) == 6, "the packets did not reach the host"
    assert inside_vm[vm2].packets == [], "VXLAN from a source outside the RIB was delivered"
    assert _guard_drops(H1) - before == 6
    # control: the same packet from a VTEP the RIB names is delivered to the blue VM
    with capturing([(vm2, VM_IFNAME)], probes.injected()) as caps:
        probes.send_ip(router, probes.vxlan_packet("10.0.0.102", "10.0.0.101", 100), count=3)
    assert len(caps[vm2].packets) == 3, "control: VXLAN from a VTEP of the RIB was not delivered"
    # the guard follows the RIB: a VTEP that leaves is no longer a source
    assert labctl("kill", H2, "--lab", LAB).returncode == 0
    wait_until("10.0.0.102 leaves the guard", lambda: "10.0.0.102" not in run_in(
        H1, "nft", "list", "set", "inet", "evpn_agent", "vxlan_sources_v4").stdout, 15)
    # ... and one that comes back is allowed before its flood entry is made: the set is read as soon as
    # H1's kernel has the entry (none of the VTEP's packets is dropped in between), and H1's agent logged
    # the guard's update before the entry
    agent_log = lab.plan.files(H1).agent_log
    logged = agent_log.stat().st_size
    watch = subprocess.Popen(["ip", "netns", "exec", H1, "timeout", "90", "sh", "-c",
                              "until bridge fdb show | grep -qE '^00:00:00:00:00:00 .*dst 10[.]0[.]0[.]102( |$)'; "
                              "do sleep 0.02; done; nft list set inet evpn_agent vxlan_sources_v4"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert labctl("revive", H2, "--lab", LAB).returncode == 0
        shown = watch.communicate(timeout=90)[0]
    finally:
        watch.kill()
    assert watch.returncode == 0 and "10.0.0.102" in shown, shown
    lines = agent_log.read_bytes()[logged:].decode().splitlines()
    admitted = [i for i, line in enumerate(lines) if "event=vxlan-guard-updated" in line
                and "10.0.0.102" in line.split(" added=", 1)[-1].split(" ", 1)[0].split(",")]
    flooded = [i for i, line in enumerate(lines) if "event=entry-added kind=flood" in line and "vtep=10.0.0.102" in line]
    assert admitted and flooded and admitted[0] < flooded[0], "\n".join(lines)


def test_verify_shows_the_protections(lab: Lab) -> None:
    result = labctl("verify", "--lab", LAB, "--only", "vxlan-injection", "--only", "arp-spoof")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no injection into a VNI" in result.stdout and "spoofed gratuitous ARP" in result.stdout
