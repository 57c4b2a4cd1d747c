"""Make a socket inside another network namespace without forking.

The thread switches into the namespace (setns(2) on /run/netns/NAME, as `ip netns` names them), calls
the factory, and switches back; a socket keeps the namespace it was made in. Forking a helper instead
(pyroute2's netns= option) can deadlock a process that runs gRPC threads. libc's setns is called
through ctypes (os.setns needs Python 3.12), so the agent needs no netlink library for this.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000


class NoSuchNamespace(LookupError):
    """The named network namespace does not exist."""


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns: {os.strerror(code)}")


def made_in(netns: str | None, factory: Callable[[], T]) -> T:
    """`factory()` called while this thread is in namespace `netns` (None: where it is now)."""
    if netns is None:
        return factory()
    if not netns or "/" in netns or netns in (".", ".."):
        raise NoSuchNamespace(f"network namespace {netns!r} is not a namespace name")
    try:
        target = os.open(os.path.join(NETNS_RUN_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NoSuchNamespace(f"network namespace {netns} does not exist") from None
    try:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                return factory()
            finally:
                _setns(own)
        finally:
            os.close(own)
    finally:
        os.close(target)
