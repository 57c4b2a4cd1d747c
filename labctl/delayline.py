"""A userspace netem for kernels without sch_netem: delays, jitters and drops what a node sends on an interface.

labctl (labctl/netem.py) redirects everything leaving the interface (tc clsact egress, u32 match-all, mirred
redirect) to a tap device; this daemon reads the frames from the tap (the kernel has segmented and
checksummed them for it), holds each for delay ± jitter (uniform, like netem's default; jitter reorders,
as netem's does), drops loss_pct % of them, and sends the rest out of the interface through a packet
socket that bypasses the qdisc layer (so they do not meet the redirect again). Its settings are a JSON
file, re-read on SIGHUP. Run inside the node's namespace:

    python -m labctl.delayline --config /run/evpn-lab/<lab>/<node>/netem.json
"""

from __future__ import annotations

import argparse
import fcntl
import heapq
import json
import logging
import os
import random
import select
import signal
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("evpn.labctl.delayline")

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
SOL_PACKET = 263
PACKET_QDISC_BYPASS = 20
MAX_FRAME = 65536


@dataclass(frozen=True)
class Settings:
    interface: str  # where frames leave (the uplink)
    tap: str  # where the redirect delivers them to this daemon
    delay_ms: float
    jitter_ms: float
    loss_pct: float

    @classmethod
    def read(cls, path: Path) -> Settings:
        data = json.loads(path.read_text())
        return cls(str(data["interface"]), str(data["tap"]), float(data["delay_ms"]), float(data["jitter_ms"]), float(data["loss_pct"]))

    def to_json(self) -> str:
        return json.dumps({"interface": self.interface, "tap": self.tap, "delay_ms": self.delay_ms,
                           "jitter_ms": self.jitter_ms, "loss_pct": self.loss_pct})


def hold_time(settings: Settings, rng: random.Random) -> float | None:
    """Seconds to hold one frame, or None to drop it (pure but for the random source)."""
    if settings.loss_pct and rng.random() * 100 < settings.loss_pct:
        return None
    jitter = rng.uniform(-settings.jitter_ms, settings.jitter_ms) if settings.jitter_ms else 0.0
    return max(0.0, settings.delay_ms + jitter) / 1000


def open_tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def open_sender(interface: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    # past the qdisc layer and its clsact hook: no second trip through the redirect. (A packet socket that
    # bypasses the qdisc layer bypasses the interface's packet taps too: captures of what the node sends
    # are taken on the tap device; labctl/netem.py: egress_interfaces)
    sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
    sock.bind((interface, 0))
    return sock


def run(config: Path) -> None:
    settings = Settings.read(config)
    reload = False

    def on_hup(_signum: int, _frame: object) -> None:
        nonlocal reload
        reload = True

    signal.signal(signal.SIGHUP, on_hup)
    tap = open_tap(settings.tap)
    sender = open_sender(settings.interface)
    rng = random.Random()
    queue: list[tuple[float, int, bytes]] = []
    seq = 0
    sent = dropped = failed = 0
    log.info("event=delayline-started interface=%s tap=%s delay_ms=%g jitter_ms=%g loss_pct=%g",
             settings.interface, settings.tap, settings.delay_ms, settings.jitter_ms, settings.loss_pct)
    while True:
        if reload:
            reload = False
            settings = Settings.read(config)
            log.info("event=delayline-reloaded delay_ms=%g jitter_ms=%g loss_pct=%g sent=%d dropped=%d",
                     settings.delay_ms, settings.jitter_ms, settings.loss_pct, sent, dropped)
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, frame = heapq.heappop(queue)
            try:
                sender.send(frame)
                sent += 1
            except OSError as exc:  # link down (a killed host): the frame is lost, as on a wire
                dropped += 1
                (log.warning if failed == 0 else log.debug)("event=send-failed error=%s", exc)
                failed += 1
        timeout = max(0.0, queue[0][0] - now) if queue else 1.0
        try:
            ready, _, _ = select.select([tap], [], [], timeout)
        except InterruptedError:
            continue
        if not ready:
            continue
        while True:
            try:
                frame = os.read(tap, MAX_FRAME)
            except BlockingIOError:
                break
            hold = hold_time(settings, rng)
            if hold is None:
                dropped += 1
                continue
            seq += 1
            heapq.heappush(queue, (time.monotonic() + hold, seq, frame))


def main() -> None:
    parser = argparse.ArgumentParser(description="userspace netem on one interface (see labctl/netem.py)")
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    try:
        run(args.config)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
