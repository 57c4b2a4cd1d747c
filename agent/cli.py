"""`evpn-agent`: run the host agent, or show what it sees.

`evpn-agent run` is the daemon: its options are read with argparse and it never imports click (the
other sub-commands, for people, use click: 1.2 MB of the daemon's memory saved), nor PyYAML for a
JSON config.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from .config import AgentConfig, ConfigError, load_config_file, parse_config
from .errors import AgentFailure
from .routes import is_number

MALLOC_ARENA_MAX = 2  # glibc malloc arenas (see tune_malloc)
MMAP_THRESHOLD = 1 << 20  # bytes: allocations this big are mmap()ed, and returned when freed
# seconds a busy thread holds the GIL before another may take it (Python's default 0.005): the agent's
# other threads wait on sockets (the gobgpd table, the kernel read ahead, bridge events) and each needs
# the GIL for a moment after every read; at 1 ms they keep gobgpd and the kernel busy while the main
# thread decodes (a 100k-route table read: 2.0 -> 1.75 s measured)
SWITCH_INTERVAL = 0.001


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
        stream=sys.stderr,
    )


def _load(config: Path | None, overrides: dict[str, Any]) -> AgentConfig:
    raw: dict[str, Any] = load_config_file(config) if config else {}
    raw.update({k: v for k, v in overrides.items() if v not in (None, ())})
    return parse_config(raw)


def _vni_flags(values: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for value in values:
        parts = value.split(":")
        if len(parts) != 3 or not is_number(parts[0]):
            raise ConfigError(f"--vni {value!r}: expected VNI:DEVICE:BRIDGE, e.g. 100:vxlan100:br0")
        out.append({"vni": int(parts[0]), "device": parts[1], "bridge": parts[2]})
    return out


def tune_malloc() -> None:
    """glibc malloc for a long-running process that holds big tables; call before any thread starts.

    - at most MALLOC_ARENA_MAX arenas (default 8 per core: gRPC's idle threads each kept one);
    - allocations from MMAP_THRESHOLD up always mmap()ed: a dict or set of 100k entries that grows
      frees its old table back to the kernel. glibc otherwise raises the threshold after the first
      such free, and the old tables become holes in the heap that stay resident (31 B per route
      held at 100k, measured by bench_scale.py's RSS figure).
    MALLOC_ARENA_MAX etc. in the environment are read only when the process starts; mallopt applies
    from now on."""
    import ctypes

    M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(M_ARENA_MAX, MALLOC_ARENA_MAX)
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evpn-agent run", description="Run the agent until SIGTERM/SIGINT.")
    parser.add_argument("--config", dest="config_file", type=Path, help="YAML/JSON config file")
    parser.add_argument("--gobgp", dest="gobgp_address", help="gobgpd gRPC address (default 127.0.0.1:50051)")
    parser.add_argument("--vtep", help="this host's VTEP IPv4 address")
    parser.add_argument("--vni", dest="vnis", action="append", default=[], help="VNI:DEVICE:BRIDGE, repeatable (replaces the file's vnis)")
    parser.add_argument("--route-target-asn", type=int, help="AS used for default route targets ASN:VNI")
    parser.add_argument("--status-file", type=Path)
    parser.add_argument("--state-file", type=Path)
    parser.add_argument("--log-level", default="info", help="(default: info)")
    return parser


def run(argv: list[str]) -> int:
    """`evpn-agent run [options]`: the daemon. Exit status 1 on a config error or an agent failure."""
    args = run_parser().parse_args(argv)
    tune_malloc()
    sys.setswitchinterval(SWITCH_INTERVAL)
    from .kernel import Kernel
    from .service import Agent
    from .vxlan_guard import VxlanGuard

    _setup_logging(args.log_level)
    try:
        overrides = {
            "gobgp_address": args.gobgp_address, "vtep": args.vtep, "route_target_asn": args.route_target_asn,
            "status_file": str(args.status_file) if args.status_file else None,
            "state_file": str(args.state_file) if args.state_file else None,
            "vnis": _vni_flags(tuple(args.vnis)) or None,
        }
        cfg = _load(args.config_file, overrides)
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    kernel = Kernel()
    guard = VxlanGuard() if cfg.vxlan_source_guard else None  # VXLAN only from the RIB's VTEPs (agent/vxlan_guard.py)
    agent = Agent(cfg, kernel, config_loader=lambda: _load(args.config_file, overrides), vxlan_guard=guard)

    def _stop(signum: int, _frame: object) -> None:
        logging.getLogger("evpn.agent").info("event=stopping signal=%d", signum)
        agent.stop_event.set()

    def _reload(signum: int, _frame: object) -> None:
        logging.getLogger("evpn.agent").info("event=reload-requested signal=%d", signum)
        agent.request_reload()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGHUP, _reload)
    logging.getLogger("evpn.agent").info(
        "event=starting vtep=%s gobgp=%s vnis=%s", cfg.vtep, cfg.gobgp_address, ",".join(str(v.vni) for v in cfg.vnis)
    )
    try:
        agent.run()
    except AgentFailure as exc:
        logging.getLogger("evpn.agent").error("event=agent-failed error=%r (exiting for a restart)", str(exc))
        print(f"Error: agent failed: {exc}", file=sys.stderr)
        return 1
    finally:
        kernel.close()
    return 0


def main() -> None:
    """Entry point: `run` straight to the daemon, every other sub-command through click."""
    if sys.argv[1:2] == ["run"]:
        sys.exit(run(sys.argv[2:]))
    from .tools import tools

    tools()


if __name__ == "__main__":
    main()
