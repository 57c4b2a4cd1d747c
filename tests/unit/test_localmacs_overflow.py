"""The FDB watcher survives a netlink overflow: pyroute2 re-raises the reader's ENOBUFS from close()."""

from __future__ import annotations

import errno

import pytest

from agent.localmacs import _close_overflowed


class Socket:
    def __init__(self, code: int | None) -> None:
        self.code = code
        self.closed = False

    def close(self) -> None:
        self.closed = True
        if self.code is not None:
            raise OSError(self.code, "from the reader")


def test_enobufs_on_close_is_the_overflow_already_handled() -> None:
    sock = Socket(errno.ENOBUFS)
    _close_overflowed(sock)  # type: ignore[arg-type]
    assert sock.closed


def test_other_errors_on_close_still_raise() -> None:
    with pytest.raises(OSError):
        _close_overflowed(Socket(errno.EBADF))  # type: ignore[arg-type]
    _close_overflowed(Socket(None))  # type: ignore[arg-type]
