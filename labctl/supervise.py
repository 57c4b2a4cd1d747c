"""A small supervisor for one lab daemon: `python -S -P labctl/supervise.py --role R --status FILE -- ARGV...`.

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

Stdlib only, and a small part of it (no argparse, dataclasses or pathlib: a lab runs two supervisors per
hypervisor, and those imports cost each one 2-3 MB of private memory and a tenth of a second of CPU at
start); the pure parts (`next_backoff`, `parse_args`) are unit-tested.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time

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


class SupervisorStatus:
    """What the status file says (JSON object with these keys)."""

    FIELDS = ("role", "argv", "supervisor_pid", "child_pid", "restarts", "last_exit", "last_restart", "started", "stopping")

    def __init__(self, role: str, argv: list[str]) -> None:
        self.role = role
        self.argv = argv
        self.supervisor_pid = os.getpid()
        self.child_pid = 0
        self.restarts = 0
        self.last_exit = ""  # "code 1", "signal 9"
        self.last_restart = 0.0  # wall clock of the last restart
        self.started = time.time()
        self.stopping = False

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.FIELDS}

    def write(self, path: str) -> None:
        directory, name = os.path.split(path)
        tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(self.as_dict(), out)
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
    def __init__(self, role: str, argv: list[str], status_path: str, restart_args: list[str],
                 unlink: list[str] | None = None) -> None:
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
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass
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


class UsageError(ValueError):
    """The supervisor's command line is wrong (one line saying how)."""


USAGE = "python -m labctl.supervise --role R --status FILE [--restart-arg A]... [--unlink PATH]... -- ARGV..."


def parse_args(args: list[str]) -> tuple[str, str, list[str], list[str], list[str]]:
    """(role, status path, restart args, paths to unlink, the command) from the command line; UsageError
    if wrong. Options are `--name value` or `--name=value`; the command follows `--`."""
    values: dict[str, list[str]] = {"role": [], "status": [], "restart-arg": [], "unlink": []}
    rest = list(args)
    while rest and rest[0] != "--":
        option = rest.pop(0)
        name, sep, value = option[2:].partition("=")
        if not option.startswith("--") or name not in values:
            raise UsageError(f"unknown option {option!r}; usage: {USAGE}")
        if not sep:
            if not rest:
                raise UsageError(f"{option} needs a value; usage: {USAGE}")
            value = rest.pop(0)
        values[name].append(value)
    command = rest[1:]
    for name in ("role", "status"):
        if len(values[name]) != 1:
            raise UsageError(f"--{name} must be given once; usage: {USAGE}")
    if not command:
        raise UsageError(f"no command to supervise (after --); usage: {USAGE}")
    return values["role"][0], values["status"][0], values["restart-arg"], values["unlink"], command


def main(args: list[str] | None = None) -> int:
    try:
        role, status, restart_args, unlink, argv = parse_args(sys.argv[1:] if args is None else args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return Supervisor(role, argv, status, restart_args, unlink).run()


if __name__ == "__main__":
    sys.exit(main())
