"""A netlink socket subscribed to neighbour notifications (FDB and ARP/ND), with a kernel-side filter.

Every FDB entry the agent writes makes the kernel send notifications to every listener: a vxlan
`self` entry, a bridge `master extern_learn` entry and a neighbour entry per remote MAC. The local
MAC watcher needs none of the vxlan `self` entries and no new IPv4/IPv6 neighbour entries (it only
reacts to bridge entries and to neighbour *deletions*), so a classic BPF socket filter drops them
in the kernel: they are never queued for us, never wake the watcher, never fill its buffer.

The filter keeps (everything else is dropped):
- AF_BRIDGE messages without NTF_SELF (the bridge's own entries: learned, static, extern_learn),
  except the deletion of an extern_learn entry (what the agent withdraws);
- RTM_DELNEIGH of any other family (neighbour entries deleted under the agent).
The kernel never sends a vxlan `self` entry with NDA_MASTER, so no bridge entry is lost by it; an
extern_learn entry never sits on a VM's port, and a local MAC taken over by one is reported by the
takeover (a new entry on the vxlan port), never by the extern_learn entry's later deletion.
"""

from __future__ import annotations

import ctypes
import errno
import socket
import struct

from .netlink_bulk import (
    AF_BRIDGE,
    NTF_EXT_LEARNED,
    NTF_SELF,
    RTM_DELNEIGH,
    SO_RCVBUFFORCE,
    SOL_NETLINK,
    NetlinkBulkError,
    open_socket,
)

RTNLGRP_NEIGH = 3
NETLINK_ADD_MEMBERSHIP = 1
SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)

# offsets in a notification (one message per skb): nlmsghdr (16 bytes), then ndmsg
_OFF_TYPE = 4  # nlmsg_type, u16 host order
_OFF_FAMILY = 16  # ndm_family, u8
_OFF_FLAGS = 16 + 10  # ndm_flags, u8

# classic BPF opcodes (linux/filter.h)
_LD_B_ABS = 0x30
_LD_H_ABS = 0x28
_JEQ_K = 0x15
_JSET_K = 0x45
_RET_K = 0x06
_ACCEPT = 0xFFFFFFFF
_INSN = struct.Struct("=HBBI")


def _host_u16_as_loaded(value: int) -> int:
    """What BPF's half-word load (network byte order) reads for a u16 stored in host order."""
    return int.from_bytes(struct.pack("=H", value), "big")


def neigh_filter_program() -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions (see the module docstring)."""
    deletion = _host_u16_as_loaded(RTM_DELNEIGH)
    return [
        (_LD_B_ABS, 0, 0, _OFF_FAMILY),  # 0
        (_JEQ_K, 0, 5, AF_BRIDGE),  # 1: bridge -> 2, else -> 7
        (_LD_B_ABS, 0, 0, _OFF_FLAGS),  # 2
        (_JSET_K, 6, 0, NTF_SELF),  # 3: self -> 10 (drop), else -> 4
        (_JSET_K, 0, 4, NTF_EXT_LEARNED),  # 4: extern_learn -> 5, else -> 9 (accept)
        (_LD_H_ABS, 0, 0, _OFF_TYPE),  # 5
        (_JEQ_K, 3, 2, deletion),  # 6: an extern_learn entry deleted -> 10 (drop), else -> 9 (accept)
        (_LD_H_ABS, 0, 0, _OFF_TYPE),  # 7
        (_JEQ_K, 0, 1, deletion),  # 8: deletion -> 9 (accept), else -> 10 (drop)
        (_RET_K, 0, 0, _ACCEPT),  # 9
        (_RET_K, 0, 0, 0),  # 10
    ]


def attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    """SO_ATTACH_FILTER: struct sock_fprog {unsigned short len; struct sock_filter *filter} (copied by the kernel)."""
    code = b"".join(_INSN.pack(*insn) for insn in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("@HP", len(program), ctypes.addressof(buffer)))


def open_neigh_listener(rcvbuf: int) -> socket.socket:
    """A non-blocking NETLINK_ROUTE socket in this namespace, joined to RTNLGRP_NEIGH, filtered as above,
    with a receive buffer of `rcvbuf` bytes (beyond rmem_max with CAP_NET_ADMIN)."""
    sock = open_socket(None)
    try:
        attach_filter(sock, neigh_filter_program())
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, RTNLGRP_NEIGH)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise NetlinkBulkError(f"netlink neighbour listener: {exc}") from exc
    return sock


def is_overflow(exc: BaseException) -> bool:
    """The kernel dropped notifications for this socket (its receive buffer was full)."""
    return isinstance(exc, OSError) and exc.errno == errno.ENOBUFS
