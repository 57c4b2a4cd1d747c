"""A small supervisor for one lab daemon: `python -m labctl.supervise --role R --status FILE -- ARGV...`.

Why our own and not systemd-run: the lab must run where no systemd runs (containers, this CI:
`systemctl is-system-running` says `offline`), and every daemon lives inside a network namespace
labctl made with `ip netns exec`. This is not an init system: it runs one child, restarts it when it
exits (backoff 0.1 s doubling to 5 s, back to 0.1 s once a child lived 10 s), records every restart in
a JSON status file, forwards SIGHUP, and on SIGTERM/SIGINT ends the child and itself.

- The child gets PR_SET_PDEATHSIG=SIGKILL: a SIGKILLed supervisor (`labctl kill` of a whole host) takes
  its child with it (labctl also kills the child by the PID recorded here, for children that change
  credentials, which clears that signal).
- The supervisor's command line holds the status file's path, which lies in the node's run directory:
  labctl's PID-reuse guard (`NodeFiles.marker`) matches it as it matches the daemons themselves.
- `--restart-arg` are appended from the first restart on (gobgpd's `-r`: graceful-restart state bit).
- `--unlink PATH` is removed before every start (a killed gobgpd leaves its API socket behind, and a
  new one cannot bind it).

Stdlib only, so it starts fast; the pure part (`next_backoff`) is unit-tested.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

INITIAL_BACKOFF = 0.1
MAX_BACKOFF = 5.0
HEALTHY_AFTER = 10.0  # seconds a child must live for the backoff to start again from INITIAL_BACKOFF
STOP_GRACE = 3.0  # seconds the child has to exit after SIGTERM before SIGKILL
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15


def next_backoff(previous: float, lived: float) -> float:
    """The wait before the next start: short again after a healthy run, else doubled (bounded)."""
    if lived >= HEALTHY_AFTER or previous <= 0:
        return INITIAL_BACKOFF
    return min(MAX_BACKOFF, previous * 2)


@dataclass
class SupervisorStatus:
    role: str
    argv: list[str]
    supervisor_pid: int = field(default_factory=os.getpid)
    child_pid: int = 0
    restarts: int = 0
    last_exit: str = ""  # "code 1", "signal 9"
    last_restart: float = 0.0  # wall clock of the last restart
    started: float = field(default_factory=time.time)
    stopping: bool = False

    def write(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(self), out)
        os.replace(tmp, path)


def describe_exit(returncode: int) -> str:
    return f"signal {-returncode}" if returncode < 0 else f"code {returncode}"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} logger=evpn.labctl.supervise {message}", file=sys.stderr, flush=True)


class Supervisor:
    def __init__(self, role: str, argv: list[str], status_path: Path, restart_args: list[str],
                 unlink: list[Path] | None = None) -> None:
        self.status = SupervisorStatus(role, argv)
        self.path = status_path
        self.restart_args = restart_args
        self.unlink = unlink or []
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def _signal(self, signum: int, _frame: object) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stopping = self.status.stopping = True
        child = self.child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)

    def _spawn(self) -> None:
        argv = self.status.argv + (self.restart_args if self.status.restarts else [])
        for leftover in self.unlink:
            leftover.unlink(missing_ok=True)
        self.child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)  # noqa: PLW1509 - single-threaded
        self.status.child_pid = self.child.pid
        self.status.write(self.path)
        _log(f"event=child-started role={self.status.role} pid={self.child.pid} restarts={self.status.restarts}")

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._signal)
        with_name = f"sup-{self.status.role}"[:15].encode()
        _libc().prctl(PR_SET_NAME, ctypes.c_char_p(with_name), 0, 0, 0)
        backoff = 0.0
        while not self.stopping:
            started = time.monotonic()
            self._spawn()
            assert self.child is not None
            try:
                returncode = self.child.wait()
            except KeyboardInterrupt:  # pragma: no cover - SIGINT is handled above
                returncode = self.child.wait()
            if self.stopping:
                break
            lived = time.monotonic() - started
            backoff = next_backoff(backoff, lived)
            self.status.restarts += 1
            self.status.last_exit = describe_exit(returncode)
            self.status.last_restart = time.time()
            self.status.child_pid = 0
            self.status.write(self.path)
            _log(f"event=child-exited role={self.status.role} exit={self.status.last_exit!r} lived={lived:.2f}s "
                 f"restart_in={backoff:.2f}s restarts={self.status.restarts}")
            self._sleep(backoff)
        self._stop_child()
        self.status.child_pid = 0
        self.status.write(self.path)
        _log(f"event=supervisor-stopped role={self.status.role}")
        return 0

    def _stop_child(self) -> None:
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labctl.supervise", description=__doc__.splitlines()[0])
    parser.add_argument("--role", required=True)
    parser.add_argument("--status", required=True, type=Path, help="JSON status file (restarts, child PID)")
    parser.add_argument("--restart-arg", action="append", default=[], help="appended to the command on restarts")
    parser.add_argument("--unlink", action="append", default=[], type=Path, help="removed before every start")
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    opts = parser.parse_args(args)
    argv = opts.argv[1:] if opts.argv[:1] == ["--"] else opts.argv
    if not argv:
        parser.error("no command to supervise (after --)")
    return Supervisor(opts.role, argv, opts.status, opts.restart_arg, opts.unlink).run()


if __name__ == "__main__":
    sys.exit(main())
