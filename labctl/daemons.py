"""Start and stop the lab's daemons (gobgpd, evpn-agent) inside namespaces, by PID only."""

from __future__ import annotations

import contextlib
import json
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


# The supervisor (labctl/supervise.py, stdlib only) run as a file, without site (-S: no site-packages, no .pth
# files) and without the file's directory on sys.path (-P): a lab runs two per hypervisor, and against
# `-m labctl.supervise` this saves each 0.75 MiB of private memory and half of its start-up CPU.
SUPERVISOR = (sys.executable, "-S", "-P", str(Path(__file__).with_name("supervise.py")))


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


def start_supervised(ns_name: str, role: str, argv: list[str], log_path: Path, status_path: Path,
                     restart_args: tuple[str, ...] = (), unlink: tuple[Path, ...] = ()) -> int:
    """Run `argv` inside `ns_name` under our supervisor (labctl/supervise.py: restarts with backoff, records
    restarts in `status_path`). Returns the supervisor's PID; the daemon's own PID is in its status file."""
    status_path.unlink(missing_ok=True)
    wrapper = [*SUPERVISOR, "--role", role, "--status", str(status_path),
               *(f"--restart-arg={arg}" for arg in restart_args), *(f"--unlink={path}" for path in unlink), "--", *argv]
    return start(ns_name, wrapper, log_path)


def supervised_child(status_path: Path) -> int:
    """The PID of the daemon a supervisor runs now (0 if none, or no status yet)."""
    info = supervisor_info(status_path)
    return int(info.get("child_pid") or 0)


def supervisor_info(status_path: Path) -> dict[str, object]:
    """A supervisor's status file as it is (empty if absent or unreadable)."""
    try:
        return dict(json.loads(status_path.read_text()))
    except (OSError, ValueError):
        return {}


def stop_supervised(pid: int, marker: str, status_path: Path, hard: bool = False) -> bool:
    """End a supervisor and its daemon. Hard: SIGKILL the supervisor first (so it restarts nothing), then
    the daemon it ran (by the PID it recorded: PR_SET_PDEATHSIG does not survive a daemon's change of
    user, as FRR's). Soft: SIGTERM, the supervisor ends its daemon. False if the supervisor was not running."""
    was = stop(pid, marker, hard=hard)
    child = supervised_child(status_path)
    if child and alive(child, marker):
        stop(child, marker, hard=hard)
    return was


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


def stop_many(processes: list[tuple[int, str]], timeout: float = 5.0) -> int:
    """`stop` for many (pid, marker) at once: SIGTERM to all, one wait for all, SIGKILL to the rest.
    Returns how many were running. (One after another, a 50-host lab's 100 supervisors took 40 s.)"""
    running = [(pid, marker) for pid, marker in processes if alive(pid, marker)]
    for pid, _ in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    left = running
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [(pid, marker) for pid, marker in left if alive(pid, marker)]
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            log.warning("event=daemon-killed-after-timeout pid=%d", pid)
    for _ in range(40):
        left = [(pid, marker) for pid, marker in left if alive(pid, marker)]
        if not left:
            break
        time.sleep(0.05)
    return len(running)


def kill_pids(pids: list[int]) -> None:
    """SIGKILL processes found inside the lab's own namespaces (leftovers of an interrupted run)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            log.info("event=leftover-killed pid=%d cmd=%r", pid, cmdline(pid))
    for pid in pids:
        _reap(pid)
