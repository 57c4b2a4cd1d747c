"""Make a socket inside another network namespace without forking.

The thread switches into the namespace (setns), calls the factory, and switches back. pyroute2's
netns= option forks a helper instead, and forking a process that runs gRPC threads can deadlock it.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from pyroute2 import netns as pyroute2_netns

T = TypeVar("T")


class NoSuchNamespace(LookupError):
    """The named network namespace does not exist."""


def made_in(netns: str | None, factory: Callable[[], T]) -> T:
    """`factory()` called while this thread is in namespace `netns` (None: where it is now)."""
    if netns is None:
        return factory()
    if netns not in pyroute2_netns.listnetns():  # pushns would create a missing namespace
        raise NoSuchNamespace(f"network namespace {netns} does not exist")
    pyroute2_netns.pushns(netns)
    try:
        return factory()
    finally:
        pyroute2_netns.popns()
