"""Link impairment (netem: delay, jitter, loss) on a hypervisor's uplink, inside its namespace.

Only the uplink's egress is impaired: what the host sends is delayed (and dropped) once, on its way to
the router. A ping between VMs on two hosts impaired alike crosses two impaired egresses (the request
leaves one host, the reply the other): RTT = twice the delay. The router's end is left alone.

Two mechanisms, one behaviour:

- the kernel's netem qdisc (sch_netem), set through pyroute2, where the kernel has it;
- otherwise (kernels built without sch_netem, such as this CI's) a userspace delay line
  (labctl/delayline.py): a tc clsact egress filter (u32 match-all, mirred redirect) hands every frame
  leaving the uplink to a tap device (TAP); a supervised daemon holds each frame for delay ± jitter, drops
  loss %, and sends the rest out of the uplink past the qdisc layer. Packet taps on the uplink (captures)
  then see only what the host receives: what it sends is seen on TAP (before the delay), see
  `egress_interfaces`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import struct
import sys
import time
from dataclasses import dataclass

from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.tcmsg.common import tick_in_usec

from . import daemons
from .delayline import IFF_NO_PI, IFF_TAP, TUNSETIFF, Settings
from .errors import LabError
from .netns import inside, ns
from .nodes.base import daemon_pid, start_daemon
from .plan import UPLINK, LabPlan
from .rundir import write_private
from .state import LabState
from .topology import Netem

log = logging.getLogger("evpn.labctl.netem")

ROLE = "netem"  # the delay line's supervised daemon, one per impaired host
TAP = f"nm-{UPLINK}"  # '-' is in no bridge name a topology may give, so no clash
U32_MAX = 2**32 - 1
TC_H_ROOT = 0xFFFFFFFF
CLSACT_EGRESS = 0xFFFFFFF3
ETH_P_ALL = 0x0003
TUNSETPERSIST = 0x400454CB
IFF_LOWER_UP = 0x10000
ENOENT, EINVAL = 2, 22
KERNEL, USERSPACE = "tc netem", "userspace delay line"


@dataclass(frozen=True)
class Impairment:
    """What a host's uplink has now, as read from the kernel (and the delay line's settings)."""

    netem: Netem
    mechanism: str  # KERNEL or USERSPACE

    def describe(self) -> str:
        return f"{self.netem.describe()} ({self.mechanism})"


# -- pure ------------------------------------------------------------------------------------


def qdisc_arguments(netem: Netem) -> dict[str, float]:
    """pyroute2's netem arguments (microseconds, percent) for `netem`."""
    return {"delay": round(netem.delay_ms * 1000), "jitter": round(netem.jitter_ms * 1000), "loss": netem.loss_pct}


def from_options(delay_ticks: int, jitter_ticks: int, loss_u32: int, tick: float = tick_in_usec) -> Netem:
    """The Netem a kernel netem qdisc's options describe (ticks and a u32 fraction), rounded as set."""
    return Netem(round(delay_ticks / tick / 1000, 3), round(jitter_ticks / tick / 1000, 3), round(loss_u32 * 100 / U32_MAX, 3))


def settings_for(netem: Netem) -> Settings:
    return Settings(UPLINK, TAP, netem.delay_ms, netem.jitter_ms, netem.loss_pct)


# -- the kernel's netem ----------------------------------------------------------------------


def _index(ipr: object, ns_name: str, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)  # type: ignore[attr-defined]
    return int(found[0]) if found else None


def _uplink(ipr: object, ns_name: str) -> int:
    index = _index(ipr, ns_name, UPLINK)
    if index is None:
        raise LabError(f"{ns_name}: interface {UPLINK} not found")
    return index


def _kernel_set(ns_name: str, netem: Netem) -> bool:
    """Set the kernel netem qdisc on the uplink; False if this kernel has none (no sch_netem)."""
    with ns(ns_name) as ipr:
        try:
            ipr.tc("replace", kind="netem", index=_uplink(ipr, ns_name), handle=0x10000, **qdisc_arguments(netem))
        except NetlinkError as exc:
            if exc.code == ENOENT:  # "Specified qdisc kind is unknown"
                return False
            raise
    return True


def _kernel_clear(ns_name: str) -> None:
    with ns(ns_name) as ipr:
        index = _uplink(ipr, ns_name)
        if any(q.get_attr("TCA_KIND") == "netem" for q in ipr.get_qdiscs(index=index)):
            ipr.tc("del", index=index, handle=0, parent=TC_H_ROOT)


# -- the userspace delay line ----------------------------------------------------------------


def _make_tap(ns_name: str) -> None:
    """A persistent tap device (it outlives a restart of the daemon that reads it) in `ns_name`."""
    with ns(ns_name) as ipr:
        if _index(ipr, ns_name, TAP) is None:
            with inside(ns_name):
                fd = os.open("/dev/net/tun", os.O_RDWR)
            try:
                fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", TAP.encode(), IFF_TAP | IFF_NO_PI))
                fcntl.ioctl(fd, TUNSETPERSIST, 1)
            finally:
                os.close(fd)
        tap = _index(ipr, ns_name, TAP)
        uplink = ipr.get_links(_uplink(ipr, ns_name))[0]
        ipr.link("set", index=tap, mtu=uplink.get_attr("IFLA_MTU"), state="up")


def _tap_attached(ns_name: str) -> bool:
    with ns(ns_name) as ipr:
        index = _index(ipr, ns_name, TAP)
        return index is not None and bool(ipr.get_links(index)[0]["flags"] & IFF_LOWER_UP)


def _redirect(ns_name: str) -> None:
    """Everything leaving the uplink goes to the tap (clsact egress, u32 match-all, mirred redirect)."""
    with ns(ns_name) as ipr:
        index = _uplink(ipr, ns_name)
        if any(q.get_attr("TCA_KIND") == "clsact" for q in ipr.get_qdiscs(index=index)):
            return
        ipr.tc("add", "clsact", index)
        ipr.tc("add-filter", "u32", index, parent=CLSACT_EGRESS, prio=1, protocol=ETH_P_ALL, target=0, keys=["0x0/0x0+0"],
               action={"kind": "mirred", "direction": "egress", "action": "redirect", "ifindex": _index(ipr, ns_name, TAP)})


def _redirected(ns_name: str) -> bool:
    with ns(ns_name) as ipr:
        index = _uplink(ipr, ns_name)
        return any(q.get_attr("TCA_KIND") == "clsact" for q in ipr.get_qdiscs(index=index)) and bool(
            ipr.get_filters(index=index, parent=CLSACT_EGRESS))


def _delayline_start(plan: LabPlan, state: LabState, host: str, netem: Netem) -> None:
    files = plan.files(host)
    write_private(files.netem_config, settings_for(netem).to_json() + "\n")
    _make_tap(host)
    supervisor = state.pids.get(host, {}).get(ROLE, 0)
    child = daemon_pid(plan, host, ROLE)
    if supervisor and daemons.alive(supervisor, files.marker) and child:
        os.kill(child, signal.SIGHUP)  # running: it re-reads its settings
    else:
        argv = [sys.executable, "-m", "labctl.delayline", "--config", str(files.netem_config)]
        start_daemon(plan, state, host, ROLE, argv, files.netem_log)
        deadline = time.monotonic() + 10
        while not _tap_attached(host):
            if time.monotonic() > deadline:
                raise LabError(f"{host}: the netem delay line did not start (see {files.netem_log})")
            time.sleep(0.05)
    _redirect(host)


def _delayline_stop(plan: LabPlan, state: LabState, host: str) -> None:
    files = plan.files(host)
    with ns(host) as ipr:
        index = _uplink(ipr, host)
        if any(q.get_attr("TCA_KIND") == "clsact" for q in ipr.get_qdiscs(index=index)):
            ipr.tc("del", "clsact", index)  # first: traffic flows undelayed before the daemon goes
    supervisor = state.pids.get(host, {}).pop(ROLE, 0)
    if supervisor:
        daemons.stop_supervised(supervisor, files.marker, files.supervisor_status(ROLE))
        state.save()
    with ns(host) as ipr:
        tap = _index(ipr, host, TAP)
        if tap is not None:
            ipr.link("del", index=tap)
    files.netem_config.unlink(missing_ok=True)


# -- what the lab calls ----------------------------------------------------------------------


def egress_interfaces(host: str) -> tuple[str, ...]:
    """Where a capture sees everything `host` sends and receives on its uplink: the uplink, plus the delay
    line's tap when one runs (the delay line's sends bypass the uplink's packet taps)."""
    with ns(host) as ipr:
        return (UPLINK, TAP) if _index(ipr, host, TAP) is not None else (UPLINK,)




def apply(plan: LabPlan, state: LabState, host: str, netem: Netem | None) -> str | None:
    """Impair `host`'s uplink with `netem` (replacing what it had), or make it clean (None).
    Returns the mechanism used (None when cleared)."""
    if netem is None:
        _kernel_clear(host)
        _delayline_stop(plan, state, host)
        log.info("event=netem-cleared host=%s", host)
        return None
    if _kernel_set(host, netem):
        _delayline_stop(plan, state, host)
        mechanism = KERNEL
    else:
        _delayline_start(plan, state, host, netem)
        mechanism = USERSPACE
    log.info("event=netem-set host=%s delay_ms=%g jitter_ms=%g loss_pct=%g mechanism=%r",
             host, netem.delay_ms, netem.jitter_ms, netem.loss_pct, mechanism)
    return mechanism


def read(plan: LabPlan, host: str) -> Impairment | None:
    """What impairs `host`'s uplink now, as the kernel (and the delay line's settings) say."""
    with ns(host) as ipr:
        for msg in ipr.get_qdiscs(index=_uplink(ipr, host)):
            if msg.get_attr("TCA_KIND") == "netem" and msg["parent"] == TC_H_ROOT:
                opts = msg.get_attr("TCA_OPTIONS")
                return Impairment(from_options(opts["delay"], opts["jitter"], opts["loss"]), KERNEL)
    config = plan.files(host).netem_config
    if _redirected(host) and config.exists():
        s = Settings.read(config)
        return Impairment(Netem(s.delay_ms, s.jitter_ms, s.loss_pct), USERSPACE)
    return None
