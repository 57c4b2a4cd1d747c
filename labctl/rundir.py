"""The run directory on disk (/run/evpn-lab/<lab>/<node>/): private whatever the umask.

Directories are 0700 and files 0600, owned by root: configs, state, logs and the gobgpd API socket
(which controls BGP) are for root only. FRR's daemons run as the `frr` user and must reach their own
directory: on the way to an FRR node's directory, the directories get group `frr` and mode 0710
(traverse only, no listing, no writing) — `allow_group` below.
"""

from __future__ import annotations

import grp
import os
from pathlib import Path
from typing import Any

from agent.atomicfile import write_atomic, write_json_atomic

from . import plan

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
TRAVERSE_DIR = 0o710


def private_dir(path: Path) -> Path:
    """Make `path` (and its missing parents up to RUN_ROOT) as directories readable by root only."""
    for directory in reversed([path, *path.parents]):
        if directory != plan.RUN_ROOT and plan.RUN_ROOT not in directory.parents:
            continue
        try:
            directory.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            if directory.is_symlink() or not directory.is_dir():
                raise
            mode = directory.stat().st_mode & 0o7777
            if mode & 0o022:  # made under a lax umask: nobody but root may write here
                os.chmod(directory, mode & ~0o027)
            continue
        os.chmod(directory, PRIVATE_DIR)  # mkdir's mode passes through the umask
    return path


def allow_group(path: Path, group: str) -> None:
    """Let `group` traverse every directory from RUN_ROOT down to `path` (not list or write them)."""
    gid = grp.getgrnam(group).gr_gid
    for directory in [path, *path.parents]:
        if directory != plan.RUN_ROOT and plan.RUN_ROOT not in directory.parents:
            break
        os.chown(directory, 0, gid)
        os.chmod(directory, TRAVERSE_DIR)


def write_private(path: Path, text: str) -> None:
    private_dir(path.parent)
    write_atomic(path, text, PRIVATE_FILE)


def write_private_json(path: Path, data: Any, indent: int | None = None) -> None:
    private_dir(path.parent)
    write_json_atomic(path, data, PRIVATE_FILE, indent=indent)


def private_file(path: Path) -> None:
    """Set an existing file (a socket a daemon made) to root only."""
    os.chmod(path, PRIVATE_FILE)
