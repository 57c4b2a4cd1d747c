"""Start and stop the lab's daemons (gobgpd, evpn-agent) inside namespaces, by PID only."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from .errors import LabError

log = logging.getLogger("evpn.labctl.daemons")


def find_program(name: str) -> str:
    """A program next to this Python (the venv's console scripts) or on PATH; gobgpd/gobgp as protos.dist selects."""
    if name in ("gobgpd", "gobgp"):
        from protos import dist

        try:
            return str(dist.program(name))
        except dist.DistError as exc:
            raise LabError(str(exc)) from None
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise LabError(f"{name} not found (run scripts/bootstrap to install it)")
    return found


def start(ns_name: str, argv: list[str], log_path: Path) -> int:
    """Run `argv` inside `ns_name` in the background; output goes to `log_path`. Returns its PID."""
    log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)  # root only, whatever the umask (and whatever an older file had)
    with os.fdopen(fd, "ab") as out:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns_name, *argv],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    log.info("event=daemon-started ns=%s pid=%d cmd=%r", ns_name, proc.pid, " ".join(argv))
    return proc.pid


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int, marker: str) -> bool:
    """True if `pid` runs and is still the process we started (its command line holds `marker`)."""
    _reap(pid)
    return bool(pid) and marker in cmdline(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop(pid: int, marker: str, timeout: float = 3.0, hard: bool = False) -> bool:
    """End one of our processes: SIGTERM (SIGKILL when `hard` or after `timeout`). False if it was not running."""
    if not alive(pid, marker):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL if hard else signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid, marker):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(40):
        if not alive(pid, marker):
            break
        time.sleep(0.05)
    return True


def kill_pids(pids: list[int]) -> None:
    """SIGKILL processes found inside the lab's own namespaces (leftovers of an interrupted run)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            log.info("event=leftover-killed pid=%d cmd=%r", pid, cmdline(pid))
    for pid in pids:
        _reap(pid)
