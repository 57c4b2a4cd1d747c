"""Namespaces, links, addresses, bridges and vxlan devices, through pyroute2 (netlink)."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import ipaddress
import logging
import os
import subprocess
from typing import Iterator

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from .errors import LabError

log = logging.getLogger("evpn.labctl.netns")


def list_namespaces() -> list[str]:
    return sorted(netns.listnetns())


def create(name: str) -> None:
    if name in netns.listnetns():
        raise LabError(f"namespace {name} already exists (a lab of that name is running: labctl down)")
    # iproute2 makes the namespace: pyroute2's netns.create forks a Python helper, which can deadlock a
    # process that also runs gRPC threads (labctl's checks and the tests do)
    result = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if result.returncode != 0:
        raise LabError(f"cannot create namespace {name}: {result.stderr.strip()}")
    with ns(name) as ip:
        ip.link("set", index=_index(ip, "lo", name), state="up")
    log.info("event=netns-created ns=%s", name)


def remove(name: str) -> None:
    with contextlib.suppress(FileNotFoundError, OSError):
        netns.remove(name)
        log.info("event=netns-removed ns=%s", name)


def pids(name: str) -> list[int]:
    """PIDs of the processes living in namespace `name`."""
    return sorted(int(p) for p in netns.ns_pids().get(name, []))


def pids_in(names: list[str]) -> list[int]:
    """PIDs of the processes living in any of the namespaces `names` (one scan of /proc for all)."""
    wanted = set(names)
    return sorted({int(p) for name, found in netns.ns_pids().items() if name in wanted for p in found})


@contextlib.contextmanager
def ns(name: str) -> Iterator[IPRoute]:
    """A netlink socket inside namespace `name`, made while this thread is switched into it (setns).

    pyroute2's own netns= option forks a helper process, which can deadlock a process that also runs
    gRPC threads (labctl's checks and the tests do).
    """
    with inside(name):
        ip = IPRoute()
    try:
        yield ip
    finally:
        ip.close()


def _index(ip: IPRoute, ifname: str, where: str) -> int:
    found = ip.link_lookup(ifname=ifname)
    if not found:
        raise LabError(f"{where}: interface {ifname} not found")
    return int(found[0])


def veth(ns_a: str, if_a: str, ns_b: str, if_b: str, mtu: int = 1500, mac_b: str | None = None, up_b: bool = True) -> None:
    """A veth pair with one end in each namespace, both up (`up_b=False`: the second end stays down)."""
    with ns(ns_a) as ip:
        peer: dict[str, object] = {"ifname": if_b, "net_ns_fd": ns_b}
        ip.link("add", ifname=if_a, kind="veth", peer=peer)
        ip.link("set", index=_index(ip, if_a, ns_a), mtu=mtu, state="up")
    with ns(ns_b) as ip:
        attrs: dict[str, object] = {"mtu": mtu, "state": "up" if up_b else "down"}
        if mac_b:
            attrs["address"] = mac_b
        ip.link("set", index=_index(ip, if_b, ns_b), **attrs)


def address(ns_name: str, ifname: str, cidr: str, exist_ok: bool = False) -> None:
    iface = ipaddress.ip_interface(cidr)
    with ns(ns_name) as ip:
        try:
            ip.addr("add", index=_index(ip, ifname, ns_name), address=str(iface.ip), prefixlen=iface.network.prefixlen)
        except NetlinkError as exc:
            if not (exist_ok and exc.code == 17):
                raise


def route(ns_name: str, dst: str, gateway: str) -> None:
    """Add or replace a static route (idempotent: also used to restore routes after a link flap)."""
    with ns(ns_name) as ip:
        ip.route("replace", dst=dst, gateway=gateway)


def bridge(ns_name: str, name: str) -> None:
    """A plain learning bridge without STP (the lab has no loops), with a MAC of its own.

    Without a set address a bridge takes its lowest port's MAC and changes it whenever ports come and
    go (a VM migrating); the kernel then flushes the bridge's neighbour table, ARP suppression included.
    """
    with ns(ns_name) as ip:
        ip.link("add", ifname=name, kind="bridge", br_stp_state=0, br_forward_delay=0)
        index = _index(ip, name, ns_name)
        mac = "02:" + ":".join(f"{b:02x}" for b in hashlib.sha256(f"{ns_name}/{name}".encode()).digest()[:5])
        ip.link("set", index=index, address=mac)
        ip.link("set", index=index, state="up")


def vxlan(ns_name: str, name: str, vni: int, local: str, bridge_name: str) -> None:
    """A VXLAN device (dstport 4789, learning off: the control plane fills its FDB) on a bridge."""
    with ns(ns_name) as ip:
        ip.link("add", ifname=name, kind="vxlan", vxlan_id=vni, vxlan_local=local, vxlan_port=4789, vxlan_learning=0)
        index = _index(ip, name, ns_name)
        ip.link("set", index=index, master=_index(ip, bridge_name, ns_name))
        ip.link("set", index=index, state="up")


def enslave(ns_name: str, ifname: str, bridge_name: str) -> None:
    with ns(ns_name) as ip:
        ip.link("set", index=_index(ip, ifname, ns_name), master=_index(ip, bridge_name, ns_name))


def neigh_suppress(ns_name: str, ifname: str, on: bool = True) -> None:
    """ARP/ND suppression on a bridge port (what the agent does itself on its hosts)."""
    with ns(ns_name) as ip:
        ip.brport("set", index=_index(ip, ifname, ns_name), neigh_suppress=1 if on else 0)


def release(ns_name: str, ifname: str) -> None:
    """Take an interface off its bridge."""
    with ns(ns_name) as ip:
        ip.link("set", index=_index(ip, ifname, ns_name), master=0)


def flush_addresses(ns_name: str, ifname: str) -> None:
    with ns(ns_name) as ip:
        index = _index(ip, ifname, ns_name)
        for msg in ip.get_addr(index=index, family=2):
            ip.addr("del", index=index, address=msg.get_attr("IFA_ADDRESS"), prefixlen=msg["prefixlen"])


def set_link(ns_name: str, ifname: str, up: bool) -> None:
    with ns(ns_name) as ip:
        ip.link("set", index=_index(ip, ifname, ns_name), state="up" if up else "down")


def delete_link(ns_name: str, ifname: str) -> None:
    with ns(ns_name) as ip, contextlib.suppress(NetlinkError, LabError):
        ip.link("del", index=_index(ip, ifname, ns_name))


CLONE_NEWNET = 0x40000000
_LIBC = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int, what: str) -> None:
    """setns(2) for this thread only (Python 3.11 has no os.setns)."""
    if _LIBC.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot enter namespace {what}: {os.strerror(err)}")


@contextlib.contextmanager
def inside(ns_name: str) -> Iterator[None]:
    """Run the block with this thread switched into namespace `ns_name` (sockets opened there stay there).

    Thread-safe: the namespace to come back to is this thread's own (/proc/thread-self), kept here, not on
    pyroute2's pushns stack, which is shared by all threads and saves the main thread's namespace
    (/proc/self): labctl builds hosts and runs checks in parallel threads."""
    try:
        target = os.open(f"{netns.NETNS_RUN_DIR}/{ns_name}", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise LabError(f"namespace {ns_name} does not exist") from None
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target, ns_name)
        try:
            yield
        finally:
            _setns(home, "this thread's own")
    finally:
        os.close(home)
        os.close(target)


def sysctl(ns_name: str, key: str, value: str) -> None:
    """Write /proc/sys/<key> inside a namespace."""
    with inside(ns_name), open(f"/proc/sys/{key.replace('.', '/')}", "w") as handle:
        handle.write(value)


def set_mac(ns_name: str, ifname: str, mac: str) -> None:
    """Give `ifname` in `ns_name` another MAC address (live: veth allows it while up)."""
    with ns(ns_name) as ip:
        ip.link("set", index=_index(ip, ifname, ns_name), address=mac)


def forget_fdb(ns_name: str, port: str, mac: str) -> bool:
    """Remove what the bridge learned of `mac` on `port` (`bridge fdb del MAC dev PORT master`), as a
    hypervisor does when it gives a port another MAC. False if there was no such entry."""
    result = subprocess.run(["ip", "netns", "exec", ns_name, "bridge", "fdb", "del", mac, "dev", port, "master"],
                            capture_output=True, text=True, timeout=10, check=False)
    return result.returncode == 0
